//! User-Mode Linux: runs a payload (a bash script, or a program with
//! arguments) as the only job of a UML kernel built with the features this
//! host's kernel lacks (GRE, TCP-AO, ...; `scripts/uml`), and brings its
//! verdict and logs back.
//!
//! The kernel boots with the host's filesystem as its root, read-only
//! (`rootfstype=hostfs rootflags=/ ro`), so the host's BIRD, FRR, python3
//! and this crate's build run unchanged inside. PID 1 is a small init
//! script (written per run, see [`INIT`]) that mounts proc, sysfs,
//! devtmpfs and tmpfs on /tmp, /run, /var/tmp and /dev/shm (so `ip netns`,
//! pid files and sockets stay inside UML), then mounts the run directory
//! read-write at the same path as on the host, brings up loopback, runs the
//! payload with its output in `RUN/output`, writes its exit status to
//! `RUN/status` and powers off. The payload may write only there and on
//! those tmpfs mounts. Namespaces the payload makes exist only inside UML.
//!
//! The host side kills the whole UML process group (its pid, which this
//! helper started) after the timeout, and always once UML has exited, so no
//! UML helper process outlives a test. Timings inside UML mean nothing.
//!
//! Finding the kernel: `$AUTOPEER_UML_KERNEL`, else the cache of
//! `scripts/uml path`. Missing kernel: skip with one line, or under
//! `CI=true` fail ([`prereq::runnable`]); `.ci/run` builds it.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{self as rp, WaitId, WaitIdOptions};

use super::prereq;

/// Guest memory. UML maps it from a file in `$TMPDIR` (see [`Uml::run`]).
const MEM_MB: u64 = 1024;

/// A UML kernel and the settings of the next runs.
#[derive(Debug, Clone)]
pub struct Uml {
    kernel: PathBuf,
    timeout: Duration,
    files: Vec<(String, Vec<u8>)>,
}

/// What one run left behind.
#[derive(Debug)]
pub struct Run {
    /// The payload's exit status; None when it never finished (timeout,
    /// kernel panic, init failure).
    pub status: Option<i32>,
    /// True when the host killed UML at the timeout.
    pub timed_out: bool,
    /// The payload's stdout and stderr (`RUN/output`).
    pub output: String,
    /// UML's console: the kernel's messages and init's.
    pub console: String,
    /// UML's pid, also its process group's id (killed after the run).
    pub pid: u32,
    /// The run directory; removed on drop unless `AUTOPEER_UML_KEEP=1`.
    pub dir: tempfile::TempDir,
}

impl Run {
    /// True when the payload exited 0.
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }

    /// Panics, showing the payload's output and the console's end, unless
    /// the payload exited 0.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.ok(), "UML payload failed: {}", self.report());
    }

    /// Status, output, and the last lines of the console, for a panic.
    pub fn report(&self) -> String {
        let console: Vec<&str> = self.console.lines().collect();
        let tail = console[console.len().saturating_sub(40)..].join("\n");
        format!(
            "status {:?}{}\n--- output ---\n{}\n--- console (last 40 lines) ---\n{}",
            self.status,
            if self.timed_out { " (timed out)" } else { "" },
            self.output,
            tail
        )
    }

    /// Lines `CHECK NAME ok|fail DETAIL` the payload printed (see
    /// [`CHECK_FN`]), as (name, passed, detail).
    pub fn checks(&self) -> Vec<(String, bool, String)> {
        self.output
            .lines()
            .filter_map(|l| l.strip_prefix("CHECK "))
            .filter_map(|l| {
                let mut f = l.splitn(3, ' ');
                let name = f.next()?.to_owned();
                let ok = f.next()? == "ok";
                Some((name, ok, f.next().unwrap_or("").to_owned()))
            })
            .collect()
    }

    /// Panics unless the payload reported check `name` as passed.
    #[track_caller]
    pub fn assert_check(&self, name: &str) {
        match self.checks().into_iter().find(|(n, _, _)| n == name) {
            Some((_, true, _)) => {}
            Some((_, false, detail)) => {
                panic!("UML check {name} failed: {detail}\n{}", self.report())
            }
            None => panic!("UML check {name} never ran\n{}", self.report()),
        }
    }
}

/// A bash function payloads may paste in: `check NAME CMD...` runs CMD and
/// prints `CHECK NAME ok` or `CHECK NAME fail <CMD's output>`, returning
/// CMD's status ([`Run::checks`]).
pub const CHECK_FN: &str = r#"check() {
  local name="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then echo "CHECK $name ok"; return 0
  else echo "CHECK $name fail $(echo "$out" | tr '\n' ' ' | cut -c1-400)"; return 1; fi
}
"#;

/// PID 1 inside UML. `@RUN@` and `@PAYLOAD@` are replaced per run (single
/// quoted shell words).
const INIT: &str = r#"#!/bin/sh
# PID 1 of a UML test run (tests/common/uml.rs). Root is the host's
# filesystem, read-only; everything writable is tmpfs or the run directory.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN=@RUN@
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
for d in /tmp /run /var/tmp /var/lib/frr /var/log/frr; do
  [ -d "$d" ] && mount -t tmpfs -o mode=0755 tmpfs "$d"
done
chmod 1777 /tmp /var/tmp
# frr's daemons write their state and logs as user frr.
chown frr:frr /var/lib/frr /var/log/frr 2>/dev/null
mkdir -p "$RUN"
if ! mount -t hostfs -o "$RUN" hostfs "$RUN"; then
  echo "uml-init: cannot mount the run directory $RUN" > /dev/console
  echo o > /proc/sysrq-trigger
fi
ip link set lo up
hostname uml
export HOME=/tmp TMPDIR=/tmp UML_RUN="$RUN"
cd "$RUN"
echo "uml-init: payload starts" > /dev/console
@PAYLOAD@ > "$RUN/output" 2>&1 < /dev/null
echo $? > "$RUN/status.part"
mv "$RUN/status.part" "$RUN/status"
echo "uml-init: payload exited $(cat "$RUN/status")" > /dev/console
sync
echo o > /proc/sysrq-trigger
sleep 10
poweroff -f
"#;

/// The kernel, or why there is none.
pub fn kernel() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("AUTOPEER_UML_KERNEL") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("AUTOPEER_UML_KERNEL={} missing", path.display()))
        };
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/uml");
    let out = Command::new(&script)
        .arg("path")
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && !path.is_empty() {
        Ok(PathBuf::from(path))
    } else {
        Err("no UML kernel built (sudo scripts/uml build; needs linux-source-6.12)".to_owned())
    }
}

/// The harness for `what`, or None when the test should skip (outside CI);
/// under `CI=true` a missing kernel panics.
pub fn require(what: &str) -> Option<Uml> {
    match kernel() {
        Ok(kernel) => Some(Uml {
            kernel,
            timeout: Duration::from_secs(300),
            files: Vec::new(),
        }),
        Err(reason) => {
            prereq::runnable(what, Some(reason));
            None
        }
    }
}

/// Single-quotes `s` for sh.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Uml {
    /// The kernel binary.
    pub fn kernel(&self) -> &Path {
        &self.kernel
    }

    /// Kill UML after `timeout` (default 300 s; UML is slow on a busy host).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Put `contents` at `RUN/name` before boot (configs, helper scripts);
    /// the payload finds it at `$UML_RUN/name`.
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Self {
        assert!(
            !name.contains('/') && !name.starts_with('.'),
            "plain file name expected: {name}"
        );
        self.files.push((name.to_owned(), contents.into()));
        self
    }

    /// Runs `script` with bash inside UML.
    pub fn script(&self, script: &str) -> Run {
        self.boot(Some(script), &["/bin/bash", "@RUN@/payload"])
    }

    /// Runs `program ARGS` inside UML (paths as on the host; the run
    /// directory is `$UML_RUN`).
    pub fn command(&self, program: &str, args: &[&str]) -> Run {
        let mut argv = vec![program];
        argv.extend_from_slice(args);
        self.boot(None, &argv)
    }

    fn boot(&self, script: Option<&str>, argv: &[&str]) -> Run {
        let dir = tempfile::Builder::new()
            .prefix("autopeer-uml.")
            .tempdir()
            .expect("run directory");
        let run = dir.path().to_str().expect("UTF-8 temp dir").to_owned();
        if let Some(script) = script {
            fs::write(dir.path().join("payload"), script).expect("write payload");
        }
        for (name, contents) in &self.files {
            fs::write(dir.path().join(name), contents).expect("write run file");
        }
        let payload: Vec<String> = argv
            .iter()
            .map(|a| quote(&a.replace("@RUN@", &run)))
            .collect();
        let init = INIT
            .replace("@RUN@", &quote(&run))
            .replace("@PAYLOAD@", &payload.join(" "));
        let init_path = dir.path().join("init");
        fs::write(&init_path, init).expect("write init");
        set_mode(&init_path, 0o755);

        let console = dir.path().join("console");
        let log = fs::File::create(&console).expect("console file");
        let umid = format!(
            "ap{}",
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "-")
        );
        let mut cmd = Command::new(&self.kernel);
        cmd.arg(format!("mem={MEM_MB}M"))
            .arg("root=/dev/root")
            .arg("rootfstype=hostfs")
            .arg("rootflags=/")
            .arg("ro")
            .arg(format!("init={}", init_path.display()))
            // Never touch the terminal: no input, output to the console file.
            .arg("con=null")
            .arg("con0=null,fd:1")
            .arg("ssl=null")
            // UML's pid file and mconsole socket go into the run directory,
            // not ~/.uml.
            .arg(format!("uml_dir={run}"))
            .arg(format!("umid={umid}"))
            .env("TMPDIR", memory_dir(dir.path()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("console fd"))
            .stderr(log)
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start UML kernel {}: {e}", self.kernel.display()));
        let pid = rp::Pid::from_child(&child);
        let deadline = Instant::now() + self.timeout;
        let mut timed_out = false;
        let exited = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        // Poll without reaping, so UML's pid (its process group's id) stays
        // ours until the group is killed below.
        while rp::waitid(WaitId::Pid(pid), exited)
            .expect("wait for UML")
            .is_none()
        {
            if Instant::now() >= deadline {
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // UML's helper processes share its process group (it leads it);
        // none may outlive the run, whether it powered off or timed out.
        let _ = rp::kill_process_group(pid, rp::Signal::KILL);
        let _ = child.wait();

        let status = fs::read_to_string(dir.path().join("status"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let output = fs::read_to_string(dir.path().join("output")).unwrap_or_default();
        let console = String::from_utf8_lossy(&fs::read(&console).unwrap_or_default()).into_owned();
        let mut dir = dir;
        if std::env::var("AUTOPEER_UML_KEEP").as_deref() == Ok("1") {
            eprintln!("uml: keeping {run}");
            dir.disable_cleanup(true);
        }
        Run {
            status,
            pid: child.id(),
            timed_out,
            output,
            console,
            dir,
        }
    }
}

/// Where UML keeps its memory file: /dev/shm when it has room for all of
/// the guest's memory (UML dies with SIGBUS when a small /dev/shm fills),
/// else the run directory on disk.
fn memory_dir(run: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let room = rustix::fs::statvfs(shm)
        .map(|s| s.f_bavail * s.f_frsize)
        .unwrap_or(0);
    if room >= (MEM_MB + 256) << 20 {
        shm.to_owned()
    } else {
        run.to_owned()
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}
