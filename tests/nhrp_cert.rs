//! NHRP certificate binding (`[[group]] ca`, `require_cert`), pure: the
//! CA file's checks, the verification of a spoke's certificate against it
//! for its GRE address, the config keys and their errors, and admission's
//! decision, all with certificates this test makes (rcgen).
//!
//! The end-to-end test through the daemon is in tests/lab_nhrp.rs
//! (`certificate_binding_end_to_end`).

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use autopeer::admission::{self, Context, Decision, Evidence, Memory, Refusal, Request};
use autopeer::bird::conf::BirdConf;
use autopeer::config::{Config, ConfigError, Group};
use autopeer::sources::nhrp::cert::{self, CaError, CaStore, CertProblem};
use autopeer::sources::nhrp::{parse_binding, parse_message, NhrpError};
use autopeer::sources::{Trust, Via};
use common::certs::{self, Ca};
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// 2026-11-28, a fixed "now" inside every test certificate's validity.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_824_000)
}

fn store(pem: &str) -> CaStore {
    cert::load_ca(pem.as_bytes(), now()).unwrap()
}

fn problem(ca: &CaStore, der: &[u8], addr: &str) -> CertProblem {
    match cert::verify(ca, der, ip(addr), now()) {
        Ok(who) => panic!("accepted: {who}"),
        Err(e) => e.problem,
    }
}

#[test]
fn a_certificate_naming_the_gre_address_is_accepted() {
    let ca = Ca::root("Hub CA");
    let s = store(&ca.pem);
    let der = ca.spoke("spoke2", &["10.88.0.2"]);
    assert_eq!(
        cert::verify(&s, &der, ip("10.88.0.2"), now()).unwrap(),
        "CN=spoke2 (serial 0a:55)"
    );
    // IPv6 GRE addresses and several names work alike.
    let v6 = ca.spoke("spoke6", &["10.88.0.7", "2001:db8:88::6"]);
    assert!(cert::verify(&s, &v6, ip("2001:db8:88::6"), now()).is_ok());
    assert!(cert::verify(&s, &v6, ip("10.88.0.7"), now()).is_ok());
    // A DER CA file (not PEM) is read too.
    let d = cert::load_ca(&ca.der, now()).unwrap();
    assert!(cert::verify(&d, &der, ip("10.88.0.2"), now()).is_ok());
}

#[test]
fn a_certificate_for_another_address_is_refused_naming_what_it_names() {
    let ca = Ca::root("Hub CA");
    let s = store(&ca.pem);
    let der = ca.spoke("spoke2", &["10.88.0.9"]);
    let e = cert::verify(&s, &der, ip("10.88.0.2"), now()).unwrap_err();
    assert_eq!(
        e.problem,
        CertProblem::NotForAddress {
            addr: ip("10.88.0.2"),
            names: vec![ip("10.88.0.9")]
        }
    );
    assert_eq!(
        e.to_string(),
        "certificate CN=spoke2 (serial 0a:55) does not name 10.88.0.2 (subjectAltName IP addresses: 10.88.0.9)"
    );
    // The address in the CN or as a DNS name is no binding: only an
    // iPAddress subjectAltName is.
    let mut p = certs::spoke_params("10.88.0.2", &[]);
    p.subject_alt_names = vec![rcgen::SanType::DnsName("10.88.0.2".try_into().unwrap())];
    let cn_only = ca.sign(&p);
    assert_eq!(
        problem(&s, &cn_only, "10.88.0.2"),
        CertProblem::NotForAddress {
            addr: ip("10.88.0.2"),
            names: vec![]
        }
    );
    // An IPv4-mapped IPv6 name is not the IPv4 address.
    let mapped = ca.spoke("spoke2", &["::ffff:10.88.0.2"]);
    assert!(matches!(
        problem(&s, &mapped, "10.88.0.2"),
        CertProblem::NotForAddress { .. }
    ));
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let hub = Ca::root("Hub CA");
    let other = Ca::root("Other CA");
    let s = store(&hub.pem);
    let der = other.spoke("spoke2", &["10.88.0.2"]);
    assert_eq!(problem(&s, &der, "10.88.0.2"), CertProblem::UnknownIssuer);
    // Same CA name, another key: the name matches, the signature does not.
    let twin = Ca::root("Hub CA");
    let forged = twin.spoke("spoke2", &["10.88.0.2"]);
    let p = problem(&s, &forged, "10.88.0.2");
    assert!(
        matches!(p, CertProblem::BadSignature | CertProblem::UnknownIssuer),
        "{p:?}"
    );
    let e = cert::verify(&s, &der, ip("10.88.0.2"), now()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate CN=spoke2 (serial 0a:55) is not issued by the group's ca"
    );
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused_with_the_date() {
    let ca = Ca::root("Hub CA");
    let s = store(&ca.pem);
    let old = ca.sign(&certs::expired("spoke2", &["10.88.0.2"]));
    assert_eq!(
        problem(&s, &old, "10.88.0.2"),
        CertProblem::Expired {
            not_after: "2001-01-01T00:00:00Z".into()
        }
    );
    let early = ca.sign(&certs::not_yet_valid("spoke2", &["10.88.0.2"]));
    assert_eq!(
        problem(&s, &early, "10.88.0.2"),
        CertProblem::NotYetValid {
            not_before: "3000-01-01T00:00:00Z".into()
        }
    );
}

#[test]
fn a_ca_that_expired_after_loading_refuses_its_spokes() {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "Short CA");
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2030, 1, 1);
    let ca = Ca::root_with(p);
    let s = store(&ca.pem);
    let der = ca.spoke("spoke2", &["10.88.0.2"]);
    assert!(cert::verify(&s, &der, ip("10.88.0.2"), now()).is_ok());
    let later = UNIX_EPOCH + Duration::from_secs(1_900_000_000); // 2030-03
    let e = cert::verify(&s, &der, ip("10.88.0.2"), later).unwrap_err();
    assert_eq!(
        e.problem,
        CertProblem::CaExpired {
            subject: "CN=Short CA".into()
        }
    );
    // And such a CA file is refused at start once it has expired.
    assert!(matches!(
        cert::load_ca(ca.pem.as_bytes(), later),
        Err(CaError::Expired { index: 1, .. })
    ));
}

#[test]
fn garbage_is_refused_without_echoing_it() {
    let s = store(&Ca::root("Hub CA").pem);
    for junk in [
        &b"\x30\x82\x01\x0a\x02\x82\x01\x01\x00\xc0\xff\xee"[..],
        b"not a certificate at all",
        b"\x00",
    ] {
        let e = cert::verify(&s, junk, ip("10.88.0.2"), now()).unwrap_err();
        assert!(matches!(e.problem, CertProblem::Malformed(_)), "{e:?}");
        assert_eq!(e.subject, None);
        assert!(!e.to_string().contains("c0ffee"), "{e}");
    }
    // A real certificate with bytes after it is not one certificate.
    let ca = Ca::root("Hub CA");
    let mut der = ca.spoke("spoke2", &["10.88.0.2"]);
    der.extend_from_slice(b"\x00\x00");
    assert!(matches!(
        problem(&store(&ca.pem), &der, "10.88.0.2"),
        CertProblem::Malformed(_)
    ));
    // Hex that is not hex never reaches verification: the request itself
    // is refused by the parser, naming the key.
    let msg = parse_message(
        b"eventid=3\nevent=authorize-binding\nremote_addr=10.88.0.2\nremote_nbma=192.0.2.2\nremote_cert=3082zz\n",
    )
    .unwrap();
    assert_eq!(
        parse_binding(&msg).unwrap_err(),
        NhrpError::BadCert {
            key: "remote_cert",
            reason: "not hex at offset 4".into()
        }
    );
}

#[test]
fn a_spoke_certificate_signed_by_an_intermediate_needs_it_in_the_ca_file() {
    let root = Ca::root("Root CA");
    let sub = root.intermediate("Hub Sub CA");
    let der = sub.spoke("spoke2", &["10.88.0.2"]);
    // nhrpd passes the spoke's certificate alone: with the root only, no
    // path.
    assert_eq!(
        problem(&store(&root.pem), &der, "10.88.0.2"),
        CertProblem::UnknownIssuer
    );
    // Root and intermediate in one file: the root is the anchor, the
    // intermediate a link (its own validity and constraints checked).
    let both = store(&format!("{}{}", root.pem, sub.pem));
    assert_eq!(
        both.anchor_subjects().collect::<Vec<_>>(),
        ["CN=Root CA, O=autopeer test"]
    );
    assert_eq!(both.intermediate_count(), 1);
    assert!(cert::verify(&both, &der, ip("10.88.0.2"), now()).is_ok());
    // The intermediate alone: trusted as the anchor.
    let alone = store(&sub.pem);
    assert!(cert::verify(&alone, &der, ip("10.88.0.2"), now()).is_ok());
    // The root's other certificates are not trusted through the sub-CA.
    assert_eq!(
        problem(&alone, &root.spoke("x", &["10.88.0.2"]), "10.88.0.2"),
        CertProblem::UnknownIssuer
    );
}

#[test]
fn extended_key_usage_must_allow_ike_when_present() {
    let ca = Ca::root("Hub CA");
    let s = store(&ca.pem);
    let ok = |eku: Vec<ExtendedKeyUsagePurpose>| {
        let der = ca.sign(&certs::with_eku("spoke2", &["10.88.0.2"], eku));
        cert::verify(&s, &der, ip("10.88.0.2"), now())
    };
    assert!(ok(vec![]).is_ok());
    assert!(ok(vec![ExtendedKeyUsagePurpose::ServerAuth]).is_ok());
    assert!(ok(vec![ExtendedKeyUsagePurpose::ClientAuth]).is_ok());
    assert!(ok(vec![ExtendedKeyUsagePurpose::Any]).is_ok());
    // id-kp-ipsecIKE (RFC 4945) and strongSwan's ikeIntermediate.
    assert!(ok(vec![ExtendedKeyUsagePurpose::Other(vec![
        1, 3, 6, 1, 5, 5, 7, 3, 17
    ])])
    .is_ok());
    assert!(ok(vec![ExtendedKeyUsagePurpose::Other(vec![
        1, 3, 6, 1, 5, 5, 8, 2, 2
    ])])
    .is_ok());
    let e = ok(vec![
        ExtendedKeyUsagePurpose::CodeSigning,
        ExtendedKeyUsagePurpose::EmailProtection,
    ])
    .unwrap_err();
    assert_eq!(
        e.problem,
        CertProblem::Usage {
            present: vec!["1.3.6.1.5.5.7.3.3".into(), "1.3.6.1.5.5.7.3.4".into()]
        }
    );
}

#[test]
fn a_ca_certificate_is_no_spokes_certificate() {
    let ca = Ca::root("Hub CA");
    let mut p = certs::spoke_params("rogue", &["10.88.0.2"]);
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let der = ca.sign(&p);
    assert_eq!(
        problem(&store(&ca.pem), &der, "10.88.0.2"),
        CertProblem::IsCa
    );
}

#[test]
fn the_ca_file_must_hold_ca_certificates() {
    let t = now();
    assert_eq!(cert::load_ca(b"", t).unwrap_err(), CaError::Empty);
    assert_eq!(
        cert::load_ca(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            t
        )
        .unwrap_err(),
        CaError::Empty
    );
    assert!(matches!(
        cert::load_ca(b"\x30\x03\x02\x01\x00", t),
        Err(CaError::NotX509 { index: 1, .. })
    ));
    // A spoke's certificate is no CA: basicConstraints.
    let ca = Ca::root("Hub CA");
    let leaf = ca.spoke("spoke2", &["10.88.0.2"]);
    let e = cert::load_ca(&leaf, t).unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate 1 (CN=spoke2): not a CA (no basicConstraints extension)"
    );
    // cA set but keyUsage without keyCertSign.
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let e = cert::load_ca(Ca::root_with(p).pem.as_bytes(), t).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("not a CA (keyUsage lacks keyCertSign)"),
        "{e}"
    );
    // cA false explicitly.
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::ExplicitNoCa;
    let e = cert::load_ca(Ca::root_with(p).pem.as_bytes(), t).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("not a CA (basicConstraints has cA false)"),
        "{e}"
    );
    // The second certificate of a bundle is named by its place.
    let good = Ca::root("Hub CA");
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::ExplicitNoCa;
    let bad = Ca::root_with(p);
    let e = cert::load_ca(format!("{}{}", good.pem, bad.pem).as_bytes(), t).unwrap_err();
    assert!(e.to_string().starts_with("certificate 2 "), "{e}");
}

// ------------------------------------------------------------------ config

fn config(dir: &Path, group_extra: &str) -> Result<Config, ConfigError> {
    Config::load_str(
        &format!(
            "[[group]]\nname = \"spokes\"\ntemplate = \"T\"\nprefixes = [\"10.88.0.0/24\"]\n{group_extra}\n"
        ),
        dir,
    )
}

fn problems(r: Result<Config, ConfigError>) -> Vec<(String, String)> {
    r.expect_err("config accepted").problems()
}

#[test]
fn config_keys_read_the_ca_and_name_the_key_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Hub CA");
    std::fs::write(dir.path().join("hub-ca.pem"), &ca.pem).unwrap();
    // Relative to the config's directory; require_cert defaults to false.
    let c = config(dir.path(), "ca = \"hub-ca.pem\"").unwrap();
    let policy = c.groups[0].cert.as_ref().unwrap();
    assert_eq!(policy.ca_path, dir.path().join("hub-ca.pem"));
    assert!(!policy.required);
    let c = config(dir.path(), "ca = \"hub-ca.pem\"\nrequire_cert = true").unwrap();
    assert!(c.groups[0].cert.as_ref().unwrap().required);
    assert!(config(dir.path(), "").unwrap().groups[0].cert.is_none());

    let p = problems(config(dir.path(), "require_cert = true"));
    assert_eq!(p[0].0, "group.spokes.require_cert", "{p:?}");
    assert!(p[0].1.contains("needs `ca`"), "{p:?}");

    let p = problems(config(dir.path(), "ca = \"missing.pem\""));
    assert_eq!(p[0].0, "group.spokes.ca", "{p:?}");
    assert!(p[0].1.starts_with(&format!(
        "cannot read {}",
        dir.path().join("missing.pem").display()
    )));

    std::fs::write(dir.path().join("junk.pem"), "hello\n").unwrap();
    let p = problems(config(dir.path(), "ca = \"junk.pem\""));
    assert_eq!(p[0].0, "group.spokes.ca", "{p:?}");
    assert!(p[0].1.contains("not an X.509 certificate"), "{p:?}");

    // A FIFO planted at the path is refused at once, not read (it would
    // block the start).
    let fifo = dir.path().join("fifo.pem");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let t0 = Instant::now();
    let p = problems(config(dir.path(), "ca = \"fifo.pem\""));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(p[0].0, "group.spokes.ca", "{p:?}");
    assert!(p[0].1.contains("FIFO") || p[0].1.contains("fifo"), "{p:?}");
}

// --------------------------------------------------------------- admission

/// A roster holding at most one peer.
struct OneRoster(Option<(IpAddr, &'static str)>);
impl admission::RosterLookup for OneRoster {
    fn find(&self, addr: IpAddr, _: Option<&str>) -> Option<String> {
        self.0
            .filter(|(a, _)| *a == addr)
            .map(|(_, n)| n.to_string())
    }
    fn group_size(&self, _: &str) -> usize {
        usize::from(self.0.is_some())
    }
}

fn groups(dir: &Path, ca: &Ca, required: bool) -> Vec<Group> {
    std::fs::write(dir.join("hub-ca.pem"), &ca.pem).unwrap();
    let c = config(
        dir,
        &format!("ca = \"hub-ca.pem\"\nrequire_cert = {required}\nneighbor = \"internal\""),
    )
    .unwrap();
    c.groups
}

fn decide(groups: &[Group], addr: &str, via: Via, trust: Trust, cert: Option<&[u8]>) -> Decision {
    decide_with(&OneRoster(None), groups, addr, via, trust, cert)
}

fn decide_with(
    roster: &OneRoster,
    groups: &[Group],
    addr: &str,
    via: Via,
    trust: Trust,
    cert: Option<&[u8]>,
) -> Decision {
    let bird = BirdConf::default();
    admission::decide(
        Request {
            addr: ip(addr),
            iface: None,
            evidence: Evidence::verified(via, trust),
            group: None,
            nbma: Some(ip("192.0.2.2")),
            cert,
        },
        Context {
            groups,
            birdconf: &bird,
            roster,
            now: Instant::now(),
            wall: now(),
        },
        &mut Memory::default(),
    )
}

fn refusal(d: Decision) -> Refusal {
    match d {
        Decision::Refuse(r) => r,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn admission_applies_the_groups_certificate_rule() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Hub CA");
    let required = groups(dir.path(), &ca, true);
    let good = ca.spoke("spoke2", &["10.88.0.2"]);
    let wrong = ca.spoke("spoke2", &["10.88.0.9"]);
    let nhrp = |g: &[Group], a: &str, c: Option<&[u8]>| decide(g, a, Via::Nhrp, Trust::Nhrp, c);

    assert!(matches!(
        nhrp(&required, "10.88.0.2", Some(&good)),
        Decision::Admit(_)
    ));
    let r = refusal(nhrp(&required, "10.88.0.2", Some(&wrong)));
    assert_eq!(r.kind(), "certificate");
    assert_eq!(
        r.to_string(),
        "certificate CN=spoke2 (serial 0a:55) does not name 10.88.0.2 (subjectAltName IP addresses: 10.88.0.9) (group spokes)"
    );
    // Told in the NHRP line alone, counted by kind.
    assert_eq!(r.reported(Via::Nhrp), (false, true));

    // No certificate when one is required.
    let r = refusal(nhrp(&required, "10.88.0.2", None));
    assert_eq!(r.kind(), "certificate");
    assert_eq!(
        r.to_string(),
        "group spokes requires a certificate, nhrpd sent none"
    );
    // BIRD's log cannot carry a certificate: such a group admits no knock
    // (it would bypass the binding), and says so in its own line.
    let r = refusal(decide(
        &required,
        "10.88.0.2",
        Via::BirdLog,
        Trust::Bird,
        None,
    ));
    assert_eq!(r.kind(), "certificate");
    assert!(r.to_string().contains("only an NHRP registration"), "{r}");
    assert_eq!(r.reported(Via::BirdLog), (true, true));
    // Once a peer, its BIRD knocks are "already", not refusals; its next
    // registration shows its certificate again.
    let known = OneRoster(Some((ip("10.88.0.2"), "spokes_10_88_0_2")));
    assert!(matches!(
        decide_with(
            &known,
            &required,
            "10.88.0.2",
            Via::BirdLog,
            Trust::Bird,
            None
        ),
        Decision::Already { .. }
    ));
    assert_eq!(
        refusal(decide_with(
            &known,
            &required,
            "10.88.0.2",
            Via::Nhrp,
            Trust::Nhrp,
            Some(&wrong)
        ))
        .kind(),
        "certificate"
    );
    // An operator's `add` is the operator's call.
    assert!(matches!(
        decide(&required, "10.88.0.2", Via::Operator, Trust::Operator, None),
        Decision::Admit(_)
    ));

    // Without require_cert: a certificate that comes is checked; none is
    // fine (spokes without IPsec, or an IKE daemon that passes none).
    let optional = groups(dir.path(), &ca, false);
    assert!(matches!(
        nhrp(&optional, "10.88.0.2", None),
        Decision::Admit(_)
    ));
    assert_eq!(
        refusal(nhrp(&optional, "10.88.0.2", Some(&wrong))).kind(),
        "certificate"
    );
    assert!(matches!(
        decide(&optional, "10.88.0.2", Via::BirdLog, Trust::Bird, None),
        Decision::Admit(_)
    ));
    // A group without `ca` ignores certificates, as before.
    let plain = config(dir.path(), "").unwrap().groups;
    assert!(matches!(
        nhrp(&plain, "10.88.0.2", Some(b"garbage")),
        Decision::Admit(_)
    ));
}

// ------------------------------------------------------------------- check

#[test]
fn check_names_the_ca_key_and_warns_when_others_can_write_the_ca() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Hub CA");
    let file = dir.path().join("hub-ca.pem");
    std::fs::write(&file, &ca.pem).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = config(dir.path(), "ca = \"hub-ca.pem\"\nrequire_cert = true").unwrap();
    let f = autopeer::check::check_certs(&c);
    let info = f
        .iter()
        .find(|x| x.severity == autopeer::check::Severity::Info)
        .unwrap();
    assert_eq!(info.key, "group.spokes.ca");
    assert!(
        info.message
            .contains("must chain to CN=Hub CA, O=autopeer test (0 intermediate(s))"),
        "{info}"
    );
    assert!(info
        .message
        .ends_with("registrations without one are refused"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let f = autopeer::check::check_certs(&c);
    let w = f
        .iter()
        .find(|x| x.severity == autopeer::check::Severity::Warning)
        .expect("a warning");
    assert_eq!(w.key, "group.spokes.ca");
    assert!(
        w.message
            .contains(&format!("{} is writable by anyone", file.display())),
        "{w}"
    );

    // `autopeer check` (the binary) on a config whose CA is no CA: exit 1,
    // the key named.
    let leaf = dir.path().join("leaf.der");
    std::fs::write(&leaf, ca.spoke("spoke2", &["10.88.0.2"])).unwrap();
    let cfg = dir.path().join("autopeer.toml");
    std::fs::write(
        &cfg,
        "[[group]]\nname = \"spokes\"\ntemplate = \"T\"\nprefixes = [\"10.88.0.0/24\"]\nca = \"leaf.der\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_autopeer"))
        .args(["-c", cfg.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("group.spokes.ca")
            && text.contains("certificate 1 (CN=spoke2): not a CA (no basicConstraints extension)"),
        "{text}"
    );
}

// ------------------------------------------------------------- properties

proptest::proptest! {
    /// Whatever bytes nhrpd passes, verification answers without panicking,
    /// and any one byte changed in a good certificate makes it refused
    /// (every byte is under the signature or checked against it).
    #[test]
    fn no_changed_byte_passes_and_nothing_panics(
        at in 0usize..4096,
        xor in 1u8..=255,
        junk in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
    ) {
        let (ca, good) = &*GOOD;
        let _ = cert::verify(ca, &junk, ip("10.88.0.2"), now());
        let _ = cert::describe(&junk);
        let mut bad = good.clone();
        let i = at % bad.len();
        bad[i] ^= xor;
        let r = cert::verify(ca, &bad, ip("10.88.0.2"), now());
        proptest::prop_assert!(r.is_err(), "byte {} ^ {:#x} accepted: {:?}", i, xor, r);
    }
}

/// One CA and a spoke certificate it accepts, made once for the property.
static GOOD: std::sync::LazyLock<(CaStore, Vec<u8>)> = std::sync::LazyLock::new(|| {
    let ca = Ca::root("Hub CA");
    let der = ca.spoke("spoke2", &["10.88.0.2"]);
    let s = store(&ca.pem);
    assert!(cert::verify(&s, &der, ip("10.88.0.2"), now()).is_ok());
    (s, der)
});

/// The CA file where another account can write (its directory plays
/// `/etc/bird`, owned by uid 65534, which does each step with its own
/// privileges): a FIFO or a link to /dev/zero planted there is refused at
/// once, naming the key, by the config load and by `autopeer run`; a CA of
/// its own making loads (nothing in a file tells whose it is) but `check`
/// warns that the file's owner decides which spokes are admitted.
#[test]
fn a_ca_file_another_account_controls() {
    use common::attacker;
    if !attacker::can_switch_user() {
        return;
    }
    let theirs = attacker::attackers_dir();
    let ours = tempfile::tempdir().unwrap();
    let ca_path = theirs.path().join("hub-ca.pem");
    let extra = format!("ca = \"{}\"\nrequire_cert = true", ca_path.display());

    attacker::as_attacker(&format!("mkfifo {}", ca_path.display()));
    let t0 = Instant::now();
    let r = config(ours.path(), &extra);
    attacker::unjam(&ca_path);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let p = problems(r);
    assert_eq!(p[0].0, "group.spokes.ca", "{p:?}");

    attacker::as_attacker(&format!(
        "rm {p} && ln -s /dev/zero {p}",
        p = ca_path.display()
    ));
    let cfg = ours.path().join("autopeer.toml");
    std::fs::write(
        &cfg,
        format!("[[group]]\nname = \"spokes\"\ntemplate = \"T\"\nprefixes = [\"10.88.0.0/24\"]\n{extra}\n"),
    )
    .unwrap();
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_autopeer"))
        .args(["-c", cfg.to_str().unwrap(), "run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = run.kill();
            let _ = run.wait();
            panic!("autopeer run did not stop on a CA that is /dev/zero");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = run.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("group.spokes.ca: cannot read"), "{text}");

    let mine = Ca::root("Attacker CA");
    attacker::as_attacker(&format!(
        "rm {p} && printf '%s' '{pem}' > {p}",
        p = ca_path.display(),
        pem = mine.pem
    ));
    let c = config(ours.path(), &extra).unwrap();
    let f = autopeer::check::check_certs(&c);
    assert!(
        f.iter()
            .any(|x| x.severity == autopeer::check::Severity::Warning
                && x.message.contains(&format!(
                    "{} is owned by uid {}",
                    ca_path.display(),
                    attacker::NOBODY
                ))),
        "{f:?}"
    );
}
