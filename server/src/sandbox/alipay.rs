//! alipay sandbox (to be implemented).

use super::SandboxCtx;
use std::sync::Arc;

pub struct AlipaySandbox {
    #[allow(dead_code)]
    ctx: SandboxCtx,
}

impl AlipaySandbox {
    pub fn new(ctx: SandboxCtx) -> anyhow::Result<Self> {
        Ok(AlipaySandbox { ctx })
    }
}

pub fn router(_s: Arc<AlipaySandbox>) -> axum::Router {
    axum::Router::new()
}
