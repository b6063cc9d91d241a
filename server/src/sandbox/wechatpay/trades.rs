//! The WeChat Pay sandbox's trades (PROTOCOLS.md B.7, B.10) and the JSON it answers with for
//! them (a Transaction, a Refund), built here from the protocol's field lists.

use super::wire::yuan;
use crate::sandbox::store::{StoredTrade, TradeIndex};
use crate::sandbox::FaultSpec;
use clinicpay::time::rfc3339_beijing;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefundRec {
    pub refund_id: String,
    pub out_refund_no: String,
    pub amount_fen: i64,
    /// `PROCESSING` until it completes, then `SUCCESS`.
    pub status: String,
    pub reason: Option<String>,
    pub notify_url: Option<String>,
    pub create_ms: i64,
    pub success_ms: Option<i64>,
    /// When a PROCESSING refund completes.
    pub due_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trade {
    pub mchid: String,
    pub appid: String,
    pub out_trade_no: String,
    pub trade_type: String,
    pub description: String,
    pub attach: Option<String>,
    pub notify_url: String,
    pub total_fen: i64,
    pub time_expire_ms: Option<i64>,
    pub payer_openid: Option<String>,
    pub state: String,
    pub transaction_id: Option<String>,
    pub success_ms: Option<i64>,
    pub token: String,
    /// What the prepay call answered (repeated for an identical repeat).
    pub answer: Value,
    pub fingerprint: String,
    pub refunds: Vec<RefundRec>,
    pub faults: FaultSpec,
    pub payer_cancelled: bool,
    /// The `TRANSACTION.SUCCESS` body (its `id` stays the same for every attempt).
    pub success_event: Option<String>,
}

impl StoredTrade for Trade {
    fn index(&self) -> TradeIndex<'_> {
        let expiry = self.time_expire_ms.filter(|_| self.open());
        let refund_due = self.refunds.iter().filter_map(|r| r.due_ms.filter(|_| r.status == "PROCESSING")).min();
        TradeIndex {
            account: &self.mchid,
            out_trade_no: &self.out_trade_no,
            token: &self.token,
            provider_txn_id: self.transaction_id.as_deref(),
            money_from_ms: self.success_ms,
            money_to_ms: self.refunds.iter().map(|r| r.create_ms).chain(self.success_ms).max(),
            wake_ms: [expiry, refund_due].into_iter().flatten().min(),
        }
    }
}

pub fn state_desc(state: &str) -> &'static str {
    match state {
        "SUCCESS" => "支付成功",
        "REFUND" => "转入退款",
        "NOTPAY" => "未支付",
        "CLOSED" => "已关闭",
        "REVOKED" => "已撤销",
        "USERPAYING" => "用户支付中",
        "PAYERROR" => "支付失败",
        _ => "",
    }
}

impl Trade {
    /// `time_expire` passes → CLOSED (B.10).
    pub fn refresh(&mut self, now: i64) {
        if self.open() && self.time_expire_ms.is_some_and(|e| now >= e) {
            self.state = "CLOSED".into();
        }
    }

    pub fn open(&self) -> bool {
        matches!(self.state.as_str(), "NOTPAY" | "USERPAYING")
    }

    pub fn paid(&self) -> bool {
        matches!(self.state.as_str(), "SUCCESS" | "REFUND")
    }

    pub fn refunded_fen(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount_fen).sum()
    }

    /// A Transaction (B.6, B.7): what a query answers and a success notification carries.
    pub fn transaction(&self) -> Value {
        let paid = self.paid();
        let mut t = json!({
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": self.out_trade_no,
            "trade_state": self.state,
            "trade_state_desc": state_desc(&self.state),
            "attach": self.attach.clone().unwrap_or_default(),
            "amount": { "total": self.total_fen, "currency": "CNY", "payer_currency": "CNY" },
        });
        if paid {
            t["transaction_id"] = json!(self.transaction_id);
            t["trade_type"] = json!(self.trade_type);
            t["bank_type"] = json!("OTHERS");
            t["success_time"] = json!(self.success_ms.map(rfc3339_beijing));
            t["payer"] = json!({ "openid": self.payer_openid });
            t["amount"]["payer_total"] = json!(self.total_fen);
        }
        t
    }

    /// A Refund object (B.7).
    pub fn refund_json(&self, r: &RefundRec) -> Value {
        let mut v = json!({
            "refund_id": r.refund_id,
            "out_refund_no": r.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": rfc3339_beijing(r.create_ms),
            "status": r.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": self.total_fen,
                "refund": r.amount_fen,
                "payer_total": self.total_fen,
                "payer_refund": r.amount_fen,
                "settlement_refund": r.amount_fen,
                "settlement_total": self.total_fen,
                "discount_refund": 0,
                "currency": "CNY",
            },
        });
        if let Some(ms) = r.success_ms {
            v["success_time"] = json!(rfc3339_beijing(ms));
        }
        v
    }

    /// The plaintext of a `REFUND.SUCCESS` notification (B.6).
    pub fn refund_notice(&self, r: &RefundRec) -> Value {
        json!({
            "mchid": self.mchid,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "refund_id": r.refund_id,
            "out_refund_no": r.out_refund_no,
            "refund_status": r.status,
            "success_time": r.success_ms.map(rfc3339_beijing),
            "user_received_account": "支付用户零钱",
            "amount": { "total": self.total_fen, "refund": r.amount_fen, "payer_total": self.total_fen, "payer_refund": r.amount_fen },
        })
    }

    /// The control API's view.
    pub fn view(&self, pay_url: String) -> Value {
        json!({
            "out_trade_no": self.out_trade_no,
            "mchid": self.mchid,
            "trade_type": self.trade_type,
            "state": self.state,
            "amount": yuan(self.total_fen),
            "provider_txn_id": self.transaction_id,
            "payer_cancelled": self.payer_cancelled,
            "pay_url": pay_url,
            "refunds": self.refunds.iter().map(|r| json!({
                "out_refund_no": r.out_refund_no,
                "refund_id": r.refund_id,
                "amount": yuan(r.amount_fen),
                "status": r.status,
                "reason": r.reason,
            })).collect::<Vec<_>>(),
            "faults": self.faults,
        })
    }
}
