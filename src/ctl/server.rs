//! The control-socket server: accepts clients on a Unix socket, reads
//! command lines, asks the roster, writes BIRD-framed replies.
//!
//! It owns the listening socket and every client stream; the language is
//! in [`super::proto`] (pure). It never changes the roster itself: it sends
//! [`Msg`]s to the roster task and relays the answers.
//!
//! Socket and access (STYLE.md rule 10):
//! - a stale path is unlinked only if it is a socket nobody answers on;
//!   anything else at the path (a file, a live daemon) is an error;
//! - the socket gets mode 0660 and the group of its directory (config keys
//!   are normative, so the group comes from the directory: with systemd,
//!   `RuntimeDirectory=` plus `Group=`; in `/run` it stays root's);
//! - mutating commands (`add`, `remove`, `reload`) are allowed to uid 0,
//!   the daemon's own uid, and members of the socket's group (primary gid
//!   from SO_PEERCRED, supplementary groups from SO_PEERGROUPS: both as
//!   the kernel recorded them at connect time, so a process that changes
//!   its groups later, or exits and leaves its pid to another, changes
//!   nothing), else `8007 Access denied`;
//! - at most [`MAX_CLIENTS`] clients at once; one more gets `8012` and is
//!   closed; a client that starts `watch` leaves that pool for the
//!   watchers' own, at most [`MAX_WATCHERS`] (one more gets `8012` and is
//!   closed), so watchers never take the slots that `status` and `add`
//!   need; a command line longer than [`proto::MAX_LINE`] gets `9000` and
//!   the connection stays usable; a client that does not read its replies
//!   is dropped after [`WRITE_TIMEOUT`]; an idle one after [`IDLE_TIMEOUT`].

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::proto::{self, CtlCommand, ReplyWriter};
use crate::config::Config;
use crate::event::{escape_json, Event};
use crate::roster::{Msg, Snapshot};
use crate::sources::journal::JournalStats;
use crate::sources::tail::TailStats;
use crate::sources::{Sighting, Trust, Via};

/// Clients served at once (not counting watchers).
pub const MAX_CLIENTS: usize = 64;
/// `watch` streams at once; they do not count against [`MAX_CLIENTS`].
pub const MAX_WATCHERS: usize = 16;
/// A reply (or a watch line) that cannot be written in this time closes
/// the client.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client that sends nothing for this long is closed (not `watch`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(900);
/// How long `show peers all` waits for BIRD's `show protocols all`.
const BIRD_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors creating the socket.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{}: exists and is not a socket; not removing it", path.display())]
    NotASocket { path: PathBuf },
    #[error("{}: another daemon answers on this socket", path.display())]
    InUse { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What the server needs from the daemon.
#[derive(Debug, Clone)]
pub struct Context {
    /// The roster task.
    pub roster: mpsc::Sender<Msg>,
    /// The tails' counters, for `show sources`.
    pub stats: Arc<TailStats>,
    /// The config file `reload` re-reads (`None`: reload is refused).
    pub config_path: Option<PathBuf>,
    /// BIRD's control socket, for `show peers all`.
    pub bird_socket: PathBuf,
    /// The journal source's counters (when it runs) and every source's
    /// verified mark, for `show sources`.
    pub sources: Sources,
    /// Where Prometheus metrics are served (`[agent] metrics`), for
    /// `show status`.
    pub metrics: Option<std::net::SocketAddr>,
}

/// What `show sources` says beyond the tails' counters.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub journal: Option<Arc<JournalStats>>,
    pub marks: Vec<proto::SourceMark>,
    /// The tailed files, each marked whether it is BIRD's own (verified);
    /// listed after `marks`. They change with bird.conf.
    pub files: Option<tokio::sync::watch::Receiver<Vec<(std::path::PathBuf, bool)>>>,
}

/// A bound control socket.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    group: u32,
    own_uid: u32,
    max_clients: usize,
    max_watchers: usize,
}

impl Server {
    /// Creates the socket at `path` (see the module doc). Must be called
    /// inside a tokio runtime.
    pub fn bind(path: &Path) -> Result<Server, CtlError> {
        let io_err = |source| CtlError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(CtlError::InUse {
                        path: path.to_owned(),
                    });
                }
                std::fs::remove_file(path).map_err(io_err)?;
            }
            Ok(_) => {
                return Err(CtlError::NotASocket {
                    path: path.to_owned(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        // Mode and group are set before the socket appears at `path`
        // (`fsx::Dir::bind_unix`): nothing is changed through a path that
        // could be swapped in between.
        let (dir, name) = crate::fsx::Dir::of(path).map_err(io_err)?;
        let dir_gid = dir.stat().map_err(io_err)?.st_gid;
        let (bound, st) = match dir.bind_unix(&name, 0o660, Some(dir_gid)) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                tracing::warn!(path = %path.display(), error = %e, "cannot give the control socket its directory's group");
                dir.bind_unix(&name, 0o660, None)
            }
            r => r,
        }
        .map_err(io_err)?;
        bound.set_nonblocking(true).map_err(io_err)?;
        let listener = UnixListener::from_std(bound).map_err(io_err)?;
        let group = st.st_gid;
        Ok(Server {
            listener,
            path: path.to_owned(),
            group,
            own_uid: rustix::process::geteuid().as_raw(),
            max_clients: MAX_CLIENTS,
            max_watchers: MAX_WATCHERS,
        })
    }

    /// Serve at most `n` clients at once (default [`MAX_CLIENTS`]).
    pub fn with_max_clients(mut self, n: usize) -> Server {
        self.max_clients = n.max(1);
        self
    }

    /// Serve at most `n` watchers at once (default [`MAX_WATCHERS`]).
    pub fn with_max_watchers(mut self, n: usize) -> Server {
        self.max_watchers = n.max(1);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` is cancelled, then unlinks the socket.
    pub async fn run(self, ctx: Context, shutdown: CancellationToken) {
        let ctx = Arc::new(ctx);
        let slots = Arc::new(Semaphore::new(self.max_clients));
        let watchers = Arc::new(Semaphore::new(self.max_watchers));
        let access = Arc::new(Access {
            group: self.group,
            own_uid: self.own_uid,
        });
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // EMFILE and friends: wait a little rather than spin.
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(permit) => {
                    let ctx = Arc::clone(&ctx);
                    let access = Arc::clone(&access);
                    let watchers = Arc::clone(&watchers);
                    let token = shutdown.clone();
                    tokio::spawn(async move {
                        serve(stream, &ctx, &access, permit, &watchers, token).await;
                    });
                }
                Err(_) => {
                    tokio::spawn(async move {
                        let mut s = stream;
                        let text = proto::single(proto::TOO_MANY_CLIENTS, "Too many clients");
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            s.write_all(text.as_bytes()),
                        )
                        .await;
                    });
                }
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Who may change things.
#[derive(Debug)]
struct Access {
    group: u32,
    own_uid: u32,
}

impl Access {
    fn allows(&self, stream: &UnixStream) -> bool {
        let Ok(cred) = stream.peer_cred() else {
            return false;
        };
        if cred.uid() == 0 || cred.uid() == self.own_uid || cred.gid() == self.group {
            return true;
        }
        use std::os::fd::AsFd;
        match crate::keyring::sys::peer_groups(stream.as_fd()) {
            Ok(groups) => groups.contains(&self.group),
            // Linux before 4.13 only.
            Err(e) if e.kind() == io::ErrorKind::Unsupported => cred
                .pid()
                .is_some_and(|pid| proc_groups(pid, cred.uid(), cred.gid()).contains(&self.group)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the control client's groups");
                false
            }
        }
    }
}

/// The `Groups:` line of `/proc/PID/status`, for kernels without
/// SO_PEERGROUPS. This is racy by nature: the client may have changed its
/// groups since it connected, or exited and left its pid to another
/// process (such kernels have no pidfd to pin it either). To narrow the
/// second case, the groups count only while the process still has the
/// connecting uid and gid.
fn proc_groups(pid: i32, uid: u32, gid: u32) -> Vec<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let first = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_ascii_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
    };
    if first("Uid:") != Some(uid) || first("Gid:") != Some(gid) {
        return Vec::new();
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_ascii_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// One client's write half with the write time-out.
struct Out {
    wr: OwnedWriteHalf,
}

impl Out {
    async fn send(&mut self, text: &str) -> io::Result<()> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.wr.write_all(text.as_bytes())).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client does not read",
            )),
        }
    }
}

/// What one read from the client gave.
enum Input {
    Line(String),
    TooLong,
    Closed,
}

/// Reads command lines with a length cap: an over-long line is dropped up
/// to its newline and reported once.
struct LineReader {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
    discarding: bool,
}

impl LineReader {
    async fn next(&mut self) -> Input {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if std::mem::take(&mut self.discarding) {
                    return Input::TooLong;
                }
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() > proto::MAX_LINE {
                    return Input::TooLong;
                }
                return Input::Line(String::from_utf8_lossy(line).into_owned());
            }
            if self.buf.len() > proto::MAX_LINE {
                self.buf.clear();
                self.discarding = true;
            }
            let mut chunk = [0u8; 4096];
            match self.rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return Input::Closed,
                Ok(n) => self
                    .buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
    }
}

/// One client. `slot` is its place among the [`MAX_CLIENTS`]; a client
/// that turns into a watcher gives it back for one of `watchers`.
async fn serve(
    stream: UnixStream,
    ctx: &Context,
    access: &Access,
    slot: OwnedSemaphorePermit,
    watchers: &Arc<Semaphore>,
    token: CancellationToken,
) {
    let allowed = access.allows(&stream);
    let (rd, wr) = stream.into_split();
    let mut out = Out { wr };
    let mut input = LineReader {
        rd,
        buf: Vec::new(),
        discarding: false,
    };
    if out.send(&proto::greeting()).await.is_err() {
        return;
    }
    loop {
        let next = tokio::select! {
            _ = token.cancelled() => {
                let _ = out.send(&proto::single(proto::SHUTTING_DOWN, "Shutting down")).await;
                return;
            }
            _ = tokio::time::sleep(IDLE_TIMEOUT) => return,
            i = input.next() => i,
        };
        let line = match next {
            Input::Closed => return,
            Input::TooLong => {
                if out
                    .send(&proto::single(proto::TOO_LONG, "Command too long"))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Input::Line(l) => l,
        };
        let cmd = match proto::parse_command(&line) {
            Ok(c) => c,
            Err(proto::ParseError::Empty) => continue,
            Err(e) => {
                if out
                    .send(&proto::single(proto::PARSE_ERROR, e.to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        if cmd.is_mutating() && !allowed {
            if out
                .send(&proto::single(proto::ACCESS_DENIED, "Access denied"))
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let reply = match cmd {
            CtlCommand::Watch { json } => {
                let Ok(_watching) = Arc::clone(watchers).try_acquire_owned() else {
                    // Closed like a client over MAX_CLIENTS: a client that
                    // wants to watch must not hold a command slot instead.
                    let _ = out
                        .send(&proto::single(proto::TOO_MANY_CLIENTS, "Too many watchers"))
                        .await;
                    return;
                };
                // A watcher holds only its watcher place from now on.
                drop(slot);
                watch(ctx, &mut out, &mut input, json, &token).await;
                return;
            }
            CtlCommand::Quit => {
                let _ = out.send(&proto::single(proto::OK, "Bye")).await;
                return;
            }
            other => execute(ctx, other).await,
        };
        if out.send(&reply).await.is_err() {
            return;
        }
    }
}

/// Sends `make(reply)` to the roster and waits for the answer; `None`
/// when the roster is gone (shutting down).
async fn ask<T>(ctx: &Context, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    ctx.roster.send(make(tx)).await.ok()?;
    rx.await.ok()
}

fn gone() -> String {
    proto::single(proto::SHUTTING_DOWN, "Shutting down")
}

/// Runs one command other than `watch` and `quit`; returns the framed reply.
pub async fn execute(ctx: &Context, cmd: CtlCommand) -> String {
    match cmd {
        CtlCommand::ShowStatus => {
            let Some(snap) = ask(ctx, Msg::Snapshot).await else {
                return gone();
            };
            let mut w = ReplyWriter::new();
            for l in proto::status_lines(&snap, SystemTime::now()) {
                w.line(proto::STATUS, l);
            }
            if let Some(addr) = ctx.metrics {
                w.line(proto::STATUS, format!("Metrics at http://{addr}/metrics"));
            }
            w.finish(proto::OK, "")
        }
        CtlCommand::ShowPeers { all } => {
            let Some(snap) = ask(ctx, Msg::Snapshot).await else {
                return gone();
            };
            let details = if all {
                bird_details(&ctx.bird_socket).await
            } else {
                Ok(HashMap::new())
            };
            let w = table(
                proto::PEERS_HEADING,
                proto::PEER_ROW,
                proto::peers_table(&snap, all, details.as_ref().unwrap_or(&HashMap::new())),
            );
            match details {
                Ok(_) => w.finish(proto::OK, ""),
                Err(e) => w.finish(
                    proto::BIRD_UNAVAILABLE,
                    format!("BIRD's details unavailable: {e}"),
                ),
            }
        }
        CtlCommand::ShowGroups => {
            let Some(snap) = ask(ctx, Msg::Snapshot).await else {
                return gone();
            };
            table(
                proto::GROUPS_HEADING,
                proto::GROUP_ROW,
                proto::groups_table(&snap),
            )
            .finish(proto::OK, "")
        }
        CtlCommand::ShowSources => {
            let Some(snap) = ask(ctx, Msg::Snapshot).await else {
                return gone();
            };
            let mut w = ReplyWriter::new();
            let journal = ctx.sources.journal.as_ref().map(|j| j.snapshot());
            let mut marks = ctx.sources.marks.clone();
            if let Some(files) = &ctx.sources.files {
                marks.extend(
                    files
                        .borrow()
                        .iter()
                        .map(|(path, verified)| proto::SourceMark {
                            name: path.display().to_string(),
                            verified: *verified,
                        }),
                );
            }
            let lines =
                proto::sources_lines(&ctx.stats.snapshot(), journal.as_ref(), &marks, &snap);
            for l in lines {
                w.line(proto::SOURCE_ROW, l);
            }
            w.finish(proto::OK, "")
        }
        CtlCommand::Add { addr, iface, group } => {
            let sighting = Sighting {
                addr,
                port: None,
                iface,
                via: Via::Operator,
                trust: Trust::Operator,
                at: SystemTime::now(),
            };
            let answer = ask(ctx, |reply| Msg::Admit {
                sighting,
                group,
                nbma: None,
                cert: Vec::new(),
                reply,
            })
            .await;
            match answer {
                None => gone(),
                Some(Ok(a)) => {
                    let text = if a.already {
                        format!("{} is already in group {}", a.name, a.group)
                    } else {
                        format!("Adding {} to group {}", a.name, a.group)
                    };
                    let mut w = ReplyWriter::new();
                    w.line(proto::RESULT, text);
                    w.finish(proto::OK, "")
                }
                Some(Err(reason)) => proto::single(proto::REFUSED, format!("Refused: {reason}")),
            }
        }
        CtlCommand::Remove { target } => {
            match ask(ctx, |reply| Msg::Remove { target, reply }).await {
                None => gone(),
                Some(Ok(names)) => {
                    let mut w = ReplyWriter::new();
                    for n in &names {
                        w.line(proto::RESULT, format!("Removing {n}"));
                    }
                    w.finish(proto::OK, "")
                }
                Some(Err(e)) => proto::single(proto::NO_SUCH_PEER, e),
            }
        }
        CtlCommand::Reload => reload(ctx).await,
        CtlCommand::Help => {
            let mut w = ReplyWriter::new();
            for l in proto::help_lines() {
                w.line(proto::HELP, l);
            }
            w.finish(proto::OK, "")
        }
        // These need the connection itself; `serve` handles them.
        CtlCommand::Watch { .. } | CtlCommand::Quit => proto::single(
            proto::PARSE_ERROR,
            "watch and quit need a connection of their own",
        ),
    }
}

fn table(heading: u16, row: u16, lines: Vec<String>) -> ReplyWriter {
    let mut w = ReplyWriter::new();
    let mut it = lines.into_iter();
    if let Some(h) = it.next() {
        w.line(heading, h);
    }
    for l in it {
        w.line(row, l);
    }
    w
}

/// `show protocols all`, BGP details by protocol name.
async fn bird_details(
    socket: &Path,
) -> Result<HashMap<String, crate::bird::protocols::BgpDetails>, String> {
    let mut c = crate::bird::client::Connection::connect(socket, BIRD_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let rows = c.protocols(true, None).await.map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .filter_map(|p| Some((p.name, p.bgp?)))
        .collect())
}

/// Re-reads the config file; a broken one is refused with every problem,
/// and the old config stays in force.
async fn reload(ctx: &Context) -> String {
    let Some(path) = ctx.config_path.clone() else {
        return proto::single(
            proto::CONFIG_ERROR,
            "no config file to re-read (started without one)",
        );
    };
    let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await;
    let config = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            // The file may quote its own (any) text back: one log line still.
            tracing::error!(
                error = %crate::event::escape(&e.to_string()),
                "reload refused, the old config stays in force"
            );
            let mut w = ReplyWriter::new();
            for (key, msg) in e.problems() {
                w.line(proto::CONFIG_ERROR, format!("{key}: {msg}"));
            }
            return w.finish(
                proto::CONFIG_ERROR,
                "Reload refused; the old config stays in force",
            );
        }
        Err(_) => return gone(),
    };
    if ctx
        .roster
        .send(Msg::Reload(Box::new(config)))
        .await
        .is_err()
    {
        return gone();
    }
    // Wait until the roster has taken it, so that the next command sees it.
    match ask(ctx, Msg::Snapshot).await {
        Some(_) => proto::single(proto::RECONFIGURED, "Reconfigured"),
        None => gone(),
    }
}

/// `watch`: the roster, then one line per event, until the client leaves
/// or the daemon stops.
async fn watch(
    ctx: &Context,
    out: &mut Out,
    input: &mut LineReader,
    json: bool,
    token: &CancellationToken,
) {
    let Some((snap, mut events)) = ask(ctx, Msg::Subscribe).await else {
        let _ = out.send(&gone()).await;
        return;
    };
    let mut last_code = None;
    let mut w = dump(&snap, json);
    if out.send(&w.take_partial(&mut last_code)).await.is_err() {
        return;
    }
    loop {
        let ev = tokio::select! {
            _ = token.cancelled() => {
                let _ = out.send(&ReplyWriter::new().finish(proto::SHUTTING_DOWN, "Shutting down")).await;
                return;
            }
            i = input.next() => match i {
                Input::Closed => return,
                // Input during watch is ignored.
                _ => continue,
            },
            e = events.recv() => e,
        };
        match ev {
            Ok(e) => {
                w.line(proto::WATCH_EVENT, event_line(&e, json));
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let text = if json {
                    serde_json::json!({"event": "lost", "count": n}).to_string()
                } else {
                    format!("{n} events lost")
                };
                w.line(proto::WATCH_LOST, text);
            }
            Err(broadcast::error::RecvError::Closed) => {
                let _ = out.send(&w.finish(proto::OK, "")).await;
                return;
            }
        }
        if out.send(&w.take_partial(&mut last_code)).await.is_err() {
            return;
        }
    }
}

fn dump(snap: &Snapshot, json: bool) -> ReplyWriter {
    if json {
        let mut w = ReplyWriter::new();
        for pv in &snap.peers {
            w.line(
                proto::WATCH_ROW,
                escape_json(&proto::peer_json(pv).to_string()),
            );
        }
        w
    } else {
        table(
            proto::WATCH_HEADING,
            proto::WATCH_ROW,
            proto::peers_table(snap, false, &HashMap::new()),
        )
    }
}

fn event_line(e: &Event, json: bool) -> String {
    if json {
        escape_json(&e.to_json().to_string()).into_owned()
    } else {
        format!(
            "{} {}",
            crate::event::rfc3339(SystemTime::now()),
            e.watch_text()
        )
    }
}
