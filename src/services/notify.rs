//! Provider notifications (G4): the raw request is stored before this runs; here it is matched
//! to a channel, verified (signature, account, time window, decryption, currency), turned into a
//! neutral event and applied exactly once. The provider is told "received" only after the
//! effect is durably committed.

use super::Services;
use crate::payments::{EventKind, Provider, Rejection};
use crate::ports::{
    ApplyResult, NotificationResult, NotifyReply, PaymentApplication, RawNotification, RefundProgress,
    StoredNotification,
};

/// What to answer when no channel could even be found (no client to ask): each provider's
/// "not received" shape, so it retries.
pub fn failure_reply(provider: Provider) -> NotifyReply {
    match provider {
        Provider::Alipay => {
            NotifyReply { status: 200, content_type: "text/plain; charset=utf-8", body: b"failure".to_vec() }
        }
        Provider::WechatPay => NotifyReply {
            status: 500,
            content_type: "application/json",
            body: r#"{"code":"FAIL","message":"失败"}"#.as_bytes().to_vec(),
        },
        Provider::Bank => {
            NotifyReply { status: 500, content_type: "application/json", body: br#"{"code":"FAIL"}"#.to_vec() }
        }
    }
}

/// The outcome of processing one notification.
pub struct Processed {
    pub reply: NotifyReply,
    pub result: NotificationResult,
    /// The result was already written in the transaction that applied the payment.
    pub recorded: bool,
}

impl Services {
    fn result(&self, status: &'static str, reason: Option<String>) -> NotificationResult {
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
    #[tracing::instrument(skip_all, fields(provider = %provider, notification = %notification_id))]
    pub async fn process_notification(
        &self,
        provider: Provider,
        raw: &RawNotification,
        notification_id: &str,
    ) -> Processed {
        let (channel, gateway) = match self.gateways.for_notification(provider, raw).await {
            Ok(x) => x,
            Err(rej) => {
                tracing::warn!(reason = %rej, "notification refused: no channel");
                return Processed {
                    reply: failure_reply(provider),
                    result: self.result("rejected", Some(format!("{}: {rej}", rej.code()))),
                    recorded: false,
                };
            }
        };
        let event = match gateway.verify_notification(raw, self.now()) {
            Ok(e) => e,
            Err(rej) => {
                tracing::warn!(reason = %rej, channel = %channel.id, "notification refused");
                let mut r = self.result("rejected", Some(format!("{}: {rej}", rej.code())));
                r.channel_id = Some(channel.id.clone());
                return Processed { reply: gateway.notify_reply(false), result: r, recorded: false };
            }
        };
        let mut result = self.result("applied", None);
        result.channel_id = Some(channel.id.clone());
        result.event_id = Some(event.event_id.clone());
        result.out_trade_no = Some(event.kind.out_trade_no().to_string());

        let mut recorded = false;
        let accepted = match &event.kind {
            EventKind::PaymentSucceeded { out_trade_no, provider_txn_id, amount, paid_at_ms, .. } => {
                let p = PaymentApplication {
                    event_id: event.event_id.clone(),
                    notification_id: Some(notification_id.to_string()),
                    provider,
                    channel_id: channel.id.clone(),
                    out_trade_no: out_trade_no.clone(),
                    provider_txn_id: provider_txn_id.clone(),
                    amount: *amount,
                    paid_at_ms: paid_at_ms.unwrap_or_else(|| self.now()),
                    now_ms: self.now(),
                    late_policy: self.config.late_payment_policy,
                };
                match self.apply_payment_queued(p.clone()).await {
                    Ok(r) => {
                        self.after_apply(&p, &r).await;
                        recorded = r != ApplyResult::UnknownOrder;
                        match r {
                            ApplyResult::Duplicate => {
                                result.status = "duplicate";
                                true
                            }
                            ApplyResult::UnknownOrder => {
                                let rej = Rejection::UnknownOrder(out_trade_no.clone());
                                result.status = "rejected";
                                result.reason = Some(format!("{}: {rej}", rej.code()));
                                false
                            }
                            ApplyResult::AmountMismatch { .. } => {
                                result.reason = Some("amount_mismatch: recorded as an exception".into());
                                true
                            }
                            ApplyResult::LatePayment { .. } => {
                                result.reason = Some("late_payment: recorded as unallocated".into());
                                true
                            }
                            ApplyResult::Paid { .. } => true,
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "applying a payment failed; the provider will retry");
                        result.status = "failed";
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
                let outcome = async {
                    let fresh = self
                        .store
                        .record_provider_event(
                            provider,
                            &event.event_id,
                            notification_id,
                            event.kind.name(),
                            self.now(),
                        )
                        .await?;
                    if let Some(id) = self.store.refund_by_out_no(out_refund_no).await? {
                        self.store.refund_progress(&id, &progress, self.now(), self.ids.as_ref()).await?;
                        Ok::<_, crate::ports::StoreError>(if fresh { "applied" } else { "duplicate" })
                    } else {
                        Ok(if fresh { "ignored" } else { "duplicate" })
                    }
                }
                .await;
                match outcome {
                    Ok(s) => {
                        result.status = s;
                        true
                    }
                    Err(e) => {
                        result.status = "failed";
                        result.reason = Some(e.to_string());
                        false
                    }
                }
            }
            EventKind::PaymentClosed { .. } | EventKind::Informational { .. } => {
                match self
                    .store
                    .record_provider_event(provider, &event.event_id, notification_id, event.kind.name(), self.now())
                    .await
                {
                    Ok(fresh) => {
                        result.status = if fresh { "ignored" } else { "duplicate" };
                        true
                    }
                    Err(e) => {
                        result.status = "failed";
                        result.reason = Some(e.to_string());
                        false
                    }
                }
            }
        };
        Processed { reply: gateway.notify_reply(accepted), result, recorded }
    }

    /// Re-runs a notification that was stored but never finished (the process died between
    /// storing and answering). Returns the status recorded.
    pub async fn redrive_notification(&self, n: &StoredNotification) -> anyhow::Result<&'static str> {
        let headers: Vec<(String, String)> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&n.headers)
                .map(|m| m.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
        let raw = RawNotification { headers, content_type: n.content_type.clone(), body: n.body.clone() };
        let processed = self.process_notification(n.provider, &raw, &n.id).await;
        // A signature checked late may be past its time window; the stored reason says so.
        if !processed.recorded {
            self.store.finish_notification(&n.id, &processed.result).await?;
        }
        Ok(processed.result.status)
    }
}
