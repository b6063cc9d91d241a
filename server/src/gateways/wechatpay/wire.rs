//! WeChat Pay APIv3 wire format (PROTOCOLS.md Part B), shared by the merchant client and the
//! sandbox: signed messages, the `Authorization` header, encrypted resources, the JSON objects and
//! the trade bill file.

use crate::crypto;
use anyhow::{anyhow, bail, Context};
use clinicpay::money::Money;
use clinicpay::ports::StatementLine;
use serde::{Deserialize, Serialize};

/// The only signature scheme of APIv3.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
/// The only resource encryption algorithm.
pub const AEAD: &str = "AEAD_AES_256_GCM";
/// Allowed clock difference for signed responses and notifications (WGO rejects ≥ 300 s).
pub const MAX_SKEW_SECS: i64 = 300;

pub const H_TIMESTAMP: &str = "wechatpay-timestamp";
pub const H_NONCE: &str = "wechatpay-nonce";
pub const H_SIGNATURE: &str = "wechatpay-signature";
pub const H_SERIAL: &str = "wechatpay-serial";
pub const H_SIGNATURE_TYPE: &str = "wechatpay-signature-type";
pub const H_REQUEST_ID: &str = "request-id";

/// `METHOD\nCANONICAL_URL\nTIMESTAMP\nNONCE\nBODY\n` (B.2).
pub fn request_message(method: &str, canonical_url: &str, timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(method.len() + canonical_url.len() + body.len() + 64);
    for part in [method.as_bytes(), canonical_url.as_bytes(), timestamp.as_bytes(), nonce.as_bytes(), body] {
        m.extend_from_slice(part);
        m.push(b'\n');
    }
    m
}

/// `TIMESTAMP\nNONCE\nBODY\n` (B.3), for responses and notifications.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 64);
    for part in [timestamp.as_bytes(), nonce.as_bytes(), body] {
        m.extend_from_slice(part);
        m.push(b'\n');
    }
    m
}

/// The `Authorization` header value (Go/Java pair order).
pub fn authorization(mchid: &str, nonce: &str, timestamp: &str, serial_no: &str, signature: &str) -> String {
    format!(
        r#"{SCHEME} mchid="{mchid}",nonce_str="{nonce}",timestamp="{timestamp}",serial_no="{serial_no}",signature="{signature}""#
    )
}

/// The parts of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthParams {
    pub mchid: String,
    pub nonce_str: String,
    pub timestamp: String,
    pub serial_no: String,
    pub signature: String,
}

/// Parses `WECHATPAY2-SHA256-RSA2048 k="v",…` with the pairs in any order (SDKs differ).
pub fn parse_authorization(header: &str) -> Option<AuthParams> {
    let rest = header.trim().strip_prefix(SCHEME)?;
    if !rest.starts_with(' ') {
        return None;
    }
    let mut p = AuthParams::default();
    let mut rest = rest.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let end = after.find('"')?;
        let value = after[..end].to_string();
        match key {
            "mchid" => p.mchid = value,
            "nonce_str" => p.nonce_str = value,
            "timestamp" => p.timestamp = value,
            "serial_no" => p.serial_no = value,
            "signature" => p.signature = value,
            _ => {}
        }
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    if p.mchid.is_empty() || p.nonce_str.is_empty() || p.timestamp.is_empty() || p.signature.is_empty() {
        return None;
    }
    Some(p)
}

/// An encrypted `resource` (notifications) or `encrypt_certificate` (certificate download).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
    pub algorithm: String,
    pub ciphertext: String,
    /// Always sent (WJAVA dereferences it); absent is read as "".
    #[serde(default)]
    pub associated_data: String,
    pub nonce: String,
}

/// AEAD_AES_256_GCM with the APIv3 key taken as ASCII bytes (B.5). A fresh 12-character nonce.
pub fn encrypt_resource(
    apiv3_key: &[u8],
    original_type: Option<&str>,
    associated_data: &str,
    plaintext: &[u8],
) -> anyhow::Result<EncryptedResource> {
    let nonce = crypto::random_alnum(12);
    let ct = crypto::aes_gcm_encrypt(apiv3_key, nonce.as_bytes(), associated_data.as_bytes(), plaintext)?;
    Ok(EncryptedResource {
        original_type: original_type.map(str::to_string),
        algorithm: AEAD.into(),
        ciphertext: crypto::b64(&ct),
        associated_data: associated_data.into(),
        nonce,
    })
}

/// Decrypts a resource (a 16-byte key, as in some SDK test vectors, selects AES-128-GCM).
pub fn decrypt_resource(apiv3_key: &[u8], r: &EncryptedResource) -> anyhow::Result<Vec<u8>> {
    if r.algorithm != AEAD {
        bail!("unsupported algorithm {}", r.algorithm);
    }
    let ct = crypto::unb64(&r.ciphertext)?;
    crypto::aes_gcm_decrypt(apiv3_key, r.nonce.as_bytes(), r.associated_data.as_bytes(), &ct)
}

/// The error body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

// ----- request bodies ------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub total: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct H5Info {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SceneInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h5_info: Option<H5Info>,
}

/// Native / JSAPI / H5 / APP prepay request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepayRequest {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    pub notify_url: String,
    pub amount: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene_info: Option<SceneInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAmountReq {
    pub refund: i64,
    pub total: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundCreate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    pub out_refund_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funds_account: Option<String>,
    pub amount: RefundAmountReq,
}

// ----- response / notification objects -------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxAmount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_currency: Option<String>,
}

/// A transaction (query answer, `TRANSACTION.SUCCESS` plaintext).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_type: Option<String>,
    #[serde(default)]
    pub trade_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_state_desc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<TxAmount>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAmount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_refund: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_refund: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_refund: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// A refund as the refund APIs return it (`status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    #[serde(default)]
    pub refund_id: String,
    #[serde(default)]
    pub out_refund_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_received_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funds_account: Option<String>,
    #[serde(default)]
    pub amount: RefundAmount,
}

/// A refund notification's plaintext (`refund_status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundNotice {
    #[serde(default)]
    pub mchid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    #[serde(default)]
    pub out_refund_no: String,
    #[serde(default)]
    pub refund_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_received_account: Option<String>,
    #[serde(default)]
    pub amount: RefundAmount,
}

/// A notification envelope (B.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    #[serde(default)]
    pub create_time: String,
    #[serde(default)]
    pub resource_type: String,
    pub event_type: String,
    #[serde(default)]
    pub summary: String,
    pub resource: EncryptedResource,
}

/// `/v3/certificates` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateList {
    pub data: Vec<CertificateEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateEntry {
    pub serial_no: String,
    #[serde(default)]
    pub effective_time: String,
    #[serde(default)]
    pub expire_time: String,
    pub encrypt_certificate: EncryptedResource,
}

/// `/v3/bill/tradebill` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillLink {
    pub hash_type: String,
    pub hash_value: String,
    pub download_url: String,
}

// ----- trade bill ----------------------------------------------------------------------------

/// Header of a `bill_type=ALL` trade bill (27 columns, B.7).
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

/// Writes a bill: UTF-8 BOM, CRLF, a plain header row, data cells each prefixed with a
/// backtick, then the summary header and row. Cells must not contain CR, LF or "`".
pub fn render_bill(header: &[&str], rows: &[Vec<String>], summary_header: &[&str], summary: &[String]) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    let ticked = |cells: &[String]| cells.iter().map(|c| format!("`{c}")).collect::<Vec<_>>().join(",");
    for r in rows {
        out.push_str(&ticked(r));
        out.push_str("\r\n");
    }
    out.push_str(&summary_header.join(","));
    out.push_str("\r\n");
    out.push_str(&ticked(summary));
    out.push_str("\r\n");
    out.into_bytes()
}

/// Makes text safe for a bill cell.
pub fn bill_cell(s: &str) -> String {
    s.chars().map(|c| if matches!(c, '`' | '\r' | '\n') { ' ' } else { c }).collect()
}

/// A parsed bill: its header, data rows and summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub summary_header: Vec<String>,
    pub summary: Vec<String>,
}

impl Bill {
    fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

fn split_cells(line: &str) -> Vec<String> {
    // data cells are "`value" joined by ","; values may contain commas but not ",`"
    line.strip_prefix('`').unwrap_or(line).split(",`").map(str::to_string).collect()
}

/// Parses a trade bill file (uncompressed bytes).
pub fn parse_bill(bytes: &[u8]) -> anyhow::Result<Bill> {
    let text = std::str::from_utf8(bytes).context("the bill is not UTF-8")?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    if lines.len() < 3 {
        bail!("the bill has {} lines; a header, a summary header and a summary row are required", lines.len());
    }
    let header: Vec<String> = lines[0].split(',').map(|h| h.trim().to_string()).collect();
    let summary_at = lines
        .iter()
        .rposition(|l| l.starts_with("总交易单数"))
        .ok_or_else(|| anyhow!("the bill has no summary header (总交易单数)"))?;
    if summary_at == 0 || summary_at + 1 >= lines.len() {
        bail!("the bill's summary is misplaced");
    }
    let rows = lines[1..summary_at].iter().filter(|l| !l.trim().is_empty()).map(|l| split_cells(l)).collect();
    Ok(Bill {
        header,
        rows,
        summary_header: lines[summary_at].split(',').map(str::to_string).collect(),
        summary: split_cells(lines[summary_at + 1]),
    })
}

fn money_cell(s: &str) -> anyhow::Result<Money> {
    Money::parse(s).map_err(|e| anyhow!("amount {s:?}: {e}"))
}

/// Turns a trade bill into statement lines: `SUCCESS` rows are payments (positive), `REFUND` rows
/// refunds (negative); other states (e.g. `REVOKED`) are skipped.
pub fn bill_statement_lines(bill: &Bill) -> anyhow::Result<Vec<StatementLine>> {
    let need = |name: &str| bill.col(name).ok_or_else(|| anyhow!("the bill has no column {name}"));
    let (c_time, c_txn, c_out, c_state) =
        (need("交易时间")?, need("微信订单号")?, need("商户订单号")?, need("交易状态")?);
    let c_settle = need("应结订单金额")?;
    let c_order = bill.col("订单金额");
    let c_refund_no = bill.col("商户退款单号");
    let c_refund = need("退款金额")?;
    let c_refund_req = bill.col("申请退款金额");
    let c_fee = bill.col("手续费");
    let mut out = Vec::new();
    for (i, row) in bill.rows.iter().enumerate() {
        let cell = |c: usize| -> anyhow::Result<&str> {
            row.get(c).map(|s| s.trim()).ok_or_else(|| anyhow!("bill row {} has only {} cells", i + 1, row.len()))
        };
        let opt_cell = |c: Option<usize>| c.and_then(|c| row.get(c)).map(|s| s.trim()).filter(|s| !s.is_empty());
        let fee = opt_cell(c_fee).and_then(|f| Money::parse(f).ok());
        match cell(c_state)? {
            "SUCCESS" => {
                let amount = match opt_cell(c_order) {
                    Some(a) => money_cell(a)?,
                    None => money_cell(cell(c_settle)?)?,
                };
                out.push(StatementLine {
                    out_trade_no: cell(c_out)?.to_string(),
                    provider_txn_id: cell(c_txn)?.to_string(),
                    kind: "payment".into(),
                    amount,
                    fee,
                    out_refund_no: None,
                    occurred_at: cell(c_time)?.to_string(),
                });
            }
            "REFUND" => {
                let amount = match opt_cell(c_refund_req) {
                    Some(a) if money_cell(a)?.is_positive() => money_cell(a)?,
                    _ => money_cell(cell(c_refund)?)?,
                };
                out.push(StatementLine {
                    out_trade_no: cell(c_out)?.to_string(),
                    provider_txn_id: cell(c_txn)?.to_string(),
                    kind: "refund".into(),
                    amount: -amount.abs(),
                    fee,
                    out_refund_no: opt_cell(c_refund_no).map(str::to_string),
                    occurred_at: cell(c_time)?.to_string(),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Upper bound for a downloaded bill (uncompressed).
pub const MAX_BILL_BYTES: u64 = 64 * 1024 * 1024;

/// Decompresses a gzip bill (bounded); anything without the gzip magic is returned as is.
pub fn maybe_gunzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).take(MAX_BILL_BYTES + 1).read_to_end(&mut out).context("gunzip")?;
    if out.len() as u64 > MAX_BILL_BYTES {
        bail!("the bill is larger than {MAX_BILL_BYTES} bytes");
    }
    Ok(out)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Fen as the bill writes yuan: `12.34`.
pub fn yuan(fen: i64) -> String {
    Money::from_fen(fen).map(|m| m.plain()).unwrap_or_else(|_| "0.00".into())
}

/// Parses an RFC 3339 instant (`2018-06-08T10:34:56+08:00`, fractions allowed) to Unix ms.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.timestamp_millis())
}
