//! Departments and the charge-item catalogue (issue 15 #5): import a CSV/XLSX file (taken whole
//! or not at all, every refused row listed with its line), search and edit items one by one.

use crate::api::{admin_catalogue, import_catalogue, list_departments, save_charge_item};
use crate::components::{ErrorView, Loading};
use crate::i18n::{err_line, error_text, use_i18n, I18n};
use clinicpay::billing::ItemCategory;
use clinicpay::intake::import::{header_help, ImportKind, ImportReport};
use clinicpay::intake::{CatalogueItem, ChargeItemInput};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

fn category_label(i18n: I18n, c: ItemCategory) -> &'static str {
    if i18n.is_en() {
        c.label_en()
    } else {
        c.label_zh()
    }
}

/// Reads the picked file into (name, base64).
fn pick_file(ev: leptos::ev::Event, into: RwSignal<Option<(String, String)>>) {
    #[cfg(feature = "hydrate")]
    {
        use base64::Engine;
        use wasm_bindgen::JsCast;
        let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
        let Some(file) = input.files().and_then(|l| l.get(0)) else {
            into.set(None);
            return;
        };
        let name = file.name();
        leptos::task::spawn_local(async move {
            if let Ok(buf) = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                let bytes = js_sys::Uint8Array::new(&buf).to_vec();
                into.set(Some((name, base64::engine::general_purpose::STANDARD.encode(bytes))));
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (ev, into);
}

#[component]
pub fn CataloguePage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let q = move || query.with(|m| m.get("q")).filter(|s| !s.is_empty());
    let changed = RwSignal::new(0u32);
    let items = Resource::new(move || (q(), changed.get()), |(q, _)| admin_catalogue(q));
    let departments = Resource::new(move || changed.get(), |_| list_departments());
    let editing: RwSignal<Option<ChargeItemInput>> = RwSignal::new(None);
    view! {
        <h1>{move || i18n.t("科室与收费项目", "Departments and charge items")}</h1>
        <p class="hint">{move || i18n.t(
            "与 HIS 接口同一套校验：编码唯一，单价为正且最多两位小数。导入文件中任何一行有误，整个文件都不写入，并列出每一行的错误。",
            "The same rules as the HIS intake: codes are unique, prices positive with at most two decimals. If any row of an imported file is wrong, nothing from the file is written and every wrong row is listed.")}</p>
        <ImportPanel changed=changed/>
        {move || editing.get().map(|f| view! { <ItemEditor form=f editing=editing changed=changed/> })}
        <section class="panel">
            <h2>{move || i18n.t("收费项目", "Charge items")}</h2>
            <form class="form form-inline" method="get" action="/admin/catalogue">
                <div class="field">
                    <label for="cat-q">{move || i18n.t("编码或名称", "Code or name")}</label>
                    <input id="cat-q" name="q" maxlength="40" prop:value=move || q().unwrap_or_default()/>
                </div>
                <div class="field actions">
                    <button type="submit" class="btn">{move || i18n.t("查询", "Search")}</button>
                    " "
                    <button type="button" class="btn btn-primary" on:click=move |_| editing.set(Some(ChargeItemInput {
                        code: String::new(), name: String::new(), category: "lab".into(), unit: String::new(),
                        unit_price: String::new(), national_code: None, enabled: Some(true),
                    }))>{move || i18n.t("新增项目", "New item")}</button>
                </div>
            </form>
            <Suspense fallback=|| view! { <Loading/> }>
                {move || Suspend::new(async move {
                    match items.await {
                        Err(e) => view! { <ErrorView err=e/> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="empty">{move || i18n.t("没有收费项目。", "No charge items.")}</p> }.into_any(),
                        Ok(list) => view! {
                            <table class="table" data-testid="catalogue">
                                <thead><tr>
                                    <th scope="col">{move || i18n.t("编码", "Code")}</th>
                                    <th scope="col">{move || i18n.t("名称", "Name")}</th>
                                    <th scope="col">{move || i18n.t("类别", "Category")}</th>
                                    <th scope="col">{move || i18n.t("单位", "Unit")}</th>
                                    <th scope="col" class="num">{move || i18n.t("单价", "Unit price")}</th>
                                    <th scope="col">{move || i18n.t("国家编码", "National code")}</th>
                                    <th scope="col">{move || i18n.t("状态", "State")}</th>
                                    <th scope="col"></th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|it| item_row(i18n, it, editing)).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
        <section class="panel">
            <h2>{move || i18n.t("科室", "Departments")}</h2>
            <Suspense fallback=|| view! { <Loading/> }>
                {move || Suspend::new(async move {
                    match departments.await {
                        Err(e) => view! { <ErrorView err=e/> }.into_any(),
                        Ok(list) => view! {
                            <table class="table" data-testid="departments">
                                <thead><tr>
                                    <th scope="col">{move || i18n.t("编码", "Code")}</th>
                                    <th scope="col">{move || i18n.t("中文名称", "Chinese name")}</th>
                                    <th scope="col">{move || i18n.t("英文名称", "English name")}</th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|d| view! { <tr>
                                        <td><code>{d.code}</code></td><td>{d.name_zh}</td><td>{d.name_en}</td>
                                    </tr> }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

fn item_row(i18n: I18n, it: CatalogueItem, editing: RwSignal<Option<ChargeItemInput>>) -> impl IntoView {
    let form = ChargeItemInput {
        code: it.code.clone(),
        name: it.name.clone(),
        category: it.category.as_str().to_string(),
        unit: it.unit.clone(),
        unit_price: it.unit_price.plain(),
        national_code: it.national_code.clone(),
        enabled: Some(it.enabled),
    };
    let cat = it.category;
    let enabled = it.enabled;
    view! {
        <tr>
            <td><code>{it.code.clone()}</code></td>
            <td>{it.name.clone()}</td>
            <td>{move || category_label(i18n, cat)}</td>
            <td>{it.unit.clone()}</td>
            <td class="num">{it.unit_price.display()}</td>
            <td>{it.national_code.clone().unwrap_or_default()}</td>
            <td>{move || if enabled { i18n.t("启用", "Enabled") } else { i18n.t("停用", "Disabled") }}</td>
            <td><button type="button" class="btn btn-small" on:click=move |_| editing.set(Some(form.clone()))>{move || i18n.t("编辑", "Edit")}</button></td>
        </tr>
    }
}

#[component]
fn ItemEditor(
    form: ChargeItemInput,
    editing: RwSignal<Option<ChargeItemInput>>,
    changed: RwSignal<u32>,
) -> impl IntoView {
    let i18n = use_i18n();
    let is_new = form.code.is_empty();
    let code = RwSignal::new(form.code.clone());
    let name = RwSignal::new(form.name.clone());
    let category = RwSignal::new(form.category.clone());
    let unit = RwSignal::new(form.unit.clone());
    let price = RwSignal::new(form.unit_price.clone());
    let national = RwSignal::new(form.national_code.clone().unwrap_or_default());
    let enabled = RwSignal::new(form.enabled.unwrap_or(true));
    let save = Action::new(move |f: &ChargeItemInput| {
        let f = f.clone();
        async move { save_charge_item(f).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = save.value().get() {
            changed.update(|n| *n += 1);
            editing.set(None);
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let n = national.get_untracked();
        save.dispatch(ChargeItemInput {
            code: code.get_untracked(),
            name: name.get_untracked(),
            category: category.get_untracked(),
            unit: unit.get_untracked(),
            unit_price: price.get_untracked(),
            national_code: (!n.trim().is_empty()).then_some(n),
            enabled: Some(enabled.get_untracked()),
        });
    };
    view! {
        <section class="panel">
            <h2>{move || if is_new { i18n.t("新增收费项目", "New charge item") } else { i18n.t("编辑收费项目", "Edit charge item") }}</h2>
            <form class="form" on:submit=submit>
                <label for="it-code">{move || i18n.t("编码", "Code")}</label>
                <input id="it-code" required maxlength="32" readonly=!is_new prop:value=move || code.get() on:input=move |ev| code.set(event_target_value(&ev))/>
                <label for="it-name">{move || i18n.t("名称", "Name")}</label>
                <input id="it-name" required maxlength="60" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                <label for="it-category">{move || i18n.t("类别", "Category")}</label>
                <select id="it-category" prop:value=move || category.get() on:change=move |ev| category.set(event_target_value(&ev))>
                    {ItemCategory::ALL.into_iter().map(|c| view! {
                        <option value=c.as_str() selected=move || category.get() == c.as_str()>{move || category_label(i18n, c)}</option>
                    }).collect_view()}
                </select>
                <label for="it-unit">{move || i18n.t("单位", "Unit")}</label>
                <input id="it-unit" required maxlength="10" prop:value=move || unit.get() on:input=move |ev| unit.set(event_target_value(&ev))/>
                <label for="it-price">{move || i18n.t("单价（元）", "Unit price (yuan)")}</label>
                <input id="it-price" required inputmode="decimal" prop:value=move || price.get() on:input=move |ev| price.set(event_target_value(&ev))/>
                <label for="it-national">{move || i18n.t("国家编码（可选）", "National code (optional)")}</label>
                <input id="it-national" maxlength="32" prop:value=move || national.get() on:input=move |ev| national.set(event_target_value(&ev))/>
                <label for="it-enabled" class="check">
                    <input id="it-enabled" type="checkbox" prop:checked=move || enabled.get() on:change=move |ev| enabled.set(event_target_checked(&ev))/>
                    " "{move || i18n.t("启用（停用的项目不能再开到新账单上）", "Enabled (a disabled item cannot go on new bills)")}
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
fn ImportPanel(changed: RwSignal<u32>) -> impl IntoView {
    let i18n = use_i18n();
    let kind = RwSignal::new(ImportKind::ChargeItems);
    let file: RwSignal<Option<(String, String)>> = RwSignal::new(None);
    let import = Action::new(move |(k, name, content): &(ImportKind, String, String)| {
        let (k, name, content) = (*k, name.clone(), content.clone());
        async move { import_catalogue(k.as_str().to_string(), name, content).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(r)) = import.value().get() {
            if r.applied {
                changed.update(|n| *n += 1);
            }
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if let Some((name, content)) = file.get_untracked() {
            import.dispatch((kind.get_untracked(), name, content));
        }
    };
    let help = move || {
        header_help(kind.get())
            .into_iter()
            .map(|(_, words, required)| {
                let w = words.iter().skip(1).take(2).copied().collect::<Vec<_>>().join(" / ");
                format!("{}{} ({})", words[0], if required { "*" } else { "" }, w)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    view! {
        <section class="panel">
            <h2>{move || i18n.t("从文件导入", "Import from a file")}</h2>
            <form class="form" on:submit=submit>
                <label for="imp-kind">{move || i18n.t("导入内容", "What")}</label>
                <select id="imp-kind" on:change=move |ev| kind.set(if event_target_value(&ev) == "departments" { ImportKind::Departments } else { ImportKind::ChargeItems })>
                    <option value="charge_items">{move || i18n.t("收费项目", "Charge items")}</option>
                    <option value="departments">{move || i18n.t("科室", "Departments")}</option>
                </select>
                <label for="imp-file">{move || i18n.t("文件（CSV 或 XLSX，第一行为列名）", "File (CSV or XLSX, the first row names the columns)")}</label>
                <input id="imp-file" type="file" accept=".csv,.xlsx,text/csv" on:change=move |ev| pick_file(ev, file)/>
                <p class="hint">{move || i18n.t("列：", "Columns: ")}<code>{help}</code>{move || i18n.t("（* 为必填）", " (* required)")}</p>
                <div class="actions">
                    <button type="submit" class="btn btn-primary" disabled=move || file.get().is_none() || import.pending().get()>
                        {move || if import.pending().get() { i18n.t("正在导入…", "Importing…") } else { i18n.t("导入", "Import") }}
                    </button>
                </div>
            </form>
            {move || import.value().get().map(|r| match r {
                Err(e) => view! { <p class="alert alert-error" role="alert">{err_line(i18n, &e)}</p> }.into_any(),
                Ok(r) => report_view(i18n, r).into_any(),
            })}
        </section>
    }
}

fn report_view(i18n: I18n, r: ImportReport) -> impl IntoView {
    if r.applied {
        let (c, u, n) = (r.created, r.updated, r.unchanged);
        return view! {
            <p class="alert alert-ok" role="status" data-testid="import-result">
                {move || if i18n.is_en() {
                    format!("Imported {} rows: {c} new, {u} changed, {n} unchanged.", c + u + n)
                } else {
                    format!("已导入 {} 行：新增 {c}，更新 {u}，未变 {n}。", c + u + n)
                }}
            </p>
        }
        .into_any();
    }
    let count = r.refused.len();
    let rows = r.rows;
    view! {
        <div data-testid="import-result">
            <p class="alert alert-error" role="alert">
                {move || if i18n.is_en() {
                    format!("Nothing was imported: {count} of {rows} rows are wrong. Correct them and import the file again.")
                } else {
                    format!("未导入任何内容：{rows} 行中有 {count} 行有误，请修改后重新导入。")
                }}
            </p>
            <table class="table">
                <thead><tr>
                    <th scope="col" class="num">{move || i18n.t("行", "Line")}</th>
                    <th scope="col">{move || i18n.t("编码", "Code")}</th>
                    <th scope="col">{move || i18n.t("字段", "Field")}</th>
                    <th scope="col">{move || i18n.t("错误", "Error")}</th>
                </tr></thead>
                <tbody>
                    {r.refused.into_iter().map(|e| {
                        let code = e.error_code.clone();
                        let msg = e.message.clone();
                        view! { <tr>
                            <td class="num">{e.line}</td>
                            <td><code>{e.code.clone()}</code></td>
                            <td>{e.field.clone()}</td>
                            <td>{move || format!("{} [{}]", error_text(&code, i18n.lang.get()).map(str::to_string).unwrap_or_else(|| msg.clone()), code)}</td>
                        </tr> }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
