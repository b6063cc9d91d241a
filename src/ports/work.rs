//! Background work (O4): items claimed under a lease, so several instances never do the same
//! item twice and a crash only delays it. Expiry, closing at the provider, status sync (G5),
//! provider refunds, the outbox.

use super::{IdGen, StoreResult};
use crate::checkout::ProviderRefundStatus;
use crate::ids::{ChannelId, OutboxId, RefundId, SessionId};
use crate::money::Money;
use crate::payments::SessionStatus;
use crate::time::Millis;
use async_trait::async_trait;

/// A session to close or query at its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTask {
    pub session_id: SessionId,
    pub channel_id: ChannelId,
    pub out_trade_no: String,
    pub status: SessionStatus,
    pub attempts: i64,
}

/// A refund to drive at its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundTask {
    pub id: RefundId,
    pub channel_id: ChannelId,
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub amount: Money,
    pub total: Money,
    pub reason: String,
    pub status: ProviderRefundStatus,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundProgress {
    Succeeded {
        provider_refund_id: Option<String>,
    },
    Processing,
    /// Retry at `next_attempt_at_ms`.
    Retry {
        error: String,
        next_attempt_at_ms: Millis,
    },
    /// Give up: the exception goes back to a person.
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: OutboxId,
    pub topic: String,
    pub aggregate_id: String,
    pub payload: String,
}

/// Sessions' background work: expiry, closing at the provider, status sync (G5).
#[async_trait]
pub trait SessionWorkStore: Send + Sync {
    /// Ends pending sessions past `expires_at` (and sessions whose provider call never answered),
    /// queueing them for closing at the provider. Returns the ended session ids.
    async fn expire_sessions(&self, now_ms: Millis, limit: i64) -> StoreResult<Vec<SessionId>>;
    /// Pending sessions with a trade at the provider whose expiry has come (`expires_at <=
    /// now`), oldest first: the expiry worker asks the provider about each before ending it.
    async fn sessions_due_to_expire(&self, now_ms: Millis, limit: i64) -> StoreResult<Vec<SessionTask>>;
    async fn claim_closes(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<SessionTask>>;
    async fn mark_closed_at_provider(&self, session_id: &SessionId) -> StoreResult<()>;
    /// Pending sessions due for a status query; pushes their next query time back.
    async fn claim_syncs(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<SessionTask>>;
}

/// Refunds we asked a provider for, driven until the provider confirms.
#[async_trait]
pub trait RefundStore: Send + Sync {
    async fn claim_refunds(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<RefundTask>>;
    async fn refund_progress(
        &self,
        refund_id: &RefundId,
        progress: &RefundProgress,
        now_ms: Millis,
        ids: &dyn IdGen,
    ) -> StoreResult<()>;
}

/// Events written with the change they describe, for later consumers.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn claim_outbox(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<OutboxItem>>;
}
