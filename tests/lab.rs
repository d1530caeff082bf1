//! End to end, with real BIRD in network namespaces (bird/lab): knocking
//! clients are admitted and reach Established, the outsider never appears,
//! a static neighbor is not duplicated, a restart keeps the roster, an
//! operator's `birdc disable` survives autopeer's configure, a syntax error
//! in another included file leaves the owned include valid and is reported,
//! and a block deleted by hand is a removal.
//!
//! Needs root, bird2 and iproute2. With CI=true a missing prerequisite
//! fails the test; elsewhere it skips with a one-line reason.

mod common;

use std::time::Duration;

use common::daemon::{autopeer_check, Daemon};
use common::lab::{lab_allowed, read, wait_for, write_config, Lab, LAB_TOOLS};

fn allowed() -> bool {
    lab_allowed(LAB_TOOLS, "namespace lab test")
}

#[test]
fn knocking_peers_are_admitted_end_to_end() {
    if !allowed() {
        return;
    }
    // rr + c2, c3, c5 (knocking), c4 (static), c200 (outsider); c5 is
    // started late, for the broken-config step.
    let lab = Lab::up(&["--clients", "3", "--no-start"]);
    for node in ["c2", "c3", "c4", "c200"] {
        lab.start(node);
    }
    let config = write_config(&lab, "off", false);
    let d = lab.dir.path().to_path_buf();
    let audit = d.join("audit.log");
    let include = lab.path("RR_INCLUDE");
    let daemon_log = d.join("autopeer.out");

    let (ok, check_out) = autopeer_check(&config);
    assert!(ok, "autopeer check failed:\n{check_out}");

    let daemon = Daemon::start(&config, &daemon_log);
    let dump = || {
        lab.dump(&[
            ("audit", &audit),
            ("daemon", &daemon_log),
            ("include", &include),
        ])
    };

    // The two knocking clients are admitted and come up.
    for proto in ["clients_10_88_0_2", "clients_10_88_0_3"] {
        assert!(
            lab.established(proto, 60),
            "{proto} not Established\n{}",
            dump()
        );
    }
    let audit_text = read(&audit);
    assert!(
        audit_text.contains("adding neighbor 10.88.0.2 to group clients (via bird-log)"),
        "{}",
        dump()
    );

    // The outsider knocks too, but is refused and never appears.
    wait_for("the outsider's refusal", 30, || {
        read(&audit).contains("refusing neighbor 10.88.0.200")
    });
    let protocols = lab.birdc(&["show", "protocols"]);
    assert!(!protocols.contains("10_88_0_200"), "{}", dump());
    assert!(!read(&include).contains("10.88.0.200"), "{}", dump());

    // The static neighbor stays the operator's: Established, not duplicated.
    assert!(lab.established(lab.get("STATIC_PROTO"), 30), "{}", dump());
    assert!(!read(&include).contains("10.88.0.4"), "{}", dump());
    assert!(!protocols.contains("clients_10_88_0_4"), "{}", dump());

    // A restart keeps the roster: same include, no new admissions.
    let before = read(&include);
    let adds_before = read(&audit).matches("adding neighbor").count();
    daemon.stop();
    let daemon = Daemon::start(&config, &daemon_log);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        read(&include),
        before,
        "restart changed the include\n{}",
        dump()
    );
    assert_eq!(
        read(&audit).matches("adding neighbor").count(),
        adds_before,
        "{}",
        dump()
    );
    assert!(lab.established("clients_10_88_0_2", 10), "{}", dump());

    // An operator disables a peer at runtime; autopeer's next configure
    // must not bring it back (docs/facts.md fact 9).
    let out = lab.birdc(&["disable", "clients_10_88_0_2"]);
    assert!(out.contains("disabled"), "{out}");

    // A syntax error in another included file: the next admission is
    // written (valid) but not loaded, and reported.
    let extra = lab.path("RR_EXTRA");
    std::fs::write(&extra, "this is not bird config;\n").unwrap();
    let out = lab.script(&["start", "c5"]);
    assert!(out.status.success());
    wait_for("the broken-elsewhere report", 60, || {
        read(&audit).contains("broken outside autopeer's include")
    });
    let audit_text = read(&audit);
    assert!(audit_text.contains(extra.to_str().unwrap()), "{}", dump());
    let peers = autopeer::bird::render::parse(&read(&include)).expect("owned include stays valid");
    assert!(
        peers.iter().any(|p| p.name == "clients_10_88_0_5"),
        "{}",
        dump()
    );
    assert!(
        !lab.birdc(&["show", "protocols"])
            .contains("clients_10_88_0_5"),
        "{}",
        dump()
    );

    // The operator fixes it: autopeer notices and loads the roster.
    std::fs::write(&extra, "# fixed\n").unwrap();
    assert!(lab.established("clients_10_88_0_5", 60), "{}", dump());
    let row = lab.birdc(&["show", "protocols", "clients_10_88_0_2"]);
    assert!(
        row.lines()
            .any(|l| l.starts_with("clients_10_88_0_2") && l.contains(" down ")),
        "operator's disable was undone:\n{row}\n{}",
        dump()
    );
    assert!(
        read(&audit).contains("kept clients_10_88_0_2 disabled"),
        "{}",
        dump()
    );

    // Deleting a block by hand is a removal (stop the client first, or it
    // would knock and be admitted again).
    let out = lab.script(&["stop", "c3"]);
    assert!(out.status.success());
    let text = read(&include);
    let kept: Vec<&str> = text
        .split("\n\n")
        .filter(|block| !block.contains("clients_10_88_0_3"))
        .collect();
    std::fs::write(&include, kept.join("\n\n")).unwrap();
    wait_for("clients_10_88_0_3 to leave BIRD", 30, || {
        !lab.birdc(&["show", "protocols"])
            .contains("clients_10_88_0_3")
    });
    assert!(
        read(&audit).contains("removing neighbor 10.88.0.3 from group clients"),
        "{}",
        dump()
    );

    daemon.stop();
}
