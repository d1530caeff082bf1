//! End to end with real BIRD in network namespaces (bird/lab), seen
//! through autopeer's control socket: `autopeer status` and
//! `birdc -s SOCKET show protocols` show the same roster with the
//! Established peers, `show groups`/`show sources` count them, `reload`
//! answers, and `autopeer watch --json` receives the `adding` events in
//! the order of the audit log.
//!
//! Needs root, bird2 and iproute2. With CI=true a missing prerequisite
//! fails the test; elsewhere it skips with a one-line reason. The Lab,
//! Daemon and Watcher helpers live in tests/common/lab.rs.

mod common;

use std::process::Command;
use std::time::Duration;

use common::daemon::{autopeer, Daemon, Watcher};
use common::lab::{lab_allowed, read, wait_for, write_config, Lab, LAB_TOOLS};

fn allowed() -> bool {
    lab_allowed(LAB_TOOLS, "namespace lab test")
}

/// Name Group Neighbor State Info of each peer row.
fn first_columns(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with("clients_"))
        .map(|l| l.split_whitespace().take(5).map(str::to_string).collect())
        .collect()
}

#[test]
fn status_birdc_and_watch_agree_end_to_end() {
    if !allowed() {
        return;
    }
    let lab = Lab::up(&["--clients", "2", "--no-start"]);
    let config = write_config(&lab, "off", false);
    let d = lab.dir.path().to_path_buf();
    let audit = d.join("audit.log");
    let daemon_log = d.join("autopeer.out");
    let sock = d.join("autopeer.ctl");
    let daemon = Daemon::start(&config, &daemon_log);
    let dump = || lab.dump(&[("audit", &audit), ("daemon", &daemon_log)]);
    wait_for("the control socket", 20, || {
        autopeer(&sock, &["status"]).0 == 0
    });
    let watcher = Watcher::start(&sock);
    // The watcher is subscribed once its (empty) dump has been sent; give
    // it a moment, then let the clients knock.
    std::thread::sleep(Duration::from_millis(500));
    for node in ["c2", "c3"] {
        lab.start(node);
    }
    let want = ["clients_10_88_0_2", "clients_10_88_0_3"];
    for proto in want {
        assert!(
            lab.established(proto, 60),
            "{proto} not Established\n{}",
            dump()
        );
    }

    // autopeer status: both peers, up Established, once the observer has polled.
    let mut status = String::new();
    wait_for("status to show both peers Established", 30, || {
        let (code, out) = autopeer(&sock, &["status"]);
        status = out;
        code == 0
            && first_columns(&status)
                .iter()
                .filter(|c| c[3] == "up" && c[4] == "Established")
                .count()
                == 2
    });
    assert!(status.starts_with("Name "), "{status}");
    let rows = first_columns(&status);
    assert_eq!(
        rows,
        vec![
            vec![want[0], "clients", "10.88.0.2", "up", "Established"],
            vec![want[1], "clients", "10.88.0.3", "up", "Established"],
        ],
        "{status}"
    );

    // birdc on autopeer's socket shows the same roster.
    let out = Command::new("birdc")
        .arg("-s")
        .arg(&sock)
        .args(["show", "protocols"])
        .output()
        .unwrap();
    let birdc = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{birdc}");
    assert!(birdc.starts_with("autopeer "), "{birdc}");
    assert_eq!(first_columns(&birdc), rows, "{birdc}\n---\n{status}");
    let out = Command::new("birdc")
        .arg("-s")
        .arg(&sock)
        .args(["show", "status"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Peers 2 (2 Established, 0 pending)"),
        "{out:?}"
    );

    // show peers all adds BIRD's neighbor AS (iBGP: the local AS).
    let (code, all) = autopeer(&sock, &["show", "peers", "all"]);
    assert_eq!(code, 0, "{all}");
    assert!(all.lines().next().unwrap().contains("Last-error"), "{all}");
    assert!(
        all.lines()
            .any(|l| l.starts_with(want[0]) && l.contains(" 65000")),
        "{all}"
    );

    let (code, groups) = autopeer(&sock, &["show", "groups"]);
    assert_eq!(code, 0, "{groups}");
    let g: Vec<&str> = groups.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(g[..3], ["clients", lab.get("TEMPLATE"), "2"], "{groups}");
    let (code, sources) = autopeer(&sock, &["show", "sources"]);
    assert_eq!(code, 0, "{sources}");
    let sightings: u64 = sources
        .lines()
        .find_map(|l| l.strip_prefix("sightings"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(sightings >= 2, "{sources}");
    let (code, reload) = autopeer(&sock, &["reload"]);
    assert_eq!((code, reload.trim()), (0, "Reconfigured"));

    // watch --json saw the adding events, in the audit log's order.
    let audit_order: Vec<String> = read(&audit)
        .lines()
        .filter_map(|l| l.split("adding neighbor ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .map(str::to_string)
        .collect();
    wait_for("watch to see both admissions", 10, || {
        watcher
            .lines()
            .iter()
            .filter(|l| l.contains("\"event\":\"adding\""))
            .count()
            >= 2
    });
    let watched: Vec<String> = watcher
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "adding")
        .map(|v| v["neighbor"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(watched, audit_order, "{:?}\n{}", watcher.lines(), dump());
    assert_eq!(watched.len(), 2);
    assert!(
        watcher
            .lines()
            .iter()
            .any(|l| l.contains("\"event\":\"state_changed\"") && l.contains("Established")),
        "no state change seen: {:?}",
        watcher.lines()
    );
    drop(watcher);
    daemon.stop();
}
