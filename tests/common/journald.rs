//! A real systemd-journald outside PID 1, for the journal tests
//! (tests/journal.rs, tests/newcomer.rs): `Ns`, a private mount namespace
//! (tmpfs /run and /dev, `/dev/log` to journald's socket) held by a
//! `sleep` we started, and `Journald`, started inside it. Both are ended
//! by pid on drop; nothing is mounted outside the namespace.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autopeer::sources::journal::find_journalctl;

pub const JOURNALD: &str = "/lib/systemd/systemd-journald";
const WAIT: Duration = Duration::from_secs(10);

/// True when the journal tests can run: root, `tools` and journald's
/// binary ([`super::prereq::runnable`]: with `CI=true` a missing one is a
/// failure; otherwise the test skips with one line naming `what`).
pub fn journald_allowed(tools: &[&str], what: &str) -> bool {
    super::prereq::runnable(
        what,
        super::lab::missing_prerequisite(tools)
            .or_else(|| super::prereq::file(JOURNALD, "apt install systemd")),
    )
}

/// Mount namespace set-up; `$1` is the test's temp dir (mount points for
/// the old /dev), `$2` is `net` when the holder has its own network
/// namespace too (then 10.88.0.0/24 is local on its loopback). Prints
/// `ready` and stays as the namespace's holder.
pub const SETUP: &str = r#"set -e
if [ "$2" = net ]; then ip link set lo up; ip addr add 10.88.0.1/24 dev lo; fi
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/systemd/journal
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=755 tmpfs /var/log/journal; fi
mkdir -p "$1/olddev"
mount --rbind /dev "$1/olddev"
mount -t tmpfs -o mode=755 tmpfs /dev
for n in null zero full random urandom; do
  touch "/dev/$n"; mount --bind "$1/olddev/$n" "/dev/$n"
done
ln -s /run/systemd/journal/dev-log /dev/log
if [ -f /etc/machine-id ] && ! [ -s /etc/machine-id ]; then
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$1/machine-id"
  mount --bind "$1/machine-id" /etc/machine-id
fi
echo ready
exec sleep 3600
"#;

/// The private mount namespace, held by a `sleep` we started; killed by
/// pid on drop (the namespace's mounts go with its last process).
pub struct Ns {
    holder: Child,
}

impl Ns {
    /// With `net`, a network namespace too (for peers on 10.88.0.0/24).
    pub fn new(dir: &Path, net: bool) -> Ns {
        Ns::spawn(Command::new("unshare"), dir, net)
    }

    /// The private mount namespace inside the existing network namespace
    /// `netns` (`ip netns exec`, e.g. a lab's rr).
    pub fn in_netns(dir: &Path, netns: &str) -> Ns {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", netns, "unshare"]);
        Ns::spawn(c, dir, false)
    }

    fn spawn(mut unshare: Command, dir: &Path, net: bool) -> Ns {
        let mut holder = unshare
            .args(["--mount", "--propagation", "private"])
            .args(net.then_some("--net"))
            .args(["bash", "-c", SETUP, "setup"])
            .arg(dir)
            .arg(if net { "net" } else { "" })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn unshare");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "namespace set-up failed");
        Ns { holder }
    }

    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// A command run inside the namespace (nsenter execs it in place).
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid().to_string(), "-m", "--", program]);
        c
    }

    /// The namespace's path `p`, seen from outside.
    pub fn path(&self, p: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{p}", self.pid()))
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.path("/run/log/journal")
    }

    /// journalctl on the namespace's journal, from outside.
    pub fn journalctl(&self, args: &[&str]) -> String {
        let out = Command::new(find_journalctl().unwrap())
            .arg("--directory")
            .arg(self.journal_dir())
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until a BIRD entry mentioning `text` is in the journal.
    pub fn wait_in_journal(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self
            .journalctl(&["--output=cat", "SYSLOG_IDENTIFIER=bird"])
            .contains(text)
        {
            assert!(
                Instant::now() < deadline,
                "{text} never reached the journal"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A systemd-journald we started in the namespace, killed by pid on drop.
pub struct Journald {
    child: Child,
}

impl Journald {
    pub fn start(ns: &Ns, dir: &Path) -> Journald {
        let socket = ns.path("/run/systemd/journal/dev-log");
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::File::create(dir.join("journald.out")).unwrap();
        let child = ns
            .cmd(JOURNALD)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn systemd-journald");
        let deadline = Instant::now() + WAIT;
        while !socket.exists() || ns.journalctl(&["--lines=1", "--output=cat"]).is_empty() {
            assert!(
                Instant::now() < deadline,
                "journald did not come up: {}",
                std::fs::read_to_string(dir.join("journald.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Journald { child }
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
