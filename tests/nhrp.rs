//! sources::nhrp: the parser against fixtures/nhrp/ (messages built to the
//! byte from nhrpd 8.4.4's `evmgr_notify`), bad input, the framer, and the
//! event-socket server against a fake nhrpd client, with a fake roster task
//! and with the real Roster + real bird2 on loopback (1,000 registrations,
//! two configures: group commit).

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autopeer::config::Config;
use autopeer::event::Event;
use autopeer::roster::{Admitted, Msg};
use autopeer::sources::nhrp::{self, Frame, Framer, NhrpError, NhrpStats};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/nhrp")
            .join(name),
    )
    .expect("fixture")
}

fn body(msg: &[u8]) -> &[u8] {
    msg.strip_suffix(b"\n")
        .expect("fixture ends with a blank line")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn fixture_without_ipsec() {
    let m = nhrp::parse_message(body(&fixture("01-authorize-binding-no-ipsec.msg"))).unwrap();
    let keys: Vec<&str> = m.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "eventid",
            "event",
            "type",
            "old_type",
            "num_nhs",
            "interface",
            "local_addr",
            "vc_initiated",
            "local_nbma",
            "local_cert",
            "remote_addr",
            "remote_nbma",
            "remote_cert"
        ]
    );
    let b = nhrp::parse_binding(&m).unwrap();
    assert_eq!(b.event_id, 1);
    assert_eq!(b.kind, "dynamic");
    assert_eq!(b.interface, "gre1");
    assert_eq!(b.remote_addr, ip("10.0.0.5"));
    assert_eq!(b.remote_nbma, Some(ip("192.0.2.5")));
    assert_eq!(b.local_nbma, Some(ip("192.0.2.1")));
    assert_eq!(b.vc_initiated, Some(false));
    assert!(b.local_cert.is_empty() && b.remote_cert.is_empty());
}

#[test]
fn fixture_with_certificates_and_ipv6() {
    let m = nhrp::parse_message(body(&fixture("02-authorize-binding-ipsec-certs.msg"))).unwrap();
    let b = nhrp::parse_binding(&m).unwrap();
    assert_eq!(b.event_id, 7);
    assert_eq!(
        b.local_cert,
        [0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00, 0xc0, 0xff, 0xee]
    );
    assert_eq!(
        b.remote_cert,
        [0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01]
    );
    // Debug never dumps certificates.
    assert!(!format!("{b:?}").contains("c0ffee"));
    let m6 = nhrp::parse_message(body(&fixture("03-authorize-binding-ipv6.msg"))).unwrap();
    assert_eq!(
        nhrp::parse_binding(&m6).unwrap().remote_addr,
        ip("2001:db8:100::5")
    );
    // A binding without a peer carries no remote_addr: not decidable.
    let m4 = nhrp::parse_message(body(&fixture("04-no-peer-fields.msg"))).unwrap();
    assert_eq!(m4.event_id().unwrap(), Some(12));
    assert_eq!(
        nhrp::parse_binding(&m4).unwrap_err(),
        NhrpError::Missing { key: "remote_addr" }
    );
}

#[test]
fn replies_match_fixtures() {
    assert_eq!(nhrp::reply(1, true).as_bytes(), fixture("reply-accept.msg"));
    assert_eq!(
        nhrp::reply(1, false).as_bytes(),
        fixture("reply-reject.msg")
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dup = b"eventid=1\nevent=authorize-binding\neventid=2\n";
    assert!(matches!(
        nhrp::parse_message(dup),
        Err(NhrpError::DuplicateKey { line: 3, .. })
    ));
    let unknown = nhrp::parse_message(b"eventid=4\nfuture_key=x=y\n").unwrap();
    assert_eq!(unknown.get("future_key"), Some("x=y"));
    assert!(matches!(
        nhrp::parse_message(b"eventid=1\nnoequals\n"),
        Err(NhrpError::NoEquals { line: 2, .. })
    ));
    assert!(matches!(
        nhrp::parse_message(b"=x\n"),
        Err(NhrpError::EmptyKey { line: 1 })
    ));
    assert!(matches!(
        nhrp::parse_message(b"eventid=1\nk=\xff\n"),
        Err(NhrpError::NotUtf8 { line: 2 })
    ));
    let long = format!("eventid=1\nk={}\n", "a".repeat(nhrp::MAX_LINE));
    assert!(matches!(
        nhrp::parse_message(long.as_bytes()),
        Err(NhrpError::LineTooLong { line: 2, .. })
    ));
    let many: String = (0..=nhrp::MAX_LINES).map(|i| format!("k{i}=v\n")).collect();
    assert!(matches!(
        nhrp::parse_message(many.as_bytes()),
        Err(NhrpError::TooManyLines { .. })
    ));
    for bad in ["0", "-1", "x", "4294967296", "+5"] {
        let m = nhrp::parse_message(format!("eventid={bad}\n").as_bytes()).unwrap();
        assert!(m.event_id().is_err(), "{bad}");
    }
    let base = "eventid=9\nevent=authorize-binding\ninterface=gre1\n";
    let bad_addr =
        nhrp::parse_message(format!("{base}remote_addr=10.0.0.300\n").as_bytes()).unwrap();
    assert!(matches!(
        nhrp::parse_binding(&bad_addr),
        Err(NhrpError::BadAddress {
            key: "remote_addr",
            ..
        })
    ));
    for cert in ["abc", "zz", "0g"] {
        let m = nhrp::parse_message(
            format!("{base}remote_addr=10.0.0.5\nremote_cert={cert}\n").as_bytes(),
        )
        .unwrap();
        assert!(
            matches!(nhrp::parse_binding(&m), Err(NhrpError::BadCert { .. })),
            "{cert}"
        );
    }
    let big = "00".repeat(nhrp::MAX_CERT_BYTES + 1);
    assert!(nhrp::decode_hex("remote_cert", &big).is_err());
    assert_eq!(
        nhrp::decode_hex("x", &"ab".repeat(nhrp::MAX_CERT_BYTES))
            .unwrap()
            .len(),
        nhrp::MAX_CERT_BYTES
    );
}

#[test]
fn framer_splits_joins_and_caps() {
    let one = fixture("01-authorize-binding-no-ipsec.msg");
    let two = fixture("02-authorize-binding-ipsec-certs.msg");
    let mut both = one.clone();
    both.extend_from_slice(&two);
    let want = vec![
        Frame::Message(body(&one).to_vec()),
        Frame::Message(body(&two).to_vec()),
    ];
    // Two messages in one read.
    assert_eq!(Framer::default().push(&both), want);
    // Byte by byte (the terminator split across reads).
    let mut f = Framer::default();
    let got: Vec<Frame> = both.iter().flat_map(|b| f.push(&[*b])).collect();
    assert_eq!(got, want);
    assert_eq!(f.pending(), 0);
    // Over the cap, without a terminator for a long time: skipped, its
    // eventid kept for the reject, and the next message still framed.
    let mut f = Framer::default();
    let mut out = f.push(b"eventid=77\nevent=authorize-binding\nk=");
    for _ in 0..(nhrp::MAX_MESSAGE / 4096 + 2) {
        out.extend(f.push(&[b'a'; 4096]));
    }
    assert!(f.pending() <= nhrp::MAX_MESSAGE);
    out.extend(f.push(b"\n"));
    out.extend(f.push(b"\n"));
    out.extend(f.push(&one));
    assert_eq!(
        out,
        vec![
            Frame::Oversized(Some(77)),
            Frame::Message(body(&one).to_vec())
        ]
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048), cut in 0usize..2048) {
        let _ = nhrp::parse_message(&data);
        let mut f = Framer::default();
        let cut = cut.min(data.len());
        for fr in f.push(&data[..cut]).into_iter().chain(f.push(&data[cut..])) {
            if let Frame::Message(m) = fr {
                if let Ok(m) = nhrp::parse_message(&m) {
                    let _ = nhrp::parse_binding(&m);
                }
            }
        }
    }
}

// ---- the server ---------------------------------------------------------

fn config(dir: &Path, policy: &str, batch: &str) -> Config {
    let text = format!(
        r#"
[bird]
socket = "{d}/bird.ctl"
config = "{d}/bird.conf"
include = "{d}/peers/autopeer.conf"
[agent]
audit_log = "{d}/audit.log"
batch = "{batch}"
[sources]
logs = []
nhrp_socket = "{d}/nhrp.sock"
nhrp_policy = "{policy}"
[[group]]
name = "spokes"
template = "spokes"
prefixes = ["10.200.0.0/16"]
neighbor = 65002
max_peers = 2000
rate = "unlimited"
nbma_prefixes = ["192.0.2.0/24"]
[[group]]
name = "open"
template = "spokes"
prefixes = ["10.201.0.0/16"]
neighbor = 65003
"#,
        d = dir.display()
    );
    Config::load_str(&text, dir).expect("test config")
}

struct Server {
    path: PathBuf,
    events: Arc<Mutex<Vec<Event>>>,
    stats: Arc<NhrpStats>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops on cancel")
            .unwrap();
        assert!(!self.path.exists(), "socket removed on stop");
    }
}

fn start_server(cfg: Config, roster: mpsc::Sender<Msg>) -> Server {
    let path = cfg.sources.nhrp_socket.clone().unwrap();
    let (_tx, rx) = watch::channel(Arc::new(cfg));
    std::mem::forget(_tx);
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = Arc::clone(&events);
    let stats = Arc::new(NhrpStats::default());
    let ctx = nhrp::NhrpContext {
        config: rx,
        roster,
        events: Arc::new(move |e| ev.lock().unwrap().push(e)),
        stats: Arc::clone(&stats),
    };
    let listener = nhrp::bind(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = CancellationToken::new();
    let task = tokio::spawn(nhrp::serve(listener, path.clone(), ctx, token.clone()));
    Server {
        path,
        events,
        stats,
        token,
        task,
    }
}

/// A roster that decides by the real `admission::decide` over `groups`
/// (so group match and `nbma_prefixes` are the real rules), refuses
/// 10.200.0.6 by a deny of its own, and never answers for 10.200.9.9 (a
/// roster stuck behind a slow BIRD).
fn fake_roster(cfg: &Config) -> mpsc::Sender<Msg> {
    use autopeer::admission::{self, Context, Decision, Evidence, Memory, Refusal, Request};
    struct Empty;
    impl admission::RosterLookup for Empty {
        fn find(&self, _: IpAddr, _: Option<&str>) -> Option<String> {
            None
        }
        fn group_size(&self, _: &str) -> usize {
            0
        }
    }
    let groups = cfg.groups.clone();
    let (tx, mut rx) = mpsc::channel::<Msg>(64);
    tokio::spawn(async move {
        let mut stuck = Vec::new();
        let bird = autopeer::bird::conf::BirdConf::default();
        let mut memory = Memory::default();
        while let Some(m) = rx.recv().await {
            if let Msg::Admit {
                sighting,
                group,
                nbma,
                cert,
                reply,
            } = m
            {
                let a = sighting.addr.to_string();
                assert_eq!(sighting.via, autopeer::sources::Via::Nhrp);
                assert_eq!(group, None, "nhrp leaves the group to admission");
                if a == "10.200.9.9" {
                    stuck.push(reply);
                    continue;
                }
                let d = admission::decide(
                    Request {
                        addr: sighting.addr,
                        iface: None,
                        evidence: Evidence::verified(sighting.via, sighting.trust),
                        group: None,
                        nbma,
                        cert: (!cert.is_empty()).then_some(&cert[..]),
                    },
                    Context {
                        groups: &groups,
                        birdconf: &bird,
                        roster: &Empty,
                        now: std::time::Instant::now(),
                        wall: std::time::SystemTime::now(),
                    },
                    &mut memory,
                );
                let _ = reply.send(match d {
                    _ if a == "10.200.0.6" => Err(Refusal::Denied {
                        group: "test".into(),
                        entry: "10.200.0.6/32".parse().unwrap(),
                    }),
                    Decision::Admit(ad) => Ok(Admitted {
                        name: ad.peer.name,
                        group: ad.group,
                        already: false,
                    }),
                    Decision::Already { name, group } => Ok(Admitted {
                        name,
                        group,
                        already: true,
                    }),
                    Decision::Refuse(r) => Err(r),
                });
            }
        }
    });
    tx
}

fn request(id: u32, remote: &str, nbma: &str) -> String {
    format!(
        "eventid={id}\nevent=authorize-binding\ntype=dynamic\nold_type=invalid\nnum_nhs=0\n\
         interface=gre1\nlocal_addr=10.200.0.1\nvc_initiated=no\nlocal_nbma=192.0.2.1\n\
         local_cert=\nremote_addr={remote}\nremote_nbma={nbma}\nremote_cert=\n\n"
    )
}

/// Reads replies until `n` have arrived; returns eventid -> result.
async fn replies(
    rd: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    n: usize,
) -> std::collections::BTreeMap<u32, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut id = None;
    let mut line = String::new();
    while out.len() < n {
        line.clear();
        let got = tokio::time::timeout(Duration::from_secs(20), rd.read_line(&mut line))
            .await
            .expect("reply in time")
            .unwrap();
        assert!(got > 0, "server closed the connection");
        let l = line.trim_end();
        if let Some(v) = l.strip_prefix("eventid=") {
            id = Some(v.parse::<u32>().unwrap());
        } else if let Some(r) = l.strip_prefix("result=") {
            out.insert(id.take().expect("eventid before result"), r.to_string());
        } else {
            assert_eq!(l, "", "unexpected reply line");
        }
    }
    out
}

#[tokio::test]
async fn server_decides_per_policy_and_survives_garbage() {
    let dir = tempfile::tempdir().unwrap();
    // A stale socket is replaced; a regular file is not.
    std::os::unix::net::UnixListener::bind(dir.path().join("nhrp.sock")).unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    assert!(matches!(
        nhrp::bind(&dir.path().join("file")),
        Err(nhrp::ServeError::NotASocket { .. })
    ));
    let cfg = config(dir.path(), "enforce", "100ms");
    let srv = start_server(cfg.clone(), fake_roster(&cfg));
    let s = UnixStream::connect(&srv.path).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::new(rd);

    // Split across writes, then two in one write, then garbage between.
    let a = request(1, "10.200.0.5", "192.0.2.5");
    let (h, t) = a.split_at(40);
    wr.write_all(h.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    wr.write_all(t.as_bytes()).await.unwrap();
    let mut batch = request(2, "10.200.0.6", "192.0.2.6"); // roster refuses
    batch += &request(3, "10.200.0.5", "198.51.100.5"); // nbma outside
    batch += &request(4, "10.99.0.1", "192.0.2.7"); // no group
    batch += "eventid=5\nevent=authorize-binding\neventid=5\n\n"; // duplicate key
    batch += "event=authorize-binding\nremote_addr=10.200.0.5\n\n"; // no eventid
    batch += &request(6, "10.200.0.300", "192.0.2.5"); // bad address
    batch += &request(7, "10.200.0.5", "192.0.2.5").replace("remote_cert=", "remote_cert=zz");
    batch += "eventid=8\nevent=some-future-event\n\n";
    batch += &request(9, "10.201.0.1", "203.0.113.1"); // group without nbma_prefixes
    wr.write_all(batch.as_bytes()).await.unwrap();
    // Over the cap: rejected by its eventid.
    let mut huge = String::from("eventid=10\nevent=authorize-binding\n");
    for i in 0..(nhrp::MAX_MESSAGE / 1000 + 1) {
        huge += &format!("k{i}={}\n", "a".repeat(1000));
    }
    huge += "\n";
    wr.write_all(huge.as_bytes()).await.unwrap();
    wr.write_all(request(11, "10.200.0.5", "192.0.2.5").as_bytes())
        .await
        .unwrap();
    let got = replies(&mut rd, 10).await;
    let want: Vec<(u32, &str)> = vec![
        (1, "accept"),
        (2, "reject"),
        (3, "reject"),
        (4, "reject"),
        (5, "reject"),
        (6, "reject"),
        (7, "reject"),
        (8, "accept"),
        (9, "accept"),
        (10, "reject"),
        (11, "accept"),
    ];
    let got11 = {
        let mut g = got;
        if g.len() < 11 {
            g.extend(replies(&mut rd, 11 - g.len()).await);
        }
        g
    };
    let got_v: Vec<(u32, &str)> = got11.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(got_v, want);
    assert_eq!(srv.stats.unanswerable.load(Ordering::Relaxed), 1);

    let lines: Vec<String> = srv
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| e.audit_text())
        .collect();
    assert!(lines.contains(
        &"nhrp: accepted registration of 10.200.0.5 (nbma 192.0.2.5) on gre1: admitted to group spokes as spokes_10_200_0_5".to_string()
    ), "{lines:#?}");
    assert!(lines.contains(
        &"nhrp: rejected registration of 10.200.0.5 (nbma 198.51.100.5) on gre1: nbma 198.51.100.5 outside group spokes's nbma_prefixes".to_string()
    ), "{lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l.contains("10.200.0.6") && l.contains("denied by group test")));
    assert!(lines
        .iter()
        .any(|l| l.contains("10.99.0.1") && l.contains("no group matches")));

    // A roster that does not answer: reject after the timeout, and other
    // requests keep being answered meanwhile.
    let t0 = std::time::Instant::now();
    wr.write_all(request(20, "10.200.9.9", "192.0.2.9").as_bytes())
        .await
        .unwrap();
    wr.write_all(request(21, "10.200.0.5", "192.0.2.5").as_bytes())
        .await
        .unwrap();
    let first = replies(&mut rd, 1).await;
    assert_eq!(first.get(&21).map(String::as_str), Some("accept"));
    assert!(t0.elapsed() < Duration::from_secs(1));
    let second = replies(&mut rd, 1).await;
    assert_eq!(second.get(&20).map(String::as_str), Some("reject"));
    assert!(t0.elapsed() >= nhrp::DECIDE_TIMEOUT && t0.elapsed() < Duration::from_secs(9));
    assert_eq!(srv.stats.timeouts.load(Ordering::Relaxed), 1);

    // A client that vanishes mid-message; a new connection is served.
    let half = request(30, "10.200.0.5", "192.0.2.5");
    wr.write_all(&half.as_bytes()[..50]).await.unwrap();
    drop(wr);
    drop(rd);
    let s2 = UnixStream::connect(&srv.path).await.unwrap();
    let (rd2, mut wr2) = s2.into_split();
    let mut rd2 = BufReader::new(rd2);
    wr2.write_all(request(31, "10.200.0.5", "192.0.2.5").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        replies(&mut rd2, 1).await.get(&31).map(String::as_str),
        Some("accept")
    );
    srv.stop().await;
}

#[tokio::test]
async fn advise_always_accepts_but_reports_the_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "advise", "100ms");
    let srv = start_server(cfg.clone(), fake_roster(&cfg));
    let s = UnixStream::connect(&srv.path).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::new(rd);
    let mut b = request(1, "10.99.0.1", "192.0.2.5");
    b += &request(2, "10.200.0.5", "198.51.100.1");
    b += "eventid=3\nevent=authorize-binding\nremote_addr=bogus\n\n";
    wr.write_all(b.as_bytes()).await.unwrap();
    let got = replies(&mut rd, 3).await;
    assert_eq!(got.get(&1).map(String::as_str), Some("accept"));
    assert_eq!(got.get(&2).map(String::as_str), Some("accept"));
    // Unparseable requests are rejected even in advise mode.
    assert_eq!(got.get(&3).map(String::as_str), Some("reject"));
    let lines: Vec<String> = srv
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| e.audit_text())
        .collect();
    assert!(lines.iter().any(
        |l| l.starts_with("nhrp: accepted registration of 10.99.0.1")
            && l.contains("no group matches (policy advise")
    ));
    srv.stop().await;
}

/// 1,000 registrations in a burst against the real Roster and a real bird2
/// on loopback: all accepted, two `configure`s (group commit: the first
/// registration at once, every later one together in the next apply, which
/// `batch = "3s"` keeps 3 s after the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_registrations_two_configures_real_bird() {
    if !common::bird::require_bird() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = common::bird::free_port();
    let d = dir.path().display();
    // `disabled` in the template: the peers are loaded, nobody is dialed.
    let conf = format!(
        r#"log "{d}/bird.log" all;
router id 10.0.0.1;
protocol device {{ }}
template bgp spokes {{
  local 127.0.0.1 port {port} as 65001;
  multihop;
  disabled;
  ipv4 {{ import none; export none; }};
}}
include "{d}/peers/*.conf";
"#
    );
    let bird = common::bird::RealBird::start(dir.path(), &conf);
    let cfg = config(dir.path(), "enforce", "3s");
    let roster = autopeer::roster::Roster::new(Arc::new(cfg.clone()), None).unwrap();
    let (msg_tx, msg_rx) = mpsc::channel(64);
    let (_sight_tx, sight_rx) = mpsc::channel(1);
    let token = CancellationToken::new();
    let roster_task = tokio::spawn(roster.run(sight_rx, msg_rx, token.clone()));
    let (sub_tx, sub_rx) = tokio::sync::oneshot::channel();
    msg_tx.send(Msg::Subscribe(sub_tx)).await.unwrap();
    let (_snap, mut events) = sub_rx.await.unwrap();

    let srv = start_server(cfg, msg_tx.clone());
    let s = UnixStream::connect(&srv.path).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::new(rd);
    let mut burst = String::new();
    for i in 0..1000u32 {
        burst += &request(
            i + 1,
            &format!("10.200.{}.{}", i / 250, i % 250 + 1),
            "192.0.2.5",
        );
    }
    wr.write_all(burst.as_bytes()).await.unwrap();
    let got = replies(&mut rd, 1000).await;
    assert_eq!(got.len(), 1000);
    assert!(got.values().all(|r| r == "accept"), "all accepted");

    // Exactly two applies, carrying all 1,000 between them.
    let mut applied = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while applied.iter().sum::<usize>() < 1000 {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(e)) => {
                if let Event::Applied { added, .. } = *e {
                    applied.push(added);
                }
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("no apply: {other:?}; bird log: {}", bird.log()),
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    while let Ok(e) = events.try_recv() {
        if let Event::Applied { added, .. } = *e {
            applied.push(added);
        }
    }
    assert_eq!(applied.len(), 2, "two configures: {applied:?}");
    assert_eq!(applied.iter().sum::<usize>(), 1000, "{applied:?}");
    let mut c = autopeer::bird::client::Connection::connect(&bird.ctl, Duration::from_secs(10))
        .await
        .unwrap();
    let reply = c.show_protocols(false, None).await.unwrap();
    let protos = autopeer::bird::protocols::parse_protocols(&reply).unwrap();
    let ours = protos
        .iter()
        .filter(|p| p.name.starts_with("spokes_10_200_"))
        .count();
    assert_eq!(ours, 1000, "BIRD has every protocol");
    let reconf = bird.log().matches("Reconfigured").count();
    assert_eq!(reconf, 2, "two reconfigurations in BIRD's log");
    srv.stop().await;
    token.cancel();
    let _ = roster_task.await;
}

/// NHRP registrations that make no BGP peer go through the roster's
/// refusal budget like any other refusal (60 distinct addresses a minute
/// audited, a repeat of the same refusal not at all), and what a spoke
/// chose (`interface=`) cannot start a line of its own or put a terminal
/// escape into the audit log. The real Roster writing the real audit log,
/// fed as the daemon feeds it; no BIRD is needed for refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nhrp_refusals_take_the_refusal_budget_and_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("peers")).unwrap();
    std::fs::write(
        dir.path().join("bird.conf"),
        "router id 10.0.0.1;\ntemplate bgp spokes { local as 65001; }\n",
    )
    .unwrap();
    let cfg = config(dir.path(), "enforce", "100ms");
    let audit_path = cfg.agent.audit_log.clone();
    let audit = autopeer::audit::AuditLog::open(&audit_path).unwrap();
    let roster = autopeer::roster::Roster::new(Arc::new(cfg.clone()), Some(audit)).unwrap();
    let (msg_tx, msg_rx) = mpsc::channel(4096);
    let (_sight_tx, sight_rx) = mpsc::channel(1);
    let token = CancellationToken::new();
    let roster_task = tokio::spawn(roster.run(sight_rx, msg_rx, token.clone()));

    // The server as the daemon wires it: events go to the roster.
    let path = cfg.sources.nhrp_socket.clone().unwrap();
    let (_cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg));
    let emit = msg_tx.clone();
    let ctx = nhrp::NhrpContext {
        config: cfg_rx,
        roster: msg_tx.clone(),
        events: Arc::new(move |e| {
            emit.try_send(Msg::Emit(e)).expect("roster keeps up");
        }),
        stats: Arc::new(NhrpStats::default()),
    };
    let listener = nhrp::bind(&path).unwrap();
    let server = tokio::spawn(nhrp::serve(listener, path.clone(), ctx, token.clone()));
    let s = UnixStream::connect(&path).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::new(rd);

    // 1. A hostile interface name, NBMA outside nbma_prefixes: rejected.
    let hostile = "gre1\x1b[2J\r2026-11-23T06:55:02Z adding neighbor 10.200.9.9 \u{9b}31m\x7f";
    let first = request(1, "10.200.0.5", "198.51.100.5")
        .replace("interface=gre1", &format!("interface={hostile}"));
    wr.write_all(first.as_bytes()).await.unwrap();
    assert_eq!(
        replies(&mut rd, 1).await.get(&1).map(String::as_str),
        Some("reject")
    );

    // 2. 200 distinct spokes, each registering twice, all rejected.
    let mut burst = String::new();
    for round in 0..2u32 {
        for i in 0..200u32 {
            burst += &request(
                10 + round * 1000 + i,
                &format!("10.200.{}.{}", 1 + i / 250, i % 250 + 1),
                "198.51.100.5",
            );
        }
    }
    wr.write_all(burst.as_bytes()).await.unwrap();
    let got = replies(&mut rd, 400).await;
    assert!(got.values().all(|r| r == "reject"));

    // 3. An admitted spoke, audited after all of the above (FIFO).
    wr.write_all(request(5000, "10.200.0.7", "192.0.2.7").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        replies(&mut rd, 1).await.get(&5000).map(String::as_str),
        Some("accept")
    );
    let sentinel = "nhrp: accepted registration of 10.200.0.7";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&audit_path).unwrap_or_default();
        if text.contains(sentinel) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no sentinel line: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    token.cancel();
    let _ = server.await;
    let _ = roster_task.await;

    // No raw control character; one line per decision, each with a time.
    assert!(
        !text.chars().any(|c| c != '\n' && c.is_control()),
        "raw control character in the audit log: {text:?}"
    );
    for line in text.lines() {
        assert!(
            line.starts_with("20") && line.as_bytes().get(10) == Some(&b'T'),
            "{line:?}"
        );
    }
    assert!(
        text.contains(r"on gre1\x1b[2J\r2026-11-23T06:55:02Z adding neighbor 10.200.9.9 \x9b31m\x7f: nbma 198.51.100.5 outside"),
        "{text}"
    );
    assert!(!text
        .lines()
        .any(|l| l.contains(" adding neighbor 10.200.9.9") && !l.contains("nhrp:")));
    // The budget: 60 NHRP refusals audited in the window (the hostile one
    // and 59 of the burst); repeats of the same refusal not at all.
    let rejected: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("nhrp: rejected registration of "))
        .collect();
    assert_eq!(rejected.len(), 60, "{text}");
    let mut addrs: Vec<&str> = rejected
        .iter()
        .filter_map(|l| l.split("registration of ").nth(1)?.split(' ').next())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(
        addrs.len(),
        60,
        "one line per spoke, not per registration: {text}"
    );
    assert_eq!(text.matches(sentinel).count(), 1, "{text}");
}

#[test]
fn example_hub_config_loads() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("bird/nhrp-hub/autopeer.toml");
    let c = Config::load(&p).expect("bird/nhrp-hub/autopeer.toml is valid");
    assert_eq!(
        c.sources.nhrp_socket.as_deref(),
        Some(Path::new("/run/autopeer/nhrp.sock"))
    );
    assert_eq!(c.sources.nhrp_policy, autopeer::config::NhrpPolicy::Enforce);
    assert_eq!(
        c.groups[0].nbma_prefixes,
        vec!["203.0.113.0/24".parse().unwrap()]
    );
    let frr = std::fs::read_to_string(p.with_file_name("frr.conf")).unwrap();
    assert!(frr.contains("nhrp event socket /run/autopeer/nhrp.sock"));
    let bird = std::fs::read_to_string(p.with_file_name("bird.conf")).unwrap();
    assert!(bird.contains("template bgp SPOKES"));
}
