//! The export format of `journalctl --output=export`, parsed by a pure,
//! bounded, incremental parser.

use super::cursor::cursor_ok;
use crate::sources::lines;

/// Longest value kept of any field; longer `MESSAGE`s are malformed.
/// journald itself caps a syslog datagram's message well below this.
pub const MAX_FIELD: usize = lines::MAX_LINE_LEN;

/// Longest field name accepted (journald allows 64).
const MAX_NAME: usize = 256;

/// The fields of one journal entry that matter here. Values are raw bytes
/// (the journal does not promise UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub cursor: Option<String>,
    pub message: Option<Vec<u8>>,
    /// `MESSAGE` was longer than [`MAX_FIELD`] (its value is dropped).
    pub message_too_long: bool,
    pub identifier: Option<Vec<u8>>,
    pub pid: Option<i32>,
    pub uid: Option<u32>,
    pub comm: Option<Vec<u8>>,
    pub exe: Option<Vec<u8>>,
    pub unit: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Cursor,
    Message,
    Identifier,
    Pid,
    Uid,
    Comm,
    Exe,
    Unit,
    Other,
}

fn field_of(name: &[u8]) -> Field {
    match name {
        b"__CURSOR" => Field::Cursor,
        b"MESSAGE" => Field::Message,
        b"SYSLOG_IDENTIFIER" => Field::Identifier,
        b"_PID" => Field::Pid,
        b"_UID" => Field::Uid,
        b"_COMM" => Field::Comm,
        b"_EXE" => Field::Exe,
        b"_SYSTEMD_UNIT" => Field::Unit,
        _ => Field::Other,
    }
}

#[derive(Debug)]
enum State {
    /// Reading a field name (or the empty line that ends an entry).
    Name,
    /// Reading a text value up to its newline.
    Text,
    /// Reading the 8-byte little-endian length of a binary value.
    Len { have: usize, bytes: [u8; 8] },
    /// Reading `left` more bytes of a binary value.
    Binary { left: u64 },
    /// The newline after a binary value.
    BinaryEnd,
}

/// Incremental parser of `journalctl --output=export`: feed it bytes in
/// chunks of any size, get complete entries. Memory is bounded by the
/// kept fields ([`MAX_FIELD`] each); everything else is skipped unread.
#[derive(Debug)]
pub struct ExportParser {
    state: State,
    name: Vec<u8>,
    name_too_long: bool,
    field: Field,
    value: Vec<u8>,
    value_too_long: bool,
    entry: Entry,
    /// The current entry has at least one field.
    started: bool,
    /// Bytes that broke the format (a field name without `=` or binary
    /// length is impossible to tell from a binary field; this counts the
    /// impossible cases: overlong names and a missing newline after a
    /// binary value).
    pub errors: u64,
}

impl Default for ExportParser {
    fn default() -> Self {
        ExportParser {
            state: State::Name,
            name: Vec::new(),
            name_too_long: false,
            field: Field::Other,
            value: Vec::new(),
            value_too_long: false,
            entry: Entry::default(),
            started: false,
            errors: 0,
        }
    }
}

impl ExportParser {
    /// Consume `bytes`, pushing every entry completed by them onto `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Entry>) {
        while let Some((&b, rest)) = bytes.split_first() {
            match &mut self.state {
                State::Name => match b {
                    b'\n' if self.name.is_empty() && !self.name_too_long => {
                        if self.started {
                            out.push(std::mem::take(&mut self.entry));
                            self.started = false;
                        }
                    }
                    b'\n' => {
                        self.begin_value();
                        self.state = State::Len {
                            have: 0,
                            bytes: [0; 8],
                        };
                    }
                    b'=' => {
                        self.begin_value();
                        self.state = State::Text;
                    }
                    _ if self.name.len() >= MAX_NAME => self.name_too_long = true,
                    _ => self.name.push(b),
                },
                State::Text => {
                    // Take the whole run up to the newline at once.
                    let end = bytes.iter().position(|&c| c == b'\n');
                    let run = &bytes[..end.unwrap_or(bytes.len())];
                    self.keep(run);
                    match end {
                        Some(i) => {
                            self.end_value();
                            bytes = &bytes[i + 1..];
                        }
                        None => bytes = &[],
                    }
                    continue;
                }
                State::Len { have, bytes: len } => {
                    len[*have] = b;
                    *have += 1;
                    if *have == 8 {
                        let left = u64::from_le_bytes(*len);
                        self.state = if left == 0 {
                            State::BinaryEnd
                        } else {
                            State::Binary { left }
                        };
                    }
                }
                State::Binary { left } => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    let (run, after) = bytes.split_at(n);
                    *left -= n as u64;
                    let done = *left == 0;
                    self.keep(run);
                    if done {
                        self.state = State::BinaryEnd;
                    }
                    bytes = after;
                    continue;
                }
                State::BinaryEnd => {
                    if b != b'\n' {
                        self.errors += 1;
                    }
                    self.end_value();
                    // A byte other than the newline is the next name's first.
                    if b != b'\n' {
                        continue;
                    }
                }
            }
            bytes = rest;
        }
    }

    fn begin_value(&mut self) {
        if self.name_too_long {
            self.errors += 1;
            self.field = Field::Other;
        } else {
            self.field = field_of(&self.name);
        }
        self.name.clear();
        self.name_too_long = false;
        self.value.clear();
        self.value_too_long = false;
        self.started = true;
    }

    fn keep(&mut self, run: &[u8]) {
        if self.field == Field::Other || self.value_too_long {
            return;
        }
        if self.value.len() + run.len() > MAX_FIELD {
            self.value_too_long = true;
            self.value = Vec::new();
        } else {
            self.value.extend_from_slice(run);
        }
    }

    fn end_value(&mut self) {
        self.state = State::Name;
        let value = std::mem::take(&mut self.value);
        let too_long = std::mem::take(&mut self.value_too_long);
        let e = &mut self.entry;
        let text = || std::str::from_utf8(&value).ok();
        match self.field {
            Field::Other => {}
            Field::Message if too_long => {
                e.message = None;
                e.message_too_long = true;
            }
            _ if too_long => {}
            Field::Cursor => e.cursor = text().filter(|c| cursor_ok(c)).map(str::to_owned),
            Field::Message => e.message = Some(value),
            Field::Identifier => e.identifier = Some(value),
            Field::Pid => e.pid = text().and_then(|t| t.parse().ok()),
            Field::Uid => e.uid = text().and_then(|t| t.parse().ok()),
            Field::Comm => e.comm = Some(value),
            Field::Exe => e.exe = Some(value),
            Field::Unit => e.unit = Some(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::sources::journal::cursor::tests::CURSOR;
    use crate::sources::journal::parse_entry;
    use crate::sources::lines::LineOutcome;

    fn text_entry(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (k, val) in fields {
            v.extend_from_slice(format!("{k}={val}\n").as_bytes());
        }
        v.push(b'\n');
        v
    }

    #[test]
    fn parses_text_and_binary_fields_across_any_split() {
        let mut stream = text_entry(&[
            ("__CURSOR", CURSOR),
            ("_PID", "812"),
            ("_UID", "102"),
            ("_EXE", "/usr/sbin/bird"),
            ("SYSLOG_IDENTIFIER", "bird"),
            (
                "MESSAGE",
                "BGP: Unexpected connect from unknown address 10.88.0.2 (port 47271)",
            ),
        ]);
        // A binary field: name, newline, 64-bit LE length, data, newline.
        stream.extend_from_slice(b"MESSAGE\n");
        stream.extend_from_slice(&7u64.to_le_bytes());
        stream.extend_from_slice(b"a\nb\x00c=d\n");
        stream.extend_from_slice(b"_PID=9\n\n");
        for split in 0..stream.len() {
            let mut p = ExportParser::default();
            let mut out = Vec::new();
            p.feed(&stream[..split], &mut out);
            p.feed(&stream[split..], &mut out);
            assert_eq!(out.len(), 2, "split at {split}");
            assert_eq!(out[0].cursor.as_deref(), Some(CURSOR));
            assert_eq!(out[0].pid, Some(812));
            assert_eq!(out[0].uid, Some(102));
            assert_eq!(out[0].exe.as_deref(), Some(&b"/usr/sbin/bird"[..]));
            assert_eq!(out[1].message.as_deref(), Some(&b"a\nb\x00c=d"[..]));
            assert_eq!(out[1].pid, Some(9));
            assert_eq!(p.errors, 0);
        }
    }

    proptest::proptest! {
        /// Any bytes, split anywhere: no panic, and the same entries as
        /// when fed at once (journalctl's pipe splits where it likes).
        #[test]
        fn any_split_gives_the_same_entries(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"=\n_MESSAGE_PID".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..400,
            ),
            split in 0usize..400,
        ) {
            let split = split.min(bytes.len());
            let mut whole = ExportParser::default();
            let mut a = Vec::new();
            whole.feed(&bytes, &mut a);
            let mut parts = ExportParser::default();
            let mut b = Vec::new();
            parts.feed(&bytes[..split], &mut b);
            parts.feed(&bytes[split..], &mut b);
            proptest::prop_assert_eq!(a, b);
            proptest::prop_assert_eq!(whole.errors, parts.errors);
        }
    }

    #[test]
    fn overlong_fields_are_dropped_not_buffered() {
        let mut stream = b"MESSAGE=".to_vec();
        stream.extend(std::iter::repeat_n(b'x', MAX_FIELD * 4));
        stream.extend_from_slice(b"\nOTHER\n");
        stream.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        let mut p = ExportParser::default();
        let mut out = Vec::new();
        p.feed(&stream, &mut out);
        // Gigabytes of a binary field we do not keep cost nothing.
        p.feed(&vec![0u8; 1 << 20], &mut out);
        assert!(out.is_empty());
        assert!(p.value.capacity() <= MAX_FIELD);
        assert_eq!(p.entry.message, None);
        assert!(p.entry.message_too_long);
        p.entry.identifier = Some(b"bird".to_vec());
        let outcome = parse_entry(&p.entry, SystemTime::now(), |_| None);
        assert_eq!(outcome, LineOutcome::Malformed(lines::Malformed::TooLong));
    }
}
