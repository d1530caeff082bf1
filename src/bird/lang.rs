//! The lexical rules of BIRD's config language that autopeer must obey,
//! in one place: what a symbol, an interface name and a string (an MD5
//! key) may hold. Config validation, rendering, the log parsers and the
//! keyring all ask these predicates, so that `autopeer check` passes
//! exactly what the daemon can write into BIRD's config.
//!
//! Facts checked with `bird -p` on 2.0.12 and in BIRD's `conf/cf-lex.l`:
//! a quoted string is any bytes up to the next `"` or line feed, with no
//! escapes (a TAB, other control characters, `\`, `#` and non-ASCII are
//! taken as they are); a NUL ends the C string BIRD copies it into.

/// BIRD's `SYM_MAX_LEN`: the longest symbol it accepts.
pub const SYM_MAX_LEN: usize = 64;
/// Linux `IFNAMSIZ - 1`.
pub const IFACE_MAX_LEN: usize = 15;
/// The longest MD5 key: the kernel's `TCP_MD5SIG_MAXKEYLEN`. BIRD takes
/// longer ones and only fails when the session starts.
pub const MAX_PASSWORD_LEN: usize = crate::keyring::sys::MAX_KEY_LEN;

/// Every keyword of BIRD 1.6.8, 2.0.12 and 3.2.0 (`CF_KEYWORDS` in the
/// `*.Y` grammar files, and `down` and `state`, which 2.0.12's lexer
/// takes as keywords too: tests/render.rs asks the installed BIRD),
/// sorted. Keywords cannot be names, not even in
/// the apostrophe form: BIRD 2.0.12 takes some (`peer`) and not others
/// (`rr`), BIRD 3.0-3.2 none. BIRD compares them case-sensitively
/// (`strcmp`): `RR` is a plain symbol.
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "accept", "action", "add", "address", "administrative", "advertise", "aes128", "after",
    "aggregate", "aggregator", "aigp", "algorithm", "all", "allocator", "allow", "always", "ao",
    "append", "area", "as", "as4", "asn", "aspa", "aspa_check", "aspa_check_downstream",
    "aspa_check_upstream", "aspa_providers", "attribute", "auth", "authentication", "autonomous",
    "aware", "babel", "babel_metric", "base", "bcast", "bfd", "bgp", "bgp_aggregator", "bgp_aigp",
    "bgp_atomic_aggr", "bgp_cluster_list", "bgp_community", "bgp_ext_community",
    "bgp_large_community", "bgp_local_pref", "bgp_med", "bgp_next_hop", "bgp_origin",
    "bgp_originator_id", "bgp_otc", "bgp_path", "bgpmask", "bgppath", "bind", "bird", "blackhole",
    "blake2b256", "blake2b512", "blake2s128", "blake2s256", "block", "bmp", "bool", "broadcast",
    "bt_assert", "bt_check_assign", "bt_test_same", "bt_test_suite", "buffer", "bug", "by",
    "bytestring", "capabilities", "case", "cast", "cease", "change", "channels", "check",
    "checksum", "circuit", "class", "cli", "client", "clist", "cluster", "cmac", "code",
    "collision", "commands", "communities", "confederation", "config", "configuration", "confirm",
    "connect", "connection", "contains", "cork", "cost", "cost2", "count", "cryptographic",
    "current", "custom", "customer", "data", "data1", "data2", "dead", "debug", "decay",
    "deconfigured", "default", "define", "defined", "delay", "delete", "demand", "deprecated",
    "description", "dest", "deterministic", "dev", "device", "digest", "digits", "direct",
    "disable", "disabled", "distinguisher", "dnssl", "do", "domain", "dont_fragment", "double",
    "down", "dport", "drop", "dscp", "dst", "dual", "dump", "dynamic", "ebgp", "ec", "eclist",
    "ecmp", "eligible", "else", "empty", "enable", "enforce", "enhanced", "entries", "enum",
    "error", "eval", "events", "exp", "expire", "export", "exported", "express", "extended",
    "external", "false", "fatal", "filename", "filter", "filtered", "filters", "first",
    "first_fragment", "fixed", "flags", "flow4", "flow6", "flush", "for", "forget", "format",
    "fragment", "free", "from", "from_hex", "function", "garbage", "gateway", "gc", "generate",
    "generation", "generic", "global", "graceful", "group", "gw", "gw_mpls", "header", "hello",
    "hidden", "high", "hit", "hmac", "hold", "hop", "horizon", "hostname", "ibgp", "icmp", "id",
    "idle", "if", "ifindex", "ifname", "ignore", "igp", "igp_metric", "import", "in", "infinity",
    "info", "instance", "int", "interface", "interfaces", "internal", "interpret", "interval", "ip",
    "ipv4", "ipv4_mc", "ipv4_mpls", "ipv6", "ipv6_mc", "ipv6_mpls", "ipv6_sadr", "is_fragment",
    "is_v4", "is_v6", "iso", "keep", "keepalive", "kernel", "key", "keyed", "keys", "krt_advmss",
    "krt_cwnd", "krt_feature_allfrag", "krt_feature_ecn", "krt_hoplimit", "krt_initcwnd",
    "krt_initrwnd", "krt_lock_advmss", "krt_lock_congctl", "krt_lock_cwnd",
    "krt_lock_fastopen_no_cookie", "krt_lock_hoplimit", "krt_lock_initcwnd", "krt_lock_initrwnd",
    "krt_lock_mtu", "krt_lock_quickack", "krt_lock_reordering", "krt_lock_rto_min", "krt_lock_rtt",
    "krt_lock_rttvar", "krt_lock_ssthresh", "krt_lock_sstresh", "krt_lock_window", "krt_metric",
    "krt_mtu", "krt_prefsrc", "krt_quickack", "krt_realm", "krt_reordering", "krt_rto_min",
    "krt_rtt", "krt_rttvar", "krt_scope", "krt_source", "krt_sstresh", "krt_window", "l3vpn",
    "label", "large", "last", "last_fragment", "last_nonaggregated", "latency", "lc", "lclist",
    "learn", "len", "length", "lifetime", "limit", "linger", "link", "listen", "lived", "lladdr",
    "local", "log", "long", "low", "lsa", "lsadb", "lsid", "mac", "managed", "mandatory", "mask",
    "match", "max", "maxlen", "md5", "med", "medium", "member", "memory", "merge", "messages",
    "meticulous", "metric", "min", "missing", "mode", "monitoring", "mpls", "mpls_class",
    "mpls_label", "mpls_policy", "mrt", "mrtdump", "ms", "mtu", "mult", "multicast", "multihop",
    "multipath", "multiplier", "name", "native", "nbma", "neighbor", "neighbors", "net", "netlink",
    "netmask", "networks", "next", "ng", "no", "noexport", "nonbroadcast", "none", "normal", "ns",
    "nssa", "of", "off", "offset", "old", "older", "on", "onlink", "only", "opaque", "option",
    "originate", "ospf", "ospf_metric1", "ospf_metric2", "ospf_router_id", "ospf_tag", "other",
    "out", "packets", "pair", "partial", "passive", "password", "passwords", "path", "paths", "pd",
    "pe", "peer", "perf", "period", "permissive", "persist", "ping", "pipe", "plaintext",
    "pointomultipoint", "pointopoint", "poison", "policy", "poll", "port", "post_policy",
    "pre_policy", "preexport", "prefer", "preference", "preferred", "prefix", "prepend", "pri",
    "primary", "print", "printn", "priority", "private", "prohibit", "propagate", "proto",
    "protocol", "protocols", "provider", "providers", "ptmp", "ptp", "public", "quad", "quitbird",
    "ra", "ra_lifetime", "ra_preference", "radv", "randomize", "range", "rd", "rdnss", "reachable",
    "real", "receive", "recursive", "recv", "refresh", "reject", "rejected", "reload", "remote",
    "repeat", "require", "reset", "resources", "restart", "restrict", "retrans", "retransmit",
    "retry", "return", "reverse", "rfc1583compat", "rfc5838", "rib", "rip", "rip_metric", "rip_tag",
    "ro", "roa", "roa4", "roa6", "roa_check", "role", "roles", "route", "router", "routes", "rpki",
    "rr", "rs", "rs_client", "rs_server", "rt", "rtt", "rx", "rxcost", "s", "sadr", "scan",
    "scheduling", "scope", "sec", "secondary", "secret", "security", "self", "send", "sensitive",
    "set", "setkey", "sets", "settle", "sha1", "sha256", "sha384", "sha512", "short", "show",
    "shutdown", "simple", "single", "size", "skip", "sockets", "soft", "solicited", "sorted",
    "source", "split", "sport", "src", "ssh", "stability", "stacks", "stale", "start", "startup",
    "state", "states", "static", "station", "stats", "status", "stderr", "strict", "string", "stub",
    "stubnet", "summary", "suppression", "syslog", "system", "table", "tables", "tag", "target",
    "tcp", "template", "then", "thread", "threads", "threshold", "tick", "time", "timeformat",
    "timeout", "timer", "timers", "timestamps", "to", "trace", "transit", "translator", "transmit",
    "transparent", "transport", "trie", "trigger", "true", "ttl", "tunnel", "tx", "type", "udp",
    "udp6", "undo", "unicast", "unknown", "unreachable", "unset", "update", "us", "user", "v2",
    "v3", "v6only", "valid", "validate", "value", "version", "via", "virtual", "vpn", "vpn4",
    "vpn4_mc", "vpn4_mpls", "vpn6", "vpn6_mc", "vpn6_mpls", "vrf", "wait", "wakeup", "warn",
    "warning", "watchdog", "weight", "where", "wired", "wireless", "yes", "zero",
];

/// A BIRD keyword, on any of the versions in [`KEYWORDS`].
pub fn is_keyword(s: &str) -> bool {
    // Asked three times for each peer of every apply: a hash lookup, not
    // ten string comparisons.
    static SET: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
        std::sync::LazyLock::new(|| KEYWORDS.iter().copied().collect());
    SET.contains(s)
}

/// Why `s` cannot be a BIRD symbol (a protocol, template or group name),
/// or `None` when it can. Never longer than a phrase after the name.
pub fn symbol_problem(s: &str) -> Option<&'static str> {
    let first_ok = matches!(s.bytes().next(), Some(b) if b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Some("is not a BIRD symbol ([A-Za-z_][A-Za-z0-9_]*)")
    } else if s.len() > SYM_MAX_LEN {
        Some("is longer than 64 characters, BIRD's limit for a symbol")
    } else if s.len() >= 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        // 2.0.12 lexes an even number of at least 32 as a byte string
        // (`deadbeef` x4 fails with `unexpected BYTESTRING`).
        Some("is 32 or more hex digits, which BIRD reads as a byte string")
    } else if is_keyword(s) {
        Some("is a BIRD keyword, which BIRD 3.0-3.2 (and 2.x for most keywords) cannot use as a name")
    } else {
        None
    }
}

/// A plain BIRD symbol: `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters,
/// not a keyword, and not 32 or more hex digits only.
pub fn is_symbol(s: &str) -> bool {
    symbol_problem(s).is_none()
}

/// An interface name autopeer will write into BIRD's config or accept
/// from a log line: `[A-Za-z0-9_.:-]{1,15}`, and not `.` or `..`.
pub fn is_iface(s: &str) -> bool {
    s != "."
        && s != ".."
        && (1..=IFACE_MAX_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

/// Why an MD5 key cannot be written as `password "KEY";` and used, or
/// `None` when it can. Never echoes the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    Empty,
    /// BIRD strings have no escape for `"`.
    Quote,
    /// A line feed ends a BIRD string; a carriage return would survive
    /// BIRD but not a line-oriented read of the include.
    LineBreak,
    /// BIRD copies strings into C strings: the key would be cut there.
    Nul,
    /// Longer than [`MAX_PASSWORD_LEN`] bytes.
    TooLong,
}

impl KeyProblem {
    /// The phrase after "the password": `is empty`, ...
    pub fn describe(self) -> &'static str {
        match self {
            KeyProblem::Empty => "is empty",
            KeyProblem::Quote => "contains a double quote, which a BIRD string cannot hold",
            KeyProblem::LineBreak => "contains a line break, which a BIRD string cannot hold",
            KeyProblem::Nul => "contains a NUL byte, at which BIRD would cut the key",
            KeyProblem::TooLong => {
                "is longer than 80 bytes (the kernel's TCP-MD5 limit; BIRD only fails when the session starts)"
            }
        }
    }
}

/// The one rule for MD5 keys, used by config validation, rendering and
/// the keyring. A TAB, other control characters, `\` and non-ASCII are
/// fine: BIRD 2.0.12 takes them as they are (checked with `bird -p`).
pub fn key_problem(key: &str) -> Option<KeyProblem> {
    if key.is_empty() {
        Some(KeyProblem::Empty)
    } else if key.contains('"') {
        Some(KeyProblem::Quote)
    } else if key.contains(['\n', '\r']) {
        Some(KeyProblem::LineBreak)
    } else if key.contains('\0') {
        Some(KeyProblem::Nul)
    } else if key.len() > MAX_PASSWORD_LEN {
        Some(KeyProblem::TooLong)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_sorted_for_binary_search() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_keyword("neighbor") && is_keyword("ipv4") && is_keyword("rr"));
        // BIRD compares keywords with strcmp.
        assert!(!is_keyword("RR") && !is_keyword("BGP"));
        assert!(!is_keyword("vti3"));
    }

    #[test]
    fn symbols() {
        assert!(is_symbol("clients_10_0_0_1") && is_symbol("IBGP"));
        assert_eq!(
            symbol_problem("peer").map(|m| m.contains("keyword")),
            Some(true)
        );
        assert!(!is_symbol("2x") && !is_symbol("a-b") && !is_symbol(""));
        assert!(is_symbol(&"a".repeat(31)) && !is_symbol(&"a".repeat(32)));
        assert!(is_symbol(&"g".repeat(64)) && !is_symbol(&"g".repeat(65)));
    }

    #[test]
    fn keys() {
        assert_eq!(key_problem("tab\there"), None);
        assert_eq!(key_problem("back\\slash \u{1b}[0m é"), None);
        assert_eq!(key_problem(&"x".repeat(80)), None);
        assert_eq!(key_problem(&"x".repeat(81)), Some(KeyProblem::TooLong));
        assert_eq!(key_problem("a\"b"), Some(KeyProblem::Quote));
        assert_eq!(key_problem("a\rb"), Some(KeyProblem::LineBreak));
        assert_eq!(key_problem("a\0b"), Some(KeyProblem::Nul));
        assert_eq!(key_problem(""), Some(KeyProblem::Empty));
    }
}
