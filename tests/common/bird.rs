//! `RealBird`: runs the real `/usr/sbin/bird` in the foreground on a temp
//! directory (config, control socket, pid file, log) and kills it by pid on
//! drop, even when the test fails.
//!
//! Loopback only: configs built with [`loopback_conf`] bind BGP to 127.0.0.1
//! on a high port and name 127.0.0.x neighbors that do not exist.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The BIRD binary these tests drive.
pub const BIRD: &str = "/usr/sbin/bird";

/// True when real-BIRD tests can run. With `CI=true` a missing prerequisite
/// is a failure (panic); otherwise the test skips with a one-line reason.
pub fn require_bird() -> bool {
    let reason = if !rustix::process::geteuid().is_root() {
        Some("not root".to_owned())
    } else if !Path::new(BIRD).exists() {
        Some(format!("{BIRD} missing (apt install bird2)"))
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but real-BIRD test cannot run: {r}")
        }
        Some(r) => {
            eprintln!("skipping real-BIRD test: {r}");
            false
        }
    }
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

/// A running bird, killed by pid on drop.
pub struct RealBird {
    pub dir: PathBuf,
    pub ctl: PathBuf,
    pub conf: PathBuf,
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
        let conf = dir.join("bird.conf");
        let ctl = dir.join("bird.ctl");
        let pid = dir.join("bird.pid");
        fs::write(&conf, conf_text).expect("write bird.conf");
        let stderr = fs::File::create(dir.join("bird.stderr")).expect("stderr file");
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
            .arg(&conf)
            .arg("-s")
            .arg(&ctl)
            .arg("-P")
            .arg(&pid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn bird");
        let mut bird = RealBird {
            dir: dir.to_owned(),
            ctl,
            conf,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = bird.child.try_wait() {
                panic!(
                    "bird exited early ({status}): {}",
                    fs::read_to_string(dir.join("bird.stderr")).unwrap_or_default()
                );
            }
            if std::os::unix::net::UnixStream::connect(&bird.ctl).is_ok() {
                return bird;
            }
            if Instant::now() > deadline {
                let log = bird.log();
                drop(bird);
                panic!("bird control socket did not come up; log: {log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid of the bird we started.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// BIRD's log file so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default()
    }
}

impl Drop for RealBird {
    fn drop(&mut self) {
        // SIGKILL to our own child's pid: BIRD may ignore SIGTERM (fact 7).
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.ctl);
        let _ = fs::remove_file(self.dir.join("bird.pid"));
    }
}
