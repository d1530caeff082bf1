//! The harness of every test and benchmark that starts real processes,
//! shared: benches include this directory with
//! `#[path = "../../tests/common/mod.rs"]`, so there is one copy.
//!
//! - [`prereq`]: the CI-or-skip rule, written once;
//! - [`bird`]: a real BIRD in a temp dir (tests' or a router's layout);
//! - [`lab`]: the namespace lab of `bird/lab`;
//! - [`daemon`]: the autopeer binary (`run`, `watch`, client commands);
//! - [`attacker`]: another account's privileges for hostile-file tests;
//! - [`certs`]: CAs and spoke certificates made by the test (rcgen);
//! - [`frr`]: FRR's zebra and nhrpd in a namespace the test makes;
//! - [`uml`]: a User-Mode Linux kernel for features this host lacks;
//! - here: the lab transcripts in `fixtures/transcripts/` and `FakeBird`,
//!   a scripted BIRD control socket on a temp UNIX socket.
//!
//! Test-only code: it may panic on broken fixtures, it must not touch
//! anything outside its temp directory, and it ends only processes it
//! started, by their pid.
#![allow(dead_code)]

pub mod attacker;
pub mod bird;
pub mod certs;
pub mod daemon;
pub mod frr;
pub mod journald;
pub mod lab;
pub mod prereq;
pub mod uml;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// `fixtures/transcripts/` of this crate.
pub fn transcripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/transcripts")
}

/// One recorded control-socket session.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub name: String,
    /// Every byte the server sent, in order.
    pub server: Vec<u8>,
    /// The commands the client sent, without LF.
    pub commands: Vec<String>,
    /// The conversation in order: server chunks and client commands.
    pub steps: Vec<TranscriptStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptStep {
    Server(Vec<u8>),
    Client(String),
}

/// Parse a `NN-*.txt` transcript: `>>> cmd` lines are what the client sent,
/// `# ` lines are commentary, every other byte is the server's. A `>>> `
/// line holding literal `\n`s (22-pipelined) is several commands.
pub fn parse_txt(name: &str, bytes: &[u8]) -> Transcript {
    let mut t = Transcript {
        name: name.to_owned(),
        server: Vec::new(),
        commands: Vec::new(),
        steps: Vec::new(),
    };
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if let Some(cmd) = line.strip_prefix(b">>> ") {
            let cmd = String::from_utf8_lossy(cmd);
            let cmd = cmd.trim_end_matches('\n');
            let cmds: Vec<&str> = if cmd.contains("\\n") {
                let mut parts: Vec<&str> = cmd.split("\\n").collect();
                parts.pop(); // the note after the last command
                parts
            } else {
                vec![cmd]
            };
            for c in cmds {
                t.commands.push(c.to_owned());
                t.steps.push(TranscriptStep::Client(c.to_owned()));
            }
        } else if line.starts_with(b"# ") {
            continue;
        } else {
            t.server.extend_from_slice(line);
            match t.steps.last_mut() {
                Some(TranscriptStep::Server(s)) => s.extend_from_slice(line),
                _ => t.steps.push(TranscriptStep::Server(line.to_vec())),
            }
        }
    }
    t
}

/// Parse a `*.chunks.jsonl` transcript (`data` is latin-1).
pub fn parse_chunks(name: &str, text: &str) -> Transcript {
    let mut t = Transcript {
        name: name.to_owned(),
        server: Vec::new(),
        commands: Vec::new(),
        steps: Vec::new(),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("chunk is JSON");
        let data: Vec<u8> = v["data"]
            .as_str()
            .expect("data")
            .chars()
            .map(|c| u8::try_from(u32::from(c)).expect("latin-1"))
            .collect();
        match v["dir"].as_str() {
            Some("S") => {
                t.server.extend_from_slice(&data);
                t.steps.push(TranscriptStep::Server(data));
            }
            Some("C") => {
                let s = String::from_utf8(data).expect("command is UTF-8");
                for c in s.split_inclusive('\n') {
                    let c = c.trim_end_matches('\n').to_owned();
                    t.commands.push(c.clone());
                    t.steps.push(TranscriptStep::Client(c));
                }
            }
            other => panic!("{name}: bad dir {other:?}"),
        }
    }
    t
}

/// Every transcript in `fixtures/transcripts/`, sorted by file name.
pub fn load_transcripts() -> Vec<Transcript> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(transcripts_dir())
        .expect("fixtures/transcripts exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&p).expect("read transcript");
        if name.ends_with(".chunks.jsonl") {
            out.push(parse_chunks(&name, &String::from_utf8(bytes).unwrap()));
        } else if name.ends_with(".txt") {
            out.push(parse_txt(&name, &bytes));
        }
    }
    assert!(
        out.len() >= 40,
        "expected the lab transcripts, got {}",
        out.len()
    );
    out
}

/// One step of a `FakeBird` script.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes in one write.
    Send(Vec<u8>),
    /// Write these bytes split into pieces of `size`, sleeping `delay` between.
    SendSplit {
        bytes: Vec<u8>,
        size: usize,
        delay: Duration,
    },
    /// Read one line from the client and record a failure if it differs.
    Expect(String),
    /// Sleep.
    Sleep(Duration),
    /// Close the connection now (the rest of the script is skipped).
    Close,
}

impl Step {
    pub fn send(s: &str) -> Step {
        Step::Send(s.as_bytes().to_vec())
    }
    pub fn expect(s: &str) -> Step {
        Step::Expect(s.to_owned())
    }
}

/// What the fake saw.
#[derive(Debug, Default)]
pub struct FakeLog {
    /// Every byte the client sent.
    pub received: Vec<u8>,
    /// Expectations that were not met.
    pub failures: Vec<String>,
}

/// A scripted BIRD control socket serving one connection.
pub struct FakeBird {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<FakeLog>,
}

impl FakeBird {
    /// Bind a socket in a fresh temp dir and play `script` to the first client.
    /// After the script it reads until the client closes (at most 5 s).
    pub fn start(script: Vec<Step>) -> FakeBird {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bird.ctl");
        let listener = UnixListener::bind(&path).expect("bind fake socket");
        let task = tokio::spawn(async move {
            let mut log = FakeLog::default();
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut pending: Vec<u8> = Vec::new();
            for step in script {
                match step {
                    Step::Send(b) => {
                        if stream.write_all(&b).await.is_err() {
                            log.failures.push("write failed".into());
                            return log;
                        }
                    }
                    Step::SendSplit { bytes, size, delay } => {
                        for piece in bytes.chunks(size.max(1)) {
                            if stream.write_all(piece).await.is_err() {
                                log.failures.push("write failed".into());
                                return log;
                            }
                            tokio::time::sleep(delay).await;
                        }
                    }
                    Step::Expect(want) => {
                        let got = read_line(&mut stream, &mut pending, &mut log).await;
                        match got {
                            Some(got) if got == want => {}
                            other => log
                                .failures
                                .push(format!("expected {want:?}, client sent {other:?}")),
                        }
                    }
                    Step::Sleep(d) => tokio::time::sleep(d).await,
                    Step::Close => return log,
                }
            }
            let mut buf = [0u8; 4096];
            loop {
                match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => log.received.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            log
        });
        FakeBird {
            path,
            _dir: dir,
            task,
        }
    }

    /// Play a recorded transcript: server chunks as recorded, and each client
    /// command expected in turn.
    pub fn replay(t: &Transcript) -> FakeBird {
        let script = t
            .steps
            .iter()
            .map(|s| match s {
                TranscriptStep::Server(b) => Step::Send(b.clone()),
                TranscriptStep::Client(c) => Step::Expect(c.clone()),
            })
            .collect();
        FakeBird::start(script)
    }

    /// Wait for the script to end (the client must have closed or the
    /// script must end with `Close`) and return what the fake saw.
    pub async fn finish(self) -> FakeLog {
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("fake server finished")
            .expect("fake server task")
    }
}

/// Read one LF-terminated line (without LF), recording every byte.
async fn read_line(
    stream: &mut tokio::net::UnixStream,
    pending: &mut Vec<u8>,
    log: &mut FakeLog,
) -> Option<String> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            return Some(String::from_utf8_lossy(&line[..i]).into_owned());
        }
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                log.received.extend_from_slice(&buf[..n]);
                pending.extend_from_slice(&buf[..n]);
            }
            _ => return None,
        }
    }
}

/// One row of BIRD's `show protocols` for a BGP protocol, as the parser
/// gives it (roster and scenario tests feed these as the observer would).
pub fn protocol_row(
    name: &str,
    state: autopeer::bird::protocols::ProtoState,
    info: &str,
) -> autopeer::bird::protocols::Protocol {
    autopeer::bird::protocols::Protocol {
        name: name.into(),
        proto: "BGP".into(),
        table: None,
        state,
        since: "08:00:00".into(),
        info: info.into(),
        bgp: None,
    }
}
