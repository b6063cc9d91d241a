//! WeChat Pay APIv3 merchant client (PROTOCOLS.md Part B): signed requests, verified responses
//! (every 2xx, 204 included), notifications (signature, time window, AES-256-GCM), platform
//! public-key mode and platform-certificate mode, and the daily trade bill.
//!
//! The same client talks to `https://api.mch.weixin.qq.com` and to our sandbox at
//! `{base}/sandbox/wechatpay`: only `api_base` differs.

/// X.509 certificates are a shared primitive (the sandbox makes them, the client reads them).
pub use crate::crypto::x509 as cert;
mod notify;
pub mod wire;

use notify::check_signature;
pub use notify::{notification_profile, notify_reply};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

use crate::crypto::{self, PrivateKey, PublicKey};
use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use clinicpay::money::Money;
use clinicpay::payments::{
    EventKind, JsapiParams, PayAction, PayMethod, Provider, ProviderCall, ProviderError, ProviderEvent, RawExchange,
    RefundState, RefundStatus, Rejection, TradeState, TradeStatus,
};
use clinicpay::ports::{CreatePayment, Gateway, NotifyReply, RawNotification, RefundRequest, Statement};
use clinicpay::time::Millis;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::HashMap;
use std::sync::RwLock;
use wire::*;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WechatSettings {
    pub mchid: String,
    pub appid: String,
    /// https://api.mch.weixin.qq.com, or {base}/sandbox/wechatpay
    pub api_base: String,
    /// Serial number of the merchant API certificate (uppercase hex).
    pub merchant_serial_no: String,
    pub platform: WechatPlatform,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum WechatPlatform {
    /// "WeChat Pay public key" mode: key id `PUB_KEY_ID_…` and the PEM public key.
    PublicKey { public_key_id: String, public_key: String },
    /// Platform certificate mode: certificates as downloaded from /v3/certificates.
    Certificates { certificates: Vec<PlatformCertificate> },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlatformCertificate {
    pub serial_no: String,
    pub certificate_pem: String,
}

/// The platform keys we verify with, keyed by normalized serial / public-key id.
#[derive(Debug, Clone, Default)]
struct Verifiers {
    keys: HashMap<String, PublicKey>,
    /// What we send as `Wechatpay-Serial`: the key id, or the certificate that lasts longest.
    accept_serial: Option<String>,
    accept_not_after: i64,
}

impl Verifiers {
    fn add_certificate(&mut self, pem: &str) -> anyhow::Result<String> {
        let c = cert::parse_certificate_pem(pem)?;
        self.keys.insert(cert::normalize_serial(&c.serial_no), c.public_key);
        if self.accept_serial.is_none() || c.not_after_unix > self.accept_not_after {
            self.accept_serial = Some(c.serial_no.clone());
            self.accept_not_after = c.not_after_unix;
        }
        Ok(c.serial_no)
    }

    fn get(&self, serial: &str) -> Option<&PublicKey> {
        self.keys.get(&cert::normalize_serial(serial))
    }
}

/// A WeChat Pay merchant account as a [`Gateway`].
pub struct WechatClient {
    settings: WechatSettings,
    key: PrivateKey,
    apiv3_key: Vec<u8>,
    http: reqwest::Client,
    base: reqwest::Url,
    verifiers: RwLock<Verifiers>,
}

impl std::fmt::Debug for WechatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatClient")
            .field("mchid", &self.settings.mchid)
            .field("appid", &self.settings.appid)
            .field("api_base", &self.settings.api_base)
            .finish_non_exhaustive()
    }
}

/// Path segments: everything but unreserved characters (and `*`, allowed in order numbers) is
/// percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'*');

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// What one API exchange came to.
enum Reply {
    /// 2xx with a verified signature.
    Ok { body: Vec<u8> },
    /// 4xx with the provider's code.
    Failed(ProviderError),
    /// Network trouble, 5xx, or an answer we cannot trust.
    Unknown(String),
}

fn failure<T>(code: &str, message: impl Into<String>, raw: RawExchange) -> ProviderCall<T> {
    ProviderCall {
        outcome: clinicpay::payments::Outcome::Failure(ProviderError {
            code: code.into(),
            sub_code: None,
            message: message.into(),
        }),
        raw,
    }
}

fn unknown<T>(reason: impl Into<String>, raw: RawExchange) -> ProviderCall<T> {
    ProviderCall { outcome: clinicpay::payments::Outcome::Unknown(reason.into()), raw }
}

fn success<T>(t: T, raw: RawExchange) -> ProviderCall<T> {
    ProviderCall { outcome: clinicpay::payments::Outcome::Success(t), raw }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fen_to_money(fen: i64) -> Option<Money> {
    Money::from_fen(fen).ok()
}

/// Maps `trade_state` to the neutral state (`None` for a word we do not know).
fn trade_state(s: &str) -> Option<TradeState> {
    Some(match s {
        "SUCCESS" => TradeState::Paid,
        "NOTPAY" | "USERPAYING" => TradeState::Waiting,
        "CLOSED" | "REVOKED" => TradeState::Closed,
        "PAYERROR" => TradeState::Failed,
        "REFUND" => TradeState::Refunded,
        _ => return None,
    })
}

fn refund_state(s: &str) -> Option<RefundState> {
    Some(match s {
        "SUCCESS" => RefundState::Succeeded,
        "PROCESSING" => RefundState::Processing,
        "CLOSED" | "CLOSE" | "ABNORMAL" => RefundState::Failed,
        _ => return None,
    })
}

/// The JSAPI `paySign`: SHA256withRSA over `appId\ntimeStamp\nnonceStr\npackage\n` (B.7).
fn jsapi_pay_sign(key: &PrivateKey, app_id: &str, time_stamp: &str, nonce_str: &str, package: &str) -> String {
    key.sign_sha256_b64(format!("{app_id}\n{time_stamp}\n{nonce_str}\n{package}\n").as_bytes())
}

/// Looks a header up in a lower-cased header list.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

impl WechatClient {
    pub fn new(
        settings: WechatSettings,
        merchant_private_key: &str,
        apiv3_key: &str,
        http: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let key = PrivateKey::parse(merchant_private_key).context("merchant API private key")?;
        if apiv3_key.len() != 32 || !apiv3_key.is_ascii() {
            bail!("the APIv3 key must be 32 ASCII characters");
        }
        if settings.mchid.trim().is_empty() || settings.appid.trim().is_empty() {
            bail!("mchid and appid are required");
        }
        if settings.merchant_serial_no.trim().is_empty() {
            bail!("the merchant certificate serial number is required");
        }
        let base = reqwest::Url::parse(settings.api_base.trim_end_matches('/'))
            .with_context(|| format!("api_base {:?} is not a URL", settings.api_base))?;
        if !matches!(base.scheme(), "http" | "https") || base.query().is_some() {
            bail!("api_base must be an http(s) URL without a query");
        }
        let mut v = Verifiers::default();
        match &settings.platform {
            WechatPlatform::PublicKey { public_key_id, public_key } => {
                if !public_key_id.starts_with("PUB_KEY_ID_") {
                    bail!("a WeChat Pay public key id starts with PUB_KEY_ID_");
                }
                let pk = PublicKey::parse(public_key).context("WeChat Pay public key")?;
                v.keys.insert(public_key_id.clone(), pk);
                v.accept_serial = Some(public_key_id.clone());
            }
            WechatPlatform::Certificates { certificates } => {
                for c in certificates {
                    let serial = v
                        .add_certificate(&c.certificate_pem)
                        .with_context(|| format!("platform certificate {}", c.serial_no))?;
                    if cert::normalize_serial(&serial) != cert::normalize_serial(&c.serial_no) {
                        bail!("platform certificate {} has serial number {serial}", c.serial_no);
                    }
                }
            }
        }
        Ok(WechatClient {
            settings,
            key,
            apiv3_key: apiv3_key.as_bytes().to_vec(),
            http,
            base,
            verifiers: RwLock::new(v),
        })
    }

    pub fn settings(&self) -> &WechatSettings {
        &self.settings
    }

    fn lookup(&self, serial: &str) -> Option<PublicKey> {
        self.verifiers.read().unwrap_or_else(|e| e.into_inner()).get(serial).cloned()
    }

    fn url(&self, path_and_query: &str) -> anyhow::Result<reqwest::Url> {
        let base = self.base.as_str().trim_end_matches('/');
        reqwest::Url::parse(&format!("{base}{path_and_query}")).context("building the request URL")
    }

    /// Sends one signed request. `Err` = no HTTP answer (network, timeout).
    async fn send(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Option<&str>,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), String> {
        let canonical = match url.query() {
            Some(q) => format!("{}?{}", url.path(), q),
            None => url.path().to_string(),
        };
        let ts = now_secs().to_string();
        let nonce = crypto::random_alnum(32);
        let body_bytes = body.unwrap_or("").as_bytes();
        let signature =
            self.key.sign_sha256_b64(&request_message(method.as_str(), &canonical, &ts, &nonce, body_bytes));
        let auth = authorization(&self.settings.mchid, &nonce, &ts, &self.settings.merchant_serial_no, &signature);
        let mut rb = self.http.request(method, url).header("authorization", auth).header("accept", "application/json");
        let accept_serial = self.verifiers.read().unwrap_or_else(|e| e.into_inner()).accept_serial.clone();
        if let Some(s) = accept_serial {
            rb = rb.header("wechatpay-serial", s);
        }
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b.to_string());
        }
        let resp = rb.send().await.map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| format!("reading the response failed: {e}"))?;
        Ok((status, headers, bytes.to_vec()))
    }

    fn header_list(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_ascii_lowercase(), v.to_string())))
            .collect()
    }

    /// One API call: sign, send, verify, classify.
    async fn call(
        &self,
        op: &str,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<String>,
    ) -> (Reply, RawExchange) {
        let mut raw = RawExchange {
            operation: op.into(),
            request: format!("{method} {path_and_query}\n{}", body.as_deref().unwrap_or("")),
            ..Default::default()
        };
        let url = match self.url(path_and_query) {
            Ok(u) => u,
            Err(e) => return (Reply::Unknown(e.to_string()), raw),
        };
        let (status, headers, bytes) = match self.send(method, url, body.as_deref()).await {
            Ok(x) => x,
            Err(e) => return (Reply::Unknown(e), raw),
        };
        raw.http_status = Some(status);
        raw.response = text(&bytes);
        (self.classify(status, &headers, &bytes, None), raw)
    }

    fn classify(
        &self,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        bytes: &[u8],
        extra: Option<&Verifiers>,
    ) -> Reply {
        if (200..300).contains(&status) {
            let list = Self::header_list(headers);
            let lookup = |s: &str| extra.and_then(|v| v.get(s).cloned()).or_else(|| self.lookup(s));
            return match check_signature(&lookup, &list, bytes, now_secs()) {
                // 202: accepted but not done; the same call must be repeated (B.8)
                Ok(()) if status == 202 => Reply::Unknown("HTTP 202 accepted: repeat the call".into()),
                Ok(()) => Reply::Ok { body: bytes.to_vec() },
                Err(e) => Reply::Unknown(format!("unverifiable HTTP {status} answer: {e}")),
            };
        }
        let (code, message) = match serde_json::from_slice::<ApiError>(bytes) {
            Ok(e) => (e.code, e.message),
            Err(_) => (format!("HTTP_{status}"), text(bytes).chars().take(200).collect()),
        };
        if status >= 500 {
            return Reply::Unknown(format!("HTTP {status} {code}: {message}"));
        }
        let mut err = ProviderError { code, sub_code: None, message };
        if status == 404 && !err.is_not_found() {
            // B.8: HTTP 404 means "not found" whatever the code says
            err.sub_code = Some("NOT_FOUND".into());
        }
        Reply::Failed(err)
    }

    /// GET /v3/certificates, decrypt each with the APIv3 key (B.4/B.5) and return them (verify the
    /// response with the certificates it carries). The certificates are also added to the keys
    /// this client verifies with.
    pub async fn download_certificates(&self) -> anyhow::Result<Vec<PlatformCertificate>> {
        let url = self.url("/v3/certificates")?;
        let (status, headers, bytes) =
            self.send(reqwest::Method::GET, url, None).await.map_err(|e| anyhow!("/v3/certificates: {e}"))?;
        if !(200..300).contains(&status) {
            let e = serde_json::from_slice::<ApiError>(&bytes)
                .map(|e| format!("{} {}", e.code, e.message))
                .unwrap_or_else(|_| text(&bytes));
            bail!("/v3/certificates answered HTTP {status}: {e}");
        }
        let list: CertificateList = serde_json::from_slice(&bytes).context("/v3/certificates answer")?;
        let mut found = Verifiers::default();
        let mut out = Vec::new();
        for entry in &list.data {
            let plain = decrypt_resource(&self.apiv3_key, &entry.encrypt_certificate)
                .map_err(|_| anyhow!("cannot decrypt certificate {} (wrong APIv3 key?)", entry.serial_no))?;
            let pem = String::from_utf8(plain).context("certificate text")?;
            let serial = found.add_certificate(&pem).with_context(|| format!("certificate {}", entry.serial_no))?;
            if cert::normalize_serial(&serial) != cert::normalize_serial(&entry.serial_no) {
                bail!("certificate listed as {} has serial number {serial}", entry.serial_no);
            }
            out.push(PlatformCertificate { serial_no: entry.serial_no.clone(), certificate_pem: pem });
        }
        match self.classify(status, &headers, &bytes, Some(&found)) {
            Reply::Ok { .. } => {}
            Reply::Unknown(e) | Reply::Failed(ProviderError { message: e, .. }) => bail!("/v3/certificates: {e}"),
        }
        let mut v = self.verifiers.write().unwrap_or_else(|e| e.into_inner());
        if matches!(self.settings.platform, WechatPlatform::Certificates { .. }) {
            for c in &out {
                v.add_certificate(&c.certificate_pem)?;
            }
        }
        Ok(out)
    }

    fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
        serde_json::from_slice(body).map_err(|e| format!("malformed answer: {e}"))
    }

    fn trade_status(&self, out_trade_no: &str, t: &Transaction) -> Result<TradeStatus, String> {
        if t.mchid.as_deref().is_some_and(|m| m != self.settings.mchid) {
            return Err("the answer is for another merchant".into());
        }
        if t.out_trade_no.as_deref().is_some_and(|o| o != out_trade_no) {
            return Err("the answer is for another trade".into());
        }
        let state = trade_state(&t.trade_state).ok_or_else(|| format!("unknown trade_state {:?}", t.trade_state))?;
        let amount = t.amount.as_ref().and_then(|a| a.total).and_then(fen_to_money);
        Ok(TradeStatus {
            out_trade_no: out_trade_no.to_string(),
            state,
            provider_txn_id: t.transaction_id.clone().filter(|s| !s.is_empty()),
            amount,
            paid_at_ms: t.success_time.as_deref().and_then(parse_rfc3339_ms),
            provider_state: t.trade_state.clone(),
        })
    }

    fn refund_status(&self, out_trade_no: &str, r: &Refund) -> Result<RefundStatus, String> {
        let state = refund_state(&r.status).ok_or_else(|| format!("unknown refund status {:?}", r.status))?;
        Ok(RefundStatus {
            out_trade_no: r.out_trade_no.clone().unwrap_or_else(|| out_trade_no.to_string()),
            out_refund_no: r.out_refund_no.clone(),
            state,
            amount: r.amount.refund.and_then(fen_to_money),
            provider_refund_id: Some(r.refund_id.clone()).filter(|s| !s.is_empty()),
            provider_state: r.status.clone(),
        })
    }

    fn prepay_body(&self, req: &CreatePayment) -> Result<(&'static str, PrepayRequest), String> {
        let mut body = PrepayRequest {
            appid: self.settings.appid.clone(),
            mchid: self.settings.mchid.clone(),
            description: req.subject.chars().take(127).collect(),
            out_trade_no: req.out_trade_no.clone(),
            time_expire: Some(clinicpay::time::rfc3339_beijing(req.expires_at_ms)).filter(|s| !s.is_empty()),
            attach: None,
            notify_url: req.notify_url.clone(),
            amount: Amount { total: req.amount.fen(), currency: Some("CNY".into()) },
            payer: None,
            scene_info: None,
        };
        let path = match req.method {
            PayMethod::WechatNative => "/v3/pay/transactions/native",
            PayMethod::WechatJsapi => {
                let openid = req.payer_openid.as_deref().filter(|s| !s.trim().is_empty());
                let openid = openid.ok_or("JSAPI payment needs the payer's openid")?;
                body.payer = Some(Payer { openid: Some(openid.to_string()) });
                "/v3/pay/transactions/jsapi"
            }
            PayMethod::WechatH5 => {
                let ip = req.payer_ip.as_deref().filter(|s| !s.trim().is_empty());
                let ip = ip.ok_or("H5 payment needs the payer's IP address")?;
                body.scene_info = Some(SceneInfo {
                    payer_client_ip: Some(ip.to_string()),
                    device_id: None,
                    h5_info: Some(H5Info { kind: "Wap".into() }),
                });
                "/v3/pay/transactions/h5"
            }
            _ => return Err(String::new()),
        };
        Ok((path, body))
    }
}

#[async_trait]
impl Gateway for WechatClient {
    fn provider(&self) -> Provider {
        Provider::WechatPay
    }

    fn account(&self) -> &str {
        &self.settings.mchid
    }

    async fn create_payment(&self, req: &CreatePayment) -> ProviderCall<PayAction> {
        let raw = RawExchange { operation: "create_payment".into(), ..Default::default() };
        if req.method.provider() != Provider::WechatPay {
            return failure("UNSUPPORTED_METHOD", format!("WeChat Pay cannot take {}", req.method), raw);
        }
        if !req.amount.is_positive() {
            return failure("PARAM_ERROR", "the amount must be positive", raw);
        }
        let (path, body) = match self.prepay_body(req) {
            Ok(x) => x,
            Err(msg) if msg.is_empty() => {
                return failure("UNSUPPORTED_METHOD", format!("WeChat Pay cannot take {}", req.method), raw)
            }
            Err(msg) => return failure("PARAM_ERROR", msg, raw),
        };
        let json = match serde_json::to_string(&body) {
            Ok(j) => j,
            Err(e) => return failure("PARAM_ERROR", e.to_string(), raw),
        };
        let (reply, raw) = self.call("create_payment", reqwest::Method::POST, path, Some(json)).await;
        let body = match reply {
            Reply::Ok { body } => body,
            Reply::Failed(e) => return ProviderCall { outcome: clinicpay::payments::Outcome::Failure(e), raw },
            Reply::Unknown(r) => return unknown(r, raw),
        };
        let v: serde_json::Value = match Self::parse_json(&body) {
            Ok(v) => v,
            Err(e) => return unknown(e, raw),
        };
        let field = |name: &str| v.get(name).and_then(|x| x.as_str()).filter(|s| !s.is_empty()).map(str::to_string);
        match req.method {
            PayMethod::WechatNative => match field("code_url") {
                Some(u) => success(PayAction::QrCode(u), raw),
                None => unknown("the answer has no code_url", raw),
            },
            PayMethod::WechatH5 => match field("h5_url") {
                Some(u) => success(PayAction::Redirect(u), raw),
                None => unknown("the answer has no h5_url", raw),
            },
            _ => match field("prepay_id") {
                Some(id) => {
                    let time_stamp = now_secs().to_string();
                    let nonce_str = crypto::random_alnum(32);
                    let package = format!("prepay_id={id}");
                    let pay_sign = jsapi_pay_sign(&self.key, &self.settings.appid, &time_stamp, &nonce_str, &package);
                    success(
                        PayAction::Jsapi(JsapiParams {
                            app_id: self.settings.appid.clone(),
                            time_stamp,
                            nonce_str,
                            package,
                            sign_type: "RSA".into(),
                            pay_sign,
                        }),
                        raw,
                    )
                }
                None => unknown("the answer has no prepay_id", raw),
            },
        }
    }

    async fn query_payment(&self, out_trade_no: &str) -> ProviderCall<TradeStatus> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}?mchid={}",
            seg(out_trade_no),
            form_urlencoded::byte_serialize(self.settings.mchid.as_bytes()).collect::<String>()
        );
        let (reply, raw) = self.call("query_payment", reqwest::Method::GET, &path, None).await;
        match reply {
            Reply::Ok { body } => {
                match Self::parse_json::<Transaction>(&body).and_then(|t| self.trade_status(out_trade_no, &t)) {
                    Ok(s) => success(s, raw),
                    Err(e) => unknown(e, raw),
                }
            }
            Reply::Failed(e) if e.is_not_found() => success(
                TradeStatus {
                    out_trade_no: out_trade_no.to_string(),
                    state: TradeState::NotFound,
                    provider_txn_id: None,
                    amount: None,
                    paid_at_ms: None,
                    provider_state: e.code,
                },
                raw,
            ),
            Reply::Failed(e) => ProviderCall { outcome: clinicpay::payments::Outcome::Failure(e), raw },
            Reply::Unknown(r) => unknown(r, raw),
        }
    }

    async fn close_payment(&self, out_trade_no: &str) -> ProviderCall<()> {
        let path = format!("/v3/pay/transactions/out-trade-no/{}/close", seg(out_trade_no));
        let body = serde_json::json!({ "mchid": self.settings.mchid }).to_string();
        let (reply, raw) = self.call("close_payment", reqwest::Method::POST, &path, Some(body)).await;
        match reply {
            Reply::Ok { .. } => success((), raw),
            Reply::Failed(e) => ProviderCall { outcome: clinicpay::payments::Outcome::Failure(e), raw },
            Reply::Unknown(r) => unknown(r, raw),
        }
    }

    async fn refund(&self, req: &RefundRequest) -> ProviderCall<RefundStatus> {
        let raw = RawExchange { operation: "refund".into(), ..Default::default() };
        if !req.amount.is_positive() || req.amount > req.total {
            return failure("PARAM_ERROR", "the refund amount must be positive and at most the total", raw);
        }
        let body = RefundCreate {
            transaction_id: None,
            out_trade_no: Some(req.out_trade_no.clone()),
            out_refund_no: req.out_refund_no.clone(),
            reason: Some(req.reason.chars().take(80).collect()).filter(|s: &String| !s.is_empty()),
            notify_url: req.notify_url.clone(),
            funds_account: None,
            amount: RefundAmountReq { refund: req.amount.fen(), total: req.total.fen(), currency: "CNY".into() },
        };
        let json = match serde_json::to_string(&body) {
            Ok(j) => j,
            Err(e) => return failure("PARAM_ERROR", e.to_string(), raw),
        };
        let (reply, raw) = self.call("refund", reqwest::Method::POST, "/v3/refund/domestic/refunds", Some(json)).await;
        match reply {
            Reply::Ok { body } => {
                match Self::parse_json::<Refund>(&body).and_then(|r| self.refund_status(&req.out_trade_no, &r)) {
                    Ok(s) if s.state == RefundState::Processing => {
                        ProviderCall { outcome: clinicpay::payments::Outcome::Waiting(Some(s)), raw }
                    }
                    Ok(s) => success(s, raw),
                    Err(e) => unknown(e, raw),
                }
            }
            Reply::Failed(e) => ProviderCall { outcome: clinicpay::payments::Outcome::Failure(e), raw },
            Reply::Unknown(r) => unknown(r, raw),
        }
    }

    async fn query_refund(&self, out_trade_no: &str, out_refund_no: &str) -> ProviderCall<RefundStatus> {
        let path = format!("/v3/refund/domestic/refunds/{}", seg(out_refund_no));
        let (reply, raw) = self.call("query_refund", reqwest::Method::GET, &path, None).await;
        match reply {
            Reply::Ok { body } => {
                match Self::parse_json::<Refund>(&body).and_then(|r| self.refund_status(out_trade_no, &r)) {
                    Ok(s) => success(s, raw),
                    Err(e) => unknown(e, raw),
                }
            }
            Reply::Failed(e) if e.is_not_found() => success(
                RefundStatus {
                    out_trade_no: out_trade_no.to_string(),
                    out_refund_no: out_refund_no.to_string(),
                    state: RefundState::NotFound,
                    amount: None,
                    provider_refund_id: None,
                    provider_state: e.code,
                },
                raw,
            ),
            Reply::Failed(e) => ProviderCall { outcome: clinicpay::payments::Outcome::Failure(e), raw },
            Reply::Unknown(r) => unknown(r, raw),
        }
    }

    fn owns_notification(&self, n: &RawNotification) -> bool {
        n.header(H_SERIAL).is_some_and(|s| self.lookup(s.trim()).is_some())
    }

    fn verify_notification(&self, n: &RawNotification, now_ms: Millis) -> Result<ProviderEvent, Rejection> {
        self.read_notification(n, now_ms)
    }

    fn notify_reply(&self, accepted: bool) -> NotifyReply {
        notify_reply(accepted)
    }

    async fn download_statement(&self, date: chrono::NaiveDate) -> ProviderCall<Statement> {
        let path = format!("/v3/bill/tradebill?bill_date={}&bill_type=ALL", date.format("%Y-%m-%d"));
        let (reply, mut raw) = self.call("download_statement", reqwest::Method::GET, &path, None).await;
        let body = match reply {
            Reply::Ok { body } => body,
            Reply::Failed(e) if e.code == "NO_STATEMENT_EXIST" => {
                // no transactions that day: an empty statement
                return success(Statement { date, lines: Vec::new(), raw: Vec::new() }, raw);
            }
            Reply::Failed(e) => return ProviderCall { outcome: clinicpay::payments::Outcome::Failure(e), raw },
            Reply::Unknown(r) => return unknown(r, raw),
        };
        let link: BillLink = match Self::parse_json(&body) {
            Ok(l) => l,
            Err(e) => return unknown(e, raw),
        };
        if !link.hash_type.eq_ignore_ascii_case("SHA1") {
            return unknown(format!("unsupported hash_type {}", link.hash_type), raw);
        }
        let url = match reqwest::Url::parse(&link.download_url) {
            Ok(u) if self.same_origin_or_wechat(&u) => u,
            Ok(_) => return unknown("download_url points to an unexpected host", raw),
            Err(e) => return unknown(format!("bad download_url: {e}"), raw),
        };
        // the download request is signed; its answer is not (B.7)
        let (status, _, file) = match self.send(reqwest::Method::GET, url, None).await {
            Ok(x) => x,
            Err(e) => return unknown(e, raw),
        };
        raw.response.push_str(&format!("\n[bill download: HTTP {status}, {} bytes]", file.len()));
        if !(200..300).contains(&status) {
            return match self.classify(status, &reqwest::header::HeaderMap::new(), &file, None) {
                Reply::Failed(e) => ProviderCall { outcome: clinicpay::payments::Outcome::Failure(e), raw },
                Reply::Unknown(r) => unknown(r, raw),
                Reply::Ok { .. } => unknown("unexpected bill download answer", raw),
            };
        }
        let plain = match maybe_gunzip(&file) {
            Ok(p) => p,
            Err(e) => return unknown(format!("bill file: {e}"), raw),
        };
        if !crypto::ct_eq(crypto::sha1_hex(&plain).as_bytes(), link.hash_value.to_ascii_lowercase().as_bytes()) {
            return unknown("the bill's SHA-1 does not match hash_value", raw);
        }
        match parse_bill(&plain).and_then(|b| bill_statement_lines(&b)) {
            Ok(lines) => success(Statement { date, lines, raw: file }, raw),
            Err(e) => unknown(format!("bill file: {e:#}"), raw),
        }
    }
}

impl WechatClient {
    /// Bill files are fetched from the API host (or WeChat's own hosts), never elsewhere: the
    /// request carries our signature.
    fn same_origin_or_wechat(&self, u: &reqwest::Url) -> bool {
        let same = u.scheme() == self.base.scheme()
            && u.host_str() == self.base.host_str()
            && u.port_or_known_default() == self.base.port_or_known_default();
        same || (u.scheme() == "https" && u.host_str().is_some_and(|h| h.ends_with(".weixin.qq.com")))
    }
}
