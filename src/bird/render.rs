//! The include file autopeer owns: rendered from the roster and parsed back.
//!
//! Pure: no I/O, no logging. [`render`] never emits text it did not
//! validate (symbols, interface names, timestamps, `via` tags), and
//! [`parse`] reads back exactly what [`render`] writes, tolerating blank
//! lines, comments and whole blocks deleted by hand. It must not accept a
//! block edited into anything else: that is an error naming the line.
//!
//! One block per peer, sorted by name:
//!
//! ```text
//! # autopeer: group clients, admitted 2026-11-23T06:55:02Z via bird-log
//! protocol bgp clients_10_88_0_2 from CLIENTS {
//!   neighbor 10.88.0.2 internal;
//!   description "autopeer=1 group=clients";
//! }
//!
//! # autopeer: group spokes, admitted 2026-11-23T06:55:03Z via bird-log
//! protocol bgp spokes_fe80__1_vti3 from SPOKES {
//!   neighbor fe80::1%vti3 internal;
//!   direct;
//!   description "autopeer=1 group=spokes";
//! }
//! ```
//!
//! The description is `key=value` pairs of word characters, the form
//! bird_exporter's `-format.description-labels` turns into Prometheus
//! labels ([`description`]). Files written before it say
//! `description "autopeer GROUP ADDR";` and still load: any description
//! without a `"` is read back (and rewritten in the new form).
//!
//! What may be a name, an interface or a key is decided in [`super::lang`],
//! which the config's validation asks too.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::secret::Secret;

pub use super::lang::{is_iface, is_symbol, SYM_MAX_LEN};
use super::lang::{is_keyword, key_problem};
/// Longest `via` tag accepted.
const VIA_MAX_LEN: usize = 32;

/// The first lines of every rendered file.
const HEADER: &str = "\
# Managed by autopeer: do not edit. The only change allowed by hand is to
# delete a peer's whole block, from its \"# autopeer:\" line to its closing
# \"}\"; autopeer then forgets that peer. Other edits are refused or lost.
";

/// What a group's peers are told about their AS (`neighbor ADDR as N;`,
/// `neighbor ADDR internal;`, `neighbor ADDR external;`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighborAs {
    /// `neighbor ADDR internal;`: iBGP, AS taken from `local as`.
    Internal,
    /// `neighbor ADDR external;`: any AS but ours.
    External,
    /// `neighbor ADDR as N;`.
    As(u32),
}

impl fmt::Display for NeighborAs {
    /// The BIRD syntax after the address: `internal`, `external`, `as 65001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NeighborAs::Internal => f.write_str("internal"),
            NeighborAs::External => f.write_str("external"),
            NeighborAs::As(n) => write!(f, "as {n}"),
        }
    }
}

/// The BIRD language the owned file is written in, from the version in
/// BIRD's greeting. Only the neighbor line differs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Dialect {
    /// BIRD 2.x and 3.x (and any version autopeer does not know).
    #[default]
    Bird2,
    /// BIRD 1.6: `neighbor ADDR as N;` is the only form (`internal` and
    /// `external` are syntax errors, checked with `bird -p` on 1.6.8). An
    /// iBGP peer is written with its template's `local as`: template name
    /// to AS.
    Bird1 { local_as: BTreeMap<String, u32> },
}

/// One admitted peer: one `protocol bgp` block of the owned file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The BIRD protocol name, usually from [`peer_name`].
    pub name: String,
    /// The autopeer group it was admitted to.
    pub group: String,
    /// The BIRD template it derives from (`from TEMPLATE`).
    pub template: String,
    pub addr: IpAddr,
    /// Interface for a link-local neighbor (`neighbor fe80::1%vti3`).
    pub iface: Option<String>,
    /// `None`: `neighbor ADDR;`, the template supplies the AS or peer type
    /// (checked with `bird -p`: BIRD 2.0.12 accepts it when the template
    /// says `neighbor as 65000;` or `neighbor internal;`).
    pub neighbor: Option<NeighborAs>,
    /// When it was admitted, RFC 3339 UTC: `2026-11-23T06:55:02Z`.
    pub admitted: String,
    /// Which source admitted it: `bird-log`, `nhrp`, `ctl`, …
    pub via: String,
}

/// Errors from rendering or parsing the owned include file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A group key BIRD cannot hold in a string (never printed).
    #[error("group {group}: its password cannot be written into BIRD's config")]
    BadPassword { group: String },
    /// Not a BIRD symbol (`[A-Za-z_][A-Za-z0-9_]*`, at most 64, no keyword,
    /// not 32+ hex digits only).
    #[error("{what} {value:?} is not a usable BIRD symbol")]
    BadSymbol { what: &'static str, value: String },
    /// Not an interface name (`[A-Za-z0-9_.:-]{1,15}`).
    #[error("peer {name}: interface {value:?} is not a usable interface name")]
    BadIface { name: String, value: String },
    /// `0.0.0.0` or `::` as a neighbor.
    #[error("peer {name}: {addr} is not a neighbor address")]
    BadAddress { name: String, addr: IpAddr },
    /// `as 0` is not a peer AS.
    #[error("peer {name}: AS 0 is not a peer AS")]
    BadAs { name: String },
    /// Not `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
    #[error("peer {name}: admitted {value:?} is not an RFC 3339 UTC time")]
    BadTimestamp { name: String, value: String },
    /// Not `[A-Za-z0-9_.-]{1,32}`.
    #[error("peer {name}: via {value:?} is not a source tag")]
    BadVia { name: String, value: String },
    /// Two peers with one name.
    #[error("two peers are named {name}")]
    DuplicateName { name: String },
    /// BIRD 1.6 cannot write this peer's neighbor line.
    #[error("peer {name}: BIRD 1.6 has no `neighbor ADDR {what};`: {fix}")]
    Bird1Neighbor {
        name: String,
        what: &'static str,
        fix: String,
    },
    /// A line of the file that is not what [`render`] writes.
    #[error("line {line}: {reason}: {text:?}")]
    Parse {
        line: usize,
        reason: &'static str,
        text: String,
    },
    /// A block that parses but holds an invalid peer.
    #[error("line {line}: {source}")]
    InvalidBlock {
        line: usize,
        #[source]
        source: Box<RenderError>,
    },
    /// The file ends inside a `protocol` block.
    #[error("line {line}: protocol block is not closed")]
    Unterminated { line: usize },
}

/// `2026-11-23T06:55:02Z`, optionally with a fraction before the `Z`.
fn is_utc_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(head) = b.get(..19) else {
        return false;
    };
    let head_ok = head.iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        10 => *c == b'T',
        13 | 16 => *c == b':',
        _ => c.is_ascii_digit(),
    });
    let tail = b.get(19..).unwrap_or_default();
    let tail_ok = match tail {
        [b'Z'] => true,
        [b'.', frac @ .., b'Z'] => {
            !frac.is_empty() && frac.len() <= 9 && frac.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    head_ok && tail_ok
}

fn is_via(s: &str) -> bool {
    (1..=VIA_MAX_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// FNV-1a, 64 bit: a tiny hash whose value never changes between Rust or
/// crate versions, so hashed names stay stable.
fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Maps every character outside `[A-Za-z0-9_]` to `_` (a group name
/// that passed the config is left as it is).
fn symbolize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The address in a protocol name: its canonical text with `.` and `:`
/// mapped to `_` (`192_0_2_7`, `2001_db8__7`). An IPv4-mapped IPv6
/// address is written in hex (`__ffff_c000_207`), so that it cannot meet
/// `::ffff:192:0:2:7`. The result is `[0-9a-f_]` only, and distinct
/// addresses give distinct results: canonical text is unique per address,
/// and IPv4 text (exactly three `_`, never two in a row) is never IPv6
/// text (seven `_`, or a `__`).
fn addr_part(addr: IpAddr) -> String {
    let text = match addr {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
            let s = a.segments();
            format!("::ffff:{:x}:{:x}", s[6], s[7])
        }
        a => a.to_string(),
    };
    text.replace(['.', ':'], "_")
}

/// The interface in a protocol name. A name starting with a letter that is
/// not a lowercase hex digit and made of letters and digits only stays as
/// it is (`vti3`, `gre1`, `Tun0`). Any other gets `if_` and each of
/// `_ . : -` becomes `_u _d _c _h` (`eth0` -> `if_eth0`, `eth-0.5` ->
/// `if_eth_h0_d5`). Either way its first character is outside the
/// address's `[0-9a-f_]`, so the name says where the address ends, and the
/// escapes make the rest decodable: distinct `(address, interface)` pairs
/// get distinct names (`fe80::1%2_x3` and `fe80::1:2%x3` once met).
fn iface_part(iface: &str) -> String {
    let plain = iface
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || (b'g'..=b'z').contains(&b))
        && iface.bytes().all(|b| b.is_ascii_alphanumeric());
    if plain {
        return iface.to_string();
    }
    let mut out = String::from("if_");
    for b in iface.bytes() {
        match b {
            b'_' => out.push_str("_u"),
            b'.' => out.push_str("_d"),
            b':' => out.push_str("_c"),
            b'-' => out.push_str("_h"),
            b if b.is_ascii_alphanumeric() => out.push(char::from(b)),
            // Not an interface name (see `is_iface`); still unambiguous.
            b => {
                let _ = write!(out, "_x{b:02x}");
            }
        }
    }
    out
}

/// The protocol name for a peer: `{group}_{address}`, and `_{interface}`
/// for a scoped neighbor: `clients_192_0_2_7`, `clients_2001_db8__7`,
/// `clients_fe80__1_vti3`, `clients_fe80__1_if_eth0` (see [`addr_part`]
/// and [`iface_part`]: for one group, the name is injective). A name
/// longer than 64 characters is cut to 47 and gets `_` and 16 hex digits
/// of the FNV-1a 64 hash of the whole name, so it stays unique and fits
/// BIRD.
///
/// The result is a valid symbol when `group` is a valid group name
/// ([`crate::config::is_group_name`] and [`is_symbol`]): it holds a `_`,
/// so it is never hex digits only, and no keyword has the shape.
pub fn peer_name(group: &str, addr: IpAddr, iface: Option<&str>) -> String {
    let mut name = format!("{}_{}", symbolize(group), addr_part(addr));
    if let Some(iface) = iface {
        name.push('_');
        name.push_str(&iface_part(iface));
    }
    if name.len() <= SYM_MAX_LEN {
        return name;
    }
    let hash = fnv1a64(name.as_bytes());
    // `name` is ASCII (symbolize), so any byte index is a char boundary.
    let mut short: String = name.chars().take(SYM_MAX_LEN - 17).collect();
    let _ = write!(short, "_{hash:016x}");
    short
}

/// Checks one peer; the error names the peer.
fn validate(p: &Peer) -> Result<(), RenderError> {
    for (what, value) in [
        ("name", &p.name),
        ("group", &p.group),
        ("template", &p.template),
    ] {
        if !is_symbol(value) {
            return Err(RenderError::BadSymbol {
                what,
                value: value.clone(),
            });
        }
    }
    if p.addr.is_unspecified() {
        return Err(RenderError::BadAddress {
            name: p.name.clone(),
            addr: p.addr,
        });
    }
    if let Some(iface) = &p.iface {
        if !is_iface(iface) {
            return Err(RenderError::BadIface {
                name: p.name.clone(),
                value: iface.clone(),
            });
        }
    }
    if p.neighbor == Some(NeighborAs::As(0)) {
        return Err(RenderError::BadAs {
            name: p.name.clone(),
        });
    }
    if !is_utc_timestamp(&p.admitted) {
        return Err(RenderError::BadTimestamp {
            name: p.name.clone(),
            value: p.admitted.clone(),
        });
    }
    if !is_via(&p.via) {
        return Err(RenderError::BadVia {
            name: p.name.clone(),
            value: p.via.clone(),
        });
    }
    Ok(())
}

fn check_key(group: &str, key: &Secret<String>) -> Result<(), RenderError> {
    match key_problem(key.expose()) {
        Some(_) => Err(RenderError::BadPassword {
            group: group.to_string(),
        }),
        None => Ok(()),
    }
}

/// Whether [`render_with_passwords`] can write this one peer, with its
/// group's key if it has one: the same checks, so that a caller can set a
/// peer aside instead of losing a whole file over it.
pub fn check_peer(p: &Peer, key: Option<&Secret<String>>) -> Result<(), RenderError> {
    check_peer_in(p, key, &Dialect::Bird2)
}

/// [`check_peer`] for the BIRD version in use: BIRD 1.6 cannot write every
/// neighbor form (see [`Dialect::Bird1`]).
pub fn check_peer_in(
    p: &Peer,
    key: Option<&Secret<String>>,
    dialect: &Dialect,
) -> Result<(), RenderError> {
    validate(p)?;
    neighbor_line(p, dialect)?;
    match key {
        Some(k) => check_key(&p.group, k),
        None => Ok(()),
    }
}

/// How the interface is written after the address.
enum Scope<'a> {
    None,
    /// `fe80::1%vti3`
    Plain(&'a str),
    /// `fe80::1 % 'eth-0'`
    Quoted(&'a str),
    /// `interface "ipv4";` on its own line: the name is a keyword or
    /// starts with a digit, which neither symbol form can hold.
    Option(&'a str),
}

fn scope(iface: Option<&str>) -> Scope<'_> {
    match iface {
        None => Scope::None,
        Some(i) if is_symbol(i) => Scope::Plain(i),
        Some(i) if i.bytes().any(|b| b"-.:".contains(&b)) => Scope::Quoted(i),
        Some(i) => Scope::Option(i),
    }
}

/// A link-local neighbor must be directly connected: BIRD refuses an iBGP
/// protocol (multihop by default) with one, "Multihop BGP cannot be used
/// with link-local addresses", and takes `direct;` in the protocol block
/// over the template's `multihop` (checked with `bird -p` on 2.0.12). For
/// eBGP `direct` is the default, so the line changes nothing there.
fn needs_direct(addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
}

/// Renders the owned include file: a header saying it is managed, then one
/// block per peer sorted by name. Every peer is validated first; nothing
/// is rendered if any is invalid or two share a name.
pub fn render(peers: &[Peer]) -> Result<String, RenderError> {
    render_with_passwords(peers, &BTreeMap::new())
}

/// The ` as N` / ` internal` / ` external` part of a peer's neighbor line
/// in `dialect`, or why that BIRD cannot express it.
fn neighbor_line(p: &Peer, dialect: &Dialect) -> Result<String, RenderError> {
    Ok(match (p.neighbor, dialect) {
        (Some(NeighborAs::Internal), Dialect::Bird1 { local_as }) => {
            match local_as.get(&p.template) {
                Some(n) => format!(" as {n}"),
                None => {
                    return Err(RenderError::Bird1Neighbor {
                        name: p.name.clone(),
                        what: "internal",
                        fix: format!("give template {} a `local as N;`", p.template),
                    })
                }
            }
        }
        (Some(NeighborAs::External), Dialect::Bird1 { .. }) => {
            return Err(RenderError::Bird1Neighbor {
                name: p.name.clone(),
                what: "external",
                fix: format!("set the AS number as neighbor of group {}", p.group),
            })
        }
        (Some(n), _) => format!(" {n}"),
        (None, _) => String::new(),
    })
}

/// Like [`render`], and every peer of a group in `passwords` gets that
/// group's own MD5 key (`password "...";`), so that BIRD's sessions use the
/// key the keyed listener admits with, not the template's. Keys were
/// validated by the config (no `"`, no line break, at most 80 bytes) and
/// are checked again here; [`parse`] reads the line back without keeping
/// the key (the config is its source of truth).
pub fn render_with_passwords(
    peers: &[Peer],
    passwords: &BTreeMap<String, Secret<String>>,
) -> Result<String, RenderError> {
    render_for(peers, passwords, &Dialect::Bird2)
}

/// Like [`render_with_passwords`], in the language of `dialect`.
pub fn render_for(
    peers: &[Peer],
    passwords: &BTreeMap<String, Secret<String>>,
    dialect: &Dialect,
) -> Result<String, RenderError> {
    render_groups(peers, passwords, &BTreeSet::new(), dialect)
}

/// Like [`render_for`], and every peer of a group in `passive` (the TCP-AO
/// groups) is written `passive on;`: BIRD has no AO key for it, so a
/// connection BIRD opened itself would be unsigned and the peer would drop
/// it (ao-experiment.md §4); its session comes in through the keyed
/// listener instead, and the kernel signs it with the group's key.
pub fn render_groups<P: std::borrow::Borrow<Peer>>(
    peers: &[P],
    passwords: &BTreeMap<String, Secret<String>>,
    passive: &BTreeSet<String>,
    dialect: &Dialect,
) -> Result<String, RenderError> {
    for (group, key) in passwords {
        check_key(group, key)?;
    }
    let mut seen = HashSet::with_capacity(peers.len());
    for p in peers {
        let p = p.borrow();
        validate(p)?;
        if !seen.insert(p.name.as_str()) {
            return Err(RenderError::DuplicateName {
                name: p.name.clone(),
            });
        }
    }
    let mut sorted: Vec<&Peer> = peers.iter().map(P::borrow).collect();
    sorted.sort_unstable_by(|a, b| a.name.cmp(&b.name));

    // About 200 bytes a peer: one allocation, not one per doubling.
    let mut out = String::with_capacity(HEADER.len() + 224 * peers.len());
    out.push_str(HEADER);
    for p in sorted {
        let nbr = neighbor_line(p, dialect)?;
        let scope = scope(p.iface.as_deref());
        let addr = match scope {
            Scope::Plain(i) => format!("{}%{i}", p.addr),
            Scope::Quoted(i) => format!("{} % '{i}'", p.addr),
            Scope::None | Scope::Option(_) => p.addr.to_string(),
        };
        // Infallible: writing to a String.
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# autopeer: group {}, admitted {} via {}",
            p.group, p.admitted, p.via
        );
        let _ = writeln!(out, "protocol bgp {} from {} {{", p.name, p.template);
        let _ = writeln!(out, "  neighbor {addr}{nbr};");
        if let Scope::Option(i) = scope {
            let _ = writeln!(out, "  interface \"{i}\";");
        }
        if needs_direct(p.addr) {
            let _ = writeln!(out, "  direct;");
        }
        let _ = writeln!(out, "  description \"{}\";", description(&p.group));
        if let Some(key) = passwords.get(&p.group) {
            let _ = writeln!(out, "  password \"{}\";", key.expose());
        }
        if passive.contains(&p.group) {
            let _ = writeln!(out, "  passive on;");
        }
        let _ = writeln!(out, "}}");
    }
    Ok(out)
}

/// The description of a group's peers: `autopeer=1 group=GROUP`.
///
/// bird_exporter (czerwonk/bird_exporter, metrics/default_label_strategy.go,
/// `labelKeysFromDescription`) takes every match of its
/// `-format.description-labels-regex`, by default `(\w+)=(\w+)` (main.go),
/// as a label name and value. So every key and value here is made of word
/// characters only: a group name is (`[a-z][a-z0-9_]*`); an address is not
/// (`10.88.0.2` would give the value `10`), so it stays out (BIRD shows it
/// as `Neighbor address`, and the protocol's name carries it).
pub fn description(group: &str) -> String {
    format!("autopeer=1 group={group}")
}

/// The `# autopeer: ...` line of a block, parsed.
struct Meta {
    group: String,
    admitted: String,
    via: String,
}

/// A block being read.
struct Block {
    start: usize,
    meta: Meta,
    name: String,
    template: String,
    neighbor: Option<(IpAddr, Option<String>, Option<NeighborAs>)>,
    iface_option: Option<String>,
    description: bool,
    password: bool,
    passive: bool,
    direct: bool,
}

/// `# autopeer: group clients, admitted 2026-11-23T06:55:02Z via bird-log`
fn parse_meta(line: &str) -> Option<Meta> {
    let rest = line.strip_prefix("# autopeer: group ")?;
    let (group, rest) = rest.split_once(", admitted ")?;
    let (admitted, via) = rest.split_once(" via ")?;
    Some(Meta {
        group: group.to_string(),
        admitted: admitted.to_string(),
        via: via.to_string(),
    })
}

/// `protocol bgp clients_10_88_0_2 from CLIENTS {`
fn parse_open(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("protocol bgp ")?.strip_suffix(" {")?;
    let (name, template) = rest.split_once(" from ")?;
    Some((name.to_string(), template.to_string()))
}

/// `neighbor 10.88.0.2 internal;`, `neighbor fe80::1%vti3;`,
/// `neighbor fe80::1 % 'eth-0' as 65001;`
fn parse_neighbor(line: &str) -> Option<(IpAddr, Option<String>, Option<NeighborAs>)> {
    let rest = line.strip_prefix("neighbor ")?.strip_suffix(';')?;
    let mut toks = rest.split(' ').peekable();
    let first = toks.next()?;
    let (addr, mut iface) = match first.split_once('%') {
        Some((a, i)) if is_symbol(i) => (a.parse().ok()?, Some(i.to_string())),
        Some(_) => return None,
        None => (first.parse().ok()?, None),
    };
    if toks.peek() == Some(&"%") {
        if iface.is_some() {
            return None;
        }
        toks.next();
        let quoted = toks.next()?.strip_prefix('\'')?.strip_suffix('\'')?;
        if !is_iface(quoted) || is_keyword(quoted) {
            return None;
        }
        iface = Some(quoted.to_string());
    }
    let rest: Vec<&str> = toks.collect();
    let neighbor = match rest[..] {
        [] => None,
        ["internal"] => Some(NeighborAs::Internal),
        ["external"] => Some(NeighborAs::External),
        ["as", n] if n.bytes().all(|b| b.is_ascii_digit()) => Some(NeighborAs::As(n.parse().ok()?)),
        _ => return None,
    };
    Some((addr, iface, neighbor))
}

/// A line of the include as an error may quote it: a line that mentions
/// `password` (however mangled by hand) may hold a key, and is not shown.
fn quotable(raw: &str) -> String {
    if raw.to_ascii_lowercase().contains("password") {
        "password <redacted>".to_string()
    } else {
        raw.to_string()
    }
}

/// Reads the owned include file back into peers, in file order. Blank
/// lines and comments are skipped; a `# autopeer:` line whose block was
/// deleted is ignored. A line inside or between blocks that [`render`]
/// would not write is an error naming the line. Every peer is validated
/// as [`render`] does, so `parse(&render(x)?)? == x` for any `x` sorted by
/// name.
pub fn parse(text: &str) -> Result<Vec<Peer>, RenderError> {
    let mut peers = Vec::new();
    let mut seen = HashSet::new();
    let mut meta: Option<Meta> = None;
    let mut block: Option<Block> = None;
    let err = |line: usize, reason: &'static str, text: &str| RenderError::Parse {
        line,
        reason,
        text: quotable(text),
    };

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim();
        if let Some(b) = block.as_mut() {
            if line == "}" {
                let Some(b) = block.take() else { continue };
                let Some((addr, iface, neighbor)) = b.neighbor else {
                    return Err(err(lineno, "block without a neighbor line", raw));
                };
                let iface = match (iface, b.iface_option) {
                    (Some(_), Some(_)) => {
                        return Err(err(lineno, "two interfaces in one block", raw))
                    }
                    (a, b) => a.or(b),
                };
                if !b.description {
                    return Err(err(lineno, "block without a description line", raw));
                }
                // Older files lack it; BIRD refused such iBGP peers anyway.
                if b.direct && !needs_direct(addr) {
                    return Err(err(
                        lineno,
                        "direct for a neighbor that is not link-local",
                        raw,
                    ));
                }
                let peer = Peer {
                    name: b.name,
                    group: b.meta.group,
                    template: b.template,
                    addr,
                    iface,
                    neighbor,
                    admitted: b.meta.admitted,
                    via: b.meta.via,
                };
                validate(&peer).map_err(|e| RenderError::InvalidBlock {
                    line: b.start,
                    source: Box::new(e),
                })?;
                if !seen.insert(peer.name.clone()) {
                    return Err(RenderError::DuplicateName { name: peer.name });
                }
                peers.push(peer);
            } else if line.starts_with("neighbor ") {
                if b.neighbor.is_some() {
                    return Err(err(lineno, "second neighbor line", raw));
                }
                b.neighbor = Some(
                    parse_neighbor(line).ok_or_else(|| err(lineno, "bad neighbor line", raw))?,
                );
            } else if let Some(rest) = line.strip_prefix("interface \"") {
                let name = rest
                    .strip_suffix("\";")
                    .filter(|n| is_iface(n))
                    .ok_or_else(|| err(lineno, "bad interface line", raw))?;
                if b.iface_option.replace(name.to_string()).is_some() {
                    return Err(err(lineno, "second interface line", raw));
                }
            } else if line == "passive on;" {
                // A TCP-AO group's peer; the config says which groups are.
                if std::mem::replace(&mut b.passive, true) {
                    return Err(err(lineno, "second passive line", raw));
                }
            } else if line == "direct;" {
                if std::mem::replace(&mut b.direct, true) {
                    return Err(err(lineno, "second direct line", raw));
                }
            } else if let Some(rest) = line.strip_prefix("description \"") {
                let ok = rest.strip_suffix("\";").is_some_and(|d| !d.contains('"'));
                if !ok || b.description {
                    return Err(err(lineno, "bad description line", raw));
                }
                b.description = true;
            } else if let Some(rest) = line.strip_prefix("password \"") {
                // The group's key, from the config; not kept here.
                let ok = rest.strip_suffix("\";").is_some_and(|k| !k.contains('"'));
                if !ok || std::mem::replace(&mut b.password, true) {
                    return Err(err(lineno, "bad password line", raw));
                }
            } else if line.is_empty() || line.starts_with('#') {
                // Blank lines and comments inside a block are harmless.
            } else {
                return Err(err(lineno, "unexpected line in an autopeer block", raw));
            }
            continue;
        }

        if line.is_empty() {
            continue;
        }
        if line.starts_with("# autopeer:") {
            meta = Some(parse_meta(line).ok_or_else(|| err(lineno, "bad autopeer line", raw))?);
        } else if line.starts_with('#') {
            // Header or operator's comment.
        } else if line.starts_with("protocol ") {
            let (name, template) =
                parse_open(line).ok_or_else(|| err(lineno, "bad protocol line", raw))?;
            let Some(m) = meta.take() else {
                return Err(err(
                    lineno,
                    "protocol block without its \"# autopeer:\" line",
                    raw,
                ));
            };
            block = Some(Block {
                start: lineno,
                meta: m,
                name,
                template,
                neighbor: None,
                iface_option: None,
                description: false,
                password: false,
                passive: false,
                direct: false,
            });
        } else {
            return Err(err(lineno, "unexpected line outside a block", raw));
        }
    }
    match block {
        Some(b) => Err(RenderError::Unterminated { line: b.start }),
        None => Ok(peers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_answers() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn timestamps() {
        assert!(is_utc_timestamp("2026-11-23T06:55:02Z"));
        assert!(is_utc_timestamp("2026-11-23T06:55:02.123Z"));
        assert!(!is_utc_timestamp("2026-11-23T06:55:02+00:00"));
        assert!(!is_utc_timestamp("2026-11-23 06:55:02Z"));
        assert!(!is_utc_timestamp("2026-11-23T06:55:02.Z"));
        assert!(!is_utc_timestamp(""));
    }
}
