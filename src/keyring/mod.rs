//! The keyed listener (DESIGN facts 3, 4, 8, 12, 13): TCP-MD5 prefix keys
//! that autopeer installs on BIRD's own BGP listening sockets, so that the
//! kernel completes handshakes only for peers in a group prefix that sign
//! with the group's key, and BIRD then logs `Unexpected connect` for them.
//!
//! Pure parts (unit- and property-tested): [`parse_proc_net_tcp`],
//! [`stale_keys`],
//! [`parse_socket_link`], [`key_prefixes`], [`desired_keys`],
//! [`bird_can_express`], [`optmem_estimate`], and [`diag`]'s sock_diag
//! request/reply codec, and [`holder`]'s `/proc` reading. I/O parts:
//! [`Bird::find`], [`listening_sockets`],
//! [`probe`], [`read_back`], [`Keyring::sync`], [`Keyring::remove_all`];
//! the system calls themselves live in [`sys`], the only file with `unsafe`.
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
//! [`Secret`]s).

pub mod diag;
pub mod holder;
pub mod sys;
pub mod task;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;

use crate::bird::conf::BirdConf;
use crate::config::Group;
use crate::secret::Secret;

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

/// One listening TCP socket of the BIRD process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The descriptor number inside BIRD.
    pub fd: i32,
    /// The socket's inode (`socket:[INODE]`); a new inode is a new socket.
    pub inode: u64,
    pub family: Family,
    /// Bound address and port (the BGP port, 179 unless `local ... port N`).
    pub local: SocketAddr,
}

/// One row of `/proc/PID/net/tcp` or `tcp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddr,
    /// Kernel TCP state; `0x0A` is LISTEN.
    pub state: u8,
    pub inode: u64,
}

/// The kernel's `TCP_LISTEN`.
pub const TCP_LISTEN: u8 = 0x0A;

/// Parse `/proc/net/tcp` or `/proc/net/tcp6` text. Accepts rows such as
///
/// ```text
///    1: 0100007F:8709 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 57488 2 00000000d87eb0ec 100 0 0 10 0
///    1: 00000000000000000000000001000000:8707 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 57486 1 0000000017c6f915 100 0 0 10 0
/// ```
///
/// Addresses are 32-bit words printed in host byte order (`%08X` of the
/// in-memory network-order word); the port is already in host order. The
/// header line and malformed rows are skipped.
pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpEntry> {
    text.lines().filter_map(parse_tcp_row).collect()
}

fn parse_tcp_row(line: &str) -> Option<TcpEntry> {
    let mut it = line.split_whitespace();
    let sl = it.next()?;
    if !sl.ends_with(':') {
        return None;
    }
    let local = parse_hex_sockaddr(it.next()?)?;
    let _remote = it.next()?;
    let state = u8::from_str_radix(it.next()?, 16).ok()?;
    // tx:rx, tr:when, retrnsmt, uid, timeout, then inode.
    let inode = it.nth(5)?.parse().ok()?;
    Some(TcpEntry {
        local,
        state,
        inode,
    })
}

fn parse_hex_word(hex: &str) -> Option<[u8; 4]> {
    if hex.len() != 8 {
        return None;
    }
    Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
}

fn parse_hex_sockaddr(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    if port.len() != 4 {
        return None;
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(parse_hex_word(addr)?)),
        32 => {
            let mut b = [0u8; 16];
            for (i, chunk) in b.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&parse_hex_word(addr.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The inode in a `/proc/PID/fd/N` link target such as `socket:[57488]`.
pub fn parse_socket_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Why the keyring cannot find, open or key BIRD's listener.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot connect to BIRD's control socket {path}: {source}")]
    PeerCred {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "no process holds BIRD's control socket {path} (looked for its listening \
         socket in /proc/*/fd{detail})"
    )]
    NoHolder { path: PathBuf, detail: String },
    #[error("BIRD (pid {pid}) no longer holds its control socket: it exited or restarted")]
    Gone { pid: i32 },
    #[error("cannot read {path}: {source}")]
    Proc {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot duplicate BIRD's socket (pid {pid}, fd {fd}): {source}{hint}")]
    Steal {
        pid: i32,
        fd: i32,
        #[source]
        source: io::Error,
        hint: &'static str,
    },
}

const PRIV_HINT: &str =
    " (pidfd_getfd needs root or CAP_SYS_PTRACE over BIRD, and Linux 5.6 or later)";

fn steal_error(pid: i32, fd: i32, source: io::Error) -> KeyringError {
    let hint = match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::ENOSYS) => PRIV_HINT,
        _ => "",
    };
    KeyringError::Steal {
        pid,
        fd,
        source,
        hint,
    }
}

/// The BIRD process, found as the holder of its listening control socket
/// and pinned by a pidfd. Every duplication of one of its descriptors is
/// preceded by [`Bird::verify`]: the pinned process must still hold that
/// control socket, so a process that merely took over BIRD's pid number,
/// or calls itself `bird`, is never keyed.
#[derive(Debug, Clone)]
pub struct Bird {
    pid: i32,
    pidfd: Arc<OwnedFd>,
    /// The control socket's inode and its descriptor number in BIRD.
    ctl_inode: u64,
    ctl_fd: i32,
}

impl PartialEq for Bird {
    fn eq(&self, other: &Bird) -> bool {
        (self.pid, self.ctl_inode) == (other.pid, other.ctl_inode)
    }
}

/// Whether `bound` (what `getsockname` says a socket is bound to) names
/// the same file as `configured`: the same bytes, or the same file name in
/// the same directory once symlinks (such as /var/run -> /run) are resolved.
fn same_socket_path(bound: &[u8], configured: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bound = Path::new(std::ffi::OsStr::from_bytes(bound));
    if bound == configured {
        return true;
    }
    let dir = |p: &Path| p.parent().and_then(|d| d.canonicalize().ok());
    bound.is_absolute()
        && bound.file_name().is_some()
        && bound.file_name() == configured.file_name()
        && dir(bound).is_some()
        && dir(bound) == dir(configured)
}

impl Bird {
    /// Find the process that holds the listening control socket `ctl`:
    /// connect to it (its `SO_PEERCRED` names the process that called
    /// `listen()`, BIRD itself with `-f`, else its exited parent), look for
    /// holders of a listening socket of that name through `/proc` (see
    /// [`holder`]), and accept the first that, pinned by a pidfd, still
    /// holds it and whose duplicated socket listens, is bound to `ctl`, and
    /// carries the same credentials as the socket the connection reached.
    pub fn find(ctl: &Path) -> Result<Bird, KeyringError> {
        let cred = sys::peer_cred(ctl).map_err(|source| KeyringError::PeerCred {
            path: ctl.to_owned(),
            source,
        })?;
        let creator = cred.0;
        let proc = Path::new("/proc");
        let mut tried = BTreeSet::new();
        // BIRD in the foreground: the creator holds it, found without a
        // scan. Else (daemonized, or the creator's pid now belongs to
        // another process) every process is looked at.
        let wanted = holder::candidate_inodes(proc, creator, ctl);
        for pass in 0..2 {
            let holders = match pass {
                0 => holder::holders_in(proc, creator, &wanted),
                _ => holder::find_holders(proc, ctl, Some(creator)),
            };
            for h in holders {
                if !tried.insert(h) {
                    continue;
                }
                match Bird::confirm(&h, ctl, cred) {
                    Ok(Some(b)) => return Ok(b),
                    Ok(None) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => return Err(steal_error(h.pid, h.fd, e)),
                }
            }
        }
        let mut detail = match tried.len() {
            0 => String::new(),
            n => format!("; {n} candidate(s) rejected: not that socket"),
        };
        if check_privileges().is_err() {
            detail.push_str("; reading another user's /proc/PID/fd needs root or CAP_SYS_PTRACE");
        }
        Err(KeyringError::NoHolder {
            path: ctl.to_owned(),
            detail,
        })
    }

    /// Pin `h` and check its socket. `Ok(None)`: not BIRD's control socket.
    fn confirm(h: &holder::Holder, ctl: &Path, cred: (i32, u32, u32)) -> io::Result<Option<Bird>> {
        let pidfd = sys::pidfd_open(h.pid)?;
        let bird = Bird {
            pid: h.pid,
            pidfd: Arc::new(pidfd),
            ctl_inode: h.inode,
            ctl_fd: h.fd,
        };
        // After pinning: the process now at this pid holds the inode.
        if !bird.holds_control_socket() {
            return Ok(None);
        }
        let sock = match sys::getfd(bird.pidfd.as_fd(), h.fd) {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Ok(None),
            Err(e) => return Err(e),
        };
        if sys::inode_of(sock.as_fd())? != h.inode {
            return Ok(None);
        }
        let Ok(facts) = sys::unix_facts(sock.as_fd()) else {
            return Ok(None);
        };
        let named = facts.path.is_some_and(|p| same_socket_path(&p, ctl));
        Ok((facts.listening && named && facts.cred == cred).then_some(bird))
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The inode of BIRD's listening control socket.
    pub fn control_inode(&self) -> u64 {
        self.ctl_inode
    }

    /// Whether `/proc/PID/fd` holds the control socket's inode (the
    /// descriptor it was found at, else any).
    fn holds_control_socket(&self) -> bool {
        let link = fs::read_link(format!("/proc/{}/fd/{}", self.pid, self.ctl_fd));
        if link
            .ok()
            .and_then(|t| t.to_str().and_then(parse_socket_link))
            == Some(self.ctl_inode)
        {
            return true;
        }
        let want = BTreeSet::from([self.ctl_inode]);
        !holder::holders_in(Path::new("/proc"), self.pid, &want).is_empty()
    }

    /// `Ok` while the pinned process is alive and still holds the control
    /// socket. The pidfd keeps later duplications on this very process
    /// (ESRCH once it is gone), and this check, made after pinning, shows
    /// that the process at the pid is the one holding BIRD's socket.
    pub fn verify(&self) -> Result<(), KeyringError> {
        // A dead BIRD (or a zombie) has no /proc/PID/fd entries; a process
        // that took over the pid number does not hold BIRD's socket.
        if self.holds_control_socket() {
            Ok(())
        } else {
            Err(KeyringError::Gone { pid: self.pid })
        }
    }

    /// A duplicate of BIRD's descriptor `fd`, after [`Bird::verify`].
    fn steal(&self, fd: i32) -> io::Result<OwnedFd> {
        if self.verify().is_err() {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        sys::getfd(self.pidfd.as_fd(), fd)
    }

    /// The MD5 keys of every TCP listener of `family` in BIRD's network
    /// namespace, by inode (sock_diag, from a thread that joined BIRD's
    /// namespace when it is not ours).
    pub fn diag_dump(&self, family: Family) -> io::Result<BTreeMap<u64, Vec<IpNet>>> {
        let ours = fs::read_link("/proc/self/ns/net")?;
        let theirs = fs::read_link(format!("/proc/{}/ns/net", self.pid))?;
        if ours == theirs {
            return sys::sock_diag_dump(family);
        }
        self.verify()
            .map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        sys::in_net_namespace_of(self.pidfd.as_fd(), || sys::sock_diag_dump(family))
    }
}

/// Every listening TCP socket of process `pid`: its descriptors whose link
/// is `socket:[INODE]`, matched against LISTEN rows of `/proc/PID/net/tcp`
/// and `tcp6` (the process's own network namespace). BIRD has no TCP
/// listener besides BGP, so each one is a BGP listener.
pub fn listening_sockets(pid: i32) -> Result<Vec<Listener>, KeyringError> {
    let fd_dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let fds = holder::socket_fds(&fd_dir).map_err(|source| KeyringError::Proc {
        path: fd_dir.clone(),
        source,
    })?;
    let mut by_inode: BTreeMap<u64, i32> = BTreeMap::new();
    for (fd, inode) in fds {
        by_inode.entry(inode).or_insert(fd);
    }
    let mut out = Vec::new();
    for (file, family) in [("tcp", Family::V4), ("tcp6", Family::V6)] {
        let path = PathBuf::from(format!("/proc/{pid}/net/{file}"));
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            // No IPv6 in the kernel: no tcp6 file, no IPv6 listener.
            Err(e) if e.kind() == io::ErrorKind::NotFound && family == Family::V6 => continue,
            Err(source) => return Err(KeyringError::Proc { path, source }),
        };
        for row in parse_proc_net_tcp(&text) {
            if row.state != TCP_LISTEN {
                continue;
            }
            if let Some(&fd) = by_inode.get(&row.inode) {
                out.push(Listener {
                    fd,
                    inode: row.inode,
                    family,
                    local: row.local,
                });
            }
        }
    }
    out.sort_by_key(|l| (l.family, l.local, l.inode));
    Ok(out)
}

/// A duplicate of `l` from BIRD, checked to still be the same socket (the
/// descriptor may have been closed and reused meanwhile). `Ok(None)`: the
/// listener is gone or changed.
fn steal_listener(bird: &Bird, l: &Listener) -> Result<Option<OwnedFd>, KeyringError> {
    match bird.steal(l.fd) {
        Ok(fd) => match sys::inode_of(fd.as_fd()) {
            Ok(ino) if ino == l.inode => Ok(Some(fd)),
            _ => Ok(None),
        },
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            Err(KeyringError::Gone { pid: bird.pid })
        }
        Err(e) => Err(steal_error(bird.pid, l.fd, e)),
    }
}

/// The MD5 keys (address/prefix length, never the key) the kernel holds on
/// `listener`, read back through sock_diag as `ss -tlnie` shows them: ours
/// and BIRD's alike. `Ok(None)`: the socket is not visible from here (BIRD
/// runs in another network namespace, or the socket is gone); see
/// [`read_back_in`].
pub fn read_back(listener: &Listener) -> io::Result<Option<Vec<IpNet>>> {
    let mut all = sys::sock_diag_dump(listener.family)?;
    // inet_diag_msg carries the inode as 32 bits.
    Ok(all.remove(&(listener.inode & u64::from(u32::MAX))))
}

/// [`read_back`] in BIRD's network namespace, wherever autopeer runs.
pub fn read_back_in(bird: &Bird, listener: &Listener) -> io::Result<Option<Vec<IpNet>>> {
    let mut all = bird.diag_dump(listener.family)?;
    Ok(all.remove(&(listener.inode & u64::from(u32::MAX))))
}

/// Duplicate every BIRD listener once and close it again: proves that
/// `sync` will be allowed to key them. Returns the listeners.
pub fn probe(bird: &Bird) -> Result<Vec<Listener>, KeyringError> {
    bird.verify()?;
    let listeners = listening_sockets(bird.pid)?;
    for l in &listeners {
        drop(steal_listener(bird, l)?);
    }
    Ok(listeners)
}

/// `Ok` when this process may duplicate another process's descriptors
/// (root, or CAP_SYS_PTRACE in the effective set), else a sentence for the
/// operator. Yama `ptrace_scope = 3` still forbids it: [`probe`] tries it
/// for real against BIRD.
pub fn check_privileges() -> Result<(), String> {
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    if cap_eff_has_sys_ptrace(&status) {
        Ok(())
    } else {
        Err(
            "the keyed listener needs root or CAP_SYS_PTRACE to duplicate BIRD's \
             listening socket (pidfd_getfd); run autopeer as root, give it \
             AmbientCapabilities=CAP_SYS_PTRACE, or set keyring = \"off\""
                .to_owned(),
        )
    }
}

/// Whether the `CapEff:` line of `/proc/self/status` text holds
/// CAP_SYS_PTRACE (bit 19), e.g. `CapEff:\t000001ffffffffff`.
pub fn cap_eff_has_sys_ptrace(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 19) != 0)
}

/// Bytes of socket option memory one MD5 key costs on this kernel
/// (`sizeof(struct tcp_md5sig_key)`, charged by `sock_kmalloc` to
/// `sk_omem_alloc`), measured by `tests/keyring.rs::optmem_per_key` on
/// Linux 6.18 x86_64: optmem_max 131072 holds 963 keys.
pub const BYTES_PER_KEY: usize = 136;

/// A sentence when `n_keys` MD5 keys on one listener (BIRD's per-neighbor
/// keys plus the keyring's prefix keys) would not fit in `optmem_max`
/// bytes of socket option memory (fact 4).
pub fn optmem_estimate(optmem_max: usize, n_keys: usize) -> Option<String> {
    // The first key also allocates the per-socket `tcp_md5sig_info`.
    let need = n_keys.saturating_mul(BYTES_PER_KEY).saturating_add(64);
    if n_keys == 0 || need < optmem_max {
        return None;
    }
    let fit = optmem_max.saturating_sub(64) / BYTES_PER_KEY;
    Some(format!(
        "{n_keys} TCP-MD5 keys on one BGP listener need about {need} bytes of socket \
         option memory but net.core.optmem_max is {optmem_max} (room for about {fit}); \
         BIRD will fail with \"Kernel MD5 auth failed\": raise it, e.g. \
         sysctl -w net.core.optmem_max={}",
        need.saturating_mul(2).next_power_of_two()
    ))
}

/// [`optmem_estimate`] with this host's `/proc/sys/net/core/optmem_max`.
/// `n_md5_neighbors`: MD5 neighbors BIRD keys on one listener (static and
/// roster), plus the keyring's own key count.
pub fn optmem_problem(n_md5_neighbors: usize) -> Option<String> {
    let text = fs::read_to_string("/proc/sys/net/core/optmem_max").ok()?;
    let max = text.trim().parse().ok()?;
    optmem_estimate(max, n_md5_neighbors)
}

/// The minimal set of prefixes that covers `group_prefixes` minus
/// `exempt` (fact 13): the maximal prefixes inside the difference, sorted.
/// Exempt prefixes of the other family or outside every group prefix are
/// ignored; overlapping or adjacent group prefixes are merged first.
pub fn key_prefixes(group_prefixes: &[IpNet], exempt: &[IpNet]) -> Vec<IpNet> {
    let groups: Vec<IpNet> = group_prefixes.iter().map(IpNet::trunc).collect();
    let exempt: Vec<IpNet> = exempt.iter().map(IpNet::trunc).collect();
    let mut out = Vec::new();
    for net in IpNet::aggregate(&groups) {
        subtract(net, &exempt, &mut out);
    }
    out.sort();
    out
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn subtract(net: IpNet, exempt: &[IpNet], out: &mut Vec<IpNet>) {
    let relevant: Vec<IpNet> = exempt
        .iter()
        .filter(|e| Family::of_net(e) == Family::of_net(&net) && overlaps(&net, e))
        .copied()
        .collect();
    if relevant.is_empty() {
        out.push(net);
        return;
    }
    if relevant.iter().any(|e| e.prefix_len() <= net.prefix_len()) {
        // An exempt prefix covers all of `net`.
        return;
    }
    // Every relevant exemption lies strictly inside `net`: split it.
    if let Ok(halves) = net.subnets(net.prefix_len() + 1) {
        for half in halves {
            subtract(half, &relevant, out);
        }
    }
}

/// Why BIRD's config language cannot carry `password` (a `"`, CR, LF or
/// NUL, or more than 80 bytes), or `None` when it can. Never echoes it.
/// The rule is [`crate::bird::lang::key_problem`], shared with the config
/// and rendering.
pub fn bird_can_express(password: &str) -> Option<&'static str> {
    crate::bird::lang::key_problem(password).map(crate::bird::lang::KeyProblem::describe)
}

/// One prefix key to keep on the listener of its family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredKey {
    pub prefix: IpNet,
    pub key: Secret<String>,
    pub group: String,
}

/// What [`Keyring::sync`] should make true.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPlan {
    pub keys: Vec<DesiredKey>,
    /// Addresses where BIRD installs its own exact key (static neighbors
    /// with a password). A host-length key of ours at such an address is
    /// the same kernel entry as BIRD's, so it is never deleted by us.
    pub bird_exact: BTreeSet<IpAddr>,
    /// bird.conf's native `neighbor range`s: BIRD keys each range with a
    /// password itself (one prefix key of exactly that range), so a
    /// prefix key found there is BIRD's and never removed by us.
    pub bird_ranges: BTreeSet<IpNet>,
    /// Groups with no password (their own or their template's): not keyed.
    pub unkeyed: Vec<String>,
}

impl KeyPlan {
    pub fn keys_of(&self, family: Family) -> impl Iterator<Item = &DesiredKey> {
        self.keys
            .iter()
            .filter(move |k| Family::of_net(&k.prefix) == family)
    }
}

/// bird.conf's native `neighbor range`s (see [`KeyPlan::bird_ranges`]).
pub fn bird_ranges(conf: &BirdConf) -> BTreeSet<IpNet> {
    conf.ranges.iter().map(|r| r.range.trunc()).collect()
}

/// Why a group cannot be keyed; `check` prints these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringProblem {
    #[error(
        "group {group}: prefix {prefix} is a default route; a key for it would \
             demand MD5 from every address: list real prefixes"
    )]
    DefaultPrefix { group: String, prefix: IpNet },
    #[error("group {group}: password (from {source_name}) cannot be used: {reason}")]
    Password {
        group: String,
        source_name: String,
        reason: &'static str,
    },
}

/// The prefix keys for `groups` (fact 13): each group with a password (its
/// own, else its template's `password` in bird.conf) gets its prefixes
/// minus the addresses that must stay reachable without its key:
/// static neighbors inside that lack this exact password, `deny` entries,
/// BIRD's native `neighbor range`s, and more specific prefixes of groups
/// without a password. More specific prefixes of other keyed groups need no
/// hole: the kernel picks the longest matching key.
pub fn desired_keys(groups: &[Group], conf: &BirdConf) -> Result<KeyPlan, Vec<KeyringProblem>> {
    let mut plan = KeyPlan::default();
    let mut problems = Vec::new();
    let key_of = |g: &Group| -> Option<(Secret<String>, String)> {
        if let Some(p) = &g.password {
            return Some((p.clone(), "the group".to_owned()));
        }
        conf.templates
            .get(&g.template)
            .and_then(|t| t.password.clone())
            .map(|p| (p, format!("template {}", g.template)))
    };
    let unkeyed_prefixes: Vec<IpNet> = groups
        .iter()
        .filter(|g| key_of(g).is_none())
        .flat_map(|g| g.prefixes.iter().copied())
        .collect();
    for n in &conf.neighbors {
        if n.password {
            plan.bird_exact.insert(n.addr);
        }
    }
    plan.bird_ranges = bird_ranges(conf);
    for g in groups {
        let Some((key, source_name)) = key_of(g) else {
            plan.unkeyed.push(g.name.clone());
            continue;
        };
        let mut bad = false;
        for p in &g.prefixes {
            if p.prefix_len() == 0 {
                problems.push(KeyringProblem::DefaultPrefix {
                    group: g.name.clone(),
                    prefix: *p,
                });
                bad = true;
            }
        }
        if let Some(reason) = bird_can_express(key.expose()) {
            problems.push(KeyringProblem::Password {
                group: g.name.clone(),
                source_name,
                reason,
            });
            bad = true;
        }
        if bad {
            continue;
        }
        let mut exempt: Vec<IpNet> = g.deny.clone();
        for n in &conf.neighbors {
            let same_key = n.key.as_ref().map(|k| k.expose()) == Some(key.expose());
            if g.contains(n.addr) && !same_key {
                exempt.push(IpNet::from(n.addr));
            }
        }
        exempt.extend(conf.ranges.iter().map(|r| r.range));
        for u in &unkeyed_prefixes {
            if g.prefixes
                .iter()
                .any(|p| u.prefix_len() > p.prefix_len() && p.contains(u))
            {
                exempt.push(*u);
            }
        }
        for prefix in key_prefixes(&g.prefixes, &exempt) {
            plan.keys.push(DesiredKey {
                prefix,
                key: key.clone(),
                group: g.name.clone(),
            });
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

/// What one listener got in one [`Keyring::sync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerReport {
    pub listener: Listener,
    /// First time this socket (inode) was keyed: BIRD (re)created it.
    pub new_socket: bool,
    /// Keys present after the sync.
    pub keys: usize,
    /// Stale keys deleted in this sync.
    pub removed: usize,
    /// Keys the kernel refused: (prefix, group, error text).
    pub failed: Vec<(IpNet, String, String)>,
}

/// A family for which keys are desired but BIRD has no listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingListener {
    pub family: Family,
    /// Keys that could not be placed.
    pub keys: usize,
    /// What the operator must add to bird.conf.
    pub advice: String,
}

/// The outcome of a sync or removal. Its `Display` never shows a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyringReport {
    pub pid: i32,
    pub listeners: Vec<ListenerReport>,
    pub missing: Vec<MissingListener>,
    /// Listeners that vanished between listing and duplicating (BIRD was
    /// re-creating them): the next sync keys the new ones.
    pub raced: usize,
}

impl KeyringReport {
    /// Whether every desired key sits on a listener of its family.
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
            && self.raced == 0
            && self.listeners.iter().all(|l| l.failed.is_empty())
    }
}

impl fmt::Display for KeyringReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.listeners {
            let li = &l.listener;
            write!(
                f,
                "{} listener {} (BIRD pid {}, fd {}, inode {}): {} key(s)",
                li.family, li.local, self.pid, li.fd, li.inode, l.keys
            )?;
            if l.removed > 0 {
                write!(f, ", {} removed", l.removed)?;
            }
            if l.new_socket {
                f.write_str(", keyed as a new socket")?;
            }
            writeln!(f)?;
            for (prefix, group, err) in &l.failed {
                writeln!(f, "  cannot key {prefix} (group {group}): {err}")?;
            }
        }
        for m in &self.missing {
            writeln!(f, "{}", m.advice)?;
        }
        if self.raced > 0 {
            writeln!(
                f,
                "{} listener(s) changed while being keyed; the next sync keys them",
                self.raced
            )?;
        }
        Ok(())
    }
}

/// What the operator must add when BIRD has no listener of `family` while
/// `keys` keys of that family are desired.
pub fn missing_listener_advice(family: Family, keys: usize) -> String {
    let (example, af) = match family {
        Family::V4 => ("192.0.2.1", "ipv4"),
        Family::V6 => ("2001:db8::1", "ipv6"),
    };
    format!(
        "BIRD has no {family} BGP listener, so {keys} {family} prefix key(s) are not \
         installed and {family} MD5 peers cannot knock: BIRD opens a listener only \
         while at least one started {family} BGP protocol exists (a `disabled` one \
         does not count). Add a passive multihop placeholder, e.g. \
         `protocol bgp autopeer_{af}_listener {{ local as 65000; neighbor {example} as 65000; \
         multihop; passive; {af} {{ import none; export none; }}; }}`"
    )
}

#[derive(Debug)]
struct Tracked {
    listener: Listener,
    /// An IPv6 socket that also takes IPv4 (no IPV6_V6ONLY).
    dual: bool,
    installed: BTreeSet<IpNet>,
}

/// Whether a listener of `listener` family (`dual`: IPv6 without
/// V6ONLY) can carry keys for prefixes of family `prefix`.
fn serves(listener: Family, dual: bool, prefix: Family) -> bool {
    listener == prefix || (dual && prefix == Family::V4)
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
}

/// Prefix keys on a listener that nobody wants: not host-length (BIRD's
/// exact keys, and a host-length key of ours is the same entry), not in
/// `wanted`, and not one of BIRD's own range keys. These are what a killed
/// autopeer left behind, or what a changed plan no longer covers.
pub fn stale_keys(
    present: &[IpNet],
    wanted: &BTreeSet<IpNet>,
    bird_ranges: &BTreeSet<IpNet>,
) -> Vec<IpNet> {
    present
        .iter()
        .filter(|p| !is_host(p) && !wanted.contains(p) && !bird_ranges.contains(p))
        .copied()
        .collect()
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
    /// or a new listener inode (BIRD restart, fact 8) is keyed from
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
        let pid = bird.pid;
        bird.verify()?;
        let listeners = listening_sockets(pid)?;
        let mut report = KeyringReport {
            pid,
            ..KeyringReport::default()
        };
        let mut dumps: BTreeMap<Family, io::Result<BTreeMap<u64, Vec<IpNet>>>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
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
            report.listeners.push(ListenerReport {
                listener: l,
                new_socket,
                keys: tracked.installed.len(),
                removed,
                failed,
            });
            drop(fd);
        }
        // Sockets BIRD closed took their keys with them.
        self.tracked.retain(|inode, _| seen.contains(inode));
        for family in [Family::V4, Family::V6] {
            let n = plan.keys_of(family).count();
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
            pid: bird.pid,
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
            });
        }
        Ok(report)
    }
}

fn is_host(p: &IpNet) -> bool {
    p.prefix_len() == p.max_prefix_len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1058 1 00000000f011cffd 100 0 0 10 0
   1: 0100007F:8709 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 57488 2 00000000d87eb0ec 100 0 0 10 0
   2: 0100007F:8709 0100007F:E9B6 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000008b7e5d5 20 0 0 10 -1
   3: 020200C0:9C2E 507100CB:0050 06 00000000:00000000 03:000015C6 00000000     0        0 0 3 0000000076218b66
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:8708 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 57487 1 000000002493a4f8 100 0 0 10 0
   1: 00000000000000000000000001000000:8707 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 57486 1 0000000017c6f915 100 0 0 10 0
   2: B80D0120000000000000000001000000:00B3 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000017c6f915 100 0 0 10 0
";

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_proc_net_tcp_v4() {
        let rows = parse_proc_net_tcp(TCP);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].local, "0.0.0.0:2024".parse().unwrap());
        assert_eq!(rows[1].local, "127.0.0.1:34569".parse().unwrap());
        assert_eq!((rows[1].state, rows[1].inode), (TCP_LISTEN, 57488));
        assert_eq!(rows[2].state, 1);
        assert_eq!(rows[3].local, "192.0.2.2:39982".parse().unwrap());
        assert_eq!(rows[3].inode, 0);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_proc_net_tcp6_byte_order() {
        let rows = parse_proc_net_tcp(TCP6);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].local, "[::]:34568".parse().unwrap());
        assert_eq!(rows[1].local, "[::1]:34567".parse().unwrap());
        assert_eq!(rows[2].local, "[2001:db8::1]:179".parse().unwrap());
        assert_eq!(rows[2].inode, 99);
    }

    #[test]
    fn malformed_rows_are_skipped() {
        let bad = "   0: 0100007F:87 00000000:0000 0A x x x x x 5\n\
                   1: ZZ00007F:8709 00000000:0000 0A 0:0 0:0 0 0 0 7\n\
                   2: 0100007F:8709\n\
                   garbage\n\u{0}\u{ff}\n";
        assert!(parse_proc_net_tcp(bad).is_empty());
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[57488]"), Some(57488));
        assert_eq!(parse_socket_link("pipe:[57488]"), None);
        assert_eq!(parse_socket_link("socket:[x]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
    }

    #[test]
    fn socket_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("run");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, tmp.path().join("var-run")).unwrap();
        let ctl = tmp.path().join("var-run/bird.ctl");
        let bound = real.join("bird.ctl");
        use std::os::unix::ffi::OsStrExt;
        let b = |p: &Path| p.as_os_str().as_bytes().to_vec();
        assert!(same_socket_path(&b(&ctl), &ctl));
        assert!(same_socket_path(&b(&bound), &ctl), "through the symlink");
        assert!(!same_socket_path(&b(&real.join("other.ctl")), &ctl));
        assert!(!same_socket_path(&b(&tmp.path().join("bird.ctl")), &ctl));
        assert!(
            !same_socket_path(b"bird.ctl", &ctl),
            "relative, not the same bytes"
        );
        assert!(!same_socket_path(
            b"/tmp/x\n0: 2 0 10000 1 1 5 /run/bird.ctl",
            Path::new("/run/bird.ctl")
        ));
    }

    #[test]
    fn stale_keys_spare_birds_own() {
        let present = [
            net("10.88.0.0/25"),
            net("10.88.0.0/30"),
            net("10.88.0.4/32"),
            net("10.99.0.0/24"),
            net("2001:db8::/64"),
            net("2001:db8::1/128"),
        ];
        let wanted = BTreeSet::from([net("10.88.0.0/30")]);
        let ranges = BTreeSet::from([net("10.99.0.0/24")]);
        assert_eq!(
            stale_keys(&present, &wanted, &ranges),
            vec![net("10.88.0.0/25"), net("2001:db8::/64")]
        );
        assert!(stale_keys(&[], &wanted, &ranges).is_empty());
    }

    #[test]
    fn plan_records_birds_ranges() {
        let plan = desired_keys(&[], &conf()).unwrap();
        assert_eq!(plan.bird_ranges, BTreeSet::from([net("10.1.1.0/24")]));
    }

    #[test]
    fn cap_eff() {
        assert!(cap_eff_has_sys_ptrace(
            "Name:\tx\nCapEff:\t000001ffffffffff\n"
        ));
        assert!(cap_eff_has_sys_ptrace("CapEff:\t0000000000080000\n"));
        assert!(!cap_eff_has_sys_ptrace("CapEff:\t0000000000000000\n"));
        assert!(!cap_eff_has_sys_ptrace("CapPrm:\t000001ffffffffff\n"));
    }

    #[test]
    fn one_host_out_of_a_24_leaves_8_prefixes() {
        let got = key_prefixes(&[net("10.88.0.0/24")], &[net("10.88.0.5/32")]);
        assert_eq!(got.len(), 8);
        assert!(got.contains(&net("10.88.0.4/32")));
        assert!(got.contains(&net("10.88.0.128/25")));
        assert!(!got
            .iter()
            .any(|p| p.contains(&"10.88.0.5".parse::<IpAddr>().unwrap())));
    }

    #[test]
    fn exemptions_outside_or_covering() {
        let g = [net("10.88.0.0/24")];
        assert_eq!(key_prefixes(&g, &[net("10.99.0.1/32")]), g.to_vec());
        assert_eq!(key_prefixes(&g, &[net("2001:db8::1/128")]), g.to_vec());
        assert!(key_prefixes(&g, &[net("10.0.0.0/8")]).is_empty());
        assert_eq!(
            key_prefixes(&[net("2001:db8::/64")], &[net("2001:db8::1/128")]).len(),
            64
        );
        // Adjacent group prefixes merge.
        assert_eq!(
            key_prefixes(&[net("10.0.0.0/25"), net("10.0.0.128/25")], &[]),
            vec![net("10.0.0.0/24")]
        );
    }

    #[test]
    fn expressible_passwords() {
        assert_eq!(bird_can_express("good-key"), None);
        assert!(bird_can_express("a\"b").is_some());
        assert!(bird_can_express("a\nb").is_some());
        assert!(bird_can_express("a\rb").is_some());
        assert!(bird_can_express("a\0b").is_some());
        assert!(bird_can_express(&"x".repeat(81)).is_some());
        assert_eq!(bird_can_express(&"x".repeat(80)), None);
        assert!(bird_can_express("").is_some());
    }

    #[test]
    fn optmem_estimates() {
        assert_eq!(optmem_estimate(131072, 100), None);
        assert_eq!(optmem_estimate(131072, 0), None);
        let msg = optmem_estimate(131072, 10_000).unwrap();
        assert!(msg.contains("optmem_max is 131072"), "{msg}");
        assert!(msg.contains("sysctl -w net.core.optmem_max="), "{msg}");
    }

    fn group(name: &str, template: &str, prefixes: &[&str], password: Option<&str>) -> Group {
        Group {
            name: name.to_owned(),
            template: template.to_owned(),
            prefixes: prefixes.iter().map(|p| net(p)).collect(),
            neighbor: None,
            password: password.map(|p| Secret::new(p.to_owned())),
            deny: Vec::new(),
            max_peers: 10,
            rate: None,
            expire: None,
            interface: None,
            nbma_prefixes: Vec::new(),
        }
    }

    const CONF: &str = r#"
template bgp keyed { local as 65000; password "tmpl-key"; neighbor internal; }
template bgp open { local as 65000; neighbor internal; }
protocol bgp same_key from keyed { neighbor 10.1.0.5; }
protocol bgp other_key from open { neighbor 10.1.0.6; password "other"; }
protocol bgp no_key from open { neighbor 10.1.0.7; }
protocol bgp elsewhere from open { neighbor 192.0.2.9; }
protocol bgp dyn from open { neighbor range 10.1.1.0/24; dynamic name "d"; }
"#;

    fn conf() -> BirdConf {
        crate::bird::conf::scan_text(CONF, Path::new("bird.conf")).unwrap()
    }

    fn covers(plan: &KeyPlan, a: &str) -> Option<String> {
        let a: IpAddr = a.parse().unwrap();
        plan.keys
            .iter()
            .filter(|k| k.prefix.contains(&a))
            .max_by_key(|k| k.prefix.prefix_len())
            .map(|k| k.key.expose().clone())
    }

    #[test]
    fn plan_takes_the_template_password_and_exempts_other_keys() {
        let c = conf();
        let mut g = group("clients", "keyed", &["10.1.0.0/16"], None);
        g.deny = vec![net("10.1.2.0/24")];
        let plan = desired_keys(&[g], &c).unwrap();
        assert_eq!(covers(&plan, "10.1.9.9").as_deref(), Some("tmpl-key"));
        assert_eq!(
            covers(&plan, "10.1.0.5").as_deref(),
            Some("tmpl-key"),
            "same key: no hole"
        );
        assert_eq!(
            covers(&plan, "10.1.0.6"),
            None,
            "other key: BIRD's exact key decides"
        );
        assert_eq!(
            covers(&plan, "10.1.0.7"),
            None,
            "no key: must stay reachable unsigned"
        );
        assert_eq!(covers(&plan, "10.1.1.1"), None, "native range");
        assert_eq!(covers(&plan, "10.1.2.1"), None, "deny");
        assert!(plan.keys.iter().all(|k| k.group == "clients"));
        let exact: Vec<IpAddr> = plan.bird_exact.iter().copied().collect();
        assert_eq!(
            exact,
            vec![
                "10.1.0.5".parse::<IpAddr>().unwrap(),
                "10.1.0.6".parse().unwrap()
            ]
        );
        assert!(!format!("{plan:?}").contains("tmpl-key"));
    }

    #[test]
    fn plan_nested_groups() {
        let c = conf();
        let outer = group("outer", "open", &["10.0.0.0/8"], Some("outer-key"));
        let keyed_inner = group("inner", "open", &["10.2.0.0/16"], Some("inner-key"));
        let open_inner = group("plain", "open", &["10.3.0.0/16"], None);
        let plan = desired_keys(&[outer, keyed_inner, open_inner], &c).unwrap();
        assert_eq!(covers(&plan, "10.2.0.1").as_deref(), Some("inner-key"));
        assert!(!plan.keys.iter().any(|k| k.prefix == net("10.0.0.0/8")));
        assert_eq!(covers(&plan, "10.4.0.1").as_deref(), Some("outer-key"));
        assert_eq!(
            covers(&plan, "10.3.0.1"),
            None,
            "a group without key stays open"
        );
        assert_eq!(plan.unkeyed, vec!["plain".to_owned()]);
        // 10.1.0.5 has the template key, not outer's: exempt from outer.
        assert_eq!(covers(&plan, "10.1.0.5"), None);
    }

    #[test]
    fn plan_refusals() {
        let c = conf();
        let zero = group("all", "open", &["0.0.0.0/0"], Some("k"));
        let quote = group("q", "open", &["10.9.0.0/16"], Some("a\"b"));
        let long = group("l", "open", &["10.8.0.0/16"], Some(&"x".repeat(81)));
        let none = group("n", "open", &["10.7.0.0/16"], None);
        let problems = desired_keys(&[zero, quote, long, none], &c).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            text[0].contains("group all: prefix 0.0.0.0/0"),
            "{}",
            text[0]
        );
        assert!(
            text[1].contains("group q: password (from the group)"),
            "{}",
            text[1]
        );
        assert!(text[2].contains("longer than 80 bytes"), "{}", text[2]);
        assert!(!text.join(" ").contains("a\"b"));
    }

    fn v4(bits: u32, len: u8) -> IpNet {
        IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(bits), len).unwrap()).trunc()
    }

    proptest! {
        /// Result covers exactly prefix minus exempt, pieces are disjoint,
        /// and each is maximal (its parent is not wholly inside the
        /// difference), which makes the set minimal.
        #[test]
        fn key_prefixes_exact_disjoint_minimal(
            base in any::<u32>(),
            plen in 20u8..=30,
            exempts in proptest::collection::vec((0u32..4096, 20u8..=32), 0..6),
        ) {
            let group = v4(base, plen);
            let start = match group { IpNet::V4(n) => u32::from(n.network()), _ => unreachable!() };
            let ex: Vec<IpNet> = exempts.iter().map(|(off, l)| v4(start.wrapping_add(*off), *l)).collect();
            let got = key_prefixes(&[group], &ex);
            let in_diff = |a: u32| {
                let ip = IpAddr::V4(Ipv4Addr::from(a));
                group.contains(&ip) && !ex.iter().any(|e| e.contains(&ip))
            };
            let size = 1u64 << (32 - plen);
            for i in 0..size {
                let a = start.wrapping_add(i as u32);
                let ip = IpAddr::V4(Ipv4Addr::from(a));
                let n = got.iter().filter(|p| p.contains(&ip)).count();
                prop_assert_eq!(n, usize::from(in_diff(a)), "address {}", ip);
            }
            for p in &got {
                prop_assert!(group.contains(p));
                if let Some(parent) = p.supernet() {
                    if group.contains(&parent) {
                        let IpNet::V4(pn) = parent else { unreachable!() };
                        let whole = pn.hosts().chain([pn.network(), pn.broadcast()])
                            .all(|a| in_diff(u32::from(a)));
                        prop_assert!(!whole, "{} not maximal", p);
                    }
                }
            }
        }

        /// Removing one host from a /p leaves exactly 32 - p prefixes.
        #[test]
        fn single_host_removal_count(base in any::<u32>(), plen in 1u8..=32, off in any::<u32>()) {
            let group = v4(base, plen);
            let IpNet::V4(g) = group else { unreachable!() };
            let mask = if plen == 32 { 0 } else { u32::MAX >> plen };
            let host = v4(u32::from(g.network()) | (off & mask), 32);
            prop_assert_eq!(key_prefixes(&[group], &[host]).len(), usize::from(32 - plen));
        }
    }
}
