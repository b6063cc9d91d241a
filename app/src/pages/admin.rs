//! Administration: users (list, create, disable, reset password) and the audit log.

use crate::api::{list_users, search_audit_log, CreateUser, ResetPassword, SetUserDisabled};
use crate::components::{fmt_time, ErrorView, Loading};
use crate::error::AppError;
use crate::i18n::{error_text, use_i18n};
use clinicpay::auth::Role;
use clinicpay::views::{AuditPageView, AuditSearch};
use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;

/// Shows the result of the last submission of an action: an error, or a short confirmation.
#[component]
fn ActionResult<T: Clone + Send + Sync + 'static, F: Fn() -> Option<Result<T, AppError>> + Send + Sync + 'static>(
    value: F,
    ok_zh: &'static str,
    ok_en: &'static str,
) -> impl IntoView {
    let i18n = use_i18n();
    move || {
        value().map(|r| match r {
            Ok(_) => view! { <p class="alert alert-ok" role="status">{move || i18n.t(ok_zh, ok_en)}</p> }.into_any(),
            Err(e) => {
                let text = error_text(&e.code, i18n.lang.get()).map(str::to_string).unwrap_or(e.message.clone());
                view! { <p class="alert alert-error" role="alert">{text}<span class="alert-code">{format!(" [{}]", e.code)}</span></p> }.into_any()
            }
        })
    }
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let i18n = use_i18n();
    let create = ServerAction::<CreateUser>::new();
    let disable = ServerAction::<SetUserDisabled>::new();
    let reset = ServerAction::<ResetPassword>::new();
    let users = Resource::new(
        move || (create.version().get(), disable.version().get(), reset.version().get()),
        |_| list_users(),
    );
    view! {
        <h1>{move || i18n.t("用户管理", "Users")}</h1>
        <section class="panel">
            <h2>{move || i18n.t("新建用户", "New user")}</h2>
            <ActionForm action=create attr:class="form form-inline">
                <div class="field">
                    <label for="new-username">{move || i18n.t("用户名", "User name")}</label>
                    <input id="new-username" name="username" required maxlength="32" autocomplete="off"/>
                </div>
                <div class="field">
                    <label for="new-display">{move || i18n.t("姓名", "Display name")}</label>
                    <input id="new-display" name="display_name" required maxlength="40"/>
                </div>
                <div class="field">
                    <label for="new-role">{move || i18n.t("角色", "Role")}</label>
                    <select id="new-role" name="role">
                        {Role::ALL.into_iter().map(|r| view! {
                            <option value=r.as_str()>{move || if i18n.is_en() { r.label_en() } else { r.label_zh() }}</option>
                        }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="new-password">{move || i18n.t("初始密码（至少 10 位）", "Initial password (10+ characters)")}</label>
                    <input id="new-password" name="password" type="password" required minlength="10" autocomplete="new-password"/>
                </div>
                <div class="field actions">
                    <button type="submit" class="btn btn-primary">{move || i18n.t("创建", "Create")}</button>
                </div>
            </ActionForm>
            <ActionResult value=move || create.value().get() ok_zh="已创建用户" ok_en="User created"/>
        </section>
        <section class="panel">
            <h2>{move || i18n.t("全部用户", "All users")}</h2>
            <ActionResult value=move || disable.value().get() ok_zh="已更新" ok_en="Updated"/>
            <ActionResult value=move || reset.value().get() ok_zh="密码已重置，该用户需重新登录" ok_en="Password reset; the user must log in again"/>
            <Suspense fallback=|| view! { <Loading/> }>
                {move || Suspend::new(async move {
                    match users.await {
                        Err(e) => view! { <ErrorView err=e/> }.into_any(),
                        Ok(list) => view! {
                            <table class="table" aria-label=move || i18n.t("用户列表", "Users")>
                                <thead><tr>
                                    <th scope="col">{move || i18n.t("用户名", "User name")}</th>
                                    <th scope="col">{move || i18n.t("姓名", "Display name")}</th>
                                    <th scope="col">{move || i18n.t("角色", "Role")}</th>
                                    <th scope="col">{move || i18n.t("状态", "Status")}</th>
                                    <th scope="col">{move || i18n.t("创建时间", "Created")}</th>
                                    <th scope="col">{move || i18n.t("操作", "Actions")}</th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|u| {
                                        let role = u.role;
                                        let disabled = u.disabled;
                                        let uname = u.username.clone();
                                        let uname2 = u.username.clone();
                                        let pw_id = format!("pw-{}", u.username);
                                        let id1 = u.id.to_string();
                                        let id2 = u.id.to_string();
                                        view! { <tr>
                                            <td>{u.username.clone()}</td>
                                            <td>{u.display_name.clone()}</td>
                                            <td>{move || if i18n.is_en() { role.label_en() } else { role.label_zh() }}</td>
                                            <td>{move || if disabled { i18n.t("已停用", "Disabled") } else { i18n.t("正常", "Active") }}</td>
                                            <td>{fmt_time(u.created_at_ms)}</td>
                                            <td class="row-actions">
                                                <ActionForm action=disable attr:class="inline">
                                                    <input type="hidden" name="user_id" value=id1/>
                                                    <input type="hidden" name="disabled" value=(!disabled).to_string()/>
                                                    <button type="submit" class="btn btn-small"
                                                        aria-label=move || format!("{} {}", if disabled { i18n.t("启用", "Enable") } else { i18n.t("停用", "Disable") }, uname)>
                                                        {move || if disabled { i18n.t("启用", "Enable") } else { i18n.t("停用", "Disable") }}
                                                    </button>
                                                </ActionForm>
                                                <ActionForm action=reset attr:class="inline">
                                                    <input type="hidden" name="user_id" value=id2/>
                                                    <label class="sr-only" for=pw_id.clone()>{move || format!("{} {}", i18n.t("新密码", "New password for"), uname2)}</label>
                                                    <input id=pw_id type="password" name="password" minlength="10" required autocomplete="new-password"
                                                        placeholder=move || i18n.t("新密码", "New password")/>
                                                    <button type="submit" class="btn btn-small">{move || i18n.t("重置密码", "Reset password")}</button>
                                                </ActionForm>
                                            </td>
                                        </tr> }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The audit-log URL for a search (the pager's links).
fn audit_href(q: &AuditSearch) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("who", &q.who),
        ("action", &q.action),
        ("target", &q.target),
        ("from", &q.from),
        ("to", &q.to),
        ("before", &q.before),
    ] {
        if !v.is_empty() {
            parts.push(format!("{k}={}", crate::components::enc(v)));
        }
    }
    if parts.is_empty() {
        "/admin/audit".into()
    } else {
        format!("/admin/audit?{}", parts.join("&"))
    }
}

/// S3: the audit log, searched by who, what, when and object, 50 lines a page, with the whole
/// hash chain checked on every load. The URL holds the search, so a page can be linked.
#[component]
pub fn AuditPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let search = Memo::new(move |_| {
        query.with(|q| {
            let get = |k: &str| q.get(k).unwrap_or_default();
            AuditSearch {
                who: get("who"),
                action: get("action"),
                target: get("target"),
                from: get("from"),
                to: get("to"),
                before: get("before"),
            }
        })
    });
    let data = Resource::new(move || search.get(), search_audit_log);
    view! {
        <h1>{move || i18n.t("审计日志", "Audit log")}</h1>
        <p class="hint">{move || i18n.t("只增不改，每条记录以哈希链接上一条，篡改可被发现。", "Append-only; each entry is chained to the previous one by a hash, so tampering shows.")}</p>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <AuditFilters actions=Vec::new()/> <ErrorView err=e/> }.into_any(),
                    Ok(page) => view! {
                        <AuditFilters actions=page.actions.clone()/>
                        <AuditTable page search=search.get_untracked()/>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The audit search form; `actions` are the action codes the log holds.
#[component]
fn AuditFilters(actions: Vec<String>) -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let value = move |k: &'static str| move || query.with(|q| q.get(k)).unwrap_or_default();
    view! {
        <Form method="GET" action="/admin/audit" attr:class="filters" attr:role="search">
            <div class="field">
                <label for="audit-who">{move || i18n.t("操作人", "Who")}</label>
                <input id="audit-who" type="search" name="who" prop:value=value("who") maxlength="64"/>
            </div>
            <div class="field">
                <label for="audit-action">{move || i18n.t("操作", "Action")}</label>
                <select id="audit-action" name="action">
                    <option value="" selected=move || value("action")().is_empty()>{move || i18n.t("全部", "All")}</option>
                    {actions.into_iter().map(|a| {
                        let selected = { let a = a.clone(); move || value("action")() == a };
                        let label = { let a = a.clone(); move || crate::components::audit_action_label(i18n.is_en(), &a) };
                        view! { <option value=a.clone() selected=selected>{label}</option> }
                    }).collect_view()}
                </select>
            </div>
            <div class="field grow">
                <label for="audit-target">{move || i18n.t("对象（编号或类型）", "Object (id or kind)")}</label>
                <input id="audit-target" type="search" name="target" prop:value=value("target") maxlength="64"/>
            </div>
            <div class="field">
                <label for="audit-from">{move || i18n.t("开始日期", "From")}</label>
                <input id="audit-from" type="date" name="from" prop:value=value("from")/>
            </div>
            <div class="field">
                <label for="audit-to">{move || i18n.t("结束日期", "To")}</label>
                <input id="audit-to" type="date" name="to" prop:value=value("to")/>
            </div>
            <div class="field actions">
                <button type="submit" class="btn btn-primary">{move || i18n.t("查询", "Search")}</button>
                <a class="btn btn-quiet" href="/admin/audit">{move || i18n.t("清除", "Clear")}</a>
            </div>
        </Form>
    }
}

#[component]
fn AuditTable(page: AuditPageView, search: AuditSearch) -> impl IntoView {
    let i18n = use_i18n();
    let (n, broken) = (page.chain_entries, page.chain_broken_at);
    let chain = match broken {
        None => view! {
            <p class="alert alert-ok chain" role="status" data-testid="audit-chain">
                {move || if i18n.is_en() {
                    format!("✓ Hash chain verified: all {n} entries chain correctly")
                } else {
                    format!("✓ 哈希链校验通过：全部 {n} 条记录环环相扣")
                }}
            </p>
        }.into_any(),
        Some(at) => view! {
            <p class="alert alert-error chain chain-broken" role="alert" data-testid="audit-chain">
                {move || if i18n.is_en() {
                    format!("✗ The hash chain is broken at entry #{at} (of {n}): the log was changed after it was written. Keep this page and tell the security officer.")
                } else {
                    format!("✗ 哈希链在第 {at} 条（共 {n} 条）处断开：日志写入后被改动过。请保留此页并报告安全负责人。")
                }}
            </p>
        }.into_any(),
    };
    let first_page = !search.before.is_empty();
    let newest = AuditSearch { before: String::new(), ..search.clone() };
    let older = page.older.map(|seq| AuditSearch { before: seq.to_string(), ..search.clone() });
    view! {
        {chain}
        <section class="panel">
            {if page.entries.is_empty() {
                view! { <p class="empty">{move || i18n.t("没有符合条件的记录。换个条件试试，或点「清除」看全部。", "No entries match. Try other terms, or press Clear to see everything.")}</p> }.into_any()
            } else {
                view! {
                    <table class="table audit-table" aria-label=move || i18n.t("审计记录", "Audit entries")>
                        <thead><tr>
                            <th scope="col">"#"</th>
                            <th scope="col">{move || i18n.t("时间", "When")}</th>
                            <th scope="col">{move || i18n.t("操作人", "Who")}</th>
                            <th scope="col">{move || i18n.t("操作", "Action")}</th>
                            <th scope="col">{move || i18n.t("对象", "Object")}</th>
                            <th scope="col">{move || i18n.t("详情（前 → 后）", "Detail (before → after)")}</th>
                            <th scope="col">{move || i18n.t("来源地址", "From")}</th>
                            <th scope="col">{move || i18n.t("哈希", "Hash")}</th>
                        </tr></thead>
                        <tbody>
                            {page.entries.into_iter().map(|a| view! { <tr>
                                <td>{a.seq}</td>
                                <td>{clinicpay::time::fmt_second(a.at_ms)}</td>
                                <td>{a.actor.clone()}</td>
                                <td title=a.action.clone()>{let code = a.action.clone(); move || crate::components::audit_action_label(i18n.is_en(), &code)}</td>
                                <td><code>{a.target.clone()}</code></td>
                                <td><code class="detail">{a.detail.clone()}</code></td>
                                <td>{a.ip.clone()}</td>
                                <td><code title=a.hash.clone()>{a.hash.chars().take(12).collect::<String>()}</code></td>
                            </tr> }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
            <nav class="pager" aria-label=move || i18n.t("分页", "Pages")>
                {if first_page {
                    view! { <a href=audit_href(&newest)>{move || i18n.t("« 最新", "« Newest")}</a> }.into_any()
                } else {
                    view! { <span class="disabled">{move || i18n.t("« 最新", "« Newest")}</span> }.into_any()
                }}
                {match older {
                    Some(q) => view! { <a href=audit_href(&q) rel="next">{move || i18n.t("更早 ›", "Older ›")}</a> }.into_any(),
                    None => view! { <span class="disabled">{move || i18n.t("更早 ›", "Older ›")}</span> }.into_any(),
                }}
            </nav>
        </section>
    }
}
