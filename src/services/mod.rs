//! Use cases. Each is a method on [`Services`] that validates its input into domain types, checks
//! the rules and calls the ports. Adapters (server functions, REST handlers, workers, the CLI)
//! stay thin: they authenticate, call one service method and map [`ServiceError`] to their
//! protocol.

pub mod auth;
pub mod batch;
pub mod billing;
pub mod books;
pub mod budget;
pub mod catalogue;
pub mod channels;
pub mod checkout;
pub mod demo;
pub mod intake;
pub mod notify;
pub mod refunds;
pub mod shifts;
pub mod webhooks;
pub mod workers;

use crate::checkout::apply::{ApplyResult, PaymentRules, VerifiedPayment};
use crate::ports::{Clock, Gateways, IdGen, Secrets, SessionEvents, Store, StoreError};
use crate::time::Millis;
use std::sync::Arc;

/// What a use case can fail with. `code` is stable and shown to users next to the message so
/// support can find the case; `status` is the HTTP status adapters use.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("please log in")]
    Unauthenticated,
    #[error("not allowed for your role")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String, detail: Option<serde_json::Value> },
    #[error("too many attempts; try again in {retry_after_s} seconds")]
    TooManyRequests { retry_after_s: i64 },
    #[error("payment provider failed: {0}")]
    Upstream(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ServiceError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Invalid { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Conflict { code, message: message.into(), detail: None }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Invalid { code, .. } => code,
            ServiceError::Unauthenticated => "unauthenticated",
            ServiceError::Forbidden => "forbidden",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::Conflict { code, .. } => code,
            ServiceError::TooManyRequests { .. } => "too_many_requests",
            ServiceError::Upstream(_) => "provider_error",
            ServiceError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ServiceError::Invalid { .. } => 400,
            ServiceError::Unauthenticated => 401,
            ServiceError::Forbidden => 403,
            ServiceError::NotFound(_) => 404,
            ServiceError::Conflict { .. } => 409,
            ServiceError::TooManyRequests { .. } => 429,
            ServiceError::Upstream(_) => 502,
            ServiceError::Internal(_) => 500,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound("record"),
            StoreError::Conflict(m) => ServiceError::Conflict { code: "conflict", message: m, detail: None },
            StoreError::DayClosed => ServiceError::Conflict {
                code: "day_closed",
                message: "the day is closed; the clock may be behind: book it on an open day".into(),
                detail: None,
            },
            StoreError::Internal(e) => ServiceError::Internal(e),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Settings the use cases need (the server builds them from its configuration).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `production` refuses demo users.
    pub production: bool,
    /// Where providers reach us (notification URLs are built from it).
    pub public_url: String,
    /// What becomes of money that arrives too late (C4).
    pub late_payment_policy: crate::checkout::LatePaymentPolicy,
    /// A stored notification still unfinished this long after it arrived is processed again.
    pub redrive_after_ms: Millis,
    pub session_ttl_ms: Millis,
    /// A staff session unused this long must log in again (S1).
    pub session_idle_ms: Millis,
    pub throttle: ThrottlePolicy,
    /// Rejected notifications are deleted this long after they arrived (the applied ones, and
    /// those a person must look at, stay).
    pub rejected_notification_retention_ms: Millis,
    /// How many approvals a refund needs (R2).
    pub refund_policy: crate::refunds::RefundPolicy,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            production: false,
            public_url: "http://127.0.0.1:3000".into(),
            late_payment_policy: crate::checkout::LatePaymentPolicy::AutoRefund,
            redrive_after_ms: 30_000,
            session_ttl_ms: 12 * crate::time::HOUR_MS,
            session_idle_ms: 15 * crate::time::MINUTE_MS,
            throttle: ThrottlePolicy::default(),
            rejected_notification_retention_ms: 30 * crate::time::DAY_MS,
            refund_policy: crate::refunds::RefundPolicy::default(),
        }
    }
}

/// Login throttling (S1): failures are counted per user name and per client address in a
/// window; past `slow_after` each failed attempt is answered more slowly, and at `lock_after`
/// the key is refused outright for `lock_ms`.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub window_ms: Millis,
    pub slow_after: i64,
    pub delay_step_ms: u64,
    pub max_delay_ms: u64,
    pub user_lock_after: i64,
    pub addr_lock_after: i64,
    pub lock_ms: Millis,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            window_ms: 15 * crate::time::MINUTE_MS,
            slow_after: 3,
            delay_step_ms: 500,
            max_delay_ms: 3_000,
            user_lock_after: 8,
            addr_lock_after: 30,
            lock_ms: 15 * crate::time::MINUTE_MS,
        }
    }
}

/// Everything the use cases run on. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGen>,
    pub config: Arc<ServiceConfig>,
    pub secrets: Arc<dyn Secrets>,
    pub gateways: Arc<dyn Gateways>,
    pub events: Arc<dyn SessionEvents>,
    /// Posts events to the hospital's systems.
    pub webhooks: Arc<dyn crate::ports::WebhookTransport>,
    /// Group commit for applying payments (None: one transaction per payment).
    pub apply_batcher: Option<Arc<ApplyBatcher>>,
    /// Group commit for storing raw notifications (None: one transaction each).
    pub notification_batcher: Option<Arc<NotificationBatcher>>,
    /// How many unverified notifications each source may make us store (issue 13 #7).
    pub notify_budget: Arc<budget::SourceBudget>,
}

pub type NotificationBatcher = batch::Batcher<crate::ports::NewNotification, Result<(), StoreError>>;
pub type ApplyBatcher = batch::Batcher<VerifiedPayment, Result<ApplyResult, StoreError>>;

impl Services {
    /// Starts group commit for payment applications.
    pub fn with_apply_batching(mut self, max_batch: usize, workers: usize) -> Services {
        let store = self.store.clone();
        let ids = self.ids.clone();
        let rules = self.rules();
        self.apply_batcher = Some(batch::Batcher::spawn(max_batch, workers, move |items: Vec<VerifiedPayment>| {
            let store = store.clone();
            let ids = ids.clone();
            async move {
                let n = items.len();
                match store.apply_payments(&items, &rules, ids.as_ref()).await {
                    Ok(results) => results,
                    Err(e) => {
                        let msg = e.to_string();
                        (0..n).map(|_| Err(StoreError::Internal(anyhow::anyhow!("batch failed: {msg}")))).collect()
                    }
                }
            }
        }));
        self
    }

    /// Starts group commit for storing raw notifications: each caller is answered only after
    /// the batch holding its notification is durably committed.
    pub fn with_notification_batching(mut self, max_batch: usize, workers: usize) -> Services {
        let store = self.store.clone();
        self.notification_batcher =
            Some(batch::Batcher::spawn(max_batch, workers, move |items: Vec<crate::ports::NewNotification>| {
                let store = store.clone();
                async move {
                    let n = items.len();
                    match store.insert_notifications(&items).await {
                        Ok(()) => (0..n).map(|_| Ok(())).collect(),
                        Err(e) => {
                            let msg = e.to_string();
                            (0..n).map(|_| Err(StoreError::Internal(anyhow::anyhow!("batch failed: {msg}")))).collect()
                        }
                    }
                }
            }));
        self
    }

    /// Stores one raw notification durably (through the batcher when there is one).
    pub async fn store_notification(&self, n: crate::ports::NewNotification) -> Result<(), StoreError> {
        match &self.notification_batcher {
            Some(b) => {
                b.submit(n).await.unwrap_or_else(|| Err(StoreError::Internal(anyhow::anyhow!("batcher stopped"))))
            }
            None => self.store.insert_notification(&n).await,
        }
    }

    /// Applies one verified payment (through the group-commit batcher when there is one).
    pub(crate) async fn apply_payment_queued(&self, p: VerifiedPayment) -> Result<ApplyResult, StoreError> {
        match &self.apply_batcher {
            Some(b) => {
                b.submit(p).await.unwrap_or_else(|| Err(StoreError::Internal(anyhow::anyhow!("batcher stopped"))))
            }
            None => self.store.apply_payment(&p, &self.rules(), self.ids.as_ref()).await,
        }
    }
}

impl Services {
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// The payment rules with this installation's settings.
    pub fn rules(&self) -> PaymentRules {
        PaymentRules { late_policy: self.config.late_payment_policy }
    }
}
