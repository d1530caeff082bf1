//! Departure: a spoke that left is noticed by its binding going from
//! nhrpd's cache (why that signal: [`crate::sources::nhrp::vty`]). Pure:
//! part of the core.
//!
//! A peer of a group with `depart` is *absent* from the first cache read
//! that lacks its address; it is removed once it has been absent for
//! `depart` while BIRD's last poll (fresh, and listing it) shows its
//! session not Established. A peer whose session is up has not left,
//! whatever the cache says (a static map, a cache read mid-restart). A
//! read that fails restarts every clock: a cache that cannot be read
//! departs no one, and a restarted nhrpd gets `depart` for its spokes to
//! register again. The address is not quieted: the spoke's next
//! registration is asked about by nhrpd and admitted like a new one.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::core::{Core, Now};
use super::expiry::POLL_FRESH;
use super::runtime::short_duration;
use crate::bird::render::Peer;
use crate::event::Event;

/// Since when a peer has been missing from nhrpd's cache.
#[derive(Debug, Clone, Copy)]
pub struct Absence {
    pub since: Instant,
    /// The dry-run line was logged for this absence.
    pub reported: bool,
}

impl Core {
    /// Folds one read of nhrpd's cache (the bound addresses, or why it
    /// could not be read) into the absence clocks and removes the peers
    /// whose `depart` has run out, in one apply.
    pub fn observe_nhrp(&mut self, bound: Result<BTreeSet<IpAddr>, String>, now: Now) {
        let Ok(bound) = bound else {
            self.absent.clear();
            return;
        };
        let bird_fresh = self
            .last_poll_ok
            .is_some_and(|t| now.mono.saturating_duration_since(t) < POLL_FRESH);
        let mut due: Vec<(Peer, Duration)> = Vec::new();
        let mut watched = BTreeSet::new();
        for p in self.book.peers.iter() {
            let Some(depart) = self
                .config
                .groups
                .iter()
                .find(|g| g.name == p.group)
                .and_then(|g| g.depart)
            else {
                continue;
            };
            watched.insert(p.name.clone());
            if bound.contains(&p.addr) {
                self.absent.remove(&p.name);
                continue;
            }
            let a = self.absent.entry(p.name.clone()).or_insert(Absence {
                since: now.mono,
                reported: false,
            });
            let down = self
                .runtime
                .get(&p.name)
                .is_some_and(|rt| rt.state.is_some() && !rt.is_up());
            if bird_fresh && down && now.mono.saturating_duration_since(a.since) >= depart {
                due.push((p.clone(), depart));
            }
        }
        self.absent.retain(|n, _| watched.contains(n));
        if due.is_empty() {
            return;
        }
        if self.config.agent.dry_run {
            for (p, _) in &due {
                if let Some(a) = self.absent.get_mut(&p.name) {
                    if !a.reported {
                        a.reported = true;
                        tracing::info!(name = %p.name, "would remove: departed [dry run]");
                    }
                }
            }
            return;
        }
        for (p, depart) in due {
            self.book.peers.remove(&p.name);
            self.runtime.remove(&p.name);
            self.absent.remove(&p.name);
            self.removed_since_apply += 1;
            self.out.push(Event::removing(
                &p,
                format!(
                    "departed: no NHRP binding in nhrpd's cache for {}",
                    short_duration(depart)
                ),
            ));
        }
        self.changed(now.mono, Duration::ZERO);
        self.state_changed(now.mono);
    }
}
