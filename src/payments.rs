//! Payment channels, provider-neutral gateway data, checkout session states (PRODUCT.md G1, C1).

use crate::money::Money;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Alipay,
    #[serde(rename = "wechatpay")]
    WechatPay,
    Bank,
    /// Cash taken at the counter (C9): no gateway, recorded by the cashier.
    Cash,
    /// A bank card swiped on the counter's own POS terminal (C9): the slip is recorded by the
    /// cashier; the acquirer settles it outside ClinicPay.
    Pos,
}

impl Provider {
    /// Every channel money comes in through, gateways first, then the counter's two.
    pub const ALL: [Provider; 5] =
        [Provider::Alipay, Provider::WechatPay, Provider::Bank, Provider::Cash, Provider::Pos];
    /// The providers ClinicPay talks to over the wire (clients, notifications, sandboxes).
    pub const GATEWAYS: [Provider; 3] = [Provider::Alipay, Provider::WechatPay, Provider::Bank];
    /// The counter's own channels, recorded by the cashier.
    pub const COUNTER: [Provider; 2] = [Provider::Cash, Provider::Pos];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Alipay => "alipay",
            Provider::WechatPay => "wechatpay",
            Provider::Bank => "bank",
            Provider::Cash => "cash",
            Provider::Pos => "pos",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Paid at the counter (cash, the counter's POS): no gateway, no notification.
    pub fn is_counter(self) -> bool {
        matches!(self, Provider::Cash | Provider::Pos)
    }

    /// The built-in channel of a counter provider (migration 0014 creates both).
    pub fn counter_channel(self) -> Option<crate::ids::ChannelId> {
        match self {
            Provider::Cash => Some(crate::ids::ChannelId::from_u128(1)),
            Provider::Pos => Some(crate::ids::ChannelId::from_u128(2)),
            _ => None,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Provider::Alipay => "支付宝",
            Provider::WechatPay => "微信支付",
            Provider::Bank => "银行卡",
            Provider::Cash => "现金",
            Provider::Pos => "POS 刷卡",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Provider::Alipay => "Alipay",
            Provider::WechatPay => "WeChat Pay",
            Provider::Bank => "Bank card",
            Provider::Cash => "Cash",
            Provider::Pos => "POS card",
        }
    }
}

crate::parse_from_string!(Provider, "provider");
crate::parse_from_string!(PayMethod, "payment method");
crate::parse_from_string!(SessionStatus, "session status");

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the payer pays (G1). The charge screen uses the three QR kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayMethod {
    /// Alipay face-to-face: `alipay.trade.precreate`, the payer scans our QR.
    AlipayQr,
    /// Alipay PC page pay (signed redirect).
    AlipayPage,
    /// Alipay mobile web pay (signed redirect).
    AlipayWap,
    /// WeChat Pay Native: `code_url` shown as a QR.
    WechatNative,
    /// WeChat Pay JSAPI inside WeChat (needs the payer's openid).
    WechatJsapi,
    /// WeChat Pay H5 in a mobile browser.
    WechatH5,
    /// Our bank-card gateway: the QR opens its hosted card page.
    BankCard,
    /// Cash at the counter (C9).
    Cash,
    /// A card swiped on the counter's POS terminal (C9).
    PosCard,
}

impl PayMethod {
    pub const ALL: [PayMethod; 9] = [
        PayMethod::AlipayQr,
        PayMethod::AlipayPage,
        PayMethod::AlipayWap,
        PayMethod::WechatNative,
        PayMethod::WechatJsapi,
        PayMethod::WechatH5,
        PayMethod::BankCard,
        PayMethod::Cash,
        PayMethod::PosCard,
    ];

    pub fn provider(self) -> Provider {
        match self {
            PayMethod::AlipayQr | PayMethod::AlipayPage | PayMethod::AlipayWap => Provider::Alipay,
            PayMethod::WechatNative | PayMethod::WechatJsapi | PayMethod::WechatH5 => Provider::WechatPay,
            PayMethod::BankCard => Provider::Bank,
            PayMethod::Cash => Provider::Cash,
            PayMethod::PosCard => Provider::Pos,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PayMethod::AlipayQr => "alipay_qr",
            PayMethod::AlipayPage => "alipay_page",
            PayMethod::AlipayWap => "alipay_wap",
            PayMethod::WechatNative => "wechat_native",
            PayMethod::WechatJsapi => "wechat_jsapi",
            PayMethod::WechatH5 => "wechat_h5",
            PayMethod::BankCard => "bank_card",
            PayMethod::Cash => "cash",
            PayMethod::PosCard => "pos_card",
        }
    }

    /// Accepts our names and the hospital API's short names (`alipay`, `wechat`, `bank`).
    pub fn parse(s: &str) -> Option<PayMethod> {
        match s {
            "alipay" => Some(PayMethod::AlipayQr),
            "wechat" | "wechatpay" => Some(PayMethod::WechatNative),
            "bank" | "bank_card" | "card" => Some(PayMethod::BankCard),
            _ => PayMethod::ALL.into_iter().find(|m| m.as_str() == s),
        }
    }

    /// The payer scans a QR code shown at the counter.
    pub fn is_qr(self) -> bool {
        matches!(self, PayMethod::AlipayQr | PayMethod::WechatNative | PayMethod::BankCard)
    }
}

impl fmt::Display for PayMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checkout session status (C1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Pending,
    Paid,
    Expired,
    Cancelled,
    /// Closed by the provider (or replaced by a refreshed QR).
    Closed,
    Failed,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 6] = [
        SessionStatus::Pending,
        SessionStatus::Paid,
        SessionStatus::Expired,
        SessionStatus::Cancelled,
        SessionStatus::Closed,
        SessionStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Paid => "paid",
            SessionStatus::Expired => "expired",
            SessionStatus::Cancelled => "cancelled",
            SessionStatus::Closed => "closed",
            SessionStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<SessionStatus> {
        SessionStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        self != SessionStatus::Pending
    }

    /// Only a pending session changes, and only once.
    pub fn can_become(self, to: SessionStatus) -> bool {
        self == SessionStatus::Pending && to != SessionStatus::Pending
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a provider call came to (G1): the four outcomes every channel maps into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<T> {
    /// The provider confirmed.
    Success(T),
    /// The provider refused; its codes are kept verbatim.
    Failure(ProviderError),
    /// Accepted but not final yet (e.g. a refund still processing).
    Waiting(Option<T>),
    /// We do not know (timeout, bad signature on the answer, 5xx): query again later.
    Unknown(String),
}

impl<T> Outcome<T> {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success(_))
    }
    pub fn success(self) -> Option<T> {
        match self {
            Outcome::Success(t) => Some(t),
            _ => None,
        }
    }
}

/// A provider's refusal, with its own codes (`code`/`sub_code` for Alipay, HTTP status and
/// `code` for WeChat Pay, `code` for the bank gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    pub code: String,
    pub sub_code: Option<String>,
    pub message: String,
}

impl ProviderError {
    /// "Order does not exist" in any provider's words.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.sub_code.as_deref().unwrap_or(&self.code),
            "ACQ.TRADE_NOT_EXIST"
                | "ORDER_NOT_EXIST"
                | "RESOURCE_NOT_EXISTS"
                | "ORDERNOTEXIST"
                | "NOT_FOUND"
                | "TRADE_NOT_EXIST"
        )
    }
}

/// One exchange with a provider as it went over the wire, kept for the record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawExchange {
    pub operation: String,
    pub request: String,
    pub http_status: Option<u16>,
    pub response: String,
}

/// A provider call's result: the outcome plus what was said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderCall<T> {
    pub outcome: Outcome<T>,
    pub raw: RawExchange,
}

/// What the payer is given to pay a created payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayAction {
    /// Content of a QR code to scan (`qr_code`, `code_url`, the bank's card-page URL).
    QrCode(String),
    /// A signed URL to send the browser to (Alipay page/wap GET form, WeChat `h5_url`).
    Redirect(String),
    /// A self-submitting HTML form (Alipay page pay POST form).
    Form(String),
    /// Parameters for `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`.
    Jsapi(JsapiParams),
}

impl PayAction {
    /// How it is stored: a kind word and its content.
    pub fn kind(&self) -> &'static str {
        match self {
            PayAction::QrCode(_) => "qr",
            PayAction::Redirect(_) => "redirect",
            PayAction::Form(_) => "form",
            PayAction::Jsapi(_) => "jsapi",
        }
    }

    pub fn content(&self) -> String {
        match self {
            PayAction::QrCode(c) | PayAction::Redirect(c) | PayAction::Form(c) => c.clone(),
            PayAction::Jsapi(p) => serde_json::to_string(p).unwrap_or_default(),
        }
    }

    /// Rebuilds a stored action; `None` for a kind or content we never write.
    pub fn from_parts(kind: &str, content: String) -> Option<PayAction> {
        Some(match kind {
            "qr" => PayAction::QrCode(content),
            "redirect" => PayAction::Redirect(content),
            "form" => PayAction::Form(content),
            "jsapi" => PayAction::Jsapi(serde_json::from_str(&content).ok()?),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsapiParams {
    #[serde(rename = "appId")]
    pub app_id: String,
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    #[serde(rename = "nonceStr")]
    pub nonce_str: String,
    pub package: String,
    #[serde(rename = "signType")]
    pub sign_type: String,
    #[serde(rename = "paySign")]
    pub pay_sign: String,
}

/// Provider-neutral state of a trade, from a query or a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeState {
    /// The provider has no such trade (yet): e.g. Alipay before the QR is scanned.
    NotFound,
    /// Created, waiting for the payer.
    Waiting,
    /// Paid.
    Paid,
    /// Closed without payment.
    Closed,
    /// Paid, then (partly) refunded; money was received.
    Refunded,
    /// Payment failed.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeStatus {
    pub out_trade_no: String,
    pub state: TradeState,
    /// The provider's transaction id (`trade_no`, `transaction_id`), once a trade exists.
    pub provider_txn_id: Option<String>,
    pub amount: Option<Money>,
    pub paid_at_ms: Option<i64>,
    /// The provider's own status word (`TRADE_SUCCESS`, `NOTPAY`, …).
    pub provider_state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundState {
    Processing,
    Succeeded,
    Failed,
    /// The provider has no such refund.
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundStatus {
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub state: RefundState,
    pub amount: Option<Money>,
    pub provider_refund_id: Option<String>,
    pub provider_state: String,
}

/// A verified event from a provider notification, in provider-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderEvent {
    pub provider: Provider,
    /// Stable across the provider's retries (`notify_id`, WeChat's `id`, the bank's `notify_id`).
    pub event_id: String,
    /// The merchant account it is for (`app_id`, `mchid`, bank `merchant_id`).
    pub account: String,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    PaymentSucceeded {
        out_trade_no: String,
        provider_txn_id: String,
        amount: Money,
        paid_at_ms: Option<i64>,
        payer: Option<String>,
    },
    PaymentClosed {
        out_trade_no: String,
    },
    /// The payer tried and failed (a declined card); the order stays payable.
    PaymentAttemptFailed {
        out_trade_no: String,
        /// The provider's failure code, e.g. `CARD_DECLINED`.
        code: String,
    },
    RefundSucceeded {
        out_trade_no: String,
        out_refund_no: String,
        amount: Money,
    },
    RefundFailed {
        out_trade_no: String,
        out_refund_no: String,
        reason: String,
    },
    /// A status we record but do not act on (e.g. Alipay `TRADE_FINISHED` after the refund window).
    Informational {
        out_trade_no: String,
        provider_state: String,
    },
}

impl EventKind {
    pub fn out_trade_no(&self) -> &str {
        match self {
            EventKind::PaymentSucceeded { out_trade_no, .. }
            | EventKind::PaymentClosed { out_trade_no }
            | EventKind::PaymentAttemptFailed { out_trade_no, .. }
            | EventKind::RefundSucceeded { out_trade_no, .. }
            | EventKind::RefundFailed { out_trade_no, .. }
            | EventKind::Informational { out_trade_no, .. } => out_trade_no,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            EventKind::PaymentSucceeded { .. } => "payment_succeeded",
            EventKind::PaymentClosed { .. } => "payment_closed",
            EventKind::PaymentAttemptFailed { .. } => "payment_attempt_failed",
            EventKind::RefundSucceeded { .. } => "refund_succeeded",
            EventKind::RefundFailed { .. } => "refund_failed",
            EventKind::Informational { .. } => "informational",
        }
    }
}

/// What became of a stored provider notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// Stored, not yet processed (or processing died: re-drive picks it up).
    Received,
    Applied,
    Duplicate,
    Rejected,
    Failed,
    Ignored,
}

impl NotificationStatus {
    pub const ALL: [NotificationStatus; 6] = [
        NotificationStatus::Received,
        NotificationStatus::Applied,
        NotificationStatus::Duplicate,
        NotificationStatus::Rejected,
        NotificationStatus::Failed,
        NotificationStatus::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Received => "received",
            NotificationStatus::Applied => "applied",
            NotificationStatus::Duplicate => "duplicate",
            NotificationStatus::Rejected => "rejected",
            NotificationStatus::Failed => "failed",
            NotificationStatus::Ignored => "ignored",
        }
    }

    pub fn parse(s: &str) -> Option<NotificationStatus> {
        NotificationStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

crate::parse_from_string!(NotificationStatus, "notification status");

impl fmt::Display for NotificationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a notification was refused. Stored with the raw notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("malformed notification: {0}")]
    Malformed(String),
    #[error("unsupported content type: {0}")]
    ContentType(String),
    #[error("signature does not verify")]
    BadSignature,
    /// A signature algorithm the channel does not accept (Alipay: RSA2 only, never SHA-1 `RSA`).
    #[error("sign_type {0:?} is refused: only RSA2 is accepted")]
    SignType(String),
    #[error("timestamp outside the allowed window")]
    Stale,
    #[error("unknown merchant account {0}")]
    UnknownAccount(String),
    #[error("cannot decrypt resource")]
    Decrypt,
    #[error("currency {0} is not CNY")]
    Currency(String),
    #[error("unknown order {0}")]
    UnknownOrder(String),
    #[error("amount {got} does not match order amount {expected}")]
    AmountMismatch { expected: Money, got: Money },
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::ContentType(_) => "content_type",
            Rejection::BadSignature => "bad_signature",
            Rejection::SignType(_) => "sign_type_refused",
            Rejection::Stale => "stale",
            Rejection::UnknownAccount(_) => "unknown_account",
            Rejection::Decrypt => "decrypt_failed",
            Rejection::Currency(_) => "currency",
            Rejection::UnknownOrder(_) => "unknown_order",
            Rejection::AmountMismatch { .. } => "amount_mismatch",
        }
    }
}

/// The longest reason text stored with a notification or a refund attempt, in characters.
pub const REASON_MAX_CHARS: usize = 300;

/// A reason as it may be stored and shown: control characters (a NUL byte from a hostile
/// body, which PostgreSQL's TEXT refuses; line breaks that would forge log lines) written as
/// `\u{..}` escapes, and at most [`REASON_MAX_CHARS`] characters (an ellipsis marks the cut).
pub fn printable_reason(text: &str) -> String {
    let mut escaped: Vec<char> = Vec::with_capacity(text.len().min(REASON_MAX_CHARS + 1));
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(format!("\\u{{{:x}}}", c as u32).chars());
        } else {
            escaped.push(c);
        }
        if escaped.len() > REASON_MAX_CHARS {
            escaped.truncate(REASON_MAX_CHARS - 1);
            escaped.push('…');
            break;
        }
    }
    escaped.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_printable_and_bounded() {
        assert_eq!(printable_reason("malformed: %00=a"), "malformed: %00=a");
        assert_eq!(printable_reason("a\0b\nc"), "a\\u{0}b\\u{a}c");
        assert!(!printable_reason("\0\0\0").contains('\0'));
        let long = "是".repeat(1000);
        let r = printable_reason(&long);
        assert_eq!(r.chars().count(), REASON_MAX_CHARS);
        assert_eq!(printable_reason(&"x".repeat(REASON_MAX_CHARS)), "x".repeat(REASON_MAX_CHARS));
        assert!(r.ends_with('…'));
        let nuls = "\0".repeat(1000);
        assert!(printable_reason(&nuls).chars().count() <= REASON_MAX_CHARS);
    }

    #[test]
    fn method_names() {
        assert_eq!(PayMethod::parse("alipay"), Some(PayMethod::AlipayQr));
        assert_eq!(PayMethod::parse("wechat"), Some(PayMethod::WechatNative));
        assert_eq!(PayMethod::parse("bank_card"), Some(PayMethod::BankCard));
        assert_eq!(PayMethod::parse("bitcoin"), None);
        for m in PayMethod::ALL {
            assert_eq!(PayMethod::parse(m.as_str()), Some(m));
        }
        assert_eq!(serde_json::to_string(&Provider::WechatPay).unwrap(), "\"wechatpay\"");
    }

    #[test]
    fn sessions_change_once() {
        assert!(SessionStatus::Pending.can_become(SessionStatus::Paid));
        assert!(!SessionStatus::Paid.can_become(SessionStatus::Expired));
        assert!(!SessionStatus::Expired.can_become(SessionStatus::Paid));
        assert!(!SessionStatus::Pending.can_become(SessionStatus::Pending));
    }
}
