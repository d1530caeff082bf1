//! The journal source against a real systemd-journald and a real BIRD.
//!
//! journald runs outside PID 1, in a private mount namespace the test
//! creates (`unshare --mount`): tmpfs on /run and /var/log/journal, a tmpfs
//! /dev holding the character devices and `/dev/log ->
//! /run/systemd/journal/dev-log`. BIRD (`log syslog all;` and a log file)
//! runs in that mount namespace too, on loopback, so its syslog lines reach
//! this journald; autopeer's source reads the journal files through
//! `/proc/HOLDER/root/run/log/journal`. A forger runs `logger -t bird` as
//! uid 65534 in the same namespace.
//!
//! One scenario, in order: start at the end (an older trigger is not
//! read), a forgery is Forged and BIRD's line is Bird, journald killed and
//! started again, the journal rotated and vacuumed, a restart from the
//! saved cursor reads what was logged meanwhile and nothing before, a
//! corrupt cursor file and a cursor of a vanished journal are reported and
//! the journal followed from its end, and a line BIRD logs to its file and
//! the journal is one sighting.

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use autopeer::sources::journal::{find_journalctl, Journal, JournalOptions, JournalStats};
use autopeer::sources::tail::{TailStats, Tailer};
use autopeer::sources::{Sighting, Trust, Via};
use common::bird::{free_port, loopback_conf, RealBird};
use common::daemon::Daemon;
use common::journald::{journald_allowed, Journald, Ns};
use common::lab::{read, wait_for_dump};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

/// Root, the tools, and journald's binary; `CI=true` makes a missing one
/// a failure.
fn allowed() -> bool {
    let tools = [
        "bird",
        "journalctl",
        "logger",
        "nsenter",
        "unshare",
        "setpriv",
    ];
    journald_allowed(&tools, "journal test")
}

/// A running journal source.
struct Source {
    rx: mpsc::Receiver<Sighting>,
    stats: Arc<JournalStats>,
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl Source {
    async fn start(opts: JournalOptions) -> Source {
        let journal = Journal::start(opts).await.expect("journal source starts");
        let (tx, rx) = mpsc::channel(64);
        let stats = Arc::new(JournalStats::default());
        let token = CancellationToken::new();
        let run = journal.run(tx, Arc::clone(&stats), token.clone());
        let task = tokio::spawn(async move { run.await.expect("journal source runs") });
        Source {
            rx,
            stats,
            token,
            task,
        }
    }

    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("journal source stops")
            .unwrap();
    }
}

/// The source's `journalctl --follow` on `ns`'s journal: a child of this
/// test process (other tests' journalctl calls read other directories).
fn journalctl_child(ns: &Ns) -> Option<rustix::process::Pid> {
    let dir = ns.journal_dir().into_os_string().into_string().ok()?;
    let pid = child_where(std::process::id(), "journalctl", |args| {
        args.contains(&&b"--follow"[..]) && args.contains(&dir.as_bytes())
    })?;
    rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)
}

/// A child of `parent` named `comm` whose arguments pass `want`.
fn child_where(parent: u32, comm: &str, want: impl Fn(&[&[u8]]) -> bool) -> Option<u32> {
    let parent = parent.to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid = rest.split_whitespace().nth(1)?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if name == comm && ppid == parent && want(&args) {
            e.file_name().to_str()?.parse().ok()
        } else {
            None
        }
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One TCP connection from `from` to BIRD's BGP listener: BIRD logs
/// `BGP: Unexpected connect from unknown address FROM (port P)`.
async fn knock(from: &str, port: u16) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(ip(from), 0)).unwrap();
    let to = SocketAddr::new(ip("127.0.0.1"), port);
    if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(2), sock.connect(to)).await {
        drop(s);
    }
}

/// [`knock`] inside the namespace's network namespace, from a thread
/// that enters it (the rest of the test stays outside).
fn knock_in(ns: &Ns, from: &str, to: &str, port: u16) {
    use rustix::net::{AddressFamily, SocketType};
    let netns = std::fs::File::open(format!("/proc/{}/ns/net", ns.pid())).unwrap();
    let (from, to) = (ip(from), SocketAddr::new(ip(to), port));
    std::thread::spawn(move || {
        use std::os::fd::AsFd;
        rustix::thread::move_into_link_name_space(
            netns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns into the test's network namespace");
        let sock = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        rustix::net::bind(&sock, &SocketAddr::new(from, 0)).unwrap();
        let _ = rustix::net::connect(&sock, &to);
    })
    .join()
    .unwrap();
}

/// Knocks from `from` until a sighting of it arrives (BIRD's listener may
/// not be up yet, and a loaded machine is slow), and returns it. Every
/// sighting received on the way is appended to `log`.
async fn knock_until_seen(
    rx: &mut mpsc::Receiver<Sighting>,
    from: &str,
    port: u16,
    log: &mut Vec<Sighting>,
) -> Sighting {
    let deadline = Instant::now() + WAIT;
    loop {
        knock(from, port).await;
        let wait = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                s = rx.recv() => {
                    let s = s.expect("source ended");
                    log.push(s.clone());
                    if s.addr == ip(from) {
                        return s;
                    }
                }
            }
        }
        assert!(Instant::now() < deadline, "no sighting of {from}");
    }
}

/// Logs a marker entry (`logger -t bird`, so a forged trigger from
/// 10.99.0.N) and returns every sighting received before it: the journal
/// is read in order, so nothing older is on its way after this.
async fn until_marker(ns: &Ns, rx: &mut mpsc::Receiver<Sighting>, n: u8) -> Vec<Sighting> {
    let marker = log_marker(ns, n);
    let mut before = Vec::new();
    loop {
        let s = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("marker {marker} not read; before it: {before:?}"))
            .expect("source ended");
        if s.addr == marker {
            assert_eq!(s.trust, Trust::Forged, "{s:?}");
            return before;
        }
        before.push(s);
    }
}

/// Logs the forged trigger from 10.99.0.N with `logger -t bird`; returns
/// that address.
fn log_marker(ns: &Ns, n: u8) -> IpAddr {
    let marker = ip(&format!("10.99.0.{n}"));
    let logged = ns
        .cmd("logger")
        .args(["-t", "bird"])
        .arg(format!(
            "BGP: Unexpected connect from unknown address {marker} (port 9)"
        ))
        .status()
        .unwrap();
    assert!(logged.success());
    marker
}

/// Logs marker N ([`log_marker`]) and reads it next, with no BIRD
/// running: Forged, or Unverified when logger exited before journald
/// looked at it; never BIRD's.
async fn read_marker(ns: &Ns, rx: &mut mpsc::Receiver<Sighting>, n: u8) {
    let marker = log_marker(ns, n);
    let s = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("marker {marker} not read"))
        .expect("source ended");
    assert_eq!(s.addr, marker, "{s:?}");
    assert_ne!(s.trust, Trust::Bird, "{s:?}");
}

/// No connection seen twice (one knock is one BIRD line, one source port).
fn assert_once_each(all: &[Sighting]) {
    let mut keys: Vec<(IpAddr, Option<u16>)> = all.iter().map(|s| (s.addr, s.port)).collect();
    keys.sort();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n, "a line read twice: {all:?}");
}

/// Sightings arriving within `quiet` of each other, until none does.
async fn drain(rx: &mut mpsc::Receiver<Sighting>, quiet: Duration) -> Vec<Sighting> {
    let mut v = Vec::new();
    while let Ok(Some(s)) = tokio::time::timeout(quiet, rx.recv()).await {
        v.push(s);
    }
    v
}

/// The daemon's log lines (tracing), for the warnings.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buf);
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&writer)))
            .try_init();
        buf
    }))
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        std::io::stderr().write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text(log: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birds_journal_lines_are_verified_and_forgeries_refused() {
    if !allowed() {
        return;
    }
    let log = captured_log();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ns = Ns::new(dir, false);
    let mut journald = Journald::start(&ns, dir);

    let port = free_port();
    let bird_dir = dir.join("bird");
    let conf = format!("log syslog all;\n{}", loopback_conf(&bird_dir, port));
    let holder = ns.pid().to_string();
    let bird = RealBird::start_with(&bird_dir, &conf, &["nsenter", "-t", &holder, "-m", "--"]);
    let opts = JournalOptions {
        journalctl: find_journalctl().expect("journalctl"),
        directory: Some(ns.journal_dir()),
        cursor_file: Some(dir.join("journal.cursor")),
        bird_socket: bird.ctl.clone(),
    };

    // A trigger logged before the source starts is not read: it follows
    // from the journal's end.
    knock("127.0.0.8", port).await;
    let deadline = Instant::now() + WAIT;
    while !ns
        .journalctl(&["--output=cat", "SYSLOG_IDENTIFIER=bird"])
        .contains("127.0.0.8")
    {
        assert!(
            Instant::now() < deadline,
            "BIRD's line never reached the journal"
        );
        knock("127.0.0.8", port).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut src = Source::start(opts.clone()).await;

    // A forger with BIRD's identifier, as an unprivileged user.
    let forged = ns
        .cmd("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "logger",
            "-t",
            "bird",
        ])
        .arg("BGP: Unexpected connect from unknown address 10.88.0.9 (port 1)")
        .status()
        .unwrap();
    assert!(forged.success());
    let s = tokio::time::timeout(WAIT, src.rx.recv())
        .await
        .expect("the forgery is read")
        .unwrap();
    assert_eq!(
        (s.addr, s.via, s.trust),
        (ip("10.88.0.9"), Via::Journal, Trust::Forged)
    );

    // BIRD's own line.
    let mut seen = vec![s];
    let s = knock_until_seen(&mut src.rx, "127.0.0.9", port, &mut seen).await;
    assert_eq!((s.via, s.trust), (Via::Journal, Trust::Bird), "{s:?}");
    assert!(s.port.is_some());

    // journald killed and started again: lines still arrive.
    drop(journald);
    journald = Journald::start(&ns, dir);
    let s = knock_until_seen(&mut src.rx, "127.0.0.10", port, &mut seen).await;
    assert_eq!(s.trust, Trust::Bird);

    // The journal rotated and the archive vacuumed under the reader.
    let rotated = ns.cmd("journalctl").args(["--rotate"]).status().unwrap();
    assert!(rotated.success());
    let vacuumed = ns
        .cmd("journalctl")
        .args(["--vacuum-files=1"])
        .output()
        .unwrap();
    assert!(vacuumed.status.success());
    let s = knock_until_seen(&mut src.rx, "127.0.0.11", port, &mut seen).await;
    assert_eq!(s.trust, Trust::Bird);

    // journalctl itself dies: started again after the last entry read.
    let child = journalctl_child(&ns).expect("the source's journalctl");
    rustix::process::kill_process(child, rustix::process::Signal::KILL).unwrap();
    let s = knock_until_seen(&mut src.rx, "127.0.0.17", port, &mut seen).await;
    assert_eq!(s.trust, Trust::Bird);
    seen.extend(until_marker(&ns, &mut src.rx, 1).await);
    assert_once_each(&seen);
    assert!(
        seen.iter()
            .all(|s| s.trust == Trust::Bird || s.addr == ip("10.88.0.9")),
        "{seen:?}"
    );
    let counts = src.stats.snapshot();
    assert_eq!(counts.forged, 2, "the forgery and the marker: {counts:?}");
    assert!(counts.restarts >= 1, "{counts:?}");

    // A burst larger than every buffer on the way (the channel holds 64):
    // nothing is lost, each line arrives once.
    const BURST: usize = 2000;
    let mut logger = ns
        .cmd("logger")
        .args(["-t", "bird"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = String::new();
    for i in 0..BURST {
        lines += &format!(
            "BGP: Unexpected connect from unknown address 10.77.{}.{} (port {})\n",
            i / 250,
            i % 250 + 1,
            i + 1
        );
    }
    logger
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(logger.wait().unwrap().success());
    let burst = until_marker(&ns, &mut src.rx, 5).await;
    assert_eq!(burst.len(), BURST, "lines lost or added in a burst");
    assert_once_each(&burst);
    src.stop().await;

    // Restart from the saved cursor: what BIRD logged while the source was
    // down is read, and nothing read before it comes again.
    let saved = std::fs::read_to_string(dir.join("journal.cursor")).expect("cursor saved");
    assert!(saved.starts_with("s="), "{saved:?}");
    knock("127.0.0.12", port).await;
    ns.wait_in_journal("127.0.0.12");
    let mut src = Source::start(opts.clone()).await;
    let got = until_marker(&ns, &mut src.rx, 2).await;
    let got: Vec<(IpAddr, Trust)> = got.iter().map(|s| (s.addr, s.trust)).collect();
    assert_eq!(got, [(ip("127.0.0.12"), Trust::Bird)]);
    src.stop().await;

    // A corrupt cursor file: a clear warning, then the journal's end.
    std::fs::write(dir.join("journal.cursor"), b"\x00not a cursor\n").unwrap();
    knock("127.0.0.13", port).await;
    ns.wait_in_journal("127.0.0.13");
    let mut src = Source::start(opts.clone()).await;
    assert!(
        log_text(&log).contains("journal cursor file ignored (it does not hold a journal cursor)"),
        "no warning about the corrupt cursor file"
    );
    let got = until_marker(&ns, &mut src.rx, 3).await;
    assert!(got.is_empty(), "read from before the end: {got:?}");
    // The bad file is replaced by a real cursor.
    let fixed = autopeer::sources::journal::read_cursor(&dir.join("journal.cursor"));
    assert!(matches!(fixed, Ok(Some(_))), "{fixed:?}");
    let s = knock_until_seen(&mut src.rx, "127.0.0.14", port, &mut Vec::new()).await;
    assert_eq!(s.trust, Trust::Bird);
    src.stop().await;

    // A cursor of a journal that no longer exists (another sequence id):
    // a warning, then the journal's end.
    let vanished = "s=0123456789abcdef0123456789abcdef;i=5;b=0123456789abcdef0123456789abcdef;m=1;t=7a0f1c2d3e4f5;x=f2e3d4c5b6a79801";
    std::fs::write(dir.join("journal.cursor"), format!("{vanished}\n")).unwrap();
    knock("127.0.0.15", port).await;
    ns.wait_in_journal("127.0.0.15");
    let mut src = Source::start(opts.clone()).await;
    assert!(
        log_text(&log).contains("belongs to a journal that no longer exists"),
        "no warning about the vanished journal"
    );
    let got = until_marker(&ns, &mut src.rx, 4).await;
    assert!(got.is_empty(), "read from before the end: {got:?}");

    // BIRD logs to its file and to syslog: one sighting, not two.
    let mut tailer = Tailer::start(vec![bird_dir.join("bird.log")])
        .await
        .unwrap();
    tailer.set_bird_files(&[bird_dir.join("bird.log")]);
    let (merged_tx, mut merged_rx) = mpsc::channel(64);
    let (tail_tx, tail_rx) = mpsc::channel(64);
    let forward_journal = {
        let tail_tx = tail_tx.clone();
        let mut journal_rx = src.rx;
        tokio::spawn(async move {
            while let Some(s) = journal_rx.recv().await {
                if tail_tx.send(s).await.is_err() {
                    return;
                }
            }
        })
    };
    let tail_token = CancellationToken::new();
    let tail_task =
        tokio::spawn(tailer.run(tail_tx, Arc::new(TailStats::default()), tail_token.clone()));
    let merge = tokio::spawn(autopeer::daemon::one_sighting(
        tail_rx,
        merged_tx,
        autopeer::sources::Flow::default(),
    ));
    let mut all = Vec::new();
    let first = knock_until_seen(&mut merged_rx, "127.0.0.16", port, &mut all).await;
    all.extend(drain(&mut merged_rx, Duration::from_secs(2)).await);
    assert_once_each(&all);
    assert_eq!(first.trust, Trust::Bird);
    assert!(matches!(first.via, Via::Journal | Via::BirdLog));

    src.token.cancel();
    tail_token.cancel();
    let _ = tokio::time::timeout(WAIT, src.task).await;
    let _ = tokio::time::timeout(WAIT, tail_task).await;
    forward_journal.abort();
    merge.abort();
    drop(bird);
    drop(journald);
    drop(ns);
}

/// The issue's new user: bird.conf logs only `log syslog all;` (Debian's
/// default), autopeer's `[sources]` is left at its defaults. `check` says
/// the journal will see the trigger line, and the daemon admits a peer
/// from BIRD's journal entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_admits_from_the_journal_with_default_sources() {
    if !allowed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ns = Ns::new(dir, true);
    let _journald = Journald::start(&ns, dir);
    let port = free_port();
    let bird_dir = dir.join("bird");
    let file_log = format!("log \"{}/bird.log\" all;\n", bird_dir.display());
    // On 10.88.0.1 in the namespace: admission refuses loopback peers.
    let conf = loopback_conf(&bird_dir, port)
        .replacen(&file_log, "log syslog all;\n", 1)
        .replace("127.0.0.", "10.88.0.");
    assert!(conf.starts_with("log syslog all;"), "{conf}");
    let holder = ns.pid().to_string();
    let inside = ["nsenter", "-t", holder.as_str(), "-m", "-n", "--"];
    let bird = RealBird::start_with(&bird_dir, &conf, &inside);

    std::fs::create_dir_all(dir.join("state")).unwrap();
    let include = bird_dir.join("peers/autopeer.conf");
    let audit = dir.join("audit.log");
    let config = dir.join("autopeer.toml");
    std::fs::write(
        &config,
        format!(
            r#"[bird]
socket = "{ctl}"
config = "{conf}"
include = "{include}"
keyring = "off"

[agent]
socket = "{d}/autopeer.ctl"
state = "{d}/state/state.toml"
audit_log = "{audit}"
batch = "50ms"

[[group]]
name = "clients"
template = "peers"
prefixes = ["10.88.0.16/28"]
neighbor = "internal"
"#,
            ctl = bird.ctl.display(),
            conf = bird.conf.display(),
            include = include.display(),
            d = dir.display(),
            audit = audit.display(),
        ),
    )
    .unwrap();

    let check = Command::new("nsenter")
        .args([
            "-t",
            &holder,
            "-m",
            "--",
            env!("CARGO_BIN_EXE_autopeer"),
            "-c",
        ])
        .arg(&config)
        .arg("check")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        said.contains("BIRD's trigger line will be seen in the systemd journal"),
        "check did not name the journal:\n{said}"
    );

    let daemon_log = dir.join("autopeer.out");
    let daemon = Daemon::start_with(&inside, &config, &daemon_log);
    let dump = || format!("audit:\n{}\ndaemon:\n{}", read(&audit), read(&daemon_log));
    wait_for_dump("autopeer to follow the journal", 15, &dump, || {
        read(&daemon_log).contains("following BIRD's lines in the systemd journal")
    });
    let want = "adding neighbor 10.88.0.20 to group clients (via journal)";
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read(&audit).contains(want) {
        assert!(Instant::now() < deadline, "never admitted\n{}", dump());
        knock_in(&ns, "10.88.0.20", "10.88.0.1", port);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for_dump("the peer in the include", 15, &dump, || {
        read(&include).contains("clients_10_88_0_20")
    });
    daemon.stop();
    let cursor = read(&dir.join("state/journal.cursor"));
    assert!(cursor.starts_with("s="), "no cursor saved: {cursor:?}");

    // autopeer killed outright: its journalctl does not live on.
    let daemon = Daemon::start_with(&inside, &config, &daemon_log);
    let pid = daemon.pid();
    let mut child = None;
    wait_for_dump("autopeer's journalctl", 15, &dump, || {
        child = child_where(pid, "journalctl", |_| true);
        child.is_some()
    });
    let child = child.unwrap();
    drop(daemon); // SIGKILL
    wait_for_dump("the orphaned journalctl to end", 10, &dump, || {
        // Gone, or a zombie nobody reaps (PID 1 of a container may not).
        std::fs::read_to_string(format!("/proc/{child}/stat"))
            .map(|st| {
                st.rsplit_once(") ")
                    .is_some_and(|(_, r)| r.starts_with('Z'))
            })
            .unwrap_or(true)
    });
}

/// BIRD started without `-f` forks: its control socket's peer credentials
/// name the exited parent, yet its journal lines are BIRD's (the process
/// holding the control socket, as the keyring finds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonized_birds_lines_are_verified() {
    if !allowed() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ns = Ns::new(dir, false);
    let _journald = Journald::start(&ns, dir);
    let port = free_port();
    let bird_dir = dir.join("bird");
    std::fs::create_dir_all(bird_dir.join("peers")).unwrap();
    let conf = bird_dir.join("bird.conf");
    std::fs::write(
        &conf,
        format!("log syslog all;\n{}", loopback_conf(&bird_dir, port)),
    )
    .unwrap();
    let ctl = bird_dir.join("bird.ctl");
    let pidfile = bird_dir.join("bird.pid");
    let started = ns
        .cmd(common::bird::BIRD)
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(&ctl)
        .arg("-P")
        .arg(&pidfile)
        .status()
        .unwrap();
    assert!(started.success(), "bird did not daemonize");
    // The daemon's pid, from its pid file: ended by that pid on drop.
    struct Daemonized(i32);
    impl Drop for Daemonized {
        fn drop(&mut self) {
            if let Some(pid) = rustix::process::Pid::from_raw(self.0) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    let deadline = Instant::now() + WAIT;
    let pid = loop {
        if let Ok(p) = read(&pidfile).trim().parse::<i32>() {
            if std::os::unix::net::UnixStream::connect(&ctl).is_ok() {
                break p;
            }
        }
        assert!(Instant::now() < deadline, "daemonized bird did not come up");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _bird = Daemonized(pid);

    let mut src = Source::start(JournalOptions {
        journalctl: find_journalctl().expect("journalctl"),
        directory: Some(ns.journal_dir()),
        cursor_file: None,
        bird_socket: ctl.clone(),
    })
    .await;
    let s = knock_until_seen(&mut src.rx, "127.0.0.9", port, &mut Vec::new()).await;
    assert_eq!((s.via, s.trust), (Via::Journal, Trust::Bird), "{s:?}");
    let before = until_marker(&ns, &mut src.rx, 1).await;
    assert!(before.iter().all(|s| s.trust == Trust::Bird), "{before:?}");
    src.stop().await;
}

/// The first BIRD entry logged after the source started is read. A cursor
/// file that cannot be written (its directory does not exist) is warned
/// about once, not once per entry read, the source goes on, and once the
/// directory exists the cursor is saved again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_cursor_file_is_warned_about_once() {
    if !allowed() {
        return;
    }
    let log = captured_log();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ns = Ns::new(dir, false);
    let _journald = Journald::start(&ns, dir);
    let cursor = dir.join("state/journal.cursor");
    let mut src = Source::start(JournalOptions {
        journalctl: find_journalctl().expect("journalctl"),
        directory: Some(ns.journal_dir()),
        cursor_file: Some(cursor.clone()),
        bird_socket: dir.join("no-bird.ctl"),
    })
    .await;
    // An entry logged right after the source started is read (journalctl
    // once skipped it: the start cursor was of an entry its matches
    // exclude). Then entries over several seconds, so the position moves
    // and the cursor is due several times.
    read_marker(&ns, &mut src.rx, 10).await;
    for n in 1..=4 {
        read_marker(&ns, &mut src.rx, n).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let warnings = |text: &str| {
        text.lines()
            .filter(|l| l.contains("cannot save the journal cursor"))
            .filter(|l| l.contains(&cursor.display().to_string()))
            .count()
    };
    assert_eq!(warnings(&log_text(&log)), 1, "{}", log_text(&log));
    std::fs::create_dir(dir.join("state")).unwrap();
    read_marker(&ns, &mut src.rx, 5).await;
    let deadline = Instant::now() + WAIT;
    while !read(&cursor).starts_with("s=") {
        assert!(Instant::now() < deadline, "cursor never saved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    src.stop().await;
}
