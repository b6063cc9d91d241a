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

/// Everything the services store. Split into traits by area; every backend implements all.
#[async_trait]
pub trait Store: ChannelStore + CheckoutStore + Send + Sync {
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

    // --- API tokens (stored as SHA-256 hashes) -------------------------------------------------
    async fn insert_api_token(&self, t: &ApiTokenRecord, audit: &AuditInput) -> StoreResult<()>;
    async fn api_token_by_hash(&self, token_hash: &str, now_ms: Millis) -> StoreResult<Option<ApiTokenRecord>>;
    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiTokenRecord>>;
    async fn disable_api_token(&self, id: &str, audit: &AuditInput) -> StoreResult<bool>;
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiTokenRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub role: Role,
    pub created_by: String,
    pub created_at_ms: Millis,
    pub disabled: bool,
    pub last_used_at_ms: Option<Millis>,
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
    /// Builds a client from a configuration without storing it, to check settings and keys.
    /// Returns the merchant account the configuration names.
    fn check_config(&self, provider: Provider, settings: &str, secrets: &ChannelSecrets) -> Result<String, String>;
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

// --- channel configurations and secrets (G6, S4) -------------------------------------------------

/// A channel configuration row. `secret_ciphertext` is sealed by [`Secrets`]; nothing here is
/// secret in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub id: String,
    pub provider: Provider,
    pub name: String,
    pub account_id: String,
    pub is_default: bool,
    pub enabled: bool,
    pub sandbox: bool,
    /// Non-secret settings, JSON text (provider-specific shape).
    pub settings: String,
    pub secret_ciphertext: String,
    pub secret_key_version: i64,
    pub version: i64,
    pub created_at_ms: Millis,
    pub updated_at_ms: Millis,
}

impl ChannelRecord {
    pub fn info(&self) -> ChannelInfo {
        ChannelInfo {
            id: self.id.clone(),
            provider: self.provider,
            name: self.name.clone(),
            account: self.account_id.clone(),
            is_default: self.is_default,
            enabled: self.enabled,
            sandbox: self.sandbox,
        }
    }
}

/// The secret half of a channel: private key(s). Never serialised to a browser, never logged.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelSecrets {
    /// Merchant/app private key (PEM or bare base64).
    pub private_key: String,
    /// WeChat Pay APIv3 key (32 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apiv3_key: Option<String>,
}

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelSecrets(<redacted>)")
    }
}

/// A sealed secret: which master-key version sealed it, and the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_version: i64,
    pub ciphertext: String,
}

/// Encryption at rest under versioned master keys (AES-256-GCM). `aad` binds a ciphertext to
/// its row, so it cannot be moved to another channel.
pub trait Secrets: Send + Sync {
    fn current_version(&self) -> i64;
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> anyhow::Result<Sealed>;
    fn open(&self, aad: &[u8], sealed: &Sealed) -> anyhow::Result<Vec<u8>>;
}

/// A notification as stored before anything is done with it.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub id: String,
    pub provider: Provider,
    pub received_at_ms: Millis,
    pub remote_addr: String,
    pub content_type: String,
    /// JSON object of the headers that matter.
    pub headers: String,
    pub body: Vec<u8>,
}

/// What became of a stored notification.
#[derive(Debug, Clone)]
pub struct NotificationResult {
    /// `applied`, `duplicate`, `ignored`, `rejected` or `failed`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub channel_id: Option<String>,
    pub event_id: Option<String>,
    pub out_trade_no: Option<String>,
    pub processed_at_ms: Millis,
}

#[derive(Debug, Clone)]
pub struct StoredNotification {
    pub id: String,
    pub provider: Provider,
    pub received_at_ms: Millis,
    pub content_type: String,
    pub headers: String,
    pub body: Vec<u8>,
    pub status: String,
}

/// Storage for channels and notifications (a second trait so the billing store stays readable;
/// both backends implement both).
#[async_trait]
pub trait ChannelStore: Send + Sync {
    async fn insert_channel(&self, c: &ChannelRecord, audit: &AuditInput) -> StoreResult<()>;
    /// Compare-and-set on `version`; the stored version becomes `c.version`.
    async fn update_channel(&self, c: &ChannelRecord, expected_version: i64, audit: &AuditInput) -> StoreResult<()>;
    /// Makes a channel its provider's default (clearing the old one) in one transaction.
    async fn set_default_channel(&self, id: &str, at_ms: Millis, audit: &AuditInput) -> StoreResult<()>;
    async fn list_channels(&self) -> StoreResult<Vec<ChannelRecord>>;
    async fn get_channel(&self, id: &str) -> StoreResult<Option<ChannelRecord>>;

    async fn insert_notification(&self, n: &NewNotification) -> StoreResult<()>;
    /// Stores several raw notifications in one durable commit (group commit): all or none.
    async fn insert_notifications(&self, ns: &[NewNotification]) -> StoreResult<()>;
    async fn finish_notification(&self, id: &str, r: &NotificationResult) -> StoreResult<()>;
    async fn list_notifications(&self, limit: i64) -> StoreResult<Vec<crate::views::NotificationView>>;
    /// Notifications still `received` after `before_ms` (processing died): to be re-driven.
    async fn unfinished_notifications(&self, before_ms: Millis, limit: i64) -> StoreResult<Vec<StoredNotification>>;
    /// Records a provider event id; false when it was recorded before (a duplicate).
    async fn record_provider_event(
        &self,
        provider: Provider,
        event_id: &str,
        notification_id: &str,
        outcome: &str,
        at_ms: Millis,
    ) -> StoreResult<bool>;
}

// --- checkout sessions, payments, exceptions, workers (C1–C5, G5) --------------------------------

use crate::checkout::{EndReason, ExceptionView, LatePaymentPolicy, SessionView};
use crate::payments::{PayMethod as Method, SessionStatus};

/// A session to open; the store freezes each bill's amount from the bill itself.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub patient_id: String,
    pub channel_id: String,
    pub provider: Provider,
    pub method: Method,
    pub out_trade_no: String,
    pub bill_ids: Vec<String>,
    pub expires_at_ms: Millis,
    pub created_at_ms: Millis,
    pub created_by: String,
    /// (scope, key, request fingerprint) when the caller sent an `Idempotency-Key`.
    pub idempotency: Option<(String, String, String)>,
    /// The session this one replaces ("refresh QR"), ended in the same transaction.
    pub replaces: Option<String>,
}

/// Why a session could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRefusal {
    UnknownPatient,
    UnknownBill(String),
    OtherPatient(String),
    NotPayable {
        bill_id: String,
        status: String,
    },
    InActiveSession {
        bill_id: String,
        session_id: String,
    },
    /// The idempotency key was used for a different request.
    IdempotencyReused {
        session_id: String,
    },
    /// The session to replace is no longer pending.
    ReplacedNotPending {
        status: SessionStatus,
    },
}

#[derive(Debug, Clone)]
pub enum CreateOutcome {
    Created(SessionView),
    /// Same idempotency key and request: the session made the first time.
    Existing(SessionView),
}

/// A verified payment to apply (from a notification or from status sync).
#[derive(Debug, Clone)]
pub struct PaymentApplication {
    /// The provider's event id, or `query:<txn id>` for status sync.
    pub event_id: String,
    pub notification_id: Option<String>,
    pub provider: Provider,
    pub channel_id: String,
    pub out_trade_no: String,
    pub provider_txn_id: String,
    pub amount: Money,
    pub paid_at_ms: Millis,
    pub now_ms: Millis,
    pub late_policy: LatePaymentPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyResult {
    /// The session is paid: one payment per bill, bills paid, ledger entry written.
    Paid { session_id: String, bills: usize },
    /// Seen before: nothing changed.
    Duplicate,
    /// Money arrived for a session that could not take it; recorded as unallocated.
    LatePayment { session_id: String, exception_id: String, refund_queued: bool },
    /// The amount differs from the session's: recorded, the session stays unpaid.
    AmountMismatch { session_id: String, exception_id: String },
    /// No session has this order number (on this channel).
    UnknownOrder,
}

/// A unit of background work claimed under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTask {
    pub session_id: String,
    pub channel_id: String,
    pub out_trade_no: String,
    pub status: SessionStatus,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundTask {
    pub id: String,
    pub channel_id: String,
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub amount: Money,
    pub total: Money,
    pub reason: String,
    pub status: String,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundProgress {
    Succeeded {
        provider_refund_id: Option<String>,
    },
    Processing,
    /// Retry at `next_attempt_at_ms`.
    Retry {
        error: String,
        next_attempt_at_ms: Millis,
    },
    /// Give up: the exception goes back to a person.
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: String,
    pub topic: String,
    pub aggregate_id: String,
    pub payload: String,
}

/// Invariants an auditor (and the reliability suite) checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LedgerReport {
    pub journal_entries: i64,
    pub unsealed_entries: i64,
    pub unbalanced_entries: i64,
    /// Account code → balance in fen (debit positive).
    pub balances: Vec<(String, i64)>,
    pub paid_sessions: i64,
    /// Paid sessions whose payments do not add up to exactly their total.
    pub misallocated_sessions: i64,
    /// Bills with more than one payment (the unique index makes this impossible).
    pub bills_paid_twice: i64,
    /// Bills marked paid without a payment, or with a payment but not marked paid.
    pub bill_payment_mismatches: i64,
    /// Notifications still `received` (not resolved).
    pub unresolved_notifications: i64,
    /// Money received (allocated + unallocated) minus refunded equals the clearing balances.
    pub clearing_matches_receipts: bool,
}

#[async_trait]
pub trait CheckoutStore: Send + Sync {
    /// Opens a session in one transaction: checks every bill (exists, this patient's, unpaid,
    /// in no active session), freezes amounts, marks bills paying, records the idempotency key,
    /// and ends the replaced session if any.
    async fn create_session(&self, s: &NewSession) -> StoreResult<Result<CreateOutcome, SessionRefusal>>;
    /// Stores what the provider gave us to show the payer (compare-and-set on a pending session).
    async fn set_pay_action(&self, session_id: &str, kind: &str, content: &str, at_ms: Millis) -> StoreResult<bool>;
    /// Ends a pending session (CAS) and releases its bills; `close_at_provider` queues the trade
    /// for closing. `Err(status)` when the session was not pending.
    async fn end_session(
        &self,
        session_id: &str,
        reason: EndReason,
        at_ms: Millis,
        close_at_provider: bool,
    ) -> StoreResult<Result<(), SessionStatus>>;
    async fn session(&self, session_id: &str) -> StoreResult<Option<SessionView>>;
    async fn session_by_trade(&self, out_trade_no: &str) -> StoreResult<Option<SessionView>>;
    /// Pending sessions of a patient (the charge screen resumes them).
    async fn pending_sessions_of(&self, patient_id: &str) -> StoreResult<Vec<SessionView>>;
    /// C3 in one transaction: session pending→paid, a payment per bill, bills paid, a balanced
    /// journal entry, an outbox event, the provider transaction booked once. Late money becomes
    /// unallocated with an exception (and a queued refund under `AutoRefund`).
    async fn apply_payment(&self, p: &PaymentApplication, ids: &dyn IdGen) -> StoreResult<ApplyResult>;
    /// Several applications, each in its own savepoint, all in one durable commit (group commit).
    async fn apply_payments(
        &self,
        ps: &[PaymentApplication],
        ids: &dyn IdGen,
    ) -> StoreResult<Vec<StoreResult<ApplyResult>>>;

    // workers: each claims work under a lease so several instances never do the same item twice
    /// Ends pending sessions past `expires_at` (and sessions whose provider call never answered),
    /// queueing them for closing at the provider. Returns the ended session ids.
    async fn expire_sessions(&self, now_ms: Millis, limit: i64) -> StoreResult<Vec<String>>;
    async fn claim_closes(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<SessionTask>>;
    async fn mark_closed_at_provider(&self, session_id: &str) -> StoreResult<()>;
    /// Pending sessions due for a status query; pushes their next query time back.
    async fn claim_syncs(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<SessionTask>>;
    async fn claim_refunds(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<RefundTask>>;
    async fn refund_progress(
        &self,
        refund_id: &str,
        progress: &RefundProgress,
        now_ms: Millis,
        ids: &dyn IdGen,
    ) -> StoreResult<()>;
    async fn claim_outbox(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<OutboxItem>>;
    async fn mark_published(&self, ids: &[String], now_ms: Millis) -> StoreResult<()>;

    // exceptions
    async fn list_exceptions(&self, open_only: bool, limit: i64) -> StoreResult<Vec<ExceptionView>>;
    /// A person's decision on a held exception: `refund` queues a refund, `resolve` closes it
    /// with a note. Compare-and-set on the status.
    async fn decide_exception(
        &self,
        exception_id: &str,
        refund: bool,
        note: &str,
        actor: &str,
        now_ms: Millis,
        ids: &dyn IdGen,
        audit: &AuditInput,
    ) -> StoreResult<Result<(), String>>;

    async fn ledger_report(&self) -> StoreResult<LedgerReport>;
    async fn count_pending_sessions(&self) -> StoreResult<i64>;
    /// Our refund row for a provider refund number.
    async fn refund_by_out_no(&self, out_refund_no: &str) -> StoreResult<Option<String>>;
}

/// Tells live screens that a session changed, only after the change is committed. On
/// PostgreSQL this crosses instances (LISTEN/NOTIFY); on SQLite it stays in-process.
#[async_trait]
pub trait SessionEvents: Send + Sync {
    async fn publish(&self, session_id: &str, status: SessionStatus);
}
