//! Tails log files and turns their trigger lines into [`Sighting`]s.
//!
//! Watching is inotify (through `notify`, so an idle tail costs no CPU) on
//! the directory of each tailed path, not on the file: a directory watch
//! sees a file created, renamed over, deleted or written, whatever sits at
//! the path before and after. Events for other names in that directory are
//! dropped in the watcher's own thread; the events left only mark paths as
//! due (a set, so a burst of writes is one wake-up, and memory stays bounded
//! however far the reader is behind). Reading is done here, byte by byte,
//! not by linemux's `MuxedLines`, because `MuxedLines` 0.3 stalls after an
//! invalid UTF-8 line: it returns the error and drops back to waiting for
//! the next inotify event, so the valid lines already written after the bad
//! one are delayed until the file is written again (checked with linemux
//! 0.3.0; its error also carries the raw line). Reading ourselves also
//! bounds line length ([`lines::MAX_LINE_LEN`]), holds back a partial last
//! line until its newline arrives, and tells rotation (something new at the
//! path) from truncation (size below our offset). The complete lines of
//! each read are handed to [`lines::scan_lines`] in place: it finds the few
//! lines that can matter with whole-buffer searches and parses only those,
//! so an irrelevant line costs no copy, no allocation and no parse (the
//! counters stay what parsing every line would give: `tests/prefilter.rs`).
//!
//! A log directory is often writable by another account (`/var/log/bird`
//! belongs to `bird`), so whatever appears at a path is opened through
//! [`readsafe`] without following a symbolic link: a FIFO, a device, a
//! directory or a link is refused (logged once, counted in
//! [`TailCounts::files_refused`]) and the path stays watched, so a regular
//! file put there later is tailed. One file never holds up the others or
//! shutdown: a read takes at most [`BUDGET`] bytes from a file before the
//! other due paths and the shutdown token get their turn.
//!
//! What this module must not do: parse (that is [`lines`]), poll on a
//! timer, stop on a bad line or a bad file, or log line contents.
//!
//! Known limits: lines written to a rotated-away file after the new file
//! appeared are lost; with copytruncate, lines written between the copy and
//! the truncation are lost, and a file truncated and refilled past our old
//! offset before we look is read from the old offset (copytruncate's own race).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use notify::Watcher;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use super::lines::{self, LineOutcome, Malformed, RawOutcome, MAX_LINE_LEN};
use super::{Flow, Sighting, Trust, Via};
use crate::readsafe::{self, Links};

/// Bytes read per step before yielding to other tasks: large, because
/// what a step costs besides the copy (a syscall, a yield, the searches'
/// set-up) is paid per step, not per byte.
const CHUNK: usize = 256 * 1024;

/// Bytes read from one file before the other due files (and shutdown) get
/// their turn.
pub const BUDGET: u64 = 1 << 20;

/// Errors that stop the tail.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// The inotify watcher could not be created (e.g. `fs.inotify.max_user_instances`).
    #[error("cannot start the file watcher: {0}")]
    Watcher(#[source] io::Error),
    /// A path could not be watched (e.g. its directory does not exist).
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Counters of what the tail saw, shared with status output.
#[derive(Debug, Default)]
pub struct TailStats {
    lines: AtomicU64,
    sightings: AtomicU64,
    irrelevant: AtomicU64,
    malformed: AtomicU64,
    invalid_utf8: AtomicU64,
    read_errors: AtomicU64,
    files_refused: AtomicU64,
}

/// A copy of [`TailStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailCounts {
    /// Complete lines read (every line below is also counted here).
    pub lines: u64,
    /// Lines that produced a sighting.
    pub sightings: u64,
    /// Lines that are not triggers.
    pub irrelevant: u64,
    /// Trigger-looking lines with a bad part, and lines over the length limit.
    pub malformed: u64,
    /// Lines that are not valid UTF-8 (never parsed).
    pub invalid_utf8: u64,
    /// Failed open/stat/read calls and watcher errors (the tail goes on).
    pub read_errors: u64,
    /// Things found at a tailed path that are not regular files (FIFO,
    /// device, directory, symbolic link), each counted once; not read.
    pub files_refused: u64,
}

impl TailStats {
    /// Current values of all counters.
    pub fn snapshot(&self) -> TailCounts {
        TailCounts {
            lines: self.lines.load(Ordering::Acquire),
            sightings: self.sightings.load(Ordering::Relaxed),
            irrelevant: self.irrelevant.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            invalid_utf8: self.invalid_utf8.load(Ordering::Relaxed),
            read_errors: self.read_errors.load(Ordering::Relaxed),
            files_refused: self.files_refused.load(Ordering::Relaxed),
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Add what one read counted; `lines` last, so that a reader who sees
    /// the line count also sees where each of those lines went.
    fn add(&self, t: &TailCounts) {
        for (counter, n) in [
            (&self.sightings, t.sightings),
            (&self.irrelevant, t.irrelevant),
            (&self.malformed, t.malformed),
            (&self.invalid_utf8, t.invalid_utf8),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.lines.fetch_add(t.lines, Ordering::Release);
    }
}

/// Tail `paths` until `shutdown` is cancelled, sending one [`Sighting`] per
/// trigger line. Same as [`Tailer::start`] followed by [`Tailer::run`]; use
/// those two when you need to know that the watches are live (systemd
/// `READY=1`, tests).
pub async fn run(
    paths: Vec<PathBuf>,
    tx: mpsc::Sender<Sighting>,
    stats: Arc<TailStats>,
    shutdown: CancellationToken,
) -> Result<(), TailError> {
    Tailer::start(paths).await?.run(tx, stats, shutdown).await
}

/// Watches registered and files positioned; not yet reading.
#[derive(Debug)]
pub struct Tailer {
    watcher: notify::RecommendedWatcher,
    /// The paths (watched form) whose events matter: the watcher's thread
    /// drops the rest. Changes when bird.conf's log files do.
    wanted: Arc<Mutex<HashSet<PathBuf>>>,
    /// The paths given to [`Tailer::start`] (`[sources] logs`): tailed
    /// whatever bird.conf says.
    configured: HashSet<PathBuf>,
    /// Directories watched.
    dirs: HashSet<PathBuf>,
    /// A configured path was BIRD's own log file: the operator follows
    /// BIRD's log, so it is followed where bird.conf moves it. Never set
    /// when none was (`logs = []`: only NHRP admits).
    follow: bool,
    /// bird.conf's `log "FILE"` files as they change (see
    /// [`Tailer::follow_bird_files`]).
    bird_files: Option<watch::Receiver<Vec<PathBuf>>>,
    /// [`Tailer::bird_file_marks`] for whoever follows them
    /// ([`Tailer::marks_watch`]).
    marks: Option<watch::Sender<Vec<(PathBuf, bool)>>>,
    /// The read buffer, [`CHUNK`] bytes once anything was read, shared by
    /// all files (one is read at a time). Kept, not allocated per read.
    buf: Vec<u8>,
    due: Arc<Due>,
    files: HashMap<PathBuf, Tracked>,
    /// Counts what this tail has sent and is reading ([`Flow`]).
    flow: Flow,
}

/// Paths the watcher marked since the reader last looked.
#[derive(Debug, Default)]
struct Due {
    marks: Mutex<Marks>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Marks {
    paths: BTreeSet<PathBuf>,
    /// The kernel's queue overflowed: look at every path.
    all: bool,
    /// Watcher errors since last looked.
    errors: u64,
}

impl Due {
    fn mark(&self, f: impl FnOnce(&mut Marks)) {
        if let Ok(mut m) = self.marks.lock() {
            f(&mut m);
        }
        self.wake.notify_one();
    }

    fn take(&self) -> Marks {
        self.marks
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }
}

/// What is (or was last) at a path: device, inode and file type, so that a
/// FIFO replaced by a regular file on the same inode number is still new.
type Seen = (u64, u64, u32);

fn seen(meta: &std::fs::Metadata) -> Seen {
    (meta.dev(), meta.ino(), meta.mode() & libc::S_IFMT)
}

/// One watched path.
#[derive(Debug, Default)]
struct Tracked {
    /// The file we read (may be the old one just after a rotation).
    file: Option<File>,
    /// What was at the path when we last looked (read or refused).
    seen: Option<Seen>,
    /// Our read offset in `file`.
    pos: u64,
    /// Bytes of a line whose newline has not arrived yet.
    partial: Vec<u8>,
    /// The current line passed [`MAX_LINE_LEN`]; drop bytes until its newline.
    overlong: bool,
    /// BIRD's own log file, not a shared one: only here may a line in
    /// BIRD's file format be trusted (docs/facts.md fact 14). False until
    /// [`Tailer::set_bird_files`] says otherwise: a file nobody vouched
    /// for is a shared one.
    birds: bool,
    /// What was refused at the path, pinned (see [`readsafe::Pinned`]).
    held: Option<readsafe::Pinned>,
    /// A refusal was logged and no regular file has been read since: the
    /// next refusals are only counted.
    refusal_logged: bool,
}

/// How far one look at a file got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Read to its end.
    Done,
    /// [`BUDGET`] used up; more to read.
    More,
    /// Shutdown, or nobody receives sightings any more.
    Stop,
}

/// `dir/name` with `dir` made canonical: the form inotify reports for a
/// watch on the canonical directory.
fn watched_form(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok(dir.canonicalize()?.join(name))
}

/// What a change of bird.conf's log files changed in the tailed set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BirdFilesChange {
    /// BIRD's log files now tailed that were not.
    pub added: Vec<PathBuf>,
    /// BIRD's former log files no longer tailed (not in `[sources] logs`).
    pub removed: Vec<PathBuf>,
    /// BIRD's log files that cannot be tailed (their directory cannot be
    /// watched), with why.
    pub failed: Vec<(PathBuf, String)>,
}

impl BirdFilesChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.failed.is_empty()
    }
}

fn canon(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

impl Tailer {
    /// Says which files BIRD itself writes (bird.conf's `log "FILE"`).
    /// Once one of the paths given to [`Tailer::start`] is BIRD's (the
    /// operator follows BIRD's log), BIRD's files are tailed as well as
    /// those paths, wherever bird.conf moves them, and a BIRD file of an
    /// earlier call that is neither is no longer tailed.
    /// Only in BIRD's own files may a line in BIRD's file format be
    /// trusted: in any other path it may have been written by someone else,
    /// so its sightings are [`Trust::Unverified`] and named [`Via::Syslog`]
    /// (a shared file), not `bird-log`. Without this call no path counts
    /// as BIRD's. A new file is opened by the same rules as at start (no
    /// link followed, only a regular file read, positioned at its end;
    /// one not there yet is read from its start once it appears).
    pub fn set_bird_files(&mut self, bird_files: &[PathBuf]) -> BirdFilesChange {
        let mut change = BirdFilesChange::default();
        let mut keys: Vec<(PathBuf, &PathBuf)> = Vec::new();
        for p in bird_files {
            match watched_form(p) {
                Ok(k) => keys.push((k, p)),
                Err(e) => change.failed.push((p.clone(), e.to_string())),
            }
        }
        let bird: HashSet<PathBuf> = keys.iter().map(|(k, _)| canon(k)).collect();
        self.follow |= self.configured.iter().any(|k| bird.contains(&canon(k)));
        if !self.follow {
            keys.clear();
        }
        // No longer BIRD's and not configured: stop tailing.
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|k| !self.configured.contains(*k) && !bird.contains(&canon(k)))
            .cloned()
            .collect();
        for key in gone {
            self.files.remove(&key);
            change.removed.push(key);
        }
        let tracked: HashSet<PathBuf> = self.files.keys().map(|k| canon(k)).collect();
        for (key, path) in keys {
            if self.files.contains_key(&key) || tracked.contains(&canon(&key)) {
                continue;
            }
            let dir = key.parent().unwrap_or_else(|| Path::new("/")).to_path_buf();
            if !self.dirs.contains(&dir) {
                if let Err(e) = self
                    .watcher
                    .watch(&dir, notify::RecursiveMode::NonRecursive)
                {
                    change.failed.push((path.clone(), notify_io(e).to_string()));
                    continue;
                }
                self.dirs.insert(dir);
            }
            if let Ok(mut w) = self.wanted.lock() {
                w.insert(key.clone());
            }
            // Watch first, then seek: a write after the seek is an event we will see.
            match position(&key, &self.due) {
                Ok(t) => {
                    self.files.insert(key.clone(), t);
                    change.added.push(key);
                }
                Err(e) => change.failed.push((path.clone(), e.to_string())),
            }
        }
        for (path, tracked) in &mut self.files {
            tracked.birds = bird.contains(&canon(path));
        }
        // Forget the watches and names nothing tailed needs any more.
        let dirs: HashSet<PathBuf> = self
            .files
            .keys()
            .map(|k| k.parent().unwrap_or_else(|| Path::new("/")).to_path_buf())
            .collect();
        for dir in self.dirs.difference(&dirs).cloned().collect::<Vec<_>>() {
            let _ = self.watcher.unwatch(&dir);
            self.dirs.remove(&dir);
        }
        if let Ok(mut w) = self.wanted.lock() {
            w.retain(|k| self.files.contains_key(k));
        }
        change.added.sort();
        change.removed.sort();
        change
    }

    /// [`Tailer::bird_file_marks`] now and as bird.conf changes them.
    pub fn marks_watch(&mut self) -> watch::Receiver<Vec<(PathBuf, bool)>> {
        let tx = watch::Sender::new(self.bird_file_marks());
        let rx = tx.subscribe();
        self.marks = Some(tx);
        rx
    }

    /// Follows bird.conf's log files as they change (bird.conf re-read):
    /// [`Tailer::run`] applies each new list with
    /// [`Tailer::set_bird_files`] and logs what changed.
    /// Counts the sightings sent, and a read in progress, in `flow` (the
    /// roster's, so that it gathers a burst while more is coming).
    pub fn set_flow(&mut self, flow: Flow) {
        self.flow = flow;
    }

    pub fn follow_bird_files(&mut self, files: watch::Receiver<Vec<PathBuf>>) {
        self.bird_files = Some(files);
    }

    /// Every tailed path and whether it counts as BIRD's own log file (see
    /// [`Tailer::set_bird_files`]), sorted by path.
    pub fn bird_file_marks(&self) -> Vec<(PathBuf, bool)> {
        let mut out: Vec<(PathBuf, bool)> = self
            .files
            .iter()
            .map(|(p, t)| (p.clone(), t.birds))
            .collect();
        out.sort();
        out
    }

    /// Register a watch for every path's directory and position each
    /// existing file at its end (old lines are not read). A path whose file
    /// does not exist yet is read from its start once created; one that is
    /// not a regular file is refused (logged, counted once `run` starts)
    /// and read once a regular file replaces it. When this returns, every
    /// later write is seen.
    pub async fn start(paths: Vec<PathBuf>) -> Result<Tailer, TailError> {
        let mut keys = Vec::new();
        for path in paths {
            let key = watched_form(&path).map_err(|source| TailError::Watch {
                path: path.clone(),
                source,
            })?;
            keys.push((key, path));
        }
        let configured: HashSet<PathBuf> = keys.iter().map(|(k, _)| k.clone()).collect();
        let wanted = Arc::new(Mutex::new(configured.clone()));
        let filter = Arc::clone(&wanted);
        let due = Arc::new(Due::default());
        let marks = Arc::clone(&due);
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            match res {
                Ok(ev) if ev.need_rescan() => marks.mark(|m| m.all = true),
                // Opens and closes (ours too) carry no new bytes.
                Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => {}
                Ok(ev) => {
                    let ours: Vec<PathBuf> = match filter.lock() {
                        Ok(wanted) => ev
                            .paths
                            .into_iter()
                            .filter(|p| wanted.contains(p))
                            .collect(),
                        Err(_) => Vec::new(),
                    };
                    if !ours.is_empty() {
                        marks.mark(|m| m.paths.extend(ours));
                    }
                }
                Err(_) => marks.mark(|m| m.errors += 1),
            }
        })
        .map_err(|e| TailError::Watcher(notify_io(e)))?;
        let mut dirs = HashSet::new();
        for (key, path) in &keys {
            let dir = key.parent().unwrap_or_else(|| Path::new("/"));
            if dirs.insert(dir.to_path_buf()) {
                watcher
                    .watch(dir, notify::RecursiveMode::NonRecursive)
                    .map_err(|e| TailError::Watch {
                        path: path.clone(),
                        source: notify_io(e),
                    })?;
            }
        }
        let mut files = HashMap::new();
        for (key, path) in keys {
            // Watch first, then seek: a write after the seek is an event we will see.
            let tracked =
                position(&key, &due).map_err(|source| TailError::Watch { path, source })?;
            files.entry(key).or_insert(tracked);
        }
        Ok(Tailer {
            watcher,
            wanted,
            configured,
            dirs,
            follow: false,
            bird_files: None,
            marks: None,
            due,
            files,
            buf: Vec::new(),
            flow: Flow::default(),
        })
    }

    /// The watched paths with their directory made canonical.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        paths.sort();
        paths
    }

    /// Read new lines as the files change until `shutdown` is cancelled.
    /// Returns `Ok(())` on shutdown, or when the receiver is gone.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Sighting>,
        stats: Arc<TailStats>,
        shutdown: CancellationToken,
    ) -> Result<(), TailError> {
        if self.files.is_empty() && self.bird_files.is_none() {
            shutdown.cancelled().await;
            return Ok(());
        }
        // Paths whose file has more to read than one budget.
        let mut backlog: BTreeSet<PathBuf> = BTreeSet::new();
        loop {
            if backlog.is_empty() {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return Ok(()),
                    files = next_files(&mut self.bird_files) => {
                        if self.bird_files_changed(files, &tx, &stats, &shutdown).await == Progress::Stop {
                            return Ok(());
                        }
                        continue;
                    }
                    () = self.due.wake.notified() => {}
                }
            } else if shutdown.is_cancelled() {
                return Ok(());
            }
            // Until every marked file is read to its end (or, with a
            // backlog, until the next turn of this loop): a read in progress.
            let _reading = self.flow.reading();
            let marks = self.due.take();
            for _ in 0..marks.errors {
                TailStats::bump(&stats.read_errors);
            }
            let mut paths = std::mem::take(&mut backlog);
            if marks.all || marks.errors > 0 {
                // Queue overflow or watcher error: look at every file.
                paths.extend(self.files.keys().cloned());
            } else {
                paths.extend(marks.paths);
            }
            for path in paths {
                let Some(tracked) = self.files.get_mut(&path) else {
                    continue;
                };
                match pump(
                    &path,
                    tracked,
                    &mut self.buf,
                    &tx,
                    &self.flow,
                    &stats,
                    &shutdown,
                )
                .await
                {
                    Progress::Done => {}
                    Progress::More => {
                        backlog.insert(path);
                    }
                    Progress::Stop => return Ok(()),
                }
            }
        }
    }
}

impl Tailer {
    /// bird.conf now names `files`: finish reading the files about to be
    /// dropped, then change the tailed set and say what changed.
    async fn bird_files_changed(
        &mut self,
        files: Vec<PathBuf>,
        tx: &mpsc::Sender<Sighting>,
        stats: &TailStats,
        shutdown: &CancellationToken,
    ) -> Progress {
        let keys: HashSet<PathBuf> = files
            .iter()
            .filter_map(|p| watched_form(p).ok())
            .map(|k| canon(&k))
            .collect();
        for (path, tracked) in &mut self.files {
            if self.configured.contains(path) || keys.contains(&canon(path)) {
                continue;
            }
            // One budget: what BIRD wrote before it switched files.
            if pump(
                path,
                tracked,
                &mut self.buf,
                tx,
                &self.flow,
                stats,
                shutdown,
            )
            .await
                == Progress::Stop
            {
                return Progress::Stop;
            }
        }
        let change = self.set_bird_files(&files);
        if let Some(tx) = &self.marks {
            tx.send_replace(self.bird_file_marks());
        }
        let list = |v: &[PathBuf]| {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        if !change.added.is_empty() || !change.removed.is_empty() {
            tracing::info!(
                added = %list(&change.added),
                removed = %list(&change.removed),
                "BIRD's log files changed in bird.conf: tailing the new set"
            );
        }
        for (path, e) in &change.failed {
            TailStats::bump(&stats.read_errors);
            tracing::warn!(path = %path.display(), error = %e, "cannot tail BIRD's log file named in bird.conf");
        }
        // A file added that was not there yet, or refused, is looked at now.
        if !change.added.is_empty() {
            self.due.wake.notify_one();
        }
        Progress::Done
    }
}

/// The next list of bird.conf's log files; never resolves without one to
/// follow (or once its sender is gone).
async fn next_files(rx: &mut Option<watch::Receiver<Vec<PathBuf>>>) -> Vec<PathBuf> {
    if let Some(r) = rx {
        if r.changed().await.is_ok() {
            return r.borrow_and_update().clone();
        }
    }
    *rx = None;
    std::future::pending().await
}

/// A [`Tracked`] for the file now at `key`, positioned at its end (old
/// lines are not read). A file not there yet, or not a regular file, is
/// marked due: `run` looks at it first thing (and reports a refusal).
fn position(key: &Path, due: &Due) -> io::Result<Tracked> {
    let mut tracked = Tracked::default();
    match readsafe::open(key, Links::Refuse) {
        Ok(mut file) => {
            let meta = file.metadata()?;
            tracked.pos = file.seek(SeekFrom::End(0))?;
            tracked.seen = Some(seen(&meta));
            tracked.file = Some(file);
        }
        Err(_) => due.mark(|m| {
            m.paths.insert(key.to_path_buf());
        }),
    }
    Ok(tracked)
}

fn notify_io(e: notify::Error) -> io::Error {
    match e.kind {
        notify::ErrorKind::Io(io) => io,
        notify::ErrorKind::PathNotFound => {
            io::Error::new(io::ErrorKind::NotFound, "no such directory")
        }
        _ => io::Error::other(e.to_string()),
    }
}

/// Bring `tracked` up to date with what is now at `path`, reading at most
/// [`BUDGET`] new bytes.
async fn pump(
    path: &Path,
    tracked: &mut Tracked,
    buf: &mut Vec<u8>,
    tx: &mpsc::Sender<Sighting>,
    flow: &Flow,
    stats: &TailStats,
    shutdown: &CancellationToken,
) -> Progress {
    let mut found = Vec::new();
    // lstat: a symbolic link at the path is itself what is there.
    match std::fs::symlink_metadata(path) {
        Ok(meta) if Some(seen(&meta)) != tracked.seen => {
            // Rotated, created or replaced: finish the old file, then switch.
            match drain(tracked, buf, &mut found, tx, flow, stats, shutdown).await {
                Progress::Done => {}
                other => return other,
            }
            tracked.flush_partial(&mut found, stats);
            tracked.file = None;
            tracked.pos = 0;
            tracked.reopen(path, stats);
        }
        Ok(meta) if tracked.file.is_some() && meta.len() < tracked.pos => {
            // Truncated in place (copytruncate): start over at 0.
            tracked.flush_partial(&mut found, stats);
            tracked.pos = 0;
            let rewound = tracked.file.as_mut().map(|f| f.seek(SeekFrom::Start(0)));
            if let Some(Err(_)) = rewound {
                TailStats::bump(&stats.read_errors);
            }
        }
        Ok(_) => {}
        // Renamed away or deleted, new file not there yet: read what is left
        // of the old one (its writer may still append to it). With no old
        // file, forget what was there: a new file may get its inode.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if tracked.file.is_none() {
                tracked.seen = None;
                tracked.held = None;
            }
        }
        Err(_) => TailStats::bump(&stats.read_errors),
    }
    let progress = drain(tracked, buf, &mut found, tx, flow, stats, shutdown).await;
    if progress == Progress::Stop || !send(found, tx, flow, shutdown).await {
        return Progress::Stop;
    }
    progress
}

/// Read `tracked.file` up to its end or [`BUDGET`] bytes, sending sightings
/// as chunks complete.
async fn drain(
    tracked: &mut Tracked,
    buf: &mut Vec<u8>,
    found: &mut Vec<Sighting>,
    tx: &mpsc::Sender<Sighting>,
    flow: &Flow,
    stats: &TailStats,
    shutdown: &CancellationToken,
) -> Progress {
    if buf.len() != CHUNK {
        // Zeroed by the allocator (calloc, fresh pages), so a page is
        // resident only once a read has written into it.
        *buf = vec![0u8; CHUNK];
    }
    let mut taken = 0u64;
    loop {
        if shutdown.is_cancelled() {
            return Progress::Stop;
        }
        if taken >= BUDGET {
            return Progress::More;
        }
        let Some(file) = tracked.file.as_mut() else {
            return Progress::Done;
        };
        let n = match file.read(buf) {
            Ok(0) => return Progress::Done,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                TailStats::bump(&stats.read_errors);
                return Progress::Done;
            }
        };
        taken += n as u64;
        tracked.pos += n as u64;
        tracked.feed(buf.get(..n).unwrap_or_default(), found, stats);
        if !send(std::mem::take(found), tx, flow, shutdown).await {
            return Progress::Stop;
        }
        tokio::task::yield_now().await;
    }
}

async fn send(
    found: Vec<Sighting>,
    tx: &mpsc::Sender<Sighting>,
    flow: &Flow,
    shutdown: &CancellationToken,
) -> bool {
    flow.sent(found.len());
    for sighting in found {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return false,
            sent = tx.send(sighting) => if sent.is_err() { return false },
        }
    }
    true
}

impl Tracked {
    /// Opens what is now at `path`: a regular file becomes the file we
    /// read; anything else is refused (counted, logged the first time) and
    /// pinned, so that its inode number cannot come back as a new file's
    /// and hide it from us.
    fn reopen(&mut self, path: &Path, stats: &TailStats) {
        self.held = None;
        let pinned = match readsafe::Pinned::new(path, Links::Refuse) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.seen = None;
                return;
            }
            Err(e) => return self.open_failed(path, stats, &e),
        };
        self.seen = Some(pinned.id());
        match pinned.open() {
            Ok(file) => {
                if std::mem::take(&mut self.refusal_logged) {
                    tracing::info!(path = %path.display(), "a regular file replaced what was refused: tailing it");
                }
                self.file = Some(file);
            }
            Err((pinned, e)) if e.kind() == io::ErrorKind::InvalidInput => {
                self.held = Some(pinned);
                TailStats::bump(&stats.files_refused);
                if !self.refusal_logged {
                    self.refusal_logged = true;
                    tracing::warn!(path = %path.display(), error = %e, "not tailing this log until a regular file replaces it");
                }
            }
            Err((_, e)) => self.open_failed(path, stats, &e),
        }
    }

    /// An open that failed for another reason than the file's type: tried
    /// again on the next event.
    fn open_failed(&mut self, path: &Path, stats: &TailStats, e: &io::Error) {
        self.seen = None;
        TailStats::bump(&stats.read_errors);
        tracing::debug!(path = %path.display(), error = %e, "cannot open log");
    }

    /// Split `bytes` into lines, keeping an unfinished last line: the line
    /// begun in an earlier read is finished through `partial`, the complete
    /// lines after it are read in place ([`lines::scan_lines`], which
    /// parses only the few that can matter), and the unfinished end is kept.
    fn feed(&mut self, bytes: &[u8], found: &mut Vec<Sighting>, stats: &TailStats) {
        let mut tally = TailCounts::default();
        let mut rest = bytes;
        if !self.partial.is_empty() || self.overlong {
            let Some(i) = memchr::memchr(b'\n', rest) else {
                self.keep(rest);
                return;
            };
            self.keep(rest.get(..i).unwrap_or_default());
            self.finish_line(found, &mut tally);
            rest = rest.get(i + 1..).unwrap_or_default();
        }
        let birds = self.birds;
        let mut notable = 0;
        let scanned = lines::scan_lines(rest, SystemTime::now(), |_, outcome| {
            notable += 1;
            count(outcome, birds, found, &mut tally);
        });
        tally.lines += scanned.lines;
        tally.irrelevant += scanned.lines.saturating_sub(notable);
        stats.add(&tally);
        self.keep(rest.get(scanned.end..).unwrap_or_default());
    }

    /// Add `segment` to the unfinished line, or drop it once the line is
    /// over [`MAX_LINE_LEN`].
    fn keep(&mut self, segment: &[u8]) {
        if self.overlong {
            return;
        }
        if self.partial.len() + segment.len() > MAX_LINE_LEN {
            self.overlong = true;
            self.partial.clear();
        } else {
            self.partial.extend_from_slice(segment);
        }
    }

    /// A rotation or truncation ends an unfinished last line.
    fn flush_partial(&mut self, found: &mut Vec<Sighting>, stats: &TailStats) {
        if !self.partial.is_empty() || self.overlong {
            let mut tally = TailCounts::default();
            self.finish_line(found, &mut tally);
            stats.add(&tally);
        }
    }

    /// The line in `partial` is complete.
    fn finish_line(&mut self, found: &mut Vec<Sighting>, tally: &mut TailCounts) {
        tally.lines += 1;
        let raw = std::mem::take(&mut self.partial);
        let outcome = if std::mem::take(&mut self.overlong) {
            RawOutcome::Text(LineOutcome::Malformed(Malformed::TooLong))
        } else {
            lines::parse_raw(&raw, SystemTime::now())
        };
        count(outcome, self.birds, found, tally);
    }
}

/// Count one line's outcome; keep its sighting. A line in BIRD's file
/// format read from a file that is not BIRD's own is not BIRD speaking.
fn count(outcome: RawOutcome, birds: bool, found: &mut Vec<Sighting>, tally: &mut TailCounts) {
    match outcome {
        RawOutcome::NotUtf8 => tally.invalid_utf8 += 1,
        RawOutcome::Text(LineOutcome::Sighting(mut s)) => {
            tally.sightings += 1;
            if !birds && s.via == Via::BirdLog {
                s.via = Via::Syslog;
                s.trust = Trust::Unverified;
            }
            found.push(s);
        }
        RawOutcome::Text(LineOutcome::Irrelevant) => tally.irrelevant += 1,
        RawOutcome::Text(LineOutcome::Malformed(_)) => tally.malformed += 1,
    }
}
