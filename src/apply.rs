//! Putting a new roster into BIRD safely: atomic write, `configure check`,
//! `configure`, byte-exact rollback.
//!
//! The sequence for one apply (DESIGN.md § Failure rules):
//!
//! 1. connect to BIRD first: when BIRD is down nothing is written;
//! 2. keep the old include's bytes, write the new one atomically
//!    (temp file, fsync, rename, fsync of the directory; mode 0640);
//! 3. `configure check`: an error inside the owned include restores the old
//!    bytes exactly ([`ApplyError::Rejected`]); an error in any other file
//!    leaves the (valid) include in place and reports
//!    [`ApplyError::BrokenElsewhere`];
//! 4. note which protocols are down (an operator's `birdc disable`);
//! 5. `configure`;
//! 6. disable again what `configure` re-enabled (DESIGN.md fact 9).
//!
//! No decisions are made here: the roster task decides what to write.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bird::client::{ClientError, Connection};
use crate::bird::protocols::{self, ProtoState};

/// Where to apply.
#[derive(Debug, Clone)]
pub struct Target {
    /// BIRD's control socket.
    pub socket: PathBuf,
    /// The include file autopeer owns.
    pub include: PathBuf,
    /// The time-out for each BIRD command (`configure` of 10,000 protocols
    /// takes ~8 s, DESIGN.md fact 5).
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
    let mut conn = Connection::connect(&target.socket, target.timeout)
        .await
        .map_err(|source| ApplyError::Unavailable {
            written: false,
            source,
        })?;
    conn.set_timeout(target.timeout);

    let old = match crate::readsafe::read(
        &target.include,
        crate::readsafe::Links::Refuse,
        crate::readsafe::MAX_OWN,
    ) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ApplyError::Write {
                path: target.include.clone(),
                source,
            })
        }
    };
    let changed = old.as_deref() != Some(new_text.as_bytes());
    if changed {
        write_atomic(&target.include, new_text.as_bytes()).map_err(|source| ApplyError::Write {
            path: target.include.clone(),
            source,
        })?;
    }

    let unavailable = |source| ApplyError::Unavailable {
        written: changed,
        source,
    };
    if let Err(e) = conn.configure_check().await {
        return Err(rejected_or_elsewhere(target, old.as_deref(), changed, e));
    }

    let down_before = down_protocols(&mut conn).await.map_err(unavailable)?;
    if let Err(e) = conn.configure().await {
        return Err(rejected_or_elsewhere(target, old.as_deref(), changed, e));
    }

    let mut applied = Applied::default();
    if !down_before.is_empty() {
        let down_after = down_protocols(&mut conn).await.map_err(unavailable)?;
        for name in down_before.difference(&down_after) {
            conn.disable(name).await.map_err(unavailable)?;
            applied.kept_disabled.push(name.clone());
        }
    }
    Ok(applied)
}

/// Sorts a failed `configure [check]` into rejection (restore), broken
/// elsewhere (keep) or unavailable (retry).
fn rejected_or_elsewhere(
    target: &Target,
    old: Option<&[u8]>,
    changed: bool,
    err: ClientError,
) -> ApplyError {
    let Some(text) = err.bird_text() else {
        return ApplyError::Unavailable {
            written: changed,
            source: err,
        };
    };
    let in_owned = err
        .config_file()
        .map(|file| same_file(file, &target.include))
        .unwrap_or(false);
    if !in_owned {
        return ApplyError::BrokenElsewhere { text };
    }
    let restored = match old {
        Some(bytes) => write_atomic(&target.include, bytes),
        None => std::fs::remove_file(&target.include),
    };
    match restored {
        Ok(()) => ApplyError::Rejected { text },
        Err(source) => ApplyError::RollbackFailed {
            path: target.include.clone(),
            text,
            source,
        },
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

/// Replaces `path` with `bytes` so that a reader (BIRD) or a crash sees
/// either the old or the new content, never a mix: write a temp file in the
/// same directory, fsync it, rename it over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.autopeer-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        f.write_all(bytes)?;
        keep_owner(&f, path, dir)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        remove_dead_temps(dir, &name);
    }
    result
}

/// Removes `.NAME.autopeer-PID.tmp` files of writers that died between
/// creating and renaming them (SIGKILL, power loss), so that crashes do not
/// pile them up beside the include. A live writer's file is left alone.
fn remove_dead_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.autopeer-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let pid = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The new file gets the old file's owner and group (BIRD runs as user
/// `bird` and must still read it); a first write takes the directory's
/// group, as BSD-style directories would.
fn keep_owner(f: &std::fs::File, path: &Path, dir: &Path) -> std::io::Result<()> {
    use rustix::fs::{fchown, Gid, Uid};
    use std::os::unix::fs::MetadataExt;
    let (uid, gid) = match std::fs::metadata(path) {
        Ok(m) => (Some(m.uid()), m.gid()),
        Err(_) => (None, std::fs::metadata(dir)?.gid()),
    };
    let me = f.metadata()?;
    if uid.map_or(true, |u| u == me.uid()) && gid == me.gid() {
        return Ok(());
    }
    fchown(f, uid.map(Uid::from_raw), Some(Gid::from_raw(gid))).map_err(std::io::Error::from)
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
    fn atomic_write_removes_temp_files_of_dead_writers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("autopeer.conf");
        // pid_max is at most 2^22: this pid cannot be running.
        let dead = dir.path().join(".autopeer.conf.autopeer-99999999.tmp");
        let alive = dir.path().join(".autopeer.conf.autopeer-1.tmp");
        let other = dir.path().join(".other.conf.autopeer-99999999.tmp");
        for f in [&dead, &alive, &other] {
            std::fs::write(f, b"half").unwrap();
        }
        write_atomic(&p, b"new\n").unwrap();
        assert!(!dead.exists());
        assert!(alive.exists(), "pid 1 is alive: its file stays");
        assert!(other.exists(), "another file's temp stays");
    }

    #[test]
    fn atomic_write_into_missing_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope").join("autopeer.conf");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
    }
}
