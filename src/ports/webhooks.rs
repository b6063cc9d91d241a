//! Events out to the hospital's systems: endpoints, events, deliveries and their attempts
//! ([`crate::webhooks`]), and the HTTP transport that posts them.

use super::{AuditInput, Sealed, StoreResult};
use crate::ids::{DeliveryId, OutboxId, WebhookEndpointId};
use crate::time::Millis;
use crate::webhooks::{DeliveryStatus, EventTopic};
use async_trait::async_trait;

/// An endpoint as stored; the secret stays sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    pub id: WebhookEndpointId,
    pub name: String,
    pub url: String,
    pub topics: Vec<EventTopic>,
    pub enabled: bool,
    pub secret: Sealed,
    /// The last four characters of the secret, for the masked form.
    pub secret_hint: String,
    pub version: i64,
    pub created_by: String,
    pub created_at_ms: Millis,
    pub updated_at_ms: Millis,
}

/// An event to make, fixed from here on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: String,
    pub topic: EventTopic,
    /// What it is about (a bill id).
    pub aggregate_id: String,
    pub body: String,
}

/// A delivery due now, with what the attempt needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTask {
    pub id: DeliveryId,
    pub endpoint_id: WebhookEndpointId,
    pub url: String,
    pub secret: Sealed,
    pub event_id: String,
    pub topic: EventTopic,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Of those, the ones since it was last queued (the retry schedule's step).
    pub round_attempts: i64,
}

/// One attempt, as it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub started_at_ms: Millis,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryNext {
    Delivered,
    RetryAt(Millis),
    Failed,
}

/// A line of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub event_id: String,
    pub topic: EventTopic,
    pub aggregate_id: String,
    pub endpoint_id: WebhookEndpointId,
    pub endpoint_name: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at_ms: Millis,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at_ms: Option<Millis>,
    pub created_at_ms: Millis,
}

/// The delivery log's filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub endpoint_id: Option<WebhookEndpointId>,
    pub delivery_id: Option<DeliveryId>,
    /// An event id or the id of what it is about (a bill).
    pub about: Option<String>,
    pub limit: i64,
}

/// An attempt as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub attempt: i64,
    pub record: AttemptRecord,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn insert_endpoint(&self, e: &EndpointRecord, audit: &AuditInput) -> StoreResult<()>;
    /// Compare-and-set on `version`; the stored version becomes `e.version`.
    async fn update_endpoint(&self, e: &EndpointRecord, expected_version: i64, audit: &AuditInput) -> StoreResult<()>;
    async fn list_endpoints(&self) -> StoreResult<Vec<EndpointRecord>>;
    async fn get_endpoint(&self, id: &WebhookEndpointId) -> StoreResult<Option<EndpointRecord>>;
    /// Makes the events of one outbox item and a delivery for every enabled endpoint that wants
    /// each, and marks the item published — one transaction. Doing it again for the same item
    /// (a crash before the commit) makes nothing twice.
    async fn publish_events(
        &self,
        outbox_id: &OutboxId,
        events: &[NewEvent],
        ids: &dyn super::IdGen,
        now_ms: Millis,
    ) -> StoreResult<usize>;
    /// Claims due deliveries of enabled endpoints under a lease.
    async fn claim_deliveries(&self, now_ms: Millis, lease_ms: Millis, limit: i64) -> StoreResult<Vec<DeliveryTask>>;
    /// Logs attempt `attempt` and moves the delivery on, if it is still pending and held by
    /// this attempt's lease (a compare-and-set on `attempts`).
    async fn record_attempt(
        &self,
        id: &DeliveryId,
        attempt: i64,
        record: &AttemptRecord,
        next: DeliveryNext,
        now_ms: Millis,
    ) -> StoreResult<bool>;
    async fn list_deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<DeliveryRow>>;
    async fn delivery_attempts(&self, id: &DeliveryId) -> StoreResult<Vec<AttemptRow>>;
    /// The event body a delivery sends.
    async fn delivery_body(&self, id: &DeliveryId) -> StoreResult<Option<String>>;
    /// Queues a delivery again now (any status), with the audit line; the schedule restarts
    /// from here, the event (id, body) stays as it was.
    async fn resend_delivery(&self, id: &DeliveryId, now_ms: Millis, audit: &AuditInput) -> StoreResult<bool>;
    /// Counts by status, for the health page and metrics.
    async fn delivery_counts(&self) -> StoreResult<Vec<(DeliveryStatus, i64)>>;
}

/// One POST of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: Millis,
}

/// What came back: a status and the start of the body, or why there was no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundResult {
    Answered { status: u16, excerpt: String },
    NoAnswer(String),
}

/// Posts events to endpoints (the server's HTTP client; no redirects are followed).
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    async fn post(&self, req: OutboundRequest) -> OutboundResult;
}
