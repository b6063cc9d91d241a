//! Unpaid bills and checkout sessions (C1–C5, B3): the routes the hospital's notes name
//! (`/api/v1/finance/...`), each described by its own `#[utoipa::path]`.

use super::types::{CreateSession, ErrorBody, QrPayment, Refresh, Session, UnpaidBills};
use super::{idempotency_key, parse_json, ApiCaller, ApiError, ApiResult, HttpState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clinicpay::checkout::{SessionRequest, SessionView};
use clinicpay::payments::SessionStatus;
use futures::StreamExt;
use std::convert::Infallible;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(unpaid_bills))
        .routes(routes!(create_session))
        .routes(routes!(bill_qr_payment))
        .routes(routes!(session_status))
        .routes(routes!(cancel_session))
        .routes(routes!(refresh_session))
        .routes(routes!(sync_session))
        .routes(routes!(session_events))
        .routes(routes!(patient_bill_events))
        .routes(routes!(qr_code))
}

fn created(v: &SessionView, fresh: bool, now: i64) -> Response {
    let status = if fresh { StatusCode::CREATED } else { StatusCode::OK };
    (
        status,
        [(header::LOCATION, format!("/api/v1/finance/payment-sessions/{}/status", v.id))],
        Json(Session::new(v, now)),
    )
        .into_response()
}

/// Unpaid bills of a patient (B3)
#[utoipa::path(
    get,
    path = "/api/v1/finance/merged-payment/patient/{patient_id}/unpaid-bills",
    tag = "checkout",
    operation_id = "unpaidBills",
    params(("patient_id" = String, Path, description = "Patient id, e.g. pat_01jd…")),
    responses(
        (status = 200, description = "The patient and every bill that can be paid now", body = UnpaidBills),
        (status = 400, description = "Malformed patient id (`bad_id`)", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this (`forbidden`), or a cross-origin cookie request (`csrf`)", body = ErrorBody),
        (status = 404, description = "No such patient (`not_found`)", body = ErrorBody),
    )
)]
pub async fn unpaid_bills(
    State(st): State<HttpState>,
    _caller: ApiCaller,
    Path(patient_id): Path<String>,
) -> ApiResult<Json<UnpaidBills>> {
    let (patient, bills) = st.services.unpaid_bills(&patient_id).await?;
    let body = UnpaidBills::new(&patient, &bills).map_err(|e| ApiError::new(500, "internal", e.to_string()))?;
    Ok(Json(body))
}

/// Open one checkout session (one QR code) for 1..N bills of one patient (C1, C2)
#[utoipa::path(
    post,
    path = "/api/v1/finance/merged-payment/create-session",
    tag = "checkout",
    operation_id = "createSession",
    params(("Idempotency-Key" = Option<String>, Header, max_length = 64,
        description = "Retrying with the same key and body returns the same session (200); the same key with another body is refused (409 idempotency_key_reused). 1–64 visible ASCII characters.")),
    request_body = CreateSession,
    responses(
        (status = 201, description = "Session opened; the QR is in qr_code_content and at qr_code_image_url", body = Session),
        (status = 200, description = "Idempotent replay: the session opened the first time", body = Session),
        (status = 400, description = "Bad input: bad_json, bad_id, no_bills, too_many_bills, duplicate_bill, unknown_bill, bill_of_other_patient, bad_payment_method, bad_timeout, bad_idempotency_key", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this (`forbidden`), or a cross-origin cookie request (`csrf`)", body = ErrorBody),
        (status = 404, description = "No such patient", body = ErrorBody),
        (status = 409, description = "bill_not_payable (paid or void), bill_in_active_session (detail names the session), idempotency_key_reused, no_channel", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 502, description = "The payment provider refused or did not answer (`provider_error`); nothing is left open", body = ErrorBody),
    )
)]
pub async fn create_session(
    State(st): State<HttpState>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let b: CreateSession = parse_json(&headers, &body)?;
    let key = idempotency_key(&headers)?;
    let req = SessionRequest::parse(&b.patient_id, &b.bill_ids, &b.payment_method, b.timeout_minutes)
        .map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
    let (v, fresh) = st.services.create_checkout(&caller.0, &caller.1, req, key.as_deref(), None).await?;
    Ok(created(&v, fresh, st.services.now()))
}

/// Open a checkout session for one bill (the N = 1 case)
#[utoipa::path(
    post,
    path = "/api/v1/finance/bills/{bill_id}/qr-payment",
    tag = "checkout",
    operation_id = "billQrPayment",
    params(
        ("bill_id" = String, Path, description = "Bill id, e.g. bill_01jd…"),
        ("Idempotency-Key" = Option<String>, Header, max_length = 64, description = "As for createSession"),
    ),
    request_body = QrPayment,
    responses(
        (status = 201, description = "Session opened", body = Session),
        (status = 200, description = "Idempotent replay", body = Session),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this (`forbidden`), or a cross-origin cookie request (`csrf`)", body = ErrorBody),
        (status = 404, description = "No such bill", body = ErrorBody),
        (status = 409, description = "The bill cannot be paid now", body = ErrorBody),
        (status = 502, description = "The payment provider refused or did not answer", body = ErrorBody),
    )
)]
pub async fn bill_qr_payment(
    State(st): State<HttpState>,
    caller: ApiCaller,
    Path(bill_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let b: QrPayment = parse_json(&headers, &body)?;
    let key = idempotency_key(&headers)?;
    let bill = st.services.bill_detail(&bill_id).await?;
    let req = SessionRequest::parse(
        bill.bill.patient_id.as_str(),
        &[bill.bill.id.to_string()],
        &b.payment_method,
        b.timeout_minutes,
    )
    .map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
    let (v, fresh) = st.services.create_checkout(&caller.0, &caller.1, req, key.as_deref(), None).await?;
    Ok(created(&v, fresh, st.services.now()))
}

/// A session's status (poll every 2 s if SSE is unavailable)
#[utoipa::path(
    get,
    path = "/api/v1/finance/payment-sessions/{session_id}/status",
    tag = "checkout",
    operation_id = "sessionStatus",
    params(("session_id" = String, Path, description = "Session id, e.g. ses_01jd…")),
    responses(
        (status = 200, description = "The session now", body = Session),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    )
)]
pub async fn session_status(
    State(st): State<HttpState>,
    _caller: ApiCaller,
    Path(session_id): Path<String>,
) -> ApiResult<Json<Session>> {
    let v = st.services.checkout_session(&session_id).await?;
    Ok(Json(Session::new(&v, st.services.now())))
}

/// Cancel a pending session: its bills are free again, the trade is closed at the provider
#[utoipa::path(
    post,
    path = "/api/v1/finance/payment-sessions/{session_id}/cancel",
    tag = "checkout",
    operation_id = "cancelSession",
    params(("session_id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session, cancelled", body = Session),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this (`forbidden`), or a cross-origin cookie request (`csrf`)", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "session_not_pending: the session already ended", body = ErrorBody),
    )
)]
pub async fn cancel_session(
    State(st): State<HttpState>,
    caller: ApiCaller,
    Path(session_id): Path<String>,
) -> ApiResult<Json<Session>> {
    let v = st.services.cancel_checkout(&caller.0, &caller.1, &session_id).await?;
    Ok(Json(Session::new(&v, st.services.now())))
}

/// Refresh the QR: a new session for the same bills replaces this one (201)
#[utoipa::path(
    post,
    path = "/api/v1/finance/payment-sessions/{session_id}/refresh",
    tag = "checkout",
    operation_id = "refreshSession",
    params(("session_id" = String, Path, description = "Session id")),
    request_body(content = Option<Refresh>, description = "Optional: the new session's timeout"),
    responses(
        (status = 201, description = "The new session", body = Session),
        (status = 400, description = "Malformed id or body", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this (`forbidden`), or a cross-origin cookie request (`csrf`)", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "session_not_pending: the session already ended", body = ErrorBody),
        (status = 502, description = "The payment provider refused or did not answer", body = ErrorBody),
    )
)]
pub async fn refresh_session(
    State(st): State<HttpState>,
    caller: ApiCaller,
    Path(session_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let b: Refresh = if body.is_empty() { Refresh::default() } else { parse_json(&headers, &body)? };
    let v = st.services.refresh_checkout(&caller.0, &caller.1, &session_id, b.timeout_minutes).await?;
    Ok(created(&v, true, st.services.now()))
}

/// Ask the provider now whether the session was paid (status sync, the cashier's "check payment")
#[utoipa::path(
    post,
    path = "/api/v1/finance/payment-sessions/{session_id}/sync",
    tag = "checkout",
    operation_id = "syncSession",
    params(("session_id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session after asking the provider", body = Session),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session (`unauthenticated`)", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this (`forbidden`), or a cross-origin cookie request (`csrf`)", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    )
)]
pub async fn sync_session(
    State(st): State<HttpState>,
    _caller: ApiCaller,
    Path(session_id): Path<String>,
) -> ApiResult<Json<Session>> {
    st.services.sync_session(&session_id).await?;
    let v = st.services.checkout_session(&session_id).await?;
    Ok(Json(Session::new(&v, st.services.now())))
}

/// The session's QR code as an image: `<session_id>.png` or `<session_id>.svg`
#[utoipa::path(
    get,
    path = "/api/v1/finance/qr-codes/{file}",
    tag = "checkout",
    operation_id = "qrCode",
    params(("file" = String, Path, description = "ses_….png or ses_….svg")),
    responses(
        (status = 200, description = "The image", content(("image/png"), ("image/svg+xml"))),
        (status = 401, description = "No valid API token or staff session (`unauthenticated`)", body = ErrorBody),
        (status = 404, description = "No such session, or not .png / .svg", body = ErrorBody),
        (status = 409, description = "The session has no QR code (yet) (`no_qr_code`)", body = ErrorBody),
    )
)]
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

/// Live status as server-sent events: an event `status` with the session now and after every committed change; ends when the session is final
#[utoipa::path(
    get,
    path = "/api/v1/finance/payment-sessions/{session_id}/events",
    tag = "checkout",
    operation_id = "sessionEvents",
    params(("session_id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "text/event-stream: events named `status`, each a Session", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid API token or staff session (`unauthenticated`)", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    )
)]
pub async fn session_events(
    State(st): State<HttpState>,
    _caller: ApiCaller,
    Path(session_id): Path<String>,
) -> ApiResult<Response> {
    let v = st.services.checkout_session(&session_id).await?;
    let mut rx = st.hub.subscribe();
    let services = st.services.clone();
    let session_id = v.id.clone();
    let first = Session::new(&v, services.now());
    let stream = status_stream(first, move |tx| async move {
        loop {
            match rx.recv().await {
                Ok(change) if change.session_id == session_id => {
                    // read the committed state, never the message alone
                    if let Ok(Some(now)) = services.store.session(&session_id).await {
                        if tx.send(Session::new(&now, services.now())).await.is_err() {
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
                        let _ = tx.send(Session::new(&now, services.now())).await;
                    }
                }
                Err(_) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Live bills of a patient: an event `bills` whenever bills of theirs are issued or voided (by the HIS or the counter), so an open charge screen re-reads them
#[utoipa::path(
    get,
    path = "/api/v1/finance/patients/{patient_id}/events",
    tag = "checkout",
    operation_id = "patientBillEvents",
    params(("patient_id" = String, Path, description = "Patient id, e.g. pat_01jd…")),
    responses(
        (status = 200, description = "text/event-stream: events named `bills` with {\"patient_id\"}; re-read the unpaid bills on each", content_type = "text/event-stream", body = String),
        (status = 400, description = "Malformed patient id (`bad_id`)", body = ErrorBody),
        (status = 401, description = "No valid API token or staff session (`unauthenticated`)", body = ErrorBody),
        (status = 404, description = "No such patient", body = ErrorBody),
    )
)]
pub async fn patient_bill_events(
    State(st): State<HttpState>,
    _caller: ApiCaller,
    Path(patient_id): Path<String>,
) -> ApiResult<Response> {
    let patient = st.services.patient_detail(&patient_id).await?.patient.id;
    let rx = st.hub.subscribe_bills();
    let data = serde_json::json!({ "patient_id": patient.as_str() }).to_string();
    let stream = futures::stream::unfold((rx, patient, data), |(mut rx, patient, data)| async move {
        loop {
            match rx.recv().await {
                Ok(p) if p == patient => {
                    let ev = Event::default().event("bills").data(data.clone());
                    return Some((Ok::<_, Infallible>(ev), (rx, patient, data)));
                }
                Ok(_) => {}
                // missed some: say "changed" (a re-read is always safe)
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let ev = Event::default().event("bills").data(data.clone());
                    return Some((Ok(ev), (rx, patient, data)));
                }
                Err(_) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

fn event(s: &Session) -> Result<Event, Infallible> {
    Ok(Event::default().event("status").data(serde_json::to_string(s).unwrap_or_default()))
}

/// A stream of `status` events: the first now, then what a task feeds (while not final).
fn status_stream<F, Fut>(first: Session, feed: F) -> impl futures::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Session>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Session>(16);
    if first.status == SessionStatus::Pending {
        tokio::spawn(feed(tx));
    }
    let head = futures::stream::once(async move { event(&first) });
    let tail = tokio_stream::wrappers::ReceiverStream::new(rx).map(|s| event(&s));
    head.chain(tail)
}
