//! Journal entries and their postings (L1). An entry is written unsealed (marked by `unsealed`,
//! a deferred foreign key to an always-empty table, so a transaction that leaves it unsealed
//! cannot commit), its postings added, then sealed in the same transaction; sealing makes the
//! database check the balance (a trigger on both backends), and sealed entries and postings
//! never change.

use super::sql::{a, run_rows, sql, Arg, Db, Tx};
use clinicpay::checkout::apply::JournalEntry;
use clinicpay::ids::{BillId, JournalEntryId, RefundId};
use clinicpay::ledger::{EntryKind, Postings};
use clinicpay::money::Money;
use clinicpay::ports::{IdGen, StoreError, StoreResult};
use clinicpay::time::Millis;

/// Writes balanced entries (each with the instant it is written at), sealed.
pub(crate) async fn write_entries(tx: &mut Tx<'_>, entries: &[(&JournalEntry, Millis)]) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<Arg>> = entries
        .iter()
        .map(|(e, at)| {
            vec![
                a(&e.id),
                a(e.kind),
                a(e.occurred_at_ms),
                a(e.ref_type),
                a(&e.ref_id),
                a(&e.memo),
                a(false),
                a("open"),
                a(*at),
            ]
        })
        .collect();
    run_rows(
        tx,
        "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, unsealed, created_at) VALUES ",
        "",
        rows,
    )
    .await?;
    let lines: Vec<Vec<Arg>> = entries
        .iter()
        .flat_map(|(e, _)| {
            e.postings
                .lines()
                .iter()
                .enumerate()
                .map(|(i, l)| vec![a(&e.id), a(i as i32 + 1), a(l.account), a(l.amount), a(l.bill_id.as_ref())])
        })
        .collect();
    run_rows(tx, "INSERT INTO postings (entry_id, line_no, account_code, amount_fen, bill_id) VALUES ", "", lines)
        .await?;
    // sealing checks each entry's balance in the database
    for chunk in entries.chunks(1000) {
        let mut q = sql("UPDATE journal_entries SET sealed = TRUE, unsealed = NULL WHERE id IN (");
        q.push_list(chunk.iter().map(|(e, _)| &e.id));
        q.push(")");
        q.once().execute(&mut *tx).await?;
    }
    Ok(())
}

/// Books bills just issued (L1, accrual): receivable ← income, one entry per bill.
pub(crate) async fn book_issued(
    tx: &mut Tx<'_>,
    bills: &[(&BillId, Money, &str)],
    at_ms: Millis,
    ids: &dyn IdGen,
) -> StoreResult<()> {
    let entries = bills
        .iter()
        .map(|(id, amount, bill_no)| {
            Ok(JournalEntry {
                id: JournalEntryId::from_u128(ids.next_bits()),
                kind: EntryKind::BillIssued,
                occurred_at_ms: at_ms,
                ref_type: "bill",
                ref_id: id.to_string(),
                memo: format!("bill {bill_no} issued"),
                postings: Postings::bill_issued(id, *amount).map_err(unbalanced)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let refs: Vec<(&JournalEntry, Millis)> = entries.iter().map(|e| (e, at_ms)).collect();
    write_entries(tx, &refs).await
}

/// Reverses a bill's issue when it is voided before payment.
pub(crate) async fn book_voided(
    tx: &mut Tx<'_>,
    bill: &BillId,
    amount: Money,
    reason: &str,
    at_ms: Millis,
    ids: &dyn IdGen,
) -> StoreResult<()> {
    let entry = JournalEntry {
        id: JournalEntryId::from_u128(ids.next_bits()),
        kind: EntryKind::BillVoided,
        occurred_at_ms: at_ms,
        ref_type: "bill",
        ref_id: bill.to_string(),
        memo: format!("voided: {}", reason.chars().take(200).collect::<String>()),
        postings: Postings::bill_voided(bill, amount).map_err(unbalanced)?,
    };
    write_entries(tx, &[(&entry, at_ms)]).await
}

/// An approved refund of a paid bill: income ← refunds payable, until the money has gone back.
pub(crate) async fn book_refund_approved(
    tx: &mut Tx<'_>,
    refund: &RefundId,
    bill: &BillId,
    amount: Money,
    at_ms: Millis,
    ids: &dyn IdGen,
) -> StoreResult<()> {
    let entry = JournalEntry {
        id: JournalEntryId::from_u128(ids.next_bits()),
        kind: EntryKind::RefundApproved,
        occurred_at_ms: at_ms,
        ref_type: "bill_refund",
        ref_id: refund.to_string(),
        memo: format!("refund {refund} of bill {bill} approved"),
        postings: Postings::refund_approved(bill, amount).map_err(unbalanced)?,
    };
    write_entries(tx, &[(&entry, at_ms)]).await
}

fn unbalanced(e: clinicpay::ledger::LedgerError) -> StoreError {
    StoreError::Internal(anyhow::anyhow!("{e}"))
}

/// The one-off step that brings a database written before accrual into line (run once, after
/// the migrations, in one transaction): an opening issue entry for every bill still owed, and an
/// opening approval entry for every refund approved and not yet paid back. Bills paid before it
/// were credited to income by their payment and need nothing.
pub(crate) async fn upgrade_to_accrual(db: &Db, ids: &dyn IdGen, now_ms: Millis) -> StoreResult<()> {
    const NAME: &str = "0010_accrual_openings";
    let done: Option<i64> =
        sql("SELECT done_at FROM ledger_upgrades WHERE name = $1").bind(NAME).scalar_optional(db).await?;
    if done.is_some() {
        return Ok(());
    }
    let mut tx = db.write().await?;
    let bills: Vec<(String, i64, String)> =
        sql("SELECT b.id, b.total_fen, b.bill_no FROM bills b WHERE b.status IN ('unpaid', 'paying') \
         AND NOT EXISTS (SELECT 1 FROM journal_entries j WHERE j.ref_type = 'bill' AND j.ref_id = b.id)")
        .fetch_all(&mut tx)
        .await?;
    let mut n = 0i64;
    for chunk in bills.chunks(500) {
        let parsed = chunk
            .iter()
            .map(|(id, fen, no)| {
                Ok((
                    BillId::parse(id).map_err(|e| super::corrupt("bill id", e))?,
                    Money::from_fen(*fen).map_err(|e| super::corrupt("bill total", e))?,
                    no.as_str(),
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let refs: Vec<(&BillId, Money, &str)> = parsed.iter().map(|(id, m, no)| (id, *m, *no)).collect();
        book_issued(&mut tx, &refs, now_ms, ids).await?;
        n += refs.len() as i64;
    }
    let refunds: Vec<(String, String, i64)> =
        sql("SELECT r.id, r.bill_id, r.amount_fen FROM bill_refunds r WHERE r.status IN ('submitted', 'failed') \
         AND NOT EXISTS (SELECT 1 FROM journal_entries j WHERE j.ref_type = 'bill_refund' AND j.ref_id = r.id)")
        .fetch_all(&mut tx)
        .await?;
    for (id, bill, fen) in &refunds {
        let id = RefundId::parse(id).map_err(|e| super::corrupt("refund id", e))?;
        let bill = BillId::parse(bill).map_err(|e| super::corrupt("bill id", e))?;
        let amount = Money::from_fen(*fen).map_err(|e| super::corrupt("refund amount", e))?;
        book_refund_approved(&mut tx, &id, &bill, amount, now_ms, ids).await?;
        n += 1;
    }
    sql("INSERT INTO ledger_upgrades (name, done_at, entries) VALUES ($1, $2, $3)")
        .bind(NAME)
        .bind(now_ms)
        .bind(n)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    if n > 0 {
        tracing::info!(entries = n, "booked opening entries for bills and refunds that predate accrual");
    }
    Ok(())
}
