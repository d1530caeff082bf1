//! Pure parsers for the log lines that say "a BGP speaker knocked on us".
//!
//! One parser per known format; [`parse_line`] tells the formats apart and
//! dispatches. Every parser is a pure function over `&str`: no I/O, no
//! logging, no tokio. Work is bounded: lines longer than [`MAX_LINE_LEN`]
//! are rejected before any scanning. [`scan_lines`] reads a whole buffer
//! of lines as [`parse_raw`] would one by one, but parses only the few
//! lines that hold a trigger text (see [`NEEDLES`]).
//!
//! What must never happen here: a [`Sighting`] built from text that is not
//! exactly one of the formats below. Addresses are parsed into [`IpAddr`]
//! (never copied as text), interface names are checked against a safe
//! alphabet, and a [`Malformed`] carries a short reason, never the input.
//!
//! Decisions taken here (callers rely on them):
//! - An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is mapped to IPv4.
//! - Unspecified, multicast and broadcast addresses are [`Malformed::NotUnicast`];
//!   loopback is accepted (labs use `127.0.0.x`).
//! - A link-local IPv6 address must carry an interface where the format has
//!   one (`fe80::1%vti3`); kernel MD5 lines have none, so link-local there is
//!   [`Malformed::MissingIface`]. A netfilter line takes the interface from `IN=`.
//! - BIRD's message is accepted from syslog only under the ident `bird` or
//!   `bird6`; kernel formats only under `kernel` / `/kernel` without a PID
//!   (journald shows forged "kernel" lines with one).
//! - Kernel and netfilter lines count only for destination port 179 and a
//!   SYN without ACK.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::LazyLock;
use std::time::SystemTime;

use memchr::memmem;

use super::{Sighting, Trust, Via};

/// Lines longer than this are rejected unread ([`Malformed::TooLong`]).
/// A real trigger line is under 200 bytes.
pub const MAX_LINE_LEN: usize = 8192;

/// The BGP port that kernel and netfilter lines must name as destination.
pub const BGP_PORT: u16 = 179;

/// What one log line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// A trigger line with a valid address.
    Sighting(Sighting),
    /// Not a trigger line (most lines of a log).
    Irrelevant,
    /// It looked like a trigger, but a part of it was bad.
    Malformed(Malformed),
}

/// Why a trigger-looking line was refused. The text is short and never
/// contains the (possibly hostile) input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("line longer than {MAX_LINE_LEN} bytes")]
    TooLong,
    #[error("control character in a trigger line")]
    ControlChar,
    #[error("bad address")]
    BadAddress,
    #[error("address is not a unicast host address")]
    NotUnicast,
    #[error("bad port")]
    BadPort,
    #[error("bad interface name")]
    BadIface,
    #[error("link-local address without interface")]
    MissingIface,
    #[error("interface given for an address that is not link-local")]
    UnexpectedIface,
    #[error("missing field")]
    MissingField,
    #[error("field given twice")]
    DuplicateField,
}

/// The text BIRD logs (proto/bgp/bgp.c), up to the address.
const BIRD_MSG: &str = "BGP: Unexpected connect from unknown address ";

/// Substrings that make a line with control characters count as malformed
/// (instead of irrelevant).
const TRIGGER_MARKERS: [&str; 4] = [
    "Unexpected connect from unknown address",
    "MD5 Hash",
    "MD5 digest",
    "DPT=179",
];

/// BIRD's log classes (sysdep/unix/log.c).
const BIRD_CLASSES: [&str; 9] = [
    "DBG", "TRACE", "INFO", "RMT", "WARN", "ERR", "AUTH", "FATAL", "BUG",
];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parse one log line of any known format (the line without its newline).
///
/// Syslog lines (RFC 3164, RFC 3339 high precision, RFC 5424) are recognised
/// by their header and dispatched by ident (see [`parse_syslog`]); anything
/// else is tried as BIRD's own log file ([`parse_bird_file`]).
pub fn parse_line(line: &str, at: SystemTime) -> LineOutcome {
    if line.len() > MAX_LINE_LEN {
        return LineOutcome::Malformed(Malformed::TooLong);
    }
    let line = line.trim_end_matches(['\r', '\n']);
    if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return if TRIGGER_MARKERS.iter().any(|m| line.contains(m)) {
            LineOutcome::Malformed(Malformed::ControlChar)
        } else {
            LineOutcome::Irrelevant
        };
    }
    match syslog_header(line) {
        Header::Syslog(msg) => dispatch_syslog(&msg, at),
        Header::Broken => LineOutcome::Irrelevant,
        Header::NotSyslog => parse_bird_file(line, at),
    }
}

/// BIRD's own log file (`log "/var/log/bird.log" all;`), any version:
///
/// ```text
/// 2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address 10.88.0.2 (port 47271)
/// 2026-11-23 08:09:16 <WARN> BGP: Unexpected connect from unknown address 127.0.0.7 (port 58781)
/// 2026-11-23 08:06:21.658 <WARN> BGP: Unexpected connect from unknown address fe80::8c44:f3ff:feaf:81f0%vlab0 (port 44578)
/// ```
///
/// The time prefix comes from `timeformat log` and is not parsed; it may be
/// any short text of letters, digits, spaces and `-:.,/+_[]` (BIRD 3 adds a
/// `[%04x]` thread id) that does not contain `": "` (every syslog tag ends
/// with a colon, so a syslog line never passes as BIRD's file). A class
/// other than `WARN` is [`LineOutcome::Irrelevant`]. Gives `Via::BirdLog`,
/// `Trust::Bird`.
pub fn parse_bird_file(line: &str, at: SystemTime) -> LineOutcome {
    if line.len() > MAX_LINE_LEN {
        return LineOutcome::Malformed(Malformed::TooLong);
    }
    let Some(lt) = line.find('<') else {
        return LineOutcome::Irrelevant;
    };
    // `"%s <%s> "`: the time, one space, the class.
    let prefix = match lt.checked_sub(1).and_then(|i| line.get(..i)) {
        Some(p) if line.get(lt - 1..lt) == Some(" ") => p,
        _ => return LineOutcome::Irrelevant,
    };
    if !bird_prefix_ok(prefix) {
        return LineOutcome::Irrelevant;
    }
    let rest = &line[lt + 1..];
    let Some((class, msg)) = rest.split_once("> ") else {
        return LineOutcome::Irrelevant;
    };
    if class != "WARN" {
        return LineOutcome::Irrelevant;
    }
    match bird_message(msg) {
        None => LineOutcome::Irrelevant,
        Some(Err(e)) => LineOutcome::Malformed(e),
        Some(Ok((addr, port, iface))) => {
            sighting(addr, Some(port), iface, Via::BirdLog, Trust::Bird, at)
        }
    }
}

/// A syslog line, in any of the file formats rsyslog and journald write:
///
/// ```text
/// Nov 23 08:05:55 rr1 bird: BGP: Unexpected connect from unknown address 10.88.0.5 (port 43327)
/// Nov 23 08:05:55 rr1 bird6[812]: BGP: Unexpected connect from unknown address 2001:db8:201::21 (port 50412)
/// 2026-11-23T08:05:55.123456+00:00 rr1 bird: BGP: Unexpected connect from unknown address 10.88.0.6 (port 40001)
/// <28>1 2026-11-23T08:05:55.123456+00:00 rr1 bird - - - BGP: Unexpected connect from unknown address 10.88.0.7 (port 40002)
/// <28>Nov 23 08:05:55 bird: BGP: Unexpected connect from unknown address 127.0.0.7 (port 43327)
/// ```
///
/// BIRD's message counts only under ident `bird` or `bird6`
/// (`Via::Syslog`, `Trust::Unverified`). Under ident `kernel` or `/kernel`
/// (no PID), the message is tried as [`parse_junos`], [`parse_kernel_md5`]
/// and [`parse_netfilter`], after an optional `[ 6942.234111] ` stamp.
/// Every other ident, and a line that is not syslog, is irrelevant.
pub fn parse_syslog(line: &str, at: SystemTime) -> LineOutcome {
    if line.len() > MAX_LINE_LEN {
        return LineOutcome::Malformed(Malformed::TooLong);
    }
    match syslog_header(line) {
        Header::Syslog(msg) => dispatch_syslog(&msg, at),
        Header::Broken | Header::NotSyslog => LineOutcome::Irrelevant,
    }
}

/// The JUNOS/FreeBSD kernel message (the text after `kernel: `):
///
/// ```text
/// Mar  9 18:48:53  vrr2 kernel: tcp_auth_ok: Packet from 212.23.38.1:60042 unexpectedly has MD5 digest
/// ```
///
/// `msg` is `tcp_auth_ok: Packet from 212.23.38.1:60042 unexpectedly has MD5 digest`.
/// Only `unexpectedly has MD5 digest` counts (`missing`, `wrong`, `AUTH`
/// are irrelevant). IPv6 is accepted only bracketed (`[2001:db8::2]:179`),
/// since `A:P` is ambiguous for it. Gives `Via::Junos`, `Trust::Unverified`.
pub fn parse_junos(msg: &str, at: SystemTime) -> LineOutcome {
    let Some(rest) = msg.strip_prefix("tcp_auth_ok: Packet from ") else {
        return LineOutcome::Irrelevant;
    };
    let Some(endpoint) = rest.strip_suffix(" unexpectedly has MD5 digest") else {
        return LineOutcome::Irrelevant;
    };
    let (addr, port) = if let Some(v6) = endpoint.strip_prefix('[') {
        match v6.split_once("]:") {
            Some(pair) => pair,
            None => return LineOutcome::Malformed(Malformed::BadAddress),
        }
    } else {
        match endpoint.rsplit_once(':') {
            Some((a, _)) if a.contains(':') => {
                return LineOutcome::Malformed(Malformed::BadAddress)
            }
            Some(pair) => pair,
            None => return LineOutcome::Malformed(Malformed::BadPort),
        }
    };
    let result = host_addr(addr)
        .and_then(|a| no_link_local(a).map(|()| a))
        .and_then(|a| port_number(port).map(|p| (a, p)));
    match result {
        Ok((addr, port)) => sighting(addr, Some(port), None, Via::Junos, Trust::Unverified, at),
        Err(e) => LineOutcome::Malformed(e),
    }
}

/// The Linux kernel's unexpected-MD5 message (the text after `kernel: ` and
/// the optional `[ seconds]` stamp), in the two kernel ranges that print it:
///
/// ```text
/// Mar  9 18:44:57 defiant kernel: [73380.243954] TCP: Unexpected MD5 Hash found for 172.16.1.2.42448->172.16.1.1.179 [S]
/// Mar  9 19:11:09 defiant kernel: [74951.775994] TCP: Unexpected MD5 Hash found for [2001:db8:1::2].39444->[2001:db8:1::1].179 [S]
/// Jul 28 00:51:02 petter-laptop kernel: [610722.208028] MD5 Hash NOT expected but found (74.229.245.29, 51697)->(83.143.116.162, 179)
/// ```
///
/// 6.7-6.10 (`tcp_hash_fail`, flags must be a SYN without ACK) and
/// 2.6.20-2.6.27 (IPv6 there is 8 zero-padded groups). The destination port
/// must be 179. Wrong-key lines (`MD5 Hash failed`, `mismatch`, `not found`,
/// `expected but NOT found`) are irrelevant: they are not unknown peers.
/// Gives `Via::Kernel`, `Trust::Unverified`.
pub fn parse_kernel_md5(msg: &str, at: SystemTime) -> LineOutcome {
    let parsed = if let Some(rest) = msg.strip_prefix("TCP: Unexpected MD5 Hash found for ") {
        kernel_md5_tcp_hash_fail(rest)
    } else if let Some(rest) = msg.strip_prefix("MD5 Hash NOT expected but found (") {
        kernel_md5_2_6(rest)
    } else {
        return LineOutcome::Irrelevant;
    };
    match parsed {
        Ok(Some((addr, port))) => {
            sighting(addr, Some(port), None, Via::Kernel, Trust::Unverified, at)
        }
        Ok(None) => LineOutcome::Irrelevant,
        Err(e) => LineOutcome::Malformed(e),
    }
}

/// A netfilter LOG / nft `log` line for a TCP SYN to port 179 (the text
/// after `kernel: ` and the optional `[ seconds]` stamp):
///
/// ```text
/// Nov 23 08:33:00 vm kernel: [ 6942.234111] BGP-SYN: IN=vR OUT= MAC=76:62:8b:28:a7:06:d6:a9:2b:db:e5:56:08:00 SRC=10.213.0.2 DST=10.213.0.1 LEN=72 TOS=0x00 PREC=0x00 TTL=64 ID=37369 DF PROTO=TCP SPT=60546 DPT=179 WINDOW=64240 RES=0x00 SYN URGP=0
/// ```
///
/// Needs `IN=` non-empty (an inbound packet, not our own SYN going out),
/// `PROTO=TCP`, `DPT=179`, the `SYN` flag and no `ACK` flag; else
/// irrelevant. `SRC=` and `SPT=` must then be valid, each field once. A
/// link-local source takes its interface from `IN=`. Gives
/// `Via::Netfilter`, `Trust::Unverified`.
pub fn parse_netfilter(msg: &str, at: SystemTime) -> LineOutcome {
    let Some(start) = msg.find("IN=") else {
        return LineOutcome::Irrelevant;
    };
    let mut fields = NetfilterFields::default();
    for token in msg[start..].split(' ').filter(|t| !t.is_empty()) {
        let slot = match token.split_once('=') {
            Some(("IN", v)) => (&mut fields.input, v),
            Some(("OUT", v)) => (&mut fields.output, v),
            Some(("SRC", v)) => (&mut fields.src, v),
            Some(("PROTO", v)) => (&mut fields.proto, v),
            Some(("SPT", v)) => (&mut fields.spt, v),
            Some(("DPT", v)) => (&mut fields.dpt, v),
            Some(_) => continue,
            None => {
                match token {
                    "SYN" => fields.syn = true,
                    "ACK" => fields.ack = true,
                    _ => {}
                }
                continue;
            }
        };
        if slot.0.replace(slot.1).is_some() {
            return LineOutcome::Malformed(Malformed::DuplicateField);
        }
    }
    let (Some(input), Some(_out), Some(proto), Some(dpt)) =
        (fields.input, fields.output, fields.proto, fields.dpt)
    else {
        return LineOutcome::Irrelevant;
    };
    if input.is_empty() || proto != "TCP" || dpt != "179" || !fields.syn || fields.ack {
        return LineOutcome::Irrelevant;
    }
    let (Some(src), Some(spt)) = (fields.src, fields.spt) else {
        return LineOutcome::Malformed(Malformed::MissingField);
    };
    let result = host_addr(src).and_then(|addr| {
        let port = port_number(spt)?;
        let iface = if is_link_local(addr) {
            if !iface_ok(input) {
                return Err(Malformed::BadIface);
            }
            Some(input.to_owned())
        } else {
            None
        };
        Ok((addr, port, iface))
    });
    match result {
        Ok((addr, port, iface)) => sighting(
            addr,
            Some(port),
            iface,
            Via::Netfilter,
            Trust::Unverified,
            at,
        ),
        Err(e) => LineOutcome::Malformed(e),
    }
}

// ===== many lines at once =====

/// What one line read from a file is. Bytes that are not UTF-8 never
/// reach a parser; readers count such lines apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawOutcome {
    /// What [`parse_line`] says of the text (or [`Malformed::TooLong`],
    /// unread, for a line over [`MAX_LINE_LEN`] bytes).
    Text(LineOutcome),
    /// Not UTF-8 (and not too long).
    NotUtf8,
}

/// One line as read from a file, without its `\n`, parsed in full: over
/// [`MAX_LINE_LEN`] bytes (a trailing `\r` included) it is
/// [`Malformed::TooLong`] unread; else one trailing `\r` is dropped, bytes
/// that are not UTF-8 are [`RawOutcome::NotUtf8`], and text goes to
/// [`parse_line`]. [`scan_lines`] must agree with this on every line.
pub fn parse_raw(raw: &[u8], at: SystemTime) -> RawOutcome {
    if raw.len() > MAX_LINE_LEN {
        return RawOutcome::Text(LineOutcome::Malformed(Malformed::TooLong));
    }
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    match std::str::from_utf8(raw) {
        Ok(text) => RawOutcome::Text(parse_line(text, at)),
        Err(_) => RawOutcome::NotUtf8,
    }
}

/// Every line of at most [`MAX_LINE_LEN`] bytes of which [`parse_line`]
/// says anything but [`LineOutcome::Irrelevant`] contains one of these:
/// - BIRD's message, through any header or none ([`BIRD_MSG`] holds the
///   first, and so does the first of [`TRIGGER_MARKERS`]);
/// - `MD5 `: the kernel's `MD5 Hash` prefixes and JUNOS's `MD5 digest`
///   suffix (and two of [`TRIGGER_MARKERS`]);
/// - `IN=`: [`parse_netfilter`] gives up at once without it; with it, a
///   line to another port than 179 can still be malformed (a field given
///   twice), so `DPT=179` alone would not do;
/// - `DPT=179`: the last of [`TRIGGER_MARKERS`], which makes a line with a
///   control character malformed even without `IN=`.
///
/// A needle holds no `\n`, so a match never spans two lines. Checked
/// line for line against [`parse_raw`] by `tests/prefilter.rs` (fuzz
/// inputs, fixtures, a generated syslog, random lines).
const NEEDLES: [&str; 4] = [
    "Unexpected connect from unknown address",
    "MD5 ",
    "IN=",
    "DPT=179",
];

static FINDERS: LazyLock<Vec<memmem::Finder<'static>>> =
    LazyLock::new(|| NEEDLES.iter().map(memmem::Finder::new).collect());

/// How far [`scan_lines`] got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Complete lines read (each ended by `\n`).
    pub lines: u64,
    /// Offset just past the last `\n`: where an unfinished line begins.
    pub end: usize,
}

/// Reads the complete lines of `buf` as [`parse_raw`] would one by one and
/// calls `notable` with the byte range (without `\n`) and outcome of each
/// line that is not [`LineOutcome::Irrelevant`], in order. Bytes after the
/// last `\n` are left alone ([`Scanned::end`]).
///
/// Most lines of a log are irrelevant, and this never looks at them one by
/// one: one search per [`NEEDLES`] entry, one UTF-8 check and one length
/// check run over the whole buffer, and only the lines they point at are
/// parsed (and get no allocation, no copy).
pub fn scan_lines(
    buf: &[u8],
    at: SystemTime,
    mut notable: impl FnMut(Range<usize>, RawOutcome),
) -> Scanned {
    let Some(last) = memchr::memrchr(b'\n', buf) else {
        return Scanned::default();
    };
    let buf = buf.get(..=last).unwrap_or_default();
    // Where to look, and whether only `IN=` was found there.
    let mut marks: Vec<(usize, bool)> = Vec::new();
    for (finder, needle) in FINDERS.iter().zip(NEEDLES) {
        let netfilter_only = needle == "IN=";
        marks.extend(finder.find_iter(buf).map(|at| (at, netfilter_only)));
    }
    mark_not_utf8(buf, &mut marks);
    mark_overlong(buf, &mut marks);
    marks.sort_unstable();
    let mut marks = marks.into_iter().peekable();
    while let Some((mark, netfilter_only)) = marks.next() {
        let before = buf.get(..mark).unwrap_or_default();
        let start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
        let after = buf.get(mark..).unwrap_or_default();
        let end = memchr::memchr(b'\n', after).map_or(last, |i| mark + i);
        // The other marks in this line.
        let mut only_in = netfilter_only;
        while let Some(&(other, netfilter_only)) = marks.peek() {
            if other > end {
                break;
            }
            only_in &= netfilter_only;
            marks.next();
        }
        let line = buf.get(start..end).unwrap_or_default();
        if only_in && !may_repeat_field(line) {
            continue;
        }
        let outcome = parse_raw(line, at);
        if outcome != RawOutcome::Text(LineOutcome::Irrelevant) {
            notable(start..end, outcome);
        }
    }
    Scanned {
        lines: memchr::memchr_iter(b'\n', buf).count() as u64,
        end: last + 1,
    }
}

/// Whether `line`, in which `IN=` is the only needle, could name one of
/// [`parse_netfilter`]'s fields twice ([`Malformed::DuplicateField`], the
/// only outcome but [`LineOutcome::Irrelevant`] left to it): some
/// `FIELD=` of [`NETFILTER_FIELDS`] appears twice. Only a necessary
/// condition (`PHYSIN=` counts as `IN=`); the full parser decides.
fn may_repeat_field(line: &[u8]) -> bool {
    let mut seen = 0u32;
    for eq in memchr::memchr_iter(b'=', line) {
        let before = line.get(..eq).unwrap_or_default();
        let Some(i) = NETFILTER_FIELDS
            .iter()
            .position(|f| before.ends_with(f.as_bytes()))
        else {
            continue;
        };
        if seen & (1 << i) != 0 {
            return true;
        }
        seen |= 1 << i;
    }
    false
}

/// Marks where each line of `buf` (ending in `\n`) that is not UTF-8 goes
/// wrong. A `\n` is never part of a multi-byte character, so `buf` is
/// UTF-8 exactly when each of its lines is.
fn mark_not_utf8(buf: &[u8], marks: &mut Vec<(usize, bool)>) {
    let mut from = 0;
    while let Some(rest) = buf.get(from..) {
        let Err(e) = std::str::from_utf8(rest) else {
            return;
        };
        let bad = from + e.valid_up_to();
        marks.push((bad, false));
        match memchr::memchr(b'\n', buf.get(bad..).unwrap_or_default()) {
            Some(i) => from = bad + i + 1,
            None => return,
        }
    }
}

/// Marks the start of each line of `buf` (ending in `\n`) longer than
/// [`MAX_LINE_LEN`], a window of `MAX_LINE_LEN + 1` bytes at a time: a
/// window from a line's start with a `\n` in it holds only short lines up
/// to its last `\n`; one without is the start of a long line.
fn mark_overlong(buf: &[u8], marks: &mut Vec<(usize, bool)>) {
    let mut start = 0;
    while start < buf.len() {
        let window = buf
            .get(start..buf.len().min(start + MAX_LINE_LEN + 1))
            .unwrap_or_default();
        if let Some(i) = memchr::memrchr(b'\n', window) {
            start += i + 1;
            continue;
        }
        marks.push((start, false));
        match memchr::memchr(b'\n', buf.get(start..).unwrap_or_default()) {
            Some(i) => start += i + 1,
            None => return,
        }
    }
}

// ===== helpers =====

/// The fields [`parse_netfilter`] reads, each at most once.
const NETFILTER_FIELDS: [&str; 6] = ["IN", "OUT", "SRC", "PROTO", "SPT", "DPT"];

#[derive(Default)]
struct NetfilterFields<'a> {
    input: Option<&'a str>,
    output: Option<&'a str>,
    src: Option<&'a str>,
    proto: Option<&'a str>,
    spt: Option<&'a str>,
    dpt: Option<&'a str>,
    syn: bool,
    ack: bool,
}

fn sighting(
    addr: IpAddr,
    port: Option<u16>,
    iface: Option<String>,
    via: Via,
    trust: Trust,
    at: SystemTime,
) -> LineOutcome {
    LineOutcome::Sighting(Sighting {
        addr,
        port,
        iface,
        via,
        trust,
        at,
    })
}

/// BIRD's bare message (`BGP: Unexpected connect from unknown address A
/// (port P)`), as syslog and the journal's `MESSAGE` carry it, without any
/// header. The caller knows where it came from and how far to trust it.
pub fn parse_bird_message(msg: &str, via: Via, trust: Trust, at: SystemTime) -> LineOutcome {
    if msg.len() > MAX_LINE_LEN {
        return LineOutcome::Malformed(Malformed::TooLong);
    }
    match bird_message(msg.trim_end_matches(['\n', '\r'])) {
        None => LineOutcome::Irrelevant,
        Some(Err(e)) => LineOutcome::Malformed(e),
        Some(Ok((addr, port, iface))) => sighting(addr, Some(port), iface, via, trust, at),
    }
}

/// Address, source port and interface from BIRD's message.
type BirdPeer = (IpAddr, u16, Option<String>);

/// `BGP: Unexpected connect from unknown address %I%J (port %d)`.
/// `None`: not this message. `Some(Err)`: this message with a bad part.
fn bird_message(msg: &str) -> Option<Result<BirdPeer, Malformed>> {
    let rest = msg.strip_prefix(BIRD_MSG)?;
    Some(bird_message_rest(rest))
}

fn bird_message_rest(rest: &str) -> Result<BirdPeer, Malformed> {
    let (addr_text, port_text) = rest.split_once(" (port ").ok_or(Malformed::MissingField)?;
    let port_text = port_text
        .trim_end_matches([' ', '\t'])
        .strip_suffix(')')
        .ok_or(Malformed::BadPort)?;
    let port = port_number(port_text)?;
    let (addr, iface) = match addr_text.split_once('%') {
        Some((a, ifname)) => {
            let addr = host_addr(a)?;
            if !is_link_local(addr) {
                return Err(Malformed::UnexpectedIface);
            }
            if !iface_ok(ifname) {
                return Err(Malformed::BadIface);
            }
            (addr, Some(ifname.to_owned()))
        }
        None => {
            let addr = host_addr(addr_text)?;
            no_link_local(addr)?;
            (addr, None)
        }
    };
    Ok((addr, port, iface))
}

/// A unicast host address; IPv4-mapped IPv6 becomes IPv4.
fn host_addr(text: &str) -> Result<IpAddr, Malformed> {
    let charset_ok = !text.is_empty()
        && text.len() <= 45
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':');
    if !charset_ok {
        return Err(Malformed::BadAddress);
    }
    let addr: IpAddr = text.parse().map_err(|_| Malformed::BadAddress)?;
    let addr = match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    let unicast = match addr {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4 == Ipv4Addr::BROADCAST),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    };
    if unicast {
        Ok(addr)
    } else {
        Err(Malformed::NotUnicast)
    }
}

fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V6(v6) => v6_link_local(&v6),
        IpAddr::V4(_) => false,
    }
}

fn v6_link_local(v6: &Ipv6Addr) -> bool {
    (v6.segments()[0] & 0xffc0) == 0xfe80
}

fn no_link_local(addr: IpAddr) -> Result<(), Malformed> {
    if is_link_local(addr) {
        Err(Malformed::MissingIface)
    } else {
        Ok(())
    }
}

/// 1 to 5 ASCII digits, 1..=65535.
fn port_number(text: &str) -> Result<u16, Malformed> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::BadPort);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(Malformed::BadPort),
        Ok(p) => Ok(p),
    }
}

/// A Linux interface name safe to write into BIRD's config: the one rule
/// of [`crate::bird::lang::is_iface`], which config and rendering use too.
pub use crate::bird::lang::is_iface as iface_ok;

/// The text before ` <CLASS> ` in BIRD's log file.
fn bird_prefix_ok(prefix: &str) -> bool {
    prefix.len() <= 64
        && !prefix.contains(": ")
        && prefix.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b' ' | b'-' | b':' | b'.' | b',' | b'/' | b'+' | b'_' | b'[' | b']'
                )
        })
}

/// `msg` starting with `<CLASS> ` for a known BIRD class.
fn starts_with_bird_class(msg: &str) -> bool {
    msg.strip_prefix('<')
        .and_then(|r| r.split_once("> "))
        .is_some_and(|(class, _)| BIRD_CLASSES.contains(&class))
}

// ----- syslog -----

struct SyslogMsg<'a> {
    ident: &'a str,
    pid: Option<&'a str>,
    msg: &'a str,
}

enum Header<'a> {
    /// A syslog line with its tag split off.
    Syslog(SyslogMsg<'a>),
    /// It starts like syslog (PRI or timestamp) but the rest is not a valid
    /// header: never BIRD's file, never a trigger.
    Broken,
    /// Not syslog (BIRD's own file, or a BIRD line with a syslog-like
    /// `timeformat log`).
    NotSyslog,
}

fn syslog_header(line: &str) -> Header<'_> {
    let mut rest = line;
    if let Some(after) = rest.strip_prefix('<') {
        let Some((pri, after)) = after.split_once('>') else {
            return Header::NotSyslog;
        };
        if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
            // `<WARN> ...` with an empty `timeformat log` is not a PRI.
            return Header::NotSyslog;
        }
        if let Some(v1) = after.strip_prefix("1 ") {
            return match rfc5424(v1) {
                Some(m) => Header::Syslog(m),
                None => Header::Broken,
            };
        }
        rest = after;
    }
    let after_ts = match rfc3164_time(rest).or_else(|| rfc3339_time(rest)) {
        Some(r) => r,
        None if rest.len() == line.len() => return Header::NotSyslog,
        None => return Header::Broken,
    };
    let Some(after_ts) = after_ts.strip_prefix(' ') else {
        return Header::Broken;
    };
    let after_ts = after_ts.trim_start_matches(' ');
    if starts_with_bird_class(after_ts) {
        // BIRD with `timeformat log "%b %d %T"` or similar.
        return Header::NotSyslog;
    }
    let (first, after_first) = after_ts.split_once(' ').unwrap_or((after_ts, ""));
    if let Some((ident, pid)) = tag(first) {
        return Header::Syslog(SyslogMsg {
            ident,
            pid,
            msg: after_first,
        });
    }
    if !hostname_ok(first) {
        return Header::Broken;
    }
    let after_host = after_first.trim_start_matches(' ');
    let (second, msg) = after_host.split_once(' ').unwrap_or((after_host, ""));
    match tag(second) {
        Some((ident, pid)) => Header::Syslog(SyslogMsg { ident, pid, msg }),
        None => Header::Broken,
    }
}

/// `Mmm dd hh:mm:ss[.frac]`, day space-padded or not. Returns the rest.
fn rfc3164_time(s: &str) -> Option<&str> {
    let month = s.get(..3)?;
    if !MONTHS.contains(&month) {
        return None;
    }
    let s = s.get(3..)?.strip_prefix(' ')?.trim_start_matches(' ');
    let day_len = s.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=2).contains(&day_len) {
        return None;
    }
    let s = s.get(day_len..)?.strip_prefix(' ')?;
    let s = clock(s)?;
    Some(fraction(s))
}

/// `hh:mm:ss`, returns the rest.
fn clock(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let shape = b.len() >= 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit());
    if shape {
        s.get(8..)
    } else {
        None
    }
}

/// An optional `.digits`, returns the rest.
fn fraction(s: &str) -> &str {
    match s.strip_prefix('.') {
        Some(r) => {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                s
            } else {
                &r[n..]
            }
        }
        None => s,
    }
}

/// `YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|+hhmm)`, returns the rest.
fn rfc3339_time(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let date = b.len() >= 11
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    if !date {
        return None;
    }
    let rest = fraction(clock(s.get(11..)?)?);
    if let Some(r) = rest.strip_prefix('Z') {
        return Some(r);
    }
    let r = rest.strip_prefix(['+', '-'])?;
    let digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
    if let (Some(h), Some(m)) = (r.get(..2), r.get(3..5)) {
        if digits(h) && r.get(2..3) == Some(":") && digits(m) {
            return r.get(5..);
        }
    }
    match (r.get(..2), r.get(2..4)) {
        (Some(h), Some(m)) if digits(h) && digits(m) => r.get(4..),
        _ => None,
    }
}

/// RFC 5424 after `<PRI>1 `:
/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`.
fn rfc5424(s: &str) -> Option<SyslogMsg<'_>> {
    let (ts, s) = s.split_once(' ')?;
    if ts != "-" && rfc3339_time(ts) != Some("") {
        return None;
    }
    let (host, s) = s.split_once(' ')?;
    if host != "-" && !hostname_ok(host) {
        return None;
    }
    let (app, s) = s.split_once(' ')?;
    if !ident_ok(app) {
        return None;
    }
    let (procid, s) = s.split_once(' ')?;
    let pid = match procid {
        "-" => None,
        p if (1..=10).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => Some(p),
        _ => return None,
    };
    let (msgid, s) = s.split_once(' ')?;
    if msgid.is_empty() || msgid.len() > 32 {
        return None;
    }
    let after_sd = structured_data(s)?;
    let msg = match after_sd {
        "" => "",
        r => r.strip_prefix(' ')?,
    };
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some(SyslogMsg {
        ident: app,
        pid,
        msg,
    })
}

/// `-` or one or more `[id param="value"...]` elements (values may escape
/// `"`, `\` and `]`). Returns the rest.
fn structured_data(s: &str) -> Option<&str> {
    if let Some(r) = s.strip_prefix('-') {
        return Some(r);
    }
    let mut rest = s;
    if !rest.starts_with('[') {
        return None;
    }
    while rest.starts_with('[') {
        let mut in_quote = false;
        let mut escaped = false;
        let mut end = None;
        for (i, c) in rest.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quote => escaped = true,
                '"' => in_quote = !in_quote,
                ']' if !in_quote => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        rest = rest.get(end? + 1..)?;
    }
    Some(rest)
}

/// `name:` or `name[pid]:`. Returns (name, pid).
fn tag(token: &str) -> Option<(&str, Option<&str>)> {
    let body = token.strip_suffix(':')?;
    let (name, pid) = match body.strip_suffix(']') {
        Some(b) => {
            let (name, pid) = b.split_once('[')?;
            let pid_ok = (1..=10).contains(&pid.len()) && pid.bytes().all(|b| b.is_ascii_digit());
            if !pid_ok {
                return None;
            }
            (name, Some(pid))
        }
        None => (body, None),
    };
    if ident_ok(name) {
        Some((name, pid))
    } else {
        None
    }
}

fn ident_ok(name: &str) -> bool {
    (1..=48).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'))
}

fn hostname_ok(host: &str) -> bool {
    (1..=255).contains(&host.len())
        && !host.ends_with(':')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn dispatch_syslog(m: &SyslogMsg<'_>, at: SystemTime) -> LineOutcome {
    match m.ident {
        "bird" | "bird6" => match bird_message(m.msg) {
            None => LineOutcome::Irrelevant,
            Some(Err(e)) => LineOutcome::Malformed(e),
            Some(Ok((addr, port, iface))) => {
                sighting(addr, Some(port), iface, Via::Syslog, Trust::Unverified, at)
            }
        },
        "kernel" | "/kernel" if m.pid.is_none() => {
            let msg = strip_kernel_stamp(m.msg);
            match parse_junos(msg, at) {
                LineOutcome::Irrelevant => {}
                other => return other,
            }
            match parse_kernel_md5(msg, at) {
                LineOutcome::Irrelevant => {}
                other => return other,
            }
            parse_netfilter(msg, at)
        }
        _ => LineOutcome::Irrelevant,
    }
}

/// Drop a leading `[ 6942.234111] ` (imklog keeps the monotonic stamp).
fn strip_kernel_stamp(msg: &str) -> &str {
    let Some(inner) = msg.strip_prefix('[') else {
        return msg;
    };
    let Some((stamp, rest)) = inner.split_once("] ") else {
        return msg;
    };
    if stamp.len() <= 24
        && stamp
            .bytes()
            .all(|b| b == b' ' || b == b'.' || b.is_ascii_digit())
    {
        rest
    } else {
        msg
    }
}

// ----- kernel MD5 -----

/// After `TCP: Unexpected MD5 Hash found for `:
/// `172.16.1.2.42448->172.16.1.1.179 [S]` or
/// `[2001:db8:1::2].39444->[2001:db8:1::1].179 [S]`.
fn kernel_md5_tcp_hash_fail(rest: &str) -> Result<Option<(IpAddr, u16)>, Malformed> {
    let rest = rest.trim_end_matches(' ');
    let (src, rest) = rest.split_once("->").ok_or(Malformed::MissingField)?;
    let (dst, flags) = rest.split_once(" [").ok_or(Malformed::MissingField)?;
    let flags = flags.strip_suffix(']').ok_or(Malformed::MissingField)?;
    if !flags
        .bytes()
        .all(|b| matches!(b, b'F' | b'S' | b'R' | b'P' | b'.'))
    {
        return Err(Malformed::MissingField);
    }
    let (_, dport) = dotted_endpoint(dst)?;
    let (addr, sport) = dotted_endpoint(src)?;
    no_link_local(addr)?;
    if dport != BGP_PORT || !flags.contains('S') || flags.contains('.') {
        return Ok(None);
    }
    Ok(Some((addr, sport)))
}

/// `a.b.c.d.port` or `[v6].port`.
fn dotted_endpoint(s: &str) -> Result<(IpAddr, u16), Malformed> {
    let (addr, port) = if let Some(v6) = s.strip_prefix('[') {
        v6.split_once("].").ok_or(Malformed::BadAddress)?
    } else {
        let (a, p) = s.rsplit_once('.').ok_or(Malformed::BadPort)?;
        if a.contains(':') {
            return Err(Malformed::BadAddress);
        }
        (a, p)
    };
    Ok((host_addr(addr)?, port_number(port)?))
}

/// After `MD5 Hash NOT expected but found (`:
/// `74.229.245.29, 51697)->(83.143.116.162, 179)`.
fn kernel_md5_2_6(rest: &str) -> Result<Option<(IpAddr, u16)>, Malformed> {
    let rest = rest.trim_end_matches(' ');
    let (src, dst) = rest.split_once(")->(").ok_or(Malformed::MissingField)?;
    let dst = dst.strip_suffix(')').ok_or(Malformed::MissingField)?;
    let (_, dport) = comma_endpoint(dst)?;
    let (addr, sport) = comma_endpoint(src)?;
    no_link_local(addr)?;
    if dport != BGP_PORT {
        return Ok(None);
    }
    Ok(Some((addr, sport)))
}

/// `addr, port`.
fn comma_endpoint(s: &str) -> Result<(IpAddr, u16), Malformed> {
    let (addr, port) = s.split_once(", ").ok_or(Malformed::MissingField)?;
    Ok((host_addr(addr)?, port_number(port)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: SystemTime = SystemTime::UNIX_EPOCH;

    fn addr(line: &str) -> Option<IpAddr> {
        match parse_line(line, AT) {
            LineOutcome::Sighting(s) => Some(s.addr),
            _ => None,
        }
    }

    #[test]
    fn ipv4_mapped_becomes_ipv4() {
        let line = "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address ::ffff:10.88.0.2 (port 1)";
        assert_eq!(addr(line), Some("10.88.0.2".parse().unwrap()));
    }

    #[test]
    fn ports_at_the_edges() {
        assert_eq!(port_number("65535"), Ok(65535));
        assert_eq!(port_number("1"), Ok(1));
        assert_eq!(port_number("0"), Err(Malformed::BadPort));
        assert_eq!(port_number("65536"), Err(Malformed::BadPort));
        assert_eq!(port_number("+1"), Err(Malformed::BadPort));
        assert_eq!(port_number("000001"), Err(Malformed::BadPort));
    }

    #[test]
    fn iface_names() {
        assert!(iface_ok("vti3"));
        assert!(iface_ok("eth0.100"));
        assert!(iface_ok("eth0:1"));
        assert!(iface_ok("a234567890abcde"));
        assert!(!iface_ok("a234567890abcdef"));
        assert!(!iface_ok(""));
        assert!(!iface_ok(".."));
        assert!(!iface_ok("vti3;"));
        assert!(!iface_ok("vti 3"));
    }

    #[test]
    fn rfc3339_offsets() {
        assert_eq!(
            rfc3339_time("2026-11-23T08:05:55.123456+00:00 x"),
            Some(" x")
        );
        assert_eq!(
            rfc3339_time("2026-11-23T08:05:55.841422+0000 x"),
            Some(" x")
        );
        assert_eq!(rfc3339_time("2026-11-23T08:05:55Z x"), Some(" x"));
        assert_eq!(rfc3339_time("2026-11-23 08:05:55 x"), None);
    }

    /// What `NEEDLES` claims of the parsers' fixed texts.
    #[test]
    fn every_trigger_text_holds_a_needle() {
        let texts = [
            BIRD_MSG,
            "TCP: Unexpected MD5 Hash found for ",
            "MD5 Hash NOT expected but found (",
            " unexpectedly has MD5 digest",
            "IN=",
        ];
        for t in texts.iter().chain(&TRIGGER_MARKERS) {
            assert!(NEEDLES.iter().any(|n| t.contains(n)), "{t}");
        }
        for f in NETFILTER_FIELDS {
            let twice = format!("IN=a OUT= {f}=1 {f}=2");
            assert_eq!(
                parse_netfilter(&twice, AT),
                LineOutcome::Malformed(Malformed::DuplicateField),
                "{twice}"
            );
            assert!(may_repeat_field(twice.as_bytes()), "{twice}");
        }
    }

    #[test]
    fn structured_data_with_escapes() {
        assert_eq!(structured_data("- msg"), Some(" msg"));
        assert_eq!(structured_data(r#"[a@1 k="x\"]y"][b@2] msg"#), Some(" msg"));
        assert_eq!(structured_data(r#"[a@1 k="unterminated"#), None);
    }
}
