//! Unit tests: PROTOCOLS.md D.1 (T-W1..T-W4, T-W6) and D.2 (W1..W6) vectors, parser edge cases,
//! and a property test that notification handling never panics.

use super::notify::open_notification;
use super::vectors::*;
use super::*;
use crate::crypto::test_keys::*;
use proptest::prelude::*;

const W_APIV3: &str = "sandboxAPIv3Key0123456789abcdefg";
const W_PUB_ID: &str = "PUB_KEY_ID_0114232134912410000000000000000001";
const W_CERT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
const PROVIDER_CERT: &str = include_str!("../../../tests/fixtures/provider_cert.pem");

fn settings(platform: WechatPlatform) -> WechatSettings {
    WechatSettings {
        mchid: "1230000109".into(),
        appid: "wxd678efh567hg6787".into(),
        api_base: "http://127.0.0.1:9".into(),
        merchant_serial_no: "3775B6A45ACD588826D15E583A95F5DD00000001".into(),
        platform,
    }
}

fn pubkey_client() -> WechatClient {
    let platform = WechatPlatform::PublicKey { public_key_id: W_PUB_ID.into(), public_key: PROVIDER_PUBLIC.into() };
    WechatClient::new(settings(platform), MERCHANT_PRIVATE, W_APIV3, reqwest::Client::new()).unwrap()
}

fn cert_client() -> WechatClient {
    let platform = WechatPlatform::Certificates {
        certificates: vec![PlatformCertificate {
            serial_no: W_CERT_SERIAL.into(),
            certificate_pem: PROVIDER_CERT.into(),
        }],
    };
    WechatClient::new(settings(platform), MERCHANT_PRIVATE, W_APIV3, reqwest::Client::new()).unwrap()
}

fn w4_notification(serial: &str) -> RawNotification {
    RawNotification {
        headers: vec![
            ("wechatpay-timestamp".into(), "1704081611".into()),
            ("wechatpay-nonce".into(), "5K8264ILTKCH16CQ2502SI8ZNMTM67VS".into()),
            ("wechatpay-serial".into(), serial.into()),
            ("wechatpay-signature-type".into(), "WECHATPAY2-SHA256-RSA2048".into()),
            ("wechatpay-signature".into(), W4_SIGNATURE.into()),
        ],
        content_type: "application/json".into(),
        body: W4_BODY.as_bytes().to_vec(),
    }
}

const W4_NOW_MS: i64 = 1_704_081_611_000;

#[test]
fn t_w1_rsa_signature_of_the_go_sdk() {
    let key = PrivateKey::parse(WGO_PRIVATE_KEY).unwrap();
    assert_eq!(key.sign_sha256_b64(b"source"), T_W1_SIGNATURE);
    let cert = cert::parse_certificate_pem(WGO_CERT).unwrap();
    assert_eq!(cert.serial_no, "D7CE59D1F522D701");
    assert_eq!(cert.public_key, key.public_key());
    assert!(cert.public_key.verify_sha256_b64(b"source", T_W1_SIGNATURE));
}

#[test]
fn t_w2_go_sdk_notification_with_a_16_byte_key() {
    let cert = cert::parse_certificate_pem(WGO_CERT).unwrap();
    let keys = |s: &str| (cert::normalize_serial(s) == "D7CE59D1F522D701").then(|| cert.public_key.clone());
    let n = RawNotification {
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("wechatpay-nonce".into(), "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz".into()),
            ("wechatpay-timestamp".into(), "1624523846".into()),
            ("wechatpay-serial".into(), "D7CE59D1F522D701".into()),
            ("wechatpay-signature".into(), T_W2_SIGNATURE.into()),
        ],
        content_type: "application/json".into(),
        body: T_W2_BODY.as_bytes().to_vec(),
    };
    let (env, plain) = open_notification(&keys, b"testMchAPIv3Key0", &n, 1_624_523_846_000).unwrap();
    assert_eq!(env.id, "3119dfba-e649-5eec-ab1e-3412bc4d2e17");
    assert_eq!(env.event_type, "PAYSCORE.USER_OPEN_SERVICE");
    assert_eq!(
        String::from_utf8(plain).unwrap(),
        r#"{"mchid":"1234567890","appid":"054aa7d7a2a54ab5898df65bd96f001c","create_time":"2020-06-30T12:12:00+08:00","out_contract_code":"21640bdbd08e473e828f3206a2741c6e"}"#
    );
    // the same notification five minutes later is stale; tampering breaks the signature
    assert_eq!(open_notification(&keys, b"testMchAPIv3Key0", &n, 1_624_524_146_000).unwrap_err(), Rejection::Stale);
    let mut bad = n.clone();
    bad.body[10] ^= 1;
    assert_eq!(
        open_notification(&keys, b"testMchAPIv3Key0", &bad, 1_624_523_846_000).unwrap_err(),
        Rejection::BadSignature
    );
    assert_eq!(open_notification(&keys, b"testMchAPIv3Key1", &n, 1_624_523_846_000).unwrap_err(), Rejection::Decrypt);
}

#[test]
fn t_w3_t_w4_aes_gcm() {
    let r = EncryptedResource {
        original_type: None,
        algorithm: AEAD.into(),
        ciphertext: "FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC".into(),
        associated_data: "Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8".into(),
        nonce: "wCq51qZv4Yfg".into(),
    };
    assert_eq!(decrypt_resource(b"testAPIv3Key0000", &r).unwrap(), b"Hello World");
    let r = EncryptedResource {
        original_type: None,
        algorithm: AEAD.into(),
        ciphertext: "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=".into(),
        associated_data: "associatedData".into(),
        nonce: "uluk4a9R25RW".into(),
    };
    assert_eq!(decrypt_resource(b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb", &r).unwrap(), b"message");
    let mut wrong = r.clone();
    wrong.associated_data = "other".into();
    assert!(decrypt_resource(b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb", &wrong).is_err());
    let mut wrong = r.clone();
    wrong.algorithm = "AEAD_SM4_GCM".into();
    assert!(decrypt_resource(b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb", &wrong).is_err());
    // round trip with a fresh nonce
    let e = encrypt_resource(W_APIV3.as_bytes(), Some("transaction"), "transaction", b"{}").unwrap();
    assert_eq!(e.nonce.len(), 12);
    assert_eq!(decrypt_resource(W_APIV3.as_bytes(), &e).unwrap(), b"{}");
}

#[test]
fn w1_request_signature_and_authorization_header() {
    let key = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();
    let msg = request_message(
        "POST",
        "/v3/pay/transactions/native",
        "1704081600",
        "593BEC0C930BF1AFEB40B4A08C8FB242",
        W1_BODY.as_bytes(),
    );
    assert!(msg.ends_with(b"}\n"));
    let sig = key.sign_sha256_b64(&msg);
    assert_eq!(sig, W1_SIGNATURE);
    let h = authorization(
        "1230000109",
        "593BEC0C930BF1AFEB40B4A08C8FB242",
        "1704081600",
        "3775B6A45ACD588826D15E583A95F5DD00000001",
        &sig,
    );
    assert!(h.starts_with(r#"WECHATPAY2-SHA256-RSA2048 mchid="1230000109",nonce_str="593B"#));
    let p = parse_authorization(&h).unwrap();
    assert_eq!(p.signature, W1_SIGNATURE);
    assert_eq!(p.serial_no, "3775B6A45ACD588826D15E583A95F5DD00000001");
    // WPY's and WAX's pair orders parse the same
    let wpy = format!(
        r#"WECHATPAY2-SHA256-RSA2048 mchid="1230000109",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",signature="{sig}",timestamp="1704081600",serial_no="3775B6A45ACD588826D15E583A95F5DD00000001""#
    );
    let wax = format!(
        r#"WECHATPAY2-SHA256-RSA2048 mchid="1230000109", serial_no="3775B6A45ACD588826D15E583A95F5DD00000001", timestamp="1704081600", nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242", signature="{sig}""#
    );
    assert_eq!(parse_authorization(&wpy), Some(p.clone()));
    assert_eq!(parse_authorization(&wax), Some(p));
    assert_eq!(parse_authorization("Bearer x"), None);
    assert_eq!(parse_authorization("WECHATPAY2-SHA256-RSA2048"), None);
    assert_eq!(parse_authorization(r#"WECHATPAY2-SHA256-RSA2048 mchid="1""#), None);
    assert_eq!(parse_authorization(r#"WECHATPAY2-SHA256-RSA2048 mchid="1,nonce_str"#), None);
}

#[test]
fn w1b_get_with_query() {
    let key = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();
    let msg = request_message(
        "GET",
        "/v3/pay/transactions/out-trade-no/T202401010001?mchid=1230000109",
        "1704081700",
        "C0FFEE00C0FFEE00C0FFEE00C0FFEE00",
        b"",
    );
    assert!(msg.ends_with(b"\n\n"));
    assert_eq!(key.sign_sha256_b64(&msg), W1B_SIGNATURE);
}

#[test]
fn w2_w3_response_signatures() {
    let provider = PublicKey::parse(PROVIDER_PUBLIC).unwrap();
    let body = br#"{"code_url":"weixin://wxpay/bizpayurl?pr=abcdefg"}"#;
    let keys = |s: &str| (s == W_PUB_ID).then(|| provider.clone());
    let headers = |ts: &str, nonce: &str, sig: &str| {
        vec![
            ("wechatpay-timestamp".to_string(), ts.to_string()),
            ("wechatpay-nonce".to_string(), nonce.to_string()),
            ("wechatpay-signature".to_string(), sig.to_string()),
            ("wechatpay-serial".to_string(), W_PUB_ID.to_string()),
        ]
    };
    let h2 = headers("1704081601", "A1B2C3D4E5F60718293A4B5C6D7E8F90", W2_SIGNATURE);
    assert_eq!(check_signature(&keys, &h2, body, 1_704_081_601), Ok(()));
    assert_eq!(check_signature(&keys, &h2, body, 1_704_081_601 + 299), Ok(()));
    assert_eq!(check_signature(&keys, &h2, body, 1_704_081_601 + 300), Err(Rejection::Stale));
    assert_eq!(check_signature(&keys, &h2, body, 1_704_081_601 - 300), Err(Rejection::Stale));
    assert_eq!(check_signature(&keys, &h2, b"{}", 1_704_081_601), Err(Rejection::BadSignature));
    // 204: the empty body is signed too
    let h3 = headers("1704081602", "0123456789ABCDEF0123456789ABCDEF", W3_SIGNATURE);
    assert_eq!(check_signature(&keys, &h3, b"", 1_704_081_602), Ok(()));
    assert_eq!(check_signature(&keys, &h3, b" ", 1_704_081_602), Err(Rejection::BadSignature));
    // unknown serial, missing headers, wrong signature type
    let mut other = h3.clone();
    other[3].1 = "PUB_KEY_ID_0000".into();
    assert_eq!(check_signature(&keys, &other, b"", 1_704_081_602), Err(Rejection::BadSignature));
    assert!(matches!(check_signature(&keys, &h3[..3], b"", 1_704_081_602), Err(Rejection::Malformed(_))));
    let mut typed = h3.clone();
    typed.push(("wechatpay-signature-type".into(), "WECHATPAY2-SM2-WITH-SM3".into()));
    assert_eq!(check_signature(&keys, &typed, b"", 1_704_081_602), Err(Rejection::BadSignature));
}

#[test]
fn w4_payment_notification_in_both_modes() {
    for (client, serial) in [(pubkey_client(), W_PUB_ID), (cert_client(), W_CERT_SERIAL)] {
        let n = w4_notification(serial);
        assert!(client.owns_notification(&n));
        let ev = client.verify_notification(&n, W4_NOW_MS).unwrap();
        assert_eq!(ev.provider, Provider::WechatPay);
        assert_eq!(ev.event_id, "EV-2024010112001000000000001");
        assert_eq!(ev.account, "1230000109");
        assert_eq!(
            ev.kind,
            EventKind::PaymentSucceeded {
                out_trade_no: "T202401010001".into(),
                provider_txn_id: "4200000000202401010000000001".into(),
                amount: Money::parse("88.88").unwrap(),
                paid_at_ms: Some(1_704_081_610_000),
                payer: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
            }
        );
        // the timestamp is old: with the real clock it is stale
        assert_eq!(client.verify_notification(&n, W4_NOW_MS + 300_000), Err(Rejection::Stale));
        assert_eq!(client.verify_notification(&n, W4_NOW_MS - 300_000), Err(Rejection::Stale));
        // charset parameter is fine; other types are not
        let mut ct = n.clone();
        ct.content_type = "application/json; charset=utf-8".into();
        assert!(client.verify_notification(&ct, W4_NOW_MS).is_ok());
        ct.content_type = "application/x-www-form-urlencoded".into();
        assert!(matches!(client.verify_notification(&ct, W4_NOW_MS), Err(Rejection::ContentType(_))));
        // a changed byte
        let mut forged = n.clone();
        let at = forged.body.len() - 20;
        forged.body[at] ^= 1;
        assert_eq!(client.verify_notification(&forged, W4_NOW_MS), Err(Rejection::BadSignature));
    }
    // the platform key of the other mode does not own it
    assert!(!pubkey_client().owns_notification(&w4_notification(W_CERT_SERIAL)));
    assert!(!cert_client().owns_notification(&w4_notification(W_PUB_ID)));
    // the plaintext is W4's
    let keys = |_: &str| Some(PublicKey::parse(PROVIDER_PUBLIC).unwrap());
    let (_, plain) = open_notification(&keys, W_APIV3.as_bytes(), &w4_notification(W_PUB_ID), W4_NOW_MS).unwrap();
    assert_eq!(String::from_utf8(plain).unwrap(), W4_PLAINTEXT);
    let r = EncryptedResource {
        original_type: Some("transaction".into()),
        algorithm: AEAD.into(),
        ciphertext: W4_CIPHERTEXT.into(),
        associated_data: "transaction".into(),
        nonce: "fdasflkja484".into(),
    };
    assert_eq!(decrypt_resource(W_APIV3.as_bytes(), &r).unwrap(), W4_PLAINTEXT.as_bytes());
}

#[test]
fn w4_with_the_wrong_account_or_key() {
    let wrong_key = WechatClient::new(
        settings(WechatPlatform::PublicKey { public_key_id: W_PUB_ID.into(), public_key: PROVIDER_PUBLIC.into() }),
        MERCHANT_PRIVATE,
        "sandboxAPIv3Key0123456789abcdefX",
        reqwest::Client::new(),
    )
    .unwrap();
    assert_eq!(wrong_key.verify_notification(&w4_notification(W_PUB_ID), W4_NOW_MS), Err(Rejection::Decrypt));
    let mut s =
        settings(WechatPlatform::PublicKey { public_key_id: W_PUB_ID.into(), public_key: PROVIDER_PUBLIC.into() });
    s.mchid = "1230000110".into();
    let other = WechatClient::new(s.clone(), MERCHANT_PRIVATE, W_APIV3, reqwest::Client::new()).unwrap();
    assert_eq!(
        other.verify_notification(&w4_notification(W_PUB_ID), W4_NOW_MS),
        Err(Rejection::UnknownAccount("1230000109".into()))
    );
    s.mchid = "1230000109".into();
    s.appid = "wx0000000000000000".into();
    let other = WechatClient::new(s, MERCHANT_PRIVATE, W_APIV3, reqwest::Client::new()).unwrap();
    assert_eq!(
        other.verify_notification(&w4_notification(W_PUB_ID), W4_NOW_MS),
        Err(Rejection::UnknownAccount("wxd678efh567hg6787".into()))
    );
}

/// Builds a notification the way the sandbox does, signed with PROVIDER.
fn signed_notification(event_type: &str, plain: &str, ts: i64) -> RawNotification {
    let res = encrypt_resource(W_APIV3.as_bytes(), Some("refund"), "refund", plain.as_bytes()).unwrap();
    let env = Notification {
        id: "EV-1".into(),
        create_time: "2024-01-01T12:00:11+08:00".into(),
        resource_type: "encrypt-resource".into(),
        event_type: event_type.into(),
        summary: "x".into(),
        resource: res,
    };
    let body = serde_json::to_vec(&env).unwrap();
    let key = PrivateKey::parse(PROVIDER_PRIVATE).unwrap();
    let sig = key.sign_sha256_b64(&response_message(&ts.to_string(), "N", &body));
    RawNotification {
        headers: vec![
            ("wechatpay-timestamp".into(), ts.to_string()),
            ("wechatpay-nonce".into(), "N".into()),
            ("wechatpay-serial".into(), W_PUB_ID.into()),
            ("wechatpay-signature".into(), sig),
        ],
        content_type: "application/json".into(),
        body,
    }
}

#[test]
fn refund_and_other_notifications() {
    let c = pubkey_client();
    let now = 1_704_081_611;
    let plain = r#"{"mchid":"1230000109","transaction_id":"42","out_trade_no":"T1","refund_id":"50","out_refund_no":"R1","refund_status":"SUCCESS","success_time":"2024-01-01T12:00:11+08:00","user_received_account":"支付用户零钱","amount":{"total":8888,"refund":100,"payer_total":8888,"payer_refund":100}}"#;
    let ev = c.verify_notification(&signed_notification("REFUND.SUCCESS", plain, now), now * 1000).unwrap();
    assert_eq!(
        ev.kind,
        EventKind::RefundSucceeded {
            out_trade_no: "T1".into(),
            out_refund_no: "R1".into(),
            amount: Money::parse("1.00").unwrap()
        }
    );
    let abnormal = plain.replace(r#""refund_status":"SUCCESS""#, r#""refund_status":"ABNORMAL""#);
    let ev = c.verify_notification(&signed_notification("REFUND.ABNORMAL", &abnormal, now), now * 1000).unwrap();
    assert_eq!(
        ev.kind,
        EventKind::RefundFailed { out_trade_no: "T1".into(), out_refund_no: "R1".into(), reason: "ABNORMAL".into() }
    );
    let foreign = plain.replace("1230000109", "999");
    assert_eq!(
        c.verify_notification(&signed_notification("REFUND.SUCCESS", &foreign, now), now * 1000),
        Err(Rejection::UnknownAccount("999".into()))
    );
    let negative = plain.replace(r#""refund":100"#, r#""refund":-100"#);
    assert!(matches!(
        c.verify_notification(&signed_notification("REFUND.SUCCESS", &negative, now), now * 1000),
        Err(Rejection::Malformed(_))
    ));
    let zero = W4_PLAINTEXT.replace(r#""total":8888"#, r#""total":0"#);
    assert!(matches!(
        c.verify_notification(&signed_notification("TRANSACTION.SUCCESS", &zero, now), now * 1000),
        Err(Rejection::Malformed(_))
    ));
    // a payment in another currency
    let usd = W4_PLAINTEXT.replace(r#""currency":"CNY""#, r#""currency":"USD""#);
    assert_eq!(
        c.verify_notification(&signed_notification("TRANSACTION.SUCCESS", &usd, now), now * 1000),
        Err(Rejection::Currency("USD".into()))
    );
    // verified events we do not act on
    let ev = c.verify_notification(&signed_notification("TRANSACTION.FAIL", W4_PLAINTEXT, now), now * 1000).unwrap();
    assert!(matches!(ev.kind, EventKind::Informational { .. }));
    assert!(matches!(
        c.verify_notification(&signed_notification("PAYSCORE.X", "{}", now), now * 1000),
        Err(Rejection::Malformed(_))
    ));
    assert!(matches!(
        c.verify_notification(&signed_notification("TRANSACTION.SUCCESS", "not json", now), now * 1000),
        Err(Rejection::Malformed(_))
    ));
}

#[test]
fn w5_jsapi_pay_sign() {
    let key = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();
    let sig = jsapi_pay_sign(
        &key,
        "wxd678efh567hg6787",
        "1704081600",
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "prepay_id=wx201410272009395522657a690389285100",
    );
    assert_eq!(sig, W5_SIGNATURE);
}

#[test]
fn w6_certificate_encryption() {
    assert_eq!(
        crypto::sha256_hex(PROVIDER_CERT.as_bytes()),
        "af725ecba0c95193e352ccc080f87d1c1210ffc8fba94609d0ae1c81f6c327aa"
    );
    let ct =
        crypto::aes_gcm_encrypt(W_APIV3.as_bytes(), b"a1b2c3d4e5f6", b"certificate", PROVIDER_CERT.as_bytes()).unwrap();
    let b64 = crypto::b64(&ct);
    assert_eq!(b64.len(), 1568);
    assert_eq!(crypto::sha256_hex(b64.as_bytes()), "58f9f71b80e4c5efe54b943ac79056e86a49389f158a1e9b161eec901c7ce26f");
    let r = EncryptedResource {
        original_type: None,
        algorithm: AEAD.into(),
        ciphertext: b64,
        associated_data: "certificate".into(),
        nonce: "a1b2c3d4e5f6".into(),
    };
    let pem = String::from_utf8(decrypt_resource(W_APIV3.as_bytes(), &r).unwrap()).unwrap();
    assert_eq!(cert::parse_certificate_pem(&pem).unwrap().serial_no, W_CERT_SERIAL);
}

#[test]
fn t_w6_trade_bill_of_the_axios_plugin() {
    let bytes = include_bytes!("testdata/bill_all.csv");
    assert_eq!(&bytes[..3], b"\xef\xbb\xbf");
    let bill = parse_bill(bytes).unwrap();
    assert_eq!(bill.header, BILL_HEADER.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(bill.summary_header, BILL_SUMMARY_HEADER.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(bill.summary, ["45.0", "0.47", "0.14", "0.0", "0.08", "0.47", "0.14"]);
    assert_eq!(bill.rows.len(), 45);
    assert!(bill.rows.iter().all(|r| r.len() == 27));
    let lines = bill_statement_lines(&bill).unwrap();
    assert_eq!(lines.len(), 45);
    let pays: Vec<_> = lines.iter().filter(|l| l.kind == "payment").collect();
    let refunds: Vec<_> = lines.iter().filter(|l| l.kind == "refund").collect();
    assert_eq!((pays.len(), refunds.len()), (31, 14));
    assert_eq!(Money::sum(pays.iter().map(|l| l.amount)).unwrap(), Money::parse("0.47").unwrap());
    assert_eq!(Money::sum(refunds.iter().map(|l| l.amount)).unwrap(), Money::parse("-0.14").unwrap());
    assert_eq!(Money::sum(lines.iter().filter_map(|l| l.fee)).unwrap(), Money::parse("0.08").unwrap());
    let first_refund = refunds[0];
    assert_eq!(first_refund.out_trade_no, "autotest_20190216081946_82335");
    assert_eq!(first_refund.provider_txn_id, "4200000263201902167700134212");
    assert_eq!(first_refund.out_refund_no.as_deref(), Some("REF4200000263201902167700963919"));
    assert_eq!(first_refund.occurred_at, "2019-02-19 05:01:46");
    // render → parse round trip, gzip included
    let rows = bill.rows.clone();
    let again = render_bill(&BILL_HEADER, &rows, &BILL_SUMMARY_HEADER, &bill.summary);
    assert_eq!(again, bytes.to_vec());
    assert_eq!(maybe_gunzip(&gzip(&again)).unwrap(), again);
    assert_eq!(maybe_gunzip(b"plain").unwrap(), b"plain");
    // damaged files are errors, not panics
    assert!(parse_bill(b"").is_err());
    assert!(parse_bill(b"a\r\nb\r\nc\r\n").is_err());
    assert!(parse_bill(&[0xff, 0xfe]).is_err());
    let short = "\u{feff}交易时间,交易状态\r\n`x,`SUCCESS\r\n总交易单数\r\n`1\r\n";
    assert!(bill_statement_lines(&parse_bill(short.as_bytes()).unwrap()).is_err());
}

#[test]
fn constructor_checks_its_input() {
    let pk = WechatPlatform::PublicKey { public_key_id: W_PUB_ID.into(), public_key: PROVIDER_PUBLIC.into() };
    let new = |s: WechatSettings, k: &str, v3: &str| WechatClient::new(s, k, v3, reqwest::Client::new());
    assert!(new(settings(pk.clone()), MERCHANT_PRIVATE, "short").is_err());
    assert!(new(settings(pk.clone()), "not a key", W_APIV3).is_err());
    let mut s = settings(pk.clone());
    s.api_base = "ftp://x".into();
    assert!(new(s, MERCHANT_PRIVATE, W_APIV3).is_err());
    let bad_id = WechatPlatform::PublicKey { public_key_id: "123".into(), public_key: PROVIDER_PUBLIC.into() };
    assert!(new(settings(bad_id), MERCHANT_PRIVATE, W_APIV3).is_err());
    let mislabelled = WechatPlatform::Certificates {
        certificates: vec![PlatformCertificate { serial_no: "01".into(), certificate_pem: PROVIDER_CERT.into() }],
    };
    assert!(new(settings(mislabelled), MERCHANT_PRIVATE, W_APIV3).is_err());
    let c = pubkey_client();
    assert_eq!(c.account(), "1230000109");
    assert!(!format!("{c:?}").contains(W_APIV3));
    // settings serialize with a mode tag
    let json = serde_json::to_value(settings(pk)).unwrap();
    assert_eq!(json["platform"]["mode"], "public_key");
}

#[test]
fn notify_replies() {
    let c = pubkey_client();
    let ok = c.notify_reply(true);
    assert_eq!((ok.status, ok.body.len()), (204, 0));
    let fail = c.notify_reply(false);
    assert_eq!(fail.status, 500);
    assert_eq!(String::from_utf8(fail.body).unwrap(), r#"{"code":"FAIL","message":"失败"}"#);
}

#[test]
fn state_words() {
    assert_eq!(trade_state("SUCCESS"), Some(TradeState::Paid));
    assert_eq!(trade_state("USERPAYING"), Some(TradeState::Waiting));
    assert_eq!(trade_state("REVOKED"), Some(TradeState::Closed));
    assert_eq!(trade_state("PAYERROR"), Some(TradeState::Failed));
    assert_eq!(trade_state("REFUND"), Some(TradeState::Refunded));
    assert_eq!(trade_state("???"), None);
    assert_eq!(refund_state("CLOSE"), Some(RefundState::Failed));
    assert_eq!(seg("a|b c*"), "a%7Cb%20c*");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn notification_parser_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        ts in "[0-9-]{0,12}",
        serial in prop_oneof![Just(W_PUB_ID.to_string()), "[A-Z0-9_]{0,40}"],
        sig in "[A-Za-z0-9+/=]{0,400}",
        ct in prop_oneof![Just("application/json".to_string()), ".{0,30}"],
        now in any::<i64>(),
    ) {
        let c = pubkey_client();
        let n = RawNotification {
            headers: vec![
                ("wechatpay-timestamp".into(), ts),
                ("wechatpay-nonce".into(), "n".into()),
                ("wechatpay-serial".into(), serial),
                ("wechatpay-signature".into(), sig),
            ],
            content_type: ct,
            body,
        };
        let _ = c.owns_notification(&n);
        prop_assert!(c.verify_notification(&n, now).is_err());
    }

    #[test]
    fn json_bodies_that_verify_never_panic(body in ".{0,300}", event in "[A-Z.]{0,20}") {
        // a correctly signed envelope with arbitrary content must be refused or mapped, not crash
        let c = pubkey_client();
        let now = 1_704_081_611;
        let _ = c.verify_notification(&signed_notification(&event, &body, now), now * 1000);
        let key = PrivateKey::parse(PROVIDER_PRIVATE).unwrap();
        let sig = key.sign_sha256_b64(&response_message(&now.to_string(), "N", body.as_bytes()));
        let n = RawNotification {
            headers: vec![
                ("wechatpay-timestamp".into(), now.to_string()),
                ("wechatpay-nonce".into(), "N".into()),
                ("wechatpay-serial".into(), W_PUB_ID.into()),
                ("wechatpay-signature".into(), sig),
            ],
            content_type: "application/json".into(),
            body: body.into_bytes(),
        };
        prop_assert!(c.verify_notification(&n, now * 1000).is_err());
    }

    #[test]
    fn header_and_bill_parsers_never_panic(s in ".{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_authorization(&s);
        let _ = parse_authorization(&format!("WECHATPAY2-SHA256-RSA2048 {s}"));
        if let Ok(b) = parse_bill(&bytes) {
            let _ = bill_statement_lines(&b);
        }
        if let Ok(b) = parse_bill(s.as_bytes()) {
            let _ = bill_statement_lines(&b);
        }
        let _ = maybe_gunzip(&bytes);
    }
}
