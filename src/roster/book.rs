//! The peers as admission sees them: in the include, in flight, pending.

use std::net::IpAddr;

use super::store::Store;
use crate::admission::{self, RosterLookup};
use crate::bird::render::Peer;
use crate::keyring::task::KeyringStatus;

/// The peers, as admission sees them.
#[derive(Debug, Default)]
pub struct Book {
    /// The include's peers, compact (the bulk of the roster).
    pub peers: Store,
    pub pending: Vec<Peer>,
    pub in_flight: Vec<Peer>,
    pub keyring: Option<KeyringStatus>,
}

impl Book {
    /// The peers in flight and pending: few, kept as [`Peer`]s.
    fn queued(&self) -> impl Iterator<Item = &Peer> {
        self.in_flight.iter().chain(self.pending.iter())
    }
}

impl RosterLookup for Book {
    fn find(&self, addr: IpAddr, iface: Option<&str>) -> Option<String> {
        let same = |a: IpAddr, i: Option<&str>| admission::same_neighbor(a, i, addr, iface);
        match self.peers.find_neighbor(same) {
            Some(name) => Some(name.to_string()),
            None => self
                .queued()
                .find(|p| same(p.addr, p.iface.as_deref()))
                .map(|p| p.name.clone()),
        }
    }

    fn group_size(&self, group: &str) -> usize {
        self.peers.group_size(group) + self.queued().filter(|p| p.group == group).count()
    }

    fn keyed(&self, group: &str, addr: IpAddr) -> bool {
        self.keyring
            .as_ref()
            .is_some_and(|k| admission::kernel_checks_key(k, group, addr))
    }

    fn named(&self, name: &str) -> Option<Peer> {
        self.peers
            .get(name)
            .or_else(|| self.queued().find(|p| p.name == name).cloned())
    }
}
