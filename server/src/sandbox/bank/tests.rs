//! The bank sandbox driven through our client's wire code (`gateways/bank/wire.rs`): requests
//! are signed and answers verified by the client's reading of the protocol, the sandbox checks
//! with its own.

use super::*;
use crate::crypto::random_alnum;
use crate::crypto::test_keys::*;
use crate::gateways::bank::wire as client;
use crate::sandbox::SandboxSettings;
use client::Params;

const M: &str = "M100001";

async fn sandbox() -> BankSandbox {
    let settings = SandboxSettings {
        base_url: "http://127.0.0.1:9/".into(),
        time_scale_permille: 1,
        key_dir: None,
        state_file: None,
    };
    let ctx = SandboxCtx::open(settings).await.unwrap().for_sandbox();
    let s = BankSandbox::new(ctx).unwrap();
    let bank_pem = s.register_merchant(M, MERCHANT_PUBLIC).await.unwrap();
    assert_eq!(bank_pem, s.bank_public_key());
    s
}

fn merchant_key() -> PrivateKey {
    PrivateKey::parse(MERCHANT_PRIVATE).unwrap()
}

fn request(fields: &[(&str, &str)]) -> Params {
    let mut p: Params = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    p.entry("merchant_id".into()).or_insert_with(|| M.into());
    p.entry("timestamp".into()).or_insert_with(|| client::fmt_time(now_ms()));
    p.entry("nonce".into()).or_insert_with(|| random_alnum(24));
    p
}

fn signed(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut p = request(fields);
    client::sign(&mut p, &merchant_key());
    client::to_json(&p).into_bytes()
}

/// Calls the API and checks the answer is signed by the bank.
async fn call_raw(s: &BankSandbox, op: &str, ct: &str, body: &[u8]) -> Params {
    let text = s.api(op, ct, body).await;
    let p = client::parse_flat(text.as_bytes()).unwrap();
    let bank = PublicKey::parse(&s.bank_public_key()).unwrap();
    assert!(client::verify(&p, &bank), "answers are signed by the bank: {text}");
    assert!(client::parse_time(&p["timestamp"]).is_some());
    p
}

async fn call(s: &BankSandbox, op: &str, fields: &[(&str, &str)]) -> Params {
    call_raw(s, op, "application/json", &signed(fields)).await
}

fn code(p: &Params) -> &str {
    p["code"].as_str()
}

fn expire() -> String {
    client::fmt_time(now_ms() + 15 * 60_000)
}

async fn create(s: &BankSandbox, otn: &str, fen: &str) -> Params {
    let exp = expire();
    call(
        s,
        "create",
        &[
            ("out_trade_no", otn),
            ("amount_fen", fen),
            ("currency", "156"),
            ("subject", "门诊缴费"),
            ("notify_url", "http://127.0.0.1:9/notify/bank"),
            ("return_url", "http://127.0.0.1:9/done?x=1&y=2"),
            ("expire_time", &exp),
        ],
    )
    .await
}

async fn refund_status(s: &BankSandbox, no: &str, refund_no: &str) -> String {
    call(s, "refund_query", &[("out_trade_no", no), ("out_refund_no", refund_no)]).await["refund_status"].clone()
}

#[test]
fn schedule_and_acknowledgement() {
    assert_eq!(BANK_SCHEDULE, [15, 60, 300, 900, 3600, 7200, 21600, 43200]);
    let n = BankNotifier(Arc::new(PrivateKey::generate().unwrap()));
    assert!(n.accepted(200, br#"{"code":"SUCCESS"}"#));
    assert!(n.accepted(200, br#" {"code" : "SUCCESS", "x": 1} "#));
    assert!(!n.accepted(200, br#"{"code":"FAIL"}"#));
    assert!(!n.accepted(200, b"success"));
    assert!(!n.accepted(204, br#"{"code":"SUCCESS"}"#));
    assert!(!n.accepted(500, br#"{"code":"SUCCESS"}"#));
}

#[tokio::test]
async fn every_attempt_is_stamped_and_signed_afresh() {
    let key = Arc::new(PrivateKey::generate().unwrap());
    let n = BankNotifier(key.clone());
    let (headers, body) = n.attempt("", br#"{"event":"PAYMENT_SUCCESS","notify_id":"BN1"}"#);
    assert_eq!(headers, vec![("content-type".to_string(), "application/json; charset=utf-8".to_string())]);
    let p = client::parse_flat(&body).unwrap();
    assert!(client::verify(&p, &key.public_key()), "the client accepts the signature");
    assert!(client::parse_time(&p["timestamp"]).is_some());
    assert_eq!(p["notify_id"], "BN1");
}

#[tokio::test]
async fn registration_is_checked() {
    let s = sandbox().await;
    assert!(s.register_merchant("bad id", MERCHANT_PUBLIC).await.is_err());
    assert!(s.register_merchant("M2", "not a key").await.is_err());
    assert!(s.register_merchant("M2", &s.bank_public_key()).await.is_err(), "the bank's own key");
    let bare: String = MERCHANT_PUBLIC.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(s.register_merchant("M2", &bare).await.is_ok());
}

#[tokio::test]
async fn request_checks_in_order() {
    let s = sandbox().await;
    let body = signed(&[("out_trade_no", "T1")]);
    assert_eq!(code(&call_raw(&s, "query", "text/plain", &body).await), "PARAM_ERROR");
    let p = call_raw(&s, "query", "application/json", br#"{"merchant_id":"M100001","n":1}"#).await;
    assert_eq!(code(&p), "PARAM_ERROR");
    assert_eq!(p.get("merchant_id"), None, "nothing echoed from an unparseable body");

    let p = call(&s, "query", &[("merchant_id", "M404"), ("out_trade_no", "T1")]).await;
    assert_eq!(code(&p), "UNKNOWN_MERCHANT");

    // signed with the wrong key; the nonce is echoed
    let mut req = request(&[("out_trade_no", "T1"), ("nonce", "forgedforgedforged")]);
    client::sign(&mut req, &PrivateKey::parse(PROVIDER_PRIVATE).unwrap());
    let p = call_raw(&s, "query", "application/json", client::to_json(&req).as_bytes()).await;
    assert_eq!(
        (code(&p), p["nonce"].as_str(), p["merchant_id"].as_str()),
        ("INVALID_SIGNATURE", "forgedforgedforged", M)
    );
    // tampered after signing
    let mut req = request(&[("out_trade_no", "T1")]);
    client::sign(&mut req, &merchant_key());
    req.insert("out_trade_no".into(), "T2".into());
    let p = call_raw(&s, "query", "application/json", client::to_json(&req).as_bytes()).await;
    assert_eq!(code(&p), "INVALID_SIGNATURE");

    let old = client::fmt_time(now_ms() - 6 * 60_000);
    assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1"), ("timestamp", &old)]).await), "STALE");
    let future = client::fmt_time(now_ms() + 6 * 60_000);
    assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1"), ("timestamp", &future)]).await), "STALE");
    let near = client::fmt_time(now_ms() - 4 * 60_000);
    assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1"), ("timestamp", &near)]).await), "ORDER_NOT_EXIST");

    let body = signed(&[("out_trade_no", "T1"), ("nonce", "onceonlyonceonly")]);
    assert_eq!(code(&call_raw(&s, "query", "application/json", &body).await), "ORDER_NOT_EXIST");
    let p = call_raw(&s, "query", "application/json", &body).await;
    assert_eq!((code(&p), p["nonce"].as_str()), ("REPLAY", "onceonlyonceonly"));
    // the same nonce on another operation is a replay too
    assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T1"), ("nonce", "onceonlyonceonly")]).await), "REPLAY");

    assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1"), ("nonce", "short")]).await), "PARAM_ERROR");
    assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1"), ("extra", "1")]).await), "PARAM_ERROR");
    assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T 1")]).await), "PARAM_ERROR");
    assert_eq!(code(&call(&s, "query", &[]).await), "PARAM_ERROR");
}

#[tokio::test]
async fn nonces_are_forgotten_after_ten_minutes() {
    let s = sandbox().await;
    let t0 = 1_000_000_000_000;
    assert!(s.store().fresh_nonce(NAME, M, "n", t0, wire::NONCE_WINDOW_MS).await.unwrap());
    assert!(!s.store().fresh_nonce(NAME, M, "n", t0 + wire::NONCE_WINDOW_MS, wire::NONCE_WINDOW_MS).await.unwrap());
    assert!(s.store().fresh_nonce(NAME, "M2", "n", t0 + 1, wire::NONCE_WINDOW_MS).await.unwrap(), "per merchant");
    assert!(s
        .store()
        .fresh_nonce(NAME, M, "n", t0 + 2 * wire::NONCE_WINDOW_MS + 1, wire::NONCE_WINDOW_MS)
        .await
        .unwrap());
}

#[tokio::test]
async fn create_rules() {
    let s = sandbox().await;
    let p = create(&s, "T1", "8888").await;
    assert_eq!(code(&p), "SUCCESS", "{p:?}");
    assert!(p["pay_url"].starts_with("http://127.0.0.1:9/sandbox/bank/pay/"));
    assert!(p["bank_order_id"].starts_with("BO"));
    // same parameters: the same order again
    let again = call(
        &s,
        "create",
        &[
            ("out_trade_no", "T1"),
            ("amount_fen", "8888"),
            ("currency", "156"),
            ("subject", "门诊缴费"),
            ("notify_url", "http://127.0.0.1:9/notify/bank"),
            ("return_url", "http://127.0.0.1:9/done?x=1&y=2"),
            ("expire_time", &p["expire_time"]),
        ],
    )
    .await;
    assert_eq!(
        (code(&again), &again["pay_url"], &again["bank_order_id"]),
        ("SUCCESS", &p["pay_url"], &p["bank_order_id"])
    );
    assert_eq!(code(&create(&s, "T1", "8889").await), "DUPLICATE_ORDER");

    let exp = expire();
    let base = [
        ("out_trade_no", "T2"),
        ("amount_fen", "100"),
        ("currency", "156"),
        ("subject", "x"),
        ("notify_url", "https://h/n"),
        ("expire_time", exp.as_str()),
    ];
    let past = client::fmt_time(now_ms() - 1000);
    let far = client::fmt_time(now_ms() + 31 * 24 * 3_600_000);
    let long = "诊".repeat(129);
    for (k, v) in [
        ("amount_fen", "0"),
        ("amount_fen", "1.00"),
        ("amount_fen", "-5"),
        ("currency", "840"),
        ("subject", ""),
        ("subject", long.as_str()),
        ("subject", "a\u{7}b"),
        ("notify_url", "ftp://h/n"),
        ("return_url", "javascript:alert(1)"),
        ("expire_time", past.as_str()),
        ("expire_time", far.as_str()),
        ("expire_time", "2024-01-01"),
    ] {
        let mut fields: Vec<(&str, &str)> = base.iter().filter(|(bk, _)| *bk != k).cloned().collect();
        fields.push((k, v));
        assert_eq!(code(&call(&s, "create", &fields).await), "PARAM_ERROR", "{k}={v}");
    }
    assert_eq!(code(&call(&s, "create", &base).await), "SUCCESS");
}

async fn wait_refund_success(s: &BankSandbox, no: &str, refund_no: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while refund_status(s, no, refund_no).await != "REFUND_SUCCESS" {
        assert!(std::time::Instant::now() < deadline, "refund {refund_no} never completed");
        // the sandbox's timer is not running in a unit test: act as it would
        s.wake_due(now_ms()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn pay_close_refund_statement() {
    let s = sandbox().await;
    create(&s, "T1", "8888").await;
    let q = call(&s, "query", &[("out_trade_no", "T1")]).await;
    assert_eq!((q["trade_status"].as_str(), q["refunded_fen"].as_str()), ("WAITING", "0"));
    let r = call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R1"), ("refund_fen", "1")]).await;
    assert_eq!(code(&r), "PARAM_ERROR");

    // invalid cards change nothing; declines keep the order payable
    assert!(s.pay_with_card("T1", "1234").await.is_err());
    assert_eq!(
        s.pay_with_card("T1", "4000 0000 0000 0002").await.unwrap(),
        CardResult::Declined { fail_code: "CARD_DECLINED", order_failed: false }
    );
    assert_eq!(s.pay_with_card("T1", client::CARD_INSUFFICIENT).await.unwrap().word(), "INSUFFICIENT_FUNDS");
    assert_eq!(s.trade_state("T1").await.as_deref(), Some("WAITING"));
    s.pay("T1").await.unwrap();
    assert_eq!(s.trade_state("T1").await.as_deref(), Some("SUCCESS"));
    assert!(s.pay("T1").await.is_err(), "paid once");
    let q = call(&s, "query", &[("out_trade_no", "T1")]).await;
    assert_eq!((q["trade_status"].as_str(), q["card_last4"].as_str()), ("SUCCESS", "1111"));
    assert!(q["bank_txn_id"].starts_with("BT") && client::parse_time(&q["paid_time"]).is_some());
    assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T1")]).await), "ORDER_PAID");
    assert_eq!(code(&create(&s, "T1", "8888").await), "ORDER_PAID");

    // the success notification as the sandbox sends it
    let (headers, body) = s.signed_success_notification("T1").await.unwrap();
    assert_eq!(headers, vec![("content-type".to_string(), "application/json; charset=utf-8".to_string())]);
    let n = client::parse_flat(&body).unwrap();
    assert!(client::verify(&n, &PublicKey::parse(&s.bank_public_key()).unwrap()));
    assert_eq!(
        (n["event"].as_str(), n["amount_fen"].as_str(), n["merchant_id"].as_str()),
        ("PAYMENT_SUCCESS", "8888", M)
    );
    let again = client::parse_flat(&s.signed_success_notification("T1").await.unwrap().1).unwrap();
    assert_eq!(again["notify_id"], n["notify_id"], "stable notify_id");
    assert!(!String::from_utf8_lossy(&body).contains(client::CARD_SUCCESS), "never the full card number");
    let stored = serde_json::to_string(&s.store().latest_trade::<Trade>(NAME, "T1").await.unwrap().unwrap()).unwrap();
    assert!(!stored.contains(client::CARD_SUCCESS) && !stored.contains(client::CARD_DECLINED), "nor stored");

    // refunds: processing, idempotent, capped
    let r1 = call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R1"), ("refund_fen", "1000")]).await;
    assert_eq!(
        (code(&r1), r1["refund_status"].as_str(), r1["refunded_fen"].as_str()),
        ("SUCCESS", "REFUND_PROCESSING", "1000")
    );
    let again = call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R1"), ("refund_fen", "1000")]).await;
    assert_eq!(
        (again["bank_refund_id"].as_str(), again["refunded_fen"].as_str()),
        (r1["bank_refund_id"].as_str(), "1000")
    );
    let r = call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R1"), ("refund_fen", "999")]).await;
    assert_eq!(code(&r), "PARAM_ERROR");
    let r = call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R2"), ("refund_fen", "7889")]).await;
    assert_eq!(code(&r), "REFUND_EXCEEDS");
    let r2 = call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R2"), ("refund_fen", "7888")]).await;
    assert_eq!((code(&r2), r2["refunded_fen"].as_str()), ("SUCCESS", "8888"));
    let r = call(&s, "refund_query", &[("out_trade_no", "T1"), ("out_refund_no", "R9")]).await;
    assert_eq!(code(&r), "ORDER_NOT_EXIST");
    // an out_refund_no belongs to one order
    create(&s, "T5", "100").await;
    s.pay("T5").await.unwrap();
    let r = call(&s, "refund", &[("out_trade_no", "T5"), ("out_refund_no", "R1"), ("refund_fen", "1")]).await;
    assert_eq!(code(&r), "PARAM_ERROR");

    // refunds complete after the scaled delay
    wait_refund_success(&s, "T1", "R2").await;
    wait_refund_success(&s, "T1", "R1").await;
    let q = call(&s, "refund_query", &[("out_trade_no", "T1"), ("out_refund_no", "R2")]).await;
    assert!(client::parse_time(&q["refund_time"]).is_some());

    let today = client::fmt_date(local_date(now_ms()).unwrap());
    let st = call(&s, "statement", &[("bill_date", &today)]).await;
    assert_eq!(code(&st), "SUCCESS");
    let rows = client::parse_statement(&st["csv"]).unwrap();
    assert_eq!(rows.len(), 4, "{}", st["csv"]);
    assert_eq!(rows.iter().map(|r| r.amount_fen).sum::<i64>(), 100);
    assert_eq!((rows[0].kind, rows[0].fee_fen, rows[0].card_last4.as_str()), (client::RowKind::Payment, 34, "1111"));
    let tomorrow = client::fmt_date(local_date(now_ms() + 86_400_000).unwrap());
    assert_eq!(code(&call(&s, "statement", &[("bill_date", &tomorrow)]).await), "PARAM_ERROR");
    let empty = call(&s, "statement", &[("bill_date", "20200101")]).await;
    assert_eq!(empty["csv"], format!("{}\nTOTAL,0,0\n", client::STATEMENT_HEADER));
}

#[tokio::test]
async fn declines_fail_the_order_and_close_rules() {
    let s = sandbox().await;
    create(&s, "T1", "100").await;
    for i in 1..=trades::MAX_DECLINES {
        let r = s.pay_with_card("T1", client::CARD_DECLINED).await.unwrap();
        assert_eq!(r, CardResult::Declined { fail_code: "CARD_DECLINED", order_failed: i == trades::MAX_DECLINES });
    }
    let q = call(&s, "query", &[("out_trade_no", "T1")]).await;
    assert_eq!((q["trade_status"].as_str(), q["fail_code"].as_str()), ("FAILED", "CARD_DECLINED"));
    assert!(s.pay("T1").await.is_err());
    assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T1")]).await), "ORDER_CLOSED");

    create(&s, "T2", "100").await;
    assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T2")]).await), "SUCCESS");
    assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T2")]).await), "SUCCESS", "closing twice");
    assert!(s.pay("T2").await.is_err());
    assert_eq!(code(&create(&s, "T2", "100").await), "ORDER_CLOSED");
    assert_eq!(code(&call(&s, "close", &[("out_trade_no", "T404")]).await), "ORDER_NOT_EXIST");

    // expiry closes an unpaid order, by the timer too
    create(&s, "T3", "100").await;
    let mut t: Trade = s.store().latest_trade(NAME, "T3").await.unwrap().unwrap();
    t.expire_ms = now_ms() - 1;
    s.store().save_trade(NAME, &t).await.unwrap();
    assert_eq!(s.wake_due(now_ms()).await.unwrap(), 1);
    let stored: Trade = s.store().latest_trade(NAME, "T3").await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Closed);
    assert_eq!(s.wake_due(now_ms()).await.unwrap(), 0, "nothing left to do");
}

#[tokio::test]
async fn faults() {
    let s = sandbox().await;
    s.set_faults("T1", FaultSpec { fail_next_call: true, ..FaultSpec::default() }).await.unwrap();
    assert_eq!(code(&create(&s, "T1", "100").await), "SYSTEM_ERROR");
    assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1")]).await), "ORDER_NOT_EXIST", "not executed");
    assert_eq!(code(&create(&s, "T1", "100").await), "SUCCESS");
    s.set_faults("T1", FaultSpec { fail_next_call: true, ..FaultSpec::default() }).await.unwrap();
    assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1")]).await), "SYSTEM_ERROR");
    assert_eq!(code(&call(&s, "query", &[("out_trade_no", "T1")]).await), "SUCCESS");

    s.set_default_faults(FaultSpec { drop: true, ..FaultSpec::default() }).await.unwrap();
    create(&s, "T2", "100").await;
    assert!(s.store().latest_trade::<Trade>(NAME, "T2").await.unwrap().unwrap().faults.drop);
    s.set_default_faults(FaultSpec::default()).await.unwrap();
    create(&s, "T3", "100").await;
    assert!(!s.store().latest_trade::<Trade>(NAME, "T3").await.unwrap().unwrap().faults.drop);
    // a dropped notification is recorded, never delivered
    s.pay("T2").await.unwrap();
    let records = s.courier().records_for(NAME, "T2").await;
    assert_eq!(records.len(), 1);
    assert!(records[0].dropped && records[0].label.starts_with("PAYMENT_SUCCESS"));
}

#[tokio::test]
async fn card_page() {
    let s = sandbox().await;
    let p = create(&s, "T1", "8888").await;
    let token = p["pay_url"].rsplit('/').next().unwrap().to_string();
    let (t, name) = s.by_token(&token).await.unwrap().unwrap();
    assert_eq!(name, M);
    let html = s.card_page(&t, &name, None).0;
    for needle in [
        r#"<label for="card_number">"#,
        r#"name="card_number""#,
        r#"inputmode="numeric""#,
        r#"name="holder_name""#,
        "¥88.88",
        "门诊缴费",
        &format!(r#"action="http://127.0.0.1:9/sandbox/bank/pay/{token}/confirm""#),
        &format!(r#"action="http://127.0.0.1:9/sandbox/bank/pay/{token}/cancel""#),
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
    assert!(!html.contains("返回商户"));
    let resp =
        confirm_handler(State(Arc::new(s)), Path(token.clone()), Bytes::from("card_number=4111-1111-1111-1111")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let html = String::from_utf8(axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(html.contains("支付成功 Paid"));
    assert!(!html.contains("card_number"));
    assert!(html.contains(r#"<a href="http://127.0.0.1:9/done?x=1&amp;y=2""#), "{html}");
    assert!(!html.contains(client::CARD_SUCCESS));
}

#[tokio::test]
async fn a_restart_forgets_nothing() {
    let dir = std::env::temp_dir().join(format!("cp-bank-sandbox-{}", random_alnum(8)));
    let settings = SandboxSettings::in_dir("http://127.0.0.1:9".into(), 1, &dir);
    let (pay_url, public) = {
        let s = BankSandbox::new(SandboxCtx::open(settings.clone()).await.unwrap().for_sandbox()).unwrap();
        s.register_merchant(M, MERCHANT_PUBLIC).await.unwrap();
        let p = create(&s, "T1", "8888").await;
        s.pay("T1").await.unwrap();
        let r = call(&s, "refund", &[("out_trade_no", "T1"), ("out_refund_no", "R1"), ("refund_fen", "100")]).await;
        assert_eq!(r["refund_status"], "REFUND_PROCESSING");
        (p["pay_url"].clone(), s.bank_public_key())
    };
    let s = BankSandbox::new(SandboxCtx::open(settings).await.unwrap().for_sandbox()).unwrap();
    assert_eq!(s.bank_public_key(), public, "the bank key persists");
    let q = call(&s, "query", &[("out_trade_no", "T1")]).await;
    assert_eq!((code(&q), q["trade_status"].as_str(), q["refunded_fen"].as_str()), ("SUCCESS", "SUCCESS", "100"));
    let token = pay_url.rsplit('/').next().unwrap();
    assert!(s.by_token(token).await.unwrap().is_some(), "the card page still opens");
    wait_refund_success(&s, "T1", "R1").await;
    assert_eq!(code(&create(&s, "T1", "8888").await), "ORDER_PAID");
    let _ = std::fs::remove_dir_all(dir);
}
