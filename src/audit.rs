//! The audit log: one human line per decision, appended.
//!
//! `2026-11-23T06:55:02Z adding neighbor 10.88.0.2 to group clients (via bird-log)`
//!
//! Lines come only from [`crate::event::Event::audit_text`]. A write
//! failure is logged, never fatal: the daemon keeps deciding.
//!
//! The file is opened through [`crate::fsx`]: a symbolic link, a FIFO or a
//! file of another account at the path is refused, never written through.
//! Rotation: before each line the path is compared with the open file
//! (device and inode); once logrotate has renamed it away the next line
//! goes to a new file at the path. SIGHUP also asks for a reopen
//! ([`AuditLog::reopen_handle`]).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::event::{escape, rfc3339, Event};
use crate::fsx;

/// The audit log's mode when autopeer creates it.
pub const MODE: u32 = 0o640;

pub struct AuditLog {
    path: PathBuf,
    file: Option<Open>,
    reopen: Arc<AtomicBool>,
}

/// The open file and the identity it had at the path.
struct Open {
    file: File,
    dev: u64,
    ino: u64,
}

impl AuditLog {
    /// Opens (creates, mode 0640) the log for appending. An unopenable file
    /// is reported by the caller, who may keep [`AuditLog::closed`] to
    /// retry at each write.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let mut log = AuditLog::closed(path);
        log.file = Some(log.open_file()?);
        Ok(log)
    }

    /// A log not open yet: the file is opened at the first line.
    pub fn closed(path: &Path) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
            file: None,
            reopen: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Setting the flag makes the next line reopen the file (SIGHUP).
    pub fn reopen_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.reopen)
    }

    fn open_file(&self) -> std::io::Result<Open> {
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let (dir, name) = fsx::Dir::of(&self.path)?;
        let file = dir.open_append(&name, MODE)?;
        let m = file.metadata()?;
        Ok(Open {
            file,
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// The open file, reopened when asked to or when the path no longer
    /// names it (rotated away, deleted).
    fn current(&mut self) -> std::io::Result<&mut File> {
        if self.reopen.swap(false, Ordering::Relaxed) {
            self.file = None;
        }
        if let Some(o) = &self.file {
            let same = std::fs::symlink_metadata(&self.path)
                .is_ok_and(|m| m.dev() == o.dev && m.ino() == o.ino);
            if !same {
                self.file = None;
            }
        }
        if self.file.is_none() {
            self.file = Some(self.open_file()?);
        }
        Ok(&mut self.file.as_mut().expect("opened above").file)
    }

    /// Appends the event's line, if it has one.
    pub fn record(&mut self, event: &Event, at: SystemTime) {
        let Some(text) = event.audit_text() else {
            return;
        };
        // Text from outside (nhrpd's fields, BIRD's error text) must not
        // start a line of its own or reach a terminal as an escape.
        let line = format!("{} {}\n", rfc3339(at), escape(&text));
        let written = self.current().and_then(|f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write audit log");
            self.file = None;
        }
    }
}
