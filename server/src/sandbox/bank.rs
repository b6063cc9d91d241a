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
}

pub fn router(_s: Arc<BankSandbox>) -> axum::Router {
    axum::Router::new()
}
