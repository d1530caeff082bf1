//! Certificates made by the test (rcgen): a CA, intermediates, and spoke
//! certificates with the subjectAltNames, validity and usages a test
//! needs. Keys are fresh ECDSA P-256 per call; nothing is read from disk.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A CA that can sign: its certificate (PEM and DER) and its issuer.
pub struct Ca {
    pub pem: String,
    pub der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "autopeer test");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

impl Ca {
    /// A self-signed root CA named `cn`.
    pub fn root(cn: &str) -> Ca {
        Ca::root_with(ca_params(cn))
    }

    /// A self-signed "CA" from `params` as given (to make broken ones).
    pub fn root_with(params: CertificateParams) -> Ca {
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA named `cn`, signed by this one.
    pub fn intermediate(&self, cn: &str) -> Ca {
        let params = ca_params(cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Signs `params` with a fresh key: the certificate's DER.
    pub fn sign(&self, params: &CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &self.issuer).unwrap().der().to_vec()
    }

    /// A spoke's certificate: CN `cn`, subjectAltName IP addresses `ips`,
    /// valid from 2000 to 4000, no extendedKeyUsage.
    pub fn spoke(&self, cn: &str, ips: &[&str]) -> Vec<u8> {
        self.sign(&spoke_params(cn, ips))
    }
}

/// The parameters of a spoke certificate (see [`Ca::spoke`]), to adjust.
pub fn spoke_params(cn: &str, ips: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = ips
        .iter()
        .map(|a| SanType::IpAddress(a.parse().unwrap()))
        .collect();
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = rcgen::date_time_ymd(2000, 1, 1);
    p.not_after = rcgen::date_time_ymd(4000, 1, 1);
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0a, 0x55]));
    p
}

/// `spoke_params` that expired at the start of 2001.
pub fn expired(cn: &str, ips: &[&str]) -> CertificateParams {
    let mut p = spoke_params(cn, ips);
    p.not_before = rcgen::date_time_ymd(2000, 1, 1);
    p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    p
}

/// `spoke_params` valid only from 3000 on.
pub fn not_yet_valid(cn: &str, ips: &[&str]) -> CertificateParams {
    let mut p = spoke_params(cn, ips);
    p.not_before = rcgen::date_time_ymd(3000, 1, 1);
    p
}

/// `spoke_params` with these extendedKeyUsages.
pub fn with_eku(cn: &str, ips: &[&str], eku: Vec<ExtendedKeyUsagePurpose>) -> CertificateParams {
    let mut p = spoke_params(cn, ips);
    p.extended_key_usages = eku;
    p
}

/// Lower-case hex, as nhrpd's `evmgr_hexdump` prints certificates.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
