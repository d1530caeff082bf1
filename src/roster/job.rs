//! What passes between the owner task and the apply task: a [`Job`] out,
//! a [`Done`] back. Pure.

use std::collections::BTreeMap;

use crate::apply::{Applied, ApplyError};
use crate::bird::render::{self, Peer};
use crate::secret::Secret;

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
    /// TCP-AO groups: their peers are written `passive on`.
    pub passive: std::collections::BTreeSet<String>,
}

impl Job {
    /// The include for `dialect`: the text, and the new peers set aside
    /// (with the reason) because it cannot hold them. Pure.
    pub fn plan(&self, dialect: &render::Dialect) -> Plan {
        let mut set_aside = Vec::new();
        let new: std::collections::HashSet<&str> = self.new.iter().map(String::as_str).collect();
        let mut list: Vec<&Peer> = Vec::with_capacity(self.peers.len());
        for p in &self.peers {
            if new.contains(p.name.as_str()) {
                if let Err(e) = render::check_peer_in(p, self.passwords.get(&p.group), dialect) {
                    set_aside.push((p.clone(), e.to_string()));
                    continue;
                }
            }
            list.push(p);
        }
        let text = render::render_groups(&list, &self.passwords, &self.passive, dialect)
            .map_err(|e| e.to_string());
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

/// What came of a [`Job`]: the input [`super::core::Core::finish_apply`] takes.
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
pub(super) struct Flight {
    /// Removals since the last apply, reported when this one succeeds.
    pub(super) removed: usize,
}

/// What the task must do after [`super::core::Core::finish_apply`] besides emitting.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AfterApply {
    /// The include may hold something else now (a rollback failed): read
    /// it back.
    pub reread_include: bool,
    /// Keys follow the peers and the count of configures.
    pub keys_changed: bool,
}
