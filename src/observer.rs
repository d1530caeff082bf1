//! Watches BIRD's protocol states: polls `show protocols` and sends every
//! row to the roster as [`Msg::States`] (docs/facts.md fact 10: session
//! up/down is not logged, so state comes from polling).
//!
//! One connection is kept open and re-opened after a failure. The reply
//! is read into a compact [`ProtocolTable`] as it arrives (never the
//! whole 2 MB of 10,000 rows at once). The interval adapts
//! ([`Pacer`]): to what a poll costs (docs/facts.md fact 5: `show
//! protocols` takes seconds at 10,000 protocols on some machines, and
//! every poll costs this daemon CPU and wake-ups in proportion to the
//! reply's size), and to whether anything changed: unchanged polls double
//! the interval up to a cap that grows with the reply's size; a change,
//! and a `nudge` (the roster configured BIRD or re-read bird.conf), bring
//! it back to the shortest. man/autopeer.8 (DESCRIPTION) states the delay.
//! It must not decide anything: expiry and events are the roster's.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::bird::client::Connection;
use crate::bird::protocols::ProtocolTable;
use crate::roster::Msg;

/// The shortest interval between polls.
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);
/// The longest interval between polls.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// While nothing changes, the observer reads at most about this many bytes
/// of reply per second: the idle interval grows to reply size / this.
/// BIRD's row is about 80 bytes: a reply of up to 32 KiB (about 400
/// protocols) is still read every 2 s, 1,000 protocols about every 5 s,
/// 10,000 (800 KB) about every 50 s.
pub const IDLE_BYTES_PER_SEC: u64 = 16 * 1024;
/// How long one poll may take before the connection is dropped.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);

/// `max(2 s, 10 × last poll)`, at most 60 s: BIRD spends at most a tenth
/// of its time answering us.
pub fn next_interval(last_poll: Duration) -> Duration {
    last_poll
        .saturating_mul(10)
        .clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// The longest the observer waits while nothing changes, for a reply of
/// `bytes`: `max(base, bytes / IDLE_BYTES_PER_SEC)`, within 2 to 60 s.
pub fn idle_cap(base: Duration, bytes: u64) -> Duration {
    let by_size = Duration::from_millis(bytes.saturating_mul(1000) / IDLE_BYTES_PER_SEC);
    by_size.max(base).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// The polling schedule: pure, driven by what each poll cost and saw.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    last_digest: Option<u64>,
    /// Polls in a row that saw no change.
    quiet: u32,
}

impl Pacer {
    /// After a good poll that took `took`, read `bytes` of reply and saw
    /// `digest` ([`ProtocolTable::digest`]): how long until the next.
    /// The first poll and every change give the cost-based interval;
    /// each unchanged poll doubles it, up to [`idle_cap`].
    pub fn polled(&mut self, took: Duration, bytes: u64, digest: u64) -> Duration {
        let base = next_interval(took);
        if self.last_digest == Some(digest) {
            self.quiet = self.quiet.saturating_add(1);
        } else {
            self.quiet = 0;
        }
        self.last_digest = Some(digest);
        let grown = base.saturating_mul(1u32 << self.quiet.min(6));
        grown.min(idle_cap(base, bytes)).max(base)
    }

    /// Something outside is about to change BIRD's protocols (autopeer's
    /// own `configure`): poll at the shortest interval again.
    pub fn nudge(&mut self) {
        self.quiet = 0;
        self.last_digest = None;
    }
}

/// Polls BIRD at `socket` until `shutdown` is cancelled or the roster is
/// gone. Each change of `nudge` (the roster's published inputs: it
/// configured BIRD, re-read bird.conf or reloaded) cuts the current wait
/// to [`MIN_INTERVAL`] after the last poll.
pub async fn run<T>(
    socket: PathBuf,
    roster: mpsc::Sender<Msg>,
    mut nudge: Option<watch::Receiver<T>>,
    shutdown: CancellationToken,
) {
    let mut conn: Option<Connection> = None;
    let mut failures = 0u32;
    let mut pacer = Pacer::default();
    loop {
        let started = tokio::time::Instant::now();
        let result = poll(&socket, &mut conn).await;
        let took = started.elapsed();
        let (msg, wait) = match result {
            Ok((table, bytes)) => {
                failures = 0;
                let wait = pacer.polled(took, bytes, table.digest());
                (Msg::States(table), wait)
            }
            Err(e) => {
                conn = None;
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(error = %e, "cannot read BIRD's protocol states");
                }
                pacer.nudge();
                // 2, 4, 8 ... 60 s while BIRD is away.
                let wait = MIN_INTERVAL
                    .saturating_mul(1 << failures.min(5).saturating_sub(1))
                    .min(MAX_INTERVAL);
                (Msg::StatesFailed(e), wait)
            }
        };
        if roster.send(msg).await.is_err() {
            return;
        }
        let mut deadline = started + took + wait;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => break,
                changed = changed(&mut nudge) => {
                    if !changed {
                        nudge = None;
                        continue;
                    }
                    pacer.nudge();
                    deadline = deadline.min(started + took + MIN_INTERVAL);
                }
            }
        }
    }
}

/// True at the next change of `rx`; false once its sender is gone; never
/// without a receiver.
async fn changed<T>(rx: &mut Option<watch::Receiver<T>>) -> bool {
    match rx {
        Some(r) => r.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// One poll: the table and the bytes of reply it came from.
async fn poll(
    socket: &std::path::Path,
    conn: &mut Option<Connection>,
) -> Result<(ProtocolTable, u64), String> {
    if conn.is_none() {
        *conn = Some(
            Connection::connect(socket, POLL_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let Some(c) = conn.as_mut() else {
        return Err("no connection".into());
    };
    let before = c.bytes_read();
    let table = c.protocol_table(None).await.map_err(|e| e.to_string())?;
    Ok((table, c.bytes_read().saturating_sub(before)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_adapts_to_poll_cost() {
        assert_eq!(next_interval(Duration::from_millis(5)), MIN_INTERVAL);
        assert_eq!(
            next_interval(Duration::from_millis(300)),
            Duration::from_secs(3)
        );
        assert_eq!(
            next_interval(Duration::from_secs(3)),
            Duration::from_secs(30)
        );
        assert_eq!(next_interval(Duration::from_secs(8)), MAX_INTERVAL);
        assert_eq!(next_interval(Duration::MAX), MAX_INTERVAL);
    }

    #[test]
    fn idle_interval_grows_with_reply_size_and_quiet_polls() {
        let fast = Duration::from_millis(15);
        // 10,000 protocols: about 800 KB of reply.
        let big = 800_000;
        let mut p = Pacer::default();
        let waits: Vec<u64> = (0..8).map(|_| p.polled(fast, big, 7).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 48, 48, 48]);
        // Never more than a minute, however large the reply.
        let mut huge = Pacer::default();
        let waits: Vec<u64> = (0..8)
            .map(|_| huge.polled(fast, 50_000_000, 7).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        // A change: back to the shortest, then growing again.
        assert_eq!(p.polled(fast, big, 8), MIN_INTERVAL);
        assert_eq!(p.polled(fast, big, 8), Duration::from_secs(4));
        // A nudge (autopeer configured BIRD): the shortest again.
        p.nudge();
        assert_eq!(p.polled(fast, big, 8), MIN_INTERVAL);
        // A small BIRD (up to 32 KiB of reply) is polled every 2 s, as
        // before, changed or not.
        let mut small = Pacer::default();
        for _ in 0..10 {
            assert_eq!(small.polled(fast, 20_000, 1), MIN_INTERVAL);
        }
        // 1,000 protocols, 80 KB: at most about 5 s.
        let mut mid = Pacer::default();
        let waits: Vec<u64> = (0..5)
            .map(|_| mid.polled(fast, 80_000, 1).as_millis() as u64)
            .collect();
        assert_eq!(waits, [2000, 4000, 4882, 4882, 4882]);
        // A slow BIRD: never faster than 10 x its poll time.
        let mut slow = Pacer::default();
        assert_eq!(
            slow.polled(Duration::from_secs(3), 20_000, 1),
            Duration::from_secs(30)
        );
        assert_eq!(
            slow.polled(Duration::from_secs(3), 20_000, 1),
            Duration::from_secs(30)
        );
    }
}
