//! Time to Established for a new client in the namespace lab (bird/lab):
//! autopeer versus BIRD 2's native dynamic BGP, same clients, same timers,
//! same run, with bird2 clients and with GoBGP clients. No MD5 (the
//! password path is the keyring's).
//!
//! The lab: `bird/lab up DIR --clients K --gobgp G --no-start` (rr plus K
//! knocking bird2 clients and G knocking gobgpd clients; template
//! `CLIENTS` and the bird2 clients use `connect delay time 1`, the bird2
//! clients `connect retry time 2`; GoBGP waits 5-10 s before each connect,
//! bird/README.md). rr's bird.conf is given `log ... all`, `debug commands
//! 2` and `debug protocols { states }`, so that its log shows each knock,
//! each `configure`, BIRD's `Reconfigured` and each protocol going up,
//! with millisecond times on one clock.
//!
//! 1. autopeer: the release daemon (`batch` at its default) tails rr's
//!    log; each client in turn is started (`bird/lab start`) and timed
//!    until rr shows `clients_10_88_0_X` Established (polled every 20 ms).
//!    From rr's log: autopeer's own share, the client's first knock ->
//!    autopeer's `configure` arriving (and -> BIRD's `Reconfigured`); and
//!    `Reconfigured` -> the protocol up, which is BIRD's connect delay
//!    (`bgp_active`: at least 1 s, randomized down by up to a quarter) or
//!    the client's own next connect, whichever comes first.
//! 2. native: every client stopped, rr restarted without autopeer's include
//!    and with `protocol bgp dyn from CLIENTS { neighbor range PREFIX as
//!    AS; dynamic name "dyn"; }`; each client in turn is started and timed
//!    until one more `dyn*` protocol is Established.
//!
//! Run: `cargo bench --bench established [-- --clients K --gobgp G]`
//! (K <= 20, default 5; G <= 10, default 3). Needs root, bird2, iproute2,
//! gobgpd. `bird/lab down` runs on drop, pass or fail; the daemon is
//! killed by pid.

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

/// From rr's log, for the client at `addr` whose protocol is `name`:
/// (first knock -> the next `CLI: configure`, -> the next `Reconfigured`,
/// `Reconfigured` -> `name` up), ms.
fn shares(log: &str, addr: &str, name: &str) -> Option<(f64, f64, f64)> {
    let knock = format!("Unexpected connect from unknown address {addr} ");
    let mut lines = log.lines();
    let first = log_ms(lines.by_ref().find(|l| l.contains(&knock))?)?;
    let conf = log_ms(
        lines
            .by_ref()
            .find(|l| l.ends_with("<TRACE> CLI: configure"))?,
    )?;
    let done = log_ms(lines.by_ref().find(|l| l.ends_with("Reconfigured"))?)?;
    let up_line = format!("{name}: State changed to up");
    let up = log_ms(lines.find(|l| l.ends_with(&up_line))?)?;
    Some((conf - first, done - first, up - done))
}

fn established(p: &autopeer::bird::protocols::Protocol) -> bool {
    p.info.starts_with("Established")
}

/// One client kind's figures in one run.
#[derive(Default)]
struct Kind {
    /// client start -> Established, s.
    ap: Vec<f64>,
    nat: Vec<f64>,
    /// first knock -> `configure`, ms (rr's log).
    share: Vec<f64>,
    /// first knock -> `Reconfigured`, ms.
    share_done: Vec<f64>,
    /// `Reconfigured` -> up, ms.
    delay: Vec<f64>,
}

fn report(what: &str, k: &Kind) {
    for (label, xs, prec) in [
        ("autopeer: client start -> Established (s)", &k.ap, 2),
        (
            "native dynamic BGP: client start -> Established (s)",
            &k.nat,
            2,
        ),
        (
            "autopeer's own share, first knock -> configure (ms, rr's log)",
            &k.share,
            0,
        ),
        ("first knock -> BIRD's Reconfigured (ms)", &k.share_done, 0),
        (
            "Reconfigured -> Established (ms; BIRD's connect delay or the client's retry)",
            &k.delay,
            0,
        ),
    ] {
        println!("{what}: {label}: {}", list(xs, prec));
    }
    let (ma, mn) = (quantile(&k.ap, 0.5), quantile(&k.nat, 0.5));
    println!(
        "{what}: median: autopeer {ma:.2} s, native {mn:.2} s, gap {:.2} s; autopeer's share \
         median {:.0} ms, max {:.0} ms (target: < 50 ms above BIRD's 1 s floor)",
        ma - mn,
        quantile(&k.share_done, 0.5),
        quantile(&k.share_done, 1.0)
    );
}

fn main() {
    if !common::benchmarking("established") {
        return;
    }
    if !root_and_bird("established")
        || !lab_allowed(LAB_TOOLS, "benchmark established")
        || !prereq::runnable("benchmark established", prereq::tools(&["gobgpd", "gobgp"]))
    {
        return;
    }
    let k: usize = arg("--clients", 5).clamp(1, 20);
    let g: usize = arg("--gobgp", 3).clamp(1, 10);
    print_machine();
    println!(
        "established: {k} bird2 and {g} GoBGP clients in the namespace lab, one at a time, no MD5"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let lab = Lab::up(&[
        "--clients",
        &k.to_string(),
        "--gobgp",
        &g.to_string(),
        "--no-start",
    ]);
    let list =
        |key: &str| -> Vec<String> { lab.get(key).split_whitespace().map(str::to_owned).collect() };
    // (kind, node, address), bird2 clients first.
    let mut clients: Vec<(&str, String, String)> = Vec::new();
    for (kind, nodes, addrs) in [
        ("bird2", list("CLIENT_NODES"), list("CLIENTS")),
        ("gobgp", list("GOBGP_NODES"), list("GOBGP")),
    ] {
        assert_eq!(
            nodes.len(),
            addrs.len(),
            "{kind}: nodes and addresses differ"
        );
        for (n, a) in nodes.into_iter().zip(addrs) {
            clients.push((kind, n, a));
        }
    }
    let ctl = lab.path("RR_CTL");
    let conf_path = lab.path("RR_CONF");
    let log_path = lab.path("RR_LOG");
    let include = lab.path("RR_INCLUDE");
    let original = fs::read_to_string(&conf_path).unwrap();
    let log_line = original
        .lines()
        .find(|l| l.starts_with("log "))
        .expect("rr bird.conf has a log line")
        .to_owned();
    let verbose = original.replace(
        &log_line,
        &format!(
            "log \"{}\" all;\ndebug commands 2;\ndebug protocols {{ states }};",
            log_path.display()
        ),
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
    let mut kinds: [(&str, Kind); 2] = [("bird2", Kind::default()), ("gobgp", Kind::default())];
    let kind_of = |kinds: &mut [(&str, Kind); 2], kind: &str| -> usize {
        kinds.iter().position(|(k, _)| *k == kind).unwrap()
    };
    for (kind, node, addr) in &clients {
        let name = format!("clients_{}", addr.replace('.', "_"));
        let t0 = Instant::now();
        lab.start(node);
        let up = rt.block_on(wait_rr(&ctl, Duration::from_secs(60), |rows| {
            rows.iter().any(|p| p.name == name && established(p))
        }));
        let i = kind_of(&mut kinds, kind);
        let k = &mut kinds[i].1;
        k.ap.push(secs(up - t0));
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        let (a, b, c) = shares(&log, addr, &name).unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        k.share.push(a);
        k.share_done.push(b);
        k.delay.push(c);
    }
    daemon.stop();
    for (_, node, _) in &clients {
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
    for (i, (kind, node, _)) in clients.iter().enumerate() {
        let t0 = Instant::now();
        lab.start(node);
        let up = rt.block_on(wait_rr(&ctl, Duration::from_secs(60), |rows| {
            rows.iter()
                .filter(|p| p.name.starts_with("dyn") && established(p))
                .count()
                > i
        }));
        let j = kind_of(&mut kinds, kind);
        kinds[j].1.nat.push(secs(up - t0));
    }
    for (what, k) in &kinds {
        report(what, k);
    }
    drop(lab);
}
