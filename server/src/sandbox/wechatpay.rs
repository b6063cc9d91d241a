//! wechatpay sandbox (to be implemented).

use super::SandboxCtx;
use std::sync::Arc;

pub struct WechatSandbox {
    #[allow(dead_code)]
    ctx: SandboxCtx,
}

impl WechatSandbox {
    pub fn new(ctx: SandboxCtx) -> anyhow::Result<Self> {
        Ok(WechatSandbox { ctx })
    }
}

pub fn router(_s: Arc<WechatSandbox>) -> axum::Router {
    axum::Router::new()
}
