//! The CI-or-skip rule, written once for every test and benchmark that
//! needs something of the machine (root, bird2, a tool, a prepared BIRD
//! root): with `CI=true` a missing prerequisite fails loudly, naming it;
//! elsewhere the test prints one line and skips (returns early).
//!
//! A check is an `Option<String>`: `None` when the prerequisite is there,
//! `Some(reason)` naming what is missing. Chain checks with `or_else`, then
//! hand the result to [`runnable`].

use std::path::Path;
use std::process::{Command, Stdio};

/// True when the environment says we run in CI (`CI=true`).
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The rule. `what` names the test (or benchmark); `missing` is the first
/// missing prerequisite, if any. True when it may run.
pub fn runnable(what: &str, missing: Option<String>) -> bool {
    let Some(reason) = missing else {
        return true;
    };
    if ci() {
        panic!("CI=true but {what} cannot run: {reason}");
    }
    eprintln!("skipping {what}: {reason}");
    false
}

/// `Some("not root (WHY)")` unless we run as root.
pub fn root(why: &str) -> Option<String> {
    if rustix::process::geteuid().is_root() {
        None
    } else {
        Some(format!("not root ({why})"))
    }
}

/// `Some("PATH missing (HINT)")` unless `path` exists.
pub fn file(path: impl AsRef<Path>, hint: &str) -> Option<String> {
    let path = path.as_ref();
    if path.exists() {
        None
    } else {
        Some(format!("{} missing ({hint})", path.display()))
    }
}

/// `Some("TOOL not installed")` for the first of `tools` not on PATH.
pub fn tools(tools: &[&str]) -> Option<String> {
    tools.iter().find_map(|tool| {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        (!found).then(|| format!("{tool} not installed"))
    })
}

/// `Some(reason)` unless `program ARGS` runs and exits 0.
pub fn runs(program: &str, args: &[&str], hint: &str) -> Option<String> {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| format!("{program} does not run ({hint})"))
}
