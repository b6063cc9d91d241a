//! Bills from the hospital's systems (issue 15, B1): what an HIS or the counter sends, checked
//! into domain values, and how a re-sent bill is compared with the one already issued.
//!
//! The input types are the wire format of the intake API as well (the server derives their
//! OpenAPI schemas), so there is one model: what the HIS sends is what is checked here. Every
//! refusal names the field it is about (`items[2].quantity`) and carries a stable code.

use crate::billing::{ItemCategory, Mrn};
use crate::money::Money;
use serde::{Deserialize, Serialize};

/// At most this many bills (or catalogue items) in one batch call.
pub const MAX_BATCH: usize = 500;
/// At most this many lines on one bill.
pub const MAX_LINES: usize = 200;
/// A unit price above ¥1,000,000.00 is taken for a typing or unit error.
pub const MAX_UNIT_PRICE_FEN: i64 = 100_000_000;
/// A bill above ¥10,000,000.00 is refused.
pub const MAX_BILL_TOTAL_FEN: i64 = 1_000_000_000;
/// Quantities are whole units, 1 to 100,000 (B1).
pub const MAX_QUANTITY: i64 = 100_000;

/// A refused input: a stable code, the field it is about and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { code, field: field.into(), message: message.into() }
    }
}

type Checked<T> = Result<T, FieldError>;

/// An id from the hospital's system: 1–64 of `A–Z a–z 0–9 . _ : -`.
pub fn check_external_id(field: &str, s: &str) -> Checked<String> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(FieldError::new("bad_external_id", field, "1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'"))
    }
}

/// A code (department, charge item): 1–32 of `A–Z a–z 0–9 . _ -`.
pub fn check_code(field: &str, s: &str) -> Checked<String> {
    let s = s.trim();
    let ok =
        (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(FieldError::new("bad_code", field, "1–32 characters of A–Z, a–z, 0–9, '.', '_' or '-'"))
    }
}

/// Free text shown to people: trimmed, `min..=max` characters, no control characters.
pub fn check_text(field: &str, s: &str, min: usize, max: usize) -> Checked<String> {
    let s = s.trim();
    let n = s.chars().count();
    if s.chars().any(char::is_control) {
        return Err(FieldError::new("bad_text", field, "must not contain control characters"));
    }
    if n < min || n > max {
        let what = if min == 0 { format!("at most {max} characters") } else { format!("{min}–{max} characters") };
        return Err(FieldError::new(if n < min { "missing_field" } else { "text_too_long" }, field, what));
    }
    Ok(s.to_string())
}

fn optional_text(field: &str, s: &Option<String>, max: usize) -> Checked<Option<String>> {
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => check_text(field, v, 1, max).map(Some),
    }
}

/// A price: a positive decimal string in yuan with at most two decimals, at most
/// [`MAX_UNIT_PRICE_FEN`].
pub fn check_price(field: &str, s: &str) -> Checked<Money> {
    let m = Money::parse(s.trim()).map_err(|_| {
        FieldError::new("bad_amount", field, "a decimal amount in yuan with at most two decimals, e.g. \"12.50\"")
    })?;
    if !m.is_positive() {
        return Err(FieldError::new("bad_amount", field, "must be more than zero"));
    }
    if m.fen() > MAX_UNIT_PRICE_FEN {
        return Err(FieldError::new("amount_too_large", field, "more than ¥1,000,000.00 for one unit"));
    }
    Ok(m)
}

/// The 18-character resident identity card number (GB 11643): 17 digits and a check
/// character (0–9 or X) computed by ISO 7064 MOD 11-2.
pub fn check_id_card(field: &str, s: &str) -> Checked<String> {
    let s = s.trim().to_ascii_uppercase();
    let b = s.as_bytes();
    let shape = b.len() == 18 && b[..17].iter().all(u8::is_ascii_digit) && (b[17].is_ascii_digit() || b[17] == b'X');
    if !shape {
        return Err(FieldError::new("bad_id_card", field, "18 characters: 17 digits and a check digit or X"));
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = b[..17].iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    if CHECK[(sum % 11) as usize] != b[17] {
        return Err(FieldError::new("bad_id_card", field, "the check character does not match the number"));
    }
    Ok(s)
}

/// `110105********123X`: the region and the last four, nothing of the birth date.
pub fn mask_id_card(s: &str) -> String {
    if s.len() != 18 || !s.is_ascii() {
        return "*".repeat(s.chars().count());
    }
    format!("{}********{}", &s[..6], &s[14..])
}

/// A phone number: 5–20 of digits, `+`, `-` and spaces (stored without the spaces).
pub fn check_phone(field: &str, s: &str) -> Checked<String> {
    let v: String = s.chars().filter(|c| *c != ' ').collect();
    let ok = (5..=20).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'+' || b == b'-')
        && v.bytes().filter(u8::is_ascii_digit).count() >= 5;
    if ok {
        Ok(v)
    } else {
        Err(FieldError::new("bad_phone", field, "5–20 digits (with + or - if needed)"))
    }
}

/// Sex as the hospital records it: `male` / `female` / `unknown` (男 / 女 / 未知 accepted).
pub fn check_gender(field: &str, s: &str) -> Checked<&'static str> {
    match s.trim() {
        "male" | "M" | "男" => Ok("男"),
        "female" | "F" | "女" => Ok("女"),
        "unknown" | "" | "未知" => Ok("未知"),
        _ => Err(FieldError::new("bad_gender", field, "male, female or unknown")),
    }
}

fn check_date(field: &str, s: &str) -> Checked<String> {
    let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| FieldError::new("bad_date", field, "a date as YYYY-MM-DD"))?;
    if d < chrono::NaiveDate::from_ymd_opt(1890, 1, 1).unwrap_or(d) {
        return Err(FieldError::new("bad_date", field, "before 1890"));
    }
    Ok(d.format("%Y-%m-%d").to_string())
}

fn check_category(field: &str, s: &str) -> Checked<ItemCategory> {
    ItemCategory::parse(s.trim()).ok_or_else(|| {
        FieldError::new("bad_category", field, "one of consultation, drug, exam, lab, treatment, material, bed")
    })
}

/// A patient as the HIS sends it (created or updated by its `patient_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PatientInput {
    /// The HIS's own id of the patient.
    #[cfg_attr(feature = "server", schema(example = "HIS-P-20061"))]
    pub patient_id: String,
    /// Medical record number (病历号), 6–12 digits, unique.
    #[cfg_attr(feature = "server", schema(example = "200061"))]
    pub mrn: String,
    #[cfg_attr(feature = "server", schema(example = "王小明"))]
    pub name: String,
    /// `male`, `female` or `unknown`.
    #[serde(default)]
    pub gender: String,
    /// YYYY-MM-DD.
    #[serde(default)]
    pub birth_date: Option<String>,
    /// Shown masked (`138****5678`).
    #[serde(default)]
    pub phone: Option<String>,
    /// Resident identity card number (身份证号): stored encrypted, shown masked.
    #[serde(default)]
    pub id_card: Option<String>,
}

/// A checked patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientData {
    pub external_id: Option<String>,
    pub mrn: String,
    pub name: String,
    pub gender: &'static str,
    pub birth_date: Option<String>,
    pub phone: String,
    pub id_card: Option<String>,
}

impl PatientInput {
    pub fn check(&self) -> Checked<PatientData> {
        let external_id = Some(check_external_id("patient_id", &self.patient_id)?);
        PatientData::check(
            external_id,
            &self.mrn,
            &self.name,
            &self.gender,
            &self.birth_date,
            &self.phone,
            &self.id_card,
        )
    }
}

impl PatientData {
    /// The rules for a patient, whoever registers them (the HIS or the counter).
    pub fn check(
        external_id: Option<String>,
        mrn: &str,
        name: &str,
        gender: &str,
        birth_date: &Option<String>,
        phone: &Option<String>,
        id_card: &Option<String>,
    ) -> Checked<PatientData> {
        let mrn = Mrn::parse(mrn)
            .map_err(|_| FieldError::new("bad_mrn", "mrn", "the medical record number is 6–12 digits"))?;
        Ok(PatientData {
            external_id,
            mrn: mrn.as_str().to_string(),
            name: check_text("name", name, 1, 40)?,
            gender: check_gender("gender", gender)?,
            birth_date: match birth_date.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(d) => Some(check_date("birth_date", d)?),
            },
            phone: match phone.as_deref().map(str::trim) {
                None | Some("") => String::new(),
                Some(p) => check_phone("phone", p)?,
            },
            id_card: match id_card.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(c) => Some(check_id_card("id_card", c)?),
            },
        })
    }
}

/// A department (科室), created or updated by its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DepartmentInput {
    #[cfg_attr(feature = "server", schema(example = "CARD"))]
    pub code: String,
    #[cfg_attr(feature = "server", schema(example = "心内科"))]
    pub name_zh: String,
    /// English name; the Chinese one when absent.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(example = "Cardiology"))]
    pub name_en: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentData {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

impl DepartmentInput {
    pub fn check(&self) -> Checked<DepartmentData> {
        let name_zh = check_text("name_zh", &self.name_zh, 1, 40)?;
        let name_en = optional_text("name_en", &self.name_en, 60)?.unwrap_or_else(|| name_zh.clone());
        Ok(DepartmentData { code: check_code("code", &self.code)?, name_zh, name_en })
    }
}

/// One entry of the charge-item catalogue (收费项目), created or updated by its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChargeItemInput {
    #[cfg_attr(feature = "server", schema(example = "LAB-0012"))]
    pub code: String,
    #[cfg_attr(feature = "server", schema(example = "血常规"))]
    pub name: String,
    /// consultation, drug, exam, lab, treatment, material or bed.
    #[cfg_attr(feature = "server", schema(example = "lab"))]
    pub category: String,
    #[cfg_attr(feature = "server", schema(example = "次"))]
    pub unit: String,
    /// Yuan, e.g. "25.00".
    #[cfg_attr(feature = "server", schema(example = "25.00"))]
    pub unit_price: String,
    /// The national medical service item code (医疗服务项目编码), when the HIS has it.
    #[serde(default)]
    pub national_code: Option<String>,
    /// A disabled item cannot be put on new bills; default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A catalogue entry, checked (also what the store gives back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueItem {
    pub code: String,
    pub name: String,
    pub category: ItemCategory,
    pub unit: String,
    pub unit_price: Money,
    pub national_code: Option<String>,
    pub enabled: bool,
}

impl ChargeItemInput {
    pub fn check(&self) -> Checked<CatalogueItem> {
        Ok(CatalogueItem {
            code: check_code("code", &self.code)?,
            name: check_text("name", &self.name, 1, 60)?,
            category: check_category("category", &self.category)?,
            unit: check_text("unit", &self.unit, 1, 10)?,
            unit_price: check_price("unit_price", &self.unit_price)?,
            national_code: match self.national_code.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(c) => Some(check_code("national_code", c)?),
            },
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

/// One line of a bill. With a `code` from the catalogue, the name, category, unit and price
/// default to the catalogue's; without one, all of them are needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BillLineInput {
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(example = "LAB-0012"))]
    pub code: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    /// Whole units, 1–100,000.
    #[cfg_attr(feature = "server", schema(example = 2))]
    pub quantity: i64,
    /// Yuan, e.g. "25.00"; the catalogue price when absent.
    #[serde(default)]
    pub unit_price: Option<String>,
}

/// A bill as the HIS sends it. Issued once per `bill_id`; the same id sent again with the same
/// content answers with the bill already issued, with other content it is refused (409).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BillInput {
    /// The HIS's own id of the bill.
    #[cfg_attr(feature = "server", schema(example = "HIS-RX-884213"))]
    pub bill_id: String,
    /// The HIS's id of the patient (sent before through the patients call).
    #[cfg_attr(feature = "server", schema(example = "HIS-P-20061"))]
    pub patient_id: String,
    /// The department's code.
    #[cfg_attr(feature = "server", schema(example = "CARD"))]
    pub department: String,
    /// The ordering doctor (开单医生).
    #[serde(default)]
    pub doctor: Option<String>,
    /// The visit (就诊) number.
    #[serde(default)]
    pub visit_no: Option<String>,
    pub items: Vec<BillLineInput>,
    /// The HIS's own total in yuan; when sent it must equal the sum of the lines.
    #[serde(default)]
    #[cfg_attr(feature = "server", schema(example = "50.00"))]
    pub total: Option<String>,
    /// The HIS id of the voided bill this one corrects.
    #[serde(default)]
    pub replaces: Option<String>,
}

/// One checked line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillLine {
    pub line_no: i32,
    pub code: Option<String>,
    pub category: ItemCategory,
    pub name: String,
    pub unit: Option<String>,
    pub quantity: i64,
    pub unit_price: Money,
    pub amount: Money,
}

/// Who the bill is for: the HIS's patient id, or our own (a bill typed at the counter).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatientKey {
    External(String),
    Ours(crate::ids::PatientId),
}

/// A checked bill, ready to issue; also what an issued bill is read back as to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillData {
    pub external_id: Option<String>,
    pub patient: PatientKey,
    pub department: String,
    pub doctor: Option<String>,
    pub visit_no: Option<String>,
    pub lines: Vec<BillLine>,
    pub total: Money,
    pub replaces: Option<String>,
}

/// Looks up catalogue entries by code while a bill is checked.
pub trait Catalogue {
    fn item(&self, code: &str) -> Option<&CatalogueItem>;
}

impl Catalogue for std::collections::HashMap<String, CatalogueItem> {
    fn item(&self, code: &str) -> Option<&CatalogueItem> {
        self.get(code)
    }
}

impl BillInput {
    /// The catalogue codes the lines name (to look them up before [`BillInput::check`]).
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|l| l.code.as_deref()).map(str::trim)
    }

    pub fn check(&self, catalogue: &dyn Catalogue) -> Checked<BillData> {
        let external_id = check_external_id("bill_id", &self.bill_id)?;
        let patient = check_external_id("patient_id", &self.patient_id)?;
        let replaces = match self.replaces.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) => Some(check_external_id("replaces", r)?),
        };
        if replaces.as_deref() == Some(external_id.as_str()) {
            return Err(FieldError::new("bad_replaces", "replaces", "a bill cannot replace itself"));
        }
        let total = match self.total.as_deref() {
            None => None,
            Some(t) => Some(Money::parse(t.trim()).map_err(|_| {
                FieldError::new("bad_amount", "total", "a decimal amount in yuan with at most two decimals")
            })?),
        };
        BillData::check(
            Some(external_id),
            PatientKey::External(patient),
            &self.department,
            &self.doctor,
            &self.visit_no,
            &self.items,
            total,
            replaces,
            catalogue,
        )
    }
}

impl BillData {
    /// The rules for a bill, whoever issues it (the HIS or the counter).
    pub fn check(
        external_id: Option<String>,
        patient: PatientKey,
        department: &str,
        doctor: &Option<String>,
        visit_no: &Option<String>,
        items: &[BillLineInput],
        stated_total: Option<Money>,
        replaces: Option<String>,
        catalogue: &dyn Catalogue,
    ) -> Checked<BillData> {
        let department = check_code("department", department)?;
        let doctor = optional_text("doctor", doctor, 40)?;
        let visit_no = match visit_no.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(check_external_id("visit_no", v)?),
        };
        if items.is_empty() {
            return Err(FieldError::new("no_items", "items", "a bill needs at least one item"));
        }
        if items.len() > MAX_LINES {
            return Err(FieldError::new("too_many_items", "items", format!("at most {MAX_LINES} lines on one bill")));
        }
        let mut lines: Vec<BillLine> = Vec::with_capacity(items.len());
        let mut total = Money::ZERO;
        for (i, it) in items.iter().enumerate() {
            let f = |name: &str| format!("items[{i}].{name}");
            let code = match it.code.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(c) => Some(check_code(&f("code"), c)?),
            };
            let known = match &code {
                Some(c) => Some(catalogue.item(c).ok_or_else(|| {
                    FieldError::new("unknown_item", f("code"), format!("no charge item {c:?} in the catalogue"))
                })?),
                None => None,
            };
            if let Some(k) = known {
                if !k.enabled {
                    return Err(FieldError::new(
                        "item_disabled",
                        f("code"),
                        format!("charge item {:?} is disabled", k.code),
                    ));
                }
            }
            let name = match (it.name.as_deref(), known) {
                (Some(n), _) if !n.trim().is_empty() => check_text(&f("name"), n, 1, 60)?,
                (_, Some(k)) => k.name.clone(),
                _ => {
                    return Err(FieldError::new(
                        "missing_field",
                        f("name"),
                        "a line without a catalogue code needs a name",
                    ))
                }
            };
            let category = match (it.category.as_deref(), known) {
                (Some(c), _) => check_category(&f("category"), c)?,
                (None, Some(k)) => k.category,
                (None, None) => {
                    return Err(FieldError::new(
                        "missing_field",
                        f("category"),
                        "a line without a catalogue code needs a category",
                    ))
                }
            };
            let unit = match (it.unit.as_deref().map(str::trim), known) {
                (Some(u), _) if !u.is_empty() => Some(check_text(&f("unit"), u, 1, 10)?),
                (_, Some(k)) => Some(k.unit.clone()),
                _ => None,
            };
            let unit_price = match (it.unit_price.as_deref(), known) {
                (Some(p), _) => check_price(&f("unit_price"), p)?,
                (None, Some(k)) => k.unit_price,
                (None, None) => {
                    return Err(FieldError::new(
                        "missing_field",
                        f("unit_price"),
                        "a line without a catalogue code needs a unit price",
                    ))
                }
            };
            if !(1..=MAX_QUANTITY).contains(&it.quantity) {
                return Err(FieldError::new(
                    "bad_quantity",
                    f("quantity"),
                    format!("whole units from 1 to {MAX_QUANTITY}"),
                ));
            }
            let duplicate = lines.iter().position(|l| match (&l.code, &code) {
                (Some(a), Some(b)) => a == b,
                (None, None) => l.name == name && l.unit_price == unit_price,
                _ => false,
            });
            if let Some(j) = duplicate {
                return Err(FieldError::new(
                    "duplicate_item",
                    f("code"),
                    format!("the same item as items[{j}]; send one line with the whole quantity"),
                ));
            }
            let too_large = || FieldError::new("amount_too_large", "total", "more than ¥10,000,000.00 on one bill");
            let amount = unit_price.checked_mul_int(it.quantity).map_err(|_| too_large())?;
            total = total.checked_add(amount).map_err(|_| too_large())?;
            if total.fen() > MAX_BILL_TOTAL_FEN {
                return Err(too_large());
            }
            lines.push(BillLine {
                line_no: i as i32 + 1,
                code,
                category,
                name,
                unit,
                quantity: it.quantity,
                unit_price,
                amount,
            });
        }
        if let Some(t) = stated_total {
            if t != total {
                return Err(FieldError::new(
                    "total_mismatch",
                    "total",
                    format!("the lines add up to {} but the total says {}", total.plain(), t.plain()),
                ));
            }
        }
        Ok(BillData { external_id, patient, department, doctor, visit_no, lines, total, replaces })
    }

    /// What differs between this bill and one already issued under the same id, as field
    /// paths (`items[1].quantity`); empty when they are the same bill.
    pub fn differences(&self, issued: &BillData) -> Vec<String> {
        let mut d = Vec::new();
        if self.patient != issued.patient {
            d.push("patient_id".to_string());
        }
        if self.department != issued.department {
            d.push("department".to_string());
        }
        if self.doctor != issued.doctor {
            d.push("doctor".to_string());
        }
        if self.visit_no != issued.visit_no {
            d.push("visit_no".to_string());
        }
        if self.replaces != issued.replaces {
            d.push("replaces".to_string());
        }
        if self.lines.len() != issued.lines.len() {
            d.push("items".to_string());
        } else {
            for (i, (a, b)) in self.lines.iter().zip(&issued.lines).enumerate() {
                let fields = [
                    ("code", a.code != b.code),
                    ("name", a.name != b.name),
                    ("category", a.category != b.category),
                    ("unit", a.unit != b.unit),
                    ("quantity", a.quantity != b.quantity),
                    ("unit_price", a.unit_price != b.unit_price),
                ];
                d.extend(fields.iter().filter(|(_, differ)| *differ).map(|(name, _)| format!("items[{i}].{name}")));
            }
        }
        if self.total != issued.total {
            d.push("total".to_string());
        }
        d
    }
}

mod answers;
pub mod import;
pub use answers::*;

/// A bill typed at the counter (a clinic without an HIS): for one of our patients, lines
/// picked from the catalogue (or typed in full).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterBill {
    /// Our id (`pat_…`).
    pub patient_id: String,
    pub department: String,
    #[serde(default)]
    pub doctor: Option<String>,
    pub items: Vec<BillLineInput>,
}

/// A patient registered at the counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterPatient {
    pub mrn: String,
    pub name: String,
    #[serde(default)]
    pub gender: String,
    #[serde(default)]
    pub birth_date: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub id_card: Option<String>,
}

/// A cashier voids a bill up to this amount on their own; above it a finance officer does.
pub const COUNTER_VOID_LIMIT_FEN: i64 = 50_000;

/// A reason given for voiding a bill: 2–200 characters.
pub fn check_void_reason(s: &str) -> Checked<String> {
    check_text("reason", s, 2, 200)
}

#[cfg(test)]
mod tests;
