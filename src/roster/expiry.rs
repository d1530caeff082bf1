//! What BIRD says of each session, and expiry (module doc of
//! [`super::core`]). Pure: part of the core.

use std::time::{Duration, SystemTime};

use super::core::{Core, Now};
use super::runtime::{expires_at, observe, short_duration};
use crate::bird::protocols::ProtocolRows;
use crate::bird::render::Peer;
use crate::event::Event;

/// Expiry needs a poll of BIRD at most this old.
pub(super) const POLL_FRESH: Duration = Duration::from_secs(300);
/// A poll that adds at least this many facts, and a quarter of them all,
/// rebuilds the facts' map ([`super::facts::Facts::compact`]).
const COMPACT_AFTER: usize = 256;

impl Core {
    /// Folds one poll of BIRD into the peers' runtime facts; emits
    /// [`Event::StateChanged`] when a session goes up or down (not on the
    /// first poll after start, which only learns where things stand).
    pub fn observe_states<R: ProtocolRows + ?Sized>(&mut self, rows: &R, now: Now) {
        self.polls += 1;
        self.last_poll = Some(now.wall);
        self.last_poll_ok = Some(now.mono);
        self.bird_error = None;
        let table = rows.to_table();
        let mut persist = false;
        let known = self.runtime.len();
        for name in self.book.peers.names() {
            let row = table.get(name);
            // The same row as last time changes nothing: skip the work
            // (10,000 rows every poll).
            let same = match row {
                Some(r) => self.runtime.shows(
                    name,
                    r.state,
                    r.bgp_state_word().as_ref().map(|w| w.as_str()),
                    r.info_message(),
                ),
                None => !self.runtime.listed(name),
            };
            if same {
                continue;
            }
            let row = row.map(|r| r.to_protocol());
            let first = self.polls <= 1;
            let (changed, event) = self.runtime.update(name, |rt| {
                let before_known = rt.state.is_some();
                let before_up = rt.is_up();
                let before = rt.describe();
                let changed = observe(rt, row.as_ref(), now.wall);
                let after_up = rt.is_up();
                let event = (!first && before_up != after_up && (before_known || after_up))
                    .then(|| (before, rt.describe()));
                (changed, event)
            });
            persist |= changed;
            if let Some((from, to)) = event {
                self.out.push(Event::StateChanged {
                    name: name.to_string(),
                    from,
                    to,
                });
            }
        }
        // Many facts added at once (the first poll): rebuild the map full.
        let added = self.runtime.len() - known;
        if added >= COMPACT_AFTER && added * 4 > self.runtime.len() {
            self.runtime.compact();
        }
        // Facts of peers that left the roster are dropped.
        let before = self.runtime.len();
        let peers = &self.book.peers;
        self.runtime.retain(|n| peers.contains(n));
        persist |= self.runtime.len() != before;
        if persist {
            self.state_changed(now.mono);
        }
    }

    /// When `peer` expires, if its group expires peers at all.
    pub(super) fn expiry_of(&self, peer: &Peer) -> Option<(SystemTime, Duration)> {
        let expire = self
            .config
            .groups
            .iter()
            .find(|g| g.name == peer.group)?
            .expire?;
        let admitted = humantime::parse_rfc3339_weak(&peer.admitted).ok()?;
        let rt = self.runtime.get(&peer.name).unwrap_or_default();
        Some((expires_at(admitted, &rt, expire, self.clock_floor)?, expire))
    }

    /// The periodic check: closes the refusal audit window and removes
    /// every peer whose expiry time has passed, in one apply.
    pub fn tick(&mut self, now: Now) {
        self.budget.close_window(now.mono, &mut self.out);
        let fresh = self
            .last_poll_ok
            .is_some_and(|t| now.mono.saturating_duration_since(t) < POLL_FRESH);
        if !fresh {
            return;
        }
        let due: Vec<(Peer, Duration)> = self
            .book
            .peers
            .iter()
            // Only peers the last poll listed: one missing from BIRD (its
            // config broken elsewhere, not yet loaded) has no known state.
            .filter(|p| self.runtime.listed(&p.name))
            .filter_map(|p| match self.expiry_of(&p) {
                Some((at, expire)) if at <= now.wall => Some((p, expire)),
                _ => None,
            })
            .collect();
        if due.is_empty() {
            return;
        }
        if self.config.agent.dry_run {
            for (p, _) in &due {
                tracing::info!(name = %p.name, "would expire [dry run]");
            }
            return;
        }
        for (p, expire) in due {
            self.book.peers.remove(&p.name);
            self.runtime.remove(&p.name);
            self.removed_since_apply += 1;
            self.out.push(Event::removing(
                &p,
                format!("not Established for {}", short_duration(expire)),
            ));
        }
        self.changed(now.mono, Duration::ZERO);
        self.state_changed(now.mono);
    }
}
