//! FRR's zebra and nhrpd (Debian frr 8.4.4) in a network namespace the
//! test creates: [`Frr`] starts them as FRR does by default (user frr),
//! with their sockets, pid files and logs in one directory, and on drop
//! ends them by pid and deletes the namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::prereq;

pub const ZEBRA: &str = "/usr/lib/frr/zebra";
pub const NHRPD: &str = "/usr/lib/frr/nhrpd";
pub const VTYSH: &str = "/usr/bin/vtysh";

/// Root, zebra, nhrpd and user frr: the reason one is missing.
pub fn missing() -> Option<String> {
    prereq::root("FRR runs in a network namespace the test makes")
        .or_else(|| prereq::file(NHRPD, "apt install frr"))
        .or_else(|| prereq::file(ZEBRA, "apt install frr"))
        .or_else(|| {
            ids()
                .is_none()
                .then(|| "no user frr (apt install frr)".to_owned())
        })
}

/// uid and gid of user frr, from /etc/passwd.
pub fn ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("frr:"))?;
    let mut f = line.split(':').skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Processes in namespace `ns`, their files in `dir` (owned by user frr).
pub struct Frr {
    pub ns: String,
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl Frr {
    /// Creates namespace `ns` and `dir` (given to user frr: zebra, without
    /// a DAC override, writes its sockets there).
    pub fn new(ns: &str, dir: &Path) -> Frr {
        std::fs::create_dir_all(dir).unwrap();
        let (uid, gid) = ids().expect("user frr");
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
        let frr = Frr {
            ns: ns.to_owned(),
            dir: dir.to_owned(),
            children: Vec::new(),
        };
        frr.ip(&["netns", "add", ns]);
        frr
    }

    /// `ip ARGS`; panics unless it succeeds.
    pub fn ip(&self, args: &[&str]) {
        let st = Command::new("ip").args(args).status().unwrap();
        assert!(st.success(), "ip {args:?}");
    }

    /// Runs `args` inside the namespace, output to `dir/log`.
    pub fn spawn(&mut self, args: &[&str], log: &str) {
        let out = std::fs::File::create(self.dir.join(log)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Starts zebra, waits for its API socket, then nhrpd with `conf`.
    pub fn start_zebra_nhrpd(&mut self, conf: &Path) {
        let d = self.dir.display().to_string();
        let zapi = format!("{d}/zserv.api");
        let zebra_pid = format!("{d}/zebra.pid");
        self.spawn(
            &[
                ZEBRA,
                "-z",
                &zapi,
                "-i",
                &zebra_pid,
                "--vty_socket",
                &d,
                "-f",
                "/dev/null",
                "--log",
                "stdout",
            ],
            "zebra.log",
        );
        let t0 = Instant::now();
        while !Path::new(&zapi).exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "zebra did not start: {}",
                self.log("zebra.log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let nhrpd_pid = format!("{d}/nhrpd.pid");
        let conf = conf.to_str().unwrap();
        self.spawn(
            &[
                NHRPD,
                "-z",
                &zapi,
                "-i",
                &nhrpd_pid,
                "--vty_socket",
                &d,
                "-f",
                conf,
                "--log",
                "stdout",
            ],
            "nhrpd.log",
        );
    }

    /// nhrpd's vty socket.
    pub fn vty(&self) -> PathBuf {
        self.dir.join("nhrpd.vty")
    }

    /// The real vtysh, talking to this nhrpd only: its stdout and stderr.
    pub fn vtysh(&self, commands: &[&str]) -> String {
        let mut cmd = Command::new(VTYSH);
        cmd.arg("--vty_socket").arg(&self.dir).args(["-d", "nhrpd"]);
        for c in commands {
            cmd.args(["-c", c]);
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}
