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
    async fn set_user_password(&self, id: &str, password_hash: &str, at_ms: Millis, audit: &AuditInput) -> StoreResult<()>;
    async fn count_demo_users(&self) -> StoreResult<i64>;

    async fn create_auth_session(&self, s: &NewAuthSession, audit: &AuditInput) -> StoreResult<()>;
    /// The live session for a token hash, with its (enabled) user; extends `last_seen`.
    async fn auth_session(&self, token_hash: &str, now_ms: Millis) -> StoreResult<Option<(UserRecord, Millis)>>;
    async fn delete_auth_session(&self, token_hash: &str, audit: Option<&AuditInput>) -> StoreResult<()>;

    async fn throttle_get(&self, key: &str) -> StoreResult<ThrottleState>;
    /// Records one failure in one transaction; starts a new window when the old one ended and
    /// locks the key when `lock_after` failures fall in one window.
    async fn throttle_fail(&self, key: &str, now_ms: Millis, window_ms: Millis, lock_after: i64, lock_ms: Millis) -> StoreResult<ThrottleState>;
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
