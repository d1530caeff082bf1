//! A real DMVPN hub end to end: FRR nhrpd over real multipoint GRE, BIRD
//! and the `autopeer run` binary, inside User-Mode Linux (this host's
//! kernel has no GRE). tests/uml_dmvpn.sh is the payload; it uses the
//! example files of bird/nhrp-hub as shipped (paths and the test's short
//! timers substituted) and reports one `CHECK` line per claim:
//!
//! - a spoke registers, nhrpd asks autopeer (authorize-binding), autopeer
//!   accepts, nhrpd installs the binding, and the spoke's BGP session on
//!   its GRE address is Established in the hub's BIRD (and the spoke's);
//! - a spoke whose public (NBMA) address is outside `nbma_prefixes` is
//!   rejected: audited, no binding in nhrpd's cache, no BIRD protocol;
//! - spoke to spoke: a ping between two spokes' LANs first crosses the
//!   hub, whose nhrpd sends a traffic indication; the spoke resolves a
//!   shortcut (listed by `show ip nhrp shortcut`, the other spoke in its
//!   cache) and the route then goes straight to the other spoke: the
//!   hub relays no more of that traffic (an iptables counter on the hub);
//! - departure: a spoke whose nhrpd stops and whose public address goes
//!   away is removed once nhrpd's binding lapsed plus `depart`, audited,
//!   and leaves BIRD, while the other spoke stays;
//! - the same spoke registering again is admitted again and comes up.
//!
//! The config files are also checked on the host (no UML needed): FRR's
//! vtysh parses the nhrpd snippets and BIRD parses the spoke's config.
//! Needs the UML kernel (`scripts/uml build`), bird2, frr, iptables and
//! ping: under CI=true a missing one fails, elsewhere the test skips.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{prereq, uml};

fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/bird/nhrp-hub"))
}

#[test]
fn the_example_nhrpd_and_bird_snippets_parse() {
    let missing =
        prereq::file("/usr/bin/vtysh", "apt install frr").or_else(common::bird::missing_bird);
    if !prereq::runnable("example configs", missing) {
        return;
    }
    for f in ["frr.conf", "spoke-frr.conf"] {
        let out = Command::new("vtysh")
            .arg("--dryrun")
            .arg("-f")
            .arg(examples().join(f))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The dry run does catch a bad line.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "interface gre1\n ip nhrp no-such-thing\n").unwrap();
    let out = Command::new("vtysh")
        .arg("--dryrun")
        .arg("-f")
        .arg(bad.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = common::bird::parse_only(&examples().join("spoke-bird.conf"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every claim of the module doc, as the payload names its checks.
const CHECKS: &[&str] = &[
    "autopeer_check",
    "nhrpd_connected",
    "registered_s1",
    "registered_s2",
    "authorized_s1",
    "authorized_s2",
    "established_s1",
    "established_s2",
    "spoke_side_established",
    "rejected_s3",
    "nhrpd_refused_s3",
    "no_bgp_for_s3",
    "no_include_for_s3",
    "routes_via_hub",
    "spoke_ping",
    "relayed_first",
    "shortcut_installed",
    "shortcut_cache",
    "shortcut_ping",
    "shortcut_bypasses_hub",
    "shortcut_path",
    "departed",
    "departed_from_bird",
    "s1_stays",
    "readmitted",
    "reestablished",
];

#[test]
fn a_dmvpn_hub_with_real_nhrpd_over_gre_admits_rejects_and_departs_spokes() {
    let missing = common::frr::missing()
        .or_else(|| prereq::file(common::frr::VTYSH, "apt install frr"))
        .or_else(common::bird::missing_bird)
        .or_else(|| prereq::file("/usr/sbin/iptables", "apt install iptables"))
        .or_else(|| prereq::file("/usr/bin/ping", "apt install iputils-ping"));
    if !prereq::runnable("UML DMVPN", missing) {
        return;
    }
    let Some(vm) = uml::require("UML DMVPN") else {
        return;
    };
    let script = format!(
        "{}\nAUTOPEER={}\nEX={}\n{}",
        uml::CHECK_FN,
        uml::quote(env!("CARGO_BIN_EXE_autopeer")),
        uml::quote(examples().to_str().unwrap()),
        include_str!("uml_dmvpn.sh")
    );
    let run = vm.timeout(Duration::from_secs(900)).script(&script);
    for figure in run.output.lines().filter(|l| l.starts_with("FIGURE ")) {
        eprintln!("{figure}");
    }
    for c in CHECKS {
        run.assert_check(c);
    }
    run.assert_ok();
}
