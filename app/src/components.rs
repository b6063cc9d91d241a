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
    let text = move || error_text(&code, i18n.lang.get()).map(str::to_string).unwrap_or_else(|| message.clone());
    // the specifics (which field, which id) as the server said them
    let detail = move || {
        error_text(&detail_code, i18n.lang.get())
            .is_some()
            .then(|| view! { <p class="alert-detail">{detail_msg.clone()}</p> })
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
