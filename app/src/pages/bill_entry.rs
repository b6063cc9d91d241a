//! Bill entry at the counter (issue 15, B1), for a clinic without an HIS: register a patient,
//! add items from the catalogue by code or name with the keyboard, see the total, issue the
//! bill (F2) and go straight to the charge screen with it.

use crate::api::{get_patient, issue_bill, list_departments, register_patient, search_catalogue};
use crate::components::{enc, Amount, ErrorView, Loading};
use crate::error::AppError;
use crate::i18n::{use_i18n, I18n};
use clinicpay::billing::Department;
use clinicpay::intake::{BillLineInput, CatalogueItem, CounterBill, CounterPatient};
use clinicpay::money::Money;
use clinicpay::views::PatientSummary;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

fn error_line(i18n: I18n, e: &AppError) -> String {
    // a code without a translation shows the generic sentence, never English inside Chinese
    let text = crate::i18n::error_text(&e.code, i18n.lang.get()).map(str::to_string).unwrap_or_else(|| {
        if i18n.is_en() {
            e.message.clone()
        } else {
            "操作未完成，请检查后重试".to_string()
        }
    });
    format!("{text} [{}]", e.code)
}

#[component]
pub fn BillEntryPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let patient_id = Memo::new(move |_| query.with(|q| q.get("patient")).unwrap_or_default());
    let patient = Resource::new(
        move || patient_id.get(),
        |id| async move {
            if id.is_empty() {
                Ok(None)
            } else {
                get_patient(id).await.map(|d| Some(d.patient))
            }
        },
    );
    let deps = Resource::new(|| (), |_| list_departments());
    view! {
        <h1>{move || i18n.t("开具账单", "New bill")}</h1>
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match (patient.await, deps.await) {
                    (Err(e), _) | (_, Err(e)) => view! { <ErrorView err=e/> }.into_any(),
                    (Ok(None), _) => view! { <RegisterPatient/> }.into_any(),
                    (Ok(Some(p)), Ok(deps)) => view! { <BillForm patient=p deps/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// A patient new to the clinic: registered here, then straight on to their bill.
#[component]
fn RegisterPatient() -> impl IntoView {
    let i18n = use_i18n();
    let navigate = use_navigate();
    let register = Action::new(|p: &CounterPatient| register_patient(p.clone()));
    let (mrn, name, gender, phone, birth, card) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new("unknown".to_string()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    Effect::new(move |_| {
        if let Some(Ok(p)) = register.value().get() {
            navigate(&format!("/bills/new?patient={}", enc(&p.id)), Default::default());
        }
    });
    let opt = |s: RwSignal<String>| {
        let v = s.get_untracked();
        (!v.trim().is_empty()).then_some(v)
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        register.dispatch(CounterPatient {
            mrn: mrn.get_untracked(),
            name: name.get_untracked(),
            gender: gender.get_untracked(),
            birth_date: opt(birth),
            phone: opt(phone),
            id_card: opt(card),
        });
    };
    view! {
        <p class="hint">
            {move || i18n.t("为已有患者开单：在", "To bill a patient already registered, open them on ")}
            <a href="/patients">{move || i18n.t("患者", "Patients")}</a>
            {move || i18n.t("页面打开患者后点“开具账单”。新患者在此登记：", " and choose “New bill”. Register a new patient here:")}
        </p>
        <section class="panel">
            <h2>{move || i18n.t("登记新患者", "Register a patient")}</h2>
            <form class="form form-grid" on:submit=submit>
                <div class="field">
                    <label for="reg-mrn">{move || i18n.t("病历号", "Record number")}</label>
                    <input id="reg-mrn" required inputmode="numeric" maxlength="12" autofocus
                        prop:value=move || mrn.get() on:input=move |e| mrn.set(event_target_value(&e))/>
                </div>
                <div class="field">
                    <label for="reg-name">{move || i18n.t("姓名", "Name")}</label>
                    <input id="reg-name" required maxlength="40"
                        prop:value=move || name.get() on:input=move |e| name.set(event_target_value(&e))/>
                </div>
                <div class="field">
                    <label for="reg-gender">{move || i18n.t("性别", "Sex")}</label>
                    <select id="reg-gender" on:change=move |e| gender.set(event_target_value(&e))>
                        <option value="unknown">{move || i18n.t("未知", "Unknown")}</option>
                        <option value="male">{move || i18n.t("男", "Male")}</option>
                        <option value="female">{move || i18n.t("女", "Female")}</option>
                    </select>
                </div>
                <div class="field">
                    <label for="reg-phone">{move || i18n.t("电话", "Phone")}</label>
                    <input id="reg-phone" inputmode="tel" maxlength="20"
                        prop:value=move || phone.get() on:input=move |e| phone.set(event_target_value(&e))/>
                </div>
                <div class="field">
                    <label for="reg-birth">{move || i18n.t("出生日期", "Born")}</label>
                    <input id="reg-birth" type="date"
                        prop:value=move || birth.get() on:input=move |e| birth.set(event_target_value(&e))/>
                </div>
                <div class="field">
                    <label for="reg-card">{move || i18n.t("身份证号（加密保存）", "ID card number (stored encrypted)")}</label>
                    <input id="reg-card" maxlength="18" autocomplete="off"
                        prop:value=move || card.get() on:input=move |e| card.set(event_target_value(&e))/>
                </div>
                <div class="field actions">
                    <button type="submit" class="btn btn-primary" disabled=move || register.pending().get()>
                        {move || i18n.t("登记并开单", "Register and bill")}
                    </button>
                </div>
            </form>
            {move || register.value().get().and_then(|r| r.err()).map(|e| view! {
                <p class="alert alert-error" role="alert">{error_line(i18n, &e)}</p>
            })}
        </section>
    }
}

/// One line being entered: the catalogue item and how many.
#[derive(Clone, PartialEq)]
struct Line {
    item: CatalogueItem,
    quantity: i64,
}

#[component]
fn BillForm(patient: PatientSummary, deps: Vec<Department>) -> impl IntoView {
    let i18n = use_i18n();
    let navigate = use_navigate();
    let lines: RwSignal<Vec<Line>> = RwSignal::new(Vec::new());
    let q = RwSignal::new(String::new());
    let department = RwSignal::new(deps.first().map(|d| d.code.clone()).unwrap_or_default());
    let doctor = RwSignal::new(String::new());
    let found = Resource::new(move || q.get(), |q| search_catalogue(Some(q)));
    let issue = Action::new(|b: &CounterBill| issue_bill(b.clone()));
    let pid = patient.id.to_string();
    let search_ref = NodeRef::<leptos::html::Input>::new();

    let put = move |item: CatalogueItem| {
        lines.update(|ls| match ls.iter_mut().find(|l| l.item.code == item.code) {
            Some(l) => l.quantity = (l.quantity + 1).min(clinicpay::intake::MAX_QUANTITY),
            None => ls.push(Line { item, quantity: 1 }),
        });
    };
    let add = move |item: CatalogueItem| {
        put(item);
        q.set(String::new());
        if let Some(input) = search_ref.get_untracked() {
            let _ = input.focus();
        }
    };
    // typed text looked up with Enter, answered in the order it was typed
    let next_seq = StoredValue::new(0u64);
    let next_apply = StoredValue::new(0u64);
    let answers: StoredValue<std::collections::BTreeMap<u64, (String, Option<CatalogueItem>)>> =
        StoredValue::new(Default::default());
    let not_found: RwSignal<Option<String>> = RwSignal::new(None);
    let total = Memo::new(move |_| {
        lines.with(|ls| {
            Money::sum(ls.iter().filter_map(|l| l.item.unit_price.checked_mul_int(l.quantity).ok()))
                .unwrap_or(Money::ZERO)
        })
    });
    let send = {
        let pid = pid.clone();
        move || {
            if issue.pending().get_untracked() || lines.with_untracked(Vec::is_empty) {
                return;
            }
            let items = lines.with_untracked(|ls| {
                ls.iter()
                    .map(|l| BillLineInput {
                        code: Some(l.item.code.clone()),
                        name: None,
                        category: None,
                        unit: None,
                        quantity: l.quantity,
                        unit_price: None,
                    })
                    .collect()
            });
            let doc = doctor.get_untracked();
            issue.dispatch(CounterBill {
                patient_id: pid.clone(),
                department: department.get_untracked(),
                doctor: (!doc.trim().is_empty()).then_some(doc),
                items,
            });
        }
    };
    // issued: straight to the charge screen with this patient
    Effect::new({
        let pid = pid.clone();
        let navigate = navigate.clone();
        move |_| {
            if let Some(Ok(_)) = issue.value().get() {
                navigate(&format!("/charge?patient={}", enc(&pid)), Default::default());
            }
        }
    });
    // F2 issues the bill, as F2 pays on the charge screen
    {
        let send = send.clone();
        let handle = window_event_listener(leptos::ev::keydown, move |e| {
            if e.key() == "F2" {
                e.prevent_default();
                send();
            }
        });
        on_cleanup(move || handle.remove());
    }
    // Enter adds the item the typed text names, asked of the server for exactly that text (a
    // scanner types faster than the list below refreshes): the code itself, else the first match.
    // The field is cleared at once, so what the cashier types next is never lost to an answer
    // arriving late; answers are applied in the order the texts were typed, and a text that
    // names nothing comes back into the field with a note.
    let on_search_key = move |e: leptos::ev::KeyboardEvent| {
        if e.key() == "Enter" {
            e.prevent_default();
            let typed = q.get_untracked().trim().to_string();
            if typed.is_empty() {
                return;
            }
            q.set(String::new());
            not_found.set(None);
            let seq = next_seq.get_value();
            next_seq.set_value(seq + 1);
            leptos::task::spawn_local(async move {
                let pick = match search_catalogue(Some(typed.clone())).await {
                    Ok(items) => {
                        let want = typed.to_uppercase();
                        items
                            .iter()
                            .find(|i| i.enabled && i.code.to_uppercase() == want)
                            .or_else(|| items.iter().find(|i| i.enabled))
                            .cloned()
                    }
                    Err(_) => None,
                };
                answers.update_value(|a| {
                    a.insert(seq, (typed, pick));
                });
                loop {
                    let at = next_apply.get_value();
                    let Some((typed, pick)) = answers.try_update_value(|a| a.remove(&at)).flatten() else { break };
                    next_apply.set_value(at + 1);
                    match pick {
                        Some(item) => put(item),
                        None => {
                            if q.get_untracked().is_empty() {
                                q.set(typed.clone());
                            }
                            not_found.set(Some(typed));
                        }
                    }
                }
            });
        }
    };

    view! {
        <section class="panel bill-entry" aria-labelledby="entry-patient">
            <div class="charge-card-head">
                <h2 id="entry-patient">{patient.name.clone()}</h2>
                <span class="muted">{move || format!("{} {}", i18n.t("病历号", "MRN"), patient.mrn)}</span>
            </div>
            <div class="form form-inline">
                <div class="field">
                    <label for="entry-dep">{move || i18n.t("科室", "Department")}</label>
                    <select id="entry-dep" on:change=move |e| department.set(event_target_value(&e))>
                        {deps.iter().map(|d| {
                            let (zh, en, code) = (d.name_zh.clone(), d.name_en.clone(), d.code.clone());
                            view! { <option value=code>{move || if i18n.is_en() { en.clone() } else { zh.clone() }}</option> }
                        }).collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="entry-doctor">{move || i18n.t("开单医生", "Ordering doctor")}</label>
                    <input id="entry-doctor" maxlength="40" prop:value=move || doctor.get() on:input=move |e| doctor.set(event_target_value(&e))/>
                </div>
            </div>
            <div class="field grow">
                <label for="entry-q">{move || i18n.t("收费项目（编码或名称，回车添加）", "Charge item (code or name, Enter adds)")}</label>
                <input id="entry-q" node_ref=search_ref type="search" autocomplete="off" maxlength="40" autofocus
                    prop:value=move || q.get() on:input=move |e| q.set(event_target_value(&e)) on:keydown=on_search_key/>
                {move || not_found.get().map(|t| view! {
                    <p class="alert alert-error" role="alert">{move || i18n.t("没有找到收费项目：", "No charge item matches: ")}<code>{t.clone()}</code></p>
                })}
            </div>
            <Transition fallback=|| ()>
                {move || found.get().map(|r| match r {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(items) => view! {
                        <ul class="picker" aria-label=move || i18n.t("匹配的收费项目", "Matching charge items")>
                            {items.into_iter().filter(|i| i.enabled).take(8).map(|item| {
                                let label = format!("{} {} · {}/{}", item.code, item.name, item.unit_price.display(), item.unit);
                                let it = item.clone();
                                view! { <li><button type="button" class="btn btn-small" on:click=move |_| add(it.clone())>{label}</button></li> }
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                })}
            </Transition>
            <table class="table" aria-label=move || i18n.t("账单明细", "Bill lines")>
                <thead><tr>
                    <th scope="col">{move || i18n.t("编码", "Code")}</th>
                    <th scope="col">{move || i18n.t("项目", "Item")}</th>
                    <th scope="col" class="num">{move || i18n.t("单价", "Unit price")}</th>
                    <th scope="col" class="num">{move || i18n.t("数量", "Qty")}</th>
                    <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                    <th scope="col"></th>
                </tr></thead>
                <tbody>
                    <For each=move || lines.get() key=|l| l.item.code.clone() let:l>
                        {
                            let code = l.item.code.clone();
                            let (c1, c2) = (code.clone(), code.clone());
                            let amount = move || {
                                lines.with(|ls| ls.iter().find(|x| x.item.code == c1).and_then(|x| x.item.unit_price.checked_mul_int(x.quantity).ok()))
                                    .unwrap_or(Money::ZERO)
                            };
                            let label = format!("{} {}", i18n.t("数量", "Quantity"), l.item.name);
                            view! { <tr>
                                <td><code>{l.item.code.clone()}</code></td>
                                <td>{l.item.name.clone()}</td>
                                <td class="num"><Amount value=l.item.unit_price/></td>
                                <td class="num">
                                    // typed quantities count at once (F2 may come before the field is left)
                                    <input type="number" class="qty" min="1" max="100000" aria-label=label
                                        prop:value=move || lines.with(|ls| ls.iter().find(|x| x.item.code == code).map(|x| x.quantity.to_string()).unwrap_or_default())
                                        on:input=move |e| {
                                            if let Ok(n) = event_target_value(&e).trim().parse::<i64>() {
                                                let n = n.clamp(1, clinicpay::intake::MAX_QUANTITY);
                                                lines.update(|ls| if let Some(x) = ls.iter_mut().find(|x| x.item.code == c2) { x.quantity = n; });
                                            }
                                        }/>
                                </td>
                                <td class="num">{move || view! { <Amount value=amount()/> }}</td>
                                <td><button type="button" class="btn btn-small" on:click={
                                    let code = l.item.code.clone();
                                    move |_| lines.update(|ls| ls.retain(|x| x.item.code != code))
                                }>
                                    {move || i18n.t("删除", "Remove")}
                                </button></td>
                            </tr> }
                        }
                    </For>
                </tbody>
            </table>
            {move || lines.with(Vec::is_empty).then(|| view! {
                <p class="hint">{move || i18n.t("还没有项目：输入编码或名称后按回车。", "No items yet: type a code or name and press Enter.")}</p>
            })}
            <p class="charge-total">
                {move || i18n.t("合计", "Total")}" "<strong data-testid="entry-total">{move || view! { <Amount value=total.get()/> }}</strong>
            </p>
            <p class="page-actions">
                <button type="button" class="btn btn-primary"
                    disabled=move || lines.with(Vec::is_empty) || issue.pending().get()
                    on:click={ let send = send.clone(); move |_| send() }>
                    {move || i18n.t("开具账单并收费 (F2)", "Issue and charge (F2)")}
                </button>
            </p>
            {move || issue.value().get().and_then(|r| r.err()).map(|e| view! {
                <p class="alert alert-error" role="alert">{error_line(i18n, &e)}</p>
            })}
        </section>
    }
}
