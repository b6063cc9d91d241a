//! Alipay OpenAPI merchant client: the classic `gateway.do` protocol with RSA2 signatures
//! (PROTOCOLS.md Part A), implementing the [`Gateway`] port.
//!
//! * Requests are signed as in A.4 and POSTed as a UTF-8 form to `gateway_url`.
//! * Responses are verified over the raw text of the response node as it appears in the body
//!   (A.5.1); an unsigned or unverifiable response is [`Outcome::Unknown`].
//! * Notifications (A.8) are verified with the "V1" rule (`sign` and `sign_type` excluded).
//!
//! Outcome mapping: code `10000` → success; `20000` (service unavailable) and
//! `ACQ.SYSTEM_ERROR` → `Unknown` (retry / query later); every other code → `Failure` with
//! Alipay's `code`, `sub_code` and `sub_msg` kept verbatim. Two documented exceptions turn a
//! `40004 ACQ.TRADE_NOT_EXIST` into a success: a query answers [`TradeState::NotFound`] (the
//! trade of a QR code exists only once the buyer scans it), and closing a trade that does not
//! exist yet counts as closed — Alipay keeps the closed `out_trade_no` from being paid later
//! (A.6 "lifecycle quirk").

pub mod bill;
pub mod wire;

use crate::crypto::{PrivateKey, PublicKey};
use clinicpay::money::Money;
use clinicpay::payments::{
    EventKind, Outcome, PayAction, PayMethod, Provider, ProviderCall, ProviderError, ProviderEvent, RawExchange,
    RefundState, RefundStatus, Rejection, TradeState, TradeStatus,
};
use clinicpay::ports::{CreatePayment, Gateway, NotifyReply, RawNotification, RefundRequest, Statement};
use clinicpay::time::Millis;
use serde_json::{Map, Value};
use wire::{param, Params};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlipaySettings {
    pub app_id: String,
    /// https://openapi.alipay.com/gateway.do, or {base}/sandbox/alipay/gateway.do
    pub gateway_url: String,
    /// Alipay's public key: PEM or bare base64 SPKI.
    pub alipay_public_key: String,
    #[serde(default)]
    pub seller_id: Option<String>,
}

/// One Alipay app (merchant account) as a client.
pub struct AlipayClient {
    settings: AlipaySettings,
    key: PrivateKey,
    alipay_key: PublicKey,
    http: reqwest::Client,
}

impl std::fmt::Debug for AlipayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlipayClient")
            .field("app_id", &self.settings.app_id)
            .field("gateway_url", &self.settings.gateway_url)
            .finish_non_exhaustive()
    }
}

/// What a gateway call came to, before the operation reads its fields.
#[derive(Debug)]
enum Reply {
    Ok(Map<String, Value>),
    Fail(ProviderError),
    Unknown(String),
}

const MAX_SUBJECT_CHARS: usize = 128;

fn str_field<'a>(node: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn amount_field(node: &Map<String, Value>, key: &str) -> Option<Money> {
    node.get(key).and_then(wire::json_amount)
}

/// Compact JSON of ordered members (what goes into `biz_content`).
fn biz(members: &[(&str, Value)]) -> String {
    let map: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::String((*k).to_string()), serde_json::to_string(v).unwrap_or_default()))
        .collect();
    format!("{{{}}}", map.join(","))
}

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

impl AlipayClient {
    pub fn new(settings: AlipaySettings, app_private_key: &str, http: reqwest::Client) -> anyhow::Result<Self> {
        use anyhow::Context;
        if settings.app_id.trim().is_empty() {
            anyhow::bail!("Alipay app_id is empty");
        }
        let url = reqwest::Url::parse(&settings.gateway_url).context("Alipay gateway_url is not a URL")?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("Alipay gateway_url must be http(s)");
        }
        let key = PrivateKey::parse(app_private_key).context("Alipay app private key")?;
        let alipay_key = PublicKey::parse(&settings.alipay_public_key).context("Alipay public key")?;
        if alipay_key == key.public_key() {
            anyhow::bail!("the Alipay public key is the app's own public key; use the key Alipay shows for the app");
        }
        Ok(AlipayClient { settings, key, alipay_key, http })
    }

    pub fn settings(&self) -> &AlipaySettings {
        &self.settings
    }

    /// The common parameters plus `extra` and `biz_content`, signed (A.3, A.4), in the order
    /// they are sent.
    fn signed_params(&self, method: &str, biz_content: &str, extra: &[(&str, String)], timestamp: &str) -> Params {
        let mut p: Params = vec![
            ("app_id".into(), self.settings.app_id.clone()),
            ("method".into(), method.into()),
            ("format".into(), "JSON".into()),
            ("charset".into(), "utf-8".into()),
            ("sign_type".into(), "RSA2".into()),
            ("timestamp".into(), timestamp.into()),
            ("version".into(), "1.0".into()),
        ];
        for (k, v) in extra {
            if !v.is_empty() {
                p.push(((*k).into(), v.clone()));
            }
        }
        p.push(("biz_content".into(), biz_content.into()));
        wire::sign_request(&mut p, &self.key);
        p
    }

    async fn call(&self, method: &str, biz_content: String, extra: &[(&str, String)]) -> (RawExchange, Reply) {
        let params = self.signed_params(method, &biz_content, extra, &wire::fmt_time(now_ms()));
        let body = wire::encode_form(&params);
        let mut raw =
            RawExchange { operation: method.into(), request: body.clone(), http_status: None, response: String::new() };
        let sent = self
            .http
            .post(&self.settings.gateway_url)
            .header(reqwest::header::CONTENT_TYPE, wire::FORM_CONTENT_TYPE)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return (raw, Reply::Unknown(format!("transport error: {e}"))),
        };
        let status = resp.status().as_u16();
        raw.http_status = Some(status);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return (raw, Reply::Unknown(format!("reading the response: {e}"))),
        };
        raw.response = String::from_utf8_lossy(&bytes).into_owned();
        if status != 200 {
            return (raw, Reply::Unknown(format!("HTTP status {status}")));
        }
        let reply = match std::str::from_utf8(&bytes) {
            Ok(text) => self.interpret(method, text),
            Err(_) => Reply::Unknown("response is not UTF-8".into()),
        };
        (raw, reply)
    }

    /// Verifies and classifies a gateway response body (A.5).
    fn interpret(&self, method: &str, text: &str) -> Reply {
        let node_name = wire::response_node_name(method);
        let Some(parts) = wire::extract_response(text, &node_name) else {
            return Reply::Unknown(format!("response has no {node_name} node"));
        };
        let Some(sign) = parts.sign.as_deref() else {
            return Reply::Unknown("response is not signed".into());
        };
        if !wire::verify_response_node(&self.alipay_key, parts.node, sign) {
            return Reply::Unknown("response signature does not verify with the Alipay public key".into());
        }
        let node: Map<String, Value> = match serde_json::from_str(parts.node) {
            Ok(n) => n,
            Err(e) => return Reply::Unknown(format!("response node is not a JSON object: {e}")),
        };
        classify(node)
    }

    fn unknown<T>(raw: RawExchange, reason: String) -> ProviderCall<T> {
        ProviderCall { outcome: Outcome::Unknown(reason), raw }
    }

    /// The signed browser URL for page / wap pay (A.6): gateway + `?` + every parameter.
    fn page_pay_url(&self, req: &CreatePayment, method: &str, product_code: &str) -> String {
        let mut members: Vec<(&str, Value)> = vec![
            ("out_trade_no", req.out_trade_no.clone().into()),
            ("total_amount", req.amount.plain().into()),
            ("subject", truncate_chars(&req.subject, MAX_SUBJECT_CHARS).into()),
            ("product_code", product_code.into()),
            ("time_expire", wire::fmt_time(req.expires_at_ms).into()),
        ];
        if let Some(seller) = &self.settings.seller_id {
            members.push(("seller_id", seller.clone().into()));
        }
        if method == "alipay.trade.wap.pay" {
            if let Some(r) = &req.return_url {
                members.push(("quit_url", r.clone().into()));
            }
        }
        let extra =
            [("notify_url", req.notify_url.clone()), ("return_url", req.return_url.clone().unwrap_or_default())];
        let params = self.signed_params(method, &biz(&members), &extra, &wire::fmt_time(now_ms()));
        let sep = if self.settings.gateway_url.contains('?') { '&' } else { '?' };
        format!("{}{}{}", self.settings.gateway_url, sep, wire::encode_form(&params))
    }

    /// Verifies the signed parameters Alipay appends to `return_url` after page / wap pay
    /// (V1, like notifications) and returns `(out_trade_no, trade_no, total_amount)`.
    /// The browser return is only a hint: the notification or a query is authoritative.
    pub fn verify_return(&self, query: &str) -> Result<(String, String, Money), Rejection> {
        let params = wire::parse_form(query.trim_start_matches('?').as_bytes());
        if param(&params, "sign").is_none() {
            return Err(Rejection::Malformed("missing sign".into()));
        }
        let app_id = param(&params, "app_id").unwrap_or("");
        if app_id != self.settings.app_id {
            return Err(Rejection::UnknownAccount(app_id.to_string()));
        }
        if let Some(refused) = wire::refused_sign_type(&params) {
            return Err(Rejection::SignType(refused));
        }
        if !wire::verify_notify_v1(&params, &self.alipay_key) {
            return Err(Rejection::BadSignature);
        }
        let need = |k: &str| {
            param(&params, k).filter(|v| !v.is_empty()).ok_or_else(|| Rejection::Malformed(format!("missing {k}")))
        };
        let amount =
            wire::parse_amount(need("total_amount")?).ok_or_else(|| Rejection::Malformed("bad total_amount".into()))?;
        Ok((need("out_trade_no")?.to_string(), need("trade_no")?.to_string(), amount))
    }

    fn notification_params(&self, n: &RawNotification) -> Result<Params, Rejection> {
        let ct = if n.content_type.is_empty() { n.header("content-type").unwrap_or("") } else { &n.content_type };
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(Rejection::ContentType(ct.to_string()));
        }
        let body = std::str::from_utf8(&n.body).map_err(|_| Rejection::Malformed("body is not UTF-8".into()))?;
        let params = wire::parse_form(body.trim().as_bytes());
        let mut seen = std::collections::HashSet::new();
        for (k, _) in &params {
            if !seen.insert(k.as_str()) {
                return Err(Rejection::Malformed(format!("parameter {k} appears twice")));
            }
        }
        Ok(params)
    }
}

/// Maps Alipay's `code` / `sub_code` (A.5.3).
fn classify(node: Map<String, Value>) -> Reply {
    let code = str_field(&node, "code").unwrap_or("").to_string();
    if code == "10000" {
        return Reply::Ok(node);
    }
    let sub_code = str_field(&node, "sub_code").map(str::to_string);
    let message = str_field(&node, "sub_msg").or_else(|| str_field(&node, "msg")).unwrap_or("").to_string();
    let retryable = code.is_empty()
        || code == "20000"
        || code == "10003"
        || matches!(
            sub_code.as_deref(),
            Some("ACQ.SYSTEM_ERROR") | Some("isp.unknow-error") | Some("aop.unknow-error")
        );
    if retryable {
        return Reply::Unknown(format!(
            "Alipay {} {}: {message} (retryable)",
            if code.is_empty() { "(no code)" } else { &code },
            sub_code.as_deref().unwrap_or("")
        ));
    }
    Reply::Fail(ProviderError { code, sub_code, message })
}

fn is_not_exist(e: &ProviderError) -> bool {
    e.sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST")
}

/// `trade_status` → neutral state. A closed trade that had been paid (it carries a payment date
/// or a refunded amount) was closed by a full refund: money was received, so `Refunded`.
fn trade_state(node: &Map<String, Value>) -> Option<TradeState> {
    Some(match str_field(node, "trade_status")? {
        "WAIT_BUYER_PAY" => TradeState::Waiting,
        "TRADE_SUCCESS" | "TRADE_FINISHED" => TradeState::Paid,
        "TRADE_CLOSED" => {
            let refunded = amount_field(node, "refund_fee").is_some_and(|m| m.is_positive());
            let was_paid = str_field(node, "send_pay_date").is_some()
                || amount_field(node, "buyer_pay_amount").is_some_and(|m| m.is_positive());
            if refunded || was_paid {
                TradeState::Refunded
            } else {
                TradeState::Closed
            }
        }
        _ => return None,
    })
}

#[async_trait::async_trait]
impl Gateway for AlipayClient {
    fn provider(&self) -> Provider {
        Provider::Alipay
    }

    fn account(&self) -> &str {
        &self.settings.app_id
    }

    async fn create_payment(&self, req: &CreatePayment) -> ProviderCall<PayAction> {
        let (method, product_code) = match req.method {
            PayMethod::AlipayQr => ("alipay.trade.precreate", ""),
            PayMethod::AlipayPage => ("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
            PayMethod::AlipayWap => ("alipay.trade.wap.pay", "QUICK_WAP_WAY"),
            other => {
                return ProviderCall {
                    outcome: Outcome::Failure(ProviderError {
                        code: "UNSUPPORTED_METHOD".into(),
                        sub_code: None,
                        message: format!("{other} is not an Alipay payment method"),
                    }),
                    raw: RawExchange { operation: "create_payment".into(), ..RawExchange::default() },
                }
            }
        };
        if req.method != PayMethod::AlipayQr {
            let url = self.page_pay_url(req, method, product_code);
            return ProviderCall {
                outcome: Outcome::Success(PayAction::Redirect(url.clone())),
                raw: RawExchange { operation: method.into(), request: url, http_status: None, response: String::new() },
            };
        }
        let mut members: Vec<(&str, Value)> = vec![
            ("out_trade_no", req.out_trade_no.clone().into()),
            ("total_amount", req.amount.plain().into()),
            ("subject", truncate_chars(&req.subject, MAX_SUBJECT_CHARS).into()),
            ("time_expire", wire::fmt_time(req.expires_at_ms).into()),
        ];
        if let Some(seller) = &self.settings.seller_id {
            members.push(("seller_id", seller.clone().into()));
        }
        let (raw, reply) = self.call(method, biz(&members), &[("notify_url", req.notify_url.clone())]).await;
        let outcome = match reply {
            Reply::Ok(node) => match str_field(&node, "qr_code") {
                Some(qr) => Outcome::Success(PayAction::QrCode(qr.to_string())),
                None => Outcome::Unknown("precreate succeeded without a qr_code".into()),
            },
            Reply::Fail(e) => Outcome::Failure(e),
            Reply::Unknown(r) => return Self::unknown(raw, r),
        };
        ProviderCall { outcome, raw }
    }

    async fn query_payment(&self, out_trade_no: &str) -> ProviderCall<TradeStatus> {
        let (raw, reply) = self.call("alipay.trade.query", biz(&[("out_trade_no", out_trade_no.into())]), &[]).await;
        let outcome = match reply {
            Reply::Ok(node) => match trade_state(&node) {
                Some(state) => Outcome::Success(TradeStatus {
                    out_trade_no: str_field(&node, "out_trade_no").unwrap_or(out_trade_no).to_string(),
                    state,
                    provider_txn_id: str_field(&node, "trade_no").map(str::to_string),
                    amount: amount_field(&node, "total_amount"),
                    paid_at_ms: str_field(&node, "send_pay_date").and_then(wire::parse_time),
                    provider_state: str_field(&node, "trade_status").unwrap_or("").to_string(),
                }),
                None => Outcome::Unknown(format!(
                    "unknown trade_status {:?}",
                    str_field(&node, "trade_status").unwrap_or("")
                )),
            },
            Reply::Fail(e) if is_not_exist(&e) => Outcome::Success(TradeStatus {
                out_trade_no: out_trade_no.to_string(),
                state: TradeState::NotFound,
                provider_txn_id: None,
                amount: None,
                paid_at_ms: None,
                provider_state: "TRADE_NOT_EXIST".into(),
            }),
            Reply::Fail(e) => Outcome::Failure(e),
            Reply::Unknown(r) => Outcome::Unknown(r),
        };
        ProviderCall { outcome, raw }
    }

    async fn close_payment(&self, out_trade_no: &str) -> ProviderCall<()> {
        let (raw, reply) = self.call("alipay.trade.close", biz(&[("out_trade_no", out_trade_no.into())]), &[]).await;
        let outcome = match reply {
            Reply::Ok(_) => Outcome::Success(()),
            // Not created yet (QR never scanned): Alipay still refuses a later payment of this
            // out_trade_no, so the payment is closed as far as we are concerned.
            Reply::Fail(e) if is_not_exist(&e) => Outcome::Success(()),
            Reply::Fail(e) => Outcome::Failure(e),
            Reply::Unknown(r) => Outcome::Unknown(r),
        };
        ProviderCall { outcome, raw }
    }

    async fn refund(&self, req: &RefundRequest) -> ProviderCall<RefundStatus> {
        let mut members: Vec<(&str, Value)> = vec![
            ("out_trade_no", req.out_trade_no.clone().into()),
            ("refund_amount", req.amount.plain().into()),
            ("out_request_no", req.out_refund_no.clone().into()),
        ];
        if !req.reason.trim().is_empty() {
            members.push(("refund_reason", truncate_chars(req.reason.trim(), 256).into()));
        }
        let (raw, reply) = self.call("alipay.trade.refund", biz(&members), &[]).await;
        let outcome = match reply {
            Reply::Ok(node) => {
                let fund_change = str_field(&node, "fund_change").unwrap_or("");
                let cumulative = amount_field(&node, "refund_fee");
                // `fund_change=N` is what a repeated request answers; the refund is done when
                // Alipay's cumulative refunded amount covers it. Otherwise query it.
                let done = fund_change == "Y" || cumulative.is_some_and(|c| c >= req.amount);
                let status = RefundStatus {
                    out_trade_no: req.out_trade_no.clone(),
                    out_refund_no: req.out_refund_no.clone(),
                    state: if done { RefundState::Succeeded } else { RefundState::Processing },
                    amount: Some(req.amount),
                    provider_refund_id: str_field(&node, "trade_no").map(str::to_string),
                    provider_state: format!("fund_change={fund_change}"),
                };
                if done {
                    Outcome::Success(status)
                } else {
                    Outcome::Waiting(Some(status))
                }
            }
            Reply::Fail(e) => Outcome::Failure(e),
            Reply::Unknown(r) => Outcome::Unknown(r),
        };
        ProviderCall { outcome, raw }
    }

    async fn query_refund(&self, out_trade_no: &str, out_refund_no: &str) -> ProviderCall<RefundStatus> {
        let members = [("out_trade_no", out_trade_no.into()), ("out_request_no", out_refund_no.into())];
        let (raw, reply) = self.call("alipay.trade.fastpay.refund.query", biz(&members), &[]).await;
        let status = |state, amount, txn: Option<&str>, provider_state: &str| RefundStatus {
            out_trade_no: out_trade_no.to_string(),
            out_refund_no: out_refund_no.to_string(),
            state,
            amount,
            provider_refund_id: txn.map(str::to_string),
            provider_state: provider_state.to_string(),
        };
        let outcome = match reply {
            Reply::Ok(node) => {
                let amount = amount_field(&node, "refund_amount");
                let refund_status = str_field(&node, "refund_status");
                let same_request = str_field(&node, "out_request_no").is_none_or(|r| r == out_refund_no);
                match (amount, refund_status) {
                    // "no data" = not received (or failed): safe to retry the same request
                    (None, None) => Outcome::Success(status(RefundState::NotFound, None, None, "")),
                    _ if !same_request => Outcome::Unknown("refund query answered another out_request_no".into()),
                    // Alipay: data present and refund_status empty or REFUND_SUCCESS = refunded
                    (Some(a), None | Some("REFUND_SUCCESS")) => Outcome::Success(status(
                        RefundState::Succeeded,
                        Some(a),
                        str_field(&node, "trade_no"),
                        refund_status.unwrap_or("REFUND_SUCCESS"),
                    )),
                    (None, Some("REFUND_SUCCESS")) => Outcome::Unknown("REFUND_SUCCESS without refund_amount".into()),
                    (a, Some(other)) => {
                        Outcome::Waiting(Some(status(RefundState::Processing, a, str_field(&node, "trade_no"), other)))
                    }
                }
            }
            Reply::Fail(e) if is_not_exist(&e) => Outcome::Success(status(RefundState::NotFound, None, None, "")),
            Reply::Fail(e) => Outcome::Failure(e),
            Reply::Unknown(r) => Outcome::Unknown(r),
        };
        ProviderCall { outcome, raw }
    }

    fn owns_notification(&self, n: &RawNotification) -> bool {
        form_urlencoded::parse(&n.body).any(|(k, v)| k == "app_id" && v == self.settings.app_id.as_str())
    }

    fn verify_notification(&self, n: &RawNotification, _now_ms: Millis) -> Result<ProviderEvent, Rejection> {
        let params = self.notification_params(n)?;
        let need = |k: &str| {
            param(&params, k).filter(|v| !v.is_empty()).ok_or_else(|| Rejection::Malformed(format!("missing {k}")))
        };
        need("sign")?;
        let app_id = need("app_id")?;
        if app_id != self.settings.app_id {
            return Err(Rejection::UnknownAccount(app_id.to_string()));
        }
        if let Some(refused) = wire::refused_sign_type(&params) {
            return Err(Rejection::SignType(refused));
        }
        if !wire::verify_notify_v1(&params, &self.alipay_key) {
            return Err(Rejection::BadSignature);
        }
        if let (Some(ours), Some(theirs)) = (&self.settings.seller_id, param(&params, "seller_id")) {
            if !theirs.is_empty() && theirs != ours {
                return Err(Rejection::UnknownAccount(theirs.to_string()));
            }
        }
        let event_id = need("notify_id")?.to_string();
        let out_trade_no = need("out_trade_no")?.to_string();
        let trade_status = need("trade_status")?;
        let money = |k: &str| -> Result<Money, Rejection> {
            wire::parse_amount(need(k)?).ok_or_else(|| Rejection::Malformed(format!("bad {k}")))
        };
        let refund = param(&params, "refund_fee").filter(|v| !v.is_empty()).is_some();
        let kind = match trade_status {
            // A refund notice carries refund_fee (Alipay's cumulative refunded amount) and
            // out_biz_no (the refund's out_request_no); the trade stays TRADE_SUCCESS after a
            // partial refund and becomes TRADE_CLOSED after a full one.
            "TRADE_SUCCESS" | "TRADE_CLOSED" if refund => EventKind::RefundSucceeded {
                out_trade_no,
                out_refund_no: need("out_biz_no")?.to_string(),
                amount: money("refund_fee")?,
            },
            "TRADE_SUCCESS" => EventKind::PaymentSucceeded {
                out_trade_no,
                provider_txn_id: need("trade_no")?.to_string(),
                amount: money("total_amount")?,
                paid_at_ms: param(&params, "gmt_payment").and_then(wire::parse_time),
                payer: param(&params, "buyer_logon_id").filter(|v| !v.is_empty()).map(str::to_string),
            },
            "TRADE_CLOSED" => EventKind::PaymentClosed { out_trade_no },
            "TRADE_FINISHED" | "WAIT_BUYER_PAY" => {
                EventKind::Informational { out_trade_no, provider_state: trade_status.to_string() }
            }
            other => return Err(Rejection::Malformed(format!("unknown trade_status {other}"))),
        };
        Ok(ProviderEvent { provider: Provider::Alipay, event_id, account: app_id.to_string(), kind })
    }

    fn notify_reply(&self, accepted: bool) -> NotifyReply {
        notify_reply(accepted)
    }

    async fn download_statement(&self, date: chrono::NaiveDate) -> ProviderCall<Statement> {
        let members = [("bill_type", "trade".into()), ("bill_date", date.format("%Y-%m-%d").to_string().into())];
        let (mut raw, reply) = self.call("alipay.data.dataservice.bill.downloadurl.query", biz(&members), &[]).await;
        let url = match reply {
            Reply::Ok(node) => match str_field(&node, "bill_download_url") {
                Some(u) => u.to_string(),
                None => return Self::unknown(raw, "no bill_download_url in the answer".into()),
            },
            Reply::Fail(e) => return ProviderCall { outcome: Outcome::Failure(e), raw },
            Reply::Unknown(r) => return Self::unknown(raw, r),
        };
        let bytes = match self.http.get(&url).send().await {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => return Self::unknown(raw, format!("downloading the bill: {e}")),
            },
            Ok(r) => return Self::unknown(raw, format!("bill download answered HTTP {}", r.status().as_u16())),
            Err(e) => return Self::unknown(raw, format!("downloading the bill: {e}")),
        };
        raw.response.push_str(&format!("\n[bill file: {} bytes from {url}]", bytes.len()));
        match bill::parse_bill_zip(&bytes) {
            Ok(lines) => ProviderCall { outcome: Outcome::Success(Statement { date, lines, raw: bytes }), raw },
            Err(e) => Self::unknown(raw, format!("unreadable bill: {e}")),
        }
    }
}

/// Alipay's notification answer: the body `success` stops its retries; anything else (we say
/// `failure`) makes it retry on its schedule.
pub fn notify_reply(accepted: bool) -> NotifyReply {
    NotifyReply {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        body: if accepted { b"success".to_vec() } else { b"failure".to_vec() },
    }
}

/// What `/notify/alipay` keeps of a request (the form body carries everything signed).
pub fn notification_profile() -> clinicpay::ports::NotificationProfile {
    clinicpay::ports::NotificationProfile {
        kept_headers: &["content-type", "user-agent"],
        failure_reply: notify_reply(false),
    }
}

#[cfg(test)]
mod tests;
