//! WeChat Pay notifications as the client reads them (B.5, B.6): the signature headers, the
//! time window, the AES-256-GCM resource, and what each event means; how they are answered and
//! what `/notify/wechatpay` keeps of a request.

use super::*;

/// WeChat Pay's notification answer: 2xx (we send 204, no body) stops its retries; a 5xx with the
/// FAIL JSON makes it retry on its schedule.
pub fn notify_reply(accepted: bool) -> NotifyReply {
    if accepted {
        NotifyReply { status: 204, content_type: "application/json", body: Vec::new() }
    } else {
        NotifyReply {
            status: 500,
            content_type: "application/json",
            body: r#"{"code":"FAIL","message":"失败"}"#.as_bytes().to_vec(),
        }
    }
}

/// What `/notify/wechatpay` keeps of a request: the signature headers, needed to verify it again
/// after a restart (re-drive).
pub fn notification_profile() -> clinicpay::ports::NotificationProfile {
    clinicpay::ports::NotificationProfile {
        kept_headers: &[
            "content-type",
            "user-agent",
            "request-id",
            "wechatpay-timestamp",
            "wechatpay-nonce",
            "wechatpay-signature",
            "wechatpay-serial",
            "wechatpay-signature-type",
        ],
        failure_reply: notify_reply(false),
    }
}

/// Checks the B.3 signature headers over `body`: all present, timestamp within ±5 minutes of
/// `now_secs`, serial known, signature valid.
pub(super) fn check_signature(
    keys: &dyn Fn(&str) -> Option<PublicKey>,
    headers: &[(String, String)],
    body: &[u8],
    now_secs: i64,
) -> Result<(), Rejection> {
    let get = |n: &str| header(headers, n).map(str::trim).filter(|s| !s.is_empty());
    let (Some(ts), Some(nonce), Some(sig), Some(serial)) =
        (get(H_TIMESTAMP), get(H_NONCE), get(H_SIGNATURE), get(H_SERIAL))
    else {
        return Err(Rejection::Malformed("missing Wechatpay-* signature headers".into()));
    };
    if let Some(t) = get(H_SIGNATURE_TYPE) {
        if t != SCHEME {
            return Err(Rejection::BadSignature);
        }
    }
    let ts_num: i64 = ts.parse().map_err(|_| Rejection::Malformed(format!("bad Wechatpay-Timestamp {ts:?}")))?;
    if (i128::from(now_secs) - i128::from(ts_num)).abs() >= i128::from(MAX_SKEW_SECS) {
        return Err(Rejection::Stale);
    }
    let key = keys(serial).ok_or(Rejection::BadSignature)?;
    if !key.verify_sha256_b64(&response_message(ts, nonce, body), sig) {
        return Err(Rejection::BadSignature);
    }
    Ok(())
}

/// Verifies and decrypts a notification (B.6) without interpreting it. `keys` looks up a
/// platform key by `Wechatpay-Serial`.
pub(super) fn open_notification(
    keys: &dyn Fn(&str) -> Option<PublicKey>,
    apiv3_key: &[u8],
    n: &RawNotification,
    now_ms: Millis,
) -> Result<(Notification, Vec<u8>), Rejection> {
    let ct = n.content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if ct != "application/json" {
        return Err(Rejection::ContentType(n.content_type.clone()));
    }
    check_signature(keys, &n.headers, &n.body, now_ms.div_euclid(1000))?;
    let envelope: Notification =
        serde_json::from_slice(&n.body).map_err(|e| Rejection::Malformed(format!("notification JSON: {e}")))?;
    if envelope.resource.algorithm != AEAD {
        return Err(Rejection::Malformed(format!("unsupported algorithm {}", envelope.resource.algorithm)));
    }
    let plain = decrypt_resource(apiv3_key, &envelope.resource).map_err(|_| Rejection::Decrypt)?;
    Ok((envelope, plain))
}

impl WechatClient {
    /// Verifies, decrypts and interprets a notification (the `Gateway` port's
    /// `verify_notification`).
    pub(super) fn read_notification(&self, n: &RawNotification, now_ms: Millis) -> Result<ProviderEvent, Rejection> {
        let lookup = |s: &str| self.lookup(s);
        let (envelope, plain) = open_notification(&lookup, &self.apiv3_key, n, now_ms)?;
        let event = |kind| ProviderEvent {
            provider: Provider::WechatPay,
            event_id: envelope.id.clone(),
            account: self.settings.mchid.clone(),
            kind,
        };
        let malformed = |e: serde_json::Error| Rejection::Malformed(format!("resource JSON: {e}"));
        match envelope.event_type.as_str() {
            "TRANSACTION.SUCCESS" => {
                let t: Transaction = serde_json::from_slice(&plain).map_err(malformed)?;
                let mchid = t.mchid.clone().unwrap_or_default();
                if mchid != self.settings.mchid {
                    return Err(Rejection::UnknownAccount(mchid));
                }
                let appid = t.appid.clone().unwrap_or_default();
                if appid != self.settings.appid {
                    return Err(Rejection::UnknownAccount(appid));
                }
                let amount = t.amount.clone().unwrap_or_default();
                if let Some(c) = amount.currency.as_deref().filter(|c| *c != "CNY") {
                    return Err(Rejection::Currency(c.to_string()));
                }
                if t.trade_state != "SUCCESS" {
                    return Err(Rejection::Malformed(format!(
                        "TRANSACTION.SUCCESS with trade_state {}",
                        t.trade_state
                    )));
                }
                let (Some(out_trade_no), Some(txn)) = (t.out_trade_no.clone(), t.transaction_id.clone()) else {
                    return Err(Rejection::Malformed("out_trade_no and transaction_id are required".into()));
                };
                let total = amount
                    .total
                    .and_then(fen_to_money)
                    .filter(|m| m.is_positive())
                    .ok_or_else(|| Rejection::Malformed("amount.total is missing or not positive".into()))?;
                Ok(event(EventKind::PaymentSucceeded {
                    out_trade_no,
                    provider_txn_id: txn,
                    amount: total,
                    paid_at_ms: t.success_time.as_deref().and_then(parse_rfc3339_ms),
                    payer: t.payer.and_then(|p| p.openid),
                }))
            }
            "REFUND.SUCCESS" | "REFUND.ABNORMAL" | "REFUND.CLOSED" => {
                let r: RefundNotice = serde_json::from_slice(&plain).map_err(malformed)?;
                if r.mchid != self.settings.mchid {
                    return Err(Rejection::UnknownAccount(r.mchid));
                }
                if let Some(c) = r.amount.currency.as_deref().filter(|c| *c != "CNY") {
                    return Err(Rejection::Currency(c.to_string()));
                }
                if r.out_trade_no.is_empty() || r.out_refund_no.is_empty() {
                    return Err(Rejection::Malformed("out_trade_no and out_refund_no are required".into()));
                }
                if envelope.event_type == "REFUND.SUCCESS" {
                    let amount = r
                        .amount
                        .refund
                        .and_then(fen_to_money)
                        .filter(|m| m.is_positive())
                        .ok_or_else(|| Rejection::Malformed("amount.refund is missing or not positive".into()))?;
                    Ok(event(EventKind::RefundSucceeded {
                        out_trade_no: r.out_trade_no,
                        out_refund_no: r.out_refund_no,
                        amount,
                    }))
                } else {
                    let reason = if r.refund_status.is_empty() { envelope.event_type.clone() } else { r.refund_status };
                    Ok(event(EventKind::RefundFailed {
                        out_trade_no: r.out_trade_no,
                        out_refund_no: r.out_refund_no,
                        reason,
                    }))
                }
            }
            other => {
                // verified and decrypted, but nothing we act on
                let v: serde_json::Value = serde_json::from_slice(&plain).map_err(malformed)?;
                match v.get("out_trade_no").and_then(|x| x.as_str()) {
                    Some(o) => Ok(event(EventKind::Informational {
                        out_trade_no: o.to_string(),
                        provider_state: other.to_string(),
                    })),
                    None => Err(Rejection::Malformed(format!("unsupported event_type {other}"))),
                }
            }
        }
    }
}
