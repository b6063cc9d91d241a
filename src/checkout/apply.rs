//! The payment rules (C3, C4), in one pure place.
//!
//! [`PaymentRules::book`] takes what the store read under its locks — the session of the
//! reported order (a [`SessionSnapshot`]) and the provider transaction as booked before, if it
//! was (a [`BookedTxn`]) — and a verified provider report ([`VerifiedPayment`]), decides what the money is
//! (paid, late, amount mismatch, duplicate report, unknown order) and returns a [`Booking`]: every
//! row to write, already validated (balanced postings, status transitions allowed by the domain's
//! status types, one payment per payable adding up to the session's total). The store writes a
//! booking and nothing else: the set-based batch writer and the one-by-one path write the same
//! value, so the rules exist once.
//!
//! Pure: ids come from the caller's generator, the instant from the caller's clock.

use super::payable::{FrozenPayable, PayableId, PayableStatus};
use super::{EndReason, ExceptionKind, ExceptionStatus, LatePaymentPolicy};
use crate::ids::{
    ChannelId, ExceptionId, JournalEntryId, NotificationId, OutTradeNo, OutboxId, PaymentId, RefundId, SessionId,
};
use crate::ledger::{EntryKind, LedgerError, Postings};
use crate::money::Money;
use crate::payments::{NotificationStatus, Provider, SessionStatus};
use crate::receipts::{receipt_year, ReceiptBook, ReceiptSeries};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What the store knows about the session an order number names, read under its row lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSnapshot {
    pub session_id: SessionId,
    pub channel_id: ChannelId,
    pub status: SessionStatus,
    pub total: Money,
    /// The payables the session still holds (all of them while it is pending, none after).
    pub payables: Vec<FrozenPayable>,
}

impl SessionSnapshot {
    /// The session as it is after `booking` is written (used to decide the next report of the
    /// same batch without reading the database again).
    pub fn after(&self, booking: &Booking) -> SessionSnapshot {
        let mut next = self.clone();
        if let Some(paid) = &booking.session_paid {
            if paid.session_id == self.session_id {
                next.status = paid.to;
                next.payables.clear();
            }
        }
        next
    }
}

/// A provider transaction as it was booked: the order and the amount it was reported for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookedTxn {
    pub out_trade_no: OutTradeNo,
    pub amount: Money,
}

impl BookedTxn {
    /// The transaction as `p` reports it.
    pub fn of(p: &VerifiedPayment) -> BookedTxn {
        BookedTxn { out_trade_no: p.out_trade_no.clone(), amount: p.amount }
    }
}

/// A provider's verified report that a trade was paid: from a notification (signature, account,
/// time window and currency already checked by the gateway) or from a status query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPayment {
    /// The provider's event id, or `query:<txn id>` for status sync.
    pub event_id: String,
    pub notification_id: Option<NotificationId>,
    pub provider: Provider,
    pub channel_id: ChannelId,
    pub out_trade_no: OutTradeNo,
    pub provider_txn_id: String,
    pub amount: Money,
    pub paid_at_ms: Millis,
    /// When we learnt of it (the clock of the service that received it).
    pub received_at_ms: Millis,
}

/// What became of a reported payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyResult {
    /// The session is paid: one payment per payable, each payable paid, a journal entry.
    Paid { session_id: SessionId, payables: usize },
    /// This provider transaction was booked before: nothing changed.
    Duplicate,
    /// Money arrived for a session that could not take it; kept as unallocated.
    LatePayment { session_id: SessionId, exception_id: ExceptionId, refund_queued: bool },
    /// The amount differs from the session's: recorded, the session stays unpaid.
    AmountMismatch { session_id: SessionId, exception_id: ExceptionId },
    /// No session has this order number on this channel.
    UnknownOrder,
    /// The provider transaction was booked before for another order or amount: nothing is
    /// booked, an exception tells a person (the session stays as it was).
    TxnConflict { session_id: SessionId, exception_id: ExceptionId },
}

impl ApplyResult {
    /// What the notification row says afterwards.
    pub fn notification_status(&self) -> NotificationStatus {
        match self {
            ApplyResult::Paid { .. }
            | ApplyResult::LatePayment { .. }
            | ApplyResult::AmountMismatch { .. }
            | ApplyResult::TxnConflict { .. } => NotificationStatus::Applied,
            ApplyResult::Duplicate => NotificationStatus::Duplicate,
            ApplyResult::UnknownOrder => NotificationStatus::Rejected,
        }
    }

    /// The provider may stop retrying: the report is durably accounted for.
    pub fn accepted(&self) -> bool {
        !matches!(self, ApplyResult::UnknownOrder)
    }
}

/// The session's compare-and-set `from → to`, with what it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPaid {
    pub session_id: SessionId,
    pub from: SessionStatus,
    pub to: SessionStatus,
    pub paid_at_ms: Millis,
    pub amount: Money,
    pub provider_txn_id: String,
}

/// A payable's compare-and-set `from → to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayableTransition {
    pub payable: PayableId,
    pub from: PayableStatus,
    pub to: PayableStatus,
    pub paid_at_ms: Option<Millis>,
}

/// One payment row: the money allocated to one payable, with its receipt number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub id: PaymentId,
    pub session_id: SessionId,
    pub payable: PayableId,
    pub amount: Money,
    pub provider: Provider,
    pub provider_txn_id: String,
    pub journal_entry_id: JournalEntryId,
    pub receipt_no: String,
    pub paid_at_ms: Millis,
}

/// A balanced journal entry to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub id: JournalEntryId,
    pub kind: EntryKind,
    pub occurred_at_ms: Millis,
    pub ref_type: &'static str,
    pub ref_id: String,
    pub memo: String,
    pub postings: Postings,
}

/// How a provider transaction was accounted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Allocated,
    Unallocated,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Allocated => "allocated",
            Disposition::Unallocated => "unallocated",
        }
    }
}

/// The provider transaction, booked once (the database's primary key says so too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTxnRecord {
    pub provider: Provider,
    pub provider_txn_id: String,
    pub out_trade_no: OutTradeNo,
    pub session_id: SessionId,
    pub amount: Money,
    pub disposition: Disposition,
    pub journal_entry_id: JournalEntryId,
}

/// A payment exception (C4) to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewException {
    pub id: ExceptionId,
    pub kind: ExceptionKind,
    pub session_id: Option<SessionId>,
    pub provider: Provider,
    pub channel_id: ChannelId,
    pub out_trade_no: OutTradeNo,
    pub provider_txn_id: String,
    pub amount: Money,
    pub expected: Option<Money>,
    pub status: ExceptionStatus,
    pub detail: String,
}

impl NewException {
    /// An exception about report `p` for session `s`, `expected` being what it should have been.
    fn for_report(
        id: ExceptionId,
        kind: ExceptionKind,
        s: &SessionSnapshot,
        p: &VerifiedPayment,
        expected: Money,
        status: ExceptionStatus,
        detail: String,
    ) -> NewException {
        NewException {
            id,
            kind,
            session_id: Some(s.session_id.clone()),
            provider: p.provider,
            channel_id: p.channel_id.clone(),
            out_trade_no: p.out_trade_no.clone(),
            provider_txn_id: p.provider_txn_id.clone(),
            amount: p.amount,
            expected: Some(expected),
            status,
            detail,
        }
    }
}

/// A refund to queue at the provider (driven by the refund worker until it is final).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    pub id: RefundId,
    /// Ours, stable across retries: `RF` + the refund id's random part.
    pub out_refund_no: String,
    pub provider: Provider,
    pub channel_id: ChannelId,
    pub out_trade_no: OutTradeNo,
    /// The trade's total (WeChat Pay requires it).
    pub total: Money,
    pub amount: Money,
    pub reason: String,
    pub exception_id: Option<ExceptionId>,
}

impl NewRefund {
    pub fn new(
        id: RefundId,
        provider: Provider,
        channel_id: ChannelId,
        out_trade_no: OutTradeNo,
        total: Money,
        amount: Money,
        reason: String,
        exception_id: Option<ExceptionId>,
    ) -> NewRefund {
        let out_refund_no = crate::refunds::refund_no(&id);
        NewRefund { id, out_refund_no, provider, channel_id, out_trade_no, total, amount, reason, exception_id }
    }
}

/// What an event's consumers are told (the outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OutboxPayload {
    PaymentSucceeded {
        session_id: SessionId,
        out_trade_no: OutTradeNo,
        provider: Provider,
        provider_txn_id: String,
        amount: Money,
        paid_at_ms: Millis,
        payments: Vec<PaidPayable>,
    },
    PaymentUnallocated {
        session_id: SessionId,
        kind: ExceptionKind,
        amount: Money,
        provider_txn_id: String,
    },
    /// An unpaid bill was voided (topic `bill.voided`).
    BillVoided {
        bill_id: crate::ids::BillId,
        reason: String,
        voided_by: String,
        voided_at_ms: Millis,
    },
    /// A refund of a bill went back to the payer (topic `bill.partially_refunded` or
    /// `bill.refunded`, by what is left).
    BillRefunded {
        bill_id: crate::ids::BillId,
        refund_id: RefundId,
        refund_no: String,
        amount: Money,
        /// Everything refunded of the bill so far, this refund included.
        refunded_total: Money,
        reason: crate::refunds::RefundReason,
        provider: Provider,
        /// Paid back by hand (cash or bank transfer), not through the channel.
        manual: bool,
        refunded_at_ms: Millis,
        /// The refund's negative (red) receipt (F4); absent in events written before F4.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        red_receipt_no: Option<String>,
        /// The receipt of the payment it reverses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        receipt_no: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaidPayable {
    pub payable_kind: super::payable::PayableKind,
    pub payable_id: String,
    /// Set when the payable is a bill (what the HIS knows it by).
    pub bill_id: Option<String>,
    pub amount: Money,
    pub receipt_no: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: OutboxId,
    pub topic: &'static str,
    pub aggregate_id: String,
    pub payload: OutboxPayload,
}

/// The provider event, recorded once per (provider, event id) with what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub provider: Provider,
    pub event_id: String,
    pub notification_id: Option<NotificationId>,
    pub outcome: &'static str,
}

/// The stored notification's result, written in the same transaction as the effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationFinish {
    pub id: NotificationId,
    pub status: NotificationStatus,
    pub reason: Option<String>,
    pub channel_id: ChannelId,
    pub event_id: String,
    pub out_trade_no: OutTradeNo,
}

/// Everything one reported payment writes, in one transaction. Empty for an unknown order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub result: ApplyResult,
    pub at_ms: Millis,
    pub event: Option<EventRecord>,
    pub notification: Option<NotificationFinish>,
    pub session_paid: Option<SessionPaid>,
    /// The session whose payables are released (no longer held) by this booking.
    pub release_payables_of: Option<SessionId>,
    pub payables: Vec<PayableTransition>,
    pub payments: Vec<PaymentRecord>,
    pub entry: Option<JournalEntry>,
    pub provider_txn: Option<ProviderTxnRecord>,
    pub exception: Option<NewException>,
    pub refund: Option<NewRefund>,
    pub outbox: Vec<OutboxEvent>,
}

impl Booking {
    fn empty(result: ApplyResult, at_ms: Millis) -> Booking {
        Booking {
            result,
            at_ms,
            event: None,
            notification: None,
            session_paid: None,
            release_payables_of: None,
            payables: Vec::new(),
            payments: Vec::new(),
            entry: None,
            provider_txn: None,
            exception: None,
            refund: None,
            outbox: Vec::new(),
        }
    }

    /// Nothing to write (an unknown order: the caller records the rejection).
    pub fn is_empty(&self) -> bool {
        self.event.is_none() && self.entry.is_none() && self.session_paid.is_none()
    }

    /// The receipts this booking issues: one per payment, numbered in its booking year.
    pub fn receipts_wanted(&self) -> impl Iterator<Item = (ReceiptSeries, i32)> + '_ {
        self.payments.iter().map(|_| (ReceiptSeries::Payment, receipt_year(self.at_ms)))
    }

    /// Gives every payment its receipt number from numbers the store reserved, and tells the
    /// outbox event the same numbers. Numbers a booking twice only if asked twice.
    pub fn number_receipts(&mut self, book: &mut ReceiptBook) -> Result<(), ApplyError> {
        let mut numbers = HashMap::with_capacity(self.payments.len());
        for p in &mut self.payments {
            let no = book
                .take(ReceiptSeries::Payment, self.at_ms)
                .ok_or_else(|| ApplyError::Transition(format!("no receipt number reserved for payment {}", p.id)))?;
            p.receipt_no = no.clone();
            numbers.insert(p.payable.to_string(), no);
        }
        for e in &mut self.outbox {
            if let OutboxPayload::PaymentSucceeded { payments, .. } = &mut e.payload {
                for x in payments {
                    if let Some(no) = numbers.get(&x.payable_id) {
                        x.receipt_no = no.clone();
                    }
                }
            }
        }
        Ok(())
    }

    /// The set-based batch writer's ordinary case: a pending session paid in full.
    pub fn is_plain_payment(&self) -> bool {
        matches!(self.result, ApplyResult::Paid { .. })
    }
}

/// The rules could not produce a booking: the stored data contradicts itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("session {session}: its payables add up to {allocated}, not the session total {total}")]
    PayablesDoNotAddUp { session: SessionId, allocated: Money, total: Money },
    #[error("session {0} holds no payables")]
    NoPayables(SessionId),
    #[error("a status change the domain does not allow: {0}")]
    Transition(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The rules and the business settings they depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentRules {
    /// What becomes of money that arrives too late (C4).
    pub late_policy: LatePaymentPolicy,
}

impl PaymentRules {
    /// Decides a reported payment and returns everything to write. `session` is the session the
    /// order number names (`None`: no such order); `booked` is the provider transaction as it
    /// was accounted for before, if it was.
    pub fn book(
        &self,
        session: Option<&SessionSnapshot>,
        booked: Option<&BookedTxn>,
        p: &VerifiedPayment,
        ids: &mut dyn FnMut() -> u128,
    ) -> Result<Booking, ApplyError> {
        let at = p.received_at_ms;
        // An order on another channel is not ours to apply: as unknown as no order at all.
        let Some(s) = session.filter(|s| s.channel_id == p.channel_id) else {
            return Ok(Booking::empty(ApplyResult::UnknownOrder, at));
        };
        match booked {
            // the same report again: a duplicate, nothing changes
            Some(b) if *b == BookedTxn::of(p) => {
                let mut b = Booking::empty(ApplyResult::Duplicate, at);
                b.event = Some(self.event(p, "duplicate"));
                b.notification = self.finish(p, NotificationStatus::Duplicate, None);
                return Ok(b);
            }
            // the same transaction id for another order or amount: never dropped silently
            Some(b) => return Ok(self.conflict(s, b, p, ids)),
            None => {}
        }
        if s.status != SessionStatus::Pending {
            let detail = format!(
                "payment of {} arrived after the session became {}; the money is kept as unallocated",
                p.amount.display(),
                s.status.as_str()
            );
            let auto = self.late_policy == LatePaymentPolicy::AutoRefund;
            return self.unallocated(s, p, ids, ExceptionKind::LatePayment, detail, auto);
        }
        if p.amount != s.total {
            let detail = format!(
                "the provider reports {} paid but the session is for {}; the session stays unpaid",
                p.amount.display(),
                s.total.display()
            );
            return self.unallocated(s, p, ids, ExceptionKind::AmountMismatch, detail, false);
        }
        self.paid(s, p, ids)
    }

    /// A transaction id booked before, reported for another order or amount (a provider fault,
    /// or a sandbox whose ids restarted): no money is booked — the id can be booked once — and
    /// an open exception names both reports for a person to settle with the provider.
    fn conflict(
        &self,
        s: &SessionSnapshot,
        booked: &BookedTxn,
        p: &VerifiedPayment,
        ids: &mut dyn FnMut() -> u128,
    ) -> Booking {
        let exception_id = ExceptionId::from_u128(ids());
        let detail = format!(
            "provider transaction {} was booked for order {} ({}); now it is reported for order {} ({}); \
             nothing was booked for this report and the session stays {}",
            p.provider_txn_id,
            booked.out_trade_no,
            booked.amount.display(),
            p.out_trade_no,
            p.amount.display(),
            s.status.as_str()
        );
        let mut b = Booking::empty(
            ApplyResult::TxnConflict { session_id: s.session_id.clone(), exception_id: exception_id.clone() },
            p.received_at_ms,
        );
        b.event = Some(self.event(p, "txn_conflict"));
        b.notification = self.finish(p, NotificationStatus::Applied, Some("txn_conflict: recorded as an exception"));
        b.exception = Some(NewException::for_report(
            exception_id,
            ExceptionKind::TxnConflict,
            s,
            p,
            booked.amount,
            ExceptionStatus::Open,
            detail,
        ));
        b
    }

    fn event(&self, p: &VerifiedPayment, outcome: &'static str) -> EventRecord {
        EventRecord {
            provider: p.provider,
            event_id: p.event_id.clone(),
            notification_id: p.notification_id.clone(),
            outcome,
        }
    }

    fn finish(
        &self,
        p: &VerifiedPayment,
        status: NotificationStatus,
        reason: Option<&str>,
    ) -> Option<NotificationFinish> {
        p.notification_id.clone().map(|id| NotificationFinish {
            id,
            status,
            reason: reason.map(str::to_string),
            channel_id: p.channel_id.clone(),
            event_id: p.event_id.clone(),
            out_trade_no: p.out_trade_no.clone(),
        })
    }

    /// The ordinary case: a pending session paid in full.
    fn paid(
        &self,
        s: &SessionSnapshot,
        p: &VerifiedPayment,
        ids: &mut dyn FnMut() -> u128,
    ) -> Result<Booking, ApplyError> {
        if s.payables.is_empty() {
            return Err(ApplyError::NoPayables(s.session_id.clone()));
        }
        let allocated = Money::sum(s.payables.iter().map(|f| f.amount)).map_err(|_| LedgerError::Overflow)?;
        if allocated != s.total {
            return Err(ApplyError::PayablesDoNotAddUp { session: s.session_id.clone(), allocated, total: s.total });
        }
        let to = SessionStatus::Paid;
        if !s.status.can_become(to) {
            return Err(ApplyError::Transition(format!("session {} → {}", s.status, to)));
        }
        let allocations: Vec<(PayableId, Money)> = s.payables.iter().map(|f| (f.id.clone(), f.amount)).collect();
        let entry_id = JournalEntryId::from_u128(ids());
        let entry = JournalEntry {
            id: entry_id.clone(),
            kind: EntryKind::Payment,
            occurred_at_ms: p.paid_at_ms,
            ref_type: "session",
            ref_id: s.session_id.to_string(),
            memo: format!("{} {} · {} bills", p.provider.as_str(), p.provider_txn_id, allocations.len()),
            postings: Postings::payment(p.provider, &allocations)?,
        };
        let mut payments = Vec::with_capacity(allocations.len());
        let mut transitions = Vec::with_capacity(allocations.len());
        for (payable, amount) in &allocations {
            let id = PaymentId::from_u128(ids());
            payments.push(PaymentRecord {
                id,
                session_id: s.session_id.clone(),
                payable: payable.clone(),
                amount: *amount,
                provider: p.provider,
                provider_txn_id: p.provider_txn_id.clone(),
                journal_entry_id: entry_id.clone(),
                // numbered by the store when it writes the booking (F4: gapless per year)
                receipt_no: String::new(),
                paid_at_ms: p.paid_at_ms,
            });
            let from = PayableStatus::Paying;
            let to = from.transition(PayableStatus::Paid).map_err(|e| ApplyError::Transition(e.to_string()))?;
            transitions.push(PayableTransition { payable: payable.clone(), from, to, paid_at_ms: Some(p.paid_at_ms) });
        }
        let paid_list = payments
            .iter()
            .map(|x| PaidPayable {
                payable_kind: x.payable.kind(),
                payable_id: x.payable.to_string(),
                bill_id: x.payable.bill().map(|b| b.to_string()),
                amount: x.amount,
                receipt_no: x.receipt_no.clone(),
            })
            .collect();
        let mut b = Booking::empty(
            ApplyResult::Paid { session_id: s.session_id.clone(), payables: payments.len() },
            p.received_at_ms,
        );
        b.event = Some(self.event(p, "applied"));
        b.notification = self.finish(p, NotificationStatus::Applied, None);
        b.session_paid = Some(SessionPaid {
            session_id: s.session_id.clone(),
            from: s.status,
            to,
            paid_at_ms: p.paid_at_ms,
            amount: p.amount,
            provider_txn_id: p.provider_txn_id.clone(),
        });
        b.release_payables_of = Some(s.session_id.clone());
        b.payables = transitions;
        b.payments = payments;
        b.entry = Some(entry);
        b.provider_txn = Some(ProviderTxnRecord {
            provider: p.provider,
            provider_txn_id: p.provider_txn_id.clone(),
            out_trade_no: p.out_trade_no.clone(),
            session_id: s.session_id.clone(),
            amount: p.amount,
            disposition: Disposition::Allocated,
            journal_entry_id: entry_id,
        });
        b.outbox.push(OutboxEvent {
            id: OutboxId::from_u128(ids()),
            topic: "payment.succeeded",
            aggregate_id: s.session_id.to_string(),
            payload: OutboxPayload::PaymentSucceeded {
                session_id: s.session_id.clone(),
                out_trade_no: p.out_trade_no.clone(),
                provider: p.provider,
                provider_txn_id: p.provider_txn_id.clone(),
                amount: p.amount,
                paid_at_ms: p.paid_at_ms,
                payments: paid_list,
            },
        });
        Ok(b)
    }

    /// Money that cannot be allocated: booked to unallocated receipts, an exception opened,
    /// and — when asked — a refund through the channel queued.
    fn unallocated(
        &self,
        s: &SessionSnapshot,
        p: &VerifiedPayment,
        ids: &mut dyn FnMut() -> u128,
        kind: ExceptionKind,
        detail: String,
        auto_refund: bool,
    ) -> Result<Booking, ApplyError> {
        let entry_id = JournalEntryId::from_u128(ids());
        let entry = JournalEntry {
            id: entry_id.clone(),
            kind: EntryKind::UnallocatedReceipt,
            occurred_at_ms: p.paid_at_ms,
            ref_type: "session",
            ref_id: s.session_id.to_string(),
            memo: format!("{}: {} {}", kind.as_str(), p.provider.as_str(), p.provider_txn_id),
            postings: Postings::unallocated_receipt(p.provider, p.amount)?,
        };
        let exception_id = ExceptionId::from_u128(ids());
        let refund = auto_refund.then(|| {
            NewRefund::new(
                RefundId::from_u128(ids()),
                p.provider,
                p.channel_id.clone(),
                p.out_trade_no.clone(),
                p.amount,
                p.amount,
                kind.as_str().to_string(),
                Some(exception_id.clone()),
            )
        });
        let (result, outcome, reason) = match kind {
            ExceptionKind::AmountMismatch => (
                ApplyResult::AmountMismatch { session_id: s.session_id.clone(), exception_id: exception_id.clone() },
                "amount_mismatch",
                "amount_mismatch: recorded as an exception",
            ),
            _ => (
                ApplyResult::LatePayment {
                    session_id: s.session_id.clone(),
                    exception_id: exception_id.clone(),
                    refund_queued: auto_refund,
                },
                "late_payment",
                "late_payment: recorded as unallocated",
            ),
        };
        let mut b = Booking::empty(result, p.received_at_ms);
        b.event = Some(self.event(p, outcome));
        b.notification = self.finish(p, NotificationStatus::Applied, Some(reason));
        b.entry = Some(entry);
        b.provider_txn = Some(ProviderTxnRecord {
            provider: p.provider,
            provider_txn_id: p.provider_txn_id.clone(),
            out_trade_no: p.out_trade_no.clone(),
            session_id: s.session_id.clone(),
            amount: p.amount,
            disposition: Disposition::Unallocated,
            journal_entry_id: entry_id,
        });
        let status = if auto_refund { ExceptionStatus::RefundPending } else { ExceptionStatus::Held };
        b.exception = Some(NewException::for_report(exception_id, kind, s, p, s.total, status, detail));
        b.refund = refund;
        b.outbox.push(OutboxEvent {
            id: OutboxId::from_u128(ids()),
            topic: "payment.unallocated",
            aggregate_id: s.session_id.to_string(),
            payload: OutboxPayload::PaymentUnallocated {
                session_id: s.session_id.clone(),
                kind,
                amount: p.amount,
                provider_txn_id: p.provider_txn_id.clone(),
            },
        });
        Ok(b)
    }
}

/// A session that stops being pending without money: its status change, and its payables'
/// (each `paying → unpaid`). The store writes it as compare-and-sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    pub from: SessionStatus,
    pub to: SessionStatus,
    pub payables_from: PayableStatus,
    pub payables_to: PayableStatus,
}

impl SessionEnd {
    pub fn for_reason(reason: EndReason) -> SessionEnd {
        let from = SessionStatus::Pending;
        let to = reason.status();
        debug_assert!(from.can_become(to));
        let payables_from = PayableStatus::Paying;
        let payables_to = PayableStatus::Unpaid;
        debug_assert!(payables_from.can_become(payables_to));
        SessionEnd { from, to, payables_from, payables_to }
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
