//! Every fixture in fixtures/logs/ parsed line by line against exact
//! expectations (address, port, interface, via, trust), plus hostile input.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use autopeer::sources::lines::{parse_line, LineOutcome, Malformed, MAX_LINE_LEN};
use autopeer::sources::{Sighting, Trust, Via};

const AT: SystemTime = SystemTime::UNIX_EPOCH;

#[derive(Debug)]
enum E {
    Irr,
    Mal(Malformed),
    S(&'static str, u16, Option<&'static str>, Via, Trust),
    /// Invalid UTF-8: never reaches the parser.
    Bytes,
}
use E::{Irr, Mal};

fn bird(addr: &'static str, port: u16) -> E {
    E::S(addr, port, None, Via::BirdLog, Trust::Bird)
}
fn bird_ll(addr: &'static str, iface: &'static str, port: u16) -> E {
    E::S(addr, port, Some(iface), Via::BirdLog, Trust::Bird)
}
fn sys(addr: &'static str, port: u16) -> E {
    E::S(addr, port, None, Via::Syslog, Trust::Unverified)
}
fn kern(addr: &'static str, port: u16) -> E {
    E::S(addr, port, None, Via::Kernel, Trust::Unverified)
}
fn junos(addr: &'static str, port: u16) -> E {
    E::S(addr, port, None, Via::Junos, Trust::Unverified)
}
fn nf(addr: &'static str, port: u16) -> E {
    E::S(addr, port, None, Via::Netfilter, Trust::Unverified)
}

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fixtures", "logs", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parse `name` line by line and compare each outcome with `expected`.
fn check(name: &str, expected: &[E]) {
    let bytes = fixture(name);
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "{name}: {} lines, {} expectations",
        lines.len(),
        expected.len()
    );
    for (i, (raw, want)) in lines.iter().zip(expected).enumerate() {
        let n = i + 1;
        let got = match std::str::from_utf8(raw) {
            Ok(text) => parse_line(text, AT),
            Err(_) => {
                assert!(
                    matches!(want, E::Bytes),
                    "{name}:{n}: invalid UTF-8, expected {want:?}"
                );
                continue;
            }
        };
        match (want, &got) {
            (Irr, LineOutcome::Irrelevant) => {}
            (Mal(w), LineOutcome::Malformed(g)) if w == g => {}
            (E::S(addr, port, iface, via, trust), LineOutcome::Sighting(s)) => {
                let want = Sighting {
                    addr: addr.parse::<IpAddr>().unwrap(),
                    port: Some(*port),
                    iface: iface.map(str::to_owned),
                    via: *via,
                    trust: *trust,
                    at: AT,
                };
                assert_eq!(s, &want, "{name}:{n}");
            }
            _ => panic!("{name}:{n}: expected {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn bird_2_0_file() {
    check(
        "bird-2.0.log",
        &[
            Irr,
            bird("10.88.0.2", 47271),
            bird("10.88.0.2", 47272),
            Irr,
            Irr,
            Irr,
            bird("2001:db8:201::21", 50412),
            bird_ll("fe80::8c44:f3ff:feaf:81f0", "vlab0", 44578),
            Irr,
            Irr,
            bird("10.213.0.2", 47472),
            bird("192.0.2.7", 179),   // BIRD 3 thread id in the prefix
            bird("192.0.2.8", 33000), // timeformat log "%b %d %T"
            bird("192.0.2.9", 33001), // timeformat log ""
            Irr,
            Irr,
            bird("10.88.0.30", 40100), // ::ffff:10.88.0.30 mapped to IPv4
        ],
    );
}

/// Captured from the real BIRD 3.1.8 (Debian 13's bird3): every line
/// carries the thread id, `TIME [tid] <CLASS> msg`. The second knock,
/// 127.0.0.9, is the address of a configured but disabled protocol: 3.x
/// logs it as unknown, where 2.x closes such a connection silently.
#[test]
fn bird_3_1_file() {
    check(
        "bird-3.1.log",
        &[
            Irr,
            Irr,
            bird("127.0.0.7", 53569),
            bird("127.0.0.9", 39679),
            bird("::1", 60303),
        ],
    );
}

/// Captured from the real BIRD 2.17.6 (Debian 13's bird2), same set-up as
/// bird-3.1.log: no thread id, and no line for the disabled protocol's
/// address 127.0.0.9.
#[test]
fn bird_2_17_file() {
    check(
        "bird-2.17.log",
        &[Irr, Irr, bird("::1", 55581), bird("127.0.0.7", 56111)],
    );
}

#[test]
fn bird_1_6_file() {
    check(
        "bird-1.6.log",
        &[
            Irr,
            bird("127.0.0.7", 58781),
            bird_ll("fe80::8c44:f3ff:feaf:81f0", "vlab0", 39948),
            bird("2001:db8::5", 41000),
            Irr,
            Irr,
            Irr,
        ],
    );
}

#[test]
fn syslog_rfc3164() {
    check(
        "syslog-rfc3164.log",
        &[
            Irr,
            sys("10.88.0.5", 43327),
            sys("10.88.0.6", 43328),
            sys("2001:db8:201::22", 50413),
            E::S(
                "fe80::1",
                50414,
                Some("vti3"),
                Via::Syslog,
                Trust::Unverified,
            ),
            Irr,
            Irr,
            Irr,
            sys("10.88.0.7", 43329),
            sys("127.0.0.7", 43327),
            sys("10.88.0.8", 43330),
            Irr,
        ],
    );
}

#[test]
fn syslog_rfc3339() {
    check(
        "syslog-rfc3339.log",
        &[
            Irr,
            sys("10.88.0.6", 40001),
            sys("2001:db8:201::23", 40002),
            sys("10.88.0.9", 40003),
            sys("10.88.0.10", 40004),
            nf("10.213.0.2", 60546),
            Irr,
            Irr,
        ],
    );
}

#[test]
fn syslog_rfc5424() {
    check(
        "syslog-rfc5424.log",
        &[
            Irr,
            sys("10.88.0.7", 40002),
            sys("2001:db8:201::24", 40005),
            sys("10.88.0.11", 40006),
            sys("10.88.0.12", 40007),
            nf("fd00:213::2", 40280),
            Irr,
            Irr,
        ],
    );
}

#[test]
fn kernel_md5() {
    check(
        "kern-md5.log",
        &[
            kern("172.16.1.2", 42448),
            Irr, // wrong key
            kern("2001:db8:1::2", 39444),
            Irr, // wrong key
            Irr, // not port 179
            Irr, // not a SYN
            kern("74.229.245.29", 51697),
            kern("2001:db8::2", 51698),
            Irr,
            Irr,
            Irr,
            Irr,
            kern("192.0.2.66", 40000), // a spoofed one looks the same: Unverified
            Irr,                       // "kernel[pid]": journald's mark of a forgery
        ],
    );
}

#[test]
fn junos_messages() {
    check(
        "junos-messages.log",
        &[
            Irr,
            junos("212.23.38.1", 60042),
            Irr,
            junos("118.143.96.75", 36222),
            Irr,
            junos("2001:db8::9", 36224),
            Irr,
        ],
    );
}

#[test]
fn netfilter() {
    check(
        "netfilter.log",
        &[
            nf("10.213.0.2", 60546),
            nf("fd00:213::2", 40280),
            Irr, // DPT=1179
            Irr, // SYN+ACK
            Irr, // outbound (IN= empty)
            E::S(
                "fe80::1",
                40281,
                Some("vti3"),
                Via::Netfilter,
                Trust::Unverified,
            ),
            Irr, // UDP
            Irr, // DPT=22
            nf("10.213.0.7", 60550),
        ],
    );
}

#[test]
fn hostile_lines_exact() {
    use Malformed::*;
    check(
        "hostile.log",
        &[
            Irr,
            Irr,
            Irr,
            Irr,
            Irr,
            Irr,
            Irr,
            Irr,
            Irr,
            Irr,
            Irr,
            Irr,
            Irr,
            Mal(BadAddress),
            Mal(BadAddress),
            Mal(MissingField),
            Mal(BadAddress),
            Mal(BadPort),
            Mal(BadPort),
            Mal(BadPort),
            Mal(BadPort),
            Mal(BadPort),
            Mal(BadAddress),
            Mal(BadAddress),
            Mal(BadAddress),
            Mal(MissingIface),
            Mal(BadIface),
            Mal(BadIface),
            Mal(BadIface),
            Mal(UnexpectedIface),
            Mal(NotUnicast),
            Mal(NotUnicast),
            Mal(NotUnicast),
            Mal(MissingField),
            Mal(BadAddress),
            Mal(BadPort),
            Mal(BadAddress),
            Irr,
            Mal(BadAddress),
            Mal(MissingIface),
            Irr,
            Mal(BadAddress),
            Mal(DuplicateField),
            Mal(BadPort),
            Irr,
            Mal(BadIface),
            Mal(ControlChar),
            Mal(ControlChar),
            Irr,
        ],
    );
}

#[test]
fn invalid_utf8_file() {
    check(
        "invalid-utf8.log",
        &[
            bird("10.88.0.20", 1000),
            E::Bytes,
            E::Bytes,
            bird("10.88.0.22", 1002),
            E::Bytes,
            Irr,
            E::Bytes,
            bird("2001:db8::23", 1003),
        ],
    );
}

#[test]
fn huge_lines_are_rejected_quickly() {
    let trigger = "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address 10.88.0.2 (port 1)";
    let mut huge = trigger.repeat((1 << 20) / trigger.len() + 1);
    assert!(huge.len() > 1 << 20);
    let start = Instant::now();
    assert_eq!(
        parse_line(&huge, AT),
        LineOutcome::Malformed(Malformed::TooLong)
    );
    huge.truncate(MAX_LINE_LEN + 1);
    assert_eq!(
        parse_line(&huge, AT),
        LineOutcome::Malformed(Malformed::TooLong)
    );
    // Just under the limit: scanned, never a sighting (trailing garbage).
    let near = format!("{trigger}{}", "<".repeat(MAX_LINE_LEN - trigger.len()));
    assert_eq!(near.len(), MAX_LINE_LEN);
    assert!(!matches!(parse_line(&near, AT), LineOutcome::Sighting(_)));
    let many_lt = "<".repeat(MAX_LINE_LEN);
    assert_eq!(parse_line(&many_lt, AT), LineOutcome::Irrelevant);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn malformed_reason_never_echoes_input() {
    let line = "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address 10.88.0.2\"; protocol bgp x { (port 1)";
    let LineOutcome::Malformed(m) = parse_line(line, AT) else {
        panic!("expected malformed");
    };
    let text = m.to_string();
    assert!(
        !text.contains("protocol") && !text.contains("10.88"),
        "{text}"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const TEMPLATES: [&str; 5] = [
        "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address 10.88.0.2 (port 47271)",
        "Nov 23 08:05:55 rr1 bird: BGP: Unexpected connect from unknown address fe80::1%vti3 (port 43327)",
        "<28>1 2026-11-23T08:05:55.123456+00:00 rr1 bird - - - BGP: Unexpected connect from unknown address 10.88.0.7 (port 40002)",
        "Mar  9 18:44:57 defiant kernel: [73380.243954] TCP: Unexpected MD5 Hash found for [2001:db8:1::2].39444->[2001:db8:1::1].179 [S]",
        "Nov 23 08:33:00 vm kernel: [ 6942.234111] BGP-SYN: IN=vR OUT= SRC=10.213.0.2 DST=10.213.0.1 LEN=72 PROTO=TCP SPT=60546 DPT=179 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    ];

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse_line(&s, AT);
        }

        /// Inserting hostile characters anywhere into a valid line never
        /// yields an interface name outside the safe alphabet, nor a
        /// sighting when the insertion lands inside the address.
        #[test]
        fn insertions_never_smuggle_text(
            t in 0..TEMPLATES.len(),
            pos in 0usize..200,
            ins in prop::sample::select(vec!["\"", ";", " ", "{", "}", "x", "%", "\0", "\n", "]", "[", ":"]),
        ) {
            let base = TEMPLATES[t];
            let pos = pos.min(base.len());
            let mut line = base.to_owned();
            line.insert_str(pos, ins);
            if let LineOutcome::Sighting(s) = parse_line(&line, AT) {
                if let Some(iface) = &s.iface {
                    prop_assert!(iface.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b)));
                }
                // A trailing newline is the line's own end and is trimmed.
                let trailing_newline = ins == "\n" && pos == base.len();
                prop_assert!(!ins.contains('\0'));
                prop_assert!(!ins.contains('\n') || trailing_newline);
            }
        }
    }
}
