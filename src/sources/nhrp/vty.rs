//! nhrpd's cache, read over its vty socket: which spokes hold a binding
//! now. The roster removes a spoke whose binding stays gone (the group's
//! `depart`; [`crate::roster`] § departure).
//!
//! Why the cache and not another signal: nhrpd never tells anyone that a
//! spoke left (no event, and a spoke's nhrpd sends no purge when it
//! stops); a spoke's dynamic binding on the hub lives until the spoke's
//! registration holding time runs out (`nhrp_cache_do_timeout`, FRR
//! 8.4.4), and a spoke that keeps refreshing it is asked about only once
//! (`nhrp_cache_update_binding`: same peer, same type only moves the
//! expiry). So the binding, not the BGP session, says whether the spoke is
//! still there: removing a spoke whose binding nhrpd still holds would shut
//! it out until the binding lapsed, which a live spoke never lets happen.
//! The kernel's neighbour entries on the GRE device are no mirror of the
//! cache (zebra installs them `REACHABLE`, and the kernel ages them).
//!
//! The vty protocol (lib/vty.c `vtysh_read`, FRR 8.4.4): the client writes
//! a command ended by a NUL byte; the daemon answers with the command's
//! output, then three NUL bytes and the command's status (0 success,
//! 1 warning: `show ip nhrp cache json` with no entries). The JSON
//! (nhrp_vty.c `show_ip_nhrp_cache`, captured from nhrpd 8.4.4 in
//! fixtures/nhrp/cache-static.json) is
//! `{"attr":{"entriesCount":N},"table":[{"interface":"gre1","type":"dynamic",
//! "protocol":"10.200.0.5","nbma":"203.0.113.5",...}]}`.
//!
//! Everything read here is treated as possibly forged: addresses are
//! parsed, never copied; an answer that does not parse is an error, and
//! an error departs no one (the roster restarts its clocks).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::roster::Msg;

/// The commands that list nhrpd's IPv4 and IPv6 caches.
pub const CACHE_COMMANDS: [&str; 2] = ["show ip nhrp cache json", "show ipv6 nhrp cache json"];
/// Largest answer read (about 250 bytes per cache entry).
pub const MAX_REPLY: usize = 64 * 1024 * 1024;
/// How long one read of the cache may take.
pub const VTY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the cache could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VtyError {
    #[error("cannot connect to {path}: {reason}")]
    Connect { path: String, reason: String },
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("no answer within {}s", VTY_TIMEOUT.as_secs())]
    Timeout,
    #[error("answer of more than {MAX_REPLY} bytes")]
    TooLarge,
    #[error("command {command:?} failed with status {status}: {text}")]
    Status {
        command: String,
        status: u8,
        text: String,
    },
    #[error("not nhrpd's cache: {0}")]
    Json(String),
}

/// One entry of nhrpd's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub interface: String,
    /// nhrpd's type name: `dynamic`, `static`, `nhs`, `cached`, `local`,
    /// `incomplete`, `negative`, `invalid`.
    pub kind: String,
    /// The protocol (GRE) address.
    pub protocol: IpAddr,
    /// The NBMA address (`None`: nhrpd printed `-`).
    pub nbma: Option<IpAddr>,
}

impl CacheEntry {
    /// Whether the entry binds its address to an NBMA address: every type
    /// except `invalid` (being decided), `incomplete` (being resolved) and
    /// `negative` (resolution failed). A type this code does not know
    /// counts as a binding, so a newer nhrpd departs no one by surprise.
    pub fn binds(&self) -> bool {
        !matches!(self.kind.as_str(), "invalid" | "incomplete" | "negative")
    }
}

/// Splits a vty answer into output and status: `Some` once `buf` ends
/// with the three NUL bytes and the status byte.
pub fn split_reply(buf: &[u8]) -> Option<(&[u8], u8)> {
    let n = buf.len();
    if n < 4 || buf.get(n - 4..n - 1)? != [0, 0, 0] {
        return None;
    }
    Some((buf.get(..n - 4)?, *buf.last()?))
}

/// Parses the output of `show ip[v6] nhrp cache json`.
pub fn parse_cache(text: &str) -> Result<Vec<CacheEntry>, VtyError> {
    let bad = |m: String| VtyError::Json(m);
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let table = v
        .get("table")
        .and_then(|t| t.as_array())
        .ok_or_else(|| bad("no \"table\" array".into()))?;
    table
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let field = |k: &str| {
                e.get(k)
                    .and_then(|x| x.as_str())
                    .ok_or_else(|| bad(format!("table[{i}]: no string {k:?}")))
            };
            let protocol = field("protocol")?;
            let protocol = protocol.parse().map_err(|_| {
                bad(format!(
                    "table[{i}].protocol: {:?} is not an IP address",
                    protocol.chars().take(64).collect::<String>()
                ))
            })?;
            Ok(CacheEntry {
                interface: field("interface")?.chars().take(64).collect(),
                kind: field("type")?.chars().take(32).collect(),
                protocol,
                nbma: field("nbma").ok().and_then(|s| s.parse().ok()),
            })
        })
        .collect()
}

/// The addresses that hold a binding ([`CacheEntry::binds`]).
pub fn bound(entries: &[CacheEntry]) -> BTreeSet<IpAddr> {
    entries
        .iter()
        .filter(|e| e.binds())
        .map(|e| e.protocol)
        .collect()
}

/// Runs each command on nhrpd's vty socket at `path`; returns the outputs.
pub async fn query(path: &Path, commands: &[&str]) -> Result<Vec<String>, VtyError> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| VtyError::Io {
        path: shown.clone(),
        reason: e.to_string(),
    };
    tokio::time::timeout(VTY_TIMEOUT, async {
        let mut s = UnixStream::connect(path)
            .await
            .map_err(|e| VtyError::Connect {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let mut out = Vec::new();
        for &command in commands {
            let mut line = command.as_bytes().to_vec();
            line.push(0);
            s.write_all(&line).await.map_err(io)?;
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            let (text, status) = loop {
                if let Some((text, status)) = split_reply(&buf) {
                    break (text, status);
                }
                let n = s.read(&mut chunk).await.map_err(io)?;
                if n == 0 {
                    return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if buf.len() > MAX_REPLY {
                    return Err(VtyError::TooLarge);
                }
            };
            let text = String::from_utf8_lossy(text).into_owned();
            // 1 is CMD_WARNING: "no entries", the JSON is still there.
            if status > 1 {
                return Err(VtyError::Status {
                    command: command.into(),
                    status,
                    text: text.chars().take(200).collect(),
                });
            }
            out.push(text);
        }
        Ok(out)
    })
    .await
    .map_err(|_| VtyError::Timeout)?
}

/// Reads both caches: the addresses bound in either.
pub async fn read_bound(path: &Path) -> Result<BTreeSet<IpAddr>, VtyError> {
    let mut all = BTreeSet::new();
    for text in query(path, &CACHE_COMMANDS).await? {
        all.extend(bound(&parse_cache(&text)?));
    }
    Ok(all)
}

/// How often the cache is read: a third of the shortest `depart`, from
/// 1 to 10 s; `None` when no group departs peers or `nhrp_vty` is unset.
pub fn poll_interval(config: &Config) -> Option<(PathBuf, Duration)> {
    let path = config.sources.nhrp_vty.clone()?;
    let shortest = config.groups.iter().filter_map(|g| g.depart).min()?;
    let every = (shortest / 3).clamp(Duration::from_secs(1), Duration::from_secs(10));
    Some((path, every))
}

/// Reads nhrpd's cache while some group departs peers and sends each
/// result to the roster ([`Msg::NhrpCache`]); follows config reloads.
pub async fn watch_cache(
    mut config: watch::Receiver<Arc<Config>>,
    roster: mpsc::Sender<Msg>,
    token: CancellationToken,
) {
    let mut failing = false;
    loop {
        let plan = poll_interval(&config.borrow_and_update());
        let Some((path, every)) = plan else {
            tokio::select! {
                _ = token.cancelled() => return,
                r = config.changed() => if r.is_err() { return } else { continue },
            }
        };
        let read = tokio::select! {
            _ = token.cancelled() => return,
            r = read_bound(&path) => r,
        };
        match &read {
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %crate::event::escape(&e.to_string()), "nhrp: cannot read nhrpd's cache; no departures until it can");
            }
            Ok(_) if failing => {
                failing = false;
                tracing::info!("nhrp: nhrpd's cache readable again");
            }
            _ => {}
        }
        if roster
            .send(Msg::NhrpCache(read.map_err(|e| e.to_string())))
            .await
            .is_err()
        {
            return;
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
            r = config.changed() => if r.is_err() { return },
        }
    }
}
