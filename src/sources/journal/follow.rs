//! The journal source: runs `journalctl --follow`, reads its export
//! output, and sends a sighting for every trigger entry; restarts it after
//! a backoff and saves the cursor as it goes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cursor::{cursor_path, read_cursor, seqnum_id, Position};
use super::export::ExportParser;
use super::trust::{parse_entry, BirdLocator};
use crate::sources::lines::LineOutcome;
use crate::sources::{Flow, Sighting, Trust};

/// Bytes read from journalctl per step.
const CHUNK: usize = 64 * 1024;

/// How often the cursor file is rewritten at most while entries arrive.
const CURSOR_EVERY: Duration = Duration::from_secs(1);

/// Backoff between journalctl restarts: first, and most.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How much of journalctl's last words is kept for the log.
const STDERR_KEPT: usize = 2048;

/// Errors that stop the journal source.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} cannot read the journal: {message}", program.display())]
    Query { program: PathBuf, message: String },
}

/// Counters of what the journal source saw.
#[derive(Debug, Default)]
pub struct JournalStats {
    entries: AtomicU64,
    sightings: AtomicU64,
    forged: AtomicU64,
    malformed: AtomicU64,
    restarts: AtomicU64,
}

/// A copy of [`JournalStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalCounts {
    /// Entries with BIRD's syslog identifier read.
    pub entries: u64,
    /// Entries that produced a sighting (of any trust).
    pub sightings: u64,
    /// Of those, entries not from BIRD's process ([`Trust::Forged`]).
    pub forged: u64,
    /// Trigger-looking entries with a bad part, overlong messages, and
    /// damage in journalctl's output.
    pub malformed: u64,
    /// Times journalctl was started again after it ended.
    pub restarts: u64,
}

impl JournalStats {
    pub fn snapshot(&self) -> JournalCounts {
        JournalCounts {
            entries: self.entries.load(Ordering::Relaxed),
            sightings: self.sightings.load(Ordering::Relaxed),
            forged: self.forged.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
        }
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where and how to read the journal.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// The journalctl program.
    pub journalctl: PathBuf,
    /// Read the journal files in this directory instead of the system's
    /// (journalctl `--directory`).
    pub directory: Option<PathBuf>,
    /// Where the position is saved; `None`: always start at the end.
    pub cursor_file: Option<PathBuf>,
    /// BIRD's control socket, to find BIRD's process.
    pub bird_socket: PathBuf,
}

impl JournalOptions {
    /// The daemon's options: the system journal, the cursor in the state
    /// file's directory.
    pub fn for_config(config: &crate::config::Config) -> JournalOptions {
        JournalOptions {
            journalctl: find_journalctl().unwrap_or_else(|| PathBuf::from("journalctl")),
            directory: None,
            cursor_file: Some(cursor_path(&config.agent.state)),
            bird_socket: config.bird.socket.clone(),
        }
    }
}

/// journalctl, where Debian and others install it.
pub fn find_journalctl() -> Option<PathBuf> {
    ["/usr/bin/journalctl", "/bin/journalctl"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Whether this machine has a systemd journal to read: journalctl, and
/// journald running (its socket) or journal files kept from before (a
/// machine-id directory under /var/log/journal or /run/log/journal).
pub fn journal_present() -> bool {
    let has_files = |d: &str| {
        std::fs::read_dir(d)
            .map(|mut entries| entries.any(|e| e.is_ok_and(|e| e.path().is_dir())))
            .unwrap_or(false)
    };
    find_journalctl().is_some()
        && (Path::new("/run/systemd/journal/socket").exists()
            || has_files("/var/log/journal")
            || has_files("/run/log/journal"))
}

/// A journal source positioned and ready to follow.
#[derive(Debug)]
pub struct Journal {
    opts: JournalOptions,
    position: Position,
    /// The cursor the cursor file holds now.
    in_file: Option<String>,
    /// A failed cursor write was logged and none has succeeded since: the
    /// next failures are not logged again (the position moves with every
    /// entry, so an unwritable directory would log once a second).
    save_warned: AtomicBool,
    /// Counts what this source has sent ([`Flow`]).
    flow: Flow,
}

impl Journal {
    /// Counts the sightings sent in `flow` (the roster's).
    pub fn set_flow(&mut self, flow: Flow) {
        self.flow = flow;
    }

    /// Decide where to start: after the saved cursor when there is a valid
    /// one, else at the journal's current end. When this returns, every
    /// entry written later will be read.
    pub async fn start(opts: JournalOptions) -> Result<Journal, JournalError> {
        let saved = match &opts.cursor_file {
            None => None,
            Some(path) => match read_cursor(path) {
                Ok(c) => c,
                Err(why) => {
                    tracing::warn!(
                        path = %path.display(),
                        "journal cursor file ignored ({why}); following the journal from its end"
                    );
                    None
                }
            },
        };
        let end = end_of_journal(&opts).await?;
        let position = match (saved, &end) {
            (Some(c), Position::After(e)) if seqnum_id(&c) == seqnum_id(e) => {
                return Ok(Journal {
                    in_file: Some(c.clone()),
                    position: Position::After(c),
                    opts,
                    save_warned: AtomicBool::new(false),
                    flow: Flow::default(),
                });
            }
            (Some(c), _) => {
                tracing::warn!(
                    cursor = %c,
                    "the saved journal cursor belongs to a journal that no longer exists \
                     (wiped, or a volatile journal after a reboot); following the journal from its end"
                );
                end
            }
            (None, _) => end,
        };
        // Not in the file yet: `run` writes it at once, so that a restart
        // resumes from here even if BIRD logs nothing before it.
        Ok(Journal {
            opts,
            position,
            in_file: None,
            save_warned: AtomicBool::new(false),
            flow: Flow::default(),
        })
    }

    /// Follow the journal until `shutdown`, sending a sighting for every
    /// trigger entry. Returns `Ok(())` on shutdown or when the receiver is
    /// gone.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Sighting>,
        stats: Arc<JournalStats>,
        shutdown: CancellationToken,
    ) -> Result<(), JournalError> {
        let mut locator = BirdLocator::new(self.opts.bird_socket.clone());
        let mut backoff = BACKOFF_MIN;
        let mut saved = self.in_file.take();
        self.save_cursor(&mut saved);
        loop {
            let started = Instant::now();
            let mut child = match self.spawn() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot follow the journal");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let stderr = child.stderr.take().map(|e| tokio::spawn(last_words(e)));
            let outcome = self
                .follow(&mut child, &tx, &stats, &shutdown, &mut locator, &mut saved)
                .await;
            let _ = child.start_kill();
            let status = child.wait().await.ok();
            let stderr = match stderr {
                Some(task) => tokio::time::timeout(Duration::from_secs(1), task)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default(),
                None => String::new(),
            };
            self.save_cursor(&mut saved);
            let read_any = match outcome {
                Follow::Stop => return Ok(()),
                Follow::Ended { read_any } => read_any,
            };
            if let (Position::After(c), false) = (&self.position, read_any) {
                if status.is_some_and(|s| !s.success()) && stderr.contains("cursor") {
                    tracing::warn!(
                        cursor = %c,
                        error = %stderr.trim(),
                        "journalctl rejected the saved journal cursor; following the journal from its end"
                    );
                    match end_of_journal(&self.opts).await {
                        Ok(end) => {
                            self.position = end;
                            continue;
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot find the journal's end"),
                    }
                }
            }
            JournalStats::bump(&stats.restarts);
            if read_any || started.elapsed() > BACKOFF_MAX {
                backoff = BACKOFF_MIN;
            }
            tracing::warn!(
                status = ?status,
                error = %stderr.trim(),
                retry_in = ?backoff,
                "journalctl ended; following the journal again from the last entry read"
            );
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Write the cursor file when the position moved since the last write.
    fn save_cursor(&self, saved: &mut Option<String>) {
        let (Some(path), Position::After(c)) = (&self.opts.cursor_file, &self.position) else {
            return;
        };
        if saved.as_ref() == Some(c) {
            return;
        }
        let mut bytes = c.clone().into_bytes();
        bytes.push(b'\n');
        match crate::apply::write_atomic(path, &bytes) {
            Ok(()) => {
                *saved = Some(c.clone());
                if self.save_warned.swap(false, Ordering::Relaxed) {
                    tracing::info!(path = %path.display(), "journal cursor saved again");
                }
            }
            Err(e) => {
                if !self.save_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        "cannot save the journal cursor; a restart follows the journal from its end \
                         until it can (not logged again until a save succeeds)"
                    );
                }
            }
        }
    }

    fn spawn(&self) -> Result<Child, JournalError> {
        let mut cmd = base_command(&self.opts);
        cmd.arg("--follow");
        match &self.position {
            Position::After(c) => cmd.arg(format!("--after-cursor={c}")),
            Position::Start => cmd.arg("--no-tail"),
        };
        cmd.args(BIRD_MATCHES)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn().map_err(|source| JournalError::Spawn {
            program: self.opts.journalctl.clone(),
            source,
        })
    }

    /// Read the child's output until it ends or `shutdown`.
    async fn follow(
        &mut self,
        child: &mut Child,
        tx: &mpsc::Sender<Sighting>,
        stats: &JournalStats,
        shutdown: &CancellationToken,
        locator: &mut BirdLocator,
        saved: &mut Option<String>,
    ) -> Follow {
        let Some(mut out) = child.stdout.take() else {
            return Follow::Ended { read_any: false };
        };
        let mut parser = ExportParser::default();
        let mut buf = vec![0u8; CHUNK];
        let mut entries = Vec::new();
        let mut read_any = false;
        let mut last_save = Instant::now();
        let mut tick = tokio::time::interval(CURSOR_EVERY);
        loop {
            let n = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Follow::Stop,
                r = out.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return Follow::Ended { read_any },
                    Ok(n) => n,
                },
                _ = tick.tick() => {
                    self.save_cursor(saved);
                    continue;
                }
            };
            let errors = parser.errors;
            parser.feed(buf.get(..n).unwrap_or_default(), &mut entries);
            for _ in errors..parser.errors {
                JournalStats::bump(&stats.malformed);
            }
            // The entries of one read are one burst for the roster.
            let _reading = (!entries.is_empty()).then(|| self.flow.reading());
            for e in entries.drain(..) {
                read_any = true;
                JournalStats::bump(&stats.entries);
                match parse_entry(&e, SystemTime::now(), |_| locator.current()) {
                    LineOutcome::Sighting(s) => {
                        JournalStats::bump(&stats.sightings);
                        if s.trust == Trust::Forged {
                            JournalStats::bump(&stats.forged);
                            tracing::debug!(
                                pid = ?e.pid,
                                uid = ?e.uid,
                                exe = %String::from_utf8_lossy(e.exe.as_deref().unwrap_or_default()).escape_debug(),
                                "journal entry claims to be BIRD but comes from another process"
                            );
                        }
                        self.flow.sent(1);
                        tokio::select! {
                            biased;
                            () = shutdown.cancelled() => return Follow::Stop,
                            sent = tx.send(s) => if sent.is_err() { return Follow::Stop },
                        }
                    }
                    LineOutcome::Malformed(_) => JournalStats::bump(&stats.malformed),
                    LineOutcome::Irrelevant => {}
                }
                // Only now is the entry dealt with: a shutdown during the
                // send above leaves the cursor before it.
                if let Some(c) = e.cursor {
                    self.position = Position::After(c);
                }
            }
            if last_save.elapsed() >= CURSOR_EVERY {
                self.save_cursor(saved);
                last_save = Instant::now();
            }
        }
    }
}

enum Follow {
    /// Shutdown, or nobody receives sightings any more.
    Stop,
    /// journalctl's output ended.
    Ended { read_any: bool },
}

fn base_command(opts: &JournalOptions) -> Command {
    let mut cmd = Command::new(&opts.journalctl);
    cmd.args(["--output=export", "--quiet", "--no-pager"]);
    if let Some(d) = &opts.directory {
        cmd.arg("--directory").arg(d);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// The journal matches autopeer follows: BIRD's and bird6's syslog
/// identifiers.
const BIRD_MATCHES: [&str; 2] = ["SYSLOG_IDENTIFIER=bird", "SYSLOG_IDENTIFIER=bird6"];

/// The cursor of the journal's last entry *that matches* [`BIRD_MATCHES`],
/// so that following starts exactly there. It must match: journalctl
/// (systemd 252) given `--after-cursor` of an entry its matches exclude
/// skips the first matching entry after it, losing BIRD's next line.
async fn end_of_journal(opts: &JournalOptions) -> Result<Position, JournalError> {
    let mut cmd = base_command(opts);
    cmd.args(["--lines=1"])
        .args(BIRD_MATCHES)
        .kill_on_drop(true);
    let out = cmd.output().await.map_err(|source| JournalError::Spawn {
        program: opts.journalctl.clone(),
        source,
    })?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(out.stderr.get(..1024).unwrap_or(&out.stderr))
            .trim()
            .to_string();
        return Err(JournalError::Query {
            program: opts.journalctl.clone(),
            message: if message.is_empty() {
                format!("exit status {}", out.status)
            } else {
                message
            },
        });
    }
    let mut parser = ExportParser::default();
    let mut entries = Vec::new();
    parser.feed(&out.stdout, &mut entries);
    parser.feed(b"\n", &mut entries);
    Ok(match entries.into_iter().rev().find_map(|e| e.cursor) {
        Some(c) => Position::After(c),
        None => Position::Start,
    })
}

/// Reads journalctl's stderr until it closes, so that a chatty journalctl
/// (warnings about damaged files) never blocks on a full pipe, and returns
/// the last [`STDERR_KEPT`] bytes of it.
async fn last_words(mut err: tokio::process::ChildStderr) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = err.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(buf.get(..n).unwrap_or_default());
        if kept.len() > STDERR_KEPT {
            kept.drain(..kept.len() - STDERR_KEPT);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}
