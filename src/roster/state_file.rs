//! `[agent] state`: the persisted runtime facts,
//! `[peers.NAME] last_established = "RFC3339"`. Parsing and rendering are
//! pure; [`read`] and [`fn@write`] do the file I/O.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::facts::Facts;
use super::runtime::Runtime;
use crate::event::rfc3339;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    #[serde(default)]
    peers: BTreeMap<String, PeerFacts>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PeerFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_established: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    down_since: Option<String>,
}

fn parse_time(s: Option<&String>) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s?).ok()
}

/// The runtime facts in `text`, or why it is unreadable.
pub fn parse(text: &str) -> Result<HashMap<String, Runtime>, toml::de::Error> {
    let f = toml::from_str::<StateFile>(text)?;
    Ok(f.peers
        .into_iter()
        .map(|(name, facts)| {
            (
                name,
                Runtime {
                    last_established: parse_time(facts.last_established.as_ref()),
                    down_since: parse_time(facts.down_since.as_ref()),
                    ..Runtime::default()
                },
            )
        })
        .collect())
}

/// The state file's text for `runtime` (only peers with a persisted fact).
pub fn render(runtime: &Facts) -> Result<String, toml::ser::Error> {
    let file = StateFile {
        peers: runtime
            .iter()
            .filter(|(_, rt)| rt.last_established.is_some() || rt.down_since.is_some())
            .map(|(n, rt)| {
                (
                    n.to_owned(),
                    PeerFacts {
                        last_established: rt.last_established.map(rfc3339),
                        down_since: rt.down_since.map(rfc3339),
                    },
                )
            })
            .collect(),
    };
    let text = toml::to_string(&file)?;
    Ok(format!(
        "# autopeer runtime facts; managed by autopeer, safe to delete\n{text}"
    ))
}

/// Reads the state file: `None` when it is missing or unreadable (every
/// expiry clock then restarts).
pub fn read(path: &Path) -> Option<String> {
    match crate::fsx::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %crate::event::escape(&e.to_string()), path = %path.display(), "cannot read the state file; expiry clocks restart");
            }
            None
        }
    }
}

/// Writes the state file (blocking: call it off the runtime's workers).
pub fn write(path: &Path, text: &str) {
    if let Err(e) = crate::apply::write_atomic(path, text.as_bytes()) {
        tracing::warn!(error = %crate::event::escape(&e.to_string()), path = %path.display(), "cannot write the state file");
    }
}
