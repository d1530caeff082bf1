//! Ingest: lines per second through autopeer's parsers and through its
//! real tail, on a generated syslog of realistic, mostly irrelevant lines
//! (sshd, CRON, systemd, kernel netfilter to port 22, charon, postfix,
//! BIRD's own chatter, RFC 5424 lines; one BIRD `Unexpected connect` line
//! in 5,000), beside `grep -cF 'Unexpected connect'` on the same file, in
//! the same run:
//!
//! 1. `grep -cF 'Unexpected connect' FILE` (the process's locale);
//! 2. parsers: a 1 MiB buffered reader, one `SystemTime::now()` and one
//!    `autopeer::sources::lines::parse_line` per line (what the tail does);
//! 3. tail: the real `autopeer::sources::tail::Tailer` on a path that does
//!    not exist yet; the file is then renamed onto it and the tailer reads
//!    it from its start, sending sightings into a channel that a task
//!    drains, until its line counter reaches the file's line count.
//!
//! The file is generated in /tmp (default 1 GiB, `--size 256M` etc.) and
//! deleted at the end, pass or fail. It is read from the page cache (it
//! was just written; the machine needs that much free RAM).
//!
//! Run: `cargo bench --bench ingest [-- --size 1G]`. No root needed.

mod common;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use autopeer::sources::lines::{parse_line, LineOutcome};
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

/// xorshift64*: reproducible noise without a crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes about `size` bytes of syslog to `path`; returns (lines, triggers).
fn generate(path: &Path, size: u64) -> (u64, u64) {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut bytes, mut lines, mut triggers) = (0u64, 0u64, 0u64);
    let mut line = String::with_capacity(512);
    while bytes < size {
        line.clear();
        let secs = lines / 200;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let ts = format!("Nov 23 {h:02}:{m:02}:{s:02}");
        let pid = 1000 + rng.below(60000);
        let a = rng.below(250) + 1;
        let b = rng.below(250) + 1;
        let port = 1024 + rng.below(64000);
        use std::fmt::Write as _;
        if lines % TRIGGER_EVERY == TRIGGER_EVERY - 1 {
            triggers += 1;
            let _ = write!(
                line,
                "{ts} rr1 bird: BGP: Unexpected connect from unknown address 10.99.{a}.{b} (port {port})"
            );
        } else {
            let _ = match rng.below(12) {
                0 => write!(line, "{ts} rr1 sshd[{pid}]: Accepted publickey for ops from 192.0.2.{a} port {port} ssh2: ED25519 SHA256:n3Vw1H0bQmX4pQyqk5vM2q0s0cD2k8bYp4nH1rT7yWc"),
                1 => write!(line, "{ts} rr1 sshd[{pid}]: Invalid user admin from 203.0.113.{a} port {port}"),
                2 => write!(line, "{ts} rr1 CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"),
                3 => write!(line, "{ts} rr1 systemd[1]: Started session-{pid}.scope - Session {pid} of User ops."),
                4 => write!(line, "{ts} rr1 kernel: [{pid}.{port:06}] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.{a} DST=192.0.2.1 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID={pid} DF PROTO=TCP SPT={port} DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0"),
                5 => write!(line, "{ts} rr1 charon: 12[IKE] CHILD_SA net-net{{{a}}} established with SPIs c{pid:x}_i {port:x}_o and TS 10.{a}.0.0/16 === 10.{b}.0.0/16"),
                6 => write!(line, "{ts} rr1 postfix/smtpd[{pid}]: connect from unknown[198.51.100.{a}]"),
                7 => write!(line, "{ts} rr1 bird: spoke_{a}: Received: Hold timer expired"),
                8 => write!(line, "{ts} rr1 bird: spoke_{a}: State changed to up"),
                9 => write!(line, "<30>1 2026-11-23T{h:02}:{m:02}:{s:02}.{port:06}+00:00 rr1 systemd 1 - - Starting apt-daily.service - Daily apt download activities..."),
                10 => write!(line, "{ts} rr1 kernel: [{pid}.{port:06}] TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies."),
                _ => write!(line, "{ts} rr1 systemd-networkd[{pid}]: vti{a}: Link UP"),
            };
        }
        line.push('\n');
        w.write_all(line.as_bytes()).unwrap();
        bytes += line.len() as u64;
        lines += 1;
    }
    w.flush().unwrap();
    (lines, triggers)
}

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
        let counter = tokio::spawn(async move {
            let mut n = 0u64;
            while rx.recv().await.is_some() {
                n += 1;
            }
            n
        });
        let task = tokio::spawn(tailer.run(tx, Arc::clone(&stats), token.clone()));
        let start = Instant::now();
        fs::rename(file, target).unwrap();
        while stats.snapshot().lines < lines {
            assert!(
                start.elapsed() < Duration::from_secs(1800),
                "tail stalled at {:?}",
                stats.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = start.elapsed();
        token.cancel();
        let _ = task.await;
        let got = counter.await.unwrap_or(0);
        (took, got)
    })
}

fn main() {
    if !common::benchmarking("ingest") {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let size = args
        .iter()
        .position(|a| a == "--size")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| parse_size(v))
        .unwrap_or(1 << 30);
    print_machine();
    let dir = tempdir("apingest");
    let file = dir.path().join("syslog");
    let t = Instant::now();
    let (lines, triggers) = generate(&file, size);
    let bytes = fs::metadata(&file).unwrap().len();
    println!(
        "ingest: {bytes} bytes, {lines} lines, {triggers} trigger lines (generated in {:.1} s)",
        secs(t.elapsed())
    );

    let t = Instant::now();
    let out = Command::new("grep")
        .args(["-cF", "Unexpected connect"])
        .arg(&file)
        .output()
        .expect("run grep");
    let grep = t.elapsed();
    let grep_count = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let locale = std::env::var("LC_ALL")
        .or_else(|_| std::env::var("LANG"))
        .unwrap_or_else(|_| "unset".into());

    let t = Instant::now();
    let (plines, psightings) = parsers(&file);
    let parse = t.elapsed();

    let (tail_took, tail_sightings) = tail(&file, &dir.path().join("tailed.log"), lines);

    let rate = |d: Duration| lines as f64 / secs(d) / 1e6;
    let mbps = |d: Duration| bytes as f64 / secs(d) / (1 << 20) as f64;
    println!(
        "grep -cF 'Unexpected connect' (locale {locale}): {grep_count} lines, {:.2} s, {:.1} M lines/s, {:.0} MiB/s",
        secs(grep),
        rate(grep),
        mbps(grep)
    );
    println!(
        "parsers (parse_line over a buffered reader): {plines} lines, {psightings} sightings, {:.2} s, {:.2} M lines/s, {:.0} MiB/s",
        secs(parse),
        rate(parse),
        mbps(parse)
    );
    println!(
        "tail (Tailer, file renamed onto the watched path): {tail_sightings} sightings, {:.2} s, {:.2} M lines/s, {:.0} MiB/s",
        secs(tail_took),
        rate(tail_took),
        mbps(tail_took)
    );
    println!(
        "ratio to grep (time): parsers {:.2}x, tail {:.2}x",
        secs(parse) / secs(grep),
        secs(tail_took) / secs(grep)
    );
    drop(dir);
}
