//! The refusal audit budget: a refused client knocks every few seconds,
//! and a flood of forged addresses in a shared syslog file must not grow
//! the audit log without bound (docs/facts.md fact 14). Pure: callers pass
//! `now`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::event::Event;

/// How long the same refusal of the same address is not repeated in the
/// audit log.
const REFUSAL_QUIET: Duration = Duration::from_secs(600);
/// At most this many remembered refusals (a spoofed flood must not grow
/// memory without bound).
const REFUSAL_MEMORY: usize = 10_000;
/// At most this many refusals are audited per [`REFUSAL_WINDOW`]; the rest
/// are counted and summed up in one line.
const REFUSAL_BUDGET: u32 = 60;
const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Budget {
    refusals: HashMap<(IpAddr, String), Instant>,
    /// When the window began, refusals audited in it, and refusals not
    /// audited.
    window: (Instant, u32, u64),
}

impl Budget {
    pub fn new(now: Instant) -> Budget {
        Budget {
            refusals: HashMap::new(),
            window: (now, 0, 0),
        }
    }

    /// True when a refusal of `addr` for `reason` gets its own audit line:
    /// not the same refusal within `REFUSAL_QUIET`, and within
    /// `REFUSAL_BUDGET` (else it is counted for the window's summary,
    /// which goes to `out`).
    pub fn allows(
        &mut self,
        addr: IpAddr,
        reason: String,
        now: Instant,
        out: &mut Vec<Event>,
    ) -> bool {
        let key = (addr, reason);
        if let Some(t) = self.refusals.get(&key) {
            if now.duration_since(*t) < REFUSAL_QUIET {
                tracing::debug!(peer = %addr, reason = ?crate::event::escape(&key.1), "refused again");
                return false;
            }
        }
        if self.refusals.len() >= REFUSAL_MEMORY {
            self.refusals
                .retain(|_, t| now.duration_since(*t) < REFUSAL_QUIET);
            if self.refusals.len() >= REFUSAL_MEMORY {
                self.refusals.clear();
            }
        }
        let reason = crate::event::escape(&key.1).into_owned();
        self.refusals.insert(key, now);
        self.close_window(now, out);
        if self.window.1 >= REFUSAL_BUDGET {
            self.window.2 += 1;
            tracing::debug!(peer = %addr, ?reason, "refused (over the audit budget)");
            return false;
        }
        self.window.1 += 1;
        true
    }

    /// Ends the audit window once it has run its time, with one line for
    /// the refusals it did not audit.
    pub fn close_window(&mut self, now: Instant, out: &mut Vec<Event>) {
        let (start, _, unaudited) = self.window;
        if now.duration_since(start) < REFUSAL_WINDOW {
            return;
        }
        self.window = (now, 0, 0);
        if unaudited > 0 {
            out.push(Event::RefusalsNotAudited {
                count: unaudited,
                seconds: now.duration_since(start).as_secs(),
            });
        }
    }
}
