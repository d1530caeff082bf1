//! The observer against the real bird2 (`/usr/sbin/bird`) on loopback: the
//! compact table it reads holds what the parsed reply holds, and a state
//! change made in BIRD reaches the roster within the delay man/autopeer.8
//! documents (DESCRIPTION). Needs root; with `CI=true` a missing prerequisite
//! fails the test, elsewhere it skips.

mod common;

use std::time::{Duration, Instant};

use autopeer::bird::client::Connection;
use autopeer::bird::protocols::ProtocolTable;
use autopeer::observer::{self, idle_cap, next_interval};
use autopeer::roster::Msg;
use common::bird::{free_port, loopback_conf, require_bird, RealBird};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(10);

/// A real BIRD with the loopback config and a connection to it; `None`
/// (skip) without root or bird2 outside CI.
async fn start() -> Option<(tempfile::TempDir, RealBird, Connection)> {
    if !require_bird() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let bird = RealBird::start(dir.path(), &loopback_conf(dir.path(), free_port()));
    let conn = Connection::connect(&bird.ctl, T).await.unwrap();
    Some((dir, bird, conn))
}

#[tokio::test]
async fn table_holds_what_the_parsed_reply_holds() {
    let Some((_dir, _bird, mut conn)) = start().await else {
        return;
    };
    let parsed = conn.protocols(false, None).await.unwrap();
    let before = conn.bytes_read();
    let table = conn.protocol_table(None).await.unwrap();
    assert!(conn.bytes_read() > before + 100, "the reply's bytes count");
    assert_eq!(table, ProtocolTable::from(parsed.clone()));
    assert_eq!(table.len(), parsed.len());
    let a = table.get("peer_a").expect("peer_a listed");
    assert_eq!(a.proto, "BGP");
    assert!(a.state == "start" || a.state == "up", "{a:?}");
    assert!(table.get("peer_zz").is_none());
    // A pattern: only the rows it matches; none matching is an empty table.
    let b = conn.protocol_table(Some("peer_b")).await.unwrap();
    assert_eq!(b.iter().map(|r| r.name).collect::<Vec<_>>(), ["peer_b"]);
    assert!(conn
        .protocol_table(Some("nomatch*"))
        .await
        .unwrap()
        .is_empty());
    // The connection is still in step after the streamed replies.
    assert!(conn.show_status().await.unwrap().up);
}

/// The next `Msg::States` from the observer whose row for `name` has
/// `state`, and when it came.
async fn until_state(rx: &mut mpsc::Receiver<Msg>, name: &str, state: &str) -> Instant {
    let give_up = Instant::now() + observer::MAX_INTERVAL * 3;
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no poll showed {name} {state}"))
            .expect("observer stopped");
        match msg {
            Msg::States(t) if t.get(name).is_some_and(|r| r.state == state) => {
                return Instant::now()
            }
            Msg::States(_) => {}
            Msg::StatesFailed(e) => panic!("poll failed: {e}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_reply_larger_than_the_socket_holds_is_read_whole_across_pauses() {
    if !require_bird() {
        return;
    }
    // 8,000 more protocols (disabled: nothing dials): a reply of about
    // 500 KB, more than a UNIX socket holds (about 208 KiB) and than one
    // read asks for (256 KiB), so the streamed read pauses with the socket
    // out of the reactor at least once and must take up the rest after it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("peers")).unwrap();
    let many: String = (0..8000)
        .map(|i| {
            format!(
                "protocol bgp many_{i} from peers {{ neighbor 10.77.{}.{} as 65010; disabled; }}\n",
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    std::fs::write(dir.path().join("peers/many.conf"), many).unwrap();
    let bird = RealBird::start(dir.path(), &loopback_conf(dir.path(), free_port()));
    let mut conn = Connection::connect(&bird.ctl, T).await.unwrap();
    let parsed = conn.protocols(false, None).await.unwrap();
    assert!(parsed.len() > 8000, "{} protocols", parsed.len());
    let before = conn.bytes_read();
    let table = conn.protocol_table(None).await.unwrap();
    let bytes = conn.bytes_read() - before;
    assert!(bytes > 256 * 1024, "{bytes} bytes: not more than one read");
    assert_eq!(table, ProtocolTable::from(parsed));
    assert!(table.get("many_7999").is_some());
    // Twice in a row, and the connection is still in step.
    assert_eq!(conn.protocol_table(None).await.unwrap(), table);
    assert!(conn.show_status().await.unwrap().up);
}

#[tokio::test]
async fn a_state_change_in_bird_is_seen_within_the_documented_delay() {
    let Some((_dir, bird, mut conn)) = start().await else {
        return;
    };
    // What one poll of this BIRD costs, to compute the documented bound:
    // the idle cap for its reply size (2 s here: a few hundred bytes).
    let started = Instant::now();
    let before = conn.bytes_read();
    conn.protocol_table(None).await.unwrap();
    let (took, bytes) = (started.elapsed(), conn.bytes_read() - before);
    let bound = idle_cap(next_interval(took), bytes);
    assert_eq!(bound, observer::MIN_INTERVAL, "a small BIRD: {bytes} bytes");

    let (tx, mut rx) = mpsc::channel(16);
    let (nudge_tx, nudge_rx) = watch::channel(0u64);
    let token = CancellationToken::new();
    let task = tokio::spawn(observer::run(
        bird.ctl.clone(),
        tx,
        Some(nudge_rx),
        token.clone(),
    ));
    // Several polls with nothing changing: the observer is as quiet as it
    // gets for this reply size.
    for _ in 0..4 {
        match tokio::time::timeout(observer::MAX_INTERVAL, rx.recv()).await {
            Ok(Some(Msg::States(t))) => assert!(t.get("peer_a").is_some()),
            other => panic!("want a poll, got {:?}", other.map(|m| m.map(|_| ()))),
        }
    }
    conn.disable("peer_a").await.unwrap();
    let changed = Instant::now();
    let seen = until_state(&mut rx, "peer_a", "down").await;
    // The bound plus one poll and a scheduling margin on a busy machine.
    let limit = bound + Duration::from_secs(3);
    assert!(
        seen - changed <= limit,
        "disable seen after {:?}, documented {:?}",
        seen - changed,
        bound
    );
    // A nudge (the roster configured BIRD) does not stop the polling, and
    // the way back is seen too.
    nudge_tx.send_replace(1);
    conn.enable("peer_a").await.unwrap();
    let changed = Instant::now();
    let seen = until_state(&mut rx, "peer_a", "start").await;
    assert!(
        seen - changed <= limit,
        "enable seen after {:?}",
        seen - changed
    );
    token.cancel();
    tokio::time::timeout(T, task).await.unwrap().unwrap();
}
