//! Login, sessions, throttling and user administration (S1, S3).

use super::{ServiceError, ServiceResult, Services};
use crate::auth::{password_problem, valid_username, CurrentUser, Role};
use crate::ids::{AuditId, UserId};
use crate::ports::{AuditFilter, AuditInput, NewAuthSession, ThrottleReservation, UserRecord};
use crate::time::Millis;
use crate::views::{AuditEntryView, AuditPageView, AuditSearch, UserView};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The cookie that carries a staff session token.
pub const SESSION_COOKIE: &str = "cp_session";

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Sessions are stored by the SHA-256 of their token, so a database leak gives no live cookie.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A hash of a random password, verified against when the user name is unknown, so the answer
/// takes as long as for a real user.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn verify_blocking(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_password(&password, &h),
        None => {
            let dummy = DUMMY_HASH.get_or_init(|| hash_password("not-a-real-password-0").unwrap_or_default());
            let _ = verify_password(&password, dummy);
            false
        }
    })
    .await
    .unwrap_or(false)
}

async fn hash_blocking(password: String) -> ServiceResult<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("hash task: {e}")))?
        .map_err(ServiceError::Internal)
}

#[derive(Debug, Clone)]
pub struct LoginInput {
    pub username: String,
    pub password: String,
    pub ip: String,
    pub user_agent: String,
}

#[derive(Debug, Clone)]
pub struct LoginOk {
    pub token: String,
    pub user: CurrentUser,
    pub expires_at_ms: Millis,
}

#[derive(Debug, Clone)]
pub struct NewUserInput {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password: String,
}

/// Who did something, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: Option<String>,
    pub name: String,
    pub ip: String,
}

impl Actor {
    pub fn user(u: &CurrentUser, ip: &str) -> Actor {
        Actor { id: Some(u.id.clone()), name: u.username.clone(), ip: ip.to_string() }
    }
    pub fn system(name: &str) -> Actor {
        Actor { id: None, name: name.to_string(), ip: String::new() }
    }
}

/// Lines per page of the audit log.
pub const AUDIT_PAGE: i64 = 50;

impl AuditSearch {
    pub fn to_filter(&self) -> ServiceResult<AuditFilter> {
        fn text(field: &'static str, v: &str) -> ServiceResult<Option<String>> {
            let v = v.trim();
            if v.chars().count() > 64 || v.chars().any(char::is_control) {
                return Err(ServiceError::invalid("bad_filter", format!("{field}: at most 64 printable characters")));
            }
            Ok(Some(v.to_string()).filter(|v| !v.is_empty()))
        }
        fn date(field: &'static str, v: &str) -> ServiceResult<Option<chrono::NaiveDate>> {
            if v.trim().is_empty() {
                return Ok(None);
            }
            crate::time::parse_date(v)
                .map(Some)
                .ok_or_else(|| ServiceError::invalid("bad_filter", format!("{field}: a date as yyyy-mm-dd")))
        }
        let action = text("action", &self.action)?;
        if action.as_deref().is_some_and(|a| !a.chars().all(|c| c.is_ascii_lowercase() || c == '_')) {
            return Err(ServiceError::invalid("bad_filter", "action: an action code"));
        }
        let from = date("from", &self.from)?;
        let to = date("to", &self.to)?;
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(ServiceError::invalid("bad_filter", "from: after to"));
            }
        }
        let before = match self.before.trim() {
            "" => None,
            b => Some(
                b.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ServiceError::invalid("bad_filter", "before: a positive line number"))?,
            ),
        };
        Ok(AuditFilter {
            who: text("who", &self.who)?,
            action,
            target: text("target", &self.target)?,
            from_ms: from.map(crate::time::day_start),
            to_ms: to.map(|d| crate::time::day_start(d) + crate::time::DAY_MS),
            before_seq: before,
            limit: AUDIT_PAGE,
        })
    }
}

impl Services {
    pub fn audit_input(
        &self,
        actor: &Actor,
        action: &str,
        target_type: &str,
        target_id: &str,
        detail: serde_json::Value,
    ) -> AuditInput {
        AuditInput {
            id: self.ids.new_id::<AuditId>(),
            at_ms: self.now(),
            actor_id: actor.id.clone(),
            actor_name: actor.name.clone(),
            action: action.to_string(),
            target_type: target_type.to_string(),
            target_id: target_id.to_string(),
            detail: detail.to_string(),
            ip: actor.ip.clone(),
        }
    }

    /// Checks a user name and password, with throttling per user and per address.
    #[tracing::instrument(skip_all, fields(username = %input.username))]
    pub async fn login(&self, input: LoginInput) -> ServiceResult<LoginOk> {
        let username = input.username.trim().to_lowercase();
        if username.is_empty() || input.password.is_empty() {
            return Err(ServiceError::invalid("missing_credentials", "enter your user name and password"));
        }
        if username.len() > 64 || input.password.len() > 256 {
            return Err(ServiceError::invalid("bad_credentials", "wrong user name or password"));
        }
        let policy = self.config.throttle;
        let user_key = format!("user:{username}");
        let addr_key = format!("addr:{}", input.ip);
        // S1: an attempt is reserved (counted) before the password is checked, so a burst of
        // parallel guesses gets at most `lock_after` password checks, never one per request.
        let now = self.now();
        let refused = |until: Millis| ServiceError::TooManyRequests { retry_after_s: ((until - now) / 1000).max(1) };
        let (user_attempt, user_lock) = match self
            .store
            .throttle_reserve(&user_key, now, policy.window_ms, policy.user_lock_after, policy.lock_ms)
            .await?
        {
            ThrottleReservation::Refused { locked_until_ms } => return Err(refused(locked_until_ms)),
            ThrottleReservation::Reserved { attempt, placed_lock } => (attempt, placed_lock),
        };
        let (addr_attempt, addr_lock) = match self
            .store
            .throttle_reserve(&addr_key, now, policy.window_ms, policy.addr_lock_after, policy.lock_ms)
            .await?
        {
            ThrottleReservation::Refused { locked_until_ms } => {
                // no password was checked: the user's reservation goes back
                self.store.throttle_release(&user_key, user_lock).await?;
                return Err(refused(locked_until_ms));
            }
            ThrottleReservation::Reserved { attempt, placed_lock } => (attempt, placed_lock),
        };

        let user = self.store.user_by_username(&username).await?;
        let ok = verify_blocking(input.password.clone(), user.as_ref().map(|u| u.password_hash.clone())).await;
        let actor = Actor { id: user.as_ref().map(|u| u.id.to_string()), name: username.clone(), ip: input.ip.clone() };

        let user = match user {
            Some(u) if ok && !u.disabled && !(u.demo && self.config.production) => u,
            found => {
                let reason = match &found {
                    None => "unknown_user",
                    Some(u) if u.disabled => "disabled",
                    Some(u) if u.demo && self.config.production && ok => "demo_user_in_production",
                    _ => "wrong_password",
                };
                self.store
                    .append_audit(&self.audit_input(
                        &actor,
                        "login_failed",
                        "user",
                        &username,
                        serde_json::json!({ "reason": reason }),
                    ))
                    .await?;
                let failures = user_attempt.max(addr_attempt);
                if failures > policy.slow_after {
                    let delay = (policy.delay_step_ms * (failures - policy.slow_after) as u64).min(policy.max_delay_ms);
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                return Err(match reason {
                    "disabled" if ok => {
                        ServiceError::invalid("account_disabled", "this account is disabled; ask an administrator")
                    }
                    "demo_user_in_production" => {
                        ServiceError::invalid("demo_user_refused", "demo accounts cannot log in to a production system")
                    }
                    _ => ServiceError::invalid("bad_credentials", "wrong user name or password"),
                });
            }
        };

        self.store.throttle_clear(&user_key).await?;
        self.store.throttle_release(&addr_key, addr_lock).await?;
        let token = new_token();
        let now = self.now();
        let expires = now + self.config.session_ttl_ms;
        let session = NewAuthSession {
            token_hash: token_hash(&token),
            user_id: user.id.clone(),
            created_at_ms: now,
            expires_at_ms: expires,
            ip: input.ip.clone(),
            user_agent: input.user_agent.chars().take(200).collect(),
        };
        let audit = self.audit_input(&actor, "login", "user", user.id.as_str(), serde_json::json!({}));
        self.store.create_auth_session(&session, &audit).await?;
        Ok(LoginOk { token, user: user.current(), expires_at_ms: expires })
    }

    pub async fn logout(&self, token: &str, user: Option<&CurrentUser>, ip: &str) -> ServiceResult<()> {
        let audit = user.map(|u| self.audit_input(&Actor::user(u, ip), "logout", "user", &u.id, serde_json::json!({})));
        self.store.delete_auth_session(&token_hash(token), audit.as_ref()).await?;
        Ok(())
    }

    /// The user behind a session token, if the session is live and the user enabled.
    pub async fn authenticate(&self, token: &str) -> ServiceResult<Option<CurrentUser>> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let found = self.store.auth_session(&token_hash(token), self.now(), self.config.session_idle_ms).await?;
        Ok(found.and_then(
            |(u, _)| {
                if u.disabled || (u.demo && self.config.production) {
                    None
                } else {
                    Some(u.current())
                }
            },
        ))
    }

    fn require_admin(actor: &CurrentUser) -> ServiceResult<()> {
        if actor.role == Role::Admin {
            Ok(())
        } else {
            Err(ServiceError::Forbidden)
        }
    }

    pub async fn list_users(&self, actor: &CurrentUser) -> ServiceResult<Vec<UserView>> {
        Self::require_admin(actor)?;
        Ok(self.store.list_users().await?)
    }

    /// Creates a user (admin page, CLI, demo seed). `demo` marks demo accounts, which a
    /// production system refuses.
    pub async fn create_user_as(&self, actor: &Actor, input: NewUserInput, demo: bool) -> ServiceResult<UserView> {
        let username = input.username.trim().to_lowercase();
        if !valid_username(&username) {
            return Err(ServiceError::invalid(
                "bad_username",
                "user names are 3–32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter",
            ));
        }
        let display_name = input.display_name.trim().to_string();
        if display_name.is_empty() || display_name.chars().count() > 40 {
            return Err(ServiceError::invalid("bad_display_name", "the display name must be 1–40 characters"));
        }
        if let Some(code) = password_problem(&input.password) {
            return Err(ServiceError::invalid(code, "passwords must be 10 to 128 characters"));
        }
        if demo && self.config.production {
            return Err(ServiceError::invalid("demo_user_refused", "demo accounts cannot be created in production"));
        }
        let hash = hash_blocking(input.password).await?;
        let rec = UserRecord {
            id: self.ids.new_id::<UserId>(),
            username: username.clone(),
            display_name,
            role: input.role,
            password_hash: hash,
            disabled: false,
            demo,
            created_at_ms: self.now(),
        };
        let audit = self.audit_input(
            actor,
            "user_created",
            "user",
            rec.id.as_str(),
            serde_json::json!({ "after": { "username": rec.username, "role": rec.role.as_str(), "display_name": rec.display_name } }),
        );
        match self.store.create_user(&rec, &audit).await {
            Ok(()) => Ok(rec.view()),
            Err(crate::ports::StoreError::Conflict(_)) => {
                Err(ServiceError::conflict("username_taken", format!("the user name {username} is taken")))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create_user(&self, actor: &CurrentUser, ip: &str, input: NewUserInput) -> ServiceResult<UserView> {
        Self::require_admin(actor)?;
        self.create_user_as(&Actor::user(actor, ip), input, false).await
    }

    pub async fn set_user_disabled(
        &self,
        actor: &CurrentUser,
        ip: &str,
        user_id: &str,
        disabled: bool,
    ) -> ServiceResult<()> {
        Self::require_admin(actor)?;
        let id = UserId::parse(user_id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        if id.as_str() == actor.id && disabled {
            return Err(ServiceError::invalid("cannot_disable_self", "you cannot disable your own account"));
        }
        let before = self.store.user_by_id(&id).await?.ok_or(ServiceError::NotFound("user"))?;
        let audit = self.audit_input(
            &Actor::user(actor, ip),
            if disabled { "user_disabled" } else { "user_enabled" },
            "user",
            id.as_str(),
            serde_json::json!({ "before": { "disabled": before.disabled }, "after": { "disabled": disabled } }),
        );
        self.store.set_user_disabled(&id, disabled, self.now(), &audit).await?;
        Ok(())
    }

    pub async fn reset_password(
        &self,
        actor: &CurrentUser,
        ip: &str,
        user_id: &str,
        new_password: String,
    ) -> ServiceResult<()> {
        Self::require_admin(actor)?;
        let id = UserId::parse(user_id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        if let Some(code) = password_problem(&new_password) {
            return Err(ServiceError::invalid(code, "passwords must be 10 to 128 characters"));
        }
        self.store.user_by_id(&id).await?.ok_or(ServiceError::NotFound("user"))?;
        let hash = hash_blocking(new_password).await?;
        let audit =
            self.audit_input(&Actor::user(actor, ip), "password_reset", "user", id.as_str(), serde_json::json!({}));
        self.store.set_user_password(&id, &hash, self.now(), &audit).await?;
        Ok(())
    }

    /// Issues an API token for integrations (shown once; stored as a hash).
    pub async fn create_api_token(
        &self,
        actor: &CurrentUser,
        ip: &str,
        name: &str,
        role: Role,
        scope: crate::auth::TokenScope,
    ) -> ServiceResult<(String, crate::ports::ApiTokenRecord)> {
        Self::require_admin(actor)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(ServiceError::invalid("bad_token_name", "the token name must be 1–60 characters"));
        }
        let token = format!("cpk_{}", new_token());
        let rec = crate::ports::ApiTokenRecord {
            id: self.ids.new_id::<crate::ids::ApiTokenId>(),
            name: name.to_string(),
            token_hash: token_hash(&token),
            role,
            scope,
            created_by: actor.username.clone(),
            created_at_ms: self.now(),
            disabled: false,
            last_used_at_ms: None,
        };
        let audit = self.audit_input(
            &Actor::user(actor, ip),
            "api_token_created",
            "api_token",
            rec.id.as_str(),
            serde_json::json!({ "name": rec.name, "role": role.as_str(), "scope": scope.as_str() }),
        );
        self.store.insert_api_token(&rec, &audit).await?;
        Ok((token, rec))
    }

    pub async fn list_api_tokens(&self, actor: &CurrentUser) -> ServiceResult<Vec<crate::ports::ApiTokenRecord>> {
        Self::require_admin(actor)?;
        Ok(self.store.list_api_tokens().await?)
    }

    pub async fn disable_api_token(&self, actor: &CurrentUser, ip: &str, id: &str) -> ServiceResult<()> {
        Self::require_admin(actor)?;
        let id = crate::ids::ApiTokenId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        let audit = self.audit_input(
            &Actor::user(actor, ip),
            "api_token_disabled",
            "api_token",
            id.as_str(),
            serde_json::json!({}),
        );
        self.store.disable_api_token(&id, &audit).await?;
        Ok(())
    }

    /// The caller behind a checkout-scope bearer token, as a user of the token's role.
    pub async fn authenticate_api_token(&self, token: &str) -> ServiceResult<Option<CurrentUser>> {
        self.authenticate_token_of(token, crate::auth::TokenScope::Checkout).await
    }

    /// The caller behind an intake-scope bearer token (the HIS).
    pub async fn authenticate_intake_token(&self, token: &str) -> ServiceResult<Option<CurrentUser>> {
        self.authenticate_token_of(token, crate::auth::TokenScope::Intake).await
    }

    async fn authenticate_token_of(
        &self,
        token: &str,
        scope: crate::auth::TokenScope,
    ) -> ServiceResult<Option<CurrentUser>> {
        if !token.starts_with("cpk_") || token.len() > 100 {
            return Ok(None);
        }
        let rec = self.store.api_token_by_hash(&token_hash(token), self.now()).await?;
        Ok(rec.filter(|r| !r.disabled && r.scope == scope).map(|r| CurrentUser {
            id: r.id.to_string(),
            username: format!("token:{}", r.name),
            display_name: r.name.clone(),
            role: r.role,
        }))
    }

    pub async fn audit_log(&self, actor: &CurrentUser, limit: i64) -> ServiceResult<Vec<AuditEntryView>> {
        Self::require_admin(actor)?;
        Ok(self.store.list_audit(limit.clamp(1, 500)).await?)
    }

    /// S3: the audit log searched by who, what, when and object, 50 lines a page, newest first,
    /// with the whole hash chain checked. Every field is what a form or URL sent: checked here.
    pub async fn search_audit_log(&self, actor: &CurrentUser, q: &AuditSearch) -> ServiceResult<AuditPageView> {
        Self::require_admin(actor)?;
        let filter = q.to_filter()?;
        let mut entries = self.store.search_audit(&AuditFilter { limit: filter.limit + 1, ..filter.clone() }).await?;
        let older = if entries.len() as i64 > filter.limit {
            entries.truncate(filter.limit as usize);
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        let chain = self.store.verify_audit_chain().await?;
        Ok(AuditPageView {
            entries,
            older,
            actions: self.store.audit_actions().await?,
            chain_entries: chain.entries,
            chain_broken_at: chain.broken_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_are_hashed() {
        let t = new_token();
        assert_eq!(t.len(), 43);
        assert_eq!(token_hash(&t).len(), 64);
        assert_ne!(token_hash(&t), t);
    }
}
