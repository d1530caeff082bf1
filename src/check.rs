//! `autopeer check`: everything that can be wrong before the daemon runs,
//! each in a sentence that names what to change.
//!
//! Problems make `check` exit 1; warnings are legal but probably unwise.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::bird::client::Connection;
use crate::bird::conf::{self, BirdConf};
use crate::bird::render;
use crate::config::Config;
use crate::keyring::{self, Family};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Severity {
    Problem,
    Warning,
    /// Not wrong, worth knowing (the keyring's state).
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The config key or file the finding is about.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.severity {
            Severity::Problem => "problem",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        write!(f, "{word}: {}: {}", self.key, self.message)
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Problem,
        key: key.into(),
        message: message.into(),
    }
}

fn warning(key: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Warning,
        key: key.into(),
        message: message.into(),
    }
}

/// Loads and checks the config at `path`, bird.conf and BIRD's socket.
pub async fn check(path: &Path) -> Vec<Finding> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            return e
                .problems()
                .into_iter()
                .map(|(k, m)| problem(k, m))
                .collect()
        }
    };
    check_config(&config).await
}

/// Checks a loaded config against bird.conf and the running BIRD.
pub async fn check_config(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    match conf::scan(&config.bird.config, &config.bird.include) {
        Err(e) => out.push(problem("bird.config", e.to_string())),
        Ok(bc) => {
            out.extend(
                config
                    .check_bird(&bc)
                    .into_iter()
                    .map(|p| problem(p.key_path, p.message)),
            );
            for g in &config.groups {
                for n in &bc.neighbors {
                    if g.prefixes.iter().any(|p| p.contains(&n.addr)) {
                        out.push(warning(
                            format!("group.{}.prefixes", g.name),
                            format!(
                                "{} is configured statically ({}:{}); autopeer will not add it",
                                n.addr,
                                n.file.display(),
                                n.line
                            ),
                        ));
                    }
                }
            }
            out.extend(check_keyring(config, &bc));
            for (i, log) in config.sources.logs.iter().enumerate() {
                let written_by_bird = bc.log_files.iter().any(|f| same_file(f, log));
                if !written_by_bird {
                    out.push(warning(
                        format!("sources.logs[{i}]"),
                        format!(
                            "BIRD does not write {} (no `log \"{}\" ...;` in bird.conf): fine for a syslog file, but lines there are unverified",
                            log.display(),
                            log.display()
                        ),
                    ));
                }
                // What the tail will refuse (crate::sources::tail).
                match crate::readsafe::open(log, crate::readsafe::Links::Refuse) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => out.push(problem(
                        format!("sources.logs[{i}]"),
                        format!(
                            "{} {e}: it is not tailed until a regular file replaces it",
                            log.display()
                        ),
                    )),
                    _ => {}
                }
                if !log.exists() {
                    out.push(warning(
                        format!("sources.logs[{i}]"),
                        format!(
                            "{} does not exist yet; it is followed once it appears",
                            log.display()
                        ),
                    ));
                }
            }
        }
    }
    match Connection::connect(&config.bird.socket, Duration::from_secs(5)).await {
        Ok(mut c) => {
            if let Err(e) = c.show_status().await {
                out.push(problem("bird.socket", format!("BIRD answered badly: {e}")));
            }
        }
        Err(e) => out.push(problem(
            "bird.socket",
            format!("cannot reach BIRD at {}: {e}", config.bird.socket.display()),
        )),
    }
    out
}

fn info(key: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Info,
        key: key.into(),
        message: message.into(),
    }
}

/// The keyed listener (`[bird] keyring = "auto"` and some group has a
/// key): every group can be keyed, autopeer may duplicate BIRD's socket,
/// BIRD listens for each family that has keys, and BIRD's per-neighbor
/// keys fit in `net.core.optmem_max` (fact 4) for the roster now and for
/// every keyed group at `max_peers`.
pub fn check_keyring(config: &Config, bc: &BirdConf) -> Vec<Finding> {
    let mut out = Vec::new();
    if config.bird.keyring == crate::config::Keyring::Off {
        return out;
    }
    let plan = match keyring::desired_keys(&config.groups, bc) {
        Ok(p) => p,
        Err(problems) => {
            return problems
                .into_iter()
                .map(|p| problem("bird.keyring", p.to_string()))
                .collect()
        }
    };
    if plan.keys.is_empty() {
        return out;
    }
    let keyed: BTreeSet<&str> = plan.keys.iter().map(|k| k.group.as_str()).collect();
    // Per family: static MD5 neighbors, roster peers of keyed groups,
    // their max_peers (the worst case), and the prefix keys themselves.
    let roster: Vec<(std::net::IpAddr, String)> = crate::readsafe::read_own(&config.bird.include)
        .ok()
        .and_then(|t| render::parse(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.addr, p.group))
        .collect();
    for family in [Family::V4, Family::V6] {
        let ours = plan.keys_of(family).count();
        let statics = bc
            .neighbors
            .iter()
            .filter(|n| n.password && Family::of(n.addr) == family)
            .count();
        let peers = roster
            .iter()
            .filter(|(a, g)| Family::of(*a) == family && keyed.contains(g.as_str()))
            .count();
        if ours == 0 && statics == 0 {
            continue;
        }
        let worst: usize = config
            .groups
            .iter()
            .filter(|g| {
                keyed.contains(g.name.as_str())
                    && g.prefixes.iter().any(|p| Family::of_net(p) == family)
            })
            .map(|g| g.max_peers)
            .sum();
        if let Some(m) = keyring::optmem_problem(statics + peers + ours) {
            out.push(warning(
                "bird.keyring",
                format!("{family}, with the roster now ({statics} static MD5 neighbor(s), {peers} roster peer(s) in keyed groups, {ours} prefix key(s)): {m}"),
            ));
        } else if let Some(m) = keyring::optmem_problem(statics + worst + ours) {
            out.push(warning(
                "bird.keyring",
                format!("{family}, once the keyed groups reach max_peers ({worst} peers): {m}"),
            ));
        }
    }
    if let Err(m) = keyring::check_privileges() {
        out.push(problem("bird.keyring", m));
        return out;
    }
    let pid = match keyring::find_bird_pid(None, &config.bird.socket) {
        Ok(p) => p,
        Err(e) => {
            out.push(problem(
                "bird.keyring",
                format!("cannot find BIRD's process to key its listener: {e}"),
            ));
            return out;
        }
    };
    let listeners = match keyring::probe(pid) {
        Ok(l) => l,
        Err(e) => {
            out.push(problem("bird.keyring", e.to_string()));
            return out;
        }
    };
    for family in [Family::V4, Family::V6] {
        let n = plan.keys_of(family).count();
        if n == 0 {
            continue;
        }
        let here: Vec<&keyring::Listener> =
            listeners.iter().filter(|l| l.family == family).collect();
        if here.is_empty() {
            out.push(problem(
                "bird.keyring",
                keyring::missing_listener_advice(family, n),
            ));
        }
        for l in here {
            out.push(info(
                "bird.keyring",
                format!(
                    "{family} listener {} (BIRD pid {pid}, inode {}): {n} prefix key(s) for group(s) {}",
                    l.local,
                    l.inode,
                    keyed.iter().copied().collect::<Vec<_>>().join(" ")
                ),
            ));
        }
    }
    out
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
