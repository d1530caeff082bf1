//! The key plan, pure: which prefix keys BIRD's listeners should carry,
//! for which group, given the config's groups, the bird.conf facts (static
//! neighbors and their passwords, templates, native `neighbor range`s) and
//! the roster's peers (docs/facts.md, fact 13). No I/O; unit- and property-tested here,
//! applied by [`super::Keyring::sync`].

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::Family;
use crate::bird::conf::BirdConf;
use crate::config::{Config, Group};
use crate::secret::Secret;

/// What the roster publishes for the keyring.
#[derive(Debug, Clone)]
pub struct KeyInputs {
    pub config: Arc<Config>,
    pub birdconf: Arc<BirdConf>,
    /// The peers in the owned include of the groups keyed with TCP-MD5
    /// ([`is_md5_group`]): (address, group). The others play no part in
    /// the plan, so a roster of unkeyed groups sends none. Shared: the
    /// keyring's copy of the inputs is the roster's.
    pub peers: Arc<[(IpAddr, String)]>,
    /// Successful `configure`s so far.
    pub configured: u64,
}

/// `exempt` (docs/facts.md, fact 13): the maximal prefixes inside the difference, sorted.
/// Exempt prefixes of the other family or outside every group prefix are
/// ignored; overlapping or adjacent group prefixes are merged first.
pub fn key_prefixes(group_prefixes: &[IpNet], exempt: &[IpNet]) -> Vec<IpNet> {
    let groups: Vec<IpNet> = group_prefixes.iter().map(IpNet::trunc).collect();
    let exempt: Vec<IpNet> = exempt.iter().map(IpNet::trunc).collect();
    let mut out = Vec::new();
    for net in IpNet::aggregate(&groups) {
        subtract(net, &exempt, &mut out);
    }
    out.sort();
    out
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn subtract(net: IpNet, exempt: &[IpNet], out: &mut Vec<IpNet>) {
    let relevant: Vec<IpNet> = exempt
        .iter()
        .filter(|e| Family::of_net(e) == Family::of_net(&net) && overlaps(&net, e))
        .copied()
        .collect();
    if relevant.is_empty() {
        out.push(net);
        return;
    }
    if relevant.iter().any(|e| e.prefix_len() <= net.prefix_len()) {
        // An exempt prefix covers all of `net`.
        return;
    }
    // Every relevant exemption lies strictly inside `net`: split it.
    if let Ok(halves) = net.subnets(net.prefix_len() + 1) {
        for half in halves {
            subtract(half, &relevant, out);
        }
    }
}

/// Why BIRD's config language cannot carry `password` (a `"`, CR, LF or
/// NUL, or more than 80 bytes), or `None` when it can. Never echoes it.
/// The rule is [`crate::bird::lang::key_problem`], shared with the config
/// and rendering.
pub fn bird_can_express(password: &str) -> Option<&'static str> {
    crate::bird::lang::key_problem(password).map(crate::bird::lang::KeyProblem::describe)
}

/// One prefix key to keep on the listener of its family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredKey {
    pub prefix: IpNet,
    pub key: Secret<String>,
    pub group: String,
}

/// What [`Keyring::sync`](super::Keyring::sync) should make true.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPlan {
    pub keys: Vec<DesiredKey>,
    /// Addresses where BIRD installs its own exact key (static neighbors
    /// with a password). A host-length key of ours at such an address is
    /// the same kernel entry as BIRD's, so it is never deleted by us.
    pub bird_exact: BTreeSet<IpAddr>,
    /// bird.conf's native `neighbor range`s: BIRD keys each range with a
    /// password itself (one prefix key of exactly that range), so a
    /// prefix key found there is BIRD's and never removed by us.
    pub bird_ranges: BTreeSet<IpNet>,
    /// Groups with no password (their own or their template's) and no
    /// TCP-AO keys: not keyed.
    pub unkeyed: Vec<String>,
    /// TCP-AO prefix MKTs of the groups with `[[group.ao_key]]`s.
    pub ao: Vec<super::ao::DesiredAoKey>,
}

impl KeyPlan {
    /// The groups that get keys, sorted, each once.
    pub fn keyed_groups(&self) -> Vec<String> {
        let groups: BTreeSet<&str> = self
            .keys
            .iter()
            .map(|k| k.group.as_str())
            .chain(self.ao.iter().map(|k| k.group.as_str()))
            .collect();
        groups.into_iter().map(str::to_owned).collect()
    }

    pub fn keys_of(&self, family: Family) -> impl Iterator<Item = &DesiredKey> {
        self.keys
            .iter()
            .filter(move |k| Family::of_net(&k.prefix) == family)
    }

    /// The TCP-AO MKTs of `family`.
    pub fn ao_of(&self, family: Family) -> impl Iterator<Item = &super::ao::DesiredAoKey> {
        self.ao
            .iter()
            .filter(move |k| Family::of_net(&k.prefix) == family)
    }

    /// MD5 keys and AO MKTs of `family`: what each listener of that
    /// family should carry.
    pub fn wanted_of(&self, family: Family) -> usize {
        self.keys_of(family).count() + self.ao_of(family).count()
    }
}

/// bird.conf's native `neighbor range`s (see [`KeyPlan::bird_ranges`]).
pub fn bird_ranges(conf: &BirdConf) -> BTreeSet<IpNet> {
    conf.ranges.iter().map(|r| r.range.trunc()).collect()
}

/// Why a group cannot be keyed; `check` prints these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringProblem {
    #[error(
        "group {group}: prefix {prefix} is a default route; a key for it would \
             demand MD5 from every address: list real prefixes"
    )]
    DefaultPrefix { group: String, prefix: IpNet },
    #[error("group {group}: password (from {source_name}) cannot be used: {reason}")]
    Password {
        group: String,
        source_name: String,
        reason: &'static str,
    },
    #[error("{0}")]
    Ao(#[from] super::ao::AoProblem),
}

/// A group's MD5 password and where it comes from: its own, else its
/// template's `password` in bird.conf.
fn key_of(g: &Group, conf: &BirdConf) -> Option<(Secret<String>, String)> {
    if let Some(p) = &g.password {
        return Some((p.clone(), "the group".to_owned()));
    }
    conf.templates
        .get(&g.template)
        .and_then(|t| t.password.clone())
        .map(|p| (p, format!("template {}", g.template)))
}

/// The group is keyed with TCP-MD5 (a password, and no TCP-AO keys): its
/// peers are the only ones [`plan_for`] needs from the roster.
pub fn is_md5_group(g: &Group, conf: &BirdConf) -> bool {
    !g.is_ao() && key_of(g, conf).is_some()
}

/// The prefix keys for `groups` (docs/facts.md, fact 13): each group with a password (its
/// own, else its template's `password` in bird.conf) gets its prefixes
/// minus the addresses that must stay reachable without its key:
/// static neighbors inside that lack this exact password, `deny` entries,
/// BIRD's native `neighbor range`s, and more specific prefixes of groups
/// without a password. More specific prefixes of other keyed groups need no
/// hole: the kernel picks the longest matching key.
pub fn desired_keys(groups: &[Group], conf: &BirdConf) -> Result<KeyPlan, Vec<KeyringProblem>> {
    let mut plan = KeyPlan::default();
    let mut problems = Vec::new();
    let key_of = |g: &Group| key_of(g, conf);
    let md5_groups: BTreeSet<String> = groups
        .iter()
        .filter(|g| is_md5_group(g, conf))
        .map(|g| g.name.clone())
        .collect();
    let (ao, ao_problems) = super::ao::desired_ao_keys(groups, conf, &md5_groups);
    plan.ao = ao;
    problems.extend(ao_problems.into_iter().map(KeyringProblem::Ao));
    let unkeyed_prefixes: Vec<IpNet> = groups
        .iter()
        .filter(|g| key_of(g).is_none() || g.is_ao())
        .flat_map(|g| g.prefixes.iter().copied())
        .collect();
    for n in &conf.neighbors {
        if n.password {
            plan.bird_exact.insert(n.addr);
        }
    }
    plan.bird_ranges = bird_ranges(conf);
    for g in groups.iter().filter(|g| !g.is_ao()) {
        let Some((key, source_name)) = key_of(g) else {
            plan.unkeyed.push(g.name.clone());
            continue;
        };
        let mut bad = false;
        for p in &g.prefixes {
            if p.prefix_len() == 0 {
                problems.push(KeyringProblem::DefaultPrefix {
                    group: g.name.clone(),
                    prefix: *p,
                });
                bad = true;
            }
        }
        if let Some(reason) = bird_can_express(key.expose()) {
            problems.push(KeyringProblem::Password {
                group: g.name.clone(),
                source_name,
                reason,
            });
            bad = true;
        }
        if bad {
            continue;
        }
        let mut exempt: Vec<IpNet> = g.deny.clone();
        for n in &conf.neighbors {
            let same_key = n.key.as_ref().map(|k| k.expose()) == Some(key.expose());
            if g.contains(n.addr) && !same_key {
                exempt.push(IpNet::from(n.addr));
            }
        }
        exempt.extend(conf.ranges.iter().map(|r| r.range));
        for u in &unkeyed_prefixes {
            if g.prefixes
                .iter()
                .any(|p| u.prefix_len() > p.prefix_len() && p.contains(u))
            {
                exempt.push(*u);
            }
        }
        for prefix in key_prefixes(&g.prefixes, &exempt) {
            plan.keys.push(DesiredKey {
                prefix,
                key: key.clone(),
                group: g.name.clone(),
            });
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

/// Prefix keys on a listener that nobody wants: not host-length (BIRD's
/// exact keys, and a host-length key of ours is the same entry), not in
/// `wanted`, and not one of BIRD's own range keys. These are what a killed
/// autopeer left behind, or what a changed plan no longer covers.
pub fn stale_keys(
    present: &[IpNet],
    wanted: &BTreeSet<IpNet>,
    bird_ranges: &BTreeSet<IpNet>,
) -> Vec<IpNet> {
    present
        .iter()
        .filter(|p| !is_host(p) && !wanted.contains(p) && !bird_ranges.contains(p))
        .copied()
        .collect()
}

pub(super) fn is_host(p: &IpNet) -> bool {
    p.prefix_len() == p.max_prefix_len()
}

/// Whether a listener of `listener` family (`dual`: IPv6 without
/// V6ONLY) can carry keys for prefixes of family `prefix`.
pub(super) fn serves(listener: Family, dual: bool, prefix: Family) -> bool {
    listener == prefix || (dual && prefix == Family::V4)
}

/// The plan for `inputs`, with roster peers of keyed groups added to
/// `bird_exact` (BIRD installs an exact key for each of them: a host-length
/// key of ours there is the same kernel entry, never deleted by us).
pub fn plan_for(inputs: &KeyInputs) -> Result<KeyPlan, String> {
    let mut plan = desired_keys(&inputs.config.groups, &inputs.birdconf).map_err(|ps| {
        ps.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    // Only MD5 groups: BIRD keys no AO peer of ours (they have no
    // `authentication` in their protocol).
    let keyed: std::collections::BTreeSet<&str> =
        plan.keys.iter().map(|k| k.group.as_str()).collect();
    let exact: Vec<IpAddr> = inputs
        .peers
        .iter()
        .filter(|(_, g)| keyed.contains(g.as_str()))
        .map(|(a, _)| *a)
        .collect();
    plan.bird_exact.extend(exact);
    Ok(plan)
}

#[cfg(test)]
pub(super) mod tests;
