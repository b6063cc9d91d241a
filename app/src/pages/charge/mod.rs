//! The charge screen (费用收取, C6): primary first, secondary on request.
//!
//! Find a patient → one card with everything owed and one big "Scan to pay" (F2) → the QR with
//! amount, channel, countdown, refresh and cancel → paid, with the per-bill breakdown and a
//! printable receipt. "View details and pay part" opens the bill list, all ticked; unticking
//! updates the total at once; "Generate payment" pays the ticked set.

mod browser;
mod counter;
mod panel;
mod text;

use crate::api::{charge_overview, find_patients, ChargeData, StartPaymentRequest};
use crate::components::{enc, fmt_time, Amount, ErrorView, Loading};
use crate::error::AppError;
use crate::i18n::use_i18n;
use clinicpay::checkout::SessionView;
use clinicpay::money::Money;
use clinicpay::payments::{Provider, SessionStatus};
use clinicpay::views::PatientSummary;
use counter::{CounterForm, TenderDraft};
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
pub use panel::Receipt;
use panel::{SessionActions, SessionPanel};
use std::collections::BTreeSet;
use text::{err_text, provider_label};

/// The channels a cashier chooses from: the three QR channels, then the counter's own (C9).
const METHODS: [(&str, Provider); 5] = [
    ("alipay", Provider::Alipay),
    ("wechat", Provider::WechatPay),
    ("bank_card", Provider::Bank),
    ("cash", Provider::Cash),
    ("pos_card", Provider::Pos),
];

fn method_provider(key: &str) -> Option<Provider> {
    METHODS.iter().find(|(k, _)| *k == key).map(|(_, p)| *p)
}

/// The primary button's verb for a channel.
fn pay_verb(key: &str) -> (&'static str, &'static str) {
    match method_provider(key) {
        Some(Provider::Cash) => ("现金收款", "Take cash"),
        Some(Provider::Pos) => ("POS 刷卡", "POS card"),
        _ => ("扫码支付", "Scan to pay"),
    }
}
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

const SEARCH_ID: &str = "charge-q";
const PANEL_ID: &str = "qr-panel";

#[component]
pub fn ChargePage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let key = Memo::new(move |_| query.with(|q| (q.get("q"), q.get("patient"))));
    let reload = RwSignal::new(0u32);
    let found = Resource::new(move || (key.get(), reload.get()), |((q, p), _)| load(q, p));
    let qv = move || query.with(|q| q.get("q")).unwrap_or_default();
    // The payment in progress belongs to the page, not to the patient card: it outlives reloads
    // of the patient's bills (after a payment the list refreshes while the receipt stays on
    // screen), and every answer (start, cancel, refresh, check) lands here even when the card
    // that asked has been replaced meanwhile. A card shows it only when it is its patient's.
    let session: RwSignal<Option<SessionView>> = RwSignal::new(None);
    let acts = SessionActions::new(session, reload);
    let navigate = leptos_router::hooks::use_navigate();

    // focus on the patient field on arrival (once it is on the page: a navigation from the menu
    // draws it after this runs) and after each search or "next patient"
    let search_ref = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        key.track();
        if let Some(input) = search_ref.get() {
            let _ = input.focus();
            input.select();
        }
    });

    // The counter's keys that do not depend on a patient: typing goes to the patient field,
    // F8 prints the receipt on screen, F9 is the next patient.
    {
        let navigate = navigate.clone();
        let handle = window_event_listener(leptos::ev::keydown, move |e| {
            let k = e.key();
            if k == "F8" {
                e.prevent_default();
                if browser::receipt_shown() {
                    browser::print();
                }
            } else if k == "F9" {
                e.prevent_default();
                acts.forget_finished();
                navigate("/charge", Default::default());
                browser::focus_search();
            } else if k.chars().count() == 1
                && k != " "
                && !e.ctrl_key()
                && !e.alt_key()
                && !e.meta_key()
                && !browser::typing_in_field()
            {
                // the character lands in the field that now has focus, replacing the last search
                browser::focus_search();
            }
        });
        on_cleanup(move || handle.remove());
    }

    view! {
        <div class="charge">
            <h1>{move || i18n.t("费用收取", "Charge")}</h1>
            <Form method="GET" action="/charge" attr:class="filters charge-search" attr:role="search">
                <div class="field grow">
                    <label for=SEARCH_ID>{move || i18n.t("患者（姓名、病历号或扫码）", "Patient (name, record number or scan)")}</label>
                    <input id=SEARCH_ID node_ref=search_ref type="search" name="q" value=qv prop:value=qv maxlength="64" autofocus autocomplete="off"/>
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
                        Ok(Found::Patient(data)) => view! { <PatientCharge data=*data session acts/> }.into_any(),
                    }
                })}
            </Suspense>
            <KeyLegend/>
        </div>
    }
}

/// The counter's keys, always on screen (UI.md).
#[component]
fn KeyLegend() -> impl IntoView {
    let i18n = use_i18n();
    let keys: [(&str, &str, &str); 6] = [
        ("F2", "收款（扫码、现金或 POS）", "Take payment (QR, cash or POS)"),
        ("F3", "明细与部分支付", "Details and pay part"),
        ("F8", "打印收据", "Print receipt"),
        ("F9", "下一位患者", "Next patient"),
        ("Esc", "关闭面板 / 取消二维码", "Close panel / cancel the QR"),
        ("Enter", "查询 / 确认", "Search / confirm"),
    ];
    view! {
        <aside class="key-legend no-print" aria-label=move || i18n.t("快捷键", "Keyboard shortcuts")>
            <span class="muted">{move || i18n.t("快捷键：", "Keys: ")}</span>
            {keys.into_iter().map(|(k, zh, en)| view! {
                <span class="key"><kbd>{k}</kbd>" "{move || i18n.t(zh, en)}</span>
            }).collect_view()}
            <span class="key">{move || i18n.t("直接输入即进入患者栏", "Typing goes to the patient field")}</span>
        </aside>
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
fn PatientCharge(data: ChargeData, session: RwSignal<Option<SessionView>>, acts: SessionActions) -> impl IntoView {
    let i18n = use_i18n();
    let bills = StoredValue::new(data.bills.clone());
    let all: BTreeSet<String> = data.bills.iter().map(|b| b.id.to_string()).collect();
    // a card drawn because new bills arrived keeps what the cashier had unticked and open
    let mine = data.patient.id.to_string();
    let carried = acts.carry.try_update(|c| c.take().filter(|(p, _, _)| *p == mine)).flatten();
    let (unticked, was_open) = carried.map(|(_, u, o)| (u, o)).unwrap_or_default();
    let selected = RwSignal::new(all.difference(&unticked).cloned().collect::<BTreeSet<String>>());
    let details_open = RwSignal::new(was_open);
    let confirm_cancel = RwSignal::new(false);
    let providers = data.providers.clone();
    let method = RwSignal::new("alipay".to_string());
    let me = data.patient.id.clone();
    // What this card shows: the page's payment when it is this patient's, otherwise the
    // patient's open payment as the server listed it (after a reload mid-payment). Nothing is
    // written while rendering: the page's payment adopts the listed one in an effect.
    let listed = data.pending.first().cloned();
    let shown = Memo::new({
        let me = me.clone();
        let listed = listed.clone();
        move |_| {
            session.with(|s| match s {
                Some(s) if s.patient_id == me => Some(s.clone()),
                _ => listed.clone().filter(|l| !acts.dismissed.with(|d| d.contains(&l.id))),
            })
        }
    });
    Effect::new({
        let me = me.clone();
        move |_| {
            let mine = session.with_untracked(|s| s.as_ref().is_some_and(|s| s.patient_id == me));
            if !mine {
                session.set(listed.clone());
            }
        }
    });
    let patient_id = me.to_string();
    live_bills(patient_id.clone(), bills, selected, details_open, acts);

    // the remembered channel (browser only)
    Effect::new(move |_| {
        if let Some(m) = browser::stored_method() {
            if METHODS.iter().any(|(k, _)| *k == m) {
                method.set(m);
            }
        }
    });

    // The bills this card offers: the patient's unpaid bills less those in the open payment on
    // screen (the list was read before it opened); those show as "in payment".
    let in_session = Memo::new(move |_| {
        shown.with(|s| {
            s.as_ref()
                .filter(|s| s.status == SessionStatus::Pending)
                .map(|s| s.payables.iter().filter_map(|p| p.bill_id().map(|b| b.to_string())).collect())
                .unwrap_or_else(BTreeSet::new)
        })
    });
    let free = Memo::new(move |_| {
        in_session.with(|busy| {
            bills.with_value(|bs| bs.iter().filter(|b| !busy.contains(b.id.as_str())).cloned().collect::<Vec<_>>())
        })
    });
    let free_ids = move || free.with(|f| f.iter().map(|b| b.id.to_string()).collect::<Vec<_>>());
    let count = Memo::new(move |_| free.with(Vec::len));
    let total_free = Memo::new(move |_| free.with(|f| Money::sum(f.iter().map(|b| b.total)).unwrap_or(Money::ZERO)));
    // ticked and offered
    let chosen = move || {
        let sel = selected.get();
        free.with(|f| f.iter().filter(|b| sel.contains(b.id.as_str())).cloned().collect::<Vec<_>>())
    };
    let selected_total = Memo::new(move |_| Money::sum(chosen().iter().map(|b| b.total)).unwrap_or(Money::ZERO));
    let selected_count = Memo::new(move |_| chosen().len());

    // an open QR of this patient blocks a second one; a finished payment does not
    let has_session = move || shown.with(|s| s.as_ref().is_some_and(|s| s.status == SessionStatus::Pending));
    let busy = acts.start.pending();
    let pay = {
        let patient_id = patient_id.clone();
        move |ids: Vec<String>| {
            if ids.is_empty() || busy.get_untracked() || has_session() {
                return;
            }
            acts.start_error.set(None);
            browser::store_method(&method.get_untracked());
            if let Some(p) = method_provider(&method.get_untracked()).filter(|p| p.is_counter()) {
                // cash or the POS: the form takes what the cashier was handed; nothing is
                // recorded until it is confirmed
                let total = bills.with_value(|bs| {
                    Money::sum(bs.iter().filter(|b| ids.contains(&b.id.to_string())).map(|b| b.total))
                        .unwrap_or(Money::ZERO)
                });
                acts.forget_finished();
                acts.tender.set(Some(TenderDraft {
                    patient_id: patient_id.clone(),
                    bill_ids: ids,
                    total,
                    provider: p,
                }));
                return;
            }
            acts.close_tender();
            acts.start.dispatch(StartPaymentRequest {
                patient_id: patient_id.clone(),
                bill_ids: ids,
                method: method.get_untracked(),
                idempotency_key: browser::new_key(),
            });
        }
    };
    // The primary action pays what its label says: the ticked bills while the details are
    // open, every bill while they are closed (F2 and the button alike).
    let pay_chosen = {
        let pay = pay.clone();
        move || {
            let sel = selected.get_untracked();
            pay(untrack(free_ids).into_iter().filter(|id| sel.contains(id)).collect())
        }
    };
    let pay_primary = {
        let pay = pay.clone();
        let pay_chosen = pay_chosen.clone();
        move || {
            if details_open.get_untracked() {
                pay_chosen()
            } else {
                pay(untrack(free_ids))
            }
        }
    };
    let pay_selected = pay_chosen;

    // F2 pay, F3 details, Esc: close the confirm, the details, or ask to cancel the open QR
    {
        let pay_primary = pay_primary.clone();
        let handle = window_event_listener(leptos::ev::keydown, move |e| match e.key().as_str() {
            "F2" => {
                e.prevent_default();
                pay_primary();
            }
            "F3" => {
                e.prevent_default();
                if count.get_untracked() > 0 {
                    details_open.update(|o| *o = !*o);
                }
            }
            "Escape" => {
                if acts.tender.with_untracked(Option::is_some) {
                    acts.close_tender();
                } else if confirm_cancel.get_untracked() {
                    confirm_cancel.set(false);
                } else if details_open.get_untracked() {
                    details_open.set(false);
                } else if has_session() {
                    confirm_cancel.set(true);
                }
            }
            _ => {}
        });
        on_cleanup(move || handle.remove());
    }

    // the bills in this patient's open payment: "in payment", never "nothing owed"
    let in_payment = move || {
        shown.with(|s| s.as_ref().filter(|s| s.status == SessionStatus::Pending).map(|s| (s.payables.len(), s.total)))
    };
    let patient = data.patient.clone();
    let primary_label = move || {
        let (zh, en) = pay_verb(&method.get());
        if details_open.get() {
            let n = selected_count.get();
            let t = selected_total.get().display();
            if i18n.is_en() {
                format!("{en} · {n} selected {t}")
            } else {
                format!("{zh} · 已选 {n} 笔 {t}")
            }
        } else if i18n.is_en() {
            format!("{en} · all {}", count.get())
        } else {
            format!("{zh} · 全部 {} 笔", count.get())
        }
    };
    let tender_mine = {
        let me = me.to_string();
        move || acts.tender.get().filter(|t| t.patient_id == me)
    };

    view! {
        <div class="charge-grid">
            <section class="panel charge-card" aria-labelledby="charge-patient" data-patient-id=patient.id.to_string()>
                <div class="charge-card-head">
                    <h2 id="charge-patient">{patient.name.clone()}</h2>
                    <span class="muted">{move || format!("{} {}", i18n.t("病历号", "MRN"), patient.mrn)}</span>
                    <a class="card-link no-print" href=format!("/patients/{}", enc(patient.id.as_str()))>{move || i18n.t("患者详情", "Patient details")}</a>
                    <a class="card-link no-print" href=format!("/bills/new?patient={}", enc(patient.id.as_str()))>{move || i18n.t("开具账单", "New bill")}</a>
                </div>
                {move || in_payment().map(|(n, total)| view! {
                    <p class="in-payment" role="status" data-testid="in-payment">
                        <span class="badge badge-paying">{i18n.t("支付中", "In payment")}</span>" "
                        {if i18n.is_en() { format!("{n} bills ({}) are in the open payment; see the QR code.", total.display()) }
                         else { format!("{n} 笔账单（{}）正在支付中，见右侧二维码。", total.display()) }}
                    </p>
                })}
                {move || if count.get() == 0 {
                    view! {
                        {move || in_payment().is_none().then(|| view! {
                            <p class="nothing-owed" role="status">{move || i18n.t("该患者没有待缴费用。", "Nothing to pay.")}</p>
                        })}
                    }.into_any()
                } else {
                    let pay_primary = pay_primary.clone();
                    let providers = providers.clone();
                    view! {
                        <p class="charge-count" data-testid="unpaid-summary">
                            {move || if i18n.is_en() { format!("{} unpaid bills", count.get()) } else { format!("共 {} 笔未结清账单", count.get()) }}
                        </p>
                        <p class="charge-total">
                            <span class="muted">{move || i18n.t("应付合计", "Total due")}</span>
                            <span data-testid="total-due">{move || view! { <Amount value=total_free.get() large=true/> }}</span>
                        </p>
                        <fieldset class="channels">
                            <legend>{move || i18n.t("支付渠道", "Channel")}</legend>
                            {METHODS.into_iter().map(|(key, p)| {
                                let available = p.is_counter() || providers.contains(&p);
                                view! {
                                    <label class="channel">
                                        <input type="radio" name="method" value=key
                                            checked=move || method.get() == key
                                            prop:checked=move || method.get() == key
                                            disabled=!available
                                            on:change=move |_| { method.set(key.to_string()); browser::store_method(key); acts.close_tender(); }/>
                                        {move || provider_label(i18n, p)}
                                    </label>
                                }
                            }).collect_view()}
                        </fieldset>
                        <button type="button" class="btn btn-primary btn-large scan-to-pay"
                            on:click=move |_| pay_primary()
                            disabled=move || busy.get() || has_session() || (details_open.get() && selected_count.get() == 0)>
                            {primary_label}<kbd>"F2"</kbd>
                        </button>
                        <button type="button" class="link-button details-link"
                            aria-expanded=move || details_open.get().to_string()
                            on:click=move |_| details_open.update(|o| *o = !*o)>
                            {move || i18n.t("查看明细与部分支付", "View details and pay part")}<kbd>"F3"</kbd>
                        </button>
                    }.into_any()
                }}
                {move || acts.start_error.get().map(|e| view! { <p class="alert alert-error" role="alert">{err_text(i18n, &e)}</p> })}
            </section>

            <div class="charge-side">
                {move || busy.get().then(|| view! { <p class="panel creating" role="status" aria-live="polite">{i18n.t("正在生成二维码…", "Creating the QR code…")}</p> })}
                {move || match tender_mine() {
                    Some(draft) => view! { <CounterForm draft acts/> }.into_any(),
                    None => shown.get().map(|s| view! { <SessionPanel session=s acts confirm_cancel/> }).into_any(),
                }}
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
                            {move || free.get().into_iter().map(|b| {
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

/// Bills issued or voided for this patient while the card is open (by the HIS or another
/// counter) are shown without a reload: the server says "bills changed" over server-sent
/// events and the card re-reads them, keeping the cashier's unticked bills unticked.
#[cfg(feature = "hydrate")]
fn live_bills(
    patient_id: String,
    bills: StoredValue<Vec<clinicpay::views::BillSummary>>,
    selected: RwSignal<BTreeSet<String>>,
    details_open: RwSignal<bool>,
    acts: SessionActions,
) {
    use wasm_bindgen::prelude::*;
    let url = format!("/api/v1/finance/patients/{}/events", enc(&patient_id));
    let Ok(es) = web_sys::EventSource::new(&url) else { return };
    let on_bills = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |_e: web_sys::MessageEvent| {
        // the card may be gone already: every read is a try
        let Some(all) = bills.try_with_value(|bs| bs.iter().map(|b| b.id.to_string()).collect::<BTreeSet<_>>()) else {
            return;
        };
        let Some(sel) = selected.try_get_untracked() else { return };
        let open = details_open.try_get_untracked().unwrap_or(false);
        let unticked = all.difference(&sel).cloned().collect();
        acts.carry.try_set(Some((patient_id.clone(), unticked, open)));
        acts.reload.try_update(|n| *n = n.wrapping_add(1));
    });
    let _ = es.add_event_listener_with_callback("bills", on_bills.as_ref().unchecked_ref());
    on_bills.forget();
    on_cleanup(move || es.close());
}

#[cfg(not(feature = "hydrate"))]
fn live_bills(
    _patient_id: String,
    _bills: StoredValue<Vec<clinicpay::views::BillSummary>>,
    _selected: RwSignal<BTreeSet<String>>,
    _details_open: RwSignal<bool>,
    _acts: SessionActions,
) {
}
