//! Counter payments on the charge screen (C9): the cashier takes cash (amount tendered, the
//! change shown as it is typed) or swipes the card on the counter's POS terminal and types the
//! slip's reference number; one confirmation pays the chosen bills at once.

use super::browser;
use super::panel::SessionActions;
use super::text::err_text;
use crate::api::CounterPaymentRequest;
use crate::components::Amount;
use crate::i18n::use_i18n;
use clinicpay::money::Money;
use clinicpay::payments::Provider;
use leptos::prelude::*;

pub(super) const TENDER_INPUT: &str = "tender-input";

/// The bills a counter payment is about to pay, and how.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TenderDraft {
    pub patient_id: String,
    pub bill_ids: Vec<String>,
    pub total: Money,
    pub provider: Provider,
}

#[component]
pub(super) fn CounterForm(draft: TenderDraft, acts: SessionActions) -> impl IntoView {
    let i18n = use_i18n();
    let cash = draft.provider == Provider::Cash;
    let total = draft.total;
    let tendered = RwSignal::new(String::new());
    let reference = RwSignal::new(String::new());
    let terminal = RwSignal::new(String::new());
    let last4 = RwSignal::new(String::new());
    // one key per form: a double press, or a retry after a lost answer, records one payment
    let key = StoredValue::new(browser::new_key());
    let busy = acts.counter.pending();
    let change = move || {
        let t = tendered.get();
        let t = t.trim();
        if t.is_empty() {
            return None;
        }
        Some(Money::parse(t).ok().and_then(|t| t.checked_sub(total).ok()))
    };
    let submit = {
        let draft = draft.clone();
        move || {
            if busy.get_untracked() {
                return;
            }
            acts.counter_error.set(None);
            acts.counter.dispatch(CounterPaymentRequest {
                patient_id: draft.patient_id.clone(),
                bill_ids: draft.bill_ids.clone(),
                channel: if cash { "cash" } else { "pos" }.to_string(),
                tendered: tendered.get_untracked(),
                pos_reference: reference.get_untracked(),
                pos_terminal: terminal.get_untracked(),
                card_last4: last4.get_untracked(),
                idempotency_key: key.get_value(),
            });
        }
    };
    Effect::new(move |_| browser::focus(TENDER_INPUT));
    let n = draft.bill_ids.len();
    let field =
        move |id: &'static str, zh: &'static str, en: &'static str, sig: RwSignal<String>, max: &'static str| {
            view! {
                <div class="field">
                    <label for=id>{move || i18n.t(zh, en)}</label>
                    <input id=id type="text" autocomplete="off" maxlength=max spellcheck="false"
                        inputmode=if id == TENDER_INPUT && cash { "decimal" } else { "text" }
                        prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev))/>
                </div>
            }
        };
    view! {
        <section class="panel counter-panel" id="counter-panel" data-testid="counter-panel" aria-labelledby="counter-title">
            <h2 id="counter-title">{move || if cash { i18n.t("现金收款", "Take cash") } else { i18n.t("POS 刷卡收款", "POS card payment") }}</h2>
            <p class="muted">{move || if i18n.is_en() { format!("{n} bills") } else { format!("共 {n} 笔账单") }}</p>
            <p class="qr-amount"><span class="muted">{move || i18n.t("应收 ", "Due ")}</span><span data-testid="counter-due"><Amount value=total large=true/></span></p>
            <form class="counter-form" on:submit={let submit = submit.clone(); move |ev: leptos::ev::SubmitEvent| { ev.prevent_default(); submit(); }}>
                {if cash {
                    view! {
                        {field(TENDER_INPUT, "实收金额（元）", "Cash tendered (¥)", tendered, "12")}
                        <p class="change" role="status" data-testid="change">
                            {move || match change() {
                                None => i18n.t("找零：—", "Change: —").to_string(),
                                Some(None) => i18n.t("请输入金额，如 200 或 200.50", "Type an amount, such as 200 or 200.50").to_string(),
                                Some(Some(c)) if c.is_negative() => {
                                    if i18n.is_en() { format!("Short by {}", c.abs().display()) } else { format!("还差 {}", c.abs().display()) }
                                }
                                Some(Some(c)) => if i18n.is_en() { format!("Change: {}", c.display()) } else { format!("找零：{}", c.display()) },
                            }}
                        </p>
                    }.into_any()
                } else {
                    view! {
                        {field(TENDER_INPUT, "签购单参考号", "Slip reference no.", reference, "32")}
                        {field("tender-terminal", "终端号（可选）", "Terminal no. (optional)", terminal, "16")}
                        {field("tender-last4", "卡号后四位（可选）", "Card's last four (optional)", last4, "4")}
                    }.into_any()
                }}
                <div class="qr-actions">
                    <button type="submit" class="btn btn-primary" disabled=move || busy.get()>
                        {move || if busy.get() { i18n.t("正在记账…", "Recording…") } else { i18n.t("确认收款", "Confirm payment") }}<kbd>"Enter"</kbd>
                    </button>
                    <button type="button" class="btn btn-quiet" on:click=move |_| acts.close_tender()>
                        {move || i18n.t("取消", "Cancel")}<kbd>"Esc"</kbd>
                    </button>
                </div>
            </form>
            {move || acts.counter_error.get().map(|e| view! { <p class="alert alert-error" role="alert">{err_text(i18n, &e)}</p> })}
        </section>
    }
}
