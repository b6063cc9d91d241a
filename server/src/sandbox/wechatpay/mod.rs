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

    /// Registers (or replaces) a merchant; returns the WeChat Pay public key (PEM) and its id.
    pub async fn register_merchant(
        &self,
        mchid: &str,
        appid: &str,
        merchant_serial_no: &str,
        merchant_public_key_pem: &str,
        apiv3_key: &str,
    ) -> anyhow::Result<(String, String)> {
        self.register(mchid, appid, merchant_serial_no, merchant_public_key_pem, apiv3_key, Mode::PublicKey).await
    }

    async fn register(
        &self,
        mchid: &str,
        appid: &str,
        merchant_serial_no: &str,
        merchant_public_key_pem: &str,
        apiv3_key: &str,
        mode: Mode,
    ) -> anyhow::Result<(String, String)> {
        if mchid.is_empty() || mchid.len() > 32 || !mchid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!("mchid must be 1-32 letters or digits");
        }
        if appid.trim().is_empty() || merchant_serial_no.trim().is_empty() {
            bail!("appid and merchant_serial_no are required");
        }
        if apiv3_key.len() != 32 || !apiv3_key.is_ascii() {
            bail!("apiv3_key must be 32 ASCII characters");
        }
        let key = PublicKey::parse(merchant_public_key_pem).context("merchant_public_key")?;
        let mch_digits: u64 = mchid
            .bytes()
            .filter(u8::is_ascii_digit)
            .fold(0u64, |n, b| n.wrapping_mul(10).wrapping_add(u64::from(b - b'0')) % 10_000_000_000);
        let public_key_id = format!("PUB_KEY_ID_01{}{}", digits(mch_digits, 10), digits(1, 24));
        let m = Merchant {
            appid: appid.to_string(),
            serial_no: merchant_serial_no.to_string(),
            public_key: key.to_base64(),
            apiv3_key: apiv3_key.to_string(),
            public_key_id: public_key_id.clone(),
            mode,
        };
        self.store().register(NAME, mchid, &m).await?;
        Ok((self.keys.pk_key.public_key().to_pem(), public_key_id))
    }

    /// The platform certificate (serial, PEM) served by `/v3/certificates`.
    pub fn platform_certificate(&self) -> (String, String) {
        (self.keys.cert_serial.clone(), self.cert_pem.clone())
    }

    /// The WeChat Pay public key (PEM) of public-key mode.
    pub fn platform_public_key(&self) -> String {
        self.keys.pk_key.public_key().to_pem()
    }

    /// The payer pays a trade: SUCCESS and `TRANSACTION.SUCCESS`.
    async fn pay_trade(&self, mut t: Trade) -> anyhow::Result<()> {
        let now = now_ms();
        t.refresh(now);
        match t.state.as_str() {
            "NOTPAY" | "USERPAYING" => {}
            "SUCCESS" | "REFUND" => return Ok(()),
            other => bail!("trade {} is {other} and cannot be paid", t.out_trade_no),
        }
        let m = self.merchant(&t.mchid).await?.ok_or_else(|| anyhow!("merchant {} is gone", t.mchid))?;
        let seq = self.store().next("wechatpay.transaction").await?;
        let date = local_date(now).map(|d| d.format("%Y%m%d").to_string()).unwrap_or_default();
        t.state = "SUCCESS".into();
        t.transaction_id = Some(format!("4200000{date}{}", digits(seq, 13)));
        t.success_ms = Some(now);
        if t.payer_openid.is_none() {
            t.payer_openid = Some(format!("o{}", crypto::random_alnum(27)));
        }
        let plain = serde_json::to_vec(&t.transaction())?;
        let body = notification_body(&m.apiv3_key, "TRANSACTION.SUCCESS", "支付成功", "transaction", &plain, now)?;
        t.success_event = Some(body.clone());
        self.save(&t).await?;
        let notice = Notice {
            sandbox: NAME,
            label: format!("TRANSACTION.SUCCESS {}", t.out_trade_no),
            out_trade_no: t.out_trade_no.clone(),
            url: t.notify_url.clone(),
            body: body.into_bytes(),
            signing: self.keys.signing(&m, m.mode),
        };
        self.send(notice, &t.faults).await;
        Ok(())
    }

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

    /// Checks `Authorization` against the merchant's key, over the request target as sent or
    /// with the mount prefix stripped (B.2, ARCHITECTURE.md).
    async fn authenticate(
        &self,
        method: &Method,
        original: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        force_cert: bool,
    ) -> Result<Caller, Response> {
        let sign_error = |issue: &str, url: &str| {
            api_error_detail(
                401,
                "SIGN_ERROR",
                "签名错误，请检查后再试",
                Some(json!({
                    "field": "signature",
                    "location": "authorization",
                    "detail": { "issue": issue },
                    "sign_information": { "method": method.as_str(), "url": url },
                })),
            )
        };
        let target = original.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
        let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(wire::read_authorization);
        let Some(auth) = auth else {
            return Err(sign_error("authorization header is missing or malformed", &target));
        };
        let mut m = match self.merchant(&auth.mchid).await {
            Ok(Some(m)) => m,
            Ok(None) => return Err(api_error(400, "MCH_NOT_EXISTS", "商户号不存在")),
            Err(e) => return Err(storage_error(e)),
        };
        if !wire::same_serial(&auth.serial_no, &m.serial_no) {
            return Err(sign_error("serial_no does not match the merchant certificate", &target));
        }
        let ts: i64 = match auth.timestamp.parse() {
            Ok(t) => t,
            Err(_) => return Err(sign_error("timestamp is not a number", &target)),
        };
        if (i128::from(now_ms().div_euclid(1000)) - i128::from(ts)).abs() >= i128::from(MAX_SKEW_SECS) {
            return Err(sign_error("timestamp expired", &target));
        }
        let Ok(key) = PublicKey::parse(&m.public_key) else { return Err(system_error()) };
        let mut candidates = vec![target.clone()];
        if let Some(rest) = target.strip_prefix(MOUNT) {
            candidates.push(rest.to_string());
        }
        let ok = candidates.iter().any(|url| {
            key.verify_sha256_b64(
                &wire::request_message(method.as_str(), url, &auth.timestamp, &auth.nonce_str, body),
                &auth.signature,
            )
        });
        if !ok {
            return Err(sign_error("sign not match", &target));
        }
        let asked = headers.get("wechatpay-serial").and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
        let remembered = if asked.starts_with("PUB_KEY_ID_") {
            Mode::PublicKey
        } else if !asked.is_empty() && !force_cert {
            Mode::Certificate
        } else {
            m.mode
        };
        if remembered != m.mode {
            m.mode = remembered;
            if let Err(e) = self.store().register(NAME, &auth.mchid, &m).await {
                return Err(storage_error(e));
            }
        }
        let mode = if force_cert { Mode::Certificate } else { m.mode };
        let signer = self.keys.signer(&self.keys.signing(&m, mode));
        Ok(Caller { mchid: auth.mchid, appid: m.appid.clone(), apiv3_key: m.apiv3_key.clone(), signer })
    }

    fn signed(&self, status: StatusCode, body: Vec<u8>, signer: &Signer) -> Response {
        let mut b = Response::builder().status(status).header(header::CONTENT_TYPE, "application/json; charset=utf-8");
        for (k, v) in signer.headers(&body) {
            b = b.header(k, v);
        }
        b.body(Body::from(body)).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }

    fn ok_json(&self, value: &serde_json::Value, c: &Caller) -> Response {
        self.signed(StatusCode::OK, value.to_string().into_bytes(), &c.signer)
    }

    async fn prepay(&self, c: &Caller, kind: &str, body: &[u8]) -> anyhow::Result<Response> {
        let req: wire::Prepay = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return Ok(param_error(format!("请求参数不符合规则: {e}"))),
        };
        if req.mchid != c.mchid {
            return Ok(param_error("mchid与请求签名的商户号不一致"));
        }
        if req.appid != c.appid {
            return Ok(api_error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配"));
        }
        let desc_len = req.description.chars().count();
        if desc_len == 0 || desc_len > 127 {
            return Ok(param_error("description 长度应为1到127个字符"));
        }
        if !valid_out_trade_no(&req.out_trade_no) {
            return Ok(param_error("out_trade_no 应为6到32位数字、大小写字母或_-*|"));
        }
        if !(req.notify_url.starts_with("https://") || req.notify_url.starts_with("http://"))
            || req.notify_url.len() > 256
        {
            return Ok(param_error("notify_url 格式不正确"));
        }
        if req.amount.total <= 0 || req.amount.total > 100_000_000_000 {
            return Ok(param_error("amount.total 应为正整数（分）"));
        }
        if req.amount.currency.as_deref().is_some_and(|c| c != "CNY") {
            return Ok(param_error("amount.currency 仅支持CNY"));
        }
        let time_expire_ms = match req.time_expire.as_deref() {
            None => None,
            Some(s) => match wire::rfc3339_ms(s) {
                Some(ms) => Some(ms),
                None => return Ok(param_error("time_expire 应为RFC 3339格式")),
            },
        };
        let openid = req.payer.as_ref().and_then(|p| p.openid.clone()).filter(|s| !s.is_empty());
        let trade_type = match kind {
            "native" => "NATIVE",
            "jsapi" => {
                if openid.is_none() {
                    return Ok(param_error("payer.openid 为必填项"));
                }
                "JSAPI"
            }
            "h5" => {
                let scene = req.scene_info.as_ref();
                let ip = scene.and_then(|s| s.payer_client_ip.as_deref()).filter(|s| !s.is_empty());
                let h5 = scene.and_then(|s| s.h5_info.as_ref()).filter(|h| !h.kind.is_empty());
                if ip.is_none() || h5.is_none() {
                    return Ok(param_error("scene_info.payer_client_ip 与 scene_info.h5_info.type 为必填项"));
                }
                "MWEB"
            }
            _ => "APP",
        };
        let fingerprint = format!(
            "{trade_type}|{}|{}|{}|{}",
            req.amount.total,
            req.description,
            req.notify_url,
            openid.as_deref().unwrap_or("")
        );
        let _op = self.op.lock().await;
        let now = now_ms();
        if let Some(mut t) = self.store().trade::<Trade>(NAME, &c.mchid, &req.out_trade_no).await? {
            t.refresh(now);
            let failed = std::mem::take(&mut t.faults.fail_next_call);
            self.save(&t).await?;
            if failed {
                return Ok(system_error());
            }
            if t.paid() {
                return Ok(api_error(400, "ORDERPAID", "该订单已支付"));
            }
            if t.state == "CLOSED" {
                return Ok(api_error(400, "ORDER_CLOSED", "订单已关闭"));
            }
            if t.fingerprint != fingerprint {
                return Ok(api_error(400, "INVALID_REQUEST", "201 商户订单号重复"));
            }
            return Ok(self.ok_json(&t.answer, c));
        }
        let seq = self.store().next("wechatpay.prepay").await?;
        let token = crypto::random_alnum(24);
        let prepay_id = format!(
            "wx{}{}{}",
            clinicpay::time::to_beijing(now).map(|t| t.format("%Y%m%d%H%M%S").to_string()).unwrap_or_default(),
            digits(seq, 8),
            crypto::random_alnum(12).to_ascii_lowercase()
        );
        let page = self.page_url(&token);
        let answer = match trade_type {
            "NATIVE" => json!({ "code_url": page }),
            "MWEB" => json!({ "h5_url": format!("{page}?prepay_id={prepay_id}") }),
            _ => json!({ "prepay_id": prepay_id }),
        };
        let faults = self.store().setting(NAME, "faults:default", now).await?.unwrap_or_default();
        let t = Trade {
            mchid: c.mchid.clone(),
            appid: req.appid.clone(),
            out_trade_no: req.out_trade_no.clone(),
            trade_type: trade_type.into(),
            description: req.description.clone(),
            attach: req.attach.clone(),
            notify_url: req.notify_url.clone(),
            total_fen: req.amount.total,
            time_expire_ms,
            payer_openid: openid,
            state: "NOTPAY".into(),
            transaction_id: None,
            success_ms: None,
            token,
            answer: answer.clone(),
            fingerprint,
            refunds: Vec::new(),
            faults,
            payer_cancelled: false,
            success_event: None,
        };
        self.save(&t).await?;
        Ok(self.ok_json(&answer, c))
    }

    async fn query(&self, c: &Caller, by: QueryBy, query: &HashMap<String, String>) -> anyhow::Result<Response> {
        match query.get("mchid") {
            None => return Ok(param_error("mchid 为必填项")),
            Some(m) if *m != c.mchid => return Ok(param_error("mchid与请求签名的商户号不一致")),
            _ => {}
        }
        let _op = self.op.lock().await;
        let t: Option<Trade> = match by {
            QueryBy::OutTradeNo(no) => self.store().trade(NAME, &c.mchid, &no).await?,
            QueryBy::TransactionId(id) => {
                self.store().trade_by_txn::<Trade>(NAME, &id).await?.filter(|t| t.mchid == c.mchid)
            }
        };
        let Some(mut t) = t else { return Ok(api_error(404, "ORDER_NOT_EXIST", "订单不存在")) };
        t.refresh(now_ms());
        let failed = std::mem::take(&mut t.faults.fail_next_call);
        self.save(&t).await?;
        if failed {
            return Ok(system_error());
        }
        Ok(self.ok_json(&t.transaction(), c))
    }

    async fn close(&self, c: &Caller, out_trade_no: &str, body: &[u8]) -> anyhow::Result<Response> {
        #[derive(Deserialize)]
        struct CloseBody {
            mchid: String,
        }
        match serde_json::from_slice::<CloseBody>(body) {
            Ok(b) if b.mchid == c.mchid => {}
            Ok(_) => return Ok(param_error("mchid与请求签名的商户号不一致")),
            Err(e) => return Ok(param_error(format!("请求参数不符合规则: {e}"))),
        }
        let _op = self.op.lock().await;
        let Some(mut t) = self.store().trade::<Trade>(NAME, &c.mchid, out_trade_no).await? else {
            return Ok(api_error(404, "ORDER_NOT_EXIST", "订单不存在"));
        };
        t.refresh(now_ms());
        let failed = std::mem::take(&mut t.faults.fail_next_call);
        let paid = t.paid();
        if !failed && !paid {
            t.state = "CLOSED".into();
        }
        self.save(&t).await?;
        if failed {
            return Ok(system_error());
        }
        if paid {
            return Ok(api_error(400, "ORDERPAID", "订单已支付"));
        }
        Ok(self.signed(StatusCode::NO_CONTENT, Vec::new(), &c.signer))
    }

    async fn refund(&self, c: &Caller, body: &[u8]) -> anyhow::Result<Response> {
        let req: wire::RefundRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return Ok(param_error(format!("请求参数不符合规则: {e}"))),
        };
        if !valid_out_refund_no(&req.out_refund_no) {
            return Ok(param_error("out_refund_no 格式不正确"));
        }
        if req.amount.currency != "CNY" {
            return Ok(param_error("amount.currency 仅支持CNY"));
        }
        if req.amount.refund <= 0 || req.amount.total <= 0 {
            return Ok(param_error("amount.refund 与 amount.total 应为正整数（分）"));
        }
        let _op = self.op.lock().await;
        let t: Option<Trade> = match (&req.out_trade_no, &req.transaction_id) {
            (Some(no), _) => self.store().trade(NAME, &c.mchid, no).await?,
            (None, Some(id)) => self.store().trade_by_txn::<Trade>(NAME, id).await?.filter(|t| t.mchid == c.mchid),
            (None, None) => return Ok(param_error("transaction_id 与 out_trade_no 必须二选一")),
        };
        let Some(mut t) = t else { return Ok(api_error(404, "RESOURCE_NOT_EXISTS", "订单不存在")) };
        let existing = self.store().refund_order(NAME, &c.mchid, &req.out_refund_no).await?;
        t.refresh(now_ms());
        if std::mem::take(&mut t.faults.fail_next_call) {
            self.save(&t).await?;
            return Ok(system_error());
        }
        if let Some(other_trade) = existing {
            let same = other_trade == t.out_trade_no;
            return Ok(match t.refunds.iter().find(|r| same && r.out_refund_no == req.out_refund_no) {
                Some(r) if r.amount_fen == req.amount.refund => self.ok_json(&t.refund_json(r), c),
                _ => api_error(400, "INVALID_REQUEST", "退款单号已存在，但请求参数与原退款单不一致"),
            });
        }
        if !t.paid() {
            return Ok(api_error(404, "RESOURCE_NOT_EXISTS", "订单未支付，不能发起退款"));
        }
        if req.amount.total != t.total_fen {
            return Ok(api_error(400, "INVALID_REQUEST", "订单金额与原订单金额不一致"));
        }
        if t.refunds.len() >= 50 {
            return Ok(api_error(400, "INVALID_REQUEST", "部分退款次数不能超过50次"));
        }
        if t.refunded_fen() + req.amount.refund > t.total_fen {
            return Ok(api_error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额"));
        }
        let now = now_ms();
        let seq = self.store().next("wechatpay.refund").await?;
        let date = local_date(now).map(|d| d.format("%Y%m%d").to_string()).unwrap_or_default();
        let wait = self.ctx.settings.scaled(REFUND_PROCESSING).as_millis() as i64;
        let rec = RefundRec {
            refund_id: format!("5030000{date}{}", digits(seq, 14)),
            out_refund_no: req.out_refund_no.clone(),
            amount_fen: req.amount.refund,
            status: "PROCESSING".into(),
            reason: req.reason.clone(),
            notify_url: req.notify_url.clone().filter(|u| !u.is_empty()),
            create_ms: now,
            success_ms: None,
            due_ms: Some(now + wait),
        };
        let answer = t.refund_json(&rec);
        t.refunds.push(rec);
        t.state = "REFUND".into();
        self.store().index_refund(NAME, &c.mchid, &req.out_refund_no, &t.out_trade_no).await?;
        self.save(&t).await?;
        Ok(self.ok_json(&answer, c))
    }

    /// PROCESSING → SUCCESS, then `REFUND.SUCCESS` to the refund's (or the trade's) notify_url.
    async fn complete_refunds(&self, mut t: Trade, now: i64) -> anyhow::Result<()> {
        let m = self.merchant(&t.mchid).await?.ok_or_else(|| anyhow!("merchant {} is gone", t.mchid))?;
        let mut notices = Vec::new();
        for i in 0..t.refunds.len() {
            let r = &mut t.refunds[i];
            if r.status != "PROCESSING" || r.due_ms.is_some_and(|d| d > now) {
                continue;
            }
            r.status = "SUCCESS".into();
            r.success_ms = Some(now);
            r.due_ms = None;
            let r = t.refunds[i].clone();
            let plain = serde_json::to_vec(&t.refund_notice(&r))?;
            let body = notification_body(&m.apiv3_key, "REFUND.SUCCESS", "退款成功", "refund", &plain, now)?;
            notices.push(Notice {
                sandbox: NAME,
                label: format!("REFUND.SUCCESS {} {}", t.out_trade_no, r.out_refund_no),
                out_trade_no: t.out_trade_no.clone(),
                url: r.notify_url.clone().unwrap_or_else(|| t.notify_url.clone()),
                body: body.into_bytes(),
                signing: self.keys.signing(&m, m.mode),
            });
        }
        self.save(&t).await?;
        for n in notices {
            self.send(n, &t.faults).await;
        }
        Ok(())
    }

    async fn query_refund(&self, c: &Caller, out_refund_no: &str) -> anyhow::Result<Response> {
        let _op = self.op.lock().await;
        let Some(no) = self.store().refund_order(NAME, &c.mchid, out_refund_no).await? else {
            return Ok(api_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"));
        };
        let Some(mut t) = self.store().trade::<Trade>(NAME, &c.mchid, &no).await? else {
            return Ok(api_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"));
        };
        if std::mem::take(&mut t.faults.fail_next_call) {
            self.save(&t).await?;
            return Ok(system_error());
        }
        Ok(match t.refunds.iter().find(|r| r.out_refund_no == out_refund_no) {
            Some(r) => self.ok_json(&t.refund_json(r), c),
            None => api_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"),
        })
    }

    fn certificates(&self, c: &Caller) -> Response {
        let Ok(enc) = wire::encrypted_resource(&c.apiv3_key, None, "certificate", self.cert_pem.as_bytes()) else {
            return system_error();
        };
        let list = json!({ "data": [{
            "serial_no": self.keys.cert_serial,
            "effective_time": rfc3339_beijing(self.cert_not_before_ms),
            "expire_time": rfc3339_beijing(self.cert_not_after_ms),
            "encrypt_certificate": enc,
        }]});
        self.ok_json(&list, c)
    }

    async fn tradebill(&self, c: &Caller, query: &HashMap<String, String>) -> anyhow::Result<Response> {
        let Some(date) = query.get("bill_date").and_then(|d| clinicpay::time::parse_date(d)) else {
            return Ok(param_error("bill_date 应为 YYYY-MM-DD"));
        };
        let bill_type = query.get("bill_type").map(String::as_str).unwrap_or("ALL");
        if !matches!(bill_type, "ALL" | "SUCCESS" | "REFUND") {
            return Ok(param_error("bill_type 仅支持 ALL、SUCCESS、REFUND"));
        }
        let gzip = match query.get("tar_type").map(String::as_str) {
            None | Some("") => false,
            Some("GZIP") => true,
            Some(_) => return Ok(param_error("tar_type 仅支持 GZIP")),
        };
        let now = now_ms();
        if local_date(now).is_some_and(|today| date > today) {
            return Ok(api_error(400, "INVALID_REQUEST", "账单日期不能晚于当前日期"));
        }
        let Some(appid) = self.merchant(&c.mchid).await?.map(|m| m.appid) else {
            return Ok(api_error(400, "MCH_NOT_EXISTS", "商户号不存在"));
        };
        let from = clinicpay::time::day_start(date);
        let to = from + clinicpay::time::DAY_MS;
        let mut rows: Vec<(i64, Vec<String>)> = Vec::new();
        for t in self.store().trades_with_money::<Trade>(NAME, &c.mchid, from, to).await? {
            let txn = t.transaction_id.clone().unwrap_or_default();
            let openid = t.payer_openid.clone().unwrap_or_default();
            let base = |time: i64, state: &str| -> Vec<String> {
                vec![
                    fmt_second(time),
                    appid.clone(),
                    c.mchid.clone(),
                    "0".into(),
                    String::new(),
                    txn.clone(),
                    t.out_trade_no.clone(),
                    openid.clone(),
                    t.trade_type.clone(),
                    state.into(),
                    "OTHERS".into(),
                    "CNY".into(),
                ]
            };
            if let Some(paid) = t.success_ms.filter(|ms| local_date(*ms) == Some(date)) {
                if bill_type != "REFUND" {
                    let fee = (t.total_fen * FEE_PERMILLE + 500) / 1000;
                    let mut row = base(paid, "SUCCESS");
                    row.extend([
                        yuan(t.total_fen),
                        "0.00".into(),
                        "0".into(),
                        "0".into(),
                        "0.00".into(),
                        "0.00".into(),
                        String::new(),
                        String::new(),
                        wire::cell(&t.description),
                        wire::cell(t.attach.as_deref().unwrap_or("")),
                        format!("{}000", yuan(fee)),
                        "0.60%".into(),
                        yuan(t.total_fen),
                        "0.00".into(),
                        String::new(),
                    ]);
                    rows.push((paid, row));
                }
            }
            if bill_type == "SUCCESS" {
                continue;
            }
            for r in t.refunds.iter().filter(|r| local_date(r.create_ms) == Some(date)) {
                let mut row = base(r.create_ms, "REFUND");
                row.extend([
                    "0.00".into(),
                    "0.00".into(),
                    r.refund_id.clone(),
                    r.out_refund_no.clone(),
                    yuan(r.amount_fen),
                    "0.00".into(),
                    "ORIGINAL".into(),
                    r.status.clone(),
                    wire::cell(&t.description),
                    wire::cell(t.attach.as_deref().unwrap_or("")),
                    "0.00000".into(),
                    "0.60%".into(),
                    "0.00".into(),
                    yuan(r.amount_fen),
                    String::new(),
                ]);
                rows.push((r.create_ms, row));
            }
        }
        if rows.is_empty() {
            return Ok(api_error(400, "NO_STATEMENT_EXIST", "账单文件不存在"));
        }
        // by time; within the same instant payments before refunds
        rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1[9].cmp(&a.1[9])).then_with(|| a.1.cmp(&b.1)));
        let rows: Vec<Vec<String>> = rows.into_iter().map(|(_, r)| r).collect();
        let sum = |col: usize| -> i64 { rows.iter().filter_map(|r| Money::parse(&r[col]).ok()).map(|m| m.fen()).sum() };
        let summary = vec![
            rows.len().to_string(),
            yuan(sum(12)),
            yuan(sum(16)),
            "0.00".into(),
            yuan(sum(22)),
            yuan(sum(24)),
            yuan(sum(25)),
        ];
        let file = wire::bill_file(&rows, &summary);
        let hash_value = crypto::sha1_hex(&file);
        let token = crypto::random_alnum(32);
        let bytes = if gzip { wire::gzip(&file) } else { file };
        let kept = BillFile { mchid: c.mchid.clone(), bytes: crypto::b64(&bytes), gzip };
        self.store().set_setting(NAME, &format!("bill:{token}"), &kept, Some(now + 3_600_000)).await?;
        let mut download_url = format!("{}{MOUNT}/v3/billdownload/file?token={token}", self.base());
        if gzip {
            download_url.push_str("&tartype=GZIP");
        }
        Ok(self.ok_json(&json!({ "hash_type": "SHA1", "hash_value": hash_value, "download_url": download_url }), c))
    }

    async fn bill_file(&self, c: &Caller, query: &HashMap<String, String>) -> anyhow::Result<Response> {
        let f: Option<BillFile> = match query.get("token") {
            Some(t) => self.store().setting(NAME, &format!("bill:{t}"), now_ms()).await?,
            None => None,
        };
        let Some(f) = f else {
            return Ok(api_error(404, "RESOURCE_NOT_EXISTS", "账单文件不存在或已过期"));
        };
        if f.mchid != c.mchid {
            return Ok(api_error(403, "NO_AUTH", "无权下载该账单"));
        }
        let ct = if f.gzip { "application/x-gzip" } else { "text/plain; charset=utf-8" };
        // downloads are not signed (B.7)
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, ct)
            .header("Request-ID", request_id())
            .body(Body::from(crypto::unb64(&f.bytes)?))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
    }

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
