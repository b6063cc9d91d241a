//! The charge screen's words: codes from the server and the providers, said in the cashier's
//! language (never a raw code on its own).

use crate::error::AppError;
use crate::i18n::{error_text, I18n};
use clinicpay::checkout::PayerNote;
use clinicpay::payments::{Provider, SessionStatus};
use leptos::prelude::*;

pub fn provider_label(i18n: I18n, p: Provider) -> &'static str {
    if i18n.is_en() {
        p.label_en()
    } else {
        p.label_zh()
    }
}

pub fn err_text(i18n: I18n, e: &AppError) -> String {
    // a code without a translation shows the generic sentence, never the server's English
    // inside a Chinese screen
    let base = error_text(&e.code, i18n.lang.get()).map(str::to_string).unwrap_or_else(|| {
        if i18n.is_en() {
            e.message.clone()
        } else {
            "操作未完成，请重试或联系技术支持".to_string()
        }
    });
    format!("{base} [{}]", e.code)
}

/// A provider's failure code for the payer's attempt, in words, with what to do next.
pub fn payer_note_text(i18n: I18n, n: &PayerNote) -> String {
    let (zh, en) = match n.code.as_str() {
        "CARD_DECLINED" => ("银行卡被拒绝", "The card was declined"),
        "INSUFFICIENT_FUNDS" => ("卡内余额不足", "Insufficient funds on the card"),
        "EXPIRED_CARD" | "CARD_EXPIRED" => ("银行卡已过期", "The card has expired"),
        "WRONG_PASSWORD" | "PASSWORD_ERROR" => ("支付密码错误", "Wrong payment password"),
        _ => ("渠道拒绝了这次付款", "The provider refused this attempt"),
    };
    let at = clinicpay::time::fmt_second(n.at_ms);
    if i18n.is_en() {
        format!(
            "Payment failed at {at}: {en} ({}). Ask for another card or another channel; this QR is still valid.",
            n.code
        )
    } else {
        format!("{at} 付款失败：{zh}（{}）。请患者换一张卡或换一种支付方式；二维码仍然有效。", n.code)
    }
}

/// What "check payment" found, in words.
pub fn check_text(i18n: I18n, answer: &str, at_ms: i64) -> String {
    let (zh, en) = match answer {
        "paid" => ("已付款，正在入账", "paid; booking it now"),
        "waiting" => ("患者已扫码，尚未付款", "the patient scanned but has not paid yet"),
        "not_scanned" => ("患者尚未扫码", "the patient has not scanned yet"),
        "closed" => ("渠道已关闭该订单", "the provider closed the order"),
        "not_pending" => ("该支付已结束", "this payment has already ended"),
        _ => ("渠道暂无明确答复，请稍后再查", "no clear answer from the provider; check again shortly"),
    };
    let at = clinicpay::time::fmt_second(at_ms);
    if i18n.is_en() {
        format!("Checked with the provider at {at}: {en}.")
    } else {
        format!("{at} 已向渠道查询：{zh}。")
    }
}

/// Why a session ended, in words (never the stored code).
pub fn end_text(i18n: I18n, status: SessionStatus, reason: Option<&str>) -> &'static str {
    match (status, reason) {
        (_, Some("closed_at_provider")) => i18n.t(
            "渠道已关闭该订单（付款人取消、多次付款失败或渠道超时），未收到付款。",
            "The provider closed the order (the payer cancelled, payment failed too often, or it timed out); nothing was paid.",
        ),
        (SessionStatus::Expired, _) => i18n.t("二维码已过期，未收到付款。", "The QR code expired; nothing was paid."),
        (SessionStatus::Cancelled, _) => i18n.t("收费员已取消，未收到付款。", "Cancelled at the counter; nothing was paid."),
        (SessionStatus::Closed, _) => i18n.t("已由新的二维码替换。", "Replaced by a new QR code."),
        _ => i18n.t("渠道未能创建这笔支付。", "The provider could not create this payment."),
    }
}
