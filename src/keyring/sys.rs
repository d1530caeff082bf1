//! The keyring's system calls: pidfd duplication of another process's socket,
//! what a UNIX listening socket says about itself, a thread in another
//! network namespace for sock_diag, `setsockopt(TCP_MD5SIG[_EXT])` with a
//! `struct tcp_md5sig`, and the TCP-AO options (`TCP_AO_ADD_KEY`,
//! `TCP_AO_DEL_KEY`, `TCP_AO_INFO`, `TCP_AO_GET_KEYS`).
//!
//! This is the only file of autopeer with `unsafe`: `setsockopt` with a
//! struct (`set_tcp_opt`, for MD5 and TCP-AO keys), `getsockopt` into one
//! (`TCP_AO_INFO`, `TCP_AO_GET_KEYS`), and [`peer_groups`] (`SO_PEERGROUPS` for the
//! control socket, which rustix does not wrap either; kept here so that
//! all `unsafe` stays in one audited file), and one in [`trim_heap`]
//! (glibc's `malloc_trim`, which is not a system call but has no safe
//! wrapper either; it is here for the same reason). Everything rustix covers goes
//! through rustix. It must not decide anything: which keys, on which
//! socket, is `super`'s job.
//! It must never log or format a key.
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::net::{AddressFamily, SocketType};
use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags};

/// Gives the free pages of malloc's heap back to the kernel: glibc's
/// `malloc_trim(0)`, which walks every arena under malloc's own locks and
/// unmaps (`MADV_DONTNEED`) each whole free page, not only the top of the
/// heap. Called after large transient work (a poll's table, an apply, the
/// start-up load), whose freed memory would otherwise stay resident
/// between fragments of live data. Nothing else: it frees no live memory.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: takes no pointer and touches only malloc's own state, which
    // it locks; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes malloc serve every allocation of 128 KiB or more with its own
/// mapping, returned to the kernel when freed: glibc's
/// `mallopt(M_MMAP_THRESHOLD, 128 KiB)`. By default glibc raises that
/// threshold to the size of each large block freed, so after the first
/// 2 MB include or 800 KB `show protocols` the next ones are carved from
/// the heap, between small live objects, and what they leave is
/// resident for good (footprint bench: heap 4.35 -> 3.38 MB at 10,000
/// peers). Call once, at the start of `autopeer run`.
pub fn map_large_allocations() {
    #[cfg(target_env = "gnu")]
    // SAFETY: takes no pointer; sets one of malloc's own parameters,
    // under its lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// `TCP_MD5SIG` from linux/tcp.h: an exact (full-length) key.
pub const TCP_MD5SIG: i32 = 14;
/// `TCP_MD5SIG_EXT` from linux/tcp.h (Linux 4.13+): flags and prefix length.
pub const TCP_MD5SIG_EXT: i32 = 32;
/// `TCP_MD5SIG_FLAG_PREFIX`: `tcpm_prefixlen` is valid.
pub const TCP_MD5SIG_FLAG_PREFIX: u8 = 1;
/// `TCP_MD5SIG_MAXKEYLEN`.
pub const MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` (linux/tcp.h). `tcpm_addr` is a `sockaddr_storage`
/// (128 bytes, aligned like `unsigned long`), kept here as bytes so that no
/// `unsafe` is needed to fill it. Size 216 on x86_64, like the kernel's.
#[repr(C, align(8))]
struct TcpMd5Sig {
    tcpm_addr: [u8; 128],
    tcpm_flags: u8,
    tcpm_prefixlen: u8,
    tcpm_keylen: u16,
    tcpm_ifindex: i32,
    tcpm_key: [u8; MAX_KEY_LEN],
}

// The kernel copies `min(optlen, sizeof(struct tcp_md5sig))`; ours must match.
const _: () = assert!(std::mem::size_of::<TcpMd5Sig>() == 216);

/// The bytes of a `sockaddr_in` / `sockaddr_in6` for `addr`, port 0.
fn sockaddr_bytes(addr: IpAddr) -> [u8; 128] {
    let mut b = [0u8; 128];
    match addr {
        IpAddr::V4(a) => {
            b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            // sin_port (2..4) stays 0; sin_addr at 4..8, network order.
            b[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            b[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            // sin6_port 2..4, sin6_flowinfo 4..8 stay 0; sin6_addr at 8..24.
            b[8..24].copy_from_slice(&a.octets());
        }
    }
    b
}

/// Add (non-empty `key`) or delete (`key` empty) the key for
/// (`addr`, `prefix_len`) on socket `fd`. `prefix_len: None` is the plain
/// `TCP_MD5SIG` exact form BIRD uses for a single neighbor; `Some(n)` is
/// `TCP_MD5SIG_EXT` with `TCP_MD5SIG_FLAG_PREFIX`.
pub fn setsockopt_md5(
    fd: BorrowedFd<'_>,
    addr: IpAddr,
    prefix_len: Option<u8>,
    key: &[u8],
) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP MD5 key longer than 80 bytes",
        ));
    }
    let mut sig = TcpMd5Sig {
        tcpm_addr: sockaddr_bytes(addr),
        tcpm_flags: 0,
        tcpm_prefixlen: 0,
        tcpm_keylen: key.len() as u16,
        tcpm_ifindex: 0,
        tcpm_key: [0u8; MAX_KEY_LEN],
    };
    sig.tcpm_key[..key.len()].copy_from_slice(key);
    let optname = match prefix_len {
        Some(len) => {
            sig.tcpm_flags = TCP_MD5SIG_FLAG_PREFIX;
            sig.tcpm_prefixlen = len;
            TCP_MD5SIG_EXT
        }
        None => TCP_MD5SIG,
    };
    let r = set_tcp_opt(fd, optname, &sig);
    // Wipe our copy of the key.
    sig.tcpm_key = [0u8; MAX_KEY_LEN];
    std::hint::black_box(&sig);
    r
}

/// A pidfd for process `pid` (`pidfd_open`, Linux 5.3+): operations
/// through it reach that very process or fail with ESRCH once it is gone,
/// even if its pid number is reused meanwhile.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let pid = Pid::from_raw(pid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid must be positive"))?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// A duplicate of the open file `target_fd` of the process behind `pidfd`
/// (`pidfd_getfd`, Linux 5.6+). Needs ptrace access to it: root or
/// CAP_SYS_PTRACE (EPERM otherwise); ESRCH when the process is gone.
pub fn getfd(pidfd: BorrowedFd<'_>, target_fd: i32) -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_getfd(
        pidfd,
        target_fd,
        PidfdGetfdFlags::empty(),
    )?)
}

/// Credentials as `SO_PEERCRED` reports them: (pid, uid, gid).
pub type Cred = (i32, u32, u32);

/// What a UNIX socket says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixFacts {
    /// `SO_ACCEPTCONN`: it listens.
    pub listening: bool,
    /// The path it is bound to (`getsockname`); `None` when unnamed or
    /// abstract.
    pub path: Option<Vec<u8>>,
    /// `SO_PEERCRED` of a listening socket: who called `listen()`.
    pub cred: Cred,
}

/// [`UnixFacts`] of the UNIX socket `fd`.
pub fn unix_facts(fd: BorrowedFd<'_>) -> io::Result<UnixFacts> {
    let listening = rustix::net::sockopt::socket_acceptconn(fd)?;
    let name = rustix::net::getsockname(fd)?;
    let path = rustix::net::SocketAddrUnix::try_from(name)
        .ok()
        .and_then(|u| u.path_bytes().map(<[u8]>::to_vec));
    let cred = ucred_tuple(&rustix::net::sockopt::socket_peercred(fd)?);
    Ok(UnixFacts {
        listening,
        path,
        cred,
    })
}

fn ucred_tuple(c: &rustix::net::UCred) -> Cred {
    (c.pid.as_raw_nonzero().get(), c.uid.as_raw(), c.gid.as_raw())
}

/// Run `f` on a short-lived thread that has joined the network namespace
/// of the process behind `pidfd` (`setns` with a pidfd, Linux 5.8+); the
/// calling thread stays where it is. Sockets `f` creates belong to that
/// namespace.
pub fn in_net_namespace_of<T: Send>(
    pidfd: BorrowedFd<'_>,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            rustix::thread::move_into_thread_name_spaces(
                pidfd,
                rustix::thread::ThreadNameSpaceType::NETWORK,
            )?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

/// The inode of the file behind `fd` (for a socket: the number in
/// `socket:[N]`).
pub fn inode_of(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_ino)
}

/// The credentials (pid, uid, gid) the kernel copied from the listening
/// UNIX stream socket `path` leads to when connecting to it (`SO_PEERCRED`):
/// those of the process that called `listen()`, which for a daemonized
/// BIRD is the parent that has since exited.
pub fn peer_cred(path: &std::path::Path) -> io::Result<Cred> {
    let stream = std::os::unix::net::UnixStream::connect(path)?;
    let cred = rustix::net::sockopt::socket_peercred(&stream)?;
    Ok(ucred_tuple(&cred))
}

/// The supplementary groups of the process at the other end of the UNIX
/// stream socket `fd`, as the kernel recorded them when that process
/// connected (`SO_PEERGROUPS`, Linux 4.13+; `Unsupported` before). Like
/// `SO_PEERCRED`, and unlike `/proc/PID/status`, this cannot change after
/// the connect, nor name another process that reused the pid.
///
/// It lives here because it needs `getsockopt` with a buffer, which rustix
/// does not wrap; the control socket (`ctl::server`) is its only user.
pub fn peer_groups(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    const GID: usize = std::mem::size_of::<libc::gid_t>();
    // Most callers have a handful; the kernel says how many on ERANGE.
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    // The group list is fixed at connect time, so one retry is enough; a
    // second ERANGE would mean a kernel that misreports, not a reason to loop.
    for _ in 0..2 {
        let mut len = (groups.len() * GID) as libc::socklen_t;
        // SAFETY: `fd` is a live descriptor for the duration of the borrow;
        // the pointer is to `groups`, which holds exactly `len` writable,
        // initialised bytes and outlives the call; `len` is a valid
        // `socklen_t` the kernel may write. The kernel writes at most `len`
        // bytes (or, with ERANGE, only the size it needs into `len`).
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast::<libc::c_void>(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate((len as usize / GID).min(groups.len()));
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // NGROUPS_MAX is 65536.
            Some(libc::ERANGE) if (len as usize) / GID <= 65_536 => {
                groups.resize((len as usize).div_ceil(GID), 0);
            }
            Some(libc::ENOPROTOOPT) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "SO_PEERGROUPS needs Linux 4.13",
                ))
            }
            _ => return Err(err),
        }
    }
    Err(io::Error::other("SO_PEERGROUPS: group list keeps growing"))
}

/// Connect to `remote` from `local` (port chosen by the kernel), signing
/// the handshake with `key` when given (an exact `TCP_MD5SIG` key for the
/// remote address), giving up after `timeout`. A SYN the listener drops
/// shows as a time-out (`WouldBlock`/`TimedOut`).
pub fn connect_signed(
    local: IpAddr,
    remote: SocketAddr,
    key: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    connect_prepared(local, remote, timeout, |fd| match key {
        Some(key) => setsockopt_md5(fd, remote.ip(), None, key),
        None => Ok(()),
    })
}

/// Connect to `remote` from `local` within `timeout`, after `prepare` has
/// set up the bound socket (its keys).
fn connect_prepared(
    local: IpAddr,
    remote: SocketAddr,
    timeout: Duration,
    prepare: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
) -> io::Result<TcpStream> {
    let family = match remote {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let sock = rustix::net::socket(family, SocketType::STREAM, None)?;
    rustix::net::bind(&sock, &SocketAddr::new(local, 0))?;
    prepare(sock.as_fd())?;
    // Linux bounds a blocking connect() by SO_SNDTIMEO (EINPROGRESS after it).
    rustix::net::sockopt::set_socket_timeout(
        &sock,
        rustix::net::sockopt::Timeout::Send,
        Some(timeout),
    )?;
    match rustix::net::connect(&sock, &remote) {
        Ok(()) => Ok(TcpStream::from(sock)),
        Err(rustix::io::Errno::INPROGRESS) | Err(rustix::io::Errno::AGAIN) => {
            Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
        }
        Err(e) => Err(e.into()),
    }
}

/// The MD5 keys (address/prefix length) of every TCP listener of `family`
/// in this process's network namespace, by inode, via one sock_diag dump.
/// Gives up after 2 s without a reply.
pub fn sock_diag_dump(
    family: super::Family,
) -> io::Result<std::collections::BTreeMap<u64, Vec<ipnet::IpNet>>> {
    use rustix::net::netlink;
    let sock = rustix::net::socket(
        AddressFamily::NETLINK,
        SocketType::RAW,
        Some(netlink::SOCK_DIAG),
    )?;
    rustix::net::sockopt::set_socket_timeout(
        &sock,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(2)),
    )?;
    let req = super::diag::build_request(family, 1);
    rustix::net::sendto(
        &sock,
        &req,
        rustix::net::SendFlags::empty(),
        &netlink::SocketAddrNetlink::new(0, 0),
    )?;
    let mut all = std::collections::BTreeMap::new();
    let mut buf = vec![0u8; 64 * 1024];
    // A dump of any size ends with NLMSG_DONE; bound the loop anyway.
    for _ in 0..100_000 {
        let (n, _) = rustix::net::recv(&sock, &mut buf[..], rustix::net::RecvFlags::empty())?;
        let chunk = super::diag::parse_reply(buf.get(..n).unwrap_or_default());
        all.extend(chunk.keys);
        if let Some(errno) = chunk.error {
            return Err(io::Error::from_raw_os_error(errno));
        }
        if chunk.done || n == 0 {
            return Ok(all);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "sock_diag dump did not end",
    ))
}

// ------------------------------------------------------------------ TCP-AO

/// `TCP_AO_ADD_KEY`, `TCP_AO_DEL_KEY`, `TCP_AO_INFO`, `TCP_AO_GET_KEYS`
/// from linux/tcp.h (Linux 6.7+, `CONFIG_TCP_AO`; ENOPROTOOPT without).
pub const TCP_AO_ADD_KEY: i32 = 38;
pub const TCP_AO_DEL_KEY: i32 = 39;
pub const TCP_AO_INFO: i32 = 40;
pub const TCP_AO_GET_KEYS: i32 = 41;
/// `TCP_AO_MAXKEYLEN`.
pub const MAX_AO_KEY_LEN: usize = 80;
/// The MAC length autopeer asks for: the 96 bits of RFC 5926 (BIRD and the
/// kernel's default).
pub const AO_MACLEN: u8 = 12;

/// `struct tcp_ao_add`. Offsets checked against the 6.12 uapi header
/// (ao-experiment.md): alg_name 128, ifindex 192, flags 196, prefix 202,
/// sndid 203, rcvid 204, maclen 205, keyflags 206, keylen 207, key 208.
#[repr(C, align(8))]
struct TcpAoAdd {
    addr: [u8; 128],
    alg_name: [u8; 64],
    ifindex: i32,
    /// bit 0 set_current, bit 1 set_rnext.
    flags: u32,
    reserved2: u16,
    prefix: u8,
    sndid: u8,
    rcvid: u8,
    maclen: u8,
    keyflags: u8,
    keylen: u8,
    key: [u8; MAX_AO_KEY_LEN],
}
const _: () = assert!(std::mem::size_of::<TcpAoAdd>() == 288);
const _: () = assert!(std::mem::offset_of!(TcpAoAdd, prefix) == 202);
const _: () = assert!(std::mem::offset_of!(TcpAoAdd, key) == 208);

/// `struct tcp_ao_del`.
#[repr(C, align(8))]
struct TcpAoDel {
    addr: [u8; 128],
    ifindex: i32,
    /// bit 0 set_current, bit 1 set_rnext, bit 2 del_async.
    flags: u32,
    reserved2: u16,
    prefix: u8,
    sndid: u8,
    rcvid: u8,
    current_key: u8,
    rnext: u8,
    keyflags: u8,
}
const _: () = assert!(std::mem::size_of::<TcpAoDel>() == 144);
const _: () = assert!(std::mem::offset_of!(TcpAoDel, keyflags) == 143);

/// `struct tcp_ao_info_opt`.
#[repr(C, align(8))]
#[derive(Default)]
struct TcpAoInfoOpt {
    /// bit 0 set_current, 1 set_rnext, 2 ao_required, 3 set_counters,
    /// 4 accept_icmps.
    flags: u32,
    reserved2: u16,
    current_key: u8,
    rnext: u8,
    pkt_good: u64,
    pkt_bad: u64,
    pkt_key_not_found: u64,
    pkt_ao_required: u64,
    pkt_dropped_icmp: u64,
}
const _: () = assert!(std::mem::size_of::<TcpAoInfoOpt>() == 48);

/// `struct tcp_ao_getsockopt`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct TcpAoGet {
    addr: [u8; 128],
    alg_name: [u8; 64],
    key: [u8; MAX_AO_KEY_LEN],
    nkeys: u32,
    /// bit 0 is_current, bit 1 is_rnext, bit 2 get_all.
    flags: u16,
    sndid: u8,
    rcvid: u8,
    prefix: u8,
    maclen: u8,
    keyflags: u8,
    keylen: u8,
    ifindex: i32,
    pkt_good: u64,
    pkt_bad: u64,
}
const _: () = assert!(std::mem::size_of::<TcpAoGet>() == 304);
const _: () = assert!(std::mem::offset_of!(TcpAoGet, nkeys) == 272);
const _: () = assert!(std::mem::offset_of!(TcpAoGet, ifindex) == 284);

const AO_GET_ZERO: TcpAoGet = TcpAoGet {
    addr: [0; 128],
    alg_name: [0; 64],
    key: [0; MAX_AO_KEY_LEN],
    nkeys: 0,
    flags: 0,
    sndid: 0,
    rcvid: 0,
    prefix: 0,
    maclen: 0,
    keyflags: 0,
    keylen: 0,
    ifindex: 0,
    pkt_good: 0,
    pkt_bad: 0,
};

/// `setsockopt(fd, IPPROTO_TCP, opt, value, sizeof *value)`.
fn set_tcp_opt<T>(fd: BorrowedFd<'_>, opt: i32, value: &T) -> io::Result<()> {
    // SAFETY: `fd` is live for the borrow; `value` is a fully initialised
    // #[repr(C)] value with the kernel's layout (sizes asserted above)
    // that outlives the call, and optlen is its size. The kernel only
    // reads from the pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            opt,
            (value as *const T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One master key tuple to install (`TCP_AO_ADD_KEY`).
pub struct AoAdd<'a> {
    /// The network address (host bits clear), or a v4-mapped IPv6 address
    /// for an IPv4 prefix on an IPv6 socket.
    pub addr: IpAddr,
    pub prefix: u8,
    pub sndid: u8,
    pub rcvid: u8,
    /// The kernel crypto API's name, e.g. `hmac(sha1)`.
    pub alg: &'static str,
    pub key: &'a [u8],
}

/// Install one MKT on `fd` (a listener, or a socket that already has AO
/// state). EEXIST when a key with the same SendID or RecvID overlaps it;
/// EKEYREJECTED when an MD5 key covers its address; ENOPROTOOPT on a
/// kernel without TCP-AO; ENOENT for an algorithm the kernel lacks.
pub fn ao_add_key(fd: BorrowedFd<'_>, k: &AoAdd<'_>) -> io::Result<()> {
    if k.key.len() > MAX_AO_KEY_LEN || k.alg.len() >= 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP-AO key longer than 80 bytes",
        ));
    }
    let mut add = TcpAoAdd {
        addr: sockaddr_bytes(k.addr),
        alg_name: [0; 64],
        ifindex: 0,
        flags: 0,
        reserved2: 0,
        prefix: k.prefix,
        sndid: k.sndid,
        rcvid: k.rcvid,
        maclen: AO_MACLEN,
        keyflags: 0,
        keylen: k.key.len() as u8,
        key: [0; MAX_AO_KEY_LEN],
    };
    add.alg_name[..k.alg.len()].copy_from_slice(k.alg.as_bytes());
    add.key[..k.key.len()].copy_from_slice(k.key);
    let r = set_tcp_opt(fd, TCP_AO_ADD_KEY, &add);
    add.key = [0; MAX_AO_KEY_LEN];
    std::hint::black_box(&add);
    r
}

/// Delete the MKT (`addr`/`prefix`, `sndid`, `rcvid`) from `fd`. On an
/// established socket the kernel refuses (EBUSY) to delete its current or
/// RNext key; `switch_to` = (SendID, RecvID) of a key that stays makes it
/// current and RNext in the same call.
pub fn ao_del_key(
    fd: BorrowedFd<'_>,
    addr: IpAddr,
    prefix: u8,
    sndid: u8,
    rcvid: u8,
    switch_to: Option<(u8, u8)>,
) -> io::Result<()> {
    let (flags, current_key, rnext) = match switch_to {
        Some((s, r)) => (0b11, s, r),
        None => (0, 0, 0),
    };
    let del = TcpAoDel {
        addr: sockaddr_bytes(addr),
        ifindex: 0,
        flags,
        reserved2: 0,
        prefix,
        sndid,
        rcvid,
        current_key,
        rnext,
        keyflags: 0,
    };
    set_tcp_opt(fd, TCP_AO_DEL_KEY, &del)
}

/// A socket's TCP-AO state and counters (`TCP_AO_INFO`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AoInfo {
    /// SendID of the key used to sign (none on a listener).
    pub current: u8,
    /// RecvID asked of the peer.
    pub rnext: u8,
    pub good: u64,
    pub bad: u64,
    pub key_not_found: u64,
    pub ao_required: u64,
    pub dropped_icmp: u64,
}

/// The TCP-AO state of `fd`; ENOENT when it has none.
pub fn ao_info(fd: BorrowedFd<'_>) -> io::Result<AoInfo> {
    let mut info = TcpAoInfoOpt::default();
    let mut len = std::mem::size_of::<TcpAoInfoOpt>() as libc::socklen_t;
    // SAFETY: `fd` is live for the borrow; `info` is a writable,
    // initialised #[repr(C)] value of exactly `len` bytes that outlives
    // the call; the kernel writes at most `len` bytes and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_AO_INFO,
            (&mut info as *mut TcpAoInfoOpt).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(AoInfo {
        current: info.current_key,
        rnext: info.rnext,
        good: info.pkt_good,
        bad: info.pkt_bad,
        key_not_found: info.pkt_key_not_found,
        ao_required: info.pkt_ao_required,
        dropped_icmp: info.pkt_dropped_icmp,
    })
}

/// Make the key with SendID `current` the one `fd` signs with, and ask the
/// peer (RNext) for RecvID `rnext` (`TCP_AO_INFO`; not on a listener).
pub fn ao_set_current(fd: BorrowedFd<'_>, current: u8, rnext: u8) -> io::Result<()> {
    let info = TcpAoInfoOpt {
        flags: 0b11,
        current_key: current,
        rnext,
        ..TcpAoInfoOpt::default()
    };
    set_tcp_opt(fd, TCP_AO_INFO, &info)
}

/// One MKT as `TCP_AO_GET_KEYS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AoKeyInfo {
    /// As installed: an IPv4 prefix on an IPv6 socket reads back as IPv4.
    pub net: ipnet::IpNet,
    pub sndid: u8,
    pub rcvid: u8,
    pub maclen: u8,
    pub alg: String,
    pub key: crate::secret::Secret<Vec<u8>>,
    pub is_current: bool,
    pub is_rnext: bool,
    pub good: u64,
    pub bad: u64,
}

fn net_of(addr: &[u8; 128], prefix: u8) -> Option<ipnet::IpNet> {
    let family = i32::from(u16::from_ne_bytes([addr[0], addr[1]]));
    let ip = if family == libc::AF_INET {
        IpAddr::from(<[u8; 4]>::try_from(&addr[4..8]).ok()?)
    } else if family == libc::AF_INET6 {
        let a = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&addr[8..24]).ok()?);
        match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(a),
        }
    } else {
        return None;
    };
    // A v4-mapped key reads back with its IPv4 length.
    let len = match ip {
        IpAddr::V4(_) if prefix > 32 => prefix.saturating_sub(96),
        _ => prefix,
    };
    ipnet::IpNet::new(ip, len).ok()
}

/// Every MKT on `fd` (`TCP_AO_GET_KEYS` with `get_all`); empty when the
/// socket has no TCP-AO state. optlen is the size of *one* struct and
/// `nkeys` says how many the buffer holds (a larger optlen corrupts the
/// kernel heap on 6.12 once there are two keys: ao-experiment.md §1).
pub fn ao_get_keys(fd: BorrowedFd<'_>) -> io::Result<Vec<AoKeyInfo>> {
    let mut cap: usize = 16;
    loop {
        let mut buf = vec![AO_GET_ZERO; cap];
        buf[0].nkeys = cap as u32;
        buf[0].flags = 0b100; // get_all
        let mut len = std::mem::size_of::<TcpAoGet>() as libc::socklen_t;
        // SAFETY: `fd` is live for the borrow; `buf` holds `cap`
        // initialised, writable #[repr(C)] structs of the kernel's layout
        // (size asserted) and outlives the call; `buf[0].nkeys == cap`
        // tells the kernel it may write at most `cap` of them, and `len`
        // is the size of one, as the kernel expects.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                TCP_AO_GET_KEYS,
                buf.as_mut_ptr().cast::<libc::c_void>(),
                &mut len,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            for b in &mut buf {
                b.key = [0; MAX_AO_KEY_LEN];
            }
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        let n = buf[0].nkeys as usize;
        if n >= cap && cap < 65_536 {
            for b in &mut buf {
                b.key = [0; MAX_AO_KEY_LEN];
            }
            cap = (n + 1).next_power_of_two();
            continue;
        }
        let mut out = Vec::with_capacity(n.min(cap));
        for b in buf.iter_mut().take(n.min(cap)) {
            let alg_len = b.alg_name.iter().position(|&c| c == 0).unwrap_or(64);
            let keylen = usize::from(b.keylen).min(MAX_AO_KEY_LEN);
            if let Some(net) = net_of(&b.addr, b.prefix) {
                out.push(AoKeyInfo {
                    net,
                    sndid: b.sndid,
                    rcvid: b.rcvid,
                    maclen: b.maclen,
                    alg: String::from_utf8_lossy(&b.alg_name[..alg_len]).into_owned(),
                    key: crate::secret::Secret::new(b.key[..keylen].to_vec()),
                    is_current: b.flags & 1 != 0,
                    is_rnext: b.flags & 2 != 0,
                    good: b.pkt_good,
                    bad: b.pkt_bad,
                });
            }
            b.key = [0; MAX_AO_KEY_LEN];
        }
        return Ok(out);
    }
}

/// Connect to `remote` from `local`, signing with the TCP-AO MKT `key`
/// (its `addr`/`prefix` must cover `remote`), giving up after `timeout`.
/// For tests and `check`: a listener without a matching key drops the SYN
/// (a time-out).
pub fn connect_ao(
    local: IpAddr,
    remote: SocketAddr,
    key: &AoAdd<'_>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    connect_prepared(local, remote, timeout, |fd| ao_add_key(fd, key))
}
