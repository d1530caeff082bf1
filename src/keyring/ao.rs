//! TCP-AO groups (RFC 5925): one prefix MKT per `[[group.ao_key]]` and
//! group prefix on BIRD's listeners, and the same keys on the sessions BIRD
//! accepted through them.
//!
//! Why both (ao-experiment.md; anchors-2.md §2): the kernel completes a
//! handshake only for an AO-signed SYN whose key a listener MKT covers, and
//! on accept copies every covering listener MKT onto the new socket, which
//! from then on signs and verifies each segment with its *own* copies. So a
//! key added to or retired from a group must also be added to or deleted
//! from each accepted session of the group, or a peer that rolls to the new
//! key is dropped. The peer steers which key signs: Linux switches a
//! socket's current key to the one the peer's RNext asks for; autopeer makes
//! the group's `current` key current and RNext once per session and
//! current key, and when it deletes a key that is current there.
//!
//! Pure here: [`desired_ao_keys`] (which MKTs) and [`reconcile`] (what to do
//! on one socket, given what it holds). [`sync_socket`] applies the actions
//! through [`sys`]. Nothing here prints a secret: keys are compared with
//! [`Secret::expose`] and dropped.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use ipnet::IpNet;

use super::plan::{is_host, key_prefixes};
use super::sys::{self, AoAdd, AoInfo, AoKeyInfo};
use super::Family;
use crate::bird::conf::BirdConf;
use crate::config::{AoAlgorithm, Group};
use crate::secret::Secret;

/// One prefix MKT to keep on the listeners of its family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAoKey {
    pub prefix: IpNet,
    pub send_id: u8,
    pub recv_id: u8,
    pub algorithm: AoAlgorithm,
    pub secret: Secret<Vec<u8>>,
    /// The group's `current` key.
    pub current: bool,
    pub group: String,
}

impl DesiredAoKey {
    /// The MKT's identity in the kernel: (prefix, SendID, RecvID).
    pub fn id(&self) -> (IpNet, u8, u8) {
        (self.prefix, self.send_id, self.recv_id)
    }

    /// `10.88.0.0/24 key 1/1 hmac-sha1 (group g)`: never the secret.
    pub fn describe(&self) -> String {
        format!(
            "{} key {}/{} {}{} (group {})",
            self.prefix,
            self.send_id,
            self.recv_id,
            self.algorithm,
            if self.current { " current" } else { "" },
            self.group
        )
    }

    /// (prefix, group, sentence) for a key the kernel refused.
    pub fn failure(&self, e: &io::Error) -> (IpNet, String, String) {
        (
            self.prefix,
            self.group.clone(),
            format!(
                "TCP-AO key {}/{} {}: {}",
                self.send_id,
                self.recv_id,
                self.algorithm,
                explain(e)
            ),
        )
    }

    /// Whether the kernel's `k` is this MKT with this algorithm and secret.
    fn same_as(&self, k: &AoKeyInfo) -> bool {
        k.net.trunc() == self.prefix
            && k.sndid == self.send_id
            && k.rcvid == self.recv_id
            && AoAlgorithm::from_kernel(&k.alg) == Some(self.algorithm)
            && k.maclen == sys::AO_MACLEN
            && k.key.expose() == self.secret.expose()
    }
}

/// Why an AO group cannot be keyed as configured; `check` prints these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AoProblem {
    #[error(
        "group {group}: template {template} has a `password`, so BIRD would install \
         TCP-MD5 keys for the group's TCP-AO peers and the kernel refuses both kinds \
         of key for one peer: use a template without a password"
    )]
    Md5Template { group: String, template: String },
    #[error(
        "group {ao} (TCP-AO) and group {md5} (TCP-MD5) overlap in {prefix}: the kernel \
         refuses an AO key where an MD5 key covers the address, and BIRD's MD5 keys \
         for peers inside an AO prefix: give them disjoint prefixes"
    )]
    Overlap {
        ao: String,
        md5: String,
        prefix: IpNet,
    },
}

/// The prefix MKTs of the AO groups: each key of each group on each of its
/// prefixes minus the addresses that must stay reachable without it: its
/// `deny` entries, every static neighbor of bird.conf inside (BIRD keys
/// those itself, with MD5 or its own AO keys, or not at all), BIRD's native
/// `neighbor range`s, and more specific prefixes of groups that are not AO.
/// Problems: a template with a password, MD5 groups overlapping.
/// `md5_groups`: the names of the groups that sign with MD5 (their own
/// password or their template's).
pub fn desired_ao_keys(
    groups: &[Group],
    conf: &BirdConf,
    md5_groups: &BTreeSet<String>,
) -> (Vec<DesiredAoKey>, Vec<AoProblem>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let others: Vec<&Group> = groups.iter().filter(|g| !g.is_ao()).collect();
    for g in groups.iter().filter(|g| g.is_ao()) {
        if conf
            .templates
            .get(&g.template)
            .is_some_and(|t| t.password.is_some())
        {
            problems.push(AoProblem::Md5Template {
                group: g.name.clone(),
                template: g.template.clone(),
            });
            continue;
        }
        let mut overlap = false;
        for o in others.iter().filter(|o| md5_groups.contains(&o.name)) {
            for a in &g.prefixes {
                for b in &o.prefixes {
                    if a.contains(b) || b.contains(a) {
                        problems.push(AoProblem::Overlap {
                            ao: g.name.clone(),
                            md5: o.name.clone(),
                            prefix: if a.prefix_len() >= b.prefix_len() {
                                *a
                            } else {
                                *b
                            },
                        });
                        overlap = true;
                    }
                }
            }
        }
        if overlap {
            continue;
        }
        let mut exempt: Vec<IpNet> = g.deny.clone();
        exempt.extend(
            conf.neighbors
                .iter()
                .filter(|n| g.contains(n.addr))
                .map(|n| IpNet::from(n.addr)),
        );
        exempt.extend(conf.ranges.iter().map(|r| r.range));
        for o in &others {
            for u in &o.prefixes {
                if g.prefixes
                    .iter()
                    .any(|p| u.prefix_len() > p.prefix_len() && p.contains(u))
                {
                    exempt.push(*u);
                }
            }
        }
        for prefix in key_prefixes(&g.prefixes, &exempt) {
            for k in &g.ao_keys {
                out.push(DesiredAoKey {
                    prefix,
                    send_id: k.send_id,
                    recv_id: k.recv_id,
                    algorithm: k.algorithm,
                    secret: k.secret.clone(),
                    current: k.current,
                    group: g.name.clone(),
                });
            }
        }
    }
    (out, problems)
}

/// One change to a socket's MKTs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AoAction {
    /// Install `wanted[i]`.
    Add(usize),
    /// The socket holds `wanted[i]`'s IDs with another secret or
    /// algorithm: delete that MKT, then install `wanted[i]`.
    Replace(usize),
    /// Delete an MKT nobody wants: (prefix, SendID, RecvID).
    Delete(IpNet, u8, u8),
}

/// What makes a socket that holds `present` hold exactly `wanted` (plus
/// host-length MKTs, which are BIRD's own per-neighbor keys): adds and
/// replacements first, deletions last, so that a session always has a key.
pub fn reconcile(present: &[AoKeyInfo], wanted: &[&DesiredAoKey]) -> Vec<AoAction> {
    let mut actions = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        let same_ids = present
            .iter()
            .find(|k| (k.net.trunc(), k.sndid, k.rcvid) == w.id());
        match same_ids {
            Some(k) if w.same_as(k) => {}
            Some(_) => actions.push(AoAction::Replace(i)),
            None => actions.push(AoAction::Add(i)),
        }
    }
    let ids: BTreeSet<(IpNet, u8, u8)> = wanted.iter().map(|w| w.id()).collect();
    for k in present {
        let id = (k.net.trunc(), k.sndid, k.rcvid);
        if !is_host(&k.net) && !ids.contains(&id) {
            actions.push(AoAction::Delete(id.0, id.1, id.2));
        }
    }
    actions
}

/// The address to hand the kernel for `net` on a socket of `family`: an
/// IPv4 prefix on an IPv6 socket goes v4-mapped, as for MD5.
fn kernel_addr(family: Family, net: &IpNet) -> (IpAddr, u8) {
    match (family, net.addr()) {
        (Family::V6, IpAddr::V4(a)) => (IpAddr::V6(a.to_ipv6_mapped()), net.prefix_len() + 96),
        (_, a) => (a, net.prefix_len()),
    }
}

fn add(fd: BorrowedFd<'_>, family: Family, w: &DesiredAoKey) -> io::Result<()> {
    let (addr, prefix) = kernel_addr(family, &w.prefix);
    sys::ao_add_key(
        fd,
        &AoAdd {
            addr,
            prefix,
            sndid: w.send_id,
            rcvid: w.recv_id,
            alg: w.algorithm.kernel_name(),
            key: w.secret.expose(),
        },
    )
}

/// What one socket got.
#[derive(Debug, Default)]
pub struct SocketOutcome {
    /// Wanted MKTs the socket holds now.
    pub keys: usize,
    pub added: usize,
    pub removed: usize,
    /// (prefix, group, what failed): never a secret.
    pub failed: Vec<(IpNet, String, String)>,
}

/// The sentence for an error of the kernel's TCP-AO calls.
pub fn explain(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOPROTOOPT) => "this kernel has no TCP-AO (it needs Linux 6.7 or later \
             built with CONFIG_TCP_AO); the group's peers cannot connect"
            .to_owned(),
        Some(libc::EEXIST) => "an MKT with the same SendID or RecvID already covers part of \
             the prefix (BIRD's own `authentication ao` key for a neighbor inside?)"
            .to_owned(),
        Some(libc::EKEYREJECTED) => "an MD5 key covers this prefix: the kernel refuses \
             TCP-AO there"
            .to_owned(),
        Some(libc::ENOENT) => {
            "the kernel's crypto API lacks this algorithm (see /proc/crypto)".to_owned()
        }
        _ => e.to_string(),
    }
}

/// Make socket `fd` (of `family`) hold exactly `wanted` as AO prefix MKTs,
/// given what it holds (`present`). `current`: on an established socket,
/// (SendID, RecvID) of the group's current key, used when a deleted key is
/// the socket's current or RNext one.
pub fn sync_socket(
    fd: BorrowedFd<'_>,
    family: Family,
    present: &[AoKeyInfo],
    wanted: &[&DesiredAoKey],
    current: Option<(u8, u8)>,
) -> SocketOutcome {
    let mut out = SocketOutcome {
        keys: wanted.len(),
        ..SocketOutcome::default()
    };
    for action in reconcile(present, wanted) {
        match action {
            AoAction::Add(i) => match add(fd, family, wanted[i]) {
                Ok(()) => out.added += 1,
                Err(e) => {
                    out.keys -= 1;
                    out.failed.push(wanted[i].failure(&e));
                }
            },
            AoAction::Replace(i) => {
                let w = wanted[i];
                let (addr, prefix) = kernel_addr(family, &w.prefix);
                let r = sys::ao_del_key(fd, addr, prefix, w.send_id, w.recv_id, None)
                    .and_then(|()| add(fd, family, w));
                match r {
                    Ok(()) => out.added += 1,
                    Err(e) => {
                        out.keys -= 1;
                        out.failed.push(w.failure(&e));
                    }
                }
            }
            AoAction::Delete(net, s, r) => {
                let (addr, prefix) = kernel_addr(family, &net);
                let mut res = sys::ao_del_key(fd, addr, prefix, s, r, None);
                if res.as_ref().err().and_then(io::Error::raw_os_error) == Some(libc::EBUSY) {
                    // It is the session's current or RNext key: move both
                    // to the group's current key in the same call.
                    if let Some(c) = current {
                        res = sys::ao_del_key(fd, addr, prefix, s, r, Some(c));
                    }
                }
                match res {
                    Ok(()) => out.removed += 1,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => out.failed.push((
                        net,
                        "(stale)".to_owned(),
                        format!("cannot delete TCP-AO key {s}/{r}: {}", explain(&e)),
                    )),
                }
            }
        }
    }
    out
}

/// Whether `info` says the session signs with and asks for `current`.
pub fn steered(info: &AoInfo, current: (u8, u8)) -> bool {
    (info.current, info.rnext) == current
}

/// The keys on a socket as `show status` names them.
pub fn describe_present(present: &[AoKeyInfo]) -> Vec<String> {
    present
        .iter()
        .map(|k| {
            let alg =
                AoAlgorithm::from_kernel(&k.alg).map_or(k.alg.clone(), |a| a.word().to_owned());
            format!(
                "{} key {}/{} {alg}{}",
                k.net,
                k.sndid,
                k.rcvid,
                if is_host(&k.net) { " (BIRD's)" } else { "" }
            )
        })
        .collect()
}

/// The TCP-AO counters of BIRD's network namespace (`TcpExt: TCPAO...` of
/// `/proc/PID/net/netstat`): (name, value), in the kernel's order. Empty on
/// a kernel without TCP-AO.
pub fn netstat_counters(text: &str) -> Vec<(String, u64)> {
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some(n), Some(v)) = (
            names.strip_prefix("TcpExt:"),
            values.strip_prefix("TcpExt:"),
        ) else {
            continue;
        };
        return n
            .split_whitespace()
            .zip(v.split_whitespace())
            .filter(|(n, _)| n.starts_with("TCPAO"))
            .filter_map(|(n, v)| Some((n.to_owned(), v.parse().ok()?)))
            .collect();
    }
    Vec::new()
}

/// Whether this kernel has TCP-AO: `TCP_AO_GET_KEYS` on a fresh socket of
/// our own answers ENOENT (no keys yet) with it and ENOPROTOOPT without.
/// `Err` is the sentence for `check`.
pub fn kernel_support() -> Result<(), String> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::STREAM,
        None,
    )
    .map_err(|e| format!("cannot open a TCP socket to test for TCP-AO: {e}"))?;
    match sys::ao_get_keys(std::os::fd::AsFd::as_fd(&sock)) {
        Ok(_) => Ok(()),
        Err(e) => Err(explain(&e)),
    }
}

/// Whether the kernel can make an MKT with `alg`: installs a throw-away key
/// for 192.0.2.0/24 on a fresh socket of our own (nothing else ever sees
/// it). `Err` says why not, naming `/proc/crypto` when the base cipher is
/// not listed there.
pub fn algorithm_support(alg: AoAlgorithm) -> Result<(), String> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::STREAM,
        None,
    )
    .map_err(|e| format!("cannot open a TCP socket: {e}"))?;
    let probe = AoAdd {
        addr: IpAddr::from([192, 0, 2, 0]),
        prefix: 24,
        sndid: 1,
        rcvid: 1,
        alg: alg.kernel_name(),
        key: b"autopeer-check",
    };
    match sys::ao_add_key(std::os::fd::AsFd::as_fd(&sock), &probe) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => Err(explain(&e)),
        Err(e) => {
            let base = match alg {
                AoAlgorithm::HmacSha1 => "sha1",
                AoAlgorithm::CmacAes128 => "aes",
                AoAlgorithm::HmacSha256 => "sha256",
            };
            let listed = std::fs::read_to_string("/proc/crypto")
                .map(|t| crypto_lists(&t, base))
                .unwrap_or(false);
            Err(format!(
                "the kernel cannot make {} keys ({e}){}",
                alg.kernel_name(),
                if listed {
                    String::new()
                } else {
                    format!("; /proc/crypto lists no {base}: load its module or choose another algorithm")
                }
            ))
        }
    }
}

/// Whether `/proc/crypto` text has an algorithm named `name`.
pub fn crypto_lists(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(k, v)| k.trim() == "name" && v.trim() == name)
    })
}

/// BIRD's own MKTs (host-length: `authentication ao` of a static neighbor)
/// on a listener that collide with a group key: inside one of the
/// group's prefixes with the same SendID or RecvID. The kernel refuses
/// such overlapping MKTs (EEXIST), and BIRD would reject a session that
/// carries a key it did not configure. One sentence each.
pub fn collisions(present: &[AoKeyInfo], groups: &[Group]) -> Vec<String> {
    let mut out = Vec::new();
    for k in present.iter().filter(|k| is_host(&k.net)) {
        for g in groups.iter().filter(|g| g.contains(k.net.addr())) {
            for gk in &g.ao_keys {
                if gk.send_id == k.sndid || gk.recv_id == k.rcvid {
                    out.push(format!(
                        "BIRD holds its own TCP-AO key {}/{} for {} inside group {}, whose {} \
                         shares an ID: give the group's key other IDs or move the neighbor \
                         out of the group's prefixes",
                        k.sndid,
                        k.rcvid,
                        k.net.addr(),
                        g.name,
                        gk.name()
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AoKey;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ao_group(name: &str, prefixes: &[&str], keys: &[(u8, u8, bool)]) -> Group {
        Group {
            name: name.into(),
            template: "T".into(),
            prefixes: prefixes.iter().map(|p| net(p)).collect(),
            neighbor: None,
            password: None,
            deny: Vec::new(),
            max_peers: 10,
            rate: None,
            expire: None,
            interface: None,
            nbma_prefixes: Vec::new(),
            cert: None,
            depart: None,
            ao_keys: keys
                .iter()
                .map(|&(s, r, current)| AoKey {
                    send_id: s,
                    recv_id: r,
                    algorithm: AoAlgorithm::HmacSha1,
                    secret: Secret::new(format!("secret-{s}").into_bytes()),
                    current,
                })
                .collect(),
        }
    }

    fn conf(text: &str) -> BirdConf {
        crate::bird::conf::scan_text(text, std::path::Path::new("bird.conf")).unwrap()
    }

    const CONF: &str = r#"
template bgp T { local as 65000; neighbor internal; }
template bgp M { local as 65000; neighbor internal; password "md5"; }
protocol bgp s1 from T { neighbor 10.1.0.5; }
"#;

    #[test]
    fn one_mkt_per_key_and_prefix_minus_statics_and_deny() {
        let mut g = ao_group("ao", &["10.1.0.0/24"], &[(1, 1, true), (2, 2, false)]);
        g.deny = vec![net("10.1.0.128/25")];
        let (keys, problems) = desired_ao_keys(&[g], &conf(CONF), &BTreeSet::new());
        assert!(problems.is_empty(), "{problems:?}");
        let ids: Vec<(IpNet, u8, u8)> = keys.iter().map(DesiredAoKey::id).collect();
        // 10.1.0.0/25 minus 10.1.0.5: /30 .0, /32 .4, /32 .6 ... 7 prefixes.
        let prefixes: BTreeSet<IpNet> = ids.iter().map(|i| i.0).collect();
        assert_eq!(prefixes.len(), 7, "{prefixes:?}");
        assert!(prefixes
            .iter()
            .all(|p| !p.contains(&"10.1.0.5".parse::<IpAddr>().unwrap())));
        assert!(prefixes
            .iter()
            .all(|p| !p.contains(&"10.1.0.200".parse::<IpAddr>().unwrap())));
        assert_eq!(keys.len(), 14, "two keys on each prefix");
        assert_eq!(keys.iter().filter(|k| k.current).count(), 7);
        assert!(!format!("{keys:?}").contains("secret-1"));
        assert!(!keys[0].describe().contains("secret"));
    }

    #[test]
    fn md5_template_and_overlapping_md5_groups_are_problems() {
        let mut g = ao_group("ao", &["10.1.0.0/24"], &[(1, 1, true)]);
        g.template = "M".into();
        let (keys, problems) = desired_ao_keys(&[g], &conf(CONF), &BTreeSet::new());
        assert!(keys.is_empty());
        assert!(matches!(problems[..], [AoProblem::Md5Template { .. }]));

        let a = ao_group("ao", &["10.1.0.0/24"], &[(1, 1, true)]);
        let mut m = ao_group("md5", &["10.1.0.0/16"], &[]);
        m.password = Some(Secret::new("pw".into()));
        let md5: BTreeSet<String> = ["md5".to_owned()].into();
        let (keys, problems) = desired_ao_keys(&[a.clone(), m], &conf(CONF), &md5);
        assert!(keys.is_empty());
        let text = problems[0].to_string();
        assert!(
            text.contains("group ao (TCP-AO) and group md5 (TCP-MD5) overlap in 10.1.0.0/24"),
            "{text}"
        );

        // An unsigned group more specific inside gets a hole instead.
        let u = ao_group("open", &["10.1.0.64/26"], &[]);
        let (keys, problems) = desired_ao_keys(&[a, u], &conf(CONF), &BTreeSet::new());
        assert!(problems.is_empty());
        let inside: IpAddr = "10.1.0.70".parse().unwrap();
        assert!(keys.iter().all(|k| !k.prefix.contains(&inside)));
    }

    fn present(k: &DesiredAoKey, secret: &[u8]) -> AoKeyInfo {
        AoKeyInfo {
            net: k.prefix,
            sndid: k.send_id,
            rcvid: k.recv_id,
            maclen: sys::AO_MACLEN,
            alg: k.algorithm.kernel_name().into(),
            key: Secret::new(secret.to_vec()),
            is_current: false,
            is_rnext: false,
            good: 0,
            bad: 0,
        }
    }

    #[test]
    fn reconcile_adds_replaces_and_deletes_only_prefix_keys() {
        let g = ao_group(
            "ao",
            &["10.1.0.0/24"],
            &[(1, 1, true), (2, 2, false), (3, 3, false)],
        );
        let (keys, _) = desired_ao_keys(&[g], &conf(""), &BTreeSet::new());
        let wanted: Vec<&DesiredAoKey> = keys.iter().collect();
        let mut old = present(&keys[0], b"secret-1");
        old.sndid = 9;
        old.rcvid = 9;
        let bird_own = AoKeyInfo {
            net: net("10.1.0.9/32"),
            ..present(&keys[0], b"x")
        };
        let have = vec![
            present(&keys[0], b"secret-1"),
            present(&keys[1], b"changed"),
            old,
            bird_own,
        ];
        assert_eq!(
            reconcile(&have, &wanted),
            vec![
                AoAction::Replace(1),
                AoAction::Add(2),
                AoAction::Delete(net("10.1.0.0/24"), 9, 9)
            ]
        );
        // The kernel reads AES-128-CMAC back as `cmac(aes)`: the same key.
        let mut cmac = keys[0].clone();
        cmac.algorithm = AoAlgorithm::CmacAes128;
        let mut back = present(&cmac, b"secret-1");
        back.alg = "cmac(aes)".into();
        assert_eq!(reconcile(&[back], &[&cmac]), vec![]);
        // Converged: nothing to do.
        let have: Vec<AoKeyInfo> = keys.iter().map(|k| present(k, k.secret.expose())).collect();
        assert_eq!(reconcile(&have, &wanted), vec![]);
    }

    #[test]
    fn birds_own_keys_that_share_an_id_are_named() {
        let g = ao_group("ao", &["10.1.0.0/24"], &[(1, 1, true)]);
        let (keys, _) = desired_ao_keys(std::slice::from_ref(&g), &conf(""), &BTreeSet::new());
        let bird = |addr: &str, id: u8| AoKeyInfo {
            net: net(addr),
            sndid: id,
            rcvid: id,
            ..present(&keys[0], b"x")
        };
        let found = collisions(
            &[
                bird("10.1.0.9/32", 1),
                bird("10.1.0.10/32", 5),
                bird("10.2.0.1/32", 1),
                present(&keys[0], b"x"),
            ],
            &[g],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("BIRD holds its own TCP-AO key 1/1 for 10.1.0.9 inside group ao, whose key 1/1 shares an ID"),
            "{found:?}"
        );
    }

    #[test]
    fn proc_crypto_names() {
        let text =
            "name         : sha256\ndriver       : sha256-generic\n\nname         : hmac(sha1)\n";
        assert!(crypto_lists(text, "sha256"));
        assert!(crypto_lists(text, "hmac(sha1)"));
        assert!(!crypto_lists(text, "sha1"));
    }

    #[test]
    fn netstat_ao_counters() {
        let text = "TcpExt: SyncookiesSent TCPAOGood TCPAOBad TCPAOKeyNotFound\nTcpExt: 0 27 4 1\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(
            netstat_counters(text),
            vec![
                ("TCPAOGood".to_owned(), 27),
                ("TCPAOBad".to_owned(), 4),
                ("TCPAOKeyNotFound".to_owned(), 1)
            ]
        );
        assert!(netstat_counters("TcpExt: A\nTcpExt: 1\n").is_empty());
    }
}
