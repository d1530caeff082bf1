//! Admission rules: may this address become a peer, and in which group?
//!
//! Pure: no I/O, no clock (callers pass `now`), no logging. Every refusal is
//! a [`Refusal`] whose `Display` is the short reason the audit log prints
//! after `refusing neighbor 10.88.0.9: `.
//!
//! This is the only place admission policy lives: the roster and the NHRP
//! server ask [`decide`] and add nothing of their own.
//!
//! Check order in [`decide`]: for NHRP, the group match and its
//! `nbma_prefixes`; the quiet period after a removal (not for an
//! operator); the group asked for; forged evidence, bad address, group
//! match (longest prefix), trust, interface, deny, static neighbor / native
//! range in bird.conf, roster (already a peer: success), `max_peers`, rate
//! (an operator is not held to it); then the protocol name (free in
//! bird.conf and in the roster) and whether the include can hold the peer.
//! A rate token is consumed only when everything before it passed.
//!
//! Trust (DESIGN.md § Trust): a [`Trust::Forged`] sighting is always
//! refused. A [`Trust::Unverified`] one (a shared syslog file, a kernel,
//! netfilter or JUNOS line) admits only under `[sources] unverified =
//! "admit"`, or, for a line relayed from BIRD ([`Via::Syslog`]), when the
//! kernel checks the group's MD5 key on BIRD's listeners
//! ([`RosterLookup::keyed`]): BIRD logs a connect only after the handshake,
//! which the kernel lets only key holders finish.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;

use crate::bird::conf::BirdConf;
use crate::bird::render::{self, Peer};
use crate::config::{Group, UnverifiedPolicy};
use crate::event::{rfc3339, Neighbor};
use crate::keyring::task::KeyringStatus;
use crate::keyring::Family;
use crate::sources::{Trust, Via};

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
    /// Whether the kernel checks `group`'s MD5 prefix key now on every BIRD
    /// listener of `addr`'s family (so only a key holder can have made
    /// BIRD log a connect from `addr`). Default: no.
    fn keyed(&self, _group: &str, _addr: IpAddr) -> bool {
        false
    }
    /// The peer (in the include or pending) named `name`, if any.
    fn named(&self, _name: &str) -> Option<Peer> {
        None
    }
}

/// What a sighting is, as evidence: where it came from, how far it can be
/// trusted, and what the operator lets unverified evidence do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    pub via: Via,
    pub trust: Trust,
    /// `[sources] unverified`.
    pub unverified: UnverifiedPolicy,
}

impl Evidence {
    /// Evidence that needs no policy: an operator's `add`, BIRD's own log.
    pub fn verified(via: Via, trust: Trust) -> Evidence {
        Evidence {
            via,
            trust,
            unverified: UnverifiedPolicy::Refuse,
        }
    }
}

/// Why the evidence was enough to admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grounds {
    /// Verified evidence: BIRD itself, an operator, an NHRP authorization.
    Verified,
    /// An unverified line from BIRD for a group whose MD5 key the kernel
    /// checks on BIRD's listeners.
    KeyedGroup,
    /// Unverified evidence, admitted because `[sources] unverified = "admit"`.
    UnverifiedAdmitted,
}

impl Grounds {
    /// The short name used in `watch --json` (`"trust"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Grounds::Verified => "verified",
            Grounds::KeyedGroup => "keyed_group",
            Grounds::UnverifiedAdmitted => "unverified",
        }
    }
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

/// Admission granted: `peer` joins `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admit {
    pub group: String,
    pub grounds: Grounds,
    /// The peer as it will be written (named, stamped with `Context::wall`).
    pub peer: Peer,
}

/// What [`decide`] says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Admit(Admit),
    /// Already in the roster as `name`: a success, not a refusal (a peer
    /// knocks until BIRD has its protocol).
    Already {
        name: String,
        group: String,
    },
    Refuse(Refusal),
}

/// One admission request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub addr: IpAddr,
    /// The interface, for a link-local address.
    pub iface: Option<&'a str>,
    /// Where it came from and how far it is trusted; `Via::Operator` is an
    /// operator's `add`.
    pub evidence: Evidence,
    /// Only this group is considered (an operator's `add ... group G`).
    pub group: Option<&'a str>,
    /// The spoke's NBMA address (NHRP; checked against `nbma_prefixes`).
    pub nbma: Option<IpAddr>,
}

/// What a decision is made against.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub groups: &'a [Group],
    pub birdconf: &'a BirdConf,
    pub roster: &'a dyn RosterLookup,
    pub now: Instant,
    /// The wall clock, for the admitted peer's stamp.
    pub wall: SystemTime,
}

/// After BIRD rejected a peer, or an operator removed it, its knocks are
/// ignored for this long (an explicit `add` overrides).
pub const QUIET_AFTER_REMOVAL: Duration = Duration::from_secs(600);

/// What admission remembers between decisions: the rate buckets and the
/// addresses in their quiet period.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub limits: Limits,
    quiet: HashMap<IpAddr, Instant>,
}

impl Memory {
    /// `addr` was removed or rejected at `now`: ignore it for
    /// [`QUIET_AFTER_REMOVAL`].
    pub fn quiet(&mut self, addr: IpAddr, now: Instant) {
        self.quiet.insert(addr, now);
    }
}

/// Why an address was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The line claims to be BIRD's but another process wrote it.
    Forged {
        via: Via,
    },
    /// Unverified evidence under `[sources] unverified = "refuse"`.
    Unverified {
        via: Via,
    },
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
    /// Removed or rejected within [`QUIET_AFTER_REMOVAL`].
    RecentlyRemoved,
    /// An operator asked for a group that does not exist.
    NoSuchGroup {
        name: String,
    },
    /// NHRP: the group has `nbma_prefixes` and nhrpd sent no NBMA address.
    NbmaMissing {
        group: String,
    },
    /// NHRP: the NBMA address is outside the group's `nbma_prefixes`.
    NbmaOutside {
        group: String,
        nbma: IpAddr,
    },
    /// bird.conf already has a protocol of the name the peer would get.
    NameInBirdConf {
        name: String,
    },
    /// Another neighbor in the roster has the name this one would get.
    NameTaken {
        name: String,
        other: Neighbor,
    },
    /// The include cannot hold this peer (for the BIRD version in use).
    Unwritable {
        error: String,
    },
}

impl Refusal {
    /// A stable, machine-readable name (`watch --json`'s `kind`, the
    /// counts in `show sources`).
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Unspecified | Refusal::Loopback | Refusal::Multicast | Refusal::Broadcast => {
                "bad_address"
            }
            Refusal::Forged { .. } => "forged",
            Refusal::Unverified { .. } => "unverified",
            Refusal::NoGroup => "no_group",
            Refusal::LinkLocalWithoutInterface { .. } | Refusal::WrongInterface { .. } => {
                "interface"
            }
            Refusal::Denied { .. } => "denied",
            Refusal::Static { .. } => "static",
            Refusal::InNativeRange { .. } => "native_range",
            Refusal::InRoster { .. } => "in_roster",
            Refusal::MaxPeers { .. } => "max_peers",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::RecentlyRemoved => "recently_removed",
            Refusal::NoSuchGroup { .. } => "no_such_group",
            Refusal::NbmaMissing { .. } | Refusal::NbmaOutside { .. } => "nbma",
            Refusal::NameInBirdConf { .. } | Refusal::NameTaken { .. } => "name_taken",
            Refusal::Unwritable { .. } => "unwritable",
        }
    }

    /// How the roster reports this refusal of a request that came `via`:
    /// (its own `refusing` audit line, a count in `show sources`). An
    /// operator's typo and a quiet knock get no line; NHRP's own group and
    /// NBMA refusals are told in the NHRP line alone.
    pub fn reported(&self, via: Via) -> (bool, bool) {
        match self {
            Refusal::NoSuchGroup { .. } => (false, false),
            Refusal::RecentlyRemoved => (false, true),
            Refusal::NbmaMissing { .. } | Refusal::NbmaOutside { .. } => (false, false),
            Refusal::NoGroup if via == Via::Nhrp => (false, false),
            Refusal::NameInBirdConf { .. }
            | Refusal::NameTaken { .. }
            | Refusal::Unwritable { .. } => (true, false),
            _ => (true, true),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Forged { .. } => {
                f.write_str("forged line: it claims to be BIRD's but another process wrote it")
            }
            Refusal::Unverified { via } => write!(
                f,
                "unverified source {via} (set [sources] unverified = \"admit\" to accept it)"
            ),
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
            Refusal::RecentlyRemoved => {
                f.write_str("removed or rejected recently; ignored for now")
            }
            Refusal::NoSuchGroup { name } => write!(f, "no group named {name}"),
            Refusal::NbmaMissing { group } => {
                write!(f, "group {group} needs an nbma address, none sent")
            }
            Refusal::NbmaOutside { group, nbma } => {
                write!(f, "nbma {nbma} outside group {group}'s nbma_prefixes")
            }
            Refusal::NameInBirdConf { name } => {
                write!(f, "protocol name {name} is already used in bird.conf")
            }
            Refusal::NameTaken { name, other } => {
                write!(
                    f,
                    "protocol name {name} is already taken by neighbor {other}"
                )
            }
            Refusal::Unwritable { error } => {
                write!(f, "cannot be written into BIRD's config: {error}")
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

/// BIRD's own `Unexpected connect` line, however it travelled (as opposed
/// to a kernel, netfilter or JUNOS line about a SYN).
fn reports_a_connect(via: Via) -> bool {
    matches!(via, Via::BirdLog | Via::Syslog | Via::Journal)
}

/// Whether the keyring's last report says the kernel checks `group`'s MD5
/// key for `addr` now: the keyring is on and working, keys `group`, and
/// every BIRD listener of `addr`'s family (there is at least one) holds all
/// the prefix keys wanted for that family, none failed. Anything less (a
/// listener BIRD just re-created, a key the kernel refused) is "no".
pub fn kernel_checks_key(status: &KeyringStatus, group: &str, addr: IpAddr) -> bool {
    if status.off || status.error.is_some() || !status.keyed_groups.iter().any(|g| g == group) {
        return false;
    }
    let family = Family::of(addr);
    let wanted = match family {
        Family::V4 => status.wanted.0,
        Family::V6 => status.wanted.1,
    };
    let mut listeners = status
        .listeners
        .iter()
        .filter(|l| l.family == family)
        .peekable();
    wanted > 0
        && listeners.peek().is_some()
        && listeners.all(|l| l.keys >= wanted && l.failed.is_empty())
}

/// Whether `evidence` may admit `addr` into `group`, and on what grounds.
fn weigh(
    evidence: Evidence,
    roster: &dyn RosterLookup,
    group: &str,
    addr: IpAddr,
) -> Result<Grounds, Refusal> {
    let via = evidence.via;
    match evidence.trust {
        Trust::Forged => Err(Refusal::Forged { via }),
        Trust::Bird | Trust::Nhrp | Trust::Operator => Ok(Grounds::Verified),
        // Only a line that says BIRD accepted a connection proves the
        // handshake; kernel, netfilter and JUNOS lines are printed for a
        // bare SYN, before any key is checked.
        Trust::Unverified if reports_a_connect(via) && roster.keyed(group, addr) => {
            Ok(Grounds::KeyedGroup)
        }
        Trust::Unverified => match evidence.unverified {
            UnverifiedPolicy::Admit => Ok(Grounds::UnverifiedAdmitted),
            UnverifiedPolicy::Refuse => Err(Refusal::Unverified { via }),
        },
    }
}

/// Decides one request: the whole of admission policy.
pub fn decide(req: Request<'_>, ctx: Context<'_>, memory: &mut Memory) -> Decision {
    match decide_inner(req, ctx, memory) {
        Ok(d) => d,
        Err(r) => Decision::Refuse(r),
    }
}

fn decide_inner(
    req: Request<'_>,
    ctx: Context<'_>,
    memory: &mut Memory,
) -> Result<Decision, Refusal> {
    let via = req.evidence.via;
    let operator = via == Via::Operator;
    if via == Via::Nhrp {
        check_nbma(ctx.groups, req.addr, req.nbma)?;
    }
    if !operator {
        if let Some(t) = memory.quiet.get(&req.addr) {
            if ctx.now.duration_since(*t) < QUIET_AFTER_REMOVAL {
                return Err(Refusal::RecentlyRemoved);
            }
            memory.quiet.remove(&req.addr);
        }
    }
    let only;
    let groups = match req.group {
        Some(name) => match ctx.groups.iter().find(|g| g.name == name) {
            Some(g) => {
                only = [g.clone()];
                &only[..]
            }
            None => return Err(Refusal::NoSuchGroup { name: name.into() }),
        },
        None => ctx.groups,
    };
    let checked = check(
        groups,
        ctx.birdconf,
        ctx.roster,
        &mut memory.limits,
        req.addr,
        req.iface,
        req.evidence,
        ctx.now,
    );
    let (group, grounds) = match checked {
        Ok((group, grounds)) => (group, grounds),
        // An operator's explicit `add` is not held to the rate limit.
        Err(Refusal::RateLimited { group, .. }) if operator => (group, Grounds::Verified),
        Err(Refusal::InRoster { name }) => {
            let group = ctx.roster.named(&name).map(|p| p.group).unwrap_or_default();
            return Ok(Decision::Already { name, group });
        }
        Err(r) => return Err(r),
    };
    let Some(g) = groups.iter().find(|g| g.name == group) else {
        return Err(Refusal::NoSuchGroup { name: group });
    };
    let peer = Peer {
        name: render::peer_name(&g.name, req.addr, req.iface),
        group: g.name.clone(),
        template: g.template.clone(),
        addr: req.addr,
        iface: req.iface.map(str::to_string),
        neighbor: g.neighbor,
        admitted: rfc3339(ctx.wall),
        via: via.as_str().to_string(),
    };
    // BIRD would reject the whole batch over one taken name.
    if ctx.birdconf.protocol_names.contains(&peer.name) {
        return Err(Refusal::NameInBirdConf { name: peer.name });
    }
    // One name, one neighbor: a second would silently replace the first.
    if let Some(other) = ctx
        .roster
        .named(&peer.name)
        .filter(|o| (o.addr, &o.iface) != (peer.addr, &peer.iface))
    {
        return Err(Refusal::NameTaken {
            name: peer.name,
            other: Neighbor {
                addr: other.addr,
                iface: other.iface,
            },
        });
    }
    // A peer the include cannot hold is refused here, alone, not dropped
    // later with the rest of its batch.
    if let Err(e) = render::check_peer(&peer, g.password.as_ref()) {
        return Err(Refusal::Unwritable {
            error: e.to_string(),
        });
    }
    if operator {
        memory.quiet.remove(&req.addr);
    }
    Ok(Decision::Admit(Admit {
        group,
        grounds,
        peer,
    }))
}

/// NHRP: the spoke's group, and its NBMA address inside the group's
/// `nbma_prefixes` when it has any.
fn check_nbma(groups: &[Group], addr: IpAddr, nbma: Option<IpAddr>) -> Result<(), Refusal> {
    let group = match_group(groups, addr).ok_or(Refusal::NoGroup)?;
    if group.nbma_prefixes.is_empty() {
        return Ok(());
    }
    match nbma {
        None => Err(Refusal::NbmaMissing {
            group: group.name.clone(),
        }),
        Some(n) if !group.nbma_prefixes.iter().any(|p| p.contains(&n)) => {
            Err(Refusal::NbmaOutside {
                group: group.name.clone(),
                nbma: n,
            })
        }
        Some(_) => Ok(()),
    }
}

/// The group checks: whether `addr` (seen on `iface`, for link-local) may
/// join one of `groups` on `evidence`.
#[allow(clippy::too_many_arguments)]
fn check(
    groups: &[Group],
    statics: &BirdConf,
    roster: &dyn RosterLookup,
    limits: &mut Limits,
    addr: IpAddr,
    iface: Option<&str>,
    evidence: Evidence,
    now: Instant,
) -> Result<(String, Grounds), Refusal> {
    if evidence.trust == Trust::Forged {
        return Err(Refusal::Forged { via: evidence.via });
    }
    if let Some(r) = bad_address(addr) {
        return Err(r);
    }
    let g = match_group(groups, addr).ok_or(Refusal::NoGroup)?;
    let group = g.name.clone();
    let grounds = weigh(evidence, roster, &g.name, addr)?;

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
    Ok((group, grounds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::task::ListenerStatus;

    /// One group `clients` over 10.88.0.0/24, rate 2; `keyed` answers
    /// [`RosterLookup::keyed`].
    struct Fixture {
        groups: Vec<Group>,
        bird: BirdConf,
        keyed: bool,
    }

    impl RosterLookup for Fixture {
        fn find(&self, _: IpAddr) -> Option<String> {
            None
        }
        fn group_size(&self, _: &str) -> usize {
            0
        }
        fn keyed(&self, group: &str, _: IpAddr) -> bool {
            self.keyed && group == "clients"
        }
    }

    fn fixture(keyed: bool) -> Fixture {
        let text = "[[group]]\nname = \"clients\"\ntemplate = \"C\"\nprefixes = [\"10.88.0.0/24\"]\nrate = 2\n";
        Fixture {
            groups: crate::config::Config::load_str(text, std::path::Path::new("/"))
                .unwrap()
                .groups,
            bird: BirdConf::default(),
            keyed,
        }
    }

    fn run(
        f: &Fixture,
        addr: &str,
        via: Via,
        trust: Trust,
        policy: UnverifiedPolicy,
    ) -> Result<(String, Grounds), Refusal> {
        let ev = Evidence {
            via,
            trust,
            unverified: policy,
        };
        decided(decide(
            request(addr.parse().unwrap(), ev),
            context(f, Instant::now()),
            &mut Memory::default(),
        ))
    }

    fn request(addr: IpAddr, evidence: Evidence) -> Request<'static> {
        Request {
            addr,
            iface: None,
            evidence,
            group: None,
            nbma: None,
        }
    }

    fn context(f: &Fixture, now: Instant) -> Context<'_> {
        Context {
            groups: &f.groups,
            birdconf: &f.bird,
            roster: f,
            now,
            wall: SystemTime::UNIX_EPOCH,
        }
    }

    fn decided(d: Decision) -> Result<(String, Grounds), Refusal> {
        match d {
            Decision::Admit(a) => Ok((a.group, a.grounds)),
            Decision::Already { name, .. } => Err(Refusal::InRoster { name }),
            Decision::Refuse(r) => Err(r),
        }
    }

    /// An unverified sighting of 10.88.0.7 (inside `clients`).
    fn unverified(
        f: &Fixture,
        via: Via,
        policy: UnverifiedPolicy,
    ) -> Result<(String, Grounds), Refusal> {
        run(f, "10.88.0.7", via, Trust::Unverified, policy)
    }

    const UNVERIFIED: [Via; 4] = [Via::Syslog, Via::Kernel, Via::Netfilter, Via::Junos];
    const POLICIES: [UnverifiedPolicy; 2] = [UnverifiedPolicy::Refuse, UnverifiedPolicy::Admit];

    #[test]
    fn forged_is_always_refused() {
        for keyed in [false, true] {
            let f = fixture(keyed);
            for policy in POLICIES {
                for via in [Via::Journal, Via::Syslog, Via::BirdLog] {
                    // Even for an address that would be refused otherwise:
                    // the forgery is the reason that matters.
                    for addr in ["10.88.0.7", "192.0.2.1", "127.0.0.1"] {
                        let r = run(&f, addr, via, Trust::Forged, policy);
                        assert_eq!(
                            r,
                            Err(Refusal::Forged { via }),
                            "{addr} {via} {policy:?} keyed={keyed}"
                        );
                    }
                }
            }
        }
        assert_eq!(
            Refusal::Forged { via: Via::Journal }.to_string(),
            "forged line: it claims to be BIRD's but another process wrote it"
        );
    }

    #[test]
    fn unverified_is_refused_by_default_with_its_own_reason() {
        let f = fixture(false);
        assert_eq!(UnverifiedPolicy::default(), UnverifiedPolicy::Refuse);
        for via in UNVERIFIED {
            let r = unverified(&f, via, UnverifiedPolicy::default());
            assert_eq!(r, Err(Refusal::Unverified { via }), "{via}");
        }
        assert_eq!(
            Refusal::Unverified { via: Via::Syslog }.to_string(),
            "unverified source syslog (set [sources] unverified = \"admit\" to accept it)"
        );
        // Outside every group the usual reason stands.
        let r = run(
            &f,
            "192.0.2.1",
            Via::Syslog,
            Trust::Unverified,
            UnverifiedPolicy::Refuse,
        );
        assert_eq!(r, Err(Refusal::NoGroup));
    }

    #[test]
    fn unverified_admits_only_when_the_operator_opts_in() {
        let f = fixture(false);
        for via in UNVERIFIED {
            let r = unverified(&f, via, UnverifiedPolicy::Admit);
            assert_eq!(
                r,
                Ok(("clients".to_string(), Grounds::UnverifiedAdmitted)),
                "{via}"
            );
        }
    }

    #[test]
    fn verified_evidence_admits_under_refuse() {
        let f = fixture(false);
        for (via, trust) in [
            (Via::BirdLog, Trust::Bird),
            (Via::Journal, Trust::Bird),
            (Via::Operator, Trust::Operator),
            (Via::Nhrp, Trust::Nhrp),
        ] {
            let r = run(&f, "10.88.0.7", via, trust, UnverifiedPolicy::Refuse);
            assert_eq!(r.map(|a| a.1), Ok(Grounds::Verified), "{via}");
        }
    }

    #[test]
    fn a_keyed_group_verifies_birds_line_but_not_a_syn_line() {
        let f = fixture(true);
        // BIRD's line relayed through a shared file: the kernel let only a
        // key holder finish the handshake BIRD logged.
        // Kernel, netfilter and JUNOS lines are printed for a bare SYN.
        for via in [
            Via::Syslog,
            Via::BirdLog,
            Via::Journal,
            Via::Kernel,
            Via::Netfilter,
            Via::Junos,
        ] {
            let want = match via {
                Via::Kernel | Via::Netfilter | Via::Junos => Err(Refusal::Unverified { via }),
                _ => Ok(Grounds::KeyedGroup),
            };
            let r = unverified(&f, via, UnverifiedPolicy::Refuse);
            assert_eq!(r.map(|a| a.1), want, "{via}");
        }
    }

    #[test]
    fn a_trust_refusal_spends_no_rate_token() {
        let f = fixture(false);
        let now = Instant::now();
        let mut memory = Memory::default();
        let unverified = Evidence {
            via: Via::Netfilter,
            trust: Trust::Unverified,
            unverified: UnverifiedPolicy::Refuse,
        };
        for i in 0..10 {
            let a: IpAddr = format!("10.88.0.{}", i + 10).parse().unwrap();
            let r = decide(request(a, unverified), context(&f, now), &mut memory);
            assert!(matches!(r, Decision::Refuse(Refusal::Unverified { .. })));
        }
        // rate = 2: both tokens are still there.
        assert!(memory.limits.try_take("clients", Some(2), now));
        assert!(memory.limits.try_take("clients", Some(2), now));
    }

    #[test]
    fn kernel_checks_key_only_when_every_listener_has_every_key() {
        let listener = |family, keys, failed: &[&str]| ListenerStatus {
            family,
            local: match family {
                Family::V4 => "0.0.0.0:179".parse().unwrap(),
                Family::V6 => "[::]:179".parse().unwrap(),
            },
            inode: 1,
            keys,
            failed: failed.iter().map(|s| s.to_string()).collect(),
        };
        let good = KeyringStatus {
            keyed_groups: vec!["clients".into()],
            wanted: (2, 1),
            pid: Some(1),
            listeners: vec![listener(Family::V4, 2, &[]), listener(Family::V6, 1, &[])],
            ..KeyringStatus::default()
        };
        let v4: IpAddr = "10.88.0.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert!(kernel_checks_key(&good, "clients", v4));
        assert!(kernel_checks_key(&good, "clients", v6));
        assert!(
            !kernel_checks_key(&good, "other", v4),
            "group without a key"
        );
        let mut s = good.clone();
        s.off = true;
        assert!(!kernel_checks_key(&s, "clients", v4), "keyring off");
        let mut s = good.clone();
        s.error = Some("no privilege".into());
        assert!(!kernel_checks_key(&s, "clients", v4), "keyring broken");
        let mut s = good.clone();
        s.listeners = vec![listener(Family::V4, 1, &[]), listener(Family::V6, 1, &[])];
        assert!(!kernel_checks_key(&s, "clients", v4), "a key missing");
        assert!(kernel_checks_key(&s, "clients", v6));
        let mut s = good.clone();
        s.listeners.push(listener(Family::V4, 0, &[]));
        assert!(
            !kernel_checks_key(&s, "clients", v4),
            "a second listener unkeyed"
        );
        let mut s = good.clone();
        s.listeners = vec![listener(
            Family::V4,
            2,
            &["10.88.0.0/24 (group clients): EINVAL"],
        )];
        assert!(!kernel_checks_key(&s, "clients", v4), "a key refused");
        assert!(!kernel_checks_key(&s, "clients", v6), "no v6 listener");
        let mut s = good;
        s.wanted = (0, 1);
        assert!(!kernel_checks_key(&s, "clients", v4), "no v4 key wanted");
    }

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
