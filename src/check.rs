//! `autopeer check`: everything that can be wrong before the daemon runs,
//! each in a sentence that names what to change.
//!
//! Problems make `check` exit 1; warnings are legal but probably unwise.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::bird::client::{BirdVersion, Connection};
use crate::bird::conf::{self, BirdConf};
use crate::bird::render::{self, NeighborAs};
use crate::config::Config;
use crate::keyring::{self, Family};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Severity {
    Problem,
    Warning,
    /// Not wrong, worth knowing (the keyring's state).
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The config key or file the finding is about.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.severity {
            Severity::Problem => "problem",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        write!(f, "{word}: {}: {}", self.key, self.message)
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Problem,
        key: key.into(),
        message: message.into(),
    }
}

fn warning(key: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Warning,
        key: key.into(),
        message: message.into(),
    }
}

/// Loads and checks the config at `path`, bird.conf and BIRD's socket.
pub async fn check(path: &Path) -> Vec<Finding> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            return e
                .problems()
                .into_iter()
                .map(|(k, m)| problem(k, m))
                .collect()
        }
    };
    check_config(&config).await
}

/// What the running BIRD's version cannot do with this config, each in
/// one sentence; and a warning for a version autopeer was not checked with.
pub fn check_version(config: &Config, bc: Option<&BirdConf>, v: &BirdVersion) -> Vec<Finding> {
    let mut out = Vec::new();
    if v.product == "BIRD" && !v.is_known() {
        out.push(warning(
            "bird.socket",
            format!(
                "BIRD {} is a version autopeer was not checked with (1.6, 2.0-2.17, 3.0-3.1); it is driven in the {} config language",
                v.text,
                if v.major == 1 { "1.6" } else { "2.x" }
            ),
        ));
    }
    if v.major != 1 {
        return out;
    }
    for g in &config.groups {
        let key = format!("group.{}.neighbor", g.name);
        let template = bc.and_then(|bc| bc.templates.get(&g.template));
        let local_as = template.and_then(|t| t.local_as);
        match g.neighbor {
            Some(NeighborAs::External) => out.push(problem(
                key,
                "BIRD 1.6 has no `neighbor ADDR external;`: set neighbor to the peers' AS number",
            )),
            Some(NeighborAs::Internal) if bc.is_some() && local_as.is_none() => out.push(problem(
                key,
                format!(
                    "BIRD 1.6 has no `neighbor ADDR internal;`, so autopeer writes `as N` with N from template {}'s `local as N;`, which it lacks",
                    g.template
                ),
            )),
            _ => {}
        }
        let v4 = g.prefixes.iter().any(|p| p.addr().is_ipv4());
        let v6 = g.prefixes.iter().any(|p| p.addr().is_ipv6());
        if v4 && v6 {
            out.push(problem(
                format!("group.{}.prefixes", g.name),
                "BIRD 1.6 runs IPv4 (bird) and IPv6 (bird6) as two daemons with two sockets: split this group by family and run one autopeer per daemon (autopeer@.service)",
            ));
        }
        // Link-local peers: the renderer writes `direct;` into their own
        // blocks, which BIRD 1.6's bird6 accepts too (checked with `bird6 -p`).
    }
    out
}

/// Checks a loaded config against bird.conf and the running BIRD.
pub async fn check_config(config: &Config) -> Vec<Finding> {
    let mut out = check_files(config);
    out.extend(check_certs(config));
    match conf::scan(&config.bird.config, &config.bird.include) {
        Err(e) => out.push(problem("bird.config", e.to_string())),
        Ok(bc) => {
            out.extend(
                config
                    .check_bird(&bc)
                    .into_iter()
                    .map(|p| problem(p.key_path, p.message)),
            );
            for g in &config.groups {
                for n in &bc.neighbors {
                    if g.prefixes.iter().any(|p| p.contains(&n.addr)) {
                        out.push(warning(
                            format!("group.{}.prefixes", g.name),
                            format!(
                                "{} is configured statically ({}:{}); autopeer will not add it",
                                n.addr,
                                n.file.display(),
                                n.line
                            ),
                        ));
                    }
                }
            }
            out.extend(check_keyring(config, &bc));
            out.extend(check_trust(config, &bc));
            let journal = crate::daemon::journal_wanted(config, Some(&bc));
            out.push(trigger_sources(config, &bc, journal));
            for (i, log) in config.sources.logs.iter().enumerate() {
                // Whether BIRD writes the file at all is check_trust's.
                if bc.fixed_log_files.iter().any(|f| same_file(f, log)) {
                    out.push(problem(
                        format!("sources.logs[{i}]"),
                        format!(
                            "BIRD writes {} with `log fixed` (BIRD 3), a ring buffer rewritten in place that cannot be followed; add a plain `log \"FILE\" all;` to bird.conf and list that file here",
                            log.display()
                        ),
                    ));
                }
                // What the tail will refuse (crate::sources::tail).
                match crate::readsafe::open(log, crate::readsafe::Links::Refuse) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => out.push(problem(
                        format!("sources.logs[{i}]"),
                        format!(
                            "{} {e}: it is not tailed until a regular file replaces it",
                            log.display()
                        ),
                    )),
                    _ => {}
                }
                if !log.exists() {
                    out.push(warning(
                        format!("sources.logs[{i}]"),
                        format!(
                            "{} does not exist yet; it is followed once it appears",
                            log.display()
                        ),
                    ));
                }
            }
        }
    }
    out.extend(crate::metrics::probe::check(config).await);
    // Departures need nhrpd's cache; nhrpd may start after autopeer.
    if let Some((vty, _)) = crate::sources::nhrp::vty::poll_interval(config) {
        if let Err(e) = crate::sources::nhrp::vty::read_bound(&vty).await {
            out.push(warning(
                "sources.nhrp_vty",
                format!("cannot read nhrpd's cache: {e}; no spoke departs until it can"),
            ));
        }
    }
    match Connection::connect(&config.bird.socket, Duration::from_secs(5)).await {
        Ok(mut c) => {
            if let Err(e) = c.show_status().await {
                out.push(problem("bird.socket", format!("BIRD answered badly: {e}")));
            }
            let bc = conf::scan(&config.bird.config, &config.bird.include).ok();
            out.extend(check_version(config, bc.as_ref(), c.version()));
        }
        Err(e) => out.push(problem(
            "bird.socket",
            format!("cannot reach BIRD at {}: {e}", config.bird.socket.display()),
        )),
    }
    out
}

/// Which configured sources are unverified (docs/facts.md § Trust), and what
/// `[sources] unverified` makes of them: one finding per log file BIRD
/// does not write, and one saying what the policy means when there is any.
pub fn check_trust(config: &Config, bc: &BirdConf) -> Vec<Finding> {
    use crate::config::UnverifiedPolicy;
    let mut out = Vec::new();
    let admit = config.sources.unverified == UnverifiedPolicy::Admit;
    let mut unverified = 0;
    for (i, log) in config.sources.logs.iter().enumerate() {
        if bc.log_files.iter().any(|f| same_file(f, log)) {
            if let Some(who) = writable_by_anyone(log) {
                out.push(warning(
                    format!("sources.logs[{i}]"),
                    format!(
                        "{} is BIRD's own log file, so its lines are trusted as BIRD's, but {who}: \
                         any local user could forge them; make it writable by BIRD alone",
                        log.display()
                    ),
                ));
            }
            continue;
        }
        unverified += 1;
        let what = format!(
            "BIRD does not write {} (no `log \"{}\" ...;` in bird.conf), so it is an unverified source: \
             any local user can write a BIRD line into a shared syslog file, and kernel and netfilter \
             lines are printed for a bare, spoofable SYN",
            log.display(),
            log.display()
        );
        out.push(if admit {
            warning(
                format!("sources.logs[{i}]"),
                format!("{what}; with unverified = \"admit\" such lines add peers"),
            )
        } else {
            warning(
                format!("sources.logs[{i}]"),
                format!(
                    "{what}; its lines admit no one unless [sources] unverified = \"admit\" \
                     (BIRD's own line there still admits into a group whose MD5 key the kernel checks)"
                ),
            )
        });
    }
    if unverified > 0 {
        out.push(if admit {
            warning(
                "sources.unverified",
                format!(
                    "\"admit\": {unverified} unverified source(s) add peers like BIRD's own log; \
                     a forged line fills max_peers for good where expire = \"never\""
                ),
            )
        } else {
            info(
                "sources.unverified",
                format!(
                    "\"refuse\": {unverified} unverified source(s) are refused (\"unverified source\" in the audit log); \
                     BIRD's own log file, the journal, MD5-keyed groups, `autopeer add` and NHRP still admit"
                ),
            )
        });
    }
    out
}

/// Which sources will see BIRD's trigger line (`BGP: Unexpected connect
/// from unknown address ...`): the tailed files (BIRD's own, or shared
/// syslog files whose lines are unverified) and the journal when it is
/// followed (`journal`). When none will, says what to add to bird.conf.
pub fn trigger_sources(config: &Config, bc: &BirdConf, journal: bool) -> Finding {
    let mut seen: Vec<String> = Vec::new();
    for log in &config.sources.logs {
        if bc.log_files.iter().any(|f| same_file(f, log)) {
            seen.push(format!("BIRD's log file {}", log.display()));
        } else if log.exists() {
            seen.push(format!(
                "{} (unverified: BIRD does not write it)",
                log.display()
            ));
        }
    }
    if journal && bc.logs_to_syslog {
        seen.push("the systemd journal (bird.conf logs to syslog)".into());
    }
    // With one of BIRD's files listed, the tail follows all of BIRD's
    // files, listed or not (sources::tail).
    let follows = config
        .sources
        .logs
        .iter()
        .any(|log| bc.log_files.iter().any(|f| same_file(f, log)));
    for f in bc.log_files.iter().filter(|_| follows) {
        if !config.sources.logs.iter().any(|log| same_file(f, log)) {
            seen.push(format!(
                "BIRD's log file {} (named in bird.conf)",
                f.display()
            ));
        }
    }
    if !seen.is_empty() {
        return info(
            "sources",
            format!("BIRD's trigger line will be seen in {}", seen.join(", ")),
        );
    }
    let file = config.sources.logs.first().map_or_else(
        || "/var/log/bird/bird.log".to_string(),
        |p| p.display().to_string(),
    );
    let listed = if config.sources.logs.is_empty() {
        format!(" and set [sources] logs = [\"{file}\"]")
    } else {
        String::new()
    };
    let journal_way = if !bc.logs_to_syslog {
        "; or add `log syslog all;` to bird.conf and keep [sources] journal = \"auto\" on a machine with systemd-journald"
    } else if config.sources.journal == crate::config::JournalMode::Off {
        "; or set [sources] journal = \"auto\" (bird.conf's `log syslog` lines go to the journal)"
    } else {
        " (bird.conf logs to syslog, but this machine has no systemd journal to read)"
    };
    warning(
        "sources",
        format!(
            "no source will see BIRD's trigger line, so no peer can be admitted from BIRD's log: \
             add `log \"{file}\" {{ info, warning, error }};` to bird.conf{listed}{journal_way}"
        ),
    )
}

fn info(key: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Info,
        key: key.into(),
        message: message.into(),
    }
}

/// The keyed listener (`[bird] keyring = "auto"` and some group has a
/// key): every group can be keyed, autopeer may duplicate BIRD's socket,
/// BIRD listens for each family that has keys, and BIRD's per-neighbor
/// keys fit in `net.core.optmem_max` (docs/facts.md fact 4) for the roster now and for
/// every keyed group at `max_peers`.
pub fn check_keyring(config: &Config, bc: &BirdConf) -> Vec<Finding> {
    let mut out = Vec::new();
    if config.bird.keyring == crate::config::Keyring::Off {
        return out;
    }
    let plan = match keyring::desired_keys(&config.groups, bc) {
        Ok(p) => p,
        Err(problems) => {
            return problems
                .into_iter()
                .map(|p| problem("bird.keyring", p.to_string()))
                .collect()
        }
    };
    if !plan.ao.is_empty() {
        out.extend(check_ao_kernel(config));
    }
    if plan.keys.is_empty() && plan.ao.is_empty() {
        return out;
    }
    let keyed_groups = plan.keyed_groups();
    let keyed: BTreeSet<&str> = keyed_groups.iter().map(String::as_str).collect();
    // Per family: static MD5 neighbors, roster peers of keyed groups,
    // their max_peers (the worst case), and the prefix keys themselves.
    let roster: Vec<(std::net::IpAddr, String)> = crate::fsx::read_to_string(&config.bird.include)
        .ok()
        .and_then(|t| render::parse(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.addr, p.group))
        .collect();
    for family in [Family::V4, Family::V6] {
        let ours = plan.keys_of(family).count();
        let statics = bc
            .neighbors
            .iter()
            .filter(|n| n.password && Family::of(n.addr) == family)
            .count();
        let peers = roster
            .iter()
            .filter(|(a, g)| Family::of(*a) == family && keyed.contains(g.as_str()))
            .count();
        if ours == 0 && statics == 0 {
            continue;
        }
        let worst: usize = config
            .groups
            .iter()
            .filter(|g| {
                keyed.contains(g.name.as_str())
                    && g.prefixes.iter().any(|p| Family::of_net(p) == family)
            })
            .map(|g| g.max_peers)
            .sum();
        if let Some(m) = keyring::optmem_problem(statics + peers + ours) {
            out.push(warning(
                "bird.keyring",
                format!("{family}, with the roster now ({statics} static MD5 neighbor(s), {peers} roster peer(s) in keyed groups, {ours} prefix key(s)): {m}"),
            ));
        } else if let Some(m) = keyring::optmem_problem(statics + worst + ours) {
            out.push(warning(
                "bird.keyring",
                format!("{family}, once the keyed groups reach max_peers ({worst} peers): {m}"),
            ));
        }
    }
    if let Err(m) = keyring::check_privileges() {
        out.push(problem("bird.keyring", m));
        return out;
    }
    let bird = match keyring::Bird::find(&config.bird.socket) {
        Ok(b) => b,
        Err(e) => {
            out.push(problem(
                "bird.keyring",
                format!("cannot find BIRD's process to key its listener: {e}"),
            ));
            return out;
        }
    };
    let pid = bird.pid();
    let listeners = match keyring::probe(&bird) {
        Ok(l) => l,
        Err(e) => {
            out.push(problem("bird.keyring", e.to_string()));
            return out;
        }
    };
    for family in [Family::V4, Family::V6] {
        let n = plan.wanted_of(family);
        if n == 0 {
            continue;
        }
        let here: Vec<&keyring::Listener> =
            listeners.iter().filter(|l| l.family == family).collect();
        if here.is_empty() {
            out.push(problem(
                "bird.keyring",
                keyring::missing_listener_advice(family, n),
            ));
        }
        for l in here {
            out.push(info(
                "bird.keyring",
                format!(
                    "{family} listener {} (BIRD pid {pid}, inode {}): {n} prefix key(s) for group(s) {}",
                    l.local,
                    l.inode,
                    keyed.iter().copied().collect::<Vec<_>>().join(" ")
                ),
            ));
        }
    }
    if !plan.ao.is_empty() {
        for l in &listeners {
            if let Ok(Some(present)) = keyring::listener_ao_keys(&bird, l) {
                for m in keyring::ao::collisions(&present, &config.groups) {
                    out.push(problem("bird.keyring", m));
                }
            }
        }
    }
    out
}

/// TCP-AO groups need a kernel with TCP-AO and the algorithms they name;
/// one sentence each, naming the groups.
fn check_ao_kernel(config: &Config) -> Vec<Finding> {
    let ao_groups: Vec<&crate::config::Group> =
        config.groups.iter().filter(|g| g.is_ao()).collect();
    let names = |gs: &[&crate::config::Group]| -> String {
        gs.iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Err(why) = keyring::ao::kernel_support() {
        return vec![problem(
            "bird.keyring",
            format!("TCP-AO group(s) {}: {why}", names(&ao_groups)),
        )];
    }
    let mut out = Vec::new();
    let algs: BTreeSet<crate::config::AoAlgorithm> = ao_groups
        .iter()
        .flat_map(|g| g.ao_keys.iter().map(|k| k.algorithm))
        .collect();
    for alg in algs {
        if let Err(why) = keyring::ao::algorithm_support(alg) {
            let users: Vec<&crate::config::Group> = ao_groups
                .iter()
                .copied()
                .filter(|g| g.ao_keys.iter().any(|k| k.algorithm == alg))
                .collect();
            out.push(problem(
                "bird.keyring",
                format!(
                    "algorithm {alg} of TCP-AO group(s) {}: {why}",
                    names(&users)
                ),
            ));
        }
    }
    out
}

/// Each group's `ca` (NHRP certificate binding): what it trusts (info),
/// and a warning when an account other than root can write the file or
/// replace it in its directory: whoever can, decides which spokes are
/// admitted.
pub fn check_certs(config: &Config) -> Vec<Finding> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for g in &config.groups {
        let Some(c) = &g.cert else { continue };
        let key = format!("group.{}.ca", g.name);
        let anchors: Vec<&str> = c.ca.anchor_subjects().collect();
        out.push(Finding {
            severity: Severity::Info,
            key: key.clone(),
            message: format!(
                "{}: spokes' certificates must chain to {} ({} intermediate(s)) and name their GRE address{}",
                c.ca_path.display(),
                anchors.join("; "),
                c.ca.intermediate_count(),
                if c.required {
                    "; registrations without one are refused"
                } else {
                    ""
                }
            ),
        });
        let mut who = Vec::new();
        let dir = c.ca_path.parent().filter(|d| !d.as_os_str().is_empty());
        for p in std::iter::once(c.ca_path.as_path()).chain(dir) {
            let Ok(m) = std::fs::metadata(p) else {
                continue;
            };
            if m.uid() != 0 {
                who.push(format!("{} is owned by uid {}", p.display(), m.uid()));
            }
            if m.mode() & 0o020 != 0 && m.gid() != 0 {
                who.push(format!(
                    "{} is writable by group gid {}",
                    p.display(),
                    m.gid()
                ));
            }
            if m.mode() & 0o002 != 0 {
                who.push(format!("{} is writable by anyone", p.display()));
            }
        }
        if !who.is_empty() {
            out.push(warning(
                key,
                format!(
                    "{}: whoever can write or replace the CA decides which spokes are admitted; make it and its directory writable by root alone",
                    who.join(", ")
                ),
            ));
        }
    }
    out
}

/// Says how, when any local user can write `path` (mode o+w) or replace it
/// (its directory is o+w without the sticky bit).
fn writable_by_anyone(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).ok().map(|m| m.permissions().mode());
    if let Some(m) = mode(path).filter(|m| m & 0o002 != 0) {
        return Some(format!("its mode {:04o} lets anyone write it", m & 0o7777));
    }
    let dir = path.parent()?;
    let m = mode(dir).filter(|m| m & 0o002 != 0 && m & 0o1000 == 0)?;
    Some(format!(
        "its directory {} (mode {:04o}) lets anyone replace it",
        dir.display(),
        m & 0o7777
    ))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The files autopeer writes. A symbolic link or anything but a regular
/// file at the include, the state file or the audit log is refused by the
/// daemon (problem: it never reads or writes through a link, since whoever
/// can write the directory could point it anywhere). An include directory
/// that accounts other than root and BIRD's (the owner and group of
/// bird.conf) can write lets them plant names beside the include (warning:
/// autopeer never follows or reuses them, but they should not be there).
pub fn check_files(config: &Config) -> Vec<Finding> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    for (key, path) in [
        ("bird.include", &config.bird.include),
        ("agent.state", &config.agent.state),
        ("agent.audit_log", &config.agent.audit_log),
    ] {
        let Ok(m) = std::fs::symlink_metadata(path) else {
            continue;
        };
        let ft = m.file_type();
        if ft.is_symlink() {
            let to = std::fs::read_link(path).unwrap_or_default();
            out.push(problem(
                key,
                format!(
                    "{} is a symbolic link (to {}); autopeer never reads or writes through one, since whoever can write its directory could point it anywhere: set {key} to the file itself",
                    path.display(),
                    to.display()
                ),
            ));
        } else if !ft.is_file() {
            let kind = if ft.is_fifo() {
                "FIFO"
            } else if ft.is_dir() {
                "directory"
            } else if ft.is_socket() {
                "socket"
            } else {
                "device"
            };
            out.push(problem(
                key,
                format!(
                    "{} is a {kind}, not a regular file; autopeer refuses to open it",
                    path.display()
                ),
            ));
        }
    }
    let dir = match config.bird.include.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(d) = std::fs::metadata(dir) else {
        return out;
    };
    let bird = std::fs::metadata(&config.bird.config).ok();
    let uids = [Some(0), bird.as_ref().map(|m| m.uid())];
    let gids = [Some(0), bird.as_ref().map(|m| m.gid())];
    let mut who = Vec::new();
    if !uids.contains(&Some(d.uid())) {
        who.push(format!("its owner (uid {})", d.uid()));
    }
    if d.mode() & 0o020 != 0 && !gids.contains(&Some(d.gid())) {
        who.push(format!("group gid {}", d.gid()));
    }
    if d.mode() & 0o002 != 0 {
        who.push("every user".to_string());
    }
    if !who.is_empty() {
        out.push(warning(
            "bird.include",
            format!(
                "{} can be written by {}, not only by root and BIRD's account (the owner and group of {}): they can plant files beside the include; autopeer never follows or reuses them, but make the directory writable only by root and BIRD",
                dir.display(),
                who.join(" and "),
                config.bird.config.display()
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn setup(unverified: &str) -> (tempfile::TempDir, Config, BirdConf) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("bird.log"), "").unwrap();
        std::fs::set_permissions(d.join("bird.log"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        std::fs::write(d.join("syslog"), "").unwrap();
        let text = format!(
            "[sources]\nlogs = [\"{d}/bird.log\", \"{d}/syslog\"]\n{unverified}\n\
             [[group]]\nname = \"clients\"\ntemplate = \"C\"\nprefixes = [\"10.88.0.0/24\"]\n",
            d = d.display()
        );
        let config = Config::load_str(&text, d).unwrap();
        let bc = conf::scan_text(
            &format!("log \"{}/bird.log\" all;\n", d.display()),
            &d.join("bird.conf"),
        )
        .unwrap();
        (dir, config, bc)
    }

    #[test]
    fn unverified_sources_are_named_with_what_the_policy_does() {
        let (_dir, config, bc) = setup("");
        let f = check_trust(&config, &bc);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["sources.logs[1]", "sources.unverified"], "{f:?}");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("unverified source"), "{}", f[0]);
        assert!(f[0].message.contains("admit no one"), "{}", f[0]);
        assert_eq!(f[1].severity, Severity::Info);
        assert!(f[1].message.starts_with("\"refuse\""), "{}", f[1]);

        let (_dir, config, bc) = setup("unverified = \"admit\"");
        let f = check_trust(&config, &bc);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].message.contains("such lines add peers"), "{}", f[0]);
        assert_eq!(f[1].severity, Severity::Warning);
        assert!(f[1].message.starts_with("\"admit\""), "{}", f[1]);
    }

    #[test]
    fn birds_own_file_writable_by_anyone_is_a_warning() {
        let (dir, config, bc) = setup("");
        let own = dir.path().join("bird.log");
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o666)).unwrap();
        let f = check_trust(&config, &bc);
        assert!(
            f.iter().any(|f| f.key == "sources.logs[0]"
                && f.message.contains("mode 0666 lets anyone write it")),
            "{f:?}"
        );
    }
}

#[cfg(test)]
mod trigger_tests {
    use super::*;

    fn setup(bird_conf: &str, sources: &str) -> (tempfile::TempDir, Config, BirdConf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bird.conf"), bird_conf).unwrap();
        let text = format!(
            "[bird]\nconfig = \"bird.conf\"\ninclude = \"autopeer.conf\"\n[sources]\n{sources}\n"
        );
        let config = Config::load_str(&text, dir.path()).unwrap();
        let bc = conf::scan(&config.bird.config, &config.bird.include).unwrap();
        (dir, config, bc)
    }

    #[test]
    fn stock_debian_bird_conf_is_seen_through_the_journal() {
        // The new user: Debian's `log syslog all;`, default logs.
        let (_d, config, bc) = setup("log syslog all;\n", "");
        let f = trigger_sources(&config, &bc, true);
        assert_eq!(f.severity, Severity::Info);
        assert!(f.message.contains("the systemd journal"), "{f}");
        // No journal on this machine: say exactly what to add.
        let f = trigger_sources(&config, &bc, false);
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.message
                .contains("add `log \"/var/log/bird.log\" { info, warning, error };` to bird.conf"),
            "{f}"
        );
        assert!(f.message.contains("no systemd journal"), "{f}");
    }

    #[test]
    fn names_birds_file_and_the_way_out_when_nothing_sees_the_line() {
        let (d, config, bc) = setup("log syslog all;\n", "journal = \"off\"\nlogs = []");
        let f = trigger_sources(&config, &bc, false);
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.message
                .contains("set [sources] logs = [\"/var/log/bird/bird.log\"]"),
            "{f}"
        );
        assert!(f.message.contains("journal = \"auto\""), "{f}");
        let log = d.path().join("bird.log");
        let (_d2, config, bc) = setup(
            &format!("log \"{}\" all;\n", log.display()),
            &format!("logs = [\"{}\"]", log.display()),
        );
        let f = trigger_sources(&config, &bc, false);
        assert_eq!(f.severity, Severity::Info);
        assert!(f.message.contains("BIRD's log file"), "{f}");
    }

    #[test]
    fn birds_other_files_are_seen_once_one_is_listed() {
        // The tail follows all of bird.conf's `log "FILE"`s once one is
        // listed; with none listed, none.
        let (d, _, _) = setup("", "");
        let (log, other) = (d.path().join("bird.log"), d.path().join("other.log"));
        let bird_conf = format!(
            "log \"{}\" all;\nlog \"{}\" all;\n",
            log.display(),
            other.display()
        );
        let (_d2, config, bc) = setup(
            &bird_conf,
            &format!("journal = \"off\"\nlogs = [\"{}\"]", log.display()),
        );
        let f = trigger_sources(&config, &bc, false);
        assert_eq!(f.severity, Severity::Info, "{f}");
        assert_eq!(
            f.message,
            format!(
                "BIRD's trigger line will be seen in BIRD's log file {}, BIRD's log file {} (named in bird.conf)",
                log.display(),
                other.display()
            )
        );
        let (_d3, config, bc) = setup(&bird_conf, "journal = \"off\"\nlogs = []");
        assert_eq!(
            trigger_sources(&config, &bc, false).severity,
            Severity::Warning
        );
    }
}
