//! Unit tests of the bank client: settings, notifications, answers, code mapping.

use super::*;
use crate::crypto::test_keys::*;
use proptest::prelude::*;

fn client() -> BankClient {
    let settings = BankSettings {
        merchant_id: "M100001".into(),
        api_base: "http://127.0.0.1:9/sandbox/bank/".into(),
        bank_public_key: PROVIDER_PUBLIC.into(),
    };
    BankClient::new(settings, MERCHANT_PRIVATE, reqwest::Client::new()).unwrap()
}

fn provider() -> PrivateKey {
    PrivateKey::parse(PROVIDER_PRIVATE).unwrap()
}

fn now() -> Millis {
    wire::parse_time("20240101120011").unwrap()
}

fn payment_notification() -> Params {
    [
        ("notify_id", "BN20240101120010000001"),
        ("event", "PAYMENT_SUCCESS"),
        ("merchant_id", "M100001"),
        ("out_trade_no", "T202401010001"),
        ("bank_order_id", "BO20240101000000000001"),
        ("amount_fen", "8888"),
        ("currency", "156"),
        ("trade_status", "SUCCESS"),
        ("bank_txn_id", "BT20240101120010000001"),
        ("paid_time", "20240101120010"),
        ("card_last4", "1111"),
        ("timestamp", "20240101120011"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn raw(p: &Params, key: &PrivateKey) -> RawNotification {
    let mut p = p.clone();
    wire::sign(&mut p, key);
    RawNotification {
        headers: vec![("content-type".into(), "application/json; charset=utf-8".into())],
        content_type: "application/json; charset=utf-8".into(),
        body: wire::to_json(&p).into_bytes(),
    }
}

#[test]
fn settings_are_checked() {
    let ok = BankSettings {
        merchant_id: "M1".into(),
        api_base: "https://bank.example.com".into(),
        bank_public_key: PROVIDER_PUBLIC.into(),
    };
    assert!(BankClient::new(ok.clone(), MERCHANT_PRIVATE, reqwest::Client::new()).is_ok());
    let bare: String = PROVIDER_PUBLIC.lines().filter(|l| !l.starts_with("-----")).collect();
    let s = BankSettings { bank_public_key: bare, ..ok.clone() };
    assert!(BankClient::new(s, MERCHANT_PRIVATE, reqwest::Client::new()).is_ok(), "bare base64 key");
    let s = BankSettings { merchant_id: "M 1".into(), ..ok.clone() };
    assert!(BankClient::new(s, MERCHANT_PRIVATE, reqwest::Client::new()).is_err());
    let s = BankSettings { api_base: "bank.example.com".into(), ..ok.clone() };
    assert!(BankClient::new(s, MERCHANT_PRIVATE, reqwest::Client::new()).is_err());
    let s = BankSettings { bank_public_key: MERCHANT_PUBLIC.into(), ..ok.clone() };
    assert!(BankClient::new(s, MERCHANT_PRIVATE, reqwest::Client::new()).is_err(), "own key as bank key");
    let err = BankClient::new(ok, "garbage", reqwest::Client::new()).unwrap_err();
    assert!(!format!("{err:#}").contains("garbage"));
    assert_eq!(client().api_base, "http://127.0.0.1:9/sandbox/bank");
}

#[test]
fn payment_notification_verifies() {
    let c = client();
    let n = raw(&payment_notification(), &provider());
    assert!(c.owns_notification(&n));
    let ev = c.verify_notification(&n, now()).unwrap();
    assert_eq!(ev.event_id, "BN20240101120010000001");
    assert_eq!(ev.account, "M100001");
    assert_eq!(ev.provider, Provider::Bank);
    assert_eq!(
        ev.kind,
        EventKind::PaymentSucceeded {
            out_trade_no: "T202401010001".into(),
            provider_txn_id: "BT20240101120010000001".into(),
            amount: Money::parse("88.88").unwrap(),
            paid_at_ms: Some(1_704_081_610_000),
            payer: Some("****1111".into()),
        }
    );
}

#[test]
fn other_events() {
    let c = client();
    let mut p = payment_notification();
    p.insert("event".into(), "PAYMENT_FAILED".into());
    p.insert("trade_status".into(), "WAITING".into());
    p.insert("fail_code".into(), "CARD_DECLINED".into());
    p.remove("bank_txn_id");
    p.remove("paid_time");
    let ev = c.verify_notification(&raw(&p, &provider()), now()).unwrap();
    assert_eq!(
        ev.kind,
        EventKind::PaymentAttemptFailed { out_trade_no: "T202401010001".into(), code: "CARD_DECLINED".into() }
    );
    // a code we would not show as it stands is kept as UNKNOWN (the raw body keeps the original)
    p.insert("fail_code".into(), "<script>".into());
    let ev = c.verify_notification(&raw(&p, &provider()), now()).unwrap();
    assert_eq!(
        ev.kind,
        EventKind::PaymentAttemptFailed { out_trade_no: "T202401010001".into(), code: "UNKNOWN".into() }
    );

    let mut p = payment_notification();
    p.insert("event".into(), "REFUND_SUCCESS".into());
    p.insert("out_refund_no".into(), "R1".into());
    p.insert("refund_fen".into(), "1000".into());
    p.insert("bank_refund_id".into(), "BR1".into());
    let ev = c.verify_notification(&raw(&p, &provider()), now()).unwrap();
    assert_eq!(
        ev.kind,
        EventKind::RefundSucceeded {
            out_trade_no: "T202401010001".into(),
            out_refund_no: "R1".into(),
            amount: Money::parse("10.00").unwrap()
        }
    );
}

#[test]
fn notification_rejections() {
    let c = client();
    let good = raw(&payment_notification(), &provider());

    let form = RawNotification { content_type: "application/x-www-form-urlencoded".into(), ..good.clone() };
    assert!(matches!(c.verify_notification(&form, now()), Err(Rejection::ContentType(_))));

    // signed by the merchant key instead of the bank's
    let forged = raw(&payment_notification(), &PrivateKey::parse(MERCHANT_PRIVATE).unwrap());
    assert_eq!(c.verify_notification(&forged, now()), Err(Rejection::BadSignature));

    // tampered amount after signing
    let mut p = wire::parse_flat(&good.body).unwrap();
    p.insert("amount_fen".into(), "1".into());
    let tampered = RawNotification { body: wire::to_json(&p).into_bytes(), ..good.clone() };
    assert_eq!(c.verify_notification(&tampered, now()), Err(Rejection::BadSignature));

    let mut other = payment_notification();
    other.insert("merchant_id".into(), "M999".into());
    let other = raw(&other, &provider());
    assert!(!c.owns_notification(&other));
    assert_eq!(c.verify_notification(&other, now()), Err(Rejection::UnknownAccount("M999".into())));

    let later = now() + 6 * 60_000;
    assert_eq!(c.verify_notification(&good, later), Err(Rejection::Stale));
    assert!(c.verify_notification(&good, now() + 4 * 60_000).is_ok());
    assert_eq!(c.verify_notification(&good, now() - 6 * 60_000), Err(Rejection::Stale));

    let mut usd = payment_notification();
    usd.insert("currency".into(), "840".into());
    assert_eq!(c.verify_notification(&raw(&usd, &provider()), now()), Err(Rejection::Currency("840".into())));

    for missing in ["notify_id", "amount_fen", "bank_txn_id", "out_trade_no", "paid_time", "timestamp"] {
        let mut p = payment_notification();
        p.remove(missing);
        assert!(
            matches!(c.verify_notification(&raw(&p, &provider()), now()), Err(Rejection::Malformed(_))),
            "{missing}"
        );
    }
    let junk = RawNotification { body: b"{\"amount_fen\":8888}".to_vec(), ..good.clone() };
    assert!(matches!(c.verify_notification(&junk, now()), Err(Rejection::Malformed(_))));
    assert!(!c.owns_notification(&junk));
}

#[test]
fn replies() {
    let c = client();
    let yes = c.notify_reply(true);
    assert_eq!(
        (yes.status, yes.content_type, yes.body.as_slice()),
        (200, "application/json", &br#"{"code":"SUCCESS"}"#[..])
    );
    let no = c.notify_reply(false);
    assert_eq!((no.status, no.body.as_slice()), (500, &br#"{"code":"FAIL"}"#[..]));
}

#[test]
fn response_checks() {
    let c = client();
    let mut p: Params = [("code", "SUCCESS"), ("merchant_id", "M100001"), ("nonce", "abcdefghijklmnop")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    wire::sign(&mut p, &provider());
    let body = wire::to_json(&p);
    assert!(c.check_response(200, body.as_bytes(), "abcdefghijklmnop").is_ok());
    assert!(c.check_response(500, body.as_bytes(), "abcdefghijklmnop").is_err());
    assert!(c.check_response(200, body.as_bytes(), "ponmlkjihgfedcba").is_err(), "nonce must echo ours");
    assert!(c.check_response(200, b"<html>", "abcdefghijklmnop").is_err());
    let unsigned = body.replace("\"sign\"", "\"sig\"");
    assert!(c.check_response(200, unsigned.as_bytes(), "abcdefghijklmnop").is_err());
}

#[test]
fn code_mapping() {
    let p = |code: &str| -> Params {
        [("code", code), ("message", "m")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    assert!(matches!(not_success::<()>(&p("SYSTEM_ERROR")), Outcome::Unknown(_)));
    assert!(matches!(not_success::<()>(&p("REPLAY")), Outcome::Unknown(_)));
    match not_success::<()>(&p("REFUND_EXCEEDS")) {
        Outcome::Failure(e) => assert_eq!((e.code.as_str(), e.message.as_str()), ("REFUND_EXCEEDS", "m")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn subjects() {
    assert_eq!(clean_subject("a\nb"), "a b");
    assert_eq!(clean_subject(&"诊".repeat(200)).chars().count(), 128);
}

proptest! {
    #[test]
    fn notification_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400), ct in "\\PC{0,40}") {
        let c = client();
        let n = RawNotification { headers: vec![], content_type: ct, body };
        let _ = c.owns_notification(&n);
        let _ = c.verify_notification(&n, now());
        let json = RawNotification { content_type: "application/json".into(), ..n };
        let _ = c.verify_notification(&json, now());
    }

    #[test]
    fn flat_notifications_never_panic(map in proptest::collection::btree_map(
        prop_oneof![Just("merchant_id".to_string()), Just("event".to_string()), Just("amount_fen".to_string()),
                    Just("timestamp".to_string()), Just("notify_id".to_string()), "[a-z_]{1,10}"],
        "\\PC{0,24}", 0..12), now_ms in any::<i64>()) {
        let c = client();
        let mut p: Params = map;
        p.insert("merchant_id".into(), "M100001".into());
        let n = raw(&p, &provider());
        let _ = c.verify_notification(&n, now_ms);
    }
}
