//! The roster as `show` commands see it.

use super::core::{Core, Now};
use super::runtime::Runtime;
use super::{GroupView, PeerView, Snapshot};
use crate::admission::RosterLookup;

impl Core {
    /// The roster as it stands.
    pub fn snapshot(&self, now: Now) -> Snapshot {
        let mut peers: Vec<PeerView> = self
            .book
            .peers
            .iter()
            .map(|p| PeerView {
                pending: false,
                runtime: self.runtime.get(&p.name).unwrap_or_default(),
                expires: self.expiry_of(&p).map(|(at, _)| at),
                peer: p,
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
