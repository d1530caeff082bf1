//! The one stateful part: what autopeer has placed on BIRD's listeners
//! ([`Keyring`]), and the system calls that make a [`KeyPlan`] true on
//! them. Finding BIRD and its listeners is [`super::discovery`]; deciding
//! the keys is [`super::plan`].

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;

use ipnet::IpNet;

use super::ao::DesiredAoKey;
use super::discovery::{listening_sockets, steal_listener};
use super::plan::{is_host, serves, stale_keys};
use super::report::{
    missing_listener_advice, AoListenerStatus, KeyringReport, ListenerReport, MissingListener,
};
use super::{sys, Bird, Family, KeyPlan, KeyringError, Listener};

#[derive(Debug)]
struct Tracked {
    listener: Listener,
    /// An IPv6 socket that also takes IPv4 (no IPV6_V6ONLY).
    dual: bool,
    installed: BTreeSet<IpNet>,
}

/// Add (`key` non-empty) or delete the prefix key `net` on a listener of
/// `family`. An IPv4 prefix on an IPv6 socket goes in v4-mapped form
/// (`::ffff:a.b.c.d` with the IPv4 length), which the kernel stores as an
/// IPv4 key; a plain IPv4 address there would be EINVAL.
fn set_key(
    fd: std::os::fd::BorrowedFd<'_>,
    family: Family,
    net: &IpNet,
    key: &[u8],
) -> io::Result<()> {
    let addr = match (family, net.addr()) {
        (Family::V6, IpAddr::V4(a)) => IpAddr::V6(a.to_ipv6_mapped()),
        (_, a) => a,
    };
    sys::setsockopt_md5(fd, addr, Some(net.prefix_len()), key)
}

/// The keys autopeer has placed on BIRD's listeners, by listener inode.
/// One owner (the daemon's keyring task) calls [`Keyring::sync`] at start,
/// after every bird.conf or group change, after every BIRD `configure` or
/// restart, and every few seconds (cheap: one /proc read, one sock_diag
/// dump and one setsockopt per key), and [`Keyring::remove_all`] at
/// shutdown.
#[derive(Debug, Default)]
pub struct Keyring {
    bird: Option<Bird>,
    tracked: BTreeMap<u64, Tracked>,
    bird_exact: BTreeSet<IpAddr>,
    /// AO sessions (inode) already made to sign with and ask for a group's
    /// current key (SendID, RecvID): set once, so that a peer that asks
    /// for another key (RNext) is not fought every sync.
    steered: BTreeSet<(u64, (u8, u8))>,
}

/// The TCP-AO part of one listener's sync.
#[derive(Debug, Default)]
struct AoListenerOutcome {
    keys: usize,
    removed: usize,
    failed: Vec<(IpNet, String, String)>,
    status: Option<AoListenerStatus>,
}

impl Keyring {
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Inodes of the listeners currently keyed.
    pub fn keyed_inodes(&self) -> Vec<u64> {
        self.tracked.keys().copied().collect()
    }

    /// Make BIRD's listeners hold exactly `plan`'s keys (of their family)
    /// plus whatever BIRD installs itself. Every desired key is re-applied
    /// on every call (an update in place), so a key BIRD deleted by
    /// (address, prefix length) comes back at the next sync. A new BIRD
    /// or a new listener inode (BIRD restart, docs/facts.md fact 8) is keyed from
    /// scratch. Then the keys the kernel really holds are read back
    /// (sock_diag, in BIRD's network namespace) and every prefix key that
    /// is neither wanted nor BIRD's ([`stale_keys`]) is deleted: keys left
    /// by an autopeer that was killed, whatever this process remembers.
    /// Errors: BIRD's /proc entries unreadable, no right to duplicate, or
    /// BIRD gone.
    pub fn sync(&mut self, bird: &Bird, plan: &KeyPlan) -> Result<KeyringReport, KeyringError> {
        if self.bird.as_ref() != Some(bird) {
            self.tracked.clear();
            self.bird = Some(bird.clone());
        }
        self.bird_exact = plan.bird_exact.clone();
        let pid = bird.pid();
        bird.verify()?;
        let listeners = listening_sockets(pid)?;
        let mut report = KeyringReport {
            pid,
            ..KeyringReport::default()
        };
        let mut dumps: BTreeMap<Family, io::Result<BTreeMap<u64, Vec<IpNet>>>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        let mut alive = BTreeSet::new();
        for l in listeners {
            let Some(fd) = steal_listener(bird, &l)? else {
                report.raced += 1;
                continue;
            };
            seen.insert(l.inode);
            let new_socket = !self.tracked.contains_key(&l.inode);
            let tracked = self.tracked.entry(l.inode).or_insert_with(|| Tracked {
                listener: l.clone(),
                dual: false,
                installed: BTreeSet::new(),
            });
            tracked.listener = l.clone();
            // An IPv6 listener without IPV6_V6ONLY (BIRD 1.6 `listen bgp
            // dual`) also accepts IPv4 peers, as v4-mapped addresses.
            let dual =
                l.family == Family::V6 && !rustix::net::sockopt::ipv6_v6only(&fd).unwrap_or(true);
            tracked.dual = dual;
            let mut failed = Vec::new();
            let mut wanted = BTreeSet::new();
            let keys = plan
                .keys
                .iter()
                .filter(|k| serves(l.family, dual, Family::of_net(&k.prefix)));
            for k in keys {
                wanted.insert(k.prefix);
                match set_key(fd.as_fd(), l.family, &k.prefix, k.key.expose().as_bytes()) {
                    Ok(()) => {
                        tracked.installed.insert(k.prefix);
                    }
                    Err(e) => failed.push((k.prefix, k.group.clone(), e.to_string())),
                }
            }
            let mut stale: BTreeSet<IpNet> =
                tracked.installed.difference(&wanted).copied().collect();
            let dump = dumps
                .entry(l.family)
                .or_insert_with(|| bird.diag_dump(l.family));
            match dump {
                Ok(all) => {
                    let present = all
                        .get(&(l.inode & u64::from(u32::MAX)))
                        .map_or(&[][..], Vec::as_slice);
                    stale.extend(stale_keys(present, &wanted, &plan.bird_ranges));
                }
                Err(e) => failed.push((
                    IpNet::from(l.local.ip()),
                    "(read-back)".to_owned(),
                    format!("cannot read the listener's keys back: {e}"),
                )),
            }
            let mut removed = 0;
            for p in stale {
                tracked.installed.remove(&p);
                if is_host(&p) && plan.bird_exact.contains(&p.addr()) {
                    // Same kernel entry as BIRD's exact key: BIRD owns it now.
                    continue;
                }
                match set_key(fd.as_fd(), l.family, &p, &[]) {
                    Ok(()) => removed += 1,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => failed.push((p, "(stale)".to_owned(), e.to_string())),
                }
            }
            let ao = Self::sync_ao(
                &mut self.steered,
                bird,
                &l,
                fd.as_fd(),
                dual,
                plan,
                &mut alive,
            )?;
            failed.extend(ao.failed);
            report.listeners.push(ListenerReport {
                listener: l,
                new_socket,
                keys: tracked.installed.len() + ao.keys,
                removed: removed + ao.removed,
                failed,
                ao: ao.status,
            });
            drop(fd);
        }
        // Sockets BIRD closed took their keys with them.
        self.tracked.retain(|inode, _| seen.contains(inode));
        self.steered.retain(|k| alive.contains(k));
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/netstat")) {
            report.ao_counters = super::ao::netstat_counters(&text);
        }
        for family in [Family::V4, Family::V6] {
            let n = plan.wanted_of(family);
            let has = report.listeners.iter().any(|l| {
                let dual = self.tracked.get(&l.listener.inode).is_some_and(|t| t.dual);
                serves(l.listener.family, dual, family)
            });
            if n > 0 && !has {
                report.missing.push(MissingListener {
                    family,
                    keys: n,
                    advice: missing_listener_advice(family, n),
                });
            }
        }
        Ok(report)
    }

    /// The TCP-AO part of a sync on listener `l` (`fd`, its duplicate):
    /// make it hold exactly the plan's MKTs of its family, then give every
    /// session BIRD accepted on it that carries a group's prefix MKT (a
    /// copy the kernel made at accept) the same MKTs, and the group's
    /// current key as current and RNext once per session and key.
    /// Sessions without any prefix MKT (unsigned, MD5, or BIRD's own AO
    /// peers) are not touched. When no AO key is wanted and the listener
    /// holds none, nothing is called (so a kernel without TCP-AO is no
    /// error for MD5 groups).
    fn sync_ao(
        steered: &mut BTreeSet<(u64, (u8, u8))>,
        bird: &Bird,
        l: &Listener,
        fd: std::os::fd::BorrowedFd<'_>,
        dual: bool,
        plan: &KeyPlan,
        alive: &mut BTreeSet<(u64, (u8, u8))>,
    ) -> Result<AoListenerOutcome, KeyringError> {
        let mut out = AoListenerOutcome::default();
        let wanted: Vec<&DesiredAoKey> = plan
            .ao
            .iter()
            .filter(|k| serves(l.family, dual, Family::of_net(&k.prefix)))
            .collect();
        let present = match sys::ao_get_keys(fd) {
            Ok(p) => p,
            Err(e) => {
                // One line for all of them (a kernel without TCP-AO).
                if let Some(w) = wanted.first() {
                    let (prefix, group, why) = w.failure(&e);
                    let why = if wanted.len() > 1 {
                        format!("{why} (and {} more)", wanted.len() - 1)
                    } else {
                        why
                    };
                    out.failed.push((prefix, group, why));
                }
                return Ok(out);
            }
        };
        if wanted.is_empty() && present.is_empty() {
            return Ok(out);
        }
        let r = super::ao::sync_socket(fd, l.family, &present, &wanted, None);
        out.keys = r.keys;
        out.removed = r.removed;
        out.failed = r.failed;
        let mut status = AoListenerStatus {
            inode: l.inode,
            ..AoListenerStatus::default()
        };
        match sys::ao_get_keys(fd) {
            Ok(now) => status.keys = super::ao::describe_present(&now),
            Err(e) => out.failed.push((
                IpNet::from(l.local.ip()),
                "(read-back)".to_owned(),
                format!(
                    "cannot read the TCP-AO keys back: {}",
                    super::ao::explain(&e)
                ),
            )),
        }
        status.info = sys::ao_info(fd).ok();
        // The sessions accepted through this listener: same port, same
        // socket family, and its address unless it is the wildcard.
        let sessions = super::discovery::accepted_sessions(bird.pid(), l.local.port())?
            .into_iter()
            .filter(|s| {
                s.family == l.family
                    && (l.local.ip().is_unspecified() || s.local.ip() == l.local.ip())
            });
        for s in sessions {
            let peer = s.remote.ip();
            let for_peer: Vec<&DesiredAoKey> = wanted
                .iter()
                .copied()
                .filter(|k| k.prefix.contains(&peer))
                .collect();
            let Some(sfd) = super::discovery::steal_socket(bird, s.fd, s.inode)? else {
                continue;
            };
            let Ok(has) = sys::ao_get_keys(sfd.as_fd()) else {
                continue;
            };
            if !has.iter().any(|k| !is_host(&k.net)) {
                continue;
            }
            let current = for_peer
                .iter()
                .find(|k| k.current)
                .map(|k| (k.send_id, k.recv_id));
            let r = super::ao::sync_socket(sfd.as_fd(), l.family, &has, &for_peer, current);
            status.sessions += 1;
            status.session_changes += r.added + r.removed;
            if let Ok(i) = sys::ao_info(sfd.as_fd()) {
                status.session_drops += i.bad + i.key_not_found;
            }
            for (prefix, group, err) in r.failed {
                out.failed.push((
                    prefix,
                    group,
                    format!("on the session with {}: {err}", s.remote),
                ));
            }
            if let Some(c) = current {
                alive.insert((s.inode, c));
                if !steered.contains(&(s.inode, c)) {
                    let info = sys::ao_info(sfd.as_fd()).ok();
                    if info.is_some_and(|i| super::ao::steered(&i, c))
                        || sys::ao_set_current(sfd.as_fd(), c.0, c.1).is_ok()
                    {
                        steered.insert((s.inode, c));
                    }
                }
            }
        }
        out.status = Some(status);
        Ok(out)
    }

    /// Delete every prefix key on BIRD's listeners that is not BIRD's own
    /// (not host-length, not one of `bird_ranges`), and forget what this
    /// keyring tracked: `keyring = "off"`, or no group with a key, after an
    /// autopeer that was killed left keys behind.
    pub fn sweep(
        &mut self,
        bird: &Bird,
        bird_ranges: &BTreeSet<IpNet>,
    ) -> Result<KeyringReport, KeyringError> {
        let plan = KeyPlan {
            bird_exact: self.bird_exact.clone(),
            bird_ranges: bird_ranges.clone(),
            ..KeyPlan::default()
        };
        let report = self.sync(bird, &plan);
        self.tracked.clear();
        report
    }

    /// Delete every key this keyring installed (shutdown, or `keyring =
    /// "off"`). Listeners that are gone are skipped: their keys went with them.
    pub fn remove_all(&mut self) -> Result<KeyringReport, KeyringError> {
        let Some(bird) = self.bird.clone() else {
            return Ok(KeyringReport::default());
        };
        let mut report = KeyringReport {
            pid: bird.pid(),
            ..KeyringReport::default()
        };
        let tracked = std::mem::take(&mut self.tracked);
        for (_, t) in tracked {
            let fd = match steal_listener(&bird, &t.listener) {
                Ok(Some(fd)) => fd,
                Ok(None) => continue,
                // BIRD exited: its sockets and our keys are gone.
                Err(KeyringError::Gone { .. }) => continue,
                Err(e) => return Err(e),
            };
            let mut removed = 0;
            let mut failed = Vec::new();
            // TCP-AO prefix MKTs are all ours (BIRD keys only single
            // neighbors); sessions keep their own copies.
            let present = sys::ao_get_keys(fd.as_fd()).unwrap_or_default();
            let r = super::ao::sync_socket(fd.as_fd(), t.listener.family, &present, &[], None);
            removed += r.removed;
            for p in &t.installed {
                if is_host(p) && self.bird_exact.contains(&p.addr()) {
                    continue;
                }
                match set_key(fd.as_fd(), t.listener.family, p, &[]) {
                    Ok(()) => removed += 1,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => failed.push((*p, "(removal)".to_owned(), e.to_string())),
                }
            }
            report.listeners.push(ListenerReport {
                listener: t.listener,
                new_socket: false,
                keys: 0,
                removed,
                failed,
                ao: None,
            });
        }
        Ok(report)
    }
}
