//! Wires the tasks of `autopeer run` together.
//!
//! Every task and channel (`mpsc(N)`: bounded queue of N; `oneshot`: one
//! reply; `watch`: latest value only; `broadcast(N)`: fan-out ring):
//!
//! ```text
//! tail (1x, [sources] logs) ---Sighting--+--> mpsc(4096) --> one_sighting (1x:
//! journal (0-1x, journalctl) -Sighting--+    a line seen twice passes once)
//!                                                  |
//!                                            mpsc(4096) Sighting
//!                                                  v
//! notify thread -> unbounded -> debounce    +----------------------------+
//!   (1x, 300 ms) --BirdConfChanged--------> |                            |
//! SIGHUP (1x) --Reload--------------------> |   roster owner task (1x)   |
//!   (+ the audit log's reopen AtomicBool)   |   roster/task.rs: the I/O  |
//! observer (1x, show protocols)             |   around roster/core.rs,   |
//!   --States, StatesFailed----------------> |   the pure state and its   |
//! ctl server (1x) + a task per client (Nx)  |   transitions              |
//!   --Admit, Remove, Snapshot, Subscribe    |                            |
//!     (each + oneshot reply)--------------> |   one Msg channel,         |
//! nhrp server (0-1x) + a task per nhrpd     |   mpsc(64), for all of     |
//!   connection (Nx) --Admit (+ oneshot,     |   these                    |
//!     3 s limit); Emit via EventSink -----> |                            |
//! keyring (1x, 1 s tick, key work in        |                            |
//!   spawn_blocking) --Emit via EventSink--> |                            |
//!   (EventSink: try_send Msg::Emit; logged  +----------------------------+
//!    only when the channel is full or gone)
//!   keyring --watch Option<KeyringStatus>--> roster (show status, trust)
//!   roster --broadcast(1024) Event--> watch clients (Nx, via the ctl server)
//! nhrp cache reader (1x, idle without `depart`) --NhrpCache------------>
//!   roster --watch Arc<Config>------> nhrp server, nhrp cache reader
//!   roster --watch KeyInputs--------> keyring (config, bird.conf scan,
//!                                     peers, count of configures), and
//!                                     observer (a change: poll again soon)
//!   roster --> daemon log, audit log (written in the owner task)
//!
//!   the roster's children, JoinHandles its select polls:
//!   apply (0-1 in flight, roster/applier.rs): Job --> connect to BIRD,
//!       render for its version, write, configure --> Done
//!   resume check (once, at start): is a roster peer missing from BIRD?
//!   state-file write (0-1 at a time, spawn_blocking)
//! ```
//!
//! The roster owner task never awaits BIRD: an apply runs as its child, so
//! the control socket, NHRP and sightings are answered while BIRD is slow,
//! stopped or dead; sightings during an apply go into the next one.
//!
//! The NHRP server asks the roster for a decision and answers nhrpd at
//! once; its own decisions (with the NBMA address) go back to the roster
//! as `Msg::Emit`, so they are logged, audited and streamed like any other.
//!
//! The roster task owns all state; the others only move data to it.
//! Shutdown: the caller's `shutdown` future cancels a token that every task
//! watches; `run` returns once the roster has finished its last apply.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::bird::conf;
use crate::config::Config;
use crate::config::JournalMode;
use crate::event::EventSink;
use crate::roster::{Msg, Roster};
use crate::sources::{journal, nhrp, tail, OneSighting, Sighting};

/// How long bird.conf edits are gathered before a rescan (editors write in
/// several steps).
const CONF_DEBOUNCE: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Start(#[from] crate::roster::StartError),
    #[error("cannot follow the logs: {0}")]
    Tail(#[from] tail::TailError),
    #[error("cannot watch bird.conf: {0}")]
    Watch(#[from] notify::Error),
    #[error("control socket: {0}")]
    Ctl(#[from] crate::ctl::server::CtlError),
    #[error(transparent)]
    Nhrp(#[from] nhrp::ServeError),
    #[error("cannot follow the journal ([sources] journal = \"on\"): {0}")]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::server::BindError),
}

/// Runs the daemon until `shutdown` resolves. `config_path` is re-read on
/// SIGHUP (when given).
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let audit = match AuditLog::open(&config.agent.audit_log) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(path = %config.agent.audit_log.display(), error = %crate::event::escape(&e.to_string()), "cannot open audit log; retrying at each line");
            AuditLog::closed(&config.agent.audit_log)
        }
    };
    let audit_reopen = audit.reopen_handle();
    let mut roster = Roster::new(Arc::clone(&config), Some(audit))?;
    let (keyring_status, keyring_rx) = crate::keyring::task::status_channel();
    roster.follow_keyring(keyring_rx);
    let token = CancellationToken::new();
    let (sighting_tx, sighting_rx) = mpsc::channel(4096);
    let (msg_tx, msg_rx) = mpsc::channel(64);

    let stats = Arc::new(tail::TailStats::default());
    // The sources send here; one task passes each line on once (BIRD may
    // log the same line to its file and to the journal).
    let (source_tx, source_rx) = mpsc::channel(4096);
    // What the sources have sent and not yet reached the roster: it
    // gathers a burst while this is not zero.
    let flow = crate::sources::Flow::default();
    roster.follow_flow(flow.clone());
    let merge_task = tokio::spawn(one_sighting(source_rx, sighting_tx, flow.clone()));
    let bird_conf = conf::scan(&config.bird.config, &config.bird.include).ok();
    // Watches are live once `start` returns: only then is the daemon ready.
    let mut tailer = tail::Tailer::start(config.sources.logs.clone()).await?;
    tailer.set_flow(flow.clone());
    let bird_files = bird_conf
        .as_ref()
        .map(|bc| bc.log_files.clone())
        .unwrap_or_default();
    for (path, e) in tailer.set_bird_files(&bird_files).failed {
        tracing::warn!(path = %path.display(), error = %e, "cannot tail BIRD's log file named in bird.conf");
    }
    tailer.follow_bird_files(bird_log_files(roster.key_watch(), bird_files));
    let files = tailer.marks_watch();
    let mut marks: Vec<crate::ctl::proto::SourceMark> = Vec::new();
    let tail_task = tokio::spawn(tailer.run(source_tx.clone(), Arc::clone(&stats), token.clone()));
    let journal_stats = Arc::new(journal::JournalStats::default());
    let journal_task = start_journal(
        &config,
        bird_conf.as_ref(),
        source_tx,
        flow,
        Arc::clone(&journal_stats),
        &token,
    )
    .await?;
    if journal_task.is_some() {
        // Its entries count only when journald names BIRD's process.
        marks.push(crate::ctl::proto::SourceMark {
            name: "journal".into(),
            verified: true,
        });
    }

    let _watcher = watch_bird_conf(&config, msg_tx.clone())?;
    // Bound before the control socket (which tells that the daemon is
    // up): a taken address stops the start.
    let metrics = match config.agent.metrics {
        Some(addr) => Some(crate::metrics::server::bind(addr)?),
        None => None,
    };
    let ctl = crate::ctl::server::Server::bind(&config.agent.socket)?;
    let metrics_addr = metrics.as_ref().and_then(|l| l.local_addr().ok());
    let nhrp_stats = Arc::new(nhrp::NhrpStats::default());
    let ctl_task = tokio::spawn(ctl.run(
        crate::ctl::server::Context {
            roster: msg_tx.clone(),
            stats: Arc::clone(&stats),
            config_path: config_path.clone(),
            bird_socket: config.bird.socket.clone(),
            sources: crate::ctl::server::Sources {
                journal: journal_task.as_ref().map(|_| Arc::clone(&journal_stats)),
                marks,
                files: Some(files),
            },
            metrics: metrics_addr,
        },
        token.clone(),
    ));
    let observer = tokio::spawn(crate::observer::run(
        config.bird.socket.clone(),
        msg_tx.clone(),
        // It changes when the roster configured BIRD or re-read bird.conf.
        Some(roster.key_watch()),
        token.clone(),
    ));
    // Events decided outside the roster (NHRP answers, the keyring): the
    // roster logs, audits and streams them; if it is busy or gone
    // (shutting down) each is at least logged.
    let emit = msg_tx.clone();
    let events = EventSink::new(move |e| {
        if let Err(err) = emit.try_send(Msg::Emit(e)) {
            if let Msg::Emit(e) = err.into_inner() {
                e.log();
            }
        }
    });
    let nhrp_task = match &config.sources.nhrp_socket {
        Some(path) => {
            let listener = nhrp::bind(path)?;
            let sink = events.clone();
            let events: nhrp::EventSink = Arc::new(move |e| sink.emit(e));
            let ctx = nhrp::NhrpContext {
                config: roster.config_watch(),
                roster: msg_tx.clone(),
                events,
                stats: Arc::clone(&nhrp_stats),
            };
            tracing::info!(path = %path.display(), "listening for nhrpd");
            Some(tokio::spawn(nhrp::serve(
                listener,
                path.clone(),
                ctx,
                token.clone(),
            )))
        }
        None => None,
    };
    // Departures: nhrpd's cache, read while some group has `depart`
    // (it idles otherwise, and follows reloads).
    let departures = tokio::spawn(nhrp::vty::watch_cache(
        roster.config_watch(),
        msg_tx.clone(),
        token.clone(),
    ));
    let keyring_task = tokio::spawn(crate::keyring::task::run(
        roster.key_watch(),
        keyring_status,
        events,
        token.clone(),
    ));
    if let Some(addr) = metrics_addr {
        tracing::info!(url = %format!("http://{addr}/metrics"), "serving Prometheus metrics");
    }
    let metrics_task = metrics.map(|listener| {
        tokio::spawn(crate::metrics::server::serve(
            listener,
            crate::metrics::server::Context {
                roster: Some(msg_tx.clone()),
                sources: crate::metrics::Sources {
                    tail: Some(Arc::clone(&stats)),
                    journal: journal_task.as_ref().map(|_| Arc::clone(&journal_stats)),
                    nhrp: config
                        .sources
                        .nhrp_socket
                        .as_ref()
                        .map(|_| Arc::clone(&nhrp_stats)),
                },
            },
            token.clone(),
        ))
    });
    let hup = tokio::spawn(reload_on_sighup(
        config_path,
        audit_reopen,
        msg_tx.clone(),
        token.clone(),
    ));
    drop(msg_tx);

    let roster_task = tokio::spawn(roster.run(sighting_rx, msg_rx, token.clone()));
    crate::lifecycle::notify_ready();
    tracing::info!(groups = config.groups.len(), "autopeer running");

    shutdown.await;
    tracing::info!("shutting down");
    crate::lifecycle::notify_stopping();
    token.cancel();
    let _ = roster_task.await;
    // The keyring removes its prefix keys before the daemon exits.
    if tokio::time::timeout(Duration::from_secs(5), keyring_task)
        .await
        .is_err()
    {
        tracing::warn!("keyring did not remove its keys in time");
    }
    hup.abort();
    observer.abort();
    if let Some(t) = metrics_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    departures.abort();
    if let Some(t) = nhrp_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ctl_task).await;
    if let Some(t) = journal_task {
        if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(5), t).await {
            tracing::warn!(error = %crate::event::escape(&e.to_string()), "journal source ended with an error");
        }
    }
    merge_task.abort();
    match tokio::time::timeout(Duration::from_secs(5), tail_task).await {
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %crate::event::escape(&e.to_string()), "tail ended with an error")
        }
        Ok(_) => {}
        Err(_) => tracing::warn!("tail did not stop in time"),
    }
    Ok(())
}

/// Whether `[sources] journal` is in force: "on", or "auto" when bird.conf
/// logs to syslog and this machine has a journal.
pub fn journal_wanted(config: &Config, bird_conf: Option<&conf::BirdConf>) -> bool {
    match config.sources.journal {
        JournalMode::Off => false,
        JournalMode::On => true,
        JournalMode::Auto => {
            bird_conf.is_some_and(|bc| bc.logs_to_syslog) && journal::journal_present()
        }
    }
}

/// Starts the journal source when wanted. With "on" a journal that cannot
/// be read stops the daemon; with "auto" it is a warning.
async fn start_journal(
    config: &Config,
    bird_conf: Option<&conf::BirdConf>,
    tx: mpsc::Sender<Sighting>,
    flow: crate::sources::Flow,
    stats: Arc<journal::JournalStats>,
    token: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<Result<(), journal::JournalError>>>, DaemonError> {
    if !journal_wanted(config, bird_conf) {
        return Ok(None);
    }
    match journal::Journal::start(journal::JournalOptions::for_config(config)).await {
        Ok(mut j) => {
            j.set_flow(flow);
            tracing::info!("following BIRD's lines in the systemd journal");
            Ok(Some(tokio::spawn(j.run(tx, stats, token.clone()))))
        }
        Err(e) if config.sources.journal == JournalMode::On => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %crate::event::escape(&e.to_string()), "not following the journal");
            Ok(None)
        }
    }
}

/// bird.conf's `log "FILE"` files, as the roster re-reads bird.conf
/// (starting from `first`): the tail follows BIRD's own log files across a
/// reconfiguration.
fn bird_log_files(
    mut keys: tokio::sync::watch::Receiver<crate::keyring::plan::KeyInputs>,
    first: Vec<PathBuf>,
) -> tokio::sync::watch::Receiver<Vec<PathBuf>> {
    let (tx, rx) = tokio::sync::watch::channel(first);
    tokio::spawn(async move {
        // Ends with the roster (its sender) or the tail (the receiver).
        while keys.changed().await.is_ok() && !tx.is_closed() {
            let files = keys.borrow_and_update().birdconf.log_files.clone();
            tx.send_if_modified(|old| {
                let new = *old != files;
                if new {
                    *old = files;
                }
                new
            });
        }
    });
    rx
}

/// Passes each sighting on to the roster once ([`OneSighting`]); a copy
/// dropped here has arrived, as far as `flow` counts.
pub async fn one_sighting(
    mut rx: mpsc::Receiver<Sighting>,
    tx: mpsc::Sender<Sighting>,
    flow: crate::sources::Flow,
) {
    let mut one = OneSighting::default();
    while let Some(s) = rx.recv().await {
        if !one.admit(&s, std::time::Instant::now()) {
            flow.arrived();
        } else if tx.send(s).await.is_err() {
            return;
        }
    }
}

/// Watches the directories of bird.conf and every file it includes (so that
/// editors' rename-over writes are seen) and sends a debounced
/// [`Msg::BirdConfChanged`] when one of them changes.
fn watch_bird_conf(
    config: &Config,
    tx: mpsc::Sender<Msg>,
) -> Result<notify::RecommendedWatcher, notify::Error> {
    let mut files: Vec<PathBuf> = vec![config.bird.config.clone(), config.bird.include.clone()];
    if let Ok(bc) = conf::scan(&config.bird.config, &config.bird.include) {
        files.extend(bc.files.iter().cloned());
    }
    let known = ConfFiles::new(&files);
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            // BIRD's log, or anything else that lives beside bird.conf,
            // must not cost a rescan per line.
            if !matches!(ev.kind, notify::EventKind::Access(_))
                && ev.paths.iter().any(|p| known.concerns(p))
            {
                let _ = raw_tx.send(());
            }
        }
    })?;
    let mut dirs: Vec<PathBuf> = files.iter().map(|f| parent(f)).collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        if let Err(e) = watcher.watch(d, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %crate::event::escape(&e.to_string()), "cannot watch");
        }
    }
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            tokio::time::sleep(CONF_DEBOUNCE).await;
            while raw_rx.try_recv().is_ok() {}
            if tx.send(Msg::BirdConfChanged).await.is_err() {
                break;
            }
        }
    });
    Ok(watcher)
}

/// Which changed paths concern BIRD's configuration: bird.conf, the owned
/// include, every file they include, and any `*.conf` appearing beside
/// them (a new file matched by a glob include). Compared by canonical
/// directory and file name, since editors replace files by rename.
struct ConfFiles {
    known: std::collections::HashSet<(PathBuf, std::ffi::OsString)>,
}

impl ConfFiles {
    fn new(files: &[PathBuf]) -> ConfFiles {
        ConfFiles {
            known: files.iter().filter_map(|f| Self::key(f)).collect(),
        }
    }

    fn key(path: &Path) -> Option<(PathBuf, std::ffi::OsString)> {
        let dir = parent(path);
        let dir = dir.canonicalize().unwrap_or(dir);
        Some((dir, path.file_name()?.to_os_string()))
    }

    fn concerns(&self, path: &Path) -> bool {
        path.extension().is_some_and(|e| e == "conf")
            || Self::key(path).is_some_and(|k| self.known.contains(&k))
    }
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// SIGHUP: reopen the audit log (at its next line) and re-read the config.
async fn reload_on_sighup(
    path: Option<PathBuf>,
    audit_reopen: Arc<AtomicBool>,
    tx: mpsc::Sender<Msg>,
    token: CancellationToken,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            r = hup.recv() => if r.is_none() { return },
        }
        audit_reopen.store(true, Ordering::Relaxed);
        let Some(path) = path.as_ref() else { continue };
        match Config::load(path) {
            Ok(c) => {
                if tx.send(Msg::Reload(Box::new(c))).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %crate::event::escape(&e.to_string()), "reload refused, the old config stays in force")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConfFiles;
    use std::path::PathBuf;

    #[test]
    fn only_config_files_trigger_a_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let known = ConfFiles::new(&[d.join("bird.conf"), d.join("peers.inc")]);
        assert!(known.concerns(&d.join("bird.conf")));
        assert!(
            known.concerns(&d.join("peers.inc")),
            "an included file of any name"
        );
        assert!(
            known.concerns(&d.join("conf.d/new.conf")),
            "a new glob match"
        );
        assert!(
            !known.concerns(&d.join("bird.log")),
            "BIRD's log beside bird.conf"
        );
        assert!(!known.concerns(&d.join(".bird.conf.swp")));
        assert!(!known.concerns(&PathBuf::from("/")));
    }
}
