//! Tests `bird::render`: peer names, the rendered include file, parsing it
//! back (round trip, hand deletions, hand edits), and that real BIRD
//! (`bird -p`, Debian bird2) accepts every rendered roster.

mod common;

use std::net::IpAddr;

use autopeer::bird::render::{
    is_iface, is_symbol, parse, peer_name, render, NeighborAs, Peer, RenderError,
};
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn peer(group: &str, addr: &str, iface: Option<&str>, neighbor: Option<NeighborAs>) -> Peer {
    let addr = ip(addr);
    Peer {
        name: peer_name(group, addr, iface),
        group: group.to_string(),
        template: group.to_ascii_uppercase(),
        addr,
        iface: iface.map(str::to_string),
        neighbor,
        admitted: "2026-11-23T06:55:02Z".to_string(),
        via: "bird-log".to_string(),
    }
}

#[test]
fn names_follow_design() {
    assert_eq!(
        peer_name("clients", ip("192.0.2.7"), None),
        "clients_192_0_2_7"
    );
    assert_eq!(
        peer_name("clients", ip("2001:db8::7"), None),
        "clients_2001_db8__7"
    );
    assert_eq!(
        peer_name("clients", ip("fe80::1"), Some("vti3")),
        "clients_fe80__1_vti3"
    );
    // An interface that could be read as part of the address, or that
    // holds `_ . : -`, is marked and escaped (see `link_local_names_are_injective`).
    assert_eq!(
        peer_name("clients", ip("fe80::1"), Some("eth-0.5")),
        "clients_fe80__1_if_eth_h0_d5"
    );
    assert_eq!(
        peer_name("clients", ip("fe80::1"), Some("eth0")),
        "clients_fe80__1_if_eth0"
    );
}

// See: issue 10, finding 7: `fe80::1%2_x3` and `fe80::1:2%x3` got one name,
// and the second peer silently replaced the first.
#[test]
fn link_local_names_are_injective() {
    assert_ne!(
        peer_name("g", ip("fe80::1"), Some("2_x3")),
        peer_name("g", ip("fe80::1:2"), Some("x3"))
    );
    // `::ffff:1.2.3.4` once read like `::ffff:1:2:3:4`.
    assert_ne!(
        peer_name("g", ip("::ffff:1.2.3.4"), None),
        peer_name("g", ip("::ffff:1:2:3:4"), None)
    );
    // Every pair of a small universe built to collide: addresses whose
    // text ends in hex digits and `_`, interfaces over hex digits, `_`,
    // punctuation and a non-hex letter.
    let addrs = [
        "fe80::",
        "fe80::1",
        "fe80::1:2",
        "fe80::1:e",
        "fe80::e",
        "fe80::2",
        "fe80::1:0",
        "fe80::1:2:e",
        "::ffff:1.2.3.4",
        "::ffff:1:2:3:4",
        "1.2.3.4",
        "1:2:3:4::",
    ];
    let alphabet = ['e', '1', '2', '_', '.', '-', ':', 'x'];
    let mut ifaces: Vec<Option<String>> = vec![None];
    let mut frontier = vec![String::new()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for s in &frontier {
            for c in alphabet {
                let t = format!("{s}{c}");
                if is_iface(&t) {
                    ifaces.push(Some(t.clone()));
                }
                next.push(t);
            }
        }
        frontier = next;
    }
    let mut seen = std::collections::HashMap::new();
    for a in addrs {
        for i in &ifaces {
            let name = peer_name("g", ip(a), i.as_deref());
            assert!(is_symbol(&name), "{name}");
            if let Some(prev) = seen.insert(name.clone(), (a, i.clone())) {
                panic!("{name}: {prev:?} and {:?}", (a, i));
            }
        }
    }
    assert!(seen.len() > 5000, "{}", seen.len());
}

#[test]
fn long_names_are_hashed_stable_and_unique() {
    let group = "a_rather_long_group_name_for_spokes";
    let a = peer_name(group, ip("2001:db8:1234:5678:9abc:def0:1234:5678"), None);
    let b = peer_name(group, ip("2001:db8:1234:5678:9abc:def0:1234:5679"), None);
    assert_eq!(a.len(), 64);
    assert_eq!(b.len(), 64);
    assert_ne!(a, b);
    assert!(is_symbol(&a), "{a}");
    assert!(a.starts_with("a_rather_long_group_name_for_spokes_2001_db8_12"));
    // Pinned: the hash must never change between versions.
    assert_eq!(
        a,
        peer_name(group, ip("2001:db8:1234:5678:9abc:def0:1234:5678"), None)
    );
    assert_eq!(a, PINNED_LONG_NAME);
    // Exactly 64 is not hashed.
    let g = "g".repeat(64 - "_10_0_0_1".len());
    assert_eq!(peer_name(&g, ip("10.0.0.1"), None).len(), 64);
    assert!(!peer_name(&g, ip("10.0.0.1"), None).contains("10_0_0_1_"));
}

const PINNED_LONG_NAME: &str = "a_rather_long_group_name_for_spokes_2001_db8_12_fa7eac232ca9ee6d";

#[test]
fn render_matches_design_block() {
    let p = peer("clients", "10.88.0.2", None, Some(NeighborAs::Internal));
    let text = render(&[p]).unwrap();
    assert!(text.starts_with("# Managed by autopeer"), "{text}");
    let expected = "\n# autopeer: group clients, admitted 2026-11-23T06:55:02Z via bird-log
protocol bgp clients_10_88_0_2 from CLIENTS {
  neighbor 10.88.0.2 internal;
  description \"autopeer=1 group=clients\";
}
";
    assert!(
        text.ends_with(expected),
        "got:\n{text}\nwant tail:\n{expected}"
    );
}

#[test]
fn render_neighbor_forms() {
    let cases = [
        (peer("g", "10.0.0.1", None, None), "  neighbor 10.0.0.1;\n"),
        (
            peer("g", "10.0.0.1", None, Some(NeighborAs::External)),
            "  neighbor 10.0.0.1 external;\n",
        ),
        (
            peer(
                "g",
                "2001:db8::1",
                None,
                Some(NeighborAs::As(4_200_000_000)),
            ),
            "  neighbor 2001:db8::1 as 4200000000;\n",
        ),
        (
            peer("g", "fe80::1", Some("vti3"), Some(NeighborAs::Internal)),
            "  neighbor fe80::1%vti3 internal;\n",
        ),
        (
            peer("g", "fe80::1", Some("eth-0"), Some(NeighborAs::Internal)),
            "  neighbor fe80::1 % 'eth-0' internal;\n",
        ),
        (
            // A keyword cannot follow `%`, not even in apostrophes.
            peer("g", "fe80::1", Some("ipv4"), Some(NeighborAs::Internal)),
            "  neighbor fe80::1 internal;\n  interface \"ipv4\";\n",
        ),
        (
            // A leading digit is no symbol.
            peer("g", "fe80::1", Some("0eth"), None),
            "  neighbor fe80::1;\n  interface \"0eth\";\n",
        ),
    ];
    for (p, want) in cases {
        let text = render(std::slice::from_ref(&p)).unwrap();
        assert!(text.contains(want), "{p:?}: want {want:?} in\n{text}");
        assert_eq!(parse(&text).unwrap(), vec![p]);
    }
}

#[test]
fn render_sorts_by_name_and_round_trips() {
    let mut peers = vec![
        peer("clients", "10.88.0.9", None, Some(NeighborAs::Internal)),
        peer("clients", "10.88.0.10", None, Some(NeighborAs::Internal)),
        peer(
            "spokes",
            "2001:db8:ff::1",
            None,
            Some(NeighborAs::As(65010)),
        ),
        peer("links", "fe80::1", Some("vti3"), None),
    ];
    let text = render(&peers).unwrap();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(parse(&text).unwrap(), peers);
    assert_eq!(
        render(&peers).unwrap(),
        text,
        "order of input does not matter"
    );
    assert_eq!(parse(&render(&[]).unwrap()).unwrap(), vec![]);
}

#[test]
fn render_rejects_what_it_cannot_vouch_for() {
    let good = peer("clients", "10.0.0.1", None, None);
    let bad = |f: &dyn Fn(&mut Peer)| {
        let mut p = good.clone();
        f(&mut p);
        render(&[p]).unwrap_err()
    };
    assert!(matches!(
        bad(&|p| p.name = "x; } protocol bgp evil {".into()),
        RenderError::BadSymbol { what: "name", .. }
    ));
    assert!(matches!(
        bad(&|p| p.name = "neighbor".into()),
        RenderError::BadSymbol { what: "name", .. }
    ));
    assert!(matches!(
        bad(&|p| p.name = "1abc".into()),
        RenderError::BadSymbol { .. }
    ));
    assert!(matches!(
        bad(&|p| p.name = "a".repeat(65)),
        RenderError::BadSymbol { .. }
    ));
    assert!(matches!(
        bad(&|p| p.name = "deadbeef".repeat(4)),
        RenderError::BadSymbol { .. }
    ));
    assert!(matches!(
        bad(&|p| p.group = "cli ents".into()),
        RenderError::BadSymbol { what: "group", .. }
    ));
    assert!(matches!(
        bad(&|p| p.template = "T\"".into()),
        RenderError::BadSymbol {
            what: "template",
            ..
        }
    ));
    assert!(matches!(
        bad(&|p| p.iface = Some("eth0\"; }".into())),
        RenderError::BadIface { .. }
    ));
    assert!(matches!(
        bad(&|p| p.iface = Some("averyveryverylongif".into())),
        RenderError::BadIface { .. }
    ));
    assert!(matches!(
        bad(&|p| p.iface = Some(String::new())),
        RenderError::BadIface { .. }
    ));
    assert!(matches!(
        bad(&|p| p.addr = ip("0.0.0.0")),
        RenderError::BadAddress { .. }
    ));
    assert!(matches!(
        bad(&|p| p.neighbor = Some(NeighborAs::As(0))),
        RenderError::BadAs { .. }
    ));
    assert!(matches!(
        bad(&|p| p.admitted = "yesterday\n}".into()),
        RenderError::BadTimestamp { .. }
    ));
    assert!(matches!(
        bad(&|p| p.via = "log\nprotocol".into()),
        RenderError::BadVia { .. }
    ));
    assert!(matches!(
        render(&[good.clone(), good.clone()]),
        Err(RenderError::DuplicateName { .. })
    ));
}

#[test]
fn parse_tolerates_deleted_blocks_and_comments() {
    let peers = vec![
        peer("clients", "10.88.0.2", None, Some(NeighborAs::Internal)),
        peer("clients", "10.88.0.3", None, Some(NeighborAs::Internal)),
        peer("clients", "10.88.0.4", None, Some(NeighborAs::Internal)),
    ];
    let text = render(&peers).unwrap();
    // Delete the middle block by hand, leave its comment behind, add notes.
    let start = text.find("# autopeer: group clients, admitted 2026-11-23T06:55:02Z via bird-log\nprotocol bgp clients_10_88_0_3").unwrap();
    let block_start = text[start..].find("protocol").unwrap() + start;
    let end = text[block_start..].find("}\n").unwrap() + block_start + 2;
    let edited = format!(
        "{}\n\n# removed 10.88.0.3 -- operator\n{}",
        &text[..block_start],
        &text[end..]
    )
    .replace('\n', "\r\n");
    let got = parse(&edited).unwrap();
    assert_eq!(got, vec![peers[0].clone(), peers[2].clone()]);
}

#[test]
fn parse_names_the_line_of_a_hand_edit() {
    let text = render(&[peer(
        "clients",
        "10.88.0.2",
        None,
        Some(NeighborAs::Internal),
    )])
    .unwrap();
    let line_of = |needle: &str, t: &str| t.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let edited = text.replace("internal;", "internal; password \"x\";");
    let n = line_of("neighbor", &edited);
    assert!(
        matches!(parse(&edited), Err(RenderError::Parse { line, .. }) if line == n),
        "{:?}",
        parse(&edited)
    );

    let edited = text.replace("  description", "  multihop;\n  description");
    let n = line_of("multihop", &edited);
    assert!(matches!(parse(&edited), Err(RenderError::Parse { line, .. }) if line == n));

    let edited = text.replace("}\n", "");
    let n = line_of("protocol bgp", &edited);
    assert_eq!(parse(&edited), Err(RenderError::Unterminated { line: n }));

    let edited = text.replace("# autopeer: group", "# note: group");
    let n = line_of("protocol bgp", &edited);
    assert!(matches!(parse(&edited), Err(RenderError::Parse { line, .. }) if line == n));

    let edited = text.replace("clients_10_88_0_2 from", "bgp from");
    let n = line_of("protocol bgp", &edited);
    assert!(
        matches!(parse(&edited), Err(RenderError::InvalidBlock { line, .. }) if line == n),
        "{:?}",
        parse(&edited)
    );

    let edited = format!("{text}\nprotocol static s1 {{ }}\n");
    assert!(matches!(parse(&edited), Err(RenderError::Parse { .. })));
    let edited = format!("{text}{text}");
    assert!(matches!(
        parse(&edited),
        Err(RenderError::DuplicateName { .. })
    ));
}

// ----- property: any valid roster renders and parses back to itself -----

fn arb_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u16; 8]>().prop_map(IpAddr::from),
        any::<u16>().prop_map(|x| IpAddr::from([0xfe80, 0, 0, 0, 0, 0, 0, x])),
    ]
    .prop_filter("neighbor address", |a| !a.is_unspecified())
}

fn arb_peer() -> impl Strategy<Value = Peer> {
    let group = "[a-z][a-z0-9_]{0,20}".prop_filter("symbol", |g| is_symbol(g));
    let iface = proptest::option::of(
        "[A-Za-z0-9_.:-]{1,15}".prop_filter("interface name", |i| is_iface(i)),
    );
    let neighbor = proptest::option::of(prop_oneof![
        Just(NeighborAs::Internal),
        Just(NeighborAs::External),
        (1u32..).prop_map(NeighborAs::As),
    ]);
    let template = "[A-Z][A-Z0-9_]{0,10}".prop_filter("symbol", |t| is_symbol(t));
    let admitted = (
        2000u32..2100,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        0u32..60,
    )
        .prop_map(|(y, mo, d, h, mi, s)| format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"));
    let via = prop_oneof![Just("bird-log"), Just("nhrp"), Just("ctl"), Just("syslog")];
    (group, arb_addr(), iface, neighbor, template, admitted, via).prop_map(
        |(group, addr, iface, neighbor, template, admitted, via)| Peer {
            name: peer_name(&group, addr, iface.as_deref()),
            group,
            template,
            addr,
            iface,
            neighbor,
            admitted,
            via: via.to_string(),
        },
    )
}

proptest! {
    #[test]
    fn any_valid_roster_round_trips(peers in proptest::collection::vec(arb_peer(), 0..12)) {
        let mut peers = peers;
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        peers.dedup_by(|a, b| a.name == b.name);
        let text = render(&peers).unwrap();
        prop_assert_eq!(parse(&text).unwrap(), peers);
    }

    #[test]
    fn peer_names_are_symbols(group in "[a-z][a-z0-9_]{0,70}", addr in arb_addr(),
                              iface in proptest::option::of("[A-Za-z0-9_.:-]{1,15}")) {
        prop_assume!(is_symbol(&group) || group.len() > 64);
        let name = peer_name(&group, addr, iface.as_deref());
        prop_assert!(name.len() <= 64, "{}", name);
        prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{}", name);
        // Never a keyword, never a byte string: BIRD takes it as a name.
        prop_assert!(is_symbol(&name), "{}", name);
    }

    /// For one group, distinct neighbors get distinct names.
    #[test]
    fn peer_names_are_injective(a in arb_addr(), b in arb_addr(),
                                ia in proptest::option::of("[0-9a-fx_.:-]{1,6}"),
                                ib in proptest::option::of("[0-9a-fx_.:-]{1,6}")) {
        prop_assume!((a, &ia) != (b, &ib));
        prop_assume!(ia.as_deref().map_or(true, is_iface) && ib.as_deref().map_or(true, is_iface));
        prop_assert_ne!(
            peer_name("g", a, ia.as_deref()),
            peer_name("g", b, ib.as_deref())
        );
    }

    #[test]
    fn parse_never_panics(text in "(\\PC{0,40}\n){0,20}") {
        let _ = parse(&text);
    }
}

// ----- real BIRD: `bird -p` must accept every rendered roster -----

const BIRD: &str = "/usr/sbin/bird";

/// True when the test may run; panics when CI=true and BIRD is missing.
fn have_bird() -> bool {
    common::bird::have_bird("bird -p of rendered rosters")
}

const BIRD_CONF: &str = r#"
router id 10.0.0.1;
protocol device {}
template bgp CLIENTS { local as 65000; ipv4 { import all; export all; }; }
template bgp CLIENTS6 { local as 65000; ipv6 { import all; export all; }; }
template bgp ASTEMPLATE { local as 65000; neighbor as 65000; ipv4 { import all; export all; }; }
template bgp LL { local as 65000; direct; ipv6 { import all; export all; }; }
template bgp A_RATHER_LONG_TEMPLATE { local as 65000; multihop; ipv6 { import all; export all; }; }
include "autopeer.conf";
"#;

fn bird_accepts(peers: &[Peer]) -> Result<(), String> {
    bird_parses("", &render(peers).map_err(|e| e.to_string())?)
}

fn with_template(mut p: Peer, t: &str) -> Peer {
    p.template = t.to_string();
    p
}

#[test]
fn bird_accepts_rendered_rosters() {
    if !have_bird() {
        return;
    }
    let long_group = "a_rather_long_group_name_for_spokes";
    let rosters: Vec<(&str, Vec<Peer>)> = vec![
        ("empty", vec![]),
        (
            "ipv4 internal/external/as",
            vec![
                peer("clients", "10.88.0.2", None, Some(NeighborAs::Internal)),
                peer("clients", "10.88.0.3", None, Some(NeighborAs::External)),
                peer("clients", "10.88.0.4", None, Some(NeighborAs::As(65001))),
                peer(
                    "clients",
                    "192.0.2.7",
                    None,
                    Some(NeighborAs::As(4_200_000_000)),
                ),
            ],
        ),
        (
            "ipv6",
            vec![
                with_template(
                    peer("clients", "2001:db8::7", None, Some(NeighborAs::Internal)),
                    "CLIENTS6",
                ),
                with_template(
                    peer(
                        "clients",
                        "2001:db8:ff::21",
                        None,
                        Some(NeighborAs::As(65002)),
                    ),
                    "CLIENTS6",
                ),
            ],
        ),
        (
            "template supplies the AS",
            vec![with_template(
                peer("clients", "10.88.0.9", None, None),
                "ASTEMPLATE",
            )],
        ),
        (
            "link-local, all interface forms",
            vec![
                with_template(
                    peer("ll", "fe80::1", Some("vti3"), Some(NeighborAs::Internal)),
                    "LL",
                ),
                with_template(
                    peer("ll", "fe80::2", Some("eth-0"), Some(NeighborAs::Internal)),
                    "LL",
                ),
                with_template(
                    peer(
                        "ll",
                        "fe80::3",
                        Some("eth0.100"),
                        Some(NeighborAs::As(65002)),
                    ),
                    "LL",
                ),
                with_template(
                    peer("ll", "fe80::4", Some("ipv4"), Some(NeighborAs::External)),
                    "LL",
                ),
                with_template(
                    peer("ll", "fe80::5", Some("abc"), Some(NeighborAs::External)),
                    "LL",
                ),
                with_template(
                    peer("ll", "fe80::7", Some("0eth"), Some(NeighborAs::External)),
                    "LL",
                ),
                with_template(
                    peer("ll", "fe80::6", Some("gre1:0"), Some(NeighborAs::Internal)),
                    "LL",
                ),
            ],
        ),
        (
            "hashed long names",
            vec![
                with_template(
                    peer(
                        long_group,
                        "2001:db8:1234:5678:9abc:def0:1234:5678",
                        None,
                        Some(NeighborAs::Internal),
                    ),
                    "A_RATHER_LONG_TEMPLATE",
                ),
                with_template(
                    peer(
                        long_group,
                        "2001:db8:1234:5678:9abc:def0:1234:5679",
                        None,
                        Some(NeighborAs::Internal),
                    ),
                    "A_RATHER_LONG_TEMPLATE",
                ),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (what, peers) in &rosters {
        if let Err(e) = bird_accepts(peers) {
            failures.push(format!("{what}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn bird_check_is_not_vacuous() {
    if !have_bird() {
        return;
    }
    // A neighbor with no AS and a template without one must fail, proving
    // that the test above would notice a bad rendering.
    let p = peer("clients", "10.88.0.2", None, None);
    let err = bird_accepts(&[p]).unwrap_err();
    assert!(err.contains("exit Some(1)"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random valid rosters (any interface spelling, any neighbor form)
    /// are accepted by real BIRD, not just by our own parser.
    #[test]
    fn bird_accepts_random_rosters(peers in proptest::collection::vec(arb_peer(), 1..8)) {
        if !have_bird() {
            return Ok(());
        }
        let mut peers: Vec<Peer> = peers
            .into_iter()
            .map(|mut p| {
                p.template = "LL".to_string();
                // `neighbor ADDR;` needs a template with an AS: the fixed
                // rosters above cover it; here every peer carries its own.
                p.neighbor = p.neighbor.or(Some(NeighborAs::Internal));
                if p.iface.is_none() && matches!(p.addr, IpAddr::V6(a) if a.segments()[0] == 0xfe80) {
                    p.iface = Some("vti3".to_string());
                    p.name = peer_name(&p.group, p.addr, p.iface.as_deref());
                }
                p
            })
            .collect();
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        peers.dedup_by(|a, b| a.name == b.name);
        prop_assert!(bird_accepts(&peers).is_ok(), "{}", bird_accepts(&peers).unwrap_err());
    }
}

#[test]
fn a_groups_own_key_is_rendered_parsed_back_and_accepted_by_bird() {
    use autopeer::bird::render::render_with_passwords;
    use autopeer::secret::Secret;
    use std::collections::BTreeMap;
    let peers = vec![
        peer("clients", "10.88.0.2", None, Some(NeighborAs::Internal)),
        with_template(
            peer("others", "10.77.0.2", None, Some(NeighborAs::Internal)),
            "CLIENTS",
        ),
    ];
    let mut keys = BTreeMap::new();
    keys.insert(
        "clients".to_string(),
        Secret::new(r"s3cr\et with spaces".to_string()),
    );
    let text = render_with_passwords(&peers, &keys).unwrap();
    // Only the keyed group's block carries it, once.
    assert_eq!(text.matches("password ").count(), 1, "{text}");
    let block = text
        .split("\n\n")
        .find(|b| b.contains("clients_10_88_0_2"))
        .unwrap();
    assert!(
        block.contains(r#"  password "s3cr\et with spaces";"#),
        "{block}"
    );
    // Parsing back gives the same roster (the key lives in the config).
    assert_eq!(parse(&text).unwrap(), peers);
    // A key BIRD cannot hold is refused, and the error does not show it.
    keys.insert("others".to_string(), Secret::new("bad\"key".to_string()));
    let e = render_with_passwords(&peers, &keys).unwrap_err();
    assert!(!e.to_string().contains("bad"), "{e}");
    if !have_bird() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bird.conf"), BIRD_CONF).unwrap();
    std::fs::write(dir.path().join("autopeer.conf"), &text).unwrap();
    let out = common::bird::parse_only(&dir.path().join("bird.conf"), &[]);
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `bird -p` on bird.conf (with `BIRD_CONF`'s templates and `extra`)
/// including `text` as autopeer.conf.
fn bird_parses(extra: &str, text: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let conf = dir.path().join("bird.conf");
    std::fs::write(&conf, format!("{extra}\n{BIRD_CONF}")).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("autopeer.conf"), text).map_err(|e| e.to_string())?;
    let out = common::bird::parse_only(&conf, &[]);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "bird -p exit {:?}\nstderr: {}\nfile:\n{text}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

// See: issue 10, finding 5: a link-local peer of an iBGP group whose
// template lacks `direct` was rendered without it, and BIRD refused every
// admission ("Multihop BGP cannot be used with link-local addresses").
#[test]
fn link_local_ibgp_peer_without_direct_in_template_is_accepted_by_bird() {
    if !have_bird() {
        return;
    }
    let templates = "\
template bgp IBGP6 { local as 65000; neighbor internal; ipv6 { import all; export none; }; }
template bgp IBGP6_HOPS { local as 65000; multihop 2; ipv6 { import all; export none; }; }";
    let peers = vec![
        with_template(peer("ll", "fe80::1", Some("vti3"), None), "IBGP6"),
        with_template(
            peer("ll", "fe80::2", Some("eth-0"), Some(NeighborAs::Internal)),
            "IBGP6",
        ),
        with_template(
            peer("ll", "fe80::3", Some("ipv4"), Some(NeighborAs::Internal)),
            "IBGP6_HOPS",
        ),
        // Not link-local: no `direct`, the template's multihop stays.
        with_template(
            peer("ll", "2001:db8::4", None, Some(NeighborAs::Internal)),
            "IBGP6_HOPS",
        ),
    ];
    let text = render(&peers).unwrap();
    assert_eq!(text.matches("  direct;\n").count(), 3, "{text}");
    bird_parses(templates, &text).unwrap();
    let mut sorted = peers.clone();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(parse(&text).unwrap(), sorted);
    // Without the line BIRD refuses it: the check above is not vacuous.
    let e = bird_parses(templates, &text.replace("  direct;\n", "")).unwrap_err();
    assert!(
        e.contains("Multihop BGP cannot be used with link-local"),
        "{e}"
    );
    // A hand-added `direct;` for a neighbor that is not link-local is an
    // edit render would not make.
    let v6 = render(&peers[3..]).unwrap();
    let edited = v6.replace("internal;\n", "internal;\n  direct;\n");
    assert!(parse(&edited).is_err(), "{edited}");
    // Files written before the line existed still read back.
    assert_eq!(parse(&text.replace("  direct;\n", "")).unwrap(), sorted);
}

// See: issue 10, finding 5: a key with a TAB passed `check` but render
// refused it and dropped the batch. BIRD takes any byte but `"`, a line
// feed (and NUL, where its C string ends) in a string.
#[test]
fn keys_config_accepts_are_rendered_and_bird_takes_them() {
    use autopeer::bird::render::render_with_passwords;
    use autopeer::secret::Secret;
    use std::collections::BTreeMap;
    if !have_bird() {
        return;
    }
    let peers = vec![peer(
        "clients",
        "10.88.0.2",
        None,
        Some(NeighborAs::Internal),
    )];
    for key in [
        "tab\there",
        "\u{1}\u{b}\u{c}\u{1b}[0m\u{7f}",
        r"back\slash # /* } ;",
        "non-ascii é ключ",
        &"k".repeat(80),
    ] {
        assert_eq!(autopeer::config::password_problem(key), None, "{key:?}");
        let keys = BTreeMap::from([("clients".to_string(), Secret::new(key.to_string()))]);
        let text = render_with_passwords(&peers, &keys).unwrap();
        bird_parses("", &text).unwrap();
        assert_eq!(parse(&text).unwrap(), peers);
    }
}

// See: issue 10, finding 5: BIRD compares keywords case-sensitively, so a
// template `IBGP` is fine; render used to refuse it while `check` passed.
#[test]
fn uppercase_keyword_spellings_are_names() {
    if !have_bird() {
        return;
    }
    let p = with_template(
        peer("clients", "10.88.0.2", None, Some(NeighborAs::Internal)),
        "IBGP",
    );
    let text = render(&[p]).unwrap();
    bird_parses(
        "template bgp IBGP { local as 65000; ipv4 { import all; export none; }; }",
        &text,
    )
    .unwrap();
}

/// Every word the installed BIRD lexes as a keyword is one of ours: no
/// name autopeer accepts can be a keyword there. Candidates are the token
/// names in the binary's parser tables (`RR`, `PEER`, ...), lower-cased;
/// BIRD says `unexpected CF_SYM_UNDEFINED` for a plain name in an
/// expression and names the token (or parses it) for a keyword.
#[test]
fn every_keyword_of_the_installed_bird_is_refused_as_a_name() {
    if !have_bird() {
        return;
    }
    let binary = std::fs::read(BIRD).unwrap();
    let mut words = std::collections::BTreeSet::new();
    for run in binary.split(|b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')) {
        if run.len() >= 2 && run.len() <= 40 && run[0].is_ascii_uppercase() {
            words.insert(String::from_utf8_lossy(run).to_ascii_lowercase());
        }
    }
    assert!(
        words.contains("rr") && words.contains("peer"),
        "{}",
        words.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bird.conf");
    let mut keywords = Vec::new();
    for w in &words {
        std::fs::write(
            &conf,
            format!("router id 10.0.0.1;\nfunction f() {{ return {w}; }}\n"),
        )
        .unwrap();
        let out = common::bird::parse_only(&conf, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("CF_SYM_UNDEFINED") {
            keywords.push(w.clone());
        }
    }
    assert!(keywords.len() > 300, "{keywords:?}");
    let missed: Vec<&String> = keywords.iter().filter(|w| is_symbol(w)).collect();
    assert!(
        missed.is_empty(),
        "keywords of {BIRD} accepted as names: {missed:?}"
    );
    // And a keyword as a protocol name really fails there.
    let p = peer("clients", "10.88.0.2", None, Some(NeighborAs::Internal));
    let mut text = render(&[p]).unwrap();
    text = text.replace("clients_10_88_0_2", "rr");
    let e = bird_parses("", &text).unwrap_err();
    assert!(e.contains("unexpected RR"), "{e}");
}

// See: issue 10, finding 7: a hand-mangled password line was quoted in
// the parse error, key and all.
#[test]
fn parse_errors_never_quote_a_password_line() {
    let p = peer("clients", "10.88.0.2", None, Some(NeighborAs::Internal));
    let text = render(&[p]).unwrap();
    for line in [
        "  password  \"s3cr3t-key\";",
        "  PASSWORD \"s3cr3t-key\";",
        "  password \"s3cr3t-key\" ;",
    ] {
        let edited = text.replace("  description", &format!("{line}\n  description"));
        let e = parse(&edited).unwrap_err().to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(e.contains("line 8"), "{e}");
    }
}

/// bird_exporter's rule for description labels (czerwonk/bird_exporter,
/// metrics/default_label_strategy.go: every match of its default regex
/// `(\w+)=(\w+)` in the description, main.go, becomes a label), written
/// out over Go's `\w` (`[0-9A-Za-z_]`): a maximal run of word characters,
/// `=`, a maximal run of word characters.
fn exporter_labels(desc: &str) -> Vec<(String, String)> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let b: Vec<char> = desc.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // Leftmost match: a word run ending right before '='.
        if !word(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && word(b[i]) {
            i += 1;
        }
        if i < b.len() && b[i] == '=' && i + 1 < b.len() && word(b[i + 1]) {
            let key: String = b[start..i].iter().collect();
            let mut j = i + 1;
            while j < b.len() && word(b[j]) {
                j += 1;
            }
            out.push((key, b[i + 1..j].iter().collect()));
            i = j;
        }
    }
    out
}

#[test]
fn description_is_labels_for_bird_exporter() {
    let text = render(&[
        peer("clients", "10.88.0.2", None, Some(NeighborAs::Internal)),
        peer("spokes", "fe80::1", Some("vti3"), None),
    ])
    .unwrap();
    let descs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("description \"")?.strip_suffix("\";"))
        .collect();
    assert_eq!(descs.len(), 2, "{text}");
    for (desc, group) in descs.iter().zip(["clients", "spokes"]) {
        assert_eq!(
            exporter_labels(desc),
            [
                ("autopeer".to_string(), "1".to_string()),
                ("group".to_string(), group.to_string())
            ],
            "{desc}"
        );
    }
    // The rule itself, on the form the old description had: an address
    // would have become a wrong label value.
    assert_eq!(
        exporter_labels("autopeer=1 neighbor=10.88.0.2"),
        [
            ("autopeer".to_string(), "1".to_string()),
            ("neighbor".to_string(), "10".to_string())
        ]
    );
}

#[test]
fn includes_written_with_the_old_description_still_load() {
    let old = "# Managed by autopeer: do not edit.

# autopeer: group clients, admitted 2026-11-23T06:55:02Z via bird-log
protocol bgp clients_10_88_0_2 from CLIENTS {
  neighbor 10.88.0.2 internal;
  description \"autopeer clients 10.88.0.2\";
}

# autopeer: group spokes, admitted 2026-11-23T06:55:03Z via bird-log
protocol bgp spokes_fe80__1_vti3 from SPOKES {
  neighbor fe80::1%vti3 internal;
  direct;
  description \"autopeer spokes fe80::1%vti3\";
}
";
    let peers = parse(old).expect("the old form loads");
    assert_eq!(peers.len(), 2);
    assert_eq!(peers[0].group, "clients");
    assert_eq!(peers[1].iface.as_deref(), Some("vti3"));
    // The next write is in the new form, and reads back the same.
    let new = render(&peers).unwrap();
    assert!(
        new.contains("description \"autopeer=1 group=spokes\";"),
        "{new}"
    );
    assert_eq!(parse(&new).unwrap(), peers);
}
