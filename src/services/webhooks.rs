//! Events out to the hospital's systems (issue 15 #2, I5): endpoints managed by an admin, events
//! made from the outbox, deliveries signed and retried on a schedule, the delivery log with
//! re-send. The same machinery will carry the partner platforms' callbacks.

use super::auth::{new_token, Actor};
use super::{ServiceError, ServiceResult, Services};
use crate::auth::{Access, CurrentUser, Role};
use crate::checkout::apply::{OutboxPayload, PaidPayable};
use crate::ids::{BillId, DeliveryId, WebhookEndpointId};
use crate::intake::PatientKey;
use crate::ports::{
    AttemptRecord, DeliveryFilter, DeliveryNext, DeliveryRow, DeliveryTask, EndpointRecord, IssuedBill, NewEvent,
    OutboundRequest, OutboundResult, OutboxItem,
};
use crate::time::{rfc3339_beijing, Millis};
use crate::views::{AttemptView, DeliveryDetailView, DeliveryView, EndpointView};
use crate::webhooks::{
    event_id, headers, mask_secret, next_attempt_at, signature_header, DeliveryStatus, EndpointSettings, EventTopic,
    ATTEMPT_TIMEOUT_MS,
};
use serde_json::{json, Value};

const LEASE_MS: Millis = 60_000;
/// Deliveries attempted at once (each waits at most 5 s for its endpoint).
const DELIVERY_BATCH: i64 = 32;
/// How long one worker round keeps draining a backlog of deliveries.
const DRAIN_MS: Millis = 1_000;

fn require_admin(actor: &CurrentUser) -> ServiceResult<()> {
    if actor.role == Role::Admin {
        Ok(())
    } else {
        Err(ServiceError::Forbidden)
    }
}

fn secret_aad(id: &WebhookEndpointId) -> Vec<u8> {
    format!("webhook:{id}:secret").into_bytes()
}

fn endpoint_view(e: &EndpointRecord) -> EndpointView {
    EndpointView {
        id: e.id.clone(),
        name: e.name.clone(),
        url: e.url.clone(),
        topics: e.topics.clone(),
        enabled: e.enabled,
        secret_mask: format!("whsec_…{}", e.secret_hint),
        version: e.version,
        created_by: e.created_by.clone(),
        updated_at_ms: e.updated_at_ms,
    }
}

fn delivery_view(r: DeliveryRow) -> DeliveryView {
    DeliveryView {
        next_attempt_at_ms: (r.status == DeliveryStatus::Pending).then_some(r.next_attempt_at_ms),
        id: r.id,
        event_id: r.event_id,
        topic: r.topic,
        aggregate_id: r.aggregate_id,
        endpoint_id: r.endpoint_id,
        endpoint_name: r.endpoint_name,
        status: r.status,
        attempts: r.attempts,
        last_status_code: r.last_status_code,
        last_error: r.last_error,
        delivered_at_ms: r.delivered_at_ms,
        created_at_ms: r.created_at_ms,
    }
}

fn refusal(r: crate::webhooks::EndpointRefusal) -> ServiceError {
    ServiceError::invalid(r.code, r.message)
}

/// What the HIS knows a bill by, in every bill event.
fn bill_json(b: &IssuedBill) -> Value {
    let his_patient = match &b.data.patient {
        PatientKey::External(id) => Some(id.clone()),
        PatientKey::Ours(_) => None,
    };
    json!({
        "id": b.id.as_str(),
        "bill_id": b.data.external_id,
        "bill_no": b.bill_no,
        "patient_id": b.patient_id.as_str(),
        "his_patient_id": his_patient,
        "visit_no": b.data.visit_no,
        "total": b.data.total.plain(),
    })
}

/// The endpoint settings from a form or the API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointInput {
    pub name: String,
    pub url: String,
    pub topics: Vec<String>,
    pub enabled: bool,
}

impl Services {
    pub async fn list_endpoints(&self, actor: &CurrentUser) -> ServiceResult<Vec<EndpointView>> {
        require_admin(actor)?;
        Ok(self.store.list_endpoints().await?.iter().map(endpoint_view).collect())
    }

    /// Registers an endpoint; the signing secret is returned once (stored sealed).
    pub async fn create_endpoint(
        &self,
        actor: &CurrentUser,
        ip: &str,
        input: EndpointInput,
    ) -> ServiceResult<(String, EndpointView)> {
        require_admin(actor)?;
        let s = EndpointSettings::check(&input.name, &input.url, &input.topics).map_err(refusal)?;
        let id = self.ids.new_id::<WebhookEndpointId>();
        let secret = format!("whsec_{}", new_token());
        let now = self.now();
        let rec = EndpointRecord {
            secret: self.secrets.seal(&secret_aad(&id), secret.as_bytes())?,
            secret_hint: mask_secret(&secret).trim_start_matches("whsec_…").to_string(),
            id,
            name: s.name,
            url: s.url,
            topics: s.topics,
            enabled: input.enabled,
            version: 1,
            created_by: actor.username.clone(),
            created_at_ms: now,
            updated_at_ms: now,
        };
        let audit = self.audit_input(
            &Actor::user(actor, ip),
            "webhook_endpoint_created",
            "webhook_endpoint",
            rec.id.as_str(),
            json!({ "after": { "name": rec.name, "url": rec.url, "topics": topic_words(&rec.topics), "enabled": rec.enabled } }),
        );
        self.store.insert_endpoint(&rec, &audit).await?;
        Ok((secret, endpoint_view(&rec)))
    }

    /// Changes an endpoint's name, address, event types or state (compare-and-set on version).
    pub async fn update_endpoint(
        &self,
        actor: &CurrentUser,
        ip: &str,
        id: &str,
        version: i64,
        input: EndpointInput,
    ) -> ServiceResult<EndpointView> {
        require_admin(actor)?;
        let old = self.endpoint(id).await?;
        let s = EndpointSettings::check(&input.name, &input.url, &input.topics).map_err(refusal)?;
        let mut rec = old.clone();
        rec.name = s.name;
        rec.url = s.url;
        rec.topics = s.topics;
        rec.enabled = input.enabled;
        rec.version = version + 1;
        rec.updated_at_ms = self.now();
        let audit = self.audit_input(
            &Actor::user(actor, ip),
            "webhook_endpoint_updated",
            "webhook_endpoint",
            rec.id.as_str(),
            json!({
                "before": { "name": old.name, "url": old.url, "topics": topic_words(&old.topics), "enabled": old.enabled },
                "after": { "name": rec.name, "url": rec.url, "topics": topic_words(&rec.topics), "enabled": rec.enabled },
            }),
        );
        self.store.update_endpoint(&rec, version, &audit).await.map_err(stale)?;
        Ok(endpoint_view(&rec))
    }

    /// A new signing secret, returned once; the old one stops signing at once.
    pub async fn roll_endpoint_secret(
        &self,
        actor: &CurrentUser,
        ip: &str,
        id: &str,
        version: i64,
    ) -> ServiceResult<(String, EndpointView)> {
        require_admin(actor)?;
        let mut rec = self.endpoint(id).await?;
        let secret = format!("whsec_{}", new_token());
        let old_hint = rec.secret_hint.clone();
        rec.secret = self.secrets.seal(&secret_aad(&rec.id), secret.as_bytes())?;
        rec.secret_hint = mask_secret(&secret).trim_start_matches("whsec_…").to_string();
        rec.version = version + 1;
        rec.updated_at_ms = self.now();
        let audit = self.audit_input(
            &Actor::user(actor, ip),
            "webhook_secret_rolled",
            "webhook_endpoint",
            rec.id.as_str(),
            json!({ "before": { "secret": format!("whsec_…{old_hint}") }, "after": { "secret": format!("whsec_…{}", rec.secret_hint) } }),
        );
        self.store.update_endpoint(&rec, version, &audit).await.map_err(stale)?;
        Ok((secret, endpoint_view(&rec)))
    }

    async fn endpoint(&self, id: &str) -> ServiceResult<EndpointRecord> {
        let id = WebhookEndpointId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        self.store.get_endpoint(&id).await?.ok_or(ServiceError::NotFound("endpoint"))
    }

    /// The delivery log (admins and finance: failing deliveries are theirs to follow up).
    pub async fn list_deliveries(
        &self,
        actor: &CurrentUser,
        status: Option<&str>,
        about: Option<&str>,
        limit: i64,
    ) -> ServiceResult<Vec<DeliveryView>> {
        if !Access::Finance.allows(Some(actor.role)) {
            return Err(ServiceError::Forbidden);
        }
        let status =
            match status.map(str::trim).filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
                    ServiceError::invalid("bad_status", "status must be pending, delivered or failed")
                })?),
            };
        let about = about.map(str::trim).filter(|s| !s.is_empty());
        if about.is_some_and(|a| a.len() > 120) {
            return Err(ServiceError::invalid("bad_query", "the search is longer than 120 characters"));
        }
        let rows = self
            .store
            .list_deliveries(&DeliveryFilter {
                status,
                about: about.map(str::to_string),
                limit: limit.clamp(1, 500),
                ..Default::default()
            })
            .await?;
        Ok(rows.into_iter().map(delivery_view).collect())
    }

    pub async fn delivery_detail(&self, actor: &CurrentUser, id: &str) -> ServiceResult<DeliveryDetailView> {
        if !Access::Finance.allows(Some(actor.role)) {
            return Err(ServiceError::Forbidden);
        }
        let id = DeliveryId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        let body = self.store.delivery_body(&id).await?.ok_or(ServiceError::NotFound("delivery"))?;
        let delivery = self
            .store
            .list_deliveries(&DeliveryFilter { delivery_id: Some(id.clone()), limit: 1, ..Default::default() })
            .await?
            .into_iter()
            .next()
            .ok_or(ServiceError::NotFound("delivery"))?;
        let attempts = self
            .store
            .delivery_attempts(&id)
            .await?
            .into_iter()
            .map(|a| AttemptView {
                attempt: a.attempt,
                started_at_ms: a.record.started_at_ms,
                duration_ms: a.record.duration_ms,
                status_code: a.record.status_code,
                error: a.record.error,
                response_excerpt: a.record.response_excerpt,
            })
            .collect();
        Ok(DeliveryDetailView { delivery: delivery_view(delivery), body, attempts })
    }

    /// Sends a delivery again now: the same event id and body; the schedule restarts.
    pub async fn resend_delivery(&self, actor: &CurrentUser, ip: &str, id: &str) -> ServiceResult<()> {
        if !Access::Finance.allows(Some(actor.role)) {
            return Err(ServiceError::Forbidden);
        }
        let id = DeliveryId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        if self.store.delivery_body(&id).await?.is_none() {
            return Err(ServiceError::NotFound("delivery"));
        }
        let audit =
            self.audit_input(&Actor::user(actor, ip), "webhook_resent", "webhook_delivery", id.as_str(), json!({}));
        if !self.store.resend_delivery(&id, self.now(), &audit).await? {
            return Err(ServiceError::conflict(
                "delivery_in_flight",
                "this delivery is being sent right now; look again in a few seconds",
            ));
        }
        Ok(())
    }
}

fn topic_words(t: &[EventTopic]) -> Vec<&'static str> {
    t.iter().map(|t| t.as_str()).collect()
}

fn stale(e: crate::ports::StoreError) -> ServiceError {
    match e {
        crate::ports::StoreError::Conflict(m) => ServiceError::conflict("stale_version", m),
        other => other.into(),
    }
}

impl Services {
    /// The events one outbox item makes: one per bill it is about.
    pub async fn events_for(&self, item: &OutboxItem) -> ServiceResult<Vec<NewEvent>> {
        let created_at = rfc3339_beijing(self.now());
        let mut out = Vec::new();
        match item.topic.as_str() {
            "payment.succeeded" => {
                let Ok(OutboxPayload::PaymentSucceeded {
                    session_id,
                    out_trade_no,
                    provider,
                    provider_txn_id,
                    amount,
                    paid_at_ms,
                    payments,
                    ..
                }) = serde_json::from_str::<OutboxPayload>(&item.payload)
                else {
                    return Err(ServiceError::Internal(anyhow::anyhow!("outbox {}: unreadable payload", item.id)));
                };
                for PaidPayable { bill_id, amount: share, receipt_no, .. } in &payments {
                    let Some(bill_id) = bill_id else { continue };
                    let Ok(bid) = BillId::parse(bill_id) else { continue };
                    let Some(b) = self.store.issued_bill_by_id(&bid).await? else { continue };
                    let id = event_id(item.id.as_str(), EventTopic::BillPaid, bid.as_str());
                    let body = json!({
                        "id": id,
                        "type": EventTopic::BillPaid.as_str(),
                        "created_at": created_at,
                        "data": {
                            "bill": bill_json(&b),
                            "paid_amount": share.plain(),
                            "receipt_no": receipt_no,
                            "payment": {
                                "session_id": session_id.as_str(),
                                "out_trade_no": out_trade_no.as_str(),
                                "provider": provider.as_str(),
                                "provider_txn_id": provider_txn_id,
                                "amount": amount.plain(),
                                "paid_at": rfc3339_beijing(paid_at_ms),
                                "bills": payments.len(),
                            },
                        },
                    });
                    out.push(NewEvent {
                        id,
                        topic: EventTopic::BillPaid,
                        aggregate_id: bid.to_string(),
                        body: body.to_string(),
                    });
                }
            }
            "bill.voided" => {
                let Ok(OutboxPayload::BillVoided { bill_id, reason, voided_by, voided_at_ms }) =
                    serde_json::from_str::<OutboxPayload>(&item.payload)
                else {
                    return Err(ServiceError::Internal(anyhow::anyhow!("outbox {}: unreadable payload", item.id)));
                };
                if let Some(b) = self.store.issued_bill_by_id(&bill_id).await? {
                    let id = event_id(item.id.as_str(), EventTopic::BillVoided, bill_id.as_str());
                    let body = json!({
                        "id": id,
                        "type": EventTopic::BillVoided.as_str(),
                        "created_at": created_at,
                        "data": {
                            "bill": bill_json(&b),
                            "void": { "reason": reason, "voided_by": voided_by, "voided_at": rfc3339_beijing(voided_at_ms) },
                        },
                    });
                    out.push(NewEvent {
                        id,
                        topic: EventTopic::BillVoided,
                        aggregate_id: bill_id.to_string(),
                        body: body.to_string(),
                    });
                }
            }
            "bill.partially_refunded" | "bill.refunded" => {
                let Ok(OutboxPayload::BillRefunded {
                    bill_id,
                    refund_id,
                    refund_no,
                    amount,
                    refunded_total,
                    reason,
                    provider,
                    manual,
                    refunded_at_ms,
                    red_receipt_no,
                    receipt_no,
                }) = serde_json::from_str::<OutboxPayload>(&item.payload)
                else {
                    return Err(ServiceError::Internal(anyhow::anyhow!("outbox {}: unreadable payload", item.id)));
                };
                let topic = if item.topic == "bill.refunded" {
                    EventTopic::BillRefunded
                } else {
                    EventTopic::BillPartiallyRefunded
                };
                if let Some(b) = self.store.issued_bill_by_id(&bill_id).await? {
                    let id = event_id(item.id.as_str(), topic, bill_id.as_str());
                    let body = json!({
                        "id": id,
                        "type": topic.as_str(),
                        "created_at": created_at,
                        "data": {
                            "bill": bill_json(&b),
                            "refund": {
                                "refund_id": refund_id.as_str(),
                                "refund_no": refund_no,
                                "amount": amount.plain(),
                                "refunded_total": refunded_total.plain(),
                                "reason": reason.as_str(),
                                "provider": provider.as_str(),
                                "channel": if manual { "manual" } else { "original" },
                                "refunded_at": rfc3339_beijing(refunded_at_ms),
                                "red_receipt_no": red_receipt_no,
                                "original_receipt_no": receipt_no,
                            },
                        },
                    });
                    out.push(NewEvent { id, topic, aggregate_id: bill_id.to_string(), body: body.to_string() });
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// Delivers due events, several at once: each signed now, posted with a 5-second timeout,
    /// logged, and moved on (delivered on 2xx, else retried on the schedule or failed).
    /// A backlog is drained batch after batch for up to [`DRAIN_MS`] before the other workers
    /// get their turn.
    pub async fn webhook_step(&self) -> ServiceResult<usize> {
        let started = self.now();
        let mut delivered = 0;
        loop {
            let tasks = self.store.claim_deliveries(self.now(), LEASE_MS, DELIVERY_BATCH).await?;
            let full = tasks.len() as i64 == DELIVERY_BATCH;
            if tasks.is_empty() {
                break;
            }
            let results = futures_join(tasks.into_iter().map(|t| {
                let s = self.clone();
                async move { s.deliver(t).await }
            }))
            .await;
            for r in results {
                match r {
                    Ok(true) => delivered += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "an event delivery could not be recorded; it will be retried"),
                }
            }
            if !full || self.now() - started > DRAIN_MS {
                break;
            }
        }
        Ok(delivered)
    }

    async fn deliver(&self, t: DeliveryTask) -> ServiceResult<bool> {
        let attempt = t.attempts + 1;
        let secret = self.secrets.open(&secret_aad(&t.endpoint_id), &t.secret)?;
        let secret = String::from_utf8(secret).map_err(|e| ServiceError::Internal(e.into()))?;
        let started = self.now();
        let body = t.body.into_bytes();
        let req = OutboundRequest {
            url: t.url.clone(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                (headers::EVENT_ID.into(), t.event_id.clone()),
                (headers::EVENT_TYPE.into(), t.topic.as_str().into()),
                (headers::ATTEMPT.into(), attempt.to_string()),
                (headers::SIGNATURE.into(), signature_header(&secret, started / 1000, &body)),
            ],
            body,
            timeout_ms: ATTEMPT_TIMEOUT_MS,
        };
        let result = self.webhooks.post(req).await;
        let now = self.now();
        let (ok, record) = match result {
            OutboundResult::Answered { status, excerpt } => (
                (200..300).contains(&status),
                AttemptRecord {
                    started_at_ms: started,
                    duration_ms: now - started,
                    status_code: Some(status),
                    error: (!(200..300).contains(&status)).then(|| format!("HTTP {status}")),
                    response_excerpt: Some(excerpt),
                },
            ),
            OutboundResult::NoAnswer(why) => (
                false,
                AttemptRecord {
                    started_at_ms: started,
                    duration_ms: now - started,
                    status_code: None,
                    error: Some(why),
                    response_excerpt: None,
                },
            ),
        };
        let next = if ok {
            DeliveryNext::Delivered
        } else {
            match next_attempt_at(t.round_attempts + 1, now) {
                Some(at) => DeliveryNext::RetryAt(at),
                None => DeliveryNext::Failed,
            }
        };
        let moved = self.store.record_attempt(&t.id, attempt, &record, next, now).await?;
        match next {
            DeliveryNext::Delivered => {
                tracing::info!(delivery = %t.id, event = %t.event_id, attempt, "event delivered")
            }
            DeliveryNext::RetryAt(at) => tracing::info!(
                delivery = %t.id, event = %t.event_id, attempt, error = record.error.as_deref().unwrap_or(""),
                retry_in_ms = at - now, "event delivery failed; will retry"
            ),
            DeliveryNext::Failed => tracing::warn!(
                delivery = %t.id, event = %t.event_id, attempt, error = record.error.as_deref().unwrap_or(""),
                "event delivery failed for the last time; re-send it from the delivery log"
            ),
        }
        Ok(moved && ok)
    }
}

/// Runs the futures concurrently and collects their results in order.
async fn futures_join<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => tracing::error!(error = %e, "an event delivery task panicked"),
        }
    }
    out
}
