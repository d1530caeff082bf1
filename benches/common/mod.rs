//! Shared pieces of the benchmark programs in `benches/`: the machine
//! line, the benchmarks' bird.conf and autopeer.toml, BIRD polling and
//! percentiles. Starting BIRD, the daemon and the namespace lab, and the
//! CI-or-skip rule, come from the tests' harness (`tests/common/`,
//! included below as [`harness`] so that there is one copy).
//!
//! Benchmarks print figures; they never fail because something is slow.
//! They do fail (panic, after cleanup by the guards' `Drop`) when the
//! thing measured never happens, and when a prerequisite is missing with
//! `CI=true` (elsewhere they print one line and measure nothing).
//! Network traffic: none leaves the host; BIRD binds 127.0.0.1 on a high
//! port and its template is `passive on`, so the 10.x neighbors are never
//! dialed.
#![allow(dead_code)]

#[path = "../../tests/common/mod.rs"]
pub mod harness;

// What the benchmarks use of the harness; not every one uses each.
#[allow(unused_imports)]
pub use harness::bird::{free_port, BirdFiles, RealBird, BIRD};
#[allow(unused_imports)]
pub use harness::daemon::{status_kb, Daemon};
pub use harness::prereq;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use autopeer::bird::client::Connection;
use autopeer::bird::render::{self, Peer};

pub const BIRDC: &str = "/usr/sbin/birdc";

/// True when benchmark `name` can run: root and bird2 (a benchmark that
/// cannot measure must not print a figure). Else skip, or fail with
/// `CI=true` ([`prereq::runnable`]).
pub fn root_and_bird(name: &str) -> bool {
    prereq::runnable(
        &format!("benchmark {name}"),
        prereq::root("it runs bird")
            .or_else(|| prereq::file(BIRD, "apt install bird2"))
            .or_else(|| prereq::file(BIRDC, "apt install bird2")),
    )
}

/// The value after `--NAME` on the command line, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

/// One BIRD-format trigger line (docs/facts.md, fact 2), with its newline.
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

/// The daemon (`autopeer -c CONFIG run`), output to `dir/daemon.out`,
/// ready once `dir/autopeer.ctl` accepts (up to 20 s); SIGKILLed by pid
/// on drop unless stopped.
///
/// `AUTOPEER_BENCH_WRAP="PROGRAM ARGS..."` starts it as `PROGRAM ARGS...
/// autopeer ...` (a profiler: the program must exec autopeer in its own
/// process, as a script that starts `perf record -p $$` and then `exec
/// "$@"` does, so that the stop signal reaches the daemon).
pub fn start_daemon(dir: &Path, config: &Path) -> Daemon {
    let wrap = std::env::var("AUTOPEER_BENCH_WRAP").unwrap_or_default();
    let prefix: Vec<&str> = wrap.split_whitespace().collect();
    Daemon::spawn(
        Daemon::command(config, false, &prefix),
        &dir.join("daemon.out"),
    )
    .ready(&dir.join("autopeer.ctl"), Duration::from_secs(20))
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

/// `xs` as `a b c` with `prec` decimals.
pub fn list(xs: &[f64], prec: usize) -> String {
    xs.iter()
        .map(|x| format!("{x:.prec$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
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
