//! Login. A plain HTML form posted to `/auth/login`, so it works before (and without) the WASM.

use crate::components::enc;
use crate::i18n::{error_text, use_i18n};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let next = move || {
        let n = query.with(|q| q.get("next")).unwrap_or_default();
        // only local paths: no open redirect
        if n.starts_with('/') && !n.starts_with("//") {
            n
        } else {
            "/".to_string()
        }
    };
    let error = move || query.with(|q| q.get("error"));
    let lang_href = move || {
        format!("/lang/{}?next={}", i18n.lang.get().other().code(), enc(&format!("/login?next={}", enc(&next()))))
    };
    view! {
        <main class="login-page">
            <section class="login-card panel">
                <h1 class="login-title">"ClinicPay"</h1>
                <p class="login-sub">{move || i18n.t("医院收费与账务系统", "Hospital payments and books")}</p>
                {move || error().map(|code| {
                    let text = error_text(&code, i18n.lang.get()).unwrap_or(if i18n.is_en() { "Login failed" } else { "登录失败" });
                    view! { <div class="alert alert-error" role="alert">{text}<span class="alert-code">{format!(" [{code}]")}</span></div> }
                })}
                <form method="post" action="/auth/login" class="form">
                    <input type="hidden" name="next" value=next/>
                    <label for="username">{move || i18n.t("用户名", "User name")}</label>
                    <input id="username" name="username" type="text" autocomplete="username" required autofocus/>
                    <label for="password">{move || i18n.t("密码", "Password")}</label>
                    <input id="password" name="password" type="password" autocomplete="current-password" required/>
                    <button type="submit" class="btn btn-primary btn-block">{move || i18n.t("登录", "Log in")}</button>
                </form>
                <p class="login-lang">
                    <a href=lang_href rel="external">{move || i18n.t("English", "中文")}</a>
                </p>
            </section>
        </main>
    }
}
