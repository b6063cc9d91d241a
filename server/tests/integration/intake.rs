//! Bills from the hospital's systems (issue 15) over real HTTP on both backends: the HIS pushes
//! departments, the catalogue, a patient and bills with an intake-scope token; the counter's
//! API sees and collects them; re-sends are idempotent, conflicts name what differs, voids and
//! re-issues follow B1; every bad input is refused with its code and writes nothing.

use crate::checkout_http::{assert_books, trade, Api};
use crate::helpers::{backends, spawn_app, TestApp};
use clinicpay::auth::{Role, TokenScope};
use serde_json::{json, Value};
use server::sandbox::SandboxControl;

pub(crate) struct His {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl His {
    pub(crate) async fn new(app: &TestApp) -> His {
        let admin = app.services.store.user_by_username("admin").await.unwrap().unwrap().current();
        let (token, _) =
            app.services.create_api_token(&admin, "127.0.0.1", "his", Role::Cashier, TokenScope::Intake).await.unwrap();
        His { http: reqwest::Client::new(), base: app.base.clone(), token }
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r =
            self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Departments CARD and ORTH, two catalogue items, patient HIS-P-1.
    pub(crate) async fn setup(&self) -> String {
        let (s, v) = self
            .post(
                "/api/v1/intake/departments",
                json!({"departments": [
                    {"code": "CARD", "name_zh": "心内科", "name_en": "Cardiology"},
                    {"code": "ORTH", "name_zh": "骨科"}
                ]}),
            )
            .await;
        assert_eq!((s, v["refused"].as_u64()), (200, Some(0)), "{v}");
        let (s, v) = self
            .post(
                "/api/v1/intake/charge-items",
                json!({"items": [
                    {"code": "LAB-0012", "name": "血常规", "category": "lab", "unit": "次", "unit_price": "25.00", "national_code": "250101015"},
                    {"code": "DRUG-AMX", "name": "阿莫西林胶囊", "category": "drug", "unit": "盒", "unit_price": "18.60"}
                ]}),
            )
            .await;
        assert_eq!((s, v["created"].as_u64()), (200, Some(2)), "{v}");
        let (s, v) = self.post("/api/v1/intake/patients", patient()).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }
}

fn patient() -> Value {
    json!({"patient_id": "HIS-P-1", "mrn": "800001", "name": "王小明", "gender": "male",
           "birth_date": "1980-02-29", "phone": "13812345678", "id_card": "11010519491231002X"})
}

pub(crate) fn bill(id: &str) -> Value {
    json!({"bill_id": id, "patient_id": "HIS-P-1", "department": "CARD", "doctor": "李医生", "visit_no": "V-1",
           "items": [{"code": "LAB-0012", "quantity": 2}, {"code": "DRUG-AMX", "quantity": 1}],
           "total": "68.60"})
}

async fn counts(app: &TestApp) -> Vec<i64> {
    let db = crate::helpers::TestDb::attach(app).await;
    let mut out = Vec::new();
    for t in ["patients", "departments", "charge_items", "bills", "bill_items", "audit_log"] {
        out.push(db.scalar_i64(&format!("SELECT COUNT(*) FROM {t}")).await);
    }
    out
}

#[tokio::test]
async fn the_his_pushes_bills_and_the_counter_collects_them() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let his = His::new(&app).await;
        let counter = Api::new(&app, Role::Cashier).await;
        let pid = his.setup().await;

        // the patient: re-sent unchanged, then updated; the identity card sealed and masked
        let (s, v) = his.post("/api/v1/intake/patients", patient()).await;
        assert_eq!((s, v["result"].as_str()), (200, Some("unchanged")), "{v}");
        assert_eq!(v["id_card_masked"], "110105********002X");
        assert_eq!(v["phone_masked"], "138****5678");
        let mut p = patient();
        p["phone"] = json!("13900001111");
        p.as_object_mut().unwrap().remove("id_card");
        let (s, v) = his.post("/api/v1/intake/patients", p).await;
        assert_eq!((s, v["result"].as_str(), v["id"].as_str()), (200, Some("updated"), Some(pid.as_str())), "{v}");
        assert_eq!(v["id_card_masked"], "110105********002X", "left out = kept: {v}");
        let db = crate::helpers::TestDb::attach(&app).await;
        let leaked = db
            .scalar_i64("SELECT COUNT(*) FROM patients WHERE id_card_sealed LIKE '%19491231%' OR id_card_masked LIKE '%19491231%'")
            .await;
        assert_eq!(leaked, 0, "the identity card number is stored sealed");

        // a bill: issued once, re-sent unchanged, the same id with other content refused
        let (s, v) = his.post("/api/v1/intake/bills", bill("HIS-RX-1")).await;
        assert_eq!(s, 201, "{backend}: {v}");
        let b1 = v["bill"].clone();
        assert_eq!(
            (b1["total"].as_str(), b1["status"].as_str(), b1["lines"].as_u64()),
            (Some("68.60"), Some("unpaid"), Some(2))
        );
        assert!(b1["bill_no"].as_str().unwrap().starts_with('B'), "{b1}");
        let (s, v) = his.post("/api/v1/intake/bills", bill("HIS-RX-1")).await;
        assert_eq!((s, v["result"].as_str(), &v["bill"]["id"]), (200, Some("unchanged"), &b1["id"]), "{v}");
        let mut changed = bill("HIS-RX-1");
        changed["items"][1]["quantity"] = json!(3);
        changed.as_object_mut().unwrap().remove("total");
        let (s, v) = his.post("/api/v1/intake/bills", changed).await;
        assert_eq!((s, v["error"]["code"].as_str()), (409, Some("bill_conflict")), "{v}");
        assert_eq!(v["error"]["differences"], json!(["items[1].quantity", "total"]), "{v}");

        // the counter sees it among the patient's unpaid bills and opens a payment
        let unpaid = counter.unpaid(&pid).await;
        assert_eq!(unpaid, vec![b1["id"].as_str().unwrap().to_string()]);
        let sess = counter.open_session(&pid, &unpaid, "alipay").await;

        // voiding it while the QR is out is refused; after cancelling, the void goes through
        let (s, v) = his.post("/api/v1/intake/bills/HIS-RX-1/void", json!({"reason": "处方修改"})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (409, Some("bill_in_session")), "{v}");
        let sid = sess["session_id"].as_str().unwrap();
        let (s, v) = counter.post(&format!("/api/v1/finance/payment-sessions/{sid}/cancel"), json!({}), None).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = his.post("/api/v1/intake/bills/HIS-RX-1/void", json!({"reason": "处方修改"})).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("void")), "{v}");
        let (s, v) = his.post("/api/v1/intake/bills/HIS-RX-1/void", json!({"reason": "处方修改"})).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("void")), "voiding twice is the same void: {v}");
        let voids = db.scalar_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'bill_voided'").await;
        assert_eq!(voids, 1, "one void, one audit line");

        // the correction: a new bill that replaces the void one, once
        let mut fixed = bill("HIS-RX-2");
        fixed["items"][1]["quantity"] = json!(3);
        fixed["total"] = json!("105.80");
        fixed["replaces"] = json!("HIS-RX-1");
        let (s, v) = his.post("/api/v1/intake/bills", fixed).await;
        assert_eq!(s, 201, "{v}");
        let b2 = v["bill"].clone();
        let mut again = bill("HIS-RX-3");
        again["replaces"] = json!("HIS-RX-1");
        let (s, v) = his.post("/api/v1/intake/bills", again).await;
        assert_eq!((s, v["error"]["code"].as_str()), (409, Some("already_reissued")), "{v}");

        // the counter collects the re-issued bill; the HIS reads it back paid; void is refused
        let unpaid = counter.unpaid(&pid).await;
        assert_eq!(unpaid, vec![b2["id"].as_str().unwrap().to_string()]);
        let sess = counter.open_session(&pid, &unpaid, "alipay").await;
        assert_eq!(sess["total_amount"], "105.80", "{sess}");
        app.sandboxes.clone().unwrap().alipay.pay(&trade(&sess)).await.unwrap();
        counter.wait_status(sess["session_id"].as_str().unwrap(), "paid").await;
        let (s, v) = his.get("/api/v1/intake/bills/HIS-RX-2").await;
        assert_eq!((s, v["status"].as_str()), (200, Some("paid")), "{v}");
        let (s, v) = his.post("/api/v1/intake/bills/HIS-RX-2/void", json!({"reason": "不要了"})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (409, Some("bill_paid")), "{v}");
        assert_books(&app).await;

        // scopes: the counter's token cannot push bills, the HIS's cannot open payments
        let (s, _) = counter.post("/api/v1/intake/bills", bill("HIS-RX-9"), None).await;
        assert_eq!(s, 401);
        let (s, _) = his.get(&format!("/api/v1/finance/merged-payment/patient/{pid}/unpaid-bills")).await;
        assert_eq!(s, 401);
    }
}

#[tokio::test]
async fn batches_answer_per_bill_and_races_make_one_bill() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let his = His::new(&app).await;
        his.setup().await;
        let mut bills: Vec<Value> = (0..300).map(|i| bill(&format!("HIS-B-{i}"))).collect();
        bills[7]["department"] = json!("NOPE");
        bills[8]["items"][0]["quantity"] = json!(0);
        bills[9] = bill("HIS-B-0");
        let (s, v) = his.post("/api/v1/intake/bills/batch", json!({ "bills": bills })).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (v["created"].as_u64(), v["unchanged"].as_u64(), v["refused"].as_u64()),
            (Some(297), Some(1), Some(2)),
            "{v}"
        );
        let r = &v["results"];
        assert_eq!(r[7]["error"]["code"], "unknown_department");
        assert_eq!(r[8]["error"]["code"], "bad_quantity");
        assert_eq!(r[8]["error"]["field"], "items[0].quantity");
        assert_eq!(r[9]["result"], "unchanged");
        assert_eq!(r[9]["bill"]["id"], r[0]["bill"]["id"]);
        let nos: std::collections::HashSet<&str> =
            r.as_array().unwrap().iter().filter_map(|x| x["bill"]["bill_no"].as_str()).collect();
        assert_eq!(nos.len(), 297, "every bill its own number");
        let before = counts(&app).await;

        // too many in one call: refused whole, nothing written
        let many: Vec<Value> = (0..501).map(|i| bill(&format!("HIS-C-{i}"))).collect();
        let (s, v) = his.post("/api/v1/intake/bills/batch", json!({ "bills": many })).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("batch_too_large")), "{v}");
        assert_eq!(counts(&app).await, before);

        // the same bill sent by eight connections at once is one bill
        let sends = (0..8).map(|_| his.post("/api/v1/intake/bills", bill("HIS-RACE")));
        let answers = futures::future::join_all(sends).await;
        let ids: std::collections::HashSet<String> = answers
            .iter()
            .map(|(s, v)| {
                assert!(*s == 201 || *s == 200, "{backend}: {s} {v}");
                v["bill"]["id"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(ids.len(), 1, "{backend}: {answers:?}");
        assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 1);
    }
}

/// B1's bad input (issue 15): each refused with its code, the database unchanged.
#[tokio::test]
async fn bad_intake_is_refused_and_writes_nothing() {
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let his = His::new(&app).await;
        his.setup().await;
        let (s, _) = his.post("/api/v1/intake/bills", bill("HIS-OK")).await;
        assert_eq!(s, 201);
        let with = |f: &dyn Fn(&mut Value)| {
            let mut b = bill("HIS-BAD");
            f(&mut b);
            b
        };
        let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
            (
                "unknown patient",
                "/api/v1/intake/bills",
                with(&|b| b["patient_id"] = json!("HIS-P-404")),
                422,
                "unknown_patient",
            ),
            (
                "unknown department",
                "/api/v1/intake/bills",
                with(&|b| b["department"] = json!("ZZZ")),
                422,
                "unknown_department",
            ),
            (
                "unknown item",
                "/api/v1/intake/bills",
                with(&|b| b["items"][0]["code"] = json!("NOPE-1")),
                422,
                "unknown_item",
            ),
            (
                "negative quantity",
                "/api/v1/intake/bills",
                with(&|b| b["items"][0]["quantity"] = json!(-2)),
                400,
                "bad_quantity",
            ),
            (
                "absurd quantity",
                "/api/v1/intake/bills",
                with(&|b| b["items"][0]["quantity"] = json!(5_000_000)),
                400,
                "bad_quantity",
            ),
            (
                "negative price",
                "/api/v1/intake/bills",
                with(&|b| b["items"][0]["unit_price"] = json!("-25.00")),
                400,
                "bad_amount",
            ),
            (
                "absurd price",
                "/api/v1/intake/bills",
                with(&|b| b["items"][0]["unit_price"] = json!("2500000.00")),
                400,
                "amount_too_large",
            ),
            (
                "three decimals",
                "/api/v1/intake/bills",
                with(&|b| b["items"][0]["unit_price"] = json!("25.001")),
                400,
                "bad_amount",
            ),
            (
                "total differs from items",
                "/api/v1/intake/bills",
                with(&|b| b["total"] = json!("68.00")),
                400,
                "total_mismatch",
            ),
            (
                "duplicate item line",
                "/api/v1/intake/bills",
                with(&|b| b["items"][1]["code"] = json!("LAB-0012")),
                400,
                "duplicate_item",
            ),
            ("no items", "/api/v1/intake/bills", with(&|b| b["items"] = json!([])), 400, "no_items"),
            (
                "line without code or name",
                "/api/v1/intake/bills",
                with(&|b| b["items"][0] = json!({"quantity": 1})),
                400,
                "missing_field",
            ),
            (
                "unknown category",
                "/api/v1/intake/bills",
                with(&|b| b["items"][0]["category"] = json!("snacks")),
                400,
                "bad_category",
            ),
            (
                "bill id with spaces",
                "/api/v1/intake/bills",
                with(&|b| b["bill_id"] = json!("HIS BAD")),
                400,
                "bad_external_id",
            ),
            (
                "control character",
                "/api/v1/intake/bills",
                with(&|b| b["doctor"] = json!("李\u{0}医生")),
                400,
                "bad_text",
            ),
            ("unknown field", "/api/v1/intake/bills", with(&|b| b["toal"] = json!("68.60")), 400, "bad_json"),
            (
                "fractional quantity",
                "/api/v1/intake/bills",
                with(&|b| b["items"][0]["quantity"] = json!(1.5)),
                400,
                "bad_json",
            ),
            (
                "replaces an unpaid bill",
                "/api/v1/intake/bills",
                with(&|b| b["replaces"] = json!("HIS-OK")),
                409,
                "replaced_bill_not_void",
            ),
            (
                "replaces nothing",
                "/api/v1/intake/bills",
                with(&|b| b["replaces"] = json!("HIS-GONE")),
                422,
                "unknown_bill",
            ),
            (
                "same id, other content",
                "/api/v1/intake/bills",
                {
                    let mut b = bill("HIS-OK");
                    b["department"] = json!("ORTH");
                    b["total"] = Value::Null;
                    b
                },
                409,
                "bill_conflict",
            ),
            ("empty batch", "/api/v1/intake/bills/batch", json!({"bills": []}), 400, "empty_batch"),
            (
                "bad record number",
                "/api/v1/intake/patients",
                {
                    let mut p = patient();
                    p["patient_id"] = json!("HIS-P-2");
                    p["mrn"] = json!("12ab");
                    p
                },
                400,
                "bad_mrn",
            ),
            (
                "bad identity card",
                "/api/v1/intake/patients",
                {
                    let mut p = patient();
                    p["id_card"] = json!("110105194912310021");
                    p
                },
                400,
                "bad_id_card",
            ),
            (
                "record number of another patient",
                "/api/v1/intake/patients",
                {
                    let mut p = patient();
                    p["patient_id"] = json!("HIS-P-3");
                    p
                },
                409,
                "mrn_taken",
            ),
            (
                "bad phone",
                "/api/v1/intake/patients",
                {
                    let mut p = patient();
                    p["phone"] = json!("call me");
                    p
                },
                400,
                "bad_phone",
            ),
            (
                "bad birth date",
                "/api/v1/intake/patients",
                {
                    let mut p = patient();
                    p["birth_date"] = json!("1981-02-29");
                    p
                },
                400,
                "bad_date",
            ),
            ("void without reason", "/api/v1/intake/bills/HIS-OK/void", json!({"reason": ""}), 400, "missing_field"),
            (
                "void of an unknown bill",
                "/api/v1/intake/bills/HIS-NONE/void",
                json!({"reason": "错开"}),
                404,
                "not_found",
            ),
        ];
        let before = counts(&app).await;
        for (what, path, body, status, code) in &cases {
            let (s, v) = his.post(path, body.clone()).await;
            assert_eq!(s, *status, "{backend}: {what}: {v}");
            let got = v["error"]["code"].as_str().unwrap_or_default();
            assert_eq!(got, *code, "{backend}: {what}: {v}");
            assert_eq!(counts(&app).await, before, "{backend}: {what} wrote something");
        }
        // a catalogue batch answers per item: the good one written, the bad ones refused
        let (s, v) = his
            .post(
                "/api/v1/intake/charge-items",
                json!({"items": [
                    {"code": "EX-1", "name": "胸片", "category": "exam", "unit": "次", "unit_price": "80.00"},
                    {"code": "EX 2", "name": "CT", "category": "exam", "unit": "次", "unit_price": "300.00"},
                    {"code": "EX-3", "name": "MR", "category": "exam", "unit": "次", "unit_price": "0"},
                    {"code": "EX-1", "name": "胸片", "category": "exam", "unit": "次", "unit_price": "80.00"}
                ]}),
            )
            .await;
        assert_eq!(s, 200);
        let codes: Vec<&str> =
            v["results"].as_array().unwrap().iter().map(|r| r["error"]["code"].as_str().unwrap_or("ok")).collect();
        assert_eq!(codes, vec!["ok", "bad_code", "bad_amount", "duplicate_code"], "{v}");
    }
}

/// A minimal XLSX workbook (what Excel writes, reduced to the parts a reader needs).
fn xlsx(rows: &[&[&str]]) -> Vec<u8> {
    use std::io::Write;
    let mut shared: Vec<String> = Vec::new();
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, v) in row.iter().enumerate() {
            let col = (b'A' + c as u8) as char;
            if v.parse::<f64>().is_ok() {
                // a price the way Excel stores it: a binary float
                let f: f64 = v.parse().unwrap();
                sheet.push_str(&format!(
                    r#"<c r="{col}{}"><v>{}</v></c>"#,
                    r + 1,
                    if *v == "18.60" { "18.600000000000001".to_string() } else { f.to_string() }
                ));
            } else {
                shared.push(v.replace('&', "&amp;"));
                sheet.push_str(&format!(r#"<c r="{col}{}" t="s"><v>{}</v></c>"#, r + 1, shared.len() - 1));
            }
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let sst: String = shared.iter().map(|s| format!("<si><t>{s}</t></si>")).collect();
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file("xl/sharedStrings.xml", opts).unwrap();
        z.write_all(format!(r#"<?xml version="1.0"?><sst xmlns="x">{sst}</sst>"#).as_bytes()).unwrap();
        z.start_file("xl/worksheets/sheet1.xml", opts).unwrap();
        z.write_all(sheet.as_bytes()).unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}

#[tokio::test]
async fn an_administrator_imports_the_catalogue_whole_or_not_at_all() {
    use clinicpay::intake::import::ImportKind;
    for backend in backends() {
        let app = spawn_app(backend, true).await;
        let s = &app.services;
        let admin = s.store.user_by_username("admin").await.unwrap().unwrap().current();
        let cashier = s.store.user_by_username("cashier").await.unwrap().unwrap().current();
        let db = crate::helpers::TestDb::attach(&app).await;
        let items_before = db.scalar_i64("SELECT COUNT(*) FROM charge_items").await;

        // a CSV from Excel in GBK with Chinese headers, one row wrong, one code twice: nothing written
        let csv = "项目编码,项目名称,类别,单位,单价,国家编码,启用\r\n\
                   IMP-1,血常规,化验,次,25.00,250101015,是\r\n\
                   IMP-2,胸部CT,检查,次,-1,,是\r\n\
                   IMP-1,又一个,化验,次,3.00,,是\r\n\
                   IMP-3,换药,治疗,次,12.5,,也许\r\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(csv);
        let r = s.import_catalogue(&admin, "127.0.0.1", ImportKind::ChargeItems, "目录.csv", &gbk).await.unwrap();
        assert!(!r.applied);
        assert_eq!(r.rows, 4);
        let lines: Vec<(usize, &str)> = r.refused.iter().map(|e| (e.line, e.error_code.as_str())).collect();
        assert_eq!(lines, vec![(3, "bad_amount"), (4, "duplicate_code"), (5, "bad_enabled")], "{r:?}");
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM charge_items").await, items_before, "nothing written");

        // the corrected file: written in one go, audited once
        let csv = "code,name,category,unit,unit_price,national_code,enabled\n\
                   IMP-1,血常规,lab,次,25.00,250101015,是\n\
                   IMP-2,胸部CT,exam,次,260.00,,是\n\
                   IMP-3,\"换药, 小\",treatment,次,12.5,,否\n";
        let r =
            s.import_catalogue(&admin, "127.0.0.1", ImportKind::ChargeItems, "目录.csv", csv.as_bytes()).await.unwrap();
        assert!(r.applied, "{r:?}");
        assert_eq!((r.created, r.updated, r.unchanged), (3, 0, 0));
        let items = s.catalogue(&admin, Some("IMP-")).await.unwrap();
        assert_eq!(items.len(), 3);
        let imp3 = items.iter().find(|i| i.code == "IMP-3").unwrap();
        assert_eq!(
            (imp3.name.as_str(), imp3.unit_price.plain(), imp3.enabled),
            ("换药, 小", "12.50".to_string(), false)
        );
        assert_eq!(db.scalar_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'catalogue_imported'").await, 1);

        // the same list as XLSX with a price Excel stored as a float: one changed, two unchanged
        let book = xlsx(&[
            &["编码", "名称", "类别", "单位", "单价", "国家编码", "启用"],
            &["IMP-1", "血常规", "lab", "次", "25", "250101015", "是"],
            &["IMP-2", "胸部CT", "exam", "次", "18.60", "", "是"],
            &["IMP-3", "换药, 小", "treatment", "次", "12.5", "", "否"],
        ]);
        let r = s.import_catalogue(&admin, "127.0.0.1", ImportKind::ChargeItems, "目录.xlsx", &book).await.unwrap();
        assert!(r.applied, "{r:?}");
        assert_eq!((r.created, r.updated, r.unchanged), (0, 1, 2));
        let ct = s.catalogue(&admin, Some("IMP-2")).await.unwrap();
        assert_eq!(ct[0].unit_price.plain(), "18.60");

        // departments from CSV
        let r = s
            .import_catalogue(
                &admin,
                "127.0.0.1",
                ImportKind::Departments,
                "科室.csv",
                "科室编码,科室名称,英文名称\nIMPD,影像科,Imaging\n".as_bytes(),
            )
            .await
            .unwrap();
        assert!(r.applied && r.created == 1, "{r:?}");
        assert!(s.departments().await.unwrap().iter().any(|d| d.code == "IMPD" && d.name_en == "Imaging"));

        // files that cannot be read at all
        for (name, bytes, code) in [
            ("x.csv", b"".to_vec(), "empty_file"),
            ("x.csv", b"code,name\n".to_vec(), "empty_file"),
            ("x.csv", b"code,name,category,unit\nA,b,lab,x\n".to_vec(), "missing_column"),
            ("x.csv", b"code,name,category,unit,unit_price,colour\nA,b,lab,x,1,red\n".to_vec(), "unknown_column"),
            ("x.csv", b"code,name,category,unit,unit_price\nA,\"b,lab,x,1\n".to_vec(), "bad_csv"),
            ("x.xls", b"\xD0\xCF\x11\xE0".to_vec(), "bad_xlsx"),
            ("x.xlsx", b"PK\x03\x04 not really".to_vec(), "bad_xlsx"),
            ("x.csv", vec![b'a'; 1024 * 1024 + 1], "file_too_large"),
        ] {
            let e = s.import_catalogue(&admin, "127.0.0.1", ImportKind::ChargeItems, name, &bytes).await.unwrap_err();
            assert_eq!(e.code(), code, "{name}");
        }
        let e = s
            .import_catalogue(&cashier, "127.0.0.1", ImportKind::ChargeItems, "x.csv", csv.as_bytes())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "forbidden");

        // one item edited in the form: audited with before and after; a bad price refused
        let mut item = clinicpay::intake::ChargeItemInput {
            code: "IMP-2".into(),
            name: "胸部CT平扫".into(),
            category: "exam".into(),
            unit: "次".into(),
            unit_price: "240.00".into(),
            national_code: None,
            enabled: Some(true),
        };
        assert_eq!(s.save_charge_item(&admin, "127.0.0.1", &item).await.unwrap().as_str(), "updated");
        item.unit_price = "2.345".into();
        assert_eq!(s.save_charge_item(&admin, "127.0.0.1", &item).await.unwrap_err().code(), "bad_amount");
        let audited = db.scalar_i64("SELECT COUNT(*) FROM audit_log WHERE action = 'charge_item_saved'").await;
        assert_eq!(audited, 1);
        assert_eq!(s.catalogue(&admin, Some("IMP-2")).await.unwrap()[0].unit_price.plain(), "240.00");
    }
}
