//! Staff users, their login sessions, login throttling and API tokens (S1).

use super::{AuditInput, StoreResult};
use crate::auth::{CurrentUser, Role};
use crate::ids::{ApiTokenId, UserId};
use crate::time::Millis;
use crate::views::UserView;
use async_trait::async_trait;

/// A user as stored, with the password hash (never serialised, never sent to a browser).
#[derive(Clone)]
pub struct UserRecord {
    pub id: UserId,
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
            id: self.id.to_string(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleState {
    pub failures: i64,
    pub window_start_ms: Millis,
    pub locked_until_ms: Millis,
}

/// What reserving a login attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReservation {
    /// The key is locked: the attempt is refused before any password check.
    Refused { locked_until_ms: Millis },
    /// The attempt may go ahead; `attempt` is its number in the window (this one included)
    /// and `placed_lock` says that it reached the limit and locked the key for the next ones.
    Reserved { attempt: i64, placed_lock: bool },
}

#[derive(Debug, Clone)]
pub struct NewAuthSession {
    pub token_hash: String,
    pub user_id: UserId,
    pub created_at_ms: Millis,
    pub expires_at_ms: Millis,
    pub ip: String,
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiTokenRecord {
    pub id: ApiTokenId,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub role: Role,
    pub scope: crate::auth::TokenScope,
    pub created_by: String,
    pub created_at_ms: Millis,
    pub disabled: bool,
    pub last_used_at_ms: Option<Millis>,
}

#[async_trait]
pub trait AuthStore: Send + Sync {
    async fn create_user(&self, user: &UserRecord, audit: &AuditInput) -> StoreResult<()>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<UserRecord>>;
    async fn list_users(&self) -> StoreResult<Vec<UserView>>;
    /// Compare-and-set on `disabled`; also ends the user's sessions when disabling.
    async fn set_user_disabled(
        &self,
        id: &UserId,
        disabled: bool,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<()>;
    /// Sets a new hash and ends the user's sessions.
    async fn set_user_password(
        &self,
        id: &UserId,
        password_hash: &str,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<()>;
    async fn count_demo_users(&self) -> StoreResult<i64>;

    async fn create_auth_session(&self, s: &NewAuthSession, audit: &AuditInput) -> StoreResult<()>;
    /// The live session for a token hash, with its (enabled) user; extends `last_seen`.
    /// The live session of this token: not past its lifetime, and used within the last
    /// `idle_ms` (S1: an idle session must log in again). A use refreshes the idle clock.
    async fn auth_session(
        &self,
        token_hash: &str,
        now_ms: Millis,
        idle_ms: Millis,
    ) -> StoreResult<Option<(UserRecord, Millis)>>;
    async fn delete_auth_session(&self, token_hash: &str, audit: Option<&AuditInput>) -> StoreResult<()>;

    async fn throttle_get(&self, key: &str) -> StoreResult<ThrottleState>;
    /// Reserves one login attempt for `key` before the password is checked, in one transaction
    /// on a row that exists before it is locked (so parallel attempts queue on it): refused
    /// while the key is locked; otherwise counted as a failure (a new window when the old one
    /// ended), and the attempt that reaches `lock_after` locks the key. A successful login gives
    /// its reservation back ([`AuthStore::throttle_release`] / [`AuthStore::throttle_clear`]).
    async fn throttle_reserve(
        &self,
        key: &str,
        now_ms: Millis,
        window_ms: Millis,
        lock_after: i64,
        lock_ms: Millis,
    ) -> StoreResult<ThrottleReservation>;
    /// Gives back one reservation that turned out to be a success (and the lock it placed).
    async fn throttle_release(&self, key: &str, placed_lock: bool) -> StoreResult<()>;
    async fn throttle_clear(&self, key: &str) -> StoreResult<()>;

    // API tokens, stored as SHA-256 hashes
    async fn insert_api_token(&self, t: &ApiTokenRecord, audit: &AuditInput) -> StoreResult<()>;
    async fn api_token_by_hash(&self, token_hash: &str, now_ms: Millis) -> StoreResult<Option<ApiTokenRecord>>;
    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiTokenRecord>>;
    async fn disable_api_token(&self, id: &ApiTokenId, audit: &AuditInput) -> StoreResult<bool>;
}
