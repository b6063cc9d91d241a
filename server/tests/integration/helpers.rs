//! Test harness: fresh databases (a temp SQLite file; a new PostgreSQL database per test when
//! `CLINICPAY_TEST_PG_URL` names a server) and the app spawned on a free port.

use clinicpay::ports::Store;
use server::config::{Config, RunMode};
use server::db::sql::sql;
use server::db::{DbOptions, SqlStore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{:x}_{n}", std::process::id(), t & 0xffff_ffff)
}

/// The backends a test runs on: SQLite always; PostgreSQL when configured (and then required
/// when `CLINICPAY_REQUIRE_PG=1`, as the test command sets).
pub fn backends() -> Vec<&'static str> {
    let mut v = vec!["sqlite"];
    if std::env::var("CLINICPAY_TEST_PG_URL").is_ok() {
        v.push("postgres");
    } else if std::env::var("CLINICPAY_REQUIRE_PG").as_deref() == Ok("1") {
        panic!("CLINICPAY_REQUIRE_PG=1 but CLINICPAY_TEST_PG_URL is not set");
    } else {
        eprintln!("note: CLINICPAY_TEST_PG_URL not set; PostgreSQL variants skipped");
    }
    v
}

/// A fresh, empty database URL for a backend.
pub async fn fresh_db_url(backend: &str) -> String {
    match backend {
        "sqlite" => {
            let dir = std::env::temp_dir().join("clinicpay-tests");
            std::fs::create_dir_all(&dir).unwrap();
            format!("sqlite://{}", dir.join(format!("{}.db", unique("t"))).display())
        }
        "postgres" => {
            let admin = std::env::var("CLINICPAY_TEST_PG_URL").expect("CLINICPAY_TEST_PG_URL");
            let name = unique("clinicpay_test");
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the PostgreSQL admin URL");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin);
            format!("{base}/{name}")
        }
        other => panic!("unknown backend {other}"),
    }
}

/// A store on a fresh database, with raw SQL access for constraint tests.
pub struct TestDb {
    pub backend: &'static str,
    pub store: Arc<SqlStore>,
}

impl TestDb {
    pub async fn new(backend: &str) -> TestDb {
        let url = fresh_db_url(backend).await;
        let opts = DbOptions { max_connections: 8, migrate: true };
        let store = Arc::new(SqlStore::connect(&url, &opts).await.unwrap());
        TestDb { backend: if backend == "sqlite" { "sqlite" } else { "postgres" }, store }
    }

    /// Raw SQL access to a running app's database.
    #[allow(dead_code)]
    pub async fn attach(app: &TestApp) -> TestDb {
        let opts = DbOptions { max_connections: 2, migrate: false };
        let store = Arc::new(SqlStore::connect(&app.db_url, &opts).await.unwrap());
        TestDb { backend: app.backend, store }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Runs one statement; returns rows affected or the database's refusal.
    pub async fn exec(&self, text: &str) -> Result<u64, String> {
        sql(text).execute(self.store.db()).await.map_err(|e| e.to_string())
    }

    /// Runs statements in one transaction; the first refusal rolls back.
    pub async fn exec_tx(&self, sqls: &[&str]) -> Result<(), String> {
        let mut tx = self.store.db().write().await.map_err(|e| e.to_string())?;
        for q in sqls {
            sql(*q).execute(&mut tx).await.map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())
    }

    pub async fn scalar_i64(&self, text: &str) -> i64 {
        sql(text).scalar::<i64>(self.store.db()).await.unwrap()
    }

    pub async fn scalar_text(&self, text: &str) -> String {
        sql(text).scalar::<String>(self.store.db()).await.unwrap()
    }

    /// Table → sorted column names.
    pub async fn schema(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let text = match self.backend {
            "sqlite" => {
                "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'"
            }
            _ => {
                "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'"
            }
        };
        let rows: Vec<(String, String)> = sql(text).fetch_all(self.store.db()).await.unwrap();
        let mut map = std::collections::BTreeMap::<String, Vec<String>>::new();
        for (t, c) in rows {
            map.entry(t).or_default().push(c);
        }
        for cols in map.values_mut() {
            cols.sort();
        }
        map
    }
}

/// A running app on a free port with a fresh database.
pub struct TestApp {
    #[allow(dead_code)]
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub services: clinicpay::services::Services,
    #[allow(dead_code)]
    pub backend: &'static str,
    #[allow(dead_code)]
    pub sandboxes: Option<server::sandbox::Sandboxes>,
    /// The app's own database, for tests that look at rows directly.
    pub db_url: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// The sandbox control credential every test server is given (issue 13 #12).
pub const SANDBOX_TOKEN: &str = "test-sandbox-control-token-0123456789";
pub const SANDBOX_TOKEN_HEADER: &str = server::sandbox::CONTROL_TOKEN_HEADER;

pub async fn spawn_app(backend: &'static str, seed: bool) -> TestApp {
    spawn_app_with(backend, seed, |_| {}).await
}

pub async fn spawn_app_with(backend: &'static str, seed: bool, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut cfg = Config {
        env: RunMode::Development,
        sandbox: true,
        sandbox_control_token: Some(SANDBOX_TOKEN.into()),
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: fresh_db_url(backend).await,
        seed_demo: seed,
        log_filter: std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into()),
        data_dir: std::env::temp_dir().join("clinicpay-tests").join(unique("data")),
        sandbox_time_scale_permille: 1,
        run_workers: false,
        ..Config::default()
    };
    tweak(&mut cfg);
    if std::env::var("TEST_LOG").is_ok() {
        server::telemetry::init(&cfg);
    }
    let db_url = cfg.database_url.clone();
    let app = server::startup::Application::build(cfg).await.expect("build app");
    let addr = app.local_addr();
    let services = app.services.clone();
    let sandboxes = app.sandboxes.clone();
    if seed {
        server::demo::seed(&services, sandboxes.as_ref()).await.expect("seed demo");
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp { addr, base: format!("http://{addr}"), services, backend, sandboxes, db_url, _shutdown: tx }
}

/// A minimal HTTP client that keeps one session cookie and never follows redirects.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: Option<String>,
}

impl TestApp {
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            base: self.base.clone(),
            cookie: None,
        }
    }

    /// A client logged in as one of the demo users.
    pub async fn login(&self, username: &str, password: &str) -> Client {
        let mut c = self.client();
        let resp = c.post_form("/auth/login", &[("username", username), ("password", password), ("next", "/")]).await;
        assert_eq!(resp.status(), 303, "login redirects");
        // each role lands on its home: `/`, or `/finance` for finance
        let home = if username == "finance" { "/finance" } else { "/" };
        assert_eq!(resp.headers()["location"], home, "login as {username} succeeds");
        c
    }
}

impl Client {
    fn with_cookie(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(c) => rb.header("cookie", c.clone()),
            None => rb,
        }
    }

    fn keep_cookie(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("cp_session=") {
                let value = rest.split(';').next().unwrap();
                self.cookie = if value.is_empty() { None } else { Some(format!("cp_session={value}")) };
            }
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.with_cookie(self.http.get(format!("{}{}", self.base, path))).send().await.unwrap()
    }

    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let rb = self.http.post(format!("{}{}", self.base, path)).header("origin", &self.base).form(form);
        let resp = self.with_cookie(rb).send().await.unwrap();
        self.keep_cookie(&resp);
        resp
    }

    /// Calls a server function the way the browser does (form-encoded POST, same origin).
    pub async fn call(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let rb = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("origin", &self.base)
            .header("accept", "application/json")
            .form(form);
        self.with_cookie(rb).send().await.unwrap()
    }

    /// Calls a server function that takes a JSON body.
    pub async fn call_json(&self, path: &str, body: &str) -> reqwest::Response {
        let rb = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("origin", &self.base)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(body.to_string());
        self.with_cookie(rb).send().await.unwrap()
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut rb = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body.to_string());
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        self.with_cookie(rb).send().await.unwrap()
    }
}
