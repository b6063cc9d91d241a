// The CheckoutStore implementation shared by SQLite and PostgreSQL (included like shared.rs).
//
// Every state change is a compare-and-set inside one transaction. Rows that decide money are
// locked before they are read (`FOR UPDATE` on PostgreSQL; SQLite's write transaction already
// holds the database's write lock), so concurrent deliveries of one notification serialise on
// the session row and only the first changes anything.

#[allow(unused_imports)]
use clinicpay::checkout::{EndReason, ExceptionView, LatePaymentPolicy, SessionBill, SessionView};
#[allow(unused_imports)]
use clinicpay::ids::{ExceptionId, JournalEntryId, OutboxId, PaymentId, RefundId, TypedId};
#[allow(unused_imports)]
use clinicpay::payments::{PayMethod, Provider, SessionStatus};
#[allow(unused_imports)]
use clinicpay::ports::{
    ApplyResult, CheckoutStore, CreateOutcome, IdGen, LedgerReport, NewSession, OutboxItem, PaymentApplication,
    RefundProgress, RefundTask, SessionRefusal, SessionTask,
};

type Conn = <Db as sqlx::Database>::Connection;

fn session_status(s: &str) -> StoreResult<SessionStatus> {
    SessionStatus::parse(s).ok_or_else(|| StoreError::Internal(anyhow!("stored session status {s:?}")))
}

fn new_id<T: TypedId>(ids: &dyn IdGen) -> T {
    T::from_bits(ids.next_bits())
}

/// `R20261122-01JD3K8X5Q`: printable, unique (it ends in the payment id's random part).
fn receipt_no(paid_at_ms: Millis, payment_id: &str) -> String {
    let day = clinicpay::time::local_date(paid_at_ms).map(|d| d.format("%Y%m%d").to_string()).unwrap_or_default();
    let tail: String = payment_id.chars().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
    format!("R{day}-{}", tail.to_uppercase())
}

const SESSION_SELECT: &str = "SELECT s.id, s.patient_id, p.name AS patient_name, p.mrn, s.provider, s.method, s.channel_id, \
     s.out_trade_no, s.status, s.total_fen, s.created_at, s.expires_at, s.pay_kind, s.pay_content, s.paid_at, s.paid_fen, \
     s.provider_txn_id, s.close_reason, s.replaced_by \
     FROM checkout_sessions s JOIN patients p ON p.id = s.patient_id";

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    patient_id: String,
    patient_name: String,
    mrn: String,
    provider: String,
    method: String,
    channel_id: String,
    out_trade_no: String,
    status: String,
    total_fen: i64,
    created_at: i64,
    expires_at: i64,
    pay_kind: Option<String>,
    pay_content: Option<String>,
    paid_at: Option<i64>,
    paid_fen: Option<i64>,
    provider_txn_id: Option<String>,
    close_reason: Option<String>,
    replaced_by: Option<String>,
}

async fn load_session(c: &mut Conn, where_sql: &str, key: &str) -> StoreResult<Option<SessionView>> {
    let row: Option<SessionRow> = sqlx::query_as(&format!("{SESSION_SELECT} WHERE {where_sql}"))
        .bind(key)
        .fetch_optional(&mut *c)
        .await
        .map_err(map_err)?;
    let Some(r) = row else { return Ok(None) };
    let bills = sqlx::query(
        "SELECT sb.bill_id, b.bill_no, d.name_zh, d.name_en, sb.amount_fen, b.status, \
                (SELECT x.receipt_no FROM payments x WHERE x.bill_id = sb.bill_id AND x.session_id = sb.session_id) AS receipt_no \
         FROM session_bills sb JOIN bills b ON b.id = sb.bill_id JOIN departments d ON d.id = b.department_id \
         WHERE sb.session_id = $1 ORDER BY b.created_at, b.id",
    )
    .bind(&r.id)
    .fetch_all(&mut *c)
    .await
    .map_err(map_err)?;
    let bills = bills
        .into_iter()
        .map(|b| {
            let status: String = b.try_get("status").map_err(map_err)?;
            Ok(SessionBill {
                bill_id: b.try_get("bill_id").map_err(map_err)?,
                bill_no: b.try_get("bill_no").map_err(map_err)?,
                department_zh: b.try_get("name_zh").map_err(map_err)?,
                department_en: b.try_get("name_en").map_err(map_err)?,
                amount: money(b.try_get("amount_fen").map_err(map_err)?)?,
                status: bill_status(&status)?,
                receipt_no: b.try_get("receipt_no").map_err(map_err)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Some(SessionView {
        provider: provider_of(&r.provider)?,
        method: PayMethod::parse(&r.method)
            .ok_or_else(|| StoreError::Internal(anyhow!("stored method {:?}", r.method)))?,
        status: session_status(&r.status)?,
        total: money(r.total_fen)?,
        paid_amount: r.paid_fen.map(money).transpose()?,
        id: r.id,
        patient_id: r.patient_id,
        patient_name: r.patient_name,
        mrn: r.mrn,
        channel_id: r.channel_id,
        out_trade_no: r.out_trade_no,
        created_at_ms: r.created_at,
        expires_at_ms: r.expires_at,
        pay_kind: r.pay_kind,
        pay_content: r.pay_content,
        paid_at_ms: r.paid_at,
        provider_txn_id: r.provider_txn_id,
        close_reason: r.close_reason,
        replaced_by: r.replaced_by,
        bills,
    }))
}

/// Ends a pending session and releases its bills. `Err(status)` if it was not pending.
async fn end_session_conn(
    c: &mut Conn,
    id: &str,
    reason: EndReason,
    at_ms: Millis,
    close_at_provider: bool,
    replaced_by: Option<&str>,
) -> StoreResult<Result<(), SessionStatus>> {
    let n = sqlx::query(
        "UPDATE checkout_sessions SET status = $1, closed_at = $2, close_reason = $3, \
         provider_close = CASE WHEN $4 THEN 'pending' ELSE provider_close END, \
         replaced_by = $5, updated_at = $2, version = version + 1 \
         WHERE id = $6 AND status = 'pending'",
    )
    .bind(reason.status().as_str())
    .bind(at_ms)
    .bind(reason.as_str())
    .bind(close_at_provider)
    .bind(replaced_by)
    .bind(id)
    .execute(&mut *c)
    .await
    .map_err(map_err)?
    .rows_affected();
    if n == 0 {
        let st: Option<String> = sqlx::query_scalar("SELECT status FROM checkout_sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *c)
            .await
            .map_err(map_err)?;
        return match st {
            Some(s) => Ok(Err(session_status(&s)?)),
            None => Err(StoreError::NotFound),
        };
    }
    sqlx::query(
        "UPDATE bills SET status = 'unpaid', updated_at = $1 \
         WHERE status = 'paying' AND id IN (SELECT bill_id FROM session_bills WHERE session_id = $2 AND active = TRUE)",
    )
    .bind(at_ms)
    .bind(id)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    sqlx::query("UPDATE session_bills SET active = FALSE WHERE session_id = $1 AND active = TRUE")
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
    Ok(Ok(()))
}

/// Writes a sealed, balanced journal entry.
async fn post_entry(
    c: &mut Conn,
    id: &str,
    kind: clinicpay::ledger::EntryKind,
    occurred_at: Millis,
    ref_type: &str,
    ref_id: &str,
    memo: &str,
    postings: &clinicpay::ledger::Postings,
    now_ms: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7)",
    )
    .bind(id)
    .bind(kind.as_str())
    .bind(occurred_at)
    .bind(ref_type)
    .bind(ref_id)
    .bind(memo)
    .bind(now_ms)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    for (i, p) in postings.lines().iter().enumerate() {
        sqlx::query(
            "INSERT INTO postings (entry_id, line_no, account_code, amount_fen, bill_id) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(i as i32 + 1)
        .bind(p.account.code())
        .bind(p.amount.fen())
        .bind(&p.bill_id)
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
    }
    sqlx::query("UPDATE journal_entries SET sealed = TRUE WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
    Ok(())
}

async fn outbox(
    c: &mut Conn,
    ids: &dyn IdGen,
    topic: &str,
    aggregate: &str,
    payload: &serde_json::Value,
    now_ms: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO outbox (id, topic, aggregate_id, payload, status, created_at) VALUES ($1, $2, $3, $4, 'pending', $5)",
    )
    .bind(new_id::<OutboxId>(ids).as_str())
    .bind(topic)
    .bind(aggregate)
    .bind(payload.to_string())
    .bind(now_ms)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn record_event(c: &mut Conn, p: &PaymentApplication, outcome: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO provider_events (provider, event_id, notification_id, outcome, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (provider, event_id) DO NOTHING",
    )
    .bind(p.provider.as_str())
    .bind(&p.event_id)
    .bind(p.notification_id.as_deref().unwrap_or(""))
    .bind(outcome)
    .bind(p.now_ms)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Records, in the same transaction as the effect, what became of the notification.
async fn finish_notification_conn(
    c: &mut Conn,
    p: &PaymentApplication,
    status: &str,
    reason: Option<&str>,
) -> StoreResult<()> {
    let Some(nid) = p.notification_id.as_deref().filter(|n| !n.is_empty()) else { return Ok(()) };
    sqlx::query(
        "UPDATE notifications SET status = $1, reason = $2, channel_id = $3, event_id = $4, out_trade_no = $5, processed_at = $6 \
         WHERE id = $7",
    )
    .bind(status)
    .bind(reason)
    .bind(&p.channel_id)
    .bind(&p.event_id)
    .bind(&p.out_trade_no)
    .bind(p.now_ms)
    .bind(nid)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Money that cannot be allocated: booked to unallocated receipts, an exception, maybe a refund.
async fn book_unallocated(
    c: &mut Conn,
    p: &PaymentApplication,
    ids: &dyn IdGen,
    session_id: &str,
    kind: &str,
    expected: i64,
    detail: &str,
    auto_refund: bool,
) -> StoreResult<(String, bool)> {
    let entry: JournalEntryId = new_id(ids);
    let postings = clinicpay::ledger::Postings::unallocated_receipt(p.provider, p.amount)
        .map_err(|e| StoreError::Internal(anyhow!("{e}")))?;
    post_entry(
        c,
        entry.as_str(),
        clinicpay::ledger::EntryKind::UnallocatedReceipt,
        p.paid_at_ms,
        "session",
        session_id,
        &format!("{kind}: {} {}", p.provider.as_str(), p.provider_txn_id),
        &postings,
        p.now_ms,
    )
    .await?;
    sqlx::query(
        "INSERT INTO provider_transactions (provider, provider_txn_id, out_trade_no, session_id, amount_fen, disposition, journal_entry_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'unallocated', $6, $7)",
    )
    .bind(p.provider.as_str())
    .bind(&p.provider_txn_id)
    .bind(&p.out_trade_no)
    .bind(session_id)
    .bind(p.amount.fen())
    .bind(entry.as_str())
    .bind(p.now_ms)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    let exc: ExceptionId = new_id(ids);
    let status = if auto_refund { "refund_pending" } else { "held" };
    sqlx::query(
        "INSERT INTO payment_exceptions (id, kind, session_id, provider, channel_id, out_trade_no, provider_txn_id, amount_fen, \
         expected_fen, status, detail, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(exc.as_str())
    .bind(kind)
    .bind(session_id)
    .bind(p.provider.as_str())
    .bind(&p.channel_id)
    .bind(&p.out_trade_no)
    .bind(&p.provider_txn_id)
    .bind(p.amount.fen())
    .bind(expected)
    .bind(status)
    .bind(detail)
    .bind(p.now_ms)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    if auto_refund {
        queue_refund(
            c,
            ids,
            &p.channel_id,
            p.provider,
            &p.out_trade_no,
            p.amount.fen(),
            p.amount.fen(),
            kind,
            exc.as_str(),
            p.now_ms,
        )
        .await?;
    }
    outbox(
        c,
        ids,
        "payment.unallocated",
        session_id,
        &serde_json::json!({ "session_id": session_id, "kind": kind, "amount": p.amount, "provider_txn_id": p.provider_txn_id }),
        p.now_ms,
    )
    .await?;
    Ok((exc.into_string(), auto_refund))
}

async fn queue_refund(
    c: &mut Conn,
    ids: &dyn IdGen,
    channel_id: &str,
    provider: Provider,
    out_trade_no: &str,
    total_fen: i64,
    amount_fen: i64,
    reason: &str,
    exception_id: &str,
    now_ms: Millis,
) -> StoreResult<()> {
    let id: RefundId = new_id(ids);
    // Out refund numbers are ours, stable across retries: `RF` + the refund id's random part.
    let out_refund_no = format!("RF{}", id.as_str().trim_start_matches("ref_").to_uppercase());
    sqlx::query(
        "INSERT INTO provider_refunds (id, out_refund_no, provider, channel_id, out_trade_no, total_fen, amount_fen, reason, \
         exception_id, status, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $10, $10)",
    )
    .bind(id.as_str())
    .bind(&out_refund_no)
    .bind(provider.as_str())
    .bind(channel_id)
    .bind(out_trade_no)
    .bind(total_fen)
    .bind(amount_fen)
    .bind(reason)
    .bind(exception_id)
    .bind(now_ms)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// C3: the one transaction that turns a verified payment into paid bills.
async fn apply_payment_conn(c: &mut Conn, p: &PaymentApplication, ids: &dyn IdGen) -> StoreResult<ApplyResult> {
    // Lock the session first: concurrent deliveries of the same payment queue up here.
    let row = sqlx::query(&format!(
        "SELECT id, channel_id, status, total_fen, provider_txn_id FROM checkout_sessions WHERE out_trade_no = $1{FOR_UPDATE}"
    ))
    .bind(&p.out_trade_no)
    .fetch_optional(&mut *c)
    .await
    .map_err(map_err)?;
    let Some(row) = row else { return Ok(ApplyResult::UnknownOrder) };
    let session_id: String = row.try_get("id").map_err(map_err)?;
    let channel_id: String = row.try_get("channel_id").map_err(map_err)?;
    let status = session_status(&row.try_get::<String, _>("status").map_err(map_err)?)?;
    let total_fen: i64 = row.try_get("total_fen").map_err(map_err)?;
    if channel_id != p.channel_id {
        return Ok(ApplyResult::UnknownOrder);
    }
    // A provider transaction is booked once, whatever path it came by.
    let booked: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(1 AS BIGINT) FROM provider_transactions WHERE provider = $1 AND provider_txn_id = $2",
    )
    .bind(p.provider.as_str())
    .bind(&p.provider_txn_id)
    .fetch_optional(&mut *c)
    .await
    .map_err(map_err)?;
    if booked.is_some() {
        record_event(c, p, "duplicate").await?;
        finish_notification_conn(c, p, "duplicate", None).await?;
        return Ok(ApplyResult::Duplicate);
    }

    if status != SessionStatus::Pending {
        record_event(c, p, "late_payment").await?;
        let detail = format!(
            "payment of {} arrived after the session became {}; the money is kept as unallocated",
            p.amount.display(),
            status.as_str()
        );
        let auto = p.late_policy == LatePaymentPolicy::AutoRefund;
        let (exception_id, refund_queued) =
            book_unallocated(c, p, ids, &session_id, "late_payment", total_fen, &detail, auto).await?;
        finish_notification_conn(c, p, "applied", Some("late_payment: recorded as unallocated")).await?;
        return Ok(ApplyResult::LatePayment { session_id, exception_id, refund_queued });
    }

    if p.amount.fen() != total_fen {
        record_event(c, p, "amount_mismatch").await?;
        let detail = format!(
            "the provider reports {} paid but the session is for {}; the session stays unpaid",
            p.amount.display(),
            money(total_fen)?.display()
        );
        let (exception_id, _) =
            book_unallocated(c, p, ids, &session_id, "amount_mismatch", total_fen, &detail, false).await?;
        finish_notification_conn(c, p, "applied", Some("amount_mismatch: recorded as an exception")).await?;
        return Ok(ApplyResult::AmountMismatch { session_id, exception_id });
    }

    let n = sqlx::query(
        "UPDATE checkout_sessions SET status = 'paid', paid_at = $1, paid_fen = $2, provider_txn_id = $3, provider_close = 'none', \
         updated_at = $4, version = version + 1 WHERE id = $5 AND status = 'pending'",
    )
    .bind(p.paid_at_ms)
    .bind(p.amount.fen())
    .bind(&p.provider_txn_id)
    .bind(p.now_ms)
    .bind(&session_id)
    .execute(&mut *c)
    .await
    .map_err(map_err)?
    .rows_affected();
    if n != 1 {
        return Err(StoreError::Internal(anyhow!("session {session_id} changed under its lock")));
    }
    let bills = sqlx::query(
        "SELECT bill_id, amount_fen FROM session_bills WHERE session_id = $1 AND active = TRUE ORDER BY bill_id",
    )
    .bind(&session_id)
    .fetch_all(&mut *c)
    .await
    .map_err(map_err)?;
    let mut allocations = Vec::with_capacity(bills.len());
    for b in &bills {
        allocations.push((
            b.try_get::<String, _>("bill_id").map_err(map_err)?,
            money(b.try_get("amount_fen").map_err(map_err)?)?,
        ));
    }
    let allocated = Money::sum(allocations.iter().map(|a| a.1)).map_err(|e| StoreError::Internal(e.into()))?;
    if allocated.fen() != total_fen || allocations.is_empty() {
        return Err(StoreError::Internal(anyhow!(
            "session {session_id}: bills add up to {allocated}, not the session total"
        )));
    }
    let entry: JournalEntryId = new_id(ids);
    let postings = clinicpay::ledger::Postings::payment(p.provider, &allocations)
        .map_err(|e| StoreError::Internal(anyhow!("{e}")))?;
    post_entry(
        c,
        entry.as_str(),
        clinicpay::ledger::EntryKind::Payment,
        p.paid_at_ms,
        "session",
        &session_id,
        &format!("{} {} · {} bills", p.provider.as_str(), p.provider_txn_id, allocations.len()),
        &postings,
        p.now_ms,
    )
    .await?;
    let mut receipts = Vec::with_capacity(allocations.len());
    for (bill_id, amount) in &allocations {
        let pid: PaymentId = new_id(ids);
        let receipt = receipt_no(p.paid_at_ms, pid.as_str());
        sqlx::query(
            "INSERT INTO payments (id, session_id, bill_id, amount_fen, provider, provider_txn_id, journal_entry_id, receipt_no, paid_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(pid.as_str())
        .bind(&session_id)
        .bind(bill_id)
        .bind(amount.fen())
        .bind(p.provider.as_str())
        .bind(&p.provider_txn_id)
        .bind(entry.as_str())
        .bind(&receipt)
        .bind(p.paid_at_ms)
        .bind(p.now_ms)
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
        let n = sqlx::query(
            "UPDATE bills SET status = 'paid', paid_at = $1, updated_at = $2 WHERE id = $3 AND status = 'paying'",
        )
        .bind(p.paid_at_ms)
        .bind(p.now_ms)
        .bind(bill_id)
        .execute(&mut *c)
        .await
        .map_err(map_err)?
        .rows_affected();
        if n != 1 {
            return Err(StoreError::Internal(anyhow!("bill {bill_id} was not paying under session {session_id}")));
        }
        receipts.push(serde_json::json!({ "bill_id": bill_id, "amount": amount, "receipt_no": receipt }));
    }
    sqlx::query("UPDATE session_bills SET active = FALSE WHERE session_id = $1 AND active = TRUE")
        .bind(&session_id)
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
    sqlx::query(
        "INSERT INTO provider_transactions (provider, provider_txn_id, out_trade_no, session_id, amount_fen, disposition, journal_entry_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'allocated', $6, $7)",
    )
    .bind(p.provider.as_str())
    .bind(&p.provider_txn_id)
    .bind(&p.out_trade_no)
    .bind(&session_id)
    .bind(p.amount.fen())
    .bind(entry.as_str())
    .bind(p.now_ms)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    record_event(c, p, "applied").await?;
    finish_notification_conn(c, p, "applied", None).await?;
    outbox(
        c,
        ids,
        "payment.succeeded",
        &session_id,
        &serde_json::json!({
            "session_id": session_id, "out_trade_no": p.out_trade_no, "provider": p.provider.as_str(),
            "provider_txn_id": p.provider_txn_id, "amount": p.amount, "paid_at_ms": p.paid_at_ms, "payments": receipts,
        }),
        p.now_ms,
    )
    .await?;
    Ok(ApplyResult::Paid { session_id, bills: allocations.len() })
}

/// `($1, $2), ($3, $4), …`: `rows` tuples of `cols` placeholders, numbered from `first`.
fn placeholders(rows: usize, cols: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(first + r * cols + c).to_string());
        }
        out.push(')');
    }
    out
}

/// `$1, $2, …, $n` for an `IN (…)` list.
fn in_list(n: usize, first: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// One application of a batch that can take the set-based path.
struct FastApply {
    index: usize,
    session_id: String,
    bills: Vec<(String, Money)>,
}

/// Reads what the batch touches (sessions locked, in id order) and picks the applications
/// that are the ordinary case. Everything else is left to the one-by-one path.
async fn plan_batch(c: &mut Conn, ps: &[PaymentApplication]) -> StoreResult<Vec<FastApply>> {
    let sql = format!(
        "SELECT id, channel_id, status, total_fen, out_trade_no FROM checkout_sessions WHERE out_trade_no IN ({}) \
         ORDER BY id{FOR_UPDATE}",
        in_list(ps.len(), 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for p in ps {
        q = q.bind(&p.out_trade_no);
    }
    let mut sessions = std::collections::HashMap::new();
    for r in q.fetch_all(&mut *c).await.map_err(map_err)? {
        let out: String = r.try_get("out_trade_no").map_err(map_err)?;
        let id: String = r.try_get("id").map_err(map_err)?;
        let channel: String = r.try_get("channel_id").map_err(map_err)?;
        let status: String = r.try_get("status").map_err(map_err)?;
        let total: i64 = r.try_get("total_fen").map_err(map_err)?;
        sessions.insert(out, (id, channel, status, total));
    }
    let sql = format!(
        "SELECT provider, provider_txn_id FROM provider_transactions WHERE provider_txn_id IN ({})",
        in_list(ps.len(), 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for p in ps {
        q = q.bind(&p.provider_txn_id);
    }
    let mut booked = std::collections::HashSet::new();
    for r in q.fetch_all(&mut *c).await.map_err(map_err)? {
        booked.insert((
            r.try_get::<String, _>("provider").map_err(map_err)?,
            r.try_get::<String, _>("provider_txn_id").map_err(map_err)?,
        ));
    }
    let mut seen_orders = std::collections::HashSet::new();
    let mut seen_txns = std::collections::HashSet::new();
    let mut plan = Vec::new();
    for (index, p) in ps.iter().enumerate() {
        let txn = (p.provider.as_str().to_string(), p.provider_txn_id.clone());
        // a repeat within the batch goes one by one (after the first is written): a duplicate
        let fresh = seen_orders.insert(p.out_trade_no.clone()) & seen_txns.insert(txn.clone());
        let Some((id, channel, status, total)) = sessions.get(&p.out_trade_no) else { continue };
        if fresh
            && !booked.contains(&txn)
            && *channel == p.channel_id
            && status == "pending"
            && *total == p.amount.fen()
        {
            plan.push(FastApply { index, session_id: id.clone(), bills: Vec::new() });
        }
    }
    if plan.is_empty() {
        return Ok(plan);
    }
    let sql = format!(
        "SELECT session_id, bill_id, amount_fen FROM session_bills WHERE session_id IN ({}) AND active = TRUE \
         ORDER BY session_id, bill_id",
        in_list(plan.len(), 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for f in &plan {
        q = q.bind(&f.session_id);
    }
    let mut by_session: std::collections::HashMap<String, Vec<(String, Money)>> = std::collections::HashMap::new();
    for r in q.fetch_all(&mut *c).await.map_err(map_err)? {
        by_session
            .entry(r.try_get("session_id").map_err(map_err)?)
            .or_default()
            .push((r.try_get("bill_id").map_err(map_err)?, money(r.try_get("amount_fen").map_err(map_err)?)?));
    }
    // bills that do not add up to the session total are reported by the one-by-one path
    plan.retain_mut(|f| {
        f.bills = by_session.remove(&f.session_id).unwrap_or_default();
        let sum: i64 = f.bills.iter().map(|b| b.1.fen()).sum();
        !f.bills.is_empty() && sum == ps[f.index].amount.fen()
    });
    Ok(plan)
}

/// The set-based write of the ordinary case: the same rows `apply_payment_conn` writes, a
/// statement per table for the whole batch. Any surprise (a compare-and-set that does not hit
/// every row) is an error, and the caller rolls the batch back to its savepoint.
async fn write_batch(c: &mut Conn, ps: &[PaymentApplication], plan: &[FastApply], ids: &dyn IdGen) -> StoreResult<()> {
    let n = plan.len();
    // sessions: pending → paid
    let sql = format!(
        "UPDATE checkout_sessions SET status = 'paid', paid_at = v.column2, paid_fen = v.column3, provider_txn_id = v.column4, \
         provider_close = 'none', updated_at = v.column5, version = version + 1 \
         FROM (VALUES {}) AS v WHERE checkout_sessions.id = v.column1 AND checkout_sessions.status = 'pending'",
        placeholders(n, 5, 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for f in plan {
        let p = &ps[f.index];
        q = q.bind(&f.session_id).bind(p.paid_at_ms).bind(p.amount.fen()).bind(&p.provider_txn_id).bind(p.now_ms);
    }
    let hit = q.execute(&mut *c).await.map_err(map_err)?.rows_affected();
    if hit != n as u64 {
        return Err(StoreError::Internal(anyhow!("{hit} of {n} sessions were pending")));
    }

    // journal entries, their postings, payments, receipts
    struct Entry {
        id: String,
        memo: String,
        postings: clinicpay::ledger::Postings,
        payments: Vec<(String, String, Money, String)>, // payment id, bill id, amount, receipt
    }
    let mut entries = Vec::with_capacity(n);
    for f in plan {
        let p = &ps[f.index];
        let postings = clinicpay::ledger::Postings::payment(p.provider, &f.bills)
            .map_err(|e| StoreError::Internal(anyhow!("{e}")))?;
        let payments = f
            .bills
            .iter()
            .map(|(bill, amount)| {
                let pid: PaymentId = new_id(ids);
                let receipt = receipt_no(p.paid_at_ms, pid.as_str());
                (pid.into_string(), bill.clone(), *amount, receipt)
            })
            .collect();
        entries.push(Entry {
            id: new_id::<JournalEntryId>(ids).into_string(),
            memo: format!("{} {} · {} bills", p.provider.as_str(), p.provider_txn_id, f.bills.len()),
            postings,
            payments,
        });
    }
    let sql = format!(
        "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, created_at) \
         SELECT column1, column2, column3, column4, column5, column6, FALSE, column7 FROM (VALUES {}) AS v",
        placeholders(n, 7, 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for (f, e) in plan.iter().zip(&entries) {
        let p = &ps[f.index];
        q = q
            .bind(&e.id)
            .bind(clinicpay::ledger::EntryKind::Payment.as_str())
            .bind(p.paid_at_ms)
            .bind("session")
            .bind(&f.session_id)
            .bind(&e.memo)
            .bind(p.now_ms);
    }
    q.execute(&mut *c).await.map_err(map_err)?;

    let lines: usize = entries.iter().map(|e| e.postings.lines().len()).sum();
    let sql = format!(
        "INSERT INTO postings (entry_id, line_no, account_code, amount_fen, bill_id) VALUES {}",
        placeholders(lines, 5, 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for e in &entries {
        for (i, l) in e.postings.lines().iter().enumerate() {
            q = q.bind(&e.id).bind(i as i32 + 1).bind(l.account.code()).bind(l.amount.fen()).bind(&l.bill_id);
        }
    }
    q.execute(&mut *c).await.map_err(map_err)?;
    // sealing checks each entry's balance in the database
    let sql = format!("UPDATE journal_entries SET sealed = TRUE WHERE id IN ({})", in_list(n, 1));
    let mut q = sqlx::query(&sql).persistent(false);
    for e in &entries {
        q = q.bind(&e.id);
    }
    q.execute(&mut *c).await.map_err(map_err)?;

    let pays: usize = entries.iter().map(|e| e.payments.len()).sum();
    let sql = format!(
        "INSERT INTO payments (id, session_id, bill_id, amount_fen, provider, provider_txn_id, journal_entry_id, receipt_no, paid_at, created_at) \
         VALUES {}",
        placeholders(pays, 10, 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for (f, e) in plan.iter().zip(&entries) {
        let p = &ps[f.index];
        for (pid, bill, amount, receipt) in &e.payments {
            q = q
                .bind(pid)
                .bind(&f.session_id)
                .bind(bill)
                .bind(amount.fen())
                .bind(p.provider.as_str())
                .bind(&p.provider_txn_id)
                .bind(&e.id)
                .bind(receipt)
                .bind(p.paid_at_ms)
                .bind(p.now_ms);
        }
    }
    q.execute(&mut *c).await.map_err(map_err)?;

    // bills: paying → paid (each was reserved by its session)
    let sql = format!(
        "UPDATE bills SET status = 'paid', paid_at = v.column2, updated_at = v.column3 FROM (VALUES {}) AS v \
         WHERE bills.id = v.column1 AND bills.status = 'paying'",
        placeholders(pays, 3, 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for f in plan {
        let p = &ps[f.index];
        for (bill, _) in &f.bills {
            q = q.bind(bill).bind(p.paid_at_ms).bind(p.now_ms);
        }
    }
    let hit = q.execute(&mut *c).await.map_err(map_err)?.rows_affected();
    if hit != pays as u64 {
        return Err(StoreError::Internal(anyhow!("{hit} of {pays} bills were paying")));
    }
    let sql =
        format!("UPDATE session_bills SET active = FALSE WHERE session_id IN ({}) AND active = TRUE", in_list(n, 1));
    let mut q = sqlx::query(&sql).persistent(false);
    for f in plan {
        q = q.bind(&f.session_id);
    }
    q.execute(&mut *c).await.map_err(map_err)?;

    let sql = format!(
        "INSERT INTO provider_transactions (provider, provider_txn_id, out_trade_no, session_id, amount_fen, disposition, journal_entry_id, created_at) \
         SELECT column1, column2, column3, column4, column5, 'allocated', column6, column7 FROM (VALUES {}) AS v",
        placeholders(n, 7, 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for (f, e) in plan.iter().zip(&entries) {
        let p = &ps[f.index];
        q = q
            .bind(p.provider.as_str())
            .bind(&p.provider_txn_id)
            .bind(&p.out_trade_no)
            .bind(&f.session_id)
            .bind(p.amount.fen())
            .bind(&e.id)
            .bind(p.now_ms);
    }
    q.execute(&mut *c).await.map_err(map_err)?;

    let sql = format!(
        "INSERT INTO provider_events (provider, event_id, notification_id, outcome, created_at) \
         SELECT column1, column2, column3, 'applied', column4 FROM (VALUES {}) AS v WHERE true \
         ON CONFLICT (provider, event_id) DO NOTHING",
        placeholders(n, 4, 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for f in plan {
        let p = &ps[f.index];
        q = q
            .bind(p.provider.as_str())
            .bind(&p.event_id)
            .bind(p.notification_id.as_deref().unwrap_or(""))
            .bind(p.now_ms);
    }
    q.execute(&mut *c).await.map_err(map_err)?;

    let with_notification: Vec<&FastApply> =
        plan.iter().filter(|f| ps[f.index].notification_id.as_deref().is_some_and(|n| !n.is_empty())).collect();
    if !with_notification.is_empty() {
        let sql = format!(
            "UPDATE notifications SET status = 'applied', reason = NULL, channel_id = v.column2, event_id = v.column3, \
             out_trade_no = v.column4, processed_at = v.column5 FROM (VALUES {}) AS v WHERE notifications.id = v.column1",
            placeholders(with_notification.len(), 5, 1)
        );
        let mut q = sqlx::query(&sql).persistent(false);
        for f in &with_notification {
            let p = &ps[f.index];
            q = q
                .bind(p.notification_id.as_deref().unwrap_or(""))
                .bind(&p.channel_id)
                .bind(&p.event_id)
                .bind(&p.out_trade_no)
                .bind(p.now_ms);
        }
        q.execute(&mut *c).await.map_err(map_err)?;
    }

    let sql = format!(
        "INSERT INTO outbox (id, topic, aggregate_id, payload, status, created_at) \
         SELECT column1, 'payment.succeeded', column2, column3, 'pending', column4 FROM (VALUES {}) AS v",
        placeholders(n, 4, 1)
    );
    let mut q = sqlx::query(&sql).persistent(false);
    for (f, e) in plan.iter().zip(&entries) {
        let p = &ps[f.index];
        let receipts: Vec<serde_json::Value> = e
            .payments
            .iter()
            .map(|(_, bill, amount, receipt)| serde_json::json!({ "bill_id": bill, "amount": amount, "receipt_no": receipt }))
            .collect();
        let payload = serde_json::json!({
            "session_id": f.session_id, "out_trade_no": p.out_trade_no, "provider": p.provider.as_str(),
            "provider_txn_id": p.provider_txn_id, "amount": p.amount, "paid_at_ms": p.paid_at_ms, "payments": receipts,
        });
        q = q.bind(new_id::<OutboxId>(ids).into_string()).bind(&f.session_id).bind(payload.to_string()).bind(p.now_ms);
    }
    q.execute(&mut *c).await.map_err(map_err)?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: String,
    channel_id: String,
    out_trade_no: String,
    status: String,
    sync_attempts: i64,
}

impl TaskRow {
    fn into_task(self) -> StoreResult<SessionTask> {
        Ok(SessionTask {
            status: session_status(&self.status)?,
            session_id: self.id,
            channel_id: self.channel_id,
            out_trade_no: self.out_trade_no,
            attempts: self.sync_attempts,
        })
    }
}

#[async_trait::async_trait]
impl CheckoutStore for ThisStore {
    async fn create_session(&self, s: &NewSession) -> StoreResult<Result<CreateOutcome, SessionRefusal>> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        if let Some((scope, key, fingerprint)) = &s.idempotency {
            let prior = sqlx::query(&format!(
                "SELECT request_hash, session_id FROM idempotency_keys WHERE scope = $1 AND key = $2{FOR_UPDATE}"
            ))
            .bind(scope)
            .bind(key)
            .fetch_optional(tx.c())
            .await
            .map_err(map_err)?;
            if let Some(r) = prior {
                let hash: String = r.try_get("request_hash").map_err(map_err)?;
                let sid: String = r.try_get("session_id").map_err(map_err)?;
                if &hash != fingerprint {
                    return Ok(Err(SessionRefusal::IdempotencyReused { session_id: sid }));
                }
                let view = load_session(tx.c(), "s.id = $1", &sid).await?.ok_or(StoreError::NotFound)?;
                return Ok(Ok(CreateOutcome::Existing(view)));
            }
        }
        if let Some(old) = &s.replaces {
            if let Err(status) =
                end_session_conn(tx.c(), old, EndReason::Refreshed, s.created_at_ms, true, Some(&s.id)).await?
            {
                return Ok(Err(SessionRefusal::ReplacedNotPending { status }));
            }
        }
        let patient: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM patients WHERE id = $1")
            .bind(&s.patient_id)
            .fetch_optional(tx.c())
            .await
            .map_err(map_err)?;
        if patient.is_none() {
            return Ok(Err(SessionRefusal::UnknownPatient));
        }
        let mut amounts = Vec::with_capacity(s.bill_ids.len());
        for bill_id in &s.bill_ids {
            let row =
                sqlx::query(&format!("SELECT patient_id, status, total_fen FROM bills WHERE id = $1{FOR_UPDATE}"))
                    .bind(bill_id)
                    .fetch_optional(tx.c())
                    .await
                    .map_err(map_err)?;
            let Some(row) = row else { return Ok(Err(SessionRefusal::UnknownBill(bill_id.clone()))) };
            let patient_id: String = row.try_get("patient_id").map_err(map_err)?;
            let status: String = row.try_get("status").map_err(map_err)?;
            if patient_id != s.patient_id {
                return Ok(Err(SessionRefusal::OtherPatient(bill_id.clone())));
            }
            if status == "paying" {
                let active: Option<String> =
                    sqlx::query_scalar("SELECT session_id FROM session_bills WHERE bill_id = $1 AND active = TRUE")
                        .bind(bill_id)
                        .fetch_optional(tx.c())
                        .await
                        .map_err(map_err)?;
                return Ok(Err(SessionRefusal::InActiveSession {
                    bill_id: bill_id.clone(),
                    session_id: active.unwrap_or_default(),
                }));
            }
            if status != "unpaid" {
                return Ok(Err(SessionRefusal::NotPayable { bill_id: bill_id.clone(), status }));
            }
            amounts.push(row.try_get::<i64, _>("total_fen").map_err(map_err)?);
        }
        let total: i64 = amounts.iter().sum();
        sqlx::query(
            "INSERT INTO checkout_sessions (id, patient_id, channel_id, provider, method, out_trade_no, total_fen, status, expires_at, \
             created_at, created_by, updated_at, sync_next_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $9, $11)",
        )
        .bind(&s.id)
        .bind(&s.patient_id)
        .bind(&s.channel_id)
        .bind(s.provider.as_str())
        .bind(s.method.as_str())
        .bind(&s.out_trade_no)
        .bind(total)
        .bind(s.expires_at_ms)
        .bind(s.created_at_ms)
        .bind(&s.created_by)
        .bind(s.created_at_ms + 15_000)
        .execute(tx.c())
        .await
        .map_err(map_err)?;
        for (bill_id, amount) in s.bill_ids.iter().zip(&amounts) {
            let r = sqlx::query(
                "INSERT INTO session_bills (session_id, bill_id, amount_fen, active) VALUES ($1, $2, $3, TRUE)",
            )
            .bind(&s.id)
            .bind(bill_id)
            .bind(amount)
            .execute(tx.c())
            .await;
            if let Err(e) = r {
                return match map_err(e) {
                    StoreError::Conflict(_) => {
                        Ok(Err(SessionRefusal::InActiveSession { bill_id: bill_id.clone(), session_id: String::new() }))
                    }
                    other => Err(other),
                };
            }
            let n =
                sqlx::query("UPDATE bills SET status = 'paying', updated_at = $1 WHERE id = $2 AND status = 'unpaid'")
                    .bind(s.created_at_ms)
                    .bind(bill_id)
                    .execute(tx.c())
                    .await
                    .map_err(map_err)?
                    .rows_affected();
            if n != 1 {
                return Ok(Err(SessionRefusal::NotPayable { bill_id: bill_id.clone(), status: "changed".into() }));
            }
        }
        if let Some((scope, key, fingerprint)) = &s.idempotency {
            sqlx::query("INSERT INTO idempotency_keys (scope, key, request_hash, session_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(scope)
                .bind(key)
                .bind(fingerprint)
                .bind(&s.id)
                .bind(s.created_at_ms)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
        }
        let view = load_session(tx.c(), "s.id = $1", &s.id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Ok(CreateOutcome::Created(view)))
    }

    async fn set_pay_action(&self, session_id: &str, kind: &str, content: &str, at_ms: Millis) -> StoreResult<bool> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let n = sqlx::query(
            "UPDATE checkout_sessions SET pay_kind = $1, pay_content = $2, updated_at = $3 \
             WHERE id = $4 AND status = 'pending' AND pay_kind IS NULL",
        )
        .bind(kind)
        .bind(content)
        .bind(at_ms)
        .bind(session_id)
        .execute(tx.c())
        .await
        .map_err(map_err)?
        .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(n == 1)
    }

    async fn end_session(
        &self,
        session_id: &str,
        reason: EndReason,
        at_ms: Millis,
        close_at_provider: bool,
    ) -> StoreResult<Result<(), SessionStatus>> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let r = end_session_conn(tx.c(), session_id, reason, at_ms, close_at_provider, None).await?;
        if r.is_ok() {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(r)
    }

    async fn session(&self, session_id: &str) -> StoreResult<Option<SessionView>> {
        let mut c = self.pool.acquire().await.map_err(map_err)?;
        load_session(&mut c, "s.id = $1", session_id).await
    }

    async fn session_by_trade(&self, out_trade_no: &str) -> StoreResult<Option<SessionView>> {
        let mut c = self.pool.acquire().await.map_err(map_err)?;
        load_session(&mut c, "s.out_trade_no = $1", out_trade_no).await
    }

    async fn pending_sessions_of(&self, patient_id: &str) -> StoreResult<Vec<SessionView>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM checkout_sessions WHERE patient_id = $1 AND status = 'pending' ORDER BY created_at DESC",
        )
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut c = self.pool.acquire().await.map_err(map_err)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(v) = load_session(&mut c, "s.id = $1", &id).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    async fn apply_payment(&self, p: &PaymentApplication, ids: &dyn IdGen) -> StoreResult<ApplyResult> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let r = apply_payment_conn(tx.c(), p, ids).await?;
        if r != ApplyResult::UnknownOrder {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(r)
    }

    async fn apply_payments(
        &self,
        ps: &[PaymentApplication],
        ids: &dyn IdGen,
    ) -> StoreResult<Vec<StoreResult<ApplyResult>>> {
        use sqlx::Acquire;
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let mut results: Vec<Option<StoreResult<ApplyResult>>> = (0..ps.len()).map(|_| None).collect();
        // The ordinary case (a pending session paid in full, first report of its transaction)
        // is written for the whole batch with a few set-based statements; anything else, or a
        // batch whose set-based write fails, goes one by one below.
        if ps.len() > 1 {
            let plan = plan_batch(tx.c(), ps).await?;
            if !plan.is_empty() {
                let mut sp = (&mut tx.tx).begin().await.map_err(map_err)?;
                match write_batch(&mut sp, ps, &plan, ids).await {
                    Ok(()) => {
                        sp.commit().await.map_err(map_err)?;
                        for f in plan {
                            let bills = f.bills.len();
                            results[f.index] = Some(Ok(ApplyResult::Paid { session_id: f.session_id, bills }));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "set-based apply failed; applying one by one");
                        sp.rollback().await.map_err(map_err)?;
                    }
                }
            }
        }
        for (i, p) in ps.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            // each application in its own savepoint: one failure does not undo the others
            let mut sp = (&mut tx.tx).begin().await.map_err(map_err)?;
            match apply_payment_conn(&mut sp, p, ids).await {
                Ok(r) => {
                    sp.commit().await.map_err(map_err)?;
                    results[i] = Some(Ok(r));
                }
                Err(e) => {
                    sp.rollback().await.map_err(map_err)?;
                    results[i] = Some(Err(e));
                }
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Internal(anyhow!("not applied")))))
            .collect())
    }

    async fn expire_sessions(&self, now_ms: Millis, limit: i64) -> StoreResult<Vec<String>> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let rows = sqlx::query(&format!(
            "SELECT id, pay_kind, expires_at FROM checkout_sessions WHERE status = 'pending' \
             AND (expires_at <= $1 OR (pay_kind IS NULL AND created_at <= $2)) ORDER BY expires_at LIMIT $3{SKIP_LOCKED}"
        ))
        .bind(now_ms)
        .bind(now_ms - 120_000)
        .bind(limit)
        .fetch_all(tx.c())
        .await
        .map_err(map_err)?;
        let mut ended = Vec::new();
        for r in rows {
            let id: String = r.try_get("id").map_err(map_err)?;
            let kind: Option<String> = r.try_get("pay_kind").map_err(map_err)?;
            let expires: i64 = r.try_get("expires_at").map_err(map_err)?;
            let reason = if kind.is_none() && expires > now_ms { EndReason::CreateFailed } else { EndReason::Expired };
            if end_session_conn(tx.c(), &id, reason, now_ms, true, None).await?.is_ok() {
                ended.push(id);
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(ended)
    }

    async fn claim_closes(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<SessionTask>> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let rows: Vec<TaskRow> = sqlx::query_as(&format!(
            "SELECT id, channel_id, out_trade_no, status, sync_attempts FROM checkout_sessions \
             WHERE provider_close = 'pending' AND lease_until < $1 ORDER BY closed_at LIMIT $2{SKIP_LOCKED}"
        ))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(tx.c())
        .await
        .map_err(map_err)?;
        for r in &rows {
            sqlx::query("UPDATE checkout_sessions SET lease_until = $1 WHERE id = $2")
                .bind(now_ms + lease_ms)
                .bind(&r.id)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        rows.into_iter().map(TaskRow::into_task).collect()
    }

    async fn mark_closed_at_provider(&self, session_id: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        sqlx::query("UPDATE checkout_sessions SET provider_close = 'done', lease_until = 0 WHERE id = $1 AND provider_close = 'pending'")
            .bind(session_id)
            .execute(tx.c())
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn claim_syncs(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<SessionTask>> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let rows: Vec<TaskRow> = sqlx::query_as(&format!(
            "SELECT id, channel_id, out_trade_no, status, sync_attempts FROM checkout_sessions \
             WHERE status = 'pending' AND pay_kind IS NOT NULL AND sync_next_at <= $1 AND lease_until < $1 \
             ORDER BY sync_next_at LIMIT $2{SKIP_LOCKED}"
        ))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(tx.c())
        .await
        .map_err(map_err)?;
        for r in &rows {
            // back off: 15 s, 30 s, 60 s, then every 2 minutes
            let wait = match r.sync_attempts {
                0 => 15_000,
                1 => 30_000,
                2 => 60_000,
                _ => 120_000,
            };
            sqlx::query("UPDATE checkout_sessions SET sync_next_at = $1, sync_attempts = sync_attempts + 1, lease_until = $2 WHERE id = $3")
                .bind(now_ms + wait)
                .bind(now_ms + lease_ms)
                .bind(&r.id)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        rows.into_iter().map(TaskRow::into_task).collect()
    }

    async fn claim_refunds(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<RefundTask>> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let rows = sqlx::query(&format!(
            "SELECT id, channel_id, out_trade_no, out_refund_no, amount_fen, total_fen, reason, status, attempts FROM provider_refunds \
             WHERE status IN ('pending', 'processing') AND next_attempt_at <= $1 AND lease_until < $1 \
             ORDER BY next_attempt_at LIMIT $2{SKIP_LOCKED}"
        ))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(tx.c())
        .await
        .map_err(map_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id").map_err(map_err)?;
            sqlx::query("UPDATE provider_refunds SET lease_until = $1 WHERE id = $2")
                .bind(now_ms + lease_ms)
                .bind(&id)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
            out.push(RefundTask {
                id,
                channel_id: r.try_get("channel_id").map_err(map_err)?,
                out_trade_no: r.try_get("out_trade_no").map_err(map_err)?,
                out_refund_no: r.try_get("out_refund_no").map_err(map_err)?,
                amount: money(r.try_get("amount_fen").map_err(map_err)?)?,
                total: money(r.try_get("total_fen").map_err(map_err)?)?,
                reason: r.try_get("reason").map_err(map_err)?,
                status: r.try_get("status").map_err(map_err)?,
                attempts: r.try_get("attempts").map_err(map_err)?,
            });
        }
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }

    async fn refund_progress(
        &self,
        refund_id: &str,
        progress: &RefundProgress,
        now_ms: Millis,
        ids: &dyn IdGen,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let row = sqlx::query(&format!(
            "SELECT provider, out_trade_no, amount_fen, exception_id, status FROM provider_refunds WHERE id = $1{FOR_UPDATE}"
        ))
        .bind(refund_id)
        .fetch_optional(tx.c())
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?;
        let status: String = row.try_get("status").map_err(map_err)?;
        if status != "pending" && status != "processing" {
            return Ok(()); // already final: a repeated report changes nothing
        }
        let provider = provider_of(&row.try_get::<String, _>("provider").map_err(map_err)?)?;
        let amount = money(row.try_get("amount_fen").map_err(map_err)?)?;
        let exception_id: Option<String> = row.try_get("exception_id").map_err(map_err)?;
        match progress {
            RefundProgress::Succeeded { provider_refund_id } => {
                let entry: JournalEntryId = new_id(ids);
                let postings = clinicpay::ledger::Postings::unallocated_refund(provider, amount)
                    .map_err(|e| StoreError::Internal(anyhow!("{e}")))?;
                post_entry(
                    tx.c(),
                    entry.as_str(),
                    clinicpay::ledger::EntryKind::UnallocatedRefund,
                    now_ms,
                    "refund",
                    refund_id,
                    "refund of unallocated money",
                    &postings,
                    now_ms,
                )
                .await?;
                sqlx::query(
                    "UPDATE provider_refunds SET status = 'succeeded', provider_refund_id = $1, journal_entry_id = $2, attempts = attempts + 1, \
                     lease_until = 0, updated_at = $3 WHERE id = $4",
                )
                .bind(provider_refund_id)
                .bind(entry.as_str())
                .bind(now_ms)
                .bind(refund_id)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
                if let Some(e) = &exception_id {
                    sqlx::query(
                        "UPDATE payment_exceptions SET status = 'refunded', resolution = $1, updated_at = $2 WHERE id = $3 AND status = 'refund_pending'",
                    )
                    .bind(format!("refunded {} through the original channel", amount.display()))
                    .bind(now_ms)
                    .bind(e)
                    .execute(tx.c())
                    .await
                    .map_err(map_err)?;
                }
            }
            RefundProgress::Processing => {
                sqlx::query(
                    "UPDATE provider_refunds SET status = 'processing', attempts = attempts + 1, next_attempt_at = $1, lease_until = 0, updated_at = $2 WHERE id = $3",
                )
                .bind(now_ms + 10_000)
                .bind(now_ms)
                .bind(refund_id)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
            }
            RefundProgress::Retry { error, next_attempt_at_ms } => {
                sqlx::query(
                    "UPDATE provider_refunds SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, lease_until = 0, updated_at = $3 WHERE id = $4",
                )
                .bind(next_attempt_at_ms)
                .bind(error)
                .bind(now_ms)
                .bind(refund_id)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
            }
            RefundProgress::Failed { error } => {
                sqlx::query(
                    "UPDATE provider_refunds SET status = 'failed', attempts = attempts + 1, last_error = $1, lease_until = 0, updated_at = $2 WHERE id = $3",
                )
                .bind(error)
                .bind(now_ms)
                .bind(refund_id)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
                if let Some(e) = &exception_id {
                    sqlx::query(
                        "UPDATE payment_exceptions SET status = 'open', resolution = $1, updated_at = $2 WHERE id = $3 AND status = 'refund_pending'",
                    )
                    .bind(format!("automatic refund failed: {error}; decide manually"))
                    .bind(now_ms)
                    .bind(e)
                    .execute(tx.c())
                    .await
                    .map_err(map_err)?;
                }
            }
        }
        tx.commit().await.map_err(map_err)
    }

    async fn claim_outbox(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<OutboxItem>> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let rows = sqlx::query(&format!(
            "SELECT id, topic, aggregate_id, payload FROM outbox WHERE status = 'pending' AND lease_until < $1 \
             ORDER BY created_at, id LIMIT $2{SKIP_LOCKED}"
        ))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(tx.c())
        .await
        .map_err(map_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id").map_err(map_err)?;
            sqlx::query("UPDATE outbox SET lease_until = $1, attempts = attempts + 1 WHERE id = $2")
                .bind(now_ms + lease_ms)
                .bind(&id)
                .execute(tx.c())
                .await
                .map_err(map_err)?;
            out.push(OutboxItem {
                id,
                topic: r.try_get("topic").map_err(map_err)?,
                aggregate_id: r.try_get("aggregate_id").map_err(map_err)?,
                payload: r.try_get("payload").map_err(map_err)?,
            });
        }
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }

    async fn mark_published(&self, ids_done: &[String], now_ms: Millis) -> StoreResult<()> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        for id in ids_done {
            sqlx::query(
                "UPDATE outbox SET status = 'published', published_at = $1 WHERE id = $2 AND status = 'pending'",
            )
            .bind(now_ms)
            .bind(id)
            .execute(tx.c())
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn list_exceptions(&self, open_only: bool, limit: i64) -> StoreResult<Vec<ExceptionView>> {
        let filter = if open_only { "WHERE e.status IN ('open', 'held', 'refund_pending')" } else { "" };
        let rows = sqlx::query(&format!(
            "SELECT e.id, e.kind, e.session_id, p.name AS patient_name, e.provider, e.out_trade_no, e.provider_txn_id, e.amount_fen, \
                    e.expected_fen, e.status, e.detail, e.resolution, e.created_at, e.updated_at \
             FROM payment_exceptions e LEFT JOIN checkout_sessions s ON s.id = e.session_id LEFT JOIN patients p ON p.id = s.patient_id \
             {filter} ORDER BY e.created_at DESC, e.id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|r| {
                Ok(ExceptionView {
                    id: r.try_get("id").map_err(map_err)?,
                    kind: r.try_get("kind").map_err(map_err)?,
                    session_id: r.try_get("session_id").map_err(map_err)?,
                    patient_name: r.try_get("patient_name").map_err(map_err)?,
                    provider: provider_of(&r.try_get::<String, _>("provider").map_err(map_err)?)?,
                    out_trade_no: r.try_get("out_trade_no").map_err(map_err)?,
                    provider_txn_id: r.try_get("provider_txn_id").map_err(map_err)?,
                    amount: money(r.try_get("amount_fen").map_err(map_err)?)?,
                    expected: r.try_get::<Option<i64>, _>("expected_fen").map_err(map_err)?.map(money).transpose()?,
                    status: r.try_get("status").map_err(map_err)?,
                    detail: r.try_get("detail").map_err(map_err)?,
                    resolution: r.try_get("resolution").map_err(map_err)?,
                    created_at_ms: r.try_get("created_at").map_err(map_err)?,
                    updated_at_ms: r.try_get("updated_at").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn decide_exception(
        &self,
        exception_id: &str,
        refund: bool,
        note: &str,
        actor: &str,
        now_ms: Millis,
        ids: &dyn IdGen,
        audit: &AuditInput,
    ) -> StoreResult<Result<(), String>> {
        let mut tx = self.write_tx().await.map_err(map_err)?;
        let row = sqlx::query(&format!(
            "SELECT status, provider, channel_id, out_trade_no, amount_fen FROM payment_exceptions WHERE id = $1{FOR_UPDATE}"
        ))
        .bind(exception_id)
        .fetch_optional(tx.c())
        .await
        .map_err(map_err)?
        .ok_or(StoreError::NotFound)?;
        let status: String = row.try_get("status").map_err(map_err)?;
        if status != "held" && status != "open" {
            return Ok(Err(status));
        }
        let new_status = if refund { "refund_pending" } else { "resolved" };
        sqlx::query("UPDATE payment_exceptions SET status = $1, resolution = $2, resolved_by = $3, updated_at = $4 WHERE id = $5 AND status = $6")
            .bind(new_status)
            .bind(note)
            .bind(actor)
            .bind(now_ms)
            .bind(exception_id)
            .bind(&status)
            .execute(tx.c())
            .await
            .map_err(map_err)?;
        if refund {
            let provider = provider_of(&row.try_get::<String, _>("provider").map_err(map_err)?)?;
            let channel: Option<String> = row.try_get("channel_id").map_err(map_err)?;
            let trade: String = row.try_get("out_trade_no").map_err(map_err)?;
            let amount: i64 = row.try_get("amount_fen").map_err(map_err)?;
            queue_refund(
                tx.c(),
                ids,
                &channel.unwrap_or_default(),
                provider,
                &trade,
                amount,
                amount,
                note,
                exception_id,
                now_ms,
            )
            .await?;
        }
        Self::append_audit_tx(&mut tx, audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Ok(()))
    }

    async fn ledger_report(&self) -> StoreResult<LedgerReport> {
        let p = &self.pool;
        let q = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        let balances = sqlx::query(
            "SELECT account_code, CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS fen FROM postings GROUP BY account_code ORDER BY account_code",
        )
        .fetch_all(p)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(|r| Ok((r.try_get::<String, _>("account_code").map_err(map_err)?, r.try_get::<i64, _>("fen").map_err(map_err)?)))
        .collect::<StoreResult<Vec<_>>>()?;
        let clearing: i64 = balances.iter().filter(|(a, _)| a.starts_with("1012")).map(|(_, f)| f).sum();
        let received = q("SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM provider_transactions")
            .fetch_one(p)
            .await
            .map_err(map_err)?;
        let refunded =
            q("SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM provider_refunds WHERE status = 'succeeded'")
                .fetch_one(p)
                .await
                .map_err(map_err)?;
        Ok(LedgerReport {
            journal_entries: q("SELECT COUNT(*) FROM journal_entries").fetch_one(p).await.map_err(map_err)?,
            unsealed_entries: q("SELECT COUNT(*) FROM journal_entries WHERE sealed = FALSE").fetch_one(p).await.map_err(map_err)?,
            unbalanced_entries: q(
                "SELECT COUNT(*) FROM (SELECT entry_id FROM postings GROUP BY entry_id HAVING SUM(amount_fen) <> 0) x",
            )
            .fetch_one(p)
            .await
            .map_err(map_err)?,
            paid_sessions: q("SELECT COUNT(*) FROM checkout_sessions WHERE status = 'paid'").fetch_one(p).await.map_err(map_err)?,
            misallocated_sessions: q(
                "SELECT COUNT(*) FROM checkout_sessions s WHERE s.status = 'paid' AND s.total_fen <> \
                 (SELECT COALESCE(SUM(x.amount_fen), 0) FROM payments x WHERE x.session_id = s.id)",
            )
            .fetch_one(p)
            .await
            .map_err(map_err)?,
            bills_paid_twice: q("SELECT COUNT(*) FROM (SELECT bill_id FROM payments GROUP BY bill_id HAVING COUNT(*) > 1) x")
                .fetch_one(p)
                .await
                .map_err(map_err)?,
            bill_payment_mismatches: q(
                "SELECT COUNT(*) FROM bills b WHERE \
                 (b.status IN ('paid', 'partially_refunded', 'refunded') AND NOT EXISTS (SELECT 1 FROM payments x WHERE x.bill_id = b.id)) \
                 OR (b.status IN ('unpaid', 'paying', 'void') AND EXISTS (SELECT 1 FROM payments x WHERE x.bill_id = b.id))",

            )
            .fetch_one(p)
            .await
            .map_err(map_err)?,
            unresolved_notifications: q("SELECT COUNT(*) FROM notifications WHERE status = 'received'").fetch_one(p).await.map_err(map_err)?,
            clearing_matches_receipts: clearing == received - refunded,
            balances,
        })
    }

    async fn refund_by_out_no(&self, out_refund_no: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT id FROM provider_refunds WHERE out_refund_no = $1")
            .bind(out_refund_no)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn count_pending_sessions(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM checkout_sessions WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }
}
