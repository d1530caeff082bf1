//! Footprint: memory and idle wake-ups of the real autopeer daemon holding
//! a roster of N peers (default 10,000), beside real bird2 loaded with the
//! same N protocols (template `passive on` on 127.0.0.1: nothing dials).
//!
//! The include is rendered with `autopeer::bird::render` before BIRD
//! starts, so the daemon starts with a full roster that BIRD already has
//! (no `configure`). After a settling time (default 20 s) it measures over
//! a window (default 60 s) with nothing happening:
//! - the daemon's VmRSS and VmHWM (`/proc/PID/status`);
//! - its wake-ups: voluntary + involuntary context switches summed over
//!   all its threads (`/proc/PID/task/*/status`), per minute, and each
//!   kind apart (involuntary ones grow with other load on the machine);
//! - its CPU time (utime + stime, `/proc/PID/stat`), per minute;
//! - BIRD's CPU time in the same window, and how many `show protocols`
//!   the observer sent (BIRD's `debug commands 2` log): the observer
//!   polls adaptively (src/observer.rs: the interval grows with the
//!   reply's size while nothing changes);
//! - where the daemon's resident memory is (`/proc/PID/smaps`): binary
//!   and libraries, the main malloc arena, other threads' arenas, stacks.
//!
//! `--heaptrack FILE` runs the daemon under heaptrack's preload library
//! (Debian's `heaptrack`) and leaves FILE.gz for `heaptrack_print`: the
//! allocations behind the figures, by call site.
//!
//! `FOOTPRINT_MAPS=1` in the environment also prints each file mapping
//! (binary, libraries) with its resident size.
//!
//! `--bird-log-in-etc` makes BIRD log into the directory of bird.conf,
//! which autopeer watches (see README, Performance).
//!
//! Run: `cargo bench --bench footprint [-- --peers N --window S --settle S]`.
//! Needs root and bird2. Every process it starts is killed by pid and its
//! temp dir removed, pass or fail.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use autopeer::bird::render;
use common::*;

/// Voluntary (the thread slept: a wake-up) and involuntary (the scheduler
/// preempted it: other load on the machine) context switches, summed over
/// all threads.
fn switches(pid: u32) -> (u64, u64) {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let field = |s: &str, name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("status")).ok())
        .map(|s| {
            (
                field(&s, "voluntary_ctxt_switches:"),
                field(&s, "nonvoluntary_ctxt_switches:"),
            )
        })
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// USER_HZ from `getconf CLK_TCK` (100 on Linux).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn threads(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// utime + stime in seconds.
fn cpu(pid: u32) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the `(comm)`: state is field 3; utime 14, stime 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = clock_ticks();
    (ticks(11) + ticks(12)) / hz
}

fn main() {
    if !common::benchmarking("footprint") {
        return;
    }
    if !root_and_bird("footprint") {
        return;
    }
    let n: usize = arg("--peers", 10_000);
    let window = Duration::from_secs(arg("--window", 60));
    let settle = Duration::from_secs(arg("--settle", 20));
    let log_in_etc = std::env::args().any(|a| a == "--bird-log-in-etc");
    print_machine();
    println!(
        "footprint: {n} peers, settle {} s, idle window {} s, BIRD's log {}",
        settle.as_secs(),
        window.as_secs(),
        if log_in_etc {
            "beside bird.conf (etc/bird.log)"
        } else {
            "in its own directory (log/bird.log)"
        }
    );

    let dir = tempdir("apfoot");
    let d = dir.path();
    let files = BirdFiles::router(d);
    let mut conf = bird_conf(d, free_port());
    if log_in_etc {
        // BIRD logs beside bird.conf: every line it logs is a change in a
        // directory autopeer watches.
        conf = conf.replace("/log/bird.log", "/etc/bird.log");
        std::os::unix::fs::symlink(d.join("etc/bird.log"), d.join("log/bird.log")).unwrap();
    }
    fs::write(&files.conf, conf).unwrap();
    let t = Instant::now();
    let text = render::render(&peers(n)).unwrap();
    println!(
        "include: {} bytes, rendered in {:.3} s",
        text.len(),
        secs(t.elapsed())
    );
    fs::write(d.join("etc/autopeer.conf"), text).unwrap();
    fs::write(d.join("log/quiet.log"), "").unwrap();
    let t = Instant::now();
    let bird = RealBird::launch(files, &[], Duration::from_secs(120));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(wait_protocols(
        &bird.ctl,
        "clients_",
        n,
        Duration::from_millis(200),
        Duration::from_secs(300),
    ));
    println!(
        "bird: {n} protocols up after {:.2} s, VmRSS {} kB",
        secs(t.elapsed()),
        status_kb(bird.pid(), "VmRSS").unwrap_or(0)
    );
    let reply_bytes = rt.block_on(async {
        let mut c = autopeer::bird::client::Connection::connect(&bird.ctl, Duration::from_secs(60))
            .await
            .expect("connect to bird");
        let before = c.bytes_read();
        let table = c.protocol_table(None).await.expect("show protocols");
        (c.bytes_read() - before, table.len(), table.heap_bytes())
    });
    println!(
        "show protocols: {} bytes of reply for {} protocols; the observer's table of it: {} bytes",
        reply_bytes.0, reply_bytes.1, reply_bytes.2
    );

    // The daemon tails an empty file of its own: no line arrives.
    let config = d.join("run/autopeer.toml");
    fs::write(
        &config,
        autopeer_toml(
            d,
            &bird.ctl,
            &d.join("log/quiet.log"),
            "100ms",
            "10.99.0.0/16",
            100_000,
        ),
    )
    .unwrap();
    let configures_before = bird.commands("configure");
    let t = Instant::now();
    // `--heaptrack FILE`: heaptrack's preload library records every
    // allocation of the daemon (and only of the daemon) into FILE.raw,
    // interpreted into FILE.gz after it stops (`heaptrack_print FILE.gz`).
    let heaptrack = std::env::args()
        .skip_while(|a| a != "--heaptrack")
        .nth(1)
        .map(std::path::PathBuf::from);
    let daemon = match &heaptrack {
        None => start_daemon(&d.join("run"), &config),
        Some(out) => {
            let mut cmd = Daemon::command(&config, false, &[]);
            cmd.env("LD_PRELOAD", HEAPTRACK_PRELOAD)
                .env("DUMP_HEAPTRACK_OUTPUT", out.with_extension("raw"));
            Daemon::spawn(cmd, &d.join("run/daemon.out"))
                .ready(&d.join("run/autopeer.ctl"), Duration::from_secs(60))
        }
    };
    let pid = daemon.pid();
    println!(
        "daemon: ready (control socket bound) {:.3} s after exec, VmRSS {} kB",
        secs(t.elapsed()),
        status_kb(pid, "VmRSS").unwrap_or(0)
    );
    std::thread::sleep(settle);

    let polls_before = bird.commands("show protocols");
    let (sw0, cpu0, bcpu0) = (switches(pid), cpu(pid), cpu(bird.pid()));
    let t = Instant::now();
    std::thread::sleep(window);
    let el = secs(t.elapsed());
    let (sw1, cpu1, bcpu1) = (switches(pid), cpu(pid), cpu(bird.pid()));
    let polls = bird.commands("show protocols") - polls_before;
    let per_min = |x: f64| x * 60.0 / el;
    println!(
        "daemon: VmRSS {} kB, VmHWM {} kB, {} threads",
        status_kb(pid, "VmRSS").unwrap_or(0),
        status_kb(pid, "VmHWM").unwrap_or(0),
        threads(pid)
    );
    // A thread that ended in the window takes its counts with it: each
    // kind is at least zero.
    let (vol, invol) = (sw1.0.saturating_sub(sw0.0), sw1.1.saturating_sub(sw0.1));
    println!(
        "daemon idle: {:.0} wake-ups/min (context switches, all threads: {:.0} voluntary, {:.0} involuntary), CPU {:.3} s/min",
        per_min((vol + invol) as f64),
        per_min(vol as f64),
        per_min(invol as f64),
        per_min(cpu1 - cpu0)
    );
    println!(
        "observer: {:.1} show protocols/min; BIRD CPU {:.3} s/min in the same window",
        per_min(polls as f64),
        per_min(bcpu1 - bcpu0)
    );
    println!(
        "configure sent by the daemon during start and idle: {}",
        bird.commands("configure") - configures_before
    );
    memory_map(pid);
    daemon.stop();
    drop(bird);
    if let Some(out) = heaptrack {
        interpret_heaptrack(&out);
    }
}

const HEAPTRACK_PRELOAD: &str = "/usr/lib/heaptrack/libheaptrack_preload.so";
const HEAPTRACK_INTERPRET: &str = "/usr/lib/heaptrack/libexec/heaptrack_interpret";

/// FILE.raw (the preload library's trace) -> FILE.gz for `heaptrack_print`.
fn interpret_heaptrack(out: &std::path::Path) {
    let raw = out.with_extension("raw");
    let gz = out.with_extension("gz");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{HEAPTRACK_INTERPRET} < '{}' | gzip > '{}'",
            raw.display(),
            gz.display()
        ))
        .status();
    let _ = fs::remove_file(&raw);
    match status {
        Ok(s) if s.success() => println!(
            "heaptrack: {} (heaptrack_print --print-peaks 1 {})",
            gz.display(),
            gz.display()
        ),
        other => println!("heaptrack: cannot interpret {}: {other:?}", raw.display()),
    }
}

/// Where the daemon's resident memory is, from `/proc/PID/smaps`: the
/// binary and libraries (file-backed), the main malloc arena (`[heap]`),
/// the other threads' glibc arenas (anonymous regions inside a 64 MiB
/// aligned reservation), thread stacks (anonymous, below a guard page)
/// and the rest (large allocations glibc maps by themselves, tokio).
fn memory_map(pid: u32) {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return;
    };
    const ARENA: u64 = 64 << 20;
    // (start, end, perms, path, rss kB)
    let mut maps: Vec<(u64, u64, String, String, u64)> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                let perms = f.next().unwrap_or("").to_owned();
                let path = f.nth(3).unwrap_or("").to_owned();
                maps.push((a, b, perms, path, 0));
                continue;
            }
        }
        if first == "Rss:" {
            if let (Some(m), Some(kb)) = (maps.last_mut(), f.next().and_then(|v| v.parse().ok())) {
                m.4 = kb;
            }
        }
    }
    let (mut file, mut heap, mut arenas, mut stacks, mut other) = (0, 0, 0, 0, 0);
    let mut n_arenas = 0;
    for (i, (start, _end, perms, path, rss)) in maps.iter().enumerate() {
        let after_guard = i > 0
            && maps
                .get(i - 1)
                .is_some_and(|p| p.2.starts_with("---") && p.1 == *start && p.3.is_empty());
        if path.starts_with('/') {
            file += rss;
            if std::env::var_os("FOOTPRINT_MAPS").is_some() {
                println!("map: {perms} {rss:>6} kB {path}");
            }
        } else if path == "[heap]" {
            heap += rss;
        } else if path.is_empty() && start % ARENA == 0 && perms.starts_with("rw") {
            arenas += rss;
            n_arenas += 1;
        } else if path == "[stack]" || (after_guard && perms.starts_with("rw") && path.is_empty()) {
            stacks += rss;
        } else {
            other += rss;
        }
    }
    println!(
        "daemon memory (kB, /proc/PID/smaps Rss): binary+libs {file}, main arena [heap] {heap}, \
         {n_arenas} thread arena(s) {arenas}, thread stacks {stacks}, other anonymous {other}"
    );
}
