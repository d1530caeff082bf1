//! The roster's owner task: the I/O around [`Core`]. It reads the include,
//! bird.conf and the state file, answers messages, hands applies to a child
//! task ([`super::applier`]) and keeps answering while one runs, writes the
//! state file off the runtime's workers, and sends every event the core
//! decided to the log, the audit log and `watch` clients.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::core::{Core, Done, Now};
use super::{Msg, StartError, EXPIRY_CHECK};
use crate::apply::{self, Target};
use crate::audit::AuditLog;
use crate::bird::conf;
use crate::bird::render::{self, Peer};
use crate::config::Config;
use crate::event::Event;
use crate::keyring::task::{KeyInputs, KeyringStatus};
use crate::sources::{Flow, Sighting};

/// How many events a slow `watch` client may fall behind before it is
/// told it lost some.
const EVENT_BACKLOG: usize = 1024;

/// At most this many queued sightings are taken in one turn of the loop,
/// so a flood never keeps `status` or a reload waiting.
const DRAIN: usize = 4096;

/// The longest a burst is gathered ([`Roster::take_queued`]) before its
/// apply starts. A lone sighting never waits.
const BURST_GATHER: Duration = Duration::from_millis(20);

/// The clocks now: tokio's monotonic clock (paused in tests), the wall
/// clock.
fn now() -> Now {
    Now {
        mono: tokio::time::Instant::now().into_std(),
        wall: SystemTime::now(),
    }
}

pub struct Roster {
    core: Core,
    target: Target,
    audit: Option<AuditLog>,
    /// Shared, not copied, into the backlog's slots: 1,024 slots of an
    /// `Event` were 0.2 MB held for good.
    events: broadcast::Sender<Arc<Event>>,
    /// The config in force, for tasks that match groups themselves.
    config_tx: watch::Sender<Arc<Config>>,
    /// What the keyring task keys from (config, bird.conf scan, peers,
    /// configures).
    key_tx: watch::Sender<KeyInputs>,
    /// The keyring task's status (`None`: no keyring task, or it has not
    /// reported yet); its value is copied into the core when it changes.
    keyring: Option<watch::Receiver<Option<KeyringStatus>>>,
    /// bird.conf changed while an apply was in flight: rescan after it
    /// (the include then holds what autopeer wrote, not an operator's
    /// edit).
    rescan_after_apply: bool,
    /// Large transient work was done and freed (the start-up load, a
    /// poll's table, an apply, a rescan): give the free heap pages back
    /// at the top of the loop, or they stay resident between live data.
    trim: bool,
    /// What the sources have sent and is not here yet.
    flow: Flow,
}

impl Roster {
    /// Reads the owned include and bird.conf. A missing include is created
    /// empty (with its header) so that bird.conf's `include` can find it.
    pub fn new(config: Arc<Config>, audit: Option<AuditLog>) -> Result<Roster, StartError> {
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
        let state = super::state_file::read(&config.agent.state);
        let core = Core::new(
            Arc::clone(&config),
            birdconf,
            text,
            peers,
            state.as_deref(),
            now(),
        );
        let roster = Roster {
            target,
            audit,
            events: broadcast::channel(EVENT_BACKLOG).0,
            config_tx: watch::channel(Arc::clone(&config)).0,
            key_tx: watch::channel(key_inputs(&core)).0,
            rescan_after_apply: false,
            trim: true,
            keyring: None,
            flow: Flow::default(),
            core,
        };
        Ok(roster)
    }

    /// The peers in the owned include.
    pub fn peers(&self) -> impl Iterator<Item = Peer> + '_ {
        self.core.peers()
    }

    /// The roster as it stands.
    pub fn snapshot(&self) -> super::Snapshot {
        self.core.snapshot(now())
    }

    /// Reads the keyring task's status from `status` (see
    /// [`crate::keyring::task::status_channel`]).
    pub fn follow_keyring(&mut self, mut status: watch::Receiver<Option<KeyringStatus>>) {
        self.core.keyring_state(status.borrow_and_update().clone());
        self.keyring = Some(status);
    }

    /// Counts the sightings taken in `flow`, the sources' count of what
    /// they sent (without it, nothing is ever known to be on its way).
    pub fn follow_flow(&mut self, flow: Flow) {
        self.flow = flow;
    }

    /// Follows the config in force (it changes on reload).
    pub fn config_watch(&self) -> watch::Receiver<Arc<Config>> {
        self.config_tx.subscribe()
    }

    /// Follows what the keyring keys from: the config, the bird.conf scan,
    /// the peers in the include and the count of successful `configure`s.
    pub fn key_watch(&self) -> watch::Receiver<KeyInputs> {
        self.key_tx.subscribe()
    }

    /// Runs until `shutdown` is cancelled or every sender is gone.
    pub async fn run(
        mut self,
        mut sightings: mpsc::Receiver<Sighting>,
        mut msgs: mpsc::Receiver<Msg>,
        shutdown: CancellationToken,
    ) {
        let mut resume = self.resume();
        let mut keyring = self.keyring.take();
        let mut applying: Option<JoinHandle<Done>> = None;
        let mut writing: Option<JoinHandle<()>> = None;
        let mut sightings_open = true;
        let mut msgs_open = true;
        let mut expiry =
            tokio::time::interval_at(tokio::time::Instant::now() + EXPIRY_CHECK, EXPIRY_CHECK);
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.flush();
            if applying.is_none() {
                applying = self.start_apply();
            }
            if std::mem::take(&mut self.trim) {
                crate::keyring::sys::trim_heap();
            }
            let deadline = self.core.apply_due().map(tokio::time::Instant::from_std);
            let state_deadline = match writing {
                Some(_) => None,
                None => self.core.state_due().map(tokio::time::Instant::from_std),
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                s = sightings.recv(), if sightings_open => match s {
                    Some(s) => {
                        self.flow.arrived();
                        let _ = self.core.admit(&s, None, None, &[], now());
                        self.take_queued(&mut sightings).await;
                    }
                    None => sightings_open = false,
                },
                m = msgs.recv(), if msgs_open => match m {
                    Some(m) => self.on_msg(m, applying.is_some()),
                    None => msgs_open = false,
                },
                done = join(&mut applying) => {
                    applying = None;
                    self.finish_apply(done);
                }
                missing = join(&mut resume) => {
                    resume = None;
                    self.trim = true;
                    if missing {
                        self.core.missing_from_bird(now());
                    }
                }
                _ = join(&mut writing) => writing = None,
                k = keyring_changed(&mut keyring) => self.core.keyring_state(k),
                _ = sleep_until(deadline), if deadline.is_some() => {}
                _ = sleep_until(state_deadline), if state_deadline.is_some() => {
                    if let Some(text) = self.core.take_state() {
                        let path = self.core.config().agent.state.clone();
                        writing = Some(tokio::task::spawn_blocking(move || {
                            super::state_file::write(&path, &text)
                        }));
                    }
                }
                _ = expiry.tick() => self.core.tick(now()),
            }
            if !sightings_open
                && !msgs_open
                && applying.is_none()
                && self.core.apply_due().is_none()
            {
                break;
            }
        }
        // Admissions already decided are not thrown away on a clean stop.
        if let Some(h) = applying.take() {
            let done = join(&mut Some(h)).await;
            self.finish_apply(done);
        }
        if self.core.pending() > 0 && !self.core.config().agent.dry_run {
            let n = now();
            self.core.schedule(n.mono, Duration::ZERO);
            if let Some(job) = self.core.begin_apply(n) {
                let done = super::applier::run(job, self.target.clone()).await;
                self.finish_apply(done);
            }
        }
        self.flush();
        if let Some(h) = writing.take() {
            let _ = h.await;
        }
        if self.core.state_due().is_some() {
            if let Some(text) = self.core.take_state() {
                let path = self.core.config().agent.state.clone();
                let _ = tokio::task::spawn_blocking(move || super::state_file::write(&path, &text))
                    .await;
            }
        }
    }

    fn on_msg(&mut self, m: Msg, applying: bool) {
        match m {
            Msg::BirdConfChanged if applying => self.rescan_after_apply = true,
            Msg::BirdConfChanged => self.on_birdconf_changed(),
            Msg::Reload(c) => {
                let config = Arc::new(*c);
                self.core.reload(Arc::clone(&config));
                self.config_tx.send_replace(config);
                self.publish_keys();
                if applying {
                    self.rescan_after_apply = true;
                } else {
                    self.on_birdconf_changed();
                }
            }
            Msg::Admit {
                sighting,
                group,
                nbma,
                cert,
                reply,
            } => {
                let decided = self
                    .core
                    .admit(&sighting, group.as_deref(), nbma, &cert, now());
                let _ = reply.send(decided);
            }
            Msg::Remove { target, reply } => {
                let _ = reply.send(self.core.remove(&target, now()));
            }
            Msg::Snapshot(reply) => {
                let _ = reply.send(self.core.snapshot(now()));
            }
            Msg::Subscribe(reply) => {
                // Every event decided so far went out at the top of the
                // loop: nothing falls between the dump and the stream.
                let _ = reply.send((self.core.snapshot(now()), self.events.subscribe()));
            }
            Msg::States(rows) => {
                self.core.observe_states(&rows, now());
                self.trim = true;
            }
            Msg::StatesFailed(error) => self.core.states_failed(error),
            Msg::Emit(event) => self.core.relay(event, now()),
            Msg::NhrpCache(bound) => self.core.observe_nhrp(bound, now()),
        }
    }

    /// Group commit: the sightings already on their way go into the same
    /// apply as the first, not one apply for the first and one for the
    /// rest. A burst written in one go comes through the tasks before this
    /// one in slices (tokio's cooperative budget, 64 to 128 at a time);
    /// the sources count what they sent and whether they are still reading
    /// ([`Flow`]), so the rest is taken as long as any is on its way, for
    /// at most [`BURST_GATHER`] and [`DRAIN`] sightings, and one
    /// `configure` takes the burst (`--bench burst`). A lone sighting, or
    /// the last of a burst, starts the apply at once: nothing waits on a
    /// timer for a sighting that might come.
    async fn take_queued(&mut self, sightings: &mut mpsc::Receiver<Sighting>) {
        let until = tokio::time::Instant::now() + BURST_GATHER;
        let mut taken = 1;
        loop {
            taken += self.take_ready(sightings, DRAIN - taken);
            if taken >= DRAIN || self.flow.idle() {
                return;
            }
            tokio::select! {
                s = sightings.recv() => match s {
                    Some(s) => {
                        self.flow.arrived();
                        let _ = self.core.admit(&s, None, None, &[], now());
                        taken += 1;
                    }
                    None => return,
                },
                // A source read to the end without finding more.
                () = self.flow.went_idle() => {}
                () = tokio::time::sleep_until(until) => return,
            }
        }
    }

    /// Admits up to `max` sightings that are queued now; how many.
    fn take_ready(&mut self, sightings: &mut mpsc::Receiver<Sighting>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Ok(s) = sightings.try_recv() else { break };
            self.flow.arrived();
            let _ = self.core.admit(&s, None, None, &[], now());
            n += 1;
        }
        n
    }

    /// Hands the due apply, if any, to a child task.
    fn start_apply(&mut self) -> Option<JoinHandle<Done>> {
        let job = self.core.begin_apply(now())?;
        Some(tokio::spawn(super::applier::run(job, self.target.clone())))
    }

    fn finish_apply(&mut self, done: Done) {
        let after = self.core.finish_apply(done, now());
        self.trim = true;
        if after.keys_changed {
            self.publish_keys();
        }
        if after.reread_include {
            self.reread_include();
        }
        if std::mem::take(&mut self.rescan_after_apply) {
            self.on_birdconf_changed();
        }
        self.flush();
    }

    /// At start-up, off the owner task: is any roster peer missing from
    /// BIRD (autopeer died between writing and `configure`)?
    fn resume(&self) -> Option<JoinHandle<bool>> {
        if self.core.config().agent.dry_run {
            return None;
        }
        let names: BTreeSet<String> = self.core.peers().map(|p| p.name.clone()).collect();
        if names.is_empty() {
            return None;
        }
        let socket = self.target.socket.clone();
        Some(tokio::spawn(async move {
            let Ok(mut c) =
                crate::bird::client::Connection::connect(&socket, Duration::from_secs(10)).await
            else {
                return true;
            };
            // The compact table, not the 2 MB reply of 10,000 rows.
            let Ok(listed) = c.protocol_table(None).await else {
                return true;
            };
            !names.iter().all(|n| listed.get(n).is_some())
        }))
    }

    fn on_birdconf_changed(&mut self) {
        self.trim = true;
        let config = Arc::clone(self.core.config());
        match conf::scan(&config.bird.config, &config.bird.include) {
            Ok(bc) => {
                self.core.rescanned(bc);
                self.publish_keys();
            }
            Err(e) => {
                tracing::warn!(error = %crate::event::escape(&e.to_string()), "cannot rescan bird.conf, keeping the last scan");
                return;
            }
        }
        self.reread_include();
        self.core.after_rescan(now());
    }

    /// Picks up an operator's edit of the owned include.
    fn reread_include(&mut self) {
        match crate::fsx::read_to_string(&self.target.include) {
            Ok(text) => self.core.include_read(text, now()),
            Err(e) => {
                tracing::warn!(error = %crate::event::escape(&e.to_string()), path = %self.target.include.display(), "cannot read own include");
            }
        }
    }

    fn publish_keys(&mut self) {
        self.key_tx.send_replace(key_inputs(&self.core));
    }

    /// Logs, audits and streams what the core decided.
    /// A burst's lines go out in one write to each log
    /// ([`crate::logging::hold`], [`AuditLog::record_all`]).
    fn flush(&mut self) {
        let events = self.core.take_events();
        if events.is_empty() {
            return;
        }
        {
            let _held = crate::logging::hold();
            events.iter().for_each(Event::log);
        }
        if let Some(a) = self.audit.as_mut() {
            a.record_all(&events, SystemTime::now());
        }
        if self.events.receiver_count() > 0 {
            for event in events {
                let _ = self.events.send(Arc::new(event));
            }
        }
    }
}

fn key_inputs(core: &Core) -> KeyInputs {
    KeyInputs {
        config: Arc::clone(core.config()),
        birdconf: Arc::new(core.birdconf().clone()),
        peers: {
            let keyed: BTreeSet<&str> = core
                .config()
                .groups
                .iter()
                .filter(|g| crate::keyring::plan::is_md5_group(g, core.birdconf()))
                .map(|g| g.name.as_str())
                .collect();
            // No MD5 group (the usual case): no walk of the roster, which
            // builds every peer on the way out.
            if keyed.is_empty() {
                Arc::from([])
            } else {
                core.peers()
                    .filter(|p| keyed.contains(p.group.as_str()))
                    .map(|p| (p.addr, p.group.clone()))
                    .collect()
            }
        },
        configured: core.configured(),
    }
}

/// The output of a child task, if there is one; never resolves otherwise
/// (a child that panicked is logged and read as `T::default()`).
async fn join<T: Default>(h: &mut Option<JoinHandle<T>>) -> T {
    match h {
        Some(h) => h.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "roster child task failed");
            T::default()
        }),
        None => std::future::pending().await,
    }
}

/// The keyring's next status; never resolves without a keyring task (or
/// once it is gone, keeping its last status).
async fn keyring_changed(
    rx: &mut Option<watch::Receiver<Option<KeyringStatus>>>,
) -> Option<KeyringStatus> {
    if let Some(r) = rx {
        if r.changed().await.is_ok() {
            return r.borrow_and_update().clone();
        }
        *rx = None;
    }
    std::future::pending().await
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
