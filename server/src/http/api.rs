//! The REST API the hospital's systems use (C1–C5, B3, O3): unpaid bills of a patient, checkout
//! sessions (merged or single bill), status, QR images, cancel, refresh, live events.
//!
//! Callers authenticate with an admin-issued API token (`Authorization: Bearer cpk_…`, stored
//! hashed) or a staff session cookie (then a state-changing request must come from our own
//! origin). Every handler checks the role. Errors are `{"error": {"code", "message", "detail"}}`.

use super::HttpState;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clinicpay::auth::{Access, CurrentUser};
use clinicpay::checkout::{SessionRequest, SessionView};
use clinicpay::payments::{PayMethod, SessionStatus};
use clinicpay::services::ServiceError;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;

/// An API error: status plus the JSON body.
pub struct ApiError(StatusCode, serde_json::Value);

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            json!({ "error": { "code": code, "message": message.into() } }),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &e {
            ServiceError::Internal(inner) => {
                tracing::error!(error.cause_chain = ?inner, "internal error in the API");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let detail = match &e {
            ServiceError::Conflict { detail, .. } => detail.clone(),
            _ => None,
        };
        let mut body = json!({ "error": { "code": e.code(), "message": message } });
        if let Some(d) = detail {
            body["error"]["detail"] = d;
        }
        ApiError(status, body)
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The authenticated caller of an API request (token or staff session), allowed to bill.
pub struct ApiCaller(pub CurrentUser);

impl FromRequestParts<HttpState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &HttpState) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let user = if let Some(token) = bearer {
            st.services.authenticate_api_token(token).await?
        } else {
            let cookie = parts.headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let token = app::i18n::cookie_value(cookie, clinicpay::services::auth::SESSION_COOKIE);
            let user = match token {
                Some(t) => st.services.authenticate(&t).await?,
                None => None,
            };
            // A cookie travels with cross-site requests: state changes must come from our origin.
            if user.is_some() && parts.method != Method::GET && !super::middleware::same_origin(st, &parts.headers) {
                return Err(ApiError::new(403, "csrf", "cross-origin request refused"));
            }
            user
        };
        let Some(user) = user else {
            return Err(ApiError::new(401, "unauthenticated", "send an API token (Authorization: Bearer …) or log in"));
        };
        if !Access::Billing.allows(Some(user.role)) {
            return Err(ApiError::new(403, "forbidden", "not allowed for this role"));
        }
        Ok(ApiCaller(user))
    }
}

/// The session as the API shows it.
pub fn session_json(v: &SessionView, now_ms: i64) -> serde_json::Value {
    let short = match v.method {
        PayMethod::AlipayQr | PayMethod::AlipayPage | PayMethod::AlipayWap => "alipay",
        PayMethod::WechatNative | PayMethod::WechatJsapi | PayMethod::WechatH5 => "wechat",
        PayMethod::BankCard => "bank_card",
    };
    json!({
        "session_id": v.id,
        "status": v.status.as_str(),
        "patient_id": v.patient_id,
        "payment_method": short,
        "method": v.method.as_str(),
        "provider": v.provider.as_str(),
        "channel_id": v.channel_id,
        "out_trade_no": v.out_trade_no,
        "total_amount": v.total,
        "created_at": clinicpay::time::rfc3339_beijing(v.created_at_ms),
        "expires_at": clinicpay::time::rfc3339_beijing(v.expires_at_ms),
        "seconds_left": if v.status == SessionStatus::Pending { v.seconds_left(now_ms) } else { 0 },
        "qr_code_content": v.qr_content(),
        "qr_code_image_url": format!("/api/v1/finance/qr-codes/{}.png", v.id),
        "paid_at": v.paid_at_ms.map(clinicpay::time::rfc3339_beijing),
        "paid_amount": v.paid_amount,
        "provider_transaction_id": v.provider_txn_id,
        "close_reason": v.close_reason,
        "replaced_by": v.replaced_by,
        "bills": v.payables.iter().map(|b| json!({
            "bill_id": b.payable.as_str(), "bill_no": b.number, "amount": b.amount,
            "status": b.status.as_str(), "receipt_no": b.receipt_no,
        })).collect::<Vec<_>>(),
    })
}

fn parse_json<T: for<'de> Deserialize<'de>>(headers: &HeaderMap, body: &Bytes) -> ApiResult<T> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(ApiError::new(415, "unsupported_media_type", "send the body as application/json"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new(400, "bad_json", format!("malformed request body: {e}")))
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let k =
                v.to_str().map_err(|_| ApiError::new(400, "bad_idempotency_key", "Idempotency-Key must be ASCII"))?;
            clinicpay::checkout::valid_idempotency_key(k).map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
            Ok(Some(k.to_string()))
        }
    }
}

pub async fn unpaid_bills(
    State(st): State<HttpState>,
    caller: ApiCaller,
    Path(patient_id): Path<String>,
) -> ApiResult<Response> {
    let _ = caller;
    let (patient, bills) = st.services.unpaid_bills(&patient_id).await?;
    let total = clinicpay::Money::sum(bills.iter().map(|b| b.total))
        .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    Ok(Json(json!({
        "patient": { "patient_id": patient.id, "name": patient.name, "mrn": patient.mrn },
        "count": bills.len(),
        "total_amount": total,
        "bills": bills.iter().map(|b| json!({
            "bill_id": b.id, "bill_no": b.bill_no, "department": b.department_zh, "department_en": b.department_en,
            "amount": b.total, "status": b.status.as_str(), "created_at": clinicpay::time::rfc3339_beijing(b.created_at_ms),
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    patient_id: String,
    bill_ids: Vec<String>,
    payment_method: String,
    timeout_minutes: Option<i64>,
}

fn created(v: &SessionView, fresh: bool, now: i64) -> Response {
    let status = if fresh { StatusCode::CREATED } else { StatusCode::OK };
    (
        status,
        [(header::LOCATION, format!("/api/v1/finance/payment-sessions/{}/status", v.id))],
        Json(session_json(v, now)),
    )
        .into_response()
}

pub async fn create_session(
    State(st): State<HttpState>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let b: CreateSessionBody = parse_json(&headers, &body)?;
    let key = idempotency_key(&headers)?;
    let req = SessionRequest::parse(&b.patient_id, &b.bill_ids, &b.payment_method, b.timeout_minutes)
        .map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
    let (v, fresh) = st.services.create_checkout(&caller.0, req, key.as_deref(), None).await?;
    Ok(created(&v, fresh, st.services.now()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrPaymentBody {
    payment_method: String,
    timeout_minutes: Option<i64>,
}

pub async fn bill_qr_payment(
    State(st): State<HttpState>,
    caller: ApiCaller,
    Path(bill_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let b: QrPaymentBody = parse_json(&headers, &body)?;
    let key = idempotency_key(&headers)?;
    let bill = st.services.bill_detail(&bill_id).await?;
    let req = SessionRequest::parse(
        bill.bill.patient_id.as_str(),
        &[bill.bill.id.to_string()],
        &b.payment_method,
        b.timeout_minutes,
    )
    .map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
    let (v, fresh) = st.services.create_checkout(&caller.0, req, key.as_deref(), None).await?;
    Ok(created(&v, fresh, st.services.now()))
}

pub async fn session_status(
    State(st): State<HttpState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let v = st.services.checkout_session(&id).await?;
    Ok(Json(session_json(&v, st.services.now())).into_response())
}

pub async fn cancel_session(
    State(st): State<HttpState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let v = st.services.cancel_checkout(&caller.0, &id).await?;
    Ok(Json(session_json(&v, st.services.now())).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    timeout_minutes: Option<i64>,
}

pub async fn refresh_session(
    State(st): State<HttpState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let b: RefreshBody = if body.is_empty() { RefreshBody::default() } else { parse_json(&headers, &body)? };
    let v = st.services.refresh_checkout(&caller.0, &id, b.timeout_minutes).await?;
    Ok(created(&v, true, st.services.now()))
}

/// The cashier's "check payment": query the provider now.
pub async fn sync_session(
    State(st): State<HttpState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    st.services.sync_session(&id).await?;
    let v = st.services.checkout_session(&id).await?;
    Ok(Json(session_json(&v, st.services.now())).into_response())
}

/// `{id}.png` or `{id}.svg`: the QR code of a session's payment content.
pub async fn qr_code(State(st): State<HttpState>, _caller: ApiCaller, Path(file): Path<String>) -> ApiResult<Response> {
    let (id, ext) =
        file.rsplit_once('.').ok_or_else(|| ApiError::new(404, "not_found", "use <session_id>.png or .svg"))?;
    if ext != "png" && ext != "svg" {
        return Err(ApiError::new(404, "not_found", "use <session_id>.png or .svg"));
    }
    let v = st.services.checkout_session(id).await?;
    let content =
        v.qr_content().ok_or_else(|| ApiError::new(409, "no_qr_code", "this session has no QR code (yet)"))?;
    let code = qrcode::QrCode::with_error_correction_level(content.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    let cache = "private, max-age=60";
    if ext == "svg" {
        let svg = code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(280, 280)
            .quiet_zone(true)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build();
        return Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, cache)], svg).into_response());
    }
    let img = code.render::<image::Luma<u8>>().min_dimensions(320, 320).build();
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, cache)], png).into_response())
}

/// Server-sent events: the session's status now, then every change (after its commit).
pub async fn session_events(
    State(st): State<HttpState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let v = st.services.checkout_session(&id).await?;
    let mut rx = st.hub.subscribe();
    let services = st.services.clone();
    let session_id = v.id.clone();
    let first = session_json(&v, services.now());
    let stream = async_stream(first, move |tx| async move {
        loop {
            match rx.recv().await {
                Ok(change) if change.session_id == session_id => {
                    // read the committed state, never the message alone
                    if let Ok(Some(now)) = services.store.session(&session_id).await {
                        if tx.send(session_json(&now, services.now())).await.is_err() {
                            return;
                        }
                        if now.status.is_final() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Ok(Some(now)) = services.store.session(&session_id).await {
                        let _ = tx.send(session_json(&now, services.now())).await;
                    }
                }
                Err(_) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// A stream of `status` events fed by a task.
fn async_stream<F, Fut>(first: serde_json::Value, feed: F) -> impl futures::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<serde_json::Value>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<serde_json::Value>(16);
    let done = first["status"] != "pending";
    if !done {
        tokio::spawn(feed(tx));
    }
    let head = futures::stream::once(async move { Ok(Event::default().event("status").data(first.to_string())) });
    let tail = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|v| Ok(Event::default().event("status").data(v.to_string())));
    head.chain(tail)
}

use futures::StreamExt;

/// 404 for unknown API paths, in the API's error format.
pub async fn api_not_found() -> ApiError {
    ApiError::new(404, "not_found", "no such API endpoint")
}

pub fn routes() -> axum::Router<HttpState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/v1/finance/merged-payment/patient/{patient_id}/unpaid-bills", get(unpaid_bills))
        .route("/api/v1/finance/merged-payment/create-session", post(create_session))
        .route("/api/v1/finance/bills/{bill_id}/qr-payment", post(bill_qr_payment))
        .route("/api/v1/finance/payment-sessions/{id}/status", get(session_status))
        .route("/api/v1/finance/payment-sessions/{id}/cancel", post(cancel_session))
        .route("/api/v1/finance/payment-sessions/{id}/refresh", post(refresh_session))
        .route("/api/v1/finance/payment-sessions/{id}/sync", post(sync_session))
        .route("/api/v1/finance/payment-sessions/{id}/events", get(session_events))
        .route("/api/v1/finance/qr-codes/{file}", get(qr_code))
        .route("/api/v1/openapi.json", get(super::openapi::openapi))
        .route("/api/v1/{*rest}", axum::routing::any(api_not_found))
}
