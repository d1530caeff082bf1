//! The client side of the control socket, used by `autopeer status`,
//! `show`, `add`, `remove`, `watch` and `reload`: connect, read the
//! greeting, send one command, print the reply's text without codes (as
//! `birdc` does).
//!
//! Exit codes: 0 ok, 1 daemon unreachable or an error reply (8xxx/9xxx,
//! printed to stderr). It must not interpret the rows: what the daemon
//! sends is what the operator sees. `anyhow` is allowed here (STYLE.md
//! rule 6).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::proto::CtlCommand;
use crate::bird::reply::{Frame, Framer, LineKind};

/// How long connecting and the greeting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a (non-watch) reply may take (`show peers all` asks BIRD).
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The socket to use: `-s SOCKET`, else `[agent] socket` of the `-c`
/// config, else [`crate::cli::DEFAULT_SOCKET`]. Only the one key is read
/// from the config, so a config the daemon would refuse still names its
/// socket.
pub fn socket_path(socket: Option<&Path>, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(s) = socket {
        return Ok(s.to_path_buf());
    }
    if let Some(c) = config {
        let text = crate::readsafe::read_to_string(
            c,
            crate::readsafe::Links::Follow,
            crate::readsafe::MAX_CONFIG,
        )
        .with_context(|| format!("cannot read {}", c.display()))?;
        let value: toml::Value =
            toml::from_str(&text).with_context(|| format!("{}: not TOML", c.display()))?;
        if let Some(s) = value
            .get("agent")
            .and_then(|a| a.get("socket"))
            .and_then(|s| s.as_str())
        {
            return Ok(PathBuf::from(s));
        }
    }
    Ok(PathBuf::from(crate::cli::DEFAULT_SOCKET))
}

/// The outcome of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The reply ended with a success code.
    Ok,
    /// The reply ended with an error code (already printed to `err`).
    ErrorReply,
}

/// Sends `cmd` to the daemon at `socket` and writes the reply's text to
/// `out` (error lines to `err`). For `watch` this returns when the daemon
/// ends the stream or closes the connection.
pub async fn run(
    socket: &Path,
    cmd: &CtlCommand,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(socket))
        .await
        .map_err(|_| anyhow::anyhow!("{}: connect timed out", socket.display()))?
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    let mut conn = Conn {
        stream,
        framer: Framer::new(),
    };
    // The greeting: `0001 autopeer 0.1.0 ready.`; anything else is not us.
    let greeting = tokio::time::timeout(CONNECT_TIMEOUT, conn.next_line())
        .await
        .map_err(|_| anyhow::anyhow!("{}: no greeting", socket.display()))??;
    match greeting {
        Some((code, _, text)) if code == super::proto::GREETING => {
            if !text.starts_with("autopeer ") {
                bail!("{}: not autopeer's socket ({text})", socket.display());
            }
        }
        Some((_, _, text)) => {
            // E.g. `8012 Too many clients`.
            writeln!(err, "autopeer: {}", crate::event::escape(&text)).ok();
            return Ok(Outcome::ErrorReply);
        }
        None => bail!("{}: closed before the greeting", socket.display()),
    }
    let mut line = cmd.to_line();
    line.push('\n');
    conn.stream
        .write_all(line.as_bytes())
        .await
        .context("cannot send the command")?;
    let watching = matches!(cmd, CtlCommand::Watch { .. });
    let mut last_code = 0u16;
    loop {
        let next = if watching {
            conn.next_line().await?
        } else {
            tokio::time::timeout(REPLY_TIMEOUT, conn.next_line())
                .await
                .map_err(|_| anyhow::anyhow!("no reply within {REPLY_TIMEOUT:?}"))??
        };
        let Some((code, kind, raw)) = next else {
            if watching {
                return Ok(Outcome::Ok);
            }
            bail!("the daemon closed the connection inside a reply");
        };
        // The daemon escapes what it sends; this keeps a socket that is not
        // autopeer's (`-s`) from writing to the terminal raw either.
        let text = crate::event::escape(&raw);
        if kind != LineKind::Continuation {
            last_code = code;
        }
        let is_error = last_code >= 8000;
        if is_error {
            writeln!(err, "autopeer: {text}").ok();
        } else if !(text.is_empty() && kind == LineKind::Last) {
            writeln!(out, "{text}").context("cannot write output")?;
            if watching {
                out.flush().ok();
            }
        }
        if kind == LineKind::Last {
            return Ok(if is_error {
                Outcome::ErrorReply
            } else {
                Outcome::Ok
            });
        }
    }
}

struct Conn {
    stream: UnixStream,
    framer: Framer,
}

impl Conn {
    /// The next reply line `(code, kind, text)`; `None` at end of stream.
    async fn next_line(&mut self) -> anyhow::Result<Option<(u16, LineKind, String)>> {
        loop {
            match self.framer.next_frame() {
                Ok(Some(Frame::Line(l))) => return Ok(Some((l.code.0, l.kind, l.text))),
                Ok(Some(Frame::Async(_))) => continue,
                Ok(None) => {}
                Err(e) => bail!("bad reply from the daemon: {e}"),
            }
            let mut buf = [0u8; 8192];
            let n = self
                .stream
                .read(&mut buf)
                .await
                .context("cannot read the reply")?;
            if n == 0 {
                return Ok(None);
            }
            self.framer.push(buf.get(..n).unwrap_or_default());
        }
    }
}
