//! Shift handover (L3): shifts, and a cashier's payments and refunds by channel over a span.
//! A close reads the figures and freezes them in the transaction that moves the shift from open
//! to closed (compare-and-set), so the sheet handed over is exactly what was booked.

use super::audit::append;
use super::sql::{sql, Tx};
use super::SqlStore;
use async_trait::async_trait;
use clinicpay::money::Money;
use clinicpay::payments::Provider;
use clinicpay::ports::{AuditInput, NewShift, ShiftStore, StoreError, StoreResult};
use clinicpay::shifts::{close_figures, expected_cash, ShiftLine, ShiftRefusal, ShiftStatus, ShiftView};
use clinicpay::time::Millis;
use std::collections::BTreeMap;

const SELECT: &str = "SELECT id, cashier_id, cashier_name, status, opened_at, float_fen, closed_at, lines, \
     expected_cash_fen, counted_cash_fen, difference_fen, note, confirmed_by_name, confirmed_at FROM shifts";

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    cashier_id: String,
    cashier_name: String,
    #[sqlx(try_from = "String")]
    status: ShiftStatus,
    opened_at: i64,
    float_fen: i64,
    closed_at: Option<i64>,
    lines: Option<String>,
    expected_cash_fen: Option<i64>,
    counted_cash_fen: Option<i64>,
    difference_fen: Option<i64>,
    note: String,
    confirmed_by_name: Option<String>,
    confirmed_at: Option<i64>,
}

fn money(fen: i64) -> StoreResult<Money> {
    Money::from_fen(fen).map_err(|e| super::corrupt("shift amount", e))
}

fn opt_money(fen: Option<i64>) -> StoreResult<Option<Money>> {
    fen.map(money).transpose()
}

/// The cashier's payments (by the sessions they opened) and the refunds they asked for that
/// went back, by channel, booked in `[from_ms, to_ms)`.
async fn lines_in(tx: &mut Tx<'_>, cashier_id: &str, from_ms: Millis, to_ms: Millis) -> StoreResult<Vec<ShiftLine>> {
    let paid: Vec<(String, i64, i64)> =
        sql("SELECT p.provider, COUNT(DISTINCT p.session_id), CAST(COALESCE(SUM(p.amount_fen), 0) AS BIGINT) \
         FROM payments p JOIN checkout_sessions s ON s.id = p.session_id \
         WHERE s.created_by = $1 AND p.created_at >= $2 AND p.created_at < $3 GROUP BY p.provider")
        .bind(cashier_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&mut *tx)
        .await?;
    let refunded: Vec<(String, i64, i64)> = sql(
        "SELECT y.provider, COUNT(*), CAST(COALESCE(SUM(r.amount_fen), 0) AS BIGINT) \
         FROM bill_refunds r JOIN payments y ON y.id = r.payment_id \
         WHERE r.requested_by = $1 AND r.status IN ('succeeded', 'manual') AND r.refunded_at >= $2 AND r.refunded_at < $3 \
         GROUP BY y.provider",
    )
    .bind(cashier_id)
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(&mut *tx)
    .await?;
    let mut by: BTreeMap<&'static str, ShiftLine> = BTreeMap::new();
    let line =
        |p: Provider| ShiftLine { provider: p, payments: 0, received: Money::ZERO, refunds: 0, refunded: Money::ZERO };
    for (p, n, fen) in paid {
        let p = Provider::parse(&p).ok_or_else(|| super::corrupt("payment provider", &p))?;
        let l = by.entry(p.as_str()).or_insert_with(|| line(p));
        l.payments = n;
        l.received = money(fen)?;
    }
    for (p, n, fen) in refunded {
        let p = Provider::parse(&p).ok_or_else(|| super::corrupt("payment provider", &p))?;
        let l = by.entry(p.as_str()).or_insert_with(|| line(p));
        l.refunds = n;
        l.refunded = money(fen)?;
    }
    // every channel on the sheet, in the order the counter shows them, zero lines included
    Ok(Provider::ALL.into_iter().map(|p| by.remove(p.as_str()).unwrap_or_else(|| line(p))).collect())
}

async fn view(tx: &mut Tx<'_>, r: Row, now_ms: Millis) -> StoreResult<ShiftView> {
    let float = money(r.float_fen)?;
    let lines = match &r.lines {
        Some(j) => serde_json::from_str(j).map_err(|e| super::corrupt("shift lines", e))?,
        None => lines_in(tx, &r.cashier_id, r.opened_at, now_ms.max(r.opened_at) + 1).await?,
    };
    let expected = match r.expected_cash_fen {
        Some(f) => money(f)?,
        None => expected_cash(float, &lines),
    };
    Ok(ShiftView {
        id: r.id,
        cashier_id: r.cashier_id,
        cashier_name: r.cashier_name,
        status: r.status,
        opened_at_ms: r.opened_at,
        float,
        closed_at_ms: r.closed_at,
        lines,
        expected_cash: expected,
        counted_cash: opt_money(r.counted_cash_fen)?,
        difference: opt_money(r.difference_fen)?,
        note: r.note,
        confirmed_by_name: r.confirmed_by_name,
        confirmed_at_ms: r.confirmed_at,
    })
}

async fn load(tx: &mut Tx<'_>, id: &str, lock: bool, now_ms: Millis) -> StoreResult<Option<ShiftView>> {
    let for_update = if lock { tx.dialect().for_update() } else { "" };
    let row: Option<Row> = sql(format!("{SELECT} WHERE id = $1{for_update}")).bind(id).fetch_optional(&mut *tx).await?;
    match row {
        Some(r) => Ok(Some(view(tx, r, now_ms).await?)),
        None => Ok(None),
    }
}

#[async_trait]
impl ShiftStore for SqlStore {
    async fn open_shift(&self, s: &NewShift) -> StoreResult<Result<ShiftView, ShiftRefusal>> {
        let mut tx = self.db.write().await?;
        let open: Option<(String,)> = sql("SELECT id FROM shifts WHERE cashier_id = $1 AND status = 'open'")
            .bind(&s.cashier_id)
            .fetch_optional(&mut tx)
            .await?;
        if open.is_some() {
            return Ok(Err(ShiftRefusal::AlreadyOpen));
        }
        let inserted = sql("INSERT INTO shifts (id, cashier_id, cashier_name, status, opened_at, float_fen) \
             VALUES ($1, $2, $3, 'open', $4, $5)")
        .bind(&s.id)
        .bind(&s.cashier_id)
        .bind(&s.cashier_name)
        .bind(s.at_ms)
        .bind(s.float.fen())
        .execute(&mut tx)
        .await;
        match inserted {
            Ok(_) => {}
            // a second open racing this one: the unique index decided
            Err(StoreError::Conflict(_)) => return Ok(Err(ShiftRefusal::AlreadyOpen)),
            Err(e) => return Err(e),
        }
        append(&mut tx, &s.audit).await?;
        let v = load(&mut tx, &s.id, false, s.at_ms).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(Ok(v))
    }

    async fn shift(&self, id: &str, now_ms: Millis) -> StoreResult<Option<ShiftView>> {
        let mut tx = self.db.read().await?;
        load(&mut tx, id, false, now_ms).await
    }

    async fn open_shift_of(&self, cashier_id: &str, now_ms: Millis) -> StoreResult<Option<ShiftView>> {
        let mut tx = self.db.read().await?;
        let row: Option<Row> = sql(format!("{SELECT} WHERE cashier_id = $1 AND status = 'open'"))
            .bind(cashier_id)
            .fetch_optional(&mut tx)
            .await?;
        match row {
            Some(r) => Ok(Some(view(&mut tx, r, now_ms).await?)),
            None => Ok(None),
        }
    }

    async fn shifts(&self, statuses: &[ShiftStatus], limit: i64, now_ms: Millis) -> StoreResult<Vec<ShiftView>> {
        let mut tx = self.db.read().await?;
        let mut q = sql(SELECT);
        if !statuses.is_empty() {
            q.push(" WHERE status IN (");
            q.push_list(statuses.iter().map(|s| s.as_str()));
            q.push(")");
        }
        q.push(" ORDER BY opened_at DESC, id DESC LIMIT ");
        q.push(&limit.clamp(1, 500).to_string());
        let rows: Vec<Row> = q.once().fetch_all(&mut tx).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(view(&mut tx, r, now_ms).await?);
        }
        Ok(out)
    }

    async fn close_shift(
        &self,
        id: &str,
        cashier_id: &str,
        counted: Money,
        note: &str,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<Result<ShiftView, ShiftRefusal>> {
        let mut tx = self.db.write().await?;
        let Some(cur) = load(&mut tx, id, true, at_ms).await? else { return Err(StoreError::NotFound) };
        if cur.status != ShiftStatus::Open {
            return Ok(Err(ShiftRefusal::NotOpen));
        }
        if cur.cashier_id != cashier_id {
            return Ok(Err(ShiftRefusal::NotYours));
        }
        let closed_at = at_ms.max(cur.opened_at_ms);
        let lines = lines_in(&mut tx, cashier_id, cur.opened_at_ms, closed_at + 1).await?;
        let (expected, difference) = match close_figures(cur.float, &lines, counted, note) {
            Ok(x) => x,
            Err(r) => return Ok(Err(r)),
        };
        let json = serde_json::to_string(&lines).map_err(|e| StoreError::Internal(e.into()))?;
        let n = sql("UPDATE shifts SET status = 'closed', closed_at = $1, lines = $2, expected_cash_fen = $3, \
             counted_cash_fen = $4, difference_fen = $5, note = $6 WHERE id = $7 AND status = 'open'")
        .bind(closed_at)
        .bind(json)
        .bind(expected.fen())
        .bind(counted.fen())
        .bind(difference.fen())
        .bind(note.trim())
        .bind(id)
        .execute(&mut tx)
        .await?;
        if n != 1 {
            return Ok(Err(ShiftRefusal::NotOpen));
        }
        append(&mut tx, audit).await?;
        let v = load(&mut tx, id, false, at_ms).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(Ok(v))
    }

    async fn confirm_shift(
        &self,
        id: &str,
        by: &str,
        by_name: &str,
        at_ms: Millis,
        audit: &AuditInput,
    ) -> StoreResult<Result<ShiftView, ShiftRefusal>> {
        let mut tx = self.db.write().await?;
        let Some(cur) = load(&mut tx, id, true, at_ms).await? else { return Err(StoreError::NotFound) };
        if cur.status != ShiftStatus::Closed {
            return Ok(Err(ShiftRefusal::NotClosed));
        }
        if cur.cashier_id == by {
            return Ok(Err(ShiftRefusal::OwnShift));
        }
        let n = sql(
            "UPDATE shifts SET status = 'confirmed', confirmed_by = $1, confirmed_by_name = $2, confirmed_at = $3 \
             WHERE id = $4 AND status = 'closed'",
        )
        .bind(by)
        .bind(by_name)
        .bind(at_ms)
        .bind(id)
        .execute(&mut tx)
        .await?;
        if n != 1 {
            return Ok(Err(ShiftRefusal::NotClosed));
        }
        append(&mut tx, audit).await?;
        let v = load(&mut tx, id, false, at_ms).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(Ok(v))
    }
}
