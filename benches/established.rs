//! Time to Established for a new client in the namespace lab (bird/lab):
//! autopeer versus BIRD 2's native dynamic BGP, same clients, same timers,
//! same run. No MD5 (the password path is the keyring's).
//!
//! The lab: `bird/lab up DIR --clients K --no-start` (rr plus K knocking
//! bird2 clients; template `CLIENTS` and the clients use
//! `connect delay time 1`, the clients `connect retry time 2`). rr's
//! bird.conf is given `log ... all` and `debug commands 2` so that its log
//! shows each knock and each `configure` with millisecond times.
//!
//! 1. autopeer: the release daemon (batch at its default) tails rr's log;
//!    each client in turn is started (`bird/lab start`) and timed until rr
//!    shows `clients_10_88_0_X` Established (polled every 20 ms). From rr's
//!    log: first knock -> autopeer's `configure`.
//! 2. native: every client stopped, rr restarted without autopeer's include
//!    and with `protocol bgp dyn from CLIENTS { neighbor range PREFIX as
//!    AS; dynamic name "dyn"; }`; each client in turn is started and timed
//!    until one more `dyn*` protocol is Established.
//!
//! Run: `cargo bench --bench established [-- --clients K]` (K <= 20,
//! default 5). Needs root, bird2, iproute2. `bird/lab down` runs on drop,
//! pass or fail; the daemon is killed by pid.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use autopeer::bird::client::Connection;
use common::harness::lab::{lab_allowed, Lab, LAB_TOOLS};
use common::*;

/// Polls rr every 20 ms until `done(rows)`; returns when it first held.
async fn wait_rr(
    ctl: &Path,
    limit: Duration,
    done: impl Fn(&[autopeer::bird::protocols::Protocol]) -> bool,
) -> Instant {
    let start = Instant::now();
    loop {
        if let Ok(mut c) = Connection::connect(ctl, Duration::from_secs(5)).await {
            if let Ok(rows) = c.protocols(false, None).await {
                if done(&rows) {
                    return Instant::now();
                }
            }
        }
        assert!(start.elapsed() < limit, "not Established within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Milliseconds since midnight of a BIRD log line's `YYYY-MM-DD HH:MM:SS.mmm`.
fn log_ms(line: &str) -> Option<f64> {
    let t = line.get(11..23)?;
    let (h, rest) = t.split_once(':')?;
    let (m, s) = rest.split_once(':')?;
    Some(
        (h.parse::<f64>().ok()? * 3600.0
            + m.parse::<f64>().ok()? * 60.0
            + s.parse::<f64>().ok()?)
            * 1000.0,
    )
}

/// From rr's log: first knock of `addr` -> the next `CLI: configure`, ms.
fn knock_to_configure(log: &str, addr: &str) -> Option<f64> {
    let knock = format!("Unexpected connect from unknown address {addr} ");
    let mut lines = log.lines();
    let first = lines.by_ref().find(|l| l.contains(&knock))?;
    let conf = lines.find(|l| l.ends_with("<TRACE> CLI: configure"))?;
    Some(log_ms(conf)? - log_ms(first)?)
}

fn established(p: &autopeer::bird::protocols::Protocol) -> bool {
    p.info.starts_with("Established")
}

fn main() {
    if !common::benchmarking("established") {
        return;
    }
    if !root_and_bird("established") || !lab_allowed(LAB_TOOLS, "benchmark established") {
        return;
    }
    let k: usize = arg("--clients", 5).clamp(1, 20);
    print_machine();
    println!("established: {k} bird2 clients in the namespace lab, one at a time, no MD5");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let lab = Lab::up(&["--clients", &k.to_string(), "--no-start"]);
    let nodes: Vec<String> = lab
        .get("CLIENT_NODES")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let addrs: Vec<String> = lab
        .get("CLIENTS")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(nodes.len(), addrs.len(), "CLIENT_NODES and CLIENTS differ");
    let ctl = lab.path("RR_CTL");
    let conf_path = lab.path("RR_CONF");
    let log_path = lab.path("RR_LOG");
    let include = lab.path("RR_INCLUDE");
    let original = fs::read_to_string(&conf_path).unwrap();
    let (log_line, _) = original
        .lines()
        .find(|l| l.starts_with("log "))
        .map(|l| (l.to_owned(), ()))
        .expect("rr bird.conf has a log line");
    let verbose = original.replace(
        &log_line,
        &format!("log \"{}\" all;\ndebug commands 2;", log_path.display()),
    );

    // --- autopeer -----------------------------------------------------
    lab.stop("rr");
    fs::write(&conf_path, &verbose).unwrap();
    lab.start("rr");
    let run = lab.dir.path().join("ap");
    fs::create_dir_all(&run).unwrap();
    let d = run.display();
    let config = run.join("autopeer.toml");
    fs::write(
        &config,
        format!(
            r#"[bird]
socket = "{ctl}"
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
template = "{template}"
prefixes = ["{prefix}"]
neighbor = "internal"
rate = "unlimited"
"#,
            ctl = ctl.display(),
            conf = conf_path.display(),
            include = include.display(),
            log = log_path.display(),
            template = lab.get("TEMPLATE"),
            prefix = lab.get("GROUP_PREFIX"),
        ),
    )
    .unwrap();
    let daemon = start_daemon(&run, &config);
    std::thread::sleep(Duration::from_millis(500));
    let mut ap = Vec::new();
    let mut share = Vec::new();
    for (node, addr) in nodes.iter().zip(&addrs) {
        let name = format!("clients_{}", addr.replace('.', "_"));
        let t0 = Instant::now();
        lab.start(node);
        let up = rt.block_on(wait_rr(&ctl, Duration::from_secs(60), |rows| {
            rows.iter().any(|p| p.name == name && established(p))
        }));
        ap.push(secs(up - t0));
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        share.push(knock_to_configure(&log, addr).unwrap_or(f64::NAN));
    }
    daemon.stop();
    for node in &nodes {
        lab.stop(node);
    }

    // --- native dynamic BGP ------------------------------------------
    lab.stop("rr");
    let include_line = format!("include \"{}\";", include.display());
    assert!(
        verbose.contains(&include_line),
        "rr conf has no {include_line}"
    );
    let native = verbose.replace(
        &include_line,
        &format!(
            "protocol bgp dyn from {} {{\n  neighbor range {} as {};\n  dynamic name \"dyn\";\n}}",
            lab.get("TEMPLATE"),
            lab.get("GROUP_PREFIX"),
            lab.get("RR_AS")
        ),
    );
    fs::write(&conf_path, native).unwrap();
    lab.start("rr");
    let mut nat = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let t0 = Instant::now();
        lab.start(node);
        let up = rt.block_on(wait_rr(&ctl, Duration::from_secs(60), |rows| {
            rows.iter()
                .filter(|p| p.name.starts_with("dyn") && established(p))
                .count()
                > i
        }));
        nat.push(secs(up - t0));
    }

    let fmt = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("autopeer: client start -> Established (s): {}", fmt(&ap));
    println!(
        "autopeer: its own share, first knock -> configure (ms, rr's log): {}",
        share
            .iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "native dynamic BGP: client start -> Established (s): {}",
        fmt(&nat)
    );
    let (ma, mn) = (quantile(&ap, 0.5), quantile(&nat, 0.5));
    println!(
        "median: autopeer {ma:.2} s, native {mn:.2} s, ratio {:.2}x",
        ma / mn
    );
    drop(lab);
}
