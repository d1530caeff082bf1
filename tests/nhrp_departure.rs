//! Departure of DMVPN spokes: nhrpd's cache, read over its vty socket.
//!
//! 1. The pure part: the vty reply framing and the cache JSON, from bytes
//!    captured from nhrpd 8.4.4 (fixtures/nhrp/cache-*.vty, one from a
//!    hub over real GRE), and what
//!    counts as a binding; hostile answers are errors, never panics.
//! 2. The config: `depart` needs `[sources] nhrp_vty`; `"0s"` is refused.
//! 3. Real nhrpd (Debian frr 8.4.4) + zebra in a network namespace this
//!    test creates, with the `autopeer run` binary beside a real BIRD:
//!    two spokes register (a stand-in for nhrpd's event socket writes
//!    nhrpd's exact bytes, fixtures/nhrp/01-*.msg); one has a binding in
//!    the real nhrpd's cache, one does not. The one without is removed
//!    after `depart` with an audit line, the other stays; when its binding
//!    goes (`no ip nhrp map`, typed into the real vtysh), it is removed
//!    too; when it registers again it is admitted again. `autopeer check`
//!    warns when it cannot read the cache.
//!
//! Substitution (this kernel has no GRE): the binding is a static map
//! (`ip nhrp map`) on a veth named gre1, not a spoke's dynamic
//! registration, because nhrpd only hears registrations through a GRE
//! device. The cache read, the vty protocol, the JSON and the removal are
//! the real ones. tests/uml_dmvpn.rs runs the dynamic case over real GRE
//! inside User-Mode Linux. Needs root, frr and bird2: with CI=true a
//! missing prerequisite fails, otherwise the test skips with a reason.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use autopeer::config::Config;
use autopeer::sources::nhrp::vty::{self, CacheEntry, VtyError};
use common::bird::{free_port, RealBird};
use common::daemon::{autopeer, Daemon};
use common::frr::Frr;

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/nhrp")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn entries(name: &str) -> Vec<CacheEntry> {
    let bytes = fixture(name);
    let (text, status) = vty::split_reply(&bytes).expect("a whole vty answer");
    assert!(status <= 1, "{name}: status {status}");
    vty::parse_cache(std::str::from_utf8(text).unwrap()).unwrap()
}

fn addrs(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn the_cache_json_nhrpd_prints_is_read_and_invalid_entries_bind_nothing() {
    let st = entries("cache-static.vty");
    assert_eq!(
        st,
        [CacheEntry {
            interface: "gre1".into(),
            kind: "static".into(),
            protocol: "10.200.0.9".parse().unwrap(),
            nbma: Some("192.0.2.9".parse().unwrap()),
        }]
    );
    assert_eq!(vty::bound(&st), addrs(&["10.200.0.9"]));
    // No entries: status 1 (CMD_WARNING), the JSON is still there.
    let (_, status) = vty::split_reply(&fixture("cache-empty-v6.vty"))
        .unwrap()
        .to_owned();
    assert_eq!(status, 1);
    assert!(entries("cache-empty-v6.vty").is_empty());
    // The hub over real GRE (captured in UML): two spokes and itself.
    let hub = entries("cache-hub-gre.vty");
    assert_eq!(hub.len(), 3);
    assert!(hub.iter().all(|e| e.interface == "gre1"));
    assert_eq!(
        vty::bound(&hub),
        addrs(&["10.200.0.1", "10.200.0.11", "10.200.0.12"])
    );
    assert_eq!(hub[0].nbma, Some("203.0.113.12".parse().unwrap()));
    // A registered spoke binds; one being authorized does not yet.
    let dynamic = entries("cache-dynamic.vty");
    assert_eq!(dynamic.len(), 2);
    assert_eq!(dynamic[1].nbma, None, "nhrpd prints '-'");
    assert_eq!(vty::bound(&dynamic), addrs(&["10.200.0.5"]));
    for kind in ["incomplete", "negative", "invalid"] {
        let e = CacheEntry {
            kind: kind.into(),
            ..dynamic[0].clone()
        };
        assert!(!e.binds(), "{kind}");
    }
    // A type this code does not know counts as a binding: a newer nhrpd
    // must not make spokes depart.
    for kind in ["static", "nhs", "cached", "local", "shiny-new"] {
        let e = CacheEntry {
            kind: kind.into(),
            ..dynamic[0].clone()
        };
        assert!(e.binds(), "{kind}");
    }
}

#[test]
fn a_partial_or_hostile_answer_is_an_error_not_a_departure() {
    let whole = fixture("cache-static.vty");
    for cut in 0..whole.len() {
        assert!(vty::split_reply(&whole[..cut]).is_none(), "cut at {cut}");
    }
    for (text, why) in [
        ("% Unknown command: show ip nhrp cache json", "not JSON"),
        ("{\"attr\":{}}", "no \"table\""),
        ("{\"table\":[{\"interface\":\"gre1\",\"type\":\"dynamic\"}]}", "no string \"protocol\""),
        (
            "{\"table\":[{\"interface\":\"gre1\",\"type\":\"dynamic\",\"protocol\":\"10.0.0.1;rm\"}]}",
            "is not an IP address",
        ),
        ("{\"table\":[{\"interface\":1,\"type\":\"dynamic\",\"protocol\":\"10.0.0.1\"}]}", "interface"),
    ] {
        match vty::parse_cache(text) {
            Err(VtyError::Json(m)) => assert!(m.contains(why), "{text}: {m}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

fn load(extra_sources: &str, extra_group: &str) -> Result<Config, String> {
    let text = format!(
        "[sources]\nlogs = []\n{extra_sources}\n[[group]]\nname = \"spokes\"\ntemplate = \"SPOKES\"\nprefixes = [\"10.200.0.0/16\"]\nneighbor = \"internal\"\n{extra_group}\n"
    );
    Config::load_str(&text, Path::new("/etc/bird")).map_err(|e| e.to_string())
}

#[test]
fn depart_needs_nhrpds_vty_socket_and_a_positive_duration() {
    let e = load("", "depart = \"1m\"").unwrap_err();
    assert!(
        e.contains("group.spokes.depart: needs [sources] nhrp_vty"),
        "{e}"
    );
    let e = load("nhrp_vty = \"/run/frr/nhrpd.vty\"", "depart = \"0s\"").unwrap_err();
    assert!(
        e.contains("group.spokes.depart: 0 would remove every peer"),
        "{e}"
    );
    let e = load("nhrp_vty = \"/run/frr/nhrpd.vty\"", "depart = \"soon\"").unwrap_err();
    assert!(
        e.contains("group.spokes.depart: \"soon\" is not a duration"),
        "{e}"
    );
    let c = load("nhrp_vty = \"/run/frr/nhrpd.vty\"", "depart = \"90s\"").unwrap();
    assert_eq!(c.groups[0].depart, Some(Duration::from_secs(90)));
    assert_eq!(
        vty::poll_interval(&c),
        Some((PathBuf::from("/run/frr/nhrpd.vty"), Duration::from_secs(10)))
    );
    // Without depart nothing is read, and depart defaults to never.
    let c = load("nhrp_vty = \"/run/frr/nhrpd.vty\"", "").unwrap();
    assert_eq!(c.groups[0].depart, None);
    assert_eq!(vty::poll_interval(&c), None);
}

// ------------------------------------------------- real nhrpd, real BIRD

fn prerequisites() -> bool {
    use common::prereq;
    let missing = common::frr::missing()
        .or_else(|| prereq::file(common::frr::VTYSH, "apt install frr"))
        .or_else(common::bird::missing_bird);
    prereq::runnable("nhrpd departure", missing)
}

/// zebra and nhrpd in a namespace with a veth named gre1 (10.200.0.1/16).
fn start_frr(dir: &Path) -> Frr {
    let ns = format!("apdep{}", std::process::id());
    let mut frr = Frr::new(&ns, &dir.join("frr"));
    frr.ip(&["-n", &ns, "link", "set", "lo", "up"]);
    frr.ip(&[
        "-n", &ns, "link", "add", "gre1", "type", "veth", "peer", "name", "gre1p",
    ]);
    // No IPv6 link-local address appearing a second later: every address
    // zebra reports makes nhrpd drop gre1's cache entries.
    frr.ip(&["-n", &ns, "link", "set", "gre1", "addrgenmode", "none"]);
    frr.ip(&["-n", &ns, "addr", "add", "10.200.0.1/16", "dev", "gre1"]);
    frr.ip(&["-n", &ns, "link", "set", "gre1", "up"]);
    frr.ip(&["-n", &ns, "link", "set", "gre1p", "up"]);
    let conf = frr.dir.join("nhrpd.conf");
    std::fs::write(
        &conf,
        "interface gre1\n ip nhrp network-id 1\n ip nhrp registration no-unique\nexit\n",
    )
    .unwrap();
    frr.start_zebra_nhrpd(&conf);
    let vty = frr.vty();
    wait_for("nhrpd's vty socket", Duration::from_secs(10), || {
        vty.exists()
    });
    frr
}

/// `ip nhrp map PROTO NBMA` on gre1 (or `no ...`), until nhrpd's cache
/// says so for a second: each interface update from zebra (gre1 seen, up,
/// an address) drops gre1's cache entries, and on a veth, which is no GRE
/// device, nhrpd does not map them again.
fn map(frr: &Frr, proto: &str, nbma: &str, on: bool) {
    let line = format!("{}ip nhrp map {proto} {nbma}", if on { "" } else { "no " });
    let cached = || frr.vtysh(&["show ip nhrp cache"]).contains(proto);
    wait_for(&line, Duration::from_secs(15), || {
        frr.vtysh(&["configure terminal", "interface gre1", &line]);
        cached() == on && {
            std::thread::sleep(Duration::from_secs(1));
            cached() == on
        }
    });
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

/// nhrpd's authorize-binding for a spoke, as nhrpd writes it (the
/// captured layout of fixtures/nhrp/01-*.msg with this spoke's fields).
fn authorize(sock: &Path, eventid: u32, addr: &str, nbma: &str) -> String {
    let msg = String::from_utf8(fixture("01-authorize-binding-no-ipsec.msg"))
        .unwrap()
        .replace("eventid=1\n", &format!("eventid={eventid}\n"))
        .replace("remote_addr=10.0.0.5\n", &format!("remote_addr={addr}\n"))
        .replace("remote_nbma=192.0.2.5\n", &format!("remote_nbma={nbma}\n"));
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(msg.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\n\n") {
        let n = s.read(&mut buf).expect("nhrpd's 10 s");
        assert!(n > 0, "closed without an answer");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

fn bird_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"log "{d}/bird.log" all;
router id 10.0.0.1;
protocol device {{ }}
template bgp SPOKES {{
  local 127.0.0.1 port {port} as 65000;
  multihop;
  passive on;
  ipv4 {{ import none; export none; }};
}}
include "{d}/autopeer.conf";
"#
    )
}

fn autopeer_toml(dir: &Path, vty: &Path) -> String {
    let d = dir.display();
    format!(
        r#"[bird]
socket = "{d}/bird.ctl"
config = "{d}/bird.conf"
include = "{d}/autopeer.conf"
keyring = "off"
[agent]
socket = "{d}/autopeer.ctl"
state = "{d}/state.toml"
audit_log = "{d}/audit.log"
batch = "100ms"
[sources]
logs = []
nhrp_socket = "{d}/nhrp.sock"
nhrp_policy = "enforce"
nhrp_vty = "{vty}"
[[group]]
name = "spokes"
template = "SPOKES"
prefixes = ["10.200.0.0/16"]
neighbor = "internal"
rate = "unlimited"
depart = "3s"
expire = "7d"
nbma_prefixes = ["192.0.2.0/24"]
"#,
        vty = vty.display()
    )
}

fn peers(ctl: &Path) -> String {
    autopeer(ctl, &["status"]).1
}

#[test]
fn spokes_whose_binding_leaves_nhrpds_cache_depart_and_come_back() {
    if !prerequisites() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("apdepart")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let frr = start_frr(dir);

    // The reader against the real nhrpd: an empty cache, then a binding.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(vty::read_bound(&frr.vty())).unwrap(),
        addrs(&[])
    );
    map(&frr, "10.200.0.9", "192.0.2.9", true);
    assert_eq!(
        rt.block_on(vty::read_bound(&frr.vty())).unwrap(),
        addrs(&["10.200.0.9"]),
        "{}",
        frr.vtysh(&["show ip nhrp cache"])
    );

    let port = free_port();
    std::fs::write(
        dir.join("autopeer.conf"),
        autopeer::bird::render::render(&[]).unwrap(),
    )
    .unwrap();
    let _bird = RealBird::start(dir, &bird_conf(dir, port));
    let config = dir.join("autopeer.toml");
    std::fs::write(&config, autopeer_toml(dir, &frr.vty())).unwrap();
    // `check` reads the cache too: fine here, a warning when it cannot.
    let (_, out) = common::daemon::autopeer_check(&config);
    assert!(!out.contains("nhrp_vty"), "{out}");
    let elsewhere = dir.join("elsewhere.toml");
    std::fs::write(&elsewhere, autopeer_toml(dir, &dir.join("no-nhrpd.vty"))).unwrap();
    let (_, out) = common::daemon::autopeer_check(&elsewhere);
    assert!(
        out.contains("sources.nhrp_vty") && out.contains("cannot read nhrpd's cache"),
        "{out}"
    );
    let ctl = dir.join("autopeer.ctl");
    let daemon =
        Daemon::start(&config, &dir.join("autopeer.log")).ready(&ctl, Duration::from_secs(20));
    let audit = || std::fs::read_to_string(dir.join("audit.log")).unwrap_or_default();
    let sock = dir.join("nhrp.sock");
    // The control socket comes up before the NHRP one.
    wait_for("the NHRP socket", Duration::from_secs(10), || sock.exists());

    // Two spokes register; both are accepted and become BIRD peers.
    assert_eq!(
        authorize(&sock, 1, "10.200.0.9", "192.0.2.9"),
        "eventid=1\nresult=accept\n\n"
    );
    assert_eq!(
        authorize(&sock, 2, "10.200.0.10", "192.0.2.10"),
        "eventid=2\nresult=accept\n\n"
    );
    wait_for("both spokes in BIRD", Duration::from_secs(20), || {
        let s = peers(&ctl);
        s.contains("spokes_10_200_0_9") && s.contains("spokes_10_200_0_10")
    });

    // .10 has no binding in nhrpd's cache: it departs; .9 stays.
    let gone10 = "removing neighbor 10.200.0.10 from group spokes: departed: no NHRP binding in nhrpd's cache for 3s";
    let took = wait_for("10.200.0.10 to depart", Duration::from_secs(30), || {
        audit().contains(gone10)
    });
    eprintln!("10.200.0.10 departed {took:?} after its admission was seen (depart = 3s)");
    wait_for("10.200.0.10 to leave BIRD", Duration::from_secs(20), || {
        !peers(&ctl).contains("spokes_10_200_0_10")
    });
    let include = std::fs::read_to_string(dir.join("autopeer.conf")).unwrap();
    assert!(!include.contains("10.200.0.10"), "{include}");
    std::thread::sleep(Duration::from_secs(7));
    assert!(
        peers(&ctl).contains("spokes_10_200_0_9"),
        "a bound spoke stays:\n{}\nnhrpd's cache:\n{}\n{}",
        audit(),
        frr.vtysh(&["show ip nhrp cache"]),
        daemon.log_text()
    );
    assert!(
        !audit().contains("removing neighbor 10.200.0.9"),
        "{}",
        audit()
    );

    // Its binding goes: it departs too.
    let t0 = Instant::now();
    map(&frr, "10.200.0.9", "192.0.2.9", false);
    let gone9 = "removing neighbor 10.200.0.9 from group spokes: departed: no NHRP binding in nhrpd's cache for 3s";
    wait_for("10.200.0.9 to depart", Duration::from_secs(30), || {
        audit().contains(gone9)
    });
    eprintln!(
        "10.200.0.9 departed {:?} after `no ip nhrp map` (depart = 3s)",
        t0.elapsed()
    );
    assert!(
        t0.elapsed() >= Duration::from_secs(3),
        "departed before depart ran out"
    );

    // It registers again: admitted again, not held back.
    map(&frr, "10.200.0.9", "192.0.2.9", true);
    assert_eq!(
        authorize(&sock, 3, "10.200.0.9", "192.0.2.9"),
        "eventid=3\nresult=accept\n\n"
    );
    wait_for("10.200.0.9 back in BIRD", Duration::from_secs(20), || {
        peers(&ctl).contains("spokes_10_200_0_9")
    });
    let a = audit();
    assert_eq!(
        a.matches("adding neighbor 10.200.0.9 to group spokes (via nhrp)")
            .count(),
        2,
        "{a}"
    );
    drop(daemon);
}
