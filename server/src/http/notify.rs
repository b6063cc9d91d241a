//! Provider notification endpoints (G4): `/notify/alipay`, `/notify/wechatpay`, `/notify/bank`
//! (also at the hospital notes' `/api/payment/callback/{wechat,alipay,bank}`). The handler only
//! turns the HTTP request into an [`IncomingNotification`] and the use case's answer back into
//! HTTP: storing, verifying, applying and recording are `Services::receive_notification`.

use super::HttpState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clinicpay::payments::Provider;
use clinicpay::ports::NotifyReply;
use clinicpay::services::notify::IncomingNotification;
use std::net::SocketAddr;

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
    let incoming = IncomingNotification {
        provider,
        remote_addr: super::middleware::client_ip_of(&st, peer.ip(), &headers),
        headers: headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect(),
        content_type: headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string(),
        body: body.to_vec(),
    };
    let outcome = st.services.receive_notification(incoming).await;
    st.metrics.incr("clinicpay_notifications_total", &[("provider", provider.as_str()), ("outcome", outcome.outcome)]);
    reply(outcome.reply)
}
