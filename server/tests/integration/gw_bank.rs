//! The bank-card gateway: our client against our sandbox over real HTTP, notifications to a real
//! receiver, the card page driven as a browser would, request security, faults, statements, and
//! an independent implementation of the protocol document (`end2end/sdk/bank.mjs`).

use crate::helpers::{spawn_app, TestApp};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use clinicpay::money::Money;
use clinicpay::payments::{
    EventKind, Outcome, PayAction, PayMethod, ProviderEvent, RefundState, TradeState, TradeStatus,
};
use clinicpay::ports::{CreatePayment, Gateway, RawNotification, RefundRequest};
use server::crypto::PrivateKey;
use server::gateways::bank::{wire, BankClient, BankSettings};
use server::sandbox::bank::BankSandbox;
use server::sandbox::FaultSpec;
use server::sandbox::SandboxControl;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MERCHANT_PRIVATE: &str = include_str!("../fixtures/merchant_private.pem");
const MERCHANT_PUBLIC: &str = include_str!("../fixtures/merchant_public.pem");
const PROVIDER_PRIVATE: &str = include_str!("../fixtures/provider_private.pem");
const PROVIDER_PUBLIC: &str = include_str!("../fixtures/provider_public.pem");

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What the merchant's notification endpoint saw.
#[derive(Default)]
struct Inbox {
    events: Vec<ProviderEvent>,
    rejections: Vec<String>,
    attempts: u32,
    /// Answer FAIL to this many attempts first (to see the bank retry).
    fail_first: u32,
}

type Shared = (Arc<BankClient>, Arc<Mutex<Inbox>>);

async fn notify_handler(State((client, inbox)): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let n = RawNotification {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        content_type: headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string(),
        body: body.to_vec(),
    };
    let accepted = {
        let mut inbox = inbox.lock().unwrap();
        inbox.attempts += 1;
        if inbox.fail_first > 0 {
            inbox.fail_first -= 1;
            false
        } else {
            assert!(client.owns_notification(&n));
            match client.verify_notification(&n, now_ms()) {
                Ok(ev) => {
                    inbox.events.push(ev);
                    true
                }
                Err(e) => {
                    inbox.rejections.push(e.to_string());
                    false
                }
            }
        }
    };
    let reply = client.notify_reply(accepted);
    (axum::http::StatusCode::from_u16(reply.status).unwrap(), [("content-type", reply.content_type)], reply.body)
        .into_response()
}

struct Env {
    app: TestApp,
    client: Arc<BankClient>,
    sandbox: Arc<BankSandbox>,
    inbox: Arc<Mutex<Inbox>>,
    notify_url: String,
    merchant_id: String,
    bank_public_key: String,
    http: reqwest::Client,
}

async fn setup(merchant_id: &str) -> Env {
    let app = spawn_app("sqlite", false).await;
    let sandbox = app.sandboxes.as_ref().expect("sandboxes enabled").bank.clone();
    let http = reqwest::Client::new();
    // registration over HTTP, as any client would
    let reg: serde_json::Value = http
        .post(format!("{}/sandbox/bank/merchants", app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .json(&serde_json::json!({ "merchant_id": merchant_id, "merchant_public_key": MERCHANT_PUBLIC }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bank_public_key = reg["bank_public_key"].as_str().expect("bank_public_key").to_string();
    assert_eq!(bank_public_key, sandbox.bank_public_key());
    let settings = BankSettings {
        merchant_id: merchant_id.into(),
        api_base: format!("{}/sandbox/bank", app.base),
        bank_public_key: bank_public_key.clone(),
    };
    let client = Arc::new(BankClient::new(settings, MERCHANT_PRIVATE, server::gateways::http_client()).unwrap());
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new()
        .route("/notify/bank", axum::routing::post(notify_handler))
        .with_state((client.clone(), inbox.clone()));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Env {
        app,
        client,
        sandbox,
        inbox,
        notify_url: format!("http://{addr}/notify/bank"),
        merchant_id: merchant_id.into(),
        bank_public_key,
        http,
    }
}

static EXPIRES_AT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

impl Env {
    fn payment(&self, out_trade_no: &str, amount: &str) -> CreatePayment {
        CreatePayment {
            out_trade_no: out_trade_no.into(),
            amount: Money::parse(amount).unwrap(),
            subject: "门诊缴费 Outpatient".into(),
            method: PayMethod::BankCard,
            // one expiry for every payment of the run: a retried create must send the same
            // parameters, and two calls a second apart would otherwise differ in expire_time
            expires_at_ms: *EXPIRES_AT.get_or_init(|| now_ms() + 15 * 60_000),
            notify_url: self.notify_url.clone(),
            return_url: Some(format!("{}/checkout/done", self.app.base)),
            payer_openid: None,
            payer_ip: None,
        }
    }

    async fn create(&self, out_trade_no: &str, amount: &str) -> String {
        let call = self.client.create_payment(&self.payment(out_trade_no, amount)).await;
        match call.outcome {
            Outcome::Success(PayAction::QrCode(url)) => url,
            other => panic!("create {out_trade_no}: {other:?} / {:?}", call.raw),
        }
    }

    async fn status(&self, out_trade_no: &str) -> TradeStatus {
        match self.client.query_payment(out_trade_no).await.outcome {
            Outcome::Success(s) => s,
            other => panic!("query {out_trade_no}: {other:?}"),
        }
    }

    /// Waits until the receiver has accepted events satisfying `pred`.
    async fn wait_events(&self, what: &str, pred: impl Fn(&[ProviderEvent]) -> bool) -> Vec<ProviderEvent> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let inbox = self.inbox.lock().unwrap();
                assert!(inbox.rejections.is_empty(), "rejected notifications: {:?}", inbox.rejections);
                if pred(&inbox.events) {
                    return inbox.events.clone();
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn events_for(&self, out_trade_no: &str) -> Vec<ProviderEvent> {
        self.inbox.lock().unwrap().events.iter().filter(|e| e.kind.out_trade_no() == out_trade_no).cloned().collect()
    }

    /// A request signed with `key`, sent raw; returns the verified answer.
    async fn raw_call(&self, op: &str, params: &wire::Params, key: &PrivateKey) -> wire::Params {
        let mut p = params.clone();
        wire::sign(&mut p, key);
        self.raw_post(op, wire::to_json(&p)).await
    }

    async fn raw_post(&self, op: &str, body: String) -> wire::Params {
        let resp = self
            .http
            .post(format!("{}/sandbox/bank/api/{op}", self.app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let p = wire::parse_flat(&resp.bytes().await.unwrap()).unwrap();
        let bank = server::crypto::PublicKey::parse(&self.bank_public_key).unwrap();
        assert!(wire::verify(&p, &bank), "bank answers are signed");
        p
    }

    fn base_params(&self, out_trade_no: &str) -> wire::Params {
        [
            ("merchant_id", self.merchant_id.clone()),
            ("timestamp", wire::fmt_time(now_ms())),
            ("nonce", server::crypto::random_alnum(32)),
            ("out_trade_no", out_trade_no.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

fn for_trade(events: &[ProviderEvent], out_trade_no: &str) -> usize {
    events.iter().filter(|e| e.kind.out_trade_no() == out_trade_no).count()
}

fn form_action(html: &str, suffix: &str) -> String {
    html.split("action=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .find(|a| a.ends_with(suffix))
        .unwrap_or_else(|| panic!("no form posting to …{suffix} in {html}"))
}

fn money(s: &str) -> Money {
    Money::parse(s).unwrap()
}

fn refund_req(env: &Env, out_trade_no: &str, out_refund_no: &str, amount: &str) -> RefundRequest {
    RefundRequest {
        out_trade_no: out_trade_no.into(),
        out_refund_no: out_refund_no.into(),
        amount: money(amount),
        total: money("88.88"),
        reason: "患者退费 refund".into(),
        notify_url: Some(env.notify_url.clone()),
    }
}

#[tokio::test]
async fn bank_card_payment_refunds_and_statement() {
    let env = setup("MFLOW01").await;
    let otn = "CPBANK0001";

    // only the bank card method
    let mut other = env.payment(otn, "88.88");
    other.method = PayMethod::AlipayQr;
    match env.client.create_payment(&other).await.outcome {
        Outcome::Failure(e) => assert_eq!(e.code, "UNSUPPORTED_METHOD"),
        o => panic!("{o:?}"),
    }

    let pay_url = env.create(otn, "88.88").await;
    assert!(pay_url.starts_with(&format!("{}/sandbox/bank/pay/", env.app.base)), "{pay_url}");
    // a retried create returns the same card page
    assert_eq!(env.create(otn, "88.88").await, pay_url);
    let s = env.status(otn).await;
    assert_eq!((s.state, s.amount, s.provider_state.as_str()), (TradeState::Waiting, Some(money("88.88")), "WAITING"));

    // the payer opens the card page (phone-sized) and pays as a browser would
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(&pay_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("width=device-width") && html.contains("¥88.88") && html.contains("门诊缴费"));
    assert!(html.contains(r#"name="card_number""#) && html.contains(r#"inputmode="numeric""#));
    assert!(html.contains(r#"<label for="card_number">"#) && html.contains(r#"name="holder_name""#));
    let confirm = form_action(&html, "/confirm");

    // a declined card: the order stays payable
    let r = browser
        .post(&confirm)
        .form(&[("card_number", "4000 0000 0000 0002"), ("holder_name", "ZHANG SAN")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Card declined"), "{html}");
    assert!(html.contains(r#"name="card_number""#), "the card form is offered again");
    assert!(!html.contains(r#"value="4000"#), "the typed number is not echoed");
    let evs = env.wait_events("PAYMENT_FAILED", |e| !e.is_empty()).await;
    assert_eq!(evs[0].kind, EventKind::PaymentAttemptFailed { out_trade_no: otn.into(), code: "CARD_DECLINED".into() });
    assert_eq!(env.status(otn).await.state, TradeState::Waiting);
    // an invalid number is refused on the page and changes nothing
    let r = browser.post(&confirm).form(&[("card_number", "1234 5678"), ("holder_name", "")]).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("Invalid card number"));

    // then the success card
    let r = browser
        .post(&confirm)
        .form(&[("card_number", "4111 1111 1111 1111"), ("holder_name", "ZHANG SAN")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("支付成功 Paid"), "{html}");
    assert!(html.contains(&format!(r#"href="{}/checkout/done""#, env.app.base)), "return link");
    assert!(!html.contains("4111"), "no full card number echoed");

    let evs = env
        .wait_events("PAYMENT_SUCCESS", |e| e.iter().any(|e| matches!(e.kind, EventKind::PaymentSucceeded { .. })))
        .await;
    let paid = evs.iter().find(|e| matches!(e.kind, EventKind::PaymentSucceeded { .. })).unwrap();
    assert_eq!(paid.account, "MFLOW01");
    let EventKind::PaymentSucceeded { provider_txn_id, amount, paid_at_ms, payer, .. } = &paid.kind else {
        unreachable!()
    };
    assert_eq!((*amount, payer.as_deref()), (money("88.88"), Some("****1111")));

    let s = env.status(otn).await;
    assert_eq!(s.state, TradeState::Paid);
    assert_eq!(s.provider_txn_id.as_ref(), Some(provider_txn_id));
    assert_eq!(s.paid_at_ms, *paid_at_ms);
    assert_eq!(env.sandbox.trade_state(otn).await.as_deref(), Some("SUCCESS"));

    // the raw exchange is kept, without private keys
    let call = env.client.query_payment(otn).await;
    assert_eq!((call.raw.operation.as_str(), call.raw.http_status), ("query", Some(200)));
    assert!(call.raw.request.contains("\"out_trade_no\":\"CPBANK0001\"") && call.raw.response.contains("SUCCESS"));
    assert!(!call.raw.request.contains("PRIVATE"));

    // a paid order cannot be closed
    match env.client.close_payment(otn).await.outcome {
        Outcome::Failure(e) => assert_eq!(e.code, "ORDER_PAID"),
        o => panic!("{o:?}"),
    }

    // two partial refunds (processing first), an idempotent retry, then one too many
    for (no, amt) in [("R1", "10.00"), ("R2", "20.00")] {
        match env.client.refund(&refund_req(&env, otn, no, amt)).await.outcome {
            Outcome::Waiting(Some(r)) => {
                assert_eq!(
                    (r.state, r.amount, r.provider_state.as_str()),
                    (RefundState::Processing, Some(money(amt)), "REFUND_PROCESSING")
                )
            }
            Outcome::Success(r) => assert_eq!(r.state, RefundState::Succeeded),
            o => panic!("refund {no}: {o:?}"),
        }
    }
    let retry = env.client.refund(&refund_req(&env, otn, "R1", "10.00")).await.outcome;
    assert!(matches!(retry, Outcome::Waiting(Some(_)) | Outcome::Success(_)), "{retry:?}");
    match env.client.refund(&refund_req(&env, otn, "R3", "58.89")).await.outcome {
        Outcome::Failure(e) => assert_eq!(e.code, "REFUND_EXCEEDS"),
        o => panic!("{o:?}"),
    }
    for no in ["R1", "R2"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match env.client.query_refund(otn, no).await.outcome {
                Outcome::Success(r) if r.state == RefundState::Succeeded => {
                    assert!(r.provider_refund_id.as_deref().is_some_and(|id| id.starts_with("BR")));
                    break;
                }
                Outcome::Success(r) => assert_eq!(r.state, RefundState::Processing),
                o => panic!("{o:?}"),
            }
            assert!(Instant::now() < deadline, "refund {no} never completed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    match env.client.query_refund(otn, "R404").await.outcome {
        Outcome::Success(r) => assert_eq!(r.state, RefundState::NotFound),
        o => panic!("{o:?}"),
    }
    let evs = env
        .wait_events("two REFUND_SUCCESS", |e| {
            e.iter().filter(|e| matches!(e.kind, EventKind::RefundSucceeded { .. })).count() >= 2
        })
        .await;
    let mut refunds: Vec<(String, Money)> = evs
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RefundSucceeded { out_refund_no, amount, .. } => Some((out_refund_no.clone(), *amount)),
            _ => None,
        })
        .collect();
    refunds.sort();
    assert_eq!(refunds, vec![("R1".to_string(), money("10.00")), ("R2".to_string(), money("20.00"))]);
    let s = env.status(otn).await;
    assert_eq!((s.state, s.provider_state.as_str()), (TradeState::Refunded, "SUCCESS"));

    // unknown orders
    let s = env.status("CPNOSUCH").await;
    assert_eq!((s.state, s.provider_state.as_str()), (TradeState::NotFound, "ORDER_NOT_EXIST"));

    // today's statement: the payment and both refunds
    let today = clinicpay::time::local_date(now_ms()).unwrap();
    let call = env.client.download_statement(today).await;
    let Outcome::Success(st) = call.outcome else { panic!("{:?} / {:?}", call.outcome, call.raw) };
    assert_eq!(st.date, today);
    assert!(String::from_utf8(st.raw.clone()).unwrap().starts_with(wire::STATEMENT_HEADER));
    let mut lines: Vec<(String, Money, Option<String>)> =
        st.lines.iter().map(|l| (l.kind.clone(), l.amount, l.out_refund_no.clone())).collect();
    lines.sort_by(|a, b| a.2.cmp(&b.2));
    assert_eq!(
        lines,
        vec![
            ("payment".into(), money("88.88"), None),
            ("refund".into(), money("-10.00"), Some("R1".into())),
            ("refund".into(), money("-20.00"), Some("R2".into())),
        ]
    );
    let pay_line = st.lines.iter().find(|l| l.kind == "payment").unwrap();
    assert_eq!((&pay_line.provider_txn_id, pay_line.fee), (provider_txn_id, Some(money("0.34"))));
    assert_eq!(pay_line.occurred_at.len(), "2024-01-01 12:00:10".len());

    // the control API shows the order, refunds and deliveries
    let ctl: serde_json::Value = env
        .http
        .get(format!("{}/sandbox/bank/control/trades/{otn}", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((ctl["state"].as_str(), ctl["amount"].as_str()), (Some("SUCCESS"), Some("88.88")));
    assert_eq!(ctl["refunds"].as_array().unwrap().len(), 2);
    assert!(ctl["deliveries"].as_array().unwrap().iter().all(|d| d["acknowledged"] == true));
    assert!(!ctl.to_string().contains("4111111111111111"));
}

#[tokio::test]
async fn bank_close_errors_and_unknown_outcomes() {
    let env = setup("MCLOSE01").await;

    let pay_url = env.create("CPCLOSE1", "12.00").await;
    match env.client.close_payment("CPCLOSE1").await.outcome {
        Outcome::Success(()) => {}
        o => panic!("{o:?}"),
    }
    assert_eq!(env.status("CPCLOSE1").await.state, TradeState::Closed);
    // the card page no longer takes cards
    let html = reqwest::get(&pay_url).await.unwrap().text().await.unwrap();
    assert!(html.contains("Closed") && !html.contains("card_number"));
    let r = env
        .http
        .post(format!("{}/sandbox/bank/control/trades/CPCLOSE1/pay", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    match env.client.create_payment(&env.payment("CPCLOSE1", "12.00")).await.outcome {
        Outcome::Failure(e) => assert_eq!(e.code, "ORDER_CLOSED"),
        o => panic!("{o:?}"),
    }
    match env.client.close_payment("CPNOSUCH").await.outcome {
        Outcome::Failure(e) => assert!(e.is_not_found(), "{e:?}"),
        o => panic!("{o:?}"),
    }
    match env.client.refund(&refund_req(&env, "CPCLOSE1", "R1", "1.00")).await.outcome {
        Outcome::Failure(e) => assert_eq!(e.code, "ORDER_CLOSED"),
        o => panic!("{o:?}"),
    }

    // same number, other amount
    env.create("CPDUP1", "12.00").await;
    match env.client.create_payment(&env.payment("CPDUP1", "13.00")).await.outcome {
        Outcome::Failure(e) => assert_eq!(e.code, "DUPLICATE_ORDER"),
        o => panic!("{o:?}"),
    }

    // fail_next_call: the outcome is unknown, and nothing happened; the next call works
    env.sandbox.set_faults("CPDUP1", FaultSpec { fail_next_call: true, ..FaultSpec::default() }).await.unwrap();
    match env.client.query_payment("CPDUP1").await.outcome {
        Outcome::Unknown(reason) => assert!(reason.contains("SYSTEM_ERROR"), "{reason}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(env.status("CPDUP1").await.state, TradeState::Waiting);
    // also through the control API, before the order exists
    let r = env
        .http
        .post(format!("{}/sandbox/bank/control/trades/CPFAIL1/faults", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .json(&serde_json::json!({ "fail_next_call": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(matches!(env.client.create_payment(&env.payment("CPFAIL1", "1.00")).await.outcome, Outcome::Unknown(_)));
    assert_eq!(env.status("CPFAIL1").await.state, TradeState::NotFound, "the failed create did nothing");
    env.create("CPFAIL1", "1.00").await;

    // a client that trusts the wrong bank key cannot verify answers: unknown
    let wrong = BankClient::new(
        BankSettings {
            merchant_id: env.merchant_id.clone(),
            api_base: format!("{}/sandbox/bank", env.app.base),
            bank_public_key: PROVIDER_PUBLIC.into(),
        },
        MERCHANT_PRIVATE,
        server::gateways::http_client(),
    )
    .unwrap();
    match wrong.query_payment("CPDUP1").await.outcome {
        Outcome::Unknown(reason) => assert!(reason.contains("signature"), "{reason}"),
        o => panic!("{o:?}"),
    }
    // a merchant signing with a key the bank does not know: refused
    let impostor = BankClient::new(
        BankSettings {
            merchant_id: env.merchant_id.clone(),
            api_base: format!("{}/sandbox/bank", env.app.base),
            bank_public_key: env.bank_public_key.clone(),
        },
        PROVIDER_PRIVATE,
        server::gateways::http_client(),
    )
    .unwrap();
    match impostor.query_payment("CPDUP1").await.outcome {
        Outcome::Failure(e) => assert_eq!(e.code, "INVALID_SIGNATURE"),
        o => panic!("{o:?}"),
    }
    // nobody listening: unknown
    let offline = BankClient::new(
        BankSettings {
            merchant_id: env.merchant_id.clone(),
            api_base: "http://127.0.0.1:9/sandbox/bank".into(),
            bank_public_key: env.bank_public_key.clone(),
        },
        MERCHANT_PRIVATE,
        server::gateways::http_client(),
    )
    .unwrap();
    assert!(matches!(offline.query_payment("CPDUP1").await.outcome, Outcome::Unknown(_)));
}

#[tokio::test]
async fn bank_refuses_replayed_stale_and_forged_requests() {
    let env = setup("MSEC01").await;
    env.create("CPSEC1", "5.00").await;
    let key = PrivateKey::parse(MERCHANT_PRIVATE).unwrap();

    // the same signed request twice: the second is a replay
    let mut p = env.base_params("CPSEC1");
    wire::sign(&mut p, &key);
    let body = wire::to_json(&p);
    let first = env.raw_post("query", body.clone()).await;
    assert_eq!((first["code"].as_str(), first["trade_status"].as_str()), ("SUCCESS", "WAITING"));
    assert_eq!(first["nonce"], p["nonce"], "the answer echoes our nonce");
    let second = env.raw_post("query", body).await;
    assert_eq!(second["code"], "REPLAY");
    assert_eq!(second.get("trade_status"), None);

    // a timestamp more than five minutes old
    let mut p = env.base_params("CPSEC1");
    p.insert("timestamp".into(), wire::fmt_time(now_ms() - 6 * 60_000));
    assert_eq!(env.raw_call("query", &p, &key).await["code"], "STALE");

    // forged: signed with another key, or altered after signing
    let p = env.base_params("CPSEC1");
    assert_eq!(
        env.raw_call("close", &p, &PrivateKey::parse(PROVIDER_PRIVATE).unwrap()).await["code"],
        "INVALID_SIGNATURE"
    );
    let mut p = env.base_params("CPSEC1");
    wire::sign(&mut p, &key);
    p.insert("out_trade_no".into(), "CPSEC2".into());
    assert_eq!(env.raw_post("close", wire::to_json(&p)).await["code"], "INVALID_SIGNATURE");
    assert_eq!(env.sandbox.trade_state("CPSEC1").await.as_deref(), Some("WAITING"), "nothing was closed");

    // unknown merchant, malformed bodies
    let mut p = env.base_params("CPSEC1");
    p.insert("merchant_id".into(), "MNOBODY".into());
    assert_eq!(env.raw_call("query", &p, &key).await["code"], "UNKNOWN_MERCHANT");
    assert_eq!(env.raw_post("query", r#"{"merchant_id":"MSEC01","amount_fen":1}"#.into()).await["code"], "PARAM_ERROR");
    assert_eq!(env.raw_post("query", "not json".into()).await["code"], "PARAM_ERROR");
    let r = env.http.post(format!("{}/sandbox/bank/api/transfer", env.app.base)).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn bank_notification_faults_and_retries() {
    let env = setup("MFAULT01").await;

    // duplicates: three identical copies, one notify_id
    env.create("CPDUP01", "1.00").await;
    env.sandbox.set_faults("CPDUP01", FaultSpec { duplicate: 2, ..FaultSpec::default() }).await.unwrap();
    env.sandbox.pay("CPDUP01").await.unwrap();
    env.wait_events("three copies", |e| for_trade(e, "CPDUP01") >= 3).await;
    let evs = env.events_for("CPDUP01");
    assert_eq!(evs.len(), 3);
    assert!(evs.iter().all(|e| e.event_id == evs[0].event_id && matches!(e.kind, EventKind::PaymentSucceeded { .. })));

    // drop: nothing arrives, the query still finds the payment
    env.create("CPDROP1", "1.00").await;
    env.sandbox.set_faults("CPDROP1", FaultSpec { drop: true, ..FaultSpec::default() }).await.unwrap();
    env.sandbox.pay("CPDROP1").await.unwrap();
    assert_eq!(env.status("CPDROP1").await.state, TradeState::Paid);
    let ctl: serde_json::Value = env
        .http
        .get(format!("{}/sandbox/bank/control/trades/CPDROP1", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ctl["deliveries"][0]["dropped"], true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(env.events_for("CPDROP1").is_empty());
    // what the load benchmark posts: a valid success notification, built on demand
    let (headers, body) = env.sandbox.signed_success_notification("CPDROP1").await.unwrap();
    let n = RawNotification {
        content_type: headers.iter().find(|(k, _)| k == "content-type").unwrap().1.clone(),
        headers,
        body,
    };
    let ev = env.client.verify_notification(&n, now_ms()).unwrap();
    assert!(matches!(ev.kind, EventKind::PaymentSucceeded { ref out_trade_no, .. } if out_trade_no == "CPDROP1"));

    // the merchant fails twice: the bank retries on its (scaled) schedule with the same notify_id
    env.inbox.lock().unwrap().fail_first = 2;
    let before = env.inbox.lock().unwrap().attempts;
    env.create("CPRETRY1", "1.00").await;
    let r = env
        .http
        .post(format!("{}/sandbox/bank/control/trades/CPRETRY1/pay", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .json(&serde_json::json!({ "card_number": "4111111111111111" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!((v["state"].as_str(), v["result"].as_str()), (Some("SUCCESS"), Some("PAID")));
    env.wait_events("a retried notification", |e| for_trade(e, "CPRETRY1") > 0).await;
    assert_eq!(env.inbox.lock().unwrap().attempts - before, 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ctl: serde_json::Value = env
            .http
            .get(format!("{}/sandbox/bank/control/trades/CPRETRY1", env.app.base))
            .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let d = &ctl["deliveries"][0];
        if d["acknowledged"] == true {
            assert_eq!(d["attempts"], 3);
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // control API: insufficient funds via a chosen card, then cancel closes the order
    env.create("CPCANCEL1", "1.00").await;
    let v: serde_json::Value = env
        .http
        .post(format!("{}/sandbox/bank/control/trades/CPCANCEL1/pay", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .json(&serde_json::json!({ "card_number": "4000000000009995" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((v["state"].as_str(), v["result"].as_str()), (Some("WAITING"), Some("INSUFFICIENT_FUNDS")));
    let r = env
        .http
        .post(format!("{}/sandbox/bank/control/trades/CPCANCEL1/scan", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = env
        .http
        .post(format!("{}/sandbox/bank/control/trades/CPCANCEL1/cancel", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.status("CPCANCEL1").await.state, TradeState::Closed);

    // defaults apply to orders created afterwards; {} resets
    let r = env
        .http
        .post(format!("{}/sandbox/bank/control/defaults", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .json(&serde_json::json!({ "drop": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    env.create("CPDEF1", "1.00").await;
    env.sandbox.pay("CPDEF1").await.unwrap();
    let r = env
        .http
        .post(format!("{}/sandbox/bank/control/defaults", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    env.create("CPDEF2", "1.00").await;
    env.sandbox.pay("CPDEF2").await.unwrap();
    env.wait_events("CPDEF2 paid", |e| for_trade(e, "CPDEF2") > 0).await;
    assert!(env.events_for("CPDEF1").is_empty(), "dropped by the defaults");
    let bad = env
        .http
        .post(format!("{}/sandbox/bank/control/defaults", env.app.base))
        .header(crate::helpers::SANDBOX_TOKEN_HEADER, crate::helpers::SANDBOX_TOKEN)
        .json(&serde_json::json!({ "explode": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// `end2end/sdk/bank.mjs` implements the protocol from docs/providers/bank.md alone (Node's
/// `node:crypto`, no packages) and runs create → pay → query → refund against the sandbox.
#[tokio::test]
async fn bank_protocol_document_suffices_for_an_independent_client() {
    let require = std::env::var("CLINICPAY_REQUIRE_SDK").as_deref() == Ok("1");
    let node_ok = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node_ok {
        assert!(!require, "CLINICPAY_REQUIRE_SDK=1 but `node` is not available");
        eprintln!("note: node not found; the independent bank client (end2end/sdk/bank.mjs) was skipped");
        return;
    }
    let app = spawn_app("sqlite", false).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tokio::process::Command::new("node")
        .arg(root.join("end2end/sdk/bank.mjs"))
        .env("CLINICPAY_SANDBOX_TOKEN", crate::helpers::SANDBOX_TOKEN)
        .arg(&app.base)
        .current_dir(&root)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out).await.expect("bank.mjs finished in time").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bank.mjs failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("bank protocol OK"), "{stdout}");
}
