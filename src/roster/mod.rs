//! The roster: who is a peer, and the one task that owns that.
//!
//! Everything else sends it messages: sightings from the tails, "bird.conf
//! changed" from the watcher, reloads from the signal handler, admissions
//! and removals from the control socket and the NHRP server. It decides
//! (through [`crate::admission`]), gathers admissions for `batch`, and
//! hands the rendered include to an apply task while it goes on answering.
//! Every decision goes out as an [`Event`]: logged, audited.
//!
//! Rooms:
//! - [`core`]: the state and its transitions, pure (state, input, now),
//!   with the peers as admission sees them (`book`), what `show` sees
//!   (`view`) and what goes to and comes back from an apply ([`job`]);
//! - [`task`]: the owner task, the I/O around the core;
//! - [`applier`]: the apply child task (at most one in flight);
//! - `departure`: spokes whose NHRP binding is gone (pure, part of the core);
//! - [`runtime`]: session facts and expiry times; [`state_file`]: their
//!   persisted form; [`budget`]: the refusal audit budget.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, oneshot};

use crate::admission::Refusal;
use crate::bird::conf;
use crate::bird::protocols::ProtocolTable;
use crate::bird::render::{self, Peer};
use crate::config::Config;
use crate::event::Event;
use crate::keyring::task::KeyringStatus;
use crate::sources::Sighting;

pub mod applier;
mod book;
pub mod budget;
pub mod core;
mod departure;
mod edits;
mod expiry;
mod facts;
pub mod job;
pub mod runtime;
pub mod state_file;
mod store;
pub mod task;
mod view;

pub use runtime::{expires_at, observe, short_duration, Runtime};
pub use task::Roster;

/// How often expiry is checked.
pub const EXPIRY_CHECK: Duration = Duration::from_secs(60);

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
    /// `nbma`: the spoke's NBMA address (NHRP); `cert`: its IKE
    /// certificate, DER (NHRP's `remote_cert`; empty: none).
    Admit {
        sighting: Sighting,
        group: Option<String>,
        nbma: Option<IpAddr>,
        cert: Vec<u8>,
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
    Subscribe(oneshot::Sender<(Snapshot, broadcast::Receiver<Arc<Event>>)>),
    /// The observer's latest `show protocols` (every row, not only ours),
    /// compact.
    States(ProtocolTable),
    /// The observer could not ask BIRD; the text says why.
    StatesFailed(String),
    /// The addresses bound in nhrpd's cache now, or why it could not be
    /// read ([`crate::sources::nhrp::vty`]): departures.
    NhrpCache(Result<std::collections::BTreeSet<IpAddr>, String>),
    /// An event decided elsewhere (the NHRP server's answers to nhrpd):
    /// logged, audited and streamed from here like the roster's own.
    Emit(Event),
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
