//! MD5 keys at scale (issue 4, item 7): why autopeer keys BIRD's listener
//! with prefix keys instead of relying on per-neighbor keys (docs/facts.md
//! fact 4).
//!
//! 1. Kernel: exact (per-neighbor, `TCP_MD5SIG`) keys installed on one
//!    listening socket until the kernel says ENOMEM, with this host's
//!    `net.core.optmem_max`; then one prefix key (`TCP_MD5SIG_EXT` +
//!    `TCP_MD5SIG_FLAG_PREFIX`) covering all those addresses.
//! 2. Real BIRD: N MD5 protocols (default 1,200) on one listener; how many
//!    start, how many fail with `Kernel MD5 auth failed`, how many keys
//!    `ss -tlnie` shows on BIRD's listener.
//! 3. Handshakes: one prefix key (127.0.0.0/8) on a listener, then C
//!    (default 2,000) distinct loopback sources 127.1.x.y each open a
//!    signed connection; count the accepted ones, and check that unsigned
//!    and wrong-key SYNs from the same range are dropped.
//!
//! Run: `cargo bench --bench md5_keys [-- --protocols N --clients C]`.
//! Needs root (keys on loopback sources; BIRD) and bird2 for part 2.
//! Prints figures, never fails on slowness. BIRD is killed by pid, pass or
//! fail; traffic stays on loopback.

mod common;

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autopeer::keyring::{self, connect_signed, sys::setsockopt_md5};
use common::{arg, birdc, prereq, BirdFiles, RealBird};

const KEY: &[u8] = b"bench-group-key";

fn optmem_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/optmem_max")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

fn machine() {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let bird = Command::new("bird")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_else(|_| "bird: not installed".into());
    println!(
        "machine: nproc {nproc}, kernel {}, net.core.optmem_max {}, {bird}",
        kernel.trim(),
        optmem_max()
    );
}

fn v4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

/// Part 1: exact keys until ENOMEM, then one prefix key.
fn kernel_keys() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let fd = listener.as_fd();
    let base = u32::from(Ipv4Addr::new(10, 77, 0, 0));
    let mut n = 0u32;
    let err = loop {
        match setsockopt_md5(fd, v4(base + n), None, KEY) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
        if n >= 1_000_000 {
            println!("kernel: 1,000,000 exact keys and no limit reached");
            return;
        }
    };
    println!(
        "kernel: {n} per-neighbor (exact) keys fit on one listener, key {} failed: {err}; \
         about {} bytes per key (keyring::BYTES_PER_KEY = {})",
        n + 1,
        optmem_max() / n.max(1) as usize,
        keyring::BYTES_PER_KEY
    );
    let fresh = TcpListener::bind("127.0.0.1:0").expect("bind");
    let t = Instant::now();
    setsockopt_md5(fresh.as_fd(), v4(base), Some(16), KEY).expect("prefix key");
    println!(
        "kernel: 1 prefix key (10.77.0.0/16, {} addresses) installed in {} us",
        1u32 << 16,
        t.elapsed().as_micros()
    );
}

/// Part 2: N MD5 protocols on one real BIRD listener.
fn bird_protocols(n: usize) {
    if !prereq::runnable("md5_keys part 2", common::harness::bird::missing_bird()) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("md5bench")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let d = dir.path();
    let port = common::free_port();
    let mut conf = format!(
        "router id 10.0.0.1;\nprotocol device {{ }}\n\
         template bgp mdpeers {{ local 127.0.0.1 port {port} as 65001; strict bind yes; multihop; \
         passive; password \"bench-group-key\"; ipv4 {{ import none; export none; }}; }}\n"
    );
    for i in 0..n {
        conf.push_str(&format!(
            "protocol bgp p{i} from mdpeers {{ neighbor 10.78.{}.{} as 65002; }}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    let files = BirdFiles::flat(d);
    std::fs::write(&files.conf, conf).expect("write bird.conf");
    let t = Instant::now();
    let bird = RealBird::launch(files, &[], Duration::from_secs(60));
    let ctl = bird.ctl.clone();
    // The socket answers before BIRD has opened its listener and keyed it:
    // give it the half second the first look waited for before.
    std::thread::sleep(Duration::from_millis(500));
    // Wait until every protocol has left its first state.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut started, mut failed) = (0, 0);
    let mut why = String::from("-");
    while Instant::now() < deadline {
        let text = birdc(&ctl, &["show", "protocols"]);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('p')).collect();
        started = rows
            .iter()
            .filter(|l| l.contains(" start ") && !l.contains("MD5"))
            .count();
        failed = rows.iter().filter(|l| l.contains("MD5")).count();
        if let Some(e) = rows.iter().find_map(|l| l.split_once("Error:")) {
            why = format!("Error:{}", e.1.trim_end());
        }
        if rows.len() == n && started + failed == n {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let ss = Command::new("ss")
        .args(["-Htlnie", &format!("sport = :{port}")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // sock_diag leaves the key list out when it does not fit one message.
    let keys = ss
        .split_whitespace()
        .find_map(|w| w.strip_prefix("md5keys:"))
        .map_or_else(
            || "ss shows no key list".to_owned(),
            |k| format!("ss shows {} keys", k.split(',').count()),
        );
    drop(bird);
    println!(
        "bird: {n} MD5 protocols on one listener: {started} started (passive, keyed), \
         {failed} failed ({why}); on the listener {keys}; {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// Part 3: one prefix key, C distinct signed clients.
fn handshakes(clients: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let to = listener.local_addr().expect("addr");
    setsockopt_md5(listener.as_fd(), v4(0x7f00_0000), Some(8), KEY).expect("prefix key");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let acceptor = listener.try_clone().expect("clone");
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for s in acceptor.incoming() {
            match s {
                Ok(s) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                    kept.push(s);
                }
                Err(_) => break,
            }
        }
    });
    let source = |i: usize| v4(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + 1 + i as u32);
    let t = Instant::now();
    let mut ok = 0;
    let mut streams = Vec::with_capacity(clients);
    for i in 0..clients {
        match connect_signed(source(i), to, Some(KEY), Duration::from_secs(2)) {
            Ok(s) => {
                ok += 1;
                streams.push(s);
            }
            Err(e) => eprintln!("client {}: {e}", source(i)),
        }
    }
    let took = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(5);
    while accepted.load(Ordering::Relaxed) < ok && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "handshakes: 1 prefix key (127.0.0.0/8); {clients} distinct signed sources \
         127.1.0.1..{}: {ok} connected, {} accepted, in {:.2} s ({:.0} handshakes/s)",
        source(clients - 1),
        accepted.load(Ordering::Relaxed),
        took.as_secs_f64(),
        ok as f64 / took.as_secs_f64()
    );
    let probe = 20;
    let before = accepted.load(Ordering::Relaxed);
    let mut through = 0;
    for i in 0..probe {
        let from = v4(u32::from(Ipv4Addr::new(127, 2, 0, 1)) + i as u32);
        let key: Option<&[u8]> = if i % 2 == 0 { None } else { Some(b"wrong-key") };
        if connect_signed(from, to, key, Duration::from_millis(200)).is_ok() {
            through += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    println!(
        "handshakes: {probe} more sources in the prefix, half unsigned and half with a wrong key: \
         {through} connected, {} accepted",
        accepted.load(Ordering::Relaxed) - before
    );
    drop(streams);
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: it
    // only proves that it builds.
    if !std::env::args().any(|a| a == "--bench") {
        println!("md5_keys: a benchmark; run it with `cargo bench --bench md5_keys`");
        return;
    }
    if !prereq::runnable(
        "benchmark md5_keys",
        prereq::root("MD5 keys for loopback sources, BIRD"),
    ) {
        return;
    }
    let protocols = arg("--protocols", 1200);
    let clients = arg("--clients", 2000);
    machine();
    kernel_keys();
    bird_protocols(protocols);
    handshakes(clients);
}
