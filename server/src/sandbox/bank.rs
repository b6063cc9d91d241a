//! bank sandbox (to be implemented).

use super::SandboxCtx;
use std::sync::Arc;

pub struct BankSandbox {
    #[allow(dead_code)]
    ctx: SandboxCtx,
}

impl BankSandbox {
    pub fn new(ctx: SandboxCtx) -> anyhow::Result<Self> {
        Ok(BankSandbox { ctx })
    }

    pub fn register_merchant(&self, _: &str, _: &str) -> anyhow::Result<String> {
        anyhow::bail!("the bank sandbox is not built in yet")
    }
}

pub fn router(_s: Arc<BankSandbox>) -> axum::Router {
    axum::Router::new()
}
