//! Notification delivery for the sandboxes: POST to the merchant's `notify_url` until the
//! merchant acknowledges, on the provider's real retry schedule (time-scaled), with fault
//! injection (duplicates, delay, drop, reorder).
//!
//! Deliveries are rows of the sandbox database, not tasks in memory: a worker sends what is
//! due, and after a restart it carries on where the process stopped — as a real provider keeps
//! retrying across its own restarts. How a provider signs an attempt and what counts as an
//! acknowledgement is that sandbox's [`Notifier`].

use super::store::SandboxStore;
use super::SandboxSettings;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
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

/// A provider's way of delivering notifications.
pub trait Notifier: Send + Sync {
    /// The headers and body of one attempt, from what was queued: WeChat Pay signs every
    /// attempt's headers afresh, the bank stamps and signs every attempt's body. `signing` is
    /// what the sandbox recorded when it queued the notification (e.g. which key signs).
    fn attempt(&self, signing: &str, queued: &[u8]) -> (Vec<(String, String)>, Vec<u8>);
    /// The provider's rule for "the merchant received it" (Alipay: body `success`; WeChat: any
    /// 2xx; the bank: `{"code":"SUCCESS"}`).
    fn accepted(&self, status: u16, body: &[u8]) -> bool;
    /// Waits between attempts, in seconds of real time.
    fn schedule(&self) -> &'static [u64];
}

/// One notification to deliver.
#[derive(Debug, Clone)]
pub struct Notice {
    pub sandbox: &'static str,
    /// For the control API and logs, e.g. `TRANSACTION.SUCCESS CP01…`.
    pub label: String,
    /// The trade it concerns (the control API lists deliveries per trade).
    pub out_trade_no: String,
    pub url: String,
    pub body: Vec<u8>,
    pub signing: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: i64,
    pub label: String,
    pub out_trade_no: String,
    pub copy: i64,
    pub attempts: i64,
    pub acknowledged: bool,
    pub dropped: bool,
    pub gave_up: bool,
    pub last_status: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    sandbox: String,
    label: String,
    url: String,
    body: Vec<u8>,
    signing: String,
    step: i64,
    state: String,
}

pub struct Courier {
    settings: Arc<SandboxSettings>,
    store: Arc<SandboxStore>,
    http: reqwest::Client,
    notifiers: RwLock<HashMap<&'static str, Arc<dyn Notifier>>>,
    wake: Arc<tokio::sync::Notify>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Courier {
    pub fn new(settings: Arc<SandboxSettings>, store: Arc<SandboxStore>) -> Arc<Courier> {
        Arc::new(Courier {
            settings,
            store,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            notifiers: RwLock::new(HashMap::new()),
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    pub fn register(&self, sandbox: &'static str, n: Arc<dyn Notifier>) {
        self.notifiers.write().unwrap_or_else(|e| e.into_inner()).insert(sandbox, n);
    }

    fn notifier(&self, sandbox: &str) -> Option<Arc<dyn Notifier>> {
        self.notifiers.read().unwrap_or_else(|e| e.into_inner()).get(sandbox).cloned()
    }

    fn scaled_ms(&self, ms: u64) -> i64 {
        self.settings.scaled(Duration::from_millis(ms)).as_millis() as i64
    }

    /// May the courier post to this address? Only to loopback and to the host the sandboxes
    /// are served from (issue 13 #12): a sandbox is not a way to make this server post
    /// anywhere someone registers. Redirects are not followed either.
    pub fn may_post_to(&self, url: &str) -> bool {
        let Ok(u) = reqwest::Url::parse(url) else { return false };
        if !matches!(u.scheme(), "http" | "https") {
            return false;
        }
        let own = reqwest::Url::parse(&self.settings.base_url).ok().and_then(|b| b.host_str().map(str::to_string));
        let Some(host) = u.host_str() else { return false };
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback || own.is_some_and(|o| o.eq_ignore_ascii_case(host))
    }

    /// Queues a notification (with its copies) according to the faults.
    pub async fn send(&self, n: Notice, faults: &FaultSpec) -> anyhow::Result<()> {
        let now = now_ms();
        let (state, due) = if !self.may_post_to(&n.url) {
            tracing::warn!(label = %n.label, "sandbox courier refuses to post outside loopback and its own host");
            ("gave_up", now)
        } else if faults.drop {
            tracing::info!(label = %n.label, "sandbox dropped a notification (fault injection)");
            ("dropped", now)
        } else if faults.reorder {
            ("held", now + self.scaled_ms(2_000).max(50))
        } else {
            ("due", now + self.scaled_ms(faults.delay_ms))
        };
        let copies = if faults.drop || state == "gave_up" { 1 } else { 1 + faults.duplicate };
        let mut tx = self.store.pool().begin().await?;
        for copy in 0..copies {
            sqlx::query(
                "INSERT INTO deliveries (sandbox, label, out_trade_no, url, body, signing, copy, state, due_ms, created_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(n.sandbox)
            .bind(&n.label)
            .bind(&n.out_trade_no)
            .bind(&n.url)
            .bind(&n.body)
            .bind(&n.signing)
            .bind(copy as i64)
            .bind(state)
            .bind(due)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Starts the delivery worker (it stops when the courier is dropped). Deliveries a previous
    /// process was sending are due again.
    pub fn spawn(self: &Arc<Self>) {
        let me: Weak<Courier> = Arc::downgrade(self);
        tokio::spawn(async move {
            if let Some(c) = me.upgrade() {
                if let Err(e) = sqlx::query("UPDATE deliveries SET state = 'due' WHERE state = 'sending'")
                    .execute(c.store.pool())
                    .await
                {
                    tracing::warn!(error = %e, "sandbox courier could not resume deliveries");
                }
            }
            loop {
                let Some(c) = me.upgrade() else { return };
                let wait = match c.round().await {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(error = %e, "sandbox courier round failed");
                        Duration::from_millis(200)
                    }
                };
                let wake = c.wake.clone();
                drop(c);
                let _ = tokio::time::timeout(wait, wake.notified()).await;
            }
        });
    }

    /// Sends everything due; returns how long to wait for the next.
    async fn round(self: &Arc<Self>) -> anyhow::Result<Duration> {
        let now = now_ms();
        let due: Vec<Due> = sqlx::query_as(
            "UPDATE deliveries SET state = 'sending' WHERE id IN (SELECT id FROM deliveries \
             WHERE state IN ('due', 'held') AND due_ms <= ? ORDER BY due_ms, id LIMIT 64) \
             RETURNING id, sandbox, label, url, body, signing, step, state",
        )
        .bind(now)
        .fetch_all(self.store.pool())
        .await?;
        if !due.is_empty() {
            let mut order: Vec<Due> = due;
            order.sort_by_key(|d| d.id);
            // what goes out now releases the notifications held back for reordering
            let released: Vec<String> = order.iter().filter(|d| d.state == "due").map(|d| d.sandbox.clone()).collect();
            let mut set = tokio::task::JoinSet::new();
            for d in order {
                let me = self.clone();
                set.spawn(async move { me.attempt(d).await });
            }
            while let Some(r) = set.join_next().await {
                if let Ok(Err(e)) = r {
                    tracing::warn!(error = %e, "sandbox notification attempt could not be recorded");
                }
            }
            for sandbox in released {
                sqlx::query("UPDATE deliveries SET due_ms = ? WHERE state = 'held' AND sandbox = ?")
                    .bind(now_ms())
                    .bind(sandbox)
                    .execute(self.store.pool())
                    .await?;
            }
            return Ok(Duration::ZERO);
        }
        let next: Option<i64> = sqlx::query_scalar("SELECT MIN(due_ms) FROM deliveries WHERE state IN ('due', 'held')")
            .fetch_one(self.store.pool())
            .await?;
        Ok(match next {
            Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0).min(1_000)),
            None => Duration::from_secs(1),
        })
    }

    /// One attempt of one delivery, and what it leads to.
    async fn attempt(&self, d: Due) -> anyhow::Result<()> {
        let Some(n) = self.notifier(&d.sandbox) else {
            anyhow::bail!("no notifier for sandbox {}", d.sandbox);
        };
        let (headers, body) = n.attempt(&d.signing, &d.body);
        let mut rb = self.http.post(&d.url).body(body);
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        let (status, ok) = match rb.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                (Some(status), n.accepted(status, &bytes))
            }
            Err(e) => {
                tracing::debug!(label = %d.label, error = %e, "sandbox notification attempt failed");
                (None, false)
            }
        };
        let schedule = n.schedule();
        let (state, due) = if ok {
            ("acknowledged", now_ms())
        } else if let Some(wait) = schedule.get(d.step as usize) {
            ("due", now_ms() + self.scaled_ms(wait * 1_000))
        } else {
            tracing::warn!(label = %d.label, "sandbox gave up delivering a notification");
            ("gave_up", now_ms())
        };
        sqlx::query(
            "UPDATE deliveries SET state = ?, due_ms = ?, attempts = attempts + 1, step = step + 1, last_status = ? \
             WHERE id = ?",
        )
        .bind(state)
        .bind(due)
        .bind(status.map(i64::from))
        .bind(d.id)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// Deliveries concerning one trade.
    pub async fn records_for(&self, sandbox: &str, out_trade_no: &str) -> Vec<DeliveryRecord> {
        sqlx::query_as(
            "SELECT id, label, out_trade_no, copy, attempts, state = 'acknowledged' AS acknowledged, \
             state = 'dropped' AS dropped, state = 'gave_up' AS gave_up, last_status \
             FROM deliveries WHERE sandbox = ? AND out_trade_no = ? ORDER BY id",
        )
        .bind(sandbox)
        .bind(out_trade_no)
        .fetch_all(self.store.pool())
        .await
        .unwrap_or_default()
    }

    /// Deliveries not yet acknowledged, dropped or given up.
    pub async fn in_flight(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE state IN ('due', 'held', 'sending')")
            .fetch_one(self.store.pool())
            .await
            .unwrap_or(0)
    }
}

/// Alipay's schedule: retries after 4m, 10m, 10m, 1h, 2h, 6h, 15h (PROTOCOLS.md A.8).
pub const ALIPAY_SCHEDULE: [u64; 7] = [4 * 60, 10 * 60, 10 * 60, 3_600, 7_200, 21_600, 54_000];

/// WeChat Pay's schedule: 15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h (B.6).
pub const WECHAT_SCHEDULE: [u64; 15] =
    [15, 15, 30, 180, 600, 1_200, 1_800, 1_800, 1_800, 3_600, 10_800, 10_800, 10_800, 21_600, 21_600];

/// The bank's schedule (docs/providers/bank.md 5).
pub const BANK_SCHEDULE: [u64; 8] = [15, 60, 300, 900, 3_600, 7_200, 21_600, 43_200];

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13 #12: the sandbox posts only to loopback and to its own host.
    #[tokio::test]
    async fn the_courier_posts_only_to_loopback_and_its_own_host() {
        let settings = Arc::new(SandboxSettings {
            base_url: "https://pay.hospital.example:8443".into(),
            time_scale_permille: 1,
            key_dir: None,
            state_file: None,
        });
        let store = Arc::new(SandboxStore::open(None).await.unwrap());
        let c = Courier::new(settings, store);
        for ok in [
            "http://127.0.0.1:3000/notify/alipay",
            "http://127.8.9.10/notify/alipay",
            "http://localhost:8080/notify/bank",
            "http://[::1]:3000/notify/wechatpay",
            "https://pay.hospital.example/notify/wechatpay",
            "https://PAY.hospital.example:8443/notify/wechatpay",
        ] {
            assert!(c.may_post_to(ok), "{ok}");
        }
        for no in [
            "http://10.0.0.5/notify/alipay",
            "http://169.254.169.254/latest/meta-data",
            "https://attacker.example/collect",
            "http://pay.hospital.example.attacker.example/",
            "file:///etc/passwd",
            "gopher://127.0.0.1/",
            "not a url",
        ] {
            assert!(!c.may_post_to(no), "{no}");
        }
    }
}
