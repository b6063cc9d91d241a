//! The charge screen (费用收取, C6): primary first, secondary on request.
//!
//! Find a patient → one card with everything owed and one big "Scan to pay" (F2) → the QR with
//! amount, channel, countdown, refresh and cancel → paid, with the per-bill breakdown and a
//! printable receipt. "View details and pay part" opens the bill list, all ticked; unticking
//! updates the total at once; "Generate payment" pays the ticked set.

use crate::api::{
    cancel_payment, charge_overview, check_payment, find_patients, refresh_payment, start_payment, ChargeData,
    StartPaymentRequest,
};
use crate::components::{enc, fmt_time, Amount, ErrorView, Loading};
use crate::error::AppError;
use crate::i18n::{error_text, use_i18n, I18n};
use clinicpay::checkout::SessionView;
use clinicpay::money::Money;
use clinicpay::payments::{Provider, SessionStatus};
use clinicpay::views::PatientSummary;
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use std::collections::BTreeSet;

const METHODS: [(&str, Provider); 3] =
    [("alipay", Provider::Alipay), ("wechat", Provider::WechatPay), ("bank_card", Provider::Bank)];
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const METHOD_KEY: &str = "clinicpay.charge.method";

/// What the screen is showing, from the URL (`?q=` search, `?patient=` chosen).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Found {
    Nothing,
    NoMatch(String),
    Matches(Vec<PatientSummary>),
    Patient(Box<ChargeData>),
}

async fn load(q: Option<String>, patient: Option<String>) -> Result<Found, AppError> {
    if let Some(p) = patient.filter(|p| !p.is_empty()) {
        return Ok(Found::Patient(Box::new(charge_overview(p).await?)));
    }
    match q.map(|q| q.trim().to_string()).filter(|q| !q.is_empty()) {
        None => Ok(Found::Nothing),
        Some(q) => {
            let found = find_patients(q.clone()).await?;
            match found.len() {
                0 => Ok(Found::NoMatch(q)),
                // a unique match (a scanned record number) opens the patient at once
                1 => Ok(Found::Patient(Box::new(charge_overview(found[0].id.to_string()).await?))),
                _ => Ok(Found::Matches(found)),
            }
        }
    }
}

fn provider_label(i18n: I18n, p: Provider) -> &'static str {
    if i18n.is_en() {
        p.label_en()
    } else {
        p.label_zh()
    }
}

fn err_text(i18n: I18n, e: &AppError) -> String {
    let base = error_text(&e.code, i18n.lang.get()).map(str::to_string).unwrap_or_else(|| e.message.clone());
    format!("{base} [{}]", e.code)
}

/// Browser-only helpers (no-ops on the server).
mod browser {
    pub fn now_ms() -> i64 {
        #[cfg(feature = "hydrate")]
        {
            js_sys::Date::now() as i64
        }
        #[cfg(not(feature = "hydrate"))]
        {
            0
        }
    }

    pub fn new_key() -> String {
        #[cfg(feature = "hydrate")]
        {
            web_sys::window().and_then(|w| w.crypto().ok()).map(|c| c.random_uuid()).unwrap_or_default()
        }
        #[cfg(not(feature = "hydrate"))]
        {
            String::new()
        }
    }

    pub fn stored_method() -> Option<String> {
        #[cfg(feature = "hydrate")]
        {
            web_sys::window()
                .and_then(|w| w.local_storage().ok().flatten())
                .and_then(|s| s.get_item(super::METHOD_KEY).ok().flatten())
        }
        #[cfg(not(feature = "hydrate"))]
        {
            None
        }
    }

    pub fn store_method(m: &str) {
        #[cfg(feature = "hydrate")]
        if let Some(s) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
            let _ = s.set_item(super::METHOD_KEY, m);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = m;
    }

    pub fn print() {
        #[cfg(feature = "hydrate")]
        if let Some(w) = web_sys::window() {
            let _ = w.print();
        }
    }
}

#[component]
pub fn ChargePage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let key = Memo::new(move |_| query.with(|q| (q.get("q"), q.get("patient"))));
    let reload = RwSignal::new(0u32);
    let found = Resource::new(move || (key.get(), reload.get()), |((q, p), _)| load(q, p));
    let qv = move || query.with(|q| q.get("q")).unwrap_or_default();
    // The payment in progress outlives reloads of the patient's bills (after a payment the
    // list refreshes while the receipt stays on screen).
    let session: RwSignal<Option<SessionView>> = RwSignal::new(None);
    let acts = SessionActions::new(session, reload);

    view! {
        <div class="charge">
            <h1>{move || i18n.t("费用收取", "Charge")}</h1>
            <Form method="GET" action="/charge" attr:class="filters charge-search" attr:role="search">
                <div class="field grow">
                    <label for="charge-q">{move || i18n.t("患者（姓名、病历号或扫码）", "Patient (name, record number or scan)")}</label>
                    <input id="charge-q" type="search" name="q" prop:value=qv maxlength="64" autofocus autocomplete="off"/>
                </div>
                <div class="field actions">
                    <button type="submit" class="btn">{move || i18n.t("查询", "Search")}</button>
                </div>
            </Form>
            <Suspense fallback=|| view! { <Loading/> }>
                {move || Suspend::new(async move {
                    match found.await {
                        Err(e) => view! { <ErrorView err=e/> }.into_any(),
                        Ok(Found::Nothing) => view! {
                            <p class="hint">{move || i18n.t("输入患者姓名或病历号，或扫描就诊卡，然后按回车。", "Type a name or record number, or scan the patient's card, then press Enter.")}</p>
                        }.into_any(),
                        Ok(Found::NoMatch(q)) => view! {
                            <p class="alert alert-warn" role="status">{move || if i18n.is_en() { format!("No patient matches “{q}”.") } else { format!("没有找到“{q}”对应的患者。") }}</p>
                        }.into_any(),
                        Ok(Found::Matches(list)) => view! { <MatchList list/> }.into_any(),
                        Ok(Found::Patient(data)) => view! { <PatientCharge data=*data reload session acts/> }.into_any(),
                    }
                })}
            </Suspense>
        </div>
    }
}

#[component]
fn MatchList(list: Vec<PatientSummary>) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <section class="panel">
            <h2>{move || i18n.t("请选择患者", "Choose the patient")}</h2>
            <table class="table" aria-label=move || i18n.t("匹配的患者", "Matching patients")>
                <thead><tr>
                    <th scope="col">{move || i18n.t("姓名", "Name")}</th>
                    <th scope="col">{move || i18n.t("病历号", "MRN")}</th>
                    <th scope="col">{move || i18n.t("电话", "Phone")}</th>
                    <th scope="col" class="num">{move || i18n.t("未结清", "Owed")}</th>
                </tr></thead>
                <tbody>
                    {list.into_iter().map(|p| view! { <tr>
                        <td><a href=format!("/charge?patient={}", enc(p.id.as_str()))>{p.name.clone()}</a></td>
                        <td>{p.mrn.clone()}</td>
                        <td>{p.phone_masked.clone()}</td>
                        <td class="num"><Amount value=p.unpaid_total/></td>
                    </tr> }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
fn PatientCharge(
    data: ChargeData,
    reload: RwSignal<u32>,
    session: RwSignal<Option<SessionView>>,
    acts: SessionActions,
) -> impl IntoView {
    let i18n = use_i18n();
    let bills = StoredValue::new(data.bills.clone());
    let all_ids: BTreeSet<String> = data.bills.iter().map(|b| b.id.to_string()).collect();
    let selected = RwSignal::new(all_ids.clone());
    let details_open = RwSignal::new(false);
    let providers = data.providers.clone();
    let method = RwSignal::new("alipay".to_string());
    // a new patient: show their open payment, if any; the same patient: keep what is shown
    // (written only when it changes: a write during rendering would re-render the page)
    let shown = session.with_untracked(|s| s.as_ref().map(|s| (s.patient_id.clone(), s.id.clone())));
    let keep = shown.as_ref().is_some_and(|(p, _)| *p == data.patient.id);
    if !keep {
        let next = data.pending.first().cloned();
        if shown.map(|(_, id)| id) != next.as_ref().map(|s| s.id.clone()) {
            session.set(next);
        }
    }
    let error: RwSignal<Option<AppError>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let patient_id = data.patient.id.to_string();

    // the remembered channel (browser only)
    Effect::new(move |_| {
        if let Some(m) = browser::stored_method() {
            if METHODS.iter().any(|(k, _)| *k == m) {
                method.set(m);
            }
        }
    });

    let selected_total = Memo::new(move |_| {
        let sel = selected.get();
        bills.with_value(|bs| {
            Money::sum(bs.iter().filter(|b| sel.contains(b.id.as_str())).map(|b| b.total)).unwrap_or(Money::ZERO)
        })
    });
    let total_all = Money::sum(data.bills.iter().map(|b| b.total)).unwrap_or(Money::ZERO);
    let count = data.bills.len();

    let start = Action::new(move |req: &StartPaymentRequest| {
        let req = req.clone();
        async move { start_payment(req).await }
    });
    Effect::new(move |_| {
        if let Some(r) = start.value().get() {
            busy.set(false);
            match r {
                Ok(s) => {
                    error.set(None);
                    session.set(Some(s));
                }
                Err(e) => error.set(Some(e)),
            }
        }
    });
    let pay = {
        let patient_id = patient_id.clone();
        move |ids: Vec<String>| {
            if ids.is_empty()
                || busy.get_untracked()
                || session.with_untracked(|s| s.as_ref().is_some_and(|s| s.status == SessionStatus::Pending))
            {
                return;
            }
            busy.set(true);
            error.set(None);
            browser::store_method(&method.get_untracked());
            start.dispatch(StartPaymentRequest {
                patient_id: patient_id.clone(),
                bill_ids: ids,
                method: method.get_untracked(),
                idempotency_key: browser::new_key(),
            });
        }
    };
    let pay_all = {
        let pay = pay.clone();
        let ids: Vec<String> = all_ids.iter().cloned().collect();
        move || pay(ids.clone())
    };
    let pay_selected = {
        let pay = pay.clone();
        move || pay(selected.get_untracked().into_iter().collect())
    };

    // F2: scan to pay; Esc: close the details
    {
        let pay_all = pay_all.clone();
        let handle = window_event_listener(leptos::ev::keydown, move |e| {
            if e.key() == "F2" {
                e.prevent_default();
                pay_all();
            } else if e.key() == "Escape" {
                details_open.set(false);
            }
        });
        on_cleanup(move || handle.remove());
    }

    // an open QR blocks a second one; a finished payment does not
    let has_session = move || session.with(|s| s.as_ref().is_some_and(|s| s.status == SessionStatus::Pending));
    let nothing_owed = count == 0;
    let patient = data.patient.clone();

    view! {
        <div class="charge-grid">
            <section class="panel charge-card" aria-labelledby="charge-patient" data-patient-id=patient.id.to_string()>
                <div class="charge-card-head">
                    <h2 id="charge-patient">{patient.name.clone()}</h2>
                    <span class="muted">{move || format!("{} {}", i18n.t("病历号", "MRN"), patient.mrn)}</span>
                </div>
                {if nothing_owed {
                    view! { <p class="nothing-owed" role="status">{move || i18n.t("该患者没有待缴费用。", "Nothing to pay.")}</p> }.into_any()
                } else {
                    let pay_all = pay_all.clone();
                    view! {
                        <p class="charge-count" data-testid="unpaid-summary">
                            {move || if i18n.is_en() { format!("{count} unpaid bills") } else { format!("共 {count} 笔未结清账单") }}
                        </p>
                        <p class="charge-total">
                            <span class="muted">{move || i18n.t("应付合计", "Total due")}</span>
                            <span data-testid="total-due"><Amount value=total_all large=true/></span>
                        </p>
                        <fieldset class="channels">
                            <legend>{move || i18n.t("支付渠道", "Channel")}</legend>
                            {METHODS.into_iter().map(|(key, p)| {
                                let available = providers.contains(&p);
                                view! {
                                    <label class="channel">
                                        <input type="radio" name="method" value=key
                                            prop:checked=move || method.get() == key
                                            disabled=!available
                                            on:change=move |_| { method.set(key.to_string()); browser::store_method(key); }/>
                                        {move || provider_label(i18n, p)}
                                    </label>
                                }
                            }).collect_view()}
                        </fieldset>
                        <button type="button" class="btn btn-primary btn-large scan-to-pay"
                            on:click=move |_| pay_all()
                            disabled=move || busy.get() || has_session()>
                            {move || i18n.t("扫码支付", "Scan to pay")}<kbd>"F2"</kbd>
                        </button>
                        <button type="button" class="link-button details-link"
                            aria-expanded=move || details_open.get().to_string()
                            on:click=move |_| details_open.update(|o| *o = !*o)>
                            {move || i18n.t("查看明细与部分支付", "View details and pay part")}
                        </button>
                    }.into_any()
                }}
                {move || error.get().map(|e| view! { <p class="alert alert-error" role="alert">{err_text(i18n, &e)}</p> })}
            </section>

            <div class="charge-side">
                {move || busy.get().then(|| view! { <p class="panel creating" role="status" aria-live="polite">{i18n.t("正在生成二维码…", "Creating the QR code…")}</p> })}
                {move || session.get().map(|s| view! { <SessionPanel session=s store=session reload acts/> })}
            </div>
        </div>

        {move || details_open.get().then(|| {
            let pay_selected = pay_selected.clone();
            view! {
                <section class="panel charge-details" aria-label=move || i18n.t("账单明细", "Bill details")>
                    <h2>{move || i18n.t("账单明细", "Bill details")}</h2>
                    <table class="table">
                        <thead><tr>
                            <th scope="col">{move || i18n.t("选择", "Pay")}</th>
                            <th scope="col">{move || i18n.t("账单号", "Bill no.")}</th>
                            <th scope="col">{move || i18n.t("科室", "Department")}</th>
                            <th scope="col">{move || i18n.t("开单时间", "Issued")}</th>
                            <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                        </tr></thead>
                        <tbody>
                            {bills.get_value().into_iter().map(|b| {
                                let id = b.id.to_string();
                                let id2 = b.id.to_string();
                                let dep = (b.department_zh.clone(), b.department_en.clone());
                                let label = format!("{} {}", b.bill_no, b.total.display());
                                view! { <tr>
                                    <td><input type="checkbox" aria-label=label
                                        prop:checked=move || selected.with(|s| s.contains(&id))
                                        on:change=move |ev| {
                                            let on = event_target_checked(&ev);
                                            selected.update(|s| { if on { s.insert(id2.clone()); } else { s.remove(&id2); } });
                                        }/></td>
                                    <td>{b.bill_no.clone()}</td>
                                    <td>{move || i18n.pick(&dep.0, &dep.1)}</td>
                                    <td>{fmt_time(b.created_at_ms)}</td>
                                    <td class="num"><Amount value=b.total/></td>
                                </tr> }
                            }).collect_view()}
                        </tbody>
                        <tfoot><tr>
                            <th scope="row" colspan="4" class="num">{move || i18n.t("已选合计", "Selected total")}</th>
                            <td class="num" data-testid="selected-total">{move || selected_total.get().display()}</td>
                        </tr></tfoot>
                    </table>
                    <div class="details-actions">
                        <button type="button" class="btn btn-primary"
                            disabled=move || selected.with(|s| s.is_empty()) || busy.get() || has_session()
                            on:click=move |_| pay_selected()>
                            {move || i18n.t("生成支付", "Generate payment")}
                        </button>
                    </div>
                </section>
            }
        })}
    }
}

/// Cancel / refresh / check, owned by the page so their answers land even when the panel that
/// asked has been replaced meanwhile (a status event can arrive before the answer).
#[derive(Clone, Copy)]
struct SessionActions {
    cancel: Action<String, Result<SessionView, AppError>>,
    refresh: Action<String, Result<SessionView, AppError>>,
    check: Action<String, Result<SessionView, AppError>>,
    error: RwSignal<Option<AppError>>,
}

impl SessionActions {
    fn new(store: RwSignal<Option<SessionView>>, reload: RwSignal<u32>) -> SessionActions {
        let error = RwSignal::new(None);
        let acts = SessionActions {
            cancel: Action::new(|id: &String| cancel_payment(id.clone())),
            refresh: Action::new(|id: &String| refresh_payment(id.clone())),
            check: Action::new(|id: &String| check_payment(id.clone())),
            error,
        };
        for a in [acts.cancel, acts.refresh, acts.check] {
            Effect::new(move |_| {
                if let Some(r) = a.value().get() {
                    match r {
                        Ok(s) => {
                            error.set(None);
                            let done = s.status == SessionStatus::Paid || s.status == SessionStatus::Cancelled;
                            store.set(Some(s));
                            if done {
                                reload.update(|n| *n += 1);
                            }
                        }
                        Err(e) => error.set(Some(e)),
                    }
                }
            });
        }
        acts
    }
}

/// The QR, live status and countdown; the result once paid.
#[component]
fn SessionPanel(
    session: SessionView,
    store: RwSignal<Option<SessionView>>,
    reload: RwSignal<u32>,
    acts: SessionActions,
) -> impl IntoView {
    let i18n = use_i18n();
    let id = session.id.to_string();
    let now = RwSignal::new(browser::now_ms());

    // countdown tick and live status (browser only)
    Effect::new({
        let id = id.clone();
        move |_| {
            if let Ok(h) =
                set_interval_with_handle(move || now.set(browser::now_ms()), std::time::Duration::from_secs(1))
            {
                on_cleanup(move || h.clear());
            }
            live::follow(id.clone(), store, reload);
        }
    });

    let status = session.status;
    let provider = session.provider;
    let total = session.total;
    let expires = session.expires_at_ms;
    let content = session.qr_content().unwrap_or_default().to_string();
    let is_sandbox = content.contains("/sandbox/");
    let left = move || ((expires - now.get()) / 1000).max(0);
    let expired_locally = move || status == SessionStatus::Pending && now.get() > 0 && left() == 0;

    let action_error = acts.error;
    let payables = session.payables.clone();
    view! {
        <section class="panel qr-panel" aria-live="polite" data-testid="session-panel" data-status=status.as_str() data-out-trade-no=session.out_trade_no.to_string()>
            {match status {
                SessionStatus::Pending => {
                    let alt = move || i18n.t("支付二维码", "Payment QR code");
                    view! {
                        <h2>{move || i18n.t("请患者扫码支付", "Ask the patient to scan")}</h2>
                        {if content.is_empty() {
                            view! { <p role="status">{move || i18n.t("正在等待渠道返回二维码…", "Waiting for the provider…")}</p> }.into_any()
                        } else {
                            view! {
                                <img class="qr" src=format!("/api/v1/finance/qr-codes/{}.svg", id) alt=alt width="260" height="260"
                                    data-qr-content=content.clone()/>
                            }.into_any()
                        }}
                        <p class="qr-amount"><Amount value=total large=true/></p>
                        <p class="qr-meta">{move || provider_label(i18n, provider)}</p>
                        <p class="countdown" role="timer">
                            {move || if expired_locally() {
                                i18n.t("二维码已过期", "QR expired").to_string()
                            } else {
                                let l = left();
                                format!("{} {:02}:{:02}", i18n.t("二维码有效期", "QR expires in"), l / 60, l % 60)
                            }}
                        </p>
                        <p class="waiting" role="status">{move || i18n.t("等待支付…", "Waiting for payment…")}</p>
                        <div class="qr-actions">
                            <button type="button" class="btn" on:click={let id = id.clone(); move |_| { acts.refresh.dispatch(id.clone()); }}>{move || i18n.t("刷新二维码", "Refresh QR")}</button>
                            <button type="button" class="btn" on:click={let id = id.clone(); move |_| { acts.check.dispatch(id.clone()); }}>{move || i18n.t("查询支付结果", "Check payment")}</button>
                            <button type="button" class="btn btn-quiet" on:click={let id = id.clone(); move |_| { acts.cancel.dispatch(id.clone()); }}>{move || i18n.t("取消", "Cancel")}</button>
                        </div>
                        {is_sandbox.then(|| view! {
                            <p class="sandbox-link"><a href=content.clone() target="_blank" rel="external noopener">
                                {move || i18n.t("沙箱：在本机打开付款页", "Sandbox: open the payer page here")}
                            </a></p>
                        })}
                    }.into_any()
                }
                SessionStatus::Paid => {
                    let paid_at = session.paid_at_ms.map(fmt_time).unwrap_or_default();
                    let txn = session.provider_txn_id.clone().unwrap_or_default();
                    let patient = session.patient_name.clone();
                    view! {
                        <div class="receipt" data-testid="receipt">
                            <h2 class="paid-title">{move || i18n.t("支付成功", "Paid")}</h2>
                            <p class="receipt-head">{format!("ClinicPay · {patient}")}</p>
                            <table class="table">
                                <thead><tr>
                                    <th scope="col">{move || i18n.t("账单号", "Bill no.")}</th>
                                    <th scope="col">{move || i18n.t("收据号", "Receipt no.")}</th>
                                    <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                                </tr></thead>
                                <tbody>
                                    {payables.iter().map(|b| view! { <tr>
                                        <td>{b.number.clone()}</td>
                                        <td><code>{b.receipt_no.clone().unwrap_or_default()}</code></td>
                                        <td class="num"><Amount value=b.amount/></td>
                                    </tr> }).collect_view()}
                                </tbody>
                                <tfoot><tr>
                                    <th scope="row" colspan="2" class="num">{move || i18n.t("合计", "Total")}</th>
                                    <td class="num"><Amount value=total/></td>
                                </tr></tfoot>
                            </table>
                            <p class="receipt-meta">{move || format!("{} · {} · {}", provider_label(i18n, provider), paid_at, txn)}</p>
                        </div>
                        <div class="qr-actions no-print">
                            <button type="button" class="btn btn-primary" on:click=move |_| browser::print()>{move || i18n.t("打印收据", "Print receipt")}</button>
                            <a class="btn" href="/charge">{move || i18n.t("下一位患者", "Next patient")}</a>
                        </div>
                    }.into_any()
                }
                other => {
                    let reason = session.close_reason.clone().unwrap_or_default();
                    view! {
                        <h2>{move || match other {
                            SessionStatus::Expired => i18n.t("二维码已过期", "QR expired"),
                            SessionStatus::Cancelled => i18n.t("已取消", "Cancelled"),
                            SessionStatus::Closed => i18n.t("已关闭（已换新二维码）", "Closed (replaced by a new QR)"),
                            _ => i18n.t("生成支付失败", "The payment could not be created"),
                        }}</h2>
                        <p class="muted">{reason}</p>
                        <p>{move || i18n.t("可重新生成二维码。", "You can create a new QR code.")}</p>
                        <div class="qr-actions">
                            <button type="button" class="btn btn-primary" on:click=move |_| { store.set(None); reload.update(|n| *n += 1); }>
                                {move || i18n.t("重新开始", "Start again")}
                            </button>
                        </div>
                    }.into_any()
                }
            }}
            {move || action_error.get().map(|e| view! { <p class="alert alert-error" role="alert">{err_text(i18n, &e)}</p> })}
        </section>
    }
}

/// Live status: server-sent events, with polling as the fallback. The screen only ever shows
/// what the server has committed (every update is re-read through `payment_status`).
mod live {
    use super::*;
    #[cfg(feature = "hydrate")]
    use crate::api::payment_status;

    #[cfg(feature = "hydrate")]
    pub fn follow(id: String, store: RwSignal<Option<SessionView>>, reload: RwSignal<u32>) {
        use wasm_bindgen::prelude::*;
        if store.with_untracked(|s| s.as_ref().is_none_or(|s| s.status != SessionStatus::Pending)) {
            return;
        }
        let refetch = {
            let id = id.clone();
            move || {
                let id = id.clone();
                leptos::task::spawn_local(async move {
                    if let Ok(s) = payment_status(id.clone()).await {
                        // only while this session is still the one on screen (a refresh
                        // replaces it, and the old one's last event must not bring it back)
                        let current = store.with_untracked(|cur| cur.as_ref().is_some_and(|c| c.id.as_str() == id));
                        if !current {
                            return;
                        }
                        let changed = store.with_untracked(|cur| cur.as_ref().map(|c| c.status) != Some(s.status));
                        let paid = s.status == SessionStatus::Paid;
                        if changed {
                            store.set(Some(s));
                            if paid {
                                reload.update(|n| *n += 1);
                            }
                        }
                    }
                });
            }
        };
        let url = format!("/api/v1/finance/payment-sessions/{}/events", enc(&id));
        match web_sys::EventSource::new(&url) {
            Ok(es) => {
                let on_status = {
                    let refetch = refetch.clone();
                    Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |_e: web_sys::MessageEvent| refetch())
                };
                let _ = es.add_event_listener_with_callback("status", on_status.as_ref().unchecked_ref());
                on_status.forget();
                // on error the browser reconnects; polling covers the gap
                let poll = set_interval_with_handle(refetch, std::time::Duration::from_secs(3));
                let es2 = es.clone();
                on_cleanup(move || {
                    es2.close();
                    if let Ok(h) = poll {
                        h.clear();
                    }
                });
            }
            Err(_) => {
                if let Ok(h) = set_interval_with_handle(refetch, std::time::Duration::from_secs(2)) {
                    on_cleanup(move || h.clear());
                }
            }
        }
    }

    #[cfg(not(feature = "hydrate"))]
    pub fn follow(_id: String, _store: RwSignal<Option<SessionView>>, _reload: RwSignal<u32>) {}
}
