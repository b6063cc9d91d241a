//! Refunds (R1–R3): the request on the bill page (items to tick or an amount, a reason), the
//! bill's refund history, and finance's queue — waiting requests with the payment's story beside
//! them, approve or reject; failed refunds sent again or paid back by hand.

use crate::api::{get_refund, list_refunds, ActOnRefund, RequestRefund};
use crate::components::{fmt_time, Amount, ErrorView, Loading};
use crate::i18n::{error_text, use_i18n, I18n};
use clinicpay::billing::{BillItem, BillStatus};
use clinicpay::money::Money;
use clinicpay::refunds::{BillRefundStatus, BillRefundView, RefundReason};
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

pub(crate) fn error_line(i18n: I18n, e: &crate::error::AppError) -> String {
    let text = error_text(&e.code, i18n.lang.get()).map(str::to_string).unwrap_or_else(|| e.message.clone());
    format!("{text} [{}]", e.code)
}

#[component]
fn RefundStatusBadge(status: BillRefundStatus) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <span class=format!("badge badge-refund-{}", status.as_str()) data-testid="refund-status">
            {move || if i18n.is_en() { status.label_en() } else { status.label_zh() }}
        </span>
    }
}

fn reason_label(r: RefundReason, en: bool) -> &'static str {
    if en {
        r.label_en()
    } else {
        r.label_zh()
    }
}

/// The bill page's refund section: the request form (for a paid bill) and the history.
#[component]
pub fn BillRefunds(
    bill_id: String,
    status: BillStatus,
    items: Vec<BillItem>,
    total: Money,
    refunded: Money,
) -> impl IntoView {
    let i18n = use_i18n();
    let ask = ServerAction::<RequestRefund>::new();
    let history = {
        let bill_id = bill_id.clone();
        Resource::new(move || ask.version().get(), move |_| list_refunds(Some(bill_id.clone()), false))
    };
    let ticked = RwSignal::new(Vec::<i32>::new());
    let amount = RwSignal::new(String::new());
    let reason = RwSignal::new(String::from("drug_returned"));
    let text = RwSignal::new(String::new());
    let line_sum = {
        let items = items.clone();
        Memo::new(move |_| {
            ticked.with(|t| {
                items
                    .iter()
                    .filter(|i| t.contains(&i.line_no))
                    .fold(Money::ZERO, |s, i| s.checked_add(i.amount).unwrap_or(s))
            })
        })
    };
    let left = total.checked_sub(refunded).unwrap_or(Money::ZERO);
    let refundable = matches!(status, BillStatus::Paid | BillStatus::PartiallyRefunded);
    let submit = {
        let bill_id = bill_id.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            if ask.pending().get_untracked() {
                return;
            }
            let lines = ticked.with_untracked(|t| t.iter().map(i32::to_string).collect::<Vec<_>>().join(","));
            ask.dispatch(RequestRefund {
                bill_id: bill_id.clone(),
                lines,
                amount: amount.get_untracked(),
                reason: reason.get_untracked(),
                reason_text: text.get_untracked(),
            });
        }
    };
    // asked: the form is cleared for the next one
    Effect::new(move |_| {
        if let Some(Ok(_)) = ask.value().get() {
            ticked.set(Vec::new());
            amount.set(String::new());
            text.set(String::new());
        }
    });
    view! {
        {refundable.then(|| view! {
            <section class="panel no-print" aria-labelledby="refund-h">
                <h2 id="refund-h">{move || i18n.t("申请退款", "Ask for a refund")}</h2>
                <p class="hint">
                    {move || i18n.t("勾选要退的明细（整行退），或不勾选直接填写金额。退款原路退回，按金额由财务审批。可退金额：",
                        "Tick the item lines to refund whole, or tick none and give an amount. The money goes back the way it came; finance approves by amount. Left to refund: ")}
                    <Amount value=left/>
                </p>
                <form class="form" on:submit=submit data-testid="refund-form">
                    <fieldset class="refund-lines">
                        <legend>{move || i18n.t("退哪些明细", "Which lines")}</legend>
                        {items.iter().map(|it| {
                            let n = it.line_no;
                            let id = format!("refund-line-{n}");
                            view! {
                                <div class="check">
                                    <input type="checkbox" id=id.clone() data-testid="refund-line"
                                        prop:checked=move || ticked.with(|t| t.contains(&n))
                                        on:change=move |e| {
                                            let on = event_target_checked(&e);
                                            ticked.update(|t| { t.retain(|x| *x != n); if on { t.push(n); t.sort_unstable(); } });
                                        }/>
                                    <label for=id>{format!("#{n} {} ", it.description)}<Amount value=it.amount/></label>
                                </div>
                            }
                        }).collect_view()}
                    </fieldset>
                    <div class="form-row">
                        <div class="field">
                            <label for="refund-amount">{move || i18n.t("退款金额（元）", "Amount (yuan)")}</label>
                            <input id="refund-amount" inputmode="decimal" autocomplete="off" maxlength="12"
                                prop:disabled=move || ticked.with(|t| !t.is_empty())
                                prop:value=move || if ticked.with(|t| !t.is_empty()) { line_sum.get().plain() } else { amount.get() }
                                on:input=move |e| amount.set(event_target_value(&e))/>
                        </div>
                        <div class="field">
                            <label for="refund-reason">{move || i18n.t("退款原因", "Reason")}</label>
                            <select id="refund-reason" on:change=move |e| reason.set(event_target_value(&e)) prop:value=move || reason.get()>
                                {RefundReason::ALL.into_iter().map(|r| view! {
                                    <option value=r.as_str()>{move || reason_label(r, i18n.is_en())}</option>
                                }).collect_view()}
                            </select>
                        </div>
                        <div class="field grow">
                            <label for="refund-text">{move || i18n.t("说明", "What happened")}</label>
                            <input id="refund-text" maxlength="200" autocomplete="off"
                                prop:value=move || text.get() on:input=move |e| text.set(event_target_value(&e))/>
                        </div>
                        <div class="field actions">
                            <button type="submit" class="btn btn-primary" prop:disabled=move || ask.pending().get()>
                                {move || i18n.t("提交退款申请", "Ask for the refund")}
                            </button>
                        </div>
                    </div>
                </form>
                {move || ask.value().get().map(|r| match r {
                    Err(e) => view! { <p class="alert alert-error" role="alert" data-testid="refund-error">{error_line(i18n, &e)}</p> }.into_any(),
                    Ok(v) => {
                        let st = v.status;
                        view! {
                            <p class="alert alert-ok" role="status" data-testid="refund-asked">
                                {move || if st == BillRefundStatus::Submitted {
                                    i18n.t("已提交渠道退款：", "Sent to the provider: ")
                                } else {
                                    i18n.t("已提交，等待财务审批：", "Asked; waiting for finance to approve: ")
                                }}
                                {v.refund_no.clone()}" "<Amount value=v.amount/>
                            </p>
                        }.into_any()
                    }
                })}
            </section>
        })}
        <section class="panel" aria-labelledby="refunds-h">
            <h2 id="refunds-h">{move || i18n.t("退款记录", "Refunds")}</h2>
            <Suspense fallback=|| view! { <Loading/> }>
                {move || Suspend::new(async move {
                    match history.await {
                        Err(e) => view! { <ErrorView err=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="empty">{move || i18n.t("暂无退款", "No refunds")}</p> }.into_any(),
                        Ok(list) => view! { <RefundTable list=list queue=false/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Refunds as a table; in the queue, with finance's actions.
#[component]
fn RefundTable(
    list: Vec<BillRefundView>,
    queue: bool,
    #[prop(optional)] act: Option<ServerAction<ActOnRefund>>,
) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <table class="table" aria-label=move || i18n.t("退款", "Refunds")>
            <thead><tr>
                <th scope="col">{move || i18n.t("申请时间", "Asked")}</th>
                <th scope="col">{move || i18n.t("退款单号", "Refund no.")}</th>
                {queue.then(|| view! { <th scope="col">{move || i18n.t("账单与支付", "Bill and payment")}</th> })}
                <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                <th scope="col">{move || i18n.t("原因", "Reason")}</th>
                <th scope="col">{move || i18n.t("申请人 / 审批人", "Asked by / approved by")}</th>
                <th scope="col">{move || i18n.t("状态", "Status")}</th>
                {queue.then(|| view! { <th scope="col">{move || i18n.t("处理", "Action")}</th> })}
            </tr></thead>
            <tbody>
                {list.into_iter().map(|r| {
                    let reason = r.reason;
                    let provider = r.provider;
                    let approvers = [r.approved_by.clone(), r.second_approved_by.clone()].into_iter().flatten().collect::<Vec<_>>().join("、");
                    let lines = (!r.lines.is_empty()).then(|| format!(" · #{}", r.lines.iter().map(i32::to_string).collect::<Vec<_>>().join(", #")));
                    let r2 = r.clone();
                    view! { <tr data-testid="refund-row" data-status=r.status.as_str()>
                        <td>{fmt_time(r.created_at_ms)}</td>
                        <td><code>{r.refund_no.clone()}</code></td>
                        {queue.then(|| view! {
                            <td class="story">
                                <a href=format!("/bills/{}", r.bill_id)>{r.bill_no.clone()}</a>{format!(" · {}", r.patient_name)}
                                <div class="sub">
                                    {move || if i18n.is_en() { provider.label_en() } else { provider.label_zh() }}
                                    " "<code>{r.provider_txn_id.clone()}</code>" · "{fmt_time(r.paid_at_ms)}
                                </div>
                                <div class="sub">
                                    {move || i18n.t("账单 ", "Bill ")}<Amount value=r.bill_total/>
                                    {move || i18n.t("，已退 ", ", refunded ")}<Amount value=r.bill_refunded/>
                                </div>
                            </td>
                        })}
                        <td class="num"><Amount value=r.amount/>{lines}</td>
                        <td>{move || reason_label(reason, i18n.is_en())}{(!r.reason_text.is_empty()).then(|| format!("：{}", r.reason_text))}</td>
                        <td>{r.requested_by.clone()}{(!approvers.is_empty()).then(|| format!(" / {approvers}"))}</td>
                        <td>
                            <RefundStatusBadge status=r.status/>
                            {(r.status == BillRefundStatus::Approved).then(|| view! { <div class="sub">{move || i18n.t("需第二人审批", "needs a second approver")}</div> })}
                            {r.last_error.clone().filter(|_| matches!(r.status, BillRefundStatus::Failed | BillRefundStatus::Manual)).map(|e| view! { <div class="sub error-text">{e}</div> })}
                            {r.decision_note.clone().filter(|n| !n.is_empty()).map(|n| view! { <div class="sub">{n}</div> })}
                            {r.red_receipt_no.clone().map(|no| view! {
                                <div class="sub">
                                    <a href=format!("/receipts/refund/{}", r.id) data-testid="red-receipt-link">
                                        {move || i18n.t("红字收据 ", "Red receipt ")}<code>{no.clone()}</code>
                                    </a>
                                </div>
                            })}
                        </td>
                        {queue.then(|| act.map(|act| view! { <td><RefundActions r=r2 act=act/></td> }))}
                    </tr> }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn RefundActions(r: BillRefundView, act: ServerAction<ActOnRefund>) -> impl IntoView {
    let i18n = use_i18n();
    let note = RwSignal::new(String::new());
    let id = r.id.to_string();
    let seen = r.status.as_str().to_string();
    let send = move |action: &'static str| {
        let (id, seen) = (id.clone(), seen.clone());
        move |_| {
            if !act.pending().get_untracked() {
                act.dispatch(ActOnRefund {
                    refund_id: id.clone(),
                    action: action.into(),
                    seen: seen.clone(),
                    note: note.get_untracked(),
                });
            }
        }
    };
    let waiting = r.status.awaits_approval();
    let failed = r.status == BillRefundStatus::Failed;
    let note_id = format!("note-{}", r.id);
    view! {
        {(waiting || failed).then(|| view! {
            <div class="row-actions">
                <label class="sr-only" for=note_id.clone()>{move || i18n.t("说明", "Note")}</label>
                <input id=note_id maxlength="200" data-testid="refund-note"
                    placeholder=move || if failed { i18n.t("说明（人工退款必填：如何退的）", "Note (for paid by hand: how)") } else { i18n.t("说明（驳回必填）", "Note (required to reject)") }
                    prop:value=move || note.get() on:input=move |e| note.set(event_target_value(&e))/>
                {waiting.then(|| view! {
                    <button type="button" class="btn btn-small btn-primary" on:click=send("approve")>{move || i18n.t("批准", "Approve")}</button>
                    <button type="button" class="btn btn-small btn-danger" on:click=send("reject")>{move || i18n.t("驳回", "Reject")}</button>
                })}
                {failed.then(|| view! {
                    <button type="button" class="btn btn-small" on:click=send("retry")>{move || i18n.t("重新发起", "Send again")}</button>
                    <button type="button" class="btn btn-small" on:click=send("manual")>{move || i18n.t("已人工退款", "Paid by hand")}</button>
                })}
            </div>
        })}
    }
}

/// 退款审批 — finance's queue: requests waiting for approval and refunds that failed; `?all=1`
/// shows every refund.
#[component]
pub fn RefundsPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let all = Memo::new(move |_| query.with(|q| q.get("all")).is_some());
    let act = ServerAction::<ActOnRefund>::new();
    let data = Resource::new(move || (all.get(), act.version().get()), |(all, _)| list_refunds(None, !all));
    view! {
        <h1>{move || i18n.t("退款审批", "Refund approvals")}</h1>
        <p class="hint">
            {move || i18n.t("待审批的退款申请和渠道退款失败的记录。申请人不能审批自己的申请；大额退款需两位财务人员先后审批。",
                "Requests waiting for approval, and refunds the provider refused. Nobody approves their own request; large refunds need two finance officers, one after the other.")}
            " "
            {move || if all.get() {
                view! { <a href="/finance/refunds">{i18n.t("只看待处理", "To do only")}</a> }.into_any()
            } else {
                view! { <a href="/finance/refunds?all=1">{i18n.t("查看全部", "Show all")}</a> }.into_any()
            }}
        </p>
        {move || act.value().get().map(|r| match r {
            Err(e) => view! { <p class="alert alert-error" role="alert" data-testid="refund-error">{error_line(i18n, &e)}</p> }.into_any(),
            Ok(v) => {
                let st = v.status;
                view! {
                    <p class="alert alert-ok" role="status">
                        {v.refund_no.clone()}" → "{move || if i18n.is_en() { st.label_en() } else { st.label_zh() }}
                    </p>
                }.into_any()
            }
        })}
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <section class="panel"><p class="empty">{move || i18n.t("没有待处理的退款。", "No refunds to decide.")}</p></section>
                    }.into_any(),
                    Ok(list) => view! { <section class="panel"><RefundTable list=list queue=true act=act/></section> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The negative (red, 冲红) receipt of a refund that went back (F4): its own number, the
/// receipt it reverses, the amount as a negative figure. Prints like a payment's receipt.
#[component]
pub fn RedReceiptPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id")).unwrap_or_default());
    let data = Resource::new(move || id.get(), get_refund);
    view! {
        <div class="receipt-page">
            <Suspense fallback=|| view! { <Loading/> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <h1>{move || i18n.t("红字收据", "Red receipt")}</h1><ErrorView err=e/> }.into_any(),
                        Ok(r) if r.red_receipt_no.is_none() => {
                            let err = crate::error::AppError {
                                status: 409,
                                code: "refund_not_paid_back".into(),
                                message: format!("refund {} is {}: no money went back yet, so there is no red receipt", r.refund_no, r.status.as_str()),
                                detail: None,
                            };
                            view! { <h1>{move || i18n.t("红字收据", "Red receipt")}</h1><ErrorView err/> }.into_any()
                        }
                        Ok(r) => {
                            let provider = r.provider;
                            let reason = r.reason;
                            let back = format!("/bills/{}", r.bill_id);
                            let when = r.refunded_at_ms.map(clinicpay::time::fmt_second).unwrap_or_default();
                            let manual = r.status == BillRefundStatus::Manual;
                            let minus = format!("-{}", r.amount.display());
                            view! {
                                <div class="receipt receipt-red" data-testid="red-receipt">
                                    <h2 class="paid-title">{move || i18n.t("红字收据（退款冲红）", "Red receipt (refund)")}</h2>
                                    <p class="receipt-head">{format!("ClinicPay · {} · {}", r.patient_name, r.bill_no)}</p>
                                    <table class="table">
                                        <tbody>
                                            <tr><th scope="row">{move || i18n.t("红字收据号", "Red receipt no.")}</th>
                                                <td><code data-testid="red-receipt-no">{r.red_receipt_no.clone().unwrap_or_default()}</code></td></tr>
                                            <tr><th scope="row">{move || i18n.t("原收据号", "Original receipt no.")}</th>
                                                <td><code data-testid="red-receipt-original">{r.receipt_no.clone()}</code></td></tr>
                                            <tr><th scope="row">{move || i18n.t("退款单号", "Refund no.")}</th><td><code>{r.refund_no.clone()}</code></td></tr>
                                            <tr><th scope="row">{move || i18n.t("退款金额", "Refunded")}</th>
                                                <td class="amount-negative" data-testid="red-receipt-amount">{minus}</td></tr>
                                            <tr><th scope="row">{move || i18n.t("原因", "Reason")}</th><td>{move || reason_label(reason, i18n.is_en())}</td></tr>
                                        </tbody>
                                    </table>
                                    <p class="receipt-meta">{move || format!("{} · {} · {}",
                                        if manual { i18n.t("人工退款", "paid back by hand").to_string() } else if i18n.is_en() { provider.label_en().to_string() } else { provider.label_zh().to_string() },
                                        when, r.provider_txn_id)}</p>
                                </div>
                                <div class="qr-actions no-print">
                                    <button type="button" class="btn btn-primary" on:click=move |_| super::receipts::print()>
                                        {move || i18n.t("打印红字收据", "Print red receipt")}
                                    </button>
                                    <a class="btn" href=back>{move || i18n.t("返回账单", "Back to the bill")}</a>
                                </div>
                            }.into_any()
                        }
                    }
                })}
            </Suspense>
        </div>
    }
}
