//! End to end, with real BIRD in network namespaces (bird/lab): which
//! evidence may admit a peer (docs/facts.md § Trust). An unprivileged user
//! (uid 65534, via setpriv) appends to a shared syslog-format file that
//! `[sources] logs` lists: a `logger -t bird` style line, a line in BIRD's
//! own file format, and a forged netfilter `kernel:` line. With the default
//! `[sources] unverified = "refuse"` all three are refused with their own
//! reason, the audit line names the real source (`syslog`, never
//! `bird-log`), and nothing reaches the include or BIRD, while a real
//! client's knock in BIRD's own log file is admitted `(via bird-log)` and
//! comes up. With `unverified = "admit"` the same lines admit, and say so.
//! For an MD5-keyed group BIRD's line from the shared file admits without
//! the opt-in; the netfilter line still does not.
//!
//! Needs root, bird2, iproute2 and setpriv. With CI=true a missing
//! prerequisite fails the test; elsewhere it skips with a one-line reason.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemon::{autopeer, autopeer_check as check, Daemon};
use common::lab::{lab_allowed, read, wait_for_dump, write_config, Lab, LAB_TOOLS};

/// The uid and gid the forger runs as (nobody).
const NOBODY: &str = "65534";

fn allowed() -> bool {
    lab_allowed(
        &[LAB_TOOLS, &["setpriv"]].concat(),
        "namespace lab trust test",
    )
}

/// Appends `lines` to `file` as uid/gid 65534 with no groups, as any
/// local user could (the shell gets the text as arguments, not as code).
fn forge(file: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
            "sh",
            "-c",
            r#"printf '%s' "$1" >> "$2""#,
            "forge",
        ])
        .arg(&text)
        .arg(file)
        .output()
        .expect("run setpriv");
    assert!(
        out.status.success(),
        "the unprivileged append failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `logger -t bird` leaves in a syslog file (RFC 3164).
fn logger_line(addr: &str) -> String {
    format!("Nov 28 09:00:00 rr bird: BGP: Unexpected connect from unknown address {addr} (port 1)")
}

/// BIRD's own log-file format, written into the shared file.
fn bird_format_line(addr: &str) -> String {
    format!(
        "2026-11-28 09:00:00.000 <WARN> BGP: Unexpected connect from unknown address {addr} (port 1)"
    )
}

/// A netfilter LOG line for a SYN to port 179, as the kernel prints it
/// for a packet whose source anyone can spoof.
fn netfilter_line(addr: &str) -> String {
    format!(
        "Nov 28 09:00:00 rr kernel: [ 6942.234111] BGP-SYN: IN=eth0 OUT= SRC={addr} DST=10.88.0.1 \
         LEN=60 PROTO=TCP SPT=40000 DPT=179 WINDOW=64240 RES=0x00 SYN URGP=0 "
    )
}

/// The lab's config with `shared` as a second log source and the given
/// `[sources] unverified` line (empty: the default).
fn config_with(lab: &Lab, shared: &Path, unverified: &str) -> PathBuf {
    config_keyring(lab, shared, unverified, "off")
}

/// [`config_with`], with `[bird] keyring` as given.
fn config_keyring(lab: &Lab, shared: &Path, unverified: &str, keyring: &str) -> PathBuf {
    let path = write_config(lab, keyring, false);
    let text = read(&path);
    let logs = format!("logs = [\"{}\"]", lab.get("RR_LOG"));
    assert!(text.contains(&logs), "{text}");
    let text = text.replace(
        &logs,
        &format!(
            "logs = [\"{}\", \"{}\"]\n{unverified}",
            lab.get("RR_LOG"),
            shared.display()
        ),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The lab's dump with the audit log, the daemon's output, the include and
/// the shared file.
fn dump_files(lab: &Lab, shared: &Path) -> String {
    let d = lab.dir.path();
    lab.dump(&[
        ("audit", d.join("audit.log")),
        ("daemon", d.join("autopeer.out")),
        ("include", lab.path("RR_INCLUDE")),
        ("shared", shared.to_path_buf()),
    ])
}

/// Starts the daemon and waits until its control socket answers `status`
/// (then the tail is live; a stale socket file of an earlier run does not
/// answer).
fn start_daemon(config: &Path, log: &Path, sock: &Path, dump: &dyn Fn() -> String) -> Daemon {
    let daemon = Daemon::start(config, log);
    wait_for_dump("the control socket", 20, dump, || {
        autopeer(sock, &["status"]).0 == 0
    });
    daemon
}

/// Client c2 knocks: BIRD's own log file admits it `(via bird-log)` and it
/// comes up.
fn birds_own_log_admits(lab: &Lab, audit: &Path, dump: &dyn Fn() -> String) {
    lab.start("c2");
    assert!(
        lab.established("clients_10_88_0_2", 60),
        "clients_10_88_0_2 not Established\n{}",
        dump()
    );
    assert!(
        read(audit).contains("adding neighbor 10.88.0.2 to group clients (via bird-log)"),
        "{}",
        dump()
    );
}

fn refusal(addr: &str, via: &str) -> String {
    format!(
        "refusing neighbor {addr}: unverified source {via} \
         (set [sources] unverified = \"admit\" to accept it) (via {via})"
    )
}

/// A shared syslog file any local user can append to (mode 0666), in a
/// directory they can reach (the lab's own directory is root's, mode 0700).
fn shared_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("aptrust")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shared = dir.path().join("syslog");
    std::fs::write(&shared, "").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o666)).unwrap();
    (dir, shared)
}

#[test]
fn unverified_lines_are_refused_unless_the_operator_opts_in() {
    if !allowed() {
        return;
    }
    let lab = Lab::up(&["--clients", "1", "--no-start"]);
    let d = lab.dir.path().to_path_buf();
    let audit = d.join("audit.log");
    let include = lab.path("RR_INCLUDE");
    let daemon_log = d.join("autopeer.out");
    let (_shared_dir, shared) = shared_file();

    let config = config_with(&lab, &shared, "");
    let dump = || dump_files(&lab, &shared);

    // `check` names the unverified source and what the default does.
    let (ok, report) = check(&config);
    assert!(ok, "autopeer check failed:\n{report}");
    assert!(
        report.lines().any(|l| l.contains("sources.logs[1]")
            && l.contains(&shared.display().to_string())
            && l.contains("unverified source")),
        "{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.contains("sources.unverified") && l.contains("\"refuse\"")),
        "{report}"
    );
    assert!(
        !report.contains("sources.logs[0]"),
        "BIRD's own log file is not unverified:\n{report}"
    );

    let daemon = start_daemon(&config, &daemon_log, &d.join("autopeer.ctl"), &dump);

    // The forger: three kinds of line for three addresses in the group.
    forge(
        &shared,
        &[
            logger_line("10.88.0.77"),
            bird_format_line("10.88.0.78"),
            netfilter_line("10.88.0.79"),
        ],
    );
    for (addr, via) in [
        ("10.88.0.77", "syslog"),
        ("10.88.0.78", "syslog"),
        ("10.88.0.79", "netfilter"),
    ] {
        let want = refusal(addr, via);
        wait_for_dump(&want, 30, &dump, || read(&audit).contains(&want));
    }
    // A real client knocks: BIRD's own log file still admits.
    birds_own_log_admits(&lab, &audit, &dump);
    let text = read(&audit);
    for addr in ["10.88.0.77", "10.88.0.78", "10.88.0.79"] {
        assert!(
            !text.contains(&format!("adding neighbor {addr} ")),
            "{}",
            dump()
        );
        assert!(!read(&include).contains(addr), "{}", dump());
    }
    let protocols = lab.birdc(&["show", "protocols"]);
    assert!(!protocols.contains("10_88_0_7"), "{protocols}\n{}", dump());
    daemon.stop();

    // The operator opts in: the same kinds of line now admit, and the
    // audit line says they were unverified.
    let config = config_with(&lab, &shared, "unverified = \"admit\"");
    let (_, report) = check(&config);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("warning: sources.unverified") && l.contains("\"admit\"")),
        "{report}"
    );
    let daemon = start_daemon(&config, &daemon_log, &d.join("autopeer.ctl"), &dump);
    forge(
        &shared,
        &[logger_line("10.88.0.77"), netfilter_line("10.88.0.79")],
    );
    for (addr, via) in [("10.88.0.77", "syslog"), ("10.88.0.79", "netfilter")] {
        let want = format!("adding neighbor {addr} to group clients (via {via}, unverified)");
        wait_for_dump(&want, 30, &dump, || read(&audit).contains(&want));
    }
    wait_for_dump("the opted-in peers in the include", 30, &dump, || {
        let text = read(&include);
        text.contains("10.88.0.77") && text.contains("10.88.0.79")
    });
    daemon.stop();
}

/// `K of W prefix key(s) installed` of the `Keyring IPv4: listener` line
/// of `show status` (what the roster knows of the keyring), if any.
fn v4_keys(status: &str) -> Option<(usize, usize)> {
    let line = status
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with("Keyring IPv4: listener"))?;
    let (_, tail) = line.rsplit_once("), ")?;
    let mut words = tail.split_whitespace();
    let keys = words.next()?.parse().ok()?;
    (words.next()? == "of").then_some(())?;
    let wanted = words.next()?.parse().ok()?;
    Some((keys, wanted))
}

/// A keyed group: BIRD's line relayed through the shared file admits (the
/// kernel let only a key holder finish the handshake BIRD logged), and says
/// so; a netfilter line for the same group does not (it is printed for a
/// bare SYN, before any key is checked).
#[test]
fn a_keyed_group_verifies_birds_line_but_not_a_netfilter_line() {
    if !allowed() {
        return;
    }
    let lab = Lab::up(&[
        "--clients",
        "1",
        "--password",
        "lab-trust-key",
        "--no-start",
    ]);
    let d = lab.dir.path().to_path_buf();
    let audit = d.join("audit.log");
    let include = lab.path("RR_INCLUDE");
    let daemon_log = d.join("autopeer.out");
    let sock = d.join("autopeer.ctl");
    let (_shared_dir, shared) = shared_file();
    let config = config_keyring(&lab, &shared, "", "auto");
    let dump = || dump_files(&lab, &shared);
    let daemon = start_daemon(&config, &daemon_log, &sock, &dump);
    // Admission sees the keyring through the roster: wait until the roster
    // reports every wanted prefix key installed.
    wait_for_dump("the keyring's report of installed keys", 30, &dump, || {
        // `show status` is the control socket's birdc command.
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&sock)
            .args(["show", "status"])
            .output()
            .unwrap();
        v4_keys(&String::from_utf8_lossy(&out.stdout)).is_some_and(|(k, w)| w > 0 && k >= w)
    });
    forge(
        &shared,
        &[logger_line("10.88.0.77"), netfilter_line("10.88.0.79")],
    );
    let admitted = "adding neighbor 10.88.0.77 to group clients \
                    (via syslog, unverified, group's MD5 key checked by the kernel)";
    wait_for_dump(admitted, 30, &dump, || read(&audit).contains(admitted));
    let refused = refusal("10.88.0.79", "netfilter");
    wait_for_dump(&refused, 30, &dump, || read(&audit).contains(&refused));
    wait_for_dump("10.88.0.77 in the include", 30, &dump, || {
        read(&include).contains("10.88.0.77")
    });
    assert!(!read(&include).contains("10.88.0.79"), "{}", dump());
    // A signing client's knock in BIRD's own log file is plain bird-log.
    birds_own_log_admits(&lab, &audit, &dump);
    daemon.stop();
}
