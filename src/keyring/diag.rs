//! Read-back of the MD5 keys on listening sockets through sock_diag
//! (`NETLINK_SOCK_DIAG`, `SOCK_DIAG_BY_FAMILY`, attribute
//! `INET_DIAG_MD5SIG`): the kernel has no getsockopt for MD5 keys, and this
//! is what `ss -tlnie` shows as `md5keys:`.
//!
//! The request builder and the reply parser are pure; the socket round trip
//! is [`super::sys::sock_diag_dump`]. The parser keeps only each key's
//! address and prefix length: the key bytes the kernel may include are
//! skipped, never copied. Only sockets of the caller's network namespace
//! are visible, and the kernel includes MD5 keys only for CAP_NET_ADMIN.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::Family;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const INET_DIAG_INFO: u8 = 2;
/// `enum inet_diag_attr` (linux/inet_diag.h): 18, after CLASS_ID.
const INET_DIAG_MD5SIG: u16 = 18;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_msg`: family, state, timer, retrans, a 48-byte
/// `inet_diag_sockid`, expires, rqueue, wqueue, uid, inode.
const INET_DIAG_MSG_LEN: usize = 72;
/// `struct tcp_diag_md5sig`: family, prefixlen, keylen, addr[4], key[80].
const TCP_DIAG_MD5SIG_LEN: usize = 100;

/// One `SOCK_DIAG_BY_FAMILY` dump request for TCP listeners of `family`.
pub fn build_request(family: Family, seq: u32) -> Vec<u8> {
    let af = match family {
        Family::V4 => libc::AF_INET as u8,
        Family::V6 => libc::AF_INET6 as u8,
    };
    let len = NLMSG_HDRLEN + 56;
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    // struct inet_diag_req_v2
    b.push(af);
    b.push(libc::IPPROTO_TCP as u8);
    // idiag_ext: the kernel adds INET_DIAG_MD5SIG (tcp_diag_get_aux) only
    // when INET_DIAG_INFO (2) is asked for.
    b.push(1 << (INET_DIAG_INFO - 1));
    b.push(0);
    b.extend_from_slice(&(1u32 << super::TCP_LISTEN).to_ne_bytes());
    b.extend_from_slice(&[0u8; 48]); // inet_diag_sockid: any
    b
}

/// What one reply buffer said.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DiagChunk {
    /// Listener inode -> its MD5 keys (address/prefix length).
    pub keys: BTreeMap<u64, Vec<IpNet>>,
    /// `NLMSG_DONE` seen: the dump is complete.
    pub done: bool,
    /// `NLMSG_ERROR` with this (positive) errno.
    pub error: Option<i32>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parse one buffer of netlink messages from a sock_diag dump. Truncated or
/// malformed messages end the parse (what was read so far is returned).
pub fn parse_reply(buf: &[u8]) -> DiagChunk {
    let mut out = DiagChunk::default();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u32_at(buf, at), u16_at(buf, at + 4)) {
        let len = len as usize;
        let Some(msg) = buf.get(at..at + len) else {
            break;
        };
        if len < NLMSG_HDRLEN {
            break;
        }
        match kind {
            NLMSG_DONE => {
                out.done = true;
                break;
            }
            NLMSG_ERROR => {
                let errno = u32_at(msg, NLMSG_HDRLEN).map(|e| (e as i32).unsigned_abs() as i32);
                out.error = errno.filter(|&e| e != 0);
                out.done = true;
                break;
            }
            SOCK_DIAG_BY_FAMILY => {
                if let Some((inode, keys)) = parse_diag_msg(&msg[NLMSG_HDRLEN..]) {
                    out.keys.insert(inode, keys);
                }
            }
            _ => {}
        }
        at += align4(len);
    }
    out
}

fn parse_diag_msg(m: &[u8]) -> Option<(u64, Vec<IpNet>)> {
    let inode = u64::from(u32_at(m, 68)?);
    let mut keys = Vec::new();
    let mut at = INET_DIAG_MSG_LEN;
    while let (Some(alen), Some(atype)) = (u16_at(m, at), u16_at(m, at + 2)) {
        let alen = usize::from(alen);
        if alen < 4 {
            break;
        }
        let Some(data) = m.get(at + 4..at + alen) else {
            break;
        };
        if atype == INET_DIAG_MD5SIG {
            for rec in data.chunks_exact(TCP_DIAG_MD5SIG_LEN) {
                if let Some(net) = parse_md5_record(rec) {
                    keys.push(net);
                }
            }
        }
        at += align4(alen);
    }
    keys.sort();
    Some((inode, keys))
}

/// Address and prefix length of one `struct tcp_diag_md5sig`; the key
/// bytes (offset 20..100) are not read.
fn parse_md5_record(rec: &[u8]) -> Option<IpNet> {
    let family = i32::from(*rec.first()?);
    let plen = *rec.get(1)?;
    let addr = rec.get(4..20)?;
    let ip = if family == libc::AF_INET {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else if family == libc::AF_INET6 {
        let b: [u8; 16] = addr.try_into().ok()?;
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        return None;
    };
    IpNet::new(ip, plen).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&[0u8; 10]);
        b.extend_from_slice(payload);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    }

    fn diag_msg(inode: u32, keys: &[(u8, u8, [u8; 16])]) -> Vec<u8> {
        let mut m = vec![0u8; INET_DIAG_MSG_LEN];
        m[68..72].copy_from_slice(&inode.to_ne_bytes());
        let mut data = Vec::new();
        for (fam, plen, addr) in keys {
            let mut rec = vec![0u8; TCP_DIAG_MD5SIG_LEN];
            rec[0] = *fam;
            rec[1] = *plen;
            rec[2] = 7;
            rec[4..20].copy_from_slice(addr);
            rec[20..27].copy_from_slice(b"SECRET!");
            data.extend_from_slice(&rec);
        }
        // an unrelated attribute first (INET_DIAG_INFO = 2, 8 bytes)
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&[1, 2, 3, 4]);
        m.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        m.extend_from_slice(&INET_DIAG_MD5SIG.to_ne_bytes());
        m.extend_from_slice(&data);
        m
    }

    #[test]
    fn request_layout() {
        let r = build_request(Family::V6, 9);
        assert_eq!(r.len(), 72);
        assert_eq!(u32_at(&r, 0), Some(72));
        assert_eq!(u16_at(&r, 4), Some(20));
        assert_eq!(r[16], libc::AF_INET6 as u8);
        assert_eq!(r[17], 6);
        assert_eq!(r[18], 2);
        assert_eq!(u32_at(&r, 20), Some(1 << 10));
    }

    #[test]
    fn parses_keys_and_done() {
        let mut a4 = [0u8; 16];
        a4[..4].copy_from_slice(&[10, 88, 0, 0]);
        let a6: [u8; 16] = "2001:db8::".parse::<Ipv6Addr>().unwrap().octets();
        let mut buf = nlmsg(
            SOCK_DIAG_BY_FAMILY,
            &diag_msg(
                4242,
                &[
                    (libc::AF_INET as u8, 24, a4),
                    (libc::AF_INET6 as u8, 32, a6),
                ],
            ),
        );
        buf.extend(nlmsg(SOCK_DIAG_BY_FAMILY, &diag_msg(7, &[])));
        buf.extend(nlmsg(NLMSG_DONE, &[0, 0, 0, 0]));
        let c = parse_reply(&buf);
        assert!(c.done);
        assert_eq!(c.error, None);
        let want: Vec<IpNet> = vec![
            "10.88.0.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        assert_eq!(c.keys.get(&4242), Some(&want));
        assert_eq!(c.keys.get(&7), Some(&Vec::new()));
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[test]
    fn error_and_garbage() {
        let c = parse_reply(&nlmsg(NLMSG_ERROR, &(-1i32).to_ne_bytes()));
        assert_eq!((c.done, c.error), (true, Some(1)));
        for junk in [
            &b""[..],
            &[1, 0, 0, 0, 20, 0][..],
            &[255u8; 40][..],
            &[16, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            let c = parse_reply(junk);
            assert!(c.keys.is_empty() || c.keys.values().all(Vec::is_empty));
        }
    }
}
