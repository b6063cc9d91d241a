//! Alipay OpenAPI wire format (PROTOCOLS.md A.2–A.5, A.8), shared by the merchant client and the
//! built-in sandbox: sign strings, form encoding, response-node extraction, wire amounts and
//! Beijing timestamps. Pure functions; nothing here panics on outside input.

use crate::crypto::{PrivateKey, PublicKey};
use clinicpay::money::Money;
use clinicpay::time::Millis;

/// Parameters in the order they are sent.
pub type Params = Vec<(String, String)>;

pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";

/// The value of the first parameter named `key`.
pub fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `key=value&…` over the parameters except `exclude`, sorted byte-wise by key, values raw.
/// `drop_empty` leaves out parameters whose value is empty (A.4 step 2).
pub fn sign_content(params: &[(String, String)], exclude: &[&str], drop_empty: bool) -> String {
    let mut kept: Vec<&(String, String)> =
        params.iter().filter(|(k, v)| !exclude.contains(&k.as_str()) && (!drop_empty || !v.is_empty())).collect();
    kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (i, (k, v)) in kept.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// What a request signs (A.4): everything but `sign`, empty values dropped, `sign_type` kept.
pub fn request_sign_content(params: &[(String, String)]) -> String {
    sign_content(params, &["sign"], true)
}

/// What a trade notification or a page-pay return signs ("V1", A.8): `sign` and `sign_type`
/// excluded, empty values kept.
pub fn notify_sign_content_v1(params: &[(String, String)]) -> String {
    sign_content(params, &["sign", "sign_type"], false)
}

/// Open-platform notifications ("V2", D.1 T-A3): only `sign` excluded.
pub fn notify_sign_content_v2(params: &[(String, String)]) -> String {
    sign_content(params, &["sign"], false)
}

/// Appends `sign` (RSA2 over [`request_sign_content`]).
pub fn sign_request(params: &mut Params, key: &PrivateKey) {
    let sig = key.sign_sha256_b64(request_sign_content(params).as_bytes());
    params.push(("sign".into(), sig));
}

/// The one `sign_type` accepted on anything Alipay sends us. A channel holds an RSA2
/// (SHA256withRSA) key pair; a notification choosing legacy `RSA` (SHA1withRSA) — or nothing —
/// is refused, never checked with the weaker hash.
pub const SIGN_TYPE: &str = "RSA2";

/// The `sign_type` a notification or return names, when it is not [`SIGN_TYPE`].
pub fn refused_sign_type(params: &[(String, String)]) -> Option<String> {
    match param(params, "sign_type") {
        Some(SIGN_TYPE) => None,
        other => Some(other.unwrap_or_default().chars().take(16).collect()),
    }
}

/// V1 verification of a notification / return (A.8): `sign` and `sign_type` dropped; RSA2 only.
pub fn verify_notify_v1(params: &[(String, String)], key: &PublicKey) -> bool {
    let Some(sig) = param(params, "sign") else { return false };
    refused_sign_type(params).is_none() && key.verify_sha256_b64(notify_sign_content_v1(params).as_bytes(), sig)
}

/// V2 verification (open-platform notices, D.1 T-A3): only `sign` dropped; RSA2 only.
pub fn verify_notify_v2(params: &[(String, String)], key: &PublicKey) -> bool {
    let Some(sig) = param(params, "sign") else { return false };
    refused_sign_type(params).is_none() && key.verify_sha256_b64(notify_sign_content_v2(params).as_bytes(), sig)
}

/// Signs a notification or return (V1) and appends `sign_type=RSA2` and `sign`.
pub fn sign_notify_v1(params: &mut Params, key: &PrivateKey) {
    params.retain(|(k, _)| k != "sign" && k != "sign_type");
    let sig = key.sign_sha256_b64(notify_sign_content_v1(params).as_bytes());
    params.push(("sign_type".into(), "RSA2".into()));
    params.push(("sign".into(), sig));
}

/// `application/x-www-form-urlencoded` (spaces as `+`, everything else percent-encoded).
pub fn encode_form(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Standard form decoding (`+` → space, percent-decoding as UTF-8, lossy).
pub fn parse_form(input: &[u8]) -> Params {
    form_urlencoded::parse(input).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// The response node's name for a method: `alipay.trade.query` → `alipay_trade_query_response`.
pub fn response_node_name(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// The parts of a gateway response body, as raw text spans of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseParts<'a> {
    /// The exact text of the node object, `{` … matching `}` (what Alipay signs).
    pub node: &'a str,
    /// True when the node found was `error_response`.
    pub is_error_response: bool,
    /// The top-level `sign`, decoded from its JSON string.
    pub sign: Option<String>,
}

/// Finds `"<node_name>"` (or else `"error_response"`) among the top-level members of the body
/// and returns its value's raw text, plus the top-level `sign`. Quote- and escape-aware, accepts
/// whitespace anywhere JSON does; a `sign` member inside the node is part of the node. `None`
/// for anything that is not a well-formed top-level object with such a member.
pub fn extract_response<'a>(body: &'a str, node_name: &str) -> Option<ResponseParts<'a>> {
    let b = body.as_bytes();
    let mut i = 0;
    if body.starts_with('\u{feff}') {
        i = 3;
    }
    i = skip_ws(b, i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut node: Option<&'a str> = None;
    let mut error_node: Option<&'a str> = None;
    let mut sign: Option<String> = None;
    i = skip_ws(b, i);
    if b.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        i = skip_ws(b, i);
        let (ks, ke) = string_span(b, i)?;
        let key = &body[ks + 1..ke - 1];
        i = skip_ws(b, ke);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let (vs, ve) = value_span(b, i)?;
        let value = &body[vs..ve];
        if key == node_name && node.is_none() && value.starts_with('{') {
            node = Some(value);
        } else if key == "error_response" && error_node.is_none() && value.starts_with('{') {
            error_node = Some(value);
        } else if key == "sign" && sign.is_none() && value.starts_with('"') {
            sign = serde_json::from_str::<String>(value).ok();
        }
        i = skip_ws(b, ve);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break,
            _ => return None,
        }
    }
    if !body[i + 1..].trim().is_empty() {
        return None;
    }
    match (node, error_node) {
        (Some(n), _) => Some(ResponseParts { node: n, is_error_response: false, sign }),
        (None, Some(e)) => Some(ResponseParts { node: e, is_error_response: true, sign }),
        (None, None) => None,
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// A JSON string starting at `i`: returns `(start, end)` with `end` just past the closing quote.
fn string_span(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'"' => return Some((i, j + 1)),
            b'\\' => j += 2,
            c if *c < 0x20 => return None,
            _ => j += 1,
        }
    }
}

/// Any JSON value starting at `i` (objects and arrays matched iteratively, strings skipped).
fn value_span(b: &[u8], i: usize) -> Option<(usize, usize)> {
    match b.get(i)? {
        b'"' => string_span(b, i),
        b'{' | b'[' => {
            let mut stack: Vec<u8> = Vec::new();
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        let (_, e) = string_span(b, j)?;
                        j = e;
                        continue;
                    }
                    c @ (b'{' | b'[') => stack.push(if *c == b'{' { b'}' } else { b']' }),
                    c @ (b'}' | b']') => {
                        if stack.pop()? != *c {
                            return None;
                        }
                        if stack.is_empty() {
                            return Some((i, j + 1));
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while let Some(c) = b.get(j) {
                if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.') {
                    j += 1;
                } else {
                    break;
                }
            }
            if j == i {
                None
            } else {
                Some((i, j))
            }
        }
    }
}

/// Verifies a response node's signature (RSA2) over its exact text; like the official Java SDK,
/// retries with `\/` unescaped when the text contains it.
pub fn verify_response_node(key: &PublicKey, node: &str, sign: &str) -> bool {
    if key.verify_sha256_b64(node.as_bytes(), sign) {
        return true;
    }
    node.contains("\\/") && key.verify_sha256_b64(node.replace("\\/", "/").as_bytes(), sign)
}

/// A wire amount: `"88.88"`, `"100"`, `"0.1"` (at most two decimals, no sign, no separators).
pub fn parse_amount(s: &str) -> Option<Money> {
    let s = s.trim();
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if int.is_empty() || int.len() > 13 || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 2 || !f.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    Money::parse(s).ok()
}

/// A wire amount given as a JSON string or a JSON number (SDKs send both, A.6).
pub fn json_amount(v: &serde_json::Value) -> Option<Money> {
    match v {
        serde_json::Value::String(s) => parse_amount(s),
        serde_json::Value::Number(n) => parse_amount(&n.to_string()),
        _ => None,
    }
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time.
pub fn fmt_time(ms: Millis) -> String {
    clinicpay::time::fmt_second(ms)
}

/// Parses `yyyy-MM-dd HH:mm:ss` (optionally with `.SSS`) as Beijing time.
pub fn parse_time(s: &str) -> Option<Millis> {
    use chrono::TimeZone;
    let s = s.trim();
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    clinicpay::time::beijing().from_local_datetime(&t).single().map(|t| t.timestamp_millis())
}

/// Compact JSON of an ordered list of members, with string values escaped for every SDK's
/// extractor (A.5.2): `/` unescaped, raw UTF-8, and `{`/`}` inside strings written as
/// `\u007b`/`\u007d` so naive brace counters (python-alipay-sdk) stay in step.
pub fn compact_object(members: &[(&str, serde_json::Value)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(k, &mut out);
        out.push(':');
        write_value(v, &mut out);
    }
    out.push('}');
    out
}

fn write_value(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => write_str(s, out),
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(x, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write_value(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn write_str(s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '{' => out.push_str("\\u007b"),
            '}' => out.push_str("\\u007d"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_keys::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    // PROTOCOLS.md D.2 A1: request signature with the MERCHANT key, and the exact form body.
    #[test]
    fn vector_a1_request() {
        let mut params = p(&[
            ("app_id", "2021000000000001"),
            ("method", "alipay.trade.precreate"),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", "2024-01-01 12:00:00"),
            ("version", "1.0"),
            ("notify_url", "http://127.0.0.1:8080/alipay/notify"),
            ("biz_content", r#"{"out_trade_no":"T202401010001","total_amount":"88.88","subject":"测试商品"}"#),
        ]);
        assert_eq!(
            request_sign_content(&params),
            r#"app_id=2021000000000001&biz_content={"out_trade_no":"T202401010001","total_amount":"88.88","subject":"测试商品"}&charset=utf-8&format=JSON&method=alipay.trade.precreate&notify_url=http://127.0.0.1:8080/alipay/notify&sign_type=RSA2&timestamp=2024-01-01 12:00:00&version=1.0"#
        );
        let key = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();
        sign_request(&mut params, &key);
        assert_eq!(
            param(&params, "sign").unwrap(),
            "lW8VsIHF5JJKMbbH0YY68vHFnnWUuHP1Exn55ZFVjFHhfmSw1ePYnTsnwWJu5O4vUy/GtSDoefF3rAiQNHWVpGzNRS2tT8sgvy0lZA18ZgAqlQBXk39fT/Hu3jSaNgTKAlJwb3c5vJy05UMQmMkRD8uCZHSSVRECEGT6dO0nxTWQPUBnLjUqWhicM0tV7byJj1BB0anxPjgjDRKpgdt58+v3p9qAQ0W6/kaMXKij0Aa8eTm/rATKJj+TD8+0Iyep0oHSzf/QAzabui7B7W2Y4rUlRU7GPzjiHGCwPGSWMEkOvTbkZaUsu52quEsd84Yy1XfHxM21DJykVo2tEu/5DA=="
        );
        assert_eq!(
            encode_form(&params),
            "app_id=2021000000000001&method=alipay.trade.precreate&format=JSON&charset=utf-8&sign_type=RSA2&timestamp=2024-01-01+12%3A00%3A00&version=1.0&notify_url=http%3A%2F%2F127.0.0.1%3A8080%2Falipay%2Fnotify&biz_content=%7B%22out_trade_no%22%3A%22T202401010001%22%2C%22total_amount%22%3A%2288.88%22%2C%22subject%22%3A%22%E6%B5%8B%E8%AF%95%E5%95%86%E5%93%81%22%7D&sign=lW8VsIHF5JJKMbbH0YY68vHFnnWUuHP1Exn55ZFVjFHhfmSw1ePYnTsnwWJu5O4vUy%2FGtSDoefF3rAiQNHWVpGzNRS2tT8sgvy0lZA18ZgAqlQBXk39fT%2FHu3jSaNgTKAlJwb3c5vJy05UMQmMkRD8uCZHSSVRECEGT6dO0nxTWQPUBnLjUqWhicM0tV7byJj1BB0anxPjgjDRKpgdt58%2Bv3p9qAQ0W6%2FkaMXKij0Aa8eTm%2FrATKJj%2BTD8%2B0Iyep0oHSzf%2FQAzabui7B7W2Y4rUlRU7GPzjiHGCwPGSWMEkOvTbkZaUsu52quEsd84Yy1XfHxM21DJykVo2tEu%2F5DA%3D%3D"
        );
        // and decoding the form gives the parameters back
        assert_eq!(parse_form(encode_form(&params).as_bytes()), params);
        // empty values are not signed
        let mut with_empty = params.clone();
        with_empty.push(("return_url".into(), String::new()));
        assert_eq!(request_sign_content(&with_empty), request_sign_content(&params));
    }

    // D.2 A2: response signed with the PROVIDER key over the node text.
    #[test]
    fn vector_a2_response() {
        let body = r#"{"alipay_trade_precreate_response":{"code":"10000","msg":"Success","out_trade_no":"T202401010001","qr_code":"https://qr.alipay.com/bax00001"},"sign":"M87qgrzpQRvsEdTZORcTdZMBlfH1ILzEPUSC+bM+aBHfUaV/XcbVPCuA5QlyY0u5TTjstT0urEEE0Kq2ciXYEKgNtg9S09xay9SCLOYOlWGZwxOjpwn73nD9QdshHjwUkLHPJSfhNnPupf3j2q8MFbNeY8cx201qpI3rii7vkNduW1e99vFpv0pt3Ffh1cTpgl+OcPLLaG1JLFFY/e3qUTz5brPUKtwYw2w129kW07D327u2UNd2tBitww8C5Had7h/udV5WjHKkObnVpCMkY6dy3AhB1IkKs4G1Q/KiQ3GBtrPORynWX5JsJj1NIG60Gt3QUYoMrXVVMtE9F/j9Fg=="}"#;
        let parts = extract_response(body, "alipay_trade_precreate_response").unwrap();
        assert_eq!(
            parts.node,
            r#"{"code":"10000","msg":"Success","out_trade_no":"T202401010001","qr_code":"https://qr.alipay.com/bax00001"}"#
        );
        assert!(!parts.is_error_response);
        let key = PublicKey::parse(PROVIDER_PUBLIC).unwrap();
        assert!(verify_response_node(&key, parts.node, parts.sign.as_deref().unwrap()));
        // the sandbox's writer reproduces the node byte for byte, and the same signature
        let ours = compact_object(&[
            ("code", "10000".into()),
            ("msg", "Success".into()),
            ("out_trade_no", "T202401010001".into()),
            ("qr_code", "https://qr.alipay.com/bax00001".into()),
        ]);
        assert_eq!(ours, parts.node);
        let provider = PrivateKey::parse(PROVIDER_PRIVATE).unwrap();
        assert_eq!(provider.sign_sha256_b64(ours.as_bytes()), parts.sign.unwrap());
        // the merchant key does not verify it
        let merchant = PublicKey::parse(MERCHANT_PUBLIC).unwrap();
        assert!(!verify_response_node(&merchant, parts.node, "M87q"));
    }

    const A3_PARAMS: &[(&str, &str)] = &[
        ("app_id", "2021000000000001"),
        ("auth_app_id", "2021000000000001"),
        ("buyer_id", "2088102177846880"),
        ("buyer_logon_id", "abc***@sandbox.com"),
        ("buyer_pay_amount", "88.88"),
        ("charset", "utf-8"),
        ("fund_bill_list", r#"[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]"#),
        ("gmt_create", "2024-01-01 12:00:05"),
        ("gmt_payment", "2024-01-01 12:00:10"),
        ("invoice_amount", "88.88"),
        ("notify_id", "2024010100222120010012345678"),
        ("notify_time", "2024-01-01 12:00:11"),
        ("notify_type", "trade_status_sync"),
        ("out_trade_no", "T202401010001"),
        ("point_amount", "0.00"),
        ("receipt_amount", "88.88"),
        ("seller_id", "2088102177000000"),
        ("subject", "测试商品"),
        ("total_amount", "88.88"),
        ("trade_no", "2024010122001400001234567890"),
        ("trade_status", "TRADE_SUCCESS"),
        ("version", "1.0"),
    ];
    const A3_SIGN: &str = "C0wosQMCV9tqXmOrJKKZ/fpxOiP0a+XbQSeBjRJRJsl9KP6U/E2so36PDKYfVO678kNFMdD8qwru+0NlmFAlnXjtNJlXgjmvO8uXpvyivnc57gKmqmjL3pfUcGzioR9cG1t6PF9BxpO2P/aHYPx6+v3nCvm+gIRd5/P0T4LaJ83uhwDy3IRs6fZr+403E3QtxlQ/hxB4I6H9yVE9ODNeJpSVLMgTAIqDLX4UjM/HbIpP5F9yO/jRJS9LF4xR5GgUYumvTfXrwysKEHfHFrfUJS6/is4WehJnnyW3v1vRBMmGyh2RSb7PWPd8ZY3nHgUGbBzZzKPHdu/LRTGUBwDawQ==";

    // D.2 A3: trade notification, V1.
    #[test]
    fn vector_a3_notification() {
        let mut params = p(A3_PARAMS);
        params.push(("sign_type".into(), "RSA2".into()));
        params.push(("sign".into(), A3_SIGN.into()));
        let key = PublicKey::parse(PROVIDER_PUBLIC).unwrap();
        assert!(verify_notify_v1(&params, &key));
        assert!(!verify_notify_v2(&params, &key));
        // the sandbox's signer produces exactly this signature
        let mut mine = p(A3_PARAMS);
        sign_notify_v1(&mut mine, &PrivateKey::parse(PROVIDER_PRIVATE).unwrap());
        assert_eq!(param(&mine, "sign"), Some(A3_SIGN));
        // tampering fails
        let mut bad = params.clone();
        bad[4].1 = "0.01".into();
        assert!(!verify_notify_v1(&bad, &key));
    }

    // D.1 T-A1: a production notification (V1: fails when sign_type is kept).
    #[test]
    fn vector_t_a1_production_notification() {
        let key = PublicKey::parse("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqObrdC7hrgAVM98tK0nv3hSQRGGKT4lBsQjHiGjeYZjOPIPHR5knm2jnnz/YGIXIofVHkA/tAlBAd5DrY7YpvI4tP5EONLtZKC2ghBMx7McI2wRD0xiqzxOQr1FuhZGJ8/AUokBzJrzY+aGX2xcOrxFYRlFilvVLTXg4LWjR1tdPkO6+i7wQZAIVMClPkwVRZEbaERRHlKqTzv2gGv5rDU8gRoe1LeaN+6BlbTqHWkQcNCUNrA8C6l17XAXGKDsm/9TFWwO8EPHHHCaQdjtV5/FdcWIt+L8SR1ss7EXTjYDFtxcKVv9rEoY1lX8T4mX+GbXfZHraG5NCF1+XioL5JwIDAQAB").unwrap();
        let text = r#"app_id=2019073166072302&auth_app_id=2019073166072302&buyer_id=2088102534368455&buyer_logon_id=xud***@126.com&buyer_pay_amount=0.10&charset=utf-8&fund_bill_list=[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]&gmt_create=2019-08-15 15:56:22&gmt_payment=2019-08-15 15:56:24&invoice_amount=0.10&notify_id=2019081500222155624068450559358070&notify_time=2019-08-15 15:56:25&notify_type=trade_status_sync&out_trade_no=20190815155618536-564-57&point_amount=0.00&receipt_amount=0.10&seller_email=z97-yuquerevenue@service.aliyun.com&seller_id=2088531891668739&subject=语雀空间 500人规模&total_amount=0.10&trade_no=2019081522001468450512505578&trade_status=TRADE_SUCCESS&version=1.0"#;
        let mut params: Params = text
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        params.push(("sign_type".into(), "RSA2".into()));
        params.push(("sign".into(), "QfTb8tqE1BMhS5qAnXtvsF3/jBkEvu9q9en0pdbBUDDjvKycZhQb7h8GDs4FKfi049PynaNuatxSgLb/nLWZpXyyh0LEWdK2S6Ri7nPwrVgOs08zugLO20vOQz44y3ti2Ncm8/wZts1Fr2gZ7pShnVX3d1B50hbsXnObT1r/U8ONNQjWXd0HIul4TG+Q3fm3svmSvFEy0WnzuhcyHPX5Gm4ELNctL6Qd5YniGJFNcc7kopHYtI/XD9YCKCH6Ct02rzUs9i11C9CsadtZn+WhxF26Dqt9sGEFajkJ8cxUTLi8+VCpLHsgPE8P0y095uQcDdK0YjCh4x7wVSov+lrmOQ==".into()));
        assert_eq!(notify_sign_content_v1(&params), text);
        assert!(verify_notify_v1(&params, &key));
        assert!(!verify_notify_v2(&params, &key), "keeping sign_type must fail");
        // also through the form encoding it would arrive in
        assert!(verify_notify_v1(&parse_form(encode_form(&params).as_bytes()), &key));
    }

    // D.1 T-A3: an open-platform notice signed with sign_type included (V2).
    #[test]
    fn vector_t_a3_v2_notification() {
        let key = PublicKey::parse("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAk6DCsBIUhWriFohzRV8Fic6oQWNnLKKILNk97VU5qcHEuxYzCujKoyva5gy1170mFJw4IcgJF8AyS7iDUwzAwF4Pp9CpWxDhUhe7mdQJhjBmvTcPLGFFrzlj6unO5lAcbdwaxPUtSxOaNxPJGrTK/wnKQSbjTMMltp1J68q2Tfgrsn/NdZ6lrxO9rvmky8kowqaH5NjntyHO59jCGabMj5sI14z8N61wB/QuIJrDuzIPMPrSNbq0cOWcSCDG09oUHTp9fk7suDB8UiFcmVTXOvK3d4HbeX8V9YsEMxrwxEoYgRRj6K2qrC6oxw480cqf2ueumCmHg6xrcgkyXK81hwIDAQAB").unwrap();
        let params = p(&[
            ("app_id", "2017122801303261"),
            ("charset", "UTF-8"),
            ("commodity_order_id", "2019030800000018079639"),
            ("contactor", "技术支持测试的公司"),
            ("merchant_pid", "2088721996721370"),
            ("method", "alipay.open.servicemarket.order.notify"),
            ("name", "技术支持测试的公司"),
            ("notify_id", "2019030800222102023008121054923345"),
            ("notify_time", "2019-03-08 10:20:23"),
            ("notify_type", "servicemarket_order_notify"),
            ("order_item_num", "1"),
            ("order_ticket", "29b1c37d99ab48c5bd5bdaeaeaefbB37"),
            ("order_time", "2019-03-08 10:20:08"),
            ("phone", "17826894615"),
            ("service_code", "58621634"),
            ("sign_type", "RSA2"),
            ("timestamp", "2019-03-08 10:20:23"),
            ("title", "麦禾商城模版"),
            ("total_price", "0.00"),
            ("version", "1.0"),
            ("sign", "MsK5SCw8oqLw4f0hiNSd5OVGXxBY3wnQeT8vn5PklJSZFWSZbK4hQbNvkp4ZezeXQH514cEv0ul6Qow8yh6e6yM06LfEL+EZjcpZ0nxzFGRNQ5qq2AUc1OaXQdk92AGvxh+Iq4NGpPQFBd4D8EBJa3NJd8+czMfQskceosOQFqUtLQMYa5DPs+VpN7VM5BdXjaVIuKn5d9Wm2B9dI9ObIM+YRySDkZZPv14DVmUvcrcqJfOR8aHvtSd7B4l92wUQPQgQKNcOQho7xOHS/Bk+Y74AZL2y7TkNmdDoq9OGsThuF5tDW9rI9nVwXxOtsuB+bstra+W7aw9x9DvkKgdSRw=="),
        ]);
        assert!(verify_notify_v2(&params, &key));
        assert!(!verify_notify_v1(&params, &key), "dropping sign_type must fail");
    }

    // D.1 T-A2: a real sandbox response.
    #[test]
    fn vector_t_a2_response() {
        let key = PublicKey::parse("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAk7LzhmMa2c4qQd4fqAqenfbuFoA7stPKvoS1LrZEsVnOOGUUjwoa1oU9xsSPjcOWhIerU/VAN4J95GIAXx59ipcleIyfLn2FhHXPgLJpvo+b2jJFyn/1/DbeJDh+0yDVAOf50Z7HhI0mdUhFMkXlT7BU0ZMtJf/TmISFEfhDU/w6qFd6D42L97byAkq0K6LroglSVF24GqJEa7hSeUIkZWj7RasykXrc2uVJ1+ejkXE0LyPxa2AHykMGbJLf5SiZvaNzUZgnKIR36mLOHpQ/2JCXxhXZYUWHzy0kMH54JcUEeksFWBYLGvLjV1phbcUIc3Q76tIuqApY6E222OoZZQIDAQAB").unwrap();
        let body = r#"{"alipay_open_file_upload_response":{"code":"10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"},"sign":"F+LDzpTNiavn7xVZPGuPCSSVRSmWzJGgtuji6tVELGEaqMaNj0jRKXUEr5nloZJBBmwEnddOyCjjepMmrTKTvoOqQ0Efxpr/R1iEeHTHVbb/Q8TTh6Up5gHJDkILdaWS2q1cWeQ6VT+HQY9P3WRXS7uhILHuDODIhpAyCu5KhWGt0rMCIG+Im6NODJP2oohtSCtmTFXg58HH587Z2y2bdbjzOxLvzD9IrU1imghXQ2S/Q+wMIvRk9on6cWnBLkrNvJKapA2ReNGWOwyuASvB9zDVzhMPbR+3mfRGkVDxsq5HYLjBKGskJMXHw0HuugZij6ScRuaLPODhmHwr/pJ9yw=="}"#;
        let parts = extract_response(body, "alipay_open_file_upload_response").unwrap();
        assert_eq!(parts.node, r#"{"code":"10000","msg":"Success","file_id":"CAxAToWB1JsAAAAAAAAAAAAADgSLAQBr"}"#);
        assert!(verify_response_node(&key, parts.node, parts.sign.as_deref().unwrap()));
    }

    // D.1 T-A4: the three getSignStr() cases of the Node SDK's tests.
    #[test]
    fn vector_t_a4_node_extraction() {
        let sig = "P8xrBWqZCUv11UrEBjhQ4Sk3hyj4607qehO2VbKIS0hWa4U+NeLlOftqTyhGv+x1lzfqN590Y/8CaNIzEEg06FiNWJlUFM/uEFJLzSKGse4MjHbblpiSzI3eCV5RzxH26wZbEd9wyVYYi0pHFBf35UrBva47g7b5EuKCHfoVA95/zin9fAyb3xhhiHhmfGaWIDV/1LmE2vtqtOHQnISbY/deC71U614ySZ3YB97ws8npCcCJ+tgZvhHPkMRGvmyYPCRDB/aIN/sKDSLtfPp0u8DxE8pHLvCHm3wR84MQxqNbKgpd8NTKNvH+obELsbCrqPhjW7qI48634qx6enDupw==";
        let name = "alipay_offline_material_image_upload_response";
        let node = r#"{"code":"10000","msg":"Success","image_id":"Zp1Nm6FDTZaEuSSniGd5awAAACMAAQED","image_url":"http:\/\/oalipay-dl-django.alicdn.com\/rest\/1.0\/image?fileIds=Zp1Nm6FDTZaEuSSniGd5awAAACMAAQED&zoom=original"}"#;
        // (1) normal
        let body1 = format!(r#"{{"{name}":{node},"sign":"{sig}"}}"#);
        let parts = extract_response(&body1, name).unwrap();
        assert_eq!(parts.node, node);
        assert_eq!(parts.sign.as_deref(), Some(sig));
        // (2) newlines and spaces around the colon and before "sign"
        let body2 = format!("{{\"{name}\"\n        :\n        {node},\n\n          \"sign\"  :  \"{sig}\"}}");
        let parts = extract_response(&body2, name).unwrap();
        assert_eq!(parts.node, node);
        assert_eq!(parts.sign.as_deref(), Some(sig));
        // (3) the node itself has a "sign" member, which stays in the node
        let node3 = r#"{"code":"10000","sign":"xxx","msg":"Success","image_id":"Zp1Nm6FDTZaEuSSniGd5awAAACMAAQED","image_url":"http:\/\/oalipay-dl-django.alicdn.com\/rest\/1.0\/image?fileIds=Zp1Nm6FDTZaEuSSniGd5awAAACMAAQED&zoom=original"}"#;
        let body3 = format!("{{\"{name}\"\n        :\n        {node3},\n\n          \"sign\"  :  \"{sig}\"}}");
        let parts = extract_response(&body3, name).unwrap();
        assert_eq!(parts.node, node3);
        assert_eq!(parts.sign.as_deref(), Some(sig));
    }

    #[test]
    fn extraction_edge_cases() {
        let n = "alipay_trade_query_response";
        // error_response is used when the method's node is absent
        let e = extract_response(r#"{"error_response":{"code":"40002","msg":"Invalid Arguments"},"sign":"abc"}"#, n)
            .unwrap();
        assert!(e.is_error_response);
        assert_eq!(e.node, r#"{"code":"40002","msg":"Invalid Arguments"}"#);
        // unsigned
        let u = extract_response(r#"{"alipay_trade_query_response":{"code":"10000"}}"#, n).unwrap();
        assert_eq!(u.sign, None);
        // braces and quotes inside strings, nested objects and arrays
        let tricky = r#"{"alipay_trade_query_response":{"a":"}\"{","b":[{"c":"]"}],"d":{"e":null}},"sign":"s\/x"}"#;
        let t = extract_response(tricky, n).unwrap();
        assert_eq!(t.node, r#"{"a":"}\"{","b":[{"c":"]"}],"d":{"e":null}}"#);
        assert_eq!(t.sign.as_deref(), Some("s/x"));
        // the node name inside a string value earlier is not a member
        let decoy =
            r#"{"x":"\"alipay_trade_query_response\":{}","alipay_trade_query_response":{"code":"10000"},"sign":"s"}"#;
        assert_eq!(extract_response(decoy, n).unwrap().node, r#"{"code":"10000"}"#);
        for bad in [
            "",
            "{",
            "[]",
            "{}",
            r#"{"alipay_trade_query_response":{"code":"10000"}"#,
            r#"{"alipay_trade_query_response":{"code":"10000"]}"#,
            r#"{"alipay_trade_query_response":{"code":"10000"}} trailing"#,
            r#"{"other_response":{"code":"10000"},"sign":"s"}"#,
            r#"{"alipay_trade_query_response":"text","sign":"s"}"#,
        ] {
            assert!(extract_response(bad, n).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn amounts_and_times() {
        assert_eq!(parse_amount("88.88"), Money::parse("88.88").ok());
        assert_eq!(parse_amount("100"), Money::parse("100").ok());
        assert_eq!(parse_amount("0.1"), Money::parse("0.10").ok());
        for bad in ["", "-1", "1,000.00", "1.234", "¥1", "1.", ".5", "1e3", "abc"] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
        assert_eq!(json_amount(&serde_json::json!(0.01)), Money::parse("0.01").ok());
        assert_eq!(json_amount(&serde_json::json!(100)), Money::parse("100").ok());
        assert_eq!(json_amount(&serde_json::json!("12.30")), Money::parse("12.30").ok());
        assert_eq!(json_amount(&serde_json::json!(true)), None);
        let ms = parse_time("2024-01-01 12:00:00").unwrap();
        assert_eq!(fmt_time(ms), "2024-01-01 12:00:00");
        assert_eq!(parse_time("2024-01-01 12:00:00.320"), Some(ms + 320));
        assert_eq!(parse_time("2024-01-01T12:00:00"), None);
    }

    #[test]
    fn compact_writer_escapes_for_naive_extractors() {
        let s = compact_object(&[("sub_msg", "a{b}c\"/\n中".into()), ("n", serde_json::json!([1, {"k": "v"}]))]);
        assert_eq!(s, r#"{"sub_msg":"a\u007bb\u007dc\"/\n中","n":[1,{"k":"v"}]}"#);
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["sub_msg"], "a{b}c\"/\n中");
    }

    proptest::proptest! {
        #[test]
        fn extraction_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let s = String::from_utf8_lossy(&body);
            let _ = extract_response(&s, "alipay_trade_query_response");
            let _ = parse_form(&body);
        }

        #[test]
        fn extraction_never_panics_on_jsonish(s in r#"[{}\[\]":,\\ a-z_0-9]{0,200}"#) {
            let _ = extract_response(&s, "a_response");
            let body = format!("{{\"a_response\":{s}");
            let _ = extract_response(&body, "a_response");
        }
    }
}
