//! The sandbox's trade bill: a ZIP with the two GBK CSV files of PROTOCOLS.md A.6, in the
//! layout Alipay uses (comment lines, header on line 5, ID fields padded with a TAB, CRLF).

use clinicpay::money::Money;
use clinicpay::time::Millis;
use std::io::Write;

/// The detail file's first line (A.6).
pub const DETAIL_TITLE: &str = "#支付宝业务明细查询";
/// The summary file's first line.
pub const SUMMARY_TITLE: &str = "#支付宝业务汇总查询";

/// The detail file's header line, as A.6 shows it.
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

/// One row of the detail file.
#[derive(Debug, Clone)]
pub struct BillRow {
    pub trade_no: String,
    pub out_trade_no: String,
    pub refund: bool,
    pub subject: String,
    pub created_ms: Millis,
    pub finished_ms: Millis,
    /// Positive for payments, negative for refunds.
    pub amount: Money,
    pub out_request_no: Option<String>,
    pub buyer_logon_id: String,
}

fn cn_time(ms: Millis) -> String {
    clinicpay::time::to_beijing(ms).map(|t| t.format("%Y年%m月%d日 %H:%M:%S").to_string()).unwrap_or_default()
}

/// Bill text never contains the separator or line breaks.
fn clean(s: &str) -> String {
    s.replace(',', "，").replace(['\r', '\n', '\t'], " ")
}

fn header_lines(title: &str, account: &str, from_ms: Millis, to_ms: Millis) -> Vec<String> {
    vec![
        title.to_string(),
        format!("#账号：[{account}]"),
        format!("#起始日期：[{}]   终止日期：[{}]", cn_time(from_ms), cn_time(to_ms)),
    ]
}

pub fn detail_csv(account: &str, from_ms: Millis, to_ms: Millis, rows: &[BillRow], now_ms: Millis) -> String {
    let mut lines = header_lines(DETAIL_TITLE, account, from_ms, to_ms);
    lines.push("#-----------------------------------------业务明细列表----------------------------------------".into());
    lines.push(DETAIL_COLUMNS.join(","));
    let zero = "0.00";
    for r in rows {
        let amount = r.amount.plain();
        let fields: Vec<String> = vec![
            format!("{}\t", r.trade_no),
            format!("{}\t", clean(&r.out_trade_no)),
            format!("{}\t", if r.refund { "退款" } else { "交易" }),
            clean(&r.subject),
            clinicpay::time::fmt_second(r.created_ms),
            clinicpay::time::fmt_second(r.finished_ms),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            r.buyer_logon_id.clone(),
            amount.clone(),
            amount,
            zero.into(),
            zero.into(),
            zero.into(),
            zero.into(),
            zero.into(),
            String::new(),
            zero.into(),
            zero.into(),
            r.out_request_no.as_deref().map(|n| format!("{}\t", clean(n))).unwrap_or_default(),
            zero.into(),
            zero.into(),
            String::new(),
        ];
        lines.push(fields.join(","));
    }
    lines.push("#-----------------------------------------业务明细列表结束------------------------------------".into());
    let (pays, refunds): (Vec<&BillRow>, Vec<&BillRow>) = rows.iter().partition(|r| !r.refund);
    let sum = |rs: &[&BillRow]| Money::sum(rs.iter().map(|r| r.amount)).unwrap_or(Money::ZERO).plain();
    lines.push(format!("#交易合计：{}笔，商家实收共{}元，商家优惠共0.00元", pays.len(), sum(&pays)));
    lines.push(format!("#退款合计：{}笔，商家实收共{}元，商家优惠共0.00元", refunds.len(), sum(&refunds)));
    lines.push(format!("#导出时间：[{}]", cn_time(now_ms)));
    lines.join("\r\n") + "\r\n"
}

pub fn summary_csv(account: &str, from_ms: Millis, to_ms: Millis, rows: &[BillRow], now_ms: Millis) -> String {
    let mut lines = header_lines(SUMMARY_TITLE, account, from_ms, to_ms);
    lines.push("#-----------------------------------------业务汇总列表----------------------------------------".into());
    lines.push(
        "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）"
            .into(),
    );
    let pays = rows.iter().filter(|r| !r.refund).count();
    let refunds = rows.len() - pays;
    let total = Money::sum(rows.iter().map(|r| r.amount)).unwrap_or(Money::ZERO).plain();
    for first in ["", "合计"] {
        lines.push(format!("{first},,{pays},{refunds},{total},{total},0.00,0.00,0.00,0.00,0.00,{total}"));
    }
    lines.push("#-----------------------------------------业务汇总列表结束------------------------------------".into());
    lines.push(format!("#导出时间：[{}]", cn_time(now_ms)));
    lines.join("\r\n") + "\r\n"
}

/// The archive `<account>_<label>.csv.zip` with `<account>_<label>_业务明细.csv` and
/// `<account>_<label>_业务明细(汇总).csv`, GBK-encoded.
pub fn bill_zip(
    account: &str,
    label: &str,
    from_ms: Millis,
    to_ms: Millis,
    rows: &[BillRow],
    now_ms: Millis,
) -> anyhow::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file(format!("{account}_{label}_业务明细.csv"), opts)?;
    w.write_all(&encoding_rs::GBK.encode(&detail_csv(account, from_ms, to_ms, rows, now_ms)).0)?;
    w.start_file(format!("{account}_{label}_业务明细(汇总).csv"), opts)?;
    w.write_all(&encoding_rs::GBK.encode(&summary_csv(account, from_ms, to_ms, rows, now_ms)).0)?;
    Ok(w.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateways::alipay::bill::parse_bill_zip;

    #[test]
    fn round_trips_through_the_client_parser() {
        let t0 = super::super::wire::parse_time("2024-01-01 00:00:00").unwrap();
        let rows = vec![
            BillRow {
                trade_no: "2024010122001400000000000001".into(),
                out_trade_no: "T1".into(),
                refund: false,
                subject: "挂号费, 内科".into(),
                created_ms: t0 + 1000,
                finished_ms: t0 + 5000,
                amount: Money::parse("88.88").unwrap(),
                out_request_no: None,
                buyer_logon_id: "abc***@sandbox.com".into(),
            },
            BillRow {
                trade_no: "2024010122001400000000000001".into(),
                out_trade_no: "T1".into(),
                refund: true,
                subject: "挂号费, 内科".into(),
                created_ms: t0 + 1000,
                finished_ms: t0 + 9000,
                amount: Money::parse("-8.88").unwrap(),
                out_request_no: Some("R1".into()),
                buyer_logon_id: "abc***@sandbox.com".into(),
            },
        ];
        let detail = detail_csv("20881234567890120156", t0, t0 + 86_400_000, &rows, t0);
        assert_eq!(detail.lines().nth(4).unwrap(), DETAIL_COLUMNS.join(","));
        // the client's reading of the header agrees with the sandbox's
        assert_eq!(DETAIL_COLUMNS, crate::gateways::alipay::bill::DETAIL_COLUMNS);
        assert!(detail.contains("2024010122001400000000000001\t,T1\t,交易\t,挂号费， 内科,"));
        assert!(detail.lines().nth(2).unwrap().contains("2024年01月01日 00:00:00"));
        let zip = bill_zip("20881234567890120156", "20240101", t0, t0 + 86_400_000, &rows, t0).unwrap();
        let lines = parse_bill_zip(&zip).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].amount, Money::parse("88.88").unwrap());
        assert_eq!(lines[0].occurred_at, "2024-01-01 00:00:05");
        assert_eq!(lines[1].amount, Money::parse("-8.88").unwrap());
        assert_eq!(lines[1].out_refund_no.as_deref(), Some("R1"));
        // the bytes really are GBK
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&zip)).unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_index(0).unwrap(), &mut raw).unwrap();
        assert!(std::str::from_utf8(&raw).is_err());
        assert!(encoding_rs::GBK.decode(&raw).0.starts_with(DETAIL_TITLE));
    }
}
