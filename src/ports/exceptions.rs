//! Payment exceptions (C4): money that could not be applied as asked, and people's decisions.

use super::{AuditInput, IdGen, StoreResult};
use crate::checkout::{ExceptionStatus, ExceptionView};
use crate::ids::ExceptionId;
use crate::time::Millis;
use async_trait::async_trait;

/// A person's decision on an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionDecision {
    /// Refund the money through its channel.
    Refund,
    /// Close it with a note (e.g. settled at the counter).
    Resolve,
}

#[async_trait]
pub trait ExceptionStore: Send + Sync {
    async fn list_exceptions(&self, open_only: bool, limit: i64) -> StoreResult<Vec<ExceptionView>>;
    /// A person's decision on a held or open exception: `Refund` queues a refund, `Resolve`
    /// closes it with the note. Compare-and-set on the status; `Err(status)` when it was
    /// decided already.
    async fn decide_exception(
        &self,
        exception_id: &ExceptionId,
        decision: ExceptionDecision,
        note: &str,
        actor: &str,
        now_ms: Millis,
        ids: &dyn IdGen,
        audit: &AuditInput,
    ) -> StoreResult<Result<(), ExceptionStatus>>;
}
