//! Checkout sessions (C1–C5, C8): one session pays 1..N payables (bills today) of one patient
//! through one channel with one QR code; each payable's amount is frozen at creation; the payment
//! is allocated to every payable exactly once, by the rules in [`apply`].

pub mod apply;
pub mod counter;
pub mod payable;

use crate::ids::{BillId, ChannelId, ExceptionId, OutTradeNo, PatientId, SessionId};
use crate::money::Money;
use crate::payments::{PayAction, PayMethod, Provider, SessionStatus};
use crate::time::{Millis, MINUTE_MS};
use payable::{PayableId, PayableStatus};
use serde::{Deserialize, Serialize};

pub const DEFAULT_TIMEOUT_MINUTES: i64 = 15;
pub const MAX_TIMEOUT_MINUTES: i64 = 120;
pub const MAX_BILLS_PER_SESSION: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    #[error("choose at least one bill")]
    NoBills,
    #[error("at most {MAX_BILLS_PER_SESSION} bills per payment")]
    TooManyBills,
    #[error("bill {0} is listed twice")]
    DuplicateBill(String),
    #[error("malformed id: {0}")]
    BadId(String),
    #[error("unknown payment method {0:?}: use alipay, wechat or bank_card")]
    BadMethod(String),
    #[error("payment method {0} cannot be shown as a QR code")]
    NotQrMethod(String),
    #[error("timeout_minutes must be a whole number from 1 to {MAX_TIMEOUT_MINUTES}")]
    BadTimeout,
    #[error("Idempotency-Key must be 1–64 visible ASCII characters")]
    BadIdempotencyKey,
}

impl CheckoutError {
    pub fn code(&self) -> &'static str {
        match self {
            CheckoutError::NoBills => "no_bills",
            CheckoutError::TooManyBills => "too_many_bills",
            CheckoutError::DuplicateBill(_) => "duplicate_bill",
            CheckoutError::BadId(_) => "bad_id",
            CheckoutError::BadMethod(_) => "bad_payment_method",
            CheckoutError::NotQrMethod(_) => "bad_payment_method",
            CheckoutError::BadTimeout => "bad_timeout",
            CheckoutError::BadIdempotencyKey => "bad_idempotency_key",
        }
    }
}

/// A validated request to open a checkout session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    pub patient_id: PatientId,
    pub bill_ids: Vec<BillId>,
    pub method: PayMethod,
    pub timeout_minutes: i64,
}

impl SessionRequest {
    /// Parses what the API or the charge screen sent.
    pub fn parse(
        patient_id: &str,
        bill_ids: &[String],
        method: &str,
        timeout_minutes: Option<i64>,
    ) -> Result<SessionRequest, CheckoutError> {
        let CounterRequest { patient_id, bill_ids: ids } = CounterRequest::parse(patient_id, bill_ids)?;
        let method = PayMethod::parse(method.trim())
            .ok_or_else(|| CheckoutError::BadMethod(method.chars().take(32).collect()))?;
        if !method.is_qr() {
            return Err(CheckoutError::NotQrMethod(method.as_str().to_string()));
        }
        let timeout_minutes = timeout_minutes.unwrap_or(DEFAULT_TIMEOUT_MINUTES);
        if !(1..=MAX_TIMEOUT_MINUTES).contains(&timeout_minutes) {
            return Err(CheckoutError::BadTimeout);
        }
        Ok(SessionRequest { patient_id, bill_ids: ids, method, timeout_minutes })
    }

    pub fn expires_at(&self, now: Millis) -> Millis {
        now + self.timeout_minutes * MINUTE_MS
    }

    /// A fingerprint of the request, to tell a retry (same key, same body) from a misuse of the
    /// key (same key, other body). Bill order does not matter.
    pub fn fingerprint(&self) -> String {
        let mut bills: Vec<&str> = self.bill_ids.iter().map(|b| b.as_str()).collect();
        bills.sort_unstable();
        format!("{}|{}|{}|{}", self.patient_id, bills.join(","), self.method.as_str(), self.timeout_minutes)
    }
}

/// The patient and bills of a payment, checked (C9 counter payments use it as it is; a QR
/// session adds the method and its timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRequest {
    pub patient_id: PatientId,
    pub bill_ids: Vec<BillId>,
}

impl CounterRequest {
    pub fn parse(patient_id: &str, bill_ids: &[String]) -> Result<CounterRequest, CheckoutError> {
        let patient_id = PatientId::parse(patient_id).map_err(|e| CheckoutError::BadId(e.to_string()))?;
        if bill_ids.is_empty() {
            return Err(CheckoutError::NoBills);
        }
        if bill_ids.len() > MAX_BILLS_PER_SESSION {
            return Err(CheckoutError::TooManyBills);
        }
        let mut ids: Vec<BillId> = Vec::with_capacity(bill_ids.len());
        for raw in bill_ids {
            let id = BillId::parse(raw).map_err(|e| CheckoutError::BadId(e.to_string()))?;
            if ids.contains(&id) {
                return Err(CheckoutError::DuplicateBill(id.into_string()));
            }
            ids.push(id);
        }
        Ok(CounterRequest { patient_id, bill_ids: ids })
    }

    /// The patient and the bills in any order (see [`SessionRequest::fingerprint`]).
    pub fn fingerprint(&self) -> String {
        let mut bills: Vec<&str> = self.bill_ids.iter().map(|b| b.as_str()).collect();
        bills.sort_unstable();
        format!("{}|{}", self.patient_id, bills.join(","))
    }
}

pub fn valid_idempotency_key(k: &str) -> Result<(), CheckoutError> {
    if (1..=64).contains(&k.len()) && k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        Ok(())
    } else {
        Err(CheckoutError::BadIdempotencyKey)
    }
}

/// One payable in a session, with its frozen amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPayable {
    pub payable: PayableId,
    /// What people call it: the bill number.
    pub number: String,
    pub department_zh: String,
    pub department_en: String,
    pub amount: Money,
    /// The payable's status now.
    pub status: PayableStatus,
    /// The receipt number, once paid by this session.
    pub receipt_no: Option<String>,
}

impl SessionPayable {
    /// The bill, when the payable is one.
    pub fn bill_id(&self) -> Option<&BillId> {
        self.payable.bill()
    }
}

/// A checkout session as the API, the charge screen and the receipt show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: SessionId,
    pub patient_id: PatientId,
    pub patient_name: String,
    pub mrn: String,
    pub provider: Provider,
    pub method: PayMethod,
    pub channel_id: ChannelId,
    pub out_trade_no: OutTradeNo,
    pub status: SessionStatus,
    pub total: Money,
    pub created_at_ms: Millis,
    pub expires_at_ms: Millis,
    /// What the payer is given (the QR content, a redirect, …), once the provider answered.
    pub pay_action: Option<PayAction>,
    pub paid_at_ms: Option<Millis>,
    pub paid_amount: Option<Money>,
    pub provider_txn_id: Option<String>,
    pub close_reason: Option<String>,
    pub replaced_by: Option<SessionId>,
    pub payables: Vec<SessionPayable>,
    /// The provider's word on the payer's last failed attempt (a declined card), while the
    /// session stays payable: the counter tells the cashier at once.
    pub payer_note: Option<PayerNote>,
    /// What the cashier recorded, for a counter payment (C9): cash tendered and change, or
    /// the POS slip.
    pub counter: Option<counter::CounterRecord>,
}

/// A failed attempt by the payer that the provider reported (the order stays payable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerNote {
    /// The provider's code, e.g. `CARD_DECLINED`, `INSUFFICIENT_FUNDS` (validated: A–Z, 0–9, `_`).
    pub code: String,
    pub at_ms: Millis,
}

impl PayerNote {
    /// A provider's failure code as we keep it: upper-case letters, digits and `_`, at most 32;
    /// anything else becomes `UNKNOWN` (the raw notification keeps the original).
    pub fn clean_code(code: &str) -> String {
        let ok = !code.is_empty()
            && code.len() <= 32
            && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            code.to_string()
        } else {
            "UNKNOWN".to_string()
        }
    }
}

impl SessionView {
    /// Seconds until the QR expires (0 once past).
    pub fn seconds_left(&self, now: Millis) -> i64 {
        ((self.expires_at_ms - now) / 1000).max(0)
    }

    /// The QR code's content, when the payer is given one.
    pub fn qr_content(&self) -> Option<&str> {
        match &self.pay_action {
            Some(PayAction::QrCode(c)) => Some(c),
            _ => None,
        }
    }

    /// The bills this session pays.
    pub fn bill_ids(&self) -> Vec<BillId> {
        self.payables.iter().filter_map(|p| p.bill_id().cloned()).collect()
    }
}

/// Why a session stopped being pending without a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Expired,
    Cancelled,
    /// A new QR replaced it ("refresh").
    Refreshed,
    /// The provider refused to create the trade.
    CreateFailed,
    /// The provider closed the trade (the payer cancelled, the card was declined too often,
    /// the provider's own expiry): found by a status query.
    ClosedAtProvider,
}

impl EndReason {
    pub fn status(self) -> SessionStatus {
        match self {
            EndReason::Expired => SessionStatus::Expired,
            EndReason::Cancelled => SessionStatus::Cancelled,
            EndReason::Refreshed => SessionStatus::Closed,
            EndReason::CreateFailed => SessionStatus::Failed,
            EndReason::ClosedAtProvider => SessionStatus::Expired,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Cancelled => "cancelled",
            EndReason::Refreshed => "refreshed",
            EndReason::CreateFailed => "create_failed",
            EndReason::ClosedAtProvider => "closed_at_provider",
        }
    }
}

/// What kind of trouble a payment exception records (C4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionKind {
    AmountMismatch,
    LatePayment,
    BillsUnavailable,
    RefundFailed,
    /// A provider transaction already booked was reported again for another order or amount:
    /// nothing is booked, a person finds out why.
    TxnConflict,
}

impl ExceptionKind {
    pub const ALL: [ExceptionKind; 5] = [
        ExceptionKind::AmountMismatch,
        ExceptionKind::LatePayment,
        ExceptionKind::BillsUnavailable,
        ExceptionKind::RefundFailed,
        ExceptionKind::TxnConflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionKind::AmountMismatch => "amount_mismatch",
            ExceptionKind::LatePayment => "late_payment",
            ExceptionKind::BillsUnavailable => "bills_unavailable",
            ExceptionKind::RefundFailed => "refund_failed",
            ExceptionKind::TxnConflict => "txn_conflict",
        }
    }

    pub fn parse(s: &str) -> Option<ExceptionKind> {
        ExceptionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a payment exception stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionStatus {
    /// Needs a person (e.g. an automatic refund failed).
    Open,
    /// Money kept for a cashier's decision.
    Held,
    /// A refund is queued at the provider.
    RefundPending,
    Refunded,
    Resolved,
}

impl ExceptionStatus {
    pub const ALL: [ExceptionStatus; 5] = [
        ExceptionStatus::Open,
        ExceptionStatus::Held,
        ExceptionStatus::RefundPending,
        ExceptionStatus::Refunded,
        ExceptionStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionStatus::Open => "open",
            ExceptionStatus::Held => "held",
            ExceptionStatus::RefundPending => "refund_pending",
            ExceptionStatus::Refunded => "refunded",
            ExceptionStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<ExceptionStatus> {
        ExceptionStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Still needs something done.
    pub fn is_open(self) -> bool {
        matches!(self, ExceptionStatus::Open | ExceptionStatus::Held | ExceptionStatus::RefundPending)
    }

    /// A person may decide it (refund or resolve).
    pub fn can_be_decided(self) -> bool {
        matches!(self, ExceptionStatus::Open | ExceptionStatus::Held)
    }
}

crate::parse_from_string!(ExceptionKind, "exception kind");
crate::parse_from_string!(ExceptionStatus, "exception status");

/// A refund we asked a provider for, as the refund worker drives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderRefundStatus {
    Pending,
    Processing,
    Succeeded,
    Failed,
}

impl ProviderRefundStatus {
    pub const ALL: [ProviderRefundStatus; 4] = [
        ProviderRefundStatus::Pending,
        ProviderRefundStatus::Processing,
        ProviderRefundStatus::Succeeded,
        ProviderRefundStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderRefundStatus::Pending => "pending",
            ProviderRefundStatus::Processing => "processing",
            ProviderRefundStatus::Succeeded => "succeeded",
            ProviderRefundStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ProviderRefundStatus> {
        ProviderRefundStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// No more attempts are made (the worker stops). `Failed` is final for our attempts but
    /// not for the provider's word: see [`ProviderRefundStatus::can_become`].
    pub fn is_final(self) -> bool {
        matches!(self, ProviderRefundStatus::Succeeded | ProviderRefundStatus::Failed)
    }

    /// The transitions a refund may make. The provider is the authority on money that left:
    /// a refund we gave up on (WeChat's REFUND.ABNORMAL, five failed submissions) that the
    /// provider later reports as succeeded is booked as succeeded; a refund finance decides
    /// again is the same refund (same `out_refund_no`) submitted again, so the provider can
    /// never pay it twice. A succeeded refund never changes.
    pub fn can_become(self, to: ProviderRefundStatus) -> bool {
        use ProviderRefundStatus::*;
        matches!((self, to), (Pending | Processing, Processing | Succeeded | Failed) | (Failed, Succeeded | Pending))
    }
}

crate::parse_from_string!(ProviderRefundStatus, "refund status");

/// What happens to money that arrives for a session that can no longer take it (C4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePaymentPolicy {
    /// Refund it through its channel automatically.
    AutoRefund,
    /// Hold it for a cashier's decision.
    Hold,
}

/// A payment exception (C4) as the Exceptions page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionView {
    pub id: ExceptionId,
    pub kind: ExceptionKind,
    pub session_id: Option<SessionId>,
    pub patient_name: Option<String>,
    pub provider: Provider,
    pub out_trade_no: String,
    pub provider_txn_id: String,
    pub amount: Money,
    pub expected: Option<Money>,
    pub status: ExceptionStatus,
    pub detail: String,
    pub resolution: Option<String>,
    pub created_at_ms: Millis,
    pub updated_at_ms: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bill(n: u128) -> String {
        BillId::from_u128(n).into_string()
    }

    #[test]
    fn parses_requests() {
        let p = PatientId::from_u128(1).into_string();
        let r = SessionRequest::parse(&p, &[bill(1), bill(2)], "alipay", None).unwrap();
        assert_eq!(r.method, PayMethod::AlipayQr);
        assert_eq!(r.timeout_minutes, 15);
        assert_eq!(r.expires_at(0), 15 * 60_000);
        let swapped = SessionRequest::parse(&p, &[bill(2), bill(1)], "alipay_qr", Some(15)).unwrap();
        assert_eq!(r.fingerprint(), swapped.fingerprint(), "order of bills does not matter");
        let other = SessionRequest::parse(&p, &[bill(1)], "alipay", None).unwrap();
        assert_ne!(r.fingerprint(), other.fingerprint());
    }

    #[test]
    fn refuses_bad_requests() {
        let p = PatientId::from_u128(1).into_string();
        assert_eq!(SessionRequest::parse(&p, &[], "alipay", None), Err(CheckoutError::NoBills));
        assert!(matches!(
            SessionRequest::parse(&p, &[bill(1), bill(1)], "alipay", None),
            Err(CheckoutError::DuplicateBill(_))
        ));
        assert!(matches!(SessionRequest::parse(&p, &["x".into()], "alipay", None), Err(CheckoutError::BadId(_))));
        assert!(matches!(SessionRequest::parse("pat_1", &[bill(1)], "alipay", None), Err(CheckoutError::BadId(_))));
        assert!(matches!(SessionRequest::parse(&p, &[bill(1)], "paypal", None), Err(CheckoutError::BadMethod(_))));
        assert!(matches!(
            SessionRequest::parse(&p, &[bill(1)], "alipay_page", None),
            Err(CheckoutError::NotQrMethod(_))
        ));
        for t in [0, -5, 121, 100_000] {
            assert_eq!(SessionRequest::parse(&p, &[bill(1)], "wechat", Some(t)), Err(CheckoutError::BadTimeout));
        }
        let many: Vec<String> = (0..51).map(bill).collect();
        assert_eq!(SessionRequest::parse(&p, &many, "alipay", None), Err(CheckoutError::TooManyBills));
        assert!(valid_idempotency_key("abc-123").is_ok());
        assert!(valid_idempotency_key("").is_err());
        assert!(valid_idempotency_key("has space").is_err());
        assert!(valid_idempotency_key(&"k".repeat(65)).is_err());
    }
}
