//! bird.conf scanner against the fixtures in fixtures/conf/: realistic
//! Debian configs, nested and globbed includes, and broken files.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use autopeer::bird::conf::{scan, ConfError};

fn fx(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/conf")
        .join(rel)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn debian_bird2_finds_templates_statics_ranges_and_skips_owned() {
    let c = scan(
        &fx("debian-bird2/bird.conf"),
        &fx("debian-bird2/autopeer.conf"),
    )
    .unwrap();

    // Files: main, owned include, then the glob in alphabetical order; the
    // directory `sub.conf` is skipped.
    let names: Vec<String> = c
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "bird.conf",
            "autopeer.conf",
            "10-upstream.conf",
            "20-dynamic.conf"
        ]
    );
    assert!(c.includes_owned);
    assert!(!c.owned_include_missing);
    assert_eq!(c.log_files, [PathBuf::from("/var/log/bird/bird.log")]);

    let clients = c.templates.get("CLIENTS").unwrap();
    assert!(clients.has_neighbor_as);
    assert_eq!(clients.password.as_ref().unwrap().expose(), "Sp0ke-key");
    assert_eq!(clients.line, 28);
    let links = c.templates.get("LINKS").unwrap();
    assert!(!links.has_neighbor_as);
    assert!(links.password.is_none());

    // Not the commented-out 1.2.3.4 / 5.6.7.8, not the owned 10.88.0.2.
    let addrs: Vec<IpAddr> = c.neighbors.iter().map(|n| n.addr).collect();
    assert_eq!(addrs, [ip("198.51.100.1"), ip("10.88.0.10"), ip("fe80::1")]);
    let hq = &c.neighbors[1];
    assert_eq!(hq.protocol, "hq");
    assert!(hq.password, "inherits CLIENTS' password");
    assert!(hq.file.ends_with("conf.d/10-upstream.conf"));
    assert_eq!(hq.line, 11);
    assert!(!c.neighbors[0].password);
    assert_eq!(c.neighbors[2].iface.as_deref(), Some("vti3"));

    assert_eq!(c.ranges.len(), 1);
    assert_eq!(c.ranges[0].protocol, "dyn");
    assert_eq!(c.ranges[0].range.to_string(), "10.99.0.0/16");
    assert!(c.native_range(ip("10.99.3.4")).is_some());

    assert!(c.protocol_names.contains("upstream"));
    assert!(c.protocol_names.contains("device1"));
    assert!(!c.protocol_names.contains("clients_10_88_0_2"));
}

#[test]
fn debian_bird16_style() {
    let c = scan(
        &fx("debian-bird16/bird.conf"),
        Path::new("/etc/bird/autopeer.conf"),
    );
    // It includes /etc/bird/autopeer.conf, which does not exist here; unless
    // /etc/bird exists, that is a plain missing include.
    match c {
        Ok(c) => {
            assert!(c.includes_owned);
            let up = &c.neighbors[0];
            assert_eq!(up.addr, ip("198.51.100.1"));
            assert!(up.password);
            assert!(!c.templates.get("spokes").unwrap().has_neighbor_as);
        }
        Err(ConfError::MissingInclude { line, .. }) => assert_eq!(line, 28),
        Err(e) => panic!("{e}"),
    }
    // Without the include line the 1.6 syntax scans fully.
    let text = std::fs::read_to_string(fx("debian-bird16/bird.conf")).unwrap();
    let text = text.replace("include \"/etc/bird/autopeer.conf\";", "");
    let c = autopeer::bird::conf::scan_text(&text, Path::new("bird.conf")).unwrap();
    assert_eq!(c.log_files, [PathBuf::from("/var/log/bird.log")]);
    assert_eq!(c.neighbors.len(), 1);
    assert!(c.neighbors[0].password);
    assert_eq!(
        c.templates
            .get("spokes")
            .unwrap()
            .password
            .as_ref()
            .unwrap()
            .expose(),
        "old-key"
    );
}

#[test]
fn nested_relative_includes() {
    let c = scan(&fx("nested/bird.conf"), &fx("nested/autopeer.conf")).unwrap();
    assert_eq!(c.files.len(), 3);
    assert!(c.files[2].ends_with("sub/inner.conf"));
    assert!(!c.includes_owned);
    assert!(c.templates.get("T").unwrap().has_neighbor_as);
    assert_eq!(c.neighbors[0].addr, ip("192.0.2.77"));
    assert_eq!(c.neighbors[0].line, 6);
}

#[test]
fn owned_include_may_be_missing() {
    let c = scan(
        &fx("owned-missing/bird.conf"),
        &fx("owned-missing/autopeer.conf"),
    )
    .unwrap();
    assert!(c.includes_owned);
    assert!(c.owned_include_missing);
    // A glob whose directory exists and would match the owned file.
    let c = scan(
        &fx("glob-owned/bird.conf"),
        &fx("glob-owned/peers/autopeer.conf"),
    )
    .unwrap();
    assert!(c.includes_owned);
    assert!(c.owned_include_missing);
    assert_eq!(c.files.len(), 1);
}

#[test]
fn broken_files_name_file_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "missing-include.conf",
            "missing-include.conf:3: unable to open included file",
        ),
        (
            "unterminated-string.conf",
            "unterminated-string.conf:3: unterminated string",
        ),
        (
            "unterminated-comment.conf",
            "unterminated-comment.conf:3: unterminated comment",
        ),
        (
            "unterminated-include.conf",
            "unterminated-include.conf:2: unterminated include",
        ),
        ("unclosed-brace.conf", "unclosed-brace.conf:2: unclosed `{`"),
        (
            "glob-nodir.conf",
            "glob-nodir.conf:2: unable to match pattern",
        ),
        ("cycle-a.conf", "cycle-b.conf:2: include cycle"),
        ("deep0.conf", "deep7.conf:2: include depth exceeds 8"),
        ("deep2.conf", "deep9.conf:2: include depth exceeds 8"),
    ];
    for (file, want) in cases {
        let err = scan(&fx(&format!("broken/{file}")), &fx("broken/autopeer.conf"))
            .expect_err(file)
            .to_string();
        assert!(err.contains(want), "{file}: got {err:?}, want {want:?}");
    }
    // Exactly 8 levels is fine (deep3 .. deep10), as in BIRD.
    let c = scan(&fx("broken/deep3.conf"), &fx("broken/autopeer.conf")).unwrap();
    assert_eq!(c.files.len(), 8);
}

#[test]
fn missing_main_file_is_an_error() {
    let e = scan(&fx("nope/bird.conf"), &fx("nope/autopeer.conf")).unwrap_err();
    assert!(matches!(e, ConfError::Read { .. }));
    assert!(e.to_string().contains("nope/bird.conf"));
}

/// The good fixtures are valid BIRD 2 (`bird -p`), so the scanner is tested
/// on real syntax. Required when CI=true.
#[test]
fn fixtures_are_valid_bird2() {
    if !common::bird::have_bird("bird -p of the fixtures") {
        return;
    }
    for f in ["debian-bird2/bird.conf", "nested/bird.conf"] {
        let out = common::bird::parse_only(&fx(f), &[]);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

proptest::proptest! {
    /// Hostile text never panics or hangs the scanner.
    #[test]
    fn scan_text_never_panics(text in "[ -~\n\t{}%;\"'/*#]{0,300}") {
        let _ = autopeer::bird::conf::scan_text(&text, Path::new("x"));
    }

    #[test]
    fn config_never_panics(text in "[ -~\n]{0,200}") {
        let _ = autopeer::config::Config::load_str(&text, Path::new("/nonexistent"));
    }
}
