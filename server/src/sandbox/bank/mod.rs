//! The bank-card gateway sandbox (docs/providers/bank.md), mounted at `/sandbox/bank`:
//!
//! * `POST api/{create,query,close,refund,refund_query,statement}` — signature, time-window and
//!   replay checks in the document's order, every answer HTTP 200 and signed by the bank;
//! * `POST merchants` — registration (stands in for the bank's onboarding);
//! * `pay/{token}` — the hosted card page the `pay_url` opens;
//! * `control/...` — the test-control API every sandbox shares ([`crate::sandbox::control`]);
//!   `pay` takes an optional `{"card_number"}`.
//!
//! Orders, merchants, nonces and notifications being delivered live in the sandbox database;
//! refunds complete on the sandbox's timer. Card numbers typed on the page are reduced to their
//! last four digits at once: never stored in full, never logged. `wire.rs` is the sandbox's own
//! reading of the protocol.

mod bills;
pub mod trades;
pub mod wire;

use super::control::SandboxControl;
use super::courier::{Courier, Notice, Notifier, BANK_SCHEDULE};
use super::page::{self, esc, PayerPage};
use super::store::SandboxStore;
use super::{provider_key, FaultSpec, SandboxCtx, Wakes};
use crate::crypto::{PrivateKey, PublicKey};
use anyhow::anyhow;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clinicpay::money::Money;
use clinicpay::time::{day_start, local_date, Millis, DAY_MS};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use trades::{bad_param, fields, refuse, Refusal, Status, Trade};
pub use trades::{CardResult, PayError};
use wire::Msg;

/// The sandbox's name in its database and deliveries.
pub const NAME: &str = "bank";
/// A refund completes this long after it was accepted (time-scaled).
const REFUND_DELAY: Duration = Duration::from_secs(5);
const OPERATIONS: [&str; 6] = ["create", "query", "close", "refund", "refund_query", "statement"];

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A registered merchant.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Merchant {
    /// The merchant's public key (SPKI, base64).
    public_key: String,
    /// Shown on the card page.
    name: String,
}

/// How the bank delivers: every attempt gets its own `timestamp` and signature (section 5);
/// acknowledged by HTTP 200 with `{"code":"SUCCESS"}`.
struct BankNotifier(Arc<PrivateKey>);

impl Notifier for BankNotifier {
    fn attempt(&self, _signing: &str, queued: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
        let mut m = wire::read_message(queued).unwrap_or_default();
        m.insert("timestamp".into(), wire::time(now_ms()));
        wire::sign_message(&mut m, &self.0);
        (vec![("content-type".into(), "application/json; charset=utf-8".into())], wire::write_message(&m).into_bytes())
    }

    fn accepted(&self, status: u16, body: &[u8]) -> bool {
        status == 200
            && serde_json::from_slice::<Value>(body).ok().is_some_and(|v| v.get("code") == Some(&json!("SUCCESS")))
    }

    fn schedule(&self) -> &'static [u64] {
        &BANK_SCHEDULE
    }
}

/// The simulated bank gateway.
pub struct BankSandbox {
    ctx: SandboxCtx,
    key: Arc<PrivateKey>,
    public_pem: String,
    /// One operation at a time: each reads an order, changes it and writes it back.
    op: tokio::sync::Mutex<()>,
}

impl BankSandbox {
    pub fn new(ctx: SandboxCtx) -> anyhow::Result<Self> {
        let key = Arc::new(provider_key(&ctx.settings, "bank")?);
        let public_pem = key.public_key().to_pem();
        ctx.courier.register(NAME, Arc::new(BankNotifier(key.clone())));
        Ok(BankSandbox { ctx, key, public_pem, op: tokio::sync::Mutex::new(()) })
    }

    fn store(&self) -> &SandboxStore {
        &self.ctx.store
    }

    fn page_url(&self, token: &str) -> String {
        format!("{}/sandbox/bank/pay/{token}", self.ctx.settings.base_url.trim_end_matches('/'))
    }

    /// The bank's public key (SPKI PEM) merchants verify answers and notifications with.
    pub fn bank_public_key(&self) -> String {
        self.public_pem.clone()
    }

    /// Registers (or re-keys) a merchant; returns the bank's public key PEM.
    pub async fn register_merchant(&self, merchant_id: &str, merchant_public_key_pem: &str) -> anyhow::Result<String> {
        self.register(merchant_id, merchant_public_key_pem, None).await
    }

    async fn register(&self, merchant_id: &str, public_key: &str, name: Option<String>) -> anyhow::Result<String> {
        if !wire::merchant_id_ok(merchant_id) {
            anyhow::bail!("merchant_id must be 1–32 of [0-9A-Za-z_-]");
        }
        let key = PublicKey::parse(public_key).map_err(|e| anyhow!("merchant_public_key: {e}"))?;
        if key == self.key.public_key() {
            anyhow::bail!("merchant_public_key is the bank's own key");
        }
        let name =
            name.filter(|n| !n.trim().is_empty() && wire::text_ok(n, 1, 64)).unwrap_or_else(|| merchant_id.into());
        self.store().register(NAME, merchant_id, &Merchant { public_key: key.to_base64(), name }).await?;
        Ok(self.bank_public_key())
    }

    /// Tries a card on the most recent order of this number (the test cards decide).
    pub async fn pay_with_card(&self, out_trade_no: &str, card_number: &str) -> anyhow::Result<CardResult> {
        let _op = self.op.lock().await;
        let t = self.latest(out_trade_no).await?.ok_or_else(|| anyhow!("no bank order {out_trade_no}"))?;
        Ok(self.attempt_card(t, card_number).await??)
    }

    /// `WAITING`, `SUCCESS`, `CLOSED` or `FAILED`.
    pub async fn trade_state(&self, out_trade_no: &str) -> Option<String> {
        self.latest(out_trade_no).await.ok().flatten().map(|t| t.status.word().to_string())
    }

    async fn latest(&self, out_trade_no: &str) -> anyhow::Result<Option<Trade>> {
        let mut t: Option<Trade> = self.store().latest_trade(NAME, out_trade_no).await?;
        if let Some(t) = t.as_mut() {
            t.refresh(now_ms());
        }
        Ok(t)
    }

    async fn save_and_send(&self, t: &Trade, out: Vec<Notice>) -> anyhow::Result<()> {
        self.store().save_trade(NAME, t).await?;
        self.ctx.wake.notify_one();
        for n in out {
            if let Err(e) = self.ctx.courier.send(n, &t.faults).await {
                tracing::error!(error = %e, "the bank sandbox could not queue a notification");
            }
        }
        Ok(())
    }

    /// One card attempt on an order the caller holds the operation lock for.
    async fn attempt_card(&self, mut t: Trade, typed: &str) -> anyhow::Result<Result<CardResult, PayError>> {
        let mut out = Vec::new();
        let r = t.attempt_card(typed, now_ms(), &mut out);
        if r.is_ok() {
            self.save_and_send(&t, out).await?;
        }
        Ok(r)
    }

    // ----- the API ---------------------------------------------------------------------------

    /// One API request; the signed answer body.
    async fn api(&self, op: &str, content_type: &str, body: &[u8]) -> String {
        let now = now_ms();
        let mut echo = Msg::new();
        let mut answer = match self.answer(op, content_type, body, now, &mut echo).await {
            Ok(mut m) => {
                m.insert("code".into(), "SUCCESS".into());
                m.insert("message".into(), "OK".into());
                m
            }
            Err(Refusal(code, message)) => {
                if code != "SYSTEM_ERROR" {
                    tracing::debug!(operation = op, code, message = %message, "bank sandbox refused a request");
                }
                fields(&[("code", code.to_string()), ("message", message)])
            }
        };
        answer.extend(echo);
        answer.insert("timestamp".into(), wire::time(now));
        wire::sign_message(&mut answer, &self.key);
        wire::write_message(&answer)
    }

    /// The checks of section 3 in their order, then the operation.
    async fn answer(
        &self,
        op: &str,
        content_type: &str,
        body: &[u8],
        now: Millis,
        echo: &mut Msg,
    ) -> Result<Msg, Refusal> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(bad_param("Content-Type must be application/json"));
        }
        let req = wire::read_message(body).map_err(bad_param)?;
        let merchant_id = wire::field(&req, "merchant_id").filter(|m| wire::merchant_id_ok(m));
        if let Some(m) = merchant_id {
            echo.insert("merchant_id".into(), m.to_string());
        }
        if let Some(n) = wire::field(&req, "nonce").filter(|n| wire::nonce_ok(n)) {
            echo.insert("nonce".into(), n.to_string());
        }
        let merchant_id = merchant_id.ok_or_else(|| bad_param("missing or malformed merchant_id"))?;
        let merchant: Merchant = self
            .store()
            .registration(NAME, merchant_id)
            .await
            .map_err(storage)?
            .ok_or_else(|| refuse("UNKNOWN_MERCHANT", "unknown merchant_id"))?;
        let key = PublicKey::parse(&merchant.public_key).map_err(storage)?;
        if !wire::signature_ok(&req, &key) {
            return Err(refuse("INVALID_SIGNATURE", "sign does not verify with the merchant's registered key"));
        }
        let ts = wire::field(&req, "timestamp")
            .and_then(wire::read_time)
            .ok_or_else(|| bad_param("timestamp must be yyyyMMddHHmmss"))?;
        if (now - ts).abs() > wire::CLOCK_WINDOW_MS {
            return Err(refuse("STALE", "timestamp is more than 5 minutes from the bank's clock"));
        }
        let nonce = wire::field(&req, "nonce").filter(|n| wire::nonce_ok(n)).ok_or_else(|| bad_param("bad nonce"))?;
        let fresh =
            self.store().fresh_nonce(NAME, merchant_id, nonce, now, wire::NONCE_WINDOW_MS).await.map_err(storage)?;
        if !fresh {
            return Err(refuse("REPLAY", "nonce already used"));
        }
        let allowed: &[&str] = match op {
            "create" => {
                &["out_trade_no", "amount_fen", "currency", "subject", "notify_url", "return_url", "expire_time"]
            }
            "query" | "close" => &["out_trade_no"],
            "refund" => &["out_trade_no", "out_refund_no", "refund_fen", "reason", "notify_url"],
            "refund_query" => &["out_trade_no", "out_refund_no"],
            "statement" => &["bill_date"],
            _ => return Err(bad_param("unknown operation")),
        };
        const COMMON: [&str; 5] = ["merchant_id", "timestamp", "nonce", "sign_type", "sign"];
        if let Some(k) = req.keys().find(|k| !COMMON.contains(&k.as_str()) && !allowed.contains(&k.as_str())) {
            return Err(bad_param(format!("unknown field {k} for {op}")));
        }
        if op == "statement" {
            return self.statement(merchant_id, &req, now).await;
        }
        let no = wire::field(&req, "out_trade_no").ok_or_else(|| bad_param("missing out_trade_no"))?;
        if !wire::order_no_ok(no) {
            return Err(bad_param("out_trade_no must be 1–64 of [0-9A-Za-z_-]"));
        }
        let _op = self.op.lock().await;
        let existing: Option<Trade> = self.store().trade(NAME, merchant_id, no).await.map_err(storage)?;
        let Some(mut t) = existing else {
            return self.without_order(op, merchant_id, no, &req, now).await;
        };
        t.refresh(now);
        if std::mem::take(&mut t.faults.fail_next_call) {
            self.save_and_send(&t, Vec::new()).await.map_err(storage)?;
            return Err(injected(no));
        }
        let result = match op {
            "create" => {
                let r = trades::create_request(&req, now)?;
                t.repeat_create(&r, &self.page_url(&t.token))
            }
            "query" => Ok(t.query()),
            "close" => t.close(),
            "refund" => {
                if let Some(refund_no) = wire::field(&req, "out_refund_no") {
                    let other = self.store().refund_order(NAME, merchant_id, refund_no).await.map_err(storage)?;
                    if other.is_some_and(|o| o != no) {
                        return Err(bad_param("out_refund_no already used for another order"));
                    }
                }
                let due = now + self.ctx.settings.scaled(REFUND_DELAY).as_millis() as i64;
                let r = t.refund(&req, now, due);
                if r.is_ok() {
                    if let Some(refund_no) = wire::field(&req, "out_refund_no") {
                        self.store().index_refund(NAME, merchant_id, refund_no, no).await.map_err(storage)?;
                    }
                }
                r
            }
            _ => t.refund_query(&req),
        };
        self.save_and_send(&t, Vec::new()).await.map_err(storage)?;
        result
    }

    /// An operation on an order number the merchant has not used: `create` makes the order.
    async fn without_order(
        &self,
        op: &str,
        merchant_id: &str,
        no: &str,
        req: &Msg,
        now: Millis,
    ) -> Result<Msg, Refusal> {
        let key = format!("faults:{no}");
        let pending: Option<FaultSpec> = self.store().setting(NAME, &key, now).await.map_err(storage)?;
        if let Some(mut f) = pending.filter(|f| f.fail_next_call) {
            f.fail_next_call = false;
            self.store().set_setting(NAME, &key, &f, None).await.map_err(storage)?;
            return Err(injected(no));
        }
        if op != "create" {
            return Err(refuse("ORDER_NOT_EXIST", "no such order"));
        }
        let r = trades::create_request(req, now)?;
        let faults = match self.store().take_setting::<FaultSpec>(NAME, &key).await.map_err(storage)? {
            Some(f) => f,
            None => self.store().setting(NAME, "faults:default", now).await.map_err(storage)?.unwrap_or_default(),
        };
        let t = Trade::new(merchant_id, no, &r, faults, now);
        self.save_and_send(&t, Vec::new()).await.map_err(storage)?;
        Ok(t.created(&self.page_url(&t.token)))
    }

    /// 4.6: the merchant's orders whose money moved that day.
    async fn statement(&self, merchant_id: &str, req: &Msg, now: Millis) -> Result<Msg, Refusal> {
        let bill_date = wire::field(req, "bill_date").ok_or_else(|| bad_param("missing bill_date"))?;
        let date = wire::read_date(bill_date).ok_or_else(|| bad_param("bill_date must be yyyyMMdd"))?;
        if local_date(now).is_some_and(|today| date > today) {
            return Err(bad_param("bill_date is in the future"));
        }
        let from = day_start(date);
        let trades: Vec<Trade> =
            self.store().trades_with_money(NAME, merchant_id, from, from + DAY_MS).await.map_err(storage)?;
        Ok(fields(&[("bill_date", bill_date.to_string()), ("csv", bills::statement(&trades, date))]))
    }

    // ----- the card page ---------------------------------------------------------------------

    async fn by_token(&self, token: &str) -> anyhow::Result<Option<(Trade, String)>> {
        let Some(mut t) = self.store().trade_by_token::<Trade>(NAME, token).await? else { return Ok(None) };
        t.refresh(now_ms());
        let name = self.store().registration::<Merchant>(NAME, &t.merchant_id).await?.map(|m| m.name);
        let name = name.unwrap_or_else(|| t.merchant_id.clone());
        Ok(Some((t, name)))
    }

    fn card_page(&self, t: &Trade, merchant: &str, notice: Option<&str>) -> Html<String> {
        let waiting = t.status == Status::Waiting;
        let status = match (t.status, notice) {
            (Status::Waiting | Status::Closed, Some(n)) => n.to_string(),
            (Status::Waiting, None) => "待支付 Waiting for payment".to_string(),
            (Status::Success, _) => format!("支付成功 Paid · **** {}", t.card_last4.as_deref().unwrap_or("")),
            (Status::Closed, None) => "已关闭 Closed".to_string(),
            (Status::Failed, _) => "支付失败 Payment failed".to_string(),
        };
        let base = self.page_url(&t.token);
        let html = page::render(&PayerPage {
            brand: "银行卡 · Bank card",
            color: "#1d4f91",
            merchant,
            subject: &t.subject,
            amount: t.amount(),
            status: &status,
            pay_action: waiting.then(|| format!("{base}/confirm")),
            cancel_action: waiting.then(|| format!("{base}/cancel")),
            pay_fields_html: if waiting { CARD_FIELDS.to_string() } else { String::new() },
            pay_label: "支付 Pay",
        });
        let html = match (&t.return_url, t.status) {
            (Some(url), Status::Success) => html.replacen(
                "</main>",
                &format!(
                    r#"<p><a href="{}" data-testid="return">返回商户 Return to merchant</a></p></main>"#,
                    esc(url)
                ),
                1,
            ),
            _ => html,
        };
        Html(html)
    }

    fn view(&self, t: &Trade) -> Value {
        json!({
            "out_trade_no": t.out_trade_no,
            "merchant_id": t.merchant_id,
            "state": t.status.word(),
            "amount": t.amount(),
            "provider_txn_id": t.bank_txn_id,
            "declines": t.declines,
            "result": t.last_result,
            "pay_url": self.page_url(&t.token),
            "refunds": t.refunds.iter().map(|r| json!({
                "out_refund_no": r.out_refund_no,
                "bank_refund_id": r.bank_refund_id,
                "amount": Money::from_fen(r.refund_fen).unwrap_or(Money::ZERO),
                "state": r.status_word(),
            })).collect::<Vec<_>>(),
            "faults": t.faults,
        })
    }
}

fn storage(e: anyhow::Error) -> Refusal {
    tracing::error!(error = %e, "the bank sandbox could not use its database");
    refuse("SYSTEM_ERROR", "the bank failed")
}

fn injected(no: &str) -> Refusal {
    tracing::info!(out_trade_no = no, "bank sandbox failing a call (fault injection)");
    refuse("SYSTEM_ERROR", "simulated bank failure (fail_next_call)")
}

const CARD_FIELDS: &str = concat!(
    r#"<label for="card_number">卡号 Card number</label>"#,
    r#"<input id="card_number" name="card_number" type="text" inputmode="numeric" autocomplete="cc-number" "#,
    r#"maxlength="23" required placeholder="4111 1111 1111 1111">"#,
    r#"<label for="holder_name">持卡人 Cardholder name</label>"#,
    r#"<input id="holder_name" name="holder_name" type="text" autocomplete="cc-name" maxlength="64">"#,
    r#"<p style="font-size:12px;color:#56606e;margin:10px 0 0">测试卡 Test cards: 4111 1111 1111 1111 pays · "#,
    r#"4000 0000 0000 0002 declined · 4000 0000 0000 9995 insufficient funds</p>"#
);

#[async_trait]
impl SandboxControl for BankSandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn courier(&self) -> &Arc<Courier> {
        &self.ctx.courier
    }

    /// Pays with the success card, as the card page's Pay does.
    async fn pay(&self, out_trade_no: &str) -> anyhow::Result<()> {
        match self.pay_with_card(out_trade_no, wire::PAYS).await? {
            CardResult::Paid => Ok(()),
            other => anyhow::bail!("payment declined: {}", other.word()),
        }
    }

    /// The card page needs no scan step.
    async fn scan(&self, out_trade_no: &str) -> anyhow::Result<()> {
        self.latest(out_trade_no).await?.map(|_| ()).ok_or_else(|| anyhow!("no bank order {out_trade_no}"))
    }

    /// The payer cancels on the card page: the order becomes `CLOSED`.
    async fn cancel(&self, out_trade_no: &str) -> anyhow::Result<()> {
        let _op = self.op.lock().await;
        let mut t = self.latest(out_trade_no).await?.ok_or_else(|| anyhow!("no bank order {out_trade_no}"))?;
        t.payer_cancels(now_ms())?;
        self.save_and_send(&t, Vec::new()).await
    }

    async fn set_faults(&self, out_trade_no: &str, faults: FaultSpec) -> anyhow::Result<()> {
        if !wire::order_no_ok(out_trade_no) {
            anyhow::bail!("bad out_trade_no");
        }
        let _op = self.op.lock().await;
        match self.store().latest_trade::<Trade>(NAME, out_trade_no).await? {
            Some(mut t) => {
                t.faults = faults;
                self.store().save_trade(NAME, &t).await
            }
            None => self.store().set_setting(NAME, &format!("faults:{out_trade_no}"), &faults, None).await,
        }
    }

    async fn set_default_faults(&self, faults: FaultSpec) -> anyhow::Result<()> {
        self.store().set_setting(NAME, "faults:default", &faults, None).await
    }

    async fn trade_view(&self, out_trade_no: &str) -> anyhow::Result<Option<Value>> {
        Ok(self.latest(out_trade_no).await?.map(|t| self.view(&t)))
    }

    /// The `PAYMENT_SUCCESS` notification of a paid order as the sandbox sends it (same
    /// `notify_id`, fresh `timestamp` and signature), without sending it.
    async fn signed_success_notification(
        &self,
        out_trade_no: &str,
    ) -> anyhow::Result<(Vec<(String, String)>, Vec<u8>)> {
        let t = self.latest(out_trade_no).await?.ok_or_else(|| anyhow!("no bank order {out_trade_no}"))?;
        let m = t.payment_success().ok_or_else(|| anyhow!("bank order {out_trade_no} is not paid"))?;
        Ok(BankNotifier(self.key.clone()).attempt("", wire::write_message(&m).as_bytes()))
    }

    /// `pay` with `{"card_number": "…"}` tries that card.
    async fn action(&self, out_trade_no: &str, action: &str, body: &[u8]) -> Option<anyhow::Result<()>> {
        if action != "pay" || body.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ControlPay {
            card_number: Option<String>,
        }
        let card = match serde_json::from_slice::<ControlPay>(body) {
            Ok(p) => p.card_number.unwrap_or_else(|| wire::PAYS.to_string()),
            Err(e) => return Some(Err(anyhow!("expected {{\"card_number\"?}}: {e}"))),
        };
        // a declined card is an outcome, not an error: the view's `result` says what happened
        Some(self.pay_with_card(out_trade_no, &card).await.map(|_| ()))
    }
}

#[async_trait]
impl Wakes for BankSandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Orders past `expire_time` close; refunds whose money has arrived succeed and are notified.
    async fn wake_due(&self, now: Millis) -> anyhow::Result<usize> {
        let _op = self.op.lock().await;
        let due: Vec<Trade> = self.store().due_trades(NAME, now, 100).await?;
        let n = due.len();
        for mut t in due {
            t.refresh(now);
            let mut out = Vec::new();
            t.complete_refunds(now, &mut out);
            self.save_and_send(&t, out).await?;
        }
        Ok(n)
    }
}

// ----- HTTP --------------------------------------------------------------------------------

pub fn router(s: Arc<BankSandbox>) -> Router {
    Router::new()
        .route("/api/{op}", post(api_handler))
        .route("/merchants", post(register_handler))
        .route("/pay/{token}", get(page_handler))
        .route("/pay/{token}/confirm", post(confirm_handler))
        .route("/pay/{token}/cancel", post(cancel_handler))
        .with_state(s.clone())
        .merge(super::control::routes(s))
}

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
    let body = s.api(&op, ct, &body).await;
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
    match s.register(&reg.merchant_id, &reg.merchant_public_key, reg.merchant_name).await {
        Ok(pem) => Json(json!({ "merchant_id": reg.merchant_id, "bank_public_key": pem })).into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

fn not_found_page() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!DOCTYPE html><meta charset=utf-8><title>Not found</title><p>支付链接无效 Unknown payment link</p>"),
    )
        .into_response()
}

fn page_failed(e: anyhow::Error) -> Response {
    tracing::error!(error = %e, "the bank sandbox could not use its database");
    (StatusCode::INTERNAL_SERVER_ERROR, Html("<p>系统繁忙 The bank is busy — try again</p>".to_string()))
        .into_response()
}

async fn page_handler(State(s): State<Arc<BankSandbox>>, Path(token): Path<String>) -> Response {
    match s.by_token(&token).await {
        Ok(Some((t, name))) => s.card_page(&t, &name, None).into_response(),
        Ok(None) => not_found_page(),
        Err(e) => page_failed(e),
    }
}

async fn confirm_handler(State(s): State<Arc<BankSandbox>>, Path(token): Path<String>, body: Bytes) -> Response {
    // The form holds the card number: read it here, keep nothing but the outcome.
    let card: String = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "card_number")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let result = {
        let _op = s.op.lock().await;
        match s.by_token(&token).await {
            Ok(Some((t, _))) => s.attempt_card(t, &card).await,
            Ok(None) => return not_found_page(),
            Err(e) => return page_failed(e),
        }
    };
    let result = match result {
        Ok(r) => r,
        Err(e) => return page_failed(e),
    };
    let notice = match &result {
        Ok(CardResult::Paid) | Ok(CardResult::Declined { order_failed: true, .. }) => None,
        Ok(CardResult::Declined { fail_code: "INSUFFICIENT_FUNDS", .. }) => {
            Some("余额不足 Insufficient funds — try another card")
        }
        Ok(CardResult::Declined { .. }) => Some("银行卡被拒绝 Card declined — try another card"),
        Err(PayError::InvalidCard) => Some("卡号无效 Invalid card number"),
        Err(PayError::NotPayable(_)) => None,
    };
    match s.by_token(&token).await {
        Ok(Some((t, name))) => {
            let status = if result.is_err() && notice.is_none() { StatusCode::CONFLICT } else { StatusCode::OK };
            (status, s.card_page(&t, &name, notice)).into_response()
        }
        Ok(None) => not_found_page(),
        Err(e) => page_failed(e),
    }
}

async fn cancel_handler(State(s): State<Arc<BankSandbox>>, Path(token): Path<String>) -> Response {
    let cancelled = {
        let _op = s.op.lock().await;
        match s.by_token(&token).await {
            Ok(Some((mut t, _))) => {
                let ok = t.payer_cancels(now_ms()).is_ok();
                if ok {
                    if let Err(e) = s.save_and_send(&t, Vec::new()).await {
                        return page_failed(e);
                    }
                }
                ok
            }
            Ok(None) => return not_found_page(),
            Err(e) => return page_failed(e),
        }
    };
    match s.by_token(&token).await {
        Ok(Some((t, name))) => {
            let notice = cancelled.then_some("已取消 Cancelled — you may close this page");
            s.card_page(&t, &name, notice).into_response()
        }
        Ok(None) => not_found_page(),
        Err(e) => page_failed(e),
    }
}

#[cfg(test)]
mod tests;
