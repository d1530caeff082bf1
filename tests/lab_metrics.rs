//! Metrics end to end: the daemon beside a real BIRD in the namespace lab
//! (bird/lab), a real Prometheus (Debian's `prometheus`) scraping it every
//! second on loopback, and a real bird_exporter (Debian's
//! `prometheus-bird-exporter`) reading the lab's BIRD with description
//! labels, scraped by the same Prometheus. Everything is checked through
//! Prometheus' own HTTP query API (`/api/v1/query`): the admitted client
//! and the refused outsider are the right autopeer series, and BIRD's own
//! series for the admitted peer carry `autopeer="1"` and `group="clients"`.
//! The lab starts from an include an older autopeer wrote (the old
//! `description "autopeer GROUP ADDR"`): it loads, the next apply rewrites
//! it in the new form, and BIRD does not restart that peer's session.
//!
//! Needs root, bird2, iproute2, prometheus and prometheus-bird-exporter.
//! With CI=true a missing prerequisite fails the test; elsewhere it skips
//! with a one-line reason. Prometheus and the exporter are ended by their
//! pids, pass or fail, and keep their data in the lab's temp directory.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::bird::free_port;
use common::daemon::{autopeer_check, Daemon};
use common::lab::{lab_allowed, read, wait_for_dump, write_config, Lab, LAB_TOOLS};

const PROMETHEUS: &str = "prometheus";
const BIRD_EXPORTER: &str = "prometheus-bird-exporter";

/// A program this test started, killed by its pid on drop.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(cmd: &mut Command, log: &Path) -> Started {
    let out = std::fs::File::create(log).unwrap();
    Started(
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}")),
    )
}

/// `GET path` on `addr` with autopeer's own client: the body of a 200.
fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(autopeer::metrics::probe::get(
        addr,
        path,
        Duration::from_secs(5),
    )) {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

/// Percent-encoding of a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus' answer to an instant query: each series' labels and value.
fn query(prom: SocketAddr, q: &str) -> Vec<(serde_json::Value, f64)> {
    let Some(body) = get(prom, &format!("/api/v1/query?query={}", encode(q))) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).expect("query API answers JSON");
    assert_eq!(v["status"], "success", "{body}");
    v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let value = r["value"][1].as_str().unwrap().parse().unwrap();
            (r["metric"].clone(), value)
        })
        .collect()
}

/// The Since column of the rr's protocol `proto` (when its state last
/// changed).
fn since(lab: &Lab, proto: &str) -> String {
    let out = lab.birdc(&["show", "protocols", proto]);
    out.lines()
        .find(|l| l.starts_with(proto))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap_or_else(|| panic!("no row for {proto}:\n{out}"))
        .to_string()
}

/// The single value of `q`, if there is exactly one series.
fn one(prom: SocketAddr, q: &str) -> Option<f64> {
    match &query(prom, q)[..] {
        [(_, v)] => Some(*v),
        _ => None,
    }
}

#[test]
fn prometheus_sees_admitted_and_refused_peers_and_birds_own_series() {
    let tools: Vec<&str> = LAB_TOOLS
        .iter()
        .copied()
        .chain([PROMETHEUS, BIRD_EXPORTER])
        .collect();
    if !lab_allowed(&tools, "Prometheus lab test") {
        return;
    }
    // rr, c2 (a peer of an older autopeer), c3 (knocking), c4 (static),
    // c200 (outsider).
    let lab = Lab::up(&["--clients", "2", "--no-start"]);
    let d = lab.dir.path().to_path_buf();
    let include = lab.path("RR_INCLUDE");
    std::fs::write(
        &include,
        format!(
            "# Managed by autopeer: do not edit.\n\n\
             # autopeer: group clients, admitted 2026-11-23T06:55:02Z via bird-log\n\
             protocol bgp clients_10_88_0_2 from {} {{\n\
             \x20 neighbor 10.88.0.2 internal;\n\
             \x20 description \"autopeer clients 10.88.0.2\";\n\
             }}\n",
            lab.get("TEMPLATE")
        ),
    )
    .unwrap();
    assert!(lab.birdc(&["configure"]).contains("Reconfigured"));
    for node in ["c2", "c4", "c200"] {
        lab.start(node);
    }
    assert!(
        lab.established("clients_10_88_0_2", 60),
        "c2 not Established"
    );
    let c2_since = since(&lab, "clients_10_88_0_2");
    let at = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
    let (metrics, prom, exporter) = (at(free_port()), at(free_port()), at(free_port()));

    let config = write_config(&lab, "off", false);
    let mut text = read(&config);
    text = text.replace("[agent]\n", &format!("[agent]\nmetrics = \"{metrics}\"\n"));
    std::fs::write(&config, text).unwrap();
    let (ok, out) = autopeer_check(&config);
    assert!(ok, "autopeer check failed:\n{out}");
    assert!(out.contains(&format!("http://{metrics}/metrics")), "{out}");
    let daemon_log = d.join("autopeer.out");
    let daemon = Daemon::start(&config, &daemon_log);

    let _exporter = start(
        Command::new(BIRD_EXPORTER)
            .arg("-bird.v2")
            .arg(format!("-bird.socket={}", lab.get("RR_CTL")))
            .arg("-format.description-labels")
            .arg(format!("-web.listen-address={exporter}")),
        &d.join("bird_exporter.log"),
    );
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n\
             \x20 - job_name: autopeer\n    static_configs:\n      - targets: [\"{metrics}\"]\n\
             \x20 - job_name: bird\n    static_configs:\n      - targets: [\"{exporter}\"]\n"
        ),
    )
    .unwrap();
    let _prometheus = start(
        Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                d.join("prometheus").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .arg("--log.level=warn"),
        &d.join("prometheus.log"),
    );
    let dump = || {
        format!(
            "{}\n--- autopeer /metrics\n{}\n--- bird_exporter\n{}\n--- prometheus log\n{}\n--- prometheus targets\n{}",
            lab.dump(&[("daemon", &daemon_log)]),
            get(metrics, "/metrics").unwrap_or_default(),
            read(&d.join("bird_exporter.log")),
            read(&d.join("prometheus.log")),
            get(prom, "/api/v1/targets").unwrap_or_default(),
        )
    };

    lab.start("c3");
    assert!(
        lab.established("clients_10_88_0_3", 60),
        "c3 not Established\n{}",
        dump()
    );
    wait_for_dump("Prometheus to scrape both targets", 60, &dump, || {
        one(prom, "sum(up)") == Some(2.0)
    });

    // The admitted client and the older one: one admission, two
    // Established peers.
    wait_for_dump("the peers in Prometheus", 60, &dump, || {
        one(
            prom,
            r#"autopeer_peers{group="clients",state="up",bgp_state="Established"}"#,
        ) == Some(2.0)
    });
    assert_eq!(
        one(prom, r#"autopeer_admissions_total{group="clients"}"#),
        Some(1.0),
        "{}",
        dump()
    );
    // The outsider knocks again and again: refused as no_group, with no
    // group label, and never a peer.
    wait_for_dump("the outsider's refusal in Prometheus", 60, &dump, || {
        one(prom, r#"autopeer_refusals_total{kind="no_group"}"#).is_some_and(|v| v >= 1.0)
    });
    let refused = query(prom, r#"autopeer_refusals_total{kind="no_group"}"#);
    assert_eq!(refused[0].0.get("group"), None, "{refused:?}");
    assert_eq!(
        one(prom, "sum(autopeer_peers)"),
        Some(2.0),
        "only c2 and c3 are peers\n{}",
        dump()
    );
    assert_eq!(one(prom, "autopeer_bird_up"), Some(1.0), "{}", dump());
    assert!(
        one(prom, "autopeer_configure_duration_seconds_count").is_some_and(|v| v >= 1.0),
        "{}",
        dump()
    );
    assert!(
        query(prom, "{__name__=~\"autopeer_.*\"}")
            .iter()
            .all(|(m, _)| !m.to_string().contains("10.88.0.")),
        "an address in an autopeer label\n{}",
        dump()
    );

    // BIRD's own series for both protocols, through bird_exporter's
    // description labels: c3's include block was written in the new form,
    // and c2's rewritten in it by the same apply, without a restart.
    for proto in ["clients_10_88_0_3", "clients_10_88_0_2"] {
        wait_for_dump("bird_exporter's labelled series", 30, &dump, || {
            one(
                prom,
                &format!(r#"bird_protocol_up{{name="{proto}",autopeer="1",group="clients"}}"#),
            ) == Some(1.0)
        });
    }
    assert!(!read(&include).contains("autopeer clients"), "{}", dump());
    assert_eq!(
        since(&lab, "clients_10_88_0_2"),
        c2_since,
        "the new description restarted c2's session\n{}",
        dump()
    );
    // The operator's own protocols (no such description) keep their
    // series: the extra labels do not break the exporter's other series.
    assert_eq!(
        one(
            prom,
            &format!("bird_protocol_up{{name=\"{}\"}}", lab.get("STATIC_PROTO"))
        ),
        Some(1.0),
        "{}",
        dump()
    );
    daemon.stop();
}
