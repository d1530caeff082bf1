//! The peers' runtime facts ([`Runtime`]) as the roster keeps them: one
//! ordered map by name, in which the state and Info words BIRD prints
//! (`up`, `start`, `Established`, `Active`, ...) are shared static strings,
//! not one allocation each. At 10,000 peers that is about half of what a
//! map of [`Runtime`] values takes (README, Performance: Footprint).
//! Converted to and from [`Runtime`] at its edges; pure.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use super::runtime::Runtime;

/// The words BIRD prints in the state column and as a BGP state.
const WORDS: [&str; 15] = [
    "up",
    "start",
    "down",
    "flush",
    "stop",
    "Idle",
    "Connect",
    "Active",
    "OpenSent",
    "OpenConfirm",
    "Established",
    "Close",
    "Passive",
    "Down",
    "Flush",
];

type Word = Option<Cow<'static, str>>;

fn word(s: Option<String>) -> Word {
    let s = s?;
    Some(match WORDS.iter().find(|w| **w == s) {
        Some(w) => Cow::Borrowed(*w),
        None => Cow::Owned(s),
    })
}

/// One peer's [`Runtime`], packed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Packed {
    state: Word,
    info: Word,
    message: Option<Box<str>>,
    last_established: Option<SystemTime>,
    down_since: Option<SystemTime>,
}

impl Packed {
    fn pack(rt: Runtime) -> Packed {
        Packed {
            state: word(rt.state),
            info: word(rt.info),
            message: rt.message.map(String::into_boxed_str),
            last_established: rt.last_established,
            down_since: rt.down_since,
        }
    }

    fn unpack(&self) -> Runtime {
        Runtime {
            state: self.state.as_deref().map(str::to_owned),
            info: self.info.as_deref().map(str::to_owned),
            message: self.message.as_deref().map(str::to_owned),
            last_established: self.last_established,
            down_since: self.down_since,
        }
    }
}

/// Every peer's runtime facts, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    map: BTreeMap<Box<str>, Packed>,
}

impl Facts {
    /// `name`'s facts, if any were recorded.
    pub fn get(&self, name: &str) -> Option<Runtime> {
        self.map.get(name).map(Packed::unpack)
    }

    /// True when the last poll listed `name` (its state is known).
    pub fn listed(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|p| p.state.is_some())
    }

    /// True when `name`'s recorded state, BGP state word and Info message
    /// are these: folding the same row in again changes nothing
    /// ([`super::runtime::observe`] is idempotent for a repeated row).
    pub fn shows(
        &self,
        name: &str,
        state: &str,
        info: Option<&str>,
        message: Option<&str>,
    ) -> bool {
        self.map.get(name).is_some_and(|p| {
            p.state.as_deref() == Some(state)
                && p.info.as_deref() == info
                && p.message.as_deref() == message
        })
    }

    /// Runs `f` on `name`'s facts (a default [`Runtime`] when none were
    /// recorded) and keeps what it leaves.
    pub fn update<R>(&mut self, name: &str, f: impl FnOnce(&mut Runtime) -> R) -> R {
        let mut rt = self.get(name).unwrap_or_default();
        let out = f(&mut rt);
        let packed = Packed::pack(rt);
        match self.map.get_mut(name) {
            Some(p) => *p = packed,
            None => {
                self.map.insert(name.into(), packed);
            }
        }
        out
    }

    pub fn remove(&mut self, name: &str) {
        self.map.remove(name);
    }

    /// Keeps the facts of the names `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.map.retain(|n, _| keep(n));
    }

    /// Rebuilds the map in one go, so its nodes are full: facts added one
    /// by one in name order (the first poll after start) leave every node
    /// half empty, about 1 MB more at 10,000 peers.
    pub fn compact(&mut self) {
        self.map = std::mem::take(&mut self.map).into_iter().collect();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every name with its facts, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Runtime)> {
        self.map.iter().map(|(n, p)| (&**n, p.unpack()))
    }
}

impl From<HashMap<String, Runtime>> for Facts {
    fn from(m: HashMap<String, Runtime>) -> Facts {
        Facts {
            map: m
                .into_iter()
                .map(|(n, rt)| (n.into_boxed_str(), Packed::pack(rt)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn packs_and_unpacks_every_field_unknown_words_verbatim() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let rts = [
            Runtime::default(),
            Runtime {
                state: Some("up".into()),
                info: Some("Established".into()),
                message: None,
                last_established: Some(t),
                down_since: None,
            },
            Runtime {
                state: Some("???".into()),
                info: Some("Weird".into()),
                message: Some("Socket: Connection refused".into()),
                last_established: Some(t),
                down_since: Some(t + Duration::from_secs(1)),
            },
        ];
        let mut f = Facts::default();
        for (i, rt) in rts.iter().enumerate() {
            f.update(&format!("p{i}"), |r| *r = rt.clone());
        }
        for (i, rt) in rts.iter().enumerate() {
            assert_eq!(f.get(&format!("p{i}")).as_ref(), Some(rt));
        }
        assert!(!f.listed("p0") && f.listed("p1") && !f.listed("nope"));
        assert!(matches!(f.map["p1"].state, Some(Cow::Borrowed("up"))));
        let before = f.clone();
        f.compact();
        assert_eq!(f, before);
        f.retain(|n| n != "p1");
        assert_eq!(f.len(), 2);
        f.remove("p0");
        assert_eq!(f.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["p2"]);
    }
}
