//! Reads BIRD's lines from the systemd journal and turns its trigger lines
//! into [`Sighting`]s (`Via::Journal`).
//!
//! Debian 12 ships no syslog daemon: BIRD's `log syslog all;` reaches only
//! systemd-journald. Unlike a shared syslog file, the journal says who sent
//! each entry: `_PID`, `_UID`, `_COMM`, `_EXE` and `_SYSTEMD_UNIT` are set
//! by journald from the sender's socket credentials and /proc, never by the
//! sender. So an entry counts as BIRD's ([`Trust::Bird`]) only when those
//! fields name BIRD's own process; an entry that merely claims BIRD's
//! syslog identifier (`logger -t bird ...`) is [`Trust::Forged`].
//!
//! Mechanism: a `journalctl --follow --output=export` child, filtered
//! server-side on `SYSLOG_IDENTIFIER=bird` / `bird6` (forgeries carry that
//! identifier too, which is how they are seen and refused). journalctl is
//! systemd's own reader of its own file format: it follows rotation and
//! vacuuming, and files that journald opens after a restart. A burst loses
//! nothing: entries wait in the journal while the pipe is full. The export
//! format is parsed here by a pure, bounded parser ([`ExportParser`]):
//! only the fields needed are kept, each capped at [`MAX_FIELD`] bytes.
//! When the child exits (journald gone for long, journalctl killed) it is
//! started again after a backoff from the last cursor seen. journald
//! restarting does not end it (journalctl keeps following the files), and
//! autopeer dying, even by SIGKILL, does: `journalctl --follow` ends when
//! its stdout hangs up (checked with systemd 252; tests/journal.rs).
//!
//! Position: the first start follows from the current end of the journal.
//! The cursor of the last entry read is saved (atomically, at most once a
//! second and at shutdown) in a file under the state directory, and a
//! restart resumes after it, so what was decided is not read again. A
//! corrupt cursor file, or a cursor journalctl rejects, is reported and the
//! journal followed from its end.
//!
//! What this module must not do: log entry contents (a forger writes them),
//! or trust anything but the underscore fields journald sets.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lines::{self, LineOutcome};
use super::{Sighting, Trust, Via};

/// Longest value kept of any field; longer `MESSAGE`s are malformed.
/// journald itself caps a syslog datagram's message well below this.
pub const MAX_FIELD: usize = lines::MAX_LINE_LEN;

/// Longest field name accepted (journald allows 64).
const MAX_NAME: usize = 256;

/// Bytes read from journalctl per step.
const CHUNK: usize = 64 * 1024;

/// How often the cursor file is rewritten at most while entries arrive.
const CURSOR_EVERY: Duration = Duration::from_secs(1);

/// Backoff between journalctl restarts: first, and most.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How much of journalctl's last words is kept for the log.
const STDERR_KEPT: usize = 2048;

/// Longest cursor accepted from the cursor file (a real one is ~150 bytes).
const MAX_CURSOR: usize = 512;

// ----- the export format (pure) -----

/// The fields of one journal entry that matter here. Values are raw bytes
/// (the journal does not promise UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub cursor: Option<String>,
    pub message: Option<Vec<u8>>,
    /// `MESSAGE` was longer than [`MAX_FIELD`] (its value is dropped).
    pub message_too_long: bool,
    pub identifier: Option<Vec<u8>>,
    pub pid: Option<i32>,
    pub uid: Option<u32>,
    pub comm: Option<Vec<u8>>,
    pub exe: Option<Vec<u8>>,
    pub unit: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Cursor,
    Message,
    Identifier,
    Pid,
    Uid,
    Comm,
    Exe,
    Unit,
    Other,
}

fn field_of(name: &[u8]) -> Field {
    match name {
        b"__CURSOR" => Field::Cursor,
        b"MESSAGE" => Field::Message,
        b"SYSLOG_IDENTIFIER" => Field::Identifier,
        b"_PID" => Field::Pid,
        b"_UID" => Field::Uid,
        b"_COMM" => Field::Comm,
        b"_EXE" => Field::Exe,
        b"_SYSTEMD_UNIT" => Field::Unit,
        _ => Field::Other,
    }
}

#[derive(Debug)]
enum State {
    /// Reading a field name (or the empty line that ends an entry).
    Name,
    /// Reading a text value up to its newline.
    Text,
    /// Reading the 8-byte little-endian length of a binary value.
    Len { have: usize, bytes: [u8; 8] },
    /// Reading `left` more bytes of a binary value.
    Binary { left: u64 },
    /// The newline after a binary value.
    BinaryEnd,
}

/// Incremental parser of `journalctl --output=export`: feed it bytes in
/// chunks of any size, get complete entries. Memory is bounded by the
/// kept fields ([`MAX_FIELD`] each); everything else is skipped unread.
#[derive(Debug)]
pub struct ExportParser {
    state: State,
    name: Vec<u8>,
    name_too_long: bool,
    field: Field,
    value: Vec<u8>,
    value_too_long: bool,
    entry: Entry,
    /// The current entry has at least one field.
    started: bool,
    /// Bytes that broke the format (a field name without `=` or binary
    /// length is impossible to tell from a binary field; this counts the
    /// impossible cases: overlong names and a missing newline after a
    /// binary value).
    pub errors: u64,
}

impl Default for ExportParser {
    fn default() -> Self {
        ExportParser {
            state: State::Name,
            name: Vec::new(),
            name_too_long: false,
            field: Field::Other,
            value: Vec::new(),
            value_too_long: false,
            entry: Entry::default(),
            started: false,
            errors: 0,
        }
    }
}

impl ExportParser {
    /// Consume `bytes`, pushing every entry completed by them onto `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Entry>) {
        while let Some((&b, rest)) = bytes.split_first() {
            match &mut self.state {
                State::Name => match b {
                    b'\n' if self.name.is_empty() && !self.name_too_long => {
                        if self.started {
                            out.push(std::mem::take(&mut self.entry));
                            self.started = false;
                        }
                    }
                    b'\n' => {
                        self.begin_value();
                        self.state = State::Len {
                            have: 0,
                            bytes: [0; 8],
                        };
                    }
                    b'=' => {
                        self.begin_value();
                        self.state = State::Text;
                    }
                    _ if self.name.len() >= MAX_NAME => self.name_too_long = true,
                    _ => self.name.push(b),
                },
                State::Text => {
                    // Take the whole run up to the newline at once.
                    let end = bytes.iter().position(|&c| c == b'\n');
                    let run = &bytes[..end.unwrap_or(bytes.len())];
                    self.keep(run);
                    match end {
                        Some(i) => {
                            self.end_value();
                            bytes = &bytes[i + 1..];
                        }
                        None => bytes = &[],
                    }
                    continue;
                }
                State::Len { have, bytes: len } => {
                    len[*have] = b;
                    *have += 1;
                    if *have == 8 {
                        let left = u64::from_le_bytes(*len);
                        self.state = if left == 0 {
                            State::BinaryEnd
                        } else {
                            State::Binary { left }
                        };
                    }
                }
                State::Binary { left } => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    let (run, after) = bytes.split_at(n);
                    *left -= n as u64;
                    let done = *left == 0;
                    self.keep(run);
                    if done {
                        self.state = State::BinaryEnd;
                    }
                    bytes = after;
                    continue;
                }
                State::BinaryEnd => {
                    if b != b'\n' {
                        self.errors += 1;
                    }
                    self.end_value();
                    // A byte other than the newline is the next name's first.
                    if b != b'\n' {
                        continue;
                    }
                }
            }
            bytes = rest;
        }
    }

    fn begin_value(&mut self) {
        if self.name_too_long {
            self.errors += 1;
            self.field = Field::Other;
        } else {
            self.field = field_of(&self.name);
        }
        self.name.clear();
        self.name_too_long = false;
        self.value.clear();
        self.value_too_long = false;
        self.started = true;
    }

    fn keep(&mut self, run: &[u8]) {
        if self.field == Field::Other || self.value_too_long {
            return;
        }
        if self.value.len() + run.len() > MAX_FIELD {
            self.value_too_long = true;
            self.value = Vec::new();
        } else {
            self.value.extend_from_slice(run);
        }
    }

    fn end_value(&mut self) {
        self.state = State::Name;
        let value = std::mem::take(&mut self.value);
        let too_long = std::mem::take(&mut self.value_too_long);
        let e = &mut self.entry;
        let text = || std::str::from_utf8(&value).ok();
        match self.field {
            Field::Other => {}
            Field::Message if too_long => {
                e.message = None;
                e.message_too_long = true;
            }
            _ if too_long => {}
            Field::Cursor => e.cursor = text().filter(|c| cursor_ok(c)).map(str::to_owned),
            Field::Message => e.message = Some(value),
            Field::Identifier => e.identifier = Some(value),
            Field::Pid => e.pid = text().and_then(|t| t.parse().ok()),
            Field::Uid => e.uid = text().and_then(|t| t.parse().ok()),
            Field::Comm => e.comm = Some(value),
            Field::Exe => e.exe = Some(value),
            Field::Unit => e.unit = Some(value),
        }
    }
}

/// A journal cursor as systemd writes it:
/// `s=HEX;i=HEX;b=HEX;m=HEX;t=HEX;x=HEX` (order as written, all six).
pub fn cursor_ok(c: &str) -> bool {
    if c.is_empty() || c.len() > MAX_CURSOR {
        return false;
    }
    let mut keys = Vec::new();
    for part in c.split(';') {
        let Some((k, v)) = part.split_once('=') else {
            return false;
        };
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        keys.push(k);
    }
    keys == ["s", "i", "b", "m", "t", "x"]
}

/// The `s=` part of a cursor: the journal's sequence-number id. It stays
/// the same across journald restarts, rotation and vacuuming, and changes
/// when the journal is started afresh; journalctl resumes by sequence
/// number only within the same id.
pub fn seqnum_id(cursor: &str) -> Option<&str> {
    cursor.split(';').find_map(|p| p.strip_prefix("s="))
}

// ----- who sent it (pure) -----

/// BIRD's running process, as autopeer resolved it: its pid and the
/// target of `/proc/PID/exe` read at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdProcess {
    pub pid: i32,
    pub exe: Vec<u8>,
}

/// How far an entry that carries BIRD's identifier can be trusted, from
/// the fields journald set (never from the sender's own fields).
///
/// - [`Trust::Bird`] when `_PID` is BIRD's pid *and* `_EXE` is that
///   process's executable (a recycled pid running something else does not
///   pass), or when the entry comes from the system unit `bird.service`
///   and its executable is named `bird`/`bird6` (no unprivileged process
///   can enter a system unit's cgroup; this also covers lines of a BIRD
///   that has since restarted, read late).
/// - Otherwise, with BIRD's pid known, the entry is another process's:
///   [`Trust::Forged`]. With BIRD's pid unknown (BIRD down), an entry
///   whose `_EXE` names another program is forged, and the rest (no
///   `_EXE`: the sender had exited) cannot be told: [`Trust::Unverified`].
pub fn trust_of(e: &Entry, bird: Option<&BirdProcess>) -> Trust {
    let exe_named_bird = e.exe.as_deref().is_some_and(|x| {
        let x = x.strip_suffix(b" (deleted)").unwrap_or(x);
        let name = x.rsplit(|&b| b == b'/').next().unwrap_or(x);
        name == b"bird" || name == b"bird6"
    });
    let birds_unit = exe_named_bird && e.unit.as_deref() == Some(b"bird.service");
    match bird {
        Some(b) if e.pid == Some(b.pid) && e.exe.as_deref() == Some(&b.exe[..]) => Trust::Bird,
        _ if birds_unit => Trust::Bird,
        Some(_) => Trust::Forged,
        None if e.exe.is_some() && !exe_named_bird => Trust::Forged,
        None => Trust::Unverified,
    }
}

/// What one entry says. Parsing comes first, so that only trigger lines
/// cost a look at BIRD's process.
pub fn parse_entry(
    e: &Entry,
    at: SystemTime,
    bird: impl FnOnce(Option<i32>) -> Option<BirdProcess>,
) -> LineOutcome {
    // journalctl filters on these already; the same rule as for syslog
    // files (sources::lines) holds here too.
    if !matches!(e.identifier.as_deref(), Some(b"bird" | b"bird6")) {
        return LineOutcome::Irrelevant;
    }
    if e.message_too_long {
        return LineOutcome::Malformed(lines::Malformed::TooLong);
    }
    let Some(msg) = e.message.as_deref() else {
        return LineOutcome::Irrelevant;
    };
    let Ok(msg) = std::str::from_utf8(msg) else {
        return LineOutcome::Irrelevant;
    };
    match lines::parse_bird_message(msg, Via::Journal, Trust::Unverified, at) {
        LineOutcome::Sighting(mut s) => {
            s.trust = trust_of(e, bird(e.pid).as_ref());
            LineOutcome::Sighting(s)
        }
        other => other,
    }
}

// ----- BIRD's process (I/O) -----

/// Finds BIRD's process through its control socket, as the keyring does
/// ([`crate::keyring::Bird::find`]: the process holding the listening
/// socket, so a daemonized BIRD is found too, pinned by a pidfd), and keeps
/// it while [`crate::keyring::Bird::verify`] says that very process still
/// holds the socket (a pid taken over by another process does not pass).
#[derive(Debug)]
pub struct BirdLocator {
    socket: PathBuf,
    known: Option<(crate::keyring::Bird, BirdProcess)>,
    /// When BIRD was last looked for in vain: a flood of forged lines while
    /// BIRD is down costs one search per [`FIND_AGAIN`], not one per line.
    failed_at: Option<Instant>,
}

/// How long after a failed search BIRD is not looked for again.
const FIND_AGAIN: Duration = Duration::from_secs(1);

impl BirdLocator {
    pub fn new(socket: PathBuf) -> BirdLocator {
        BirdLocator {
            socket,
            known: None,
            failed_at: None,
        }
    }

    /// BIRD's process now, or `None` when it cannot be found.
    pub fn current(&mut self) -> Option<BirdProcess> {
        if let Some((bird, p)) = &mut self.known {
            if bird.verify().is_ok() {
                // The same process; its binary may have been replaced
                // since (`/usr/sbin/bird (deleted)`).
                if let Some(exe) = exe_of(p.pid) {
                    p.exe = exe;
                }
                return Some(p.clone());
            }
            self.known = None;
        }
        if self.failed_at.is_some_and(|t| t.elapsed() < FIND_AGAIN) {
            return None;
        }
        let found = crate::keyring::Bird::find(&self.socket)
            .ok()
            .and_then(|bird| Some((exe_of(bird.pid())?, bird)));
        let Some((exe, bird)) = found else {
            self.failed_at = Some(Instant::now());
            return None;
        };
        self.failed_at = None;
        let p = BirdProcess {
            pid: bird.pid(),
            exe,
        };
        self.known = Some((bird, p.clone()));
        Some(p)
    }
}

fn exe_of(pid: i32) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.into_os_string().into_vec())
}

// ----- the source (I/O) -----

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

/// `journal.cursor` beside `[agent] state`.
pub fn cursor_path(state: &Path) -> PathBuf {
    match state.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join("journal.cursor"),
        _ => PathBuf::from("journal.cursor"),
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

/// Where the next journalctl starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// After this entry.
    After(String),
    /// From the journal's first entry (it held none of BIRD's when we
    /// looked).
    Start,
}

/// Reads the cursor file. `Ok(None)`: there is none; `Err`: it exists
/// but does not hold a cursor (the message says what is wrong).
pub fn read_cursor(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    // Never through a link, never blocking on a FIFO planted there.
    let file = crate::fsx::Dir::of(path).and_then(|(dir, name)| dir.open_read(&name));
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let mut buf = Vec::new();
    if let Err(e) = (&mut file)
        .take(MAX_CURSOR as u64 + 2)
        .read_to_end(&mut buf)
    {
        return Err(format!("cannot read it: {e}"));
    }
    let text = std::str::from_utf8(&buf).map_err(|_| "it is not text".to_string())?;
    let cursor = text.trim_end_matches('\n');
    if cursor_ok(cursor) {
        Ok(Some(cursor.to_owned()))
    } else {
        Err("it does not hold a journal cursor".into())
    }
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
}

impl Journal {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text_entry(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (k, val) in fields {
            v.extend_from_slice(format!("{k}={val}\n").as_bytes());
        }
        v.push(b'\n');
        v
    }

    const CURSOR: &str = "s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8a34c52b1d5fa8ab8c2a8c3;m=1a2b;t=5a0f1c2d3e4f5;x=f2e3d4c5b6a79801";

    #[test]
    fn parses_text_and_binary_fields_across_any_split() {
        let mut stream = text_entry(&[
            ("__CURSOR", CURSOR),
            ("_PID", "812"),
            ("_UID", "102"),
            ("_EXE", "/usr/sbin/bird"),
            ("SYSLOG_IDENTIFIER", "bird"),
            (
                "MESSAGE",
                "BGP: Unexpected connect from unknown address 10.88.0.2 (port 47271)",
            ),
        ]);
        // A binary field: name, newline, 64-bit LE length, data, newline.
        stream.extend_from_slice(b"MESSAGE\n");
        stream.extend_from_slice(&7u64.to_le_bytes());
        stream.extend_from_slice(b"a\nb\x00c=d\n");
        stream.extend_from_slice(b"_PID=9\n\n");
        for split in 0..stream.len() {
            let mut p = ExportParser::default();
            let mut out = Vec::new();
            p.feed(&stream[..split], &mut out);
            p.feed(&stream[split..], &mut out);
            assert_eq!(out.len(), 2, "split at {split}");
            assert_eq!(out[0].cursor.as_deref(), Some(CURSOR));
            assert_eq!(out[0].pid, Some(812));
            assert_eq!(out[0].uid, Some(102));
            assert_eq!(out[0].exe.as_deref(), Some(&b"/usr/sbin/bird"[..]));
            assert_eq!(out[1].message.as_deref(), Some(&b"a\nb\x00c=d"[..]));
            assert_eq!(out[1].pid, Some(9));
            assert_eq!(p.errors, 0);
        }
    }

    proptest::proptest! {
        /// Any bytes, split anywhere: no panic, and the same entries as
        /// when fed at once (journalctl's pipe splits where it likes).
        #[test]
        fn any_split_gives_the_same_entries(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"=\n_MESSAGE_PID".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..400,
            ),
            split in 0usize..400,
        ) {
            let split = split.min(bytes.len());
            let mut whole = ExportParser::default();
            let mut a = Vec::new();
            whole.feed(&bytes, &mut a);
            let mut parts = ExportParser::default();
            let mut b = Vec::new();
            parts.feed(&bytes[..split], &mut b);
            parts.feed(&bytes[split..], &mut b);
            proptest::prop_assert_eq!(a, b);
            proptest::prop_assert_eq!(whole.errors, parts.errors);
        }
    }

    #[test]
    fn overlong_fields_are_dropped_not_buffered() {
        let mut stream = b"MESSAGE=".to_vec();
        stream.extend(std::iter::repeat_n(b'x', MAX_FIELD * 4));
        stream.extend_from_slice(b"\nOTHER\n");
        stream.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        let mut p = ExportParser::default();
        let mut out = Vec::new();
        p.feed(&stream, &mut out);
        // Gigabytes of a binary field we do not keep cost nothing.
        p.feed(&vec![0u8; 1 << 20], &mut out);
        assert!(out.is_empty());
        assert!(p.value.capacity() <= MAX_FIELD);
        assert_eq!(p.entry.message, None);
        assert!(p.entry.message_too_long);
        p.entry.identifier = Some(b"bird".to_vec());
        let outcome = parse_entry(&p.entry, SystemTime::now(), |_| None);
        assert_eq!(outcome, LineOutcome::Malformed(lines::Malformed::TooLong));
    }

    #[test]
    fn cursors_are_checked() {
        assert!(cursor_ok(CURSOR));
        assert!(!cursor_ok(""));
        assert!(!cursor_ok("garbage"));
        assert!(!cursor_ok(&CURSOR.replace("i=", "j=")));
        assert!(!cursor_ok(&format!("{CURSOR};y=1")));
        assert!(!cursor_ok(&CURSOR.replace("t=5", "t=\n5")));
    }

    fn bird_entry(pid: i32, exe: &str, unit: Option<&str>) -> Entry {
        Entry {
            message: Some(
                b"BGP: Unexpected connect from unknown address 10.88.0.9 (port 1)".to_vec(),
            ),
            identifier: Some(b"bird".to_vec()),
            pid: Some(pid),
            exe: Some(exe.as_bytes().to_vec()),
            unit: unit.map(|u| u.as_bytes().to_vec()),
            ..Entry::default()
        }
    }

    #[test]
    fn only_birds_own_process_is_trusted() {
        let bird = BirdProcess {
            pid: 812,
            exe: b"/usr/sbin/bird".to_vec(),
        };
        let t = |e: &Entry, b: Option<&BirdProcess>| trust_of(e, b);
        assert_eq!(
            t(&bird_entry(812, "/usr/sbin/bird", None), Some(&bird)),
            Trust::Bird
        );
        // logger -t bird
        assert_eq!(
            t(&bird_entry(4242, "/usr/bin/logger", None), Some(&bird)),
            Trust::Forged
        );
        // A user's own copy of bird, or BIRD's recycled pid running another program.
        assert_eq!(
            t(&bird_entry(4243, "/usr/sbin/bird", None), Some(&bird)),
            Trust::Forged
        );
        assert_eq!(
            t(&bird_entry(812, "/tmp/bird", None), Some(&bird)),
            Trust::Forged
        );
        // BIRD not found: its unit vouches; other programs are still forged.
        let unit = Some("bird.service");
        assert_eq!(t(&bird_entry(9, "/usr/sbin/bird", unit), None), Trust::Bird);
        // BIRD's unit vouches for a BIRD that restarted too,
        // also after a package upgrade replaced the binary.
        let upgraded = "/usr/sbin/bird (deleted)";
        assert_eq!(t(&bird_entry(9, upgraded, unit), Some(&bird)), Trust::Bird);
        assert_eq!(
            t(&bird_entry(9, "/usr/bin/logger", unit), Some(&bird)),
            Trust::Forged
        );
        // Another unit, or a user's own unit of that name (journald puts
        // that in _SYSTEMD_USER_UNIT, not _SYSTEMD_UNIT), does not vouch.
        let other = Some("user@1000.service");
        assert_eq!(
            t(&bird_entry(9, "/usr/sbin/bird", other), Some(&bird)),
            Trust::Forged
        );
        assert_eq!(
            t(&bird_entry(9, "/usr/sbin/bird", None), None),
            Trust::Unverified
        );
        assert_eq!(
            t(&bird_entry(9, "/usr/bin/logger", unit), None),
            Trust::Forged
        );
        let mut no_exe = bird_entry(9, "", None);
        no_exe.exe = None;
        assert_eq!(t(&no_exe, None), Trust::Unverified);
        assert_eq!(t(&no_exe, Some(&bird)), Trust::Forged);
    }

    #[test]
    fn an_entry_becomes_a_journal_sighting() {
        let e = bird_entry(812, "/usr/sbin/bird", None);
        let bird = BirdProcess {
            pid: 812,
            exe: b"/usr/sbin/bird".to_vec(),
        };
        let LineOutcome::Sighting(s) = parse_entry(&e, SystemTime::now(), |_| Some(bird)) else {
            panic!("no sighting");
        };
        assert_eq!(
            (s.via, s.trust, s.port),
            (Via::Journal, Trust::Bird, Some(1))
        );
        assert_eq!(s.addr, "10.88.0.9".parse::<std::net::IpAddr>().unwrap());
        // Other BIRD lines never ask for BIRD's process.
        let mut other = e.clone();
        other.message = Some(b"Started".to_vec());
        let outcome = parse_entry(&other, SystemTime::now(), |_| panic!("looked up BIRD"));
        assert_eq!(outcome, LineOutcome::Irrelevant);
        // Another program's identifier is not BIRD's line at all.
        let mut sshd = e.clone();
        sshd.identifier = Some(b"sshd".to_vec());
        let outcome = parse_entry(&sshd, SystemTime::now(), |_| panic!("looked up BIRD"));
        assert_eq!(outcome, LineOutcome::Irrelevant);
    }

    #[test]
    fn cursor_file_is_read_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.cursor");
        assert_eq!(read_cursor(&p), Ok(None));
        std::fs::write(&p, format!("{CURSOR}\n")).unwrap();
        assert_eq!(read_cursor(&p), Ok(Some(CURSOR.to_string())));
        std::fs::write(&p, b"\xff\xfe garbage").unwrap();
        assert!(read_cursor(&p).unwrap_err().contains("not text"));
        std::fs::write(&p, "s=1;i=2").unwrap();
        assert!(read_cursor(&p).unwrap_err().contains("does not hold"));
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &p).unwrap();
        assert!(read_cursor(&p).unwrap_err().contains("symbolic link"));
        std::fs::remove_file(&p).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(read_cursor(&p).unwrap_err().contains("not a regular file"));
    }
}
