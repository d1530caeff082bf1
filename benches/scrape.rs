//! Scrape: what `GET /metrics` costs with a roster of N peers (default
//! 10,000) beside real bird2 loaded with the same N protocols (template
//! `passive on` on 127.0.0.1: nothing dials), and whether back-to-back
//! scrapes delay the control socket.
//!
//! Prints: the answer's size, scrape latency quantiles over `--scrapes`
//! sequential scrapes, and `show status` latency on the control socket,
//! first idle, then while a thread scrapes without pause.
//!
//! Run: `cargo bench --bench scrape [-- --peers N --scrapes K]`.
//! Needs root and bird2. Every process it starts is killed by pid and its
//! temp dir removed, pass or fail.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autopeer::bird::render;
use common::*;

fn scrape(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> String {
    match rt.block_on(autopeer::metrics::probe::get(
        addr,
        "/metrics",
        Duration::from_secs(30),
    )) {
        Ok((200, body)) => body,
        other => panic!("scrape failed: {other:?}"),
    }
}

/// `show status` latencies in ms, `k` times.
fn status_ms(ctl: &std::path::Path, k: usize) -> Vec<f64> {
    (0..k)
        .map(|_| {
            let t = Instant::now();
            let out = birdc(ctl, &["show", "status"]);
            assert!(out.contains("Metrics at"), "{out}");
            secs(t.elapsed()) * 1e3
        })
        .collect()
}

fn summary(xs: &[f64]) -> String {
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        quantile(xs, 0.5),
        quantile(xs, 0.9),
        quantile(xs, 1.0)
    )
}

fn main() {
    if !common::benchmarking("scrape") {
        return;
    }
    if !root_and_bird("scrape") {
        return;
    }
    let n: usize = arg("--peers", 10_000);
    let k: usize = arg("--scrapes", 50);
    print_machine();
    println!("scrape: {n} peers, {k} scrapes");

    let dir = tempdir("apscrape");
    let d = dir.path();
    let files = BirdFiles::router(d);
    fs::write(&files.conf, bird_conf(d, free_port())).unwrap();
    fs::write(
        d.join("etc/autopeer.conf"),
        render::render(&peers(n)).unwrap(),
    )
    .unwrap();
    fs::write(d.join("log/quiet.log"), "").unwrap();
    let bird = RealBird::launch(files, &[], Duration::from_secs(120));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(wait_protocols(
        &bird.ctl,
        "clients_",
        n,
        Duration::from_millis(200),
        Duration::from_secs(300),
    ));

    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = d.join("run/autopeer.toml");
    let toml = autopeer_toml(
        d,
        &bird.ctl,
        &d.join("log/quiet.log"),
        "100ms",
        "10.99.0.0/16",
        100_000,
    );
    let toml = toml.replace("[agent]\n", &format!("[agent]\nmetrics = \"{addr}\"\n"));
    fs::write(&config, toml).unwrap();
    let daemon = start_daemon(&d.join("run"), &config);
    let ctl = d.join("run/autopeer.ctl");

    // Until the observer has read BIRD's state of every peer.
    let deadline = Instant::now() + Duration::from_secs(120);
    let body = loop {
        let body = scrape(&rt, addr);
        let polled: f64 = body
            .lines()
            .filter(|l| l.starts_with("autopeer_peers{") && !l.contains("state=\"absent\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if polled as usize >= n {
            break body;
        }
        assert!(Instant::now() < deadline, "peers never polled:\n{body}");
        std::thread::sleep(Duration::from_millis(500));
    };
    println!(
        "answer: {} bytes, {} lines",
        body.len(),
        body.lines().count()
    );

    let lat: Vec<f64> = (0..k)
        .map(|_| {
            let t = Instant::now();
            scrape(&rt, addr);
            secs(t.elapsed()) * 1e3
        })
        .collect();
    println!("scrape latency: {}", summary(&lat));

    println!("show status, idle: {}", summary(&status_ms(&ctl, 20)));
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut count = 0u64;
            while !stop.load(Ordering::Relaxed) {
                scrape(&rt, addr);
                count += 1;
            }
            count
        })
    };
    let t = Instant::now();
    let busy = status_ms(&ctl, 20);
    stop.store(true, Ordering::Relaxed);
    let scrapes = scraper.join().unwrap();
    println!(
        "show status, scraped without pause: {} ({} scrapes in {:.1} s)",
        summary(&busy),
        scrapes,
        secs(t.elapsed())
    );
    daemon.stop();
    drop(bird);
}
