//! Payment channel configurations and their secrets (G6, S4).

use super::{AuditInput, StoreResult};
use crate::ids::ChannelId;
use crate::payments::Provider;
use crate::time::Millis;
use async_trait::async_trait;

/// A channel configuration's public face.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelInfo {
    pub id: ChannelId,
    pub provider: Provider,
    pub name: String,
    pub account: String,
    pub is_default: bool,
    pub enabled: bool,
    pub sandbox: bool,
}

/// A channel configuration row. `secret_ciphertext` is sealed by [`Secrets`]; nothing here is
/// secret in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub id: ChannelId,
    pub provider: Provider,
    pub name: String,
    pub account_id: String,
    pub is_default: bool,
    pub enabled: bool,
    pub sandbox: bool,
    /// Non-secret settings, JSON text (provider-specific shape).
    pub settings: String,
    pub secret_ciphertext: String,
    pub secret_key_version: i64,
    pub version: i64,
    pub created_at_ms: Millis,
    pub updated_at_ms: Millis,
}

impl ChannelRecord {
    pub fn info(&self) -> ChannelInfo {
        ChannelInfo {
            id: self.id.clone(),
            provider: self.provider,
            name: self.name.clone(),
            account: self.account_id.clone(),
            is_default: self.is_default,
            enabled: self.enabled,
            sandbox: self.sandbox,
        }
    }
}

/// The secret half of a channel: private key(s). Never serialised to a browser, never logged.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelSecrets {
    /// Merchant/app private key (PEM or bare base64).
    pub private_key: String,
    /// WeChat Pay APIv3 key (32 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apiv3_key: Option<String>,
}

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelSecrets(<redacted>)")
    }
}

/// A sealed secret: which master-key version sealed it, and the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_version: i64,
    pub ciphertext: String,
}

/// Encryption at rest under versioned master keys (AES-256-GCM). `aad` binds a ciphertext to
/// its row, so it cannot be moved to another channel.
pub trait Secrets: Send + Sync {
    fn current_version(&self) -> i64;
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> anyhow::Result<Sealed>;
    fn open(&self, aad: &[u8], sealed: &Sealed) -> anyhow::Result<Vec<u8>>;
}

#[async_trait]
pub trait ChannelStore: Send + Sync {
    async fn insert_channel(&self, c: &ChannelRecord, audit: &AuditInput) -> StoreResult<()>;
    /// Compare-and-set on `version`; the stored version becomes `c.version`.
    async fn update_channel(&self, c: &ChannelRecord, expected_version: i64, audit: &AuditInput) -> StoreResult<()>;
    /// Makes a channel its provider's default (clearing the old one) in one transaction.
    async fn set_default_channel(&self, id: &ChannelId, at_ms: Millis, audit: &AuditInput) -> StoreResult<()>;
    async fn list_channels(&self) -> StoreResult<Vec<ChannelRecord>>;
    async fn get_channel(&self, id: &ChannelId) -> StoreResult<Option<ChannelRecord>>;
}
