//! The audit log: one human line per decision, appended.
//!
//! `2026-11-23T06:55:02Z adding neighbor 10.88.0.2 to group clients (via bird-log)`
//!
//! Lines come only from [`crate::event::Event::audit_text`]. A write
//! failure is logged, never fatal: the daemon keeps deciding.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::event::{rfc3339, Event};

pub struct AuditLog {
    path: PathBuf,
    file: Option<File>,
}

impl AuditLog {
    /// Opens (creates, mode 0640) the log for appending. An unopenable file
    /// is reported by the caller and retried at each write.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let mut log = AuditLog {
            path: path.to_path_buf(),
            file: None,
        };
        log.file = Some(log.reopen()?);
        Ok(log)
    }

    fn reopen(&self) -> std::io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)
    }

    /// Appends the event's line, if it has one.
    pub fn record(&mut self, event: &Event, at: SystemTime) {
        let Some(text) = event.audit_text() else {
            return;
        };
        let line = format!("{} {}\n", rfc3339(at), text);
        if self.file.is_none() {
            self.file = self.reopen().ok();
        }
        let ok = match self.file.as_mut() {
            Some(f) => f.write_all(line.as_bytes()).is_ok(),
            None => false,
        };
        if !ok {
            tracing::error!(path = %self.path.display(), "cannot write audit log");
            self.file = None;
        }
    }
}
