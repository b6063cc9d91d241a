//! A receipt reprinted (补打收据): any paid payment, from the bill page; marked as a copy.

use crate::api::payment_status;
use crate::components::{ErrorView, Loading};
use crate::error::AppError;
use crate::i18n::use_i18n;
use crate::pages::charge::Receipt;
use clinicpay::payments::SessionStatus;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

#[component]
pub fn ReceiptPage() -> impl IntoView {
    let i18n = use_i18n();
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id")).unwrap_or_default());
    let data = Resource::new(move || id.get(), payment_status);
    view! {
        <div class="receipt-page">
            <Suspense fallback=|| view! { <Loading/> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <h1>{move || i18n.t("收据", "Receipt")}</h1><ErrorView err=e/> }.into_any(),
                        Ok(s) if s.status != SessionStatus::Paid => {
                            let err = AppError {
                                status: 409,
                                code: "session_not_paid".into(),
                                message: format!("payment {} is {}, not paid: there is no receipt", s.id, s.status),
                                detail: None,
                            };
                            view! { <h1>{move || i18n.t("收据", "Receipt")}</h1><ErrorView err/> }.into_any()
                        }
                        Ok(s) => {
                            let bill_links = s.bill_ids();
                            view! {
                                <Receipt session=s reprint=true/>
                                <div class="qr-actions no-print">
                                    <button type="button" class="btn btn-primary" on:click=move |_| print()>
                                        {move || i18n.t("打印收据", "Print receipt")}
                                    </button>
                                    {bill_links.into_iter().map(|b| view! {
                                        <a class="btn" href=format!("/bills/{b}")>{move || i18n.t("返回账单", "Back to the bill")}</a>
                                    }).take(1).collect_view()}
                                </div>
                            }.into_any()
                        }
                    }
                })}
            </Suspense>
        </div>
    }
}

/// The browser's print dialog (receipts print on their own: see the print stylesheet).
pub(crate) fn print() {
    #[cfg(feature = "hydrate")]
    if let Some(w) = web_sys::window() {
        let _ = w.print();
    }
}
