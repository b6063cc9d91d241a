//! Background work (O4), as steps the server runs in a loop and tests call directly. Every step
//! claims its items under a lease in the database, so it is safe after a restart and with
//! several instances on one PostgreSQL.

use super::{ServiceError, ServiceResult, Services};
use crate::checkout::apply::{ApplyResult, VerifiedPayment};
use crate::checkout::{EndReason, ProviderRefundStatus};
use crate::ids::{ChannelId, OutTradeNo, SessionId};
use crate::payments::{Outcome, RefundState, SessionStatus, TradeState};
use crate::ports::{RefundProgress, RefundRequest, SessionTask};
use crate::time::Millis;

const LEASE_MS: Millis = 60_000;
/// How many claimed refunds are with their providers at once.
const REFUND_CALLS_AT_ONCE: usize = 8;
/// How long past its expiry a session waits for its provider to answer before it ends unasked
/// (the bills must not stay locked by an unreachable provider).
pub const EXPIRY_GRACE_MS: Millis = 120_000;

/// What a status query found, in the words the counter shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncAnswer {
    /// Paid: the payment is booked now.
    Paid,
    /// The payer scanned and has not paid yet.
    Waiting,
    /// The provider has no trade yet: the payer has not scanned.
    NotScanned,
    /// The provider closed the trade; the session ended.
    Closed,
    /// The session was not pending (already paid, cancelled, expired).
    NotPending,
    /// The provider did not answer clearly (timeout, error); nothing changed.
    NoAnswer,
}

impl SyncAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncAnswer::Paid => "paid",
            SyncAnswer::Waiting => "waiting",
            SyncAnswer::NotScanned => "not_scanned",
            SyncAnswer::Closed => "closed",
            SyncAnswer::NotPending => "not_pending",
            SyncAnswer::NoAnswer => "no_answer",
        }
    }
}

/// What one round of the workers did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkReport {
    pub expired: usize,
    pub closed: usize,
    pub synced_paid: usize,
    pub refunds: usize,
    pub published: usize,
    /// Events delivered to the hospital's systems.
    pub delivered: usize,
    pub redriven: usize,
    /// Rejected notifications deleted at the end of their retention.
    pub purged: usize,
}

impl WorkReport {
    pub fn total(&self) -> usize {
        self.expired
            + self.closed
            + self.synced_paid
            + self.refunds
            + self.published
            + self.delivered
            + self.redriven
            + self.purged
    }
}

impl Services {
    /// One round of every worker.
    pub async fn work_once(&self) -> ServiceResult<WorkReport> {
        Ok(WorkReport {
            expired: self.expire_step().await?,
            closed: self.close_step().await?,
            synced_paid: self.sync_step().await?,
            refunds: self.refund_step().await?,
            published: self.outbox_step().await?,
            delivered: self.webhook_step().await?,
            redriven: self.redrive_step().await?,
            purged: self.purge_step().await?,
        })
    }

    /// C4: sessions past their expiry end; their bills are free again. The provider is asked
    /// first (issue 13 #5): a payment made before the expiry but not yet notified is booked as
    /// paid, never refunded as late; an unpaid trade is closed at the provider before the session
    /// ends, so nobody can pay it afterwards. Only when the provider cannot be asked for
    /// [`EXPIRY_GRACE_MS`] (or never gave a QR) does the session end unasked, its close queued.
    pub async fn expire_step(&self) -> ServiceResult<usize> {
        let mut n = 0;
        for t in self.store.sessions_due_to_expire(self.now(), 50).await? {
            match self.expire_task(&t).await {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(session = %t.session_id, error = %e, "expiry: the provider could not be asked; will retry")
                }
            }
        }
        let forced = self.store.expire_sessions(self.now() - EXPIRY_GRACE_MS, 100).await?;
        for id in &forced {
            tracing::warn!(session = %id, "session expired without the provider's word; its close is queued");
            self.events.publish(id, SessionStatus::Expired).await;
        }
        Ok(n + forced.len())
    }

    /// One session at its expiry: paid → booked; closed there (its own timeout) → ended;
    /// waiting → closed at the provider, then ended. `true` when the session ended unpaid.
    async fn expire_task(&self, t: &SessionTask) -> ServiceResult<bool> {
        let (channel, gateway) = self.gateways.channel(&t.channel_id).await?;
        let q = gateway.query_payment(&t.out_trade_no).await;
        let closed_there = match &q.outcome {
            Outcome::Success(st) => match st.state {
                TradeState::Paid | TradeState::Refunded => {
                    tracing::info!(session = %t.session_id, "paid before its expiry: booked, not expired");
                    self.apply_queried(&channel.id, channel.provider, st).await?;
                    return Ok(false);
                }
                TradeState::Closed | TradeState::Failed => true,
                TradeState::Waiting | TradeState::NotFound => false,
            },
            Outcome::Failure(e) if e.is_not_found() => false,
            // no clear answer: asked again next round, until the grace runs out
            _ => return Ok(false),
        };
        let mut queue_close = false;
        if !closed_there {
            let c = gateway.close_payment(&t.out_trade_no).await;
            if !c.outcome.is_success() {
                // not closed: paid meanwhile? Otherwise the close worker keeps trying.
                let again = gateway.query_payment(&t.out_trade_no).await;
                if let Outcome::Success(st) = &again.outcome {
                    if matches!(st.state, TradeState::Paid | TradeState::Refunded) {
                        self.apply_queried(&channel.id, channel.provider, st).await?;
                        return Ok(false);
                    }
                }
                queue_close = true;
            }
        }
        // closed there at its expiry time is the provider's own timeout: expired, as the QR says
        if self.store.end_session(&t.session_id, EndReason::Expired, self.now(), queue_close).await?.is_ok() {
            tracing::info!(session = %t.session_id, closed_there, "session expired");
            self.events.publish(&t.session_id, SessionStatus::Expired).await;
            return Ok(true);
        }
        Ok(false)
    }

    /// Closes ended sessions' trades at the provider. A trade that turns out to be paid is
    /// applied (as late money) instead.
    pub async fn close_step(&self) -> ServiceResult<usize> {
        let tasks = self.store.claim_closes(self.now(), LEASE_MS, 50).await?;
        let mut n = 0;
        for t in tasks {
            match self.close_task(&t).await {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(session = %t.session_id, error = %e, "closing at the provider failed; will retry")
                }
            }
        }
        Ok(n)
    }

    pub(crate) async fn close_one(&self, session_id: &SessionId) -> ServiceResult<bool> {
        let v = self.store.session(session_id).await?.ok_or(ServiceError::NotFound("payment session"))?;
        let task = SessionTask {
            session_id: v.id.clone(),
            channel_id: v.channel_id.clone(),
            out_trade_no: v.out_trade_no.to_string(),
            status: v.status,
            attempts: 0,
        };
        self.close_task(&task).await
    }

    async fn close_task(&self, t: &SessionTask) -> ServiceResult<bool> {
        let (channel, gateway) = self.gateways.channel(&t.channel_id).await?;
        let call = gateway.close_payment(&t.out_trade_no).await;
        if call.outcome.is_success() {
            self.store.mark_closed_at_provider(&t.session_id).await?;
            return Ok(true);
        }
        // Could not close: find out why. Paid → apply; closed or unknown there → done.
        let q = gateway.query_payment(&t.out_trade_no).await;
        match q.outcome {
            Outcome::Success(st) => match st.state {
                TradeState::Paid | TradeState::Refunded => {
                    self.apply_queried(&channel.id, channel.provider, &st).await?;
                    self.store.mark_closed_at_provider(&t.session_id).await?;
                    Ok(true)
                }
                TradeState::Closed | TradeState::NotFound | TradeState::Failed => {
                    self.store.mark_closed_at_provider(&t.session_id).await?;
                    Ok(true)
                }
                TradeState::Waiting => Ok(false),
            },
            _ => Ok(false),
        }
    }

    async fn apply_queried(
        &self,
        channel_id: &ChannelId,
        provider: crate::payments::Provider,
        st: &crate::payments::TradeStatus,
    ) -> ServiceResult<bool> {
        let (Some(txn), Some(amount)) = (&st.provider_txn_id, st.amount) else {
            tracing::warn!(out_trade_no = %st.out_trade_no, "a paid trade without transaction id or amount");
            return Ok(false);
        };
        let Ok(out_trade_no) = OutTradeNo::parse(&st.out_trade_no) else {
            tracing::warn!(out_trade_no = %st.out_trade_no, "a queried trade with a malformed order number");
            return Ok(false);
        };
        let p = VerifiedPayment {
            event_id: format!("query:{txn}"),
            notification_id: None,
            provider,
            channel_id: channel_id.clone(),
            out_trade_no,
            provider_txn_id: txn.clone(),
            amount,
            paid_at_ms: st.paid_at_ms.unwrap_or_else(|| self.now()),
            received_at_ms: self.now(),
        };
        let r = self.apply_payment_queued(p.clone()).await?;
        self.after_apply(&p, &r).await;
        Ok(matches!(r, ApplyResult::Paid { .. }))
    }

    /// G5 (补单): pending sessions are queried at the provider, so a lost notification never
    /// leaves a paid bill unpaid.
    pub async fn sync_step(&self) -> ServiceResult<usize> {
        let tasks = self.store.claim_syncs(self.now(), LEASE_MS, 50).await?;
        let mut paid = 0;
        for t in tasks {
            match self.sync_task(&t).await {
                Ok(SyncAnswer::Paid) => paid += 1,
                Ok(_) => {}
                Err(e) => tracing::warn!(session = %t.session_id, error = %e, "status sync failed; will retry"),
            }
        }
        Ok(paid)
    }

    /// Queries one session now (the cashier's "check payment" and the sync worker), and says
    /// what the provider answered.
    pub async fn sync_session(&self, session_id: &str) -> ServiceResult<SyncAnswer> {
        let v = self.checkout_session(session_id).await?;
        if v.status != SessionStatus::Pending {
            return Ok(SyncAnswer::NotPending);
        }
        let task = SessionTask {
            session_id: v.id.clone(),
            channel_id: v.channel_id.clone(),
            out_trade_no: v.out_trade_no.to_string(),
            status: v.status,
            attempts: 0,
        };
        self.sync_task(&task).await
    }

    async fn sync_task(&self, t: &SessionTask) -> ServiceResult<SyncAnswer> {
        let (channel, gateway) = self.gateways.channel(&t.channel_id).await?;
        let q = gateway.query_payment(&t.out_trade_no).await;
        match q.outcome {
            Outcome::Success(st) => match st.state {
                TradeState::Paid | TradeState::Refunded => {
                    Ok(if self.apply_queried(&channel.id, channel.provider, &st).await? {
                        SyncAnswer::Paid
                    } else {
                        SyncAnswer::NotPending
                    })
                }
                TradeState::Closed | TradeState::Failed => {
                    // Closed at the provider (the payer cancelled, the card was declined too
                    // often, its own expiry): the QR cannot be paid any more.
                    if self
                        .store
                        .end_session(&t.session_id, EndReason::ClosedAtProvider, self.now(), false)
                        .await?
                        .is_ok()
                    {
                        tracing::info!(session = %t.session_id, state = %st.provider_state, "closed at the provider");
                        self.events.publish(&t.session_id, SessionStatus::Expired).await;
                    }
                    Ok(SyncAnswer::Closed)
                }
                TradeState::Waiting => Ok(SyncAnswer::Waiting),
                // the payer has not scanned yet (Alipay creates the trade on the first scan)
                TradeState::NotFound => Ok(SyncAnswer::NotScanned),
            },
            Outcome::Failure(e) if e.is_not_found() => Ok(SyncAnswer::NotScanned),
            other => {
                tracing::debug!(session = %t.session_id, outcome = ?other, "status query inconclusive");
                Ok(SyncAnswer::NoAnswer)
            }
        }
    }

    /// Drives queued refunds (automatic refunds of unallocated money, and decided ones): the
    /// refunds claimed in one pass (up to 50) go to their providers [`REFUND_CALLS_AT_ONCE`] at a time (each
    /// is its own leased task with its own compare-and-set, so their order does not matter).
    pub async fn refund_step(&self) -> ServiceResult<usize> {
        use futures::StreamExt;
        let tasks = self.store.claim_refunds(self.now(), LEASE_MS, 50).await?;
        let results: Vec<ServiceResult<bool>> = futures::stream::iter(tasks)
            .map(|t| self.refund_one(t))
            .buffer_unordered(REFUND_CALLS_AT_ONCE)
            .collect()
            .await;
        let mut done = 0;
        for r in results {
            if r? {
                done += 1;
            }
        }
        Ok(done)
    }

    /// One claimed refund: asks its provider and records what came of it; true when it succeeded.
    async fn refund_one(&self, t: crate::ports::RefundTask) -> ServiceResult<bool> {
        let (_, gateway) = match self.gateways.channel(&t.channel_id).await {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(refund = %t.id, error = %e, "refund channel unavailable");
                return Ok(false);
            }
        };
        let call = if t.status == ProviderRefundStatus::Processing {
            gateway.query_refund(&t.out_trade_no, &t.out_refund_no).await
        } else {
            gateway
                .refund(&RefundRequest {
                    out_trade_no: t.out_trade_no.clone(),
                    out_refund_no: t.out_refund_no.clone(),
                    amount: t.amount,
                    total: t.total,
                    reason: t.reason.clone(),
                    notify_url: Some(format!("{}/notify/{}", self.config.public_url, gateway.provider().as_str())),
                })
                .await
        };
        let backoff = 30_000 * (1 << t.attempts.clamp(0, 6));
        let progress = match call.outcome {
            Outcome::Success(rs) | Outcome::Waiting(Some(rs)) => match rs.state {
                RefundState::Succeeded => RefundProgress::Succeeded { provider_refund_id: rs.provider_refund_id },
                RefundState::Processing => RefundProgress::Processing,
                RefundState::Failed => RefundProgress::Failed { error: rs.provider_state },
                RefundState::NotFound => RefundProgress::Retry {
                    error: "the provider does not know this refund yet".into(),
                    next_attempt_at_ms: self.now() + backoff,
                },
            },
            Outcome::Waiting(None) => RefundProgress::Processing,
            Outcome::Failure(e) if t.attempts >= 5 => {
                RefundProgress::Failed { error: format!("{} {}", e.code, e.sub_code.unwrap_or_default()) }
            }
            Outcome::Failure(e) => RefundProgress::Retry {
                error: format!("{} {} {}", e.code, e.sub_code.unwrap_or_default(), e.message),
                next_attempt_at_ms: self.now() + backoff,
            },
            Outcome::Unknown(reason) => {
                RefundProgress::Retry { error: reason, next_attempt_at_ms: self.now() + backoff }
            }
        };
        let succeeded = matches!(progress, RefundProgress::Succeeded { .. });
        if succeeded {
            tracing::info!(refund = %t.id, amount = %t.amount, "refund succeeded");
        }
        self.store.refund_progress(&t.id, &progress, self.now(), self.ids.as_ref()).await?;
        Ok(succeeded)
    }

    /// Publishes outbox events: each becomes the events its consumers get (one per bill, for
    /// the HIS's endpoints) and their deliveries, in one transaction with marking it published.
    /// An item whose events cannot be made stays pending and is tried again after its lease.
    pub async fn outbox_step(&self) -> ServiceResult<usize> {
        let items = self.store.claim_outbox(self.now(), LEASE_MS, 100).await?;
        if items.is_empty() {
            return Ok(0);
        }
        let wanted: Vec<crate::webhooks::EventTopic> =
            self.store.list_endpoints().await?.into_iter().filter(|e| e.enabled).flat_map(|e| e.topics).collect();
        let mut n = 0;
        for i in &items {
            let wants = crate::webhooks::EventTopic::for_outbox_topic(&i.topic).is_some_and(|t| wanted.contains(&t));
            let made = if wants { self.events_for(i).await } else { Ok(Vec::new()) };
            let events = match made {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(outbox = %i.id, topic = %i.topic, error = %e, "outbox event could not be turned into deliveries");
                    continue;
                }
            };
            let made = self.store.publish_events(&i.id, &events, self.ids.as_ref(), self.now()).await?;
            tracing::debug!(topic = %i.topic, aggregate = %i.aggregate_id, events = events.len(), deliveries = made, "event published");
            n += 1;
        }
        Ok(n)
    }

    /// Notifications stored but never finished (the process died mid-way) are processed again,
    /// each at most [`REDRIVE_MAX_ATTEMPTS`] times: one that still cannot be finished is given up
    /// to `failed` (the raw request stays stored for a person to look at) and no longer holds
    /// up the ones behind it.
    pub async fn redrive_step(&self) -> ServiceResult<usize> {
        let stuck = self
            .store
            .unfinished_notifications(self.now() - self.config.redrive_after_ms, REDRIVE_MAX_ATTEMPTS, 50)
            .await?;
        let mut n = 0;
        for s in &stuck {
            let Some(attempt) = self.store.count_redrive_attempt(&s.id).await? else { continue };
            let outcome = if attempt >= REDRIVE_MAX_ATTEMPTS {
                self.give_up_notification(s, attempt).await
            } else {
                self.redrive_notification(s).await
            };
            match outcome {
                Ok(status) => {
                    tracing::info!(notification = %s.id, status = %status, attempt, "re-drove a stored notification");
                    n += 1;
                }
                Err(e) => tracing::warn!(notification = %s.id, attempt, error = %e, "re-driving failed"),
            }
        }
        Ok(n)
    }
}

impl Services {
    /// Rejected notifications are kept for [`ServiceConfig::rejected_notification_retention_ms`]
    /// (someone may want to see what was sent) and then deleted, 500 at a time (issue 13 #7).
    ///
    /// [`ServiceConfig::rejected_notification_retention_ms`]: super::ServiceConfig
    pub async fn purge_step(&self) -> ServiceResult<usize> {
        let before = self.now() - self.config.rejected_notification_retention_ms;
        let n = self.store.purge_rejected_notifications(before, 500).await?;
        if n > 0 {
            tracing::info!(deleted = n, "rejected notifications past their retention deleted");
        }
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// How many times re-drive tries one stored notification before giving it up to `failed`.
pub const REDRIVE_MAX_ATTEMPTS: i64 = 5;
