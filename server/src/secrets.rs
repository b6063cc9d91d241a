//! Secrets at rest (S4): AES-256-GCM under versioned master keys.
//!
//! Keys come from `CLINICPAY_MASTER_KEYS` (`version:base64key,…`) or a file holding the same
//! (one entry per line or comma-separated). The highest version seals; every listed version can
//! still open, so rotation is: add a new version, restart (rolling, no downtime), re-encrypt
//! (admin page or `clinicpay rotate-secrets`), then retire the old version. In development, when
//! no key is configured, a key is generated once into `<data_dir>/master.key` (mode 0600).

use crate::config::Config;
use crate::crypto;
use anyhow::{bail, Context};
use clinicpay::ports::{Sealed, Secrets};
use std::collections::BTreeMap;

pub struct MasterKeys {
    keys: BTreeMap<i64, [u8; 32]>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKeys(versions {:?})", self.keys.keys().collect::<Vec<_>>())
    }
}

impl MasterKeys {
    pub fn parse(text: &str) -> anyhow::Result<MasterKeys> {
        let mut keys = BTreeMap::new();
        for entry in text.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty() && !e.starts_with('#')) {
            let (v, k) = entry.split_once(':').context("master key entries are written version:base64key")?;
            let version: i64 = v.trim().parse().context("master key version must be a number")?;
            if version < 1 {
                bail!("master key versions start at 1");
            }
            let bytes = crypto::unb64(k).context("master key must be base64")?;
            let key: [u8; 32] =
                bytes.try_into().map_err(|_| anyhow::anyhow!("master key {version} must be 32 bytes"))?;
            if keys.insert(version, key).is_some() {
                bail!("master key version {version} given twice");
            }
        }
        if keys.is_empty() {
            bail!("no master key given");
        }
        Ok(MasterKeys { keys })
    }

    /// A fresh key as an entry (`1:base64`).
    pub fn generate_entry(version: i64) -> String {
        format!("{version}:{}", crypto::b64(&crypto::random_bytes::<32>()))
    }

    /// From the configuration; in development, generates and keeps a key when none is given.
    pub fn load(cfg: &Config) -> anyhow::Result<MasterKeys> {
        if let Some(text) = &cfg.master_keys {
            return MasterKeys::parse(text);
        }
        let path = cfg.master_key_file.clone().unwrap_or_else(|| cfg.data_dir.join("master.key"));
        match std::fs::read_to_string(&path) {
            Ok(text) => MasterKeys::parse(&text).with_context(|| format!("reading {}", path.display())),
            Err(_) if !cfg.production() => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let entry = Self::generate_entry(1);
                crate::sandbox::write_private(&path, &format!("{entry}\n"))?;
                tracing::warn!(path = %path.display(), "no master key configured: generated one for development");
                MasterKeys::parse(&entry)
            }
            Err(e) => Err(anyhow::anyhow!(
                "production needs a master key: set CLINICPAY_MASTER_KEYS or CLINICPAY_MASTER_KEY_FILE ({}: {e})",
                path.display()
            )),
        }
    }

    pub fn versions(&self) -> Vec<i64> {
        self.keys.keys().copied().collect()
    }
}

impl Secrets for MasterKeys {
    fn current_version(&self) -> i64 {
        *self.keys.keys().next_back().expect("at least one key")
    }

    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> anyhow::Result<Sealed> {
        let version = self.current_version();
        let nonce = crypto::random_bytes::<12>();
        let ct = crypto::aes_gcm_encrypt(&self.keys[&version], &nonce, aad, plaintext)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(Sealed { key_version: version, ciphertext: crypto::b64(&out) })
    }

    fn open(&self, aad: &[u8], sealed: &Sealed) -> anyhow::Result<Vec<u8>> {
        let key = self
            .keys
            .get(&sealed.key_version)
            .with_context(|| format!("master key version {} is not configured", sealed.key_version))?;
        let raw = crypto::unb64(&sealed.ciphertext)?;
        if raw.len() < 12 + 16 {
            bail!("sealed secret too short");
        }
        crypto::aes_gcm_decrypt(key, &raw[..12], aad, &raw[12..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate() {
        let old = MasterKeys::parse(&MasterKeys::generate_entry(1)).unwrap();
        let sealed = old.seal(b"chn_1", b"private key").unwrap();
        assert_eq!(sealed.key_version, 1);
        assert_eq!(old.open(b"chn_1", &sealed).unwrap(), b"private key");
        assert!(old.open(b"chn_2", &sealed).is_err(), "bound to its row");

        // a second version: new seals use it, old ciphertexts still open
        let both = format!("{},{}", MasterKeys::generate_entry(2), old_entry(&old));
        let keys = MasterKeys::parse(&both).unwrap();
        assert_eq!(keys.current_version(), 2);
        assert_eq!(keys.open(b"chn_1", &sealed).unwrap(), b"private key");
        let resealed = keys.seal(b"chn_1", b"private key").unwrap();
        assert_eq!(resealed.key_version, 2);
        assert!(old.open(b"chn_1", &resealed).is_err(), "the old key cannot read new seals");
    }

    fn old_entry(k: &MasterKeys) -> String {
        format!("1:{}", crypto::b64(&k.keys[&1]))
    }

    #[test]
    fn rejects_bad_config() {
        assert!(MasterKeys::parse("").is_err());
        assert!(MasterKeys::parse("1:short").is_err());
        assert!(MasterKeys::parse("x:AAAA").is_err());
        assert!(MasterKeys::parse("0:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_err());
        let e = MasterKeys::generate_entry(3);
        assert!(MasterKeys::parse(&format!("{e},{e}")).is_err());
        assert!(format!("{:?}", MasterKeys::parse(&e).unwrap()).contains("[3]"));
    }
}
