//! The peers' runtime facts ([`Runtime`]) as the roster keeps them: one
//! ordered map by name, in which the state and Info words BIRD prints
//! (`up`, `start`, `Established`, `Active`, ...) are one-byte codes and the
//! times are nanoseconds, 32 bytes a peer beside its name; a map of
//! [`Runtime`] values took 112 and three allocations (README, Performance:
//! Footprint).
//! Converted to and from [`Runtime`] at its edges; pure.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::time::{Duration, SystemTime};

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

/// A word's code: 0 none, `1 + i` for `WORDS[i]`, [`OWN`] for text kept
/// in [`Rare`].
const OWN: u8 = u8::MAX;

fn code(s: Option<&str>) -> u8 {
    match s {
        None => 0,
        Some(s) => WORDS
            .iter()
            .position(|w| *w == s)
            .map_or(OWN, |i| i as u8 + 1),
    }
}

fn text(code: u8, own: Option<&str>) -> Option<&str> {
    match code {
        0 => None,
        OWN => own,
        c => WORDS.get(usize::from(c) - 1).copied(),
    }
}

/// Nanoseconds since the epoch, never zero (`None` is zero); a time
/// before the epoch (a clock set to 1969) is kept as its first nanosecond.
fn nanos(t: Option<SystemTime>) -> Option<NonZeroU64> {
    let d = t?
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    NonZeroU64::new(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1))
}

fn time(n: Option<NonZeroU64>) -> Option<SystemTime> {
    n.map(|n| SystemTime::UNIX_EPOCH + Duration::from_nanos(n.get()))
}

/// One peer's [`Runtime`], packed: 32 bytes, where a map of [`Runtime`]
/// values took 112 and three allocations. The words BIRD prints are
/// codes; the rest is in [`Rare`], which a peer has only when BIRD shows
/// a message (an error) or a word this list does not know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Packed {
    state: u8,
    info: u8,
    last_established: Option<NonZeroU64>,
    down_since: Option<NonZeroU64>,
    rare: Option<Box<Rare>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rare {
    state: Option<Box<str>>,
    info: Option<Box<str>>,
    message: Option<Box<str>>,
}

impl Packed {
    fn pack(rt: Runtime) -> Packed {
        let state = code(rt.state.as_deref());
        let info = code(rt.info.as_deref());
        let own =
            |c: u8, s: Option<String>| (c == OWN).then(|| s.map(String::into_boxed_str)).flatten();
        let rare = Rare {
            state: own(state, rt.state),
            info: own(info, rt.info),
            message: rt.message.map(String::into_boxed_str),
        };
        Packed {
            state,
            info,
            last_established: nanos(rt.last_established),
            down_since: nanos(rt.down_since),
            rare: (rare != Rare::default()).then(|| Box::new(rare)),
        }
    }

    fn state(&self) -> Option<&str> {
        text(
            self.state,
            self.rare.as_ref().and_then(|r| r.state.as_deref()),
        )
    }

    fn info(&self) -> Option<&str> {
        text(
            self.info,
            self.rare.as_ref().and_then(|r| r.info.as_deref()),
        )
    }

    fn message(&self) -> Option<&str> {
        self.rare.as_ref().and_then(|r| r.message.as_deref())
    }

    fn unpack(&self) -> Runtime {
        Runtime {
            state: self.state().map(str::to_owned),
            info: self.info().map(str::to_owned),
            message: self.message().map(str::to_owned),
            last_established: time(self.last_established),
            down_since: time(self.down_since),
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
        self.map.get(name).is_some_and(|p| p.state != 0)
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
        self.map
            .get(name)
            .is_some_and(|p| p.state() == Some(state) && p.info() == info && p.message() == message)
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
        // Known words are codes, without a `Rare`.
        assert_eq!((f.map["p1"].state, f.map["p1"].rare.is_none()), (1, true));
        assert_eq!(std::mem::size_of::<Packed>(), 32);
        let before = f.clone();
        f.compact();
        assert_eq!(f, before);
        f.retain(|n| n != "p1");
        assert_eq!(f.len(), 2);
        f.remove("p0");
        assert_eq!(f.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["p2"]);
    }
}
