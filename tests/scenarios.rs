//! Scenario tests of the roster's pure core (`roster::core`): each is a list
//! of inputs at given times (sightings, operator commands, BIRD's protocol
//! table, apply results, restarts) and the events, deadlines and apply jobs
//! they must give. No BIRD, no root, no clock: milliseconds. The real-BIRD
//! tests (tests/roster.rs, tests/faults.rs) stay as end-to-end proof.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use autopeer::apply::{Applied, ApplyError};
use autopeer::bird::client::ClientError;
use autopeer::bird::conf::scan_text;
use autopeer::bird::protocols::ProtoState;
use autopeer::bird::render::{self, Dialect};
use autopeer::config::Config;
use autopeer::event::Event;
use autopeer::roster::core::{Core, Done, Job, Now};
use autopeer::sources::{Sighting, Trust, Via};

const BIRD: &str = "router id 10.88.0.1;\ntemplate bgp CLIENTS { local 10.88.0.1 as 65000; }\n";

/// A config's `[bird]` and the start of its `[agent]`: nothing real.
const HEAD: &str = r#"[bird]
socket = "/nonexistent/bird.ctl"
config = "/nonexistent/bird.conf"
include = "/nonexistent/autopeer.conf"
keyring = "off"
[agent]
socket = "/nonexistent/autopeer.ctl"
"#;

fn config(batch: &str, expire: Option<&str>) -> Arc<Config> {
    let expire = expire
        .map(|e| format!("expire = \"{e}\"\n"))
        .unwrap_or_default();
    config_with(batch, "", &expire)
}

/// The scenarios' config with extra `[sources]` and `[[group]]` lines.
fn config_with(batch: &str, sources: &str, group: &str) -> Arc<Config> {
    // "": no `batch` key, the default.
    let batch = if batch.is_empty() {
        String::new()
    } else {
        format!("batch = \"{batch}\"")
    };
    let text = format!(
        r#"{HEAD}{batch}
[sources]
logs = []
{sources}
[[group]]
name = "clients"
template = "CLIENTS"
prefixes = ["10.88.0.0/24"]
neighbor = "internal"
rate = "unlimited"
{group}"#
    );
    Arc::new(Config::load_str(&text, Path::new("/nonexistent")).unwrap())
}

/// A roster core and a clock that only moves when told.
struct Scene {
    core: Core,
    now: Now,
}

impl Scene {
    fn new(config: Arc<Config>) -> Scene {
        Scene::restart(config, String::new(), None, epoch())
    }

    /// A core started from an include's text and a state file's text.
    fn restart(config: Arc<Config>, include: String, state: Option<&str>, now: Now) -> Scene {
        let include = if include.is_empty() {
            render::render(&[]).unwrap()
        } else {
            include
        };
        let peers = render::parse(&include).unwrap();
        let birdconf = scan_text(BIRD, Path::new("bird.conf")).unwrap();
        Scene {
            core: Core::new(config, birdconf, include, peers, state, now),
            now,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    /// A sighting in BIRD's own log.
    fn knock(&mut self, addr: &str) -> Result<String, String> {
        self.sight(addr, Via::BirdLog, Trust::Bird)
    }

    /// An operator's `add`.
    fn add(&mut self, addr: &str) -> Result<String, String> {
        self.sight(addr, Via::Operator, Trust::Operator)
    }

    /// The peer's name, or the refusal's kind.
    fn sight(&mut self, addr: &str, via: Via, trust: Trust) -> Result<String, String> {
        let s = Sighting {
            addr: addr.parse().unwrap(),
            port: None,
            iface: None,
            via,
            trust,
            at: self.now.wall,
        };
        self.core
            .admit(&s, None, None, &[], self.now)
            .map(|a| a.name)
            .map_err(|r| r.kind().to_string())
    }

    /// The audit lines decided since the last call.
    fn lines(&mut self) -> Vec<String> {
        self.core
            .take_events()
            .iter()
            .filter_map(|e| e.audit_text())
            .collect()
    }

    /// How long until the next apply is due (`None`: none due).
    fn due_in(&self) -> Option<Duration> {
        self.core
            .apply_due()
            .map(|d| d.saturating_duration_since(self.now.mono))
    }

    fn begin(&mut self) -> Option<Job> {
        self.core.begin_apply(self.now)
    }

    /// Finishes `job` as BIRD answered `result` (the include as planned
    /// for BIRD 2).
    fn finish(&mut self, job: Job, result: Result<Applied, ApplyError>) {
        let plan = job.plan(&Dialect::Bird2);
        self.core.finish_apply(
            Done {
                plan,
                result: Some(result),
                millis: 1,
            },
            self.now,
        );
    }

    fn names(&self) -> Vec<String> {
        self.core.peers().map(|p| p.name.clone()).collect()
    }

    /// The include the last successful job wrote.
    fn include(&self) -> String {
        let peers: Vec<_> = self.core.peers().collect();
        render::render(&peers).unwrap()
    }
}

fn epoch() -> Now {
    Now {
        mono: Instant::now(),
        wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    }
}

fn ok() -> Result<Applied, ApplyError> {
    Ok(Applied::default())
}

fn unavailable() -> Result<Applied, ApplyError> {
    Err(ApplyError::Unavailable {
        written: false,
        source: ClientError::Closed {
            command: "configure".into(),
        },
    })
}

use common::protocol_row as row;

const S: Duration = Duration::from_secs(1);

#[test]
fn group_commit_applies_at_once_and_coalesces_those_during_an_apply() {
    // `batch` is the least time between two applies' starts, not a wait.
    let mut sc = Scene::new(config("2s", None));
    assert_eq!(sc.knock("10.88.0.2").unwrap(), "clients_10_88_0_2");
    // Idle: due at once.
    assert_eq!(sc.due_in(), Some(Duration::ZERO));
    let job = sc.begin().expect("due");
    assert_eq!(job.new, ["clients_10_88_0_2"]);
    assert_eq!(
        sc.lines(),
        ["adding neighbor 10.88.0.2 to group clients (via bird-log)"]
    );
    // At most one apply in flight: sightings meanwhile wait for the next.
    sc.knock("10.88.0.3").unwrap();
    sc.advance(S / 2);
    sc.knock("10.88.0.4").unwrap();
    assert_eq!(sc.due_in(), None, "nothing starts while one is in flight");
    assert!(sc.begin().is_none());
    // A knock of a peer in flight is "already a peer", not a second one.
    assert_eq!(sc.knock("10.88.0.2").unwrap(), "clients_10_88_0_2");
    let snap = sc.core.snapshot(sc.now);
    assert!(snap.dirty);
    assert_eq!(snap.peers.iter().filter(|p| p.pending).count(), 3);
    sc.finish(job, ok());
    assert_eq!(sc.names(), ["clients_10_88_0_2"]);
    assert!(sc
        .core
        .take_events()
        .iter()
        .any(|e| matches!(e, Event::Applied { added: 1, .. })));
    // The next one keeps `batch` from the last start, and takes both.
    assert_eq!(sc.due_in(), Some(S + S / 2));
    sc.advance(S + S / 2);
    let job = sc.begin().unwrap();
    assert_eq!(job.new, ["clients_10_88_0_3", "clients_10_88_0_4"]);
    assert_eq!(job.peers.len(), 3);
    sc.finish(job, ok());
    assert_eq!(sc.names().len(), 3);
    assert!(!sc.core.dirty());
    assert_eq!(sc.due_in(), None);
    assert_eq!(sc.core.configured(), 2);
    // Idle for longer than `batch`: the next knock goes at once again.
    sc.advance(3 * S);
    sc.knock("10.88.0.5").unwrap();
    assert_eq!(sc.due_in(), Some(Duration::ZERO));
}

#[test]
fn default_batch_is_no_wait() {
    // No `batch` key: the default.
    let mut sc = Scene::new(config("", None));
    sc.knock("10.88.0.2").unwrap();
    assert_eq!(sc.due_in(), Some(Duration::ZERO));
}

#[test]
fn backoff_doubles_to_a_minute_and_loses_nothing() {
    let mut sc = Scene::new(config("0s", None));
    sc.knock("10.88.0.2").unwrap();
    sc.lines();
    let mut waits = Vec::new();
    for _ in 0..8 {
        let job = sc.begin().expect("due");
        sc.finish(job, unavailable());
        let events = sc.core.take_events();
        let wait = sc.due_in().unwrap();
        assert!(
            matches!(events[..], [Event::BirdUnavailable { retry_secs, .. }] if retry_secs == wait.as_secs()),
            "{events:?}"
        );
        waits.push(wait.as_secs());
        // The peer is pending again, not lost.
        assert_eq!(sc.core.pending(), 1);
        sc.advance(wait);
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
    let job = sc.begin().unwrap();
    sc.finish(job, ok());
    assert_eq!(sc.names(), ["clients_10_88_0_2"]);
    // Success resets the backoff.
    sc.knock("10.88.0.3").unwrap();
    let job = sc.begin().unwrap();
    sc.finish(job, unavailable());
    assert_eq!(sc.due_in(), Some(S));
    // A knock during the back-off waits for the retry: a stream of knocks
    // must not retry a dead BIRD once per knock.
    sc.advance(S / 2);
    sc.knock("10.88.0.4").unwrap();
    assert_eq!(sc.due_in(), Some(S / 2));
    assert!(sc.begin().is_none());
    sc.advance(S / 2);
    let job = sc.begin().unwrap();
    assert_eq!(job.new, ["clients_10_88_0_3", "clients_10_88_0_4"]);
    sc.finish(job, ok());
    sc.knock("10.88.0.5").unwrap();
    let job = sc.begin().unwrap();
    sc.finish(job, unavailable());
    assert_eq!(sc.due_in(), Some(S));
}

#[test]
fn rejection_drops_the_batch_and_quiets_it_rollback_keeps_the_roster() {
    let mut sc = Scene::new(config("0s", None));
    sc.knock("10.88.0.2").unwrap();
    let job = sc.begin().unwrap();
    sc.finish(job, ok());
    let before = sc.include();
    sc.knock("10.88.0.3").unwrap();
    sc.knock("10.88.0.4").unwrap();
    sc.lines();
    let job = sc.begin().unwrap();
    sc.finish(
        job,
        Err(ApplyError::Rejected {
            text: "autopeer.conf:9:1 syntax error".into(),
        }),
    );
    let lines = sc.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("clients_10_88_0_3"), "{lines:?}");
    // BIRD restored the old include: the roster is what it was.
    assert_eq!(sc.names(), ["clients_10_88_0_2"]);
    assert_eq!(sc.include(), before);
    assert!(!sc.core.dirty());
    // Their knocks are ignored for a while, counted, not audited...
    assert_eq!(sc.knock("10.88.0.3"), Err("recently_removed".into()));
    assert!(sc.lines().is_empty());
    // ...but an operator's add overrides, and after ten minutes they may.
    assert_eq!(sc.add("10.88.0.3").unwrap(), "clients_10_88_0_3");
    sc.advance(601 * S);
    assert_eq!(sc.knock("10.88.0.4").unwrap(), "clients_10_88_0_4");
    let snap = sc.core.snapshot(sc.now);
    assert_eq!(snap.refusals.get("recently_removed"), Some(&1));
}

#[test]
fn expiry_removes_due_peers_in_one_apply_only_with_a_fresh_poll() {
    let cfg = config("0s", Some("1h"));
    let mut sc = Scene::new(Arc::clone(&cfg));
    for a in ["10.88.0.2", "10.88.0.3", "10.88.0.4"] {
        sc.knock(a).unwrap();
    }
    let job = sc.begin().unwrap();
    sc.finish(job, ok());
    sc.lines();
    let rows = |_: &Scene| {
        vec![
            row("clients_10_88_0_2", ProtoState::Start, "Active"),
            row("clients_10_88_0_3", ProtoState::Up, "Established"),
            row("clients_10_88_0_4", ProtoState::Start, "Connect"),
        ]
    };
    sc.core.observe_states(&rows(&sc), sc.now);
    // Not due before an hour.
    sc.advance(59 * 60 * S);
    sc.core.observe_states(&rows(&sc), sc.now);
    sc.core.tick(sc.now);
    assert!(sc.lines().is_empty());
    // An hour on, but the last poll is stale: BIRD could not be asked.
    sc.advance(10 * 60 * S);
    sc.core.tick(sc.now);
    assert!(sc.lines().is_empty(), "no expiry without a fresh poll");
    sc.core.observe_states(&rows(&sc), sc.now);
    sc.core.tick(sc.now);
    let lines = sc.lines();
    assert_eq!(
        lines,
        [
            "removing neighbor 10.88.0.2 from group clients: not Established for 1h",
            "removing neighbor 10.88.0.4 from group clients: not Established for 1h",
        ]
    );
    // Both in one apply, due at once; the Established one stays.
    assert_eq!(sc.due_in(), Some(Duration::ZERO));
    let job = sc.begin().unwrap();
    assert_eq!(job.peers.len(), 1);
    sc.finish(job, ok());
    assert_eq!(sc.names(), ["clients_10_88_0_3"]);
    assert!(sc
        .core
        .take_events()
        .iter()
        .any(|e| matches!(e, Event::Applied { removed: 2, .. })));
}

#[test]
fn operator_edits_removals_and_hand_configured_neighbors() {
    let mut sc = Scene::new(config("0s", None));
    for a in ["10.88.0.2", "10.88.0.3", "10.88.0.4"] {
        sc.knock(a).unwrap();
    }
    let job = sc.begin().unwrap();
    sc.finish(job, ok());
    sc.lines();
    // `autopeer remove` by address and by name.
    assert_eq!(
        sc.core.remove("10.88.0.2", sc.now).unwrap(),
        ["clients_10_88_0_2"]
    );
    assert!(sc.core.remove("10.88.0.99", sc.now).is_err());
    assert_eq!(
        sc.lines(),
        ["removing neighbor 10.88.0.2 from group clients: removed by operator"]
    );
    let job = sc.begin().unwrap();
    sc.finish(job, ok());
    // An operator deletes a block from the include by hand.
    let peers: Vec<_> = sc
        .core
        .peers()
        .filter(|p| p.name != "clients_10_88_0_3")
        .collect();
    sc.core
        .include_read(render::render(&peers).unwrap(), sc.now);
    assert_eq!(
        sc.lines(),
        ["removing neighbor 10.88.0.3 from group clients: deleted from the include by hand"]
    );
    assert_eq!(sc.names(), ["clients_10_88_0_4"]);
    // Reading back what autopeer itself wrote changes nothing.
    sc.core.include_read(sc.include(), sc.now);
    assert!(sc.lines().is_empty());
    // The operator configures 10.88.0.4 by hand in bird.conf.
    let bc = scan_text(
        &format!("{BIRD}protocol bgp mine from CLIENTS {{ neighbor 10.88.0.4 internal; }}\n"),
        Path::new("bird.conf"),
    )
    .unwrap();
    sc.core.rescanned(bc);
    sc.core.after_rescan(sc.now);
    assert_eq!(
        sc.lines(),
        ["removing neighbor 10.88.0.4 from group clients: now configured statically at bird.conf:3"]
    );
    assert!(sc.names().is_empty());
    // And autopeer no longer admits it.
    assert_eq!(sc.knock("10.88.0.4"), Err("static".into()));
}

#[test]
fn restart_recovers_expiry_clocks_from_the_state_file_or_restarts_them() {
    let cfg = config("0s", Some("1h"));
    let mut sc = Scene::new(Arc::clone(&cfg));
    sc.knock("10.88.0.2").unwrap();
    let job = sc.begin().unwrap();
    sc.finish(job, ok());
    sc.core.observe_states(
        &[row("clients_10_88_0_2", ProtoState::Up, "Established")],
        sc.now,
    );
    sc.advance(10 * 60 * S);
    sc.core.observe_states(
        &[row("clients_10_88_0_2", ProtoState::Start, "Active")],
        sc.now,
    );
    let down_at = sc.now.wall;
    assert!(sc.core.state_due().is_some(), "a persisted fact changed");
    let state = sc.core.take_state().unwrap();
    assert!(state.contains("down_since"), "{state}");
    let include = sc.include();

    // Restart 30 minutes later with the state file: the clock runs on
    // from when the session went down.
    let later = sc.now.after(30 * 60 * S);
    let sc2 = Scene::restart(Arc::clone(&cfg), include.clone(), Some(&state), later);
    let snap = sc2.core.snapshot(later);
    assert_eq!(snap.peers[0].expires, Some(down_at + 3600 * S));
    // Without it, the clock restarts at the restart.
    let sc3 = Scene::restart(Arc::clone(&cfg), include.clone(), None, later);
    assert_eq!(
        sc3.core.snapshot(later).peers[0].expires,
        Some(later.wall + 3600 * S)
    );
    // An unreadable one likewise.
    let sc4 = Scene::restart(Arc::clone(&cfg), include, Some("not = [toml"), later);
    assert_eq!(
        sc4.core.snapshot(later).peers[0].expires,
        Some(later.wall + 3600 * S)
    );

    // A roster peer BIRD does not have (autopeer died between the write
    // and `configure`): configured again at once.
    let mut sc5 = sc2;
    assert_eq!(sc5.due_in(), None);
    sc5.core.missing_from_bird(sc5.now);
    assert_eq!(sc5.due_in(), Some(Duration::ZERO));
    let job = sc5.begin().unwrap();
    assert!(job.new.is_empty());
    assert_eq!(job.peers.len(), 1);
}

#[test]
fn a_peer_the_include_cannot_hold_is_set_aside_alone() {
    let mut sc = Scene::new(config("0s", None));
    sc.knock("10.88.0.2").unwrap();
    sc.knock("10.88.0.3").unwrap();
    sc.lines();
    let job = sc.begin().unwrap();
    // BIRD 1.6 cannot say `neighbor ... internal` without the template's
    // `local as`: with no local AS known, every new peer is set aside.
    let plan = job.plan(&Dialect::Bird1 {
        local_as: Default::default(),
    });
    assert_eq!(plan.set_aside.len(), 2);
    let addr: IpAddr = "10.88.0.2".parse().unwrap();
    sc.core.finish_apply(
        Done {
            plan,
            result: Some(ok()),
            millis: 1,
        },
        sc.now,
    );
    let lines = sc.lines();
    assert!(
        lines[0].starts_with(&format!(
            "refusing neighbor {addr}: cannot be written into BIRD's config:"
        )),
        "{lines:?}"
    );
    assert!(sc.names().is_empty());
    assert_eq!(sc.knock("10.88.0.2"), Err("recently_removed".into()));
}

/// A spoke registration (nhrpd's authorize-binding, as the NHRP server
/// hands it to the roster).
fn register(sc: &mut Scene, addr: &str) -> Result<String, String> {
    sc.sight(addr, Via::Nhrp, Trust::Nhrp)
}

fn bound(addrs: &[&str]) -> Result<std::collections::BTreeSet<IpAddr>, String> {
    Ok(addrs.iter().map(|a| a.parse().unwrap()).collect())
}

#[test]
fn departure_removes_spokes_gone_from_nhrpds_cache_and_readmits_them() {
    let cfg = config_with(
        "0s",
        "nhrp_vty = \"/nonexistent/nhrpd.vty\"",
        "depart = \"30s\"\nexpire = \"7d\"",
    );
    let mut sc = Scene::new(cfg);
    for a in ["10.88.0.2", "10.88.0.3", "10.88.0.4"] {
        register(&mut sc, a).unwrap();
    }
    let job = sc.begin().unwrap();
    sc.finish(job, ok());
    sc.lines();
    let rows = || {
        vec![
            row("clients_10_88_0_2", ProtoState::Start, "Active"),
            row("clients_10_88_0_3", ProtoState::Up, "Established"),
            row("clients_10_88_0_4", ProtoState::Start, "Active"),
        ]
    };
    sc.core.observe_states(&rows(), sc.now);
    // 10.88.0.4 keeps its binding; .2 and .3 have none from now on.
    sc.core.observe_nhrp(bound(&["10.88.0.4"]), sc.now);
    sc.advance(29 * S);
    sc.core.observe_states(&rows(), sc.now);
    sc.core.observe_nhrp(bound(&["10.88.0.4"]), sc.now);
    assert!(sc.lines().is_empty(), "not before depart");
    assert_eq!(sc.due_in(), None);
    sc.advance(S);
    sc.core.observe_nhrp(bound(&["10.88.0.4"]), sc.now);
    // .3's session is up: it has not left, whatever the cache says.
    assert_eq!(
        sc.lines(),
        ["removing neighbor 10.88.0.2 from group clients: departed: no NHRP binding in nhrpd's cache for 30s"]
    );
    assert_eq!(
        sc.due_in(),
        Some(Duration::ZERO),
        "removed at once, not at expiry"
    );
    let job = sc.begin().unwrap();
    assert_eq!(job.peers.len(), 2);
    sc.finish(job, ok());
    assert_eq!(sc.names(), ["clients_10_88_0_3", "clients_10_88_0_4"]);
    // The spoke registers again: nhrpd asks, the roster admits it (a
    // departure does not quiet the address as an operator's removal does).
    assert_eq!(register(&mut sc, "10.88.0.2").unwrap(), "clients_10_88_0_2");
    assert_eq!(
        sc.lines(),
        ["adding neighbor 10.88.0.2 to group clients (via nhrp)"]
    );
    let job = sc.begin().unwrap();
    sc.finish(job, ok());
    sc.lines();
    sc.core.observe_states(&rows(), sc.now);

    // A cache that cannot be read departs no one and restarts the clocks:
    // .4 absent for 20 s, then nhrpd down (restarting), then absent again.
    sc.core.observe_nhrp(bound(&["10.88.0.2"]), sc.now);
    sc.advance(20 * S);
    sc.core.observe_nhrp(Err("cannot connect".into()), sc.now);
    sc.advance(15 * S);
    sc.core.observe_states(&rows(), sc.now);
    sc.core.observe_nhrp(bound(&["10.88.0.2"]), sc.now);
    assert!(sc.lines().is_empty(), "clock restarted by the failed read");
    sc.advance(30 * S);
    sc.core.observe_states(&rows(), sc.now);
    sc.core.observe_nhrp(bound(&["10.88.0.2"]), sc.now);
    assert_eq!(
        sc.lines(),
        ["removing neighbor 10.88.0.4 from group clients: departed: no NHRP binding in nhrpd's cache for 30s"]
    );
    let job = sc.begin().unwrap();
    sc.finish(job, ok());

    // Without a fresh poll of BIRD (its state unknown) no one departs.
    sc.advance(10 * 60 * S);
    sc.core.observe_nhrp(bound(&[]), sc.now);
    sc.advance(60 * S);
    sc.core.observe_nhrp(bound(&[]), sc.now);
    assert!(sc.lines().is_empty(), "no departure on a stale BIRD poll");
}

#[test]
fn departure_leaves_groups_without_depart_alone_and_dry_run_removes_nothing() {
    let cfg = config_with("0s", "nhrp_vty = \"/nonexistent/nhrpd.vty\"", "");
    let mut sc = Scene::new(cfg);
    register(&mut sc, "10.88.0.2").unwrap();
    let job = sc.begin().unwrap();
    sc.finish(job, ok());
    sc.lines();
    let rows = vec![row("clients_10_88_0_2", ProtoState::Start, "Active")];
    for _ in 0..3 {
        sc.core.observe_states(&rows, sc.now);
        sc.core.observe_nhrp(bound(&[]), sc.now);
        sc.advance(3600 * S);
    }
    assert!(sc.lines().is_empty());
    assert_eq!(sc.names(), ["clients_10_88_0_2"]);

    let cfg = config_with(
        "0s",
        "nhrp_vty = \"/nonexistent/nhrpd.vty\"",
        "depart = \"1s\"",
    );
    let mut cfg = (*cfg).clone();
    cfg.agent.dry_run = true;
    let include = sc.include();
    let mut sc = Scene::restart(Arc::new(cfg), include, None, sc.now);
    for _ in 0..3 {
        sc.core.observe_states(&rows, sc.now);
        sc.core.observe_nhrp(bound(&[]), sc.now);
        sc.advance(2 * S);
    }
    assert!(sc.lines().is_empty());
    assert_eq!(sc.due_in(), None);
    assert_eq!(sc.names(), ["clients_10_88_0_2"]);
}

/// A group of link-local neighbors on `iface`.
fn link_local_config(iface: &str) -> Arc<Config> {
    let text = format!(
        r#"{HEAD}[sources]
logs = []
[[group]]
name = "ll"
template = "CLIENTS"
prefixes = ["fe80::/10"]
interface = "{iface}"
neighbor = "internal"
rate = "unlimited"
"#
    );
    Arc::new(Config::load_str(&text, Path::new("/nonexistent")).unwrap())
}

/// A BIRD log line's sighting of `addr` on `iface`: the peer's name, or
/// the refusal's kind.
fn sight_on(sc: &mut Scene, addr: &str, iface: &str) -> Result<String, String> {
    let s = Sighting {
        addr: addr.parse().unwrap(),
        port: None,
        iface: Some(iface.to_string()),
        via: Via::BirdLog,
        trust: Trust::Bird,
        at: sc.now.wall,
    };
    sc.core
        .admit(&s, None, None, &[], sc.now)
        .map(|a| a.name)
        .map_err(|r| r.kind().to_string())
}

/// `fe80::1%eth1` and `fe80::1%eth2` are two neighbors (a link-local
/// address means nothing without its interface, and BIRD's include says
/// `neighbor fe80::1%eth1`): a peer on eth1, left in the include after the
/// group moved to eth2, neither makes its namesake on eth2 "already a
/// peer", nor is removed, quieted or displaced as if it were that one.
#[test]
fn a_link_local_address_is_one_neighbor_per_interface() {
    let mut sc = Scene::new(link_local_config("eth1"));
    assert_eq!(
        sight_on(&mut sc, "fe80::1", "eth1"),
        Ok("ll_fe80__1_if_eth1".into())
    );
    let job = sc.begin().unwrap();
    sc.finish(job, ok());
    sc.core.observe_states(
        &[row("ll_fe80__1_if_eth1", ProtoState::Up, "Established")],
        sc.now,
    );
    let include = sc.include();
    assert!(include.contains("neighbor fe80::1%eth1"), "{include}");
    let state = sc.core.take_state().unwrap();

    // The group moves to eth2; the include and state file still hold the
    // eth1 peer, with its interface.
    let eth2 = link_local_config("eth2");
    let later = sc.now.after(60 * S);
    let mut sc2 = Scene::restart(Arc::clone(&eth2), include.clone(), Some(&state), later);
    let ifaces: Vec<_> = sc2.core.peers().map(|p| p.iface.clone()).collect();
    assert_eq!(ifaces, [Some("eth1".to_string())]);
    assert!(sc2.core.snapshot(later).peers[0]
        .runtime
        .last_established
        .is_some());
    // The same address on eth2 is a new neighbor, not the eth1 peer.
    let s = Sighting {
        addr: "fe80::1".parse().unwrap(),
        port: None,
        iface: Some("eth2".into()),
        via: Via::BirdLog,
        trust: Trust::Bird,
        at: later.wall,
    };
    let first = sc2.core.admit(&s, None, None, &[], later).unwrap();
    assert_eq!(
        (first.name.as_str(), first.already),
        ("ll_fe80__1_if_eth2", false)
    );
    // Seen again on eth2: that one is already a peer.
    let again = sc2.core.admit(&s, None, None, &[], later).unwrap();
    assert_eq!(
        (again.name.as_str(), again.already),
        ("ll_fe80__1_if_eth2", true)
    );
    assert_eq!(sc2.core.snapshot(later).groups[0].peers, 2);
    // Removing one by address and interface leaves the other.
    assert_eq!(
        sc2.core.remove("fe80::1%eth2", later).unwrap(),
        ["ll_fe80__1_if_eth2"]
    );
    assert_eq!(sc2.names(), ["ll_fe80__1_if_eth1"]);
    // Only the removed one is quieted.
    let mut sc3 = Scene::restart(Arc::clone(&eth2), include, None, later);
    assert_eq!(
        sc3.core.remove("fe80::1%eth1", later).unwrap(),
        ["ll_fe80__1_if_eth1"]
    );
    assert_eq!(
        sight_on(&mut sc3, "fe80::1", "eth2"),
        Ok("ll_fe80__1_if_eth2".into())
    );
    let job = sc3.begin().unwrap();
    sc3.finish(job, ok());
    let include = sc3.include();
    assert!(include.contains("neighbor fe80::1%eth2"), "{include}");
    assert!(!include.contains("%eth1"), "{include}");
    sc3.lines();
    // A neighbor configured by hand on another interface is another
    // neighbor: autopeer's peer on eth2 stays.
    let bc = scan_text(
        &format!("{BIRD}protocol bgp mine from CLIENTS {{ neighbor fe80::1%eth9 internal; }}\n"),
        Path::new("bird.conf"),
    )
    .unwrap();
    assert_eq!(bc.neighbors[0].iface.as_deref(), Some("eth9"));
    sc3.core.rescanned(bc);
    sc3.core.after_rescan(sc3.now);
    assert_eq!(sc3.lines(), Vec::<String>::new());
    assert_eq!(sc3.names(), ["ll_fe80__1_if_eth2"]);
}
