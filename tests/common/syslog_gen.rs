//! A generated syslog of realistic, mostly irrelevant lines (sshd, CRON,
//! systemd, kernel netfilter to port 22, charon, postfix, BIRD's own
//! chatter, RFC 5424 lines) with one BIRD `Unexpected connect` line in
//! `trigger_every`. Shared by `benches/ingest.rs` and `tests/prefilter.rs`
//! (each includes this file with `#[path]`), so the prefilter is proved
//! on the very corpus it is timed on. Reproducible: no clock, no crate.

use std::fmt::Write as _;
use std::io::{self, Write};

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

/// Writes about `size` bytes of syslog to `w`, one trigger line in
/// `trigger_every`; returns (bytes, lines, triggers).
pub fn generate(w: &mut impl Write, size: u64, trigger_every: u64) -> io::Result<(u64, u64, u64)> {
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
        if lines % trigger_every == trigger_every - 1 {
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
        w.write_all(line.as_bytes())?;
        bytes += line.len() as u64;
        lines += 1;
    }
    w.flush()?;
    Ok((bytes, lines, triggers))
}
