//! Patients, departments, bills and their items; the bill status machine (PRODUCT.md B1).

use crate::ids::{BillId, DepartmentId, PatientId};
use crate::money::Money;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("a bill needs at least one item")]
    NoItems,
    #[error("item {line}: quantity must be between 1 and 100000")]
    BadQuantity { line: usize },
    #[error("item {line}: unit price must be positive")]
    BadUnitPrice { line: usize },
    #[error("item {line}: description must not be empty")]
    EmptyDescription { line: usize },
    #[error("amount overflow")]
    Overflow,
    #[error("bill status {from} cannot change to {to}")]
    Transition { from: BillStatus, to: BillStatus },
    #[error("malformed medical record number {0:?}: 6 to 12 digits")]
    BadMrn(String),
    #[error("malformed bill number {0:?}")]
    BadBillNo(String),
}

/// Bill status (B1). Amounts are fixed once issued; corrections are voids and re-issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillStatus {
    Unpaid,
    /// In an active payment session (a QR is out).
    Paying,
    Paid,
    PartiallyRefunded,
    Refunded,
    Void,
}

impl BillStatus {
    pub const ALL: [BillStatus; 6] = [
        BillStatus::Unpaid,
        BillStatus::Paying,
        BillStatus::Paid,
        BillStatus::PartiallyRefunded,
        BillStatus::Refunded,
        BillStatus::Void,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BillStatus::Unpaid => "unpaid",
            BillStatus::Paying => "paying",
            BillStatus::Paid => "paid",
            BillStatus::PartiallyRefunded => "partially_refunded",
            BillStatus::Refunded => "refunded",
            BillStatus::Void => "void",
        }
    }

    pub fn parse(s: &str) -> Option<BillStatus> {
        BillStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The allowed transitions of B1.
    pub fn can_become(self, to: BillStatus) -> bool {
        use BillStatus::*;
        matches!(
            (self, to),
            (Unpaid, Paying)
                | (Paying, Unpaid)
                | (Paying, Paid)
                | (Unpaid, Void)
                | (Paid, PartiallyRefunded)
                | (Paid, Refunded)
                | (PartiallyRefunded, PartiallyRefunded)
                | (PartiallyRefunded, Refunded)
        )
    }

    pub fn transition(self, to: BillStatus) -> Result<BillStatus, BillingError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(BillingError::Transition { from: self, to })
        }
    }

    /// Money is still owed on the bill.
    pub fn is_open(self) -> bool {
        matches!(self, BillStatus::Unpaid | BillStatus::Paying)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            BillStatus::Unpaid => "未支付",
            BillStatus::Paying => "支付中",
            BillStatus::Paid => "已支付",
            BillStatus::PartiallyRefunded => "部分退款",
            BillStatus::Refunded => "已退款",
            BillStatus::Void => "已作废",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            BillStatus::Unpaid => "Unpaid",
            BillStatus::Paying => "Paying",
            BillStatus::Paid => "Paid",
            BillStatus::PartiallyRefunded => "Partially refunded",
            BillStatus::Refunded => "Refunded",
            BillStatus::Void => "Void",
        }
    }
}

crate::parse_from_string!(BillStatus, "bill status");
crate::parse_from_string!(ItemCategory, "item category");

impl fmt::Display for BillStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemCategory {
    Consultation,
    Drug,
    Exam,
    Lab,
    Treatment,
    Material,
    Bed,
}

impl ItemCategory {
    pub const ALL: [ItemCategory; 7] = [
        ItemCategory::Consultation,
        ItemCategory::Drug,
        ItemCategory::Exam,
        ItemCategory::Lab,
        ItemCategory::Treatment,
        ItemCategory::Material,
        ItemCategory::Bed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemCategory::Consultation => "consultation",
            ItemCategory::Drug => "drug",
            ItemCategory::Exam => "exam",
            ItemCategory::Lab => "lab",
            ItemCategory::Treatment => "treatment",
            ItemCategory::Material => "material",
            ItemCategory::Bed => "bed",
        }
    }

    pub fn parse(s: &str) -> Option<ItemCategory> {
        ItemCategory::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            ItemCategory::Consultation => "诊疗费",
            ItemCategory::Drug => "药品",
            ItemCategory::Exam => "检查",
            ItemCategory::Lab => "化验",
            ItemCategory::Treatment => "治疗",
            ItemCategory::Material => "材料",
            ItemCategory::Bed => "床位",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            ItemCategory::Consultation => "Consultation",
            ItemCategory::Drug => "Drug",
            ItemCategory::Exam => "Exam",
            ItemCategory::Lab => "Lab test",
            ItemCategory::Treatment => "Treatment",
            ItemCategory::Material => "Material",
            ItemCategory::Bed => "Bed",
        }
    }
}

/// Medical record number (病历号): 6 to 12 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mrn(String);

impl Mrn {
    pub fn parse(s: &str) -> Result<Mrn, BillingError> {
        let s = s.trim();
        if (6..=12).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Mrn(s.to_string()))
        } else {
            Err(BillingError::BadMrn(s.chars().take(40).collect()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Bill number: `B` + `yyyymmdd` + `-` + 4 to 6 digits, e.g. `B20261122-0012`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BillNo(String);

impl BillNo {
    pub fn parse(s: &str) -> Result<BillNo, BillingError> {
        let s = s.trim();
        let ok = s.len() >= 14
            && s.len() <= 16
            && s.starts_with('B')
            && s.as_bytes()[9] == b'-'
            && s[1..9].bytes().all(|b| b.is_ascii_digit())
            && s[10..].bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(BillNo(s.to_string()))
        } else {
            Err(BillingError::BadBillNo(s.chars().take(40).collect()))
        }
    }

    pub fn new(date: chrono::NaiveDate, seq: u32) -> BillNo {
        BillNo(format!("B{}-{:04}", date.format("%Y%m%d"), seq))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Masks a phone number for lists: `138****5678`.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    pub id: DepartmentId,
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    pub id: PatientId,
    pub mrn: String,
    pub name: String,
    pub gender: String,
    pub birth_date: Option<String>,
    pub phone: String,
    pub created_at_ms: i64,
}

/// One line of a bill: quantity × unit price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillItem {
    pub line_no: i32,
    pub category: ItemCategory,
    pub description: String,
    pub quantity: i64,
    pub unit_price: Money,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bill {
    pub id: BillId,
    pub bill_no: String,
    pub patient_id: PatientId,
    pub department_id: DepartmentId,
    pub total: Money,
    pub status: BillStatus,
    pub refunded: Money,
    pub created_at_ms: i64,
    pub paid_at_ms: Option<i64>,
}

/// Input of one bill line, validated by [`price_items`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBillItem {
    pub category: ItemCategory,
    pub description: String,
    pub quantity: i64,
    pub unit_price: Money,
}

/// Validates bill lines and prices them; returns the lines and the bill total.
pub fn price_items(items: &[NewBillItem]) -> Result<(Vec<BillItem>, Money), BillingError> {
    if items.is_empty() {
        return Err(BillingError::NoItems);
    }
    let mut out = Vec::with_capacity(items.len());
    let mut total = Money::ZERO;
    for (i, it) in items.iter().enumerate() {
        let line = i + 1;
        if !(1..=100_000).contains(&it.quantity) {
            return Err(BillingError::BadQuantity { line });
        }
        if !it.unit_price.is_positive() {
            return Err(BillingError::BadUnitPrice { line });
        }
        if it.description.trim().is_empty() {
            return Err(BillingError::EmptyDescription { line });
        }
        let amount = it.unit_price.checked_mul_int(it.quantity).map_err(|_| BillingError::Overflow)?;
        total = total.checked_add(amount).map_err(|_| BillingError::Overflow)?;
        out.push(BillItem {
            line_no: line as i32,
            category: it.category,
            description: it.description.trim().to_string(),
            quantity: it.quantity,
            unit_price: it.unit_price,
            amount,
        });
    }
    Ok((out, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(q: i64, price: &str) -> NewBillItem {
        NewBillItem {
            category: ItemCategory::Drug,
            description: "阿莫西林胶囊".into(),
            quantity: q,
            unit_price: Money::parse(price).unwrap(),
        }
    }

    #[test]
    fn prices_lines_and_total() {
        let (lines, total) = price_items(&[item(3, "12.50"), item(1, "0.99")]).unwrap();
        assert_eq!(lines[0].amount.fen(), 3750);
        assert_eq!(lines[1].line_no, 2);
        assert_eq!(total.fen(), 3849);
    }

    #[test]
    fn rejects_bad_lines() {
        assert_eq!(price_items(&[]), Err(BillingError::NoItems));
        assert_eq!(price_items(&[item(0, "1")]), Err(BillingError::BadQuantity { line: 1 }));
        assert_eq!(price_items(&[item(1, "1"), item(1, "0")]), Err(BillingError::BadUnitPrice { line: 2 }));
    }

    #[test]
    fn status_machine() {
        use BillStatus::*;
        assert!(Unpaid.can_become(Paying));
        assert!(Paying.can_become(Paid));
        assert!(Paying.can_become(Unpaid));
        assert!(!Unpaid.can_become(Paid), "a bill is paid only through a payment session");
        assert!(!Paid.can_become(Unpaid));
        assert!(!Void.can_become(Unpaid));
        assert!(!Refunded.can_become(Paid));
        assert!(Paid.transition(Void).is_err());
        for s in BillStatus::ALL {
            assert_eq!(BillStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn numbers() {
        assert!(Mrn::parse("000123").is_ok());
        assert!(Mrn::parse("12a456").is_err());
        assert!(Mrn::parse("123").is_err());
        let no = BillNo::new(chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(), 12);
        assert_eq!(no.as_str(), "B20261122-0012");
        assert!(BillNo::parse("B20261122-0012").is_ok());
        assert!(BillNo::parse("B2026112-0012").is_err());
        assert!(BillNo::parse("X20261122-0012").is_err());
        assert_eq!(mask_phone("13812345678"), "138****5678");
    }
}
