//! Provider notification endpoints (G4): `/notify/alipay`, `/notify/wechatpay`, `/notify/bank`.
//! The raw request is stored first (durably), then verified and applied; the provider gets the
//! answer it expects only after the effect is committed.

use super::HttpState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clinicpay::ids::NotificationId;
use clinicpay::payments::Provider;
use clinicpay::ports::{NewNotification, NotifyReply, RawNotification};
use clinicpay::services::notify::failure_reply;
use std::net::SocketAddr;

/// Headers worth keeping with a stored notification (and needed to verify it again later).
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "request-id",
    "wechatpay-timestamp",
    "wechatpay-nonce",
    "wechatpay-signature",
    "wechatpay-serial",
    "wechatpay-signature-type",
];

pub const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;

fn reply(r: NotifyReply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if r.body.is_empty() {
        return status.into_response();
    }
    (status, [(header::CONTENT_TYPE, r.content_type)], r.body).into_response()
}

pub async fn notify(
    State(st): State<HttpState>,
    Path(provider): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(provider) = Provider::parse(&provider) else {
        return (StatusCode::NOT_FOUND, "unknown provider").into_response();
    };
    let services = &st.services;
    let kept: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).map(|v| (h.to_string(), v.to_string())))
        .collect();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let id = services.ids.new_id::<NotificationId>().into_string();
    let stored = NewNotification {
        id: id.clone(),
        provider,
        received_at_ms: services.now(),
        remote_addr: peer.ip().to_string(),
        content_type: content_type.clone(),
        headers: serde_json::Value::Object(
            kept.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect(),
        )
        .to_string(),
        body: body.to_vec(),
    };
    // Nothing is lost: store before anything else. If that fails, the provider retries.
    if let Err(e) = services.store_notification(stored).await {
        tracing::error!(error = %e, provider = %provider, "could not store a notification");
        st.metrics
            .incr("clinicpay_notifications_total", &[("provider", provider.as_str()), ("outcome", "store_failed")]);
        return reply(failure_reply(provider));
    }
    let raw = RawNotification { headers: kept, content_type, body: body.to_vec() };
    let processed = services.process_notification(provider, &raw, &id).await;
    if !processed.recorded {
        if let Err(e) = services.store.finish_notification(&id, &processed.result).await {
            // The notification stays `received`; the re-drive worker will finish it.
            tracing::error!(error = %e, notification = %id, "could not record a notification's outcome");
        }
    }
    st.metrics.incr(
        "clinicpay_notifications_total",
        &[("provider", provider.as_str()), ("outcome", processed.result.status)],
    );
    reply(processed.reply)
}
