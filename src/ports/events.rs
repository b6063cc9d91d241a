//! Live session status for screens (C5).

use crate::ids::SessionId;
use crate::payments::SessionStatus;
use async_trait::async_trait;

/// Tells live screens that a session changed, only after the change is committed. On
/// PostgreSQL this crosses instances (LISTEN/NOTIFY); on SQLite it stays in-process.
#[async_trait]
pub trait SessionEvents: Send + Sync {
    async fn publish(&self, session_id: &SessionId, status: SessionStatus);
}
