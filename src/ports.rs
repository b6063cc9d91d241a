//! Ports: the traits the server implements (storage, clock, ids, secrets, gateways, events).
//!
//! The services in [`crate::services`] run only against these, so every rule is exercised by the
//! same code on SQLite and on PostgreSQL, with the real gateways or with the built-in sandboxes.

use crate::auth::{CurrentUser, Role};
use crate::billing::{Bill, BillItem, Department, Patient};
use crate::ids::TypedId;
use crate::time::Millis;
use crate::views::{
    AuditEntryView, BillDetail, BillQuery, BillSummary, Dashboard, Page, PatientDetail, PatientSummary, UserView,
};
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict the caller can explain to the user.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub trait Clock: Send + Sync {
    fn now_ms(&self) -> Millis;
}

pub trait IdGen: Send + Sync {
    /// 128 bits: 48 bits of milliseconds then 80 random bits (ULID layout), so ids sort by time.
    fn next_bits(&self) -> u128;
}

impl dyn IdGen {
    pub fn new_id<T: TypedId>(&self) -> T {
        T::from_bits(self.next_bits())
    }
}

/// A user as stored, with the password hash (never serialised, never sent to a browser).
#[derive(Clone)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub disabled: bool,
    pub demo: bool,
    pub created_at_ms: Millis,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl UserRecord {
    pub fn view(&self) -> UserView {
        UserView {
            id: self.id.clone(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            disabled: self.disabled,
            created_at_ms: self.created_at_ms,
        }
    }

    pub fn current(&self) -> CurrentUser {
        CurrentUser {
            id: self.id.clone(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
        }
    }
}

/// One line of the append-only audit log (S3). The store chains it to the previous line's hash.
#[derive(Debug, Clone)]
pub struct AuditInput {
    pub id: String,
    pub at_ms: Millis,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// JSON text: before/after values, never secrets.
    pub detail: String,
    pub ip: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleState {
    pub failures: i64,
    pub window_start_ms: Millis,
    pub locked_until_ms: Millis,
}

#[derive(Debug, Clone)]
pub struct NewAuthSession {
    pub token_hash: String,
    pub user_id: String,
    pub created_at_ms: Millis,
    pub expires_at_ms: Millis,
    pub ip: String,
    pub user_agent: String,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditCheck {
    pub entries: i64,
    /// Sequence number of the first entry whose hash does not chain, if any.
    pub broken_at: Option<i64>,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;
    fn pool_stats(&self) -> PoolStats;

    // --- users, sessions, login throttling -------------------------------------------------
    async fn create_user(&self, user: &UserRecord, audit: &AuditInput) -> StoreResult<()>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    async fn list_users(&self) -> StoreResult<Vec<UserView>>;
    /// Compare-and-set on `disabled`; also ends the user's sessions when disabling.
    async fn set_user_disabled(&self, id: &str, disabled: bool, at_ms: Millis, audit: &AuditInput) -> StoreResult<()>;
    /// Sets a new hash and ends the user's sessions.
    async fn set_user_password(
        &self,
        id: &str,
        password_hash: &str,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<()>;
    async fn count_demo_users(&self) -> StoreResult<i64>;

    async fn create_auth_session(&self, s: &NewAuthSession, audit: &AuditInput) -> StoreResult<()>;
    /// The live session for a token hash, with its (enabled) user; extends `last_seen`.
    async fn auth_session(&self, token_hash: &str, now_ms: Millis) -> StoreResult<Option<(UserRecord, Millis)>>;
    async fn delete_auth_session(&self, token_hash: &str, audit: Option<&AuditInput>) -> StoreResult<()>;

    async fn throttle_get(&self, key: &str) -> StoreResult<ThrottleState>;
    /// Records one failure in one transaction; starts a new window when the old one ended and
    /// locks the key when `lock_after` failures fall in one window.
    async fn throttle_fail(
        &self,
        key: &str,
        now_ms: Millis,
        window_ms: Millis,
        lock_after: i64,
        lock_ms: Millis,
    ) -> StoreResult<ThrottleState>;
    async fn throttle_clear(&self, key: &str) -> StoreResult<()>;

    // --- audit --------------------------------------------------------------------------------
    async fn append_audit(&self, audit: &AuditInput) -> StoreResult<()>;
    async fn list_audit(&self, limit: i64) -> StoreResult<Vec<AuditEntryView>>;
    async fn verify_audit_chain(&self) -> StoreResult<AuditCheck>;

    // --- billing ------------------------------------------------------------------------------
    async fn insert_departments(&self, deps: &[Department]) -> StoreResult<()>;
    async fn list_departments(&self) -> StoreResult<Vec<Department>>;
    async fn insert_patients(&self, patients: &[Patient]) -> StoreResult<()>;
    /// Inserts bills with their items, all in one transaction.
    async fn insert_bills(&self, bills: &[(Bill, Vec<BillItem>)]) -> StoreResult<()>;
    async fn count_patients(&self) -> StoreResult<i64>;
    async fn patient_detail(&self, id: &str) -> StoreResult<Option<PatientDetail>>;
    /// By name (substring), record number (prefix) or id.
    async fn list_patients(&self, q: Option<&str>, page: i64, page_size: i64) -> StoreResult<Page<PatientSummary>>;
    async fn bill_detail(&self, id: &str) -> StoreResult<Option<BillDetail>>;
    async fn list_bills(&self, q: &BillQuery) -> StoreResult<Page<BillSummary>>;
    /// Unpaid (and not in an active session) bills of a patient, oldest first.
    async fn unpaid_bills(&self, patient_id: &str) -> StoreResult<Vec<BillSummary>>;
    async fn dashboard(&self, day: &str, day_start_ms: Millis, day_end_ms: Millis) -> StoreResult<Dashboard>;
}

// --- payment gateways (G1) ---------------------------------------------------------------------

use crate::money::Money;
use crate::payments::{
    PayAction, PayMethod, Provider, ProviderCall, ProviderEvent, RefundStatus, Rejection, TradeStatus,
};

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

/// A channel configuration's public face.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelInfo {
    pub id: String,
    pub provider: Provider,
    pub name: String,
    pub account: String,
    pub is_default: bool,
    pub enabled: bool,
    pub sandbox: bool,
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
    async fn channel(&self, channel_id: &str) -> Result<(ChannelInfo, std::sync::Arc<dyn Gateway>), GatewayError>;
    /// The enabled channel a notification belongs to.
    async fn for_notification(
        &self,
        provider: Provider,
        n: &RawNotification,
    ) -> Result<(ChannelInfo, std::sync::Arc<dyn Gateway>), Rejection>;
    /// Forget cached clients (after a configuration change).
    fn invalidate(&self);
}

/// Receives verified provider events (the notification endpoints call it once per distinct
/// event; the checkout service implements it).
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// `Ok` means durably recorded (the provider may stop retrying); `Err` asks for a retry.
    async fn handle(
        &self,
        channel: &ChannelInfo,
        event: &ProviderEvent,
        notification_id: &str,
    ) -> Result<HandleOutcome, Rejection>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleOutcome {
    Applied,
    Duplicate,
    /// Recorded but needed no change (e.g. an informational status).
    Ignored,
}
