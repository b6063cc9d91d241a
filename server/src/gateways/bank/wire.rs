//! The bank gateway's wire format (docs/providers/bank.md) as our client reads it (the sandbox has
//! its own reading in `sandbox/bank/wire.rs`):
//! flat JSON objects of strings, the sort-and-sign RSA2 scheme, value formats, the statement CSV.
//!
//! Everything here parses outside input and therefore never panics: malformed input is an `Err`.

use crate::crypto::{PrivateKey, PublicKey};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use clinicpay::money::MAX_ABS_FEN;
use clinicpay::time::{beijing, to_beijing, Millis};
use serde::de::{Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// A message: keys sorted byte-wise (what the signature needs), values strings.
pub type Params = BTreeMap<String, String>;

pub const SIGN_TYPE: &str = "RSA2";
/// Largest body either side accepts.
pub const MAX_BODY: usize = 64 * 1024;
/// Requests and notifications more than this far from the receiver's clock are refused.
pub const TIME_WINDOW_MS: Millis = 5 * 60_000;
/// How long the bank remembers a nonce.
pub const NONCE_MEMORY_MS: Millis = 10 * 60_000;
pub const CURRENCY_CNY: &str = "156";

/// Test cards of the sandbox (docs/providers/bank.md 6.2).
pub const CARD_SUCCESS: &str = "4111111111111111";
pub const CARD_DECLINED: &str = "4000000000000002";
pub const CARD_INSUFFICIENT: &str = "4000000000009995";

struct Flat(Params);

struct FlatVisitor;

impl<'de> Visitor<'de> for FlatVisitor {
    type Value = Flat;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a flat JSON object of string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Flat, A::Error> {
        use serde::de::Error;
        let mut out = Params::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.is_empty()
                || key.len() > 64
                || !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(A::Error::custom(format!("invalid key {:?}", truncate(&key, 64))));
            }
            let value: String = map.next_value().map_err(|e| A::Error::custom(format!("value of {key}: {e}")))?;
            if out.insert(key.clone(), value).is_some() {
                return Err(A::Error::custom(format!("duplicate key {key}")));
            }
        }
        Ok(Flat(out))
    }
}

impl<'de> serde::Deserialize<'de> for Flat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Flat, D::Error> {
        d.deserialize_map(FlatVisitor)
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Parses a message body: one JSON object, every value a string, no key twice, keys `[a-z0-9_]`.
pub fn parse_flat(body: &[u8]) -> Result<Params, String> {
    if body.len() > MAX_BODY {
        return Err(format!("body larger than {MAX_BODY} bytes"));
    }
    serde_json::from_slice::<Flat>(body).map(|f| f.0).map_err(|e| format!("not a flat JSON object of strings: {e}"))
}

/// Serialises a message (keys in sorted order; empty values omitted).
pub fn to_json(params: &Params) -> String {
    let map: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// The exact string signed: every key but `sign`, empty values dropped, sorted byte-wise,
/// `k=v` joined with `&`, values raw.
pub fn signing_string(params: &Params) -> String {
    let mut out = String::new();
    for (k, v) in params {
        if k == "sign" || v.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Sets `sign_type` and `sign`.
pub fn sign(params: &mut Params, key: &PrivateKey) {
    params.remove("sign");
    params.insert("sign_type".into(), SIGN_TYPE.into());
    let sig = key.sign_sha256_b64(signing_string(params).as_bytes());
    params.insert("sign".into(), sig);
}

/// Checks `sign_type` is RSA2 and `sign` verifies with `key`.
pub fn verify(params: &Params, key: &PublicKey) -> bool {
    if params.get("sign_type").map(String::as_str) != Some(SIGN_TYPE) {
        return false;
    }
    match params.get("sign") {
        Some(sig) if !sig.is_empty() => key.verify_sha256_b64(signing_string(params).as_bytes(), sig),
        _ => false,
    }
}

/// A non-empty value of a message.
pub fn get<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

/// `yyyyMMddHHmmss`, Beijing time.
pub fn fmt_time(ms: Millis) -> String {
    to_beijing(ms).map(|t| t.format("%Y%m%d%H%M%S").to_string()).unwrap_or_default()
}

pub fn parse_time(s: &str) -> Option<Millis> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?;
    beijing().from_local_datetime(&naive).single().map(|t| t.timestamp_millis())
}

/// `yyyy-MM-dd HH:mm:ss` from `yyyyMMddHHmmss` (statement lines).
pub fn time_to_display(s: &str) -> Option<String> {
    parse_time(s)?;
    Some(format!("{}-{}-{} {}:{}:{}", &s[0..4], &s[4..6], &s[6..8], &s[8..10], &s[10..12], &s[12..14]))
}

/// `yyyyMMdd`.
pub fn fmt_date(d: NaiveDate) -> String {
    d.format("%Y%m%d").to_string()
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}

/// A positive amount in fen: digits, no sign, no leading zero, ≤ 10^12.
pub fn parse_fen(s: &str) -> Option<i64> {
    parse_fen_or_zero(s).filter(|&n| n > 0)
}

/// Like [`parse_fen`] but `"0"` is allowed (totals).
pub fn parse_fen_or_zero(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 13 || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse::<i64>().ok().filter(|&n| n <= MAX_ABS_FEN)
}

/// A signed amount of the statement (`-1000`, `0`, `8888`).
pub fn parse_signed_fen(s: &str) -> Option<i64> {
    match s.strip_prefix('-') {
        Some(rest) => parse_fen(rest).map(|n| -n),
        None => parse_fen_or_zero(s),
    }
}

fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `out_trade_no`, `out_refund_no`: 1–64 of `[0-9A-Za-z_-]`.
pub fn valid_out_no(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(is_id_char)
}

/// Bank-side ids in the statement: 1–64 of `[0-9A-Za-z_-]`.
pub fn valid_bank_id(s: &str) -> bool {
    valid_out_no(s)
}

/// `merchant_id`: 1–32 of `[0-9A-Za-z_-]`.
pub fn valid_merchant_id(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(is_id_char)
}

/// `nonce`: 16–64 of `[0-9A-Za-z]`.
pub fn valid_nonce(s: &str) -> bool {
    (16..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Free text (`subject`, `reason`): at most `max` characters, no control characters.
pub fn valid_text(s: &str, max: usize) -> bool {
    s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// An absolute http(s) URL of at most 512 characters without whitespace.
pub fn valid_url(s: &str) -> bool {
    s.len() <= 512
        && (s.starts_with("http://") || s.starts_with("https://"))
        && s.len() > "https://".len()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Digits of a typed card number (spaces and dashes ignored), if it looks like one (12–19
/// digits, Luhn-valid).
pub fn card_digits(typed: &str) -> Option<String> {
    let digits: String = typed.chars().filter(|c| *c != ' ' && *c != '-').collect();
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    luhn_ok(&digits).then_some(digits)
}

/// The Luhn check digit test over ASCII digits.
pub fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// The sandbox's fee: 0.38 % of a payment, rounded half up (integer arithmetic).
pub fn fee_fen(amount_fen: i64) -> i64 {
    (amount_fen.max(0) * 38 + 5_000) / 10_000
}

// ---------------------------------------------------------------------------------------------
// Statement CSV (docs/providers/bank.md 4.6)

pub const STATEMENT_HEADER: &str =
    "type,out_trade_no,bank_order_id,bank_txn_id,out_refund_no,bank_refund_id,amount_fen,fee_fen,time,card_last4";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Payment,
    Refund,
}

impl RowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RowKind::Payment => "PAYMENT",
            RowKind::Refund => "REFUND",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRow {
    pub kind: RowKind,
    pub out_trade_no: String,
    pub bank_order_id: String,
    pub bank_txn_id: String,
    /// Empty for payments.
    pub out_refund_no: String,
    /// Empty for payments.
    pub bank_refund_id: String,
    /// Positive for payments, negative for refunds.
    pub amount_fen: i64,
    pub fee_fen: i64,
    /// `yyyyMMddHHmmss`.
    pub time: String,
    /// Empty for refunds.
    pub card_last4: String,
}

pub fn write_statement(rows: &[StatementRow]) -> String {
    let mut out = String::from(STATEMENT_HEADER);
    out.push('\n');
    let mut sum: i64 = 0;
    for r in rows {
        sum = sum.saturating_add(r.amount_fen);
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.kind.as_str(),
            r.out_trade_no,
            r.bank_order_id,
            r.bank_txn_id,
            r.out_refund_no,
            r.bank_refund_id,
            r.amount_fen,
            r.fee_fen,
            r.time,
            r.card_last4
        ));
    }
    out.push_str(&format!("TOTAL,{},{}\n", rows.len(), sum));
    out
}

/// Parses and checks a statement: header, rows, footer count and sum.
pub fn parse_statement(text: &str) -> Result<Vec<StatementRow>, String> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).enumerate();
    match lines.next() {
        Some((_, h)) if h == STATEMENT_HEADER => {}
        _ => return Err("statement does not start with the expected header".into()),
    }
    let mut rows = Vec::new();
    let mut sum: i64 = 0;
    let mut footer: Option<(usize, i64)> = None;
    for (idx, line) in lines {
        let n = idx + 1;
        if footer.is_some() {
            if line.is_empty() {
                continue;
            }
            return Err(format!("line {n}: text after the TOTAL line"));
        }
        if line.is_empty() {
            return Err(format!("line {n}: empty line before the TOTAL line"));
        }
        let f: Vec<&str> = line.split(',').collect();
        if f[0] == "TOTAL" {
            if f.len() != 3 {
                return Err(format!("line {n}: TOTAL needs 2 fields"));
            }
            let count = f[1]
                .parse::<usize>()
                .ok()
                .filter(|_| f[1].bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("line {n}: bad row count"))?;
            let total = parse_signed_fen(f[2]).ok_or_else(|| format!("line {n}: bad total"))?;
            footer = Some((count, total));
            continue;
        }
        if f.len() != 10 {
            return Err(format!("line {n}: expected 10 fields, got {}", f.len()));
        }
        let kind = match f[0] {
            "PAYMENT" => RowKind::Payment,
            "REFUND" => RowKind::Refund,
            other => return Err(format!("line {n}: unknown type {:?}", truncate(other, 16))),
        };
        for (i, name) in [(1, "out_trade_no"), (2, "bank_order_id"), (3, "bank_txn_id")] {
            if !valid_bank_id(f[i]) {
                return Err(format!("line {n}: bad {name}"));
            }
        }
        let amount = parse_signed_fen(f[6]).ok_or_else(|| format!("line {n}: bad amount_fen"))?;
        let fee = parse_fen_or_zero(f[7]).ok_or_else(|| format!("line {n}: bad fee_fen"))?;
        if parse_time(f[8]).is_none() {
            return Err(format!("line {n}: bad time"));
        }
        match kind {
            RowKind::Payment => {
                if amount <= 0 || !f[4].is_empty() || !f[5].is_empty() {
                    return Err(format!("line {n}: a payment has a positive amount and no refund ids"));
                }
            }
            RowKind::Refund => {
                if amount >= 0 || !valid_out_no(f[4]) || !valid_bank_id(f[5]) {
                    return Err(format!("line {n}: a refund has a negative amount and refund ids"));
                }
            }
        }
        if !(f[9].is_empty() || (f[9].len() == 4 && f[9].bytes().all(|b| b.is_ascii_digit()))) {
            return Err(format!("line {n}: bad card_last4"));
        }
        sum = sum.checked_add(amount).ok_or_else(|| format!("line {n}: sum overflows"))?;
        rows.push(StatementRow {
            kind,
            out_trade_no: f[1].into(),
            bank_order_id: f[2].into(),
            bank_txn_id: f[3].into(),
            out_refund_no: f[4].into(),
            bank_refund_id: f[5].into(),
            amount_fen: amount,
            fee_fen: fee,
            time: f[8].into(),
            card_last4: f[9].into(),
        });
    }
    match footer {
        None => Err("statement has no TOTAL line".into()),
        Some((count, _)) if count != rows.len() => {
            Err(format!("TOTAL says {count} rows, the statement has {}", rows.len()))
        }
        Some((_, total)) if total != sum => Err(format!("TOTAL says {total} fen, the rows sum to {sum}")),
        Some(_) => Ok(rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_keys::*;
    use proptest::prelude::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The example of docs/providers/bank.md section 2.
    fn doc_example() -> Params {
        params(&[
            ("amount_fen", "8888"),
            ("currency", "156"),
            ("expire_time", "20240101123000"),
            ("merchant_id", "M100001"),
            ("nonce", "N0NCE0123456789ab"),
            ("notify_url", "https://his.example.com/notify/bank"),
            ("out_trade_no", "T202401010001"),
            ("sign_type", "RSA2"),
            ("subject", "测试 & co"),
            ("timestamp", "20240101120000"),
            ("return_url", ""),
        ])
    }

    const DOC_STRING: &str = "amount_fen=8888&currency=156&expire_time=20240101123000&merchant_id=M100001&nonce=N0NCE0123456789ab&notify_url=https://his.example.com/notify/bank&out_trade_no=T202401010001&sign_type=RSA2&subject=测试 & co&timestamp=20240101120000";

    /// Computed independently with Python `cryptography` (PKCS1v15, SHA-256) over DOC_STRING with
    /// the appendix MERCHANT key; RSA PKCS#1 v1.5 signatures are deterministic.
    const DOC_SIGN: &str = "HY/nVUL6OPRO1qy7T3Jd4opw3O9Cx2n8vAnur1jZ06R3jc6lgwsbfu9Yc+n3EN+nc6p3dYyXS9HTnBuYAM7aZFNVSxNGXLvjSlT7UTFXZzDOe/wIvPzktuGuhYd8VcsfjSieKDTqlLwTynYPfAfKX3+q7JsxQkfj2q7TV3wmP3/RfR2Tr/YviCq/09ntPGmgP7L+DVH1K5irKITxfdmZIeN65ORpADXQbEpuqN96/9Z1JoaeAkPoowbVcpZxGnjoTW2JXEL2aoYDB5HnDqy3hTfb12TweWpqYyzO14tcVwdTL64VQn6cFVuoje0SXlHNwIZu/I9ud+Of+xupIA7hwA==";

    #[test]
    fn signing_string_rules() {
        assert_eq!(signing_string(&doc_example()), DOC_STRING);
        // sign excluded, sign_type included, empties dropped
        let p = params(&[("b", "2"), ("a", "1"), ("sign", "xyz"), ("sign_type", "RSA2"), ("c", "")]);
        assert_eq!(signing_string(&p), "a=1&b=2&sign_type=RSA2");
        // byte-wise order: '_' (0x5F) sorts before lowercase letters, digits before '_'
        let p = params(&[("ab", "1"), ("a_b", "2"), ("a1", "3"), ("a", "4")]);
        assert_eq!(signing_string(&p), "a=4&a1=3&a_b=2&ab=1");
        // values raw: no URL encoding, no JSON escaping, '=' and '&' kept
        let p = params(&[("u", "https://x/y?a=1&b=%20"), ("s", "引号\"\\/")]);
        assert_eq!(signing_string(&p), "s=引号\"\\/&u=https://x/y?a=1&b=%20");
        // nothing to sign
        assert_eq!(signing_string(&params(&[("sign", "x"), ("a", "")])), "");
        // a value made of spaces is not empty
        assert_eq!(signing_string(&params(&[("a", " ")])), "a= ");
    }

    #[test]
    fn doc_example_vector() {
        let key = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();
        let mut p = doc_example();
        sign(&mut p, &key);
        assert_eq!(p["sign"], DOC_SIGN);
        let public = PublicKey::parse(MERCHANT_PUBLIC).unwrap();
        assert!(verify(&p, &public));
    }

    #[test]
    fn sign_verify_round_trip() {
        let merchant = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();
        let merchant_pub = PublicKey::parse(MERCHANT_PUBLIC).unwrap();
        let provider_pub = PublicKey::parse(PROVIDER_PUBLIC).unwrap();
        let mut p = params(&[("merchant_id", "M1"), ("subject", "门诊 a=b&c"), ("empty", "")]);
        sign(&mut p, &merchant);
        assert_eq!(p["sign_type"], "RSA2");
        assert!(verify(&p, &merchant_pub));
        assert!(!verify(&p, &provider_pub), "another key does not verify");
        // through JSON and back (empty values are omitted on the wire, still verifies)
        let json = to_json(&p);
        assert!(!json.contains("empty"));
        let back = parse_flat(json.as_bytes()).unwrap();
        assert!(verify(&back, &merchant_pub));
        // an empty value added in transit does not change the signature
        let mut padded = back.clone();
        padded.insert("zz".into(), String::new());
        assert!(verify(&padded, &merchant_pub));
        // tampering breaks it
        let mut t = back.clone();
        t.insert("subject".into(), "门诊 a=b&d".into());
        assert!(!verify(&t, &merchant_pub));
        let mut t = back.clone();
        t.insert("extra".into(), "1".into());
        assert!(!verify(&t, &merchant_pub));
        let mut t = back.clone();
        t.insert("sign_type".into(), "RSA".into());
        assert!(!verify(&t, &merchant_pub));
        let mut t = back.clone();
        t.remove("sign");
        assert!(!verify(&t, &merchant_pub));
        let mut t = back;
        t.insert("sign".into(), "!!not base64!!".into());
        assert!(!verify(&t, &merchant_pub));
    }

    #[test]
    fn flat_json_is_strict() {
        assert_eq!(parse_flat(br#"{"a":"1","b":""}"#).unwrap(), params(&[("a", "1"), ("b", "")]));
        assert_eq!(parse_flat(br#" { "a" : "\u6d4b" } "#).unwrap()["a"], "测");
        for bad in [
            &br#"{"a":1}"#[..],
            br#"{"a":null}"#,
            br#"{"a":{"b":"c"}}"#,
            br#"{"a":["x"]}"#,
            br#"{"a":"1","a":"2"}"#,
            br#"{"A":"1"}"#,
            br#"{"":"1"}"#,
            br#"["a"]"#,
            br#""a""#,
            br#"{"a":"1"} trailing"#,
            b"",
            b"\xff\xfe",
        ] {
            assert!(parse_flat(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_BODY));
        assert!(parse_flat(big.as_bytes()).is_err());
    }

    #[test]
    fn value_formats() {
        assert_eq!(parse_fen("8888"), Some(8888));
        assert_eq!(parse_fen("1"), Some(1));
        for bad in ["0", "-1", "+1", "01", "1.00", "", " 1", "1e3", "10000000000001", "99999999999999999999"] {
            assert_eq!(parse_fen(bad), None, "{bad}");
        }
        assert_eq!(parse_fen_or_zero("0"), Some(0));
        assert_eq!(parse_fen("1000000000000"), Some(MAX_ABS_FEN));
        assert_eq!(parse_signed_fen("-1000"), Some(-1000));
        assert_eq!(parse_signed_fen("-0"), None);
        assert_eq!(parse_signed_fen("--1"), None);

        let ms = parse_time("20240101120010").unwrap();
        assert_eq!(fmt_time(ms), "20240101120010");
        // 2024-01-01 12:00:10 +08:00 == 04:00:10 UTC
        assert_eq!(ms, 1_704_081_610_000);
        for bad in ["2024010112001", "20241301120010", "20240230120000", "2024010112001x", "+2024010112001"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(time_to_display("20240101120010").as_deref(), Some("2024-01-01 12:00:10"));
        assert_eq!(parse_date("20240229"), NaiveDate::from_ymd_opt(2024, 2, 29));
        assert_eq!(parse_date("20230229"), None);
        assert_eq!(fmt_date(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap()), "20240102");

        assert!(valid_out_no("CP-2024_01"));
        assert!(!valid_out_no("a b"));
        assert!(!valid_out_no(&"x".repeat(65)));
        assert!(valid_nonce("0123456789abcdef"));
        assert!(!valid_nonce("0123456789abcde"));
        assert!(valid_url("https://h/x?a=1&b=2"));
        assert!(!valid_url("ftp://h/x"));
        assert!(!valid_url("https://h/ x"));
        assert!(valid_text("门诊缴费", 4));
        assert!(!valid_text("门诊缴费", 3));
        assert!(!valid_text("a\nb", 10));
    }

    #[test]
    fn cards() {
        assert_eq!(card_digits("4111 1111 1111 1111").as_deref(), Some(CARD_SUCCESS));
        assert_eq!(card_digits("4000-0000-0000-0002").as_deref(), Some(CARD_DECLINED));
        assert_eq!(card_digits(CARD_INSUFFICIENT).as_deref(), Some(CARD_INSUFFICIENT));
        assert_eq!(card_digits("4111111111111112"), None, "Luhn");
        assert_eq!(card_digits("411111111111111a"), None);
        assert_eq!(card_digits("42"), None);
        assert_eq!(card_digits(""), None);
        assert_eq!(fee_fen(8888), 34);
        assert_eq!(fee_fen(1), 0);
        assert_eq!(fee_fen(1316), 5); // 5.0008 → 5
        assert_eq!(fee_fen(2500), 10); // 9.5 → 10 (half up)
    }

    fn sample_rows() -> Vec<StatementRow> {
        vec![
            StatementRow {
                kind: RowKind::Payment,
                out_trade_no: "T202401010001".into(),
                bank_order_id: "BO20240101000000000001".into(),
                bank_txn_id: "BT20240101120010000001".into(),
                out_refund_no: String::new(),
                bank_refund_id: String::new(),
                amount_fen: 8888,
                fee_fen: 34,
                time: "20240101120010".into(),
                card_last4: "1111".into(),
            },
            StatementRow {
                kind: RowKind::Refund,
                out_trade_no: "T202401010001".into(),
                bank_order_id: "BO20240101000000000001".into(),
                bank_txn_id: "BT20240101120010000001".into(),
                out_refund_no: "R1".into(),
                bank_refund_id: "BR20240101130000000001".into(),
                amount_fen: -1000,
                fee_fen: 0,
                time: "20240101130000".into(),
                card_last4: String::new(),
            },
        ]
    }

    #[test]
    fn statement_round_trip_and_doc_sample() {
        let rows = sample_rows();
        let text = write_statement(&rows);
        let doc = "type,out_trade_no,bank_order_id,bank_txn_id,out_refund_no,bank_refund_id,amount_fen,fee_fen,time,card_last4\n\
PAYMENT,T202401010001,BO20240101000000000001,BT20240101120010000001,,,8888,34,20240101120010,1111\n\
REFUND,T202401010001,BO20240101000000000001,BT20240101120010000001,R1,BR20240101130000000001,-1000,0,20240101130000,\n\
TOTAL,2,7888\n";
        assert_eq!(text, doc);
        assert_eq!(parse_statement(&text).unwrap(), rows);
        assert_eq!(parse_statement(&text.replace('\n', "\r\n")).unwrap(), rows);
        assert_eq!(parse_statement(&write_statement(&[])).unwrap(), vec![]);
        assert_eq!(write_statement(&[]), format!("{STATEMENT_HEADER}\nTOTAL,0,0\n"));
    }

    #[test]
    fn statement_errors() {
        let good = write_statement(&sample_rows());
        let cases = [
            good.replace("TOTAL,2,7888", "TOTAL,3,7888"),
            good.replace("TOTAL,2,7888", "TOTAL,2,7889"),
            good.replace("TOTAL,2,7888\n", ""),
            good.replace("type,", "kind,"),
            good.replace(",8888,", ",-8888,"),
            good.replace(",-1000,", ",1000,"),
            good.replace("PAYMENT", "CHARGE"),
            good.replace(",1111", ",11111"),
            good.replace("20240101120010,", "2024-01-01,"),
            good.replace("TOTAL,2,7888\n", "\nTOTAL,2,7888\n"),
            format!("{good}PAYMENT,a,b,c,,,1,0,20240101120010,\n"),
            good.replace(",R1,", ",,"),
            String::new(),
        ];
        for c in cases {
            assert!(parse_statement(&c).is_err(), "{c}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_flat(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_statement(&text);
            let _ = parse_statement(&format!("{STATEMENT_HEADER}\n{text}"));
            let _ = parse_time(&text);
            let _ = parse_date(&text);
            let _ = parse_signed_fen(&text);
            let _ = card_digits(&text);
            let _ = time_to_display(&text);
        }

        #[test]
        fn statement_lines_never_panic(lines in proptest::collection::vec("[A-Z0-9,\\-]{0,80}", 0..6)) {
            let text = format!("{STATEMENT_HEADER}\n{}\n", lines.join("\n"));
            let _ = parse_statement(&text);
        }

        #[test]
        fn flat_objects_round_trip(map in proptest::collection::btree_map("[a-z_]{1,12}", "\\PC{0,20}", 0..8)) {
            let p: Params = map;
            let json = to_json(&p);
            let back = parse_flat(json.as_bytes()).unwrap();
            let non_empty: Params = p.into_iter().filter(|(_, v)| !v.is_empty()).collect();
            prop_assert_eq!(back, non_empty);
        }
    }
}
