//! The keyed listener against the real kernel and the real BIRD: prefix
//! keys decide which handshakes complete, exemptions punch holes, a
//! re-created listener is re-keyed, BIRD logs `Unexpected connect` only for
//! signed knocks.
//!
//! Needs root (pidfd_getfd, TCP_MD5SIG on loopback sources 127.0.0.x). With
//! CI=true a missing prerequisite fails; otherwise the test skips. Traffic
//! stays on loopback, on ports no other test uses. Sockets with keys of
//! this process live only inside single tests, and BIRD is killed by pid
//! on drop.

mod common;

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use autopeer::config::Group;
use autopeer::keyring::{
    self, connect_signed, desired_keys, listening_sockets, Bird, DesiredKey, Family, KeyPlan,
    Keyring, KeyringError,
};
use autopeer::secret::Secret;
use common::bird::{free_port, loopback_conf, require_bird, RealBird};
use ipnet::IpNet;

const KEY: &str = "group-secret-1";
const T: Duration = Duration::from_millis(600);

/// Tests that key sockets of this very process must not overlap: a prefix
/// key on one test's listener would drop another test's unsigned connects.
static OWN_SOCKETS: Mutex<()> = Mutex::new(());

fn require_root() -> bool {
    common::prereq::runnable(
        "keyring test",
        common::prereq::root("pidfd_getfd, TCP_MD5SIG"),
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn plan(keys: &[(&str, &str)]) -> KeyPlan {
    KeyPlan {
        keys: keys
            .iter()
            .map(|(p, k)| DesiredKey {
                prefix: net(p),
                key: Secret::new((*k).to_owned()),
                group: "g".to_owned(),
            })
            .collect(),
        ..KeyPlan::default()
    }
}

/// Whether a connection from `from` to `to`, signed with `key`, completes
/// its handshake within `T`. A dropped SYN is `false`; other errors fail.
fn knocks(from: &str, to: SocketAddr, key: Option<&str>) -> bool {
    match connect_signed(ip(from), to, key.map(str::as_bytes), T) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => false,
        Err(e) => panic!("connect {from} -> {to}: {e}"),
    }
}

fn own_pid() -> i32 {
    std::process::id() as i32
}

/// This test process as the keyring's "BIRD": it holds a listening control
/// socket of its own, so [`Bird::find`] finds it and it may be keyed.
fn me() -> &'static Bird {
    static ME: std::sync::OnceLock<(tempfile::TempDir, std::os::unix::net::UnixListener, Bird)> =
        std::sync::OnceLock::new();
    &ME.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ctl = dir.path().join("me.ctl");
        let l = std::os::unix::net::UnixListener::bind(&ctl).unwrap();
        let bird = Bird::find(&ctl).expect("find this process by its control socket");
        assert_eq!(bird.pid(), own_pid());
        (dir, l, bird)
    })
    .2
}

/// `ss -tlnie` `md5keys:` field of the listener on `port`, e.g.
/// `127.0.0.0/8,...`, or None when it shows none.
fn ss_md5keys(port: u16) -> Option<String> {
    let out = Command::new("ss")
        .args(["-tlnie", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("md5keys:"))
        .map(str::to_owned)
}

#[test]
fn prefix_key_admits_only_signers_in_prefix() {
    if !require_root() {
        return;
    }
    let _g = OWN_SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let mut ring = Keyring::new();

    // Before keying: anyone gets in unsigned, nobody signed (the kernel
    // drops a signed SYN that the listener has no key for, docs/facts.md fact 1).
    assert!(knocks("127.0.0.3", to, None));
    assert!(!knocks("127.0.0.2", to, Some(KEY)));

    // 127.0.0.0/8 minus the exempted host 127.0.0.9 (docs/facts.md fact 13).
    let pieces = keyring::key_prefixes(&[net("127.0.0.0/8")], &[net("127.0.0.9/32")]);
    assert_eq!(pieces.len(), 24);
    let p = KeyPlan {
        keys: pieces
            .iter()
            .map(|p| DesiredKey {
                prefix: *p,
                key: Secret::new(KEY.to_owned()),
                group: "clients".to_owned(),
            })
            .collect(),
        ..KeyPlan::default()
    };
    let report = ring.sync(me(), &p).unwrap();
    let mine = report
        .listeners
        .iter()
        .find(|l| l.listener.local == to)
        .expect("our listener is found in /proc");
    assert_eq!(mine.listener.family, Family::V4);
    assert_eq!(mine.keys, 24);
    assert!(mine.new_socket);
    assert!(mine.failed.is_empty(), "{report}");
    let shown = report.to_string();
    assert!(!shown.contains(KEY), "report shows the key: {shown}");
    assert!(!format!("{report:?}{p:?}").contains(KEY));
    // Read back through sock_diag: exactly the pieces, in the kernel.
    assert_eq!(
        keyring::read_back(&mine.listener).unwrap(),
        Some(pieces.clone())
    );
    if let Some(keys) = ss_md5keys(to.port()) {
        assert!(keys.contains("127.0.0.0/29"), "ss md5keys: {keys}");
        assert!(keys.contains("127.0.0.8/32"), "ss md5keys: {keys}");
        assert!(!keys.contains(KEY), "ss shows the key: {keys}");
    }

    assert!(knocks("127.0.0.2", to, Some(KEY)), "right key is admitted");
    assert!(
        !knocks("127.0.0.2", to, Some("wrong-key")),
        "wrong key is dropped"
    );
    assert!(
        !knocks("127.0.0.3", to, None),
        "unsigned inside the prefix is dropped"
    );
    assert!(
        knocks("127.0.0.9", to, None),
        "the exempted host gets in unsigned"
    );
    assert!(!knocks("127.0.0.9", to, Some(KEY)), "and only unsigned");
    assert!(
        knocks("127.0.0.8", to, Some(KEY)),
        "its /32 sibling is keyed"
    );

    // A second sync changes nothing and re-applies every key.
    let again = ring.sync(me(), &p).unwrap();
    let mine = again
        .listeners
        .iter()
        .find(|l| l.listener.local == to)
        .unwrap();
    assert!(!mine.new_socket);
    assert_eq!((mine.keys, mine.removed), (24, 0));

    // Shrinking the plan deletes the stale keys.
    let report = ring.sync(me(), &plan(&[("127.0.0.0/30", KEY)])).unwrap();
    let mine = report
        .listeners
        .iter()
        .find(|l| l.listener.local == to)
        .unwrap();
    assert_eq!((mine.keys, mine.removed), (1, 24));
    assert!(knocks("127.0.0.5", to, None));
    assert!(!knocks("127.0.0.2", to, None));

    // remove_all leaves the listener as it was.
    let gone = ring.remove_all().unwrap();
    assert!(gone
        .listeners
        .iter()
        .any(|l| l.listener.local == to && l.removed == 1));
    assert!(knocks("127.0.0.2", to, None));
    assert!(!knocks("127.0.0.2", to, Some(KEY)));
    assert_eq!(ss_md5keys(to.port()), None);
    let l = listening_sockets(own_pid()).unwrap();
    let l = l.iter().find(|l| l.local == to).unwrap();
    assert_eq!(keyring::read_back(l).unwrap(), Some(Vec::new()));
}

#[test]
fn new_listener_inode_is_rekeyed_and_families_are_kept_apart() {
    if !require_root() {
        return;
    }
    let _g = OWN_SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    let to6 = v6.local_addr().unwrap();
    let p = plan(&[("127.0.0.0/24", KEY), ("::/64", KEY)]);
    let mut ring = Keyring::new();
    let first = ring.sync(me(), &p).unwrap();
    let old = first
        .listeners
        .iter()
        .find(|l| l.listener.local == to)
        .unwrap();
    let old_inode = old.listener.inode;
    assert_eq!(old.keys, 1, "only the IPv4 key on the IPv4 socket: {first}");
    let six = first
        .listeners
        .iter()
        .find(|l| l.listener.local == to6)
        .unwrap();
    assert_eq!((six.listener.family, six.keys), (Family::V6, 1));
    assert!(first.missing.is_empty());
    assert!(knocks("::1", to6, Some(KEY)));
    assert!(!knocks("::1", to6, None));

    // The kernel refuses an IPv4 key on an IPv6 socket.
    let e = keyring::sys::setsockopt_md5(v6.as_fd(), ip("127.0.0.0"), Some(8), KEY.as_bytes())
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));

    // The listener is closed and re-created on the same port (docs/facts.md fact 8).
    drop(listener);
    let listener = TcpListener::bind(to).unwrap();
    assert!(
        knocks("127.0.0.2", to, None),
        "the new socket has no key yet"
    );
    let second = ring.sync(me(), &p).unwrap();
    let new = second
        .listeners
        .iter()
        .find(|l| l.listener.local == to)
        .unwrap();
    assert_ne!(new.listener.inode, old_inode);
    assert!(new.new_socket, "{second}");
    assert!(!ring.keyed_inodes().contains(&old_inode));
    assert!(!knocks("127.0.0.2", to, None));
    assert!(knocks("127.0.0.2", to, Some(KEY)));

    // No IPv6 listener at all: the report says what to add.
    drop(v6);
    let third = ring.sync(me(), &p).unwrap();
    let has_v6 = third
        .listeners
        .iter()
        .any(|l| l.listener.family == Family::V6);
    if !has_v6 {
        assert_eq!(third.missing.len(), 1);
        assert_eq!(third.missing[0].family, Family::V6);
        assert!(third.to_string().contains("BIRD has no IPv6 BGP listener"));
    }
    ring.remove_all().unwrap();
    drop(listener);
}

/// Fact: a `TCP_MD5SIG_EXT` prefix key of full length (/32) is the same
/// kernel entry as BIRD's exact `TCP_MD5SIG` key for that address: BIRD's
/// deletion (keylen 0, exact form) removes ours, and ours overwrites BIRD's.
#[test]
fn host_length_prefix_key_is_the_exact_key() {
    if !require_root() {
        return;
    }
    let _g = OWN_SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let fd = listener.as_fd();
    keyring::sys::setsockopt_md5(fd, ip("127.0.0.4"), Some(32), KEY.as_bytes()).unwrap();
    assert!(!knocks("127.0.0.4", to, None));
    // BIRD's per-neighbor removal: exact form, keylen 0.
    keyring::sys::setsockopt_md5(fd, ip("127.0.0.4"), None, &[]).unwrap();
    assert!(
        knocks("127.0.0.4", to, None),
        "the exact delete removed our /32 key"
    );
    // BIRD's exact add followed by our /32 add: one entry, the last key wins.
    keyring::sys::setsockopt_md5(fd, ip("127.0.0.4"), None, b"bird-key").unwrap();
    keyring::sys::setsockopt_md5(fd, ip("127.0.0.4"), Some(32), KEY.as_bytes()).unwrap();
    assert!(knocks("127.0.0.4", to, Some(KEY)));
    assert!(!knocks("127.0.0.4", to, Some("bird-key")));
    // Deleting an absent key is ENOENT.
    keyring::sys::setsockopt_md5(fd, ip("127.0.0.4"), Some(32), &[]).unwrap();
    let e = keyring::sys::setsockopt_md5(fd, ip("127.0.0.4"), Some(32), &[]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
}

/// docs/facts.md fact 4, measured: how many keys one socket holds under optmem_max, and
/// that [`keyring::BYTES_PER_KEY`] matches this kernel within a slab step.
#[test]
fn optmem_per_key() {
    if !require_root() {
        return;
    }
    let _g = OWN_SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
    let optmem: usize = std::fs::read_to_string("/proc/sys/net/core/optmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // A socket nobody connects to: keys for 10.x addresses.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut n = 0usize;
    let err = loop {
        let a = 0x0a00_0000u32 + n as u32;
        let addr = IpAddr::V4(a.into());
        match keyring::sys::setsockopt_md5(listener.as_fd(), addr, Some(32), KEY.as_bytes()) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 1_000_000, "no limit reached");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOMEM), "{err}");
    let per_key = optmem / n;
    eprintln!("optmem_max {optmem}: {n} keys, about {per_key} bytes per key");
    assert!(
        per_key.abs_diff(keyring::BYTES_PER_KEY) <= 8,
        "measured {per_key} bytes per key, BYTES_PER_KEY is {}",
        keyring::BYTES_PER_KEY
    );
    assert!(keyring::optmem_estimate(optmem, n + 10).is_some());
    assert!(keyring::optmem_estimate(optmem, n.saturating_sub(10)).is_none());
}

fn group(name: &str, template: &str, prefixes: &[&str], password: Option<&str>) -> Group {
    Group {
        name: name.to_owned(),
        template: template.to_owned(),
        prefixes: prefixes.iter().map(|p| net(p)).collect(),
        neighbor: None,
        password: password.map(|p| Secret::new(p.to_owned())),
        deny: Vec::new(),
        max_peers: 10,
        rate: None,
        expire: None,
        interface: None,
        nbma_prefixes: Vec::new(),
        cert: None,
        depart: None,
        ao_keys: Vec::new(),
    }
}

/// A bird2 started without `-f`, as sysvinit/OpenRC scripts and BIRD 1.6
/// init scripts start it: the process we spawn forks the daemon and exits,
/// so `SO_PEERCRED` on the control socket names that exited parent. The
/// daemon's pid comes from the pid file (`-P`); it is killed by that pid on
/// drop, after checking that /proc/PID/cmdline names our config.
struct DaemonBird {
    dir: std::path::PathBuf,
    ctl: std::path::PathBuf,
    conf: std::path::PathBuf,
    pid: i32,
    /// The parent that created the control socket and exited.
    creator: i32,
}

impl DaemonBird {
    fn start(dir: &std::path::Path, conf_text: &str) -> DaemonBird {
        std::fs::create_dir_all(dir.join("peers")).unwrap();
        let conf = dir.join("bird.conf");
        let ctl = dir.join("bird.ctl");
        let pidfile = dir.join("bird.pid");
        std::fs::write(&conf, conf_text).unwrap();
        let out = Command::new(common::bird::BIRD)
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(&ctl)
            .arg("-P")
            .arg(&pidfile)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn bird");
        let creator = out.id() as i32;
        let status = { out }.wait().expect("wait for bird's parent");
        assert!(status.success(), "bird (daemonizing) exited with {status}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            let p = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok());
            if let Some(p) = p {
                if std::os::unix::net::UnixStream::connect(&ctl).is_ok() {
                    break p;
                }
            }
            assert!(Instant::now() < deadline, "daemonized bird did not come up");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_ne!(pid, creator, "bird did not fork");
        DaemonBird {
            dir: dir.to_owned(),
            ctl,
            conf,
            pid,
            creator,
        }
    }
}

impl Drop for DaemonBird {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        let ours = String::from_utf8_lossy(&cmdline).contains(&*self.conf.to_string_lossy());
        if ours {
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// How a test starts its BIRD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `bird -f`: the control socket's creator is BIRD itself.
    Foreground,
    /// `bird` without `-f`: the creator is a parent that exited.
    Daemonized,
}

/// A real BIRD started either way, ended by pid on drop.
struct Started {
    bird: DaemonBird,
    /// The foreground BIRD, our child (killed by its own drop).
    _child: Option<RealBird>,
}

impl std::ops::Deref for Started {
    type Target = DaemonBird;
    fn deref(&self) -> &DaemonBird {
        &self.bird
    }
}

impl DaemonBird {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default()
    }
}

fn start_bird(mode: Mode, dir: &std::path::Path, conf: &str) -> Started {
    match mode {
        Mode::Foreground => {
            let child = RealBird::start(dir, conf);
            let pid = child.pid() as i32;
            Started {
                bird: DaemonBird {
                    dir: child.dir.clone(),
                    ctl: child.ctl.clone(),
                    conf: child.conf.clone(),
                    pid,
                    creator: pid,
                },
                _child: Some(child),
            }
        }
        Mode::Daemonized => Started {
            bird: DaemonBird::start(dir, conf),
            _child: None,
        },
    }
}

fn wait_for_log(bird: &DaemonBird, needle: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if bird.log().contains(needle) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn birdc(bird: &DaemonBird, cmd: &str) -> String {
    let out = Command::new("/usr/sbin/birdc")
        .arg("-s")
        .arg(&bird.ctl)
        .arg(cmd)
        .output()
        .expect("run birdc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn real_bird_signed_knock_is_seen_and_restart_is_rekeyed() {
    signed_knock_and_restart(Mode::Foreground);
}

/// Issue 10 finding 3: a daemonized BIRD (started without `-f`) is found
/// through its control socket, not through the exited parent that
/// SO_PEERCRED names, and its listener is keyed like a foreground one's.
#[test]
fn daemonized_real_bird_is_found_and_keyed() {
    signed_knock_and_restart(Mode::Daemonized);
}

fn signed_knock_and_restart(mode: Mode) {
    if !require_bird() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let bird = start_bird(mode, tmp.path(), &loopback_conf(tmp.path(), port));
    let bird: &DaemonBird = &bird;
    let pid = bird.pid;
    let found = Bird::find(&bird.ctl).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
    assert_eq!(found.pid(), pid, "{mode:?}");
    found.verify().unwrap();
    let creator = rustix::net::sockopt::socket_peercred(
        std::os::unix::net::UnixStream::connect(&bird.ctl).unwrap(),
    )
    .unwrap()
    .pid
    .as_raw_nonzero()
    .get();
    assert_eq!(creator, bird.creator, "{mode:?}");
    if mode == Mode::Daemonized {
        assert_ne!(creator, pid, "SO_PEERCRED names the exited parent");
        assert!(!std::path::Path::new(&format!("/proc/{creator}")).exists());
    }

    // The control socket comes up before the BGP protocols open the listener.
    let deadline = Instant::now() + Duration::from_secs(5);
    let listeners = loop {
        let l = listening_sockets(pid).unwrap();
        if !l.is_empty() || Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(listeners.len(), 1, "{listeners:?}");
    assert_eq!(listeners[0].local, to);
    assert_eq!(keyring::probe(&found).unwrap(), listeners);

    // Group 127.0.0.0/24; peer_a (127.0.0.2) and peer_b (127.0.0.3) are
    // static neighbors without a password, so they are exempted.
    let conf = autopeer::bird::conf::scan(&bird.conf, &tmp.path().join("autopeer.conf")).unwrap();
    let mut g = group("clients", "peers", &["127.0.0.0/24"], Some(KEY));
    g.deny = vec![net("127.0.0.64/26")];
    let plan = desired_keys(&[g], &conf).unwrap();
    let covered = |a: &str| plan.keys.iter().any(|k| k.prefix.contains(&ip(a)));
    assert!(covered("127.0.0.50") && !covered("127.0.0.2") && !covered("127.0.0.3"));
    assert!(!covered("127.0.0.70"), "deny is exempted");

    let mut ring = Keyring::new();
    let report = ring.sync(&found, &plan).unwrap();
    assert!(report.complete(), "{report}");
    assert_eq!(report.listeners.len(), 1);
    assert_eq!(report.listeners[0].keys, plan.keys.len());
    let mut want: Vec<IpNet> = plan.keys.iter().map(|k| k.prefix).collect();
    want.sort();
    assert_eq!(keyring::read_back(&listeners[0]).unwrap(), Some(want));

    // Unsigned from inside the prefix: dropped by the kernel, BIRD sees nothing.
    assert!(!knocks("127.0.0.51", to, None));
    // Signed: BIRD accepts, logs Unexpected connect, closes.
    assert!(knocks("127.0.0.50", to, Some(KEY)));
    assert!(
        wait_for_log(
            bird,
            "Unexpected connect from unknown address 127.0.0.50",
            Duration::from_secs(3)
        ),
        "no Unexpected connect line: {}",
        bird.log()
    );
    assert!(!bird.log().contains("unknown address 127.0.0.51"));
    // The exempted static neighbor's address still reaches BIRD unsigned.
    assert!(knocks("127.0.0.3", to, None));

    // restart all: every protocol goes down at once, BIRD re-creates its
    // listener (docs/facts.md fact 8) with no keys on it.
    let out = birdc(bird, "restart all");
    assert!(out.contains("restarted"), "birdc: {out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let new = loop {
        let now = listening_sockets(pid).unwrap();
        if let Some(l) = now
            .iter()
            .find(|l| l.local == to && l.inode != listeners[0].inode)
        {
            break l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "listener inode did not change: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let report = ring.sync(&found, &plan).unwrap();
    assert_eq!(report.listeners.len(), 1);
    assert_eq!(report.listeners[0].listener.inode, new.inode);
    assert!(report.listeners[0].new_socket, "{report}");
    assert_eq!(ring.keyed_inodes(), vec![new.inode]);
    assert!(!knocks("127.0.0.52", to, None));
    assert!(knocks("127.0.0.53", to, Some(KEY)));
    assert!(wait_for_log(
        bird,
        "Unexpected connect from unknown address 127.0.0.53",
        Duration::from_secs(3)
    ));
    ring.remove_all().unwrap();
    assert!(knocks("127.0.0.52", to, None));
}

/// Which placeholder keeps an IPv6 listener open: a `disabled` protocol
/// does not; a passive multihop protocol with an unreachable neighbor does.
#[test]
fn real_bird_ipv6_listener_needs_a_started_protocol() {
    if !require_bird() {
        return;
    }
    let port = free_port();
    let conf = |extra: &str| {
        format!(
            r#"router id 10.0.0.1;
protocol device {{ }}
protocol bgp v6_placeholder {{
  local port {port} as 65001;
  neighbor 2001:db8::1 port {port} as 65000;
  multihop; passive;{extra}
  ipv6 {{ import none; export none; }};
}}
"#
        )
    };
    let has_v6 = |pid: i32| {
        listening_sockets(pid)
            .unwrap()
            .iter()
            .any(|l| l.family == Family::V6 && l.local.port() == port)
    };
    let tmp = tempfile::tempdir().unwrap();
    let disabled = RealBird::start(tmp.path(), &conf(" disabled;"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !has_v6(disabled.pid() as i32),
        "a disabled protocol opened a listener"
    );
    drop(disabled);

    let tmp = tempfile::tempdir().unwrap();
    let passive = RealBird::start(tmp.path(), &conf(""));
    let deadline = Instant::now() + Duration::from_secs(3);
    while !has_v6(passive.pid() as i32) {
        assert!(
            Instant::now() < deadline,
            "no IPv6 listener: {}",
            passive.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let l = listening_sockets(passive.pid() as i32).unwrap();
    assert_eq!(l[0].local, SocketAddr::new(ip("::"), port));
}

/// An IPv6 wildcard listener without IPV6_V6ONLY (BIRD 1.6 `listen bgp
/// dual`) takes IPv4 peers too: their prefix keys go on it v4-mapped.
#[test]
fn dual_stack_listener_gets_ipv4_keys_mapped() {
    if !require_root() {
        return;
    }
    let _g = OWN_SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
    let dual = TcpListener::bind("[::]:0").unwrap();
    assert!(
        !rustix::net::sockopt::ipv6_v6only(&dual).unwrap(),
        "needs bindv6only=0"
    );
    let port = dual.local_addr().unwrap().port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ring = Keyring::new();
    let report = ring.sync(me(), &plan(&[("127.0.0.0/24", KEY)])).unwrap();
    let mine = report
        .listeners
        .iter()
        .find(|l| l.listener.local.port() == port)
        .unwrap();
    assert_eq!(
        (mine.listener.family, mine.keys),
        (Family::V6, 1),
        "{report}"
    );
    assert!(mine.failed.is_empty(), "{report}");
    assert!(report.missing.is_empty(), "{report}");
    assert!(!knocks("127.0.0.2", to, None));
    assert!(knocks("127.0.0.2", to, Some(KEY)));
    let gone = ring.remove_all().unwrap();
    assert!(gone
        .listeners
        .iter()
        .any(|l| l.removed == 1 && l.failed.is_empty()));
    assert!(knocks("127.0.0.2", to, None));
}

/// BIRD's own exact key for an MD5 static neighbor inside the group prefix
/// is left alone by sync and remove_all, and the neighbor is exempted from
/// the group key (docs/facts.md fact 13), so its own key decides.
#[test]
fn real_bird_exact_keys_are_left_alone() {
    if !require_bird() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = loopback_conf(tmp.path(), port).replace(
        &format!("neighbor 127.0.0.3 port {port} as 65003;"),
        &format!("neighbor 127.0.0.3 port {port} as 65003; password \"bird-own\";"),
    );
    assert!(text.contains("bird-own"));
    let bird = RealBird::start(tmp.path(), &text);
    let pid = bird.pid() as i32;
    let bird_key = net("127.0.0.3/32");
    let deadline = Instant::now() + Duration::from_secs(5);
    let listener = loop {
        let l = listening_sockets(pid).unwrap();
        if let Some(l) = l.into_iter().next() {
            if keyring::read_back(&l)
                .unwrap()
                .unwrap_or_default()
                .contains(&bird_key)
            {
                break l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "BIRD never keyed 127.0.0.3: {}",
            bird.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let conf = autopeer::bird::conf::scan(&bird.conf, &tmp.path().join("autopeer.conf")).unwrap();
    let g = group("clients", "peers", &["127.0.0.0/24"], Some(KEY));
    let plan = desired_keys(&[g], &conf).unwrap();
    assert!(plan.bird_exact.contains(&ip("127.0.0.3")));
    assert!(!plan
        .keys
        .iter()
        .any(|k| k.prefix.contains(&ip("127.0.0.3"))));

    let mut ring = Keyring::new();
    let report = ring.sync(&Bird::find(&bird.ctl).unwrap(), &plan).unwrap();
    assert!(report.complete(), "{report}");
    let keys = keyring::read_back(&listener).unwrap().unwrap();
    assert!(keys.contains(&bird_key));
    assert_eq!(keys.len(), plan.keys.len() + 1, "{keys:?}");
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(knocks("127.0.0.60", to, Some(KEY)));
    assert!(
        !knocks("127.0.0.3", to, Some(KEY)),
        "BIRD's key decides for its neighbor"
    );

    ring.remove_all().unwrap();
    let keys = keyring::read_back(&listener).unwrap().unwrap();
    assert_eq!(keys, vec![bird_key]);
}

/// bird2 on loopback with BIRD's own keys on its listener: an exact key
/// for the static neighbor 127.0.0.3 and a range key for the native
/// dynamic range 127.0.7.0/24 (both with a password).
fn conf_with_birds_own_keys(dir: &std::path::Path, port: u16) -> String {
    let text = loopback_conf(dir, port).replace(
        &format!("neighbor 127.0.0.3 port {port} as 65003;"),
        &format!("neighbor 127.0.0.3 port {port} as 65003; password \"bird-own\";"),
    );
    assert!(text.contains("bird-own"));
    text + &format!(
        "protocol bgp dyn from peers {{\n  neighbor range 127.0.7.0/24 port {port} as 65007;\n  dynamic name \"dyn\";\n  password \"range-key\";\n}}\n"
    )
}

/// The listener of `pid` once BIRD has put `want` keys on it.
fn listener_with(bird: &DaemonBird, want: &[IpNet]) -> keyring::Listener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(l) = listening_sockets(bird.pid).unwrap().into_iter().next() {
            let keys = keyring::read_back(&l).unwrap().unwrap_or_default();
            if want.iter().all(|k| keys.contains(k)) {
                return l;
            }
        }
        assert!(
            Instant::now() < deadline,
            "BIRD never installed {want:?}: {}",
            bird.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn keys_on(l: &keyring::Listener) -> Vec<IpNet> {
    keyring::read_back(l).unwrap().unwrap()
}

/// Issue 10 finding 4: prefix keys left by a keyring that never cleaned
/// up (autopeer killed with SIGKILL: its keys stay on BIRD's socket and no
/// process remembers them; `mem::forget` leaves the kernel in exactly that
/// state) are removed at the next run's first sync, and by the sweep that
/// `keyring = "off"` runs; BIRD's own exact key and its range key for a
/// native `neighbor range` stay. Also: once BIRD is gone, the pinned handle
/// refuses to touch anything.
#[test]
fn stale_prefix_keys_of_a_killed_keyring_are_removed() {
    if !require_bird() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let bird = DaemonBird::start(tmp.path(), &conf_with_birds_own_keys(tmp.path(), port));
    let birds_own = [net("127.0.0.3/32"), net("127.0.7.0/24")];
    let listener = listener_with(&bird, &birds_own);
    assert_eq!(keys_on(&listener), birds_own.to_vec());
    let found = Bird::find(&bird.ctl).unwrap();
    let conf = autopeer::bird::conf::scan(&bird.conf, &tmp.path().join("autopeer.conf")).unwrap();
    assert_eq!(keyring::bird_ranges(&conf), [net("127.0.7.0/24")].into());

    // The killed run keyed 127.0.0.0/24 (minus the static neighbors).
    let old = desired_keys(
        &[group("clients", "peers", &["127.0.0.0/24"], Some(KEY))],
        &conf,
    )
    .unwrap();
    let mut killed = Keyring::new();
    assert!(killed.sync(&found, &old).unwrap().complete());
    std::mem::forget(killed);
    let planted = keys_on(&listener);
    assert!(planted.contains(&net("127.0.0.128/25")), "{planted:?}");

    // The next run wants only 127.0.0.128/26: its first sync removes the
    // rest, though it never installed them.
    let new = desired_keys(
        &[group("clients", "peers", &["127.0.0.128/26"], Some(KEY))],
        &conf,
    )
    .unwrap();
    let mut ring = Keyring::new();
    let report = ring.sync(&found, &new).unwrap();
    assert!(report.complete(), "{report}");
    let mut want: Vec<IpNet> = birds_own.to_vec();
    want.push(net("127.0.0.128/26"));
    want.sort();
    assert_eq!(keys_on(&listener), want);
    assert_eq!(
        report.listeners[0].removed,
        planted.len() - birds_own.len(),
        "{report}"
    );
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        knocks("127.0.0.9", to, None),
        "no stale key left at 127.0.0.9"
    );
    std::mem::forget(ring);

    // keyring = "off" after a kill: the sweep leaves only BIRD's keys.
    let mut off = Keyring::new();
    let report = off.sweep(&found, &keyring::bird_ranges(&conf)).unwrap();
    assert_eq!(report.listeners[0].removed, 1, "{report}");
    assert_eq!(keys_on(&listener), birds_own.to_vec());
    assert!(off.keyed_inodes().is_empty());
    assert!(knocks("127.0.0.130", to, None));

    // BIRD gone: the handle no longer verifies, nothing is duplicated.
    drop(bird);
    let deadline = Instant::now() + Duration::from_secs(5);
    while found.verify().is_ok() {
        assert!(Instant::now() < deadline, "BIRD did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    match Keyring::new().sync(&found, &new) {
        Err(KeyringError::Gone { pid }) => assert_eq!(pid, found.pid()),
        other => panic!("expected Gone, got {other:?}"),
    }
}

/// The system's python3 (the decoy runs it as uid 65534, so not a
/// per-user install).
const PYTHON: &str = "/usr/bin/python3";

/// python3 runs the decoy; with CI=true its absence is a failure.
fn require_python() -> bool {
    common::prereq::runnable(
        "decoy test",
        common::prereq::runs(PYTHON, &["-c", "pass"], "apt install python3"),
    )
}

/// An unprivileged process (uid 65534) that calls itself `bird`, listens
/// on TCP like BIRD, and binds a listening UNIX socket to a path with a
/// newline in it, so that /proc/net/unix shows a forged row naming BIRD's
/// control socket path with the decoy's own socket inode. Started before
/// BIRD, so a scan meets it first. Never keyed: Bird::find checks what the
/// kernel says about the socket, not what /proc/net/unix prints.
#[test]
fn a_decoy_named_bird_is_never_used() {
    if !require_bird() || !require_python() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let decoy_port = free_port();
    let ctl = tmp.path().join("bird.ctl");
    let spot = tempfile::Builder::new()
        .prefix("d")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        spot.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let script = format!(
        r#"
import os, socket, sys, time
open("/proc/self/comm", "w").write("bird")
t = socket.socket(); t.bind(("127.0.0.1", {decoy_port})); t.listen(8)
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ino = os.fstat(u.fileno()).st_ino
path = "{spot}/x\n0000000000000000: 00000002 00000000 00010000 0001 01 %d {ctl}" % ino
os.makedirs(os.path.dirname(path))
u.bind(path)
u.listen(8)
print("ready", flush=True)
time.sleep(60)
"#,
        spot = spot.path().display(),
        ctl = ctl.display(),
    );
    let mut decoy = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            PYTHON,
            "-c",
            &script,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the decoy");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(decoy.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let decoy = Kill(decoy);
    assert_eq!(line.trim(), "ready");
    let decoy_pid = decoy.0.id() as i32;
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{decoy_pid}/comm"))
            .unwrap()
            .trim(),
        "bird"
    );

    let bird = DaemonBird::start(tmp.path(), &loopback_conf(tmp.path(), port));
    assert!(decoy_pid < bird.pid, "the decoy comes first in a scan");
    let candidates =
        keyring::holder::find_holders(std::path::Path::new("/proc"), &ctl, Some(bird.creator));
    assert!(
        candidates.iter().any(|h| h.pid == decoy_pid),
        "the forged row did not make the decoy a candidate: {candidates:?}"
    );
    let found = Bird::find(&ctl).unwrap();
    assert_eq!(found.pid(), bird.pid);

    let conf = autopeer::bird::conf::scan(&bird.conf, &tmp.path().join("autopeer.conf")).unwrap();
    let plan = desired_keys(
        &[group("clients", "peers", &["127.0.0.0/24"], Some(KEY))],
        &conf,
    )
    .unwrap();
    let _ = listener_with(&bird, &[]);
    let report = Keyring::new().sync(&found, &plan).unwrap();
    assert!(report.complete(), "{report}");
    assert!(
        report
            .listeners
            .iter()
            .all(|l| l.listener.local.port() == port),
        "{report}"
    );
    let theirs = listening_sockets(decoy_pid).unwrap();
    let theirs = theirs
        .iter()
        .find(|l| l.local.port() == decoy_port)
        .expect("the decoy's TCP listener");
    assert_eq!(keyring::read_back(theirs).unwrap(), Some(Vec::new()));
    drop(decoy);
}
