//! End to end over a real link-local BGP session: two network namespaces
//! joined by a veth pair, a real BIRD in each, the autopeer daemon
//! following the first one's log.
//!
//! The client dials the server's link-local address; the server's group has
//! a link-local prefix, an `interface`, `neighbor = "internal"` and an iBGP
//! template without `direct`. BIRD refuses such a protocol unless its block
//! says `direct;` ("Multihop BGP cannot be used with link-local
//! addresses"), so the session coming up proves the rendered block carries
//! what a link-local peer needs.
//!
//! Needs root, bird2 and iproute2. With CI=true a missing prerequisite
//! fails the test; elsewhere it skips with a one-line reason. Everything it
//! creates (two namespaces, the veth pair, two BIRDs, the daemon) is
//! removed on drop, pass or fail, BIRDs and the daemon by their pids.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::daemon::{autopeer_check, Daemon};
use common::lab::{lab_allowed, read, wait_for_dump};

/// Two namespaces and a veth pair, deleted on drop.
struct Link {
    /// Namespace of the server (its BIRD is followed by autopeer).
    server: String,
    client: String,
    /// The veth end in each namespace.
    server_if: String,
    client_if: String,
    birds: Vec<Child>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Link {
    fn up() -> Link {
        let id = std::process::id() % 100_000;
        let link = Link {
            server: format!("apll{id}s"),
            client: format!("apll{id}c"),
            // Starts with a non-hex letter: the name keeps it as it is.
            server_if: format!("ll{id}s"),
            client_if: format!("ll{id}c"),
            birds: Vec::new(),
        };
        ip(&["netns", "add", &link.server]);
        ip(&["netns", "add", &link.client]);
        ip(&[
            "link",
            "add",
            &link.server_if,
            "netns",
            &link.server,
            "type",
            "veth",
            "peer",
            "name",
            &link.client_if,
            "netns",
            &link.client,
        ]);
        for (ns, dev, addr) in [
            (&link.server, &link.server_if, "fe80::a/64"),
            (&link.client, &link.client_if, "fe80::b/64"),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", addr, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        link
    }

    /// Starts `bird -f` in `ns` on DIR/NAME.conf, with its socket there.
    fn bird(&mut self, ns: &str, dir: &Path, name: &str, conf: &str) -> PathBuf {
        let conf_path = dir.join(format!("{name}.conf"));
        let ctl = dir.join(format!("{name}.ctl"));
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "/usr/sbin/bird", "-f", "-c"])
            .arg(&conf_path)
            .arg("-s")
            .arg(&ctl)
            .arg("-P")
            .arg(dir.join(format!("{name}.pid")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap())
            .spawn()
            .expect("start bird");
        self.birds.push(child);
        wait_for_dump(
            &format!("{name}'s control socket"),
            10,
            &|| read(&dir.join(format!("{name}.stderr"))),
            || std::os::unix::net::UnixStream::connect(&ctl).is_ok(),
        );
        ctl
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for b in &mut self.birds {
            // `ip netns exec` execs bird: this pid is BIRD's.
            let _ = b.kill();
            let _ = b.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.server])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client])
            .status();
    }
}

fn birdc(ctl: &Path, args: &[&str]) -> String {
    let out = Command::new("birdc")
        .arg("-s")
        .arg(ctl)
        .args(args)
        .output()
        .expect("birdc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// See: issue 10, finding 5: BIRD rejected every admission of such a peer.
#[test]
fn link_local_ibgp_peer_comes_up_with_a_template_without_direct() {
    if !lab_allowed(&["ip", "bird", "birdc"], "link-local lab test") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("apll")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path().display().to_string();
    let mut link = Link::up();
    let include = dir.path().join("autopeer.conf");
    std::fs::write(&include, autopeer::bird::render::render(&[]).unwrap()).unwrap();
    let server_ctl = link.bird(
        &link.server.clone(),
        dir.path(),
        "server",
        &format!(
            r#"log "{d}/server.log" all;
router id 10.0.0.1;
protocol device {{ scan time 1; }}
template bgp IBGP6 {{
  local as 65000;
  neighbor internal;
  connect delay time 1;
  ipv6 {{ import all; export none; }};
}}
# BIRD listens only while some BGP protocol runs: this one never connects.
protocol bgp keep_listening from IBGP6 {{ neighbor 2001:db8::ffff internal; }}
include "{d}/autopeer.conf";
"#
        ),
    );
    let client_if = link.client_if.clone();
    link.bird(
        &link.client.clone(),
        dir.path(),
        "client",
        &format!(
            r#"router id 10.0.0.2;
protocol device {{ scan time 1; }}
protocol bgp server {{
  local as 65000;
  neighbor fe80::a%{client_if} internal;
  direct;
  connect delay time 1;
  connect retry time 1;
  ipv6 {{ import all; export none; }};
}}
"#
        ),
    );
    let config = dir.path().join("autopeer.toml");
    std::fs::write(
        &config,
        format!(
            r#"[bird]
socket = "{d}/server.ctl"
config = "{d}/server.conf"
include = "{d}/autopeer.conf"
keyring = "off"

[agent]
socket = "{d}/autopeer.ctl"
state = "{d}/state.toml"
audit_log = "{d}/audit.log"
batch = "200ms"

[sources]
logs = ["{d}/server.log"]

[[group]]
name = "ll"
template = "IBGP6"
prefixes = ["fe80::/64"]
interface = "{server_if}"
neighbor = "internal"
"#,
            server_if = link.server_if
        ),
    )
    .unwrap();
    let (ok, check_out) = autopeer_check(&config);
    assert!(ok, "{check_out}");
    let daemon_log = dir.path().join("autopeer.out");
    let daemon = Daemon::start(&config, &daemon_log);
    let name =
        autopeer::bird::render::peer_name("ll", "fe80::b".parse().unwrap(), Some(&link.server_if));
    let dump = || {
        format!(
            "audit:\n{}\ndaemon:\n{}\ninclude:\n{}\nserver log:\n{}",
            read(&dir.path().join("audit.log")),
            read(&daemon_log),
            read(&include),
            read(&dir.path().join("server.log")),
        )
    };
    wait_for_dump(&format!("{name} Established"), 60, &dump, || {
        birdc(&server_ctl, &["show", "protocols", &name]).contains("Established")
    });
    assert!(read(&include).contains("  direct;\n"), "{}", dump());
    assert!(
        !read(&dir.path().join("audit.log")).contains("rejected by BIRD"),
        "{}",
        dump()
    );
    daemon.stop();
}
