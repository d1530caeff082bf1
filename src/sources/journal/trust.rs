//! Who sent a journal entry: the trust decision (pure) and finding BIRD's
//! process (I/O).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::export::Entry;
use crate::sources::lines::{self, LineOutcome};
use crate::sources::{Trust, Via};

/// BIRD's running process, as autopeer resolved it: its pid and the
/// target of `/proc/PID/exe` read at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdProcess {
    pub pid: i32,
    pub exe: Vec<u8>,
}

/// How far an entry that carries BIRD's identifier can be trusted, from
/// the fields journald set (never from the sender's own fields).
///
/// - [`Trust::Bird`] when `_PID` is BIRD's pid *and* `_EXE` is that
///   process's executable (a recycled pid running something else does not
///   pass), or when the entry comes from the system unit `bird.service`
///   and its executable is named `bird`/`bird6` (no unprivileged process
///   can enter a system unit's cgroup; this also covers lines of a BIRD
///   that has since restarted, read late).
/// - Otherwise, with BIRD's pid known, the entry is another process's:
///   [`Trust::Forged`]. With BIRD's pid unknown (BIRD down), an entry
///   whose `_EXE` names another program is forged, and the rest (no
///   `_EXE`: the sender had exited) cannot be told: [`Trust::Unverified`].
pub fn trust_of(e: &Entry, bird: Option<&BirdProcess>) -> Trust {
    let exe_named_bird = e.exe.as_deref().is_some_and(|x| {
        let x = x.strip_suffix(b" (deleted)").unwrap_or(x);
        let name = x.rsplit(|&b| b == b'/').next().unwrap_or(x);
        name == b"bird" || name == b"bird6"
    });
    let birds_unit = exe_named_bird && e.unit.as_deref() == Some(b"bird.service");
    match bird {
        Some(b) if e.pid == Some(b.pid) && e.exe.as_deref() == Some(&b.exe[..]) => Trust::Bird,
        _ if birds_unit => Trust::Bird,
        Some(_) => Trust::Forged,
        None if e.exe.is_some() && !exe_named_bird => Trust::Forged,
        None => Trust::Unverified,
    }
}

/// What one entry says. Parsing comes first, so that only trigger lines
/// cost a look at BIRD's process.
pub fn parse_entry(
    e: &Entry,
    at: SystemTime,
    bird: impl FnOnce(Option<i32>) -> Option<BirdProcess>,
) -> LineOutcome {
    // journalctl filters on these already; the same rule as for syslog
    // files (sources::lines) holds here too.
    if !matches!(e.identifier.as_deref(), Some(b"bird" | b"bird6")) {
        return LineOutcome::Irrelevant;
    }
    if e.message_too_long {
        return LineOutcome::Malformed(lines::Malformed::TooLong);
    }
    let Some(msg) = e.message.as_deref() else {
        return LineOutcome::Irrelevant;
    };
    let Ok(msg) = std::str::from_utf8(msg) else {
        return LineOutcome::Irrelevant;
    };
    match lines::parse_bird_message(msg, Via::Journal, Trust::Unverified, at) {
        LineOutcome::Sighting(mut s) => {
            s.trust = trust_of(e, bird(e.pid).as_ref());
            LineOutcome::Sighting(s)
        }
        other => other,
    }
}

// ----- BIRD's process (I/O) -----

/// Finds BIRD's process through its control socket, as the keyring does
/// ([`crate::keyring::Bird::find`]: the process holding the listening
/// socket, so a daemonized BIRD is found too, pinned by a pidfd), and keeps
/// it while [`crate::keyring::Bird::verify`] says that very process still
/// holds the socket (a pid taken over by another process does not pass).
#[derive(Debug)]
pub struct BirdLocator {
    socket: PathBuf,
    known: Option<(crate::keyring::Bird, BirdProcess)>,
    /// When BIRD was last looked for in vain: a flood of forged lines while
    /// BIRD is down costs one search per [`FIND_AGAIN`], not one per line.
    failed_at: Option<Instant>,
}

/// How long after a failed search BIRD is not looked for again.
const FIND_AGAIN: Duration = Duration::from_secs(1);

impl BirdLocator {
    pub fn new(socket: PathBuf) -> BirdLocator {
        BirdLocator {
            socket,
            known: None,
            failed_at: None,
        }
    }

    /// BIRD's process now, or `None` when it cannot be found.
    pub fn current(&mut self) -> Option<BirdProcess> {
        if let Some((bird, p)) = &mut self.known {
            if bird.verify().is_ok() {
                // The same process; its binary may have been replaced
                // since (`/usr/sbin/bird (deleted)`).
                if let Some(exe) = exe_of(p.pid) {
                    p.exe = exe;
                }
                return Some(p.clone());
            }
            self.known = None;
        }
        if self.failed_at.is_some_and(|t| t.elapsed() < FIND_AGAIN) {
            return None;
        }
        let found = crate::keyring::Bird::find(&self.socket)
            .ok()
            .and_then(|bird| Some((exe_of(bird.pid())?, bird)));
        let Some((exe, bird)) = found else {
            self.failed_at = Some(Instant::now());
            return None;
        };
        self.failed_at = None;
        let p = BirdProcess {
            pid: bird.pid(),
            exe,
        };
        self.known = Some((bird, p.clone()));
        Some(p)
    }
}

fn exe_of(pid: i32) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.into_os_string().into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bird_entry(pid: i32, exe: &str, unit: Option<&str>) -> Entry {
        Entry {
            message: Some(
                b"BGP: Unexpected connect from unknown address 10.88.0.9 (port 1)".to_vec(),
            ),
            identifier: Some(b"bird".to_vec()),
            pid: Some(pid),
            exe: Some(exe.as_bytes().to_vec()),
            unit: unit.map(|u| u.as_bytes().to_vec()),
            ..Entry::default()
        }
    }

    #[test]
    fn only_birds_own_process_is_trusted() {
        let bird = BirdProcess {
            pid: 812,
            exe: b"/usr/sbin/bird".to_vec(),
        };
        let t = |e: &Entry, b: Option<&BirdProcess>| trust_of(e, b);
        assert_eq!(
            t(&bird_entry(812, "/usr/sbin/bird", None), Some(&bird)),
            Trust::Bird
        );
        // logger -t bird
        assert_eq!(
            t(&bird_entry(4242, "/usr/bin/logger", None), Some(&bird)),
            Trust::Forged
        );
        // A user's own copy of bird, or BIRD's recycled pid running another program.
        assert_eq!(
            t(&bird_entry(4243, "/usr/sbin/bird", None), Some(&bird)),
            Trust::Forged
        );
        assert_eq!(
            t(&bird_entry(812, "/tmp/bird", None), Some(&bird)),
            Trust::Forged
        );
        // BIRD not found: its unit vouches; other programs are still forged.
        let unit = Some("bird.service");
        assert_eq!(t(&bird_entry(9, "/usr/sbin/bird", unit), None), Trust::Bird);
        // BIRD's unit vouches for a BIRD that restarted too,
        // also after a package upgrade replaced the binary.
        let upgraded = "/usr/sbin/bird (deleted)";
        assert_eq!(t(&bird_entry(9, upgraded, unit), Some(&bird)), Trust::Bird);
        assert_eq!(
            t(&bird_entry(9, "/usr/bin/logger", unit), Some(&bird)),
            Trust::Forged
        );
        // Another unit, or a user's own unit of that name (journald puts
        // that in _SYSTEMD_USER_UNIT, not _SYSTEMD_UNIT), does not vouch.
        let other = Some("user@1000.service");
        assert_eq!(
            t(&bird_entry(9, "/usr/sbin/bird", other), Some(&bird)),
            Trust::Forged
        );
        assert_eq!(
            t(&bird_entry(9, "/usr/sbin/bird", None), None),
            Trust::Unverified
        );
        assert_eq!(
            t(&bird_entry(9, "/usr/bin/logger", unit), None),
            Trust::Forged
        );
        let mut no_exe = bird_entry(9, "", None);
        no_exe.exe = None;
        assert_eq!(t(&no_exe, None), Trust::Unverified);
        assert_eq!(t(&no_exe, Some(&bird)), Trust::Forged);
    }

    #[test]
    fn an_entry_becomes_a_journal_sighting() {
        let e = bird_entry(812, "/usr/sbin/bird", None);
        let bird = BirdProcess {
            pid: 812,
            exe: b"/usr/sbin/bird".to_vec(),
        };
        let LineOutcome::Sighting(s) = parse_entry(&e, SystemTime::now(), |_| Some(bird)) else {
            panic!("no sighting");
        };
        assert_eq!(
            (s.via, s.trust, s.port),
            (Via::Journal, Trust::Bird, Some(1))
        );
        assert_eq!(s.addr, "10.88.0.9".parse::<std::net::IpAddr>().unwrap());
        // Other BIRD lines never ask for BIRD's process.
        let mut other = e.clone();
        other.message = Some(b"Started".to_vec());
        let outcome = parse_entry(&other, SystemTime::now(), |_| panic!("looked up BIRD"));
        assert_eq!(outcome, LineOutcome::Irrelevant);
        // Another program's identifier is not BIRD's line at all.
        let mut sshd = e.clone();
        sshd.identifier = Some(b"sshd".to_vec());
        let outcome = parse_entry(&sshd, SystemTime::now(), |_| panic!("looked up BIRD"));
        assert_eq!(outcome, LineOutcome::Irrelevant);
    }
}
