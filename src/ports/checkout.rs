//! Checkout sessions and the application of verified payments (C1–C5, C8).

use super::{IdGen, StoreResult};
use crate::checkout::apply::{ApplyResult, PaymentRules, VerifiedPayment};
use crate::checkout::counter::{CounterRecord, CounterTender, TenderError};
use crate::checkout::payable::PayableId;
use crate::checkout::{EndReason, SessionView};
use crate::ids::{ChannelId, OutTradeNo, PatientId, SessionId};
use crate::payments::{PayAction, PayMethod, Provider, SessionStatus};
use crate::time::Millis;
use async_trait::async_trait;

/// The idempotency key of a request that opens a session: who sent it, the key, and a
/// fingerprint of the request (to tell a retry from a misuse of the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
}

/// A session to open; the store freezes each payable's amount from the payable itself.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub patient_id: PatientId,
    pub channel_id: ChannelId,
    pub provider: Provider,
    pub method: PayMethod,
    pub out_trade_no: OutTradeNo,
    pub payables: Vec<PayableId>,
    pub expires_at_ms: Millis,
    pub created_at_ms: Millis,
    pub created_by: String,
    pub idempotency: Option<IdempotencyKey>,
    /// The session this one replaces ("refresh QR"), ended in the same transaction.
    pub replaces: Option<SessionId>,
    /// The audit line of the person who opened it (S3), written in the same transaction when
    /// the session is created (not when an idempotent retry finds it).
    pub audit: Option<super::AuditInput>,
}

/// Why a session could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRefusal {
    UnknownPatient,
    UnknownPayable(PayableId),
    OtherPatient(PayableId),
    NotPayable {
        payable: PayableId,
        status: String,
    },
    InActiveSession {
        payable: PayableId,
        session_id: Option<SessionId>,
    },
    /// The idempotency key was used for a different request.
    IdempotencyReused {
        session_id: SessionId,
    },
    /// The session to replace is no longer pending.
    ReplacedNotPending {
        status: SessionStatus,
    },
}

/// Why a counter payment was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterRefusal {
    Session(SessionRefusal),
    Tender(TenderError),
    /// This POS slip already paid another session.
    SlipUsed,
}

#[derive(Debug, Clone)]
pub enum CreateOutcome {
    Created(SessionView),
    /// Same idempotency key and request: the session made the first time.
    Existing(SessionView),
}

#[async_trait]
pub trait CheckoutStore: Send + Sync {
    /// Opens a session in one transaction: checks every payable (exists, this patient's,
    /// unpaid, in no active session), freezes amounts, marks them paying, records the
    /// idempotency key, and ends the replaced session if any.
    async fn create_session(&self, s: &NewSession) -> StoreResult<Result<CreateOutcome, SessionRefusal>>;
    /// Stores what the provider gave us to show the payer (compare-and-set on a pending session).
    async fn set_pay_action(&self, session_id: &SessionId, action: &PayAction, at_ms: Millis) -> StoreResult<bool>;
    /// Ends a pending session (CAS) and releases its payables; `close_at_provider` queues the
    /// trade for closing. `Err(status)` when the session was not pending.
    async fn end_session(
        &self,
        session_id: &SessionId,
        reason: EndReason,
        at_ms: Millis,
        close_at_provider: bool,
    ) -> StoreResult<Result<(), SessionStatus>>;
    /// A person cancels a pending session: [`CheckoutStore::end_session`] with `Cancelled` and
    /// the close queued, and their audit line, in one transaction.
    async fn cancel_session(
        &self,
        session_id: &SessionId,
        at_ms: Millis,
        audit: &super::AuditInput,
    ) -> StoreResult<Result<(), SessionStatus>>;
    /// Records the provider's word on a failed attempt by the payer (a declined card) on the
    /// pending session of `out_trade_no`, unless a newer note is there; the session's id when
    /// one was written.
    async fn note_payer_attempt(&self, out_trade_no: &str, code: &str, at_ms: Millis)
        -> StoreResult<Option<SessionId>>;
    async fn session(&self, session_id: &SessionId) -> StoreResult<Option<SessionView>>;
    async fn session_by_trade(&self, out_trade_no: &OutTradeNo) -> StoreResult<Option<SessionView>>;
    /// Pending sessions of a patient (the charge screen resumes them).
    async fn pending_sessions_of(&self, patient_id: &PatientId) -> StoreResult<Vec<SessionView>>;
    async fn count_pending_sessions(&self) -> StoreResult<i64>;

    /// C3: applies verified payments, all in one durable commit (group commit). For each, the
    /// store reads the session and whether the transaction is booked (under row locks), asks
    /// `rules` for the booking and writes it — the ordinary case for the whole batch with
    /// set-based statements, anything else (or a batch whose set-based write fails) one by one,
    /// each in its own savepoint. The store decides nothing itself.
    async fn apply_payments(
        &self,
        ps: &[VerifiedPayment],
        rules: &PaymentRules,
        ids: &dyn IdGen,
    ) -> StoreResult<Vec<StoreResult<ApplyResult>>>;

    /// C9: a counter payment (cash, a POS slip), in one transaction: opens the session as
    /// [`CheckoutStore::create_session`] does, checks the tender against the frozen total, applies
    /// the payment through `rules` as if the provider had reported it, and keeps what the
    /// cashier recorded (with the cashier's open shift, if any). A retry with the same
    /// idempotency key returns what the first call recorded.
    async fn record_counter_payment(
        &self,
        s: &NewSession,
        tender: &CounterTender,
        cashier_name: &str,
        rules: &PaymentRules,
        ids: &dyn IdGen,
    ) -> StoreResult<Result<(SessionView, CounterRecord), CounterRefusal>>;
    /// What the cashier recorded for a counter session.
    async fn counter_record(&self, session_id: &SessionId) -> StoreResult<Option<CounterRecord>>;

    /// One verified payment, in its own commit.
    async fn apply_payment(
        &self,
        p: &VerifiedPayment,
        rules: &PaymentRules,
        ids: &dyn IdGen,
    ) -> StoreResult<ApplyResult> {
        self.apply_payments(std::slice::from_ref(p), rules, ids)
            .await?
            .pop()
            .unwrap_or_else(|| Err(super::StoreError::Internal(anyhow::anyhow!("no result"))))
    }
}
