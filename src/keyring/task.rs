//! The daemon's keyring task: the one owner of [`Keyring`], which keeps
//! BIRD's BGP listeners keyed for the groups that have a password.
//!
//! ```text
//!   roster --watch<KeyInputs>--> | keyring | --Msg::KeyringState, Msg::Emit--> roster
//!   (config, bird.conf scan,     |  (1x)   | --pidfd_getfd + setsockopt--> BIRD's listeners
//!    roster peers, configures)   |         |
//!   tick (every 1 s) ----------> |         |
//! ```
//!
//! Each tick is cheap: the pinned BIRD process ([`Bird`]) still holds its
//! control socket, and its listener inodes (from /proc) are the ones keyed. A full [`Keyring::sync`]
//! runs when those differ (BIRD restarted or re-created its listener, fact
//! 8), when the roster publishes new inputs (bird.conf rescan, reload, a
//! successful `configure`), and every [`FULL_SYNC`] to restore a host-length
//! key BIRD deleted with a protocol. All /proc and socket work runs in
//! `spawn_blocking`. The task never blocks the roster: it reads a watch
//! channel and sends the roster only `try_send`s.
//!
//! Every sync also deletes prefix keys the listener holds that the plan
//! does not want and that are not BIRD's own; while nothing is keyed
//! (`keyring = "off"`, no group with a key) one best-effort sweep runs at
//! start and after each input change, for keys a killed autopeer left.
//!
//! It must not: key anything while `[bird] keyring = "off"` (it removes
//! what it installed instead); report an error for a missing BIRD or
//! missing privileges when no group has a key; delete BIRD's own exact or
//! range keys; put a key into a status line, an event or a log line.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    bird_ranges, desired_keys, listening_sockets, Bird, Family, KeyPlan, Keyring, KeyringReport,
    MissingListener,
};
use crate::bird::conf::BirdConf;
use crate::config::{self, Config};
use crate::event::{Event, KeyringChange};
use crate::roster::Msg;

/// How often BIRD's pid and listener inodes are compared (fact 8 asks for
/// re-keying within 2 s of a new listener).
pub const TICK: Duration = Duration::from_secs(1);
/// How often every desired key is re-applied even when nothing changed.
pub const FULL_SYNC: Duration = Duration::from_secs(5);

/// What the roster publishes for the keyring.
#[derive(Debug, Clone)]
pub struct KeyInputs {
    pub config: Arc<Config>,
    pub birdconf: Arc<BirdConf>,
    /// Every peer in the owned include: (address, group).
    pub peers: Vec<(IpAddr, String)>,
    /// Successful `configure`s so far.
    pub configured: u64,
}

/// One listener as `show status` and `check` print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    pub family: Family,
    pub local: SocketAddr,
    pub inode: u64,
    /// Prefix keys of autopeer now on it.
    pub keys: usize,
    /// Keys the kernel refused at the last sync (prefix and group, and the
    /// error; never the key).
    pub failed: Vec<String>,
}

/// The keyring as the operator sees it. Never holds a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyringStatus {
    /// `[bird] keyring = "off"`.
    pub off: bool,
    /// Groups with a key (their own or their template's).
    pub keyed_groups: Vec<String>,
    /// Desired prefix keys per family: (IPv4, IPv6).
    pub wanted: (usize, usize),
    pub pid: Option<i32>,
    pub listeners: Vec<ListenerStatus>,
    /// Families with keys but no BIRD listener, with the advice sentence.
    pub missing: Vec<MissingListener>,
    /// Why the keyring cannot work now (BIRD not found, no privilege, a
    /// group that cannot be keyed); `None` when it works.
    pub error: Option<String>,
}

impl KeyringStatus {
    /// `Keyring ...` lines for `show status`: one per family that has
    /// keys or a listener, or one line saying why there are none.
    pub fn lines(&self) -> Vec<String> {
        if self.off {
            return vec!["Keyring: off".into()];
        }
        let mut out = Vec::new();
        if let Some(e) = &self.error {
            out.push(format!("Keyring: {e}"));
        }
        if self.keyed_groups.is_empty() {
            if out.is_empty() {
                out.push("Keyring: no group has a password, nothing keyed".into());
            }
            return out;
        }
        for (family, wanted) in [(Family::V4, self.wanted.0), (Family::V6, self.wanted.1)] {
            let ls: Vec<&ListenerStatus> = self
                .listeners
                .iter()
                .filter(|l| l.family == family)
                .collect();
            for l in &ls {
                let mut line = format!(
                    "Keyring {family}: listener {} inode {} (BIRD pid {}), {} of {wanted} prefix key(s) installed",
                    l.local,
                    l.inode,
                    self.pid.map_or_else(|| "?".into(), |p| p.to_string()),
                    l.keys
                );
                if !l.failed.is_empty() {
                    line.push_str(&format!(
                        ", {} failed: {}",
                        l.failed.len(),
                        l.failed.join("; ")
                    ));
                }
                out.push(line);
            }
            if let Some(m) = self.missing.iter().find(|m| m.family == family) {
                out.push(format!("Keyring {family}: {}", m.advice));
            } else if ls.is_empty() && wanted > 0 && self.error.is_none() {
                out.push(format!(
                    "Keyring {family}: {wanted} prefix key(s), not yet installed"
                ));
            }
        }
        out
    }
}

/// The plan for `inputs`, with roster peers of keyed groups added to
/// `bird_exact` (BIRD installs an exact key for each of them: a host-length
/// key of ours there is the same kernel entry, never deleted by us).
pub fn plan_for(inputs: &KeyInputs) -> Result<KeyPlan, String> {
    let mut plan = desired_keys(&inputs.config.groups, &inputs.birdconf).map_err(|ps| {
        ps.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let keyed: std::collections::BTreeSet<&str> =
        plan.keys.iter().map(|k| k.group.as_str()).collect();
    let exact: Vec<IpAddr> = inputs
        .peers
        .iter()
        .filter(|(_, g)| keyed.contains(g.as_str()))
        .map(|(a, _)| *a)
        .collect();
    plan.bird_exact.extend(exact);
    Ok(plan)
}

/// The task's own state (moved into `spawn_blocking` and back).
#[derive(Default)]
struct State {
    ring: Keyring,
    socket: PathBuf,
    bird: Option<Bird>,
    /// Listener inodes at the last sync.
    inodes: Vec<u64>,
    last_full: Option<Instant>,
    status: KeyringStatus,
    /// Why the current inputs cannot be keyed (the last good plan stays).
    plan_error: Option<String>,
    /// What was last reported, to report each change once.
    last_error: Option<String>,
    last_missing: Vec<Family>,
    last_failed: BTreeMap<u64, Vec<String>>,
    /// Events of the last step, sent by the async side.
    events: Vec<Event>,
}

/// Runs until `shutdown`; then removes every key it installed.
pub async fn run(
    mut inputs: watch::Receiver<KeyInputs>,
    roster: mpsc::Sender<Msg>,
    shutdown: CancellationToken,
) {
    let mut current = inputs.borrow_and_update().clone();
    let mut state = State::default();
    let mut plan: Option<KeyPlan> = None;
    let mut changed = true;
    // What the roster last accepted (a full channel drops an update; the
    // next round sends it again).
    let mut sent: Option<KeyringStatus> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if changed {
            changed = false;
            state.socket = current.config.bird.socket.clone();
            match plan_for(&current) {
                Ok(p) => {
                    plan = Some(p);
                    state.plan_error = None;
                }
                // Like a refused reload: the last good plan stays.
                Err(e) => state.plan_error = Some(format!("cannot key: {e}")),
            }
            state.last_full = None;
        }
        let off = current.config.bird.keyring == config::Keyring::Off;
        let mut p = plan.clone().unwrap_or_default();
        // BIRD's own range keys are never swept, whatever the last good plan.
        p.bird_ranges = bird_ranges(&current.birdconf);
        state = match tokio::task::spawn_blocking(move || {
            step(&mut state, &p, off);
            state
        })
        .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "keyring step panicked; keyring stops");
                return;
            }
        };
        for e in std::mem::take(&mut state.events) {
            emit(&roster, e);
        }
        if sent.as_ref() != Some(&state.status)
            && roster
                .try_send(Msg::KeyringState(state.status.clone()))
                .is_ok()
        {
            sent = Some(state.status.clone());
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = inputs.changed() => {
                if r.is_err() {
                    break;
                }
                current = inputs.borrow_and_update().clone();
                changed = true;
            }
            _ = tick.tick() => {}
        }
    }
    let mut ring = std::mem::take(&mut state.ring);
    match tokio::task::spawn_blocking(move || ring.remove_all()).await {
        Ok(Ok(r)) => {
            let n: usize = r.listeners.iter().map(|l| l.removed).sum();
            if n > 0 {
                tracing::info!(removed = n, "keyring: prefix keys removed");
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "keyring: cannot remove the prefix keys"),
        Err(e) => tracing::warn!(error = %e, "keyring: removal panicked"),
    }
}

fn emit(roster: &mpsc::Sender<Msg>, e: Event) {
    // The roster logs, audits and streams it; if it is busy or gone the
    // event is at least logged.
    if let Err(err) = roster.try_send(Msg::Emit(e)) {
        if let Msg::Emit(e) = err.into_inner() {
            e.log();
        }
    }
}

fn listener_name(family: Family, local: SocketAddr) -> String {
    format!("{family} {local}")
}

impl State {
    fn set_error(&mut self, error: Option<String>) {
        let error = error.or_else(|| self.plan_error.clone());
        if self.last_error != error {
            if let Some(e) = &error {
                self.events.push(Event::Keyring {
                    change: KeyringChange::Error,
                    pid: self.bird.as_ref().map(Bird::pid),
                    listener: None,
                    keys: 0,
                    detail: e.clone(),
                });
            }
            self.last_error.clone_from(&error);
        }
        self.status.error = error;
    }

    fn forget_listeners(&mut self) {
        self.status.listeners.clear();
        self.status.missing.clear();
        self.inodes.clear();
    }

    /// Folds a sync's report into the status; one event per new keyed
    /// listener, per change of a listener's failures, per change of the
    /// families without a listener.
    fn take_report(&mut self, report: &KeyringReport) {
        let pid = Some(report.pid);
        let mut failed_now = BTreeMap::new();
        self.status.listeners.clear();
        for l in &report.listeners {
            let li = &l.listener;
            let failed: Vec<String> = l
                .failed
                .iter()
                .map(|(prefix, group, err)| format!("{prefix} (group {group}): {err}"))
                .collect();
            let name = listener_name(li.family, li.local);
            if l.new_socket && l.keys > 0 {
                self.events.push(Event::Keyring {
                    change: KeyringChange::Keyed,
                    pid,
                    listener: Some(format!("{name} inode {}", li.inode)),
                    keys: l.keys,
                    detail: format!("{} prefix key(s) installed on a new listener", l.keys),
                });
            }
            if !failed.is_empty() && self.last_failed.get(&li.inode) != Some(&failed) {
                self.events.push(Event::Keyring {
                    change: KeyringChange::Failed,
                    pid,
                    listener: Some(format!("{name} inode {}", li.inode)),
                    keys: l.keys,
                    detail: format!("cannot key {}", failed.join("; ")),
                });
            }
            if !failed.is_empty() {
                failed_now.insert(li.inode, failed.clone());
            }
            self.status.listeners.push(ListenerStatus {
                family: li.family,
                local: li.local,
                inode: li.inode,
                keys: l.keys,
                failed,
            });
        }
        self.last_failed = failed_now;
        let missing: Vec<Family> = report.missing.iter().map(|m| m.family).collect();
        if missing != self.last_missing {
            for m in &report.missing {
                if !self.last_missing.contains(&m.family) {
                    self.events.push(Event::Keyring {
                        change: KeyringChange::MissingListener,
                        pid,
                        listener: None,
                        keys: 0,
                        detail: m.advice.clone(),
                    });
                }
            }
            self.last_missing = missing;
        }
        self.status.missing.clone_from(&report.missing);
        self.inodes = report.listeners.iter().map(|l| l.listener.inode).collect();
        self.inodes.sort_unstable();
        if report.raced > 0 {
            tracing::debug!(
                raced = report.raced,
                "keyring: listener changed while keying"
            );
            self.last_full = None;
        }
    }
}

/// One round, on a blocking thread: find BIRD, compare its listeners with
/// what was keyed, sync when they differ or the inputs changed or
/// [`FULL_SYNC`] has passed.
fn step(state: &mut State, plan: &KeyPlan, off: bool) {
    state.status.off = off;
    if off {
        if !state.ring.keyed_inodes().is_empty() {
            match state.ring.remove_all() {
                Ok(r) => {
                    let n: usize = r.listeners.iter().map(|l| l.removed).sum();
                    state.events.push(Event::Keyring {
                        change: KeyringChange::Removed,
                        pid: state.bird.as_ref().map(Bird::pid),
                        listener: None,
                        keys: 0,
                        detail: format!("keyring turned off: {n} prefix key(s) removed"),
                    });
                }
                Err(e) => tracing::warn!(error = %e, "keyring: cannot remove the prefix keys"),
            }
        }
        sweep_once(state, plan);
        state.forget_listeners();
        state.set_error(None);
        state.status.keyed_groups.clear();
        return;
    }
    let mut groups: Vec<String> = plan.keys.iter().map(|k| k.group.clone()).collect();
    groups.dedup();
    groups.sort();
    groups.dedup();
    state.status.keyed_groups = groups;
    state.status.wanted = (
        plan.keys_of(Family::V4).count(),
        plan.keys_of(Family::V6).count(),
    );
    if plan.keys.is_empty() && state.ring.keyed_inodes().is_empty() {
        // Nothing to key and nothing to take back: no need for BIRD's pid
        // or for privileges, beyond one sweep for keys a killed run left.
        sweep_once(state, plan);
        state.forget_listeners();
        state.set_error(None);
        return;
    }
    let known = state.bird.take().filter(|b| b.verify().is_ok());
    let bird = match known {
        Some(b) => b,
        None => match Bird::find(&state.socket) {
            Ok(b) => b,
            Err(e) => {
                state.status.pid = None;
                state.forget_listeners();
                state.set_error(Some(format!("cannot find BIRD: {e}")));
                return;
            }
        },
    };
    let pid = bird.pid();
    let inodes = match listening_sockets(pid) {
        Ok(ls) => {
            let mut v: Vec<u64> = ls.iter().map(|l| l.inode).collect();
            v.sort_unstable();
            v
        }
        Err(e) => {
            state.forget_listeners();
            state.set_error(Some(e.to_string()));
            return;
        }
    };
    let due = match state.last_full {
        Some(t) => t.elapsed() >= FULL_SYNC,
        None => true,
    };
    let same = state.status.pid == Some(pid) && inodes == state.inodes;
    state.bird = Some(bird.clone());
    if same && !due {
        return;
    }
    state.status.pid = Some(pid);
    state.last_full = Some(Instant::now());
    match state.ring.sync(&bird, plan) {
        Ok(report) => {
            let removed: usize = report.listeners.iter().map(|l| l.removed).sum();
            if removed > 0 {
                state.events.push(Event::Keyring {
                    change: KeyringChange::Removed,
                    pid: Some(pid),
                    listener: None,
                    keys: 0,
                    detail: format!("{removed} prefix key(s) that no group wants removed"),
                });
            }
            state.take_report(&report);
            state.set_error(None);
        }
        Err(e) => {
            state.forget_listeners();
            state.set_error(Some(e.to_string()));
        }
    }
}

/// While nothing is keyed (`keyring = "off"`, or no group has a key):
/// once at start and after each change of the inputs, delete the prefix
/// keys an earlier autopeer that was killed left on BIRD's listeners
/// ([`Keyring::sweep`]). Best effort: without BIRD or privileges there is
/// nothing this mode may ask for, so a failure is only logged at debug.
fn sweep_once(state: &mut State, plan: &KeyPlan) {
    if state.last_full.is_some() {
        return;
    }
    state.last_full = Some(Instant::now());
    if super::check_privileges().is_err() {
        // It could not duplicate BIRD's listener anyway.
        return;
    }
    let bird = match Bird::find(&state.socket) {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "keyring: no sweep for stale prefix keys");
            return;
        }
    };
    match state.ring.sweep(&bird, &plan.bird_ranges) {
        Ok(r) => {
            let n: usize = r.listeners.iter().map(|l| l.removed).sum();
            if n > 0 {
                state.events.push(Event::Keyring {
                    change: KeyringChange::Removed,
                    pid: Some(bird.pid()),
                    listener: None,
                    keys: 0,
                    detail: format!(
                        "{n} stale prefix key(s) removed (left by an earlier autopeer)"
                    ),
                });
            }
        }
        Err(e) => tracing::debug!(error = %e, "keyring: sweep for stale prefix keys failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::DesiredKey;
    use crate::secret::Secret;

    const CONF: &str = r#"
template bgp CLIENTS { local as 65000; password "tmpl-key"; neighbor internal; }
template bgp OPEN { local as 65000; neighbor internal; }
protocol bgp c4 from OPEN { neighbor 10.88.0.4; }
"#;

    fn inputs(keyring: &str) -> KeyInputs {
        let toml = format!(
            r#"[bird]
socket = "/nonexistent/bird.ctl"
config = "/nonexistent/bird.conf"
include = "/nonexistent/autopeer.conf"
keyring = "{keyring}"
[agent]
socket = "/nonexistent/autopeer.ctl"
[[group]]
name = "clients"
template = "CLIENTS"
prefixes = ["10.88.0.0/25"]
[[group]]
name = "open"
template = "OPEN"
prefixes = ["10.99.0.0/24"]
"#
        );
        let config = Config::load_str(&toml, std::path::Path::new("/")).expect("config");
        KeyInputs {
            config: Arc::new(config),
            birdconf: Arc::new(
                crate::bird::conf::scan_text(CONF, std::path::Path::new("bird.conf")).unwrap(),
            ),
            peers: vec![
                ("10.88.0.2".parse().unwrap(), "clients".into()),
                ("10.99.0.2".parse().unwrap(), "open".into()),
            ],
            configured: 1,
        }
    }

    #[test]
    fn roster_peers_of_keyed_groups_are_birds_exact_keys() {
        let plan = plan_for(&inputs("auto")).unwrap();
        assert!(plan.bird_exact.contains(&"10.88.0.2".parse().unwrap()));
        assert!(!plan.bird_exact.contains(&"10.99.0.2".parse().unwrap()));
        assert_eq!(plan.unkeyed, vec!["open".to_owned()]);
        // c4 (no password) is cut out of the keyed /25.
        assert!(plan
            .keys
            .iter()
            .all(|k| !k.prefix.contains(&"10.88.0.4".parse::<IpAddr>().unwrap())));
        assert_eq!(plan.keys.len(), 7);
    }

    #[test]
    fn nothing_keyed_needs_no_bird_and_off_says_so() {
        let mut state = State::default();
        step(&mut state, &KeyPlan::default(), false);
        assert_eq!(state.status.error, None);
        assert_eq!(state.status.pid, None);
        assert!(state.events.is_empty());
        assert_eq!(
            state.status.lines(),
            vec!["Keyring: no group has a password, nothing keyed".to_owned()]
        );
        step(&mut state, &KeyPlan::default(), true);
        assert_eq!(state.status.lines(), vec!["Keyring: off".to_owned()]);
    }

    #[test]
    fn bird_not_found_is_one_event_and_a_status_line_without_the_key() {
        let mut state = State {
            socket: "/nonexistent/bird.ctl".into(),
            ..State::default()
        };
        let plan = KeyPlan {
            keys: vec![DesiredKey {
                prefix: "10.88.0.0/25".parse().unwrap(),
                key: Secret::new("tmpl-key".into()),
                group: "clients".into(),
            }],
            ..KeyPlan::default()
        };
        step(&mut state, &plan, false);
        step(&mut state, &plan, false);
        assert_eq!(state.events.len(), 1, "{:?}", state.events);
        let e = &state.events[0];
        assert_eq!(e.kind(), "keyring");
        let audit = e.audit_text().unwrap();
        assert!(
            audit.starts_with("keyring error: cannot find BIRD"),
            "{audit}"
        );
        let lines = state.status.lines().join("\n");
        assert!(lines.contains("Keyring: cannot find BIRD"), "{lines}");
        assert_eq!(state.status.wanted, (1, 0));
        assert!(!format!("{:?} {lines} {}", state.events, e.to_json()).contains("tmpl-key"));
    }

    #[test]
    fn status_lines_per_family() {
        let status = KeyringStatus {
            keyed_groups: vec!["clients".into(), "clients6".into()],
            wanted: (7, 3),
            pid: Some(42),
            listeners: vec![ListenerStatus {
                family: Family::V4,
                local: "0.0.0.0:179".parse().unwrap(),
                inode: 4711,
                keys: 7,
                failed: Vec::new(),
            }],
            missing: vec![MissingListener {
                family: Family::V6,
                keys: 3,
                advice: crate::keyring::missing_listener_advice(Family::V6, 3),
            }],
            ..KeyringStatus::default()
        };
        let lines = status.lines();
        assert_eq!(
            lines[0],
            "Keyring IPv4: listener 0.0.0.0:179 inode 4711 (BIRD pid 42), 7 of 7 prefix key(s) installed"
        );
        assert!(
            lines[1].starts_with("Keyring IPv6: BIRD has no IPv6 BGP listener"),
            "{}",
            lines[1]
        );
        assert_eq!(lines.len(), 2);
    }
}
