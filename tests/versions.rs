//! What differs between BIRD versions, without a lab: config findings that
//! depend on the version's config language. The version matrix with real
//! daemons is tests/lab_versions.rs.

use std::path::Path;

use autopeer::check::{check, Severity};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
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
    write(dir.path(), "autopeer.conf", "");
    let bird = write(
        dir.path(),
        "bird.conf",
        &format!(
            "log fixed \"{d}/bird.ring\" 65536 all;\n\
             log \"{d}/bird.log\" all;\n\
             router id 10.0.0.1;\n\
             template bgp CLIENTS {{ local as 65000; neighbor internal; }}\n\
             include \"{d}/autopeer.conf\";\n"
        ),
    );
    let conf = write(
        dir.path(),
        "autopeer.toml",
        &format!(
            "[bird]\nsocket = \"{d}/no-bird.ctl\"\nconfig = \"{}\"\ninclude = \"{d}/autopeer.conf\"\n\
             [sources]\nlogs = [\"{d}/bird.ring\", \"{d}/bird.log\"]\n\
             [[group]]\nname = \"clients\"\ntemplate = \"CLIENTS\"\nprefixes = [\"10.88.0.0/24\"]\n",
            bird.display()
        ),
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
