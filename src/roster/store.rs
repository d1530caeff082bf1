//! The peers of the owned include, kept compact: at 10,000 peers a
//! `BTreeMap<String, Peer>` (six `String`s a peer, the name twice) was the
//! largest thing the daemon held. Here a peer is its name once (the map's
//! key), its address and neighbor as plain values, the names it shares
//! with other peers (group, template, source) as small indexes into one
//! list of words, and its admission time as seconds when the text is the
//! canonical RFC 3339 form (`2026-11-23T06:55:02Z`), so that the [`Peer`]
//! given back is byte for byte the one put in. Peers are handed out as
//! owned [`Peer`]s; lookups by address, group or name read the compact
//! form without building one.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::bird::render::{NeighborAs, Peer};

#[derive(Debug, Default)]
pub struct Store {
    map: BTreeMap<Box<str>, Slot>,
    /// Group, template and source names, each once. Only grows: its
    /// entries are names from the config and the include, a handful.
    words: Vec<Box<str>>,
}

/// 56 bytes, beside its name (16) in the map's node.
#[derive(Debug)]
struct Slot {
    addr: IpAddr,
    neighbor: Option<NeighborAs>,
    group: u32,
    template: u32,
    via: u32,
    /// Seconds since the epoch; ignored when `rare` holds the text.
    admitted: u64,
    rare: Option<Box<Rare>>,
}

/// What most peers do not have: an interface (link-local neighbor), an
/// admission time not in canonical form (an include edited by hand).
#[derive(Debug)]
struct Rare {
    iface: Option<Box<str>>,
    admitted: Option<Box<str>>,
}

/// `text` as seconds since the epoch if that gives the same text back.
fn canonical_secs(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(text).ok()?;
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    (secs_text(secs) == text).then_some(secs)
}

fn secs_text(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
}

impl Store {
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<Peer> {
        self.map.get_key_value(name).map(|(n, s)| self.peer(n, s))
    }

    /// Adds `peer`, or replaces the peer of that name.
    pub fn insert(&mut self, peer: Peer) {
        let (name, slot) = self.slot(peer);
        self.map.insert(name, slot);
    }

    fn slot(&mut self, peer: Peer) -> (Box<str>, Slot) {
        let secs = canonical_secs(&peer.admitted);
        let rare = (peer.iface.is_some() || secs.is_none()).then(|| {
            Box::new(Rare {
                iface: peer.iface.map(String::into_boxed_str),
                admitted: secs.is_none().then(|| peer.admitted.into_boxed_str()),
            })
        });
        let slot = Slot {
            addr: peer.addr,
            neighbor: peer.neighbor,
            group: self.word(&peer.group),
            template: self.word(&peer.template),
            via: self.word(&peer.via),
            admitted: secs.unwrap_or(0),
            rare,
        };
        (peer.name.into_boxed_str(), slot)
    }

    pub fn remove(&mut self, name: &str) -> Option<Peer> {
        let (n, s) = self.map.remove_entry(name)?;
        Some(self.peer(&n, &s))
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(|k| &**k)
    }

    /// The peers, in name order, each built on the way out.
    pub fn iter(&self) -> impl Iterator<Item = Peer> + '_ {
        self.map.iter().map(|(n, s)| self.peer(n, s))
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Peer) -> bool) {
        let words = &self.words;
        self.map.retain(|n, s| keep(&Store::build(words, n, s)));
    }

    /// The name of the first peer whose address and interface `same`
    /// says yes to.
    pub fn find_neighbor(&self, same: impl Fn(IpAddr, Option<&str>) -> bool) -> Option<&str> {
        self.map
            .iter()
            .find(|(_, s)| same(s.addr, s.rare.as_ref().and_then(|r| r.iface.as_deref())))
            .map(|(n, _)| &**n)
    }

    /// How many peers `group` has.
    pub fn group_size(&self, group: &str) -> usize {
        match self.words.iter().position(|w| &**w == group) {
            Some(i) => self.map.values().filter(|s| s.group as usize == i).count(),
            None => 0,
        }
    }

    fn word(&mut self, w: &str) -> u32 {
        let i = match self.words.iter().position(|x| &**x == w) {
            Some(i) => i,
            None => {
                self.words.push(w.into());
                self.words.len() - 1
            }
        };
        u32::try_from(i).expect("fewer than 2^32 distinct group, template and source names")
    }

    fn peer(&self, name: &str, s: &Slot) -> Peer {
        Store::build(&self.words, name, s)
    }

    fn build(words: &[Box<str>], name: &str, s: &Slot) -> Peer {
        let word = |i: u32| words[i as usize].to_string();
        Peer {
            name: name.to_string(),
            group: word(s.group),
            template: word(s.template),
            addr: s.addr,
            iface: s
                .rare
                .as_ref()
                .and_then(|r| r.iface.as_deref())
                .map(str::to_string),
            neighbor: s.neighbor,
            admitted: match s.rare.as_ref().and_then(|r| r.admitted.as_deref()) {
                Some(text) => text.to_string(),
                None => secs_text(s.admitted),
            },
            via: word(s.via),
        }
    }
}

impl FromIterator<Peer> for Store {
    /// Built in one go, so the map's nodes are full (one by one, in
    /// order, each split leaves a node half empty); of two peers with one
    /// name the last wins, as with [`Store::insert`].
    fn from_iter<I: IntoIterator<Item = Peer>>(iter: I) -> Store {
        let mut store = Store::default();
        let slots: Vec<(Box<str>, Slot)> = iter.into_iter().map(|p| store.slot(p)).collect();
        store.map = slots.into_iter().collect();
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, admitted: &str, iface: Option<&str>) -> Peer {
        Peer {
            name: name.into(),
            group: "clients".into(),
            template: "t_clients".into(),
            addr: "fe80::1".parse().unwrap(),
            iface: iface.map(Into::into),
            neighbor: Some(NeighborAs::As(65001)),
            admitted: admitted.into(),
            via: "bird-log".into(),
        }
    }

    #[test]
    fn gives_back_what_was_put_in() {
        let mut s = Store::default();
        let canonical = peer("a", "2026-11-23T06:55:02Z", Some("vti3"));
        // Not canonical (fraction, offset, lower case): kept as text.
        let odd = [
            peer("b", "2026-11-23T06:55:02.5Z", None),
            peer("c", "2026-11-23t06:55:02z", None),
            peer("d", "not a time", None),
            peer("e", "1969-12-31T23:59:59Z", None),
        ];
        s.insert(canonical.clone());
        for p in &odd {
            s.insert(p.clone());
        }
        assert!(s.map["a"].rare.as_ref().unwrap().admitted.is_none());
        assert!(s.map["b"].rare.as_ref().unwrap().admitted.is_some());
        assert_eq!(std::mem::size_of::<Slot>(), 56);
        assert_eq!(s.get("a"), Some(canonical.clone()));
        for p in &odd {
            assert_eq!(s.get(&p.name).as_ref(), Some(p));
        }
        assert_eq!(s.words.len(), 3, "group, template and source once each");
        assert_eq!(s.group_size("clients"), 5);
        assert_eq!(s.group_size("other"), 0);
        let vti3 = |a: IpAddr, i: Option<&str>| a.to_string() == "fe80::1" && i == Some("vti3");
        assert_eq!(s.find_neighbor(vti3), Some("a"));
        assert_eq!(s.find_neighbor(|_, i| i == Some("eth0")), None);
        assert_eq!(s.names().collect::<Vec<_>>(), ["a", "b", "c", "d", "e"]);
        s.retain(|p| p.name != "c");
        assert_eq!(s.remove("a"), Some(canonical));
        assert_eq!(s.names().count(), 3);
        assert!(!s.contains("c"));
    }

    #[test]
    fn built_in_one_go_like_one_by_one() {
        let first = peer("x", "2026-11-23T06:55:02Z", None);
        let mut last = peer("x", "2026-11-24T00:00:00Z", None);
        last.group = "other".into();
        let peers = [peer("y", "2026-11-23T06:55:03Z", None), first, last.clone()];
        let built: Store = peers.iter().cloned().collect();
        let mut one_by_one = Store::default();
        for p in peers {
            one_by_one.insert(p);
        }
        assert_eq!(
            built.iter().collect::<Vec<_>>(),
            one_by_one.iter().collect::<Vec<_>>()
        );
        assert_eq!(built.get("x"), Some(last));
        assert!(
            built.map["y"].rare.is_none(),
            "a common peer needs nothing beside its slot"
        );
        assert_eq!(built.group_size("clients"), 1);
    }
}
