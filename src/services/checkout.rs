//! Checkout sessions (C1–C5): open a session over 1..N payables, hand the payer a QR code, apply
//! the provider's verified success exactly once, cancel, refresh.

use super::auth::Actor;
use super::{ServiceError, ServiceResult, Services};
use crate::auth::CurrentUser;
use crate::checkout::apply::{ApplyResult, VerifiedPayment};
use crate::checkout::counter::{CounterRecord, CounterTender};
use crate::checkout::payable::PayableId;
use crate::checkout::{CounterRequest, EndReason, ExceptionView, SessionRequest, SessionView};
use crate::ids::{ExceptionId, OutTradeNo, PatientId, SessionId};
use crate::payments::{Outcome, SessionStatus};
use crate::ports::{
    CounterRefusal, CreateOutcome, CreatePayment, ExceptionDecision, GatewayError, IdempotencyKey, NewSession,
    SessionRefusal,
};

impl From<GatewayError> for ServiceError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::NoChannel(p) => ServiceError::Conflict {
                code: "no_channel",
                message: format!("no enabled {} channel is configured; ask an administrator", p.label_en()),
                detail: None,
            },
            GatewayError::UnknownChannel(c) => {
                ServiceError::invalid("unknown_channel", format!("channel {c} not found"))
            }
            GatewayError::Internal(e) => ServiceError::Internal(e),
        }
    }
}

fn refusal(r: SessionRefusal) -> ServiceError {
    match r {
        SessionRefusal::UnknownPatient => ServiceError::NotFound("patient"),
        SessionRefusal::UnknownPayable(b) => {
            ServiceError::Invalid { code: "unknown_bill", message: format!("bill {b} does not exist") }
        }
        SessionRefusal::OtherPatient(b) => ServiceError::Invalid {
            code: "bill_of_other_patient",
            message: format!("bill {b} belongs to another patient"),
        },
        SessionRefusal::NotPayable { payable, status } => ServiceError::Conflict {
            code: "bill_not_payable",
            message: format!("bill {payable} is {status} and cannot be paid"),
            detail: Some(serde_json::json!({ "bill_id": payable.as_str(), "status": status })),
        },
        SessionRefusal::InActiveSession { payable, session_id } => ServiceError::Conflict {
            code: "bill_in_active_session",
            message: format!(
                "bill {payable} is already in payment session {}",
                session_id.as_ref().map(|s| s.as_str()).unwrap_or("")
            ),
            detail: Some(serde_json::json!({ "bill_id": payable.as_str(), "session_id": session_id })),
        },
        SessionRefusal::IdempotencyReused { session_id } => ServiceError::Conflict {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used for a different request".into(),
            detail: Some(serde_json::json!({ "session_id": session_id })),
        },
        SessionRefusal::ReplacedNotPending { status } => ServiceError::Conflict {
            code: "session_not_pending",
            message: format!("the session is already {status}"),
            detail: Some(serde_json::json!({ "status": status.as_str() })),
        },
    }
}

fn parse_session_id(id: &str) -> ServiceResult<SessionId> {
    SessionId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))
}

impl Services {
    /// Opens a checkout session and asks the provider for the QR. With an idempotency key, a
    /// retry of the same request returns the same session (`created` false).
    #[tracing::instrument(skip_all, fields(patient = %req.patient_id, bills = req.bill_ids.len(), method = %req.method))]
    pub async fn create_checkout(
        &self,
        caller: &CurrentUser,
        ip: &str,
        req: SessionRequest,
        idempotency_key: Option<&str>,
        replaces: Option<&SessionId>,
    ) -> ServiceResult<(SessionView, bool)> {
        if let Some(k) = idempotency_key {
            crate::checkout::valid_idempotency_key(k).map_err(|e| ServiceError::invalid(e.code(), e.to_string()))?;
        }
        let provider = req.method.provider();
        let (channel, gateway) = self.gateways.default_channel(provider).await?;
        let now = self.now();
        let id = self.ids.new_id::<SessionId>();
        let out_trade_no = self.ids.new_id::<OutTradeNo>();
        let new = NewSession {
            id,
            patient_id: req.patient_id.clone(),
            channel_id: channel.id.clone(),
            provider,
            method: req.method,
            out_trade_no,
            payables: req.bill_ids.iter().cloned().map(PayableId::Bill).collect(),
            expires_at_ms: req.expires_at(now),
            created_at_ms: now,
            created_by: caller.id.clone(),
            idempotency: idempotency_key.map(|k| IdempotencyKey {
                scope: caller.id.clone(),
                key: k.to_string(),
                fingerprint: req.fingerprint(),
            }),
            replaces: replaces.cloned(),
            audit: None,
        };
        let new = NewSession {
            audit: Some(self.audit_input(
                &Actor::user(caller, ip),
                if replaces.is_some() { "session_refreshed" } else { "session_created" },
                "payment_session",
                new.id.as_str(),
                serde_json::json!({
                    "after": {
                        "status": "pending",
                        "patient_id": new.patient_id.as_str(),
                        "bill_ids": req.bill_ids.iter().map(|b| b.to_string()).collect::<Vec<_>>(),
                        "method": req.method.as_str(),
                        "channel_id": new.channel_id.as_str(),
                        "out_trade_no": new.out_trade_no.as_str(),
                        "expires_at_ms": new.expires_at_ms,
                    },
                    "replaces": replaces.map(|r| r.to_string()),
                }),
            )),
            ..new
        };
        let mut view = match self.store.create_session(&new).await?.map_err(refusal)? {
            CreateOutcome::Existing(v) => return Ok((v, false)),
            CreateOutcome::Created(v) => v,
        };
        if let Some(old) = replaces {
            self.events.publish(old, SessionStatus::Closed).await;
        }
        tracing::info!(session = %view.id, out_trade_no = %view.out_trade_no, total = %view.total, "session opened");
        let subject = format!("ClinicPay 医院缴费（{} 笔账单）", view.payables.len());
        let call = gateway
            .create_payment(&CreatePayment {
                out_trade_no: view.out_trade_no.to_string(),
                amount: view.total,
                subject,
                method: req.method,
                expires_at_ms: view.expires_at_ms,
                notify_url: format!("{}/notify/{}", self.config.public_url, provider.as_str()),
                return_url: None,
                payer_openid: None,
                payer_ip: None,
            })
            .await;
        let failure = match call.outcome {
            Outcome::Success(action) => {
                if self.store.set_pay_action(&view.id, &action, self.now()).await? {
                    view.pay_action = Some(action);
                    return Ok((view, true));
                }
                // The session stopped being pending meanwhile (paid already, or cancelled).
                let now_view = self.store.session(&view.id).await?.ok_or(ServiceError::NotFound("session"))?;
                return Ok((now_view, true));
            }
            Outcome::Failure(e) => {
                self.store.end_session(&view.id, EndReason::CreateFailed, self.now(), false).await?.ok();
                format!("{} {} {}", e.code, e.sub_code.unwrap_or_default(), e.message)
            }
            Outcome::Waiting(_) => {
                self.store.end_session(&view.id, EndReason::CreateFailed, self.now(), true).await?.ok();
                "the provider did not confirm the order".to_string()
            }
            Outcome::Unknown(reason) => {
                // The trade may exist at the provider: close it there too.
                self.store.end_session(&view.id, EndReason::CreateFailed, self.now(), true).await?.ok();
                reason
            }
        };
        tracing::warn!(session = %view.id, reason = %failure, "the provider refused to create the payment");
        self.events.publish(&view.id, SessionStatus::Failed).await;
        Err(ServiceError::Upstream(failure.trim().to_string()))
    }

    /// C9: records a counter payment (cash tendered, or a POS slip) for the bills of one
    /// patient: the session is opened and paid in one transaction by the payment rules. With an
    /// idempotency key, a retry returns what the first call recorded (`created` false).
    #[tracing::instrument(skip_all, fields(patient = %req.patient_id, bills = req.bill_ids.len(), channel = %tender.provider()))]
    pub async fn record_counter_payment(
        &self,
        caller: &CurrentUser,
        ip: &str,
        req: CounterRequest,
        tender: CounterTender,
        idempotency_key: Option<&str>,
    ) -> ServiceResult<(SessionView, CounterRecord)> {
        if !crate::auth::Access::Billing.allows(Some(caller.role)) || caller.role == crate::auth::Role::Admin {
            return Err(ServiceError::Forbidden);
        }
        if let Some(k) = idempotency_key {
            crate::checkout::valid_idempotency_key(k).map_err(|e| ServiceError::invalid(e.code(), e.to_string()))?;
        }
        let provider = tender.provider();
        let channel_id = provider
            .counter_channel()
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("{provider} is not a counter channel")))?;
        let now = self.now();
        let id = self.ids.new_id::<SessionId>();
        let bills: Vec<String> = req.bill_ids.iter().map(|b| b.to_string()).collect();
        let new = NewSession {
            id: id.clone(),
            patient_id: req.patient_id.clone(),
            channel_id: channel_id.clone(),
            provider,
            method: tender.method(),
            out_trade_no: self.ids.new_id::<OutTradeNo>(),
            payables: req.bill_ids.iter().cloned().map(PayableId::Bill).collect(),
            expires_at_ms: now + crate::time::MINUTE_MS,
            created_at_ms: now,
            created_by: caller.id.clone(),
            idempotency: idempotency_key.map(|k| IdempotencyKey {
                scope: caller.id.clone(),
                key: k.to_string(),
                fingerprint: format!("counter|{}|{}", req.fingerprint(), tender.fingerprint()),
            }),
            replaces: None,
            audit: Some(self.audit_input(
                &Actor::user(caller, ip),
                "counter_payment_recorded",
                "payment_session",
                id.as_str(),
                serde_json::json!({
                    "after": {
                        "status": "paid",
                        "patient_id": req.patient_id.as_str(),
                        "bill_ids": bills,
                        "channel": provider.as_str(),
                        "tender": &tender,
                    },
                }),
            )),
        };
        let rules = self.rules();
        match self.store.record_counter_payment(&new, &tender, &caller.display_name, &rules, self.ids.as_ref()).await? {
            Ok((view, rec)) => {
                tracing::info!(session = %view.id, channel = %provider, total = %view.total, "counter payment recorded");
                self.events.publish(&view.id, SessionStatus::Paid).await;
                Ok((view, rec))
            }
            Err(CounterRefusal::Session(r)) => Err(refusal(r)),
            Err(CounterRefusal::Tender(e)) => Err(ServiceError::invalid(e.code(), e.to_string())),
            Err(CounterRefusal::SlipUsed) => Err(ServiceError::conflict(
                "pos_slip_used",
                "this POS slip's reference number already paid other bills: check the slip",
            )),
        }
    }

    /// What the cashier recorded for a counter session (the receipt prints it).
    pub async fn counter_record(&self, session_id: &str) -> ServiceResult<Option<CounterRecord>> {
        let id = parse_session_id(session_id)?;
        Ok(self.store.counter_record(&id).await?)
    }

    pub async fn checkout_session(&self, id: &str) -> ServiceResult<SessionView> {
        let id = parse_session_id(id)?;
        self.store.session(&id).await?.ok_or(ServiceError::NotFound("payment session"))
    }

    /// Cancels a pending session: its bills are free again and the trade is closed at the
    /// provider (now, and by the close worker if that fails).
    pub async fn cancel_checkout(&self, caller: &CurrentUser, ip: &str, id: &str) -> ServiceResult<SessionView> {
        let id = parse_session_id(id)?;
        let before = self.store.session(&id).await?.ok_or(ServiceError::NotFound("payment session"))?;
        let audit = self.audit_input(
            &Actor::user(caller, ip),
            "session_cancelled",
            "payment_session",
            id.as_str(),
            serde_json::json!({
                "before": { "status": before.status.as_str(), "total": before.total.to_string() },
                "after": { "status": "cancelled" },
                "out_trade_no": before.out_trade_no.as_str(),
            }),
        );
        match self.store.cancel_session(&id, self.now(), &audit).await {
            Ok(Ok(())) => {
                tracing::info!(session = %id, by = %caller.username, "session cancelled");
                self.events.publish(&id, SessionStatus::Cancelled).await;
                self.close_now(&id).await;
            }
            Ok(Err(status)) => {
                return Err(ServiceError::Conflict {
                    code: "session_not_pending",
                    message: format!("the session is already {status}"),
                    detail: Some(serde_json::json!({ "status": status.as_str() })),
                })
            }
            Err(crate::ports::StoreError::NotFound) => return Err(ServiceError::NotFound("payment session")),
            Err(e) => return Err(e.into()),
        }
        self.checkout_session(id.as_str()).await
    }

    /// "Refresh QR": a new session for the same bills replaces the old one, atomically.
    pub async fn refresh_checkout(
        &self,
        caller: &CurrentUser,
        ip: &str,
        id: &str,
        timeout_minutes: Option<i64>,
    ) -> ServiceResult<SessionView> {
        let old = self.checkout_session(id).await?;
        if old.status != SessionStatus::Pending {
            return Err(ServiceError::Conflict {
                code: "session_not_pending",
                message: format!("the session is already {}", old.status),
                detail: Some(serde_json::json!({ "status": old.status.as_str() })),
            });
        }
        let bills: Vec<String> = old.bill_ids().iter().map(|b| b.to_string()).collect();
        let req = SessionRequest::parse(old.patient_id.as_str(), &bills, old.method.as_str(), timeout_minutes)
            .map_err(|e| ServiceError::invalid(e.code(), e.to_string()))?;
        let (view, _) = self.create_checkout(caller, ip, req, None, Some(&old.id)).await?;
        self.close_now(&old.id).await;
        Ok(view)
    }

    /// Best effort: close a trade at the provider right away (the close worker retries).
    async fn close_now(&self, session_id: &SessionId) {
        if let Err(e) = self.close_one(session_id).await {
            tracing::info!(session = %session_id, error = %e, "closing at the provider deferred to the worker");
        }
    }

    /// Applies a verified payment (from a notification or a status query) and tells live screens.
    pub async fn apply_verified_payment(&self, p: &VerifiedPayment) -> ServiceResult<ApplyResult> {
        let r = self.store.apply_payment(p, &self.rules(), self.ids.as_ref()).await?;
        self.after_apply(p, &r).await;
        Ok(r)
    }

    pub(crate) async fn after_apply(&self, p: &VerifiedPayment, r: &ApplyResult) {
        match r {
            ApplyResult::Paid { session_id, payables } => {
                tracing::info!(session = %session_id, txn = %p.provider_txn_id, payables, amount = %p.amount, "session paid");
                self.events.publish(session_id, SessionStatus::Paid).await;
            }
            ApplyResult::LatePayment { session_id, exception_id, refund_queued } => {
                tracing::warn!(session = %session_id, exception = %exception_id, refund_queued, "late payment recorded as unallocated");
                self.events.publish(session_id, SessionStatus::Expired).await;
            }
            ApplyResult::AmountMismatch { session_id, exception_id } => {
                tracing::warn!(session = %session_id, exception = %exception_id, amount = %p.amount, "amount mismatch recorded");
            }
            ApplyResult::Duplicate => tracing::debug!(txn = %p.provider_txn_id, "duplicate payment report"),
            ApplyResult::UnknownOrder => tracing::warn!(out_trade_no = %p.out_trade_no, "payment for an unknown order"),
            ApplyResult::TxnConflict { session_id, exception_id } => tracing::error!(
                session = %session_id,
                exception = %exception_id,
                txn = %p.provider_txn_id,
                "a booked provider transaction was reported for another order or amount; recorded as an exception"
            ),
        }
    }

    pub async fn pending_checkouts_of(&self, patient_id: &str) -> ServiceResult<Vec<SessionView>> {
        let id = PatientId::parse(patient_id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        Ok(self.store.pending_sessions_of(&id).await?)
    }

    pub async fn exceptions(&self, open_only: bool) -> ServiceResult<Vec<ExceptionView>> {
        Ok(self.store.list_exceptions(open_only, 200).await?)
    }

    /// A person decides a held exception: refund it through its channel, or resolve it with a note.
    pub async fn decide_exception(
        &self,
        caller: &CurrentUser,
        ip: &str,
        id: &str,
        refund: bool,
        note: &str,
    ) -> ServiceResult<()> {
        let id = ExceptionId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        let note = note.trim();
        if note.is_empty() || note.chars().count() > 200 {
            return Err(ServiceError::invalid("bad_note", "write a note of 1–200 characters"));
        }
        let audit = self.audit_input(
            &Actor::user(caller, ip),
            if refund { "exception_refund" } else { "exception_resolved" },
            "payment_exception",
            id.as_str(),
            serde_json::json!({ "note": note }),
        );
        let decision = if refund { ExceptionDecision::Refund } else { ExceptionDecision::Resolve };
        match self
            .store
            .decide_exception(&id, decision, note, &caller.username, self.now(), self.ids.as_ref(), &audit)
            .await?
        {
            Ok(()) => Ok(()),
            Err(status) => Err(ServiceError::Conflict {
                code: "exception_already_decided",
                message: format!("the exception is already {}", status.as_str()),
                detail: None,
            }),
        }
    }
}
