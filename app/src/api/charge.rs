//! The charge screen (C6): find a patient, see what is owed, open a payment, follow it, cancel
//! or refresh it, ask the provider whether the patient paid.

#[cfg(feature = "ssr")]
use super::ssr;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use clinicpay::auth::Access;
use clinicpay::checkout::SessionView;
use clinicpay::views::{BillSummary, PatientSummary};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::Json;

/// What the charge screen shows for a patient: the bills owed and any payment still open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeData {
    pub patient: PatientSummary,
    pub bills: Vec<BillSummary>,
    pub pending: Vec<SessionView>,
    /// Providers with an enabled channel: what the channel choice offers.
    pub providers: Vec<clinicpay::payments::Provider>,
}

#[server(prefix = "/api/fn", endpoint = "charge/find")]
pub async fn find_patients(q: String) -> Result<Vec<PatientSummary>, AppError> {
    ssr::require_user(Access::Billing)?;
    let page = ssr::services()?.list_patients(Some(&q), None).await?;
    Ok(page.items.into_iter().take(10).collect())
}

#[server(prefix = "/api/fn", endpoint = "charge/overview")]
pub async fn charge_overview(patient_id: String) -> Result<ChargeData, AppError> {
    ssr::require_user(Access::Billing)?;
    let s = ssr::services()?;
    let (patient, bills) = s.unpaid_bills(&patient_id).await?;
    let pending = s.pending_checkouts_of(&patient_id).await?;
    let providers = s.enabled_providers().await?;
    Ok(ChargeData { patient, bills, pending, providers })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartPaymentRequest {
    pub patient_id: String,
    pub bill_ids: Vec<String>,
    pub method: String,
    /// A key the screen makes per "Scan to pay" press, so a double click opens one session.
    pub idempotency_key: String,
}

#[server(prefix = "/api/fn", endpoint = "charge/start", input = Json)]
pub async fn start_payment(req: StartPaymentRequest) -> Result<SessionView, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    let parsed = clinicpay::checkout::SessionRequest::parse(&req.patient_id, &req.bill_ids, &req.method, None)
        .map_err(|e| AppError::bad_request(e.code(), e.to_string()))?;
    let key = Some(req.idempotency_key.as_str()).filter(|k| !k.is_empty());
    let (view, _) = ssr::services()?.create_checkout(&user, &ssr::client_ip(), parsed, key, None).await?;
    Ok(view)
}

#[server(prefix = "/api/fn", endpoint = "charge/status")]
pub async fn payment_status(session_id: String) -> Result<SessionView, AppError> {
    ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.checkout_session(&session_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "charge/cancel")]
pub async fn cancel_payment(session_id: String) -> Result<SessionView, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.cancel_checkout(&user, &ssr::client_ip(), &session_id).await?)
}

#[server(prefix = "/api/fn", endpoint = "charge/refresh")]
pub async fn refresh_payment(session_id: String) -> Result<SessionView, AppError> {
    let user = ssr::require_user(Access::Billing)?;
    Ok(ssr::services()?.refresh_checkout(&user, &ssr::client_ip(), &session_id, None).await?)
}

/// What "check payment" found: the session now, and the provider's answer in a word
/// (`paid`, `waiting`, `not_scanned`, `closed`, `not_pending`, `no_answer`), and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckAnswer {
    pub session: SessionView,
    pub answer: String,
    pub at_ms: i64,
}

/// Asks the provider now whether the patient paid (status sync on demand).
#[server(prefix = "/api/fn", endpoint = "charge/check")]
pub async fn check_payment(session_id: String) -> Result<CheckAnswer, AppError> {
    ssr::require_user(Access::Billing)?;
    let s = ssr::services()?;
    let answer = s.sync_session(&session_id).await?;
    let session = s.checkout_session(&session_id).await?;
    Ok(CheckAnswer { session, answer: answer.as_str().to_string(), at_ms: s.now() })
}

/// A counter payment as the charge screen sends it (C9): cash with the amount tendered, or a
/// POS slip with its reference number (terminal and last four digits optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterPaymentRequest {
    pub patient_id: String,
    pub bill_ids: Vec<String>,
    /// `cash` or `pos`
    pub channel: String,
    pub tendered: String,
    pub pos_reference: String,
    pub pos_terminal: String,
    pub card_last4: String,
    /// Made per confirmation, so a double press records one payment.
    pub idempotency_key: String,
}

/// Records cash or a POS slip at the counter: the bills are paid at once.
#[server(prefix = "/api/fn", endpoint = "charge/counter", input = Json)]
pub async fn record_counter_payment(req: CounterPaymentRequest) -> Result<SessionView, AppError> {
    use clinicpay::checkout::counter::CounterTender;
    let user = ssr::require_user(Access::Billing)?;
    let parsed = clinicpay::checkout::CounterRequest::parse(&req.patient_id, &req.bill_ids)
        .map_err(|e| AppError::bad_request(e.code(), e.to_string()))?;
    let tender = match req.channel.as_str() {
        "cash" => CounterTender::cash(&req.tendered),
        "pos" => CounterTender::pos(&req.pos_reference, &req.pos_terminal, &req.card_last4),
        _ => return Err(AppError::bad_request("bad_channel", "choose cash or pos")),
    }
    .map_err(|e| AppError::bad_request(e.code(), e.to_string()))?;
    let key = Some(req.idempotency_key.as_str()).filter(|k| !k.is_empty());
    let (view, _) = ssr::services()?.record_counter_payment(&user, &ssr::client_ip(), parsed, tender, key).await?;
    Ok(view)
}
