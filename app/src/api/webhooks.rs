//! Events out to the hospital's systems: endpoints (administrators) and the delivery log with
//! re-send (finance and administrators).

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::views::{DeliveryDetailView, DeliveryView, EndpointView};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;

#[server(prefix = "/api/fn", endpoint = "admin/webhooks")]
pub async fn list_endpoints() -> Result<Vec<EndpointView>, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.list_endpoints(&user).await?)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointForm {
    /// Empty for a new endpoint.
    pub id: String,
    pub version: i64,
    pub name: String,
    pub url: String,
    pub topics: Vec<String>,
    pub enabled: bool,
}

/// What saving an endpoint returns: the endpoint, and its secret when one was made (shown once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSaved {
    pub endpoint: EndpointView,
    pub secret: Option<String>,
}

#[server(prefix = "/api/fn", endpoint = "admin/webhooks/save", input = Json)]
pub async fn save_endpoint(form: EndpointForm) -> Result<EndpointSaved, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    let s = ssr::services()?;
    let ip = ssr::client_ip();
    let input = clinicpay::services::webhooks::EndpointInput {
        name: form.name,
        url: form.url,
        topics: form.topics,
        enabled: form.enabled,
    };
    Ok(if form.id.is_empty() {
        let (secret, endpoint) = s.create_endpoint(&user, &ip, input).await?;
        EndpointSaved { endpoint, secret: Some(secret) }
    } else {
        EndpointSaved { endpoint: s.update_endpoint(&user, &ip, &form.id, form.version, input).await?, secret: None }
    })
}

/// A new signing secret, shown once.
#[server(prefix = "/api/fn", endpoint = "admin/webhooks/roll")]
pub async fn roll_endpoint_secret(endpoint_id: String, version: i64) -> Result<EndpointSaved, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    let (secret, endpoint) =
        ssr::services()?.roll_endpoint_secret(&user, &ssr::client_ip(), &endpoint_id, version).await?;
    Ok(EndpointSaved { endpoint, secret: Some(secret) })
}

#[server(prefix = "/api/fn", endpoint = "finance/deliveries")]
pub async fn list_deliveries(status: Option<String>, about: Option<String>) -> Result<Vec<DeliveryView>, AppError> {
    let user = ssr::require_user(Access::Finance)?;
    Ok(ssr::services()?.list_deliveries(&user, status.as_deref(), about.as_deref(), 200).await?)
}

#[server(prefix = "/api/fn", endpoint = "finance/deliveries/detail")]
pub async fn delivery_detail(delivery_id: String) -> Result<DeliveryDetailView, AppError> {
    let user = ssr::require_user(Access::Finance)?;
    Ok(ssr::services()?.delivery_detail(&user, &delivery_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "finance/deliveries/resend")]
pub async fn resend_delivery(delivery_id: String) -> Result<(), AppError> {
    let user = ssr::require_user(Access::Finance)?;
    Ok(ssr::services()?.resend_delivery(&user, &ssr::client_ip(), &delivery_id).await?)
}
