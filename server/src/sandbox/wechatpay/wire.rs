//! The WeChat Pay sandbox's own reading of APIv3 (PROTOCOLS.md Part B): the `Authorization`
//! header it checks, the messages it signs, the resource encryption of notifications, the
//! request bodies it accepts and the bill file it writes. Written from the protocol document,
//! not shared with our client (`gateways/wechatpay`); the answers it sends are built as JSON
//! values in `trades.rs`.

use crate::crypto;
use clinicpay::money::Money;
use serde::Deserialize;
use serde_json::{json, Value};

/// B.2: the only signature scheme.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
/// B.3: a signature more than five minutes from the clock is refused.
pub const MAX_SKEW_SECS: i64 = 300;

/// `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n` (B.2).
pub fn request_message(method: &str, url: &str, timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{method}\n{url}\n{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// `TIMESTAMP\nNONCE\nBODY\n` (B.3), for answers and notifications.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// What a caller's `Authorization` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub mchid: String,
    pub nonce_str: String,
    pub timestamp: String,
    pub serial_no: String,
    pub signature: String,
}

/// `WECHATPAY2-SHA256-RSA2048 k="v",k="v",…` — the pairs in any order (B.2).
pub fn read_authorization(header: &str) -> Option<Authorization> {
    let rest = header.trim().strip_prefix(SCHEME)?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let mut pairs = std::collections::HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim().strip_prefix('"')?.strip_suffix('"')?;
        pairs.insert(k.trim().to_string(), v.to_string());
    }
    let mut take = |k: &str| pairs.remove(k).filter(|v| !v.is_empty());
    Some(Authorization {
        mchid: take("mchid")?,
        nonce_str: take("nonce_str")?,
        timestamp: take("timestamp")?,
        serial_no: take("serial_no")?,
        signature: take("signature")?,
    })
}

/// A merchant serial compared as WeChat does: hex digits, case and leading zeros aside (B.4 ⚠).
pub fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_start_matches('0').to_ascii_uppercase();
    !a.trim().is_empty() && norm(a) == norm(b)
}

/// B.5: AEAD_AES_256_GCM under the APIv3 key (32 ASCII bytes), a fresh 12-character nonce,
/// `associated_data` always present.
pub fn encrypted_resource(
    apiv3_key: &str,
    original_type: Option<&str>,
    aad: &str,
    plaintext: &[u8],
) -> anyhow::Result<Value> {
    let nonce = crypto::random_alnum(12);
    let sealed = crypto::aes_gcm_encrypt(apiv3_key.as_bytes(), nonce.as_bytes(), aad.as_bytes(), plaintext)?;
    let mut r = json!({
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": crypto::b64(&sealed),
        "associated_data": aad,
        "nonce": nonce,
    });
    if let Some(t) = original_type {
        r["original_type"] = json!(t);
    }
    Ok(r)
}

#[derive(Debug, Clone, Deserialize)]
pub struct Amount {
    pub total: i64,
    #[serde(default)]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Payer {
    #[serde(default)]
    pub openid: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct H5Info {
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SceneInfo {
    #[serde(default)]
    pub payer_client_ip: Option<String>,
    #[serde(default)]
    pub h5_info: Option<H5Info>,
}

/// A prepay request (native, jsapi, h5, app) as B.7 lists its fields.
#[derive(Debug, Clone, Deserialize)]
pub struct Prepay {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    #[serde(default)]
    pub time_expire: Option<String>,
    #[serde(default)]
    pub attach: Option<String>,
    pub notify_url: String,
    pub amount: Amount,
    #[serde(default)]
    pub payer: Option<Payer>,
    #[serde(default)]
    pub scene_info: Option<SceneInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefundAmount {
    pub refund: i64,
    pub total: i64,
    pub currency: String,
}

/// A refund request (B.7).
#[derive(Debug, Clone, Deserialize)]
pub struct RefundRequest {
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub out_trade_no: Option<String>,
    pub out_refund_no: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub notify_url: Option<String>,
    pub amount: RefundAmount,
}

/// An RFC 3339 instant (`2018-06-08T10:34:56+08:00`, fractions allowed) as Unix ms.
pub fn rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.timestamp_millis())
}

/// Fen as the bill writes yuan: `12.34`.
pub fn yuan(fen: i64) -> String {
    Money::from_fen(fen).map(|m| m.plain()).unwrap_or_else(|_| "0.00".into())
}

/// The `ALL` bill's columns, as B.7's sample shows them.
pub const BILL_HEADER: [&str; 27] = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
];

pub const BILL_SUMMARY_HEADER: [&str; 7] =
    ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额", "申请退款总金额"];

/// The bill file: UTF-8 with BOM, CRLF, a plain header, every data cell after a backtick, then
/// the summary header and its row (B.7).
pub fn bill_file(rows: &[Vec<String>], summary: &[String]) -> Vec<u8> {
    let ticked = |cells: &[String]| cells.iter().map(|c| format!("`{c}")).collect::<Vec<_>>().join(",");
    let mut lines = vec![BILL_HEADER.join(",")];
    lines.extend(rows.iter().map(|r| ticked(r)));
    lines.push(BILL_SUMMARY_HEADER.join(","));
    lines.push(ticked(summary));
    format!("\u{feff}{}\r\n", lines.join("\r\n")).into_bytes()
}

/// Text safe for a bill cell (no backtick, no line break).
pub fn cell(s: &str) -> String {
    s.chars().map(|c| if matches!(c, '`' | '\r' | '\n') { ' ' } else { c }).collect()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_pairs_in_any_order() {
        let wpy = r#"WECHATPAY2-SHA256-RSA2048 mchid="1230000109",nonce_str="N",signature="S==",timestamp="1704081600",serial_no="3775B6A4""#;
        let a = read_authorization(wpy).unwrap();
        assert_eq!((a.mchid.as_str(), a.timestamp.as_str(), a.signature.as_str()), ("1230000109", "1704081600", "S=="));
        assert!(read_authorization("WECHATPAY2-SHA256-RSA2048mchid=\"1\"").is_none());
        assert!(
            read_authorization(r#"OTHER mchid="1",nonce_str="N",signature="S",timestamp="1",serial_no="2""#).is_none()
        );
        assert!(read_authorization(r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="N",timestamp="1",serial_no="2""#)
            .is_none());
        assert_eq!(request_message("GET", "/v3/x", "1", "n", b""), b"GET\n/v3/x\n1\nn\n\n");
        assert!(same_serial("03775b6a4", "3775B6A4"));
        assert!(!same_serial("", ""));
    }

    #[test]
    fn resources_decrypt_with_the_apiv3_key() {
        let key = "0123456789abcdef0123456789abcdef";
        let r = encrypted_resource(key, Some("transaction"), "transaction", b"{}").unwrap();
        let sealed = crypto::unb64(r["ciphertext"].as_str().unwrap()).unwrap();
        let plain =
            crypto::aes_gcm_decrypt(key.as_bytes(), r["nonce"].as_str().unwrap().as_bytes(), b"transaction", &sealed)
                .unwrap();
        assert_eq!(plain, b"{}");
        let file = String::from_utf8(bill_file(&[vec!["a".into()]], &["1".into()])).unwrap();
        assert!(file.starts_with('\u{feff}') && file.ends_with("\r\n") && file.contains("\r\n`a\r\n"));
    }
}
