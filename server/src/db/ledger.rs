//! Journal entries and their postings (L1). An entry is written unsealed (marked by `unsealed`,
//! a deferred foreign key to an always-empty table, so a transaction that leaves it unsealed
//! cannot commit), its postings added, then sealed in the same transaction; sealing makes the
//! database check the balance (a trigger on both backends), and sealed entries and postings
//! never change.

use super::sql::{a, run_rows, sql, Arg, Tx};
use clinicpay::checkout::apply::JournalEntry;
use clinicpay::ports::StoreResult;
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
