//! `configure` alone guards BIRD against a broken include, on every BIRD
//! version autopeer supports (1.6.8, 2.0.12, 2.17.x, 3.1.x; bird/roots
//! prepares them). autopeer's apply sends no `configure check` first
//! (docs/facts.md, fact 16): this proves, on each real BIRD, that
//! `configure` of a config with a parse error in the owned include
//! commits nothing (a valid new protocol before the error does not
//! appear, the old ones stay), that BIRD's reply names the file and line,
//! that autopeer restores the include byte for byte, that an error in
//! bird.conf itself keeps the (valid) include and loads nothing, and that
//! the next good apply loads.
//!
//! Each BIRD runs in a network namespace of its own (`unshare -n`: its
//! BGP listener sees nobody); 2.17 and 3.1 run chrooted into their root
//! with the test's directory bind-mounted at the same path inside (a
//! private mount namespace, as bird/lab does), so BIRD and autopeer name
//! the include alike. Needs root, util-linux and the prepared roots; with
//! CI=true a missing one fails the test, elsewhere it skips.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use autopeer::apply::{self, ApplyError, Target};
use autopeer::bird::client::Connection;
use common::bird::{BirdFiles, RealBird};
use common::prereq;

/// BIRD `version` started on `dir` (bird.conf already written there), in
/// its own network namespace; plus the mount point this made inside a
/// chroot root (removed on drop, after BIRD is gone).
struct Versioned {
    bird: Option<RealBird>,
    mount_point: Option<PathBuf>,
}

impl Drop for Versioned {
    fn drop(&mut self) {
        drop(self.bird.take());
        if let Some(p) = self.mount_point.take() {
            let _ = std::fs::remove_dir(p);
        }
    }
}

fn start(version: &str, root: &Path, dir: &Path) -> Versioned {
    let files = BirdFiles::flat(dir);
    let root_s = root.to_string_lossy().into_owned();
    let dir_s = dir.to_string_lossy().into_owned();
    let bin16 = root.join("usr/sbin/bird").to_string_lossy().into_owned();
    let mut mount_point = None;
    // `RealBird::launch` appends /usr/sbin/bird and its arguments.
    let prefix: Vec<String> = match version {
        "2.0" => vec!["unshare".into(), "-n".into()],
        // The unpacked 1.6.8 binary in place of the host's bird.
        "1.6" => vec![
            "unshare".into(),
            "-n".into(),
            "sh".into(),
            "-c".into(),
            "shift; exec \"$0\" \"$@\"".into(),
            bin16,
        ],
        _ => {
            let inside = PathBuf::from(format!("{root_s}{dir_s}"));
            std::fs::create_dir(&inside).expect("mount point inside the root");
            mount_point = Some(inside);
            vec![
                "unshare".into(),
                "-m".into(),
                "-n".into(),
                "--propagation".into(),
                "private".into(),
                "sh".into(),
                "-c".into(),
                "mount --bind \"$1\" \"$2$1\" && shift 2 && exec chroot \"$@\"".into(),
                "sh".into(),
                dir_s,
                root_s.clone(),
                root_s,
            ]
        }
    };
    let mut guard = Versioned {
        bird: None,
        mount_point,
    };
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    guard.bird = Some(RealBird::launch(files, &prefix, Duration::from_secs(20)));
    guard
}

fn bird_conf(version: &str, dir: &Path) -> String {
    let d = dir.display();
    let template = if version == "1.6" {
        "template bgp CLIENTS { local as 65000; passive on; import none; export none; }"
    } else {
        "template bgp CLIENTS { local as 65000; passive on; ipv4 { import none; export none; }; }"
    };
    format!(
        "log \"{d}/bird.log\" all;\ndebug commands 2;\nrouter id 10.0.0.1;\n\
         {template}\ninclude \"{d}/autopeer.conf\";\n"
    )
}

fn block(host: u8) -> String {
    format!("protocol bgp clients_10_88_0_{host} from CLIENTS {{ neighbor 10.88.0.{host} as 65000; }}\n")
}

async fn protocols(ctl: &Path) -> Vec<String> {
    let mut c = Connection::connect(ctl, Duration::from_secs(10))
        .await
        .expect("connect to BIRD");
    let mut names: Vec<String> = c
        .protocols(false, None)
        .await
        .expect("show protocols")
        .into_iter()
        .map(|p| p.name)
        .filter(|n| n.starts_with("clients_"))
        .collect();
    names.sort();
    names
}

async fn on_version(version: &str) {
    let what = format!("configure alone on BIRD {version}");
    if !prereq::runnable(
        &what,
        prereq::root("it runs bird in namespaces")
            .or_else(|| prereq::tools(&["unshare", "chroot"]))
            .or_else(|| common::lab::missing_bird_root(version)),
    ) {
        return;
    }
    let root = common::lab::bird_root(version).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("apconfigure")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path();
    let include = d.join("autopeer.conf");
    // Odd bytes (no final newline after the comment, a tab) that a
    // re-render would not reproduce: the rollback must be byte-exact.
    let old = format!("# autopeer's\t\n{}# end", block(2));
    std::fs::write(&include, &old).unwrap();
    std::fs::write(d.join("bird.conf"), bird_conf(version, d)).unwrap();
    let running = start(version, &root, d);
    let bird = running.bird.as_ref().unwrap();
    let target = Target {
        socket: bird.ctl.clone(),
        include: include.clone(),
        timeout: Duration::from_secs(20),
    };
    let log = || bird.log();
    assert_eq!(
        protocols(&bird.ctl).await,
        ["clients_10_88_0_2"],
        "{}",
        log()
    );

    // A valid new protocol, then a parse error on line 3 of the include.
    let bad = format!(
        "{}{}protocol bgp clients_10_88_0_4 from CLIENTS {{ no_such_option 1; }}\n",
        block(2),
        block(3)
    );
    let err = apply::apply(&target, &bad).await.unwrap_err();
    let ApplyError::Rejected { text } = &err else {
        panic!("BIRD {version}: want Rejected, got {err:?}\n{}", log());
    };
    eprintln!("BIRD {version} refused the include: {text}");
    assert!(
        text.contains(&include.display().to_string()) && text.contains('3'),
        "BIRD {version}: the reply must name the include and line 3: {text}"
    );
    assert_eq!(
        std::fs::read_to_string(&include).unwrap(),
        old,
        "BIRD {version}: the old include, byte for byte"
    );
    assert_eq!(
        protocols(&bird.ctl).await,
        ["clients_10_88_0_2"],
        "BIRD {version} committed part of a config it refused\n{}",
        log()
    );
    // `configure` did the refusing: no `configure check` was sent.
    assert_eq!(bird.commands("configure"), 1, "{}", log());
    assert_eq!(bird.commands("configure check"), 0, "{}", log());

    // An error in bird.conf itself: the valid include stays, nothing loads.
    let conf = d.join("bird.conf");
    let good_conf = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{good_conf}no_such_statement;\n")).unwrap();
    let good = format!("{}{}", block(2), block(3));
    let err = apply::apply(&target, &good).await.unwrap_err();
    assert!(
        matches!(&err, ApplyError::BrokenElsewhere { text } if text.contains("bird.conf")),
        "BIRD {version}: {err:?}"
    );
    assert_eq!(std::fs::read_to_string(&include).unwrap(), good);
    assert_eq!(protocols(&bird.ctl).await, ["clients_10_88_0_2"]);

    // Fixed: the next apply loads.
    std::fs::write(&conf, good_conf).unwrap();
    apply::apply(&target, &good)
        .await
        .unwrap_or_else(|e| panic!("BIRD {version}: {e}\n{}", log()));
    assert_eq!(
        protocols(&bird.ctl).await,
        ["clients_10_88_0_2", "clients_10_88_0_3"],
        "{}",
        log()
    );
    assert_eq!(bird.commands("configure check"), 0, "{}", log());
    drop(running);
}

#[tokio::test]
async fn configure_refuses_a_broken_include_on_bird_1_6() {
    on_version("1.6").await;
}

#[tokio::test]
async fn configure_refuses_a_broken_include_on_bird_2_0() {
    on_version("2.0").await;
}

#[tokio::test]
async fn configure_refuses_a_broken_include_on_bird_2_17() {
    on_version("2.17").await;
}

#[tokio::test]
async fn configure_refuses_a_broken_include_on_bird_3_1() {
    on_version("3.1").await;
}
