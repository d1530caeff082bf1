//! The key plan's unit and property tests (kept apart: longer than the
//! plan itself).

use super::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;
use std::path::Path;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn stale_keys_spare_birds_own() {
    let present = [
        net("10.88.0.0/25"),
        net("10.88.0.0/30"),
        net("10.88.0.4/32"),
        net("10.99.0.0/24"),
        net("2001:db8::/64"),
        net("2001:db8::1/128"),
    ];
    let wanted = BTreeSet::from([net("10.88.0.0/30")]);
    let ranges = BTreeSet::from([net("10.99.0.0/24")]);
    assert_eq!(
        stale_keys(&present, &wanted, &ranges),
        vec![net("10.88.0.0/25"), net("2001:db8::/64")]
    );
    assert!(stale_keys(&[], &wanted, &ranges).is_empty());
}

#[test]
fn plan_records_birds_ranges() {
    let plan = desired_keys(&[], &conf()).unwrap();
    assert_eq!(plan.bird_ranges, BTreeSet::from([net("10.1.1.0/24")]));
}

#[test]
fn one_host_out_of_a_24_leaves_8_prefixes() {
    let got = key_prefixes(&[net("10.88.0.0/24")], &[net("10.88.0.5/32")]);
    assert_eq!(got.len(), 8);
    assert!(got.contains(&net("10.88.0.4/32")));
    assert!(got.contains(&net("10.88.0.128/25")));
    assert!(!got
        .iter()
        .any(|p| p.contains(&"10.88.0.5".parse::<IpAddr>().unwrap())));
}

#[test]
fn exemptions_outside_or_covering() {
    let g = [net("10.88.0.0/24")];
    assert_eq!(key_prefixes(&g, &[net("10.99.0.1/32")]), g.to_vec());
    assert_eq!(key_prefixes(&g, &[net("2001:db8::1/128")]), g.to_vec());
    assert!(key_prefixes(&g, &[net("10.0.0.0/8")]).is_empty());
    assert_eq!(
        key_prefixes(&[net("2001:db8::/64")], &[net("2001:db8::1/128")]).len(),
        64
    );
    // Adjacent group prefixes merge.
    assert_eq!(
        key_prefixes(&[net("10.0.0.0/25"), net("10.0.0.128/25")], &[]),
        vec![net("10.0.0.0/24")]
    );
}

#[test]
fn expressible_passwords() {
    assert_eq!(bird_can_express("good-key"), None);
    assert!(bird_can_express("a\"b").is_some());
    assert!(bird_can_express("a\nb").is_some());
    assert!(bird_can_express("a\rb").is_some());
    assert!(bird_can_express("a\0b").is_some());
    assert!(bird_can_express(&"x".repeat(81)).is_some());
    assert_eq!(bird_can_express(&"x".repeat(80)), None);
    assert!(bird_can_express("").is_some());
}

fn group(name: &str, template: &str, prefixes: &[&str], password: Option<&str>) -> Group {
    Group {
        name: name.to_owned(),
        template: template.to_owned(),
        prefixes: prefixes.iter().map(|p| net(p)).collect(),
        neighbor: None,
        password: password.map(|p| Secret::new(p.to_owned())),
        deny: Vec::new(),
        max_peers: 10,
        rate: None,
        expire: None,
        interface: None,
        nbma_prefixes: Vec::new(),
        cert: None,
        depart: None,
        ao_keys: Vec::new(),
    }
}

const CONF: &str = r#"
template bgp keyed { local as 65000; password "tmpl-key"; neighbor internal; }
template bgp open { local as 65000; neighbor internal; }
protocol bgp same_key from keyed { neighbor 10.1.0.5; }
protocol bgp other_key from open { neighbor 10.1.0.6; password "other"; }
protocol bgp no_key from open { neighbor 10.1.0.7; }
protocol bgp elsewhere from open { neighbor 192.0.2.9; }
protocol bgp dyn from open { neighbor range 10.1.1.0/24; dynamic name "d"; }
"#;

fn conf() -> BirdConf {
    crate::bird::conf::scan_text(CONF, Path::new("bird.conf")).unwrap()
}

fn covers(plan: &KeyPlan, a: &str) -> Option<String> {
    let a: IpAddr = a.parse().unwrap();
    plan.keys
        .iter()
        .filter(|k| k.prefix.contains(&a))
        .max_by_key(|k| k.prefix.prefix_len())
        .map(|k| k.key.expose().clone())
}

#[test]
fn plan_takes_the_template_password_and_exempts_other_keys() {
    let c = conf();
    let mut g = group("clients", "keyed", &["10.1.0.0/16"], None);
    g.deny = vec![net("10.1.2.0/24")];
    let plan = desired_keys(&[g], &c).unwrap();
    assert_eq!(covers(&plan, "10.1.9.9").as_deref(), Some("tmpl-key"));
    assert_eq!(
        covers(&plan, "10.1.0.5").as_deref(),
        Some("tmpl-key"),
        "same key: no hole"
    );
    assert_eq!(
        covers(&plan, "10.1.0.6"),
        None,
        "other key: BIRD's exact key decides"
    );
    assert_eq!(
        covers(&plan, "10.1.0.7"),
        None,
        "no key: must stay reachable unsigned"
    );
    assert_eq!(covers(&plan, "10.1.1.1"), None, "native range");
    assert_eq!(covers(&plan, "10.1.2.1"), None, "deny");
    assert!(plan.keys.iter().all(|k| k.group == "clients"));
    let exact: Vec<IpAddr> = plan.bird_exact.iter().copied().collect();
    assert_eq!(
        exact,
        vec![
            "10.1.0.5".parse::<IpAddr>().unwrap(),
            "10.1.0.6".parse().unwrap()
        ]
    );
    assert!(!format!("{plan:?}").contains("tmpl-key"));
}

#[test]
fn plan_nested_groups() {
    let c = conf();
    let outer = group("outer", "open", &["10.0.0.0/8"], Some("outer-key"));
    let keyed_inner = group("inner", "open", &["10.2.0.0/16"], Some("inner-key"));
    let open_inner = group("plain", "open", &["10.3.0.0/16"], None);
    let plan = desired_keys(&[outer, keyed_inner, open_inner], &c).unwrap();
    assert_eq!(covers(&plan, "10.2.0.1").as_deref(), Some("inner-key"));
    assert!(!plan.keys.iter().any(|k| k.prefix == net("10.0.0.0/8")));
    assert_eq!(covers(&plan, "10.4.0.1").as_deref(), Some("outer-key"));
    assert_eq!(
        covers(&plan, "10.3.0.1"),
        None,
        "a group without key stays open"
    );
    assert_eq!(plan.unkeyed, vec!["plain".to_owned()]);
    // 10.1.0.5 has the template key, not outer's: exempt from outer.
    assert_eq!(covers(&plan, "10.1.0.5"), None);
}

#[test]
fn plan_refusals() {
    let c = conf();
    let zero = group("all", "open", &["0.0.0.0/0"], Some("k"));
    let quote = group("q", "open", &["10.9.0.0/16"], Some("a\"b"));
    let long = group("l", "open", &["10.8.0.0/16"], Some(&"x".repeat(81)));
    let none = group("n", "open", &["10.7.0.0/16"], None);
    let problems = desired_keys(&[zero, quote, long, none], &c).unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:?}");
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text[0].contains("group all: prefix 0.0.0.0/0"),
        "{}",
        text[0]
    );
    assert!(
        text[1].contains("group q: password (from the group)"),
        "{}",
        text[1]
    );
    assert!(text[2].contains("longer than 80 bytes"), "{}", text[2]);
    assert!(!text.join(" ").contains("a\"b"));
}

fn v4(bits: u32, len: u8) -> IpNet {
    IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(bits), len).unwrap()).trunc()
}

proptest! {
    /// Result covers exactly prefix minus exempt, pieces are disjoint,
    /// and each is maximal (its parent is not wholly inside the
    /// difference), which makes the set minimal.
    #[test]
    fn key_prefixes_exact_disjoint_minimal(
        base in any::<u32>(),
        plen in 20u8..=30,
        exempts in proptest::collection::vec((0u32..4096, 20u8..=32), 0..6),
    ) {
        let group = v4(base, plen);
        let start = match group { IpNet::V4(n) => u32::from(n.network()), _ => unreachable!() };
        let ex: Vec<IpNet> = exempts.iter().map(|(off, l)| v4(start.wrapping_add(*off), *l)).collect();
        let got = key_prefixes(&[group], &ex);
        let in_diff = |a: u32| {
            let ip = IpAddr::V4(Ipv4Addr::from(a));
            group.contains(&ip) && !ex.iter().any(|e| e.contains(&ip))
        };
        let size = 1u64 << (32 - plen);
        for i in 0..size {
            let a = start.wrapping_add(i as u32);
            let ip = IpAddr::V4(Ipv4Addr::from(a));
            let n = got.iter().filter(|p| p.contains(&ip)).count();
            prop_assert_eq!(n, usize::from(in_diff(a)), "address {}", ip);
        }
        for p in &got {
            prop_assert!(group.contains(p));
            if let Some(parent) = p.supernet() {
                if group.contains(&parent) {
                    let IpNet::V4(pn) = parent else { unreachable!() };
                    let whole = pn.hosts().chain([pn.network(), pn.broadcast()])
                        .all(|a| in_diff(u32::from(a)));
                    prop_assert!(!whole, "{} not maximal", p);
                }
            }
        }
    }

    /// Removing one host from a /p leaves exactly 32 - p prefixes.
    #[test]
    fn single_host_removal_count(base in any::<u32>(), plen in 1u8..=32, off in any::<u32>()) {
        let group = v4(base, plen);
        let IpNet::V4(g) = group else { unreachable!() };
        let mask = if plen == 32 { 0 } else { u32::MAX >> plen };
        let host = v4(u32::from(g.network()) | (off & mask), 32);
        prop_assert_eq!(key_prefixes(&[group], &[host]).len(), usize::from(32 - plen));
    }
}

const TASK_CONF: &str = r#"
template bgp CLIENTS { local as 65000; password "tmpl-key"; neighbor internal; }
template bgp OPEN { local as 65000; neighbor internal; }
protocol bgp c4 from OPEN { neighbor 10.88.0.4; }
"#;

/// Inputs with a keyed group `clients` (its template's password) and an
/// open one, and a BIRD socket that does not exist.
pub(in crate::keyring) fn inputs(keyring: &str) -> KeyInputs {
    let toml = format!(
        r#"[bird]
socket = "/nonexistent/bird.ctl"
config = "/nonexistent/bird.conf"
include = "/nonexistent/autopeer.conf"
keyring = "{keyring}"
[agent]
socket = "/nonexistent/autopeer.ctl"
[[group]]
name = "clients"
template = "CLIENTS"
prefixes = ["10.88.0.0/25"]
[[group]]
name = "open"
template = "OPEN"
prefixes = ["10.99.0.0/24"]
"#
    );
    let config = Config::load_str(&toml, std::path::Path::new("/")).expect("config");
    KeyInputs {
        config: Arc::new(config),
        birdconf: Arc::new(
            crate::bird::conf::scan_text(TASK_CONF, std::path::Path::new("bird.conf")).unwrap(),
        ),
        peers: vec![
            ("10.88.0.2".parse().unwrap(), "clients".into()),
            ("10.99.0.2".parse().unwrap(), "open".into()),
        ]
        .into(),
        configured: 1,
    }
}

#[test]
fn roster_peers_of_keyed_groups_are_birds_exact_keys() {
    let plan = plan_for(&inputs("auto")).unwrap();
    assert!(plan.bird_exact.contains(&"10.88.0.2".parse().unwrap()));
    assert!(!plan.bird_exact.contains(&"10.99.0.2".parse().unwrap()));
    assert_eq!(plan.unkeyed, vec!["open".to_owned()]);
    // c4 (no password) is cut out of the keyed /25.
    assert!(plan
        .keys
        .iter()
        .all(|k| !k.prefix.contains(&"10.88.0.4".parse::<IpAddr>().unwrap())));
    assert_eq!(plan.keys.len(), 7);
}

proptest! {
    /// Over a keyed /24 with static neighbors (the group's key, another
    /// key, none), a `deny` entry, a native `neighbor range` and an
    /// unkeyed more specific group: every address is covered by at
    /// most one key, and by the group's key exactly when nothing
    /// exempts it; every neighbor with a password is BIRD's exact key.
    #[test]
    fn plan_keys_exactly_what_must_be_signed(
        neighbors in proptest::collection::btree_map(any::<u8>(), 0u8..3, 0..6),
        deny in proptest::option::of((any::<u8>(), 26u8..=32)),
        range in proptest::option::of((any::<u8>(), 27u8..=32)),
        open in proptest::option::of((any::<u8>(), 28u8..=32)),
    ) {
        let at = |(off, len): (u8, u8)| v4(u32::from(Ipv4Addr::new(10, 5, 0, off)), len);
        let mut text = String::from(
            "template bgp keyed { local as 65000; password \"grp-key\"; neighbor internal; }\n\
             template bgp plain { local as 65000; neighbor internal; }\n",
        );
        for (i, (off, kind)) in neighbors.iter().enumerate() {
            let pw = ["", " password \"grp-key\";", " password \"other\";"][usize::from(*kind)];
            text += &format!("protocol bgp n{i} from plain {{ neighbor 10.5.0.{off};{pw} }}\n");
        }
        if let Some(r) = range {
            text += &format!(
                "protocol bgp r from plain {{ neighbor range {}; dynamic name \"d\"; }}\n",
                at(r)
            );
        }
        let c = crate::bird::conf::scan_text(&text, Path::new("bird.conf")).unwrap();
        let mut g = group("clients", "keyed", &["10.5.0.0/24"], None);
        g.deny = deny.map(at).into_iter().collect();
        let mut groups = vec![g];
        if let Some(o) = open {
            groups.push(group("open", "plain", &[&at(o).to_string()], None));
        }
        let plan = desired_keys(&groups, &c).unwrap();
        let exempts: Vec<IpNet> = [deny, range, open].into_iter().flatten().map(at).collect();
        for last in 0..=255u8 {
            let a = IpAddr::V4(Ipv4Addr::new(10, 5, 0, last));
            let n = plan.keys.iter().filter(|k| k.prefix.contains(&a)).count();
            prop_assert!(n <= 1, "{} covered {} times", a, n);
            let birds_say = matches!(neighbors.get(&last), Some(0 | 2));
            let exempt = birds_say || exempts.iter().any(|e| e.contains(&a));
            prop_assert_eq!(
                covers(&plan, &a.to_string()).is_some(),
                !exempt,
                "address {}", a
            );
        }
        prop_assert!(plan.keys.iter().all(|k| k.key.expose() == "grp-key" && k.group == "clients"));
        let exact: BTreeSet<IpAddr> = neighbors
            .iter()
            .filter(|(_, kind)| **kind != 0)
            .map(|(off, _)| IpAddr::V4(Ipv4Addr::new(10, 5, 0, *off)))
            .collect();
        prop_assert_eq!(&plan.bird_exact, &exact);
    }

    /// A present key is stale exactly when it is not host-length, not
    /// wanted and not one of BIRD's ranges.
    #[test]
    fn stale_keys_are_exactly_the_foreign_prefix_keys(
        present in proptest::collection::vec((any::<u32>(), 8u8..=32), 0..12),
        wanted_bits in any::<u16>(),
        range_bits in any::<u16>(),
    ) {
        let present: Vec<IpNet> = present.iter().map(|(a, l)| v4(*a, *l)).collect();
        let pick = |bits: u16| -> BTreeSet<IpNet> {
            present.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, p)| *p).collect()
        };
        let (wanted, ranges) = (pick(wanted_bits), pick(range_bits));
        let stale = stale_keys(&present, &wanted, &ranges);
        for p in &present {
            let foreign = p.prefix_len() < 32 && !wanted.contains(p) && !ranges.contains(p);
            prop_assert_eq!(stale.contains(p), foreign, "{}", p);
        }
    }
}
