//! Departments and the charge-item catalogue kept by an administrator: the list, one item saved
//! from a form, a CSV/XLSX file imported whole or not at all.

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::intake::import::ImportReport;
use clinicpay::intake::{CatalogueItem, ChargeItemInput};
use leptos::prelude::*;
use server_fn::codec::Json;

#[server(prefix = "/api/fn", endpoint = "admin/catalogue")]
pub async fn admin_catalogue(q: Option<String>) -> Result<Vec<CatalogueItem>, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.catalogue(&user, q.as_deref()).await?)
}

/// Saves one item; answers `created`, `updated` or `unchanged`.
#[server(prefix = "/api/fn", endpoint = "admin/catalogue/save", input = Json)]
pub async fn save_charge_item(item: ChargeItemInput) -> Result<String, AppError> {
    let user = ssr::require_user(Access::Admin)?;
    Ok(ssr::services()?.save_charge_item(&user, &ssr::client_ip(), &item).await?.as_str().to_string())
}

/// Imports a file sent as base64 (`kind`: departments or charge_items).
#[server(prefix = "/api/fn", endpoint = "admin/catalogue/import", input = Json)]
pub async fn import_catalogue(
    kind: String,
    file_name: String,
    content_base64: String,
) -> Result<ImportReport, AppError> {
    use base64::Engine;
    let user = ssr::require_user(Access::Admin)?;
    let kind = clinicpay::intake::import::ImportKind::parse(&kind)
        .ok_or_else(|| AppError::bad_request("bad_kind", "kind must be departments or charge_items"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(content_base64.trim())
        .map_err(|_| AppError::bad_request("bad_file", "the file did not arrive whole; pick it again"))?;
    Ok(ssr::services()?.import_catalogue(&user, &ssr::client_ip(), kind, &file_name, &bytes).await?)
}
