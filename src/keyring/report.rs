//! What the keyring tells the operator: the outcome of one sync
//! ([`KeyringReport`]), the `Keyring ...` lines of `show status`
//! ([`KeyringStatus`]), the sentences `check` prints (a missing listener,
//! too little socket option memory), and the events each change is worth
//! ([`Reporter`]). Nothing here holds or prints a key.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::net::SocketAddr;

use ipnet::IpNet;

use super::{Family, Listener};
use crate::event::{Event, KeyringChange};

/// Bytes of socket option memory one MD5 key costs on this kernel
/// (`sizeof(struct tcp_md5sig_key)`, charged by `sock_kmalloc` to
/// `sk_omem_alloc`), measured by `tests/keyring.rs::optmem_per_key` on
/// Linux 6.18 x86_64: optmem_max 131072 holds 963 keys.
pub const BYTES_PER_KEY: usize = 136;

/// A sentence when `n_keys` MD5 keys on one listener (BIRD's per-neighbor
/// keys plus the keyring's prefix keys) would not fit in `optmem_max`
/// bytes of socket option memory (docs/facts.md, fact 4).
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

/// What one listener got in one [`Keyring::sync`](super::Keyring::sync).
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
    /// TCP-AO: the MKTs it holds, its counters, the sessions keyed; `None`
    /// when no AO key is wanted and it holds none.
    pub ao: Option<AoListenerStatus>,
}

/// One listener's TCP-AO state, as `show status` prints it. Never a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AoListenerStatus {
    pub inode: u64,
    /// Every MKT on it (`10.88.0.0/24 key 1/1 hmac-sha1`), BIRD's included.
    pub keys: Vec<String>,
    /// Its `TCP_AO_INFO` counters (SYNs dropped before BIRD saw them).
    pub info: Option<super::sys::AoInfo>,
    /// Sessions accepted through it that carry a group's MKTs.
    pub sessions: usize,
    /// MKTs added to or deleted from those sessions in the last sync.
    pub session_changes: usize,
    /// Segments those sessions dropped (their `TCP_AO_INFO` bad and key
    /// not found counters, summed).
    pub session_drops: u64,
}

impl AoListenerStatus {
    /// `TCP-AO on inode N: keys ...; listener drops: bad B, key not found K,
    /// unsigned U; S session(s)`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "TCP-AO on inode {}: {}",
            self.inode,
            if self.keys.is_empty() {
                "no keys".to_owned()
            } else {
                self.keys.join(", ")
            }
        );
        if let Some(i) = &self.info {
            line.push_str(&format!(
                "; listener drops: bad {}, key not found {}, unsigned {}",
                i.bad, i.key_not_found, i.ao_required
            ));
        }
        line.push_str(&format!(
            "; {} signed session(s), {} segment(s) dropped on them",
            self.sessions, self.session_drops
        ));
        line
    }
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
    /// `TcpExt: TCPAO*` of BIRD's network namespace.
    pub ao_counters: Vec<(String, u64)>,
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

/// One listener as `show status` and `check` print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    pub family: Family,
    pub local: SocketAddr,
    pub inode: u64,
    /// Prefix keys of autopeer now on it.
    pub keys: usize,
    /// Keys the kernel refused at the last sync (prefix and group, and the
    /// error; never the key).
    pub failed: Vec<String>,
}

/// The keyring as the operator sees it. Never holds a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyringStatus {
    /// `[bird] keyring = "off"`.
    pub off: bool,
    /// Groups with a key (their own or their template's).
    pub keyed_groups: Vec<String>,
    /// Desired prefix keys per family: (IPv4, IPv6).
    pub wanted: (usize, usize),
    pub pid: Option<i32>,
    pub listeners: Vec<ListenerStatus>,
    /// Families with keys but no BIRD listener, with the advice sentence.
    pub missing: Vec<MissingListener>,
    /// Why the keyring cannot work now (BIRD not found, no privilege, a
    /// group that cannot be keyed); `None` when it works.
    pub error: Option<String>,
    /// TCP-AO state of each listener that has any.
    pub ao_listeners: Vec<AoListenerStatus>,
    /// `TcpExt: TCPAO*` counters of BIRD's network namespace.
    pub ao_counters: Vec<(String, u64)>,
}

impl KeyringStatus {
    /// `Keyring ...` lines for `show status`: one per family that has
    /// keys or a listener, or one line saying why there are none.
    pub fn lines(&self) -> Vec<String> {
        if self.off {
            return vec!["Keyring: off".into()];
        }
        let mut out = Vec::new();
        if let Some(e) = &self.error {
            out.push(format!("Keyring: {e}"));
        }
        if self.keyed_groups.is_empty() {
            if out.is_empty() {
                out.push("Keyring: no group has a password, nothing keyed".into());
            }
            return out;
        }
        for (family, wanted) in [(Family::V4, self.wanted.0), (Family::V6, self.wanted.1)] {
            let ls: Vec<&ListenerStatus> = self
                .listeners
                .iter()
                .filter(|l| l.family == family)
                .collect();
            for l in &ls {
                let mut line = format!(
                    "Keyring {family}: listener {} inode {} (BIRD pid {}), {} of {wanted} prefix key(s) installed",
                    l.local,
                    l.inode,
                    self.pid.map_or_else(|| "?".into(), |p| p.to_string()),
                    l.keys
                );
                if !l.failed.is_empty() {
                    line.push_str(&format!(
                        ", {} failed: {}",
                        l.failed.len(),
                        l.failed.join("; ")
                    ));
                }
                out.push(line);
            }
            for l in &ls {
                if let Some(ao) = self.ao_listeners.iter().find(|a| a.inode == l.inode) {
                    out.push(format!("Keyring {family}: {}", ao.line()));
                }
            }
            if let Some(m) = self.missing.iter().find(|m| m.family == family) {
                out.push(format!("Keyring {family}: {}", m.advice));
            } else if ls.is_empty() && wanted > 0 && self.error.is_none() {
                out.push(format!(
                    "Keyring {family}: {wanted} prefix key(s), not yet installed"
                ));
            }
        }
        if !self.ao_listeners.is_empty() && !self.ao_counters.is_empty() {
            let c: Vec<String> = self
                .ao_counters
                .iter()
                .map(|(n, v)| format!("{n} {v}"))
                .collect();
            out.push(format!("Keyring TCP-AO counters: {}", c.join(", ")));
        }
        out
    }
}

fn listener_name(family: Family, local: SocketAddr) -> String {
    format!("{family} {local}")
}

/// Folds what the keyring did into its [`KeyringStatus`] and the events
/// each change is worth, reporting each change once: an error when it
/// appears or changes, a new keyed listener, a change of a listener's
/// failures, a family that lost its listener. Pure: the caller sends
/// [`Reporter::take_events`] on.
#[derive(Debug, Default)]
pub struct Reporter {
    pub status: KeyringStatus,
    /// Why the current inputs cannot be keyed (the last good plan stays).
    plan_error: Option<String>,
    /// What was last reported, to report each change once.
    last_error: Option<String>,
    last_missing: Vec<Family>,
    last_failed: BTreeMap<u64, Vec<String>>,
    events: Vec<Event>,
}

impl Reporter {
    /// The events of the last round, in order; leaves none behind.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Events not yet taken.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Why the current inputs cannot be keyed (`None`: they can); shown
    /// whenever nothing worse is wrong.
    pub fn set_plan_error(&mut self, error: Option<String>) {
        self.plan_error = error;
    }

    /// The keyring's error now (`None`: it works, unless the plan is
    /// refused); one [`KeyringChange::Error`] event when it changes.
    pub fn set_error(&mut self, error: Option<String>, pid: Option<i32>) {
        let error = error.or_else(|| self.plan_error.clone());
        if self.last_error != error {
            if let Some(e) = &error {
                self.events.push(Event::Keyring {
                    change: KeyringChange::Error,
                    pid,
                    listener: None,
                    keys: 0,
                    detail: e.clone(),
                });
            }
            self.last_error.clone_from(&error);
        }
        self.status.error = error;
    }

    /// Prefix keys were deleted (`detail` says which and why).
    pub fn removed(&mut self, pid: Option<i32>, detail: String) {
        self.events.push(Event::Keyring {
            change: KeyringChange::Removed,
            pid,
            listener: None,
            keys: 0,
            detail,
        });
    }

    /// No listener is known (BIRD not found, keyring off, nothing keyed).
    pub fn forget_listeners(&mut self) {
        self.status.listeners.clear();
        self.status.ao_listeners.clear();
        self.status.missing.clear();
    }

    /// Folds a sync's report into the status; one event per new keyed
    /// listener, per change of a listener's failures, per change of the
    /// families without a listener.
    pub fn take_report(&mut self, report: &KeyringReport) {
        let pid = Some(report.pid);
        let mut failed_now = BTreeMap::new();
        self.status.listeners.clear();
        self.status.ao_listeners = report
            .listeners
            .iter()
            .filter_map(|l| l.ao.clone())
            .collect();
        self.status.ao_counters.clone_from(&report.ao_counters);
        for l in &report.listeners {
            let li = &l.listener;
            let failed: Vec<String> = l
                .failed
                .iter()
                .map(|(prefix, group, err)| format!("{prefix} (group {group}): {err}"))
                .collect();
            let name = listener_name(li.family, li.local);
            if l.new_socket && l.keys > 0 {
                self.events.push(Event::Keyring {
                    change: KeyringChange::Keyed,
                    pid,
                    listener: Some(format!("{name} inode {}", li.inode)),
                    keys: l.keys,
                    detail: format!("{} prefix key(s) installed on a new listener", l.keys),
                });
            }
            if !failed.is_empty() && self.last_failed.get(&li.inode) != Some(&failed) {
                self.events.push(Event::Keyring {
                    change: KeyringChange::Failed,
                    pid,
                    listener: Some(format!("{name} inode {}", li.inode)),
                    keys: l.keys,
                    detail: format!("cannot key {}", failed.join("; ")),
                });
            }
            if !failed.is_empty() {
                failed_now.insert(li.inode, failed.clone());
            }
            self.status.listeners.push(ListenerStatus {
                family: li.family,
                local: li.local,
                inode: li.inode,
                keys: l.keys,
                failed,
            });
        }
        self.last_failed = failed_now;
        let missing: Vec<Family> = report.missing.iter().map(|m| m.family).collect();
        if missing != self.last_missing {
            for m in &report.missing {
                if !self.last_missing.contains(&m.family) {
                    self.events.push(Event::Keyring {
                        change: KeyringChange::MissingListener,
                        pid,
                        listener: None,
                        keys: 0,
                        detail: m.advice.clone(),
                    });
                }
            }
            self.last_missing = missing;
        }
        self.status.missing.clone_from(&report.missing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optmem_estimates() {
        assert_eq!(optmem_estimate(131072, 100), None);
        assert_eq!(optmem_estimate(131072, 0), None);
        let msg = optmem_estimate(131072, 10_000).unwrap();
        assert!(msg.contains("optmem_max is 131072"), "{msg}");
        assert!(msg.contains("sysctl -w net.core.optmem_max="), "{msg}");
    }

    #[test]
    fn status_lines_per_family() {
        let status = KeyringStatus {
            keyed_groups: vec!["clients".into(), "clients6".into()],
            wanted: (7, 3),
            pid: Some(42),
            listeners: vec![ListenerStatus {
                family: Family::V4,
                local: "0.0.0.0:179".parse().unwrap(),
                inode: 4711,
                keys: 7,
                failed: Vec::new(),
            }],
            missing: vec![MissingListener {
                family: Family::V6,
                keys: 3,
                advice: missing_listener_advice(Family::V6, 3),
            }],
            ..KeyringStatus::default()
        };
        let lines = status.lines();
        assert_eq!(
            lines[0],
            "Keyring IPv4: listener 0.0.0.0:179 inode 4711 (BIRD pid 42), 7 of 7 prefix key(s) installed"
        );
        assert!(
            lines[1].starts_with("Keyring IPv6: BIRD has no IPv6 BGP listener"),
            "{}",
            lines[1]
        );
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn ao_keys_and_counters_per_listener() {
        let status = KeyringStatus {
            keyed_groups: vec!["aopeers".into()],
            wanted: (2, 0),
            pid: Some(42),
            listeners: vec![ListenerStatus {
                family: Family::V4,
                local: "0.0.0.0:179".parse().unwrap(),
                inode: 4711,
                keys: 2,
                failed: Vec::new(),
            }],
            ao_listeners: vec![AoListenerStatus {
                inode: 4711,
                keys: vec![
                    "10.77.0.0/24 key 1/1 hmac-sha1".into(),
                    "10.77.0.0/24 key 2/2 hmac-sha256".into(),
                ],
                info: Some(super::super::sys::AoInfo {
                    bad: 4,
                    key_not_found: 3,
                    ao_required: 2,
                    ..Default::default()
                }),
                sessions: 1,
                session_changes: 0,
                session_drops: 0,
            }],
            ao_counters: vec![("TCPAOGood".into(), 27), ("TCPAOBad".into(), 4)],
            ..KeyringStatus::default()
        };
        assert_eq!(
            status.lines(),
            [
                "Keyring IPv4: listener 0.0.0.0:179 inode 4711 (BIRD pid 42), 2 of 2 prefix key(s) installed",
                "Keyring IPv4: TCP-AO on inode 4711: 10.77.0.0/24 key 1/1 hmac-sha1, 10.77.0.0/24 key 2/2 hmac-sha256; listener drops: bad 4, key not found 3, unsigned 2; 1 signed session(s), 0 segment(s) dropped on them",
                "Keyring TCP-AO counters: TCPAOGood 27, TCPAOBad 4",
            ]
        );
    }

    fn changes(r: &mut Reporter) -> Vec<KeyringChange> {
        r.take_events()
            .into_iter()
            .map(|e| match e {
                Event::Keyring { change, .. } => change,
                other => panic!("not a keyring event: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn reporter_reports_each_change_once() {
        let report = |new_socket: bool, failed: &[&str], missing: bool| KeyringReport {
            pid: 42,
            listeners: vec![ListenerReport {
                listener: Listener {
                    fd: 7,
                    inode: 4711,
                    family: Family::V4,
                    local: "0.0.0.0:179".parse().unwrap(),
                },
                new_socket,
                keys: 7,
                removed: 0,
                ao: None,
                failed: failed
                    .iter()
                    .map(|e| {
                        (
                            "10.88.0.0/25".parse().unwrap(),
                            "clients".into(),
                            e.to_string(),
                        )
                    })
                    .collect(),
            }],
            missing: if missing {
                vec![MissingListener {
                    family: Family::V6,
                    keys: 3,
                    advice: missing_listener_advice(Family::V6, 3),
                }]
            } else {
                Vec::new()
            },
            raced: 0,
            ao_counters: Vec::new(),
        };
        let mut r = Reporter::default();
        r.take_report(&report(true, &[], true));
        assert_eq!(
            changes(&mut r),
            [KeyringChange::Keyed, KeyringChange::MissingListener]
        );
        r.take_report(&report(false, &[], true));
        assert_eq!(changes(&mut r), []);
        r.take_report(&report(false, &["ENOMEM"], true));
        r.take_report(&report(false, &["ENOMEM"], true));
        assert_eq!(changes(&mut r), [KeyringChange::Failed], "once per change");
        assert_eq!(
            r.status.listeners[0].failed,
            ["10.88.0.0/25 (group clients): ENOMEM"]
        );
        r.take_report(&report(false, &[], false));
        assert_eq!(changes(&mut r), []);
        assert!(r.status.missing.is_empty() && r.status.listeners[0].failed.is_empty());
        r.take_report(&report(false, &[], true));
        assert_eq!(changes(&mut r), [KeyringChange::MissingListener]);

        r.set_error(Some("cannot find BIRD".into()), None);
        r.set_error(Some("cannot find BIRD".into()), None);
        assert_eq!(changes(&mut r), [KeyringChange::Error]);
        r.set_error(None, Some(42));
        assert_eq!((changes(&mut r), r.status.error.clone()), (vec![], None));
        // A refused plan shows while nothing worse is wrong.
        r.set_plan_error(Some("cannot key: group q".into()));
        r.set_error(None, Some(42));
        assert_eq!(changes(&mut r), [KeyringChange::Error]);
        assert_eq!(r.status.error.as_deref(), Some("cannot key: group q"));
        r.forget_listeners();
        assert!(r.status.listeners.is_empty() && r.status.missing.is_empty());
    }
}
