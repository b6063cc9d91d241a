//! Alipay: our client against our sandbox over real HTTP (PROTOCOLS.md Part A), the sandbox's
//! transport shapes, its notifications reaching a real receiver, and the official Node SDK.

use crate::helpers::{spawn_app, TestApp};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use clinicpay::money::Money;
use clinicpay::payments::{
    EventKind, Outcome, PayAction, PayMethod, ProviderEvent, RefundState, Rejection, TradeState,
};
use clinicpay::ports::{CreatePayment, Gateway, RawNotification, RefundRequest};
use serde_json::{json, Value};
use server::crypto::{PrivateKey, PublicKey};
use server::gateways::alipay::{wire, AlipayClient, AlipaySettings};
use server::sandbox::SandboxControl;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MERCHANT_PRIVATE: &str = include_str!("../fixtures/merchant_private.pem");
const MERCHANT_PUBLIC: &str = include_str!("../fixtures/merchant_public.pem");
const APP_ID: &str = "2021000000000001";

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn money(s: &str) -> Money {
    Money::parse(s).unwrap()
}

type Received = Arc<Mutex<Vec<Result<ProviderEvent, Rejection>>>>;

/// A merchant notification endpoint on a free port: verifies with the client and answers as
/// the client says.
struct Receiver {
    url: String,
    received: Received,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    fn events_for(&self, out_trade_no: &str) -> Vec<ProviderEvent> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|e| e.kind.out_trade_no() == out_trade_no)
            .cloned()
            .collect()
    }

    fn rejections(&self) -> usize {
        self.received.lock().unwrap().iter().filter(|r| r.is_err()).count()
    }
}

async fn notify_handler(
    State((client, received)): State<(Arc<AlipayClient>, Received)>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let n = RawNotification {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        content_type: headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string(),
        body: body.to_vec(),
    };
    let result = client.verify_notification(&n, now_ms());
    let reply = client.notify_reply(result.is_ok());
    received.lock().unwrap().push(result);
    (
        axum::http::StatusCode::from_u16(reply.status).unwrap(),
        [(axum::http::header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

async fn spawn_receiver(client: Arc<AlipayClient>) -> Receiver {
    let received: Received = Arc::default();
    let router = axum::Router::new()
        .route("/notify", axum::routing::post(notify_handler))
        .with_state((client, received.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Receiver { url: format!("http://{addr}"), received, _shutdown: tx }
}

struct Env {
    app: TestApp,
    client: Arc<AlipayClient>,
    receiver: Receiver,
    http: reqwest::Client,
}

async fn register(http: &reqwest::Client, base: &str, app_id: &str, public_key: &str) -> String {
    let resp = http
        .post(format!("{base}/sandbox/alipay/apps"))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .json(&json!({ "app_id": app_id, "app_public_key": public_key }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["alipay_public_key"].as_str().unwrap().to_string()
}

fn client_for(base: &str, app_id: &str, alipay_public_key: &str, private_key: &str) -> AlipayClient {
    AlipayClient::new(
        AlipaySettings {
            app_id: app_id.into(),
            gateway_url: format!("{base}/sandbox/alipay/gateway.do"),
            alipay_public_key: alipay_public_key.into(),
            seller_id: None,
        },
        private_key,
        server::gateways::http_client(),
    )
    .unwrap()
}

async fn setup() -> Env {
    let app = spawn_app("sqlite", false).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let alipay_key = register(&http, &app.base, APP_ID, MERCHANT_PUBLIC).await;
    assert_eq!(alipay_key, app.sandboxes.as_ref().unwrap().alipay.public_key_pem());
    let client = Arc::new(client_for(&app.base, APP_ID, &alipay_key, MERCHANT_PRIVATE));
    let receiver = spawn_receiver(client.clone()).await;
    Env { app, client, receiver, http }
}

impl Env {
    fn payment(&self, no: &str, amount: &str, method: PayMethod) -> CreatePayment {
        CreatePayment {
            out_trade_no: no.into(),
            amount: money(amount),
            subject: "门诊缴费 Outpatient".into(),
            method,
            expires_at_ms: now_ms() + 15 * 60_000,
            notify_url: format!("{}/notify", self.receiver.url),
            return_url: Some(format!("{}/return", self.receiver.url)),
            payer_openid: None,
            payer_ip: None,
        }
    }

    async fn create_qr(&self, no: &str, amount: &str) -> String {
        match self.client.create_payment(&self.payment(no, amount, PayMethod::AlipayQr)).await.outcome {
            Outcome::Success(PayAction::QrCode(url)) => url,
            other => panic!("precreate {no}: {other:?}"),
        }
    }

    async fn state(&self, no: &str) -> TradeState {
        match self.client.query_payment(no).await.outcome {
            Outcome::Success(s) => s.state,
            other => panic!("query {no}: {other:?}"),
        }
    }

    async fn control(&self, no: &str, action: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/sandbox/alipay/control/trades/{no}/{action}", self.app.base))
            .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn view(&self, no: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}/sandbox/alipay/control/trades/{no}", self.app.base))
            .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    async fn refund(&self, no: &str, refund_no: &str, amount: &str) -> Outcome<clinicpay::payments::RefundStatus> {
        let req = RefundRequest {
            out_trade_no: no.into(),
            out_refund_no: refund_no.into(),
            amount: money(amount),
            total: money("88.88"),
            reason: "退费".into(),
            notify_url: None,
        };
        self.client.refund(&req).await.outcome
    }
}

/// Polls until `f` holds (10 s at most).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sub_code<T: std::fmt::Debug>(o: &Outcome<T>) -> String {
    match o {
        Outcome::Failure(e) => e.sub_code.clone().unwrap_or_default(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn alipay_qr_payment_refunds_and_notifications() {
    let env = setup().await;
    let qr = env.create_qr("CP-Q1", "88.88").await;
    assert!(qr.starts_with(&format!("{}/sandbox/alipay/pay/", env.app.base)), "{qr}");
    // Alipay has no trade until the buyer scans
    let q = env.client.query_payment("CP-Q1").await;
    assert_eq!(q.raw.http_status, Some(200));
    assert!(q.raw.request.contains("method=alipay.trade.query"));
    assert!(q.raw.response.contains("ACQ.TRADE_NOT_EXIST"));
    assert_eq!(q.outcome.success().unwrap().state, TradeState::NotFound);
    // the payer's phone opens the QR URL
    let page = env.http.get(&qr).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("¥88.88") && html.contains("等待付款"), "{html}");
    match env.client.query_payment("CP-Q1").await.outcome {
        Outcome::Success(s) => {
            assert_eq!(s.state, TradeState::Waiting);
            assert!(s.provider_txn_id.is_some());
            assert_eq!(s.amount, Some(money("88.88")));
        }
        other => panic!("{other:?}"),
    }
    // pays (the control API does what the page's Pay button does)
    let resp = env.control("CP-Q1", "pay", json!({})).await;
    assert_eq!(resp.status(), 200);
    let paid = match env.client.query_payment("CP-Q1").await.outcome {
        Outcome::Success(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(paid.state, TradeState::Paid);
    assert_eq!(paid.provider_state, "TRADE_SUCCESS");
    assert!(paid.paid_at_ms.is_some());
    // the notification reaches our receiver, verifies, and is acknowledged with "success"
    eventually("the payment notification", || async { !env.receiver.events_for("CP-Q1").is_empty() }).await;
    let ev = env.receiver.events_for("CP-Q1").remove(0);
    assert_eq!(ev.account, APP_ID);
    assert!(!ev.event_id.is_empty());
    match ev.kind {
        EventKind::PaymentSucceeded { amount, provider_txn_id, payer, .. } => {
            assert_eq!(amount, money("88.88"));
            assert_eq!(Some(provider_txn_id), paid.provider_txn_id);
            assert!(payer.is_some());
        }
        other => panic!("{other:?}"),
    }
    eventually("the acknowledgement", || async {
        env.view("CP-Q1").await["deliveries"].as_array().unwrap().iter().any(|d| d["acknowledged"] == true)
    })
    .await;
    assert!(env.http.get(&qr).send().await.unwrap().text().await.unwrap().contains("支付成功 Paid"));
    // a paid trade cannot be closed
    assert_eq!(sub_code(&env.client.close_payment("CP-Q1").await.outcome), "ACQ.TRADE_STATUS_ERROR");
    // two partial refunds, an idempotent repeat, an over-refund
    for (no, amount) in [("CP-Q1-R1", "10.00"), ("CP-Q1-R2", "20.00"), ("CP-Q1-R1", "10.00")] {
        match env.refund("CP-Q1", no, amount).await {
            Outcome::Success(r) => {
                assert_eq!(r.state, RefundState::Succeeded);
                assert_eq!(r.amount, Some(money(amount)));
            }
            other => panic!("refund {no}: {other:?}"),
        }
    }
    let over = env.refund("CP-Q1", "CP-Q1-R3", "58.89").await;
    assert_eq!(sub_code(&over), "ACQ.REASON_TRADE_REFUND_FEE_ERR");
    // refund queries
    match env.client.query_refund("CP-Q1", "CP-Q1-R2").await.outcome {
        Outcome::Success(r) => {
            assert_eq!(r.state, RefundState::Succeeded);
            assert_eq!(r.amount, Some(money("20.00")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        env.client.query_refund("CP-Q1", "CP-Q1-R9").await.outcome.success().unwrap().state,
        RefundState::NotFound
    );
    assert_eq!(env.state("CP-Q1").await, TradeState::Paid, "partly refunded: still paid");
    // the rest: the trade closes, with a refund notification
    assert!(env.refund("CP-Q1", "CP-Q1-R3", "58.88").await.is_success());
    assert_eq!(env.state("CP-Q1").await, TradeState::Refunded);
    eventually("the refund notification", || async {
        env.receiver.events_for("CP-Q1").iter().any(|e| matches!(e.kind, EventKind::RefundSucceeded { .. }))
    })
    .await;
    let refund_ev = env.receiver.events_for("CP-Q1").into_iter().find(|e| e.kind.name() == "refund_succeeded").unwrap();
    assert_eq!(
        refund_ev.kind,
        EventKind::RefundSucceeded {
            out_trade_no: "CP-Q1".into(),
            out_refund_no: "CP-Q1-R3".into(),
            amount: money("88.88"),
        }
    );
    assert_eq!(env.receiver.rejections(), 0);
    let view = env.view("CP-Q1").await;
    assert_eq!(view["state"], "TRADE_CLOSED");
    assert_eq!(view["refunds"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn alipay_close_expiry_and_conflicts() {
    let env = setup().await;
    // scanned, then closed by us
    let qr = env.create_qr("CP-C1", "1.00").await;
    env.http.get(&qr).send().await.unwrap();
    assert!(env.client.close_payment("CP-C1").await.outcome.is_success());
    assert_eq!(env.state("CP-C1").await, TradeState::Closed);
    assert_eq!(env.control("CP-C1", "pay", json!({})).await.status(), 409);
    eventually("the close notification", || async {
        env.receiver
            .events_for("CP-C1")
            .iter()
            .any(|e| e.kind == EventKind::PaymentClosed { out_trade_no: "CP-C1".into() })
    })
    .await;
    // closed before the scan: Alipay answers ACQ.TRADE_NOT_EXIST, which counts as closed
    let qr = env.create_qr("CP-C2", "1.00").await;
    let call = env.client.close_payment("CP-C2").await;
    assert!(call.raw.response.contains("ACQ.TRADE_NOT_EXIST"));
    assert!(call.outcome.is_success());
    let html = env.http.get(&qr).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("交易已关闭") && !html.contains("/confirm"), "{html}");
    assert_eq!(env.control("CP-C2", "pay", json!({})).await.status(), 409);
    // time_expire honoured: an unpaid trade closes by itself
    let mut req = env.payment("CP-C3", "1.00", PayMethod::AlipayQr);
    req.expires_at_ms = now_ms() + 2_500;
    let qr = match env.client.create_payment(&req).await.outcome {
        Outcome::Success(PayAction::QrCode(u)) => u,
        other => panic!("{other:?}"),
    };
    env.http.get(&qr).send().await.unwrap();
    assert_eq!(env.state("CP-C3").await, TradeState::Waiting);
    eventually("expiry", || async { env.state("CP-C3").await == TradeState::Closed }).await;
    assert!(env.http.get(&qr).send().await.unwrap().text().await.unwrap().contains("已过期"));
    eventually("the expiry notification", || async {
        env.receiver.events_for("CP-C3").iter().any(|e| e.kind.name() == "payment_closed")
    })
    .await;
    // same out_trade_no, different amount
    env.create_qr("CP-C4", "88.88").await;
    env.create_qr("CP-C4", "88.88").await;
    let again = env.client.create_payment(&env.payment("CP-C4", "1.00", PayMethod::AlipayQr)).await;
    assert_eq!(sub_code(&again.outcome), "ACQ.CONTEXT_INCONSISTENT");
    // other methods are not Alipay's
    let wechat = env.client.create_payment(&env.payment("CP-C5", "1.00", PayMethod::WechatNative)).await;
    assert!(matches!(wechat.outcome, Outcome::Failure(e) if e.code == "UNSUPPORTED_METHOD"));
}

#[tokio::test]
async fn alipay_page_and_wap_pay() {
    let env = setup().await;
    let url = match env.client.create_payment(&env.payment("CP-P1", "66.00", PayMethod::AlipayPage)).await.outcome {
        Outcome::Success(PayAction::Redirect(u)) => u,
        other => panic!("{other:?}"),
    };
    assert!(url.starts_with(&format!("{}/sandbox/alipay/gateway.do?", env.app.base)));
    let html = env.http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("¥66.00") && html.contains("确认付款") && !html.contains("错误代码"), "{html}");
    // a tampered URL is refused by the cashier
    let tampered = env.http.get(url.replace("66.00", "6.00")).send().await.unwrap().text().await.unwrap();
    assert!(tampered.contains("错误代码 isv.invalid-signature"), "{tampered}");
    // Pay → notification, then 302 to return_url with signed parameters
    let pay_url = env.view("CP-P1").await["pay_url"].as_str().unwrap().to_string();
    let resp = env.http.post(format!("{pay_url}/confirm")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let (target, query) = location.split_once('?').unwrap();
    assert_eq!(target, format!("{}/return", env.receiver.url));
    let (no, trade_no, amount) = env.client.verify_return(query).unwrap();
    assert_eq!((no.as_str(), amount), ("CP-P1", money("66.00")));
    assert!(env.client.verify_return(&query.replace("66.00", "0.66")).is_err());
    assert!(query.contains("method=alipay.trade.page.pay.return"));
    match env.client.query_payment("CP-P1").await.outcome {
        Outcome::Success(s) => {
            assert_eq!(s.state, TradeState::Paid);
            assert_eq!(s.provider_txn_id.as_deref(), Some(trade_no.as_str()));
        }
        other => panic!("{other:?}"),
    }
    eventually("the page-pay notification", || async { !env.receiver.events_for("CP-P1").is_empty() }).await;
    // wap pay, with the parameters POSTed as a form (the SDKs' POST-form variant)
    let url = match env.client.create_payment(&env.payment("CP-W1", "9.90", PayMethod::AlipayWap)).await.outcome {
        Outcome::Success(PayAction::Redirect(u)) => u,
        other => panic!("{other:?}"),
    };
    let (gateway, query) = url.split_once('?').unwrap();
    let html = env
        .http
        .post(gateway)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("¥9.90") && !html.contains("错误代码"), "{html}");
    let pay_url = env.view("CP-W1").await["pay_url"].as_str().unwrap().to_string();
    let resp = env.http.post(format!("{pay_url}/confirm")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert!(resp.headers()["location"].to_str().unwrap().contains("method=alipay.trade.wap.pay.return"));
    assert_eq!(env.state("CP-W1").await, TradeState::Paid);
}

#[tokio::test]
async fn alipay_fail_next_call_is_unknown() {
    let env = setup().await;
    env.create_qr("CP-F1", "1.00").await;
    assert_eq!(env.control("CP-F1", "faults", json!({ "fail_next_call": true })).await.status(), 200);
    let call = env.client.query_payment("CP-F1").await;
    assert!(matches!(call.outcome, Outcome::Unknown(_)), "{:?}", call.outcome);
    assert!(call.raw.response.contains("isp.unknow-error"));
    assert_eq!(env.state("CP-F1").await, TradeState::NotFound, "only the next call fails");
    // the same through the Rust API, on a refund
    let sb = &env.app.sandboxes.as_ref().unwrap().alipay;
    sb.pay("CP-F1").await.unwrap();
    sb.set_faults("CP-F1", server::sandbox::FaultSpec { fail_next_call: true, ..Default::default() }).await.unwrap();
    assert!(matches!(env.refund("CP-F1", "CP-F1-R1", "1.00").await, Outcome::Unknown(_)));
    assert!(env.refund("CP-F1", "CP-F1-R1", "1.00").await.is_success());
    // unknown control targets
    assert_eq!(env.control("NOPE", "pay", json!({})).await.status(), 404);
    assert_eq!(env.control("CP-F1", "faults", json!({ "bogus": 1 })).await.status(), 400);
}

#[tokio::test]
async fn alipay_statement_download() {
    let env = setup().await;
    env.create_qr("CP-S1", "50.00").await;
    assert_eq!(env.control("CP-S1", "pay", json!({})).await.status(), 200);
    assert!(env.refund("CP-S1", "CP-S1-R1", "5.00").await.is_success());
    env.create_qr("CP-S2", "7.00").await; // never paid: not on the bill
    assert_eq!(env.control("CP-S1", "backdate", json!({ "days": 1 })).await.status(), 200);
    let today = clinicpay::time::local_date(now_ms()).unwrap();
    let yesterday = today.pred_opt().unwrap();
    let st = match env.client.download_statement(yesterday).await.outcome {
        Outcome::Success(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(st.date, yesterday);
    assert!(st.raw.starts_with(b"PK"));
    assert_eq!(st.lines.len(), 2, "{:?}", st.lines);
    let pay = st.lines.iter().find(|l| l.kind == "payment").unwrap();
    assert_eq!((pay.out_trade_no.as_str(), pay.amount), ("CP-S1", money("50.00")));
    let refund = st.lines.iter().find(|l| l.kind == "refund").unwrap();
    assert_eq!(refund.amount, money("-5.00"));
    assert_eq!(refund.out_refund_no.as_deref(), Some("CP-S1-R1"));
    assert_eq!(refund.provider_txn_id, pay.provider_txn_id);
    // today's bill does not exist yet
    let call = env.client.download_statement(today).await;
    assert_eq!(sub_code(&call.outcome), "isp.bill_not_exist");
}

#[tokio::test]
async fn alipay_duplicate_and_drop_faults() {
    let env = setup().await;
    env.create_qr("CP-D1", "3.00").await;
    env.control("CP-D1", "faults", json!({ "duplicate": 5 })).await;
    env.control("CP-D1", "pay", json!({})).await;
    eventually("six deliveries", || async { env.receiver.events_for("CP-D1").len() >= 6 }).await;
    eventually("six acknowledgements", || async {
        let v = env.view("CP-D1").await;
        let d = v["deliveries"].as_array().unwrap().clone();
        d.len() == 6 && d.iter().all(|r| r["acknowledged"] == true)
    })
    .await;
    let events = env.receiver.events_for("CP-D1");
    assert_eq!(events.len(), 6);
    assert!(events.iter().all(|e| e.event_id == events[0].event_id), "notify_id stable across copies");
    // drop: nothing arrives
    env.create_qr("CP-D2", "3.00").await;
    env.control("CP-D2", "faults", json!({ "drop": true })).await;
    env.control("CP-D2", "pay", json!({})).await;
    let v = env.view("CP-D2").await;
    assert_eq!(v["deliveries"][0]["dropped"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.receiver.events_for("CP-D2").is_empty());
    assert_eq!(env.state("CP-D2").await, TradeState::Paid, "status sync still finds the payment");
    assert_eq!(env.events_len_total(), 6);
}

impl Env {
    fn events_len_total(&self) -> usize {
        self.receiver.received.lock().unwrap().len()
    }
}

/// Checks a raw gateway answer's layout and signature; returns the node.
fn checked_node(body: &str, method: &str, alipay_key: &PublicKey) -> Value {
    let parts = wire::extract_response(body, &wire::response_node_name(method)).unwrap_or_else(|| panic!("{body}"));
    assert!(body.contains(&format!("{},\"sign\":\"", parts.node)));
    assert!(wire::verify_response_node(alipay_key, parts.node, parts.sign.as_deref().unwrap()));
    serde_json::from_str(parts.node).unwrap()
}

#[tokio::test]
async fn alipay_gateway_transport_shapes_and_errors() {
    let env = setup().await;
    let gateway = format!("{}/sandbox/alipay/gateway.do", env.app.base);
    let alipay_key = PublicKey::parse(&env.app.sandboxes.as_ref().unwrap().alipay.public_key_pem()).unwrap();
    let merchant = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();
    let signed = |no: &str| {
        let mut p: wire::Params = [
            ("app_id", APP_ID.to_string()),
            ("method", "alipay.trade.precreate".into()),
            ("charset", "utf-8".into()),
            ("sign_type", "RSA2".into()),
            ("timestamp", "2024-01-01 12:00:00".into()),
            ("version", "1.0".into()),
            ("biz_content", format!(r#"{{"out_trade_no":"{no}","total_amount":0.01,"subject":"测试 A+B/C"}}"#)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        wire::sign_request(&mut p, &merchant);
        p
    };
    // python-alipay-sdk: GET, everything in the query string
    let p = signed("CP-T1");
    let body = env.http.get(format!("{gateway}?{}", wire::encode_form(&p))).send().await.unwrap().text().await.unwrap();
    assert_eq!(checked_node(&body, "alipay.trade.precreate", &alipay_key)["code"], "10000");
    // Node SDK: protocol parameters in the query, biz_content in the form body
    let p = signed("CP-T2");
    let (query, form): (wire::Params, wire::Params) = p.into_iter().partition(|(k, _)| k != "biz_content");
    let resp = env
        .http
        .post(format!("{gateway}?{}", wire::encode_form(&query)))
        .header("content-type", "application/x-www-form-urlencoded;charset=UTF-8")
        .body(wire::encode_form(&form))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(checked_node(&resp.text().await.unwrap(), "alipay.trade.precreate", &alipay_key)["code"], "10000");
    // Go SDK: everything in the form body
    let p = signed("CP-T3");
    let body = env
        .http
        .post(&gateway)
        .header("content-type", "application/x-www-form-urlencoded;charset=utf-8")
        .body(wire::encode_form(&p))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let node = checked_node(&body, "alipay.trade.precreate", &alipay_key);
    assert_eq!(node["out_trade_no"], "CP-T3");
    assert_eq!(env.view("CP-T3").await["amount"], "0.01", "numbers accepted, strings answered");
    // missing method: a signed error_response
    let body = env.http.post(&gateway).body("app_id=x").send().await.unwrap().text().await.unwrap();
    let parts = wire::extract_response(&body, "none_response").unwrap();
    assert!(parts.is_error_response && parts.node.contains("isv.missing-method"));
    assert!(wire::verify_response_node(&alipay_key, parts.node, parts.sign.as_deref().unwrap()));
    // our client with a key the sandbox does not know for this app
    let other_key = PrivateKey::generate().unwrap().to_pkcs8_pem();
    let alipay_pem = alipay_key.to_pem();
    let wrong_key = client_for(&env.app.base, APP_ID, &alipay_pem, &other_key);
    let o = wrong_key.create_payment(&env.payment("CP-T4", "1.00", PayMethod::AlipayQr)).await.outcome;
    assert!(
        matches!(&o, Outcome::Failure(e) if e.code == "40002" && e.sub_code.as_deref() == Some("isv.invalid-signature"))
    );
    // an app the sandbox does not know
    let unknown_app = client_for(&env.app.base, "2021000000000999", &alipay_pem, MERCHANT_PRIVATE);
    let o = unknown_app.query_payment("CP-T1").await.outcome;
    assert_eq!(sub_code(&o), "isv.invalid-app-id");
    // a client configured with the wrong Alipay public key cannot trust any answer
    let wrong_alipay =
        client_for(&env.app.base, APP_ID, &PrivateKey::generate().unwrap().public_key().to_pem(), MERCHANT_PRIVATE);
    assert!(matches!(wrong_alipay.query_payment("CP-T1").await.outcome, Outcome::Unknown(_)));
    // a gateway URL that is not a gateway
    let mut settings = env.client.settings().clone();
    settings.gateway_url = format!("{}/sandbox/alipay/nothing-here", env.app.base);
    let lost = AlipayClient::new(settings, MERCHANT_PRIVATE, server::gateways::http_client()).unwrap();
    let call = lost.query_payment("CP-T1").await;
    assert!(matches!(call.outcome, Outcome::Unknown(_)));
    assert!(matches!(call.raw.http_status, Some(s) if s >= 400), "{:?}", call.raw.http_status);
    // registration errors
    let resp = env
        .http
        .post(format!("{}/sandbox/alipay/apps", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .json(&json!({ "app_id": "x", "app_public_key": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn alipay_signed_success_notification_is_what_was_sent() {
    let env = setup().await;
    env.create_qr("CP-N1", "12.34").await;
    let sb = &env.app.sandboxes.as_ref().unwrap().alipay;
    assert!(sb.signed_success_notification("CP-N1").await.is_err(), "not paid yet");
    sb.pay("CP-N1").await.unwrap();
    assert_eq!(sb.trade_state("CP-N1").await.as_deref(), Some("TRADE_SUCCESS"));
    eventually("the notification", || async { !env.receiver.events_for("CP-N1").is_empty() }).await;
    let (headers, body) = sb.signed_success_notification("CP-N1").await.unwrap();
    let n = RawNotification { content_type: headers[0].1.clone(), headers, body };
    let ev = env.client.verify_notification(&n, now_ms()).unwrap();
    assert_eq!(ev, env.receiver.events_for("CP-N1")[0]);
    // posting it again (as the load benchmark does) is accepted
    let resp = env
        .http
        .post(format!("{}/notify", env.receiver.url))
        .header("content-type", &n.content_type)
        .body(n.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "success");
    // a JSON body is refused
    let resp = env
        .http
        .post(format!("{}/notify", env.receiver.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "failure");
}

#[tokio::test]
async fn sdk_alipay_node() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if !root.join("end2end/node_modules/alipay-sdk").exists() {
        if std::env::var("CLINICPAY_REQUIRE_SDK").as_deref() == Ok("1") {
            panic!("end2end/node_modules/alipay-sdk is missing (run npm install in end2end/)");
        }
        eprintln!("note: end2end/node_modules/alipay-sdk is not installed; the official SDK test is skipped");
        return;
    }
    let app = spawn_app("sqlite", false).await;
    let out = tokio::process::Command::new("node")
        .arg("end2end/sdk/alipay.mjs")
        .env("CLINICPAY_SANDBOX_TOKEN", crate::helpers::SANDBOX_TOKEN)
        .arg(&app.base)
        .current_dir(&root)
        .output()
        .await
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "alipay.mjs failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("alipay-sdk: ok"), "{stdout}");
}
