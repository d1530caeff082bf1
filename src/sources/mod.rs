//! Where sightings come from: log lines (and later NHRP and the control
//! socket). A [`Sighting`] is "address A tried to reach our BGP port".

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub mod journal;
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

/// How much a sighting can be trusted (docs/facts.md § Trust).
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

/// How many sightings are on their way to the roster: sent by a source
/// and not yet admitted or dropped as a copy, plus one while a source is
/// in the middle of reading what a file or the journal holds. The roster
/// gathers a burst while this is not zero, and applies at once when it is
/// ([`crate::roster::task`]): a burst written in one go costs one
/// `configure`, and nothing waits for a sighting that is not coming.
///
/// Shared by clones; [`Flow::default`] is a new, idle one.
#[derive(Debug, Clone, Default)]
pub struct Flow(Arc<FlowInner>);

#[derive(Debug, Default)]
struct FlowInner {
    count: AtomicUsize,
    /// Told when the count drops to zero: a read that found nothing more
    /// sends nothing, so the roster must not wait for a sighting to learn
    /// that the burst is over.
    idle: tokio::sync::Notify,
}

impl Flow {
    /// `n` sightings were handed to the channel.
    pub fn sent(&self, n: usize) {
        self.0.count.fetch_add(n, Ordering::AcqRel);
    }

    /// One sighting arrived (admitted, or dropped as a copy).
    pub fn arrived(&self) {
        // Never below zero, whatever a test wires up.
        let before = self
            .0
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.0.idle.notify_one();
        }
    }

    /// Nothing is on its way.
    pub fn idle(&self) -> bool {
        self.0.count.load(Ordering::Acquire) == 0
    }

    /// Resolves when the count has dropped to zero since the last call
    /// (or now); check [`Flow::idle`] again after it.
    pub async fn went_idle(&self) {
        self.0.idle.notified().await;
    }

    /// Marks a source as reading until the guard is dropped.
    pub fn reading(&self) -> Reading {
        self.sent(1);
        Reading(self.clone())
    }
}

/// See [`Flow::reading`].
#[derive(Debug)]
pub struct Reading(Flow);

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.arrived();
    }
}

/// One sighting per connection attempt when BIRD's line reaches autopeer
/// twice: BIRD logs to its file *and* to syslog (the journal, or a syslog
/// file that is tailed too). Two copies of BIRD's message carry the same
/// address and source port; the later copy is dropped unless it is more
/// trustworthy than the earlier one (a verified line is never hidden by an
/// unverified or forged copy that came first). Bounded: at most
/// [`OneSighting::CAPACITY`] recent lines are remembered, for
/// [`OneSighting::WINDOW`].
#[derive(Debug, Default)]
pub struct OneSighting {
    recent: VecDeque<(Instant, IpAddr, u16, Via, Trust)>,
    /// How many of `recent` have each address and port: a sighting with
    /// none (nearly every one) is news without a look through `recent`.
    keys: std::collections::HashMap<(IpAddr, u16), u32>,
}

impl OneSighting {
    /// How long a copy is looked for.
    pub const WINDOW: Duration = Duration::from_secs(10);
    /// How many recent lines are remembered.
    pub const CAPACITY: usize = 4096;

    /// Whether `s` is news (pass it on) or a copy of a line already passed.
    pub fn admit(&mut self, s: &Sighting, now: Instant) -> bool {
        let Some(port) = s.port else { return true };
        if !matches!(s.via, Via::BirdLog | Via::Syslog | Via::Journal) {
            return true;
        }
        while let Some(&(t, addr, p, ..)) = self.recent.front() {
            if now.duration_since(t) > Self::WINDOW || self.recent.len() >= Self::CAPACITY {
                self.recent.pop_front();
                if let Some(n) = self.keys.get_mut(&(addr, p)) {
                    *n -= 1;
                    if *n == 0 {
                        self.keys.remove(&(addr, p));
                    }
                }
            } else {
                break;
            }
        }
        let copy = self.keys.contains_key(&(s.addr, port))
            && self.recent.iter().any(|&(_, addr, p, via, trust)| {
                addr == s.addr && p == port && via != s.via && trust >= s.trust
            });
        if !copy {
            self.recent.push_back((now, s.addr, port, s.via, s.trust));
            *self.keys.entry((s.addr, port)).or_default() += 1;
        }
        !copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flow_is_idle_once_everything_sent_arrived_and_says_so() {
        let flow = Flow::default();
        assert!(flow.idle());
        let reading = flow.reading();
        flow.sent(2);
        flow.arrived();
        flow.arrived();
        assert!(!flow.idle(), "still reading");
        drop(reading);
        assert!(flow.idle());
        // The drop to zero woke whoever waits for it (or will).
        tokio::time::timeout(Duration::from_secs(5), flow.went_idle())
            .await
            .expect("told");
        // More arrivals than sent never wrap below zero.
        flow.arrived();
        assert!(flow.idle());
        flow.sent(1);
        assert!(!flow.idle());
    }

    fn seen(via: Via, trust: Trust, port: u16) -> Sighting {
        Sighting {
            addr: "10.88.0.2".parse().unwrap(),
            port: Some(port),
            iface: None,
            via,
            trust,
            at: SystemTime::now(),
        }
    }

    #[test]
    fn one_sighting_for_a_line_in_two_places() {
        let mut one = OneSighting::default();
        let t0 = Instant::now();
        assert!(one.admit(&seen(Via::BirdLog, Trust::Bird, 4000), t0));
        assert!(!one.admit(&seen(Via::Journal, Trust::Bird, 4000), t0));
        // Another connection (another port), or the same source again: news.
        assert!(one.admit(&seen(Via::Journal, Trust::Bird, 4001), t0));
        assert!(one.admit(&seen(Via::BirdLog, Trust::Bird, 4000), t0));
        // After the window a copy is news again.
        let later = t0 + OneSighting::WINDOW + Duration::from_secs(1);
        assert!(one.admit(&seen(Via::Journal, Trust::Bird, 4000), later));
    }

    #[test]
    fn a_weaker_copy_never_hides_a_verified_line() {
        let mut one = OneSighting::default();
        let t0 = Instant::now();
        // A forger (or a shared syslog file) gets there first.
        assert!(one.admit(&seen(Via::Syslog, Trust::Unverified, 4000), t0));
        assert!(one.admit(&seen(Via::Journal, Trust::Bird, 4000), t0));
        assert!(!one.admit(&seen(Via::BirdLog, Trust::Bird, 4000), t0));
        let mut one = OneSighting::default();
        assert!(one.admit(&seen(Via::Journal, Trust::Forged, 1), t0));
        assert!(one.admit(&seen(Via::BirdLog, Trust::Bird, 1), t0));
    }

    #[test]
    fn memory_is_bounded() {
        let mut one = OneSighting::default();
        let t0 = Instant::now();
        for port in 0..(OneSighting::CAPACITY as u16 + 100) {
            one.admit(&seen(Via::Journal, Trust::Bird, port), t0);
        }
        assert!(one.recent.len() <= OneSighting::CAPACITY);
    }
}
