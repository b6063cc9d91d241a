//! The payment on screen: the actions on it (owned by the page), the QR panel with its live
//! status, and the receipt.

use super::counter::TenderDraft;
use super::text::{check_text, end_text, err_text, payer_note_text, provider_label};
use super::{browser, PANEL_ID};
use crate::api::{
    cancel_payment, check_payment, record_counter_payment, refresh_payment, start_payment, CheckAnswer,
    CounterPaymentRequest, StartPaymentRequest,
};
use crate::components::Amount;
use crate::error::AppError;
use crate::i18n::use_i18n;
use clinicpay::checkout::SessionView;
use clinicpay::ids::SessionId;
use clinicpay::payments::SessionStatus;
use leptos::prelude::*;
use std::collections::BTreeSet;

/// Start / cancel / refresh / check, owned by the page so their answers land even when the
/// card or panel that asked has been replaced meanwhile (a status event can arrive first).
#[derive(Clone, Copy)]
pub(super) struct SessionActions {
    pub(super) start: Action<StartPaymentRequest, Result<SessionView, AppError>>,
    pub(super) start_error: RwSignal<Option<AppError>>,
    pub(super) cancel: Action<String, Result<SessionView, AppError>>,
    pub(super) refresh: Action<String, Result<SessionView, AppError>>,
    pub(super) check: Action<String, Result<CheckAnswer, AppError>>,
    pub(super) error: RwSignal<Option<AppError>>,
    /// The last "check payment" answer: (session, answer, when).
    pub(super) checked: RwSignal<Option<(SessionId, String, i64)>>,
    /// Ended sessions the cashier has put away ("start again"): never shown again, even from a
    /// list read before they ended.
    pub(super) dismissed: RwSignal<BTreeSet<SessionId>>,
    pub(super) store: RwSignal<Option<SessionView>>,
    pub(super) reload: RwSignal<u32>,
    /// Set when a payment was just opened: its panel takes the focus once drawn.
    pub(super) focus_panel: RwSignal<bool>,
    /// What a patient's card hands to the card that replaces it when new bills arrive live
    /// (patient id, the bills the cashier unticked, details open): a bill the cashier unticked
    /// stays unticked, and the details stay open.
    pub(super) carry: RwSignal<Option<(String, BTreeSet<String>, bool)>>,
    /// C9: the counter payment being taken (cash or a POS slip), and its answer.
    pub(super) tender: RwSignal<Option<TenderDraft>>,
    pub(super) counter: Action<CounterPaymentRequest, Result<SessionView, AppError>>,
    pub(super) counter_error: RwSignal<Option<AppError>>,
}

impl SessionActions {
    pub(super) fn new(store: RwSignal<Option<SessionView>>, reload: RwSignal<u32>) -> SessionActions {
        let acts = SessionActions {
            start: Action::new(|req: &StartPaymentRequest| start_payment(req.clone())),
            start_error: RwSignal::new(None),
            cancel: Action::new(|id: &String| cancel_payment(id.clone())),
            refresh: Action::new(|id: &String| refresh_payment(id.clone())),
            check: Action::new(|id: &String| check_payment(id.clone())),
            error: RwSignal::new(None),
            checked: RwSignal::new(None),
            dismissed: RwSignal::new(BTreeSet::new()),
            store,
            reload,
            carry: RwSignal::new(None),
            focus_panel: RwSignal::new(false),
            tender: RwSignal::new(None),
            counter: Action::new(|req: &CounterPaymentRequest| record_counter_payment(req.clone())),
            counter_error: RwSignal::new(None),
        };
        Effect::new(move |_| {
            if let Some(r) = acts.counter.value().get() {
                match r {
                    Ok(s) => {
                        acts.tender.set(None);
                        acts.counter_error.set(None);
                        acts.show(s);
                    }
                    Err(e) => acts.counter_error.set(Some(e)),
                }
            }
        });
        Effect::new(move |_| {
            if let Some(r) = acts.start.value().get() {
                match r {
                    Ok(s) => {
                        acts.start_error.set(None);
                        acts.focus_panel.set(true);
                        acts.show(s);
                    }
                    Err(e) => acts.start_error.set(Some(e)),
                }
            }
        });
        for a in [acts.cancel, acts.refresh] {
            Effect::new(move |_| {
                if let Some(r) = a.value().get() {
                    match r {
                        Ok(s) => {
                            acts.error.set(None);
                            acts.show(s);
                        }
                        Err(e) => acts.error.set(Some(e)),
                    }
                }
            });
        }
        Effect::new(move |_| {
            if let Some(r) = acts.check.value().get() {
                match r {
                    Ok(c) => {
                        acts.error.set(None);
                        acts.checked.set(Some((c.session.id.clone(), c.answer.clone(), c.at_ms)));
                        acts.show(c.session);
                    }
                    Err(e) => acts.error.set(Some(e)),
                }
            }
        });
        acts
    }

    /// Puts a session on screen; once it is no longer pending, the bills are read again (paid,
    /// or free again after an expiry, a cancel, a close at the provider).
    pub(super) fn show(self, s: SessionView) {
        let ended = s.status != SessionStatus::Pending;
        let changed = self.store.with_untracked(|cur| cur.as_ref() != Some(&s));
        if changed {
            self.store.set(Some(s));
        }
        if ended && changed {
            self.reload.update(|n| *n += 1);
        }
    }

    /// "Start again" after a payment that ended without money.
    pub(super) fn dismiss(self) {
        if let Some(id) = self.store.with_untracked(|s| s.as_ref().map(|s| s.id.clone())) {
            self.dismissed.update(|d| {
                d.insert(id);
            });
        }
        self.store.set(None);
        self.error.set(None);
        self.reload.update(|n| *n += 1);
        browser::focus_search();
    }

    /// "Next patient": a finished payment leaves the screen (an open one stays open at the
    /// provider and comes back with its patient).
    pub(super) fn forget_finished(self) {
        self.store.set(None);
        self.error.set(None);
        self.start_error.set(None);
        self.close_tender();
    }

    /// Puts the counter payment form away without recording anything.
    pub(super) fn close_tender(self) {
        self.tender.set(None);
        self.counter_error.set(None);
    }
}

/// The QR, live status and countdown; the result once paid.
#[component]
pub(super) fn SessionPanel(
    session: SessionView,
    acts: SessionActions,
    confirm_cancel: RwSignal<bool>,
) -> impl IntoView {
    let i18n = use_i18n();
    let id = session.id.to_string();
    let sid = session.id.clone();
    let now = RwSignal::new(browser::now_ms());

    let status = session.status;
    // countdown tick and live status (browser only)
    Effect::new({
        let id = id.clone();
        move |_| {
            if let Ok(h) =
                set_interval_with_handle(move || now.set(browser::now_ms()), std::time::Duration::from_secs(1))
            {
                on_cleanup(move || h.clear());
            }
            live::follow(id.clone(), status, acts);
            if acts.focus_panel.get_untracked() {
                acts.focus_panel.set(false);
                browser::focus(PANEL_ID);
            }
        }
    });

    let provider = session.provider;
    let total = session.total;
    let expires = session.expires_at_ms;
    let content = session.qr_content().unwrap_or_default().to_string();
    let is_sandbox = content.contains("/sandbox/");
    let left = move || ((expires - now.get()) / 1000).max(0);
    // before the browser knows the time (the server's page, before hydration) there is no
    // countdown to show
    let clock_known = move || now.get() > 0;
    let expired_locally = move || status == SessionStatus::Pending && clock_known() && left() == 0;

    let action_error = acts.error;
    let checked = {
        let sid = sid.clone();
        move || {
            acts.checked.with(|c| c.as_ref().filter(|(s, _, _)| *s == sid).map(|(_, a, at)| check_text(i18n, a, *at)))
        }
    };
    view! {
        <section class="panel qr-panel" id=PANEL_ID tabindex="-1" aria-live="polite" data-testid="session-panel"
            data-status=status.as_str() data-out-trade-no=session.out_trade_no.to_string() data-session-id=session.id.to_string()>
            {match status {
                SessionStatus::Pending => {
                    let alt = move || i18n.t("支付二维码", "Payment QR code");
                    let note = session.payer_note.clone();
                    view! {
                        <h2>{move || i18n.t("请患者扫码支付", "Ask the patient to scan")}</h2>
                        {note.map(|n| view! { <p class="alert alert-warn payer-note" role="alert" data-testid="payer-note">{move || payer_note_text(i18n, &n)}</p> })}
                        {if content.is_empty() {
                            view! { <p role="status">{move || i18n.t("正在等待渠道返回二维码…", "Waiting for the provider…")}</p> }.into_any()
                        } else {
                            view! {
                                <img class="qr" src=format!("/api/v1/finance/qr-codes/{}.svg", id) alt=alt width="220" height="220"
                                    data-qr-content=content.clone()/>
                            }.into_any()
                        }}
                        <p class="qr-amount"><Amount value=total large=true/></p>
                        <p class="qr-meta">{move || provider_label(i18n, provider)}</p>
                        <p class="countdown" role="timer">
                            {move || if expired_locally() {
                                i18n.t("二维码已过期", "QR expired").to_string()
                            } else if !clock_known() {
                                format!("{} --:--", i18n.t("二维码有效期", "QR expires in"))
                            } else {
                                let l = left();
                                format!("{} {:02}:{:02}", i18n.t("二维码有效期", "QR expires in"), l / 60, l % 60)
                            }}
                        </p>
                        <p class="waiting" role="status">{move || i18n.t("等待支付…", "Waiting for payment…")}</p>
                        {move || checked().map(|t| view! { <p class="checked" role="status" data-testid="check-answer">{t}</p> })}
                        {let id = id.clone(); move || confirm_cancel.get().then(|| {
                            let id = id.clone();
                            // focused once drawn, so Enter confirms (an effect runs before the next key)
                            Effect::new(move |_| browser::focus("confirm-cancel"));
                            view! {
                                <div class="confirm" role="alertdialog" aria-labelledby="confirm-cancel-q">
                                    <p id="confirm-cancel-q">{move || i18n.t("取消这笔支付？患者将无法再用此二维码付款。", "Cancel this payment? The patient can no longer pay with this QR code.")}</p>
                                    <button type="button" id="confirm-cancel" class="btn btn-danger"
                                        on:click=move |_| { confirm_cancel.set(false); acts.cancel.dispatch(id.clone()); }>
                                        {move || i18n.t("确认取消", "Yes, cancel it")}
                                    </button>
                                    <button type="button" class="btn" on:click=move |_| { confirm_cancel.set(false); browser::focus(PANEL_ID); }>
                                        {move || i18n.t("继续等待", "Keep waiting")}
                                    </button>
                                </div>
                            }
                        })}
                        <div class="qr-actions">
                            <button type="button" class="btn" on:click={let id = id.clone(); move |_| { acts.check.dispatch(id.clone()); }}
                                disabled=move || acts.check.pending().get()>
                                {move || if acts.check.pending().get() { i18n.t("正在查询…", "Checking…") } else { i18n.t("查询支付结果", "Check payment") }}
                            </button>
                            <button type="button" class="btn" on:click={let id = id.clone(); move |_| { acts.refresh.dispatch(id.clone()); }}>{move || i18n.t("刷新二维码", "Refresh QR")}</button>
                            <button type="button" class="btn btn-quiet" on:click={let id = id.clone(); move |_| { acts.cancel.dispatch(id.clone()); }}>{move || i18n.t("取消", "Cancel")}<kbd>"Esc"</kbd></button>
                        </div>
                        {is_sandbox.then(|| view! {
                            <p class="sandbox-link"><a href=content.clone() target="_blank" rel="external noopener">
                                {move || i18n.t("沙箱：在本机打开付款页", "Sandbox: open the payer page here")}
                            </a></p>
                        })}
                    }.into_any()
                }
                SessionStatus::Paid => {
                    Effect::new(move |_| browser::focus_search());
                    view! {
                        <Receipt session=session.clone() reprint=false/>
                        <div class="qr-actions no-print">
                            <button type="button" class="btn btn-primary" on:click=move |_| browser::print()>{move || i18n.t("打印收据", "Print receipt")}<kbd>"F8"</kbd></button>
                            <a class="btn" href="/charge" on:click=move |_| acts.forget_finished()>{move || i18n.t("下一位患者", "Next patient")}<kbd>"F9"</kbd></a>
                        </div>
                    }.into_any()
                }
                other => {
                    let reason = session.close_reason.clone();
                    view! {
                        <h2>{move || match (other, reason.as_deref()) {
                            (_, Some("closed_at_provider")) => i18n.t("支付已在渠道关闭", "Closed by the provider"),
                            (SessionStatus::Expired, _) => i18n.t("二维码已过期", "QR expired"),
                            (SessionStatus::Cancelled, _) => i18n.t("已取消", "Cancelled"),
                            (SessionStatus::Closed, _) => i18n.t("已关闭（已换新二维码）", "Closed (replaced by a new QR)"),
                            _ => i18n.t("生成支付失败", "The payment could not be created"),
                        }}</h2>
                        <p class="muted" data-testid="end-reason">{let r = session.close_reason.clone(); move || end_text(i18n, other, r.as_deref())}</p>
                        <p>{move || i18n.t("账单已恢复为未缴，可重新生成二维码。", "The bills are unpaid again; you can create a new QR code.")}</p>
                        <div class="qr-actions">
                            <button type="button" class="btn btn-primary" on:click=move |_| acts.dismiss()>
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

/// The receipt of a paid session: on the charge screen after the payment, and on its own page
/// for a reprint (marked as a copy).
#[component]
pub fn Receipt(session: SessionView, reprint: bool) -> impl IntoView {
    let i18n = use_i18n();
    let provider = session.provider;
    let total = session.total;
    let paid_at = session.paid_at_ms.map(clinicpay::time::fmt_second).unwrap_or_default();
    let txn = session.provider_txn_id.clone().unwrap_or_default();
    let patient = session.patient_name.clone();
    let mrn = session.mrn.clone();
    let payables = session.payables.clone();
    let out_trade_no = session.out_trade_no.to_string();
    let counter = session.counter.clone();
    view! {
        <div class="receipt" data-testid="receipt">
            <h2 class="paid-title">{move || if reprint { i18n.t("收据（重打 · 副本）", "Receipt (reprint · copy)") } else { i18n.t("支付成功", "Paid") }}</h2>
            <p class="receipt-head">{move || format!("ClinicPay · {} · {} {}", patient, i18n.t("病历号", "MRN"), mrn)}</p>
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
            {counter.map(|c| view! { <p class="receipt-meta" data-testid="receipt-counter">{move || counter_line(i18n, &c)}</p> })}
            // a counter payment's transaction id is our own (the line above says what was
            // recorded); a provider's is what the payer's app shows
            <p class="receipt-meta">{move || if provider.is_counter() {
                format!("{} · {}", provider_label(i18n, provider), paid_at)
            } else {
                format!("{} · {} · {}", provider_label(i18n, provider), paid_at, txn)
            }}</p>
            <p class="receipt-meta">{move || format!("{} {}", i18n.t("订单号", "Order no."), out_trade_no)}</p>
        </div>
    }
}

/// What the cashier recorded, on the receipt: cash tendered and change, or the POS slip.
fn counter_line(i18n: crate::i18n::I18n, c: &clinicpay::checkout::counter::CounterRecord) -> String {
    let en = i18n.is_en();
    match (c.tendered, c.change) {
        (Some(t), Some(ch)) if en => {
            format!("Cash tendered {} · change {} · cashier {}", t.display(), ch.display(), c.cashier_name)
        }
        (Some(t), Some(ch)) => format!("实收现金 {} · 找零 {} · 收费员 {}", t.display(), ch.display(), c.cashier_name),
        _ => {
            let mut parts = vec![format!(
                "{} {}",
                if en { "POS ref." } else { "POS 参考号" },
                c.pos_reference.clone().unwrap_or_default()
            )];
            if let Some(t) = &c.pos_terminal {
                parts.push(format!("{} {t}", if en { "terminal" } else { "终端" }));
            }
            if let Some(l) = &c.card_last4 {
                parts.push(format!("{} **** {l}", if en { "card" } else { "卡号" }));
            }
            parts.push(format!("{} {}", if en { "cashier" } else { "收费员" }, c.cashier_name));
            parts.join(" · ")
        }
    }
}

/// Live status: server-sent events, with polling as the fallback. The screen only ever shows
/// what the server has committed (every update is re-read through `payment_status`).
mod live {
    use super::*;
    #[cfg(feature = "hydrate")]
    use crate::api::payment_status;

    #[cfg(feature = "hydrate")]
    pub fn follow(id: String, status: SessionStatus, acts: SessionActions) {
        use wasm_bindgen::prelude::*;
        if status != SessionStatus::Pending {
            return;
        }
        let refetch = {
            let id = id.clone();
            move || {
                let id = id.clone();
                leptos::task::spawn_local(async move {
                    if let Ok(s) = payment_status(id.clone()).await {
                        // only while this session is still the one on screen (a refresh
                        // replaces it, and the old one's last event must not bring it back;
                        // the cashier may have moved to the next patient)
                        let current = acts
                            .store
                            .try_with_untracked(|cur| cur.as_ref().is_some_and(|c| c.id.as_str() == id))
                            .unwrap_or(false);
                        if current {
                            acts.show(s);
                        }
                    }
                });
            }
        };
        let url = format!("/api/v1/finance/payment-sessions/{}/events", crate::components::enc(&id));
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
    pub fn follow(_id: String, _status: SessionStatus, _acts: SessionActions) {}
}
