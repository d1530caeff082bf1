//! README's "On your router", step by step, on Debian's stock bird.conf.
//!
//! The steps are read from README.md (its fenced `sh`, `conf` and `toml`
//! blocks), so README and test cannot drift: every `sh` line is either
//! run as written inside the router's namespaces or stood in for by what
//! it would do (named below); a line this test does not know fails it.
//!
//! The router is a lab's rr network namespace (bird/lab, one bird2
//! client c2 knocking from 10.88.0.2) plus a private mount namespace with
//! tmpfs on /run, /etc/bird, /var/lib and /var/log, and a real
//! systemd-journald outside PID 1 (`/dev/log` is its socket). BIRD is the
//! host's bird2 started as Debian's unit starts it (`prepare-environment`,
//! `bird -f -u bird -g bird`) on the package's own /usr/share/bird2/bird.conf,
//! which logs only to syslog. The README's three lines are appended, its
//! autopeer.toml written as is, `autopeer check` must pass and name the
//! journal, the unit's ExecStart line runs the daemon, and c2 is admitted
//! (via the journal) and Established on both ends.
//!
//! Needs root, bird2, iproute2, util-linux, systemd-journald. With CI=true
//! a missing prerequisite fails the test; elsewhere it skips with one line.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::journald::{journald_allowed, Journald, Ns};
use common::lab::{read, repo, wait_for_dump, Lab};

/// The stock bird.conf as the bird2 package ships it (its postinst copies
/// it to /etc/bird/bird.conf).
const STOCK_BIRD_CONF: &str = "/usr/share/bird2/bird.conf";

/// The "On your router" section of README.md.
fn router_section() -> String {
    let readme = read(&repo().join("README.md"));
    let start = readme
        .find("\n## On your router\n")
        .expect("README.md has an \"On your router\" section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_owned()
}

/// The bodies of the section's fenced blocks tagged `lang`, in order.
fn blocks(section: &str, lang: &str) -> Vec<String> {
    let open = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = section;
    while let Some(i) = rest.find(&open) {
        let body = &rest[i + open.len()..];
        let end = body.find("```\n").expect("an unclosed block in README.md");
        out.push(body[..end].to_owned());
        rest = &body[end..];
    }
    out
}

/// BIRD, started inside the router's namespaces; SIGTERM by pid on drop,
/// then SIGKILL.
struct Bird(Child);

impl Drop for Bird {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let pid = rustix::process::Pid::from_child(&self.0);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            std::thread::sleep(Duration::from_millis(500));
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// ARGV run inside the router: the mount namespace and the rr's network
/// namespace (nsenter execs in place, so a spawned child's pid is the
/// program's). `/usr/sbin/autopeer` is this build's binary.
fn inside(ns: &Ns, argv: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.args(["-t", &ns.pid().to_string(), "-m", "-n", "--"]);
    for (i, a) in argv.iter().enumerate() {
        if i == 0 && (*a == "/usr/sbin/autopeer" || *a == "autopeer") {
            c.arg(env!("CARGO_BIN_EXE_autopeer"));
        } else {
            c.arg(a);
        }
    }
    c.stdin(Stdio::null());
    c
}

/// Runs a shell line inside the router; its output, or a panic naming it.
fn sh(ns: &Ns, line: &str) -> String {
    let out = inside(ns, &["sh", "-c", line]).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "`{line}` failed:\n{text}");
    text
}

/// The ExecStart= command of bird/autopeer.service, split on spaces.
fn unit_exec_start() -> Vec<String> {
    let unit = read(&repo().join("bird/autopeer.service"));
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("bird/autopeer.service has an ExecStart= line");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_readme_router_section_admits_a_peer_on_stock_debian() {
    let what = "the README's \"On your router\" test";
    let tools = [
        "bird",
        "birdc",
        "ip",
        "unshare",
        "nsenter",
        "journalctl",
        "dpkg",
    ];
    if !journald_allowed(&tools, what) {
        return;
    }
    let section = router_section();
    let sh_blocks = blocks(&section, "sh");
    let (conf_lines, toml) = (blocks(&section, "conf"), blocks(&section, "toml"));
    assert_eq!(
        (sh_blocks.len(), conf_lines.len(), toml.len()),
        (2, 1, 1),
        "README's router section: two sh blocks, one conf, one toml\n{section}"
    );
    let stock = read(Path::new(STOCK_BIRD_CONF));
    assert!(
        stock.lines().any(|l| l == "log syslog all;"),
        "{STOCK_BIRD_CONF} is not Debian's stock file:\n{stock}"
    );

    // The router's network: the lab's rr namespace, the lab's own BIRD
    // stopped (`--no-start` starts only it); c2 knocks from 10.88.0.2 every ~2 s.
    let lab = Lab::up(&["--clients", "1", "--no-start"]);
    let out = lab.script(&["stop", "rr"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.start("c2");
    let dir = lab.dir.path().to_path_buf();
    let ns = Ns::in_netns(&dir, lab.get("RR_NS"));
    // What the router has on disk: tmpfs over the paths autopeer and BIRD
    // use, Debian's /etc/bird (bird:bird 0750) with its envvars.
    let envvars = read(Path::new("/etc/bird/envvars"));
    sh(
        &ns,
        "set -e
         for d in /etc/bird /var/lib /var/log; do mount -t tmpfs -o mode=755 tmpfs $d; done
         chown bird:bird /etc/bird && chmod 750 /etc/bird
         # ip netns exec mounted a fresh /sys without cgroups; journald needs them.
         mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup",
    );
    std::fs::write(ns.path("/etc/bird/envvars"), envvars).unwrap();
    let _journald = Journald::start(&ns, &dir);

    // The first block: install.
    for line in sh_blocks[0].lines() {
        match line {
            // Stand-in: this host has bird2 installed; its stock bird.conf
            // is copied where its postinst puts it, as bird:bird 0640.
            "apt install bird2" => {
                let out = Command::new("dpkg-query")
                    .args(["-W", "-f", "${Status}", "bird2"])
                    .output()
                    .unwrap();
                assert_eq!(String::from_utf8_lossy(&out.stdout), "install ok installed");
                std::fs::write(ns.path("/etc/bird/bird.conf"), &stock).unwrap();
                sh(
                    &ns,
                    "chown bird:bird /etc/bird/bird.conf && chmod 640 /etc/bird/bird.conf",
                );
            }
            // Stand-in: this build's binary is /usr/sbin/autopeer (inside()).
            l if l.starts_with("cargo build --release && install ") => {
                assert!(l.ends_with(" /usr/sbin/autopeer"), "{l}");
            }
            // Stand-in: the unit's ExecStart line is run below.
            l if l.starts_with("install -m 644 bird/autopeer.service ") => {}
            // Run as written.
            l if l.starts_with("install ") && l.contains("/etc/bird/") => {
                sh(&ns, l);
            }
            other => panic!("README step this test does not know: {other}"),
        }
    }
    // BIRD as Debian's bird.service starts it.
    sh(&ns, "/usr/lib/bird/prepare-environment");
    let bird_out = std::fs::File::create(dir.join("router-bird.out")).unwrap();
    let bird = Bird(
        inside(&ns, &["/usr/sbin/bird", "-f", "-u", "bird", "-g", "bird"])
            .stdout(bird_out.try_clone().unwrap())
            .stderr(bird_out)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !inside(&ns, &["birdc", "show", "status"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Daemon is up"))
    {
        assert!(
            Instant::now() < deadline,
            "stock BIRD did not come up: {}",
            read(&dir.join("router-bird.out"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The README's lines and autopeer.toml, as they are.
    let conf_path = ns.path("/etc/bird/bird.conf");
    std::fs::write(&conf_path, stock.clone() + "\n" + &conf_lines[0]).unwrap();
    std::fs::write(ns.path("/etc/bird/autopeer.toml"), &toml[0]).unwrap();

    let audit = ns.path("/var/log/autopeer.log");
    let daemon_out = dir.join("autopeer.out");
    let protocols = || {
        let out = inside(&ns, &["birdc", "show", "protocols"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dump = || {
        format!(
            "--- journal\n{}\n--- audit\n{}\n--- daemon\n{}\n--- bird.conf\n{}\n--- include\n{}\n--- rr\n{}",
            ns.journalctl(&["--output=short", "--lines=40"]),
            read(&audit),
            read(&daemon_out),
            read(&conf_path),
            read(&ns.path("/etc/bird/autopeer.conf")),
            protocols()
        )
    };
    // The second block: configure, check, start.
    let mut daemon = None;
    for line in sh_blocks[1].lines() {
        match line {
            "birdc configure" => {
                let out = sh(&ns, line);
                assert!(out.contains("Reconfigured"), "{out}\n{}", dump());
            }
            l if l.starts_with("autopeer ") && l.ends_with(" check") => {
                let argv: Vec<&str> = l.split_whitespace().collect();
                let out = inside(&ns, &argv).output().unwrap();
                let said = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "`{l}` failed:\n{said}");
                assert!(
                    said.contains("BIRD's trigger line will be seen in the systemd journal"),
                    "check does not name the journal:\n{said}"
                );
                assert!(!said.contains("warning:"), "check warns:\n{said}");
            }
            // Stand-in for systemd: the unit's ExecStart line.
            "systemctl enable --now autopeer" => {
                // What the unit's StateDirectory= and RuntimeDirectory= make.
                sh(&ns, "install -d -m 750 /var/lib/autopeer /run/autopeer");
                let argv = unit_exec_start();
                assert_eq!(argv[0], "/usr/sbin/autopeer", "{argv:?}");
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                daemon = Some(Daemon::spawn(inside(&ns, &argv), &daemon_out));
            }
            other => panic!("README step this test does not know: {other}"),
        }
    }
    let daemon = daemon.expect("README starts autopeer");

    // c2's knock reaches BIRD's journal entry and autopeer admits it.
    wait_for_dump("c2 admitted via the journal", 40, &dump, || {
        read(&audit).contains("adding neighbor 10.88.0.2 to group peers (via journal)")
    });
    wait_for_dump("peers_10_88_0_2 Established", 40, &dump, || {
        protocols()
            .lines()
            .any(|l| l.starts_with("peers_10_88_0_2 ") && l.contains("Established"))
    });
    assert!(lab.established_on("c2", "to_rr", 30), "{}", dump());
    // `show sources`: the journal is the one source, verified, and it
    // counted BIRD's entry.
    let out = inside(&ns, &["autopeer", "show", "sources"])
        .output()
        .unwrap();
    let sources = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = |name: &str| {
        sources
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&name))
            .unwrap_or_default()
            .join(" ")
    };
    assert_eq!(row("source"), "source verified journal", "{sources}");
    assert!(
        row("journal.sightings")
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            >= Some(1),
        "{sources}"
    );
    assert_eq!(row("journal.forged"), "journal.forged 0", "{sources}");
    daemon.stop();
    drop(bird);
}

/// Debian 13: the README's three lines on the stock bird.conf of trixie's
/// `bird2` (2.17) and `bird3` (3.1), parsed by that BIRD (`bird -p`,
/// chrooted into the root bird/roots prepared, /etc/bird a tmpfs in a
/// private mount namespace, the include empty as the README's `install`
/// line leaves it).
#[test]
fn the_readme_lines_parse_on_debian_13() {
    let what = "the README's bird.conf lines on Debian 13";
    if !common::lab::lab_allowed(&["unshare", "chroot"], what) {
        return;
    }
    let section = router_section();
    let lines = &blocks(&section, "conf")[0];
    for (version, package) in [("2.17", "bird2"), ("3.1", "bird3")] {
        if !common::lab::rr_bird_prepared(version, what) {
            return;
        }
        let out = Command::new(repo().join("bird/roots"))
            .args(["path", version])
            .output()
            .unwrap();
        let root = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let stock = read(&Path::new(&root).join(format!("usr/share/{package}/bird.conf")));
        assert!(
            stock.lines().any(|l| l == "log syslog all;"),
            "not Debian 13's stock {package} bird.conf:\n{stock}"
        );
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("bird.conf");
        std::fs::write(&conf, stock + "\n" + lines).unwrap();
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "set -e; mount -t tmpfs tmpfs \"$1/etc/bird\"; cp \"$2\" \"$1/etc/bird/bird.conf\"; \
                 : > \"$1/etc/bird/autopeer.conf\"; exec chroot \"$1\" /usr/sbin/bird -p -c /etc/bird/bird.conf",
            )
            .args(["sh", &root])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "BIRD {version} refuses the README's lines:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
