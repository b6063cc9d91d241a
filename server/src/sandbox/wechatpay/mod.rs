//! WeChat Pay APIv3 sandbox (G3), mounted at `/sandbox/wechatpay`: an SDK's base URL is
//! `{base}/sandbox/wechatpay`. It speaks PROTOCOLS.md Part B: requests are checked against the
//! merchant's registered key (`Authorization`, B.2), every 2xx answer is signed (B.3) with the
//! "WeChat Pay public key" or with a self-signed platform certificate (B.4), notifications are
//! encrypted with the merchant's APIv3 key and re-signed on every attempt (B.5/B.6), and the trade
//! bill is served in the real file format (B.7). Trades, merchants and bill files live in the
//! sandbox database; provider transaction ids come from a counter that survives restarts.
//!
//! Paths (under the mount point):
//! - `POST merchants` — register `{mchid, appid, merchant_serial_no, merchant_public_key, apiv3_key, mode?}`
//! - `/v3/pay/transactions/{native,jsapi,h5,app}`, `/v3/pay/transactions/out-trade-no/{no}[/close]`,
//!   `/v3/pay/transactions/id/{transaction_id}`, `/v3/refund/domestic/refunds[/{out_refund_no}]`,
//!   `/v3/certificates`, `/v3/bill/tradebill`, `/v3/billdownload/file`
//! - `GET pay/{token}` (payer page; `code_url` points here — the real one is a `weixin://` link),
//!   `POST pay/{token}/confirm`, `POST pay/{token}/cancel`
//! - `control/...` — the test-control API shared by all sandboxes.

mod bills;
mod merchants;
mod operations;
mod trades;
pub mod wire;

use super::control::SandboxControl;
use super::courier::{Courier, Notice, Notifier, WECHAT_SCHEDULE};
use super::page::{self, PayerPage};
use super::store::SandboxStore;
use super::{provider_key, FaultSpec, SandboxCtx, Wakes};
use crate::crypto::{self, x509, PrivateKey, PublicKey};
use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use clinicpay::money::Money;
use clinicpay::time::{fmt_second, local_date, rfc3339_beijing};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use trades::{RefundRec, Trade};
use wire::{yuan, MAX_SKEW_SECS, SCHEME};

/// The sandbox's name in its database and deliveries.
pub const NAME: &str = "wechatpay";
/// Where the sandbox is mounted (SDKs may sign paths with or without it).
pub const MOUNT: &str = "/sandbox/wechatpay";
/// A refund stays PROCESSING this long (time-scaled) before it succeeds.
const REFUND_PROCESSING: Duration = Duration::from_secs(3);
/// Sandbox fee rate: 0.6 %.
const FEE_PERMILLE: i64 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Mode {
    PublicKey,
    Certificate,
}

impl Mode {
    fn word(self) -> &'static str {
        match self {
            Mode::PublicKey => "public_key",
            Mode::Certificate => "certificate",
        }
    }
}

/// A registered merchant (the sandbox's copy of what WeChat would know about it).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Merchant {
    appid: String,
    serial_no: String,
    /// The merchant's API public key (SPKI, base64).
    public_key: String,
    apiv3_key: String,
    public_key_id: String,
    /// How answers and notifications are signed when a request does not say (updated from each
    /// request's `Wechatpay-Serial`).
    mode: Mode,
}

/// A bill file kept for download.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BillFile {
    mchid: String,
    /// base64 of the bytes.
    bytes: String,
    gzip: bool,
}

/// A signing identity: the public-key-mode key with a `PUB_KEY_ID_…`, or the certificate key
/// with the certificate's serial.
#[derive(Clone)]
struct Signer {
    key: Arc<PrivateKey>,
    serial: String,
}

impl Signer {
    fn headers(&self, body: &[u8]) -> Vec<(String, String)> {
        let ts = now_ms().div_euclid(1000).to_string();
        let nonce = crypto::random_alnum(32);
        let sig = self.key.sign_sha256_b64(&wire::response_message(&ts, &nonce, body));
        vec![
            ("Wechatpay-Timestamp".into(), ts),
            ("Wechatpay-Nonce".into(), nonce),
            ("Wechatpay-Signature".into(), sig),
            ("Wechatpay-Serial".into(), self.serial.clone()),
            ("Wechatpay-Signature-Type".into(), SCHEME.to_string()),
            ("Request-ID".into(), request_id()),
        ]
    }
}

/// The authenticated caller of a `/v3` request.
struct Caller {
    mchid: String,
    appid: String,
    apiv3_key: String,
    signer: Signer,
}

/// The sandbox's keys (shared with its notifier).
struct Keys {
    pk_key: Arc<PrivateKey>,
    cert_key: Arc<PrivateKey>,
    cert_serial: String,
}

impl Keys {
    /// `signing` is `public_key:<PUB_KEY_ID_…>` or `certificate`.
    fn signer(&self, signing: &str) -> Signer {
        match signing.strip_prefix("public_key:") {
            Some(id) => Signer { key: self.pk_key.clone(), serial: id.to_string() },
            None => Signer { key: self.cert_key.clone(), serial: self.cert_serial.clone() },
        }
    }

    fn signing(&self, m: &Merchant, mode: Mode) -> String {
        match mode {
            Mode::PublicKey => format!("public_key:{}", m.public_key_id),
            Mode::Certificate => Mode::Certificate.word().to_string(),
        }
    }
}

/// How WeChat Pay delivers: JSON re-signed on every attempt, acknowledged by any 2xx (B.6).
struct WechatNotifier(Arc<Keys>);

impl Notifier for WechatNotifier {
    fn attempt(&self, signing: &str, queued: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
        let mut h = vec![("Content-Type".to_string(), "application/json".to_string())];
        h.extend(self.0.signer(signing).headers(queued));
        (h, queued.to_vec())
    }

    fn accepted(&self, status: u16, _body: &[u8]) -> bool {
        (200..300).contains(&status)
    }

    fn schedule(&self) -> &'static [u64] {
        &WECHAT_SCHEDULE
    }
}

pub struct WechatSandbox {
    ctx: SandboxCtx,
    keys: Arc<Keys>,
    cert_pem: String,
    cert_not_before_ms: i64,
    cert_not_after_ms: i64,
    /// One operation at a time: each reads a trade, changes it and writes it back.
    op: tokio::sync::Mutex<()>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn request_id() -> String {
    crypto::random_alnum(40).to_ascii_uppercase()
}

fn uuid() -> String {
    let h = hex::encode(crypto::random_bytes::<16>());
    format!("{}-{}-4{}-{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[16..20], &h[20..32])
}

fn digits(n: u64, width: usize) -> String {
    let s = format!("{n:0width$}");
    s[s.len() - width..].to_string()
}

fn valid_out_trade_no(s: &str) -> bool {
    (6..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-*|".contains(&b))
}

fn valid_out_refund_no(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-*|@".contains(&b))
}

fn api_error(status: u16, code: &str, message: &str) -> Response {
    api_error_detail(status, code, message, None)
}

fn api_error_detail(status: u16, code: &str, message: &str, detail: Option<serde_json::Value>) -> Response {
    let mut body = json!({ "code": code, "message": message });
    if let Some(d) = detail {
        body["detail"] = d;
    }
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header("Request-ID", request_id())
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn system_error() -> Response {
    api_error(500, "SYSTEM_ERROR", "系统繁忙,请稍后重试")
}

fn storage_error(e: anyhow::Error) -> Response {
    tracing::error!(error = %e, "the WeChat Pay sandbox could not use its database");
    system_error()
}

fn param_error(message: impl AsRef<str>) -> Response {
    api_error(400, "PARAM_ERROR", message.as_ref())
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[derive(Deserialize)]
struct Registration {
    mchid: String,
    appid: String,
    merchant_serial_no: String,
    merchant_public_key: String,
    apiv3_key: String,
    /// `public_key` (default) or `certificate`: how to sign when a request names no key.
    #[serde(default)]
    mode: Option<String>,
}

enum QueryBy {
    OutTradeNo(String),
    TransactionId(String),
}

/// A notification body (B.6): stable `id`, resource encrypted with the merchant's APIv3 key,
/// `associated_data` always present.
fn notification_body(
    apiv3_key: &str,
    event_type: &str,
    summary: &str,
    original_type: &str,
    plaintext: &[u8],
    at_ms: i64,
) -> anyhow::Result<String> {
    let resource = wire::encrypted_resource(apiv3_key, Some(original_type), original_type, plaintext)?;
    Ok(json!({
        "id": uuid(),
        "create_time": rfc3339_beijing(at_ms),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": resource,
    })
    .to_string())
}

impl WechatSandbox {
    pub fn new(ctx: SandboxCtx) -> anyhow::Result<Self> {
        let pk_key = provider_key(&ctx.settings, "wechatpay")?;
        let cert_key = provider_key(&ctx.settings, "wechatpay-platform-cert")?;
        // a stable serial derived from the key: positive, first byte 0x10..0x7F (B.4)
        let digest = hex::decode(crypto::sha256_hex(cert_key.public_key().spki_der())).context("digest")?;
        let mut serial = digest[..20].to_vec();
        serial[0] = 0x10 + serial[0] % 0x70;
        let not_before = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).map(clinicpay::time::day_start).unwrap_or(0);
        let not_after = chrono::NaiveDate::from_ymd_opt(2044, 1, 1).map(clinicpay::time::day_start).unwrap_or(0);
        let cert_pem = x509::self_signed_certificate(
            &cert_key,
            &serial,
            "CN=ClinicPay Sandbox WeChat Pay Platform,O=ClinicPay Sandbox,C=CN",
            (not_before / 1000) as u64,
            (not_after / 1000) as u64,
        )?;
        let parsed = x509::parse_certificate_pem(&cert_pem)?;
        let keys =
            Arc::new(Keys { pk_key: Arc::new(pk_key), cert_key: Arc::new(cert_key), cert_serial: parsed.serial_no });
        ctx.courier.register(NAME, Arc::new(WechatNotifier(keys.clone())));
        Ok(WechatSandbox {
            ctx,
            keys,
            cert_pem,
            cert_not_before_ms: not_before,
            cert_not_after_ms: not_after,
            op: tokio::sync::Mutex::new(()),
        })
    }

    fn store(&self) -> &SandboxStore {
        &self.ctx.store
    }

    fn base(&self) -> &str {
        self.ctx.settings.base_url.trim_end_matches('/')
    }

    fn page_url(&self, token: &str) -> String {
        format!("{}{MOUNT}/pay/{token}", self.base())
    }

    async fn merchant(&self, mchid: &str) -> anyhow::Result<Option<Merchant>> {
        self.store().registration(NAME, mchid).await
    }

    async fn save(&self, t: &Trade) -> anyhow::Result<()> {
        self.store().save_trade(NAME, t).await?;
        self.ctx.wake.notify_one();
        Ok(())
    }

    async fn send(&self, n: Notice, faults: &FaultSpec) {
        if let Err(e) = self.ctx.courier.send(n, faults).await {
            tracing::error!(error = %e, "the WeChat Pay sandbox could not queue a notification");
        }
    }

    // ----- Rust API ------------------------------------------------------------------------

    async fn latest(&self, out_trade_no: &str) -> anyhow::Result<Trade> {
        self.store().latest_trade(NAME, out_trade_no).await?.ok_or_else(|| anyhow!("no trade {out_trade_no}"))
    }

    /// The trade's `trade_state` (`NOTPAY`, `SUCCESS`, `CLOSED`, `REFUND`).
    pub async fn trade_state(&self, out_trade_no: &str) -> Option<String> {
        let mut t = self.latest(out_trade_no).await.ok()?;
        t.refresh(now_ms());
        Some(t.state)
    }

    // ----- /v3 -----------------------------------------------------------------------------

    // ----- payer page ----------------------------------------------------------------------

    fn render_page(&self, t: &Trade) -> String {
        let status = match t.state.as_str() {
            "NOTPAY" | "USERPAYING" if t.payer_cancelled => "已取消支付 Payment cancelled — you can still pay",
            "NOTPAY" | "USERPAYING" => "待支付 Waiting for payment",
            "SUCCESS" => "支付成功 Paid",
            "REFUND" => "支付成功，已退款 Paid, refunded",
            "CLOSED" => "订单已关闭 Closed",
            _ => "—",
        };
        let open = t.open();
        let page_url = self.page_url(&t.token);
        page::render(&PayerPage {
            brand: "微信支付 · WeChat Pay",
            color: "#07c160",
            merchant: &format!("商户号 {}", t.mchid),
            subject: &t.description,
            amount: Money::from_fen(t.total_fen).unwrap_or_default(),
            status,
            pay_action: open.then(|| format!("{page_url}/confirm")),
            cancel_action: (open && !t.payer_cancelled).then(|| format!("{page_url}/cancel")),
            pay_fields_html: String::new(),
            pay_label: "确认支付 Pay",
        })
    }

    async fn by_token(&self, token: &str) -> anyhow::Result<Option<Trade>> {
        let mut t: Option<Trade> = self.store().trade_by_token(NAME, token).await?;
        if let Some(t) = t.as_mut() {
            t.refresh(now_ms());
        }
        Ok(t)
    }
}

#[async_trait]
impl SandboxControl for WechatSandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn courier(&self) -> &Arc<Courier> {
        &self.ctx.courier
    }

    async fn pay(&self, out_trade_no: &str) -> anyhow::Result<()> {
        let _op = self.op.lock().await;
        let t = self.latest(out_trade_no).await?;
        self.pay_trade(t).await
    }

    async fn scan(&self, out_trade_no: &str) -> anyhow::Result<()> {
        // a Native code needs no scan step at WeChat: the trade exists from the prepay
        self.latest(out_trade_no).await.map(|_| ())
    }

    /// The payer gives up (the trade stays NOTPAY until it expires or is closed, as at WeChat).
    async fn cancel(&self, out_trade_no: &str) -> anyhow::Result<()> {
        let _op = self.op.lock().await;
        let mut t = self.latest(out_trade_no).await?;
        t.payer_cancelled = true;
        self.save(&t).await
    }

    async fn set_faults(&self, out_trade_no: &str, faults: FaultSpec) -> anyhow::Result<()> {
        let _op = self.op.lock().await;
        let mut t = self.latest(out_trade_no).await?;
        t.faults = faults;
        self.save(&t).await
    }

    async fn set_default_faults(&self, faults: FaultSpec) -> anyhow::Result<()> {
        self.store().set_setting(NAME, "faults:default", &faults, None).await
    }

    async fn trade_view(&self, out_trade_no: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let t: Option<Trade> = self.store().latest_trade(NAME, out_trade_no).await?;
        Ok(t.map(|mut t| {
            t.refresh(now_ms());
            let url = self.page_url(&t.token);
            t.view(url)
        }))
    }

    /// A valid `TRANSACTION.SUCCESS` notification for a paid trade, signed now, exactly as the
    /// sandbox sends it (same body and `id` as the delivered one).
    async fn signed_success_notification(
        &self,
        out_trade_no: &str,
    ) -> anyhow::Result<(Vec<(String, String)>, Vec<u8>)> {
        let t = self.latest(out_trade_no).await?;
        let body = t.success_event.clone().ok_or_else(|| anyhow!("trade {out_trade_no} is not paid"))?;
        let m = self.merchant(&t.mchid).await?.ok_or_else(|| anyhow!("merchant {} is gone", t.mchid))?;
        Ok(WechatNotifier(self.keys.clone()).attempt(&self.keys.signing(&m, m.mode), body.as_bytes()))
    }
}

#[async_trait]
impl Wakes for WechatSandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Expired trades close; refunds whose time has come succeed and are notified.
    async fn wake_due(&self, now: i64) -> anyhow::Result<usize> {
        let _op = self.op.lock().await;
        let due: Vec<Trade> = self.store().due_trades(NAME, now, 100).await?;
        let n = due.len();
        for mut t in due {
            t.refresh(now);
            if t.refunds.iter().any(|r| r.status == "PROCESSING" && r.due_ms.is_some_and(|d| d <= now)) {
                self.complete_refunds(t, now).await?;
            } else {
                self.save(&t).await?;
            }
        }
        Ok(n)
    }
}

// ----- handlers ----------------------------------------------------------------------------

async fn v3(
    State(s): State<Arc<WechatSandbox>>,
    method: Method,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segs: Vec<String> = uri.path().trim_start_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let query: HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let known = matches!(
        (&method, segs.as_slice()),
        (&Method::POST, ["v3", "pay", "transactions", "native" | "jsapi" | "h5" | "app"])
            | (&Method::GET, ["v3", "pay", "transactions", "out-trade-no" | "id", _])
            | (&Method::POST, ["v3", "pay", "transactions", "out-trade-no", _, "close"])
            | (&Method::POST, ["v3", "refund", "domestic", "refunds"])
            | (&Method::GET, ["v3", "refund", "domestic", "refunds", _])
            | (&Method::GET, ["v3", "certificates"])
            | (&Method::GET, ["v3", "bill", "tradebill"])
            | (&Method::GET, ["v3", "billdownload", "file"])
    );
    if !known {
        return api_error(404, "NOT_FOUND", "请求的资源不存在");
    }
    let force_cert = segs.as_slice() == ["v3", "certificates"];
    let c = match s.authenticate(&method, &original, &headers, &body, force_cert).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let answer = match segs.as_slice() {
        ["v3", "pay", "transactions", "out-trade-no", no] => {
            s.query(&c, QueryBy::OutTradeNo(no.to_string()), &query).await
        }
        ["v3", "pay", "transactions", "id", id] => s.query(&c, QueryBy::TransactionId(id.to_string()), &query).await,
        ["v3", "pay", "transactions", "out-trade-no", no, "close"] => s.close(&c, no, &body).await,
        ["v3", "pay", "transactions", kind] => s.prepay(&c, kind, &body).await,
        ["v3", "refund", "domestic", "refunds"] => s.refund(&c, &body).await,
        ["v3", "refund", "domestic", "refunds", no] => s.query_refund(&c, no).await,
        ["v3", "certificates"] => Ok(s.certificates(&c)),
        ["v3", "bill", "tradebill"] => s.tradebill(&c, &query).await,
        _ => s.bill_file(&c, &query).await,
    };
    answer.unwrap_or_else(storage_error)
}

async fn register(State(s): State<Arc<WechatSandbox>>, body: Bytes) -> Response {
    let r: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return param_error(format!("registration: {e}")),
    };
    let mode = match r.mode.as_deref() {
        None | Some("public_key") => Mode::PublicKey,
        Some("certificate") => Mode::Certificate,
        Some(other) => return param_error(format!("mode {other:?}: expected public_key or certificate")),
    };
    match s.register(&r.mchid, &r.appid, &r.merchant_serial_no, &r.merchant_public_key, &r.apiv3_key, mode).await {
        Ok((platform_public_key, public_key_id)) => {
            let (platform_serial_no, platform_certificate) = s.platform_certificate();
            axum::Json(json!({
                "mchid": r.mchid,
                "platform_public_key": platform_public_key,
                "public_key_id": public_key_id,
                "platform_serial_no": platform_serial_no,
                "platform_certificate": platform_certificate,
            }))
            .into_response()
        }
        Err(e) => param_error(format!("{e:#}")),
    }
}

fn unknown_order() -> Response {
    (StatusCode::NOT_FOUND, Html("<h1>订单不存在 Unknown order</h1>".to_string())).into_response()
}

async fn payer_page(State(s): State<Arc<WechatSandbox>>, Path(token): Path<String>) -> Response {
    match s.by_token(&token).await {
        Ok(Some(t)) => Html(s.render_page(&t)).into_response(),
        Ok(None) => unknown_order(),
        Err(e) => storage_error(e),
    }
}

fn see_page(s: &WechatSandbox, token: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, s.page_url(token))]).into_response()
}

async fn payer_confirm(State(s): State<Arc<WechatSandbox>>, Path(token): Path<String>) -> Response {
    let _op = s.op.lock().await;
    match s.by_token(&token).await {
        Ok(Some(t)) => {
            if let Err(e) = s.pay_trade(t).await {
                tracing::info!(error = %e, "sandbox payer page: payment refused");
            }
            see_page(&s, &token)
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => storage_error(e),
    }
}

async fn payer_cancel(State(s): State<Arc<WechatSandbox>>, Path(token): Path<String>) -> Response {
    let _op = s.op.lock().await;
    match s.by_token(&token).await {
        Ok(Some(mut t)) => {
            t.payer_cancelled = true;
            if let Err(e) = s.save(&t).await {
                return storage_error(e);
            }
            see_page(&s, &token)
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => storage_error(e),
    }
}

pub fn router(s: Arc<WechatSandbox>) -> axum::Router {
    axum::Router::new()
        .route("/merchants", post(register))
        .route("/v3/{*rest}", any(v3))
        .route("/pay/{token}", get(payer_page))
        .route("/pay/{token}/confirm", post(payer_confirm))
        .route("/pay/{token}/cancel", post(payer_cancel))
        .with_state(s.clone())
        .merge(super::control::routes(s))
}

#[cfg(test)]
mod tests;
