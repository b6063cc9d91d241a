//! Payment gateways (G1): one provider-neutral interface for every provider account, real or
//! sandbox, and the registry of configured channels.

use super::channels::{ChannelInfo, ChannelSecrets};
use crate::ids::ChannelId;
use crate::money::Money;
use crate::payments::{
    PayAction, PayMethod, Provider, ProviderCall, ProviderEvent, RefundStatus, Rejection, TradeStatus,
};
use crate::time::Millis;
use async_trait::async_trait;

/// Ask a provider to create a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePayment {
    pub out_trade_no: String,
    pub amount: Money,
    /// Shown to the payer (≤ 128 characters; providers truncate differently).
    pub subject: String,
    pub method: PayMethod,
    /// The trade closes at the provider at this instant (`time_expire`).
    pub expires_at_ms: Millis,
    /// Where the provider sends notifications.
    pub notify_url: String,
    /// Browser return address (page/wap pay, bank card page).
    pub return_url: Option<String>,
    /// WeChat JSAPI: the payer's openid.
    pub payer_openid: Option<String>,
    /// WeChat H5: the payer's IP address.
    pub payer_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub out_trade_no: String,
    /// Unique per refund; retried with the same number.
    pub out_refund_no: String,
    pub amount: Money,
    /// The trade's total (WeChat Pay requires it).
    pub total: Money,
    pub reason: String,
    pub notify_url: Option<String>,
}

/// A notification exactly as it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawNotification {
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl RawNotification {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// What to answer a provider's notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// One line of a provider's daily statement, in neutral terms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatementLine {
    pub out_trade_no: String,
    pub provider_txn_id: String,
    /// `payment` or `refund`.
    pub kind: String,
    /// Positive for payments, negative for refunds.
    pub amount: Money,
    pub fee: Option<Money>,
    pub out_refund_no: Option<String>,
    /// As the provider wrote it (hospital local time).
    pub occurred_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub date: chrono::NaiveDate,
    pub lines: Vec<StatementLine>,
    /// The file as downloaded (zip, gzip or CSV bytes), for the record.
    pub raw: Vec<u8>,
}

/// One provider account (a channel configuration) as a client: the same interface for Alipay,
/// WeChat Pay and the bank-card gateway, real or sandbox.
#[async_trait]
pub trait Gateway: Send + Sync {
    fn provider(&self) -> Provider;
    /// The merchant account this client speaks for: Alipay `app_id`, WeChat `mchid`, bank `merchant_id`.
    fn account(&self) -> &str;
    async fn create_payment(&self, req: &CreatePayment) -> ProviderCall<PayAction>;
    async fn query_payment(&self, out_trade_no: &str) -> ProviderCall<TradeStatus>;
    async fn close_payment(&self, out_trade_no: &str) -> ProviderCall<()>;
    async fn refund(&self, req: &RefundRequest) -> ProviderCall<RefundStatus>;
    async fn query_refund(&self, out_trade_no: &str, out_refund_no: &str) -> ProviderCall<RefundStatus>;
    /// Is this notification addressed to this account (Alipay `app_id`, WeChat platform key
    /// serial, bank `merchant_id`)? Cheap: no signature check.
    fn owns_notification(&self, n: &RawNotification) -> bool;
    /// Verifies signature, account, time window; decrypts; maps to a neutral event. Amounts are
    /// checked against our orders by the handler, which knows them.
    fn verify_notification(&self, n: &RawNotification, now_ms: Millis) -> Result<ProviderEvent, Rejection>;
    /// The answer the provider expects: `accepted` means "received, stop retrying".
    fn notify_reply(&self, accepted: bool) -> NotifyReply;
    async fn download_statement(&self, date: chrono::NaiveDate) -> ProviderCall<Statement>;
}

/// What a provider's notification endpoint needs to know before any channel is found.
#[derive(Debug, Clone)]
pub struct NotificationProfile {
    /// Headers stored with a notification (and needed to verify it again later), lower-case.
    pub kept_headers: &'static [&'static str],
    /// The provider's "not received, retry" answer.
    pub failure_reply: NotifyReply,
}

/// What is wrong with a channel configuration: a stable code, the field it is about (as the
/// form names it: `app_id`, `alipay_public_key`, `private_key`, …) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub code: &'static str,
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no enabled {0} channel is configured")]
    NoChannel(Provider),
    #[error("channel {0} not found or disabled")]
    UnknownChannel(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The configured gateways, built from channel configurations (secrets decrypted on the way).
#[async_trait]
pub trait Gateways: Send + Sync {
    /// The default enabled channel of a provider.
    async fn default_channel(
        &self,
        provider: Provider,
    ) -> Result<(ChannelInfo, std::sync::Arc<dyn Gateway>), GatewayError>;
    async fn channel(&self, channel_id: &ChannelId)
        -> Result<(ChannelInfo, std::sync::Arc<dyn Gateway>), GatewayError>;
    /// The enabled channel a notification belongs to. `now_ms` is the instant the notification
    /// is judged at (time windows).
    async fn for_notification(
        &self,
        provider: Provider,
        n: &RawNotification,
        now_ms: Millis,
    ) -> Result<(ChannelInfo, std::sync::Arc<dyn Gateway>), Rejection>;
    /// What a provider's notifications need kept and how to refuse one when no channel (no
    /// client) can answer: knowledge of the provider's own module.
    fn notification_profile(&self, provider: Provider) -> NotificationProfile;
    /// Forget cached clients (after a configuration change).
    fn invalidate(&self);
    /// Builds a client from a configuration without storing it, to check settings and keys.
    /// Returns the merchant account the configuration names, or what is wrong and where.
    fn check_config(
        &self,
        provider: Provider,
        settings: &str,
        secrets: &ChannelSecrets,
    ) -> Result<String, ConfigProblem>;
}
