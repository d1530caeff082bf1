//! Certificate binding: does a spoke's IKE certificate chain to its group's
//! CA and name the GRE address it registers?
//!
//! nhrpd copies the certificate the IKE daemon authenticated the spoke with
//! (VICI's `remote-cert-data`) into `authorize-binding` as `remote_cert=`,
//! lower-case hex of the DER (nhrpd/nhrp_event.c `evmgr_notify` `%H`,
//! nhrpd/vici.c `parse_sa_message`, FRR 8.4.4; docs/facts.md § Certificate
//! binding). A group with `ca` checks it here:
//!
//! - the path from the certificate to a trust anchor of `ca`: signatures,
//!   validity times of every certificate on it (the anchor's too), CA basic
//!   constraints and path length of the intermediates, name constraints;
//! - the certificate names the spoke's GRE address as a subjectAltName
//!   `iPAddress` (the only binding supported: no CN, no DNS name, no IKE
//!   identity);
//! - an extendedKeyUsage, when present, allows IKE ([`IkeUsage`]).
//!
//! Verification is rustls-webpki's (chain building, time, constraints,
//! signatures by *ring*): a maintained verifier written to refuse, not to
//! interpret. x509-parser only reads what webpki does not expose: the CA
//! file's basicConstraints and keyUsage at load, and the subject and serial
//! printed in an audit line. Nothing here parses DER by hand.
//!
//! Pure: no I/O, no clock (callers pass `now`), no logging. A certificate
//! is not a secret, but only its subject and serial reach a message.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, ServerName, SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};
use webpki::{ExtendedKeyUsageValidator, KeyPurposeIdIter, RequiredEkuNotFoundContext};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// Largest CA file read (`[[group]] ca`).
pub const MAX_CA_FILE: u64 = 1 << 20;
/// At most this many certificates in a CA file.
pub const MAX_CA_CERTS: usize = 64;
/// Longest subject printed.
const MAX_SUBJECT: usize = 160;

/// What webpki may verify signatures with: *ring*'s set (ECDSA P-256 and
/// P-384, Ed25519, RSA of 2048 bits or more, PKCS#1 and PSS). SHA-1 and
/// RSA below 2048 bits are refused.
static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_3072_8192_SHA384,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// The extendedKeyUsage purposes that allow a certificate to bind a GRE
/// address (content octets of the OIDs). RFC 4945 § 5.1.3.12 wants
/// `id-kp-ipsecIKE` or `anyExtendedKeyUsage` when the extension is there;
/// deployed IKE certificates also carry TLS's `serverAuth` / `clientAuth`
/// (Windows' IKEv2 client asks for `serverAuth`) or strongSwan's
/// `ikeIntermediate`. webpki's own `KeyUsage` would demand `serverAuth` or
/// `clientAuth` alone, hence [`IkeUsage`].
const IKE_PURPOSES: &[&[u8]] = &[
    // id-kp-ipsecIKE 1.3.6.1.5.5.7.3.17
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11],
    // anyExtendedKeyUsage 2.5.29.37.0
    &[0x55, 0x1d, 0x25, 0x00],
    // id-kp-serverAuth 1.3.6.1.5.5.7.3.1
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01],
    // id-kp-clientAuth 1.3.6.1.5.5.7.3.2
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],
    // ikeIntermediate 1.3.6.1.5.5.8.2.2
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x08, 0x02, 0x02],
];

/// The extendedKeyUsage rule: none at all, or one of [`IKE_PURPOSES`].
#[derive(Debug, Clone, Copy)]
pub struct IkeUsage;

impl ExtendedKeyUsageValidator for IkeUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut present = Vec::new();
        for id in iter {
            let id = id?;
            if IKE_PURPOSES
                .iter()
                .any(|oid| webpki::KeyPurposeId::new(oid) == id)
            {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        if present.is_empty() {
            return Ok(());
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(
            RequiredEkuNotFoundContext {
                required: webpki::KeyUsage::required(IKE_PURPOSES[0]),
                present,
            },
        ))
    }
}

/// Why a CA file cannot be used (`[[group]] ca`). The text names the
/// certificate by its place in the file and, when readable, its subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    #[error("no certificate in it (PEM without a CERTIFICATE block, or empty)")]
    Empty,
    #[error("PEM: {0}")]
    Pem(String),
    #[error("more than {MAX_CA_CERTS} certificates")]
    TooMany,
    #[error("certificate {index}: not an X.509 certificate ({reason})")]
    NotX509 { index: usize, reason: String },
    #[error("certificate {index} ({subject}): not a CA ({reason})")]
    NotCa {
        index: usize,
        subject: String,
        reason: &'static str,
    },
    #[error("certificate {index} ({subject}): expired on {not_after}")]
    Expired {
        index: usize,
        subject: String,
        not_after: String,
    },
    #[error("certificate {index} ({subject}): not valid before {not_before}")]
    NotYetValid {
        index: usize,
        subject: String,
        not_before: String,
    },
    #[error("certificate {index} ({subject}): cannot be a trust anchor ({reason})")]
    Anchor {
        index: usize,
        subject: String,
        reason: String,
    },
}

/// A trust anchor and the validity webpki does not check for anchors.
#[derive(Debug)]
struct Anchor {
    ta: TrustAnchor<'static>,
    not_before: i64,
    not_after: i64,
    subject: String,
}

/// The certificates of one `ca` file: self-issued CA certificates are the
/// trust anchors; the others are intermediates a spoke's certificate may
/// chain through (nhrpd passes the spoke's own certificate only). A file
/// without a self-issued certificate trusts each of its certificates as
/// an anchor (a sub-CA trusted alone).
pub struct CaStore {
    anchors: Vec<Anchor>,
    tas: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    /// Every certificate, DER, in file order (identity for `PartialEq`).
    der: Vec<Vec<u8>>,
}

impl fmt::Debug for CaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaStore")
            .field(
                "anchors",
                &self.anchors.iter().map(|a| &a.subject).collect::<Vec<_>>(),
            )
            .field("intermediates", &self.intermediates.len())
            .finish()
    }
}

impl PartialEq for CaStore {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for CaStore {}

impl CaStore {
    /// The anchors' subjects, for `autopeer check` and logs.
    pub fn anchor_subjects(&self) -> impl Iterator<Item = &str> {
        self.anchors.iter().map(|a| a.subject.as_str())
    }

    /// How many intermediates the file holds.
    pub fn intermediate_count(&self) -> usize {
        self.intermediates.len()
    }
}

/// A group's certificate rule (`ca`, `require_cert`), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPolicy {
    /// `ca`, as configured (resolved against the config's directory).
    pub ca_path: PathBuf,
    pub ca: Arc<CaStore>,
    /// `require_cert`: a registration without a certificate is refused.
    pub required: bool,
}

/// Seconds since the epoch (negative before 1970).
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `2026-11-23T06:55:02Z` for a time in seconds since the epoch.
fn date(secs: i64) -> String {
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    t.map_or_else(|| format!("{secs} s after 1970"), crate::event::rfc3339)
}

/// Printable, bounded: control characters become `?`.
fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_SUBJECT)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > MAX_SUBJECT {
        out.push('…');
    }
    out
}

/// One whole X.509 certificate, nothing after it.
fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], c)) => Ok(c),
        Ok((rest, _)) => Err(format!("{} bytes after the certificate", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

fn subject_of(c: &X509Certificate<'_>) -> String {
    let s = c.subject().to_string();
    if s.is_empty() {
        "empty subject".into()
    } else {
        clean(&s)
    }
}

/// Reads a CA file's bytes (PEM with one or more `CERTIFICATE` blocks, or
/// one DER certificate) and checks that every certificate is a CA
/// (basicConstraints `cA`, and `keyCertSign` when it has a keyUsage) valid
/// at `now`.
pub fn load_ca(bytes: &[u8], now: SystemTime) -> Result<CaStore, CaError> {
    let text_start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let is_pem = text_start
        .and_then(|i| bytes.get(i..))
        .is_some_and(|b| b.starts_with(b"-----BEGIN"));
    let ders: Vec<Vec<u8>> = if is_pem {
        let mut v = Vec::new();
        for item in CertificateDer::pem_slice_iter(bytes) {
            let c = item.map_err(|e| CaError::Pem(e.to_string()))?;
            if v.len() == MAX_CA_CERTS {
                return Err(CaError::TooMany);
            }
            v.push(c.to_vec());
        }
        v
    } else if text_start.is_none() {
        Vec::new()
    } else {
        vec![bytes.to_vec()]
    };
    if ders.is_empty() {
        return Err(CaError::Empty);
    }
    let now = unix(now);
    let mut anchors = Vec::new();
    let mut others = Vec::new();
    for (i, der) in ders.iter().enumerate() {
        let index = i + 1;
        let c = parse(der).map_err(|reason| CaError::NotX509 { index, reason })?;
        let subject = subject_of(&c);
        let not_ca = |reason| CaError::NotCa {
            index,
            subject: subject.clone(),
            reason,
        };
        match c.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            Ok(Some(_)) => return Err(not_ca("basicConstraints has cA false")),
            Ok(None) => return Err(not_ca("no basicConstraints extension")),
            Err(_) => return Err(not_ca("malformed basicConstraints")),
        }
        match c.key_usage() {
            Ok(Some(ku)) if !ku.value.key_cert_sign() => {
                return Err(not_ca("keyUsage lacks keyCertSign"))
            }
            Ok(_) => {}
            Err(_) => return Err(not_ca("malformed keyUsage")),
        }
        let not_before = c.validity().not_before.timestamp();
        let not_after = c.validity().not_after.timestamp();
        if now > not_after {
            return Err(CaError::Expired {
                index,
                subject,
                not_after: date(not_after),
            });
        }
        if now < not_before {
            return Err(CaError::NotYetValid {
                index,
                subject,
                not_before: date(not_before),
            });
        }
        let self_issued = c.subject().as_raw() == c.issuer().as_raw();
        let cd = CertificateDer::from(der.as_slice());
        let ta = webpki::anchor_from_trusted_cert(&cd)
            .map_err(|e| CaError::Anchor {
                index,
                subject: subject.clone(),
                reason: format!("{e:?}"),
            })?
            .to_owned();
        let a = Anchor {
            ta,
            not_before,
            not_after,
            subject,
        };
        if self_issued {
            anchors.push(a);
        } else {
            others.push((a, der.clone()));
        }
    }
    let intermediates = if anchors.is_empty() {
        anchors.extend(others.into_iter().map(|(a, _)| a));
        Vec::new()
    } else {
        others
            .into_iter()
            .map(|(_, der)| CertificateDer::from(der))
            .collect()
    };
    Ok(CaStore {
        tas: anchors.iter().map(|a| a.ta.clone()).collect(),
        anchors,
        intermediates,
        der: ders,
    })
}

/// What failed about a spoke's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertProblem {
    /// Not one whole X.509 certificate in DER.
    Malformed(String),
    Expired {
        not_after: String,
    },
    NotYetValid {
        not_before: String,
    },
    /// An intermediate on the way to the anchor is out of its validity.
    ChainExpired,
    /// The trust anchor it chains to is out of its validity.
    CaExpired {
        subject: String,
    },
    /// No path to an anchor of the group's `ca`.
    UnknownIssuer,
    /// A signature on the path does not verify.
    BadSignature,
    /// Signed with an algorithm not accepted (SHA-1, RSA under 2048 bits, …).
    UnsupportedAlgorithm,
    /// Its extendedKeyUsage does not allow IKE; the purposes it has.
    Usage {
        present: Vec<String>,
    },
    /// It is a CA certificate, not an end entity's.
    IsCa,
    /// It does not name the GRE address; the IP addresses it does name.
    NotForAddress {
        addr: IpAddr,
        names: Vec<IpAddr>,
    },
    /// Anything else webpki refused, in its words.
    Other(String),
}

/// A refused certificate: what was wrong, and whose it was (subject and
/// serial when it could be read at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRejection {
    pub subject: Option<String>,
    pub serial: Option<String>,
    pub problem: CertProblem,
}

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertProblem::Malformed(r) => write!(f, "is not an X.509 certificate ({r})"),
            CertProblem::Expired { not_after } => write!(f, "expired on {not_after}"),
            CertProblem::NotYetValid { not_before } => {
                write!(f, "is not valid before {not_before}")
            }
            CertProblem::ChainExpired => {
                f.write_str("chains through an intermediate CA that is not valid now")
            }
            CertProblem::CaExpired { subject } => {
                write!(f, "chains to CA {subject}, which is not valid now")
            }
            CertProblem::UnknownIssuer => f.write_str("is not issued by the group's ca"),
            CertProblem::BadSignature => f.write_str("has a signature that does not verify"),
            CertProblem::UnsupportedAlgorithm => {
                f.write_str("is signed with an algorithm not accepted")
            }
            CertProblem::Usage { present } => write!(
                f,
                "has an extendedKeyUsage without IKE ({})",
                present.join(", ")
            ),
            CertProblem::IsCa => f.write_str("is a CA certificate, not a spoke's"),
            CertProblem::NotForAddress { addr, names } if names.is_empty() => {
                write!(f, "does not name {addr} (no subjectAltName IP address)")
            }
            CertProblem::NotForAddress { addr, names } => {
                let names: Vec<String> = names.iter().map(IpAddr::to_string).collect();
                write!(
                    f,
                    "does not name {addr} (subjectAltName IP addresses: {})",
                    names.join(", ")
                )
            }
            CertProblem::Other(e) => write!(f, "is refused: {e}"),
        }
    }
}

impl fmt::Display for CertRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("certificate")?;
        match (&self.subject, &self.serial) {
            (Some(s), Some(n)) => write!(f, " {}", who(s, n))?,
            (Some(s), None) => write!(f, " {s}")?,
            _ => {}
        }
        write!(f, " {}", self.problem)
    }
}

/// Who a certificate belongs to, for an audit line: `CN=spoke2 (serial
/// 01:02)`; `None` when it is not a certificate.
pub fn describe(der: &[u8]) -> Option<String> {
    parse(der)
        .ok()
        .map(|c| who(&subject_of(&c), &serial_of(&c)))
}

fn serial_of(c: &X509Certificate<'_>) -> String {
    clean(&c.raw_serial_as_string())
}

fn who(subject: &str, serial: &str) -> String {
    format!("{subject} (serial {serial})")
}

fn webpki_problem(e: &webpki::Error) -> CertProblem {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => CertProblem::UnknownIssuer,
        E::InvalidSignatureForPublicKey => CertProblem::BadSignature,
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            CertProblem::UnsupportedAlgorithm
        }
        E::RequiredEkuNotFoundContext(c) => CertProblem::Usage {
            present: c
                .present
                .iter()
                .map(|o| o.iter().map(usize::to_string).collect::<Vec<_>>().join("."))
                .collect(),
        },
        E::CaUsedAsEndEntity => CertProblem::IsCa,
        E::CertExpired { .. } | E::CertNotValidYet { .. } => CertProblem::ChainExpired,
        other => CertProblem::Other(format!("{other:?}")),
    }
}

/// Checks the spoke's certificate `der` against `ca` for the GRE address
/// `addr` at `now`. Ok: the certificate's description ([`describe`]).
pub fn verify(
    ca: &CaStore,
    der: &[u8],
    addr: IpAddr,
    now: SystemTime,
) -> Result<String, CertRejection> {
    let reject = |subject, serial, problem| CertRejection {
        subject,
        serial,
        problem,
    };
    let c = parse(der).map_err(|r| reject(None, None, CertProblem::Malformed(r)))?;
    let subject = subject_of(&c);
    let serial = serial_of(&c);
    let fail = |problem| reject(Some(subject.clone()), Some(serial.clone()), problem);
    // The end entity's own times, in its own words (webpki would report
    // them too, without the date).
    let t = unix(now);
    let (nb, na) = (
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    );
    if t > na {
        return Err(fail(CertProblem::Expired {
            not_after: date(na),
        }));
    }
    if t < nb {
        return Err(fail(CertProblem::NotYetValid {
            not_before: date(nb),
        }));
    }
    let cd = CertificateDer::from(der);
    let ee = webpki::EndEntityCert::try_from(&cd)
        .map_err(|e| fail(CertProblem::Malformed(format!("{e:?}"))))?;
    let time = UnixTime::since_unix_epoch(Duration::from_secs(t.max(0).unsigned_abs()));
    // webpki does not look at an anchor's validity: refuse a path to an
    // anchor that is out of its time, and remember which.
    let expired_anchor = std::cell::RefCell::new(None::<String>);
    let anchor_in_time = |path: &webpki::VerifiedPath<'_>| {
        let ta = path.anchor();
        let a = ca.anchors.iter().find(|a| {
            a.ta.subject == ta.subject && a.ta.subject_public_key_info == ta.subject_public_key_info
        });
        match a {
            Some(a) if t < a.not_before || t > a.not_after => {
                *expired_anchor.borrow_mut() = Some(a.subject.clone());
                Err(webpki::Error::UnknownIssuer)
            }
            _ => Ok(()),
        }
    };
    let verified = ee.verify_for_usage(
        ALGORITHMS,
        &ca.tas,
        &ca.intermediates,
        time,
        IkeUsage,
        None,
        Some(&anchor_in_time),
    );
    if let Err(e) = verified {
        if let Some(subject) = expired_anchor.borrow_mut().take() {
            return Err(fail(CertProblem::CaExpired { subject }));
        }
        return Err(fail(webpki_problem(&e)));
    }
    let name = ServerName::IpAddress(addr.into());
    if ee.verify_is_valid_for_subject_name(&name).is_err() {
        let names = match c.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        return Err(fail(CertProblem::NotForAddress { addr, names }));
    }
    Ok(who(&subject, &serial))
}
