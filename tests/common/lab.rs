//! The namespace lab of tests (tests/lab*.rs) and benchmarks: its
//! prerequisites (through [`prereq::runnable`]), `Lab` (a lab brought up
//! by bird/lab and taken down on drop), the autopeer config the lab tests
//! share, and small waiting/reading helpers.
//!
//! Test-only code: it may panic on a broken lab. It must not start
//! anything it does not end on drop, nor touch anything outside the lab's
//! temp directory and namespaces.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::prereq;

/// The tools every lab test needs.
pub const LAB_TOOLS: &[&str] = &["bird", "birdc", "ip"];

/// The tools of the MD5/IPv6/GoBGP lab (`--password`, `--gobgp`).
pub const MD5_LAB_TOOLS: &[&str] = &["bird", "birdc", "ip", "ss", "gobgpd", "gobgp"];

/// This crate's directory.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// None when the lab can run (root, and every one of `tools` installed);
/// Some(reason) otherwise.
pub fn missing_prerequisite(tools: &[&str]) -> Option<String> {
    prereq::root("the lab makes namespaces").or_else(|| prereq::tools(tools))
}

/// True when the lab can run; else skip or, with `CI=true`, fail
/// ([`prereq::runnable`]).
pub fn lab_allowed(tools: &[&str], what: &str) -> bool {
    prereq::runnable(what, missing_prerequisite(tools))
}

/// A lab brought up by bird/lab; `down` runs on drop, pass or fail.
pub struct Lab {
    pub dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Lab {
    /// `bird/lab up DIR ARGS...`, then reads `bird/lab env`.
    pub fn up(args: &[&str]) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("aplab")
            .tempdir_in("/tmp")
            .unwrap();
        let mut lab = Lab {
            dir,
            env: HashMap::new(),
        };
        let out = lab.script(&[&["up"], args].concat());
        assert!(
            out.status.success(),
            "bird/lab up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = lab.script(&["env"]);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line.split_once('=') {
                // `env` prints bash `%q` values: '' is empty, spaces escaped.
                let v = if v == "''" {
                    String::new()
                } else {
                    v.replace("\\ ", " ")
                };
                lab.env.insert(k.to_string(), v);
            }
        }
        lab
    }

    /// `bird/lab CMD DIR REST...`.
    pub fn script(&self, args: &[&str]) -> Output {
        let (cmd, rest) = args.split_first().unwrap();
        Command::new(repo().join("bird/lab"))
            .arg(cmd)
            .arg(self.dir.path())
            .args(rest)
            .output()
            .expect("run bird/lab")
    }

    /// A value of `bird/lab env`; panics when the lab has no such key.
    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("bird/lab env has no {key}: {:?}", self.env))
    }

    pub fn path(&self, key: &str) -> PathBuf {
        PathBuf::from(self.get(key))
    }

    /// `bird/lab start NODE`, which must succeed.
    pub fn start(&self, node: &str) {
        self.must(&["start", node]);
    }

    /// `bird/lab stop NODE`, which must succeed.
    pub fn stop(&self, node: &str) {
        self.must(&["stop", node]);
    }

    /// `bird/lab CMD DIR REST...`, which must succeed.
    fn must(&self, args: &[&str]) {
        let out = self.script(args);
        assert!(
            out.status.success(),
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// stdout of `birdc` on the rr.
    pub fn birdc(&self, args: &[&str]) -> String {
        let out = self.script(&[&["birdc", "rr"], args].concat());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the rr's protocol PROTO is Established within SECS.
    pub fn established(&self, proto: &str, secs: u32) -> bool {
        self.established_on("rr", proto, secs)
    }

    /// Whether NODE's protocol (or GoBGP neighbor) PROTO is Established
    /// within SECS.
    pub fn established_on(&self, node: &str, proto: &str, secs: u32) -> bool {
        self.script(&["wait-established", node, proto, &secs.to_string()])
            .status
            .success()
    }

    /// stdout of CMD run inside NODE's namespace.
    pub fn exec(&self, node: &str, cmd: &[&str]) -> String {
        let out = self.script(&[&["exec", node], cmd].concat());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether CMD exits 0 inside NODE's namespace.
    pub fn exec_ok(&self, node: &str, cmd: &[&str]) -> bool {
        self.script(&[&["exec", node], cmd].concat())
            .status
            .success()
    }

    /// For failure messages: `--- NAME` and the file's text for each of
    /// `files`, then `--- rr` and the rr's `show protocols`.
    pub fn dump<P: AsRef<Path>>(&self, files: &[(&str, P)]) -> String {
        let mut out = String::new();
        for (name, path) in files {
            out.push_str(&format!("--- {name}\n{}\n", read(path.as_ref())));
        }
        out + "--- rr\n" + &self.birdc(&["show", "protocols"])
    }

    /// The rr's BIRD log so far.
    pub fn rr_log(&self) -> String {
        std::fs::read_to_string(self.get("RR_LOG")).unwrap_or_default()
    }

    /// The text of a TcpExt counter of the rr's namespace, read from
    /// /proc/net/netstat inside it; panics (with the file) when absent.
    fn tcp_ext_text(&self, name: &str) -> String {
        let text = self.exec("rr", &["cat", "/proc/net/netstat"]);
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            if !names.starts_with("TcpExt:") {
                continue;
            }
            let found = names
                .split_whitespace()
                .zip(values.split_whitespace())
                .find(|(n, _)| *n == name);
            if let Some((_, v)) = found {
                return v.to_owned();
            }
        }
        panic!("no TcpExt {name} in the rr's /proc/net/netstat:\n{text}")
    }

    /// A TcpExt counter of the rr's namespace: `tcp_ext("TCPMD5Unexpected")`
    /// is nstat's `TcpExtTCPMD5Unexpected`. Panics on a value that is not a
    /// number.
    pub fn tcp_ext(&self, name: &str) -> u64 {
        let v = self.tcp_ext_text(name);
        v.parse().unwrap_or_else(|_| panic!("{name} = {v}?"))
    }

    /// [`Lab::tcp_ext`], but a value that is not a number reads as 0.
    pub fn tcp_ext_or_zero(&self, name: &str) -> u64 {
        self.tcp_ext_text(name).parse().unwrap_or(0)
    }

    /// The `md5keys:` fields of the rr's BGP listeners (`ss -tlnie`), one
    /// per listener: `10.88.0.0/30,10.88.0.5/32,...`.
    pub fn listener_keys(&self) -> Vec<String> {
        self.exec("rr", &["ss", "-Htlnie", "sport = :179"])
            .lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("md5keys:"))
                    .map(str::to_owned)
            })
            .collect()
    }

    /// A plain (unsigned) TCP handshake from NODE to the rr's BGP port.
    pub fn unsigned_connect(&self, node: &str) -> bool {
        self.exec_ok(
            node,
            &[
                "timeout",
                "3",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{}/179", self.get("RR_ADDR")),
            ],
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.script(&["down"]);
        if !out.status.success() {
            eprintln!("bird/lab down: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// Polls COND every 100 ms; panics after SECS.
pub fn wait_for(what: &str, secs: u64, cond: impl FnMut() -> bool) {
    if !poll(secs, cond) {
        panic!("timed out after {secs} s waiting for {what}");
    }
}

/// [`wait_for`], and the panic message ends with `dump()`.
pub fn wait_for_dump(what: &str, secs: u64, dump: &dyn Fn() -> String, cond: impl FnMut() -> bool) {
    if !poll(secs, cond) {
        panic!("timed out after {secs} s waiting for {what}\n{}", dump());
    }
}

fn poll(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The file's text; empty when it cannot be read (yet).
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Writes `autopeer.toml` into the lab's directory and returns its path:
/// BIRD's socket, config, include and log from the lab, the given
/// `keyring` mode, group `clients` (TEMPLATE, GROUP_PREFIX) and, with
/// `ipv6_group`, group `clients6` (TEMPLATE6, GROUP_PREFIX6).
pub fn write_config(lab: &Lab, keyring: &str, ipv6_group: bool) -> PathBuf {
    let d = lab.dir.path();
    let mut config = format!(
        r#"[bird]
socket = "{ctl}"
config = "{conf}"
include = "{include}"
keyring = "{keyring}"

[agent]
socket = "{d}/autopeer.ctl"
state = "{d}/state.toml"
audit_log = "{d}/audit.log"
batch = "200ms"

[sources]
logs = ["{log}"]

[[group]]
name = "clients"
template = "{template}"
prefixes = ["{prefix}"]
neighbor = "internal"
"#,
        ctl = lab.get("RR_CTL"),
        conf = lab.get("RR_CONF"),
        include = lab.get("RR_INCLUDE"),
        log = lab.get("RR_LOG"),
        template = lab.get("TEMPLATE"),
        prefix = lab.get("GROUP_PREFIX"),
        d = d.display(),
    );
    if ipv6_group {
        config.push_str(&format!(
            r#"
[[group]]
name = "clients6"
template = "{template6}"
prefixes = ["{prefix6}"]
neighbor = "internal"
"#,
            template6 = lab.get("TEMPLATE6"),
            prefix6 = lab.get("GROUP_PREFIX6"),
        ));
    }
    let path = d.join("autopeer.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// True when `bird/roots` has prepared BIRD `version` (1.6, 2.17, 3.1; 2.0
/// is the host's own); else skip or, with `CI=true`, fail (.ci/run
/// prepares them all).
pub fn rr_bird_prepared(version: &str, what: &str) -> bool {
    prereq::runnable(what, missing_bird_root(version))
}

/// None when `bird/roots` has prepared BIRD `version`; else its reason.
pub fn missing_bird_root(version: &str) -> Option<String> {
    bird_root(version).err()
}

/// The root `bird/roots` prepared for BIRD `version` (`/` for 2.0), or
/// why there is none.
pub fn bird_root(version: &str) -> Result<PathBuf, String> {
    let out = Command::new(repo().join("bird/roots"))
        .args(["path", version])
        .output()
        .expect("run bird/roots");
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().into());
    }
    let reason = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(format!("BIRD {version} is missing: {reason}"))
}
