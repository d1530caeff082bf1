//! Tests of `bird::reply`: known answers, every lab transcript replayed at
//! every split point, and a table of malformed inputs.

mod common;

use autopeer::bird::reply::{
    parse_all, AsyncLine, Class, Code, Frame, FrameError, Framer, LineKind, Reply, ReplyAssembler,
    ReplyLine,
};

fn line(code: u16, kind: LineKind, text: &str) -> Frame {
    Frame::Line(ReplyLine {
        code: Code(code),
        kind,
        text: text.to_owned(),
    })
}

/// Frame a byte string fed in the given pieces; errors are kept as values.
fn frames_of(pieces: &[&[u8]]) -> Vec<Result<Frame, FrameError>> {
    let mut f = Framer::new();
    let mut out = Vec::new();
    for p in pieces {
        f.push(p);
        loop {
            match f.next_frame() {
                Ok(Some(fr)) => out.push(Ok(fr)),
                Ok(None) => break,
                Err(e) => out.push(Err(e)),
            }
        }
    }
    if let Err(e) = f.finish() {
        out.push(Err(e));
    }
    out
}

#[test]
fn code_classes() {
    let table = [
        (0, Class::Done),
        (13, Class::Done),
        (1002, Class::Row),
        (2002, Class::Heading),
        (5555, Class::Unknown),
        (3000, Class::Unknown),
        (8002, Class::RuntimeError),
        (9001, Class::ParseError),
    ];
    for (c, class) in table {
        assert_eq!(Code(c).class(), class, "code {c}");
    }
    assert_eq!(Code(13).to_string(), "0013");
}

#[test]
fn known_answers() {
    use LineKind::*;
    let table: &[(&str, Frame)] = &[
        (
            "0001 BIRD 2.0.12 ready.\n",
            line(1, Last, "BIRD 2.0.12 ready."),
        ),
        ("0000 \n", line(0, Last, "")),
        ("1000-BIRD 2.0.12\n", line(1000, More, "BIRD 2.0.12")),
        (
            "8002 /srv/birdlab/a/peers/p2.conf:3:3 syntax error, unexpected PASSIVE\n",
            line(
                8002,
                Last,
                "/srv/birdlab/a/peers/p2.conf:3:3 syntax error, unexpected PASSIVE",
            ),
        ),
        ("5555 strange\n", line(5555, Last, "strange")),
        (
            "+Config timeout expired, starting undo\n",
            Frame::Async(AsyncLine::Message(
                "Config timeout expired, starting undo".into(),
            )),
        ),
        ("<3 messages lost>\n", Frame::Async(AsyncLine::Lost(3))),
        ("+\n", Frame::Async(AsyncLine::Message(String::new()))),
    ];
    for (input, want) in table {
        let got = frames_of(&[input.as_bytes()]);
        assert_eq!(got, vec![Ok(want.clone())], "input {input:?}");
    }
}

#[test]
fn continuation_inherits_code_and_keeps_leading_spaces() {
    use LineKind::*;
    let got = frames_of(&[
        b"1006-  BGP state:          Passive\n     Neighbor AS:      65011\n \n0000 \n",
    ]);
    assert_eq!(
        got,
        vec![
            Ok(line(1006, More, "  BGP state:          Passive")),
            Ok(line(1006, Continuation, "    Neighbor AS:      65011")),
            Ok(line(1006, Continuation, "")),
            Ok(line(0, Last, "")),
        ]
    );
}

#[test]
fn bird16_continuation_after_final_line_opens_new_reply() {
    // See: fixtures/transcripts/v168-07-continuation-bug.txt
    let (replies, _) =
        parse_all(b"0009-peer_p1: disabled\n0000 \n peer_p3: disabled\n0000 \n").unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(
        replies[1].lines[0],
        ReplyLine {
            code: Code(9),
            kind: LineKind::Continuation,
            text: "peer_p3: disabled".into()
        }
    );
    assert_eq!(replies[1].final_code(), Some(Code(0)));
}

#[test]
fn reply_helpers() {
    let (replies, _) = parse_all(
        b"0002-Reading configuration from /a/bird.conf\n8002 /a/p.conf:3:3 syntax error\n",
    )
    .unwrap();
    let r: &Reply = &replies[0];
    assert_eq!(r.final_code(), Some(Code(8002)));
    assert!(r.is_error());
    assert_eq!(r.final_text(), "/a/p.conf:3:3 syntax error");
    assert_eq!(
        r.text(),
        "Reading configuration from /a/bird.conf\n/a/p.conf:3:3 syntax error"
    );
    assert!(r.has_code(Code(2)));
    assert_eq!(r.lines_with(Code(2)).count(), 1);
    assert!(!Reply::default().is_error());
    assert_eq!(Reply::default().final_code(), None);
}

#[test]
fn assembler_routes_async_lines_aside_mid_reply() {
    let mut f = Framer::new();
    let mut a = ReplyAssembler::new();
    f.push(b"2002-Name\n+BGP: Unexpected connect\n1002-p1\n<2 messages lost>\n0000 \n");
    let mut replies = Vec::new();
    while let Some(fr) = f.next_frame().unwrap() {
        assert!(replies.is_empty() || !a.is_open());
        if let Some(r) = a.push(fr) {
            replies.push(r);
        }
    }
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].lines.len(), 3);
    assert_eq!(
        a.take_async(),
        vec![
            AsyncLine::Message("BGP: Unexpected connect".into()),
            AsyncLine::Lost(2)
        ]
    );
    assert!(a.take_async().is_empty());
}

/// Every transcript, fed whole, split at every point, and byte by byte,
/// gives the same frames; the replies number one per command plus the
/// greeting.
#[test]
fn every_transcript_at_every_split_point() {
    let transcripts = common::load_transcripts();
    for t in &transcripts {
        let whole = frames_of(&[&t.server]);
        assert!(
            whole.iter().all(Result::is_ok),
            "{}: {:?}",
            t.name,
            whole.iter().find(|r| r.is_err())
        );
        for i in 0..=t.server.len() {
            let (a, b) = t.server.split_at(i);
            assert_eq!(frames_of(&[a, b]), whole, "{} split at {i}", t.name);
        }
        let bytes: Vec<&[u8]> = t.server.chunks(1).collect();
        assert_eq!(frames_of(&bytes), whole, "{} byte by byte", t.name);

        let (replies, _) = parse_all(&t.server).unwrap();
        assert_eq!(
            replies.len(),
            t.commands.len() + 1,
            "{}: replies vs commands {:?}",
            t.name,
            t.commands
        );
        assert_eq!(
            replies[0].final_code(),
            Some(Code(1)),
            "{} greeting",
            t.name
        );
    }
}

#[test]
fn txt_and_chunks_transcripts_agree() {
    let ts = common::load_transcripts();
    let mut pairs = 0;
    for t in ts.iter().filter(|t| t.name.ends_with(".chunks.jsonl")) {
        let stem = t.name.trim_end_matches(".chunks.jsonl");
        let txt = ts
            .iter()
            .find(|o| o.name == format!("{stem}.txt"))
            .expect("txt twin");
        assert_eq!(t.server, txt.server, "{stem}");
        assert_eq!(t.commands, txt.commands, "{stem}");
        pairs += 1;
    }
    assert!(pairs >= 20);
}

#[test]
fn async_lines_of_transcripts() {
    let ts = common::load_transcripts();
    let t = ts
        .iter()
        .find(|t| t.name == "08-configure-timeout-expiry-async.txt")
        .unwrap();
    let (_, asyncs) = parse_all(&t.server).unwrap();
    assert_eq!(
        asyncs,
        vec![AsyncLine::Message(
            "Config timeout expired, starting undo".into()
        )]
    );
    let t = ts
        .iter()
        .find(|t| t.name == "11-echo-async-log.txt")
        .unwrap();
    let (_, asyncs) = parse_all(&t.server).unwrap();
    assert_eq!(asyncs.len(), 3);
}

#[test]
fn malformed_inputs_give_typed_errors() {
    type Check = fn(&FrameError) -> bool;
    let long = format!("0000 {}\n", "x".repeat(70_000));
    let table: Vec<(Vec<u8>, Check)> = vec![
        (
            b"hello\n".to_vec(),
            |e| matches!(e, FrameError::NoCode { line } if line == "hello"),
        ),
        (b"\n".to_vec(), |e| matches!(e, FrameError::NoCode { .. })),
        (
            b"000 ok\n".to_vec(),
            |e| matches!(e, FrameError::ShortCode { digits: 3, line } if line == "000 ok"),
        ),
        (
            b"0000x\n".to_vec(),
            |e| matches!(e, FrameError::BadSeparator { found, line } if found == "x" && line == "0000x"),
        ),
        (
            b"00001 x\n".to_vec(),
            |e| matches!(e, FrameError::BadSeparator { found, .. } if found == "1"),
        ),
        (b"0000\n".to_vec(), |e| {
            matches!(e, FrameError::BadSeparator { .. })
        }),
        (
            b"0000 caf\xff\n".to_vec(),
            |e| matches!(e, FrameError::InvalidUtf8 { valid_up_to: 8, line } if line.starts_with("0000 caf")),
        ),
        (
            long.into_bytes(),
            |e| matches!(e, FrameError::LineTooLong { max: 65536, line } if line.len() <= 80),
        ),
        (b"<x messages lost>\n".to_vec(), |e| {
            matches!(e, FrameError::BadLostMarker { .. })
        }),
        (b" orphan\n".to_vec(), |e| {
            matches!(e, FrameError::ContinuationWithoutCode { .. })
        }),
        (b"0000 no newline".to_vec(), |e| {
            matches!(e, FrameError::EofInLine { len: 15, .. })
        }),
        (b"1000-BIRD 2.0.12\n".to_vec(), |e| {
            matches!(e, FrameError::EofInReply { lines: 1, .. })
        }),
    ];
    for (input, check) in table {
        let got = parse_all(&input);
        match got {
            Err(e) => {
                assert!(check(&e), "input {:?}: got {e:?}", excerpt(&input));
                assert!(!e.to_string().is_empty());
            }
            Ok(r) => panic!("input {:?}: expected error, got {r:?}", excerpt(&input)),
        }
    }
}

fn excerpt(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned()
}

#[test]
fn oversized_line_never_buffers_forever_and_framer_recovers() {
    let mut f = Framer::with_max_line(100);
    f.push(&[b'1'; 150]);
    assert!(matches!(
        f.next_frame(),
        Err(FrameError::LineTooLong { max: 100, .. })
    ));
    // The rest of that line is dropped as it comes, not stored.
    for _ in 0..100 {
        f.push(&[b'x'; 1000]);
        assert_eq!(f.next_frame(), Ok(None));
        assert!(f.buffered() <= 1000);
    }
    f.push(b"tail of the long line\n0000 \n");
    assert_eq!(f.next_frame(), Ok(Some(line(0, LineKind::Last, ""))));
    // A long line whose LF is already here is rejected too.
    f.push(format!("0000 {}\n0013 ok\n", "y".repeat(200)).as_bytes());
    assert!(matches!(
        f.next_frame(),
        Err(FrameError::LineTooLong { .. })
    ));
    assert_eq!(f.next_frame(), Ok(Some(line(13, LineKind::Last, "ok"))));
}

#[test]
fn errors_are_per_line_then_framing_goes_on() {
    let got = frames_of(&[b"junk\n0000 \n"]);
    assert!(matches!(got[0], Err(FrameError::NoCode { .. })));
    assert_eq!(got[1], Ok(line(0, LineKind::Last, "")));
}

proptest::proptest! {
    /// Arbitrary bytes never panic the framer, and its buffer stays bounded.
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..20)) {
        let mut f = Framer::with_max_line(256);
        let mut a = ReplyAssembler::new();
        for c in &chunks {
            f.push(c);
            loop {
                match f.next_frame() {
                    Ok(Some(fr)) => { let _ = a.push(fr); }
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
            proptest::prop_assert!(f.buffered() <= 256 + 300);
        }
        let _ = f.finish();
        let _ = a.finish();
    }
}
