//! Files in directories that other accounts may write.
//!
//! autopeer runs as root beside BIRD, whose account owns `/etc/bird` on
//! Debian (`bird:bird 0750`). Whatever another account can create in a
//! directory autopeer writes into must never be followed, opened for
//! writing or reused:
//!
//! - the directory is opened once ([`Dir`]) and every file in it is reached
//!   by one name relative to that descriptor (`openat`, `renameat`,
//!   `unlinkat`); the directory's own path is the operator's (config) and
//!   is resolved once, when the [`Dir`] is opened;
//! - a name that is a symbolic link is never followed
//!   ([`Refused::Symlink`]); one that is not a regular file (FIFO, device,
//!   socket, directory) is never opened ([`Refused::NotRegular`]); every
//!   open carries `O_NOFOLLOW|O_NONBLOCK` and is checked with `fstat`, so a
//!   FIFO swapped in after the check cannot hang the caller either;
//! - a new file is created under a fresh random name with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW`: a name planted in advance is `EEXIST`,
//!   never a file we write into. Owner and mode are set on the descriptor
//!   (`fchown`, `fchmod`), never through a path;
//! - a Unix socket is bound inside a private 0700 directory, given its mode
//!   and group there, and only then renamed to its name.
//!
//! Nothing here decides policy; callers name the paths and the modes.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

/// Why a name was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("is a symbolic link; autopeer does not follow links here (name the file itself)")]
    Symlink,
    #[error("is a {0}, not a regular file; autopeer does not open it")]
    NotRegular(&'static str),
    #[error("belongs to uid {0}, not to autopeer's uid {1}; autopeer does not write into it")]
    Owner(u32, u32),
}

impl From<Refused> for io::Error {
    fn from(r: Refused) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, r)
    }
}

/// The refusal inside `err`, if it is one.
pub fn refusal(err: &io::Error) -> Option<&Refused> {
    err.get_ref()?.downcast_ref::<Refused>()
}

/// A word for the file type in `st_mode`.
pub fn kind_name(st_mode: u32) -> &'static str {
    match FileType::from_raw_mode(st_mode) {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

fn check_regular(st: &Stat) -> Result<(), Refused> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(()),
        FileType::Symlink => Err(Refused::Symlink),
        _ => Err(Refused::NotRegular(kind_name(st.st_mode))),
    }
}

/// An open directory; every name below is one path component in it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Attempts at a fresh random name before giving up.
const NAME_ATTEMPTS: usize = 32;

impl Dir {
    /// Opens the directory at `path` (links in `path` itself are followed:
    /// it is the operator's path).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens the directory of `file` and returns it with `file`'s name.
    pub fn of(file: &Path) -> io::Result<(Dir, OsString)> {
        let name = file.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", file.display()),
            )
        })?;
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Ok((Dir::open(dir)?, name.to_os_string()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's own status (owner, group, mode).
    pub fn stat(&self) -> io::Result<Stat> {
        Ok(rustix::fs::fstat(&self.fd)?)
    }

    /// The status of `name` itself (a link is not followed); `None` when
    /// nothing has that name.
    pub fn lstat(&self, name: &OsStr) -> io::Result<Option<Stat>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `openat` with `O_NOFOLLOW|O_NONBLOCK|O_NOCTTY|O_CLOEXEC` added, then
    /// `fstat`: only a regular file comes back.
    fn open_regular(&self, name: &OsStr, flags: OFlags, mode: Mode) -> io::Result<File> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, name, flags, mode) {
            Ok(fd) => fd,
            // One component, O_NOFOLLOW: only the name itself can be a link.
            Err(rustix::io::Errno::LOOP) => return Err(Refused::Symlink.into()),
            // A FIFO without a reader refuses O_WRONLY|O_NONBLOCK.
            Err(rustix::io::Errno::NXIO) => return Err(Refused::NotRegular("FIFO").into()),
            Err(e) => return Err(e.into()),
        };
        check_regular(&rustix::fs::fstat(&fd)?)?;
        Ok(File::from(fd))
    }

    /// Refuses before opening what is there but not a regular file (a
    /// device must not even be opened); `Ok(None)` when nothing is there.
    fn existing_regular(&self, name: &OsStr) -> io::Result<Option<Stat>> {
        match self.lstat(name)? {
            Some(st) => {
                check_regular(&st)?;
                Ok(Some(st))
            }
            None => Ok(None),
        }
    }

    /// Opens the regular file `name` for reading.
    pub fn open_read(&self, name: &OsStr) -> io::Result<File> {
        if self.existing_regular(name)?.is_none() {
            return Err(io::ErrorKind::NotFound.into());
        }
        self.open_regular(name, OFlags::RDONLY, Mode::empty())
    }

    /// Reads the regular file `name`.
    pub fn read(&self, name: &OsStr) -> io::Result<Vec<u8>> {
        let mut f = self.open_read(name)?;
        let mut out = Vec::new();
        io::Read::read_to_end(&mut f, &mut out)?;
        Ok(out)
    }

    /// Opens `name` for appending, creating it with exactly `mode` when it
    /// is missing. An existing file must be a regular file that belongs to
    /// our effective uid ([`Refused::Owner`]).
    pub fn open_append(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let me = rustix::process::geteuid().as_raw();
        if self.existing_regular(name)?.is_none() {
            let create = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::EXCL;
            match self.open_regular(name, create, Mode::from_raw_mode(0o600)) {
                Ok(f) => {
                    rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
                    return Ok(f);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let f = self.open_regular(name, OFlags::WRONLY | OFlags::APPEND, Mode::empty())?;
        let owner = rustix::fs::fstat(&f)?.st_uid;
        if owner != me {
            return Err(Refused::Owner(owner, me).into());
        }
        Ok(f)
    }

    /// Creates a new empty file `.NAME.autopeer-PID-RANDOM.tmp` (mode
    /// 0600) that nobody else can have planted.
    fn create_temp(&self, name: &OsStr) -> io::Result<(File, OsString)> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        for _ in 0..NAME_ATTEMPTS {
            let tmp = temp_name(name, std::process::id(), random_u64());
            match self.open_regular(&tmp, flags, Mode::from_raw_mode(0o600)) {
                Ok(f) => return Ok((f, tmp)),
                // Taken (by anything: a link, a FIFO, a file): another name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{}: {NAME_ATTEMPTS} fresh temporary names were all taken",
                self.path.display()
            ),
        ))
    }

    /// Replaces `name` with `bytes` so that a reader or a crash sees either
    /// the old or the new content: a fresh temp file (see
    /// [`Dir::create_temp`]), written, given the old file's owner and group
    /// (a first file: the directory's group) and exactly `mode` on its
    /// descriptor, fsynced, renamed over `name`, then the directory fsynced.
    /// A symbolic link or anything but a regular file at `name` is refused.
    /// Temp files of writers that died are removed first, so a daemon
    /// killed again and again before a write completes leaves at most one
    /// behind (and a full disk gets their space back).
    pub fn replace(&self, name: &OsStr, bytes: &[u8], mode: u32) -> io::Result<()> {
        self.replace_unsynced(name, bytes, mode)?;
        self.sync()
    }

    /// [`Dir::replace`] but for the directory's fsync: a reader or a crash
    /// still sees the old or the new content (the file is fsynced before the
    /// rename), only the rename may not yet have reached the disk. For a
    /// caller with something urgent to do first; [`Dir::sync`] then.
    pub fn replace_unsynced(&self, name: &OsStr, bytes: &[u8], mode: u32) -> io::Result<()> {
        let (uid, gid) = match self.existing_regular(name)? {
            Some(st) => (Some(st.st_uid), st.st_gid),
            None => (None, self.stat()?.st_gid),
        };
        self.remove_dead_temps(name);
        let (mut f, tmp) = self.create_temp(name)?;
        let result = (|| {
            f.write_all(bytes)?;
            // Mode first: after a chown to another uid, fchmod would need
            // CAP_FOWNER.
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
            let me = rustix::fs::fstat(&f)?;
            if uid.is_some_and(|u| u != me.st_uid) || gid != me.st_gid {
                rustix::fs::fchown(
                    &f,
                    uid.map(rustix::fs::Uid::from_raw),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )?;
            }
            rustix::fs::fsync(&f)?;
            rustix::fs::renameat(&self.fd, &tmp, &self.fd, name)?;
            Ok(())
        })();
        drop(f);
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
        }
        result
    }

    /// fsyncs the directory: its renames and removals reach the disk.
    pub fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.fd)?)
    }

    /// Removes the entry `name` (a link is removed, not followed).
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Removes the temp files of writers that died between creating and
    /// renaming them (SIGKILL, power loss): `.NAME.autopeer-PID-X.tmp` and
    /// the older `.NAME.autopeer-PID.tmp`, when PID is not running. Only
    /// regular files are removed, by `unlinkat` of the name; nothing is
    /// opened, so a link planted there leads nowhere.
    fn remove_dead_temps(&self, name: &OsStr) {
        let Ok(entries) = rustix::fs::Dir::read_from(&self.fd) else {
            return;
        };
        let me = std::process::id();
        for entry in entries.flatten() {
            let file = OsStr::from_bytes(entry.file_name().to_bytes());
            let Some(pid) = temp_pid(name, file) else {
                continue;
            };
            if pid == me || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if let Ok(Some(st)) = self.lstat(file) {
                if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
                    let _ = rustix::fs::unlinkat(&self.fd, file, AtFlags::empty());
                }
            }
        }
    }

    /// Binds a Unix stream socket at `name` with exactly `mode` and, when
    /// given, group `gid`, without ever touching a path another account
    /// could swap: the socket is bound in a fresh private 0700 directory
    /// (reached through `/proc/self/fd`, not by its name), its mode and
    /// group set there, and then it is renamed to `name`; an existing
    /// `name` is an `AlreadyExists` error, as for `bind`. Returns the
    /// socket's status as it was set (owner, group, mode), before anyone
    /// else could reach it.
    pub fn bind_unix(
        &self,
        name: &OsStr,
        mode: u32,
        gid: Option<u32>,
    ) -> io::Result<(std::os::unix::net::UnixListener, Stat)> {
        let me = rustix::process::geteuid().as_raw();
        let mut private = None;
        for _ in 0..NAME_ATTEMPTS {
            let candidate = temp_name(name, std::process::id(), random_u64());
            match rustix::fs::mkdirat(&self.fd, &candidate, Mode::from_raw_mode(0o700)) {
                Ok(()) => {
                    private = Some(candidate);
                    break;
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let Some(private) = private else {
            return Err(io::ErrorKind::AlreadyExists.into());
        };
        let result = (|| {
            let pfd = rustix::fs::openat(
                &self.fd,
                &private,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            // Someone may have swapped the name between mkdir and open.
            let st = rustix::fs::fstat(&pfd)?;
            if st.st_uid != me || st.st_mode & 0o077 != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{}: the private directory for the socket was replaced",
                        self.path.display()
                    ),
                ));
            }
            let inner = OsStr::new("socket");
            let via = PathBuf::from(format!("/proc/self/fd/{}", pfd.as_raw_fd())).join(inner);
            let bound = (|| {
                let listener = std::os::unix::net::UnixListener::bind(&via)?;
                rustix::fs::chmodat(&pfd, inner, Mode::from_raw_mode(mode), AtFlags::empty())?;
                if let Some(g) = gid {
                    rustix::fs::chownat(
                        &pfd,
                        inner,
                        None,
                        Some(rustix::fs::Gid::from_raw(g)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                }
                let st = rustix::fs::statat(&pfd, inner, AtFlags::SYMLINK_NOFOLLOW)?;
                rustix::fs::renameat_with(
                    &pfd,
                    inner,
                    &self.fd,
                    name,
                    rustix::fs::RenameFlags::NOREPLACE,
                )?;
                Ok((listener, st))
            })();
            if bound.is_err() {
                let _ = rustix::fs::unlinkat(&pfd, inner, AtFlags::empty());
            }
            bound
        })();
        let _ = rustix::fs::unlinkat(&self.fd, &private, AtFlags::REMOVEDIR);
        result
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `.NAME.autopeer-PID-RANDOM.tmp`.
fn temp_name(name: &OsStr, pid: u32, random: u64) -> OsString {
    let mut out = b".".to_vec();
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(format!(".autopeer-{pid}-{random:016x}.tmp").as_bytes());
    OsString::from_vec(out)
}

/// The writer's pid in a temp name of `name` (either form).
fn temp_pid(name: &OsStr, file: &OsStr) -> Option<u32> {
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(name.as_bytes());
    prefix.extend_from_slice(b".autopeer-");
    let rest = file.as_bytes().strip_prefix(prefix.as_slice())?;
    let rest = std::str::from_utf8(rest.strip_suffix(b".tmp")?).ok()?;
    let pid = match rest.split_once('-') {
        Some((pid, random)) if random.bytes().all(|b| b.is_ascii_hexdigit()) => pid,
        Some(_) => return None,
        None => rest,
    };
    pid.parse().ok()
}

/// 64 unpredictable bits: SipHash under the process's random std key,
/// over a counter and the clock.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Reads the regular file at `path` without following a link at its last
/// component and without blocking on a FIFO.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let (dir, name) = Dir::of(path)?;
    dir.read(&name)
}

/// [`read`], as UTF-8.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replace_writes_exact_mode_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        let n = OsStr::new("f.conf");
        d.replace(n, b"one\n", 0o640).unwrap();
        d.replace(n, b"two\n", 0o640).unwrap();
        assert_eq!(std::fs::read(t.path().join("f.conf")).unwrap(), b"two\n");
        assert_eq!(names(t.path()), ["f.conf"]);
        let m = std::fs::metadata(t.path().join("f.conf")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    }

    #[test]
    fn a_link_or_fifo_at_the_name_is_refused_untouched() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, t.path().join("link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            t.path().join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let d = Dir::open(t.path()).unwrap();
        for (name, want) in [
            ("link", Refused::Symlink),
            ("fifo", Refused::NotRegular("FIFO")),
        ] {
            let n = OsStr::new(name);
            for err in [
                d.replace(n, b"x", 0o640).unwrap_err(),
                d.read(n).unwrap_err(),
                d.open_append(n, 0o640).unwrap_err(),
            ] {
                assert_eq!(refusal(&err), Some(&want), "{name}: {err}");
            }
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(t.path().join("link"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(names(t.path()), ["fifo", "link", "target"]);
    }

    #[test]
    fn an_exclusive_create_never_opens_a_planted_name() {
        // The primitive under `create_temp`: whatever sits at the name
        // (a link to a victim, a FIFO) is EEXIST, never opened.
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, t.path().join("planted")).unwrap();
        let d = Dir::open(t.path()).unwrap();
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
        let err = d
            .open_regular(OsStr::new("planted"), flags, Mode::from_raw_mode(0o600))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn append_creates_with_exact_mode_and_refuses_a_stranger_file() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        let n = OsStr::new("audit.log");
        writeln!(d.open_append(n, 0o640).unwrap(), "a").unwrap();
        writeln!(d.open_append(n, 0o640).unwrap(), "b").unwrap();
        let p = t.path().join("audit.log");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\nb\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
            let err = d.open_append(n, 0o640).unwrap_err();
            assert_eq!(refusal(&err), Some(&Refused::Owner(65534, 0)));
        }
    }

    #[test]
    fn temp_names_are_fresh_and_recognised() {
        let a = temp_name(OsStr::new("x.conf"), 42, random_u64());
        let b = temp_name(OsStr::new("x.conf"), 42, random_u64());
        assert_ne!(a, b);
        let n = OsStr::new("x.conf");
        assert_eq!(temp_pid(n, &a), Some(42));
        assert_eq!(temp_pid(n, OsStr::new(".x.conf.autopeer-7.tmp")), Some(7));
        assert_eq!(temp_pid(n, OsStr::new(".y.conf.autopeer-7.tmp")), None);
        assert_eq!(temp_pid(n, OsStr::new(".x.conf.autopeer-7-zz.tmp")), None);
        assert_eq!(temp_pid(n, OsStr::new("x.conf")), None);
    }

    #[test]
    fn bind_unix_sets_mode_and_group_and_refuses_an_existing_name() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        let n = OsStr::new("ctl.sock");
        let gid = std::fs::metadata(t.path()).unwrap().gid();
        let (l, st) = d.bind_unix(n, 0o660, Some(gid)).unwrap();
        assert_eq!((st.st_gid, st.st_mode & 0o777), (gid, 0o660));
        let p = t.path().join("ctl.sock");
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o660);
        assert_eq!(m.gid(), gid);
        // Reachable at its final name.
        let _c = std::os::unix::net::UnixStream::connect(&p).unwrap();
        assert!(l.accept().is_ok());
        let err = d.bind_unix(n, 0o660, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(names(t.path()), ["ctl.sock"], "no private dir left");
    }

    #[test]
    fn dead_temps_go_live_and_foreign_ones_stay() {
        let t = tempfile::tempdir().unwrap();
        let dead_old = t.path().join(".f.conf.autopeer-99999999.tmp");
        let dead_new = t.path().join(".f.conf.autopeer-99999999-00ff.tmp");
        let alive = t.path().join(".f.conf.autopeer-1.tmp");
        let other = t.path().join(".g.conf.autopeer-99999999.tmp");
        let victim = t.path().join("victim");
        let link = t.path().join(".f.conf.autopeer-99999998.tmp");
        for f in [&dead_old, &dead_new, &alive, &other, &victim] {
            std::fs::write(f, b"half").unwrap();
        }
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let d = Dir::open(t.path()).unwrap();
        d.replace(OsStr::new("f.conf"), b"new", 0o640).unwrap();
        assert!(!dead_old.exists() && !dead_new.exists());
        assert!(alive.exists(), "pid 1 is alive: its file stays");
        assert!(other.exists(), "another file's temp stays");
        assert!(
            std::fs::symlink_metadata(&link).is_ok(),
            "a link is not ours"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"half");
    }
}
