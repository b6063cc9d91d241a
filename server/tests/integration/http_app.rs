//! The HTTP surface: login, roles on every server function, cross-origin refusal, pages, bad
//! input, health and metrics.

use crate::helpers::{backends, spawn_app, Client, TestApp};
use std::collections::HashMap;

const CASHIER: (&str, &str) = ("cashier", "demo-cashier");
const FINANCE: (&str, &str) = ("finance", "demo-finance");
const ADMIN: (&str, &str) = ("admin", "demo-admin-1");

async fn text(r: reqwest::Response) -> String {
    r.text().await.unwrap()
}

#[tokio::test]
async fn login_logout_and_pages() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let anon = app.client();
        // pages need a login
        let r = anon.get("/bills?q=x").await;
        assert_eq!(r.status(), 303, "{backend}");
        assert_eq!(r.headers()["location"], "/login?next=%2Fbills%3Fq%3Dx");
        assert_eq!(anon.get("/login").await.status(), 200);

        // wrong password
        let mut c = app.client();
        let r = c
            .post_form("/auth/login", &[("username", "cashier"), ("password", "wrong-password"), ("next", "/bills")])
            .await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/login?error=bad_credentials&next=%2Fbills");
        assert!(c.cookie.is_none());
        // an open redirect is not possible
        let r = c
            .post_form(
                "/auth/login",
                &[("username", "cashier"), ("password", "demo-cashier"), ("next", "//evil.example/")],
            )
            .await;
        assert_eq!(r.headers()["location"], "/");
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
        // no page asked for: finance lands on its own home; a page asked for is kept
        let r = c.post_form("/auth/login", &[("username", FINANCE.0), ("password", FINANCE.1), ("next", "/")]).await;
        assert_eq!(r.headers()["location"], "/finance");
        let r =
            c.post_form("/auth/login", &[("username", FINANCE.0), ("password", FINANCE.1), ("next", "/bills")]).await;
        assert_eq!(r.headers()["location"], "/bills");

        for (user, pw) in [CASHIER, FINANCE, ADMIN] {
            let c = app.login(user, pw).await;
            let r = c.get("/").await;
            assert_eq!(r.status(), 200, "{backend}: dashboard for {user}");
            let body = text(r).await;
            assert!(body.contains("今日收入") || body.contains("Today"), "{backend}: dashboard renders for {user}");
        }

        // a cashier gets a clear "not allowed" page for admin pages
        let mut cashier = app.login(CASHIER.0, CASHIER.1).await;
        let r = cashier.get("/admin/users").await;
        assert_eq!(r.status(), 403, "{backend}");
        assert!(text(r).await.contains("无权访问"));
        // the admin sees it
        let admin = app.login(ADMIN.0, ADMIN.1).await;
        let r = admin.get("/admin/users").await;
        assert_eq!(r.status(), 200);
        assert!(text(r).await.contains("cashier"));

        // search by name finds the patient's bills, server-rendered
        let p = app.services.store.list_patients(None, 1, 20).await.unwrap().items[4].clone();
        let r = cashier.get(&format!("/bills?q={}", app::components::enc(&p.name))).await;
        assert_eq!(r.status(), 200);
        let body = text(r).await;
        assert!(body.contains(&p.name) && body.contains(&p.mrn), "{backend}: bills of {} listed", p.name);
        let r = cashier.get(&format!("/patients?q={}", p.mrn)).await;
        assert!(text(r).await.contains(&p.name), "{backend}: patient found by record number");

        // language cookie
        let r = cashier.get("/lang/en?next=/bills").await;
        assert_eq!(r.status(), 303);
        assert!(r.headers()["set-cookie"].to_str().unwrap().starts_with("cp_lang=en"));
        assert_eq!(cashier.get("/lang/xx").await.status(), 400);

        // logout ends the session
        let r = cashier.post_form("/auth/logout", &[]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(cashier.get("/").await.status(), 303, "{backend}: logged out");

        let audit: Vec<String> =
            app.services.store.list_audit(100).await.unwrap().into_iter().map(|a| a.action).collect();
        assert!(
            audit.contains(&"login".to_string())
                && audit.contains(&"logout".to_string())
                && audit.contains(&"login_failed".to_string())
        );
        assert_eq!(app.services.store.verify_audit_chain().await.unwrap().broken_at, None);
    }
}

/// Sample arguments for every server function: the walk below fails when a function is added
/// without one, so no function escapes the role check.
fn sample_args(app_user_id: &str) -> HashMap<&'static str, Vec<(&'static str, String)>> {
    use app::api::*;
    use server_fn::ServerFn;
    let mut m: HashMap<&'static str, Vec<(&'static str, String)>> = HashMap::new();
    m.insert(<GetCurrentUser as ServerFn>::PATH, vec![]);
    m.insert(<GetDashboard as ServerFn>::PATH, vec![]);
    m.insert(<ListBills as ServerFn>::PATH, vec![("params[q]", "王".into())]);
    m.insert(<GetBill as ServerFn>::PATH, vec![("id", "bill_00000000000000000000000000".into())]);
    m.insert(<ListPatients as ServerFn>::PATH, vec![]);
    m.insert(<GetPatient as ServerFn>::PATH, vec![("id", "pat_00000000000000000000000000".into())]);
    m.insert(<ListUsers as ServerFn>::PATH, vec![]);
    m.insert(<ListRefunds as ServerFn>::PATH, vec![("queue", "true".into())]);
    m.insert(<GetRefund as ServerFn>::PATH, vec![("id", "ref_00000000000000000000000000".into())]);
    m.insert(<GetShiftBoard as ServerFn>::PATH, vec![]);
    m.insert(<GetShift as ServerFn>::PATH, vec![("id", "sft_00000000000000000000000000".into())]);
    m.insert(<OpenShift as ServerFn>::PATH, vec![("float", "100.00".into())]);
    m.insert(
        <CloseShift as ServerFn>::PATH,
        vec![("id", "sft_00000000000000000000000000".into()), ("counted", "1".into()), ("note", "".into())],
    );
    m.insert(<ConfirmShift as ServerFn>::PATH, vec![("id", "sft_00000000000000000000000000".into())]);
    m.insert(
        <RequestRefund as ServerFn>::PATH,
        vec![
            ("bill_id", "bill_00000000000000000000000000".into()),
            ("lines", "".into()),
            ("amount", "1.00".into()),
            ("reason", "other".into()),
            ("reason_text", "x".into()),
        ],
    );
    m.insert(
        <ActOnRefund as ServerFn>::PATH,
        vec![
            ("refund_id", "ref_00000000000000000000000000".into()),
            ("action", "approve".into()),
            ("seen", "requested".into()),
            ("note", "".into()),
        ],
    );
    m.insert(
        <CreateUser as ServerFn>::PATH,
        vec![
            ("username", "walker".into()),
            ("display_name", "W".into()),
            ("role", "cashier".into()),
            ("password", "x".into()),
        ],
    );
    m.insert(<SetUserDisabled as ServerFn>::PATH, vec![("user_id", app_user_id.into()), ("disabled", "false".into())]);
    m.insert(<ResetPassword as ServerFn>::PATH, vec![("user_id", app_user_id.into()), ("password", "short".into())]);
    m.insert(<SearchAuditLog as ServerFn>::PATH, vec![(JSON, r#"{"q":{"who":"admin"}}"#.into())]);
    let nobody = "ses_00000000000000000000000000".to_string();
    m.insert(<FindPatients as ServerFn>::PATH, vec![("q", "王".into())]);
    m.insert(<ChargeOverview as ServerFn>::PATH, vec![("patient_id", "pat_00000000000000000000000000".into())]);
    m.insert(<RecordCounterPayment as ServerFn>::PATH, vec![(JSON, r#"{"req":{"patient_id":"pat_00000000000000000000000000","bill_ids":[],"channel":"cash","tendered":"1","pos_reference":"","pos_terminal":"","card_last4":"","idempotency_key":"k"}}"#.into())]);
    m.insert(<StartPayment as ServerFn>::PATH, vec![(JSON, r#"{"req":{"patient_id":"pat_00000000000000000000000000","bill_ids":[],"method":"alipay","idempotency_key":"k"}}"#.into())]);
    m.insert(<PaymentStatus as ServerFn>::PATH, vec![("session_id", nobody.clone())]);
    m.insert(<CancelPayment as ServerFn>::PATH, vec![("session_id", nobody.clone())]);
    m.insert(<RefreshPayment as ServerFn>::PATH, vec![("session_id", nobody.clone())]);
    m.insert(<CheckPayment as ServerFn>::PATH, vec![("session_id", nobody)]);
    m.insert(<ListExceptions as ServerFn>::PATH, vec![("open_only", "true".into())]);
    m.insert(
        <DecideException as ServerFn>::PATH,
        vec![
            ("exception_id", "exc_00000000000000000000000000".into()),
            ("action", "resolve".into()),
            ("note", "n".into()),
        ],
    );
    m.insert(<ListChannels as ServerFn>::PATH, vec![]);
    m.insert(<SaveChannel as ServerFn>::PATH, vec![(JSON, r#"{"form":{"id":"","version":0,"provider":"alipay","name":"x","settings":"{}","private_key":"","apiv3_key":"","sandbox":true,"enabled":true,"make_default":false}}"#.into())]);
    m.insert(<TestChannel as ServerFn>::PATH, vec![("channel_id", "chn_00000000000000000000000000".into())]);
    m.insert(<MakeDefaultChannel as ServerFn>::PATH, vec![("channel_id", "chn_00000000000000000000000000".into())]);
    m.insert(<ReencryptChannels as ServerFn>::PATH, vec![]);
    m.insert(<ListTokens as ServerFn>::PATH, vec![]);
    m.insert(<CreateToken as ServerFn>::PATH, vec![("name", "walk".into()), ("role", "nobody".into())]);
    m.insert(<DisableToken as ServerFn>::PATH, vec![("token_id", "tok_00000000000000000000000000".into())]);
    m.insert(<ListNotifications as ServerFn>::PATH, vec![]);
    m.insert(<SearchCatalogue as ServerFn>::PATH, vec![("q", "LAB".into())]);
    m.insert(<ListDepartments as ServerFn>::PATH, vec![]);
    m.insert(
        <IssueBill as ServerFn>::PATH,
        vec![(JSON, r#"{"bill":{"patient_id":"x","department":"IM","items":[]}}"#.into())],
    );
    m.insert(<RegisterPatient as ServerFn>::PATH, vec![(JSON, r#"{"patient":{"mrn":"x","name":"测试"}}"#.into())]);
    m.insert(<VoidBill as ServerFn>::PATH, vec![("bill_id", "x".into()), ("reason", "测试".into())]);
    m.insert(<AdminCatalogue as ServerFn>::PATH, vec![("q", "LAB".into())]);
    m.insert(
        <SaveChargeItem as ServerFn>::PATH,
        vec![(JSON, r#"{"item":{"code":"","name":"x","category":"lab","unit":"次","unit_price":"1.00"}}"#.into())],
    );
    m.insert(
        <ImportCatalogue as ServerFn>::PATH,
        vec![(JSON, r#"{"kind":"charge_items","file_name":"x.csv","content_base64":"Y29kZQo="}"#.into())],
    );
    m.insert(<GetTrialBalance as ServerFn>::PATH, vec![]);
    m.insert(<GetAccountLedger as ServerFn>::PATH, vec![("code", "1221".into())]);
    m.insert(<GetDay as ServerFn>::PATH, vec![("day", "2024-03-01".into())]);
    // a stale figures key: refused with a code, nothing is closed
    m.insert(
        <CloseDay as ServerFn>::PATH,
        vec![("day", "2024-03-01".into()), ("key", "stale".into()), ("note", String::new())],
    );
    m.insert(<ListCloses as ServerFn>::PATH, vec![]);
    m.insert(<ListEndpoints as ServerFn>::PATH, vec![]);
    m.insert(
        <SaveEndpoint as ServerFn>::PATH,
        vec![(
            JSON,
            r#"{"form":{"id":"","version":0,"name":"walk","url":"ftp://x/","topics":[],"enabled":true}}"#.into(),
        )],
    );
    m.insert(
        <RollEndpointSecret as ServerFn>::PATH,
        vec![("endpoint_id", "whk_00000000000000000000000000".into()), ("version", "1".into())],
    );
    m.insert(<ListDeliveries as ServerFn>::PATH, vec![("status", "failed".into())]);
    m.insert(<DeliveryDetail as ServerFn>::PATH, vec![("delivery_id", "dlv_00000000000000000000000000".into())]);
    m.insert(<ResendDelivery as ServerFn>::PATH, vec![("delivery_id", "dlv_00000000000000000000000000".into())]);
    m
}

/// Marks a sample that is a JSON body (for functions with JSON input).
const JSON: &str = "$json";

#[tokio::test]
async fn every_server_function_checks_the_role() {
    let app = spawn_app("sqlite", true).await;
    let target = app.services.store.user_by_username("finance").await.unwrap().unwrap().id;
    let samples = sample_args(target.as_str());
    let table: HashMap<&str, clinicpay::auth::Access> = app::api::server_fn_access().into_iter().collect();
    let registered: Vec<&str> = server_fn::axum::server_fn_paths().map(|(p, _)| p).collect();
    assert!(registered.len() >= 10);
    let mut clients: Vec<(Option<clinicpay::auth::Role>, Client)> = vec![(None, app.client())];
    for (user, pw, role) in [
        (CASHIER.0, CASHIER.1, clinicpay::auth::Role::Cashier),
        (FINANCE.0, FINANCE.1, clinicpay::auth::Role::Finance),
        (ADMIN.0, ADMIN.1, clinicpay::auth::Role::Admin),
    ] {
        clients.push((Some(role), app.login(user, pw).await));
    }
    let mut checked = 0;
    for path in registered {
        let access = *table.get(path).unwrap_or_else(|| panic!("{path} missing from the access table"));
        let args = samples.get(path).unwrap_or_else(|| panic!("{path} has no sample arguments in this test"));
        let form: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for (role, client) in &clients {
            let r = match form.first() {
                Some((k, body)) if *k == JSON => client.call_json(path, body).await,
                _ => client.call(path, &form).await,
            };
            let status = r.status().as_u16();
            if access.allows(*role) {
                assert!(status != 401 && status != 403, "{path} as {role:?} must be allowed, got {status}");
                assert!(status < 500, "{path} as {role:?}: {status} {}", r.text().await.unwrap());
            } else {
                let expected = if role.is_none() { 401 } else { 403 };
                assert_eq!(status, expected, "{path} as {role:?}");
                let body: app::error::AppError = r.json().await.unwrap();
                assert!(body.code == "unauthenticated" || body.code == "forbidden");
            }
            checked += 1;
        }
    }
    assert!(checked >= 40);
    // unknown server-function paths do not exist
    assert_eq!(clients[3].1.call("/api/fn/nope", &[]).await.status(), 404);
}

#[tokio::test]
async fn cross_origin_posts_are_refused() {
    let app = spawn_app("sqlite", true).await;
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let before = app.services.store.list_users().await.unwrap().len();
    let body = "username=evil&display_name=E&role=admin&password=0123456789ab";
    for origin in [Some("http://evil.example"), Some("null"), None] {
        let r = admin.post_raw("/api/fn/admin/users/create", "application/x-www-form-urlencoded", body, origin).await;
        assert_eq!(r.status(), 403, "origin {origin:?}");
        assert!(r.text().await.unwrap().contains("csrf"));
    }
    // and a login form posted from elsewhere
    let r = app
        .client()
        .post_raw(
            "/auth/login",
            "application/x-www-form-urlencoded",
            "username=admin&password=demo-admin-1",
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(app.services.store.list_users().await.unwrap().len(), before, "nothing was created");
    // same origin works
    let r =
        admin.post_raw("/api/fn/admin/users/create", "application/x-www-form-urlencoded", body, Some(&app.base)).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    for backend in backends() {
        let app: TestApp = spawn_app(backend, true).await;
        let admin = app.login(ADMIN.0, ADMIN.1).await;
        let cashier = app.login(CASHIER.0, CASHIER.1).await;
        let users_before = app.services.store.list_users().await.unwrap().len();
        let audit_before = app.services.store.verify_audit_chain().await.unwrap().entries;

        // URLs of pages
        for path in [
            "/bills/not-an-id",
            "/bills/bill_123",
            "/bills/pat_00000000000000000000000000",
            "/patients/%27%20OR%201%3D1",
            "/bills?page=abc",
            "/bills?page=0",
            "/bills?page=-5",
            "/bills?page=99999999999999999999",
            "/bills?page_size=100000",
            "/bills?status=stolen",
            "/bills?from=2026-13-45",
            "/bills?to=yesterday",
            "/bills?from=2026-11-02&to=2026-11-01",
            "/bills?sort=password",
            "/patients?page=1.5",
        ] {
            let r = cashier.get(path).await;
            assert_eq!(r.status(), 400, "{backend}: {path}");
            let body = r.text().await.unwrap();
            assert!(body.contains("role=\"alert\""), "{backend}: {path} explains the error");
        }
        let r = cashier.get("/bills/bill_00000000000000000000000000").await;
        assert_eq!(r.status(), 404, "{backend}: well-formed but unknown id");

        // server-function calls
        let calls: Vec<(&str, Vec<(&str, &str)>, u16)> = vec![
            ("/api/fn/bill", vec![("id", "'; DROP TABLE bills; --")], 400),
            ("/api/fn/bill", vec![], 400),
            ("/api/fn/patient", vec![("id", "")], 400),
            ("/api/fn/bills", vec![("params[page]", "x")], 400),
            ("/api/fn/bills", vec![("params[from]", "2026-02-30")], 400),
            ("/api/fn/patients", vec![("page", "-1")], 400),
        ];
        for (path, form, expected) in &calls {
            let r = cashier.call(path, form).await;
            assert_eq!(r.status().as_u16(), *expected, "{backend}: {path} {form:?}");
            let e: app::error::AppError = r.json().await.unwrap();
            assert!(!e.code.is_empty() && !e.message.is_empty());
        }
        let admin_calls: Vec<(&str, Vec<(&str, &str)>)> = vec![
            (
                "/api/fn/admin/users/create",
                vec![("username", "Bad Name"), ("display_name", "x"), ("role", "cashier"), ("password", "0123456789")],
            ),
            (
                "/api/fn/admin/users/create",
                vec![("username", "okname"), ("display_name", "x"), ("role", "emperor"), ("password", "0123456789")],
            ),
            (
                "/api/fn/admin/users/create",
                vec![("username", "okname"), ("display_name", "x"), ("role", "cashier"), ("password", "short")],
            ),
            (
                "/api/fn/admin/users/create",
                vec![("username", "okname"), ("display_name", ""), ("role", "cashier"), ("password", "0123456789")],
            ),
            (
                "/api/fn/admin/users/create",
                vec![("username", "cashier"), ("display_name", "dup"), ("role", "cashier"), ("password", "0123456789")],
            ),
            ("/api/fn/admin/users/disable", vec![("user_id", "usr_nope"), ("disabled", "true")]),
            ("/api/fn/admin/users/disable", vec![("user_id", "usr_00000000000000000000000000"), ("disabled", "maybe")]),
            ("/api/fn/admin/users/password", vec![("user_id", "x"), ("password", "0123456789")]),
        ];
        for (path, form) in &admin_calls {
            let r = admin.call(path, form).await;
            let s = r.status().as_u16();
            assert!((400..500).contains(&s), "{backend}: {path} {form:?} gave {s}");
        }
        // garbage bodies
        for body in ["%%%", "id=%ZZ", &"a".repeat(5000)] {
            let r = cashier.post_raw("/api/fn/bill", "application/x-www-form-urlencoded", body, Some(&app.base)).await;
            assert!((400..500).contains(&r.status().as_u16()), "{backend}: body {body:.20}");
        }
        assert_eq!(
            app.services.store.list_users().await.unwrap().len(),
            users_before,
            "{backend}: no user was created"
        );
        assert_eq!(
            app.services.store.verify_audit_chain().await.unwrap().entries,
            audit_before,
            "{backend}: nothing was audited, because nothing changed"
        );
    }
}

#[tokio::test]
async fn login_throttling_slows_then_refuses() {
    let app = spawn_app("sqlite", true).await;
    let mut c = app.client();
    let mut last = String::new();
    let started = std::time::Instant::now();
    for _ in 0..9 {
        let r = c
            .post_form("/auth/login", &[("username", "finance"), ("password", "not-the-password"), ("next", "/")])
            .await;
        last = r.headers()["location"].to_str().unwrap().to_string();
    }
    assert!(started.elapsed() >= std::time::Duration::from_secs(3), "failed attempts past the third are slowed");
    assert!(last.contains("error=too_many_requests"), "{last}");
    // even the right password is refused while locked
    let r = c.post_form("/auth/login", &[("username", "finance"), ("password", "demo-finance"), ("next", "/")]).await;
    assert!(r.headers()["location"].to_str().unwrap().contains("too_many_requests"));
    // other users are not affected
    app.login(CASHIER.0, CASHIER.1).await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app("sqlite", false).await;
    let c = app.client();
    assert_eq!(text(c.get("/healthz").await).await, "ok");
    assert_eq!(c.get("/readyz").await.status(), 200);
    let r = c.get("/login").await;
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let r = c.http.get(format!("{}/healthz", app.base)).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123", "a well-formed request id is kept");
    let m = text(c.get("/metrics").await).await;
    assert!(m.contains("clinicpay_http_requests_total{route=\"/login\",method=\"GET\",status=\"200\"}"), "{m}");
    assert!(m.contains("clinicpay_http_request_duration_seconds_bucket{route=\"/login\""));
    assert!(m.contains("clinicpay_db_pool_connections{backend=\"sqlite\"}"));
}
