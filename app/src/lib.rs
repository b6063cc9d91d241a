//! ClinicPay's web UI: server-rendered Leptos pages, hydrated in the browser, and the server
//! functions behind them.

pub mod api;
pub mod assets;
pub mod components;
pub mod error;
pub mod i18n;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod state;

use crate::api::page_access;
use crate::components::{NotAllowed, NotFound};
use crate::i18n::{I18n, Lang};
use clinicpay::auth::{Access, CurrentUser, Role};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Outlet, ParentRoute, Route, Router, Routes, A};
use leptos_router::hooks::use_location;
use leptos_router::{path, SsrMode};

/// The HTML document around the app (server side only).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let lang = request_lang();
    // The logged-in user travels with the page, so the shell renders without a round trip and
    // the browser hydrates exactly what the server rendered.
    let user_json = serde_json::to_string(&initial_user()).unwrap_or_else(|_| "null".into());
    let assets = crate::assets::urls();
    let boot = crate::assets::boot_script(&assets);
    view! {
        <!DOCTYPE html>
        <html lang=lang.html_lang()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="cp-user" content=user_json/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <link rel="stylesheet" id="leptos" href=assets.css.clone()/>
                <link rel="modulepreload" href=assets.js.clone()/>
                <link rel="preload" href=assets.wasm.clone() r#as="fetch" r#type="application/wasm" crossorigin=""/>
                <script type="module" inner_html=boot></script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The language of this request (server) or of the page being hydrated (browser).
fn request_lang() -> Lang {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .map(|p| {
                let header = |name: http::header::HeaderName| p.headers.get(name).and_then(|v| v.to_str().ok());
                Lang::from_request(header(http::header::COOKIE), header(http::header::ACCEPT_LANGUAGE))
            })
            .unwrap_or_default()
    }
    #[cfg(not(feature = "ssr"))]
    {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
            .and_then(|e| e.get_attribute("lang"))
            .and_then(|l| Lang::parse(&l))
            .unwrap_or_default()
    }
}

/// The logged-in user of this page (known when the page is rendered).
#[derive(Clone)]
pub struct UserCtx(pub Option<CurrentUser>);

/// The user: from the request (server) or from the page's `cp-user` meta tag (browser).
fn initial_user() -> Option<CurrentUser> {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<CurrentUser>().cloned())
    }
    #[cfg(not(feature = "ssr"))]
    {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.query_selector("meta[name=cp-user]").ok().flatten())
            .and_then(|m| m.get_attribute("content"))
            .and_then(|json| serde_json::from_str(&json).ok())
            .flatten()
    }
}

fn title_for(lang: Lang) -> &'static str {
    if lang == Lang::En {
        "ClinicPay"
    } else {
        "ClinicPay 医院收费"
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let first_lang = request_lang();
    let i18n = I18n { lang: RwSignal::new(first_lang) };
    provide_context(i18n);
    provide_context(UserCtx(initial_user()));
    // Effects run only in the browser: mark the document once the WASM has taken over, so
    // end-to-end tests (and curious people) can tell a hydrated page from a static one.
    Effect::new(move |_| {
        if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    Effect::new(move |_| {
        let title = title_for(i18n.lang.get());
        if let Some(d) = web_sys::window().and_then(|w| w.document()) {
            d.set_title(title);
        }
    });

    view! {
        // A plain value, not a signal: the server reads the title after rendering, where no
        // reactive arena may be active (reading a signal there panicked under load). The
        // browser follows a language switch through the effect above.
        <Title text=title_for(first_lang)/>
        <Router>
            <Routes fallback=|| view! { <Layout><NotFound/></Layout> }>
                <Route path=path!("/login") view=pages::login::LoginPage ssr=SsrMode::Async/>
                <ParentRoute path=path!("") view=|| view! { <Layout><Outlet/></Layout> } ssr=SsrMode::Async>
                    <Route path=path!("") view=pages::dashboard::DashboardPage ssr=SsrMode::Async/>
                    <Route path=path!("bills") view=pages::bills::BillsPage ssr=SsrMode::Async/>
                    <Route path=path!("bills/new") view=pages::bill_entry::BillEntryPage ssr=SsrMode::Async/>
                    <Route path=path!("bills/:id") view=pages::bills::BillPage ssr=SsrMode::Async/>
                    <Route path=path!("patients") view=pages::patients::PatientsPage ssr=SsrMode::Async/>
                    <Route path=path!("patients/:id") view=pages::patients::PatientPage ssr=SsrMode::Async/>
                    <Route path=path!("charge") view=pages::charge::ChargePage ssr=SsrMode::Async/>
                    <Route path=path!("finance") view=pages::finance::FinanceHomePage ssr=SsrMode::Async/>
                    <Route path=path!("receipts/:id") view=pages::receipts::ReceiptPage ssr=SsrMode::Async/>
                    <Route path=path!("receipts/refund/:id") view=pages::refunds::RedReceiptPage ssr=SsrMode::Async/>
                    <Route path=path!("shifts") view=pages::shifts::ShiftsPage ssr=SsrMode::Async/>
                    <Route path=path!("shifts/:id") view=pages::shifts::ShiftSheetPage ssr=SsrMode::Async/>
                    <Route path=path!("exceptions") view=pages::exceptions::ExceptionsPage ssr=SsrMode::Async/>
                    <Route path=path!("admin/users") view=pages::admin::UsersPage ssr=SsrMode::Async/>
                    <Route path=path!("admin/channels") view=pages::admin_pay::ChannelsPage ssr=SsrMode::Async/>
                    <Route path=path!("admin/tokens") view=pages::admin_pay::TokensPage ssr=SsrMode::Async/>
                    <Route path=path!("admin/notifications") view=pages::admin_pay::NotificationsPage ssr=SsrMode::Async/>
                    <Route path=path!("admin/audit") view=pages::admin::AuditPage ssr=SsrMode::Async/>
                    <Route path=path!("admin/webhooks") view=pages::webhooks::WebhooksPage ssr=SsrMode::Async/>
                    <Route path=path!("admin/catalogue") view=pages::catalogue::CataloguePage ssr=SsrMode::Async/>
                    <Route path=path!("finance/deliveries") view=pages::webhooks::DeliveriesPage ssr=SsrMode::Async/>
                    <Route path=path!("finance/refunds") view=pages::refunds::RefundsPage ssr=SsrMode::Async/>
                    <Route path=path!("finance/ledger") view=pages::books::LedgerPage ssr=SsrMode::Async/>
                    <Route path=path!("finance/ledger/:code") view=pages::books::AccountPage ssr=SsrMode::Async/>
                    <Route path=path!("finance/day-close") view=pages::books::DayClosePage ssr=SsrMode::Async/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// The app shell: navigation (only what works, only what the role may use), user, language,
/// logout; the page, or "not allowed".
#[component]
fn Layout(children: ChildrenFn) -> impl IntoView {
    let i18n = use_i18n_ctx();
    let user = expect_context::<UserCtx>().0;
    let location = use_location();
    let role = user.as_ref().map(|u| u.role);
    let allowed = Memo::new(move |_| page_access(&location.pathname.get()).allows(role));
    view! {
        <Nav user=user.clone()/>
        <main id="main" class="main">
            {move || if allowed.get() { children().into_any() } else { view! { <NotAllowed/> }.into_any() }}
        </main>
        <p class="hydrating-note no-print">{move || i18n.t("正在加载页面…", "Loading the page…")}</p>
        <footer class="footer">{move || i18n.t("ClinicPay · 医院收费与账务", "ClinicPay · hospital payments and books")}</footer>
    }
}

fn use_i18n_ctx() -> I18n {
    crate::i18n::use_i18n()
}

#[component]
fn Nav(user: Option<CurrentUser>) -> impl IntoView {
    let i18n = use_i18n_ctx();
    let location = use_location();
    let role = user.as_ref().map(|u| u.role);
    let can = move |a: Access| a.allows(role);
    let lang_href = move || {
        let search = location.search.get();
        let next =
            if search.is_empty() { location.pathname.get() } else { format!("{}?{}", location.pathname.get(), search) };
        format!("/lang/{}?next={}", i18n.lang.get().other().code(), crate::components::enc(&next))
    };
    let user_label = user.as_ref().map(|u| {
        let role = u.role;
        let name = u.display_name.clone();
        move || format!("{} · {}", name, if i18n.is_en() { role.label_en() } else { role.label_zh() })
    });
    view! {
        <header class="topbar">
            <a class="skip" href="#main">{move || i18n.t("跳到正文", "Skip to content")}</a>
            <a class="brand" href="/">"ClinicPay"</a>
            <nav class="mainnav" aria-label=move || i18n.t("主导航", "Main")>
                // each role its own menu: finance's pages first for finance, the counter's for
                // cashiers (finance may also take payments; administrators see both)
                {(role == Some(Role::Finance)).then(|| view! {
                    <A href="/finance" exact=true>{move || i18n.t("财务首页", "Finance")}</A>
                    <A href="/finance/refunds">{move || i18n.t("退款审批", "Refunds")}</A>
                    <A href="/finance/day-close">{move || i18n.t("日结", "Day close")}</A>
                    <A href="/shifts">{move || i18n.t("交班", "Shifts")}</A>
                    <A href="/finance/ledger">{move || i18n.t("账簿", "Books")}</A>
                    <A href="/exceptions">{move || i18n.t("支付异常", "Exceptions")}</A>
                    <A href="/finance/deliveries">{move || i18n.t("推送日志", "Deliveries")}</A>
                    <A href="/bills">{move || i18n.t("账单", "Bills")}</A>
                    <A href="/patients">{move || i18n.t("患者", "Patients")}</A>
                    <A href="/charge">{move || i18n.t("费用收取", "Charge")}</A>
                })}
                {(can(Access::Billing) && role != Some(Role::Finance)).then(|| view! {
                    <A href="/" exact=true>{move || i18n.t("首页", "Dashboard")}</A>
                    <A href="/charge">{move || i18n.t("费用收取", "Charge")}</A>
                    <A href="/bills/new">{move || i18n.t("开单", "New bill")}</A>
                    <A href="/bills" exact=true>{move || i18n.t("账单", "Bills")}</A>
                    <A href="/patients">{move || i18n.t("患者", "Patients")}</A>
                    <A href="/exceptions">{move || i18n.t("支付异常", "Exceptions")}</A>
                    <A href="/shifts">{move || i18n.t("交班", "Shifts")}</A>
                })}
                {(role == Some(Role::Admin)).then(|| view! {
                    <A href="/finance">{move || i18n.t("财务首页", "Finance")}</A>
                })}
                {can(Access::Admin).then(|| view! {
                    <A href="/admin/users">{move || i18n.t("用户", "Users")}</A>
                    <A href="/admin/catalogue">{move || i18n.t("收费项目", "Catalogue")}</A>
                    <A href="/admin/channels">{move || i18n.t("支付渠道", "Channels")}</A>
                    <A href="/admin/tokens">{move || i18n.t("API 令牌", "API tokens")}</A>
                    <A href="/admin/notifications">{move || i18n.t("通知日志", "Notifications")}</A>
                    <A href="/admin/webhooks">{move || i18n.t("事件推送", "Events")}</A>
                    <A href="/admin/audit">{move || i18n.t("审计日志", "Audit log")}</A>
                })}
            </nav>
            <div class="userbox">
                <a class="lang-switch" href=lang_href rel="external"
                    aria-label=move || i18n.t("Switch to English", "切换到中文")>
                    {move || i18n.t("English", "中文")}
                </a>
                {user_label.map(|l| view! { <span class="whoami">{l}</span> })}
                {user.is_some().then(|| view! {
                    <form method="post" action="/auth/logout" class="logout">
                        <button type="submit" class="link-button">{move || i18n.t("退出", "Log out")}</button>
                    </form>
                })}
            </div>
        </header>
    }
}
