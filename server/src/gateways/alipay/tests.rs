use super::*;
use crate::crypto::test_keys::*;

const APP_ID: &str = "2021000000000001";

fn client() -> AlipayClient {
    AlipayClient::new(
        AlipaySettings {
            app_id: APP_ID.into(),
            gateway_url: "http://127.0.0.1:9/gateway.do".into(),
            alipay_public_key: PROVIDER_PUBLIC.into(),
            seller_id: None,
        },
        MERCHANT_PRIVATE,
        reqwest::Client::new(),
    )
    .unwrap()
}

fn provider() -> PrivateKey {
    PrivateKey::parse(PROVIDER_PRIVATE).unwrap()
}

/// A response body as the sandbox writes it, signed with `key`.
fn signed_body(method: &str, node: &str, key: &PrivateKey) -> String {
    format!(r#"{{"{}":{node},"sign":"{}"}}"#, wire::response_node_name(method), key.sign_sha256_b64(node.as_bytes()))
}

fn notification(params: &Params) -> RawNotification {
    RawNotification {
        headers: vec![],
        content_type: "application/x-www-form-urlencoded; charset=utf-8".into(),
        body: wire::encode_form(params).into_bytes(),
    }
}

fn a3_params() -> Params {
    let text = r#"app_id=2021000000000001&auth_app_id=2021000000000001&buyer_id=2088102177846880&buyer_logon_id=abc***@sandbox.com&buyer_pay_amount=88.88&charset=utf-8&fund_bill_list=[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]&gmt_create=2024-01-01 12:00:05&gmt_payment=2024-01-01 12:00:10&invoice_amount=88.88&notify_id=2024010100222120010012345678&notify_time=2024-01-01 12:00:11&notify_type=trade_status_sync&out_trade_no=T202401010001&point_amount=0.00&receipt_amount=88.88&seller_id=2088102177000000&subject=测试商品&total_amount=88.88&trade_no=2024010122001400001234567890&trade_status=TRADE_SUCCESS&version=1.0"#;
    text.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn key_formats_and_settings() {
    let pkcs8 = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();
    let pkcs1 = pkcs8.to_pkcs1_pem();
    let bare: String = MERCHANT_PRIVATE.lines().filter(|l| !l.starts_with("-----")).collect();
    let provider_bare: String = PROVIDER_PUBLIC.lines().filter(|l| !l.starts_with("-----")).collect();
    for key in [MERCHANT_PRIVATE, pkcs1.as_str(), bare.as_str()] {
        for alipay in [PROVIDER_PUBLIC, provider_bare.as_str()] {
            let s = AlipaySettings {
                app_id: APP_ID.into(),
                gateway_url: "https://openapi.alipay.com/gateway.do".into(),
                alipay_public_key: alipay.into(),
                seller_id: None,
            };
            let c = AlipayClient::new(s, key, reqwest::Client::new()).unwrap();
            // signing with any of the formats gives the A1 vector
            let p = c.signed_params(
                "alipay.trade.precreate",
                r#"{"out_trade_no":"T202401010001","total_amount":"88.88","subject":"测试商品"}"#,
                &[("notify_url", "http://127.0.0.1:8080/alipay/notify".into())],
                "2024-01-01 12:00:00",
            );
            assert!(param(&p, "sign").unwrap().starts_with("lW8VsIHF5JJKMbbH0YY68vHF"));
            assert!(!format!("{c:?}").contains("PRIVATE"));
        }
    }
    let base = AlipaySettings {
        app_id: APP_ID.into(),
        gateway_url: "https://openapi.alipay.com/gateway.do".into(),
        alipay_public_key: PROVIDER_PUBLIC.into(),
        seller_id: None,
    };
    let bad = |s: AlipaySettings, k: &str| AlipayClient::new(s, k, reqwest::Client::new()).is_err();
    assert!(bad(base.clone(), "not a key"));
    assert!(bad(AlipaySettings { app_id: " ".into(), ..base.clone() }, MERCHANT_PRIVATE));
    assert!(bad(AlipaySettings { gateway_url: "ftp://x/gateway.do".into(), ..base.clone() }, MERCHANT_PRIVATE));
    assert!(bad(AlipaySettings { alipay_public_key: "xyz".into(), ..base.clone() }, MERCHANT_PRIVATE));
    // the app's own public key configured as Alipay's
    assert!(bad(AlipaySettings { alipay_public_key: MERCHANT_PUBLIC.into(), ..base.clone() }, MERCHANT_PRIVATE));
    // settings round-trip through JSON, seller_id optional
    let json = r#"{"app_id":"1","gateway_url":"https://openapi.alipay.com/gateway.do","alipay_public_key":"k"}"#;
    let s: AlipaySettings = serde_json::from_str(json).unwrap();
    assert_eq!(s.seller_id, None);
}

#[test]
fn biz_content_is_compact_ordered_utf8() {
    let b = biz(&[("out_trade_no", "T1".into()), ("total_amount", "88.88".into()), ("subject", "测试/\"x\"".into())]);
    assert_eq!(b, r#"{"out_trade_no":"T1","total_amount":"88.88","subject":"测试/\"x\""}"#);
}

#[test]
fn responses_are_verified_and_classified() {
    let c = client();
    let m = "alipay.trade.query";
    let ok = signed_body(m, r#"{"code":"10000","msg":"Success","trade_status":"WAIT_BUYER_PAY"}"#, &provider());
    assert!(matches!(c.interpret(m, &ok), Reply::Ok(_)));
    // signed by someone else
    let forged = signed_body(m, r#"{"code":"10000","msg":"Success"}"#, &PrivateKey::parse(MERCHANT_PRIVATE).unwrap());
    assert!(matches!(c.interpret(m, &forged), Reply::Unknown(_)));
    // unsigned
    assert!(matches!(c.interpret(m, r#"{"alipay_trade_query_response":{"code":"10000"}}"#), Reply::Unknown(_)));
    // tampered after signing
    let tampered = ok.replace("WAIT_BUYER_PAY", "TRADE_SUCCESS");
    assert!(matches!(c.interpret(m, &tampered), Reply::Unknown(_)));
    // garbage
    assert!(matches!(c.interpret(m, "<html>502</html>"), Reply::Unknown(_)));
    // business failure with sub_code
    let nf = signed_body(
        m,
        r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}"#,
        &provider(),
    );
    match c.interpret(m, &nf) {
        Reply::Fail(e) => {
            assert_eq!(e.code, "40004");
            assert_eq!(e.sub_code.as_deref(), Some("ACQ.TRADE_NOT_EXIST"));
            assert_eq!(e.message, "交易不存在");
            assert!(e.is_not_found());
        }
        other => panic!("{other:?}"),
    }
    // service errors are retryable: Unknown
    for node in [
        r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error","sub_msg":"系统繁忙"}"#,
        r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误"}"#,
    ] {
        assert!(matches!(c.interpret(m, &signed_body(m, node, &provider())), Reply::Unknown(_)), "{node}");
    }
    // error_response (signed) is a failure
    let node =
        r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}"#;
    let body = format!(r#"{{"error_response":{node},"sign":"{}"}}"#, provider().sign_sha256_b64(node.as_bytes()));
    match c.interpret(m, &body) {
        Reply::Fail(e) => assert_eq!(e.sub_code.as_deref(), Some("isv.invalid-app-id")),
        other => panic!("{other:?}"),
    }
    // `\/` in the body: verified as written, or with `/` unescaped (Java SDK's fallback)
    let node = r#"{"code":"10000","msg":"Success","qr_code":"https://qr.alipay.com/x"}"#;
    let sig = provider().sign_sha256_b64(node.as_bytes());
    let escaped = format!(r#"{{"alipay_trade_query_response":{},"sign":"{sig}"}}"#, node.replace('/', "\\/"));
    assert!(matches!(c.interpret(m, &escaped), Reply::Ok(_)));
}

#[test]
fn trade_states() {
    let st = |json: &str| trade_state(&serde_json::from_str(json).unwrap());
    assert_eq!(st(r#"{"trade_status":"WAIT_BUYER_PAY"}"#), Some(TradeState::Waiting));
    assert_eq!(st(r#"{"trade_status":"TRADE_SUCCESS"}"#), Some(TradeState::Paid));
    assert_eq!(st(r#"{"trade_status":"TRADE_FINISHED"}"#), Some(TradeState::Paid));
    assert_eq!(st(r#"{"trade_status":"TRADE_CLOSED"}"#), Some(TradeState::Closed));
    assert_eq!(st(r#"{"trade_status":"TRADE_CLOSED","buyer_pay_amount":"0.00"}"#), Some(TradeState::Closed));
    assert_eq!(
        st(r#"{"trade_status":"TRADE_CLOSED","send_pay_date":"2024-01-01 12:00:10"}"#),
        Some(TradeState::Refunded)
    );
    assert_eq!(st(r#"{"trade_status":"TRADE_CLOSED","refund_fee":"1.00"}"#), Some(TradeState::Refunded));
    assert_eq!(st(r#"{"trade_status":"SOMETHING"}"#), None);
    assert_eq!(st(r#"{}"#), None);
}

#[test]
fn a3_notification_verifies_and_maps() {
    let c = client();
    let mut params = a3_params();
    wire::sign_notify_v1(&mut params, &provider());
    let n = notification(&params);
    assert!(c.owns_notification(&n));
    let ev = c.verify_notification(&n, 0).unwrap();
    assert_eq!(ev.event_id, "2024010100222120010012345678");
    assert_eq!(ev.account, APP_ID);
    assert_eq!(
        ev.kind,
        EventKind::PaymentSucceeded {
            out_trade_no: "T202401010001".into(),
            provider_txn_id: "2024010122001400001234567890".into(),
            amount: Money::parse("88.88").unwrap(),
            paid_at_ms: wire::parse_time("2024-01-01 12:00:10"),
            payer: Some("abc***@sandbox.com".into()),
        }
    );
    // the documented signature itself
    assert!(param(&params, "sign").unwrap().starts_with("C0wosQMCV9tqXmOrJKKZ"));
    assert!(c.notify_reply(true).body == b"success" && c.notify_reply(false).body == b"failure");
    assert_eq!(c.notify_reply(true).status, 200);
}

#[test]
fn notification_rejections() {
    let c = client();
    let signed = |mutate: &dyn Fn(&mut Params)| {
        let mut p = a3_params();
        mutate(&mut p);
        wire::sign_notify_v1(&mut p, &provider());
        p
    };
    // content type
    let mut n = notification(&signed(&|_| {}));
    n.content_type = "application/json".into();
    assert!(matches!(c.verify_notification(&n, 0), Err(Rejection::ContentType(_))));
    // bad signature
    let mut p = signed(&|_| {});
    p.iter_mut().find(|(k, _)| k == "total_amount").unwrap().1 = "0.01".into();
    assert_eq!(c.verify_notification(&notification(&p), 0), Err(Rejection::BadSignature));
    // unsigned
    let p: Params = a3_params();
    assert!(matches!(c.verify_notification(&notification(&p), 0), Err(Rejection::Malformed(_))));
    // other app
    let p = signed(&|p| p[0].1 = "2021000000000999".into());
    assert!(!c.owns_notification(&notification(&p)));
    assert!(matches!(c.verify_notification(&notification(&p), 0), Err(Rejection::UnknownAccount(_))));
    // bad amount, missing notify_id: malformed even though signed
    let p = signed(&|p| p.iter_mut().find(|(k, _)| k == "total_amount").unwrap().1 = "8,888".into());
    assert!(matches!(c.verify_notification(&notification(&p), 0), Err(Rejection::Malformed(_))));
    let p = signed(&|p| p.retain(|(k, _)| k != "notify_id"));
    assert!(matches!(c.verify_notification(&notification(&p), 0), Err(Rejection::Malformed(_))));
    // duplicated parameter
    let mut p = signed(&|_| {});
    p.push(("trade_status".into(), "TRADE_CLOSED".into()));
    assert!(matches!(c.verify_notification(&notification(&p), 0), Err(Rejection::Malformed(_))));
    // not UTF-8
    let mut n = notification(&signed(&|_| {}));
    n.body.push(0xff);
    assert!(c.verify_notification(&n, 0).is_err());
    // seller_id check when configured
    let mut with_seller = client();
    with_seller.settings.seller_id = Some("2088000000000000".into());
    let p = signed(&|_| {});
    assert!(matches!(with_seller.verify_notification(&notification(&p), 0), Err(Rejection::UnknownAccount(_))));
    // an RSA2 signature relabelled as legacy RSA: refused by name
    let mut p = signed(&|_| {});
    p.iter_mut().find(|(k, _)| k == "sign_type").unwrap().1 = "RSA".into();
    assert_eq!(c.verify_notification(&notification(&p), 0), Err(Rejection::SignType("RSA".into())));
    // issue 13 #10: a genuine SHA1withRSA signature by Alipay's own key, sign_type=RSA, is refused
    // too (RSA2 is pinned: the weaker hash is never checked); and so is a missing sign_type
    let sha1 = sha1_signed(a3_params());
    assert!(PublicKey::parse(PROVIDER_PUBLIC)
        .unwrap()
        .verify_sha1_b64(wire::notify_sign_content_v1(&sha1).as_bytes(), param(&sha1, "sign").unwrap()));
    assert_eq!(c.verify_notification(&notification(&sha1), 0), Err(Rejection::SignType("RSA".into())));
    let mut untyped = signed(&|_| {});
    untyped.retain(|(k, _)| k != "sign_type");
    assert_eq!(c.verify_notification(&notification(&untyped), 0), Err(Rejection::SignType(String::new())));
    // the browser return is pinned the same way
    let query = wire::encode_form(&sha1);
    assert_eq!(c.verify_return(&query), Err(Rejection::SignType("RSA".into())));
}

/// Params signed the legacy way: SHA1withRSA by the provider's key, `sign_type=RSA`.
fn sha1_signed(mut p: Params) -> Params {
    use base64::Engine;
    use rsa::pkcs8::DecodePrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(PROVIDER_PRIVATE).unwrap();
    let content = wire::notify_sign_content_v1(&p);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, content.as_bytes());
    // DigestInfo for SHA-1 (RFC 8017 §9.2), then the hash
    let mut info = vec![0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14];
    info.extend_from_slice(digest.as_ref());
    let sig = key.sign(rsa::Pkcs1v15Sign::new_unprefixed(), &info).unwrap();
    p.push(("sign_type".into(), "RSA".into()));
    p.push(("sign".into(), base64::engine::general_purpose::STANDARD.encode(sig)));
    p
}

#[test]
fn notification_kinds() {
    let c = client();
    let with = |status: &str, extra: &[(&str, &str)]| {
        let mut p = a3_params();
        p.iter_mut().find(|(k, _)| k == "trade_status").unwrap().1 = status.into();
        for (k, v) in extra {
            p.push((k.to_string(), v.to_string()));
        }
        wire::sign_notify_v1(&mut p, &provider());
        c.verify_notification(&notification(&p), 0)
    };
    assert_eq!(
        with(
            "TRADE_CLOSED",
            &[("refund_fee", "88.88"), ("out_biz_no", "R1"), ("gmt_refund", "2024-01-01 13:00:00.123")]
        )
        .unwrap()
        .kind,
        EventKind::RefundSucceeded {
            out_trade_no: "T202401010001".into(),
            out_refund_no: "R1".into(),
            amount: Money::parse("88.88").unwrap()
        }
    );
    assert_eq!(
        with("TRADE_SUCCESS", &[("refund_fee", "8.00"), ("out_biz_no", "R2")]).unwrap().kind.name(),
        "refund_succeeded"
    );
    assert_eq!(
        with("TRADE_CLOSED", &[]).unwrap().kind,
        EventKind::PaymentClosed { out_trade_no: "T202401010001".into() }
    );
    assert_eq!(
        with("TRADE_FINISHED", &[]).unwrap().kind,
        EventKind::Informational { out_trade_no: "T202401010001".into(), provider_state: "TRADE_FINISHED".into() }
    );
    assert!(matches!(with("TRADE_CLOSED", &[("refund_fee", "1.00")]), Err(Rejection::Malformed(_))));
    assert!(matches!(with("BOGUS", &[]), Err(Rejection::Malformed(_))));
}

#[test]
fn return_params_verify() {
    let c = client();
    let mut p: Params = [
        ("app_id", APP_ID),
        ("auth_app_id", APP_ID),
        ("charset", "utf-8"),
        ("method", "alipay.trade.page.pay.return"),
        ("out_trade_no", "T1"),
        ("seller_id", "2088102177000000"),
        ("timestamp", "2024-01-01 12:00:12"),
        ("total_amount", "88.88"),
        ("trade_no", "2024010122001400001234567890"),
        ("version", "1.0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    wire::sign_notify_v1(&mut p, &provider());
    let q = wire::encode_form(&p);
    let (out, txn, amount) = c.verify_return(&format!("?{q}")).unwrap();
    assert_eq!(
        (out.as_str(), txn.as_str(), amount),
        ("T1", "2024010122001400001234567890", Money::parse("88.88").unwrap())
    );
    assert_eq!(c.verify_return(&q.replace("88.88", "1.00")), Err(Rejection::BadSignature));
}

#[test]
fn page_pay_url_is_signed() {
    let c = client();
    let req = CreatePayment {
        out_trade_no: "T1".into(),
        amount: Money::parse("12.34").unwrap(),
        subject: "挂号费".into(),
        method: PayMethod::AlipayWap,
        expires_at_ms: wire::parse_time("2024-01-01 12:15:00").unwrap(),
        notify_url: "http://127.0.0.1/notify/alipay".into(),
        return_url: Some("http://127.0.0.1/paid".into()),
        payer_openid: None,
        payer_ip: None,
    };
    let url = c.page_pay_url(&req, "alipay.trade.wap.pay", "QUICK_WAP_WAY");
    let (base, query) = url.split_once('?').unwrap();
    assert_eq!(base, "http://127.0.0.1:9/gateway.do");
    let p = wire::parse_form(query.as_bytes());
    assert_eq!(param(&p, "method"), Some("alipay.trade.wap.pay"));
    assert_eq!(param(&p, "return_url"), Some("http://127.0.0.1/paid"));
    let biz: Value = serde_json::from_str(param(&p, "biz_content").unwrap()).unwrap();
    assert_eq!(biz["product_code"], "QUICK_WAP_WAY");
    assert_eq!(biz["total_amount"], "12.34");
    assert_eq!(biz["time_expire"], "2024-01-01 12:15:00");
    let merchant = PublicKey::parse(MERCHANT_PUBLIC).unwrap();
    assert!(merchant.verify_sha256_b64(wire::request_sign_content(&p).as_bytes(), param(&p, "sign").unwrap()));
}

#[tokio::test]
async fn unsupported_methods_and_unreachable_gateway() {
    let c = client();
    let mut req = CreatePayment {
        out_trade_no: "T1".into(),
        amount: Money::parse("1.00").unwrap(),
        subject: "x".into(),
        method: PayMethod::WechatNative,
        expires_at_ms: 0,
        notify_url: "http://127.0.0.1/n".into(),
        return_url: None,
        payer_openid: None,
        payer_ip: None,
    };
    match c.create_payment(&req).await.outcome {
        Outcome::Failure(e) => assert_eq!(e.code, "UNSUPPORTED_METHOD"),
        other => panic!("{other:?}"),
    }
    // port 9 (discard) is closed here: a transport error is Unknown, with the request kept
    req.method = PayMethod::AlipayQr;
    let call = c.create_payment(&req).await;
    assert!(matches!(call.outcome, Outcome::Unknown(_)));
    assert!(call.raw.request.contains("biz_content="));
    assert!(!call.raw.request.contains("PRIVATE"));
}

proptest::proptest! {
    #[test]
    fn notification_parser_never_panics(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ct in proptest::sample::select(vec!["application/x-www-form-urlencoded", "text/plain", "", "APPLICATION/X-WWW-FORM-URLENCODED; charset=GBK"]),
    ) {
        let c = client();
        let n = RawNotification { headers: vec![], content_type: ct.to_string(), body };
        let _ = c.owns_notification(&n);
        let _ = c.verify_notification(&n, 0);
        let _ = c.verify_return(&String::from_utf8_lossy(&n.body));
    }

    #[test]
    fn form_like_notifications_never_panic(s in "[a-z_]{1,12}=[%0-9A-Fa-f+a-z.]{0,20}(&[a-z_]{1,12}=[%0-9A-Fa-f+a-z.]{0,20}){0,12}") {
        let c = client();
        let body = format!("app_id={APP_ID}&sign=abc&notify_id=1&out_trade_no=T&trade_status=TRADE_SUCCESS&{s}");
        let n = RawNotification { headers: vec![], content_type: "application/x-www-form-urlencoded".into(), body: body.into_bytes() };
        let _ = c.verify_notification(&n, 0);
    }

    #[test]
    fn responses_never_panic(body in "\\PC{0,300}") {
        let c = client();
        let _ = c.interpret("alipay.trade.query", &body);
    }
}
