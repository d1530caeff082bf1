//! Reads BIRD's lines from the systemd journal and turns its trigger lines
//! into [`Sighting`](super::Sighting)s (`Via::Journal`).
//!
//! Debian 12 ships no syslog daemon: BIRD's `log syslog all;` reaches only
//! systemd-journald. Unlike a shared syslog file, the journal says who sent
//! each entry: `_PID`, `_UID`, `_COMM`, `_EXE` and `_SYSTEMD_UNIT` are set
//! by journald from the sender's socket credentials and /proc, never by the
//! sender. So an entry counts as BIRD's ([`Trust::Bird`](super::Trust::Bird)) only when those
//! fields name BIRD's own process; an entry that merely claims BIRD's
//! syslog identifier (`logger -t bird ...`) is [`Trust::Forged`](super::Trust::Forged).
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
//!
//! Layout: `export` parses journalctl's export format (pure), `cursor`
//! keeps the position in the cursor file, `trust` decides who sent an
//! entry, and `follow` runs journalctl and ties them together.

mod cursor;
mod export;
mod follow;
mod trust;

pub use cursor::{cursor_ok, cursor_path, read_cursor, seqnum_id};
pub use export::{Entry, ExportParser, MAX_FIELD};
pub use follow::{
    find_journalctl, journal_present, Journal, JournalCounts, JournalError, JournalOptions,
    JournalStats,
};
pub use trust::{parse_entry, trust_of, BirdLocator, BirdProcess};
