//! Parses BIRD's reply to `show protocols` and `show protocols all` into
//! typed [`Protocol`] values.
//!
//! Pure: it works on an already framed [`Reply`] and must not do I/O, log,
//! or touch tokio. It accepts the layouts of BIRD 1.6 (`%-8s` columns),
//! 2.x and 3.x (`%-10s` columns); names wider than their column push the
//! other columns right, so rows are split on runs of spaces, never by
//! column position. Bad input gives a [`ProtocolsError`]; it never panics.
//!
//! Layouts handled (from `fixtures/protocols/`):
//!
//! ```text
//! 2002-Name       Proto      Table      State  Since         Info        (2.x, 3.x)
//! 1002-device1    Device     ---        up     08:03:59.487
//!  peer_down  BGP        ---        start  08:03:59.487  Active        Socket: Connection refused
//! 2002-name     proto    table    state  since       info                 (1.6)
//!  peer_down BGP      master   start  08:09:07    Active        Socket: Connection refused
//! ```
//!
//! With `show protocols all` each row is followed by `1006` detail lines.
//! BIRD 1.6 prints the route statistics before the `BGP state:` section,
//! 2.x and 3.x print the BGP section first and the channels after it; the
//! parser picks the BGP facts by key, so the order does not matter.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::bird::reply::{Reply, ReplyLine};

/// Reply code of one protocol row.
const CODE_ROW: u16 = 1002;
/// Reply code of a `show protocols all` detail line.
const CODE_DETAIL: u16 = 1006;
/// Longest protocol name accepted in a row. BIRD symbols are at most 64
/// characters; dynamic BGP children get a name of at most 48 + 10.
const MAX_NAME_LEN: usize = 256;

/// Errors from parsing a `show protocols [all]` reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolsError {
    /// BIRD answered with a run-time (8xxx) or parse-time (9xxx) error.
    #[error("bird replied {code:04}: {text}")]
    Bird { code: u16, text: String },
    /// A `1002` row with fewer than the five columns Name Proto Table State Since.
    #[error("reply line {line}: protocol row has {found} of 5 columns: {text:?}")]
    ShortRow {
        line: usize,
        found: usize,
        text: String,
    },
    /// A protocol name with characters BIRD never prints (control
    /// characters, non-ASCII) or absurdly long.
    #[error("reply line {line}: bad protocol name {name:?}")]
    BadName { line: usize, name: String },
    /// A `1006` detail line before any protocol row.
    #[error("reply line {line}: detail line before any protocol row: {text:?}")]
    OrphanDetail { line: usize, text: String },
    /// A detail field whose value does not parse (e.g. a non-numeric AS).
    #[error("reply line {line}: protocol {protocol}: bad {field} {value:?}")]
    BadField {
        line: usize,
        protocol: String,
        field: &'static str,
        value: String,
    },
    /// A BGP protocol with detail lines but no `BGP state:` line.
    #[error("protocol {protocol}: detail lines without \"BGP state:\"")]
    MissingBgpState { protocol: String },
}

/// The protocol state column (`down flush start up stop`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProtoState {
    Up,
    Start,
    Down,
    Flush,
    Stop,
    /// Anything else BIRD prints (e.g. `???`), kept verbatim.
    Other(String),
}

impl ProtoState {
    /// `up` -> [`ProtoState::Up`]; unknown words become [`ProtoState::Other`].
    pub fn parse(word: &str) -> ProtoState {
        match word {
            "up" => ProtoState::Up,
            "start" => ProtoState::Start,
            "down" => ProtoState::Down,
            "flush" => ProtoState::Flush,
            "stop" => ProtoState::Stop,
            other => ProtoState::Other(other.to_string()),
        }
    }

    /// The word BIRD prints.
    pub fn as_str(&self) -> &str {
        match self {
            ProtoState::Up => "up",
            ProtoState::Start => "start",
            ProtoState::Down => "down",
            ProtoState::Flush => "flush",
            ProtoState::Stop => "stop",
            ProtoState::Other(s) => s,
        }
    }
}

impl fmt::Display for ProtoState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// BGP session state as BIRD describes it (`bgp_state_dsc`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BgpState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
    Close,
    /// Idle and waiting for the peer (`passive on`, or a dynamic parent).
    Passive,
    /// The protocol is down.
    Down,
    /// BIRD 3.x: the protocol is flushing its routes.
    Flush,
    /// Anything else, kept verbatim.
    Other(String),
}

impl BgpState {
    /// `Established` -> [`BgpState::Established`]; unknown words become
    /// [`BgpState::Other`].
    pub fn parse(word: &str) -> BgpState {
        BgpState::known(word).unwrap_or_else(|| BgpState::Other(word.to_string()))
    }

    /// The state for one of BIRD's own words, `None` for anything else.
    fn known(word: &str) -> Option<BgpState> {
        Some(match word {
            "Idle" => BgpState::Idle,
            "Connect" => BgpState::Connect,
            "Active" => BgpState::Active,
            "OpenSent" => BgpState::OpenSent,
            "OpenConfirm" => BgpState::OpenConfirm,
            "Established" => BgpState::Established,
            "Close" => BgpState::Close,
            "Passive" => BgpState::Passive,
            "Down" => BgpState::Down,
            "Flush" => BgpState::Flush,
            _ => return None,
        })
    }

    /// The word BIRD prints.
    pub fn as_str(&self) -> &str {
        match self {
            BgpState::Idle => "Idle",
            BgpState::Connect => "Connect",
            BgpState::Active => "Active",
            BgpState::OpenSent => "OpenSent",
            BgpState::OpenConfirm => "OpenConfirm",
            BgpState::Established => "Established",
            BgpState::Close => "Close",
            BgpState::Passive => "Passive",
            BgpState::Down => "Down",
            BgpState::Flush => "Flush",
            BgpState::Other(s) => s,
        }
    }
}

impl fmt::Display for BgpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// BGP facts from the `1006` detail lines of `show protocols all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpDetails {
    /// `BGP state:          Established`
    pub state: BgpState,
    /// `Neighbor address: fe80::1%vlab0` -> `fe80::1`. `None` for a dynamic
    /// parent, which prints `Neighbor range:` instead.
    pub neighbor_addr: Option<IpAddr>,
    /// `Neighbor address: fe80::1%vlab0` -> `vlab0`.
    pub neighbor_iface: Option<String>,
    /// `Neighbor range:   127.0.0.0/24` (dynamic BGP parent), verbatim.
    pub neighbor_range: Option<String>,
    /// `Neighbor AS:      65002`
    pub neighbor_as: Option<u32>,
    /// `Local AS:         65001` (absent in BIRD 1.6).
    pub local_as: Option<u32>,
    /// `Neighbor ID:      10.0.0.2` (only while the session is up).
    pub neighbor_id: Option<Ipv4Addr>,
    /// `Last error:       Socket: Connection refused`
    pub last_error: Option<String>,
    /// `Description:    neighbor that is not up`
    pub description: Option<String>,
}

/// One row of `show protocols`, with BGP details when the reply was
/// `show protocols all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// `peer_down`, `spoke-10.0.0.1`, …
    pub name: String,
    /// `BGP`, `Device`, `Kernel`, …
    pub proto: String,
    /// `master`, `master4`; `None` when BIRD prints `---`.
    pub table: Option<String>,
    pub state: ProtoState,
    /// The Since column verbatim: `08:03:59.487`, `2026-11-22`, or with
    /// `timeformat protocol iso long` `2026-11-23 08:03:59`.
    pub since: String,
    /// The Info column, inner spacing kept, trailing spaces trimmed:
    /// `Active        Socket: Connection refused`.
    pub info: String,
    /// Filled only from `show protocols all` for BGP protocols.
    pub bgp: Option<BgpDetails>,
}

impl Protocol {
    /// The BGP state word that opens the Info column of a BGP protocol
    /// (`Active` in `Active        Socket: Connection refused`). `None` for
    /// other protocols, and for a down BGP protocol whose Info holds only an
    /// error (`Error: Kernel MD5 auth failed`) or nothing.
    pub fn bgp_state_word(&self) -> Option<BgpState> {
        if !self.proto.eq_ignore_ascii_case("BGP") {
            return None;
        }
        let word = self.info.split_ascii_whitespace().next()?;
        BgpState::known(word)
    }

    /// The Info column without its leading BGP state word:
    /// `Socket: Connection refused`. `None` when nothing is left.
    pub fn info_message(&self) -> Option<&str> {
        let rest = match self.bgp_state_word() {
            Some(state) => self
                .info
                .trim_start()
                .strip_prefix(state.as_str())
                .unwrap_or(&self.info),
            None => &self.info,
        };
        let rest = rest.trim();
        (!rest.is_empty()).then_some(rest)
    }
}

/// Parses a whole `show protocols [all]` reply. The first bad row or
/// detail line fails the whole reply; see [`parse_protocols_lenient`] to
/// skip bad rows instead.
///
/// Accepts rows like
/// `1002-peer_b     BGP        ---        up     08:06:39.277  Established   `
/// and detail lines like `1006-  BGP state:          Established`.
pub fn parse_protocols(reply: &Reply) -> Result<Vec<Protocol>, ProtocolsError> {
    let (protocols, mut errors) = parse_inner(reply, false);
    match errors.is_empty() {
        true => Ok(protocols),
        false => Err(errors.swap_remove(0)),
    }
}

/// Like [`parse_protocols`], but a bad row (and its detail lines) is
/// skipped and its error collected; an 8xxx/9xxx reply still yields no
/// protocols and one [`ProtocolsError::Bird`].
pub fn parse_protocols_lenient(reply: &Reply) -> (Vec<Protocol>, Vec<ProtocolsError>) {
    parse_inner(reply, true)
}

/// A protocol row being assembled with its detail lines.
struct Pending {
    protocol: Protocol,
    details: Vec<(usize, String)>,
}

fn parse_inner(reply: &Reply, lenient: bool) -> (Vec<Protocol>, Vec<ProtocolsError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();

    if let Some(err) = reply.lines.iter().find(|l| l.code.0 >= 8000) {
        errors.push(ProtocolsError::Bird {
            code: err.code.0,
            text: err.text.clone(),
        });
        return (out, errors);
    }

    let mut pending: Option<Pending> = None;
    // True while the detail lines belong to a row that was skipped.
    let mut skipping = false;
    for (idx, line) in reply.lines.iter().enumerate() {
        let lineno = idx + 1;
        match line.code.0 {
            CODE_ROW => {
                if let Some(p) = pending.take() {
                    finish(p, &mut out, &mut errors);
                }
                match parse_row(lineno, line) {
                    Ok(protocol) => {
                        skipping = false;
                        pending = Some(Pending {
                            protocol,
                            details: Vec::new(),
                        });
                    }
                    Err(e) => {
                        errors.push(e);
                        skipping = true;
                    }
                }
            }
            CODE_DETAIL => match pending.as_mut() {
                Some(p) => p.details.push((lineno, line.text.clone())),
                None if skipping => {}
                None => {
                    // An empty detail line closes a block; tolerate it.
                    if !line.text.trim().is_empty() {
                        errors.push(ProtocolsError::OrphanDetail {
                            line: lineno,
                            text: line.text.clone(),
                        });
                    }
                }
            },
            // The heading, the final `0000`, and codes not used here.
            _ => {}
        }
        if !lenient && !errors.is_empty() {
            return (out, errors);
        }
    }
    if let Some(p) = pending.take() {
        finish(p, &mut out, &mut errors);
    }
    (out, errors)
}

/// Attaches the BGP details (if any) and moves the protocol to `out`.
fn finish(mut p: Pending, out: &mut Vec<Protocol>, errors: &mut Vec<ProtocolsError>) {
    let has_details = p.details.iter().any(|(_, t)| !t.trim().is_empty());
    if has_details && p.protocol.proto.eq_ignore_ascii_case("BGP") {
        match parse_bgp_details(&p.protocol.name, &p.details) {
            Ok(d) => p.protocol.bgp = Some(d),
            Err(e) => {
                errors.push(e);
                return;
            }
        }
    }
    out.push(p.protocol);
}

/// Splits off the next run of non-space characters; returns it and the
/// rest of the text after it (leading spaces kept).
fn next_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return None;
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Some(s.split_at(end))
}

/// `2026-11-23`
fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// `08:03:59`, `08:03:59.487`
fn looks_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 {
        return false;
    }
    let hms = b.iter().take(8).enumerate().all(|(i, c)| match i {
        2 | 5 => *c == b':',
        _ => c.is_ascii_digit(),
    });
    let frac = b.get(8..).unwrap_or_default();
    hms && (frac.is_empty()
        || (frac.len() >= 2 && frac[0] == b'.' && frac[1..].iter().all(u8::is_ascii_digit)))
}

/// A name as BIRD prints it: printable ASCII, no spaces (symbols are
/// `[A-Za-z0-9_.:-]`; dynamic names may hold other printable characters).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses one protocol row:
/// `peer_down  BGP        ---        start  08:03:59.487  Active        Socket: Connection refused`.
fn parse_row(lineno: usize, line: &ReplyLine) -> Result<Protocol, ProtocolsError> {
    let text = line.text.as_str();
    let mut fields: Vec<&str> = Vec::with_capacity(5);
    let mut rest = text;
    while fields.len() < 5 {
        match next_token(rest) {
            Some((tok, r)) => {
                fields.push(tok);
                rest = r;
            }
            None => {
                return Err(ProtocolsError::ShortRow {
                    line: lineno,
                    found: fields.len(),
                    text: text.to_string(),
                })
            }
        }
    }
    let [name, proto, table, state, since] = fields[..] else {
        return Err(ProtocolsError::ShortRow {
            line: lineno,
            found: fields.len(),
            text: text.to_string(),
        });
    };
    if !valid_name(name) {
        return Err(ProtocolsError::BadName {
            line: lineno,
            name: name.to_string(),
        });
    }
    let mut since = since.to_string();
    // `timeformat protocol iso long`: the Since column holds a space.
    if looks_like_date(&since) {
        if let Some((tok, r)) = next_token(rest) {
            if looks_like_time(tok) {
                since.push(' ');
                since.push_str(tok);
                rest = r;
            }
        }
    }
    Ok(Protocol {
        name: name.to_string(),
        proto: proto.to_string(),
        table: (table != "---").then(|| table.to_string()),
        state: ProtoState::parse(state),
        since,
        info: rest.trim().to_string(),
        bgp: None,
    })
}

/// Reads the BGP facts out of one protocol's detail lines, e.g.
/// `  BGP state:          Established` and
/// `    Neighbor address: fe80::1%vlab0`.
fn parse_bgp_details(
    protocol: &str,
    details: &[(usize, String)],
) -> Result<BgpDetails, ProtocolsError> {
    let mut state = None;
    let mut d = BgpDetails {
        state: BgpState::Other(String::new()),
        neighbor_addr: None,
        neighbor_iface: None,
        neighbor_range: None,
        neighbor_as: None,
        local_as: None,
        neighbor_id: None,
        last_error: None,
        description: None,
    };
    let bad = |line: usize, field: &'static str, value: &str| ProtocolsError::BadField {
        line,
        protocol: protocol.to_string(),
        field,
        value: value.to_string(),
    };
    for (line, text) in details {
        let Some((key, value)) = text.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "BGP state" => state = Some(BgpState::parse(value)),
            "Description" => d.description = Some(value.to_string()),
            "Last error" => d.last_error = Some(value.to_string()),
            "Neighbor range" => d.neighbor_range = Some(value.to_string()),
            "Neighbor address" => {
                // 3.x may append ` onlink`.
                let addr = value.split_ascii_whitespace().next().unwrap_or("");
                let (ip, iface) = match addr.split_once('%') {
                    Some((ip, iface)) => (ip, Some(iface)),
                    None => (addr, None),
                };
                d.neighbor_addr = Some(
                    ip.parse()
                        .map_err(|_| bad(*line, "neighbor address", value))?,
                );
                if let Some(iface) = iface {
                    if iface.is_empty() || !iface.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(bad(*line, "neighbor interface", value));
                    }
                    d.neighbor_iface = Some(iface.to_string());
                }
            }
            "Neighbor AS" => {
                d.neighbor_as = Some(
                    value
                        .parse()
                        .map_err(|_| bad(*line, "neighbor AS", value))?,
                )
            }
            "Local AS" => {
                d.local_as = Some(value.parse().map_err(|_| bad(*line, "local AS", value))?)
            }
            "Neighbor ID" => {
                d.neighbor_id = Some(
                    value
                        .parse()
                        .map_err(|_| bad(*line, "neighbor ID", value))?,
                )
            }
            _ => {}
        }
    }
    d.state = state.ok_or_else(|| ProtocolsError::MissingBgpState {
        protocol: protocol.to_string(),
    })?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bird::reply::{Code, LineKind};

    fn reply(lines: &[(u16, &str)]) -> Reply {
        Reply {
            lines: lines
                .iter()
                .map(|(c, t)| ReplyLine {
                    code: Code(*c),
                    kind: LineKind::More,
                    text: t.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn time_and_date_detection() {
        assert!(looks_like_date("2026-11-22"));
        assert!(!looks_like_date("08:03:59.4"));
        assert!(looks_like_time("08:03:59"));
        assert!(looks_like_time("08:03:59.487"));
        assert!(!looks_like_time("08:03:59."));
        assert!(!looks_like_time("Established"));
    }

    #[test]
    fn short_row_is_an_error_naming_the_line() {
        let r = reply(&[(2002, "Name Proto"), (1002, "x BGP ---  up")]);
        assert_eq!(
            parse_protocols(&r),
            Err(ProtocolsError::ShortRow {
                line: 2,
                found: 4,
                text: "x BGP ---  up".into()
            })
        );
    }

    #[test]
    fn empty_info_and_dash_table() {
        let r = reply(&[(
            1002,
            "device1    Device     ---        up     08:03:59.487  ",
        )]);
        let p = parse_protocols(&r).unwrap();
        assert_eq!(p[0].info, "");
        assert_eq!(p[0].table, None);
        assert_eq!(p[0].bgp_state_word(), None);
    }
}
