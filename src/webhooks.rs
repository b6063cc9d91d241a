//! Events out to the hospital's systems (issue 15 #2, PRODUCT.md I5): one delivery machinery for
//! the HIS's bill events and, later, the partner platforms' callbacks.
//!
//! An event is fixed when it is created — its id, type and JSON body never change — and is
//! delivered to every subscribed endpoint at least once: signed with the endpoint's secret,
//! retried on a schedule over about a day, and re-sent by hand from the delivery log. The
//! receiver deduplicates by the event id, which is the same on every attempt.

use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventTopic {
    /// A bill was paid in full (the payment and its receipt number).
    #[serde(rename = "bill.paid")]
    BillPaid,
    /// An unpaid bill was voided (the reason, who, when).
    #[serde(rename = "bill.voided")]
    BillVoided,
    /// Part of a paid bill went back to the payer.
    #[serde(rename = "bill.partially_refunded")]
    BillPartiallyRefunded,
    /// All of a paid bill went back to the payer.
    #[serde(rename = "bill.refunded")]
    BillRefunded,
}

impl EventTopic {
    pub const ALL: [EventTopic; 4] =
        [EventTopic::BillPaid, EventTopic::BillVoided, EventTopic::BillPartiallyRefunded, EventTopic::BillRefunded];

    pub fn as_str(self) -> &'static str {
        match self {
            EventTopic::BillPaid => "bill.paid",
            EventTopic::BillVoided => "bill.voided",
            EventTopic::BillPartiallyRefunded => "bill.partially_refunded",
            EventTopic::BillRefunded => "bill.refunded",
        }
    }

    pub fn parse(s: &str) -> Option<EventTopic> {
        EventTopic::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The event type an outbox item becomes, if any.
    pub fn for_outbox_topic(topic: &str) -> Option<EventTopic> {
        match topic {
            "payment.succeeded" => Some(EventTopic::BillPaid),
            "bill.voided" => Some(EventTopic::BillVoided),
            "bill.partially_refunded" => Some(EventTopic::BillPartiallyRefunded),
            "bill.refunded" => Some(EventTopic::BillRefunded),
            _ => None,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            EventTopic::BillPaid => "账单已缴费",
            EventTopic::BillVoided => "账单已作废",
            EventTopic::BillPartiallyRefunded => "账单部分退款",
            EventTopic::BillRefunded => "账单已退款",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            EventTopic::BillPaid => "Bill paid",
            EventTopic::BillVoided => "Bill voided",
            EventTopic::BillPartiallyRefunded => "Bill partially refunded",
            EventTopic::BillRefunded => "Bill refunded",
        }
    }
}

crate::parse_from_string!(EventTopic, "event topic");

/// Topics as stored: sorted, comma-separated, no duplicates.
pub fn topics_to_string(topics: &[EventTopic]) -> String {
    let mut t = topics.to_vec();
    t.sort();
    t.dedup();
    t.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",")
}

/// The stored form back; an unknown word is an error (the row was written by a newer version).
pub fn topics_from_string(s: &str) -> Result<Vec<EventTopic>, crate::UnknownValue> {
    s.split(',')
        .filter(|w| !w.is_empty())
        .map(|w| EventTopic::parse(w).ok_or(crate::UnknownValue { what: "event topic", value: w.to_string() }))
        .collect()
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every scheduled attempt failed; a person re-sends it from the delivery log.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "待发送",
            DeliveryStatus::Delivered => "已送达",
            DeliveryStatus::Failed => "发送失败",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "Pending",
            DeliveryStatus::Delivered => "Delivered",
            DeliveryStatus::Failed => "Failed",
        }
    }
}

crate::parse_from_string!(DeliveryStatus, "delivery status");

/// Each attempt waits at most this long for the endpoint's answer (I5).
pub const ATTEMPT_TIMEOUT_MS: Millis = 5_000;

/// The wait after the n-th failed attempt (n = 1, 2, …): 15 s, 1 min, 5 min, 15 min, 30 min,
/// 1 h, 2 h, 4 h, 8 h, 8 h — eleven attempts over about 24 hours, then the delivery is failed.
pub const RETRY_SCHEDULE_MS: [Millis; 10] =
    [15_000, 60_000, 300_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000, 28_800_000];

/// When the next attempt is due after `attempts` attempts that all failed; `None` when the
/// schedule is used up.
pub fn next_attempt_at(attempts: i64, now_ms: Millis) -> Option<Millis> {
    let i = usize::try_from(attempts.checked_sub(1)?).ok()?;
    RETRY_SCHEDULE_MS.get(i).map(|d| now_ms + d)
}

/// How many attempts the schedule allows in all.
pub const MAX_ATTEMPTS: i64 = RETRY_SCHEDULE_MS.len() as i64 + 1;

/// Header names on every delivery.
pub mod headers {
    pub const EVENT_ID: &str = "ClinicPay-Event-Id";
    pub const EVENT_TYPE: &str = "ClinicPay-Event-Type";
    pub const ATTEMPT: &str = "ClinicPay-Delivery-Attempt";
    /// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the endpoint secret>`.
    pub const SIGNATURE: &str = "ClinicPay-Signature";
}

/// A receiver refuses a signature older than this (seconds), so a captured request cannot be
/// replayed later; it deduplicates by event id inside the window.
pub const SIGNATURE_TOLERANCE_S: i64 = 300;

/// A refusal of an endpoint's settings, with the code the forms and the API show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRefusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> EndpointRefusal {
    EndpointRefusal { code, message: message.into() }
}

/// An endpoint's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSettings {
    pub name: String,
    pub url: String,
    pub topics: Vec<EventTopic>,
}

impl EndpointSettings {
    /// Name 1–60 characters; an absolute `http`/`https` URL with a host, no credentials, no
    /// fragment, at most 500 characters; at least one known topic.
    pub fn check(name: &str, url: &str, topics: &[String]) -> Result<EndpointSettings, EndpointRefusal> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(refuse("bad_endpoint_name", "the name must be 1–60 characters"));
        }
        let url = check_url(url)?;
        let mut parsed = Vec::new();
        for t in topics {
            let t = t.trim();
            match EventTopic::parse(t) {
                Some(t) => parsed.push(t),
                None => return Err(refuse("bad_topic", format!("unknown event type {t:?}"))),
            }
        }
        parsed.sort();
        parsed.dedup();
        if parsed.is_empty() {
            return Err(refuse("no_topics", "choose at least one event type"));
        }
        Ok(EndpointSettings { name: name.to_string(), url, topics: parsed })
    }
}

/// The URL rules of [`EndpointSettings::check`].
pub fn check_url(url: &str) -> Result<String, EndpointRefusal> {
    let url = url.trim();
    if url.len() > 500 {
        return Err(refuse("bad_url", "the address is longer than 500 characters"));
    }
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        r
    } else {
        return Err(refuse("bad_url", "the address must start with http:// or https://"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("bad_url", "the address contains spaces or control characters"));
    }
    if url.contains('#') {
        return Err(refuse("bad_url", "the address must not have a #fragment"));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(refuse("bad_url", "the address must not carry a user name or password"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority),
    };
    if host.is_empty() {
        return Err(refuse("bad_url", "the address has no host"));
    }
    if let Some((_, port)) = authority.rsplit_once(':').filter(|_| !authority.ends_with(']')) {
        if !port.is_empty() && port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(refuse("bad_url", "the port is not a number from 1 to 65535"));
        }
    }
    Ok(url.to_string())
}

/// The secret shown once: `whsec_` and a random part; only the last four characters are shown
/// afterwards.
pub fn mask_secret(secret: &str) -> String {
    let tail: String = secret.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("whsec_…{tail}")
}

/// The signed text: `<unix seconds>.<body>`.
pub fn signed_payload(timestamp_s: i64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{timestamp_s}.").into_bytes();
    m.extend_from_slice(body);
    m
}

#[cfg(feature = "server")]
mod sign {
    use sha2::{Digest, Sha256};

    /// HMAC-SHA256 (RFC 2104).
    pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
        const BLOCK: usize = 64;
        let mut k = [0u8; BLOCK];
        if key.len() > BLOCK {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut inner = Sha256::new();
        inner.update(k.map(|b| b ^ 0x36));
        inner.update(message);
        let inner = inner.finalize();
        let mut outer = Sha256::new();
        outer.update(k.map(|b| b ^ 0x5c));
        outer.update(inner);
        outer.finalize().into()
    }

    /// The `ClinicPay-Signature` header value.
    pub fn signature_header(secret: &str, timestamp_s: i64, body: &[u8]) -> String {
        let mac = hmac_sha256(secret.as_bytes(), &super::signed_payload(timestamp_s, body));
        format!("t={timestamp_s},v1={}", hex::encode(mac))
    }

    /// What a receiver does: parse the header, check the age, compare in constant time.
    pub fn verify_signature(secret: &str, header: &str, body: &[u8], now_s: i64) -> bool {
        let mut t = None;
        let mut sigs = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = v.parse::<i64>().ok(),
                Some(("v1", v)) => sigs.push(v.to_string()),
                _ => {}
            }
        }
        let Some(t) = t else { return false };
        if (now_s - t).abs() > super::SIGNATURE_TOLERANCE_S {
            return false;
        }
        let want = hex::encode(hmac_sha256(secret.as_bytes(), &super::signed_payload(t, body)));
        sigs.iter()
            .any(|s| s.len() == want.len() && s.bytes().zip(want.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
    }
}

#[cfg(feature = "server")]
pub use sign::{hmac_sha256, signature_header, verify_signature};

/// The stable id of the event a change produced for one bill: the outbox event's id and the
/// bill, so processing the same outbox event again (after a crash) yields the same event.
pub fn event_id(outbox_id: &str, topic: EventTopic, bill_id: &str) -> String {
    let tail = outbox_id.strip_prefix("obx_").unwrap_or(outbox_id);
    let bill = bill_id.strip_prefix("bill_").unwrap_or(bill_id);
    let kind = match topic {
        EventTopic::BillPaid => "paid",
        EventTopic::BillVoided => "void",
        EventTopic::BillPartiallyRefunded => "prf",
        EventTopic::BillRefunded => "ref",
    };
    format!("evt_{tail}_{kind}_{bill}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_sorted_and_unknown_words_refused() {
        let s = topics_to_string(&[EventTopic::BillVoided, EventTopic::BillPaid, EventTopic::BillPaid]);
        assert_eq!(s, "bill.paid,bill.voided");
        assert_eq!(topics_from_string(&s).unwrap(), vec![EventTopic::BillPaid, EventTopic::BillVoided]);
        assert!(topics_from_string("bill.paid,bill.eaten").is_err());
        assert_eq!(topics_from_string("").unwrap(), vec![]);
    }

    #[test]
    fn schedule_spans_about_a_day_then_stops() {
        assert_eq!(next_attempt_at(0, 1_000), None);
        assert_eq!(next_attempt_at(1, 1_000), Some(16_000));
        assert_eq!(next_attempt_at(MAX_ATTEMPTS - 1, 0), Some(28_800_000));
        assert_eq!(next_attempt_at(MAX_ATTEMPTS, 0), None);
        let total: Millis = RETRY_SCHEDULE_MS.iter().sum();
        assert!((20 * 3_600_000..=28 * 3_600_000).contains(&total), "{total}");
    }

    #[test]
    fn endpoint_settings_are_checked() {
        let ok =
            EndpointSettings::check(" HIS ", "http://10.0.0.5:8080/clinicpay/events", &["bill.paid".into()]).unwrap();
        assert_eq!((ok.name.as_str(), ok.topics.as_slice()), ("HIS", &[EventTopic::BillPaid][..]));
        assert!(EndpointSettings::check("x", "https://[::1]:9/e?x=1", &["bill.voided".into()]).is_ok());
        let code = |name: &str, url: &str, topics: &[&str]| {
            let t: Vec<String> = topics.iter().map(|s| s.to_string()).collect();
            EndpointSettings::check(name, url, &t).unwrap_err().code
        };
        assert_eq!(code("", "http://h/", &["bill.paid"]), "bad_endpoint_name");
        assert_eq!(code("x", "ftp://h/", &["bill.paid"]), "bad_url");
        assert_eq!(code("x", "http:///path", &["bill.paid"]), "bad_url");
        assert_eq!(code("x", "http://u:p@h/", &["bill.paid"]), "bad_url");
        assert_eq!(code("x", "http://h:99999/", &["bill.paid"]), "bad_url");
        assert_eq!(code("x", "http://h/a b", &["bill.paid"]), "bad_url");
        assert_eq!(code("x", "http://h/#x", &["bill.paid"]), "bad_url");
        assert_eq!(code("x", "http://h/", &[]), "no_topics");
        assert_eq!(code("x", "http://h/", &["bill.eaten"]), "bad_topic");
    }

    #[cfg(feature = "server")]
    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2 and test case 6 (a key longer than the block).
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let key = [0xaau8; 131];
        let mac = hmac_sha256(&key, b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex::encode(mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[cfg(feature = "server")]
    #[test]
    fn signatures_verify_and_refuse_tampering_and_age() {
        let body = br#"{"id":"evt_1"}"#;
        let h = signature_header("whsec_abc", 1_800_000_000, body);
        assert!(verify_signature("whsec_abc", &h, body, 1_800_000_100));
        assert!(!verify_signature("whsec_abd", &h, body, 1_800_000_100));
        assert!(!verify_signature("whsec_abc", &h, br#"{"id":"evt_2"}"#, 1_800_000_100));
        assert!(!verify_signature("whsec_abc", &h, body, 1_800_000_000 + SIGNATURE_TOLERANCE_S + 1));
        assert!(!verify_signature("whsec_abc", "v1=00", body, 1_800_000_000));
    }

    #[test]
    fn event_ids_are_stable_per_change_and_bill() {
        let a = event_id("obx_01ABC", EventTopic::BillPaid, "bill_01X");
        assert_eq!(a, "evt_01ABC_paid_01X");
        assert_eq!(a, event_id("obx_01ABC", EventTopic::BillPaid, "bill_01X"));
        assert_ne!(a, event_id("obx_01ABC", EventTopic::BillPaid, "bill_01Y"));
        assert_eq!(mask_secret("whsec_abcdefgh"), "whsec_…efgh");
    }
}
