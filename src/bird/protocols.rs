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
        bgp_state_word(&self.proto, &self.info)
    }

    /// The Info column without its leading BGP state word:
    /// `Socket: Connection refused`. `None` when nothing is left.
    pub fn info_message(&self) -> Option<&str> {
        info_message(&self.proto, &self.info)
    }
}

/// [`Protocol::bgp_state_word`] of a row's protocol and Info columns.
fn bgp_state_word(proto: &str, info: &str) -> Option<BgpState> {
    if !proto.eq_ignore_ascii_case("BGP") {
        return None;
    }
    let word = info.split_ascii_whitespace().next()?;
    BgpState::known(word)
}

/// [`Protocol::info_message`] of a row's protocol and Info columns.
fn info_message<'a>(proto: &str, info: &'a str) -> Option<&'a str> {
    let rest = match bgp_state_word(proto, info) {
        Some(state) => info
            .trim_start()
            .strip_prefix(state.as_str())
            .unwrap_or(info),
        None => info,
    };
    let rest = rest.trim();
    (!rest.is_empty()).then_some(rest)
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

/// What the roster reads of every row of a `show protocols` reply (name,
/// protocol, state, Info), kept compact: one text buffer and 12 bytes per
/// row, sorted by name. At 10,000 protocols that is about 0.6 MB, where the
/// framed [`Reply`] and the [`Protocol`] values for the same reply take
/// about 4 MB. [`TableBuilder`] fills it line by line as the reply arrives,
/// so the whole reply is never held. The Since and Table columns and the
/// `all` details are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolTable {
    text: String,
    rows: Vec<RowAt>,
}

/// Where one row's fields are in [`ProtocolTable::text`]: name, protocol,
/// state and Info back to back from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowAt {
    start: u32,
    name: u16,
    proto: u16,
    state: u16,
    info: u16,
}

/// One row of a [`ProtocolTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRow<'a> {
    pub name: &'a str,
    pub proto: &'a str,
    /// The state column as printed (`up`, `start`, ...).
    pub state: &'a str,
    /// The Info column, trailing spaces trimmed.
    pub info: &'a str,
}

impl TableRow<'_> {
    /// The row as a [`Protocol`] (Table, Since and details left empty).
    pub fn to_protocol(&self) -> Protocol {
        Protocol {
            name: self.name.to_owned(),
            proto: self.proto.to_owned(),
            table: None,
            state: ProtoState::parse(self.state),
            since: String::new(),
            info: self.info.to_owned(),
            bgp: None,
        }
    }

    /// [`Protocol::bgp_state_word`], without building a [`Protocol`].
    pub fn bgp_state_word(&self) -> Option<BgpState> {
        bgp_state_word(self.proto, self.info)
    }

    /// [`Protocol::info_message`], without building a [`Protocol`].
    pub fn info_message(&self) -> Option<&str> {
        info_message(self.proto, self.info)
    }

    /// BIRD's state `up` and BGP `Established`.
    pub fn is_established(&self) -> bool {
        self.state == "up"
            && self.proto.eq_ignore_ascii_case("BGP")
            && self.info.split_ascii_whitespace().next() == Some("Established")
    }
}

impl ProtocolTable {
    /// How many protocols BIRD listed.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row of protocol `name`, if BIRD listed it.
    pub fn get(&self, name: &str) -> Option<TableRow<'_>> {
        let i = self
            .rows
            .binary_search_by(|r| self.field(r, 0).cmp(name))
            .ok()?;
        self.rows.get(i).map(|r| self.row(r))
    }

    /// Every row, by name.
    pub fn iter(&self) -> impl Iterator<Item = TableRow<'_>> {
        self.rows.iter().map(|r| self.row(r))
    }

    /// A digest of what the observer counts as a change: the set of names
    /// and, per name, the state column and whether the session is
    /// Established. The Info text of a session that is not up (`Active`,
    /// `Connect`, a socket error) cycles with every connect retry and is
    /// left out.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for r in self.iter() {
            (r.name, r.state, r.is_established()).hash(&mut h);
        }
        h.finish()
    }

    /// Bytes held (text and index), for the footprint figures.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.rows.capacity() * std::mem::size_of::<RowAt>()
    }

    fn field(&self, r: &RowAt, which: usize) -> &str {
        let lens = [r.name, r.proto, r.state, r.info];
        let start = r.start as usize + lens.iter().take(which).map(|&l| l as usize).sum::<usize>();
        let len = lens.get(which).copied().unwrap_or(0) as usize;
        self.text.get(start..start + len).unwrap_or("")
    }

    fn row(&self, r: &RowAt) -> TableRow<'_> {
        TableRow {
            name: self.field(r, 0),
            proto: self.field(r, 1),
            state: self.field(r, 2),
            info: self.field(r, 3),
        }
    }

    /// Appends one row (unsorted until [`ProtocolTable::seal`]); fields
    /// longer than 65,535 bytes are cut (BIRD's lines are at most 512).
    fn push(&mut self, name: &str, proto: &str, state: &str, info: &str) {
        let cut = |s: &str| -> usize {
            let mut n = s.len().min(u16::MAX as usize);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            n
        };
        let start = self.text.len();
        let mut lens = [0u16; 4];
        for (i, f) in [name, proto, state, info].into_iter().enumerate() {
            let n = cut(f);
            self.text.push_str(f.get(..n).unwrap_or(""));
            lens[i] = n as u16;
        }
        let Ok(start) = u32::try_from(start) else {
            // 4 GiB of rows: nothing BIRD sends; drop the row's text.
            self.text.truncate(start);
            return;
        };
        self.rows.push(RowAt {
            start,
            name: lens[0],
            proto: lens[1],
            state: lens[2],
            info: lens[3],
        });
    }

    /// Sorts by name (BIRD lists protocols in config order) and drops the
    /// spare capacity. A name listed twice keeps its last row.
    fn seal(&mut self) {
        let mut rows = std::mem::take(&mut self.rows);
        // Reversed, then a stable sort: of a name listed twice the last
        // row comes first and stays, as in a map built from the list.
        rows.reverse();
        rows.sort_by(|a, b| self.field(a, 0).cmp(self.field(b, 0)));
        rows.dedup_by(|b, a| self.field(a, 0) == self.field(b, 0));
        rows.shrink_to_fit();
        self.rows = rows;
        self.text.shrink_to_fit();
    }
}

/// Rows the roster can fold in: a [`ProtocolTable`] as the observer
/// sends it, or parsed [`Protocol`]s (tests, scenarios).
pub trait ProtocolRows {
    fn to_table(&self) -> std::borrow::Cow<'_, ProtocolTable>;
}

impl ProtocolRows for ProtocolTable {
    fn to_table(&self) -> std::borrow::Cow<'_, ProtocolTable> {
        std::borrow::Cow::Borrowed(self)
    }
}

impl ProtocolRows for [Protocol] {
    fn to_table(&self) -> std::borrow::Cow<'_, ProtocolTable> {
        std::borrow::Cow::Owned(self.into())
    }
}

impl ProtocolRows for Vec<Protocol> {
    fn to_table(&self) -> std::borrow::Cow<'_, ProtocolTable> {
        self.as_slice().to_table()
    }
}

impl<const N: usize> ProtocolRows for [Protocol; N] {
    fn to_table(&self) -> std::borrow::Cow<'_, ProtocolTable> {
        self.as_slice().to_table()
    }
}

impl From<Vec<Protocol>> for ProtocolTable {
    fn from(rows: Vec<Protocol>) -> Self {
        let mut t = ProtocolTable::default();
        for p in &rows {
            t.push(&p.name, &p.proto, p.state.as_str(), &p.info);
        }
        t.seal();
        t
    }
}

impl From<&[Protocol]> for ProtocolTable {
    fn from(rows: &[Protocol]) -> Self {
        rows.to_vec().into()
    }
}

/// Builds a [`ProtocolTable`] from the lines of a plain `show protocols`
/// reply as they arrive; the rules are [`parse_protocols`]'s (the first
/// bad row fails the reply, an 8xxx/9xxx line is [`ProtocolsError::Bird`]).
#[derive(Debug, Default)]
pub struct TableBuilder {
    table: ProtocolTable,
    lines: usize,
    error: Option<ProtocolsError>,
}

impl TableBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next line of the reply.
    pub fn push(&mut self, line: &ReplyLine) {
        self.lines += 1;
        if self.error.is_some() {
            return;
        }
        if line.code.0 >= 8000 {
            self.error = Some(ProtocolsError::Bird {
                code: line.code.0,
                text: line.text.clone(),
            });
            return;
        }
        if line.code.0 != CODE_ROW {
            return;
        }
        match parse_row(self.lines, line) {
            Ok(p) => self
                .table
                .push(&p.name, &p.proto, p.state.as_str(), &p.info),
            Err(e) => self.error = Some(e),
        }
    }

    /// The table, or the first error.
    pub fn finish(mut self) -> Result<ProtocolTable, ProtocolsError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.table.seal();
        Ok(self.table)
    }
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
