// The Store implementation shared by SQLite and PostgreSQL.
//
// This file is `include!`d by `sqlite.rs` and `postgres.rs` (it is not a module of its own).
// Each includer defines: `Db` (the sqlx database type), `ThisStore` (its store struct, with
// `pool`, `max_connections` and `write_tx()`), `BACKEND` and `FOR_UPDATE`.
// SQL here uses `$N` placeholders, BIGINT fen and BIGINT Unix milliseconds only, and casts every
// SUM to BIGINT (PostgreSQL would return NUMERIC).

#[allow(unused_imports)]
use super::{audit_hash, like_escape, map_err};
#[allow(unused_imports)]
use anyhow::anyhow;
#[allow(unused_imports)]
use clinicpay::{
    auth::Role,
    billing::{Bill, BillItem, BillStatus, Department, ItemCategory, Patient},
    money::Money,
    ports::{
        AuditCheck, AuditInput, NewAuthSession, PoolStats, Store, StoreError, StoreResult, ThrottleState, UserRecord,
    },
    time::Millis,
    views::{
        AuditEntryView, BillDetail, BillQuery, BillSort, BillSummary, Dashboard, Page, PatientDetail, PatientSummary,
        PaymentLine, RecentPayment, UserView,
    },
};
#[allow(unused_imports)]
use sqlx::{QueryBuilder, Row};

/// A write transaction (on SQLite, holding the in-process writer lock).
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, Db>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    fn c(&mut self) -> &mut <Db as sqlx::Database>::Connection {
        &mut self.tx
    }

    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

fn money(fen: i64) -> StoreResult<Money> {
    Money::from_fen(fen).map_err(|e| StoreError::Internal(anyhow!("stored amount {fen}: {e}")))
}

fn bill_status(s: &str) -> StoreResult<BillStatus> {
    BillStatus::parse(s).ok_or_else(|| StoreError::Internal(anyhow!("stored bill status {s:?}")))
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    role: String,
    password_hash: String,
    disabled: bool,
    demo: bool,
    created_at: i64,
}

impl UserRow {
    fn into_record(self) -> StoreResult<UserRecord> {
        Ok(UserRecord {
            role: Role::parse(&self.role)
                .ok_or_else(|| StoreError::Internal(anyhow!("stored role {:?}", self.role)))?,
            id: self.id,
            username: self.username,
            display_name: self.display_name,
            password_hash: self.password_hash,
            disabled: self.disabled,
            demo: self.demo,
            created_at_ms: self.created_at,
        })
    }
}

const USER_COLS: &str = "id, username, display_name, role, password_hash, disabled, demo, created_at";

#[derive(sqlx::FromRow)]
struct BillSummaryRow {
    id: String,
    bill_no: String,
    patient_id: String,
    patient_name: String,
    mrn: String,
    department_zh: String,
    department_en: String,
    total_fen: i64,
    status: String,
    created_at: i64,
}

impl BillSummaryRow {
    fn into_view(self) -> StoreResult<BillSummary> {
        Ok(BillSummary {
            total: money(self.total_fen)?,
            status: bill_status(&self.status)?,
            id: self.id,
            bill_no: self.bill_no,
            patient_id: self.patient_id,
            patient_name: self.patient_name,
            mrn: self.mrn,
            department_zh: self.department_zh,
            department_en: self.department_en,
            created_at_ms: self.created_at,
        })
    }
}

const BILL_SUMMARY_SELECT: &str = "SELECT b.id, b.bill_no, b.patient_id, p.name AS patient_name, p.mrn, \
     d.name_zh AS department_zh, d.name_en AS department_en, b.total_fen, b.status, b.created_at \
     FROM bills b JOIN patients p ON p.id = b.patient_id JOIN departments d ON d.id = b.department_id";

#[derive(sqlx::FromRow)]
struct PatientSummaryRow {
    id: String,
    mrn: String,
    name: String,
    gender: String,
    phone: String,
    birth_date: Option<String>,
    unpaid_count: i64,
    unpaid_fen: i64,
}

impl PatientSummaryRow {
    fn into_view(self) -> StoreResult<(PatientSummary, Option<String>)> {
        Ok((
            PatientSummary {
                unpaid_total: money(self.unpaid_fen)?,
                phone_masked: clinicpay::billing::mask_phone(&self.phone),
                id: self.id,
                mrn: self.mrn,
                name: self.name,
                gender: self.gender,
                unpaid_count: self.unpaid_count,
            },
            self.birth_date,
        ))
    }
}

const PATIENT_SUMMARY_SELECT: &str = "SELECT p.id, p.mrn, p.name, p.gender, p.phone, p.birth_date, \
     (SELECT COUNT(*) FROM bills b WHERE b.patient_id = p.id AND b.status IN ('unpaid', 'paying')) AS unpaid_count, \
     (SELECT CAST(COALESCE(SUM(b.total_fen), 0) AS BIGINT) FROM bills b \
        WHERE b.patient_id = p.id AND b.status IN ('unpaid', 'paying')) AS unpaid_fen \
     FROM patients p";

impl ThisStore {
    async fn append_audit_tx(tx: &mut WriteTx, a: &AuditInput) -> StoreResult<()> {
        let head = sqlx::query(&format!("SELECT seq, hash FROM audit_head WHERE id = 1{FOR_UPDATE}"))
            .fetch_one(tx.c())
            .await
            .map_err(map_err)?;
        let prev_seq: i64 = head.try_get("seq").map_err(map_err)?;
        let prev_hash: String = head.try_get("hash").map_err(map_err)?;
        let seq = prev_seq + 1;
        let hash = audit_hash(&prev_hash, seq, a);
        sqlx::query(
            "INSERT INTO audit_log (seq, id, at, actor_id, actor_name, action, target_type, target_id, detail, ip, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(seq)
        .bind(&a.id)
        .bind(a.at_ms)
        .bind(&a.actor_id)
        .bind(&a.actor_name)
        .bind(&a.action)
        .bind(&a.target_type)
        .bind(&a.target_id)
        .bind(&a.detail)
        .bind(&a.ip)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(tx.c())
        .await
        .map_err(map_err)?;
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3")
            .bind(seq)
            .bind(&hash)
            .bind(prev_seq)
            .execute(tx.c())
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn payments_of_bill(&self, bill_id: &str) -> StoreResult<Vec<PaymentLine>> {
        let rows = sqlx::query(
            "SELECT id, session_id, provider, provider_txn_id, amount_fen, paid_at FROM payments WHERE bill_id = $1 ORDER BY paid_at",
        )
        .bind(bill_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(PaymentLine {
                    id: r.try_get("id").map_err(map_err)?,
                    session_id: r.try_get("session_id").map_err(map_err)?,
                    provider: r.try_get("provider").map_err(map_err)?,
                    provider_txn_id: r.try_get("provider_txn_id").map_err(map_err)?,
                    amount: money(r.try_get("amount_fen").map_err(map_err)?)?,
                    paid_at_ms: r.try_get("paid_at").map_err(map_err)?,
                })
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Store for ThisStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats { size: self.pool.size(), idle: self.pool.num_idle() as u32, max: self.max_connections }
    }

    // --- users, sessions, throttling ---------------------------------------------------------

    async fn create_user(&self, u: &UserRecord, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO users (id, username, display_name, role, password_hash, disabled, demo, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(u.role.as_str())
        .bind(&u.password_hash)
        .bind(u.disabled)
        .bind(u.demo)
        .bind(u.created_at_ms)
        .execute(tx.c())
        .await
        .map_err(map_err)?;
        Self::append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(UserRow::into_record).transpose()
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(UserRow::into_record).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<UserView>> {
        let rows: Vec<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLS} FROM users ORDER BY role, username"))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(|r| r.into_record().map(|u| u.view())).collect()
    }

    async fn set_user_disabled(&self, id: &str, disabled: bool, at_ms: Millis, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let n = sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3 AND disabled = $4")
            .bind(disabled)
            .bind(at_ms)
            .bind(id)
            .bind(!disabled)
            .execute(tx.c())
            .await
            .map_err(map_err)?
            .rows_affected();
        if n == 0 {
            let exists = sqlx::query("SELECT 1 FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(tx.c())
                .await
                .map_err(map_err)?;
            return if exists.is_some() { Ok(()) } else { Err(StoreError::NotFound) };
        }
        if disabled {
            sqlx::query("DELETE FROM auth_sessions WHERE user_id = $1")
                .bind(id)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
        }
        Self::append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn set_user_password(
        &self,
        id: &str,
        password_hash: &str,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let n = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(at_ms)
            .bind(id)
            .execute(tx.c())
            .await
            .map_err(map_err)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM auth_sessions WHERE user_id = $1").bind(id).execute(tx.c()).await.map_err(map_err)?;
        Self::append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn count_demo_users(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE demo = TRUE AND disabled = FALSE")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn create_auth_session(&self, s: &NewAuthSession, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        // Expired sessions of anyone are swept on the way.
        sqlx::query("DELETE FROM auth_sessions WHERE expires_at < $1")
            .bind(s.created_at_ms)
            .execute(tx.c())
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO auth_sessions (token_hash, user_id, created_at, expires_at, last_seen_at, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $3, $5, $6)",
        )
        .bind(&s.token_hash)
        .bind(&s.user_id)
        .bind(s.created_at_ms)
        .bind(s.expires_at_ms)
        .bind(&s.ip)
        .bind(&s.user_agent)
        .execute(tx.c())
        .await
        .map_err(map_err)?;
        Self::append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn auth_session(&self, token_hash: &str, now_ms: Millis) -> StoreResult<Option<(UserRecord, Millis)>> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, u.password_hash, u.disabled, u.demo, u.created_at, \
                    s.expires_at, s.last_seen_at \
             FROM auth_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let user = UserRow {
            id: row.try_get("id").map_err(map_err)?,
            username: row.try_get("username").map_err(map_err)?,
            display_name: row.try_get("display_name").map_err(map_err)?,
            role: row.try_get("role").map_err(map_err)?,
            password_hash: row.try_get("password_hash").map_err(map_err)?,
            disabled: row.try_get("disabled").map_err(map_err)?,
            demo: row.try_get("demo").map_err(map_err)?,
            created_at: row.try_get("created_at").map_err(map_err)?,
        }
        .into_record()?;
        let expires: i64 = row.try_get("expires_at").map_err(map_err)?;
        let last_seen: i64 = row.try_get("last_seen_at").map_err(map_err)?;
        // Touch at most every five minutes, so reading pages does not turn into writes.
        if now_ms - last_seen > 5 * 60_000 {
            let mut tx = self.write_tx().await.map_err(map_err)?;
            sqlx::query("UPDATE auth_sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(now_ms)
                .bind(token_hash)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
        }
        Ok(Some((user, expires)))
    }

    async fn delete_auth_session(&self, token_hash: &str, audit: Option<&AuditInput>) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let n = sqlx::query("DELETE FROM auth_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(tx.c())
            .await
            .map_err(map_err)?
            .rows_affected();
        if let (Some(a), true) = (audit, n > 0) {
            Self::append_audit_tx(&mut tx, a).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn throttle_get(&self, key: &str) -> StoreResult<ThrottleState> {
        let row = sqlx::query("SELECT failures, window_start, locked_until FROM login_throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(match row {
            None => ThrottleState::default(),
            Some(r) => ThrottleState {
                failures: r.try_get("failures").map_err(map_err)?,
                window_start_ms: r.try_get("window_start").map_err(map_err)?,
                locked_until_ms: r.try_get("locked_until").map_err(map_err)?,
            },
        })
    }

    async fn throttle_fail(
        &self,
        key: &str,
        now_ms: Millis,
        window_ms: Millis,
        lock_after: i64,
        lock_ms: Millis,
    ) -> StoreResult<ThrottleState> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let row = sqlx::query(&format!(
            "SELECT failures, window_start, locked_until FROM login_throttle WHERE key = $1{FOR_UPDATE}"
        ))
        .bind(key)
        .fetch_optional(tx.c())
        .await
        .map_err(map_err)?;
        let mut st = match row {
            None => ThrottleState { failures: 0, window_start_ms: now_ms, locked_until_ms: 0 },
            Some(r) => ThrottleState {
                failures: r.try_get("failures").map_err(map_err)?,
                window_start_ms: r.try_get("window_start").map_err(map_err)?,
                locked_until_ms: r.try_get("locked_until").map_err(map_err)?,
            },
        };
        if now_ms - st.window_start_ms > window_ms {
            st.failures = 0;
            st.window_start_ms = now_ms;
        }
        st.failures += 1;
        if st.failures >= lock_after {
            st.locked_until_ms = now_ms + lock_ms;
            st.failures = 0;
            st.window_start_ms = now_ms;
        }
        sqlx::query(
            "INSERT INTO login_throttle (key, failures, window_start, locked_until) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET failures = $2, window_start = $3, locked_until = $4",
        )
        .bind(key)
        .bind(st.failures)
        .bind(st.window_start_ms)
        .bind(st.locked_until_ms)
        .execute(tx.c())
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(st)
    }

    async fn throttle_clear(&self, key: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        sqlx::query("DELETE FROM login_throttle WHERE key = $1").bind(key).execute(tx.c()).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    // --- audit -----------------------------------------------------------------------------------

    async fn append_audit(&self, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        Self::append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_audit(&self, limit: i64) -> StoreResult<Vec<AuditEntryView>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor_name, action, target_type, target_id, detail, hash FROM audit_log ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|r| {
                let tt: String = r.try_get("target_type").map_err(map_err)?;
                let ti: String = r.try_get("target_id").map_err(map_err)?;
                Ok(AuditEntryView {
                    seq: r.try_get("seq").map_err(map_err)?,
                    at_ms: r.try_get("at").map_err(map_err)?,
                    actor: r.try_get("actor_name").map_err(map_err)?,
                    action: r.try_get("action").map_err(map_err)?,
                    target: format!("{tt}:{ti}"),
                    detail: r.try_get("detail").map_err(map_err)?,
                    hash: r.try_get("hash").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn verify_audit_chain(&self) -> StoreResult<AuditCheck> {
        let rows = sqlx::query(
            "SELECT seq, id, at, actor_id, actor_name, action, target_type, target_id, detail, ip, prev_hash, hash \
             FROM audit_log ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut prev = "0".repeat(64);
        let mut expected_seq = 1i64;
        let mut check = AuditCheck::default();
        for r in rows {
            let seq: i64 = r.try_get("seq").map_err(map_err)?;
            let a = AuditInput {
                id: r.try_get("id").map_err(map_err)?,
                at_ms: r.try_get("at").map_err(map_err)?,
                actor_id: r.try_get("actor_id").map_err(map_err)?,
                actor_name: r.try_get("actor_name").map_err(map_err)?,
                action: r.try_get("action").map_err(map_err)?,
                target_type: r.try_get("target_type").map_err(map_err)?,
                target_id: r.try_get("target_id").map_err(map_err)?,
                detail: r.try_get("detail").map_err(map_err)?,
                ip: r.try_get("ip").map_err(map_err)?,
            };
            let prev_hash: String = r.try_get("prev_hash").map_err(map_err)?;
            let hash: String = r.try_get("hash").map_err(map_err)?;
            check.entries += 1;
            if check.broken_at.is_none()
                && (seq != expected_seq || prev_hash != prev || audit_hash(&prev, seq, &a) != hash)
            {
                check.broken_at = Some(seq);
            }
            prev = hash;
            expected_seq = seq + 1;
        }
        Ok(check)
    }

    // --- billing ---------------------------------------------------------------------------------

    async fn insert_departments(&self, deps: &[Department]) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        for d in deps {
            sqlx::query("INSERT INTO departments (id, code, name_zh, name_en) VALUES ($1, $2, $3, $4)")
                .bind(d.id.as_str())
                .bind(&d.code)
                .bind(&d.name_zh)
                .bind(&d.name_en)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn list_departments(&self) -> StoreResult<Vec<Department>> {
        let rows = sqlx::query("SELECT id, code, name_zh, name_en FROM departments ORDER BY code")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.into_iter()
            .map(|r| {
                let id: String = r.try_get("id").map_err(map_err)?;
                Ok(Department {
                    id: clinicpay::ids::DepartmentId::parse(&id).map_err(|e| StoreError::Internal(e.into()))?,
                    code: r.try_get("code").map_err(map_err)?,
                    name_zh: r.try_get("name_zh").map_err(map_err)?,
                    name_en: r.try_get("name_en").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn insert_patients(&self, patients: &[Patient]) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        for p in patients {
            sqlx::query(
                "INSERT INTO patients (id, mrn, name, gender, birth_date, phone, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(p.id.as_str())
            .bind(&p.mrn)
            .bind(&p.name)
            .bind(&p.gender)
            .bind(&p.birth_date)
            .bind(&p.phone)
            .bind(p.created_at_ms)
            .execute(tx.c())
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn insert_bills(&self, bills: &[(Bill, Vec<BillItem>)]) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        for (b, items) in bills {
            let sum = Money::sum(items.iter().map(|i| i.amount)).map_err(|e| StoreError::Internal(e.into()))?;
            if sum != b.total || items.is_empty() {
                return Err(StoreError::Conflict(format!("bill {} total does not equal its items", b.bill_no)));
            }
            sqlx::query(
                "INSERT INTO bills (id, bill_no, patient_id, department_id, total_fen, refunded_fen, status, created_at, paid_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8)",
            )
            .bind(b.id.as_str())
            .bind(&b.bill_no)
            .bind(b.patient_id.as_str())
            .bind(b.department_id.as_str())
            .bind(b.total.fen())
            .bind(b.refunded.fen())
            .bind(b.status.as_str())
            .bind(b.created_at_ms)
            .bind(b.paid_at_ms)
            .execute(tx.c())
            .await
            .map_err(map_err)?;
            for it in items {
                sqlx::query(
                    "INSERT INTO bill_items (bill_id, line_no, category, description, quantity, unit_price_fen, amount_fen) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(b.id.as_str())
                .bind(it.line_no)
                .bind(it.category.as_str())
                .bind(&it.description)
                .bind(it.quantity)
                .bind(it.unit_price.fen())
                .bind(it.amount.fen())
                .execute(tx.c())
                .await
                .map_err(map_err)?;
            }
        }
        tx.commit().await.map_err(map_err)
    }

    async fn count_patients(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM patients").fetch_one(&self.pool).await.map_err(map_err)
    }

    async fn patient_detail(&self, id: &str) -> StoreResult<Option<PatientDetail>> {
        let row: Option<PatientSummaryRow> = sqlx::query_as(&format!("{PATIENT_SUMMARY_SELECT} WHERE p.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let (patient, birth_date) = row.into_view()?;
        let bills: Vec<BillSummaryRow> =
            sqlx::query_as(&format!("{BILL_SUMMARY_SELECT} WHERE b.patient_id = $1 ORDER BY b.created_at DESC, b.id"))
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(Some(PatientDetail {
            patient,
            birth_date,
            bills: bills.into_iter().map(BillSummaryRow::into_view).collect::<StoreResult<_>>()?,
        }))
    }

    async fn list_patients(&self, q: Option<&str>, page: i64, page_size: i64) -> StoreResult<Page<PatientSummary>> {
        let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM patients p");
        let mut list = QueryBuilder::<Db>::new(PATIENT_SUMMARY_SELECT);
        if let Some(q) = q {
            let like = format!("%{}%", like_escape(&q.to_lowercase()));
            let prefix = format!("{}%", like_escape(q));
            for b in [&mut count, &mut list] {
                b.push(" WHERE (LOWER(p.name) LIKE ");
                b.push_bind(like.clone());
                b.push(" ESCAPE '\\' OR p.mrn LIKE ");
                b.push_bind(prefix.clone());
                b.push(" ESCAPE '\\' OR p.id = ");
                b.push_bind(q.to_string());
                b.push(")");
            }
        }
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.map_err(map_err)?;
        list.push(" ORDER BY p.mrn LIMIT ");
        list.push_bind(page_size);
        list.push(" OFFSET ");
        list.push_bind((page - 1) * page_size);
        let rows: Vec<PatientSummaryRow> = list.build_query_as().fetch_all(&self.pool).await.map_err(map_err)?;
        Ok(Page {
            items: rows.into_iter().map(|r| r.into_view().map(|v| v.0)).collect::<StoreResult<_>>()?,
            total,
            page,
            page_size,
        })
    }

    async fn bill_detail(&self, id: &str) -> StoreResult<Option<BillDetail>> {
        let row: Option<BillSummaryRow> = sqlx::query_as(&format!("{BILL_SUMMARY_SELECT} WHERE b.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let extra = sqlx::query("SELECT refunded_fen, paid_at FROM bills WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let items = sqlx::query(
            "SELECT line_no, category, description, quantity, unit_price_fen, amount_fen FROM bill_items WHERE bill_id = $1 ORDER BY line_no",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let items = items
            .into_iter()
            .map(|r| {
                let cat: String = r.try_get("category").map_err(map_err)?;
                Ok(BillItem {
                    line_no: r.try_get::<i32, _>("line_no").map_err(map_err)?,
                    category: ItemCategory::parse(&cat)
                        .ok_or_else(|| StoreError::Internal(anyhow!("stored category {cat:?}")))?,
                    description: r.try_get("description").map_err(map_err)?,
                    quantity: r.try_get("quantity").map_err(map_err)?,
                    unit_price: money(r.try_get("unit_price_fen").map_err(map_err)?)?,
                    amount: money(r.try_get("amount_fen").map_err(map_err)?)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(BillDetail {
            bill: row.into_view()?,
            items,
            refunded: money(extra.try_get("refunded_fen").map_err(map_err)?)?,
            paid_at_ms: extra.try_get("paid_at").map_err(map_err)?,
            payments: self.payments_of_bill(id).await?,
        }))
    }

    async fn list_bills(&self, q: &BillQuery) -> StoreResult<Page<BillSummary>> {
        let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM bills b WHERE 1 = 1");
        let mut list = QueryBuilder::<Db>::new(BILL_SUMMARY_SELECT);
        list.push(" WHERE 1 = 1");
        let (from, to) = q.range_ms();
        for b in [&mut count, &mut list] {
            if let Some(text) = &q.q {
                // Name (anywhere in it), record number or bill number (from the start). A term
                // that cannot match (record numbers are digits, bill numbers `B…-…`) is left
                // out, so a name search finds the patients first and their bills by index.
                let like = format!("%{}%", like_escape(&text.to_lowercase()));
                let prefix = format!("{}%", like_escape(text));
                let mrn_shaped = text.bytes().all(|c| c.is_ascii_digit());
                let bill_shaped = text.len() > 1
                    && text.as_bytes()[0].eq_ignore_ascii_case(&b'B')
                    && text.bytes().skip(1).all(|c| c.is_ascii_digit() || c == b'-');
                b.push(" AND (b.patient_id IN (SELECT id FROM patients WHERE LOWER(name) LIKE ");
                b.push_bind(like);
                b.push(" ESCAPE '\\'");
                if mrn_shaped {
                    b.push(" OR mrn LIKE ");
                    b.push_bind(prefix.clone());
                    b.push(" ESCAPE '\\'");
                }
                b.push(")");
                if bill_shaped {
                    b.push(" OR b.bill_no LIKE ");
                    b.push_bind(prefix.to_uppercase());
                    b.push(" ESCAPE '\\'");
                }
                b.push(")");
            }
            if let Some(st) = q.status {
                b.push(" AND b.status = ");
                b.push_bind(st.as_str());
            }
            if let Some(f) = from {
                b.push(" AND b.created_at >= ");
                b.push_bind(f);
            }
            if let Some(t) = to {
                b.push(" AND b.created_at < ");
                b.push_bind(t);
            }
        }
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await.map_err(map_err)?;
        let dir = if q.desc { "DESC" } else { "ASC" };
        let order = match q.sort {
            BillSort::Created => format!(" ORDER BY b.created_at {dir}, b.id {dir}"),
            BillSort::Amount => format!(" ORDER BY b.total_fen {dir}, b.id {dir}"),
            BillSort::BillNo => format!(" ORDER BY b.bill_no {dir}"),
            BillSort::Patient => format!(" ORDER BY p.name {dir}, b.created_at DESC, b.id"),
        };
        list.push(order);
        list.push(" LIMIT ");
        list.push_bind(q.page_size);
        list.push(" OFFSET ");
        list.push_bind((q.page - 1) * q.page_size);
        let rows: Vec<BillSummaryRow> = list.build_query_as().fetch_all(&self.pool).await.map_err(map_err)?;
        Ok(Page {
            items: rows.into_iter().map(BillSummaryRow::into_view).collect::<StoreResult<_>>()?,
            total,
            page: q.page,
            page_size: q.page_size,
        })
    }

    async fn unpaid_bills(&self, patient_id: &str) -> StoreResult<Vec<BillSummary>> {
        let rows: Vec<BillSummaryRow> = sqlx::query_as(&format!(
            "{BILL_SUMMARY_SELECT} WHERE b.patient_id = $1 AND b.status = 'unpaid' ORDER BY b.created_at, b.id"
        ))
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(BillSummaryRow::into_view).collect()
    }

    async fn insert_api_token(&self, t: &clinicpay::ports::ApiTokenRecord, audit: &AuditInput) -> StoreResult<()> {
        self.insert_api_token_impl(t, audit).await
    }

    async fn api_token_by_hash(
        &self,
        token_hash: &str,
        now_ms: Millis,
    ) -> StoreResult<Option<clinicpay::ports::ApiTokenRecord>> {
        self.api_token_by_hash_impl(token_hash, now_ms).await
    }

    async fn list_api_tokens(&self) -> StoreResult<Vec<clinicpay::ports::ApiTokenRecord>> {
        self.list_api_tokens_impl().await
    }

    async fn disable_api_token(&self, id: &str, audit: &AuditInput) -> StoreResult<bool> {
        self.disable_api_token_impl(id, audit).await
    }

    async fn dashboard(&self, day: &str, day_start_ms: Millis, day_end_ms: Millis) -> StoreResult<Dashboard> {
        let takings = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS fen, COUNT(DISTINCT session_id) AS n \
             FROM payments WHERE paid_at >= $1 AND paid_at < $2",
        )
        .bind(day_start_ms)
        .bind(day_end_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let unpaid = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(total_fen), 0) AS BIGINT) AS fen FROM bills WHERE status IN ('unpaid', 'paying')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let recent: Vec<BillSummaryRow> =
            sqlx::query_as(&format!("{BILL_SUMMARY_SELECT} ORDER BY b.created_at DESC, b.id DESC LIMIT 8"))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        let payments = sqlx::query(
            "SELECT s.id, p.name, s.provider, s.paid_fen, s.paid_at, \
                    (SELECT COUNT(*) FROM payments x WHERE x.session_id = s.id) AS bills \
             FROM checkout_sessions s JOIN patients p ON p.id = s.patient_id \
             WHERE s.status = 'paid' ORDER BY s.paid_at DESC LIMIT 8",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let recent_payments = payments
            .into_iter()
            .map(|r| {
                Ok(RecentPayment {
                    session_id: r.try_get("id").map_err(map_err)?,
                    patient_name: r.try_get("name").map_err(map_err)?,
                    provider: r.try_get("provider").map_err(map_err)?,
                    amount: money(r.try_get::<Option<i64>, _>("paid_fen").map_err(map_err)?.unwrap_or(0))?,
                    bills: r.try_get("bills").map_err(map_err)?,
                    paid_at_ms: r.try_get::<Option<i64>, _>("paid_at").map_err(map_err)?.unwrap_or(0),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Dashboard {
            today: day.to_string(),
            today_takings: money(takings.try_get("fen").map_err(map_err)?)?,
            today_payments: takings.try_get("n").map_err(map_err)?,
            unpaid_count: unpaid.try_get("n").map_err(map_err)?,
            unpaid_total: money(unpaid.try_get("fen").map_err(map_err)?)?,
            recent_bills: recent.into_iter().map(BillSummaryRow::into_view).collect::<StoreResult<_>>()?,
            recent_payments,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ChannelRow {
    id: String,
    provider: String,
    name: String,
    account_id: String,
    is_default: bool,
    enabled: bool,
    sandbox: bool,
    settings: String,
    secret_ciphertext: String,
    secret_key_version: i64,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

const CHANNEL_COLS: &str =
    "id, provider, name, account_id, is_default, enabled, sandbox, settings, secret_ciphertext, \
     secret_key_version, version, created_at, updated_at";

fn provider_of(s: &str) -> StoreResult<clinicpay::payments::Provider> {
    clinicpay::payments::Provider::parse(s).ok_or_else(|| StoreError::Internal(anyhow!("stored provider {s:?}")))
}

impl ChannelRow {
    fn into_record(self) -> StoreResult<clinicpay::ports::ChannelRecord> {
        Ok(clinicpay::ports::ChannelRecord {
            provider: provider_of(&self.provider)?,
            id: self.id,
            name: self.name,
            account_id: self.account_id,
            is_default: self.is_default,
            enabled: self.enabled,
            sandbox: self.sandbox,
            settings: self.settings,
            secret_ciphertext: self.secret_ciphertext,
            secret_key_version: self.secret_key_version,
            version: self.version,
            created_at_ms: self.created_at,
            updated_at_ms: self.updated_at,
        })
    }
}

#[async_trait::async_trait]
impl clinicpay::ports::ChannelStore for ThisStore {
    async fn insert_channel(&self, c: &clinicpay::ports::ChannelRecord, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        if c.is_default {
            sqlx::query("UPDATE channel_configs SET is_default = FALSE, version = version + 1, updated_at = $1 WHERE provider = $2 AND is_default = TRUE")
                .bind(c.updated_at_ms)
                .bind(c.provider.as_str())
                .execute(tx.c())
                .await
                .map_err(map_err)?;
        }
        sqlx::query(&format!(
            "INSERT INTO channel_configs ({CHANNEL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&c.id)
        .bind(c.provider.as_str())
        .bind(&c.name)
        .bind(&c.account_id)
        .bind(c.is_default)
        .bind(c.enabled)
        .bind(c.sandbox)
        .bind(&c.settings)
        .bind(&c.secret_ciphertext)
        .bind(c.secret_key_version)
        .bind(c.version)
        .bind(c.created_at_ms)
        .bind(c.updated_at_ms)
        .execute(tx.c())
        .await
        .map_err(map_err)?;
        Self::append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn update_channel(
        &self,
        c: &clinicpay::ports::ChannelRecord,
        expected_version: i64,
        audit: &AuditInput,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let n = sqlx::query(
            "UPDATE channel_configs SET name = $1, account_id = $2, enabled = $3, sandbox = $4, settings = $5, \
             secret_ciphertext = $6, secret_key_version = $7, version = $8, updated_at = $9, \
             is_default = CASE WHEN $3 THEN is_default ELSE FALSE END \
             WHERE id = $10 AND version = $11",
        )
        .bind(&c.name)
        .bind(&c.account_id)
        .bind(c.enabled)
        .bind(c.sandbox)
        .bind(&c.settings)
        .bind(&c.secret_ciphertext)
        .bind(c.secret_key_version)
        .bind(c.version)
        .bind(c.updated_at_ms)
        .bind(&c.id)
        .bind(expected_version)
        .execute(tx.c())
        .await
        .map_err(map_err)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict("the channel was changed by someone else; reload and try again".into()));
        }
        Self::append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn set_default_channel(&self, id: &str, at_ms: Millis, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let row = sqlx::query(&format!("SELECT provider, enabled FROM channel_configs WHERE id = $1{FOR_UPDATE}"))
            .bind(id)
            .fetch_optional(tx.c())
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        let provider: String = row.try_get("provider").map_err(map_err)?;
        let enabled: bool = row.try_get("enabled").map_err(map_err)?;
        if !enabled {
            return Err(StoreError::Conflict("a disabled channel cannot be the default".into()));
        }
        sqlx::query("UPDATE channel_configs SET is_default = FALSE, version = version + 1, updated_at = $1 WHERE provider = $2 AND is_default = TRUE AND id <> $3")
            .bind(at_ms)
            .bind(&provider)
            .bind(id)
            .execute(tx.c())
            .await
            .map_err(map_err)?;
        sqlx::query("UPDATE channel_configs SET is_default = TRUE, version = version + 1, updated_at = $1 WHERE id = $2 AND is_default = FALSE")
            .bind(at_ms)
            .bind(id)
            .execute(tx.c())
            .await
            .map_err(map_err)?;
        Self::append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_channels(&self) -> StoreResult<Vec<clinicpay::ports::ChannelRecord>> {
        let rows: Vec<ChannelRow> = sqlx::query_as(&format!(
            "SELECT {CHANNEL_COLS} FROM channel_configs ORDER BY provider, is_default DESC, name"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(ChannelRow::into_record).collect()
    }

    async fn get_channel(&self, id: &str) -> StoreResult<Option<clinicpay::ports::ChannelRecord>> {
        let row: Option<ChannelRow> =
            sqlx::query_as(&format!("SELECT {CHANNEL_COLS} FROM channel_configs WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(ChannelRow::into_record).transpose()
    }

    async fn insert_notification(&self, n: &clinicpay::ports::NewNotification) -> StoreResult<()> {
        self.insert_notifications(std::slice::from_ref(n)).await
    }

    async fn insert_notifications(&self, ns: &[clinicpay::ports::NewNotification]) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        // one multi-row statement per 100 (well inside both databases' parameter limits)
        for chunk in ns.chunks(100) {
            let rows = (0..chunk.len())
                .map(|r| {
                    let b = r * 7;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, 'received')",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO notifications (id, provider, received_at, remote_addr, content_type, headers, body, status) VALUES {rows}"
            );
            let mut q = sqlx::query(&sql).persistent(chunk.len() == 1);
            for n in chunk {
                q = q
                    .bind(&n.id)
                    .bind(n.provider.as_str())
                    .bind(n.received_at_ms)
                    .bind(&n.remote_addr)
                    .bind(&n.content_type)
                    .bind(&n.headers)
                    .bind(&n.body);
            }
            q.execute(tx.c()).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn finish_notification(&self, id: &str, r: &clinicpay::ports::NotificationResult) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        sqlx::query(
            "UPDATE notifications SET status = $1, reason = $2, channel_id = $3, event_id = $4, out_trade_no = $5, processed_at = $6 \
             WHERE id = $7",
        )
        .bind(r.status)
        .bind(&r.reason)
        .bind(&r.channel_id)
        .bind(&r.event_id)
        .bind(&r.out_trade_no)
        .bind(r.processed_at_ms)
        .bind(id)
        .execute(tx.c())
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_notifications(&self, limit: i64) -> StoreResult<Vec<clinicpay::views::NotificationView>> {
        let rows = sqlx::query(
            "SELECT id, provider, received_at, status, reason, event_id, out_trade_no, remote_addr FROM notifications \
             ORDER BY received_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(clinicpay::views::NotificationView {
                    id: r.try_get("id").map_err(map_err)?,
                    provider: r.try_get("provider").map_err(map_err)?,
                    received_at_ms: r.try_get("received_at").map_err(map_err)?,
                    status: r.try_get("status").map_err(map_err)?,
                    reason: r.try_get("reason").map_err(map_err)?,
                    event_id: r.try_get("event_id").map_err(map_err)?,
                    out_trade_no: r.try_get("out_trade_no").map_err(map_err)?,
                    remote_addr: r.try_get("remote_addr").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn unfinished_notifications(
        &self,
        before_ms: Millis,
        limit: i64,
    ) -> StoreResult<Vec<clinicpay::ports::StoredNotification>> {
        let rows = sqlx::query(
            "SELECT id, provider, received_at, content_type, headers, body, status FROM notifications \
             WHERE status = 'received' AND received_at < $1 ORDER BY received_at LIMIT $2",
        )
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|r| {
                let provider: String = r.try_get("provider").map_err(map_err)?;
                Ok(clinicpay::ports::StoredNotification {
                    id: r.try_get("id").map_err(map_err)?,
                    provider: provider_of(&provider)?,
                    received_at_ms: r.try_get("received_at").map_err(map_err)?,
                    content_type: r.try_get("content_type").map_err(map_err)?,
                    headers: r.try_get("headers").map_err(map_err)?,
                    body: r.try_get("body").map_err(map_err)?,
                    status: r.try_get("status").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn record_provider_event(
        &self,
        provider: clinicpay::payments::Provider,
        event_id: &str,
        notification_id: &str,
        outcome: &str,
        at_ms: Millis,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let n = sqlx::query(
            "INSERT INTO provider_events (provider, event_id, notification_id, outcome, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (provider, event_id) DO NOTHING",
        )
        .bind(provider.as_str())
        .bind(event_id)
        .bind(notification_id)
        .bind(outcome)
        .bind(at_ms)
        .execute(tx.c())
        .await
        .map_err(map_err)?
        .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(n == 1)
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    token_hash: String,
    role: String,
    created_by: String,
    created_at: i64,
    disabled: bool,
    last_used_at: Option<i64>,
}

impl TokenRow {
    fn into_record(self) -> StoreResult<clinicpay::ports::ApiTokenRecord> {
        Ok(clinicpay::ports::ApiTokenRecord {
            role: Role::parse(&self.role)
                .ok_or_else(|| StoreError::Internal(anyhow!("stored role {:?}", self.role)))?,
            id: self.id,
            name: self.name,
            token_hash: self.token_hash,
            created_by: self.created_by,
            created_at_ms: self.created_at,
            disabled: self.disabled,
            last_used_at_ms: self.last_used_at,
        })
    }
}

impl ThisStore {
    pub(crate) async fn insert_api_token_impl(
        &self,
        t: &clinicpay::ports::ApiTokenRecord,
        audit: &AuditInput,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, role, created_by, created_at, disabled) VALUES ($1, $2, $3, $4, $5, $6, FALSE)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(t.role.as_str())
        .bind(&t.created_by)
        .bind(t.created_at_ms)
        .execute(tx.c())
        .await
        .map_err(map_err)?;
        Self::append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)
    }

    pub(crate) async fn api_token_by_hash_impl(
        &self,
        token_hash: &str,
        now_ms: Millis,
    ) -> StoreResult<Option<clinicpay::ports::ApiTokenRecord>> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT id, name, token_hash, role, created_by, created_at, disabled, last_used_at FROM api_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        // remember use at most once a minute, so API traffic does not turn into writes
        if row.last_used_at.is_none_or(|t| now_ms - t > 60_000) {
            let mut tx = self.write_tx().await.map_err(map_err)?;
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(&row.id)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
        }
        row.into_record().map(Some)
    }

    pub(crate) async fn list_api_tokens_impl(&self) -> StoreResult<Vec<clinicpay::ports::ApiTokenRecord>> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, name, token_hash, role, created_by, created_at, disabled, last_used_at FROM api_tokens ORDER BY created_at DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(TokenRow::into_record).collect()
    }

    pub(crate) async fn disable_api_token_impl(&self, id: &str, audit: &AuditInput) -> StoreResult<bool> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let n = sqlx::query("UPDATE api_tokens SET disabled = TRUE WHERE id = $1 AND disabled = FALSE")
            .bind(id)
            .execute(tx.c())
            .await
            .map_err(map_err)?
            .rows_affected();
        if n == 1 {
            Self::append_audit_tx(&mut tx, audit).await?;
            tx.commit().await.map_err(map_err)?;
        }
        Ok(n == 1)
    }
}
