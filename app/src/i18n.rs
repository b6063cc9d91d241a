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
        _ => return None,
    };
    Some(match lang {
        Lang::Zh => zh,
        Lang::En => en,
    })
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
