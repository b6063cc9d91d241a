//! The bank's daily statement (docs/providers/bank.md 4.6), as the sandbox writes it: one row
//! per payment that became `SUCCESS` and per refund that became `REFUND_SUCCESS` on the Beijing
//! date, ordered by time, then the `TOTAL` footer.

use super::trades::Trade;
use super::wire;
use chrono::NaiveDate;
use clinicpay::time::{local_date, Millis};

pub const HEADER: &str =
    "type,out_trade_no,bank_order_id,bank_txn_id,out_refund_no,bank_refund_id,amount_fen,fee_fen,time,card_last4";

struct Line {
    at: Millis,
    cells: [String; 10],
}

/// The statement of `date` over the merchant's trades (those whose money moved that day).
pub fn statement(trades: &[Trade], date: NaiveDate) -> String {
    let on_date = |ms: Millis| local_date(ms) == Some(date);
    let mut lines: Vec<Line> = Vec::new();
    for t in trades {
        let txn = t.bank_txn_id.clone().unwrap_or_default();
        if let Some(paid) = t.paid_ms.filter(|ms| on_date(*ms)) {
            lines.push(Line {
                at: paid,
                cells: [
                    "PAYMENT".into(),
                    t.out_trade_no.clone(),
                    t.bank_order_id.clone(),
                    txn.clone(),
                    String::new(),
                    String::new(),
                    t.amount_fen.to_string(),
                    wire::fee(t.amount_fen).to_string(),
                    wire::time(paid),
                    t.card_last4.clone().unwrap_or_default(),
                ],
            });
        }
        for r in &t.refunds {
            let Some(done) = r.done_ms.filter(|ms| on_date(*ms)) else { continue };
            lines.push(Line {
                at: done,
                cells: [
                    "REFUND".into(),
                    t.out_trade_no.clone(),
                    t.bank_order_id.clone(),
                    txn.clone(),
                    r.out_refund_no.clone(),
                    r.bank_refund_id.clone(),
                    format!("-{}", r.refund_fen),
                    "0".into(),
                    wire::time(done),
                    String::new(),
                ],
            });
        }
    }
    lines.sort_by(|a, b| {
        a.at.cmp(&b.at).then_with(|| a.cells[3].cmp(&b.cells[3])).then_with(|| a.cells[5].cmp(&b.cells[5]))
    });
    let total: i64 = lines.iter().filter_map(|l| l.cells[6].parse::<i64>().ok()).sum();
    let mut out = String::with_capacity(64 * (lines.len() + 2));
    out.push_str(HEADER);
    out.push('\n');
    for l in &lines {
        out.push_str(&l.cells.join(","));
        out.push('\n');
    }
    out.push_str(&format!("TOTAL,{},{total}\n", lines.len()));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_header_is_the_documents_and_the_clients() {
        assert_eq!(super::HEADER, crate::gateways::bank::wire::STATEMENT_HEADER);
    }
}
