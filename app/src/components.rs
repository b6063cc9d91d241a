//! Small building blocks shared by the pages.

use crate::error::AppError;
use crate::i18n::{error_text, use_i18n};
use clinicpay::billing::BillStatus;
use clinicpay::money::Money;
use leptos::prelude::*;

/// Sets the HTTP status of a server-rendered page (no-op in the browser).
pub fn set_status(code: u16) {
    #[cfg(feature = "ssr")]
    {
        if let (Some(opts), Ok(status)) =
            (use_context::<leptos_axum::ResponseOptions>(), http::StatusCode::from_u16(code))
        {
            opts.set_status(status);
        }
    }
    #[cfg(not(feature = "ssr"))]
    let _ = code;
}

/// An amount as people read it: `¥1,234.56`, tabular figures.
#[component]
pub fn Amount(#[prop(into)] value: Money, #[prop(optional)] large: bool) -> impl IntoView {
    let class = if large { "money money-large" } else { "money" };
    view! { <span class=class>{value.display()}</span> }
}

/// A patient's sex as the hospital records it (男 / 女), in the reader's language.
pub fn sex_label(en: bool, recorded: &str) -> String {
    match (en, recorded.trim()) {
        (true, "男" | "M" | "male") => "Male".into(),
        (true, "女" | "F" | "female") => "Female".into(),
        (false, "M" | "male") => "男".into(),
        (false, "F" | "female") => "女".into(),
        (_, other) => other.to_string(),
    }
}

/// An audit action in words (the stored code stays in the log and its hash chain).
pub fn audit_action_label(en: bool, code: &str) -> String {
    let (zh, e) = match code {
        "login" => ("登录", "Logged in"),
        "login_failed" => ("登录失败", "Failed login"),
        "logout" => ("退出登录", "Logged out"),
        "user_created" => ("创建用户", "User created"),
        "user_disabled" => ("停用用户", "User disabled"),
        "user_enabled" => ("启用用户", "User enabled"),
        "password_reset" => ("重置密码", "Password reset"),
        "api_token_created" => ("创建 API 令牌", "API token created"),
        "api_token_disabled" => ("停用 API 令牌", "API token disabled"),
        "channel_created" => ("新增支付渠道", "Channel created"),
        "channel_updated" => ("修改支付渠道", "Channel changed"),
        "channel_made_default" => ("设为默认渠道", "Channel made default"),
        "channel_secrets_reencrypted" => ("重新加密渠道密钥", "Channel secrets re-encrypted"),
        "exception_refund" => ("异常：原路退款", "Exception: refund"),
        "exception_resolved" => ("异常：标记已处理", "Exception: resolved"),
        "session_created" => ("生成支付码", "Payment opened"),
        "session_cancelled" => ("取消支付", "Payment cancelled"),
        "session_refreshed" => ("刷新支付码", "Payment code refreshed"),
        other => return other.to_string(),
    };
    (if en { e } else { zh }).to_string()
}

/// A provider notification's outcome in words.
pub fn notification_status_label(en: bool, status: clinicpay::payments::NotificationStatus) -> &'static str {
    use clinicpay::payments::NotificationStatus as N;
    match (status, en) {
        (N::Received, false) => "待处理",
        (N::Received, true) => "Waiting",
        (N::Applied, false) => "已处理",
        (N::Applied, true) => "Applied",
        (N::Duplicate, false) => "重复通知",
        (N::Duplicate, true) => "Duplicate",
        (N::Rejected, false) => "已拒绝",
        (N::Rejected, true) => "Rejected",
        (N::Failed, false) => "处理失败",
        (N::Failed, true) => "Failed",
        (N::Ignored, false) => "无需处理",
        (N::Ignored, true) => "Ignored",
    }
}

/// Bill status in words and colour (never colour alone).
#[component]
pub fn BillStatusBadge(status: BillStatus) -> impl IntoView {
    let i18n = use_i18n();
    let class = format!("badge badge-{}", status.as_str());
    view! { <span class=class>{move || if i18n.is_en() { status.label_en() } else { status.label_zh() }}</span> }
}

/// A failure, explained: what happened (in the user's language), the code for support.
#[component]
pub fn ErrorView(err: AppError) -> impl IntoView {
    let i18n = use_i18n();
    set_status(err.status);
    let code = err.code.clone();
    let message = err.message.clone();
    let detail_msg = message.clone();
    let detail_code = code.clone();
    let text = move || {
        error_text(&code, i18n.lang.get()).map(str::to_string).unwrap_or_else(|| {
            if i18n.is_en() {
                message.clone()
            } else {
                "操作未完成，请重试或联系技术支持".to_string()
            }
        })
    };
    // the specifics (which field, which id) as the server said them — in English, so only on
    // an English screen (a Chinese screen keeps the code for support)
    let detail = move || {
        if error_text(&detail_code, i18n.lang.get()).is_none() {
            None
        } else if i18n.is_en() {
            Some(view! { <p class="alert-detail">{detail_msg.clone()}</p> }.into_any())
        } else {
            // the field it is about (`page: must be …` names it), without the English sentence
            field_of(&detail_msg)
                .map(|f| view! { <p class="alert-detail">{format!("有问题的参数：{f}")}</p> }.into_any())
        }
    };
    view! {
        <div class="alert alert-error" role="alert">
            <strong>{move || i18n.t("出错了：", "Something went wrong: ")}</strong>
            <span class="alert-text">{text}</span>
            <span class="alert-code">{format!(" [{}]", err.code)}</span>
            {detail}
            {(err.status == 400).then(|| view! {
                <p class="alert-hint">{move || i18n.t("请检查输入或地址中的参数后重试。", "Check what you entered, or the address, and try again.")}</p>
            })}
        </div>
    }
}

/// The field a server message names (`page: must be a whole number`), if it names one.
fn field_of(message: &str) -> Option<&str> {
    let (field, _) = message.split_once(':')?;
    let ok = !field.is_empty()
        && field.len() <= 32
        && field.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    ok.then_some(field)
}

#[component]
pub fn Loading() -> impl IntoView {
    let i18n = use_i18n();
    view! { <p class="loading" aria-live="polite">{move || i18n.t("加载中…", "Loading…")}</p> }
}

/// The page a user sees when their role may not open what they asked for.
#[component]
pub fn NotAllowed() -> impl IntoView {
    let i18n = use_i18n();
    set_status(403);
    view! {
        <section class="panel not-allowed">
            <h1>{move || i18n.t("无权访问", "Not allowed")}</h1>
            <p>{move || i18n.t("您的角色不能打开此页面。如需权限，请联系管理员。", "Your role cannot open this page. Ask an administrator if you need access.")}</p>
            <p><a href="/">{move || i18n.t("返回首页", "Back to the dashboard")}</a></p>
        </section>
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    let i18n = use_i18n();
    set_status(404);
    view! {
        <section class="panel">
            <h1>{move || i18n.t("页面不存在", "Page not found")}</h1>
            <p><a href="/">{move || i18n.t("返回首页", "Back to the dashboard")}</a></p>
        </section>
    }
}

/// Previous / next links that keep the rest of the query.
#[component]
pub fn Pager(page: i64, pages: i64, total: i64, href: impl Fn(i64) -> String + Send + Sync + 'static) -> impl IntoView {
    let i18n = use_i18n();
    let prev = (page > 1).then(|| href(page - 1));
    let next = (page < pages).then(|| href(page + 1));
    view! {
        <nav class="pager" aria-label=move || i18n.t("分页", "Pages")>
            {match prev {
                Some(h) => view! { <a href=h rel="prev">{move || i18n.t("‹ 上一页", "‹ Previous")}</a> }.into_any(),
                None => view! { <span class="disabled">{move || i18n.t("‹ 上一页", "‹ Previous")}</span> }.into_any(),
            }}
            <span class="pager-info">
                {move || if i18n.is_en() {
                    format!("Page {page} of {pages} · {total} in all")
                } else {
                    format!("第 {page} / {pages} 页 · 共 {total} 条")
                }}
            </span>
            {match next {
                Some(h) => view! { <a href=h rel="next">{move || i18n.t("下一页 ›", "Next ›")}</a> }.into_any(),
                None => view! { <span class="disabled">{move || i18n.t("下一页 ›", "Next ›")}</span> }.into_any(),
            }}
        </nav>
    }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn fmt_time(ms: i64) -> String {
    clinicpay::time::fmt_minute(ms)
}
