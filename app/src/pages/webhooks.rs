//! Events out to the hospital's systems: endpoints (administrators) and the delivery log with
//! re-send (finance and administrators).

use crate::api::{
    delivery_detail, list_deliveries, list_endpoints, roll_endpoint_secret, save_endpoint, EndpointForm, EndpointSaved,
    ResendDelivery,
};
use crate::components::{fmt_time, ErrorView, Loading};
use crate::error::AppError;
use crate::i18n::{err_line, use_i18n, I18n};
use clinicpay::views::EndpointView;
use clinicpay::webhooks::{DeliveryStatus, EventTopic};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

fn topic_label(i18n: I18n, t: EventTopic) -> &'static str {
    if i18n.is_en() {
        t.label_en()
    } else {
        t.label_zh()
    }
}

#[component]
pub fn WebhooksPage() -> impl IntoView {
    let i18n = use_i18n();
    let saved = RwSignal::new(0u32);
    let editing: RwSignal<Option<EndpointForm>> = RwSignal::new(None);
    let shown_secret: RwSignal<Option<(String, String)>> = RwSignal::new(None);
    let endpoints = Resource::new(move || saved.get(), |_| list_endpoints());
    let roll = Action::new(move |(id, version): &(String, i64)| {
        let (id, version) = (id.clone(), *version);
        async move { roll_endpoint_secret(id, version).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(EndpointSaved { endpoint, secret: Some(s) })) = roll.value().get() {
            shown_secret.set(Some((endpoint.name.clone(), s)));
            saved.update(|n| *n += 1);
        }
    });
    let new_form = move |_| {
        shown_secret.set(None);
        editing.set(Some(EndpointForm {
            id: String::new(),
            version: 0,
            name: String::new(),
            url: String::new(),
            topics: vec![EventTopic::BillPaid.as_str().into(), EventTopic::BillVoided.as_str().into()],
            enabled: true,
        }))
    };
    view! {
        <h1>{move || i18n.t("事件推送", "Event endpoints")}</h1>
        <p class="hint">{move || i18n.t(
            "账单缴费、作废、退款等事件推送到医院 HIS 等系统：每次推送用该地址的密钥签名（ClinicPay-Signature），同一事件重试时事件编号不变；失败按计划重试约一天。",
            "Bill paid, voided and refunded events are posted to the hospital's HIS and other systems: each post is signed with the endpoint's secret (ClinicPay-Signature) and keeps its event id across retries; failures are retried on a schedule over about a day.")}
            " "<a href="/finance/deliveries">{move || i18n.t("查看推送日志", "Open the delivery log")}</a></p>
        {move || shown_secret.get().map(|(name, s)| view! {
            <p class="alert alert-ok" role="status">
                {move || i18n.t("签名密钥（仅显示这一次，请复制到接收方）：", "Signing secret (shown this once; copy it to the receiver): ")}
                <strong>{name.clone()}</strong>" "<code data-testid="endpoint-secret">{s.clone()}</code>
            </p>
        })}
        {move || roll.value().get().and_then(|r| r.err()).map(|e| view! { <p class="alert alert-error" role="alert">{err_line(i18n, &e)}</p> })}
        <p><button type="button" class="btn btn-primary" on:click=new_form>{move || i18n.t("新增推送地址", "Add endpoint")}</button></p>
        {move || editing.get().map(|f| view! { <EndpointEditor form=f editing=editing saved=saved shown_secret=shown_secret/> })}
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match endpoints.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">{move || i18n.t("还没有推送地址。", "No endpoints yet.")}</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <section class="panel">
                            <table class="table" data-testid="endpoints">
                                <thead><tr>
                                    <th scope="col">{move || i18n.t("名称", "Name")}</th>
                                    <th scope="col">{move || i18n.t("地址", "Address")}</th>
                                    <th scope="col">{move || i18n.t("事件", "Events")}</th>
                                    <th scope="col">{move || i18n.t("密钥", "Secret")}</th>
                                    <th scope="col">{move || i18n.t("状态", "State")}</th>
                                    <th scope="col"></th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|e| endpoint_row(i18n, e, editing, shown_secret, roll)).collect_view()}
                                </tbody>
                            </table>
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn endpoint_row(
    i18n: I18n,
    e: EndpointView,
    editing: RwSignal<Option<EndpointForm>>,
    shown_secret: RwSignal<Option<(String, String)>>,
    roll: Action<(String, i64), Result<EndpointSaved, AppError>>,
) -> impl IntoView {
    let form = EndpointForm {
        id: e.id.to_string(),
        version: e.version,
        name: e.name.clone(),
        url: e.url.clone(),
        topics: e.topics.iter().map(|t| t.as_str().to_string()).collect(),
        enabled: e.enabled,
    };
    let topics = e.topics.clone();
    let (id, version) = (e.id.to_string(), e.version);
    let confirm_text = move || {
        i18n.t(
            "更换密钥后旧密钥立即失效，接收方需同时更新。继续？",
            "The old secret stops working at once; the receiver must update too. Go on?",
        )
    };
    view! {
        <tr>
            <td>{e.name.clone()}</td>
            <td><code>{e.url.clone()}</code></td>
            <td>{move || topics.iter().map(|t| topic_label(i18n, *t)).collect::<Vec<_>>().join("、")}</td>
            <td><code>{e.secret_mask.clone()}</code></td>
            <td>{move || if e.enabled { i18n.t("启用", "Enabled") } else { i18n.t("停用", "Disabled") }}</td>
            <td class="actions">
                <button type="button" class="btn btn-small" on:click=move |_| { shown_secret.set(None); editing.set(Some(form.clone())) }>
                    {move || i18n.t("编辑", "Edit")}
                </button>
                " "
                <button type="button" class="btn btn-small" on:click=move |_| {
                    let ok = web_sys_confirm(confirm_text());
                    if ok { roll.dispatch((id.clone(), version)); }
                }>{move || i18n.t("更换密钥", "New secret")}</button>
            </td>
        </tr>
    }
}

/// `window.confirm`, or yes during SSR (never called there).
fn web_sys_confirm(text: &str) -> bool {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window().and_then(|w| w.confirm_with_message(text).ok()).unwrap_or(false)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = text;
        true
    }
}

#[component]
fn EndpointEditor(
    form: EndpointForm,
    editing: RwSignal<Option<EndpointForm>>,
    saved: RwSignal<u32>,
    shown_secret: RwSignal<Option<(String, String)>>,
) -> impl IntoView {
    let i18n = use_i18n();
    let is_new = form.id.is_empty();
    let name = RwSignal::new(form.name.clone());
    let url = RwSignal::new(form.url.clone());
    let enabled = RwSignal::new(form.enabled);
    let topics: Vec<(EventTopic, RwSignal<bool>)> =
        EventTopic::ALL.into_iter().map(|t| (t, RwSignal::new(form.topics.iter().any(|w| w == t.as_str())))).collect();
    let save = Action::new(move |f: &EndpointForm| {
        let f = f.clone();
        async move { save_endpoint(f).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(s)) = save.value().get() {
            if let Some(secret) = s.secret {
                shown_secret.set(Some((s.endpoint.name.clone(), secret)));
            }
            saved.update(|n| *n += 1);
            editing.set(None);
        }
    });
    let submit = {
        let topics = topics.clone();
        let base = form.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            save.dispatch(EndpointForm {
                id: base.id.clone(),
                version: base.version,
                name: name.get_untracked(),
                url: url.get_untracked(),
                topics: topics
                    .iter()
                    .filter(|(_, on)| on.get_untracked())
                    .map(|(t, _)| t.as_str().to_string())
                    .collect(),
                enabled: enabled.get_untracked(),
            });
        }
    };
    view! {
        <section class="panel">
            <h2>{move || if is_new { i18n.t("新增推送地址", "New endpoint") } else { i18n.t("编辑推送地址", "Edit endpoint") }}</h2>
            <form class="form" on:submit=submit>
                <label for="wh-name">{move || i18n.t("名称", "Name")}</label>
                <input id="wh-name" required maxlength="60" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                <label for="wh-url">{move || i18n.t("接收地址（http/https）", "Address (http/https)")}</label>
                <input id="wh-url" required maxlength="500" placeholder="https://his.example.local/clinicpay/events"
                    prop:value=move || url.get() on:input=move |ev| url.set(event_target_value(&ev))/>
                <fieldset class="checks">
                    <legend>{move || i18n.t("推送的事件", "Events to send")}</legend>
                    {topics.iter().map(|(t, on)| {
                        let (t, on) = (*t, *on);
                        let id = format!("wh-topic-{}", t.as_str().replace('.', "-"));
                        let for_id = id.clone();
                        view! {
                            <label for=for_id class="check">
                                <input id=id type="checkbox" prop:checked=move || on.get() on:change=move |ev| on.set(event_target_checked(&ev))/>
                                " "{move || topic_label(i18n, t)}" " <code>{t.as_str()}</code>
                            </label>
                        }
                    }).collect_view()}
                </fieldset>
                <label for="wh-enabled" class="check">
                    <input id="wh-enabled" type="checkbox" prop:checked=move || enabled.get() on:change=move |ev| enabled.set(event_target_checked(&ev))/>
                    " "{move || i18n.t("启用", "Enabled")}
                </label>
                {move || save.value().get().and_then(|r| r.err()).map(|e| view! { <p class="alert alert-error" role="alert">{err_line(i18n, &e)}</p> })}
                <div class="actions">
                    <button type="submit" class="btn btn-primary" disabled=move || save.pending().get()>{move || i18n.t("保存", "Save")}</button>
                    " "
                    <button type="button" class="btn" on:click=move |_| editing.set(None)>{move || i18n.t("取消", "Cancel")}</button>
                </div>
            </form>
        </section>
    }
}

#[component]
pub fn DeliveriesPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let status = move || query.with(|q| q.get("status")).filter(|s| !s.is_empty());
    let about = move || query.with(|q| q.get("q")).filter(|s| !s.is_empty());
    let resend = ServerAction::<ResendDelivery>::new();
    let open: RwSignal<Option<String>> = RwSignal::new(None);
    let list = Resource::new(move || (status(), about(), resend.version().get()), |(s, q, _)| list_deliveries(s, q));
    let detail = Resource::new(
        move || (open.get(), resend.version().get()),
        |(id, _)| async move {
            match id {
                Some(id) => delivery_detail(id).await.map(Some),
                None => Ok(None),
            }
        },
    );
    view! {
        <h1>{move || i18n.t("事件推送日志", "Event delivery log")}</h1>
        <p class="hint">{move || i18n.t(
            "每个事件对每个推送地址一条记录：失败会按计划自动重试；“重新发送”立即再发一次，事件编号和内容不变。",
            "One line per event and endpoint: failures are retried on a schedule; \"Re-send\" sends it again now, with the same event id and body.")}</p>
        <form class="form form-inline" method="get" action="/finance/deliveries">
            <div class="field">
                <label for="dl-status">{move || i18n.t("状态", "Status")}</label>
                <select id="dl-status" name="status">
                    <option value="" selected=move || status().is_none()>{move || i18n.t("全部", "All")}</option>
                    {DeliveryStatus::ALL.into_iter().map(|s| view! {
                        <option value=s.as_str() selected=move || status().as_deref() == Some(s.as_str())>
                            {move || if i18n.is_en() { s.label_en() } else { s.label_zh() }}
                        </option>
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="dl-q">{move || i18n.t("事件或账单编号", "Event or bill id")}</label>
                <input id="dl-q" name="q" maxlength="120" prop:value=move || about().unwrap_or_default()/>
            </div>
            <div class="field actions"><button type="submit" class="btn">{move || i18n.t("查询", "Search")}</button></div>
        </form>
        {move || resend.value().get().and_then(|r| r.err()).map(|e| view! { <p class="alert alert-error" role="alert">{err_line(i18n, &e)}</p> })}
        {move || resend.value().get().and_then(|r| r.ok()).map(|_| view! {
            <p class="alert alert-ok" role="status">{move || i18n.t("已排队重新发送。", "Queued to be sent again.")}</p>
        })}
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match list.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(rows) if rows.is_empty() => view! {
                        <p class="empty">{move || i18n.t("没有推送记录。", "No deliveries.")}</p>
                    }.into_any(),
                    Ok(rows) => view! {
                        <section class="panel">
                            <table class="table" data-testid="deliveries">
                                <thead><tr>
                                    <th scope="col">{move || i18n.t("时间", "Created")}</th>
                                    <th scope="col">{move || i18n.t("事件", "Event")}</th>
                                    <th scope="col">{move || i18n.t("推送地址", "Endpoint")}</th>
                                    <th scope="col">{move || i18n.t("状态", "Status")}</th>
                                    <th scope="col">{move || i18n.t("次数", "Attempts")}</th>
                                    <th scope="col">{move || i18n.t("最近结果", "Last result")}</th>
                                    <th scope="col">{move || i18n.t("下次重试", "Next attempt")}</th>
                                    <th scope="col"></th>
                                </tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|d| {
                                        let st = d.status;
                                        let t = d.topic;
                                        let id = d.id.to_string();
                                        let id2 = id.clone();
                                        let last = match (d.last_status_code, d.last_error.clone()) {
                                            (Some(c), _) if (200..300).contains(&c) => format!("HTTP {c}"),
                                            (_, Some(e)) => e,
                                            (Some(c), None) => format!("HTTP {c}"),
                                            (None, None) => String::new(),
                                        };
                                        view! { <tr data-status=st.as_str()>
                                            <td>{fmt_time(d.created_at_ms)}</td>
                                            <td>{move || topic_label(i18n, t)}<br/><code class="small">{d.event_id.clone()}</code></td>
                                            <td>{d.endpoint_name.clone()}</td>
                                            <td><span class=format!("badge badge-dlv-{}", st.as_str())>{move || if i18n.is_en() { st.label_en() } else { st.label_zh() }}</span></td>
                                            <td class="num">{d.attempts}</td>
                                            <td>{last}</td>
                                            <td>{d.next_attempt_at_ms.map(fmt_time).unwrap_or_default()}</td>
                                            <td class="actions">
                                                <button type="button" class="btn btn-small" on:click=move |_| open.set(Some(id.clone()))>{move || i18n.t("详情", "Details")}</button>
                                                " "
                                                <ActionForm action=resend attr:class="inline">
                                                    <input type="hidden" name="delivery_id" value=id2/>
                                                    <button type="submit" class="btn btn-small">{move || i18n.t("重新发送", "Re-send")}</button>
                                                </ActionForm>
                                            </td>
                                        </tr> }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match detail.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(None) => ().into_any(),
                    Ok(Some(d)) => view! {
                        <section class="panel" data-testid="delivery-detail">
                            <h2>{move || i18n.t("推送详情", "Delivery")}" "<code>{d.delivery.event_id.clone()}</code></h2>
                            <p class="hint">{move || i18n.t("事件内容（每次发送的字节完全相同；此处为便于阅读而排版）：", "The event (the same bytes on every attempt; laid out here for reading):")}</p>
                            <pre class="mono wrap">{serde_json::from_str::<serde_json::Value>(&d.body).ok().and_then(|v| serde_json::to_string_pretty(&v).ok()).unwrap_or_else(|| d.body.clone())}</pre>
                            <table class="table">
                                <thead><tr>
                                    <th scope="col">"#"</th>
                                    <th scope="col">{move || i18n.t("时间", "At")}</th>
                                    <th scope="col">{move || i18n.t("耗时", "Took")}</th>
                                    <th scope="col">{move || i18n.t("结果", "Result")}</th>
                                    <th scope="col">{move || i18n.t("对方回复", "Answer")}</th>
                                </tr></thead>
                                <tbody>
                                    {d.attempts.into_iter().map(|a| view! { <tr>
                                        <td class="num">{a.attempt}</td>
                                        <td>{clinicpay::time::fmt_second(a.started_at_ms)}</td>
                                        <td class="num">{format!("{} ms", a.duration_ms)}</td>
                                        <td>{a.status_code.map(|c| format!("HTTP {c}")).or(a.error.clone()).unwrap_or_default()}</td>
                                        <td><code class="small">{a.response_excerpt.clone().unwrap_or_default()}</code></td>
                                    </tr> }).collect_view()}
                                </tbody>
                            </table>
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
