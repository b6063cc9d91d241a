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

/// Which audit lines to list, newest first (S3: by who, what, when and object, paged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Part of the actor's name, any case.
    pub who: Option<String>,
    /// An action code, exactly.
    pub action: Option<String>,
    /// Part of the object (`type:id`, e.g. `payment_session:ses_…`), any case.
    pub target: Option<String>,
    /// From this instant (inclusive) …
    pub from_ms: Option<Millis>,
    /// … to this one (exclusive).
    pub to_ms: Option<Millis>,
    /// Only lines older than this sequence number (the next page).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, audit: &AuditInput) -> StoreResult<()>;
    async fn list_audit(&self, limit: i64) -> StoreResult<Vec<AuditEntryView>>;
    async fn search_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntryView>>;
    /// The action codes that occur in the log (for the search form).
    async fn audit_actions(&self) -> StoreResult<Vec<String>>;
    async fn verify_audit_chain(&self) -> StoreResult<AuditCheck>;
}
