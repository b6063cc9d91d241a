//! The intake rules: pricing, refusals with their field, re-sent bills, patients.

use super::*;
use std::collections::HashMap;

fn catalogue() -> HashMap<String, CatalogueItem> {
    let item = ChargeItemInput {
        code: "LAB-0012".into(),
        name: "血常规".into(),
        category: "lab".into(),
        unit: "次".into(),
        unit_price: "25.00".into(),
        national_code: Some("250101015".into()),
        enabled: None,
    }
    .check()
    .unwrap();
    HashMap::from([(item.code.clone(), item)])
}

fn bill() -> BillInput {
    BillInput {
        bill_id: "HIS-RX-1".into(),
        patient_id: "HIS-P-1".into(),
        department: "CARD".into(),
        doctor: Some("李医生".into()),
        visit_no: None,
        items: vec![
            BillLineInput {
                code: Some("LAB-0012".into()),
                name: None,
                category: None,
                unit: None,
                quantity: 2,
                unit_price: None,
            },
            BillLineInput {
                code: None,
                name: Some("阿莫西林胶囊".into()),
                category: Some("drug".into()),
                unit: Some("盒".into()),
                quantity: 1,
                unit_price: Some("18.60".into()),
            },
        ],
        total: Some("68.60".into()),
        replaces: None,
    }
}

#[test]
fn a_bill_is_priced_from_its_lines_and_the_catalogue() {
    let b = bill().check(&catalogue()).unwrap();
    assert_eq!(b.total.fen(), 6860);
    assert_eq!(b.lines[0].name, "血常规");
    assert_eq!(b.lines[0].amount.fen(), 5000);
    assert_eq!(b.lines[1].line_no, 2);
    assert!(b.differences(&b.clone()).is_empty());
}

#[test]
fn bad_bills_are_refused_with_the_field() {
    let cat = catalogue();
    let refuse = |f: &dyn Fn(&mut BillInput)| {
        let mut b = bill();
        f(&mut b);
        let e = b.check(&cat).unwrap_err();
        (e.code, e.field)
    };
    assert_eq!(refuse(&|b| b.total = Some("70.00".into())), ("total_mismatch", "total".into()));
    assert_eq!(refuse(&|b| b.items[1].quantity = -3), ("bad_quantity", "items[1].quantity".into()));
    assert_eq!(refuse(&|b| b.items[1].quantity = 1_000_000), ("bad_quantity", "items[1].quantity".into()));
    assert_eq!(refuse(&|b| b.items[1].unit_price = Some("-1".into())), ("bad_amount", "items[1].unit_price".into()));
    assert_eq!(refuse(&|b| b.items[1].unit_price = Some("1.005".into())), ("bad_amount", "items[1].unit_price".into()));
    assert_eq!(
        refuse(&|b| b.items[1].unit_price = Some("5000000".into())),
        ("amount_too_large", "items[1].unit_price".into())
    );
    assert_eq!(refuse(&|b| b.items[0].code = Some("NOPE".into())), ("unknown_item", "items[0].code".into()));
    assert_eq!(refuse(&|b| b.items.push(b.items[0].clone())), ("duplicate_item", "items[2].code".into()));
    assert_eq!(refuse(&|b| b.items.clear()), ("no_items", "items".into()));
    assert_eq!(refuse(&|b| b.bill_id = "has space".into()), ("bad_external_id", "bill_id".into()));
    assert_eq!(refuse(&|b| b.department = String::new()), ("bad_code", "department".into()));
    assert_eq!(refuse(&|b| b.replaces = Some("HIS-RX-1".into())), ("bad_replaces", "replaces".into()));
    assert_eq!(refuse(&|b| b.items[1].category = Some("food".into())), ("bad_category", "items[1].category".into()));
    assert_eq!(refuse(&|b| b.doctor = Some("a\u{0}b".into())), ("bad_text", "doctor".into()));
    assert_eq!(
        refuse(&|b| {
            b.items[1].unit_price = Some("999999.00".into());
            b.items[1].quantity = 100;
            b.total = None;
        }),
        ("amount_too_large", "total".into())
    );
}

#[test]
fn a_resent_bill_names_what_differs() {
    let cat = catalogue();
    let a = bill().check(&cat).unwrap();
    let mut changed = bill();
    changed.items[1].quantity = 2;
    changed.total = None;
    changed.department = "ORTH".into();
    let b = changed.check(&cat).unwrap();
    assert_eq!(b.differences(&a), vec!["department", "items[1].quantity", "total"]);
}

#[test]
fn identity_cards_are_checked_and_masked() {
    assert_eq!(check_id_card("id_card", "11010519491231002x").unwrap(), "11010519491231002X");
    assert_eq!(check_id_card("id_card", "110105194912310021").unwrap_err().code, "bad_id_card");
    assert_eq!(check_id_card("id_card", "1101051949").unwrap_err().code, "bad_id_card");
    assert_eq!(mask_id_card("11010519491231002X"), "110105********002X");
}

#[test]
fn patients_are_checked() {
    let p = PatientInput {
        patient_id: "HIS-P-1".into(),
        mrn: "200061".into(),
        name: " 王小明 ".into(),
        gender: "male".into(),
        birth_date: Some("1980-02-29".into()),
        phone: Some("138 1234 5678".into()),
        id_card: None,
    };
    let d = p.check().unwrap();
    assert_eq!((d.name.as_str(), d.gender, d.phone.as_str()), ("王小明", "男", "13812345678"));
    let bad = |f: &dyn Fn(&mut PatientInput)| {
        let mut q = p.clone();
        f(&mut q);
        q.check().unwrap_err().code
    };
    assert_eq!(bad(&|q| q.mrn = "12".into()), "bad_mrn");
    assert_eq!(bad(&|q| q.birth_date = Some("1981-02-29".into())), "bad_date");
    assert_eq!(bad(&|q| q.phone = Some("call me".into())), "bad_phone");
    assert_eq!(bad(&|q| q.gender = "x".into()), "bad_gender");
    assert_eq!(bad(&|q| q.name = " ".into()), "missing_field");
    assert_eq!(bad(&|q| q.name = "名".repeat(41)), "text_too_long");
}
