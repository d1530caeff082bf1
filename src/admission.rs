//! Admission rules: may this address become a peer, and in which group?
//!
//! Pure: no I/O, no clock (callers pass `now`), no logging. Every refusal is
//! a [`Refusal`] whose `Display` is the short reason the audit log prints
//! after `refusing neighbor 10.88.0.9: `.
//!
//! Check order in [`decide`]: bad address, group match (longest prefix),
//! interface, deny, static neighbor / native range in bird.conf, roster,
//! `max_peers`, rate. A rate token is consumed only when everything else
//! passed.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::bird::conf::BirdConf;
use crate::config::Group;

/// The group whose prefix holds `addr` most specifically. On a tie (which
/// config validation forbids) the first group in config order wins.
pub fn match_group(groups: &[Group], addr: IpAddr) -> Option<&Group> {
    let mut best: Option<(&Group, u8)> = None;
    for g in groups {
        if let Some(len) = g.match_len(addr) {
            if best.map_or(true, |(_, l)| len > l) {
                best = Some((g, len));
            }
        }
    }
    best.map(|(g, _)| g)
}

/// What admission needs to know about the roster (owned by the roster task).
pub trait RosterLookup {
    /// The peer name already given to `addr`, if any.
    fn find(&self, addr: IpAddr) -> Option<String>;
    /// How many peers `group` has now.
    fn group_size(&self, group: &str) -> usize;
}

/// Per-group token buckets: `rate` admissions per minute, burst `rate`.
/// A bucket starts full.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    buckets: HashMap<String, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, scaled by 60 s in nanoseconds per minute: one token is
    /// `NANOS_PER_MINUTE` units, and `rate` units accrue per nanosecond.
    units: u128,
    last: Instant,
}

const NANOS_PER_MINUTE: u128 = 60_000_000_000;

impl Limits {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one admission from `group`'s bucket if one is available.
    /// `rate = None` is unlimited and always succeeds.
    pub fn try_take(&mut self, group: &str, rate: Option<u32>, now: Instant) -> bool {
        let Some(rate) = rate else { return true };
        let cap = u128::from(rate) * NANOS_PER_MINUTE;
        let b = self.buckets.entry(group.to_string()).or_insert(Bucket {
            units: cap,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_nanos();
        b.units = b
            .units
            .saturating_add(elapsed.saturating_mul(u128::from(rate)))
            .min(cap);
        b.last = b.last.max(now);
        if b.units >= NANOS_PER_MINUTE {
            b.units -= NANOS_PER_MINUTE;
            true
        } else {
            false
        }
    }

    /// How long until `group` has a token again (zero if it has one now).
    pub fn wait_time(&self, group: &str, rate: Option<u32>, now: Instant) -> Duration {
        let (Some(rate), Some(b)) = (rate, self.buckets.get(group)) else {
            return Duration::ZERO;
        };
        if rate == 0 {
            return Duration::MAX;
        }
        let elapsed = now.saturating_duration_since(b.last).as_nanos();
        let units = b
            .units
            .saturating_add(elapsed.saturating_mul(u128::from(rate)));
        if units >= NANOS_PER_MINUTE {
            return Duration::ZERO;
        }
        let nanos = (NANOS_PER_MINUTE - units).div_ceil(u128::from(rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Drops the buckets of groups not in `names` (after a reload).
    pub fn retain_groups(&mut self, names: &[&str]) {
        self.buckets.retain(|g, _| names.contains(&g.as_str()));
    }
}

/// Admission granted: the peer joins `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admit {
    pub group: String,
}

/// Why an address was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `0.0.0.0` or `::`.
    Unspecified,
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    NoGroup,
    /// A link-local address without its interface.
    LinkLocalWithoutInterface {
        group: String,
    },
    WrongInterface {
        group: String,
        expected: String,
        got: Option<String>,
    },
    Denied {
        group: String,
        entry: IpNet,
    },
    /// bird.conf already has a protocol for this neighbor.
    Static {
        protocol: String,
        file: PathBuf,
        line: usize,
    },
    /// A native dynamic BGP protocol covers this address.
    InNativeRange {
        protocol: String,
        range: IpNet,
        file: PathBuf,
        line: usize,
    },
    InRoster {
        name: String,
    },
    MaxPeers {
        group: String,
        max: usize,
    },
    RateLimited {
        group: String,
        rate: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unspecified => f.write_str("unspecified address"),
            Refusal::Loopback => f.write_str("loopback address"),
            Refusal::Multicast => f.write_str("multicast address"),
            Refusal::Broadcast => f.write_str("broadcast address"),
            Refusal::NoGroup => f.write_str("no group matches"),
            Refusal::LinkLocalWithoutInterface { group } => {
                write!(f, "link-local address without interface (group {group})")
            }
            Refusal::WrongInterface {
                group,
                expected,
                got,
            } => match got {
                Some(got) => write!(f, "group {group} expects interface {expected}, not {got}"),
                None => write!(f, "group {group} expects interface {expected}, none given"),
            },
            Refusal::Denied { group, entry } => write!(f, "denied by group {group} ({entry})"),
            Refusal::Static {
                protocol,
                file,
                line,
            } => write!(
                f,
                "configured statically as protocol {protocol} ({}:{line})",
                file.display()
            ),
            Refusal::InNativeRange {
                protocol,
                range,
                file,
                line,
            } => write!(
                f,
                "inside neighbor range {range} of dynamic protocol {protocol} ({}:{line})",
                file.display()
            ),
            Refusal::InRoster { name } => write!(f, "already a peer as {name}"),
            Refusal::MaxPeers { group, max } => {
                write!(f, "group {group} is full (max_peers {max})")
            }
            Refusal::RateLimited { group, rate } => {
                write!(f, "group {group} admits at most {rate} per minute")
            }
        }
    }
}

/// Addresses never admitted, whatever the groups say.
pub fn bad_address(addr: IpAddr) -> Option<Refusal> {
    if addr.is_unspecified() {
        Some(Refusal::Unspecified)
    } else if addr.is_loopback() {
        Some(Refusal::Loopback)
    } else if addr.is_multicast() {
        Some(Refusal::Multicast)
    } else if addr == IpAddr::V4(Ipv4Addr::BROADCAST) {
        Some(Refusal::Broadcast)
    } else {
        None
    }
}

fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(_) => false,
    }
}

/// Decides whether `addr` (seen on `iface`, for link-local) may be admitted.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    groups: &[Group],
    statics: &BirdConf,
    roster: &dyn RosterLookup,
    limits: &mut Limits,
    addr: IpAddr,
    iface: Option<&str>,
    now: Instant,
) -> Result<Admit, Refusal> {
    if let Some(r) = bad_address(addr) {
        return Err(r);
    }
    let g = match_group(groups, addr).ok_or(Refusal::NoGroup)?;
    let group = g.name.clone();

    if is_link_local(addr) && iface.is_none() {
        return Err(Refusal::LinkLocalWithoutInterface { group });
    }
    if let (Some(expected), Some(got)) = (&g.interface, iface) {
        if expected != got {
            return Err(Refusal::WrongInterface {
                group,
                expected: expected.clone(),
                got: Some(got.to_string()),
            });
        }
    }
    if let Some(entry) = g.deny.iter().find(|d| d.contains(&addr)) {
        return Err(Refusal::Denied {
            group,
            entry: *entry,
        });
    }
    if let Some(n) = statics.static_neighbor(addr, iface) {
        return Err(Refusal::Static {
            protocol: n.protocol.clone(),
            file: n.file.clone(),
            line: n.line,
        });
    }
    if let Some(r) = statics.native_range(addr) {
        return Err(Refusal::InNativeRange {
            protocol: r.protocol.clone(),
            range: r.range,
            file: r.file.clone(),
            line: r.line,
        });
    }
    if let Some(name) = roster.find(addr) {
        return Err(Refusal::InRoster { name });
    }
    if roster.group_size(&g.name) >= g.max_peers {
        return Err(Refusal::MaxPeers {
            group,
            max: g.max_peers,
        });
    }
    if !limits.try_take(&g.name, g.rate, now) {
        return Err(Refusal::RateLimited {
            group,
            rate: g.rate.unwrap_or(0),
        });
    }
    Ok(Admit { group })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_rate_per_minute() {
        let t0 = Instant::now();
        let mut l = Limits::new();
        for _ in 0..3 {
            assert!(l.try_take("g", Some(3), t0));
        }
        assert!(!l.try_take("g", Some(3), t0));
        assert_eq!(l.wait_time("g", Some(3), t0), Duration::from_secs(20));
        assert!(!l.try_take("g", Some(3), t0 + Duration::from_millis(19_999)));
        assert!(l.try_take("g", Some(3), t0 + Duration::from_secs(20)));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.try_take("g", Some(3), later));
        }
        assert!(!l.try_take("g", Some(3), later));
        assert!(l.try_take("other", Some(3), later));
        assert!(l.try_take("g", None, later));
    }
}
