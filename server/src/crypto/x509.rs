//! X.509 certificates of WeChat Pay's "platform certificate" mode (PROTOCOLS.md B.4): reading the
//! serial number and public key out of a downloaded certificate, and — for the sandbox — making
//! a self-signed one. Signatures go through `crypto.rs`; this file only handles the DER.

use crate::crypto::{PrivateKey, PublicKey};
use anyhow::{anyhow, Context};
use std::str::FromStr;
use std::time::Duration;
use x509_cert::der::asn1::{BitString, UtcTime};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Any, Decode, DecodePem, Encode, EncodePem};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

/// sha256WithRSAEncryption.
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// What we need from a platform certificate.
#[derive(Debug, Clone)]
pub struct ParsedCertificate {
    /// Upper-case hex of the serial number, no leading zeros (`Wechatpay-Serial`).
    pub serial_no: String,
    pub public_key: PublicKey,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
}

/// Upper-case hex of a serial's magnitude without leading zero bytes (WJAVA and WGO agree on it
/// whenever the first byte is 0x10..0x7F; comparisons go through [`normalize_serial`]).
fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    hex::encode_upper(&bytes[start..])
}

/// The comparable form of a serial number: upper-case, leading zeros dropped. Public-key ids
/// (`PUB_KEY_ID_…`) are returned unchanged.
pub fn normalize_serial(s: &str) -> String {
    let s = s.trim();
    if s.starts_with("PUB_KEY_ID_") {
        return s.to_string();
    }
    let up = s.to_ascii_uppercase();
    let trimmed = up.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.to_string()
    }
}

/// Parses a PEM (`-----BEGIN CERTIFICATE-----`) certificate.
pub fn parse_certificate_pem(pem: &str) -> anyhow::Result<ParsedCertificate> {
    let cert = Certificate::from_pem(pem.trim().as_bytes()).map_err(|e| anyhow!("not an X.509 certificate: {e}"))?;
    let tbs = &cert.tbs_certificate;
    let spki = tbs.subject_public_key_info.to_der().map_err(|e| anyhow!("certificate key: {e}"))?;
    let public_key = PublicKey::from_spki_der(&spki).context("the certificate's key is not a usable RSA key")?;
    Ok(ParsedCertificate {
        serial_no: serial_hex(tbs.serial_number.as_bytes()),
        public_key,
        not_before_unix: tbs.validity.not_before.to_unix_duration().as_secs() as i64,
        not_after_unix: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
    })
}

/// A self-signed SHA256withRSA certificate (the sandbox's platform certificate), as PEM.
/// `serial` must be a positive big-endian integer of at most 20 bytes.
pub fn self_signed_certificate(
    key: &PrivateKey,
    serial: &[u8],
    subject: &str,
    not_before_unix: u64,
    not_after_unix: u64,
) -> anyhow::Result<String> {
    let alg = AlgorithmIdentifierOwned { oid: SHA256_WITH_RSA, parameters: Some(Any::null()) };
    let name = Name::from_str(subject).map_err(|e| anyhow!("certificate name: {e}"))?;
    let time = |secs: u64| -> anyhow::Result<Time> {
        Ok(Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(secs)).map_err(|e| anyhow!("time: {e}"))?))
    };
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(serial).map_err(|e| anyhow!("serial: {e}"))?,
        signature: alg.clone(),
        issuer: name.clone(),
        validity: Validity { not_before: time(not_before_unix)?, not_after: time(not_after_unix)? },
        subject: name,
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(key.public_key().spki_der())
            .map_err(|e| anyhow!("public key: {e}"))?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let tbs_der = tbs.to_der().map_err(|e| anyhow!("encoding the certificate: {e}"))?;
    let signature = key.sign_sha256(&tbs_der);
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&signature).map_err(|e| anyhow!("signature: {e}"))?,
    };
    cert.to_pem(x509_cert::der::pem::LineEnding::LF).map_err(|e| anyhow!("encoding the certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appendix_certificate_parses() {
        let pem = include_str!("../../tests/fixtures/provider_cert.pem");
        let c = parse_certificate_pem(pem).unwrap();
        assert_eq!(c.serial_no, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
        let provider = PublicKey::parse(include_str!("../../tests/fixtures/provider_public.pem")).unwrap();
        assert_eq!(c.public_key, provider);
        // 2024-01-01T00:00:00+08:00 .. 2034-01-01T00:00:00+08:00
        assert_eq!(c.not_before_unix, 1_704_038_400);
        assert_eq!(c.not_after_unix, 2_019_657_600);
        assert!(parse_certificate_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").is_err());
        assert!(parse_certificate_pem("garbage").is_err());
    }

    #[test]
    fn self_signed_round_trip() {
        let key = PrivateKey::parse(include_str!("../../tests/fixtures/provider_private.pem")).unwrap();
        let serial = hex::decode("5157F09EFDC096DE15EBE81A47057A7232F1B8E1").unwrap();
        let pem = self_signed_certificate(
            &key,
            &serial,
            "CN=Simulated Wechatpay Platform,O=Sandbox Simulator,C=CN",
            1_704_038_400,
            2_019_657_600,
        )
        .unwrap();
        let c = parse_certificate_pem(&pem).unwrap();
        assert_eq!(c.serial_no, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
        assert_eq!(c.public_key, key.public_key());
        // the certificate verifies under its own key
        let cert = Certificate::from_pem(pem.as_bytes()).unwrap();
        let tbs = cert.tbs_certificate.to_der().unwrap();
        assert!(key.public_key().verify_sha256(&tbs, cert.signature.raw_bytes()));
        assert_eq!(normalize_serial("00d7ce59d1f522d701"), "D7CE59D1F522D701");
        assert_eq!(normalize_serial("PUB_KEY_ID_0001"), "PUB_KEY_ID_0001");
    }
}
