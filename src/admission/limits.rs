//! The rate limit: per-group token buckets. Pure: callers pass `now`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Per-group token buckets: `rate` admissions per minute, burst `rate`.
/// A bucket starts full.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    buckets: HashMap<String, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, scaled by 60 s in nanoseconds per minute: one token is
    /// `NANOS_PER_MINUTE` units, and `rate` units accrue per nanosecond.
    units: u128,
    last: Instant,
}

const NANOS_PER_MINUTE: u128 = 60_000_000_000;

impl Limits {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one admission from `group`'s bucket if one is available.
    /// `rate = None` is unlimited and always succeeds.
    pub fn try_take(&mut self, group: &str, rate: Option<u32>, now: Instant) -> bool {
        let Some(rate) = rate else { return true };
        let cap = u128::from(rate) * NANOS_PER_MINUTE;
        let b = self.buckets.entry(group.to_string()).or_insert(Bucket {
            units: cap,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_nanos();
        b.units = b
            .units
            .saturating_add(elapsed.saturating_mul(u128::from(rate)))
            .min(cap);
        b.last = b.last.max(now);
        if b.units >= NANOS_PER_MINUTE {
            b.units -= NANOS_PER_MINUTE;
            true
        } else {
            false
        }
    }

    /// How long until `group` has a token again (zero if it has one now).
    pub fn wait_time(&self, group: &str, rate: Option<u32>, now: Instant) -> Duration {
        let (Some(rate), Some(b)) = (rate, self.buckets.get(group)) else {
            return Duration::ZERO;
        };
        if rate == 0 {
            return Duration::MAX;
        }
        let elapsed = now.saturating_duration_since(b.last).as_nanos();
        let units = b
            .units
            .saturating_add(elapsed.saturating_mul(u128::from(rate)));
        if units >= NANOS_PER_MINUTE {
            return Duration::ZERO;
        }
        let nanos = (NANOS_PER_MINUTE - units).div_ceil(u128::from(rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Drops the buckets of groups not in `names` (after a reload).
    pub fn retain_groups(&mut self, names: &[&str]) {
        self.buckets.retain(|g, _| names.contains(&g.as_str()));
    }
}
