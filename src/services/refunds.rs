//! Refunds of paid bills (PRODUCT.md R1–R3).
//!
//! A cashier or finance officer asks for a refund of whole item lines or of an amount, with a
//! reason; [`RefundPolicy`] says how many finance approvals it needs (none for a finance officer's
//! small refund, one, or two different people above the dual limit). The requester never
//! approves their own request. The last approval sends it through the bill's original channel
//! (the refund worker drives it); the provider's confirmation books it and the bill shows it.
//! A refund the provider refuses is sent again or recorded as paid back by hand.

use super::auth::Actor;
use super::{ServiceError, ServiceResult, Services};
use crate::auth::{Access, CurrentUser, Role};
use crate::ids::{BillId, RefundId};
use crate::ports::{ActionRefusal, NewBillRefund, RefundDecision, RefundFilter, RequestOutcome, RequestRefusal, Step};
use crate::refunds::{
    reason_text, refund_amount, refundable, BillRefundStatus, BillRefundView, RefundPart, RefundPolicy, RefundReason,
    RefundRefusal,
};
use sha2::{Digest, Sha256};

/// A refund as a person or the HIS asks for it (fields as they came; checked here).
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// The bill's id (`bill_…`) or its number.
    pub bill: String,
    pub part: RefundPart,
    /// With item lines: the amount the caller believes they come to (must agree).
    pub expect_amount: Option<crate::Money>,
    /// A [`RefundReason`] word.
    pub reason: String,
    pub reason_text: String,
    /// The same key with the same request is the same refund (REST retries).
    pub idempotency_key: Option<String>,
}

/// What a request came to: the refund, and whether this call made it (false: a replay).
#[derive(Debug, Clone)]
pub struct Requested {
    pub refund: BillRefundView,
    pub created: bool,
}

fn rule_error(r: RefundRefusal) -> ServiceError {
    let code = r.code();
    let message = r.to_string();
    match r {
        RefundRefusal::NotPositive
        | RefundRefusal::UnknownLine(_)
        | RefundRefusal::RepeatedLine(_)
        | RefundRefusal::BadReasonText => ServiceError::Invalid { code, message },
        RefundRefusal::TooMuch { left, .. } => {
            ServiceError::Conflict { code, message, detail: Some(serde_json::json!({ "refundable": left.plain() })) }
        }
        RefundRefusal::NotPaid(_) | RefundRefusal::FullyRefunded => {
            ServiceError::Conflict { code, message, detail: None }
        }
    }
}

fn action_error(v: &BillRefundView, r: ActionRefusal) -> ServiceError {
    match r {
        ActionRefusal::State(s) => ServiceError::conflict(
            "refund_not_waiting",
            format!("refund {} is now “{}” ({}): reload and look again", v.refund_no, s.label_zh(), s.label_en()),
        ),
        ActionRefusal::OwnRequest => ServiceError::conflict(
            "refund_own_request",
            format!("you asked for refund {}: another finance officer approves it", v.refund_no),
        ),
        ActionRefusal::SameApprover => ServiceError::conflict(
            "refund_same_approver",
            format!("you approved refund {} already: the second approval is another person's", v.refund_no),
        ),
    }
}

/// A note a person writes on a step: trimmed, at most 200 characters, no control characters.
fn note(text: &str, required: bool) -> ServiceResult<String> {
    let t = text.trim();
    if (required && t.is_empty()) || t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "bad_note",
            if required { "write why (1–200 characters)" } else { "the note is at most 200 characters" },
        ));
    }
    Ok(t.to_string())
}

fn refund_id(s: &str) -> ServiceResult<RefundId> {
    RefundId::parse(s).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))
}

impl Services {
    /// Asks for a refund of a paid bill. Who may: the front desk (cashiers, finance officers);
    /// administrators do not move money.
    pub async fn request_refund(
        &self,
        caller: &CurrentUser,
        ip: &str,
        req: &RefundRequest,
    ) -> ServiceResult<Requested> {
        if !Access::Billing.allows(Some(caller.role)) || caller.role == Role::Admin {
            return Err(ServiceError::Forbidden);
        }
        let bill_id = self.refund_bill_id(&req.bill).await?;
        let bill = self.store.bill_detail(&bill_id).await?.ok_or(ServiceError::NotFound("bill"))?;
        let reason = RefundReason::parse(req.reason.trim()).ok_or_else(|| {
            ServiceError::invalid(
                "bad_reason",
                "reason must be one of drug_returned, exam_cancelled, duplicate_payment, price_correction, other",
            )
        })?;
        let text = reason_text(reason, &req.reason_text).map_err(rule_error)?;
        // A first check on what this call read; the store checks again under the bill's lock.
        let left = refundable(bill.bill.status, bill.bill.total, bill.refunded).map_err(rule_error)?;
        let items: Vec<(i32, crate::Money)> = bill.items.iter().map(|i| (i.line_no, i.amount)).collect();
        let amount = refund_amount(&req.part, &items, left).map_err(rule_error)?;
        if req.expect_amount.is_some_and(|e| e != amount) {
            return Err(ServiceError::invalid(
                "amount_mismatch",
                format!("the item lines come to {}, not the refund_amount given", amount.plain()),
            ));
        }
        let lines: Vec<(i32, crate::Money)> = match &req.part {
            RefundPart::Lines(ls) => {
                let mut ls: Vec<(i32, crate::Money)> =
                    ls.iter().filter_map(|l| items.iter().find(|(n, _)| n == l).copied()).collect();
                ls.sort_by_key(|(n, _)| *n);
                ls
            }
            RefundPart::Amount(_) => Vec::new(),
        };
        let approvals =
            self.config.refund_policy.approvals_needed(caller.role, amount).ok_or(ServiceError::Forbidden)?;
        let idempotency = match &req.idempotency_key {
            None => None,
            Some(k) => {
                let k = k.trim();
                if k.is_empty() || k.len() > 64 || !k.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ServiceError::invalid(
                        "bad_idempotency_key",
                        "Idempotency-Key is 1–64 printable ASCII characters",
                    ));
                }
                let canonical = serde_json::json!({
                    "bill": bill_id.as_str(),
                    "amount": amount.fen(),
                    "lines": lines.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                    "reason": reason.as_str(),
                    "text": text,
                });
                let hash = hex::encode(Sha256::digest(canonical.to_string().as_bytes()));
                Some((caller.id.clone(), k.to_string(), hash))
            }
        };
        let id = self.ids.new_id::<RefundId>();
        let audit = self.audit_input(
            &Actor::user(caller, ip),
            "refund_requested",
            "bill_refund",
            id.as_str(),
            serde_json::json!({
                "bill_id": bill_id.as_str(),
                "bill_no": bill.bill.bill_no,
                "amount": amount.plain(),
                "lines": lines.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                "reason": reason.as_str(),
                "reason_text": text,
                "approvals_needed": approvals,
                "before": { "bill_status": bill.bill.status.as_str(), "refunded": bill.refunded.plain() },
                "after": { "refund_status": if approvals == 0 { "submitted" } else { "requested" } },
            }),
        );
        let r = NewBillRefund {
            id,
            bill_id: bill_id.clone(),
            amount,
            lines,
            reason,
            reason_text: text,
            approvals_needed: approvals,
            requested_by: caller.id.clone(),
            requested_by_name: caller.display_name.clone(),
            idempotency,
        };
        let outcome = self.store.request_bill_refund(&r, self.now(), &audit).await?;
        match outcome {
            RequestOutcome::Created(refund) => {
                tracing::info!(refund = %refund.id, bill = %refund.bill_no, amount = %refund.amount.plain(), approvals, "refund requested");
                Ok(Requested { refund, created: true })
            }
            RequestOutcome::Replayed(refund) => Ok(Requested { refund, created: false }),
            RequestOutcome::Refused(RequestRefusal::Rule(r)) => Err(rule_error(r)),
            RequestOutcome::Refused(RequestRefusal::Waiting(w)) => Err(ServiceError::Conflict {
                code: "refund_pending",
                message: format!(
                    "bill {} has a refund waiting for approval; finance decides it before another is asked for",
                    bill.bill.bill_no
                ),
                detail: Some(serde_json::json!({ "refund_id": w.as_str() })),
            }),
            RequestOutcome::Refused(RequestRefusal::LineTaken(l)) => Err(ServiceError::conflict(
                "line_already_refunded",
                format!("item line {l} of bill {} is in another refund already", bill.bill.bill_no),
            )),
            RequestOutcome::Refused(RequestRefusal::KeyReused) => Err(ServiceError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different refund request",
            )),
        }
    }

    /// A bill named by its id or its number.
    async fn refund_bill_id(&self, s: &str) -> ServiceResult<BillId> {
        let s = s.trim();
        if s.is_empty() || s.len() > 64 {
            return Err(ServiceError::invalid("bad_order_id", "name the bill by its id or its number"));
        }
        if s.starts_with("bill_") {
            return BillId::parse(s).map_err(|e| ServiceError::invalid("bad_order_id", e.to_string()));
        }
        self.store.bill_id_by_no(s).await?.ok_or(ServiceError::NotFound("bill"))
    }

    /// A finance officer approves or rejects a waiting request. `seen` is the status the person
    /// looked at (a stale page is refused rather than acted on); a rejection needs a note.
    pub async fn decide_refund(
        &self,
        caller: &CurrentUser,
        ip: &str,
        id: &str,
        approve: bool,
        seen: Option<BillRefundStatus>,
        note_text: &str,
    ) -> ServiceResult<BillRefundView> {
        if !RefundPolicy::may_approve(caller.role) {
            return Err(ServiceError::Forbidden);
        }
        let id = refund_id(id)?;
        let v = self.store.bill_refund(&id).await?.ok_or(ServiceError::NotFound("refund"))?;
        let from = seen.unwrap_or(v.status);
        if !from.awaits_approval() || from != v.status {
            return Err(action_error(&v, ActionRefusal::State(v.status)));
        }
        let text = note(note_text, !approve)?;
        let after = match (approve, from) {
            (false, _) => BillRefundStatus::Rejected,
            (true, BillRefundStatus::Requested) if v.approvals_needed >= 2 => BillRefundStatus::Approved,
            (true, _) => BillRefundStatus::Submitted,
        };
        let action = if approve { "refund_approved" } else { "refund_rejected" };
        let audit = self.step_audit(caller, ip, action, &v, &text, after, serde_json::Value::Null);
        let step = self.step(caller, from, &text, &audit);
        let decision = if approve { RefundDecision::Approve } else { RefundDecision::Reject };
        match self.store.decide_bill_refund(&id, decision, &step).await? {
            Ok(view) => Ok(view),
            Err(r) => Err(action_error(&v, r)),
        }
    }

    /// A refund the provider refused, sent again with the same refund number.
    pub async fn retry_refund(
        &self,
        caller: &CurrentUser,
        ip: &str,
        id: &str,
        note_text: &str,
    ) -> ServiceResult<BillRefundView> {
        self.failed_refund_step(caller, ip, id, note_text, false).await
    }

    /// A refund the provider refused, recorded as paid back by hand (cash or bank transfer):
    /// booked against the bank, the bill updated. The note says how it was paid.
    pub async fn manual_refund(
        &self,
        caller: &CurrentUser,
        ip: &str,
        id: &str,
        note_text: &str,
    ) -> ServiceResult<BillRefundView> {
        self.failed_refund_step(caller, ip, id, note_text, true).await
    }

    async fn failed_refund_step(
        &self,
        caller: &CurrentUser,
        ip: &str,
        id: &str,
        note_text: &str,
        manual: bool,
    ) -> ServiceResult<BillRefundView> {
        if !RefundPolicy::may_approve(caller.role) {
            return Err(ServiceError::Forbidden);
        }
        let id = refund_id(id)?;
        let v = self.store.bill_refund(&id).await?.ok_or(ServiceError::NotFound("refund"))?;
        if v.status != BillRefundStatus::Failed {
            return Err(ServiceError::conflict(
                "refund_not_failed",
                format!(
                    "refund {} is “{}” ({}): only a failed refund is sent again or paid by hand",
                    v.refund_no,
                    v.status.label_zh(),
                    v.status.label_en()
                ),
            ));
        }
        let text = note(note_text, manual)?;
        let after = if manual { BillRefundStatus::Manual } else { BillRefundStatus::Submitted };
        let action = if manual { "refund_manual" } else { "refund_retried" };
        let audit = self.step_audit(caller, ip, action, &v, &text, after, serde_json::json!(v.last_error));
        let step = self.step(caller, v.status, &text, &audit);
        let done = if manual {
            self.store.manual_bill_refund(&id, &step, self.ids.as_ref()).await?
        } else {
            self.store.retry_bill_refund(&id, &step).await?
        };
        done.map_err(|r| action_error(&v, r))
    }

    /// The audit line of a step on a refund: what it was, what it becomes, the person's note
    /// (and the provider's last error, for steps on a failed refund).
    #[allow(clippy::too_many_arguments)]
    fn step_audit(
        &self,
        caller: &CurrentUser,
        ip: &str,
        action: &str,
        v: &BillRefundView,
        text: &str,
        after: BillRefundStatus,
        last_error: serde_json::Value,
    ) -> crate::ports::AuditInput {
        let mut detail = serde_json::json!({
            "refund_no": v.refund_no,
            "bill_no": v.bill_no,
            "amount": v.amount.plain(),
            "note": text,
            "before": { "status": v.status.as_str() },
            "after": { "status": after.as_str() },
        });
        if !last_error.is_null() {
            detail["last_error"] = last_error;
        }
        self.audit_input(&Actor::user(caller, ip), action, "bill_refund", v.id.as_str(), detail)
    }

    fn step<'a>(
        &self,
        caller: &'a CurrentUser,
        from: BillRefundStatus,
        text: &'a str,
        audit: &'a crate::ports::AuditInput,
    ) -> Step<'a> {
        Step { from, actor_id: &caller.id, actor_name: &caller.display_name, note: text, at_ms: self.now(), audit }
    }

    pub async fn refund(&self, caller: &CurrentUser, id: &str) -> ServiceResult<BillRefundView> {
        if !Access::Billing.allows(Some(caller.role)) {
            return Err(ServiceError::Forbidden);
        }
        let id = refund_id(id)?;
        self.store.bill_refund(&id).await?.ok_or(ServiceError::NotFound("refund"))
    }

    /// Refunds newest first: of one bill (by id or number), in some states, or all.
    pub async fn refunds(
        &self,
        caller: &CurrentUser,
        bill: Option<&str>,
        statuses: &[BillRefundStatus],
        limit: i64,
    ) -> ServiceResult<Vec<BillRefundView>> {
        if !Access::Billing.allows(Some(caller.role)) {
            return Err(ServiceError::Forbidden);
        }
        let bill_id = match bill.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) => Some(self.refund_bill_id(b).await?),
            None => None,
        };
        Ok(self
            .store
            .list_bill_refunds(&RefundFilter { statuses: statuses.to_vec(), bill_id, limit: limit.clamp(1, 500) })
            .await?)
    }

    /// (waiting for approval, failed): finance's to-do counts.
    pub async fn refund_counts(&self, caller: &CurrentUser) -> ServiceResult<(i64, i64)> {
        if !Access::Finance.allows(Some(caller.role)) {
            return Err(ServiceError::Forbidden);
        }
        Ok(self.store.refund_counts().await?)
    }
}
