//! Receipt numbers (F4): per (series, year) counters, taken inside the transaction that books
//! the money. `INSERT … ON CONFLICT DO UPDATE … RETURNING` raises a counter and reads it back in
//! one statement on both backends; the row stays locked until the transaction ends, so
//! concurrent bookings queue on it and a rollback returns the numbers (no gaps, no repeats).

use super::sql::{sql, Tx};
use clinicpay::ports::{StoreError, StoreResult};
use clinicpay::receipts::{ReceiptBook, ReceiptSeries};
use std::collections::BTreeMap;

/// Reserves `n` consecutive numbers of a series in a year; returns the first.
pub(crate) async fn take(tx: &mut Tx<'_>, series: ReceiptSeries, year: i32, n: u64) -> StoreResult<u64> {
    if n == 0 {
        return Err(StoreError::Internal(anyhow::anyhow!("reserving no receipt numbers")));
    }
    let n = i64::try_from(n).map_err(|e| StoreError::Internal(anyhow::anyhow!("{e}")))?;
    let (last,): (i64,) = sql("INSERT INTO receipt_counters (series, year, last_no) VALUES ($1, $2, $3) \
         ON CONFLICT (series, year) DO UPDATE SET last_no = receipt_counters.last_no + excluded.last_no \
         RETURNING last_no")
    .bind(series.as_str())
    .bind(i64::from(year))
    .bind(n)
    .fetch_one(&mut *tx)
    .await?;
    u64::try_from(last - n + 1).map_err(|e| StoreError::Internal(anyhow::anyhow!("receipt counter {last}: {e}")))
}

/// Reserves every number a set of receipts needs, grouped by (series, year), in a fixed order
/// (so two transactions lock the counters in the same order and cannot deadlock).
pub(crate) async fn reserve(
    tx: &mut Tx<'_>,
    wanted: impl IntoIterator<Item = (ReceiptSeries, i32)>,
) -> StoreResult<ReceiptBook> {
    let mut counts: BTreeMap<(ReceiptSeries, i32), u64> = BTreeMap::new();
    for k in wanted {
        *counts.entry(k).or_default() += 1;
    }
    let mut first = Vec::with_capacity(counts.len());
    for ((series, year), n) in counts {
        first.push(((series, year), take(tx, series, year, n).await?));
    }
    Ok(ReceiptBook::new(first))
}
