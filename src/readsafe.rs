//! Opening a file for reading without being made to hang or to read
//! something that is not a file.
//!
//! autopeer reads, as root, paths in directories that BIRD's account can
//! write (`/etc/bird`, `/var/log/bird`, `/run/bird`). Whoever can write there
//! can put a FIFO at the path (a plain `open` then blocks until a writer
//! shows up, a `read` until it writes), a symbolic link to `/dev/zero` (an
//! endless read) or to `/dev/watchdog` (whose mere open arms a reboot), a
//! directory, or a sparse file of a terabyte. [`open`] is the one way in:
//!
//! 1. `open(path, O_PATH | O_CLOEXEC [| O_NOFOLLOW])`: resolves the path
//!    without opening the object itself, so neither a FIFO nor a device
//!    sees an open;
//! 2. `fstat` on that descriptor: anything but a regular file is refused
//!    with an error that names its type ([`Links::Refuse`] sees a symbolic
//!    link itself and refuses it too);
//! 3. the very inode behind that descriptor is opened for reading through
//!    `/proc/self/fd/N` with `O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC`,
//!    and checked to be the same inode.
//!
//! `O_NONBLOCK` stays set: it changes nothing for a regular file on a disk
//! file system, and a "regular" file that would block anyway (procfs's
//! `kmsg`) fails with `WouldBlock` instead of hanging. Without `/proc` step
//! 3 falls back to opening the path itself with the same flags.
//!
//! [`read`] adds a size cap, checked before reading (from `fstat`) and
//! while reading (a file that grows).
//!
//! Errors are [`io::Error`]s whose message does not repeat the path: every
//! caller already says "cannot read PATH: ...". A refusal is an
//! [`fsx::Refused`] ([`io::ErrorKind::InvalidInput`]), as for the files
//! autopeer writes and reads back through [`fsx`] (its own include, the
//! state file); a missing file keeps [`io::ErrorKind::NotFound`].
//!
//! [`fsx`] reaches files in a directory autopeer opened itself and never
//! follows a link; this module is for paths an operator names, where a link
//! may be wanted ([`Links::Follow`], bird.conf's includes), and for what
//! needs a size cap or a pin ([`Pinned`], the tail).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

use crate::fsx::{self, Refused};

const S_IFMT: u32 = 0o170000;

/// Whether a symbolic link at the path's last component is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it (the target must still be a regular file). For paths an
    /// operator names and that BIRD itself follows (bird.conf's includes).
    Follow,
    /// Refuse it: for files in directories another account can write, where
    /// a link could point autopeer, as root, at a file that account cannot
    /// read.
    Refuse,
}

/// Largest bird.conf, included file or autopeer.toml autopeer reads.
pub const MAX_CONFIG: u64 = 16 << 20;

/// Opens `path` for reading if, and only if, it is a regular file (see the
/// module docs). The descriptor is non-blocking.
pub fn open(path: &Path, links: Links) -> io::Result<File> {
    Pinned::new(path, links)?.open().map_err(|(_, e)| e)
}

/// Whatever is at a path, held by an `O_PATH` descriptor (steps 1 and 2 of
/// the module docs) but not opened: it cannot be swapped for something
/// else, and while it is held its inode number cannot be reused.
#[derive(Debug)]
pub struct Pinned {
    fd: OwnedFd,
    /// Device, inode and `st_mode`.
    dev: u64,
    ino: u64,
    mode: u32,
    path: PathBuf,
    links: Links,
}

impl Pinned {
    /// Pins what is at `path` (with [`Links::Refuse`], a symbolic link
    /// itself). A missing path is [`io::ErrorKind::NotFound`].
    pub fn new(path: &Path, links: Links) -> io::Result<Pinned> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::CLOEXEC | links.nofollow(),
            Mode::empty(),
        )?;
        let stat = rustix::fs::fstat(&fd)?;
        Ok(Pinned {
            fd,
            dev: stat.st_dev,
            ino: stat.st_ino,
            mode: stat.st_mode,
            path: path.to_path_buf(),
            links,
        })
    }

    /// Device, inode and file type (`S_IFMT` bits) of what is pinned.
    pub fn id(&self) -> (u64, u64, u32) {
        (self.dev, self.ino, self.mode & S_IFMT)
    }

    /// Opens the pinned object for reading (step 3) if it is a regular
    /// file; otherwise gives the pin back with the reason.
    pub fn open(self) -> Result<File, (Pinned, io::Error)> {
        match self.open_regular() {
            Ok(f) => Ok(f),
            Err(e) => Err((self, e)),
        }
    }

    fn open_regular(&self) -> io::Result<File> {
        refuse_unless_regular(self.mode)?;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(
            format!("/proc/self/fd/{}", self.fd.as_raw_fd()),
            flags,
            Mode::empty(),
        ) {
            Err(rustix::io::Errno::NOENT) => {
                rustix::fs::open(&self.path, flags | self.links.nofollow(), Mode::empty())?
            }
            other => other?,
        };
        let now = rustix::fs::fstat(&fd)?;
        refuse_unless_regular(now.st_mode)?;
        if (now.st_dev, now.st_ino) != (self.dev, self.ino) {
            return Err(io::Error::other("was replaced while being opened"));
        }
        Ok(File::from(fd))
    }
}

impl Links {
    fn nofollow(self) -> OFlags {
        match self {
            Links::Follow => OFlags::empty(),
            Links::Refuse => OFlags::NOFOLLOW,
        }
    }
}

/// Reads all of the regular file at `path`, refusing one larger than `max`
/// bytes.
pub fn read(path: &Path, links: Links, max: u64) -> io::Result<Vec<u8>> {
    let file = open(path, links)?;
    let len = file.metadata()?.len();
    if len > max {
        return Err(too_large(max));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(bytes)
}

/// [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path, links: Links, max: u64) -> io::Result<String> {
    String::from_utf8(read(path, links, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

fn too_large(max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("is larger than {max} bytes"),
    )
}

/// Ok for a regular file; otherwise [`fsx::Refused`] naming what is there
/// (the same words as for the files autopeer writes).
fn refuse_unless_regular(mode: u32) -> io::Result<()> {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => Ok(()),
        FileType::Symlink => Err(Refused::Symlink.into()),
        _ => Err(Refused::NotRegular(fsx::kind_name(mode)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn reads_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "hello\n").unwrap();
        assert_eq!(read_to_string(&p, Links::Refuse, 100).unwrap(), "hello\n");
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        mkfifo(&p);
        for links in [Links::Follow, Links::Refuse] {
            let e = read(&p, links, 100).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("FIFO"), "{e}");
        }
    }

    #[test]
    fn links_are_followed_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read(&link, Links::Follow, 10).unwrap(), b"x");
        let e = read(&link, Links::Refuse, 10).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn a_link_to_a_device_is_refused_even_when_following() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read(&link, Links::Follow, 10).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }

    #[test]
    fn directories_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), Links::Follow, 10).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let e = read(&dir.path().join("nope"), Links::Refuse, 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn size_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::File::create(&p).unwrap().set_len(1 << 40).unwrap();
        let e = read(&p, Links::Refuse, 4096).unwrap_err();
        assert!(e.to_string().contains("larger than 4096 bytes"), "{e}");
        std::fs::write(&p, [b'a'; 11]).unwrap();
        assert!(read(&p, Links::Refuse, 10).is_err());
        assert_eq!(read(&p, Links::Refuse, 11).unwrap().len(), 11);
    }
}
