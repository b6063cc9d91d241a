//! The phone-sized payer pages of the sandboxes (what a patient's phone shows after scanning).

use clinicpay::money::Money;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

pub struct PayerPage<'a> {
    /// e.g. "支付宝 · Alipay".
    pub brand: &'a str,
    /// Accent colour of the brand.
    pub color: &'a str,
    pub merchant: &'a str,
    pub subject: &'a str,
    pub amount: Money,
    /// A line about the trade's state ("Waiting for payment", "Paid", …).
    pub status: &'a str,
    /// Form action for "Pay" (None when the trade can no longer be paid).
    pub pay_action: Option<String>,
    pub cancel_action: Option<String>,
    /// Extra form fields inside the pay form (the bank page asks for a card number), raw HTML.
    pub pay_fields_html: String,
    pub pay_label: &'a str,
}

pub fn render(p: &PayerPage) -> String {
    let pay = p.pay_action.as_ref().map(|a| {
        format!(
            r#"<form method="post" action="{a}" class="pay">{fields}<button type="submit" class="primary" style="background:{c}">{label}</button></form>"#,
            a = esc(a),
            fields = p.pay_fields_html,
            c = p.color,
            label = esc(p.pay_label),
        )
    });
    let cancel = p.cancel_action.as_ref().map(|a| {
        format!(
            r#"<form method="post" action="{}"><button type="submit" class="secondary">取消 Cancel</button></form>"#,
            esc(a)
        )
    });
    format!(
        r#"<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{brand} · {amount}</title>
<style>
body{{margin:0;font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;background:#f2f3f5;color:#1c2430}}
.bar{{background:{c};color:#fff;padding:14px 16px;font-weight:700;font-size:17px}}
.sandbox{{float:right;font-weight:400;font-size:12px;background:rgba(255,255,255,.25);padding:2px 8px;border-radius:10px}}
.card{{background:#fff;margin:16px;border-radius:12px;padding:20px;box-shadow:0 1px 3px rgba(0,0,0,.08)}}
.merchant{{color:#56606e;font-size:14px}} .subject{{margin-top:4px;font-size:15px}}
.amount{{font-size:34px;font-weight:700;margin:14px 0 6px;font-variant-numeric:tabular-nums}}
.status{{color:#56606e;font-size:14px;margin-bottom:16px}}
button{{width:100%;min-height:48px;border-radius:8px;font-size:17px;font-weight:600;cursor:pointer;margin-top:10px}}
.primary{{color:#fff;border:0}} .secondary{{background:#fff;border:1px solid #c8ced6;color:#1c2430}}
label{{display:block;font-size:13px;color:#56606e;margin-top:10px}} input{{width:100%;box-sizing:border-box;min-height:42px;font-size:16px;padding:6px 10px;border:1px solid #c8ced6;border-radius:8px}}
</style></head>
<body><div class="bar">{brand}<span class="sandbox">沙箱 Sandbox</span></div>
<main class="card"><div class="merchant">{merchant}</div><div class="subject">{subject}</div>
<div class="amount" data-testid="amount">{amount}</div><div class="status" role="status">{status}</div>
{pay}{cancel}</main></body></html>"#,
        brand = esc(p.brand),
        c = p.color,
        merchant = esc(p.merchant),
        subject = esc(p.subject),
        amount = esc(&p.amount.display()),
        status = esc(p.status),
        pay = pay.unwrap_or_default(),
        cancel = cancel.unwrap_or_default(),
    )
}
