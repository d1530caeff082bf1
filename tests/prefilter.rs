//! The prefiltered reader (`lines::scan_lines`, and the tail built on it)
//! says of every line exactly what the full parsers say (`lines::parse_raw`,
//! one line at a time, as the tail read before the prefilter): the same
//! sightings, the same malformed reasons, the same lines that are not
//! UTF-8, the same counts. Checked on every saved fuzz input and fixture,
//! on the generated syslog the `ingest` benchmark times, on lines at the
//! length limit, on random lines with trigger text inserted, and through
//! the real tail with the input cut at arbitrary read boundaries.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod props;
#[path = "common/syslog_gen.rs"]
mod syslog_gen;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use autopeer::sources::lines::{
    parse_raw, scan_lines, LineOutcome, Malformed, RawOutcome, MAX_LINE_LEN,
};
use autopeer::sources::tail::{TailCounts, TailStats, Tailer};
use autopeer::sources::Sighting;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const AT: SystemTime = SystemTime::UNIX_EPOCH;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every regular file under `dir`, sorted; none if `dir` is absent.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let path = e.expect("directory entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// What the full parsers say of each complete line of `data`, tallied as
/// the tail tallies, with the sightings in order.
fn reference(data: &[u8]) -> (TailCounts, Vec<Sighting>) {
    let mut counts = TailCounts::default();
    let mut sightings = Vec::new();
    let body = match data.iter().rposition(|b| *b == b'\n') {
        Some(i) => &data[..i],
        None => return (counts, sightings),
    };
    for line in body.split(|b| *b == b'\n') {
        counts.lines += 1;
        match parse_raw(line, AT) {
            RawOutcome::NotUtf8 => counts.invalid_utf8 += 1,
            RawOutcome::Text(LineOutcome::Irrelevant) => counts.irrelevant += 1,
            RawOutcome::Text(LineOutcome::Malformed(_)) => counts.malformed += 1,
            RawOutcome::Text(LineOutcome::Sighting(s)) => {
                counts.sightings += 1;
                sightings.push(s);
            }
        }
    }
    (counts, sightings)
}

/// Lines ending in `\n` at every length around the limit, with and without
/// `\r`, trigger text, a control character or bytes that are not UTF-8.
fn edge_lines() -> Vec<u8> {
    let trigger = "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address 10.88.0.2 (port 1)";
    let mut out = Vec::new();
    for len in [
        0,
        1,
        MAX_LINE_LEN - 1,
        MAX_LINE_LEN,
        MAX_LINE_LEN + 1,
        3 * MAX_LINE_LEN,
    ] {
        for tail in [&b""[..], b"\r", b"\r\r", b"\xff", b"\x00DPT=179"] {
            for head in [&b""[..], trigger.as_bytes(), b"IN=eth0 IN=eth1 "] {
                let mut line = head.to_vec();
                line.resize(len.saturating_sub(tail.len()).max(head.len()), b'x');
                line.extend_from_slice(tail);
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
        }
    }
    out
}

/// Every saved fuzz input (regressions and, when present, the working
/// corpus of `scripts/fuzz`) and every fixture, each file alone and all of
/// them as one buffer: the same outcome for every line.
#[test]
fn fuzz_inputs_and_fixtures_agree() {
    let mut files = files_under(&root().join("fixtures"));
    files.extend(files_under(&root().join("fuzz/corpus")));
    files.extend(files_under(&root().join("fuzz/artifacts")));
    let mut all = Vec::new();
    for f in &files {
        let data = fs::read(f).expect("read input");
        props::scan_agrees(&data);
        props::scan_agrees(&[&data[..], b"\n"].concat());
        all.extend_from_slice(&data);
        all.push(b'\n');
    }
    props::scan_agrees(&all);
    // Not vacuous: the fixtures hold every kind of outcome.
    let (counts, _) = reference(&all);
    assert!(files.len() > 20, "{} files", files.len());
    assert!(counts.sightings > 50, "{counts:?}");
    assert!(counts.malformed > 20, "{counts:?}");
    assert!(counts.invalid_utf8 > 3, "{counts:?}");
}

/// The benchmark's syslog (one trigger in 5,000 lines, and a denser one),
/// then lines at and around the length limit.
#[test]
fn generated_syslog_and_edge_lines_agree() {
    for (size, every) in [(4 << 20, 5000), (1 << 20, 7)] {
        let mut data = Vec::new();
        let (_, lines, triggers) = syslog_gen::generate(&mut data, size, every).unwrap();
        props::scan_agrees(&data);
        let mut sightings = 0;
        let scanned = scan_lines(&data, AT, |_, o| {
            assert!(
                matches!(o, RawOutcome::Text(LineOutcome::Sighting(_))),
                "{o:?}"
            );
            sightings += 1;
        });
        assert_eq!((scanned.lines, sightings), (lines, triggers));
    }
    let edges = edge_lines();
    props::scan_agrees(&edges);
    let mut too_long = 0;
    scan_lines(&edges, AT, |_, o| {
        if o == RawOutcome::Text(LineOutcome::Malformed(Malformed::TooLong)) {
            too_long += 1;
        }
    });
    assert!(too_long >= 30, "{too_long} lines over the limit");
}

/// A field named twice is malformed on any port, so `IN=` alone must send
/// a line to the full parser; a line naming each field once on another
/// port is irrelevant, and so is a lookalike with no kernel header.
#[test]
fn netfilter_field_twice_on_any_port() {
    let line = |fields: &str| {
        format!("Nov 23 08:33:00 vm kernel: [ 6942.234111] FW: IN=eth0 OUT= {fields} SYN URGP=0\n")
    };
    for twice in [
        "IN=eth1 SRC=192.0.2.1 PROTO=TCP SPT=1 DPT=22",
        "OUT=x SRC=192.0.2.1 PROTO=TCP SPT=1 DPT=22",
        "SRC=192.0.2.1 SRC=192.0.2.2 PROTO=TCP SPT=1 DPT=22",
        "SRC=192.0.2.1 PROTO=TCP PROTO=UDP SPT=1 DPT=22",
        "SRC=192.0.2.1 PROTO=TCP SPT=1 SPT=2 DPT=22",
        "SRC=192.0.2.1 PROTO=TCP SPT=1 DPT=22 DPT=23",
    ] {
        let text = line(twice);
        props::scan_agrees(text.as_bytes());
        let mut got = Vec::new();
        scan_lines(text.as_bytes(), AT, |_, o| got.push(o));
        let dup = RawOutcome::Text(LineOutcome::Malformed(Malformed::DuplicateField));
        assert_eq!(got, vec![dup], "{text}");
    }
    for once in [
        line("SRC=192.0.2.1 PROTO=TCP SPT=1 DPT=22"),
        line("PHYSIN=eth2 MACSRC=00:01 SRC=192.0.2.1 PROTO=TCP SPT=1 DPT=22"),
        "Nov 23 08:33:00 vm sshd[1]: IN=a IN=b\n".to_owned(),
    ] {
        props::scan_agrees(once.as_bytes());
        let scanned = scan_lines(once.as_bytes(), AT, |_, o| panic!("{o:?} for {once}"));
        assert_eq!(scanned.lines, 1);
    }
}

/// The real tail over one file holding the fixtures, the generated syslog
/// and the edge lines, written in pieces of every size from 1 byte to
/// 300 KiB (so lines are cut by reads anywhere): the same counters as the
/// full parsers line by line, the same sightings in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_counts_and_sightings_match_the_full_parsers() {
    let mut data = Vec::new();
    for f in files_under(&root().join("fixtures/logs")) {
        data.extend_from_slice(&fs::read(f).unwrap());
        data.push(b'\n');
    }
    syslog_gen::generate(&mut data, 2 << 20, 97).unwrap();
    data.extend_from_slice(&edge_lines());
    data.extend_from_slice(b"Nov 23 08:05:55 rr1 bird: BGP: Unexpected connect from unknown address 10.9.9.9 (port 9)\n");
    let (want_counts, want) = reference(&data);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("syslog");
    let mut tailer = Tailer::start(vec![path.clone()]).await.unwrap();
    tailer.set_bird_files(std::slice::from_ref(&path));
    let stats = Arc::new(TailStats::default());
    let shutdown = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(1 << 16);
    let task = tokio::spawn(tailer.run(tx, Arc::clone(&stats), shutdown.clone()));
    let mut file = fs::File::create(&path).unwrap();
    let (mut at, mut x) = (0usize, 12345u32);
    while at < data.len() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = match x >> 29 {
            0 => 1,
            1 => 7,
            2..=5 => (x >> 8) as usize % 4096,
            _ => (x >> 8) as usize % (300 << 10),
        };
        let end = (at + n).min(data.len());
        file.write_all(&data[at..end]).unwrap();
        at = end;
        if x % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < want.len() || stats.snapshot().lines < want_counts.lines {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "tail stalled: {:?} of {want_counts:?}, {} of {} sightings",
            stats.snapshot(),
            got.len(),
            want.len()
        );
        if let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            got.push(s);
        }
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(stats.snapshot(), want_counts);
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let g = (g.addr, g.port, &g.iface, g.via, g.trust);
        let w = (w.addr, w.port, &w.iface, w.via, w.trust);
        assert_eq!(g, w, "sighting {i}");
    }
}

mod random {
    use super::*;
    use proptest::prelude::*;

    /// Trigger text, headers and netfilter fields, whole or in part, and
    /// characters the parsers treat specially.
    const PIECES: &[&str] = &[
        "Unexpected connect from unknown address",
        "BGP: Unexpected connect from unknown address ",
        "Unexpected connect from unknown addres",
        "MD5 ",
        "MD5 Hash",
        "MD5 digest",
        "MD5",
        "IN=",
        "IN=eth0 ",
        "IN= ",
        "OUT= ",
        "SRC=10.0.0.1 ",
        "SRC=fe80::1 ",
        "PROTO=TCP ",
        "SPT=4000 ",
        "DPT=179",
        "DPT=179 ",
        "DPT=17",
        "SYN ",
        "ACK ",
        "PHYSIN=x ",
        "MACSRC=y ",
        "Nov 23 08:05:55 rr1 bird: ",
        "Nov 23 08:05:55 rr1 kernel: ",
        "Nov  3 08:05:55 kernel: ",
        "Nov 23 08:05:55 rr1 kernel[1]: ",
        "Mar  9 18:48:53  vrr2 /kernel: ",
        "<4>1 2026-11-23T08:33:00.547785+00:00 vm kernel - - - ",
        "<28>1 2026-11-23T08:05:55Z rr1 bird - - [a@1 k=\"]\"] ",
        "2026-11-23T08:05:55.123456+00:00 rr1 bird6[812]: ",
        "<28>Nov 23 08:05:55 bird: ",
        "2026-11-23 06:54:53.477 <WARN> ",
        "2026-11-23 06:54:53 [0a1b] <WARN> ",
        "[ 6942.234111] ",
        "TCP: Unexpected MD5 Hash found for ",
        "172.16.1.2.42448->172.16.1.1.179 [S]",
        "[2001:db8:1::2].39444->[2001:db8:1::1].179 [S.]",
        "MD5 Hash NOT expected but found (",
        "74.229.245.29, 51697)->(83.143.116.162, 179)",
        "tcp_auth_ok: Packet from ",
        "212.23.38.1:60042",
        "[2001:db8::2]:179",
        " unexpectedly has MD5 digest",
        "10.88.0.2",
        "::ffff:10.0.0.1",
        "fe80::1%vti3",
        " (port 47271)",
        " (port 0)",
        "\r",
        "\t",
        "\0",
        "\x7f",
        "\u{feff}",
        " ",
        "=",
        "é",
    ];

    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(PIECES).prop_map(|p| p.as_bytes().to_vec()),
            2 => "\\PC{0,12}".prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 0..4),
        ]
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(piece(), 0..12).prop_map(|p| p.concat())
    }

    /// Real trigger lines of every format, to insert into.
    const TRIGGERS: &[&str] = &[
        "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address 10.88.0.2 (port 47271)",
        "Nov 23 08:05:55 rr1 bird: BGP: Unexpected connect from unknown address fe80::1%vti3 (port 43327)",
        "<28>1 2026-11-23T08:05:55.123456+00:00 rr1 bird - - - BGP: Unexpected connect from unknown address 10.88.0.7 (port 40002)",
        "Mar  9 18:44:57 defiant kernel: [73380.243954] TCP: Unexpected MD5 Hash found for [2001:db8:1::2].39444->[2001:db8:1::1].179 [S]",
        "Jul 28 00:51:02 petter-laptop kernel: [610722.208028] MD5 Hash NOT expected but found (74.229.245.29, 51697)->(83.143.116.162, 179)",
        "Mar  9 18:48:53  vrr2 kernel: tcp_auth_ok: Packet from 212.23.38.1:60042 unexpectedly has MD5 digest",
        "Nov 23 08:33:00 vm kernel: [ 6942.234111] BGP-SYN: IN=vR OUT= SRC=10.213.0.2 DST=10.213.0.1 LEN=72 PROTO=TCP SPT=60546 DPT=179 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Lines built from trigger pieces, random text and random bytes.
        #[test]
        fn random_lines_agree(lines in prop::collection::vec(line(), 1..8), last_newline: bool) {
            let mut buf = lines.join(&b'\n');
            if last_newline {
                buf.push(b'\n');
            }
            props::scan_agrees(&buf);
        }

        /// Real trigger lines with a piece inserted anywhere, among
        /// irrelevant lines.
        #[test]
        fn triggers_with_insertions_agree(
            t in 0..TRIGGERS.len(),
            pos in 0usize..200,
            ins in piece(),
            around in line(),
        ) {
            let base = TRIGGERS[t].as_bytes();
            let pos = pos.min(base.len());
            let changed = [&base[..pos], &ins[..], &base[pos..]].concat();
            let buf = [&around[..], b"\n", &changed, b"\n", base, b"\n", &around, b"\n"].concat();
            props::scan_agrees(&buf);
        }
    }
}
