//! The roster's state and its transitions, as plain functions of (state,
//! input, now): no I/O, no clock reads, no channels. The task in
//! [`super::task`] reads files, talks to BIRD and the other tasks, and
//! feeds what it learned in here; what the core decides comes out as
//! [`Event`]s ([`Core::take_events`]), deadlines ([`Core::apply_due`],
//! [`Core::state_due`]) and [`Job`]s for the apply task. So a scenario is
//! a list of inputs and the outputs they must give (tests/scenarios.rs).
//!
//! State, and where it lives:
//! - `peers`: what the owned include holds once the apply in flight (if
//!   any) lands, less what was removed since;
//! - `pending`: admitted, not yet handed to an apply;
//! - `in_flight`: admitted, in the apply that runs now (at most one);
//! - `dirty`: the include (or `pending`) differs from what BIRD has loaded.
//! - `runtime`: per peer, what the observer last saw in BIRD and when the
//!   session was last Established or went down; the last two persist in
//!   `[agent] state` (losing that file only resets expiry clocks).
//!
//! Departure (`super::departure`): a peer of a group with `depart` that
//! has no binding in nhrpd's cache for `depart`, its session not
//! Established, is removed at the cache read that finds it due; the
//! address is not quieted, so the spoke's next registration admits it.
//!
//! Expiry: a peer of a group with `expire` that was never Established
//! within `expire` of its admission, or has been down longer than
//! `expire`, is removed; all peers due at one check go out in one apply.
//! The check runs every [`super::EXPIRY_CHECK`] and only while the
//! observer's last successful poll is fresh (a BIRD that cannot be asked
//! expires no one).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::book::Book;
use super::budget::Budget;
use super::facts::Facts;
use super::job::Flight;
pub use super::job::{AfterApply, Done, Job, Plan};
use super::Admitted;
use crate::admission::{self, Decision, Evidence, Memory, Refusal};
use crate::apply::ApplyError;
use crate::bird::conf::BirdConf;
use crate::bird::render::Peer;
use crate::config::Config;
use crate::event::{Event, Neighbor};
use crate::keyring::task::KeyringStatus;
use crate::sources::{Sighting, Via};

pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Changed runtime facts are written to the state file at most this often.
const STATE_WRITE_DELAY: Duration = Duration::from_secs(5);

/// A text's length and its SipHash under keys drawn at random per
/// process: equal texts give equal digests; a text made to collide
/// with autopeer's own would need those keys, which never leave memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextDigest {
    len: usize,
    hash: u64,
}

impl TextDigest {
    pub fn of(text: &str) -> TextDigest {
        use std::hash::BuildHasher;
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        TextDigest {
            len: text.len(),
            hash: KEYS.get_or_init(Default::default).hash_one(text),
        }
    }
}

/// The time of an input: the monotonic clock for deadlines, the wall clock
/// for what is written down.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// `d` later on both clocks.
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }
}

pub struct Core {
    pub(super) config: Arc<Config>,
    pub(super) birdconf: BirdConf,
    pub(super) book: Book,
    pub(super) dirty: bool,
    /// What autopeer last wrote or read back, to tell its own writes from
    /// an operator's edits: a digest, not the text (2 MB at 10,000 peers).
    pub(super) last_text: Option<TextDigest>,
    pub(super) memory: Memory,
    pub(super) budget: Budget,
    pub(super) backoff: Duration,
    /// When the next apply is due.
    pub(super) deadline: Option<Instant>,
    /// The earliest an admission's apply may start: the last apply's start
    /// plus `batch`, or the retry after a failure (group commit: no wait
    /// when idle, the rest coalesced into the next apply).
    pub(super) next_start: Option<Instant>,
    pub(super) flight: Option<Flight>,
    pub(super) last_broken: Option<String>,
    pub(super) configured: u64,
    pub(super) runtime: Facts,
    /// Expiry clocks start no earlier than this (the start time when the
    /// state file was missing or unreadable).
    pub(super) clock_floor: SystemTime,
    pub(super) polls: u64,
    pub(super) last_poll: Option<SystemTime>,
    pub(super) last_poll_ok: Option<Instant>,
    pub(super) bird_error: Option<String>,
    pub(super) state_deadline: Option<Instant>,
    pub(super) refusal_counts: BTreeMap<String, u64>,
    pub(super) removed_since_apply: usize,
    pub(super) started: SystemTime,
    pub(super) out: Vec<Event>,
    /// Peers of `depart` groups missing from nhrpd's cache, and since when
    /// (`super::departure`).
    pub(super) absent: HashMap<String, super::departure::Absence>,
}

impl Core {
    /// A roster from the include's `peers` and the state file's text
    /// (`None`: missing or unreadable, so expiry clocks restart at `now`).
    pub fn new(
        config: Arc<Config>,
        birdconf: BirdConf,
        include_text: String,
        peers: Vec<Peer>,
        state_text: Option<&str>,
        now: Now,
    ) -> Core {
        let (runtime, clock_floor) = match state_text.map(super::state_file::parse) {
            Some(Ok(r)) => (Facts::from(r), SystemTime::UNIX_EPOCH),
            Some(Err(e)) => {
                tracing::warn!(error = %crate::event::escape(&e.to_string()), "state file unreadable; expiry clocks restart");
                (Facts::default(), now.wall)
            }
            None => (Facts::default(), now.wall),
        };
        Core {
            config,
            birdconf,
            book: Book {
                peers: peers.into_iter().collect(),
                ..Book::default()
            },
            dirty: false,
            last_text: Some(TextDigest::of(&include_text)),
            memory: Memory::default(),
            budget: Budget::new(now.mono),
            backoff: BACKOFF_MIN,
            deadline: None,
            next_start: None,
            flight: None,
            last_broken: None,
            configured: 0,
            runtime,
            clock_floor,
            polls: 0,
            last_poll: None,
            last_poll_ok: None,
            bird_error: None,
            state_deadline: None,
            refusal_counts: BTreeMap::new(),
            removed_since_apply: 0,
            started: now.wall,
            out: Vec::new(),
            absent: HashMap::new(),
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn birdconf(&self) -> &BirdConf {
        &self.birdconf
    }

    /// The peers in the owned include.
    pub fn peers(&self) -> impl Iterator<Item = Peer> + '_ {
        self.book.peers.iter()
    }

    /// Admitted, not yet written.
    pub fn pending(&self) -> usize {
        self.book.pending.len()
    }

    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// How many `configure`s succeeded.
    pub fn configured(&self) -> u64 {
        self.configured
    }

    /// The events decided since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.out)
    }

    /// When the next apply may start (`None`: nothing to do, or one is in
    /// flight).
    pub fn apply_due(&self) -> Option<Instant> {
        if self.flight.is_some() {
            return None;
        }
        self.deadline
    }

    pub fn applying(&self) -> bool {
        self.flight.is_some()
    }

    /// When the state file should be written.
    pub fn state_due(&self) -> Option<Instant> {
        self.state_deadline
    }

    /// The state file's text; the write is due no more.
    pub fn take_state(&mut self) -> Option<String> {
        self.state_deadline = None;
        if self.config.agent.dry_run {
            return None;
        }
        match super::state_file::render(&self.runtime) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %crate::event::escape(&e.to_string()), "cannot render the state file");
                None
            }
        }
    }

    /// Asks for an apply `after` from `now` (an earlier deadline stands).
    pub fn schedule(&mut self, now: Instant, after: Duration) {
        let at = now + after;
        self.deadline = Some(match self.deadline {
            Some(d) if d <= at => d,
            _ => at,
        });
    }

    pub(super) fn state_changed(&mut self, now: Instant) {
        if self.state_deadline.is_none() {
            self.state_deadline = Some(now + STATE_WRITE_DELAY);
        }
    }

    pub(super) fn changed(&mut self, now: Instant, after: Duration) {
        self.dirty = true;
        self.schedule(now, after);
    }

    /// Decides about one sighting ([`admission::decide`]); on admission
    /// the peer joins `pending` and an apply is scheduled: at once when
    /// none ran within `batch` and no retry is waiting, else when that
    /// spacing or the retry's backoff runs out. One in flight holds it
    /// back ([`Core::apply_due`]), so sightings meanwhile go out together
    /// in the next apply.
    pub fn admit(
        &mut self,
        s: &Sighting,
        only: Option<&str>,
        nbma: Option<IpAddr>,
        cert: &[u8],
        now: Now,
    ) -> Result<Admitted, Refusal> {
        let neighbor = Neighbor {
            addr: s.addr,
            iface: s.iface.clone(),
        };
        let config = Arc::clone(&self.config);
        let decision = admission::decide(
            admission::Request {
                addr: s.addr,
                iface: s.iface.as_deref(),
                evidence: Evidence {
                    via: s.via,
                    trust: s.trust,
                    unverified: config.sources.unverified,
                },
                group: only,
                nbma,
                cert: Some(cert).filter(|c| !c.is_empty()),
            },
            admission::Context {
                groups: &config.groups,
                birdconf: &self.birdconf,
                roster: &self.book,
                now: now.mono,
                wall: now.wall,
            },
            &mut self.memory,
        );
        let admit = match decision {
            Decision::Admit(a) => a,
            Decision::Already { name, group } => {
                return Ok(Admitted {
                    name,
                    group,
                    already: true,
                })
            }
            Decision::Refuse(refusal) => {
                self.refuse(neighbor, &refusal, s.via, now.mono);
                return Err(refusal);
            }
        };
        let peer = admit.peer;
        crate::metrics::admitted(&admit.group);
        let admitted = Admitted {
            name: peer.name.clone(),
            group: admit.group.clone(),
            already: false,
        };
        self.out.push(Event::Adding {
            neighbor,
            group: admit.group,
            name: peer.name.clone(),
            via: s.via,
            grounds: admit.grounds,
            dry_run: config.agent.dry_run,
        });
        if !config.agent.dry_run {
            self.book.pending.push(peer);
            let wait = self
                .next_start
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(now.mono));
            self.changed(now.mono, wait);
        }
        Ok(admitted)
    }

    /// Counts and audits a refusal as [`Refusal::reported`] says.
    pub(super) fn refuse(&mut self, neighbor: Neighbor, refusal: &Refusal, via: Via, now: Instant) {
        let (line, counted) = refusal.reported(via);
        crate::metrics::refused(refusal);
        if counted {
            *self
                .refusal_counts
                .entry(refusal.kind().into())
                .or_default() += 1;
        }
        if !line
            || !self
                .budget
                .allows(neighbor.addr, refusal.to_string(), now, &mut self.out)
        {
            return;
        }
        self.out.push(Event::Refusing {
            neighbor,
            refusal: refusal.clone(),
            via,
        });
    }

    /// Removes peers by protocol name or address.
    pub fn remove(&mut self, target: &str, now: Now) -> Result<Vec<String>, String> {
        // `fe80::1%eth1` is one neighbor; a link-local address without
        // its interface names it on every interface.
        let addr = crate::cli::parse_addr(target);
        let hit = |p: &Peer| {
            p.name == target
                || addr.as_ref().is_some_and(|(a, i)| match i {
                    Some(_) => {
                        admission::same_neighbor(p.addr, p.iface.as_deref(), *a, i.as_deref())
                    }
                    None => p.addr == *a,
                })
        };
        let gone: Vec<Peer> = (self.book.peers.iter())
            .chain(self.book.in_flight.iter().cloned())
            .chain(self.book.pending.iter().cloned())
            .filter(|p| hit(p))
            .collect();
        if gone.is_empty() {
            return Err(format!("no peer {target} in the roster"));
        }
        self.book.peers.retain(|p| !hit(p));
        self.book.pending.retain(|p| !hit(p));
        self.book.in_flight.retain(|p| !hit(p));
        self.removed_since_apply += gone.len();
        for p in &gone {
            self.runtime.remove(&p.name);
            self.memory.quiet(p.addr, p.iface.as_deref(), now.mono);
            self.out
                .push(Event::removing(p, "removed by operator".to_string()));
        }
        self.changed(now.mono, Duration::ZERO);
        self.state_changed(now.mono);
        Ok(gone.into_iter().map(|p| p.name).collect())
    }

    /// An event another task made. An NHRP registration that did not make
    /// the spoke a peer is a refusal: a spoke that registers again and
    /// again, or many forged spokes, must not grow the audit log faster
    /// than any other refused sender, so it takes the same quiet period and
    /// budget (its own key, so the roster's own `refusing` line for the
    /// same address does not silence it).
    pub fn relay(&mut self, event: Event, now: Now) {
        if let Event::Nhrp {
            addr,
            admitted: false,
            outcome,
            ..
        } = &event
        {
            let reason = format!("nhrp: {outcome}");
            if !self.budget.allows(*addr, reason, now.mono, &mut self.out) {
                return;
            }
        }
        self.out.push(event);
    }

    /// The keyring task's latest status (`None`: not reported).
    pub fn keyring_state(&mut self, k: Option<KeyringStatus>) {
        self.book.keyring = k;
    }

    pub fn states_failed(&mut self, error: String) {
        self.bird_error = Some(error);
    }

    /// At start-up: some roster peer is missing from BIRD (autopeer died
    /// between writing and `configure`): configure again.
    pub fn missing_from_bird(&mut self, now: Now) {
        tracing::info!("roster peers missing from BIRD, configuring");
        self.changed(now.mono, Duration::ZERO);
    }

    /// Starts an apply if one is due at `now` and none is in flight:
    /// `pending` moves in flight, and the job says what to write.
    pub fn begin_apply(&mut self, now: Now) -> Option<Job> {
        match self.deadline {
            Some(d) if self.flight.is_none() && d <= now.mono => {}
            _ => return None,
        }
        self.deadline = None;
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        self.next_start = Some(now.mono + self.config.agent.batch);
        self.book.in_flight = std::mem::take(&mut self.book.pending);
        self.flight = Some(Flight {
            removed: std::mem::take(&mut self.removed_since_apply),
        });
        let mut next: BTreeMap<String, Peer> = self
            .book
            .peers
            .iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        for p in &self.book.in_flight {
            next.insert(p.name.clone(), p.clone());
        }
        Some(Job {
            peers: next.into_values().collect(),
            new: self.book.in_flight.iter().map(|p| p.name.clone()).collect(),
            // A group's own key goes into its peers' blocks, so BIRD's
            // sessions use the key the keyed listener admitted them with.
            passwords: self
                .config
                .groups
                .iter()
                .filter_map(|g| g.password.clone().map(|k| (g.name.clone(), k)))
                .collect(),
            local_as: self
                .birdconf
                .templates
                .values()
                .filter_map(|t| t.local_as.map(|n| (t.name.clone(), n)))
                .collect(),
            passive: self
                .config
                .groups
                .iter()
                .filter(|g| g.is_ao())
                .map(|g| g.name.clone())
                .collect(),
        })
    }

    /// The apply in flight came back.
    pub fn finish_apply(&mut self, done: Done, now: Now) -> AfterApply {
        let mut after = AfterApply::default();
        let removed = self.flight.take().map_or(0, |f| f.removed);
        // A bad peer never sinks a batch: it was set aside, alone.
        for (p, error) in done.plan.set_aside {
            self.book.in_flight.retain(|q| q.name != p.name);
            self.memory.quiet(p.addr, p.iface.as_deref(), now.mono);
            let neighbor = Neighbor {
                addr: p.addr,
                iface: p.iface.clone(),
            };
            let via = Via::from_name(&p.via).unwrap_or(Via::Operator);
            self.refuse(neighbor, &Refusal::Unwritable { error }, via, now.mono);
        }
        let (text, result) = match (done.plan.text, done.result) {
            (Ok(text), Some(result)) => (text, result),
            (text, _) => {
                // Every field was validated on the way in; this is a bug.
                // Drop the new peers rather than loop on them.
                let e = text.err().unwrap_or_default();
                tracing::error!(error = %crate::event::escape(&e), "cannot render roster, dropping pending peers");
                self.book.in_flight.clear();
                return after;
            }
        };
        let added = self.book.in_flight.len();
        match result {
            Ok(applied) => {
                self.commit(text);
                self.configured += 1;
                after.keys_changed = true;
                self.backoff = BACKOFF_MIN;
                self.last_broken = None;
                for name in applied.kept_disabled {
                    self.out.push(Event::KeptDisabled { name });
                }
                self.out.push(Event::Applied {
                    added,
                    removed,
                    millis: done.millis,
                });
            }
            Err(ApplyError::Unavailable { written, source }) => {
                self.removed_since_apply += removed;
                if written {
                    self.commit(text);
                    after.keys_changed = true;
                } else {
                    self.unfly();
                }
                self.dirty = true;
                let retry = self.next_backoff(now.mono);
                self.out.push(Event::BirdUnavailable {
                    error: source.to_string(),
                    retry_secs: retry.as_secs(),
                });
            }
            Err(ApplyError::Rejected { text: bird }) => {
                let names = self.book.in_flight.iter().map(|p| p.name.clone()).collect();
                for p in std::mem::take(&mut self.book.in_flight) {
                    self.memory.quiet(p.addr, p.iface.as_deref(), now.mono);
                }
                self.removed_since_apply += removed;
                self.out.push(Event::RejectedByBird { names, text: bird });
            }
            Err(ApplyError::BrokenElsewhere { text: bird }) => {
                self.removed_since_apply += removed;
                self.commit(text);
                after.keys_changed = true;
                self.dirty = true;
                self.next_backoff(now.mono);
                if self.last_broken.as_deref() != Some(bird.as_str()) {
                    self.last_broken = Some(bird.clone());
                    self.out.push(Event::BrokenElsewhere { text: bird });
                }
            }
            Err(e @ (ApplyError::Write { .. } | ApplyError::RollbackFailed { .. })) => {
                tracing::error!(error = %crate::event::escape(&e.to_string()), "cannot apply roster");
                self.removed_since_apply += removed;
                after.reread_include = matches!(e, ApplyError::RollbackFailed { .. });
                self.unfly();
                self.dirty = true;
                self.next_backoff(now.mono);
            }
        }
        after
    }

    /// The include now holds what was in flight.
    fn commit(&mut self, text: String) {
        for p in std::mem::take(&mut self.book.in_flight) {
            self.book.peers.insert(p);
        }
        self.last_text = Some(TextDigest::of(&text));
    }

    /// Nothing was written: what was in flight is pending again.
    fn unfly(&mut self) {
        let mut back = std::mem::take(&mut self.book.in_flight);
        back.append(&mut self.book.pending);
        self.book.pending = back;
    }

    fn next_backoff(&mut self, now: Instant) -> Duration {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.schedule(now, wait);
        // New sightings wait for the retry too: with no spacing, a stream
        // of knocks would otherwise retry a dead BIRD once per knock.
        self.next_start = Some(self.next_start.map_or(now + wait, |t| t.max(now + wait)));
        wait
    }
}
