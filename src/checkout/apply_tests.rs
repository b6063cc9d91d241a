//! Property and example tests of the payment rules (`apply.rs`).

use super::*;
use crate::checkout::payable::PayableKind;
use crate::ids::BillId;
use crate::receipts::receipt_number;
use proptest::prelude::*;

fn m(fen: i64) -> Money {
    Money::from_fen(fen).unwrap()
}

fn counter() -> impl FnMut() -> u128 {
    let mut n = 1u128 << 100;
    move || {
        n += 1;
        n
    }
}

fn snapshot(status: SessionStatus, amounts: &[i64]) -> SessionSnapshot {
    SessionSnapshot {
        session_id: SessionId::from_u128(1),
        channel_id: ChannelId::from_u128(2),
        status,
        total: m(amounts.iter().sum()),
        payables: amounts
            .iter()
            .enumerate()
            .map(|(i, a)| FrozenPayable { id: PayableId::Bill(BillId::from_u128(100 + i as u128)), amount: m(*a) })
            .collect(),
    }
}

fn payment(amount: i64, txn: &str) -> VerifiedPayment {
    VerifiedPayment {
        event_id: format!("evt-{txn}"),
        notification_id: Some(NotificationId::from_u128(9)),
        provider: Provider::Alipay,
        channel_id: ChannelId::from_u128(2),
        out_trade_no: OutTradeNo::from_u128(3),
        provider_txn_id: txn.into(),
        amount: m(amount),
        paid_at_ms: 1_790_000_000_000,
        received_at_ms: 1_790_000_001_000,
    }
}

const AUTO: PaymentRules = PaymentRules { late_policy: LatePaymentPolicy::AutoRefund };
const HOLD: PaymentRules = PaymentRules { late_policy: LatePaymentPolicy::Hold };

/// Issue 13 #11: a transaction id booked before, reported for another order or another amount,
/// books nothing and opens an exception (it used to be answered "duplicate" and dropped).
#[test]
fn a_booked_transaction_reported_for_another_order_or_amount_is_an_exception() {
    let s = snapshot(SessionStatus::Pending, &[5000]);
    let p = payment(5000, "T1");
    let elsewhere = BookedTxn { out_trade_no: OutTradeNo::from_u128(77), amount: m(5000) };
    let other_amount = BookedTxn { out_trade_no: p.out_trade_no.clone(), amount: m(4000) };
    for booked in [&elsewhere, &other_amount] {
        let b = AUTO.book(Some(&s), Some(booked), &p, &mut counter()).unwrap();
        assert!(matches!(b.result, ApplyResult::TxnConflict { .. }), "{:?}", b.result);
        assert!(b.payments.is_empty() && b.entry.is_none() && b.provider_txn.is_none() && b.session_paid.is_none());
        assert!(b.refund.is_none(), "no money was booked, so none goes back");
        let e = b.exception.as_ref().unwrap();
        assert_eq!(
            (e.kind, e.status, e.expected),
            (ExceptionKind::TxnConflict, ExceptionStatus::Open, Some(booked.amount))
        );
        assert!(e.detail.contains(&booked.out_trade_no.to_string()) && e.detail.contains(&p.out_trade_no.to_string()));
        assert_eq!(b.notification.as_ref().unwrap().status, NotificationStatus::Applied);
        assert_eq!(s.after(&b), s, "the session stays as it was");
    }
    // the very same report again is still a plain duplicate
    let b = AUTO.book(Some(&s), Some(&BookedTxn::of(&p)), &p, &mut counter()).unwrap();
    assert_eq!(b.result, ApplyResult::Duplicate);
}

#[test]
fn pays_every_payable_once() {
    let s = snapshot(SessionStatus::Pending, &[32000, 98000, 20000]);
    let b = AUTO.book(Some(&s), None, &payment(150000, "T1"), &mut counter()).unwrap();
    assert!(matches!(b.result, ApplyResult::Paid { payables: 3, .. }));
    assert_eq!(b.payments.len(), 3);
    assert_eq!(Money::sum(b.payments.iter().map(|x| x.amount)).unwrap(), m(150000));
    assert_eq!(b.payables.iter().filter(|t| t.to == PayableStatus::Paid).count(), 3);
    let entry = b.entry.as_ref().unwrap();
    assert_eq!(entry.postings.lines().len(), 4);
    assert_eq!(b.provider_txn.as_ref().unwrap().disposition, Disposition::Allocated);
    assert!(b.exception.is_none() && b.refund.is_none());
    assert_eq!(b.notification.as_ref().unwrap().status, NotificationStatus::Applied);
    assert!(b.payments.iter().all(|x| x.receipt_no.is_empty()), "the store numbers receipts");
    // the same report again, after the booking: a duplicate
    let again = AUTO
        .book(Some(&s.after(&b)), Some(&BookedTxn::of(&payment(150000, "T1"))), &payment(150000, "T1"), &mut counter())
        .unwrap();
    assert_eq!(again.result, ApplyResult::Duplicate);
    assert!(again.payments.is_empty() && again.entry.is_none());
    // another transaction for the paid session: late money
    let late = AUTO.book(Some(&s.after(&b)), None, &payment(150000, "T2"), &mut counter()).unwrap();
    assert!(matches!(late.result, ApplyResult::LatePayment { refund_queued: true, .. }));
}

#[test]
fn late_money_is_kept_and_refunded_or_held() {
    let s = snapshot(SessionStatus::Expired, &[5000]);
    let auto = AUTO.book(Some(&s), None, &payment(5000, "T1"), &mut counter()).unwrap();
    assert!(matches!(auto.result, ApplyResult::LatePayment { refund_queued: true, .. }));
    assert_eq!(auto.exception.as_ref().unwrap().status, ExceptionStatus::RefundPending);
    let r = auto.refund.as_ref().unwrap();
    assert_eq!(r.amount, m(5000));
    assert!(r.out_refund_no.starts_with("RF"));
    let held = HOLD.book(Some(&s), None, &payment(5000, "T1"), &mut counter()).unwrap();
    assert!(matches!(held.result, ApplyResult::LatePayment { refund_queued: false, .. }));
    assert_eq!(held.exception.as_ref().unwrap().status, ExceptionStatus::Held);
    assert!(held.refund.is_none());
    assert!(held.session_paid.is_none() && held.payments.is_empty());
}

#[test]
fn wrong_amount_keeps_the_session_unpaid() {
    let s = snapshot(SessionStatus::Pending, &[5000]);
    let b = AUTO.book(Some(&s), None, &payment(4999, "T1"), &mut counter()).unwrap();
    assert!(matches!(b.result, ApplyResult::AmountMismatch { .. }));
    assert!(b.session_paid.is_none() && b.refund.is_none());
    assert_eq!(b.exception.as_ref().unwrap().kind, ExceptionKind::AmountMismatch);
    assert_eq!(s.after(&b).status, SessionStatus::Pending);
}

#[test]
fn unknown_orders_write_nothing() {
    let b = AUTO.book(None, None, &payment(5000, "T1"), &mut counter()).unwrap();
    assert_eq!(b.result, ApplyResult::UnknownOrder);
    assert!(b.is_empty());
    let mut s = snapshot(SessionStatus::Pending, &[5000]);
    s.channel_id = ChannelId::from_u128(77);
    let b = AUTO.book(Some(&s), None, &payment(5000, "T1"), &mut counter()).unwrap();
    assert_eq!(b.result, ApplyResult::UnknownOrder, "another channel's order");
}

#[test]
fn inconsistent_sessions_are_errors() {
    let mut s = snapshot(SessionStatus::Pending, &[5000, 1000]);
    s.total = m(7000);
    assert!(matches!(
        AUTO.book(Some(&s), None, &payment(7000, "T1"), &mut counter()),
        Err(ApplyError::PayablesDoNotAddUp { .. })
    ));
    let mut s = snapshot(SessionStatus::Pending, &[5000]);
    s.payables.clear();
    assert!(matches!(AUTO.book(Some(&s), None, &payment(5000, "T1"), &mut counter()), Err(ApplyError::NoPayables(_))));
}

#[test]
fn receipts_are_numbered_from_what_the_store_reserved() {
    let s = snapshot(SessionStatus::Pending, &[32000, 98000, 20000]);
    let mut b = AUTO.book(Some(&s), None, &payment(150000, "T1"), &mut counter()).unwrap();
    let wanted: Vec<_> = b.receipts_wanted().collect();
    assert_eq!(wanted.len(), 3);
    let year = wanted[0].1;
    let mut book = ReceiptBook::new([((ReceiptSeries::Payment, year), 41)]);
    b.number_receipts(&mut book).unwrap();
    let numbers: Vec<_> = b.payments.iter().map(|x| x.receipt_no.clone()).collect();
    assert_eq!(numbers, (41..44).map(|n| receipt_number(ReceiptSeries::Payment, year, n)).collect::<Vec<_>>());
    // the outbox event tells the HIS the same numbers, payable by payable
    let OutboxPayload::PaymentSucceeded { payments, .. } = &b.outbox[0].payload else { panic!("{:?}", b.outbox) };
    for p in payments {
        let mine = b.payments.iter().find(|x| x.payable.to_string() == p.payable_id).unwrap();
        assert_eq!(p.receipt_no, mine.receipt_no);
    }
    // a store that reserved too few numbers is a defect, not a receipt without a number
    let mut b = AUTO.book(Some(&s), None, &payment(150000, "T1"), &mut counter()).unwrap();
    assert!(b.number_receipts(&mut ReceiptBook::default()).is_err());
}

fn status() -> impl Strategy<Value = SessionStatus> {
    prop::sample::select(SessionStatus::ALL.to_vec())
}

proptest! {
    /// Whatever the session, the report and the history: exactly one outcome, every entry
    /// balances, money is either allocated in full to every payable or kept unallocated,
    /// and nothing but a pending session at the right amount becomes paid.
    #[test]
    fn every_booking_is_consistent(
        st in status(),
        amounts in prop::collection::vec(1i64..5_000_000, 1..8),
        delta in prop::sample::select(vec![0i64, 0, 0, 1, -1, 100]),
        booked in any::<bool>(),
        auto in any::<bool>(),
        known in any::<bool>(),
    ) {
        let s = snapshot(st, &amounts);
        let total: i64 = amounts.iter().sum();
        let amount = (total + delta).max(1);
        let rules = if auto { AUTO } else { HOLD };
        let p = payment(amount, "TX");
        let b = rules.book(known.then_some(&s), booked.then(|| BookedTxn::of(&p)).as_ref(), &p, &mut counter()).unwrap();
        if let Some(e) = &b.entry {
            let sum = Money::sum(e.postings.lines().iter().map(|l| l.amount)).unwrap();
            prop_assert_eq!(sum, Money::ZERO);
            let debit: Money = Money::sum(e.postings.lines().iter().filter(|l| l.amount.is_positive()).map(|l| l.amount)).unwrap();
            prop_assert_eq!(debit, p.amount, "the entry books exactly the money received");
        }
        match &b.result {
            ApplyResult::UnknownOrder => { prop_assert!(!known); prop_assert!(b.is_empty()); }
            ApplyResult::Duplicate => {
                prop_assert!(known && booked);
                prop_assert!(b.entry.is_none() && b.payments.is_empty() && b.provider_txn.is_none());
            }
            ApplyResult::Paid { payables, .. } => {
                prop_assert!(known && !booked && st == SessionStatus::Pending && amount == total);
                prop_assert_eq!(*payables, amounts.len());
                let paid: i64 = b.payments.iter().map(|x| x.amount.fen()).sum();
                prop_assert_eq!(paid, total);
                let distinct: std::collections::HashSet<_> = b.payments.iter().map(|x| x.payable.clone()).collect();
                prop_assert_eq!(distinct.len(), amounts.len(), "one payment per payable");
                prop_assert!(b.payables.iter().all(|t| t.from.can_become(t.to) && t.payable.kind() == PayableKind::Bill));
                prop_assert!(b.exception.is_none() && b.refund.is_none());
            }
            ApplyResult::LatePayment { refund_queued, .. } => {
                prop_assert!(known && !booked && st != SessionStatus::Pending);
                prop_assert_eq!(*refund_queued, auto);
                prop_assert_eq!(b.refund.is_some(), auto);
                prop_assert!(b.payments.is_empty() && b.session_paid.is_none());
            }
            ApplyResult::AmountMismatch { .. } => {
                prop_assert!(known && !booked && st == SessionStatus::Pending && amount != total);
                prop_assert!(b.payments.is_empty() && b.session_paid.is_none() && b.refund.is_none());
            }
            ApplyResult::TxnConflict { .. } => prop_assert!(false, "the same report is a duplicate, not a conflict"),
        }
        // applying the booking and hearing the same report again changes nothing more
        if known && !b.is_empty() {
            let again = rules.book(Some(&s.after(&b)), Some(&BookedTxn::of(&p)), &p, &mut counter()).unwrap();
            prop_assert_eq!(again.result, ApplyResult::Duplicate);
        }
    }

    /// A stream of reports for one session (repeats, other transactions, wrong amounts) pays
    /// it at most once, and every yuan received is either allocated or kept unallocated.
    #[test]
    fn a_session_is_paid_at_most_once(
        amounts in prop::collection::vec(1i64..100_000, 1..5),
        reports in prop::collection::vec((0usize..4, prop::sample::select(vec![0i64, 0, 1])), 1..12),
    ) {
        let mut s = snapshot(SessionStatus::Pending, &amounts);
        let total: i64 = amounts.iter().sum();
        let mut booked = std::collections::HashMap::new();
        let (mut paid, mut allocated, mut unallocated, mut received) = (0, 0i64, 0i64, 0i64);
        let mut ids = counter();
        for (txn, delta) in reports {
            let txn = format!("T{txn}");
            let p = payment(total + delta, &txn);
            let b = AUTO.book(Some(&s), booked.get(&txn), &p, &mut ids).unwrap();
            if b.provider_txn.is_some() {
                received += p.amount.fen();
                booked.insert(txn.clone(), BookedTxn::of(&p));
            }
            match b.result {
                ApplyResult::Paid { .. } => { paid += 1; allocated += b.payments.iter().map(|x| x.amount.fen()).sum::<i64>(); }
                ApplyResult::LatePayment { .. } | ApplyResult::AmountMismatch { .. } => unallocated += p.amount.fen(),
                _ => {}
            }
            s = s.after(&b);
        }
        prop_assert!(paid <= 1);
        prop_assert_eq!(received, allocated + unallocated);
    }
}
