//! Attacks on the files autopeer writes as root, run with the attacker's
//! real privileges: uid/gid 65534 through `setpriv --reuid --regid
//! --clear-groups`, owning the directory like Debian's `bird:bird 0750`
//! `/etc/bird`. The victim is a root:root 0600 file elsewhere.
//!
//! - `planted_links_at_temp_names_are_not_followed`: links at the old
//!   predictable temp name and at plausible new ones: the victim keeps its
//!   bytes, owner and mode; the include is a regular file written by us.
//! - `admission_with_planted_links_reaches_bird_not_the_victim`: the same
//!   through `apply` into a real BIRD that loads the peer.
//! - `fifo_at_temp_name_or_include_does_not_hang`: a FIFO at the temp name
//!   is passed by, a FIFO at the include is refused; neither hangs.
//! - `symlinked_include_is_refused_and_nothing_goes_through_it`: `write`,
//!   `apply` and the roster's start refuse a link at the include path with
//!   an error that says so; `check` reports it as a problem and warns
//!   about a directory others can write.
//! - `state_file_links_are_not_followed`, `audit_log_links_are_not_followed`:
//!   the state file (temp name and path) and the audit log (path, or a
//!   file the attacker made) are never written through.
//! - `audit_log_follows_rotation`: after logrotate's rename the next line
//!   goes to a new file at the path.
//! - `control_socket_swap_race_never_touches_a_victim` (and the same for
//!   the NHRP socket): an attacker swapping the fresh socket for a link as
//!   fast as it can, 1000 binds: the victim's mode and group never change.
//!
//! Needs root and setpriv; with CI=true a missing prerequisite fails the
//! test, elsewhere it skips with a one-line reason. Timeouts only bound a
//! hang; nothing measures speed.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use autopeer::apply::{apply, write_atomic, ApplyError, Target};
use autopeer::audit::AuditLog;
use autopeer::bird::render::{render, NeighborAs, Peer};
use autopeer::event::Event;
use common::bird::{free_port, loopback_conf, require_bird, RealBird};

/// The attacker: nobody/nogroup.
const EVIL: u32 = 65534;
const VICTIM_TEXT: &[u8] = b"root's secret\n";

/// Root, setpriv (the attacker) and perl (the racer).
fn require() -> bool {
    common::lab::lab_allowed(&["setpriv", "perl"], "attack test")
}

/// A temp dir (0755, so the attacker can reach in) holding the victim
/// (root:root 0600) and `bird/`, owned by the attacker, 0750.
struct Arena {
    dir: tempfile::TempDir,
    victim: PathBuf,
    bird: PathBuf,
}

impl Arena {
    fn new() -> Arena {
        let dir = tempfile::Builder::new()
            .prefix("apfsattack")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, VICTIM_TEXT).unwrap();
        std::fs::set_permissions(&victim, PermissionsExt::from_mode(0o600)).unwrap();
        let bird = dir.path().join("bird");
        std::fs::create_dir(&bird).unwrap();
        std::os::unix::fs::chown(&bird, Some(EVIL), Some(EVIL)).unwrap();
        std::fs::set_permissions(&bird, PermissionsExt::from_mode(0o750)).unwrap();
        Arena { dir, victim, bird }
    }

    /// An arena and a real BIRD whose config includes `bird/*.conf`: the
    /// attacker's directory.
    fn with_bird() -> (Arena, RealBird) {
        let a = Arena::new();
        let conf =
            loopback_conf(a.dir.path(), free_port()).replace("/peers/*.conf", "/bird/*.conf");
        let bird = RealBird::start(a.dir.path(), &conf);
        (a, bird)
    }

    /// `sh -c SCRIPT` as the attacker, in the attacker's directory.
    fn attacker(&self, script: &str) {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["sh", "-c", script])
            .current_dir(&self.bird)
            .output()
            .expect("run setpriv");
        assert!(
            out.status.success(),
            "attacker script failed: {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The victim still holds its bytes, owner and mode.
    fn assert_victim_intact(&self) {
        let now = std::fs::read(&self.victim).unwrap();
        assert!(
            now == VICTIM_TEXT,
            "victim written: {:?}",
            String::from_utf8_lossy(&now)
        );
        let m = std::fs::metadata(&self.victim).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0), "victim's owner changed");
        assert_eq!(
            m.permissions().mode() & 0o7777,
            0o600,
            "victim's mode changed"
        );
    }
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

/// `ln -s VICTIM` at the old predictable temp name of `name` (this
/// process writes, so PID is ours) and at 64 names of the new form.
fn plant_links(a: &Arena, name: &str) -> Vec<PathBuf> {
    let pid = std::process::id();
    let v = a.victim.display();
    a.attacker(&format!(
        "ln -s {v} .{name}.autopeer-{pid}.tmp && \
         for i in $(seq 0 63); do ln -s {v} .{name}.autopeer-{pid}-$(printf %016x $i).tmp; done && \
         ln -s {v} .{name}.tmp && ln -s {v} {name}.tmp && ln -s {v} {name}~"
    ));
    std::fs::read_dir(&a.bird)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| is_symlink(p))
        .collect()
}

fn assert_links_untouched(a: &Arena, links: &[PathBuf]) {
    assert!(links.len() >= 67, "planted {}", links.len());
    for l in links {
        assert!(
            is_symlink(l),
            "{} is no longer the attacker's link",
            l.display()
        );
        assert_eq!(std::fs::read_link(l).unwrap(), a.victim);
    }
}

/// The include is a regular file of ours holding `text`.
fn assert_ours(path: &Path, text: &[u8]) {
    let m = std::fs::symlink_metadata(path).unwrap();
    assert!(
        m.file_type().is_file(),
        "{} is not a regular file",
        path.display()
    );
    assert_eq!(m.uid(), 0, "include not owned by us");
    assert_eq!(m.permissions().mode() & 0o777, 0o640);
    assert_eq!(std::fs::read(path).unwrap(), text);
}

fn peer(addr: &str) -> Peer {
    Peer {
        name: format!("clients_{}", addr.replace('.', "_")),
        group: "clients".into(),
        template: "peers".into(),
        addr: addr.parse().unwrap(),
        iface: None,
        neighbor: Some(NeighborAs::As(65009)),
        admitted: "2026-11-23T06:55:02Z".into(),
        via: "bird-log".into(),
    }
}

#[test]
fn planted_links_at_temp_names_are_not_followed() {
    if !require() {
        return;
    }
    let a = Arena::new();
    let links = plant_links(&a, "autopeer.conf");
    let include = a.bird.join("autopeer.conf");
    let text = render(&[peer("127.0.0.9")]).unwrap();
    write_atomic(&include, text.as_bytes()).expect("write the include");
    // A second write, now over an existing include.
    write_atomic(&include, text.as_bytes()).expect("write it again");
    a.assert_victim_intact();
    assert_links_untouched(&a, &links);
    assert_ours(&include, text.as_bytes());
}

#[tokio::test]
async fn admission_with_planted_links_reaches_bird_not_the_victim() {
    if !require() || !require_bird() {
        return;
    }
    let (a, bird) = Arena::with_bird();
    let include = a.bird.join("autopeer.conf");
    let links = plant_links(&a, "autopeer.conf");
    let target = Target {
        socket: bird.ctl.clone(),
        include: include.clone(),
        timeout: Duration::from_secs(10),
    };
    let text = render(&[peer("127.0.0.9")]).unwrap();
    apply(&target, &text).await.expect("apply");
    let mut c = autopeer::bird::client::Connection::connect(&bird.ctl, Duration::from_secs(10))
        .await
        .unwrap();
    let protos = c.protocols(false, None).await.unwrap();
    assert!(
        protos.iter().any(|p| p.name == "clients_127_0_0_9"),
        "BIRD did not load the peer: {protos:?}\n{}",
        bird.log()
    );
    a.assert_victim_intact();
    assert_links_untouched(&a, &links);
    assert_ours(&include, text.as_bytes());
}

/// Runs `f` on a thread and fails the test if it has not returned in 30 s
/// (a writer blocked in open(2) on a FIFO never returns).
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} hung (a FIFO opened for writing)"))
}

#[test]
fn fifo_at_temp_name_or_include_does_not_hang() {
    if !require() {
        return;
    }
    let a = Arena::new();
    let pid = std::process::id();
    a.attacker(&format!(
        "mkfifo .autopeer.conf.autopeer-{pid}.tmp && mkfifo .fifo.conf.autopeer-{pid}.tmp && mkfifo fifo.conf"
    ));
    let include = a.bird.join("autopeer.conf");
    let text = render(&[peer("127.0.0.9")]).unwrap();
    let (inc, t) = (include.clone(), text.clone());
    bounded("write beside a FIFO", move || {
        write_atomic(&inc, t.as_bytes())
    })
    .expect("write the include");
    assert_ours(&include, text.as_bytes());
    // A FIFO at the include's own name: refused, no hang, still a FIFO.
    let fifo = a.bird.join("fifo.conf");
    let f = fifo.clone();
    let err = bounded("write over a FIFO", move || write_atomic(&f, b"x"))
        .expect_err("a FIFO at the include is refused");
    assert!(err.to_string().contains("FIFO"), "{err}");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
}

fn config_text(a: &Arena, bird_socket: &Path) -> String {
    let d = a.dir.path().display();
    let b = a.bird.display();
    format!(
        r#"[bird]
socket = "{s}"
config = "{d}/bird.conf"
include = "{b}/autopeer.conf"
keyring = "off"

[agent]
socket = "{d}/autopeer.ctl"
state = "{b}/state.toml"
audit_log = "{b}/audit.log"

[sources]
logs = ["{d}/bird.log"]

[[group]]
name = "clients"
template = "peers"
prefixes = ["127.0.0.0/24"]
neighbor = "internal"
"#,
        s = bird_socket.display()
    )
}

#[tokio::test]
async fn symlinked_include_is_refused_and_nothing_goes_through_it() {
    if !require() || !require_bird() {
        return;
    }
    // BIRD starts with an empty directory; the link appears afterwards.
    let (a, bird) = Arena::with_bird();
    let include = a.bird.join("autopeer.conf");
    a.attacker(&format!("ln -s {} autopeer.conf", a.victim.display()));
    let text = render(&[peer("127.0.0.9")]).unwrap();

    let err = write_atomic(&include, text.as_bytes()).expect_err("a link is refused");
    assert!(err.to_string().contains("symbolic link"), "{err}");

    let target = Target {
        socket: bird.ctl.clone(),
        include: include.clone(),
        timeout: Duration::from_secs(10),
    };
    match apply(&target, &text).await {
        Err(e @ ApplyError::Write { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("symbolic link"), "{msg}");
            assert!(msg.contains(&include.display().to_string()), "{msg}");
        }
        other => panic!("apply through a link: {other:?}"),
    }
    assert!(is_symlink(&include), "the link was replaced");
    a.assert_victim_intact();
}

#[tokio::test]
async fn roster_and_check_refuse_a_symlinked_include() {
    if !require() {
        return;
    }
    let a = Arena::new();
    std::fs::write(a.dir.path().join("bird.conf"), "router id 10.0.0.1;\n").unwrap();
    // Writable by the attacker's group too: not root's, not BIRD's.
    std::fs::set_permissions(&a.bird, PermissionsExt::from_mode(0o770)).unwrap();
    a.attacker(&format!("ln -s {} autopeer.conf", a.victim.display()));
    let config = autopeer::config::Config::load_str(
        &config_text(&a, &a.dir.path().join("bird.ctl")),
        a.dir.path(),
    )
    .expect("config");

    let err = match autopeer::roster::Roster::new(std::sync::Arc::new(config.clone()), None) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("the roster started on a linked include"),
    };
    assert!(err.contains("symbolic link"), "{err}");

    let findings = autopeer::check::check_files(&config);
    let text: Vec<String> = findings.iter().map(|f| f.to_string()).collect();
    assert!(
        text.iter().any(|f| f.starts_with("problem: bird.include:")
            && f.contains("symbolic link")
            && f.contains(&a.victim.display().to_string())),
        "{text:#?}"
    );
    assert!(
        text.iter().any(|f| f.starts_with("warning: bird.include:")
            && f.contains("can be written by its owner (uid 65534)")),
        "{text:#?}"
    );
    a.assert_victim_intact();
}

#[test]
fn state_file_links_are_not_followed() {
    if !require() {
        return;
    }
    let a = Arena::new();
    let links = plant_links(&a, "state.toml");
    let state = a.bird.join("state.toml");
    let text = b"# autopeer runtime facts\n";
    write_atomic(&state, text).expect("write the state file");
    a.assert_victim_intact();
    assert_links_untouched(&a, &links);
    assert_ours(&state, text);

    // The state path itself a link: refused, the link stays a link.
    std::fs::remove_file(&state).unwrap();
    a.attacker(&format!("ln -s {} state.toml", a.victim.display()));
    let err = write_atomic(&state, text).expect_err("a linked state file is refused");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let err = autopeer::fsx::read_to_string(&state).expect_err("and not read through");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(is_symlink(&state));
    a.assert_victim_intact();
}

fn event(n: u32) -> Event {
    Event::KeptDisabled {
        name: format!("line_{n}"),
    }
}

#[test]
fn audit_log_links_are_not_followed() {
    if !require() {
        return;
    }
    let a = Arena::new();
    let log = a.bird.join("audit.log");
    a.attacker(&format!("ln -s {} audit.log", a.victim.display()));
    // At start-up (`open`) and at every line (`record` retries).
    let opened = AuditLog::open(&log);
    assert!(opened.is_err(), "the audit log opened through a link");
    let mut audit = AuditLog::closed(&log);
    audit.record(&event(1), SystemTime::now());
    assert!(is_symlink(&log));
    a.assert_victim_intact();

    // A regular file the attacker made at the path is not ours to append to.
    a.attacker("rm audit.log && echo mine > audit.log");
    audit.record(&event(2), SystemTime::now());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "mine\n");
}

#[test]
fn audit_log_follows_rotation() {
    if !require() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let mut audit = AuditLog::open(&log).unwrap();
    audit.record(&event(1), SystemTime::now());
    // What logrotate does (nocreate): rename, nothing at the path.
    std::fs::rename(&log, dir.path().join("audit.log.1")).unwrap();
    audit.record(&event(2), SystemTime::now());
    // `create`: rename, and a new empty file at the path.
    std::fs::rename(&log, dir.path().join("audit.log.2")).unwrap();
    std::fs::write(&log, b"").unwrap();
    audit.record(&event(3), SystemTime::now());
    // SIGHUP's flag: a reopen that leaves a healthy log as it is.
    audit
        .reopen_handle()
        .store(true, std::sync::atomic::Ordering::Relaxed);
    audit.record(&event(4), SystemTime::now());
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
    let (r1, r2, now) = (read("audit.log.1"), read("audit.log.2"), read("audit.log"));
    assert!(r1.contains("line_1") && !r1.contains("line_2"), "{r1}");
    assert!(r2.contains("line_2") && !r2.contains("line_3"), "{r2}");
    assert!(now.contains("line_3") && now.contains("line_4"), "{now}");
    assert_eq!(now.lines().count(), 2, "{now}");
}

/// Kills the racing attacker by pid, pass or fail.
struct Racer(Child);

impl Drop for Racer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn control_socket_swap_race_never_touches_a_victim() {
    socket_swap_race(|p| autopeer::ctl::server::Server::bind(p).is_ok());
}

#[tokio::test]
async fn nhrp_socket_swap_race_never_touches_a_victim() {
    socket_swap_race(|p| autopeer::sources::nhrp::bind(p).is_ok());
}

/// Binds (and drops) a socket 1000 times in the attacker's directory
/// while the attacker, as fast as it can, moves each new socket away and
/// puts a link to the victim in its place (before a chmod/chown through
/// the path could run). `bind` runs inside a tokio runtime.
fn socket_swap_race(bind: impl Fn(&Path) -> bool) {
    if !require() {
        return;
    }
    let a = Arena::new();
    // A mode neither socket gets (0660, 0600), so any chmod shows.
    std::fs::set_permissions(&a.victim, PermissionsExt::from_mode(0o604)).unwrap();
    let sock = a.bird.join("autopeer.ctl");
    let racer = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args([
            "perl",
            "-e",
            r#"chdir $ARGV[0] or die; while (1) { if (rename("autopeer.ctl", "moved")) { symlink($ARGV[1], "autopeer.ctl"); unlink("moved"); } }"#,
        ])
        .arg(&a.bird)
        .arg(&a.victim)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the racer");
    let _racer = Racer(racer);
    let (mut bound, mut swapped) = (0, 0);
    for _ in 0..1000 {
        if is_symlink(&sock) {
            swapped += 1;
        }
        let _ = std::fs::remove_file(&sock);
        if bind(&sock) {
            bound += 1;
        }
        let m = std::fs::metadata(&a.victim).unwrap();
        assert_eq!(
            (m.permissions().mode() & 0o7777, m.gid()),
            (0o604, 0),
            "victim chmod/chown'ed through a swapped socket path after {bound} binds"
        );
    }
    assert!(bound > 0, "the socket never bound");
    assert!(
        swapped > 0,
        "the racer never swapped the socket: the test proves nothing"
    );
    eprintln!("{bound} binds, {swapped} sockets swapped for a link by the attacker");
    assert_eq!(std::fs::read(&a.victim).unwrap(), VICTIM_TEXT);
}
