//! Server functions of the charge screen, the exceptions page and the payment administration
//! pages (channels, API tokens, notifications). Same rules as `api.rs`: every function is in the
//! access table, checks the role itself, parses its input and calls one service.

#[cfg(feature = "ssr")]
use crate::api::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::checkout::{ExceptionView, SessionView};
use clinicpay::views::{BillSummary, ChannelView, NotificationView, PatientSummary};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;

/// What the charge screen shows for a patient: the bills owed and any payment still open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeData {
    pub patient: PatientSummary,
    pub bills: Vec<BillSummary>,
    pub pending: Vec<SessionView>,
    /// Providers with an enabled channel: what the channel choice offers.
    pub providers: Vec<String>,
}

#[server(prefix = "/api/fn", endpoint = "charge/find")]
pub async fn find_patients(q: String) -> Result<Vec<PatientSummary>, AppError> {
    ssr::require_user(Access::Billing)?;
    let page = ssr::services()?.list_patients(Some(&q), None).await?;
    Ok(page.items.into_iter().take(10).collect())
}

#[server(prefix = "/api/fn", endpoint = "charge/overview")]
pub async fn charge_overview(patient_id: String) -> Result<ChargeData, AppError> {
    ssr::require_user(Access::Billing)?;
    let s = ssr::services()?;
    let (patient, bills) = s.unpaid_bills(&patient_id).await?;
    let pending = s.pending_checkouts_of(&patient_id).await?;
    let providers = s
        .store
        .list_channels()
        .await
        .map_err(|e| AppError::from(clinicpay::services::ServiceError::from(e)))?
        .into_iter()
        .filter(|c| c.enabled)
        .map(|c| c.provider.as_str().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(ChargeData { patient, bills, pending, providers })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartPaymentRequest {
    pub patient_id: String,
    pub bill_ids: Vec<String>,
    pub method: String,
    /// A key the screen makes per "Scan to pay" press, so a double click opens one session.
    pub idempotency_key: String,
}

#[server(prefix = "/api/fn", endpoint = "charge/start", input = Json)]
pub async fn start_payment(req: StartPaymentRequest) -> Result<SessionView, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    let parsed = clinicpay::checkout::SessionRequest::parse(&req.patient_id, &req.bill_ids, &req.method, None)
        .map_err(|e| AppError::bad_request(e.code(), e.to_string()))?;
    let key = Some(req.idempotency_key.as_str()).filter(|k| !k.is_empty());
    let (view, _) = ssr::services()?.create_checkout(&user, parsed, key, None).await?;
    Ok(view)
}

#[server(prefix = "/api/fn", endpoint = "charge/status")]
pub async fn payment_status(session_id: String) -> Result<SessionView, AppError> {
    ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.checkout_session(&session_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "charge/cancel")]
pub async fn cancel_payment(session_id: String) -> Result<SessionView, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.cancel_checkout(&user, &session_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "charge/refresh")]
pub async fn refresh_payment(session_id: String) -> Result<SessionView, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.refresh_checkout(&user, &session_id, None).await?)
}

/// Asks the provider now whether the patient paid (status sync on demand).
#[server(prefix = "/api/fn", endpoint = "charge/check")]
pub async fn check_payment(session_id: String) -> Result<SessionView, AppError> {
    ssr::require_user(Access::Billing)?;
    let s = ssr::services()?;
    s.sync_session(&session_id).await?;
    Ok(s.checkout_session(&session_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "exceptions")]
pub async fn list_exceptions(open_only: bool) -> Result<Vec<ExceptionView>, AppError> {
    ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.exceptions(open_only).await?)
}

/// Finance decides a held exception: `refund` through its channel, or `resolve` with a note.
#[server(prefix = "/api/fn", endpoint = "exceptions/decide")]
pub async fn decide_exception(exception_id: String, action: String, note: String) -> Result<(), AppError> {
    let user = ssr::require_user(Access::Finance)?;
    let refund = match action.as_str() {
        "refund" => true,
        "resolve" => false,
        _ => return Err(AppError::bad_request("bad_action", "action must be refund or resolve")),
    };
    Ok(ssr::services()?.decide_exception(&user, &ssr::client_ip(), &exception_id, refund, &note).await?)
}

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
    pub role: String,
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
            id: t.id,
            name: t.name,
            role: t.role.as_str().to_string(),
            created_by: t.created_by,
            created_at_ms: t.created_at_ms,
            disabled: t.disabled,
            last_used_at_ms: t.last_used_at_ms,
        })
        .collect())
}

/// Issues a token and returns it once (only its hash is stored).
#[server(prefix = "/api/fn", endpoint = "admin/tokens/create")]
pub async fn create_token(name: String, role: String) -> Result<String, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    let role = clinicpay::auth::Role::parse(&role)
        .ok_or_else(|| AppError::bad_request("bad_role", "role must be cashier, finance or admin"))?;
    Ok(ssr::services()?.create_api_token(&user, &ssr::client_ip(), &name, role).await?.0)
}

#[server(prefix = "/api/fn", endpoint = "admin/tokens/disable")]
pub async fn disable_token(token_id: String) -> Result<(), AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.disable_api_token(&user, &ssr::client_ip(), &token_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "admin/notifications")]
pub async fn list_notifications() -> Result<Vec<NotificationView>, AppError> {
    ssr::require_user(Access::Admin)?;
    let s = ssr::services()?;
    s.store.list_notifications(200).await.map_err(|e| AppError::from(clinicpay::services::ServiceError::from(e)))
}
