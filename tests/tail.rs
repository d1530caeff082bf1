//! The tail against real files in a tempdir: appends, rename rotation,
//! copytruncate, invalid UTF-8, partial and overlong lines, late files,
//! shutdown. Waits are awaits on the channel with a generous timeout.

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autopeer::sources::tail::{self, TailError, TailStats, Tailer};
use autopeer::sources::{Sighting, Trust, Via};
use common::attacker::{as_attacker, attackers_dir, can_switch_user, unjam};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

fn trigger(addr: &str, port: u16) -> String {
    format!("2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address {addr} (port {port})\n")
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

struct Running {
    rx: mpsc::Receiver<Sighting>,
    stats: Arc<TailStats>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), TailError>>,
}

impl Running {
    async fn start(paths: Vec<PathBuf>) -> Running {
        let (tx, rx) = mpsc::channel(16);
        let stats = Arc::new(TailStats::default());
        let shutdown = CancellationToken::new();
        // Watches are live once start() returns: no race with the writes below.
        let mut tailer = Tailer::start(paths.clone()).await.unwrap();
        // These files stand for BIRD's own log file (bird.conf's `log`).
        tailer.set_bird_files(&paths);
        let task = tokio::spawn(tailer.run(tx, stats.clone(), shutdown.clone()));
        Running {
            rx,
            stats,
            shutdown,
            task,
        }
    }

    async fn next(&mut self) -> Sighting {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("no sighting within 10 s")
            .expect("tail stopped")
    }

    async fn expect_addr(&mut self, addr: &str, port: u16) {
        let s = self.next().await;
        assert_eq!(s.addr, addr.parse::<IpAddr>().unwrap());
        assert_eq!(s.port, Some(port));
        assert_eq!((s.via, s.trust), (Via::BirdLog, Trust::Bird));
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let res = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("run did not return after shutdown")
            .unwrap();
        assert!(res.is_ok(), "{res:?}");
    }
}

#[tokio::test]
async fn appended_line_gives_sighting_old_lines_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bird.log");
    append(&log, trigger("10.88.0.1", 1).as_bytes());
    let mut t = Running::start(vec![log.clone()]).await;
    append(&log, b"2026-11-23 06:55:02.620 <INFO> Reconfiguring\n");
    append(&log, trigger("10.88.0.2", 2).as_bytes());
    t.expect_addr("10.88.0.2", 2).await;
    let counts = t.stats.snapshot();
    assert_eq!(
        (counts.lines, counts.sightings, counts.irrelevant),
        (2, 1, 1)
    );
    t.stop().await;
}

#[tokio::test]
async fn rotation_by_rename_continues_in_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bird.log");
    append(&log, b"2026-11-23 06:54:41.102 <INFO> Started\n");
    let mut t = Running::start(vec![log.clone()]).await;
    append(&log, trigger("10.88.0.1", 1).as_bytes());
    t.expect_addr("10.88.0.1", 1).await;

    // logrotate `create`: rename, the writer still appends to the old file,
    // then a new file appears at the path.
    let rotated = dir.path().join("bird.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, trigger("10.88.0.2", 2).as_bytes());
    append(&log, trigger("10.88.0.3", 3).as_bytes());
    t.expect_addr("10.88.0.2", 2).await;
    t.expect_addr("10.88.0.3", 3).await;

    // And once more, to show the new file is followed, not just read once.
    append(&log, trigger("10.88.0.4", 4).as_bytes());
    t.expect_addr("10.88.0.4", 4).await;
    t.stop().await;
}

#[tokio::test]
async fn truncation_continues_from_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let mut t = Running::start(vec![log.clone()]).await;
    // A log with some history, so the copytruncate shrink is visible.
    let filler = "Nov 23 08:05:59 rr1 sshd[4411]: Accepted publickey for ops\n".repeat(200);
    append(&log, filler.as_bytes());
    append(&log, trigger("10.88.0.1", 1).as_bytes());
    t.expect_addr("10.88.0.1", 1).await;

    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, trigger("10.88.0.2", 2).as_bytes());
    t.expect_addr("10.88.0.2", 2).await;
    append(&log, trigger("10.88.0.3", 3).as_bytes());
    t.expect_addr("10.88.0.3", 3).await;
    t.stop().await;
}

#[tokio::test]
async fn invalid_utf8_is_counted_and_next_line_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bird.log");
    append(&log, b"");
    let mut t = Running::start(vec![log.clone()]).await;
    // One write: the bad line and the good one arrive in the same event,
    // which is exactly where linemux's MuxedLines 0.3 stalls.
    let mut bytes = b"2026-11-23 06:54:51.000 <WARN> BGP: Unexpected connect from unknown address 10.88.0.9\xff (port 1)\n\x80\x81\xfe\n".to_vec();
    bytes.extend_from_slice(trigger("10.88.0.2", 2).as_bytes());
    // Held open like BIRD's own writer: no close event comes to help.
    let mut writer = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(&bytes).unwrap();
    t.expect_addr("10.88.0.2", 2).await;
    let counts = t.stats.snapshot();
    assert_eq!(
        (counts.invalid_utf8, counts.sightings, counts.lines),
        (2, 1, 3)
    );
    t.stop().await;
}

#[tokio::test]
async fn file_created_after_start_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("later.log");
    let mut t = Running::start(vec![log.clone()]).await;
    append(&log, trigger("10.88.0.5", 5).as_bytes());
    t.expect_addr("10.88.0.5", 5).await;
    append(&log, trigger("10.88.0.6", 6).as_bytes());
    t.expect_addr("10.88.0.6", 6).await;
    t.stop().await;
}

#[tokio::test]
async fn partial_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bird.log");
    let marker = dir.path().join("marker.log");
    append(&log, b"");
    append(&marker, b"");
    let mut t = Running::start(vec![log.clone(), marker.clone()]).await;
    let line = trigger("10.88.0.7", 7);
    let (head, tail) = line.split_at(60);
    append(&log, head.as_bytes());
    // inotify keeps event order within one instance: once the marker's
    // sighting is here, the half line has been read and held back.
    append(&marker, trigger("10.88.0.70", 70).as_bytes());
    t.expect_addr("10.88.0.70", 70).await;
    assert_eq!(t.stats.snapshot().lines, 1);
    append(&log, tail.as_bytes());
    t.expect_addr("10.88.0.7", 7).await;
    assert_eq!(t.stats.snapshot().lines, 2);
    t.stop().await;
}

/// Why tail.rs reads the files itself: linemux 0.3's `MuxedLines` returns
/// an error for an invalid UTF-8 line and then waits for the next inotify
/// event, so valid lines written in the same write are delayed until the
/// file is touched again. If this starts failing, linemux changed.
#[tokio::test]
async fn linemux_muxedlines_stalls_after_invalid_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append(&log, b"old\n");
    let mut lines = linemux::MuxedLines::new().unwrap();
    lines.add_file(&log).await.unwrap();
    // The writer keeps the file open, as BIRD and rsyslog do (a close would
    // be one more event, which would let linemux resume).
    let mut writer = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"one\nbad\xff\ntwo\n").unwrap();
    let first = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap();
    assert_eq!(first.unwrap().unwrap().line(), "one");
    let bad = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap();
    assert_eq!(bad.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
    let stalled = tokio::time::timeout(Duration::from_secs(1), lines.next_line()).await;
    assert!(stalled.is_err(), "linemux no longer stalls: {stalled:?}");
    writer.write_all(b"three\n").unwrap();
    let two = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap();
    assert_eq!(two.unwrap().unwrap().line(), "two");
}

#[tokio::test]
async fn overlong_line_is_dropped_and_tail_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bird.log");
    append(&log, b"");
    let mut t = Running::start(vec![log.clone()]).await;
    let mut bytes = "A".repeat(1 << 20).into_bytes();
    bytes.extend_from_slice(
        trigger("10.88.0.8", 8)
            .as_bytes()
            .strip_prefix(b"2026")
            .unwrap(),
    );
    bytes.extend_from_slice(trigger("10.88.0.9", 9).as_bytes());
    append(&log, &bytes);
    t.expect_addr("10.88.0.9", 9).await;
    let counts = t.stats.snapshot();
    assert_eq!(
        (counts.lines, counts.malformed, counts.sightings),
        (2, 1, 1)
    );
    t.stop().await;
}

#[tokio::test]
async fn two_files_are_both_followed() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log");
    append(&a, b"");
    let mut t = Running::start(vec![a.clone(), b.clone()]).await;
    append(&b, trigger("10.88.0.11", 11).as_bytes());
    t.expect_addr("10.88.0.11", 11).await;
    append(&a, trigger("10.88.0.10", 10).as_bytes());
    t.expect_addr("10.88.0.10", 10).await;
    t.stop().await;
}

#[tokio::test]
async fn missing_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("bird.log");
    let err = Tailer::start(vec![path.clone()]).await.unwrap_err();
    assert!(
        matches!(&err, TailError::Watch { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[tokio::test]
async fn run_returns_on_shutdown_even_with_full_channel() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bird.log");
    append(&log, b"");
    let (tx, _rx) = mpsc::channel(1);
    let stats = Arc::new(TailStats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(tail::run(
        vec![log.clone()],
        tx,
        stats.clone(),
        shutdown.clone(),
    ));
    // Nobody reads `_rx`: the tail blocks on the second sighting until shutdown.
    let mut wait = 0;
    loop {
        append(&log, trigger("10.88.0.12", 12).as_bytes());
        tokio::time::sleep(Duration::from_millis(50)).await;
        if stats.snapshot().sightings >= 2 {
            break;
        }
        wait += 1;
        assert!(wait < 200, "tail never saw the lines");
    }
    shutdown.cancel();
    let res = tokio::time::timeout(WAIT, task)
        .await
        .expect("no return")
        .unwrap();
    assert!(res.is_ok());
}

#[tokio::test]
async fn bird_format_is_trusted_only_in_birds_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("bird.log");
    let shared = dir.path().join("shared.log");
    append(&own, b"");
    append(&shared, b"");
    let (tx, mut rx) = mpsc::channel(16);
    let stats = Arc::new(TailStats::default());
    let shutdown = CancellationToken::new();
    let mut tailer = Tailer::start(vec![own.clone(), shared.clone()])
        .await
        .unwrap();
    tailer.set_bird_files(std::slice::from_ref(&own));
    let task = tokio::spawn(tailer.run(tx, stats, shutdown.clone()));
    // The same BIRD-format line, written to BIRD's file and to a file
    // anyone may write: only the first is BIRD speaking.
    append(&own, trigger("10.88.0.2", 2).as_bytes());
    let s = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s.addr, s.via, s.trust),
        (
            "10.88.0.2".parse::<IpAddr>().unwrap(),
            Via::BirdLog,
            Trust::Bird
        )
    );
    append(&shared, trigger("10.88.0.3", 3).as_bytes());
    let s = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    // Named as what it is (a shared file), never `bird-log`.
    assert_eq!(
        (s.addr, s.via, s.trust),
        (
            "10.88.0.3".parse::<IpAddr>().unwrap(),
            Via::Syslog,
            Trust::Unverified
        )
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(WAIT, task).await;
}

// ------------------------------------------------ hostile files at a tailed path
//
// The log directory belongs to another account (BIRD's `bird`), which puts
// a FIFO, a symbolic link or a directory where a log is expected. The
// attacker's steps run as uid/gid 65534 through `setpriv`, in a directory
// that account owns. Each wait is bounded; when one runs out, the FIFO is
// opened for writing once (which releases a reader stuck in `open`), so a
// regression fails instead of hanging the test run.

/// `fut` on its own task, bounded by WAIT; on timeout, unjam and fail.
async fn bounded<T: Send + 'static>(
    what: &str,
    fifo: &Path,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    match tokio::time::timeout(WAIT, tokio::spawn(fut)).await {
        Ok(res) => res.unwrap(),
        Err(_) => {
            unjam(fifo);
            panic!(
                "{what}: not done within {WAIT:?} (blocked on {}?)",
                fifo.display()
            );
        }
    }
}

/// The attacker's directory with the path `bird.log` in it (nothing there
/// yet), and a log of our own, empty, that must go on being tailed.
struct Scene {
    _attackers: tempfile::TempDir,
    log: PathBuf,
    _ours: tempfile::TempDir,
    other: PathBuf,
}

/// `None` (the test skips) when the attacker's uid cannot be used.
fn scene() -> Option<Scene> {
    if !can_switch_user() {
        return None;
    }
    let attackers = attackers_dir();
    let log = attackers.path().join("bird.log");
    let ours = tempfile::tempdir().unwrap();
    let other = ours.path().join("other.log");
    append(&other, b"");
    Some(Scene {
        _attackers: attackers,
        log,
        _ours: ours,
        other,
    })
}

/// As the attacker: `first` (a shell command, may be empty), then a new
/// file at `path` holding one trigger line for `addr`.
fn attacker_writes_trigger(first: &str, path: &Path, addr: &str, port: u16) {
    as_attacker(&format!(
        "{first} printf '{}\\n' > {}",
        trigger(addr, port).trim_end(),
        path.display()
    ));
}

impl Running {
    /// Tails the scene's two paths, like `start` but bounded (see
    /// `bounded`); a hang is blamed on the attacker's path.
    async fn on(s: &Scene) -> Running {
        let paths = vec![s.log.clone(), s.other.clone()];
        let tailer = bounded("Tailer::start", &s.log, Tailer::start(paths))
            .await
            .unwrap();
        Running::spawn(tailer)
    }

    /// Runs `tailer` on its own task.
    fn spawn(tailer: Tailer) -> Running {
        let (tx, rx) = mpsc::channel(16);
        let stats = Arc::new(TailStats::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(tailer.run(tx, stats.clone(), shutdown.clone()));
        Running {
            rx,
            stats,
            shutdown,
            task,
        }
    }

    /// The next sighting, bounded; unjams `fifo` before failing.
    async fn expect_addr_or_unjam(&mut self, addr: &str, port: u16, fifo: &Path) {
        match tokio::time::timeout(WAIT, self.rx.recv()).await {
            Ok(Some(s)) => assert_eq!((s.addr, s.port), (addr.parse().unwrap(), Some(port))),
            Ok(None) => panic!("tail stopped"),
            Err(_) => {
                unjam(fifo);
                panic!("no sighting of {addr} within {WAIT:?}: the tail is stuck");
            }
        }
    }

    async fn wait_refused(&self, n: u64) {
        for _ in 0..200 {
            if self.stats.snapshot().files_refused >= n {
                assert_eq!(self.stats.snapshot().files_refused, n);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "files_refused never reached {n}: {:?}",
            self.stats.snapshot()
        );
    }

    /// Shutdown must end `run` promptly; unjams `fifo` before failing.
    async fn stop_or_unjam(self, fifo: &Path) {
        self.shutdown.cancel();
        match tokio::time::timeout(WAIT, self.task).await {
            Ok(res) => assert!(res.unwrap().is_ok()),
            Err(_) => {
                unjam(fifo);
                panic!("run did not return within {WAIT:?} of shutdown");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_at_a_tailed_path_is_refused_and_picked_up_once_a_file() {
    let Some(s) = scene() else {
        return;
    };
    let (fifo, other) = (&s.log, &s.other);
    as_attacker(&format!("mkfifo {}", fifo.display()));
    let mut t = Running::on(&s).await;
    t.wait_refused(1).await;
    append(other, trigger("10.88.0.20", 20).as_bytes());
    t.expect_addr_or_unjam("10.88.0.20", 20, fifo).await;
    // The attacker's writes to the FIFO wake nothing up and read nothing.
    as_attacker(&format!(
        "exec 3<>{0}; printf '{1}' >&3",
        fifo.display(),
        trigger("10.88.0.66", 66).trim_end()
    ));
    // A regular file replaces the FIFO: read from its start.
    attacker_writes_trigger(&format!("rm {} &&", fifo.display()), fifo, "10.88.0.21", 21);
    t.expect_addr_or_unjam("10.88.0.21", 21, fifo).await;
    append(fifo, trigger("10.88.0.22", 22).as_bytes());
    t.expect_addr_or_unjam("10.88.0.22", 22, fifo).await;
    assert_eq!(t.stats.snapshot().files_refused, 1);
    t.stop_or_unjam(fifo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_replacing_a_tailed_file_stops_neither_the_others_nor_shutdown() {
    let Some(s) = scene() else {
        return;
    };
    let (log, other) = (&s.log, &s.other);
    as_attacker(&format!(": > {}", log.display()));
    let mut t = Running::on(&s).await;
    append(log, trigger("10.88.0.30", 30).as_bytes());
    t.expect_addr_or_unjam("10.88.0.30", 30, log).await;
    as_attacker(&format!("rm {0} && mkfifo {0}", log.display()));
    t.wait_refused(1).await;
    append(other, trigger("10.88.0.31", 31).as_bytes());
    t.expect_addr_or_unjam("10.88.0.31", 31, log).await;
    t.stop_or_unjam(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_devices_and_directories_at_a_tailed_path_are_refused() {
    let Some(s) = scene() else {
        return;
    };
    let (log, other) = (&s.log, &s.other);
    // A root-only file with a trigger line: following a link to it would
    // turn a file the attacker cannot read into sightings.
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret.log");
    append(&secret, trigger("10.88.0.99", 99).as_bytes());
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    as_attacker(&format!("ln -s /dev/zero {}", log.display()));
    let mut t = Running::on(&s).await;
    t.wait_refused(1).await;
    as_attacker(&format!(
        "rm {0} && ln -s {1} {0}",
        log.display(),
        secret.display()
    ));
    t.wait_refused(2).await;
    as_attacker(&format!("rm {0} && mkdir {0}", log.display()));
    t.wait_refused(3).await;
    append(other, trigger("10.88.0.40", 40).as_bytes());
    t.expect_addr_or_unjam("10.88.0.40", 40, log).await;
    attacker_writes_trigger(
        &format!("rmdir {} &&", log.display()),
        log,
        "10.88.0.41",
        41,
    );
    // The secret's line never shows up: the next sighting is the new file's.
    t.expect_addr_or_unjam("10.88.0.41", 41, log).await;
    assert_eq!(t.stats.snapshot().files_refused, 3);
    t.stop_or_unjam(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_sparse_file_neither_starves_the_others_nor_delays_shutdown() {
    let Some(s) = scene() else {
        return;
    };
    let (log, other) = (&s.log, &s.other);
    let mut t = Running::on(&s).await;
    // A line, then 1 TiB of zeros without a newline, costing the attacker
    // no disk. The line's sighting shows that the zeros are being read.
    attacker_writes_trigger("", log, "10.88.0.51", 51);
    as_attacker(&format!("truncate -s 1T {}", log.display()));
    t.expect_addr_or_unjam("10.88.0.51", 51, log).await;
    append(other, trigger("10.88.0.50", 50).as_bytes());
    t.expect_addr_or_unjam("10.88.0.50", 50, log).await;
    t.stop_or_unjam(log).await;
}

/// A tailer nobody told which file is BIRD's (bird.conf could not be read
/// at start) trusts none: fail closed.
#[tokio::test]
async fn no_file_is_birds_until_bird_conf_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bird.log");
    append(&log, b"");
    let (tx, mut rx) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let tailer = Tailer::start(vec![log.clone()]).await.unwrap();
    let task = tokio::spawn(tailer.run(tx, Arc::new(TailStats::default()), shutdown.clone()));
    append(&log, trigger("10.88.0.4", 4).as_bytes());
    let s = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((s.via, s.trust), (Via::Syslog, Trust::Unverified));
    shutdown.cancel();
    let _ = tokio::time::timeout(WAIT, task).await;
}

/// A BIRD log file that bird.conf starts naming while the tail runs is
/// tailed only when the operator follows BIRD's log (a listed file is
/// BIRD's), and then opened by the same rules as at start: the attacker's
/// FIFO there is refused (no hang, the other file goes on), the regular
/// file that replaces it is read as BIRD's, and once bird.conf no longer
/// names it, it is no longer read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bird_file_named_later_is_opened_by_the_same_rules_and_dropped_after() {
    let Some(s) = scene() else {
        return;
    };
    let (fifo, other) = (&s.log, &s.other);
    as_attacker(&format!("mkfifo {}", fifo.display()));
    let mut tailer = bounded("Tailer::start", fifo, Tailer::start(vec![other.clone()]))
        .await
        .unwrap();
    let (files_tx, files_rx) = tokio::sync::watch::channel(Vec::new());
    tailer.follow_bird_files(files_rx);
    let marks = tailer.marks_watch();
    let mut t = Running::spawn(tailer);
    // bird.conf says BIRD logs to the attacker's path, and the listed
    // file is not BIRD's: not tailed (`logs` chose no BIRD file).
    files_tx.send_replace(vec![fifo.clone()]);
    append(other, trigger("10.88.0.39", 39).as_bytes());
    t.expect_addr_or_unjam("10.88.0.39", 39, fifo).await;
    assert_eq!(marks.borrow().len(), 1, "{:?}", *marks.borrow());
    assert_eq!(t.stats.snapshot().files_refused, 0);
    // BIRD logs to both: the operator's file is BIRD's, so BIRD's log is
    // followed, the attacker's path too.
    files_tx.send_replace(vec![other.clone(), fifo.clone()]);
    t.wait_refused(1).await;
    append(other, trigger("10.88.0.40", 40).as_bytes());
    t.expect_addr_or_unjam("10.88.0.40", 40, fifo).await;
    assert_eq!(marks.borrow().len(), 2, "{:?}", *marks.borrow());
    // A regular file replaces the FIFO: read from its start, as BIRD's.
    attacker_writes_trigger(&format!("rm {} &&", fifo.display()), fifo, "10.88.0.41", 41);
    let got = tokio::time::timeout(WAIT, t.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.addr, got.via, got.trust),
        (
            "10.88.0.41".parse::<IpAddr>().unwrap(),
            Via::BirdLog,
            Trust::Bird
        )
    );
    // bird.conf no longer names it: its lines are not read.
    files_tx.send_replace(vec![other.clone()]);
    for _ in 0..200 {
        if marks.borrow().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(marks.borrow().len(), 1, "{:?}", *marks.borrow());
    append(fifo, trigger("10.88.0.42", 42).as_bytes());
    append(other, trigger("10.88.0.43", 43).as_bytes());
    t.expect_addr_or_unjam("10.88.0.43", 43, fifo).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        t.rx.try_recv().is_err(),
        "nothing read from the dropped file"
    );
    t.stop_or_unjam(fifo).await;
}
