//! The payment path over real HTTP: the REST API, our gateway clients talking to the built-in
//! sandboxes, the sandboxes' notifications arriving at /notify/{provider}, workers.

use crate::helpers::{backends, spawn_app, TestApp};
use clinicpay::auth::Role;
use clinicpay::billing::BillStatus;
use clinicpay::payments::SessionStatus;
use serde_json::{json, Value};
use server::sandbox::FaultSpec;
use server::sandbox::SandboxControl;
use std::time::Duration;

pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub(crate) async fn new(app: &TestApp, role: Role) -> Api {
        let admin = app.services.store.user_by_username("admin").await.unwrap().unwrap().current();
        let (token, _) = app
            .services
            .create_api_token(&admin, "127.0.0.1", "tests", role, clinicpay::auth::TokenScope::Checkout)
            .await
            .unwrap();
        Api { http: reqwest::Client::new(), base: app.base.clone(), token }
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn post(&self, path: &str, body: Value, key: Option<&str>) -> (u16, Value) {
        let mut rb = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body);
        if let Some(k) = key {
            rb = rb.header("idempotency-key", k);
        }
        let r = rb.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn unpaid(&self, patient: &str) -> Vec<String> {
        let (s, v) = self.get(&format!("/api/v1/finance/merged-payment/patient/{patient}/unpaid-bills")).await;
        assert_eq!(s, 200, "{v}");
        v["bills"].as_array().unwrap().iter().map(|b| b["bill_id"].as_str().unwrap().to_string()).collect()
    }

    /// Opens a payment for these bills (201 expected).
    pub(crate) async fn open_session(&self, patient: &str, bills: &[String], method: &str) -> Value {
        let body = json!({"patient_id": patient, "bill_ids": bills, "payment_method": method});
        let (s, v) = self.post("/api/v1/finance/merged-payment/create-session", body, None).await;
        assert_eq!(s, 201, "{v}");
        v
    }

    pub(crate) async fn wait_status(&self, session: &str, want: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (s, v) = self.get(&format!("/api/v1/finance/payment-sessions/{session}/status")).await;
            assert_eq!(s, 200);
            if v["status"] == want {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "session {session} never became {want}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(crate) async fn patients(app: &TestApp) -> Vec<String> {
    app.services.store.list_patients(None, 1, 20).await.unwrap().items.into_iter().map(|p| p.id.to_string()).collect()
}

pub(crate) async fn assert_books(app: &TestApp) {
    let r = app.services.store.ledger_report().await.unwrap();
    assert_eq!(
        (
            r.unsealed_entries,
            r.unbalanced_entries,
            r.misallocated_sessions,
            r.bills_paid_twice,
            r.bill_payment_mismatches
        ),
        (0, 0, 0, 0, 0),
        "{r:?}"
    );
    assert!(r.clearing_matches_receipts, "{r:?}");
}

pub(crate) fn trade(v: &Value) -> String {
    v["out_trade_no"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn merged_payments_through_alipay_and_wechat() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let sb = app.sandboxes.clone().unwrap();
        let ps = patients(&app).await;

        // pay everything of one patient with Alipay
        let bills = api.unpaid(&ps[0]).await;
        assert!(bills.len() >= 2);
        let (s, v) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": ps[0], "bill_ids": bills, "payment_method": "alipay"}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{backend}: {v}");
        assert_eq!(v["status"], "pending");
        assert!(v["qr_code_content"].as_str().unwrap().contains("/sandbox/alipay/pay/"), "{v}");
        let id = v["session_id"].as_str().unwrap().to_string();
        for ext in ["png", "svg"] {
            let r = api
                .http
                .get(format!("{}/api/v1/finance/qr-codes/{id}.{ext}", api.base))
                .bearer_auth(&api.token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            assert!(ct.starts_with("image/"), "{ct}");
            assert!(r.bytes().await.unwrap().len() > 200);
        }
        sb.alipay.pay(&trade(&v)).await.unwrap();
        let paid = api.wait_status(&id, "paid").await;
        assert!(
            paid["bills"].as_array().unwrap().iter().all(|b| b["status"] == "paid" && b["receipt_no"].is_string()),
            "{paid}"
        );
        assert_eq!(paid["paid_amount"], v["total_amount"]);
        assert!(api.unpaid(&ps[0]).await.is_empty(), "{backend}: nothing left to pay");

        // untick one bill and pay the rest with WeChat: the unticked bill stays unpaid
        let bills = api.unpaid(&ps[1]).await;
        let (keep, pay) = bills.split_first().unwrap();
        let (s, v) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": ps[1], "bill_ids": pay, "payment_method": "wechat"}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{v}");
        sb.wechatpay.pay(&trade(&v)).await.unwrap();
        api.wait_status(v["session_id"].as_str().unwrap(), "paid").await;
        assert_eq!(api.unpaid(&ps[1]).await, vec![keep.clone()], "{backend}: the unticked bill is still owed");

        // a bank card on the hosted card page
        let bills = api.unpaid(&ps[3]).await;
        let (s, v) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": ps[3], "bill_ids": bills, "payment_method": "bank_card"}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{v}");
        assert!(v["qr_code_content"].as_str().unwrap().contains("/sandbox/bank/pay/"), "{v}");
        sb.bank.pay(&trade(&v)).await.unwrap();
        api.wait_status(v["session_id"].as_str().unwrap(), "paid").await;
        assert!(api.unpaid(&ps[3]).await.is_empty());

        // single bill, the N = 1 case
        let one = api.unpaid(&ps[2]).await[0].clone();
        let (s, v) = api
            .post(
                &format!("/api/v1/finance/bills/{one}/qr-payment"),
                json!({"payment_method": "alipay", "timeout_minutes": 5}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["bills"].as_array().unwrap().len(), 1);
        assert_books(&app).await;
    }
}

#[tokio::test]
async fn bad_requests_get_a_code_and_create_nothing() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let ps = patients(&app).await;
        let mine = api.unpaid(&ps[0]).await;
        let theirs = api.unpaid(&ps[1]).await;
        let paid_bill = {
            let d = app.services.store.patient_detail(&ps[3].parse().unwrap()).await.unwrap().unwrap();
            d.bills.iter().find(|b| b.status == BillStatus::Paid).map(|b| b.id.to_string()).unwrap()
        };
        let count = || async { app.services.store.count_pending_sessions().await.unwrap() };
        let before = count().await;
        let cases: Vec<(Value, u16, &str)> = vec![
            (json!({"patient_id": ps[0], "bill_ids": [], "payment_method": "alipay"}), 400, "no_bills"),
            (
                json!({"patient_id": ps[0], "bill_ids": [mine[0], mine[0]], "payment_method": "alipay"}),
                400,
                "duplicate_bill",
            ),
            (json!({"patient_id": ps[0], "bill_ids": ["bill_x"], "payment_method": "alipay"}), 400, "bad_id"),
            (
                json!({"patient_id": ps[0], "bill_ids": ["bill_00000000000000000000000000"], "payment_method": "alipay"}),
                400,
                "unknown_bill",
            ),
            (
                json!({"patient_id": ps[0], "bill_ids": [theirs[0]], "payment_method": "alipay"}),
                400,
                "bill_of_other_patient",
            ),
            (
                json!({"patient_id": ps[3], "bill_ids": [paid_bill], "payment_method": "alipay"}),
                409,
                "bill_not_payable",
            ),
            (
                json!({"patient_id": ps[0], "bill_ids": [mine[0]], "payment_method": "paypal"}),
                400,
                "bad_payment_method",
            ),
            (
                json!({"patient_id": ps[0], "bill_ids": [mine[0]], "payment_method": "alipay", "timeout_minutes": 0}),
                400,
                "bad_timeout",
            ),
            (
                json!({"patient_id": ps[0], "bill_ids": [mine[0]], "payment_method": "alipay", "timeout_minutes": 999}),
                400,
                "bad_timeout",
            ),
            (
                json!({"patient_id": ps[0], "bill_ids": [mine[0]], "payment_method": "alipay", "timeout_minutes": "15"}),
                400,
                "bad_json",
            ),
            (
                json!({"patient_id": ps[0], "bill_ids": [mine[0]], "payment_method": "alipay", "amount": "0.01"}),
                400,
                "bad_json",
            ),
            (
                json!({"patient_id": "pat_00000000000000000000000000", "bill_ids": [mine[0]], "payment_method": "alipay"}),
                404,
                "not_found",
            ),
        ];
        for (body, status, code) in cases {
            let (s, v) = api.post("/api/v1/finance/merged-payment/create-session", body.clone(), None).await;
            assert_eq!((s, v["error"]["code"].as_str().unwrap_or("")), (status, code), "{backend}: {body} → {v}");
            assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        // not JSON at all, and the wrong content type
        let r = api
            .http
            .post(format!("{}/api/v1/finance/merged-payment/create-session", api.base))
            .bearer_auth(&api.token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = api
            .http
            .post(format!("{}/api/v1/finance/merged-payment/create-session", api.base))
            .bearer_auth(&api.token)
            .form(&[("patient_id", ps[0].as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415);
        // bad ids in paths
        for path in [
            "/api/v1/finance/payment-sessions/nope/status",
            "/api/v1/finance/qr-codes/ses_1.png",
            "/api/v1/finance/merged-payment/patient/x/unpaid-bills",
        ] {
            assert_eq!(api.get(path).await.0, 400, "{path}");
        }
        assert_eq!(api.get("/api/v1/finance/payment-sessions/ses_00000000000000000000000000/status").await.0, 404);
        assert_eq!(api.get("/api/v1/finance/qr-codes/ses_00000000000000000000000000.gif").await.0, 404);
        assert_eq!(api.get("/api/v1/finance/nothing-here").await.0, 404);
        assert_eq!(count().await, before, "{backend}: nothing was created");

        // a bill already in an active session: 409 naming that session
        let (s, v) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": ps[0], "bill_ids": mine, "payment_method": "alipay"}),
                Some("k-1"),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let first = v["session_id"].as_str().unwrap().to_string();
        let (s, v2) = api
            .post(&format!("/api/v1/finance/bills/{}/qr-payment", mine[0]), json!({"payment_method": "wechat"}), None)
            .await;
        assert_eq!(s, 409, "{v2}");
        assert_eq!(v2["error"]["code"], "bill_in_active_session");
        assert_eq!(v2["error"]["detail"]["session_id"], first.as_str());
        // idempotency: same key and body → the same session; same key, other body → 409
        let (s, v3) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": ps[0], "bill_ids": mine, "payment_method": "alipay"}),
                Some("k-1"),
            )
            .await;
        assert_eq!((s, v3["session_id"].as_str()), (200, Some(first.as_str())), "{v3}");
        let (s, v4) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": ps[0], "bill_ids": [mine[0]], "payment_method": "alipay"}),
                Some("k-1"),
            )
            .await;
        assert_eq!((s, v4["error"]["code"].as_str()), (409, Some("idempotency_key_reused")), "{v4}");
        let (s, _) =
            api.post("/api/v1/finance/merged-payment/create-session", json!({}), Some("bad key with spaces")).await;
        assert_eq!(s, 400);

        // who may call
        let anon = reqwest::Client::new();
        let r = anon.get(format!("{}/api/v1/finance/payment-sessions/{first}/status", app.base)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = anon
            .get(format!("{}/api/v1/finance/payment-sessions/{first}/status", app.base))
            .bearer_auth("cpk_forged")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        // a staff cookie works, but not for a cross-origin POST
        let cashier = app.login("cashier", "demo-cashier").await;
        assert_eq!(cashier.get(&format!("/api/v1/finance/payment-sessions/{first}/status")).await.status(), 200);
        let r = cashier
            .post_raw(
                &format!("/api/v1/finance/payment-sessions/{first}/cancel"),
                "application/json",
                "",
                Some("http://evil.example"),
            )
            .await;
        assert_eq!(r.status(), 403);
        let r = cashier
            .post_raw(
                &format!("/api/v1/finance/payment-sessions/{first}/cancel"),
                "application/json",
                "",
                Some(&app.base),
            )
            .await;
        assert_eq!(r.status(), 200);
        // the OpenAPI document is served
        let doc = api.get("/api/v1/openapi.json").await.1;
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/api/v1/finance/merged-payment/create-session"]["post"].is_object());
    }
}

/// The OpenAPI document is generated from the handlers as they are routed: every route the
/// hospital's notes name is described, every described operation is routed (answers something
/// other than the API's own 404 or a 405), and each says what it answers and refuses.
#[tokio::test]
async fn every_api_route_is_described_and_every_description_is_routed() {
    let doc = serde_json::to_value(server::http::api::document()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/finance/merged-payment/patient/{patient_id}/unpaid-bills", "get"),
        ("/api/v1/finance/merged-payment/create-session", "post"),
        ("/api/v1/finance/bills/{bill_id}/qr-payment", "post"),
        ("/api/v1/finance/payment-sessions/{session_id}/status", "get"),
        ("/api/v1/finance/payment-sessions/{session_id}/cancel", "post"),
        ("/api/v1/finance/payment-sessions/{session_id}/refresh", "post"),
        ("/api/v1/finance/payment-sessions/{session_id}/sync", "post"),
        ("/api/v1/finance/payment-sessions/{session_id}/events", "get"),
        ("/api/v1/finance/qr-codes/{file}", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not described");
    }
    for name in ["Session", "UnpaidBills", "CreateSession", "QrPayment", "ErrorBody"] {
        assert!(doc["components"]["schemas"][name].is_object(), "schema {name}");
    }
    assert!(doc["components"]["securitySchemes"]["apiToken"].is_object());

    let app = spawn_app("sqlite", true).await;
    let api = Api::new(&app, Role::Cashier).await;
    let nobody = |p: &str| match p {
        "patient_id" => "pat_00000000000000000000000000".to_string(),
        "bill_id" => "bill_00000000000000000000000000".to_string(),
        "session_id" => "ses_00000000000000000000000000".to_string(),
        "file" => "ses_00000000000000000000000000.png".to_string(),
        "refund_id" => "ref_00000000000000000000000000".to_string(),
        other => panic!("a path parameter this test does not know: {other}"),
    };
    let mut operations = 0;
    for (path, item) in paths {
        let mut concrete = path.clone();
        for p in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
            concrete = concrete.replace(&format!("{{{p}}}"), &nobody(p));
        }
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(op["operationId"].is_string() && op["summary"].is_string(), "{method} {path}: {op}");
            assert!(op["responses"]["401"].is_object(), "{method} {path} says how it refuses strangers");
            let (status, body) = match method.as_str() {
                "get" => api.get(&concrete).await,
                "post" => api.post(&concrete, json!({}), None).await,
                other => panic!("{other}"),
            };
            assert_ne!(status, 405, "{method} {path} is not routed for {method}");
            assert_ne!(body["error"]["message"], "no such API endpoint", "{method} {path} is not routed");
            assert!(
                op["responses"][status.to_string()].is_object(),
                "{method} {concrete} answered {status}, which its description does not list: {body}"
            );
        }
    }
    assert!(operations >= 9);
}

/// Posts a notification as the provider would.
pub(crate) async fn post_notification(
    app: &TestApp,
    provider: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String) {
    let mut rb = reqwest::Client::new().post(format!("{}/notify/{provider}", app.base)).body(body.to_vec());
    for (k, v) in headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn notification_counts(app: &TestApp) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for n in app.services.store.list_notifications(1000).await.unwrap() {
        *m.entry(format!("{}:{}", n.status, n.reason.unwrap_or_default().split(':').next().unwrap_or("")))
            .or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn alipay_notifications_get_the_right_answer() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let sb = app.sandboxes.clone().unwrap();
        let ps = patients(&app).await;
        let bills = api.unpaid(&ps[5]).await;
        // the sandbox must not deliver on its own here: the test posts every copy itself
        let (_, v) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": ps[5], "bill_ids": bills, "payment_method": "alipay"}),
                None,
            )
            .await;
        let no = trade(&v);
        sb.alipay.set_faults(&no, FaultSpec { drop: true, ..Default::default() }).await.unwrap();
        sb.alipay.pay(&no).await.unwrap();
        let (headers, body) = sb.alipay.signed_success_notification(&no).await.unwrap();
        let text = String::from_utf8(body.clone()).unwrap();

        // forged: the signature altered
        let forged = text.replacen("sign=", "sign=AAAA", 1);
        assert_eq!(post_notification(&app, "alipay", &headers, forged.as_bytes()).await, (200, "failure".into()));
        // tampered amount (signature no longer matches)
        let total = v["total_amount"].as_str().unwrap();
        let tampered = text.replace(&format!("total_amount={total}"), "total_amount=0.01");
        assert_ne!(tampered, text, "the amount is in the body");
        assert_eq!(post_notification(&app, "alipay", &headers, tampered.as_bytes()).await.1, "failure");
        // wrong app_id (no such channel)
        let wrong_app = text.replace("app_id=2021009900000001", "app_id=2021000000000999");
        assert_eq!(post_notification(&app, "alipay", &headers, wrong_app.as_bytes()).await.1, "failure");
        // malformed and wrong content type
        assert_eq!(post_notification(&app, "alipay", &headers, b"%%%&&&=").await.1, "failure");
        let json_ct = vec![("content-type".to_string(), "application/json".to_string())];
        assert_eq!(
            post_notification(&app, "alipay", &json_ct, br#"{"trade_status":"TRADE_SUCCESS"}"#).await.1,
            "failure"
        );
        // nothing was applied by any of those
        assert_eq!(
            api.get(&format!("/api/v1/finance/payment-sessions/{}/status", v["session_id"].as_str().unwrap())).await.1
                ["status"],
            "pending"
        );

        // the genuine one, five times at once: all acknowledged, one effect
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (h, b, base) = (headers.clone(), body.clone(), app.base.clone());
            tasks.push(tokio::spawn(async move {
                let mut rb = reqwest::Client::new().post(format!("{base}/notify/alipay")).body(b);
                for (k, v) in h {
                    rb = rb.header(k, v);
                }
                rb.send().await.unwrap().text().await.unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), "success");
        }
        let paid = api.wait_status(v["session_id"].as_str().unwrap(), "paid").await;
        assert_eq!(paid["bills"].as_array().unwrap().len(), bills.len());
        let counts = notification_counts(&app).await;
        assert_eq!(counts.get("applied:"), Some(&1), "{backend}: {counts:?}");
        assert_eq!(counts.get("duplicate:"), Some(&4), "{backend}: {counts:?}");
        assert!(counts.get("rejected:bad_signature").is_some_and(|n| *n >= 2), "{counts:?}");
        assert_eq!(counts.get("rejected:unknown_account"), Some(&1), "{counts:?}");
        assert!(counts.keys().any(|k| k.starts_with("rejected:malformed")), "{counts:?}");
        assert!(counts.keys().any(|k| k.starts_with("rejected:content_type")), "{counts:?}");
        assert!(!counts.contains_key("received:"), "every stored notification is resolved: {counts:?}");

        // an order that is not ours, genuinely signed: refused, nothing booked
        let (_, gw) = app.services.gateways.default_channel(clinicpay::payments::Provider::Alipay).await.unwrap();
        let foreign = "FOREIGN0000000000001";
        let call = gw
            .create_payment(&clinicpay::ports::CreatePayment {
                out_trade_no: foreign.into(),
                amount: clinicpay::Money::parse("9.99").unwrap(),
                subject: "x".into(),
                method: clinicpay::payments::PayMethod::AlipayQr,
                expires_at_ms: app.services.now() + 600_000,
                notify_url: format!("{}/notify/alipay", app.base),
                return_url: None,
                payer_openid: None,
                payer_ip: None,
            })
            .await;
        assert!(call.outcome.is_success());
        sb.alipay.set_faults(foreign, FaultSpec { drop: true, ..Default::default() }).await.unwrap();
        sb.alipay.pay(foreign).await.unwrap();
        let (h, b) = sb.alipay.signed_success_notification(foreign).await.unwrap();
        assert_eq!(post_notification(&app, "alipay", &h, &b).await.1, "failure");
        assert!(notification_counts(&app).await.contains_key("rejected:unknown_order"));
        assert_books(&app).await;
    }
}

#[tokio::test]
async fn fifty_identical_wechat_notifications_at_once_have_one_effect() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let sb = app.sandboxes.clone().unwrap();
        let ps = patients(&app).await;
        let bills = api.unpaid(&ps[6]).await;
        let (_, v) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": ps[6], "bill_ids": bills, "payment_method": "wechat"}),
                None,
            )
            .await;
        let no = trade(&v);
        sb.wechatpay.set_faults(&no, FaultSpec { drop: true, ..Default::default() }).await.unwrap();
        sb.wechatpay.pay(&no).await.unwrap();
        let (headers, body) = sb.wechatpay.signed_success_notification(&no).await.unwrap();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (h, b, base, barrier) = (headers.clone(), body.clone(), app.base.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                barrier.wait().await;
                let mut rb = client.post(format!("{base}/notify/wechatpay")).body(b);
                for (k, v) in h {
                    rb = rb.header(k, v);
                }
                rb.send().await.unwrap().status().as_u16()
            }));
        }
        for t in tasks {
            let s = t.await.unwrap();
            assert!(s == 200 || s == 204, "{backend}: acknowledged, got {s}");
        }
        api.wait_status(v["session_id"].as_str().unwrap(), "paid").await;
        let counts = notification_counts(&app).await;
        assert_eq!(counts.get("applied:"), Some(&1), "{backend}: {counts:?}");
        assert_eq!(counts.get("duplicate:"), Some(&49), "{backend}: {counts:?}");
        let payments = app
            .services
            .store
            .session(&v["session_id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .payables;
        assert!(payments.iter().all(|b| b.receipt_no.is_some()));

        // tampered body, stale copy, unknown key id, wrong content type: refused
        let mut tampered = body.clone();
        let len = tampered.len();
        tampered[len / 2] ^= 1;
        let (s, _) = post_notification(&app, "wechatpay", &headers, &tampered).await;
        assert!(s >= 400, "tampered: {s}");
        let mut other_serial = headers.clone();
        for (k, v) in other_serial.iter_mut() {
            if k.eq_ignore_ascii_case("wechatpay-serial") {
                *v = "PUB_KEY_ID_0000000000000000000000000000000000".into();
            }
        }
        assert!(post_notification(&app, "wechatpay", &other_serial, &body).await.0 >= 400);
        let mut as_form = headers.clone();
        for (k, v) in as_form.iter_mut() {
            if k.eq_ignore_ascii_case("content-type") {
                *v = "application/x-www-form-urlencoded".into();
            }
        }
        assert!(post_notification(&app, "wechatpay", &as_form, &body).await.0 >= 400);
        let counts = notification_counts(&app).await;
        assert!(counts.keys().any(|k| k.starts_with("rejected:bad_signature")), "{counts:?}");
        assert!(counts.keys().any(|k| k.starts_with("rejected:unknown_account")), "{counts:?}");
        assert!(counts.keys().any(|k| k.starts_with("rejected:content_type")), "{counts:?}");
        assert_books(&app).await;
    }
}

#[tokio::test]
async fn lost_notifications_are_found_by_status_sync() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let sb = app.sandboxes.clone().unwrap();
        let ps = patients(&app).await;
        for (i, method) in ["alipay", "wechat"].into_iter().enumerate() {
            let bills = api.unpaid(&ps[7 + i]).await;
            let (_, v) = api
                .post(
                    "/api/v1/finance/merged-payment/create-session",
                    json!({"patient_id": ps[7 + i], "bill_ids": bills, "payment_method": method}),
                    None,
                )
                .await;
            let no = trade(&v);
            let id = v["session_id"].as_str().unwrap().to_string();
            match method {
                "alipay" => {
                    sb.alipay.set_faults(&no, FaultSpec { drop: true, ..Default::default() }).await.unwrap();
                    sb.alipay.pay(&no).await.unwrap();
                }
                _ => {
                    sb.wechatpay.set_faults(&no, FaultSpec { drop: true, ..Default::default() }).await.unwrap();
                    sb.wechatpay.pay(&no).await.unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(
                api.get(&format!("/api/v1/finance/payment-sessions/{id}/status")).await.1["status"],
                "pending",
                "{backend}: no notification came"
            );
            // the worker's claim: due 15 s after creation
            let due = app.services.store.claim_syncs(app.services.now() + 20_000, 1, 10).await.unwrap();
            assert!(due.iter().any(|t| t.session_id.as_str() == id), "{backend}: due for a status query");
            // the query itself (the worker's step, or the cashier's "check payment")
            let (s, after) = api.post(&format!("/api/v1/finance/payment-sessions/{id}/sync"), json!({}), None).await;
            assert_eq!((s, after["status"].as_str()), (200, Some("paid")), "{backend} {method}: {after}");
        }
        assert_books(&app).await;
    }
}

#[tokio::test]
async fn expiry_refresh_cancel_and_late_money() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let api = Api::new(&app, Role::Cashier).await;
        let sb = app.sandboxes.clone().unwrap();
        let ps = patients(&app).await;
        let services = &app.services;

        // refresh: a new session replaces the old, same bills
        let bills = api.unpaid(&ps[10]).await;
        let (_, old) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": ps[10], "bill_ids": bills, "payment_method": "alipay", "timeout_minutes": 1}),
                None,
            )
            .await;
        let old_id = old["session_id"].as_str().unwrap().to_string();
        let (s, new) = api.post(&format!("/api/v1/finance/payment-sessions/{old_id}/refresh"), json!({}), None).await;
        assert_eq!(s, 201, "{new}");
        let new_id = new["session_id"].as_str().unwrap().to_string();
        let old_now = api.get(&format!("/api/v1/finance/payment-sessions/{old_id}/status")).await.1;
        assert_eq!(
            (old_now["status"].as_str(), old_now["replaced_by"].as_str()),
            (Some("closed"), Some(new_id.as_str()))
        );
        assert_eq!(new["bills"].as_array().unwrap().len(), bills.len());
        // the old trade was closed at the provider
        assert_eq!(sb.alipay.trade_state(&trade(&old)).await.as_deref(), Some("TRADE_CLOSED"));

        // expiry: the QR's time passes; the session ends, its bills are free, the trade is closed
        let ended = services.store.expire_sessions(services.now() + 16 * 60_000, 100).await.unwrap();
        assert!(ended.iter().any(|e| e.as_str() == new_id));
        assert_eq!(services.close_step().await.unwrap(), 1);
        assert_eq!(sb.alipay.trade_state(&trade(&new)).await.as_deref(), Some("TRADE_CLOSED"));
        assert_eq!(api.unpaid(&ps[10]).await.len(), bills.len(), "{backend}: payable again");

        // paying after cancel: the close failed (fault), the patient paid anyway → unallocated,
        // refunded automatically through its channel, shown as an exception
        let (_, v) = api
            .post(
                "/api/v1/finance/merged-payment/create-session",
                json!({"patient_id": ps[10], "bill_ids": bills, "payment_method": "alipay"}),
                None,
            )
            .await;
        let id = v["session_id"].as_str().unwrap().to_string();
        sb.alipay.scan(&trade(&v)).await.unwrap();
        sb.alipay.set_faults(&trade(&v), FaultSpec { fail_next_call: true, ..Default::default() }).await.unwrap();
        let (s, c) = api.post(&format!("/api/v1/finance/payment-sessions/{id}/cancel"), json!({}), None).await;
        assert_eq!((s, c["status"].as_str()), (200, Some("cancelled")));
        sb.alipay.pay(&trade(&v)).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let ex = services.exceptions(true).await.unwrap();
            if ex.iter().any(|e| e.session_id.as_ref().is_some_and(|s| s.as_str() == id)) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the late payment was never recorded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(api.get(&format!("/api/v1/finance/payment-sessions/{id}/status")).await.1["status"], "cancelled");
        assert_eq!(api.unpaid(&ps[10]).await.len(), bills.len(), "{backend}: late money pays no bill");
        assert_eq!(services.refund_step().await.unwrap(), 1, "{backend}: refunded through Alipay");
        let ex = services.exceptions(false).await.unwrap();
        let e = ex.iter().find(|e| e.session_id.as_ref().is_some_and(|s| s.as_str() == id)).unwrap();
        assert_eq!((e.kind.as_str(), e.status.as_str()), ("late_payment", "refunded"), "{e:?}");
        let state = sb.alipay.trade_state(&trade(&v)).await.unwrap();
        assert_eq!(state, "TRADE_CLOSED", "{backend}: fully refunded at Alipay");
        let report = services.store.ledger_report().await.unwrap();
        assert_eq!(report.balances.iter().find(|(a, _)| a == "2241").map(|x| x.1).unwrap_or(0), 0);
        assert_books(&app).await;
        // the session is final: no status stays pending
        assert!(services.checkout_session(&id).await.unwrap().status == SessionStatus::Cancelled);
    }
}
