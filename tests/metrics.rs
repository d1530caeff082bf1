//! `[agent] metrics` over real loopback sockets: the endpoint answers
//! Prometheus text; a silent scraper, a 1 MB request line and a crowd of
//! scrapers are each bounded and never stop it; a taken or invalid address
//! is a clear error from `run` and from `check`; the daemon with a real
//! BIRD serves the admissions and refusals it decided, `show status` says
//! where, and a crowd of bad scrapers never delays its control socket.
//!
//! The endpoint tests run the server on a one-thread runtime of their own:
//! anything that blocked it would block every scrape after it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use autopeer::metrics::server::{self, Context, HEADER_TIMEOUT, MAX_CONNECTIONS};
use autopeer::metrics::{probe, Sources};
use common::bird::{free_port, passive_clients_conf, RealBird};
use common::daemon::{autopeer, autopeer_check, Daemon, AUTOPEER};
use tokio_util::sync::CancellationToken;

/// The server on 127.0.0.1 (a free port), on its own one-thread runtime,
/// stopped on drop.
struct Endpoint {
    addr: SocketAddr,
    token: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    fn start() -> Endpoint {
        let token = CancellationToken::new();
        let stop = token.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let l = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
                tx.send(l.local_addr().unwrap()).unwrap();
                let ctx = Context {
                    roster: None,
                    sources: Sources::default(),
                };
                server::serve(l, ctx, stop).await;
            });
        });
        Endpoint {
            addr: rx.recv().unwrap(),
            token,
            thread: Some(thread),
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.token.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `GET path` with autopeer's own client: (status, body), or why not.
fn try_get(addr: SocketAddr, path: &str, within: Duration) -> Result<(u16, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(probe::get(addr, path, within))
}

/// [`try_get`], which must get an answer within 5 s.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"))
}

/// The value of the series `name` (exact, labels included) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Reads until the server closes: Ok(bytes) on EOF or reset, Err when it
/// is still open after `limit`.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => {
                return Err(format!(
                    "still open after {limit:?} ({e}); read {} bytes",
                    got.len()
                ))
            }
        }
    }
}

#[test]
fn endpoint_serves_prometheus_text_and_nothing_else() {
    let ep = Endpoint::start();
    let (status, body) = get(ep.addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!(
            "autopeer_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{body}"
    );
    assert!(body.contains("# TYPE autopeer_configure_duration_seconds histogram"));
    // Families without a series yet (admissions, refusals) are left out.
    assert!(
        body.contains("# TYPE autopeer_rejections_total counter"),
        "{body}"
    );
    assert_eq!(get(ep.addr, "/").0, 200);
    assert_eq!(get(ep.addr, "/metrics/../etc/passwd").0, 404);
    // A method other than GET: 405, by raw bytes.
    let mut s = TcpStream::connect(ep.addr).unwrap();
    s.write_all(b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let reply = read_until_closed(&mut s, Duration::from_secs(5)).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("allow: get, head"),
        "{reply}"
    );
}

#[test]
fn a_silent_scraper_is_cut_off_after_the_header_timeout() {
    let ep = Endpoint::start();
    let mut silent = TcpStream::connect(ep.addr).unwrap();
    let started = Instant::now();
    read_until_closed(&mut silent, HEADER_TIMEOUT + Duration::from_secs(5))
        .expect("a connection that never sends a request is closed");
    assert!(started.elapsed() >= HEADER_TIMEOUT - Duration::from_millis(500));
    // One that sends its request and never reads: the answer is small, the
    // server is done with it at once, so a full house of them does not
    // keep the next scraper out.
    let mut deaf = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut s = TcpStream::connect(ep.addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        deaf.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(ep.addr, "/metrics").0, 200);
}

#[test]
fn a_megabyte_request_line_is_refused_without_reading_it_all() {
    let ep = Endpoint::start();
    let mut s = TcpStream::connect(ep.addr).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut line = b"GET /".to_vec();
        line.resize(1 << 20, b'a');
        line.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        // The server stops reading and closes: the write may fail.
        let _ = w.write_all(&line);
    });
    let reply = read_until_closed(&mut s, Duration::from_secs(5))
        .expect("the server ends a 1 MB request line");
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );
    drop(s);
    writer.join().unwrap();
    assert_eq!(get(ep.addr, "/metrics").0, 200);
}

#[test]
fn a_crowd_of_scrapers_is_bounded_and_counted() {
    let ep = Endpoint::start();
    let before = value(
        &get(ep.addr, "/metrics").1,
        "autopeer_metrics_connections_refused_total",
    )
    .unwrap();
    // Every slot held by a connection that sends nothing.
    let holders: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(ep.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The rest are closed at once, long before the header timeout would.
    let extra = 40;
    for i in 0..extra {
        let mut s = TcpStream::connect(ep.addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap_or_default();
        let got = read_until_closed(&mut s, HEADER_TIMEOUT / 2)
            .unwrap_or_else(|e| panic!("connection {i} over the limit: {e}"));
        assert!(
            got.is_empty(),
            "served over the limit: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    drop(holders);
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = get(ep.addr, "/metrics");
    assert_eq!(status, 200);
    let after = value(&body, "autopeer_metrics_connections_refused_total").unwrap();
    assert!(after - before >= f64::from(extra), "{before} -> {after}");
}

// ------------------------------------------------------------ the daemon

/// A temp dir with a real BIRD and an autopeer.toml whose `[agent]
/// metrics` line is `metrics`; sightings come from `knocks.log`.
struct Setup {
    dir: tempfile::TempDir,
    _bird: Option<RealBird>,
}

impl Setup {
    fn new(metrics: &str, with_bird: bool) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("apmetrics")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        std::fs::write(d.join("autopeer.conf"), "").unwrap();
        std::fs::write(d.join("knocks.log"), "").unwrap();
        let conf = passive_clients_conf(d, free_port(), &d.join("autopeer.conf"));
        std::fs::write(d.join("bird.conf"), &conf).unwrap();
        let bird = with_bird.then(|| RealBird::start(d, &conf));
        let dd = d.display();
        std::fs::write(
            d.join("autopeer.toml"),
            format!(
                r#"[bird]
socket = "{dd}/bird.ctl"
config = "{dd}/bird.conf"
include = "{dd}/autopeer.conf"
keyring = "off"

[agent]
socket = "{dd}/autopeer.ctl"
state = "{dd}/state.toml"
audit_log = "{dd}/audit.log"
batch = "0"
{metrics}

[sources]
logs = ["{dd}/knocks.log"]
# The tests write knocks.log, not BIRD: its lines admit only with this.
unverified = "admit"

[[group]]
name = "clients"
template = "CLIENTS"
prefixes = ["10.88.0.0/24"]
neighbor = "internal"
deny = ["10.88.0.66/32"]
"#
            ),
        )
        .unwrap();
        Setup { dir, _bird: bird }
    }

    /// [`Setup::new`] with a real BIRD and metrics on a free loopback port.
    fn with_metrics() -> (Setup, SocketAddr) {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        (Setup::new(&format!("metrics = \"{addr}\""), true), addr)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn knock(&self, addr: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("knocks.log"))
            .unwrap();
        writeln!(f, "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address {addr} (port 47271)").unwrap();
    }

    fn start(&self) -> Daemon {
        Daemon::start(&self.path("autopeer.toml"), &self.path("daemon.log"))
            .ready(&self.path("autopeer.ctl"), Duration::from_secs(15))
    }

    /// `autopeer -c CONFIG run` to its end: (exit code, stderr).
    fn run_to_exit(&self) -> (i32, String) {
        let out = std::process::Command::new(AUTOPEER)
            .arg("-c")
            .arg(self.path("autopeer.toml"))
            .arg("run")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn allowed() -> bool {
    common::bird::have_bird("metrics daemon test")
}

#[test]
fn daemon_counts_admissions_and_refusals_and_status_says_where() {
    if !allowed() {
        return;
    }
    let (s, addr) = Setup::with_metrics();
    let (ok, out) = autopeer_check(&s.path("autopeer.toml"));
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "info: agent.metrics: Prometheus metrics will be served at http://{addr}/metrics"
        )),
        "{out}"
    );
    let daemon = s.start();
    // `show status` as operators send it: through birdc.
    let out = std::process::Command::new("birdc")
        .arg("-s")
        .arg(s.path("autopeer.ctl"))
        .args(["show", "status"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains(&format!("Metrics at http://{addr}/metrics")),
        "{status}"
    );
    // While it runs, check knows the address is this autopeer's.
    let (ok, out) = autopeer_check(&s.path("autopeer.toml"));
    assert!(ok && out.contains("by a running autopeer"), "{out}");

    s.knock("10.88.0.2");
    s.knock("10.88.0.66");
    s.knock("192.0.2.9");
    let mut body = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        body = get(addr, "/metrics").1;
        // Until BIRD's state of the peer has been polled, and every
        // sighting decided.
        if body.contains("autopeer_peers{group=\"clients\",state=\"start\"")
            && value(
                &body,
                "autopeer_refusals_total{group=\"\",kind=\"no_group\"}",
            )
            .is_some()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let dump = || format!("{body}\n--- daemon\n{}", daemon.log_text());
    for (series, want) in [
        ("autopeer_admissions_total{group=\"clients\"}", 1.0),
        (
            "autopeer_refusals_total{group=\"clients\",kind=\"denied\"}",
            1.0,
        ),
        ("autopeer_refusals_total{group=\"\",kind=\"no_group\"}", 1.0),
        ("autopeer_bird_up", 1.0),
        ("autopeer_applies_total{result=\"ok\"}", 1.0),
        ("autopeer_configure_duration_seconds_count", 1.0),
        ("autopeer_sightings_total{source=\"log\"}", 3.0),
        ("autopeer_group_max_peers{group=\"clients\"}", 1000.0),
    ] {
        assert_eq!(value(&body, series), Some(want), "{series}\n{}", dump());
    }
    // One peer, in the state BIRD shows for it (the passive template
    // never dials, so it is not up).
    let peers: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("autopeer_peers{") && !l.ends_with(" 0"))
        .collect();
    assert_eq!(peers.len(), 1, "{}", dump());
    assert!(
        peers[0].starts_with("autopeer_peers{group=\"clients\",state=\"start\",")
            && peers[0].ends_with(" 1"),
        "{}",
        dump()
    );
    assert!(
        !body.contains("10.88.0.2"),
        "an address in a label:\n{}",
        dump()
    );
    daemon.stop();
}

#[test]
fn a_crowd_of_bad_scrapers_never_delays_the_daemon() {
    if !allowed() {
        return;
    }
    let (s, addr) = Setup::with_metrics();
    let daemon = s.start();
    // Every slot held by a silent connection, a 1 MB request line, and a
    // crowd on top.
    let silent: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let mut big = TcpStream::connect(addr).unwrap();
    let _ = big.set_write_timeout(Some(Duration::from_secs(2)));
    let mut line = b"GET /".to_vec();
    line.resize(1 << 20, b'a');
    let _ = big.write_all(&line);
    let crowd: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    // The daemon goes on deciding and answering meanwhile.
    s.knock("10.88.0.3");
    let deadline = Instant::now() + HEADER_TIMEOUT;
    let mut status = String::new();
    while Instant::now() < deadline {
        let (code, out) = autopeer(&s.path("autopeer.ctl"), &["status"]);
        assert_eq!(code, 0, "{out}");
        status = out;
        if status.contains("clients_10_88_0_3") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        status.contains("clients_10_88_0_3"),
        "not admitted while the endpoint was crowded:\n{status}\n{}",
        daemon.log_text()
    );
    // Bounded: once the silent ones time out, a scrape gets through.
    drop(crowd);
    let deadline = Instant::now() + HEADER_TIMEOUT + Duration::from_secs(10);
    let body = loop {
        if let Ok((200, body)) = try_get(addr, "/metrics", Duration::from_secs(2)) {
            break body;
        }
        assert!(Instant::now() < deadline, "the endpoint never recovered");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        value(&body, "autopeer_metrics_connections_refused_total").unwrap() >= 1.0,
        "{body}"
    );
    drop(silent);
    daemon.stop();
}

#[test]
fn a_taken_or_invalid_address_is_a_clear_error_in_run_and_check() {
    if !allowed() {
        return;
    }
    // Taken by another program (this test holds it).
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let s = Setup::new(&format!("metrics = \"{addr}\""), true);
    let (ok, out) = autopeer_check(&s.path("autopeer.toml"));
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "problem: agent.metrics: {addr} is already in use by another program"
        )),
        "{out}"
    );
    let (code, err) = s.run_to_exit();
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "cannot serve metrics on {addr} ([agent] metrics): Address already in use"
        )),
        "{err}"
    );
    // Nothing of the daemon is left behind: its control socket is not served.
    assert!(std::os::unix::net::UnixStream::connect(s.path("autopeer.ctl")).is_err());
    drop(taken);

    // Not an address; not an address of this host.
    for (line, says) in [
        (
            "metrics = \"localhost:9330\"",
            "agent.metrics: \"localhost:9330\" is not ADDR:PORT",
        ),
        (
            "metrics = \"192.0.2.1:9330\"",
            "agent.metrics: cannot listen on 192.0.2.1:9330",
        ),
    ] {
        let s = Setup::new(line, false);
        let (ok, out) = autopeer_check(&s.path("autopeer.toml"));
        assert!(!ok && out.contains(says), "{line}: {out}");
        if line.contains("192.0.2.1") {
            assert!(out.contains("is not a loopback address"), "{out}");
        }
        let (code, err) = s.run_to_exit();
        assert_ne!(code, 0, "{line}: {err}");
        assert!(err.contains("metrics"), "{line}: {err}");
    }
}
