//! Notification delivery for the sandboxes: POST to the merchant's `notify_url` until the
//! merchant acknowledges, on the provider's real retry schedule (time-scaled), with fault
//! injection (duplicates, delay, drop, reorder).

use super::SandboxSettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults injected per trade (or as defaults for new trades).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// Extra identical copies of each notification, sent at the same instant (each retried on
    /// its own, like deliveries over several links).
    pub duplicate: u32,
    /// Wait this long (ms, time-scaled) before the first attempt.
    pub delay_ms: u64,
    /// Never deliver (status sync must find the payment).
    pub drop: bool,
    /// Hold the notification until the next one of this sandbox has gone out (or 2 s,
    /// time-scaled), so notifications arrive out of order.
    pub reorder: bool,
    /// The next API call about this trade fails with the provider's system error.
    pub fail_next_call: bool,
}

/// One notification to deliver.
#[derive(Clone)]
pub struct Delivery {
    /// For the control API and logs, e.g. `TRANSACTION.SUCCESS CP01…`.
    pub label: String,
    /// The trade it concerns (the control API lists deliveries per trade).
    pub out_trade_no: String,
    pub url: String,
    /// Builds headers and body for each attempt (WeChat re-signs every attempt).
    pub build: Arc<dyn Fn() -> (Vec<(String, String)>, Vec<u8>) + Send + Sync>,
    /// The provider's rule for "acknowledged" (Alipay: body `success`; WeChat: any 2xx).
    pub accepted: fn(u16, &[u8]) -> bool,
    /// Waits between attempts, real time (scaled by the settings).
    pub schedule: Vec<Duration>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: u64,
    pub label: String,
    pub out_trade_no: String,
    pub copy: u32,
    pub attempts: u32,
    pub acknowledged: bool,
    pub dropped: bool,
    pub gave_up: bool,
    pub last_status: Option<u16>,
}

pub struct Courier {
    settings: Arc<SandboxSettings>,
    http: reqwest::Client,
    next_id: AtomicU64,
    records: Mutex<BTreeMap<u64, DeliveryRecord>>,
    held: Mutex<Vec<(Delivery, u64, u32)>>,
}

impl Courier {
    pub fn new(settings: Arc<SandboxSettings>) -> Courier {
        Courier {
            settings,
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().expect("HTTP client"),
            next_id: AtomicU64::new(1),
            records: Mutex::new(BTreeMap::new()),
            held: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, d: &Delivery, copy: u32, dropped: bool) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let rec = DeliveryRecord {
            id,
            label: d.label.clone(),
            out_trade_no: d.out_trade_no.clone(),
            copy,
            attempts: 0,
            acknowledged: false,
            dropped,
            gave_up: false,
            last_status: None,
        };
        self.records.lock().unwrap_or_else(|e| e.into_inner()).insert(id, rec);
        id
    }

    /// Sends a notification (with its copies) according to the faults.
    pub fn send(self: &Arc<Self>, d: Delivery, faults: &FaultSpec) {
        if faults.drop {
            self.record(&d, 0, true);
            tracing::info!(label = %d.label, "sandbox dropped a notification (fault injection)");
            return;
        }
        let delay = self.settings.scaled(Duration::from_millis(faults.delay_ms));
        let copies = 1 + faults.duplicate;
        if faults.reorder {
            let mut ids = Vec::new();
            for copy in 0..copies {
                let id = self.record(&d, copy, false);
                ids.push(id);
                self.held.lock().unwrap_or_else(|e| e.into_inner()).push((d.clone(), id, copy));
            }
            let me = self.clone();
            let timeout = self.settings.scaled(Duration::from_secs(2)).max(Duration::from_millis(50));
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                me.release_held(&ids);
            });
            return;
        }
        let mut ids = Vec::new();
        for copy in 0..copies {
            ids.push((self.record(&d, copy, false), copy));
        }
        let me = self.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut first = Vec::new();
            for (id, _) in &ids {
                first.push(me.clone().run_chain(d.clone(), *id));
            }
            // copies go out at the same instant
            futures::future::join_all(first).await;
        });
        // anything held for reordering goes out after this one
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay + Duration::from_millis(30)).await;
            me.release_held(&[]);
        });
    }

    /// Releases held notifications (`only` = these ids, or all when empty).
    fn release_held(self: &Arc<Self>, only: &[u64]) {
        let released: Vec<(Delivery, u64, u32)> = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let (out, keep): (Vec<_>, Vec<_>) =
                held.drain(..).partition(|(_, id, _)| only.is_empty() || only.contains(id));
            *held = keep;
            out
        };
        for (d, id, _) in released {
            tokio::spawn(self.clone().run_chain(d, id));
        }
    }

    /// Attempts, then retries on the schedule until acknowledged or the schedule runs out.
    async fn run_chain(self: Arc<Self>, d: Delivery, id: u64) {
        let mut waits = d.schedule.iter();
        loop {
            let (headers, body) = (d.build)();
            let mut rb = self.http.post(&d.url).body(body);
            for (k, v) in headers {
                rb = rb.header(k, v);
            }
            let (status, ok) = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let bytes = resp.bytes().await.unwrap_or_default();
                    (Some(status), (d.accepted)(status, &bytes))
                }
                Err(e) => {
                    tracing::debug!(label = %d.label, error = %e, "sandbox notification attempt failed");
                    (None, false)
                }
            };
            {
                let mut recs = self.records.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(r) = recs.get_mut(&id) {
                    r.attempts += 1;
                    r.last_status = status;
                    r.acknowledged = ok;
                }
            }
            if ok {
                return;
            }
            match waits.next() {
                Some(w) => tokio::time::sleep(self.settings.scaled(*w)).await,
                None => {
                    let mut recs = self.records.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(r) = recs.get_mut(&id) {
                        r.gave_up = true;
                    }
                    tracing::warn!(label = %d.label, "sandbox gave up delivering a notification");
                    return;
                }
            }
        }
    }

    /// Deliveries concerning one trade.
    pub fn records_for(&self, out_trade_no: &str) -> Vec<DeliveryRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|r| r.out_trade_no == out_trade_no)
            .cloned()
            .collect()
    }

    /// Deliveries not yet acknowledged, dropped or given up.
    pub fn in_flight(&self) -> usize {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|r| !r.acknowledged && !r.dropped && !r.gave_up)
            .count()
    }
}

/// Alipay's schedule: retries after 4m, 10m, 10m, 1h, 2h, 6h, 15h (PROTOCOLS.md A.8).
pub fn alipay_schedule() -> Vec<Duration> {
    [4 * 60, 10 * 60, 10 * 60, 3_600, 7_200, 21_600, 54_000].into_iter().map(Duration::from_secs).collect()
}

/// WeChat Pay's schedule: 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h (B.6).
pub fn wechat_schedule() -> Vec<Duration> {
    [15, 15, 30, 180, 600, 1_200, 1_800, 1_800, 1_800, 3_600, 10_800, 10_800, 10_800, 21_600, 21_600]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}
