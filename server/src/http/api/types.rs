//! What the REST API sends and accepts. These types are the OpenAPI document's schemas
//! (`utoipa::ToSchema`): the document is generated from them, so it cannot drift from the
//! handlers. Amounts are decimal strings in yuan ("1234.50"), times RFC 3339 in +08:00.

use clinicpay::checkout::SessionView;
use clinicpay::money::Money;
use clinicpay::payments::{PayMethod, SessionStatus};
use clinicpay::views::{BillSummary, PatientSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"error": {"code", "message", "detail"?}}`: the code is stable, the message is for people.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// e.g. `bill_in_active_session`, `bad_id`, `unauthenticated`.
    pub code: String,
    pub message: String,
    /// More about the refusal (e.g. which bill, which session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PatientRef {
    #[schema(example = "pat_01jd3k8x5q7m2n4p6r8s0t2v4w")]
    pub patient_id: String,
    pub name: String,
    /// Medical record number (病历号).
    #[schema(example = "000105")]
    pub mrn: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnpaidBill {
    pub bill_id: String,
    #[schema(example = "B20261122-0012")]
    pub bill_no: String,
    /// The department's name in Chinese.
    pub department: String,
    pub department_en: String,
    #[schema(value_type = String, example = "320.00")]
    pub amount: Money,
    /// Always `unpaid` here.
    pub status: String,
    pub created_at: String,
}

/// B3: everything a patient owes that can be paid now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnpaidBills {
    pub patient: PatientRef,
    pub count: usize,
    #[schema(value_type = String, example = "1500.00")]
    pub total_amount: Money,
    pub bills: Vec<UnpaidBill>,
}

impl UnpaidBills {
    pub fn new(patient: &PatientSummary, bills: &[BillSummary]) -> Result<UnpaidBills, clinicpay::money::MoneyError> {
        Ok(UnpaidBills {
            patient: PatientRef {
                patient_id: patient.id.to_string(),
                name: patient.name.clone(),
                mrn: patient.mrn.clone(),
            },
            count: bills.len(),
            total_amount: Money::sum(bills.iter().map(|b| b.total))?,
            bills: bills
                .iter()
                .map(|b| UnpaidBill {
                    bill_id: b.id.to_string(),
                    bill_no: b.bill_no.clone(),
                    department: b.department_zh.clone(),
                    department_en: b.department_en.clone(),
                    amount: b.total,
                    status: b.status.as_str().to_string(),
                    created_at: clinicpay::time::rfc3339_beijing(b.created_at_ms),
                })
                .collect(),
        })
    }
}

/// Open one checkout session (one QR code) for 1..N bills of one patient.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub patient_id: String,
    /// 1 to 50 distinct bills of this patient.
    #[schema(min_items = 1, max_items = 50)]
    pub bill_ids: Vec<String>,
    /// `alipay`, `wechat` or `bank_card` (also `alipay_qr`, `wechat_native`).
    #[schema(example = "alipay")]
    pub payment_method: String,
    /// 1 to 120; 15 when left out.
    #[schema(minimum = 1, maximum = 120)]
    pub timeout_minutes: Option<i64>,
}

/// Open a checkout session for one bill.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QrPayment {
    #[schema(example = "wechat")]
    pub payment_method: String,
    #[schema(minimum = 1, maximum = 120)]
    pub timeout_minutes: Option<i64>,
}

/// "Refresh QR": the new session's timeout (the old one's when left out… 15 minutes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    #[schema(minimum = 1, maximum = 120)]
    pub timeout_minutes: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionBill {
    pub bill_id: String,
    pub bill_no: String,
    #[schema(value_type = String, example = "320.00")]
    pub amount: Money,
    /// The bill's status now: `paying` while the session is open, `paid` once paid.
    pub status: String,
    /// Set once this session paid the bill.
    pub receipt_no: Option<String>,
}

/// A checkout session as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Session {
    #[schema(example = "ses_01jd3k8x5q7m2n4p6r8s0t2v4w")]
    pub session_id: String,
    #[schema(value_type = String, example = "pending")]
    pub status: SessionStatus,
    pub patient_id: String,
    /// `alipay`, `wechat` or `bank_card`; `cash` or `pos_card` for a payment recorded at the
    /// counter.
    pub payment_method: String,
    /// The precise method, e.g. `alipay_qr`.
    pub method: String,
    pub provider: String,
    pub channel_id: String,
    /// Our order number at the provider.
    pub out_trade_no: String,
    #[schema(value_type = String, example = "1500.00")]
    pub total_amount: Money,
    pub created_at: String,
    pub expires_at: String,
    pub seconds_left: i64,
    /// What the QR code encodes (when the payer is given one).
    pub qr_code_content: Option<String>,
    pub qr_code_image_url: String,
    pub paid_at: Option<String>,
    #[schema(value_type = Option<String>)]
    pub paid_amount: Option<Money>,
    pub provider_transaction_id: Option<String>,
    pub close_reason: Option<String>,
    /// The session that replaced this one ("refresh QR").
    pub replaced_by: Option<String>,
    /// The provider's code for the payer's last failed attempt (e.g. `CARD_DECLINED`), while the
    /// session stays payable.
    #[schema(example = "CARD_DECLINED")]
    pub payer_failure: Option<String>,
    pub payer_failure_at: Option<String>,
    pub bills: Vec<SessionBill>,
}

impl Session {
    pub fn new(v: &SessionView, now_ms: i64) -> Session {
        let short = match v.method {
            PayMethod::AlipayQr | PayMethod::AlipayPage | PayMethod::AlipayWap => "alipay",
            PayMethod::WechatNative | PayMethod::WechatJsapi | PayMethod::WechatH5 => "wechat",
            PayMethod::BankCard => "bank_card",
            PayMethod::Cash => "cash",
            PayMethod::PosCard => "pos_card",
        };
        Session {
            session_id: v.id.to_string(),
            status: v.status,
            patient_id: v.patient_id.to_string(),
            payment_method: short.to_string(),
            method: v.method.as_str().to_string(),
            provider: v.provider.as_str().to_string(),
            channel_id: v.channel_id.to_string(),
            out_trade_no: v.out_trade_no.to_string(),
            total_amount: v.total,
            created_at: clinicpay::time::rfc3339_beijing(v.created_at_ms),
            expires_at: clinicpay::time::rfc3339_beijing(v.expires_at_ms),
            seconds_left: if v.status == SessionStatus::Pending { v.seconds_left(now_ms) } else { 0 },
            qr_code_content: v.qr_content().map(str::to_string),
            qr_code_image_url: format!("/api/v1/finance/qr-codes/{}.png", v.id),
            paid_at: v.paid_at_ms.map(clinicpay::time::rfc3339_beijing),
            paid_amount: v.paid_amount,
            provider_transaction_id: v.provider_txn_id.clone(),
            close_reason: v.close_reason.clone(),
            replaced_by: v.replaced_by.as_ref().map(|s| s.to_string()),
            payer_failure: v.payer_note.as_ref().map(|n| n.code.clone()),
            payer_failure_at: v.payer_note.as_ref().map(|n| clinicpay::time::rfc3339_beijing(n.at_ms)),
            bills: v
                .payables
                .iter()
                .map(|p| SessionBill {
                    bill_id: p.payable.as_str().to_string(),
                    bill_no: p.number.clone(),
                    amount: p.amount,
                    status: p.status.as_str().to_string(),
                    receipt_no: p.receipt_no.clone(),
                })
                .collect(),
        }
    }
}
