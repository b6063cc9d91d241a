//! The same storage scenarios on SQLite and on PostgreSQL.

use crate::helpers::{backends, TestDb};
use clinicpay::auth::Role;
use clinicpay::billing::BillStatus;
use clinicpay::ids::{AuditId, PatientId, TypedId, UserId};
use clinicpay::ports::{AuditInput, NewAuthSession, UserRecord};
use clinicpay::services::demo::generate;
use clinicpay::views::{BillParams, BillQuery, BillSort};
use std::collections::HashSet;

/// A fixed, readable id of any kind for a test: `n` in the id's random part.
fn tid<T: TypedId>(n: u128) -> T {
    T::from_bits(n)
}

fn audit(n: u128, action: &str) -> AuditInput {
    AuditInput {
        id: tid::<AuditId>(n),
        at_ms: 1_700_000_000_000,
        actor_id: None,
        actor_name: "test".into(),
        action: action.into(),
        target_type: "user".into(),
        target_id: "usr_x".into(),
        detail: "{}".into(),
        ip: "127.0.0.1".into(),
    }
}

fn user(id: u128, name: &str) -> UserRecord {
    UserRecord {
        id: tid::<UserId>(id),
        username: name.into(),
        display_name: "测试".into(),
        role: Role::Cashier,
        password_hash: "$argon2id$dummy".into(),
        disabled: false,
        demo: false,
        created_at_ms: 1,
    }
}

async fn seeded(backend: &str) -> (TestDb, clinicpay::services::demo::DemoData) {
    let db = TestDb::new(backend).await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    let data = generate(day, 60);
    let s = db.store();
    s.insert_departments(&data.departments).await.unwrap();
    s.insert_patients(&data.patients).await.unwrap();
    s.insert_bills(&data.bills).await.unwrap();
    (db, data)
}

#[tokio::test]
async fn users_sessions_and_audit_chain() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let s = db.store();
        s.create_user(&user(1, "alice"), &audit(1, "user_created")).await.unwrap();
        let dup = s.create_user(&user(2, "alice"), &audit(2, "user_created")).await;
        assert!(matches!(dup, Err(clinicpay::ports::StoreError::Conflict(_))), "{backend}: duplicate username refused");
        let u = s.user_by_username("alice").await.unwrap().unwrap();
        assert_eq!(u.id, tid::<UserId>(1));
        assert!(s.user_by_username("bob").await.unwrap().is_none());

        let sess = NewAuthSession {
            token_hash: "h1".into(),
            user_id: tid(1),
            created_at_ms: 1_000,
            expires_at_ms: 10_000,
            ip: "127.0.0.1".into(),
            user_agent: "t".into(),
        };
        s.create_auth_session(&sess, &audit(3, "login")).await.unwrap();
        assert!(s.auth_session("h1", 5_000, i64::MAX / 2).await.unwrap().is_some());
        assert!(
            s.auth_session("h1", 10_001, i64::MAX / 2).await.unwrap().is_none(),
            "{backend}: expired session is dead"
        );
        assert!(s.auth_session("nope", 5_000, i64::MAX / 2).await.unwrap().is_none());

        // disabling is a compare-and-set and ends the sessions
        s.set_user_disabled(&tid(1), true, 2, &audit(4, "user_disabled")).await.unwrap();
        assert!(
            s.auth_session("h1", 5_000, i64::MAX / 2).await.unwrap().is_none(),
            "{backend}: sessions end on disable"
        );
        assert!(s.user_by_id(&tid(1)).await.unwrap().unwrap().disabled);

        let check = s.verify_audit_chain().await.unwrap();
        assert_eq!(check.entries, 3, "{backend}: the refused duplicate left no audit line");
        assert_eq!(check.broken_at, None);
        // append-only: the database refuses changes to the log
        assert!(
            db.exec("UPDATE audit_log SET actor_name = 'mallory'").await.is_err(),
            "{backend}: audit update refused"
        );
        assert!(db.exec("DELETE FROM audit_log").await.is_err(), "{backend}: audit delete refused");
        let log = s.list_audit(10).await.unwrap();
        assert_eq!(log.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![3, 2, 1]);
    }
}

#[tokio::test]
async fn audit_chain_is_consecutive_under_concurrency() {
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let s = db.store();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { s.append_audit(&audit(1000 + i, "x")).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let check = s.verify_audit_chain().await.unwrap();
        assert_eq!(check.entries, 40);
        assert_eq!(check.broken_at, None, "{backend}: concurrent appends still chain");
    }
}

#[tokio::test]
async fn login_throttle_counts_and_locks() {
    use clinicpay::ports::ThrottleReservation::{Refused, Reserved};
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let s = db.store();
        for i in 1..=3 {
            let r = s.throttle_reserve("user:x", 1_000 + i, 60_000, 4, 30_000).await.unwrap();
            assert_eq!(r, Reserved { attempt: i, placed_lock: false }, "{backend}");
        }
        let r = s.throttle_reserve("user:x", 1_010, 60_000, 4, 30_000).await.unwrap();
        assert_eq!(r, Reserved { attempt: 4, placed_lock: true }, "{backend}: the fourth attempt locks");
        assert_eq!(s.throttle_get("user:x").await.unwrap().locked_until_ms, 31_010);
        let r = s.throttle_reserve("user:x", 1_020, 60_000, 4, 30_000).await.unwrap();
        assert_eq!(r, Refused { locked_until_ms: 31_010 }, "{backend}: refused while locked");
        // a new window starts after the old one ends
        let r = s.throttle_reserve("user:y", 0, 60_000, 4, 30_000).await.unwrap();
        assert_eq!(r, Reserved { attempt: 1, placed_lock: false });
        let r = s.throttle_reserve("user:y", 70_000, 60_000, 4, 30_000).await.unwrap();
        assert_eq!(r, Reserved { attempt: 1, placed_lock: false }, "{backend}: window restarted");
        // a success gives its reservation (and a lock it placed) back
        s.throttle_release("user:y", false).await.unwrap();
        assert_eq!(s.throttle_get("user:y").await.unwrap().failures, 0);
        s.throttle_release("user:x", true).await.unwrap();
        assert_eq!(s.throttle_get("user:x").await.unwrap().locked_until_ms, 0, "{backend}");
        s.throttle_clear("user:y").await.unwrap();
        assert_eq!(s.throttle_get("user:y").await.unwrap().failures, 0);
    }
}

/// Issue 13 #3: a burst of parallel wrong passwords for one user gets at most `lock_after`
/// password checks (each one audited), not one per request; on PostgreSQL too, where the
/// first attempts used to lock a row that did not exist yet.
#[tokio::test]
async fn a_burst_of_parallel_guesses_is_checked_at_most_lock_after_times() {
    use clinicpay::ports::ThrottleReservation::Reserved;
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let s = db.store();
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { s.throttle_reserve("user:burst", 5_000, 60_000, 8, 30_000).await }));
        }
        let mut allowed = Vec::new();
        for t in tasks {
            if let Reserved { attempt, placed_lock } = t.await.unwrap().unwrap() {
                allowed.push((attempt, placed_lock));
            }
        }
        allowed.sort();
        assert_eq!(allowed.len(), 8, "{backend}: {allowed:?}");
        assert_eq!(allowed.iter().map(|a| a.0).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>(), "{backend}");
        assert_eq!(allowed.iter().filter(|a| a.1).count(), 1, "{backend}: one attempt placed the lock");
    }
}

#[tokio::test]
async fn bills_search_filter_page_and_sort() {
    for backend in backends() {
        let (db, data) = seeded(backend).await;
        let s = db.store();
        let all = s.list_bills(&BillQuery { page_size: 100, ..BillQuery::default() }).await.unwrap();
        assert_eq!(all.total as usize, data.bills.len(), "{backend}");
        // newest first by default
        assert!(all.items.windows(2).all(|w| w[0].created_at_ms >= w[1].created_at_ms));

        // by name
        let p = &data.patients[7];
        let q = BillQuery::parse(&BillParams { q: Some(p.name.clone()), ..Default::default() }).unwrap();
        let by_name = s.list_bills(&q).await.unwrap();
        assert!(by_name.total >= 1);
        assert!(by_name.items.iter().all(|b| b.patient_name.contains(&p.name)), "{backend}: name search");
        // by record number, exact and as a prefix
        let q = BillQuery::parse(&BillParams { q: Some(p.mrn.clone()), ..Default::default() }).unwrap();
        let by_mrn = s.list_bills(&q).await.unwrap();
        let expected = data.bills.iter().filter(|(b, _)| b.patient_id == p.id).count() as i64;
        assert_eq!(by_mrn.total, expected, "{backend}: mrn search");
        // by bill number
        let bill = &data.bills[3].0;
        let q = BillQuery::parse(&BillParams { q: Some(bill.bill_no.to_lowercase()), ..Default::default() }).unwrap();
        let by_no = s.list_bills(&q).await.unwrap();
        assert_eq!(by_no.items[0].id, bill.id, "{backend}: bill number search (case-insensitive)");
        // LIKE wildcards are literal
        let q = BillQuery::parse(&BillParams { q: Some("%".into()), ..Default::default() }).unwrap();
        assert_eq!(s.list_bills(&q).await.unwrap().total, 0, "{backend}: % is not a wildcard");

        // status filter
        let q = BillQuery::parse(&BillParams { status: Some("void".into()), ..Default::default() }).unwrap();
        let void = s.list_bills(&q).await.unwrap();
        let expected = data.bills.iter().filter(|(b, _)| b.status == BillStatus::Void).count() as i64;
        assert_eq!(void.total, expected, "{backend}: status filter");
        assert!(void.items.iter().all(|b| b.status == BillStatus::Void));

        // date range: one local day
        let q = BillQuery::parse(&BillParams {
            from: Some("2026-11-22".into()),
            to: Some("2026-11-22".into()),
            page_size: Some("100".into()),
            ..Default::default()
        })
        .unwrap();
        let today = s.list_bills(&q).await.unwrap();
        let (from, to) = q.range_ms();
        let expected = data
            .bills
            .iter()
            .filter(|(b, _)| b.created_at_ms >= from.unwrap() && b.created_at_ms < to.unwrap())
            .count() as i64;
        assert_eq!(today.total, expected, "{backend}: date range");

        // paging covers everything exactly once
        let mut seen = HashSet::new();
        let mut page = 1;
        loop {
            let q = BillQuery { page, page_size: 37, sort: BillSort::Amount, desc: false, ..BillQuery::default() };
            let r = s.list_bills(&q).await.unwrap();
            if r.items.is_empty() {
                break;
            }
            assert!(r.items.windows(2).all(|w| w[0].total <= w[1].total), "{backend}: sorted by amount");
            for b in r.items {
                assert!(seen.insert(b.id), "{backend}: no bill twice across pages");
            }
            page += 1;
        }
        assert_eq!(seen.len(), data.bills.len());
    }
}

#[tokio::test]
async fn patients_and_unpaid_bills() {
    for backend in backends() {
        let (db, data) = seeded(backend).await;
        let s = db.store();
        let p = &data.patients[3];
        let d = s.patient_detail(&p.id).await.unwrap().unwrap();
        assert_eq!(d.patient.name, p.name);
        assert!(d.patient.phone_masked.contains("****"), "{backend}: phone masked");
        let unpaid = s.unpaid_bills(&p.id).await.unwrap();
        let expected: Vec<_> =
            data.bills.iter().filter(|(b, _)| b.patient_id == p.id && b.status == BillStatus::Unpaid).collect();
        assert_eq!(unpaid.len(), expected.len());
        assert_eq!(d.patient.unpaid_count, expected.len() as i64);
        let sum: i64 = expected.iter().map(|(b, _)| b.total.fen()).sum();
        assert_eq!(d.patient.unpaid_total.fen(), sum, "{backend}: unpaid sum");

        let page = s.list_patients(Some(&p.mrn), 1, 20).await.unwrap();
        assert_eq!(page.total, 1);
        let page = s.list_patients(None, 2, 20).await.unwrap();
        assert_eq!(page.total, 60);
        assert_eq!(page.items.len(), 20);
        assert!(s
            .patient_detail(&PatientId::parse("pat_00000000000000000000000000").unwrap())
            .await
            .unwrap()
            .is_none());

        let (bill, items) = &data.bills[0];
        let detail = s.bill_detail(&bill.id).await.unwrap().unwrap();
        assert_eq!(&detail.items, items, "{backend}: items round trip");
        assert_eq!(detail.bill.total, bill.total);

        let dash = s.dashboard("2026-11-22", 0, i64::MAX).await.unwrap();
        let open = data.bills.iter().filter(|(b, _)| b.status == BillStatus::Unpaid).count() as i64;
        assert_eq!(dash.unpaid_count, open);
        assert_eq!(dash.recent_bills.len(), 8);
    }
}

#[tokio::test]
async fn database_constraints_back_the_rules() {
    for backend in backends() {
        let (db, data) = seeded(backend).await;
        let bill = &data.bills[0].0;
        // a bill's amount is fixed once issued
        let r = db.exec(&format!("UPDATE bills SET total_fen = 1 WHERE id = '{}'", bill.id)).await;
        assert!(r.is_err(), "{backend}: amount change refused");
        assert!(db.exec(&format!("DELETE FROM bill_items WHERE bill_id = '{}'", bill.id)).await.is_err());
        // item amount must be quantity × unit price
        let r = db
            .exec(&format!(
                "INSERT INTO bill_items (bill_id, line_no, category, description, quantity, unit_price_fen, amount_fen) \
                 VALUES ('{}', 99, 'drug', 'x', 2, 100, 150)",
                bill.id
            ))
            .await;
        assert!(r.is_err(), "{backend}: item arithmetic checked");
        // unknown status refused
        assert!(db.exec(&format!("UPDATE bills SET status = 'lost' WHERE id = '{}'", bill.id)).await.is_err());
        // the store refuses a bill whose total is not its items' sum
        let mut bad = data.bills[1].clone();
        bad.0.id = clinicpay::ids::BillId::from_u128(42);
        bad.0.bill_no = "B20991231-0001".into();
        bad.0.total = clinicpay::Money::from_fen(bad.0.total.fen() + 1).unwrap();
        assert!(db.store().insert_bills(&[bad]).await.is_err());

        // the ledger: an unbalanced entry cannot be sealed; sealed entries never change (the
        // bills above are already in it: issuing a bill books the receivable)
        let issued = db.scalar_i64("SELECT COUNT(*) FROM journal_entries").await;
        assert_eq!(issued, db.scalar_i64("SELECT COUNT(*) FROM bills WHERE status <> 'void'").await, "{backend}");
        let unbalanced = db
            .exec_tx(&[
                "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, unsealed, created_at) VALUES ('je_t1', 'payment', 1, 'test', 'x', '', FALSE, 'open', 1)",
                "INSERT INTO postings (entry_id, line_no, account_code, amount_fen) VALUES ('je_t1', 1, '1012.01', 100)",
                "INSERT INTO postings (entry_id, line_no, account_code, amount_fen) VALUES ('je_t1', 2, '6001', -99)",
                "UPDATE journal_entries SET sealed = TRUE, unsealed = NULL WHERE id = 'je_t1'",
            ])
            .await;
        assert!(unbalanced.is_err(), "{backend}: unbalanced entry refused at seal");
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM journal_entries").await, issued);
        db.exec_tx(&[
            "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, unsealed, created_at) VALUES ('je_t2', 'payment', 1, 'test', 'x', '', FALSE, 'open', 1)",
            "INSERT INTO postings (entry_id, line_no, account_code, amount_fen) VALUES ('je_t2', 1, '1012.01', 100)",
            "INSERT INTO postings (entry_id, line_no, account_code, amount_fen) VALUES ('je_t2', 2, '6001', -100)",
            "UPDATE journal_entries SET sealed = TRUE, unsealed = NULL WHERE id = 'je_t2'",
        ])
        .await
        .unwrap();
        assert!(db
            .exec("INSERT INTO postings (entry_id, line_no, account_code, amount_fen) VALUES ('je_t2', 3, '6001', 5)")
            .await
            .is_err());
        assert!(db.exec("UPDATE postings SET amount_fen = 1 WHERE entry_id = 'je_t2'").await.is_err());
        assert!(db.exec("DELETE FROM journal_entries WHERE id = 'je_t2'").await.is_err());
        assert!(db.exec("UPDATE journal_entries SET memo = 'x' WHERE id = 'je_t2'").await.is_err());

        // issue 13 #9: no way around the seal. An entry inserted already sealed skips the balance
        // check, so it is refused; an unmarked unsealed entry is refused; an entry left unsealed
        // (even a balanced one) makes its transaction's COMMIT fail.
        let post = |id: &str, fen: i64| {
            format!("INSERT INTO postings (entry_id, line_no, account_code, amount_fen) VALUES ('{id}', 1, '1012.01', {fen})")
        };
        let sealed_insert = db
            .exec_tx(&[
                "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, created_at) VALUES ('je_t3', 'payment', 1, 'test', 'x', '', TRUE, 1)",
            ])
            .await;
        assert!(sealed_insert.is_err(), "{backend}: an entry inserted sealed is refused");
        let unmarked = db
            .exec_tx(&[
                "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, created_at) VALUES ('je_t4', 'payment', 1, 'test', 'x', '', FALSE, 1)",
            ])
            .await;
        assert!(unmarked.is_err(), "{backend}: an unsealed entry without its mark is refused");
        let left_open = db
            .exec_tx(&[
                "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, unsealed, created_at) VALUES ('je_t5', 'payment', 1, 'test', 'x', '', FALSE, 'open', 1)",
                &post("je_t5", 100),
            ])
            .await;
        assert!(left_open.is_err(), "{backend}: a transaction leaving an entry unsealed cannot commit");
        let unmark_only = db
            .exec_tx(&[
                "INSERT INTO journal_entries (id, kind, occurred_at, ref_type, ref_id, memo, sealed, unsealed, created_at) VALUES ('je_t6', 'payment', 1, 'test', 'x', '', FALSE, 'open', 1)",
                &post("je_t6", 100),
                "UPDATE journal_entries SET unsealed = NULL WHERE id = 'je_t6'",
            ])
            .await;
        assert!(unmark_only.is_err(), "{backend}: the mark goes only with the seal");
        assert!(db.exec("INSERT INTO journal_unsealed (id) VALUES ('open')").await.is_err());
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM journal_entries").await, issued + 1, "{backend}: only je_t2");
    }
}

#[tokio::test]
async fn both_schemas_have_the_same_tables_and_columns() {
    let sqlite = TestDb::new("sqlite").await.schema().await;
    assert!(sqlite.contains_key("bills") && sqlite.contains_key("audit_log"));
    if backends().contains(&"postgres") {
        let pg = TestDb::new("postgres").await.schema().await;
        assert_eq!(sqlite.keys().collect::<Vec<_>>(), pg.keys().collect::<Vec<_>>(), "same tables");
        for (table, cols) in &sqlite {
            assert_eq!(Some(cols), pg.get(table), "columns of {table}");
        }
    }
    // and the migration folders have the same version numbers
    let versions = |dir: &str| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().split('_').next().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    assert_eq!(versions(&format!("{root}/sqlite")), versions(&format!("{root}/postgres")));
}
