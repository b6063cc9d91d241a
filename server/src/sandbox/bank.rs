//! The bank-card gateway sandbox (docs/providers/bank.md): the `/api/...` operations with
//! signature, time-window and replay checks; merchant registration; the hosted card page; signed
//! notifications through the [`Courier`] on the bank's retry schedule; daily statements; the
//! common test-control API.
//!
//! Card numbers typed on the page are reduced to their last four digits at once; they are never
//! stored in full and never logged.

use super::page::{self, esc, PayerPage};
use super::{provider_key, Delivery, FaultSpec, SandboxCtx};
use crate::crypto::{random_alnum, PrivateKey, PublicKey};
use crate::gateways::bank::wire::{self, get, Params};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get as get_route, post};
use axum::{Json, Router};
use clinicpay::money::Money;
use clinicpay::time::{local_date, Millis};
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bank's retry schedule: waits after a failed attempt (docs/providers/bank.md 5).
pub fn bank_schedule() -> Vec<Duration> {
    [15, 60, 300, 900, 3_600, 7_200, 21_600, 43_200].into_iter().map(Duration::from_secs).collect()
}

/// A refund completes this long after it was accepted (time-scaled).
const REFUND_DELAY: Duration = Duration::from_secs(5);
/// Declines after which an order fails for good.
const MAX_DECLINES: u32 = 5;
/// Latest `expire_time` accepted, from now.
const MAX_EXPIRY_MS: Millis = 30 * 24 * 3_600_000;

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A fresh bank-side id: prefix, Beijing time, random tail (unique across sandbox restarts).
fn new_id(prefix: &str, now: Millis) -> String {
    format!("{prefix}{}{}", wire::fmt_time(now), random_alnum(8))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    Success,
    Closed,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "WAITING",
            Status::Success => "SUCCESS",
            Status::Closed => "CLOSED",
            Status::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone)]
struct Refund {
    out_refund_no: String,
    bank_refund_id: String,
    refund_fen: i64,
    done: bool,
    done_ms: Option<Millis>,
    notify_url: String,
}

impl Refund {
    fn status_word(&self) -> &'static str {
        if self.done {
            "REFUND_SUCCESS"
        } else {
            "REFUND_PROCESSING"
        }
    }
}

#[derive(Debug, Clone)]
struct Trade {
    merchant_id: String,
    out_trade_no: String,
    bank_order_id: String,
    amount_fen: i64,
    subject: String,
    notify_url: String,
    return_url: Option<String>,
    expire_time: String,
    expire_ms: Millis,
    token: String,
    status: Status,
    declines: u32,
    fail_code: Option<&'static str>,
    bank_txn_id: Option<String>,
    paid_ms: Option<Millis>,
    card_last4: Option<String>,
    payment_notify_id: Option<String>,
    refunds: Vec<Refund>,
}

impl Trade {
    /// Closes an unpaid order whose `expire_time` has passed.
    fn refresh(&mut self, now: Millis) {
        if self.status == Status::Waiting && now >= self.expire_ms {
            self.status = Status::Closed;
        }
    }

    fn accepted_refunds_fen(&self) -> i64 {
        self.refunds.iter().map(|r| r.refund_fen).sum()
    }

    fn done_refunds_fen(&self) -> i64 {
        self.refunds.iter().filter(|r| r.done).map(|r| r.refund_fen).sum()
    }

    fn amount(&self) -> Money {
        Money::from_fen(self.amount_fen).unwrap_or(Money::ZERO)
    }

    /// The order fields every notification carries.
    fn notification_base(&self, notify_id: &str, event: &str) -> Params {
        let mut p = Params::new();
        for (k, v) in [
            ("notify_id", notify_id),
            ("event", event),
            ("merchant_id", &self.merchant_id),
            ("out_trade_no", &self.out_trade_no),
            ("bank_order_id", &self.bank_order_id),
            ("currency", wire::CURRENCY_CNY),
            ("trade_status", self.status.as_str()),
        ] {
            p.insert(k.into(), v.to_string());
        }
        p.insert("amount_fen".into(), self.amount_fen.to_string());
        p
    }

    fn payment_success_params(&self) -> Option<Params> {
        let id = self.payment_notify_id.as_deref()?;
        let mut p = self.notification_base(id, "PAYMENT_SUCCESS");
        p.insert("trade_status".into(), Status::Success.as_str().into());
        p.insert("bank_txn_id".into(), self.bank_txn_id.clone()?);
        p.insert("paid_time".into(), wire::fmt_time(self.paid_ms?));
        p.insert("card_last4".into(), self.card_last4.clone()?);
        Some(p)
    }
}

struct Merchant {
    key: PublicKey,
    name: String,
}

type TradeKey = (String, String);

#[derive(Default)]
struct Book {
    merchants: HashMap<String, Merchant>,
    trades: HashMap<TradeKey, Trade>,
    /// out_trade_no → the most recent trade of that number (control API, Rust API).
    latest: HashMap<String, TradeKey>,
    tokens: HashMap<String, TradeKey>,
    /// (merchant, out_refund_no) → out_trade_no.
    refund_index: HashMap<TradeKey, String>,
    nonces: HashSet<TradeKey>,
    nonce_queue: VecDeque<(Millis, TradeKey)>,
    faults: HashMap<String, FaultSpec>,
    default_faults: FaultSpec,
}

impl Book {
    fn forget_old_nonces(&mut self, now: Millis) {
        while let Some((at, _)) = self.nonce_queue.front() {
            if now - *at <= wire::NONCE_MEMORY_MS {
                break;
            }
            if let Some((_, key)) = self.nonce_queue.pop_front() {
                self.nonces.remove(&key);
            }
        }
    }

    /// Consumes a `fail_next_call` fault of this order number.
    fn take_failure(&mut self, out_trade_no: &str) -> bool {
        match self.faults.get_mut(out_trade_no) {
            Some(f) if f.fail_next_call => {
                f.fail_next_call = false;
                true
            }
            _ => false,
        }
    }

    fn faults_for(&self, out_trade_no: &str) -> FaultSpec {
        self.faults.get(out_trade_no).cloned().unwrap_or_else(|| self.default_faults.clone())
    }

    fn latest_trade(&mut self, out_trade_no: &str, now: Millis) -> Option<&mut Trade> {
        let key = self.latest.get(out_trade_no)?.clone();
        let t = self.trades.get_mut(&key)?;
        t.refresh(now);
        Some(t)
    }
}

/// An API answer before signing: `code`, `message` and the operation's fields.
struct ApiError(&'static str, String);

type ApiResult = Result<Params, ApiError>;

fn err(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError(code, message.into())
}

fn param_error(message: impl Into<String>) -> ApiError {
    err("PARAM_ERROR", message)
}

fn out(pairs: &[(&str, String)]) -> Params {
    pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Outcome of one card attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardResult {
    Paid,
    Declined { fail_code: &'static str, order_failed: bool },
}

impl CardResult {
    pub fn word(&self) -> &'static str {
        match self {
            CardResult::Paid => "PAID",
            CardResult::Declined { fail_code, .. } => fail_code,
        }
    }
}

#[derive(Debug)]
pub enum PayError {
    UnknownOrder,
    InvalidCard,
    NotPayable(&'static str),
}

impl std::fmt::Display for PayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayError::UnknownOrder => f.write_str("no such order"),
            PayError::InvalidCard => f.write_str("invalid card number"),
            PayError::NotPayable(s) => write!(f, "the order is {s} and cannot be paid"),
        }
    }
}

struct Inner {
    ctx: SandboxCtx,
    key: Arc<PrivateKey>,
    public_pem: String,
    state: Mutex<Book>,
}

/// The simulated bank gateway, mounted at `/sandbox/bank`.
pub struct BankSandbox {
    inner: Arc<Inner>,
}

impl BankSandbox {
    pub fn new(ctx: SandboxCtx) -> anyhow::Result<Self> {
        let key = provider_key(&ctx.settings, "bank")?;
        let public_pem = key.public_key().to_pem();
        Ok(BankSandbox {
            inner: Arc::new(Inner { ctx, key: Arc::new(key), public_pem, state: Mutex::new(Book::default()) }),
        })
    }

    /// The bank's public key (SPKI PEM) merchants verify responses and notifications with.
    pub fn bank_public_key(&self) -> String {
        self.inner.public_pem.clone()
    }

    /// Registers (or re-keys) a merchant; returns the bank's public key PEM.
    pub fn register_merchant(&self, merchant_id: &str, merchant_public_key_pem: &str) -> anyhow::Result<String> {
        self.inner.register(merchant_id, merchant_public_key_pem, None)
    }

    /// Pays with the success card, as the card page's Pay does.
    pub fn pay(&self, out_trade_no: &str) -> anyhow::Result<()> {
        match self.pay_with_card(out_trade_no, wire::CARD_SUCCESS)? {
            CardResult::Paid => Ok(()),
            other => anyhow::bail!("payment declined: {}", other.word()),
        }
    }

    /// Tries a card on the most recent order of this number (the test cards decide).
    pub fn pay_with_card(&self, out_trade_no: &str, card_number: &str) -> anyhow::Result<CardResult> {
        if tokio::runtime::Handle::try_current().is_err() {
            anyhow::bail!("the bank sandbox sends notifications and needs a Tokio runtime");
        }
        let key = self.inner.lock().latest.get(out_trade_no).cloned();
        let key = key.ok_or_else(|| anyhow::anyhow!("no bank order {out_trade_no}"))?;
        self.inner.attempt_card(&key, card_number).map_err(|e| anyhow::anyhow!("{e}"))
    }

    pub fn set_faults(&self, out_trade_no: &str, faults: FaultSpec) {
        self.inner.lock().faults.insert(out_trade_no.to_string(), faults);
    }

    pub fn set_default_faults(&self, faults: FaultSpec) {
        self.inner.lock().default_faults = faults;
    }

    /// `WAITING`, `SUCCESS`, `CLOSED` or `FAILED`.
    pub fn trade_state(&self, out_trade_no: &str) -> Option<String> {
        let mut st = self.inner.lock();
        st.latest_trade(out_trade_no, now_ms()).map(|t| t.status.as_str().to_string())
    }

    /// A valid `PAYMENT_SUCCESS` notification for a paid order, exactly as the sandbox sends
    /// it (same `notify_id`, fresh `timestamp` and signature), without sending it.
    pub fn signed_success_notification(&self, out_trade_no: &str) -> anyhow::Result<(Vec<(String, String)>, Vec<u8>)> {
        let params = {
            let mut st = self.inner.lock();
            let t = st
                .latest_trade(out_trade_no, now_ms())
                .ok_or_else(|| anyhow::anyhow!("no bank order {out_trade_no}"))?;
            t.payment_success_params().ok_or_else(|| anyhow::anyhow!("bank order {out_trade_no} is not paid"))?
        };
        Ok(finish_notification(&self.inner.key, params))
    }
}

/// Adds the attempt's timestamp and the bank's signature.
fn finish_notification(key: &PrivateKey, mut p: Params) -> (Vec<(String, String)>, Vec<u8>) {
    p.insert("timestamp".into(), wire::fmt_time(now_ms()));
    wire::sign(&mut p, key);
    (vec![("content-type".into(), "application/json; charset=utf-8".into())], wire::to_json(&p).into_bytes())
}

/// The merchant acknowledges with HTTP 200 and `{"code":"SUCCESS"}`.
fn merchant_acknowledged(status: u16, body: &[u8]) -> bool {
    status == 200
        && serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .is_some_and(|v| v.get("code").and_then(|c| c.as_str()) == Some("SUCCESS"))
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, merchant_id: &str, public_key: &str, name: Option<String>) -> anyhow::Result<String> {
        if !wire::valid_merchant_id(merchant_id) {
            anyhow::bail!("merchant_id must be 1–32 of [0-9A-Za-z_-]");
        }
        let key = PublicKey::parse(public_key).map_err(|e| anyhow::anyhow!("merchant_public_key: {e}"))?;
        if key == self.key.public_key() {
            anyhow::bail!("merchant_public_key is the bank's own key");
        }
        let name =
            name.filter(|n| !n.trim().is_empty() && wire::valid_text(n, 64)).unwrap_or_else(|| merchant_id.into());
        self.lock().merchants.insert(merchant_id.to_string(), Merchant { key, name });
        Ok(self.public_pem.clone())
    }

    fn base_url(&self) -> String {
        self.ctx.settings.base_url.trim_end_matches('/').to_string()
    }

    fn page_url(&self, token: &str) -> String {
        format!("{}/sandbox/bank/pay/{token}", self.base_url())
    }

    fn notify(&self, st: &Book, t: &Trade, url: &str, params: Params) -> (Delivery, FaultSpec) {
        let label = format!("{} {}", params.get("event").map(String::as_str).unwrap_or("EVENT"), t.out_trade_no);
        let key = self.key.clone();
        let d = Delivery {
            label,
            out_trade_no: t.out_trade_no.clone(),
            url: url.to_string(),
            build: Arc::new(move || finish_notification(&key, params.clone())),
            accepted: merchant_acknowledged,
            schedule: bank_schedule(),
        };
        (d, st.faults_for(&t.out_trade_no))
    }

    fn send(&self, deliveries: Vec<(Delivery, FaultSpec)>) {
        for (d, f) in deliveries {
            self.ctx.courier.send(d, &f);
        }
    }

    // -----------------------------------------------------------------------------------------
    // The API

    /// Handles one API request; returns the signed response body.
    fn api(self: &Arc<Self>, op: &str, content_type: &str, body: &[u8]) -> String {
        let now = now_ms();
        let mut echo = Params::new();
        let result = self.api_inner(op, content_type, body, now, &mut echo);
        let mut p = match result {
            Ok(mut p) => {
                p.insert("code".into(), "SUCCESS".into());
                p.insert("message".into(), "OK".into());
                p
            }
            Err(ApiError(code, message)) => {
                if code != "SYSTEM_ERROR" {
                    tracing::debug!(operation = op, code, message = %message, "bank sandbox refused a request");
                }
                out(&[("code", code.to_string()), ("message", message)])
            }
        };
        p.extend(echo);
        p.insert("timestamp".into(), wire::fmt_time(now));
        wire::sign(&mut p, &self.key);
        wire::to_json(&p)
    }

    fn api_inner(
        self: &Arc<Self>,
        op: &str,
        content_type: &str,
        body: &[u8],
        now: Millis,
        echo: &mut Params,
    ) -> ApiResult {
        let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media != "application/json" {
            return Err(param_error("Content-Type must be application/json"));
        }
        let req = wire::parse_flat(body).map_err(param_error)?;
        if let Some(m) = get(&req, "merchant_id").filter(|m| wire::valid_merchant_id(m)) {
            echo.insert("merchant_id".into(), m.to_string());
        }
        if let Some(n) = get(&req, "nonce").filter(|n| wire::valid_nonce(n)) {
            echo.insert("nonce".into(), n.to_string());
        }
        let merchant_id = get(&req, "merchant_id").ok_or_else(|| param_error("missing merchant_id"))?.to_string();
        let mut st = self.lock();
        let merchant = st.merchants.get(&merchant_id).ok_or_else(|| err("UNKNOWN_MERCHANT", "unknown merchant_id"))?;
        if !wire::verify(&req, &merchant.key) {
            return Err(err("INVALID_SIGNATURE", "sign does not verify with the merchant's registered key"));
        }
        let ts = get(&req, "timestamp")
            .and_then(wire::parse_time)
            .ok_or_else(|| param_error("timestamp must be yyyyMMddHHmmss"))?;
        if now.abs_diff(ts) > wire::TIME_WINDOW_MS.unsigned_abs() {
            return Err(err("STALE", "timestamp is more than 5 minutes from the bank's clock"));
        }
        let nonce = get(&req, "nonce").filter(|n| wire::valid_nonce(n)).ok_or_else(|| param_error("bad nonce"))?;
        st.forget_old_nonces(now);
        let nonce_key = (merchant_id.clone(), nonce.to_string());
        if !st.nonces.insert(nonce_key.clone()) {
            return Err(err("REPLAY", "nonce already used"));
        }
        st.nonce_queue.push_back((now, nonce_key));

        let allowed: &[&str] = match op {
            "create" => {
                &["out_trade_no", "amount_fen", "currency", "subject", "notify_url", "return_url", "expire_time"]
            }
            "query" | "close" => &["out_trade_no"],
            "refund" => &["out_trade_no", "out_refund_no", "refund_fen", "reason", "notify_url"],
            "refund_query" => &["out_trade_no", "out_refund_no"],
            "statement" => &["bill_date"],
            _ => return Err(param_error("unknown operation")),
        };
        const COMMON: [&str; 5] = ["merchant_id", "timestamp", "nonce", "sign_type", "sign"];
        if let Some(k) = req.keys().find(|k| !COMMON.contains(&k.as_str()) && !allowed.contains(&k.as_str())) {
            return Err(param_error(format!("unknown field {k} for {op}")));
        }
        if op == "statement" {
            return statement(&st, &merchant_id, &req, now);
        }
        let out_trade_no = get(&req, "out_trade_no").ok_or_else(|| param_error("missing out_trade_no"))?;
        if !wire::valid_out_no(out_trade_no) {
            return Err(param_error("out_trade_no must be 1–64 of [0-9A-Za-z_-]"));
        }
        if st.take_failure(out_trade_no) {
            tracing::info!(out_trade_no, "bank sandbox failing a call (fault injection)");
            return Err(err("SYSTEM_ERROR", "simulated bank failure (fail_next_call)"));
        }
        let key: TradeKey = (merchant_id.clone(), out_trade_no.to_string());
        match op {
            "create" => self.create(&mut st, key, &req, now),
            "query" => query(&mut st, &key, now),
            "close" => close(&mut st, &key, now),
            "refund" => {
                let (p, refund_no) = refund(&mut st, &key, &req, now)?;
                if let Some(refund_no) = refund_no {
                    self.schedule_refund(key, refund_no);
                }
                Ok(p)
            }
            "refund_query" => refund_query(&mut st, &key, &req, now),
            _ => Err(param_error("unknown operation")),
        }
    }

    fn create(&self, st: &mut Book, key: TradeKey, req: &Params, now: Millis) -> ApiResult {
        let amount_fen = get(req, "amount_fen")
            .and_then(wire::parse_fen)
            .ok_or_else(|| param_error("amount_fen must be a positive integer number of fen"))?;
        if get(req, "currency") != Some(wire::CURRENCY_CNY) {
            return Err(param_error("currency must be 156"));
        }
        let subject = get(req, "subject").ok_or_else(|| param_error("missing subject"))?;
        if !wire::valid_text(subject, 128) || subject.trim().is_empty() {
            return Err(param_error("subject must be 1–128 characters without control characters"));
        }
        let notify_url = get(req, "notify_url").ok_or_else(|| param_error("missing notify_url"))?;
        if !wire::valid_url(notify_url) {
            return Err(param_error("notify_url must be an absolute http(s) URL"));
        }
        let return_url = get(req, "return_url");
        if return_url.is_some_and(|u| !wire::valid_url(u)) {
            return Err(param_error("return_url must be an absolute http(s) URL"));
        }
        let expire_time = get(req, "expire_time").ok_or_else(|| param_error("missing expire_time"))?;
        let expire_ms =
            wire::parse_time(expire_time).ok_or_else(|| param_error("expire_time must be yyyyMMddHHmmss"))?;
        if expire_ms <= now || expire_ms - now > MAX_EXPIRY_MS {
            return Err(param_error("expire_time must be in the future and at most 30 days away"));
        }
        if let Some(t) = st.trades.get_mut(&key) {
            t.refresh(now);
            return match t.status {
                Status::Waiting
                    if t.amount_fen == amount_fen
                        && t.subject == subject
                        && t.notify_url == notify_url
                        && t.return_url.as_deref() == return_url
                        && t.expire_time == expire_time =>
                {
                    Ok(create_answer(t, &self.page_url(&t.token)))
                }
                Status::Waiting => Err(err("DUPLICATE_ORDER", "out_trade_no exists with other parameters")),
                Status::Success => Err(err("ORDER_PAID", "the order is paid")),
                Status::Closed | Status::Failed => Err(err("ORDER_CLOSED", "the order is closed")),
            };
        }
        let token = random_alnum(24);
        let trade = Trade {
            merchant_id: key.0.clone(),
            out_trade_no: key.1.clone(),
            bank_order_id: new_id("BO", now),
            amount_fen,
            subject: subject.to_string(),
            notify_url: notify_url.to_string(),
            return_url: return_url.map(str::to_string),
            expire_time: expire_time.to_string(),
            expire_ms,
            token: token.clone(),
            status: Status::Waiting,
            declines: 0,
            fail_code: None,
            bank_txn_id: None,
            paid_ms: None,
            card_last4: None,
            payment_notify_id: None,
            refunds: Vec::new(),
        };
        let answer = create_answer(&trade, &self.page_url(&token));
        let defaults = st.default_faults.clone();
        st.faults.entry(key.1.clone()).or_insert(defaults);
        st.tokens.insert(token, key.clone());
        st.latest.insert(key.1.clone(), key.clone());
        st.trades.insert(key, trade);
        Ok(answer)
    }

    /// Completes a refund after the (scaled) delay and notifies it.
    fn schedule_refund(self: &Arc<Self>, key: TradeKey, out_refund_no: String) {
        let me = self.clone();
        let delay = self.ctx.settings.scaled(REFUND_DELAY);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let delivery = {
                let mut st = me.lock();
                let now = now_ms();
                let Some(t) = st.trades.get_mut(&key) else { return };
                let Some(r) = t.refunds.iter_mut().find(|r| r.out_refund_no == out_refund_no && !r.done) else {
                    return;
                };
                r.done = true;
                r.done_ms = Some(now);
                let r = r.clone();
                let t = t.clone();
                let mut p = t.notification_base(&new_id("BN", now), "REFUND_SUCCESS");
                p.extend(out(&[
                    ("out_refund_no", r.out_refund_no.clone()),
                    ("bank_refund_id", r.bank_refund_id.clone()),
                    ("refund_fen", r.refund_fen.to_string()),
                    ("refund_time", wire::fmt_time(now)),
                    ("refunded_fen", t.done_refunds_fen().to_string()),
                ]));
                me.notify(&st, &t, &r.notify_url, p)
            };
            me.send(vec![delivery]);
        });
    }

    // -----------------------------------------------------------------------------------------
    // Paying

    /// One card attempt on an order (card page, control API, Rust API).
    fn attempt_card(&self, key: &TradeKey, typed: &str) -> Result<CardResult, PayError> {
        let digits = wire::card_digits(typed);
        let now = now_ms();
        let mut st = self.lock();
        let t = st.trades.get_mut(key).ok_or(PayError::UnknownOrder)?;
        t.refresh(now);
        if t.status != Status::Waiting {
            return Err(PayError::NotPayable(t.status.as_str()));
        }
        let digits = digits.ok_or(PayError::InvalidCard)?;
        let last4 = digits[digits.len() - 4..].to_string();
        let decline = match digits.as_str() {
            wire::CARD_DECLINED => Some(("CARD_DECLINED", "card declined")),
            wire::CARD_INSUFFICIENT => Some(("INSUFFICIENT_FUNDS", "insufficient funds")),
            _ => None,
        };
        let (result, params) = match decline {
            Some((fail_code, reason)) => {
                t.declines += 1;
                let order_failed = t.declines >= MAX_DECLINES;
                if order_failed {
                    t.status = Status::Failed;
                    t.fail_code = Some(fail_code);
                }
                let mut p = t.notification_base(&new_id("BN", now), "PAYMENT_FAILED");
                p.extend(out(&[
                    ("fail_code", fail_code.to_string()),
                    ("fail_reason", reason.to_string()),
                    ("card_last4", last4.clone()),
                ]));
                (CardResult::Declined { fail_code, order_failed }, p)
            }
            None => {
                t.status = Status::Success;
                t.bank_txn_id = Some(new_id("BT", now));
                t.paid_ms = Some(now);
                t.card_last4 = Some(last4.clone());
                t.payment_notify_id = Some(new_id("BN", now));
                let p = t.payment_success_params().unwrap_or_default();
                (CardResult::Paid, p)
            }
        };
        let t = t.clone();
        let delivery = self.notify(&st, &t, &t.notify_url, params);
        drop(st);
        self.send(vec![delivery]);
        Ok(result)
    }

    fn cancel(&self, key: &TradeKey) -> Result<&'static str, PayError> {
        let mut st = self.lock();
        let t = st.trades.get_mut(key).ok_or(PayError::UnknownOrder)?;
        t.refresh(now_ms());
        if t.status != Status::Waiting {
            return Err(PayError::NotPayable(t.status.as_str()));
        }
        t.status = Status::Closed;
        Ok(t.status.as_str())
    }
}

fn create_answer(t: &Trade, pay_url: &str) -> Params {
    out(&[
        ("out_trade_no", t.out_trade_no.clone()),
        ("bank_order_id", t.bank_order_id.clone()),
        ("amount_fen", t.amount_fen.to_string()),
        ("expire_time", t.expire_time.clone()),
        ("pay_url", pay_url.to_string()),
    ])
}

fn find<'a>(st: &'a mut Book, key: &TradeKey, now: Millis) -> Result<&'a mut Trade, ApiError> {
    let t = st.trades.get_mut(key).ok_or_else(|| err("ORDER_NOT_EXIST", "no such order"))?;
    t.refresh(now);
    Ok(t)
}

fn query(st: &mut Book, key: &TradeKey, now: Millis) -> ApiResult {
    let t = find(st, key, now)?;
    let mut p = out(&[
        ("out_trade_no", t.out_trade_no.clone()),
        ("bank_order_id", t.bank_order_id.clone()),
        ("amount_fen", t.amount_fen.to_string()),
        ("currency", wire::CURRENCY_CNY.to_string()),
        ("trade_status", t.status.as_str().to_string()),
        ("refunded_fen", t.accepted_refunds_fen().to_string()),
    ]);
    if t.status == Status::Success {
        p.extend(out(&[
            ("bank_txn_id", t.bank_txn_id.clone().unwrap_or_default()),
            ("paid_time", t.paid_ms.map(wire::fmt_time).unwrap_or_default()),
            ("card_last4", t.card_last4.clone().unwrap_or_default()),
        ]));
    }
    if t.status == Status::Failed {
        p.extend(out(&[("fail_code", t.fail_code.unwrap_or("CARD_DECLINED").to_string())]));
    }
    Ok(p)
}

fn close(st: &mut Book, key: &TradeKey, now: Millis) -> ApiResult {
    let t = find(st, key, now)?;
    match t.status {
        Status::Waiting | Status::Closed => {
            t.status = Status::Closed;
            Ok(out(&[("out_trade_no", t.out_trade_no.clone()), ("trade_status", "CLOSED".into())]))
        }
        Status::Success => Err(err("ORDER_PAID", "the order is paid; refund it instead")),
        Status::Failed => Err(err("ORDER_CLOSED", "the order has failed")),
    }
}

fn refund_answer(t: &Trade, r: &Refund) -> Params {
    out(&[
        ("out_trade_no", t.out_trade_no.clone()),
        ("out_refund_no", r.out_refund_no.clone()),
        ("bank_refund_id", r.bank_refund_id.clone()),
        ("refund_fen", r.refund_fen.to_string()),
        ("refund_status", r.status_word().to_string()),
        ("refunded_fen", t.accepted_refunds_fen().to_string()),
        ("refund_time", r.done_ms.map(wire::fmt_time).unwrap_or_default()),
    ])
}

/// Accepts a refund; the second value names a new refund to complete later.
fn refund(st: &mut Book, key: &TradeKey, req: &Params, now: Millis) -> Result<(Params, Option<String>), ApiError> {
    let out_refund_no = get(req, "out_refund_no").ok_or_else(|| param_error("missing out_refund_no"))?.to_string();
    if !wire::valid_out_no(&out_refund_no) {
        return Err(param_error("out_refund_no must be 1–64 of [0-9A-Za-z_-]"));
    }
    let refund_fen = get(req, "refund_fen")
        .and_then(wire::parse_fen)
        .ok_or_else(|| param_error("refund_fen must be a positive integer number of fen"))?;
    let reason = get(req, "reason").unwrap_or_default();
    if !wire::valid_text(reason, 256) {
        return Err(param_error("reason must be at most 256 characters without control characters"));
    }
    let notify_url = get(req, "notify_url");
    if notify_url.is_some_and(|u| !wire::valid_url(u)) {
        return Err(param_error("notify_url must be an absolute http(s) URL"));
    }
    let index_key = (key.0.clone(), out_refund_no.clone());
    if let Some(other) = st.refund_index.get(&index_key) {
        if *other != key.1 {
            return Err(param_error("out_refund_no already used for another order"));
        }
    }
    let t = find(st, key, now)?;
    match t.status {
        Status::Success => {}
        Status::Waiting => return Err(param_error("the order is not paid")),
        Status::Closed | Status::Failed => return Err(err("ORDER_CLOSED", "the order is closed")),
    }
    if let Some(r) = t.refunds.iter().find(|r| r.out_refund_no == out_refund_no) {
        if r.refund_fen != refund_fen {
            return Err(param_error("out_refund_no already used with another refund_fen"));
        }
        return Ok((refund_answer(t, r), None));
    }
    if t.accepted_refunds_fen().saturating_add(refund_fen) > t.amount_fen {
        return Err(err("REFUND_EXCEEDS", "refunds would exceed the paid amount"));
    }
    let r = Refund {
        out_refund_no: out_refund_no.clone(),
        bank_refund_id: new_id("BR", now),
        refund_fen,
        done: false,
        done_ms: None,
        notify_url: notify_url.unwrap_or(&t.notify_url).to_string(),
    };
    t.refunds.push(r.clone());
    let answer = refund_answer(t, &r);
    st.refund_index.insert(index_key, key.1.clone());
    Ok((answer, Some(out_refund_no)))
}

fn refund_query(st: &mut Book, key: &TradeKey, req: &Params, now: Millis) -> ApiResult {
    let out_refund_no = get(req, "out_refund_no").ok_or_else(|| param_error("missing out_refund_no"))?;
    let t = find(st, key, now)?;
    let r = t
        .refunds
        .iter()
        .find(|r| r.out_refund_no == out_refund_no)
        .ok_or_else(|| err("ORDER_NOT_EXIST", "no such refund of this order"))?;
    Ok(refund_answer(t, r))
}

fn statement(st: &Book, merchant_id: &str, req: &Params, now: Millis) -> ApiResult {
    let bill_date = get(req, "bill_date").ok_or_else(|| param_error("missing bill_date"))?;
    let date = wire::parse_date(bill_date).ok_or_else(|| param_error("bill_date must be yyyyMMdd"))?;
    if local_date(now).is_some_and(|today| date > today) {
        return Err(param_error("bill_date is in the future"));
    }
    let on_day = |ms: Option<Millis>| ms.and_then(local_date) == Some(date);
    let mut rows: Vec<(Millis, wire::StatementRow)> = Vec::new();
    for t in st.trades.values().filter(|t| t.merchant_id == merchant_id) {
        let txn = t.bank_txn_id.clone().unwrap_or_default();
        if t.paid_ms.is_some() && on_day(t.paid_ms) {
            let paid = t.paid_ms.unwrap_or_default();
            rows.push((
                paid,
                wire::StatementRow {
                    kind: wire::RowKind::Payment,
                    out_trade_no: t.out_trade_no.clone(),
                    bank_order_id: t.bank_order_id.clone(),
                    bank_txn_id: txn.clone(),
                    out_refund_no: String::new(),
                    bank_refund_id: String::new(),
                    amount_fen: t.amount_fen,
                    fee_fen: wire::fee_fen(t.amount_fen),
                    time: wire::fmt_time(paid),
                    card_last4: t.card_last4.clone().unwrap_or_default(),
                },
            ));
        }
        for r in t.refunds.iter().filter(|r| r.done && on_day(r.done_ms)) {
            let done = r.done_ms.unwrap_or_default();
            rows.push((
                done,
                wire::StatementRow {
                    kind: wire::RowKind::Refund,
                    out_trade_no: t.out_trade_no.clone(),
                    bank_order_id: t.bank_order_id.clone(),
                    bank_txn_id: txn.clone(),
                    out_refund_no: r.out_refund_no.clone(),
                    bank_refund_id: r.bank_refund_id.clone(),
                    amount_fen: -r.refund_fen,
                    fee_fen: 0,
                    time: wire::fmt_time(done),
                    card_last4: String::new(),
                },
            ));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.bank_txn_id.cmp(&b.1.bank_txn_id)));
    let rows: Vec<wire::StatementRow> = rows.into_iter().map(|(_, r)| r).collect();
    Ok(out(&[("bill_date", bill_date.to_string()), ("csv", wire::write_statement(&rows))]))
}

// ---------------------------------------------------------------------------------------------
// HTTP

pub fn router(s: Arc<BankSandbox>) -> Router {
    Router::new()
        .route("/api/{op}", post(api_handler))
        .route("/merchants", post(register_handler))
        .route("/pay/{token}", get_route(page_handler))
        .route("/pay/{token}/confirm", post(confirm_handler))
        .route("/pay/{token}/cancel", post(cancel_page_handler))
        .route("/control/trades/{out_trade_no}", get_route(control_get))
        .route("/control/trades/{out_trade_no}/pay", post(control_pay))
        .route("/control/trades/{out_trade_no}/scan", post(control_scan))
        .route("/control/trades/{out_trade_no}/cancel", post(control_cancel))
        .route("/control/trades/{out_trade_no}/faults", post(control_faults))
        .route("/control/defaults", post(control_defaults))
        .with_state(s)
}

const OPERATIONS: [&str; 6] = ["create", "query", "close", "refund", "refund_query", "statement"];

async fn api_handler(
    State(s): State<Arc<BankSandbox>>,
    Path(op): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !OPERATIONS.contains(&op.as_str()) {
        return (StatusCode::NOT_FOUND, "no such bank operation").into_response();
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let body = s.inner.api(&op, ct, &body);
    ([(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}

fn json_error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

#[derive(Deserialize)]
struct Registration {
    merchant_id: String,
    merchant_public_key: String,
    #[serde(default)]
    merchant_name: Option<String>,
}

async fn register_handler(State(s): State<Arc<BankSandbox>>, body: Bytes) -> Response {
    let reg: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_error(StatusCode::BAD_REQUEST, format!("expected {{merchant_id, merchant_public_key}}: {e}"))
        }
    };
    match s.inner.register(&reg.merchant_id, &reg.merchant_public_key, reg.merchant_name) {
        Ok(pem) => Json(json!({ "merchant_id": reg.merchant_id, "bank_public_key": pem })).into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

// --- card page

const BRAND: &str = "银行卡 · Bank card";
const COLOR: &str = "#1d4f91";

fn card_fields() -> String {
    concat!(
        r#"<label for="card_number">卡号 Card number</label>"#,
        r#"<input id="card_number" name="card_number" type="text" inputmode="numeric" autocomplete="cc-number" "#,
        r#"maxlength="23" required placeholder="4111 1111 1111 1111">"#,
        r#"<label for="holder_name">持卡人 Cardholder name</label>"#,
        r#"<input id="holder_name" name="holder_name" type="text" autocomplete="cc-name" maxlength="64">"#,
        r#"<p style="font-size:12px;color:#56606e;margin:10px 0 0">测试卡 Test cards: 4111 1111 1111 1111 pays · "#,
        r#"4000 0000 0000 0002 declined · 4000 0000 0000 9995 insufficient funds</p>"#
    )
    .to_string()
}

fn render_card_page(inner: &Inner, t: &Trade, merchant: &str, notice: Option<&str>) -> Html<String> {
    let waiting = t.status == Status::Waiting;
    let status = match (t.status, notice) {
        (Status::Waiting, Some(n)) => n.to_string(),
        (Status::Waiting, None) => "待支付 Waiting for payment".to_string(),
        (Status::Success, _) => format!("支付成功 Paid · **** {}", t.card_last4.as_deref().unwrap_or("")),
        (Status::Closed, Some(n)) => n.to_string(),
        (Status::Closed, None) => "已关闭 Closed".to_string(),
        (Status::Failed, _) => "支付失败 Payment failed".to_string(),
    };
    let base = inner.page_url(&t.token);
    let html = page::render(&PayerPage {
        brand: BRAND,
        color: COLOR,
        merchant,
        subject: &t.subject,
        amount: t.amount(),
        status: &status,
        pay_action: waiting.then(|| format!("{base}/confirm")),
        cancel_action: waiting.then(|| format!("{base}/cancel")),
        pay_fields_html: if waiting { card_fields() } else { String::new() },
        pay_label: "支付 Pay",
    });
    let html = match (&t.return_url, t.status) {
        (Some(url), Status::Success) => html.replacen(
            "</main>",
            &format!(r#"<p><a href="{}" data-testid="return">返回商户 Return to merchant</a></p></main>"#, esc(url)),
            1,
        ),
        _ => html,
    };
    Html(html)
}

fn not_found_page() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!DOCTYPE html><meta charset=utf-8><title>Not found</title><p>支付链接无效 Unknown payment link</p>"),
    )
        .into_response()
}

/// The trade behind a card-page token, with its merchant's display name.
fn by_token(inner: &Inner, token: &str) -> Option<(TradeKey, Trade, String)> {
    let mut st = inner.lock();
    let key = st.tokens.get(token)?.clone();
    let now = now_ms();
    let t = st.trades.get_mut(&key)?;
    t.refresh(now);
    let t = t.clone();
    let name = st.merchants.get(&key.0).map(|m| m.name.clone()).unwrap_or_else(|| key.0.clone());
    Some((key, t, name))
}

async fn page_handler(State(s): State<Arc<BankSandbox>>, Path(token): Path<String>) -> Response {
    match by_token(&s.inner, &token) {
        Some((_, t, name)) => render_card_page(&s.inner, &t, &name, None).into_response(),
        None => not_found_page(),
    }
}

async fn confirm_handler(State(s): State<Arc<BankSandbox>>, Path(token): Path<String>, body: Bytes) -> Response {
    let Some((key, _, _)) = by_token(&s.inner, &token) else { return not_found_page() };
    // The form body holds the card number: read it here, keep nothing but the outcome.
    let card: String = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "card_number")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let result = s.inner.attempt_card(&key, &card);
    let notice = match &result {
        Ok(CardResult::Paid) => None,
        Ok(CardResult::Declined { order_failed: true, .. }) => None,
        Ok(CardResult::Declined { fail_code: "INSUFFICIENT_FUNDS", .. }) => {
            Some("余额不足 Insufficient funds — try another card")
        }
        Ok(CardResult::Declined { .. }) => Some("银行卡被拒绝 Card declined — try another card"),
        Err(PayError::InvalidCard) => Some("卡号无效 Invalid card number"),
        Err(_) => None,
    };
    match by_token(&s.inner, &token) {
        Some((_, t, name)) => {
            let status = if result.is_err() && notice.is_none() { StatusCode::CONFLICT } else { StatusCode::OK };
            (status, render_card_page(&s.inner, &t, &name, notice)).into_response()
        }
        None => not_found_page(),
    }
}

async fn cancel_page_handler(State(s): State<Arc<BankSandbox>>, Path(token): Path<String>) -> Response {
    let Some((key, _, _)) = by_token(&s.inner, &token) else { return not_found_page() };
    let cancelled = s.inner.cancel(&key).is_ok();
    match by_token(&s.inner, &token) {
        Some((_, t, name)) => {
            let notice = cancelled.then_some("已取消 Cancelled — you may close this page");
            render_card_page(&s.inner, &t, &name, notice).into_response()
        }
        None => not_found_page(),
    }
}

// --- control API

fn latest_key(s: &BankSandbox, out_trade_no: &str) -> Option<TradeKey> {
    s.inner.lock().latest.get(out_trade_no).cloned()
}

async fn control_get(State(s): State<Arc<BankSandbox>>, Path(out_trade_no): Path<String>) -> Response {
    let trade = {
        let mut st = s.inner.lock();
        st.latest_trade(&out_trade_no, now_ms()).map(|t| t.clone())
    };
    let Some(t) = trade else { return json_error(StatusCode::NOT_FOUND, "no such order") };
    let refunds: Vec<serde_json::Value> = t
        .refunds
        .iter()
        .map(|r| {
            json!({
                "out_refund_no": r.out_refund_no,
                "bank_refund_id": r.bank_refund_id,
                "amount": Money::from_fen(r.refund_fen).unwrap_or(Money::ZERO),
                "state": r.status_word(),
            })
        })
        .collect();
    Json(json!({
        "out_trade_no": t.out_trade_no,
        "merchant_id": t.merchant_id,
        "state": t.status.as_str(),
        "amount": t.amount(),
        "provider_txn_id": t.bank_txn_id,
        "declines": t.declines,
        "refunds": refunds,
        "deliveries": s.inner.ctx.courier.records_for(&t.out_trade_no),
    }))
    .into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ControlPay {
    #[serde(default)]
    card_number: Option<String>,
}

async fn control_pay(State(s): State<Arc<BankSandbox>>, Path(out_trade_no): Path<String>, body: Bytes) -> Response {
    let req: ControlPay = if body.iter().all(u8::is_ascii_whitespace) {
        ControlPay::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("expected {{\"card_number\"?}}: {e}")),
        }
    };
    let Some(key) = latest_key(&s, &out_trade_no) else { return json_error(StatusCode::NOT_FOUND, "no such order") };
    let card = req.card_number.unwrap_or_else(|| wire::CARD_SUCCESS.to_string());
    match s.inner.attempt_card(&key, &card) {
        Ok(result) => Json(json!({
            "out_trade_no": out_trade_no,
            "state": s.trade_state(&out_trade_no),
            "result": result.word(),
        }))
        .into_response(),
        Err(e @ PayError::InvalidCard) => json_error(StatusCode::BAD_REQUEST, e),
        Err(e @ PayError::UnknownOrder) => json_error(StatusCode::NOT_FOUND, e),
        Err(e @ PayError::NotPayable(_)) => json_error(StatusCode::CONFLICT, e),
    }
}

async fn control_scan(State(_s): State<Arc<BankSandbox>>, Path(out_trade_no): Path<String>) -> Response {
    Json(json!({ "out_trade_no": out_trade_no, "note": "the bank card page needs no scan step" })).into_response()
}

async fn control_cancel(State(s): State<Arc<BankSandbox>>, Path(out_trade_no): Path<String>) -> Response {
    let Some(key) = latest_key(&s, &out_trade_no) else { return json_error(StatusCode::NOT_FOUND, "no such order") };
    match s.inner.cancel(&key) {
        Ok(state) => Json(json!({ "out_trade_no": out_trade_no, "state": state })).into_response(),
        Err(e @ PayError::UnknownOrder) => json_error(StatusCode::NOT_FOUND, e),
        Err(e) => json_error(StatusCode::CONFLICT, e),
    }
}

/// A `FaultSpec` body (empty = no faults), or why not.
fn parse_faults(body: &[u8]) -> Result<FaultSpec, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(FaultSpec::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("expected a FaultSpec: {e}"))
}

async fn control_faults(State(s): State<Arc<BankSandbox>>, Path(out_trade_no): Path<String>, body: Bytes) -> Response {
    if !wire::valid_out_no(&out_trade_no) {
        return json_error(StatusCode::BAD_REQUEST, "bad out_trade_no");
    }
    match parse_faults(&body) {
        Ok(f) => {
            s.set_faults(&out_trade_no, f.clone());
            Json(json!({ "out_trade_no": out_trade_no, "faults": f })).into_response()
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn control_defaults(State(s): State<Arc<BankSandbox>>, body: Bytes) -> Response {
    match parse_faults(&body) {
        Ok(f) => {
            s.set_default_faults(f.clone());
            Json(json!({ "defaults": f })).into_response()
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_keys::*;
    use crate::sandbox::{Courier, SandboxSettings};

    const M: &str = "M100001";

    fn sandbox() -> BankSandbox {
        let settings =
            Arc::new(SandboxSettings { base_url: "http://127.0.0.1:9/".into(), time_scale_permille: 1, key_dir: None });
        let courier = Arc::new(Courier::new(settings.clone()));
        let s = BankSandbox::new(SandboxCtx { settings, courier }).unwrap();
        let bank_pem = s.register_merchant(M, MERCHANT_PUBLIC).unwrap();
        assert_eq!(bank_pem, s.bank_public_key());
        s
    }

    fn merchant_key() -> PrivateKey {
        PrivateKey::parse(MERCHANT_PRIVATE).unwrap()
    }

    fn request(fields: &[(&str, &str)]) -> Params {
        let mut p: Params = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        p.entry("merchant_id".into()).or_insert_with(|| M.into());
        p.entry("timestamp".into()).or_insert_with(|| wire::fmt_time(now_ms()));
        p.entry("nonce".into()).or_insert_with(|| random_alnum(24));
        p
    }

    fn signed(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut p = request(fields);
        wire::sign(&mut p, &merchant_key());
        wire::to_json(&p).into_bytes()
    }

    /// Calls the API and checks the answer is signed by the bank.
    fn call_raw(s: &BankSandbox, op: &str, ct: &str, body: &[u8]) -> Params {
        let text = s.inner.api(op, ct, body);
        let p = wire::parse_flat(text.as_bytes()).unwrap();
        let bank = PublicKey::parse(&s.bank_public_key()).unwrap();
        assert!(wire::verify(&p, &bank), "answers are signed by the bank: {text}");
        assert!(wire::parse_time(&p["timestamp"]).is_some());
        p
    }

    fn call(s: &BankSandbox, op: &str, fields: &[(&str, &str)]) -> Params {
        call_raw(s, op, "application/json", &signed(fields))
    }

    fn code(p: &Params) -> &str {
        p["code"].as_str()
    }

    fn expire() -> String {
        wire::fmt_time(now_ms() + 15 * 60_000)
    }

    fn create(s: &BankSandbox, otn: &str, fen: &str) -> Params {
        let exp = expire();
        call(
            s,
            "create",
            &[
                ("out_trade_no", otn),
                ("amount_fen", fen),
                ("currency", "156"),
                ("subject", "门诊缴费"),
                ("notify_url", "http://127.0.0.1:9/notify/bank"),
                ("return_url", "http://127.0.0.1:9/done?x=1&y=2"),
                ("expire_time", &exp),
            ],
        )
    }

    #[test]
    fn schedule_and_acknowledgement() {
        let secs: Vec<u64> = bank_schedule().iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, [15, 60, 300, 900, 3600, 7200, 21600, 43200]);
        assert!(merchant_acknowledged(200, br#"{"code":"SUCCESS"}"#));
        assert!(merchant_acknowledged(200, br#" {"code" : "SUCCESS", "x": 1} "#));
        assert!(!merchant_acknowledged(200, br#"{"code":"FAIL"}"#));
        assert!(!merchant_acknowledged(200, b"success"));
        assert!(!merchant_acknowledged(204, br#"{"code":"SUCCESS"}"#));
        assert!(!merchant_acknowledged(500, br#"{"code":"SUCCESS"}"#));
    }

    #[test]
    fn registration_is_checked() {
        let s = sandbox();
        assert!(s.register_merchant("bad id", MERCHANT_PUBLIC).is_err());
        assert!(s.register_merchant("M2", "not a key").is_err());
        assert!(s.register_merchant("M2", &s.bank_public_key()).is_err(), "the bank's own key");
        let bare: String = MERCHANT_PUBLIC.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(s.register_merchant("M2", &bare).is_ok());
    }

    #[test]
    fn request_checks_in_order() {
        let s = sandbox();
        let body = signed(&[("out_trade_no", "T1")]);
        let p = call_raw(&s, "query", "text/plain", &body);
        assert_eq!(code(&p), "PARAM_ERROR");
        let p = call_raw(&s, "query", "application/json", br#"{"merchant_id":"M100001","n":1}"#);
        assert_eq!(code(&p), "PARAM_ERROR");
        assert_eq!(p.get("merchant_id"), None, "nothing echoed from an unparseable body");

        let p = call(&s, "query", &[("merchant_id", "M404"), ("out_trade_no", "T1")]);
        assert_eq!(code(&p), "UNKNOWN_MERCHANT");

        // signed with the wrong key; the nonce is echoed
        let mut req = request(&[("out_trade_no", "T1"), ("nonce", "forgedforgedforged")]);
        wire::sign(&mut req, &PrivateKey::parse(PROVIDER_PRIVATE).unwrap());
        let p = call_raw(&s, "query", "application/json", wire::to_json(&req).as_bytes());
        assert_eq!(
            (code(&p), p["nonce"].as_str(), p["merchant_id"].as_str()),
            ("INVALID_SIGNATURE", "forgedforgedforged", M)
        );
        // tampered after signing
        let mut req = request(&[("out_trade_no", "T1")]);
        wire::sign(&mut req, &merchant_key());
        req.insert("out_trade_no".into(), "T2".into());
        assert_eq!(
            code(&call_raw(&s, "query", "application/json", wire::to_json(&req).as_bytes())),
            "INVALID_SIGNATURE"
        );

        let old = wire::fmt_time(now_ms() - 6 * 60_000);
        assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1"), ("timestamp", &old)])), "STALE");
        let future = wire::fmt_time(now_ms() + 6 * 60_000);
        assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1"), ("timestamp", &future)])), "STALE");
        let near = wire::fmt_time(now_ms() - 4 * 60_000);
        assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1"), ("timestamp", &near)])), "ORDER_NOT_EXIST");

        let body = signed(&[("out_trade_no", "T1"), ("nonce", "onceonlyonceonly")]);
        assert_eq!(code(&call_raw(&s, "query", "application/json", &body)), "ORDER_NOT_EXIST");
        let p = call_raw(&s, "query", "application/json", &body);
        assert_eq!((code(&p), p["nonce"].as_str()), ("REPLAY", "onceonlyonceonly"));
        // the same nonce on another operation is a replay too
        assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T1"), ("nonce", "onceonlyonceonly")])), "REPLAY");

        assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1"), ("nonce", "short")])), "PARAM_ERROR");
        assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1"), ("extra", "1")])), "PARAM_ERROR");
        assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T 1")])), "PARAM_ERROR");
        assert_eq!(code(&call(&s, "query", &[])), "PARAM_ERROR");
    }

    #[test]
    fn nonces_are_forgotten_after_ten_minutes() {
        let mut b = Book::default();
        let t0 = 1_000_000_000_000;
        let k = (M.to_string(), "n".to_string());
        b.nonces.insert(k.clone());
        b.nonce_queue.push_back((t0, k.clone()));
        b.forget_old_nonces(t0 + wire::NONCE_MEMORY_MS);
        assert!(b.nonces.contains(&k));
        b.forget_old_nonces(t0 + wire::NONCE_MEMORY_MS + 1);
        assert!(!b.nonces.contains(&k) && b.nonce_queue.is_empty());
    }

    #[test]
    fn create_rules() {
        let s = sandbox();
        let p = create(&s, "T1", "8888");
        assert_eq!(code(&p), "SUCCESS", "{p:?}");
        assert!(p["pay_url"].starts_with("http://127.0.0.1:9/sandbox/bank/pay/"));
        assert!(p["bank_order_id"].starts_with("BO"));
        // same parameters: the same order again
        let again = call(
            &s,
            "create",
            &[
                ("out_trade_no", "T1"),
                ("amount_fen", "8888"),
                ("currency", "156"),
                ("subject", "门诊缴费"),
                ("notify_url", "http://127.0.0.1:9/notify/bank"),
                ("return_url", "http://127.0.0.1:9/done?x=1&y=2"),
                ("expire_time", &p["expire_time"]),
            ],
        );
        assert_eq!(
            (code(&again), &again["pay_url"], &again["bank_order_id"]),
            ("SUCCESS", &p["pay_url"], &p["bank_order_id"])
        );
        assert_eq!(code(&create(&s, "T1", "8889")), "DUPLICATE_ORDER");

        let exp = expire();
        let base = [
            ("out_trade_no", "T2"),
            ("amount_fen", "100"),
            ("currency", "156"),
            ("subject", "x"),
            ("notify_url", "https://h/n"),
            ("expire_time", exp.as_str()),
        ];
        let past = wire::fmt_time(now_ms() - 1000);
        let far = wire::fmt_time(now_ms() + 31 * 24 * 3_600_000);
        let long = "诊".repeat(129);
        for (k, v) in [
            ("amount_fen", "0"),
            ("amount_fen", "1.00"),
            ("amount_fen", "-5"),
            ("currency", "840"),
            ("subject", ""),
            ("subject", long.as_str()),
            ("subject", "a\u{7}b"),
            ("notify_url", "ftp://h/n"),
            ("return_url", "javascript:alert(1)"),
            ("expire_time", past.as_str()),
            ("expire_time", far.as_str()),
            ("expire_time", "2024-01-01"),
        ] {
            let mut fields: Vec<(&str, &str)> = base.iter().filter(|(bk, _)| *bk != k).cloned().collect();
            fields.push((k, v));
            assert_eq!(code(&call(&s, "create", &fields)), "PARAM_ERROR", "{k}={v}");
        }
        assert_eq!(code(&call(&s, "create", &base)), "SUCCESS");
    }

    #[tokio::test]
    async fn pay_close_refund_statement() {
        let s = sandbox();
        create(&s, "T1", "8888");
        let q = call(&s, "query", &[("out_trade_no", "T1")]);
        assert_eq!((q["trade_status"].as_str(), q["refunded_fen"].as_str()), ("WAITING", "0"));
        assert_eq!(
            code(&call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R1"), ("refund_fen", "1")])),
            "PARAM_ERROR"
        );

        // invalid cards change nothing; declines keep the order payable
        assert!(s.pay_with_card("T1", "1234").is_err());
        assert_eq!(
            s.pay_with_card("T1", "4000 0000 0000 0002").unwrap(),
            CardResult::Declined { fail_code: "CARD_DECLINED", order_failed: false }
        );
        assert_eq!(s.pay_with_card("T1", wire::CARD_INSUFFICIENT).unwrap().word(), "INSUFFICIENT_FUNDS");
        assert_eq!(s.trade_state("T1").as_deref(), Some("WAITING"));
        s.pay("T1").unwrap();
        assert_eq!(s.trade_state("T1").as_deref(), Some("SUCCESS"));
        assert!(s.pay("T1").is_err(), "paid once");
        let q = call(&s, "query", &[("out_trade_no", "T1")]);
        assert_eq!((q["trade_status"].as_str(), q["card_last4"].as_str()), ("SUCCESS", "1111"));
        assert!(q["bank_txn_id"].starts_with("BT") && wire::parse_time(&q["paid_time"]).is_some());
        assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T1")])), "ORDER_PAID");
        assert_eq!(code(&create(&s, "T1", "8888")), "ORDER_PAID");

        // the success notification as the sandbox sends it
        let (headers, body) = s.signed_success_notification("T1").unwrap();
        assert_eq!(headers, vec![("content-type".to_string(), "application/json; charset=utf-8".to_string())]);
        let n = wire::parse_flat(&body).unwrap();
        assert!(wire::verify(&n, &PublicKey::parse(&s.bank_public_key()).unwrap()));
        assert_eq!(
            (n["event"].as_str(), n["amount_fen"].as_str(), n["merchant_id"].as_str()),
            ("PAYMENT_SUCCESS", "8888", M)
        );
        let again = wire::parse_flat(&s.signed_success_notification("T1").unwrap().1).unwrap();
        assert_eq!(again["notify_id"], n["notify_id"], "stable notify_id");
        assert!(!String::from_utf8_lossy(&body).contains(wire::CARD_SUCCESS), "never the full card number");

        // refunds: processing, idempotent, capped
        let r1 = call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R1"), ("refund_fen", "1000")]);
        assert_eq!(
            (code(&r1), r1["refund_status"].as_str(), r1["refunded_fen"].as_str()),
            ("SUCCESS", "REFUND_PROCESSING", "1000")
        );
        let again = call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R1"), ("refund_fen", "1000")]);
        assert_eq!(
            (again["bank_refund_id"].as_str(), again["refunded_fen"].as_str()),
            (r1["bank_refund_id"].as_str(), "1000")
        );
        assert_eq!(
            code(&call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R1"), ("refund_fen", "999")])),
            "PARAM_ERROR"
        );
        assert_eq!(
            code(&call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R2"), ("refund_fen", "7889")])),
            "REFUND_EXCEEDS"
        );
        let r2 = call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R2"), ("refund_fen", "7888")]);
        assert_eq!((code(&r2), r2["refunded_fen"].as_str()), ("SUCCESS", "8888"));
        assert_eq!(
            code(&call(&s, "refund_query", &[("out_trade_no", "T1"), ("out_refund_no", "R9")])),
            "ORDER_NOT_EXIST"
        );
        // refunds complete after the scaled delay
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let q = call(&s, "refund_query", &[("out_trade_no", "T1"), ("out_refund_no", "R2")]);
            if q["refund_status"] == "REFUND_SUCCESS" {
                assert!(wire::parse_time(&q["refund_time"]).is_some());
                break;
            }
            assert!(std::time::Instant::now() < deadline, "refund never completed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while call(&s, "refund_query", &[("out_trade_no", "T1"), ("out_refund_no", "R1")])["refund_status"]
            != "REFUND_SUCCESS"
        {
            assert!(std::time::Instant::now() < deadline, "refund never completed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        let today = wire::fmt_date(local_date(now_ms()).unwrap());
        let st = call(&s, "statement", &[("bill_date", &today)]);
        assert_eq!(code(&st), "SUCCESS");
        let rows = wire::parse_statement(&st["csv"]).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().map(|r| r.amount_fen).sum::<i64>(), 0);
        assert_eq!((rows[0].kind, rows[0].fee_fen, rows[0].card_last4.as_str()), (wire::RowKind::Payment, 34, "1111"));
        let tomorrow = wire::fmt_date(local_date(now_ms() + 86_400_000).unwrap());
        assert_eq!(code(&call(&s, "statement", &[("bill_date", &tomorrow)])), "PARAM_ERROR");
        let empty = call(&s, "statement", &[("bill_date", "20200101")]);
        assert_eq!(empty["csv"], format!("{}\nTOTAL,0,0\n", wire::STATEMENT_HEADER));
    }

    #[tokio::test]
    async fn declines_fail_the_order_and_close_rules() {
        let s = sandbox();
        create(&s, "T1", "100");
        for i in 1..=MAX_DECLINES {
            let r = s.pay_with_card("T1", wire::CARD_DECLINED).unwrap();
            assert_eq!(r, CardResult::Declined { fail_code: "CARD_DECLINED", order_failed: i == MAX_DECLINES });
        }
        let q = call(&s, "query", &[("out_trade_no", "T1")]);
        assert_eq!((q["trade_status"].as_str(), q["fail_code"].as_str()), ("FAILED", "CARD_DECLINED"));
        assert!(s.pay("T1").is_err());
        assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T1")])), "ORDER_CLOSED");

        create(&s, "T2", "100");
        assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T2")])), "SUCCESS");
        assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T2")])), "SUCCESS", "closing twice");
        assert!(s.pay("T2").is_err());
        assert_eq!(code(&create(&s, "T2", "100")), "ORDER_CLOSED");
        assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T404")])), "ORDER_NOT_EXIST");

        // expiry closes an unpaid order
        create(&s, "T3", "100");
        s.inner.lock().trades.values_mut().filter(|t| t.out_trade_no == "T3").for_each(|t| t.expire_ms = now_ms() - 1);
        assert_eq!(s.trade_state("T3").as_deref(), Some("CLOSED"));
    }

    #[tokio::test]
    async fn faults() {
        let s = sandbox();
        s.set_faults("T1", FaultSpec { fail_next_call: true, ..FaultSpec::default() });
        assert_eq!(code(&create(&s, "T1", "100")), "SYSTEM_ERROR");
        assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1")])), "ORDER_NOT_EXIST", "not executed");
        assert_eq!(code(&create(&s, "T1", "100")), "SUCCESS");
        s.set_faults("T1", FaultSpec { fail_next_call: true, ..FaultSpec::default() });
        assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1")])), "SYSTEM_ERROR");
        assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1")])), "SUCCESS");

        s.set_default_faults(FaultSpec { drop: true, ..FaultSpec::default() });
        create(&s, "T2", "100");
        assert!(s.inner.lock().faults["T2"].drop);
        s.set_default_faults(FaultSpec::default());
        create(&s, "T3", "100");
        assert!(!s.inner.lock().faults["T3"].drop);
    }

    #[tokio::test]
    async fn card_page() {
        let s = Arc::new(sandbox());
        let p = create(&s, "T1", "8888");
        let token = p["pay_url"].rsplit('/').next().unwrap().to_string();
        let (key, t, name) = by_token(&s.inner, &token).unwrap();
        assert_eq!(name, M);
        let html = render_card_page(&s.inner, &t, &name, None).0;
        for needle in [
            r#"<label for="card_number">"#,
            r#"name="card_number""#,
            r#"inputmode="numeric""#,
            r#"name="holder_name""#,
            "¥88.88",
            "门诊缴费",
            &format!(r#"action="http://127.0.0.1:9/sandbox/bank/pay/{token}/confirm""#),
            &format!(r#"action="http://127.0.0.1:9/sandbox/bank/pay/{token}/cancel""#),
        ] {
            assert!(html.contains(needle), "{needle} in {html}");
        }
        assert!(!html.contains("返回商户"));
        s.inner.attempt_card(&key, "4111-1111-1111-1111").unwrap();
        let (_, t, name) = by_token(&s.inner, &token).unwrap();
        let html = render_card_page(&s.inner, &t, &name, None).0;
        assert!(html.contains("支付成功 Paid"));
        assert!(!html.contains("card_number"));
        assert!(html.contains(r#"<a href="http://127.0.0.1:9/done?x=1&amp;y=2""#), "{html}");
        assert!(!html.contains(wire::CARD_SUCCESS));
        assert!(by_token(&s.inner, "nope").is_none());
    }
}
