//! The peers as admission sees them: in the include, in flight, pending.

use std::collections::HashMap;
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
    pub pending: Queue,
    pub in_flight: Queue,
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
        if let Some(name) = self.peers.find_neighbor(same) {
            return Some(name.to_string());
        }
        if !self.in_flight.may_hold(addr) && !self.pending.may_hold(addr) {
            return None;
        }
        self.queued()
            .find(|p| same(p.addr, p.iface.as_deref()))
            .map(|p| p.name.clone())
    }

    fn group_size(&self, group: &str) -> usize {
        self.peers.group_size(group)
            + self.in_flight.group_size(group)
            + self.pending.group_size(group)
    }

    fn keyed(&self, group: &str, addr: IpAddr) -> bool {
        self.keyring
            .as_ref()
            .is_some_and(|k| admission::kernel_checks_key(k, group, addr))
    }

    fn named(&self, name: &str) -> Option<Peer> {
        self.peers.get(name).or_else(|| {
            self.in_flight
                .named(name)
                .or_else(|| self.pending.named(name))
                .cloned()
        })
    }
}

/// Peers pending or in flight, in order, with what admission asks of them
/// for every sighting kept at hand: how many each group has, each peer by
/// name, and whether an address is there at all. A burst of 1,000
/// admissions asks 1,000 times; scanning the queue each time made it
/// quadratic.
#[derive(Debug, Default)]
pub struct Queue {
    peers: Vec<Peer>,
    by_name: HashMap<String, usize>,
    groups: HashMap<String, usize>,
    /// How many queued peers have each address (any interface).
    addrs: HashMap<IpAddr, usize>,
}

impl Queue {
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Peer> {
        self.peers.iter()
    }

    pub fn push(&mut self, peer: Peer) {
        self.by_name.insert(peer.name.clone(), self.peers.len());
        *self.groups.entry(peer.group.clone()).or_default() += 1;
        *self.addrs.entry(peer.addr).or_default() += 1;
        self.peers.push(peer);
    }

    /// Keeps the peers `keep` says yes to, in order.
    pub fn retain(&mut self, keep: impl FnMut(&Peer) -> bool) {
        let mut peers = std::mem::take(&mut self.peers);
        peers.retain(keep);
        self.clear();
        peers.into_iter().for_each(|p| self.push(p));
    }

    pub fn clear(&mut self) {
        *self = Queue::default();
    }

    /// Moves every peer of `other` to the end of this queue.
    pub fn append(&mut self, other: &mut Queue) {
        std::mem::take(other).into_iter().for_each(|p| self.push(p));
    }

    pub fn named(&self, name: &str) -> Option<&Peer> {
        self.by_name.get(name).and_then(|&i| self.peers.get(i))
    }

    pub fn group_size(&self, group: &str) -> usize {
        self.groups.get(group).copied().unwrap_or(0)
    }

    /// False when no queued peer has `addr`.
    pub fn may_hold(&self, addr: IpAddr) -> bool {
        self.addrs.contains_key(&addr)
    }
}

impl IntoIterator for Queue {
    type Item = Peer;
    type IntoIter = std::vec::IntoIter<Peer>;

    fn into_iter(self) -> Self::IntoIter {
        self.peers.into_iter()
    }
}

impl<'a> IntoIterator for &'a Queue {
    type Item = &'a Peer;
    type IntoIter = std::slice::Iter<'a, Peer>;

    fn into_iter(self) -> Self::IntoIter {
        self.peers.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, group: &str, addr: &str) -> Peer {
        Peer {
            name: name.into(),
            group: group.into(),
            template: "t".into(),
            addr: addr.parse().unwrap(),
            iface: None,
            neighbor: None,
            admitted: "2026-11-23T06:55:02Z".into(),
            via: "bird-log".into(),
        }
    }

    /// The indexes answer as a scan of the peers would, after every kind
    /// of change.
    fn agrees(q: &Queue) {
        for p in q.iter() {
            assert_eq!(q.named(&p.name).map(|x| &x.name), Some(&p.name));
            assert!(q.may_hold(p.addr));
            let n = q.iter().filter(|x| x.group == p.group).count();
            assert_eq!(q.group_size(&p.group), n);
        }
        assert_eq!(q.group_size("nobody"), 0);
        assert!(q.named("nobody").is_none());
        let addrs: std::collections::HashSet<IpAddr> = q.iter().map(|p| p.addr).collect();
        assert_eq!(q.addrs.len(), addrs.len());
        assert_eq!(q.by_name.len(), q.len());
    }

    #[test]
    fn queue_indexes_follow_push_retain_append_and_clear() {
        let mut a = Queue::default();
        a.push(peer("a1", "g1", "10.0.0.1"));
        a.push(peer("a2", "g2", "10.0.0.2"));
        a.push(peer("a3", "g1", "10.0.0.3"));
        agrees(&a);
        a.retain(|p| p.name != "a1");
        agrees(&a);
        assert!(!a.may_hold("10.0.0.1".parse().unwrap()));
        assert_eq!(a.group_size("g1"), 1);
        let mut b = Queue::default();
        b.push(peer("b1", "g1", "10.0.0.9"));
        b.append(&mut a);
        assert!(a.is_empty());
        agrees(&a);
        agrees(&b);
        assert_eq!(
            b.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["b1", "a2", "a3"]
        );
        b.clear();
        agrees(&b);
        assert_eq!(b.len(), 0);
    }
}
