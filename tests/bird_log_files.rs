//! The daemon follows BIRD's own log files (bird.conf's `log "FILE"`)
//! across a reconfiguration, with a real bird2 on loopback: an operator
//! moves BIRD's log to a new file and runs `birdc configure`; autopeer
//! (which watches bird.conf) tails the new file, trusts its lines as
//! BIRD's, stops trusting the old file (still listed in `[sources] logs`,
//! so still tailed, now as a shared file), stops tailing a former BIRD
//! file nobody lists, and says so in its log.
//!
//! Needs root and bird2; with CI=true it fails when it cannot run,
//! elsewhere it skips with a one-line reason.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::bird::{free_port, passive_clients_conf, RealBird};
use common::daemon::{autopeer, Daemon};

const LIMIT: Duration = Duration::from_secs(20);

fn knock(path: &Path, addr: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address {addr} (port 47271)").unwrap();
}

/// Waits until `file` contains `what`; panics with `context()` after LIMIT.
fn wait_for(file: &Path, what: &str, context: impl Fn() -> String) {
    let deadline = Instant::now() + LIMIT;
    while !std::fs::read_to_string(file)
        .unwrap_or_default()
        .contains(what)
    {
        assert!(
            Instant::now() < deadline,
            "no {what:?} in {} within {LIMIT:?}:\n{}",
            file.display(),
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The files the daemon `pid` has open.
fn open_files(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect()
}

/// `autopeer show sources`' marks: (verified|unverified, path), sorted.
fn marks(d: &Path) -> Vec<(String, PathBuf)> {
    let (code, out) = autopeer(&d.join("autopeer.ctl"), &["show", "sources"]);
    assert_eq!(code, 0, "{out}");
    let mut v: Vec<(String, PathBuf)> = out
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            ["source", mark, path] => Some((mark.to_string(), PathBuf::from(path))),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn mark(m: &str, p: &Path) -> (String, PathBuf) {
    (m.to_string(), p.to_path_buf())
}

/// Points bird.conf's `log` at `log` and has BIRD load it.
fn move_birds_log(d: &Path, port: u16, log: &Path) {
    let conf = passive_clients_conf(d, port, &d.join("autopeer.conf")).replace(
        &format!("log \"{}/bird.log\" all;", d.display()),
        &format!("log \"{}\" all;", log.display()),
    );
    assert!(conf.contains(&log.display().to_string()));
    std::fs::write(d.join("bird.conf"), conf).unwrap();
    let out = std::process::Command::new("birdc")
        .arg("-s")
        .arg(d.join("bird.ctl"))
        .arg("configure")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Reconfigured"), "birdc configure: {text}");
}

#[test]
fn a_new_bird_log_file_is_tailed_after_configure() {
    if !common::bird::have_bird("bird log files test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    std::fs::write(d.join("autopeer.conf"), "").unwrap();
    let conf = passive_clients_conf(d, port, &d.join("autopeer.conf"));
    let _bird = RealBird::start(d, &conf);
    let dd = d.display();
    std::fs::write(
        d.join("autopeer.toml"),
        format!(
            r#"[bird]
socket = "{dd}/bird.ctl"
config = "{dd}/bird.conf"
include = "{dd}/autopeer.conf"
keyring = "off"

[agent]
socket = "{dd}/autopeer.ctl"
state = "{dd}/state.toml"
audit_log = "{dd}/audit.log"
batch = "0"

[sources]
logs = ["{dd}/bird.log"]
journal = "off"

[[group]]
name = "clients"
template = "CLIENTS"
prefixes = ["10.88.0.0/24"]
neighbor = "internal"
"#
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&d.join("autopeer.toml"), &d.join("daemon.log"))
        .ready(&d.join("autopeer.ctl"), LIMIT);
    let audit = d.join("audit.log");
    let ctx = || {
        format!(
            "audit:\n{}\ndaemon:\n{}",
            std::fs::read_to_string(&audit).unwrap_or_default(),
            daemon.log_text()
        )
    };
    let admitted = |a: &str| format!("adding neighbor {a} to group clients (via bird-log)");

    // BIRD's log at start: trusted.
    assert_eq!(marks(d), [mark("verified", &d.join("bird.log"))]);
    knock(&d.join("bird.log"), "10.88.0.2");
    wait_for(&audit, &admitted("10.88.0.2"), ctx);

    // BIRD now logs to new.log (created by BIRD at `configure`).
    let new = d.join("new.log");
    move_birds_log(d, port, &new);
    wait_for(&d.join("daemon.log"), "BIRD's log files changed", ctx);
    let log = daemon.log_text();
    assert!(
        log.contains(&format!("added={}", new.display())),
        "the change is named: {log}"
    );
    knock(&new, "10.88.0.3");
    wait_for(&audit, &admitted("10.88.0.3"), ctx);
    // bird.log is still listed in [sources] logs, so still tailed, but
    // BIRD no longer writes it: a line there is a shared file's now.
    knock(&d.join("bird.log"), "10.88.0.4");
    wait_for(
        &audit,
        "refusing neighbor 10.88.0.4: unverified source syslog",
        ctx,
    );
    assert_eq!(
        marks(d),
        [
            mark("unverified", &d.join("bird.log")),
            mark("verified", &new)
        ]
    );
    assert!(
        open_files(daemon.pid()).contains(&new),
        "new.log is open: {:?}",
        open_files(daemon.pid())
    );

    // Moved again: new.log, which nobody lists, is no longer tailed.
    let third = d.join("third.log");
    move_birds_log(d, port, &third);
    wait_for(
        &d.join("daemon.log"),
        &format!("removed={}", new.display()),
        ctx,
    );
    knock(&third, "10.88.0.5");
    wait_for(&audit, &admitted("10.88.0.5"), ctx);
    assert!(
        !open_files(daemon.pid()).contains(&new),
        "new.log is closed: {:?}",
        open_files(daemon.pid())
    );
    knock(&new, "10.88.0.6");
    knock(&third, "10.88.0.7");
    wait_for(&audit, &admitted("10.88.0.7"), ctx);
    assert!(!ctx().contains("10.88.0.6"), "{}", ctx());
    assert_eq!(
        marks(d),
        [
            mark("unverified", &d.join("bird.log")),
            mark("verified", &third)
        ]
    );
    daemon.stop();
}
