//! 财务首页, the finance officer's home (UI.md): today's takings by channel, what waits for a
//! decision, what is owed, the last day closed — each a link to its page. Reconciliation,
//! statistics and payouts join this page as they are built.

use crate::api::{get_dashboard, list_closes, list_deliveries, list_refunds};
use crate::components::{Amount, ErrorView, Loading};
use crate::i18n::use_i18n;
use crate::pages::dashboard::TakingsCard;
use leptos::prelude::*;

#[component]
pub fn FinanceHomePage() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| get_dashboard());
    let failed = Resource::new(|| (), |_| list_deliveries(Some("failed".into()), None));
    let refunds = Resource::new(|| (), |_| list_refunds(None, true));
    let closes = Resource::new(|| (), |_| list_closes());
    view! {
        <h1>{move || i18n.t("财务首页", "Finance")}</h1>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(d) => {
                        let channels = d.by_channel.clone();
                        let open = d.open_exceptions;
                        view! {
                            <section class="cards" aria-label=move || i18n.t("概览", "Overview")>
                                <TakingsCard today=d.today.clone() takings=d.today_takings payments=d.today_payments/>
                                <div class="card stat">
                                    <h2>{move || i18n.t("待处理异常", "Exceptions to decide")}</h2>
                                    <p class="stat-value" data-testid="open-exceptions">{open}</p>
                                    <p class="stat-sub"><a href="/exceptions">{move || if open == 0 { i18n.t("没有待处理的异常", "Nothing to decide") } else { i18n.t("去处理", "Decide them") }}</a></p>
                                </div>
                                <div class="card stat">
                                    <h2>{move || i18n.t("待审批退款", "Refunds to decide")}</h2>
                                    <Suspense fallback=|| "…">
                                        {move || Suspend::new(async move {
                                            let list = refunds.await.unwrap_or_default();
                                            let waiting = list.iter().filter(|r| r.status.awaits_approval()).count();
                                            let failed = list.len() - waiting;
                                            view! {
                                                <p class="stat-value" data-testid="refunds-waiting">{waiting}</p>
                                                <p class="stat-sub"><a href="/finance/refunds">{move || match (waiting, failed) {
                                                    (0, 0) => i18n.t("没有待处理的退款", "Nothing to decide").to_string(),
                                                    (_, 0) => i18n.t("去审批", "Decide them").to_string(),
                                                    (_, f) => if i18n.is_en() { format!("{f} failed: send again or pay by hand") } else { format!("{f} 笔退款失败，需处理") },
                                                }}</a></p>
                                            }
                                        })}
                                    </Suspense>
                                </div>
                                <div class="card stat">
                                    <h2>{move || i18n.t("日结", "Day close")}</h2>
                                    <Suspense fallback=|| "…">
                                        {move || Suspend::new(async move {
                                            let last = closes.await.ok().and_then(|l| l.first().map(|c| c.day.to_string()));
                                            view! {
                                                <p class="stat-value small" data-testid="last-close">{last.clone().unwrap_or_else(|| "—".into())}</p>
                                                <p class="stat-sub"><a href="/finance/day-close">{move || if last.is_some() { i18n.t("最近日结的日期 · 去日结", "Last day closed · close a day") } else { i18n.t("还没有日结 · 去日结", "No day closed yet · close one") }}</a></p>
                                            }
                                        })}
                                    </Suspense>
                                </div>
                                <div class="card stat">
                                    <h2>{move || i18n.t("事件推送失败", "Events not delivered")}</h2>
                                    <Suspense fallback=|| "…">
                                        {move || Suspend::new(async move {
                                            let n = failed.await.map(|l| l.len()).unwrap_or(0);
                                            view! {
                                                <p class="stat-value" data-testid="failed-deliveries">{if n >= 200 { "200+".to_string() } else { n.to_string() }}</p>
                                                <p class="stat-sub"><a href="/finance/deliveries?status=failed">{move || if n == 0 { i18n.t("全部送达", "All delivered") } else { i18n.t("查看并重新发送", "Look and re-send") }}</a></p>
                                            }
                                        })}
                                    </Suspense>
                                </div>
                                <div class="card stat">
                                    <h2>{move || i18n.t("未结清账单", "Unpaid bills")}</h2>
                                    <p class="stat-value">{d.unpaid_count}</p>
                                    <p class="stat-sub"><a href="/bills?status=unpaid">{move || i18n.t("合计 ", "Total ")}<Amount value=d.unpaid_total/></a></p>
                                </div>
                            </section>
                            <section class="panel">
                                <h2>{move || i18n.t("今日各渠道收入", "Today by channel")}</h2>
                                {if channels.is_empty() {
                                    view! { <p class="empty">{move || i18n.t("今天还没有收款。收款后按渠道列在这里。", "No payments today yet; they are listed here by channel as they come in.")}</p> }.into_any()
                                } else {
                                    view! {
                                        <table class="table" aria-label=move || i18n.t("各渠道收入", "Takings by channel")>
                                            <thead><tr>
                                                <th scope="col">{move || i18n.t("渠道", "Channel")}</th>
                                                <th scope="col" class="num">{move || i18n.t("笔数", "Payments")}</th>
                                                <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                                            </tr></thead>
                                            <tbody>
                                                {channels.into_iter().map(|c| {
                                                    let p = c.provider;
                                                    view! { <tr>
                                                        <td>{move || if i18n.is_en() { p.label_en() } else { p.label_zh() }}</td>
                                                        <td class="num">{c.payments}</td>
                                                        <td class="num"><Amount value=c.amount/></td>
                                                    </tr> }
                                                }).collect_view()}
                                            </tbody>
                                            <tfoot><tr>
                                                <th scope="row">{move || i18n.t("合计", "Total")}</th>
                                                <td class="num">{d.today_payments}</td>
                                                <td class="num"><Amount value=d.today_takings/></td>
                                            </tr></tfoot>
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
