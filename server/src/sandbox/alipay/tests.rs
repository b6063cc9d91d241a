//! The Alipay sandbox driven through our client's wire code (`gateways/alipay/wire.rs`):
//! requests are signed and answers verified by the client's reading of the protocol, the sandbox
//! checks with its own.

use super::*;
use crate::crypto::test_keys::*;
use crate::gateways::alipay::wire as client;
use crate::sandbox::SandboxSettings;

const APP: &str = "2021000000000001";

fn settings(dir: Option<&std::path::Path>) -> SandboxSettings {
    match dir {
        Some(d) => SandboxSettings::in_dir("http://127.0.0.1:1".into(), 1, d),
        None => SandboxSettings {
            base_url: "http://127.0.0.1:1".into(),
            time_scale_permille: 1,
            key_dir: None,
            state_file: None,
        },
    }
}

async fn sandbox() -> AlipaySandbox {
    let sb = AlipaySandbox::new(SandboxCtx::open(settings(None)).await.unwrap().for_sandbox()).unwrap();
    sb.register_app(APP, MERCHANT_PUBLIC).await.unwrap();
    sb
}

fn merchant() -> PrivateKey {
    PrivateKey::parse(MERCHANT_PRIVATE).unwrap()
}

fn request(method: &str, biz: &str, extra: &[(&str, &str)]) -> Params {
    let mut p: Params = vec![
        ("app_id".into(), APP.into()),
        ("method".into(), method.into()),
        ("charset".into(), "utf-8".into()),
        ("sign_type".into(), "RSA2".into()),
        ("timestamp".into(), "2024-01-01 12:00:00".into()),
        ("version".into(), "1.0".into()),
        ("biz_content".into(), biz.into()),
    ];
    for (k, v) in extra {
        p.push((k.to_string(), v.to_string()));
    }
    client::sign_request(&mut p, &merchant());
    p
}

/// Calls gateway.do, checks the answer's layout and signature, returns the node.
async fn call(sb: &AlipaySandbox, params: Params) -> Map<String, Value> {
    let method = param(&params, "method").unwrap_or("").to_string();
    let resp = sb.core.gateway(params).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    let node_name = if method.is_empty() { "error_response".to_string() } else { client::response_node_name(&method) };
    let parts = client::extract_response(text, &node_name).unwrap_or_else(|| panic!("no node in {text}"));
    // the A.5.2 recipe: compact, sign right after the node, `/` never escaped, real-length sign
    assert!(
        text.starts_with(&format!("{{\"{}\":{{", if parts.is_error_response { "error_response" } else { &node_name }))
    );
    assert!(text.contains(&format!("{},\"sign\":\"", parts.node)));
    assert!(!text.contains("\\/"));
    let sign = parts.sign.clone().unwrap();
    assert_eq!(sign.len(), 344);
    assert!(client::verify_response_node(&PublicKey::parse(&sb.public_key_pem()).unwrap(), parts.node, &sign));
    serde_json::from_str(parts.node).unwrap()
}

fn code(n: &Map<String, Value>) -> (String, String) {
    (
        n.get("code").and_then(Value::as_str).unwrap_or("").to_string(),
        n.get("sub_code").and_then(Value::as_str).unwrap_or("").to_string(),
    )
}

fn s<'a>(n: &'a Map<String, Value>, k: &str) -> &'a str {
    n.get(k).and_then(Value::as_str).unwrap_or("")
}

async fn precreate(sb: &AlipaySandbox, no: &str, amount: &str) -> Map<String, Value> {
    let biz = format!(r#"{{"out_trade_no":"{no}","total_amount":{amount},"subject":"挂号费"}}"#);
    call(sb, request("alipay.trade.precreate", &biz, &[("notify_url", "http://127.0.0.1:1/notify")])).await
}

async fn query(sb: &AlipaySandbox, no: &str) -> Map<String, Value> {
    call(sb, request("alipay.trade.query", &format!(r#"{{"out_trade_no":"{no}"}}"#), &[])).await
}

async fn refund(sb: &AlipaySandbox, no: &str, amount: &str, req: Option<&str>) -> Map<String, Value> {
    let biz = match req {
        Some(r) => format!(r#"{{"out_trade_no":"{no}","refund_amount":"{amount}","out_request_no":"{r}"}}"#),
        None => format!(r#"{{"out_trade_no":"{no}","refund_amount":"{amount}"}}"#),
    };
    call(sb, request("alipay.trade.refund", &biz, &[])).await
}

#[tokio::test]
async fn trade_lifecycle() {
    let sb = sandbox().await;
    let n = precreate(&sb, "T1", "\"100.00\"").await;
    assert_eq!(code(&n).0, "10000");
    assert!(s(&n, "qr_code").starts_with("http://127.0.0.1:1/sandbox/alipay/pay/"));
    // before the scan Alipay has no trade
    let q = query(&sb, "T1").await;
    assert_eq!(code(&q), ("40004".into(), "ACQ.TRADE_NOT_EXIST".into()));
    assert_eq!(s(&q, "out_trade_no"), "T1");
    assert_eq!(sb.trade_state("T1").await.as_deref(), Some("WAIT_SCAN"));
    sb.scan("T1").await.unwrap();
    let q = query(&sb, "T1").await;
    assert_eq!(s(&q, "trade_status"), "WAIT_BUYER_PAY");
    assert_eq!(s(&q, "total_amount"), "100.00");
    assert!(s(&q, "trade_no").len() == 28);
    // refunds of an unpaid trade fail
    assert_eq!(code(&refund(&sb, "T1", "1.00", Some("R0")).await).1, "ACQ.TRADE_STATUS_ERROR");
    sb.pay("T1").await.unwrap();
    assert!(sb.pay("T1").await.is_err(), "paying twice");
    let q = query(&sb, "T1").await;
    assert_eq!(s(&q, "trade_status"), "TRADE_SUCCESS");
    assert!(!s(&q, "send_pay_date").is_empty());
    assert_eq!(q["fund_bill_list"][0]["fund_channel"], "ALIPAYACCOUNT");
    // precreate again after payment
    assert_eq!(code(&precreate(&sb, "T1", "\"100.00\"").await).1, "ACQ.TRADE_HAS_SUCCESS");
    // close a paid trade
    let c = call(&sb, request("alipay.trade.close", r#"{"out_trade_no":"T1"}"#, &[])).await;
    assert_eq!(code(&c).1, "ACQ.TRADE_STATUS_ERROR");
    // refunds
    assert_eq!(code(&refund(&sb, "T1", "10.00", None).await).1, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");
    let r = refund(&sb, "T1", "10.00", Some("R1")).await;
    assert_eq!((s(&r, "fund_change"), s(&r, "refund_fee"), s(&r, "send_back_fee")), ("Y", "10.00", "10.00"));
    let r = refund(&sb, "T1", "20.00", Some("R2")).await;
    assert_eq!((s(&r, "fund_change"), s(&r, "refund_fee")), ("Y", "30.00"));
    let again = refund(&sb, "T1", "10.00", Some("R1")).await;
    assert_eq!((s(&again, "fund_change"), s(&again, "refund_fee")), ("N", "30.00"));
    assert_eq!(code(&refund(&sb, "T1", "11.00", Some("R1")).await).1, "ACQ.CONTEXT_INCONSISTENT");
    let over = refund(&sb, "T1", "70.01", Some("R3")).await;
    assert_eq!(code(&over).1, "ACQ.REASON_TRADE_REFUND_FEE_ERR");
    assert_eq!(s(&over, "refund_fee"), "0.00");
    // refund queries
    let rq = |r: &str| {
        request("alipay.trade.fastpay.refund.query", &format!(r#"{{"out_trade_no":"T1","out_request_no":"{r}"}}"#), &[])
    };
    let q2 = call(&sb, rq("R2")).await;
    assert_eq!(
        (s(&q2, "refund_amount"), s(&q2, "refund_status"), s(&q2, "total_amount")),
        ("20.00", "REFUND_SUCCESS", "100.00")
    );
    let unknown = call(&sb, rq("R9")).await;
    assert_eq!(code(&unknown).0, "10000");
    assert_eq!(unknown.len(), 2, "no refund fields: {unknown:?}");
    // the rest, as a number: the trade closes
    let r = refund(&sb, "T1", "70", Some("R3")).await;
    assert_eq!(s(&r, "refund_fee"), "100.00");
    let q = query(&sb, "T1").await;
    assert_eq!(s(&q, "trade_status"), "TRADE_CLOSED");
    assert!(!s(&q, "send_pay_date").is_empty());
    assert_eq!(code(&refund(&sb, "T1", "0.01", Some("R4")).await).1, "ACQ.REASON_TRADE_REFUND_FEE_ERR");
    let view = sb.trade_view("T1").await.unwrap().unwrap();
    assert_eq!(view["refunds"].as_array().unwrap().len(), 3);
    assert_eq!(view["state"], "TRADE_CLOSED");
    // the success notification as sent: V1-signed, no empty values
    let (headers, body) = sb.signed_success_notification("T1").await.unwrap();
    assert!(headers[0].1.starts_with("application/x-www-form-urlencoded"));
    let p = wire::parse_form(&body);
    assert!(p.iter().all(|(_, v)| !v.is_empty()));
    assert_eq!(param(&p, "trade_status"), Some("TRADE_SUCCESS"));
    assert!(client::verify_notify_v1(&p, &PublicKey::parse(&sb.public_key_pem()).unwrap()));
}

#[tokio::test]
async fn precreate_rules_and_close_before_scan() {
    let sb = sandbox().await;
    let first = precreate(&sb, "T2", "12.5").await;
    assert_eq!(code(&first).0, "10000");
    let again = precreate(&sb, "T2", "\"12.50\"").await;
    assert_eq!(s(&again, "qr_code"), s(&first, "qr_code"), "same trade, same code");
    assert_eq!(code(&precreate(&sb, "T2", "\"12.51\"").await).1, "ACQ.CONTEXT_INCONSISTENT");
    for bad in ["0", "\"-1\"", "\"1.234\"", "100000000.01", "\"abc\""] {
        assert_eq!(code(&precreate(&sb, "T3", bad).await).1, "ACQ.INVALID_PARAMETER", "{bad}");
    }
    // closing before the scan: "does not exist", yet the code can no longer be paid
    let c = call(&sb, request("alipay.trade.close", r#"{"out_trade_no":"T2"}"#, &[])).await;
    assert_eq!(code(&c).1, "ACQ.TRADE_NOT_EXIST");
    assert!(sb.scan("T2").await.is_err());
    assert!(sb.pay("T2").await.is_err());
    assert_eq!(code(&query(&sb, "T2").await).1, "ACQ.TRADE_NOT_EXIST");
    assert_eq!(code(&precreate(&sb, "T2", "12.5").await).1, "ACQ.TRADE_HAS_CLOSE");
    // close after the scan
    precreate(&sb, "T4", "1").await;
    sb.scan("T4").await.unwrap();
    let c = call(&sb, request("alipay.trade.close", r#"{"out_trade_no":"T4"}"#, &[])).await;
    assert_eq!(code(&c).0, "10000");
    assert_eq!(s(&query(&sb, "T4").await, "trade_status"), "TRADE_CLOSED");
    assert!(sb.pay("T4").await.is_err());
    // unknown trades
    let c = call(&sb, request("alipay.trade.close", r#"{"out_trade_no":"NOPE"}"#, &[])).await;
    assert_eq!(code(&c).1, "ACQ.TRADE_NOT_EXIST");
    assert_eq!(code(&refund(&sb, "NOPE", "1.00", Some("R")).await).1, "ACQ.TRADE_NOT_EXIST");
    // query by trade_no works once scanned
    precreate(&sb, "T5", "2").await;
    sb.pay("T5").await.unwrap();
    let trade_no = s(&query(&sb, "T5").await, "trade_no").to_string();
    let by_no = call(&sb, request("alipay.trade.query", &format!(r#"{{"trade_no":"{trade_no}"}}"#), &[])).await;
    assert_eq!(s(&by_no, "out_trade_no"), "T5");
    // finish: TRADE_FINISHED, no more refunds
    sb.finish("T5").await.unwrap();
    assert_eq!(code(&refund(&sb, "T5", "1.00", Some("R1")).await).1, "ACQ.TRADE_HAS_FINISHED");
}

#[tokio::test]
async fn expiry_closes_unpaid_trades() {
    let sb = sandbox().await;
    let past = wire::fmt_time(now_ms() - 2_000);
    let biz = format!(r#"{{"out_trade_no":"E1","total_amount":"1.00","subject":"x","time_expire":"{past}"}}"#);
    assert_eq!(code(&call(&sb, request("alipay.trade.precreate", &biz, &[])).await).0, "10000");
    assert_eq!(sb.trade_state("E1").await.as_deref(), Some("TRADE_CLOSED"));
    assert!(sb.pay("E1").await.is_err());
    // scanned, then the time passes
    let biz = r#"{"out_trade_no":"E2","total_amount":"1.00","subject":"x","timeout_express":"15m"}"#;
    call(&sb, request("alipay.trade.precreate", biz, &[])).await;
    sb.scan("E2").await.unwrap();
    let mut t = sb.trade("E2").await.unwrap();
    t.expire_ms = Some(now_ms() - 1);
    sb.core.store().save_trade(NAME, &t).await.unwrap();
    let q = query(&sb, "E2").await;
    assert_eq!(s(&q, "trade_status"), "TRADE_CLOSED");
    assert_eq!(sb.trade_view("E2").await.unwrap().unwrap()["expired"], true);
    let bad = r#"{"out_trade_no":"E3","total_amount":"1.00","subject":"x","time_expire":"tomorrow"}"#;
    assert_eq!(code(&call(&sb, request("alipay.trade.precreate", bad, &[])).await).1, "ACQ.INVALID_PARAMETER");
}

#[tokio::test]
async fn protocol_errors_are_signed() {
    let sb = sandbox().await;
    let biz = r#"{"out_trade_no":"T1"}"#;
    // unknown app
    let mut p = request("alipay.trade.query", biz, &[]);
    p[0].1 = "2021000000000999".into();
    assert_eq!(code(&call(&sb, p).await), ("40002".into(), "isv.invalid-app-id".into()));
    // tampered
    let mut p = request("alipay.trade.query", biz, &[]);
    p.iter_mut().find(|(k, _)| k == "biz_content").unwrap().1 = r#"{"out_trade_no":"T2"}"#.into();
    let n = call(&sb, p).await;
    assert_eq!(code(&n), ("40002".into(), "isv.invalid-signature".into()));
    assert!(s(&n, "sub_msg").contains(r#"biz_content={"out_trade_no":"T2"}"#));
    // missing things
    for k in ["sign", "app_id", "sign_type", "timestamp", "version"] {
        let mut p = request("alipay.trade.query", biz, &[]);
        p.retain(|(n, _)| n != k);
        assert_eq!(code(&call(&sb, p).await).0, "40001", "{k}");
    }
    let mut p = request("alipay.trade.query", biz, &[]);
    p.retain(|(n, _)| n != "method");
    assert_eq!(code(&call(&sb, p).await).1, "isv.missing-method");
    // bad sign_type, conflicting duplicate, unknown method, bad biz_content
    let mut p = request("alipay.trade.query", biz, &[]);
    p.iter_mut().find(|(k, _)| k == "sign_type").unwrap().1 = "SM2".into();
    assert_eq!(code(&call(&sb, p).await).1, "isv.invalid-signature-type");
    let mut p = request("alipay.trade.query", biz, &[]);
    p.push(("biz_content".into(), "{}".into()));
    assert_eq!(code(&call(&sb, p).await).1, "isv.invalid-parameter");
    let mut p = request("alipay.trade.query", biz, &[]);
    p.push(("app_id".into(), APP.into())); // an identical repeat is harmless
    assert_eq!(code(&call(&sb, p).await).1, "ACQ.TRADE_NOT_EXIST");
    let p = request("alipay.trade.pay", biz, &[]);
    let resp = sb.core.gateway(p).await;
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    assert!(std::str::from_utf8(&body).unwrap().starts_with(r#"{"error_response":{"code":"40002""#));
    let p = request("alipay.trade.query", "[1]", &[]);
    assert_eq!(code(&call(&sb, p).await).1, "isv.invalid-parameter");
}

#[tokio::test]
async fn signature_variants() {
    let sb = sandbox().await;
    // an SDK that signs empty parameters too (Node, official Python): second attempt verifies
    let mut p: Params = vec![
        ("app_id".into(), APP.into()),
        ("method".into(), "alipay.trade.query".into()),
        ("sign_type".into(), "RSA2".into()),
        ("timestamp".into(), "2024-01-01 12:00:00".into()),
        ("version".into(), "1.0".into()),
        ("app_auth_token".into(), String::new()),
        ("biz_content".into(), r#"{"out_trade_no":"X"}"#.into()),
    ];
    let content = client::sign_content(&p, &["sign"], false);
    assert!(content.contains("app_auth_token=&"));
    p.push(("sign".into(), merchant().sign_sha256_b64(content.as_bytes())));
    assert_eq!(code(&call(&sb, p).await).1, "ACQ.TRADE_NOT_EXIST");
    // legacy RSA (SHA-1): the A1 request signed with SHA1withRSA (openssl dgst -sha1)
    let p: Params = [
        ("app_id", APP),
        ("method", "alipay.trade.precreate"),
        ("format", "JSON"),
        ("charset", "utf-8"),
        ("sign_type", "RSA"),
        ("timestamp", "2024-01-01 12:00:00"),
        ("version", "1.0"),
        ("notify_url", "http://127.0.0.1:8080/alipay/notify"),
        ("biz_content", r#"{"out_trade_no":"T202401010001","total_amount":"88.88","subject":"测试商品"}"#),
        ("sign", "IDXiQvUUnzu5fbOFbftN99M7KruIZEOEkGoUM5lPpID9G70KhJ6AQ94NHsurNwwAypqNq5cki29dCMgja3jjdZJkwfwS9xwBFHGNSI3mxuRKWeOlMq7ZfAWH1hvLJrfLYtaJv+TknvEqOnbomfFfXaWDvIhsoysSL4KxJScee3mDgw0wXu9HUsAcWmifo3PW2cJjUvX4zMcnIplL39lqQr4tyY5zi79xzdBFC6MMqULwWojh1Jj5KIZGzaoYK2kvwEcJp5P0wr/XL2fCAMG2OBJmQeXslA5cIsoKDhPS5FZg2qap3uH6Yd1c/Te0rTnpcUo0uj3+ZBjYPtxCt1EoXg=="),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let n = call(&sb, p.clone()).await;
    assert_eq!(code(&n).0, "10000");
    // the same signature with sign_type RSA2 does not verify
    let mut p2 = p;
    p2.iter_mut().find(|(k, _)| k == "sign_type").unwrap().1 = "RSA2".into();
    assert_eq!(code(&call(&sb, p2).await).1, "isv.invalid-signature");
    // a python-alipay-sdk style biz_content with \u escapes is signed and read as sent
    let biz = r#"{"out_trade_no":"U1","total_amount":"1.00","subject":"\u6d4b\u8bd5"}"#;
    let n = call(&sb, request("alipay.trade.precreate", biz, &[])).await;
    assert_eq!(code(&n).0, "10000");
    assert_eq!(sb.trade_view("U1").await.unwrap().unwrap()["out_trade_no"], "U1");
    assert_eq!(sb.trade("U1").await.unwrap().subject, "测试");
}

#[tokio::test]
async fn injected_failures() {
    let sb = sandbox().await;
    // set before the trade exists: the precreate itself fails once
    sb.set_faults("F1", FaultSpec { fail_next_call: true, ..FaultSpec::default() }).await.unwrap();
    assert_eq!(code(&precreate(&sb, "F1", "1").await), ("20000".into(), "isp.unknow-error".into()));
    assert_eq!(code(&precreate(&sb, "F1", "1").await).0, "10000");
    sb.set_faults("F1", FaultSpec { fail_next_call: true, ..FaultSpec::default() }).await.unwrap();
    assert_eq!(code(&query(&sb, "F1").await).0, "20000");
    assert_eq!(code(&query(&sb, "F1").await).1, "ACQ.TRADE_NOT_EXIST");
    // defaults apply to new trades
    sb.set_default_faults(FaultSpec { drop: true, ..FaultSpec::default() }).await.unwrap();
    precreate(&sb, "F2", "1").await;
    assert_eq!(sb.trade_view("F2").await.unwrap().unwrap()["faults"]["drop"], true);
    sb.set_default_faults(FaultSpec::default()).await.unwrap();
    precreate(&sb, "F3", "1").await;
    assert_eq!(sb.trade_view("F3").await.unwrap().unwrap()["faults"]["drop"], false);
}

#[tokio::test]
async fn bills() {
    let sb = sandbox().await;
    let today = clinicpay::time::local_date(now_ms()).unwrap();
    let bill = |d: String| {
        request(
            "alipay.data.dataservice.bill.downloadurl.query",
            &format!(r#"{{"bill_type":"trade","bill_date":"{d}"}}"#),
            &[],
        )
    };
    let n = call(&sb, bill(today.format("%Y-%m-%d").to_string())).await;
    assert_eq!(code(&n), ("40004".into(), "isp.bill_not_exist".into()));
    let n = call(&sb, bill(today.format("%Y-%m").to_string())).await;
    assert_eq!(code(&n).1, "isp.bill_not_exist");
    let n = call(&sb, bill("2024-13-01".into())).await;
    assert_eq!(code(&n).1, "ACQ.INVALID_PARAMETER");
    precreate(&sb, "B1", "5").await;
    sb.pay("B1").await.unwrap();
    refund(&sb, "B1", "1.00", Some("BR1")).await;
    sb.backdate("B1", 1).await.unwrap();
    let n = call(&sb, bill(today.pred_opt().unwrap().format("%Y-%m-%d").to_string())).await;
    let url = s(&n, "bill_download_url");
    assert!(url.starts_with("http://127.0.0.1:1/sandbox/alipay/bills/"), "{url}");
    let token = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let link: BillLink = sb.core.store().setting(NAME, &format!("bill:{token}"), now_ms()).await.unwrap().unwrap();
    let rows = sb.core.bill_rows(APP, link.from_ms, link.to_ms).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[1].refund && rows[1].out_request_no.as_deref() == Some("BR1"));
    assert!(sb.backdate("B1", -1).await.is_err());
}

#[tokio::test]
async fn registration() {
    let sb = sandbox().await;
    assert!(sb.register_app("", MERCHANT_PUBLIC).await.is_err());
    assert!(sb.register_app("app with space", MERCHANT_PUBLIC).await.is_err());
    assert!(sb.register_app("2021000000000002", "not a key").await.is_err());
    assert!(sb.register_app("2021000000000002", &sb.public_key_pem()).await.is_err());
    let bare: String = MERCHANT_PUBLIC.lines().filter(|l| !l.starts_with("-----")).collect();
    let pem = sb.register_app("2021000000000002", &bare).await.unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_ne!(PublicKey::parse(&pem).unwrap(), PublicKey::parse(MERCHANT_PUBLIC).unwrap());
}

#[tokio::test]
async fn a_restart_forgets_nothing() {
    let dir = std::env::temp_dir().join(format!("clinicpay-alipay-sb-{}-{}", std::process::id(), now_ms()));
    let make =
        || async { AlipaySandbox::new(SandboxCtx::open(settings(Some(&dir))).await.unwrap().for_sandbox()).unwrap() };
    let (qr, trade_no) = {
        let first = make().await;
        first.register_app(APP, MERCHANT_PUBLIC).await.unwrap();
        let qr = s(&precreate(&first, "P1", "\"9.00\"").await, "qr_code").to_string();
        first.pay("P1").await.unwrap();
        let trade_no = s(&query(&first, "P1").await, "trade_no").to_string();
        (qr, trade_no)
    };
    let again = make().await;
    let key: App = again.core.store().registration(NAME, APP).await.unwrap().unwrap();
    assert_eq!(PublicKey::parse(&key.public_key).unwrap(), PublicKey::parse(MERCHANT_PUBLIC).unwrap());
    let q = query(&again, "P1").await;
    assert_eq!((s(&q, "trade_status"), s(&q, "trade_no")), ("TRADE_SUCCESS", trade_no.as_str()), "the trade survives");
    assert_eq!(code(&precreate(&again, "P1", "\"9.00\"").await).1, "ACQ.TRADE_HAS_SUCCESS");
    let token = qr.rsplit('/').next().unwrap();
    assert!(
        again.core.store().trade_by_token::<Trade>(NAME, token).await.unwrap().is_some(),
        "the payer page still opens"
    );
    // a new trade gets a trade_no never used before
    precreate(&again, "P2", "1").await;
    again.pay("P2").await.unwrap();
    assert_ne!(s(&query(&again, "P2").await, "trade_no"), trade_no);
    let _ = std::fs::remove_dir_all(&dir);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn gateway_never_panics(pairs in proptest::collection::vec(("[a-z_]{1,12}", "\\PC{0,40}"), 0..12)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let sb = sandbox().await;
            let mut p: Params = pairs;
            p.push(("method".into(), "alipay.trade.query".into()));
            let _ = sb.core.gateway(p.clone()).await;
            // and with a valid signature over arbitrary extra parameters
            let mut signed = request("alipay.trade.precreate", r#"{"out_trade_no":"P","total_amount":"1","subject":"x"}"#, &[]);
            signed.pop();
            signed.extend(p.into_iter().filter(|(k, _)| !["method", "sign", "app_id"].contains(&k.as_str())));
            client::sign_request(&mut signed, &merchant());
            let _ = sb.core.gateway(signed).await;
        });
    }
}
