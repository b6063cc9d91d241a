//! Health, readiness and metrics (O2).

use super::HttpState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(st): State<HttpState>) -> Response {
    match st.services.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

pub async fn metrics(State(st): State<HttpState>) -> Response {
    let pool = st.services.store.pool_stats();
    let backend = [("backend", st.services.store.backend())];
    st.metrics.set_gauge("clinicpay_db_pool_connections", &backend, pool.size as i64);
    st.metrics.set_gauge("clinicpay_db_pool_idle", &backend, pool.idle as i64);
    st.metrics.set_gauge("clinicpay_db_pool_max", &backend, pool.max as i64);
    // events to the hospital's systems by state: a growing `failed` is an endpoint to look at
    match st.services.store.delivery_counts().await {
        Ok(counts) => {
            for status in clinicpay::webhooks::DeliveryStatus::ALL {
                let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                st.metrics.set_gauge("clinicpay_event_deliveries", &[("status", status.as_str())], n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "event delivery counts could not be read"),
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render()).into_response()
}
