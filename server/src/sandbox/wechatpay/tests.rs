//! Sandbox unit tests (router in-process, requests signed and answers read with our client's
//! wire code, as the SDKs do); the client ↔ sandbox tests over real HTTP are in
//! `tests/integration/gw_wechatpay.rs`.

use super::*;
use crate::crypto::test_keys::*;
use crate::gateways::wechatpay::cert;
use crate::gateways::wechatpay::wire::{
    authorization, bill_statement_lines, decrypt_resource, maybe_gunzip, parse_bill, request_message, response_message,
    BillLink, CertificateList, Notification, Refund, Transaction,
};
use crate::sandbox::SandboxSettings;
use axum::http::Request;
use tower::ServiceExt;

const MCHID: &str = "1230000109";
const APPID: &str = "wxd678efh567hg6787";
const SERIAL: &str = "3775B6A45ACD588826D15E583A95F5DD00000001";
const APIV3: &str = "sandboxAPIv3Key0123456789abcdefg";

fn settings(dir: Option<&std::path::Path>) -> SandboxSettings {
    match dir {
        Some(d) => SandboxSettings::in_dir("http://sandbox.test".into(), 1, d),
        None => SandboxSettings {
            base_url: "http://sandbox.test".into(),
            time_scale_permille: 1,
            key_dir: None,
            state_file: None,
        },
    }
}

async fn sandbox_in(dir: Option<&std::path::Path>) -> Arc<WechatSandbox> {
    let ctx = SandboxCtx::open(settings(dir)).await.unwrap().for_sandbox();
    let s = Arc::new(WechatSandbox::new(ctx.clone()).unwrap());
    // the timer completes refunds, as in the running server
    super::super::spawn_timer(&s, &ctx);
    s.register_merchant(MCHID, APPID, SERIAL, MERCHANT_PUBLIC, APIV3).await.unwrap();
    s
}

async fn sandbox() -> Arc<WechatSandbox> {
    sandbox_in(None).await
}

fn app(s: &Arc<WechatSandbox>) -> axum::Router {
    axum::Router::new().nest(MOUNT, router(s.clone()))
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    /// Verifies the B.3 signature with `key`.
    fn verifies_with(&self, key: &PublicKey) -> bool {
        key.verify_sha256_b64(
            &response_message(self.header("wechatpay-timestamp"), self.header("wechatpay-nonce"), &self.body),
            self.header("wechatpay-signature"),
        )
    }
}

/// Sends a request signed over `signed_path` (the SDK's idea of the canonical URL).
async fn call(
    app: &axum::Router,
    method: &str,
    target: &str,
    signed_path: &str,
    body: &str,
    serial_header: Option<&str>,
) -> Answer {
    let key = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();
    let ts = now_ms().div_euclid(1000).to_string();
    let nonce = crypto::random_alnum(32);
    let sig = key.sign_sha256_b64(&request_message(method, signed_path, &ts, &nonce, body.as_bytes()));
    let mut rb = Request::builder()
        .method(method)
        .uri(target)
        .header("authorization", authorization(MCHID, &nonce, &ts, SERIAL, &sig))
        .header("content-type", "application/json");
    if let Some(s) = serial_header {
        rb = rb.header("wechatpay-serial", s);
    }
    send(app, rb.body(Body::from(body.to_string())).unwrap()).await
}

async fn send(app: &axum::Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec();
    Answer { status, headers, body }
}

fn native_body(no: &str, total: i64) -> String {
    format!(
        r#"{{"appid":"{APPID}","mchid":"{MCHID}","description":"测试商品","out_trade_no":"{no}","notify_url":"http://127.0.0.1:9/notify","amount":{{"total":{total},"currency":"CNY"}}}}"#
    )
}

#[tokio::test]
async fn signature_over_either_path_and_signed_answers() {
    let s = sandbox().await;
    let app = app(&s);
    let platform = PublicKey::parse(&s.platform_public_key()).unwrap();
    let target = "/sandbox/wechatpay/v3/pay/transactions/native";
    // signed with the mount prefix (our client, WAX) and without it (host-rewriting SDKs)
    for (no, signed) in [("SBX0000001", target), ("SBX0000002", "/v3/pay/transactions/native")] {
        let a = call(&app, "POST", target, signed, &native_body(no, 8888), None).await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert!(a.json()["code_url"].as_str().unwrap().starts_with("http://sandbox.test/sandbox/wechatpay/pay/"));
        assert!(a.header("wechatpay-serial").starts_with("PUB_KEY_ID_01"));
        assert_eq!(a.header("wechatpay-signature-type"), SCHEME);
        assert_eq!(a.header("content-type"), "application/json; charset=utf-8");
        assert!(!a.header("request-id").is_empty());
        assert!(a.verifies_with(&platform));
    }
    // a signature over something else, or none at all
    let a = call(&app, "POST", target, "/v3/pay/transactions/jsapi", &native_body("SBX0000003", 1), None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["code"], "SIGN_ERROR");
    let req = Request::builder().method("POST").uri(target).body(Body::from(native_body("SBX0000004", 1))).unwrap();
    assert_eq!(send(&app, req).await.status, 401);
    // an unknown merchant
    let req = Request::builder()
        .method("POST")
        .uri(target)
        .header("authorization", authorization("999", "n", "1", SERIAL, "c2ln"))
        .body(Body::from("{}"))
        .unwrap();
    let a = send(&app, req).await;
    assert_eq!((a.status, a.json()["code"].as_str().unwrap()), (400, "MCH_NOT_EXISTS"));
}

#[tokio::test]
async fn key_choice_follows_wechatpay_serial() {
    let s = sandbox().await;
    let app = app(&s);
    let (cert_serial, cert_pem) = s.platform_certificate();
    let parsed = cert::parse_certificate_pem(&cert_pem).unwrap();
    assert_eq!(parsed.serial_no, cert_serial);
    assert_eq!(cert_serial.len(), 40);
    let first = u8::from_str_radix(&cert_serial[..2], 16).unwrap();
    assert!((0x10..=0x7f).contains(&first));
    let platform = PublicKey::parse(&s.platform_public_key()).unwrap();
    assert_ne!(platform, parsed.public_key, "the two modes use different keys");
    let target = "/sandbox/wechatpay/v3/pay/transactions/native";
    let a = call(&app, "POST", target, target, &native_body("SBX0000010", 1), Some(&cert_serial)).await;
    assert_eq!(a.header("wechatpay-serial"), cert_serial);
    assert!(a.verifies_with(&parsed.public_key));
    // /v3/certificates is always signed with the certificate, listed encrypted with the APIv3 key
    let a = call(&app, "GET", "/sandbox/wechatpay/v3/certificates", "/v3/certificates", "", None).await;
    assert_eq!(a.status, 200);
    assert!(a.verifies_with(&parsed.public_key));
    let list: CertificateList = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(list.data[0].serial_no, cert_serial);
    assert_eq!(list.data[0].encrypt_certificate.associated_data, "certificate");
    let pem = decrypt_resource(APIV3.as_bytes(), &list.data[0].encrypt_certificate).unwrap();
    assert_eq!(String::from_utf8(pem).unwrap(), cert_pem);
    // a request naming the public key id switches back
    let (_, id) = s.register_merchant(MCHID, APPID, SERIAL, MERCHANT_PUBLIC, APIV3).await.unwrap();
    let a = call(&app, "POST", target, target, &native_body("SBX0000011", 1), Some(&id)).await;
    assert_eq!(a.header("wechatpay-serial"), id);
    assert!(a.verifies_with(&platform));
}

#[tokio::test]
async fn trade_lifecycle_and_errors() {
    let s = sandbox().await;
    let app = app(&s);
    let platform = PublicKey::parse(&s.platform_public_key()).unwrap();
    let native = "/sandbox/wechatpay/v3/pay/transactions/native";
    let a = call(&app, "POST", native, native, &native_body("SBX0000020", 500), None).await;
    assert_eq!(a.status, 200);
    let code_url = a.json()["code_url"].as_str().unwrap().to_string();
    // identical params: the same answer; different params: 201 商户订单号重复
    let again = call(&app, "POST", native, native, &native_body("SBX0000020", 500), None).await;
    assert_eq!(again.json()["code_url"], code_url.as_str());
    let other = call(&app, "POST", native, native, &native_body("SBX0000020", 501), None).await;
    assert_eq!((other.status, other.json()["code"].as_str().unwrap()), (400, "INVALID_REQUEST"));
    // bad params
    let bad = call(&app, "POST", native, native, &native_body("short", 1), None).await;
    assert_eq!((bad.status, bad.json()["code"].as_str().unwrap()), (400, "PARAM_ERROR"));
    let jsapi = "/sandbox/wechatpay/v3/pay/transactions/jsapi";
    let bad = call(&app, "POST", jsapi, jsapi, &native_body("SBX0000021", 1), None).await;
    assert_eq!(bad.status, 400, "JSAPI needs payer.openid");
    // query NOTPAY, missing mchid, unknown order
    let q = "/sandbox/wechatpay/v3/pay/transactions/out-trade-no/SBX0000020?mchid=1230000109";
    let a = call(&app, "GET", q, q, "", None).await;
    assert_eq!((a.status, a.json()["trade_state"].as_str().unwrap()), (200, "NOTPAY"));
    let q2 = "/sandbox/wechatpay/v3/pay/transactions/out-trade-no/SBX0000020";
    assert_eq!(call(&app, "GET", q2, q2, "", None).await.status, 400);
    let q3 = "/sandbox/wechatpay/v3/pay/transactions/out-trade-no/NOSUCH000?mchid=1230000109";
    let a = call(&app, "GET", q3, q3, "", None).await;
    assert_eq!((a.status, a.json()["code"].as_str().unwrap()), (404, "ORDER_NOT_EXIST"));
    // fail_next_call fails exactly one call
    s.set_faults("SBX0000020", FaultSpec { fail_next_call: true, drop: true, ..Default::default() }).await.unwrap();
    assert_eq!(call(&app, "GET", q, q, "", None).await.status, 500);
    assert_eq!(call(&app, "GET", q, q, "", None).await.status, 200);
    // pay → SUCCESS; the notification body decrypts to the transaction
    s.pay("SBX0000020").await.unwrap();
    let a = call(&app, "GET", q, q, "", None).await;
    let t: Transaction = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(t.trade_state, "SUCCESS");
    let (headers, body) = s.signed_success_notification("SBX0000020").await.unwrap();
    let h = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone()).unwrap();
    assert!(platform.verify_sha256_b64(
        &response_message(&h("wechatpay-timestamp"), &h("wechatpay-nonce"), &body),
        &h("wechatpay-signature")
    ));
    let n: Notification = serde_json::from_slice(&body).unwrap();
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(n.resource.nonce.len(), 12);
    let plain: Transaction = serde_json::from_slice(&decrypt_resource(APIV3.as_bytes(), &n.resource).unwrap()).unwrap();
    assert_eq!(plain.transaction_id, t.transaction_id);
    assert_eq!(plain.transaction_id.as_deref().map(str::len), Some(28));
    // the same event id on every build
    let (_, body2) = s.signed_success_notification("SBX0000020").await.unwrap();
    assert_eq!(body, body2);
    // a paid order cannot be closed; query by transaction id works
    let close = "/sandbox/wechatpay/v3/pay/transactions/out-trade-no/SBX0000020/close";
    let a = call(&app, "POST", close, close, r#"{"mchid":"1230000109"}"#, None).await;
    assert_eq!((a.status, a.json()["code"].as_str().unwrap()), (400, "ORDERPAID"));
    let by_id =
        format!("/sandbox/wechatpay/v3/pay/transactions/id/{}?mchid=1230000109", t.transaction_id.clone().unwrap());
    assert_eq!(call(&app, "GET", &by_id, &by_id, "", None).await.status, 200);
    // close → 204, signed over the empty body
    call(&app, "POST", native, native, &native_body("SBX0000022", 100), None).await;
    let close = "/sandbox/wechatpay/v3/pay/transactions/out-trade-no/SBX0000022/close";
    let a = call(&app, "POST", close, close, r#"{"mchid":"1230000109"}"#, None).await;
    assert_eq!(a.status, 204);
    assert!(a.body.is_empty());
    assert!(a.verifies_with(&platform));
    assert_eq!(s.trade_state("SBX0000022").await.as_deref(), Some("CLOSED"));
    assert!(s.pay("SBX0000022").await.is_err());
    let a = call(&app, "POST", native, native, &native_body("SBX0000022", 100), None).await;
    assert_eq!(a.json()["code"], "ORDER_CLOSED");
}

#[tokio::test]
async fn time_expire_closes_the_trade() {
    let s = sandbox().await;
    let app = app(&s);
    let native = "/sandbox/wechatpay/v3/pay/transactions/native";
    let body = native_body("SBX0000030", 100)
        .replace(r#""notify_url""#, &format!(r#""time_expire":"{}","notify_url""#, rfc3339_beijing(now_ms() - 1000)));
    assert_eq!(call(&app, "POST", native, native, &body, None).await.status, 200);
    assert_eq!(s.trade_state("SBX0000030").await.as_deref(), Some("CLOSED"));
    assert!(s.pay("SBX0000030").await.is_err());
}

#[tokio::test]
async fn refunds_and_bill() {
    let s = sandbox().await;
    let app = app(&s);
    let native = "/sandbox/wechatpay/v3/pay/transactions/native";
    call(&app, "POST", native, native, &native_body("SBX0000040", 1000), None).await;
    s.set_faults("SBX0000040", FaultSpec { drop: true, ..Default::default() }).await.unwrap();
    let refunds = "/sandbox/wechatpay/v3/refund/domestic/refunds";
    let refund = |no: &str, amount: i64| {
        format!(
            r#"{{"out_trade_no":"SBX0000040","out_refund_no":"{no}","amount":{{"refund":{amount},"total":1000,"currency":"CNY"}}}}"#
        )
    };
    // unpaid: no refund
    let a = call(&app, "POST", refunds, refunds, &refund("R1", 100), None).await;
    assert_eq!((a.status, a.json()["code"].as_str().unwrap()), (404, "RESOURCE_NOT_EXISTS"));
    s.pay("SBX0000040").await.unwrap();
    let a = call(&app, "POST", refunds, refunds, &refund("R1", 300), None).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let r: Refund = serde_json::from_slice(&a.body).unwrap();
    assert_eq!((r.status.as_str(), r.amount.refund), ("PROCESSING", Some(300)));
    // same number, same amount: the same refund; over-refund refused
    let again: Refund =
        serde_json::from_slice(&call(&app, "POST", refunds, refunds, &refund("R1", 300), None).await.body).unwrap();
    assert_eq!(again.refund_id, r.refund_id);
    let a = call(&app, "POST", refunds, refunds, &refund("R2", 701), None).await;
    assert_eq!((a.status, a.json()["code"].as_str().unwrap()), (400, "INVALID_REQUEST"));
    assert_eq!(s.trade_state("SBX0000040").await.as_deref(), Some("REFUND"));
    // PROCESSING → SUCCESS shortly after
    let q = "/sandbox/wechatpay/v3/refund/domestic/refunds/R1";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r: Refund = serde_json::from_slice(&call(&app, "GET", q, q, "", None).await.body).unwrap();
        if r.status == "SUCCESS" {
            assert!(r.success_time.is_some());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "refund never succeeded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let q = "/sandbox/wechatpay/v3/refund/domestic/refunds/NOPE";
    let a = call(&app, "GET", q, q, "", None).await;
    assert_eq!((a.status, a.json()["code"].as_str().unwrap()), (404, "RESOURCE_NOT_EXISTS"));
    // today's bill: one payment, one refund; the hash is over the uncompressed file
    let today = local_date(now_ms()).unwrap().format("%Y-%m-%d").to_string();
    for tar in ["", "&tar_type=GZIP"] {
        let q = format!("/sandbox/wechatpay/v3/bill/tradebill?bill_date={today}&bill_type=ALL{tar}");
        let a = call(&app, "GET", &q, &q, "", None).await;
        assert_eq!(a.status, 200);
        let link: BillLink = serde_json::from_slice(&a.body).unwrap();
        let path = link.download_url.strip_prefix("http://sandbox.test").unwrap().to_string();
        let f = call(&app, "GET", &path, &path, "", None).await;
        assert_eq!(f.status, 200);
        assert!(f.header("wechatpay-signature").is_empty(), "downloads are not signed");
        let plain = maybe_gunzip(&f.body).unwrap();
        assert_eq!(tar.is_empty(), plain == f.body);
        assert_eq!(crypto::sha1_hex(&plain), link.hash_value);
        assert!(plain.starts_with(b"\xef\xbb\xbf") && plain.ends_with(b"\r\n"));
        let lines = bill_statement_lines(&parse_bill(&plain).unwrap()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].amount, Money::parse("10.00").unwrap());
        assert_eq!(lines[0].fee, Money::parse("0.06").ok());
        assert_eq!(lines[1].amount, Money::parse("-3.00").unwrap());
        assert_eq!(lines[1].out_refund_no.as_deref(), Some("R1"));
    }
    let q = "/sandbox/wechatpay/v3/bill/tradebill?bill_date=2020-01-01&bill_type=ALL";
    assert_eq!(call(&app, "GET", q, q, "", None).await.json()["code"], "NO_STATEMENT_EXIST");
    let q = "/sandbox/wechatpay/v3/bill/tradebill?bill_date=2020-1-1";
    assert_eq!(call(&app, "GET", q, q, "", None).await.json()["code"], "PARAM_ERROR");
}

#[tokio::test]
async fn payer_page_and_control_api() {
    let s = sandbox().await;
    let app = app(&s);
    let native = "/sandbox/wechatpay/v3/pay/transactions/native";
    let a = call(&app, "POST", native, native, &native_body("SBX0000050", 1234), None).await;
    s.set_faults("SBX0000050", FaultSpec { drop: true, ..Default::default() }).await.unwrap();
    let page = a.json()["code_url"].as_str().unwrap().strip_prefix("http://sandbox.test").unwrap().to_string();
    let get_page = |p: String| Request::builder().uri(p).body(Body::empty()).unwrap();
    let html = String::from_utf8(send(&app, get_page(page.clone())).await.body).unwrap();
    assert!(html.contains("¥12.34") || html.contains("12.34"));
    assert!(html.contains("/confirm"));
    let req = Request::builder().method("POST").uri(format!("{page}/confirm")).body(Body::empty()).unwrap();
    let a = send(&app, req).await;
    assert_eq!(a.status, 303);
    let html = String::from_utf8(send(&app, get_page(page)).await.body).unwrap();
    assert!(html.contains("支付成功 Paid"));
    // control API
    let get = |p: &str| Request::builder().uri(p).body(Body::empty()).unwrap();
    let post = |p: &str, b: &str| Request::builder().method("POST").uri(p).body(Body::from(b.to_string())).unwrap();
    let v = send(&app, get("/sandbox/wechatpay/control/trades/SBX0000050")).await.json();
    assert_eq!(v["state"], "SUCCESS");
    assert_eq!(v["amount"], "12.34");
    assert_eq!(v["deliveries"][0]["dropped"], true);
    assert_eq!(send(&app, get("/sandbox/wechatpay/control/trades/NOPE")).await.status, 404);
    assert_eq!(send(&app, post("/sandbox/wechatpay/control/trades/NOPE/pay", "")).await.status, 404);
    let a = send(&app, post("/sandbox/wechatpay/control/trades/SBX0000050/faults", r#"{"duplicate":2}"#)).await;
    assert_eq!(a.status, 200);
    let a = send(&app, post("/sandbox/wechatpay/control/trades/SBX0000050/faults", r#"{"bogus":1}"#)).await;
    assert_eq!(a.status, 400);
    assert_eq!(send(&app, post("/sandbox/wechatpay/control/defaults", "{}")).await.status, 200);
    assert_eq!(send(&app, post("/sandbox/wechatpay/control/trades/SBX0000050/scan", "")).await.status, 200);
    // registration over HTTP
    let reg = format!(
        r#"{{"mchid":"1900000001","appid":"wx1","merchant_serial_no":"AB","merchant_public_key":{},"apiv3_key":"{APIV3}"}}"#,
        serde_json::to_string(MERCHANT_PUBLIC).unwrap()
    );
    let a = send(&app, post("/sandbox/wechatpay/merchants", &reg)).await;
    assert_eq!(a.status, 200);
    let v = a.json();
    assert!(v["public_key_id"].as_str().unwrap().starts_with("PUB_KEY_ID_011900000001"));
    assert!(v["platform_public_key"].as_str().unwrap().contains("BEGIN PUBLIC KEY"));
    let a = send(&app, post("/sandbox/wechatpay/merchants", r#"{"mchid":"1"}"#)).await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn a_restart_forgets_nothing_and_transaction_ids_never_repeat() {
    let dir = std::env::temp_dir().join(format!("cp-wechat-sandbox-{}", crypto::random_alnum(8)));
    let native = "/sandbox/wechatpay/v3/pay/transactions/native";
    let q = "/sandbox/wechatpay/v3/pay/transactions/out-trade-no/SBX0000060?mchid=1230000109";
    let first_id = {
        let s = sandbox_in(Some(&dir)).await;
        let app = app(&s);
        assert_eq!(call(&app, "POST", native, native, &native_body("SBX0000060", 100), None).await.status, 200);
        s.pay("SBX0000060").await.unwrap();
        let t: Transaction = serde_json::from_slice(&call(&app, "GET", q, q, "", None).await.body).unwrap();
        t.transaction_id.unwrap()
    };
    let s = sandbox_in(Some(&dir)).await;
    let app = app(&s);
    let t: Transaction = serde_json::from_slice(&call(&app, "GET", q, q, "", None).await.body).unwrap();
    assert_eq!((t.trade_state.as_str(), t.transaction_id.as_deref()), ("SUCCESS", Some(first_id.as_str())));
    call(&app, "POST", native, native, &native_body("SBX0000061", 100), None).await;
    s.pay("SBX0000061").await.unwrap();
    let q2 = "/sandbox/wechatpay/v3/pay/transactions/out-trade-no/SBX0000061?mchid=1230000109";
    let t2: Transaction = serde_json::from_slice(&call(&app, "GET", q2, q2, "", None).await.body).unwrap();
    assert_ne!(t2.transaction_id.as_deref(), Some(first_id.as_str()), "a new payment never reuses an id");
    let _ = std::fs::remove_dir_all(dir);
}
