//! Checkout storage on both backends: sessions over bills, exactly-once application under
//! concurrency, late and mismatched money, the ledger report.

use crate::helpers::{backends, TestDb};
use clinicpay::billing::BillStatus;
use clinicpay::checkout::apply::{ApplyResult, PaymentRules, VerifiedPayment};
use clinicpay::checkout::payable::PayableId;
use clinicpay::checkout::{EndReason, ExceptionKind, ExceptionStatus, LatePaymentPolicy};
use clinicpay::ids::{AuditId, BillId, ChannelId, NotificationId, OutTradeNo, PatientId, SessionId, TypedId};
use clinicpay::money::Money;
use clinicpay::payments::{PayAction, PayMethod, Provider, SessionStatus};
use clinicpay::ports::{
    AuditInput, ChannelRecord, CreateOutcome, IdGen, IdempotencyKey, NewNotification, NewSession, SessionRefusal, Store,
};
use clinicpay::services::demo::generate;
use server::runtime::RandomIds;
use std::sync::Arc;

fn audit() -> AuditInput {
    AuditInput {
        id: AuditId::from_bits(RandomIds.next_bits()),
        at_ms: 1,
        actor_id: None,
        actor_name: "test".into(),
        action: "channel_created".into(),
        target_type: "channel".into(),
        target_id: "x".into(),
        detail: "{}".into(),
        ip: String::new(),
    }
}

const AUTO: PaymentRules = PaymentRules { late_policy: LatePaymentPolicy::AutoRefund };

fn key(scope: &str, key: &str, fingerprint: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey { scope: scope.into(), key: key.into(), fingerprint: fingerprint.into() })
}

fn no_such_order() -> OutTradeNo {
    OutTradeNo::parse("CPNOSUCHORDER").unwrap()
}

struct World {
    db: TestDb,
    store: Arc<dyn Store>,
    channel: ChannelId,
    data: clinicpay::services::demo::DemoData,
}

async fn world(backend: &str) -> World {
    let db = TestDb::new(backend).await;
    let store = db.store();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    let data = generate(day, 30);
    store.insert_departments(&data.departments).await.unwrap();
    store.insert_patients(&data.patients).await.unwrap();
    // history bills start unpaid here: only the payment path may mark a bill paid
    let bills: Vec<_> = data
        .bills
        .iter()
        .map(|(b, items)| {
            let mut b = b.clone();
            if b.status == BillStatus::Paid {
                b.status = BillStatus::Unpaid;
            }
            (b, items.clone())
        })
        .collect();
    store.insert_bills(&bills).await.unwrap();
    let channel = ChannelId::from_bits(RandomIds.next_bits());
    store
        .insert_channel(
            &ChannelRecord {
                id: channel.clone(),
                provider: Provider::Alipay,
                name: "test".into(),
                account_id: "2021".into(),
                is_default: true,
                enabled: true,
                sandbox: true,
                settings: "{}".into(),
                secret_ciphertext: "x".into(),
                secret_key_version: 1,
                version: 1,
                created_at_ms: 1,
                updated_at_ms: 1,
            },
            &audit(),
        )
        .await
        .unwrap();
    World { db, store, channel, data }
}

impl World {
    fn unpaid_of(&self, patient: usize) -> (PatientId, Vec<BillId>) {
        let p = &self.data.patients[patient];
        let bills = self
            .data
            .bills
            .iter()
            .filter(|(b, _)| b.patient_id == p.id && b.status == BillStatus::Unpaid)
            .map(|(b, _)| b.id.clone())
            .collect();
        (p.id.clone(), bills)
    }

    fn new_session(&self, patient: &PatientId, bills: &[BillId]) -> NewSession {
        NewSession {
            id: SessionId::from_bits(RandomIds.next_bits()),
            patient_id: patient.clone(),
            channel_id: self.channel.clone(),
            provider: Provider::Alipay,
            method: PayMethod::AlipayQr,
            out_trade_no: OutTradeNo::from_bits(RandomIds.next_bits()),
            payables: bills.iter().cloned().map(PayableId::Bill).collect(),
            expires_at_ms: 10_000_000_000_000,
            created_at_ms: 1_000,
            created_by: "usr_test".into(),
            idempotency: None,
            replaces: None,
            audit: None,
        }
    }

    fn payment(&self, out_trade_no: &OutTradeNo, txn: &str, amount: Money) -> VerifiedPayment {
        VerifiedPayment {
            event_id: format!("ev-{txn}"),
            notification_id: None,
            provider: Provider::Alipay,
            channel_id: self.channel.clone(),
            out_trade_no: out_trade_no.clone(),
            provider_txn_id: txn.into(),
            amount,
            paid_at_ms: 2_000,
            received_at_ms: 2_000,
        }
    }

    async fn create(&self, s: &NewSession) -> Result<clinicpay::checkout::SessionView, SessionRefusal> {
        match self.store.create_session(s).await.unwrap() {
            Ok(CreateOutcome::Created(v)) | Ok(CreateOutcome::Existing(v)) => Ok(v),
            Err(r) => Err(r),
        }
    }

    async fn assert_books(&self, backend: &str) {
        let r = self.store.ledger_report().await.unwrap();
        assert_eq!(r.unsealed_entries, 0, "{backend}: {r:?}");
        assert_eq!(r.unbalanced_entries, 0, "{backend}: {r:?}");
        assert_eq!(r.misallocated_sessions, 0, "{backend}: {r:?}");
        assert_eq!(r.bills_paid_twice, 0, "{backend}: {r:?}");
        assert_eq!(r.bill_payment_mismatches, 0, "{backend}: {r:?}");
        assert!(r.clearing_matches_receipts, "{backend}: {r:?}");
        let sum: i64 = r.balances.iter().map(|(_, f)| f).sum();
        assert_eq!(sum, 0, "{backend}: the trial balance is zero");
    }
}

#[tokio::test]
async fn sessions_freeze_bills_and_refuse_what_cannot_be_paid() {
    for backend in backends() {
        let w = world(backend).await;
        let (patient, bills) = w.unpaid_of(0);
        let s = w.new_session(&patient, &bills);
        let v = w.create(&s).await.unwrap();
        assert_eq!(v.status, SessionStatus::Pending);
        assert_eq!(v.payables.len(), bills.len());
        let sum = Money::sum(v.payables.iter().map(|b| b.amount)).unwrap();
        assert_eq!(v.total, sum, "{backend}: total is the sum of frozen amounts");
        assert!(v.payables.iter().all(|b| b.status == BillStatus::Paying));

        // a bill is in at most one active session, and the refusal names that session
        let again = w.new_session(&patient, &bills[..1]);
        match w.create(&again).await {
            Err(SessionRefusal::InActiveSession { session_id, .. }) => {
                assert_eq!(session_id, Some(v.id.clone()), "{backend}")
            }
            other => panic!("{backend}: {other:?}"),
        }
        // bills of another patient, unknown bills, void bills
        let (other_patient, other_bills) = w.unpaid_of(1);
        assert!(matches!(w.create(&w.new_session(&patient, &other_bills)).await, Err(SessionRefusal::OtherPatient(_))));
        assert!(matches!(
            w.create(&w.new_session(&other_patient, &[BillId::parse("bill_00000000000000000000000000").unwrap()]))
                .await,
            Err(SessionRefusal::UnknownPayable(_))
        ));
        let void = w.data.bills.iter().find(|(b, _)| b.status == BillStatus::Void).unwrap();
        let vp = void.0.patient_id.clone();
        assert!(matches!(
            w.create(&w.new_session(&vp, std::slice::from_ref(&void.0.id))).await,
            Err(SessionRefusal::NotPayable { .. })
        ));
        assert!(matches!(
            w.create(&w.new_session(&PatientId::parse("pat_00000000000000000000000000").unwrap(), &bills)).await,
            Err(SessionRefusal::UnknownPatient)
        ));
        // nothing of the refused attempts was written
        assert_eq!(w.db.scalar_i64("SELECT COUNT(*) FROM checkout_sessions").await, 1);

        // ending releases the bills; ending twice is refused
        assert!(w.store.end_session(&v.id, EndReason::Cancelled, 5_000, true).await.unwrap().is_ok());
        assert_eq!(
            w.store.end_session(&v.id, EndReason::Expired, 6_000, true).await.unwrap(),
            Err(SessionStatus::Cancelled)
        );
        let after = w.store.session(&v.id).await.unwrap().unwrap();
        assert!(after.payables.iter().all(|b| b.status == BillStatus::Unpaid), "{backend}: bills released");
        assert!(w.create(&w.new_session(&patient, &bills)).await.is_ok(), "{backend}: payable again");
    }
}

#[tokio::test]
async fn idempotency_keys_return_the_same_session_or_refuse() {
    for backend in backends() {
        let w = world(backend).await;
        let (patient, bills) = w.unpaid_of(2);
        let mut s = w.new_session(&patient, &bills);
        s.idempotency = key("usr_1", "key-1", "fp-a");
        let first = w.create(&s).await.unwrap();
        let mut retry = w.new_session(&patient, &bills);
        retry.idempotency = key("usr_1", "key-1", "fp-a");
        match w.store.create_session(&retry).await.unwrap() {
            Ok(CreateOutcome::Existing(v)) => assert_eq!(v.id, first.id, "{backend}"),
            other => panic!("{backend}: {other:?}"),
        }
        let mut misuse = w.new_session(&patient, &bills[..1]);
        misuse.idempotency = key("usr_1", "key-1", "fp-b");
        assert!(matches!(
            w.store.create_session(&misuse).await.unwrap(),
            Err(SessionRefusal::IdempotencyReused { .. })
        ));
    }
}

#[tokio::test]
async fn concurrent_sessions_for_one_bill_only_one_wins() {
    for backend in backends() {
        let w = Arc::new(world(backend).await);
        let (patient, bills) = w.unpaid_of(3);
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let w = w.clone();
            let s = w.new_session(&patient, &bills[..1]);
            tasks.push(tokio::spawn(async move { w.create(&s).await.is_ok() }));
        }
        let mut wins = 0;
        for t in tasks {
            if t.await.unwrap() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1, "{backend}: one active session per bill");
    }
}

#[tokio::test]
async fn a_payment_is_applied_exactly_once_under_concurrent_delivery() {
    for backend in backends() {
        let w = Arc::new(world(backend).await);
        let (patient, bills) = w.unpaid_of(4);
        let v = w.create(&w.new_session(&patient, &bills)).await.unwrap();
        let p = w.payment(&v.out_trade_no, "TXN-1", v.total);
        let mut tasks = Vec::new();
        for i in 0..50 {
            let w = w.clone();
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    vec![w.store.apply_payment(&p, &AUTO, &RandomIds).await.unwrap()]
                } else {
                    // group commit: two deliveries of the same payment in one batch
                    w.store
                        .apply_payments(&[p.clone(), p], &AUTO, &RandomIds)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|r| r.unwrap())
                        .collect()
                }
            }));
        }
        let mut paid = 0;
        for t in tasks {
            for r in t.await.unwrap() {
                match r {
                    ApplyResult::Paid { payables: n, .. } => {
                        paid += 1;
                        assert_eq!(n, bills.len());
                    }
                    ApplyResult::Duplicate => {}
                    other => panic!("{backend}: {other:?}"),
                }
            }
        }
        assert_eq!(paid, 1, "{backend}: one effect");
        let after = w.store.session(&v.id).await.unwrap().unwrap();
        assert_eq!(after.status, SessionStatus::Paid);
        assert!(after.payables.iter().all(|b| b.status == BillStatus::Paid && b.receipt_no.is_some()));
        assert_eq!(
            w.db.scalar_i64(&format!("SELECT COUNT(*) FROM payments WHERE session_id = '{}'", v.id)).await,
            bills.len() as i64
        );
        assert_eq!(w.db.scalar_i64("SELECT COUNT(*) FROM provider_transactions").await, 1);
        assert_eq!(w.db.scalar_i64("SELECT COUNT(*) FROM outbox WHERE topic = 'payment.succeeded'").await, 1);
        // the same money through status sync (another event id) is still the same transaction
        let mut via_sync = p.clone();
        via_sync.event_id = "query:TXN-1".into();
        assert_eq!(w.store.apply_payment(&via_sync, &AUTO, &RandomIds).await.unwrap(), ApplyResult::Duplicate);
        w.assert_books(backend).await;
        let report = w.store.ledger_report().await.unwrap();
        let clearing = report.balances.iter().find(|(a, _)| a == "1012.01").unwrap().1;
        assert_eq!(clearing, v.total.fen(), "{backend}: Alipay clearing holds the money");
    }
}

/// Warnings logged on this thread while installed (the tests run on a current-thread runtime).
#[derive(Clone, Default)]
struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let me = self.clone();
        let subscriber =
            tracing_subscriber::fmt().with_writer(move || me.clone()).with_max_level(tracing::Level::WARN).finish();
        tracing::subscriber::set_default(subscriber)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_batch_writes_the_ordinary_case_together_and_everything_else_as_if_alone() {
    for backend in backends() {
        let w = world(backend).await;
        let mut patients = (0..w.data.patients.len()).map(|i| w.unpaid_of(i)).filter(|(_, b)| !b.is_empty());
        // three ordinary payments, each from a stored notification
        let mut ordinary = Vec::new();
        let mut sessions = Vec::new();
        let stored = |nid: NotificationId| NewNotification {
            id: nid,
            provider: Provider::Alipay,
            received_at_ms: 1_900,
            remote_addr: "127.0.0.1".into(),
            content_type: "application/x-www-form-urlencoded".into(),
            headers: "{}".into(),
            body: b"x".to_vec(),
        };
        let mut notifications = Vec::new();
        for i in 0..3 {
            let (patient, bills) = patients.next().unwrap();
            let v = w.create(&w.new_session(&patient, &bills)).await.unwrap();
            let nid = NotificationId::from_bits(RandomIds.next_bits());
            notifications.push(stored(nid.clone()));
            let mut p = w.payment(&v.out_trade_no, &format!("TXN-B{i}"), v.total);
            p.notification_id = Some(nid);
            ordinary.push(p);
            sessions.push((v, bills.len()));
        }
        // stored together (group commit of raw notifications)
        w.store.insert_notifications(&notifications).await.unwrap();
        let batch_ids = notifications.iter().map(|n| format!("'{}'", n.id)).collect::<Vec<_>>().join(", ");
        assert_eq!(
            w.db.scalar_i64(&format!(
                "SELECT COUNT(*) FROM notifications WHERE id IN ({batch_ids}) AND status = 'received'"
            ))
            .await,
            3
        );
        // the first delivered twice (another notification of the same payment)
        let mut repeat = ordinary[0].clone();
        let repeat_id = NotificationId::from_bits(RandomIds.next_bits());
        repeat.notification_id = Some(repeat_id.clone());
        w.store.insert_notification(&stored(repeat_id.clone())).await.unwrap();
        // and in the same batch: a repeat, a wrong amount, an unknown order, late money
        let (patient, bills) = patients.next().unwrap();
        let v = w.create(&w.new_session(&patient, &bills)).await.unwrap();
        let mismatch = w.payment(&v.out_trade_no, "TXN-BM", v.total.checked_sub(Money::from_fen(1).unwrap()).unwrap());
        let unknown = w.payment(&no_such_order(), "TXN-BU", v.total);
        let (patient, bills) = patients.next().unwrap();
        let late_v = w.create(&w.new_session(&patient, &bills)).await.unwrap();
        w.store.end_session(&late_v.id, EndReason::Cancelled, 1_500, true).await.unwrap().unwrap();
        let late = w.payment(&late_v.out_trade_no, "TXN-BL", late_v.total);
        let batch =
            vec![ordinary[0].clone(), mismatch, ordinary[1].clone(), repeat, unknown, ordinary[2].clone(), late];
        let log = CapturedLog::default();
        let results: Vec<ApplyResult> = {
            let _guard = log.install();
            w.store.apply_payments(&batch, &AUTO, &RandomIds).await.unwrap().into_iter().map(|r| r.unwrap()).collect()
        };
        assert!(
            !log.text().contains("the batch write failed"),
            "{backend}: the set-based path was taken: {}",
            log.text()
        );
        let expect_paid = |r: &ApplyResult, n: usize| matches!(r, ApplyResult::Paid { payables, .. } if *payables == n);
        assert!(expect_paid(&results[0], sessions[0].1), "{backend}: {results:?}");
        assert!(matches!(results[1], ApplyResult::AmountMismatch { .. }), "{backend}: {results:?}");
        assert!(expect_paid(&results[2], sessions[1].1), "{backend}: {results:?}");
        assert_eq!(results[3], ApplyResult::Duplicate, "{backend}");
        assert_eq!(results[4], ApplyResult::UnknownOrder, "{backend}");
        assert!(expect_paid(&results[5], sessions[2].1), "{backend}: {results:?}");
        assert!(matches!(results[6], ApplyResult::LatePayment { refund_queued: true, .. }), "{backend}: {results:?}");

        // the rows the one-by-one path writes, for each ordinary payment
        for (v, n) in &sessions {
            let after = w.store.session(&v.id).await.unwrap().unwrap();
            assert_eq!(after.status, SessionStatus::Paid, "{backend}");
            assert!(after.payables.iter().all(|b| b.status == BillStatus::Paid && b.receipt_no.is_some()), "{backend}");
            let q = |t: &str| format!("SELECT COUNT(*) FROM {t} WHERE session_id = '{}'", v.id);
            assert_eq!(w.db.scalar_i64(&q("payments")).await, *n as i64, "{backend}");
            assert_eq!(w.db.scalar_i64(&q("provider_transactions")).await, 1, "{backend}");
            assert_eq!(
                w.db.scalar_i64(&format!(
                    "SELECT COUNT(*) FROM session_payables WHERE session_id = '{}' AND active = TRUE",
                    v.id
                ))
                .await,
                0,
                "{backend}: the bills are released"
            );
            assert_eq!(
                w.db.scalar_i64(&format!(
                    "SELECT COUNT(*) FROM outbox WHERE topic = 'payment.succeeded' AND aggregate_id = '{}'",
                    v.id
                ))
                .await,
                1,
                "{backend}"
            );
        }
        assert_eq!(
            w.db.scalar_i64(&format!(
                "SELECT COUNT(*) FROM notifications WHERE id IN ({batch_ids}) AND status = 'applied' \
                 AND event_id LIKE 'ev-TXN-B%' AND out_trade_no IS NOT NULL AND processed_at = 2000"
            ))
            .await,
            3,
            "{backend}: each notification records its outcome in the same transaction"
        );
        assert_eq!(
            w.db.scalar_i64(&format!(
                "SELECT COUNT(*) FROM notifications WHERE id = '{repeat_id}' AND status = 'duplicate'"
            ))
            .await,
            1,
            "{backend}"
        );
        assert_eq!(
            w.db.scalar_i64(
                "SELECT COUNT(*) FROM provider_events WHERE event_id LIKE 'ev-TXN-B_' AND outcome = 'applied'"
            )
            .await,
            3,
            "{backend}"
        );
        w.assert_books(backend).await;

        // delivered again, all together: nothing changes
        let again = w.store.apply_payments(&ordinary, &AUTO, &RandomIds).await.unwrap();
        assert!(again.into_iter().all(|r| r.unwrap() == ApplyResult::Duplicate), "{backend}");
        assert_eq!(w.db.scalar_i64("SELECT COUNT(*) FROM outbox WHERE topic = 'payment.succeeded'").await, 3);
        w.assert_books(backend).await;
    }
}

#[tokio::test]
async fn late_and_mismatched_money_is_kept_and_explained() {
    for backend in backends() {
        let w = world(backend).await;
        // late: the session was cancelled, then the money arrived
        let (patient, bills) = w.unpaid_of(5);
        let v = w.create(&w.new_session(&patient, &bills)).await.unwrap();
        w.store.end_session(&v.id, EndReason::Cancelled, 1_500, true).await.unwrap().unwrap();
        let r =
            w.store.apply_payment(&w.payment(&v.out_trade_no, "TXN-LATE", v.total), &AUTO, &RandomIds).await.unwrap();
        let ApplyResult::LatePayment { refund_queued, .. } = r else { panic!("{backend}: {r:?}") };
        assert!(refund_queued);
        let after = w.store.session(&v.id).await.unwrap().unwrap();
        assert_eq!(after.status, SessionStatus::Cancelled, "{backend}: a cancelled session stays cancelled");
        assert!(after.payables.iter().all(|b| b.status == BillStatus::Unpaid), "{backend}: no bill paid by late money");
        let exc = w.store.list_exceptions(true, 10).await.unwrap();
        assert_eq!(exc.len(), 1);
        assert_eq!(exc[0].kind, ExceptionKind::LatePayment);
        assert_eq!(exc[0].status, ExceptionStatus::RefundPending);
        let refunds = w.store.claim_refunds(10_000, 60_000, 10).await.unwrap();
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].amount, v.total);
        // the refund succeeds: money leaves unallocated receipts, the exception is closed
        w.store
            .refund_progress(
                &refunds[0].id,
                &clinicpay::ports::RefundProgress::Succeeded { provider_refund_id: None },
                11_000,
                &RandomIds,
            )
            .await
            .unwrap();
        // a repeated report changes nothing
        w.store
            .refund_progress(
                &refunds[0].id,
                &clinicpay::ports::RefundProgress::Succeeded { provider_refund_id: None },
                12_000,
                &RandomIds,
            )
            .await
            .unwrap();
        let exc = w.store.list_exceptions(false, 10).await.unwrap();
        assert_eq!(exc[0].status, ExceptionStatus::Refunded);
        let report = w.store.ledger_report().await.unwrap();
        assert_eq!(
            report.balances.iter().find(|(a, _)| a == "2241").map(|x| x.1).unwrap_or(0),
            0,
            "{backend}: nothing left unallocated"
        );

        // mismatch: the session stays unpaid, the money is recorded and held
        let (patient, bills) = w.unpaid_of(6);
        let v = w.create(&w.new_session(&patient, &bills)).await.unwrap();
        let wrong = v.total.checked_sub(Money::from_fen(1).unwrap()).unwrap();
        let r =
            w.store.apply_payment(&w.payment(&v.out_trade_no, "TXN-WRONG", wrong), &AUTO, &RandomIds).await.unwrap();
        assert!(matches!(r, ApplyResult::AmountMismatch { .. }), "{backend}: {r:?}");
        assert_eq!(w.store.session(&v.id).await.unwrap().unwrap().status, SessionStatus::Pending);
        let held: Vec<_> = w
            .store
            .list_exceptions(true, 10)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == ExceptionKind::AmountMismatch)
            .collect();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].status, ExceptionStatus::Held);
        assert_eq!(held[0].amount, wrong);

        // unknown order: nothing written
        let before = w.db.scalar_i64("SELECT COUNT(*) FROM provider_transactions").await;
        let r = w.store.apply_payment(&w.payment(&no_such_order(), "TXN-X", v.total), &AUTO, &RandomIds).await.unwrap();
        assert_eq!(r, ApplyResult::UnknownOrder);
        assert_eq!(w.db.scalar_i64("SELECT COUNT(*) FROM provider_transactions").await, before);
        w.assert_books(backend).await;
    }
}

#[tokio::test]
async fn workers_claim_under_leases() {
    for backend in backends() {
        let w = world(backend).await;
        let (patient, bills) = w.unpaid_of(7);
        let mut s = w.new_session(&patient, &bills);
        s.expires_at_ms = 100_000;
        let v = w.create(&s).await.unwrap();
        w.store.set_pay_action(&v.id, &PayAction::QrCode("https://qr.example/x".into()), 1_000).await.unwrap();
        // due for a status query after 15 s; claimed once per lease
        assert!(w.store.claim_syncs(10_000, 60_000, 10).await.unwrap().is_empty());
        assert_eq!(w.store.claim_syncs(20_000, 60_000, 10).await.unwrap().len(), 1);
        assert!(w.store.claim_syncs(20_001, 60_000, 10).await.unwrap().is_empty(), "{backend}: leased");
        // expiry ends it and queues the close at the provider
        assert!(w.store.expire_sessions(50_000, 10).await.unwrap().is_empty());
        assert_eq!(w.store.expire_sessions(100_001, 10).await.unwrap(), vec![v.id.clone()]);
        let closes = w.store.claim_closes(100_002, 60_000, 10).await.unwrap();
        assert_eq!(closes.len(), 1);
        assert!(w.store.claim_closes(100_003, 60_000, 10).await.unwrap().is_empty(), "{backend}: leased");
        w.store.mark_closed_at_provider(&v.id).await.unwrap();
        assert!(w.store.claim_closes(500_000, 60_000, 10).await.unwrap().is_empty());
        let after = w.store.session(&v.id).await.unwrap().unwrap();
        assert_eq!(after.status, SessionStatus::Expired);
        assert!(after.payables.iter().all(|b| b.status == BillStatus::Unpaid));
    }
}

/// Issue 13 #1: a refund we gave up on (WeChat's REFUND.ABNORMAL, five failed submissions) that
/// the provider later reports as succeeded is booked; a refund decided again after a failure
/// is the same refund submitted again, never a second one.
#[tokio::test]
async fn a_failed_refund_that_later_succeeds_is_booked_and_never_doubled() {
    use clinicpay::checkout::ProviderRefundStatus;
    use clinicpay::ports::ExceptionDecision;
    use clinicpay::ports::RefundProgress;
    for backend in backends() {
        let w = world(backend).await;
        let unallocated =
            |r: &clinicpay::ports::LedgerReport| r.balances.iter().find(|(a, _)| a == "2241").map(|x| x.1).unwrap_or(0);
        // late money, refunded automatically; the provider says the refund failed
        let (patient, bills) = w.unpaid_of(5);
        let v = w.create(&w.new_session(&patient, &bills)).await.unwrap();
        w.store.end_session(&v.id, EndReason::Cancelled, 1_500, true).await.unwrap().unwrap();
        w.store.apply_payment(&w.payment(&v.out_trade_no, "TXN-LATE1", v.total), &AUTO, &RandomIds).await.unwrap();
        let refund = w.store.claim_refunds(10_000, 60_000, 10).await.unwrap().remove(0);
        let failed = RefundProgress::Failed { error: "REFUND.ABNORMAL".into() };
        w.store.refund_progress(&refund.id, &failed, 11_000, &RandomIds).await.unwrap();
        let exc = w.store.list_exceptions(true, 10).await.unwrap();
        assert_eq!(exc[0].status, ExceptionStatus::Open, "{backend}: back to a person");
        assert_eq!(
            unallocated(&w.store.ledger_report().await.unwrap()),
            -v.total.fen(),
            "{backend}: held as a liability"
        );
        // ... and later that it succeeded after all: the books follow the money
        let ok = RefundProgress::Succeeded { provider_refund_id: Some("5030000000001".into()) };
        w.store.refund_progress(&refund.id, &ok, 20_000, &RandomIds).await.unwrap();
        w.store.refund_progress(&refund.id, &ok, 21_000, &RandomIds).await.unwrap();
        w.store.refund_progress(&refund.id, &failed, 22_000, &RandomIds).await.unwrap();
        let succeeded =
            w.db.scalar_i64(&format!(
                "SELECT COUNT(*) FROM provider_refunds WHERE id = '{}' AND status = '{}'",
                refund.id,
                ProviderRefundStatus::Succeeded.as_str()
            ))
            .await;
        assert_eq!(succeeded, 1, "{backend}: a success is never undone");
        assert_eq!(unallocated(&w.store.ledger_report().await.unwrap()), 0, "{backend}: refunded once");
        assert_eq!(
            w.db.scalar_i64("SELECT COUNT(*) FROM journal_entries WHERE kind = 'unallocated_refund'").await,
            1,
            "{backend}: one refund entry"
        );
        let exc = w.store.list_exceptions(false, 10).await.unwrap();
        assert_eq!(exc[0].status, ExceptionStatus::Refunded, "{backend}");
        w.assert_books(backend).await;

        // a failed refund decided again by finance: the same refund goes again
        let (patient, bills) = w.unpaid_of(6);
        let v = w.create(&w.new_session(&patient, &bills)).await.unwrap();
        w.store.end_session(&v.id, EndReason::Cancelled, 30_000, true).await.unwrap().unwrap();
        w.store.apply_payment(&w.payment(&v.out_trade_no, "TXN-LATE2", v.total), &AUTO, &RandomIds).await.unwrap();
        let first = w.store.claim_refunds(40_000, 60_000, 10).await.unwrap().remove(0);
        w.store.refund_progress(&first.id, &failed, 41_000, &RandomIds).await.unwrap();
        let open = w.store.list_exceptions(true, 10).await.unwrap();
        let e = open.iter().find(|e| e.out_trade_no == v.out_trade_no.as_str()).unwrap();
        w.store
            .decide_exception(&e.id, ExceptionDecision::Refund, "try again", "finance", 50_000, &RandomIds, &audit())
            .await
            .unwrap()
            .unwrap();
        let again = w.store.claim_refunds(60_000, 60_000, 10).await.unwrap();
        assert_eq!(again.len(), 1, "{backend}");
        assert_eq!(
            (&again[0].id, &again[0].out_refund_no),
            (&first.id, &first.out_refund_no),
            "{backend}: same refund"
        );
        assert_eq!(
            w.db.scalar_i64(&format!(
                "SELECT COUNT(*) FROM provider_refunds WHERE out_trade_no = '{}'",
                v.out_trade_no
            ))
            .await,
            1,
            "{backend}: never a second refund of the same money"
        );
        w.store.refund_progress(&first.id, &ok, 61_000, &RandomIds).await.unwrap();
        assert_eq!(unallocated(&w.store.ledger_report().await.unwrap()), 0, "{backend}");
        w.assert_books(backend).await;
    }
}

/// Issue 13 #4: on PostgreSQL, parallel requests with the same idempotency key all get the one
/// session (the second used to get a conflict), and requests naming the same bills in opposite
/// orders never deadlock: one gets the session, the others are told the bills are taken.
#[tokio::test]
async fn parallel_creations_share_one_key_and_never_deadlock() {
    for backend in backends() {
        let w = world(backend).await;
        // patients with several unpaid bills
        let several: Vec<usize> = (0..w.data.patients.len()).filter(|&i| w.unpaid_of(i).1.len() >= 2).take(7).collect();
        assert_eq!(several.len(), 7, "{backend}: the demo data has patients with several bills");
        let (patient, bills) = w.unpaid_of(several[0]);
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let mut s = w.new_session(&patient, &bills);
            s.idempotency = key("cashier:usr_test", "same-click", "fp-1");
            let store = w.store.clone();
            tasks.push(tokio::spawn(async move { store.create_session(&s).await }));
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Ok(CreateOutcome::Created(v))) => {
                    created += 1;
                    ids.insert(v.id);
                }
                Ok(Ok(CreateOutcome::Existing(v))) => {
                    ids.insert(v.id);
                }
                other => panic!("{backend}: a retry of the same request must get the same session: {other:?}"),
            }
        }
        assert_eq!((created, ids.len()), (1, 1), "{backend}");

        // the same bills in opposite orders, many times over, in parallel
        for (round, &i) in several[1..].iter().enumerate() {
            let (patient, mut bills) = w.unpaid_of(i);
            bills.truncate(3);
            let mut reversed = bills.clone();
            reversed.reverse();
            let mut tasks = Vec::new();
            for j in 0..6 {
                let s = w.new_session(&patient, if j % 2 == 0 { &bills } else { &reversed });
                let store = w.store.clone();
                tasks.push(tokio::spawn(async move { store.create_session(&s).await }));
            }
            let mut sessions = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(Ok(CreateOutcome::Created(_))) => sessions += 1,
                    Ok(Err(SessionRefusal::InActiveSession { .. })) => {}
                    other => panic!("{backend}: round {round}: {other:?}"),
                }
            }
            assert_eq!(sessions, 1, "{backend}: round {round}: the bills are in exactly one session");
        }
    }
}

/// Issue 13 #11: a provider transaction id already booked, reported for another order (as when
/// an in-process sandbox's ids restarted), books nothing, leaves the session pending and opens an
/// exception a person sees, once however often it is heard; it used to be dropped as "duplicate".
#[tokio::test]
async fn a_booked_transaction_reported_for_another_order_is_an_exception() {
    for backend in backends() {
        let w = world(backend).await;
        let (p1, b1) = w.unpaid_of(5);
        let first = w.create(&w.new_session(&p1, &b1)).await.unwrap();
        let paid = w.payment(&first.out_trade_no, "TXN-SAME", first.total);
        let r = w.store.apply_payment(&paid, &AUTO, &RandomIds).await.unwrap();
        assert!(matches!(r, ApplyResult::Paid { .. }), "{backend}");
        let (p2, b2) = w.unpaid_of(6);
        let second = w.create(&w.new_session(&p2, &b2)).await.unwrap();
        let report = w.payment(&second.out_trade_no, "TXN-SAME", second.total);
        for _ in 0..3 {
            let r = w.store.apply_payment(&report, &AUTO, &RandomIds).await.unwrap();
            assert!(matches!(r, ApplyResult::TxnConflict { .. }), "{backend}: {r:?}");
        }
        // and in a batch, beside an ordinary payment
        let (p3, b3) = w.unpaid_of(7);
        let third = w.create(&w.new_session(&p3, &b3)).await.unwrap();
        let batch = [report.clone(), w.payment(&third.out_trade_no, "TXN-THIRD", third.total)];
        let rs = w.store.apply_payments(&batch, &AUTO, &RandomIds).await.unwrap();
        assert!(matches!(rs[0].as_ref().unwrap(), ApplyResult::TxnConflict { .. }), "{backend}: {rs:?}");
        assert!(matches!(rs[1].as_ref().unwrap(), ApplyResult::Paid { .. }), "{backend}: {rs:?}");

        assert_eq!(w.store.session(&second.id).await.unwrap().unwrap().status, SessionStatus::Pending, "{backend}");
        let open = w.store.list_exceptions(true, 10).await.unwrap();
        let conflicts: Vec<_> = open.iter().filter(|e| e.kind == ExceptionKind::TxnConflict).collect();
        assert_eq!(conflicts.len(), 1, "{backend}: once, however often heard: {open:?}");
        let e = conflicts[0];
        assert_eq!((e.status, e.out_trade_no.as_str()), (ExceptionStatus::Open, second.out_trade_no.as_str()));
        assert!(e.detail.contains(first.out_trade_no.as_str()), "{backend}: names the order it was booked for");
        assert_eq!(
            w.db.scalar_i64("SELECT COUNT(*) FROM provider_transactions WHERE provider_txn_id = 'TXN-SAME'").await,
            1,
            "{backend}: booked once"
        );
        w.assert_books(backend).await;
    }
}
