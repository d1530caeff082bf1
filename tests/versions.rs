//! What differs between BIRD versions, without a lab: config findings that
//! depend on the version's config language. The version matrix with real
//! daemons is tests/lab_versions.rs.

mod common;

use std::path::Path;

use autopeer::check::{check, Severity};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Writes into `dir` an empty owned include, a bird.conf of `logs` (the
/// `log ...;` lines), a router id, template CLIENTS and the include, and an
/// autopeer.toml for it (BIRD's socket `socket`, followed `sources`, group
/// clients); returns the autopeer.toml.
fn setup(dir: &Path, logs: &str, socket: &str, sources: &str) -> std::path::PathBuf {
    let d = dir.display();
    write(dir, "autopeer.conf", "");
    let bird = write(
        dir,
        "bird.conf",
        &format!(
            "{logs}router id 10.0.0.1;\n\
             template bgp CLIENTS {{ local as 65000; neighbor internal; }}\n\
             include \"{d}/autopeer.conf\";\n"
        ),
    );
    write(
        dir,
        "autopeer.toml",
        &format!(
            "[bird]\nsocket = \"{socket}\"\nconfig = \"{}\"\ninclude = \"{d}/autopeer.conf\"\nkeyring = \"off\"\n\
             [sources]\nlogs = [{sources}]\n\
             [[group]]\nname = \"clients\"\ntemplate = \"CLIENTS\"\nprefixes = [\"10.88.0.0/24\"]\n",
            bird.display()
        ),
    )
}

/// BIRD 3's `log fixed "FILE" SIZE` is a ring buffer rewritten in place
/// (seen on 3.1.8: a 4096-byte file whose oldest lines are overwritten),
/// so following it as a log would miss or repeat knocks: `check` refuses it
/// as a source in one sentence, and does not mistake it for "BIRD does not
/// write this file".
#[tokio::test]
async fn check_refuses_a_fixed_ring_log_as_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = setup(
        dir.path(),
        &format!("log fixed \"{d}/bird.ring\" 65536 all;\nlog \"{d}/bird.log\" all;\n"),
        &format!("{d}/no-bird.ctl"),
        &format!("\"{d}/bird.ring\", \"{d}/bird.log\""),
    );
    let findings = check(&conf).await;
    let ring: Vec<_> = findings
        .iter()
        .filter(|f| f.key == "sources.logs[0]" && f.severity == Severity::Problem)
        .collect();
    assert_eq!(ring.len(), 1, "{findings:#?}");
    assert!(ring[0].message.contains("log fixed"), "{}", ring[0]);
    assert!(
        !findings
            .iter()
            .any(|f| f.key == "sources.logs[1]" && f.message.contains("does not write")),
        "the plain log file is BIRD's: {findings:#?}"
    );
}

use std::collections::BTreeMap;
use std::process::Command;

use autopeer::bird::client::{parse_greeting, BirdVersion};
use autopeer::bird::render::{self, Dialect, NeighborAs, Peer, RenderError};
use autopeer::bird::reply::parse_all;
use autopeer::check::check_version;
use autopeer::config::Config;

fn greeting(line: &str) -> BirdVersion {
    let (r, _) = parse_all(format!("{line}\n").as_bytes()).unwrap();
    parse_greeting(&r[0]).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Every version the matrix runs is known; a version autopeer has never
/// seen still parses (so autopeer talks to that BIRD) and is only unknown.
#[test]
fn greeting_versions_known_and_unknown() {
    for (line, major, minor) in [
        ("0001 BIRD 1.6.8 ready.", 1, 6),
        ("0001 BIRD 2.0.12 ready.", 2, 0),
        ("0001 BIRD 2.17.6 ready.", 2, 17),
        ("0001 BIRD 3.1.8 ready.", 3, 1),
    ] {
        let v = greeting(line);
        assert_eq!((v.major, v.minor), (major, minor), "{line}");
        assert!(v.is_known(), "{line}");
    }
    for (line, text) in [
        ("0001 BIRD 4.0.0 ready.", "4.0.0"),
        ("0001 BIRD 3.9-rc1 ready.", "3.9-rc1"),
        ("0001 BIRD 1.5.0 ready.", "1.5.0"),
        ("0001 BIRD v3-snapshot ready.", "v3-snapshot"),
    ] {
        let v = greeting(line);
        assert_eq!(v.text, text);
        assert!(!v.is_known(), "{line}");
    }
}

fn peer(name: &str, addr: &str, iface: Option<&str>, neighbor: Option<NeighborAs>) -> Peer {
    Peer {
        name: name.into(),
        group: "clients".into(),
        template: "CLIENTS".into(),
        addr: addr.parse().unwrap(),
        iface: iface.map(str::to_owned),
        neighbor,
        admitted: "2026-11-28T09:00:00Z".into(),
        via: "bird-log".into(),
    }
}

fn bird1() -> Dialect {
    Dialect::Bird1 {
        local_as: BTreeMap::from([("CLIENTS".to_string(), 65000)]),
    }
}

/// BIRD 1.6 gets `neighbor ADDR as N;` for an iBGP group (N: the
/// template's `local as`), reads back as that AS; `external` and a
/// template without `local as` are errors naming the fix; 2.x output is
/// unchanged.
#[test]
fn bird1_neighbor_line() {
    let p = peer(
        "clients_10_88_0_2",
        "10.88.0.2",
        None,
        Some(NeighborAs::Internal),
    );
    let none = BTreeMap::new();
    let text = render::render_for(std::slice::from_ref(&p), &none, &bird1()).unwrap();
    assert!(text.contains("  neighbor 10.88.0.2 as 65000;\n"), "{text}");
    let back = render::parse(&text).unwrap();
    assert_eq!(back[0].neighbor, Some(NeighborAs::As(65000)));
    assert_eq!(
        render::render_for(&back, &none, &bird1()).unwrap(),
        text,
        "stable across a restart"
    );
    let two = render::render_for(std::slice::from_ref(&p), &none, &Dialect::Bird2).unwrap();
    assert!(two.contains("  neighbor 10.88.0.2 internal;\n"), "{two}");

    let ext = peer(
        "clients_10_88_0_3",
        "10.88.0.3",
        None,
        Some(NeighborAs::External),
    );
    let e = render::render_for(&[ext], &none, &bird1()).unwrap_err();
    assert!(
        matches!(
            e,
            RenderError::Bird1Neighbor {
                what: "external",
                ..
            }
        ),
        "{e}"
    );
    let other = Peer {
        template: "NOAS".into(),
        ..p.clone()
    };
    let e = render::render_for(&[other], &none, &bird1()).unwrap_err();
    assert!(e.to_string().contains("template NOAS"), "{e}");
    // `as N` and no AS at all are written as they are.
    let as_n = peer(
        "clients_10_88_0_5",
        "10.88.0.5",
        None,
        Some(NeighborAs::As(65010)),
    );
    let bare = peer("clients_10_88_0_6", "10.88.0.6", None, None);
    let text = render::render_for(&[as_n, bare], &none, &bird1()).unwrap();
    assert!(text.contains("  neighbor 10.88.0.5 as 65010;\n"), "{text}");
    assert!(text.contains("  neighbor 10.88.0.6;\n"), "{text}");
}

/// The real BIRD 1.6.8 rejects what autopeer wrote before (`internal`,
/// the review's `autopeer.conf:N:M: syntax error`) and accepts the 1.6
/// rendering, for `bird` (IPv4) and `bird6` (IPv6, link-local with the
/// `direct;` a 1.6 iBGP template needs).
#[test]
fn bird1_rendering_parses_on_real_bird_1_6_8() {
    if root_of("1.6").is_none() {
        return;
    }
    let none = BTreeMap::new();
    let template =
        "template bgp CLIENTS { local 10.88.0.1 as 65000; rr client; import all; export all; }";
    let v4 = [peer(
        "clients_10_88_0_2",
        "10.88.0.2",
        None,
        Some(NeighborAs::Internal),
    )];
    let old = render::render_for(&v4, &none, &Dialect::Bird2).unwrap();
    let err = parse_on("1.6", "bird", template, &old)
        .unwrap()
        .expect("1.6 must reject `internal`");
    assert!(err.contains("syntax error"), "{err}");
    let new = render::render_for(&v4, &none, &bird1()).unwrap();
    assert_eq!(
        parse_on("1.6", "bird", template, &new).unwrap(),
        None,
        "{new}"
    );

    let template6 = "template bgp CLIENTS { local as 65000; direct; import all; export all; }";
    let v6 = [
        peer(
            "clients_2001_db8_88__2",
            "2001:db8:88::2",
            None,
            Some(NeighborAs::Internal),
        ),
        peer(
            "clients_fe80__2_eth0",
            "fe80::2",
            Some("eth0"),
            Some(NeighborAs::Internal),
        ),
    ];
    let new6 = render::render_for(&v6, &none, &bird1()).unwrap();
    assert_eq!(
        parse_on("1.6", "bird6", template6, &new6).unwrap(),
        None,
        "{new6}"
    );
}

fn version(text: &str) -> BirdVersion {
    greeting(&format!("0001 BIRD {text} ready."))
}

/// `check` says in one sentence what BIRD 1.6 cannot do with a config:
/// `external`, `internal` without the template's `local as`, one group
/// across both families (bird and bird6 are two daemons), link-local
/// without `direct;` (group `ll`; `lld`'s template inherits it); nothing
/// for 2.x/3.x; a warning for an unknown version.
#[test]
fn check_says_what_bird_1_6_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    write(dir.path(), "autopeer.conf", "");
    let bird = write(
        dir.path(),
        "bird.conf",
        &format!(
            "router id 10.0.0.1;\n\
             template bgp WITHAS {{ local 10.0.0.1 as 65000; }}\n\
             template bgp NOAS {{ neighbor as 65001; }}\n\
             template bgp DIRECT from WITHAS {{ direct; }}\n\
             include \"{d}/autopeer.conf\";\n"
        ),
    );
    let text = format!(
        "[bird]\nconfig = \"{}\"\ninclude = \"{d}/autopeer.conf\"\n\
         [[group]]\nname = \"ext\"\ntemplate = \"WITHAS\"\nprefixes = [\"10.1.0.0/24\"]\nneighbor = \"external\"\n\
         [[group]]\nname = \"ibgp_peers\"\ntemplate = \"WITHAS\"\nprefixes = [\"10.2.0.0/24\"]\nneighbor = \"internal\"\n\
         [[group]]\nname = \"noas\"\ntemplate = \"NOAS\"\nprefixes = [\"10.3.0.0/24\"]\nneighbor = \"internal\"\n\
         [[group]]\nname = \"both\"\ntemplate = \"WITHAS\"\nprefixes = [\"10.4.0.0/24\", \"2001:db8:4::/64\"]\n\
         [[group]]\nname = \"ll\"\ntemplate = \"WITHAS\"\nprefixes = [\"fe80::/64\"]\ninterface = \"vti3\"\nneighbor = \"internal\"\n\
         [[group]]\nname = \"lld\"\ntemplate = \"DIRECT\"\nprefixes = [\"fe80:0:0:1::/64\"]\ninterface = \"vti4\"\nneighbor = \"internal\"\n",
        bird.display()
    );
    let config = Config::load_str(&text, dir.path()).unwrap();
    let bc = autopeer::bird::conf::scan(&config.bird.config, &config.bird.include).unwrap();
    let f = check_version(&config, Some(&bc), &version("1.6.8"));
    let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "group.ext.neighbor",
            "group.noas.neighbor",
            "group.both.prefixes",
        ],
        "{f:#?}"
    );
    assert!(f[0].message.contains("external"), "{}", f[0]);
    assert!(f[1].message.contains("template NOAS"), "{}", f[1]);
    assert!(f[2].message.contains("bird6"), "{}", f[2]);
    for f in &f {
        assert_eq!(f.message.matches(". ").count(), 0, "one sentence: {f}");
    }

    for v in ["2.0.12", "2.17.6", "3.1.8"] {
        assert!(
            check_version(&config, Some(&bc), &version(v)).is_empty(),
            "{v}"
        );
    }
    let f = check_version(&config, Some(&bc), &version("4.0.0"));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(f[0].message.contains("4.0.0"), "{}", f[0]);
}

/// The root of a prepared BIRD version (`/` for 2.0), or None with a
/// one-line skip (a failure under CI=true).
fn root_of(version: &str) -> Option<std::path::PathBuf> {
    match common::lab::bird_root(version) {
        Ok(root) => Some(root),
        Err(why) => {
            common::prereq::runnable(&format!("BIRD {version}"), Some(why));
            None
        }
    }
}

/// `bird -p` of BIRD `version` (binary `daemon`) on bird.conf = `head` +
/// include of `rendered`, the files placed where that BIRD sees them
/// (inside its root for the chrooted versions). None when it parses.
fn parse_on(version: &str, daemon: &str, head: &str, rendered: &str) -> Option<Option<String>> {
    let root = root_of(version)?;
    let chrooted = matches!(version, "2.17" | "3.1");
    let base = if chrooted {
        root.join("tmp")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::tempdir_in(&base).unwrap();
    let seen = |p: &Path| -> std::path::PathBuf {
        if chrooted {
            Path::new("/").join(p.strip_prefix(&root).unwrap())
        } else {
            p.to_path_buf()
        }
    };
    let inc = write(dir.path(), "autopeer.conf", rendered);
    let conf = write(
        dir.path(),
        "bird.conf",
        &format!(
            "router id 10.0.0.1;\n{head}\ninclude \"{}\";\n",
            seen(&inc).display()
        ),
    );
    let out = if chrooted {
        Command::new("chroot")
            .arg(&root)
            .arg(Path::new("/usr/sbin").join(daemon))
            .arg("-p")
            .arg("-c")
            .arg(seen(&conf))
            .output()
    } else {
        let bin = if version == "2.0" {
            Path::new("/usr/sbin").join(daemon)
        } else {
            root.join("usr/sbin").join(daemon)
        };
        Command::new(bin).arg("-p").arg("-c").arg(&conf).output()
    }
    .unwrap();
    Some((!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// Generated protocol names must parse on every version, whatever the
/// group is called: BIRD 3.1 refuses a keyword as a protocol name where
/// 2.x let some through (seen: `protocol bgp on` fails on 3.1.8 with
/// `unexpected ON`). Group names that are keywords on some version, with
/// IPv4, IPv6 and link-local neighbors, each checked by the real `bird -p`.
#[test]
fn generated_names_parse_on_every_version() {
    let groups = [
        "on", "bgp", "as", "other", "ipv4", "neighbor", "local", "table",
    ];
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        for (addr, iface) in [
            (format!("10.88.{i}.2"), None),
            (format!("2001:db8:{i}::2"), None),
            (format!("fe80::{i}:2"), Some("eth0")),
        ] {
            let a: std::net::IpAddr = addr.parse().unwrap();
            let p = Peer {
                name: render::peer_name(g, a, iface),
                group: "clients".into(),
                ..peer("x", &addr, iface, Some(NeighborAs::Internal))
            };
            assert!(render::is_symbol(&p.name), "{}", p.name);
            if a.is_ipv4() {
                v4.push(p)
            } else {
                v6.push(p)
            }
        }
    }
    let none = BTreeMap::new();
    let head2 = "protocol device { }\ntemplate bgp CLIENTS { local as 65000; direct; ipv4 { import all; export all; }; ipv6 { import all; export all; }; }";
    let head1 = "template bgp CLIENTS { local as 65000; direct; import all; export all; }";
    let all: Vec<Peer> = v4.iter().chain(&v6).cloned().collect();
    let text2 = render::render_for(&all, &none, &Dialect::Bird2).unwrap();
    for version in ["2.0", "2.17", "3.1"] {
        if let Some(err) = parse_on(version, "bird", head2, &text2) {
            assert_eq!(err, None, "BIRD {version}:\n{text2}");
        }
    }
    for (daemon, peers) in [("bird", &v4), ("bird6", &v6)] {
        let text1 = render::render_for(peers, &none, &bird1()).unwrap();
        if let Some(err) = parse_on("1.6", daemon, head1, &text1) {
            assert_eq!(err, None, "BIRD 1.6 {daemon}:\n{text1}");
        }
    }
    // And the counter-example, so the check above can fail: `on` itself.
    let bad = "protocol bgp on from CLIENTS { neighbor 10.88.9.2 as 65000; }\n";
    if let Some(err) = parse_on("3.1", "bird", head2, bad) {
        assert!(err.is_some_and(|e| e.contains("unexpected ON")));
    }
}

/// A BIRD version autopeer has never seen (no such release exists, so a
/// scripted socket plays it): `check` still talks to it, reads its status,
/// and says so in one warning, with no problem for the socket.
#[tokio::test]
async fn check_warns_about_an_unknown_bird_version_and_goes_on() {
    use common::{FakeBird, Step};
    let fake = FakeBird::start(vec![
        Step::send("0001 BIRD 9.1.0-dev ready.\n"),
        Step::expect("show status"),
        Step::send(
            "1000-BIRD 9.1.0-dev\n1011-Router ID is 10.0.0.1\n \
             Current server time is 2026-11-28 09:00:00.000\n \
             Last reboot on 2026-11-28 08:00:00.000\n \
             Last reconfiguration on 2026-11-28 08:00:00.000\n\
             0013 Daemon is up and running\n",
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    write(dir.path(), "bird.log", "");
    let conf = setup(
        dir.path(),
        &format!("log \"{d}/bird.log\" all;\n"),
        &fake.path.display().to_string(),
        &format!("\"{d}/bird.log\""),
    );
    let findings = check(&conf).await;
    let log = fake.finish().await;
    assert!(log.failures.is_empty(), "{:?}", log.failures);
    assert!(
        !findings.iter().any(|f| f.severity == Severity::Problem),
        "{findings:#?}"
    );
    let warn: Vec<_> = findings.iter().filter(|f| f.key == "bird.socket").collect();
    assert_eq!(warn.len(), 1, "{findings:#?}");
    assert_eq!(warn[0].severity, Severity::Warning);
    assert!(warn[0].message.contains("9.1.0-dev"), "{}", warn[0]);
}
