//! HTTP: the router that serves the app, its server functions, login, health and metrics.

pub mod api;
pub mod assets;
pub mod auth_routes;
pub mod middleware;
pub mod notify;
pub mod ops;

use crate::config::Config;
use crate::metrics::Metrics;
use app::state::AppState;
use axum::routing::{get, post};
use axum::Router;
use clinicpay::auth::Access;
use clinicpay::services::Services;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::collections::HashMap;
use std::sync::Arc;

/// What the server's own handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub services: Services,
    pub metrics: Arc<Metrics>,
    pub cfg: Arc<Config>,
    pub fn_access: Arc<HashMap<&'static str, Access>>,
    pub hub: Arc<crate::events::EventHub>,
}

pub fn router(http: HttpState, leptos_options: LeptosOptions) -> Router {
    let app_state = AppState { leptos_options: leptos_options.clone(), services: http.services.clone() };
    let routes = generate_route_list(app::App);
    let leptos = Router::new()
        .leptos_routes(&app_state, routes, {
            let opts = leptos_options.clone();
            move || app::shell(opts.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .with_state(app_state)
        // pages are compressed on the fly (HTML only: server functions' JSON is read again by
        // the middleware that restores their status); /pkg/ files are compressed once (assets.rs)
        .layer(tower_http::compression::CompressionLayer::new().compress_when(html_only));
    let pkg = Router::new()
        .route("/pkg/{file}", get(assets::serve))
        .with_state(assets::Assets::load(&leptos_options.site_root, &leptos_options.output_name));

    let own = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/auth/login", post(auth_routes::login))
        .route("/auth/logout", post(auth_routes::logout))
        .route("/lang/{code}", get(auth_routes::set_language))
        .route(
            "/notify/{provider}",
            post(notify::notify).layer(axum::extract::DefaultBodyLimit::max(notify::MAX_NOTIFICATION_BYTES)),
        )
        .merge(api::routes().layer(axum::extract::DefaultBodyLimit::max(256 * 1024)))
        .with_state(http.clone());

    own.merge(pkg)
        .merge(leptos)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(http.clone(), middleware::authenticate))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::middleware::from_fn_with_state(http, middleware::observe))
}

fn html_only(
    _status: axum::http::StatusCode,
    _version: axum::http::Version,
    headers: &axum::http::HeaderMap,
    _ext: &axum::http::Extensions,
) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"))
}

/// A handler that panics answers 500 (logged with the request id) instead of dropping the
/// connection.
fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = %msg, "a request handler panicked");
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"error":{"code":"internal","message":"internal error"}}"#,
    )
        .into_response()
}

/// The server-function access table as a map, checked against the registered functions: a
/// function missing from the table is a startup error, not a silent hole.
pub fn server_fn_access() -> anyhow::Result<HashMap<&'static str, Access>> {
    let table: HashMap<&'static str, Access> = app::api::server_fn_access().into_iter().collect();
    for (path, _method) in server_fn::axum::server_fn_paths() {
        if !table.contains_key(path) {
            anyhow::bail!("server function {path} has no entry in app::api::server_fn_access()");
        }
    }
    Ok(table)
}
