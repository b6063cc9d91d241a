//! 交班 Shift handover (L3): the cashier opens a shift with the cash float, sees the shift's
//! payments and refunds by channel as they happen, closes it by counting the drawer (a
//! difference needs a note); the next cashier or finance confirms the sheet, which prints.

use super::refunds::error_line;
use crate::api::{get_shift, get_shift_board, CloseShift, ConfirmShift, OpenShift};
use crate::components::{fmt_time, Amount, ErrorView, Loading};
use crate::i18n::use_i18n;
use clinicpay::shifts::{ShiftStatus, ShiftView};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

#[component]
fn ShiftBadge(status: ShiftStatus) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <span class=format!("badge badge-shift-{}", status.as_str()) data-testid="shift-status">
            {move || if i18n.is_en() { status.label_en() } else { status.label_zh() }}
        </span>
    }
}

/// The handover sheet: who, when, each channel's payments and refunds, the cash.
#[component]
fn ShiftSheet(s: ShiftView) -> impl IntoView {
    let i18n = use_i18n();
    let status = s.status;
    let span =
        format!("{} – {}", fmt_time(s.opened_at_ms), s.closed_at_ms.map(fmt_time).unwrap_or_else(|| "…".to_string()));
    let (received, refunded) = (s.received(), s.refunded());
    let counted = s.counted_cash;
    let difference = s.difference;
    let note = s.note.clone();
    let confirmed =
        s.confirmed_by_name.clone().map(|n| format!("{n} · {}", s.confirmed_at_ms.map(fmt_time).unwrap_or_default()));
    view! {
        <div class="receipt shift-sheet" data-testid="shift-sheet">
            <h2>{move || i18n.t("交班单", "Shift handover sheet")}</h2>
            <p class="receipt-head">{format!("{} · {}", s.cashier_name, span)}" "<ShiftBadge status=status/></p>
            <table class="table" aria-label=move || i18n.t("各渠道收退款", "By channel")>
                <thead><tr>
                    <th scope="col">{move || i18n.t("渠道", "Channel")}</th>
                    <th scope="col" class="num">{move || i18n.t("收款笔数", "Payments")}</th>
                    <th scope="col" class="num">{move || i18n.t("收款金额", "Received")}</th>
                    <th scope="col" class="num">{move || i18n.t("退款笔数", "Refunds")}</th>
                    <th scope="col" class="num">{move || i18n.t("退款金额", "Refunded")}</th>
                    <th scope="col" class="num">{move || i18n.t("净额", "Net")}</th>
                </tr></thead>
                <tbody>
                    {s.lines.iter().map(|l| {
                        let p = l.provider;
                        view! { <tr data-testid="shift-line" data-provider=p.as_str()>
                            <th scope="row">{move || if i18n.is_en() { p.label_en() } else { p.label_zh() }}</th>
                            <td class="num">{l.payments}</td>
                            <td class="num"><Amount value=l.received/></td>
                            <td class="num">{l.refunds}</td>
                            <td class="num"><Amount value=l.refunded/></td>
                            <td class="num"><Amount value=l.net()/></td>
                        </tr> }
                    }).collect_view()}
                </tbody>
                <tfoot><tr>
                    <th scope="row">{move || i18n.t("合计", "Total")}</th>
                    <td></td><td class="num"><Amount value=received/></td>
                    <td></td><td class="num"><Amount value=refunded/></td>
                    <td class="num"><Amount value=received.checked_sub(refunded).unwrap_or(received)/></td>
                </tr></tfoot>
            </table>
            <table class="table cash" aria-label=move || i18n.t("现金", "Cash")>
                <tbody>
                    <tr><th scope="row">{move || i18n.t("备用金", "Float")}</th><td class="num"><Amount value=s.float/></td></tr>
                    <tr><th scope="row">{move || i18n.t("应有现金", "Cash expected")}</th><td class="num" data-testid="shift-expected"><Amount value=s.expected_cash/></td></tr>
                    {counted.map(|c| view! { <tr><th scope="row">{move || i18n.t("实点现金", "Cash counted")}</th><td class="num" data-testid="shift-counted"><Amount value=c/></td></tr> })}
                    {difference.map(|d| view! { <tr><th scope="row">{move || i18n.t("差额", "Difference")}</th>
                        <td class=if d.fen() == 0 { "num" } else { "num amount-negative" } data-testid="shift-difference"><Amount value=d/></td></tr> })}
                </tbody>
            </table>
            {(!note.is_empty()).then(|| view! { <p class="note" data-testid="shift-note">{move || i18n.t("说明：", "Note: ")}{note.clone()}</p> })}
            {confirmed.map(|c| view! { <p class="receipt-meta" data-testid="shift-confirmed">{move || i18n.t("确认人：", "Confirmed by: ")}{c.clone()}</p> })}
            <p class="receipt-meta">{move || i18n.t("应有现金 = 备用金 + 本班现金收款 − 本班现金退款；POS、银行卡、支付宝、微信的款项不经过钱箱。",
                "Cash expected = the float + cash taken this shift − cash paid back this shift; POS, card, Alipay and WeChat Pay money never passes through the drawer.")}</p>
        </div>
    }
}

#[component]
pub fn ShiftsPage() -> impl IntoView {
    let i18n = use_i18n();
    let open = ServerAction::<OpenShift>::new();
    let close = ServerAction::<CloseShift>::new();
    let confirm = ServerAction::<ConfirmShift>::new();
    let data = Resource::new(
        move || (open.version().get(), close.version().get(), confirm.version().get()),
        |_| get_shift_board(),
    );
    let float = RwSignal::new("500.00".to_string());
    let counted = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    let errors = move || {
        [
            open.value().get().and_then(|r| r.err()),
            close.value().get().and_then(|r| r.err()),
            confirm.value().get().and_then(|r| r.err()),
        ]
        .into_iter()
        .flatten()
        .last()
    };
    view! {
        <h1>{move || i18n.t("交班", "Shift handover")}</h1>
        <p class="hint no-print">{move || i18n.t("开班时登记备用金；交班时清点钱箱，金额不符须填写说明；由下一位收费员或财务确认交班单。",
            "Open a shift with the cash float; at handover count the drawer (a difference needs a note); the next cashier or finance confirms the sheet.")}</p>
        {move || errors().map(|e| view! { <p class="alert alert-error" role="alert" data-testid="shift-error">{error_line(i18n, &e)}</p> })}
        {move || close.value().get().and_then(|r| r.ok()).map(|s| view! {
            <p class="alert alert-ok" role="status" data-testid="shift-closed">
                {move || i18n.t("已交班，等待确认。", "Handed over, waiting for a confirmation.")}" "
                <a href=format!("/shifts/{}", s.id)>{move || i18n.t("查看并打印交班单", "See and print the sheet")}</a>
            </p>
        })}
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(b) => {
                        let mine = b.mine.clone();
                        view! {
                            {match mine {
                                None => view! {
                                    <form class="panel no-print" data-testid="open-shift" on:submit=move |ev: leptos::ev::SubmitEvent| {
                                        ev.prevent_default();
                                        if open.pending().get_untracked() { return; }
                                        open.dispatch(OpenShift { float: float.get_untracked() });
                                    }>
                                        <h2>{move || i18n.t("开班", "Open a shift")}</h2>
                                        <label class="field">{move || i18n.t("备用金（元）", "Cash float (yuan)")}
                                            <input name="float" inputmode="decimal" maxlength="12" prop:value=move || float.get() on:input=move |ev| float.set(event_target_value(&ev))/>
                                        </label>
                                        <button type="submit" class="btn btn-primary" disabled=move || open.pending().get()>{move || i18n.t("开班", "Open shift")}</button>
                                    </form>
                                }.into_any(),
                                Some(s) => {
                                    let id = s.id.clone();
                                    view! {
                                        <section class="panel" data-testid="my-shift">
                                            <ShiftSheet s=s/>
                                            <form class="no-print close-shift" data-testid="close-shift" on:submit=move |ev: leptos::ev::SubmitEvent| {
                                                ev.prevent_default();
                                                if close.pending().get_untracked() { return; }
                                                close.dispatch(CloseShift { id: id.clone(), counted: counted.get_untracked(), note: note.get_untracked() });
                                            }>
                                                <h2>{move || i18n.t("交班", "Hand over")}</h2>
                                                <label class="field">{move || i18n.t("实点现金（元）", "Cash counted (yuan)")}
                                                    <input name="counted" inputmode="decimal" maxlength="12" prop:value=move || counted.get() on:input=move |ev| counted.set(event_target_value(&ev))/>
                                                </label>
                                                <label class="field">{move || i18n.t("说明（金额不符时必填）", "Note (required when the cash differs)")}
                                                    <textarea name="note" rows="2" maxlength="500" prop:value=move || note.get() on:input=move |ev| note.set(event_target_value(&ev))></textarea>
                                                </label>
                                                <button type="submit" class="btn btn-primary" disabled=move || close.pending().get()>{move || i18n.t("交班", "Close the shift")}</button>
                                            </form>
                                        </section>
                                    }.into_any()
                                }
                            }}
                            <section class="panel no-print">
                                <h2>{move || i18n.t("待确认的交班", "Handovers to confirm")}</h2>
                                {if b.to_confirm.is_empty() {
                                    view! { <p class="empty">{move || i18n.t("没有待确认的交班。", "No handovers to confirm.")}</p> }.into_any()
                                } else {
                                    view! { <ShiftList list=b.to_confirm.clone() confirm=Some(confirm)/> }.into_any()
                                }}
                            </section>
                            <section class="panel no-print">
                                <h2>{move || i18n.t("最近的交班", "Recent shifts")}</h2>
                                {if b.recent.is_empty() {
                                    view! { <p class="empty">{move || i18n.t("还没有交班记录。", "No shifts handed over yet.")}</p> }.into_any()
                                } else {
                                    view! { <ShiftList list=b.recent.clone() confirm=None/> }.into_any()
                                }}
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn ShiftList(list: Vec<ShiftView>, confirm: Option<ServerAction<ConfirmShift>>) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <table class="table" aria-label=move || i18n.t("交班记录", "Shifts")>
            <thead><tr>
                <th scope="col">{move || i18n.t("收费员", "Cashier")}</th>
                <th scope="col">{move || i18n.t("时段", "When")}</th>
                <th scope="col" class="num">{move || i18n.t("收款", "Received")}</th>
                <th scope="col" class="num">{move || i18n.t("退款", "Refunded")}</th>
                <th scope="col" class="num">{move || i18n.t("现金差额", "Cash difference")}</th>
                <th scope="col">{move || i18n.t("状态", "Status")}</th>
                <th scope="col">{move || i18n.t("操作", "Action")}</th>
            </tr></thead>
            <tbody>
                {list.into_iter().map(|s| {
                    let id = s.id.clone();
                    view! { <tr data-testid="shift-row" data-status=s.status.as_str()>
                        <td>{s.cashier_name.clone()}</td>
                        <td>{format!("{} – {}", fmt_time(s.opened_at_ms), s.closed_at_ms.map(fmt_time).unwrap_or_default())}</td>
                        <td class="num"><Amount value=s.received()/></td>
                        <td class="num"><Amount value=s.refunded()/></td>
                        <td class="num">{s.difference.map(|d| view! { <Amount value=d/> })}{(!s.note.is_empty()).then(|| view! { <div class="sub">{s.note.clone()}</div> })}</td>
                        <td><ShiftBadge status=s.status/></td>
                        <td>
                            <a class="btn btn-small" href=format!("/shifts/{}", s.id)>{move || i18n.t("交班单", "Sheet")}</a>
                            {confirm.filter(|_| s.status == ShiftStatus::Closed).map(|act| {
                                let id = id.clone();
                                view! {
                                    <button type="button" class="btn btn-small btn-primary" data-testid="confirm-shift" on:click=move |_| {
                                        if !act.pending().get_untracked() { act.dispatch(ConfirmShift { id: id.clone() }); }
                                    }>{move || i18n.t("确认交班", "Confirm")}</button>
                                }
                            })}
                        </td>
                    </tr> }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// One sheet on its own page, to print.
#[component]
pub fn ShiftSheetPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id")).unwrap_or_default());
    let data = Resource::new(move || id.get(), get_shift);
    view! {
        <div class="receipt-page">
            <Suspense fallback=|| view! { <Loading/> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <h1>{move || i18n.t("交班单", "Shift handover sheet")}</h1><ErrorView err=e/> }.into_any(),
                        Ok(s) => view! {
                            <ShiftSheet s=s/>
                            <div class="qr-actions no-print">
                                <button type="button" class="btn btn-primary" onclick="window.print()">{move || i18n.t("打印交班单", "Print the sheet")}</button>
                                <a class="btn" href="/shifts">{move || i18n.t("返回交班", "Back to shifts")}</a>
                            </div>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </div>
    }
}
