//! The event-socket server: accepts nhrpd's connections and answers each
//! `authorize-binding` with the roster's decision.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, NhrpPolicy};
use crate::event::{escape, Event};
use crate::roster::Msg;
use crate::sources::{Sighting, Trust, Via};

use super::message::{
    leading_event_id, parse_binding, parse_message, reply, Binding, Frame, Framer,
    AUTHORIZE_BINDING, MAX_MESSAGE,
};

/// How long the server waits for the roster's decision (nhrpd gives up
/// after 10 s).
pub const DECIDE_TIMEOUT: Duration = Duration::from_secs(3);
/// At most this many nhrpd connections at once (nhrpd holds one; a
/// restart may briefly overlap).
pub const MAX_CONNECTIONS: usize = 8;

/// Counters of the server (for status output and tests).
#[derive(Debug, Default)]
pub struct NhrpStats {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    /// Messages that could not be answered: no (valid) eventid.
    pub unanswerable: AtomicU64,
    /// Messages that were not understood (answered `reject` when they had an eventid).
    pub malformed: AtomicU64,
    /// Decisions the roster did not give within [`DECIDE_TIMEOUT`].
    pub timeouts: AtomicU64,
    /// Messages other than `authorize-binding` (answered `accept` when they wait).
    pub other_events: AtomicU64,
}

/// Where the server's events go (log, audit log, watch stream).
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// What the server needs to decide.
#[derive(Clone)]
pub struct NhrpContext {
    /// The current config (updated on reload).
    pub config: watch::Receiver<Arc<Config>>,
    /// The roster task.
    pub roster: mpsc::Sender<Msg>,
    pub events: EventSink,
    pub stats: Arc<NhrpStats>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{}: exists and is not a socket; not removed", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot listen on {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the socket: a stale socket at `path` is removed (anything else
/// there is an error), the new one gets mode 0600 (nhrpd runs with
/// CAP_DAC_OVERRIDE raised, so a root-owned 0600 socket reaches it).
pub fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => {
            return Err(ServeError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            let _ = std::fs::create_dir_all(dir);
        }
    }
    let bind_err = |source| ServeError::Bind {
        path: path.to_path_buf(),
        source,
    };
    // The mode is set before the socket appears at `path` (crate::fsx).
    let (dir, name) = crate::fsx::Dir::of(path).map_err(bind_err)?;
    let (l, _) = dir.bind_unix(&name, 0o600, None).map_err(bind_err)?;
    l.set_nonblocking(true).map_err(bind_err)?;
    UnixListener::from_std(l).map_err(bind_err)
}

/// Accepts nhrpd's connections until `token` is cancelled; removes the
/// socket file on the way out.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    ctx: NhrpContext,
    token: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!("nhrp: too many connections, closing the newest");
                    continue;
                };
                ctx.stats.connections.fetch_add(1, Ordering::Relaxed);
                tracing::info!("nhrp: nhrpd connected");
                let ctx = ctx.clone();
                let token = token.clone();
                tokio::spawn(async move {
                    connection(stream, ctx, token).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "nhrp: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// One nhrpd connection: messages are decided concurrently (each waits at
/// most [`DECIDE_TIMEOUT`] for the roster) and answered as they are
/// decided; nhrpd matches answers by eventid, not by order.
async fn connection(stream: UnixStream, ctx: NhrpContext, token: CancellationToken) {
    let (mut rd, mut wr) = stream.into_split();
    let (ans_tx, mut ans_rx) = mpsc::channel::<String>(1024);
    let writer = tokio::spawn(async move {
        while let Some(a) = ans_rx.recv().await {
            if wr.write_all(a.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    // Decisions in flight at once: a flood waits here, bounded.
    let inflight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = token.cancelled() => break,
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        for frame in framer.push(buf.get(..n).unwrap_or_default()) {
            let Ok(permit) = Arc::clone(&inflight).acquire_owned().await else {
                break;
            };
            let ctx = ctx.clone();
            let tx = ans_tx.clone();
            tokio::spawn(async move {
                if let Some(a) = handle(frame, &ctx).await {
                    let _ = tx.send(a).await;
                }
                drop(permit);
            });
        }
    }
    if framer.pending() > 0 {
        tracing::debug!(
            bytes = framer.pending(),
            "nhrp: connection closed mid-message"
        );
    }
    drop(ans_tx);
    // Answers already decided still go out if the peer is reading.
    let _ = tokio::time::timeout(DECIDE_TIMEOUT + Duration::from_secs(1), writer).await;
    tracing::info!("nhrp: nhrpd disconnected");
}

/// One frame in, at most one answer out.
async fn handle(frame: Frame, ctx: &NhrpContext) -> Option<String> {
    let s = &ctx.stats;
    let bytes = match frame {
        Frame::Oversized(id) => {
            s.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(max = MAX_MESSAGE, "nhrp: message over the size cap");
            return refuse(id, s);
        }
        Frame::Message(b) => b,
    };
    let msg = match parse_message(&bytes) {
        Ok(m) => m,
        Err(e) => {
            s.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %escape(&e.to_string()), "nhrp: malformed message");
            return refuse(leading_event_id(&bytes), s);
        }
    };
    let id = match msg.event_id() {
        Ok(Some(id)) => id,
        Ok(None) | Err(_) => {
            s.unanswerable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                event = ?escape(msg.get("event").unwrap_or("")),
                "nhrp: message without a usable eventid, cannot answer"
            );
            return None;
        }
    };
    if msg.get("event") != Some(AUTHORIZE_BINDING) {
        // nhrpd 8.4.4 sends no other event that waits; answering keeps a
        // future one from hanging for 10 s.
        s.other_events.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            event = ?escape(msg.get("event").unwrap_or("")),
            "nhrp: unknown event, accepted"
        );
        return Some(reply(id, true));
    }
    s.requests.fetch_add(1, Ordering::Relaxed);
    let binding = match parse_binding(&msg) {
        Ok(b) => b,
        Err(e) => {
            s.malformed.fetch_add(1, Ordering::Relaxed);
            s.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %escape(&e.to_string()), "nhrp: bad authorize-binding, rejected");
            return Some(reply(id, false));
        }
    };
    let policy = ctx.config.borrow().sources.nhrp_policy;
    let mut verdict = decide(&binding, ctx).await;
    if policy == NhrpPolicy::Advise && !verdict.admitted {
        verdict
            .outcome
            .push_str(" (policy advise: registration accepted, no BGP peer)");
    }
    let accept = match policy {
        NhrpPolicy::Enforce => verdict.admitted,
        NhrpPolicy::Advise => true,
    };
    if verdict.timed_out {
        s.timeouts.fetch_add(1, Ordering::Relaxed);
    }
    if accept {
        s.accepted.fetch_add(1, Ordering::Relaxed);
    } else {
        s.rejected.fetch_add(1, Ordering::Relaxed);
    }
    (ctx.events)(Event::Nhrp {
        addr: binding.remote_addr,
        nbma: binding.remote_nbma,
        interface: binding.interface.clone(),
        accepted: accept,
        admitted: verdict.admitted,
        outcome: verdict.outcome,
        kind: verdict.kind,
    });
    Some(reply(id, accept))
}

/// The answer to a message that cannot be used: `reject` when its eventid
/// is known, else none (counted as unanswerable).
fn refuse(id: Option<u32>, s: &NhrpStats) -> Option<String> {
    match id {
        Some(id) => {
            s.rejected.fetch_add(1, Ordering::Relaxed);
            Some(reply(id, false))
        }
        None => {
            s.unanswerable.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// The BGP side of a decision.
struct Verdict {
    admitted: bool,
    timed_out: bool,
    outcome: String,
    /// The refusal's kind, when admission refused.
    kind: Option<&'static str>,
}

/// Asks the roster, which decides by [`crate::admission::decide`] (group,
/// `nbma_prefixes`, certificate binding, deny, limits, rate) from its state
/// and batches the BGP change. The certificate goes along whole (at most
/// 2 KiB from nhrpd); only its subject and serial are ever written out.
async fn decide(b: &Binding, ctx: &NhrpContext) -> Verdict {
    let refused = |outcome: String, kind| Verdict {
        admitted: false,
        timed_out: false,
        outcome,
        kind,
    };
    let (tx, rx) = oneshot::channel();
    let msg = Msg::Admit {
        sighting: Sighting {
            addr: b.remote_addr,
            port: None,
            iface: None,
            via: Via::Nhrp,
            trust: Trust::Nhrp,
            at: SystemTime::now(),
        },
        group: None,
        nbma: b.remote_nbma,
        cert: b.remote_cert.clone(),
        reply: tx,
    };
    let answer = tokio::time::timeout(DECIDE_TIMEOUT, async {
        ctx.roster.send(msg).await.ok()?;
        rx.await.ok()
    })
    .await;
    match answer {
        Ok(Some(Ok(a))) => Verdict {
            admitted: true,
            timed_out: false,
            outcome: format!(
                "{} group {} as {}{}",
                if a.already {
                    "already in"
                } else {
                    "admitted to"
                },
                a.group,
                a.name,
                // Who registered, when a certificate came: subject and
                // serial, never the certificate itself.
                super::cert::describe(&b.remote_cert)
                    .map(|c| format!(" (certificate {c})"))
                    .unwrap_or_default()
            ),
            kind: None,
        },
        Ok(Some(Err(refusal))) => refused(refusal.to_string(), Some(refusal.kind())),
        Ok(None) => refused("roster not running".into(), None),
        Err(_) => Verdict {
            admitted: false,
            timed_out: true,
            outcome: format!("no decision within {}s", DECIDE_TIMEOUT.as_secs()),
            kind: None,
        },
    }
}
