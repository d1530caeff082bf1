//! Sans-IO framer and parser for BIRD's control-socket replies.
//!
//! (Skeleton: types agreed between modules; the framer is being written.)

/// A 4-digit BIRD reply code, e.g. `0000`, `1002`, `8002`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u16);

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
