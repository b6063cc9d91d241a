//! Read models: what lists and detail pages show, and the validated queries behind them. They are
//! produced by the store and sent to the browser as they are (serde), so they hold no secrets.

use crate::auth::Role;
use crate::billing::{BillItem, BillStatus};
use crate::ids::{BillId, ChannelId, NotificationId, PatientId, PaymentId, SessionId, UserId};
use crate::money::Money;
use crate::payments::{NotificationStatus, Provider};
use crate::time::{day_start, parse_date, Millis, DAY_MS};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
}

impl<T> Page<T> {
    pub fn pages(&self) -> i64 {
        if self.total == 0 {
            1
        } else {
            (self.total + self.page_size - 1) / self.page_size
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{field}: {message}")]
pub struct QueryError {
    pub field: String,
    pub message: String,
}

fn qerr(field: &str, message: impl Into<String>) -> QueryError {
    QueryError { field: field.to_string(), message: message.into() }
}

pub const MAX_PAGE: i64 = 100_000;

/// Parses a 1-based page number from a URL.
pub fn parse_page(s: Option<&str>) -> Result<i64, QueryError> {
    match s.map(str::trim) {
        None | Some("") => Ok(1),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(qerr("page", format!("must be a whole number from 1 to {MAX_PAGE}"))),
        },
    }
}

pub fn parse_page_size(s: Option<&str>, default: i64) -> Result<i64, QueryError> {
    match s.map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (5..=100).contains(&n) => Ok(n),
            _ => Err(qerr("page_size", "must be a whole number from 5 to 100")),
        },
    }
}

/// Free-text search: trimmed, at most 64 characters, no control characters.
pub fn parse_search(s: Option<&str>) -> Result<Option<String>, QueryError> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > 64 => Err(qerr("q", "at most 64 characters")),
        Some(v) if v.chars().any(char::is_control) => Err(qerr("q", "contains control characters")),
        Some(v) => Ok(Some(v.to_string())),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillSort {
    Created,
    Amount,
    BillNo,
    Patient,
}

impl BillSort {
    pub fn as_str(self) -> &'static str {
        match self {
            BillSort::Created => "created",
            BillSort::Amount => "amount",
            BillSort::BillNo => "bill_no",
            BillSort::Patient => "patient",
        }
    }
    pub fn parse(s: &str) -> Option<BillSort> {
        [BillSort::Created, BillSort::Amount, BillSort::BillNo, BillSort::Patient].into_iter().find(|x| x.as_str() == s)
    }
}

/// The bills list query (B2): search, status, date range, paging, sorting. Built only through
/// [`BillQuery::parse`], so the store never sees an unchecked value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillQuery {
    pub q: Option<String>,
    pub status: Option<BillStatus>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub sort: BillSort,
    pub desc: bool,
    pub page: i64,
    pub page_size: i64,
}

impl Default for BillQuery {
    fn default() -> Self {
        BillQuery {
            q: None,
            status: None,
            from: None,
            to: None,
            sort: BillSort::Created,
            desc: true,
            page: 1,
            page_size: 20,
        }
    }
}

/// Raw bill-list parameters as they come from a URL or a form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillParams {
    pub q: Option<String>,
    pub status: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub sort: Option<String>,
    pub dir: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
}

impl BillQuery {
    pub fn parse(p: &BillParams) -> Result<BillQuery, QueryError> {
        let q = parse_search(p.q.as_deref())?;
        let status = match p.status.as_deref().map(str::trim) {
            None | Some("") | Some("all") => None,
            Some(s) => Some(BillStatus::parse(s).ok_or_else(|| qerr("status", format!("unknown status {s:?}")))?),
        };
        let date = |field: &str, v: &Option<String>| -> Result<Option<String>, QueryError> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(s) => parse_date(s)
                    .map(|d| Some(d.format("%Y-%m-%d").to_string()))
                    .ok_or_else(|| qerr(field, "must be a date written yyyy-mm-dd")),
            }
        };
        let from = date("from", &p.from)?;
        let to = date("to", &p.to)?;
        if let (Some(f), Some(t)) = (&from, &to) {
            if f > t {
                return Err(qerr("to", "the end date is before the start date"));
            }
        }
        let sort = match p.sort.as_deref().map(str::trim) {
            None | Some("") => BillSort::Created,
            Some(s) => BillSort::parse(s).ok_or_else(|| qerr("sort", format!("unknown sort key {s:?}")))?,
        };
        let desc = match p.dir.as_deref().map(str::trim) {
            None | Some("") | Some("desc") => true,
            Some("asc") => false,
            Some(_) => return Err(qerr("dir", "must be asc or desc")),
        };
        Ok(BillQuery {
            q,
            status,
            from,
            to,
            sort,
            desc,
            page: parse_page(p.page.as_deref())?,
            page_size: parse_page_size(p.page_size.as_deref(), 20)?,
        })
    }

    /// Inclusive start and exclusive end, in ms, of the hospital-local date range.
    pub fn range_ms(&self) -> (Option<Millis>, Option<Millis>) {
        let f = self.from.as_deref().and_then(parse_date).map(day_start);
        let t = self.to.as_deref().and_then(parse_date).map(|d| day_start(d) + DAY_MS);
        (f, t)
    }

    pub fn to_params(&self) -> BillParams {
        BillParams {
            q: self.q.clone(),
            status: self.status.map(|s| s.as_str().to_string()),
            from: self.from.clone(),
            to: self.to.clone(),
            sort: Some(self.sort.as_str().to_string()),
            dir: Some(if self.desc { "desc" } else { "asc" }.to_string()),
            page: Some(self.page.to_string()),
            page_size: Some(self.page_size.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillSummary {
    pub id: BillId,
    pub bill_no: String,
    pub patient_id: PatientId,
    pub patient_name: String,
    pub mrn: String,
    pub department_zh: String,
    pub department_en: String,
    pub total: Money,
    pub status: BillStatus,
    pub created_at_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLine {
    pub id: PaymentId,
    pub session_id: SessionId,
    pub provider: Provider,
    pub provider_txn_id: String,
    pub amount: Money,
    pub paid_at_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillDetail {
    pub bill: BillSummary,
    pub items: Vec<BillItem>,
    pub refunded: Money,
    pub paid_at_ms: Option<Millis>,
    pub payments: Vec<PaymentLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientSummary {
    pub id: PatientId,
    pub mrn: String,
    pub name: String,
    pub gender: String,
    /// Masked for lists: `138****5678`.
    pub phone_masked: String,
    pub unpaid_count: i64,
    pub unpaid_total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientDetail {
    pub patient: PatientSummary,
    pub birth_date: Option<String>,
    pub bills: Vec<BillSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentPayment {
    pub session_id: SessionId,
    pub patient_name: String,
    pub provider: Provider,
    pub amount: Money,
    pub bills: i64,
    pub paid_at_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    pub today: String,
    pub today_takings: Money,
    pub today_payments: i64,
    /// Today's takings per channel (finance's home).
    pub by_channel: Vec<ChannelTakings>,
    /// Payment exceptions a person still has to decide (open, held, refund pending).
    pub open_exceptions: i64,
    pub unpaid_count: i64,
    pub unpaid_total: Money,
    pub recent_bills: Vec<BillSummary>,
    pub recent_payments: Vec<RecentPayment>,
}

/// What one channel took today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTakings {
    pub provider: Provider,
    /// Paid payment sessions.
    pub payments: i64,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntryView {
    pub seq: i64,
    pub at_ms: Millis,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub hash: String,
    /// The address the action came from (empty for the system).
    pub ip: String,
}

/// An audit search as a form or URL sends it (all text; empty means any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditSearch {
    pub who: String,
    pub action: String,
    pub target: String,
    /// `yyyy-mm-dd`, Beijing time, inclusive.
    pub from: String,
    /// `yyyy-mm-dd`, Beijing time, inclusive.
    pub to: String,
    /// The page: lines older than this sequence number.
    pub before: String,
}

/// One page of an audit search, with the whole chain's check (S3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPageView {
    pub entries: Vec<AuditEntryView>,
    /// `before` for the next (older) page, when there is one.
    pub older: Option<i64>,
    /// Every action code in the log, for the search form.
    pub actions: Vec<String>,
    /// Lines in the whole log, and the first whose hash does not chain (none: intact).
    pub chain_entries: i64,
    pub chain_broken_at: Option<i64>,
}

/// A payment channel configuration as the admin page shows it: secrets masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelView {
    pub id: ChannelId,
    pub provider: Provider,
    pub name: String,
    pub account: String,
    pub is_default: bool,
    pub enabled: bool,
    pub sandbox: bool,
    /// The non-secret settings as JSON text.
    pub settings: String,
    /// e.g. `RSA 2048 · SHA-256 a1b2…` — enough to recognise a key, never the key.
    pub private_key_mask: String,
    pub apiv3_key_mask: Option<String>,
    pub key_version: i64,
    pub version: i64,
    pub updated_at_ms: Millis,
}

/// What "test connection" found for a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTestView {
    pub ok: bool,
    /// `ok`, `signature_refused`, `provider_refused` or `no_answer`.
    pub code: String,
    /// The provider's own code, when it gave one.
    pub provider_code: Option<String>,
    /// What happened, in English (the page words each code itself).
    pub message: String,
    pub at_ms: Millis,
}

/// A stored provider notification, for the notifications page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationView {
    pub id: NotificationId,
    pub provider: Provider,
    pub received_at_ms: Millis,
    pub status: NotificationStatus,
    pub reason: Option<String>,
    pub event_id: Option<String>,
    pub out_trade_no: Option<String>,
    pub remote_addr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BillParams {
        let mut p = BillParams::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "q" => p.q = v,
                "status" => p.status = v,
                "from" => p.from = v,
                "to" => p.to = v,
                "sort" => p.sort = v,
                "dir" => p.dir = v,
                "page" => p.page = v,
                "page_size" => p.page_size = v,
                _ => unreachable!(),
            }
        }
        p
    }

    #[test]
    fn parses_good_queries() {
        let q = BillQuery::parse(&params(&[
            ("q", " 王 "),
            ("status", "unpaid"),
            ("page", "3"),
            ("sort", "amount"),
            ("dir", "asc"),
        ]))
        .unwrap();
        assert_eq!(q.q.as_deref(), Some("王"));
        assert_eq!(q.status, Some(BillStatus::Unpaid));
        assert_eq!(q.page, 3);
        assert_eq!(q.sort, BillSort::Amount);
        assert!(!q.desc);
        assert_eq!(BillQuery::parse(&BillParams::default()).unwrap(), BillQuery::default());
        assert_eq!(BillQuery::parse(&q.to_params()).unwrap(), q);
    }

    #[test]
    fn rejects_bad_queries() {
        for (k, v) in [
            ("page", "0"),
            ("page", "-1"),
            ("page", "abc"),
            ("page", "99999999999999999999"),
            ("page_size", "1000"),
            ("status", "stolen"),
            ("from", "2026-13-01"),
            ("to", "yesterday"),
            ("sort", "password"),
            ("dir", "sideways"),
        ] {
            assert!(BillQuery::parse(&params(&[(k, v)])).is_err(), "{k}={v}");
        }
        assert!(BillQuery::parse(&params(&[("from", "2026-11-02"), ("to", "2026-11-01")])).is_err());
        assert!(BillQuery::parse(&params(&[("q", &"x".repeat(65))])).is_err());
    }
}

/// An event endpoint as the admin page shows it: the secret masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointView {
    pub id: crate::ids::WebhookEndpointId,
    pub name: String,
    pub url: String,
    pub topics: Vec<crate::webhooks::EventTopic>,
    pub enabled: bool,
    /// `whsec_…abcd`.
    pub secret_mask: String,
    pub version: i64,
    pub created_by: String,
    pub updated_at_ms: Millis,
}

/// A line of the event delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    pub id: crate::ids::DeliveryId,
    pub event_id: String,
    pub topic: crate::webhooks::EventTopic,
    /// What the event is about (a bill id).
    pub aggregate_id: String,
    pub endpoint_id: crate::ids::WebhookEndpointId,
    pub endpoint_name: String,
    pub status: crate::webhooks::DeliveryStatus,
    pub attempts: i64,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at_ms: Option<Millis>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at_ms: Option<Millis>,
    pub created_at_ms: Millis,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptView {
    pub attempt: i64,
    pub started_at_ms: Millis,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// A delivery with its event body and every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryDetailView {
    pub delivery: DeliveryView,
    pub body: String,
    pub attempts: Vec<AttemptView>,
}
