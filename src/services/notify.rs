//! Provider notifications (G4), as one use case: store the raw request durably, find its channel,
//! verify it (signature, account, time window, decryption, currency), apply the event exactly once,
//! and record what came of it. The provider is told "received" only after the effect is durably
//! committed. The HTTP endpoint and the re-drive worker both run [`Services::receive_notification`]
//! / [`Services::redrive_notification`]; what a provider needs kept and how it must be answered
//! comes from that provider's gateway module (through [`crate::ports::Gateways`]).

use super::Services;
use crate::checkout::apply::{ApplyResult, VerifiedPayment};
use crate::ids::{NotificationId, OutTradeNo};
use crate::payments::{EventKind, NotificationStatus, Provider, Rejection, SessionStatus};
use crate::ports::{
    NewNotification, NotificationResult, NotifyReply, RawNotification, RefundProgress, StoreError, StoredNotification,
};
use crate::time::Millis;

/// A notification as it reached an endpoint.
#[derive(Debug, Clone)]
pub struct IncomingNotification {
    pub provider: Provider,
    pub remote_addr: String,
    /// Every request header, names lower-case; only the provider's kept headers are stored.
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What the endpoint answers and reports.
#[derive(Debug, Clone)]
pub struct NotificationOutcome {
    pub reply: NotifyReply,
    /// For metrics: the recorded status, or `store_failed` when the notification could not even
    /// be stored (the provider retries).
    pub outcome: &'static str,
}

/// The result of verifying and applying one stored notification.
struct Processed {
    reply: NotifyReply,
    result: NotificationResult,
    /// The result was already written in the transaction that applied the payment.
    recorded: bool,
}

impl Services {
    /// G4, the whole use case for a notification that just arrived.
    #[tracing::instrument(skip_all, fields(provider = %n.provider))]
    pub async fn receive_notification(&self, n: IncomingNotification) -> NotificationOutcome {
        let profile = self.gateways.notification_profile(n.provider);
        let now = self.now();
        // A source that has had its budget of rejected notifications stored must prove the next
        // one genuine before it is written (issue 13 #7); a genuine one goes on as usual.
        let reserved = self.notify_budget.reserve(&n.remote_addr, now);
        if !reserved && !self.verifies(&n, &profile, now).await {
            tracing::debug!(source = %n.remote_addr, "an unverified notification from a source over its budget, not stored");
            let mut reply = profile.failure_reply;
            reply.status = 429;
            return NotificationOutcome { reply, outcome: "unstored" };
        }
        let kept: Vec<(String, String)> =
            n.headers.iter().filter(|(k, _)| profile.kept_headers.contains(&k.as_str())).cloned().collect();
        let stored = StoredNotification {
            id: self.ids.new_id::<NotificationId>(),
            provider: n.provider,
            received_at_ms: now,
            remote_addr: n.remote_addr.clone(),
            content_type: n.content_type,
            headers: headers_json(&kept),
            body: n.body,
            status: NotificationStatus::Received,
        };
        // Nothing is lost: store before anything else. If that fails, the provider retries.
        if let Err(e) = self.store_notification(new_notification(&stored)).await {
            tracing::error!(error = %e, "could not store a notification");
            if reserved {
                self.notify_budget.refund(&n.remote_addr, now);
            }
            return NotificationOutcome { reply: profile.failure_reply, outcome: "store_failed" };
        }
        let raw =
            RawNotification { headers: kept, content_type: stored.content_type.clone(), body: stored.body.clone() };
        let outcome = self.handle_stored(&stored, &raw).await;
        // only a rejected one keeps its token spent
        if reserved && outcome.outcome != NotificationStatus::Rejected.as_str() {
            self.notify_budget.refund(&n.remote_addr, now);
        }
        outcome
    }

    /// Would this notification pass verification (its channel found, its signature, account and
    /// time window good)? Reads and writes nothing.
    async fn verifies(
        &self,
        n: &IncomingNotification,
        profile: &crate::ports::NotificationProfile,
        now: Millis,
    ) -> bool {
        let headers: Vec<(String, String)> =
            n.headers.iter().filter(|(k, _)| profile.kept_headers.contains(&k.as_str())).cloned().collect();
        let raw = RawNotification { headers, content_type: n.content_type.clone(), body: n.body.clone() };
        match self.gateways.for_notification(n.provider, &raw, now).await {
            Ok((_, gateway)) => gateway.verify_notification(&raw, now).is_ok(),
            Err(_) => false,
        }
    }

    /// Re-runs a notification that was stored but never finished (the process died between
    /// storing and answering). Returns the status recorded.
    pub async fn redrive_notification(&self, n: &StoredNotification) -> anyhow::Result<NotificationStatus> {
        let headers: Vec<(String, String)> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&n.headers)
                .map(|m| m.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
        let raw = RawNotification { headers, content_type: n.content_type.clone(), body: n.body.clone() };
        let processed = self.process(n, &raw).await;
        // A signature checked late may be past its time window; the stored reason says so.
        if !processed.recorded {
            self.store.finish_notification(&n.id, &processed.result).await?;
        }
        Ok(processed.result.status)
    }

    /// The last re-drive attempt at a notification that could not be finished: recorded as
    /// `failed` with why, so it stops being re-driven (the provider's own retries still apply it).
    pub(super) async fn give_up_notification(
        &self,
        n: &StoredNotification,
        attempts: i64,
    ) -> anyhow::Result<NotificationStatus> {
        let r = self.result(
            NotificationStatus::Failed,
            Some(format!("redrive_gave_up: not finished after {attempts} re-drive attempts")),
        );
        self.store.finish_notification(&n.id, &r).await?;
        Ok(r.status)
    }

    /// Verify → apply → record, for a notification already stored.
    async fn handle_stored(&self, n: &StoredNotification, raw: &RawNotification) -> NotificationOutcome {
        let processed = self.process(n, raw).await;
        if !processed.recorded {
            if let Err(e) = self.store.finish_notification(&n.id, &processed.result).await {
                // The notification stays `received`; the re-drive worker will finish it.
                tracing::error!(error = %e, notification = %n.id, "could not record a notification's outcome");
            }
        }
        NotificationOutcome { reply: processed.reply, outcome: processed.result.status.as_str() }
    }

    fn result(&self, status: NotificationStatus, reason: Option<String>) -> NotificationResult {
        NotificationResult {
            status,
            reason,
            channel_id: None,
            event_id: None,
            out_trade_no: None,
            processed_at_ms: self.now(),
        }
    }

    /// Verifies and applies one stored notification.
    #[tracing::instrument(skip_all, fields(notification = %n.id))]
    async fn process(&self, n: &StoredNotification, raw: &RawNotification) -> Processed {
        let provider = n.provider;
        // Time windows (WeChat, bank) are checked against when the request reached us, as stored
        // durably before anything else: a notification re-driven after an outage is as fresh as
        // it was on arrival.
        let now = n.received_at_ms;
        let (channel, gateway) = match self.gateways.for_notification(provider, raw, now).await {
            Ok(x) => x,
            Err(rej) => {
                tracing::warn!(reason = %rej, "notification refused: no channel");
                return Processed {
                    reply: self.gateways.notification_profile(provider).failure_reply,
                    result: self.result(NotificationStatus::Rejected, Some(format!("{}: {rej}", rej.code()))),
                    recorded: false,
                };
            }
        };
        let event = match gateway.verify_notification(raw, now) {
            Ok(e) => e,
            Err(rej) => {
                tracing::warn!(reason = %rej, channel = %channel.id, "notification refused");
                let mut r = self.result(NotificationStatus::Rejected, Some(format!("{}: {rej}", rej.code())));
                r.channel_id = Some(channel.id.clone());
                return Processed { reply: gateway.notify_reply(false), result: r, recorded: false };
            }
        };
        let mut result = self.result(NotificationStatus::Applied, None);
        result.channel_id = Some(channel.id.clone());
        result.event_id = Some(event.event_id.clone());
        result.out_trade_no = Some(event.kind.out_trade_no().to_string());

        let mut recorded = false;
        let accepted = match &event.kind {
            EventKind::PaymentSucceeded { out_trade_no, provider_txn_id, amount, paid_at_ms, .. } => {
                let Ok(order) = OutTradeNo::parse(out_trade_no) else {
                    let rej = Rejection::UnknownOrder(out_trade_no.chars().take(64).collect());
                    result.status = NotificationStatus::Rejected;
                    result.reason = Some(format!("{}: {rej}", rej.code()));
                    return Processed { reply: gateway.notify_reply(false), result, recorded: false };
                };
                let p = VerifiedPayment {
                    event_id: event.event_id.clone(),
                    notification_id: Some(n.id.clone()),
                    provider,
                    channel_id: channel.id.clone(),
                    out_trade_no: order,
                    provider_txn_id: provider_txn_id.clone(),
                    amount: *amount,
                    paid_at_ms: paid_at_ms.unwrap_or(now),
                    received_at_ms: now,
                };
                match self.apply_payment_queued(p.clone()).await {
                    Ok(r) => {
                        self.after_apply(&p, &r).await;
                        recorded = r.accepted();
                        result.status = r.notification_status();
                        match r {
                            ApplyResult::UnknownOrder => {
                                let rej = Rejection::UnknownOrder(out_trade_no.clone());
                                result.reason = Some(format!("{}: {rej}", rej.code()));
                            }
                            ApplyResult::AmountMismatch { .. } => {
                                result.reason = Some("amount_mismatch: recorded as an exception".into());
                            }
                            ApplyResult::LatePayment { .. } => {
                                result.reason = Some("late_payment: recorded as unallocated".into());
                            }
                            ApplyResult::TxnConflict { .. } => {
                                result.reason = Some("txn_conflict: recorded as an exception".into());
                            }
                            ApplyResult::Paid { .. } | ApplyResult::Duplicate => {}
                        }
                        r.accepted()
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "applying a payment failed; the provider will retry");
                        result.status = NotificationStatus::Failed;
                        result.reason = Some(e.to_string());
                        false
                    }
                }
            }
            EventKind::RefundSucceeded { out_refund_no, .. } | EventKind::RefundFailed { out_refund_no, .. } => {
                let progress = match &event.kind {
                    EventKind::RefundSucceeded { .. } => RefundProgress::Succeeded { provider_refund_id: None },
                    EventKind::RefundFailed { reason, .. } => RefundProgress::Failed { error: reason.clone() },
                    _ => unreachable!("matched above"),
                };
                match self
                    .refund_reported(provider, &event.event_id, &n.id, event.kind.name(), out_refund_no, &progress, now)
                    .await
                {
                    Ok(s) => {
                        result.status = s;
                        true
                    }
                    Err(e) => {
                        result.status = NotificationStatus::Failed;
                        result.reason = Some(e.to_string());
                        false
                    }
                }
            }
            EventKind::PaymentAttemptFailed { out_trade_no, code } => {
                // the note first (idempotent, never older over newer), then the event's record:
                // a crash between them re-drives the notification and writes the same note
                let noted = match self.store.note_payer_attempt(out_trade_no, code, now).await {
                    Ok(s) => s,
                    Err(e) => {
                        result.status = NotificationStatus::Failed;
                        result.reason = Some(e.to_string());
                        return Processed { reply: gateway.notify_reply(false), result, recorded };
                    }
                };
                match self.store.record_provider_event(provider, &event.event_id, &n.id, event.kind.name(), now).await {
                    Ok(fresh) => {
                        result.status = match (fresh, &noted) {
                            (false, _) => NotificationStatus::Duplicate,
                            (true, Some(_)) => NotificationStatus::Applied,
                            (true, None) => NotificationStatus::Ignored,
                        };
                        if let Some(session_id) = &noted {
                            tracing::info!(session = %session_id, code = %code, "the payer's attempt failed at the provider");
                            self.events.publish(session_id, SessionStatus::Pending).await;
                        }
                        true
                    }
                    Err(e) => {
                        result.status = NotificationStatus::Failed;
                        result.reason = Some(e.to_string());
                        false
                    }
                }
            }
            EventKind::PaymentClosed { .. } | EventKind::Informational { .. } => {
                match self.store.record_provider_event(provider, &event.event_id, &n.id, event.kind.name(), now).await {
                    Ok(fresh) => {
                        result.status = if fresh { NotificationStatus::Ignored } else { NotificationStatus::Duplicate };
                        true
                    }
                    Err(e) => {
                        result.status = NotificationStatus::Failed;
                        result.reason = Some(e.to_string());
                        false
                    }
                }
            }
        };
        Processed { reply: gateway.notify_reply(accepted), result, recorded }
    }

    /// A provider's word on one of our refunds.
    async fn refund_reported(
        &self,
        provider: Provider,
        event_id: &str,
        notification_id: &NotificationId,
        event_name: &str,
        out_refund_no: &str,
        progress: &RefundProgress,
        now: Millis,
    ) -> Result<NotificationStatus, StoreError> {
        let fresh = self.store.record_provider_event(provider, event_id, notification_id, event_name, now).await?;
        if let Some(id) = self.store.refund_by_out_no(out_refund_no).await? {
            self.store.refund_progress(&id, progress, now, self.ids.as_ref()).await?;
            Ok(if fresh { NotificationStatus::Applied } else { NotificationStatus::Duplicate })
        } else {
            Ok(if fresh { NotificationStatus::Ignored } else { NotificationStatus::Duplicate })
        }
    }
}

fn headers_json(kept: &[(String, String)]) -> String {
    serde_json::Value::Object(kept.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect())
        .to_string()
}

fn new_notification(s: &StoredNotification) -> NewNotification {
    NewNotification {
        id: s.id.clone(),
        provider: s.provider,
        received_at_ms: s.received_at_ms,
        remote_addr: s.remote_addr.clone(),
        content_type: s.content_type.clone(),
        headers: s.headers.clone(),
        body: s.body.clone(),
    }
}
