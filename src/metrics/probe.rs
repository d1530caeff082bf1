//! `autopeer check` for `[agent] metrics`, and the small HTTP client it
//! (and the tests) scrape with.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::check::{Finding, Severity};
use crate::config::Config;

/// Largest answer [`get`] reads.
pub const MAX_BODY: usize = 4 << 20;

/// `GET path` from `addr`: (status, body). Everything within `within`.
pub async fn get(addr: SocketAddr, path: &str, within: Duration) -> Result<(u16, String), String> {
    let run = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(within, run)
        .await
        .map_err(|_| format!("no answer within {within:?}"))?
}

/// Whether the daemon could listen on `[agent] metrics`, and where it is
/// served; an address already taken by a running autopeer is fine.
pub async fn check(config: &Config) -> Vec<Finding> {
    let Some(addr) = config.agent.metrics else {
        return Vec::new();
    };
    let finding = |severity, message: String| Finding {
        severity,
        key: "agent.metrics".into(),
        message,
    };
    let url = format!("http://{addr}/metrics");
    let mut out = Vec::new();
    match std::net::TcpListener::bind(addr) {
        Ok(l) => {
            drop(l);
            out.push(finding(
                Severity::Info,
                format!("Prometheus metrics will be served at {url}"),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            match get(addr, "/metrics", Duration::from_secs(2)).await {
                Ok((200, body)) if body.contains("autopeer_build_info") => out.push(finding(
                    Severity::Info,
                    format!("Prometheus metrics are served at {url} by a running autopeer"),
                )),
                _ => out.push(finding(
                    Severity::Problem,
                    format!(
                        "{addr} is already in use by another program (not an autopeer serving metrics); pick another port"
                    ),
                )),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => out.push(finding(
            Severity::Problem,
            format!("cannot listen on {addr}: {e}; it is not an address of this host"),
        )),
        Err(e) => out.push(finding(
            Severity::Problem,
            format!("cannot listen on {addr}: {e}"),
        )),
    }
    if !addr.ip().is_loopback() {
        out.push(finding(
            Severity::Warning,
            format!(
                "{addr} is not a loopback address: whoever reaches it reads the peer counts per group; restrict it with a firewall or use 127.0.0.1"
            ),
        ));
    }
    out
}
