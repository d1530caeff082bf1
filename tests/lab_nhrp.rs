//! Real FRR nhrpd (Debian frr 8.4.4) against autopeer's event-socket server,
//! in a network namespace this test creates.
//!
//! What runs here: zebra + nhrpd (as user frr, FRR's default privileges)
//! with `nhrp event socket` pointed at `sources::nhrp::serve`: nhrpd must
//! connect to the root-owned mode-0600 socket, and reconnect after the
//! server restarts. What cannot run here: a spoke registration. nhrpd reads
//! NHRP packets from an AF_PACKET socket and drops any whose link-layer
//! source address is not 4 bytes (`nhrp_packet_recvraw`), which only a
//! kernel GRE device (ip_gre) provides; a kernel without ip_gre has no
//! path to an `authorize-binding` event (fixtures/nhrp/README.md). Needs
//! root and frr: with CI=true a missing prerequisite fails, otherwise the
//! test skips with a one-line reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autopeer::config::Config;
use autopeer::sources::nhrp::{self, NhrpStats};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const ZEBRA: &str = "/usr/lib/frr/zebra";
const NHRPD: &str = "/usr/lib/frr/nhrpd";

fn prerequisites() -> bool {
    let reason = if !rustix::process::geteuid().is_root() {
        Some("not root".to_owned())
    } else if !Path::new(NHRPD).exists() || !Path::new(ZEBRA).exists() {
        Some(format!("{NHRPD} missing (apt install frr)"))
    } else if frr_ids().is_none() {
        Some("no user frr (apt install frr)".to_owned())
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but the nhrpd lab cannot run: {r}")
        }
        Some(r) => {
            eprintln!("skipping nhrpd lab: {r}");
            false
        }
    }
}

/// uid and gid of user frr, from /etc/passwd.
fn frr_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("frr:"))?;
    let mut f = line.split(':').skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Processes and the namespace, removed on drop (by pid / by our own name).
struct Lab {
    ns: String,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Lab {
    fn spawn(&mut self, args: &[&str], log: &str) {
        let out = std::fs::File::create(self.dir.join(log)).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).args(args);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn server(
    cfg: &Arc<Config>,
    stats: &Arc<NhrpStats>,
    token: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let path = cfg.sources.nhrp_socket.clone().unwrap();
    let (tx, rx) = watch::channel(Arc::clone(cfg));
    std::mem::forget(tx);
    let (roster, _rx) = mpsc::channel(1);
    std::mem::forget(_rx);
    let ctx = nhrp::NhrpContext {
        config: rx,
        roster,
        events: Arc::new(|_| {}),
        stats: Arc::clone(stats),
    };
    let l = nhrp::bind(&path).unwrap();
    tokio::spawn(nhrp::serve(l, path, ctx, token.clone()))
}

async fn wait_connections(stats: &NhrpStats, n: u64, within: Duration) -> Duration {
    let t0 = Instant::now();
    while stats.connections.load(Ordering::Relaxed) < n {
        assert!(
            t0.elapsed() < within,
            "nhrpd did not connect ({n}) within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t0.elapsed()
}

#[tokio::test]
async fn real_nhrpd_connects_and_reconnects() {
    if !prerequisites() {
        return;
    }
    let (uid, gid) = frr_ids().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // zebra (no DAC override) writes its sockets here.
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    let sock = dir.join("nhrp.sock");
    let cfg = Arc::new(
        Config::load_str(
            &format!(
                "[sources]\nlogs = []\nnhrp_socket = \"{}\"\n[[group]]\nname = \"spokes\"\ntemplate = \"spokes\"\nprefixes = [\"10.200.0.0/16\"]\n",
                sock.display()
            ),
            &dir,
        )
        .unwrap(),
    );
    let conf = dir.join("frr.conf");
    std::fs::write(
        &conf,
        format!(
            "hostname hub\ndebug nhrp event\nnhrp event socket {}\n!\n",
            sock.display()
        ),
    )
    .unwrap();
    let ns = format!("apnhrp-{}", std::process::id());
    assert!(Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap()
        .success());
    let mut lab = Lab {
        ns,
        children: Vec::new(),
        dir: dir.clone(),
    };
    let stats = Arc::new(NhrpStats::default());
    let token = CancellationToken::new();
    let task = server(&cfg, &stats, &token);

    let d = dir.display().to_string();
    let zapi = format!("{d}/zserv.api");
    lab.spawn(
        &[
            ZEBRA,
            "-z",
            &zapi,
            "-i",
            &format!("{d}/zebra.pid"),
            "--vty_socket",
            &d,
            "-f",
            "/dev/null",
            "--log",
            "stdout",
        ],
        "zebra.log",
    );
    let t0 = Instant::now();
    while !Path::new(&zapi).exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "zebra did not start: {}",
            lab.log("zebra.log")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lab.spawn(
        &[
            NHRPD,
            "-z",
            &zapi,
            "-i",
            &format!("{d}/nhrpd.pid"),
            "--vty_socket",
            &d,
            "-f",
            conf.to_str().unwrap(),
            "--log",
            "stdout",
        ],
        "nhrpd.log",
    );
    // nhrpd connects 10 ms after start.
    wait_connections(&stats, 1, Duration::from_secs(10)).await;
    assert!(
        lab.log("nhrpd.log").contains("Connected to Event Manager"),
        "{}",
        lab.log("nhrpd.log")
    );

    // Server gone (socket removed, connection closed), then back: nhrpd
    // retries every 10 s.
    token.cancel();
    task.await.unwrap();
    assert!(!sock.exists());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats2 = Arc::new(NhrpStats::default());
    let token2 = CancellationToken::new();
    let task2 = server(&cfg, &stats2, &token2);
    let took = wait_connections(&stats2, 1, Duration::from_secs(15)).await;
    assert!(
        took > Duration::from_secs(5),
        "reconnect follows the 10 s retry timer ({took:?})"
    );
    // No binding happened, so nhrpd sent nothing to answer.
    assert_eq!(stats2.requests.load(Ordering::Relaxed), 0);
    token2.cancel();
    task2.await.unwrap();
    drop(lab);
}
