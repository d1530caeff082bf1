//! Prometheus metrics (`[agent] metrics = "ADDR:PORT"`): what autopeer
//! counts, and the text it serves at `/metrics`.
//!
//! Two kinds of series, in the Prometheus text format 0.0.4 (encoded by the
//! official `prometheus-client` crate):
//!
//! - **Counted as it happens** ([`Live`], one per process): admissions,
//!   refusals, applies, `configure` durations, rejections, rollbacks. The
//!   deciding code calls [`admitted`], [`refused`], [`applied`] and
//!   [`configure_took`]: one line at each point of decision, no handle
//!   threaded through the tasks (a process-wide registry, as the
//!   Prometheus clients of other languages keep by default).
//! - **Read at each scrape** ([`Scrape`]): peers by group and BIRD state,
//!   BIRD reachable and the keyring from the roster's snapshot; lines,
//!   sightings, malformed lines and NHRP decisions from the counters the
//!   sources already keep for `show sources`.
//!
//! Labels carry only bounded, configured or fixed words (group names,
//! refusal kinds, states, families): never an address (a forged log line
//! could grow the series without end) and never a key.
//!
//! The HTTP side is [`server`]; [`probe`] is a small client for `check`.

pub mod probe;
pub mod server;

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::admission::Refusal;
use crate::apply::{Applied, ApplyError};
use crate::roster::Snapshot;
use crate::sources::journal::JournalStats;
use crate::sources::nhrp::NhrpStats;
use crate::sources::tail::TailStats;

/// Every name starts with this (`autopeer_admissions_total`).
pub const PREFIX: &str = "autopeer";

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    /// Empty when no configured group applies (`no_group`, `forged`, ...);
    /// Prometheus treats an empty label as absent.
    group: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The series counted as things happen.
pub struct Live {
    registry: Registry,
    admissions: Family<GroupLabel, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    applies: Family<ResultLabel, Counter>,
    configure: Histogram,
    rejections: Counter,
    rollbacks: Family<ResultLabel, Counter>,
    connections_refused: Counter,
}

impl Live {
    fn new() -> Live {
        let mut registry = Registry::with_prefix(PREFIX);
        let admissions = Family::<GroupLabel, Counter>::default();
        registry.register(
            "admissions",
            "Peers admitted, by group (dry-run decisions included)",
            admissions.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "refusals",
            "Sightings and requests refused, by group (empty when none applies) and kind (as in watch --json)",
            refusals.clone(),
        );
        let applies = Family::<ResultLabel, Counter>::default();
        registry.register(
            "applies",
            "Applies of the owned include (write, configure check, configure), by result",
            applies.clone(),
        );
        // BIRD's configure takes milliseconds with a few peers and seconds
        // with thousands (docs/facts.md, fact 5): 5 ms .. 10 s.
        let configure = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register_with_unit(
            "configure_duration",
            "Time BIRD took to answer autopeer's configure",
            Unit::Seconds,
            configure.clone(),
        );
        let rejections = Counter::default();
        registry.register(
            "rejections",
            "Includes BIRD rejected (configure check or configure failed inside autopeer's include)",
            rejections.clone(),
        );
        let rollbacks = Family::<ResultLabel, Counter>::default();
        registry.register(
            "rollbacks",
            "Restores of the previous include after a rejection, by result (restored, failed)",
            rollbacks.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "metrics_connections_refused",
            "Connections to this endpoint closed at once because too many were open",
            connections_refused.clone(),
        );
        registry.register(
            "build",
            "autopeer's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Live {
            registry,
            admissions,
            refusals,
            applies,
            configure,
            rejections,
            rollbacks,
            connections_refused,
        }
    }
}

static LIVE: LazyLock<Live> = LazyLock::new(Live::new);

/// A peer was admitted into `group`.
pub fn admitted(group: &str) {
    LIVE.admissions
        .get_or_create(&GroupLabel {
            group: group.to_string(),
        })
        .inc();
}

/// A sighting or request was refused.
pub fn refused(r: &Refusal) {
    LIVE.refusals
        .get_or_create(&RefusalLabels {
            group: r.group().unwrap_or_default().to_string(),
            kind: r.kind(),
        })
        .inc();
}

/// An apply ended: `None` when the roster could not be rendered at all.
pub fn applied(result: Option<&Result<Applied, ApplyError>>) {
    let word = match result {
        None => "unwritable",
        Some(Ok(_)) => "ok",
        Some(Err(ApplyError::Unavailable { .. })) => "unavailable",
        Some(Err(ApplyError::Rejected { .. })) => "rejected",
        Some(Err(ApplyError::BrokenElsewhere { .. })) => "broken_elsewhere",
        Some(Err(ApplyError::Write { .. })) => "write_failed",
        Some(Err(ApplyError::RollbackFailed { .. })) => "rollback_failed",
    };
    LIVE.applies
        .get_or_create(&ResultLabel { result: word })
        .inc();
    let rollback = match result {
        Some(Err(ApplyError::Rejected { .. })) => "restored",
        Some(Err(ApplyError::RollbackFailed { .. })) => "failed",
        _ => return,
    };
    LIVE.rejections.inc();
    LIVE.rollbacks
        .get_or_create(&ResultLabel { result: rollback })
        .inc();
}

/// BIRD answered a `configure` after `took`.
pub fn configure_took(took: Duration) {
    LIVE.configure.observe(took.as_secs_f64());
}

/// The endpoint closed a connection at once (over its limit).
fn connection_refused() {
    LIVE.connections_refused.inc();
}

/// The sources' own counters (those of `show sources`), read at a scrape.
#[derive(Clone, Default)]
pub struct Sources {
    pub tail: Option<Arc<TailStats>>,
    pub journal: Option<Arc<JournalStats>>,
    pub nhrp: Option<Arc<NhrpStats>>,
}

/// What a scrape reads besides [`Live`]: the roster's snapshot (`None`
/// when the roster did not answer in time) and the sources' counters.
pub struct Scrape<'a> {
    pub snapshot: Option<&'a Snapshot>,
    pub sources: &'a Sources,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    group: String,
    /// BIRD's protocol state (`up`, `start`, `down`, ...); `pending` when
    /// not yet written to BIRD, `absent` when BIRD did not list it.
    state: String,
    /// The BGP state opening BIRD's info column (`Established`, `Active`).
    bgp_state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabel {
    family: &'static str,
}

/// The whole `/metrics` text.
pub fn render(scrape: &Scrape) -> String {
    let mut out = String::new();
    // Infallible: writing into a String.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &LIVE.registry);
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &scraped(scrape));
    out
}

/// A registry of the series read at this scrape.
fn scraped(scrape: &Scrape) -> Registry {
    let mut r = Registry::with_prefix(PREFIX);
    if let Some(snap) = scrape.snapshot {
        peers(&mut r, snap);
    }
    sources(&mut r, scrape.sources);
    r
}

fn peers(r: &mut Registry, snap: &Snapshot) {
    let peers = Family::<PeerLabels, Gauge>::default();
    // Every group shows, a group without peers as 0.
    for g in &snap.groups {
        peers
            .get_or_create(&PeerLabels {
                group: g.name.clone(),
                state: "up".into(),
                bgp_state: "Established".into(),
            })
            .set(0);
    }
    for p in &snap.peers {
        let (state, bgp_state) = if p.pending {
            ("pending".to_string(), String::new())
        } else {
            (
                p.runtime.state.clone().unwrap_or_else(|| "absent".into()),
                p.runtime.info.clone().unwrap_or_default(),
            )
        };
        peers
            .get_or_create(&PeerLabels {
                group: p.peer.group.clone(),
                state,
                bgp_state,
            })
            .inc();
    }
    r.register(
        "peers",
        "Peers in the roster, by group, BIRD protocol state and BGP state",
        peers,
    );
    let max = Family::<GroupLabel, Gauge>::default();
    for g in &snap.groups {
        max.get_or_create(&GroupLabel {
            group: g.name.clone(),
        })
        .set(i64::try_from(g.max_peers).unwrap_or(i64::MAX));
    }
    r.register("group_max_peers", "A group's max_peers", max);
    let up = Gauge::<i64>::default();
    up.set(i64::from(
        snap.last_poll.is_some() && snap.bird_error.is_none(),
    ));
    r.register(
        "bird_up",
        "1 when the last poll of BIRD's control socket succeeded",
        up,
    );
    if let Some(k) = snap.keyring.as_ref().filter(|k| !k.off) {
        let installed = Family::<FamilyLabel, Gauge>::default();
        let wanted = Family::<FamilyLabel, Gauge>::default();
        let errors = Family::<FamilyLabel, Gauge>::default();
        for (family, n) in [
            (crate::keyring::Family::V4, k.wanted.0),
            (crate::keyring::Family::V6, k.wanted.1),
        ] {
            let label = FamilyLabel {
                family: family_word(family),
            };
            wanted.get_or_create(&label).set(count(n));
            let ls = k.listeners.iter().filter(|l| l.family == family);
            let (keys, failed) = ls.fold((0, 0), |(a, b), l| (a + l.keys, b + l.failed.len()));
            installed.get_or_create(&label).set(count(keys));
            errors.get_or_create(&label).set(count(failed));
        }
        r.register(
            "keyring_keys",
            "Prefix keys autopeer has installed on BIRD's listeners, by family",
            installed,
        );
        r.register(
            "keyring_keys_wanted",
            "Prefix keys the groups call for, by family",
            wanted,
        );
        r.register(
            "keyring_key_errors",
            "Prefix keys the kernel refused at the last sync, by family",
            errors,
        );
    }
}

fn family_word(f: crate::keyring::Family) -> &'static str {
    match f {
        crate::keyring::Family::V4 => "ipv4",
        crate::keyring::Family::V6 => "ipv6",
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn sources(r: &mut Registry, s: &Sources) {
    let lines = Family::<SourceLabel, Counter>::default();
    let sightings = Family::<SourceLabel, Counter>::default();
    let malformed = Family::<SourceLabel, Counter>::default();
    let put = |source, l: u64, s: u64, m: u64| {
        let label = SourceLabel { source };
        lines.get_or_create(&label).inc_by(l);
        sightings.get_or_create(&label).inc_by(s);
        malformed.get_or_create(&label).inc_by(m);
    };
    if let Some(t) = &s.tail {
        let c = t.snapshot();
        put("log", c.lines, c.sightings, c.malformed + c.invalid_utf8);
    }
    if let Some(j) = &s.journal {
        let c = j.snapshot();
        put("journal", c.entries, c.sightings, c.malformed);
    }
    if let Some(n) = &s.nhrp {
        let requests = n.requests.load(Ordering::Relaxed);
        put(
            "nhrp",
            requests + n.other_events.load(Ordering::Relaxed),
            requests,
            n.malformed.load(Ordering::Relaxed),
        );
        let decisions = Family::<ResultLabel, Counter>::default();
        for (result, v) in [
            ("accept", &n.accepted),
            ("reject", &n.rejected),
            ("unanswered", &n.unanswerable),
        ] {
            decisions
                .get_or_create(&ResultLabel { result })
                .inc_by(v.load(Ordering::Relaxed));
        }
        r.register(
            "nhrp_decisions",
            "Answers to nhrpd, by result (accept, reject; unanswered: no usable eventid)",
            decisions,
        );
        let timeouts = Counter::<u64>::default();
        timeouts.inc_by(n.timeouts.load(Ordering::Relaxed));
        r.register(
            "nhrp_timeouts",
            "NHRP decisions the roster did not give in time (answered by policy)",
            timeouts,
        );
    }
    r.register(
        "lines",
        "Lines (log, journal) or messages (nhrp) read, by source",
        lines,
    );
    r.register(
        "sightings",
        "Lines or requests that named an address to decide on, by source",
        sightings,
    );
    r.register(
        "malformed_lines",
        "Lines or messages that looked relevant but could not be read, by source",
        malformed,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        admitted("clients");
        refused(&Refusal::NoGroup);
        configure_took(Duration::from_millis(20));
        let text = render(&Scrape {
            snapshot: None,
            sources: &Sources {
                tail: Some(Arc::new(TailStats::default())),
                ..Sources::default()
            },
        });
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(name.starts_with("autopeer_"), "{line}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            }
        }
        assert!(
            text.contains("autopeer_admissions_total{group=\"clients\"} "),
            "{text}"
        );
        assert!(
            text.contains("autopeer_refusals_total{group=\"\",kind=\"no_group\"} "),
            "{text}"
        );
        assert!(
            text.contains("autopeer_configure_duration_seconds_bucket{le=\"0.04\"} "),
            "{text}"
        );
        assert!(text.contains("autopeer_build_info{version=\""), "{text}");
        assert!(
            text.contains("autopeer_lines_total{source=\"log\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn keyring_and_nhrp_series_come_from_the_status_and_counters() {
        use crate::keyring::report::{KeyringStatus, ListenerStatus};
        use crate::keyring::Family;
        let listener = |family, keys, failed: &[&str]| ListenerStatus {
            family,
            local: "0.0.0.0:179".parse().unwrap(),
            inode: 1,
            keys,
            failed: failed.iter().map(|f| f.to_string()).collect(),
        };
        let snap = Snapshot {
            peers: Vec::new(),
            groups: Vec::new(),
            dirty: false,
            dry_run: false,
            refusals: Default::default(),
            last_poll: None,
            bird_error: None,
            started: std::time::SystemTime::now(),
            keyring: Some(KeyringStatus {
                keyed_groups: vec!["clients".into()],
                wanted: (3, 1),
                listeners: vec![
                    listener(Family::V4, 2, &["10.0.0.0/8 (group clients): ENOMEM"]),
                    listener(Family::V6, 1, &[]),
                ],
                ..KeyringStatus::default()
            }),
        };
        let nhrp = Arc::new(NhrpStats::default());
        nhrp.accepted.store(4, Ordering::Relaxed);
        nhrp.rejected.store(2, Ordering::Relaxed);
        nhrp.requests.store(6, Ordering::Relaxed);
        let text = render(&Scrape {
            snapshot: Some(&snap),
            sources: &Sources {
                nhrp: Some(nhrp),
                ..Sources::default()
            },
        });
        for series in [
            "autopeer_keyring_keys{family=\"ipv4\"} 2",
            "autopeer_keyring_keys{family=\"ipv6\"} 1",
            "autopeer_keyring_keys_wanted{family=\"ipv4\"} 3",
            "autopeer_keyring_key_errors{family=\"ipv4\"} 1",
            "autopeer_keyring_key_errors{family=\"ipv6\"} 0",
            "autopeer_nhrp_decisions_total{result=\"accept\"} 4",
            "autopeer_nhrp_decisions_total{result=\"reject\"} 2",
            "autopeer_sightings_total{source=\"nhrp\"} 6",
            "autopeer_bird_up 0",
        ] {
            assert!(text.lines().any(|l| l == series), "{series}\n{text}");
        }
        // A failure's text (a prefix, a group) stays in show status.
        assert!(!text.contains("10.0.0.0/8"), "{text}");
    }
}
