//! An operator's hand in the roster's files: bird.conf rescans, edits of
//! the owned include, a new config. Pure: part of the core; the task reads
//! the files.

use std::sync::Arc;
use std::time::Duration;

use super::core::{Core, Now, BACKOFF_MIN};
use super::store::Store;
use crate::admission::Limits;
use crate::bird::conf::BirdConf;
use crate::bird::render::{self, Peer};
use crate::config::Config;
use crate::event::Event;

impl Core {
    /// bird.conf was scanned again.
    pub fn rescanned(&mut self, birdconf: BirdConf) {
        self.birdconf = birdconf;
    }

    /// After a rescan and a read of the include: drop peers now configured
    /// by hand, and retry a stuck apply now (BIRD's config may have been
    /// fixed: not at the backoff's deadline; `schedule` keeps the earlier
    /// one).
    pub fn after_rescan(&mut self, now: Now) {
        self.drop_now_static(now);
        if self.dirty {
            self.backoff = BACKOFF_MIN;
            self.schedule(now.mono, Duration::ZERO);
        }
    }

    /// The owned include as read now: an operator's edit shows as a
    /// deleted block, a removal.
    pub fn include_read(&mut self, text: String, now: Now) {
        let digest = super::core::TextDigest::of(&text);
        if self.last_text == Some(digest) {
            return;
        }
        let parsed = match render::parse(&text) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %crate::event::escape(&e.to_string()), "own include edited into something unreadable; keeping the roster in memory");
                return;
            }
        };
        let kept: Store = parsed.into_iter().collect();
        let removed: Vec<Peer> = self
            .book
            .peers
            .iter()
            .filter(|p| !kept.contains(&p.name))
            .collect();
        for p in removed {
            self.out.push(Event::removing(
                &p,
                "deleted from the include by hand".to_string(),
            ));
        }
        self.book.peers = kept;
        self.last_text = Some(digest);
        self.changed(now.mono, Duration::ZERO);
    }

    /// A neighbor an operator has since configured by hand is no longer
    /// autopeer's: drop autopeer's copy so BIRD holds one protocol for it.
    fn drop_now_static(&mut self, now: Now) {
        let statics: Vec<(String, String)> = self
            .book
            .peers
            .iter()
            .filter_map(|p| {
                self.birdconf
                    .static_neighbor(p.addr, p.iface.as_deref())
                    .map(|n| (p.name.clone(), format!("{}:{}", n.file.display(), n.line)))
            })
            .collect();
        for (name, place) in statics {
            if let Some(p) = self.book.peers.remove(&name) {
                self.out.push(Event::removing(
                    &p,
                    format!("now configured statically at {place}"),
                ));
                self.changed(now.mono, Duration::ZERO);
            }
        }
    }

    /// A new config: rate buckets start afresh.
    pub fn reload(&mut self, config: Arc<Config>) {
        tracing::info!("config reloaded");
        self.config = config;
        self.memory.limits = Limits::new();
    }
}
