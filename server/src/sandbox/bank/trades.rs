//! The bank sandbox's orders and what each operation does to one (docs/providers/bank.md 4–5).
//! The functions here change an order the caller read from the sandbox's store; the caller
//! writes it back and then queues the notifications they returned.

use super::wire::{self, Msg};
use super::NAME;
use crate::crypto::random_alnum;
use crate::sandbox::courier::Notice;
use crate::sandbox::store::{StoredTrade, TradeIndex};
use crate::sandbox::FaultSpec;
use clinicpay::money::Money;
use clinicpay::time::Millis;
use serde::{Deserialize, Serialize};

/// Declines after which an order fails for good (4.2).
pub const MAX_DECLINES: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Waiting,
    Success,
    Closed,
    Failed,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Waiting => "WAITING",
            Status::Success => "SUCCESS",
            Status::Closed => "CLOSED",
            Status::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refund {
    pub out_refund_no: String,
    pub bank_refund_id: String,
    pub refund_fen: i64,
    pub notify_url: String,
    /// When the money arrives (the refund is `REFUND_PROCESSING` until then).
    pub due_ms: Millis,
    pub done_ms: Option<Millis>,
}

impl Refund {
    pub fn status_word(&self) -> &'static str {
        if self.done_ms.is_some() {
            "REFUND_SUCCESS"
        } else {
            "REFUND_PROCESSING"
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trade {
    pub merchant_id: String,
    pub out_trade_no: String,
    pub bank_order_id: String,
    pub amount_fen: i64,
    pub subject: String,
    pub notify_url: String,
    pub return_url: Option<String>,
    pub expire_time: String,
    pub expire_ms: Millis,
    pub token: String,
    pub status: Status,
    pub declines: u32,
    pub fail_code: Option<String>,
    /// What the last card attempt did (`PAID`, `CARD_DECLINED`, …), for the control API.
    pub last_result: Option<String>,
    pub bank_txn_id: Option<String>,
    pub paid_ms: Option<Millis>,
    pub card_last4: Option<String>,
    /// The `PAYMENT_SUCCESS` event's id, the same on every retry.
    pub payment_notify_id: Option<String>,
    pub refunds: Vec<Refund>,
    pub faults: FaultSpec,
}

impl StoredTrade for Trade {
    fn index(&self) -> TradeIndex<'_> {
        let refunding = self.refunds.iter().filter(|r| r.done_ms.is_none()).map(|r| r.due_ms).min();
        let expiring = (self.status == Status::Waiting).then_some(self.expire_ms);
        TradeIndex {
            account: &self.merchant_id,
            out_trade_no: &self.out_trade_no,
            token: &self.token,
            provider_txn_id: self.bank_txn_id.as_deref(),
            money_from_ms: self.paid_ms,
            money_to_ms: self.refunds.iter().filter_map(|r| r.done_ms).chain(self.paid_ms).max(),
            wake_ms: [refunding, expiring].into_iter().flatten().min(),
        }
    }
}

/// A fresh bank-side id: prefix, Beijing time, random tail (unique across restarts).
pub fn bank_id(prefix: &str, now: Millis) -> String {
    format!("{prefix}{}{}", wire::time(now), random_alnum(8))
}

/// A refusal: the response `code` and `message`.
#[derive(Debug)]
pub struct Refusal(pub &'static str, pub String);

pub fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal(code, message.into())
}

pub fn bad_param(message: impl Into<String>) -> Refusal {
    refuse("PARAM_ERROR", message)
}

/// The fields of an answer (empty values left out).
pub fn fields(pairs: &[(&str, String)]) -> Msg {
    pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// What a card attempt did.
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
    InvalidCard,
    NotPayable(&'static str),
}

impl std::fmt::Display for PayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayError::InvalidCard => f.write_str("invalid card number"),
            PayError::NotPayable(s) => write!(f, "the order is {s} and cannot be paid"),
        }
    }
}

impl std::error::Error for PayError {}

/// The parameters of a `create` (4.1), checked.
pub struct CreateRequest<'a> {
    pub amount_fen: i64,
    pub subject: &'a str,
    pub notify_url: &'a str,
    pub return_url: Option<&'a str>,
    pub expire_time: &'a str,
    pub expire_ms: Millis,
}

/// Latest `expire_time` accepted, from now.
const MAX_EXPIRY_MS: Millis = 30 * 24 * 3_600_000;

pub fn create_request(req: &Msg, now: Millis) -> Result<CreateRequest<'_>, Refusal> {
    let amount_fen = wire::field(req, "amount_fen")
        .and_then(wire::read_amount)
        .ok_or_else(|| bad_param("amount_fen must be a positive integer number of fen"))?;
    if wire::field(req, "currency") != Some(wire::CNY) {
        return Err(bad_param("currency must be 156"));
    }
    let subject = wire::field(req, "subject").unwrap_or_default();
    if !wire::text_ok(subject, 1, 128) || subject.trim().is_empty() {
        return Err(bad_param("subject must be 1–128 characters without control characters"));
    }
    let notify_url = wire::field(req, "notify_url").ok_or_else(|| bad_param("missing notify_url"))?;
    if !wire::url_ok(notify_url) {
        return Err(bad_param("notify_url must be an absolute http(s) URL"));
    }
    let return_url = wire::field(req, "return_url");
    if return_url.is_some_and(|u| !wire::url_ok(u)) {
        return Err(bad_param("return_url must be an absolute http(s) URL"));
    }
    let expire_time = wire::field(req, "expire_time").ok_or_else(|| bad_param("missing expire_time"))?;
    let expire_ms = wire::read_time(expire_time).ok_or_else(|| bad_param("expire_time must be yyyyMMddHHmmss"))?;
    if expire_ms <= now || expire_ms - now > MAX_EXPIRY_MS {
        return Err(bad_param("expire_time must be in the future and at most 30 days away"));
    }
    Ok(CreateRequest { amount_fen, subject, notify_url, return_url, expire_time, expire_ms })
}

impl Trade {
    pub fn new(merchant_id: &str, out_trade_no: &str, r: &CreateRequest<'_>, faults: FaultSpec, now: Millis) -> Trade {
        Trade {
            merchant_id: merchant_id.to_string(),
            out_trade_no: out_trade_no.to_string(),
            bank_order_id: bank_id("BO", now),
            amount_fen: r.amount_fen,
            subject: r.subject.to_string(),
            notify_url: r.notify_url.to_string(),
            return_url: r.return_url.map(str::to_string),
            expire_time: r.expire_time.to_string(),
            expire_ms: r.expire_ms,
            token: random_alnum(24),
            status: Status::Waiting,
            declines: 0,
            fail_code: None,
            last_result: None,
            bank_txn_id: None,
            paid_ms: None,
            card_last4: None,
            payment_notify_id: None,
            refunds: Vec::new(),
            faults,
        }
    }

    /// An unpaid order closes itself at `expire_time`.
    pub fn refresh(&mut self, now: Millis) {
        if self.status == Status::Waiting && now >= self.expire_ms {
            self.status = Status::Closed;
        }
    }

    pub fn amount(&self) -> Money {
        Money::from_fen(self.amount_fen).unwrap_or(Money::ZERO)
    }

    /// Accepted refunds, processing or done (`refunded_fen` of query and refund).
    pub fn accepted_fen(&self) -> i64 {
        self.refunds.iter().map(|r| r.refund_fen).sum()
    }

    fn completed_fen(&self) -> i64 {
        self.refunds.iter().filter(|r| r.done_ms.is_some()).map(|r| r.refund_fen).sum()
    }

    /// `create` again for this order number (4.1's idempotency).
    pub fn repeat_create(&self, r: &CreateRequest<'_>, pay_url: &str) -> Result<Msg, Refusal> {
        match self.status {
            Status::Waiting
                if self.amount_fen == r.amount_fen
                    && self.subject == r.subject
                    && self.notify_url == r.notify_url
                    && self.return_url.as_deref() == r.return_url
                    && self.expire_time == r.expire_time =>
            {
                Ok(self.created(pay_url))
            }
            Status::Waiting => Err(refuse("DUPLICATE_ORDER", "out_trade_no exists with other parameters")),
            Status::Success => Err(refuse("ORDER_PAID", "the order is paid")),
            Status::Closed | Status::Failed => Err(refuse("ORDER_CLOSED", "the order is closed")),
        }
    }

    pub fn created(&self, pay_url: &str) -> Msg {
        fields(&[
            ("out_trade_no", self.out_trade_no.clone()),
            ("bank_order_id", self.bank_order_id.clone()),
            ("amount_fen", self.amount_fen.to_string()),
            ("expire_time", self.expire_time.clone()),
            ("pay_url", pay_url.to_string()),
        ])
    }

    /// 4.2.
    pub fn query(&self) -> Msg {
        let mut m = fields(&[
            ("out_trade_no", self.out_trade_no.clone()),
            ("bank_order_id", self.bank_order_id.clone()),
            ("amount_fen", self.amount_fen.to_string()),
            ("currency", wire::CNY.to_string()),
            ("trade_status", self.status.word().to_string()),
            ("refunded_fen", self.accepted_fen().to_string()),
        ]);
        match self.status {
            Status::Success => m.extend(fields(&[
                ("bank_txn_id", self.bank_txn_id.clone().unwrap_or_default()),
                ("paid_time", self.paid_ms.map(wire::time).unwrap_or_default()),
                ("card_last4", self.card_last4.clone().unwrap_or_default()),
            ])),
            Status::Failed => {
                m.extend(fields(&[("fail_code", self.fail_code.clone().unwrap_or_else(|| "CARD_DECLINED".into()))]))
            }
            _ => {}
        }
        m
    }

    /// 4.3.
    pub fn close(&mut self) -> Result<Msg, Refusal> {
        match self.status {
            Status::Waiting | Status::Closed => {
                self.status = Status::Closed;
                Ok(fields(&[("out_trade_no", self.out_trade_no.clone()), ("trade_status", "CLOSED".into())]))
            }
            Status::Success => Err(refuse("ORDER_PAID", "the order is paid; refund it instead")),
            Status::Failed => Err(refuse("ORDER_CLOSED", "the order has failed")),
        }
    }

    fn refund_answer(&self, r: &Refund) -> Msg {
        fields(&[
            ("out_trade_no", self.out_trade_no.clone()),
            ("out_refund_no", r.out_refund_no.clone()),
            ("bank_refund_id", r.bank_refund_id.clone()),
            ("refund_fen", r.refund_fen.to_string()),
            ("refund_status", r.status_word().to_string()),
            ("refunded_fen", self.accepted_fen().to_string()),
            ("refund_time", r.done_ms.map(wire::time).unwrap_or_default()),
        ])
    }

    /// 4.4: accepts a refund (completing at `due_ms`), or answers a repeated one.
    pub fn refund(&mut self, req: &Msg, now: Millis, due_ms: Millis) -> Result<Msg, Refusal> {
        let out_refund_no = wire::field(req, "out_refund_no").ok_or_else(|| bad_param("missing out_refund_no"))?;
        if !wire::order_no_ok(out_refund_no) {
            return Err(bad_param("out_refund_no must be 1–64 of [0-9A-Za-z_-]"));
        }
        let refund_fen = wire::field(req, "refund_fen")
            .and_then(wire::read_amount)
            .ok_or_else(|| bad_param("refund_fen must be a positive integer number of fen"))?;
        if !wire::text_ok(wire::field(req, "reason").unwrap_or_default(), 0, 256) {
            return Err(bad_param("reason must be at most 256 characters without control characters"));
        }
        let notify_url = wire::field(req, "notify_url");
        if notify_url.is_some_and(|u| !wire::url_ok(u)) {
            return Err(bad_param("notify_url must be an absolute http(s) URL"));
        }
        match self.status {
            Status::Success => {}
            Status::Waiting => return Err(bad_param("the order is not paid")),
            Status::Closed | Status::Failed => return Err(refuse("ORDER_CLOSED", "the order is closed")),
        }
        if let Some(r) = self.refunds.iter().find(|r| r.out_refund_no == out_refund_no) {
            if r.refund_fen != refund_fen {
                return Err(bad_param("out_refund_no already used with another refund_fen"));
            }
            return Ok(self.refund_answer(r));
        }
        if self.accepted_fen() + refund_fen > self.amount_fen {
            return Err(refuse("REFUND_EXCEEDS", "refunds would exceed the paid amount"));
        }
        let r = Refund {
            out_refund_no: out_refund_no.to_string(),
            bank_refund_id: bank_id("BR", now),
            refund_fen,
            notify_url: notify_url.unwrap_or(&self.notify_url).to_string(),
            due_ms,
            done_ms: None,
        };
        let answer = {
            self.refunds.push(r);
            self.refund_answer(self.refunds.last().expect("just pushed"))
        };
        Ok(answer)
    }

    /// 4.5.
    pub fn refund_query(&self, req: &Msg) -> Result<Msg, Refusal> {
        let no = wire::field(req, "out_refund_no").ok_or_else(|| bad_param("missing out_refund_no"))?;
        let r = self
            .refunds
            .iter()
            .find(|r| r.out_refund_no == no)
            .ok_or_else(|| refuse("ORDER_NOT_EXIST", "no such refund of this order"))?;
        Ok(self.refund_answer(r))
    }

    /// One card typed on the page (or sent through the control API).
    pub fn attempt_card(&mut self, typed: &str, now: Millis, out: &mut Vec<Notice>) -> Result<CardResult, PayError> {
        self.refresh(now);
        if self.status != Status::Waiting {
            return Err(PayError::NotPayable(self.status.word()));
        }
        let result = match wire::card(typed) {
            wire::Card::Invalid => return Err(PayError::InvalidCard),
            wire::Card::Pays { last4 } => {
                self.status = Status::Success;
                self.bank_txn_id = Some(bank_id("BT", now));
                self.paid_ms = Some(now);
                self.card_last4 = Some(last4);
                self.payment_notify_id = Some(bank_id("BN", now));
                if let Some(m) = self.payment_success() {
                    out.push(self.notice(&self.notify_url, m));
                }
                CardResult::Paid
            }
            wire::Card::Declined { last4, fail_code, reason } => {
                self.declines += 1;
                let order_failed = self.declines >= MAX_DECLINES;
                if order_failed {
                    self.status = Status::Failed;
                    self.fail_code = Some(fail_code.to_string());
                }
                let mut m = self.event(&bank_id("BN", now), "PAYMENT_FAILED");
                m.extend(fields(&[
                    ("fail_code", fail_code.to_string()),
                    ("fail_reason", reason.to_string()),
                    ("card_last4", last4),
                ]));
                out.push(self.notice(&self.notify_url, m));
                CardResult::Declined { fail_code, order_failed }
            }
        };
        self.last_result = Some(result.word().to_string());
        Ok(result)
    }

    /// The payer cancels on the card page: the order closes (4.2).
    pub fn payer_cancels(&mut self, now: Millis) -> Result<(), PayError> {
        self.refresh(now);
        if self.status != Status::Waiting {
            return Err(PayError::NotPayable(self.status.word()));
        }
        self.status = Status::Closed;
        Ok(())
    }

    /// Refunds whose money has arrived: `REFUND_SUCCESS`, notified (section 5).
    pub fn complete_refunds(&mut self, now: Millis, out: &mut Vec<Notice>) {
        let due: Vec<usize> = (0..self.refunds.len())
            .filter(|&i| self.refunds[i].done_ms.is_none() && self.refunds[i].due_ms <= now)
            .collect();
        for i in due {
            self.refunds[i].done_ms = Some(now);
            let r = self.refunds[i].clone();
            let mut m = self.event(&bank_id("BN", now), "REFUND_SUCCESS");
            m.extend(fields(&[
                ("out_refund_no", r.out_refund_no.clone()),
                ("bank_refund_id", r.bank_refund_id.clone()),
                ("refund_fen", r.refund_fen.to_string()),
                ("refund_time", wire::time(now)),
                ("refunded_fen", self.completed_fen().to_string()),
            ]));
            out.push(self.notice(&r.notify_url, m));
        }
    }

    /// The order's fields every notification carries.
    fn event(&self, notify_id: &str, event: &str) -> Msg {
        fields(&[
            ("notify_id", notify_id.to_string()),
            ("event", event.to_string()),
            ("merchant_id", self.merchant_id.clone()),
            ("out_trade_no", self.out_trade_no.clone()),
            ("bank_order_id", self.bank_order_id.clone()),
            ("amount_fen", self.amount_fen.to_string()),
            ("currency", wire::CNY.to_string()),
            ("trade_status", self.status.word().to_string()),
        ])
    }

    /// The `PAYMENT_SUCCESS` event of a paid order (its id stable), before stamping and signing.
    pub fn payment_success(&self) -> Option<Msg> {
        let mut m = self.event(self.payment_notify_id.as_deref()?, "PAYMENT_SUCCESS");
        m.insert("trade_status".into(), Status::Success.word().into());
        m.extend(fields(&[
            ("bank_txn_id", self.bank_txn_id.clone()?),
            ("paid_time", wire::time(self.paid_ms?)),
            ("card_last4", self.card_last4.clone()?),
        ]));
        Some(m)
    }

    /// A notification to queue: the unsigned event; each attempt is stamped and signed.
    fn notice(&self, url: &str, m: Msg) -> Notice {
        let event = m.get("event").cloned().unwrap_or_default();
        Notice {
            sandbox: NAME,
            label: format!("{event} {}", self.out_trade_no),
            out_trade_no: self.out_trade_no.clone(),
            url: url.to_string(),
            body: wire::write_message(&m).into_bytes(),
            signing: String::new(),
        }
    }
}
