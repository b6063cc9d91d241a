//! Applying verified payments (C3, C4): the store reads, the rules decide, the store writes.
//!
//! For a batch of reports, in one transaction: the sessions they name are locked (in id order,
//! so concurrent batches cannot deadlock) and read with their held payables, and so is which
//! provider transactions are booked already ([`read_state`]). Each report is then decided by
//! [`PaymentRules::book`] against that state — kept up to date in memory, so a repeat inside
//! the batch is seen as one — and every booking is written with one statement per table for the
//! whole batch ([`write_bookings`]), its compare-and-sets checked by row counts. If that write
//! fails, each report goes again on its own, in its own savepoint: read, decide, write the same
//! way. There is no second copy of any rule here.

use super::exceptions::insert_exceptions;
use super::ledger::write_entries;
use super::notifications::{finish_all, record_events};
use super::outbox::insert_events;
use super::refunds::insert_refunds;
use super::sql::{a, run_rows, sql, Arg, Db, Tx};
use clinicpay::checkout::apply::{ApplyResult, BookedTxn, Booking, PaymentRules, SessionSnapshot, VerifiedPayment};
use clinicpay::checkout::payable::{FrozenPayable, PayableId, PayableKind};
use clinicpay::ids::{ChannelId, OutTradeNo, SessionId};
use clinicpay::money::Money;
use clinicpay::payments::{Provider, SessionStatus};
use clinicpay::ports::{IdGen, StoreError, StoreResult};
use std::collections::HashMap;

#[derive(sqlx::FromRow)]
struct SessionRow {
    #[sqlx(try_from = "String")]
    id: SessionId,
    #[sqlx(try_from = "String")]
    channel_id: ChannelId,
    #[sqlx(try_from = "String")]
    status: SessionStatus,
    #[sqlx(try_from = "i64")]
    total_fen: Money,
    #[sqlx(try_from = "String")]
    out_trade_no: OutTradeNo,
}

#[derive(sqlx::FromRow)]
struct HeldRow {
    #[sqlx(try_from = "String")]
    session_id: SessionId,
    #[sqlx(try_from = "String")]
    payable_kind: PayableKind,
    payable_id: String,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
}

#[derive(sqlx::FromRow)]
struct BookedRow {
    #[sqlx(try_from = "String")]
    provider: Provider,
    provider_txn_id: String,
    #[sqlx(try_from = "String")]
    out_trade_no: OutTradeNo,
    #[sqlx(try_from = "i64")]
    amount_fen: Money,
}

/// What the rules decide against: the sessions named by the reports, and the provider
/// transactions already booked.
#[derive(Default)]
struct State {
    sessions: HashMap<OutTradeNo, SessionSnapshot>,
    booked: HashMap<(Provider, String), BookedTxn>,
}

/// Reads (and locks) what a set of reports touches.
async fn read_state(tx: &mut Tx<'_>, ps: &[&VerifiedPayment]) -> StoreResult<State> {
    let mut state = State::default();
    if ps.is_empty() {
        return Ok(state);
    }
    let for_update = tx.dialect().for_update();
    let mut q =
        sql("SELECT id, channel_id, status, total_fen, out_trade_no FROM checkout_sessions WHERE out_trade_no IN (");
    q.push_list(ps.iter().map(|p| &p.out_trade_no));
    q.push(&format!(") ORDER BY id{for_update}"));
    let sessions: Vec<SessionRow> = q.once().fetch_all(&mut *tx).await?;
    if !sessions.is_empty() {
        let mut q = sql(
            "SELECT session_id, payable_kind, payable_id, amount_fen FROM session_payables WHERE active = TRUE AND session_id IN (",
        );
        q.push_list(sessions.iter().map(|s| &s.id));
        q.push(") ORDER BY session_id, payable_kind, payable_id");
        let held: Vec<HeldRow> = q.once().fetch_all(&mut *tx).await?;
        let mut by_session: HashMap<SessionId, Vec<FrozenPayable>> = HashMap::new();
        for h in held {
            let id = PayableId::from_parts(h.payable_kind, &h.payable_id).map_err(|e| super::corrupt("payable", e))?;
            by_session.entry(h.session_id).or_default().push(FrozenPayable { id, amount: h.amount_fen });
        }
        for s in sessions {
            let payables = by_session.remove(&s.id).unwrap_or_default();
            state.sessions.insert(
                s.out_trade_no,
                SessionSnapshot {
                    session_id: s.id,
                    channel_id: s.channel_id,
                    status: s.status,
                    total: s.total_fen,
                    payables,
                },
            );
        }
    }
    let mut q = sql(
        "SELECT provider, provider_txn_id, out_trade_no, amount_fen FROM provider_transactions WHERE provider_txn_id IN (",
    );
    q.push_list(ps.iter().map(|p| p.provider_txn_id.as_str()));
    q.push(")");
    let booked: Vec<BookedRow> = q.once().fetch_all(&mut *tx).await?;
    state.booked = booked
        .into_iter()
        .map(|b| ((b.provider, b.provider_txn_id), BookedTxn { out_trade_no: b.out_trade_no, amount: b.amount_fen }))
        .collect();
    Ok(state)
}

/// Decides one report against the state and updates the state as if its booking were written.
fn decide(
    state: &mut State,
    p: &VerifiedPayment,
    rules: &PaymentRules,
    ids: &dyn IdGen,
) -> Result<Booking, StoreError> {
    let key = (p.provider, p.provider_txn_id.clone());
    let snapshot = state.sessions.get(&p.out_trade_no);
    let booking = rules
        .book(snapshot, state.booked.get(&key), p, &mut || ids.next_bits())
        .map_err(|e| StoreError::Internal(anyhow::anyhow!("{e}")))?;
    if let Some(s) = snapshot {
        let next = s.after(&booking);
        state.sessions.insert(p.out_trade_no.clone(), next);
    }
    if booking.provider_txn.is_some() {
        state.booked.insert(key, BookedTxn::of(p));
    }
    Ok(booking)
}

/// Applies verified payments in one durable commit (see the module's description).
pub(crate) async fn apply_payments(
    db: &Db,
    ps: &[VerifiedPayment],
    rules: &PaymentRules,
    ids: &dyn IdGen,
) -> StoreResult<Vec<StoreResult<ApplyResult>>> {
    let mut tx = db.write().await?;
    let all: Vec<&VerifiedPayment> = ps.iter().collect();
    let mut state = read_state(&mut tx, &all).await?;
    let mut results: Vec<Option<StoreResult<ApplyResult>>> = (0..ps.len()).map(|_| None).collect();
    let mut bookings: Vec<(usize, Booking)> = Vec::with_capacity(ps.len());
    for (i, p) in ps.iter().enumerate() {
        match decide(&mut state, p, rules, ids) {
            Ok(b) if b.is_empty() => results[i] = Some(Ok(b.result)),
            Ok(b) => bookings.push((i, b)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    if !bookings.is_empty() {
        let mut sp = tx.savepoint().await?;
        let written = async {
            number_receipts(&mut sp, bookings.iter_mut().map(|(_, b)| b).collect()).await?;
            let refs: Vec<&Booking> = bookings.iter().map(|(_, b)| b).collect();
            write_bookings(&mut sp, &refs).await
        }
        .await;
        match written {
            Ok(()) => {
                sp.commit().await?;
                for (i, b) in bookings {
                    results[i] = Some(Ok(b.result));
                }
            }
            Err(e) if bookings.len() == 1 => {
                sp.rollback().await?;
                results[bookings[0].0] = Some(Err(e));
            }
            Err(e) => {
                tracing::warn!(error = %e, reports = bookings.len(), "the batch write failed; applying one by one");
                sp.rollback().await?;
                for (i, _) in bookings {
                    results[i] = Some(apply_alone(&mut tx, &ps[i], rules, ids).await);
                }
            }
        }
    }
    tx.commit().await?;
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::Internal(anyhow::anyhow!("not applied")))))
        .collect())
}

/// One report in its own savepoint: read, decide, write. A failure undoes only its own work.
pub(crate) async fn apply_alone(
    tx: &mut Tx<'_>,
    p: &VerifiedPayment,
    rules: &PaymentRules,
    ids: &dyn IdGen,
) -> StoreResult<ApplyResult> {
    let mut sp = tx.savepoint().await?;
    let outcome = async {
        let mut state = read_state(&mut sp, &[p]).await?;
        let mut b = decide(&mut state, p, rules, ids)?;
        if !b.is_empty() {
            number_receipts(&mut sp, vec![&mut b]).await?;
            write_bookings(&mut sp, &[&b]).await?;
        }
        Ok::<_, StoreError>(b.result)
    }
    .await;
    match outcome {
        Ok(r) => {
            sp.commit().await?;
            Ok(r)
        }
        Err(e) => {
            sp.rollback().await?;
            Err(e)
        }
    }
}

/// Numbers the receipts of bookings about to be written (F4): the numbers are reserved in this
/// transaction, so a write that fails and rolls back gives them back.
async fn number_receipts(tx: &mut Tx<'_>, bs: Vec<&mut Booking>) -> StoreResult<()> {
    let wanted: Vec<_> = bs.iter().flat_map(|b| b.receipts_wanted()).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut book = super::receipts::reserve(tx, wanted).await?;
    for b in bs {
        b.number_receipts(&mut book).map_err(|e| StoreError::Internal(anyhow::anyhow!("{e}")))?;
    }
    Ok(())
}

/// Writes bookings, one statement per table for all of them. A compare-and-set that does not
/// hit every row it should is an error (the caller rolls back to its savepoint).
async fn write_bookings(tx: &mut Tx<'_>, bs: &[&Booking]) -> StoreResult<()> {
    // sessions: pending → paid
    let paid: Vec<Vec<Arg>> = bs
        .iter()
        .filter_map(|b| b.session_paid.as_ref().map(|s| (b.at_ms, s)))
        .map(|(at, s)| {
            vec![a(&s.session_id), a(s.to), a(s.paid_at_ms), a(s.amount), a(&s.provider_txn_id), a(at), a(s.from)]
        })
        .collect();
    let want = paid.len() as u64;
    let hit = run_rows(
        tx,
        "UPDATE checkout_sessions SET status = v.column2, paid_at = v.column3, paid_fen = v.column4, \
         provider_txn_id = v.column5, provider_close = 'none', updated_at = v.column6, version = version + 1 \
         FROM (VALUES ",
        ") AS v WHERE checkout_sessions.id = v.column1 AND checkout_sessions.status = v.column7",
        paid,
    )
    .await?;
    if hit != want {
        return Err(StoreError::Internal(anyhow::anyhow!("{hit} of {want} sessions were pending")));
    }

    // the ledger first: payments and provider transactions name their entries
    let entries: Vec<_> = bs.iter().filter_map(|b| b.entry.as_ref().map(|e| (e, b.at_ms))).collect();
    write_entries(tx, &entries).await?;

    let payments: Vec<Vec<Arg>> = bs
        .iter()
        .flat_map(|b| b.payments.iter().map(move |p| (b.at_ms, p)))
        .map(|(at, p)| {
            vec![
                a(&p.id),
                a(&p.session_id),
                a(p.payable.kind()),
                a(&p.payable),
                a(p.payable.bill()),
                a(p.amount),
                a(p.provider),
                a(&p.provider_txn_id),
                a(&p.journal_entry_id),
                a(&p.receipt_no),
                a(p.paid_at_ms),
                a(at),
            ]
        })
        .collect();
    run_rows(
        tx,
        "INSERT INTO payments (id, session_id, payable_kind, payable_id, bill_id, amount_fen, provider, provider_txn_id, \
         journal_entry_id, receipt_no, paid_at, created_at) VALUES ",
        "",
        payments,
    )
    .await?;

    // payables: paying → paid (each was held by its session). Bills are the only kind today.
    let bills: Vec<Vec<Arg>> = bs
        .iter()
        .flat_map(|b| b.payables.iter().map(move |t| (b.at_ms, t)))
        .map(|(at, t)| {
            let PayableId::Bill(bill) = &t.payable;
            vec![a(bill), a(t.to), a(t.paid_at_ms), a(at), a(t.from)]
        })
        .collect();
    let want = bills.len() as u64;
    let hit = run_rows(
        tx,
        "UPDATE bills SET status = v.column2, paid_at = v.column3, updated_at = v.column4 FROM (VALUES ",
        ") AS v WHERE bills.id = v.column1 AND bills.status = v.column5",
        bills,
    )
    .await?;
    if hit != want {
        return Err(StoreError::Internal(anyhow::anyhow!("{hit} of {want} bills were paying")));
    }
    let released: Vec<&SessionId> = bs.iter().filter_map(|b| b.release_payables_of.as_ref()).collect();
    for chunk in released.chunks(1000) {
        let mut q = sql("UPDATE session_payables SET active = FALSE WHERE active = TRUE AND session_id IN (");
        q.push_list(chunk.iter().copied());
        q.push(")");
        q.once().execute(&mut *tx).await?;
    }

    // a provider transaction is booked once, whatever path it came by (its primary key)
    let txns: Vec<Vec<Arg>> = bs
        .iter()
        .filter_map(|b| b.provider_txn.as_ref().map(|t| (b.at_ms, t)))
        .map(|(at, t)| {
            vec![
                a(t.provider),
                a(&t.provider_txn_id),
                a(&t.out_trade_no),
                a(&t.session_id),
                a(t.amount),
                a(t.disposition.as_str()),
                a(&t.journal_entry_id),
                a(at),
            ]
        })
        .collect();
    run_rows(
        tx,
        "INSERT INTO provider_transactions (provider, provider_txn_id, out_trade_no, session_id, amount_fen, disposition, \
         journal_entry_id, created_at) VALUES ",
        "",
        txns,
    )
    .await?;

    let exceptions: Vec<_> = bs.iter().filter_map(|b| b.exception.as_ref().map(|x| (x, b.at_ms))).collect();
    insert_exceptions(tx, &exceptions).await?;
    let refunds: Vec<_> = bs.iter().filter_map(|b| b.refund.as_ref().map(|x| (x, b.at_ms))).collect();
    insert_refunds(tx, &refunds).await?;
    let events: Vec<_> = bs.iter().filter_map(|b| b.event.as_ref().map(|x| (x, b.at_ms))).collect();
    record_events(tx, &events).await?;
    let finished: Vec<_> = bs.iter().filter_map(|b| b.notification.as_ref().map(|x| (x, b.at_ms))).collect();
    finish_all(tx, &finished).await?;
    let outbox: Vec<_> = bs.iter().flat_map(|b| b.outbox.iter().map(move |x| (x, b.at_ms))).collect();
    insert_events(tx, &outbox).await?;
    Ok(())
}
