//! Billing dashboard (B2): today's takings, what is owed, recent bills and payments.

use crate::api::get_dashboard;
use crate::components::{fmt_time, Amount, BillStatusBadge, ErrorView, Loading};
use crate::i18n::use_i18n;
use leptos::prelude::*;

#[component]
pub fn DashboardPage() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| get_dashboard());
    view! {
        <h1>{move || i18n.t("首页", "Dashboard")}</h1>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(d) => {
                        let recent_bills = d.recent_bills.clone();
                        let recent_payments = d.recent_payments.clone();
                        view! {
                            <section class="cards" aria-label=move || i18n.t("概览", "Overview")>
                                <TakingsCard today=d.today.clone() takings=d.today_takings payments=d.today_payments/>
                                <div class="card stat">
                                    <h2>{move || i18n.t("未结清账单", "Unpaid bills")}</h2>
                                    <p class="stat-value" data-testid="unpaid-count">{d.unpaid_count}</p>
                                    <p class="stat-sub">{move || i18n.t("合计 ", "Total ")}<Amount value=d.unpaid_total/></p>
                                </div>
                            </section>
                            <section class="panel">
                                <h2>{move || i18n.t("最近账单", "Recent bills")}</h2>
                                <table class="table">
                                    <thead><tr>
                                        <th scope="col">{move || i18n.t("账单号", "Bill no.")}</th>
                                        <th scope="col">{move || i18n.t("患者", "Patient")}</th>
                                        <th scope="col">{move || i18n.t("科室", "Department")}</th>
                                        <th scope="col">{move || i18n.t("开单时间", "Issued")}</th>
                                        <th scope="col">{move || i18n.t("状态", "Status")}</th>
                                        <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                                    </tr></thead>
                                    <tbody>
                                        {recent_bills.into_iter().map(|b| {
                                            let dep = (b.department_zh.clone(), b.department_en.clone());
                                            view! { <tr>
                                                <td><a href=format!("/bills/{}", b.id)>{b.bill_no.clone()}</a></td>
                                                <td><a href=format!("/patients/{}", b.patient_id)>{b.patient_name.clone()}</a></td>
                                                <td>{move || i18n.pick(&dep.0, &dep.1)}</td>
                                                <td>{fmt_time(b.created_at_ms)}</td>
                                                <td><BillStatusBadge status=b.status/></td>
                                                <td class="num"><Amount value=b.total/></td>
                                            </tr> }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </section>
                            <section class="panel">
                                <h2>{move || i18n.t("最近收款", "Recent payments")}</h2>
                                {if recent_payments.is_empty() {
                                    view! { <p class="empty">{move || i18n.t("暂无收款记录", "No payments yet")}</p> }.into_any()
                                } else {
                                    view! {
                                        <table class="table">
                                            <thead><tr>
                                                <th scope="col">{move || i18n.t("时间", "Paid at")}</th>
                                                <th scope="col">{move || i18n.t("患者", "Patient")}</th>
                                                <th scope="col">{move || i18n.t("渠道", "Channel")}</th>
                                                <th scope="col" class="num">{move || i18n.t("账单数", "Bills")}</th>
                                                <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                                            </tr></thead>
                                            <tbody>
                                                {recent_payments.into_iter().map(|p| {
                                                    let prov = Some(p.provider);
                                                    view! { <tr>
                                                        <td>{fmt_time(p.paid_at_ms)}</td>
                                                        <td>{p.patient_name.clone()}</td>
                                                        <td>{move || prov.map(|x| if i18n.is_en() { x.label_en() } else { x.label_zh() }).unwrap_or("")}</td>
                                                        <td class="num">{p.bills}</td>
                                                        <td class="num"><Amount value=p.amount/></td>
                                                    </tr> }
                                                }).collect_view()}
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

/// Today's takings, as the dashboard and finance's home show them.
#[component]
pub fn TakingsCard(today: String, takings: clinicpay::money::Money, payments: i64) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <div class="card stat">
            <h2>{move || i18n.t("今日收入", "Today's takings")}</h2>
            <p class="stat-value" data-testid="today-takings"><Amount value=takings large=true/></p>
            <p class="stat-sub">{move || if i18n.is_en() { format!("{payments} payments · {today}") } else { format!("{payments} 笔支付 · {today}") }}</p>
        </div>
    }
}
