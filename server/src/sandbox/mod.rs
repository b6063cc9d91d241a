//! Built-in provider sandboxes (G3): Alipay, WeChat Pay and the bank-card gateway, served by the
//! same server under `/sandbox/...`, speaking the real wire protocols so our clients — and the
//! official SDKs — talk to them exactly as to the providers.
//!
//! Every sandbox has the same shape:
//!
//! ```text
//! sandbox/<provider>/mod.rs     the sandbox: its routes, its operations, SandboxControl, Wakes
//!                   wire.rs     its own reading of PROTOCOLS.md (not the client's code)
//!                   trades.rs   its trades and what each operation does to one
//!                   bills.rs    its statements, in the provider's file format
//!                   tests.rs    its tests (driven through our client's wire code)
//! ```
//!
//! and shares: [`store`] (the sandboxes' own SQLite file, so a restart forgets nothing and
//! memory stays flat), [`courier`] (notifications delivered from that file on each provider's
//! retry schedule, with fault injection), [`control`] (the one test-control API), [`page`] (the
//! payer's phone page) and a timer that lets each sandbox act on its own when a trade's time
//! comes (expiry, a refund completing). Sandboxes are for development, demos and tests; their
//! signing keys persist in `<data_dir>/sandbox-keys`.

pub mod alipay;
pub mod bank;
pub mod control;
pub mod courier;
pub mod page;
pub mod store;
pub mod wechatpay;

use crate::crypto::PrivateKey;
use anyhow::Context;
use async_trait::async_trait;
pub use control::SandboxControl;
pub use courier::{Courier, FaultSpec};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use store::SandboxStore;

/// Settings shared by every sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// The base URL the sandboxes are reached at (e.g. `http://127.0.0.1:3000`); QR codes and
    /// download URLs point here.
    pub base_url: String,
    /// Notification retry intervals and injected delays are multiplied by this ‰ (1000 = real
    /// time; tests use 1 so a 15-minute schedule takes about a second).
    pub time_scale_permille: u64,
    /// Where the sandboxes keep their provider keys; `None` keeps fresh keys in memory.
    pub key_dir: Option<PathBuf>,
    /// The sandboxes' database; `None` keeps it in memory (unit tests).
    pub state_file: Option<PathBuf>,
}

impl SandboxSettings {
    pub fn scaled(&self, d: std::time::Duration) -> std::time::Duration {
        d * self.time_scale_permille.max(1) as u32 / 1000
    }

    /// Settings for a sandbox that lives in a data directory (keys and database in it).
    pub fn in_dir(base_url: String, time_scale_permille: u64, data_dir: &Path) -> SandboxSettings {
        SandboxSettings {
            base_url,
            time_scale_permille,
            key_dir: Some(data_dir.join("sandbox-keys")),
            state_file: Some(data_dir.join("sandbox.db")),
        }
    }
}

/// What each provider sandbox is built from.
#[derive(Clone)]
pub struct SandboxCtx {
    pub settings: Arc<SandboxSettings>,
    pub courier: Arc<Courier>,
    pub store: Arc<SandboxStore>,
    /// Poked when a trade gets a time to act at, so the timer looks again.
    pub wake: Arc<tokio::sync::Notify>,
}

impl SandboxCtx {
    /// Opens the sandboxes' database and starts their courier.
    pub async fn open(settings: SandboxSettings) -> anyhow::Result<SandboxCtx> {
        let store = Arc::new(SandboxStore::open(settings.state_file.as_deref()).await?);
        let settings = Arc::new(settings);
        let courier = Courier::new(settings.clone(), store.clone());
        courier.spawn();
        Ok(SandboxCtx { settings, courier, store, wake: Arc::new(tokio::sync::Notify::new()) })
    }

    /// The same database and courier, with its own timer signal (one per sandbox).
    fn for_sandbox(&self) -> SandboxCtx {
        SandboxCtx { wake: Arc::new(tokio::sync::Notify::new()), ..self.clone() }
    }
}

/// A sandbox that acts on its own when a trade's time comes.
#[async_trait]
pub trait Wakes: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Acts on every trade whose time has come; returns how many it looked at.
    async fn wake_due(&self, now_ms: i64) -> anyhow::Result<usize>;
}

/// Runs a sandbox's timer until the sandbox is dropped.
fn spawn_timer<S: Wakes>(s: &Arc<S>, ctx: &SandboxCtx) {
    let me: Weak<S> = Arc::downgrade(s);
    let (store, wake) = (ctx.store.clone(), ctx.wake.clone());
    tokio::spawn(async move {
        loop {
            let Some(s) = me.upgrade() else { return };
            let now = chrono::Utc::now().timestamp_millis();
            let wait = match s.wake_due(now).await {
                Ok(100..) => std::time::Duration::ZERO,
                Ok(_) => match store.next_wake(s.name()).await {
                    Ok(Some(at)) => {
                        std::time::Duration::from_millis(u64::try_from(at - now).unwrap_or(0).clamp(5, 1_000))
                    }
                    _ => std::time::Duration::from_secs(1),
                },
                Err(e) => {
                    tracing::warn!(sandbox = s.name(), error = %e, "sandbox timer round failed");
                    std::time::Duration::from_millis(200)
                }
            };
            drop(s);
            let _ = tokio::time::timeout(wait, wake.notified()).await;
        }
    });
}

/// Loads a sandbox's provider key from `<key_dir>/<name>.pem`, creating it on first use.
pub fn provider_key(settings: &SandboxSettings, name: &str) -> anyhow::Result<PrivateKey> {
    match &settings.key_dir {
        None => PrivateKey::generate(),
        Some(dir) => load_or_create(dir, name),
    }
}

fn load_or_create(dir: &Path, name: &str) -> anyhow::Result<PrivateKey> {
    let path = dir.join(format!("{name}.pem"));
    if let Ok(pem) = std::fs::read_to_string(&path) {
        return PrivateKey::parse(&pem).with_context(|| format!("reading {}", path.display()));
    }
    std::fs::create_dir_all(dir)?;
    let key = PrivateKey::generate()?;
    write_private(&path, &key.to_pkcs8_pem())?;
    Ok(key)
}

/// Writes a file only its owner may read.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?
    };
    #[cfg(not(unix))]
    let mut f = std::fs::File::create(path)?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

/// The three sandboxes, built once per process and mounted under `/sandbox`.
#[derive(Clone)]
pub struct Sandboxes {
    pub ctx: SandboxCtx,
    pub alipay: Arc<alipay::AlipaySandbox>,
    pub wechatpay: Arc<wechatpay::WechatSandbox>,
    pub bank: Arc<bank::BankSandbox>,
    /// What the control and registration endpoints ask for in [`CONTROL_TOKEN_HEADER`] (a random
    /// one unless [`Sandboxes::with_control_token`] set it).
    pub control_token: Arc<str>,
}

/// The header that carries the sandboxes' control credential.
pub const CONTROL_TOKEN_HEADER: &str = "x-sandbox-token";

/// A fresh random credential (32 bytes, hex).
pub fn random_token() -> String {
    use std::fmt::Write;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source");
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The credential kept in `<data_dir>/sandbox-control-token` (created, readable by its owner
/// only, on first use), so tests and scripts on the same machine can read it.
pub fn control_token_in(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("sandbox-control-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim();
        if t.len() >= 16 {
            return Ok(t.to_string());
        }
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let token = random_token();
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// Is this a path a payer, a provider client or a download link may use without the control
/// credential? Control (`…/control/…`) and merchant registration (`/apps`, `/merchants`) are
/// not: they can mark trades paid and register keys.
fn needs_control_token(path: &str) -> bool {
    path.contains("/control/") || path.ends_with("/apps") || path.ends_with("/merchants")
}

async fn guard_control(
    axum::extract::State(token): axum::extract::State<Arc<str>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if needs_control_token(req.uri().path()) {
        let given = req.headers().get(CONTROL_TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if aws_lc_rs::constant_time::verify_slices_are_equal(given, token.as_bytes()).is_err() {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({
                    "error": "sandbox_token_required",
                    "message": "the sandbox control endpoints need the X-Sandbox-Token header \
                                (the token is in <data_dir>/sandbox-control-token or CLINICPAY_SANDBOX_CONTROL_TOKEN)",
                })),
            )
                .into_response();
        }
    }
    next.run(req).await
}

impl Sandboxes {
    pub async fn new(settings: SandboxSettings) -> anyhow::Result<Sandboxes> {
        let ctx = SandboxCtx::open(settings).await?;
        let (a, w, b) = (ctx.for_sandbox(), ctx.for_sandbox(), ctx.for_sandbox());
        let alipay = Arc::new(alipay::AlipaySandbox::new(a.clone())?);
        spawn_timer(&alipay, &a);
        let wechatpay = Arc::new(wechatpay::WechatSandbox::new(w.clone())?);
        spawn_timer(&wechatpay, &w);
        let bank = Arc::new(bank::BankSandbox::new(b.clone())?);
        spawn_timer(&bank, &b);
        Ok(Sandboxes { ctx, alipay, wechatpay, bank, control_token: random_token().into() })
    }

    pub fn with_control_token(mut self, token: &str) -> Sandboxes {
        self.control_token = token.into();
        self
    }

    /// Every sandbox under `/sandbox`, its control and registration endpoints behind the
    /// credential (issue 13 #12).
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .nest("/sandbox/alipay", alipay::router(self.alipay.clone()))
            .nest("/sandbox/wechatpay", wechatpay::router(self.wechatpay.clone()))
            .nest("/sandbox/bank", bank::router(self.bank.clone()))
            .layer(axum::middleware::from_fn_with_state(self.control_token.clone(), guard_control))
    }
}
