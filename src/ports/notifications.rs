//! Raw provider notifications, stored before anything is done with them (G4), and the provider
//! events they carried.

use super::StoreResult;
use crate::ids::{ChannelId, NotificationId};
use crate::payments::{NotificationStatus, Provider};
use crate::time::Millis;
use crate::views::NotificationView;
use async_trait::async_trait;

/// A notification as stored before anything is done with it.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub id: NotificationId,
    pub provider: Provider,
    pub received_at_ms: Millis,
    pub remote_addr: String,
    pub content_type: String,
    /// JSON object of the headers that matter.
    pub headers: String,
    pub body: Vec<u8>,
}

/// What became of a stored notification.
#[derive(Debug, Clone)]
pub struct NotificationResult {
    pub status: NotificationStatus,
    pub reason: Option<String>,
    pub channel_id: Option<ChannelId>,
    pub event_id: Option<String>,
    pub out_trade_no: Option<String>,
    pub processed_at_ms: Millis,
}

#[derive(Debug, Clone)]
pub struct StoredNotification {
    pub id: NotificationId,
    pub provider: Provider,
    pub received_at_ms: Millis,
    pub remote_addr: String,
    pub content_type: String,
    pub headers: String,
    pub body: Vec<u8>,
    pub status: NotificationStatus,
}

#[async_trait]
pub trait NotificationStore: Send + Sync {
    async fn insert_notification(&self, n: &NewNotification) -> StoreResult<()>;
    /// Stores several raw notifications in one durable commit (group commit): all or none.
    async fn insert_notifications(&self, ns: &[NewNotification]) -> StoreResult<()>;
    async fn finish_notification(&self, id: &NotificationId, r: &NotificationResult) -> StoreResult<()>;
    async fn list_notifications(&self, limit: i64) -> StoreResult<Vec<NotificationView>>;
    /// Notifications still `received` after `before_ms` (processing died) and re-driven fewer
    /// than `max_attempts` times, oldest first: to be re-driven.
    async fn unfinished_notifications(
        &self,
        before_ms: Millis,
        max_attempts: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredNotification>>;
    /// Counts one re-drive attempt at a notification still `received` (compare-and-set) and
    /// returns the attempts made so far, this one included; `None` when it was finished meanwhile.
    async fn count_redrive_attempt(&self, id: &NotificationId) -> StoreResult<Option<i64>>;
    /// Deletes up to `limit` `rejected` notifications that arrived before `before_ms` (their
    /// retention is over) and returns how many went. Applied, failed and unfinished ones stay.
    async fn purge_rejected_notifications(&self, before_ms: Millis, limit: i64) -> StoreResult<u64>;
    /// Records a provider event id; false when it was recorded before (a duplicate).
    async fn record_provider_event(
        &self,
        provider: Provider,
        event_id: &str,
        notification_id: &NotificationId,
        outcome: &str,
        at_ms: Millis,
    ) -> StoreResult<bool>;
}
