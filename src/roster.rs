//! The one task that owns the roster.
//!
//! Everything else sends it messages: sightings from the tails, "bird.conf
//! changed" from the watcher, reloads from the signal handler. It decides
//! (through [`crate::admission`]), gathers admissions for `batch`, renders
//! the owned include and hands it to [`crate::apply`]. Every decision goes
//! out as an [`Event`]: logged, audited.
//!
//! State, and where it lives:
//! - `peers`: exactly what the owned include holds (parsed back at start;
//!   an operator who deletes a block has removed that peer);
//! - `pending`: admitted, not yet written;
//! - `dirty`: the include (or `pending`) differs from what BIRD has loaded.
//! - `runtime`: per peer, what the observer last saw in BIRD and when the
//!   session was last Established or went down; the last two persist in
//!   `[agent] state` (losing that file only resets expiry clocks).
//!
//! Expiry: a peer of a group with `expire` that was never Established
//! within `expire` of its admission, or has been down longer than
//! `expire`, is removed; all peers due at one check go out in one apply.
//! The check runs every [`EXPIRY_CHECK`] and only while the observer's
//! last successful poll is fresh (a BIRD that cannot be asked expires no
//! one).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::admission::{self, Decision, Evidence, Limits, Memory, Refusal, RosterLookup};
use crate::apply::{self, ApplyError, Target};
use crate::audit::AuditLog;
use crate::bird::conf::{self, BirdConf};
use crate::bird::protocols::{BgpState, ProtoState, Protocol};
use crate::bird::render::{self, Peer};
use crate::config::Config;
use crate::event::{rfc3339, Event, Neighbor};
use crate::keyring::task::{KeyInputs, KeyringStatus};
use crate::sources::{Sighting, Via};

/// How long the same refusal of the same address is not repeated in the
/// audit log (a refused client knocks every few seconds).
const REFUSAL_QUIET: Duration = Duration::from_secs(600);
/// At most this many remembered refusals (a spoofed flood must not grow
/// memory without bound).
const REFUSAL_MEMORY: usize = 10_000;
/// At most this many refusals are audited per [`REFUSAL_WINDOW`]; the rest
/// are counted and summed up in one line. A flood of distinct forged
/// addresses in a shared syslog file must not grow the audit log without
/// bound (DESIGN.md fact 14).
const REFUSAL_BUDGET: u32 = 60;
const REFUSAL_WINDOW: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How many events a slow `watch` client may fall behind before it is
/// told it lost some.
const EVENT_BACKLOG: usize = 1024;
/// How often expiry is checked.
pub const EXPIRY_CHECK: Duration = Duration::from_secs(60);
/// Expiry needs a poll of BIRD at most this old.
const POLL_FRESH: Duration = Duration::from_secs(300);
/// Changed runtime facts are written to the state file at most this often.
const STATE_WRITE_DELAY: Duration = Duration::from_secs(5);

/// Messages to the roster task.
#[derive(Debug)]
pub enum Msg {
    /// bird.conf or one of its includes changed on disk.
    BirdConfChanged,
    /// A new, already validated config (SIGHUP or `reload`).
    Reload(Box<Config>),
    /// Decide about `sighting` now and answer at once (operator `add`, an
    /// NHRP registration); the change itself goes out with the next batch.
    /// `group` restricts the decision to that group.
    /// `nbma`: the spoke's NBMA address (NHRP).
    Admit {
        sighting: Sighting,
        group: Option<String>,
        nbma: Option<IpAddr>,
        reply: oneshot::Sender<Result<Admitted, Refusal>>,
    },
    /// Remove a peer by protocol name or address; answers the names removed.
    Remove {
        target: String,
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// The roster as it stands.
    Snapshot(oneshot::Sender<Snapshot>),
    /// The roster as it stands, and every event from then on ("dump, then
    /// push": nothing falls between the two).
    Subscribe(oneshot::Sender<(Snapshot, broadcast::Receiver<Event>)>),
    /// The observer's latest `show protocols` (every row, not only ours).
    States(Vec<Protocol>),
    /// The observer could not ask BIRD; the text says why.
    StatesFailed(String),
    /// An event decided elsewhere (the NHRP server's answers to nhrpd):
    /// logged, audited and streamed from here like the roster's own.
    Emit(Event),
    /// The keyring task's latest state, for `show status`.
    KeyringState(KeyringStatus),
}

/// What the roster knows about one peer's session in BIRD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtime {
    /// BIRD's protocol state (`up`, `start`, ...) at the last poll; `None`
    /// when the last poll did not list the protocol (or none ran yet).
    pub state: Option<String>,
    /// The BGP state word that opens BIRD's Info column (`Established`,
    /// `Active`), if any.
    pub info: Option<String>,
    /// The Info column after the state word (`Socket: Connection refused`).
    pub message: Option<String>,
    /// When the session last became Established (persisted).
    pub last_established: Option<SystemTime>,
    /// When the session was first seen down after being Established
    /// (persisted); `None` while up, or if it never was up.
    pub down_since: Option<SystemTime>,
}

impl Runtime {
    /// Up means BIRD's state `up` and BGP `Established`.
    pub fn is_up(&self) -> bool {
        self.state.as_deref() == Some("up") && self.info.as_deref() == Some("Established")
    }

    /// `up Established`, `start Active`, `absent`.
    pub fn describe(&self) -> String {
        match (&self.state, &self.info) {
            (Some(s), Some(i)) => format!("{s} {i}"),
            (Some(s), None) => s.clone(),
            (None, _) => "absent".into(),
        }
    }
}

/// Folds one poll's row for a peer (`None`: not listed) into its runtime
/// facts. Returns true when a persisted fact (`last_established`,
/// `down_since`) changed.
pub fn observe(rt: &mut Runtime, row: Option<&Protocol>, now: SystemTime) -> bool {
    let Some(p) = row else {
        rt.state = None;
        rt.info = None;
        rt.message = None;
        return false;
    };
    rt.state = Some(p.state.as_str().to_string());
    let word = p.bgp_state_word();
    rt.info = word.as_ref().map(|w| w.as_str().to_string());
    rt.message = p.info_message().map(str::to_string);
    let up = p.state == ProtoState::Up && word == Some(BgpState::Established);
    if up {
        let changed = rt.down_since.is_some() || rt.last_established.is_none();
        if changed {
            rt.last_established = Some(now);
        }
        rt.down_since = None;
        changed
    } else if rt.last_established.is_some() && rt.down_since.is_none() {
        rt.down_since = Some(now);
        true
    } else {
        false
    }
}

/// When a peer that is not up expires: `expire` after it went down, or,
/// if it never was Established, after its admission; never before
/// `floor` + `expire` (the start of the clock when the state file was
/// lost). `None` while the session is up.
pub fn expires_at(
    admitted: SystemTime,
    rt: &Runtime,
    expire: Duration,
    floor: SystemTime,
) -> Option<SystemTime> {
    if rt.is_up() {
        return None;
    }
    let from = rt.down_since.unwrap_or(admitted).max(floor);
    from.checked_add(expire)
}

/// `7d`, `1h30m`, `45s`: an expiry period for audit lines.
pub fn short_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

/// The state file: `[peers.NAME] last_established = "RFC3339"`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    #[serde(default)]
    peers: BTreeMap<String, PeerFacts>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PeerFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_established: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    down_since: Option<String>,
}

fn parse_time(s: Option<&String>) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s?).ok()
}

/// The answer to [`Msg::Admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub name: String,
    pub group: String,
    /// It was in the roster already.
    pub already: bool,
}

/// A copy of the roster for status output.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub peers: Vec<PeerView>,
    pub groups: Vec<GroupView>,
    /// Changes not yet loaded by BIRD.
    pub dirty: bool,
    pub dry_run: bool,
    /// Refusals since start, by kind ([`Refusal::kind`]).
    pub refusals: BTreeMap<String, u64>,
    /// When the observer last read BIRD's protocols.
    pub last_poll: Option<SystemTime>,
    /// The observer's last failure, cleared by the next good poll.
    pub bird_error: Option<String>,
    /// When this roster started.
    pub started: SystemTime,
    /// The keyring task's last report (`None`: no keyring task, or it has
    /// not reported yet).
    pub keyring: Option<KeyringStatus>,
}

#[derive(Debug, Clone)]
pub struct PeerView {
    pub peer: Peer,
    /// Admitted, not yet written to the include.
    pub pending: bool,
    /// What the observer saw in BIRD.
    pub runtime: Runtime,
    /// When expiry will remove it if nothing changes (`None`: the group
    /// does not expire, or the session is up).
    pub expires: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub name: String,
    pub template: String,
    pub prefixes: Vec<ipnet::IpNet>,
    pub peers: usize,
    pub max_peers: usize,
    pub rate: Option<u32>,
    pub expire: Option<Duration>,
    /// How long until the rate limit admits the next peer (zero: now).
    pub next_admission: Duration,
}

pub struct Roster {
    config: Arc<Config>,
    target: Target,
    birdconf: BirdConf,
    peers: BTreeMap<String, Peer>,
    pending: Vec<Peer>,
    dirty: bool,
    /// What autopeer last wrote or read back, to tell its own writes from
    /// an operator's edits.
    last_text: Option<String>,
    /// Admission's rate buckets and quiet periods.
    memory: Memory,
    audit: Option<AuditLog>,
    refusals: HashMap<(IpAddr, String), Instant>,
    backoff: Duration,
    deadline: Option<tokio::time::Instant>,
    last_broken: Option<String>,
    events: broadcast::Sender<Event>,
    /// The config in force, for tasks that match groups themselves (NHRP).
    config_tx: tokio::sync::watch::Sender<Arc<Config>>,
    /// What the keyring task keys from (config, bird.conf scan, peers,
    /// configures).
    key_tx: tokio::sync::watch::Sender<KeyInputs>,
    configured: u64,
    keyring: Option<KeyringStatus>,
    runtime: HashMap<String, Runtime>,
    /// Expiry clocks start no earlier than this (the start time when the
    /// state file was missing or unreadable).
    clock_floor: SystemTime,
    polls: u64,
    last_poll: Option<SystemTime>,
    last_poll_ok: Option<tokio::time::Instant>,
    bird_error: Option<String>,
    state_deadline: Option<tokio::time::Instant>,
    refusal_counts: BTreeMap<String, u64>,
    /// The refusal audit budget: when the window began, refusals audited
    /// in it, and refusals not audited.
    refusal_window: (Instant, u32, u64),
    removed_since_apply: usize,
    started: SystemTime,
}

/// Why the roster could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a file autopeer can read back: {source}", path.display())]
    Include {
        path: PathBuf,
        #[source]
        source: render::RenderError,
    },
    #[error(transparent)]
    BirdConf(#[from] conf::ConfError),
}

impl RosterLookup for Roster {
    fn find(&self, addr: IpAddr) -> Option<String> {
        self.peers
            .values()
            .chain(self.pending.iter())
            .find(|p| p.addr == addr)
            .map(|p| p.name.clone())
    }

    fn group_size(&self, group: &str) -> usize {
        self.peers
            .values()
            .chain(self.pending.iter())
            .filter(|p| p.group == group)
            .count()
    }

    fn keyed(&self, group: &str, addr: IpAddr) -> bool {
        self.keyring
            .as_ref()
            .is_some_and(|k| admission::kernel_checks_key(k, group, addr))
    }

    fn named(&self, name: &str) -> Option<Peer> {
        self.peers
            .get(name)
            .or_else(|| self.pending.iter().find(|p| p.name == name))
            .cloned()
    }
}

impl Roster {
    /// Reads the owned include and bird.conf. A missing include is created
    /// empty (with its header) so that bird.conf's `include` can find it.
    pub fn new(config: Arc<Config>, audit: Option<AuditLog>) -> Result<Roster, StartError> {
        let config_for_watch = Arc::clone(&config);
        let include = config.bird.include.clone();
        // A link at the include's name is refused, not followed (`fsx`).
        let text = match crate::fsx::read_to_string(&include) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let empty = render::render(&[]).unwrap_or_default();
                if !config.agent.dry_run {
                    apply::write_atomic(&include, empty.as_bytes()).map_err(|source| {
                        StartError::Read {
                            path: include.clone(),
                            source,
                        }
                    })?;
                }
                empty
            }
            Err(source) => {
                return Err(StartError::Read {
                    path: include,
                    source,
                })
            }
        };
        let peers = render::parse(&text).map_err(|source| StartError::Include {
            path: include.clone(),
            source,
        })?;
        let birdconf = conf::scan(&config.bird.config, &config.bird.include)?;
        let target = Target {
            socket: config.bird.socket.clone(),
            include,
            timeout: Duration::from_secs(60),
        };
        let started = SystemTime::now();
        let key_inputs = KeyInputs {
            config: Arc::clone(&config),
            birdconf: Arc::new(birdconf.clone()),
            peers: peers.iter().map(|p| (p.addr, p.group.clone())).collect(),
            configured: 0,
        };
        let (runtime, clock_floor) = load_state(&config.agent.state, started);
        Ok(Roster {
            runtime,
            clock_floor,
            polls: 0,
            last_poll: None,
            last_poll_ok: None,
            bird_error: None,
            state_deadline: None,
            refusal_counts: BTreeMap::new(),
            refusal_window: (Instant::now(), 0, 0),
            removed_since_apply: 0,
            started,
            memory: Memory::default(),
            config,
            target,
            birdconf,
            peers: peers.into_iter().map(|p| (p.name.clone(), p)).collect(),
            pending: Vec::new(),
            dirty: false,
            last_text: Some(text),
            audit,
            refusals: HashMap::new(),
            backoff: BACKOFF_MIN,
            deadline: None,
            last_broken: None,
            events: broadcast::channel(EVENT_BACKLOG).0,
            config_tx: tokio::sync::watch::channel(Arc::clone(&config_for_watch)).0,
            key_tx: tokio::sync::watch::channel(key_inputs).0,
            configured: 0,
            keyring: None,
        })
    }

    /// The peers in the owned include.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// Runs until `shutdown` is cancelled or every sender is gone.
    pub async fn run(
        mut self,
        mut sightings: mpsc::Receiver<Sighting>,
        mut msgs: mpsc::Receiver<Msg>,
        shutdown: CancellationToken,
    ) {
        self.resume().await;
        let mut sightings_open = true;
        let mut msgs_open = true;
        let mut expiry =
            tokio::time::interval_at(tokio::time::Instant::now() + EXPIRY_CHECK, EXPIRY_CHECK);
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.deadline;
            let state_deadline = self.state_deadline;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                s = sightings.recv(), if sightings_open => match s {
                    Some(s) => self.on_sighting(s),
                    None => sightings_open = false,
                },
                m = msgs.recv(), if msgs_open => match m {
                    Some(Msg::BirdConfChanged) => self.on_birdconf_changed(),
                    Some(Msg::Reload(c)) => self.on_reload(*c),
                    Some(Msg::Admit { sighting, group, nbma, reply }) => {
                        let _ = reply.send(self.admit(sighting, group.as_deref(), nbma));
                    }
                    Some(Msg::Remove { target, reply }) => {
                        let _ = reply.send(self.remove(&target));
                    }
                    Some(Msg::Snapshot(reply)) => {
                        let _ = reply.send(self.snapshot());
                    }
                    Some(Msg::Subscribe(reply)) => {
                        let _ = reply.send((self.snapshot(), self.events.subscribe()));
                    }
                    Some(Msg::States(rows)) => self.on_states(rows),
                    Some(Msg::StatesFailed(error)) => self.bird_error = Some(error),
                    Some(Msg::Emit(event)) => self.on_emit(event),
                    Some(Msg::KeyringState(k)) => self.keyring = Some(k),
                    None => msgs_open = false,
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.deadline = None;
                    self.apply().await;
                }
                _ = sleep_until(state_deadline), if state_deadline.is_some() => {
                    self.state_deadline = None;
                    self.write_state();
                }
                _ = expiry.tick() => {
                    self.close_refusal_window(Instant::now());
                    self.expire_due();
                }
            }
            if !sightings_open && !msgs_open && self.deadline.is_none() {
                break;
            }
        }
        // Admissions already decided are not thrown away on a clean stop.
        if !self.pending.is_empty() && !self.config.agent.dry_run {
            self.apply().await;
        }
        if self.state_deadline.is_some() {
            self.write_state();
        }
    }

    /// Folds one poll of BIRD into the peers' runtime facts; emits
    /// [`Event::StateChanged`] when a session goes up or down (not on the
    /// first poll after start, which only learns where things stand).
    fn on_states(&mut self, rows: Vec<Protocol>) {
        let now = SystemTime::now();
        self.polls += 1;
        self.last_poll = Some(now);
        self.last_poll_ok = Some(tokio::time::Instant::now());
        self.bird_error = None;
        let by_name: HashMap<&str, &Protocol> = rows.iter().map(|p| (p.name.as_str(), p)).collect();
        let names: Vec<String> = self.peers.keys().cloned().collect();
        let mut persist = false;
        let mut changes = Vec::new();
        for name in names {
            let rt = self.runtime.entry(name.clone()).or_default();
            let before_known = rt.state.is_some();
            let before_up = rt.is_up();
            let before = rt.describe();
            persist |= observe(rt, by_name.get(name.as_str()).copied(), now);
            let after_up = rt.is_up();
            if self.polls > 1 && before_up != after_up && (before_known || after_up) {
                changes.push(Event::StateChanged {
                    name,
                    from: before,
                    to: rt.describe(),
                });
            }
        }
        // Facts of peers that left the roster are dropped.
        let before = self.runtime.len();
        let peers = &self.peers;
        self.runtime.retain(|n, _| peers.contains_key(n));
        persist |= self.runtime.len() != before;
        for e in changes {
            self.emit(e);
        }
        if persist {
            self.state_changed();
        }
    }

    fn state_changed(&mut self) {
        if self.state_deadline.is_none() {
            self.state_deadline = Some(tokio::time::Instant::now() + STATE_WRITE_DELAY);
        }
    }

    fn write_state(&mut self) {
        self.state_deadline = None;
        if self.config.agent.dry_run {
            return;
        }
        let file = StateFile {
            peers: self
                .runtime
                .iter()
                .filter(|(_, rt)| rt.last_established.is_some() || rt.down_since.is_some())
                .map(|(n, rt)| {
                    (
                        n.clone(),
                        PeerFacts {
                            last_established: rt.last_established.map(rfc3339),
                            down_since: rt.down_since.map(rfc3339),
                        },
                    )
                })
                .collect(),
        };
        let text = match toml::to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %crate::event::escape(&e.to_string()), "cannot render the state file");
                return;
            }
        };
        let text = format!("# autopeer runtime facts; managed by autopeer, safe to delete\n{text}");
        if let Err(e) = apply::write_atomic(&self.config.agent.state, text.as_bytes()) {
            tracing::warn!(error = %crate::event::escape(&e.to_string()), path = %self.config.agent.state.display(), "cannot write the state file");
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

    /// Removes every peer whose expiry time has passed, in one apply.
    fn expire_due(&mut self) {
        let fresh = self.last_poll_ok.is_some_and(|t| t.elapsed() < POLL_FRESH);
        if !fresh {
            return;
        }
        let now = SystemTime::now();
        let due: Vec<(Peer, Duration)> = self
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
                Some((at, expire)) if at <= now => Some((p.clone(), expire)),
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
            self.peers.remove(&p.name);
            self.runtime.remove(&p.name);
            self.removed_since_apply += 1;
            self.emit(Event::removing(
                &p,
                format!("not Established for {}", short_duration(expire)),
            ));
        }
        self.dirty = true;
        self.schedule(Duration::ZERO);
        self.state_changed();
    }

    /// At start-up: if any roster peer is missing from BIRD (autopeer died
    /// between writing and `configure`), configure again.
    async fn resume(&mut self) {
        if self.peers.is_empty() || self.config.agent.dry_run {
            return;
        }
        let missing = match crate::bird::client::Connection::connect(
            &self.target.socket,
            Duration::from_secs(10),
        )
        .await
        {
            Ok(mut c) => match c.show_protocols(false, None).await {
                Ok(reply) => {
                    let names: std::collections::BTreeSet<String> =
                        crate::bird::protocols::parse_protocols(&reply)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|p| p.name)
                            .collect();
                    self.peers.keys().any(|n| !names.contains(n))
                }
                Err(_) => true,
            },
            Err(_) => true,
        };
        if missing {
            tracing::info!("roster peers missing from BIRD, configuring");
            self.dirty = true;
            self.schedule(Duration::ZERO);
        }
    }

    fn emit(&mut self, event: Event) {
        event.log();
        if let Some(a) = self.audit.as_mut() {
            a.record(&event, SystemTime::now());
        }
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    /// The roster as it stands.
    pub fn snapshot(&self) -> Snapshot {
        let mut peers: Vec<PeerView> = self
            .peers
            .values()
            .map(|p| PeerView {
                peer: p.clone(),
                pending: false,
                runtime: self.runtime.get(&p.name).cloned().unwrap_or_default(),
                expires: self.expiry_of(p).map(|(at, _)| at),
            })
            .chain(self.pending.iter().map(|p| PeerView {
                peer: p.clone(),
                pending: true,
                runtime: Runtime::default(),
                expires: None,
            }))
            .collect();
        let now = Instant::now();
        peers.sort_by(|a, b| a.peer.name.cmp(&b.peer.name));
        let groups = self
            .config
            .groups
            .iter()
            .map(|g| GroupView {
                name: g.name.clone(),
                template: g.template.clone(),
                prefixes: g.prefixes.clone(),
                peers: self.group_size(&g.name),
                max_peers: g.max_peers,
                rate: g.rate,
                expire: g.expire,
                next_admission: self.memory.limits.wait_time(&g.name, g.rate, now),
            })
            .collect();
        Snapshot {
            peers,
            groups,
            dirty: self.dirty,
            dry_run: self.config.agent.dry_run,
            refusals: self.refusal_counts.clone(),
            last_poll: self.last_poll,
            bird_error: self.bird_error.clone(),
            started: self.started,
            keyring: self.keyring.clone(),
        }
    }

    fn schedule(&mut self, after: Duration) {
        let at = tokio::time::Instant::now() + after;
        self.deadline = Some(match self.deadline {
            Some(d) if d <= at => d,
            _ => at,
        });
    }

    fn on_sighting(&mut self, s: Sighting) {
        let _ = self.admit(s, None, None);
    }

    /// Decides about one sighting ([`admission::decide`]); on admission
    /// the peer joins `pending` and an apply is scheduled after `batch`.
    fn admit(
        &mut self,
        s: Sighting,
        only: Option<&str>,
        nbma: Option<IpAddr>,
    ) -> Result<Admitted, Refusal> {
        let now = Instant::now();
        let neighbor = Neighbor {
            addr: s.addr,
            iface: s.iface.clone(),
        };
        let config = Arc::clone(&self.config);
        let mut memory = std::mem::take(&mut self.memory);
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
                roster: &*self,
                now,
                wall: SystemTime::now(),
            },
            &mut memory,
        );
        self.memory = memory;
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
                self.refuse(neighbor, &refusal, s.via, now);
                return Err(refusal);
            }
        };
        let peer = admit.peer;
        let admitted = Admitted {
            name: peer.name.clone(),
            group: admit.group.clone(),
            already: false,
        };
        self.emit(Event::Adding {
            neighbor,
            group: admit.group,
            name: peer.name.clone(),
            via: s.via,
            grounds: admit.grounds,
            dry_run: config.agent.dry_run,
        });
        if !config.agent.dry_run {
            self.pending.push(peer);
            self.dirty = true;
            self.schedule(config.agent.batch);
        }
        Ok(admitted)
    }

    /// Removes peers by protocol name or address.
    fn remove(&mut self, target: &str) -> Result<Vec<String>, String> {
        let addr: Option<IpAddr> = crate::cli::parse_addr(target).map(|(a, _)| a);
        let hit = |p: &Peer| p.name == target || Some(p.addr) == addr;
        let mut gone: Vec<Peer> = self.peers.values().filter(|p| hit(p)).cloned().collect();
        gone.extend(self.pending.iter().filter(|p| hit(p)).cloned());
        if gone.is_empty() {
            return Err(format!("no peer {target} in the roster"));
        }
        self.peers.retain(|_, p| !hit(p));
        self.pending.retain(|p| !hit(p));
        let now = Instant::now();
        self.removed_since_apply += gone.len();
        for p in &gone {
            self.runtime.remove(&p.name);
            self.memory.quiet(p.addr, now);
            self.emit(Event::removing(p, "removed by operator".to_string()));
        }
        self.dirty = true;
        self.schedule(Duration::ZERO);
        self.state_changed();
        Ok(gone.into_iter().map(|p| p.name).collect())
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
        if !line || !self.within_refusal_budget(neighbor.addr, refusal.to_string(), now) {
            return;
        }
        self.emit(Event::Refusing {
            neighbor,
            refusal: refusal.clone(),
            via,
        });
    }

    /// An event another task made. An NHRP registration that did not make
    /// the spoke a peer is a refusal: a spoke that registers again and
    /// again, or many forged spokes, must not grow the audit log faster
    /// than any other refused sender, so it takes the same quiet period and
    /// budget (its own key, so the roster's own `refusing` line for the
    /// same address does not silence it).
    fn on_emit(&mut self, event: Event) {
        if let Event::Nhrp {
            addr,
            admitted: false,
            outcome,
            ..
        } = &event
        {
            if !self.within_refusal_budget(*addr, format!("nhrp: {outcome}"), Instant::now()) {
                return;
            }
        }
        self.emit(event);
    }

    /// True when a refusal of `addr` for `reason` gets its own audit line:
    /// not the same refusal within [`REFUSAL_QUIET`], and within
    /// [`REFUSAL_BUDGET`] (else it is counted for the window's summary).
    fn within_refusal_budget(&mut self, addr: IpAddr, reason: String, now: Instant) -> bool {
        let key = (addr, reason);
        if let Some(t) = self.refusals.get(&key) {
            if now.duration_since(*t) < REFUSAL_QUIET {
                tracing::debug!(peer = %addr, reason = ?crate::event::escape(&key.1), "refused again");
                return false;
            }
        }
        if self.refusals.len() >= REFUSAL_MEMORY {
            self.refusals
                .retain(|_, t| now.duration_since(*t) < REFUSAL_QUIET);
            if self.refusals.len() >= REFUSAL_MEMORY {
                self.refusals.clear();
            }
        }
        let reason = crate::event::escape(&key.1).into_owned();
        self.refusals.insert(key, now);
        self.close_refusal_window(now);
        if self.refusal_window.1 >= REFUSAL_BUDGET {
            self.refusal_window.2 += 1;
            tracing::debug!(peer = %addr, ?reason, "refused (over the audit budget)");
            return false;
        }
        self.refusal_window.1 += 1;
        true
    }

    /// Ends the refusal audit window once it has run its time, with one
    /// line for the refusals it did not audit.
    fn close_refusal_window(&mut self, now: Instant) {
        let (start, _, unaudited) = self.refusal_window;
        if now.duration_since(start) < REFUSAL_WINDOW {
            return;
        }
        self.refusal_window = (now, 0, 0);
        if unaudited > 0 {
            self.emit(Event::RefusalsNotAudited {
                count: unaudited,
                seconds: now.duration_since(start).as_secs(),
            });
        }
    }

    /// The language of the BIRD that greeted `conn` (the version can
    /// change under us: an upgrade, bird vs bird6). Without a connection,
    /// the 2.x language: apply then fails before writing anything and
    /// retries.
    fn dialect(&self, conn: Option<&crate::bird::client::Connection>) -> render::Dialect {
        let Some(version) = conn.map(|c| c.version()) else {
            return render::Dialect::Bird2;
        };
        crate::bird::client::warn_unknown_version(version);
        if version.major != 1 {
            return render::Dialect::Bird2;
        }
        render::Dialect::Bird1 {
            local_as: self
                .birdconf
                .templates
                .values()
                .filter_map(|t| t.local_as.map(|n| (t.name.clone(), n)))
                .collect(),
        }
    }

    /// Renders peers + pending and makes BIRD load it.
    async fn apply(&mut self) {
        if !self.dirty {
            return;
        }
        let started = Instant::now();
        // A group's own key goes into its peers' blocks, so BIRD's sessions
        // use the key the keyed listener admitted them with.
        let passwords: BTreeMap<String, crate::secret::Secret<String>> = self
            .config
            .groups
            .iter()
            .filter_map(|g| g.password.clone().map(|k| (g.name.clone(), k)))
            .collect();
        // A bad peer never sinks a batch: set it aside, alone. What this
        // BIRD's language cannot say (1.6) counts as bad too.
        // One connection for the version and the apply: BIRD down means
        // nothing is written (apply's rule 1), and no second connection.
        let conn = apply::connect(&self.target).await;
        let dialect = self.dialect(conn.as_ref().ok());
        let now = Instant::now();
        for p in std::mem::take(&mut self.pending) {
            let Err(e) = render::check_peer_in(&p, passwords.get(&p.group), &dialect) else {
                self.pending.push(p);
                continue;
            };
            self.memory.quiet(p.addr, now);
            let neighbor = Neighbor {
                addr: p.addr,
                iface: p.iface.clone(),
            };
            let refusal = Refusal::Unwritable {
                error: e.to_string(),
            };
            let via = Via::from_name(&p.via).unwrap_or(Via::Operator);
            self.refuse(neighbor, &refusal, via, now);
        }
        let mut next = self.peers.clone();
        for p in &self.pending {
            next.insert(p.name.clone(), p.clone());
        }
        let list: Vec<Peer> = next.values().cloned().collect();
        let text = match render::render_for(&list, &passwords, &dialect) {
            Ok(t) => t,
            Err(e) => {
                // Every field was validated on the way in; this is a bug.
                // Drop the pending peers rather than loop on them.
                tracing::error!(error = %crate::event::escape(&e.to_string()), "cannot render roster, dropping pending peers");
                self.pending.clear();
                self.dirty = false;
                return;
            }
        };
        let added = self.pending.len();
        let result = match conn {
            Ok(conn) => apply::apply_on(conn, &self.target, &text).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(applied) => {
                self.commit(next, text);
                self.configured += 1;
                self.publish_keys();
                self.dirty = false;
                self.backoff = BACKOFF_MIN;
                self.last_broken = None;
                for name in applied.kept_disabled {
                    self.emit(Event::KeptDisabled { name });
                }
                let removed = std::mem::take(&mut self.removed_since_apply);
                self.emit(Event::Applied {
                    added,
                    removed,
                    millis: started.elapsed().as_millis(),
                });
            }
            Err(ApplyError::Unavailable { written, source }) => {
                if written {
                    self.commit(next, text);
                }
                let retry = self.next_backoff();
                self.emit(Event::BirdUnavailable {
                    error: source.to_string(),
                    retry_secs: retry.as_secs(),
                });
            }
            Err(ApplyError::Rejected { text: bird }) => {
                let names = self.pending.iter().map(|p| p.name.clone()).collect();
                let now = Instant::now();
                for p in std::mem::take(&mut self.pending) {
                    self.memory.quiet(p.addr, now);
                }
                self.dirty = false;
                self.emit(Event::RejectedByBird { names, text: bird });
            }
            Err(ApplyError::BrokenElsewhere { text: bird }) => {
                self.commit(next, text);
                self.next_backoff();
                if self.last_broken.as_deref() != Some(bird.as_str()) {
                    self.last_broken = Some(bird.clone());
                    self.emit(Event::BrokenElsewhere { text: bird });
                }
            }
            Err(e @ (ApplyError::Write { .. } | ApplyError::RollbackFailed { .. })) => {
                tracing::error!(error = %crate::event::escape(&e.to_string()), "cannot apply roster");
                if let ApplyError::RollbackFailed { .. } = e {
                    self.reread_include();
                }
                self.next_backoff();
            }
        }
    }

    /// The include now holds `next`.
    fn commit(&mut self, next: BTreeMap<String, Peer>, text: String) {
        self.peers = next;
        self.pending.clear();
        self.last_text = Some(text);
    }

    fn next_backoff(&mut self) -> Duration {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.schedule(wait);
        wait
    }

    fn on_birdconf_changed(&mut self) {
        match conf::scan(&self.config.bird.config, &self.config.bird.include) {
            Ok(bc) => {
                self.birdconf = bc;
                self.publish_keys();
            }
            Err(e) => {
                tracing::warn!(error = %crate::event::escape(&e.to_string()), "cannot rescan bird.conf, keeping the last scan");
                return;
            }
        }
        self.reread_include();
        self.drop_now_static();
        if self.dirty {
            // BIRD's config may have been fixed: try again now, not at
            // the backoff's deadline (`schedule` keeps the earlier one).
            self.backoff = BACKOFF_MIN;
            self.schedule(Duration::ZERO);
        }
    }

    /// Picks up an operator's edit of the owned include: a deleted block is
    /// a removal.
    fn reread_include(&mut self) {
        let text = match crate::fsx::read_to_string(&self.target.include) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %crate::event::escape(&e.to_string()), path = %self.target.include.display(), "cannot read own include");
                return;
            }
        };
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
            .peers
            .values()
            .filter(|p| !kept.contains_key(&p.name))
            .cloned()
            .collect();
        for p in removed {
            self.emit(Event::removing(
                &p,
                "deleted from the include by hand".to_string(),
            ));
        }
        self.peers = kept;
        self.last_text = Some(text);
        self.dirty = true;
        self.schedule(Duration::ZERO);
    }

    /// A neighbor an operator has since configured by hand is no longer
    /// autopeer's: drop autopeer's copy so BIRD holds one protocol for it.
    fn drop_now_static(&mut self) {
        let statics: Vec<(String, String)> = self
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
            if let Some(p) = self.peers.remove(&name) {
                self.emit(Event::removing(
                    &p,
                    format!("now configured statically at {place}"),
                ));
                self.dirty = true;
                self.schedule(Duration::ZERO);
            }
        }
    }

    /// Follows the config in force (it changes on reload).
    pub fn config_watch(&self) -> tokio::sync::watch::Receiver<Arc<Config>> {
        self.config_tx.subscribe()
    }

    /// Follows what the keyring keys from: the config, the bird.conf scan,
    /// the peers in the include and the count of successful `configure`s.
    pub fn key_watch(&self) -> tokio::sync::watch::Receiver<KeyInputs> {
        self.key_tx.subscribe()
    }

    fn publish_keys(&mut self) {
        self.key_tx.send_replace(KeyInputs {
            config: Arc::clone(&self.config),
            birdconf: Arc::new(self.birdconf.clone()),
            peers: self
                .peers
                .values()
                .map(|p| (p.addr, p.group.clone()))
                .collect(),
            configured: self.configured,
        });
    }

    fn on_reload(&mut self, config: Config) {
        tracing::info!("config reloaded");
        self.config = Arc::new(config);
        self.config_tx.send_replace(Arc::clone(&self.config));
        self.publish_keys();
        self.memory.limits = Limits::new();
        self.on_birdconf_changed();
    }
}

/// Reads the state file. A missing or unreadable one starts every expiry
/// clock at `now` (the floor); a good one leaves the floor at the epoch.
fn load_state(path: &std::path::Path, now: SystemTime) -> (HashMap<String, Runtime>, SystemTime) {
    let text = match crate::fsx::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %crate::event::escape(&e.to_string()), path = %path.display(), "cannot read the state file; expiry clocks restart");
            }
            return (HashMap::new(), now);
        }
    };
    match toml::from_str::<StateFile>(&text) {
        Ok(f) => (
            f.peers
                .into_iter()
                .map(|(name, facts)| {
                    (
                        name,
                        Runtime {
                            last_established: parse_time(facts.last_established.as_ref()),
                            down_since: parse_time(facts.down_since.as_ref()),
                            ..Runtime::default()
                        },
                    )
                })
                .collect(),
            SystemTime::UNIX_EPOCH,
        ),
        Err(e) => {
            tracing::warn!(error = %crate::event::escape(&e.to_string()), path = %path.display(), "state file unreadable; expiry clocks restart");
            (HashMap::new(), now)
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
