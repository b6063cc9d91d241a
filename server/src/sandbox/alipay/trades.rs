//! The Alipay sandbox's trades and what each gateway operation does to one (PROTOCOLS.md A.6,
//! A.7). The operations here work on a trade the caller has read from the sandbox's store and
//! writes back afterwards; the notifications they produce are queued once it is written.

use super::wire::{self, Params};
use super::{Core, NAME};
use crate::sandbox::courier::Notice;
use crate::sandbox::store::{StoredTrade, TradeIndex};
use crate::sandbox::FaultSpec;
use clinicpay::money::Money;
use clinicpay::time::{Millis, DAY_MS, MINUTE_MS};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub type Members = Vec<(&'static str, Value)>;
/// Notifications to queue once the trade is saved.
pub type Outbox = Vec<(Notice, FaultSpec)>;

pub const BUYER_ID: &str = "2088102177846880";
pub const BUYER_LOGON_ID: &str = "abc***@sandbox.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Precreated; the buyer has not scanned yet, so Alipay has no trade.
    Unscanned,
    WaitBuyerPay,
    Success,
    Finished,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Qr,
    Page,
    Wap,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refund {
    pub out_request_no: String,
    pub amount: Money,
    pub at_ms: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trade {
    pub app_id: String,
    pub out_trade_no: String,
    pub trade_no: String,
    pub token: String,
    pub subject: String,
    pub total: Money,
    pub kind: Kind,
    pub status: Status,
    /// The buyer opened the cashier (a trade exists at Alipay).
    pub scanned: bool,
    pub expired: bool,
    pub buyer_cancelled: bool,
    pub created_ms: Millis,
    pub paid_ms: Option<Millis>,
    pub closed_ms: Option<Millis>,
    pub expire_ms: Option<Millis>,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub refunds: Vec<Refund>,
    pub faults: FaultSpec,
    /// The signed success notification, as sent (notify_id stable across retries).
    pub success_notice: Option<Params>,
}

impl StoredTrade for Trade {
    fn index(&self) -> TradeIndex<'_> {
        TradeIndex {
            account: &self.app_id,
            out_trade_no: &self.out_trade_no,
            token: &self.token,
            provider_txn_id: Some(&self.trade_no),
            money_from_ms: self.paid_ms,
            money_to_ms: self.refunds.iter().map(|r| r.at_ms).chain(self.paid_ms).max(),
            wake_ms: self.expire_ms.filter(|_| self.can_pay()),
        }
    }
}

impl Trade {
    pub fn status_word(&self) -> &'static str {
        match self.status {
            Status::Unscanned => "WAIT_SCAN",
            Status::WaitBuyerPay => "WAIT_BUYER_PAY",
            Status::Success => "TRADE_SUCCESS",
            Status::Finished => "TRADE_FINISHED",
            Status::Closed => "TRADE_CLOSED",
        }
    }

    pub fn refunded(&self) -> Money {
        Money::sum(self.refunds.iter().map(|r| r.amount)).unwrap_or(Money::ZERO)
    }

    fn exists_at_alipay(&self) -> bool {
        self.scanned
    }

    pub fn can_pay(&self) -> bool {
        matches!(self.status, Status::Unscanned | Status::WaitBuyerPay)
    }

    /// Consumes a pending `fail_next_call`.
    pub fn injected_failure(&mut self) -> bool {
        std::mem::take(&mut self.faults.fail_next_call)
    }
}

pub fn ok(mut members: Members) -> Members {
    let mut out: Members = vec![("code", "10000".into()), ("msg", "Success".into())];
    out.append(&mut members);
    out
}

pub fn fail(code: &str, sub_code: &str, sub_msg: &str) -> Members {
    let msg = match code {
        "20000" => "Service Currently Unavailable",
        "40001" => "Missing Required Arguments",
        "40002" => "Invalid Arguments",
        "40004" => "Business Failed",
        _ => "Failed",
    };
    vec![("code", code.into()), ("msg", msg.into()), ("sub_code", sub_code.into()), ("sub_msg", sub_msg.into())]
}

pub fn biz_fail(sub_code: &str, sub_msg: &str) -> Members {
    fail("40004", sub_code, sub_msg)
}

pub fn system_busy() -> Members {
    fail("20000", "isp.unknow-error", "系统繁忙")
}

pub fn biz_str<'a>(biz: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    biz.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// Digits from the system RNG.
pub fn random_digits(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in crate::crypto::random_bytes::<32>() {
            if b < 250 && out.len() < n {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    out
}

pub fn ymd(ms: Millis) -> String {
    clinicpay::time::to_beijing(ms).map(|t| t.format("%Y%m%d").to_string()).unwrap_or_default()
}

/// `timeout_express`: `90m`, `2h`, `1d`, `1c` (end of today).
pub fn parse_timeout_express(s: &str, now: Millis) -> Option<Millis> {
    let s = s.trim();
    if s == "1c" {
        let today = clinicpay::time::local_date(now)?;
        return Some(clinicpay::time::day_start(today.succ_opt()?));
    }
    let (last, _) = s.char_indices().last()?;
    let (n, unit) = s.split_at(last);
    let n: i64 = n.parse().ok().filter(|n| *n > 0 && *n <= 15 * 24 * 60)?;
    let unit_ms = match unit {
        "m" => MINUTE_MS,
        "h" => 60 * MINUTE_MS,
        "d" => DAY_MS,
        _ => return None,
    };
    Some(now + n * unit_ms)
}

/// `time_expire` / `timeout_express` of a create request; `Err` for unreadable values.
pub fn expiry(biz: &Map<String, Value>, now: Millis) -> Result<Option<Millis>, &'static str> {
    let a = match biz_str(biz, "time_expire") {
        Some(s) => Some(wire::parse_time(s).ok_or("time_expire 格式错误")?),
        None => None,
    };
    let b = match biz_str(biz, "timeout_express") {
        Some(s) => Some(parse_timeout_express(s, now).ok_or("timeout_express 格式错误")?),
        None => None,
    };
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// The validated `total_amount` / `refund_amount` of a request.
pub fn amount(biz: &Map<String, Value>, key: &str) -> Result<Money, String> {
    let v = biz.get(key).ok_or_else(|| format!("缺少 {key}"))?;
    let m = wire::amount(v).ok_or_else(|| format!("{key} 格式错误"))?;
    let max = Money::from_fen(10_000_000_000).unwrap_or(Money::ZERO);
    if !m.is_positive() || m > max {
        return Err(format!("{key} 超出范围 [0.01, 100000000]"));
    }
    Ok(m)
}

pub fn valid_out_trade_no(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_graphic())
}

/// The seller (PID) of an app: `2088` + 12 digits derived from the app id.
pub fn seller_id(app_id: &str) -> String {
    let h = crate::crypto::sha256_hex(app_id.as_bytes());
    let digits: String = h.bytes().map(|b| char::from(b'0' + b % 10)).take(12).collect();
    format!("2088{digits}")
}

/// Alipay counts a notification as received when the body is `success` (A.8). A tolerant
/// match (trimmed, any case) is accepted with a warning.
pub fn alipay_accepted(status: u16, body: &[u8]) -> bool {
    if status != 200 {
        return false;
    }
    let text = String::from_utf8_lossy(body);
    if text == "success" {
        return true;
    }
    if text.trim().eq_ignore_ascii_case("success") {
        tracing::warn!(reply = %text, "merchant answered an Alipay notification with a non-exact \"success\"");
        return true;
    }
    false
}

impl Core {
    /// A signed `trade_status_sync` notification (V1). Never carries empty parameters.
    pub fn notice(&self, t: &Trade, extra: Vec<(&str, String)>, now: Millis) -> Params {
        let notify_id = format!("{}00222{}", ymd(now), random_digits(22));
        let mut p: Vec<(&str, String)> = vec![
            ("gmt_create", wire::fmt_time(t.created_ms)),
            ("charset", "utf-8".into()),
            ("subject", t.subject.clone()),
            ("buyer_id", BUYER_ID.into()),
            ("notify_id", notify_id),
            ("notify_type", "trade_status_sync".into()),
            ("trade_status", t.status_word().into()),
            ("app_id", t.app_id.clone()),
            ("auth_app_id", t.app_id.clone()),
            ("notify_time", wire::fmt_time(now)),
            ("total_amount", t.total.plain()),
            ("seller_id", seller_id(&t.app_id)),
            ("trade_no", t.trade_no.clone()),
            ("out_trade_no", t.out_trade_no.clone()),
            ("version", "1.0".into()),
            ("buyer_logon_id", BUYER_LOGON_ID.into()),
        ];
        if let Some(paid) = t.paid_ms {
            let total = t.total.plain();
            p.push(("gmt_payment", wire::fmt_time(paid)));
            p.push(("receipt_amount", total.clone()));
            p.push(("invoice_amount", total.clone()));
            p.push(("buyer_pay_amount", total.clone()));
            p.push(("point_amount", "0.00".into()));
            p.push(("fund_bill_list", format!(r#"[{{"amount":"{total}","fundChannel":"ALIPAYACCOUNT"}}]"#)));
        }
        p.extend(extra);
        let mut params: Params = p.into_iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.into(), v)).collect();
        wire::sign_v1(&mut params, &self.key);
        params
    }

    fn notify(&self, t: &Trade, params: &Params, out: &mut Outbox) {
        if let Some(url) = t.notify_url.as_deref().filter(|u| !u.is_empty()) {
            let notice = Notice {
                sandbox: NAME,
                label: format!("{} {}", t.status_word(), t.out_trade_no),
                out_trade_no: t.out_trade_no.clone(),
                url: url.to_string(),
                body: wire::encode_form(params).into_bytes(),
                signing: String::new(),
            };
            out.push((notice, t.faults.clone()));
        }
    }

    /// Closes an unpaid trade whose `time_expire` has passed (A.7); notifies if a trade existed.
    pub fn expire_if_due(&self, t: &mut Trade, now: Millis, out: &mut Outbox) {
        if t.can_pay() && t.expire_ms.is_some_and(|e| e <= now) {
            self.close_unpaid(t, now, out);
            t.expired = true;
        }
    }

    fn close_unpaid(&self, t: &mut Trade, now: Millis, out: &mut Outbox) {
        t.status = Status::Closed;
        t.closed_ms = Some(now);
        if t.scanned {
            let p = self.notice(t, vec![("gmt_close", wire::fmt_time(now))], now);
            self.notify(t, &p, out);
        }
    }

    /// The buyer scanned / opened the cashier: the trade now exists.
    pub fn scan_trade(&self, t: &mut Trade, now: Millis, out: &mut Outbox) -> Result<(), String> {
        self.expire_if_due(t, now, out);
        match t.status {
            Status::Unscanned => {
                t.scanned = true;
                t.status = Status::WaitBuyerPay;
                Ok(())
            }
            Status::WaitBuyerPay => Ok(()),
            _ if t.expired => Err("trade expired".into()),
            Status::Closed => Err("trade closed".into()),
            _ => Ok(()),
        }
    }

    /// The buyer pays: TRADE_SUCCESS and the notification.
    pub fn pay_trade(&self, t: &mut Trade, now: Millis, out: &mut Outbox) -> Result<(), String> {
        self.scan_trade(t, now, out)?;
        match t.status {
            Status::WaitBuyerPay => {
                t.status = Status::Success;
                t.paid_ms = Some(now);
                t.buyer_cancelled = false;
                let p = self.notice(t, vec![], now);
                self.notify(t, &p, out);
                t.success_notice = Some(p);
                Ok(())
            }
            Status::Success | Status::Finished => Err("trade already paid".into()),
            _ => Err("trade closed".into()),
        }
    }

    /// The refund window ends: TRADE_FINISHED and its notification.
    pub fn finish_trade(&self, t: &mut Trade, now: Millis, out: &mut Outbox) -> Result<(), String> {
        if t.status != Status::Success {
            return Err(format!("trade is {}, not TRADE_SUCCESS", t.status_word()));
        }
        t.status = Status::Finished;
        let p = self.notice(t, vec![], now);
        self.notify(t, &p, out);
        Ok(())
    }

    /// What precreate / page pay / wap pay ask for, checked; `Err` is a failure node.
    pub fn create_request<'a>(
        &self,
        biz: &'a Map<String, Value>,
        kind: Kind,
        now: Millis,
    ) -> Result<(&'a str, Money, &'a str, Option<Millis>), Members> {
        let out_trade_no =
            biz_str(biz, "out_trade_no").ok_or_else(|| biz_fail("ACQ.INVALID_PARAMETER", "缺少 out_trade_no"))?;
        if !valid_out_trade_no(out_trade_no) {
            return Err(biz_fail("ACQ.INVALID_PARAMETER", "out_trade_no 格式错误"));
        }
        let total = amount(biz, "total_amount").map_err(|m| biz_fail("ACQ.INVALID_PARAMETER", &m))?;
        let subject = biz_str(biz, "subject").ok_or_else(|| biz_fail("ACQ.INVALID_PARAMETER", "缺少 subject"))?;
        let expire_ms = expiry(biz, now).map_err(|m| biz_fail("ACQ.INVALID_PARAMETER", m))?;
        if let Some(code) = biz_str(biz, "product_code") {
            let allowed: &[&str] = match kind {
                Kind::Qr => &["FACE_TO_FACE_PAYMENT", "QR_CODE_OFFLINE"],
                Kind::Page => &["FAST_INSTANT_TRADE_PAY"],
                Kind::Wap => &["QUICK_WAP_WAY", "QUICK_WAP_PAY"],
            };
            if !allowed.contains(&code) {
                return Err(biz_fail("ACQ.INVALID_PARAMETER", "product_code 不合法"));
            }
        }
        Ok((out_trade_no, total, subject, expire_ms))
    }

    /// The same order number asked for again: the existing trade if it may be paid.
    pub fn repeat_create(
        &self,
        t: &mut Trade,
        total: Money,
        notify_url: Option<&str>,
        return_url: Option<&str>,
        now: Millis,
        out: &mut Outbox,
    ) -> Result<(), Members> {
        if t.injected_failure() {
            return Err(system_busy());
        }
        self.expire_if_due(t, now, out);
        match t.status {
            Status::Success | Status::Finished => Err(biz_fail("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")),
            Status::Closed => Err(biz_fail("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")),
            _ if t.total != total => Err(biz_fail("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")),
            _ => {
                if let Some(u) = notify_url {
                    t.notify_url = Some(u.to_string());
                }
                if let Some(u) = return_url {
                    t.return_url = Some(u.to_string());
                }
                Ok(())
            }
        }
    }

    /// A new trade.
    pub fn new_trade(
        &self,
        app_id: &str,
        req: (&str, Money, &str, Option<Millis>),
        kind: Kind,
        notify_url: Option<&str>,
        return_url: Option<&str>,
        faults: FaultSpec,
        now: Millis,
    ) -> Trade {
        let (out_trade_no, total, subject, expire_ms) = req;
        Trade {
            app_id: app_id.to_string(),
            out_trade_no: out_trade_no.to_string(),
            trade_no: format!("{}22001{}", ymd(now), random_digits(15)),
            token: crate::crypto::random_alnum(24),
            subject: subject.chars().take(256).collect(),
            total,
            kind,
            status: if kind == Kind::Qr { Status::Unscanned } else { Status::WaitBuyerPay },
            scanned: kind != Kind::Qr,
            expired: false,
            buyer_cancelled: false,
            created_ms: now,
            paid_ms: None,
            closed_ms: None,
            expire_ms,
            notify_url: notify_url.map(str::to_string),
            return_url: return_url.map(str::to_string),
            refunds: Vec::new(),
            faults,
            success_notice: None,
        }
    }

    pub fn query(&self, t: Option<&mut Trade>, biz: &Map<String, Value>, now: Millis, out: &mut Outbox) -> Members {
        let not_exist = |no: Option<&str>| {
            let mut m = biz_fail("ACQ.TRADE_NOT_EXIST", "交易不存在");
            m.push(("buyer_pay_amount", "0.00".into()));
            m.push(("invoice_amount", "0.00".into()));
            if let Some(no) = no {
                m.push(("out_trade_no", no.to_string().into()));
            }
            m.push(("point_amount", "0.00".into()));
            m.push(("receipt_amount", "0.00".into()));
            m
        };
        if biz_str(biz, "out_trade_no").is_none() && biz_str(biz, "trade_no").is_none() {
            return biz_fail("ACQ.INVALID_PARAMETER", "out_trade_no 和 trade_no 不能同时为空");
        }
        let Some(t) = t else { return not_exist(biz_str(biz, "out_trade_no")) };
        if t.injected_failure() {
            return system_busy();
        }
        self.expire_if_due(t, now, out);
        if !t.exists_at_alipay() {
            return not_exist(Some(&t.out_trade_no));
        }
        let total = t.total.plain();
        let mut m: Members = vec![
            ("trade_no", t.trade_no.clone().into()),
            ("out_trade_no", t.out_trade_no.clone().into()),
            ("buyer_logon_id", BUYER_LOGON_ID.into()),
            ("trade_status", t.status_word().into()),
            ("total_amount", total.clone().into()),
            ("buyer_user_id", BUYER_ID.into()),
        ];
        match t.paid_ms {
            Some(paid) => {
                m.push(("buyer_pay_amount", total.clone().into()));
                m.push(("invoice_amount", total.clone().into()));
                m.push(("point_amount", "0.00".into()));
                m.push(("receipt_amount", total.clone().into()));
                m.push(("send_pay_date", wire::fmt_time(paid).into()));
                m.push(("fund_bill_list", json!([{"amount": total, "fund_channel": "ALIPAYACCOUNT"}])));
            }
            None => {
                m.push(("buyer_pay_amount", "0.00".into()));
                m.push(("invoice_amount", "0.00".into()));
                m.push(("point_amount", "0.00".into()));
                m.push(("receipt_amount", "0.00".into()));
            }
        }
        ok(m)
    }

    pub fn close(&self, t: Option<&mut Trade>, now: Millis, out: &mut Outbox) -> Members {
        let not_exist = || biz_fail("ACQ.TRADE_NOT_EXIST", "交易不存在");
        let Some(t) = t else { return not_exist() };
        if t.injected_failure() {
            return system_busy();
        }
        self.expire_if_due(t, now, out);
        let done = |t: &Trade| {
            ok(vec![("trade_no", t.trade_no.clone().into()), ("out_trade_no", t.out_trade_no.clone().into())])
        };
        match t.status {
            // No trade yet: the close fails, but the code can no longer be paid (A.6 quirk).
            Status::Unscanned => {
                self.close_unpaid(t, now, out);
                not_exist()
            }
            Status::WaitBuyerPay => {
                self.close_unpaid(t, now, out);
                done(t)
            }
            Status::Closed if t.paid_ms.is_none() => {
                if t.scanned {
                    done(t)
                } else {
                    not_exist()
                }
            }
            _ => biz_fail("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"),
        }
    }

    pub fn refund(&self, t: Option<&mut Trade>, biz: &Map<String, Value>, now: Millis, out: &mut Outbox) -> Members {
        let echo = |m: Members, no: &str| {
            let mut m = m;
            m.push(("out_trade_no", no.to_string().into()));
            m.push(("refund_fee", "0.00".into()));
            m.push(("send_back_fee", "0.00".into()));
            m
        };
        let asked_no = biz_str(biz, "out_trade_no").unwrap_or("").to_string();
        let Some(t) = t else {
            return echo(biz_fail("ACQ.TRADE_NOT_EXIST", "交易不存在"), &asked_no);
        };
        if t.injected_failure() {
            return system_busy();
        }
        self.expire_if_due(t, now, out);
        let no = t.out_trade_no.clone();
        let amount = match amount(biz, "refund_amount") {
            Ok(a) => a,
            Err(m) => return echo(biz_fail("ACQ.INVALID_PARAMETER", &m), &no),
        };
        let request_no = biz_str(biz, "out_request_no").map(str::to_string);
        let key_no = request_no.clone().unwrap_or_else(|| t.out_trade_no.clone());
        let answer = |t: &Trade, fund_change: &str, r: &Refund| {
            ok(vec![
                ("trade_no", t.trade_no.clone().into()),
                ("out_trade_no", t.out_trade_no.clone().into()),
                ("buyer_logon_id", BUYER_LOGON_ID.into()),
                ("buyer_user_id", BUYER_ID.into()),
                ("fund_change", fund_change.into()),
                ("refund_fee", t.refunded().plain().into()),
                ("gmt_refund_pay", wire::fmt_time(r.at_ms).into()),
                ("send_back_fee", r.amount.plain().into()),
            ])
        };
        if let Some(r) = t.refunds.iter().find(|r| r.out_request_no == key_no) {
            return if r.amount == amount {
                answer(t, "N", r)
            } else {
                echo(biz_fail("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改"), &no)
            };
        }
        match t.status {
            Status::Success => {}
            Status::Finished => return echo(biz_fail("ACQ.TRADE_HAS_FINISHED", "交易已完结"), &no),
            Status::Closed if t.paid_ms.is_some() => {
                return echo(biz_fail("ACQ.REASON_TRADE_REFUND_FEE_ERR", "退款金额超限"), &no)
            }
            Status::Unscanned => return echo(biz_fail("ACQ.TRADE_NOT_EXIST", "交易不存在"), &no),
            _ => return echo(biz_fail("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"), &no),
        }
        if request_no.is_none() && amount != t.total {
            return echo(biz_fail("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额与订单金额不一致"), &no);
        }
        let remaining = t.total.checked_sub(t.refunded()).unwrap_or(Money::ZERO);
        if amount > remaining {
            return echo(biz_fail("ACQ.REASON_TRADE_REFUND_FEE_ERR", "退款金额超限"), &no);
        }
        let refund = Refund { out_request_no: key_no, amount, at_ms: now };
        t.refunds.push(refund.clone());
        if t.refunded() == t.total {
            t.status = Status::Closed;
            t.closed_ms = Some(now);
            let p = self.notice(
                t,
                vec![
                    ("refund_fee", t.refunded().plain()),
                    ("gmt_refund", format!("{}.{:03}", wire::fmt_time(now), now.rem_euclid(1000))),
                    ("gmt_close", wire::fmt_time(now)),
                    ("out_biz_no", refund.out_request_no.clone()),
                ],
                now,
            );
            self.notify(t, &p, out);
        }
        answer(t, "Y", &refund)
    }

    pub fn refund_query(&self, t: Option<&mut Trade>, biz: &Map<String, Value>) -> Members {
        let Some(t) = t else { return biz_fail("ACQ.TRADE_NOT_EXIST", "交易不存在") };
        if t.injected_failure() {
            return system_busy();
        }
        let request_no = biz_str(biz, "out_request_no").unwrap_or(&t.out_trade_no).to_string();
        match t.refunds.iter().find(|r| r.out_request_no == request_no) {
            // Alipay answers 10000 without refund fields for an unknown request (A.6).
            None => ok(vec![]),
            Some(r) => ok(vec![
                ("trade_no", t.trade_no.clone().into()),
                ("out_trade_no", t.out_trade_no.clone().into()),
                ("out_request_no", r.out_request_no.clone().into()),
                ("total_amount", t.total.plain().into()),
                ("refund_amount", r.amount.plain().into()),
                ("refund_status", "REFUND_SUCCESS".into()),
                ("gmt_refund_pay", wire::fmt_time(r.at_ms).into()),
                ("send_back_fee", r.amount.plain().into()),
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements() {
        assert!(alipay_accepted(200, b"success"));
        assert!(alipay_accepted(200, b" SUCCESS\n"));
        assert!(!alipay_accepted(200, b"fail"));
        assert!(!alipay_accepted(500, b"success"));
        assert!(!alipay_accepted(200, b"<html>success</html>"));
    }

    #[test]
    fn timeouts() {
        let now = wire::parse_time("2024-01-01 12:00:00").unwrap();
        assert_eq!(parse_timeout_express("90m", now), Some(now + 90 * MINUTE_MS));
        assert_eq!(parse_timeout_express("2h", now), Some(now + 120 * MINUTE_MS));
        assert_eq!(parse_timeout_express("1d", now), Some(now + DAY_MS));
        assert_eq!(parse_timeout_express("1c", now), wire::parse_time("2024-01-02 00:00:00"));
        for bad in ["", "m", "0m", "1.5h", "3w", "-1d", "1天"] {
            assert_eq!(parse_timeout_express(bad, now), None, "{bad}");
        }
        assert!(random_digits(40).bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(seller_id("2021000000000001").len(), 16);
    }
}
