//! The Alipay sandbox: a local `gateway.do` that speaks the classic OpenAPI protocol (PROTOCOLS.md
//! Part A) closely enough for our client and the official SDKs, mounted at `/sandbox/alipay`.
//!
//! * `GET|POST gateway.do` — every transport shape of A.2 (query only, query + form body, form
//!   body only), request signatures verified against the registered app key (RSA2; legacy RSA
//!   verify only), answers always HTTP 200 in the compact, signed layout of A.5.2.
//! * Methods: `alipay.trade.precreate`, `.query`, `.close`, `.refund`, `.fastpay.refund.query`,
//!   `alipay.data.dataservice.bill.downloadurl.query`, and the browser methods
//!   `alipay.trade.page.pay` / `alipay.trade.wap.pay` (a cashier page).
//! * `POST apps` registers a test app's public key and returns the sandbox's Alipay public key.
//! * `pay/{token}` is the payer page a QR code opens; `bills/{token}` serves bill archives;
//!   `control/...` is the test-control JSON API shared by all sandboxes.
//!
//! Trades live in memory. Notifications go out through the [`Courier`](super::Courier) on
//! Alipay's retry schedule, V1-signed with the sandbox's own key.

mod bills;
mod trades;

use super::page::{self, PayerPage};
use super::{provider_key, Delivery, FaultSpec, SandboxCtx};
use crate::crypto::{PrivateKey, PublicKey};
use crate::gateways::alipay::wire::{self, param, Params};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use clinicpay::time::Millis;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use trades::{fail, Kind, Members, Status, Trade, TradeKey};

pub(crate) fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

/// A bill download link (valid 30 s).
#[derive(Debug, Clone)]
struct BillLink {
    app_id: String,
    from_ms: Millis,
    to_ms: Millis,
    label: String,
    expires_ms: Millis,
}

#[derive(Default)]
struct State {
    apps: HashMap<String, PublicKey>,
    trades: HashMap<TradeKey, Trade>,
    tokens: HashMap<String, TradeKey>,
    trade_nos: HashMap<String, TradeKey>,
    /// out_trade_no → the most recent trade with it (the control API is keyed by out_trade_no).
    latest: HashMap<String, TradeKey>,
    default_faults: FaultSpec,
    /// Faults set for an out_trade_no before its trade exists.
    pending_faults: HashMap<String, FaultSpec>,
    bills: HashMap<String, BillLink>,
}

struct Core {
    ctx: SandboxCtx,
    key: PrivateKey,
    public: PublicKey,
    state: Mutex<State>,
}

pub struct AlipaySandbox {
    core: Arc<Core>,
}

type Outbox = Vec<(Delivery, FaultSpec)>;

impl Core {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send_all(&self, out: Outbox) {
        for (d, faults) in out {
            self.ctx.courier.send(d, &faults);
        }
    }

    fn base(&self) -> &str {
        self.ctx.settings.base_url.trim_end_matches('/')
    }

    fn pay_url(&self, token: &str) -> String {
        format!("{}/sandbox/alipay/pay/{token}", self.base())
    }

    /// `{"<node>":{…},"sign":"…"}` — compact, `sign` right after the node, HTTP 200 (A.5.2).
    fn signed_json(&self, node_name: &str, members: &Members) -> Response {
        let node = wire::compact_object(members);
        let sign = self.key.sign_sha256_b64(node.as_bytes());
        let body = format!(r#"{{"{node_name}":{node},"sign":"{sign}"}}"#);
        ([(header::CONTENT_TYPE, "application/json;charset=utf-8")], body).into_response()
    }

    fn schedule_expiry(self: &Arc<Self>, key: TradeKey, at: Millis) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let core = Arc::downgrade(self);
        handle.spawn(async move {
            let wait = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0) + 5;
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            if let Some(core) = core.upgrade() {
                let mut out = Vec::new();
                {
                    let mut st = core.lock();
                    if let Some(t) = st.trades.get_mut(&key) {
                        core.expire_if_due(t, now_ms(), &mut out);
                    }
                }
                core.send_all(out);
            }
        });
    }

    /// The whole `gateway.do` exchange for already-merged parameters.
    fn gateway(self: &Arc<Self>, raw: Params) -> Response {
        let mut params: Params = Vec::with_capacity(raw.len());
        let mut duplicate: Option<String> = None;
        for (k, v) in raw {
            match params.iter().find(|(pk, _)| *pk == k) {
                Some((_, pv)) if *pv == v => {}
                Some(_) => duplicate = Some(k),
                None => params.push((k, v)),
            }
        }
        let method = param(&params, "method").unwrap_or("").trim().to_string();
        let node = if method.is_empty() { "error_response".to_string() } else { wire::response_node_name(&method) };
        let browser = matches!(method.as_str(), "alipay.trade.page.pay" | "alipay.trade.wap.pay");
        let refuse = |m: Members| if browser { error_page(&m) } else { self.signed_json(&node, &m) };
        if let Some(k) = duplicate {
            return refuse(fail("40002", "isv.invalid-parameter", &format!("参数 {k} 重复且取值不同")));
        }
        if method.is_empty() {
            return refuse(fail("40001", "isv.missing-method", "缺少方法名参数"));
        }
        for (k, sub, msg) in [
            ("app_id", "isv.missing-app-id", "缺少AppID参数"),
            ("sign_type", "isv.missing-signature-type", "缺少签名类型参数"),
            ("sign", "isv.missing-signature", "缺少签名参数"),
            ("timestamp", "isv.missing-timestamp", "缺少时间戳参数"),
            ("version", "isv.missing-version", "缺少版本参数"),
        ] {
            if param(&params, k).is_none_or(|v| v.trim().is_empty()) {
                return refuse(fail("40001", sub, msg));
            }
        }
        let app_id = param(&params, "app_id").unwrap_or("").to_string();
        let Some(app_key) = self.lock().apps.get(&app_id).cloned() else {
            return refuse(fail("40002", "isv.invalid-app-id", "无效的AppID参数"));
        };
        let sign_type = param(&params, "sign_type").unwrap_or("");
        if !sign_type.eq_ignore_ascii_case("RSA2") && !sign_type.eq_ignore_ascii_case("RSA") {
            return refuse(fail("40002", "isv.invalid-signature-type", "无效的签名类型"));
        }
        let sig = param(&params, "sign").unwrap_or("");
        let content = wire::sign_content(&params, &["sign"], true);
        let verified = wire::verify_with_type(&app_key, sign_type, &content, sig)
            || wire::verify_with_type(&app_key, sign_type, &wire::sign_content(&params, &["sign"], false), sig);
        if !verified {
            let msg =
                format!("验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}");
            return refuse(fail("40002", "isv.invalid-signature", &msg));
        }
        if let Some(cs) = param(&params, "charset").filter(|c| !c.is_empty()) {
            if !cs.eq_ignore_ascii_case("utf-8") && !cs.eq_ignore_ascii_case("utf8") {
                return refuse(fail("40002", "isv.invalid-charset", "沙箱仅支持 UTF-8 字符集"));
            }
        }
        if let Some(f) = param(&params, "format").filter(|f| !f.is_empty()) {
            if !f.eq_ignore_ascii_case("json") {
                return refuse(fail("40002", "isv.invalid-format", "无效的数据格式"));
            }
        }
        if param(&params, "encrypt_type").is_some_and(|e| !e.is_empty()) {
            return refuse(fail("40002", "isv.invalid-encrypt-type", "沙箱不支持内容加密"));
        }
        let biz: Map<String, Value> = match param(&params, "biz_content").filter(|b| !b.trim().is_empty()) {
            None => Map::new(),
            Some(b) => match serde_json::from_str(b) {
                Ok(Value::Object(m)) => m,
                _ => return refuse(fail("40002", "isv.invalid-parameter", "biz_content 不是 JSON 对象")),
            },
        };
        let notify_url = param(&params, "notify_url").filter(|u| !u.is_empty());
        if browser {
            let kind = if method == "alipay.trade.page.pay" { Kind::Page } else { Kind::Wap };
            return self.cashier(
                &app_id,
                kind,
                &biz,
                notify_url,
                param(&params, "return_url").filter(|u| !u.is_empty()),
            );
        }
        let mut out = Vec::new();
        let members = {
            let mut st = self.lock();
            match method.as_str() {
                "alipay.trade.precreate" => self.precreate(&mut st, &app_id, &biz, notify_url, &mut out),
                "alipay.trade.query" => self.query(&mut st, &app_id, &biz, &mut out),
                "alipay.trade.close" => self.close(&mut st, &app_id, &biz, &mut out),
                "alipay.trade.refund" => self.refund(&mut st, &app_id, &biz, &mut out),
                "alipay.trade.fastpay.refund.query" => self.refund_query(&mut st, &app_id, &biz),
                "alipay.data.dataservice.bill.downloadurl.query" => {
                    let now = now_ms();
                    st.bills.retain(|_, b| b.expires_ms > now);
                    self.bill_url(&mut st, &app_id, &biz)
                }
                _ => {
                    drop(st);
                    return self.signed_json("error_response", &fail("40002", "isv.invalid-method", "不存在的方法名"));
                }
            }
        };
        self.send_all(out);
        self.signed_json(&node, &members)
    }

    /// page.pay / wap.pay: the trade exists once the cashier opens (A.7 ⚠).
    fn cashier(
        self: &Arc<Self>,
        app_id: &str,
        kind: Kind,
        biz: &Map<String, Value>,
        notify_url: Option<&str>,
        return_url: Option<&str>,
    ) -> Response {
        let mut out = Vec::new();
        let result = {
            let mut st = self.lock();
            self.open_trade(&mut st, app_id, biz, kind, notify_url, return_url, &mut out)
                .map(|key| st.trades.get(&key).map(|t| self.render_trade(t, None)).unwrap_or_default())
        };
        self.send_all(out);
        match result {
            Ok(html) => Html(html).into_response(),
            Err(m) => error_page(&m),
        }
    }

    fn render_trade(&self, t: &Trade, note: Option<&str>) -> String {
        let status = note.unwrap_or(match t.status {
            Status::Success | Status::Finished => "支付成功 Paid",
            Status::Closed if t.expired => "二维码已过期 Expired",
            Status::Closed if t.paid_ms.is_some() => "已全额退款 Refunded",
            Status::Closed => "交易已关闭 Closed",
            _ if t.buyer_cancelled => "已取消付款 Payment cancelled (the order stays open until it expires)",
            _ => "等待付款 Waiting for payment",
        });
        let url = self.pay_url(&t.token);
        let can_pay = t.can_pay();
        let merchant = format!("沙箱商户 Sandbox merchant · {}", t.app_id);
        page::render(&PayerPage {
            brand: "支付宝 · Alipay",
            color: "#1677ff",
            merchant: &merchant,
            subject: &t.subject,
            amount: t.total,
            status,
            pay_action: can_pay.then(|| format!("{url}/confirm")),
            cancel_action: (can_pay && !t.buyer_cancelled).then(|| format!("{url}/cancel")),
            pay_fields_html: String::new(),
            pay_label: "确认付款 Pay",
        })
    }

    /// Where the browser goes after page / wap pay: `return_url` plus signed parameters (A.6).
    fn return_location(&self, t: &Trade, return_url: &str) -> String {
        let method = if t.kind == Kind::Wap { "alipay.trade.wap.pay.return" } else { "alipay.trade.page.pay.return" };
        let mut p: Params = [
            ("charset", "utf-8".to_string()),
            ("out_trade_no", t.out_trade_no.clone()),
            ("method", method.to_string()),
            ("total_amount", t.total.plain()),
            ("trade_no", t.trade_no.clone()),
            ("auth_app_id", t.app_id.clone()),
            ("version", "1.0".to_string()),
            ("app_id", t.app_id.clone()),
            ("seller_id", Self::seller_id(&t.app_id)),
            ("timestamp", wire::fmt_time(now_ms())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        wire::sign_notify_v1(&mut p, &self.key);
        let sep = if return_url.contains('?') { '&' } else { '?' };
        format!("{return_url}{sep}{}", wire::encode_form(&p))
    }

    fn key_for(&self, st: &State, out_trade_no: &str) -> anyhow::Result<TradeKey> {
        st.latest
            .get(out_trade_no)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no trade {out_trade_no} in the Alipay sandbox"))
    }

    /// Runs a state change on the latest trade with this out_trade_no, then sends what it queued.
    fn with_trade<T>(
        &self,
        out_trade_no: &str,
        f: impl FnOnce(&Core, &mut Trade, &mut Outbox) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut out = Vec::new();
        let r = {
            let mut st = self.lock();
            let key = self.key_for(&st, out_trade_no)?;
            let t = st.trades.get_mut(&key).ok_or_else(|| anyhow::anyhow!("no trade {out_trade_no}"))?;
            f(self, t, &mut out)
        };
        self.send_all(out);
        r
    }

    fn view(&self, t: &Trade) -> Value {
        json!({
            "out_trade_no": t.out_trade_no,
            "app_id": t.app_id,
            "state": t.status_word(),
            "amount": t.total.plain(),
            "provider_txn_id": t.scanned.then(|| t.trade_no.clone()),
            "kind": match t.kind { Kind::Qr => "qr", Kind::Page => "page", Kind::Wap => "wap" },
            "expired": t.expired,
            "pay_url": self.pay_url(&t.token),
            "refunded": t.refunded().plain(),
            "refunds": t.refunds.iter().map(|r| json!({
                "out_refund_no": r.out_request_no,
                "amount": r.amount.plain(),
                "refunded_at": wire::fmt_time(r.at_ms),
            })).collect::<Vec<_>>(),
            "faults": t.faults,
            "deliveries": self.ctx.courier.records_for(&t.out_trade_no),
        })
    }
}

/// `<key_dir>/alipay-apps.json`: registered app ids and their public keys.
fn apps_file(ctx: &SandboxCtx) -> Option<std::path::PathBuf> {
    ctx.settings.key_dir.as_ref().map(|d| d.join("alipay-apps.json"))
}

fn error_page(m: &Members) -> Response {
    let get = |k: &str| m.iter().find(|(n, _)| *n == k).and_then(|(_, v)| v.as_str()).unwrap_or("").to_string();
    let html = format!(
        r#"<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>支付宝 · 错误</title></head>
<body style="font-family:system-ui,sans-serif;margin:24px"><h1 style="color:#1677ff">支付宝 · Alipay <small>沙箱 Sandbox</small></h1>
<p role="alert" data-error-code="{sub}">错误代码 {sub}</p><p>{msg}</p></body></html>"#,
        sub = page::esc(&get("sub_code")),
        msg = page::esc(&get("sub_msg")),
    );
    Html(html).into_response()
}

fn json_error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": msg.to_string() }))).into_response()
}

impl AlipaySandbox {
    pub fn new(ctx: SandboxCtx) -> anyhow::Result<Self> {
        let key = provider_key(&ctx.settings, "alipay")?;
        let public = key.public_key();
        let mut state = State::default();
        if let Some(path) = apps_file(&ctx) {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let saved: HashMap<String, String> = serde_json::from_str(&text).unwrap_or_default();
                for (app_id, k) in saved {
                    match PublicKey::parse(&k) {
                        Ok(k) => {
                            state.apps.insert(app_id, k);
                        }
                        Err(e) => tracing::warn!(%app_id, error = %e, "ignoring a saved Alipay sandbox app key"),
                    }
                }
            }
        }
        Ok(AlipaySandbox { core: Arc::new(Core { ctx, key, public, state: Mutex::new(state) }) })
    }

    /// The sandbox's "Alipay public key" (SPKI PEM) that clients verify responses and
    /// notifications with.
    pub fn public_key_pem(&self) -> String {
        self.core.public.to_pem()
    }

    /// The gateway URL to configure a client with.
    pub fn gateway_url(&self) -> String {
        format!("{}/sandbox/alipay/gateway.do", self.core.base())
    }

    /// Registers (or re-keys) a test app: its public key (PEM or bare base64, SPKI or PKCS#1)
    /// checks its requests. Returns the sandbox's public key PEM.
    pub fn register_app(&self, app_id: &str, app_public_key: &str) -> anyhow::Result<String> {
        let app_id = app_id.trim();
        if app_id.is_empty() || app_id.len() > 32 || !app_id.bytes().all(|c| c.is_ascii_alphanumeric()) {
            anyhow::bail!("app_id must be 1–32 letters or digits");
        }
        let key = PublicKey::parse(app_public_key)?;
        if key == self.core.public {
            anyhow::bail!("the app key must differ from the sandbox's Alipay key");
        }
        let snapshot: HashMap<String, String> = {
            let mut st = self.core.lock();
            st.apps.insert(app_id.to_string(), key);
            st.apps.iter().map(|(id, k)| (id.clone(), k.to_base64())).collect()
        };
        // registrations survive restarts like the sandbox key does (best effort)
        if let Some(path) = apps_file(&self.core.ctx) {
            let saved = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .map_err(anyhow::Error::from)
                .and_then(|_| super::write_private(&path, &serde_json::to_string_pretty(&snapshot)?));
            if let Err(e) = saved {
                tracing::warn!(error = %e, path = %path.display(), "could not save the Alipay sandbox apps");
            }
        }
        Ok(self.public_key_pem())
    }

    /// The payer pays (scanning first if needed): TRADE_SUCCESS and the notification.
    pub fn pay(&self, out_trade_no: &str) -> anyhow::Result<()> {
        self.core.with_trade(out_trade_no, |c, t, out| c.pay_trade(t, now_ms(), out).map_err(anyhow::Error::msg))
    }

    /// The payer scans the QR code: the trade exists, WAIT_BUYER_PAY.
    pub fn scan(&self, out_trade_no: &str) -> anyhow::Result<()> {
        self.core.with_trade(out_trade_no, |c, t, out| c.scan_trade(t, now_ms(), out).map_err(anyhow::Error::msg))
    }

    /// The payer leaves the cashier. Alipay sends nothing and the trade stays WAIT_BUYER_PAY
    /// until it expires or the merchant closes it.
    pub fn cancel(&self, out_trade_no: &str) -> anyhow::Result<()> {
        self.core.with_trade(out_trade_no, |c, t, out| {
            c.expire_if_due(t, now_ms(), out);
            if !t.can_pay() {
                anyhow::bail!("trade is {}", t.status_word());
            }
            t.buyer_cancelled = true;
            Ok(())
        })
    }

    /// The refund window ends: TRADE_FINISHED (notified).
    pub fn finish(&self, out_trade_no: &str) -> anyhow::Result<()> {
        self.core.with_trade(out_trade_no, |c, t, out| c.finish_trade(t, now_ms(), out).map_err(anyhow::Error::msg))
    }

    /// Faults for one trade; set before the trade exists, they apply when it is created.
    pub fn set_faults(&self, out_trade_no: &str, faults: FaultSpec) {
        let mut st = self.core.lock();
        match st.latest.get(out_trade_no).cloned() {
            Some(key) => {
                if let Some(t) = st.trades.get_mut(&key) {
                    t.faults = faults;
                }
            }
            None => {
                st.pending_faults.insert(out_trade_no.to_string(), faults);
            }
        }
    }

    /// Faults applied to trades created from now on (`FaultSpec::default()` resets).
    pub fn set_default_faults(&self, faults: FaultSpec) {
        self.core.lock().default_faults = faults;
    }

    /// `WAIT_SCAN` (precreated, not scanned), `WAIT_BUYER_PAY`, `TRADE_SUCCESS`,
    /// `TRADE_FINISHED` or `TRADE_CLOSED`.
    pub fn trade_state(&self, out_trade_no: &str) -> Option<String> {
        let mut out = Vec::new();
        let s = {
            let mut st = self.core.lock();
            let key = st.latest.get(out_trade_no)?.clone();
            let t = st.trades.get_mut(&key)?;
            self.core.expire_if_due(t, now_ms(), &mut out);
            t.status_word().to_string()
        };
        self.core.send_all(out);
        Some(s)
    }

    /// The control API's view of a trade.
    pub fn trade_view(&self, out_trade_no: &str) -> Option<Value> {
        let st = self.core.lock();
        let key = st.latest.get(out_trade_no)?;
        st.trades.get(key).map(|t| self.core.view(t))
    }

    /// The success notification of a paid trade exactly as the sandbox sent it (headers, form body).
    pub fn signed_success_notification(&self, out_trade_no: &str) -> anyhow::Result<(Vec<(String, String)>, Vec<u8>)> {
        let st = self.core.lock();
        let key = self.core.key_for(&st, out_trade_no)?;
        let params = st
            .trades
            .get(&key)
            .and_then(|t| t.success_notice.clone())
            .ok_or_else(|| anyhow::anyhow!("trade {out_trade_no} has not been paid"))?;
        Ok((
            vec![("content-type".into(), "application/x-www-form-urlencoded; charset=utf-8".into())],
            wire::encode_form(&params).into_bytes(),
        ))
    }

    /// Moves a trade's times `days` days into the past (bills are only available for past days).
    pub fn backdate(&self, out_trade_no: &str, days: i64) -> anyhow::Result<()> {
        let d = days.checked_mul(clinicpay::time::DAY_MS).filter(|d| (0..=3650 * clinicpay::time::DAY_MS).contains(d));
        let d = d.ok_or_else(|| anyhow::anyhow!("days must be 0..=3650"))?;
        self.core.with_trade(out_trade_no, |_, t, _| {
            t.created_ms -= d;
            t.paid_ms = t.paid_ms.map(|x| x - d);
            t.closed_ms = t.closed_ms.map(|x| x - d);
            for r in &mut t.refunds {
                r.at_ms -= d;
            }
            Ok(())
        })
    }
}

pub fn router(s: Arc<AlipaySandbox>) -> axum::Router {
    axum::Router::new()
        .route("/gateway.do", get(gateway).post(gateway))
        .route("/apps", post(register))
        .route("/pay/{token}", get(payer_page))
        .route("/pay/{token}/confirm", post(payer_confirm))
        .route("/pay/{token}/cancel", post(payer_cancel))
        .route("/bills/{token}", get(bill_download))
        .route("/control/defaults", post(control_defaults))
        .route("/control/trades/{no}", get(control_get))
        .route("/control/trades/{no}/notification", get(control_notification))
        .route("/control/trades/{no}/{action}", post(control_action))
        .with_state(s)
}

async fn gateway(
    AxState(s): AxState<Arc<AlipaySandbox>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params = wire::parse_form(q.unwrap_or_default().as_bytes());
    if !body.is_empty() {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if ct.trim_start().to_ascii_lowercase().starts_with("multipart/") {
            let node =
                param(&params, "method").map(wire::response_node_name).unwrap_or_else(|| "error_response".into());
            return s.core.signed_json(&node, &fail("40002", "isv.invalid-content-type", "沙箱不支持文件上传接口"));
        }
        params.extend(wire::parse_form(&body));
    }
    s.core.gateway(params)
}

#[derive(serde::Deserialize)]
struct RegisterApp {
    app_id: String,
    app_public_key: String,
}

async fn register(AxState(s): AxState<Arc<AlipaySandbox>>, body: Bytes) -> Response {
    let req: RegisterApp = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("expected {{app_id, app_public_key}}: {e}")),
    };
    match s.register_app(&req.app_id, &req.app_public_key) {
        Ok(pem) => axum::Json(json!({
            "app_id": req.app_id.trim(),
            "alipay_public_key": pem,
            "gateway_url": s.gateway_url(),
        }))
        .into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

fn not_found_page() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!DOCTYPE html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><p>二维码无效 Unknown code</p></html>"),
    )
        .into_response()
}

async fn payer_page(AxState(s): AxState<Arc<AlipaySandbox>>, Path(token): Path<String>) -> Response {
    let core = &s.core;
    let mut out = Vec::new();
    let html = {
        let mut st = core.lock();
        let Some(key) = st.tokens.get(&token).cloned() else { return not_found_page() };
        let Some(t) = st.trades.get_mut(&key) else { return not_found_page() };
        // opening the cashier creates the Alipay trade (a closed / expired code stays closed)
        let _ = core.scan_trade(t, now_ms(), &mut out);
        core.render_trade(t, None)
    };
    core.send_all(out);
    Html(html).into_response()
}

async fn payer_confirm(AxState(s): AxState<Arc<AlipaySandbox>>, Path(token): Path<String>) -> Response {
    let core = &s.core;
    let mut out = Vec::new();
    let result = {
        let mut st = core.lock();
        let Some(key) = st.tokens.get(&token).cloned() else { return not_found_page() };
        let Some(t) = st.trades.get_mut(&key) else { return not_found_page() };
        match core.pay_trade(t, now_ms(), &mut out) {
            Ok(()) => match (&t.return_url, t.kind) {
                (Some(r), Kind::Page | Kind::Wap) => Err(core.return_location(t, r)),
                _ => Ok(core.render_trade(t, None)),
            },
            Err(e) => {
                let note = if e.contains("paid") {
                    "支付成功 Paid (already)"
                } else {
                    "无法付款 Cannot pay: 交易已关闭 closed"
                };
                Ok(core.render_trade(t, Some(note)))
            }
        }
    };
    core.send_all(out);
    match result {
        Ok(html) => Html(html).into_response(),
        Err(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
    }
}

async fn payer_cancel(AxState(s): AxState<Arc<AlipaySandbox>>, Path(token): Path<String>) -> Response {
    let core = &s.core;
    let mut out = Vec::new();
    let html = {
        let mut st = core.lock();
        let Some(key) = st.tokens.get(&token).cloned() else { return not_found_page() };
        let Some(t) = st.trades.get_mut(&key) else { return not_found_page() };
        core.expire_if_due(t, now_ms(), &mut out);
        if t.can_pay() {
            t.buyer_cancelled = true;
        }
        core.render_trade(t, None)
    };
    core.send_all(out);
    Html(html).into_response()
}

async fn bill_download(AxState(s): AxState<Arc<AlipaySandbox>>, Path(token): Path<String>) -> Response {
    let now = now_ms();
    let (link, rows) = {
        let st = s.core.lock();
        let Some(link) = st.bills.get(&token).filter(|l| l.expires_ms > now).cloned() else {
            return (StatusCode::NOT_FOUND, "bill link unknown or expired (links are valid for 30 s)").into_response();
        };
        let rows = Core::bill_rows(&st, &link.app_id, link.from_ms, link.to_ms);
        (link, rows)
    };
    let account = format!("{}0156", Core::seller_id(&link.app_id));
    match bills::bill_zip(&account, &link.label, link.from_ms, link.to_ms, &rows, now) {
        Ok(zip) => (
            [
                (header::CONTENT_TYPE, "application/zip".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{account}_{}.csv.zip\"", link.label)),
            ],
            zip,
        )
            .into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn faults_from(body: &[u8]) -> Result<FaultSpec, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(FaultSpec::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Box::new(json_error(StatusCode::BAD_REQUEST, format!("bad FaultSpec: {e}"))))
}

async fn control_defaults(AxState(s): AxState<Arc<AlipaySandbox>>, body: Bytes) -> Response {
    match faults_from(&body) {
        Ok(f) => {
            s.set_default_faults(f.clone());
            axum::Json(json!({ "defaults": f })).into_response()
        }
        Err(r) => *r,
    }
}

async fn control_get(AxState(s): AxState<Arc<AlipaySandbox>>, Path(no): Path<String>) -> Response {
    // refresh expiry first so the view is current
    let _ = s.trade_state(&no);
    match s.trade_view(&no) {
        Some(v) => axum::Json(v).into_response(),
        None => json_error(StatusCode::NOT_FOUND, format!("no trade {no}")),
    }
}

async fn control_notification(AxState(s): AxState<Arc<AlipaySandbox>>, Path(no): Path<String>) -> Response {
    match s.signed_success_notification(&no) {
        Ok((headers, body)) => axum::Json(json!({
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }))
        .into_response(),
        Err(e) => json_error(StatusCode::NOT_FOUND, e),
    }
}

async fn control_action(
    AxState(s): AxState<Arc<AlipaySandbox>>,
    Path((no, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if s.trade_view(&no).is_none() && action != "faults" {
        return json_error(StatusCode::NOT_FOUND, format!("no trade {no}"));
    }
    let result = match action.as_str() {
        "pay" => s.pay(&no),
        "scan" => s.scan(&no),
        "cancel" => s.cancel(&no),
        "finish" => s.finish(&no),
        "faults" => match faults_from(&body) {
            Ok(f) => {
                s.set_faults(&no, f);
                Ok(())
            }
            Err(r) => return *r,
        },
        "backdate" => {
            let days = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("days").and_then(Value::as_i64));
            match days {
                Some(d) => s.backdate(&no, d),
                None => return json_error(StatusCode::BAD_REQUEST, "expected {\"days\": N}"),
            }
        }
        other => return json_error(StatusCode::NOT_FOUND, format!("unknown action {other}")),
    };
    match result {
        Ok(()) => match s.trade_view(&no) {
            Some(v) => axum::Json(v).into_response(),
            None => axum::Json(json!({ "out_trade_no": no, "pending_faults": true })).into_response(),
        },
        Err(e) => json_error(StatusCode::CONFLICT, e),
    }
}

#[cfg(test)]
mod tests;
