//! What the roster knows about each peer's session in BIRD, and when a
//! peer expires. Pure.

use std::time::{Duration, SystemTime};

use crate::bird::protocols::{BgpState, ProtoState, Protocol};

/// What the roster knows about one peer's session in BIRD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtime {
    /// BIRD's protocol state (`up`, `start`, ...) at the last poll; `None`
    /// when the last poll did not list the protocol (or none ran yet).
    pub state: Option<String>,
    /// The BGP state word that opens BIRD's Info column (`Established`,
    /// `Active`), if any.
    pub info: Option<String>,
    /// The Info column after the state word (`Socket: Connection refused`).
    pub message: Option<String>,
    /// When the session last became Established (persisted).
    pub last_established: Option<SystemTime>,
    /// When the session was first seen down after being Established
    /// (persisted); `None` while up, or if it never was up.
    pub down_since: Option<SystemTime>,
}

impl Runtime {
    /// Up means BIRD's state `up` and BGP `Established`.
    pub fn is_up(&self) -> bool {
        self.state.as_deref() == Some("up") && self.info.as_deref() == Some("Established")
    }

    /// `up Established`, `start Active`, `absent`.
    pub fn describe(&self) -> String {
        match (&self.state, &self.info) {
            (Some(s), Some(i)) => format!("{s} {i}"),
            (Some(s), None) => s.clone(),
            (None, _) => "absent".into(),
        }
    }
}

/// Folds one poll's row for a peer (`None`: not listed) into its runtime
/// facts. Returns true when a persisted fact (`last_established`,
/// `down_since`) changed.
pub fn observe(rt: &mut Runtime, row: Option<&Protocol>, now: SystemTime) -> bool {
    let Some(p) = row else {
        rt.state = None;
        rt.info = None;
        rt.message = None;
        return false;
    };
    rt.state = Some(p.state.as_str().to_string());
    let word = p.bgp_state_word();
    rt.info = word.as_ref().map(|w| w.as_str().to_string());
    rt.message = p.info_message().map(str::to_string);
    let up = p.state == ProtoState::Up && word == Some(BgpState::Established);
    if up {
        let changed = rt.down_since.is_some() || rt.last_established.is_none();
        if changed {
            rt.last_established = Some(now);
        }
        rt.down_since = None;
        changed
    } else if rt.last_established.is_some() && rt.down_since.is_none() {
        rt.down_since = Some(now);
        true
    } else {
        false
    }
}

/// When a peer that is not up expires: `expire` after it went down, or,
/// if it never was Established, after its admission; never before
/// `floor` + `expire` (the start of the clock when the state file was
/// lost). `None` while the session is up.
pub fn expires_at(
    admitted: SystemTime,
    rt: &Runtime,
    expire: Duration,
    floor: SystemTime,
) -> Option<SystemTime> {
    if rt.is_up() {
        return None;
    }
    let from = rt.down_since.unwrap_or(admitted).max(floor);
    from.checked_add(expire)
}

/// `7d`, `1h30m`, `45s`: an expiry period for audit lines.
pub fn short_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}
