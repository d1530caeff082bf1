//! The namespace lab's MD5, IPv6 and GoBGP clients (bird/lab `--password`,
//! `--wrong-key`, `--ipv6`, `--gobgp`) behave as the MD5-group work needs,
//! before any keyring exists: signed knocks die in the rr's kernel without a
//! log line (docs/facts.md fact 1) while the unsigned static neighbor stays up,
//! and unsigned IPv6 and GoBGP knocks do reach BIRD's log and can be peered
//! by hand. It must not start autopeer or install keys: that is the
//! keyring's own test.
//!
//! Needs root, bird2, iproute2 and gobgpd. With CI=true a missing
//! prerequisite fails the test; elsewhere it skips with a one-line reason.

mod common;

use std::time::Duration;

use common::lab::{lab_allowed, wait_for, Lab, MD5_LAB_TOOLS};

fn allowed() -> bool {
    lab_allowed(MD5_LAB_TOOLS, "namespace lab MD5 test")
}

#[test]
fn signed_knocks_die_in_the_kernel_and_the_static_neighbor_stays_up() {
    if !allowed() {
        return;
    }
    let lab = Lab::up(&[
        "--clients",
        "2",
        "--gobgp",
        "1",
        "--ipv6",
        "--wrong-key",
        "--password",
        "lab-md5-key",
    ]);
    assert_eq!(lab.get("GOBGP_NODES"), "g110");
    assert_eq!(lab.get("WRONG_KEY"), "10.88.0.127");
    assert_eq!(lab.get("WRONG_KEY_NODE"), "c127");
    assert_eq!(lab.get("GROUP_PREFIX6"), "2001:db8:88::/119");
    assert_eq!(lab.get("TEMPLATE6"), "CLIENTS6");
    let dump = || {
        format!(
            "--- rr log\n{}\n--- rr\n{}",
            lab.rr_log(),
            lab.birdc(&["show", "protocols"])
        )
    };

    // The unsigned static neighbor is unaffected, over both families; its
    // IPv6 protocol keeps BIRD's [::]:179 listener open.
    assert!(lab.established(lab.get("STATIC_PROTO"), 20), "{}", dump());
    assert!(lab.established(lab.get("STATIC_PROTO6"), 20), "{}", dump());
    let listeners = lab.exec("rr", &["ss", "-Hltn"]);
    assert!(listeners.contains("0.0.0.0:179"), "{listeners}");
    assert!(listeners.contains("[::]:179"), "{listeners}");

    // Every knocking node signs: the bird2 clients over both families
    // (each SYN counts), and GoBGP's SYN is seen leaving g110.
    let before = lab.tcp_ext("TCPMD5Unexpected");
    wait_for("signed SYNs dropped by the rr's kernel", 15, || {
        lab.tcp_ext("TCPMD5Unexpected") >= before + 8
    });
    wait_for("g110's signed SYN toward the rr", 20, || {
        lab.exec("g110", &["ss", "-Htn", "state", "syn-sent"])
            .contains(":179")
    });
    std::thread::sleep(Duration::from_millis(500));

    // ... and nothing reached BIRD: no Unexpected connect line at all, no
    // key failures (no listener key exists yet, so nothing is compared).
    let log = lab.rr_log();
    assert!(!log.contains("Unexpected connect"), "{}", dump());
    assert_eq!(lab.tcp_ext("TCPMD5Failure"), 0, "{}", dump());
    assert!(lab.established(lab.get("STATIC_PROTO"), 1), "{}", dump());
}

#[test]
fn unsigned_ipv6_and_gobgp_knocks_are_logged_and_peer_by_hand() {
    if !allowed() {
        return;
    }
    let lab = Lab::up(&["--clients", "1", "--gobgp", "1", "--ipv6"]);
    assert_eq!(lab.get("CLIENTS6"), "2001:db8:88::2");
    assert_eq!(lab.get("GOBGP"), "10.88.0.110");
    assert_eq!(lab.get("GOBGP6"), "2001:db8:88::110");
    let dump = || {
        format!(
            "--- rr log\n{}\n--- rr\n{}",
            lab.rr_log(),
            lab.birdc(&["show", "protocols"])
        )
    };

    // bird2 knocks over IPv6 within a second or two; GoBGP's first knock
    // comes 5-10 s after start (it clamps connect-retry to 5 s).
    wait_for("the IPv6 knock of c2 in the rr log", 15, || {
        lab.rr_log()
            .contains("<WARN> BGP: Unexpected connect from unknown address 2001:db8:88::2 (port ")
    });
    wait_for("the knock of g110 in the rr log", 20, || {
        lab.rr_log()
            .contains("<WARN> BGP: Unexpected connect from unknown address 10.88.0.110 (port ")
    });

    // Peer both by hand, as autopeer will: a protocol from the group's
    // template in the include, then configure.
    let include = format!(
        "protocol bgp g110 from {t} {{ neighbor 10.88.0.110 as 65000; }}\n\
         protocol bgp c2_v6 from {t6} {{ neighbor 2001:db8:88::2 as 65000; }}\n",
        t = lab.get("TEMPLATE"),
        t6 = lab.get("TEMPLATE6"),
    );
    std::fs::write(lab.get("RR_INCLUDE"), include).unwrap();
    let out = lab.birdc(&["configure"]);
    assert!(out.contains("Reconfigured"), "{out}");
    assert!(lab.established("g110", 20), "{}", dump());
    assert!(lab.established("c2_v6", 20), "{}", dump());
    // GoBGP agrees, through the lab's own helper.
    assert!(
        lab.established_on("g110", lab.get("RR_ADDR"), 10),
        "{}",
        dump()
    );
}
