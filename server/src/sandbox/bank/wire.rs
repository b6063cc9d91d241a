//! The bank sandbox's own reading of the bank-card gateway protocol (docs/providers/bank.md):
//! how a message looks on the wire, how the bank checks a merchant's signature and signs what
//! it sends, the value formats it accepts, the test cards. Written from the document, not shared
//! with our client (`gateways/bank/wire.rs`): the sandbox's tests drive it through the client's
//! code, so a misreading on either side fails a test instead of being mirrored on both.

use crate::crypto::{PrivateKey, PublicKey};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use clinicpay::time::{beijing, to_beijing, Millis};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;

/// A message's fields by key (section 1: one flat object, string values).
pub type Msg = BTreeMap<String, String>;

/// Bodies larger than this are refused (section 1).
pub const BODY_LIMIT: usize = 64 * 1024;
/// A request's `timestamp` may be this far from the bank's clock (section 3).
pub const CLOCK_WINDOW_MS: Millis = 5 * 60_000;
/// How long a merchant's nonce is remembered (section 3).
pub const NONCE_WINDOW_MS: Millis = 10 * 60_000;
/// The one currency (ISO 4217 numeric for CNY).
pub const CNY: &str = "156";
/// Largest amount in fen (section 1.1).
pub const AMOUNT_CEILING: i64 = 1_000_000_000_000;

/// The sandbox's test cards (section 6.2).
pub const PAYS: &str = "4111111111111111";
pub const DECLINES: &str = "4000000000000002";
pub const NO_FUNDS: &str = "4000000000009995";

/// Reads a body the way section 1 demands: a single JSON object whose values are strings,
/// keys `[a-z0-9_]` and none twice. Anything else is an error naming what is wrong.
pub fn read_message(body: &[u8]) -> Result<Msg, String> {
    struct Fields;
    impl<'de> Visitor<'de> for Fields {
        type Value = Msg;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("one JSON object with string values")
        }

        fn visit_map<M: MapAccess<'de>>(self, mut fields: M) -> Result<Msg, M::Error> {
            let mut msg = Msg::new();
            while let Some(key) = fields.next_key::<String>()? {
                let key_ok = !key.is_empty()
                    && key.len() <= 64
                    && key.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
                if !key_ok {
                    return Err(de::Error::custom("keys are [a-z0-9_]"));
                }
                let value = fields
                    .next_value::<String>()
                    .map_err(|_| de::Error::custom(format!("the value of {key} is not a string")))?;
                if msg.contains_key(&key) {
                    return Err(de::Error::custom(format!("{key} appears twice")));
                }
                msg.insert(key, value);
            }
            Ok(msg)
        }
    }
    struct Wrapper(Msg);
    impl<'de> serde::Deserialize<'de> for Wrapper {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Fields).map(Wrapper)
        }
    }
    if body.len() > BODY_LIMIT {
        return Err("the body is larger than 64 KiB".into());
    }
    serde_json::from_slice::<Wrapper>(body).map(|w| w.0).map_err(|e| format!("malformed body: {e}"))
}

/// Writes a message (empty values left out, section 1).
pub fn write_message(msg: &Msg) -> String {
    let obj: serde_json::Map<String, serde_json::Value> =
        msg.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.clone(), v.as_str().into())).collect();
    serde_json::Value::Object(obj).to_string()
}

/// Section 2 steps 1–4: all keys but `sign`, empty values dropped, byte-wise order, raw values.
pub fn string_to_sign(msg: &Msg) -> String {
    // a BTreeMap of Strings iterates in byte-wise key order already
    let parts: Vec<String> =
        msg.iter().filter(|(k, v)| k.as_str() != "sign" && !v.is_empty()).map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("&")
}

/// Section 2 steps 5–6, as the bank signs answers and notifications.
pub fn sign_message(msg: &mut Msg, key: &PrivateKey) {
    msg.insert("sign_type".into(), "RSA2".into());
    msg.remove("sign");
    let sign = key.sign_sha256_b64(string_to_sign(msg).as_bytes());
    msg.insert("sign".into(), sign);
}

/// Whether a merchant's request is signed RSA2 by this key.
pub fn signature_ok(msg: &Msg, key: &PublicKey) -> bool {
    let (Some(kind), Some(sign)) = (msg.get("sign_type"), msg.get("sign")) else { return false };
    kind == "RSA2" && !sign.is_empty() && key.verify_sha256_b64(string_to_sign(msg).as_bytes(), sign)
}

/// A field with a non-empty value (empty means absent, section 1).
pub fn field<'a>(msg: &'a Msg, key: &str) -> Option<&'a str> {
    msg.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

/// `yyyyMMddHHmmss` in Beijing time.
pub fn time(ms: Millis) -> String {
    to_beijing(ms).map(|t| t.format("%Y%m%d%H%M%S").to_string()).unwrap_or_default()
}

pub fn read_time(s: &str) -> Option<Millis> {
    if s.len() != 14 || s.bytes().any(|b| !b.is_ascii_digit()) {
        return None;
    }
    let local = NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?;
    Some(beijing().from_local_datetime(&local).single()?.timestamp_millis())
}

/// `yyyyMMdd`.
pub fn read_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || s.bytes().any(|b| !b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}

/// An amount: decimal digits, no sign, no leading zero, 1 ≤ n ≤ 10^12 fen.
pub fn read_amount(s: &str) -> Option<i64> {
    let digits_only = !s.is_empty() && s.len() <= 13 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || s.starts_with('0') {
        return None;
    }
    s.parse::<i64>().ok().filter(|n| (1..=AMOUNT_CEILING).contains(n))
}

fn id_chars(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `merchant_id`: 1–32 of `[0-9A-Za-z_-]`.
pub fn merchant_id_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && id_chars(s)
}

/// `out_trade_no`, `out_refund_no`: 1–64 of `[0-9A-Za-z_-]`.
pub fn order_no_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && id_chars(s)
}

/// `nonce`: 16–64 of `[0-9A-Za-z]`.
pub fn nonce_ok(s: &str) -> bool {
    (16..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `subject` (1–128) and `reason` (0–256): characters, none a control character.
pub fn text_ok(s: &str, min: usize, max: usize) -> bool {
    let n = s.chars().count();
    (min..=max).contains(&n) && s.chars().all(|c| !c.is_control())
}

/// An absolute `http://` or `https://` URL, at most 512 characters.
pub fn url_ok(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    s.len() <= 512 && rest.is_some_and(|r| !r.is_empty()) && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// What a typed card number does on the card page (section 6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Card {
    /// Not a card number: refused on the page, nothing recorded.
    Invalid,
    Pays {
        last4: String,
    },
    Declined {
        last4: String,
        fail_code: &'static str,
        reason: &'static str,
    },
}

pub fn card(typed: &str) -> Card {
    let digits: String = typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) || !luhn(&digits) {
        return Card::Invalid;
    }
    let last4 = digits[digits.len() - 4..].to_string();
    match digits.as_str() {
        DECLINES => Card::Declined { last4, fail_code: "CARD_DECLINED", reason: "card declined" },
        NO_FUNDS => Card::Declined { last4, fail_code: "INSUFFICIENT_FUNDS", reason: "insufficient funds" },
        _ => Card::Pays { last4 },
    }
}

/// The Luhn checksum: from the right, every second digit doubled (its digits summed).
fn luhn(digits: &str) -> bool {
    let total: u32 = digits
        .bytes()
        .rev()
        .map(|b| u32::from(b - b'0'))
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d } else { [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][d as usize] })
        .sum();
    total.is_multiple_of(10)
}

/// The sandbox's fee on a payment: 0.38 %, half up.
pub fn fee(amount_fen: i64) -> i64 {
    (amount_fen * 38 + 5_000) / 10_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_signing_example() {
        // section 2's example request
        let body = r#"{"amount_fen":"8888","currency":"156","expire_time":"20240101123000","merchant_id":"M100001","nonce":"N0NCE0123456789ab","notify_url":"https://his.example.com/notify/bank","out_trade_no":"T202401010001","sign_type":"RSA2","subject":"测试 & co","timestamp":"20240101120000","return_url":"","sign":"x"}"#;
        let msg = read_message(body.as_bytes()).unwrap();
        assert_eq!(
            string_to_sign(&msg),
            "amount_fen=8888&currency=156&expire_time=20240101123000&merchant_id=M100001&nonce=N0NCE0123456789ab&notify_url=https://his.example.com/notify/bank&out_trade_no=T202401010001&sign_type=RSA2&subject=测试 & co&timestamp=20240101120000"
        );
        let key = PrivateKey::parse(crate::crypto::test_keys::MERCHANT_PRIVATE).unwrap();
        let mut signed = msg.clone();
        sign_message(&mut signed, &key);
        assert_eq!(
            signed["sign"],
            "HY/nVUL6OPRO1qy7T3Jd4opw3O9Cx2n8vAnur1jZ06R3jc6lgwsbfu9Yc+n3EN+nc6p3dYyXS9HTnBuYAM7aZFNVSxNGXLvjSlT7UTFXZzDOe/wIvPzktuGuhYd8VcsfjSieKDTqlLwTynYPfAfKX3+q7JsxQkfj2q7TV3wmP3/RfR2Tr/YviCq/09ntPGmgP7L+DVH1K5irKITxfdmZIeN65ORpADXQbEpuqN96/9Z1JoaeAkPoowbVcpZxGnjoTW2JXEL2aoYDB5HnDqy3hTfb12TweWpqYyzO14tcVwdTL64VQn6cFVuoje0SXlHNwIZu/I9ud+Of+xupIA7hwA==",
            "the document's signature"
        );
        assert!(signature_ok(&signed, &key.public_key()));
        signed.insert("subject".into(), "测试".into());
        assert!(!signature_ok(&signed, &key.public_key()));
    }

    #[test]
    fn only_flat_string_objects_are_messages() {
        for bad in [
            &br#"{"a":1}"#[..],
            br#"{"a":"1","a":"2"}"#,
            br#"{"A":"1"}"#,
            br#"{"a":{"b":"c"}}"#,
            br#"["a"]"#,
            br#"{"a":null}"#,
            b"",
        ] {
            assert!(read_message(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(read_message(br#"{"a_1":"x"}"#).unwrap()["a_1"], "x");
        assert!(read_message(&vec![b' '; BODY_LIMIT + 1]).is_err());
    }

    #[test]
    fn value_formats() {
        assert_eq!(read_amount("8888"), Some(8888));
        for bad in ["0", "08", "-1", "1.00", "", "1000000000001", " 1"] {
            assert_eq!(read_amount(bad), None, "{bad}");
        }
        assert_eq!(read_time(&time(1_704_081_610_000)), Some(1_704_081_610_000));
        assert_eq!(time(1_704_081_610_000), "20240101120010");
        assert_eq!(read_time("2024010112001"), None);
        assert!(read_date("20240101").is_some() && read_date("2024-01-01").is_none());
        assert!(url_ok("http://h/n") && !url_ok("ftp://h/n") && !url_ok("http://") && !url_ok("http://a b"));
        assert!(nonce_ok("abcdefghij123456") && !nonce_ok("short") && !nonce_ok("abcdefghij12345_"));
        assert!(text_ok("", 0, 256) && !text_ok("", 1, 128) && !text_ok("a\u{7}", 0, 9));
        assert_eq!(fee(8888), 34);
    }

    #[test]
    fn test_cards() {
        assert_eq!(card("4111 1111 1111 1111"), Card::Pays { last4: "1111".into() });
        assert!(matches!(card("4000-0000-0000-0002"), Card::Declined { fail_code: "CARD_DECLINED", .. }));
        assert!(matches!(card(NO_FUNDS), Card::Declined { fail_code: "INSUFFICIENT_FUNDS", .. }));
        assert_eq!(card("5555555555554444"), Card::Pays { last4: "4444".into() }, "any Luhn-valid number");
        assert_eq!(card("4111111111111112"), Card::Invalid, "Luhn fails");
        assert_eq!(card("1234"), Card::Invalid);
    }
}
