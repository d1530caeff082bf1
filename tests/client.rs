//! Tests of `bird::client::Connection` against `FakeBird` (a scripted socket
//! in a temp dir) and of the pure reply-to-type helpers.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use autopeer::bird::client::{
    parse_config_file_error, parse_greeting, quote_string, validate_command,
    validate_protocol_name, ChangeOutcome, ClientError, ConfigFileError, ConfigureOutcome,
    Connection, ProtocolChange,
};
use autopeer::bird::reply::{parse_all, AsyncLine, Class, Code, FrameError, LineKind};
use common::{FakeBird, Step};

const GREETING: &str = "0001 BIRD 2.0.12 ready.\n";
const T: Duration = Duration::from_secs(5);

async fn connect(fake: &FakeBird) -> Connection {
    Connection::connect(&fake.path, T).await.expect("connect")
}

#[tokio::test]
async fn every_chunks_transcript_replays_through_the_client() {
    let transcripts = common::load_transcripts();
    let mut n = 0;
    for t in transcripts
        .iter()
        .filter(|t| t.name.ends_with(".chunks.jsonl"))
    {
        let (want, _) = parse_all(&t.server).unwrap();
        let fake = FakeBird::replay(t);
        let mut conn = connect(&fake).await;
        assert_eq!(conn.version().product, "BIRD", "{}", t.name);
        for (i, cmd) in t.commands.iter().enumerate() {
            let got = conn.raw_command(cmd).await.expect(&t.name);
            assert_eq!(got, want[i + 1], "{}: reply to {cmd:?}", t.name);
        }
        drop(conn);
        let log = fake.finish().await;
        assert!(log.failures.is_empty(), "{}: {:?}", t.name, log.failures);
        n += 1;
    }
    assert!(n >= 25, "only {n} chunk transcripts");
}

#[tokio::test]
async fn greeting_version_is_parsed() {
    let fake = FakeBird::start(vec![Step::send("0001 BIRD 1.6.8 ready.\n")]);
    let conn = connect(&fake).await;
    let v = conn.version();
    assert_eq!(
        (
            v.product.as_str(),
            v.major,
            v.minor,
            v.patch,
            v.text.as_str()
        ),
        ("BIRD", 1, 6, 8, "1.6.8")
    );
    drop(conn);
    fake.finish().await;

    let fake = FakeBird::start(vec![Step::send("0001 autopeer 0.1.0 ready.\n")]);
    let conn = connect(&fake).await;
    assert_eq!(conn.version().product, "autopeer");
    assert_eq!(conn.version().minor, 1);
    drop(conn);
    fake.finish().await;
}

#[tokio::test]
async fn bad_greeting_is_an_error() {
    for g in [
        "0000 \n",
        "0001 hello\n",
        "0001-BIRD 2.0.12 ready.\n0000 \n",
        "9001 nope\n",
    ] {
        let fake = FakeBird::start(vec![Step::send(g)]);
        let err = Connection::connect(&fake.path, T).await.unwrap_err();
        assert!(matches!(err, ClientError::Greeting { .. }), "{g:?}: {err}");
        fake.finish().await;
    }
}

#[tokio::test]
async fn partial_reads_byte_by_byte_with_delays() {
    let reply = "1000-BIRD 2.0.12\n1011-Router ID is 10.0.0.1\n Current server time is 2026-11-23 08:04:03.197\n Last reboot on 2026-11-23 08:03:59.487\n Last reconfiguration on 2026-11-23 08:03:59.487\n0013 Daemon is up and running\n";
    let fake = FakeBird::start(vec![
        Step::SendSplit {
            bytes: GREETING.as_bytes().to_vec(),
            size: 1,
            delay: Duration::from_millis(2),
        },
        Step::expect("show status"),
        Step::SendSplit {
            bytes: reply.as_bytes().to_vec(),
            size: 7,
            delay: Duration::from_millis(3),
        },
    ]);
    let mut conn = connect(&fake).await;
    let st = conn.show_status().await.unwrap();
    assert_eq!(
        st.router_id,
        "10.0.0.1".parse::<std::net::Ipv4Addr>().unwrap()
    );
    assert_eq!(st.hostname, None);
    assert!(st.up);
    assert_eq!(st.server_time, "2026-11-23 08:04:03.197");
    drop(conn);
    assert!(fake.finish().await.failures.is_empty());
}

#[tokio::test]
async fn disconnect_mid_reply_is_an_error_not_a_hang() {
    let fake = FakeBird::start(vec![
        Step::send(GREETING),
        Step::expect("show protocols"),
        Step::send("2002-Name       Proto\n1002-device1  Device\n"),
        Step::Close,
    ]);
    let mut conn = connect(&fake).await;
    let err = conn.show_protocols(false, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::EofMidReply {
                source: FrameError::EofInReply { lines: 2, .. },
                ..
            }
        ),
        "{err}"
    );
    let again = conn.command("show status").await.unwrap_err();
    assert!(matches!(again, ClientError::Broken { .. }), "{again}");
    fake.finish().await;
}

#[tokio::test]
async fn disconnect_inside_a_line_is_an_error() {
    let fake = FakeBird::start(vec![
        Step::send(GREETING),
        Step::expect("show status"),
        Step::send("1000-BIRD 2.0"),
        Step::Close,
    ]);
    let mut conn = connect(&fake).await;
    let err = conn.command("show status").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::EofMidReply {
                source: FrameError::EofInLine { .. },
                ..
            }
        ),
        "{err}"
    );
    fake.finish().await;
}

#[tokio::test]
async fn close_between_replies_is_closed() {
    let fake = FakeBird::start(vec![
        Step::send(GREETING),
        Step::expect("show status"),
        Step::Close,
    ]);
    let mut conn = connect(&fake).await;
    let err = conn.command("show status").await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err}");
    fake.finish().await;
}

#[tokio::test]
async fn one_mebibyte_reply() {
    let mut reply =
        String::from("2002-Name       Proto      Table      State  Since         Info\n");
    let mut rows = 0;
    while reply.len() < 1024 * 1024 {
        let prefix = if rows == 0 { "1002-" } else { " " };
        reply.push_str(&format!(
            "{prefix}peer_{rows:<6} BGP        ---        start  08:03:59.487  Active        Socket: Connection refused\n"
        ));
        rows += 1;
    }
    reply.push_str("0000 \n");
    let fake = FakeBird::start(vec![
        Step::send(GREETING),
        Step::expect("show protocols"),
        Step::Send(reply.into_bytes()),
    ]);
    let mut conn = connect(&fake).await;
    let r = conn.show_protocols(false, None).await.unwrap();
    assert_eq!(r.lines.len(), rows + 2);
    assert_eq!(r.lines_with(Code(1002)).count(), rows);
    assert_eq!(r.lines[rows].kind, LineKind::Continuation);
    drop(conn);
    fake.finish().await;
}

#[tokio::test]
async fn unknown_code_is_kept() {
    let fake = FakeBird::start(vec![
        Step::send(GREETING),
        Step::expect("weird"),
        Step::send("5555-strange row\n 2nd\n5555 done\n"),
    ]);
    let mut conn = connect(&fake).await;
    let r = conn.command("weird").await.unwrap();
    assert_eq!(r.lines.len(), 3);
    assert!(r.lines.iter().all(|l| l.code == Code(5555)));
    assert_eq!(r.final_code().map(Code::class), Some(Class::Unknown));
    assert!(!r.is_error());
    drop(conn);
    fake.finish().await;
}

#[tokio::test]
async fn no_greeting_times_out() {
    let fake = FakeBird::start(vec![Step::Sleep(Duration::from_secs(2))]);
    let started = std::time::Instant::now();
    let err = Connection::connect(&fake.path, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    fake.finish().await;
}

#[tokio::test]
async fn stalled_reply_times_out_and_breaks_the_connection() {
    let fake = FakeBird::start(vec![
        Step::send(GREETING),
        Step::expect("show status"),
        Step::send("1000-BIRD 2.0.12\n"),
        Step::Sleep(Duration::from_secs(2)),
    ]);
    let mut conn = connect(&fake).await;
    conn.set_timeout(Duration::from_millis(200));
    assert_eq!(conn.timeout(), Duration::from_millis(200));
    let err = conn.command("show status").await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    let err = conn.command("show status").await.unwrap_err();
    assert!(matches!(err, ClientError::Broken { .. }), "{err}");
    drop(conn);
    fake.finish().await;
}

#[tokio::test]
async fn async_lines_mid_reply_are_kept_aside() {
    let fake = FakeBird::start(vec![
        Step::send(GREETING),
        Step::expect("show protocols"),
        Step::send("2002-Name\n+BGP: Unexpected connect from unknown address 127.0.0.2 (port 39339)\n1002-p1\n<2 messages lost>\n p2\n0000 \n+Config timeout expired, starting undo\n"),
        Step::expect("show protocols"),
        Step::send("2002-Name\n0000 \n"),
    ]);
    let mut conn = connect(&fake).await;
    let r = conn.show_protocols(false, None).await.unwrap();
    assert_eq!(r.text(), "Name\np1\np2\n");
    assert_eq!(
        conn.take_async(),
        vec![
            AsyncLine::Message(
                "BGP: Unexpected connect from unknown address 127.0.0.2 (port 39339)".into()
            ),
            AsyncLine::Lost(2),
        ]
    );
    let r = conn.show_protocols(false, None).await.unwrap();
    assert_eq!(r.lines.len(), 2);
    assert_eq!(
        conn.take_async(),
        vec![AsyncLine::Message(
            "Config timeout expired, starting undo".into()
        )]
    );
    drop(conn);
    fake.finish().await;
}

#[tokio::test]
async fn bad_commands_never_reach_the_socket() {
    let fake = FakeBird::start(vec![Step::send(GREETING)]);
    let mut conn = connect(&fake).await;
    let long = format!("show protocols \"{}\"", "x".repeat(1000));
    let err = conn.command(&long).await.unwrap_err();
    assert!(
        matches!(err, ClientError::CommandTooLong { len, max: 1000 } if len == long.len()),
        "{err}"
    );
    for (cmd, what) in [
        ("show status\nshow status", "LF"),
        ("show\r", "CR"),
        ("a\0b", "NUL"),
    ] {
        let err = conn.command(cmd).await.unwrap_err();
        assert!(
            matches!(err, ClientError::BadCommandByte { what: w, .. } if w == what),
            "{err}"
        );
    }
    for name in ["a b", "1abc", "", "x;y", "'a b'", "'a\"'"] {
        let err = conn.disable(name).await.unwrap_err();
        assert!(
            matches!(err, ClientError::BadName { .. }),
            "{name:?}: {err}"
        );
    }
    let err = conn.show_protocols(true, Some("a\"b")).await.unwrap_err();
    assert!(matches!(err, ClientError::BadString { .. }), "{err}");
    let err = conn.show_protocols(true, Some("a\nb")).await.unwrap_err();
    assert!(matches!(err, ClientError::BadString { .. }), "{err}");
    // A refused command does not break the connection.
    drop(conn);
    let log = fake.finish().await;
    assert!(log.received.is_empty(), "fake saw {:?}", log.received);
}

#[tokio::test]
async fn bird16_continuation_bug_transcript() {
    // See: fixtures/transcripts/v168-07-continuation-bug.txt
    let ts = common::load_transcripts();
    let t = ts
        .iter()
        .find(|t| t.name == "v168-07-continuation-bug.txt")
        .unwrap();
    let fake = FakeBird::replay(t);
    let mut conn = connect(&fake).await;
    assert_eq!(
        conn.disable("peer_p1").await.unwrap(),
        vec![ProtocolChange {
            name: "peer_p1".into(),
            outcome: ChangeOutcome::Disabled
        }]
    );
    assert_eq!(
        conn.disable("peer_p3").await.unwrap(),
        vec![ProtocolChange {
            name: "peer_p3".into(),
            outcome: ChangeOutcome::Disabled
        }]
    );
    assert_eq!(
        conn.enable("peer_p1").await.unwrap()[0].outcome,
        ChangeOutcome::Enabled
    );
    assert_eq!(
        conn.enable("peer_p3").await.unwrap()[0].outcome,
        ChangeOutcome::Enabled
    );
    drop(conn);
    assert!(fake.finish().await.failures.is_empty());
}

#[tokio::test]
async fn typed_commands_on_lab_replies() {
    let fake = FakeBird::start(vec![
        Step::send(GREETING),
        Step::expect("configure check"),
        Step::send("0002-Reading configuration from /srv/birdlab/a/bird.conf\n0020 Configuration OK\n"),
        Step::expect("configure"),
        Step::send("0002-Reading configuration from /srv/birdlab/a/bird.conf\n8002 /srv/birdlab/a/peers/p2.conf:3:3 syntax error, unexpected PASSIVE\n"),
        Step::expect("configure check \"/srv/birdlab/a/nonexistent.conf\""),
        Step::send("0002-Reading configuration from /srv/birdlab/a/nonexistent.conf\n8002 /srv/birdlab/a/nonexistent.conf: No such file or directory\n"),
        Step::expect("configure timeout 30"),
        Step::send("0002-Reading configuration from /srv/birdlab/a/bird.conf\n0022-Undo scheduled in 30 s\n0003 Reconfigured\n"),
        Step::expect("configure confirm"),
        Step::send("0018 Reconfiguration confirmed\n"),
        Step::expect("configure undo"),
        Step::send("0021-Undo requested\n0004 Reconfiguration in progress\n"),
        Step::expect("configure"),
        Step::send("0002-Reading configuration from /srv/birdlab/a/bird.conf\n0005 Reconfiguration already in progress, queueing new config\n"),
        Step::expect("restart \"nomatch*\""),
        Step::send("8003 No protocols match\n"),
        Step::expect("disable 'clients-10.0.0.4'"),
        Step::send("0008-clients-10.0.0.4: already disabled\n0000 \n"),
        Step::expect("restart peer_p1"),
        Step::send("8003 No protocols match\n"),
        Step::expect("foo"),
        Step::send("9001 syntax error, unexpected CF_SYM_UNDEFINED\n"),
    ]);
    let mut conn = connect(&fake).await;
    let ok = conn.configure_check().await.unwrap();
    assert_eq!(ok.outcome, ConfigureOutcome::ConfigOk);
    assert_eq!(
        ok.config_file,
        Some(PathBuf::from("/srv/birdlab/a/bird.conf"))
    );

    let err = conn.configure().await.unwrap_err();
    match err {
        ClientError::ConfigFile { error, .. } => assert_eq!(
            error,
            ConfigFileError {
                file: "/srv/birdlab/a/peers/p2.conf".into(),
                line: Some(3),
                col: Some(3),
                message: "syntax error, unexpected PASSIVE".into()
            }
        ),
        other => panic!("{other}"),
    }
    let err = conn
        .configure_check_file("/srv/birdlab/a/nonexistent.conf".as_ref())
        .await
        .unwrap_err();
    match err {
        ClientError::ConfigFile { error, .. } => {
            assert_eq!(error.line, None);
            assert_eq!(error.message, "No such file or directory");
        }
        other => panic!("{other}"),
    }
    let ok = conn.configure_timeout(30).await.unwrap();
    assert_eq!(ok.outcome, ConfigureOutcome::Reconfigured);
    assert_eq!(ok.undo_scheduled_secs, Some(30));
    assert_eq!(
        conn.configure_confirm().await.unwrap().outcome,
        ConfigureOutcome::Confirmed
    );
    let ok = conn.configure_undo().await.unwrap();
    assert_eq!(ok.outcome, ConfigureOutcome::InProgress);
    assert!(ok.undo_requested);
    assert_eq!(
        conn.configure().await.unwrap().outcome,
        ConfigureOutcome::Queued
    );
    // A pattern is not a name; raw command for it.
    let err = conn.command("restart \"nomatch*\"").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Bird { code: Code(8003), text, .. } if text == "No protocols match"),
        "{err}"
    );
    assert_eq!(
        conn.disable("'clients-10.0.0.4'").await.unwrap(),
        vec![ProtocolChange {
            name: "clients-10.0.0.4".into(),
            outcome: ChangeOutcome::AlreadyDisabled
        }]
    );
    let err = conn.restart("peer_p1").await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::Bird {
            code: Code(8003),
            ..
        }
    ));
    let err = conn.command("foo").await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::Bird {
            code: Code(9001),
            ..
        }
    ));
    drop(conn);
    let log = fake.finish().await;
    assert!(log.failures.is_empty(), "{:?}", log.failures);
}

#[test]
fn config_file_error_forms() {
    type Want = Option<(&'static str, Option<u32>, Option<u32>, &'static str)>;
    let table: &[(&str, Want)] = &[
        (
            "/srv/birdlab/a/peers/p2.conf:3:3 syntax error, unexpected PASSIVE",
            Some((
                "/srv/birdlab/a/peers/p2.conf",
                Some(3),
                Some(3),
                "syntax error, unexpected PASSIVE",
            )),
        ),
        (
            "/srv/birdlab/o/peers/p2.conf:3:3 syntax error",
            Some((
                "/srv/birdlab/o/peers/p2.conf",
                Some(3),
                Some(3),
                "syntax error",
            )),
        ),
        (
            "/a:b/c.conf:12:40 Unknown symbol",
            Some(("/a:b/c.conf", Some(12), Some(40), "Unknown symbol")),
        ),
        (
            "/srv/birdlab/a/nonexistent.conf: No such file or directory",
            Some((
                "/srv/birdlab/a/nonexistent.conf",
                None,
                None,
                "No such file or directory",
            )),
        ),
        ("Something went wrong", None),
        ("", None),
    ];
    for (text, want) in table {
        let got = parse_config_file_error(text);
        let want = want.map(|(f, l, c, m)| ConfigFileError {
            file: f.into(),
            line: l,
            col: c,
            message: m.into(),
        });
        assert_eq!(got, want, "{text:?}");
    }
}

#[test]
fn name_and_command_checks() {
    for ok in [
        "peer_p1",
        "_x",
        "P",
        &"a".repeat(64),
        "'clients-10.0.0.4'",
        "'c_2001:db8::7'",
    ] {
        assert!(validate_protocol_name(ok).is_ok(), "{ok:?}");
    }
    for bad in [
        "",
        "1x",
        &"a".repeat(65),
        "a-b",
        "''",
        "'a",
        "'a b'",
        "\"peer*\"",
        "all x",
    ] {
        assert!(validate_protocol_name(bad).is_err(), "{bad:?}");
    }
    assert!(validate_command(&"x".repeat(1000)).is_ok());
    assert!(validate_command(&"x".repeat(1001)).is_err());
    assert_eq!(quote_string("peer_*").unwrap(), "\"peer_*\"");
}

#[test]
fn greeting_forms() {
    let (r, _) = parse_all(b"0001 BIRD 3.0.0 ready.\n").unwrap();
    let v = parse_greeting(&r[0]).unwrap();
    assert_eq!((v.major, v.minor, v.patch), (3, 0, 0));
    let (r, _) = parse_all(b"0001 BIRD 2.16 ready.\n").unwrap();
    let v = parse_greeting(&r[0]).unwrap();
    assert_eq!((v.major, v.minor, v.patch), (2, 16, 0));
    // A version word autopeer cannot read is kept, with 0.0.0: a warning
    // later, never a refusal to talk to BIRD.
    let (r, _) = parse_all(b"0001 BIRD x.y ready.\n").unwrap();
    let v = parse_greeting(&r[0]).unwrap();
    assert_eq!((v.major, v.minor, v.text.as_str()), (0, 0, "x.y"));
    assert!(!v.is_known());
}
