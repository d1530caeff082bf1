//! Config loading and validation against fixtures/conf/*.toml and inline
//! texts: defaults, every key, every problem reported with its key path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use autopeer::bird::render::NeighborAs;
use autopeer::config::{Config, ConfigError, Keyring, NhrpPolicy, Problem, UnverifiedPolicy};

fn fx(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/conf")
        .join(rel)
}

fn problems(text: &str) -> Vec<Problem> {
    match Config::load_str(text, &fx("")) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

fn group(extra: &str) -> String {
    format!("[[group]]\nname = \"clients\"\ntemplate = \"CLIENTS\"\nprefixes = [\"10.88.0.0/24\"]\n{extra}\n")
}

#[test]
fn minimal_gets_every_default() {
    let c = Config::load(&fx("minimal.toml")).unwrap();
    assert_eq!(c.bird.socket, Path::new("/run/bird/bird.ctl"));
    assert_eq!(c.bird.config, Path::new("/etc/bird/bird.conf"));
    assert_eq!(c.bird.include, Path::new("/etc/bird/autopeer.conf"));
    assert_eq!(c.bird.keyring, Keyring::Auto);
    assert_eq!(c.agent.socket, Path::new("/run/autopeer.ctl"));
    assert_eq!(c.agent.state, Path::new("/var/lib/autopeer/state.toml"));
    assert_eq!(c.agent.audit_log, Path::new("/var/log/autopeer.log"));
    assert_eq!(c.agent.batch, Duration::ZERO);
    assert!(!c.agent.dry_run);
    assert_eq!(c.sources.logs, [PathBuf::from("/var/log/bird.log")]);
    assert_eq!(c.sources.nhrp_socket, None);
    assert_eq!(c.sources.nhrp_policy, NhrpPolicy::Enforce);
    let g = &c.groups[0];
    assert_eq!(g.neighbor, None);
    assert_eq!(g.password, None);
    assert!(g.deny.is_empty());
    assert_eq!(g.max_peers, 1000);
    assert_eq!(g.rate, Some(60));
    assert_eq!(g.expire, None);
    assert_eq!(g.interface, None);
}

#[test]
fn full_example_every_key() {
    let c = Config::load(&fx("autopeer.toml")).unwrap();
    assert_eq!(c.bird.config, fx("debian-bird2/bird.conf"));
    assert_eq!(c.sources.nhrp_policy, NhrpPolicy::Advise);
    assert_eq!(
        c.sources.nhrp_socket.as_deref(),
        Some(Path::new("/run/autopeer/nhrp.sock"))
    );
    let [clients, vip, links] = &c.groups[..] else {
        panic!("three groups")
    };
    assert_eq!(clients.neighbor, Some(NeighborAs::Internal));
    assert_eq!(clients.password.as_ref().unwrap().expose(), "Sp0ke-key");
    assert_eq!(clients.prefixes.len(), 2);
    assert_eq!(clients.deny[0].to_string(), "10.88.0.66/32");
    assert_eq!(clients.max_peers, 500);
    assert_eq!(clients.rate, Some(30));
    assert_eq!(clients.expire, Some(Duration::from_secs(7 * 86400)));
    assert_eq!(clients.nbma_prefixes[0].to_string(), "203.0.113.0/24");
    assert_eq!(vip.neighbor, Some(NeighborAs::As(65010)));
    assert_eq!(vip.rate, None);
    assert_eq!(links.neighbor, Some(NeighborAs::External));
    assert_eq!(links.interface.as_deref(), Some("vti3"));
    // The password never shows in Debug.
    assert!(!format!("{c:?}").contains("Sp0ke-key"));

    // And it agrees with the bird.conf it names.
    let bird = autopeer::bird::conf::scan(&c.bird.config, &c.bird.include).unwrap();
    let cross = c.check_bird(&bird);
    assert_eq!(cross, vec![], "{cross:?}");
}

#[test]
fn check_bird_reports_missing_template_and_include() {
    let text = format!(
        "[bird]\nconfig = \"nested/bird.conf\"\ninclude = \"nested/autopeer.conf\"\n{}{}",
        group(""),
        "[[group]]\nname = \"others\"\ntemplate = \"T\"\nprefixes = [\"10.1.0.0/16\"]\n"
    );
    let c = Config::load_str(&text, &fx("")).unwrap();
    let bird = autopeer::bird::conf::scan(&c.bird.config, &c.bird.include).unwrap();
    let keys: Vec<String> = c
        .check_bird(&bird)
        .into_iter()
        .map(|p| p.key_path)
        .collect();
    // `others` uses T, which has `neighbor as 65001`: no problem there.
    // (A log file BIRD does not write is a warning of `autopeer check`,
    // not a config problem: a syslog file is a legal source.)
    assert_eq!(keys, ["group.clients.template", "bird.include"]);

    let text = r#"
[bird]
config = "debian-bird2/bird.conf"
include = "debian-bird2/autopeer.conf"
[sources]
logs = ["/var/log/bird/bird.log"]
[[group]]
name = "l"
template = "LINKS"
prefixes = ["10.1.0.0/16"]
"#;
    let c = Config::load_str(text, &fx("")).unwrap();
    let bird = autopeer::bird::conf::scan(&c.bird.config, &c.bird.include).unwrap();
    let p = c.check_bird(&bird);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key_path, "group.l.neighbor");
    assert!(p[0].message.contains("LINKS"));
}

#[test]
fn every_problem_is_reported_with_its_key_path() {
    let text = std::fs::read_to_string(fx("broken-values.toml")).unwrap();
    let got: Vec<String> = problems(&text).iter().map(|p| p.to_string()).collect();
    let want_prefixes = [
        "bird.keyring: must be \"auto\" or \"off\", not \"on\"",
        "agent.batch: \"soon\" is not a duration",
        "sources.nhrp_policy: must be \"enforce\" or \"advise\"",
        "group[0].name: \"Clients\" is not a valid group name",
        "group[0].template: \"CLI-ENTS\" is not a BIRD symbol",
        "group[0].prefixes[0]: \"10.88.0.1/24\" has host bits set: did you mean \"10.88.0.0/24\"?",
        "group[0].prefixes[2]: \"banana\" is not a prefix",
        "group[0].neighbor: \"ibgp\" is not \"internal\", \"external\" or an AS number",
        "group[0].password: contains a double quote",
        "group[0].deny[0]: 192.0.2.1/32 is not inside any of the group's prefixes",
        "group[0].max_peers: 0 admits nobody",
        "group[0].rate: 0 is not a positive number",
        "group[0].expire: \"a week\" is not a duration",
        "group[0].interface: \"this-name-is-too-long\" is not an interface name",
        "group.spokes.password: password and password_file are mutually exclusive",
        "group.spokes.prefixes[1]: fe80::/10 is link-local: set `interface`",
        "group[2].name: duplicate group name \"spokes\" (also group[1])",
        "group[2].password_file: cannot read ",
        "group.spokes.prefixes[0]: 2001:db8::/64 is also a prefix of group Clients",
    ];
    for w in want_prefixes {
        assert!(
            got.iter().any(|g| g.starts_with(w)),
            "missing {w:?} in:\n{}",
            got.join("\n")
        );
    }
    assert_eq!(got.len(), want_prefixes.len(), "{}", got.join("\n"));
    // The bad password itself is never echoed.
    assert!(got.iter().all(|g| !g.contains("has\"quote")));
}

#[test]
fn long_password_is_a_problem_without_echo() {
    let text = std::fs::read_to_string(fx("broken-longkey.toml")).unwrap();
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key_path, "group.clients.password");
    assert!(p[0].message.contains("91 bytes"), "{}", p[0]);
    assert!(!p[0].message.contains("0123456789"));
    // 80 is fine.
    let ok = group(&format!("password = \"{}\"", "k".repeat(80)));
    assert!(Config::load_str(&ok, &fx("")).is_ok());
}

#[test]
fn unknown_key_and_syntax_errors_name_file_line_column() {
    let e = Config::load(&fx("broken-unknown-key.toml")).unwrap_err();
    let ConfigError::Syntax {
        path,
        line,
        message,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert!(path.ends_with("broken-unknown-key.toml"));
    assert_eq!(*line, 5);
    assert!(message.contains("unknown field `max_peer`"), "{message}");

    let e = Config::load(&fx("broken-syntax.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Syntax { line: 3, .. }), "{e}");

    for text in [
        "[bird]\nsockett = \"x\"\n",
        "[nope]\n",
        "[agent]\nbatch = \"1s\"\nfoo = 1\n",
    ] {
        assert!(
            matches!(
                Config::load_str(text, &fx("")),
                Err(ConfigError::Syntax { .. })
            ),
            "{text}"
        );
    }
}

#[test]
fn missing_config_is_an_error_naming_the_path() {
    let e = Config::load(&fx("does-not-exist.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("does-not-exist.toml"));
}

#[test]
fn value_tables() {
    // (extra group keys, expected first problem key path or None if valid)
    let cases: &[(&str, Option<&str>)] = &[
        ("neighbor = 65001", None),
        ("neighbor = \"65001\"", None),
        ("neighbor = 0", Some("group.clients.neighbor")),
        ("neighbor = 4294967296", Some("group.clients.neighbor")),
        ("neighbor = \"External\"", Some("group.clients.neighbor")),
        ("rate = \"unlimited\"", None),
        ("rate = -1", Some("group.clients.rate")),
        ("rate = \"fast\"", Some("group.clients.rate")),
        ("expire = \"never\"", None),
        ("expire = \"36h\"", None),
        ("expire = \"0s\"", Some("group.clients.expire")),
        ("max_peers = -3", Some("group.clients.max_peers")),
        ("max_peers = 1", None),
        ("deny = [\"10.88.0.0/25\"]", None),
        ("deny = [\"10.88.0.0/16\"]", Some("group.clients.deny[0]")),
        ("deny = [\"10.88.0.1/24\"]", Some("group.clients.deny[0]")),
        ("interface = \"gre-hub.100\"", None),
        ("interface = \"\"", Some("group.clients.interface")),
        ("interface = \"a b\"", Some("group.clients.interface")),
        ("password = \"\"", Some("group.clients.password")),
        (
            "password = \"line\\nbreak\"",
            Some("group.clients.password"),
        ),
        ("password = \"nul\\u0000\"", Some("group.clients.password")),
        ("password = \"back\\\\slash ok\"", None),
        (
            "nbma_prefixes = [\"203.0.113.5/24\"]",
            Some("group.clients.nbma_prefixes[0]"),
        ),
    ];
    for (extra, want) in cases {
        let got = Config::load_str(&group(extra), &fx(""));
        match (want, got) {
            (None, Ok(_)) => {}
            (Some(k), Err(ConfigError::Invalid { problems, .. })) => {
                assert_eq!(problems[0].key_path, *k, "{extra}: {problems:?}")
            }
            (w, g) => panic!("{extra}: want {w:?}, got {g:?}"),
        }
    }

    for (batch, ok) in [
        ("100ms", true),
        ("0", true),
        ("2s", true),
        ("61s", false),
        ("fast", false),
    ] {
        let t = format!("[agent]\nbatch = \"{batch}\"\n");
        assert_eq!(Config::load_str(&t, &fx("")).is_ok(), ok, "{batch}");
    }
}

#[test]
fn group_rules() {
    // Equal prefixes in two groups tie; nested ones are fine.
    let two = |a: &str, b: &str| {
        format!(
            "[[group]]\nname = \"a\"\ntemplate = \"T\"\nprefixes = [\"{a}\"]\n[[group]]\nname = \"b\"\ntemplate = \"T\"\nprefixes = [\"{b}\"]\n"
        )
    };
    let p = problems(&two("10.0.0.0/8", "10.0.0.0/8"));
    assert_eq!(p[0].key_path, "group.b.prefixes[0]");
    assert!(Config::load_str(&two("10.0.0.0/8", "10.1.0.0/16"), &fx("")).is_ok());
    assert!(Config::load_str(&two("2001:db8::/32", "2001:db8:1::/48"), &fx("")).is_ok());

    // Listed twice inside one group.
    let p = problems(
        "[[group]]\nname = \"a\"\ntemplate = \"T\"\nprefixes = [\"10.0.0.0/8\", \"10.0.0.0/8\"]\n",
    );
    assert_eq!(p[0].key_path, "group.a.prefixes[1]");

    // Names: at most 32 chars, lowercase start.
    let name = |n: &str| {
        format!("[[group]]\nname = \"{n}\"\ntemplate = \"T\"\nprefixes = [\"10.0.0.0/8\"]\n")
    };
    assert!(Config::load_str(&name(&"g".repeat(32)), &fx("")).is_ok());
    assert_eq!(
        problems(&name(&"a".repeat(33)))[0].key_path,
        "group[0].name"
    );
    assert_eq!(problems(&name("_a"))[0].key_path, "group[0].name");

    // Missing required keys are serde errors with a line.
    let e = Config::load_str("[[group]]\nname = \"a\"\n", &fx("")).unwrap_err();
    assert!(e.to_string().contains("missing field"), "{e}");
}

#[test]
fn password_file_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k1"), "abc\r\n").unwrap();
    std::fs::write(dir.path().join("k2"), "abc\n\n").unwrap();
    std::fs::write(dir.path().join("k3"), "abc").unwrap();
    let load = |f: &str| Config::load_str(&group(&format!("password_file = \"{f}\"")), dir.path());
    assert_eq!(
        load("k1").unwrap().groups[0]
            .password
            .as_ref()
            .unwrap()
            .expose(),
        "abc"
    );
    assert_eq!(
        load("k3").unwrap().groups[0]
            .password
            .as_ref()
            .unwrap()
            .expose(),
        "abc"
    );
    // Only one trailing newline is trimmed; the second is a line break.
    let Err(ConfigError::Invalid { problems, .. }) = load("k2") else {
        panic!()
    };
    assert!(problems[0].message.contains("line break"));
    assert!(!problems[0].message.contains("abc"));
    // Absolute paths work as is.
    let abs = dir.path().join("k3");
    assert!(load(abs.to_str().unwrap()).is_ok());
    // Unreadable: the problem names the resolved path.
    let Err(ConfigError::Invalid { problems, .. }) = load("nope") else {
        panic!()
    };
    assert!(problems[0]
        .message
        .contains(&dir.path().join("nope").display().to_string()));
}

#[test]
fn invalid_error_lists_all_problems() {
    let e = Config::load(&fx("broken-values.toml")).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("broken-values.toml: 19 problem(s)"), "{text}");
    assert!(text.contains("\n  group[0].max_peers: "));
}

// See: fuzzing notes (issue 7): a password_file that never ends must not
// hang `check`, and "." / ".." are not interface names.
#[test]
fn r7_key_file_must_be_a_small_regular_file_and_dots_are_no_interface() {
    let p = problems(&group("password_file = \"/dev/zero\""));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key_path, "group.clients.password_file");
    assert!(
        p[0].message.contains("not a regular file"),
        "{}",
        p[0].message
    );

    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.key");
    std::fs::write(&big, vec![b'k'; 5000]).unwrap();
    let p = problems(&group(&format!("password_file = \"{}\"", big.display())));
    assert!(
        p[0].message.contains("larger than 4096 bytes"),
        "{}",
        p[0].message
    );

    for bad in [".", ".."] {
        assert!(!autopeer::config::is_interface_name(bad));
        assert!(!autopeer::bird::render::is_iface(bad));
    }
    assert!(autopeer::config::is_interface_name("vti3"));
}

// ----- one rule for config validation and rendering (issue 10, finding 5)

/// A peer of `group` (template `template`) as the daemon would admit it.
fn peer_of(group: &str, template: &str) -> autopeer::bird::render::Peer {
    let addr = "10.88.0.2".parse().unwrap();
    autopeer::bird::render::Peer {
        name: autopeer::bird::render::peer_name(group, addr, None),
        group: group.to_string(),
        template: template.to_string(),
        addr,
        iface: None,
        neighbor: Some(NeighborAs::Internal),
        admitted: "2026-11-23T06:55:02Z".to_string(),
        via: "bird-log".to_string(),
    }
}

fn named(name: &str, template: &str) -> String {
    format!(
        "[[group]]\nname = \"{name}\"\ntemplate = \"{template}\"\nprefixes = [\"10.88.0.0/24\"]\n"
    )
}

// See: issue 10, finding 5: a group named after a BIRD keyword passed
// `check`; the daemon then failed to render and dropped whole batches.
#[test]
fn names_bird_cannot_take_are_problems() {
    let hex = "a".repeat(32);
    for (name, why) in [
        ("peer", "keyword"),
        ("rr", "keyword"),
        ("transit", "keyword"),
        ("down", "keyword"),
        ("bgp", "keyword"),
        (hex.as_str(), "byte string"),
    ] {
        let p = problems(&named(name, "CLIENTS"));
        assert_eq!(p.len(), 1, "{name}: {p:?}");
        assert!(p[0].key_path.ends_with(".name"), "{}", p[0]);
        assert!(p[0].message.contains(name), "{}", p[0]);
        assert!(p[0].message.contains(why), "{}", p[0]);
    }
    let p = problems(&named("clients", "peer"));
    assert_eq!(p[0].key_path, "group.clients.template");
    assert!(p[0].message.contains("keyword"), "{}", p[0]);
    // BIRD compares keywords case-sensitively: a template IBGP is fine.
    assert!(Config::load_str(&named("clients", "IBGP"), &fx("")).is_ok());
}

mod one_rule {
    use super::*;
    use autopeer::bird::render::{render, render_with_passwords};
    use autopeer::secret::Secret;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn config_takes_group(name: &str, template: &str) -> bool {
        Config::load_str(&named(name, template), &fx("")).is_ok()
    }

    fn render_takes_group(name: &str, template: &str) -> bool {
        render(&[peer_of(name, template)]).is_ok()
    }

    #[test]
    fn every_keyword_is_refused_by_both() {
        // Words of every kind BIRD reserves, from grammar and lexer.
        for w in [
            "peer",
            "rr",
            "transit",
            "neighbor",
            "ipv4",
            "state",
            "krt_metric",
        ] {
            assert!(!config_takes_group(w, "CLIENTS"), "{w}");
            assert!(!render_takes_group(w, "CLIENTS"), "{w}");
            assert!(!config_takes_group("clients", w), "{w}");
            assert!(!render_takes_group("clients", w), "{w}");
        }
    }

    proptest! {
        /// `check` passes a group name or template exactly when the
        /// daemon can render its peers.
        #[test]
        fn names(name in "[a-z][a-z0-9_]{0,33}|[a-z]{2,8}|[a-f0-9]{30,34}",
                 template in "[A-Za-z_][A-Za-z0-9_]{0,8}|[a-z]{2,8}") {
            let config = config_takes_group(&name, &template);
            let rendered = render_takes_group(&name, &template);
            // The config may be stricter (lowercase, 32 characters), never
            // laxer; within its shape the two agree.
            prop_assert!(rendered || !config, "{} / {}", name, template);
            if autopeer::config::is_group_name(&name) {
                prop_assert_eq!(config, rendered, "{} / {}", name, template);
            }
        }

        /// `check`, render and the keyring agree on every key.
        #[test]
        fn keys(key in "\\PC{0,6}|[\\x00-\\x7f]{0,90}|.{0,4}") {
            let config = autopeer::config::password_problem(&key).is_none();
            let keyring = autopeer::keyring::bird_can_express(&key).is_none();
            let keys = BTreeMap::from([("clients".to_string(), Secret::new(key.clone()))]);
            let rendered = render_with_passwords(&[peer_of("clients", "CLIENTS")], &keys).is_ok();
            prop_assert_eq!(config, rendered, "{:?}", key);
            prop_assert_eq!(config, keyring, "{:?}", key);
        }
    }

    // See: issue 10, finding 5: a key with a TAB passed `check`; render
    // refused it and dropped the batch. BIRD takes it (tests/render.rs).
    #[test]
    fn a_key_with_a_tab_is_fine_everywhere() {
        let p = problems(&format!(
            "{}\n[[group]]\nname = \"x\"\ntemplate = \"X\"\nprefixes = [\"10.7.0.0/24\"]\npassword = \"\"\n",
            group("password = \"tab\\there\"")
        ));
        // Only the empty key of the second group is a problem.
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key_path, "group.x.password");
        let keys = BTreeMap::from([("clients".to_string(), Secret::new("tab\there".to_string()))]);
        assert!(render_with_passwords(&[peer_of("clients", "CLIENTS")], &keys).is_ok());
    }
}

// See: issue 10, finding 5: `autopeer check` printed ok for a group named
// like a BIRD keyword.
#[tokio::test]
async fn check_names_a_keyword_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("autopeer.toml");
    std::fs::write(&path, named("transit", "CLIENTS")).unwrap();
    let findings = autopeer::check::check(&path).await;
    let shown: Vec<String> = findings.iter().map(|f| f.to_string()).collect();
    assert!(
        shown
            .iter()
            .any(|f| f.starts_with("problem: group.transit.name: \"transit\" is a BIRD keyword")),
        "{shown:#?}"
    );
}

#[test]
fn unverified_defaults_to_refuse_and_takes_admit() {
    let c = Config::load(&fx("minimal.toml")).unwrap();
    assert_eq!(c.sources.unverified, UnverifiedPolicy::Refuse);
    let text = format!("[sources]\nunverified = \"admit\"\n{}", group(""));
    let c = Config::load_str(&text, &fx("")).unwrap();
    assert_eq!(c.sources.unverified, UnverifiedPolicy::Admit);
    let text = format!("[sources]\nunverified = \"yes\"\n{}", group(""));
    let got: Vec<String> = problems(&text).iter().map(|p| p.to_string()).collect();
    assert!(
        got.iter()
            .any(|p| p == "sources.unverified: must be \"refuse\" or \"admit\", not \"yes\""),
        "{got:?}"
    );
}

#[test]
fn metrics_is_off_by_default_and_its_address_is_checked() {
    let c = Config::load_str(&group(""), &fx("")).unwrap();
    assert_eq!(c.agent.metrics, None);
    let c = Config::load_str(
        &format!("[agent]\nmetrics = \"[::1]:9330\"\n{}", group("")),
        &fx(""),
    )
    .unwrap();
    assert_eq!(c.agent.metrics, Some("[::1]:9330".parse().unwrap()));
    for (bad, says) in [
        ("localhost:9330", "not ADDR:PORT with an IP address"),
        ("127.0.0.1", "not ADDR:PORT with an IP address"),
        ("::1:9330", "not ADDR:PORT with an IP address"),
        ("127.0.0.1:99999", "not ADDR:PORT with an IP address"),
        ("127.0.0.1:0", "port 0"),
    ] {
        let p = problems(&format!("[agent]\nmetrics = \"{bad}\"\n{}", group("")));
        assert_eq!(p.len(), 1, "{bad}: {p:?}");
        assert_eq!(p[0].key_path, "agent.metrics", "{bad}");
        assert!(p[0].message.contains(says), "{bad}: {}", p[0].message);
        assert!(p[0].message.contains(bad), "{bad}: {}", p[0].message);
    }
}
