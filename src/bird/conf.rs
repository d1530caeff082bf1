//! Scanner of BIRD's configuration: bird.conf and everything it includes.
//!
//! It finds what autopeer must know about the operator's own config: BGP
//! templates (and whether they carry a password and a peer AS), static BGP
//! neighbors, native dynamic `neighbor range`s, `log "file"` targets,
//! protocol names, and whether bird.conf includes autopeer's own file.
//!
//! It is not a BIRD parser. A lexer ([`lex`]: words, strings, `{ } ; %`
//! and other punctuation, with `#` and `/* */` comments) feeds a block
//! tracker. `include` is handled the way BIRD's lexer does it
//! (docs/facts.md § BIRD config-language facts): only at the start of a line, relative to
//! the including file's directory, globs in alphabetical order with
//! directories skipped, an empty glob in an existing directory is fine,
//! depth at most 8. Strings have no escapes (same section).
//!
//! The lexer and the block tracker are pure; only [`scan`] reads files,
//! each through [`readsafe`] (regular files of at most
//! [`readsafe::MAX_CONFIG`] bytes).
//! Passwords found here are kept in [`Secret`]s and never put in errors.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::readsafe::{self, Links};
use crate::secret::Secret;

/// BIRD's `MAX_INCLUDE_DEPTH`: the main file is depth 1.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// A `template bgp NAME [from X] { ... }`, with what it inherits from `X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    /// `password "...";` of the template or of what it inherits from.
    pub password: Option<Secret<String>>,
    pub file: PathBuf,
    pub line: usize,
    /// The template supplies `neighbor as N`, `internal` or `external`.
    pub has_neighbor_as: bool,
    /// `local [ADDR] as N;` of the template or of what it inherits from:
    /// BIRD 1.6 has no `neighbor ADDR internal;`, so an iBGP peer's line
    /// is written there as `neighbor ADDR as N;` with this N.
    pub local_as: Option<u32>,
    /// `direct;` in the template or what it inherits from (BIRD 1.6 runs
    /// iBGP multihop without it, and multihop cannot reach link-local).
    pub direct: bool,
}

/// A `protocol bgp NAME { neighbor ADDR ...; }` outside autopeer's own file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticNeighbor {
    pub addr: IpAddr,
    /// `neighbor ADDR%IFACE` or `interface "IFACE";`.
    pub iface: Option<String>,
    pub protocol: String,
    /// It has a password, its own or inherited with `from`.
    pub password: bool,
    /// That password.
    pub key: Option<Secret<String>>,
    pub file: PathBuf,
    pub line: usize,
}

/// A `neighbor range PREFIX` of a native dynamic BGP protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeRange {
    pub range: IpNet,
    pub protocol: String,
    pub file: PathBuf,
    pub line: usize,
}

/// What [`scan`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BirdConf {
    /// Every file read, main first, in reading order.
    pub files: Vec<PathBuf>,
    pub templates: BTreeMap<String, Template>,
    pub neighbors: Vec<StaticNeighbor>,
    pub ranges: Vec<NativeRange>,
    /// bird.conf includes the owned file (by name, or by a glob matching it).
    pub includes_owned: bool,
    /// The owned file is included but does not exist yet (BIRD would fail).
    pub owned_include_missing: bool,
    /// `log "PATH" ...;` targets.
    pub log_files: Vec<PathBuf>,
    /// `log fixed "PATH" SIZE ...;` targets (BIRD 3): a fixed-size ring
    /// buffer rewritten in place, which no reader can follow.
    pub fixed_log_files: Vec<PathBuf>,
    /// bird.conf has a `log syslog ...;` target (on systemd machines
    /// without a syslog daemon these lines reach only the journal).
    pub logs_to_syslog: bool,
    /// Names of all protocols outside the owned file (any protocol type).
    pub protocol_names: BTreeSet<String>,
}

impl BirdConf {
    /// The static neighbor with this address (and interface, for link-local).
    pub fn static_neighbor(&self, addr: IpAddr, iface: Option<&str>) -> Option<&StaticNeighbor> {
        self.neighbors.iter().find(|n| {
            n.addr == addr && (iface.is_none() || n.iface.is_none() || n.iface.as_deref() == iface)
        })
    }

    /// The native dynamic range that holds this address.
    pub fn native_range(&self, addr: IpAddr) -> Option<&NativeRange> {
        self.ranges.iter().find(|r| r.range.contains(&addr))
    }
}

/// Why bird.conf could not be scanned. Never contains a string's contents.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: unable to open included file {path}: {source}")]
    MissingInclude {
        file: PathBuf,
        line: usize,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: unable to match pattern {pattern}: no such directory")]
    GlobDir {
        file: PathBuf,
        line: usize,
        pattern: String,
    },
    #[error("{file}:{line}: {what}")]
    Syntax {
        file: PathBuf,
        line: usize,
        what: &'static str,
    },
    #[error("{file}:{line}: include depth exceeds {MAX_INCLUDE_DEPTH}")]
    TooDeep { file: PathBuf, line: usize },
    #[error("{file}:{line}: include cycle: {path} is already being read")]
    Cycle {
        file: PathBuf,
        line: usize,
        path: PathBuf,
    },
    #[error("{file}:{line}: include is not allowed in a single text")]
    IncludeNotAllowed { file: PathBuf, line: usize },
}

// ---------------------------------------------------------------- lexer

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// `[A-Za-z0-9_.:]+` (symbols, keywords, numbers, addresses) or a
    /// quoted symbol `'spoke-10.0.0.1'` without its apostrophes.
    Word(String),
    /// `"..."` without the quotes; no escapes.
    Str(String),
    /// Any other single character: `{ } ; % / , = ( )` ...
    Punct(char),
    /// `include "PATH";` at the start of a line.
    Include(String),
}

/// A token and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexeme {
    pub tok: Tok,
    pub line: usize,
}

/// A lexer error: what and where (1-based line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexError {
    pub line: usize,
    pub what: &'static str,
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':')
}

/// Splits BIRD config text into tokens, e.g.
/// `protocol bgp peer_b from peers { neighbor fe80::1%vlab0 as 65002; }`
/// and `include "conf.d/*.conf";` (only when `include` starts its line).
pub fn lex(text: &str) -> Result<Vec<Lexeme>, LexError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut line_start = true;
    while let Some(&c) = chars.get(i) {
        match c {
            '\n' => {
                line += 1;
                line_start = true;
                i += 1;
            }
            ' ' | '\t' | '\r' => i += 1,
            '#' => {
                while chars.get(i).is_some_and(|&c| c != '\n') {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let start = line;
                i += 2;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(LexError {
                                line: start,
                                what: "unterminated comment",
                            })
                        }
                        Some('*') if chars.get(i + 1) == Some(&'/') => {
                            i += 2;
                            break;
                        }
                        Some('\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
                line_start = false;
            }
            '"' => {
                let (s, next) = string_at(&chars, i, line)?;
                out.push(Lexeme {
                    tok: Tok::Str(s),
                    line,
                });
                i = next;
                line_start = false;
            }
            '\'' => {
                let mut j = i + 1;
                while chars.get(j).is_some_and(|&c| {
                    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
                }) {
                    j += 1;
                }
                if chars.get(j) == Some(&'\'') {
                    let word: String = chars.get(i + 1..j).unwrap_or_default().iter().collect();
                    out.push(Lexeme {
                        tok: Tok::Word(word),
                        line,
                    });
                    i = j + 1;
                } else {
                    out.push(Lexeme {
                        tok: Tok::Punct('\''),
                        line,
                    });
                    i += 1;
                }
                line_start = false;
            }
            c if is_word(c) => {
                let mut j = i;
                while chars.get(j).is_some_and(|&c| is_word(c)) {
                    j += 1;
                }
                let word: String = chars.get(i..j).unwrap_or_default().iter().collect();
                if line_start && word == "include" {
                    if let Some((path, next)) = include_at(&chars, j, line)? {
                        out.push(Lexeme {
                            tok: Tok::Include(path),
                            line,
                        });
                        i = next;
                        line_start = false;
                        continue;
                    }
                }
                out.push(Lexeme {
                    tok: Tok::Word(word),
                    line,
                });
                i = j;
                line_start = false;
            }
            c => {
                out.push(Lexeme {
                    tok: Tok::Punct(c),
                    line,
                });
                i += 1;
                line_start = false;
            }
        }
    }
    Ok(out)
}

/// `"..."` starting at `chars[i]`; returns the contents and the index after.
fn string_at(chars: &[char], i: usize, line: usize) -> Result<(String, usize), LexError> {
    let mut j = i + 1;
    loop {
        match chars.get(j) {
            None | Some('\n') => {
                return Err(LexError {
                    line,
                    what: "unterminated string",
                })
            }
            Some('"') => break,
            Some(_) => j += 1,
        }
    }
    let s: String = chars.get(i + 1..j).unwrap_or_default().iter().collect();
    Ok((s, j + 1))
}

/// After a line-initial `include` at `chars[j]`: `{WHITE}*"PATH"{WHITE}*;`
/// on the same line. `None` when no `"` follows (then it is a plain word).
fn include_at(
    chars: &[char],
    mut j: usize,
    line: usize,
) -> Result<Option<(String, usize)>, LexError> {
    while chars.get(j).is_some_and(|&c| c == ' ' || c == '\t') {
        j += 1;
    }
    if chars.get(j) != Some(&'"') {
        return Ok(None);
    }
    let (path, mut k) = string_at(chars, j, line)?;
    while chars
        .get(k)
        .is_some_and(|&c| c == ' ' || c == '\t' || c == '\r')
    {
        k += 1;
    }
    if chars.get(k) != Some(&';') {
        return Err(LexError {
            line,
            what: "unterminated include",
        });
    }
    Ok(Some((path, k + 1)))
}

// ---------------------------------------------------------------- block tracker

/// A token with the index (into `BirdConf::files`) of the file it came from.
#[derive(Debug, Clone)]
struct Item {
    tok: Tok,
    file: usize,
    line: usize,
}

#[derive(Debug, Clone, Default)]
struct Block {
    is_template: bool,
    name: String,
    from: Option<String>,
    password: Option<Secret<String>>,
    addr: Option<IpAddr>,
    iface: Option<String>,
    has_as: bool,
    local_as: Option<u32>,
    direct: bool,
    range: Option<IpNet>,
    file: usize,
    line: usize,
    owned: bool,
}

fn word(items: &[Item], i: usize) -> Option<&str> {
    match items.get(i).map(|it| &it.tok) {
        Some(Tok::Word(w)) => Some(w.as_str()),
        _ => None,
    }
}

fn punct(items: &[Item], i: usize, c: char) -> bool {
    matches!(items.get(i).map(|it| &it.tok), Some(Tok::Punct(p)) if *p == c)
}

/// Index after the `}` that closes the `{` at `open`, or an error.
fn block_end(items: &[Item], open: usize, files: &[PathBuf]) -> Result<usize, ConfError> {
    let mut depth = 0usize;
    let mut i = open;
    while let Some(it) = items.get(i) {
        match it.tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    let (file, line) = items
        .get(open)
        .map_or((PathBuf::new(), 0), |it| (file_of(files, it.file), it.line));
    Err(ConfError::Syntax {
        file,
        line,
        what: "unclosed `{`",
    })
}

fn file_of(files: &[PathBuf], i: usize) -> PathBuf {
    files.get(i).cloned().unwrap_or_default()
}

/// Reads the body of a bgp block (`items[open]` is its `{`).
fn bgp_body(items: &[Item], open: usize, end: usize, b: &mut Block) {
    let mut depth = 0usize;
    let mut i = open;
    while i < end {
        match items.get(i).map(|it| &it.tok) {
            Some(Tok::Punct('{')) => depth += 1,
            Some(Tok::Punct('}')) => depth = depth.saturating_sub(1),
            Some(Tok::Word(w)) if depth == 1 => match w.as_str() {
                "password" => {
                    if let Some(Tok::Str(s)) = items.get(i + 1).map(|it| &it.tok) {
                        b.password = Some(Secret::new(s.clone()));
                        i += 1;
                    }
                }
                "interface" => {
                    if let Some(Tok::Str(s)) = items.get(i + 1).map(|it| &it.tok) {
                        b.iface = Some(s.clone());
                        i += 1;
                    }
                }
                "neighbor" => {
                    i = neighbor_stmt(items, i + 1, end, b);
                    continue;
                }
                "direct" if punct(items, i + 1, ';') => b.direct = true,
                "local" => {
                    // `local [ADDR] [port N] as N;`
                    let mut j = i + 1;
                    while j < end && !punct(items, j, ';') && !punct(items, j, '}') {
                        if word(items, j) == Some("as") {
                            if let Some(n) = word(items, j + 1).and_then(|w| w.parse().ok()) {
                                b.local_as = Some(n);
                            }
                        }
                        j += 1;
                    }
                }
                _ => {}
            },
            _ => {}
        }
        i += 1;
    }
}

/// `neighbor [range P | ADDR[%IFACE]] [port N] [as N | internal | external];`
/// from `items[i]`; returns the index after the `;`.
fn neighbor_stmt(items: &[Item], mut i: usize, end: usize, b: &mut Block) -> usize {
    while i < end && !punct(items, i, ';') && !punct(items, i, '}') {
        match word(items, i) {
            Some("range") => {
                if let (Some(a), true, Some(l)) = (
                    word(items, i + 1),
                    punct(items, i + 2, '/'),
                    word(items, i + 3),
                ) {
                    if let Ok(net) = format!("{a}/{l}").parse::<IpNet>() {
                        b.range = Some(net);
                    }
                    i += 3;
                }
            }
            Some("as" | "internal" | "external") => b.has_as = true,
            Some("port") => i += 1,
            Some(w) => {
                if let Ok(a) = w.parse::<IpAddr>() {
                    b.addr = Some(a);
                    if punct(items, i + 1, '%') {
                        if let Some(ifname) = word(items, i + 2) {
                            b.iface = Some(ifname.to_string());
                        }
                        i += 2;
                    }
                }
            }
            None => {}
        }
        i += 1;
    }
    i + 1
}

/// Walks the spliced token stream of all files.
fn analyze(items: &[Item], files: &[PathBuf], owned: &[bool]) -> Result<BirdConf, ConfError> {
    let mut conf = BirdConf {
        files: files.to_vec(),
        ..BirdConf::default()
    };
    let mut blocks: Vec<Block> = Vec::new();
    // BIRD names an unnamed protocol after its type: `device1`, `bgp2`.
    let mut unnamed: BTreeMap<String, usize> = BTreeMap::new();
    let mut i = 0;
    while let Some(it) = items.get(i) {
        let is_owned = owned.get(it.file).copied().unwrap_or(false);
        match &it.tok {
            Tok::Word(w) if w == "template" || w == "protocol" => {
                let is_template = w == "template";
                let kind = word(items, i + 1).unwrap_or("");
                let mut j = i + 2;
                let mut name = None;
                if let Some(n) = word(items, j) {
                    if n != "from" {
                        name = Some(n.to_string());
                        j += 1;
                    }
                }
                let mut from = None;
                if word(items, j) == Some("from") {
                    from = word(items, j + 1).map(str::to_string);
                    j += 2;
                }
                if !punct(items, j, '{') {
                    i += 1;
                    continue;
                }
                let end = block_end(items, j, files)?;
                let name = name.unwrap_or_else(|| {
                    let n = unnamed.entry(kind.to_string()).or_insert(0);
                    *n += 1;
                    format!("{kind}{n}")
                });
                if !is_template && !is_owned {
                    conf.protocol_names.insert(name.clone());
                }
                if kind == "bgp" {
                    let mut b = Block {
                        is_template,
                        name,
                        from,
                        file: it.file,
                        line: it.line,
                        owned: is_owned,
                        ..Block::default()
                    };
                    bgp_body(items, j, end, &mut b);
                    blocks.push(b);
                }
                i = end;
            }
            Tok::Word(w) if w == "log" => {
                match (
                    items.get(i + 1).map(|it| &it.tok),
                    items.get(i + 2).map(|it| &it.tok),
                ) {
                    (Some(Tok::Str(p)), _) => conf.log_files.push(PathBuf::from(p)),
                    (Some(Tok::Word(f)), Some(Tok::Str(p))) if f == "fixed" => {
                        conf.fixed_log_files.push(PathBuf::from(p))
                    }
                    (Some(Tok::Word(w)), _) if w == "syslog" => conf.logs_to_syslog = true,
                    _ => {}
                }
                i += 1;
            }
            Tok::Punct('{') => i = block_end(items, i, files)?,
            Tok::Punct('}') => {
                return Err(ConfError::Syntax {
                    file: file_of(files, it.file),
                    line: it.line,
                    what: "unmatched `}`",
                })
            }
            _ => i += 1,
        }
    }

    for (k, b) in blocks.iter().enumerate() {
        let eff = effective(&blocks, k);
        let file = file_of(files, b.file);
        if b.is_template {
            conf.templates.insert(
                b.name.clone(),
                Template {
                    name: b.name.clone(),
                    password: eff.password,
                    file,
                    line: b.line,
                    has_neighbor_as: eff.has_as,
                    local_as: eff.local_as,
                    direct: eff.direct,
                },
            );
        } else if !b.owned {
            if let Some(range) = eff.range {
                conf.ranges.push(NativeRange {
                    range,
                    protocol: b.name.clone(),
                    file,
                    line: b.line,
                });
            } else if let Some(addr) = eff.addr {
                conf.neighbors.push(StaticNeighbor {
                    addr,
                    iface: eff.iface,
                    protocol: b.name.clone(),
                    password: eff.password.is_some(),
                    key: eff.password,
                    file,
                    line: b.line,
                });
            }
        }
    }
    Ok(conf)
}

/// Block `k` merged with what it inherits through `from` (BIRD copies the
/// parent's config, later lines override). Follows at most 16 links.
fn effective(blocks: &[Block], k: usize) -> Block {
    let Some(me) = blocks.get(k) else {
        return Block::default();
    };
    let mut eff = me.clone();
    let mut from = me.from.clone();
    let mut upto = k;
    for _ in 0..16 {
        let Some(name) = from else { break };
        // The parent must be defined before the child (BIRD's rule).
        let Some(pi) = blocks
            .get(..upto)
            .and_then(|bs| bs.iter().rposition(|b| b.name == name))
        else {
            break;
        };
        let Some(parent) = blocks.get(pi) else { break };
        if eff.password.is_none() {
            eff.password = parent.password.clone();
        }
        if eff.addr.is_none() && eff.range.is_none() {
            eff.addr = parent.addr;
            eff.range = parent.range;
        }
        if eff.iface.is_none() {
            eff.iface = parent.iface.clone();
        }
        eff.has_as |= parent.has_as;
        if eff.local_as.is_none() {
            eff.local_as = parent.local_as;
        }
        eff.direct |= parent.direct;
        from = parent.from.clone();
        upto = pi;
    }
    eff
}

/// Scans one text with no includes (tests, and a pure entry point).
/// `file` is only used to name the file in results and errors.
pub fn scan_text(text: &str, file: &Path) -> Result<BirdConf, ConfError> {
    let lexemes = lex(text).map_err(|e| ConfError::Syntax {
        file: file.to_path_buf(),
        line: e.line,
        what: e.what,
    })?;
    let mut items = Vec::with_capacity(lexemes.len());
    for l in lexemes {
        if matches!(l.tok, Tok::Include(_)) {
            return Err(ConfError::IncludeNotAllowed {
                file: file.to_path_buf(),
                line: l.line,
            });
        }
        items.push(Item {
            tok: l.tok,
            file: 0,
            line: l.line,
        });
    }
    analyze(&items, &[file.to_path_buf()], &[false])
}

// ---------------------------------------------------------------- loader (I/O)

/// Canonical form of a path that may not exist yet (its directory must).
fn canon_loose(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            dir.canonicalize()
                .map(|d| d.join(name))
                .unwrap_or_else(|_| p.to_path_buf())
        }
        _ => p.to_path_buf(),
    }
}

struct Loader {
    owned: PathBuf,
    files: Vec<PathBuf>,
    owned_flags: Vec<bool>,
    items: Vec<Item>,
    stack: Vec<PathBuf>,
    includes_owned: bool,
    owned_missing: bool,
}

impl Loader {
    fn load(&mut self, path: &Path, depth: usize) -> Result<(), ConfError> {
        // Links are followed as BIRD follows them; a FIFO, device or
        // directory planted at an included path is refused, not read.
        let bytes =
            readsafe::read(path, Links::Follow, readsafe::MAX_CONFIG).map_err(|source| {
                ConfError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        let text = String::from_utf8_lossy(&bytes);
        let canon = canon_loose(path);
        let is_owned = canon == self.owned;
        if is_owned {
            self.includes_owned = true;
        }
        let idx = self.files.len();
        self.files.push(path.to_path_buf());
        self.owned_flags.push(is_owned);
        if is_owned {
            // autopeer's own include holds only the protocol blocks it
            // rendered (render::parse refuses anything else), and the
            // analysis skips owned protocols: lexing its 2 MB at 10,000
            // peers into tokens would cost some 20 MB for nothing.
            return Ok(());
        }
        self.stack.push(canon);
        let lexemes = lex(&text).map_err(|e| ConfError::Syntax {
            file: path.to_path_buf(),
            line: e.line,
            what: e.what,
        })?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        for l in lexemes {
            match l.tok {
                Tok::Include(inc) => self.include(path, l.line, dir, &inc, depth)?,
                tok => self.items.push(Item {
                    tok,
                    file: idx,
                    line: l.line,
                }),
            }
        }
        self.stack.pop();
        Ok(())
    }

    fn include(
        &mut self,
        from: &Path,
        line: usize,
        dir: &Path,
        inc: &str,
        depth: usize,
    ) -> Result<(), ConfError> {
        let target = if Path::new(inc).is_absolute() {
            PathBuf::from(inc)
        } else {
            dir.join(inc)
        };
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(ConfError::TooDeep {
                file: from.to_path_buf(),
                line,
            });
        }
        let target_str = target.to_string_lossy().into_owned();
        if target_str.contains(['*', '?', '[']) {
            let glob_dir = target_str
                .find(['*', '?', '['])
                .and_then(|g| target_str.get(..g))
                .and_then(|pre| pre.rfind('/').and_then(|s| pre.get(..=s)))
                .unwrap_or("./");
            let glob_err = || ConfError::GlobDir {
                file: from.to_path_buf(),
                line,
                pattern: target_str.clone(),
            };
            if !Path::new(glob_dir).is_dir() {
                return Err(glob_err());
            }
            let paths = glob::glob(&target_str).map_err(|_| glob_err())?;
            let mut matches: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            matches.sort();
            if let Ok(pattern) = glob::Pattern::new(&target_str) {
                if pattern.matches_path(&self.owned) && !self.owned.exists() {
                    self.includes_owned = true;
                    self.owned_missing = true;
                }
            }
            for m in matches.iter().filter(|m| !m.is_dir()) {
                self.enter(from, line, m, depth)?;
            }
            Ok(())
        } else {
            if !target.exists() && canon_loose(&target) == self.owned {
                self.includes_owned = true;
                self.owned_missing = true;
                return Ok(());
            }
            self.enter(from, line, &target, depth)
        }
    }

    fn enter(
        &mut self,
        from: &Path,
        line: usize,
        target: &Path,
        depth: usize,
    ) -> Result<(), ConfError> {
        let canon = canon_loose(target);
        if self.stack.contains(&canon) {
            return Err(ConfError::Cycle {
                file: from.to_path_buf(),
                line,
                path: target.to_path_buf(),
            });
        }
        match self.load(target, depth + 1) {
            Err(ConfError::Read { path, source }) => Err(ConfError::MissingInclude {
                file: from.to_path_buf(),
                line,
                path,
                source,
            }),
            other => other,
        }
    }
}

/// Reads `main` and every file it includes and scans them. Protocols in
/// `owned_include` (autopeer's own file, compared by canonical path) are not
/// counted as static neighbors, ranges or protocol names. A missing owned
/// include is not an error (see [`BirdConf::owned_include_missing`]).
pub fn scan(main: &Path, owned_include: &Path) -> Result<BirdConf, ConfError> {
    let mut loader = Loader {
        owned: canon_loose(owned_include),
        files: Vec::new(),
        owned_flags: Vec::new(),
        items: Vec::new(),
        stack: Vec::new(),
        includes_owned: false,
        owned_missing: false,
    };
    loader.load(main, 1)?;
    let mut conf = analyze(&loader.items, &loader.files, &loader.owned_flags)?;
    conf.includes_owned = loader.includes_owned;
    conf.owned_include_missing = loader.owned_missing;
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Tok> {
        lex(text).unwrap().into_iter().map(|l| l.tok).collect()
    }

    #[test]
    fn lexes_comments_strings_and_includes() {
        let t = words("a /* neighbor 1.2.3.4 { */ b # neighbor 5.6.7.8\n\"x { y\" ;");
        assert_eq!(
            t,
            vec![
                Tok::Word("a".into()),
                Tok::Word("b".into()),
                Tok::Str("x { y".into()),
                Tok::Punct(';'),
            ]
        );
        assert_eq!(
            words("  include \"conf.d/*.conf\";\n"),
            vec![Tok::Include("conf.d/*.conf".into())]
        );
        // Not at line start: a word, not an include.
        assert_eq!(
            words("x include \"a\";").first(),
            Some(&Tok::Word("x".into()))
        );
        assert_eq!(
            words("'spoke-10.0.0.1'"),
            vec![Tok::Word("spoke-10.0.0.1".into())]
        );
    }

    #[test]
    fn lex_errors_carry_lines() {
        assert_eq!(
            lex("a\n\"open\n").unwrap_err(),
            LexError {
                line: 2,
                what: "unterminated string"
            }
        );
        assert_eq!(lex("a\n/* x\n\n").unwrap_err().line, 2);
        assert_eq!(
            lex("include \"x\"\n;").unwrap_err().what,
            "unterminated include"
        );
    }

    #[test]
    fn sees_a_syslog_log_target() {
        // Debian's stock bird.conf, with a file target beside it.
        let text = "log syslog all;\nlog \"/var/log/bird/bird.log\" { info, warning, error };\n";
        let c = scan_text(text, Path::new("bird.conf")).unwrap();
        assert!(c.logs_to_syslog);
        assert_eq!(c.log_files, vec![PathBuf::from("/var/log/bird/bird.log")]);
        let c = scan_text("log syslog name \"bird\" { warning };", Path::new("b")).unwrap();
        assert!(c.logs_to_syslog && c.log_files.is_empty());
    }

    #[test]
    fn finds_templates_neighbors_and_inheritance() {
        let text = r#"
log "/var/log/bird.log" { info, warning, error };
template bgp peers { local as 65000; password "s3cret"; neighbor internal; ipv4 { import all; }; }
template bgp peers2 from peers { }
protocol bgp a from peers2 { neighbor 192.0.2.1 as 65001; }
protocol bgp b { neighbor fe80::1%vti3 port 1179 as 65002; }
protocol bgp dyn from peers { neighbor range 10.99.0.0/16 internal; dynamic name "dyn"; }
protocol device { }
"#;
        let c = scan_text(text, Path::new("bird.conf")).unwrap();
        assert_eq!(c.log_files, vec![PathBuf::from("/var/log/bird.log")]);
        assert!(c.fixed_log_files.is_empty());
        assert!(!c.logs_to_syslog, "no `log syslog` here");
        let p2 = c.templates.get("peers2").unwrap();
        assert!(p2.has_neighbor_as);
        assert_eq!(p2.local_as, Some(65000), "inherited from peers");
        assert_eq!(
            p2.password.as_ref().map(|s| s.expose().as_str()),
            Some("s3cret")
        );
        assert_eq!(c.neighbors.len(), 2);
        assert!(c.neighbors[0].password);
        assert_eq!(c.neighbors[1].iface.as_deref(), Some("vti3"));
        assert!(!c.neighbors[1].password);
        assert_eq!(c.ranges.len(), 1);
        assert_eq!(c.ranges[0].range, "10.99.0.0/16".parse::<IpNet>().unwrap());
        assert_eq!(c.ranges[0].line, 7);
        assert!(c.protocol_names.contains("device1"));
        assert!(c.protocol_names.contains("dyn"));
    }

    #[test]
    fn unbalanced_braces_are_errors() {
        assert!(matches!(
            scan_text("protocol bgp a {\n", Path::new("x")),
            Err(ConfError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            scan_text("\n}\n", Path::new("x")),
            Err(ConfError::Syntax { line: 2, .. })
        ));
    }

    #[test]
    fn errors_never_show_string_contents() {
        let e = scan_text("password \"hunter2\n", Path::new("x")).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }

    /// BIRD 3's ring-buffer log (accepted by `bird -p` on 3.1.8) is told
    /// apart from a plain log file.
    #[test]
    fn fixed_log_is_not_a_plain_log_file() {
        let text = "log fixed \"/var/log/bird.ring\" 65536 all;\nlog \"/var/log/bird.log\" all;\n";
        let c = scan_text(text, Path::new("bird.conf")).unwrap();
        assert_eq!(c.log_files, vec![PathBuf::from("/var/log/bird.log")]);
        assert_eq!(c.fixed_log_files, vec![PathBuf::from("/var/log/bird.ring")]);
    }
}
