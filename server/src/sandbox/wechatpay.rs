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

    pub fn register_merchant(&self, _: &str, _: &str, _: &str, _: &str, _: &str) -> anyhow::Result<(String, String)> {
        anyhow::bail!("the WeChat Pay sandbox is not built in yet")
    }
}

pub fn router(_s: Arc<WechatSandbox>) -> axum::Router {
    axum::Router::new()
}
