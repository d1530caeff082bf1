//! The metrics endpoint: `GET /metrics` over plain HTTP/1.1.
//!
//! hyper's HTTP/1 server does the protocol (request parsing, a bounded
//! read buffer, a header-read timeout); this file adds the limits a
//! daemon running as root needs against a scraper that misbehaves:
//!
//! - at most [`MAX_CONNECTIONS`] at once; one more is accepted and closed
//!   at once (and counted), so a crowd cannot queue up in the kernel;
//! - a request head must arrive within [`HEADER_TIMEOUT`] and fit in
//!   [`MAX_HEAD`] bytes (hyper answers a longer one with 431 and closes);
//! - a connection lives at most [`CONNECTION_TIME`], so one that sends a
//!   request and never reads the answer cannot hold its slot;
//! - one request per connection (`Connection: close`);
//! - the roster is asked for its snapshot with [`SNAPSHOT_TIMEOUT`]: a busy
//!   roster costs the scrape its peer series, never the daemon a wait.
//!
//! The server only reads: nothing a scraper sends reaches the roster.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{render, Scrape, Sources};
use crate::roster::Msg;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Time from connect to a complete request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection, answer included.
pub const CONNECTION_TIME: Duration = Duration::from_secs(10);
/// Largest request head (hyper's read buffer; its minimum is 8 KiB).
pub const MAX_HEAD: usize = 16 * 1024;
/// How long a scrape waits for the roster's snapshot.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);

/// The address could not be listened on.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr} ([agent] metrics): {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Listens on `addr` (must run inside a tokio runtime).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let err = |source| BindError { addr, source };
    let std = std::net::TcpListener::bind(addr).map_err(err)?;
    std.set_nonblocking(true).map_err(err)?;
    TcpListener::from_std(std).map_err(err)
}

/// What a scrape reads.
#[derive(Clone)]
pub struct Context {
    /// The roster task, asked for its snapshot (`None`: no roster, e.g. in
    /// tests of the endpoint alone).
    pub roster: Option<mpsc::Sender<Msg>>,
    pub sources: Sources,
}

/// Serves until `token` is cancelled.
pub async fn serve(listener: TcpListener, ctx: Context, token: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and the like: do not spin.
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            super::connection_refused();
            drop(stream);
            continue;
        };
        let ctx = ctx.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(answer(&req, &ctx).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = token.cancelled() => {}
                _ = tokio::time::timeout(CONNECTION_TIME, conn) => {}
            }
        });
    }
}

async fn answer<B>(req: &Request<B>, ctx: &Context) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/metrics" && path != "/" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/" {
        return plain(StatusCode::OK, "autopeer: metrics are at /metrics\n");
    }
    let snapshot = match &ctx.roster {
        Some(tx) => snapshot(tx).await,
        None => None,
    };
    let text = render(&Scrape {
        snapshot: snapshot.as_ref(),
        sources: &ctx.sources,
    });
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(super::CONTENT_TYPE),
    );
    r
}

async fn snapshot(tx: &mpsc::Sender<Msg>) -> Option<crate::roster::Snapshot> {
    let ask = async {
        let (reply, rx) = oneshot::channel();
        tx.send(Msg::Snapshot(reply)).await.ok()?;
        rx.await.ok()
    };
    let snap = tokio::time::timeout(SNAPSHOT_TIMEOUT, ask)
        .await
        .ok()
        .flatten();
    if snap.is_none() {
        tracing::debug!("metrics: no roster snapshot in time; peer series left out");
    }
    snap
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
