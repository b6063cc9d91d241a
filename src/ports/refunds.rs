//! Refunds of paid bills (R1–R3): requested, approved or rejected (maker-checker), sent to the
//! provider through the original channel, confirmed, retried or paid by hand.

use super::{AuditInput, IdGen, StoreResult};
use crate::checkout::apply::OutboxEvent;
use crate::ids::{BillId, RefundId};
use crate::money::Money;
use crate::refunds::{BillRefundStatus, BillRefundView, RefundReason, RefundRefusal};
use crate::time::Millis;
use async_trait::async_trait;

/// A refund request, checked by the service; the store checks the money again under the lock.
#[derive(Debug, Clone)]
pub struct NewBillRefund {
    pub id: RefundId,
    pub bill_id: BillId,
    pub amount: Money,
    /// Item lines refunded whole, with their amounts (empty: an amount).
    pub lines: Vec<(i32, Money)>,
    pub reason: RefundReason,
    pub reason_text: String,
    pub approvals_needed: u8,
    pub requested_by: String,
    pub requested_by_name: String,
    /// `(scope, key, hash of the request)`: the same key and request is the same refund.
    pub idempotency: Option<(String, String, String)>,
}

/// Why the store did not create a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRefusal {
    /// The bill's state or the money left (read under the lock).
    Rule(RefundRefusal),
    /// Another request for this bill is waiting for approval.
    Waiting(RefundId),
    /// An item line is in another refund already.
    LineTaken(i32),
    /// The idempotency key was used for another request.
    KeyReused,
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    Created(BillRefundView),
    /// The same idempotency key and request: the refund made the first time.
    Replayed(BillRefundView),
    Refused(RequestRefusal),
}

/// A finance officer's decision on a waiting request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundDecision {
    Approve,
    Reject,
}

/// Why a decision or an action on a refund was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRefusal {
    /// Not in a state that allows it (decided already, not failed, …).
    State(BillRefundStatus),
    /// The requester may not approve their own request.
    OwnRequest,
    /// The second approval must come from another person.
    SameApprover,
}

/// The people behind a step.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    /// The status the refund had when the person looked (the compare-and-set's guard).
    pub from: BillRefundStatus,
    pub actor_id: &'a str,
    pub actor_name: &'a str,
    pub note: &'a str,
    pub at_ms: Millis,
    pub audit: &'a AuditInput,
}

/// Which refunds to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefundFilter {
    pub statuses: Vec<BillRefundStatus>,
    pub bill_id: Option<BillId>,
    pub limit: i64,
}

/// What a provider's refund report is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRef {
    pub id: RefundId,
    pub out_trade_no: String,
    pub amount: Money,
    pub provider: crate::payments::Provider,
}

#[async_trait]
pub trait BillRefundStore: Send + Sync {
    /// One transaction: the idempotency key, the bill locked and its held amount raised by
    /// compare-and-set (never past its total), the lines, the refund, the audit line; with no
    /// approval needed, the provider refund queued too.
    async fn request_bill_refund(
        &self,
        r: &NewBillRefund,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<RequestOutcome>;
    /// Approve or reject a waiting request (compare-and-set on its status); a rejected refund
    /// frees the money it held; the last approval queues the provider refund.
    async fn decide_bill_refund(
        &self,
        id: &RefundId,
        decision: RefundDecision,
        step: &Step<'_>,
    ) -> StoreResult<Result<BillRefundView, ActionRefusal>>;
    /// A failed refund sent again (same refund number, so the provider pays it at most once).
    async fn retry_bill_refund(
        &self,
        id: &RefundId,
        step: &Step<'_>,
    ) -> StoreResult<Result<BillRefundView, ActionRefusal>>;
    /// A failed refund paid back by hand: booked against the bank, the bill updated.
    async fn manual_bill_refund(
        &self,
        id: &RefundId,
        step: &Step<'_>,
        ids: &dyn IdGen,
    ) -> StoreResult<Result<BillRefundView, ActionRefusal>>;
    async fn bill_refund(&self, id: &RefundId) -> StoreResult<Option<BillRefundView>>;
    async fn list_bill_refunds(&self, filter: &RefundFilter) -> StoreResult<Vec<BillRefundView>>;
    /// (waiting for approval, failed) — what finance's home page counts.
    async fn refund_counts(&self) -> StoreResult<(i64, i64)>;
    /// A bill by its number (refund requests name bills either way).
    async fn bill_id_by_no(&self, bill_no: &str) -> StoreResult<Option<BillId>>;
    /// The refund a provider's report names, by our refund number.
    async fn refund_ref(&self, out_refund_no: &str) -> StoreResult<Option<RefundRef>>;
}

/// The event a finished refund of a bill writes (topic `bill.partially_refunded` or `bill.refunded`).
pub fn refund_event(
    id: crate::ids::OutboxId,
    view: &BillRefundView,
    refunded_total: Money,
    at_ms: Millis,
    manual: bool,
) -> OutboxEvent {
    let status = crate::refunds::bill_status_after(view.bill_total, refunded_total);
    OutboxEvent {
        id,
        topic: if status == crate::billing::BillStatus::Refunded { "bill.refunded" } else { "bill.partially_refunded" },
        aggregate_id: view.bill_id.to_string(),
        payload: crate::checkout::apply::OutboxPayload::BillRefunded {
            bill_id: view.bill_id.clone(),
            refund_id: view.id.clone(),
            refund_no: view.refund_no.clone(),
            amount: view.amount,
            refunded_total,
            reason: view.reason,
            provider: view.provider,
            manual,
            refunded_at_ms: at_ms,
            red_receipt_no: view.red_receipt_no.clone(),
            receipt_no: Some(view.receipt_no.clone()),
        },
    }
}
