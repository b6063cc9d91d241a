//! What the browser may learn when something fails: a stable code, a message, the HTTP status.
//! Internal details stay in the server log under a reference id.

use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct AppError {
    pub code: String,
    pub message: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl AppError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        AppError { code: code.into(), message: message.into(), status, detail: None }
    }

    pub fn bad_request(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(401, "unauthenticated", "please log in")
    }

    pub fn forbidden() -> Self {
        Self::new(403, "forbidden", "not allowed for your role")
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("{what} not found"))
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // The request could not be decoded: the caller's fault, never a 500.
            ServerFnErrorErr::Args(m) => AppError::bad_request("bad_request", format!("malformed request: {m}")),
            ServerFnErrorErr::Deserialization(m) => {
                AppError::new(502, "bad_response", format!("unexpected answer: {m}"))
            }
            ServerFnErrorErr::MissingArg(m) => {
                AppError::bad_request("missing_argument", format!("missing argument {m}"))
            }
            ServerFnErrorErr::Request(m) => AppError::new(503, "network", format!("could not reach the server: {m}")),
            ServerFnErrorErr::Response(m) => AppError::new(502, "bad_response", format!("unexpected answer: {m}")),
            ServerFnErrorErr::Registration(m) => AppError::new(404, "no_such_function", m),
            other => AppError::new(500, "internal", other.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<clinicpay::services::ServiceError> for AppError {
    fn from(e: clinicpay::services::ServiceError) -> Self {
        use clinicpay::services::ServiceError;
        match &e {
            ServiceError::Internal(inner) => {
                let reference = internal_reference();
                tracing::error!(error.reference = %reference, error.cause_chain = ?inner, "internal error");
                AppError::new(500, "internal", format!("internal error, reference {reference}"))
            }
            ServiceError::Conflict { detail, .. } => AppError {
                code: e.code().to_string(),
                message: e.to_string(),
                status: e.status(),
                detail: detail.clone(),
            },
            _ => AppError::new(e.status(), e.code(), e.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
fn internal_reference() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("E{:x}-{}", t, N.fetch_add(1, Ordering::Relaxed))
}
