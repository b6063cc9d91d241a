//! Prometheus metrics (O2), through the `metrics` facade and its Prometheus exporter
//! (`metrics-exporter-prometheus`, no HTTP listener of its own: `/metrics` renders it).
//!
//! Each application owns its recorder (not the process-global one), so several apps in one
//! process — the integration tests — keep their own figures.

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, with_local_recorder, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::time::Duration;

const REQUEST_DURATION: &str = "clinicpay_http_request_duration_seconds";

/// Latency buckets, in seconds (1 ms … 10 s).
const BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &BUCKETS)
            .expect("non-empty bucket list")
            .build_recorder();
        with_local_recorder(&recorder, || {
            describe_counter!("clinicpay_http_requests_total", "HTTP requests by route, method and status.");
            describe_histogram!(REQUEST_DURATION, Unit::Seconds, "HTTP request latency by route.");
            describe_counter!("clinicpay_notifications_total", "Provider notifications by provider and outcome.");
            describe_gauge!("clinicpay_db_pool_connections", "Open database connections.");
            describe_gauge!("clinicpay_db_pool_idle", "Idle database connections.");
            describe_gauge!("clinicpay_db_pool_max", "Configured maximum database connections.");
            describe_gauge!("clinicpay_event_deliveries", "Event deliveries to the hospital's systems by status.");
        });
        let handle = recorder.handle();
        Metrics { recorder, handle }
    }
}

impl Metrics {
    /// Drains the histograms' pending samples every few seconds, for as long as the app runs.
    /// The exporter keeps each sample until upkeep or a scrape folds it into the buckets: without
    /// this, a server nobody scrapes grows by every request it serves.
    pub async fn upkeep(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            self.handle.run_upkeep();
        }
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        with_local_recorder(&self.recorder, || {
            counter!("clinicpay_http_requests_total", "route" => route.to_string(), "method" => method.to_string(),
                "status" => status.to_string())
            .increment(1);
            histogram!(REQUEST_DURATION, "route" => route.to_string()).record(took);
        });
    }

    /// Adds one to a named counter with labels, e.g.
    /// `incr("clinicpay_notifications_total", &[("provider", "alipay"), ("outcome", "applied")])`.
    pub fn incr(&self, name: &'static str, label_pairs: &[(&'static str, &str)]) {
        let labels: Vec<(&'static str, String)> = label_pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        with_local_recorder(&self.recorder, || counter!(name, &labels).increment(1));
    }

    /// Sets a gauge read just now (pool sizes, queue depths).
    pub fn set_gauge(&self, name: &'static str, label_pairs: &[(&'static str, &str)], value: i64) {
        let labels: Vec<(&'static str, String)> = label_pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        with_local_recorder(&self.recorder, || gauge!(name, &labels).set(value as f64));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.observe_request("/bills", "GET", 200, Duration::from_millis(3));
        m.observe_request("/bills", "GET", 200, Duration::from_millis(70));
        m.incr("clinicpay_notifications_total", &[("provider", "alipay"), ("outcome", "applied")]);
        m.set_gauge("clinicpay_db_pool_connections", &[("backend", "sqlite")], 4);
        let text = m.render();
        assert!(
            text.contains(r#"clinicpay_http_requests_total{route="/bills",method="GET",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"clinicpay_http_request_duration_seconds_bucket{route="/bills",le="0.005"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"clinicpay_http_request_duration_seconds_bucket{route="/bills",le="0.1"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"clinicpay_http_request_duration_seconds_count{route="/bills"} 2"#), "{text}");
        assert!(text.contains(r#"clinicpay_notifications_total{provider="alipay",outcome="applied"} 1"#), "{text}");
        assert!(text.contains(r#"clinicpay_db_pool_connections{backend="sqlite"} 4"#), "{text}");
        // another app's recorder does not see these
        assert!(!Metrics::default().render().contains("clinicpay_notifications_total"));
    }
}
