//! Shared pieces of the benchmark programs in `benches/`: the machine
//! line, a real bird2 on loopback (killed by pid on drop), the autopeer
//! daemon binary (killed by pid on drop), config text, BIRD polling and
//! percentiles.
//!
//! Benchmarks print figures; they never fail because something is slow.
//! They do fail (panic, after cleanup by the guards' `Drop`) when a
//! prerequisite is missing or the thing measured never happens.
//! Network traffic: none leaves the host; BIRD binds 127.0.0.1 on a high
//! port and its template is `passive on`, so the 10.x neighbors are never
//! dialed.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autopeer::bird::client::Connection;
use autopeer::bird::render::{self, Peer};

pub const BIRD: &str = "/usr/sbin/bird";
pub const BIRDC: &str = "/usr/sbin/birdc";
/// The autopeer daemon built with the bench (release) profile.
pub const AUTOPEER: &str = env!("CARGO_BIN_EXE_autopeer");

/// Panics unless we are root and bird2 is installed (a benchmark that
/// cannot measure must not print a figure).
pub fn require_root_and_bird() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this benchmark needs root (it runs bird)"
    );
    assert!(
        Path::new(BIRD).exists() && Path::new(BIRDC).exists(),
        "{BIRD} or {BIRDC} missing (apt install bird2)"
    );
}

/// `nproc`, `uname -r`, CPU model, `bird --version`, one line each.
pub fn print_machine() {
    let sh = |cmd: &str| -> String {
        Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map(|o| {
                let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                s.push_str(&String::from_utf8_lossy(&o.stderr));
                s.trim().to_owned()
            })
            .unwrap_or_else(|e| format!("({e})"))
    };
    println!("machine: nproc {}", sh("nproc"));
    println!("machine: kernel {}", sh("uname -r"));
    println!(
        "machine: cpu {}",
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-")
    );
    println!("machine: {}", sh(&format!("{BIRD} --version")));
}

/// A fresh directory under /tmp, removed on drop.
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("tempdir in /tmp")
}

/// A BGP port for this process (base from our pid, away from the tests').
pub fn port() -> u16 {
    30000 + (std::process::id() % 3000) as u16 * 10
}

/// The directory layout of one benchmark run under a temp root, as on a
/// router: `etc/` holds bird.conf and the owned include (and nothing that
/// changes on its own: autopeer watches it), `log/` BIRD's log and the
/// tailed file, `run/` the sockets, pid, state and audit files.
pub fn layout(root: &Path) {
    for sub in ["etc", "log", "run"] {
        fs::create_dir_all(root.join(sub)).expect("create layout dir");
    }
}

/// bird.conf for the benchmarks (`ROOT/etc/bird.conf`): BIRD's log file
/// `ROOT/log/bird.log` with `debug commands 2` (every CLI command is
/// logged as `<TRACE> CLI: cmd`), template `CLIENTS` bound to
/// 127.0.0.1:`port` and `passive on` (nothing is dialed), and
/// `include "ROOT/etc/autopeer.conf"`.
pub fn bird_conf(root: &Path, port: u16) -> String {
    let d = root.display();
    format!(
        r#"log "{d}/log/bird.log" all;
debug commands 2;
router id 10.0.0.1;
protocol device {{ }}
template bgp CLIENTS {{
  local 127.0.0.1 port {port} as 65001;
  strict bind yes;
  multihop;
  passive on;
  ipv4 {{ import none; export none; }};
}}
include "{d}/etc/autopeer.conf";
"#
    )
}

/// autopeer.toml for a daemon on `root` (BIRD's socket `bird_ctl`), one
/// group `clients` over `prefix`, no rate limit, `max_peers` as given,
/// tailing `log` (`[sources] unverified = "admit"`: `log` need not be BIRD's).
pub fn autopeer_toml(
    root: &Path,
    bird_ctl: &Path,
    log: &Path,
    batch: &str,
    prefix: &str,
    max_peers: u32,
) -> String {
    let d = root.display();
    format!(
        r#"[bird]
socket = "{ctl}"
config = "{d}/etc/bird.conf"
include = "{d}/etc/autopeer.conf"
keyring = "off"

[agent]
socket = "{d}/run/autopeer.ctl"
state = "{d}/run/state.toml"
audit_log = "{d}/run/audit.log"
batch = "{batch}"

[sources]
logs = ["{log}"]
# Some benchmarks write their knocks into a file of their own, not BIRD's
# log: unverified lines, which admit only with this key.
unverified = "admit"

[[group]]
name = "clients"
template = "CLIENTS"
prefixes = ["{prefix}"]
neighbor = "internal"
max_peers = {max_peers}
rate = "unlimited"
"#,
        ctl = bird_ctl.display(),
        log = log.display(),
    )
}

/// One BIRD-format trigger line (DESIGN.md fact 2), with its newline.
pub fn knock_line(addr: &str, port: u16) -> String {
    format!(
        "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address {addr} (port {port})\n"
    )
}

/// The i-th address (0-based) of 10.99.0.0/16, skipping .0 and .255.
pub fn addr_of(i: usize) -> String {
    let hi = i / 250;
    let lo = i % 250 + 1;
    format!("10.99.{hi}.{lo}")
}

/// The BIRD protocol name autopeer gives `addr` in group `clients`.
pub fn name_of(addr: &str) -> String {
    format!("clients_{}", addr.replace('.', "_"))
}

/// `n` peers as autopeer would write them (group `clients`, template `CLIENTS`).
pub fn peers(n: usize) -> Vec<Peer> {
    (0..n)
        .map(|i| {
            let a = addr_of(i);
            Peer {
                name: name_of(&a),
                group: "clients".into(),
                template: "CLIENTS".into(),
                addr: a.parse().expect("address"),
                iface: None,
                neighbor: Some(render::NeighborAs::Internal),
                admitted: "2026-11-23T06:55:02Z".into(),
                via: "bird-log".into(),
            }
        })
        .collect()
}

/// A real bird, SIGKILLed by pid on drop.
pub struct Bird {
    pub root: PathBuf,
    pub ctl: PathBuf,
    pub conf: PathBuf,
    child: Child,
}

impl Bird {
    /// Start `bird -f` on `ROOT/etc/bird.conf` (already written, includes
    /// present; control socket `ROOT/run/bird.ctl`) and wait up to `wait`
    /// for its control socket.
    pub fn start(root: &Path, wait: Duration) -> Bird {
        let conf = root.join("etc/bird.conf");
        let ctl = root.join("run/bird.ctl");
        let stderr = fs::File::create(root.join("run/bird.stderr")).expect("stderr file");
        let child = Command::new(BIRD)
            .arg("-f")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(&ctl)
            .arg("-P")
            .arg(root.join("run/bird.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn bird");
        let mut bird = Bird {
            root: root.to_owned(),
            ctl,
            conf,
            child,
        };
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = bird.child.try_wait() {
                panic!(
                    "bird exited at start ({status}): {}",
                    fs::read_to_string(root.join("run/bird.stderr")).unwrap_or_default()
                );
            }
            if std::os::unix::net::UnixStream::connect(&bird.ctl).is_ok() {
                return bird;
            }
            assert!(Instant::now() < deadline, "bird did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("log/bird.log")).unwrap_or_default()
    }

    /// How often BIRD was sent exactly `cmd` (`debug commands 2`).
    pub fn commands(&self, cmd: &str) -> usize {
        self.log().matches(&format!("<TRACE> CLI: {cmd}\n")).count()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.ctl);
    }
}

/// The autopeer daemon (`autopeer -c CONFIG run`), SIGKILLed by pid on
/// drop unless stopped.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Start it with stdout/stderr to `out` and wait (up to 20 s) for its
    /// control socket `ctl`: the tail's watches are live before it binds.
    pub fn start(config: &Path, out: &Path, ctl: &Path) -> Daemon {
        let log = fs::File::create(out).expect("daemon output file");
        let child = Command::new(AUTOPEER)
            .arg("-c")
            .arg(config)
            .arg("run")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start autopeer");
        let mut d = Daemon { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ctl.exists() {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!(
                    "autopeer exited at start ({status}): {}",
                    fs::read_to_string(out).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "autopeer did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait up to 15 s (then SIGKILL).
    pub fn stop(mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Names of BIRD's protocols starting with `prefix`; empty when BIRD
/// cannot be asked.
pub async fn names_with(ctl: &Path, prefix: &str) -> Vec<String> {
    let Ok(mut c) = Connection::connect(ctl, Duration::from_secs(30)).await else {
        return Vec::new();
    };
    c.protocols(false, None)
        .await
        .map(|ps| {
            ps.into_iter()
                .map(|p| p.name)
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `show protocols` every `every` until at least `n` protocols named
/// `prefix*` exist; returns when that was first seen. Panics after `limit`.
pub async fn wait_protocols(
    ctl: &Path,
    prefix: &str,
    n: usize,
    every: Duration,
    limit: Duration,
) -> Instant {
    let start = Instant::now();
    loop {
        let got = names_with(ctl, prefix).await.len();
        if got >= n {
            return Instant::now();
        }
        assert!(
            start.elapsed() < limit,
            "only {got} of {n} {prefix}* protocols after {limit:?}"
        );
        tokio::time::sleep(every).await;
    }
}

/// `birdc -s CTL ARGS...`, stdout.
pub fn birdc(ctl: &Path, args: &[&str]) -> String {
    let out = Command::new(BIRDC)
        .arg("-s")
        .arg(ctl)
        .args(args)
        .output()
        .expect("run birdc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `q`-quantile (0..=1) of `xs` (nearest rank), in the unit of `xs`.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The process's `/proc/PID/status` field (e.g. `VmRSS`), in kB.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `cargo test --all-targets` runs every bench binary without `--bench`:
/// there it only proves that the benchmark builds, and returns false.
/// `cargo bench` passes `--bench`: then it returns true.
pub fn benchmarking(name: &str) -> bool {
    if std::env::args().any(|a| a == "--bench") {
        return true;
    }
    println!("{name}: a benchmark; run it with `cargo bench --bench {name}`");
    false
}
