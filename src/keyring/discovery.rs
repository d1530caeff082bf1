//! Finding BIRD and its BGP listeners: the process that holds BIRD's
//! control socket, pinned by a pidfd ([`Bird`]), its listening TCP sockets
//! ([`listening_sockets`]), a dry run of duplicating them ([`probe`]), the
//! keys the kernel holds on one ([`read_back`]), and whether this process
//! may duplicate another's descriptors at all ([`check_privileges`]).
//! The `/proc` text itself is read in [`holder`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;

use super::holder::{self, parse_proc_net_tcp, parse_socket_link, TCP_LISTEN};
use super::{sys, Family};

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
    let mut out: Vec<Listener> = tcp_sockets(pid)?
        .into_iter()
        .filter(|(_, _, row)| row.state == TCP_LISTEN)
        .map(|(family, fd, row)| Listener {
            fd,
            inode: row.inode,
            family,
            local: row.local,
        })
        .collect();
    out.sort_by_key(|l| (l.family, l.local, l.inode));
    Ok(out)
}

/// The TCP sockets among process `pid`'s descriptors: (family of the
/// socket, descriptor, its row of `/proc/PID/net/tcp` or `tcp6`).
fn tcp_sockets(pid: i32) -> Result<Vec<(Family, i32, holder::TcpEntry)>, KeyringError> {
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
            // No IPv6 in the kernel: no tcp6 file, no IPv6 socket.
            Err(e) if e.kind() == io::ErrorKind::NotFound && family == Family::V6 => continue,
            Err(source) => return Err(KeyringError::Proc { path, source }),
        };
        for row in parse_proc_net_tcp(&text) {
            if let Some(&fd) = by_inode.get(&row.inode) {
                out.push((family, fd, row));
            }
        }
    }
    Ok(out)
}

/// One established TCP connection of the BIRD process (a BGP session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The socket's own family (an IPv4 peer of a dual-stack listener
    /// has an IPv6 socket).
    pub family: Family,
    pub fd: i32,
    pub inode: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// BIRD's established TCP connections whose local port is `port` (those
/// it accepted on its BGP listener), from `/proc/PID/net/tcp{,6}` and
/// `/proc/PID/fd`. Remote addresses come back as the kernel shows them
/// (a v4-mapped IPv6 address on a dual-stack socket is made IPv4).
pub fn accepted_sessions(pid: i32, port: u16) -> Result<Vec<Session>, KeyringError> {
    let unmap = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), a.port()),
            None => a,
        },
        _ => a,
    };
    Ok(tcp_sockets(pid)?
        .into_iter()
        .filter(|(_, _, row)| row.state == holder::TCP_ESTABLISHED && row.local.port() == port)
        .map(|(family, fd, row)| Session {
            family,
            fd,
            inode: row.inode,
            local: unmap(row.local),
            remote: unmap(row.remote),
        })
        .collect())
}

/// A duplicate of BIRD's descriptor `fd`, checked to be the socket `inode`.
/// `Ok(None)`: closed or reused meanwhile.
pub(super) fn steal_socket(
    bird: &Bird,
    fd: i32,
    inode: u64,
) -> Result<Option<OwnedFd>, KeyringError> {
    match bird.steal(fd) {
        Ok(dup) => match sys::inode_of(dup.as_fd()) {
            Ok(ino) if ino == inode => Ok(Some(dup)),
            _ => Ok(None),
        },
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            Err(KeyringError::Gone { pid: bird.pid })
        }
        Err(e) => Err(steal_error(bird.pid, fd, e)),
    }
}

/// A duplicate of `l` from BIRD, checked to still be the same socket (the
/// descriptor may have been closed and reused meanwhile). `Ok(None)`: the
/// listener is gone or changed.
pub(super) fn steal_listener(bird: &Bird, l: &Listener) -> Result<Option<OwnedFd>, KeyringError> {
    steal_socket(bird, l.fd, l.inode)
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

/// The TCP-AO MKTs on BIRD's listener `l` (ours and BIRD's; the secrets
/// stay in [`Secret`](crate::secret::Secret)s). `Ok(None)`: the listener
/// is gone; an empty list on a kernel without TCP-AO.
pub fn listener_ao_keys(
    bird: &Bird,
    l: &Listener,
) -> Result<Option<Vec<sys::AoKeyInfo>>, KeyringError> {
    bird.verify()?;
    let Some(fd) = steal_listener(bird, l)? else {
        return Ok(None);
    };
    Ok(Some(sys::ao_get_keys(fd.as_fd()).unwrap_or_default()))
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cap_eff() {
        assert!(cap_eff_has_sys_ptrace(
            "Name:\tx\nCapEff:\t000001ffffffffff\n"
        ));
        assert!(cap_eff_has_sys_ptrace("CapEff:\t0000000000080000\n"));
        assert!(!cap_eff_has_sys_ptrace("CapEff:\t0000000000000000\n"));
        assert!(!cap_eff_has_sys_ptrace("CapPrm:\t000001ffffffffff\n"));
    }
}
