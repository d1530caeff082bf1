//! Every decision an operator can see, in one enum.
//!
//! An [`Event`] is logged (tracing), written to the audit log (one human
//! line, docs/facts.md § Audit log) and, later, streamed to `watch` clients,
//! all from here, so the three never disagree. No secret ever enters an
//! event: events carry addresses, names and BIRD's own error text only.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use crate::admission::{Grounds, Refusal};
use crate::sources::Via;

/// True for a character that must not reach a log line, the audit log, a
/// terminal or the control socket raw: every control character (C0 with
/// tab and newline, DEL, C1), the Unicode line and paragraph separators,
/// and the bidirectional formatting marks that reorder what a reader sees.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Text from outside (a log line, nhrpd, a control-socket command, BIRD's
/// own error text) made safe for one line of output: each character
/// [`needs_escape`] names is written as `\n`, `\r`, `\t`, `\xHH` (up
/// to U+00FF) or `\u{HHHH}`, so a sender can neither start a forged line
/// nor send a terminal escape. Other text, a backslash included, is kept
/// as is (so JSON, already escaped, passes through unchanged).
/// This is the one escaping function: the audit log, the daemon log, the
/// control socket's replies (`show`, `watch`) all use it.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_as(s, |c, out| {
        use fmt::Write;
        let n = u32::from(c);
        let _ = if c == '\n' {
            out.write_str("\\n")
        } else if c == '\r' {
            out.write_str("\\r")
        } else if c == '\t' {
            out.write_str("\\t")
        } else if n <= 0xff {
            write!(out, "\\x{n:02x}")
        } else {
            write!(out, "\\u{{{n:04x}}}")
        };
    })
}

/// [`escape`] for serialized JSON (`watch --json`): the same characters
/// become JSON's own `\uHHHH` escapes, so the value a JSON reader gets is
/// unchanged and the line stays valid JSON. (A JSON serializer escapes C0
/// itself; DEL, C1 and the rest it writes raw.)
pub fn escape_json(s: &str) -> Cow<'_, str> {
    escape_as(s, |c, out| {
        use fmt::Write;
        let mut units = [0u16; 2];
        for u in c.encode_utf16(&mut units) {
            let _ = write!(out, "\\u{u:04x}");
        }
    })
}

fn escape_as(s: &str, write: impl Fn(char, &mut String)) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            write(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An address as the operator writes it: `10.0.0.1`, `fe80::1%vti3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    pub addr: IpAddr,
    pub iface: Option<String>,
}

impl fmt::Display for Neighbor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.iface {
            Some(i) => write!(f, "{}%{}", self.addr, i),
            None => write!(f, "{}", self.addr),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A sighting was admitted; the peer will be written at the next apply.
    Adding {
        neighbor: Neighbor,
        group: String,
        name: String,
        via: Via,
        /// Why the evidence sufficed; anything but verified is named in
        /// the audit line.
        grounds: Grounds,
        dry_run: bool,
    },
    /// A sighting was refused; `watch --json` gives the refusal's `kind`.
    Refusing {
        neighbor: Neighbor,
        refusal: Refusal,
        via: Via,
    },
    /// A peer left the roster.
    Removing {
        neighbor: Neighbor,
        group: String,
        name: String,
        reason: String,
    },
    /// BIRD rejected the new include; it was restored byte for byte.
    RejectedByBird { names: Vec<String>, text: String },
    /// BIRD's config is broken in a file autopeer does not own.
    BrokenElsewhere { text: String },
    /// BIRD took the new roster.
    Applied {
        added: usize,
        removed: usize,
        millis: u128,
    },
    /// BIRD could not be reached; the change is kept and retried.
    BirdUnavailable { error: String, retry_secs: u64 },
    /// More distinct addresses were refused in one window than the audit
    /// log takes; they were counted, not written one by one.
    RefusalsNotAudited { count: u64, seconds: u64 },
    /// A protocol an operator disabled at runtime was disabled again after
    /// autopeer's own `configure` re-enabled it (docs/facts.md fact 9).
    KeptDisabled { name: String },
    /// An NHRP registration (nhrpd's `authorize-binding`) was answered.
    /// `outcome` is the BGP side: admitted, already present, or why not.
    Nhrp {
        /// The spoke's GRE (protocol) address.
        addr: IpAddr,
        /// The spoke's public (NBMA) address, when nhrpd sent one.
        nbma: Option<IpAddr>,
        interface: String,
        /// What nhrpd was told.
        accepted: bool,
        /// The spoke is (already) a BGP peer. A registration that is not
        /// is a refusal, audited within the roster's refusal budget.
        admitted: bool,
        outcome: String,
        /// Why not, as [`Refusal::kind`](crate::admission::Refusal::kind)
        /// (`nbma`, `certificate`, …); `None` when admitted or undecided.
        kind: Option<&'static str>,
    },
    /// A peer's BGP session went up (to `Established`) or down, as seen by
    /// the observer: `from` and `to` are BIRD's state and info words
    /// (`start Active`, `up Established`). Logged and streamed, not audited.
    StateChanged {
        name: String,
        from: String,
        to: String,
    },
    /// The keyring placed prefix keys on a (new) BIRD listener, or could
    /// not: logged and streamed; audited except `removed`. Never a key.
    Keyring {
        change: KeyringChange,
        /// BIRD's pid, when known.
        pid: Option<i32>,
        /// `IPv4 0.0.0.0:179 inode 4711`, when about one listener.
        listener: Option<String>,
        /// Prefix keys now on that listener.
        keys: usize,
        /// One sentence: prefixes, groups, the kernel's error, advice.
        detail: String,
    },
}

/// What an [`Event::Keyring`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringChange {
    /// Keys installed on a listener not keyed before (start, BIRD restart,
    /// a re-created listener: docs/facts.md fact 8).
    Keyed,
    /// The kernel refused some keys.
    Failed,
    /// Keys of a family are wanted but BIRD has no listener for it.
    MissingListener,
    /// BIRD not found, no privilege, a group that cannot be keyed.
    Error,
    /// Keys removed (`keyring = "off"`).
    Removed,
}

impl KeyringChange {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyringChange::Keyed => "keyed",
            KeyringChange::Failed => "failed",
            KeyringChange::MissingListener => "missing_listener",
            KeyringChange::Error => "error",
            KeyringChange::Removed => "removed",
        }
    }
}

impl Event {
    /// `peer` leaves the roster, for `reason`.
    pub fn removing(peer: &crate::bird::render::Peer, reason: String) -> Event {
        Event::Removing {
            neighbor: Neighbor {
                addr: peer.addr,
                iface: peer.iface.clone(),
            },
            group: peer.group.clone(),
            name: peer.name.clone(),
            reason,
        }
    }

    /// The audit-log line (without the timestamp), or `None` for events
    /// that are operational noise rather than decisions.
    pub fn audit_text(&self) -> Option<String> {
        Some(match self {
            Event::Adding {
                neighbor,
                group,
                via,
                grounds,
                dry_run,
                ..
            } => format!(
                "adding neighbor {neighbor} to group {group} (via {via}{}){}",
                match grounds {
                    Grounds::Verified => "",
                    Grounds::KeyedGroup => ", unverified, group's MD5 key checked by the kernel",
                    Grounds::UnverifiedAdmitted => ", unverified",
                },
                if *dry_run {
                    " [dry run: nothing changed]"
                } else {
                    ""
                }
            ),
            Event::Refusing {
                neighbor,
                refusal,
                via,
            } => format!("refusing neighbor {neighbor}: {refusal} (via {via})"),
            Event::Removing {
                neighbor,
                group,
                reason,
                ..
            } => format!("removing neighbor {neighbor} from group {group}: {reason}"),
            Event::RejectedByBird { names, text } => {
                format!("rejected by BIRD: {text} (peers: {})", names.join(" "))
            }
            Event::BrokenElsewhere { text } => {
                format!("not applied: BIRD's config is broken outside autopeer's include: {text}")
            }
            Event::KeptDisabled { name } => {
                format!("kept {name} disabled across configure (operator had disabled it)")
            }
            Event::RefusalsNotAudited { count, seconds } => format!(
                "refused {count} more neighbors in the last {seconds} s without a line each (audit budget; see autopeer show sources)"
            ),
            Event::Nhrp {
                addr,
                nbma,
                interface,
                accepted,
                outcome,
                ..
            } => format!(
                "nhrp: {} registration of {addr} (nbma {}) on {interface}: {outcome}",
                if *accepted { "accepted" } else { "rejected" },
                nbma.map_or_else(|| "unknown".to_string(), |n| n.to_string()),
            ),
            Event::Keyring {
                change,
                pid,
                listener,
                detail,
                ..
            } => {
                if *change == KeyringChange::Removed {
                    return None;
                }
                let pid = pid.map(|p| format!(" (BIRD pid {p})")).unwrap_or_default();
                match listener {
                    Some(l) => format!("keyring {}: {l}{pid}: {detail}", change.as_str()),
                    None => format!("keyring {}{pid}: {detail}", change.as_str()),
                }
            }
            Event::Applied { .. } | Event::BirdUnavailable { .. } | Event::StateChanged { .. } => {
                return None
            }
        })
    }

    /// Logs the event with tracing, with fields. Every text field goes
    /// through [`escape`]: a string field alone would be quoted, but a
    /// displayed one (`%`) would keep a newline and start a forged line.
    pub fn log(&self) {
        let e = |s: &str| escape(s).into_owned();
        match self {
            Event::Adding {
                neighbor,
                group,
                name,
                via,
                grounds,
                dry_run,
            } => {
                let trust = grounds.as_str();
                tracing::info!(peer = %e(&neighbor.to_string()), group = ?e(group), name = ?e(name), %via, trust, dry_run, "admitted")
            }
            Event::Refusing {
                neighbor,
                refusal,
                via,
            } => {
                let kind = refusal.kind();
                tracing::info!(peer = %e(&neighbor.to_string()), reason = ?e(&refusal.to_string()), kind, %via, "refused")
            }
            Event::Removing {
                neighbor,
                group,
                name,
                reason,
            } => {
                tracing::info!(peer = %e(&neighbor.to_string()), group = ?e(group), name = ?e(name), reason = ?e(reason), "removed")
            }
            Event::RejectedByBird { names, text } => {
                tracing::error!(peers = names.len(), bird = ?e(text), "configure rejected, include restored")
            }
            Event::BrokenElsewhere { text } => {
                tracing::error!(bird = ?e(text), "bird config broken outside the owned include")
            }
            Event::Applied {
                added,
                removed,
                millis,
            } => {
                tracing::info!(added, removed, millis, "applied")
            }
            Event::BirdUnavailable { error, retry_secs } => {
                tracing::warn!(error = ?e(error), retry_secs, "bird unavailable, will retry")
            }
            Event::KeptDisabled { name } => tracing::info!(name = ?e(name), "kept disabled"),
            Event::RefusalsNotAudited { count, seconds } => {
                tracing::warn!(count, seconds, "refusals over the audit budget")
            }
            Event::Nhrp {
                addr,
                nbma,
                interface,
                accepted,
                outcome,
                ..
            } => {
                let nbma = nbma.map(|n| n.to_string()).unwrap_or_default();
                tracing::info!(peer = %addr, nbma, interface = ?e(interface), accepted, outcome = ?e(outcome), "nhrp registration")
            }
            Event::StateChanged { name, from, to } => {
                tracing::info!(name = ?e(name), from = ?e(from), to = ?e(to), "session state changed")
            }
            Event::Keyring {
                change,
                pid,
                listener,
                keys,
                detail,
            } => {
                let listener = e(listener.as_deref().unwrap_or(""));
                let detail = e(detail);
                // The same fields at either level; tracing wants the level
                // fixed where the event is written.
                macro_rules! keyring_at {
                    ($level:ident) => {
                        tracing::$level!(
                            change = change.as_str(),
                            ?pid,
                            ?listener,
                            keys,
                            ?detail,
                            "keyring"
                        )
                    };
                }
                match change {
                    KeyringChange::Keyed | KeyringChange::Removed => keyring_at!(info),
                    KeyringChange::Failed
                    | KeyringChange::MissingListener
                    | KeyringChange::Error => keyring_at!(warn),
                }
            }
        }
    }

    /// One line for `watch`: the audit text, or a short line for the
    /// events that are not audited.
    pub fn watch_text(&self) -> String {
        if let Some(t) = self.audit_text() {
            return t;
        }
        match self {
            Event::Applied {
                added,
                removed,
                millis,
            } => format!("applied: {added} added, {removed} removed, {millis} ms"),
            Event::BirdUnavailable { error, retry_secs } => {
                format!("BIRD unavailable: {error} (retry in {retry_secs} s)")
            }
            Event::StateChanged { name, from, to } => format!("{name}: {from} -> {to}"),
            Event::Keyring { detail, .. } => format!("keyring: {detail}"),
            // Every other variant has an audit line.
            _ => format!("{self:?}"),
        }
    }

    /// A short lowercase name of the variant: `adding`, `state_changed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Adding { .. } => "adding",
            Event::Refusing { .. } => "refusing",
            Event::Removing { .. } => "removing",
            Event::RejectedByBird { .. } => "rejected_by_bird",
            Event::BrokenElsewhere { .. } => "broken_elsewhere",
            Event::Applied { .. } => "applied",
            Event::BirdUnavailable { .. } => "bird_unavailable",
            Event::KeptDisabled { .. } => "kept_disabled",
            Event::RefusalsNotAudited { .. } => "refusals_not_audited",
            Event::StateChanged { .. } => "state_changed",
            Event::Nhrp { .. } => "nhrp",
            Event::Keyring { .. } => "keyring",
        }
    }

    /// The event as one JSON object for `watch --json`:
    /// `{"event":"adding","neighbor":"10.88.0.2","group":"clients",...}`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let mut v = match self {
            Event::Adding {
                neighbor,
                group,
                name,
                via,
                grounds,
                dry_run,
            } => json!({"neighbor": neighbor.to_string(), "group": group, "name": name,
                        "via": via.as_str(), "trust": grounds.as_str(), "dry_run": dry_run}),
            Event::Refusing {
                neighbor,
                refusal,
                via,
            } => json!({"neighbor": neighbor.to_string(), "reason": refusal.to_string(),
                        "kind": refusal.kind(), "via": via.as_str()}),
            Event::Removing {
                neighbor,
                group,
                name,
                reason,
            } => json!({"neighbor": neighbor.to_string(), "group": group, "name": name,
                        "reason": reason}),
            Event::RejectedByBird { names, text } => json!({"names": names, "text": text}),
            Event::BrokenElsewhere { text } => json!({"text": text}),
            Event::Applied {
                added,
                removed,
                millis,
            } => json!({"added": added, "removed": removed, "millis": millis}),
            Event::BirdUnavailable { error, retry_secs } => {
                json!({"error": error, "retry_secs": retry_secs})
            }
            Event::KeptDisabled { name } => json!({"name": name}),
            Event::RefusalsNotAudited { count, seconds } => {
                json!({"count": count, "seconds": seconds})
            }
            Event::StateChanged { name, from, to } => json!({"name": name, "from": from, "to": to}),
            Event::Nhrp {
                addr,
                nbma,
                interface,
                accepted,
                admitted,
                outcome,
                kind,
            } => json!({"neighbor": addr.to_string(), "nbma": nbma.map(|n| n.to_string()),
                        "interface": interface, "accepted": accepted, "admitted": admitted,
                        "outcome": outcome, "kind": kind}),
            Event::Keyring {
                change,
                pid,
                listener,
                keys,
                detail,
            } => json!({"change": change.as_str(), "pid": pid, "listener": listener,
                        "keys": keys, "detail": detail}),
        };
        if let Some(o) = v.as_object_mut() {
            o.insert("event".into(), self.kind().into());
        }
        v
    }
}

/// Where a task that does not own the event stream hands its events (the
/// keyring task, the NHRP server): the daemon wires it to the roster, which
/// logs, audits and streams each one. The sender needs to know nothing of
/// the receiver. Emitting never waits: a sink that cannot pass an event on
/// (the receiver busy or gone) must at least log it.
#[derive(Clone)]
pub struct EventSink(std::sync::Arc<dyn Fn(Event) + Send + Sync>);

impl EventSink {
    /// A sink that calls `f` for each event; `f` must not block.
    pub fn new(f: impl Fn(Event) + Send + Sync + 'static) -> EventSink {
        EventSink(std::sync::Arc::new(f))
    }

    /// A sink that only logs (nothing streams or audits the events).
    pub fn log_only() -> EventSink {
        EventSink::new(|e| e.log())
    }

    pub fn emit(&self, event: Event) {
        (self.0)(event);
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventSink")
    }
}

/// `2026-11-23T06:55:02Z`.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_lines_read_as_in_design() {
        let n = Neighbor {
            addr: "10.88.0.2".parse().unwrap(),
            iface: None,
        };
        let e = Event::Adding {
            neighbor: n.clone(),
            group: "clients".into(),
            name: "clients_10_88_0_2".into(),
            via: Via::BirdLog,
            grounds: Grounds::Verified,
            dry_run: false,
        };
        assert_eq!(
            e.audit_text().unwrap(),
            "adding neighbor 10.88.0.2 to group clients (via bird-log)"
        );
        // Anything but verified evidence says so where the source is named.
        let shared = |grounds| Event::Adding {
            neighbor: n.clone(),
            group: "clients".into(),
            name: "clients_10_88_0_2".into(),
            via: Via::Syslog,
            grounds,
            dry_run: false,
        };
        assert_eq!(
            shared(Grounds::UnverifiedAdmitted).audit_text().unwrap(),
            "adding neighbor 10.88.0.2 to group clients (via syslog, unverified)"
        );
        assert_eq!(
            shared(Grounds::KeyedGroup).audit_text().unwrap(),
            "adding neighbor 10.88.0.2 to group clients \
             (via syslog, unverified, group's MD5 key checked by the kernel)"
        );
        assert_eq!(
            shared(Grounds::KeyedGroup).to_json()["trust"],
            "keyed_group"
        );
        let r = Event::Refusing {
            neighbor: n,
            refusal: crate::admission::Refusal::NoGroup,
            via: Via::Syslog,
        };
        assert_eq!(
            r.audit_text().unwrap(),
            "refusing neighbor 10.88.0.2: no group matches (via syslog)"
        );
        assert_eq!(r.to_json()["kind"], "no_group");
        assert_eq!(r.to_json()["reason"], "no group matches");
        let ll = Neighbor {
            addr: "fe80::1".parse().unwrap(),
            iface: Some("vti3".into()),
        };
        assert_eq!(ll.to_string(), "fe80::1%vti3");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let nh = Event::Nhrp {
            addr: "10.0.0.5".parse().unwrap(),
            nbma: Some("203.0.113.5".parse().unwrap()),
            interface: "gre1".into(),
            accepted: true,
            admitted: true,
            outcome: "admitted to group spokes as spokes_10_0_0_5".into(),
            kind: None,
        };
        assert_eq!(
            nh.audit_text().unwrap(),
            "nhrp: accepted registration of 10.0.0.5 (nbma 203.0.113.5) on gre1: admitted to group spokes as spokes_10_0_0_5"
        );
    }

    #[test]
    fn keyring_events_audit_rekeys_and_failures_only() {
        let keyed = Event::Keyring {
            change: KeyringChange::Keyed,
            pid: Some(4242),
            listener: Some("IPv4 0.0.0.0:179 inode 4711".into()),
            keys: 7,
            detail: "7 prefix key(s) installed on a new listener".into(),
        };
        assert_eq!(
            keyed.audit_text().unwrap(),
            "keyring keyed: IPv4 0.0.0.0:179 inode 4711 (BIRD pid 4242): 7 prefix key(s) installed on a new listener"
        );
        assert_eq!(keyed.to_json()["change"], "keyed");
        assert_eq!(keyed.to_json()["event"], "keyring");
        let removed = Event::Keyring {
            change: KeyringChange::Removed,
            pid: None,
            listener: None,
            keys: 0,
            detail: "keyring turned off: 7 prefix key(s) removed".into(),
        };
        assert_eq!(removed.audit_text(), None);
        assert_eq!(
            removed.watch_text(),
            "keyring: keyring turned off: 7 prefix key(s) removed"
        );
    }

    #[test]
    fn escape_leaves_no_control_character_and_keeps_json_values() {
        let hostile = "gre1\x1b[2J\r\nFORGED \u{9b}31m\x7f\u{202e}\\x1b ok";
        let e = escape(hostile);
        assert_eq!(e, "gre1\\x1b[2J\\r\\nFORGED \\x9b31m\\x7f\\u{202e}\\x1b ok");
        assert!(!e.chars().any(needs_escape));
        // Plain text is not copied.
        assert!(matches!(escape("no group matches"), Cow::Borrowed(_)));
        let json = serde_json::json!({ "interface": hostile }).to_string();
        let safe = escape_json(&json);
        assert!(!safe.chars().any(needs_escape), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["interface"], hostile);
    }

    /// The daemon log (tracing's text format) gets one line per event,
    /// whatever the event's text holds.
    #[test]
    fn log_lines_cannot_be_forged() {
        use std::io;
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let forged = "x\n2026-11-23T06:55:02Z  INFO autopeer: admitted peer=10.0.0.66\x1b[8m";
        let events = [
            Event::RejectedByBird {
                names: vec!["a".into()],
                text: forged.into(),
            },
            Event::BirdUnavailable {
                error: forged.into(),
                retry_secs: 1,
            },
            Event::Nhrp {
                addr: "10.0.0.5".parse().unwrap(),
                nbma: None,
                interface: forged.into(),
                accepted: false,
                admitted: false,
                outcome: forged.into(),
                kind: None,
            },
        ];
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(sub, || events.iter().for_each(Event::log));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), events.len(), "{text}");
        assert!(
            !text.chars().any(|c| c != '\n' && needs_escape(c)),
            "{text:?}"
        );
        assert!(text.contains("\\x1b[8m"), "{text}");
    }
}
