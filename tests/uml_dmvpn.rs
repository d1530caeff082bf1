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
//!   cache) and the route then goes straight to the other spoke;
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

use common::prereq;

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
