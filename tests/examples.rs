//! The shipped examples in `bird/` agree with each other and with BIRD:
//! autopeer.toml loads, bird.conf scans and satisfies the example's groups,
//! the managed include parses back, and real BIRD (`bird -p`) accepts
//! bird.conf. Needs only the bird binary (no root); with CI=true a missing
//! binary fails the test, elsewhere it skips with a one-line reason.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use autopeer::bird::conf::scan;
use autopeer::bird::render;
use autopeer::config::Config;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bird")
        .join(name)
}

/// The example config with its [bird] paths pointed at the repo's files.
fn example_config_here() -> Config {
    let text = std::fs::read_to_string(example("autopeer.toml")).unwrap();
    let conf_line = "config = \"/etc/bird/bird.conf\"";
    let incl_line = "include = \"/etc/bird/autopeer.conf\"";
    assert!(
        text.contains(conf_line) && text.contains(incl_line),
        "example changed?"
    );
    let text = text
        .replace(conf_line, &format!("config = {:?}", example("bird.conf")))
        .replace(
            incl_line,
            &format!("include = {:?}", example("autopeer.conf")),
        );
    Config::load_str(&text, &example("")).expect("rewritten example loads")
}

#[test]
fn example_toml_loads_as_shipped() {
    // Its paths name /etc/bird, /run, /var: loading must not need them.
    let c = Config::load(&example("autopeer.toml")).expect("example loads");
    assert_eq!(c.bird.config, Path::new("/etc/bird/bird.conf"));
    assert_eq!(c.bird.include, Path::new("/etc/bird/autopeer.conf"));
    assert_eq!(c.groups.len(), 1);
    let g = &c.groups[0];
    assert_eq!(
        (g.name.as_str(), g.template.as_str()),
        ("clients", "CLIENTS")
    );
    assert!(g.contains("10.88.0.2".parse().unwrap()));
    assert!(!g.contains("10.88.0.200".parse().unwrap()));
}

#[test]
fn example_bird_conf_satisfies_the_example_groups() {
    let c = example_config_here();
    let bc = scan(&c.bird.config, &c.bird.include).expect("example bird.conf scans");
    let problems = c.check_bird(&bc);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(bc.includes_owned);
    assert!(!bc.owned_include_missing);
    // The log file autopeer tails is one BIRD writes.
    for log in &c.sources.logs {
        assert!(
            bc.log_files.contains(log),
            "{} is tailed but bird.conf logs only to {:?}",
            log.display(),
            bc.log_files
        );
    }
    // The hand-configured neighbor inside the group prefix is seen as
    // static (so autopeer never duplicates it), and it is not denied.
    let c4: IpAddr = "10.88.0.4".parse().unwrap();
    let n = bc.static_neighbor(c4, None).expect("static_c4 found");
    assert_eq!(n.protocol, "static_c4");
    assert!(c.groups[0].contains(c4));
    assert!(!c.groups[0].deny.iter().any(|d| d.contains(&c4)));
    // The shipped include is a valid, empty roster.
    let text = std::fs::read_to_string(&c.bird.include).unwrap();
    assert_eq!(render::parse(&text).expect("example include parses"), []);
}

fn have_bird() -> bool {
    common::bird::have_bird("bird -p of the examples")
}

fn bird_p(conf: &Path) {
    let out = common::bird::parse_only(conf, &[]);
    assert!(
        out.status.success(),
        "bird -p -c {}: {}{}",
        conf.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bird_parses_example_bird_conf() {
    if have_bird() {
        bird_p(&example("bird.conf"));
    }
}

/// What autopeer would write for the example group is valid with the
/// example bird.conf (template CLIENTS, `neighbor ADDR internal;`).
#[test]
fn bird_parses_example_with_an_admitted_peer() {
    if !have_bird() {
        return;
    }
    let c = example_config_here();
    let g = &c.groups[0];
    let addr: IpAddr = "10.88.0.2".parse().unwrap();
    let peer = render::Peer {
        name: render::peer_name(&g.name, addr, None),
        group: g.name.clone(),
        template: g.template.clone(),
        addr,
        iface: None,
        neighbor: g.neighbor,
        admitted: "2026-11-23T06:55:02Z".into(),
        via: "bird-log".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(example("bird.conf"), dir.path().join("bird.conf")).unwrap();
    std::fs::write(
        dir.path().join("autopeer.conf"),
        render::render(&[peer]).unwrap(),
    )
    .unwrap();
    bird_p(&dir.path().join("bird.conf"));
}
