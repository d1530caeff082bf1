//! `RealBird`: runs the real `/usr/sbin/bird` in the foreground on a temp
//! directory (config, control socket, pid file, log) and kills it by pid on
//! drop, even when the test fails. Two layouts ([`BirdFiles`]): tests keep
//! everything in one directory; benchmarks lay it out as on a router, with
//! BIRD's log outside the config directory that autopeer watches.
//!
//! Loopback only: configs built with [`loopback_conf`] bind BGP to 127.0.0.1
//! on a high port and name 127.0.0.x neighbors that do not exist.

use std::fs;
use std::path::{Path, PathBuf};

use super::prereq;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The BIRD binary these tests drive.
pub const BIRD: &str = "/usr/sbin/bird";

/// True when real-BIRD tests can run (root and bird2); else skip or, with
/// `CI=true`, fail ([`prereq::runnable`]).
pub fn require_bird() -> bool {
    prereq::runnable(
        "real-BIRD test",
        prereq::root("BIRD binds and is killed by pid").or_else(missing_bird),
    )
}

/// True when `bird -p` can run (bird2 installed, no root needed); else
/// skip or, with `CI=true`, fail.
pub fn have_bird(what: &str) -> bool {
    prereq::runnable(what, missing_bird())
}

/// None when bird2's `bird` is installed.
pub fn missing_bird() -> Option<String> {
    prereq::file(BIRD, "apt install bird2")
}

/// `[PREFIX...] bird -p -c CONF`: BIRD parses the config and exits (0
/// when it is valid, else `bird: FILE:LINE:COL message` on stderr). It
/// starts no daemon, so there is nothing to reap.
pub fn parse_only(conf: &Path, prefix: &[&str]) -> std::process::Output {
    let mut cmd = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(BIRD);
            c
        }
        None => Command::new(BIRD),
    };
    cmd.arg("-p")
        .arg("-c")
        .arg(conf)
        .output()
        .expect("run bird -p")
}

/// A BGP port nobody else in this test run uses (base from our pid).
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20000 + (std::process::id() % 2000) as u16 * 10;
    base + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A loopback-only bird2 config: router id 10.0.0.1, a device protocol,
/// BGP protocols `peer_a` (127.0.0.2) and `peer_b` (127.0.0.3) from template
/// `peers` bound to 127.0.0.1:`port`, and `include "DIR/peers/*.conf"`.
pub fn loopback_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"log "{d}/bird.log" all;
router id 10.0.0.1;
protocol device {{ }}
template bgp peers {{
  local 127.0.0.1 port {port} as 65001;
  strict bind yes;
  multihop;
  connect delay time 1;
  ipv4 {{ import none; export none; }};
}}
protocol bgp peer_a from peers {{
  description "first loopback peer";
  neighbor 127.0.0.2 port {port} as 65002;
}}
protocol bgp peer_b from peers {{
  neighbor 127.0.0.3 port {port} as 65003;
}}
include "{d}/peers/*.conf";
"#
    )
}

/// A loopback-only bird2 config whose template `CLIENTS` (bound to
/// 127.0.0.1:`port`) is `passive on`, so no admitted neighbor is ever
/// dialed; BIRD logs to DIR/bird.log and includes `include`.
pub fn passive_clients_conf(dir: &Path, port: u16, include: &Path) -> String {
    let d = dir.display();
    let inc = include.display();
    format!(
        r#"log "{d}/bird.log" all;
router id 10.0.0.1;
protocol device {{ }}
template bgp CLIENTS {{
  local 127.0.0.1 port {port} as 65001;
  strict bind yes;
  multihop;
  passive on;
  ipv4 {{ import none; export none; }};
}}
include "{inc}";
"#
    )
}

/// Where one BIRD keeps its files.
#[derive(Debug, Clone)]
pub struct BirdFiles {
    /// The directory the layout is rooted at.
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub ctl: PathBuf,
    pub pid: PathBuf,
    /// BIRD's log file (named by the config's `log "FILE"`).
    pub log: PathBuf,
    /// BIRD's stderr (start-up errors).
    pub stderr: PathBuf,
}

impl BirdFiles {
    /// Everything in `dir`: bird.conf, bird.ctl, bird.pid, bird.log,
    /// bird.stderr (the tests' layout).
    pub fn flat(dir: &Path) -> BirdFiles {
        BirdFiles {
            dir: dir.to_owned(),
            conf: dir.join("bird.conf"),
            ctl: dir.join("bird.ctl"),
            pid: dir.join("bird.pid"),
            log: dir.join("bird.log"),
            stderr: dir.join("bird.stderr"),
        }
    }

    /// As on a router (the benchmarks' layout), created here: `etc/` holds
    /// bird.conf and the owned include and nothing that changes on its own
    /// (autopeer watches it), `log/` BIRD's log, `run/` the socket, pid
    /// file and stderr.
    pub fn router(root: &Path) -> BirdFiles {
        for sub in ["etc", "log", "run"] {
            fs::create_dir_all(root.join(sub)).expect("create layout dir");
        }
        BirdFiles {
            dir: root.to_owned(),
            conf: root.join("etc/bird.conf"),
            ctl: root.join("run/bird.ctl"),
            pid: root.join("run/bird.pid"),
            log: root.join("log/bird.log"),
            stderr: root.join("run/bird.stderr"),
        }
    }
}

/// A running bird, killed by pid on drop.
pub struct RealBird {
    pub dir: PathBuf,
    pub ctl: PathBuf,
    pub conf: PathBuf,
    files: BirdFiles,
    child: Child,
}

impl RealBird {
    /// Write `conf_text` to DIR/bird.conf, start
    /// `bird -f -c DIR/bird.conf -s DIR/bird.ctl -P DIR/bird.pid` and wait
    /// (up to 10 s) until its control socket accepts connections.
    pub fn start(dir: &Path, conf_text: &str) -> RealBird {
        Self::start_with(dir, conf_text, &[])
    }

    /// [`RealBird::start`] with BIRD run through `prefix` (a program that
    /// execs its arguments in place, such as `nsenter -t PID -m --`, so that
    /// the child's pid stays BIRD's).
    pub fn start_with(dir: &Path, conf_text: &str, prefix: &[&str]) -> RealBird {
        fs::create_dir_all(dir.join("peers")).expect("create peers dir");
        let files = BirdFiles::flat(dir);
        fs::write(&files.conf, conf_text).expect("write bird.conf");
        Self::launch(files, prefix, Duration::from_secs(10))
    }

    /// Start `[PREFIX...] bird -f` on `files` (bird.conf already written)
    /// and wait up to `wait` until its control socket accepts connections.
    /// Panics (BIRD killed by drop) when it exits or does not come up.
    pub fn launch(files: BirdFiles, prefix: &[&str], wait: Duration) -> RealBird {
        let stderr = fs::File::create(&files.stderr).expect("stderr file");
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIRD);
                c
            }
            None => Command::new(BIRD),
        };
        let child = cmd
            .arg("-f")
            .arg("-c")
            .arg(&files.conf)
            .arg("-s")
            .arg(&files.ctl)
            .arg("-P")
            .arg(&files.pid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn bird");
        let mut bird = RealBird {
            dir: files.dir.clone(),
            ctl: files.ctl.clone(),
            conf: files.conf.clone(),
            files,
            child,
        };
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = bird.child.try_wait() {
                panic!(
                    "bird exited early ({status}): {}",
                    fs::read_to_string(&bird.files.stderr).unwrap_or_default()
                );
            }
            if std::os::unix::net::UnixStream::connect(&bird.ctl).is_ok() {
                return bird;
            }
            if Instant::now() > deadline {
                let log = bird.log();
                drop(bird);
                panic!("bird control socket did not come up in {wait:?}; log: {log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the bird we started.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// BIRD's log file so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.files.log).unwrap_or_default()
    }

    /// How often BIRD was sent exactly `cmd` (needs `debug commands 2`
    /// in bird.conf: every CLI command is logged as `<TRACE> CLI: cmd`).
    pub fn commands(&self, cmd: &str) -> usize {
        self.log().matches(&format!("<TRACE> CLI: {cmd}\n")).count()
    }
}

impl Drop for RealBird {
    fn drop(&mut self) {
        // SIGKILL to our own child's pid: BIRD may ignore SIGTERM (docs/facts.md fact 7).
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.ctl);
        let _ = fs::remove_file(&self.files.pid);
    }
}
