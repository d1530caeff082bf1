//! The other account of a hostile-file test: uid/gid 65534 (`nobody`)
//! through `setpriv`, in a directory it owns, as BIRD's `bird` account
//! owns `/etc/bird` and `/var/log/bird`. Needs root; with CI=true its
//! absence fails the test, elsewhere the test skips with a one-line reason.

use std::path::Path;

use super::prereq;

pub const NOBODY: u32 = 65534;

/// True when the attacker's uid can be used; else skip or, with
/// `CI=true`, fail ([`prereq::runnable`]).
pub fn can_switch_user() -> bool {
    prereq::runnable(
        "hostile-file test",
        prereq::root("setpriv to another uid needs it")
            .or_else(|| prereq::file("/usr/bin/setpriv", "apt install util-linux")),
    )
}

/// A directory that uid 65534 owns (it plays `/var/log/bird` or `/etc/bird`).
pub fn attackers_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("autopeer-attacker-")
        .tempdir_in("/tmp")
        .unwrap();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    dir
}

/// Runs `script` with `sh -c` as uid/gid 65534 without supplementary groups.
pub fn as_attacker(script: &str) {
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Releases a reader blocked in `open` of `fifo` (the bug this guards).
pub fn unjam(fifo: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo);
}
