//! Ingest: lines per second through autopeer's reader and through its
//! real tail, on a generated syslog of realistic, mostly irrelevant lines
//! (`tests/common/syslog_gen.rs`: sshd, CRON, systemd, kernel netfilter to
//! port 22, charon, postfix, BIRD's own chatter, RFC 5424 lines; one BIRD
//! `Unexpected connect` line in 5,000), beside `grep -cF 'Unexpected
//! connect'` on the same file, in the same run:
//!
//! 1. `grep -cF 'Unexpected connect' FILE` (the process's locale);
//! 2. full parsers, once, for comparison: a 1 MiB buffered reader, one
//!    `SystemTime::now()` and one `lines::parse_line` per line (what the
//!    tail did before the prefilter);
//! 3. prefiltered: 1 MiB reads, the complete lines of each handed to
//!    `lines::scan_lines` in place (what the tail does now, without it);
//! 4. tail: the real `autopeer::sources::tail::Tailer` on a path that does
//!    not exist yet; the file is then renamed onto it and the tailer reads
//!    it from its start, sending sightings into a channel that a task
//!    drains, until its line counter reaches the file's line count and
//!    every sighting it counted was received.
//!
//! 1, 3 and 4 run in turn `--rounds` times (default 3), each round printing
//! its own ratios, then the best time of each and their ratios. The
//! machine is shared; interleaving spreads its other load over all three.
//!
//! The file is generated in /tmp (or `--dir DIR`; default 1 GiB, `--size
//! 256M` etc.) and deleted at the end, pass or fail. It is read from memory
//! (the page cache, as it was just written, or tmpfs with `--dir
//! /dev/shm`; the machine needs that much free RAM).
//!
//! Run: `cargo bench --bench ingest [-- --size 1G --rounds 3 --dir /tmp]`.
//! No root needed.

mod common;
#[path = "../tests/common/syslog_gen.rs"]
mod syslog_gen;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use autopeer::sources::lines::{parse_line, scan_lines, LineOutcome, RawOutcome};
use autopeer::sources::tail::{TailStats, Tailer};
use common::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One trigger line in this many.
const TRIGGER_EVERY: u64 = 5000;

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'G' | 'g' => (&s[..s.len() - 1], 1u64 << 30),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// Writes about `size` bytes of syslog to `path`; returns (lines, triggers).
fn generate(path: &Path, size: u64) -> (u64, u64) {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let (_, lines, triggers) = syslog_gen::generate(&mut w, size, TRIGGER_EVERY).unwrap();
    (lines, triggers)
}

/// autopeer's reader without the tail around it: 1 MiB reads, complete
/// lines handed to `scan_lines` in place, the unfinished end moved to the
/// front for the next read.
fn scanned(path: &Path) -> (u64, u64) {
    let mut file = File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let (mut filled, mut lines, mut sightings) = (0usize, 0u64, 0u64);
    loop {
        assert!(filled < buf.len(), "a line longer than the buffer");
        let n = file.read(&mut buf[filled..]).unwrap();
        if n == 0 {
            break;
        }
        filled += n;
        let s = scan_lines(&buf[..filled], SystemTime::now(), |_, o| {
            if let RawOutcome::Text(LineOutcome::Sighting(_)) = o {
                sightings += 1;
            }
        });
        lines += s.lines;
        buf.copy_within(s.end..filled, 0);
        filled -= s.end;
    }
    (lines, sightings)
}

/// The full parsers on every line, as the tail read before the prefilter.
fn parsers(path: &Path) -> (u64, u64) {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).unwrap());
    let mut buf = Vec::with_capacity(1024);
    let (mut lines, mut sightings) = (0u64, 0u64);
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).unwrap() == 0 {
            break;
        }
        lines += 1;
        let raw = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if let Ok(text) = std::str::from_utf8(raw) {
            if let LineOutcome::Sighting(_) = parse_line(text, SystemTime::now()) {
                sightings += 1;
            }
        }
    }
    (lines, sightings)
}

/// Tail `target` (absent), then rename `file` onto it; returns when the
/// tailer has counted `lines` lines: (elapsed, sightings received).
fn tail(file: &Path, target: &Path, lines: u64) -> (Duration, u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tailer = Tailer::start(vec![target.to_owned()]).await.unwrap();
        let stats = Arc::new(TailStats::default());
        let token = CancellationToken::new();
        let (tx, mut rx) = mpsc::channel(4096);
        let received = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&received);
        let counter = tokio::spawn(async move {
            while rx.recv().await.is_some() {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        let task = tokio::spawn(tailer.run(tx, Arc::clone(&stats), token.clone()));
        let start = Instant::now();
        fs::rename(file, target).unwrap();
        // Every line counted and every sighting counted received.
        loop {
            let now = stats.snapshot();
            if now.lines >= lines && received.load(Ordering::Relaxed) >= now.sightings {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1800),
                "tail stalled at {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = start.elapsed();
        token.cancel();
        let _ = task.await;
        let _ = counter.await;
        (took, received.load(Ordering::Relaxed))
    })
}

/// `grep -cF 'Unexpected connect' FILE`: (time, its count).
fn grep(file: &Path) -> (Duration, String) {
    let t = Instant::now();
    let out = Command::new("grep")
        .args(["-cF", "Unexpected connect"])
        .arg(file)
        .output()
        .expect("run grep");
    let took = t.elapsed();
    (took, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    if !common::benchmarking("ingest") {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let size = arg("--size")
        .and_then(|v| parse_size(&v))
        .unwrap_or(1 << 30);
    let rounds: usize = arg("--rounds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    print_machine();
    // `--dir /dev/shm` where /tmp lacks the room (the file is read from
    // memory either way: the page cache, or tmpfs).
    let dir = tempfile::Builder::new()
        .prefix("apingest")
        .tempdir_in(arg("--dir").unwrap_or_else(|| "/tmp".into()))
        .expect("temp dir for the generated syslog");
    let file = dir.path().join("syslog");
    let tailed = dir.path().join("tailed.log");
    let t = Instant::now();
    let (lines, triggers) = generate(&file, size);
    let bytes = fs::metadata(&file).unwrap().len();
    println!(
        "ingest: {bytes} bytes, {lines} lines, {triggers} trigger lines (generated in {:.1} s)",
        secs(t.elapsed())
    );
    let locale = std::env::var("LC_ALL")
        .or_else(|_| std::env::var("LANG"))
        .unwrap_or_else(|_| "unset".into());
    let rate = |d: Duration| lines as f64 / secs(d) / 1e6;
    let mbps = |d: Duration| bytes as f64 / secs(d) / (1 << 20) as f64;
    let row = |what: &str, found: String, d: Duration| {
        println!(
            "  {what}: {found}, {:.2} s, {:.2} M lines/s, {:.0} MiB/s",
            secs(d),
            rate(d),
            mbps(d)
        );
    };

    // Before the prefilter, once: the full parsers on every line.
    let (g, count) = grep(&file);
    let t = Instant::now();
    let (plines, psightings) = parsers(&file);
    let parse = t.elapsed();
    println!("before:");
    row(
        &format!("grep -cF 'Unexpected connect' (locale {locale})"),
        format!("{count} lines"),
        g,
    );
    row(
        "full parsers, no prefilter (parse_line over a buffered reader)",
        format!("{plines} lines, {psightings} sightings"),
        parse,
    );
    println!(
        "  ratio to grep (time): full parsers {:.2}x",
        secs(parse) / secs(g)
    );

    // Then grep, autopeer's reader and its tail in turn, `rounds` times, so
    // that the machine's other load falls on all three alike.
    let mut best = [Duration::MAX; 3];
    for round in 1..=rounds {
        let (g, count) = grep(&file);
        let t = Instant::now();
        let (slines, ssightings) = scanned(&file);
        let scan = t.elapsed();
        let (tail_took, tail_sightings) = tail(&file, &tailed, lines);
        fs::rename(&tailed, &file).unwrap();
        println!("round {round} of {rounds}:");
        row(
            &format!("grep -cF 'Unexpected connect' (locale {locale})"),
            format!("{count} lines"),
            g,
        );
        row(
            "prefiltered (scan_lines over 1 MiB reads)",
            format!("{slines} lines, {ssightings} sightings"),
            scan,
        );
        row(
            "tail (Tailer, file renamed onto the watched path)",
            format!("{tail_sightings} sightings"),
            tail_took,
        );
        println!(
            "  ratio to grep (time): prefiltered {:.2}x, tail {:.2}x",
            secs(scan) / secs(g),
            secs(tail_took) / secs(g)
        );
        for (b, d) in best.iter_mut().zip([g, scan, tail_took]) {
            *b = (*b).min(d);
        }
    }
    let [g, scan, tail_took] = best;
    println!(
        "best of {rounds}: grep {:.2} s, prefiltered {:.2} s, tail {:.2} s; ratio to grep (time): prefiltered {:.2}x, tail {:.2}x",
        secs(g),
        secs(scan),
        secs(tail_took),
        secs(scan) / secs(g),
        secs(tail_took) / secs(g)
    );
    drop(dir);
}
