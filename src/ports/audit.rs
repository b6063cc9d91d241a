//! The append-only, hash-chained audit log (S3).

use super::StoreResult;
use crate::ids::AuditId;
use crate::time::Millis;
use crate::views::AuditEntryView;
use async_trait::async_trait;

/// One line of the audit log. The store chains it to the previous line's hash, in the same
/// transaction as the change it describes.
#[derive(Debug, Clone)]
pub struct AuditInput {
    pub id: AuditId,
    pub at_ms: Millis,
    /// The principal (`usr_…` or `tok_…`); none for the system.
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// JSON text: before/after values, never secrets.
    pub detail: String,
    pub ip: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditCheck {
    pub entries: i64,
    /// Sequence number of the first entry whose hash does not chain, if any.
    pub broken_at: Option<i64>,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, audit: &AuditInput) -> StoreResult<()>;
    async fn list_audit(&self, limit: i64) -> StoreResult<Vec<AuditEntryView>>;
    async fn verify_audit_chain(&self) -> StoreResult<AuditCheck>;
}
