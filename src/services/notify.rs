//! Provider notifications (G4), as one use case: store the raw request durably, find its channel,
//! verify it (signature, account, time window, decryption, currency), apply the event exactly once,
//! and record what came of it. The provider is told "received" only after the effect is durably
//! committed. The HTTP endpoint and the re-drive worker both run [`Services::receive_notification`]
//! / [`Services::redrive_notification`]; what a provider needs kept and how it must be answered
//! comes from that provider's gateway module (through [`crate::ports::Gateways`]).

use super::Services;
use crate::checkout::apply::{ApplyResult, VerifiedPayment};
use crate::ids::{NotificationId, OutTradeNo};
use crate::money::Money;
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
                let (progress, amount) = match &event.kind {
                    EventKind::RefundSucceeded { amount, .. } => {
                        (RefundProgress::Succeeded { provider_refund_id: None }, Some(*amount))
                    }
                    EventKind::RefundFailed { reason, .. } => (RefundProgress::Failed { error: reason.clone() }, None),
                    _ => unreachable!("matched above"),
                };
                let said = RefundReport { provider, out_trade_no: event.kind.out_trade_no(), out_refund_no, amount };
                match self.refund_reported(&said, &event.event_id, &n.id, event.kind.name(), &progress, now).await {
                    Ok((s, why)) => {
                        result.status = s;
                        result.reason = why;
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

    /// A provider's word on one of our refunds. It must name our refund, for the trade we
    /// refunded, by the provider we asked, and (when paid) for the amount we asked: anything
    /// else is recorded and changes nothing.
    async fn refund_reported(
        &self,
        said: &RefundReport<'_>,
        event_id: &str,
        notification_id: &NotificationId,
        event_name: &str,
        progress: &RefundProgress,
        now: Millis,
    ) -> Result<(NotificationStatus, Option<String>), StoreError> {
        let fresh = self.store.record_provider_event(said.provider, event_id, notification_id, event_name, now).await?;
        let repeat = if fresh { NotificationStatus::Ignored } else { NotificationStatus::Duplicate };
        let Some(ours) = self.store.refund_ref(said.out_refund_no).await? else {
            return Ok((repeat, Some("unknown_refund: no refund of ours has this number".into())));
        };
        if let Some(m) = report_mismatch(&ours, said) {
            tracing::warn!(
                out_refund_no = said.out_refund_no,
                reason = m,
                "a refund report that does not match our refund; nothing changed"
            );
            return Ok((
                repeat,
                Some(format!("{m}: the report does not match refund {}; nothing changed", said.out_refund_no)),
            ));
        }
        self.store.refund_progress(&ours.id, progress, now, self.ids.as_ref()).await?;
        Ok((if fresh { NotificationStatus::Applied } else { NotificationStatus::Duplicate }, None))
    }
}

/// Why a refund report is not about our refund as we asked for it, if it is not.
fn report_mismatch(ours: &crate::ports::RefundRef, said: &RefundReport<'_>) -> Option<&'static str> {
    if ours.provider != said.provider {
        Some("provider_mismatch")
    } else if ours.out_trade_no != said.out_trade_no {
        Some("trade_mismatch")
    } else if said.amount.is_some_and(|a| a != ours.amount) {
        Some("amount_mismatch")
    } else {
        None
    }
}

/// What a provider said about a refund.
struct RefundReport<'a> {
    provider: Provider,
    out_trade_no: &'a str,
    out_refund_no: &'a str,
    /// The amount a success report names.
    amount: Option<Money>,
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

#[cfg(test)]
mod refund_report_tests {
    use super::*;

    #[test]
    fn a_report_must_match_the_refund_we_asked_for() {
        let ours = crate::ports::RefundRef {
            id: crate::ids::RefundId::from_u128(7),
            out_trade_no: "CP1".into(),
            amount: Money::parse("10.00").unwrap(),
            provider: Provider::WechatPay,
        };
        let said = |provider, trade, amount: Option<&str>| RefundReport {
            provider,
            out_trade_no: trade,
            out_refund_no: "RF1",
            amount: amount.map(|a| Money::parse(a).unwrap()),
        };
        assert_eq!(report_mismatch(&ours, &said(Provider::WechatPay, "CP1", Some("10.00"))), None);
        assert_eq!(report_mismatch(&ours, &said(Provider::WechatPay, "CP1", None)), None, "a failure names no amount");
        assert_eq!(report_mismatch(&ours, &said(Provider::WechatPay, "CP1", Some("10.01"))), Some("amount_mismatch"));
        assert_eq!(report_mismatch(&ours, &said(Provider::WechatPay, "CP2", Some("10.00"))), Some("trade_mismatch"));
        assert_eq!(report_mismatch(&ours, &said(Provider::Alipay, "CP1", Some("10.00"))), Some("provider_mismatch"));
    }
}
