//! Live session status for screens (C5).

use crate::ids::SessionId;
use crate::payments::SessionStatus;
use async_trait::async_trait;

/// Tells live screens that a session changed, only after the change is committed. On
/// PostgreSQL this crosses instances (LISTEN/NOTIFY); on SQLite it stays in-process.
#[async_trait]
pub trait SessionEvents: Send + Sync {
    async fn publish(&self, session_id: &SessionId, status: SessionStatus);
    /// These patients' bills changed (issued, voided): an open charge screen re-reads them.
    async fn bills_changed(&self, _patients: &[crate::ids::PatientId]) {}
}
