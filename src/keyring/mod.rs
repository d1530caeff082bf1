//! The keyed listener (docs/facts.md, facts 3, 4, 8, 12, 13): TCP-MD5 prefix keys
//! that autopeer installs on BIRD's own BGP listening sockets, so that the
//! kernel completes handshakes only for peers in a group prefix that sign
//! with the group's key, and BIRD then logs `Unexpected connect` for them.
//!
//! One room per job:
//!
//! - [`holder`]: `/proc` text (`net/unix`, `net/tcp`, `fd` links) and the
//!   processes holding BIRD's control socket; pure but for reading a given
//!   `/proc` root.
//! - [`discovery`]: BIRD found and pinned ([`Bird::find`]), its listeners
//!   ([`listening_sockets`], [`probe`], [`read_back`]) and the privilege
//!   check.
//! - [`plan`]: pure, property-tested: which prefix keys, for which group,
//!   given the config, the bird.conf facts and the roster
//!   ([`desired_keys`], [`plan_for`], [`key_prefixes`], [`stale_keys`]).
//! - [`report`]: what a sync did, the status lines of `show status` and
//!   `check`, and the events each change is worth ([`Reporter`]).
//! - [`state`]: the one stateful part, [`Keyring::sync`],
//!   [`Keyring::sweep`] and [`Keyring::remove_all`].
//! - [`task`]: the daemon task that owns the [`Keyring`]; it publishes its
//!   status on a watch and its events through an
//!   [`EventSink`](crate::event::EventSink), and knows nothing of the roster.
//! - [`diag`]: the sock_diag request/reply codec; [`sys`]: the system
//!   calls, the only file with `unsafe`.
//!
//! Kernel facts this relies on (checked on 6.18 in `tests/keyring.rs`): the
//! key with the longest matching prefix decides; a prefix key of full
//! length (/32, /128) is the same entry as BIRD's exact per-neighbor key,
//! so BIRD's delete removes ours and vice versa; an IPv4 prefix goes on an
//! IPv6 socket only in v4-mapped form, and only matters for a dual-stack
//! socket (no IPV6_V6ONLY, BIRD 1.6 `listen bgp dual`).
//!
//! This module must not: keep a duplicated listener descriptor open (that
//! would keep BIRD's port bound after BIRD closes it, and BIRD's next
//! listener would fail with EADDRINUSE); install a key on a socket of the
//! other family; delete a host-length key at an address where BIRD manages
//! its own exact key, or BIRD's key for a native `neighbor range`; touch a
//! process's descriptors without first checking that it is the one holding
//! BIRD's control socket ([`Bird`]); print a key anywhere (all keys are
//! [`Secret`](crate::secret::Secret)s).

pub mod ao;
pub mod diag;
pub mod discovery;
pub mod holder;
pub mod plan;
pub mod report;
pub mod state;
pub mod sys;
pub mod task;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

pub use discovery::{
    cap_eff_has_sys_ptrace, check_privileges, listener_ao_keys, listening_sockets, probe,
    read_back, read_back_in, Bird, KeyringError, Listener,
};
pub use holder::{parse_proc_net_tcp, parse_socket_link, TcpEntry, TCP_LISTEN};
pub use plan::{
    bird_can_express, bird_ranges, desired_keys, key_prefixes, plan_for, stale_keys, DesiredKey,
    KeyInputs, KeyPlan, KeyringProblem,
};
pub use report::{
    missing_listener_advice, optmem_estimate, optmem_problem, AoListenerStatus, KeyringReport,
    KeyringStatus, ListenerReport, ListenerStatus, MissingListener, Reporter, BYTES_PER_KEY,
};
pub use state::Keyring;
pub use sys::connect_signed;

/// Address family of a listener or a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn of_net(net: &IpNet) -> Family {
        Family::of(net.addr())
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}
