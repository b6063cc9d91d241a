//! The trial balance, account pages and the day-end close (L1, L2).

use super::audit::append;
use super::sql::{sql, Dialect, Exec, Tx};
use super::{corrupt, SqlStore};
use async_trait::async_trait;
use chrono::NaiveDate;
use clinicpay::books::{
    figures_key, AccountLedger, ChannelDay, CloseChain, CloseStatus, DayClose, DepartmentIncome, PostingLine,
    TrialBalance, TrialBalanceRow,
};
use clinicpay::ledger::{Account, AccountKind};
use clinicpay::payments::Provider;
use clinicpay::ports::{BooksStore, CloseOutcome, DayFigures, NewDayClose, StoreError, StoreResult};
use clinicpay::time::Millis;
use sha2::{Digest, Sha256};

const SUMS: &str = "CAST(COALESCE(SUM(CASE WHEN p.amount_fen > 0 THEN p.amount_fen ELSE 0 END), 0) AS BIGINT), \
                    CAST(COALESCE(SUM(CASE WHEN p.amount_fen < 0 THEN -p.amount_fen ELSE 0 END), 0) AS BIGINT)";

type AccountRow = (String, String, String, String, i64, i64, i64);

fn account_row(r: AccountRow) -> StoreResult<TrialBalanceRow> {
    let kind = match r.3.as_str() {
        "asset" => AccountKind::Asset,
        "liability" => AccountKind::Liability,
        "income" => AccountKind::Income,
        "expense" => AccountKind::Expense,
        other => return Err(corrupt("account kind", other)),
    };
    Ok(TrialBalanceRow { code: r.0, name_zh: r.1, name_en: r.2, kind, debit_fen: r.4, credit_fen: r.5, postings: r.6 })
}

/// Accounts with their debits, credits and posting counts, from entries booked before `until`.
async fn account_rows<'a>(
    ex: impl Into<Exec<'a>>,
    until: Option<Millis>,
    only: Option<Account>,
) -> StoreResult<Vec<TrialBalanceRow>> {
    let source = match until {
        None => "postings".to_string(),
        Some(_) => {
            "(SELECT p0.* FROM postings p0 JOIN journal_entries j ON j.id = p0.entry_id WHERE j.created_at < $1)"
                .to_string()
        }
    };
    let filter = if only.is_some() {
        if until.is_some() {
            "WHERE a.code = $2"
        } else {
            "WHERE a.code = $1"
        }
    } else {
        ""
    };
    let mut q = sql(format!(
        "SELECT a.code, a.name_zh, a.name_en, a.kind, {SUMS}, COUNT(p.entry_id) \
         FROM ledger_accounts a LEFT JOIN {source} p ON p.account_code = a.code {filter} \
         GROUP BY a.code, a.name_zh, a.name_en, a.kind ORDER BY a.code"
    ));
    if let Some(u) = until {
        q = q.bind(u);
    }
    if let Some(a) = only {
        q = q.bind(a);
    }
    q.fetch_all::<AccountRow>(ex).await?.into_iter().map(account_row).collect()
}

/// Our figures for entries booked in `[from, to)`.
async fn figures<'a>(tx: &mut Tx<'a>, from: Millis, to: Millis) -> StoreResult<DayFigures> {
    let rows: Vec<(String, i64, i64, i64, i64)> = sql(format!(
        "SELECT p.account_code, {SUMS}, \
         CAST(COALESCE(SUM(CASE WHEN p.amount_fen > 0 THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN p.amount_fen < 0 THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM journal_entries j JOIN postings p ON p.entry_id = j.id \
         WHERE j.created_at >= $1 AND j.created_at < $2 AND p.account_code IN ('1012.01', '1012.02', '1012.03', '6001') \
         GROUP BY p.account_code"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(&mut *tx)
    .await?;
    let entries: i64 = sql("SELECT COUNT(*) FROM journal_entries WHERE created_at >= $1 AND created_at < $2")
        .bind(from)
        .bind(to)
        .scalar(&mut *tx)
        .await?;
    let find = |code: &str| rows.iter().find(|r| r.0 == code);
    let channels = Provider::ALL
        .into_iter()
        .map(|p| {
            let r = find(Account::clearing_for(p).code());
            ChannelDay {
                provider: p,
                received_fen: r.map_or(0, |r| r.1),
                refunded_fen: r.map_or(0, |r| r.2),
                payments: r.map_or(0, |r| r.3),
                refunds: r.map_or(0, |r| r.4),
                statement: None,
                statement_error: None,
            }
        })
        .collect();
    let income_fen = find(Account::MedicalIncome.code()).map_or(0, |r| r.2 - r.1);
    Ok(DayFigures { channels, income_fen, entries })
}

#[derive(sqlx::FromRow)]
struct CloseRow {
    day: String,
    starts_at: i64,
    ends_at: i64,
    status: String,
    channels: String,
    income_fen: i64,
    entries: i64,
    note: String,
    closed_by: String,
    closed_by_name: String,
    closed_at: i64,
    seq: i64,
    prev_hash: String,
    hash: String,
}

const CLOSE_COLUMNS: &str = "day, starts_at, ends_at, status, channels, income_fen, entries, note, closed_by, \
                             closed_by_name, closed_at, seq, prev_hash, hash";

impl CloseRow {
    fn hash_input(&self) -> [String; 12] {
        [
            self.day.clone(),
            self.starts_at.to_string(),
            self.ends_at.to_string(),
            self.status.clone(),
            self.channels.clone(),
            self.income_fen.to_string(),
            self.entries.to_string(),
            self.note.clone(),
            self.closed_by.clone(),
            self.closed_by_name.clone(),
            self.closed_at.to_string(),
            self.seq.to_string(),
        ]
    }

    fn computed_hash(&self) -> String {
        let mut h = Sha256::new();
        for part in std::iter::once(self.prev_hash.clone()).chain(self.hash_input()) {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }

    fn into_close(self) -> StoreResult<DayClose> {
        Ok(DayClose {
            day: NaiveDate::parse_from_str(&self.day, "%Y-%m-%d").map_err(|e| corrupt("close day", e))?,
            status: CloseStatus::parse(&self.status).ok_or_else(|| corrupt("close status", &self.status))?,
            channels: serde_json::from_str(&self.channels).map_err(|e| corrupt("close channels", e))?,
            income_fen: self.income_fen,
            entries: self.entries,
            note: self.note,
            closed_by: self.closed_by_name,
            closed_at_ms: self.closed_at,
            seq: self.seq,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

async fn close_of<'a>(ex: impl Into<Exec<'a>>, day: NaiveDate) -> StoreResult<Option<DayClose>> {
    let row: Option<CloseRow> = sql(format!("SELECT {CLOSE_COLUMNS} FROM day_closes WHERE day = $1"))
        .bind(day.to_string())
        .fetch_optional(ex)
        .await?;
    row.map(CloseRow::into_close).transpose()
}

#[async_trait]
impl BooksStore for SqlStore {
    async fn trial_balance(&self, until_ms: Option<Millis>) -> StoreResult<TrialBalance> {
        let mut tx = self.db.read().await?;
        let rows = account_rows(&mut tx, until_ms, None).await?;
        let (time_join, time_filter) = match until_ms {
            Some(_) => ("JOIN journal_entries j ON j.id = p.entry_id", "AND j.created_at < $1"),
            None => ("", ""),
        };
        let mut q = sql(format!(
            "SELECT d.id, d.name_zh, {SUMS} FROM postings p {time_join} \
             JOIN bills b ON b.id = p.bill_id JOIN departments d ON d.id = b.department_id \
             WHERE p.account_code = '6001' {time_filter} GROUP BY d.id, d.name_zh ORDER BY d.name_zh"
        ));
        let mut count = sql(match until_ms {
            Some(_) => "SELECT COUNT(*) FROM journal_entries WHERE created_at < $1",
            None => "SELECT COUNT(*) FROM journal_entries",
        });
        if let Some(u) = until_ms {
            q = q.bind(u);
            count = count.bind(u);
        }
        let departments = q
            .fetch_all::<(String, String, i64, i64)>(&mut tx)
            .await?
            .into_iter()
            .map(|(id, name, debit, credit)| DepartmentIncome {
                department_id: id,
                name,
                earned_fen: credit,
                reversed_fen: debit,
            })
            .collect();
        let entries: i64 = count.scalar(&mut tx).await?;
        tx.commit().await?;
        Ok(TrialBalance { until_ms, entries, rows, departments })
    }

    async fn account_ledger(&self, account: Account, before: Option<&str>, limit: i64) -> StoreResult<AccountLedger> {
        let mut tx = self.db.read().await?;
        let row = account_rows(&mut tx, None, Some(account)).await?.pop().ok_or(StoreError::NotFound)?;
        let limit = limit.clamp(1, 500);
        let mut q =
            sql("SELECT p.entry_id, p.line_no, j.kind, j.occurred_at, j.created_at, j.memo, j.ref_type, j.ref_id, \
             p.amount_fen, p.bill_id, b.bill_no FROM postings p JOIN journal_entries j ON j.id = p.entry_id \
             LEFT JOIN bills b ON b.id = p.bill_id WHERE p.account_code = $1")
            .bind(account);
        if let Some(b) = before {
            q.push(" AND p.entry_id < ");
            let n = q.arg(b.to_string());
            q.push(&n);
        }
        q.push(" ORDER BY p.entry_id DESC, p.line_no DESC LIMIT ");
        let n = q.arg(limit + 1);
        q.push(&n);
        type Line = (String, i32, String, i64, i64, String, String, String, i64, Option<String>, Option<String>);
        let mut lines: Vec<Line> = q.fetch_all(&mut tx).await?;
        // a page never splits an entry's lines on this account
        let next_before = if lines.len() as i64 > limit {
            let extra = lines.pop().map(|l| l.0);
            let last = lines.last().map(|l| l.0.clone());
            if extra.is_some() && extra == last {
                match lines.iter().rposition(|l| Some(&l.0) != last.as_ref()) {
                    // the page ends before the entry that would be split
                    Some(i) => lines.truncate(i + 1),
                    // one entry has more lines here than a page: the page is that whole entry
                    None => {
                        let mut rest = sql(
                            "SELECT p.entry_id, p.line_no, j.kind, j.occurred_at, j.created_at, j.memo, j.ref_type, \
                             j.ref_id, p.amount_fen, p.bill_id, b.bill_no FROM postings p \
                             JOIN journal_entries j ON j.id = p.entry_id LEFT JOIN bills b ON b.id = p.bill_id \
                             WHERE p.account_code = $1 AND p.entry_id = $2 ORDER BY p.line_no DESC",
                        )
                        .bind(account)
                        .bind(last.clone().unwrap_or_default())
                        .fetch_all::<Line>(&mut tx)
                        .await?;
                        lines.clear();
                        lines.append(&mut rest);
                    }
                }
            }
            lines.last().map(|l| l.0.clone())
        } else {
            None
        };
        tx.commit().await?;
        let postings = lines
            .into_iter()
            .map(|l| PostingLine {
                entry_id: l.0,
                line_no: l.1,
                kind: l.2,
                occurred_at_ms: l.3,
                booked_at_ms: l.4,
                memo: l.5,
                ref_type: l.6,
                ref_id: l.7,
                amount_fen: l.8,
                bill_id: l.9,
                bill_no: l.10,
            })
            .collect();
        Ok(AccountLedger { row, postings, next_before })
    }

    async fn day_figures(&self, from_ms: Millis, to_ms: Millis) -> StoreResult<DayFigures> {
        let mut tx = self.db.read().await?;
        let f = figures(&mut tx, from_ms, to_ms).await?;
        tx.commit().await?;
        Ok(f)
    }

    async fn day_close(&self, day: NaiveDate) -> StoreResult<Option<DayClose>> {
        close_of(&self.db, day).await
    }

    async fn recent_closes(&self, limit: i64) -> StoreResult<Vec<DayClose>> {
        let rows: Vec<CloseRow> = sql(format!("SELECT {CLOSE_COLUMNS} FROM day_closes ORDER BY day DESC LIMIT $1"))
            .bind(limit.clamp(1, 400))
            .fetch_all(&self.db)
            .await?;
        rows.into_iter().map(CloseRow::into_close).collect()
    }

    async fn close_day(&self, c: &NewDayClose) -> StoreResult<CloseOutcome> {
        let mut tx = self.db.write().await?;
        if tx.dialect() == Dialect::Postgres {
            // Writers of entries finish first and new ones wait until the close is recorded, so
            // the figures below are all there is. Taken before anything else (every writer books
            // its entries before its audit line, so this cannot wait in a circle).
            sql("LOCK TABLE journal_entries IN SHARE MODE").execute(&mut tx).await?;
        }
        if let Some(done) = close_of(&mut tx, c.day).await? {
            tx.rollback().await?;
            return Ok(CloseOutcome::AlreadyClosed(done));
        }
        let ours = figures(&mut tx, c.starts_at_ms, c.ends_at_ms).await?;
        let channels: Vec<ChannelDay> = ours
            .channels
            .into_iter()
            .map(|mut ch| {
                if let Some(seen) = c.channels.iter().find(|s| s.provider == ch.provider) {
                    ch.statement = seen.statement.clone();
                    ch.statement_error = seen.statement_error.clone();
                }
                ch
            })
            .collect();
        if figures_key(&channels, ours.income_fen, ours.entries) != c.figures_key {
            tx.rollback().await?;
            return Ok(CloseOutcome::FiguresChanged);
        }
        let note = c.exception_note.as_deref().map(str::trim).unwrap_or("").to_string();
        let status = if channels.iter().all(ChannelDay::agrees) {
            CloseStatus::Confirmed
        } else if !note.is_empty() {
            CloseStatus::Exception
        } else {
            tx.rollback().await?;
            return Ok(CloseOutcome::NeedsException);
        };
        let head: Option<(i64, String)> =
            sql("SELECT seq, hash FROM day_closes ORDER BY seq DESC LIMIT 1").fetch_optional(&mut tx).await?;
        let (prev_seq, prev_hash) = head.unwrap_or((0, String::new()));
        let mut row = CloseRow {
            day: c.day.to_string(),
            starts_at: c.starts_at_ms,
            ends_at: c.ends_at_ms,
            status: status.as_str().to_string(),
            channels: serde_json::to_string(&channels).map_err(|e| StoreError::Internal(e.into()))?,
            income_fen: ours.income_fen,
            entries: ours.entries,
            note,
            closed_by: c.closed_by.clone(),
            closed_by_name: c.closed_by_name.clone(),
            closed_at: c.at_ms,
            seq: prev_seq + 1,
            prev_hash,
            hash: String::new(),
        };
        row.hash = row.computed_hash();
        sql(format!(
            "INSERT INTO day_closes ({CLOSE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&row.day)
        .bind(row.starts_at)
        .bind(row.ends_at)
        .bind(&row.status)
        .bind(&row.channels)
        .bind(row.income_fen)
        .bind(row.entries)
        .bind(&row.note)
        .bind(&row.closed_by)
        .bind(&row.closed_by_name)
        .bind(row.closed_at)
        .bind(row.seq)
        .bind(&row.prev_hash)
        .bind(&row.hash)
        .execute(&mut tx)
        .await?;
        append(&mut tx, &c.audit).await?;
        tx.commit().await?;
        Ok(CloseOutcome::Closed(row.into_close()?))
    }

    async fn verify_close_chain(&self) -> StoreResult<CloseChain> {
        let rows: Vec<CloseRow> =
            sql(format!("SELECT {CLOSE_COLUMNS} FROM day_closes ORDER BY seq")).fetch_all(&self.db).await?;
        let mut prev = String::new();
        let mut chain = CloseChain { closes: rows.len() as i64, broken_at: None };
        for (i, r) in rows.iter().enumerate() {
            if r.seq != i as i64 + 1 || r.prev_hash != prev || r.computed_hash() != r.hash {
                chain.broken_at = Some(r.day.clone());
                break;
            }
            prev = r.hash.clone();
        }
        Ok(chain)
    }
}
