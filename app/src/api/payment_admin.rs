//! Payment administration (G6, S4): channel configurations, API tokens, received notifications.

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::views::{ChannelTestView, ChannelView, NotificationView};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;

#[server(prefix = "/api/fn", endpoint = "admin/channels")]
pub async fn list_channels() -> Result<Vec<ChannelView>, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.list_channels(&user).await?)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelForm {
    /// Empty for a new channel.
    pub id: String,
    pub version: i64,
    pub provider: String,
    pub name: String,
    pub settings: String,
    /// Empty keeps the stored key on an edit.
    pub private_key: String,
    pub apiv3_key: String,
    pub sandbox: bool,
    pub enabled: bool,
    pub make_default: bool,
}

#[server(prefix = "/api/fn", endpoint = "admin/channels/save", input = Json)]
pub async fn save_channel(form: ChannelForm) -> Result<ChannelView, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    let provider = clinicpay::payments::Provider::parse(&form.provider)
        .ok_or_else(|| AppError::bad_request("bad_provider", "provider must be alipay, wechatpay or bank"))?;
    let input = clinicpay::services::channels::ChannelInput {
        provider,
        name: form.name,
        settings: form.settings,
        private_key: form.private_key,
        apiv3_key: form.apiv3_key,
        sandbox: form.sandbox,
        enabled: form.enabled,
        make_default: form.make_default,
    };
    let s = ssr::services()?;
    let ip = ssr::client_ip();
    Ok(if form.id.is_empty() {
        s.create_channel(&user, &ip, input).await?
    } else {
        s.update_channel(&user, &ip, &form.id, form.version, input).await?
    })
}

/// "Test connection": asks the channel's provider about an order that does not exist.
#[server(prefix = "/api/fn", endpoint = "admin/channels/test")]
pub async fn test_channel(channel_id: String) -> Result<ChannelTestView, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.test_channel(&user, &ssr::client_ip(), &channel_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "admin/channels/default")]
pub async fn make_default_channel(channel_id: String) -> Result<(), AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.set_default_channel(&user, &ssr::client_ip(), &channel_id).await?)
}

/// Re-seals every channel secret under the current master key. Returns how many changed.
#[server(prefix = "/api/fn", endpoint = "admin/channels/reencrypt")]
pub async fn reencrypt_channels() -> Result<usize, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.reencrypt_channels(&user, &ssr::client_ip()).await?)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: clinicpay::auth::Role,
    pub scope: clinicpay::auth::TokenScope,
    pub created_by: String,
    pub created_at_ms: i64,
    pub disabled: bool,
    pub last_used_at_ms: Option<i64>,
}

#[server(prefix = "/api/fn", endpoint = "admin/tokens")]
pub async fn list_tokens() -> Result<Vec<TokenView>, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?
        .list_api_tokens(&user)
        .await?
        .into_iter()
        .map(|t| TokenView {
            id: t.id.to_string(),
            name: t.name,
            role: t.role,
            scope: t.scope,
            created_by: t.created_by,
            created_at_ms: t.created_at_ms,
            disabled: t.disabled,
            last_used_at_ms: t.last_used_at_ms,
        })
        .collect())
}

/// Issues a token and returns it once (only its hash is stored).
#[server(prefix = "/api/fn", endpoint = "admin/tokens/create")]
pub async fn create_token(name: String, role: String, scope: Option<String>) -> Result<String, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    let role = clinicpay::auth::Role::parse(&role)
        .ok_or_else(|| AppError::bad_request("bad_role", "role must be cashier, finance or admin"))?;
    let scope = clinicpay::auth::TokenScope::parse(scope.as_deref().unwrap_or("checkout"))
        .ok_or_else(|| AppError::bad_request("bad_scope", "scope must be checkout or intake"))?;
    Ok(ssr::services()?.create_api_token(&user, &ssr::client_ip(), &name, role, scope).await?.0)
}

#[server(prefix = "/api/fn", endpoint = "admin/tokens/disable")]
pub async fn disable_token(token_id: String) -> Result<(), AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.disable_api_token(&user, &ssr::client_ip(), &token_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "admin/notifications")]
pub async fn list_notifications() -> Result<Vec<NotificationView>, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.notifications(&user, 200).await?)
}
