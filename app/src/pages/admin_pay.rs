//! Payment administration: channel configurations (G6, S4), API tokens, provider notifications.

use crate::api::{
    list_channels, list_notifications, list_tokens, save_channel, test_channel, ChannelForm, CreateToken, DisableToken,
    MakeDefaultChannel, ReencryptChannels,
};
use crate::components::{fmt_time, ErrorView, Loading};
use crate::error::AppError;
use crate::i18n::{err_line, error_text, use_i18n, I18n};
use clinicpay::auth::{Role, TokenScope};
use clinicpay::views::ChannelView;
use leptos::prelude::*;

/// One field of a provider's channel form: its key in the settings (a path into the JSON),
/// its label as the provider's console names it, and whether it holds a key (a textarea with a
/// file picker).
struct Field {
    name: &'static str,
    path: &'static [&'static str],
    zh: &'static str,
    en: &'static str,
    placeholder: &'static str,
    key: bool,
    optional: bool,
}

const fn field(
    name: &'static str,
    path: &'static [&'static str],
    zh: &'static str,
    en: &'static str,
    placeholder: &'static str,
) -> Field {
    Field { name, path, zh, en, placeholder, key: false, optional: false }
}

/// The settings fields of each provider's form (the secrets are asked for separately).
fn fields(provider: &str) -> Vec<Field> {
    match provider {
        "wechatpay" => vec![
            field("mchid", &["mchid"], "商户号（mchid）", "Merchant ID (mchid)", "1230000109"),
            field(
                "appid",
                &["appid"],
                "AppID（公众号/小程序/应用）",
                "AppID (official account, mini program or app)",
                "wx0000000000000000",
            ),
            field("api_base", &["api_base"], "API 地址", "API address", "https://api.mch.weixin.qq.com"),
            field(
                "merchant_serial_no",
                &["merchant_serial_no"],
                "商户 API 证书序列号",
                "Merchant API certificate serial number",
                "5157F09EFDC096DE15EBE81A47057A72",
            ),
            field(
                "public_key_id",
                &["platform", "public_key_id"],
                "微信支付公钥 ID",
                "WeChat Pay public key ID",
                "PUB_KEY_ID_0000000000000000",
            ),
            Field {
                key: true,
                ..field(
                    "public_key",
                    &["platform", "public_key"],
                    "微信支付公钥（pub_key.pem）",
                    "WeChat Pay public key (pub_key.pem)",
                    "-----BEGIN PUBLIC KEY-----",
                )
            },
        ],
        "bank" => vec![
            field("merchant_id", &["merchant_id"], "商户号", "Merchant ID", "M0001"),
            field("api_base", &["api_base"], "网关地址", "Gateway address", "https://bank.example.com"),
            Field {
                key: true,
                ..field(
                    "bank_public_key",
                    &["bank_public_key"],
                    "银行公钥",
                    "The bank's public key",
                    "-----BEGIN PUBLIC KEY-----",
                )
            },
        ],
        _ => vec![
            field("app_id", &["app_id"], "应用 APPID", "App ID (APPID)", "2021000000000000"),
            field(
                "gateway_url",
                &["gateway_url"],
                "网关地址",
                "Gateway address",
                "https://openapi.alipay.com/gateway.do",
            ),
            Field {
                key: true,
                ..field(
                    "alipay_public_key",
                    &["alipay_public_key"],
                    "支付宝公钥",
                    "Alipay public key",
                    "MIIBIjANBgkqh…",
                )
            },
            Field {
                optional: true,
                ..field(
                    "seller_id",
                    &["seller_id"],
                    "卖家支付宝用户号（可选，2088 开头）",
                    "Seller's Alipay user id (optional, starts with 2088)",
                    "2088…",
                )
            },
        ],
    }
}

/// The text at `path` in a settings object.
fn get_path(v: &serde_json::Value, path: &[&str]) -> String {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    at.as_str().unwrap_or_default().to_string()
}

/// The settings JSON: the stored object (so what the form does not show is kept) with the
/// form's fields written over it. A WeChat public key turns the platform to public-key mode.
fn compose(provider: &str, stored: &str, values: &std::collections::BTreeMap<&'static str, String>) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(stored).ok().filter(serde_json::Value::is_object).unwrap_or_else(|| serde_json::json!({}));
    for f in fields(provider) {
        let text = values.get(f.name).map(|s| s.trim().to_string()).unwrap_or_default();
        if f.optional && text.is_empty() {
            if let Some(o) = v.as_object_mut() {
                o.remove(f.path[0]);
            }
            continue;
        }
        let mut at = &mut v;
        for p in &f.path[..f.path.len() - 1] {
            if !at[*p].is_object() {
                at[*p] = serde_json::json!({});
            }
            at = &mut at[*p];
        }
        at[f.path[f.path.len() - 1]] = serde_json::Value::String(text);
    }
    if provider == "wechatpay" && !values.get("public_key").map(|s| s.trim().is_empty()).unwrap_or(true) {
        v["platform"]["mode"] = serde_json::Value::String("public_key".into());
    }
    v.to_string()
}

/// Reads the file picked in an `<input type="file">` into `into` (keys are small text files).
fn read_picked_file(ev: leptos::ev::Event, into: RwSignal<String>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
        let Some(file) = input.files().and_then(|l| l.get(0)) else { return };
        leptos::task::spawn_local(async move {
            if let Ok(text) = wasm_bindgen_futures::JsFuture::from(file.text()).await {
                if let Some(t) = text.as_string() {
                    into.set(t);
                }
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (ev, into);
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
                settings: "{}".into(), private_key: String::new(), apiv3_key: String::new(),
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
                                <TestButton id=id.clone() name=c.name.clone()/>
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
    let stored: serde_json::Value = serde_json::from_str(&form.settings).unwrap_or_default();
    // one signal per field of every provider (a new channel may switch provider)
    let values: std::collections::BTreeMap<&'static str, RwSignal<String>> = ["alipay", "wechatpay", "bank"]
        .into_iter()
        .flat_map(fields)
        .map(|f| (f.name, RwSignal::new(get_path(&stored, f.path))))
        .collect();
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
        let values = values.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let p = provider.get_untracked();
            let current: std::collections::BTreeMap<&'static str, String> =
                values.iter().map(|(k, v)| (*k, v.get_untracked())).collect();
            save.dispatch(ChannelForm {
                id: base.id.clone(),
                version: base.version,
                provider: p.clone(),
                name: name.get_untracked(),
                settings: compose(&p, &base.settings, &current),
                private_key: private_key.get_untracked(),
                apiv3_key: apiv3.get_untracked(),
                sandbox: sandbox.get_untracked(),
                enabled: enabled.get_untracked(),
                make_default: make_default.get_untracked(),
            });
        }
    };
    let field_views = move || {
        let values = values.clone();
        fields(&provider.get())
            .into_iter()
            .map(|f| {
                let sig = values[f.name];
                let id = format!("ch-{}", f.name);
                let label = move || i18n.t(f.zh, f.en);
                if f.key {
                    let file_id = format!("{id}-file");
                    view! {
                        <label for=id.clone()>{label}</label>
                        <textarea id=id rows="4" class="mono" spellcheck="false" placeholder=f.placeholder
                            prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev))></textarea>
                        <label class="file-pick" for=file_id.clone()>{move || i18n.t("或选择密钥文件（.pem）", "or pick the key file (.pem)")}</label>
                        <input id=file_id type="file" accept=".pem,.txt,.key,.pub" on:change=move |ev| read_picked_file(ev, sig)/>
                    }
                    .into_any()
                } else {
                    view! {
                        <label for=id.clone()>{label}</label>
                        <input id=id required=!f.optional placeholder=f.placeholder prop:value=move || sig.get()
                            on:input=move |ev| sig.set(event_target_value(&ev))/>
                    }
                    .into_any()
                }
            })
            .collect_view()
    };
    view! {
        <section class="panel channel-editor">
            <h2>{move || if is_new { i18n.t("新建渠道配置", "New channel") } else { i18n.t("编辑渠道配置", "Edit channel") }}</h2>
            <form class="form" on:submit=submit>
                <label for="ch-provider">{move || i18n.t("渠道", "Provider")}</label>
                <select id="ch-provider" prop:value=move || provider.get() disabled=!is_new
                    on:change=move |ev| provider.set(event_target_value(&ev))>
                    <option value="alipay">"支付宝 Alipay"</option>
                    <option value="wechatpay">"微信支付 WeChat Pay"</option>
                    <option value="bank">"银行卡 Bank card"</option>
                </select>
                <label for="ch-name">{move || i18n.t("名称", "Name")}</label>
                <input id="ch-name" required maxlength="60" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                {field_views}
                <label for="ch-key">{move || match (provider.get().as_str(), is_new) {
                    ("alipay", true) => i18n.t("应用私钥（PEM 或 base64）", "App private key (PEM or base64)"),
                    ("alipay", false) => i18n.t("应用私钥（留空则保持不变）", "App private key (empty keeps the current one)"),
                    ("wechatpay", true) => i18n.t("商户 API 私钥（apiclient_key.pem）", "Merchant API private key (apiclient_key.pem)"),
                    ("wechatpay", false) => i18n.t("商户 API 私钥（留空则保持不变）", "Merchant API private key (empty keeps the current one)"),
                    (_, true) => i18n.t("商户私钥（PEM 或 base64）", "Merchant private key (PEM or base64)"),
                    (_, false) => i18n.t("商户私钥（留空则保持不变）", "Merchant private key (empty keeps the current one)"),
                }}</label>
                <textarea id="ch-key" rows="4" class="mono" autocomplete="off" spellcheck="false" required=is_new prop:value=move || private_key.get() on:input=move |ev| private_key.set(event_target_value(&ev))></textarea>
                <label class="file-pick" for="ch-key-file">{move || i18n.t("或选择私钥文件（.pem）", "or pick the private key file (.pem)")}</label>
                <input id="ch-key-file" type="file" accept=".pem,.txt,.key" on:change=move |ev| read_picked_file(ev, private_key)/>
                {move || (provider.get() == "wechatpay").then(|| view! {
                    <label for="ch-apiv3">{i18n.t("APIv3 密钥（32 位；编辑时留空则不变）", "APIv3 key (32 characters; empty keeps it on an edit)")}</label>
                    <input id="ch-apiv3" type="password" autocomplete="off" maxlength="32" prop:value=move || apiv3.get() on:input=move |ev| apiv3.set(event_target_value(&ev))/>
                })}
                <label class="check"><input type="checkbox" prop:checked=move || enabled.get() on:change=move |ev| enabled.set(event_target_checked(&ev))/>{move || i18n.t("启用", "Enabled")}</label>
                <label class="check"><input type="checkbox" prop:checked=move || make_default.get() on:change=move |ev| make_default.set(event_target_checked(&ev))/>{move || i18n.t("设为默认", "Default for its provider")}</label>
                <label class="check"><input type="checkbox" prop:checked=move || sandbox.get() on:change=move |ev| sandbox.set(event_target_checked(&ev))/>{move || i18n.t("沙箱（测试环境）", "Sandbox (test environment)")}</label>
                {move || save.value().get().and_then(|r| r.err()).map(|e| view! { <p class="alert alert-error" role="alert">{config_error(i18n, &e)}</p> })}
                <div class="details-actions">
                    <button type="submit" class="btn btn-primary" disabled=move || save.pending().get()>{move || i18n.t("保存", "Save")}</button>
                    <button type="button" class="btn btn-quiet" on:click=move |_| editing.set(None)>{move || i18n.t("取消", "Cancel")}</button>
                </div>
            </form>
        </section>
    }
}

/// A field's label, for error lines that name the field.
fn field_label(en: bool, name: &str) -> String {
    let known = ["alipay", "wechatpay", "bank"].into_iter().flat_map(fields).find(|f| f.name == name);
    match (known, name) {
        (Some(f), _) => (if en { f.en } else { f.zh }).to_string(),
        (None, "private_key") => (if en { "Private key" } else { "私钥" }).to_string(),
        (None, "apiv3_key") => (if en { "APIv3 key" } else { "APIv3 密钥" }).to_string(),
        (None, "name") => (if en { "Name" } else { "名称" }).to_string(),
        (None, other) => other.to_string(),
    }
}

/// A configuration error in words: what is wrong, with which field, and the code.
fn config_error(i18n: I18n, e: &AppError) -> String {
    let en = i18n.is_en();
    let field = e
        .message
        .split_once(':')
        .map(|(f, _)| f.trim())
        .filter(|f| f.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    let what = error_text(&e.code, i18n.lang.get()).map(str::to_string);
    match (field, what) {
        (Some(f), Some(w)) => format!("{}：{} [{}]", field_label(en, f), w, e.code),
        (Some(f), None) => format!(
            "{}：{} [{}]",
            field_label(en, f),
            e.message.split_once(':').map(|x| x.1.trim()).unwrap_or(""),
            e.code
        ),
        (None, _) => err_line(i18n, e),
    }
}

/// "Test connection" for one channel, and what it found.
#[component]
fn TestButton(id: String, name: String) -> impl IntoView {
    let i18n = use_i18n();
    let test = Action::new(move |id: &String| {
        let id = id.clone();
        async move { test_channel(id).await }
    });
    let label = name.clone();
    view! {
        <button type="button" class="btn btn-small" aria-label=move || format!("{} {}", i18n.t("测试连接", "Test connection"), label)
            disabled=move || test.pending().get() on:click=move |_| { test.dispatch(id.clone()); }>
            {move || if test.pending().get() { i18n.t("测试中…", "Testing…") } else { i18n.t("测试连接", "Test connection") }}
        </button>
        {move || test.value().get().map(|r| match r {
            Ok(t) if t.ok => view! { <p class="alert alert-ok test-result" role="status" data-testid="channel-test">{move || i18n.t(
                "连接正常：渠道验证了我们的签名，我们验证了渠道的签名。",
                "Connected: the provider verified our signature and we verified theirs.")}</p> }.into_any(),
            Ok(t) => {
                let code = t.code.clone();
                let pc = t.provider_code.clone().unwrap_or_default();
                let msg = t.message.clone();
                view! { <p class="alert alert-error test-result" role="alert" data-testid="channel-test">{move || {
                    let what = match (code.as_str(), i18n.is_en()) {
                        ("signature_refused", false) => "渠道拒绝了我们的签名：私钥与在渠道登记的公钥不匹配。",
                        ("signature_refused", true) => "The provider refused our signature: the private key does not match the key registered with the provider.",
                        ("no_answer", false) => "没有得到可验证的应答：检查网关地址和渠道公钥。",
                        ("no_answer", true) => "No answer that verified: check the gateway address and the provider's public key.",
                        (_, false) => "渠道拒绝了请求。",
                        (_, true) => "The provider refused the request.",
                    };
                    format!("{what} {pc} {msg}")
                }}</p> }.into_any()
            }
            Err(e) => view! { <p class="alert alert-error test-result" role="alert" data-testid="channel-test">{err_line(i18n, &e)}</p> }.into_any(),
        })}
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
                <div class="field">
                    <label for="tok-scope">{move || i18n.t("用于", "Scope")}</label>
                    <select id="tok-scope" name="scope">
                        {TokenScope::ALL.into_iter().map(|s| view! { <option value=s.as_str()>{move || if i18n.is_en() { s.label_en() } else { s.label_zh() }}</option> }).collect_view()}
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
                                    <th scope="col">{move || i18n.t("用于", "Scope")}</th>
                                    <th scope="col">{move || i18n.t("创建", "Created")}</th>
                                    <th scope="col">{move || i18n.t("最近使用", "Last used")}</th>
                                    <th scope="col">{move || i18n.t("状态", "State")}</th>
                                    <th scope="col"></th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|t| view! { <tr>
                                        <td>{t.name.clone()}</td>
                                        <td>{move || if i18n.is_en() { t.role.label_en() } else { t.role.label_zh() }}</td>
                                        <td>{move || if i18n.is_en() { t.scope.label_en() } else { t.scope.label_zh() }}</td>
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
