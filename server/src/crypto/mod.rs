//! All cryptography in one place (ARCHITECTURE.md "Crypto").
//!
//! Keys are read and written with RustCrypto's `rsa` (PEM, PKCS#1, PKCS#8, bare base64), but
//! every signature, verification and AES-GCM operation runs on aws-lc-rs, which matches OpenSSL's
//! speed (RustCrypto's RSA signs about 6× and verifies about 9× slower). Swapping the backend
//! means changing this file only.

use anyhow::{anyhow, bail, Context};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, KeyPair as _, ParsedPublicKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn unb64(s: &str) -> anyhow::Result<Vec<u8>> {
    B64.decode(s.trim()).context("invalid base64")
}

/// Strips PEM armour and whitespace, leaving the base64 body.
fn pem_body(s: &str) -> String {
    s.lines().filter(|l| !l.starts_with("-----")).collect::<String>().split_whitespace().collect()
}

/// An RSA private key (merchant key, or a sandbox's provider key).
pub struct PrivateKey {
    pair: signature::RsaKeyPair,
    pkcs8_der: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl Clone for PrivateKey {
    fn clone(&self) -> Self {
        PrivateKey::from_pkcs8_der(&self.pkcs8_der).expect("re-parsing a valid key")
    }
}

impl PrivateKey {
    /// A fresh 2048-bit key (demo channels, sandboxes, tests).
    pub fn generate() -> anyhow::Result<PrivateKey> {
        let pair = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| anyhow!("RSA key generation failed"))?;
        let der = pair.as_der().map_err(|_| anyhow!("encoding the key"))?;
        PrivateKey::from_pkcs8_der(der.as_ref())
    }

    pub fn from_pkcs8_der(der: &[u8]) -> anyhow::Result<PrivateKey> {
        let pair = signature::RsaKeyPair::from_pkcs8(der).map_err(|e| anyhow!("not a usable RSA key: {e}"))?;
        Ok(PrivateKey { pair, pkcs8_der: der.to_vec() })
    }

    /// Accepts PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM, or the bare base64 of
    /// either DER, as providers hand them out.
    pub fn parse(text: &str) -> anyhow::Result<PrivateKey> {
        let text = text.trim();
        let key = if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            rsa::RsaPrivateKey::from_pkcs1_pem(text).context("PKCS#1 private key")?
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            rsa::RsaPrivateKey::from_pkcs8_pem(text).context("PKCS#8 private key")?
        } else if text.contains("-----BEGIN") {
            bail!("unsupported private key PEM (expected PRIVATE KEY or RSA PRIVATE KEY)");
        } else {
            let der = unb64(&pem_body(text))?;
            rsa::RsaPrivateKey::from_pkcs8_der(&der)
                .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_der(&der))
                .context("neither a PKCS#8 nor a PKCS#1 private key")?
        };
        let der = key.to_pkcs8_der().context("re-encoding the key")?;
        PrivateKey::from_pkcs8_der(der.as_bytes())
    }

    pub fn to_pkcs8_pem(&self) -> String {
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&self.pkcs8_der).expect("valid");
        key.to_pkcs8_pem(LineEnding::LF).expect("encodable").to_string()
    }

    /// PKCS#1 PEM, for clients that only read that (e.g. the official Python Alipay SDK).
    pub fn to_pkcs1_pem(&self) -> String {
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&self.pkcs8_der).expect("valid");
        key.to_pkcs1_pem(LineEnding::LF).expect("encodable").to_string()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_spki_der(self.pair.public_key().as_der().expect("encodable").as_ref()).expect("own public key")
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (Alipay RSA2, WeChat Pay APIv3, our bank gateway).
    pub fn sign_sha256(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
            .expect("RSA signing with a valid key");
        sig
    }

    pub fn sign_sha256_b64(&self, message: &[u8]) -> String {
        b64(&self.sign_sha256(message))
    }
}

/// An RSA public key, parsed once for fast verification.
#[derive(Clone)]
pub struct PublicKey {
    sha256: std::sync::Arc<ParsedPublicKey>,
    sha1: std::sync::Arc<ParsedPublicKey>,
    spki_der: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({}…)", &self.to_base64()[..24])
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der == other.spki_der
    }
}

impl PublicKey {
    pub fn from_spki_der(der: &[u8]) -> anyhow::Result<PublicKey> {
        let sha256 = ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, der)
            .map_err(|e| anyhow!("bad public key: {e}"))?;
        let sha1 = ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, der)
            .map_err(|e| anyhow!("bad public key: {e}"))?;
        Ok(PublicKey { sha256: std::sync::Arc::new(sha256), sha1: std::sync::Arc::new(sha1), spki_der: der.to_vec() })
    }

    /// Accepts `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1) PEM, or bare base64 of either.
    pub fn parse(text: &str) -> anyhow::Result<PublicKey> {
        let text = text.trim();
        let key = if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
            rsa::RsaPublicKey::from_pkcs1_pem(text).context("PKCS#1 public key")?
        } else if text.contains("-----BEGIN PUBLIC KEY-----") {
            rsa::RsaPublicKey::from_public_key_pem(text).context("SPKI public key")?
        } else if text.contains("-----BEGIN") {
            bail!("unsupported public key PEM (expected PUBLIC KEY or RSA PUBLIC KEY)");
        } else {
            let der = unb64(&pem_body(text))?;
            rsa::RsaPublicKey::from_public_key_der(&der)
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(&der))
                .context("neither an SPKI nor a PKCS#1 public key")?
        };
        let der = key.to_public_key_der().context("re-encoding the key")?;
        PublicKey::from_spki_der(der.as_bytes())
    }

    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> String {
        let body = self.to_base64();
        let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in body.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
            out.push('\n');
        }
        out.push_str("-----END PUBLIC KEY-----\n");
        out
    }

    /// The bare base64 of the SPKI DER, as Alipay shows public keys.
    pub fn to_base64(&self) -> String {
        b64(&self.spki_der)
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub fn verify_sha256(&self, message: &[u8], sig: &[u8]) -> bool {
        self.sha256.verify_sig(message, sig).is_ok()
    }

    /// Verifies a base64 signature; malformed base64 simply does not verify.
    pub fn verify_sha256_b64(&self, message: &[u8], sig_b64: &str) -> bool {
        match B64.decode(sig_b64.trim()) {
            Ok(sig) => self.verify_sha256(message, &sig),
            Err(_) => false,
        }
    }

    /// SHA-1 (Alipay's legacy `RSA` sign type; verification only).
    pub fn verify_sha1_b64(&self, message: &[u8], sig_b64: &str) -> bool {
        match B64.decode(sig_b64.trim()) {
            Ok(sig) => self.sha1.verify_sig(message, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

fn gcm_key(key: &[u8]) -> anyhow::Result<LessSafeKey> {
    let alg = match key.len() {
        32 => &AES_256_GCM,
        16 => &AES_128_GCM,
        n => bail!("AES-GCM key must be 16 or 32 bytes, got {n}"),
    };
    Ok(LessSafeKey::new(UnboundKey::new(alg, key).map_err(|_| anyhow!("bad AES key"))?))
}

/// AES-GCM with a 12-byte nonce: returns ciphertext ‖ 16-byte tag.
pub fn aes_gcm_encrypt(key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
    let k = gcm_key(key)?;
    let n = Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow!("AES-GCM nonce must be 12 bytes"))?;
    let mut buf = plaintext.to_vec();
    k.seal_in_place_append_tag(n, Aad::from(aad), &mut buf).map_err(|_| anyhow!("encryption failed"))?;
    Ok(buf)
}

/// AES-GCM with a 12-byte nonce over ciphertext ‖ tag. Fails on any tampering.
pub fn aes_gcm_decrypt(key: &[u8], nonce: &[u8], aad: &[u8], ciphertext_and_tag: &[u8]) -> anyhow::Result<Vec<u8>> {
    let k = gcm_key(key)?;
    let n = Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow!("AES-GCM nonce must be 12 bytes"))?;
    let mut buf = ciphertext_and_tag.to_vec();
    let plain = k.open_in_place(n, Aad::from(aad), &mut buf).map_err(|_| anyhow!("authentication failed"))?;
    Ok(plain.to_vec())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).expect("system randomness");
    b
}

/// Random string of `[0-9A-Za-z]` (nonces).
pub fn random_alnum(len: usize) -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        SystemRandom::new().fill(&mut buf).expect("system randomness");
        for b in buf {
            // rejection sampling keeps the distribution uniform
            if b < 248 && out.len() < len {
                out.push(CHARS[(b % 62) as usize] as char);
            }
        }
    }
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref())
}

/// Constant-time comparison.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// X.509 certificates (WeChat Pay platform certificates): read and made.
pub mod x509;

#[cfg(test)]
pub mod test_keys {
    //! The test-only keys of PROTOCOLS.md's appendix (never use outside tests).
    pub const MERCHANT_PRIVATE: &str = include_str!("../../tests/fixtures/merchant_private.pem");
    pub const MERCHANT_PUBLIC: &str = include_str!("../../tests/fixtures/merchant_public.pem");
    pub const PROVIDER_PRIVATE: &str = include_str!("../../tests/fixtures/provider_private.pem");
    pub const PROVIDER_PUBLIC: &str = include_str!("../../tests/fixtures/provider_public.pem");
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;

    #[test]
    fn key_formats_round_trip() {
        let k = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();
        let pkcs1 = k.to_pkcs1_pem();
        assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"));
        let k1 = PrivateKey::parse(&pkcs1).unwrap();
        let bare = pem_body(MERCHANT_PRIVATE);
        let k2 = PrivateKey::parse(&bare).unwrap();
        let bare1 = pem_body(&pkcs1);
        let k3 = PrivateKey::parse(&bare1).unwrap();
        let public = PublicKey::parse(MERCHANT_PUBLIC).unwrap();
        for key in [&k, &k1, &k2, &k3] {
            assert_eq!(key.public_key(), public);
            assert!(public.verify_sha256_b64(b"msg", &key.sign_sha256_b64(b"msg")));
        }
        assert_eq!(PublicKey::parse(&public.to_base64()).unwrap(), public);
        assert_eq!(PublicKey::parse(&public.to_pem()).unwrap(), public);
        assert!(PrivateKey::parse("not a key").is_err());
        assert!(PublicKey::parse("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").is_err());
    }

    #[test]
    fn signatures_are_deterministic_pkcs1_v15() {
        let k = PrivateKey::parse(PROVIDER_PRIVATE).unwrap();
        assert_eq!(k.sign_sha256_b64(b"x"), k.sign_sha256_b64(b"x"));
        let p = PublicKey::parse(PROVIDER_PUBLIC).unwrap();
        assert!(!p.verify_sha256_b64(b"y", &k.sign_sha256_b64(b"x")));
        assert!(!p.verify_sha256_b64(b"x", "%%%not base64"));
    }

    #[test]
    fn aes_gcm_vectors() {
        // PROTOCOLS.md D.1 T-W4 (AES-256-GCM, 12-byte nonce)
        let ct = aes_gcm_encrypt(b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb", b"uluk4a9R25RW", b"associatedData", b"message")
            .unwrap();
        assert_eq!(b64(&ct), "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=");
        let pt = aes_gcm_decrypt(b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb", b"uluk4a9R25RW", b"associatedData", &ct).unwrap();
        assert_eq!(pt, b"message");
        // T-W3 (a 16-byte key: AES-128-GCM)
        let ct = unb64("FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC").unwrap();
        let pt =
            aes_gcm_decrypt(b"testAPIv3Key0000", b"wCq51qZv4Yfg", b"Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8", &ct).unwrap();
        assert_eq!(pt, b"Hello World");
        // tampering fails
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(
            aes_gcm_decrypt(b"testAPIv3Key0000", b"wCq51qZv4Yfg", b"Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8", &bad).is_err()
        );
        assert!(aes_gcm_decrypt(b"short", b"wCq51qZv4Yfg", b"", &ct).is_err());
    }

    #[test]
    fn generated_keys_work() {
        let k = PrivateKey::generate().unwrap();
        let pem = k.to_pkcs8_pem();
        let again = PrivateKey::parse(&pem).unwrap();
        assert_eq!(again.public_key(), k.public_key());
        assert_eq!(random_alnum(32).len(), 32);
        assert_ne!(random_alnum(32), random_alnum(32));
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }
}

/// Which kind of key a configuration field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// Our own signing key (merchant / app private key).
    Private,
    /// The provider's key we verify with.
    Public,
}

/// What is wrong with a key pasted or uploaded into a field, in a stable code and in words a
/// person can act on; `None` when it is a usable RSA key (≥ 2048 bits) of the expected kind.
/// The key itself never appears in the answer.
pub fn key_problem(text: &str, role: KeyRole) -> Option<(&'static str, &'static str)> {
    let t = text.trim();
    if t.is_empty() {
        return Some(("key_missing", "no key was given"));
    }
    if t.contains("ENCRYPTED PRIVATE KEY") || t.contains("Proc-Type: 4,ENCRYPTED") {
        return Some(("key_encrypted", "the key is protected by a password: export it without one"));
    }
    if t.contains("-----BEGIN CERTIFICATE-----") {
        return Some((
            "key_is_certificate",
            "this is a certificate, not a key: paste the key (the provider's console offers it as a file)",
        ));
    }
    let looks_private = t.contains("PRIVATE KEY-----");
    let looks_public = t.contains("PUBLIC KEY-----");
    match role {
        KeyRole::Private if looks_public => {
            return Some(("key_is_public", "this is a public key: this field needs your PRIVATE key"))
        }
        KeyRole::Public if looks_private => {
            return Some((
                "key_is_private",
                "this is a PRIVATE key: never paste it here; this field needs the provider's PUBLIC key",
            ))
        }
        _ => {}
    }
    let bits = match role {
        KeyRole::Private => {
            let parsed = if t.contains("-----BEGIN RSA PRIVATE KEY-----") {
                rsa::RsaPrivateKey::from_pkcs1_pem(t).ok()
            } else if t.contains("-----BEGIN PRIVATE KEY-----") {
                rsa::RsaPrivateKey::from_pkcs8_pem(t).ok()
            } else {
                unb64(&pem_body(t)).ok().and_then(|der| {
                    rsa::RsaPrivateKey::from_pkcs8_der(&der).or_else(|_| rsa::RsaPrivateKey::from_pkcs1_der(&der)).ok()
                })
            };
            match parsed {
                Some(k) => rsa::traits::PublicKeyParts::size(&k) * 8,
                // bare base64 of a public key in the private field
                None if !looks_private && PublicKey::parse(t).is_ok() => {
                    return Some(("key_is_public", "this is a public key: this field needs your PRIVATE key"))
                }
                None => return Some(("key_unreadable", "not an RSA private key in PEM (PKCS#8 or PKCS#1) or base64")),
            }
        }
        KeyRole::Public => {
            let parsed = if t.contains("-----BEGIN RSA PUBLIC KEY-----") {
                rsa::RsaPublicKey::from_pkcs1_pem(t).ok()
            } else if t.contains("-----BEGIN PUBLIC KEY-----") {
                rsa::RsaPublicKey::from_public_key_pem(t).ok()
            } else {
                unb64(&pem_body(t)).ok().and_then(|der| {
                    rsa::RsaPublicKey::from_public_key_der(&der)
                        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(&der))
                        .ok()
                })
            };
            match parsed {
                Some(k) => rsa::traits::PublicKeyParts::size(&k) * 8,
                None if !looks_public && PrivateKey::parse(t).is_ok() => {
                    return Some((
                        "key_is_private",
                        "this is a PRIVATE key: never paste it here; this field needs the provider's PUBLIC key",
                    ))
                }
                None => return Some(("key_unreadable", "not an RSA public key in PEM (SPKI or PKCS#1) or base64")),
            }
        }
    };
    if bits < 2048 {
        return Some(("key_too_short", "the key is shorter than 2048 bits; RSA2 needs at least 2048"));
    }
    None
}

#[cfg(test)]
mod key_problem_tests {
    use super::*;

    #[test]
    fn each_wrong_key_is_named() {
        let k = PrivateKey::generate().unwrap();
        let private_pem = k.to_pkcs8_pem();
        let pkcs1 = k.to_pkcs1_pem();
        let public_pem = k.public_key().to_pem();
        let public_b64 = k.public_key().to_base64();
        let private_b64 = pem_body(&private_pem);
        assert_eq!(key_problem(&private_pem, KeyRole::Private), None);
        assert_eq!(key_problem(&pkcs1, KeyRole::Private), None);
        assert_eq!(key_problem(&private_b64, KeyRole::Private), None);
        assert_eq!(key_problem(&public_pem, KeyRole::Public), None);
        assert_eq!(key_problem(&public_b64, KeyRole::Public), None);
        let code = |t: &str, r| key_problem(t, r).map(|p| p.0);
        assert_eq!(code(&public_pem, KeyRole::Private), Some("key_is_public"));
        assert_eq!(code(&public_b64, KeyRole::Private), Some("key_is_public"));
        assert_eq!(code(&private_pem, KeyRole::Public), Some("key_is_private"));
        assert_eq!(code(&private_b64, KeyRole::Public), Some("key_is_private"));
        assert_eq!(code("", KeyRole::Public), Some("key_missing"));
        assert_eq!(
            code("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", KeyRole::Public),
            Some("key_is_certificate")
        );
        assert_eq!(
            code("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----", KeyRole::Private),
            Some("key_encrypted")
        );
        assert_eq!(code("hello", KeyRole::Private), Some("key_unreadable"));
        let small = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let small_pem = small.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        assert_eq!(code(&small_pem, KeyRole::Private), Some("key_too_short"));
        // the answer never carries the key
        let (_, words) = key_problem(&private_pem, KeyRole::Public).unwrap();
        assert!(!words.contains(&private_b64[..20]));
    }
}
