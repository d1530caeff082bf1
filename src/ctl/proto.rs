//! The control socket's language: command lines in, BIRD-framed replies out.
//!
//! Pure: parses one command line into a [`CtlCommand`], and renders
//! replies and tables as text. No I/O, no tokio, no logging here
//! (`ctl::server` owns the socket).
//!
//! # Wire format (BIRD's, `nest/cli.c`)
//!
//! Every reply line starts with a 4-digit code; `DDDD-text` means more
//! lines follow, ` text` continues the previous code, `DDDD text` is the
//! last line of the reply. The greeting is `0001 autopeer VERSION ready.`
//!
//! # Commands
//!
//! | command                    | alias (birdc sends only BIRD's grammar) | mutating |
//! |----------------------------|------------------------------------------|----------|
//! | `show status`              |                                          | no       |
//! | `show peers [all]`         | `show protocols [all]`                   | no       |
//! | `show groups`              |                                          | no       |
//! | `show sources`             |                                          | no       |
//! | `add ADDR [group NAME]`    |                                          | yes      |
//! | `remove ADDR\|NAME`        |                                          | yes      |
//! | `reload`                   | `configure`                              | yes      |
//! | `watch [json]`             |                                          | no       |
//! | `help`, `?`                |                                          | no       |
//! | `quit`, `exit`             |                                          | no       |
//!
//! `birdc` expands and checks every command against BIRD's own grammar
//! before sending it, so from `birdc -s SOCKET` only `show status`,
//! `show protocols [all]`, `configure` and `reload` get through; the
//! `autopeer` subcommands send every form.
//!
//! # Reply codes (in BIRD's spirit, `doc/reply_codes`)
//!
//! | code | meaning                                   |
//! |------|-------------------------------------------|
//! | 0000 | OK, end of reply                          |
//! | 0001 | greeting                                  |
//! | 0003 | reconfigured (reload done)                |
//! | 1000 | `show status` line                        |
//! | 1002 | peer row (`show peers`)                   |
//! | 1010 | group row (`show groups`)                 |
//! | 1020 | source counter (`show sources`)           |
//! | 1030 | watch: a roster row of the dump           |
//! | 1031 | watch: one event                          |
//! | 1032 | watch: `N events lost` (client too slow)  |
//! | 1040 | result of add / remove                    |
//! | 1050 | help text                                 |
//! | 2002 | peers heading                             |
//! | 2010 | groups heading                            |
//! | 2030 | watch heading                             |
//! | 8002 | configuration file error (reload refused) |
//! | 8003 | no such peer                              |
//! | 8007 | access denied                             |
//! | 8010 | admission refused                         |
//! | 8011 | the daemon is shutting down               |
//! | 8012 | too many clients                          |
//! | 8013 | BIRD could not be asked                   |
//! | 9000 | command too long                          |
//! | 9001 | parse error                               |

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::bird::protocols::BgpDetails;
use crate::event::rfc3339;
use crate::roster::{short_duration, PeerView, Snapshot};
use crate::sources::tail::TailCounts;

pub const OK: u16 = 0;
pub const GREETING: u16 = 1;
pub const RECONFIGURED: u16 = 3;
pub const STATUS: u16 = 1000;
pub const PEER_ROW: u16 = 1002;
pub const GROUP_ROW: u16 = 1010;
pub const SOURCE_ROW: u16 = 1020;
pub const WATCH_ROW: u16 = 1030;
pub const WATCH_EVENT: u16 = 1031;
pub const WATCH_LOST: u16 = 1032;
pub const RESULT: u16 = 1040;
pub const HELP: u16 = 1050;
pub const PEERS_HEADING: u16 = 2002;
pub const GROUPS_HEADING: u16 = 2010;
pub const WATCH_HEADING: u16 = 2030;
pub const CONFIG_ERROR: u16 = 8002;
pub const NO_SUCH_PEER: u16 = 8003;
pub const ACCESS_DENIED: u16 = 8007;
pub const REFUSED: u16 = 8010;
pub const SHUTTING_DOWN: u16 = 8011;
pub const TOO_MANY_CLIENTS: u16 = 8012;
pub const BIRD_UNAVAILABLE: u16 = 8013;
pub const TOO_LONG: u16 = 9000;
pub const PARSE_ERROR: u16 = 9001;

/// Longest command line accepted, in bytes (BIRD itself chokes on long
/// input, docs/facts.md fact 7; ours are short).
pub const MAX_LINE: usize = 1024;

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlCommand {
    ShowStatus,
    ShowPeers {
        all: bool,
    },
    ShowGroups,
    ShowSources,
    Add {
        addr: IpAddr,
        iface: Option<String>,
        group: Option<String>,
    },
    Remove {
        target: String,
    },
    Reload,
    Watch {
        json: bool,
    },
    Help,
    Quit,
}

impl CtlCommand {
    /// Commands that change the roster or the config: only root, the
    /// daemon's own user or the socket's group may send them.
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            CtlCommand::Add { .. } | CtlCommand::Remove { .. } | CtlCommand::Reload
        )
    }

    /// The line that sends this command.
    pub fn to_line(&self) -> String {
        match self {
            CtlCommand::ShowStatus => "show status".into(),
            CtlCommand::ShowPeers { all: false } => "show peers".into(),
            CtlCommand::ShowPeers { all: true } => "show peers all".into(),
            CtlCommand::ShowGroups => "show groups".into(),
            CtlCommand::ShowSources => "show sources".into(),
            CtlCommand::Add { addr, iface, group } => {
                let mut s = format!("add {addr}");
                if let Some(i) = iface {
                    s.push('%');
                    s.push_str(i);
                }
                if let Some(g) = group {
                    s.push_str(" group ");
                    s.push_str(g);
                }
                s
            }
            CtlCommand::Remove { target } => format!("remove {target}"),
            CtlCommand::Reload => "reload".into(),
            CtlCommand::Watch { json: false } => "watch".into(),
            CtlCommand::Watch { json: true } => "watch json".into(),
            CtlCommand::Help => "help".into(),
            CtlCommand::Quit => "quit".into(),
        }
    }
}

/// Why a command line was not understood; the text goes out after 9001.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty command")]
    Empty,
    #[error("unknown command {0:?}; try help")]
    Unknown(String),
    #[error("{command}: missing {what}")]
    Missing {
        command: &'static str,
        what: &'static str,
    },
    #[error("{command}: unexpected {word:?}")]
    Unexpected { command: &'static str, word: String },
    #[error("not an address: {0:?} (want 10.0.0.1 or fe80::1%vti3)")]
    BadAddress(String),
    #[error("not a name: {0:?}")]
    BadName(String),
}

/// Parses one command line (without its newline), e.g. `show peers all`,
/// `add 10.88.0.2 group clients`, `remove clients_10_88_0_2`.
/// Words are separated by spaces or tabs; keywords are lowercase.
pub fn parse_command(line: &str) -> Result<CtlCommand, ParseError> {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let rest_empty = |command: &'static str, rest: &[&str]| match rest.first() {
        Some(w) => Err(ParseError::Unexpected {
            command,
            word: excerpt(w),
        }),
        None => Ok(()),
    };
    match words.as_slice() {
        [] => Err(ParseError::Empty),
        ["show", "status", rest @ ..] => {
            rest_empty("show status", rest)?;
            Ok(CtlCommand::ShowStatus)
        }
        ["show", "peers" | "protocols", rest @ ..] => match rest {
            [] => Ok(CtlCommand::ShowPeers { all: false }),
            ["all"] => Ok(CtlCommand::ShowPeers { all: true }),
            [w, ..] => Err(ParseError::Unexpected {
                command: "show peers",
                word: excerpt(w),
            }),
        },
        ["show", "groups", rest @ ..] => {
            rest_empty("show groups", rest)?;
            Ok(CtlCommand::ShowGroups)
        }
        ["show", "sources", rest @ ..] => {
            rest_empty("show sources", rest)?;
            Ok(CtlCommand::ShowSources)
        }
        ["show"] => Err(ParseError::Missing {
            command: "show",
            what: "status, peers, groups or sources",
        }),
        ["add"] => Err(ParseError::Missing {
            command: "add",
            what: "ADDR",
        }),
        ["add", addr, rest @ ..] => {
            let (addr, iface) = crate::cli::parse_addr(addr)
                .ok_or_else(|| ParseError::BadAddress(excerpt(addr)))?;
            let group = match rest {
                [] => None,
                ["group"] => {
                    return Err(ParseError::Missing {
                        command: "add",
                        what: "group NAME",
                    })
                }
                ["group", name] if is_word(name) => Some(name.to_string()),
                ["group", name] => return Err(ParseError::BadName(excerpt(name))),
                [w, ..] => {
                    return Err(ParseError::Unexpected {
                        command: "add",
                        word: excerpt(w),
                    })
                }
            };
            Ok(CtlCommand::Add { addr, iface, group })
        }
        ["remove"] => Err(ParseError::Missing {
            command: "remove",
            what: "ADDR or NAME",
        }),
        ["remove", target, rest @ ..] => {
            rest_empty("remove", rest)?;
            if crate::cli::parse_addr(target).is_none() && !is_word(target) {
                return Err(ParseError::BadName(excerpt(target)));
            }
            Ok(CtlCommand::Remove {
                target: target.to_string(),
            })
        }
        ["reload" | "configure", rest @ ..] => {
            rest_empty("reload", rest)?;
            Ok(CtlCommand::Reload)
        }
        ["watch", rest @ ..] => match rest {
            [] => Ok(CtlCommand::Watch { json: false }),
            ["json"] => Ok(CtlCommand::Watch { json: true }),
            [w, ..] => Err(ParseError::Unexpected {
                command: "watch",
                word: excerpt(w),
            }),
        },
        ["help" | "?", ..] => Ok(CtlCommand::Help),
        ["quit" | "exit", ..] => Ok(CtlCommand::Quit),
        [w, ..] => Err(ParseError::Unknown(excerpt(w))),
    }
}

/// A name: letters, digits, `_`, `-`, `.`, at most 64 characters.
fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// At most 40 characters of a word, for error messages.
fn excerpt(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Builds one BIRD-framed reply. Lines with the code of the line before
/// them are sent as ` text` continuations, as BIRD does.
#[derive(Debug, Default, Clone)]
pub struct ReplyWriter {
    lines: Vec<(u16, String)>,
}

impl ReplyWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a line that is not the last.
    pub fn line(&mut self, code: u16, text: impl AsRef<str>) -> &mut Self {
        self.lines.push((code, clean(text.as_ref())));
        self
    }

    /// Ends the reply with `code text` and returns the bytes to send.
    pub fn finish(mut self, code: u16, text: impl AsRef<str>) -> String {
        let mut out = frame_lines(&self.lines, None);
        self.lines.clear();
        let _ = writeln!(out, "{code:04} {}", clean(text.as_ref()));
        out
    }

    /// The lines so far, framed as "more follows" (for streams such as
    /// `watch` that end only when the client leaves). `last_code` is the
    /// code of the line sent before these (for continuations).
    pub fn take_partial(&mut self, last_code: &mut Option<u16>) -> String {
        let out = frame_lines(&self.lines, *last_code);
        if let Some((c, _)) = self.lines.last() {
            *last_code = Some(*c);
        }
        self.lines.clear();
        out
    }
}

fn frame_lines(lines: &[(u16, String)], mut prev: Option<u16>) -> String {
    let mut out = String::new();
    for (code, text) in lines {
        if prev == Some(*code) {
            let _ = writeln!(out, " {text}");
        } else {
            let _ = writeln!(out, "{code:04}-{text}");
        }
        prev = Some(*code);
    }
    out
}

/// A single-line reply: `code text`.
pub fn single(code: u16, text: impl AsRef<str>) -> String {
    ReplyWriter::new().finish(code, text)
}

/// The greeting: `0001 autopeer 0.1.0 ready.`
pub fn greeting() -> String {
    single(
        GREETING,
        format!("autopeer {} ready.", env!("CARGO_PKG_VERSION")),
    )
}

/// Text safe for one wire line: control characters are escaped
/// ([`crate::event::escape`], the one escaping function), so neither a
/// reply's framing nor the reader's terminal can be subverted.
fn clean(s: &str) -> String {
    crate::event::escape(s).into_owned()
}

/// `2026-11-23T06:55:02Z`, or `-`.
fn time_or_dash(t: Option<SystemTime>) -> String {
    t.map(rfc3339).unwrap_or_else(|| "-".into())
}

/// Pads columns to their widest cell, two spaces apart; the last column
/// is not padded (it may hold spaces: BIRD's last error).
fn columns(rows: &[Vec<String>]) -> Vec<String> {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; n];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    let w = widths.get(i).copied().unwrap_or(0);
                    let _ = write!(line, "{c:<w$}  ");
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// The peers table of `show peers` / `autopeer status`:
///
/// ```text
/// Name               Group    Neighbor   State  Info         Via       Admitted              Last-up               Expires
/// clients_10_88_0_2  clients  10.88.0.2  up     Established  bird-log  2026-11-23T06:55:02Z  2026-11-23T06:55:04Z  never
/// ```
///
/// Every cell is one word (`-` when empty), so rows split on whitespace.
/// State is BIRD's protocol state (`pending`: not yet written; `absent`:
/// not in BIRD's last `show protocols`). `all` adds `AS` and `Last-error`
/// from `details` (`show protocols all`); the error is the last column
/// and may hold spaces.
pub fn peers_table(
    snap: &Snapshot,
    all: bool,
    details: &HashMap<String, BgpDetails>,
) -> Vec<String> {
    let mut head: Vec<String> = [
        "Name", "Group", "Neighbor", "State", "Info", "Via", "Admitted", "Last-up", "Expires",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if all {
        head.push("AS".into());
        head.push("Last-error".into());
    }
    let mut rows = vec![head];
    for pv in &snap.peers {
        rows.push(peer_row(pv, all, details.get(&pv.peer.name)));
    }
    columns(&rows)
}

fn peer_row(pv: &PeerView, all: bool, details: Option<&BgpDetails>) -> Vec<String> {
    let p = &pv.peer;
    let rt = &pv.runtime;
    let neighbor = match &p.iface {
        Some(i) => format!("{}%{}", p.addr, i),
        None => p.addr.to_string(),
    };
    let (state, info) = if pv.pending {
        ("pending".to_string(), "-".to_string())
    } else {
        (
            rt.state.clone().unwrap_or_else(|| "absent".into()),
            rt.info.clone().unwrap_or_else(|| "-".into()),
        )
    };
    let last_up = if rt.is_up() {
        time_or_dash(rt.last_established)
    } else {
        rt.last_established
            .map(rfc3339)
            .unwrap_or_else(|| "never".into())
    };
    let expires = match pv.expires {
        Some(t) => rfc3339(t),
        None if rt.is_up() || pv.pending => "-".into(),
        None => "never".into(),
    };
    let mut row = vec![
        p.name.clone(),
        p.group.clone(),
        neighbor,
        state,
        info,
        word(&p.via),
        word(&p.admitted),
        last_up,
        expires,
    ];
    if all {
        row.push(
            details
                .and_then(|d| d.neighbor_as)
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
        );
        row.push(
            details
                .and_then(|d| d.last_error.clone())
                .or_else(|| rt.message.clone())
                .unwrap_or_else(|| "-".into()),
        );
    }
    row
}

/// One roster row of the `watch json` dump:
/// `{"peer":"clients_10_88_0_2","group":"clients","neighbor":"10.88.0.2",...}`.
pub fn peer_json(pv: &PeerView) -> serde_json::Value {
    let p = &pv.peer;
    serde_json::json!({
        "peer": p.name,
        "group": p.group,
        "neighbor": match &p.iface {
            Some(i) => format!("{}%{}", p.addr, i),
            None => p.addr.to_string(),
        },
        "pending": pv.pending,
        "state": pv.runtime.state,
        "info": pv.runtime.info,
        "via": p.via,
        "admitted": p.admitted,
        "last_established": pv.runtime.last_established.map(rfc3339),
        "expires": pv.expires.map(rfc3339),
    })
}

/// One whitespace-free cell.
fn word(s: &str) -> String {
    let w: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if w.is_empty() {
        "-".into()
    } else {
        w
    }
}

/// The groups table of `show groups`:
///
/// ```text
/// Group    Template  Peers  Max   Rate/min  Next-admission  Expire  Prefixes
/// clients  CLIENTS   2      1000  60        now             7d      10.88.0.0/25
/// ```
pub fn groups_table(snap: &Snapshot) -> Vec<String> {
    let mut rows = vec![[
        "Group",
        "Template",
        "Peers",
        "Max",
        "Rate/min",
        "Next-admission",
        "Expire",
        "Prefixes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for g in &snap.groups {
        let next = if g.rate.is_none() || g.next_admission.is_zero() {
            "now".to_string()
        } else if g.next_admission == Duration::MAX {
            "never".to_string()
        } else {
            format!(
                "in_{}",
                short_duration(g.next_admission + Duration::from_millis(999))
            )
        };
        rows.push(vec![
            g.name.clone(),
            g.template.clone(),
            g.peers.to_string(),
            g.max_peers.to_string(),
            g.rate
                .map(|r| r.to_string())
                .unwrap_or_else(|| "unlimited".into()),
            next,
            g.expire
                .map(short_duration)
                .unwrap_or_else(|| "never".into()),
            g.prefixes
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    columns(&rows)
}

/// `show sources`: one `name value` line per counter, then refusals by
/// kind as `refused.KIND value`.
pub fn sources_lines(tail: &TailCounts, snap: &Snapshot) -> Vec<String> {
    let mut rows: Vec<Vec<String>> = [
        ("lines", tail.lines),
        ("sightings", tail.sightings),
        ("skipped.irrelevant", tail.irrelevant),
        ("skipped.malformed", tail.malformed),
        ("skipped.invalid_utf8", tail.invalid_utf8),
        ("read_errors", tail.read_errors),
        ("files_refused", tail.files_refused),
    ]
    .iter()
    .map(|(k, v)| vec![k.to_string(), v.to_string()])
    .collect();
    let total: u64 = snap.refusals.values().sum();
    rows.push(vec!["refused".into(), total.to_string()]);
    for (kind, n) in &snap.refusals {
        rows.push(vec![format!("refused.{kind}"), n.to_string()]);
    }
    columns(&rows)
}

/// `show status` lines.
pub fn status_lines(snap: &Snapshot, now: SystemTime) -> Vec<String> {
    let up = snap.peers.iter().filter(|p| p.runtime.is_up()).count();
    let pending = snap.peers.iter().filter(|p| p.pending).count();
    let uptime = now
        .duration_since(snap.started)
        .map(|d| short_duration(Duration::from_secs(d.as_secs())))
        .unwrap_or_else(|_| "0s".into());
    let mut out = vec![
        format!("autopeer {}", env!("CARGO_PKG_VERSION")),
        format!("Started {} (up {uptime})", rfc3339(snap.started)),
        format!(
            "Peers {} ({} Established, {} pending), groups {}",
            snap.peers.len(),
            up,
            pending,
            snap.groups.len()
        ),
        format!(
            "Roster {}",
            if snap.dirty {
                "has changes BIRD has not loaded yet"
            } else {
                "loaded by BIRD"
            }
        ),
        format!("Last poll of BIRD {}", time_or_dash(snap.last_poll)),
    ];
    if let Some(e) = &snap.bird_error {
        out.push(format!("BIRD unreachable: {e}"));
    }
    if let Some(k) = &snap.keyring {
        out.extend(k.lines());
    }
    if snap.dry_run {
        out.push("Dry run: decisions are logged, nothing is changed".into());
    }
    out
}

/// `help` lines.
pub fn help_lines() -> Vec<String> {
    [
        "show status                  the daemon and its roster in brief",
        "show peers [all]             the roster with BIRD's state (alias: show protocols)",
        "show groups                  groups with counts and limits",
        "show sources                 lines read, sightings, refusals, skipped lines",
        "add ADDR [group NAME]        admit ADDR now",
        "remove ADDR|NAME             remove a peer",
        "reload                       re-read the config file (alias: configure)",
        "watch [json]                 the roster, then one line per event",
        "quit                         close this connection",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let cases: &[(&str, CtlCommand)] = &[
            ("show status", CtlCommand::ShowStatus),
            ("  show   peers ", CtlCommand::ShowPeers { all: false }),
            ("show peers all", CtlCommand::ShowPeers { all: true }),
            ("show protocols all", CtlCommand::ShowPeers { all: true }),
            ("show groups", CtlCommand::ShowGroups),
            ("show sources", CtlCommand::ShowSources),
            (
                "add 10.0.0.1",
                CtlCommand::Add {
                    addr: "10.0.0.1".parse().unwrap(),
                    iface: None,
                    group: None,
                },
            ),
            (
                "add fe80::1%vti3 group clients",
                CtlCommand::Add {
                    addr: "fe80::1".parse().unwrap(),
                    iface: Some("vti3".into()),
                    group: Some("clients".into()),
                },
            ),
            (
                "remove clients_10_0_0_1",
                CtlCommand::Remove {
                    target: "clients_10_0_0_1".into(),
                },
            ),
            ("reload", CtlCommand::Reload),
            ("configure", CtlCommand::Reload),
            ("watch", CtlCommand::Watch { json: false }),
            ("watch json", CtlCommand::Watch { json: true }),
            ("?", CtlCommand::Help),
            ("quit", CtlCommand::Quit),
        ];
        for (line, want) in cases {
            assert_eq!(parse_command(line).as_ref(), Ok(want), "{line}");
            // Every command survives its own rendering.
            assert_eq!(parse_command(&want.to_line()).as_ref(), Ok(want), "{line}");
        }
    }

    #[test]
    fn refuses_bad_lines() {
        assert_eq!(parse_command(""), Err(ParseError::Empty));
        assert!(matches!(
            parse_command("frobnicate now"),
            Err(ParseError::Unknown(_))
        ));
        assert!(matches!(
            parse_command("add 10.0.0.1; rm -rf"),
            Err(ParseError::BadAddress(_))
        ));
        assert!(matches!(
            parse_command("add 10.0.0.1 group"),
            Err(ParseError::Missing { .. })
        ));
        assert!(matches!(
            parse_command("add 10.0.0.1 grp x"),
            Err(ParseError::Unexpected { .. })
        ));
        assert!(matches!(
            parse_command("remove \"x\""),
            Err(ParseError::BadName(_))
        ));
        assert!(matches!(
            parse_command("show peers some"),
            Err(ParseError::Unexpected { .. })
        ));
        assert!(matches!(
            parse_command("show"),
            Err(ParseError::Missing { .. })
        ));
        assert!(CtlCommand::Reload.is_mutating());
        assert!(!CtlCommand::ShowPeers { all: true }.is_mutating());
    }

    #[test]
    fn frames_like_bird() {
        let mut w = ReplyWriter::new();
        w.line(PEERS_HEADING, "Name State")
            .line(PEER_ROW, "a up")
            .line(PEER_ROW, "b\nstart");
        let text = w.finish(OK, "");
        assert_eq!(text, "2002-Name State\n1002-a up\n b\\nstart\n0000 \n");
        let (replies, _) = crate::bird::reply::parse_all(text.as_bytes()).unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(single(9001, "x"), "9001 x\n");
        assert!(greeting().starts_with("0001 autopeer "));
        let mut w = ReplyWriter::new();
        let mut last = None;
        w.line(WATCH_EVENT, "e1");
        assert_eq!(w.take_partial(&mut last), "1031-e1\n");
        w.line(WATCH_EVENT, "e2");
        assert_eq!(w.take_partial(&mut last), " e2\n");
    }

    #[test]
    fn columns_stay_whitespace_separated() {
        let rows = vec![
            vec!["Name".into(), "State".into(), "Err".into()],
            vec![
                "a_very_long_name".into(),
                "up".into(),
                "Socket: refused".into(),
            ],
        ];
        let out = columns(&rows);
        assert_eq!(out[0], "Name              State  Err");
        assert_eq!(out[1], "a_very_long_name  up     Socket: refused");
    }
}
