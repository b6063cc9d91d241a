//! Merchant-side client of ClinicPay's bank-card gateway (docs/providers/bank.md): signed flat
//! JSON over HTTPS, RSA2 sort-and-sign both ways, a hosted card page the payer opens from a QR.

pub mod wire;

use crate::crypto::{random_alnum, PrivateKey, PublicKey};
use anyhow::{bail, Context};
use async_trait::async_trait;
use clinicpay::money::Money;
use clinicpay::payments::{
    EventKind, Outcome, PayAction, PayMethod, Provider, ProviderCall, ProviderError, ProviderEvent, RawExchange,
    RefundState, RefundStatus, Rejection, TradeState, TradeStatus,
};
use clinicpay::ports::{CreatePayment, Gateway, NotifyReply, RawNotification, RefundRequest, Statement, StatementLine};
use clinicpay::time::Millis;
use wire::{get, Params};

/// A bank-card channel configuration (the merchant private key is kept apart, encrypted).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankSettings {
    pub merchant_id: String,
    /// https://bank.example.com, or {base}/sandbox/bank
    pub api_base: String,
    /// The bank's public key (PEM or bare base64).
    pub bank_public_key: String,
}

pub struct BankClient {
    settings: BankSettings,
    api_base: String,
    key: PrivateKey,
    bank_key: PublicKey,
    http: reqwest::Client,
}

impl std::fmt::Debug for BankClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankClient")
            .field("merchant_id", &self.settings.merchant_id)
            .field("api_base", &self.api_base)
            .finish()
    }
}

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Subjects are 1–128 characters without control characters.
fn clean_subject(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(128).collect()
}

fn fen_to_money(fen: i64) -> Result<Money, String> {
    Money::from_fen(fen).map_err(|e| e.to_string())
}

/// What a call came to before the operation looks at `code`.
type Answer = Result<Params, String>;

/// Maps a non-SUCCESS `code`: the bank's own failure, or "we do not know".
fn not_success<T>(p: &Params) -> Outcome<T> {
    let code = get(p, "code").unwrap_or_default().to_string();
    let message = get(p, "message").unwrap_or_default().to_string();
    match code.as_str() {
        "" => Outcome::Unknown("response without code".into()),
        // the outcome is unknown: the bank failed, or an earlier request with our nonce ran
        "SYSTEM_ERROR" | "REPLAY" => Outcome::Unknown(format!("{code}: {message}")),
        _ => Outcome::Failure(ProviderError { code, sub_code: None, message }),
    }
}

fn require<'a>(p: &'a Params, key: &str) -> Result<&'a str, String> {
    get(p, key).ok_or_else(|| format!("response lacks {key}"))
}

fn require_echo(p: &Params, key: &str, expected: &str) -> Result<(), String> {
    match get(p, key) {
        Some(v) if v == expected => Ok(()),
        Some(v) => Err(format!("response {key} {v:?} is not ours ({expected:?})")),
        None => Err(format!("response lacks {key}")),
    }
}

fn require_fen(p: &Params, key: &str) -> Result<i64, String> {
    wire::parse_fen(require(p, key)?).ok_or_else(|| format!("bad {key}"))
}

fn trade_status(p: &Params, out_trade_no: &str) -> Result<TradeStatus, String> {
    require_echo(p, "out_trade_no", out_trade_no)?;
    let word = require(p, "trade_status")?;
    let amount = fen_to_money(require_fen(p, "amount_fen")?)?;
    let refunded = match get(p, "refunded_fen") {
        Some(v) => wire::parse_fen_or_zero(v).ok_or("bad refunded_fen")?,
        None => 0,
    };
    let (state, txn, paid_at) = match word {
        "WAITING" => (TradeState::Waiting, None, None),
        "SUCCESS" => {
            let txn = require(p, "bank_txn_id")?.to_string();
            let paid = wire::parse_time(require(p, "paid_time")?).ok_or("bad paid_time")?;
            let state = if refunded > 0 { TradeState::Refunded } else { TradeState::Paid };
            (state, Some(txn), Some(paid))
        }
        "CLOSED" => (TradeState::Closed, None, None),
        "FAILED" => (TradeState::Failed, None, None),
        other => return Err(format!("unknown trade_status {other:?}")),
    };
    Ok(TradeStatus {
        out_trade_no: out_trade_no.to_string(),
        state,
        provider_txn_id: txn,
        amount: Some(amount),
        paid_at_ms: paid_at,
        provider_state: word.to_string(),
    })
}

fn refund_status(p: &Params, out_trade_no: &str, out_refund_no: &str) -> Result<RefundStatus, String> {
    require_echo(p, "out_trade_no", out_trade_no)?;
    require_echo(p, "out_refund_no", out_refund_no)?;
    let word = require(p, "refund_status")?;
    let state = match word {
        "REFUND_PROCESSING" => RefundState::Processing,
        "REFUND_SUCCESS" => RefundState::Succeeded,
        "REFUND_FAILED" => RefundState::Failed,
        other => return Err(format!("unknown refund_status {other:?}")),
    };
    Ok(RefundStatus {
        out_trade_no: out_trade_no.to_string(),
        out_refund_no: out_refund_no.to_string(),
        state,
        amount: Some(fen_to_money(require_fen(p, "refund_fen")?)?),
        provider_refund_id: get(p, "bank_refund_id").map(str::to_string),
        provider_state: word.to_string(),
    })
}

fn statement_lines(rows: &[wire::StatementRow]) -> Result<Vec<StatementLine>, String> {
    rows.iter()
        .map(|r| {
            Ok(StatementLine {
                out_trade_no: r.out_trade_no.clone(),
                provider_txn_id: r.bank_txn_id.clone(),
                kind: match r.kind {
                    wire::RowKind::Payment => "payment".into(),
                    wire::RowKind::Refund => "refund".into(),
                },
                amount: fen_to_money(r.amount_fen)?,
                fee: Some(fen_to_money(r.fee_fen)?),
                out_refund_no: (!r.out_refund_no.is_empty()).then(|| r.out_refund_no.clone()),
                occurred_at: wire::time_to_display(&r.time).ok_or("bad time")?,
            })
        })
        .collect()
}

impl BankClient {
    pub fn new(settings: BankSettings, merchant_private_key: &str, http: reqwest::Client) -> anyhow::Result<Self> {
        if !wire::valid_merchant_id(&settings.merchant_id) {
            bail!("bank merchant_id must be 1–32 of [0-9A-Za-z_-]");
        }
        let api_base = settings.api_base.trim().trim_end_matches('/').to_string();
        if !wire::valid_url(&api_base) {
            bail!("bank api_base must be an absolute http(s) URL");
        }
        let key = PrivateKey::parse(merchant_private_key).context("bank merchant private key")?;
        let bank_key = PublicKey::parse(&settings.bank_public_key).context("bank public key")?;
        if key.public_key() == bank_key {
            bail!("the bank public key is the merchant's own key; use the key the bank gave you");
        }
        Ok(BankClient { settings, api_base, key, bank_key, http })
    }

    /// Signs and sends one operation; returns the verified response (any `code`) or why the
    /// outcome is unknown.
    async fn call(&self, op: &str, fields: Vec<(&str, String)>) -> (Answer, RawExchange) {
        let nonce = random_alnum(32);
        let mut p = Params::new();
        for (k, v) in fields {
            if !v.is_empty() {
                p.insert(k.to_string(), v);
            }
        }
        p.insert("merchant_id".into(), self.settings.merchant_id.clone());
        p.insert("timestamp".into(), wire::fmt_time(now_ms()));
        p.insert("nonce".into(), nonce.clone());
        wire::sign(&mut p, &self.key);
        let body = wire::to_json(&p);
        let mut raw = RawExchange {
            operation: op.to_string(),
            request: body.clone(),
            http_status: None,
            response: String::new(),
        };
        let resp = self
            .http
            .post(format!("{}/api/{op}", self.api_base))
            .header("content-type", "application/json; charset=utf-8")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return (Err(format!("transport: {e}")), raw),
        };
        let status = resp.status().as_u16();
        raw.http_status = Some(status);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return (Err(format!("reading the response: {e}")), raw),
        };
        raw.response = String::from_utf8_lossy(&bytes).into_owned();
        let answer = self.check_response(status, &bytes, &nonce);
        if let Err(e) = &answer {
            tracing::warn!(operation = op, error = %e, "bank gateway answer unusable; outcome unknown");
        }
        (answer, raw)
    }

    fn check_response(&self, status: u16, body: &[u8], nonce: &str) -> Answer {
        if status != 200 {
            return Err(format!("HTTP {status}"));
        }
        let p = wire::parse_flat(body)?;
        if !wire::verify(&p, &self.bank_key) {
            return Err("response signature does not verify".into());
        }
        require_echo(&p, "nonce", nonce)?;
        require_echo(&p, "merchant_id", &self.settings.merchant_id)?;
        require(&p, "code")?;
        Ok(p)
    }

    /// Parses, authenticates and checks a notification's account and age (no event mapping).
    fn open_notification(&self, n: &RawNotification, now_ms: Millis) -> Result<Params, Rejection> {
        let media = n.content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media != "application/json" {
            return Err(Rejection::ContentType(n.content_type.chars().take(100).collect()));
        }
        let p = wire::parse_flat(&n.body).map_err(Rejection::Malformed)?;
        let merchant = get(&p, "merchant_id").ok_or_else(|| Rejection::Malformed("no merchant_id".into()))?;
        if merchant != self.settings.merchant_id {
            return Err(Rejection::UnknownAccount(merchant.chars().take(64).collect()));
        }
        if !wire::verify(&p, &self.bank_key) {
            return Err(Rejection::BadSignature);
        }
        let ts = get(&p, "timestamp")
            .and_then(wire::parse_time)
            .ok_or_else(|| Rejection::Malformed("bad or missing timestamp".into()))?;
        if now_ms.abs_diff(ts) > wire::TIME_WINDOW_MS.unsigned_abs() {
            return Err(Rejection::Stale);
        }
        Ok(p)
    }
}

fn malformed(what: &str) -> Rejection {
    Rejection::Malformed(what.to_string())
}

fn field<'a>(p: &'a Params, key: &str) -> Result<&'a str, Rejection> {
    get(p, key).ok_or_else(|| malformed(&format!("missing {key}")))
}

fn amount_field(p: &Params, key: &str) -> Result<Money, Rejection> {
    let fen = wire::parse_fen(field(p, key)?).ok_or_else(|| malformed(&format!("bad {key}")))?;
    Money::from_fen(fen).map_err(|e| malformed(&e.to_string()))
}

#[async_trait]
impl Gateway for BankClient {
    fn provider(&self) -> Provider {
        Provider::Bank
    }

    fn account(&self) -> &str {
        &self.settings.merchant_id
    }

    async fn create_payment(&self, req: &CreatePayment) -> ProviderCall<PayAction> {
        if req.method != PayMethod::BankCard {
            return ProviderCall {
                outcome: Outcome::Failure(ProviderError {
                    code: "UNSUPPORTED_METHOD".into(),
                    sub_code: None,
                    message: format!("the bank gateway does not offer {}", req.method),
                }),
                raw: RawExchange { operation: "create".into(), ..RawExchange::default() },
            };
        }
        let fields = vec![
            ("out_trade_no", req.out_trade_no.clone()),
            ("amount_fen", req.amount.fen().to_string()),
            ("currency", wire::CURRENCY_CNY.to_string()),
            ("subject", clean_subject(&req.subject)),
            ("notify_url", req.notify_url.clone()),
            ("return_url", req.return_url.clone().unwrap_or_default()),
            ("expire_time", wire::fmt_time(req.expires_at_ms)),
        ];
        let (answer, raw) = self.call("create", fields).await;
        let outcome = match answer {
            Err(e) => Outcome::Unknown(e),
            Ok(p) if get(&p, "code") != Some("SUCCESS") => not_success(&p),
            Ok(p) => match require_echo(&p, "out_trade_no", &req.out_trade_no).and_then(|_| require(&p, "pay_url")) {
                Ok(url) if wire::valid_url(url) => Outcome::Success(PayAction::QrCode(url.to_string())),
                Ok(_) => Outcome::Unknown("pay_url is not an http(s) URL".into()),
                Err(e) => Outcome::Unknown(e),
            },
        };
        ProviderCall { outcome, raw }
    }

    async fn query_payment(&self, out_trade_no: &str) -> ProviderCall<TradeStatus> {
        let (answer, raw) = self.call("query", vec![("out_trade_no", out_trade_no.to_string())]).await;
        let outcome = match answer {
            Err(e) => Outcome::Unknown(e),
            Ok(p) => match get(&p, "code") {
                Some("SUCCESS") => match trade_status(&p, out_trade_no) {
                    Ok(s) => Outcome::Success(s),
                    Err(e) => Outcome::Unknown(e),
                },
                Some("ORDER_NOT_EXIST") => Outcome::Success(TradeStatus {
                    out_trade_no: out_trade_no.to_string(),
                    state: TradeState::NotFound,
                    provider_txn_id: None,
                    amount: None,
                    paid_at_ms: None,
                    provider_state: "ORDER_NOT_EXIST".into(),
                }),
                _ => not_success(&p),
            },
        };
        ProviderCall { outcome, raw }
    }

    async fn close_payment(&self, out_trade_no: &str) -> ProviderCall<()> {
        let (answer, raw) = self.call("close", vec![("out_trade_no", out_trade_no.to_string())]).await;
        let outcome = match answer {
            Err(e) => Outcome::Unknown(e),
            Ok(p) if get(&p, "code") != Some("SUCCESS") => not_success(&p),
            Ok(p) => match require_echo(&p, "out_trade_no", out_trade_no) {
                Ok(()) => Outcome::Success(()),
                Err(e) => Outcome::Unknown(e),
            },
        };
        ProviderCall { outcome, raw }
    }

    async fn refund(&self, req: &RefundRequest) -> ProviderCall<RefundStatus> {
        let fields = vec![
            ("out_trade_no", req.out_trade_no.clone()),
            ("out_refund_no", req.out_refund_no.clone()),
            ("refund_fen", req.amount.fen().to_string()),
            ("reason", req.reason.chars().map(|c| if c.is_control() { ' ' } else { c }).take(256).collect()),
            ("notify_url", req.notify_url.clone().unwrap_or_default()),
        ];
        let (answer, raw) = self.call("refund", fields).await;
        let outcome = match answer {
            Err(e) => Outcome::Unknown(e),
            Ok(p) if get(&p, "code") != Some("SUCCESS") => not_success(&p),
            Ok(p) => match refund_status(&p, &req.out_trade_no, &req.out_refund_no) {
                Err(e) => Outcome::Unknown(e),
                Ok(s) if s.amount != Some(req.amount) => {
                    Outcome::Unknown(format!("the bank reports a refund of {:?}, we asked {}", s.amount, req.amount))
                }
                Ok(s) => match s.state {
                    RefundState::Succeeded => Outcome::Success(s),
                    RefundState::Processing => Outcome::Waiting(Some(s)),
                    _ => Outcome::Failure(ProviderError {
                        code: s.provider_state.clone(),
                        sub_code: None,
                        message: get(&p, "message").unwrap_or("refund failed").to_string(),
                    }),
                },
            },
        };
        ProviderCall { outcome, raw }
    }

    async fn query_refund(&self, out_trade_no: &str, out_refund_no: &str) -> ProviderCall<RefundStatus> {
        let fields = vec![("out_trade_no", out_trade_no.to_string()), ("out_refund_no", out_refund_no.to_string())];
        let (answer, raw) = self.call("refund_query", fields).await;
        let outcome = match answer {
            Err(e) => Outcome::Unknown(e),
            Ok(p) => match get(&p, "code") {
                Some("SUCCESS") => match refund_status(&p, out_trade_no, out_refund_no) {
                    Ok(s) => Outcome::Success(s),
                    Err(e) => Outcome::Unknown(e),
                },
                Some("ORDER_NOT_EXIST") => Outcome::Success(RefundStatus {
                    out_trade_no: out_trade_no.to_string(),
                    out_refund_no: out_refund_no.to_string(),
                    state: RefundState::NotFound,
                    amount: None,
                    provider_refund_id: None,
                    provider_state: "ORDER_NOT_EXIST".into(),
                }),
                _ => not_success(&p),
            },
        };
        ProviderCall { outcome, raw }
    }

    fn owns_notification(&self, n: &RawNotification) -> bool {
        wire::parse_flat(&n.body).is_ok_and(|p| get(&p, "merchant_id") == Some(self.settings.merchant_id.as_str()))
    }

    fn verify_notification(&self, n: &RawNotification, now_ms: Millis) -> Result<ProviderEvent, Rejection> {
        let p = self.open_notification(n, now_ms)?;
        let notify_id = field(&p, "notify_id")?;
        if !wire::valid_bank_id(notify_id) {
            return Err(malformed("bad notify_id"));
        }
        let event = field(&p, "event")?;
        let out_trade_no = field(&p, "out_trade_no")?;
        if !wire::valid_out_no(out_trade_no) {
            return Err(malformed("bad out_trade_no"));
        }
        let money_event = matches!(event, "PAYMENT_SUCCESS" | "REFUND_SUCCESS");
        match get(&p, "currency") {
            Some(wire::CURRENCY_CNY) => {}
            Some(other) => return Err(Rejection::Currency(other.chars().take(16).collect())),
            None if money_event => return Err(malformed("missing currency")),
            None => {}
        }
        let kind = match event {
            "PAYMENT_SUCCESS" => EventKind::PaymentSucceeded {
                out_trade_no: out_trade_no.to_string(),
                provider_txn_id: field(&p, "bank_txn_id")?.to_string(),
                amount: amount_field(&p, "amount_fen")?,
                paid_at_ms: Some(wire::parse_time(field(&p, "paid_time")?).ok_or_else(|| malformed("bad paid_time"))?),
                payer: get(&p, "card_last4").map(|l| format!("****{l}")),
            },
            "REFUND_SUCCESS" => {
                let out_refund_no = field(&p, "out_refund_no")?;
                if !wire::valid_out_no(out_refund_no) {
                    return Err(malformed("bad out_refund_no"));
                }
                EventKind::RefundSucceeded {
                    out_trade_no: out_trade_no.to_string(),
                    out_refund_no: out_refund_no.to_string(),
                    amount: amount_field(&p, "refund_fen")?,
                }
            }
            // a declined card: the order stays payable; the counter is told what happened
            "PAYMENT_FAILED" => EventKind::PaymentAttemptFailed {
                out_trade_no: out_trade_no.to_string(),
                code: clinicpay::checkout::PayerNote::clean_code(get(&p, "fail_code").unwrap_or("UNKNOWN")),
            },
            // an event this client does not know yet, which the bank signed all the same
            other => EventKind::Informational {
                out_trade_no: out_trade_no.to_string(),
                provider_state: other.chars().take(64).collect(),
            },
        };
        Ok(ProviderEvent {
            provider: Provider::Bank,
            event_id: notify_id.to_string(),
            account: self.settings.merchant_id.clone(),
            kind,
        })
    }

    fn notify_reply(&self, accepted: bool) -> NotifyReply {
        notify_reply(accepted)
    }

    async fn download_statement(&self, date: chrono::NaiveDate) -> ProviderCall<Statement> {
        let bill_date = wire::fmt_date(date);
        let (answer, raw) = self.call("statement", vec![("bill_date", bill_date.clone())]).await;
        let outcome = match answer {
            Err(e) => Outcome::Unknown(e),
            Ok(p) if get(&p, "code") != Some("SUCCESS") => not_success(&p),
            Ok(p) => {
                let parsed = require_echo(&p, "bill_date", &bill_date)
                    .and_then(|_| p.get("csv").ok_or_else(|| "response lacks csv".to_string()))
                    .and_then(|csv| Ok((csv, wire::parse_statement(csv)?)))
                    .and_then(|(csv, rows)| Ok((csv, statement_lines(&rows)?)));
                match parsed {
                    Ok((csv, lines)) => Outcome::Success(Statement { date, lines, raw: csv.as_bytes().to_vec() }),
                    Err(e) => Outcome::Unknown(format!("statement: {e}")),
                }
            }
        };
        ProviderCall { outcome, raw }
    }
}

/// The bank gateway's notification answer (docs/providers/bank.md): `{"code":"SUCCESS"}` stops
/// its retries.
pub fn notify_reply(accepted: bool) -> NotifyReply {
    if accepted {
        NotifyReply { status: 200, content_type: "application/json", body: br#"{"code":"SUCCESS"}"#.to_vec() }
    } else {
        NotifyReply { status: 500, content_type: "application/json", body: br#"{"code":"FAIL"}"#.to_vec() }
    }
}

/// What `/notify/bank` keeps of a request (the JSON body carries everything signed).
pub fn notification_profile() -> clinicpay::ports::NotificationProfile {
    clinicpay::ports::NotificationProfile {
        kept_headers: &["content-type", "user-agent"],
        failure_reply: notify_reply(false),
    }
}

#[cfg(test)]
mod tests;
