//! Request middleware: request ids, metrics and access logs; client address; authentication;
//! cross-origin refusal; the server-function access table; login redirects for pages.

use super::HttpState;
use app::api::ssr::ClientIp;
use app::error::AppError;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clinicpay::auth::CurrentUser;
use clinicpay::services::auth::SESSION_COOKIE;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tracing::Instrument;

#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn new_request_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn valid_request_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The route label of a request: the matched route pattern, or a coarse class for the rest, so
/// metrics never grow a label per URL.
fn route_label(req: &Request) -> String {
    if let Some(p) = req.extensions().get::<MatchedPath>() {
        return p.as_str().to_string();
    }
    let path = req.uri().path();
    if path.starts_with("/pkg/") {
        "/pkg/*".into()
    } else if path.starts_with("/api/") {
        "/api/*".into()
    } else {
        "other".into()
    }
}

/// Outermost layer: a request id (accepted from `X-Request-Id` when well formed), a span that
/// carries it, the access log line and the request metrics.
pub async fn observe(State(st): State<HttpState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let rid = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| valid_request_id(s))
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(rid.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = route_label(&req);
    let span = tracing::info_span!("request", request_id = %rid, method = %method, path = %path);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let took = start.elapsed();
    let micros = took.as_micros() as u64;
    let status = resp.status().as_u16();
    st.metrics.observe_request(&route, method.as_str(), status, took);
    let _g = span.enter();
    if status >= 500 {
        tracing::error!(status, micros, route = %route, "request failed");
    } else if !path.starts_with("/pkg/") && path != "/metrics" && path != "/healthz" {
        tracing::info!(status, micros, route = %route, "request");
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the last address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(st: &HttpState, req: &Request) -> String {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    match peer {
        Some(peer) => client_ip_of(st, peer, req.headers()),
        None => String::new(),
    }
}

/// [`client_ip`] from the peer address and the request headers.
pub fn client_ip_of(st: &HttpState, peer: IpAddr, headers: &axum::http::HeaderMap) -> String {
    if st.cfg.trusted_proxies.contains(&peer) {
        if let Some(xff) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            let hops: Vec<IpAddr> = xff.split(',').filter_map(|s| s.trim().parse().ok()).collect();
            if let Some(ip) = hops.iter().rev().find(|ip| !st.cfg.trusted_proxies.contains(ip)) {
                return ip.to_string();
            }
        }
    }
    peer.to_string()
}

/// Was this request made over https (directly or, from a trusted proxy, as forwarded)?
pub fn is_https(st: &HttpState, req: &Request) -> bool {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let forwarded = peer.is_some_and(|p| st.cfg.trusted_proxies.contains(&p))
        && req.headers().get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https");
    forwarded || st.cfg.public_url().starts_with("https://")
}

pub fn session_token(req: &Request) -> Option<String> {
    let header = req.headers().get(header::COOKIE)?.to_str().ok()?;
    app::i18n::cookie_value(header, SESSION_COOKIE)
}

/// Paths that are not staff pages and take no staff session: provider callbacks, sandboxes,
/// health and metrics, static files, the REST API (which has its own auth), login itself.
fn is_machine_path(path: &str) -> bool {
    ["/notify/", "/sandbox/", "/pkg/", "/api/v1/", "/api/payment/", "/healthz", "/readyz", "/metrics", "/favicon"]
        .iter()
        .any(|p| path.starts_with(p))
}

fn is_page(path: &str) -> bool {
    !is_machine_path(path)
        && !path.starts_with("/api/")
        && !path.starts_with("/auth/")
        && !path.starts_with("/lang/")
        && !path.rsplit('/').next().unwrap_or("").contains('.')
}

fn json_error(err: AppError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], serde_json::to_string(&err).unwrap_or_default())
        .into_response()
}

/// Cross-origin requests that change things are refused: a cookie-authenticated POST must come
/// from our own origin (Origin, or Referer when Origin is absent).
pub fn same_origin(st: &HttpState, headers: &axum::http::HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let public = st.cfg.public_url();
    let origin_ok = |o: &str| {
        let o = o.trim_end_matches('/');
        o == public || o.split_once("://").map(|(_, rest)| rest) == Some(host)
    };
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return origin != "null" && origin_ok(origin);
    }
    if let Some(referer) = headers.get(header::REFERER).and_then(|v| v.to_str().ok()) {
        let origin = referer.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        return origin_ok(&origin);
    }
    false
}

/// Authentication and authorisation for everything that is not a machine path.
pub async fn authenticate(State(st): State<HttpState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(&st, &req);
    req.extensions_mut().insert(ClientIp(ip));
    let path = req.uri().path().to_string();
    if is_machine_path(&path) {
        return next.run(req).await;
    }
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && !same_origin(&st, req.headers()) {
        tracing::warn!(path = %path, "cross-origin request refused");
        return json_error(AppError::new(403, "csrf", "cross-origin request refused"));
    }
    let user: Option<CurrentUser> = match session_token(&req) {
        Some(token) => match st.services.authenticate(&token).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return json_error(AppError::new(503, "unavailable", "try again shortly"));
            }
        },
        None => None,
    };
    if let Some(u) = &user {
        req.extensions_mut().insert(u.clone());
    }
    let role = user.as_ref().map(|u| u.role);

    if path.starts_with("/api/") {
        // Server functions: only those in the access table exist; the table says who may call.
        match st.fn_access.get(path.as_str()) {
            None => return json_error(AppError::not_found("server function")),
            Some(access) if !access.allows(role) => {
                return json_error(if role.is_none() { AppError::unauthenticated() } else { AppError::forbidden() });
            }
            Some(_) => {}
        }
        let resp = next.run(req).await;
        return fix_server_fn_status(resp).await;
    }

    if is_page(&path) && user.is_none() && path != "/login" && matches!(*req.method(), Method::GET | Method::HEAD) {
        let pq = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| path.clone());
        let to = format!("/login?next={}", app::components::enc(&pq));
        return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    }
    next.run(req).await
}

/// Server functions answer every error with 500; ours carry the right status in the JSON body
/// (`AppError.status`), which this restores, so a bad argument is a 400, never a 500.
async fn fix_server_fn_status(resp: Response) -> Response {
    if resp.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    };
    if let Ok(err) = serde_json::from_slice::<AppError>(&bytes) {
        if let Ok(s) = StatusCode::from_u16(err.status) {
            parts.status = s;
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Security headers on every response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let sandbox_page = req.uri().path().starts_with("/sandbox/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    if !sandbox_page {
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'",
            ),
        );
    }
    resp
}
