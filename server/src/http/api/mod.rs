//! The REST API the hospital's systems use (C1–C5, B3, O3): unpaid bills of a patient, checkout
//! sessions (merged or single bill), status, QR images, cancel, refresh, live events.
//!
//! Callers authenticate with an admin-issued API token (`Authorization: Bearer cpk_…`, stored
//! hashed) or a staff session cookie (then a state-changing request must come from our own
//! origin). Every handler checks the role. Errors are `{"error": {"code", "message", "detail"}}`.
//!
//! Every route is registered through `utoipa_axum::OpenApiRouter` from its handler's own
//! `#[utoipa::path]`, so the OpenAPI document served at `/api/v1/openapi.json` is generated from
//! the same code that routes the request (`checkout.rs` the handlers, `types.rs` the bodies).

mod checkout;
mod intake;
mod refunds;
pub mod types;

use super::HttpState;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clinicpay::auth::{Access, CurrentUser};
use clinicpay::services::ServiceError;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// An API error: status plus the JSON body.
pub struct ApiError(StatusCode, serde_json::Value);

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            json!({ "error": { "code": code, "message": message.into() } }),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &e {
            ServiceError::Internal(inner) => {
                tracing::error!(error.cause_chain = ?inner, "internal error in the API");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let detail = match &e {
            ServiceError::Conflict { detail, .. } => detail.clone(),
            _ => None,
        };
        let mut body = json!({ "error": { "code": e.code(), "message": message } });
        if let Some(d) = detail {
            body["error"]["detail"] = d;
        }
        ApiError(status, body)
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The authenticated caller of an API request (token or staff session), allowed to bill.
/// The authenticated caller and the address they called from (for the audit log).
pub struct ApiCaller(pub CurrentUser, pub String);

impl FromRequestParts<HttpState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &HttpState) -> Result<Self, Self::Rejection> {
        let user = if let Some(token) = bearer(parts) {
            st.services.authenticate_api_token(token).await?
        } else {
            let cookie = parts.headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let token = app::i18n::cookie_value(cookie, clinicpay::services::auth::SESSION_COOKIE);
            let user = match token {
                Some(t) => st.services.authenticate(&t).await?,
                None => None,
            };
            // A cookie travels with cross-site requests: state changes must come from our origin.
            if user.is_some() && parts.method != Method::GET && !super::middleware::same_origin(st, &parts.headers) {
                return Err(ApiError::new(403, "csrf", "cross-origin request refused"));
            }
            user
        };
        let Some(user) = user else {
            return Err(ApiError::new(401, "unauthenticated", "send an API token (Authorization: Bearer …) or log in"));
        };
        if !Access::Billing.allows(Some(user.role)) {
            return Err(ApiError::new(403, "forbidden", "not allowed for this role"));
        }
        let ip = parts.extensions.get::<app::api::ssr::ClientIp>().map(|c| c.0.clone()).unwrap_or_default();
        Ok(ApiCaller(user, ip))
    }
}

/// The token of `Authorization: Bearer …`, if the request carries one.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn parse_json<T: for<'de> Deserialize<'de>>(headers: &HeaderMap, body: &Bytes) -> ApiResult<T> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(ApiError::new(415, "unsupported_media_type", "send the body as application/json"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new(400, "bad_json", format!("malformed request body: {e}")))
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let k =
                v.to_str().map_err(|_| ApiError::new(400, "bad_idempotency_key", "Idempotency-Key must be ASCII"))?;
            clinicpay::checkout::valid_idempotency_key(k).map_err(|e| ApiError::new(400, e.code(), e.to_string()))?;
            Ok(Some(k.to_string()))
        }
    }
}

/// 404 for unknown API paths, in the API's error format.
pub async fn api_not_found() -> ApiError {
    ApiError::new(404, "not_found", "no such API endpoint")
}

/// The document's frame: what the API is, how callers authenticate. The paths and schemas come
/// from the handlers (`checkout.rs`) as they are registered.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ClinicPay API",
        description = "Payments for hospital bills: one QR code pays several bills of a patient, each allocated exactly once. \
            Amounts are decimal strings in yuan (\"1234.50\"). Times are RFC 3339 in +08:00. \
            Errors are {\"error\": {\"code\", \"message\", \"detail\"?}} with a stable code."
    ),
    servers((url = "/")),
    modifiers(&Security),
    security(("apiToken" = []), ("staffSession" = [])),
    tags(
        (name = "checkout", description = "Unpaid bills and checkout sessions (C1–C5, B3)"),
        (name = "refunds", description = "Refunds of paid bills with finance approval (R1–R3), at /api/payment/refunds as the hospital's notes name them"),
        (name = "intake", description = "Patients, departments, the catalogue and bills from the HIS (B1); API tokens of scope intake only. See docs/his-integration.md.")
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token issued by an administrator (cpk_…)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "staffSession",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("cp_session"))),
        );
    }
}

/// Every REST route, each with its description.
fn described() -> OpenApiRouter<HttpState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(checkout::routes())
        .merge(intake::routes())
        .merge(refunds::routes())
}

/// The OpenAPI document of the REST API (O3).
pub fn document() -> utoipa::openapi::OpenApi {
    described().into_openapi()
}

pub fn routes() -> axum::Router<HttpState> {
    use axum::routing::{any, get};
    let (router, doc) = described().split_for_parts();
    let doc = Arc::new(doc);
    router
        .route("/api/v1/openapi.json", get(move || async move { Json(doc.as_ref().clone()) }))
        .route("/api/v1/{*rest}", any(api_not_found))
}
