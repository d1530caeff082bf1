//! Where sightings come from: log lines (and later NHRP and the control
//! socket). A [`Sighting`] is "address A tried to reach our BGP port".

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

pub mod lines;
pub mod nhrp;
pub mod tail;

/// One observation that a BGP speaker at `addr` tried to reach us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The peer's address, parsed (never copied as text into BIRD's config).
    pub addr: IpAddr,
    /// The peer's source port, when the line carries it.
    pub port: Option<u16>,
    /// The interface of a link-local address (`fe80::1%vti3`), validated as
    /// a safe interface name.
    pub iface: Option<String>,
    /// Which format or source produced it.
    pub via: Via,
    /// How far the line can be trusted.
    pub trust: Trust,
    /// When it was seen (the time the line was read).
    pub at: SystemTime,
}

/// The source format of a sighting, shown in the audit log as `(via X)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// BIRD's own log file: `2026-11-23 06:54:53.477 <WARN> BGP: Unexpected connect ...`.
    BirdLog,
    /// BIRD's line relayed through syslog (RFC 3164, RFC 3339, RFC 5424).
    Syslog,
    /// A Linux kernel TCP-MD5 line.
    Kernel,
    /// The FreeBSD/JUNOS `tcp_auth_ok` line.
    Junos,
    /// A netfilter LOG line for a TCP SYN to port 179.
    Netfilter,
    /// An NHRP registration (FRR nhrpd event socket).
    Nhrp,
    /// An operator's `autopeer add`.
    Operator,
    /// BIRD's line read from the systemd journal.
    Journal,
}

impl Via {
    /// The short name used in audit lines and status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::BirdLog => "bird-log",
            Via::Syslog => "syslog",
            Via::Kernel => "kernel-log",
            Via::Junos => "junos-log",
            Via::Netfilter => "netfilter",
            Via::Nhrp => "nhrp",
            Via::Operator => "operator",
            Via::Journal => "journal",
        }
    }

    /// Parse the short name back (used by the state file and the include's comments).
    pub fn from_name(s: &str) -> Option<Via> {
        [
            Via::BirdLog,
            Via::Syslog,
            Via::Kernel,
            Via::Junos,
            Via::Netfilter,
            Via::Nhrp,
            Via::Operator,
            Via::Journal,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a sighting can be trusted (DESIGN.md § Trust).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trust {
    /// Claims to be BIRD but provably is not: a journal entry with BIRD's
    /// identifier whose trusted fields (`_PID`, `_EXE`, ...) name another
    /// process. Never admits, whatever `[sources] unverified` says.
    Forged,
    /// A line in a shared file (syslog, kern.log) that any local user may
    /// forge, or a kernel/netfilter line printed for a bare (spoofable) SYN.
    Unverified,
    /// BIRD itself speaking: BIRD's own log file (named by bird.conf), or a
    /// journal entry whose trusted fields name BIRD's process.
    Bird,
    /// An NHRP registration nhrpd asked us to authorize.
    Nhrp,
    /// An operator's explicit command.
    Operator,
}
