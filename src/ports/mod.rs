//! Ports: the traits the server implements (storage, clock, ids, secrets, gateways, events).
//!
//! The services in [`crate::services`] run only against these, so every rule is exercised by the
//! same code on SQLite and on PostgreSQL, with the real gateways or with the built-in sandboxes.
//! Storage is split by aggregate, one trait per file; [`Store`] is all of them together.

pub mod audit;
pub mod auth;
pub mod billing;
pub mod books;
pub mod channels;
pub mod checkout;
pub mod events;
pub mod exceptions;
pub mod gateways;
pub mod intake;
pub mod notifications;
pub mod refunds;
pub mod reports;
pub mod shifts;
pub mod webhooks;
pub mod work;

pub use audit::*;
pub use auth::*;
pub use billing::*;
pub use books::*;
pub use channels::*;
pub use checkout::*;
pub use events::*;
pub use exceptions::*;
pub use gateways::*;
pub use intake::*;
pub use notifications::*;
pub use refunds::*;
pub use reports::*;
pub use shifts::*;
pub use webhooks::*;
pub use work::*;

use crate::ids::TypedId;
use crate::time::Millis;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict the caller can explain to the user.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The entry would be booked inside a day finance has closed (the database refuses it).
    #[error("the day is closed")]
    DayClosed,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub trait Clock: Send + Sync {
    fn now_ms(&self) -> Millis;
}

pub trait IdGen: Send + Sync {
    /// 128 bits: 48 bits of milliseconds then 80 random bits (ULID layout), so ids sort by time.
    fn next_bits(&self) -> u128;
}

impl dyn IdGen {
    pub fn new_id<T: TypedId>(&self) -> T {
        T::from_bits(self.next_bits())
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// Everything the services store: every aggregate's store, one backend implements all.
#[async_trait]
pub trait Store:
    AuthStore
    + AuditStore
    + BillingStore
    + IntakeStore
    + ChannelStore
    + NotificationStore
    + CheckoutStore
    + ExceptionStore
    + SessionWorkStore
    + RefundStore
    + BillRefundStore
    + OutboxStore
    + WebhookStore
    + ReportStore
    + BooksStore
    + ShiftStore
    + Send
    + Sync
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;
    fn pool_stats(&self) -> PoolStats;
}
