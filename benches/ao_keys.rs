//! TCP-AO prefix MKTs at scale (issue 16): the figures beside the MD5 ones
//! in README.
//!
//! One prefix MKT (127.0.0.0/8, HMAC-SHA-1-96, as autopeer installs it with
//! `keyring::sys::ao_add_key`) on a listener, then C (default 2,000)
//! distinct loopback sources 127.1.x.y each open an AO-signed connection;
//! count the accepted ones and the kernel's TCPAOGood. Then 20 more sources
//! in the prefix, unsigned, with a wrong secret, with a wrong key ID and
//! MD5-signed: how many get through (none should).
//!
//! This host's kernel has no TCP-AO: the benchmark then runs itself inside
//! the User-Mode Linux kernel of the tests (tests/common/uml.rs), where
//! timings are indicative only. Run: `cargo bench --bench ao_keys [--
//! --clients C]`. Needs root. Prints figures, never fails on slowness;
//! fails when the harness or a prerequisite is missing under CI=true.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autopeer::keyring::sys::{ao_add_key, connect_ao, AoAdd};
use autopeer::keyring::{ao, connect_signed};
use common::harness::uml;
use common::{arg, prereq};

const KEY: &[u8] = b"bench-ao-group-key";

fn v4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn counter(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    ao::netstat_counters(&text)
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, v)| v)
}

fn client_key<'a>(secret: &'a [u8], id: u8) -> AoAdd<'a> {
    AoAdd {
        addr: v4(0x7f00_0001),
        prefix: 32,
        sndid: id,
        rcvid: id,
        alg: "hmac(sha1)",
        key: secret,
    }
}

/// Each client and each accepted connection is a descriptor: raise the
/// soft limit to the hard one (UML's init has 1024 of 4096).
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    if let Err(e) = setrlimit(Resource::Nofile, lim) {
        eprintln!("cannot raise the descriptor limit: {e}");
    }
}

fn handshakes(clients: usize) {
    raise_fd_limit();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let to: SocketAddr = listener.local_addr().expect("addr");
    let t = Instant::now();
    ao_add_key(
        listener.as_fd(),
        &AoAdd {
            addr: v4(0x7f00_0000),
            prefix: 8,
            sndid: 1,
            rcvid: 1,
            alg: "hmac(sha1)",
            key: KEY,
        },
    )
    .expect("prefix MKT");
    println!(
        "kernel: one prefix MKT (127.0.0.0/8) installed in {} us",
        t.elapsed().as_micros()
    );
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let acceptor = listener.try_clone().expect("clone");
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for s in acceptor.incoming() {
            match s {
                Ok(s) => {
                    count.fetch_add(1, Ordering::Relaxed);
                    kept.push(s);
                }
                Err(_) => break,
            }
        }
    });
    let source = |i: usize| v4(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + 1 + i as u32);
    let good0 = counter("TCPAOGood");
    let t = Instant::now();
    let mut ok = 0;
    let mut streams = Vec::with_capacity(clients);
    for i in 0..clients {
        match connect_ao(source(i), to, &client_key(KEY, 1), Duration::from_secs(2)) {
            Ok(s) => {
                ok += 1;
                streams.push(s);
            }
            Err(e) => eprintln!("client {}: {e}", source(i)),
        }
    }
    let took = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.load(Ordering::Relaxed) < ok && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "handshakes: 1 prefix MKT (127.0.0.0/8); {clients} distinct AO-signed sources \
         127.1.0.1..{}: {ok} connected, {} accepted, in {:.2} s ({:.0} handshakes/s); \
         TCPAOGood +{}",
        source(clients - 1),
        accepted.load(Ordering::Relaxed),
        took.as_secs_f64(),
        ok as f64 / took.as_secs_f64(),
        counter("TCPAOGood") - good0
    );
    let before = accepted.load(Ordering::Relaxed);
    let names = [
        "TCPAORequired",
        "TCPAOBad",
        "TCPAOKeyNotFound",
        "TCPMD5Unexpected",
    ];
    let c0: Vec<u64> = names.iter().map(|n| counter(n)).collect();
    let mut through = 0;
    let probe = 20;
    for i in 0..probe {
        let from = v4(u32::from(Ipv4Addr::new(127, 2, 0, 1)) + i as u32);
        let wait = Duration::from_millis(300);
        let r = match i % 4 {
            0 => connect_signed(from, to, None, wait),
            1 => connect_ao(from, to, &client_key(b"wrong-secret", 1), wait),
            2 => connect_ao(from, to, &client_key(KEY, 7), wait),
            _ => connect_signed(from, to, Some(KEY), wait),
        };
        if r.is_ok() {
            through += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let deltas: Vec<String> = names
        .iter()
        .zip(&c0)
        .map(|(n, c)| format!("{n} +{}", counter(n) - c))
        .collect();
    println!(
        "handshakes: {probe} more sources in the prefix (unsigned, wrong secret, wrong key ID, \
         MD5-signed; 5 each): {through} connected, {} accepted; {}",
        accepted.load(Ordering::Relaxed) - before,
        deltas.join(", ")
    );
    drop(streams);
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: it
    // only proves that it builds.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ao_keys: a benchmark; run it with `cargo bench --bench ao_keys`");
        return;
    }
    if !prereq::runnable(
        "benchmark ao_keys",
        prereq::root("TCP-AO keys for loopback sources"),
    ) {
        return;
    }
    let clients = arg("--clients", 2000);
    if ao::kernel_support().is_err() {
        let Some(harness) = uml::require("benchmark ao_keys (this kernel has no TCP-AO)") else {
            return;
        };
        let exe = std::env::current_exe().expect("own path");
        let n = clients.to_string();
        let run = harness.timeout(Duration::from_secs(1200)).command(
            exe.to_str().expect("UTF-8 path"),
            &["--bench", "--clients", &n],
        );
        print!("{}", run.output);
        run.assert_ok();
        return;
    }
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "machine: nproc {nproc}, kernel {}{}",
        kernel.trim(),
        if std::env::var_os("UML_RUN").is_some() {
            " (User-Mode Linux: timings are indicative only)"
        } else {
            ""
        }
    );
    handshakes(clients);
}
