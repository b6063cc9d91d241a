//! The test-control API, the same for every sandbox: tests, demos and the reliability suite act
//! as the payer and inject faults through it. Each sandbox implements [`SandboxControl`];
//! [`routes`] serves it under `<sandbox>/control/…`:
//!
//! * `GET  control/trades/{no}` — the most recent trade with that order number, with its
//!   notification deliveries;
//! * `GET  control/trades/{no}/notification` — the signed success notification as sent
//!   (`{headers: {name: value}, body}`), for SDK tests that verify notifications themselves;
//! * `POST control/trades/{no}/{action}` — `pay`, `scan`, `cancel`, `faults` (a [`FaultSpec`]
//!   body; before the trade exists it applies when it is created), or the sandbox's own
//!   actions (Alipay `finish`, `backdate`; the bank's `pay` with `{"card_number"}`);
//! * `POST control/defaults` — faults for trades created from now on.

use super::courier::{Courier, FaultSpec};
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

#[async_trait]
pub trait SandboxControl: Send + Sync + 'static {
    /// The sandbox's name in deliveries (`alipay`, `wechatpay`, `bank`).
    fn name(&self) -> &'static str;
    fn courier(&self) -> &Arc<Courier>;
    /// The payer pays (the sandbox's success path).
    async fn pay(&self, out_trade_no: &str) -> anyhow::Result<()>;
    /// The payer scans the code / opens the cashier (nothing where the provider has no such step).
    async fn scan(&self, out_trade_no: &str) -> anyhow::Result<()>;
    /// The payer gives up.
    async fn cancel(&self, out_trade_no: &str) -> anyhow::Result<()>;
    /// Faults for one trade (kept for the order number when the trade does not exist yet).
    async fn set_faults(&self, out_trade_no: &str, faults: FaultSpec) -> anyhow::Result<()>;
    async fn set_default_faults(&self, faults: FaultSpec) -> anyhow::Result<()>;
    /// The control view of the most recent trade with this order number.
    async fn trade_view(&self, out_trade_no: &str) -> anyhow::Result<Option<Value>>;
    /// The signed success notification of a paid trade, exactly as the sandbox sends it.
    async fn signed_success_notification(&self, out_trade_no: &str)
        -> anyhow::Result<(Vec<(String, String)>, Vec<u8>)>;
    /// A sandbox's own action; `None` when it has no action of that name.
    async fn action(&self, _out_trade_no: &str, _action: &str, _body: &[u8]) -> Option<anyhow::Result<()>> {
        None
    }
}

pub fn routes<S: SandboxControl>(s: Arc<S>) -> Router {
    Router::new()
        .route("/control/defaults", post(defaults::<S>))
        .route("/control/trades/{no}", get(view::<S>))
        .route("/control/trades/{no}/notification", get(notification::<S>))
        .route("/control/trades/{no}/{action}", post(act::<S>))
        .with_state(s)
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// A `FaultSpec` body (empty = no faults), or why not.
fn faults(body: &[u8]) -> Result<FaultSpec, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(FaultSpec::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("bad FaultSpec: {e}"))
}

/// The trade's view with its deliveries.
async fn full_view<S: SandboxControl>(s: &S, no: &str) -> anyhow::Result<Option<Value>> {
    let Some(mut v) = s.trade_view(no).await? else { return Ok(None) };
    let deliveries = s.courier().records_for(s.name(), no).await;
    v["deliveries"] = serde_json::to_value(deliveries)?;
    Ok(Some(v))
}

async fn view<S: SandboxControl>(State(s): State<Arc<S>>, Path(no): Path<String>) -> Response {
    match full_view(s.as_ref(), &no).await {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no trade {no}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn notification<S: SandboxControl>(State(s): State<Arc<S>>, Path(no): Path<String>) -> Response {
    match s.signed_success_notification(&no).await {
        Ok((headers, body)) => {
            let headers: serde_json::Map<String, Value> =
                headers.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            Json(json!({ "headers": headers, "body": String::from_utf8_lossy(&body) })).into_response()
        }
        Err(e) => error(StatusCode::NOT_FOUND, format!("{e:#}")),
    }
}

async fn defaults<S: SandboxControl>(State(s): State<Arc<S>>, body: Bytes) -> Response {
    let f = match faults(&body) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match s.set_default_faults(f.clone()).await {
        Ok(()) => Json(json!({ "defaults": f })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn act<S: SandboxControl>(
    State(s): State<Arc<S>>,
    Path((no, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = match action.as_str() {
        "faults" => match faults(&body) {
            Ok(f) => s.set_faults(&no, f).await,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        },
        other => {
            if s.trade_view(&no).await.ok().flatten().is_none() {
                return error(StatusCode::NOT_FOUND, format!("no trade {no}"));
            }
            match s.action(&no, other, &body).await {
                Some(r) => r,
                None => match other {
                    "pay" => s.pay(&no).await,
                    "scan" => s.scan(&no).await,
                    "cancel" => s.cancel(&no).await,
                    _ => return error(StatusCode::NOT_FOUND, format!("unknown action {other}")),
                },
            }
        }
    };
    match result {
        Ok(()) => match full_view(s.as_ref(), &no).await {
            Ok(Some(v)) => Json(v).into_response(),
            Ok(None) => Json(json!({ "out_trade_no": no, "pending_faults": true })).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        },
        Err(e) => error(StatusCode::CONFLICT, format!("{e:#}")),
    }
}
