//! Login, logout and the language switch: plain form posts and links, so they work before the
//! WASM loads and without JavaScript.

use super::middleware::{is_https, session_token};
use super::HttpState;
use app::api::ssr::ClientIp;
use app::components::enc;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use clinicpay::auth::CurrentUser;
use clinicpay::services::auth::{LoginInput, SESSION_COOKIE};
use clinicpay::services::ServiceError;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// Only local paths: never an open redirect.
pub fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") && !next.contains("://") {
        next.to_string()
    } else {
        "/".to_string()
    }
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

pub fn session_cookie(value: &str, max_age_s: i64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Where a role lands after logging in.
pub fn home_of(role: clinicpay::auth::Role) -> &'static str {
    match role {
        clinicpay::auth::Role::Finance => "/finance",
        _ => "/",
    }
}

pub async fn login(State(st): State<HttpState>, req: Request) -> Response {
    let https = is_https(&st, &req);
    let ip = req.extensions().get::<ClientIp>().map(|c| c.0.clone()).unwrap_or_default();
    let ua = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let Form(form) = match <Form<LoginForm> as axum::extract::FromRequest<HttpState>>::from_request(req, &st).await {
        Ok(f) => f,
        Err(_) => return see_other("/login?error=missing_credentials"),
    };
    let next = safe_next(&form.next);
    match st.services.login(LoginInput { username: form.username, password: form.password, ip, user_agent: ua }).await {
        Ok(ok) => {
            let max_age = (ok.expires_at_ms - st.services.now()) / 1000;
            let cookie = session_cookie(&ok.token, max_age, https || st.cfg.secure_cookies());
            // no page asked for: each role lands on its own home (finance on 财务首页)
            let next = if next == "/" { home_of(ok.user.role).to_string() } else { next };
            (StatusCode::SEE_OTHER, [(header::LOCATION, next), (header::SET_COOKIE, cookie)]).into_response()
        }
        Err(ServiceError::Internal(e)) => {
            tracing::error!(error.cause_chain = ?e, "login failed internally");
            see_other(&format!("/login?error=internal&next={}", enc(&next)))
        }
        Err(e) => see_other(&format!("/login?error={}&next={}", e.code(), enc(&next))),
    }
}

pub async fn logout(State(st): State<HttpState>, req: Request) -> Response {
    let https = is_https(&st, &req);
    let user = req.extensions().get::<CurrentUser>().cloned();
    let ip = req.extensions().get::<ClientIp>().map(|c| c.0.clone()).unwrap_or_default();
    if let Some(token) = session_token(&req) {
        if let Err(e) = st.services.logout(&token, user.as_ref(), &ip).await {
            tracing::error!(error = %e, "logout failed");
        }
    }
    let clear = session_cookie("", 0, https || st.cfg.secure_cookies());
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/login".to_string()), (header::SET_COOKIE, clear)]).into_response()
}

#[derive(Deserialize)]
pub struct LangQuery {
    #[serde(default)]
    next: String,
}

pub async fn set_language(Path(code): Path<String>, Query(q): Query<LangQuery>, headers: HeaderMap) -> Response {
    let _ = headers;
    let Some(lang) = app::i18n::Lang::parse(&code) else {
        return (StatusCode::BAD_REQUEST, "unknown language: use zh or en").into_response();
    };
    let cookie = format!("{}={}; Path=/; SameSite=Lax; Max-Age=31536000", app::i18n::LANG_COOKIE, lang.code());
    (StatusCode::SEE_OTHER, [(header::LOCATION, safe_next(&q.next)), (header::SET_COOKIE, cookie)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next("/bills?q=1"), "/bills?q=1");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next("/x?u=http://a"), "/");
        assert_eq!(safe_next(""), "/");
    }
}
