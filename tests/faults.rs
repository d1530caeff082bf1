//! Fault injection against the real `autopeer` binary and the real bird2 on
//! loopback (docs/facts.md § Failure rules, issue 7 item 3):
//!
//! - `sigkill_during_apply_leaves_old_or_new_roster`: `kill -9` of the
//!   daemon at random points of an apply, 200 times (`AUTOPEER_KILLS`
//!   overrides): the include is always exactly the old or the new roster,
//!   never torn; at most the one temp file of the killed writer is left
//!   over, and BIRD never reads it; `bird -p` accepts the whole config; a
//!   restarted daemon configures what BIRD lacks (resume) and BIRD never
//!   holds two protocols for one address.
//! - `bird_killed_stopped_or_unreachable_loses_nothing`: BIRD SIGKILLed
//!   mid-configure and restarted, SIGSTOPped mid-configure then continued,
//!   its control socket unlinked under it: every admitted peer ends up in
//!   BIRD once BIRD is back, once, and the daemon log names the condition.
//! - `owner_answers_while_bird_is_stopped_mid_apply`: BIRD SIGSTOPped
//!   while an apply waits on it: `status`, `show groups` and an NHRP
//!   authorize-binding for an admitted peer answer within 1 s, BIRD still
//!   stopped.
//! - `bird_rejecting_the_config_restores_the_include_byte_for_byte`: the
//!   daemon-level variant of tests/apply.rs's rollback.
//! - `disk_full_or_read_only_include_changes_nothing`: a 16 KiB tmpfs in a
//!   private mount namespace holds the include: full, then read-only; the
//!   old include stays intact, the daemon logs the path and the cause, and
//!   applies once space (or write access) is back.
//! - `flood_of_spoofed_sightings_stays_bounded`: 100,000 distinct spoofed
//!   sightings plus hostile lines through the tailed log: `max_peers` and
//!   `rate` hold, RSS stays bounded, the control socket keeps answering,
//!   repeated refusals are not audited twice.
//!
//! Every process is started here and killed by pid on drop (pass or fail),
//! temp dirs are removed by their guards. Needs root and bird2; with CI=true
//! a missing prerequisite fails the test, elsewhere it skips with a
//! one-line reason. Speed is never asserted: figures are printed.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autopeer::bird::client::Connection;
use autopeer::bird::protocols::Protocol;
use autopeer::bird::render;
use common::bird::{free_port, parse_only, require_bird, BirdFiles, RealBird};
use common::daemon::{Daemon, AUTOPEER};

/// How long the daemon may take to bind its control socket.
const DAEMON_UP: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Harness

/// bird.conf: loopback only, template CLIENTS is `passive on` so no
/// neighbor is ever dialed; the owned include is `include`.
fn bird_conf(dir: &Path, port: u16, include: &Path) -> String {
    common::bird::passive_clients_conf(dir, port, include)
}

/// One `[[group]]` on template CLIENTS.
fn group(name: &str, prefix: &str, max_peers: usize, rate: &str) -> String {
    format!(
        r#"
[[group]]
name = "{name}"
template = "CLIENTS"
prefixes = ["{prefix}"]
neighbor = "internal"
max_peers = {max_peers}
rate = {rate}
"#
    )
}

/// A temp dir with bird.conf, autopeer.toml, an empty owned include and
/// the tailed `knocks.log` the tests write sightings to.
struct Lab {
    dir: tempfile::TempDir,
    port: u16,
    include: PathBuf,
}

impl Lab {
    /// `include_dir`: where the include lives, relative to the lab dir
    /// (created here); `groups`: `[[group]]` tables.
    fn new(prefix: &str, include_dir: &str, batch: &str, groups: &str) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in("/tmp")
            .expect("tempdir");
        let d = dir.path();
        let port = free_port();
        let inc_dir = d.join(include_dir);
        std::fs::create_dir_all(&inc_dir).unwrap();
        let include = inc_dir.join("autopeer.conf");
        std::fs::write(&include, render::render(&[]).unwrap()).unwrap();
        std::fs::write(d.join("bird.conf"), bird_conf(d, port, &include)).unwrap();
        std::fs::write(d.join("knocks.log"), "").unwrap();
        let dd = d.display();
        let config = format!(
            r#"[bird]
socket = "{dd}/bird.ctl"
config = "{dd}/bird.conf"
include = "{inc}"
keyring = "off"

[agent]
socket = "{dd}/autopeer.ctl"
state = "{dd}/state.toml"
audit_log = "{dd}/audit.log"
batch = "{batch}"

[sources]
logs = ["{dd}/knocks.log"]
# knocks.log is not BIRD's own log file (these tests write it): its lines
# are unverified and admit only with this key.
unverified = "admit"
{groups}"#,
            inc = include.display()
        );
        std::fs::write(d.join("autopeer.toml"), config).unwrap();
        Lab { dir, port, include }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_bird(&self) -> RealBird {
        RealBird::start(
            self.dir.path(),
            &bird_conf(self.dir.path(), self.port, &self.include),
        )
    }

    fn daemon_command(&self) -> Command {
        let mut c = Command::new(AUTOPEER);
        c.env("NO_COLOR", "1");
        c.arg("-c").arg(self.path("autopeer.toml")).arg("run");
        c
    }

    fn start_daemon(&self) -> Daemon {
        Daemon::spawn(self.daemon_command(), &self.path("daemon.log"))
            .ready(&self.path("autopeer.ctl"), DAEMON_UP)
    }

    /// Appends one BIRD-format `Unexpected connect` line per address, all
    /// in one write (the tail sees them together).
    fn knock(&self, addrs: &[IpAddr]) {
        let mut text = String::new();
        for a in addrs {
            text.push_str(&knock_line(*a));
        }
        self.append(text.as_bytes());
    }

    fn append(&self, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("knocks.log"))
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    fn audit(&self) -> String {
        std::fs::read_to_string(self.path("audit.log")).unwrap_or_default()
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// The include's peers, name -> address; panics (with the text) when
    /// it does not parse: a torn or foreign file.
    fn include_peers(&self) -> BTreeMap<String, IpAddr> {
        parse_include(&self.include)
    }

    /// `bird -p -c bird.conf` accepts the whole config.
    fn assert_bird_parses(&self) {
        assert_bird_parses(&self.path("bird.conf"), None);
    }

    fn ctl(&self) -> PathBuf {
        self.path("autopeer.ctl")
    }
}

fn knock_line(a: IpAddr) -> String {
    format!("2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address {a} (port 47271)\n")
}

fn parse_include(path: &Path) -> BTreeMap<String, IpAddr> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read include {}: {e}", path.display()));
    let peers =
        render::parse(&text).unwrap_or_else(|e| panic!("include does not parse ({e}):\n{text}"));
    peers.into_iter().map(|p| (p.name, p.addr)).collect()
}

/// `bird -p -c CONF` exits 0; `ns`: run it inside that mount namespace.
fn assert_bird_parses(conf: &Path, ns: Option<u32>) {
    let out = match ns {
        Some(pid) => parse_only(conf, &["nsenter", "-t", &pid.to_string(), "-m", "--"]),
        None => parse_only(conf, &[]),
    };
    assert!(
        out.status.success(),
        "bird -p rejects the config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `sig` to a process we spawned and have not reaped yet.
fn signal(pid: u32, sig: rustix::process::Signal) {
    let p = rustix::process::Pid::from_raw(pid as i32).expect("pid is not 0");
    rustix::process::kill_process(p, sig).unwrap_or_else(|e| panic!("kill({pid}, {sig:?}): {e}"));
}

/// BIRD's protocols with `show protocols all`, or None when BIRD cannot be
/// asked right now.
fn bird_protocols(ctl: &Path) -> Option<Vec<Protocol>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = Connection::connect(ctl, Duration::from_secs(5))
            .await
            .ok()?;
        c.protocols(true, None).await.ok()
    })
}

/// `configure` BIRD now (test set-up only).
fn bird_configure(ctl: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = Connection::connect(ctl, Duration::from_secs(30))
            .await
            .expect("connect to BIRD");
        c.configure().await.expect("BIRD configure");
    });
}

/// The BGP protocols named by autopeer (`GROUP_...`), name -> neighbor;
/// panics when two protocols share one neighbor address.
fn bird_peers(rows: &[Protocol]) -> BTreeMap<String, IpAddr> {
    let mut by_addr: HashMap<IpAddr, &str> = HashMap::new();
    let mut out = BTreeMap::new();
    for p in rows {
        let Some(addr) = p.bgp.as_ref().and_then(|b| b.neighbor_addr) else {
            continue;
        };
        if let Some(other) = by_addr.insert(addr, &p.name) {
            panic!(
                "BIRD holds two protocols for {addr}: {other} and {}",
                p.name
            );
        }
        out.insert(p.name.clone(), addr);
    }
    out
}

/// Polls `check` every 20 ms until it is true or `limit` passes.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

/// Waits until BIRD's protocols equal the include's peers (and no address
/// is held twice).
fn wait_bird_matches_include(
    bird_ctl: &Path,
    include: &Path,
    limit: Duration,
    log: &dyn Fn() -> String,
) {
    let start = Instant::now();
    loop {
        let want = parse_include(include);
        if let Some(rows) = bird_protocols(bird_ctl) {
            if bird_peers(&rows) == want {
                return;
            }
        }
        if start.elapsed() > limit {
            let got = bird_protocols(bird_ctl).map(|r| bird_peers(&r));
            panic!(
                "BIRD never matched the include within {limit:?}\ninclude: {want:?}\nBIRD: {got:?}\ndaemon log:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small deterministic generator (no rand crate); the seed is printed so
/// that a failing run can be repeated with `AUTOPEER_FAULT_SEED`.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("AUTOPEER_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("fault seed: AUTOPEER_FAULT_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// The `n`-th host address of 10.99.0.0/16, skipping .0 and .255.
fn host(n: u32) -> IpAddr {
    let n = n % (256 * 254);
    IpAddr::from([10, 99, (n / 254) as u8, (n % 254 + 1) as u8])
}

/// Whether temp file `t` is writer `pid`'s (`.NAME.autopeer-PID-RANDOM.tmp`).
fn temp_of(t: &str, pid: u32) -> bool {
    t.contains(&format!(".autopeer-{pid}-"))
}

/// Temp files beside the include (`.autopeer.conf.autopeer-PID-RANDOM.tmp`).
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

// ---------------------------------------------------------------------------
// SIGKILL of the daemon mid-apply

#[test]
fn sigkill_during_apply_leaves_old_or_new_roster() {
    if !require_bird() {
        return;
    }
    let kills: usize = std::env::var("AUTOPEER_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let lab = Lab::new(
        "apkill",
        "inc",
        "30ms",
        &group("clients", "10.99.0.0/16", 100_000, "\"unlimited\""),
    );
    let bird = lab.start_bird();
    let mut rng = Rng::from_env();
    let mut daemon = lab.start_daemon();
    let inc_dir = lab.include.parent().unwrap().to_path_buf();
    let log = || lab.daemon_log();
    let (mut old_seen, mut new_seen, mut resumed, mut temp_left) = (0, 0, 0, 0);
    let mut next = 0u32;
    let mut killed_pids = Vec::new();
    let started = Instant::now();
    for i in 0..kills {
        // Keep `configure` cheap: start again from an empty roster now and then.
        if lab.include_peers().len() > 60 {
            daemon.kill9();
            std::fs::write(&lab.include, render::render(&[]).unwrap()).unwrap();
            bird_configure(&bird.ctl);
            daemon = lab.start_daemon();
        }
        let old = lab.include_peers();
        let k = 1 + rng.below(3) as u32;
        let addrs: Vec<IpAddr> = (0..k).map(|j| host(next + j)).collect();
        next += k;
        lab.knock(&addrs);
        // Half the kills anywhere in 0-120 ms, half packed around the end
        // of the 30 ms batch, where the write and `configure` happen.
        let delay = if rng.below(2) == 0 {
            rng.below(120_000)
        } else {
            25_000 + rng.below(30_000)
        };
        std::thread::sleep(Duration::from_micros(delay));
        let killed = daemon.pid();
        daemon.kill9();

        // Exactly the old or the new roster, never anything between.
        let now = lab.include_peers();
        let mut new = old.clone();
        for a in &addrs {
            new.insert(render::peer_name("clients", *a, None), *a);
        }
        if now == old {
            old_seen += 1;
        } else if now == new {
            new_seen += 1;
        } else {
            panic!("kill {i}: include is neither the old nor the new roster\nold: {old:?}\nnew: {new:?}\nnow: {now:?}");
        }
        // Temp files: only of writers this test killed, and they do not
        // pile up (the next write removes a dead writer's); BIRD's include
        // is a fixed path that never names them.
        killed_pids.push(killed);
        let temps = temp_files(&inc_dir);
        assert!(
            temps.len() <= 2
                && temps
                    .iter()
                    .all(|t| killed_pids.iter().any(|p| temp_of(t, *p))),
            "kill {i}: temp files left over: {temps:?} (killed pids so far: {})",
            killed_pids.len()
        );
        temp_left += temps.iter().filter(|t| temp_of(t, killed)).count();
        lab.assert_bird_parses();

        // A restart configures what BIRD lacks.
        let in_bird = bird_protocols(&bird.ctl).map(|r| bird_peers(&r));
        if in_bird.as_ref() != Some(&now) {
            resumed += 1;
        }
        daemon = lab.start_daemon();
        wait_bird_matches_include(&bird.ctl, &lab.include, Duration::from_secs(20), &log);
    }
    let secs = started.elapsed().as_secs_f64();
    // One more admission: its write leaves no temp file at all.
    lab.knock(&[host(next)]);
    eventually("the last knock applied", Duration::from_secs(20), || {
        lab.include_peers().values().any(|a| *a == host(next))
    });
    wait_bird_matches_include(&bird.ctl, &lab.include, Duration::from_secs(20), &log);
    assert_eq!(
        temp_files(&inc_dir),
        Vec::<String>::new(),
        "temp files after a clean write"
    );
    eprintln!(
        "sigkill: {kills} kills in {secs:.1} s; include old {old_seen}, new {new_seen}; \
         restarts that had to configure {resumed}; temp file left by the killed writer {temp_left}"
    );
    // The kill points spanned the apply: before the write and after it.
    assert!(
        old_seen > 0 && new_seen > 0,
        "kills all on one side of the write: old {old_seen}, new {new_seen}"
    );
}

// ---------------------------------------------------------------------------
// BIRD killed, stopped, unreachable

/// The addresses the audit log says were admitted (`adding neighbor A`).
fn audited_additions(audit: &str) -> BTreeSet<IpAddr> {
    audit
        .lines()
        .filter_map(|l| l.split(" adding neighbor ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// Every admitted address is in the include and in BIRD, once.
fn assert_nothing_lost(lab: &Lab, bird_ctl: &Path, fed: &BTreeSet<IpAddr>, phase: &str) {
    let log = || lab.daemon_log();
    let start = Instant::now();
    while lab.include_peers().into_values().collect::<BTreeSet<_>>() != *fed
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_bird_matches_include(bird_ctl, &lab.include, Duration::from_secs(30), &log);
    let include: BTreeSet<IpAddr> = lab.include_peers().into_values().collect();
    let admitted = audited_additions(&lab.audit());
    assert_eq!(
        &admitted, fed,
        "{phase}: audit log admissions vs addresses fed"
    );
    assert_eq!(
        &include,
        fed,
        "{phase}: include vs addresses fed\n{}",
        log()
    );
    lab.assert_bird_parses();
}

#[test]
fn bird_killed_stopped_or_unreachable_loses_nothing() {
    if !require_bird() {
        return;
    }
    let lab = Lab::new(
        "apbird",
        "inc",
        "50ms",
        &group("clients", "10.99.0.0/16", 100_000, "\"unlimited\""),
    );
    let mut rng = Rng::from_env();
    let mut bird = lab.start_bird();
    let _daemon = lab.start_daemon();
    let mut fed = BTreeSet::new();
    let mut next = 0u32;
    let mut feed = |n: u32, fed: &mut BTreeSet<IpAddr>| {
        let addrs: Vec<IpAddr> = (next..next + n).map(host).collect();
        next += n;
        fed.extend(addrs.iter().copied());
        lab.knock(&addrs);
    };

    // 1. SIGKILL of BIRD at a random point around a configure; more
    //    sightings while it is down; then BIRD is started again.
    for round in 0..3 {
        feed(5, &mut fed);
        std::thread::sleep(Duration::from_micros(30_000 + rng.below(50_000)));
        signal(bird.pid(), rustix::process::Signal::KILL);
        drop(bird); // reaps it and removes its stale socket
        feed(5, &mut fed);
        let log_len = lab.daemon_log().len();
        eventually(
            "the daemon reports BIRD unavailable",
            Duration::from_secs(20),
            || lab.daemon_log()[log_len..].contains("bird unavailable"),
        );
        bird = lab.start_bird();
        assert_nothing_lost(
            &lab,
            &bird.ctl,
            &fed,
            &format!("BIRD killed, round {round}"),
        );
    }

    // 2. SIGSTOP mid-configure, sightings while stopped, SIGCONT.
    for round in 0..2 {
        feed(5, &mut fed);
        std::thread::sleep(Duration::from_micros(30_000 + rng.below(50_000)));
        signal(bird.pid(), rustix::process::Signal::STOP);
        feed(5, &mut fed);
        std::thread::sleep(Duration::from_millis(1700));
        signal(bird.pid(), rustix::process::Signal::CONT);
        assert_nothing_lost(
            &lab,
            &bird.ctl,
            &fed,
            &format!("BIRD stopped, round {round}"),
        );
    }

    // 3. BIRD's control socket unlinked under a running BIRD: reported
    //    with the path; a BIRD restart (new socket) brings the peers in.
    std::fs::remove_file(&bird.ctl).unwrap();
    let log_len = lab.daemon_log().len();
    feed(5, &mut fed);
    let socket = bird.ctl.display().to_string();
    eventually(
        "the daemon names the missing socket",
        Duration::from_secs(20),
        || {
            let log = lab.daemon_log();
            let new = &log[log_len..];
            new.contains("bird unavailable") && new.contains(&socket)
        },
    );
    let include_before = std::fs::read(&lab.include).unwrap();
    feed(5, &mut fed);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read(&lab.include).unwrap(),
        include_before,
        "BIRD unreachable: the include is not written"
    );
    drop(bird);
    let bird = lab.start_bird();
    assert_nothing_lost(&lab, &bird.ctl, &fed, "control socket gone, BIRD restarted");
    eprintln!(
        "bird faults: {} peers admitted, all in BIRD once; daemon log lines naming BIRD unavailable: {}",
        fed.len(),
        lab.daemon_log().matches("bird unavailable").count()
    );
}

/// Runs `autopeer -s CTL ARGS` and returns how long it took and its output
/// (stdout, stderr); panics if it fails.
fn ctl_command(ctl: &Path, args: &[&str]) -> (Duration, String) {
    let t = Instant::now();
    let out = Command::new(AUTOPEER)
        .env("NO_COLOR", "1")
        .arg("-s")
        .arg(ctl)
        .args(args)
        .output()
        .unwrap();
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "autopeer {args:?}: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (took, text)
}

/// One authorize-binding for `remote` over nhrpd's event socket; returns
/// how long the answer took and the answer.
fn nhrp_authorize(sock: &Path, remote: IpAddr) -> (Duration, String) {
    use std::io::{BufRead, BufReader};
    let t = Instant::now();
    let mut s = std::os::unix::net::UnixStream::connect(sock).expect("nhrp socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "eventid=7\nevent=authorize-binding\ntype=dynamic\nold_type=invalid\nnum_nhs=0\n\
         interface=gre1\nlocal_addr=10.99.255.1\nvc_initiated=no\nlocal_nbma=192.0.2.1\n\
         local_cert=\nremote_addr={remote}\nremote_nbma=192.0.2.5\nremote_cert=\n\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut answer = String::new();
    while !answer.ends_with("\n\n") {
        if r.read_line(&mut answer).unwrap_or(0) == 0 {
            break;
        }
    }
    (t.elapsed(), answer)
}

/// Issue 12's promise: the owner task never waits on BIRD. With BIRD
/// SIGSTOPped while an apply waits on it, `status`, `show groups` and an
/// NHRP authorize-binding for an already-admitted peer are all answered
/// while BIRD is still stopped, each within 1 s (before, the roster task
/// sat in its apply until BIRD answered or the 60 s command time-out);
/// after SIGCONT the peers sighted meanwhile reach BIRD.
#[test]
fn owner_answers_while_bird_is_stopped_mid_apply() {
    if !require_bird() {
        return;
    }
    let lab = Lab::new(
        "apstop",
        "inc",
        "50ms",
        &group("clients", "10.99.0.0/16", 100_000, "\"unlimited\""),
    );
    let cfg = lab.path("autopeer.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "unverified = \"admit\"\n",
        &format!(
            "unverified = \"admit\"\nnhrp_socket = \"{}\"\n",
            lab.path("nhrp.sock").display()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let bird = lab.start_bird();
    let _daemon = lab.start_daemon();
    let admitted = host(1);
    lab.knock(&[admitted]);
    let mut fed = BTreeSet::from([admitted]);
    assert_nothing_lost(&lab, &bird.ctl, &fed, "before the stop");

    signal(bird.pid(), rustix::process::Signal::STOP);
    // A new peer: its apply starts after `batch` and waits on the stopped
    // BIRD (it accepts the connection in the kernel, never greets).
    let late = host(2);
    lab.knock(&[late]);
    fed.insert(late);
    eventually(
        "the new peer to be in flight (status shows it pending)",
        Duration::from_secs(10),
        || {
            let (_, out) = ctl_command(&lab.ctl(), &["show", "peers"]);
            out.contains(&late.to_string())
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let (t_status, status) = ctl_command(&lab.ctl(), &["status"]);
    let (t_groups, groups) = ctl_command(&lab.ctl(), &["show", "groups"]);
    let (t_nhrp, answer) = nhrp_authorize(&lab.path("nhrp.sock"), admitted);
    // Still stopped: these answers did not wait for BIRD.
    let bird_state = std::fs::read_to_string(format!("/proc/{}/stat", bird.pid())).unwrap();
    let stopped = bird_state
        .rsplit(')')
        .next()
        .is_some_and(|rest| rest.trim_start().starts_with('T'));
    signal(bird.pid(), rustix::process::Signal::CONT);
    assert!(
        stopped,
        "BIRD was continued during the probes: {bird_state}"
    );
    eprintln!(
        "BIRD stopped mid-apply: status {t_status:?}, show groups {t_groups:?}, nhrp {t_nhrp:?}"
    );
    assert!(groups.contains("clients"), "{groups}");
    // The new peer is still waiting for the stopped BIRD.
    let late_row = status.lines().find(|l| l.contains(&format!(" {late} ")));
    assert!(late_row.is_some_and(|l| l.contains("pending")), "{status}");
    assert_eq!(
        answer,
        "eventid=7\nresult=accept\n\n",
        "{}",
        lab.daemon_log()
    );
    for (what, took) in [
        ("status", t_status),
        ("show groups", t_groups),
        ("nhrp", t_nhrp),
    ] {
        assert!(
            took < Duration::from_secs(1),
            "{what} took {took:?} while BIRD was stopped"
        );
    }
    assert_nothing_lost(&lab, &bird.ctl, &fed, "after SIGCONT");
    let audit = lab.audit();
    assert!(
        audit.contains(&format!("nhrp: accepted registration of {admitted}")),
        "{audit}"
    );
}

// ---------------------------------------------------------------------------
// BIRD rejecting the config, at the daemon level

#[test]
fn bird_rejecting_the_config_restores_the_include_byte_for_byte() {
    if !require_bird() {
        return;
    }
    // Group `gone` names a template bird.conf does not have: BIRD rejects
    // every include that holds one of its peers.
    let groups = format!(
        "{}{}",
        group("clients", "10.99.0.0/16", 1000, "\"unlimited\""),
        group("gone", "10.98.0.0/16", 1000, "\"unlimited\"").replace("\"CLIENTS\"", "\"GONE\"")
    );
    let lab = Lab::new("apreject", "inc", "30ms", &groups);
    let bird = lab.start_bird();
    let _daemon = lab.start_daemon();
    let good: Vec<IpAddr> = (0..3).map(host).collect();
    lab.knock(&good);
    eventually("three good peers applied", Duration::from_secs(20), || {
        lab.include_peers().len() == 3
    });
    wait_bird_matches_include(&bird.ctl, &lab.include, Duration::from_secs(20), &|| {
        lab.daemon_log()
    });
    let before = std::fs::read(&lab.include).unwrap();

    let bad: IpAddr = "10.98.0.7".parse().unwrap();
    lab.knock(&[bad]);
    eventually("the rejection audited", Duration::from_secs(20), || {
        lab.audit().contains("rejected by BIRD")
    });
    assert_eq!(
        std::fs::read(&lab.include).unwrap(),
        before,
        "include restored byte for byte"
    );
    let audit = lab.audit();
    let line = audit
        .lines()
        .find(|l| l.contains("rejected by BIRD"))
        .unwrap();
    assert!(
        line.contains("gone_10_98_0_7") && line.contains(&lab.include.display().to_string()),
        "the audit line names the peer and BIRD's file:line: {line}"
    );
    lab.assert_bird_parses();
    wait_bird_matches_include(&bird.ctl, &lab.include, Duration::from_secs(20), &|| {
        lab.daemon_log()
    });
    // The daemon goes on admitting after a rejection.
    lab.knock(&[host(10)]);
    eventually(
        "a good peer after the rejection",
        Duration::from_secs(20),
        || lab.include_peers().len() == 4,
    );
    eprintln!("rejection: {line}");
}

// ---------------------------------------------------------------------------
// Disk full and read-only include, in a private mount namespace

/// `sleep` inside a private mount namespace whose `dir` is a 16 KiB tmpfs;
/// killed by pid on drop (the namespace and its mount go with the last
/// process in it).
struct MountNs {
    holder: Child,
}

impl MountNs {
    fn new(dir: &Path) -> MountNs {
        let script = format!(
            "mount -t tmpfs -o size=16k,mode=0755 apfaults '{}' && echo ready && exec sleep 600",
            dir.display()
        );
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux)");
        let mut line = String::new();
        let stdout = holder.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        let ns = MountNs { holder };
        assert_eq!(
            line.trim(),
            "ready",
            "tmpfs mount in a private namespace failed"
        );
        ns
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `path` as seen inside the namespace.
    fn path(&self, path: &Path) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.pid())).join(path.strip_prefix("/").unwrap())
    }

    /// A command run inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid().to_string())
            .arg("-m")
            .arg("--")
            .arg(program);
        c
    }

    fn remount(&self, dir: &Path, opts: &str) {
        let st = self
            .command("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "remount {opts}");
    }
}

impl Drop for MountNs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[test]
fn disk_full_or_read_only_include_changes_nothing() {
    if !require_bird() {
        return;
    }
    let lab = Lab::new(
        "apdisk",
        "inc",
        "30ms",
        &group("clients", "10.99.0.0/16", 1000, "\"unlimited\""),
    );
    let inc_dir = lab.include.parent().unwrap().to_path_buf();
    let ns = MountNs::new(&inc_dir);
    let include = ns.path(&lab.include);
    let ns_inc_dir = ns.path(&inc_dir);
    std::fs::write(&include, render::render(&[]).unwrap()).unwrap();
    let bird_ctl = lab.path("bird.ctl");
    let ns_pid = ns.pid().to_string();
    let bird = RealBird::launch(
        BirdFiles::flat(lab.dir.path()),
        &["nsenter", "-t", &ns_pid, "-m", "--"],
        Duration::from_secs(10),
    );
    eventually(
        "BIRD in the namespace answers",
        Duration::from_secs(10),
        || bird_protocols(&bird_ctl).is_some(),
    );
    let mut daemon_cmd = ns.command(AUTOPEER);
    daemon_cmd
        .env("NO_COLOR", "1")
        .arg("-c")
        .arg(lab.path("autopeer.toml"))
        .arg("run");
    let _daemon = Daemon::spawn(daemon_cmd, &lab.path("daemon.log")).ready(&lab.ctl(), DAEMON_UP);
    let log = || lab.daemon_log();
    let applied = |addr: IpAddr| {
        let start = Instant::now();
        while !parse_include(&include).values().any(|a| *a == addr) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{addr} not applied in 30 s; daemon log:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        wait_bird_matches_include(&bird_ctl, &include, Duration::from_secs(30), &log);
    };
    lab.knock(&[host(0)]);
    applied(host(0));

    // The include is refused while the disk is full or read-only.
    let refused = |addr: IpAddr, cause: &str| {
        let before = std::fs::read(&include).unwrap();
        let log_len = lab.daemon_log().len();
        lab.knock(&[addr]);
        let path = lab.include.display().to_string();
        eventually(
            &format!("the daemon logs {cause}"),
            Duration::from_secs(20),
            || {
                lab.daemon_log()[log_len..]
                    .lines()
                    .any(|l| l.contains(cause) && l.contains(&path))
            },
        );
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            std::fs::read(&include).unwrap(),
            before,
            "{cause}: include intact"
        );
        assert!(
            temp_files(&ns_inc_dir).is_empty(),
            "{cause}: no temp file left"
        );
        let in_bird = bird_peers(&bird_protocols(&bird_ctl).unwrap());
        assert_eq!(
            in_bird,
            parse_include(&include),
            "{cause}: BIRD keeps the old roster"
        );
        assert_bird_parses(&lab.path("bird.conf"), Some(ns.pid()));
        let line = lab.daemon_log()[log_len..]
            .lines()
            .find(|l| l.contains(cause))
            .unwrap_or_default()
            .to_string();
        eprintln!("{cause}: {line}");
    };

    // Disk full: fill the tmpfs, knock, free the space.
    let filler = ns_inc_dir.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = [0u8; 1024];
        let mut filled = 0;
        while f.write_all(&block).and_then(|_| f.sync_all()).is_ok() {
            filled += 1;
            assert!(filled < 64, "a 16 KiB tmpfs took 64 KiB");
        }
    }
    refused(host(1), "No space left on device");
    std::fs::remove_file(&filler).unwrap();
    applied(host(1));

    // Read-only: remount, knock, remount read-write.
    ns.remount(&inc_dir, "ro");
    refused(host(2), "Read-only file system");
    ns.remount(&inc_dir, "rw");
    applied(host(2));
    drop(bird);
}

// ---------------------------------------------------------------------------
// A flood of spoofed sightings

/// Hostile lines mixed into the flood: injection attempts, bad bytes,
/// over-long lines, nonsense addresses.
fn hostile_line(k: usize) -> Vec<u8> {
    let ts = "2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect from unknown address";
    match k % 6 {
        0 => format!("{ts} 10.99.0.1\"; }} protocol bgp evil from CLIENTS {{ neighbor 10.66.6.6 as 1; (port 1)\n").into_bytes(),
        1 => {
            let mut v = format!("{ts} ").into_bytes();
            v.extend_from_slice(b"\xff\xfe10.99.0.9\xc0 (port 1)\n");
            v
        }
        2 => {
            let mut v = format!("{ts} 10.99.0.2 (port 1) ").into_bytes();
            v.extend_from_slice(&[b'A'; 20_000]);
            v.push(b'\n');
            v
        }
        3 => format!("{ts} 10.99.0.1%$(reboot) (port 1)\n").into_bytes(),
        4 => format!("{ts} 999.1.1.1 (port 99999)\n").into_bytes(),
        _ => {
            let mut v = format!("{ts} 10.99.0.3").into_bytes();
            v.extend_from_slice(b"\0\0 (port 1)\n");
            v
        }
    }
}

#[test]
fn flood_of_spoofed_sightings_stays_bounded() {
    if !require_bird() {
        return;
    }
    const FLOOD: usize = 100_000;
    const MAX_PEERS: usize = 25;
    const RATE: u64 = 30;
    let groups = format!(
        "{}{}{}",
        group("clients", "10.99.0.0/17", MAX_PEERS, "\"unlimited\""),
        group("slow", "10.99.128.0/17", 100_000, &RATE.to_string()),
        group("sentinel", "192.0.2.0/24", 100, "\"unlimited\""),
    );
    let lab = Lab::new("apflood", "inc", "100ms", &groups);
    let bird = lab.start_bird();
    let daemon = lab.start_daemon();
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = daemon.rss_kib();

    // 30 % in `clients`, 30 % in `slow`, 40 % outside every prefix (half
    // IPv4, half IPv6); all distinct; a hostile line after every 20th.
    let mut clients_addrs = Vec::new();
    let (mut c, mut s, mut o) = (0u32, 0u32, 0u32);
    let mut lines: Vec<Vec<u8>> = Vec::with_capacity(FLOOD + FLOOD / 20);
    for k in 0..FLOOD {
        let addr: IpAddr = match k % 10 {
            0..=2 => {
                c += 1;
                let a = IpAddr::from([10, 99, (c / 254) as u8, (c % 254 + 1) as u8]);
                clients_addrs.push(a);
                a
            }
            3..=5 => {
                s += 1;
                IpAddr::from([10, 99, 128 + (s / 254) as u8, (s % 254 + 1) as u8])
            }
            _ if k % 2 == 0 => {
                o += 1;
                IpAddr::from([198, 18, (o / 254) as u8, (o % 254 + 1) as u8])
            }
            _ => {
                o += 1;
                IpAddr::from([0x2001, 0xdb8, 1, 0, 0, 0, (o >> 16) as u16, o as u16])
            }
        };
        lines.push(knock_line(addr).into_bytes());
        if k % 20 == 19 {
            lines.push(hostile_line(k / 20));
        }
    }
    let distinct: BTreeSet<&[u8]> = lines.iter().map(|l| l.as_slice()).collect();
    assert!(
        distinct.len() >= FLOOD,
        "the flood's sightings are distinct"
    );

    // Probe the control socket all through the flood.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let done = done.clone();
        let ctl = lab.ctl();
        std::thread::spawn(move || {
            let mut took = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let out = Command::new(AUTOPEER)
                    .arg("-s")
                    .arg(&ctl)
                    .args(["show", "groups"])
                    .output()
                    .unwrap();
                took.push((t.elapsed(), out.status.success()));
                std::thread::sleep(Duration::from_millis(100));
            }
            took
        })
    };

    let started = Instant::now();
    let mut bytes = 0;
    for chunk in lines.chunks(1000) {
        let buf = chunk.concat();
        bytes += buf.len();
        lab.append(&buf);
    }
    let written = started.elapsed();
    // Lines are read in order: once the sentinel is in, the flood is done.
    lab.knock(&["192.0.2.1".parse().unwrap()]);
    let log = || lab.daemon_log();
    let deadline = Instant::now() + Duration::from_secs(150);
    while !lab.include_peers().contains_key("sentinel_192_0_2_1") {
        assert!(Instant::now() < deadline, "flood not digested in 150 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let digested = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let probes = probe.join().unwrap();
    let rss_after = daemon.rss_kib();

    // The roster stays within max_peers and rate; nothing hostile got in.
    let include = lab.include_peers();
    let count = |g: &str| {
        include
            .keys()
            .filter(|n| n.starts_with(&format!("{g}_")))
            .count()
    };
    let minutes = digested.as_secs_f64() / 60.0;
    let rate_cap = RATE as usize + (RATE as f64 * minutes).ceil() as usize;
    assert_eq!(count("clients"), MAX_PEERS, "clients: exactly max_peers");
    assert!(
        (1..=rate_cap).contains(&count("slow")),
        "slow: {} admissions, rate allows {rate_cap} in {digested:?}",
        count("slow")
    );
    assert_eq!(
        count("clients") + count("slow") + count("sentinel"),
        include.len()
    );
    for (name, addr) in &include {
        assert!(
            addr.to_string().starts_with("10.99.") || name.starts_with("sentinel_"),
            "{name} {addr}"
        );
    }
    lab.assert_bird_parses();
    wait_bird_matches_include(&bird.ctl, &lab.include, Duration::from_secs(30), &log);

    // The control socket answered all along.
    let worst = probes.iter().map(|p| p.0).max().unwrap_or_default();
    assert!(
        probes.len() >= 3,
        "too few probes ({}) to judge",
        probes.len()
    );
    assert!(
        probes.iter().all(|p| p.1),
        "a `show groups` failed during the flood"
    );
    assert!(
        worst < Duration::from_secs(10),
        "`show groups` took {worst:?}"
    );

    // Memory is bounded (the refusal memory is capped).
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // The audit log: at most one line per sighting, and a refused address
    // knocking again is not audited again.
    let audit = lab.audit();
    let audit_lines = audit.lines().count();
    assert!(
        audit_lines <= FLOOD + 1,
        "{audit_lines} audit lines for {FLOOD} sightings"
    );
    assert!(
        !audit.contains("evil") && !audit.contains("reboot"),
        "hostile text audited"
    );
    let again: Vec<IpAddr> = clients_addrs[clients_addrs.len() - 100..].to_vec();
    lab.knock(&again);
    lab.knock(&["192.0.2.2".parse().unwrap()]);
    eventually("second sentinel", Duration::from_secs(30), || {
        lab.include_peers().contains_key("sentinel_192_0_2_2")
    });
    let growth = lab.audit().lines().count() - audit_lines;
    assert_eq!(
        growth, 1,
        "100 repeated refusals audited again (only the sentinel's line may be new)"
    );

    let mut sorted: Vec<Duration> = probes.iter().map(|p| p.0).collect();
    sorted.sort();
    eprintln!(
        "flood: {FLOOD} sightings + {} hostile lines ({:.1} MiB) written in {written:.2?}, digested in {digested:.2?}; \
         roster clients {}/{MAX_PEERS}, slow {} (rate {RATE}/min allows {rate_cap}); \
         RSS {rss_before} KiB -> {rss_after} KiB; `show groups` x{}: median {:?}, worst {worst:?}; \
         audit log {audit_lines} lines, {} KiB",
        FLOOD / 20,
        bytes as f64 / 1048576.0,
        count("clients"),
        count("slow"),
        probes.len(),
        sorted[sorted.len() / 2],
        audit.len() / 1024
    );
}
