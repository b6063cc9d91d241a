//! Roles and who may do what (PRODUCT.md S1).

use serde::{Deserialize, Serialize};
use std::fmt;

/// What an API token may call: the checkout API (sessions, QR codes, status) or the intake API
/// (the HIS pushing patients, departments, the catalogue and bills). Neither can use the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    Checkout,
    Intake,
}

impl TokenScope {
    pub const ALL: [TokenScope; 2] = [TokenScope::Checkout, TokenScope::Intake];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Checkout => "checkout",
            TokenScope::Intake => "intake",
        }
    }

    pub fn parse(s: &str) -> Option<TokenScope> {
        TokenScope::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            TokenScope::Checkout => "收费接口",
            TokenScope::Intake => "账单接入（HIS）",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            TokenScope::Checkout => "Checkout API",
            TokenScope::Intake => "Bill intake (HIS)",
        }
    }
}

crate::parse_from_string!(TokenScope, "token scope");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Cashier,
    Finance,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Cashier, Role::Finance, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cashier => "cashier",
            Role::Finance => "finance",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Role::Cashier => "收费员",
            Role::Finance => "财务",
            Role::Admin => "管理员",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Role::Cashier => "Cashier",
            Role::Finance => "Finance",
            Role::Admin => "Administrator",
        }
    }
}

crate::parse_from_string!(Role, "role");

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may call an operation. Every server function and API handler names one of these; the
/// table of server functions lives in `app::api::ACCESS` and is enforced before the function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// No login needed (login itself, language switch).
    Public,
    /// Any logged-in user.
    Staff,
    /// Front desk: cashiers, and finance who also take payments.
    Billing,
    /// Finance officers (and admins, who may look but the maker-checker rules still apply).
    Finance,
    /// Administrators only.
    Admin,
    /// Those who move money: cashiers and finance officers (administrators do not; R2).
    MoneyDesk,
    /// Finance officers only: approving a refund is theirs alone (R2).
    FinanceOfficer,
}

impl Access {
    pub fn allows(self, role: Option<Role>) -> bool {
        match (self, role) {
            (Access::Public, _) => true,
            (_, None) => false,
            (Access::Staff, Some(_)) => true,
            (Access::Billing, Some(r)) => matches!(r, Role::Cashier | Role::Finance | Role::Admin),
            (Access::Finance, Some(r)) => matches!(r, Role::Finance | Role::Admin),
            (Access::Admin, Some(r)) => r == Role::Admin,
            (Access::MoneyDesk, Some(r)) => matches!(r, Role::Cashier | Role::Finance),
            (Access::FinanceOfficer, Some(r)) => r == Role::Finance,
        }
    }
}

/// Usernames: 3–32 characters of `[a-z0-9._-]`, starting with a letter.
pub fn valid_username(s: &str) -> bool {
    (3..=32).contains(&s.len())
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

/// Passwords: at least 10 characters, at most 128.
pub fn password_problem(p: &str) -> Option<&'static str> {
    let n = p.chars().count();
    if n < 10 {
        Some("password_too_short")
    } else if n > 128 {
        Some("password_too_long")
    } else {
        None
    }
}

/// The logged-in staff member, as the UI and the services see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    /// The principal: a user id (`usr_…`), or an API token's id (`tok_…`) for integrations.
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_matrix() {
        assert!(Access::Public.allows(None));
        assert!(!Access::Staff.allows(None));
        assert!(Access::Billing.allows(Some(Role::Cashier)));
        assert!(!Access::Finance.allows(Some(Role::Cashier)));
        assert!(Access::Finance.allows(Some(Role::Finance)));
        assert!(!Access::Admin.allows(Some(Role::Finance)));
        assert!(Access::Admin.allows(Some(Role::Admin)));
        assert!(Access::MoneyDesk.allows(Some(Role::Cashier)) && Access::MoneyDesk.allows(Some(Role::Finance)));
        assert!(!Access::MoneyDesk.allows(Some(Role::Admin)) && !Access::MoneyDesk.allows(None));
        assert!(
            Access::FinanceOfficer.allows(Some(Role::Finance)) && !Access::FinanceOfficer.allows(Some(Role::Admin))
        );
    }

    #[test]
    fn usernames() {
        assert!(valid_username("cashier"));
        assert!(valid_username("zhang.san-2"));
        assert!(!valid_username("Zhang"));
        assert!(!valid_username("ab"));
        assert!(!valid_username("1abc"));
        assert!(!valid_username("a b c"));
        assert_eq!(password_problem("short"), Some("password_too_short"));
        assert_eq!(password_problem("long enough pw"), None);
    }
}
