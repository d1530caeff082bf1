//! Sans-IO framer and parser for BIRD's control-socket replies.
//!
//! Bytes go in through [`Framer::push`]; whole [`Frame`]s come out of
//! [`Framer::next_frame`]. A [`ReplyAssembler`] groups reply lines into a
//! [`Reply`] that ends at the first final (`DDDD `) line and routes async
//! lines (`+text`, `<N messages lost>`) aside.
//!
//! Wire shapes (`nest/cli.c@v2.0.12` `cli_printf`, transcripts in
//! `fixtures/transcripts/`):
//!
//! ```text
//! 1011-Router ID is 10.0.0.1          code 1011, more lines follow
//!  Hostname is vm                     continuation: previous code, more follows
//! 0013 Daemon is up and running       final line of the reply
//! +Config timeout expired, starting undo   async message, not part of a reply
//! <3 messages lost>                   async ring overflow marker
//! ```
//!
//! This module must not do I/O, use tokio or log: it is pure, and nom runs
//! only on complete lines (the framer cuts them first). Bad input yields a
//! typed [`FrameError`] for that line and never panics; the framer then goes
//! on with the next line.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::{char as nom_char, digit1};
use nom::combinator::{all_consuming, map, map_res, rest};
use nom::sequence::{delimited, terminated};
use nom::{IResult, Parser};

/// Default cap on one line's length in bytes (BIRD's own lines are at most
/// 512 bytes, `CLI_LINE_SIZE`).
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// How many bytes of an offending line an error quotes.
const EXCERPT_LEN: usize = 80;

/// A 4-digit BIRD reply code, e.g. `0000`, `1002`, `8002`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u16);

impl Code {
    /// The code's class by its first digit (`doc/reply_codes`).
    pub fn class(self) -> Class {
        match self.0 / 1000 {
            0 => Class::Done,
            1 => Class::Row,
            2 => Class::Heading,
            8 => Class::RuntimeError,
            9 => Class::ParseError,
            _ => Class::Unknown,
        }
    }

    /// True for 8xxx and 9xxx.
    pub fn is_error(self) -> bool {
        matches!(self.class(), Class::RuntimeError | Class::ParseError)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

/// The class of a reply code (`doc/reply_codes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 0xxx: action completed.
    Done,
    /// 1xxx: table entry.
    Row,
    /// 2xxx: table heading.
    Heading,
    /// 8xxx: run-time error.
    RuntimeError,
    /// 9xxx: parse-time error.
    ParseError,
    /// 3xxx-7xxx: not documented; kept, not dropped.
    Unknown,
}

/// How a reply line was framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `DDDD-text`: more lines follow.
    More,
    /// ` text`: continuation, same code as the previous line, more follows.
    Continuation,
    /// `DDDD text`: the final line of the reply.
    Last,
}

/// One whole reply line; `text` is the payload after the code and separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine {
    pub code: Code,
    pub kind: LineKind,
    pub text: String,
}

/// A complete reply: every line up to and including the final one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    pub lines: Vec<ReplyLine>,
}

impl Reply {
    /// The final (`DDDD `) line, if the reply has one.
    pub fn final_line(&self) -> Option<&ReplyLine> {
        self.lines.last().filter(|l| l.kind == LineKind::Last)
    }

    /// The code of the final line (`0013` for `0013 Daemon is up and running`).
    pub fn final_code(&self) -> Option<Code> {
        self.final_line().map(|l| l.code)
    }

    /// The text of the final line, `""` when there is none.
    pub fn final_text(&self) -> &str {
        self.final_line().map(|l| l.text.as_str()).unwrap_or("")
    }

    /// True when the final code is 8xxx or 9xxx.
    pub fn is_error(&self) -> bool {
        self.final_code().is_some_and(Code::is_error)
    }

    /// Every line's text joined with `\n` (codes stripped, as birdc shows it).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&line.text);
        }
        out
    }

    /// The lines that carry `code`, in order.
    pub fn lines_with(&self, code: Code) -> impl Iterator<Item = &ReplyLine> {
        self.lines.iter().filter(move |l| l.code == code)
    }

    /// True when some line carries `code`.
    pub fn has_code(&self, code: Code) -> bool {
        self.lines.iter().any(|l| l.code == code)
    }
}

/// A line that is not part of any reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsyncLine {
    /// `+Config timeout expired, starting undo`: the text after `+`.
    Message(String),
    /// `<3 messages lost>`: BIRD's async ring overflowed.
    Lost(u64),
}

/// One whole line off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A line that belongs to a reply.
    Line(ReplyLine),
    /// An async line.
    Async(AsyncLine),
}

/// What was wrong with one line. `line` quotes the offending line, cut to
/// 80 bytes, lossy UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("reply line has no 4-digit code: {line:?}")]
    NoCode { line: String },
    #[error("reply line has a code of {digits} digits, want 4: {line:?}")]
    ShortCode { digits: usize, line: String },
    #[error("reply code is followed by {found:?}, want '-' or ' ': {line:?}")]
    BadSeparator { found: String, line: String },
    #[error("reply line is not valid UTF-8 (at byte {valid_up_to}): {line:?}")]
    InvalidUtf8 { valid_up_to: usize, line: String },
    #[error("reply line longer than {max} bytes: {line:?}...")]
    LineTooLong { max: usize, line: String },
    #[error("malformed lost-messages marker: {line:?}")]
    BadLostMarker { line: String },
    #[error("continuation line with no earlier code to continue: {line:?}")]
    ContinuationWithoutCode { line: String },
    #[error("stream ended inside a line ({len} bytes without a newline): {line:?}")]
    EofInLine { len: usize, line: String },
    #[error("stream ended inside a reply after {lines} lines (last: {last:?})")]
    EofInReply { lines: usize, last: String },
}

/// Quote at most [`EXCERPT_LEN`] bytes of `bytes`, lossy UTF-8.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let cut = bytes.get(..EXCERPT_LEN).unwrap_or(bytes);
    String::from_utf8_lossy(cut).into_owned()
}

/// Cuts a byte stream into [`Frame`]s. `Ok(None)` from [`Framer::next_frame`]
/// means "need more bytes", a normal state.
#[derive(Debug, Clone)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where the next line starts in `buf`: lines are cut by moving this
    /// offset, and the consumed bytes are dropped in one move per
    /// [`Framer::push`], not per line (a 2 MB `show protocols` reply is
    /// 10,000 lines).
    start: usize,
    /// Bytes of `buf` already scanned for LF (so a long line is scanned once).
    scanned: usize,
    max_line: usize,
    /// Dropping the rest of an oversized line, up to its LF.
    discarding: bool,
    /// The code of the last `DDDD-` line: BIRD's `last_reply`, what a
    /// continuation line continues.
    last_code: Option<Code>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// A framer with the default line cap ([`DEFAULT_MAX_LINE`]).
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }

    /// A framer whose lines (without LF) may be at most `max_line` bytes.
    pub fn with_max_line(max_line: usize) -> Self {
        Framer {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_line,
            discarding: false,
            last_code: None,
        }
    }

    /// The line cap in bytes.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Append bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a whole line.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Drops the lines already cut from the front of `buf`.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned = self.scanned.saturating_sub(self.start);
            self.start = 0;
        }
    }

    /// Forgets every byte held.
    fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    ///
    /// An error concerns one line only: that line is dropped (an oversized
    /// one up to its LF) and the next call goes on after it.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            let from = self.scanned.max(self.start);
            let found = self
                .buf
                .get(from..)
                .and_then(|tail| tail.iter().position(|&b| b == b'\n'))
                .map(|i| i + from);
            match found {
                None => {
                    self.scanned = self.buf.len();
                    if self.discarding {
                        self.clear();
                        return Ok(None);
                    }
                    if self.buffered() > self.max_line {
                        let line = excerpt(self.buf.get(self.start..).unwrap_or_default());
                        self.clear();
                        self.discarding = true;
                        return Err(FrameError::LineTooLong {
                            max: self.max_line,
                            line,
                        });
                    }
                    return Ok(None);
                }
                Some(lf) => {
                    let begin = self.start;
                    self.start = lf + 1;
                    self.scanned = self.start;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    let buf = std::mem::take(&mut self.buf);
                    let content = buf.get(begin..lf).unwrap_or_default();
                    let result = if content.len() > self.max_line {
                        Err(FrameError::LineTooLong {
                            max: self.max_line,
                            line: excerpt(content),
                        })
                    } else {
                        self.parse_line(content).map(Some)
                    };
                    self.buf = buf;
                    if self.start == self.buf.len() {
                        self.clear();
                    }
                    return result;
                }
            }
        }
    }

    /// Call at end of stream: an error if bytes of an unfinished line remain.
    /// (Whether a reply is still open is the [`ReplyAssembler`]'s business.)
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if self.buffered() == 0 || self.discarding {
            self.clear();
            self.discarding = false;
            return Ok(());
        }
        let len = self.buffered();
        let line = excerpt(self.buf.get(self.start..).unwrap_or_default());
        self.clear();
        Err(FrameError::EofInLine { len, line })
    }

    fn parse_line(&mut self, content: &[u8]) -> Result<Frame, FrameError> {
        let text = std::str::from_utf8(content).map_err(|e| FrameError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
            line: excerpt(content),
        })?;
        match parse_wire_line(text)? {
            Wire::Coded(code, kind, text) => {
                if kind == LineKind::More {
                    self.last_code = Some(code);
                }
                Ok(Frame::Line(ReplyLine {
                    code,
                    kind,
                    text: text.to_owned(),
                }))
            }
            Wire::Continuation(rest) => {
                // In a reply this is the previous line's code. With no reply
                // open it is BIRD 1.6's bug (fixed in 2.0.8, d033e6327): the
                // first line of a new reply whose code equals the last `DDDD-`
                // code sent; `last_code` holds exactly that.
                let code = self
                    .last_code
                    .ok_or_else(|| FrameError::ContinuationWithoutCode {
                        line: excerpt(content),
                    })?;
                Ok(Frame::Line(ReplyLine {
                    code,
                    kind: LineKind::Continuation,
                    text: rest.to_owned(),
                }))
            }
            Wire::Async(msg) => Ok(Frame::Async(AsyncLine::Message(msg.to_owned()))),
            Wire::Lost(n) => Ok(Frame::Async(AsyncLine::Lost(n))),
        }
    }
}

/// One line's shape, before the framer's state (the inherited code) applies.
enum Wire<'a> {
    Coded(Code, LineKind, &'a str),
    Continuation(&'a str),
    Async(&'a str),
    Lost(u64),
}

/// Classify one complete line (without its LF).
fn parse_wire_line(line: &str) -> Result<Wire<'_>, FrameError> {
    if let Some(rest) = line.strip_prefix(' ') {
        return Ok(Wire::Continuation(rest));
    }
    if let Some(rest) = line.strip_prefix('+') {
        return Ok(Wire::Async(rest));
    }
    if line.starts_with('<') {
        return lost_marker(line).map(|(_, n)| Wire::Lost(n)).map_err(|_| {
            FrameError::BadLostMarker {
                line: excerpt(line.as_bytes()),
            }
        });
    }
    match coded_line(line) {
        Ok((_, (code, kind, text))) => Ok(Wire::Coded(code, kind, text)),
        Err(_) => Err(diagnose_coded(line)),
    }
}

/// `<3 messages lost>` (`nest/cli.c@v2.0.12:172`).
fn lost_marker(line: &str) -> IResult<&str, u64> {
    all_consuming(delimited(
        tag("<"),
        map_res(digit1, str::parse::<u64>),
        tag(" messages lost>"),
    ))
    .parse(line)
}

/// `1011-Router ID is 10.0.0.1` or `0013 Daemon is up and running`.
fn coded_line(line: &str) -> IResult<&str, (Code, LineKind, &str)> {
    let code = map_res(
        take_while_m_n(4, 4, |c: char| c.is_ascii_digit()),
        |d: &str| d.parse::<u16>().map(Code),
    );
    let sep = alt((
        map(nom_char('-'), |_| LineKind::More),
        map(nom_char(' '), |_| LineKind::Last),
    ));
    terminated((code, sep, rest), nom::combinator::eof).parse(line)
}

/// Say why `line` is not a coded line.
fn diagnose_coded(line: &str) -> FrameError {
    let quoted = excerpt(line.as_bytes());
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        FrameError::NoCode { line: quoted }
    } else if digits < 4 {
        FrameError::ShortCode {
            digits,
            line: quoted,
        }
    } else {
        let found = line
            .get(4..)
            .and_then(|s| s.chars().next())
            .map(|c| c.to_string())
            .unwrap_or_else(|| "end of line".to_owned());
        FrameError::BadSeparator {
            found,
            line: quoted,
        }
    }
}

/// Groups [`Frame`]s into [`Reply`]s and keeps async lines aside.
#[derive(Debug, Clone, Default)]
pub struct ReplyAssembler {
    lines: Vec<ReplyLine>,
    asyncs: Vec<AsyncLine>,
}

impl ReplyAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one frame; returns the reply it completes, if any. Async frames
    /// are stored for [`ReplyAssembler::take_async`], never put in a reply.
    pub fn push(&mut self, frame: Frame) -> Option<Reply> {
        match frame {
            Frame::Async(a) => {
                self.asyncs.push(a);
                None
            }
            Frame::Line(line) => {
                let last = line.kind == LineKind::Last;
                self.lines.push(line);
                if last {
                    Some(Reply {
                        lines: std::mem::take(&mut self.lines),
                    })
                } else {
                    None
                }
            }
        }
    }

    /// True while a reply has started but its final line has not come.
    pub fn is_open(&self) -> bool {
        !self.lines.is_empty()
    }

    /// The async lines seen so far, oldest first; empties the store.
    pub fn take_async(&mut self) -> Vec<AsyncLine> {
        std::mem::take(&mut self.asyncs)
    }

    /// Call at end of stream: an error if a reply is still open.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.lines);
        let last = lines
            .last()
            .map(|l| excerpt(l.text.as_bytes()))
            .unwrap_or_default();
        Err(FrameError::EofInReply {
            lines: lines.len(),
            last,
        })
    }
}

/// Frame and assemble a whole byte string (a transcript, a test input):
/// every reply in order, the async lines, and the first error if any.
pub fn parse_all(bytes: &[u8]) -> Result<(Vec<Reply>, Vec<AsyncLine>), FrameError> {
    let mut framer = Framer::new();
    let mut asm = ReplyAssembler::new();
    let mut replies = Vec::new();
    framer.push(bytes);
    while let Some(frame) = framer.next_frame()? {
        if let Some(r) = asm.push(frame) {
            replies.push(r);
        }
    }
    framer.finish()?;
    asm.finish()?;
    Ok((replies, asm.take_async()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coded_line_shapes() {
        let mut f = Framer::new();
        f.push(b"1011-Router ID is 10.0.0.1\n Hostname is vm\n0013 up\n0000 \n");
        let want = [
            (1011, LineKind::More, "Router ID is 10.0.0.1"),
            (1011, LineKind::Continuation, "Hostname is vm"),
            (13, LineKind::Last, "up"),
            (0, LineKind::Last, ""),
        ];
        for (code, kind, text) in want {
            let got = f.next_frame().unwrap().unwrap();
            assert_eq!(
                got,
                Frame::Line(ReplyLine {
                    code: Code(code),
                    kind,
                    text: text.into()
                })
            );
        }
        assert_eq!(f.next_frame().unwrap(), None);
    }

    #[test]
    fn separator_errors_name_what_was_found() {
        assert!(matches!(
            parse_wire_line("0000x"),
            Err(FrameError::BadSeparator { found, .. }) if found == "x"
        ));
        assert!(matches!(
            parse_wire_line("0000"),
            Err(FrameError::BadSeparator { found, .. }) if found == "end of line"
        ));
        assert!(matches!(
            parse_wire_line("000 x"),
            Err(FrameError::ShortCode { digits: 3, .. })
        ));
    }
}
