//! Refunds of paid bills over REST, as the hospital's notes name them (6.2 退款接口):
//! `POST /api/payment/refunds`, `GET /api/payment/refunds/{refund_id}`, and the list by bill and
//! status. A request goes through the same approval rules as one made on the bill page.

use super::types::ErrorBody;
use super::{idempotency_key, parse_json, ApiCaller, ApiError, ApiResult, HttpState};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clinicpay::money::Money;
use clinicpay::refunds::{BillRefundStatus, BillRefundView, RefundPart};
use clinicpay::services::refunds::RefundRequest;
use clinicpay::time::rfc3339_beijing;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new().routes(routes!(create_refund, list_refunds)).routes(routes!(get_refund))
}

/// A refund request. Name the money either as `refund_amount` or as whole item lines (`items`);
/// with both, they must agree.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// The bill: its id (`bill_…`) or its number.
    pub order_id: String,
    /// Yuan as a decimal string ("12.50"); a JSON number is refused (no floats for money).
    #[serde(default)]
    pub refund_amount: Option<String>,
    /// Free text: why (required when `reason_code` is `other`, which is the default).
    #[serde(default)]
    pub refund_reason: String,
    /// drug_returned, exam_cancelled, duplicate_payment, price_correction or other (default).
    #[serde(default)]
    pub reason_code: Option<String>,
    /// Item line numbers refunded whole.
    #[serde(default)]
    pub items: Option<Vec<i32>>,
}

/// A refund and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Refund {
    pub refund_id: String,
    /// Our refund number at the provider (out_refund_no / out_request_no).
    pub refund_no: String,
    pub order_id: String,
    pub bill_no: String,
    pub refund_amount: String,
    pub items: Vec<i32>,
    pub reason_code: String,
    pub refund_reason: String,
    /// requested, approved (one of two approvals), rejected, submitted (with the provider),
    /// succeeded, failed (finance retries or pays by hand), manual (paid back by hand).
    pub status: String,
    pub approvals_needed: u8,
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub second_approved_by: Option<String>,
    pub provider: String,
    pub bill_total: String,
    pub bill_refunded: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub refunded_at: Option<String>,
    /// The receipt of the payment refunded (`R<year>-<8 digits>`).
    pub receipt_no: String,
    /// The refund's negative (red) receipt once the money went back (`H<year>-<8 digits>`).
    pub red_receipt_no: Option<String>,
}

impl From<&BillRefundView> for Refund {
    fn from(v: &BillRefundView) -> Self {
        Refund {
            refund_id: v.id.to_string(),
            refund_no: v.refund_no.clone(),
            order_id: v.bill_id.to_string(),
            bill_no: v.bill_no.clone(),
            refund_amount: v.amount.plain(),
            items: v.lines.clone(),
            reason_code: v.reason.as_str().to_string(),
            refund_reason: v.reason_text.clone(),
            status: v.status.as_str().to_string(),
            approvals_needed: v.approvals_needed,
            requested_by: v.requested_by.clone(),
            approved_by: v.approved_by.clone(),
            second_approved_by: v.second_approved_by.clone(),
            provider: v.provider.as_str().to_string(),
            bill_total: v.bill_total.plain(),
            bill_refunded: v.bill_refunded.plain(),
            last_error: v.last_error.clone(),
            created_at: rfc3339_beijing(v.created_at_ms),
            refunded_at: v.refunded_at_ms.map(rfc3339_beijing),
            receipt_no: v.receipt_no.clone(),
            red_receipt_no: v.red_receipt_no.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefundList {
    pub refunds: Vec<Refund>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefundListQuery {
    /// The bill: its id or number.
    pub order_id: Option<String>,
    /// Comma-separated statuses, e.g. `requested,approved`.
    pub status: Option<String>,
    /// At most this many, newest first (1–500, default 100).
    pub limit: Option<i64>,
}

/// Ask for a refund of a paid bill (R1, R2)
#[utoipa::path(
    post,
    path = "/api/payment/refunds",
    tag = "refunds",
    operation_id = "createRefund",
    params(("Idempotency-Key" = Option<String>, Header, max_length = 64,
        description = "Retrying with the same key and body returns the same refund (200); the same key with another body is refused (409 idempotency_key_reused).")),
    request_body = CreateRefund,
    responses(
        (status = 201, description = "Refund created: `requested` (waits for finance) or `submitted` (sent to the provider)", body = Refund),
        (status = 200, description = "Idempotent replay: the refund created the first time", body = Refund),
        (status = 400, description = "bad_json, bad_order_id, bad_amount, unknown_line, repeated_line, bad_reason, bad_reason_text, amount_mismatch, bad_idempotency_key", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session", body = ErrorBody),
        (status = 403, description = "The caller's role may not ask for refunds", body = ErrorBody),
        (status = 404, description = "No such bill", body = ErrorBody),
        (status = 409, description = "bill_not_paid, bill_void, bill_fully_refunded, refund_exceeds_paid (detail.refundable), refund_pending (detail.refund_id), line_already_refunded, idempotency_key_reused", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
    )
)]
pub async fn create_refund(
    State(st): State<HttpState>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let b: CreateRefund = parse_json(&headers, &body)?;
    let key = idempotency_key(&headers)?;
    let amount = match &b.refund_amount {
        None => None,
        Some(s) => Some(Money::parse(s.trim()).map_err(|e| {
            ApiError::new(400, "bad_amount", format!("refund_amount: {e} (yuan as a string, e.g. \"12.50\")"))
        })?),
    };
    let part = match (&b.items, amount) {
        (Some(items), _) if !items.is_empty() => RefundPart::Lines(items.clone()),
        (_, Some(a)) => RefundPart::Amount(a),
        _ => return Err(ApiError::new(400, "bad_amount", "give refund_amount or items")),
    };
    let req = RefundRequest {
        bill: b.order_id.clone(),
        part,
        expect_amount: amount,
        reason: b.reason_code.clone().unwrap_or_else(|| "other".into()),
        reason_text: b.refund_reason.clone(),
        idempotency_key: key,
    };
    let done = st.services.request_refund(&caller.0, &caller.1, &req).await?;
    let status = if done.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(Refund::from(&done.refund))).into_response())
}

/// One refund
#[utoipa::path(
    get,
    path = "/api/payment/refunds/{refund_id}",
    tag = "refunds",
    operation_id = "getRefund",
    params(("refund_id" = String, Path, description = "Refund id, e.g. ref_01jd…")),
    responses(
        (status = 200, description = "The refund", body = Refund),
        (status = 400, description = "Malformed refund id (`bad_id`)", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session", body = ErrorBody),
        (status = 404, description = "No such refund", body = ErrorBody),
    )
)]
pub async fn get_refund(
    State(st): State<HttpState>,
    caller: ApiCaller,
    Path(refund_id): Path<String>,
) -> ApiResult<Json<Refund>> {
    let v = st.services.refund(&caller.0, &refund_id).await?;
    Ok(Json(Refund::from(&v)))
}

/// Refunds by bill and status, newest first
#[utoipa::path(
    get,
    path = "/api/payment/refunds",
    tag = "refunds",
    operation_id = "listRefunds",
    params(RefundListQuery),
    responses(
        (status = 200, description = "The refunds", body = RefundList),
        (status = 400, description = "bad_status, bad_order_id", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session", body = ErrorBody),
        (status = 404, description = "No such bill", body = ErrorBody),
    )
)]
pub async fn list_refunds(
    State(st): State<HttpState>,
    caller: ApiCaller,
    Query(q): Query<RefundListQuery>,
) -> ApiResult<Json<RefundList>> {
    let mut statuses = Vec::new();
    for s in q.status.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        statuses.push(
            BillRefundStatus::parse(s)
                .ok_or_else(|| ApiError::new(400, "bad_status", format!("unknown refund status {s:?}")))?,
        );
    }
    let list = st.services.refunds(&caller.0, q.order_id.as_deref(), &statuses, q.limit.unwrap_or(100)).await?;
    Ok(Json(RefundList { refunds: list.iter().map(Refund::from).collect() }))
}
