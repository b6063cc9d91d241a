//! Payment administration: channel configurations (G6, S4), API tokens, provider notifications.

use crate::api::{
    list_channels, list_notifications, list_tokens, save_channel, ChannelForm, CreateToken, DisableToken,
    MakeDefaultChannel, ReencryptChannels,
};
use crate::components::{fmt_time, ErrorView, Loading};
use crate::error::AppError;
use crate::i18n::{error_text, use_i18n, I18n};
use clinicpay::auth::Role;
use clinicpay::views::ChannelView;
use leptos::prelude::*;

fn err_line(i18n: I18n, e: &AppError) -> String {
    format!(
        "{} [{}]",
        error_text(&e.code, i18n.lang.get()).map(str::to_string).unwrap_or_else(|| e.message.clone()),
        e.code
    )
}

/// Settings templates per provider (non-secret fields; keys are entered separately).
fn template(provider: &str) -> &'static str {
    match provider {
        "wechatpay" => {
            r#"{
  "mchid": "1230000109",
  "appid": "wx0000000000000000",
  "api_base": "https://api.mch.weixin.qq.com",
  "merchant_serial_no": "SERIAL OF THE MERCHANT API CERTIFICATE",
  "platform": { "mode": "public_key", "public_key_id": "PUB_KEY_ID_…", "public_key": "-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----\n" }
}"#
        }
        "bank" => {
            r#"{
  "merchant_id": "M0001",
  "api_base": "https://bank.example.com",
  "bank_public_key": "-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----\n"
}"#
        }
        _ => {
            r#"{
  "app_id": "2021000000000000",
  "gateway_url": "https://openapi.alipay.com/gateway.do",
  "alipay_public_key": "MIIBIjANBgkqh…"
}"#
        }
    }
}

#[component]
pub fn ChannelsPage() -> impl IntoView {
    let i18n = use_i18n();
    let make_default = ServerAction::<MakeDefaultChannel>::new();
    let reencrypt = ServerAction::<ReencryptChannels>::new();
    let saved = RwSignal::new(0u32);
    let editing: RwSignal<Option<ChannelForm>> = RwSignal::new(None);
    let channels = Resource::new(
        move || (make_default.version().get(), reencrypt.version().get(), saved.get()),
        |_| list_channels(),
    );
    view! {
        <h1>{move || i18n.t("支付渠道配置", "Payment channels")}</h1>
        <p class="hint">{move || i18n.t(
            "每个渠道可有多个配置，其中一个为默认。私钥与 APIv3 密钥加密保存，只显示摘要。",
            "Each provider may have several configurations, one of them the default. Private keys and APIv3 keys are stored encrypted and shown only as a fingerprint.")}</p>
        <div class="toolbar">
            <button type="button" class="btn btn-primary" on:click=move |_| editing.set(Some(ChannelForm {
                id: String::new(), version: 0, provider: "alipay".into(), name: String::new(),
                settings: template("alipay").into(), private_key: String::new(), apiv3_key: String::new(),
                sandbox: false, enabled: true, make_default: false,
            }))>{move || i18n.t("新建渠道配置", "New channel")}</button>
            <ActionForm action=reencrypt attr:class="inline">
                <button type="submit" class="btn">{move || i18n.t("用当前主密钥重新加密", "Re-encrypt with the current master key")}</button>
            </ActionForm>
            {move || reencrypt.value().get().map(|r| match r {
                Ok(n) => view! { <span class="alert alert-ok" role="status">{move || if i18n.is_en() { format!("{n} re-encrypted") } else { format!("已重新加密 {n} 个") }}</span> }.into_any(),
                Err(e) => view! { <span class="alert alert-error" role="alert">{err_line(i18n, &e)}</span> }.into_any(),
            })}
        </div>
        {move || editing.get().map(|f| view! { <ChannelEditor form=f editing saved/> })}
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match channels.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(list) => view! { <ChannelTable list make_default editing/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ChannelTable(
    list: Vec<ChannelView>,
    make_default: ServerAction<MakeDefaultChannel>,
    editing: RwSignal<Option<ChannelForm>>,
) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <section class="panel">
            <table class="table" aria-label=move || i18n.t("渠道配置列表", "Channels")>
                <thead><tr>
                    <th scope="col">{move || i18n.t("名称", "Name")}</th>
                    <th scope="col">{move || i18n.t("渠道", "Provider")}</th>
                    <th scope="col">{move || i18n.t("商户号", "Account")}</th>
                    <th scope="col">{move || i18n.t("状态", "State")}</th>
                    <th scope="col">{move || i18n.t("私钥", "Private key")}</th>
                    <th scope="col">{move || i18n.t("密钥版本", "Key version")}</th>
                    <th scope="col">{move || i18n.t("操作", "Actions")}</th>
                </tr></thead>
                <tbody>
                    {list.into_iter().map(|c| {
                        let form = ChannelForm {
                            id: c.id.to_string(), version: c.version, provider: c.provider.as_str().to_string(), name: c.name.clone(),
                            settings: c.settings.clone(), private_key: String::new(), apiv3_key: String::new(),
                            sandbox: c.sandbox, enabled: c.enabled, make_default: c.is_default,
                        };
                        let id = c.id.to_string();
                        let is_default = c.is_default;
                        let name = c.name.clone();
                        view! { <tr>
                            <td>{c.name.clone()}</td>
                            <td>{let p = c.provider; move || if i18n.is_en() { p.label_en() } else { p.label_zh() }}</td>
                            <td><code>{c.account.clone()}</code></td>
                            <td>
                                {c.is_default.then(|| view! { <span class="badge badge-paid">{move || i18n.t("默认", "Default")}</span> })}
                                " "
                                {if c.enabled { view! { <span class="badge">{move || i18n.t("启用", "Enabled")}</span> }.into_any() }
                                 else { view! { <span class="badge badge-void">{move || i18n.t("停用", "Disabled")}</span> }.into_any() }}
                                " "
                                {c.sandbox.then(|| view! { <span class="badge badge-paying">{move || i18n.t("沙箱", "Sandbox")}</span> })}
                            </td>
                            <td>{move || i18n.t("已设置 · ", "Set · ")}<code class="mask">{c.private_key_mask.clone()}</code>
                                {c.apiv3_key_mask.clone().map(|m| view! { <div>{move || i18n.t("APIv3 密钥已设置 · ", "APIv3 key set · ")}<code class="mask">{m}</code></div> })}</td>
                            <td>{c.key_version}</td>
                            <td class="row-actions">
                                <button type="button" class="btn btn-small" aria-label=move || format!("{} {}", i18n.t("编辑", "Edit"), name)
                                    on:click=move |_| editing.set(Some(form.clone()))>{move || i18n.t("编辑", "Edit")}</button>
                                {(!is_default).then(|| view! {
                                    <ActionForm action=make_default attr:class="inline">
                                        <input type="hidden" name="channel_id" value=id.clone()/>
                                        <button type="submit" class="btn btn-small">{move || i18n.t("设为默认", "Make default")}</button>
                                    </ActionForm>
                                })}
                            </td>
                        </tr> }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
fn ChannelEditor(form: ChannelForm, editing: RwSignal<Option<ChannelForm>>, saved: RwSignal<u32>) -> impl IntoView {
    let i18n = use_i18n();
    let is_new = form.id.is_empty();
    let provider = RwSignal::new(form.provider.clone());
    let name = RwSignal::new(form.name.clone());
    let settings = RwSignal::new(form.settings.clone());
    let private_key = RwSignal::new(String::new());
    let apiv3 = RwSignal::new(String::new());
    let sandbox = RwSignal::new(form.sandbox);
    let enabled = RwSignal::new(form.enabled);
    let make_default = RwSignal::new(form.make_default);
    let save = Action::new(move |f: &ChannelForm| {
        let f = f.clone();
        async move { save_channel(f).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = save.value().get() {
            saved.update(|n| *n += 1);
            editing.set(None);
        }
    });
    let submit = {
        let base = form.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            save.dispatch(ChannelForm {
                id: base.id.clone(),
                version: base.version,
                provider: provider.get_untracked(),
                name: name.get_untracked(),
                settings: settings.get_untracked(),
                private_key: private_key.get_untracked(),
                apiv3_key: apiv3.get_untracked(),
                sandbox: sandbox.get_untracked(),
                enabled: enabled.get_untracked(),
                make_default: make_default.get_untracked(),
            });
        }
    };
    view! {
        <section class="panel channel-editor">
            <h2>{move || if is_new { i18n.t("新建渠道配置", "New channel") } else { i18n.t("编辑渠道配置", "Edit channel") }}</h2>
            <form class="form" on:submit=submit>
                <label for="ch-provider">{move || i18n.t("渠道", "Provider")}</label>
                <select id="ch-provider" prop:value=move || provider.get() disabled=!is_new
                    on:change=move |ev| { let p = event_target_value(&ev); settings.set(template(&p).to_string()); provider.set(p); }>
                    <option value="alipay">"支付宝 Alipay"</option>
                    <option value="wechatpay">"微信支付 WeChat Pay"</option>
                    <option value="bank">"银行卡 Bank card"</option>
                </select>
                <label for="ch-name">{move || i18n.t("名称", "Name")}</label>
                <input id="ch-name" required maxlength="60" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                <label for="ch-settings">{move || i18n.t("参数（JSON，非保密）", "Settings (JSON, not secret)")}</label>
                <textarea id="ch-settings" rows="8" class="mono" prop:value=move || settings.get() on:input=move |ev| settings.set(event_target_value(&ev))></textarea>
                <label for="ch-key">{move || if is_new { i18n.t("商户私钥（PEM 或 base64）", "Merchant private key (PEM or base64)") } else { i18n.t("商户私钥（留空则保持不变）", "Merchant private key (empty keeps the current one)") }}</label>
                <textarea id="ch-key" rows="4" class="mono" autocomplete="off" required=is_new prop:value=move || private_key.get() on:input=move |ev| private_key.set(event_target_value(&ev))></textarea>
                {move || (provider.get() == "wechatpay").then(|| view! {
                    <label for="ch-apiv3">{i18n.t("APIv3 密钥（32 位；编辑时留空则不变）", "APIv3 key (32 characters; empty keeps it on an edit)")}</label>
                    <input id="ch-apiv3" type="password" autocomplete="off" maxlength="32" prop:value=move || apiv3.get() on:input=move |ev| apiv3.set(event_target_value(&ev))/>
                })}
                <label class="check"><input type="checkbox" prop:checked=move || enabled.get() on:change=move |ev| enabled.set(event_target_checked(&ev))/>{move || i18n.t("启用", "Enabled")}</label>
                <label class="check"><input type="checkbox" prop:checked=move || make_default.get() on:change=move |ev| make_default.set(event_target_checked(&ev))/>{move || i18n.t("设为默认", "Default for its provider")}</label>
                <label class="check"><input type="checkbox" prop:checked=move || sandbox.get() on:change=move |ev| sandbox.set(event_target_checked(&ev))/>{move || i18n.t("沙箱（测试环境）", "Sandbox (test environment)")}</label>
                {move || save.value().get().and_then(|r| r.err()).map(|e| view! { <p class="alert alert-error" role="alert">{err_line(i18n, &e)}</p> })}
                <div class="details-actions">
                    <button type="submit" class="btn btn-primary" disabled=move || save.pending().get()>{move || i18n.t("保存", "Save")}</button>
                    <button type="button" class="btn btn-quiet" on:click=move |_| editing.set(None)>{move || i18n.t("取消", "Cancel")}</button>
                </div>
            </form>
        </section>
    }
}

#[component]
pub fn TokensPage() -> impl IntoView {
    let i18n = use_i18n();
    let create = ServerAction::<CreateToken>::new();
    let disable = ServerAction::<DisableToken>::new();
    let tokens = Resource::new(move || (create.version().get(), disable.version().get()), |_| list_tokens());
    view! {
        <h1>{move || i18n.t("API 令牌", "API tokens")}</h1>
        <p class="hint">{move || i18n.t("供医院其他系统调用收费接口（Authorization: Bearer …）。令牌只显示一次，仅保存其摘要。",
            "For the hospital's other systems calling the payment API (Authorization: Bearer …). A token is shown once; only its hash is stored.")}</p>
        <section class="panel">
            <ActionForm action=create attr:class="form form-inline">
                <div class="field">
                    <label for="tok-name">{move || i18n.t("用途", "Name")}</label>
                    <input id="tok-name" name="name" required maxlength="60"/>
                </div>
                <div class="field">
                    <label for="tok-role">{move || i18n.t("角色", "Role")}</label>
                    <select id="tok-role" name="role">
                        {Role::ALL.into_iter().map(|r| view! { <option value=r.as_str()>{move || if i18n.is_en() { r.label_en() } else { r.label_zh() }}</option> }).collect_view()}
                    </select>
                </div>
                <div class="field actions"><button type="submit" class="btn btn-primary">{move || i18n.t("生成令牌", "Issue token")}</button></div>
            </ActionForm>
            {move || create.value().get().map(|r| match r {
                Ok(t) => view! { <p class="alert alert-ok" role="status">{move || i18n.t("请立即复制，之后不再显示：", "Copy it now; it will not be shown again: ")}<code data-testid="new-token">{t.clone()}</code></p> }.into_any(),
                Err(e) => view! { <p class="alert alert-error" role="alert">{err_line(i18n, &e)}</p> }.into_any(),
            })}
        </section>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match tokens.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(list) => view! {
                        <section class="panel">
                            <table class="table">
                                <thead><tr>
                                    <th scope="col">{move || i18n.t("用途", "Name")}</th>
                                    <th scope="col">{move || i18n.t("角色", "Role")}</th>
                                    <th scope="col">{move || i18n.t("创建", "Created")}</th>
                                    <th scope="col">{move || i18n.t("最近使用", "Last used")}</th>
                                    <th scope="col">{move || i18n.t("状态", "State")}</th>
                                    <th scope="col"></th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|t| view! { <tr>
                                        <td>{t.name.clone()}</td>
                                        <td>{t.role.clone()}</td>
                                        <td>{format!("{} · {}", fmt_time(t.created_at_ms), t.created_by)}</td>
                                        <td>{t.last_used_at_ms.map(fmt_time).unwrap_or_default()}</td>
                                        <td>{move || if t.disabled { i18n.t("已停用", "Disabled") } else { i18n.t("有效", "Active") }}</td>
                                        <td>{(!t.disabled).then(|| view! {
                                            <ActionForm action=disable attr:class="inline">
                                                <input type="hidden" name="token_id" value=t.id.clone()/>
                                                <button type="submit" class="btn btn-small">{move || i18n.t("停用", "Disable")}</button>
                                            </ActionForm>
                                        })}</td>
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

#[component]
pub fn NotificationsPage() -> impl IntoView {
    let i18n = use_i18n();
    let data = Resource::new(|| (), |_| list_notifications());
    view! {
        <h1>{move || i18n.t("渠道异步通知", "Provider notifications")}</h1>
        <p class="hint">{move || i18n.t("每条通知收到时先原样保存，再验签处理；被拒绝的通知记录原因。", "Every notification is stored as received before it is verified; refused ones keep their reason.")}</p>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(list) => view! {
                        <section class="panel">
                            <table class="table">
                                <thead><tr>
                                    <th scope="col">{move || i18n.t("收到时间", "Received")}</th>
                                    <th scope="col">{move || i18n.t("渠道", "Provider")}</th>
                                    <th scope="col">{move || i18n.t("结果", "Outcome")}</th>
                                    <th scope="col">{move || i18n.t("原因", "Reason")}</th>
                                    <th scope="col">{move || i18n.t("订单号", "Order")}</th>
                                    <th scope="col">{move || i18n.t("来源", "From")}</th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|n| view! { <tr>
                                        <td>{clinicpay::time::fmt_second(n.received_at_ms)}</td>
                                        <td>{let p = n.provider; move || if i18n.is_en() { p.label_en() } else { p.label_zh() }}</td>
                                        <td><span class=format!("badge badge-ntf-{}", n.status) title=n.status.as_str()>{let st = n.status; move || crate::components::notification_status_label(i18n.is_en(), st)}</span></td>
                                        <td>{n.reason.clone().unwrap_or_default()}</td>
                                        <td><code>{n.out_trade_no.clone().unwrap_or_default()}</code></td>
                                        <td>{n.remote_addr.clone()}</td>
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
