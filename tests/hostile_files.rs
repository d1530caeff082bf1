//! The real `autopeer` binary against files that another account (BIRD's
//! `bird`, played by uid 65534 in a directory it owns) put where autopeer
//! reads: a FIFO as `password_file`, a FIFO matched by an include glob in
//! bird.conf, a FIFO as the only tailed log, a FIFO as autopeer's own
//! include. Opening a FIFO for reading blocks until a writer comes, so
//! each of these used to hang `check` or the daemon. Every child runs under a deadline and is killed by its pid
//! when it overruns, so a regression fails instead of hanging.
//!
//! Needs root (for `setpriv`); with CI=true its absence fails the test,
//! elsewhere the test skips with a one-line reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::attacker::{as_attacker, attackers_dir, can_switch_user, unjam};
use common::daemon::{autopeer, Daemon};
use common::lab::read;

/// How long a `check` may take here: it reads a few small files.
const CHECK_DEADLINE: Duration = Duration::from_secs(20);

/// A bird.conf with the template the group uses, plus `extra`.
fn write_bird_conf(dir: &Path, extra: &str) -> PathBuf {
    let conf = dir.join("bird.conf");
    std::fs::write(
        &conf,
        format!(
            "router id 10.0.0.1;\nprotocol device {{ }}\ntemplate bgp CLIENTS {{\n  local as 65001;\n  ipv4 {{ import none; export none; }};\n}}\n{extra}"
        ),
    )
    .unwrap();
    conf
}

/// autopeer.toml in `dir`, with the owned include at DIR/autopeer.conf;
/// `group_extra` goes into the one group.
fn write_config(dir: &Path, bird_conf: &Path, log: &Path, group_extra: &str) -> PathBuf {
    write_config_with(dir, bird_conf, &dir.join("autopeer.conf"), log, group_extra)
}

fn write_config_with(
    dir: &Path,
    bird_conf: &Path,
    include: &Path,
    log: &Path,
    group_extra: &str,
) -> PathBuf {
    let d = dir.display();
    let config = dir.join("autopeer.toml");
    std::fs::write(
        &config,
        format!(
            r#"[bird]
socket = "{d}/bird.ctl"
config = "{conf}"
include = "{include}"
keyring = "off"

[agent]
socket = "{d}/autopeer.ctl"
state = "{d}/state.toml"
audit_log = "{d}/audit.log"

[sources]
logs = ["{log}"]

[[group]]
name = "clients"
template = "CLIENTS"
prefixes = ["10.88.0.0/24"]
neighbor = "internal"
{group_extra}
"#,
            conf = bird_conf.display(),
            include = include.display(),
            log = log.display(),
        ),
    )
    .unwrap();
    config
}

/// `autopeer -c CONFIG check` under [`CHECK_DEADLINE`]: exit code and
/// output (see [`bounded`]).
fn check(config: &Path, fifo: &Path) -> (i32, String) {
    let (status, out) = bounded(config, "check", fifo);
    (status.code().unwrap_or(-1), out)
}

/// `autopeer -c CONFIG COMMAND` under [`CHECK_DEADLINE`]: its exit status
/// and output. On overrun the child is killed by its pid, `fifo` is
/// unjammed, and the test fails.
fn bounded(config: &Path, command: &str, fifo: &Path) -> (std::process::ExitStatus, String) {
    let out_path = config.with_file_name(format!("{command}.out"));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_autopeer"))
        .arg("-c")
        .arg(config)
        .arg(command)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + CHECK_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, read(&out_path));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            unjam(fifo);
            panic!(
                "autopeer {command} still running after {CHECK_DEADLINE:?} (blocked on {}?): {}",
                fifo.display(),
                read(&out_path)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fifo_as_password_file_is_a_problem_not_a_hang() {
    if !can_switch_user() {
        return;
    }
    let ours = tempfile::tempdir().unwrap();
    let etc = attackers_dir();
    let key = etc.path().join("clients.key");
    as_attacker(&format!("mkfifo {}", key.display()));
    let bird_conf = write_bird_conf(ours.path(), "");
    let config = write_config(
        ours.path(),
        &bird_conf,
        &ours.path().join("bird.log"),
        &format!("password_file = \"{}\"", key.display()),
    );
    let (code, out) = check(&config, &key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("password_file") && out.contains(&key.display().to_string()),
        "{out}"
    );
    assert!(out.contains("FIFO"), "{out}");
}

#[test]
fn fifo_matched_by_an_include_glob_is_a_problem_not_a_hang() {
    if !can_switch_user() {
        return;
    }
    let ours = tempfile::tempdir().unwrap();
    let conf_d = attackers_dir();
    let fifo = conf_d.path().join("x.conf");
    as_attacker(&format!("mkfifo {}", fifo.display()));
    let bird_conf = write_bird_conf(
        ours.path(),
        &format!("include \"{}/*.conf\";\n", conf_d.path().display()),
    );
    let config = write_config(ours.path(), &bird_conf, &ours.path().join("bird.log"), "");
    let (code, out) = check(&config, &fifo);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&fifo.display().to_string()) && out.contains("FIFO"),
        "{out}"
    );
}

#[test]
fn daemon_with_a_fifo_as_its_only_log_starts_and_stops_on_sigterm() {
    if !can_switch_user() {
        return;
    }
    let ours = tempfile::tempdir().unwrap();
    let logs = attackers_dir();
    let fifo = logs.path().join("bird.log");
    as_attacker(&format!("mkfifo {}", fifo.display()));
    let bird_conf = write_bird_conf(ours.path(), "");
    let config = write_config(ours.path(), &bird_conf, &fifo, "");
    let daemon_log = ours.path().join("daemon.log");
    let socket = ours.path().join("autopeer.ctl");
    let daemon = Daemon::start(&config, &daemon_log);
    // Ready means the control socket answers; the old tail never got there.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sources = None;
    while Instant::now() < deadline {
        let (code, out) = autopeer(&socket, &["show", "sources"]);
        if code == 0 && out.contains("files_refused") {
            sources = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if sources.is_none() {
        // Let a blocked open return, so SIGTERM meets a daemon that can act on it.
        unjam(&fifo);
    }
    // SIGTERM must end it, cleanly, within Daemon::stop's deadline.
    daemon.stop();
    let log = read(&daemon_log);
    let sources = sources.unwrap_or_else(|| panic!("daemon never answered `show sources`:\n{log}"));
    let refused = sources
        .lines()
        .find(|l| l.contains("files_refused"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<u64>().ok());
    assert_eq!(refused, Some(1), "{sources}");
    assert!(
        log.contains("not tailing this log") && log.contains("FIFO"),
        "{log}"
    );
}

#[test]
fn daemon_refuses_a_fifo_at_its_own_include_and_exits() {
    if !can_switch_user() {
        return;
    }
    let ours = tempfile::tempdir().unwrap();
    let etc = attackers_dir();
    let include = etc.path().join("autopeer.conf");
    as_attacker(&format!("mkfifo {}", include.display()));
    let bird_conf = write_bird_conf(
        ours.path(),
        &format!("include \"{}\";\n", include.display()),
    );
    let log = ours.path().join("bird.log");
    let config = write_config_with(ours.path(), &bird_conf, &include, &log, "");
    let (status, out) = bounded(&config, "run", &include);
    assert!(!status.success(), "{out}");
    assert!(
        out.contains(&include.display().to_string()) && out.contains("FIFO"),
        "{out}"
    );
}

/// A start error says its cause once: the error's own text ends with it
/// and it is also the error's source, which the message used to repeat.
#[test]
fn a_start_error_names_its_cause_once() {
    let ours = tempfile::tempdir().unwrap();
    let include = ours.path().join("autopeer.conf");
    std::fs::create_dir(&include).unwrap();
    let bird_conf = write_bird_conf(ours.path(), "");
    let log = ours.path().join("bird.log");
    let config = write_config_with(ours.path(), &bird_conf, &include, &log, "");
    let (status, out) = bounded(&config, "run", &include);
    assert_eq!(status.code(), Some(2), "{out}");
    let said: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("autopeer: "))
        .collect();
    assert_eq!(
        said,
        [format!(
            "autopeer: daemon failed: cannot read {}: is a directory, not a regular file; autopeer does not open it",
            include.display()
        )],
        "{out}"
    );
}
