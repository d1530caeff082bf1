//! From [`RawConfig`] to [`Config`]: reading the file, converting each
//! value and collecting every [`Problem`] with its key path, and the
//! cross-check against bird.conf.

use super::*;
use crate::sources::nhrp::cert;

impl Config {
    /// Reads, parses and validates the config at `path`. A missing file is
    /// an error; relative paths inside resolve against `path`'s directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::readsafe::read_to_string(
            path,
            crate::readsafe::Links::Follow,
            crate::readsafe::MAX_CONFIG,
        )
        .map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        Self::parse_text(&text, base, path)
    }

    /// Like [`Config::load`] for text already in memory (tests, `check`).
    /// Errors name the file `<base_dir>/autopeer.toml`.
    pub fn load_str(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Self::parse_text(text, base_dir, &base_dir.join("autopeer.toml"))
    }

    fn parse_text(text: &str, base: &Path, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        Config::from_raw(raw, base).map_err(|problems| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }

    /// Converts and validates; collects every problem. Reads `password_file`s.
    pub fn from_raw(raw: RawConfig, base_dir: &Path) -> Result<Config, Vec<Problem>> {
        let mut p = Vec::new();
        let abs = |path: PathBuf| resolve(base_dir, &path);

        let keyring = one_of(
            &raw.bird.keyring,
            "bird.keyring",
            ("auto", Keyring::Auto),
            &[("off", Keyring::Off)],
            &mut p,
        );
        let bird = BirdSection {
            socket: abs(raw.bird.socket),
            config: abs(raw.bird.config),
            include: abs(raw.bird.include),
            keyring,
        };

        let batch = match parse_duration(&raw.agent.batch) {
            Ok(d) if d > MAX_BATCH => {
                p.push(Problem::new(
                    "agent.batch",
                    format!("{:?} is longer than 60s", raw.agent.batch),
                ));
                d
            }
            Ok(d) => d,
            Err(msg) => {
                p.push(Problem::new("agent.batch", msg));
                Duration::ZERO
            }
        };
        let metrics = match raw.agent.metrics.as_deref().map(parse_metrics_address) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(msg)) => {
                p.push(Problem::new("agent.metrics", msg));
                None
            }
        };
        let agent = AgentSection {
            socket: abs(raw.agent.socket),
            state: abs(raw.agent.state),
            audit_log: abs(raw.agent.audit_log),
            batch,
            dry_run: raw.agent.dry_run,
            metrics,
        };

        let nhrp_policy = one_of(
            &raw.sources.nhrp_policy,
            "sources.nhrp_policy",
            ("enforce", NhrpPolicy::Enforce),
            &[("advise", NhrpPolicy::Advise)],
            &mut p,
        );
        let unverified = one_of(
            &raw.sources.unverified,
            "sources.unverified",
            ("refuse", UnverifiedPolicy::Refuse),
            &[("admit", UnverifiedPolicy::Admit)],
            &mut p,
        );
        let journal = one_of(
            &raw.sources.journal,
            "sources.journal",
            ("auto", JournalMode::Auto),
            &[("on", JournalMode::On), ("off", JournalMode::Off)],
            &mut p,
        );
        let sources = SourcesSection {
            logs: raw.sources.logs.into_iter().map(abs).collect(),
            nhrp_socket: raw.sources.nhrp_socket.map(abs),
            nhrp_policy,
            nhrp_vty: raw.sources.nhrp_vty.map(abs),
            unverified,
            journal,
        };

        let mut groups = Vec::new();
        let mut keys = Vec::new();
        let mut indexes = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (i, rg) in raw.groups.into_iter().enumerate() {
            let key = if is_group_name(&rg.name) && !names.contains_key(&rg.name) {
                format!("group.{}", rg.name)
            } else {
                format!("group[{i}]")
            };
            if !is_group_name(&rg.name) {
                p.push(Problem::new(
                    format!("{key}.name"),
                    format!(
                        "{:?} is not a valid group name: use [a-z][a-z0-9_]*, at most {MAX_GROUP_NAME_LEN} characters",
                        rg.name
                    ),
                ));
            } else if let Some(why) = lang::symbol_problem(&rg.name) {
                p.push(Problem::new(
                    format!("{key}.name"),
                    format!("{:?} {why}: choose another group name", rg.name),
                ));
            } else if let Some(first) = names.get(&rg.name) {
                p.push(Problem::new(
                    format!("{key}.name"),
                    format!("duplicate group name {:?} (also group[{first}])", rg.name),
                ));
            } else {
                names.insert(rg.name.clone(), i);
            }
            let (group, index) = convert_group(rg, &key, base_dir, &mut p);
            groups.push(group);
            keys.push(key);
            indexes.push(index);
        }
        check_group_overlaps(&groups, &keys, &indexes, &mut p);
        if sources.nhrp_vty.is_none() {
            for (g, key) in groups.iter().zip(&keys) {
                if g.depart.is_some() {
                    p.push(Problem::new(
                        format!("{key}.depart"),
                        "needs [sources] nhrp_vty (nhrpd's vty socket, where departures are seen)",
                    ));
                }
            }
        }

        if p.is_empty() {
            Ok(Config {
                bird,
                agent,
                sources,
                groups,
            })
        } else {
            Err(p)
        }
    }

    /// Cross-checks against the scanned bird.conf: each template exists,
    /// supplies the peer AS when the group does not, bird.conf includes the
    /// owned file, and each `[sources] logs` file is one BIRD writes.
    pub fn check_bird(&self, conf: &crate::bird::conf::BirdConf) -> Vec<Problem> {
        let mut p = Vec::new();
        for g in &self.groups {
            let key = format!("group.{}", g.name);
            match conf.templates.get(&g.template) {
                None => p.push(Problem::new(
                    format!("{key}.template"),
                    format!(
                        "template {:?} is not defined in {}",
                        g.template,
                        self.bird.config.display()
                    ),
                )),
                Some(t) => {
                    if g.neighbor.is_none() && !t.has_neighbor_as {
                        p.push(Problem::new(
                            format!("{key}.neighbor"),
                            format!(
                                "not set, and template {} ({}:{}) has no `neighbor as N`, `internal` or `external`",
                                t.name,
                                t.file.display(),
                                t.line
                            ),
                        ));
                    }
                }
            }
        }
        if !conf.includes_owned {
            p.push(Problem::new(
                "bird.include",
                format!(
                    "{} is not included by {}: add `include \"{}\";`",
                    self.bird.include.display(),
                    self.bird.config.display(),
                    self.bird.include.display()
                ),
            ));
        }
        p
    }
}

/// The value of the word `word` at `key`: `default` or one of `others`.
/// Any other word is a problem naming the words allowed, and counts as the
/// default so that checking goes on.
fn one_of<T: Copy>(
    word: &str,
    key: &str,
    default: (&str, T),
    others: &[(&str, T)],
    p: &mut Vec<Problem>,
) -> T {
    let choices = || std::iter::once(&default).chain(others);
    if let Some(&(_, v)) = choices().find(|(w, _)| *w == word) {
        return v;
    }
    let mut words: Vec<String> = choices().map(|(w, _)| format!("{w:?}")).collect();
    let last = words.pop().unwrap_or_default();
    let allowed = if words.is_empty() {
        last
    } else {
        format!("{} or {last}", words.join(", "))
    };
    p.push(Problem::new(
        key,
        format!("must be {allowed}, not {word:?}"),
    ));
    default.1
}

/// 1-based line and column of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A path from the config: relative ones resolve against the config
/// file's directory, absolute ones stay as they are (`Path::join` keeps an
/// absolute argument whole).
fn resolve(base_dir: &Path, file: &Path) -> PathBuf {
    base_dir.join(file)
}

/// Reads a key file: a regular file of at most 4 KiB, opened without
/// following a symbolic link (key files often live in /etc/bird, which
/// BIRD's account can write). A FIFO or `/dev/zero` must not hang `check` or
/// the daemon's start: see [`crate::readsafe`].
fn read_key_file(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::readsafe::read(path, crate::readsafe::Links::Refuse, 4096)
}

/// `"100ms"`, `"2s"`, `"0"` (humantime syntax).
/// `[agent] metrics`: an IP address and a port, as the listener binds it
/// (no host names: the daemon must not depend on a resolver to start).
fn parse_metrics_address(s: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = s.parse().map_err(|_| {
        format!(
            "{s:?} is not ADDR:PORT with an IP address (e.g. \"127.0.0.1:9330\" or \"[::1]:9330\")"
        )
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "{s:?} has port 0, which Prometheus could not be told; pick a port (e.g. 9330)"
        ));
    }
    Ok(addr)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like \"100ms\" or \"7d\": {e}"))
}

/// `"never"` (`None`) or a positive duration (`example` is shown when 0
/// is given: it would remove every peer at once).
fn never_or_duration(s: &str, key: &str, example: &str, p: &mut Vec<Problem>) -> Option<Duration> {
    if s.trim() == "never" {
        return None;
    }
    match parse_duration(s) {
        Ok(d) if d.is_zero() => {
            p.push(Problem::new(
                key,
                format!("0 would remove every peer at once: use a duration like \"{example}\" or \"never\""),
            ));
            None
        }
        Ok(d) => Some(d),
        Err(m) => {
            p.push(Problem::new(key, format!("{m} or \"never\"")));
            None
        }
    }
}

/// A prefix with host bits clear; the message suggests the network.
fn parse_prefix(s: &str) -> Result<IpNet, String> {
    let net: IpNet = match s.trim().parse() {
        Ok(n) => n,
        Err(_) => match s.trim().parse::<IpAddr>() {
            Ok(a) => {
                let len = if a.is_ipv4() { 32 } else { 128 };
                return Err(format!(
                    "{s:?} is an address, not a prefix: write \"{a}/{len}\""
                ));
            }
            Err(_) => return Err(format!("{s:?} is not a prefix like \"10.88.0.0/24\"")),
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "{s:?} has host bits set: did you mean \"{}\"?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// The valid prefixes of `list`, each with its index in `list`.
fn parse_prefix_list(list: &[String], key: &str, p: &mut Vec<Problem>) -> Vec<(usize, IpNet)> {
    let mut out: Vec<(usize, IpNet)> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match parse_prefix(s) {
            Ok(n) if out.iter().any(|(_, o)| *o == n) => p.push(Problem::new(
                format!("{key}[{i}]"),
                format!("{n} is listed twice"),
            )),
            Ok(n) => out.push((i, n)),
            Err(m) => p.push(Problem::new(format!("{key}[{i}]"), m)),
        }
    }
    out
}

fn link_local() -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
    ))
}

/// Converts one group; also returns the index in the file of each of
/// `Group::prefixes`, for key paths.
fn convert_group(
    rg: RawGroup,
    key: &str,
    base_dir: &Path,
    p: &mut Vec<Problem>,
) -> (Group, Vec<usize>) {
    if let Some(why) = lang::symbol_problem(&rg.template) {
        p.push(Problem::new(
            format!("{key}.template"),
            format!("{:?} {why}", rg.template),
        ));
    }

    let indexed = parse_prefix_list(&rg.prefixes, &format!("{key}.prefixes"), p);
    let prefix_index: Vec<usize> = indexed.iter().map(|(i, _)| *i).collect();
    let prefixes: Vec<IpNet> = indexed.iter().map(|(_, n)| *n).collect();
    if rg.prefixes.is_empty() {
        p.push(Problem::new(format!("{key}.prefixes"), "is empty"));
    }

    let neighbor = match &rg.neighbor {
        None => None,
        Some(RawWordOrNumber::Word(w)) if w == "internal" => Some(NeighborAs::Internal),
        Some(RawWordOrNumber::Word(w)) if w == "external" => Some(NeighborAs::External),
        Some(RawWordOrNumber::Word(w)) if w.parse::<u32>().is_ok_and(|n| n > 0) => {
            w.parse::<u32>().ok().map(NeighborAs::As)
        }
        Some(RawWordOrNumber::Number(n)) if (1..=i64::from(u32::MAX)).contains(n) => {
            u32::try_from(*n).ok().map(NeighborAs::As)
        }
        Some(other) => {
            let shown = match other {
                RawWordOrNumber::Number(n) => n.to_string(),
                RawWordOrNumber::Word(w) => format!("{w:?}"),
            };
            p.push(Problem::new(
                format!("{key}.neighbor"),
                format!("{shown} is not \"internal\", \"external\" or an AS number 1..4294967295"),
            ));
            None
        }
    };

    let password = match (rg.password, &rg.password_file) {
        (Some(_), Some(_)) => {
            p.push(Problem::new(
                format!("{key}.password"),
                "password and password_file are mutually exclusive",
            ));
            None
        }
        (Some(pw), None) => {
            if let Some(m) = password_problem(pw.expose()) {
                p.push(Problem::new(format!("{key}.password"), m));
            }
            Some(pw)
        }
        (None, Some(file)) => {
            let path = resolve(base_dir, file);
            match read_secret_file(&path) {
                Err(e) => {
                    p.push(Problem::new(format!("{key}.password_file"), e));
                    None
                }
                Ok(bytes) => match String::from_utf8(bytes) {
                    Err(_) => {
                        p.push(Problem::new(
                            format!("{key}.password_file"),
                            format!("{} is not UTF-8 text", path.display()),
                        ));
                        None
                    }
                    Ok(text) => {
                        if let Some(m) = password_problem(&text) {
                            p.push(Problem::new(
                                format!("{key}.password_file"),
                                format!("the key in {} {m}", path.display()),
                            ));
                        }
                        Some(Secret::new(text))
                    }
                },
            }
        }
        (None, None) => None,
    };

    let deny = parse_prefix_list(&rg.deny, &format!("{key}.deny"), p);
    for (i, d) in &deny {
        if !prefixes.is_empty() && !prefixes.iter().any(|g| g.contains(d)) {
            p.push(Problem::new(
                format!("{key}.deny[{i}]"),
                format!("{d} is not inside any of the group's prefixes, so it denies nothing"),
            ));
        }
    }

    let max_peers = match rg.max_peers {
        None => DEFAULT_MAX_PEERS,
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            p.push(Problem::new(
                format!("{key}.max_peers"),
                format!("{n} admits nobody: use at least 1"),
            ));
            DEFAULT_MAX_PEERS
        }
    };

    let rate = match &rg.rate {
        None => Some(DEFAULT_RATE),
        Some(RawWordOrNumber::Word(w)) if w == "unlimited" => None,
        Some(RawWordOrNumber::Number(n)) if (1..=i64::from(u32::MAX)).contains(n) => {
            u32::try_from(*n).ok()
        }
        Some(other) => {
            let shown = match other {
                RawWordOrNumber::Number(n) => n.to_string(),
                RawWordOrNumber::Word(w) => format!("{w:?}"),
            };
            p.push(Problem::new(
                format!("{key}.rate"),
                format!(
                    "{shown} is not a positive number of admissions per minute or \"unlimited\""
                ),
            ));
            Some(DEFAULT_RATE)
        }
    };

    let expire = never_or_duration(&rg.expire, &format!("{key}.expire"), "7d", p);
    let depart = never_or_duration(&rg.depart, &format!("{key}.depart"), "1m", p);

    if let Some(i) = &rg.interface {
        if !is_interface_name(i) {
            p.push(Problem::new(
                format!("{key}.interface"),
                format!("{i:?} is not an interface name ([A-Za-z0-9_.:-], 1-15 characters)"),
            ));
        }
    }
    if rg.interface.is_none() {
        for (i, pf) in &indexed {
            if link_local().contains(pf) {
                p.push(Problem::new(
                    format!("{key}.prefixes[{i}]"),
                    format!("{pf} is link-local: set `interface` for this group"),
                ));
            }
        }
    }

    let nbma_prefixes = parse_prefix_list(&rg.nbma_prefixes, &format!("{key}.nbma_prefixes"), p);
    let cert = cert_policy(rg.ca.as_deref(), rg.require_cert, key, base_dir, p);

    let has_ao = !rg.ao_keys.is_empty();
    let ao_keys = convert_ao_keys(rg.ao_keys, key, base_dir, p);
    if has_ao {
        if password.is_some() {
            let which = if rg.password_file.is_some() {
                "password_file"
            } else {
                "password"
            };
            p.push(Problem::new(
                format!("{key}.{which}"),
                "a group signs with TCP-MD5 or with TCP-AO, not both (the kernel refuses \
                 both kinds of key for one peer): remove the password or the ao_key tables",
            ));
        }
        if prefixes.iter().any(|n| n.prefix_len() == 0) {
            p.push(Problem::new(
                format!("{key}.prefixes"),
                "a TCP-AO group cannot have a default route as prefix: its key would \
                 demand TCP-AO from every address",
            ));
        }
    }

    let group = Group {
        name: rg.name,
        template: rg.template,
        prefixes,
        neighbor,
        password,
        deny: deny.into_iter().map(|(_, n)| n).collect(),
        max_peers,
        rate,
        expire,
        interface: rg.interface,
        nbma_prefixes: nbma_prefixes.into_iter().map(|(_, n)| n).collect(),
        cert,
        depart,
        ao_keys,
    };
    (group, prefix_index)
}

/// `ca` and `require_cert`: the CA file read (safely: a regular file, at
/// most [`cert::MAX_CA_FILE`] bytes) and checked now, so a bad one stops
/// the start, a reload and `autopeer check` with its key named.
fn cert_policy(
    ca: Option<&Path>,
    required: bool,
    key: &str,
    base_dir: &Path,
    p: &mut Vec<Problem>,
) -> Option<cert::CertPolicy> {
    let Some(file) = ca else {
        if required {
            p.push(Problem::new(
                format!("{key}.require_cert"),
                "require_cert needs `ca`, the CA the spokes' certificates must chain to",
            ));
        }
        return None;
    };
    let path = resolve(base_dir, file);
    let bytes =
        match crate::readsafe::read(&path, crate::readsafe::Links::Follow, cert::MAX_CA_FILE) {
            Ok(b) => b,
            Err(e) => {
                p.push(Problem::new(
                    format!("{key}.ca"),
                    format!("cannot read {}: {e}", path.display()),
                ));
                return None;
            }
        };
    match cert::load_ca(&bytes, std::time::SystemTime::now()) {
        Ok(store) => Some(cert::CertPolicy {
            ca_path: path,
            ca: std::sync::Arc::new(store),
            required,
        }),
        Err(e) => {
            p.push(Problem::new(
                format!("{key}.ca"),
                format!("{}: {e}", path.display()),
            ));
            None
        }
    }
}

/// Reads a key file into a secret: at most 4 KiB, no symbolic link, one
/// trailing newline dropped. `Err` is the problem text (never the key).
fn read_secret_file(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes =
        read_key_file(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    Ok(bytes)
}

/// The `[[group.ao_key]]` tables of one group: IDs 0-255, each SendID and
/// each RecvID once in the group, a known algorithm, a secret of 1-80
/// bytes from `secret` or `secret_file`, exactly one `current` (a lone key
/// is current without saying so). Problems name the key by its position
/// and IDs, never its secret.
fn convert_ao_keys(
    raw: Vec<RawAoKey>,
    group_key: &str,
    base_dir: &Path,
    p: &mut Vec<Problem>,
) -> Vec<AoKey> {
    let mut out = Vec::new();
    let n = raw.len();
    let mut bad = false;
    for (i, rk) in raw.into_iter().enumerate() {
        let at = format!("{group_key}.ao_key[{i}]");
        let id = |v: i64, field: &str, p: &mut Vec<Problem>| -> Option<u8> {
            match u8::try_from(v) {
                Ok(id) => Some(id),
                Err(_) => {
                    p.push(Problem::new(
                        format!("{at}.{field}"),
                        format!("{v} is not a TCP-AO key ID: use 0-255"),
                    ));
                    None
                }
            }
        };
        let send_id = id(rk.send_id, "send_id", p);
        let recv_id = id(rk.recv_id, "recv_id", p);
        let algorithm = AoAlgorithm::parse(&rk.algorithm);
        if algorithm.is_none() {
            let words: Vec<String> = AoAlgorithm::ALL
                .iter()
                .map(|(w, _)| format!("{w:?}"))
                .collect();
            p.push(Problem::new(
                format!("{at}.algorithm"),
                format!(
                    "{:?} is not a TCP-AO algorithm: use {}",
                    rk.algorithm,
                    words.join(", ")
                ),
            ));
        }
        let secret: Option<Vec<u8>> = match (rk.secret, &rk.secret_file) {
            (Some(_), Some(_)) => {
                p.push(Problem::new(
                    format!("{at}.secret"),
                    "secret and secret_file are mutually exclusive",
                ));
                None
            }
            (Some(s), None) => Some(s.expose().as_bytes().to_vec()),
            (None, Some(file)) => {
                let path = resolve(base_dir, file);
                match read_secret_file(&path) {
                    Ok(b) => Some(b),
                    Err(m) => {
                        p.push(Problem::new(format!("{at}.secret_file"), m));
                        None
                    }
                }
            }
            (None, None) => {
                p.push(Problem::new(
                    format!("{at}.secret"),
                    "missing: set secret or secret_file",
                ));
                None
            }
        };
        let field = if rk.secret_file.is_some() {
            "secret_file"
        } else {
            "secret"
        };
        let secret = secret.and_then(|s| {
            if s.is_empty() {
                p.push(Problem::new(format!("{at}.{field}"), "the secret is empty"));
                None
            } else if s.len() > MAX_AO_KEY_LEN {
                p.push(Problem::new(
                    format!("{at}.{field}"),
                    format!(
                        "the secret is {} bytes long; the kernel takes at most {MAX_AO_KEY_LEN}",
                        s.len()
                    ),
                ));
                None
            } else {
                Some(Secret::new(s))
            }
        });
        match (send_id, recv_id, algorithm, secret) {
            (Some(send_id), Some(recv_id), Some(algorithm), Some(secret)) => out.push(AoKey {
                send_id,
                recv_id,
                algorithm,
                secret,
                current: rk.current || n == 1,
            }),
            _ => bad = true,
        }
    }
    for (i, k) in out.iter().enumerate() {
        for other in &out[..i] {
            if other.send_id == k.send_id || other.recv_id == k.recv_id {
                let (what, id) = if other.send_id == k.send_id {
                    ("send_id", k.send_id)
                } else {
                    ("recv_id", k.recv_id)
                };
                p.push(Problem::new(
                    format!("{group_key}.ao_key"),
                    format!(
                        "{} and {} share {what} {id}: the kernel refuses two keys of one \
                         prefix with the same SendID or RecvID (RFC 5925 3.1)",
                        other.name(),
                        k.name()
                    ),
                ));
            }
        }
    }
    let current = out.iter().filter(|k| k.current).count();
    if !bad && n > 1 && current != 1 {
        let listed: Vec<String> = out.iter().map(AoKey::name).collect();
        p.push(Problem::new(
            format!("{group_key}.ao_key"),
            if current == 0 {
                format!(
                    "no key is current among {}: mark the one to send with `current = true`",
                    listed.join(", ")
                )
            } else {
                format!("{current} keys are marked current: mark exactly one")
            },
        ));
    }
    out
}

/// Two groups listing the same prefix would tie on longest-prefix match.
/// `keys[i]` is the key path of `groups[i]`, `indexes[i]` the file index
/// of each of its prefixes.
fn check_group_overlaps(
    groups: &[Group],
    keys: &[String],
    indexes: &[Vec<usize>],
    p: &mut Vec<Problem>,
) {
    for (i, a) in groups.iter().enumerate() {
        for ((b, bkey), bidx) in groups.iter().zip(keys).zip(indexes).skip(i + 1) {
            for (pb, k) in b.prefixes.iter().zip(bidx) {
                if a.prefixes.contains(pb) {
                    p.push(Problem::new(
                        format!("{bkey}.prefixes[{k}]"),
                        format!(
                            "{pb} is also a prefix of group {}: longest-prefix match would tie",
                            a.name
                        ),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn a_word_not_allowed_is_named_with_the_words_that_are() {
        let mut p = Vec::new();
        let mut mode = |w| {
            one_of(
                w,
                "sources.journal",
                ("auto", 0),
                &[("on", 1), ("off", 2)],
                &mut p,
            )
        };
        assert_eq!((mode("auto"), mode("on"), mode("off")), (0, 1, 2));
        assert_eq!(mode("yes"), 0);
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].to_string(),
            "sources.journal: must be \"auto\", \"on\" or \"off\", not \"yes\""
        );
    }

    #[test]
    fn prefix_suggests_network() {
        let e = parse_prefix("10.88.0.1/24").unwrap_err();
        assert!(e.contains("did you mean \"10.88.0.0/24\""), "{e}");
        assert!(parse_prefix("10.88.0.1")
            .unwrap_err()
            .contains("10.88.0.1/32"));
        assert!(parse_prefix("2001:db8::/64").is_ok());
    }
}
