//! The autopeer binary as tests and benchmarks run it: [`Daemon`]
//! (`autopeer run`, ended by its own pid on drop, pass or fail),
//! [`Watcher`] (`autopeer watch --json`, likewise), and one-shot client
//! commands.
//!
//! Only processes started here are ever signalled, and only by the pid of
//! the `Child` we hold (a prefix such as `nsenter ... --` execs in place,
//! so that pid is autopeer's).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The autopeer binary of this build (the bench profile's for benches).
pub const AUTOPEER: &str = env!("CARGO_BIN_EXE_autopeer");

/// The autopeer daemon, ended by its pid on drop.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// `autopeer -c CONFIG -v run`, stdout and stderr appended to LOG.
    pub fn start(config: &Path, log: &Path) -> Daemon {
        Daemon::spawn(Daemon::command(config, true, &[]), log)
    }

    /// [`Daemon::start`] through `prefix`, a program that execs its
    /// arguments in place (`nsenter -t PID -m --`), so the pid stays ours.
    pub fn start_with(prefix: &[&str], config: &Path, log: &Path) -> Daemon {
        Daemon::spawn(Daemon::command(config, true, prefix), log)
    }

    /// `autopeer -c CONFIG run` (without `-v`), output appended to LOG.
    pub fn start_quiet(config: &Path, log: &Path) -> Daemon {
        Daemon::spawn(Daemon::command(config, false, &[]), log)
    }

    /// The command line `[PREFIX...] autopeer -c CONFIG [-v] run`.
    pub fn command(config: &Path, verbose: bool, prefix: &[&str]) -> Command {
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(AUTOPEER);
                c
            }
            None => Command::new(AUTOPEER),
        };
        cmd.env("NO_COLOR", "1").arg("-c").arg(config);
        if verbose {
            cmd.arg("-v");
        }
        cmd.arg("run");
        cmd
    }

    /// Spawns `cmd` (a daemon command line) with stdin closed and stdout
    /// and stderr appended to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Daemon {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("daemon log {}: {e}", log.display()));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup daemon log"))
            .stderr(out)
            .spawn()
            .expect("start autopeer");
        Daemon {
            child,
            log: log.to_owned(),
        }
    }

    /// Waits up to `limit` until the control socket `ctl` accepts a
    /// connection: the tail's watches are live before it binds. Panics
    /// (the daemon is then killed by drop) when it exits or times out.
    pub fn ready(mut self, ctl: &Path, limit: Duration) -> Daemon {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("autopeer exited early ({status}):\n{}", self.log_text());
            }
            if std::os::unix::net::UnixStream::connect(ctl).is_ok() {
                return self;
            }
            assert!(
                Instant::now() < deadline,
                "autopeer control socket {} did not come up in {limit:?}:\n{}",
                ctl.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The daemon's pid (nsenter execs it in place, so also with a prefix).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the daemon wrote so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// VmRSS of the daemon in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kb(self.pid(), "VmRSS").expect("VmRSS in /proc/PID/status")
    }

    /// SIGKILL to our own child, and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
            self.kill9();
        }
    }
}

/// A field of `/proc/PID/status` (e.g. `VmRSS`), in kB.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
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
        let mut child = Command::new(AUTOPEER)
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
    let out = Command::new(AUTOPEER)
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

/// `autopeer -c CONFIG check`: whether it passed, and its stdout
/// followed by its stderr (a test that no secret is printed sees both).
pub fn autopeer_check(config: &Path) -> (bool, String) {
    let out = Command::new(AUTOPEER)
        .arg("-c")
        .arg(config)
        .arg("check")
        .output()
        .expect("run autopeer check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}
