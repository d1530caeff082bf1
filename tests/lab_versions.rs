//! The BIRD version matrix: the end-to-end lab with the route reflector on
//! real BIRD 1.6.8, 2.0.12, 2.17.x and 3.1.x (bird/roots prepares them;
//! .ci/run does so once per run). Clients stay bird2. For each version:
//! `autopeer check` passes, a knocking client is admitted and Established,
//! the outsider never appears, a restart keeps the include byte for byte,
//! and a knock from the address of a *disabled* protocol (BIRD 3.0-3.2 log
//! it as "Unexpected connect", 2.x stays silent) neither admits twice nor
//! writes an audit line per knock.
//!
//! Needs root, bird2, iproute2, util-linux (unshare) and the prepared roots.
//! With CI=true a missing prerequisite fails the test; elsewhere it skips
//! with a one-line reason.

mod common;

use std::time::Duration;

use common::daemon::{autopeer_check, Daemon};
use common::lab::{
    lab_allowed, read, rr_bird_prepared, wait_for_dump, write_config, Lab, LAB_TOOLS, MD5_LAB_TOOLS,
};

const VERSION_TOOLS: &[&str] = &["bird", "birdc", "ip", "unshare", "chroot"];

/// Count of `needle` in the rr's BIRD log.
fn log_count(lab: &Lab, needle: &str) -> usize {
    lab.rr_log().matches(needle).count()
}

fn matrix(version: &str, greeting: &str) {
    let what = format!("BIRD {version} version matrix");
    if !lab_allowed(LAB_TOOLS, &what)
        || !lab_allowed(VERSION_TOOLS, &what)
        || !rr_bird_prepared(version, &what)
    {
        return;
    }
    // rr + c2, c3 (knocking; c3 started last), c4 (static), c200
    // (outsider).
    let lab = Lab::up(&["--rr-bird", version, "--clients", "2", "--no-start"]);
    for node in ["c2", "c4", "c200"] {
        lab.start(node);
    }
    assert_eq!(lab.get("RR_BIRD"), version);
    let status = lab.birdc(&["show", "status"]);
    assert!(
        status.contains(greeting),
        "rr is not BIRD {greeting}:\n{status}"
    );

    let config = write_config(&lab, "off", false);
    let d = lab.dir.path().to_path_buf();
    let audit = d.join("audit.log");
    let include = lab.path("RR_INCLUDE");
    let daemon_log = d.join("autopeer.out");
    let (ok, out) = autopeer_check(&config);
    assert!(ok, "autopeer check failed on BIRD {version}:\n{out}");

    let daemon = Daemon::start(&config, &daemon_log);
    let dump = || {
        lab.dump(&[
            ("audit", &audit),
            ("daemon", &daemon_log),
            ("include", &include),
            ("rr bird.log", &lab.path("RR_LOG")),
        ])
    };

    // The knocking client is admitted and comes up, on both ends.
    assert!(
        lab.established("clients_10_88_0_2", 60),
        "BIRD {version}: clients_10_88_0_2 not Established\n{}",
        dump()
    );
    assert!(lab.established_on("c2", "to_rr", 30), "{}", dump());
    // The outsider knocks too, but is refused and never appears.
    wait_for_dump("the outsider's refusal", 30, &dump, || {
        read(&audit).contains("refusing neighbor 10.88.0.200")
    });
    assert!(
        !lab.birdc(&["show", "protocols"]).contains("10_88_0_200"),
        "{}",
        dump()
    );
    assert!(!read(&include).contains("10.88.0.200"), "{}", dump());
    // The static neighbor stays the operator's.
    assert!(lab.established(lab.get("STATIC_PROTO"), 30), "{}", dump());
    assert!(!read(&include).contains("10.88.0.4"), "{}", dump());

    // A restart keeps the include byte for byte, with no new admission.
    let before = read(&include);
    daemon.stop();
    let daemon = Daemon::start(&config, &daemon_log);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        read(&include),
        before,
        "restart changed the include\n{}",
        dump()
    );
    assert_eq!(
        read(&audit).matches("adding neighbor").count(),
        1,
        "{}",
        dump()
    );
    assert!(lab.established("clients_10_88_0_2", 20), "{}", dump());

    // An operator's runtime `disable` survives autopeer's next configure
    // (docs/facts.md fact 9), read from this version's replies.
    let out = lab.birdc(&["disable", "clients_10_88_0_2"]);
    assert!(out.contains("disabled"), "{out}");
    lab.start("c3");
    assert!(lab.established("clients_10_88_0_3", 60), "{}", dump());
    wait_for_dump("the kept-disabled audit line", 10, &dump, || {
        read(&audit).contains("kept clients_10_88_0_2 disabled across configure")
    });
    let row = lab.birdc(&["show", "protocols", "clients_10_88_0_2"]);
    assert!(
        row.lines()
            .any(|l| l.starts_with("clients_10_88_0_2")
                && l.split_whitespace().nth(3) == Some("down")),
        "BIRD {version}: the operator's disable was undone\n{row}\n{}",
        dump()
    );
    let before = read(&include);

    // Knocks from the address of a disabled protocol: the static neighbor
    // configured `disabled;` in bird.conf (BIRD 3.1 logs its knocks as
    // unknown). Its client redials every ~2 s. One admitted peer stays up:
    // with every BGP protocol down BIRD closes its listener (docs/facts.md
    // fact 8) and nobody could knock: c3 keeps it open.
    let knock = "Unexpected connect from unknown address 10.88.0.4 ";
    let knocks0 = log_count(&lab, knock);
    let rr_conf = lab.path("RR_CONF");
    let opening = format!("protocol bgp {} {{\n", lab.get("STATIC_PROTO"));
    let text = read(&rr_conf);
    assert!(text.contains(&opening), "{text}");
    std::fs::write(
        &rr_conf,
        text.replace(&opening, &format!("{opening}  disabled;\n")),
    )
    .unwrap();
    let out = lab.birdc(&["configure"]);
    assert!(out.contains("Reconfigur"), "{out}");
    let audit_before = read(&audit).lines().count();
    if version.starts_with("3.") {
        // BIRD 3.1 logs every knock for a protocol configured `disabled;`
        // as unknown: wait for several.
        wait_for_dump(
            "BIRD 3 logging knocks of a disabled protocol",
            30,
            &dump,
            || log_count(&lab, knock) >= knocks0 + 3,
        );
        // autopeer follows the log within milliseconds; give it a second.
        std::thread::sleep(Duration::from_secs(1));
    } else {
        std::thread::sleep(Duration::from_secs(6));
        assert_eq!(
            log_count(&lab, knock),
            knocks0,
            "BIRD {version} is expected to close these connections silently\n{}",
            dump()
        );
    }
    let audit_text = read(&audit);
    let new_lines: Vec<&str> = audit_text.lines().skip(audit_before).collect();
    assert!(
        !audit_text.contains("adding neighbor 10.88.0.4"),
        "the disabled static neighbor was admitted as a duplicate\n{}",
        dump()
    );
    assert!(
        new_lines.iter().filter(|l| l.contains("10.88.0.4")).count() <= 1,
        "an audit line per knock of a disabled static protocol: {new_lines:#?}\n{}",
        dump()
    );
    assert_eq!(read(&include), before, "{}", dump());
    assert!(lab.established("clients_10_88_0_3", 5), "{}", dump());
    daemon.stop();
}

#[test]
fn rr_bird_1_6() {
    matrix("1.6", "BIRD 1.6.8");
}

#[test]
fn rr_bird_2_0() {
    matrix("2.0", "BIRD 2.0.12");
}

#[test]
fn rr_bird_2_17() {
    matrix("2.17", "BIRD 2.17.");
}

#[test]
fn rr_bird_3_1() {
    matrix("3.1", "BIRD 3.1.");
}

const PASSWORD: &str = "lab-versions-md5";

/// The MD5 group on each version: the keyring keys the rr BIRD's own
/// listener (pidfd_getfd), the signing client is admitted and
/// Established, the signing outsider never reaches the roster, and after
/// BIRD is stopped and started again the new listener is keyed again and
/// the client comes back.
fn md5_matrix(version: &str) {
    let what = format!("BIRD {version} MD5 version matrix");
    if !lab_allowed(MD5_LAB_TOOLS, &what)
        || !lab_allowed(VERSION_TOOLS, &what)
        || !rr_bird_prepared(version, &what)
    {
        return;
    }
    let lab = Lab::up(&[
        "--rr-bird",
        version,
        "--clients",
        "1",
        "--password",
        PASSWORD,
    ]);
    let config = write_config(&lab, "auto", false);
    let d = lab.dir.path().to_path_buf();
    let audit = d.join("audit.log");
    let include = lab.path("RR_INCLUDE");
    let daemon_log = d.join("autopeer.out");
    let dump = || {
        lab.dump(&[
            ("audit", &audit),
            ("daemon", &daemon_log),
            ("include", &include),
            ("rr bird.log", &lab.path("RR_LOG")),
        ]) + "\n--- listener keys\n"
            + &lab.listener_keys().join("\n")
    };
    assert!(lab.established(lab.get("STATIC_PROTO"), 20), "{}", dump());
    let (ok, check_out) = autopeer_check(&config);
    assert!(ok, "BIRD {version}: check failed:\n{check_out}");
    assert!(!check_out.contains(PASSWORD), "{check_out}");

    let daemon = Daemon::start_quiet(&config, &daemon_log);
    wait_for_dump("a prefix key on the listener", 15, &dump, || {
        !lab.listener_keys().is_empty()
    });
    assert!(
        lab.established("clients_10_88_0_2", 40),
        "BIRD {version}: clients_10_88_0_2 not Established\n{}",
        dump()
    );
    assert!(!read(&include).contains("10.88.0.200"), "{}", dump());
    assert!(!read(&audit).contains("10.88.0.200"), "{}", dump());

    // BIRD restarts: new pid, new listener; keyed again, client back.
    let out = lab.script(&["stop", "rr"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.start("rr");
    wait_for_dump("the new listener keyed", 20, &dump, || {
        !lab.listener_keys().is_empty()
    });
    assert!(
        lab.established("clients_10_88_0_2", 40),
        "BIRD {version}: not back after BIRD's restart\n{}",
        dump()
    );
    assert_eq!(
        read(&audit).matches("adding neighbor").count(),
        1,
        "{}",
        dump()
    );
    daemon.stop();
}

#[test]
fn md5_rr_bird_1_6() {
    md5_matrix("1.6");
}

#[test]
fn md5_rr_bird_2_0() {
    md5_matrix("2.0");
}

#[test]
fn md5_rr_bird_2_17() {
    md5_matrix("2.17");
}

#[test]
fn md5_rr_bird_3_1() {
    md5_matrix("3.1");
}

/// BIRD 1.6 runs IPv6 as a second daemon, bird6, with its own config,
/// socket and log: one autopeer per daemon (as `autopeer@.service` does),
/// each with its own group. Both admit their client's knock and reach
/// Established; bird6's peer is written `neighbor ADDR as N;`.
#[test]
fn bird6_gets_its_own_autopeer() {
    let what = "BIRD 1.6 bird6 version matrix";
    if !lab_allowed(LAB_TOOLS, what)
        || !lab_allowed(VERSION_TOOLS, what)
        || !rr_bird_prepared("1.6", what)
    {
        return;
    }
    let lab = Lab::up(&["--rr-bird", "1.6", "--ipv6", "--clients", "1"]);
    let d = lab.dir.path().to_path_buf();
    let config4 = write_config(&lab, "off", false);
    let config6 = d.join("autopeer6.toml");
    std::fs::write(
        &config6,
        format!(
            "[bird]\nsocket = \"{}\"\nconfig = \"{}\"\ninclude = \"{}\"\nkeyring = \"off\"\n\
             [agent]\nsocket = \"{d}/autopeer6.ctl\"\nstate = \"{d}/state6.toml\"\n\
             audit_log = \"{d}/audit6.log\"\nbatch = \"200ms\"\n\
             [sources]\nlogs = [\"{}\"]\n\
             [[group]]\nname = \"clients6\"\ntemplate = \"{}\"\nprefixes = [\"{}\"]\nneighbor = \"internal\"\n",
            lab.get("RR6_CTL"),
            lab.get("RR6_CONF"),
            lab.get("RR6_INCLUDE"),
            lab.get("RR6_LOG"),
            lab.get("TEMPLATE6"),
            lab.get("GROUP_PREFIX6"),
            d = d.display(),
        ),
    )
    .unwrap();
    for config in [&config4, &config6] {
        let (ok, out) = autopeer_check(config);
        assert!(ok, "check {}:\n{out}", config.display());
    }
    let (audit4, audit6) = (d.join("audit.log"), d.join("audit6.log"));
    let (include4, include6) = (lab.path("RR_INCLUDE"), lab.path("RR6_INCLUDE"));
    let (log4, log6) = (d.join("autopeer.out"), d.join("autopeer6.out"));
    let dump = || {
        lab.dump(&[
            ("audit", &audit4),
            ("audit6", &audit6),
            ("daemon6", &log6),
            ("include6", &include6),
            ("bird6 log", &lab.path("RR6_LOG")),
        ]) + "--- rr6\n"
            + &String::from_utf8_lossy(&lab.script(&["birdc", "rr6", "show", "protocols"]).stdout)
    };
    let d4 = Daemon::start(&config4, &log4);
    let d6 = Daemon::start(&config6, &log6);
    assert!(lab.established("clients_10_88_0_2", 60), "{}", dump());
    assert!(
        lab.established_on("rr6", "clients6_2001_db8_88__2", 60),
        "{}",
        dump()
    );
    assert!(lab.established_on("c2", "to_rr6", 20), "{}", dump());
    assert!(
        read(&include6).contains("  neighbor 2001:db8:88::2 as 65000;\n"),
        "{}",
        dump()
    );
    // Each autopeer owns only its daemon's family.
    assert!(!read(&include4).contains("2001:db8"), "{}", dump());
    assert!(!read(&include6).contains("10.88.0."), "{}", dump());
    wait_for_dump("bird6's outsider refused", 30, &dump, || {
        read(&audit6).contains("refusing neighbor 2001:db8:88::200")
    });
    assert!(!read(&include6).contains("2001:db8:88::200"), "{}", dump());
    d4.stop();
    d6.stop();
}
