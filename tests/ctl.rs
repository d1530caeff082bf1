//! The control socket: the real `autopeer` binary against a fake daemon
//! socket; the server in-process against a fake roster (parse errors,
//! over-long lines, a client that never reads, 1,000 clients at once,
//! non-root `add`); the real `birdc -s` against it; and expiry with
//! paused time on the real roster.
//!
//! Tests needing root or birdc: with CI=true a missing prerequisite fails
//! the test; elsewhere it skips with a one-line reason.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream as StdStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use autopeer::bird::protocols::ProtoState;
use autopeer::bird::render::{self, NeighborAs, Peer};
use autopeer::config::Config;
use autopeer::ctl::server::{Context, Server};
use autopeer::event::Event;
use autopeer::roster::{
    Admitted, GroupView, Msg, PeerView, Roster, Runtime, Snapshot, EXPIRY_CHECK,
};
use autopeer::sources::tail::TailStats;
use common::prereq;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

fn peer(name: &str, addr: &str) -> Peer {
    Peer {
        name: name.into(),
        group: "clients".into(),
        template: "CLIENTS".into(),
        addr: addr.parse().unwrap(),
        iface: None,
        neighbor: Some(NeighborAs::Internal),
        admitted: "2026-11-23T06:55:02Z".into(),
        via: "bird-log".into(),
    }
}

fn snapshot(n: usize) -> Snapshot {
    let mut peers = vec![PeerView {
        peer: peer("clients_10_88_0_2", "10.88.0.2"),
        pending: false,
        runtime: Runtime {
            state: Some("up".into()),
            info: Some("Established".into()),
            message: None,
            last_established: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)),
            down_since: None,
        },
        expires: None,
    }];
    for i in 0..n {
        let a: IpAddr = format!("10.89.{}.{}", i / 250, i % 250 + 1)
            .parse()
            .unwrap();
        let name = render::peer_name("clients", a, None);
        peers.push(PeerView {
            peer: peer(&name, &a.to_string()),
            pending: false,
            runtime: Runtime {
                state: Some("start".into()),
                info: Some("Active".into()),
                message: Some("Socket: Connection refused".into()),
                ..Runtime::default()
            },
            expires: None,
        });
    }
    Snapshot {
        peers,
        groups: vec![GroupView {
            name: "clients".into(),
            template: "CLIENTS".into(),
            prefixes: vec!["10.88.0.0/25".parse().unwrap()],
            peers: n + 1,
            max_peers: 1000,
            rate: Some(60),
            expire: Some(Duration::from_secs(7 * 86_400)),
            next_admission: Duration::ZERO,
        }],
        dirty: false,
        dry_run: false,
        refusals: [("no_group".to_string(), 3u64)].into_iter().collect(),
        last_poll: Some(SystemTime::now()),
        bird_error: None,
        started: SystemTime::now(),
        keyring: None,
    }
}

/// A roster stand-in: answers snapshots, subscriptions, admissions and
/// removals; `events` feeds watch clients.
fn fake_roster(snap: Snapshot) -> (mpsc::Sender<Msg>, broadcast::Sender<Arc<Event>>) {
    let (tx, mut rx) = mpsc::channel::<Msg>(64);
    let (events, _) = broadcast::channel(16);
    let ev = events.clone();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            match m {
                Msg::Snapshot(r) => {
                    let _ = r.send(snap.clone());
                }
                Msg::Subscribe(r) => {
                    let _ = r.send((snap.clone(), ev.subscribe()));
                }
                Msg::Admit {
                    sighting, reply, ..
                } => {
                    let _ = reply.send(Ok(Admitted {
                        name: render::peer_name("clients", sighting.addr, None),
                        group: "clients".into(),
                        already: false,
                    }));
                }
                Msg::Remove { target, reply } => {
                    let _ = reply.send(Err(format!("no peer {target} in the roster")));
                }
                _ => {}
            }
        }
    });
    (tx, events)
}

struct Running {
    dir: tempfile::TempDir,
    sock: PathBuf,
    token: CancellationToken,
    events: broadcast::Sender<Arc<Event>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// What the server needs, with a roster stand-in and no BIRD.
fn context(roster: mpsc::Sender<Msg>, dir: &Path) -> Context {
    Context {
        roster,
        stats: Arc::new(TailStats::default()),
        config_path: None,
        bird_socket: dir.join("no-bird.ctl"),
        sources: Default::default(),
        metrics: None,
    }
}

async fn start_server(snap: Snapshot, max_clients: Option<usize>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("autopeer.ctl");
    let (roster, events) = fake_roster(snap);
    let mut server = Server::bind(&sock).unwrap();
    if let Some(n) = max_clients {
        server = server.with_max_clients(n);
    }
    let token = CancellationToken::new();
    tokio::spawn(server.run(context(roster, dir.path()), token.clone()));
    Running {
        dir,
        sock,
        token,
        events,
    }
}

/// A blocking client: reads the greeting, then one reply per command.
struct Client {
    r: BufReader<StdStream>,
    w: StdStream,
}

impl Client {
    fn connect(sock: &Path) -> (Client, String) {
        let s = StdStream::connect(sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let w = s.try_clone().unwrap();
        let mut c = Client {
            r: BufReader::new(s),
            w,
        };
        let g = c.reply();
        (c, g)
    }

    /// Lines up to and including the final `DDDD ` line.
    fn reply(&mut self) -> String {
        let mut out = String::new();
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).unwrap();
            assert!(n > 0, "connection closed inside a reply: {out:?}");
            out.push_str(&line);
            let b = line.as_bytes();
            if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' ' {
                return out;
            }
        }
    }

    fn ask(&mut self, cmd: &str) -> String {
        self.w.write_all(cmd.as_bytes()).unwrap();
        self.w.write_all(b"\n").unwrap();
        self.reply()
    }
}

/// A fake daemon: greets each client, reads its command and writes the
/// next canned reply; returns the commands seen.
fn fake_daemon(
    listener: std::os::unix::net::UnixListener,
    canned: Vec<&'static str>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for reply in canned {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"0001 autopeer 0.1.0 ready.\n").unwrap();
            let mut line = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap();
            seen.push(line);
            s.write_all(reply.as_bytes()).unwrap();
        }
        seen
    })
}

/// `autopeer -s SOCK ARGS...`, as root.
fn cli(sock: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_autopeer"))
        .args(["-s", sock.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

/// The binary against a fake daemon that writes canned framed replies.
#[test]
fn status_prints_rows_without_codes() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("fake.ctl");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let canned: Vec<&'static str> = vec![
        "2002-Name               Group    Neighbor   State  Info\n1002-clients_10_88_0_2  clients  10.88.0.2  up     Established\n clients_10_88_0_3  clients  10.88.0.3  start  Active\n0000 \n",
        "8007 Access denied\n",
    ];
    let server = fake_daemon(listener, canned);
    let bin = env!("CARGO_BIN_EXE_autopeer");
    let out = cli(&sock, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Name               Group    Neighbor   State  Info\n\
         clients_10_88_0_2  clients  10.88.0.2  up     Established\n\
         clients_10_88_0_3  clients  10.88.0.3  start  Active\n"
    );
    let out = cli(&sock, &["add", "10.88.0.9"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Access denied"));
    let seen = server.join().unwrap();
    assert_eq!(seen, vec!["show peers\n", "add 10.88.0.9\n"]);

    // Nobody listening: exit 1. A bad address: usage, exit 2.
    let out = Command::new(bin)
        .args(["-s", dir.path().join("none").to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = Command::new(bin)
        .args(["-s", sock.to_str().unwrap(), "add", "10.0.0.1;x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_get_bird_errors_and_the_connection_stays_usable() {
    let r = start_server(snapshot(2), None).await;
    let sock = r.sock.clone();
    tokio::task::spawn_blocking(move || {
        let (mut c, greeting) = Client::connect(&sock);
        assert!(greeting.starts_with("0001 autopeer "), "{greeting}");
        let e = c.ask("frobnicate the router");
        assert!(e.starts_with("9001 unknown command"), "{e}");
        let long = "x".repeat(5000);
        assert_eq!(c.ask(&long), "9000 Command too long\n");
        let peers = c.ask("show peers");
        assert!(peers.starts_with("2002-Name "), "{peers}");
        assert!(peers.contains("clients_10_88_0_2"), "{peers}");
        assert!(peers.contains(" up "), "{peers}");
        assert!(peers.ends_with("0000 \n"), "{peers}");
        let g = c.ask("show groups");
        assert!(
            g.contains("clients") && g.contains("1000") && g.contains("7d"),
            "{g}"
        );
        let s = c.ask("show sources");
        assert!(s.contains("refused.no_group"), "{s}");
        let s = c.ask("show status");
        assert!(s.contains("1000-autopeer "), "{s}");
        let a = c.ask("add 10.88.0.7 group clients");
        assert!(a.contains("Adding clients_10_88_0_7"), "{a}");
        let rm = c.ask("remove nobody");
        assert!(rm.starts_with("8003 "), "{rm}");
        let rl = c.ask("reload");
        assert!(rl.starts_with("8002 "), "{rl}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_block_others() {
    // Big replies (2,000 rows) fill the stuck client's socket buffer.
    let r = start_server(snapshot(2000), None).await;
    let sock = r.sock.clone();
    tokio::task::spawn_blocking(move || {
        let stuck = StdStream::connect(&sock).unwrap();
        let mut w = stuck.try_clone().unwrap();
        for _ in 0..200 {
            if w.write_all(b"show peers\n").is_err() {
                break;
            }
        }
        let started = std::time::Instant::now();
        let (mut c, _) = Client::connect(&sock);
        let peers = c.ask("show peers");
        assert!(peers.contains("clients_10_89_7_250"), "short reply");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "second client waited {:?}",
            started.elapsed()
        );
        // The stuck client is dropped after the write time-out: reading
        // its backlog ends in EOF, not in an endless stream.
        std::thread::sleep(autopeer::ctl::server::WRITE_TIMEOUT + Duration::from_secs(1));
        let mut rd = stuck;
        rd.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut sink = Vec::new();
        // Closed: EOF, or a reset when the server left our unread
        // commands behind; a read time-out would mean it is still open.
        let res = rd.read_to_end(&mut sink);
        assert!(
            res.is_ok()
                || res
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "stuck client not closed: {res:?}"
        );
        drop(w);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_are_capped_and_the_daemon_keeps_serving() {
    let r = start_server(snapshot(1), None).await;
    let sock = r.sock.clone();
    tokio::task::spawn_blocking(move || {
        let mut conns = Vec::new();
        for _ in 0..1000 {
            conns.push(StdStream::connect(&sock).unwrap());
        }
        let (mut served, mut refused) = (0, 0);
        for s in &conns {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).unwrap();
            if line.starts_with("0001 ") {
                served += 1;
            } else if line.starts_with("8012 Too many clients") {
                refused += 1;
            } else {
                panic!("unexpected first line {line:?}");
            }
        }
        assert_eq!(served, autopeer::ctl::server::MAX_CLIENTS);
        assert_eq!(served + refused, 1000);
        drop(conns);
        // Slots come back once the clients are gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let s = StdStream::connect(&sock).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            if line.starts_with("0001 ") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never served again");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_dumps_then_streams_events() {
    // One peer in the dump.
    let r = start_server(snapshot(0), None).await;
    let sock = r.sock.clone();
    let events = r.events.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let s = StdStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(b"watch json\n").unwrap();
        let mut lines = Vec::new();
        while lines.len() < 5 {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            lines.push(l);
        }
        lines
    });
    // Wait until the subscription is live, then send.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.receiver_count() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..3 {
        let _ = events.send(Arc::new(Event::StateChanged {
            name: format!("p{i}"),
            from: "start Active".into(),
            to: "up Established".into(),
        }));
    }
    let lines = reader.await.unwrap();
    assert!(lines[0].starts_with("0001 "), "{lines:?}");
    assert!(lines[1].starts_with("1030-{"), "{lines:?}");
    assert!(
        lines[1].contains("\"peer\":\"clients_10_88_0_2\""),
        "{lines:?}"
    );
    // Then the events, in order.
    let names: Vec<String> = lines[2..]
        .iter()
        .map(|l| {
            let json = l.trim_start_matches("1031-").trim();
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(v["event"], "state_changed");
            v["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        lines[3].starts_with(' '),
        "continuation expected: {lines:?}"
    );
    assert_eq!(names, ["p0", "p1", "p2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_root_add_is_denied() {
    if !prereq::runnable("non-root add", prereq::root("to run a client as nobody")) {
        return;
    }
    let r = start_server(snapshot(1), None).await;
    // Let nobody reach the socket; the access rule, not the mode, is tested.
    std::fs::set_permissions(
        r.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&r.sock, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let bin = r.dir.path().join("autopeer");
    std::fs::copy(env!("CARGO_BIN_EXE_autopeer"), &bin).unwrap();
    let sock = r.sock.clone();
    let (denied, shown, rooted) = tokio::task::spawn_blocking(move || {
        use std::os::unix::process::CommandExt;
        let as_nobody = |args: &[&str]| {
            Command::new(&bin)
                .args(["-s", sock.to_str().unwrap()])
                .args(args)
                .uid(65534)
                .gid(65534)
                .output()
                .unwrap()
        };
        let denied = as_nobody(&["add", "10.88.0.9"]);
        let shown = as_nobody(&["show", "groups"]);
        let rooted = Command::new(&bin)
            .args(["-s", sock.to_str().unwrap(), "add", "10.88.0.9"])
            .output()
            .unwrap();
        (denied, shown, rooted)
    })
    .await
    .unwrap();
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Access denied"),
        "{denied:?}"
    );
    assert_eq!(shown.status.code(), Some(0), "{shown:?}");
    assert!(String::from_utf8_lossy(&shown.stdout).contains("clients"));
    assert_eq!(rooted.status.code(), Some(0), "{rooted:?}");
    assert!(String::from_utf8_lossy(&rooted.stdout).contains("Adding clients_10_88_0_9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birdc_talks_to_the_control_socket() {
    if !prereq::runnable(
        "birdc test",
        prereq::file("/usr/sbin/birdc", "apt install bird2"),
    ) {
        return;
    }
    let r = start_server(snapshot(1), None).await;
    let sock = r.sock.clone();
    let (status, protocols) = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            Command::new("/usr/sbin/birdc")
                .arg("-s")
                .arg(&sock)
                .args(args)
                .output()
                .unwrap()
        };
        (run(&["show", "status"]), run(&["show", "protocols"]))
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    assert!(text.contains("autopeer 0.1.0 ready."), "{text}");
    assert!(
        text.contains("Peers 2 (1 Established, 0 pending)"),
        "{text}"
    );
    let text = String::from_utf8_lossy(&protocols.stdout);
    assert!(protocols.status.success(), "{protocols:?}");
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[1].starts_with("Name "), "{text}");
    let cols: Vec<&str> = rows[2].split_whitespace().collect();
    assert_eq!(
        cols[..5],
        [
            "clients_10_88_0_2",
            "clients",
            "10.88.0.2",
            "up",
            "Established"
        ],
        "{text}"
    );
}

// ---- expiry on the real roster, with paused time ----

fn expiry_roster(dir: &Path) -> Roster {
    let conf = dir.join("bird.conf");
    std::fs::write(
        &conf,
        "router id 10.88.0.1;\ntemplate bgp CLIENTS { local 10.88.0.1 as 65000; }\n\
         template bgp OTHERS { local 10.88.0.1 as 65000; }\ninclude \"autopeer.conf\";\n",
    )
    .unwrap();
    let old = "2020-01-01T00:00:00Z";
    let now = autopeer::event::rfc3339(SystemTime::now());
    let mut peers = vec![
        // Never Established, admitted long ago: due.
        Peer {
            admitted: old.into(),
            ..peer("clients_10_88_0_2", "10.88.0.2")
        },
        // Same, and due at the same check: one batch.
        Peer {
            admitted: old.into(),
            ..peer("clients_10_88_0_3", "10.88.0.3")
        },
        // Established: never expires while up.
        Peer {
            admitted: old.into(),
            ..peer("clients_10_88_0_5", "10.88.0.5")
        },
        // Admitted just now: not due for an hour.
        Peer {
            admitted: now,
            ..peer("clients_10_88_0_6", "10.88.0.6")
        },
    ];
    // A group without expire keeps its old, down peer.
    peers.push(Peer {
        name: "others_10_99_0_2".into(),
        group: "others".into(),
        template: "OTHERS".into(),
        admitted: old.into(),
        ..peer("x", "10.99.0.2")
    });
    std::fs::write(dir.join("autopeer.conf"), render::render(&peers).unwrap()).unwrap();
    // A state file that exists (so clocks are not reset to now).
    std::fs::write(dir.join("state.toml"), "[peers]\n").unwrap();
    let d = dir.display();
    let text = format!(
        r#"[bird]
socket = "{d}/no-bird.ctl"
config = "{d}/bird.conf"
include = "{d}/autopeer.conf"
keyring = "off"

[agent]
socket = "{d}/autopeer.ctl"
state = "{d}/state.toml"
audit_log = "{d}/audit.log"

[sources]
logs = []

[[group]]
name = "clients"
template = "CLIENTS"
prefixes = ["10.88.0.0/25"]
neighbor = "internal"
expire = "1h"

[[group]]
name = "others"
template = "OTHERS"
prefixes = ["10.99.0.0/24"]
neighbor = "internal"
"#
    );
    std::fs::write(dir.join("cfg.toml"), &text).unwrap();
    let config = Config::load_str(&text, dir).unwrap();
    let audit = autopeer::audit::AuditLog::open(&dir.join("audit.log")).unwrap();
    Roster::new(Arc::new(config), Some(audit)).unwrap()
}

use common::protocol_row as row;

#[tokio::test(start_paused = true)]
async fn expiry_removes_due_peers_in_one_batch_at_the_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let roster = expiry_roster(dir.path());
    let (_stx, srx) = mpsc::channel(8);
    let (tx, rx) = mpsc::channel(8);
    let token = CancellationToken::new();
    let task = tokio::spawn(roster.run(srx, rx, token.clone()));

    let (stx, srx) = tokio::sync::oneshot::channel();
    tx.send(Msg::Subscribe(stx)).await.unwrap();
    let (snap, mut events) = srx.await.unwrap();
    assert_eq!(snap.peers.len(), 5);
    let t0 = tokio::time::Instant::now();
    tx.send(Msg::States(
        vec![
            row("clients_10_88_0_2", ProtoState::Start, "Active"),
            row("clients_10_88_0_3", ProtoState::Start, "Connect"),
            row("clients_10_88_0_5", ProtoState::Up, "Established"),
            row("clients_10_88_0_6", ProtoState::Start, "Active"),
            row("others_10_99_0_2", ProtoState::Start, "Active"),
        ]
        .into(),
    ))
    .await
    .unwrap();
    // The snapshot already shows when they expire.
    let (stx, srx) = tokio::sync::oneshot::channel();
    tx.send(Msg::Snapshot(stx)).await.unwrap();
    let snap = srx.await.unwrap();
    let by = |n: &str| {
        snap.peers
            .iter()
            .find(|p| p.peer.name == n)
            .unwrap()
            .clone()
    };
    assert!(by("clients_10_88_0_2").expires.unwrap() < SystemTime::now());
    assert!(by("clients_10_88_0_5").expires.is_none());
    assert!(by("clients_10_88_0_6").expires.unwrap() > SystemTime::now());
    assert!(by("others_10_99_0_2").expires.is_none());
    assert!(by("clients_10_88_0_5").runtime.is_up());

    let mut removed = Vec::new();
    while removed.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(600), events.recv())
            .await
            .expect("no removal within 10 virtual minutes")
            .unwrap();
        if let Event::Removing { name, reason, .. } = &*e {
            removed.push((name.clone(), reason.clone(), tokio::time::Instant::now()));
            assert_eq!(
                e.audit_text().unwrap(),
                format!(
                    "removing neighbor 10.88.0.{} from group clients: not Established for 1h",
                    &name[name.len() - 1..]
                )
            );
        }
    }
    // At the periodic check, not before; both in the same check.
    assert!(removed[0].2 - t0 >= EXPIRY_CHECK, "{:?}", removed[0].2 - t0);
    assert_eq!(removed[0].2, removed[1].2);
    let mut names: Vec<&str> = removed.iter().map(|r| r.0.as_str()).collect();
    names.sort();
    assert_eq!(names, ["clients_10_88_0_2", "clients_10_88_0_3"]);
    assert!(removed.iter().all(|r| r.1 == "not Established for 1h"));

    let (stx, srx) = tokio::sync::oneshot::channel();
    tx.send(Msg::Snapshot(stx)).await.unwrap();
    let left: Vec<String> = srx
        .await
        .unwrap()
        .peers
        .into_iter()
        .map(|p| p.peer.name)
        .collect();
    assert_eq!(
        left,
        ["clients_10_88_0_5", "clients_10_88_0_6", "others_10_99_0_2"]
    );
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert_eq!(
        audit.matches("not Established for 1h").count(),
        2,
        "{audit}"
    );
    token.cancel();
    let _ = task.await;
}

#[test]
fn expiry_clock_rules() {
    use autopeer::roster::{expires_at, observe};
    let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    let hour = Duration::from_secs(3600);
    let mut rt = Runtime::default();
    // Never up: admission + expire; a lost state file moves the floor.
    observe(
        &mut rt,
        Some(&row("p", ProtoState::Start, "Active")),
        t(100),
    );
    assert_eq!(expires_at(t(0), &rt, hour, t(0)), Some(t(3600)));
    assert_eq!(expires_at(t(0), &rt, hour, t(50)), Some(t(3650)));
    // Up: never; the persisted facts change.
    assert!(observe(
        &mut rt,
        Some(&row("p", ProtoState::Up, "Established")),
        t(200)
    ));
    assert_eq!(rt.last_established, Some(t(200)));
    assert_eq!(expires_at(t(0), &rt, hour, t(0)), None);
    // Still up: nothing to persist.
    assert!(!observe(
        &mut rt,
        Some(&row("p", ProtoState::Up, "Established")),
        t(300)
    ));
    // Down: expire after it went down.
    assert!(observe(
        &mut rt,
        Some(&row("p", ProtoState::Start, "Active")),
        t(400)
    ));
    assert_eq!(rt.down_since, Some(t(400)));
    assert_eq!(expires_at(t(0), &rt, hour, t(0)), Some(t(4000)));
    // Missing from BIRD: state unknown, facts kept.
    assert!(!observe(&mut rt, None, t(500)));
    assert_eq!(rt.state, None);
    assert_eq!(rt.down_since, Some(t(400)));
}

#[tokio::test]
async fn reload_refuses_a_broken_config_and_takes_a_good_one() {
    use autopeer::ctl::proto::CtlCommand;
    use autopeer::ctl::server::execute;
    let dir = tempfile::tempdir().unwrap();
    let _roster = expiry_roster(dir.path());
    let (roster, _events) = fake_roster(snapshot(0));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[agent]\nbogus = 1\n").unwrap();
    let mut ctx = Context {
        roster,
        stats: Arc::new(TailStats::default()),
        config_path: Some(bad),
        bird_socket: dir.path().join("no-bird.ctl"),
        sources: Default::default(),
        metrics: None,
    };
    let reply = execute(&ctx, CtlCommand::Reload).await;
    assert!(reply.starts_with("8002-"), "{reply}");
    assert!(reply.contains("bogus"), "{reply}");
    assert!(
        reply.ends_with("8002 Reload refused; the old config stays in force\n"),
        "{reply}"
    );
    // The config the roster was built from is good.
    let good = dir.path().join("good.toml");
    let text = std::fs::read_to_string(dir.path().join("bird.conf")).unwrap();
    assert!(text.contains("CLIENTS"));
    std::fs::write(
        &good,
        format!(
            "[bird]\nsocket = \"{d}/no-bird.ctl\"\nconfig = \"{d}/bird.conf\"\ninclude = \"{d}/autopeer.conf\"\n\n\
             [[group]]\nname = \"clients\"\ntemplate = \"CLIENTS\"\nprefixes = [\"10.88.0.0/25\"]\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    ctx.config_path = Some(good);
    assert_eq!(
        execute(&ctx, CtlCommand::Reload).await,
        "0003 Reconfigured\n"
    );
    // `show peers all` without a BIRD to ask: the table, then 8013.
    let reply = execute(&ctx, CtlCommand::ShowPeers { all: true }).await;
    assert!(reply.starts_with("2002-Name "), "{reply}");
    assert!(reply.contains("Last-error"), "{reply}");
    assert!(
        reply.lines().last().unwrap().starts_with("8013 "),
        "{reply}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_state_file_keeps_expiry_clocks_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    drop(expiry_roster(dir.path()));
    // clients_10_88_0_6 was admitted just now, but had been up and went
    // down two hours ago per the state file: due at once.
    std::fs::write(
        dir.path().join("state.toml"),
        "[peers.clients_10_88_0_6]\nlast_established = \"2020-01-01T00:00:00Z\"\n\
         down_since = \"2020-01-01T01:00:00Z\"\n",
    )
    .unwrap();
    let roster = expiry_roster_keep_state(dir.path());
    let (_stx, srx) = mpsc::channel(8);
    let (tx, rx) = mpsc::channel(8);
    let token = CancellationToken::new();
    let task = tokio::spawn(roster.run(srx, rx, token.clone()));
    tx.send(Msg::States(
        vec![row("clients_10_88_0_6", ProtoState::Start, "Active")].into(),
    ))
    .await
    .unwrap();
    let (stx, srx) = tokio::sync::oneshot::channel();
    tx.send(Msg::Snapshot(stx)).await.unwrap();
    let snap = srx.await.unwrap();
    let p = snap
        .peers
        .iter()
        .find(|p| p.peer.name == "clients_10_88_0_6")
        .unwrap();
    let down = humantime::parse_rfc3339("2020-01-01T01:00:00Z").unwrap();
    assert_eq!(p.runtime.down_since, Some(down));
    assert_eq!(p.expires, Some(down + Duration::from_secs(3600)));
    token.cancel();
    let _ = task.await;
    // A removed state file resets the clocks to the start: not due.
    std::fs::remove_file(dir.path().join("state.toml")).unwrap();
    let roster = expiry_roster_keep_state(dir.path());
    let snap = roster.snapshot();
    let p = snap
        .peers
        .iter()
        .find(|p| p.peer.name == "clients_10_88_0_2")
        .unwrap();
    assert!(p.expires.unwrap() > SystemTime::now(), "{:?}", p.expires);
}

/// The roster from the files [`expiry_roster`] wrote, with whatever
/// state file is there now.
fn expiry_roster_keep_state(dir: &Path) -> Roster {
    let text = std::fs::read_to_string(dir.join("cfg.toml")).unwrap();
    let config = Config::load_str(&text, dir).unwrap();
    Roster::new(Arc::new(config), None).unwrap()
}

/// On one thread, 100 events sent while the watch task cannot run overflow
/// the (16-deep) broadcast: the client is told how many it lost, then
/// gets the rest in order.
#[tokio::test]
async fn a_slow_watcher_is_told_how_many_events_it_lost() {
    let r = start_server(snapshot(0), None).await;
    let sock = r.sock.clone();
    let events = r.events.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let s = StdStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(b"watch\n").unwrap();
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            let done = l.contains("p99");
            lines.push(l);
            if done {
                return lines;
            }
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.receiver_count() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 0..100 {
        let _ = events.send(Arc::new(Event::StateChanged {
            name: format!("p{i}"),
            from: "up Established".into(),
            to: "start Active".into(),
        }));
    }
    let lines = reader.await.unwrap();
    let lost = lines
        .iter()
        .position(|l| l.starts_with("1032-"))
        .unwrap_or_else(|| panic!("no lost line: {lines:?}"));
    assert_eq!(lines[lost], "1032-84 events lost\n");
    let after: Vec<&String> = lines[lost + 1..].iter().collect();
    assert_eq!(after.len(), 16, "{lines:?}");
    assert!(
        after[0].starts_with("1031-") && after[0].contains("p84: up Established -> start Active")
    );
    assert!(after[1].starts_with(' '));
}

#[tokio::test]
async fn the_socket_is_created_carefully() {
    use autopeer::ctl::server::CtlError;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    // A regular file at the path is never removed.
    let file = dir.path().join("file.ctl");
    std::fs::write(&file, "precious").unwrap();
    assert!(matches!(
        Server::bind(&file),
        Err(CtlError::NotASocket { .. })
    ));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
    // A stale socket (nobody listening) is replaced.
    let sock = dir.path().join("a.ctl");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let server = Server::bind(&sock).unwrap();
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(
        meta.gid(),
        std::fs::metadata(dir.path()).unwrap().gid(),
        "socket takes its directory's group"
    );
    // A live one is not stolen.
    assert!(matches!(Server::bind(&sock), Err(CtlError::InUse { .. })));
    // Shutdown removes it.
    let token = CancellationToken::new();
    let (roster, _e) = fake_roster(snapshot(0));
    let task = tokio::spawn(server.run(
        Context {
            roster,
            stats: Arc::new(TailStats::default()),
            config_path: None,
            bird_socket: dir.path().join("none"),
            sources: Default::default(),
            metrics: None,
        },
        token.clone(),
    ));
    token.cancel();
    task.await.unwrap();
    assert!(!sock.exists());
}

/// `watch` clients cannot lock out commands: past [`MAX_WATCHERS`] a
/// watcher is told `8012` and closed, and a watcher gives back its command
/// slot, so with 100 watch requests `status` and `add` still get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_cannot_take_the_slots_commands_need() {
    use autopeer::ctl::server::MAX_WATCHERS;
    let r = start_server(snapshot(1), None).await;
    let sock = r.sock.clone();
    let bin = env!("CARGO_BIN_EXE_autopeer");
    let (watching, refused, held, status, cli) = tokio::task::spawn_blocking(move || {
        let mut held = Vec::new();
        let (mut watching, mut refused) = (0, 0);
        for _ in 0..100 {
            let (mut c, greeting) = Client::connect(&sock);
            if !greeting.starts_with("0001 ") {
                // Old behaviour: watchers hold every slot.
                held.push(c);
                continue;
            }
            c.w.write_all(b"watch\n").unwrap();
            let mut first = String::new();
            c.r.read_line(&mut first).unwrap();
            if first.starts_with("2030-") {
                watching += 1;
            } else if first.starts_with("8012 Too many watchers") {
                refused += 1;
                // ... and closed.
                let mut rest = String::new();
                assert_eq!(c.r.read_line(&mut rest).unwrap(), 0, "{rest:?}");
            } else {
                panic!("unexpected answer to watch: {first:?}");
            }
            held.push(c);
        }
        let (mut c, greeting) = Client::connect(&sock);
        let status = if greeting.starts_with("0001 ") {
            c.ask("show status")
        } else {
            greeting
        };
        let cli = Command::new(bin)
            .args(["-s", sock.to_str().unwrap(), "status"])
            .output()
            .unwrap();
        (watching, refused, held.len(), status, cli)
    })
    .await
    .unwrap();
    assert_eq!(held, 100);
    assert_eq!(watching, MAX_WATCHERS, "watchers served at once");
    assert_eq!(refused, 100 - MAX_WATCHERS, "the rest told 8012");
    assert!(
        status.starts_with("1000-") && status.ends_with("0000 \n"),
        "show status answered beside {watching} watchers: {status:?}"
    );
    assert_eq!(cli.status.code(), Some(0), "autopeer status: {cli:?}");
    assert!(String::from_utf8_lossy(&cli.stdout).contains("clients_10_88_0_2"));
}

/// Text a spoke (or any other sender) chose reaches `watch` escaped: no
/// raw control character on the wire, `\x1b` where ESC was; and in JSON
/// the value arrives exactly as sent, as JSON escapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_hostile_text_escaped() {
    let hostile = "gre1\x1b[2J\r\u{9b}31mFORGED\x7f";
    let r = start_server(snapshot(0), None).await;
    let events = r.events.clone();
    let mut readers = Vec::new();
    for json in [false, true] {
        let sock = r.sock.clone();
        readers.push(tokio::task::spawn_blocking(move || {
            let s = StdStream::connect(&sock).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            w.write_all(if json { b"watch json\n" } else { b"watch\n" })
                .unwrap();
            let mut bytes = Vec::new();
            loop {
                let mut l = Vec::new();
                r.read_until(b'\n', &mut l).unwrap();
                assert!(!l.is_empty(), "closed early: {bytes:?}");
                let done = l.starts_with(b"1031-");
                bytes.extend_from_slice(&l);
                if done {
                    return (bytes, l);
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.receiver_count() < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = events.send(Arc::new(Event::Nhrp {
        addr: "10.200.0.5".parse().unwrap(),
        nbma: None,
        interface: hostile.into(),
        accepted: false,
        admitted: false,
        outcome: "no group matches".into(),
        kind: Some("no_group"),
    }));
    let json_reader = readers.pop().unwrap();
    let (text_bytes, text_line) = readers.pop().unwrap().await.unwrap();
    let (json_bytes, json_line) = json_reader.await.unwrap();
    for bytes in [&text_bytes, &json_bytes] {
        let s = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            !s.chars().any(|c| c != '\n' && c.is_control()),
            "raw control character on the wire: {s:?}"
        );
    }
    let text_line = String::from_utf8(text_line).unwrap();
    assert!(
        text_line.contains(r"on gre1\x1b[2J\r\x9b31mFORGED\x7f: no group matches"),
        "{text_line:?}"
    );
    let json_line = String::from_utf8(json_line).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(json_line.trim_start_matches("1031-").trim_end()).unwrap();
    assert_eq!(v["interface"], hostile, "{json_line:?}");
    assert_eq!(v["admitted"], false);
}

/// Membership in the socket's group is what the kernel recorded when the
/// client connected (SO_PEERGROUPS), not what `/proc/PID/status` says
/// later. Attack, with real privileges: `nobody` without the group
/// connects, hands the connection to a child and exits; a process of
/// `nobody` *with* the group is then started under the freed pid
/// (ns_last_pid). Reading `/proc/PID/status` would let the first client
/// `add`; SO_PEERGROUPS refuses it. A real member (`setpriv --groups=`,
/// with 41 groups) may `add`, and one without the group may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_membership_is_the_kernels_record_not_proc() {
    use std::os::unix::fs::PermissionsExt;
    let missing = prereq::root("to run clients as nobody")
        .or_else(|| prereq::file("/usr/bin/python3", "apt install python3"))
        .or_else(|| prereq::file("/usr/bin/setpriv", "apt install util-linux"));
    if !prereq::runnable("group membership test", missing) {
        return;
    }
    // A group id nobody has: the socket's group for this test.
    const GROUP: u32 = 47_113;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), None, Some(GROUP)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join("autopeer.ctl");
    let server = Server::bind(&sock).unwrap();
    // Let nobody reach the socket; the access rule, not the mode, is tested.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let bin = dir.path().join("autopeer");
    std::fs::copy(env!("CARGO_BIN_EXE_autopeer"), &bin).unwrap();
    let nobody = |groups: &str| {
        let mut c = Command::new("/usr/bin/setpriv");
        c.args(["--reuid=65534", "--regid=65534", groups]);
        c
    };

    // The client connects while the server does not accept yet (the
    // connection waits in the backlog), then its connecting process exits.
    const CLIENT: &str = "import os, socket, sys\n\
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
        s.connect(sys.argv[1])\n\
        if os.fork():\n    os._exit(0)\n\
        f = s.makefile('rb')\n\
        f.readline()\n\
        s.sendall(b'add 10.88.0.9\\n')\n\
        sys.stdout.write(f.readline().decode())\n";
    let mut client = nobody("--clear-groups")
        .args(["/usr/bin/python3", "-c", CLIENT, sock.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = client.id();
    let answer = client.stdout.take().unwrap();
    assert!(client.wait().unwrap().success());

    // A member of the group takes over the connecting process's pid.
    let mut impostor = None;
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let mut c = nobody(&format!("--groups={GROUP}"))
            .args(["sleep", "60"])
            .spawn()
            .unwrap();
        if c.id() == pid {
            impostor = Some(c);
            break;
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    let Some(mut impostor) = impostor else {
        panic!("could not start a process under the freed pid {pid}");
    };
    // Once setpriv has set its groups and run `sleep`, it looks like a member.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        if status
            .lines()
            .any(|l| l.starts_with("Groups:") && l.contains(&GROUP.to_string()))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the impostor never looked like a member: {status}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let token = CancellationToken::new();
    let (roster, _events) = fake_roster(snapshot(1));
    tokio::spawn(server.run(context(roster, dir.path()), token.clone()));
    let sock2 = sock.clone();
    let (forged, member, outsider) = tokio::task::spawn_blocking(move || {
        let mut forged = String::new();
        BufReader::new(answer).read_to_string(&mut forged).unwrap();
        let run = |groups: &str| {
            nobody(groups)
                .arg(&bin)
                .args(["-s", sock2.to_str().unwrap(), "add", "10.88.0.9"])
                .output()
                .unwrap()
        };
        (
            forged,
            // 40 other groups first: more than the first buffer holds.
            run(&format!(
                "--groups={},{GROUP}",
                (50_000..50_040)
                    .map(|g: u32| g.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            run("--clear-groups"),
        )
    })
    .await
    .unwrap();
    let _ = impostor.kill();
    let _ = impostor.wait();
    token.cancel();
    assert!(
        forged.starts_with("8007 Access denied"),
        "a client without the group was let in by a later process's /proc: {forged:?}"
    );
    assert_eq!(member.status.code(), Some(0), "{member:?}");
    assert!(String::from_utf8_lossy(&member.stdout).contains("Adding clients_10_88_0_9"));
    assert_eq!(outsider.status.code(), Some(1), "{outsider:?}");
    assert!(String::from_utf8_lossy(&outsider.stderr).contains("Access denied"));
}

/// The client binary does not pass a control character to the terminal
/// either, even from a socket that is not autopeer's own.
#[test]
fn the_client_prints_control_characters_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("fake.ctl");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let server = fake_daemon(
        listener,
        vec![
            "1000-peer \x1b]0;owned\x07 \u{9b}2J\x7f\r\n0000 \n",
            "8010 Refused: \x1b[31mred\n",
        ],
    );
    let out = cli(&sock, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "peer \\x1b]0;owned\\x07 \\x9b2J\\x7f\\r\n"
    );
    let out = cli(&sock, &["add", "10.88.0.9"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "autopeer: Refused: \\x1b[31mred\n"
    );
    server.join().unwrap();
}

/// `show sources` lists the journal source's counters when it runs and
/// marks each source verified (BIRD's own file, the journal) or
/// unverified (a shared file); without a journal no `journal.` lines.
#[tokio::test]
async fn show_sources_marks_each_source_and_counts_the_journal() {
    use autopeer::ctl::proto::{CtlCommand, SourceMark};
    use autopeer::ctl::server::{execute, Sources};
    use autopeer::sources::journal::JournalStats;
    let dir = tempfile::tempdir().unwrap();
    let (roster, _events) = fake_roster(snapshot(0));
    let mut ctx = context(roster, dir.path());
    let reply = execute(&ctx, CtlCommand::ShowSources).await;
    assert!(!reply.contains("journal"), "{reply}");
    assert!(!reply.contains("source "), "{reply}");
    let mark = |name: &str, verified| SourceMark {
        name: name.into(),
        verified,
    };
    ctx.sources = Sources {
        journal: Some(Arc::new(JournalStats::default())),
        marks: vec![
            mark("journal", true),
            mark("/var/log/bird/bird.log", true),
            mark("/var/log/syslog", false),
        ],
        files: None,
    };
    let reply = execute(&ctx, CtlCommand::ShowSources).await;
    let lines: Vec<Vec<&str>> = reply
        .lines()
        .map(|l| {
            // `1020-text` opens the reply, ` text` continues it.
            let text = l.strip_prefix(' ').unwrap_or_else(|| &l[5..]);
            text.split_whitespace().collect()
        })
        .collect();
    for counter in ["entries", "sightings", "forged", "malformed", "restarts"] {
        let name = format!("journal.{counter}");
        assert!(
            lines.contains(&vec![name.as_str(), "0"]),
            "no {name}:\n{reply}"
        );
    }
    for want in [
        ["source", "verified", "journal"],
        ["source", "verified", "/var/log/bird/bird.log"],
        ["source", "unverified", "/var/log/syslog"],
    ] {
        assert!(lines.contains(&want.to_vec()), "no {want:?}:\n{reply}");
    }
    assert!(reply.starts_with("1020-"), "{reply}");
}
