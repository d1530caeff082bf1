//! The daemon's keyring task: the one owner of [`Keyring`], which keeps
//! BIRD's BGP listeners keyed for the groups that have a password.
//!
//! ```text
//!   roster --watch<KeyInputs>--> | keyring | --watch<Option<KeyringStatus>>--> roster (show status, trust)
//!   (config, bird.conf scan,     |  (1x)   | --EventSink (Event::Keyring)--> log, audit, watch clients
//!    roster peers, configures)   |         | --pidfd_getfd + setsockopt--> BIRD's listeners
//!   tick (every 1 s) ----------> |         |
//! ```
//!
//! Each tick is cheap: the pinned BIRD process ([`Bird`]) still holds its
//! control socket, and its listener inodes (from /proc) are the ones keyed. A full [`Keyring::sync`]
//! runs when those differ (BIRD restarted or re-created its listener, fact
//! 8), when the roster publishes new inputs (bird.conf rescan, reload, a
//! successful `configure`), and every [`FULL_SYNC`] to restore a host-length
//! key BIRD deleted with a protocol. All /proc and socket work runs in
//! `spawn_blocking`. The task never blocks the roster, nor knows it: it
//! reads one watch, publishes its status on another, and hands its events
//! to an [`EventSink`], which never waits.
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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{bird_ranges, listening_sockets, plan_for, Bird, Family, KeyPlan, Keyring, Reporter};
use crate::config;
use crate::event::EventSink;

// The daemon's, the roster's and admission's names for these.
pub use super::plan::KeyInputs;
pub use super::report::{KeyringStatus, ListenerStatus};

/// How often BIRD's pid and listener inodes are compared (docs/facts.md, fact 8 asks for
/// re-keying within 2 s of a new listener).
pub const TICK: Duration = Duration::from_secs(1);
/// How often every desired key is re-applied even when nothing changed.
pub const FULL_SYNC: Duration = Duration::from_secs(5);

/// The task's own state (moved into `spawn_blocking` and back).
#[derive(Default)]
struct State {
    ring: Keyring,
    socket: PathBuf,
    bird: Option<Bird>,
    /// Listener inodes at the last sync.
    inodes: Vec<u64>,
    last_full: Option<Instant>,
    /// The status and the events of the last step.
    report: Reporter,
}

/// A status watch for the keyring task to publish on: `None` until its
/// first round (and for good when no keyring task runs).
pub fn status_channel() -> (
    watch::Sender<Option<KeyringStatus>>,
    watch::Receiver<Option<KeyringStatus>>,
) {
    watch::channel(None)
}

/// Runs until `shutdown`; then removes every key it installed. Publishes
/// its status on `status` after every round it changed, and sends each
/// event to `events`.
pub async fn run(
    mut inputs: watch::Receiver<KeyInputs>,
    status: watch::Sender<Option<KeyringStatus>>,
    events: EventSink,
    shutdown: CancellationToken,
) {
    let mut current = inputs.borrow_and_update().clone();
    let mut state = State::default();
    let mut plan: Option<KeyPlan> = None;
    let mut changed = true;
    // Only the peers or the count of configures changed (see `skip`).
    let mut peers_only = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut skip = false;
        if changed {
            changed = false;
            state.socket = current.config.bird.socket.clone();
            match plan_for(&current) {
                Ok(p) => {
                    plan = Some(p);
                    state.report.set_plan_error(None);
                }
                // Like a refused reload: the last good plan stays.
                Err(e) => state
                    .report
                    .set_plan_error(Some(format!("cannot key: {e}"))),
            }
            // With nothing to key, new peers or configures alone call for
            // no new sweep (it is for keys a killed autopeer left, and
            // follows a new config or bird.conf): this turn does nothing,
            // not even start a blocking thread, so an apply of 1,000 peers
            // does not cost a walk of BIRD's sockets in /proc.
            skip = std::mem::take(&mut peers_only)
                && nothing_to_key(plan.as_ref())
                && state.ring.keyed_inodes().is_empty();
            if !skip {
                state.last_full = None;
            }
        }
        if !skip {
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
        }
        for e in state.report.take_events() {
            events.emit(e);
        }
        status.send_if_modified(|s| {
            let now = &state.report.status;
            let differs = s.as_ref() != Some(now);
            if differs {
                *s = Some(now.clone());
            }
            differs
        });
        // Nothing to key and nothing keyed: the sweep ran; only new
        // inputs can give work, so no tick wakes the daemon meanwhile.
        let idle =
            !changed && nothing_to_key(plan.as_ref()) && state.ring.keyed_inodes().is_empty();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = inputs.changed() => {
                if r.is_err() {
                    break;
                }
                let new = inputs.borrow_and_update().clone();
                peers_only = Arc::ptr_eq(&new.config, &current.config)
                    && new.birdconf == current.birdconf;
                current = new;
                changed = true;
            }
            _ = tick.tick(), if !idle => {}
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

impl State {
    fn pid(&self) -> Option<i32> {
        self.bird.as_ref().map(Bird::pid)
    }

    fn set_error(&mut self, error: Option<String>) {
        let pid = self.pid();
        self.report.set_error(error, pid);
    }

    fn forget_listeners(&mut self) {
        self.report.forget_listeners();
        self.inodes.clear();
    }
}

/// One round, on a blocking thread: find BIRD, compare its listeners with
/// what was keyed, sync when they differ or the inputs changed or
/// [`FULL_SYNC`] has passed.
fn step(state: &mut State, plan: &KeyPlan, off: bool) {
    state.report.status.off = off;
    if off {
        if !state.ring.keyed_inodes().is_empty() {
            match state.ring.remove_all() {
                Ok(r) => {
                    let n: usize = r.listeners.iter().map(|l| l.removed).sum();
                    let pid = state.pid();
                    state.report.removed(
                        pid,
                        format!("keyring turned off: {n} prefix key(s) removed"),
                    );
                }
                Err(e) => tracing::warn!(error = %e, "keyring: cannot remove the prefix keys"),
            }
        }
        sweep_once(state, plan);
        state.forget_listeners();
        state.set_error(None);
        state.report.status.keyed_groups.clear();
        return;
    }
    state.report.status.keyed_groups = plan.keyed_groups();
    state.report.status.wanted = (plan.wanted_of(Family::V4), plan.wanted_of(Family::V6));
    if plan.keys.is_empty() && plan.ao.is_empty() && state.ring.keyed_inodes().is_empty() {
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
                state.report.status.pid = None;
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
    let same = state.report.status.pid == Some(pid) && inodes == state.inodes;
    state.bird = Some(bird.clone());
    if same && !due {
        return;
    }
    state.report.status.pid = Some(pid);
    state.last_full = Some(Instant::now());
    match state.ring.sync(&bird, plan) {
        Ok(report) => {
            let removed: usize = report.listeners.iter().map(|l| l.removed).sum();
            if removed > 0 {
                state.report.removed(
                    Some(pid),
                    format!("{removed} prefix key(s) that no group wants removed"),
                );
            }
            state.report.take_report(&report);
            state.inodes = report.listeners.iter().map(|l| l.listener.inode).collect();
            state.inodes.sort_unstable();
            if report.raced > 0 {
                tracing::debug!(
                    raced = report.raced,
                    "keyring: listener changed while keying"
                );
                state.last_full = None;
            }
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
                state.report.removed(
                    Some(bird.pid()),
                    format!("{n} stale prefix key(s) removed (left by an earlier autopeer)"),
                );
            }
        }
        Err(e) => tracing::debug!(error = %e, "keyring: sweep for stale prefix keys failed"),
    }
}

/// No key wanted, MD5 or TCP-AO: the loop may sleep until its inputs
/// change. With any key wanted it ticks, because a new listener (BIRD
/// restarted, or its first BGP protocol started) must be keyed without
/// waiting for new inputs.
fn nothing_to_key(plan: Option<&KeyPlan>) -> bool {
    plan.map_or(true, |p| p.keys.is_empty() && p.ao.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::DesiredKey;
    use crate::secret::Secret;

    #[test]
    fn nothing_keyed_needs_no_bird_and_off_says_so() {
        let mut state = State::default();
        step(&mut state, &KeyPlan::default(), false);
        assert_eq!(state.report.status.error, None);
        assert_eq!(state.report.status.pid, None);
        assert!(state.report.events().is_empty());
        assert_eq!(
            state.report.status.lines(),
            vec!["Keyring: no group has a password, nothing keyed".to_owned()]
        );
        step(&mut state, &KeyPlan::default(), true);
        assert_eq!(state.report.status.lines(), vec!["Keyring: off".to_owned()]);
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
        let events = state.report.events();
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e.kind(), "keyring");
        let audit = e.audit_text().unwrap();
        assert!(
            audit.starts_with("keyring error: cannot find BIRD"),
            "{audit}"
        );
        let lines = state.report.status.lines().join("\n");
        assert!(lines.contains("Keyring: cannot find BIRD"), "{lines}");
        assert_eq!(state.report.status.wanted, (1, 0));
        assert!(!format!("{events:?} {lines} {}", e.to_json()).contains("tmpl-key"));
    }

    /// A plan with only TCP-AO keys is a plan: BIRD is looked for, and the
    /// status counts the group and its MKTs.
    #[test]
    fn an_ao_only_plan_keys() {
        let mut state = State {
            socket: "/nonexistent/bird.ctl".into(),
            ..State::default()
        };
        let plan = KeyPlan {
            ao: vec![crate::keyring::ao::DesiredAoKey {
                prefix: "10.77.0.0/24".parse().unwrap(),
                send_id: 1,
                recv_id: 1,
                algorithm: crate::config::AoAlgorithm::HmacSha1,
                secret: Secret::new(b"ao-secret".to_vec()),
                current: true,
                group: "aopeers".into(),
            }],
            ..KeyPlan::default()
        };
        step(&mut state, &plan, false);
        assert_eq!(state.report.status.keyed_groups, ["aopeers"]);
        assert_eq!(state.report.status.wanted, (1, 0));
        let lines = state.report.status.lines().join("\n");
        assert!(lines.contains("Keyring: cannot find BIRD"), "{lines}");
        assert!(!lines.contains("ao-secret"));
        // And the loop keeps ticking for it: a BIRD restarted later (a new
        // listener) is keyed without new inputs.
        assert!(!nothing_to_key(Some(&plan)));
        assert!(nothing_to_key(Some(&KeyPlan::default())));
        assert!(nothing_to_key(None));
    }

    /// The task needs no roster: its status arrives on the watch it was
    /// given and its events in the sink, and at shutdown it ends.
    #[tokio::test]
    async fn run_publishes_on_its_watch_and_sink() {
        let (_inputs_tx, inputs_rx) = watch::channel(super::super::plan::tests::inputs("auto"));
        let (status_tx, mut status_rx) = status_channel();
        let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = EventSink::new(move |e| {
            let _ = events_tx.send(e);
        });
        let token = CancellationToken::new();
        let task = tokio::spawn(run(inputs_rx, status_tx, sink, token.clone()));
        let wait = Duration::from_secs(30);
        tokio::time::timeout(wait, status_rx.changed())
            .await
            .expect("a status within 30 s")
            .unwrap();
        let status = status_rx.borrow().clone().expect("a status");
        assert_eq!(status.keyed_groups, ["clients"]);
        assert_eq!(status.wanted, (7, 0));
        let error = status.error.expect("no BIRD at /nonexistent");
        assert!(error.starts_with("cannot find BIRD"), "{error}");
        let e = tokio::time::timeout(wait, events_rx.recv())
            .await
            .expect("an event within 30 s")
            .unwrap();
        assert!(
            e.audit_text()
                .unwrap()
                .starts_with("keyring error: cannot find BIRD"),
            "{e:?}"
        );
        token.cancel();
        tokio::time::timeout(wait, task)
            .await
            .expect("ends")
            .unwrap();
        assert!(events_rx.try_recv().is_err(), "one event for one error");
    }
}
