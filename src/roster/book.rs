//! The peers as admission sees them: in the include, in flight, pending.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::admission::{self, RosterLookup};
use crate::bird::render::Peer;
use crate::keyring::task::KeyringStatus;

/// The peers, as admission sees them.
#[derive(Debug, Default)]
pub struct Book {
    pub peers: BTreeMap<String, Peer>,
    pub pending: Vec<Peer>,
    pub in_flight: Vec<Peer>,
    pub keyring: Option<KeyringStatus>,
}

impl Book {
    pub fn all(&self) -> impl Iterator<Item = &Peer> {
        self.peers
            .values()
            .chain(self.in_flight.iter())
            .chain(self.pending.iter())
    }
}

impl RosterLookup for Book {
    fn find(&self, addr: IpAddr, iface: Option<&str>) -> Option<String> {
        self.all()
            .find(|p| admission::same_neighbor(p.addr, p.iface.as_deref(), addr, iface))
            .map(|p| p.name.clone())
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
