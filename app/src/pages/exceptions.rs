//! Payment exceptions (C4): money that could not be allocated as asked, and what became of it.

use crate::api::{list_exceptions, DecideException};
use crate::components::{fmt_time, Amount, ErrorView, Loading};
use crate::i18n::{error_text, use_i18n};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

fn kind_label(kind: &str, en: bool) -> &'static str {
    match (kind, en) {
        ("late_payment", false) => "过期/取消后到账",
        ("late_payment", true) => "Paid after expiry or cancel",
        ("amount_mismatch", false) => "金额不符",
        ("amount_mismatch", true) => "Amount mismatch",
        ("bills_unavailable", false) => "账单已由其他方式支付",
        ("bills_unavailable", true) => "Bills already paid another way",
        ("refund_failed", false) => "退款失败",
        ("refund_failed", true) => "Refund failed",
        ("txn_conflict", false) => "交易号重复上报",
        ("txn_conflict", true) => "Transaction reported twice",
        (_, false) => "其他",
        (_, true) => "Other",
    }
}

fn status_label(status: &str, en: bool) -> &'static str {
    match (status, en) {
        ("open", false) => "待处理",
        ("open", true) => "Open",
        ("held", false) => "已挂起待决定",
        ("held", true) => "Held for a decision",
        ("refund_pending", false) => "退款中",
        ("refund_pending", true) => "Refund in progress",
        ("refunded", false) => "已原路退回",
        ("refunded", true) => "Refunded",
        ("resolved", false) => "已处理",
        ("resolved", true) => "Resolved",
        (_, _) => "?",
    }
}

/// What happened, in the reader's language. The stored `detail` is the server's record (English);
/// the cases the server writes are told from their kind and amounts, anything else shown as stored.
fn explain(x: &clinicpay::checkout::ExceptionView, en: bool) -> String {
    let amount = x.amount.display();
    match (x.kind.as_str(), x.expected) {
        ("late_payment", _) if en => {
            format!("{amount} arrived after the session had expired or been cancelled; kept as unallocated money")
        }
        ("late_payment", _) => format!("会话过期或取消后才到账 {amount}，已记为未分配款项"),
        ("amount_mismatch", Some(e)) if en => {
            format!(
                "the provider reports {amount} paid but the session is for {}; the session stays unpaid",
                e.display()
            )
        }
        ("amount_mismatch", Some(e)) => {
            format!("渠道报告实付 {amount}，但本次收费应付 {}；收费保持未支付", e.display())
        }
        ("txn_conflict", Some(e)) if en => format!(
            "the provider's transaction {} was already booked ({}) for another order or amount; \
             this report of {amount} was not booked — check it with the provider",
            x.provider_txn_id,
            e.display()
        ),
        ("txn_conflict", Some(e)) => format!(
            "渠道交易号 {} 已入账（{}），现又以其他订单或金额上报 {amount}；本次未入账，请与渠道核对",
            x.provider_txn_id,
            e.display()
        ),
        _ => x.detail.clone(),
    }
}

/// The resolution, in the reader's language where the server wrote it (an automatic refund);
/// a person's note is shown as they typed it.
fn resolution_text(x: &clinicpay::checkout::ExceptionView, en: bool) -> Option<String> {
    let r = x.resolution.as_ref()?;
    if x.status == clinicpay::checkout::ExceptionStatus::Refunded
        && r.starts_with("refunded ")
        && r.ends_with(" through the original channel")
    {
        let amount = x.amount.display();
        return Some(if en {
            format!("refunded {amount} through the original channel")
        } else {
            format!("已原路退回 {amount}")
        });
    }
    if let Some(err) = r.strip_prefix("automatic refund failed: ") {
        let err = err.trim_end_matches("; decide manually");
        return Some(if en {
            format!("automatic refund failed: {err}; decide manually")
        } else {
            format!("自动退款失败：{err}；请人工处理")
        });
    }
    Some(r.clone())
}

#[component]
pub fn ExceptionsPage() -> impl IntoView {
    let i18n = use_i18n();
    let query = use_query_map();
    let all = Memo::new(move |_| query.with(|q| q.get("all")).is_some());
    let decide = ServerAction::<DecideException>::new();
    let data = Resource::new(move || (all.get(), decide.version().get()), |(all, _)| list_exceptions(!all));
    view! {
        <h1>{move || i18n.t("支付异常", "Payment exceptions")}</h1>
        <p class="hint">
            {move || i18n.t("过期或取消后才到账的款项、金额不符的支付都记在这里，并按配置自动原路退回或挂起待决定。",
                "Money that arrived after a QR expired or was cancelled, or with the wrong amount, is recorded here and refunded automatically or held for a decision.")}
            " "
            {move || if all.get() {
                view! { <a href="/exceptions">{i18n.t("只看未结案", "Open only")}</a> }.into_any()
            } else {
                view! { <a href="/exceptions?all=1">{i18n.t("查看全部", "Show all")}</a> }.into_any()
            }}
        </p>
        {move || decide.value().get().and_then(|r| r.err()).map(|e| {
            let text = error_text(&e.code, i18n.lang.get()).map(str::to_string).unwrap_or(e.message.clone());
            view! { <p class="alert alert-error" role="alert">{text}</p> }
        })}
        <Suspense fallback=|| view! { <Loading/> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorView err=e/> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <section class="panel"><p class="empty">{move || i18n.t("没有异常。", "No exceptions.")}</p></section>
                    }.into_any(),
                    Ok(list) => view! {
                        <section class="panel">
                            <table class="table" aria-label=move || i18n.t("支付异常列表", "Exceptions")>
                                <thead><tr>
                                    <th scope="col">{move || i18n.t("时间", "When")}</th>
                                    <th scope="col">{move || i18n.t("类型", "Kind")}</th>
                                    <th scope="col">{move || i18n.t("患者", "Patient")}</th>
                                    <th scope="col">{move || i18n.t("渠道交易号", "Provider transaction")}</th>
                                    <th scope="col" class="num">{move || i18n.t("金额", "Amount")}</th>
                                    <th scope="col">{move || i18n.t("状态", "Status")}</th>
                                    <th scope="col">{move || i18n.t("说明与处理", "Detail and resolution")}</th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|x| {
                                        let kind = x.kind.as_str();
                                        let status = x.status.as_str();
                                        let status2 = x.status.as_str();
                                        let decidable = x.status.can_be_decided();
                                        let xid = x.id.to_string();
                                        let xid2 = x.id.to_string();
                                        view! { <tr data-testid="exception-row" data-kind=x.kind.as_str() data-status=x.status.as_str()>
                                            <td>{fmt_time(x.created_at_ms)}</td>
                                            <td>{move || kind_label(kind, i18n.is_en())}</td>
                                            <td>{x.patient_name.clone().unwrap_or_default()}</td>
                                            <td><code>{x.provider_txn_id.clone()}</code></td>
                                            <td class="num"><Amount value=x.amount/></td>
                                            <td><span class=format!("badge badge-exc-{status2}")>{move || status_label(status, i18n.is_en())}</span></td>
                                            <td>
                                                {
                                                    let (x1, x2) = (x.clone(), x.clone());
                                                    view! {
                                                        <div class="detail">{move || explain(&x1, i18n.is_en())}</div>
                                                        {move || resolution_text(&x2, i18n.is_en()).map(|r| view! { <div class="resolution">{r}</div> })}
                                                    }
                                                }
                                                {decidable.then(|| view! {
                                                    <div class="row-actions">
                                                        <ActionForm action=decide attr:class="inline">
                                                            <input type="hidden" name="exception_id" value=xid/>
                                                            <input type="hidden" name="action" value="refund"/>
                                                            <input type="hidden" name="note" value="原路退回 refunded on decision"/>
                                                            <button type="submit" class="btn btn-small">{move || i18n.t("原路退回", "Refund")}</button>
                                                        </ActionForm>
                                                        <ActionForm action=decide attr:class="inline">
                                                            <input type="hidden" name="exception_id" value=xid2/>
                                                            <input type="hidden" name="action" value="resolve"/>
                                                            <label class="sr-only" for="resolve-note">{move || i18n.t("处理说明", "Note")}</label>
                                                            <input name="note" required maxlength="200" placeholder=move || i18n.t("处理说明", "Note")/>
                                                            <button type="submit" class="btn btn-small">{move || i18n.t("结案", "Resolve")}</button>
                                                        </ActionForm>
                                                    </div>
                                                })}
                                            </td>
                                        </tr> }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicpay::checkout::{ExceptionKind, ExceptionStatus, ExceptionView};
    use clinicpay::ids::ExceptionId;
    use clinicpay::money::Money;
    use clinicpay::payments::Provider;

    fn exception(kind: &str, status: &str, detail: &str, resolution: Option<&str>) -> ExceptionView {
        ExceptionView {
            id: ExceptionId::from_u128(1),
            kind: ExceptionKind::parse(kind).unwrap(),
            session_id: None,
            patient_name: None,
            provider: Provider::Alipay,
            out_trade_no: "CP1".into(),
            provider_txn_id: "2026".into(),
            amount: Money::from_fen(42_960).unwrap(),
            expected: Some(Money::from_fen(40_000).unwrap()),
            status: ExceptionStatus::parse(status).unwrap(),
            detail: detail.into(),
            resolution: resolution.map(str::to_string),
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn the_servers_own_words_are_told_in_the_readers_language() {
        let late = exception(
            "late_payment",
            "refunded",
            "payment of ¥429.60 arrived after the session became cancelled; the money is kept as unallocated",
            Some("refunded ¥429.60 through the original channel"),
        );
        assert_eq!(explain(&late, false), "会话过期或取消后才到账 ¥429.60，已记为未分配款项");
        assert!(explain(&late, true).starts_with("¥429.60 arrived after the session"));
        assert_eq!(resolution_text(&late, false).as_deref(), Some("已原路退回 ¥429.60"));
        assert_eq!(resolution_text(&late, true).as_deref(), Some("refunded ¥429.60 through the original channel"));

        let mismatch = exception(
            "amount_mismatch",
            "open",
            "…",
            Some("automatic refund failed: ACQ.SYSTEM_ERROR; decide manually"),
        );
        assert_eq!(explain(&mismatch, false), "渠道报告实付 ¥429.60，但本次收费应付 ¥400.00；收费保持未支付");
        assert_eq!(resolution_text(&mismatch, false).as_deref(), Some("自动退款失败：ACQ.SYSTEM_ERROR；请人工处理"));

        let conflict = exception("txn_conflict", "open", "…", None);
        assert_eq!(kind_label("txn_conflict", false), "交易号重复上报");
        assert!(explain(&conflict, false).starts_with("渠道交易号 2026 已入账（¥400.00）"));
        assert!(explain(&conflict, true).contains("this report of ¥429.60 was not booked"));

        // a person's note and a kind the page has no words for are shown as written
        let other = exception("refund_failed", "resolved", "as stored", Some("已电话联系患者"));
        assert_eq!(explain(&other, false), "as stored");
        assert_eq!(resolution_text(&other, true).as_deref(), Some("已电话联系患者"));
    }
}
