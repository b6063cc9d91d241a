//! The Alipay sandbox: a local `gateway.do` that speaks the classic OpenAPI protocol (PROTOCOLS.md
//! Part A) closely enough for our client and the official SDKs, mounted at `/sandbox/alipay`.
//!
//! * `GET|POST gateway.do` — every transport shape of A.2 (query only, query + form body, form
//!   body only), request signatures verified against the registered app key (RSA2; legacy RSA
//!   verify only), answers always HTTP 200 in the compact, signed layout of A.5.2.
//! * Methods: `alipay.trade.precreate`, `.query`, `.close`, `.refund`, `.fastpay.refund.query`,
//!   `alipay.data.dataservice.bill.downloadurl.query`, and the browser methods
//!   `alipay.trade.page.pay` / `alipay.trade.wap.pay` (a cashier page).
//! * `POST apps` registers a test app's public key and returns the sandbox's Alipay public key.
//! * `pay/{token}` is the payer page a QR code opens; `bills/{token}` serves bill archives;
//!   `control/...` is the test-control API every sandbox shares ([`crate::sandbox::control`]).
//!
//! Trades, registrations and bill links live in the sandbox database ([`SandboxStore`]);
//! notifications go out through the [`Courier`] on Alipay's retry schedule, V1-signed with the
//! sandbox's own key. `wire.rs` is the sandbox's own reading of the protocol.

mod bills;
mod gateway;
mod trades;
pub mod wire;

use super::control::SandboxControl;
use super::courier::{Courier, Notifier, ALIPAY_SCHEDULE};
use super::page::{self, PayerPage};
use super::store::SandboxStore;
use super::{provider_key, FaultSpec, SandboxCtx, Wakes};
use crate::crypto::{PrivateKey, PublicKey};
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use clinicpay::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use trades::{biz_str, fail, ok, seller_id, system_busy, Kind, Members, Outbox, Status, Trade};
use wire::{param, Params};

/// The sandbox's name in its database and deliveries.
pub const NAME: &str = "alipay";

pub(crate) fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A registered test app.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct App {
    /// The app's public key (SPKI, base64).
    public_key: String,
}

/// A bill download link (valid 30 s).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BillLink {
    app_id: String,
    from_ms: Millis,
    to_ms: Millis,
    label: String,
}

pub(crate) struct Core {
    ctx: SandboxCtx,
    key: PrivateKey,
    public: PublicKey,
    /// One operation at a time: each reads a trade, changes it and writes it back.
    op: tokio::sync::Mutex<()>,
}

pub struct AlipaySandbox {
    core: Arc<Core>,
}

/// How Alipay delivers notifications: a form body, acknowledged by `success` (A.8).
struct AlipayNotifier;

impl Notifier for AlipayNotifier {
    fn attempt(&self, _signing: &str, queued: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
        (vec![("content-type".into(), "application/x-www-form-urlencoded; charset=utf-8".into())], queued.to_vec())
    }

    fn accepted(&self, status: u16, body: &[u8]) -> bool {
        trades::alipay_accepted(status, body)
    }

    fn schedule(&self) -> &'static [u64] {
        &ALIPAY_SCHEDULE
    }
}

fn error_page(m: &Members) -> Response {
    let get = |k: &str| m.iter().find(|(n, _)| *n == k).and_then(|(_, v)| v.as_str()).unwrap_or("").to_string();
    let html = format!(
        r#"<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>支付宝 · 错误</title></head>
<body style="font-family:system-ui,sans-serif;margin:24px"><h1 style="color:#1677ff">支付宝 · Alipay <small>沙箱 Sandbox</small></h1>
<p role="alert" data-error-code="{sub}">错误代码 {sub}</p><p>{msg}</p></body></html>"#,
        sub = page::esc(&get("sub_code")),
        msg = page::esc(&get("sub_msg")),
    );
    Html(html).into_response()
}

fn json_error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": msg.to_string() }))).into_response()
}

fn store_failed(e: anyhow::Error) -> Members {
    tracing::error!(error = %e, "the Alipay sandbox could not use its database");
    system_busy()
}

impl Core {
    fn store(&self) -> &SandboxStore {
        &self.ctx.store
    }

    async fn send_all(&self, out: Outbox) {
        for (n, faults) in out {
            if let Err(e) = self.ctx.courier.send(n, &faults).await {
                tracing::error!(error = %e, "the Alipay sandbox could not queue a notification");
            }
        }
    }

    async fn save(&self, t: &Trade) -> anyhow::Result<()> {
        self.store().save_trade(NAME, t).await?;
        if t.expire_ms.is_some() {
            self.ctx.wake.notify_one();
        }
        Ok(())
    }

    fn base(&self) -> &str {
        self.ctx.settings.base_url.trim_end_matches('/')
    }

    fn pay_url(&self, token: &str) -> String {
        format!("{}/sandbox/alipay/pay/{token}", self.base())
    }

    /// `{"<node>":{…},"sign":"…"}` — compact, `sign` right after the node, HTTP 200 (A.5.2).
    fn signed_json(&self, node_name: &str, members: &Members) -> Response {
        let node = wire::node_json(members);
        let sign = self.key.sign_sha256_b64(node.as_bytes());
        let body = format!(r#"{{"{node_name}":{node},"sign":"{sign}"}}"#);
        ([(header::CONTENT_TYPE, "application/json;charset=utf-8")], body).into_response()
    }

    async fn app_key(&self, app_id: &str) -> anyhow::Result<Option<PublicKey>> {
        match self.store().registration::<App>(NAME, app_id).await? {
            Some(a) => Ok(Some(PublicKey::parse(&a.public_key)?)),
            None => Ok(None),
        }
    }

    /// The trade a request names: by `out_trade_no`, else by `trade_no` (of this app).
    async fn find(&self, app_id: &str, biz: &Map<String, Value>) -> anyhow::Result<Option<Trade>> {
        if let Some(no) = biz_str(biz, "out_trade_no") {
            return self.store().trade(NAME, app_id, no).await;
        }
        let Some(txn) = biz_str(biz, "trade_no") else { return Ok(None) };
        Ok(self.store().trade_by_txn::<Trade>(NAME, txn).await?.filter(|t| t.app_id == app_id))
    }

    fn render_trade(&self, t: &Trade, note: Option<&str>) -> String {
        let status = note.unwrap_or(match t.status {
            Status::Success | Status::Finished => "支付成功 Paid",
            Status::Closed if t.expired => "二维码已过期 Expired",
            Status::Closed if t.paid_ms.is_some() => "已全额退款 Refunded",
            Status::Closed => "交易已关闭 Closed",
            _ if t.buyer_cancelled => "已取消付款 Payment cancelled (the order stays open until it expires)",
            _ => "等待付款 Waiting for payment",
        });
        let url = self.pay_url(&t.token);
        let can_pay = t.can_pay();
        let merchant = format!("沙箱商户 Sandbox merchant · {}", t.app_id);
        page::render(&PayerPage {
            brand: "支付宝 · Alipay",
            color: "#1677ff",
            merchant: &merchant,
            subject: &t.subject,
            amount: t.total,
            status,
            pay_action: can_pay.then(|| format!("{url}/confirm")),
            cancel_action: (can_pay && !t.buyer_cancelled).then(|| format!("{url}/cancel")),
            pay_fields_html: String::new(),
            pay_label: "确认付款 Pay",
        })
    }

    /// Where the browser goes after page / wap pay: `return_url` plus signed parameters (A.6).
    fn return_location(&self, t: &Trade, return_url: &str) -> String {
        let method = if t.kind == Kind::Wap { "alipay.trade.wap.pay.return" } else { "alipay.trade.page.pay.return" };
        let mut p: Params = [
            ("charset", "utf-8".to_string()),
            ("out_trade_no", t.out_trade_no.clone()),
            ("method", method.to_string()),
            ("total_amount", t.total.plain()),
            ("trade_no", t.trade_no.clone()),
            ("auth_app_id", t.app_id.clone()),
            ("version", "1.0".to_string()),
            ("app_id", t.app_id.clone()),
            ("seller_id", seller_id(&t.app_id)),
            ("timestamp", wire::fmt_time(now_ms())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        wire::sign_v1(&mut p, &self.key);
        let sep = if return_url.contains('?') { '&' } else { '?' };
        format!("{return_url}{sep}{}", wire::encode_form(&p))
    }

    /// Runs a change on the latest trade with this order number, writes it, sends what it queued.
    async fn with_trade<T>(
        &self,
        out_trade_no: &str,
        f: impl FnOnce(&Core, &mut Trade, &mut Outbox) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let _op = self.op.lock().await;
        let mut t: Trade = self
            .store()
            .latest_trade(NAME, out_trade_no)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no trade {out_trade_no} in the Alipay sandbox"))?;
        let mut out = Vec::new();
        let r = f(self, &mut t, &mut out);
        self.save(&t).await?;
        self.send_all(out).await;
        r
    }

    /// The same through the payer page's token.
    async fn with_token<T>(
        &self,
        token: &str,
        f: impl FnOnce(&Core, &mut Trade, &mut Outbox) -> T,
    ) -> anyhow::Result<Option<T>> {
        let _op = self.op.lock().await;
        let Some(mut t) = self.store().trade_by_token::<Trade>(NAME, token).await? else { return Ok(None) };
        let mut out = Vec::new();
        let r = f(self, &mut t, &mut out);
        self.save(&t).await?;
        self.send_all(out).await;
        Ok(Some(r))
    }

    fn view(&self, t: &Trade) -> Value {
        json!({
            "out_trade_no": t.out_trade_no,
            "app_id": t.app_id,
            "state": t.status_word(),
            "amount": t.total.plain(),
            "provider_txn_id": t.scanned.then(|| t.trade_no.clone()),
            "kind": match t.kind { Kind::Qr => "qr", Kind::Page => "page", Kind::Wap => "wap" },
            "expired": t.expired,
            "pay_url": self.pay_url(&t.token),
            "refunded": t.refunded().plain(),
            "refunds": t.refunds.iter().map(|r| json!({
                "out_refund_no": r.out_request_no,
                "amount": r.amount.plain(),
                "refunded_at": wire::fmt_time(r.at_ms),
            })).collect::<Vec<_>>(),
            "faults": t.faults,
        })
    }
}

impl AlipaySandbox {
    pub fn new(ctx: SandboxCtx) -> anyhow::Result<Self> {
        let key = provider_key(&ctx.settings, "alipay")?;
        let public = key.public_key();
        ctx.courier.register(NAME, Arc::new(AlipayNotifier));
        Ok(AlipaySandbox { core: Arc::new(Core { ctx, key, public, op: tokio::sync::Mutex::new(()) }) })
    }

    /// The sandbox's "Alipay public key" (SPKI PEM) that clients verify responses and
    /// notifications with.
    pub fn public_key_pem(&self) -> String {
        self.core.public.to_pem()
    }

    /// The gateway URL to configure a client with.
    pub fn gateway_url(&self) -> String {
        format!("{}/sandbox/alipay/gateway.do", self.core.base())
    }

    /// Registers (or re-keys) a test app: its public key (PEM or bare base64, SPKI or PKCS#1)
    /// checks its requests. Returns the sandbox's public key PEM.
    pub async fn register_app(&self, app_id: &str, app_public_key: &str) -> anyhow::Result<String> {
        let app_id = app_id.trim();
        if app_id.is_empty() || app_id.len() > 32 || !app_id.bytes().all(|c| c.is_ascii_alphanumeric()) {
            anyhow::bail!("app_id must be 1–32 letters or digits");
        }
        let key = PublicKey::parse(app_public_key)?;
        if key == self.core.public {
            anyhow::bail!("the app key must differ from the sandbox's Alipay key");
        }
        self.core.store().register(NAME, app_id, &App { public_key: key.to_base64() }).await?;
        Ok(self.public_key_pem())
    }

    /// The refund window ends: TRADE_FINISHED (notified).
    pub async fn finish(&self, out_trade_no: &str) -> anyhow::Result<()> {
        self.core
            .with_trade(out_trade_no, |c, t, out| c.finish_trade(t, now_ms(), out).map_err(anyhow::Error::msg))
            .await
    }

    /// `WAIT_SCAN` (precreated, not scanned), `WAIT_BUYER_PAY`, `TRADE_SUCCESS`,
    /// `TRADE_FINISHED` or `TRADE_CLOSED`.
    pub async fn trade_state(&self, out_trade_no: &str) -> Option<String> {
        self.core
            .with_trade(out_trade_no, |c, t, out| {
                c.expire_if_due(t, now_ms(), out);
                Ok(t.status_word().to_string())
            })
            .await
            .ok()
    }

    /// Moves a trade's times `days` days into the past (bills are only available for past days).
    pub async fn backdate(&self, out_trade_no: &str, days: i64) -> anyhow::Result<()> {
        let d = days.checked_mul(clinicpay::time::DAY_MS).filter(|d| (0..=3650 * clinicpay::time::DAY_MS).contains(d));
        let d = d.ok_or_else(|| anyhow::anyhow!("days must be 0..=3650"))?;
        self.core
            .with_trade(out_trade_no, |_, t, _| {
                t.created_ms -= d;
                t.paid_ms = t.paid_ms.map(|x| x - d);
                t.closed_ms = t.closed_ms.map(|x| x - d);
                for r in &mut t.refunds {
                    r.at_ms -= d;
                }
                Ok(())
            })
            .await
    }

    #[cfg(test)]
    async fn trade(&self, out_trade_no: &str) -> Option<Trade> {
        self.core.store().latest_trade(NAME, out_trade_no).await.ok().flatten()
    }
}

#[async_trait]
impl SandboxControl for AlipaySandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn courier(&self) -> &Arc<Courier> {
        &self.core.ctx.courier
    }

    /// The payer pays (scanning first if needed): TRADE_SUCCESS and the notification.
    async fn pay(&self, out_trade_no: &str) -> anyhow::Result<()> {
        self.core.with_trade(out_trade_no, |c, t, out| c.pay_trade(t, now_ms(), out).map_err(anyhow::Error::msg)).await
    }

    /// The payer scans the QR code: the trade exists, WAIT_BUYER_PAY.
    async fn scan(&self, out_trade_no: &str) -> anyhow::Result<()> {
        self.core.with_trade(out_trade_no, |c, t, out| c.scan_trade(t, now_ms(), out).map_err(anyhow::Error::msg)).await
    }

    /// The payer leaves the cashier. Alipay sends nothing and the trade stays WAIT_BUYER_PAY
    /// until it expires or the merchant closes it.
    async fn cancel(&self, out_trade_no: &str) -> anyhow::Result<()> {
        self.core
            .with_trade(out_trade_no, |c, t, out| {
                c.expire_if_due(t, now_ms(), out);
                if !t.can_pay() {
                    anyhow::bail!("trade is {}", t.status_word());
                }
                t.buyer_cancelled = true;
                Ok(())
            })
            .await
    }

    async fn set_faults(&self, out_trade_no: &str, faults: FaultSpec) -> anyhow::Result<()> {
        let _op = self.core.op.lock().await;
        match self.core.store().latest_trade::<Trade>(NAME, out_trade_no).await? {
            Some(mut t) => {
                t.faults = faults;
                self.core.store().save_trade(NAME, &t).await
            }
            None => self.core.store().set_setting(NAME, &format!("faults:{out_trade_no}"), &faults, None).await,
        }
    }

    async fn set_default_faults(&self, faults: FaultSpec) -> anyhow::Result<()> {
        self.core.store().set_setting(NAME, "faults:default", &faults, None).await
    }

    async fn trade_view(&self, out_trade_no: &str) -> anyhow::Result<Option<Value>> {
        // refresh expiry first so the view is current
        let _ = self.trade_state(out_trade_no).await;
        let t: Option<Trade> = self.core.store().latest_trade(NAME, out_trade_no).await?;
        Ok(t.map(|t| self.core.view(&t)))
    }

    async fn signed_success_notification(
        &self,
        out_trade_no: &str,
    ) -> anyhow::Result<(Vec<(String, String)>, Vec<u8>)> {
        let t: Trade = self
            .core
            .store()
            .latest_trade(NAME, out_trade_no)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no trade {out_trade_no} in the Alipay sandbox"))?;
        let params = t.success_notice.ok_or_else(|| anyhow::anyhow!("trade {out_trade_no} has not been paid"))?;
        Ok(AlipayNotifier.attempt("", wire::encode_form(&params).as_bytes()))
    }

    async fn action(&self, out_trade_no: &str, action: &str, body: &[u8]) -> Option<anyhow::Result<()>> {
        Some(match action {
            "finish" => self.finish(out_trade_no).await,
            "backdate" => {
                let days =
                    serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("days").and_then(Value::as_i64));
                match days {
                    Some(d) => self.backdate(out_trade_no, d).await,
                    None => Err(anyhow::anyhow!("expected {{\"days\": N}}")),
                }
            }
            _ => return None,
        })
    }
}

#[async_trait]
impl Wakes for AlipaySandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Trades past their `time_expire` close by themselves (A.7), notified if a trade existed.
    async fn wake_due(&self, now: Millis) -> anyhow::Result<usize> {
        let _op = self.core.op.lock().await;
        let due: Vec<Trade> = self.core.store().due_trades(NAME, now, 100).await?;
        let n = due.len();
        let mut out = Vec::new();
        for mut t in due {
            self.core.expire_if_due(&mut t, now, &mut out);
            if t.can_pay() {
                // not yet (expiry moved): nothing to do before its time
                continue;
            }
            self.core.store().save_trade(NAME, &t).await?;
        }
        self.core.send_all(out).await;
        Ok(n)
    }
}

pub fn router(s: Arc<AlipaySandbox>) -> axum::Router {
    axum::Router::new()
        .route("/gateway.do", get(gateway).post(gateway))
        .route("/apps", post(register))
        .route("/pay/{token}", get(payer_page))
        .route("/pay/{token}/confirm", post(payer_confirm))
        .route("/pay/{token}/cancel", post(payer_cancel))
        .route("/bills/{token}", get(bill_download))
        .with_state(s.clone())
        .merge(super::control::routes(s))
}

async fn gateway(
    AxState(s): AxState<Arc<AlipaySandbox>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params = wire::parse_form(q.unwrap_or_default().as_bytes());
    if !body.is_empty() {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if ct.trim_start().to_ascii_lowercase().starts_with("multipart/") {
            let node = param(&params, "method").map(wire::node_name).unwrap_or_else(|| "error_response".into());
            return s.core.signed_json(&node, &fail("40002", "isv.invalid-content-type", "沙箱不支持文件上传接口"));
        }
        params.extend(wire::parse_form(&body));
    }
    s.core.gateway(params).await
}

#[derive(serde::Deserialize)]
struct RegisterApp {
    app_id: String,
    app_public_key: String,
}

async fn register(AxState(s): AxState<Arc<AlipaySandbox>>, body: Bytes) -> Response {
    let req: RegisterApp = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("expected {{app_id, app_public_key}}: {e}")),
    };
    match s.register_app(&req.app_id, &req.app_public_key).await {
        Ok(pem) => axum::Json(json!({
            "app_id": req.app_id.trim(),
            "alipay_public_key": pem,
            "gateway_url": s.gateway_url(),
        }))
        .into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

fn not_found_page() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!DOCTYPE html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><p>二维码无效 Unknown code</p></html>"),
    )
        .into_response()
}

fn page_answer(r: anyhow::Result<Option<Response>>) -> Response {
    match r {
        Ok(Some(resp)) => resp,
        Ok(None) => not_found_page(),
        Err(e) => {
            tracing::error!(error = %e, "the Alipay sandbox could not use its database");
            (StatusCode::INTERNAL_SERVER_ERROR, "sandbox storage failed").into_response()
        }
    }
}

async fn payer_page(AxState(s): AxState<Arc<AlipaySandbox>>, Path(token): Path<String>) -> Response {
    page_answer(
        s.core
            .with_token(&token, |core, t, out| {
                // opening the cashier creates the Alipay trade (a closed / expired code stays closed)
                let _ = core.scan_trade(t, now_ms(), out);
                Html(core.render_trade(t, None)).into_response()
            })
            .await,
    )
}

async fn payer_confirm(AxState(s): AxState<Arc<AlipaySandbox>>, Path(token): Path<String>) -> Response {
    page_answer(
        s.core
            .with_token(&token, |core, t, out| match core.pay_trade(t, now_ms(), out) {
                Ok(()) => match (&t.return_url, t.kind) {
                    (Some(r), Kind::Page | Kind::Wap) => {
                        (StatusCode::FOUND, [(header::LOCATION, core.return_location(t, r))]).into_response()
                    }
                    _ => Html(core.render_trade(t, None)).into_response(),
                },
                Err(e) => {
                    let note = if e.contains("paid") {
                        "支付成功 Paid (already)"
                    } else {
                        "无法付款 Cannot pay: 交易已关闭 closed"
                    };
                    Html(core.render_trade(t, Some(note))).into_response()
                }
            })
            .await,
    )
}

async fn payer_cancel(AxState(s): AxState<Arc<AlipaySandbox>>, Path(token): Path<String>) -> Response {
    page_answer(
        s.core
            .with_token(&token, |core, t, out| {
                core.expire_if_due(t, now_ms(), out);
                if t.can_pay() {
                    t.buyer_cancelled = true;
                }
                Html(core.render_trade(t, None)).into_response()
            })
            .await,
    )
}

async fn bill_download(AxState(s): AxState<Arc<AlipaySandbox>>, Path(token): Path<String>) -> Response {
    let now = now_ms();
    let link: Option<BillLink> = match s.core.store().setting(NAME, &format!("bill:{token}"), now).await {
        Ok(l) => l,
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let Some(link) = link else {
        return (StatusCode::NOT_FOUND, "bill link unknown or expired (links are valid for 30 s)").into_response();
    };
    let rows = match s.core.bill_rows(&link.app_id, link.from_ms, link.to_ms).await {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let account = format!("{}0156", seller_id(&link.app_id));
    match bills::bill_zip(&account, &link.label, link.from_ms, link.to_ms, &rows, now) {
        Ok(zip) => (
            [
                (header::CONTENT_TYPE, "application/zip".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{account}_{}.csv.zip\"", link.label)),
            ],
            zip,
        )
            .into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[cfg(test)]
mod tests;
