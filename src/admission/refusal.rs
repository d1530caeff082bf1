//! Why an address was not admitted: every refusal a variant, its audit
//! text (`Display`), its stable `kind` and how the roster reports it.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::event::Neighbor;
use crate::sources::nhrp::cert::CertRejection;
use crate::sources::Via;

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
    /// Removed or rejected within [`super::QUIET_AFTER_REMOVAL`].
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
    /// The group has `require_cert` and the request carries no certificate:
    /// nhrpd sent none (`remote_cert=` empty), or it came another way
    /// (BIRD's log, the journal), which cannot carry one.
    CertMissing {
        group: String,
        via: Via,
    },
    /// NHRP: the spoke's certificate failed the group's `ca` check.
    CertRejected {
        group: String,
        why: CertRejection,
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
            Refusal::CertMissing { .. } | Refusal::CertRejected { .. } => "certificate",
            Refusal::NameInBirdConf { .. } | Refusal::NameTaken { .. } => "name_taken",
            Refusal::Unwritable { .. } => "unwritable",
        }
    }

    /// The configured group the refusal concerns, if one applies (a
    /// metrics label: never a name the sender or an operator typed).
    pub fn group(&self) -> Option<&str> {
        match self {
            Refusal::LinkLocalWithoutInterface { group }
            | Refusal::WrongInterface { group, .. }
            | Refusal::Denied { group, .. }
            | Refusal::MaxPeers { group, .. }
            | Refusal::RateLimited { group, .. }
            | Refusal::NbmaMissing { group }
            | Refusal::NbmaOutside { group, .. }
            | Refusal::CertMissing { group, .. }
            | Refusal::CertRejected { group, .. } => Some(group),
            // No variant left out by accident: a new one must say.
            Refusal::Forged { .. }
            | Refusal::Unverified { .. }
            | Refusal::Unspecified
            | Refusal::Loopback
            | Refusal::Multicast
            | Refusal::Broadcast
            | Refusal::NoGroup
            | Refusal::Static { .. }
            | Refusal::InNativeRange { .. }
            | Refusal::InRoster { .. }
            | Refusal::RecentlyRemoved
            | Refusal::NoSuchGroup { .. }
            | Refusal::NameInBirdConf { .. }
            | Refusal::NameTaken { .. }
            | Refusal::Unwritable { .. } => None,
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
            // Told in the NHRP line alone, counted by kind.
            Refusal::CertRejected { .. } => (false, true),
            Refusal::CertMissing { via, .. } if *via == Via::Nhrp => (false, true),
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
            Refusal::CertMissing { group, via } if *via == Via::Nhrp => {
                write!(f, "group {group} requires a certificate, nhrpd sent none")
            }
            Refusal::CertMissing { group, .. } => write!(
                f,
                "group {group} requires a certificate, which only an NHRP registration carries"
            ),
            Refusal::CertRejected { group, why } => write!(f, "{why} (group {group})"),
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
