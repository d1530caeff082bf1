//! Watches BIRD's protocol states: polls `show protocols` and sends every
//! row to the roster as [`Msg::States`] (docs/facts.md fact 10: session
//! up/down is not logged, so state comes from polling).
//!
//! One connection is kept open and re-opened after a failure. The
//! interval adapts to what a poll costs (docs/facts.md fact 5: `show protocols` takes
//! seconds at 10,000 protocols): [`next_interval`]. It must not decide
//! anything: expiry and events are the roster's.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bird::client::Connection;
use crate::roster::Msg;

/// The shortest interval between polls.
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);
/// The longest interval between polls.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// How long one poll may take before the connection is dropped.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);

/// `max(2 s, 10 × last poll)`, at most 60 s: BIRD spends at most a tenth
/// of its time answering us.
pub fn next_interval(last_poll: Duration) -> Duration {
    last_poll
        .saturating_mul(10)
        .clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// Polls BIRD at `socket` until `shutdown` is cancelled or the roster is gone.
pub async fn run(socket: PathBuf, roster: mpsc::Sender<Msg>, shutdown: CancellationToken) {
    let mut conn: Option<Connection> = None;
    let mut failures = 0u32;
    loop {
        let started = tokio::time::Instant::now();
        let result = poll(&socket, &mut conn).await;
        let took = started.elapsed();
        let msg = match result {
            Ok(rows) => {
                failures = 0;
                Msg::States(rows)
            }
            Err(e) => {
                conn = None;
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(error = %e, "cannot read BIRD's protocol states");
                }
                Msg::StatesFailed(e)
            }
        };
        if roster.send(msg).await.is_err() {
            return;
        }
        let wait = if failures > 0 {
            // 2, 4, 8 ... 60 s while BIRD is away.
            MIN_INTERVAL
                .saturating_mul(1 << failures.min(5).saturating_sub(1))
                .min(MAX_INTERVAL)
        } else {
            next_interval(took)
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn poll(
    socket: &std::path::Path,
    conn: &mut Option<Connection>,
) -> Result<Vec<crate::bird::protocols::Protocol>, String> {
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
    c.protocols(false, None).await.map_err(|e| e.to_string())
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
}
