//! Configuration (P3, P4): defaults, then an optional TOML file, then the environment.
//! Every key is documented in the README's configuration table.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `production` (the default: no sandboxes, no demo data) or `development` (sandboxes and
    /// demo data on unless switched off). Nothing unsafe happens without being asked for.
    pub env: RunMode,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://data/clinicpay.db` (default) or `postgres://user@host/db`.
    pub database_url: String,
    pub db_max_connections: u32,
    /// The address people and providers reach this server at (used for notification URLs and
    /// the sandbox QR codes). Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info,sqlx=warn`.
    pub log_filter: String,
    /// Seed demo data into an empty database on `serve`.
    pub seed_demo: bool,
    /// Allow demo users in production (explicit opt-in only).
    pub allow_demo_in_production: bool,
    /// Mount the built-in provider sandboxes.
    pub sandbox: bool,
    /// Allow sandbox channels in production (explicit opt-in only).
    pub allow_sandbox_in_production: bool,
    /// Mark cookies `Secure`. Defaults to true when `public_url` is https.
    pub secure_cookies: Option<bool>,
    /// Proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<IpAddr>,
    pub session_ttl_minutes: i64,
    /// A staff session unused this long must log in again.
    pub session_idle_minutes: i64,
    /// Where cargo-leptos put the site (JS, WASM, CSS, public files).
    pub site_root: String,
    /// Master key(s) for secrets at rest: `version:base64key` entries separated by commas; the
    /// highest version encrypts. Or a file holding the same.
    pub master_keys: Option<String>,
    pub master_key_file: Option<PathBuf>,
    /// Local state that is not in the database: the sandboxes' keys, the demo master key.
    pub data_dir: PathBuf,
    /// Sandbox notification retries and delays run at this ‰ of real time (1000 = real time).
    pub sandbox_time_scale_permille: u64,
    /// The credential the sandboxes' control and registration endpoints ask for (header
    /// `X-Sandbox-Token`). Unset: a random one, kept in `<data_dir>/sandbox-control-token`.
    pub sandbox_control_token: Option<String>,
    /// Money that arrives too late (after expiry or cancel): `auto_refund` or `hold`.
    pub late_payment_policy: clinicpay::checkout::LatePaymentPolicy,
    /// Run the background workers (expiry, status sync, closes, refunds, outbox).
    pub run_workers: bool,
    /// A notification stored but not finished (the process died) is re-processed after this long.
    pub redrive_after_seconds: i64,
    /// Rejected provider notifications are deleted after this many days.
    pub rejected_notification_retention_days: i64,
    /// R2: a finance officer's refund up to this many yuan needs no approval.
    pub refund_direct_limit: String,
    /// R2: a refund above this many yuan needs two different finance approvers.
    pub refund_dual_limit: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("env", &self.env)
            .field("listen", &self.listen)
            .field("database", &redact_url(&self.database_url))
            .field("public_url", &self.public_url)
            .field("sandbox", &self.sandbox)
            .field("seed_demo", &self.seed_demo)
            .field("sandbox_control_token", &self.sandbox_control_token.as_ref().map(|_| "<set>"))
            .field("master_keys", &self.master_keys.as_ref().map(|_| "<set>"))
            .field("master_key_file", &self.master_key_file)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            env: RunMode::Production,
            listen: "127.0.0.1:3000".parse().expect("valid"),
            database_url: "sqlite://data/clinicpay.db".into(),
            db_max_connections: 16,
            public_url: None,
            log_format: LogFormat::Human,
            log_filter: "info,sqlx=warn,tower_http=warn,leptos_axum=warn".into(),
            seed_demo: false,
            allow_demo_in_production: false,
            sandbox: false,
            allow_sandbox_in_production: false,
            secure_cookies: None,
            trusted_proxies: Vec::new(),
            session_ttl_minutes: 12 * 60,
            session_idle_minutes: 15,
            site_root: "target/site".into(),
            master_keys: None,
            master_key_file: None,
            data_dir: PathBuf::from("data"),
            sandbox_time_scale_permille: 1000,
            sandbox_control_token: None,
            late_payment_policy: clinicpay::checkout::LatePaymentPolicy::AutoRefund,
            run_workers: true,
            redrive_after_seconds: 30,
            rejected_notification_retention_days: 30,
            refund_direct_limit: "200.00".into(),
            refund_dual_limit: "5000.00".into(),
        }
    }
}

/// Hides the password in a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_bool(name: &str, v: &str) -> anyhow::Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name} must be true or false, not {v:?}"),
    }
}

impl Config {
    /// Defaults ← TOML file (`path`, or `CLINICPAY_CONFIG`) ← environment. In development mode
    /// the sandboxes and the demo data are on unless the file or the environment switches them off.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let file = path.map(Path::to_path_buf).or_else(|| env("CLINICPAY_CONFIG").map(PathBuf::from));
        let mut explicit: Vec<String> = Vec::new();
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
                let cfg = Self::from_toml(&text).with_context(|| format!("parsing {}", p.display()))?;
                explicit.extend(toml::from_str::<toml::Table>(&text)?.keys().cloned());
                cfg
            }
            None => Config::default(),
        };
        cfg.apply_env()?;
        for (key, var) in [("sandbox", "CLINICPAY_SANDBOX"), ("seed_demo", "CLINICPAY_SEED_DEMO")] {
            if env(var).is_some() {
                explicit.push(key.to_string());
            }
        }
        cfg.development_defaults(&explicit);
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        Ok(toml::from_str::<Config>(text)?)
    }

    /// Development mode turns on what it is for, where nothing was said about it.
    fn development_defaults(&mut self, explicit: &[String]) {
        if self.env == RunMode::Development {
            if !explicit.iter().any(|k| k == "sandbox") {
                self.sandbox = true;
            }
            if !explicit.iter().any(|k| k == "seed_demo") {
                self.seed_demo = true;
            }
        }
    }

    fn apply_env(&mut self) -> anyhow::Result<()> {
        if let Some(v) = env("CLINICPAY_ENV") {
            self.env = match v.as_str() {
                "production" => RunMode::Production,
                "development" | "dev" => RunMode::Development,
                _ => bail!("CLINICPAY_ENV must be development or production"),
            };
        }
        if let Some(v) = env("CLINICPAY_LISTEN").or_else(|| env("LEPTOS_SITE_ADDR")) {
            self.listen = v.parse().with_context(|| format!("CLINICPAY_LISTEN {v:?} is not host:port"))?;
        }
        if let Some(v) = env("CLINICPAY_DATABASE_URL").or_else(|| env("DATABASE_URL")) {
            self.database_url = v;
        }
        if let Some(v) = env("CLINICPAY_DB_MAX_CONNECTIONS") {
            self.db_max_connections = v.parse().context("CLINICPAY_DB_MAX_CONNECTIONS")?;
        }
        if let Some(v) = env("CLINICPAY_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = env("CLINICPAY_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "json" => LogFormat::Json,
                "human" | "text" => LogFormat::Human,
                _ => bail!("CLINICPAY_LOG_FORMAT must be human or json"),
            };
        }
        if let Some(v) = env("CLINICPAY_LOG").or_else(|| env("RUST_LOG")) {
            self.log_filter = v;
        }
        for (name, slot) in [
            ("CLINICPAY_SEED_DEMO", &mut self.seed_demo),
            ("CLINICPAY_ALLOW_DEMO_IN_PRODUCTION", &mut self.allow_demo_in_production),
            ("CLINICPAY_SANDBOX", &mut self.sandbox),
            ("CLINICPAY_ALLOW_SANDBOX_IN_PRODUCTION", &mut self.allow_sandbox_in_production),
        ] {
            if let Some(v) = env(name) {
                *slot = parse_bool(name, &v)?;
            }
        }
        if let Some(v) = env("CLINICPAY_SECURE_COOKIES") {
            self.secure_cookies = Some(parse_bool("CLINICPAY_SECURE_COOKIES", &v)?);
        }
        if let Some(v) = env("CLINICPAY_TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split(',')
                .map(|s| {
                    s.trim().parse().with_context(|| format!("CLINICPAY_TRUSTED_PROXIES: {s:?} is not an IP address"))
                })
                .collect::<anyhow::Result<_>>()?;
        }
        if let Some(v) = env("CLINICPAY_SESSION_TTL_MINUTES") {
            self.session_ttl_minutes = v.parse().context("CLINICPAY_SESSION_TTL_MINUTES")?;
        }
        if let Some(v) = env("CLINICPAY_SESSION_IDLE_MINUTES") {
            self.session_idle_minutes = v.parse().context("CLINICPAY_SESSION_IDLE_MINUTES")?;
        }
        if let Some(v) = env("LEPTOS_SITE_ROOT").or_else(|| env("CLINICPAY_SITE_ROOT")) {
            self.site_root = v;
        }
        if let Some(v) = env("CLINICPAY_MASTER_KEYS") {
            self.master_keys = Some(v);
        }
        if let Some(v) = env("CLINICPAY_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("CLINICPAY_SANDBOX_TIME_SCALE_PERMILLE") {
            self.sandbox_time_scale_permille = v.parse().context("CLINICPAY_SANDBOX_TIME_SCALE_PERMILLE")?;
        }
        if let Some(v) = env("CLINICPAY_SANDBOX_CONTROL_TOKEN") {
            self.sandbox_control_token = Some(v);
        }
        if let Some(v) = env("CLINICPAY_LATE_PAYMENT_POLICY") {
            self.late_payment_policy = match v.as_str() {
                "auto_refund" => clinicpay::checkout::LatePaymentPolicy::AutoRefund,
                "hold" => clinicpay::checkout::LatePaymentPolicy::Hold,
                _ => bail!("CLINICPAY_LATE_PAYMENT_POLICY must be auto_refund or hold"),
            };
        }
        if let Some(v) = env("CLINICPAY_RUN_WORKERS") {
            self.run_workers = parse_bool("CLINICPAY_RUN_WORKERS", &v)?;
        }
        if let Some(v) = env("CLINICPAY_REDRIVE_AFTER_SECONDS") {
            self.redrive_after_seconds = v.parse().context("CLINICPAY_REDRIVE_AFTER_SECONDS")?;
        }
        if let Some(v) = env("CLINICPAY_REJECTED_NOTIFICATION_RETENTION_DAYS") {
            self.rejected_notification_retention_days =
                v.parse().context("CLINICPAY_REJECTED_NOTIFICATION_RETENTION_DAYS")?;
        }
        if let Some(v) = env("CLINICPAY_REFUND_DIRECT_LIMIT") {
            self.refund_direct_limit = v;
        }
        if let Some(v) = env("CLINICPAY_REFUND_DUAL_LIMIT") {
            self.refund_dual_limit = v;
        }
        if let Some(v) = env("CLINICPAY_MASTER_KEY_FILE") {
            self.master_key_file = Some(PathBuf::from(v));
        }
        Ok(())
    }

    /// The refund approval limits (R2), parsed as yuan amounts.
    pub fn refund_policy(&self) -> anyhow::Result<clinicpay::refunds::RefundPolicy> {
        let parse = |v: &str, key: &str| {
            clinicpay::Money::parse(v.trim())
                .ok()
                .filter(|m| !m.is_negative())
                .with_context(|| format!("{key} must be an amount in yuan such as 200.00"))
        };
        Ok(clinicpay::refunds::RefundPolicy {
            direct_limit: parse(&self.refund_direct_limit, "refund_direct_limit")?,
            dual_limit: parse(&self.refund_dual_limit, "refund_dual_limit")?,
        })
    }

    fn validate(&self) -> anyhow::Result<()> {
        crate::db::Backend::of_url(&self.database_url)?;
        if !(1..=7 * 24 * 60).contains(&self.session_ttl_minutes) {
            bail!("session_ttl_minutes must be between 1 and 10080");
        }
        if !(1..=self.session_ttl_minutes).contains(&self.session_idle_minutes) {
            bail!("session_idle_minutes must be between 1 and session_ttl_minutes");
        }
        let policy = self.refund_policy()?;
        if policy.direct_limit > policy.dual_limit {
            bail!("refund_direct_limit must not be above refund_dual_limit");
        }
        if !(1..=3650).contains(&self.rejected_notification_retention_days) {
            bail!("rejected_notification_retention_days must be between 1 and 3650");
        }
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("public_url must start with http:// or https://");
            }
        }
        if self.sandbox_control_token.as_ref().is_some_and(|t| t.trim().len() < 16) {
            bail!("sandbox_control_token must be at least 16 characters");
        }
        if self.production() && self.sandbox && !self.allow_sandbox_in_production {
            bail!("production mode refuses the built-in sandboxes; set CLINICPAY_ALLOW_SANDBOX_IN_PRODUCTION=true to override");
        }
        if self.production() && self.seed_demo && !self.allow_demo_in_production {
            bail!("production mode refuses demo data; set CLINICPAY_ALLOW_DEMO_IN_PRODUCTION=true to override");
        }
        Ok(())
    }

    pub fn production(&self) -> bool {
        self.env == RunMode::Production
    }

    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_string()
    }

    pub fn secure_cookies(&self) -> bool {
        self.secure_cookies.unwrap_or_else(|| self.public_url().starts_with("https://"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://app:secret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn toml_file_parses() {
        let c: Config =
            toml::from_str("listen = \"0.0.0.0:8080\"\ndatabase_url = \"postgres://u@h/db\"\nsandbox = false\n")
                .unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert!(!c.sandbox);
        assert!(toml::from_str::<Config>("no_such_key = 1").is_err());
    }

    #[test]
    fn production_refuses_demo_and_sandbox() {
        let c = Config { env: RunMode::Production, sandbox: true, ..Config::default() };
        assert!(c.validate().is_err());
        let c = Config { env: RunMode::Production, seed_demo: true, ..Config::default() };
        assert!(c.validate().is_err());
        let c =
            Config { env: RunMode::Production, sandbox: true, allow_sandbox_in_production: true, ..Config::default() };
        assert!(c.validate().is_ok());
    }

    /// Issue 13 #12: nothing unsafe without being asked for. With no configuration at all the
    /// server is in production mode with no sandboxes and no demo data; development mode turns
    /// them on unless told otherwise.
    #[test]
    fn defaults_fail_closed_and_development_is_explicit() {
        let mut c = Config::default();
        c.development_defaults(&[]);
        assert!(c.production() && !c.sandbox && !c.seed_demo);
        assert!(c.validate().is_ok());

        let mut c = Config::from_toml("env = \"development\"\n").unwrap();
        c.development_defaults(&["env".into()]);
        assert!(!c.production() && c.sandbox && c.seed_demo);

        let mut c = Config::from_toml("env = \"development\"\nsandbox = false\n").unwrap();
        c.development_defaults(&["env".into(), "sandbox".into()]);
        assert!(!c.sandbox && c.seed_demo, "an explicit false stays false");

        let c = Config { sandbox_control_token: Some("short".into()), ..Config::default() };
        assert!(c.validate().is_err(), "a guessable sandbox credential is refused");
    }
}
