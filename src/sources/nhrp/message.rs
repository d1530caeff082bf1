//! nhrpd's event messages, pure: the parser, the framer that cuts a byte
//! stream into messages, and the reply. No I/O, never panics.

use std::fmt;
use std::net::IpAddr;

/// Longest line (key, `=`, value) accepted. nhrpd's own lines are short
/// except the certificates; a DER certificate of [`MAX_CERT_BYTES`] is
/// twice that in hex.
pub const MAX_LINE: usize = 2 * MAX_CERT_BYTES + 64;
/// At most this many lines in one message (nhrpd sends 13).
pub const MAX_LINES: usize = 64;
/// At most this many bytes in one message, terminator included.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Largest certificate kept, in bytes (after hex decoding).
pub const MAX_CERT_BYTES: usize = 16 * 1024;

/// Why a message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NhrpError {
    #[error("line {line}: no '=' in {text:?}")]
    NoEquals { line: usize, text: String },
    #[error("line {line}: key {key:?} appears twice")]
    DuplicateKey { line: usize, key: String },
    #[error("line {line}: {len} bytes, more than {max}")]
    LineTooLong { line: usize, len: usize, max: usize },
    #[error("more than {max} lines")]
    TooManyLines { max: usize },
    #[error("message of {len} bytes, more than {max}")]
    TooLarge { len: usize, max: usize },
    #[error("line {line}: not UTF-8")]
    NotUtf8 { line: usize },
    #[error("line {line}: empty key")]
    EmptyKey { line: usize },
    #[error("eventid {value:?} is not a number from 1 to 4294967295")]
    BadEventId { value: String },
    #[error("{key}: {value:?} is not an IP address")]
    BadAddress { key: &'static str, value: String },
    #[error("{key}: {reason}")]
    BadCert { key: &'static str, reason: String },
    #[error("{key} missing")]
    Missing { key: &'static str },
}

/// One message: its lines as key/value pairs, in order, keys unique.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub fields: Vec<(String, String)>,
}

impl Message {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `eventid=N`: present when nhrpd waits for an answer. nhrpd never
    /// sends 0 (its reply parser treats 0 as "none").
    pub fn event_id(&self) -> Result<Option<u32>, NhrpError> {
        match self.get("eventid") {
            None => Ok(None),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n > 0 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
                _ => Err(NhrpError::BadEventId { value: v.into() }),
            },
        }
    }
}

/// Parses one message: the bytes up to, not including, the empty line
/// (`"eventid=1\nevent=authorize-binding\n...\nremote_cert=\n"`; the
/// final `\n` is optional). Each line is `key=value`, split at the first
/// `=`; a value may be empty (`local_cert=`). Duplicate keys are an error;
/// unknown keys are kept.
pub fn parse_message(bytes: &[u8]) -> Result<Message, NhrpError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(NhrpError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE,
        });
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut msg = Message::default();
    if body.is_empty() {
        return Ok(msg);
    }
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        if line > MAX_LINES {
            return Err(NhrpError::TooManyLines { max: MAX_LINES });
        }
        if raw.len() > MAX_LINE {
            return Err(NhrpError::LineTooLong {
                line,
                len: raw.len(),
                max: MAX_LINE,
            });
        }
        let text = std::str::from_utf8(raw).map_err(|_| NhrpError::NotUtf8 { line })?;
        let Some((k, v)) = text.split_once('=') else {
            return Err(NhrpError::NoEquals {
                line,
                text: text.chars().take(64).collect(),
            });
        };
        if k.is_empty() {
            return Err(NhrpError::EmptyKey { line });
        }
        if msg.fields.iter().any(|(x, _)| x == k) {
            return Err(NhrpError::DuplicateKey {
                line,
                key: k.chars().take(64).collect(),
            });
        }
        msg.fields.push((k.to_string(), v.to_string()));
    }
    Ok(msg)
}

/// The fields of an `event=authorize-binding` request that a decision needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Binding {
    pub event_id: u32,
    /// `type=dynamic`, … (nhrpd's cache type names).
    pub kind: String,
    pub interface: String,
    pub local_addr: Option<IpAddr>,
    /// The spoke's protocol (GRE) address.
    pub remote_addr: IpAddr,
    /// The spoke's public (NBMA) address.
    pub remote_nbma: Option<IpAddr>,
    pub local_nbma: Option<IpAddr>,
    /// `vc_initiated=yes`: this side asked for the (IPsec) connection.
    pub vc_initiated: Option<bool>,
    /// DER bytes, empty without IPsec.
    pub local_cert: Vec<u8>,
    pub remote_cert: Vec<u8>,
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("event_id", &self.event_id)
            .field("kind", &self.kind)
            .field("interface", &self.interface)
            .field("remote_addr", &self.remote_addr)
            .field("remote_nbma", &self.remote_nbma)
            .field("local_cert_len", &self.local_cert.len())
            .field("remote_cert_len", &self.remote_cert.len())
            .finish_non_exhaustive()
    }
}

/// The event name nhrpd sends for a binding that needs our answer.
pub const AUTHORIZE_BINDING: &str = "authorize-binding";

fn addr(msg: &Message, key: &'static str) -> Result<Option<IpAddr>, NhrpError> {
    match msg.get(key) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| NhrpError::BadAddress {
            key,
            value: v.chars().take(64).collect(),
        }),
    }
}

/// Decodes `local_cert=` / `remote_cert=` (lower-case hex from nhrpd's
/// `evmgr_hexdump`; upper case accepted too) into at most
/// [`MAX_CERT_BYTES`] bytes.
pub fn decode_hex(key: &'static str, s: &str) -> Result<Vec<u8>, NhrpError> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return Err(NhrpError::BadCert {
            key,
            reason: format!("odd number of hex digits ({})", b.len()),
        });
    }
    if b.len() / 2 > MAX_CERT_BYTES {
        return Err(NhrpError::BadCert {
            key,
            reason: format!("{} bytes, more than {MAX_CERT_BYTES}", b.len() / 2),
        });
    }
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    b.chunks_exact(2)
        .enumerate()
        .map(|(i, p)| match (nib(p[0]), nib(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(NhrpError::BadCert {
                key,
                reason: format!("not hex at offset {}", 2 * i),
            }),
        })
        .collect()
}

/// Reads an `event=authorize-binding` message into a [`Binding`].
/// `remote_addr` is required (nhrpd sends it, with the NBMA addresses and
/// certificates, whenever the binding has a peer, which dynamic bindings
/// always have).
pub fn parse_binding(msg: &Message) -> Result<Binding, NhrpError> {
    let event_id = msg
        .event_id()?
        .ok_or(NhrpError::Missing { key: "eventid" })?;
    let remote_addr = addr(msg, "remote_addr")?.ok_or(NhrpError::Missing { key: "remote_addr" })?;
    Ok(Binding {
        event_id,
        kind: msg.get("type").unwrap_or("").to_string(),
        interface: msg.get("interface").unwrap_or("").to_string(),
        local_addr: addr(msg, "local_addr")?,
        remote_addr,
        remote_nbma: addr(msg, "remote_nbma")?,
        local_nbma: addr(msg, "local_nbma")?,
        vc_initiated: msg.get("vc_initiated").map(|v| v == "yes"),
        local_cert: decode_hex("local_cert", msg.get("local_cert").unwrap_or(""))?,
        remote_cert: decode_hex("remote_cert", msg.get("remote_cert").unwrap_or(""))?,
    })
}

/// The reply nhrpd understands: `eventid=N\nresult=accept\n\n`.
pub fn reply(event_id: u32, accept: bool) -> String {
    format!(
        "eventid={event_id}\nresult={}\n\n",
        if accept { "accept" } else { "reject" }
    )
}

/// Splits a byte stream into messages ended by `\n\n`, bounded by
/// [`MAX_MESSAGE`]. A message that grows past the cap is skipped up to its
/// terminator and reported as [`Frame::Oversized`] with the `eventid` seen
/// in its first bytes (so it can still be rejected).
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Skipping an oversized message: its eventid, if seen.
    skipping: Option<Option<u32>>,
    /// The last byte of the skipped part was `\n`.
    skip_nl: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete message, terminator removed (the last line's `\n` kept).
    Message(Vec<u8>),
    /// A message over the size cap; its eventid when the first line had one.
    Oversized(Option<u32>),
}

/// `eventid=N` as the first line of a partial message.
pub(super) fn leading_event_id(b: &[u8]) -> Option<u32> {
    let rest = b.strip_prefix(b"eventid=")?;
    let end = rest.iter().position(|&c| c == b'\n')?;
    let digits = rest.get(..end)?;
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .filter(|&n| n > 0)
}

impl Framer {
    /// Feeds bytes; returns the frames completed by them.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        while !data.is_empty() {
            if let Some(id) = self.skipping {
                // Look for "\n\n", possibly split across reads.
                let mut end = None;
                let mut prev_nl = self.skip_nl;
                for (i, &c) in data.iter().enumerate() {
                    if c == b'\n' && prev_nl {
                        end = Some(i + 1);
                        break;
                    }
                    prev_nl = c == b'\n';
                }
                match end {
                    Some(e) => {
                        out.push(Frame::Oversized(id));
                        self.skipping = None;
                        self.skip_nl = false;
                        data = data.get(e..).unwrap_or_default();
                    }
                    None => {
                        self.skip_nl = prev_nl;
                        data = &[];
                    }
                }
                continue;
            }
            // Search for the terminator starting one byte back (a split "\n|\n").
            let start = self.buf.len().saturating_sub(1);
            self.buf.extend_from_slice(data);
            data = &[];
            let mut from = start;
            while let Some(rel) = self
                .buf
                .get(from..)
                .and_then(|s| s.windows(2).position(|w| w == b"\n\n"))
            {
                let end = from + rel;
                let msg: Vec<u8> = self.buf.get(..=end).unwrap_or_default().to_vec();
                self.buf.drain(..end + 2);
                // Stray blank lines between messages are not messages.
                let skip = msg.iter().take_while(|&&c| c == b'\n').count();
                let msg = msg.get(skip..).unwrap_or_default();
                if msg.len() > MAX_MESSAGE {
                    out.push(Frame::Oversized(leading_event_id(msg)));
                } else if !msg.is_empty() {
                    out.push(Frame::Message(msg.to_vec()));
                }
                from = 0;
            }
            // A stray blank line before the next message is no part of it:
            // drop it now, so the cap and the eventid below see the same
            // bytes whatever the read boundaries (found by fuzz target nhrp).
            let lead = self.buf.iter().take_while(|&&c| c == b'\n').count();
            self.buf.drain(..lead);
            if self.buf.len() > MAX_MESSAGE {
                let id = leading_event_id(&self.buf);
                self.skip_nl = self.buf.last() == Some(&b'\n');
                self.buf.clear();
                self.skipping = Some(id);
            }
        }
        out
    }

    /// Bytes held of an unfinished message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}
