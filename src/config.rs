//! The TOML configuration (`/etc/bird/autopeer.toml`): schema, defaults and
//! validation.
//!
//! Two steps, as in ntpd-rs: serde reads the text into [`RawConfig`] (strings,
//! `deny_unknown_fields` everywhere, named defaults), then
//! [`Config::from_raw`] turns it into typed values and reports *every*
//! problem with its key path (`group.clients.prefixes[1]: ...`). The only I/O
//! here is reading the config file itself and `password_file`s. Passwords
//! never appear in a [`Problem`] or in `Debug` output.
//!
//! This file holds the schema (raw and typed; tests/man.rs reads the `Raw*`
//! structs from it); `validate` holds the conversion and its checks.
//!
//! Decisions of our own (documented defaults, man/autopeer.conf.5):
//! - `max_peers` defaults to [`DEFAULT_MAX_PEERS`] (1000); 0 is a problem.
//! - `rate` defaults to [`DEFAULT_RATE`] (60 admissions per minute); the
//!   string `"unlimited"` turns the limit off; 0 is a problem.
//! - `expire` defaults to `"never"`: autopeer removes nobody unless told to.
//!   So does `depart`, which needs `[sources] nhrp_vty`.
//! - `batch` must be at most 60 s.
//! - Relative paths anywhere in the file resolve against the config file's
//!   directory.
//! - A `deny` entry must lie inside one of the group's own prefixes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv6Net};
use serde::Deserialize;

use crate::bird::lang;
use crate::bird::render::NeighborAs;
use crate::secret::Secret;

/// Default `[[group]] max_peers`.
pub const DEFAULT_MAX_PEERS: usize = 1000;
/// Default `[[group]] rate`, admissions per minute.
pub const DEFAULT_RATE: u32 = 60;
/// Longest accepted MD5 key (docs/facts.md fact 11: longer ones fail at run time).
pub use crate::bird::lang::MAX_PASSWORD_LEN;
/// Longest group name; names become BIRD symbol prefixes (`clients_10_0_0_1`).
pub const MAX_GROUP_NAME_LEN: usize = 32;
/// Longest `batch`.
pub const MAX_BATCH: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- raw schema

fn default_bird_socket() -> PathBuf {
    PathBuf::from("/run/bird/bird.ctl")
}
fn default_bird_config() -> PathBuf {
    PathBuf::from("/etc/bird/bird.conf")
}
fn default_bird_include() -> PathBuf {
    PathBuf::from("/etc/bird/autopeer.conf")
}
fn default_keyring() -> String {
    "auto".into()
}
fn default_agent_socket() -> PathBuf {
    PathBuf::from("/run/autopeer.ctl")
}
fn default_state() -> PathBuf {
    PathBuf::from("/var/lib/autopeer/state.toml")
}
fn default_audit_log() -> PathBuf {
    PathBuf::from("/var/log/autopeer.log")
}
/// Group commit needs no wait: an idle roster applies at once and what
/// comes during an apply joins the next (README § Performance).
fn default_batch() -> String {
    "0s".into()
}
fn default_logs() -> Vec<PathBuf> {
    vec![PathBuf::from("/var/log/bird.log")]
}
fn default_nhrp_policy() -> String {
    "enforce".into()
}
fn default_unverified() -> String {
    "refuse".into()
}
fn default_expire() -> String {
    "never".into()
}

/// The file as serde reads it: everything a user can type, only shape-checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RawConfig {
    #[serde(default)]
    pub bird: RawBird,
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub sources: RawSources,
    #[serde(default, rename = "group")]
    pub groups: Vec<RawGroup>,
}

/// `[bird]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RawBird {
    #[serde(default = "default_bird_socket")]
    pub socket: PathBuf,
    #[serde(default = "default_bird_config")]
    pub config: PathBuf,
    #[serde(default = "default_bird_include")]
    pub include: PathBuf,
    #[serde(default = "default_keyring")]
    pub keyring: String,
}

impl Default for RawBird {
    fn default() -> Self {
        RawBird {
            socket: default_bird_socket(),
            config: default_bird_config(),
            include: default_bird_include(),
            keyring: default_keyring(),
        }
    }
}

/// `[agent]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RawAgent {
    #[serde(default = "default_agent_socket")]
    pub socket: PathBuf,
    #[serde(default = "default_state")]
    pub state: PathBuf,
    #[serde(default = "default_audit_log")]
    pub audit_log: PathBuf,
    #[serde(default = "default_batch")]
    pub batch: String,
    #[serde(default)]
    pub dry_run: bool,
    /// `"ADDR:PORT"`; absent: no metrics endpoint.
    #[serde(default)]
    pub metrics: Option<String>,
}

impl Default for RawAgent {
    fn default() -> Self {
        RawAgent {
            socket: default_agent_socket(),
            state: default_state(),
            audit_log: default_audit_log(),
            batch: default_batch(),
            dry_run: false,
            metrics: None,
        }
    }
}

/// `[sources]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RawSources {
    #[serde(default = "default_logs")]
    pub logs: Vec<PathBuf>,
    #[serde(default)]
    pub nhrp_socket: Option<PathBuf>,
    #[serde(default = "default_nhrp_policy")]
    pub nhrp_policy: String,
    #[serde(default)]
    pub nhrp_vty: Option<PathBuf>,
    #[serde(default = "default_unverified")]
    pub unverified: String,
    #[serde(default = "default_journal")]
    pub journal: String,
}

fn default_journal() -> String {
    "auto".into()
}

impl Default for RawSources {
    fn default() -> Self {
        RawSources {
            logs: default_logs(),
            nhrp_socket: None,
            nhrp_policy: default_nhrp_policy(),
            nhrp_vty: None,
            unverified: default_unverified(),
            journal: default_journal(),
        }
    }
}

/// A TOML value that is either a string or an integer
/// (`neighbor = "internal"` / `neighbor = 65001`, `rate = 60` / `"unlimited"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawWordOrNumber {
    Number(i64),
    Word(String),
}

/// One `[[group]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RawGroup {
    pub name: String,
    pub template: String,
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub neighbor: Option<RawWordOrNumber>,
    #[serde(default, deserialize_with = "de_secret")]
    pub password: Option<Secret<String>>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub max_peers: Option<i64>,
    #[serde(default)]
    pub rate: Option<RawWordOrNumber>,
    #[serde(default = "default_expire")]
    pub expire: String,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub nbma_prefixes: Vec<String>,
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub require_cert: bool,
    #[serde(default = "default_expire")]
    pub depart: String,
    #[serde(default, rename = "ao_key")]
    pub ao_keys: Vec<RawAoKey>,
}

/// One `[[group.ao_key]]`: a TCP-AO master key tuple (RFC 5925 3.1).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RawAoKey {
    pub send_id: i64,
    pub recv_id: i64,
    pub algorithm: String,
    #[serde(default, deserialize_with = "de_secret")]
    pub secret: Option<Secret<String>>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub current: bool,
}

impl fmt::Debug for RawAoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawAoKey")
            .field("send_id", &self.send_id)
            .field("recv_id", &self.recv_id)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret)
            .field("secret_file", &self.secret_file)
            .field("current", &self.current)
            .finish()
    }
}

impl fmt::Debug for RawGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawGroup")
            .field("name", &self.name)
            .field("template", &self.template)
            .field("prefixes", &self.prefixes)
            .field("password", &self.password)
            .field("password_file", &self.password_file)
            .finish_non_exhaustive()
    }
}

/// Reads `password` straight into a [`Secret`], so no `Debug` of the raw
/// config can show it. (A local function, not a `Deserialize` impl on the
/// shared type.)
fn de_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret<String>>, D::Error> {
    Option::<String>::deserialize(d).map(|o| o.map(Secret::new))
}

// ---------------------------------------------------------------- typed config

/// `[bird] keyring`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyring {
    /// Prefix MD5 keys on BIRD's listener for groups that have a password.
    Auto,
    /// No keys; only unsigned peers can knock.
    Off,
}

/// `[sources] nhrp_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NhrpPolicy {
    /// Reject NHRP registrations that are not admitted.
    Enforce,
    /// Always accept registrations; decide only about the BGP peer.
    Advise,
}

/// `[sources] unverified`: what a sighting nobody vouches for may do
/// (docs/facts.md § Trust).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnverifiedPolicy {
    /// Unverified lines (shared syslog files, kernel, netfilter, JUNOS)
    /// admit no one, except into a group whose MD5 key the kernel checks.
    #[default]
    Refuse,
    /// They admit like BIRD's own lines (the operator accepts the risk).
    Admit,
}

/// `[sources] journal`: read BIRD's lines from the systemd journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalMode {
    /// On when bird.conf logs to syslog and a journal is present.
    Auto,
    On,
    Off,
}

/// `[bird]`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdSection {
    pub socket: PathBuf,
    pub config: PathBuf,
    pub include: PathBuf,
    pub keyring: Keyring,
}

/// `[agent]`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSection {
    pub socket: PathBuf,
    pub state: PathBuf,
    pub audit_log: PathBuf,
    pub batch: Duration,
    pub dry_run: bool,
    /// Where the Prometheus endpoint listens (`None`: off).
    pub metrics: Option<std::net::SocketAddr>,
}

/// `[sources]`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesSection {
    pub logs: Vec<PathBuf>,
    pub nhrp_socket: Option<PathBuf>,
    pub nhrp_policy: NhrpPolicy,
    /// nhrpd's vty socket, read for departures (`None`: not read).
    pub nhrp_vty: Option<PathBuf>,
    pub unverified: UnverifiedPolicy,
    pub journal: JournalMode,
}

/// One validated `[[group]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `[a-z][a-z0-9_]*`, at most 32 characters, unique.
    pub name: String,
    /// A BIRD symbol; that it exists in bird.conf is checked by [`Config::check_bird`].
    pub template: String,
    /// Host bits clear, no prefix shared with another group.
    pub prefixes: Vec<IpNet>,
    /// `None`: the template supplies `neighbor as N` / `internal` / `external`.
    pub neighbor: Option<NeighborAs>,
    /// From `password` or `password_file`; `None`: the template's own, if any.
    pub password: Option<Secret<String>>,
    /// Each inside one of `prefixes`.
    pub deny: Vec<IpNet>,
    /// At least 1.
    pub max_peers: usize,
    /// Admissions per minute; `None` is `rate = "unlimited"`.
    pub rate: Option<u32>,
    /// `None` is `expire = "never"`.
    pub expire: Option<Duration>,
    /// Required when a prefix is link-local.
    pub interface: Option<String>,
    pub nbma_prefixes: Vec<IpNet>,
    /// NHRP certificate binding (`ca`, `require_cert`); `None` without `ca`.
    pub cert: Option<crate::sources::nhrp::cert::CertPolicy>,
    /// How long a peer may lack an NHRP binding in nhrpd's cache (with
    /// its session down) before it is removed; `None` is `"never"`.
    pub depart: Option<Duration>,
    /// TCP-AO keys (`[[group.ao_key]]`); empty for MD5 and unsigned groups.
    /// Never together with `password`; exactly one is `current`.
    pub ao_keys: Vec<AoKey>,
}

/// A TCP-AO MAC algorithm (RFC 5926, and HMAC-SHA-256 where the kernel's
/// crypto API has it), by the kernel's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AoAlgorithm {
    HmacSha1,
    CmacAes128,
    HmacSha256,
}

impl AoAlgorithm {
    /// Every algorithm: (config word, algorithm).
    pub const ALL: [(&'static str, AoAlgorithm); 3] = [
        ("hmac-sha1", AoAlgorithm::HmacSha1),
        ("cmac-aes128", AoAlgorithm::CmacAes128),
        ("hmac-sha256", AoAlgorithm::HmacSha256),
    ];

    /// The config word (`hmac-sha1`, as BIRD's `hmac sha1` with a dash).
    pub fn word(self) -> &'static str {
        match self {
            AoAlgorithm::HmacSha1 => "hmac-sha1",
            AoAlgorithm::CmacAes128 => "cmac-aes128",
            AoAlgorithm::HmacSha256 => "hmac-sha256",
        }
    }

    /// `struct tcp_ao_add::alg_name`: the kernel crypto API's name.
    pub fn kernel_name(self) -> &'static str {
        match self {
            AoAlgorithm::HmacSha1 => "hmac(sha1)",
            AoAlgorithm::CmacAes128 => "cmac(aes128)",
            AoAlgorithm::HmacSha256 => "hmac(sha256)",
        }
    }

    /// The algorithm behind a name the kernel reports for a key
    /// (`TCP_AO_GET_KEYS`): it stores AES-128-CMAC as `cmac(aes)`.
    pub fn from_kernel(name: &str) -> Option<AoAlgorithm> {
        match name {
            "cmac(aes)" => Some(AoAlgorithm::CmacAes128),
            _ => Self::ALL
                .iter()
                .find(|(_, a)| a.kernel_name() == name)
                .map(|(_, a)| *a),
        }
    }

    /// From a config word or the kernel's name, any case.
    pub fn parse(s: &str) -> Option<AoAlgorithm> {
        let s = s.trim().to_ascii_lowercase();
        Self::ALL
            .iter()
            .find(|(w, a)| *w == s || a.kernel_name() == s)
            .map(|(_, a)| *a)
    }
}

impl fmt::Display for AoAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One validated `[[group.ao_key]]`. `Debug` never shows the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AoKey {
    pub send_id: u8,
    pub recv_id: u8,
    pub algorithm: AoAlgorithm,
    /// 1..=80 bytes ([`MAX_AO_KEY_LEN`]).
    pub secret: Secret<Vec<u8>>,
    pub current: bool,
}

impl AoKey {
    /// `key 1/1 hmac-sha1`: how errors and status name a key.
    pub fn name(&self) -> String {
        format!("key {}/{}", self.send_id, self.recv_id)
    }
}

/// `TCP_AO_MAXKEYLEN`.
pub const MAX_AO_KEY_LEN: usize = 80;

impl Group {
    /// Whether the group's peers sign with TCP-AO.
    pub fn is_ao(&self) -> bool {
        !self.ao_keys.is_empty()
    }

    /// Whether `addr` lies in one of the group's prefixes.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.prefixes.iter().any(|p| p.contains(&addr))
    }

    /// Length of the longest of the group's prefixes that holds `addr`.
    pub fn match_len(&self, addr: IpAddr) -> Option<u8> {
        self.prefixes
            .iter()
            .filter(|p| p.contains(&addr))
            .map(|p| p.prefix_len())
            .max()
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bird: BirdSection,
    pub agent: AgentSection,
    pub sources: SourcesSection,
    pub groups: Vec<Group>,
}

/// One thing wrong with the config, at a key path such as
/// `group.clients.prefixes[1]` or `agent.batch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key_path: String,
    pub message: String,
}

impl Problem {
    fn new(key_path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key_path: key_path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key_path, self.message)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {} problem(s):\n{}", problems.len(), ProblemList(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// Every problem as (where, what), for printing one per line.
    pub fn problems(&self) -> Vec<(String, String)> {
        match self {
            ConfigError::Read { path, source } => {
                vec![(path.display().to_string(), format!("cannot read: {source}"))]
            }
            ConfigError::Syntax {
                path,
                line,
                column,
                message,
            } => {
                vec![(
                    format!("{}:{line}:{column}", path.display()),
                    message.clone(),
                )]
            }
            ConfigError::Invalid { problems, .. } => problems
                .iter()
                .map(|p| (p.key_path.clone(), p.message.clone()))
                .collect(),
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// `[a-z][a-z0-9_]*`, 1..=32 characters.
pub fn is_group_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= MAX_GROUP_NAME_LEN
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// A BIRD symbol autopeer can write: see [`lang::is_symbol`].
pub use crate::bird::lang::is_symbol as is_bird_symbol;

/// A Linux interface name as BIRD accepts it: see [`lang::is_iface`].
pub use crate::bird::lang::is_iface as is_interface_name;

/// What is wrong with an MD5 key, without quoting it: the rule of
/// [`lang::key_problem`], which rendering and the keyring apply too.
pub fn password_problem(pw: &str) -> Option<String> {
    match lang::key_problem(pw)? {
        lang::KeyProblem::TooLong => Some(format!(
            "is {} bytes long; the kernel takes at most {MAX_PASSWORD_LEN} (BIRD only fails when the session starts)",
            pw.len()
        )),
        other => Some(other.describe().to_string()),
    }
}

mod validate;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_group_name("clients_2"));
        assert!(!is_group_name("Clients"));
        assert!(!is_group_name("2clients"));
        assert!(!is_group_name(&"a".repeat(33)));
        assert!(is_bird_symbol("CLIENTS"));
        assert!(!is_bird_symbol("cli-ents"));
        assert!(is_interface_name("vti3.100"));
        assert!(!is_interface_name("a-very-long-ifname"));
    }

    #[test]
    fn password_rules_never_quote_the_key() {
        for pw in ["a\"b", "a\nb", "a\rb", "a\0b", &"x".repeat(81), ""] {
            let m = password_problem(pw).expect("problem");
            assert!(pw.is_empty() || !m.contains(pw), "{m}");
        }
        assert_eq!(password_problem(&"x".repeat(80)), None);
        assert_eq!(password_problem("s3cr\\et with spaces"), None);
    }
}
