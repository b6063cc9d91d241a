//! The books for finance: the trial balance (试算平衡表) with income by department, an account's
//! postings (明细账), and the day-end close (日结) — our figures per channel beside the
//! provider's statement, confirm or record an exception, then the day is locked.

use crate::api::{get_account_ledger, get_day, get_trial_balance, list_closes, CloseDay};
use crate::components::{fmt_time, Amount, ErrorView, Loading};
use crate::i18n::{error_text, use_i18n, I18n};
use clinicpay::books::{figures_key, ChannelDay, CloseStatus, DayView};
use clinicpay::ledger::{AccountKind, EntryKind};
use clinicpay::money::Money;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

fn yuan(fen: i64) -> Money {
    Money::from_fen(fen).unwrap_or(Money::ZERO)
}

fn error_line(i18n: I18n, e: &crate::error::AppError) -> String {
    let text = error_text(&e.code, i18n.lang.get()).map(str::to_string).unwrap_or_else(|| e.message.clone());
    format!("{text} [{}]", e.code)
}

fn kind_label(kind: AccountKind, en: bool) -> &'static str {
    if en {
        kind.label_en()
    } else {
        kind.label_zh()
    }
}

/// A debit or credit cell: empty for zero.
#[component]
fn Side(fen: i64) -> impl IntoView {
    view! { <td class="num">{(fen != 0).then(|| view! { <Amount value=yuan(fen)/> })}</td> }
}

#[component]
pub fn LedgerPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let through = Memo::new(move |_| query.with(|q| q.get("through")).filter(|s| !s.is_empty()));
    let data = Resource::new(move || through.get(), get_trial_balance);
    view! {
        <h1>{move || i18n.t("账簿 · 试算平衡表", "Books · trial balance")}</h1>
        <form class="toolbar no-print" method="get" action="/finance/ledger">
            <label>{move || i18n.t("截至日期（含）", "Through the end of")}
                <input type="date" name="through" value=move || through.get().unwrap_or_default()/>
            </label>
            <button type="submit" class="btn">{move || i18n.t("查看", "Show")}</button>
            <a class="btn btn-link" href="/finance/ledger">{move || i18n.t("全部", "Everything")}</a>
            <button type="button" class="btn btn-link" onclick="window.print()">{move || i18n.t("打印", "Print")}</button>
        </form>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(tb) => {
                        let balanced = tb.balanced();
                        let (debit, credit) = (tb.total_debit_fen(), tb.total_credit_fen());
                        let departments = tb.departments.clone();
                        view! {
                            <p class=if balanced { "alert alert-ok" } else { "alert alert-error" } role="status" data-testid="trial-balanced">
                                {move || match (balanced, i18n.is_en()) {
                                    (true, false) => format!("借贷平衡 · {} 笔分录", tb.entries),
                                    (true, true) => format!("Debits equal credits · {} entries", tb.entries),
                                    (false, false) => "借贷不平衡！请运行 clinicpay verify 并联系管理员".to_string(),
                                    (false, true) => "Debits and credits differ! Run clinicpay verify and call an administrator".to_string(),
                                }}
                            </p>
                            <table class="table" aria-label=move || i18n.t("试算平衡表", "Trial balance") data-testid="trial-balance">
                                <thead><tr>
                                    <th scope="col">{move || i18n.t("科目代码", "Code")}</th>
                                    <th scope="col">{move || i18n.t("科目名称", "Account")}</th>
                                    <th scope="col">{move || i18n.t("类别", "Kind")}</th>
                                    <th scope="col" class="num">{move || i18n.t("借方发生额", "Debits")}</th>
                                    <th scope="col" class="num">{move || i18n.t("贷方发生额", "Credits")}</th>
                                    <th scope="col" class="num">{move || i18n.t("余额", "Balance")}</th>
                                </tr></thead>
                                <tbody>
                                    {tb.rows.into_iter().map(|r| {
                                        let bal = r.balance_fen();
                                        let kind = r.kind;
                                        let (zh, en) = (r.name_zh.clone(), r.name_en.clone());
                                        // a balance on its normal side reads plain; the other side is marked
                                        let normal_debit = matches!(kind, AccountKind::Asset | AccountKind::Expense);
                                        let side_zh = if bal == 0 { "平" } else if (bal > 0) == normal_debit { if normal_debit { "借" } else { "贷" } } else if bal > 0 { "借" } else { "贷" };
                                        let side_en = match side_zh { "借" => "Dr", "贷" => "Cr", _ => "" };
                                        view! { <tr data-account=r.code.clone()>
                                            <td><a href=format!("/finance/ledger/{}", r.code)>{r.code.clone()}</a></td>
                                            <td>{move || if i18n.is_en() { en.clone() } else { zh.clone() }}</td>
                                            <td>{move || kind_label(kind, i18n.is_en())}</td>
                                            <Side fen=r.debit_fen/>
                                            <Side fen=r.credit_fen/>
                                            <td class="num" data-testid="account-balance">
                                                <Amount value=yuan(bal.abs())/>" "{move || if i18n.is_en() { side_en } else { side_zh }}
                                            </td>
                                        </tr> }
                                    }).collect_view()}
                                </tbody>
                                <tfoot><tr>
                                    <th scope="row" colspan="3">{move || i18n.t("合计", "Total")}</th>
                                    <td class="num"><Amount value=yuan(debit)/></td>
                                    <td class="num"><Amount value=yuan(credit)/></td>
                                    <td></td>
                                </tr></tfoot>
                            </table>
                            <section class="panel">
                                <h2>{move || i18n.t("医疗收入 · 按科室（辅助核算）", "Medical income by department")}</h2>
                                {if departments.is_empty() {
                                    view! { <p class="empty">{move || i18n.t("还没有收入。", "No income yet.")}</p> }.into_any()
                                } else {
                                    view! {
                                        <table class="table" data-testid="income-by-department">
                                            <thead><tr>
                                                <th scope="col">{move || i18n.t("科室", "Department")}</th>
                                                <th scope="col" class="num">{move || i18n.t("开单收入", "Earned")}</th>
                                                <th scope="col" class="num">{move || i18n.t("作废与退款", "Voided and refunded")}</th>
                                                <th scope="col" class="num">{move || i18n.t("净收入", "Net")}</th>
                                            </tr></thead>
                                            <tbody>
                                                {departments.into_iter().map(|d| view! { <tr>
                                                    <td>{d.name.clone()}</td>
                                                    <td class="num"><Amount value=yuan(d.earned_fen)/></td>
                                                    <td class="num"><Amount value=yuan(d.reversed_fen)/></td>
                                                    <td class="num"><Amount value=yuan(d.net_fen())/></td>
                                                </tr> }).collect_view()}
                                            </tbody>
                                        </table>
                                    }.into_any()
                                }}
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

fn entry_label(kind: &str, en: bool) -> String {
    match EntryKind::parse(kind) {
        Some(k) => (if en { k.label_en() } else { k.label_zh() }).to_string(),
        None => kind.to_string(),
    }
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let query = use_query_map();
    let code = Memo::new(move |_| params.with(|p| p.get("code")).unwrap_or_default());
    let before = Memo::new(move |_| query.with(|q| q.get("before")).filter(|s| !s.is_empty()));
    let data = Resource::new(move || (code.get(), before.get()), |(c, b)| get_account_ledger(c, b));
    view! {
        <p class="no-print"><a href="/finance/ledger">{move || i18n.t("← 试算平衡表", "← Trial balance")}</a></p>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(a) => {
                        let r = a.row.clone();
                        let (zh, en) = (r.name_zh.clone(), r.name_en.clone());
                        let code = r.code.clone();
                        let next = a.next_before.clone();
                        view! {
                            <h1>{r.code.clone()}" "{move || if i18n.is_en() { en.clone() } else { zh.clone() }}</h1>
                            <section class="cards">
                                <div class="card stat"><h2>{move || i18n.t("借方发生额", "Debits")}</h2><p class="stat-value"><Amount value=yuan(r.debit_fen)/></p></div>
                                <div class="card stat"><h2>{move || i18n.t("贷方发生额", "Credits")}</h2><p class="stat-value"><Amount value=yuan(r.credit_fen)/></p></div>
                                <div class="card stat"><h2>{move || i18n.t("余额（借为正）", "Balance (debit positive)")}</h2><p class="stat-value" data-testid="account-balance"><Amount value=yuan(r.balance_fen())/></p><p class="stat-sub">{r.postings}{move || i18n.t(" 笔过账", " postings")}</p></div>
                            </section>
                            {if a.postings.is_empty() {
                                view! { <p class="empty">{move || i18n.t("该科目还没有过账。", "Nothing posted to this account yet.")}</p> }.into_any()
                            } else {
                                view! {
                                    <table class="table" aria-label=move || i18n.t("明细账", "Postings") data-testid="postings">
                                        <thead><tr>
                                            <th scope="col">{move || i18n.t("记账时间", "Booked")}</th>
                                            <th scope="col">{move || i18n.t("业务时间", "Occurred")}</th>
                                            <th scope="col">{move || i18n.t("类型", "Kind")}</th>
                                            <th scope="col">{move || i18n.t("摘要", "Memo")}</th>
                                            <th scope="col">{move || i18n.t("账单", "Bill")}</th>
                                            <th scope="col" class="num">{move || i18n.t("借方", "Debit")}</th>
                                            <th scope="col" class="num">{move || i18n.t("贷方", "Credit")}</th>
                                        </tr></thead>
                                        <tbody>
                                            {a.postings.into_iter().map(|p| {
                                                let kind = p.kind.clone();
                                                view! { <tr>
                                                    <td>{fmt_time(p.booked_at_ms)}</td>
                                                    <td>{fmt_time(p.occurred_at_ms)}</td>
                                                    <td>{move || entry_label(&kind, i18n.is_en())}</td>
                                                    <td class="memo" title=p.entry_id.clone()>{p.memo.clone()}</td>
                                                    <td>{p.bill_id.clone().map(|id| view! { <a href=format!("/bills/{id}")>{p.bill_no.clone().unwrap_or(id.clone())}</a> })}</td>
                                                    <Side fen=p.amount_fen.max(0)/>
                                                    <Side fen=(-p.amount_fen).max(0)/>
                                                </tr> }
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                }.into_any()
                            }}
                            {next.map(|n| view! {
                                <p class="pager no-print"><a class="btn" href=format!("/finance/ledger/{code}?before={n}")>{move || i18n.t("更早的过账 →", "Older postings →")}</a></p>
                            })}
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

fn channel_name(c: &ChannelDay, en: bool) -> &'static str {
    if en {
        c.provider.label_en()
    } else {
        c.provider.label_zh()
    }
}

#[component]
fn DayTable(view: DayView) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <table class="table" aria-label=move || i18n.t("各渠道日结", "The day by channel") data-testid="day-channels">
            <thead>
                <tr>
                    <th scope="col" rowspan="2">{move || i18n.t("渠道", "Channel")}</th>
                    <th scope="colgroup" colspan="3">{move || i18n.t("本系统账簿", "Our books")}</th>
                    <th scope="colgroup" colspan="4">{move || i18n.t("渠道对账单", "Provider's statement")}</th>
                    <th scope="col" rowspan="2">{move || i18n.t("核对", "Check")}</th>
                </tr>
                <tr>
                    <th scope="col" class="num">{move || i18n.t("收款", "In")}</th>
                    <th scope="col" class="num">{move || i18n.t("退款", "Out")}</th>
                    <th scope="col" class="num">{move || i18n.t("净额", "Net")}</th>
                    <th scope="col" class="num">{move || i18n.t("收款", "In")}</th>
                    <th scope="col" class="num">{move || i18n.t("退款", "Out")}</th>
                    <th scope="col" class="num">{move || i18n.t("手续费", "Fees")}</th>
                    <th scope="col" class="num">{move || i18n.t("净额", "Net")}</th>
                </tr>
            </thead>
            <tbody>
                {view.channels.into_iter().map(|c| {
                    let agrees = c.agrees();
                    let st = c.statement.clone();
                    let err = c.statement_error.clone();
                    let counter = c.provider.is_counter();
                    let diff = c.differences();
                    let name_c = c.clone();
                    view! { <tr data-provider=c.provider.as_str() class=if agrees { "" } else { "row-warn" }>
                        <th scope="row">{move || channel_name(&name_c, i18n.is_en())}</th>
                        <td class="num"><Amount value=yuan(c.received_fen)/><span class="sub">" · "{c.payments}</span></td>
                        <td class="num"><Amount value=yuan(c.refunded_fen)/><span class="sub">" · "{c.refunds}</span></td>
                        <td class="num"><Amount value=yuan(c.net_fen())/></td>
                        {match st {
                            Some(s) => view! {
                                <td class="num"><Amount value=yuan(s.received_fen)/><span class="sub">" · "{s.payments}</span></td>
                                <td class="num"><Amount value=yuan(s.refunded_fen)/><span class="sub">" · "{s.refunds}</span></td>
                                <td class="num"><Amount value=yuan(s.fees_fen)/></td>
                                <td class="num"><Amount value=yuan(s.received_fen - s.refunded_fen)/></td>
                            }.into_any(),
                            None => view! {
                                <td colspan="4" class="muted">{move || match &err {
                                    _ if counter => i18n.t("柜台渠道，无对账单：现金与 POS 签购单在交班时清点", "A counter channel, no statement: cash and POS slips are counted at each shift handover").to_string(),
                                    Some(e) => format!("{}{e}", i18n.t("未取得对账单：", "No statement: ")),
                                    None => i18n.t("当天没有交易", "No trades that day").to_string(),
                                }}</td>
                            }.into_any(),
                        }}
                        <td data-testid="channel-check">{move || match (agrees, diff) {
                            (true, _) => i18n.t("一致", "Agrees").to_string(),
                            (false, Some((a, b))) => {
                                let d = |x: i64| yuan(x).display();
                                if i18n.is_en() { format!("Differs: in {}, out {}", d(a), d(b)) } else { format!("不一致：收款差 {}，退款差 {}", d(a), d(b)) }
                            }
                            (false, None) => i18n.t("无法核对", "Cannot check").to_string(),
                        }}</td>
                    </tr> }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn DayClosePage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let day = Memo::new(move |_| query.with(|q| q.get("day")).filter(|s| !s.is_empty()));
    let close = ServerAction::<CloseDay>::new();
    let data = Resource::new(move || (day.get(), close.version().get()), |(d, _)| get_day(d));
    let closes = Resource::new(move || close.version().get(), |_| list_closes());
    let note = RwSignal::new(String::new());
    view! {
        <h1>{move || i18n.t("日结", "Day-end close")}</h1>
        <form class="toolbar no-print" method="get" action="/finance/day-close">
            <label>{move || i18n.t("日期", "Day")}
                <input type="date" name="day" value=move || day.get().unwrap_or_default() data-testid="day-input"/>
            </label>
            <button type="submit" class="btn">{move || i18n.t("查看", "Show")}</button>
            <button type="button" class="btn btn-link" onclick="window.print()">{move || i18n.t("打印", "Print")}</button>
        </form>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(v) => {
                        let d = v.day.to_string();
                        let key = figures_key(&v.channels, v.income_fen, v.entries);
                        let agrees = v.agrees();
                        let record = v.close.clone();
                        let over = v.over;
                        let table = v.clone();
                        view! {
                            <h2 data-testid="day-title">{d.clone()}</h2>
                            {match &record {
                                Some(c) => {
                                    let exc = c.status == CloseStatus::Exception;
                                    let by = c.closed_by.clone();
                                    let at = fmt_time(c.closed_at_ms);
                                    let noted = c.note.clone();
                                    view! {
                                        <p class="alert alert-ok" role="status" data-testid="day-locked">
                                            {move || if exc { i18n.t("已日结（有异常说明）并锁定", "Closed with an exception, and locked") } else { i18n.t("已日结并锁定", "Closed and locked") }}
                                            " · "{by.clone()}" · "{at.clone()}
                                        </p>
                                        {(!noted.is_empty()).then(|| view! { <p class="note" data-testid="day-note">{move || i18n.t("异常说明：", "Exception: ")}{noted.clone()}</p> })}
                                        <p class="muted small">{move || i18n.t("锁定后该日不能再记账，更正以今天的新分录记入。", "No entry can be booked in a locked day; corrections are new entries booked today.")}
                                            " #"{c.seq}" · "<code title=c.hash.clone()>{c.hash.get(..16).unwrap_or("").to_string()}</code></p>
                                    }.into_any()
                                }
                                None if !over => view! { <p class="alert" role="status">{move || i18n.t("该日尚未结束，结束后才能日结。", "This day has not ended yet: it can be closed once it is over.")}</p> }.into_any(),
                                None => view! { <p class="alert" role="status" data-testid="day-open">{move || if agrees { i18n.t("各渠道一致，可以确认日结。", "Every channel agrees: the day can be confirmed.") } else { i18n.t("有渠道不一致或缺少对账单：请核实，并填写异常说明后日结。", "A channel differs or has no statement: look into it, and write an exception note to close.") }}</p> }.into_any(),
                            }}
                            <DayTable view=table/>
                            <p>{move || i18n.t("当日记账分录 ", "Entries booked that day: ")}{v.entries}{move || i18n.t(" 笔 · 医疗收入净额 ", " · medical income net ")}<Amount value=yuan(v.income_fen)/></p>
                            {(record.is_none() && over).then(|| {
                                let d = d.clone();
                                let key = key.clone();
                                view! {
                                    <form class="panel no-print" data-testid="close-form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                                        ev.prevent_default();
                                        if close.pending().get_untracked() { return; }
                                        close.dispatch(CloseDay { day: d.clone(), key: key.clone(), note: note.get_untracked() });
                                    }>
                                        <label class="field">{move || if agrees { i18n.t("备注（可选）", "Note (optional)") } else { i18n.t("异常说明（必填）", "Exception note (required)") }}
                                            <textarea name="note" rows="2" maxlength="1000" prop:value=move || note.get() on:input=move |ev| note.set(event_target_value(&ev)) data-testid="close-note"></textarea>
                                        </label>
                                        <button type="submit" class="btn btn-primary" data-testid="close-day" disabled=move || close.pending().get()>
                                            {move || if agrees { i18n.t("确认日结并锁定", "Confirm and lock the day") } else { i18n.t("记录异常并日结", "Record the exception and close") }}
                                        </button>
                                    </form>
                                }
                            })}
                        }.into_any()
                    }
                }
            })}
        </Suspense>
        {move || close.value().get().and_then(|r| r.err()).map(|e| view! { <p class="alert alert-error" role="alert" data-testid="close-error">{error_line(i18n, &e)}</p> })}
        <section class="panel">
            <h2>{move || i18n.t("已日结的日期", "Closed days")}</h2>
            <Suspense fallback=|| "…">
                {move || Suspend::new(async move {
                    let list = closes.await.unwrap_or_default();
                    if list.is_empty() {
                        return view! { <p class="empty">{move || i18n.t("还没有日结记录。", "No day has been closed yet.")}</p> }.into_any();
                    }
                    view! {
                        <table class="table" data-testid="closes">
                            <thead><tr>
                                <th scope="col">{move || i18n.t("日期", "Day")}</th>
                                <th scope="col">{move || i18n.t("结果", "Result")}</th>
                                <th scope="col" class="num">{move || i18n.t("医疗收入净额", "Income net")}</th>
                                <th scope="col">{move || i18n.t("日结人", "Closed by")}</th>
                                <th scope="col">{move || i18n.t("时间", "At")}</th>
                            </tr></thead>
                            <tbody>
                                {list.into_iter().map(|c| {
                                    let exc = c.status == CloseStatus::Exception;
                                    view! { <tr>
                                        <td><a href=format!("/finance/day-close?day={}", c.day)>{c.day.to_string()}</a></td>
                                        <td>{move || if exc { i18n.t("有异常说明", "With exception") } else { i18n.t("一致", "Agreed") }}</td>
                                        <td class="num"><Amount value=yuan(c.income_fen)/></td>
                                        <td>{c.closed_by.clone()}</td>
                                        <td>{fmt_time(c.closed_at_ms)}</td>
                                    </tr> }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                })}
            </Suspense>
        </section>
    }
}
