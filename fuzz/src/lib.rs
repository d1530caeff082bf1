//! The properties the fuzz targets check, one function per target, each
//! taking arbitrary bytes.
//!
//! Shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/*.rs`, one line
//! each) and by the regression replay test (`tests/fuzz_regressions.rs`
//! includes this file with `#[path]`), so a saved input is replayed
//! through exactly the code that found it. It may depend only on
//! `autopeer`, `toml` and std. A property that fails panics; nothing else
//! here may panic. It must not do I/O, except [`config_load`], which reads
//! nothing but creates one empty base directory.
//!
//! Input layouts (so the fuzzer can steer sizes and read boundaries):
//! - framers: `[cfg][seed] body...`; `seed` drives a small generator of
//!   chunk lengths, so the same body is pushed whole and in pieces.
//! - NHRP framer: in the body, `0xFE k` expands to `k * 512` bytes of `x`,
//!   so the 64 KiB message cap is reachable from short inputs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use autopeer::bird::{conf, render, reply};
use autopeer::config::Config;
use autopeer::ctl::proto;
use autopeer::sources::{lines, nhrp, Sighting};

/// A property: panics when it fails on these bytes.
pub type Property = fn(&[u8]);

/// Every target by name: the name is also the directory of its seeds
/// (`fuzz/corpus/NAME`) and of its regression inputs (`fixtures/fuzz/NAME`).
pub const TARGETS: &[(&str, Property)] = &[
    ("reply_framer", reply_framer),
    ("log_lines", log_lines),
    ("conf_scan", conf_scan),
    ("include_parse", include_parse),
    ("config_load", config_load),
    ("ctl_command", ctl_command),
    ("nhrp", nhrp_message),
];

/// Chunk lengths 1..=32 from a one-byte seed (a tiny LCG); the same seed
/// always splits the same way.
fn split(body: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut x = u32::from(seed);
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = ((x >> 16) % 32 + 1) as usize;
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out
}

/// `[cfg][seed] body` → (cfg, seed, body); missing bytes read as 0.
fn header(data: &[u8]) -> (u8, u8, &[u8]) {
    match data {
        [] => (0, 0, &[]),
        [c] => (*c, 0, &[]),
        [c, s, body @ ..] => (*c, *s, body),
    }
}

// ------------------------------------------------------------ BIRD replies

/// One framer outcome with errors reduced to their kind (the quoted
/// excerpt legitimately depends on how much was buffered).
#[derive(Debug, PartialEq)]
enum Got {
    Frame(reply::Frame),
    Error(std::mem::Discriminant<reply::FrameError>),
}

/// Pull frames until `Ok(None)`; a loop that never ends is a hang.
fn drain(f: &mut reply::Framer, bound: usize, out: &mut Vec<Got>) {
    for _ in 0..=bound {
        match f.next_frame() {
            Ok(None) => {
                let cap = f.max_line();
                assert!(f.buffered() <= cap, "framer holds {} > {cap}", f.buffered());
                return;
            }
            Ok(Some(frame)) => out.push(Got::Frame(frame)),
            Err(e) => out.push(Got::Error(std::mem::discriminant(&e))),
        }
    }
    panic!("next_frame did not return Ok(None) after {bound} calls");
}

/// The wire form of a frame, as BIRD would send it.
fn encode(frame: &reply::Frame) -> String {
    use reply::{AsyncLine, Frame, LineKind};
    match frame {
        Frame::Line(l) => match l.kind {
            LineKind::More => format!("{}-{}\n", l.code, l.text),
            LineKind::Last => format!("{} {}\n", l.code, l.text),
            LineKind::Continuation => format!(" {}\n", l.text),
        },
        Frame::Async(AsyncLine::Message(m)) => format!("+{m}\n"),
        Frame::Async(AsyncLine::Lost(n)) => format!("<{n} messages lost>\n"),
    }
}

fn frame_all(max_line: usize, chunks: &[&[u8]]) -> (Vec<Got>, bool) {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let mut f = reply::Framer::with_max_line(max_line);
    let mut got = Vec::new();
    for c in chunks {
        f.push(c);
        drain(&mut f, total + 2, &mut got);
    }
    let finished = f.finish().is_ok();
    (got, finished)
}

/// `Framer` and `parse_all`: never panic or hang; the framer holds at most
/// one line cap of bytes; read boundaries do not change the frames; error-free
/// frames re-encoded and framed again give the same frames; every reply of
/// `parse_all` ends at its only final line.
pub fn reply_framer(data: &[u8]) {
    let (cfg, seed, body) = header(data);
    // 0: the default cap; otherwise a small cap, to reach the long-line paths.
    let max_line = if cfg == 0 {
        reply::DEFAULT_MAX_LINE
    } else {
        usize::from(cfg)
    };
    let (whole, whole_fin) = frame_all(max_line, &[body]);
    let (pieces, pieces_fin) = frame_all(max_line, &split(body, seed));
    assert_eq!(whole, pieces, "frames depend on read boundaries");
    assert_eq!(whole_fin, pieces_fin, "finish depends on read boundaries");

    if whole_fin && whole.iter().all(|g| matches!(g, Got::Frame(_))) {
        let wire: String = whole
            .iter()
            .filter_map(|g| match g {
                Got::Frame(f) => Some(encode(f)),
                Got::Error(_) => None,
            })
            .collect();
        let (again, fin) = frame_all(max_line, &[wire.as_bytes()]);
        assert!(fin);
        assert_eq!(whole, again, "re-encoded frames differ: {wire:?}");
    }

    if let Ok((replies, _asyncs)) = reply::parse_all(body) {
        for r in &replies {
            let finals = r
                .lines
                .iter()
                .filter(|l| l.kind == reply::LineKind::Last)
                .count();
            assert_eq!(finals, 1, "reply with {finals} final lines");
            assert!(
                r.final_line().is_some(),
                "reply does not end at its final line"
            );
        }
    }
}

// ------------------------------------------------------------ log lines

fn check_sighting(line: &str, s: &Sighting) {
    let a = s.addr;
    assert!(!a.is_unspecified(), "{a} from {line:?}");
    assert!(!a.is_multicast(), "{a} from {line:?}");
    match a {
        IpAddr::V4(v4) => assert!(!v4.is_broadcast(), "{a} from {line:?}"),
        IpAddr::V6(v6) => assert!(v6.to_ipv4_mapped().is_none(), "{a} from {line:?}"),
    }
    let link_local = matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
    match &s.iface {
        Some(i) => {
            assert!(lines::iface_ok(i), "iface {i:?} from {line:?}");
            assert!(render::is_iface(i), "iface {i:?} from {line:?}");
            assert!(link_local, "iface on {a} from {line:?}");
        }
        None => assert!(!link_local, "link-local {a} without iface from {line:?}"),
    }
    assert_ne!(s.port, Some(0), "port 0 from {line:?}");
}

fn check_outcome(line: &str, o: &lines::LineOutcome) {
    if let lines::LineOutcome::Sighting(s) = o {
        check_sighting(line, s);
    }
}

/// `parse_line` and each format's parser, on every line of the input (lossy
/// UTF-8): never panic; sightings carry only unicast, non-mapped addresses,
/// a safe interface exactly on link-local ones, and a port other than 0; a
/// trailing newline does not change the outcome. The prefiltered reader
/// agrees with the full parsers on the raw bytes ([`scan_agrees`]).
pub fn log_lines(data: &[u8]) {
    scan_agrees(data);
    scan_agrees(&[data, b"\n"].concat());
    let at = SystemTime::UNIX_EPOCH;
    let text = String::from_utf8_lossy(data);
    let whole = lines::parse_line(&text, at);
    check_outcome(&text, &whole);
    for line in text.split('\n') {
        let o = lines::parse_line(line, at);
        check_outcome(line, &o);
        if line.len() < lines::MAX_LINE_LEN {
            let with_nl = lines::parse_line(&format!("{line}\n"), at);
            assert_eq!(o, with_nl, "a trailing newline changed {line:?}");
        }
        for f in [
            lines::parse_bird_file,
            lines::parse_syslog,
            lines::parse_junos,
            lines::parse_kernel_md5,
            lines::parse_netfilter,
        ] {
            check_outcome(line, &f(line, at));
        }
    }
}

/// `scan_lines` (prefilter, then the full parsers on the few lines it
/// points at) says of every complete line of `data` exactly what
/// `parse_raw` (the full parsers, line by line) says: the same sightings,
/// the same malformed reasons, the same lines that are not UTF-8, the same
/// line count; bytes after the last newline are left for later by both.
pub fn scan_agrees(data: &[u8]) {
    let at = SystemTime::UNIX_EPOCH;
    let mut want = Vec::new();
    let mut starts = Vec::new();
    let (mut start, mut count) = (0, 0u64);
    for (i, b) in data.iter().enumerate() {
        if *b != b'\n' {
            continue;
        }
        count += 1;
        starts.push(start);
        let outcome = lines::parse_raw(&data[start..i], at);
        if outcome != lines::RawOutcome::Text(lines::LineOutcome::Irrelevant) {
            want.push((count, start..i, outcome));
        }
        start = i + 1;
    }
    let mut got = Vec::new();
    let scanned = lines::scan_lines(data, at, |range, outcome| {
        // The line's number, for a readable failure.
        let n = starts.partition_point(|s| *s <= range.start) as u64;
        got.push((n, range, outcome));
    });
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w, g, "line {}: full parse vs prefiltered", w.0);
    }
    assert_eq!(want, got, "lines only one of them found notable");
    assert_eq!(scanned.lines, count, "line count");
    assert_eq!(scanned.end, start, "end of the last complete line");
}

// ------------------------------------------------------------ bird.conf

/// `lex` and `scan_text`: never panic; token lines never decrease and stay
/// within the text; `scan_text` fails whenever `lex` does.
pub fn conf_scan(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let nlines = text.matches('\n').count() + 1;
    let lexed = conf::lex(&text);
    match &lexed {
        Ok(toks) => {
            let mut last = 1;
            for t in toks {
                assert!(
                    t.line >= last && t.line <= nlines,
                    "line {} after {last}",
                    t.line
                );
                last = t.line;
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= nlines, "error line {}", e.line),
    }
    let scanned = conf::scan_text(&text, Path::new("fuzz.conf"));
    if lexed.is_err() {
        assert!(scanned.is_err(), "scan_text accepted what lex refused");
    }
}

// ------------------------------------------------------------ owned include

/// `render::parse`: never panics; whatever it accepts renders, and the
/// rendering parses back to the same peers sorted by name.
pub fn include_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(mut peers) = render::parse(&text) else {
        return;
    };
    let again = match render::render(&peers) {
        Ok(t) => t,
        Err(e) => panic!("parse accepted peers that render refuses: {e}"),
    };
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    match render::parse(&again) {
        Ok(back) => assert_eq!(back, peers, "round trip changed the roster:\n{again}"),
        Err(e) => panic!("rendered file does not parse: {e}\n{again}"),
    }
}

// ------------------------------------------------------------ autopeer.toml

/// An empty directory that relative paths resolve against.
fn empty_base() -> &'static Path {
    static BASE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("autopeer-fuzz-base-{}", std::process::id()));
        // Ignored: if it cannot be made, relative files are simply missing.
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
}

/// `Config::load_str`: never panics. Inputs whose `password_file` could
/// name a real file (anything but one plain relative name, which does not
/// exist in the empty base directory) are skipped, so the fuzzer never
/// reads `/dev/zero` or the machine's files.
pub fn config_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(raw) = toml::from_str::<autopeer::config::RawConfig>(text) {
        let unsafe_file = raw.groups.iter().any(|g| {
            g.password_file.as_ref().is_some_and(|p| {
                let mut c = p.components();
                !matches!(
                    (c.next(), c.next()),
                    (Some(std::path::Component::Normal(_)), None)
                )
            })
        });
        if unsafe_file {
            return;
        }
    }
    let _ = Config::load_str(text, empty_base());
}

// ------------------------------------------------------------ control socket

/// `parse_command`: never panics; a parsed command's own line parses back
/// to the same command.
pub fn ctl_command(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(cmd) = proto::parse_command(&text) {
        let line = cmd.to_line();
        assert_eq!(
            proto::parse_command(&line),
            Ok(cmd),
            "{text:?} -> {line:?} does not parse back"
        );
    }
}

// ------------------------------------------------------------ NHRP

fn nhrp_frames(chunks: &[&[u8]]) -> Vec<nhrp::Frame> {
    let mut f = nhrp::Framer::default();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(f.push(c));
        assert!(
            f.pending() <= nhrp::MAX_MESSAGE,
            "framer holds {} bytes",
            f.pending()
        );
    }
    out
}

/// Longest stream [`expand`] builds: room for one message over the cap
/// and the start of another, while keeping runs fast.
const EXPAND_MAX: usize = 2 * nhrp::MAX_MESSAGE + 4096;

/// `0xFE k` → `k * 512` bytes of `x` (the stream stops growing at
/// [`EXPAND_MAX`]); other bytes as they are.
fn expand(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut it = body.iter();
    while let Some(&b) = it.next() {
        if b == 0xFE {
            let k = it.next().copied().unwrap_or(0);
            let n = (usize::from(k) * 512).min(EXPAND_MAX.saturating_sub(out.len()));
            out.resize(out.len() + n, b'x');
        } else {
            out.push(b);
        }
    }
    out
}

/// NHRP: `parse_message`, `parse_binding` and the `Framer` never panic; a
/// parsed message written back as `key=value` lines parses to itself;
/// certificates stay within the cap and describing one never panics; the framer holds at most one message
/// cap, its messages are non-empty, within the cap and free of blank
/// lines, and read boundaries do not change the frames.
pub fn nhrp_message(data: &[u8]) {
    let (cfg, seed, body) = header(data);
    if cfg & 1 == 0 {
        // One message body, as the framer hands it over.
        let Ok(msg) = nhrp::parse_message(body) else {
            return;
        };
        let wire: String = msg
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        assert_eq!(nhrp::parse_message(wire.as_bytes()), Ok(msg.clone()));
        let _ = msg.event_id();
        if let Ok(b) = nhrp::parse_binding(&msg) {
            assert!(b.event_id > 0);
            assert!(b.local_cert.len() <= nhrp::MAX_CERT_BYTES);
            assert!(b.remote_cert.len() <= nhrp::MAX_CERT_BYTES);
            // Whatever certificate bytes come, reading them for the audit
            // line does not panic, and says no more than subject and serial.
            if let Some(who) = nhrp::cert::describe(&b.remote_cert) {
                assert!(who.chars().count() < 400);
            }
        }
        return;
    }
    let stream = expand(body);
    let whole = nhrp_frames(&[&stream]);
    for fr in &whole {
        if let nhrp::Frame::Message(m) = fr {
            assert!(!m.is_empty() && m.len() <= nhrp::MAX_MESSAGE);
            assert!(
                !m.windows(2).any(|w| w == b"\n\n"),
                "blank line in a message"
            );
            assert_ne!(m.first(), Some(&b'\n'));
            let _ = nhrp::parse_message(m).map(|msg| nhrp::parse_binding(&msg));
        }
    }
    let pieces = nhrp_frames(&split(&stream, seed));
    assert_eq!(whole, pieces, "frames depend on read boundaries");
    // Big reads too: 4 KiB pieces, as a socket delivers them.
    let big: Vec<&[u8]> = stream.chunks(4096).collect();
    assert_eq!(whole, nhrp_frames(&big), "frames depend on 4 KiB reads");
}
