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
        self.record_all(std::slice::from_ref(event), at);
    }

    /// Appends the lines of `events` (those that have one) in one write.
    pub fn record_all(&mut self, events: &[Event], at: SystemTime) {
        let stamp = rfc3339(at);
        let mut lines = String::new();
        for text in events.iter().filter_map(Event::audit_text) {
            // Text from outside (nhrpd's fields, BIRD's error text) must
            // not start a line of its own or reach a terminal as an escape.
            lines.push_str(&stamp);
            lines.push(' ');
            lines.push_str(&escape(&text));
            lines.push('\n');
        }
        if lines.is_empty() {
            return;
        }
        let written = self.current().and_then(|f| f.write_all(lines.as_bytes()));
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write audit log");
            self.file = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_one_line_per_audited_event_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut log = AuditLog::open(&path).unwrap();
        let events = [
            Event::RejectedByBird {
                names: vec!["a".into()],
                text: "one\nforged line".into(),
            },
            // Not audited: no line, not an empty one.
            Event::Applied {
                added: 1,
                removed: 0,
                millis: 3,
            },
            Event::RejectedByBird {
                names: vec!["b".into()],
                text: "two".into(),
            },
        ];
        log.record_all(&events, SystemTime::UNIX_EPOCH);
        log.record_all(&[], SystemTime::UNIX_EPOCH);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("1970-01-01T00:00:00Z ") && lines[0].contains("one\\nforged line")
        );
        assert!(lines[1].contains("two"), "{text}");
    }
}
