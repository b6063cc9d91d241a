//! Staff users, login sessions, login throttling and API tokens (S1).

use super::audit::append;
use super::sql::sql;
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::auth::Role;
use clinicpay::ids::{ApiTokenId, UserId};
use clinicpay::ports::{
    ApiTokenRecord, AuditInput, AuthStore, NewAuthSession, StoreError, StoreResult, ThrottleReservation, ThrottleState,
    UserRecord,
};
use clinicpay::time::Millis;
use clinicpay::views::UserView;

#[derive(sqlx::FromRow)]
struct UserRow {
    #[sqlx(try_from = "String")]
    id: UserId,
    username: String,
    display_name: String,
    #[sqlx(try_from = "String")]
    role: Role,
    password_hash: String,
    disabled: bool,
    demo: bool,
    created_at: i64,
}

impl From<UserRow> for UserRecord {
    fn from(r: UserRow) -> Self {
        UserRecord {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            role: r.role,
            password_hash: r.password_hash,
            disabled: r.disabled,
            demo: r.demo,
            created_at_ms: r.created_at,
        }
    }
}

const USER_COLS: &str = "id, username, display_name, role, password_hash, disabled, demo, created_at";

#[derive(sqlx::FromRow)]
struct SessionUserRow {
    #[sqlx(flatten)]
    user: UserRow,
    expires_at: i64,
    last_seen_at: i64,
}

#[derive(sqlx::FromRow)]
struct ThrottleRow {
    failures: i64,
    window_start: i64,
    locked_until: i64,
}

impl From<ThrottleRow> for ThrottleState {
    fn from(r: ThrottleRow) -> Self {
        ThrottleState { failures: r.failures, window_start_ms: r.window_start, locked_until_ms: r.locked_until }
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    #[sqlx(try_from = "String")]
    id: ApiTokenId,
    name: String,
    token_hash: String,
    #[sqlx(try_from = "String")]
    role: Role,
    #[sqlx(try_from = "String")]
    scope: clinicpay::auth::TokenScope,
    created_by: String,
    created_at: i64,
    disabled: bool,
    last_used_at: Option<i64>,
}

impl From<TokenRow> for ApiTokenRecord {
    fn from(r: TokenRow) -> Self {
        ApiTokenRecord {
            id: r.id,
            name: r.name,
            token_hash: r.token_hash,
            role: r.role,
            scope: r.scope,
            created_by: r.created_by,
            created_at_ms: r.created_at,
            disabled: r.disabled,
            last_used_at_ms: r.last_used_at,
        }
    }
}

const TOKEN_COLS: &str = "id, name, token_hash, role, scope, created_by, created_at, disabled, last_used_at";

#[async_trait]
impl AuthStore for SqlStore {
    async fn create_user(&self, u: &UserRecord, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        sql("INSERT INTO users (id, username, display_name, role, password_hash, disabled, demo, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)")
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(u.role)
        .bind(&u.password_hash)
        .bind(u.disabled)
        .bind(u.demo)
        .bind(u.created_at_ms)
        .execute(&mut tx)
        .await?;
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sql(format!("SELECT {USER_COLS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.db)
            .await?;
        Ok(row.map(UserRecord::from))
    }

    async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> =
            sql(format!("SELECT {USER_COLS} FROM users WHERE id = $1")).bind(id).fetch_optional(&self.db).await?;
        Ok(row.map(UserRecord::from))
    }

    async fn list_users(&self) -> StoreResult<Vec<UserView>> {
        let rows: Vec<UserRow> =
            sql(format!("SELECT {USER_COLS} FROM users ORDER BY role, username")).fetch_all(&self.db).await?;
        Ok(rows.into_iter().map(|r| UserRecord::from(r).view()).collect())
    }

    async fn set_user_disabled(
        &self,
        id: &UserId,
        disabled: bool,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        let n = sql("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3 AND disabled = $4")
            .bind(disabled)
            .bind(at_ms)
            .bind(id)
            .bind(!disabled)
            .execute(&mut tx)
            .await?;
        if n == 0 {
            let exists: Option<i64> =
                sql("SELECT CAST(1 AS BIGINT) FROM users WHERE id = $1").bind(id).scalar_optional(&mut tx).await?;
            return if exists.is_some() { Ok(()) } else { Err(StoreError::NotFound) };
        }
        if disabled {
            sql("DELETE FROM auth_sessions WHERE user_id = $1").bind(id).execute(&mut tx).await?;
        }
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn set_user_password(
        &self,
        id: &UserId,
        password_hash: &str,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        let n = sql("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(at_ms)
            .bind(id)
            .execute(&mut tx)
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        sql("DELETE FROM auth_sessions WHERE user_id = $1").bind(id).execute(&mut tx).await?;
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn count_demo_users(&self) -> StoreResult<i64> {
        sql("SELECT COUNT(*) FROM users WHERE demo = TRUE AND disabled = FALSE").scalar(&self.db).await
    }

    async fn create_auth_session(&self, s: &NewAuthSession, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        // Expired sessions of anyone are swept on the way.
        sql("DELETE FROM auth_sessions WHERE expires_at < $1").bind(s.created_at_ms).execute(&mut tx).await?;
        sql("INSERT INTO auth_sessions (token_hash, user_id, created_at, expires_at, last_seen_at, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $3, $5, $6)")
        .bind(&s.token_hash)
        .bind(&s.user_id)
        .bind(s.created_at_ms)
        .bind(s.expires_at_ms)
        .bind(&s.ip)
        .bind(&s.user_agent)
        .execute(&mut tx)
        .await?;
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn auth_session(
        &self,
        token_hash: &str,
        now_ms: Millis,
        idle_ms: Millis,
    ) -> StoreResult<Option<(UserRecord, Millis)>> {
        let row: Option<SessionUserRow> =
            sql("SELECT u.id, u.username, u.display_name, u.role, u.password_hash, u.disabled, u.demo, u.created_at, \
                    s.expires_at, s.last_seen_at \
             FROM auth_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3")
            .bind(token_hash)
            .bind(now_ms)
            .bind(now_ms - idle_ms)
            .fetch_optional(&self.db)
            .await?;
        let Some(row) = row else { return Ok(None) };
        // Touch at most every five minutes (a third of the idle limit when that is shorter), so
        // reading pages does not turn into writes while an active session never goes idle.
        if now_ms - row.last_seen_at > (5 * 60_000).min(idle_ms / 3) {
            let mut tx = self.db.write().await?;
            sql("UPDATE auth_sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(now_ms)
                .bind(token_hash)
                .execute(&mut tx)
                .await?;
            tx.commit().await?;
        }
        Ok(Some((row.user.into(), row.expires_at)))
    }

    async fn delete_auth_session(&self, token_hash: &str, audit: Option<&AuditInput>) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        let n = sql("DELETE FROM auth_sessions WHERE token_hash = $1").bind(token_hash).execute(&mut tx).await?;
        if let (Some(a), true) = (audit, n > 0) {
            append(&mut tx, a).await?;
        }
        tx.commit().await
    }

    async fn throttle_get(&self, key: &str) -> StoreResult<ThrottleState> {
        let row: Option<ThrottleRow> =
            sql("SELECT failures, window_start, locked_until FROM login_throttle WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.db)
                .await?;
        Ok(row.map(ThrottleState::from).unwrap_or_default())
    }

    async fn throttle_reserve(
        &self,
        key: &str,
        now_ms: Millis,
        window_ms: Millis,
        lock_after: i64,
        lock_ms: Millis,
    ) -> StoreResult<ThrottleReservation> {
        let mut tx = self.db.write().await?;
        // the row exists before it is locked: on PostgreSQL `FOR UPDATE` on a missing row locks
        // nothing, and parallel first attempts would each count from zero
        sql("INSERT INTO login_throttle (key, failures, window_start, locked_until) VALUES ($1, 0, $2, 0) \
             ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(now_ms)
        .execute(&mut tx)
        .await?;
        let for_update = tx.dialect().for_update();
        let row: ThrottleRow =
            sql(format!("SELECT failures, window_start, locked_until FROM login_throttle WHERE key = $1{for_update}"))
                .bind(key)
                .fetch_one(&mut tx)
                .await?;
        let mut st = ThrottleState::from(row);
        if st.locked_until_ms > now_ms {
            tx.commit().await?;
            return Ok(ThrottleReservation::Refused { locked_until_ms: st.locked_until_ms });
        }
        if now_ms - st.window_start_ms > window_ms {
            st.failures = 0;
            st.window_start_ms = now_ms;
        }
        st.failures += 1;
        let attempt = st.failures;
        let placed_lock = attempt >= lock_after;
        if placed_lock {
            st.locked_until_ms = now_ms + lock_ms;
            st.failures = 0;
            st.window_start_ms = now_ms;
        }
        sql("UPDATE login_throttle SET failures = $1, window_start = $2, locked_until = $3 WHERE key = $4")
            .bind(st.failures)
            .bind(st.window_start_ms)
            .bind(st.locked_until_ms)
            .bind(key)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(ThrottleReservation::Reserved { attempt, placed_lock })
    }

    async fn throttle_release(&self, key: &str, placed_lock: bool) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        let unlock = if placed_lock { ", locked_until = 0" } else { "" };
        sql(format!(
            "UPDATE login_throttle SET failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END{unlock} WHERE key = $1"
        ))
        .bind(key)
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    async fn throttle_clear(&self, key: &str) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        sql("DELETE FROM login_throttle WHERE key = $1").bind(key).execute(&mut tx).await?;
        tx.commit().await
    }

    async fn insert_api_token(&self, t: &ApiTokenRecord, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        sql("INSERT INTO api_tokens (id, name, token_hash, role, scope, created_by, created_at, disabled) \
             VALUES ($1, $2, $3, $4, $7, $5, $6, FALSE)")
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(t.role)
        .bind(&t.created_by)
        .bind(t.created_at_ms)
        .bind(t.scope.as_str())
        .execute(&mut tx)
        .await?;
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn api_token_by_hash(&self, token_hash: &str, now_ms: Millis) -> StoreResult<Option<ApiTokenRecord>> {
        let row: Option<TokenRow> = sql(format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.db)
            .await?;
        let Some(row) = row else { return Ok(None) };
        // remember use at most once a minute, so API traffic does not turn into writes
        if row.last_used_at.is_none_or(|t| now_ms - t > 60_000) {
            let mut tx = self.db.write().await?;
            sql("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(&row.id)
                .execute(&mut tx)
                .await?;
            tx.commit().await?;
        }
        Ok(Some(row.into()))
    }

    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiTokenRecord>> {
        let rows: Vec<TokenRow> =
            sql(format!("SELECT {TOKEN_COLS} FROM api_tokens ORDER BY created_at DESC")).fetch_all(&self.db).await?;
        Ok(rows.into_iter().map(ApiTokenRecord::from).collect())
    }

    async fn disable_api_token(&self, id: &ApiTokenId, audit: &AuditInput) -> StoreResult<bool> {
        let mut tx = self.db.write().await?;
        let n = sql("UPDATE api_tokens SET disabled = TRUE WHERE id = $1 AND disabled = FALSE")
            .bind(id)
            .execute(&mut tx)
            .await?;
        if n == 1 {
            append(&mut tx, audit).await?;
            tx.commit().await?;
        }
        Ok(n == 1)
    }
}
