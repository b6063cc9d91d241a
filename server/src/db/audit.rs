//! The append-only, hash-chained audit log (S3). Every line is chained to the previous one's
//! hash under a lock on the chain's head row, in the transaction of the change it describes.

use super::sql::{sql, Tx};
use super::{audit_hash, audit_hash_parts, SqlStore};
use async_trait::async_trait;
use clinicpay::ports::{AuditCheck, AuditFilter, AuditInput, AuditStore, StoreResult};
use clinicpay::views::AuditEntryView;

#[derive(sqlx::FromRow)]
struct Head {
    seq: i64,
    hash: String,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    seq: i64,
    at: i64,
    actor_name: String,
    action: String,
    target_type: String,
    target_id: String,
    detail: String,
    hash: String,
    ip: String,
}

impl From<EntryRow> for AuditEntryView {
    fn from(r: EntryRow) -> Self {
        AuditEntryView {
            seq: r.seq,
            at_ms: r.at,
            actor: r.actor_name,
            action: r.action,
            target: format!("{}:{}", r.target_type, r.target_id),
            detail: r.detail,
            hash: r.hash,
            ip: r.ip,
        }
    }
}

/// `%part%` for LIKE … ESCAPE '\', the part lower-cased and its wildcards escaped.
fn like_part(part: &str) -> String {
    let mut out = String::with_capacity(part.len() + 2);
    out.push('%');
    for c in part.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[derive(sqlx::FromRow)]
struct ChainRow {
    seq: i64,
    id: String,
    at: i64,
    actor_id: Option<String>,
    actor_name: String,
    action: String,
    target_type: String,
    target_id: String,
    detail: String,
    ip: String,
    prev_hash: String,
    hash: String,
}

/// Appends one line inside `tx`.
pub(crate) async fn append(tx: &mut Tx<'_>, a: &AuditInput) -> StoreResult<()> {
    let for_update = tx.dialect().for_update();
    let head: Head =
        sql(format!("SELECT seq, hash FROM audit_head WHERE id = 1{for_update}")).fetch_one(&mut *tx).await?;
    let seq = head.seq + 1;
    let hash = audit_hash(&head.hash, seq, a);
    sql("INSERT INTO audit_log (seq, id, at, actor_id, actor_name, action, target_type, target_id, detail, ip, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
    .bind(seq)
    .bind(&a.id)
    .bind(a.at_ms)
    .bind(a.actor_id.as_deref())
    .bind(&a.actor_name)
    .bind(&a.action)
    .bind(&a.target_type)
    .bind(&a.target_id)
    .bind(&a.detail)
    .bind(&a.ip)
    .bind(&head.hash)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    sql("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3")
        .bind(seq)
        .bind(&hash)
        .bind(head.seq)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, audit: &AuditInput) -> StoreResult<()> {
        let mut tx = self.db.write().await?;
        append(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn list_audit(&self, limit: i64) -> StoreResult<Vec<AuditEntryView>> {
        self.search_audit(&AuditFilter { limit, ..AuditFilter::default() }).await
    }

    async fn search_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEntryView>> {
        let mut q = sql(
            "SELECT seq, at, actor_name, action, target_type, target_id, detail, hash, ip FROM audit_log WHERE 1 = 1",
        );
        if let Some(w) = f.who.as_deref().filter(|w| !w.is_empty()) {
            let p = q.arg(like_part(w));
            q.push(&format!(" AND LOWER(actor_name) LIKE {p} ESCAPE '\\'"));
        }
        if let Some(a) = f.action.as_deref().filter(|a| !a.is_empty()) {
            let p = q.arg(a.to_string());
            q.push(&format!(" AND action = {p}"));
        }
        if let Some(t) = f.target.as_deref().filter(|t| !t.is_empty()) {
            let p = q.arg(like_part(t));
            q.push(&format!(" AND LOWER(target_type || ':' || target_id) LIKE {p} ESCAPE '\\'"));
        }
        if let Some(from) = f.from_ms {
            let p = q.arg(from);
            q.push(&format!(" AND at >= {p}"));
        }
        if let Some(to) = f.to_ms {
            let p = q.arg(to);
            q.push(&format!(" AND at < {p}"));
        }
        if let Some(before) = f.before_seq {
            let p = q.arg(before);
            q.push(&format!(" AND seq < {p}"));
        }
        let p = q.arg(f.limit);
        q.push(&format!(" ORDER BY seq DESC LIMIT {p}"));
        let rows: Vec<EntryRow> = q.fetch_all(&self.db).await?;
        Ok(rows.into_iter().map(AuditEntryView::from).collect())
    }

    async fn audit_actions(&self) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> =
            sql("SELECT DISTINCT action FROM audit_log ORDER BY action").fetch_all(&self.db).await?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    async fn verify_audit_chain(&self) -> StoreResult<AuditCheck> {
        let rows: Vec<ChainRow> = sql(
            "SELECT seq, id, at, actor_id, actor_name, action, target_type, target_id, detail, ip, prev_hash, hash \
             FROM audit_log ORDER BY seq",
        )
        .fetch_all(&self.db)
        .await?;
        let mut prev = "0".repeat(64);
        let mut expected_seq = 1i64;
        let mut check = AuditCheck::default();
        for r in rows {
            let at = r.at.to_string();
            let fields = [
                r.id.as_str(),
                at.as_str(),
                r.actor_id.as_deref().unwrap_or(""),
                &r.actor_name,
                &r.action,
                &r.target_type,
                &r.target_id,
                &r.detail,
                &r.ip,
            ];
            check.entries += 1;
            if check.broken_at.is_none()
                && (r.seq != expected_seq || r.prev_hash != prev || audit_hash_parts(&prev, r.seq, fields) != r.hash)
            {
                check.broken_at = Some(r.seq);
            }
            prev = r.hash;
            expected_seq = r.seq + 1;
        }
        Ok(check)
    }
}
