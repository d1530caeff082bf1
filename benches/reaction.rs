//! Reaction: from a BIRD log line being written to the real autopeer
//! daemon sending `configure`, over N sightings (default 200), one at a
//! time, with `batch` at its default (0s: group commit, no wait) and at
//! 100ms (a minimum spacing between applies), in the same run.
//!
//! BIRD is a fake control socket in this process (no BGP at all): it
//! answers the greeting, `show protocols` (no peers) and `configure`, and
//! timestamps the arrival of each command with the same monotonic clock
//! that timed the write of the log line. Prints p50/p90/p99/max for
//! `configure` (after a new connection, the include written and fsynced,
//! and a `show protocols`). That a burst still costs one or two
//! `configure`s with the default is `--bench burst`'s figure.
//!
//! Run: `cargo bench --bench reaction [-- --sightings N]`. No root needed.
//! Prints figures only. The daemon is killed by pid and its temp dir
//! removed, pass or fail.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use autopeer::bird::render;
use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::mpsc;

const SHOW_PROTOCOLS: &str = "2002-Name       Proto      Table      State  Since         Info\n\
1002-device1    Device     ---        up     08:03:59.487  \n0000 \n";

/// One command as the fake BIRD saw it: when it arrived, when its
/// connection was accepted, and when that connection last sent `show
/// protocols` (the apply's first command after the include's write).
struct Seen {
    at: Instant,
    accepted: Instant,
    show: Option<Instant>,
    cmd: String,
}

/// Serves BIRD's control protocol on `path`, sending every command to `tx`.
fn fake_bird(path: &Path, tx: mpsc::UnboundedSender<Seen>) {
    let listener = UnixListener::bind(path).expect("bind fake BIRD socket");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let accepted = Instant::now();
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                if w.write_all(b"0001 BIRD 2.0.12 ready.\n").await.is_err() {
                    return;
                }
                let mut line = String::new();
                let mut show = None;
                loop {
                    line.clear();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let at = Instant::now();
                    let cmd = line.trim_end().to_owned();
                    let reply: &str = if cmd.starts_with("show protocols") {
                        SHOW_PROTOCOLS
                    } else if cmd.starts_with("configure check") {
                        "0002-Reading configuration from /fake/bird.conf\n0020 Configuration OK\n"
                    } else if cmd == "configure" {
                        "0002-Reading configuration from /fake/bird.conf\n0003 Reconfigured\n"
                    } else if cmd == "show status" {
                        "1000-BIRD 2.0.12\n1011-Router ID is 10.0.0.1\n\
                         1011-Current server time is 2026-11-23 08:00:00.000\n\
                         1011-Last reboot on 2026-11-23 07:00:00.000\n\
                         1011-Last reconfiguration on 2026-11-23 07:00:00.000\n\
                         0013 Daemon is up and running\n"
                    } else {
                        "0000 \n"
                    };
                    if cmd.starts_with("show protocols") {
                        show = Some(at);
                    }
                    let _ = tx.send(Seen {
                        at,
                        accepted,
                        show,
                        cmd,
                    });
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

struct Figures {
    configure: Vec<f64>,
    /// line written -> the apply's connection accepted.
    connect: Vec<f64>,
    /// connection accepted -> its `show protocols` (read, write, fsync of
    /// the include, rename).
    write: Vec<f64>,
}

async fn run(batch: &str, n: usize) -> Figures {
    let dir = tempdir("apreact");
    let d = dir.path();
    // bird.conf is only read (the template must exist); no BIRD runs.
    let files = BirdFiles::router(d);
    fs::write(&files.conf, bird_conf(d, free_port())).unwrap();
    fs::write(d.join("etc/autopeer.conf"), render::render(&[]).unwrap()).unwrap();
    let log = files.log.clone();
    fs::write(&log, "").unwrap();
    let ctl = files.ctl.clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    fake_bird(&ctl, tx);
    let config = d.join("run/autopeer.toml");
    fs::write(
        &config,
        autopeer_toml(d, &ctl, &log, batch, "10.99.0.0/16", 100_000),
    )
    .unwrap();
    let daemon = start_daemon(&d.join("run"), &config);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    let mut figures = Figures {
        configure: Vec::with_capacity(n),
        connect: Vec::with_capacity(n),
        write: Vec::with_capacity(n),
    };
    for i in 0..n {
        while rx.try_recv().is_ok() {}
        let line = knock_line(&addr_of(i), 40000);
        let written = Instant::now();
        f.write_all(line.as_bytes()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = tokio::time::timeout_at(deadline, rx.recv()).await;
            let Ok(Some(seen)) = got else {
                panic!(
                    "no configure within 10 s of sighting {i}; daemon log:\n{}",
                    fs::read_to_string(d.join("run/daemon.out")).unwrap_or_default()
                );
            };
            if seen.cmd == "configure" {
                let ms = |d: Duration| secs(d) * 1000.0;
                figures.configure.push(ms(seen.at - written));
                figures
                    .connect
                    .push(ms(seen.accepted.saturating_duration_since(written)));
                let show = seen.show.unwrap_or(seen.at);
                figures.write.push(ms(show - seen.accepted));
                break;
            }
        }
        // Let the apply finish and the roster go idle before the next line.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.stop();
    figures
}

fn describe(xs: &[f64]) -> String {
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        quantile(xs, 0.5),
        quantile(xs, 0.9),
        quantile(xs, 0.99),
        quantile(xs, 1.0)
    )
}

fn main() {
    if !common::benchmarking("reaction") {
        return;
    }
    let n: usize = arg("--sightings", 200);
    print_machine();
    println!("reaction: {n} sightings one at a time, real daemon, fake BIRD socket");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut p99 = None;
    for (batch, what) in [("0s", " (default)"), ("100ms", "")] {
        let f = rt.block_on(run(batch, n));
        println!(
            "batch {batch}{what}: line written -> configure: {}",
            describe(&f.configure)
        );
        println!(
            "batch {batch}{what}:   of which line written -> apply connects: {}",
            describe(&f.connect)
        );
        println!(
            "batch {batch}{what}:   of which connect -> show protocols (include read, written, fsynced, renamed): {}",
            describe(&f.write)
        );
        p99.get_or_insert(quantile(&f.configure, 0.99));
    }
    if let Some(p) = p99 {
        println!("reaction p99 with the default: {p:.1} ms (target: <= 10 ms)");
    }
}
