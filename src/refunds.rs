//! Refunds of paid bills (PRODUCT.md R1–R3): what may be refunded, the reasons a person gives,
//! the approval a refund needs (maker-checker), and the states a refund goes through.
//!
//! The money rule (never more than was paid) is held three times: here, when a request is
//! checked; in the transaction that creates the refund (a compare-and-set on the bill's held
//! amount); and by the database itself (`bills.refund_held_fen <= total_fen`).

use crate::auth::Role;
use crate::billing::BillStatus;
use crate::ids::{BillId, RefundId};
use crate::money::Money;
use crate::payments::Provider;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// Why money goes back (R2). `Other` needs words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    DrugReturned,
    ExamCancelled,
    DuplicatePayment,
    PriceCorrection,
    Other,
}

impl RefundReason {
    pub const ALL: [RefundReason; 5] = [
        RefundReason::DrugReturned,
        RefundReason::ExamCancelled,
        RefundReason::DuplicatePayment,
        RefundReason::PriceCorrection,
        RefundReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::DrugReturned => "drug_returned",
            RefundReason::ExamCancelled => "exam_cancelled",
            RefundReason::DuplicatePayment => "duplicate_payment",
            RefundReason::PriceCorrection => "price_correction",
            RefundReason::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<RefundReason> {
        RefundReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            RefundReason::DrugReturned => "退药",
            RefundReason::ExamCancelled => "检查取消",
            RefundReason::DuplicatePayment => "重复缴费",
            RefundReason::PriceCorrection => "价格更正",
            RefundReason::Other => "其他",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            RefundReason::DrugReturned => "Drug returned",
            RefundReason::ExamCancelled => "Exam cancelled",
            RefundReason::DuplicatePayment => "Duplicate payment",
            RefundReason::PriceCorrection => "Price correction",
            RefundReason::Other => "Other",
        }
    }
}

crate::parse_from_string!(RefundReason, "refund reason");

/// Where a refund of a bill stands (R3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillRefundStatus {
    /// Waiting for a finance officer.
    Requested,
    /// One of two approvals given; waiting for the second.
    Approved,
    /// Refused by finance; the money it held is free again.
    Rejected,
    /// Sent to the provider through the original channel.
    Submitted,
    /// The provider confirmed it (its notification or our query).
    Succeeded,
    /// The provider refused it or we gave up asking; finance retries it or pays it by hand.
    Failed,
    /// Paid back outside the channel (cash or bank transfer), recorded by finance.
    Manual,
}

impl BillRefundStatus {
    pub const ALL: [BillRefundStatus; 7] = [
        BillRefundStatus::Requested,
        BillRefundStatus::Approved,
        BillRefundStatus::Rejected,
        BillRefundStatus::Submitted,
        BillRefundStatus::Succeeded,
        BillRefundStatus::Failed,
        BillRefundStatus::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BillRefundStatus::Requested => "requested",
            BillRefundStatus::Approved => "approved",
            BillRefundStatus::Rejected => "rejected",
            BillRefundStatus::Submitted => "submitted",
            BillRefundStatus::Succeeded => "succeeded",
            BillRefundStatus::Failed => "failed",
            BillRefundStatus::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<BillRefundStatus> {
        BillRefundStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Waiting for a person's approval.
    pub fn awaits_approval(self) -> bool {
        matches!(self, BillRefundStatus::Requested | BillRefundStatus::Approved)
    }

    /// The money went back to the payer.
    pub fn is_refunded(self) -> bool {
        matches!(self, BillRefundStatus::Succeeded | BillRefundStatus::Manual)
    }

    /// The transitions a refund may make. A failed refund is not final for the provider's word:
    /// a later success for the same refund number is applied (issue 13 #1).
    pub fn can_become(self, to: BillRefundStatus) -> bool {
        use BillRefundStatus::*;
        matches!(
            (self, to),
            (Requested, Approved | Rejected | Submitted)
                | (Approved, Rejected | Submitted)
                | (Submitted, Succeeded | Failed)
                | (Failed, Submitted | Succeeded | Manual)
        )
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            BillRefundStatus::Requested => "待审批",
            BillRefundStatus::Approved => "待复核",
            BillRefundStatus::Rejected => "已驳回",
            BillRefundStatus::Submitted => "退款中",
            BillRefundStatus::Succeeded => "退款成功",
            BillRefundStatus::Failed => "退款失败",
            BillRefundStatus::Manual => "人工退款",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            BillRefundStatus::Requested => "Awaiting approval",
            BillRefundStatus::Approved => "Awaiting second approval",
            BillRefundStatus::Rejected => "Rejected",
            BillRefundStatus::Submitted => "With the provider",
            BillRefundStatus::Succeeded => "Refunded",
            BillRefundStatus::Failed => "Failed",
            BillRefundStatus::Manual => "Refunded by hand",
        }
    }
}

crate::parse_from_string!(BillRefundStatus, "bill refund status");

/// The approval rule (R2): configurable amounts per installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPolicy {
    /// A finance officer may refund up to this much directly (no second person).
    pub direct_limit: Money,
    /// Above this, two finance officers approve (neither of them the requester).
    pub dual_limit: Money,
}

impl Default for RefundPolicy {
    fn default() -> Self {
        RefundPolicy {
            direct_limit: Money::from_fen(20_000).expect("constant"),
            dual_limit: Money::from_fen(500_000).expect("constant"),
        }
    }
}

impl RefundPolicy {
    /// How many approvals a refund of `amount` requested by someone of `role` needs: 0 (a
    /// finance officer, within the direct limit), 1, or 2 (above the dual limit). `None` when
    /// the role may not request refunds at all.
    pub fn approvals_needed(&self, role: Role, amount: Money) -> Option<u8> {
        match role {
            Role::Admin => None,
            _ if amount > self.dual_limit => Some(2),
            Role::Finance if amount <= self.direct_limit => Some(0),
            _ => Some(1),
        }
    }

    /// Who may approve: finance officers only (administrators look, they do not approve).
    pub fn may_approve(role: Role) -> bool {
        role == Role::Finance
    }
}

/// What is being refunded: whole item lines (their amounts add up) or an amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundPart {
    Lines(Vec<i32>),
    Amount(Money),
}

/// Why a refund request is refused before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefusal {
    #[error("the bill is not paid ({0:?}); only paid bills can be refunded")]
    NotPaid(BillStatus),
    #[error("the bill is fully refunded already")]
    FullyRefunded,
    #[error("the refund must be more than zero")]
    NotPositive,
    #[error("{asked} is more than what is left to refund ({left})")]
    TooMuch { asked: Money, left: Money },
    #[error("item line {0} is not on this bill")]
    UnknownLine(i32),
    #[error("item line {0} is named twice")]
    RepeatedLine(i32),
    #[error("write what happened (1–200 characters; required for the reason 'other')")]
    BadReasonText,
}

impl RefundRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            RefundRefusal::NotPaid(BillStatus::Void) => "bill_void",
            RefundRefusal::NotPaid(_) => "bill_not_paid",
            RefundRefusal::FullyRefunded => "bill_fully_refunded",
            RefundRefusal::NotPositive => "bad_amount",
            RefundRefusal::TooMuch { .. } => "refund_exceeds_paid",
            RefundRefusal::UnknownLine(_) => "unknown_line",
            RefundRefusal::RepeatedLine(_) => "repeated_line",
            RefundRefusal::BadReasonText => "bad_reason_text",
        }
    }
}

/// Checks a reason's words: trimmed, at most 200 characters, no control characters; required
/// for `Other`.
pub fn reason_text(reason: RefundReason, text: &str) -> Result<String, RefundRefusal> {
    let t = text.trim();
    if t.chars().count() > 200 || t.chars().any(char::is_control) || (reason == RefundReason::Other && t.is_empty()) {
        return Err(RefundRefusal::BadReasonText);
    }
    Ok(t.to_string())
}

/// What may still be refunded of a paid bill: its total less every refund that holds money
/// (everything but rejected ones).
pub fn refundable(status: BillStatus, total: Money, held: Money) -> Result<Money, RefundRefusal> {
    match status {
        BillStatus::Paid | BillStatus::PartiallyRefunded => {}
        BillStatus::Refunded => return Err(RefundRefusal::FullyRefunded),
        other => return Err(RefundRefusal::NotPaid(other)),
    }
    total.checked_sub(held).map_err(|_| RefundRefusal::NotPositive)
}

/// The amount of a refund of `part` of a bill with `items` (line, amount), given what is left.
pub fn refund_amount(part: &RefundPart, items: &[(i32, Money)], left: Money) -> Result<Money, RefundRefusal> {
    let amount = match part {
        RefundPart::Amount(m) => *m,
        RefundPart::Lines(lines) => {
            let mut seen = std::collections::BTreeSet::new();
            let mut sum = Money::ZERO;
            for l in lines {
                if !seen.insert(*l) {
                    return Err(RefundRefusal::RepeatedLine(*l));
                }
                let (_, m) = items.iter().find(|(n, _)| n == l).ok_or(RefundRefusal::UnknownLine(*l))?;
                sum = sum.checked_add(*m).map_err(|_| RefundRefusal::NotPositive)?;
            }
            sum
        }
    };
    if !amount.is_positive() {
        return Err(RefundRefusal::NotPositive);
    }
    if amount > left {
        return Err(RefundRefusal::TooMuch { asked: amount, left });
    }
    Ok(amount)
}

/// The bill's status once `refunded` of its `total` went back.
pub fn bill_status_after(total: Money, refunded: Money) -> BillStatus {
    if refunded >= total {
        BillStatus::Refunded
    } else {
        BillStatus::PartiallyRefunded
    }
}

/// Our refund number at the provider (`out_refund_no` / `out_request_no`): `RF` + the refund
/// id's 26 characters; stable across retries, so the provider pays it at most once.
pub fn refund_no(id: &RefundId) -> String {
    format!("RF{}", id.as_str().trim_start_matches("ref_").to_uppercase())
}

/// A refund as lists and the bill page show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillRefundView {
    pub id: RefundId,
    pub refund_no: String,
    pub bill_id: BillId,
    pub bill_no: String,
    pub patient_name: String,
    pub amount: Money,
    /// Item lines refunded whole (empty: an amount).
    pub lines: Vec<i32>,
    pub reason: RefundReason,
    pub reason_text: String,
    pub status: BillRefundStatus,
    pub approvals_needed: u8,
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub second_approved_by: Option<String>,
    pub decision_note: Option<String>,
    pub provider: Provider,
    pub provider_txn_id: String,
    pub paid_at_ms: Millis,
    /// The receipt of the payment refunded (F4).
    pub receipt_no: String,
    /// The negative (red, 冲红) receipt, once the money went back (F4).
    pub red_receipt_no: Option<String>,
    pub bill_total: Money,
    pub bill_refunded: Money,
    pub provider_refund_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at_ms: Millis,
    pub updated_at_ms: Millis,
    pub refunded_at_ms: Option<Millis>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn approvals_follow_the_policy() {
        let p = RefundPolicy::default();
        assert_eq!(p.approvals_needed(Role::Finance, m("200")), Some(0));
        assert_eq!(p.approvals_needed(Role::Finance, m("200.01")), Some(1));
        assert_eq!(p.approvals_needed(Role::Cashier, m("0.01")), Some(1));
        assert_eq!(p.approvals_needed(Role::Cashier, m("5000")), Some(1));
        assert_eq!(p.approvals_needed(Role::Cashier, m("5000.01")), Some(2));
        assert_eq!(p.approvals_needed(Role::Finance, m("5000.01")), Some(2));
        assert_eq!(p.approvals_needed(Role::Admin, m("1")), None);
        assert!(RefundPolicy::may_approve(Role::Finance));
        assert!(!RefundPolicy::may_approve(Role::Cashier) && !RefundPolicy::may_approve(Role::Admin));
    }

    #[test]
    fn never_more_than_was_paid() {
        let items = [(1, m("60")), (2, m("40"))];
        let left = refundable(BillStatus::Paid, m("100"), m("0")).unwrap();
        assert_eq!(refund_amount(&RefundPart::Lines(vec![1]), &items, left), Ok(m("60")));
        assert_eq!(refund_amount(&RefundPart::Amount(m("100")), &items, left), Ok(m("100")));
        let left = refundable(BillStatus::PartiallyRefunded, m("100"), m("60")).unwrap();
        assert_eq!(
            refund_amount(&RefundPart::Amount(m("40.01")), &items, left),
            Err(RefundRefusal::TooMuch { asked: m("40.01"), left: m("40") })
        );
        assert_eq!(refund_amount(&RefundPart::Lines(vec![2, 2]), &items, left), Err(RefundRefusal::RepeatedLine(2)));
        assert_eq!(refund_amount(&RefundPart::Lines(vec![3]), &items, left), Err(RefundRefusal::UnknownLine(3)));
        assert_eq!(refund_amount(&RefundPart::Lines(vec![]), &items, left), Err(RefundRefusal::NotPositive));
        assert_eq!(refund_amount(&RefundPart::Amount(m("0")), &items, left), Err(RefundRefusal::NotPositive));
        assert_eq!(refundable(BillStatus::Unpaid, m("1"), m("0")).unwrap_err().code(), "bill_not_paid");
        assert_eq!(refundable(BillStatus::Void, m("1"), m("0")).unwrap_err().code(), "bill_void");
        assert_eq!(refundable(BillStatus::Refunded, m("1"), m("1")).unwrap_err().code(), "bill_fully_refunded");
        assert_eq!(bill_status_after(m("100"), m("60")), BillStatus::PartiallyRefunded);
        assert_eq!(bill_status_after(m("100"), m("100")), BillStatus::Refunded);
    }

    #[test]
    fn statuses_move_forward_only() {
        use BillRefundStatus::*;
        assert!(Requested.can_become(Submitted) && Approved.can_become(Submitted));
        assert!(Failed.can_become(Succeeded), "a later success is applied");
        assert!(!Succeeded.can_become(Failed) && !Rejected.can_become(Submitted) && !Manual.can_become(Succeeded));
        assert!(!Requested.can_become(Succeeded));
        for s in BillRefundStatus::ALL {
            assert_eq!(BillRefundStatus::parse(s.as_str()), Some(s));
        }
        for r in RefundReason::ALL {
            assert_eq!(RefundReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(reason_text(RefundReason::Other, "  "), Err(RefundRefusal::BadReasonText));
        assert_eq!(reason_text(RefundReason::DrugReturned, ""), Ok(String::new()));
        assert_eq!(reason_text(RefundReason::Other, "a\u{0}b"), Err(RefundRefusal::BadReasonText));
    }
}
