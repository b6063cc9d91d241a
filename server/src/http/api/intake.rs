//! The intake API (issue 15): the HIS pushes patients, departments, the charge-item catalogue
//! and bills, reads a bill back and voids it. Only an API token of scope `intake` may call it
//! (and such a token can call nothing else). Idempotent by the HIS's own ids.

use super::{parse_json, ApiError, ApiResult, HttpState};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clinicpay::auth::CurrentUser;
use clinicpay::intake::{
    BillInput, ChargeItemInput, DepartmentInput, IssuedBillRef, ItemResult, PatientInput, PatientResult,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A batch of 500 bills of a few lines each is well under this.
const MAX_INTAKE_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn routes() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(put_patient))
        .routes(routes!(put_departments))
        .routes(routes!(put_charge_items))
        .routes(routes!(issue_bill))
        .routes(routes!(issue_bills))
        .routes(routes!(get_bill))
        .routes(routes!(void_bill))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_INTAKE_BYTES))
}

/// The HIS behind an intake-scope API token, and the address it called from.
pub struct IntakeCaller(pub CurrentUser, pub String);

impl FromRequestParts<HttpState> for IntakeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &HttpState) -> Result<Self, Self::Rejection> {
        let user = match super::bearer(parts) {
            Some(token) => st.services.authenticate_intake_token(token).await?,
            None => None,
        };
        let Some(user) = user else {
            return Err(ApiError::new(
                401,
                "unauthenticated",
                "send an API token of scope intake (Authorization: Bearer cpk_…); an administrator issues it under API tokens",
            ));
        };
        let ip = parts.extensions.get::<app::api::ssr::ClientIp>().map(|c| c.0.clone()).unwrap_or_default();
        Ok(IntakeCaller(user, ip))
    }
}

/// Departments to create or update by code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Departments {
    pub departments: Vec<DepartmentInput>,
}

/// Catalogue items to create or update by code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeItems {
    pub items: Vec<ChargeItemInput>,
}

/// Up to 500 bills in one call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bills {
    pub bills: Vec<BillInput>,
}

/// One result per item, in the order sent, and how many of each.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub refused: usize,
    pub results: Vec<ItemResult>,
}

impl BatchResult {
    fn new(results: Vec<ItemResult>) -> BatchResult {
        let n = |r: &str| results.iter().filter(|x| x.result == r).count();
        BatchResult {
            created: n("created"),
            updated: n("updated"),
            unchanged: n("unchanged"),
            refused: n("refused"),
            results,
        }
    }
}

/// Why a bill is being voided.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    /// 2–200 characters, kept in the audit log.
    #[schema(example = "处方修改 / prescription changed")]
    pub reason: String,
}

/// The HTTP status a refused bill gets when it was sent alone.
fn refusal_status(code: &str) -> u16 {
    match code {
        "unknown_patient" | "unknown_department" | "unknown_item" | "unknown_bill" => 422,
        "bill_conflict" | "replaced_bill_not_void" | "already_reissued" | "department_disabled" | "item_disabled" => {
            409
        }
        _ => 400,
    }
}

/// Create or update a patient by the HIS's id
#[utoipa::path(
    post,
    path = "/api/v1/intake/patients",
    tag = "intake",
    operation_id = "intakePatient",
    request_body = PatientInput,
    responses(
        (status = 201, description = "Created", body = PatientResult),
        (status = 200, description = "Updated or unchanged (`result` says which); fields left out keep their value", body = PatientResult),
        (status = 400, description = "bad_json, bad_external_id, bad_mrn, missing_field, text_too_long, bad_text, bad_gender, bad_date, bad_phone, bad_id_card", body = super::types::ErrorBody),
        (status = 401, description = "No API token of scope intake (`unauthenticated`)", body = super::types::ErrorBody),
        (status = 409, description = "`mrn_taken`: the record number belongs to another patient", body = super::types::ErrorBody),
        (status = 415, description = "The body is not application/json", body = super::types::ErrorBody),
    )
)]
pub async fn put_patient(
    State(st): State<HttpState>,
    caller: IntakeCaller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let p: PatientInput = parse_json(&headers, &body)?;
    let r = st.services.intake_patient(&caller.0, &p).await?;
    let status = if r.result == "created" { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(r)).into_response())
}

/// Create or update departments by code
#[utoipa::path(
    post,
    path = "/api/v1/intake/departments",
    tag = "intake",
    operation_id = "intakeDepartments",
    request_body = Departments,
    responses(
        (status = 200, description = "One result per department (created, updated, unchanged or refused with its code)", body = BatchResult),
        (status = 400, description = "bad_json, empty_batch, batch_too_large", body = super::types::ErrorBody),
        (status = 401, description = "No API token of scope intake", body = super::types::ErrorBody),
    )
)]
pub async fn put_departments(
    State(st): State<HttpState>,
    caller: IntakeCaller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<BatchResult>> {
    let d: Departments = parse_json(&headers, &body)?;
    Ok(Json(BatchResult::new(st.services.intake_departments(&caller.0, &d.departments).await?)))
}

/// Create or update charge items (the catalogue) by code
#[utoipa::path(
    post,
    path = "/api/v1/intake/charge-items",
    tag = "intake",
    operation_id = "intakeChargeItems",
    request_body = ChargeItems,
    responses(
        (status = 200, description = "One result per item (refused ones carry bad_code, missing_field, bad_category, bad_amount, amount_too_large, duplicate_code)", body = BatchResult),
        (status = 400, description = "bad_json, empty_batch, batch_too_large", body = super::types::ErrorBody),
        (status = 401, description = "No API token of scope intake", body = super::types::ErrorBody),
    )
)]
pub async fn put_charge_items(
    State(st): State<HttpState>,
    caller: IntakeCaller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<BatchResult>> {
    let d: ChargeItems = parse_json(&headers, &body)?;
    Ok(Json(BatchResult::new(st.services.intake_charge_items(&caller.0, &d.items).await?)))
}

/// Issue one bill
#[utoipa::path(
    post,
    path = "/api/v1/intake/bills",
    tag = "intake",
    operation_id = "intakeBill",
    request_body = BillInput,
    responses(
        (status = 201, description = "Issued; `bill.id` is what the checkout API takes", body = ItemResult),
        (status = 200, description = "Sent before with the same content: the bill issued then (`result` = unchanged)", body = ItemResult),
        (status = 400, description = "bad_json, bad_external_id, bad_code, no_items, too_many_items, bad_quantity, bad_amount, amount_too_large, bad_category, missing_field, duplicate_item, total_mismatch, bad_replaces, bad_text", body = ItemResult),
        (status = 401, description = "No API token of scope intake", body = super::types::ErrorBody),
        (status = 409, description = "bill_conflict (the same id with other content; `differences` names the fields), replaced_bill_not_void, already_reissued, department_disabled, item_disabled", body = ItemResult),
        (status = 422, description = "unknown_patient, unknown_department, unknown_item, unknown_bill (replaces)", body = ItemResult),
    )
)]
pub async fn issue_bill(
    State(st): State<HttpState>,
    caller: IntakeCaller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let b: BillInput = parse_json(&headers, &body)?;
    let mut results = st.services.intake_bills(&caller.0, std::slice::from_ref(&b)).await?;
    let r = results.pop().ok_or_else(|| ApiError::new(500, "internal", "no result for the bill"))?;
    let status = match (&r.result[..], &r.error) {
        ("created", _) => 201,
        (_, Some(e)) => refusal_status(&e.code),
        _ => 200,
    };
    let location = r.bill.as_ref().and_then(|b| b.bill_id.clone()).map(|id| format!("/api/v1/intake/bills/{id}"));
    let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), Json(r)).into_response();
    if let Some(l) = location.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    Ok(resp)
}

/// Issue up to 500 bills in one call
#[utoipa::path(
    post,
    path = "/api/v1/intake/bills/batch",
    tag = "intake",
    operation_id = "intakeBills",
    request_body = Bills,
    responses(
        (status = 200, description = "One result per bill, in order; each bill is issued whole or refused with its code, independently of the others", body = BatchResult),
        (status = 400, description = "bad_json, empty_batch, batch_too_large (more than 500)", body = super::types::ErrorBody),
        (status = 401, description = "No API token of scope intake", body = super::types::ErrorBody),
        (status = 413, description = "The body is larger than 4 MiB", body = super::types::ErrorBody),
    )
)]
pub async fn issue_bills(
    State(st): State<HttpState>,
    caller: IntakeCaller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<BatchResult>> {
    let b: Bills = parse_json(&headers, &body)?;
    Ok(Json(BatchResult::new(st.services.intake_bills(&caller.0, &b.bills).await?)))
}

/// A bill by the HIS's id: its number, status and total
#[utoipa::path(
    get,
    path = "/api/v1/intake/bills/{bill_id}",
    tag = "intake",
    operation_id = "intakeGetBill",
    params(("bill_id" = String, Path, description = "The HIS's id of the bill")),
    responses(
        (status = 200, description = "The bill", body = IssuedBillRef),
        (status = 400, description = "bad_external_id", body = super::types::ErrorBody),
        (status = 401, description = "No API token of scope intake", body = super::types::ErrorBody),
        (status = 404, description = "No such bill", body = super::types::ErrorBody),
    )
)]
pub async fn get_bill(
    State(st): State<HttpState>,
    _caller: IntakeCaller,
    Path(bill_id): Path<String>,
) -> ApiResult<Json<IssuedBillRef>> {
    Ok(Json(st.services.intake_bill(&bill_id).await?))
}

/// Void a bill (a correction is a void, then a new bill with `replaces`)
#[utoipa::path(
    post,
    path = "/api/v1/intake/bills/{bill_id}/void",
    tag = "intake",
    operation_id = "intakeVoidBill",
    params(("bill_id" = String, Path, description = "The HIS's id of the bill")),
    request_body = VoidRequest,
    responses(
        (status = 200, description = "Void (voiding again answers the same)", body = IssuedBillRef),
        (status = 400, description = "bad_json, bad_external_id, missing_field / text_too_long (reason)", body = super::types::ErrorBody),
        (status = 401, description = "No API token of scope intake", body = super::types::ErrorBody),
        (status = 404, description = "No such bill", body = super::types::ErrorBody),
        (status = 409, description = "bill_in_session (a QR is out for it: cancel the session first), bill_paid (refund instead)", body = super::types::ErrorBody),
    )
)]
pub async fn void_bill(
    State(st): State<HttpState>,
    caller: IntakeCaller,
    Path(bill_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<IssuedBillRef>> {
    let v: VoidRequest = parse_json(&headers, &body)?;
    Ok(Json(st.services.intake_void_bill(&caller.0, &caller.1, &bill_id, &v.reason).await?))
}
