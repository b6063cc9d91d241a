//! The OpenAPI 3.0 description of the REST API (O3), served at `/api/v1/openapi.json`.

use axum::Json;
use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn session_ok(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Session" } } } })
}

fn id_param(name: &str, desc: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": desc, "schema": { "type": "string" } })
}

pub fn document() -> Value {
    let common_errors = |v: &mut Value| {
        let r = v["responses"].as_object_mut().expect("responses");
        r.insert("401".into(), err("No valid API token or staff session (`unauthenticated`)"));
        r.insert(
            "403".into(),
            err("The caller's role may not do this (`forbidden`), or a cross-origin cookie request (`csrf`)"),
        );
    };
    let mut unpaid = json!({
        "summary": "Unpaid bills of a patient (B3)",
        "operationId": "unpaidBills",
        "parameters": [id_param("patient_id", "Patient id, e.g. pat_01jd…")],
        "responses": {
            "200": { "description": "The patient and every bill that can be paid now",
                     "content": { "application/json": { "schema": { "$ref": "#/components/schemas/UnpaidBills" } } } },
            "400": err("Malformed patient id (`bad_id`)"),
            "404": err("No such patient (`not_found`)")
        }
    });
    common_errors(&mut unpaid);
    let mut create = json!({
        "summary": "Open one checkout session (one QR code) for 1..N bills of one patient (C1, C2)",
        "operationId": "createSession",
        "parameters": [{ "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Retrying with the same key and body returns the same session (200); the same key with another body is refused (409 idempotency_key_reused). 1–64 visible ASCII characters.",
            "schema": { "type": "string", "maxLength": 64 } }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/CreateSession" } } } },
        "responses": {
            "201": session_ok("Session opened; the QR is in qr_code_content and at qr_code_image_url"),
            "200": session_ok("Idempotent replay: the session opened the first time"),
            "400": err("Bad input: bad_json, bad_id, no_bills, too_many_bills, duplicate_bill, unknown_bill, bill_of_other_patient, bad_payment_method, bad_timeout, bad_idempotency_key"),
            "404": err("No such patient"),
            "409": err("bill_not_payable (paid or void), bill_in_active_session (detail names the session), idempotency_key_reused, no_channel"),
            "415": err("The body is not application/json"),
            "502": err("The payment provider refused or did not answer (`provider_error`); nothing is left open")
        }
    });
    common_errors(&mut create);
    let mut single = json!({
        "summary": "Open a checkout session for one bill (the N = 1 case)",
        "operationId": "billQrPayment",
        "parameters": [id_param("bill_id", "Bill id, e.g. bill_01jd…"), { "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string", "maxLength": 64 } }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/QrPayment" } } } },
        "responses": {
            "201": session_ok("Session opened"),
            "200": session_ok("Idempotent replay"),
            "400": err("Bad input"),
            "404": err("No such bill"),
            "409": err("The bill cannot be paid now"),
            "502": err("The payment provider refused or did not answer")
        }
    });
    common_errors(&mut single);
    let session_op = |summary: &str, op: &str| {
        let mut v = json!({
            "summary": summary,
            "operationId": op,
            "parameters": [id_param("session_id", "Session id, e.g. ses_01jd…")],
            "responses": { "200": session_ok("The session now"), "400": err("Malformed id"), "404": err("No such session"),
                           "409": err("session_not_pending: the session already ended") }
        });
        common_errors(&mut v);
        v
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "ClinicPay API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Payments for hospital bills: one QR code pays several bills of a patient, each allocated exactly once. Amounts are decimal strings in yuan (\"1234.50\"). Times are RFC 3339 in +08:00. Errors are {\"error\": {\"code\", \"message\", \"detail\"?}} with a stable code."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "apiToken": [] }, { "staffSession": [] }],
        "paths": {
            "/api/v1/finance/merged-payment/patient/{patient_id}/unpaid-bills": { "get": unpaid },
            "/api/v1/finance/merged-payment/create-session": { "post": create },
            "/api/v1/finance/bills/{bill_id}/qr-payment": { "post": single },
            "/api/v1/finance/payment-sessions/{session_id}/status": { "get": session_op("A session's status (poll every 2 s if SSE is unavailable)", "sessionStatus") },
            "/api/v1/finance/payment-sessions/{session_id}/cancel": { "post": session_op("Cancel a pending session: its bills are free again, the trade is closed at the provider", "cancelSession") },
            "/api/v1/finance/payment-sessions/{session_id}/refresh": { "post": session_op("Refresh the QR: a new session for the same bills replaces this one (201)", "refreshSession") },
            "/api/v1/finance/payment-sessions/{session_id}/sync": { "post": session_op("Ask the provider now whether the session was paid (status sync)", "syncSession") },
            "/api/v1/finance/payment-sessions/{session_id}/events": { "get": {
                "summary": "Live status as server-sent events: an event `status` with the session JSON now and after every committed change; ends when the session is final",
                "operationId": "sessionEvents",
                "parameters": [id_param("session_id", "Session id")],
                "responses": { "200": { "description": "text/event-stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
                               "404": err("No such session") } } },
            "/api/v1/finance/qr-codes/{file}": { "get": {
                "summary": "The session's QR code as an image: <session_id>.png or <session_id>.svg",
                "operationId": "qrCode",
                "parameters": [id_param("file", "ses_….png or ses_….svg")],
                "responses": { "200": { "description": "The image", "content": { "image/png": {}, "image/svg+xml": {} } },
                               "404": err("No such session"), "409": err("The session has no QR code (yet)") } } }
        },
        "components": {
            "securitySchemes": {
                "apiToken": { "type": "http", "scheme": "bearer", "description": "An API token issued by an administrator (cpk_…)" },
                "staffSession": { "type": "apiKey", "in": "cookie", "name": "cp_session" }
            },
            "schemas": {
                "Money": { "type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$", "example": "1500.00" },
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" }, "detail": { "type": "object" } } } } },
                "CreateSession": { "type": "object", "required": ["patient_id", "bill_ids", "payment_method"], "additionalProperties": false,
                    "properties": {
                        "patient_id": { "type": "string" },
                        "bill_ids": { "type": "array", "minItems": 1, "maxItems": 50, "uniqueItems": true, "items": { "type": "string" } },
                        "payment_method": { "type": "string", "enum": ["alipay", "wechat", "bank_card", "alipay_qr", "wechat_native"] },
                        "timeout_minutes": { "type": "integer", "minimum": 1, "maximum": 120, "default": 15 } } },
                "QrPayment": { "type": "object", "required": ["payment_method"], "additionalProperties": false,
                    "properties": { "payment_method": { "type": "string", "enum": ["alipay", "wechat", "bank_card"] },
                                    "timeout_minutes": { "type": "integer", "minimum": 1, "maximum": 120, "default": 15 } } },
                "UnpaidBills": { "type": "object", "properties": {
                    "patient": { "type": "object", "properties": { "patient_id": { "type": "string" }, "name": { "type": "string" }, "mrn": { "type": "string" } } },
                    "count": { "type": "integer" }, "total_amount": { "$ref": "#/components/schemas/Money" },
                    "bills": { "type": "array", "items": { "type": "object", "properties": {
                        "bill_id": { "type": "string" }, "bill_no": { "type": "string" }, "department": { "type": "string" },
                        "amount": { "$ref": "#/components/schemas/Money" }, "status": { "type": "string" }, "created_at": { "type": "string" } } } } } },
                "Session": { "type": "object", "properties": {
                    "session_id": { "type": "string" },
                    "status": { "type": "string", "enum": ["pending", "paid", "expired", "cancelled", "closed", "failed"] },
                    "patient_id": { "type": "string" }, "payment_method": { "type": "string" }, "provider": { "type": "string" },
                    "out_trade_no": { "type": "string" }, "total_amount": { "$ref": "#/components/schemas/Money" },
                    "expires_at": { "type": "string" }, "seconds_left": { "type": "integer" },
                    "qr_code_content": { "type": "string", "nullable": true }, "qr_code_image_url": { "type": "string" },
                    "paid_at": { "type": "string", "nullable": true }, "paid_amount": { "$ref": "#/components/schemas/Money" },
                    "provider_transaction_id": { "type": "string", "nullable": true },
                    "replaced_by": { "type": "string", "nullable": true },
                    "bills": { "type": "array", "items": { "type": "object", "properties": {
                        "bill_id": { "type": "string" }, "bill_no": { "type": "string" }, "amount": { "$ref": "#/components/schemas/Money" },
                        "status": { "type": "string" }, "receipt_no": { "type": "string", "nullable": true } } } } } }
            }
        }
    })
}

pub async fn openapi() -> Json<Value> {
    Json(document())
}
