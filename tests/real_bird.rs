//! Every typed command of `bird::client::Connection` against the real bird2
//! (`/usr/sbin/bird`), on loopback, in a temp directory. Needs root; with
//! `CI=true` a missing prerequisite fails the test, elsewhere it skips.

mod common;

use std::time::Duration;

use autopeer::bird::client::{
    ChangeOutcome, ClientError, ConfigureOutcome, Connection, ProtocolChange,
};
use autopeer::bird::reply::{AsyncLine, Code};
use common::bird::{free_port, loopback_conf, require_bird, RealBird};

const T: Duration = Duration::from_secs(10);

async fn start() -> (tempfile::TempDir, RealBird, Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bird = RealBird::start(dir.path(), &loopback_conf(dir.path(), free_port()));
    let conn = Connection::connect(&bird.ctl, T).await.expect("connect");
    (dir, bird, conn)
}

/// Wait until no reconfiguration is running (`0013 Daemon is up and running`).
async fn wait_idle(conn: &mut Connection) {
    for _ in 0..100 {
        if conn.show_status().await.expect("show status").up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("bird stayed busy");
}

#[tokio::test]
async fn status_and_protocols() {
    if !require_bird() {
        return;
    }
    let (_dir, bird, mut conn) = start().await;
    assert_eq!(conn.version().product, "BIRD");
    assert_eq!(conn.version().major, 2);

    let st = conn.show_status().await.unwrap();
    assert_eq!(st.router_id.to_string(), "10.0.0.1");
    assert!(st.up, "{st:?}");
    assert_eq!(st.version, format!("BIRD {}", conn.version().text));
    assert!(st.hostname.is_some());
    assert!(!st.server_time.is_empty() && !st.last_reboot.is_empty());

    let r = conn.show_protocols(false, None).await.unwrap();
    assert_eq!(r.lines[0].code, Code(2002));
    assert!(r.lines[0].text.starts_with("Name"));
    let text = r.text();
    for name in ["device1", "peer_a", "peer_b"] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    assert_eq!(r.final_code(), Some(Code(0)));

    let r = conn.show_protocols(true, None).await.unwrap();
    assert!(r.has_code(Code(1006)));
    assert!(r.text().contains("BGP state:"));
    assert!(r.text().contains("first loopback peer"));

    let r = conn.show_protocols(false, Some("peer_*")).await.unwrap();
    let rows: Vec<&str> = r
        .lines
        .iter()
        .skip(1)
        .filter(|l| l.code == Code(1002))
        .map(|l| l.text.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(rows, ["peer_a", "peer_b"], "{r:?}");

    let r = conn.show_protocols(true, Some("peer_b")).await.unwrap();
    assert!(r.text().contains("127.0.0.3"));
    assert!(!r.text().contains("127.0.0.2"));

    let err = conn
        .show_protocols(false, Some("nomatch*"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Bird {
                code: Code(8003),
                ..
            }
        ),
        "{err}"
    );

    let err = conn.command("foo").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Bird { code: Code(9001), text, .. } if text.contains("syntax error")),
        "{err}"
    );
    // The connection is still usable after BIRD errors.
    assert!(conn.show_status().await.unwrap().up);
    drop(conn);
    drop(bird);
}

#[tokio::test]
async fn configure_family() {
    if !require_bird() {
        return;
    }
    let (dir, bird, mut conn) = start().await;
    let conf = bird.conf.clone();

    let ok = conn.configure_check().await.unwrap();
    assert_eq!(ok.outcome, ConfigureOutcome::ConfigOk);
    assert_eq!(ok.config_file.as_deref(), Some(conf.as_path()));

    // A syntax error planted on line 3 of an included file.
    let bad = dir.path().join("peers/bad.conf");
    std::fs::write(
        &bad,
        "protocol bgp peer_c from peers {\n  neighbor 127.0.0.4 as 65004;\n  passive passive;\n}\n",
    )
    .unwrap();
    let err = conn.configure_check().await.unwrap_err();
    match &err {
        ClientError::ConfigFile { error, .. } => {
            assert_eq!(error.file, bad);
            assert_eq!(error.line, Some(3));
            assert!(error.col.is_some());
            assert!(error.message.contains("syntax error"), "{error}");
        }
        other => panic!("want ConfigFile, got {other}"),
    }
    let err = conn.configure().await.unwrap_err();
    assert!(matches!(err, ClientError::ConfigFile { .. }), "{err}");

    let missing = dir.path().join("nonexistent.conf");
    let err = conn.configure_check_file(&missing).await.unwrap_err();
    match &err {
        ClientError::ConfigFile { error, .. } => {
            assert_eq!(error.file, missing);
            assert_eq!(error.line, None);
        }
        other => panic!("want ConfigFile, got {other}"),
    }

    // Fix the file: check passes, configure adds the protocol.
    std::fs::write(
        &bad,
        "protocol bgp peer_c from peers {\n  neighbor 127.0.0.4 as 65004;\n}\n",
    )
    .unwrap();
    assert_eq!(
        conn.configure_check().await.unwrap().outcome,
        ConfigureOutcome::ConfigOk
    );
    let ok = conn.configure().await.unwrap();
    assert!(
        matches!(
            ok.outcome,
            ConfigureOutcome::Reconfigured | ConfigureOutcome::InProgress
        ),
        "{ok:?}"
    );
    wait_idle(&mut conn).await;
    assert!(conn
        .show_protocols(false, Some("peer_c"))
        .await
        .unwrap()
        .text()
        .contains("peer_c"));

    // Timeout, confirm, confirm again.
    let ok = conn.configure_timeout(30).await.unwrap();
    assert_eq!(ok.undo_scheduled_secs, Some(30));
    assert!(matches!(
        ok.outcome,
        ConfigureOutcome::Reconfigured | ConfigureOutcome::InProgress
    ));
    wait_idle(&mut conn).await;
    assert_eq!(
        conn.configure_confirm().await.unwrap().outcome,
        ConfigureOutcome::Confirmed
    );
    assert_eq!(
        conn.configure_confirm().await.unwrap().outcome,
        ConfigureOutcome::NothingToDo
    );

    // Undo goes back to the previous in-memory config (without peer_c).
    std::fs::remove_file(&bad).unwrap();
    conn.configure().await.unwrap();
    wait_idle(&mut conn).await;
    let err = conn
        .show_protocols(false, Some("peer_c"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Bird {
                code: Code(8003),
                ..
            }
        ),
        "{err}"
    );
    let ok = conn.configure_undo().await.unwrap();
    assert!(ok.undo_requested);
    assert!(
        matches!(
            ok.outcome,
            ConfigureOutcome::Reconfigured | ConfigureOutcome::InProgress
        ),
        "{ok:?}"
    );
    wait_idle(&mut conn).await;
    let r = conn.show_protocols(false, Some("peer_c")).await.unwrap();
    assert!(
        r.text().contains("peer_c"),
        "undo did not restore peer_c: {r:?}"
    );
    let ok = conn.configure_undo().await.unwrap();
    assert_eq!(ok.outcome, ConfigureOutcome::NothingToDo);
    drop(conn);
    drop(bird);
}

#[tokio::test]
async fn enable_disable_restart_and_async() {
    if !require_bird() {
        return;
    }
    let (_dir, bird, mut conn) = start().await;
    let change = |name: &str, outcome| {
        vec![ProtocolChange {
            name: name.into(),
            outcome,
        }]
    };
    // A second session receives log lines as async `+` lines.
    let mut watcher = Connection::connect(&bird.ctl, T).await.unwrap();
    watcher.command("echo all").await.unwrap();

    assert_eq!(
        conn.disable("peer_a").await.unwrap(),
        change("peer_a", ChangeOutcome::Disabled)
    );
    assert_eq!(
        conn.disable("peer_a").await.unwrap(),
        change("peer_a", ChangeOutcome::AlreadyDisabled)
    );
    assert_eq!(
        conn.enable("peer_a").await.unwrap(),
        change("peer_a", ChangeOutcome::Enabled)
    );
    assert_eq!(
        conn.enable("peer_a").await.unwrap(),
        change("peer_a", ChangeOutcome::AlreadyEnabled)
    );
    assert_eq!(
        conn.restart("'peer_b'").await.unwrap(),
        change("peer_b", ChangeOutcome::Restarted)
    );
    let err = conn.disable("nosuchproto").await.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Bird {
                code: Code(9001),
                ..
            }
        ),
        "{err}"
    );
    let err = conn.command("restart \"nomatch*\"").await.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Bird {
                code: Code(8003),
                ..
            }
        ),
        "{err}"
    );

    let mut seen = Vec::new();
    for _ in 0..40 {
        watcher.show_status().await.unwrap();
        seen.extend(watcher.take_async());
        if seen
            .iter()
            .any(|a| matches!(a, AsyncLine::Message(m) if m.contains("Disabling protocol peer_a")))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.iter()
            .any(|a| matches!(a, AsyncLine::Message(m) if m.contains("Disabling protocol peer_a"))),
        "async lines: {seen:?}"
    );
    drop(watcher);
    drop(conn);
    drop(bird);
}

#[tokio::test]
async fn bird_killed_mid_session_is_an_error_not_a_hang() {
    if !require_bird() {
        return;
    }
    let (_dir, bird, mut conn) = start().await;
    conn.show_status().await.unwrap();
    drop(bird); // SIGKILL
    let err = conn.show_status().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Closed { .. } | ClientError::Io { .. } | ClientError::EofMidReply { .. }
        ),
        "{err}"
    );
}
