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

use super::budget::Budget;
use super::runtime::{expires_at, observe, short_duration, Runtime};
use super::{Admitted, GroupView, PeerView, Snapshot};
use crate::admission::{self, Decision, Evidence, Limits, Memory, Refusal, RosterLookup};
use crate::apply::{Applied, ApplyError};
use crate::bird::conf::BirdConf;
use crate::bird::protocols::Protocol;
use crate::bird::render::{self, Peer};
use crate::config::Config;
use crate::event::{Event, Neighbor};
use crate::keyring::task::KeyringStatus;
use crate::secret::Secret;
use crate::sources::{Sighting, Via};

pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Expiry needs a poll of BIRD at most this old.
const POLL_FRESH: Duration = Duration::from_secs(300);
/// Changed runtime facts are written to the state file at most this often.
const STATE_WRITE_DELAY: Duration = Duration::from_secs(5);

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

/// The peers, as admission sees them.
#[derive(Debug, Default)]
struct Book {
    peers: BTreeMap<String, Peer>,
    pending: Vec<Peer>,
    in_flight: Vec<Peer>,
    keyring: Option<KeyringStatus>,
}

impl Book {
    fn all(&self) -> impl Iterator<Item = &Peer> {
        self.peers
            .values()
            .chain(self.in_flight.iter())
            .chain(self.pending.iter())
    }
}

impl RosterLookup for Book {
    fn find(&self, addr: IpAddr) -> Option<String> {
        self.all().find(|p| p.addr == addr).map(|p| p.name.clone())
    }

    fn group_size(&self, group: &str) -> usize {
        self.all().filter(|p| p.group == group).count()
    }

    fn keyed(&self, group: &str, addr: IpAddr) -> bool {
        self.keyring
            .as_ref()
            .is_some_and(|k| admission::kernel_checks_key(k, group, addr))
    }

    fn named(&self, name: &str) -> Option<Peer> {
        self.all().find(|p| p.name == name).cloned()
    }
}

/// What the apply task is to write: every peer, and the new ones (which
/// it may set aside, alone, if this BIRD's language cannot say them).
#[derive(Debug, Clone)]
pub struct Job {
    pub peers: Vec<Peer>,
    /// The names of the new peers among `peers`.
    pub new: Vec<String>,
    /// Each keyed group's password (its peers' blocks carry it).
    pub passwords: BTreeMap<String, Secret<String>>,
    /// Template name to `local as`, for BIRD 1.6's iBGP peers.
    pub local_as: BTreeMap<String, u32>,
}

impl Job {
    /// The include for `dialect`: the text, and the new peers set aside
    /// (with the reason) because it cannot hold them. Pure.
    pub fn plan(&self, dialect: &render::Dialect) -> Plan {
        let mut set_aside = Vec::new();
        let mut list = Vec::with_capacity(self.peers.len());
        for p in &self.peers {
            if self.new.contains(&p.name) {
                if let Err(e) = render::check_peer_in(p, self.passwords.get(&p.group), dialect) {
                    set_aside.push((p.clone(), e.to_string()));
                    continue;
                }
            }
            list.push(p.clone());
        }
        let text = render::render_for(&list, &self.passwords, dialect).map_err(|e| e.to_string());
        Plan { set_aside, text }
    }
}

/// What [`Job::plan`] made.
#[derive(Debug, Clone)]
pub struct Plan {
    pub set_aside: Vec<(Peer, String)>,
    /// The include's text (an error is a bug: every field was checked on
    /// the way in).
    pub text: Result<String, String>,
}

/// What came of a [`Job`]: the input [`Core::finish_apply`] takes.
#[derive(Debug)]
pub struct Done {
    pub plan: Plan,
    /// `None` when there was nothing to apply (render failed).
    pub result: Option<Result<Applied, ApplyError>>,
    pub millis: u128,
}

impl Default for Done {
    /// An apply task that died: what was in flight is dropped, as for a
    /// render failure (a bug either way), rather than retried forever.
    fn default() -> Done {
        Done {
            plan: Plan {
                set_aside: Vec::new(),
                text: Err("the apply task failed".into()),
            },
            result: None,
            millis: 0,
        }
    }
}

/// Bookkeeping of the apply in flight.
#[derive(Debug)]
struct Flight {
    removed: usize,
}

/// What the task must do after [`Core::finish_apply`] besides emitting.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AfterApply {
    /// The include may hold something else now (a rollback failed): read
    /// it back.
    pub reread_include: bool,
    /// Keys follow the peers and the count of configures.
    pub keys_changed: bool,
}

pub struct Core {
    config: Arc<Config>,
    birdconf: BirdConf,
    book: Book,
    dirty: bool,
    /// What autopeer last wrote or read back, to tell its own writes from
    /// an operator's edits.
    last_text: Option<String>,
    memory: Memory,
    budget: Budget,
    backoff: Duration,
    /// When the next apply is due.
    deadline: Option<Instant>,
    flight: Option<Flight>,
    last_broken: Option<String>,
    configured: u64,
    runtime: HashMap<String, Runtime>,
    /// Expiry clocks start no earlier than this (the start time when the
    /// state file was missing or unreadable).
    clock_floor: SystemTime,
    polls: u64,
    last_poll: Option<SystemTime>,
    last_poll_ok: Option<Instant>,
    bird_error: Option<String>,
    state_deadline: Option<Instant>,
    refusal_counts: BTreeMap<String, u64>,
    removed_since_apply: usize,
    started: SystemTime,
    out: Vec<Event>,
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
            Some(Ok(r)) => (r, SystemTime::UNIX_EPOCH),
            Some(Err(e)) => {
                tracing::warn!(error = %crate::event::escape(&e.to_string()), "state file unreadable; expiry clocks restart");
                (HashMap::new(), now.wall)
            }
            None => (HashMap::new(), now.wall),
        };
        Core {
            config,
            birdconf,
            book: Book {
                peers: peers.into_iter().map(|p| (p.name.clone(), p)).collect(),
                ..Book::default()
            },
            dirty: false,
            last_text: Some(include_text),
            memory: Memory::default(),
            budget: Budget::new(now.mono),
            backoff: BACKOFF_MIN,
            deadline: None,
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
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn birdconf(&self) -> &BirdConf {
        &self.birdconf
    }

    /// The peers in the owned include.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.book.peers.values()
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

    fn state_changed(&mut self, now: Instant) {
        if self.state_deadline.is_none() {
            self.state_deadline = Some(now + STATE_WRITE_DELAY);
        }
    }

    fn changed(&mut self, now: Instant, after: Duration) {
        self.dirty = true;
        self.schedule(now, after);
    }

    /// Decides about one sighting ([`admission::decide`]); on admission
    /// the peer joins `pending` and an apply is scheduled after `batch`.
    pub fn admit(
        &mut self,
        s: &Sighting,
        only: Option<&str>,
        nbma: Option<IpAddr>,
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
            self.changed(now.mono, config.agent.batch);
        }
        Ok(admitted)
    }

    /// Counts and audits a refusal as [`Refusal::reported`] says.
    fn refuse(&mut self, neighbor: Neighbor, refusal: &Refusal, via: Via, now: Instant) {
        let (line, counted) = refusal.reported(via);
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
        let addr: Option<IpAddr> = crate::cli::parse_addr(target).map(|(a, _)| a);
        let hit = |p: &Peer| p.name == target || Some(p.addr) == addr;
        let gone: Vec<Peer> = self.book.all().filter(|p| hit(p)).cloned().collect();
        if gone.is_empty() {
            return Err(format!("no peer {target} in the roster"));
        }
        self.book.peers.retain(|_, p| !hit(p));
        self.book.pending.retain(|p| !hit(p));
        self.book.in_flight.retain(|p| !hit(p));
        self.removed_since_apply += gone.len();
        for p in &gone {
            self.runtime.remove(&p.name);
            self.memory.quiet(p.addr, now.mono);
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

    pub fn keyring_state(&mut self, k: KeyringStatus) {
        self.book.keyring = Some(k);
    }

    pub fn states_failed(&mut self, error: String) {
        self.bird_error = Some(error);
    }

    /// Folds one poll of BIRD into the peers' runtime facts; emits
    /// [`Event::StateChanged`] when a session goes up or down (not on the
    /// first poll after start, which only learns where things stand).
    pub fn observe_states(&mut self, rows: &[Protocol], now: Now) {
        self.polls += 1;
        self.last_poll = Some(now.wall);
        self.last_poll_ok = Some(now.mono);
        self.bird_error = None;
        let by_name: HashMap<&str, &Protocol> = rows.iter().map(|p| (p.name.as_str(), p)).collect();
        let names: Vec<String> = self.book.peers.keys().cloned().collect();
        let mut persist = false;
        for name in names {
            let rt = self.runtime.entry(name.clone()).or_default();
            let before_known = rt.state.is_some();
            let before_up = rt.is_up();
            let before = rt.describe();
            persist |= observe(rt, by_name.get(name.as_str()).copied(), now.wall);
            let after_up = rt.is_up();
            if self.polls > 1 && before_up != after_up && (before_known || after_up) {
                let to = rt.describe();
                self.out.push(Event::StateChanged {
                    name,
                    from: before,
                    to,
                });
            }
        }
        // Facts of peers that left the roster are dropped.
        let before = self.runtime.len();
        let peers = &self.book.peers;
        self.runtime.retain(|n, _| peers.contains_key(n));
        persist |= self.runtime.len() != before;
        if persist {
            self.state_changed(now.mono);
        }
    }

    /// When `peer` expires, if its group expires peers at all.
    fn expiry_of(&self, peer: &Peer) -> Option<(SystemTime, Duration)> {
        let expire = self
            .config
            .groups
            .iter()
            .find(|g| g.name == peer.group)?
            .expire?;
        let admitted = humantime::parse_rfc3339_weak(&peer.admitted).ok()?;
        let rt = self.runtime.get(&peer.name).cloned().unwrap_or_default();
        Some((expires_at(admitted, &rt, expire, self.clock_floor)?, expire))
    }

    /// The periodic check: closes the refusal audit window and removes
    /// every peer whose expiry time has passed, in one apply.
    pub fn tick(&mut self, now: Now) {
        self.budget.close_window(now.mono, &mut self.out);
        let fresh = self
            .last_poll_ok
            .is_some_and(|t| now.mono.saturating_duration_since(t) < POLL_FRESH);
        if !fresh {
            return;
        }
        let due: Vec<(Peer, Duration)> = self
            .book
            .peers
            .values()
            // Only peers the last poll listed: one missing from BIRD (its
            // config broken elsewhere, not yet loaded) has no known state.
            .filter(|p| {
                self.runtime
                    .get(&p.name)
                    .is_some_and(|rt| rt.state.is_some())
            })
            .filter_map(|p| match self.expiry_of(p) {
                Some((at, expire)) if at <= now.wall => Some((p.clone(), expire)),
                _ => None,
            })
            .collect();
        if due.is_empty() {
            return;
        }
        if self.config.agent.dry_run {
            for (p, _) in &due {
                tracing::info!(name = %p.name, "would expire [dry run]");
            }
            return;
        }
        for (p, expire) in due {
            self.book.peers.remove(&p.name);
            self.runtime.remove(&p.name);
            self.removed_since_apply += 1;
            self.out.push(Event::removing(
                &p,
                format!("not Established for {}", short_duration(expire)),
            ));
        }
        self.changed(now.mono, Duration::ZERO);
        self.state_changed(now.mono);
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
        self.book.in_flight = std::mem::take(&mut self.book.pending);
        self.flight = Some(Flight {
            removed: std::mem::take(&mut self.removed_since_apply),
        });
        let mut next = self.book.peers.clone();
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
        })
    }

    /// The apply in flight came back.
    pub fn finish_apply(&mut self, done: Done, now: Now) -> AfterApply {
        let mut after = AfterApply::default();
        let removed = self.flight.take().map_or(0, |f| f.removed);
        // A bad peer never sinks a batch: it was set aside, alone.
        for (p, error) in done.plan.set_aside {
            self.book.in_flight.retain(|q| q.name != p.name);
            self.memory.quiet(p.addr, now.mono);
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
                    self.memory.quiet(p.addr, now.mono);
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
            self.book.peers.insert(p.name.clone(), p);
        }
        self.last_text = Some(text);
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
        wait
    }

    /// bird.conf was scanned again.
    pub fn rescanned(&mut self, birdconf: BirdConf) {
        self.birdconf = birdconf;
    }

    /// After a rescan and a read of the include: drop peers now configured
    /// by hand, and retry a stuck apply now (BIRD's config may have been
    /// fixed: not at the backoff's deadline; `schedule` keeps the earlier
    /// one).
    pub fn after_rescan(&mut self, now: Now) {
        self.drop_now_static(now);
        if self.dirty {
            self.backoff = BACKOFF_MIN;
            self.schedule(now.mono, Duration::ZERO);
        }
    }

    /// The owned include as read now: an operator's edit shows as a
    /// deleted block, a removal.
    pub fn include_read(&mut self, text: String, now: Now) {
        if self.last_text.as_deref() == Some(text.as_str()) {
            return;
        }
        let parsed = match render::parse(&text) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %crate::event::escape(&e.to_string()), "own include edited into something unreadable; keeping the roster in memory");
                return;
            }
        };
        let kept: BTreeMap<String, Peer> =
            parsed.into_iter().map(|p| (p.name.clone(), p)).collect();
        let removed: Vec<Peer> = self
            .book
            .peers
            .values()
            .filter(|p| !kept.contains_key(&p.name))
            .cloned()
            .collect();
        for p in removed {
            self.out.push(Event::removing(
                &p,
                "deleted from the include by hand".to_string(),
            ));
        }
        self.book.peers = kept;
        self.last_text = Some(text);
        self.changed(now.mono, Duration::ZERO);
    }

    /// A neighbor an operator has since configured by hand is no longer
    /// autopeer's: drop autopeer's copy so BIRD holds one protocol for it.
    fn drop_now_static(&mut self, now: Now) {
        let statics: Vec<(String, String)> = self
            .book
            .peers
            .values()
            .filter_map(|p| {
                self.birdconf
                    .neighbors
                    .iter()
                    .find(|n| n.addr == p.addr)
                    .map(|n| (p.name.clone(), format!("{}:{}", n.file.display(), n.line)))
            })
            .collect();
        for (name, place) in statics {
            if let Some(p) = self.book.peers.remove(&name) {
                self.out.push(Event::removing(
                    &p,
                    format!("now configured statically at {place}"),
                ));
                self.changed(now.mono, Duration::ZERO);
            }
        }
    }

    /// A new config: rate buckets start afresh.
    pub fn reload(&mut self, config: Arc<Config>) {
        tracing::info!("config reloaded");
        self.config = config;
        self.memory.limits = Limits::new();
    }

    /// The roster as it stands.
    pub fn snapshot(&self, now: Now) -> Snapshot {
        let mut peers: Vec<PeerView> = self
            .book
            .peers
            .values()
            .map(|p| PeerView {
                peer: p.clone(),
                pending: false,
                runtime: self.runtime.get(&p.name).cloned().unwrap_or_default(),
                expires: self.expiry_of(p).map(|(at, _)| at),
            })
            .chain(
                self.book
                    .in_flight
                    .iter()
                    .chain(self.book.pending.iter())
                    .map(|p| PeerView {
                        peer: p.clone(),
                        pending: true,
                        runtime: Runtime::default(),
                        expires: None,
                    }),
            )
            .collect();
        peers.sort_by(|a, b| a.peer.name.cmp(&b.peer.name));
        let groups = self
            .config
            .groups
            .iter()
            .map(|g| GroupView {
                name: g.name.clone(),
                template: g.template.clone(),
                prefixes: g.prefixes.clone(),
                peers: self.book.group_size(&g.name),
                max_peers: g.max_peers,
                rate: g.rate,
                expire: g.expire,
                next_admission: self.memory.limits.wait_time(&g.name, g.rate, now.mono),
            })
            .collect();
        Snapshot {
            peers,
            groups,
            dirty: self.dirty || self.flight.is_some(),
            dry_run: self.config.agent.dry_run,
            refusals: self.refusal_counts.clone(),
            last_poll: self.last_poll,
            bird_error: self.bird_error.clone(),
            started: self.started,
            keyring: self.book.keyring.clone(),
        }
    }
}
