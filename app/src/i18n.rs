//! Simplified Chinese and English (P5). Texts sit where they are used, as pairs:
//! `i18n.t("今日收入", "Today's takings")`. The choice is a cookie, so it survives reloads and
//! the server renders the right language from the first byte.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

pub const LANG_COOKIE: &str = "cp_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// From the request: the cookie if set, else the browser's first language, else Chinese.
    pub fn from_request(cookie_header: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(c) = cookie_header.and_then(|h| cookie_value(h, LANG_COOKIE)) {
            if let Some(l) = Lang::parse(&c) {
                return l;
            }
        }
        match accept_language {
            Some(al) if al.trim_start().to_ascii_lowercase().starts_with("en") => Lang::En,
            _ => Lang::Zh,
        }
    }
}

/// Reads one cookie from a `Cookie:` header.
pub fn cookie_value(header: &str, name: &str) -> Option<String> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

#[derive(Clone, Copy)]
pub struct I18n {
    pub lang: RwSignal<Lang>,
}

impl I18n {
    /// Reactive: re-runs when the language changes.
    pub fn t(&self, zh: &'static str, en: &'static str) -> &'static str {
        match self.lang.get() {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn is_en(&self) -> bool {
        self.lang.get() == Lang::En
    }

    /// Picks between two owned strings (e.g. a department's two names).
    pub fn pick(&self, zh: &str, en: &str) -> String {
        match self.lang.get() {
            Lang::Zh => zh.to_string(),
            Lang::En => en.to_string(),
        }
    }
}

pub fn use_i18n() -> I18n {
    use_context::<I18n>().expect("I18n is provided by App")
}

/// Known error codes in both languages; the server's English message is the fallback.
pub fn error_text(code: &str, lang: Lang) -> Option<&'static str> {
    let (zh, en) = match code {
        "bad_credentials" => ("用户名或密码错误", "Wrong user name or password"),
        "missing_credentials" => ("请输入用户名和密码", "Enter your user name and password"),
        "too_many_requests" => ("尝试次数过多，请稍后再试", "Too many attempts; please try again later"),
        "account_disabled" => ("该账号已停用，请联系管理员", "This account is disabled; ask an administrator"),
        "demo_user_refused" => ("生产环境不允许演示账号登录", "Demo accounts cannot log in to a production system"),
        "unauthenticated" => ("请先登录", "Please log in"),
        "forbidden" => ("您的角色无权执行此操作", "Not allowed for your role"),
        "not_found" => ("未找到", "Not found"),
        "bad_id" => ("编号格式不正确", "Malformed id"),
        "bad_query" => ("查询条件不正确", "Invalid search"),
        "bad_filter" => ("查询条件不正确", "Invalid search"),
        "key_missing" => ("缺少密钥", "No key was given"),
        "key_encrypted" => {
            ("密钥有密码保护，请导出不带密码的密钥", "The key is password-protected: export it without a password")
        }
        "key_is_certificate" => ("这是证书，不是密钥，请填写密钥", "This is a certificate, not a key"),
        "key_is_public" => ("这是公钥，此处需要您的私钥", "This is a public key: this field needs your private key"),
        "key_is_private" => (
            "这是私钥！切勿填在此处，此处需要渠道的公钥",
            "This is a PRIVATE key: never put it here; this field needs the provider's public key",
        ),
        "key_unreadable" => {
            ("无法识别的密钥（应为 PEM 或 base64 的 RSA 密钥）", "Not a readable RSA key (PEM or base64)")
        }
        "key_too_short" => {
            ("密钥不足 2048 位，RSA2 至少需要 2048 位", "The key is shorter than 2048 bits; RSA2 needs at least 2048")
        }
        "field_missing" => ("必填项未填写", "Required"),
        "missing_field" => ("必填项未填写", "A required field is empty"),
        "text_too_long" => ("内容过长", "Too long"),
        "bad_text" => ("内容含有不可见的控制字符", "Contains control characters"),
        "bad_mrn" => ("病历号应为 6–12 位数字", "The record number is 6–12 digits"),
        "mrn_taken" => ("该病历号已属于其他患者", "That record number belongs to another patient"),
        "bad_gender" => ("性别应为男、女或未知", "Sex is male, female or unknown"),
        "bad_date" => ("日期格式应为 年-月-日", "A date as YYYY-MM-DD"),
        "bad_phone" => ("电话号码应为 5–20 位数字", "A phone number is 5–20 digits"),
        "bad_id_card" => {
            ("身份证号不正确（18 位，校验位不符）", "Not a valid ID card number (18 characters, check digit)")
        }
        "bad_code" => ("编码格式不正确", "Malformed code"),
        "no_items" => ("账单至少需要一个项目", "A bill needs at least one item"),
        "too_many_items" => ("一张账单最多 200 个项目", "At most 200 lines on one bill"),
        "bad_quantity" => ("数量应为 1–100000 的整数", "Quantities are whole numbers from 1 to 100,000"),
        "bad_amount" => ("金额应为大于零、最多两位小数的数字", "An amount above zero with at most two decimals"),
        "amount_too_large" => ("金额过大，请核对", "The amount is too large; check it"),
        "unknown_item" => ("收费项目不存在", "No such charge item"),
        "item_disabled" => ("该收费项目已停用", "That charge item is disabled"),
        "duplicate_item" => ("同一项目重复，请合并数量", "The same item twice: put the whole quantity on one line"),
        "unknown_department" => ("科室不存在", "No such department"),
        "department_disabled" => ("该科室已停用", "That department is disabled"),
        "unknown_patient" => ("患者不存在", "No such patient"),
        "bill_in_session" => ("该账单正在支付中，请先取消二维码", "The bill is being paid: cancel the QR first"),
        "bill_paid" => ("该账单已支付，请走退款", "The bill is paid: refund it instead"),
        "day_not_over" => ("只能对已经结束的日期日结", "Only a day that has ended can be closed"),
        "day_closed" => {
            ("该日已日结锁定，不能再记入（请检查服务器时钟）", "That day is closed and locked (check the server clock)")
        }
        "day_already_closed" => ("该日已日结并锁定", "This day is closed and locked already"),
        "day_has_differences" => (
            "对账单与账簿不一致：请填写异常说明后再日结",
            "The statements do not agree with our books: write an exception note to close the day",
        ),
        "day_figures_changed" => (
            "页面打开后又有记账，请核对新数字后再日结",
            "Entries were booked since the page was loaded: check the new figures",
        ),
        "bad_close_note" => ("说明最多 1000 个字", "The note must be at most 1000 characters"),
        "bad_float" => {
            ("备用金须为 0 至 10,000,000 元之间的金额", "The float must be an amount between ¥0 and ¥10,000,000")
        }
        "bad_counted_cash" => (
            "实点现金须为 0 至 10,000,000 元之间的金额",
            "The cash counted must be an amount between ¥0 and ¥10,000,000",
        ),
        "bad_shift_id" => ("不是有效的班次编号", "Not a shift id"),
        "shift_already_open" => ("您已有未交班的班次，请先交班", "You have an open shift already: hand it over first"),
        "shift_not_open" => ("该班次已交班", "This shift is closed already"),
        "shift_not_yours" => ("只有开班的收费员本人可以交班", "Only the cashier who opened a shift closes it"),
        "shift_not_closed" => ("只能确认已交班的班次", "Only a shift that was handed over can be confirmed"),
        "shift_own_confirm" => (
            "交班须由下一位收费员或财务确认，不能自己确认",
            "The next cashier or finance confirms a handover, not the cashier who closed it",
        ),
        "shift_difference_needs_note" => (
            "实点现金与应有现金不符，请填写说明",
            "The cash counted differs from the cash expected: say why in the note",
        ),
        "bad_tendered" => (
            "实收金额须为以元计的金额，如 200 或 200.50",
            "The cash tendered is an amount in yuan, such as 200 or 200.50",
        ),
        "tendered_too_little" => ("实收金额少于应收金额", "The cash tendered is less than the amount due"),
        "tendered_implausible" => (
            "实收金额远超应收金额（找零超过 1 万元），请核对",
            "The cash tendered is far above the amount due (over ¥10,000 change): check the figure",
        ),
        "bad_pos_reference" => (
            "请填写 POS 签购单上的参考号（6–32 位字母或数字）",
            "Enter the reference number on the POS slip (6–32 letters or digits)",
        ),
        "bad_pos_terminal" => ("终端号为 1–16 位字母或数字", "The terminal number is 1–16 letters or digits"),
        "bad_card_last4" => ("卡号后四位须为 4 位数字", "The card's last four digits are four digits"),
        "pos_slip_used" => (
            "这张签购单的参考号已用于另一笔收款，请核对签购单",
            "This POS slip's reference number already paid other bills: check the slip",
        ),
        "bad_channel" => ("请选择现金或 POS 刷卡", "Choose cash or POS card"),
        "unknown_account" => ("没有这个科目", "No such account"),
        "bad_cursor" => ("翻页参数不正确", "Malformed page cursor"),
        "bill_not_paid" => ("账单未支付，不能退款", "The bill is not paid: nothing to refund"),
        "bill_void" => ("账单已作废，不能退款", "The bill is void: nothing to refund"),
        "bill_fully_refunded" => ("该账单已全额退款", "The bill is fully refunded already"),
        "refund_exceeds_paid" => ("退款金额超过可退金额", "The refund is more than what is left to refund"),
        "unknown_line" => ("所选明细不属于该账单", "An item line is not on this bill"),
        "repeated_line" => ("同一明细选了两次", "An item line is chosen twice"),
        "bad_reason" => ("请选择退款原因", "Choose a refund reason"),
        "bad_reason_text" => (
            "请填写退款说明（“其他”必填，最多 200 字）",
            "Write what happened (required for “other”, at most 200 characters)",
        ),
        "refund_pending" => {
            ("该账单已有待审批的退款，请先审批", "This bill has a refund waiting for approval; decide it first")
        }
        "line_already_refunded" => ("所选明细已在其他退款中", "An item line is in another refund already"),
        "refund_own_request" => (
            "不能审批自己提交的退款，请由其他财务人员审批",
            "You cannot approve your own request; another finance officer does",
        ),
        "refund_same_approver" => {
            ("第二次审批须由另一位财务人员完成", "The second approval must come from another finance officer")
        }
        "refund_not_waiting" => {
            ("该退款状态已变化，请刷新后查看", "The refund has changed meanwhile; reload and look again")
        }
        "refund_not_failed" => {
            ("只有退款失败的申请可以重试或人工退款", "Only a failed refund is sent again or paid by hand")
        }
        "bad_note" => ("请填写说明（最多 200 字）", "Write a note (at most 200 characters)"),
        "amount_mismatch" => ("所选明细合计与退款金额不符", "The item lines do not add up to the refund amount"),
        "void_needs_finance" => {
            ("金额超过收费员作废限额，请由财务作废", "Above the cashier's void limit: a finance officer voids it")
        }
        "bad_scope" => ("令牌用途不正确", "The scope is checkout or intake"),
        "bad_csv" => ("CSV 文件格式有误（引号未闭合）", "The CSV file is malformed (an unclosed quote)"),
        "bad_xlsx" => (
            "无法读取该 Excel 文件，请另存为 .xlsx 或 .csv",
            "That Excel file cannot be read: save it as .xlsx or .csv",
        ),
        "bad_encoding" => ("文件编码无法识别（应为 UTF-8 或 GBK）", "The file is neither UTF-8 nor GBK text"),
        "empty_file" => ("文件为空或只有表头", "The file is empty or has only the header"),
        "file_too_large" => ("文件超过 1 MB", "The file is larger than 1 MB"),
        "too_many_rows" => ("一个文件最多 5000 行", "At most 5,000 rows in one file"),
        "unknown_column" => ("表头中有无法识别的列", "The header has a column that is not known"),
        "missing_column" => ("表头缺少必填列", "The header lacks a required column"),
        "duplicate_column" => ("表头中同一列出现两次", "The same column twice in the header"),
        "duplicate_code" => ("编码与前面某行重复", "The same code as an earlier row"),
        "bad_enabled" => ("启用一栏应为 是/否", "Enabled is 是/否 (yes/no)"),
        "bad_endpoint_name" => ("名称应为 1–60 个字符", "The name is 1–60 characters"),
        "no_topics" => ("请至少选择一种事件", "Choose at least one event type"),
        "bad_topic" => ("事件类型不正确", "Unknown event type"),
        "stale_version" => ("已被他人修改，请刷新后重试", "Changed by someone else meanwhile: reload and try again"),
        "delivery_in_flight" => ("正在发送中，请稍后再看", "Being sent right now: look again in a few seconds"),
        "bad_url" => ("地址应以 http:// 或 https:// 开头", "An http(s) address"),
        "bad_serial_no" => ("证书序列号应为 8–64 位十六进制字符", "The serial number is 8–64 hexadecimal characters"),
        "bad_public_key_id" => {
            ("微信支付公钥 ID 以 PUB_KEY_ID_ 开头", "The WeChat Pay public key id starts with PUB_KEY_ID_")
        }
        "bad_apiv3_key" => ("APIv3 密钥应为 32 位字符", "The APIv3 key is 32 characters"),
        "bad_channel_config" => ("渠道配置不正确", "The channel configuration is not valid"),
        "bad_channel_name" => ("名称应为 1–60 个字符", "The name is 1–60 characters"),
        "username_taken" => ("用户名已被占用", "That user name is taken"),
        "bad_username" => (
            "用户名需为 3–32 位小写字母、数字或 . _ -，以字母开头",
            "User names are 3–32 lower-case letters, digits, '.', '_' or '-', starting with a letter",
        ),
        "password_too_short" | "password_too_long" => {
            ("密码长度需为 10–128 个字符", "Passwords must be 10 to 128 characters")
        }
        "cannot_disable_self" => ("不能停用自己的账号", "You cannot disable your own account"),
        "csrf" => ("请求来源不被允许", "Request origin not allowed"),
        "internal" => ("系统内部错误，请联系技术支持", "Internal error; please contact support"),
        "no_bills" => ("请至少选择一笔账单", "Choose at least one bill"),
        "too_many_bills" => ("一次选择的账单过多，请分次支付", "Too many bills for one payment; pay them in parts"),
        "duplicate_bill" => ("同一账单被选择了两次", "The same bill was chosen twice"),
        "bad_payment_method" => ("不支持的支付方式", "That payment method is not offered"),
        "bad_timeout" => ("二维码有效期不正确", "Invalid QR lifetime"),
        "bad_idempotency_key" => {
            ("请求编号格式不正确，请刷新页面后重试", "Malformed request key; reload the page and try again")
        }
        "no_channel" => {
            ("该支付方式尚未配置可用渠道，请联系管理员", "No channel is set up for this method; ask an administrator")
        }
        "unknown_channel" => ("支付渠道不存在", "Unknown channel"),
        "unknown_bill" => ("账单不存在", "That bill does not exist"),
        "bill_of_other_patient" => ("账单属于其他患者", "That bill belongs to another patient"),
        "bill_not_payable" => {
            ("账单已支付、已作废或已退款，不能再收费", "That bill is paid, void or refunded and cannot be charged")
        }
        "bill_in_active_session" => ("账单已在另一笔进行中的支付里", "That bill is already in an open payment"),
        "idempotency_key_reused" => {
            ("请求编号已被另一笔请求使用，请刷新页面", "That request key was used for another request; reload the page")
        }
        "session_not_pending" => {
            ("这笔支付已结束（已付款、已取消或已过期）", "This payment has already ended (paid, cancelled or expired)")
        }
        "session_not_paid" => ("这笔支付尚未付款，没有收据", "This payment is not paid: there is no receipt"),
        "refund_not_paid_back" => {
            ("这笔退款尚未退回，没有红字收据", "This refund has not gone back yet: there is no red receipt")
        }
        "provider_error" => (
            "支付渠道暂时无法处理，请稍后重试或换一种支付方式",
            "The provider could not do it now; try again or use another channel",
        ),
        "exception_already_decided" => ("该异常已被处理", "This exception has already been decided"),
        "conflict" => ("数据已被他人修改，请刷新后重试", "Someone else changed this; reload and try again"),
        _ => return None,
    };
    Some(match lang {
        Lang::Zh => zh,
        Lang::En => en,
    })
}

/// An error as one line for a form: the words in the page's language (or the server's
/// message when the code has none), then the code for support.
pub fn err_line(i18n: I18n, e: &crate::error::AppError) -> String {
    format!(
        "{} [{}]",
        error_text(&e.code, i18n.lang.get()).map(str::to_string).unwrap_or_else(|| e.message.clone()),
        e.code
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_language() {
        assert_eq!(Lang::from_request(Some("a=b; cp_lang=en"), None), Lang::En);
        assert_eq!(Lang::from_request(Some("cp_lang=zh"), Some("en-US")), Lang::Zh);
        assert_eq!(Lang::from_request(None, Some("en-GB,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_request(None, Some("zh-CN")), Lang::Zh);
        assert_eq!(Lang::from_request(Some("cp_lang=xx"), None), Lang::Zh);
    }
}
