//! Admission decisions, table-driven: every refusal, check order,
//! longest-prefix and tie behaviour, and the rate limit over simulated time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use autopeer::admission::{
    self, match_group, Admit, Context, Decision, Evidence, Limits, Memory, Refusal, Request,
    RosterLookup,
};
use autopeer::bird::conf::{scan_text, BirdConf};
use autopeer::config::{Config, Group};
use autopeer::sources::{Trust, Via};

const CONFIG: &str = r#"
[[group]]
name = "clients"
template = "CLIENTS"
prefixes = ["10.88.0.0/16", "2001:db8:ff::/64"]
deny = ["10.88.0.66/32", "10.88.9.0/24"]
max_peers = 3
rate = 2

[[group]]
name = "vip"
template = "CLIENTS"
prefixes = ["10.88.1.0/24"]
rate = "unlimited"
nbma_prefixes = ["192.0.2.0/24"]

[[group]]
name = "links"
template = "LINKS"
prefixes = ["fe80::/64"]
interface = "vti3"
"#;

const BIRD: &str = r#"
template bgp CLIENTS { local as 65000; neighbor internal; }
protocol bgp hq from CLIENTS { neighbor 10.88.0.10 internal; }
protocol bgp link1 { neighbor fe80::9%vti3 as 65002; }
protocol bgp dyn from CLIENTS { neighbor range 10.88.200.0/24 internal; }
protocol bgp clients_10_88_0_3 from CLIENTS { neighbor 10.88.50.1 internal; }
"#;

#[derive(Default)]
struct Roster {
    peers: HashMap<IpAddr, (String, String)>,
}

impl RosterLookup for Roster {
    fn find(&self, addr: IpAddr, _: Option<&str>) -> Option<String> {
        self.peers.get(&addr).map(|(n, _)| n.clone())
    }
    fn group_size(&self, group: &str) -> usize {
        self.peers.values().filter(|(_, g)| g == group).count()
    }
}

fn setup() -> (Vec<Group>, BirdConf, Roster) {
    let c = Config::load_str(CONFIG, Path::new("/nonexistent")).unwrap();
    let b = scan_text(BIRD, Path::new("bird.conf")).unwrap();
    let mut r = Roster::default();
    r.peers.insert(
        ip("10.88.0.2"),
        ("clients_10_88_0_2".into(), "clients".into()),
    );
    (c.groups, b, r)
}

/// BIRD's own log file: verified evidence.
fn ev() -> Evidence {
    Evidence::verified(Via::BirdLog, Trust::Bird)
}

/// [`admission::decide`] for one sighting, "already a peer" read as the
/// refusal it was before the roster took it for success.
#[allow(clippy::too_many_arguments)]
fn decide(
    groups: &[Group],
    bird: &BirdConf,
    roster: &Roster,
    memory: &mut Memory,
    addr: IpAddr,
    iface: Option<&str>,
    evidence: Evidence,
    now: Instant,
) -> Result<Admit, Refusal> {
    let req = Request {
        addr,
        iface,
        evidence,
        group: None,
        nbma: None,
        cert: None,
    };
    let ctx = Context {
        groups,
        birdconf: bird,
        roster,
        now,
        wall: std::time::SystemTime::UNIX_EPOCH,
    };
    match admission::decide(req, ctx, memory) {
        Decision::Admit(a) => Ok(a),
        Decision::Already { name, .. } => Err(Refusal::InRoster { name }),
        Decision::Refuse(r) => Err(r),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_refusal_and_its_reason() {
    let (groups, bird, roster) = setup();
    let now = Instant::now();
    let cases: &[(&str, Option<&str>, Result<&str, &str>)] = &[
        ("0.0.0.0", None, Err("unspecified address")),
        ("::", None, Err("unspecified address")),
        ("127.0.0.1", None, Err("loopback address")),
        ("::1", None, Err("loopback address")),
        ("224.0.0.5", None, Err("multicast address")),
        ("ff02::1", None, Err("multicast address")),
        ("255.255.255.255", None, Err("broadcast address")),
        ("192.0.2.1", None, Err("no group matches")),
        (
            "10.88.0.66",
            None,
            Err("denied by group clients (10.88.0.66/32)"),
        ),
        (
            "10.88.9.7",
            None,
            Err("denied by group clients (10.88.9.0/24)"),
        ),
        (
            "10.88.0.10",
            None,
            Err("configured statically as protocol hq (bird.conf:3)"),
        ),
        (
            "10.88.200.4",
            None,
            Err("inside neighbor range 10.88.200.0/24 of dynamic protocol dyn (bird.conf:5)"),
        ),
        (
            "10.88.0.2",
            None,
            Err("already a peer as clients_10_88_0_2"),
        ),
        (
            "fe80::1",
            None,
            Err("link-local address without interface (group links)"),
        ),
        (
            "fe80::1",
            Some("eth0"),
            Err("group links expects interface vti3, not eth0"),
        ),
        (
            "fe80::9",
            Some("vti3"),
            Err("configured statically as protocol link1 (bird.conf:4)"),
        ),
        ("fe80::1", Some("vti3"), Ok("links")),
        ("10.88.0.7", None, Ok("clients")),
        ("2001:db8:ff::7", None, Ok("clients")),
        // Longest prefix: /24 of vip beats /16 of clients.
        ("10.88.1.7", None, Ok("vip")),
    ];
    for (addr, iface, want) in cases {
        // Fresh limits each time: only the table's refusal is under test.
        let mut limits = Memory::default();
        let got = decide(
            &groups,
            &bird,
            &roster,
            &mut limits,
            ip(addr),
            *iface,
            ev(),
            now,
        );
        match (want, &got) {
            (Ok(g), Ok(Admit { group, .. })) => assert_eq!(group, g, "{addr}"),
            (Err(reason), Err(r)) => assert_eq!(r.to_string(), *reason, "{addr}"),
            _ => panic!("{addr}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn max_peers_then_rate_and_rate_only_spent_on_success() {
    let (groups, bird, mut roster) = setup();
    let t0 = Instant::now();
    let mut limits = Memory::default();
    // Refusals before the rate check do not consume tokens.
    for _ in 0..5 {
        let r = decide(
            &groups,
            &bird,
            &roster,
            &mut limits,
            ip("10.88.0.66"),
            None,
            ev(),
            t0,
        );
        assert!(matches!(r, Err(Refusal::Denied { .. })));
    }
    // rate = 2: a burst of two, then refused.
    for a in ["10.88.0.20", "10.88.0.21"] {
        assert!(decide(&groups, &bird, &roster, &mut limits, ip(a), None, ev(), t0).is_ok());
    }
    let r = decide(
        &groups,
        &bird,
        &roster,
        &mut limits,
        ip("10.88.0.22"),
        None,
        ev(),
        t0,
    );
    assert_eq!(
        r,
        Err(Refusal::RateLimited {
            group: "clients".into(),
            rate: 2
        })
    );
    assert_eq!(
        r.unwrap_err().to_string(),
        "group clients admits at most 2 per minute"
    );
    // 30 s later one token is back.
    let t1 = t0 + Duration::from_secs(30);
    assert!(decide(
        &groups,
        &bird,
        &roster,
        &mut limits,
        ip("10.88.0.22"),
        None,
        ev(),
        t1,
    )
    .is_ok());

    // Fill the group to max_peers = 3: max_peers is checked before rate.
    roster
        .peers
        .insert(ip("10.88.0.20"), ("a".into(), "clients".into()));
    roster
        .peers
        .insert(ip("10.88.0.21"), ("b".into(), "clients".into()));
    let t2 = t1 + Duration::from_secs(600);
    let r = decide(
        &groups,
        &bird,
        &roster,
        &mut limits,
        ip("10.88.0.23"),
        None,
        ev(),
        t2,
    );
    assert_eq!(
        r,
        Err(Refusal::MaxPeers {
            group: "clients".into(),
            max: 3
        })
    );
    assert_eq!(
        r.unwrap_err().to_string(),
        "group clients is full (max_peers 3)"
    );
    // The refused attempt left both tokens in place.
    let mut again = limits.limits.clone();
    assert!(again.try_take("clients", Some(2), t2));
    assert!(again.try_take("clients", Some(2), t2));
    assert!(!again.try_take("clients", Some(2), t2));
    // Other groups are unaffected; vip is unlimited.
    for i in 0..100 {
        let a = ip(&format!("10.88.1.{}", i + 1));
        assert!(decide(&groups, &bird, &roster, &mut limits, a, None, ev(), t2).is_ok());
    }
}

#[test]
fn rate_over_simulated_time() {
    // rate 60/min: burst 60, then one per second.
    let t0 = Instant::now();
    let mut l = Limits::new();
    let granted = (0..100).filter(|_| l.try_take("g", Some(60), t0)).count();
    assert_eq!(granted, 60);
    let mut total = 0;
    for ms in (100..=10_000).step_by(100) {
        if l.try_take("g", Some(60), t0 + Duration::from_millis(ms)) {
            total += 1;
        }
    }
    assert_eq!(total, 10, "one per second over 10 s");
    // Time going backwards (callers mixing clocks) neither panics nor refills.
    assert!(!l.try_take("g", Some(60), t0));
}

#[test]
fn longest_prefix_and_ties() {
    let text = r#"
[[group]]
name = "wide"
template = "T"
prefixes = ["10.0.0.0/8", "2001:db8::/32"]
[[group]]
name = "narrow"
template = "T"
prefixes = ["10.1.0.0/16"]
[[group]]
name = "narrower"
template = "T"
prefixes = ["10.1.2.0/24", "2001:db8:1::/48"]
"#;
    let groups = Config::load_str(text, Path::new("/")).unwrap().groups;
    let cases = [
        ("10.9.9.9", Some("wide")),
        ("10.1.9.9", Some("narrow")),
        ("10.1.2.9", Some("narrower")),
        ("2001:db8:2::1", Some("wide")),
        ("2001:db8:1::1", Some("narrower")),
        ("11.0.0.1", None),
        ("::ffff:10.1.2.9", None),
    ];
    for (a, want) in cases {
        assert_eq!(
            match_group(&groups, ip(a)).map(|g| g.name.as_str()),
            want,
            "{a}"
        );
    }
    // Config validation forbids ties; if groups are built by hand with one,
    // the first in order wins, deterministically.
    let mut tied = groups.clone();
    tied[1].prefixes = tied[2].prefixes.clone();
    assert_eq!(match_group(&tied, ip("10.1.2.9")).unwrap().name, "narrow");
}

/// The rules that used to live in the roster and the NHRP server: each a
/// typed refusal with a stable kind, decided by `decide` alone.
#[test]
fn quiet_group_nbma_names_and_the_operator() {
    let (groups, bird, roster) = setup();
    let now = Instant::now();
    let ctx = Context {
        groups: &groups,
        birdconf: &bird,
        roster: &roster,
        now,
        wall: std::time::SystemTime::UNIX_EPOCH,
    };
    let req = |addr: &str, via: Via, trust: Trust| Request {
        addr: ip(addr),
        iface: None,
        evidence: Evidence::verified(via, trust),
        group: None,
        nbma: None,
        cert: None,
    };
    let refusal = |d: Decision| match d {
        Decision::Refuse(r) => (r.kind(), r.to_string()),
        other => panic!("not a refusal: {other:?}"),
    };
    let mut m = Memory::default();

    // Quiet after a removal: a knock is ignored, an operator's add is not
    // (and ends the quiet period).
    m.quiet(ip("10.88.0.7"), None, now);
    let d = admission::decide(req("10.88.0.7", Via::BirdLog, Trust::Bird), ctx, &mut m);
    assert_eq!(
        refusal(d),
        (
            "recently_removed",
            "removed or rejected recently; ignored for now".into()
        )
    );
    let op = req("10.88.0.7", Via::Operator, Trust::Operator);
    assert!(matches!(
        admission::decide(op, ctx, &mut m),
        Decision::Admit(_)
    ));
    let d = admission::decide(req("10.88.0.7", Via::BirdLog, Trust::Bird), ctx, &mut m);
    assert!(matches!(d, Decision::Admit(_)), "{d:?}");

    // The group asked for must exist, and is the only one considered.
    let mut r = req("10.88.1.9", Via::Operator, Trust::Operator);
    r.group = Some("nope");
    assert_eq!(
        refusal(admission::decide(r, ctx, &mut m)),
        ("no_such_group", "no group named nope".into())
    );
    let mut r = req("10.88.0.9", Via::Operator, Trust::Operator);
    r.group = Some("vip");
    assert_eq!(
        refusal(admission::decide(r, ctx, &mut m)).0,
        "no_group",
        "10.88.0.9 is outside vip"
    );

    // NHRP: nbma_prefixes.
    let mut r = req("10.88.1.5", Via::Nhrp, Trust::Nhrp);
    assert_eq!(
        refusal(admission::decide(r, ctx, &mut m)),
        ("nbma", "group vip needs an nbma address, none sent".into())
    );
    r.nbma = Some(ip("198.51.100.5"));
    assert_eq!(
        refusal(admission::decide(r, ctx, &mut m)),
        (
            "nbma",
            "nbma 198.51.100.5 outside group vip's nbma_prefixes".into()
        )
    );
    r.nbma = Some(ip("192.0.2.5"));
    assert!(matches!(
        admission::decide(r, ctx, &mut m),
        Decision::Admit(_)
    ));
    // Another source is not asked for an NBMA address.
    let d = admission::decide(req("10.88.1.6", Via::BirdLog, Trust::Bird), ctx, &mut m);
    assert!(matches!(d, Decision::Admit(_)));

    // Already a peer: success, with its group.
    let d = admission::decide(req("10.88.0.2", Via::Nhrp, Trust::Nhrp), ctx, &mut m);
    assert_eq!(
        d,
        Decision::Already {
            name: "clients_10_88_0_2".into(),
            group: String::new(),
        },
        "this test roster does not look names up"
    );

    // The name the peer would get is a protocol of bird.conf.
    let mut m = Memory::default();
    let d = admission::decide(req("10.88.0.3", Via::BirdLog, Trust::Bird), ctx, &mut m);
    assert_eq!(
        refusal(d),
        (
            "name_taken",
            "protocol name clients_10_88_0_3 is already used in bird.conf".into()
        )
    );

    // An operator is not held to the rate limit (rate 2 in clients).
    let mut m = Memory::default();
    for i in 0..5 {
        let a = format!("10.88.3.{i}");
        let d = admission::decide(req(&a, Via::Operator, Trust::Operator), ctx, &mut m);
        assert!(matches!(d, Decision::Admit(_)), "{a}: {d:?}");
    }
    let d = admission::decide(req("10.88.3.9", Via::BirdLog, Trust::Bird), ctx, &mut m);
    assert_eq!(refusal(d).0, "rate_limited");
}

/// Trust, the keyed-group rule and the rate bucket (moved from the
/// module's own tests).
mod trust {
    use std::net::IpAddr;
    use std::time::{Duration, Instant, SystemTime};

    use autopeer::admission::{
        decide, kernel_checks_key, Context, Decision, Evidence, Grounds, Limits, Memory, Refusal,
        Request, RosterLookup,
    };
    use autopeer::bird::conf::BirdConf;
    use autopeer::config::{Group, UnverifiedPolicy};
    use autopeer::keyring::task::{KeyringStatus, ListenerStatus};
    use autopeer::keyring::Family;
    use autopeer::sources::{Trust, Via};

    /// One group `clients` over 10.88.0.0/24, rate 2; `keyed` answers
    /// [`RosterLookup::keyed`].
    struct Fixture {
        groups: Vec<Group>,
        bird: BirdConf,
        keyed: bool,
    }

    impl RosterLookup for Fixture {
        fn find(&self, _: IpAddr, _: Option<&str>) -> Option<String> {
            None
        }
        fn group_size(&self, _: &str) -> usize {
            0
        }
        fn keyed(&self, group: &str, _: IpAddr) -> bool {
            self.keyed && group == "clients"
        }
    }

    fn fixture(keyed: bool) -> Fixture {
        let text = "[[group]]\nname = \"clients\"\ntemplate = \"C\"\nprefixes = [\"10.88.0.0/24\"]\nrate = 2\n";
        Fixture {
            groups: autopeer::config::Config::load_str(text, std::path::Path::new("/"))
                .unwrap()
                .groups,
            bird: BirdConf::default(),
            keyed,
        }
    }

    fn run(
        f: &Fixture,
        addr: &str,
        via: Via,
        trust: Trust,
        policy: UnverifiedPolicy,
    ) -> Result<(String, Grounds), Refusal> {
        let ev = Evidence {
            via,
            trust,
            unverified: policy,
        };
        decided(decide(
            request(addr.parse().unwrap(), ev),
            context(f, Instant::now()),
            &mut Memory::default(),
        ))
    }

    fn request(addr: IpAddr, evidence: Evidence) -> Request<'static> {
        Request {
            addr,
            iface: None,
            evidence,
            group: None,
            nbma: None,
            cert: None,
        }
    }

    fn context(f: &Fixture, now: Instant) -> Context<'_> {
        Context {
            groups: &f.groups,
            birdconf: &f.bird,
            roster: f,
            now,
            wall: SystemTime::UNIX_EPOCH,
        }
    }

    fn decided(d: Decision) -> Result<(String, Grounds), Refusal> {
        match d {
            Decision::Admit(a) => Ok((a.group, a.grounds)),
            Decision::Already { name, .. } => Err(Refusal::InRoster { name }),
            Decision::Refuse(r) => Err(r),
        }
    }

    /// An unverified sighting of 10.88.0.7 (inside `clients`).
    fn unverified(
        f: &Fixture,
        via: Via,
        policy: UnverifiedPolicy,
    ) -> Result<(String, Grounds), Refusal> {
        run(f, "10.88.0.7", via, Trust::Unverified, policy)
    }

    const UNVERIFIED: [Via; 4] = [Via::Syslog, Via::Kernel, Via::Netfilter, Via::Junos];
    const POLICIES: [UnverifiedPolicy; 2] = [UnverifiedPolicy::Refuse, UnverifiedPolicy::Admit];

    #[test]
    fn forged_is_always_refused() {
        for keyed in [false, true] {
            let f = fixture(keyed);
            for policy in POLICIES {
                for via in [Via::Journal, Via::Syslog, Via::BirdLog] {
                    // Even for an address that would be refused otherwise:
                    // the forgery is the reason that matters.
                    for addr in ["10.88.0.7", "192.0.2.1", "127.0.0.1"] {
                        let r = run(&f, addr, via, Trust::Forged, policy);
                        assert_eq!(
                            r,
                            Err(Refusal::Forged { via }),
                            "{addr} {via} {policy:?} keyed={keyed}"
                        );
                    }
                }
            }
        }
        assert_eq!(
            Refusal::Forged { via: Via::Journal }.to_string(),
            "forged line: it claims to be BIRD's but another process wrote it"
        );
    }

    #[test]
    fn unverified_is_refused_by_default_with_its_own_reason() {
        let f = fixture(false);
        assert_eq!(UnverifiedPolicy::default(), UnverifiedPolicy::Refuse);
        for via in UNVERIFIED {
            let r = unverified(&f, via, UnverifiedPolicy::default());
            assert_eq!(r, Err(Refusal::Unverified { via }), "{via}");
        }
        assert_eq!(
            Refusal::Unverified { via: Via::Syslog }.to_string(),
            "unverified source syslog (set [sources] unverified = \"admit\" to accept it)"
        );
        // Outside every group the usual reason stands.
        let r = run(
            &f,
            "192.0.2.1",
            Via::Syslog,
            Trust::Unverified,
            UnverifiedPolicy::Refuse,
        );
        assert_eq!(r, Err(Refusal::NoGroup));
    }

    #[test]
    fn unverified_admits_only_when_the_operator_opts_in() {
        let f = fixture(false);
        for via in UNVERIFIED {
            let r = unverified(&f, via, UnverifiedPolicy::Admit);
            assert_eq!(
                r,
                Ok(("clients".to_string(), Grounds::UnverifiedAdmitted)),
                "{via}"
            );
        }
    }

    #[test]
    fn verified_evidence_admits_under_refuse() {
        let f = fixture(false);
        for (via, trust) in [
            (Via::BirdLog, Trust::Bird),
            (Via::Journal, Trust::Bird),
            (Via::Operator, Trust::Operator),
            (Via::Nhrp, Trust::Nhrp),
        ] {
            let r = run(&f, "10.88.0.7", via, trust, UnverifiedPolicy::Refuse);
            assert_eq!(r.map(|a| a.1), Ok(Grounds::Verified), "{via}");
        }
    }

    #[test]
    fn a_keyed_group_verifies_birds_line_but_not_a_syn_line() {
        let f = fixture(true);
        // BIRD's line relayed through a shared file: the kernel let only a
        // key holder finish the handshake BIRD logged.
        // Kernel, netfilter and JUNOS lines are printed for a bare SYN.
        for via in [
            Via::Syslog,
            Via::BirdLog,
            Via::Journal,
            Via::Kernel,
            Via::Netfilter,
            Via::Junos,
        ] {
            let want = match via {
                Via::Kernel | Via::Netfilter | Via::Junos => Err(Refusal::Unverified { via }),
                _ => Ok(Grounds::KeyedGroup),
            };
            let r = unverified(&f, via, UnverifiedPolicy::Refuse);
            assert_eq!(r.map(|a| a.1), want, "{via}");
        }
    }

    #[test]
    fn a_trust_refusal_spends_no_rate_token() {
        let f = fixture(false);
        let now = Instant::now();
        let mut memory = Memory::default();
        let unverified = Evidence {
            via: Via::Netfilter,
            trust: Trust::Unverified,
            unverified: UnverifiedPolicy::Refuse,
        };
        for i in 0..10 {
            let a: IpAddr = format!("10.88.0.{}", i + 10).parse().unwrap();
            let r = decide(request(a, unverified), context(&f, now), &mut memory);
            assert!(matches!(r, Decision::Refuse(Refusal::Unverified { .. })));
        }
        // rate = 2: both tokens are still there.
        assert!(memory.limits.try_take("clients", Some(2), now));
        assert!(memory.limits.try_take("clients", Some(2), now));
    }

    #[test]
    fn kernel_checks_key_only_when_every_listener_has_every_key() {
        let listener = |family, keys, failed: &[&str]| ListenerStatus {
            family,
            local: match family {
                Family::V4 => "0.0.0.0:179".parse().unwrap(),
                Family::V6 => "[::]:179".parse().unwrap(),
            },
            inode: 1,
            keys,
            failed: failed.iter().map(|s| s.to_string()).collect(),
        };
        let good = KeyringStatus {
            keyed_groups: vec!["clients".into()],
            wanted: (2, 1),
            pid: Some(1),
            listeners: vec![listener(Family::V4, 2, &[]), listener(Family::V6, 1, &[])],
            ..KeyringStatus::default()
        };
        let v4: IpAddr = "10.88.0.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert!(kernel_checks_key(&good, "clients", v4));
        assert!(kernel_checks_key(&good, "clients", v6));
        assert!(
            !kernel_checks_key(&good, "other", v4),
            "group without a key"
        );
        let mut s = good.clone();
        s.off = true;
        assert!(!kernel_checks_key(&s, "clients", v4), "keyring off");
        let mut s = good.clone();
        s.error = Some("no privilege".into());
        assert!(!kernel_checks_key(&s, "clients", v4), "keyring broken");
        let mut s = good.clone();
        s.listeners = vec![listener(Family::V4, 1, &[]), listener(Family::V6, 1, &[])];
        assert!(!kernel_checks_key(&s, "clients", v4), "a key missing");
        assert!(kernel_checks_key(&s, "clients", v6));
        let mut s = good.clone();
        s.listeners.push(listener(Family::V4, 0, &[]));
        assert!(
            !kernel_checks_key(&s, "clients", v4),
            "a second listener unkeyed"
        );
        let mut s = good.clone();
        s.listeners = vec![listener(
            Family::V4,
            2,
            &["10.88.0.0/24 (group clients): EINVAL"],
        )];
        assert!(!kernel_checks_key(&s, "clients", v4), "a key refused");
        assert!(!kernel_checks_key(&s, "clients", v6), "no v6 listener");
        let mut s = good;
        s.wanted = (0, 1);
        assert!(!kernel_checks_key(&s, "clients", v4), "no v4 key wanted");
    }

    #[test]
    fn bucket_refills_at_rate_per_minute() {
        let t0 = Instant::now();
        let mut l = Limits::new();
        for _ in 0..3 {
            assert!(l.try_take("g", Some(3), t0));
        }
        assert!(!l.try_take("g", Some(3), t0));
        assert_eq!(l.wait_time("g", Some(3), t0), Duration::from_secs(20));
        assert!(!l.try_take("g", Some(3), t0 + Duration::from_millis(19_999)));
        assert!(l.try_take("g", Some(3), t0 + Duration::from_secs(20)));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.try_take("g", Some(3), later));
        }
        assert!(!l.try_take("g", Some(3), later));
        assert!(l.try_take("other", Some(3), later));
        assert!(l.try_take("g", None, later));
    }
}
