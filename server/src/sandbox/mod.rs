//! Built-in provider sandboxes (G3): Alipay, WeChat Pay and the bank-card gateway, served by the
//! same server under `/sandbox/...`, speaking the real wire protocols so our clients — and the
//! official SDKs — talk to them exactly as to the providers.
//!
//! Sandboxes are for development, demos and tests. Their trades live in memory; their own signing
//! keys persist in a file so channel configurations survive restarts. Notifications go out
//! through the [`Courier`], with the providers' real retry schedules (time-scaled in tests) and
//! per-trade fault injection.

pub mod alipay;
pub mod bank;
pub mod courier;
pub mod page;
pub mod wechatpay;

use crate::crypto::PrivateKey;
use anyhow::Context;
pub use courier::{Courier, Delivery, FaultSpec};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

impl SandboxSettings {
    pub fn scaled(&self, d: std::time::Duration) -> std::time::Duration {
        d * self.time_scale_permille.max(1) as u32 / 1000
    }
}

/// What each provider sandbox is built from.
#[derive(Clone)]
pub struct SandboxCtx {
    pub settings: Arc<SandboxSettings>,
    pub courier: Arc<Courier>,
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
}

impl Sandboxes {
    pub fn new(settings: SandboxSettings) -> anyhow::Result<Sandboxes> {
        let settings = Arc::new(settings);
        let courier = Arc::new(Courier::new(settings.clone()));
        let ctx = SandboxCtx { settings, courier };
        Ok(Sandboxes {
            alipay: Arc::new(alipay::AlipaySandbox::new(ctx.clone())?),
            wechatpay: Arc::new(wechatpay::WechatSandbox::new(ctx.clone())?),
            bank: Arc::new(bank::BankSandbox::new(ctx.clone())?),
            ctx,
        })
    }

    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .nest("/sandbox/alipay", alipay::router(self.alipay.clone()))
            .nest("/sandbox/wechatpay", wechatpay::router(self.wechatpay.clone()))
            .nest("/sandbox/bank", bank::router(self.bank.clone()))
    }
}
