//! Drift tests for the hand-written man pages in `man/`.
//!
//! - autopeer(8) documents every subcommand (nested ones too), every flag of
//!   `Cli::command()` and nothing that does not exist;
//! - autopeer.conf(5) documents every key of the config structs in
//!   `src/config.rs` (found by a text scan of the `Raw*` structs, so a new
//!   field cannot be forgotten), under the right table, with its default as
//!   the code defines it; `bird/autopeer.toml` names the same keys;
//! - the examples in autopeer.conf(5) are valid configs;
//! - `groff -ww -man` renders both pages without a warning (skipped with a
//!   reason when groff is not installed).
//!
//! Reads files only; runs no daemon.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use autopeer::cli::{Cli, DEFAULT_CONFIG, DEFAULT_SOCKET};
use autopeer::config::{Config, ConfigError, DEFAULT_MAX_PEERS, DEFAULT_RATE};
use clap::CommandFactory;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ------------------------------------------------------------ roff reading

/// Replaces the escapes the pages use by the characters they print and drops
/// font changes.
fn unescape(s: &str) -> String {
    let mut out = s.to_string();
    for (from, to) in [
        ("\\fB", ""),
        ("\\fI", ""),
        ("\\fR", ""),
        ("\\fP", ""),
        ("\\(dq", "\""),
        ("\\(bu", "*"),
        ("\\-", "-"),
        ("\\&", ""),
        ("\\~", " "),
        ("\\e", "\\"),
    ] {
        out = out.replace(from, to);
    }
    out
}

/// Splits macro arguments the way roff does: on blanks, `"..."` grouping.
fn macro_args(s: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    args.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(cur);
    }
    args
}

/// The text one input line prints: font macros joined as roff joins them,
/// other requests (`.TP`, `.PP`, comments) empty.
fn plain(line: &str) -> String {
    let Some(rest) = line.strip_prefix('.') else {
        return unescape(line);
    };
    let (name, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let args = macro_args(args);
    let text = match name {
        "B" | "I" => args.join(" "),
        "BR" | "RB" | "BI" | "IB" | "IR" | "RI" => args.concat(),
        _ => String::new(),
    };
    unescape(&text)
}

/// Collapses runs of whitespace.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The lines of the section whose `.SH` heading is exactly `heading`.
fn section<'a>(page: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = page.lines().skip_while(|l| {
        l.strip_prefix(".SH ")
            .map_or(true, |h| h.trim().trim_matches('"') != heading)
    });
    assert!(
        lines.next().is_some(),
        "no `.SH {heading}` section in the page"
    );
    lines.take_while(|l| !l.starts_with(".SH ")).collect()
}

/// `.TP` entries of a section: (tag text, body text), both squashed.
fn entries(lines: &[&str]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == ".TP" {
            let tag = lines
                .get(i + 1)
                .map(|l| squash(&plain(l)))
                .unwrap_or_default();
            let mut body = Vec::new();
            let mut j = i + 2;
            while j < lines.len() && !matches!(lines[j].trim(), ".TP" | ".PP") {
                body.push(plain(lines[j]));
                j += 1;
            }
            out.push((tag, squash(&body.join(" "))));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Every `--long` option written in `text`.
fn long_flags_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("--") {
        let tail = &rest[at + 2..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let preceded_ok = rest[..at]
            .chars()
            .last()
            .map_or(true, |c| !c.is_ascii_alphanumeric() && c != '-');
        if preceded_ok && !name.is_empty() {
            out.insert(name.clone());
        }
        rest = &tail[name.len()..];
    }
    out
}

// ------------------------------------------------------------ autopeer(8)

/// Every leaf subcommand as its words (`show peers`), with the possible
/// values of its positional arguments (`all`).
fn subcommands(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, Vec<String>)>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let path = if prefix.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{prefix} {}", sub.get_name())
        };
        if sub.has_subcommands() {
            subcommands(sub, &path, out);
        } else {
            let values = sub
                .get_positionals()
                .flat_map(|a| a.get_possible_values())
                .map(|v| v.get_name().to_string())
                .collect();
            out.push((path, values));
        }
    }
}

/// Every long flag of the command line, with auto-generated help/version.
fn cli_long_flags() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeSet<String>) {
        for a in cmd.get_arguments() {
            if let Some(l) = a.get_long() {
                out.insert(l.to_string());
            }
        }
        for s in cmd.get_subcommands() {
            walk(s, out);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = BTreeSet::new();
    walk(&cmd, &mut out);
    out
}

#[test]
fn every_subcommand_is_documented_and_nothing_else() {
    let page = read("man/autopeer.8");
    let mut subs = Vec::new();
    subcommands(&Cli::command(), "", &mut subs);
    assert!(subs.len() >= 10, "too few subcommands found: {subs:?}");

    let commands = entries(&section(&page, "COMMANDS"));
    let tags: Vec<&String> = commands.iter().map(|(t, _)| t).collect();
    for (path, values) in &subs {
        let tag = tags
            .iter()
            .find(|t| t.as_str() == path || t.starts_with(&format!("{path} ")))
            .unwrap_or_else(|| {
                panic!("`{path}` has no .TP entry under COMMANDS in man/autopeer.8; tags: {tags:?}")
            });
        for v in values {
            assert!(
                tag.split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| w == v),
                "the COMMANDS entry `{tag}` does not show the value `{v}` of `{path}`"
            );
        }
    }
    // The other way round: each COMMANDS tag names a real subcommand.
    for tag in &tags {
        assert!(
            subs.iter()
                .any(|(p, _)| tag.as_str() == p || tag.starts_with(&format!("{p} "))),
            "COMMANDS documents `{tag}`, which Cli does not have"
        );
    }

    // SYNOPSIS names each top-level subcommand on a `.B` line.
    let synopsis = section(&page, "SYNOPSIS");
    for sub in Cli::command().get_subcommands() {
        let line = format!(".B {}", sub.get_name());
        assert!(
            synopsis.iter().any(|l| l.trim() == line),
            "SYNOPSIS lacks `{line}`"
        );
    }
}

#[test]
fn every_flag_is_documented_and_nothing_else() {
    let page = read("man/autopeer.8");
    let cli = cli_long_flags();
    for must in [
        "config", "socket", "verbose", "group", "json", "help", "version",
    ] {
        assert!(cli.contains(must), "Cli lost --{must}? {cli:?}");
    }
    let mut doc_text = String::new();
    for sec in ["SYNOPSIS", "OPTIONS", "COMMANDS"] {
        for l in section(&page, sec) {
            doc_text.push_str(&plain(l));
            doc_text.push('\n');
        }
    }
    let documented = long_flags_in(&doc_text);
    let missing: Vec<_> = cli.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "flags missing from man/autopeer.8: {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&cli).collect();
    assert!(
        stale.is_empty(),
        "man/autopeer.8 documents flags Cli lacks: {stale:?}"
    );

    // Short forms of the global options, as OPTIONS tags.
    let options = entries(&section(&page, "OPTIONS"));
    for a in Cli::command().get_arguments() {
        if let (Some(s), Some(l)) = (a.get_short(), a.get_long()) {
            assert!(
                options
                    .iter()
                    .any(|(t, _)| t.starts_with(&format!("-{s}")) && t.contains(&format!("--{l}"))),
                "OPTIONS has no entry `-{s} ..., --{l} ...`"
            );
        }
    }
    // Defaults of the command line.
    assert!(
        page.contains(DEFAULT_CONFIG),
        "autopeer.8 lacks {DEFAULT_CONFIG}"
    );
    assert!(
        page.contains(DEFAULT_SOCKET),
        "autopeer.8 lacks {DEFAULT_SOCKET}"
    );
}

#[test]
fn long_flag_scanner_finds_only_flags() {
    let found = long_flags_in("add ADDR [--group NAME], --json; a--b, ---x, --");
    assert_eq!(
        found,
        ["group", "json", "-x"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
}

// ------------------------------------------------------------ config keys

/// How a field gets its value when the key is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Default_ {
    /// No `default`: the key is required.
    Required,
    /// `#[serde(default)]`: the type's default.
    Plain,
    /// `#[serde(default = "f")]`.
    Fn(String),
}

#[derive(Debug, Clone)]
struct Field {
    key: String,
    ty: String,
    default: Default_,
}

/// The value of `name = "..."` inside a `#[serde(...)]` attribute.
fn attr_value(attr: &str, name: &str) -> Option<String> {
    let at = attr.find(&format!("{name} = \""))?;
    let rest = &attr[at + name.len() + 4..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The `pub` fields of `pub struct NAME { ... }` in `src`, keys after
/// `rename`, with their defaults.
fn struct_fields(src: &str, name: &str) -> Vec<Field> {
    let start = src
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("no `pub struct {name}` in src/config.rs"));
    let body = &src[start..];
    let body = &body[..body.find("\n}").expect("struct end")];
    let mut out = Vec::new();
    let mut attrs: Vec<&str> = Vec::new();
    for line in body.lines().skip(1) {
        let t = line.trim();
        if t.starts_with("#[") {
            attrs.push(t);
            continue;
        }
        if let Some(decl) = t.strip_prefix("pub ") {
            let (field, ty) = decl.split_once(':').expect("field: Type");
            let serde: Vec<&&str> = attrs.iter().filter(|a| a.starts_with("#[serde(")).collect();
            let key = serde
                .iter()
                .find_map(|a| attr_value(a, "rename"))
                .unwrap_or_else(|| field.trim().to_string());
            let default = if let Some(f) = serde.iter().find_map(|a| attr_value(a, "default")) {
                Default_::Fn(f)
            } else if serde
                .iter()
                .any(|a| a.contains("(default)") || a.contains("(default,"))
            {
                Default_::Plain
            } else {
                Default_::Required
            };
            out.push(Field {
                key,
                ty: ty.trim().trim_end_matches(',').to_string(),
                default,
            });
        }
        attrs.clear();
    }
    out
}

/// The tables of the config: heading as written in TOML (`[bird]`,
/// `[[group]]`) -> fields, read from `RawConfig` and the structs it names.
fn config_tables() -> BTreeMap<String, Vec<Field>> {
    let src = read("src/config.rs");
    let mut tables = BTreeMap::new();
    for top in struct_fields(&src, "RawConfig") {
        let (heading, ty) = match top.ty.strip_prefix("Vec<") {
            Some(inner) => (format!("[[{}]]", top.key), inner.trim_end_matches('>')),
            None => (format!("[{}]", top.key), top.ty.as_str()),
        };
        let mut fields = struct_fields(&src, ty);
        // A `Vec<Raw...>` inside a table is a nested array of tables
        // (`[[group.ao_key]]`), with its own heading and keys.
        for f in &fields {
            if let Some(inner) = f.ty.strip_prefix("Vec<Raw") {
                let inner = format!("Raw{}", inner.trim_end_matches('>'));
                let name = heading.trim_matches(|c| c == '[' || c == ']');
                tables.insert(format!("[[{name}.{}]]", f.key), struct_fields(&src, &inner));
            }
        }
        if heading.starts_with("[[") {
            fields.retain(|f| !f.ty.starts_with("Vec<Raw"));
        }
        tables.insert(heading, fields);
    }
    tables
}

/// The string literals in the body of `fn NAME() -> T { ... }`, and whether
/// T is a Vec.
fn default_fn_literals(src: &str, name: &str) -> (Vec<String>, bool) {
    let start = src
        .find(&format!("fn {name}()"))
        .unwrap_or_else(|| panic!("no fn {name} in src/config.rs"));
    let text = &src[start..];
    let text = &text[..text.find("\n}").expect("fn end")];
    let is_vec = text.lines().next().is_some_and(|l| l.contains("-> Vec<"));
    let lits = text
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    (lits, is_vec)
}

#[test]
fn the_struct_scan_sees_the_real_schema() {
    // Guards the scanner itself: if it silently found nothing, the drift
    // tests below would pass vacuously.
    let t = config_tables();
    let keys = |h: &str| -> BTreeSet<String> { t[h].iter().map(|f| f.key.clone()).collect() };
    assert_eq!(
        t.keys().cloned().collect::<Vec<_>>(),
        [
            "[[group.ao_key]]",
            "[[group]]",
            "[agent]",
            "[bird]",
            "[sources]"
        ]
    );
    assert!(keys("[[group.ao_key]]").contains("secret_file"));
    assert!(!keys("[[group]]").contains("ao_key"));
    assert!(keys("[bird]").contains("keyring"));
    assert!(keys("[agent]").contains("audit_log"));
    assert!(keys("[sources]").contains("nhrp_policy"));
    assert!(keys("[[group]]").contains("nbma_prefixes"));
    let name = t["[[group]]"].iter().find(|f| f.key == "name").unwrap();
    assert_eq!(name.default, Default_::Required);
    let socket = t["[bird]"].iter().find(|f| f.key == "socket").unwrap();
    assert_eq!(socket.default, Default_::Fn("default_bird_socket".into()));
    let dry = t["[agent]"].iter().find(|f| f.key == "dry_run").unwrap();
    assert_eq!(dry.default, Default_::Plain);
}

#[test]
fn every_config_key_is_documented_with_its_default() {
    let page = read("man/autopeer.conf.5");
    let src = read("src/config.rs");
    for (heading, fields) in config_tables() {
        let documented = entries(&section(&page, &heading));
        let tag_keys: Vec<String> = documented
            .iter()
            .map(|(t, _)| t.split_whitespace().next().unwrap_or("").to_string())
            .collect();
        for f in &fields {
            let Some((_, body)) = documented
                .iter()
                .find(|(t, _)| t.split_whitespace().next() == Some(f.key.as_str()))
            else {
                panic!(
                    "key `{}` of {heading} has no .TP entry under `.SH {heading}` in man/autopeer.conf.5 (found {tag_keys:?})",
                    f.key
                );
            };
            let want = match &f.default {
                Default_::Required => "Required".to_string(),
                Default_::Fn(func) => {
                    let (lits, is_vec) = default_fn_literals(&src, func);
                    let quoted: Vec<String> = lits.iter().map(|l| format!("\"{l}\"")).collect();
                    if is_vec {
                        format!("Default: [{}]", quoted.join(", "))
                    } else {
                        format!("Default: {}", quoted.join(""))
                    }
                }
                Default_::Plain => match (f.key.as_str(), f.ty.as_str()) {
                    ("max_peers", _) => format!("Default: {DEFAULT_MAX_PEERS}"),
                    ("rate", _) => format!("Default: {DEFAULT_RATE}"),
                    (_, "bool") => "Default: false".into(),
                    (_, t) if t.starts_with("Vec<") => "Default: []".into(),
                    (_, t) if t.starts_with("Option<") => "Default: none".into(),
                    (k, t) => panic!("no rule for the default of {k}: {t}"),
                },
            };
            assert!(
                body.contains(&want),
                "{heading} {}: the entry should say `{want}`; it says:\n{body}",
                f.key
            );
        }
        // The other way round: no documented key that the code lacks.
        for k in &tag_keys {
            assert!(
                fields.iter().any(|f| &f.key == k),
                "man/autopeer.conf.5 documents `{k}` under {heading}, which src/config.rs lacks"
            );
        }
    }
}

/// Tables and keys of a TOML example, counting commented-out `# key = `.
fn example_keys(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut table = String::new();
    for line in text.lines() {
        let t = line.trim();
        // A commented-out optional table (`# [[group.ao_key]]`) counts too.
        let heading = t.strip_prefix('#').map(str::trim_start).unwrap_or(t);
        if heading.starts_with("[[") || t.starts_with('[') {
            table = heading.to_string();
            out.entry(table.clone()).or_default();
            continue;
        }
        let t = t.strip_prefix('#').map(str::trim_start).unwrap_or(t);
        if let Some((k, _)) = t.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                out.entry(table.clone()).or_default().insert(k.to_string());
            }
        }
    }
    out
}

#[test]
fn the_example_toml_names_exactly_the_config_keys() {
    let example = example_keys(&read("bird/autopeer.toml"));
    for (heading, fields) in config_tables() {
        let keys: BTreeSet<String> = fields.iter().map(|f| f.key.clone()).collect();
        let shown = example
            .get(&heading)
            .unwrap_or_else(|| panic!("bird/autopeer.toml has no {heading}"));
        assert_eq!(
            shown, &keys,
            "bird/autopeer.toml {heading} (keys incl. `# key =`) vs src/config.rs"
        );
    }
}

#[test]
fn the_examples_in_the_conf_page_are_valid() {
    let page = read("man/autopeer.conf.5");
    let lines = section(&page, "EXAMPLE");
    let mut blocks = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for l in lines {
        match l.trim() {
            ".EX" => cur = Some(Vec::new()),
            ".EE" => blocks.extend(cur.take().map(|b| b.join("\n"))),
            _ => {
                if let Some(b) = cur.as_mut() {
                    b.push(unescape(l));
                }
            }
        }
    }
    assert!(blocks.len() >= 2, "expected the full and the hub example");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for b in &blocks {
        match Config::load_str(b, &dir) {
            Ok(c) => assert!(!c.groups.is_empty()),
            // The password and key files of the examples do not exist here.
            Err(ConfigError::Invalid { problems, .. }) => {
                for p in &problems {
                    assert!(
                        p.key_path.ends_with(".password_file")
                            || p.key_path.ends_with(".secret_file"),
                        "example in autopeer.conf.5 is invalid: {p}\n{b}"
                    );
                }
            }
            Err(e) => panic!("example in autopeer.conf.5 does not parse: {e}\n{b}"),
        }
    }
}

// ------------------------------------------------------------ rendering

/// groff renders the pages (.ci/run installs it): else skip, or fail
/// with CI=true.
fn have_groff() -> bool {
    common::prereq::runnable(
        "groff check",
        common::prereq::runs("groff", &["--version"], "apt install groff-base"),
    )
}

#[test]
fn groff_renders_both_pages_without_warnings() {
    if !have_groff() {
        return;
    }
    for page in ["man/autopeer.8", "man/autopeer.conf.5"] {
        let out = std::process::Command::new("groff")
            .args(["-ww", "-man", "-Tutf8"])
            .arg(root().join(page))
            .output()
            .expect("run groff");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "groff failed on {page}: {stderr}");
        assert!(
            stderr.trim().is_empty(),
            "groff -ww warns on {page}:\n{stderr}"
        );
        assert!(
            out.stdout.len() > 2000,
            "groff printed almost nothing for {page}"
        );
    }
}

#[test]
fn groff_check_catches_a_broken_page() {
    // Proves the test above can fail: a bad request draws a warning.
    if !have_groff() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.8");
    std::fs::write(&bad, ".TH BAD 8\n.SH NAME\nbad \\- x\n.XYZZY\n\\fQoops\n").unwrap();
    let out = std::process::Command::new("groff")
        .args(["-ww", "-man", "-Tutf8"])
        .arg(&bad)
        .output()
        .expect("run groff");
    assert!(
        !String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "groff -ww did not warn about an undefined macro"
    );
}
