//! Refunds of paid bills (R1–R3): asked for on the bill page, decided in finance's queue.

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::refunds::BillRefundView;
use leptos::prelude::*;

/// Refunds newest first: of one bill, or finance's queue (`queue`: waiting and failed), or all.
#[server(prefix = "/api/fn", endpoint = "refunds")]
pub async fn list_refunds(bill_id: Option<String>, queue: bool) -> Result<Vec<BillRefundView>, AppError> {
    use clinicpay::refunds::BillRefundStatus as S;
    let user = ssr::require_user(Access::Billing)?;
    let statuses: &[S] = if queue { &[S::Requested, S::Approved, S::Failed] } else { &[] };
    Ok(ssr::services()?.refunds(&user, bill_id.as_deref(), statuses, 200).await?)
}

/// One refund, with its receipts (the red receipt page).
#[server(prefix = "/api/fn", endpoint = "refund")]
pub async fn get_refund(id: String) -> Result<BillRefundView, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.refund(&user, &id).await?)
}

/// Asks for a refund: whole item lines (`lines`: "1,3"), or an amount in yuan.
#[server(prefix = "/api/fn", endpoint = "refunds/request")]
pub async fn request_refund(
    bill_id: String,
    lines: String,
    amount: String,
    reason: String,
    reason_text: String,
) -> Result<BillRefundView, AppError> {
    use clinicpay::refunds::RefundPart;
    let user = ssr::require_user(Access::MoneyDesk)?;
    let mut ls = Vec::new();
    for l in lines.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        ls.push(l.parse::<i32>().map_err(|_| AppError::bad_request("unknown_line", "item line numbers only"))?);
    }
    let part = if !ls.is_empty() {
        RefundPart::Lines(ls)
    } else {
        let m = clinicpay::Money::parse(amount.trim())
            .map_err(|e| AppError::bad_request("bad_amount", format!("amount: {e}")))?;
        RefundPart::Amount(m)
    };
    let req = clinicpay::services::refunds::RefundRequest {
        bill: bill_id,
        part,
        expect_amount: None,
        reason,
        reason_text,
        idempotency_key: None,
    };
    Ok(ssr::services()?.request_refund(&user, &ssr::client_ip(), &req).await?.refund)
}

/// Finance's step on a refund: `approve` / `reject` a waiting one (`seen` is the status the
/// page showed), `retry` / `manual` a failed one.
#[server(prefix = "/api/fn", endpoint = "refunds/act")]
pub async fn act_on_refund(
    refund_id: String,
    action: String,
    seen: String,
    note: String,
) -> Result<BillRefundView, AppError> {
    let user = ssr::require_user(Access::FinanceOfficer)?;
    let s = ssr::services()?;
    let ip = ssr::client_ip();
    let seen = clinicpay::refunds::BillRefundStatus::parse(&seen);
    Ok(match action.as_str() {
        "approve" => s.decide_refund(&user, &ip, &refund_id, true, seen, &note).await?,
        "reject" => s.decide_refund(&user, &ip, &refund_id, false, seen, &note).await?,
        "retry" => s.retry_refund(&user, &ip, &refund_id, &note).await?,
        "manual" => s.manual_refund(&user, &ip, &refund_id, &note).await?,
        _ => return Err(AppError::bad_request("bad_action", "action must be approve, reject, retry or manual")),
    })
}
