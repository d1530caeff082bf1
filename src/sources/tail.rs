//! Tails log files and turns their trigger lines into [`Sighting`]s.
//!
//! Watching is linemux's [`MuxedEvents`] (inotify through `notify`, so an
//! idle tail costs no CPU): it accepts paths whose file does not exist yet
//! and re-arms the watch when a file is renamed away or deleted. Reading is
//! done here, byte by byte, not by linemux's `MuxedLines`, because
//! `MuxedLines` 0.3 stalls after an invalid UTF-8 line: it returns the error
//! and drops back to waiting for the next inotify event, so the valid lines
//! already written after the bad one are delayed until the file is written
//! again (checked with linemux 0.3.0; its error also carries the raw line).
//! Reading ourselves also bounds line length ([`lines::MAX_LINE_LEN`]),
//! holds back a partial last line until its newline arrives, and tells
//! rotation (new inode at the path) from truncation (size below our offset).
//!
//! What this module must not do: parse (that is [`lines`]), poll on a
//! timer, stop on a bad line, or log line contents.
//!
//! Known limits: lines written to a rotated-away file after the new file
//! appeared are lost; with copytruncate, lines written between the copy and
//! the truncation are lost, and a file truncated and refilled past our old
//! offset before we look is read from the old offset (copytruncate's own race).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use linemux::MuxedEvents;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lines::{self, LineOutcome, MAX_LINE_LEN};
use super::{Sighting, Trust, Via};

/// Bytes read per step before yielding to other tasks.
const CHUNK: usize = 64 * 1024;

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
}

impl TailStats {
    /// Current values of all counters.
    pub fn snapshot(&self) -> TailCounts {
        TailCounts {
            lines: self.lines.load(Ordering::Relaxed),
            sightings: self.sightings.load(Ordering::Relaxed),
            irrelevant: self.irrelevant.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            invalid_utf8: self.invalid_utf8.load(Ordering::Relaxed),
            read_errors: self.read_errors.load(Ordering::Relaxed),
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
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
    events: MuxedEvents,
    files: HashMap<PathBuf, Tracked>,
}

/// One watched path.
#[derive(Debug, Default)]
struct Tracked {
    /// The file we read (may be the old one just after a rotation).
    file: Option<File>,
    /// (dev, inode) of `file`.
    id: Option<(u64, u64)>,
    /// Our read offset in `file`.
    pos: u64,
    /// Bytes of a line whose newline has not arrived yet.
    partial: Vec<u8>,
    /// The current line passed [`MAX_LINE_LEN`]; drop bytes until its newline.
    overlong: bool,
    /// BIRD's own log file, not a shared one: only here may a line in
    /// BIRD's file format be trusted (DESIGN.md fact 14). False until
    /// [`Tailer::set_bird_files`] says otherwise: a file nobody vouched
    /// for is a shared one.
    birds: bool,
}

impl Tailer {
    /// Marks which of the tailed paths BIRD itself writes (bird.conf's
    /// `log "FILE"`). In any other path a line that looks like BIRD's file
    /// format may have been written by someone else, so its sightings are
    /// [`Trust::Unverified`] and named [`Via::Syslog`] (a shared file), not
    /// `bird-log`. Without this call no path counts as BIRD's.
    pub fn set_bird_files(&mut self, bird_files: &[PathBuf]) {
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let bird: Vec<PathBuf> = bird_files.iter().map(|p| canon(p)).collect();
        for (path, tracked) in &mut self.files {
            tracked.birds = bird.contains(&canon(path));
        }
    }

    /// Register a watch for every path and position each existing file at
    /// its end (old lines are not read). A path whose file does not exist
    /// yet is watched through its directory and read from its start once
    /// created. When this returns, every later write is seen.
    pub async fn start(paths: Vec<PathBuf>) -> Result<Tailer, TailError> {
        let mut events = MuxedEvents::new().map_err(TailError::Watcher)?;
        let mut files = HashMap::new();
        for path in paths {
            let key = events
                .add_file(&path)
                .await
                .map_err(|source| TailError::Watch {
                    path: path.clone(),
                    source,
                })?;
            let mut tracked = Tracked::default();
            // Watch first, then seek: a write after the seek is an event we will see.
            if let Ok(mut file) = File::open(&key) {
                let meta = file.metadata().map_err(|source| TailError::Watch {
                    path: path.clone(),
                    source,
                })?;
                let end = file
                    .seek(SeekFrom::End(0))
                    .map_err(|source| TailError::Watch {
                        path: path.clone(),
                        source,
                    })?;
                tracked.id = Some((meta.dev(), meta.ino()));
                tracked.pos = end;
                tracked.file = Some(file);
            }
            files.entry(key).or_insert(tracked);
        }
        Ok(Tailer { events, files })
    }

    /// The watched paths as linemux resolved them (directory made absolute).
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
        if self.files.is_empty() {
            shutdown.cancelled().await;
            return Ok(());
        }
        loop {
            let event = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                event = self.events.next_event() => event,
            };
            let paths: Vec<PathBuf> = match event {
                Ok(Some(event)) if !event.paths.is_empty() && !event.need_rescan() => event.paths,
                Ok(Some(_)) => self.files.keys().cloned().collect(),
                Ok(None) => {
                    shutdown.cancelled().await;
                    return Ok(());
                }
                Err(_) => {
                    // Watcher error (e.g. inotify queue overflow): look at every file.
                    TailStats::bump(&stats.read_errors);
                    self.files.keys().cloned().collect()
                }
            };
            for path in paths {
                let Some(tracked) = self.files.get_mut(&path) else {
                    continue;
                };
                if !pump(&path, tracked, &tx, &stats, &shutdown).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Bring `tracked` up to date with the file now at `path`, reading
/// everything new. Returns false when the tail must stop (shutdown, or
/// nobody receives sightings any more).
async fn pump(
    path: &Path,
    tracked: &mut Tracked,
    tx: &mpsc::Sender<Sighting>,
    stats: &TailStats,
    shutdown: &CancellationToken,
) -> bool {
    let mut found = Vec::new();
    match std::fs::metadata(path) {
        Ok(meta) if Some((meta.dev(), meta.ino())) != tracked.id => {
            // Rotated (or created): finish the old file, then switch.
            if !drain(tracked, &mut found, tx, stats, shutdown).await {
                return false;
            }
            tracked.flush_partial(&mut found, stats);
            tracked.file = None;
            tracked.id = None;
            tracked.pos = 0;
            match File::open(path).and_then(|f| f.metadata().map(|m| (f, m))) {
                Ok((file, meta)) => {
                    tracked.id = Some((meta.dev(), meta.ino()));
                    tracked.file = Some(file);
                }
                Err(_) => TailStats::bump(&stats.read_errors),
            }
        }
        Ok(meta) if meta.len() < tracked.pos => {
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
        // of the old one (its writer may still append to it).
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(_) => TailStats::bump(&stats.read_errors),
    }
    drain(tracked, &mut found, tx, stats, shutdown).await && send(found, tx, shutdown).await
}

/// Read `tracked.file` to its end, sending sightings as chunks complete.
async fn drain(
    tracked: &mut Tracked,
    found: &mut Vec<Sighting>,
    tx: &mpsc::Sender<Sighting>,
    stats: &TailStats,
    shutdown: &CancellationToken,
) -> bool {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let Some(file) = tracked.file.as_mut() else {
            return true;
        };
        let n = match file.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                TailStats::bump(&stats.read_errors);
                return true;
            }
        };
        tracked.pos += n as u64;
        tracked.feed(buf.get(..n).unwrap_or_default(), found, stats);
        if !send(std::mem::take(found), tx, shutdown).await {
            return false;
        }
        tokio::task::yield_now().await;
    }
}

async fn send(
    found: Vec<Sighting>,
    tx: &mpsc::Sender<Sighting>,
    shutdown: &CancellationToken,
) -> bool {
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
    /// Split `bytes` into lines, keeping an unfinished last line.
    fn feed(&mut self, mut bytes: &[u8], found: &mut Vec<Sighting>, stats: &TailStats) {
        while !bytes.is_empty() {
            let (segment, rest, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let (line, newline_on) = bytes.split_at(i);
                    (line, newline_on.get(1..).unwrap_or_default(), true)
                }
                None => (bytes, &[][..], false),
            };
            if !self.overlong {
                if self.partial.len() + segment.len() > MAX_LINE_LEN {
                    self.overlong = true;
                    self.partial.clear();
                } else {
                    self.partial.extend_from_slice(segment);
                }
            }
            if complete {
                self.finish_line(found, stats);
            }
            bytes = rest;
        }
    }

    /// A rotation or truncation ends an unfinished last line.
    fn flush_partial(&mut self, found: &mut Vec<Sighting>, stats: &TailStats) {
        if !self.partial.is_empty() || self.overlong {
            self.finish_line(found, stats);
        }
    }

    fn finish_line(&mut self, found: &mut Vec<Sighting>, stats: &TailStats) {
        TailStats::bump(&stats.lines);
        if std::mem::take(&mut self.overlong) {
            TailStats::bump(&stats.malformed);
            self.partial.clear();
            return;
        }
        let raw = std::mem::take(&mut self.partial);
        let raw = raw.strip_suffix(b"\r").unwrap_or(&raw);
        match std::str::from_utf8(raw) {
            Err(_) => TailStats::bump(&stats.invalid_utf8),
            Ok(text) => match lines::parse_line(text, SystemTime::now()) {
                LineOutcome::Sighting(mut s) => {
                    TailStats::bump(&stats.sightings);
                    if !self.birds && s.via == Via::BirdLog {
                        s.via = Via::Syslog;
                        s.trust = Trust::Unverified;
                    }
                    found.push(s);
                }
                LineOutcome::Irrelevant => TailStats::bump(&stats.irrelevant),
                LineOutcome::Malformed(_) => TailStats::bump(&stats.malformed),
            },
        }
    }
}
