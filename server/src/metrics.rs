//! Prometheus metrics (O2): request counts and latency histograms per route, named counters,
//! gauges read at scrape time. No floats: durations are kept in microseconds and printed as
//! decimal seconds.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const BUCKETS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS_US.len()],
    count: u64,
    sum_us: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    counters: BTreeMap<(String, String), u64>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn secs(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Renders `k="v",…` label pairs.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect::<Vec<_>>().join(",")
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, micros: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *g.requests.entry((route.to_string(), method.to_string(), status)).or_default() += 1;
        let h = g.latency.entry(route.to_string()).or_default();
        h.count += 1;
        h.sum_us += micros;
        for (i, le) in BUCKETS_US.iter().enumerate() {
            if micros <= *le {
                h.buckets[i] += 1;
            }
        }
    }

    /// Adds one to a named counter with labels, e.g.
    /// `incr("clinicpay_notifications_total", &[("provider", "alipay"), ("outcome", "applied")])`.
    pub fn incr(&self, name: &str, label_pairs: &[(&str, &str)]) {
        self.add(name, label_pairs, 1);
    }

    pub fn add(&self, name: &str, label_pairs: &[(&str, &str)], n: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *g.counters.entry((name.to_string(), labels(label_pairs))).or_default() += n;
    }

    pub fn counter(&self, name: &str, label_pairs: &[(&str, &str)]) -> u64 {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.counters.get(&(name.to_string(), labels(label_pairs))).copied().unwrap_or(0)
    }

    /// The exposition text; `gauges` are (name, help, labels, value) read by the caller just now.
    pub fn render(&self, gauges: &[(&str, &str, String, i64)]) -> String {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone_inner();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP clinicpay_http_requests_total HTTP requests by route, method and status.");
        let _ = writeln!(out, "# TYPE clinicpay_http_requests_total counter");
        for ((route, method, status), n) in &g.requests {
            let _ = writeln!(
                out,
                "clinicpay_http_requests_total{{{}}} {n}",
                labels(&[("route", route), ("method", method), ("status", &status.to_string())])
            );
        }
        let _ = writeln!(out, "# HELP clinicpay_http_request_duration_seconds HTTP request latency by route.");
        let _ = writeln!(out, "# TYPE clinicpay_http_request_duration_seconds histogram");
        for (route, h) in &g.latency {
            let l = labels(&[("route", route)]);
            for (i, le) in BUCKETS_US.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "clinicpay_http_request_duration_seconds_bucket{{{l},le=\"{}\"}} {}",
                    secs(*le),
                    h.buckets[i]
                );
            }
            let _ = writeln!(out, "clinicpay_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "clinicpay_http_request_duration_seconds_sum{{{l}}} {}", secs(h.sum_us));
            let _ = writeln!(out, "clinicpay_http_request_duration_seconds_count{{{l}}} {}", h.count);
        }
        let mut last = "";
        for ((name, l), n) in &g.counters {
            if name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            if l.is_empty() {
                let _ = writeln!(out, "{name} {n}");
            } else {
                let _ = writeln!(out, "{name}{{{l}}} {n}");
            }
        }
        for (name, help, l, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            if l.is_empty() {
                let _ = writeln!(out, "{name} {v}");
            } else {
                let _ = writeln!(out, "{name}{{{l}}} {v}");
            }
        }
        out
    }
}

impl Inner {
    fn clone_inner(&self) -> Inner {
        Inner { requests: self.requests.clone(), latency: self.latency.clone(), counters: self.counters.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.observe_request("/bills", "GET", 200, 3_000);
        m.observe_request("/bills", "GET", 200, 70_000);
        m.incr("clinicpay_notifications_total", &[("provider", "alipay"), ("outcome", "applied")]);
        let text = m.render(&[("clinicpay_db_pool_connections", "Open connections.", String::new(), 4)]);
        assert!(text.contains("clinicpay_http_requests_total{route=\"/bills\",method=\"GET\",status=\"200\"} 2"));
        assert!(text.contains("clinicpay_http_request_duration_seconds_bucket{route=\"/bills\",le=\"0.005000\"} 1"));
        assert!(text.contains("clinicpay_http_request_duration_seconds_bucket{route=\"/bills\",le=\"0.100000\"} 2"));
        assert!(text.contains("clinicpay_http_request_duration_seconds_sum{route=\"/bills\"} 0.073000"));
        assert!(text.contains("clinicpay_notifications_total{provider=\"alipay\",outcome=\"applied\"} 1"));
        assert!(text.contains("clinicpay_db_pool_connections 4"));
    }
}
