//! Client of BIRD's control socket: one [`Connection`] over a UNIX stream,
//! one command at a time, typed results for the commands autopeer uses.
//!
//! The loop is read → [`Framer`] → [`ReplyAssembler`] → typed value. Every
//! call has a time-out; a dropped socket is an error, never a hang. Commands
//! are checked before they reach the socket: BIRD spins forever on a line of
//! 4095+ bytes and drops a client with 1 KiB of unread input (docs/facts.md fact 7),
//! so a command is at most [`MAX_COMMAND`] bytes with no CR, LF or NUL.
//!
//! The pure helpers that read replies into types (`parse_*`) live here too
//! and do no I/O. This module must not parse `show protocols` rows (that is
//! `bird::protocols`) and must not log secrets: commands never carry any.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::protocols::{parse_protocols, Protocol, ProtocolTable, ProtocolsError, TableBuilder};
use super::reply::{
    AsyncLine, Code, Frame, FrameError, Framer, LineKind, Reply, ReplyAssembler, ReplyLine,
};

/// Longest command line sent to BIRD, in bytes, without the LF.
pub const MAX_COMMAND: usize = 1000;

/// Bytes asked for per read of the socket.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes asked for per read of a streamed reply ([`Connection::protocol_table`]):
/// more than a UNIX socket holds (about 208 KiB by default), so one read
/// takes all BIRD has written.
const STREAM_CHUNK: usize = 256 * 1024;
/// Between two reads of a streamed reply that is not complete, this pause
/// lets BIRD fill the socket: a 2 MB reply (10,000 protocols) then takes
/// about ten reads and ten timer wake-ups, where waking at every byte that
/// arrives took a hundred or more when BIRD and this daemon shared a busy
/// CPU. The socket is out of the reactor meanwhile ([`Connection::pause`]).
/// It delays the poll, never a command that changes BIRD.
const STREAM_PAUSE: Duration = Duration::from_millis(5);

/// Longest BIRD symbol (protocol name).
pub const MAX_SYMBOL: usize = 64;

/// Everything that can go wrong talking to BIRD.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} failed during {command:?}: {source}")]
    Io {
        op: &'static str,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no complete reply to {command:?} within {after:?}")]
    Timeout { command: String, after: Duration },
    #[error("BIRD closed the socket before replying to {command:?}")]
    Closed { command: String },
    #[error("BIRD closed the socket in the middle of the reply to {command:?}: {source}")]
    EofMidReply {
        command: String,
        #[source]
        source: FrameError,
    },
    #[error("malformed reply to {command:?}: {source}")]
    Frame {
        command: String,
        #[source]
        source: FrameError,
    },
    #[error("unexpected greeting {line:?} (want `0001 NAME VERSION ready.`)")]
    Greeting { line: String },
    #[error("command is {len} bytes, more than the {max} BIRD can take safely")]
    CommandTooLong { len: usize, max: usize },
    #[error("command contains {what} at byte {at}; one line only")]
    BadCommandByte { what: &'static str, at: usize },
    #[error("invalid protocol name {name:?}: want a BIRD symbol [A-Za-z_][A-Za-z0-9_]* of at most 64 characters or 'quoted-name'")]
    BadName { name: String },
    #[error("invalid pattern or path {value:?}: a BIRD string cannot hold '\"' or a line break")]
    BadString { value: String },
    #[error("BIRD answered {command:?} with {code}: {text}")]
    Bird {
        command: String,
        code: Code,
        text: String,
    },
    #[error("BIRD rejected the configuration ({command:?}): {error}")]
    ConfigFile {
        command: String,
        error: ConfigFileError,
    },
    #[error("unexpected reply to {command:?}: {code} {text}")]
    Unexpected {
        command: String,
        code: Code,
        text: String,
    },
    #[error("cannot read BIRD's protocol table: {source}")]
    Protocols {
        #[source]
        source: ProtocolsError,
    },
    #[error("connection unusable after an earlier failure: {reason}")]
    Broken { reason: String },
}

impl ClientError {
    /// BIRD's own words when BIRD refused the command (8xxx/9xxx), e.g.
    /// `/etc/bird/extra.conf:3:1: syntax error, unexpected GARBAGE`;
    /// `None` for transport failures and for commands refused before sending.
    pub fn bird_text(&self) -> Option<String> {
        match self {
            ClientError::Bird { code, text, .. } => Some(format!("{code} {text}")),
            ClientError::ConfigFile { error, .. } => Some(error.to_string()),
            _ => None,
        }
    }

    /// The file BIRD blamed for a configuration error.
    pub fn config_file(&self) -> Option<&Path> {
        match self {
            ClientError::ConfigFile { error, .. } => Some(&error.file),
            _ => None,
        }
    }
}

/// The greeting's product and version: `0001 BIRD 2.0.12 ready.`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdVersion {
    /// `BIRD`, or another daemon speaking the same framing (`autopeer`).
    pub product: String,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The version word as sent, e.g. `2.0.12`.
    pub text: String,
}

impl BirdVersion {
    /// A BIRD release autopeer was checked against: 1.6, 2.0 to 2.17, 3.0
    /// to 3.1. Any other still works, in the language of its major version
    /// (2.x for all but 1), with a warning.
    pub fn is_known(&self) -> bool {
        self.product == "BIRD"
            && matches!((self.major, self.minor), (1, 6) | (2, 0..=17) | (3, 0..=1))
    }
}

/// Logs once per process that BIRD's version is not one autopeer knows.
pub fn warn_unknown_version(v: &BirdVersion) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    if v.product == "BIRD" && !v.is_known() && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            version = %v.text,
            "BIRD version not checked with autopeer (known: 1.6, 2.0-2.17, 3.0-3.1); continuing with the 2.x config language"
        );
    }
}

/// `show status`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `1000-BIRD 2.0.12`: `BIRD 2.0.12`.
    pub version: String,
    /// `1011-Router ID is 10.0.0.1`.
    pub router_id: Ipv4Addr,
    /// ` Hostname is vm` (2.x only).
    pub hostname: Option<String>,
    /// ` Current server time is 2026-11-23 08:04:03.197` (BIRD's timeformat).
    pub server_time: String,
    /// ` Last reboot on 2026-11-23 08:03:59.487`.
    pub last_reboot: String,
    /// ` Last reconfiguration on 2026-11-23 08:03:59.487`.
    pub last_reconfiguration: String,
    /// `0013 Daemon is up and running` (not shutting down or reconfiguring).
    pub up: bool,
    /// The text of the 0013 line.
    pub state: String,
}

/// The final outcome of a `configure*` command (by code, never by text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigureOutcome {
    /// 0003 Reconfigured.
    Reconfigured,
    /// 0004 Reconfiguration in progress (protocols are being stopped).
    InProgress,
    /// 0005 Reconfiguration already in progress, queueing new config.
    Queued,
    /// 0006 Reconfiguration ignored, shutting down.
    ShuttingDown,
    /// 0017 Reconfiguration already in progress, removing queued config.
    QueueRemoved,
    /// 0018 Reconfiguration confirmed.
    Confirmed,
    /// 0019 Nothing to do.
    NothingToDo,
    /// 0020 Configuration OK (`configure check`).
    ConfigOk,
}

impl ConfigureOutcome {
    /// The outcome a final code stands for.
    pub fn from_code(code: Code) -> Option<Self> {
        Some(match code.0 {
            3 => Self::Reconfigured,
            4 => Self::InProgress,
            5 => Self::Queued,
            6 => Self::ShuttingDown,
            17 => Self::QueueRemoved,
            18 => Self::Confirmed,
            19 => Self::NothingToDo,
            20 => Self::ConfigOk,
            _ => return None,
        })
    }
}

/// A `configure*` command that BIRD accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigureOk {
    pub outcome: ConfigureOutcome,
    /// `0002-Reading configuration from /srv/birdlab/a/bird.conf`.
    pub config_file: Option<PathBuf>,
    /// `0022-Undo scheduled in 30 s`: the seconds.
    pub undo_scheduled_secs: Option<u32>,
    /// `0021-Undo requested` was in the reply.
    pub undo_requested: bool,
    /// The text of the final line.
    pub text: String,
}

/// `8002 /srv/birdlab/a/peers/p2.conf:3:3 syntax error, unexpected PASSIVE`,
/// or `8002 /srv/birdlab/a/nonexistent.conf: No such file or directory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFileError {
    pub file: PathBuf,
    pub line: Option<u32>,
    pub col: Option<u32>,
    pub message: String,
}

impl std::fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(col) = self.col {
            write!(f, ":{col}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What `enable`/`disable`/`restart` did to one protocol (0008-0012).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// 0008 `X: already disabled`.
    AlreadyDisabled,
    /// 0009 `X: disabled`.
    Disabled,
    /// 0010 `X: already enabled`.
    AlreadyEnabled,
    /// 0011 `X: enabled`.
    Enabled,
    /// 0012 `X: restarted`.
    Restarted,
}

/// One protocol's line in the reply to `enable`/`disable`/`restart`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolChange {
    pub name: String,
    pub outcome: ChangeOutcome,
}

/// A connection to a BIRD control socket.
#[derive(Debug)]
pub struct Connection {
    /// `None` only while a streamed read pauses with the socket out of the
    /// reactor ([`Connection::pause`]), or after that failed.
    stream: Option<UnixStream>,
    framer: Framer,
    assembler: ReplyAssembler,
    timeout: Duration,
    version: BirdVersion,
    broken: Option<String>,
    /// Bytes read from the socket so far.
    read_total: u64,
}

impl Connection {
    /// Connect and read the greeting `0001 BIRD 2.0.12 ready.`, all within
    /// `timeout`, which stays the time-out of every later call.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Connection, ClientError> {
        let stream = match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    path: path.to_owned(),
                    source,
                })
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    command: "<connect>".into(),
                    after: timeout,
                })
            }
        };
        let mut conn = Connection {
            stream: Some(stream),
            framer: Framer::new(),
            assembler: ReplyAssembler::new(),
            timeout,
            version: BirdVersion {
                product: String::new(),
                major: 0,
                minor: 0,
                patch: 0,
                text: String::new(),
            },
            broken: None,
            read_total: 0,
        };
        let greeting = conn.guarded("<greeting>", None).await?;
        conn.version = parse_greeting(&greeting)?;
        Ok(conn)
    }

    /// The version from the greeting.
    pub fn version(&self) -> &BirdVersion {
        &self.version
    }

    /// Bytes read from BIRD on this connection so far (what a poll cost).
    pub fn bytes_read(&self) -> u64 {
        self.read_total
    }

    /// The time-out of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Change the time-out of later calls.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Async lines (`+text`, `<N messages lost>`) received so far, oldest
    /// first; they are never part of a reply.
    pub fn take_async(&mut self) -> Vec<AsyncLine> {
        self.assembler.take_async()
    }

    /// Send one command and return its reply whatever its final code.
    pub async fn raw_command(&mut self, cmd: &str) -> Result<Reply, ClientError> {
        validate_command(cmd)?;
        self.guarded(cmd, Some(cmd)).await
    }

    /// Send one command; a final code 8xxx/9xxx is [`ClientError::Bird`].
    pub async fn command(&mut self, cmd: &str) -> Result<Reply, ClientError> {
        let reply = self.raw_command(cmd).await?;
        if let Some(code) = reply.final_code().filter(|c| c.is_error()) {
            return Err(ClientError::Bird {
                command: cmd.to_owned(),
                code,
                text: reply.text(),
            });
        }
        Ok(reply)
    }

    /// `show status`.
    pub async fn show_status(&mut self) -> Result<Status, ClientError> {
        let reply = self.command("show status").await?;
        parse_status(&reply).ok_or_else(|| unexpected("show status", &reply))
    }

    /// `show protocols [all] ["pattern"]`; the rows are left to
    /// `bird::protocols`. A pattern that matches nothing is
    /// `ClientError::Bird` with code 8003.
    pub async fn show_protocols(
        &mut self,
        all: bool,
        pattern: Option<&str>,
    ) -> Result<Reply, ClientError> {
        let mut cmd = String::from("show protocols");
        if all {
            cmd.push_str(" all");
        }
        if let Some(p) = pattern {
            cmd.push(' ');
            cmd.push_str(&quote_string(p)?);
        }
        self.command(&cmd).await
    }

    /// `show protocols [all] ["pattern"]`, typed. A pattern that matches
    /// nothing (`8003 No protocols match`) is an empty list, not an error.
    pub async fn protocols(
        &mut self,
        all: bool,
        pattern: Option<&str>,
    ) -> Result<Vec<Protocol>, ClientError> {
        let reply = match self.show_protocols(all, pattern).await {
            Ok(r) => r,
            Err(ClientError::Bird {
                code: Code(8003), ..
            }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        parse_protocols(&reply).map_err(|source| ClientError::Protocols { source })
    }

    /// `show protocols ["pattern"]` read into a compact [`ProtocolTable`]
    /// as the reply arrives: the whole reply is never held (at 10,000
    /// protocols it is 2 MB). A pattern that matches nothing is an empty
    /// table.
    pub async fn protocol_table(
        &mut self,
        pattern: Option<&str>,
    ) -> Result<ProtocolTable, ClientError> {
        let mut cmd = String::from("show protocols");
        if let Some(p) = pattern {
            cmd.push(' ');
            cmd.push_str(&quote_string(p)?);
        }
        validate_command(&cmd)?;
        let mut builder = TableBuilder::new();
        let reply = self
            .guarded_with(&cmd, Some(&cmd), Some(&mut |l: &ReplyLine| builder.push(l)))
            .await?;
        match reply.final_code() {
            Some(Code(8003)) => return Ok(ProtocolTable::default()),
            Some(code) if code.is_error() => {
                return Err(ClientError::Bird {
                    command: cmd,
                    code,
                    text: reply.text(),
                })
            }
            _ => {}
        }
        builder
            .finish()
            .map_err(|source| ClientError::Protocols { source })
    }

    /// `configure check`: parse the config on disk, apply nothing.
    pub async fn configure_check(&mut self) -> Result<ConfigureOk, ClientError> {
        self.configure_cmd("configure check".into()).await
    }

    /// `configure check "FILE"`: parse another config file, apply nothing.
    pub async fn configure_check_file(&mut self, file: &Path) -> Result<ConfigureOk, ClientError> {
        let quoted = quote_string(&file.to_string_lossy())?;
        self.configure_cmd(format!("configure check {quoted}"))
            .await
    }

    /// `configure`.
    pub async fn configure(&mut self) -> Result<ConfigureOk, ClientError> {
        self.configure_cmd("configure".into()).await
    }

    /// `configure timeout SECS`: reconfigure and undo unless confirmed.
    pub async fn configure_timeout(&mut self, secs: u32) -> Result<ConfigureOk, ClientError> {
        self.configure_cmd(format!("configure timeout {secs}"))
            .await
    }

    /// `configure confirm`.
    pub async fn configure_confirm(&mut self) -> Result<ConfigureOk, ClientError> {
        self.configure_cmd("configure confirm".into()).await
    }

    /// `configure undo`.
    pub async fn configure_undo(&mut self) -> Result<ConfigureOk, ClientError> {
        self.configure_cmd("configure undo".into()).await
    }

    /// `enable NAME`.
    pub async fn enable(&mut self, name: &str) -> Result<Vec<ProtocolChange>, ClientError> {
        self.change("enable", name).await
    }

    /// `disable NAME`.
    pub async fn disable(&mut self, name: &str) -> Result<Vec<ProtocolChange>, ClientError> {
        self.change("disable", name).await
    }

    /// `restart NAME`.
    pub async fn restart(&mut self, name: &str) -> Result<Vec<ProtocolChange>, ClientError> {
        self.change("restart", name).await
    }

    async fn change(&mut self, verb: &str, name: &str) -> Result<Vec<ProtocolChange>, ClientError> {
        validate_protocol_name(name)?;
        let cmd = format!("{verb} {name}");
        let reply = self.command(&cmd).await?;
        let changes = parse_protocol_changes(&reply);
        if changes.is_empty() {
            return Err(unexpected(&cmd, &reply));
        }
        Ok(changes)
    }

    async fn configure_cmd(&mut self, cmd: String) -> Result<ConfigureOk, ClientError> {
        match self.command(&cmd).await {
            Ok(reply) => parse_configure(&reply).ok_or_else(|| unexpected(&cmd, &reply)),
            Err(ClientError::Bird { code, text, .. }) if code == Code(8002) => {
                let last = text.rsplit('\n').next().unwrap_or_default();
                match parse_config_file_error(last) {
                    Some(error) => Err(ClientError::ConfigFile {
                        command: cmd,
                        error,
                    }),
                    None => Err(ClientError::Bird {
                        command: cmd,
                        code,
                        text,
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Run one exchange under the time-out; any failure but a BIRD error
    /// leaves the stream in an unknown state, so it marks the connection
    /// broken.
    async fn guarded(&mut self, label: &str, send: Option<&str>) -> Result<Reply, ClientError> {
        self.guarded_with(label, send, None).await
    }

    /// [`Connection::guarded`]; with a `sink`, every reply line goes to it
    /// as it arrives and the returned reply holds only the final line and
    /// error lines.
    async fn guarded_with(
        &mut self,
        label: &str,
        send: Option<&str>,
        sink: Option<&mut (dyn FnMut(&ReplyLine) + Send)>,
    ) -> Result<Reply, ClientError> {
        if let Some(reason) = &self.broken {
            return Err(ClientError::Broken {
                reason: reason.clone(),
            });
        }
        let after = self.timeout;
        let result = match tokio::time::timeout(after, self.exchange(label, send, sink)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                command: label.to_owned(),
                after,
            }),
        };
        if let Err(e) = &result {
            self.broken = Some(e.to_string());
        }
        result
    }

    fn stream(&mut self, op: &'static str, label: &str) -> Result<&mut UnixStream, ClientError> {
        self.stream.as_mut().ok_or_else(|| ClientError::Io {
            op,
            command: label.to_owned(),
            source: std::io::Error::other("the socket was lost in a pause"),
        })
    }

    /// [`STREAM_PAUSE`] with the socket out of the reactor: registered, each
    /// write BIRD made meanwhile woke the runtime for nothing (the task
    /// sleeps), some 25 times a pause when BIRD and this daemon shared a
    /// CPU, about a third of the daemon's wake-ups at idle with 10,000
    /// peers. The socket stays open and keeps what BIRD writes; the next
    /// read takes it all.
    async fn pause(&mut self) -> std::io::Result<()> {
        let stream = self.stream.take().map(UnixStream::into_std).transpose()?;
        tokio::time::sleep(STREAM_PAUSE).await;
        if let Some(s) = stream {
            self.stream = Some(UnixStream::from_std(s)?);
        }
        Ok(())
    }

    async fn exchange(
        &mut self,
        label: &str,
        send: Option<&str>,
        mut sink: Option<&mut (dyn FnMut(&ReplyLine) + Send)>,
    ) -> Result<Reply, ClientError> {
        if let Some(cmd) = send {
            let mut line = Vec::with_capacity(cmd.len() + 1);
            line.extend_from_slice(cmd.as_bytes());
            line.push(b'\n');
            self.stream("write", label)?
                .write_all(&line)
                .await
                .map_err(|source| ClientError::Io {
                    op: "write",
                    command: label.to_owned(),
                    source,
                })?;
        }
        let streaming = sink.is_some();
        let mut buf = vec![0u8; if streaming { STREAM_CHUNK } else { READ_CHUNK }];
        // Lines handed to `sink` and not kept: (how many, the last one).
        let mut streamed: (usize, String) = (0, String::new());
        loop {
            while let Some(frame) =
                self.framer
                    .next_frame()
                    .map_err(|source| ClientError::Frame {
                        command: label.to_owned(),
                        source,
                    })?
            {
                if let (Some(s), Frame::Line(l)) = (sink.as_mut(), &frame) {
                    s(l);
                    if l.kind != LineKind::Last && !l.code.is_error() {
                        streamed.0 += 1;
                        streamed.1.clear();
                        streamed.1.push_str(l.text.get(..80).unwrap_or(&l.text));
                        continue;
                    }
                }
                if let Some(reply) = self.assembler.push(frame) {
                    return Ok(reply);
                }
            }
            let n = self
                .stream("read", label)?
                .read(&mut buf)
                .await
                .map_err(|source| ClientError::Io {
                    op: "read",
                    command: label.to_owned(),
                    source,
                })?;
            if n == 0 {
                let end = self
                    .framer
                    .finish()
                    .and_then(|()| self.assembler.finish())
                    .and_then(|()| match streamed.0 {
                        0 => Ok(()),
                        lines => Err(FrameError::EofInReply {
                            lines,
                            last: std::mem::take(&mut streamed.1),
                        }),
                    });
                return Err(match end {
                    Err(source) => ClientError::EofMidReply {
                        command: label.to_owned(),
                        source,
                    },
                    Ok(()) => ClientError::Closed {
                        command: label.to_owned(),
                    },
                });
            }
            self.read_total = self.read_total.saturating_add(n as u64);
            self.framer.push(buf.get(..n).unwrap_or_default());
            if streaming && n < buf.len() && streamed.0 > 0 {
                self.pause().await.map_err(|source| ClientError::Io {
                    op: "pause",
                    command: label.to_owned(),
                    source,
                })?;
            }
        }
    }
}

fn unexpected(command: &str, reply: &Reply) -> ClientError {
    ClientError::Unexpected {
        command: command.to_owned(),
        code: reply.final_code().unwrap_or(Code(0)),
        text: reply.text(),
    }
}

/// Refuse a command BIRD cannot take safely: over [`MAX_COMMAND`] bytes, or
/// holding CR, LF or NUL.
pub fn validate_command(cmd: &str) -> Result<(), ClientError> {
    if cmd.len() > MAX_COMMAND {
        return Err(ClientError::CommandTooLong {
            len: cmd.len(),
            max: MAX_COMMAND,
        });
    }
    for (at, b) in cmd.bytes().enumerate() {
        let what = match b {
            b'\r' => "CR",
            b'\n' => "LF",
            0 => "NUL",
            _ => continue,
        };
        return Err(ClientError::BadCommandByte { what, at });
    }
    Ok(())
}

/// Accept a protocol name BIRD's CLI can take: a symbol
/// `[A-Za-z_][A-Za-z0-9_]*` of at most 64 characters, or the apostrophe form
/// `'clients-10.0.0.4'` (`[A-Za-z0-9_.:-]+` inside).
pub fn validate_protocol_name(name: &str) -> Result<(), ClientError> {
    let bad = || ClientError::BadName {
        name: name.chars().take(80).collect(),
    };
    if let Some(inner) = name.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        let ok = !inner.is_empty()
            && inner.len() <= MAX_SYMBOL
            && inner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
        return if ok { Ok(()) } else { Err(bad()) };
    }
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && name.len() <= MAX_SYMBOL && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Quote `s` as a BIRD string (`"peer_*"`); BIRD strings have no escapes, so
/// `"`, CR, LF and NUL are refused.
pub fn quote_string(s: &str) -> Result<String, ClientError> {
    if s.bytes().any(|b| matches!(b, b'"' | b'\n' | b'\r' | 0)) {
        return Err(ClientError::BadString {
            value: s.chars().take(80).collect(),
        });
    }
    Ok(format!("\"{s}\""))
}

/// The greeting `0001 BIRD 2.0.12 ready.` (or `0001 autopeer 0.1.0 ready.`).
pub fn parse_greeting(reply: &Reply) -> Result<BirdVersion, ClientError> {
    let bad = || ClientError::Greeting {
        line: reply.text().chars().take(80).collect(),
    };
    if reply.final_code() != Some(Code(1)) || reply.lines.len() != 1 {
        return Err(bad());
    }
    let text = reply.final_text();
    let body = text.strip_suffix(" ready.").ok_or_else(bad)?;
    let (product, version) = body.rsplit_once(' ').ok_or_else(bad)?;
    if product.is_empty() {
        return Err(bad());
    }
    // A version word autopeer cannot read (`v3-beta`, `snapshot`) is kept
    // as text with 0.0.0: BIRD still answers, so it is a warning
    // ([`BirdVersion::is_known`]), never a refusal to talk.
    if version.is_empty() || version.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad());
    }
    let mut parts = version.split('.').map(leading_number);
    let major = parts.next().flatten().unwrap_or(0);
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Ok(BirdVersion {
        product: product.to_owned(),
        major,
        minor,
        patch,
        text: version.to_owned(),
    })
}

/// `12` of `12`, `12-rc1` or `12rc1`; `None` when it starts with no digit.
fn leading_number(s: &str) -> Option<u32> {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    s.get(..end)?.parse().ok()
}

/// `show status`:
///
/// ```text
/// 1000-BIRD 2.0.12
/// 1011-Router ID is 10.0.0.1
///  Hostname is vm
///  Current server time is 2026-11-23 08:04:03.197
///  Last reboot on 2026-11-23 08:03:59.487
///  Last reconfiguration on 2026-11-23 08:03:59.487
/// 0013 Daemon is up and running
/// ```
pub fn parse_status(reply: &Reply) -> Option<Status> {
    let version = reply.lines_with(Code(1000)).next()?.text.clone();
    let mut router_id = None;
    let mut hostname = None;
    let mut server_time = None;
    let mut last_reboot = None;
    let mut last_reconfiguration = None;
    for line in reply.lines_with(Code(1011)) {
        let t = line.text.as_str();
        if let Some(v) = t.strip_prefix("Router ID is ") {
            router_id = v.trim().parse::<Ipv4Addr>().ok();
        } else if let Some(v) = t.strip_prefix("Hostname is ") {
            hostname = Some(v.to_owned());
        } else if let Some(v) = t.strip_prefix("Current server time is ") {
            server_time = Some(v.to_owned());
        } else if let Some(v) = t.strip_prefix("Last reboot on ") {
            last_reboot = Some(v.to_owned());
        } else if let Some(v) = t.strip_prefix("Last reconfiguration on ") {
            last_reconfiguration = Some(v.to_owned());
        }
    }
    let last = reply.final_line().filter(|l| l.code == Code(13))?;
    Some(Status {
        version,
        router_id: router_id?,
        hostname,
        server_time: server_time?,
        last_reboot: last_reboot?,
        last_reconfiguration: last_reconfiguration?,
        up: last.text == "Daemon is up and running",
        state: last.text.clone(),
    })
}

/// A `configure*` reply that BIRD accepted:
///
/// ```text
/// 0002-Reading configuration from /srv/birdlab/a/bird.conf
/// 0022-Undo scheduled in 30 s
/// 0003 Reconfigured
/// ```
pub fn parse_configure(reply: &Reply) -> Option<ConfigureOk> {
    let last = reply.final_line()?;
    let outcome = ConfigureOutcome::from_code(last.code)?;
    let config_file = reply
        .lines_with(Code(2))
        .find_map(|l| l.text.strip_prefix("Reading configuration from "))
        .map(PathBuf::from);
    let undo_scheduled_secs = reply.lines_with(Code(22)).find_map(|l| {
        l.text
            .strip_prefix("Undo scheduled in ")
            .and_then(|s| s.strip_suffix(" s"))
            .and_then(|s| s.parse().ok())
    });
    Some(ConfigureOk {
        outcome,
        config_file,
        undo_scheduled_secs,
        undo_requested: reply.has_code(Code(21)),
        text: last.text.clone(),
    })
}

/// The text of `8002 /srv/birdlab/a/peers/p2.conf:3:3 syntax error, unexpected PASSIVE`
/// or of `8002 /srv/birdlab/a/nonexistent.conf: No such file or directory`.
pub fn parse_config_file_error(text: &str) -> Option<ConfigFileError> {
    // FILE:LINE:COL message — the first ":digits:digits " after a non-empty file.
    let mut search = 0;
    while let Some(i) = text.get(search..)?.find(':').map(|i| i + search) {
        let rest = text.get(i + 1..)?;
        if let Some((line, col, message)) = line_col(rest) {
            if i > 0 {
                return Some(ConfigFileError {
                    file: PathBuf::from(text.get(..i)?),
                    line: Some(line),
                    col: Some(col),
                    message: message.to_owned(),
                });
            }
        }
        search = i + 1;
    }
    // FILE: message, FILE without spaces.
    let (file, message) = text.split_once(": ")?;
    if file.is_empty() || file.contains(char::is_whitespace) {
        return None;
    }
    Some(ConfigFileError {
        file: PathBuf::from(file),
        line: None,
        col: None,
        message: message.to_owned(),
    })
}

/// `3:3 syntax error` -> (3, 3, "syntax error").
fn line_col(s: &str) -> Option<(u32, u32, &str)> {
    let (line, rest) = s.split_once(':')?;
    let (col, message) = rest.split_once(' ')?;
    if line.is_empty() || col.is_empty() {
        return None;
    }
    if !line.bytes().all(|b| b.is_ascii_digit()) || !col.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((line.parse().ok()?, col.parse().ok()?, message))
}

/// The per-protocol lines of `enable`/`disable`/`restart`:
///
/// ```text
/// 0009-peer_p1: disabled
///  peer_p3: disabled
/// 0000
/// ```
pub fn parse_protocol_changes(reply: &Reply) -> Vec<ProtocolChange> {
    reply
        .lines
        .iter()
        .filter(|l| l.kind != LineKind::Last || l.code != Code(0))
        .filter_map(|l| {
            let outcome = match l.code.0 {
                8 => ChangeOutcome::AlreadyDisabled,
                9 => ChangeOutcome::Disabled,
                10 => ChangeOutcome::AlreadyEnabled,
                11 => ChangeOutcome::Enabled,
                12 => ChangeOutcome::Restarted,
                _ => return None,
            };
            let (name, _) = l.text.rsplit_once(": ")?;
            Some(ProtocolChange {
                name: name.to_owned(),
                outcome,
            })
        })
        .collect()
}
