//! Alipay's daily trade bill (PROTOCOLS.md A.6 `alipay.data.dataservice.bill.downloadurl.query`):
//! a ZIP holding two GBK CSV files, "业务明细" (details) and "业务明细(汇总)" (summary). We read
//! the details file: `#` comment lines around a header line and one row per payment or refund,
//! ID-like fields padded with a trailing TAB.

use clinicpay::money::Money;
use clinicpay::ports::StatementLine;
use std::io::Read;

/// The detail file's first line.
pub const DETAIL_TITLE: &str = "#支付宝业务明细查询";
/// The summary file's first line.
pub const SUMMARY_TITLE: &str = "#支付宝业务汇总查询";

/// The 25 columns of the detail file, in order.
pub const DETAIL_COLUMNS: [&str; 25] = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
];

/// Limit on what we inflate from one bill archive (a zip bomb stops here).
const MAX_INFLATED: u64 = 64 * 1024 * 1024;

/// Decodes a bill file's bytes: UTF-8 when it carries a BOM or is valid UTF-8 with the title,
/// else GBK (what Alipay writes).
pub fn decode_text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        if s.contains("支付宝") {
            return s.to_string();
        }
    }
    let (text, _, _) = encoding_rs::GBK.decode(bytes);
    text.into_owned()
}

/// Reads the detail lines out of a bill ZIP.
pub fn parse_bill_zip(zip_bytes: &[u8]) -> anyhow::Result<Vec<StatementLine>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
        .map_err(|e| anyhow::anyhow!("bill archive is not a ZIP: {e}"))?;
    let mut budget = MAX_INFLATED;
    let mut fallback: Option<String> = None;
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(|e| anyhow::anyhow!("bill archive entry {i}: {e}"))?;
        if file.is_dir() {
            continue;
        }
        let name = file.name().to_string();
        let mut bytes = Vec::new();
        (&mut file)
            .take(budget + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| anyhow::anyhow!("reading bill entry {name}: {e}"))?;
        if bytes.len() as u64 > budget {
            anyhow::bail!("bill archive is too large");
        }
        budget -= bytes.len() as u64;
        let text = decode_text(&bytes);
        let first = text.lines().next().unwrap_or("").trim();
        if first.starts_with(DETAIL_TITLE) {
            return parse_detail_csv(&text);
        }
        if fallback.is_none()
            && !first.starts_with(SUMMARY_TITLE)
            && name.contains("业务明细")
            && !name.contains("汇总")
        {
            fallback = Some(text);
        }
    }
    match fallback {
        Some(text) => parse_detail_csv(&text),
        None => anyhow::bail!("bill archive has no 业务明细 file"),
    }
}

/// Splits one CSV line (Alipay's bill needs no quoting, but quoted fields are accepted).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|f| f.trim().to_string()).collect()
}

fn bill_amount(s: &str) -> Option<Money> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let m = super::wire::parse_amount(body)?;
    Some(if neg { -m } else { m })
}

/// Parses the text of the detail file into statement lines (payments positive, refunds negative).
pub fn parse_detail_csv(text: &str) -> anyhow::Result<Vec<StatementLine>> {
    let mut header: Option<Vec<String>> = None;
    let mut lines = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_csv(line);
        let Some(cols) = &header else {
            if fields.first().map(String::as_str) == Some(DETAIL_COLUMNS[0]) {
                header = Some(fields);
                continue;
            }
            anyhow::bail!("bill line {}: data before the header line", n + 1);
        };
        let get = |name: &str| -> &str {
            cols.iter().position(|c| c == name).and_then(|i| fields.get(i)).map(String::as_str).unwrap_or("")
        };
        let txn = get("支付宝交易号");
        let out_trade_no = get("商户订单号");
        let kind = match get("业务类型") {
            "交易" => "payment",
            "退款" => "refund",
            other => anyhow::bail!("bill line {}: unknown 业务类型 {other:?}", n + 1),
        };
        let amount = bill_amount(get("订单金额（元）"))
            .ok_or_else(|| anyhow::anyhow!("bill line {}: bad 订单金额 {:?}", n + 1, get("订单金额（元）")))?;
        let amount = if kind == "refund" && amount.is_positive() { -amount } else { amount };
        let fee = match get("服务费（元）") {
            "" => None,
            s => Some(bill_amount(s).ok_or_else(|| anyhow::anyhow!("bill line {}: bad 服务费 {s:?}", n + 1))?),
        };
        let out_refund_no = match get("退款批次号/请求号") {
            "" => None,
            s if kind == "refund" => Some(s.to_string()),
            _ => None,
        };
        if txn.is_empty() || out_trade_no.is_empty() {
            anyhow::bail!("bill line {}: missing 支付宝交易号 or 商户订单号", n + 1);
        }
        let occurred_at = match get("完成时间") {
            "" => get("创建时间"),
            s => s,
        };
        lines.push(StatementLine {
            out_trade_no: out_trade_no.to_string(),
            provider_txn_id: txn.to_string(),
            kind: kind.to_string(),
            amount,
            fee,
            out_refund_no,
            occurred_at: occurred_at.to_string(),
        });
    }
    if header.is_none() {
        anyhow::bail!("bill has no header line");
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        let header = DETAIL_COLUMNS.join(",");
        [
            "#支付宝业务明细查询",
            "#账号：[20880211096256330156]",
            "#起始日期：[2019年09月16日 00:00:00]   终止日期：[2019年09月17日 00:00:00]",
            "#-----------------------------------------业务明细列表----------------------------------------",
            &header,
            "2019091622001458860515315453\t,service_1568601259302\t,交易\t,下单测试,2019-09-16 10:55:16,2019-09-16 10:55:23,,,,,abc***@sandbox.com,0.01,0.01,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,0.00,0.00,",
            "2019091622001458860515315453\t,service_1568601259302\t,退款\t,下单测试,2019-09-16 10:55:16,2019-09-16 11:00:00,,,,,abc***@sandbox.com,-0.01,-0.01,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,R1\t,0.00,0.00,",
            "#-----------------------------------------业务明细列表结束------------------------------------",
            "#交易合计：1笔，商家实收共0.01元，商家优惠共0.00元",
        ]
        .join("\r\n")
    }

    #[test]
    fn parses_the_documented_layout() {
        let lines = parse_detail_csv(&sample()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].kind, "payment");
        assert_eq!(lines[0].out_trade_no, "service_1568601259302");
        assert_eq!(lines[0].provider_txn_id, "2019091622001458860515315453");
        assert_eq!(lines[0].amount, Money::parse("0.01").unwrap());
        assert_eq!(lines[0].out_refund_no, None);
        assert_eq!(lines[0].occurred_at, "2019-09-16 10:55:23");
        assert_eq!(lines[1].kind, "refund");
        assert_eq!(lines[1].amount, Money::parse("-0.01").unwrap());
        assert_eq!(lines[1].out_refund_no.as_deref(), Some("R1"));
        assert_eq!(lines[1].fee, Some(Money::ZERO));
    }

    #[test]
    fn parses_a_gbk_zip() {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("2088_20190916_业务明细(汇总).csv", opts).unwrap();
        w.write_all(&encoding_rs::GBK.encode("#支付宝业务汇总查询\r\n").0).unwrap();
        w.start_file("2088_20190916_业务明细.csv", opts).unwrap();
        w.write_all(&encoding_rs::GBK.encode(&sample()).0).unwrap();
        let zip = w.finish().unwrap().into_inner();
        let lines = parse_bill_zip(&zip).unwrap();
        assert_eq!(lines.len(), 2);
        assert!(parse_bill_zip(b"not a zip").is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_detail_csv("").is_err());
        assert!(parse_detail_csv("a,b,c").is_err());
        let bad_amount = sample().replace(",0.01,0.01,", ",x,0.01,");
        assert!(parse_detail_csv(&bad_amount).is_err());
        let bad_kind = sample().replace("交易\t", "转账\t");
        assert!(parse_detail_csv(&bad_kind).is_err());
    }

    proptest::proptest! {
        #[test]
        fn bill_parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse_bill_zip(&bytes);
            let _ = parse_detail_csv(&decode_text(&bytes));
        }
    }
}
