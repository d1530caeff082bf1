//! Which process is BIRD: the one that holds BIRD's listening control
//! socket. `SO_PEERCRED` on a connection to that socket names the process
//! that called `listen()`; for a BIRD started without `-f` (by hand,
//! sysvinit/OpenRC scripts, BIRD 1.6 init scripts) that is the parent that
//! forked the daemon and exited. So the keyring looks the socket up
//! instead: its inode in `/proc/PID/net/unix` (per network namespace), and
//! the processes whose `/proc/PID/fd` hold that inode.
//!
//! The listeners themselves are the LISTEN rows of `/proc/PID/net/tcp`
//! and `tcp6` ([`parse_proc_net_tcp`]) whose inode BIRD holds.
//!
//! Everything here is read from a `/proc` root given as a path, so the
//! unit tests run it on fixture trees. The text of `/proc/net/unix` can be
//! forged by anyone who binds a socket to a path with a newline in it: a
//! candidate found here is only a candidate. [`super::Bird::find`] pins each
//! one with a pidfd, duplicates the socket and checks what the kernel says
//! about it (listening, bound to the control path, same credentials as the
//! socket a fresh connection reached) before trusting it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// One row of `/proc/net/unix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixEntry {
    pub inode: u64,
    /// `__SO_ACCEPTCON` in Flags: a listening socket.
    pub listening: bool,
    /// Type 0001: `SOCK_STREAM`.
    pub stream: bool,
    /// The bound path as printed (empty when unnamed; `@...` abstract).
    pub path: String,
}

/// `__SO_ACCEPTCON` in the Flags column.
const SO_ACCEPTCON: u32 = 0x0001_0000;

/// Parse `/proc/net/unix` text. Rows look like
///
/// ```text
/// Num       RefCount Protocol Flags    Type St Inode Path
/// 000000002a724459: 00000002 00000000 00010000 0001 01 27534 /run/bird/bird.ctl
/// ```
///
/// The header and malformed rows are skipped. A path with a newline in it
/// splits into two rows, the second of which may look genuine: callers
/// must not trust a row's path (see the module comment).
pub fn parse_proc_net_unix(text: &str) -> Vec<UnixEntry> {
    text.lines().filter_map(parse_unix_row).collect()
}

fn parse_unix_row(line: &str) -> Option<UnixEntry> {
    // Seven fields separated by runs of spaces (the inode is `%5lu`, so
    // padded), then one space and the path, which may itself hold spaces.
    let mut rest = line;
    let mut fields = [""; 7];
    for f in &mut fields {
        rest = rest.trim_start_matches(' ');
        let end = rest.find(' ').unwrap_or(rest.len());
        *f = rest.get(..end)?;
        rest = rest.get(end..)?;
    }
    let [num, _refcount, _protocol, flags, kind, _state, inode] = fields;
    if !num.ends_with(':') {
        return None;
    }
    let flags = u32::from_str_radix(flags, 16).ok()?;
    let kind = u16::from_str_radix(kind, 16).ok()?;
    let inode = inode.parse().ok()?;
    let path = rest.strip_prefix(' ').unwrap_or(rest).to_owned();
    Some(UnixEntry {
        inode,
        listening: flags & SO_ACCEPTCON != 0,
        stream: kind == 1,
        path,
    })
}

/// Inodes of listening stream sockets in `rows` that may be the control
/// socket `ctl`: those whose printed path ends in `ctl`'s file name (the
/// printed path is what BIRD passed to `bind`, which may be relative or go
/// through a symlink such as /var/run; the real check comes later).
pub fn control_socket_inodes(rows: &[UnixEntry], ctl: &Path) -> BTreeSet<u64> {
    let Some(name) = ctl.file_name().and_then(|n| n.to_str()) else {
        return BTreeSet::new();
    };
    rows.iter()
        .filter(|r| r.listening && r.stream && !r.path.starts_with('@'))
        .filter(|r| r.path == name || r.path.ends_with(&format!("/{name}")))
        .map(|r| r.inode)
        .collect()
}

/// A process that holds a descriptor for a possible control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Holder {
    pub pid: i32,
    /// The descriptor number inside that process.
    pub fd: i32,
    pub inode: u64,
}

/// The number a `/proc` directory entry is named by (a pid, a descriptor).
pub fn numeric_name(entry: &fs::DirEntry) -> Option<i32> {
    entry.file_name().to_str()?.parse().ok()
}

/// Every `socket:[INODE]` descriptor in `fd_dir` (a `/proc/PID/fd`), as
/// (descriptor, inode). A descriptor closed meanwhile is simply not there.
pub fn socket_fds(fd_dir: &Path) -> io::Result<Vec<(i32, u64)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(fd_dir)?.flatten() {
        let Some(fd) = numeric_name(&entry) else {
            continue;
        };
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        if let Some(inode) = target.to_str().and_then(parse_socket_link) {
            out.push((fd, inode));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The `socket:[INODE]` descriptors of `/proc/PID/fd` (under `proc`) whose
/// inode is in `wanted`. An unreadable directory (process gone, no right)
/// holds nothing.
pub fn holders_in(proc: &Path, pid: i32, wanted: &BTreeSet<u64>) -> Vec<Holder> {
    socket_fds(&proc.join(pid.to_string()).join("fd"))
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, inode)| wanted.contains(inode))
        .map(|(fd, inode)| Holder { pid, fd, inode })
        .collect()
}

/// The possible control-socket inodes in the network namespace of `pid`
/// (read from `/proc/PID/net/unix`).
pub fn candidate_inodes(proc: &Path, pid: i32, ctl: &Path) -> BTreeSet<u64> {
    fs::read_to_string(proc.join(pid.to_string()).join("net/unix"))
        .map(|t| control_socket_inodes(&parse_proc_net_unix(&t), ctl))
        .unwrap_or_default()
}

/// Every process under `proc` holding a possible control socket for
/// `ctl`, best candidate first: `/proc/net/unix` is read once per network
/// namespace (`/proc/PID/ns/net`), then each process's descriptors are
/// matched against the inodes of its own namespace. Order: holders other
/// than `creator` (the pid `SO_PEERCRED` names, which for a daemonized BIRD
/// is the exited parent) before it, then by pid.
pub fn find_holders(proc: &Path, ctl: &Path, creator: Option<i32>) -> Vec<Holder> {
    let Ok(dir) = fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut by_ns: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = numeric_name(&entry) else {
            continue;
        };
        let Ok(ns) = fs::read_link(entry.path().join("ns/net")) else {
            continue;
        };
        let ns = ns.to_string_lossy().into_owned();
        let wanted = by_ns
            .entry(ns)
            .or_insert_with(|| candidate_inodes(proc, pid, ctl));
        if wanted.is_empty() {
            continue;
        }
        out.extend(holders_in(proc, pid, wanted));
    }
    out.sort_by_key(|h| (Some(h.pid) == creator, h.pid, h.fd));
    out
}

/// One row of `/proc/PID/net/tcp` or `tcp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddr,
    /// The peer (`0.0.0.0:0` for a listener).
    pub remote: SocketAddr,
    /// Kernel TCP state; `0x0A` is LISTEN.
    pub state: u8,
    pub inode: u64,
}

/// The kernel's `TCP_LISTEN`.
pub const TCP_LISTEN: u8 = 0x0A;
/// The kernel's `TCP_ESTABLISHED`.
pub const TCP_ESTABLISHED: u8 = 0x01;

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
    let remote = parse_hex_sockaddr(it.next()?)?;
    let state = u8::from_str_radix(it.next()?, 16).ok()?;
    // tx:rx, tr:when, retrnsmt, uid, timeout, then inode.
    let inode = it.nth(5)?.parse().ok()?;
    Some(TcpEntry {
        local,
        remote,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

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

    const UNIX: &str = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 27534 /run/bird/bird.ctl
0000000000000000: 00000003 00000000 00000000 0001 03 27600 /run/bird/bird.ctl
0000000000000000: 00000002 00000000 00010000 0002 01 27601 /run/bird/bird.ctl
0000000000000000: 00000002 00000000 00010000 0001 01 27602 /run/other.ctl
0000000000000000: 00000002 00000000 00010000 0001 01 27603 @/run/bird/bird.ctl
0000000000000000: 00000002 00000000 00000000 0001 01   604
0000000000000000: 00000002 00000000 00010000 0001 01 27605 bird.ctl
0000000000000000: 00000002 00000000 00010000 0001 01 27606 /tmp/a b/bird.ctl
garbage line
";

    #[test]
    fn parses_unix_rows() {
        let rows = parse_proc_net_unix(UNIX);
        assert_eq!(rows.len(), 8);
        assert_eq!(
            rows[0],
            UnixEntry {
                inode: 27534,
                listening: true,
                stream: true,
                path: "/run/bird/bird.ctl".into()
            }
        );
        assert!(!rows[1].listening, "an accepted connection");
        assert!(!rows[2].stream, "a datagram socket");
        assert_eq!((rows[5].inode, rows[5].path.as_str()), (604, ""));
        assert_eq!(rows[7].path, "/tmp/a b/bird.ctl");
    }

    #[test]
    fn control_socket_candidates_by_file_name() {
        let rows = parse_proc_net_unix(UNIX);
        let got = control_socket_inodes(&rows, Path::new("/var/run/bird/bird.ctl"));
        // Listening stream sockets named .../bird.ctl or bird.ctl; not the
        // connection, the datagram socket, other.ctl or the abstract name.
        assert_eq!(got, BTreeSet::from([27534, 27605, 27606]));
    }

    /// A fake /proc: `procs` are (pid, netns, [(fd, link)]), `unix` is the
    /// /proc/net/unix text per netns.
    /// (pid, netns, [(fd, link)]).
    type FakeProc<'a> = (i32, &'a str, &'a [(i32, &'a str)]);

    fn fake_proc(procs: &[FakeProc], unix: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (pid, ns, fds) in procs {
            let d = root.path().join(pid.to_string());
            fs::create_dir_all(d.join("fd")).unwrap();
            fs::create_dir_all(d.join("ns")).unwrap();
            fs::create_dir_all(d.join("net")).unwrap();
            symlink(format!("net:[{ns}]"), d.join("ns/net")).unwrap();
            let text = unix.iter().find(|(n, _)| n == ns).map_or("", |(_, t)| t);
            fs::write(d.join("net/unix"), text).unwrap();
            fs::write(d.join("comm"), "bird\n").unwrap();
            for (fd, link) in *fds {
                symlink(link, d.join("fd").join(fd.to_string())).unwrap();
            }
        }
        fs::create_dir_all(root.path().join("self")).unwrap();
        root
    }

    fn row(inode: u64, path: &str) -> String {
        format!("0000000000000000: 00000002 00000000 00010000 0001 01 {inode} {path}\n")
    }

    #[test]
    fn daemonized_bird_is_the_child_holding_the_socket_not_the_creator() {
        let ctl = PathBuf::from("/run/bird/bird.ctl");
        let host = format!("Num ...\n{}", row(555, "/run/bird/bird.ctl"));
        // A process in another namespace whose /proc/net/unix was forged
        // (a path with a newline) to list its own socket 777 under BIRD's path.
        let forged = format!(
            "Num ...\n{}",
            row(777, "/tmp/x\n") + &row(777, "/run/bird/bird.ctl")
        );
        let proc = fake_proc(
            &[
                // 100: the creator (SO_PEERCRED) - it exited: no entry.
                // 101: the daemon, holding the control socket as fd 7.
                (
                    101,
                    "1",
                    &[(0, "/dev/null"), (6, "socket:[900]"), (7, "socket:[555]")],
                ),
                // 102: named bird, holding no control socket.
                (102, "1", &[(3, "socket:[901]")]),
                // 103: another namespace, forged row.
                (103, "2", &[(4, "socket:[777]")]),
            ],
            &[("1", &host), ("2", &forged)],
        );
        let got = find_holders(proc.path(), &ctl, Some(100));
        assert_eq!(
            got,
            vec![
                Holder {
                    pid: 101,
                    fd: 7,
                    inode: 555
                },
                // Only a candidate: Bird::find rejects it, as the socket's
                // own name (getsockname) is not BIRD's path.
                Holder {
                    pid: 103,
                    fd: 4,
                    inode: 777
                },
            ]
        );
    }

    #[test]
    fn foreground_creator_and_child_order() {
        let ctl = PathBuf::from("/run/bird/bird.ctl");
        let host = format!("Num ...\n{}", row(555, "/run/bird/bird.ctl"));
        // During the fork both hold it: the child (not the creator) first.
        let proc = fake_proc(
            &[
                (100, "1", &[(7, "socket:[555]")]),
                (101, "1", &[(7, "socket:[555]")]),
            ],
            &[("1", &host)],
        );
        let got = find_holders(proc.path(), &ctl, Some(100));
        assert_eq!(
            got.iter().map(|h| h.pid).collect::<Vec<_>>(),
            vec![101, 100]
        );
        // BIRD with -f: the creator is the only holder.
        let proc = fake_proc(&[(100, "1", &[(7, "socket:[555]")])], &[("1", &host)]);
        let got = find_holders(proc.path(), &ctl, Some(100));
        assert_eq!(
            got,
            vec![Holder {
                pid: 100,
                fd: 7,
                inode: 555
            }]
        );
        assert_eq!(
            holders_in(proc.path(), 100, &BTreeSet::from([555])).len(),
            1
        );
        assert!(holders_in(proc.path(), 99, &BTreeSet::from([555])).is_empty());
        // Nobody holds it: nothing.
        let proc = fake_proc(&[(100, "1", &[(7, "socket:[556]")])], &[("1", &host)]);
        assert!(find_holders(proc.path(), &ctl, Some(100)).is_empty());
    }
}
