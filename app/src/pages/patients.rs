//! Patients: search and a patient's page with their bills.

use crate::api::{get_patient, list_patients};
use crate::components::{enc, fmt_time, sex_label, Amount, BillStatusBadge, ErrorView, Loading, Pager};
use crate::i18n::use_i18n;
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::{use_params_map, use_query_map};

#[component]
pub fn PatientsPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let key = Memo::new(move |_| query.with(|q| (q.get("q"), q.get("page"))));
    let data = Resource::new(move || key.get(), |(q, page)| list_patients(q, page));
    let qv = move || query.with(|q| q.get("q")).unwrap_or_default();
    view! {
        <h1>{move || i18n.t("患者", "Patients")}</h1>
        <Form method="GET" action="/patients" attr:class="filters" attr:role="search">
            <div class="field grow">
                <label for="patient-q">{move || i18n.t("搜索（姓名或病历号）", "Search (name or record number)")}</label>
                <input id="patient-q" type="search" name="q" prop:value=qv maxlength="64" autofocus/>
            </div>
            <div class="field actions">
                <button type="submit" class="btn btn-primary">{move || i18n.t("查询", "Search")}</button>
            </div>
        </Form>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(page) => {
                        let q = qv();
                        let pages = page.pages();
                        view! {
                            <section class="panel">
                                {if page.items.is_empty() {
                                    view! { <p class="empty">{move || i18n.t("没有找到患者", "No patients found")}</p> }.into_any()
                                } else {
                                    view! {
                                        <table class="table" aria-label=move || i18n.t("患者列表", "Patients")>
                                            <thead><tr>
                                                <th scope="col">{move || i18n.t("病历号", "MRN")}</th>
                                                <th scope="col">{move || i18n.t("姓名", "Name")}</th>
                                                <th scope="col">{move || i18n.t("性别", "Sex")}</th>
                                                <th scope="col">{move || i18n.t("电话", "Phone")}</th>
                                                <th scope="col" class="num">{move || i18n.t("未结清账单", "Unpaid bills")}</th>
                                                <th scope="col" class="num">{move || i18n.t("未结清金额", "Amount owed")}</th>
                                            </tr></thead>
                                            <tbody>
                                                {page.items.iter().map(|p| view! { <tr>
                                                    <td>{p.mrn.clone()}</td>
                                                    <td><a href=format!("/patients/{}", p.id)>{p.name.clone()}</a></td>
                                                    <td>{let g = p.gender.clone(); move || sex_label(i18n.is_en(), &g)}</td>
                                                    <td>{p.phone_masked.clone()}</td>
                                                    <td class="num">{p.unpaid_count}</td>
                                                    <td class="num"><Amount value=p.unpaid_total/></td>
                                                </tr> }).collect_view()}
                                            </tbody>
                                        </table>
                                    }.into_any()
                                }}
                                <Pager page=page.page pages=pages total=page.total
                                    href=move |n| if q.is_empty() { format!("/patients?page={n}") } else { format!("/patients?q={}&page={n}", enc(&q)) }/>
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn PatientPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id")).unwrap_or_default());
    let data = Resource::new(move || id.get(), get_patient);
    view! {
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <h1>{move || i18n.t("患者", "Patient")}</h1><ErrorView err=e/> }.into_any(),
                    Ok(d) => {
                        let p = d.patient.clone();
                        view! {
                            <h1>{p.name.clone()}</h1>
                            <p class="page-actions">
                                {(p.unpaid_count > 0).then(|| view! {
                                    <a class="btn btn-primary" href=format!("/charge?patient={}", enc(p.id.as_str()))>
                                        {move || i18n.t("为该患者收费", "Charge this patient")}
                                    </a>
                                })}
                                " "
                                <a class="btn" href=format!("/bills/new?patient={}", enc(p.id.as_str()))>
                                    {move || i18n.t("开具账单", "New bill")}
                                </a>
                            </p>
                            <section class="panel">
                                <dl class="facts">
                                    <dt>{move || i18n.t("病历号", "MRN")}</dt><dd>{p.mrn.clone()}</dd>
                                    <dt>{move || i18n.t("性别", "Sex")}</dt><dd>{let g = p.gender.clone(); move || sex_label(i18n.is_en(), &g)}</dd>
                                    <dt>{move || i18n.t("出生日期", "Born")}</dt><dd>{d.birth_date.clone().unwrap_or_default()}</dd>
                                    <dt>{move || i18n.t("电话", "Phone")}</dt><dd>{p.phone_masked.clone()}</dd>
                                    <dt>{move || i18n.t("未结清", "Owed")}</dt>
                                    <dd>
                                        <Amount value=p.unpaid_total large=true/>
                                        {move || if i18n.is_en() { format!(" · {} unpaid bills", p.unpaid_count) } else { format!(" · 共 {} 笔未结清账单", p.unpaid_count) }}
                                    </dd>
                                </dl>
                            </section>
                            <section class="panel">
                                <h2>{move || i18n.t("账单", "Bills")}</h2>
                                <table class="table">
                                    <thead><tr>
                                        <th scope="col">{move || i18n.t("账单号", "Bill no.")}</th>
                                        <th scope="col">{move || i18n.t("科室", "Department")}</th>
                                        <th scope="col">{move || i18n.t("开单时间", "Issued")}</th>
                                        <th scope="col">{move || i18n.t("状态", "Status")}</th>
                                        <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                                    </tr></thead>
                                    <tbody>
                                        {d.bills.iter().map(|b| {
                                            let dep = (b.department_zh.clone(), b.department_en.clone());
                                            view! { <tr>
                                                <td><a href=format!("/bills/{}", b.id)>{b.bill_no.clone()}</a></td>
                                                <td>{move || i18n.pick(&dep.0, &dep.1)}</td>
                                                <td>{fmt_time(b.created_at_ms)}</td>
                                                <td><BillStatusBadge status=b.status/></td>
                                                <td class="num"><Amount value=b.total/></td>
                                            </tr> }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
