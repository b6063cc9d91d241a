//! The Alipay sandbox's own reading of the classic gateway protocol (PROTOCOLS.md Part A): what
//! the gateway accepts, how it checks a request's signature and how it signs what it sends.
//! Written from the protocol document, not shared with our client (`gateways/alipay`), so that
//! a misreading on one side shows up as a failing test instead of being mirrored on both.

use crate::crypto::{PrivateKey, PublicKey};
use clinicpay::money::Money;
use clinicpay::time::Millis;
use serde_json::Value;

/// Parameters in the order they arrived.
pub type Params = Vec<(String, String)>;

pub fn param<'a>(p: &'a Params, key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A query string or form body: `+` is a space, then percent-decoding as UTF-8 (A.2).
pub fn parse_form(bytes: &[u8]) -> Params {
    form_urlencoded::parse(bytes).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub fn encode_form(p: &Params) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in p {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The string a request is signed over (A.4): every parameter but those excluded, sorted by key,
/// `k=v` joined with `&`, raw values; empty values dropped unless `keep_empty`.
pub fn signed_string(p: &Params, exclude: &[&str], keep_empty: bool) -> String {
    let mut pairs: Vec<(&str, &str)> = p
        .iter()
        .filter(|(k, v)| !exclude.contains(&k.as_str()) && (keep_empty || !v.is_empty()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// A request signature: `RSA2` is SHA256withRSA, legacy `RSA` SHA1withRSA (A.4 step 5).
pub fn check_request_signature(key: &PublicKey, sign_type: &str, message: &str, sig: &str) -> bool {
    let sig: String = sig.chars().filter(|c| !c.is_whitespace()).collect();
    if sign_type.eq_ignore_ascii_case("RSA2") {
        key.verify_sha256_b64(message.as_bytes(), &sig)
    } else if sign_type.eq_ignore_ascii_case("RSA") {
        key.verify_sha1_b64(message.as_bytes(), &sig)
    } else {
        false
    }
}

/// Signs a notification or a return URL as Alipay does (A.8 "V1"): over every parameter but
/// `sign` and `sign_type`; then `sign_type=RSA2` and `sign` are added.
pub fn sign_v1(p: &mut Params, key: &PrivateKey) {
    p.retain(|(k, _)| k != "sign" && k != "sign_type");
    let sig = key.sign_sha256_b64(signed_string(p, &[], false).as_bytes());
    p.push(("sign_type".into(), "RSA2".into()));
    p.push(("sign".into(), sig));
}

/// `alipay.trade.precreate` → `alipay_trade_precreate_response` (A.5.1).
pub fn node_name(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// The node's JSON object, compact, members in order, `/` unescaped (A.5.2's recipe). Values
/// never hold `{` or `}` inside strings of our own making.
pub fn node_json(members: &[(&'static str, Value)]) -> String {
    let mut m = serde_json::Map::new();
    for (k, v) in members {
        m.insert((*k).to_string(), v.clone());
    }
    Value::Object(m).to_string()
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time.
pub fn fmt_time(ms: Millis) -> String {
    clinicpay::time::fmt_second(ms)
}

/// Reads `yyyy-MM-dd HH:mm:ss` as Beijing time.
pub fn parse_time(s: &str) -> Option<Millis> {
    let t = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    t.and_local_timezone(clinicpay::time::beijing()).single().map(|t| t.timestamp_millis())
}

/// An amount as clients send it: `"88.88"`, or a number (A.6).
pub fn amount(v: &Value) -> Option<Money> {
    match v {
        Value::String(s) => Money::parse(s.trim()).ok(),
        Value::Number(n) => Money::parse(&n.to_string()).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_signing_example() {
        // A.4's example request, in arrival order
        let p: Params = [
            ("method", "alipay.trade.precreate"),
            ("app_id", "2021000000000001"),
            ("charset", "utf-8"),
            ("format", "JSON"),
            ("sign_type", "RSA2"),
            ("timestamp", "2024-01-01 12:00:00"),
            ("version", "1.0"),
            ("notify_url", "http://127.0.0.1:8080/alipay/notify"),
            ("biz_content", r#"{"out_trade_no":"T202401010001","total_amount":"88.88","subject":"测试商品"}"#),
            ("return_url", ""),
            ("sign", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            signed_string(&p, &["sign"], false),
            r#"app_id=2021000000000001&biz_content={"out_trade_no":"T202401010001","total_amount":"88.88","subject":"测试商品"}&charset=utf-8&format=JSON&method=alipay.trade.precreate&notify_url=http://127.0.0.1:8080/alipay/notify&sign_type=RSA2&timestamp=2024-01-01 12:00:00&version=1.0"#
        );
        assert!(signed_string(&p, &["sign"], true).contains("&return_url=&"));
        assert_eq!(node_name("alipay.trade.precreate"), "alipay_trade_precreate_response");
    }

    #[test]
    fn notifications_are_signed_without_sign_type() {
        let key = PrivateKey::generate().unwrap();
        let mut p: Params = vec![("b".into(), "2".into()), ("a".into(), "1".into())];
        sign_v1(&mut p, &key);
        let sig = param(&p, "sign").unwrap().to_string();
        assert_eq!(param(&p, "sign_type"), Some("RSA2"));
        assert!(key.public_key().verify_sha256_b64(b"a=1&b=2", &sig));
        assert_eq!(parse_time(&fmt_time(1_704_081_600_000)), Some(1_704_081_600_000));
        assert_eq!(amount(&serde_json::json!(0.01)).map(|m| m.fen()), Some(1));
        assert_eq!(amount(&serde_json::json!("88.88")).map(|m| m.fen()), Some(8888));
    }
}
