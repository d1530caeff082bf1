//! Putting a new roster into BIRD safely: atomic write, `configure`,
//! byte-exact rollback.
//!
//! The sequence for one apply (docs/facts.md § Failure rules):
//!
//! 1. connect to BIRD first: when BIRD is down nothing is written;
//! 2. keep the old include's bytes, write the new one atomically
//!    (temp file, fsync, rename; mode 0640; the directory's fsync follows
//!    step 5, off the path from knock to `configure`);
//! 3. note which protocols are down (an operator's `birdc disable`);
//! 4. `configure`: BIRD parses the whole new config before it commits
//!    anything and refuses it on a parse error, naming file and line, on
//!    every supported version (docs/facts.md, fact 16; tests/configure.rs).
//!    An error inside the owned include restores the old bytes exactly
//!    ([`ApplyError::Rejected`]); an error in any other file leaves the
//!    (valid) include in place and reports [`ApplyError::BrokenElsewhere`].
//!    No `configure check` first: it would parse the same config a second
//!    time and prove nothing `configure` does not (fact 16 has the cost);
//! 5. disable again what `configure` re-enabled (docs/facts.md, fact 9).
//!
//! No decisions are made here: the roster task decides what to write.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bird::client::{ClientError, Connection};
use crate::bird::protocols::{self, ProtoState};
use crate::fsx;

/// Where to apply.
#[derive(Debug, Clone)]
pub struct Target {
    /// BIRD's control socket.
    pub socket: PathBuf,
    /// The include file autopeer owns.
    pub include: PathBuf,
    /// The time-out for each BIRD command (`configure` of 10,000 protocols
    /// takes ~8 s, docs/facts.md, fact 5).
    pub timeout: Duration,
}

/// What a successful apply did besides loading the new roster.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Protocols re-disabled after `configure` re-enabled them.
    pub kept_disabled: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// BIRD could not be reached or dropped the connection. The include may
    /// hold the new roster (`written`); retry later.
    #[error("BIRD unavailable ({source}); include {}", if *.written { "written, not yet loaded" } else { "unchanged" })]
    Unavailable {
        written: bool,
        #[source]
        source: ClientError,
    },
    /// BIRD rejected the owned include; the old bytes are back.
    #[error("BIRD rejected the new include: {text}")]
    Rejected { text: String },
    /// BIRD's config is broken in a file autopeer does not own; the new
    /// include stays in place (it is valid) and is loaded once that is fixed.
    #[error("BIRD's config is broken outside autopeer's include: {text}")]
    BrokenElsewhere { text: String },
    /// The include could not be written (disk full, permissions): nothing
    /// changed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The rollback itself failed: the include holds the rejected roster.
    #[error("cannot restore {} after BIRD rejected it ({text}): {source}", path.display())]
    RollbackFailed {
        path: PathBuf,
        text: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `new_text` as the owned include and makes BIRD load it.
pub async fn apply(target: &Target, new_text: &str) -> Result<Applied, ApplyError> {
    apply_on(connect(target).await?, target, new_text).await
}

/// Step 1: the connection to BIRD, before anything is written. Its
/// greeting tells the caller BIRD's version (the language to render in).
pub async fn connect(target: &Target) -> Result<Connection, ApplyError> {
    let mut conn = Connection::connect(&target.socket, target.timeout)
        .await
        .map_err(|source| ApplyError::Unavailable {
            written: false,
            source,
        })?;
    conn.set_timeout(target.timeout);
    Ok(conn)
}

/// Steps 2-5 on a connection from [`connect`].
pub async fn apply_on(
    mut conn: Connection,
    target: &Target,
    new_text: &str,
) -> Result<Applied, ApplyError> {
    let write_err = |source| ApplyError::Write {
        path: target.include.clone(),
        source,
    };
    // One open directory for the read, the write and a rollback; a link at
    // the include's name is refused, not followed (module doc of `fsx`).
    let (dir, name) = fsx::Dir::of(&target.include).map_err(write_err)?;
    let old = match dir.read(&name) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(write_err(source)),
    };
    let changed = old.as_deref() != Some(new_text.as_bytes());
    if changed {
        // The directory's fsync waits until BIRD has the new roster: the
        // file itself is on disk before the rename, so a crash still finds
        // the old include or the new one, never a mix.
        dir.replace_unsynced(&name, new_text.as_bytes(), FILE_MODE)
            .map_err(write_err)?;
    }
    let owned = Owned {
        target,
        dir: &dir,
        name: &name,
        old: old.as_deref(),
        changed,
    };
    let result = load(&mut conn, &owned).await;
    if changed {
        if let Err(e) = dir.sync() {
            tracing::warn!(error = %e, path = %target.include.display(), "cannot fsync the include's directory");
        }
    }
    result
}

/// Steps 3-5: BIRD loads what is in the include now.
async fn load(conn: &mut Connection, owned: &Owned<'_>) -> Result<Applied, ApplyError> {
    let unavailable = |source| ApplyError::Unavailable {
        written: owned.changed,
        source,
    };
    let down_before = down_protocols(conn).await.map_err(unavailable)?;
    let started = std::time::Instant::now();
    let configured = conn.configure().await;
    if !matches!(&configured, Err(e) if e.bird_text().is_none()) {
        crate::metrics::configure_took(started.elapsed());
    }
    if let Err(e) = configured {
        return Err(owned.rejected_or_elsewhere(e));
    }

    let mut applied = Applied::default();
    if !down_before.is_empty() {
        let down_after = down_protocols(conn).await.map_err(unavailable)?;
        for name in down_before.difference(&down_after) {
            conn.disable(name).await.map_err(unavailable)?;
            applied.kept_disabled.push(name.clone());
        }
    }
    Ok(applied)
}

/// The include being applied: where it is and what it held before.
struct Owned<'a> {
    target: &'a Target,
    dir: &'a fsx::Dir,
    name: &'a std::ffi::OsStr,
    old: Option<&'a [u8]>,
    changed: bool,
}

impl Owned<'_> {
    /// Sorts a failed `configure` into rejection (restore), broken
    /// elsewhere (keep) or unavailable (retry).
    fn rejected_or_elsewhere(&self, err: ClientError) -> ApplyError {
        let Some(text) = err.bird_text() else {
            return ApplyError::Unavailable {
                written: self.changed,
                source: err,
            };
        };
        let in_owned = err
            .config_file()
            .map(|file| same_file(file, &self.target.include))
            .unwrap_or(false);
        if !in_owned {
            return ApplyError::BrokenElsewhere { text };
        }
        let restored = match self.old {
            Some(bytes) => self.dir.replace(self.name, bytes, FILE_MODE),
            None => self.dir.remove(self.name),
        };
        match restored {
            Ok(()) => ApplyError::Rejected { text },
            Err(source) => ApplyError::RollbackFailed {
                path: self.target.include.clone(),
                text,
                source,
            },
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The names of protocols BIRD shows as `down` right now.
async fn down_protocols(conn: &mut Connection) -> Result<BTreeSet<String>, ClientError> {
    let reply = conn.show_protocols(false, None).await?;
    // A reply we cannot parse protects nothing; treat it as "none down"
    // rather than refusing to apply.
    let rows = protocols::parse_protocols(&reply).unwrap_or_default();
    Ok(rows
        .into_iter()
        .filter(|p| p.state == ProtoState::Down)
        .map(|p| p.name)
        .collect())
}

/// The mode of every file autopeer writes (the include holds MD5 keys).
pub const FILE_MODE: u32 = 0o640;

/// Replaces `path` with `bytes` so that a reader (BIRD) or a crash sees
/// either the old or the new content, never a mix (see
/// [`fsx::Dir::replace`]): a fresh temp file nobody else can have planted,
/// fsync, rename, fsync of the directory; mode 0640, the old file's owner
/// and group (a first write: the directory's group, as BSD-style
/// directories would; BIRD runs as `bird` and must still read it). A
/// symbolic link at `path` is refused, never written through: an operator
/// who wants the file elsewhere names that place in the config.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (dir, name) = fsx::Dir::of(path)?;
    dir.replace(&name, bytes, FILE_MODE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("autopeer.conf");
        write_atomic(&p, b"one\n").unwrap();
        write_atomic(&p, b"two\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn atomic_write_keeps_owner_and_group() {
        use std::os::unix::fs::MetadataExt;
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipping owner test: not root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("autopeer.conf");
        write_atomic(&p, b"one\n").unwrap();
        // As if BIRD's group owned it: nobody:nogroup stands in.
        let (uid, gid) = (65534, 65534);
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        write_atomic(&p, b"two\n").unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, gid));
        // A first write takes the directory's group.
        std::os::unix::fs::chown(dir.path(), None, Some(gid)).unwrap();
        let q = dir.path().join("new.conf");
        write_atomic(&q, b"x").unwrap();
        assert_eq!(std::fs::metadata(&q).unwrap().gid(), gid);
    }

    #[test]
    fn atomic_write_into_missing_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope").join("autopeer.conf");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
    }
}
