//! `autopeer check`: everything that can be wrong before the daemon runs,
//! each in a sentence that names what to change.
//!
//! Problems make `check` exit 1; warnings are legal but probably unwise.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::bird::client::Connection;
use crate::bird::conf;
use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Severity {
    Problem,
    Warning,
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

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
