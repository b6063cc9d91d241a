//! WeChat Pay APIv3 sandbox (G3), mounted at `/sandbox/wechatpay`: an SDK's base URL is
//! `{base}/sandbox/wechatpay`. It speaks PROTOCOLS.md Part B: requests are checked against the
//! merchant's registered key (`Authorization`, B.2), every 2xx answer is signed (B.3) with the
//! "WeChat Pay public key" or with a self-signed platform certificate (B.4), notifications are
//! encrypted with the merchant's APIv3 key and re-signed on every attempt (B.5/B.6), and the trade
//! bill is served in the real file format (B.7). Trades live in memory.
//!
//! Paths (under the mount point):
//! - `POST merchants` — register `{mchid, appid, merchant_serial_no, merchant_public_key, apiv3_key, mode?}`
//! - `/v3/pay/transactions/{native,jsapi,h5,app}`, `/v3/pay/transactions/out-trade-no/{no}[/close]`,
//!   `/v3/pay/transactions/id/{transaction_id}`, `/v3/refund/domestic/refunds[/{out_refund_no}]`,
//!   `/v3/certificates`, `/v3/bill/tradebill`, `/v3/billdownload/file`
//! - `GET pay/{token}` (payer page; `code_url` points here — the real one is a `weixin://` link),
//!   `POST pay/{token}/confirm`, `POST pay/{token}/cancel`
//! - `control/...` — the test-control API shared by all sandboxes, plus
//!   `GET control/trades/{no}/notification` (the signed success notification, for SDK tests).

use super::courier::{wechat_schedule, Delivery, FaultSpec};
use super::page::{self, PayerPage};
use super::{provider_key, SandboxCtx};
use crate::crypto::{self, PrivateKey, PublicKey};
use crate::gateways::wechatpay::cert;
use crate::gateways::wechatpay::wire::*;
use anyhow::{anyhow, bail, Context};
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use clinicpay::money::Money;
use clinicpay::time::{fmt_second, local_date, rfc3339_beijing};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the sandbox is mounted (SDKs may sign paths with or without it).
pub const MOUNT: &str = "/sandbox/wechatpay";
/// A refund stays PROCESSING this long (time-scaled) before it succeeds.
const REFUND_PROCESSING: Duration = Duration::from_secs(3);
/// Sandbox fee rate: 0.6 %.
const FEE_PERMILLE: i64 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PublicKey,
    Certificate,
}

struct Merchant {
    appid: String,
    serial_no: String,
    key: PublicKey,
    apiv3_key: String,
    public_key_id: String,
    /// How answers and notifications are signed when a request does not say (updated from each
    /// request's `Wechatpay-Serial`).
    mode: Mode,
}

#[derive(Debug, Clone)]
struct RefundRec {
    refund_id: String,
    out_refund_no: String,
    amount_fen: i64,
    status: String,
    reason: Option<String>,
    notify_url: Option<String>,
    create_ms: i64,
    success_ms: Option<i64>,
}

struct Trade {
    mchid: String,
    appid: String,
    out_trade_no: String,
    trade_type: String,
    description: String,
    attach: Option<String>,
    notify_url: String,
    total_fen: i64,
    time_expire_ms: Option<i64>,
    payer_openid: Option<String>,
    state: String,
    transaction_id: Option<String>,
    success_ms: Option<i64>,
    token: String,
    answer: serde_json::Value,
    fingerprint: String,
    refunds: Vec<RefundRec>,
    faults: FaultSpec,
    payer_cancelled: bool,
    /// The `TRANSACTION.SUCCESS` body (its `id` stays the same for every attempt).
    success_event: Option<Arc<Vec<u8>>>,
}

impl Trade {
    /// `time_expire` passes → CLOSED (B.10).
    fn refresh(&mut self, now: i64) {
        if matches!(self.state.as_str(), "NOTPAY" | "USERPAYING") && self.time_expire_ms.is_some_and(|e| now >= e) {
            self.state = "CLOSED".into();
        }
    }

    fn paid(&self) -> bool {
        matches!(self.state.as_str(), "SUCCESS" | "REFUND")
    }

    fn refunded_fen(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount_fen).sum()
    }

    fn transaction(&self) -> Transaction {
        let paid = self.paid();
        Transaction {
            appid: Some(self.appid.clone()),
            mchid: Some(self.mchid.clone()),
            out_trade_no: Some(self.out_trade_no.clone()),
            transaction_id: self.transaction_id.clone().filter(|_| paid),
            trade_type: paid.then(|| self.trade_type.clone()),
            trade_state: self.state.clone(),
            trade_state_desc: Some(state_desc(&self.state).into()),
            bank_type: paid.then(|| "OTHERS".into()),
            attach: Some(self.attach.clone().unwrap_or_default()),
            success_time: self.success_ms.filter(|_| paid).map(rfc3339_beijing),
            payer: paid.then(|| Payer { openid: self.payer_openid.clone() }),
            amount: Some(TxAmount {
                total: Some(self.total_fen),
                payer_total: paid.then_some(self.total_fen),
                currency: Some("CNY".into()),
                payer_currency: Some("CNY".into()),
            }),
        }
    }

    fn refund_json(&self, r: &RefundRec) -> Refund {
        Refund {
            refund_id: r.refund_id.clone(),
            out_refund_no: r.out_refund_no.clone(),
            transaction_id: self.transaction_id.clone(),
            out_trade_no: Some(self.out_trade_no.clone()),
            channel: Some("ORIGINAL".into()),
            user_received_account: Some("支付用户零钱".into()),
            success_time: r.success_ms.map(rfc3339_beijing),
            create_time: Some(rfc3339_beijing(r.create_ms)),
            status: r.status.clone(),
            funds_account: Some("AVAILABLE".into()),
            amount: RefundAmount {
                total: Some(self.total_fen),
                refund: Some(r.amount_fen),
                payer_total: Some(self.total_fen),
                payer_refund: Some(r.amount_fen),
                settlement_refund: Some(r.amount_fen),
                settlement_total: Some(self.total_fen),
                discount_refund: Some(0),
                currency: Some("CNY".into()),
            },
        }
    }
}

fn state_desc(state: &str) -> &'static str {
    match state {
        "SUCCESS" => "支付成功",
        "REFUND" => "转入退款",
        "NOTPAY" => "未支付",
        "CLOSED" => "已关闭",
        "REVOKED" => "已撤销",
        "USERPAYING" => "用户支付中",
        "PAYERROR" => "支付失败",
        _ => "",
    }
}

struct BillFile {
    mchid: String,
    bytes: Vec<u8>,
    gzip: bool,
}

#[derive(Default)]
struct Inner {
    merchants: HashMap<String, Merchant>,
    trades: HashMap<(String, String), Trade>,
    /// out_trade_no → mchid of the latest trade with that number (control API).
    by_no: HashMap<String, String>,
    by_token: HashMap<String, (String, String)>,
    by_txn: HashMap<String, (String, String)>,
    /// (mchid, out_refund_no) → out_trade_no
    refunds: HashMap<(String, String), String>,
    bills: HashMap<String, BillFile>,
    defaults: FaultSpec,
    seq: u64,
}

impl Inner {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn key_of(&self, out_trade_no: &str) -> Option<(String, String)> {
        self.by_no.get(out_trade_no).map(|m| (m.clone(), out_trade_no.to_string()))
    }
}

/// A signing identity: the public-key-mode key with a `PUB_KEY_ID_…`, or the certificate key
/// with the certificate's serial.
#[derive(Clone)]
struct Signer {
    key: Arc<PrivateKey>,
    serial: String,
}

impl Signer {
    fn headers(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        let ts = now_ms().div_euclid(1000).to_string();
        let nonce = crypto::random_alnum(32);
        let sig = self.key.sign_sha256_b64(&response_message(&ts, &nonce, body));
        vec![
            ("Wechatpay-Timestamp", ts),
            ("Wechatpay-Nonce", nonce),
            ("Wechatpay-Signature", sig),
            ("Wechatpay-Serial", self.serial.clone()),
            ("Wechatpay-Signature-Type", SCHEME.to_string()),
            ("Request-ID", request_id()),
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

pub struct WechatSandbox {
    ctx: SandboxCtx,
    pk_key: Arc<PrivateKey>,
    cert_key: Arc<PrivateKey>,
    cert_pem: String,
    cert_serial: String,
    cert_not_before_ms: i64,
    cert_not_after_ms: i64,
    inner: Mutex<Inner>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn request_id() -> String {
    crypto::random_alnum(40).to_ascii_uppercase()
}

fn uuid() -> String {
    let b = crypto::random_bytes::<16>();
    let h = hex::encode(b);
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
    let body = serde_json::to_vec(&ApiError { code: code.into(), message: message.into(), detail }).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header("Request-ID", request_id())
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn system_error() -> Response {
    api_error(500, "SYSTEM_ERROR", "系统繁忙,请稍后重试")
}

fn param_error(message: impl AsRef<str>) -> Response {
    api_error(400, "PARAM_ERROR", message.as_ref())
}

fn control_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A delivery is acknowledged by any 2xx (B.6).
fn wechat_accepted(status: u16, _body: &[u8]) -> bool {
    (200..300).contains(&status)
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
        let cert_pem = cert::self_signed_certificate(
            &cert_key,
            &serial,
            "CN=ClinicPay Sandbox WeChat Pay Platform,O=ClinicPay Sandbox,C=CN",
            (not_before / 1000) as u64,
            (not_after / 1000) as u64,
        )?;
        let parsed = cert::parse_certificate_pem(&cert_pem)?;
        Ok(WechatSandbox {
            ctx,
            pk_key: Arc::new(pk_key),
            cert_key: Arc::new(cert_key),
            cert_pem,
            cert_serial: parsed.serial_no,
            cert_not_before_ms: not_before,
            cert_not_after_ms: not_after,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn base(&self) -> &str {
        self.ctx.settings.base_url.trim_end_matches('/')
    }

    fn page_url(&self, token: &str) -> String {
        format!("{}{MOUNT}/pay/{token}", self.base())
    }

    fn signer(&self, mode: Mode, public_key_id: &str) -> Signer {
        match mode {
            Mode::PublicKey => Signer { key: self.pk_key.clone(), serial: public_key_id.to_string() },
            Mode::Certificate => Signer { key: self.cert_key.clone(), serial: self.cert_serial.clone() },
        }
    }

    // ----- Rust API ------------------------------------------------------------------------

    /// Registers (or replaces) a merchant; returns the WeChat Pay public key (PEM) and its id.
    pub fn register_merchant(
        &self,
        mchid: &str,
        appid: &str,
        merchant_serial_no: &str,
        merchant_public_key_pem: &str,
        apiv3_key: &str,
    ) -> anyhow::Result<(String, String)> {
        self.register(mchid, appid, merchant_serial_no, merchant_public_key_pem, apiv3_key, Mode::PublicKey)
    }

    fn register(
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
        self.lock().merchants.insert(
            mchid.to_string(),
            Merchant {
                appid: appid.to_string(),
                serial_no: merchant_serial_no.to_string(),
                key,
                apiv3_key: apiv3_key.to_string(),
                public_key_id: public_key_id.clone(),
                mode,
            },
        );
        Ok((self.pk_key.public_key().to_pem(), public_key_id))
    }

    /// The platform certificate (serial, PEM) served by `/v3/certificates`.
    pub fn platform_certificate(&self) -> (String, String) {
        (self.cert_serial.clone(), self.cert_pem.clone())
    }

    /// The WeChat Pay public key (PEM) of public-key mode.
    pub fn platform_public_key(&self) -> String {
        self.pk_key.public_key().to_pem()
    }

    /// What the payer page's Pay does.
    pub fn pay(&self, out_trade_no: &str) -> anyhow::Result<()> {
        let key = self.lock().key_of(out_trade_no).ok_or_else(|| anyhow!("no trade {out_trade_no}"))?;
        self.pay_key(&key)
    }

    fn pay_key(&self, key: &(String, String)) -> anyhow::Result<()> {
        let (delivery, faults) = {
            let mut g = self.lock();
            let seq = g.next();
            let inner = &mut *g;
            let t = inner.trades.get_mut(key).ok_or_else(|| anyhow!("no trade {}", key.1))?;
            let now = now_ms();
            t.refresh(now);
            match t.state.as_str() {
                "NOTPAY" | "USERPAYING" => {}
                "SUCCESS" | "REFUND" => return Ok(()),
                other => bail!("trade {} is {other} and cannot be paid", key.1),
            }
            let m = inner.merchants.get(&key.0).ok_or_else(|| anyhow!("merchant {} is gone", key.0))?;
            let date = local_date(now).map(|d| d.format("%Y%m%d").to_string()).unwrap_or_default();
            let txn = format!("4200000{date}{}", digits(seq, 13));
            t.state = "SUCCESS".into();
            t.transaction_id = Some(txn.clone());
            t.success_ms = Some(now);
            if t.payer_openid.is_none() {
                t.payer_openid = Some(format!("o{}", crypto::random_alnum(27)));
            }
            let plain = serde_json::to_vec(&t.transaction())?;
            let body = Arc::new(notification_body(
                &m.apiv3_key,
                "TRANSACTION.SUCCESS",
                "支付成功",
                "transaction",
                &plain,
                now,
            )?);
            t.success_event = Some(body.clone());
            inner.by_txn.insert(txn, key.clone());
            let signer = self.signer(m.mode, &m.public_key_id);
            let label = format!("TRANSACTION.SUCCESS {}", t.out_trade_no);
            (delivery(label, &t.out_trade_no, &t.notify_url, body, signer), t.faults.clone())
        };
        self.ctx.courier.send(delivery, &faults);
        Ok(())
    }

    /// The payer gives up (the trade stays NOTPAY until it expires or is closed, as at WeChat).
    fn cancel(&self, out_trade_no: &str) -> anyhow::Result<()> {
        let mut g = self.lock();
        let key = g.key_of(out_trade_no).ok_or_else(|| anyhow!("no trade {out_trade_no}"))?;
        let t = g.trades.get_mut(&key).ok_or_else(|| anyhow!("no trade {out_trade_no}"))?;
        t.payer_cancelled = true;
        Ok(())
    }

    pub fn set_faults(&self, out_trade_no: &str, faults: FaultSpec) -> anyhow::Result<()> {
        let mut g = self.lock();
        let key = g.key_of(out_trade_no).ok_or_else(|| anyhow!("no trade {out_trade_no}"))?;
        let t = g.trades.get_mut(&key).ok_or_else(|| anyhow!("no trade {out_trade_no}"))?;
        t.faults = faults;
        Ok(())
    }

    pub fn set_default_faults(&self, faults: FaultSpec) {
        self.lock().defaults = faults;
    }

    /// The trade's `trade_state` (`NOTPAY`, `SUCCESS`, `CLOSED`, `REFUND`).
    pub fn trade_state(&self, out_trade_no: &str) -> Option<String> {
        let mut g = self.lock();
        let key = g.key_of(out_trade_no)?;
        let t = g.trades.get_mut(&key)?;
        t.refresh(now_ms());
        Some(t.state.clone())
    }

    /// A valid `TRANSACTION.SUCCESS` notification for a paid trade, signed now, exactly as the
    /// sandbox sends it (same body and `id` as the delivered one).
    pub fn signed_success_notification(&self, out_trade_no: &str) -> anyhow::Result<(Vec<(String, String)>, Vec<u8>)> {
        let g = self.lock();
        let key = g.key_of(out_trade_no).ok_or_else(|| anyhow!("no trade {out_trade_no}"))?;
        let t = g.trades.get(&key).ok_or_else(|| anyhow!("no trade {out_trade_no}"))?;
        let body = t.success_event.clone().ok_or_else(|| anyhow!("trade {out_trade_no} is not paid"))?;
        let m = g.merchants.get(&key.0).ok_or_else(|| anyhow!("merchant {} is gone", key.0))?;
        let signer = self.signer(m.mode, &m.public_key_id);
        Ok((notification_headers(&signer, &body), body.to_vec()))
    }

    fn control_view(&self, out_trade_no: &str) -> Option<serde_json::Value> {
        let mut g = self.lock();
        let key = g.key_of(out_trade_no)?;
        let t = g.trades.get_mut(&key)?;
        t.refresh(now_ms());
        let refunds: Vec<serde_json::Value> = t
            .refunds
            .iter()
            .map(|r| {
                json!({
                    "out_refund_no": r.out_refund_no,
                    "refund_id": r.refund_id,
                    "amount": yuan(r.amount_fen),
                    "status": r.status,
                    "reason": r.reason,
                })
            })
            .collect();
        Some(json!({
            "out_trade_no": t.out_trade_no,
            "mchid": t.mchid,
            "trade_type": t.trade_type,
            "state": t.state,
            "amount": yuan(t.total_fen),
            "provider_txn_id": t.transaction_id,
            "payer_cancelled": t.payer_cancelled,
            "pay_url": self.page_url(&t.token),
            "refunds": refunds,
            "deliveries": self.ctx.courier.records_for(out_trade_no),
        }))
    }

    // ----- /v3 -----------------------------------------------------------------------------

    /// Checks `Authorization` against the merchant's key, over the request target as sent or
    /// with the mount prefix stripped (B.2, ARCHITECTURE.md).
    fn authenticate(
        &self,
        method: &Method,
        original: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        force_cert: bool,
    ) -> Result<Caller, Box<Response>> {
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
        let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(parse_authorization);
        let Some(auth) = auth else {
            return Err(Box::new(sign_error("authorization header is missing or malformed", &target)));
        };
        let mut g = self.lock();
        let Some(m) = g.merchants.get_mut(&auth.mchid) else {
            return Err(Box::new(api_error(400, "MCH_NOT_EXISTS", "商户号不存在")));
        };
        if cert::normalize_serial(&auth.serial_no) != cert::normalize_serial(&m.serial_no) {
            return Err(Box::new(sign_error("serial_no does not match the merchant certificate", &target)));
        }
        let ts: i64 = match auth.timestamp.parse() {
            Ok(t) => t,
            Err(_) => return Err(Box::new(sign_error("timestamp is not a number", &target))),
        };
        if (i128::from(now_ms().div_euclid(1000)) - i128::from(ts)).abs() >= i128::from(MAX_SKEW_SECS) {
            return Err(Box::new(sign_error("timestamp expired", &target)));
        }
        let mut candidates = vec![target.clone()];
        if let Some(rest) = target.strip_prefix(MOUNT) {
            candidates.push(rest.to_string());
        }
        let ok = candidates.iter().any(|url| {
            m.key.verify_sha256_b64(
                &request_message(method.as_str(), url, &auth.timestamp, &auth.nonce_str, body),
                &auth.signature,
            )
        });
        if !ok {
            return Err(Box::new(sign_error("sign not match", &target)));
        }
        let asked = headers.get("wechatpay-serial").and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
        if asked.starts_with("PUB_KEY_ID_") {
            m.mode = Mode::PublicKey;
        } else if !asked.is_empty() && !force_cert {
            m.mode = Mode::Certificate;
        }
        let mode = if force_cert { Mode::Certificate } else { m.mode };
        let signer = self.signer(mode, &m.public_key_id);
        Ok(Caller { mchid: auth.mchid, appid: m.appid.clone(), apiv3_key: m.apiv3_key.clone(), signer })
    }

    fn signed(&self, status: StatusCode, body: Vec<u8>, signer: &Signer) -> Response {
        let mut b = Response::builder().status(status).header(header::CONTENT_TYPE, "application/json; charset=utf-8");
        for (k, v) in signer.headers(&body) {
            b = b.header(k, v);
        }
        b.body(Body::from(body)).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }

    fn ok_json<T: serde::Serialize>(&self, value: &T, c: &Caller) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => self.signed(StatusCode::OK, body, &c.signer),
            Err(_) => system_error(),
        }
    }

    fn prepay(&self, c: &Caller, kind: &str, body: &[u8]) -> Response {
        let req: PrepayRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return param_error(format!("请求参数不符合规则: {e}")),
        };
        if req.mchid != c.mchid {
            return param_error("mchid与请求签名的商户号不一致");
        }
        if req.appid != c.appid {
            return api_error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配");
        }
        let desc_len = req.description.chars().count();
        if desc_len == 0 || desc_len > 127 {
            return param_error("description 长度应为1到127个字符");
        }
        if !valid_out_trade_no(&req.out_trade_no) {
            return param_error("out_trade_no 应为6到32位数字、大小写字母或_-*|");
        }
        if !(req.notify_url.starts_with("https://") || req.notify_url.starts_with("http://"))
            || req.notify_url.len() > 256
        {
            return param_error("notify_url 格式不正确");
        }
        if req.amount.total <= 0 || req.amount.total > 100_000_000_000 {
            return param_error("amount.total 应为正整数（分）");
        }
        if req.amount.currency.as_deref().is_some_and(|c| c != "CNY") {
            return param_error("amount.currency 仅支持CNY");
        }
        let time_expire_ms = match req.time_expire.as_deref() {
            None => None,
            Some(s) => match parse_rfc3339_ms(s) {
                Some(ms) => Some(ms),
                None => return param_error("time_expire 应为RFC 3339格式"),
            },
        };
        let openid = req.payer.as_ref().and_then(|p| p.openid.clone()).filter(|s| !s.is_empty());
        let trade_type = match kind {
            "native" => "NATIVE",
            "jsapi" => {
                if openid.is_none() {
                    return param_error("payer.openid 为必填项");
                }
                "JSAPI"
            }
            "h5" => {
                let scene = req.scene_info.as_ref();
                let ip = scene.and_then(|s| s.payer_client_ip.as_deref()).filter(|s| !s.is_empty());
                let h5 = scene.and_then(|s| s.h5_info.as_ref()).filter(|h| !h.kind.is_empty());
                if ip.is_none() || h5.is_none() {
                    return param_error("scene_info.payer_client_ip 与 scene_info.h5_info.type 为必填项");
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
        let key = (c.mchid.clone(), req.out_trade_no.clone());
        let mut g = self.lock();
        let now = now_ms();
        if let Some(t) = g.trades.get_mut(&key) {
            t.refresh(now);
            if std::mem::take(&mut t.faults.fail_next_call) {
                return system_error();
            }
            if t.paid() {
                return api_error(400, "ORDERPAID", "该订单已支付");
            }
            if t.state == "CLOSED" {
                return api_error(400, "ORDER_CLOSED", "订单已关闭");
            }
            if t.fingerprint != fingerprint {
                return api_error(400, "INVALID_REQUEST", "201 商户订单号重复");
            }
            let answer = t.answer.clone();
            drop(g);
            return self.ok_json(&answer, c);
        }
        let seq = g.next();
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
        let faults = g.defaults.clone();
        g.trades.insert(
            key.clone(),
            Trade {
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
                token: token.clone(),
                answer: answer.clone(),
                fingerprint,
                refunds: Vec::new(),
                faults,
                payer_cancelled: false,
                success_event: None,
            },
        );
        g.by_no.insert(req.out_trade_no.clone(), c.mchid.clone());
        g.by_token.insert(token, key);
        drop(g);
        self.ok_json(&answer, c)
    }

    fn query(&self, c: &Caller, by: QueryBy, query: &HashMap<String, String>) -> Response {
        match query.get("mchid") {
            None => return param_error("mchid 为必填项"),
            Some(m) if *m != c.mchid => return param_error("mchid与请求签名的商户号不一致"),
            _ => {}
        }
        let mut g = self.lock();
        let key = match by {
            QueryBy::OutTradeNo(no) => (c.mchid.clone(), no),
            QueryBy::TransactionId(id) => match g.by_txn.get(&id) {
                Some(k) if k.0 == c.mchid => k.clone(),
                _ => return api_error(404, "ORDER_NOT_EXIST", "订单不存在"),
            },
        };
        let Some(t) = g.trades.get_mut(&key) else {
            return api_error(404, "ORDER_NOT_EXIST", "订单不存在");
        };
        t.refresh(now_ms());
        if std::mem::take(&mut t.faults.fail_next_call) {
            return system_error();
        }
        let tx = t.transaction();
        drop(g);
        self.ok_json(&tx, c)
    }

    fn close(&self, c: &Caller, out_trade_no: &str, body: &[u8]) -> Response {
        #[derive(Deserialize)]
        struct CloseBody {
            mchid: String,
        }
        match serde_json::from_slice::<CloseBody>(body) {
            Ok(b) if b.mchid == c.mchid => {}
            Ok(_) => return param_error("mchid与请求签名的商户号不一致"),
            Err(e) => return param_error(format!("请求参数不符合规则: {e}")),
        }
        let mut g = self.lock();
        let Some(t) = g.trades.get_mut(&(c.mchid.clone(), out_trade_no.to_string())) else {
            return api_error(404, "ORDER_NOT_EXIST", "订单不存在");
        };
        t.refresh(now_ms());
        if std::mem::take(&mut t.faults.fail_next_call) {
            return system_error();
        }
        if t.paid() {
            return api_error(400, "ORDERPAID", "订单已支付");
        }
        t.state = "CLOSED".into();
        drop(g);
        self.signed(StatusCode::NO_CONTENT, Vec::new(), &c.signer)
    }

    fn refund(self: &Arc<Self>, c: &Caller, body: &[u8]) -> Response {
        let req: RefundCreate = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return param_error(format!("请求参数不符合规则: {e}")),
        };
        if !valid_out_refund_no(&req.out_refund_no) {
            return param_error("out_refund_no 格式不正确");
        }
        if req.amount.currency != "CNY" {
            return param_error("amount.currency 仅支持CNY");
        }
        if req.amount.refund <= 0 || req.amount.total <= 0 {
            return param_error("amount.refund 与 amount.total 应为正整数（分）");
        }
        let mut g = self.lock();
        let key = match (&req.out_trade_no, &req.transaction_id) {
            (Some(no), _) => (c.mchid.clone(), no.clone()),
            (None, Some(id)) => match g.by_txn.get(id) {
                Some(k) if k.0 == c.mchid => k.clone(),
                _ => return api_error(404, "RESOURCE_NOT_EXISTS", "订单不存在"),
            },
            (None, None) => return param_error("transaction_id 与 out_trade_no 必须二选一"),
        };
        let existing = g.refunds.get(&(c.mchid.clone(), req.out_refund_no.clone())).cloned();
        let seq = g.next();
        let Some(t) = g.trades.get_mut(&key) else {
            return api_error(404, "RESOURCE_NOT_EXISTS", "订单不存在");
        };
        t.refresh(now_ms());
        if std::mem::take(&mut t.faults.fail_next_call) {
            return system_error();
        }
        if let Some(other_trade) = existing {
            let same = other_trade == t.out_trade_no;
            return match t.refunds.iter().find(|r| same && r.out_refund_no == req.out_refund_no) {
                Some(r) if r.amount_fen == req.amount.refund => {
                    let json = t.refund_json(r);
                    drop(g);
                    self.ok_json(&json, c)
                }
                _ => api_error(400, "INVALID_REQUEST", "退款单号已存在，但请求参数与原退款单不一致"),
            };
        }
        if !t.paid() {
            return api_error(404, "RESOURCE_NOT_EXISTS", "订单未支付，不能发起退款");
        }
        if req.amount.total != t.total_fen {
            return api_error(400, "INVALID_REQUEST", "订单金额与原订单金额不一致");
        }
        if t.refunds.len() >= 50 {
            return api_error(400, "INVALID_REQUEST", "部分退款次数不能超过50次");
        }
        if t.refunded_fen() + req.amount.refund > t.total_fen {
            return api_error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额");
        }
        let now = now_ms();
        let date = local_date(now).map(|d| d.format("%Y%m%d").to_string()).unwrap_or_default();
        let rec = RefundRec {
            refund_id: format!("5030000{date}{}", digits(seq, 14)),
            out_refund_no: req.out_refund_no.clone(),
            amount_fen: req.amount.refund,
            status: "PROCESSING".into(),
            reason: req.reason.clone(),
            notify_url: req.notify_url.clone().filter(|u| !u.is_empty()),
            create_ms: now,
            success_ms: None,
        };
        let json = t.refund_json(&rec);
        t.refunds.push(rec);
        t.state = "REFUND".into();
        let out_trade_no = t.out_trade_no.clone();
        g.refunds.insert((c.mchid.clone(), req.out_refund_no.clone()), out_trade_no);
        drop(g);
        let me = self.clone();
        let wait = self.ctx.settings.scaled(REFUND_PROCESSING);
        let (mchid, out_refund_no) = (c.mchid.clone(), req.out_refund_no.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Err(e) = me.complete_refund(&mchid, &out_refund_no) {
                tracing::warn!(error = %e, "sandbox refund completion failed");
            }
        });
        self.ok_json(&json, c)
    }

    /// PROCESSING → SUCCESS, then `REFUND.SUCCESS` to the refund's (or the trade's) notify_url.
    fn complete_refund(&self, mchid: &str, out_refund_no: &str) -> anyhow::Result<()> {
        let (delivery, faults) = {
            let mut g = self.lock();
            let inner = &mut *g;
            let no = inner
                .refunds
                .get(&(mchid.to_string(), out_refund_no.to_string()))
                .cloned()
                .ok_or_else(|| anyhow!("no refund {out_refund_no}"))?;
            let t = inner.trades.get_mut(&(mchid.to_string(), no)).ok_or_else(|| anyhow!("trade is gone"))?;
            let now = now_ms();
            let total = t.total_fen;
            let r = t
                .refunds
                .iter_mut()
                .find(|r| r.out_refund_no == out_refund_no)
                .ok_or_else(|| anyhow!("no refund {out_refund_no}"))?;
            if r.status != "PROCESSING" {
                return Ok(());
            }
            r.status = "SUCCESS".into();
            r.success_ms = Some(now);
            let notice = RefundNotice {
                mchid: mchid.to_string(),
                transaction_id: t.transaction_id.clone(),
                out_trade_no: t.out_trade_no.clone(),
                refund_id: Some(r.refund_id.clone()),
                out_refund_no: r.out_refund_no.clone(),
                refund_status: "SUCCESS".into(),
                success_time: Some(rfc3339_beijing(now)),
                user_received_account: Some("支付用户零钱".into()),
                amount: RefundAmount {
                    total: Some(total),
                    refund: Some(r.amount_fen),
                    payer_total: Some(total),
                    payer_refund: Some(r.amount_fen),
                    ..Default::default()
                },
            };
            let url = r.notify_url.clone().unwrap_or_else(|| t.notify_url.clone());
            let m = inner.merchants.get(mchid).ok_or_else(|| anyhow!("merchant {mchid} is gone"))?;
            let plain = serde_json::to_vec(&notice)?;
            let body = notification_body(&m.apiv3_key, "REFUND.SUCCESS", "退款成功", "refund", &plain, now)?;
            let signer = self.signer(m.mode, &m.public_key_id);
            let label = format!("REFUND.SUCCESS {} {}", t.out_trade_no, out_refund_no);
            (delivery(label, &t.out_trade_no, &url, Arc::new(body), signer), t.faults.clone())
        };
        self.ctx.courier.send(delivery, &faults);
        Ok(())
    }

    fn query_refund(&self, c: &Caller, out_refund_no: &str) -> Response {
        let mut g = self.lock();
        let Some(no) = g.refunds.get(&(c.mchid.clone(), out_refund_no.to_string())).cloned() else {
            return api_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在");
        };
        let Some(t) = g.trades.get_mut(&(c.mchid.clone(), no)) else {
            return api_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在");
        };
        if std::mem::take(&mut t.faults.fail_next_call) {
            return system_error();
        }
        let Some(json) = t.refunds.iter().find(|r| r.out_refund_no == out_refund_no).map(|r| t.refund_json(r)) else {
            return api_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在");
        };
        drop(g);
        self.ok_json(&json, c)
    }

    fn certificates(&self, c: &Caller) -> Response {
        let enc = match encrypt_resource(c.apiv3_key.as_bytes(), None, "certificate", self.cert_pem.as_bytes()) {
            Ok(e) => e,
            Err(_) => return system_error(),
        };
        let list = CertificateList {
            data: vec![CertificateEntry {
                serial_no: self.cert_serial.clone(),
                effective_time: rfc3339_beijing(self.cert_not_before_ms),
                expire_time: rfc3339_beijing(self.cert_not_after_ms),
                encrypt_certificate: enc,
            }],
        };
        self.ok_json(&list, c)
    }

    fn tradebill(&self, c: &Caller, query: &HashMap<String, String>) -> Response {
        let Some(date) = query.get("bill_date").and_then(|d| clinicpay::time::parse_date(d)) else {
            return param_error("bill_date 应为 YYYY-MM-DD");
        };
        let bill_type = query.get("bill_type").map(String::as_str).unwrap_or("ALL");
        if !matches!(bill_type, "ALL" | "SUCCESS" | "REFUND") {
            return param_error("bill_type 仅支持 ALL、SUCCESS、REFUND");
        }
        let gzip = match query.get("tar_type").map(String::as_str) {
            None | Some("") => false,
            Some("GZIP") => true,
            Some(_) => return param_error("tar_type 仅支持 GZIP"),
        };
        let now = now_ms();
        if local_date(now).is_some_and(|today| date > today) {
            return api_error(400, "INVALID_REQUEST", "账单日期不能晚于当前日期");
        }
        let mut g = self.lock();
        let Some(appid) = g.merchants.get(&c.mchid).map(|m| m.appid.clone()) else {
            return api_error(400, "MCH_NOT_EXISTS", "商户号不存在");
        };
        let mut rows: Vec<(i64, Vec<String>)> = Vec::new();
        for t in g.trades.values().filter(|t| t.mchid == c.mchid) {
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
                        bill_cell(&t.description),
                        bill_cell(t.attach.as_deref().unwrap_or("")),
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
                    bill_cell(&t.description),
                    bill_cell(t.attach.as_deref().unwrap_or("")),
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
            return api_error(400, "NO_STATEMENT_EXIST", "账单文件不存在");
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
        let file = render_bill(&BILL_HEADER, &rows, &BILL_SUMMARY_HEADER, &summary);
        let hash_value = crypto::sha1_hex(&file);
        let token = crypto::random_alnum(32);
        let bytes = if gzip { crate::gateways::wechatpay::wire::gzip(&file) } else { file };
        g.bills.insert(token.clone(), BillFile { mchid: c.mchid.clone(), bytes, gzip });
        drop(g);
        let mut download_url = format!("{}{MOUNT}/v3/billdownload/file?token={token}", self.base());
        if gzip {
            download_url.push_str("&tartype=GZIP");
        }
        self.ok_json(&BillLink { hash_type: "SHA1".into(), hash_value, download_url }, c)
    }

    fn bill_file(&self, c: &Caller, query: &HashMap<String, String>) -> Response {
        let g = self.lock();
        let Some(f) = query.get("token").and_then(|t| g.bills.get(t)) else {
            return api_error(404, "RESOURCE_NOT_EXISTS", "账单文件不存在或已过期");
        };
        if f.mchid != c.mchid {
            return api_error(403, "NO_AUTH", "无权下载该账单");
        }
        let ct = if f.gzip { "application/x-gzip" } else { "text/plain; charset=utf-8" };
        // downloads are not signed (B.7)
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, ct)
            .header("Request-ID", request_id())
            .body(Body::from(f.bytes.clone()))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }

    // ----- payer page ----------------------------------------------------------------------

    fn render_page(&self, token: &str) -> Option<String> {
        let mut g = self.lock();
        let key = g.by_token.get(token)?.clone();
        let t = g.trades.get_mut(&key)?;
        t.refresh(now_ms());
        let status = match t.state.as_str() {
            "NOTPAY" | "USERPAYING" if t.payer_cancelled => "已取消支付 Payment cancelled — you can still pay",
            "NOTPAY" | "USERPAYING" => "待支付 Waiting for payment",
            "SUCCESS" => "支付成功 Paid",
            "REFUND" => "支付成功，已退款 Paid, refunded",
            "CLOSED" => "订单已关闭 Closed",
            _ => "—",
        };
        let open = matches!(t.state.as_str(), "NOTPAY" | "USERPAYING");
        let page_url = self.page_url(token);
        Some(page::render(&PayerPage {
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
        }))
    }

    fn token_key(&self, token: &str) -> Option<(String, String)> {
        self.lock().by_token.get(token).cloned()
    }
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
) -> anyhow::Result<Vec<u8>> {
    let resource = encrypt_resource(apiv3_key.as_bytes(), Some(original_type), original_type, plaintext)?;
    let n = Notification {
        id: uuid(),
        create_time: rfc3339_beijing(at_ms),
        resource_type: "encrypt-resource".into(),
        event_type: event_type.into(),
        summary: summary.into(),
        resource,
    };
    Ok(serde_json::to_vec(&n)?)
}

fn notification_headers(signer: &Signer, body: &[u8]) -> Vec<(String, String)> {
    let mut h = vec![("Content-Type".to_string(), "application/json".to_string())];
    h.extend(signer.headers(body).into_iter().map(|(k, v)| (k.to_string(), v)));
    h
}

/// A courier delivery that signs afresh for every attempt.
fn delivery(label: String, out_trade_no: &str, url: &str, body: Arc<Vec<u8>>, signer: Signer) -> Delivery {
    Delivery {
        label,
        out_trade_no: out_trade_no.to_string(),
        url: url.to_string(),
        build: Arc::new(move || (notification_headers(&signer, &body), body.to_vec())),
        accepted: wechat_accepted,
        schedule: wechat_schedule(),
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
    let c = match s.authenticate(&method, &original, &headers, &body, force_cert) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match segs.as_slice() {
        ["v3", "pay", "transactions", "out-trade-no", no] => s.query(&c, QueryBy::OutTradeNo(no.to_string()), &query),
        ["v3", "pay", "transactions", "id", id] => s.query(&c, QueryBy::TransactionId(id.to_string()), &query),
        ["v3", "pay", "transactions", "out-trade-no", no, "close"] => s.close(&c, no, &body),
        ["v3", "pay", "transactions", kind] => s.prepay(&c, kind, &body),
        ["v3", "refund", "domestic", "refunds"] => s.refund(&c, &body),
        ["v3", "refund", "domestic", "refunds", no] => s.query_refund(&c, no),
        ["v3", "certificates"] => s.certificates(&c),
        ["v3", "bill", "tradebill"] => s.tradebill(&c, &query),
        _ => s.bill_file(&c, &query),
    }
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
    match s.register(&r.mchid, &r.appid, &r.merchant_serial_no, &r.merchant_public_key, &r.apiv3_key, mode) {
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

async fn payer_page(State(s): State<Arc<WechatSandbox>>, Path(token): Path<String>) -> Response {
    match s.render_page(&token) {
        Some(html) => Html(html).into_response(),
        None => (StatusCode::NOT_FOUND, Html("<h1>订单不存在 Unknown order</h1>".to_string())).into_response(),
    }
}

fn see_page(s: &WechatSandbox, token: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, s.page_url(token))]).into_response()
}

async fn payer_confirm(State(s): State<Arc<WechatSandbox>>, Path(token): Path<String>) -> Response {
    let Some(key) = s.token_key(&token) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Err(e) = s.pay_key(&key) {
        tracing::info!(error = %e, "sandbox payer page: payment refused");
    }
    see_page(&s, &token)
}

async fn payer_cancel(State(s): State<Arc<WechatSandbox>>, Path(token): Path<String>) -> Response {
    let Some(key) = s.token_key(&token) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let _ = s.cancel(&key.1);
    see_page(&s, &token)
}

async fn control_pay(State(s): State<Arc<WechatSandbox>>, Path(no): Path<String>) -> Response {
    if s.trade_state(&no).is_none() {
        return control_error(StatusCode::NOT_FOUND, format!("no trade {no}"));
    }
    match s.pay(&no) {
        Ok(()) => axum::Json(json!({ "out_trade_no": no, "state": s.trade_state(&no) })).into_response(),
        Err(e) => control_error(StatusCode::CONFLICT, format!("{e:#}")),
    }
}

async fn control_scan(State(s): State<Arc<WechatSandbox>>, Path(no): Path<String>) -> Response {
    match s.trade_state(&no) {
        Some(state) => axum::Json(json!({ "out_trade_no": no, "state": state })).into_response(),
        None => control_error(StatusCode::NOT_FOUND, format!("no trade {no}")),
    }
}

async fn control_cancel(State(s): State<Arc<WechatSandbox>>, Path(no): Path<String>) -> Response {
    match s.cancel(&no) {
        Ok(()) => axum::Json(json!({ "out_trade_no": no, "state": s.trade_state(&no) })).into_response(),
        Err(e) => control_error(StatusCode::NOT_FOUND, format!("{e:#}")),
    }
}

fn fault_spec(body: &[u8]) -> Result<FaultSpec, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(FaultSpec::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Box::new(control_error(StatusCode::BAD_REQUEST, format!("fault spec: {e}"))))
}

async fn control_faults(State(s): State<Arc<WechatSandbox>>, Path(no): Path<String>, body: Bytes) -> Response {
    let spec = match fault_spec(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match s.set_faults(&no, spec.clone()) {
        Ok(()) => axum::Json(json!({ "out_trade_no": no, "faults": spec })).into_response(),
        Err(e) => control_error(StatusCode::NOT_FOUND, format!("{e:#}")),
    }
}

async fn control_defaults(State(s): State<Arc<WechatSandbox>>, body: Bytes) -> Response {
    match fault_spec(&body) {
        Ok(spec) => {
            s.set_default_faults(spec.clone());
            axum::Json(json!({ "defaults": spec })).into_response()
        }
        Err(r) => *r,
    }
}

async fn control_trade(State(s): State<Arc<WechatSandbox>>, Path(no): Path<String>) -> Response {
    match s.control_view(&no) {
        Some(v) => axum::Json(v).into_response(),
        None => control_error(StatusCode::NOT_FOUND, format!("no trade {no}")),
    }
}

/// The signed `TRANSACTION.SUCCESS` notification of a paid trade, for SDK tests that verify
/// notifications themselves: `{headers: {name: value}, body}`.
async fn control_notification(State(s): State<Arc<WechatSandbox>>, Path(no): Path<String>) -> Response {
    match s.signed_success_notification(&no) {
        Ok((headers, body)) => {
            let headers: serde_json::Map<String, serde_json::Value> =
                headers.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
            axum::Json(json!({ "headers": headers, "body": String::from_utf8_lossy(&body) })).into_response()
        }
        Err(e) => control_error(StatusCode::NOT_FOUND, format!("{e:#}")),
    }
}

pub fn router(s: Arc<WechatSandbox>) -> axum::Router {
    axum::Router::new()
        .route("/merchants", post(register))
        .route("/v3/{*rest}", any(v3))
        .route("/pay/{token}", get(payer_page))
        .route("/pay/{token}/confirm", post(payer_confirm))
        .route("/pay/{token}/cancel", post(payer_cancel))
        .route("/control/trades/{no}", get(control_trade))
        .route("/control/trades/{no}/pay", post(control_pay))
        .route("/control/trades/{no}/scan", post(control_scan))
        .route("/control/trades/{no}/cancel", post(control_cancel))
        .route("/control/trades/{no}/faults", post(control_faults))
        .route("/control/trades/{no}/notification", get(control_notification))
        .route("/control/defaults", post(control_defaults))
        .with_state(s)
}

#[cfg(test)]
mod tests;
