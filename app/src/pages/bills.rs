//! Bills (B2): search by patient name, record number or bill number; status and date filters;
//! server-side paging and sorting; a bill's items and payments.

use crate::api::{get_bill, list_bills, BillList, VoidBill};
use crate::components::{enc, fmt_time, Amount, BillStatusBadge, ErrorView, Loading, Pager};
use crate::i18n::use_i18n;
use crate::pages::refunds::BillRefunds;
use clinicpay::billing::BillStatus;
use clinicpay::views::{BillParams, BillQuery, BillSort};
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::{use_params_map, use_query_map};

/// The bills-list URL for a query (used by sort headers and the pager).
fn bills_href(q: &BillQuery) -> String {
    let p = q.to_params();
    let mut parts = Vec::new();
    for (k, v) in [
        ("q", p.q),
        ("status", p.status),
        ("from", p.from),
        ("to", p.to),
        ("sort", p.sort),
        ("dir", p.dir),
        ("page", p.page),
        ("page_size", p.page_size),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={}", enc(&v)));
        }
    }
    format!("/bills?{}", parts.join("&"))
}

#[component]
pub fn BillsPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let params = Memo::new(move |_| {
        query.with(|q| BillParams {
            q: q.get("q"),
            status: q.get("status"),
            from: q.get("from"),
            to: q.get("to"),
            sort: q.get("sort"),
            dir: q.get("dir"),
            page: q.get("page"),
            page_size: q.get("page_size"),
        })
    });
    let data = Resource::new(move || params.get(), list_bills);
    let value = move |k: &'static str| move || query.with(|q| q.get(k)).unwrap_or_default();

    view! {
        <h1>{move || i18n.t("账单", "Bills")}</h1>
        <Form method="GET" action="/bills" attr:class="filters" attr:role="search">
            <div class="field grow">
                <label for="bill-q">{move || i18n.t("搜索（患者姓名、病历号或账单号）", "Search (patient name, record number or bill number)")}</label>
                <input id="bill-q" type="search" name="q" prop:value=value("q") maxlength="64" autofocus/>
            </div>
            <div class="field">
                <label for="bill-status">{move || i18n.t("状态", "Status")}</label>
                <select id="bill-status" name="status">
                    <option value="" selected=move || value("status")().is_empty()>{move || i18n.t("全部", "All")}</option>
                    {BillStatus::ALL.into_iter().map(|s| {
                        let selected = move || value("status")() == s.as_str();
                        view! { <option value=s.as_str() selected=selected>{move || if i18n.is_en() { s.label_en() } else { s.label_zh() }}</option> }
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="bill-from">{move || i18n.t("开始日期", "From")}</label>
                <input id="bill-from" type="date" name="from" prop:value=value("from")/>
            </div>
            <div class="field">
                <label for="bill-to">{move || i18n.t("结束日期", "To")}</label>
                <input id="bill-to" type="date" name="to" prop:value=value("to")/>
            </div>
            <div class="field actions">
                <button type="submit" class="btn btn-primary">{move || i18n.t("查询", "Search")}</button>
                <a class="btn btn-quiet" href="/bills">{move || i18n.t("清除", "Clear")}</a>
            </div>
        </Form>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(list) => view! { <BillTable list/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn BillTable(list: BillList) -> impl IntoView {
    let i18n = use_i18n();
    let q = list.query.clone();
    let header = move |key: BillSort, zh: &'static str, en: &'static str, num: bool| {
        let mut target = q.clone();
        target.page = 1;
        let active = q.sort == key;
        target.desc = if active { !q.desc } else { key != BillSort::BillNo && key != BillSort::Patient };
        target.sort = key;
        let arrow = if active {
            if q.desc {
                " ↓"
            } else {
                " ↑"
            }
        } else {
            ""
        };
        let aria = if active {
            if q.desc {
                "descending"
            } else {
                "ascending"
            }
        } else {
            "none"
        };
        view! {
            <th scope="col" class:num=num aria-sort=aria>
                <a href=bills_href(&target)>{move || i18n.t(zh, en)}{arrow}</a>
            </th>
        }
    };
    let page = list.page.clone();
    let pages = page.pages();
    let qp = list.query.clone();
    view! {
        <section class="panel">
            {if page.items.is_empty() {
                view! { <p class="empty">{move || i18n.t("没有符合条件的账单", "No bills match")}</p> }.into_any()
            } else {
                view! {
                    <table class="table" aria-label=move || i18n.t("账单列表", "Bills")>
                        <thead><tr>
                            {header(BillSort::BillNo, "账单号", "Bill no.", false)}
                            {header(BillSort::Patient, "患者", "Patient", false)}
                            <th scope="col">{move || i18n.t("病历号", "MRN")}</th>
                            <th scope="col">{move || i18n.t("科室", "Department")}</th>
                            {header(BillSort::Created, "开单时间", "Issued", false)}
                            <th scope="col">{move || i18n.t("状态", "Status")}</th>
                            {header(BillSort::Amount, "金额", "Amount", true)}
                        </tr></thead>
                        <tbody>
                            {page.items.iter().map(|b| {
                                let dep = (b.department_zh.clone(), b.department_en.clone());
                                view! { <tr>
                                    <td><a href=format!("/bills/{}", b.id)>{b.bill_no.clone()}</a></td>
                                    <td><a href=format!("/patients/{}", b.patient_id)>{b.patient_name.clone()}</a></td>
                                    <td>{b.mrn.clone()}</td>
                                    <td>{move || i18n.pick(&dep.0, &dep.1)}</td>
                                    <td>{fmt_time(b.created_at_ms)}</td>
                                    <td><BillStatusBadge status=b.status/></td>
                                    <td class="num"><Amount value=b.total/></td>
                                </tr> }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
            <Pager page=page.page pages=pages total=page.total href=move |n| { let mut x = qp.clone(); x.page = n; bills_href(&x) }/>
        </section>
    }
}

#[component]
pub fn BillPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id")).unwrap_or_default());
    let void = ServerAction::<VoidBill>::new();
    let data = Resource::new(move || (id.get(), void.version().get()), |(id, _)| get_bill(id));
    view! {
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <h1>{move || i18n.t("账单", "Bill")}</h1><ErrorView err=e/> }.into_any(),
                    Ok(d) => {
                        let b = d.bill.clone();
                        let refund_bill_id = b.id.to_string();
                        let dep = (b.department_zh.clone(), b.department_en.clone());
                        view! {
                            <h1>{move || i18n.t("账单 ", "Bill ")}{b.bill_no.clone()}</h1>
                            {matches!(b.status, BillStatus::Unpaid | BillStatus::Paying).then(|| view! {
                                <p class="page-actions">
                                    <a class="btn btn-primary" href=format!("/charge?patient={}", enc(b.patient_id.as_str()))>
                                        {move || i18n.t("收费", "Charge")}
                                    </a>
                                </p>
                            })}
                            <section class="panel">
                                <dl class="facts">
                                    <dt>{move || i18n.t("患者", "Patient")}</dt>
                                    <dd><a href=format!("/patients/{}", b.patient_id)>{b.patient_name.clone()}</a>{format!(" · {}", b.mrn)}</dd>
                                    <dt>{move || i18n.t("科室", "Department")}</dt>
                                    <dd>{move || i18n.pick(&dep.0, &dep.1)}</dd>
                                    <dt>{move || i18n.t("开单时间", "Issued")}</dt>
                                    <dd>{fmt_time(b.created_at_ms)}</dd>
                                    <dt>{move || i18n.t("状态", "Status")}</dt>
                                    <dd><BillStatusBadge status=b.status/></dd>
                                    <dt>{move || i18n.t("金额", "Amount")}</dt>
                                    <dd><Amount value=b.total large=true/></dd>
                                    {(!d.refunded.is_zero()).then(|| view! {
                                        <dt>{move || i18n.t("已退款", "Refunded")}</dt>
                                        <dd><Amount value=d.refunded/></dd>
                                    })}
                                </dl>
                            </section>
                            {(b.status == BillStatus::Unpaid).then(|| view! {
                                // B1: a bill is corrected by a void with a reason (and a new bill)
                                <section class="panel no-print" aria-labelledby="void-h">
                                    <h2 id="void-h">{move || i18n.t("作废账单", "Void the bill")}</h2>
                                    <ActionForm action=void attr:class="form form-inline">
                                        <input type="hidden" name="bill_id" value=b.id.to_string()/>
                                        <div class="field grow">
                                            <label for="void-reason">{move || i18n.t("作废原因", "Reason")}</label>
                                            <input id="void-reason" name="reason" required minlength="2" maxlength="200" autocomplete="off"/>
                                        </div>
                                        <div class="field actions">
                                            <button type="submit" class="btn btn-danger">{move || i18n.t("作废", "Void")}</button>
                                        </div>
                                    </ActionForm>
                                    {move || void.value().get().and_then(|r| r.err()).map(|e| {
                                        let text = crate::i18n::error_text(&e.code, i18n.lang.get()).map(str::to_string)
                                            .unwrap_or_else(|| if i18n.is_en() { e.message.clone() } else { "操作未完成，请检查后重试".to_string() });
                                        view! { <p class="alert alert-error" role="alert">{format!("{text} [{}]", e.code)}</p> }
                                    })}
                                </section>
                            })}
                            <section class="panel">
                                <h2>{move || i18n.t("明细", "Items")}</h2>
                                <table class="table">
                                    <thead><tr>
                                        <th scope="col">"#"</th>
                                        <th scope="col">{move || i18n.t("类别", "Category")}</th>
                                        <th scope="col">{move || i18n.t("项目", "Item")}</th>
                                        <th scope="col" class="num">{move || i18n.t("数量", "Qty")}</th>
                                        <th scope="col" class="num">{move || i18n.t("单价", "Unit price")}</th>
                                        <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                                    </tr></thead>
                                    <tbody>
                                        {d.items.iter().cloned().map(|it| view! { <tr>
                                            <td>{it.line_no}</td>
                                            <td>{move || if i18n.is_en() { it.category.label_en() } else { it.category.label_zh() }}</td>
                                            <td>{it.description.clone()}</td>
                                            <td class="num">{it.quantity}</td>
                                            <td class="num"><Amount value=it.unit_price/></td>
                                            <td class="num"><Amount value=it.amount/></td>
                                        </tr> }).collect_view()}
                                    </tbody>
                                    <tfoot><tr>
                                        <th scope="row" colspan="5" class="num">{move || i18n.t("合计", "Total")}</th>
                                        <td class="num"><Amount value=b.total/></td>
                                    </tr></tfoot>
                                </table>
                            </section>
                            <section class="panel">
                                <h2>{move || i18n.t("支付记录", "Payments")}</h2>
                                {if d.payments.is_empty() {
                                    view! { <p class="empty">{move || i18n.t("暂无支付", "No payments")}</p> }.into_any()
                                } else {
                                    view! {
                                        <table class="table">
                                            <thead><tr>
                                                <th scope="col">{move || i18n.t("时间", "Paid at")}</th>
                                                <th scope="col">{move || i18n.t("渠道", "Channel")}</th>
                                                <th scope="col">{move || i18n.t("渠道交易号", "Provider transaction")}</th>
                                                <th scope="col">{move || i18n.t("支付会话", "Payment session")}</th>
                                                <th scope="col" class="num">{move || i18n.t("分配金额", "Allocated")}</th>
                                                <th scope="col">{move || i18n.t("收据", "Receipt")}</th>
                                            </tr></thead>
                                            <tbody>
                                                {d.payments.iter().map(|p| {
                                                    let prov = Some(p.provider);
                                                    view! { <tr>
                                                        <td>{fmt_time(p.paid_at_ms)}</td>
                                                        <td>{move || prov.map(|x| if i18n.is_en() { x.label_en() } else { x.label_zh() }).unwrap_or("")}</td>
                                                        <td><code>{p.provider_txn_id.clone()}</code></td>
                                                        <td><code>{p.session_id.to_string()}</code></td>
                                                        <td class="num"><Amount value=p.amount/></td>
                                                        <td><a href=format!("/receipts/{}", p.session_id)>{move || i18n.t("补打收据", "Reprint receipt")}</a></td>
                                                    </tr> }
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    }.into_any()
                                }}
                            </section>
                            <BillRefunds bill_id=refund_bill_id status=b.status items=d.items.clone() total=b.total refunded=d.refunded/>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
