//! TCP-AO groups in the config (`[[group.ao_key]]`): what a valid key
//! becomes, and every kind of bad input with a clear problem naming the
//! key, never its secret. Also the include rendering of AO peers
//! (`passive on`) and the keyring plan (pure parts).

use std::path::Path;

use autopeer::bird::render::{self, Dialect, Peer};
use autopeer::config::{AoAlgorithm, Config, ConfigError, Problem};

const SECRET: &str = "s3cretAO-never-shown";

fn load(text: &str, dir: &Path) -> Result<Config, Vec<Problem>> {
    match Config::load_str(text, dir) {
        Ok(c) => Ok(c),
        Err(ConfigError::Invalid { problems, .. }) => Err(problems),
        Err(e) => panic!("not a validation error: {e}"),
    }
}

fn group(keys: &str) -> String {
    format!(
        "[[group]]\nname = \"aopeers\"\ntemplate = \"AO\"\nprefixes = [\"10.77.0.0/24\"]\n{keys}\n"
    )
}

fn key(send: i64, recv: i64, alg: &str, extra: &str) -> String {
    format!(
        "[[group.ao_key]]\nsend_id = {send}\nrecv_id = {recv}\nalgorithm = \"{alg}\"\nsecret = \"{SECRET}\"\n{extra}\n"
    )
}

fn problems(text: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let ps = load(text, dir.path()).expect_err("should be refused");
    let shown: Vec<String> = ps.iter().map(ToString::to_string).collect();
    for p in &shown {
        assert!(!p.contains(SECRET), "a problem shows the secret: {p}");
    }
    shown
}

#[test]
fn keys_with_operator_and_kernel_spellings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k2.key"), "file-secret\n").unwrap();
    let text = group(&format!(
        "{}{}{}",
        key(1, 1, "hmac-sha1", ""),
        key(2, 3, "cmac(aes128)", "current = true"),
        "[[group.ao_key]]\nsend_id = 7\nrecv_id = 7\nalgorithm = \"HMAC-SHA256\"\nsecret_file = \"k2.key\"\n"
    ));
    let c = load(&text, dir.path()).unwrap();
    let g = &c.groups[0];
    assert!(g.is_ao());
    assert_eq!(g.password, None);
    let algs: Vec<AoAlgorithm> = g.ao_keys.iter().map(|k| k.algorithm).collect();
    assert_eq!(
        algs,
        [
            AoAlgorithm::HmacSha1,
            AoAlgorithm::CmacAes128,
            AoAlgorithm::HmacSha256
        ]
    );
    assert_eq!(AoAlgorithm::CmacAes128.kernel_name(), "cmac(aes128)");
    let current: Vec<bool> = g.ao_keys.iter().map(|k| k.current).collect();
    assert_eq!(current, [false, true, false]);
    assert_eq!((g.ao_keys[1].send_id, g.ao_keys[1].recv_id), (2, 3));
    assert_eq!(g.ao_keys[2].secret.expose(), b"file-secret");
    assert!(!format!("{c:?}").contains(SECRET));
    assert!(!format!("{c:?}").contains("file-secret"));
}

#[test]
fn a_lone_key_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let c = load(&group(&key(0, 255, "hmac-sha1", "")), dir.path()).unwrap();
    assert!(c.groups[0].ao_keys[0].current);
}

#[test]
fn ids_outside_0_255_are_refused() {
    let ps = problems(&group(&key(256, -1, "hmac-sha1", "")));
    assert!(
        ps.contains(
            &"group.aopeers.ao_key[0].send_id: 256 is not a TCP-AO key ID: use 0-255".into()
        ),
        "{ps:?}"
    );
    assert!(
        ps.iter()
            .any(|p| p.starts_with("group.aopeers.ao_key[0].recv_id: -1")),
        "{ps:?}"
    );
}

#[test]
fn duplicate_ids_in_a_group_are_refused() {
    let ps = problems(&group(&format!(
        "{}{}",
        key(1, 1, "hmac-sha1", "current = true"),
        key(2, 1, "hmac-sha1", "")
    )));
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with("group.aopeers.ao_key: key 1/1 and key 2/1 share recv_id 1"),
        "{ps:?}"
    );
}

#[test]
fn secret_longer_than_80_bytes_and_empty_are_refused() {
    let long = "x".repeat(81);
    let text = group(&format!(
        "[[group.ao_key]]\nsend_id = 1\nrecv_id = 1\nalgorithm = \"hmac-sha1\"\nsecret = \"{long}\"\n"
    ));
    let ps = problems(&text);
    assert_eq!(
        ps,
        ["group.aopeers.ao_key[0].secret: the secret is 81 bytes long; the kernel takes at most 80"]
    );
    assert!(!ps[0].contains(&long));
    let ok = group(&format!(
        "[[group.ao_key]]\nsend_id = 1\nrecv_id = 1\nalgorithm = \"hmac-sha1\"\nsecret = \"{}\"\n",
        "x".repeat(80)
    ));
    assert!(load(&ok, Path::new("/")).is_ok());
    let ps = problems(&group(
        "[[group.ao_key]]\nsend_id = 1\nrecv_id = 1\nalgorithm = \"hmac-sha1\"\nsecret = \"\"\n",
    ));
    assert_eq!(ps, ["group.aopeers.ao_key[0].secret: the secret is empty"]);
    let ps = problems(&group(
        "[[group.ao_key]]\nsend_id = 1\nrecv_id = 1\nalgorithm = \"hmac-sha1\"\n",
    ));
    assert_eq!(
        ps,
        ["group.aopeers.ao_key[0].secret: missing: set secret or secret_file"]
    );
}

#[test]
fn unknown_algorithm_is_refused_with_the_choices() {
    let ps = problems(&group(&key(1, 1, "hmac-md5", "")));
    assert_eq!(
        ps,
        ["group.aopeers.ao_key[0].algorithm: \"hmac-md5\" is not a TCP-AO algorithm: use \"hmac-sha1\", \"cmac-aes128\", \"hmac-sha256\""]
    );
}

#[test]
fn exactly_one_current_key() {
    let ps = problems(&group(&format!(
        "{}{}",
        key(1, 1, "hmac-sha1", ""),
        key(2, 2, "hmac-sha1", "")
    )));
    assert_eq!(
        ps,
        ["group.aopeers.ao_key: no key is current among key 1/1, key 2/2: mark the one to send with `current = true`"]
    );
    let ps = problems(&group(&format!(
        "{}{}",
        key(1, 1, "hmac-sha1", "current = true"),
        key(2, 2, "hmac-sha1", "current = true")
    )));
    assert_eq!(
        ps,
        ["group.aopeers.ao_key: 2 keys are marked current: mark exactly one"]
    );
}

#[test]
fn md5_and_ao_in_one_group_are_refused() {
    let text = format!(
        "[[group]]\nname = \"aopeers\"\ntemplate = \"AO\"\nprefixes = [\"10.77.0.0/24\"]\npassword = \"{SECRET}x\"\n{}",
        key(1, 1, "hmac-sha1", "")
    );
    let ps = problems(&text);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with(
            "group.aopeers.password: a group signs with TCP-MD5 or with TCP-AO, not both"
        ),
        "{ps:?}"
    );
}

#[test]
fn secret_file_problems_name_the_file_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("long.key"), "y".repeat(90)).unwrap();
    std::os::unix::fs::symlink(dir.path().join("long.key"), dir.path().join("link.key")).unwrap();
    let text = group(
        "[[group.ao_key]]\nsend_id = 1\nrecv_id = 1\nalgorithm = \"hmac-sha1\"\nsecret_file = \"long.key\"\ncurrent = true\n\
         [[group.ao_key]]\nsend_id = 2\nrecv_id = 2\nalgorithm = \"hmac-sha1\"\nsecret_file = \"link.key\"\n\
         [[group.ao_key]]\nsend_id = 3\nrecv_id = 3\nalgorithm = \"hmac-sha1\"\nsecret_file = \"missing.key\"\n",
    );
    let ps = load(&text, dir.path()).unwrap_err();
    let ps: Vec<String> = ps.iter().map(ToString::to_string).collect();
    assert_eq!(ps.len(), 3, "{ps:?}");
    assert_eq!(
        ps[0],
        "group.aopeers.ao_key[0].secret_file: the secret is 90 bytes long; the kernel takes at most 80"
    );
    assert!(
        ps[1].starts_with("group.aopeers.ao_key[1].secret_file: cannot read"),
        "{ps:?}"
    );
    assert!(
        ps[2].starts_with("group.aopeers.ao_key[2].secret_file: cannot read"),
        "{ps:?}"
    );
    assert!(ps.iter().all(|p| !p.contains("yyyy")));
}

#[test]
fn unknown_key_in_an_ao_table_is_a_syntax_error() {
    let text = group(&key(1, 1, "hmac-sha1", "preferred = true"));
    match Config::load_str(&text, Path::new("/")) {
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(message.contains("unknown field `preferred`"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

fn peer(group: &str, addr: &str) -> Peer {
    Peer {
        name: render::peer_name(group, addr.parse().unwrap(), None),
        group: group.into(),
        template: "AO".into(),
        addr: addr.parse().unwrap(),
        iface: None,
        neighbor: None,
        admitted: "2026-11-28T10:00:00Z".into(),
        via: "bird-log".into(),
    }
}

/// BIRD has no AO key for an admitted AO peer, so a connection it opens
/// itself is unsigned and dropped by the peer: AO peers are `passive on`,
/// others not; the file parses back to the same peers.
#[test]
fn ao_peers_render_passive_and_parse_back() {
    let peers = vec![peer("aopeers", "10.77.0.2"), peer("open", "10.78.0.2")];
    let passive = ["aopeers".to_owned()].into();
    let text =
        render::render_groups(&peers, &Default::default(), &passive, &Dialect::Bird2).unwrap();
    let block = |name: &str| -> String {
        let start = text.find(&format!("protocol bgp {name} ")).unwrap();
        text[start..start + text[start..].find('}').unwrap()].to_string()
    };
    assert!(
        block("aopeers_10_77_0_2").contains("  passive on;\n"),
        "{text}"
    );
    assert!(!block("open_10_78_0_2").contains("passive"), "{text}");
    let mut back = render::parse(&text).unwrap();
    back.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(back, peers);
    let twice = text.replace("  passive on;\n", "  passive on;\n  passive on;\n");
    assert!(render::parse(&twice).is_err());
}

fn ao_config(extra_groups: &str) -> Config {
    let text = format!("{}{}{extra_groups}", group(&key(1, 1, "hmac-sha1", "")), "");
    load(&text, Path::new("/")).unwrap()
}

const BIRD_CONF: &str = r#"
template bgp AO { local as 65000; neighbor internal; }
template bgp MD5 { local as 65000; neighbor internal; password "md5key"; }
"#;

fn birdconf() -> autopeer::bird::conf::BirdConf {
    autopeer::bird::conf::scan_text(BIRD_CONF, Path::new("/etc/bird/bird.conf")).unwrap()
}

/// The kernel's own word on TCP-AO, read independently of autopeer:
/// `CONFIG_TCP_AO=y` in /proc/config.gz. `None` when the kernel does not
/// publish its config.
fn kernel_config_has_tcp_ao() -> Option<bool> {
    let out = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "CONFIG_TCP_AO=y"),
    )
}

/// `check` says in one sentence when the kernel has no TCP-AO, and only
/// then (this host's 6.18 kernel is built without it; the UML kernel of
/// the lab tests with it).
#[test]
fn check_names_a_kernel_without_tcp_ao() {
    let Some(has) = kernel_config_has_tcp_ao() else {
        assert!(std::env::var_os("CI").is_none(), "no /proc/config.gz");
        eprintln!("skipped: the kernel publishes no /proc/config.gz");
        return;
    };
    let findings = autopeer::check::check_keyring(&ao_config(""), &birdconf());
    let lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
    let sentence = "problem: bird.keyring: TCP-AO group(s) aopeers: this kernel has no TCP-AO (it needs Linux 6.7 or later built with CONFIG_TCP_AO); the group's peers cannot connect";
    assert_eq!(lines.iter().any(|l| l == sentence), !has, "{lines:#?}");
    assert!(lines.iter().all(|l| !l.contains(SECRET)));
}

/// MD5 and AO groups whose prefixes overlap, and an AO group whose template
/// has an MD5 password: one sentence each, nothing keyed.
#[test]
fn check_refuses_md5_overlap_and_md5_templates() {
    let md5 = "[[group]]\nname = \"md5peers\"\ntemplate = \"MD5\"\nprefixes = [\"10.77.0.0/16\"]\n";
    let c = ao_config(md5);
    let lines: Vec<String> = autopeer::check::check_keyring(&c, &birdconf())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        ["problem: bird.keyring: group aopeers (TCP-AO) and group md5peers (TCP-MD5) overlap in 10.77.0.0/24: the kernel refuses an AO key where an MD5 key covers the address, and BIRD's MD5 keys for peers inside an AO prefix: give them disjoint prefixes"]
    );
    let text =
        group(&key(1, 1, "hmac-sha1", "")).replace("template = \"AO\"", "template = \"MD5\"");
    let c = load(&text, Path::new("/")).unwrap();
    let lines: Vec<String> = autopeer::check::check_keyring(&c, &birdconf())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("problem: bird.keyring: group aopeers: template MD5 has a `password`"),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains("md5key")));
}
