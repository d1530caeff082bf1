//! Shared helpers of the namespace-lab tests (tests/lab*.rs): the skip
//! logic (CI=true turns a missing prerequisite into a failure), `Lab` (a
//! lab brought up by bird/lab and taken down on drop), `Daemon` (the
//! autopeer binary, killed by its pid on drop), `Watcher` (`autopeer watch
//! --json`), the autopeer config they share, and small waiting/reading
//! helpers.
//!
//! Test-only code: it may panic on a broken lab. It must not start
//! anything it does not end on drop, nor touch anything outside the lab's
//! temp directory and namespaces.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    if !rustix::process::geteuid().is_root() {
        return Some("not root".into());
    }
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} not installed"));
        }
    }
    None
}

/// True when the lab can run. With `CI=true` a missing prerequisite is a
/// failure (panic); otherwise the test skips with the one-line
/// `skipping {what}: {reason}`.
pub fn lab_allowed(tools: &[&str], what: &str) -> bool {
    match missing_prerequisite(tools) {
        None => true,
        Some(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but the namespace lab cannot run: {reason}")
        }
        Some(reason) => {
            eprintln!("skipping {what}: {reason}");
            false
        }
    }
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
        let out = self.script(&["start", node]);
        assert!(
            out.status.success(),
            "start {node}: {}",
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

/// The autopeer daemon, ended by its pid on drop.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// `autopeer -c CONFIG -v run`, stdout and stderr appended to LOG.
    pub fn start(config: &Path, log: &Path) -> Daemon {
        Daemon::spawn(config, log, true, &[])
    }

    /// [`Daemon::start`] through `prefix`, a program that execs its
    /// arguments in place (`nsenter -t PID -m --`), so the pid stays ours.
    pub fn start_with(prefix: &[&str], config: &Path, log: &Path) -> Daemon {
        Daemon::spawn(config, log, true, prefix)
    }

    /// `autopeer -c CONFIG run` (without `-v`), output appended to LOG.
    pub fn start_quiet(config: &Path, log: &Path) -> Daemon {
        Daemon::spawn(config, log, false, &[])
    }

    fn spawn(config: &Path, log: &Path, verbose: bool, prefix: &[&str]) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_autopeer"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_autopeer")),
        };
        cmd.arg("-c").arg(config);
        if verbose {
            cmd.arg("-v");
        }
        let child = cmd
            .arg("run")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start autopeer");
        Daemon { child }
    }

    /// The daemon's pid (nsenter execs it in place, so also with a prefix).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "autopeer exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("autopeer did not stop within 15 s of SIGTERM");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `autopeer watch --json`, killed by its pid on drop; its stdout lines
/// are collected by a thread.
pub struct Watcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watcher {
    pub fn start(socket: &Path) -> Watcher {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_autopeer"))
            .args(["-s", socket.to_str().unwrap(), "watch", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start autopeer watch");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                match l {
                    Ok(l) => sink.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        });
        Watcher { child, lines }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The lines so far that are JSON.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `autopeer -s SOCKET ARGS...`: its exit code (-1 when killed) and its
/// stdout followed by its stderr.
pub fn autopeer(socket: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_autopeer"))
        .arg("-s")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
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
/// is the host's own). With `CI=true` a missing root is a failure (.ci/run
/// prepares them all); otherwise the test skips with one line.
pub fn rr_bird_prepared(version: &str, what: &str) -> bool {
    let out = Command::new(repo().join("bird/roots"))
        .args(["path", version])
        .output()
        .expect("run bird/roots");
    if out.status.success() {
        return true;
    }
    let reason = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but BIRD {version} is missing: {reason}");
    }
    eprintln!("skipping {what}: {reason}");
    false
}

/// `autopeer -c CONFIG check`: whether it passed, and its stdout.
pub fn autopeer_check(config: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_autopeer"))
        .arg("-c")
        .arg(config)
        .arg("check")
        .output()
        .expect("run autopeer check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
