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
//! `nbma_prefixes`; the group's certificate binding (`ca`,
//! `require_cert`: [`cert::verify`]; not for an operator); the quiet period after a removal (not for an
//! operator); the group asked for; forged evidence, bad address, group
//! match (longest prefix), trust, interface, deny, static neighbor / native
//! range in bird.conf, roster (already a peer: success), `max_peers`, rate
//! (an operator is not held to it); then the protocol name (free in
//! bird.conf and in the roster) and whether the include can hold the peer.
//! A rate token is consumed only when everything before it passed.
//!
//! Trust (docs/facts.md § Trust): a [`Trust::Forged`] sighting is always
//! refused. A [`Trust::Unverified`] one (a shared syslog file, a kernel,
//! netfilter or JUNOS line) admits only under `[sources] unverified =
//! "admit"`, or, for a line relayed from BIRD ([`Via::Syslog`]), when the
//! kernel checks the group's MD5 key on BIRD's listeners
//! ([`RosterLookup::keyed`]): BIRD logs a connect only after the handshake,
//! which the kernel lets only key holders finish.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime};

use crate::bird::conf::BirdConf;
use crate::bird::render::{self, Peer};
use crate::config::{Group, UnverifiedPolicy};
use crate::event::{rfc3339, Neighbor};
use crate::keyring::task::KeyringStatus;
use crate::keyring::Family;
use crate::sources::nhrp::cert;
use crate::sources::{Trust, Via};

mod limits;
mod refusal;

pub use limits::Limits;
pub use refusal::Refusal;

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
    /// The peer name already given to `addr` (on `iface`, for a
    /// link-local address: see [`same_neighbor`]), if any.
    fn find(&self, addr: IpAddr, iface: Option<&str>) -> Option<String>;
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
    /// The spoke's IKE certificate, DER (NHRP's `remote_cert`; checked
    /// against the group's `ca`). `None`: none sent.
    pub cert: Option<&'a [u8]>,
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
    quiet: HashMap<NeighborKey, Instant>,
}

impl Memory {
    /// `addr` (on `iface`) was removed or rejected at `now`: ignore it for
    /// [`QUIET_AFTER_REMOVAL`].
    pub fn quiet(&mut self, addr: IpAddr, iface: Option<&str>, now: Instant) {
        self.quiet.insert(NeighborKey::new(addr, iface), now);
    }
}

/// Which neighbor an address names: a link-local address only together
/// with its interface (`fe80::1%eth1` and `fe80::1%eth2` are two
/// neighbors, as BIRD's `neighbor fe80::1%eth1` says); any other address
/// alone (an interface given with it changes nothing).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NeighborKey {
    addr: IpAddr,
    iface: Option<String>,
}

impl NeighborKey {
    pub fn new(addr: IpAddr, iface: Option<&str>) -> NeighborKey {
        NeighborKey {
            addr,
            iface: iface.filter(|_| is_link_local(addr)).map(str::to_string),
        }
    }
}

/// Whether `(a, a_iface)` and `(b, b_iface)` are the same neighbor
/// ([`NeighborKey`]).
pub fn same_neighbor(a: IpAddr, a_iface: Option<&str>, b: IpAddr, b_iface: Option<&str>) -> bool {
    a == b && (!is_link_local(a) || a_iface == b_iface)
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
    // Every registration shows its certificate again; other evidence about
    // a peer already in the roster admits nothing new, so it is not asked.
    if !operator && (via == Via::Nhrp || ctx.roster.find(req.addr, req.iface).is_none()) {
        check_cert(ctx.groups, req.addr, via, req.cert, ctx.wall)?;
    }
    if !operator {
        let key = NeighborKey::new(req.addr, req.iface);
        if let Some(t) = memory.quiet.get(&key) {
            if ctx.now.duration_since(*t) < QUIET_AFTER_REMOVAL {
                return Err(Refusal::RecentlyRemoved);
            }
            memory.quiet.remove(&key);
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
        memory.quiet.remove(&NeighborKey::new(req.addr, req.iface));
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

/// The certificate binding of the group `addr` falls in (its `ca`,
/// `require_cert`): an NHRP registration's certificate must chain to the
/// group's CA and name `addr`; a group with `require_cert` admits only
/// requests that carry one (an operator's `add` is not asked).
fn check_cert(
    groups: &[Group],
    addr: IpAddr,
    via: Via,
    cert: Option<&[u8]>,
    now: SystemTime,
) -> Result<(), Refusal> {
    let Some(group) = match_group(groups, addr) else {
        return Ok(());
    };
    let Some(policy) = &group.cert else {
        return Ok(());
    };
    match cert.filter(|c| !c.is_empty()) {
        Some(der) if via == Via::Nhrp => cert::verify(&policy.ca, der, addr, now)
            .map(|_| ())
            .map_err(|why| Refusal::CertRejected {
                group: group.name.clone(),
                why,
            }),
        _ if policy.required => Err(Refusal::CertMissing {
            group: group.name.clone(),
            via,
        }),
        _ => Ok(()),
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
    if let Some(name) = roster.find(addr, iface) {
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
