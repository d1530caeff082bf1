//! Replays every saved fuzz input (`fixtures/fuzz/TARGET/*`) through the
//! same property its cargo-fuzz target checks: `fuzz/src/lib.rs` is
//! included here by path, so plain `cargo test` on stable re-checks every
//! crash ever found (and the seeds kept beside them). It must not fuzz,
//! need nightly, or read anything outside `fixtures/fuzz/` and `fuzz/`.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod props;

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Every input of every target holds its property; each target has at
/// least one input, so no target's replay is empty.
#[test]
fn every_saved_input_holds_its_property() {
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, check) in props::TARGETS {
        let dir = root().join("fixtures/fuzz").join(name);
        let files = inputs(&dir);
        assert!(!files.is_empty(), "{} has no inputs", dir.display());
        for f in files {
            let data = fs::read(&f).expect("read input");
            total += 1;
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name}: {}: {msg}", f.display()));
            }
        }
    }
    assert!(total >= props::TARGETS.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `fixtures/fuzz/` has a directory only for known targets, and every
/// target in the shared table is a cargo-fuzz binary of `fuzz/Cargo.toml`.
#[test]
fn targets_match_the_fuzz_crate() {
    let names: Vec<&str> = props::TARGETS.iter().map(|(n, _)| *n).collect();
    for e in fs::read_dir(root().join("fixtures/fuzz")).expect("fixtures/fuzz") {
        let e = e.expect("entry");
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(
            names.contains(&n.as_str()),
            "fixtures/fuzz/{n} is no target"
        );
    }
    let manifest = fs::read_to_string(root().join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
    for n in &names {
        assert!(
            manifest.contains(&format!("name = \"{n}\"")),
            "{n} is not a [[bin]] of fuzz/Cargo.toml"
        );
        assert!(
            root().join(format!("fuzz/fuzz_targets/{n}.rs")).is_file(),
            "fuzz/fuzz_targets/{n}.rs missing"
        );
    }
}

/// The deeper branches of the properties run on real inputs: a log line
/// that yields a sighting, an include file that parses to peers (so the
/// render round trip runs), a command that parses (so its line is re-parsed).
#[test]
fn properties_reach_their_checks() {
    use autopeer::sources::lines::{parse_line, LineOutcome};
    let line = "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address fe80::1%vlab0 (port 47271)";
    let Some(LineOutcome::Sighting(s)) = Some(parse_line(line, std::time::SystemTime::UNIX_EPOCH))
    else {
        panic!("fixture line gives no sighting");
    };
    assert_eq!(s.iface.as_deref(), Some("vlab0"));
    props::log_lines(line.as_bytes());

    let include = fs::read_to_string(root().join("fixtures/fuzz/include_parse/seed-rendered.conf"))
        .expect("owned include fixture");
    assert!(!autopeer::bird::render::parse(&include)
        .expect("parses")
        .is_empty());
    props::include_parse(include.as_bytes());

    assert!(autopeer::ctl::proto::parse_command("add fe80::1%vti3 group clients").is_ok());
    props::ctl_command(b"add fe80::1%vti3 group clients");
}
