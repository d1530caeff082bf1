//! The roster task in-process, against the real bird2 on loopback
//! (RealBird), with real time and bounded polls:
//!
//! - a burst of sightings is at most two `configure`s (group commit: the
//!   first at once, the rest together in the next);
//! - BIRD down at first: sightings are kept and retried with backoff until
//!   BIRD is up; nothing lost, nothing duplicated;
//! - a refused address knocking 20 times is audited once;
//! - a neighbor an operator configured by hand after admission is dropped
//!   from the owned include, with the place BIRD has it now;
//! - dry run: audited as such, include and BIRD untouched.
//!
//! BGP stays on loopback: the template binds 127.0.0.1 on a high port and
//! is `passive on`, so the 10.99.0.x neighbors are never dialed.
//! Real-BIRD tests need root; with CI=true they fail loudly when they
//! cannot run, elsewhere they skip with a one-line reason.

mod common;

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use autopeer::audit::AuditLog;
use autopeer::bird::client::Connection;
use autopeer::bird::render;
use autopeer::config::Config;
use autopeer::roster::{Msg, Roster};
use autopeer::sources::{Flow, Sighting, Trust, Via};
use common::bird::{free_port, require_bird, RealBird};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const POLL_LIMIT: Duration = Duration::from_secs(20);

fn bird_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"log "{d}/bird.log" all;
debug commands 2;
router id 10.0.0.1;
protocol device {{ }}
template bgp CLIENTS {{
  local 127.0.0.1 port {port} as 65001;
  strict bind yes;
  multihop;
  passive on;
  ipv4 {{ import none; export none; }};
}}
template bgp CLIENTS6 {{
  local ::1 port {port} as 65001;
  strict bind yes;
  multihop;
  passive on;
  ipv6 {{ import none; export none; }};
}}
include "{d}/autopeer.conf";
include "{d}/peers/*.conf";
"#
    )
}

fn config_text(dir: &Path, dry_run: bool) -> String {
    let d = dir.display();
    format!(
        r#"[bird]
socket = "{d}/bird.ctl"
config = "{d}/bird.conf"
include = "{d}/autopeer.conf"
keyring = "off"

[agent]
socket = "{d}/autopeer.ctl"
state = "{d}/state.toml"
audit_log = "{d}/audit.log"
batch = "300ms"
dry_run = {dry_run}

[sources]
logs = ["{d}/bird.log"]

[[group]]
name = "clients"
template = "CLIENTS"
prefixes = ["10.99.0.0/24"]
neighbor = "internal"
deny = ["10.99.0.66/32"]
max_peers = 1000
rate = "unlimited"

# Its template does not exist in bird.conf: BIRD rejects its peers.
[[group]]
name = "gone"
template = "GONE"
prefixes = ["10.98.0.0/24"]
neighbor = "internal"
rate = "unlimited"
"#
    )
}

/// A temp dir holding bird.conf, the (empty, rendered) owned include and
/// the `peers/` dir; BIRD is started separately.
struct Files {
    dir: tempfile::TempDir,
    port: u16,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::Builder::new()
            .prefix("aproster")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("peers")).unwrap();
        std::fs::write(dir.path().join("bird.conf"), bird_conf(dir.path(), port)).unwrap();
        std::fs::write(
            dir.path().join("autopeer.conf"),
            render::render(&[]).unwrap(),
        )
        .unwrap();
        Files { dir, port }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_bird(&self) -> RealBird {
        RealBird::start(self.dir.path(), &bird_conf(self.dir.path(), self.port))
    }

    fn audit(&self) -> String {
        std::fs::read_to_string(self.path("audit.log")).unwrap_or_default()
    }

    fn include(&self) -> Vec<u8> {
        std::fs::read(self.path("autopeer.conf")).unwrap()
    }

    fn include_peers(&self) -> Vec<String> {
        let text = String::from_utf8(self.include()).unwrap();
        render::parse(&text)
            .expect("include parses")
            .into_iter()
            .map(|p| p.name)
            .collect()
    }
}

/// The roster task running in the background.
struct Running {
    sightings: mpsc::Sender<Sighting>,
    msgs: mpsc::Sender<Msg>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(files: &Files, dry_run: bool) -> Running {
        Running::start_with(files, dry_run, |_| {})
    }

    /// Starts with the loaded config changed by `edit` first.
    fn start_with(files: &Files, dry_run: bool, edit: impl FnOnce(&mut Config)) -> Running {
        Running::start_full(files, dry_run, edit, None)
    }

    /// Starts counting what arrives in `flow`, as the daemon wires it.
    fn start_flow(files: &Files, flow: Flow) -> Running {
        Running::start_full(files, false, |_| {}, Some(flow))
    }

    fn start_full(
        files: &Files,
        dry_run: bool,
        edit: impl FnOnce(&mut Config),
        flow: Option<Flow>,
    ) -> Running {
        let mut config =
            Config::load_str(&config_text(files.dir.path(), dry_run), files.dir.path())
                .expect("config loads");
        edit(&mut config);
        let audit = AuditLog::open(&config.agent.audit_log).expect("audit log");
        let mut roster = Roster::new(Arc::new(config), Some(audit)).expect("roster starts");
        if let Some(flow) = flow {
            roster.follow_flow(flow);
        }
        let (sightings, srx) = mpsc::channel(4096);
        let (msgs, mrx) = mpsc::channel(64);
        let token = CancellationToken::new();
        let task = tokio::spawn(roster.run(srx, mrx, token.clone()));
        Running {
            sightings,
            msgs,
            token,
            task,
        }
    }

    async fn knock(&self, addr: &str) {
        let addr: IpAddr = addr.parse().unwrap();
        self.sightings
            .send(Sighting {
                addr,
                port: Some(40000),
                iface: None,
                via: Via::BirdLog,
                trust: Trust::Bird,
                at: SystemTime::now(),
            })
            .await
            .expect("roster alive");
    }

    async fn snapshot(&self) -> autopeer::roster::Snapshot {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.msgs
            .send(Msg::Snapshot(tx))
            .await
            .expect("roster alive");
        rx.await.expect("snapshot")
    }

    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("roster stops")
            .expect("roster did not panic");
    }
}

/// Polls `check` every 50 ms for up to 20 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < POLL_LIMIT {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {POLL_LIMIT:?} waiting for: {what}");
}

/// BIRD's protocol names, or empty when BIRD cannot be asked.
async fn bird_names(socket: &Path) -> Vec<String> {
    let Ok(mut c) = Connection::connect(socket, Duration::from_secs(5)).await else {
        return Vec::new();
    };
    c.protocols(false, None)
        .await
        .map(|ps| ps.into_iter().map(|p| p.name).collect())
        .unwrap_or_default()
}

fn clients(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("clients_"))
        .cloned()
        .collect();
    v.sort();
    v
}

fn reconfigurations(bird: &RealBird) -> usize {
    bird.log().matches("<INFO> Reconfiguring").count()
}

/// How often BIRD was sent exactly this command (`debug commands 2`).
fn commands(bird: &RealBird, cmd: &str) -> usize {
    bird.log().matches(&format!("<TRACE> CLI: {cmd}\n")).count()
}

#[tokio::test]
async fn burst_is_at_most_two_configures() {
    if !require_bird() {
        return;
    }
    let files = Files::new();
    let bird = files.start_bird();
    let roster = Running::start(&files, false);
    let n = 50;
    for i in 1..=n {
        roster.knock(&format!("10.99.0.{i}")).await;
    }
    eventually("all 50 peers in BIRD", || async {
        clients(&bird_names(&bird.ctl).await).len() == n
    })
    .await;
    // The first knock is applied at once (an idle roster does not wait);
    // those during that apply, or within `batch` of it, go into one more.
    let configures = commands(&bird, "configure");
    assert!(
        (1..=2).contains(&configures) && reconfigurations(&bird) == configures,
        "at most two configures for the burst; BIRD log:\n{}",
        bird.log()
    );
    assert_eq!(files.include_peers().len(), n);
    assert_eq!(files.audit().matches("adding neighbor 10.99.0.").count(), n);
    // Nothing else follows once the roster is idle.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(reconfigurations(&bird), configures, "{}", bird.log());
    roster.stop().await;
}

#[tokio::test]
async fn a_burst_still_on_its_way_is_one_configure() {
    if !require_bird() {
        return;
    }
    let files = Files::new();
    let bird = files.start_bird();
    let flow = Flow::default();
    let roster = Running::start_flow(&files, flow.clone());
    // A source in the middle of a read: 150 sightings in two slices 3 ms
    // apart (a file read in pieces, a journal entry at a time). The roster
    // takes the first at once but, told that more is coming, waits for the
    // rest (up to 20 ms) instead of applying the first slice alone, as it
    // did when it went by a 2 ms gap between sightings.
    let reading = flow.reading();
    let n = 150;
    for i in 0..n {
        if i == n / 2 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        flow.sent(1);
        // 10.99.0.100 and up: clear of the denied .66.
        roster.knock(&format!("10.99.0.{}", 100 + i)).await;
    }
    drop(reading);
    eventually("all 150 peers in BIRD", || async {
        clients(&bird_names(&bird.ctl).await).len() == n
    })
    .await;
    assert_eq!(
        commands(&bird, "configure"),
        1,
        "one configure for a burst the source still sends; BIRD log:\n{}",
        bird.log()
    );
    assert!(flow.idle(), "every sighting counted as arrived");
    roster.stop().await;
}

#[tokio::test]
async fn bird_down_at_first_nothing_lost_nothing_duplicated() {
    if !require_bird() {
        return;
    }
    let files = Files::new();
    let empty = files.include();
    let roster = Running::start(&files, false);
    let addrs = ["10.99.0.11", "10.99.0.12", "10.99.0.13"];
    for a in addrs {
        roster.knock(a).await;
    }
    // While BIRD is down the include is not written (apply connects first).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(files.include(), empty, "nothing written while BIRD is down");
    // They knock again while the roster backs off.
    for a in addrs {
        roster.knock(a).await;
    }
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let bird = files.start_bird();
    let want: Vec<String> = addrs
        .iter()
        .map(|a| format!("clients_{}", a.replace('.', "_")))
        .collect();
    eventually("the retried peers in BIRD", || async {
        clients(&bird_names(&bird.ctl).await) == want
    })
    .await;
    let mut in_include = files.include_peers();
    in_include.sort();
    assert_eq!(in_include, want, "each peer once in the include");
    for a in addrs {
        assert_eq!(
            files
                .audit()
                .matches(&format!("adding neighbor {a} to group clients"))
                .count(),
            1,
            "{}",
            files.audit()
        );
    }
    roster.stop().await;
}

#[tokio::test]
async fn refusals_are_audited_once() {
    // No BIRD needed: refusals never reach it.
    let files = Files::new();
    let roster = Running::start(&files, false);
    for _ in 0..20 {
        roster.knock("10.77.0.1").await; // no group
        roster.knock("10.99.0.66").await; // denied
    }
    // The channel is FIFO: once this admission is audited, all knocks above
    // have been decided.
    roster.knock("10.99.0.1").await;
    eventually("the sentinel admission", || async {
        files.audit().contains("adding neighbor 10.99.0.1 ")
    })
    .await;
    let audit = files.audit();
    assert_eq!(
        audit.matches("refusing neighbor 10.77.0.1:").count(),
        1,
        "{audit}"
    );
    assert_eq!(
        audit.matches("refusing neighbor 10.99.0.66:").count(),
        1,
        "{audit}"
    );
    assert!(audit.contains("10.99.0.66/32"), "deny entry named: {audit}");
    roster.stop().await;
}

#[tokio::test]
async fn a_flood_of_distinct_refusals_is_audited_within_a_budget() {
    // A forged flood in a shared syslog file: every address distinct, so
    // de-duplication alone would write one line each.
    let files = Files::new();
    let roster = Running::start(&files, false);
    for i in 0..500u32 {
        roster
            .knock(&format!("10.77.{}.{}", i / 250, i % 250 + 1))
            .await;
    }
    roster.knock("10.99.0.1").await;
    eventually("the sentinel admission", || async {
        files.audit().contains("adding neighbor 10.99.0.1 ")
    })
    .await;
    let audit = files.audit();
    let refusing = audit.matches("refusing neighbor 10.77.").count();
    assert_eq!(refusing, 60, "the budget is 60 audited refusals a minute");
    // The rest is counted, not lost (shown by `show sources`).
    let snap = roster.snapshot().await;
    assert_eq!(
        snap.refusals.values().sum::<u64>(),
        500,
        "{:?}",
        snap.refusals
    );
    roster.stop().await;
}

#[tokio::test]
async fn neighbor_configured_by_hand_is_dropped_from_the_roster() {
    if !require_bird() {
        return;
    }
    let files = Files::new();
    let bird = files.start_bird();
    let roster = Running::start(&files, false);
    roster.knock("10.99.0.5").await;
    roster.knock("10.99.0.6").await;
    eventually("both admitted peers in BIRD", || async {
        clients(&bird_names(&bird.ctl).await).len() == 2
    })
    .await;

    let static_file = files.path("peers/hand.conf");
    std::fs::write(
        &static_file,
        "# configured by hand\nprotocol bgp hand_5 from CLIENTS {\n  neighbor 10.99.0.5 internal;\n}\n",
    )
    .unwrap();
    roster.msgs.send(Msg::BirdConfChanged).await.unwrap();

    let line = format!(
        "removing neighbor 10.99.0.5 from group clients: now configured statically at {}:2",
        static_file.display()
    );
    eventually("the removal audit line", || async {
        files.audit().contains(&line)
    })
    .await;
    eventually(
        "BIRD holds hand_5 and only 10.99.0.6 from the roster",
        || async {
            let names = bird_names(&bird.ctl).await;
            names.contains(&"hand_5".to_string()) && clients(&names) == ["clients_10_99_0_6"]
        },
    )
    .await;
    assert_eq!(files.include_peers(), ["clients_10_99_0_6"]);
    assert_eq!(
        files.audit().matches("removing neighbor").count(),
        1,
        "{}",
        files.audit()
    );
    // The neighbor knocking again is now refused as static, not re-added.
    roster.knock("10.99.0.5").await;
    roster.knock("10.99.0.7").await;
    eventually("the next admission", || async {
        files.audit().contains("adding neighbor 10.99.0.7 ")
    })
    .await;
    assert_eq!(
        files.audit().matches("adding neighbor 10.99.0.5 ").count(),
        1,
        "{}",
        files.audit()
    );
    roster.stop().await;
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    if !require_bird() {
        return;
    }
    let files = Files::new();
    let bird = files.start_bird();
    let before_include = files.include();
    let before_reconf = reconfigurations(&bird);
    let roster = Running::start(&files, true);
    roster.knock("10.99.0.7").await;
    eventually("the dry-run audit line", || async {
        files.audit().contains(
            "adding neighbor 10.99.0.7 to group clients (via bird-log) [dry run: nothing changed]",
        )
    })
    .await;
    // Longer than the batch window: an apply would have happened by now.
    tokio::time::sleep(Duration::from_millis(800)).await;
    roster.stop().await;
    assert_eq!(files.include(), before_include);
    assert_eq!(reconfigurations(&bird), before_reconf, "{}", bird.log());
    assert!(clients(&bird_names(&bird.ctl).await).is_empty());

    // A dry run does not even create a missing include.
    std::fs::remove_file(files.path("autopeer.conf")).unwrap();
    let roster = Running::start(&files, true);
    roster.knock("10.99.0.8").await;
    eventually("the second dry-run line", || async {
        files.audit().contains("adding neighbor 10.99.0.8 ")
    })
    .await;
    roster.stop().await;
    assert!(!files.path("autopeer.conf").exists());
}

#[tokio::test]
async fn rejected_peer_is_restored_reported_and_not_retried() {
    if !require_bird() {
        return;
    }
    let files = Files::new();
    let bird = files.start_bird();
    let before = files.include();
    let roster = Running::start(&files, false);
    roster.knock("10.98.0.1").await;
    eventually("the rejection audit line", || async {
        files.audit().contains("rejected by BIRD: ")
    })
    .await;
    let audit = files.audit();
    let include = files.path("autopeer.conf");
    let line = audit
        .lines()
        .find(|l| l.contains("rejected by BIRD: "))
        .unwrap()
        .to_string();
    assert!(
        line.contains(&format!("{}:", include.display())),
        "BIRD's text names the owned include with its line: {line}"
    );
    assert!(line.ends_with("(peers: gone_10_98_0_1)"), "{line}");
    assert_eq!(files.include(), before, "include restored byte for byte");
    assert_eq!(reconfigurations(&bird), 0);

    // It knocks again: ignored while rejected. A good peer after it goes
    // through, and BIRD was asked to configure exactly twice (the refused
    // one and the good one).
    for _ in 0..5 {
        roster.knock("10.98.0.1").await;
    }
    roster.knock("10.99.0.30").await;
    eventually("the good peer in BIRD", || async {
        clients(&bird_names(&bird.ctl).await) == ["clients_10_99_0_30"]
    })
    .await;
    assert_eq!(commands(&bird, "configure"), 2, "{}", bird.log());
    assert_eq!(
        files.audit().matches("adding neighbor 10.98.0.1 ").count(),
        1
    );
    assert_eq!(files.audit().matches("rejected by BIRD").count(), 1);
    assert_eq!(files.include_peers(), ["clients_10_99_0_30"]);
    roster.stop().await;
}

#[tokio::test]
async fn name_taken_in_bird_conf_does_not_sink_the_batch() {
    if !require_bird() {
        return;
    }
    let files = Files::new();
    // bird.conf already has a protocol with the name 10.99.0.9 would get.
    std::fs::write(
        files.path("peers/hand.conf"),
        "protocol bgp clients_10_99_0_9 from CLIENTS {\n  neighbor 10.99.0.209 internal;\n}\n",
    )
    .unwrap();
    let bird = files.start_bird();
    let roster = Running::start(&files, false);
    roster.knock("10.99.0.9").await;
    roster.knock("10.99.0.10").await;
    eventually("the innocent peer of the same batch in BIRD", || async {
        bird_names(&bird.ctl)
            .await
            .contains(&"clients_10_99_0_10".to_string())
    })
    .await;
    assert_eq!(files.include_peers(), ["clients_10_99_0_10"]);
    let audit = files.audit();
    assert!(
        audit.contains(
            "refusing neighbor 10.99.0.9: protocol name clients_10_99_0_9 is already used in bird.conf"
        ),
        "the colliding peer is explained: {audit}"
    );
    assert!(!audit.contains("rejected by BIRD"), "{audit}");
    roster.stop().await;
}

#[tokio::test]
async fn broken_elsewhere_keeps_include_and_retries_once_fixed() {
    if !require_bird() {
        return;
    }
    let files = Files::new();
    let bird = files.start_bird();
    let broken = files.path("peers/zz_hand.conf");
    std::fs::write(
        &broken,
        "protocol bgp hand from CLIENTS {\n  neighbor 10.99.0.200 as;\n}\n",
    )
    .unwrap();
    let roster = Running::start(&files, false);
    roster.knock("10.99.0.21").await;
    eventually("the broken-elsewhere audit line", || async {
        files.audit().contains(&format!(
            "not applied: BIRD's config is broken outside autopeer's include: {}:2",
            broken.display()
        ))
    })
    .await;
    assert_eq!(
        files.include_peers(),
        ["clients_10_99_0_21"],
        "include stays"
    );
    // Let the roster retry (and back off) a few times.
    eventually("three tries", || async {
        commands(&bird, "configure") >= 3
    })
    .await;
    assert_eq!(
        files.audit().matches("not applied").count(),
        1,
        "reported once"
    );
    assert_eq!(reconfigurations(&bird), 0);

    // The operator fixes the file; the watcher tells the roster.
    std::fs::remove_file(&broken).unwrap();
    let fixed = Instant::now();
    roster.msgs.send(Msg::BirdConfChanged).await.unwrap();
    eventually("the peer in BIRD", || async {
        clients(&bird_names(&bird.ctl).await) == ["clients_10_99_0_21"]
    })
    .await;
    let took = fixed.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "bird.conf changed: retry at once, not at the next backoff ({took:?})"
    );
    roster.stop().await;
}

#[tokio::test]
async fn start_up_configures_a_roster_bird_has_not_loaded() {
    if !require_bird() {
        return;
    }
    // autopeer died between writing the include and `configure`: BIRD
    // runs the empty roster, the include holds a peer.
    let files = Files::new();
    let bird = files.start_bird();
    // BIRD answers a command only from its main loop, after it read its
    // config: the include written below is then surely not loaded yet.
    assert!(clients(&bird_names(&bird.ctl).await).is_empty());
    let addr: IpAddr = "10.99.0.40".parse().unwrap();
    let peer = render::Peer {
        name: render::peer_name("clients", addr, None),
        group: "clients".into(),
        template: "CLIENTS".into(),
        addr,
        iface: None,
        neighbor: Some(render::NeighborAs::Internal),
        admitted: "2026-11-23T06:55:02Z".into(),
        via: "bird-log".into(),
    };
    std::fs::write(
        files.path("autopeer.conf"),
        render::render(&[peer]).unwrap(),
    )
    .unwrap();
    assert!(clients(&bird_names(&bird.ctl).await).is_empty());
    let roster = Running::start(&files, false);
    eventually("the written peer loaded at start-up", || async {
        clients(&bird_names(&bird.ctl).await) == ["clients_10_99_0_40"]
    })
    .await;
    // It is in the roster: knocking again adds nothing.
    roster.knock("10.99.0.40").await;
    roster.knock("10.99.0.41").await;
    eventually("the next peer", || async {
        clients(&bird_names(&bird.ctl).await).len() == 2
    })
    .await;
    assert!(!files.audit().contains("adding neighbor 10.99.0.40 "));
    roster.stop().await;
}

#[tokio::test]
async fn bird_dying_mid_apply_is_retried_once_bird_is_back() {
    if !require_bird() {
        return;
    }
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let files = Files::new();
    let ctl = files.path("bird.ctl");
    // A BIRD that dies on `show protocols`, the first command after the
    // write.
    let listener = tokio::net::UnixListener::bind(&ctl).unwrap();
    let fake = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"0001 BIRD 2.0.12 ready.\n").await.unwrap();
        // The first command, unanswered.
        let seen: Vec<String> = lines.next_line().await.ok().flatten().into_iter().collect();
        drop(w);
        seen // dropping the stream and the listener: BIRD is gone
    });
    let roster = Running::start(&files, false);
    roster.knock("10.99.0.50").await;
    let seen = tokio::time::timeout(POLL_LIMIT, fake)
        .await
        .expect("roster talked to the fake")
        .unwrap();
    assert_eq!(seen, ["show protocols"]);
    // The include was written; BIRD never loaded it.
    assert_eq!(files.include_peers(), ["clients_10_99_0_50"]);
    std::fs::remove_file(&ctl).unwrap();
    // BIRD comes back (it reads the include at start, as a restarted BIRD
    // would); the roster's retry must converge, not duplicate.
    let bird = files.start_bird();
    roster.knock("10.99.0.51").await;
    eventually("both peers in BIRD", || async {
        clients(&bird_names(&bird.ctl).await) == ["clients_10_99_0_50", "clients_10_99_0_51"]
    })
    .await;
    let mut peers = files.include_peers();
    peers.sort();
    assert_eq!(peers, ["clients_10_99_0_50", "clients_10_99_0_51"]);
    assert_eq!(files.audit().matches("adding neighbor").count(), 2);
    roster.stop().await;
}

/// A copy of group `clients` named `name` with `prefix`, and `template`.
fn extra_group(config: &mut Config, name: &str, template: &str, prefix: &str) {
    let mut g = config.groups[0].clone();
    g.name = name.to_string();
    g.template = template.to_string();
    g.prefixes = vec![prefix.parse().unwrap()];
    g.deny.clear();
    config.groups.push(g);
}

// See: issue 10, finding 5: a peer render cannot write (here a group named
// like a BIRD keyword, which the config now refuses, put in behind its
// back) was admitted, then render failed and the whole batch was dropped,
// other groups' peers included, on every knock.
#[tokio::test]
async fn a_bad_peer_never_sinks_its_batch() {
    if !require_bird() {
        return;
    }
    let files = Files::new();
    let bird = files.start_bird();
    let roster = Running::start_with(&files, false, |c| {
        extra_group(c, "peer", "CLIENTS", "10.97.0.0/24")
    });
    roster.knock("10.97.0.5").await;
    roster.knock("10.99.0.10").await;
    eventually("the innocent peer of the same batch in BIRD", || async {
        clients(&bird_names(&bird.ctl).await) == ["clients_10_99_0_10"]
    })
    .await;
    assert_eq!(files.include_peers(), ["clients_10_99_0_10"]);
    // It knocks again: refused again (audited once), the include stays.
    roster.knock("10.97.0.5").await;
    roster.knock("10.99.0.11").await;
    eventually("the next innocent peer in BIRD", || async {
        clients(&bird_names(&bird.ctl).await) == ["clients_10_99_0_10", "clients_10_99_0_11"]
    })
    .await;
    let audit = files.audit();
    let refusals: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("refusing neighbor 10.97.0.5"))
        .collect();
    assert_eq!(refusals.len(), 1, "{audit}");
    assert!(
        refusals[0].contains(
            "cannot be written into BIRD's config: group \"peer\" is not a usable BIRD symbol"
        ),
        "the reason names the group: {audit}"
    );
    assert!(!audit.contains("adding neighbor 10.97.0.5"), "{audit}");
    roster.stop().await;
}

// See: issue 10, finding 7: two neighbors with one protocol name: the
// second silently replaced the first. Within a group names are injective
// now; across groups `a_1` + 2001:db8::1 and `a` + 1:2001:db8::1 still
// spell one name, and the second is refused, saying which neighbor has it.
#[tokio::test]
async fn a_taken_protocol_name_is_refused_not_replaced() {
    if !require_bird() {
        return;
    }
    let files = Files::new();
    let bird = files.start_bird();
    let roster = Running::start_with(&files, false, |c| {
        extra_group(c, "a_1", "CLIENTS6", "2001:db8::/32");
        extra_group(c, "a", "CLIENTS6", "1::/16");
    });
    roster.knock("2001:db8::1").await;
    roster.knock("1:2001:db8::1").await;
    eventually("the first neighbor in BIRD", || async {
        bird_names(&bird.ctl)
            .await
            .contains(&"a_1_2001_db8__1".to_string())
    })
    .await;
    assert_eq!(files.include_peers(), ["a_1_2001_db8__1"]);
    let text = String::from_utf8(files.include()).unwrap();
    assert!(text.contains("neighbor 2001:db8::1 internal;"), "{text}");
    let audit = files.audit();
    assert!(
        audit.contains(
            "refusing neighbor 1:2001:db8::1: protocol name a_1_2001_db8__1 is already taken by neighbor 2001:db8::1"
        ),
        "{audit}"
    );
    roster.stop().await;
}
