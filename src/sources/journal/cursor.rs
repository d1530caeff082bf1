//! The journal position: cursors, and the cursor file under the state
//! directory.

use std::path::{Path, PathBuf};

/// Longest cursor accepted from the cursor file (a real one is ~150 bytes).
const MAX_CURSOR: usize = 512;

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

/// `journal.cursor` beside `[agent] state`.
pub fn cursor_path(state: &Path) -> PathBuf {
    match state.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join("journal.cursor"),
        _ => PathBuf::from("journal.cursor"),
    }
}

/// Where the next journalctl starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Position {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::sources::journal) const CURSOR: &str = "s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8a34c52b1d5fa8ab8c2a8c3;m=1a2b;t=5a0f1c2d3e4f5;x=f2e3d4c5b6a79801";

    #[test]
    fn cursors_are_checked() {
        assert!(cursor_ok(CURSOR));
        assert!(!cursor_ok(""));
        assert!(!cursor_ok("garbage"));
        assert!(!cursor_ok(&CURSOR.replace("i=", "j=")));
        assert!(!cursor_ok(&format!("{CURSOR};y=1")));
        assert!(!cursor_ok(&CURSOR.replace("t=5", "t=\n5")));
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
