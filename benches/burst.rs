//! Burst: N distinct sightings (default 1,000) written as BIRD-format
//! `Unexpected connect` lines into the file the real autopeer daemon
//! tails, spread evenly over one second, against real bird2 on loopback
//! (template `passive on`: nothing is dialed), `batch` at its default.
//! Prints the time until all N protocols exist in BIRD and how many
//! `configure` calls BIRD logged (`debug commands 2`). "Exist" is polled
//! every millisecond on one control connection with `show protocols
//! "NAME"` of the last line's peer (it is in the last apply), then the
//! count of all N is confirmed.
//!
//! In the same run, on fresh BIRDs with the same config:
//! - the floor: the same N protocols written by hand into the include and
//!   loaded with one `birdc configure`, timed until they all exist;
//! - the same N lines in one single write (all at once);
//! - autopeer's own apply of N (the library's `apply`, on a fresh BIRD:
//!   write + fsync + rename + directory fsync, `show protocols`,
//!   `configure`), beside the write + fsyncs alone and the floor;
//! - what `configure check` would cost on top (docs/facts.md, fact 16):
//!   `configure check`, `configure` of the unchanged config and `show
//!   protocols`, each over one control connection, median of 5, with N
//!   and with `--check-peers` (default 10,000) protocols loaded;
//! - the naive cost: one `birdc configure` per peer, measured for the
//!   first 100 peers and extrapolated to N with a least-squares line
//!   (BIRD's configure cost is linear in config size, docs/facts.md fact 5).
//!
//! Run: `cargo bench --bench burst [-- --peers N] [--check-peers M]`.
//! Needs root and bird2.
//! Prints figures only; slowness never fails it. Every process it starts
//! is killed by pid and its temp dirs removed, pass or fail.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use autopeer::apply::{self, Target};
use autopeer::bird::client::Connection;
use autopeer::bird::render;
use common::*;

const POLL: Duration = Duration::from_millis(25);
/// The fine poll for the last peer's protocol.
const FINE: Duration = Duration::from_millis(1);
const LIMIT: Duration = Duration::from_secs(300);
const NAIVE_SAMPLE: usize = 100;
/// `[agent] batch` as the daemon ships it.
const BATCH: &str = "0s";

/// A fresh dir with bird.conf, an empty owned include and an empty
/// `knocks.log`, and BIRD running on it.
fn setup(prefix: &str) -> (tempfile::TempDir, RealBird) {
    setup_with(prefix, 0)
}

/// [`setup`] with `loaded` peers in the include when BIRD starts.
fn setup_with(prefix: &str, loaded: usize) -> (tempfile::TempDir, RealBird) {
    let dir = tempdir(prefix);
    let d = dir.path();
    let files = BirdFiles::router(d);
    fs::write(&files.conf, bird_conf(d, free_port())).unwrap();
    fs::write(
        d.join("etc/autopeer.conf"),
        render::render(&peers(loaded)).unwrap(),
    )
    .unwrap();
    fs::write(d.join("log/knocks.log"), "").unwrap();
    let bird = RealBird::launch(files, &[], Duration::from_secs(30));
    (dir, bird)
}

struct DaemonRun {
    /// First line written -> all N protocols seen.
    from_first: Duration,
    /// Last line written -> all N protocols seen.
    from_last: Duration,
    configures: usize,
    checks: usize,
    /// (added, millis) of each apply, from the daemon's log.
    applies: Vec<(u64, u64)>,
}

/// The real daemon against a fresh BIRD; `spread` = ZERO writes all lines
/// in one write.
fn run_daemon(rt: &tokio::runtime::Runtime, n: usize, spread: Duration) -> DaemonRun {
    let (dir, bird) = setup("apburst");
    let d = dir.path();
    let knocks = d.join("log/knocks.log");
    let config = d.join("run/autopeer.toml");
    fs::write(
        &config,
        autopeer_toml(d, &bird.ctl, &knocks, BATCH, "10.99.0.0/16", 100_000),
    )
    .unwrap();
    let daemon = start_daemon(&d.join("run"), &config);
    // Let the observer's first poll pass.
    std::thread::sleep(Duration::from_millis(500));

    let lines: Vec<String> = (0..n).map(|i| knock_line(&addr_of(i), 40000)).collect();
    let writer = std::thread::spawn({
        let knocks = knocks.clone();
        move || write_lines(&knocks, &lines, spread)
    });
    let seen = rt.block_on(wait_all(&bird.ctl, n));
    let (first, last) = writer.join().expect("writer thread");
    // Let a configure that might still follow show up in the count.
    std::thread::sleep(Duration::from_millis(500));
    let run = DaemonRun {
        from_first: seen.saturating_duration_since(first),
        from_last: seen.saturating_duration_since(last),
        configures: bird.commands("configure"),
        checks: bird.commands("configure check"),
        applies: applies(&fs::read_to_string(d.join("run/daemon.out")).unwrap_or_default()),
    };
    daemon.stop();
    drop(bird);
    run
}

/// Writes `lines` to `path` (append, one write per line) spread evenly
/// over `spread`; returns when the first and the last were written.
fn write_lines(path: &Path, lines: &[String], spread: Duration) -> (Instant, Instant) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    if spread.is_zero() {
        let all = lines.concat();
        let t = Instant::now();
        f.write_all(all.as_bytes()).unwrap();
        return (t, t);
    }
    let start = Instant::now();
    let step = spread / lines.len().max(1) as u32;
    let mut first = None;
    let mut last = start;
    for (i, line) in lines.iter().enumerate() {
        let due = start + step * i as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        f.write_all(line.as_bytes()).unwrap();
        last = Instant::now();
        first.get_or_insert(last);
    }
    (first.unwrap_or(start), last)
}

/// `applied added=N removed=M millis=T` lines of the daemon's log.
fn applies(log: &str) -> Vec<(u64, u64)> {
    let field = |line: &str, key: &str| -> Option<u64> {
        let at = line.find(&format!("{key}="))? + key.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    log.lines()
        .filter(|l| l.contains(" applied"))
        .filter_map(|l| Some((field(l, "added")?, field(l, "millis")?)))
        .collect()
}

/// One hand-made configure of all N peers: (configure command alone,
/// until all N exist).
fn floor(rt: &tokio::runtime::Runtime, n: usize) -> (Duration, Duration) {
    let (dir, bird) = setup("apfloor");
    let include = dir.path().join("etc/autopeer.conf");
    fs::write(&include, render::render(&peers(n)).unwrap()).unwrap();
    let t0 = Instant::now();
    let out = birdc(&bird.ctl, &["configure"]);
    let cmd = t0.elapsed();
    assert!(out.contains("Reconfigured"), "configure failed: {out}");
    let seen = rt.block_on(wait_all(&bird.ctl, n));
    (cmd, seen - t0)
}

/// Polls every [`FINE`] on one connection until the protocol of the
/// `n`-th peer exists, then confirms that all `n` do (else waits for
/// them); returns when it was first seen.
async fn wait_all(ctl: &Path, n: usize) -> Instant {
    let last = name_of(&addr_of(n - 1));
    let start = Instant::now();
    let mut c = Connection::connect(ctl, LIMIT)
        .await
        .expect("connect to BIRD");
    let seen = loop {
        let got = c
            .protocols(false, Some(&last))
            .await
            .expect("show protocols");
        if !got.is_empty() {
            break Instant::now();
        }
        assert!(start.elapsed() < LIMIT, "no {last} after {LIMIT:?}");
        tokio::time::sleep(FINE).await;
    };
    if names_with(ctl, "clients_").await.len() >= n {
        return seen;
    }
    wait_protocols(ctl, "clients_", n, POLL, LIMIT).await
}

/// autopeer's own apply of `n` new peers on a fresh BIRD: (the write,
/// fsync, rename and directory fsync of the same bytes to a sibling file,
/// median of 3; the whole `apply::apply`).
fn own_apply(rt: &tokio::runtime::Runtime, n: usize) -> (Duration, Duration) {
    let (dir, bird) = setup("apown");
    let etc = dir.path().join("etc");
    let text = render::render(&peers(n)).unwrap();
    let mut writes: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            apply::write_atomic(&etc.join("sibling.conf"), text.as_bytes()).unwrap();
            secs(t.elapsed())
        })
        .collect();
    writes.sort_by(f64::total_cmp);
    let target = Target {
        socket: bird.ctl.clone(),
        include: etc.join("autopeer.conf"),
        timeout: LIMIT,
    };
    let t = Instant::now();
    rt.block_on(apply::apply(&target, &text))
        .expect("autopeer's apply");
    let took = t.elapsed();
    assert_eq!(bird.commands("configure"), 1, "{}", bird.log());
    (Duration::from_secs_f64(writes[1]), took)
}

/// Medians (ms) of `configure check`, `configure` of the unchanged
/// config and `show protocols`, 5 each, on one connection to a BIRD that
/// has `loaded` peers.
fn check_cost(rt: &tokio::runtime::Runtime, loaded: usize) -> [f64; 3] {
    let (_dir, bird) = setup_with("apcheck", loaded);
    rt.block_on(async {
        let mut c = Connection::connect(&bird.ctl, LIMIT)
            .await
            .expect("connect");
        c.set_timeout(LIMIT);
        // Interleaved, so that a drift of the machine's speed hits all three.
        let mut ms: [Vec<f64>; 3] = Default::default();
        for _ in 0..5 {
            for (k, v) in ms.iter_mut().enumerate() {
                let t = Instant::now();
                match k {
                    0 => drop(c.configure_check().await.expect("configure check")),
                    1 => drop(c.configure().await.expect("configure")),
                    _ => drop(c.show_protocols(false, None).await.expect("show")),
                }
                v.push(secs(t.elapsed()) * 1000.0);
            }
        }
        [0, 1, 2].map(|k| quantile(&ms[k], 0.5))
    })
}

/// One configure per peer for the first `sample` peers: seconds for the
/// k-th (1-based) configure until peer k exists.
fn naive(rt: &tokio::runtime::Runtime, sample: usize) -> Vec<f64> {
    let (dir, bird) = setup("apnaive");
    let include = dir.path().join("etc/autopeer.conf");
    let all = peers(sample);
    let mut times = Vec::with_capacity(sample);
    for k in 1..=sample {
        fs::write(&include, render::render(&all[..k]).unwrap()).unwrap();
        let t0 = Instant::now();
        let out = birdc(&bird.ctl, &["configure"]);
        assert!(out.contains("Reconfigured"), "configure failed: {out}");
        let seen = rt.block_on(wait_protocols(
            &bird.ctl,
            &all[k - 1].name,
            1,
            Duration::from_millis(2),
            LIMIT,
        ));
        times.push(secs(seen - t0));
    }
    times
}

/// Least squares `t(k) = a + b k` over k = 1..=len.
fn fit(times: &[f64]) -> (f64, f64) {
    let n = times.len() as f64;
    let xs: Vec<f64> = (1..=times.len()).map(|k| k as f64).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = times.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(times).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

fn main() {
    if !common::benchmarking("burst") {
        return;
    }
    if !root_and_bird("burst") {
        return;
    }
    let n = arg("--peers", 1000);
    let big = arg("--check-peers", 10_000);
    let rounds = arg("--rounds", 3usize).max(1);
    print_machine();
    println!(
        "burst: {n} distinct sightings, batch {BATCH} (default: group commit), real bird2, \
         template passive, {rounds} rounds (each: spread, floor, one write, own apply)"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // Ratios are taken within each round (the machine is shared and its
    // speed drifts), then their median is printed.
    let (mut r_spread, mut r_once, mut r_own, mut r_own_nowrite) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let spread = run_daemon(&rt, n, Duration::from_secs(1));
        let (cmd, floor_all) = floor(&rt, n);
        let at_once = run_daemon(&rt, n, Duration::ZERO);
        let (write, own) = own_apply(&rt, n);
        let show = |what: &str, r: &DaemonRun| {
            let tail = &r.applies[r.applies.len().saturating_sub(4)..];
            println!(
                "round {round}: autopeer ({what}): all {n} in BIRD {:.3} s after the first line, \
                 {:.3} s after the last; {} configure, {} configure check; applies (added, ms): \
                 {} in all, the last: {:?}",
                secs(r.from_first),
                secs(r.from_last),
                r.configures,
                r.checks,
                r.applies.len(),
                tail
            );
        };
        show("lines spread over 1 s", &spread);
        show("lines in one write", &at_once);
        println!(
            "round {round}: floor: one hand-made configure of {n}: command {:.3} s, all {n} in BIRD {:.3} s",
            secs(cmd),
            secs(floor_all)
        );
        println!(
            "round {round}: autopeer's own apply of {n} (write+fsync, rename, show protocols, \
             configure, dir fsync): {:.3} s; write+fsyncs alone {:.3} s",
            secs(own),
            secs(write)
        );
        let f = secs(floor_all);
        r_spread.push(secs(spread.from_last) / f);
        r_once.push(secs(at_once.from_last) / f);
        r_own.push(secs(own) / secs(cmd));
        r_own_nowrite.push(secs(own.saturating_sub(write)) / secs(cmd));
    }
    for k in [n, big] {
        let [check, conf, show] = check_cost(&rt, k);
        println!(
            "configure check with {k} protocols loaded: {check:.1} ms \
             (configure of the unchanged config {conf:.1} ms, show protocols {show:.1} ms; median of 5)"
        );
    }
    let naive_times = naive(&rt, NAIVE_SAMPLE.min(n));
    let (a, b) = fit(&naive_times);
    let naive_measured: f64 = naive_times.iter().sum();
    let nf = n as f64;
    let naive_total = nf * a + b * nf * (nf + 1.0) / 2.0;
    println!(
        "naive: one configure per peer: first {} took {:.3} s (peer 1 {:.3} s, peer {} {:.3} s); \
         fit {:.4} s + {:.6} s x k; extrapolated to {n}: {:.1} s",
        naive_times.len(),
        naive_measured,
        naive_times.first().copied().unwrap_or(f64::NAN),
        naive_times.len(),
        naive_times.last().copied().unwrap_or(f64::NAN),
        a,
        b,
        naive_total
    );
    let med = |xs: &[f64]| quantile(xs, 0.5);
    println!(
        "ratio to floor, per round (median): spread, last line -> all in BIRD {} ({:.2}x, target <= 2x); \
         one write {} ({:.2}x, target <= 1.5x)",
        list(&r_spread, 2),
        med(&r_spread),
        list(&r_once, 2),
        med(&r_once)
    );
    println!(
        "ratio to the floor's configure command, per round (median): autopeer's own apply {} \
         ({:.2}x, target <= 1.2x); without the write+fsyncs {} ({:.2}x)",
        list(&r_own, 2),
        med(&r_own),
        list(&r_own_nowrite, 2),
        med(&r_own_nowrite)
    );
}
