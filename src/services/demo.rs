//! Deterministic demo data (B4): a realistic small hospital. The same reference date always gives
//! the same patients, bills and amounts; only the timestamps follow the reference date, so the
//! dashboard has "today" data whenever the demo is seeded.

use super::auth::{Actor, NewUserInput};
use super::{ServiceError, ServiceResult, Services};
use crate::auth::Role;
use crate::billing::{price_items, Bill, BillItem, BillNo, BillStatus, Department, ItemCategory, NewBillItem, Patient};
use crate::ids::{BillId, DepartmentId, PatientId};
use crate::money::Money;
use crate::time::{day_start, HOUR_MS, MINUTE_MS};
use chrono::NaiveDate;

/// The demo logins printed by the run command.
pub const DEMO_USERS: [(&str, &str, Role, &str); 3] = [
    ("cashier", "张丽", Role::Cashier, "demo-cashier"),
    ("finance", "李敏", Role::Finance, "demo-finance"),
    ("admin", "王强", Role::Admin, "demo-admin-1"),
];

/// Ids for the demo history's bookings, time-ordered at the instant they are backdated to (so
/// account pages list them in the order they happened).
struct DemoIdsAt {
    ms: i64,
    rng: std::sync::Mutex<DemoRng>,
}

impl crate::ports::IdGen for DemoIdsAt {
    fn next_bits(&self) -> u128 {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.id_bits(self.ms)
    }
}

/// SplitMix64: small, fast, and the same on every platform.
pub struct DemoRng(u64);

impl DemoRng {
    pub fn new(seed: u64) -> Self {
        DemoRng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    /// An id body for an entity created at `ms`: time-ordered like the server's ids.
    pub fn id_bits(&mut self, ms: i64) -> u128 {
        ((ms.max(0) as u128) << 80) | ((self.next_u64() as u128) << 16) | (self.below(1 << 16) as u128)
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "蒋",
    "蔡", "杜", "叶", "程", "苏", "魏", "吕", "丁", "任", "沈", "姚", "卢", "欧阳", "司马",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞",
    "平", "刚", "桂英", "小明", "建国", "建华", "文", "华", "红", "玉兰", "志强", "海燕", "晓东", "婷", "雪", "浩然",
    "子涵", "欣怡", "梓轩", "宇", "晨", "佳", "思远", "一鸣", "雨桐", "国庆", "春梅", "德华", "淑珍", "凤英", "建军",
];

const DEPARTMENTS: &[(&str, &str, &str)] = &[
    ("IM", "内科", "Internal medicine"),
    ("SUR", "外科", "Surgery"),
    ("PED", "儿科", "Paediatrics"),
    ("OBG", "妇产科", "Obstetrics & gynaecology"),
    ("RAD", "放射科", "Radiology"),
    ("LAB", "检验科", "Laboratory"),
    ("PHA", "药剂科", "Pharmacy"),
    ("ER", "急诊科", "Emergency"),
];

/// (category, description, unit price in fen)
const CATALOGUE: &[(ItemCategory, &str, i64)] = &[
    (ItemCategory::Consultation, "普通门诊诊查费", 1_000),
    (ItemCategory::Consultation, "副主任医师诊查费", 3_000),
    (ItemCategory::Consultation, "专家门诊诊查费", 5_000),
    (ItemCategory::Drug, "阿莫西林胶囊 0.25g×24粒", 1_850),
    (ItemCategory::Drug, "头孢克肟分散片 0.1g×6片", 3_280),
    (ItemCategory::Drug, "布洛芬缓释胶囊 0.3g×20粒", 1_560),
    (ItemCategory::Drug, "奥美拉唑肠溶胶囊 20mg×14粒", 2_640),
    (ItemCategory::Drug, "连花清瘟胶囊 0.35g×24粒", 1_480),
    (ItemCategory::Drug, "盐酸二甲双胍缓释片 0.5g×30片", 2_200),
    (ItemCategory::Drug, "阿托伐他汀钙片 20mg×7片", 3_550),
    (ItemCategory::Drug, "0.9%氯化钠注射液 250ml", 520),
    (ItemCategory::Drug, "5%葡萄糖注射液 250ml", 480),
    (ItemCategory::Drug, "复方甘草片×100片", 650),
    (ItemCategory::Exam, "胸部CT平扫", 38_000),
    (ItemCategory::Exam, "腹部彩色多普勒超声", 15_000),
    (ItemCategory::Exam, "常规心电图", 3_500),
    (ItemCategory::Exam, "头颅MRI平扫", 68_000),
    (ItemCategory::Exam, "胸部正位X线摄影", 9_000),
    (ItemCategory::Exam, "电子胃镜检查", 45_000),
    (ItemCategory::Lab, "血常规（五分类）", 2_500),
    (ItemCategory::Lab, "尿常规", 1_500),
    (ItemCategory::Lab, "肝功能八项", 8_000),
    (ItemCategory::Lab, "肾功能三项", 6_000),
    (ItemCategory::Lab, "血脂四项", 4_800),
    (ItemCategory::Lab, "糖化血红蛋白", 7_000),
    (ItemCategory::Lab, "C反应蛋白", 4_000),
    (ItemCategory::Treatment, "静脉输液", 1_200),
    (ItemCategory::Treatment, "清创缝合（小）", 12_000),
    (ItemCategory::Treatment, "雾化吸入", 2_500),
    (ItemCategory::Treatment, "换药（中）", 3_000),
    (ItemCategory::Material, "一次性使用输液器", 350),
    (ItemCategory::Material, "医用脱脂纱布", 200),
    (ItemCategory::Material, "静脉留置针", 1_800),
    (ItemCategory::Bed, "普通病房床位费（日）", 4_500),
    (ItemCategory::Bed, "双人间床位费（日）", 8_000),
];

/// The demo catalogue as charge items (for bills typed at the counter): codes by category,
/// e.g. `LAB-001` for the first lab test.
pub fn demo_catalogue() -> Vec<crate::intake::CatalogueItem> {
    let mut per: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    CATALOGUE
        .iter()
        .map(|(cat, name, fen)| {
            let (prefix, unit) = match cat {
                ItemCategory::Consultation => ("CON", "次"),
                ItemCategory::Drug => ("DRG", "盒"),
                ItemCategory::Exam => ("EXM", "次"),
                ItemCategory::Lab => ("LAB", "项"),
                ItemCategory::Treatment => ("TRT", "次"),
                ItemCategory::Material => ("MAT", "个"),
                ItemCategory::Bed => ("BED", "日"),
            };
            let n = per.entry(prefix).or_insert(0);
            *n += 1;
            crate::intake::CatalogueItem {
                code: format!("{prefix}-{:03}", n),
                name: name.to_string(),
                category: *cat,
                unit: unit.to_string(),
                unit_price: Money::from_fen(*fen).unwrap_or(Money::ZERO),
                national_code: None,
                enabled: true,
            }
        })
        .collect()
}

/// Which catalogue categories each department bills.
fn department_categories(code: &str) -> &'static [ItemCategory] {
    use ItemCategory::*;
    match code {
        "IM" => &[Consultation, Drug, Lab, Treatment],
        "SUR" => &[Consultation, Treatment, Material, Drug, Bed],
        "PED" => &[Consultation, Drug, Lab, Treatment],
        "OBG" => &[Consultation, Exam, Lab, Bed],
        "RAD" => &[Exam],
        "LAB" => &[Lab],
        "PHA" => &[Drug],
        _ => &[Consultation, Exam, Treatment, Drug, Material],
    }
}

pub struct DemoData {
    pub departments: Vec<Department>,
    pub patients: Vec<Patient>,
    pub bills: Vec<(Bill, Vec<BillItem>)>,
}

/// Builds the data set for a reference date ("today" in hospital time).
pub fn generate(today: NaiveDate, patients_n: usize) -> DemoData {
    let mut rng = DemoRng::new(0xC_1141_C9A4);
    let today_start = day_start(today);
    let epoch = today_start - 400 * 24 * HOUR_MS;

    let departments: Vec<Department> = DEPARTMENTS
        .iter()
        .map(|(code, zh, en)| Department {
            id: DepartmentId::from_u128(rng.id_bits(epoch)),
            code: code.to_string(),
            name_zh: zh.to_string(),
            name_en: en.to_string(),
        })
        .collect();

    let mut patients = Vec::with_capacity(patients_n);
    for i in 0..patients_n {
        let name = format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN));
        let created = epoch + (i as i64) * 37 * MINUTE_MS;
        let year = 1940 + rng.below(80) as i32;
        let birth = NaiveDate::from_ymd_opt(year, 1 + rng.below(12) as u32, 1 + rng.below(28) as u32)
            .map(|d| d.format("%Y-%m-%d").to_string());
        let phone =
            format!("1{}{:09}", rng.pick(&["38", "39", "50", "58", "86", "88", "37", "59"]), rng.below(1_000_000_000));
        patients.push(Patient {
            id: PatientId::from_u128(rng.id_bits(created)),
            mrn: format!("{:06}", 100 + i),
            name,
            gender: if rng.below(2) == 0 { "男" } else { "女" }.to_string(),
            birth_date: birth,
            phone: phone.chars().take(11).collect(),
            created_at_ms: created,
        });
    }

    // Bills: each patient gets 2–4 unpaid bills from the last few days, plus older history that is
    // mostly paid, some void. About five bills per patient in all.
    let mut drafts: Vec<(i64, usize, usize, BillStatus, Vec<NewBillItem>)> = Vec::new();
    for (pi, _) in patients.iter().enumerate() {
        let unpaid = 2 + rng.below(3) as usize;
        let history = 1 + rng.below(4) as usize;
        for k in 0..unpaid + history {
            let is_unpaid = k < unpaid;
            let days_ago = if is_unpaid { rng.below(4) as i64 } else { 1 + rng.below(60) as i64 };
            let minute = 8 * 60 + rng.below(9 * 60) as i64; // 08:00–17:00
            let mut created = today_start - days_ago * 24 * HOUR_MS + minute * MINUTE_MS;
            if days_ago == 0 {
                // today's bills are in the morning, so they are never "in the future" for a demo
                // started early in the day
                created = today_start + (7 * 60 + rng.below(60) as i64) * MINUTE_MS;
            }
            let dep = rng.below(departments.len() as u64) as usize;
            let status = if is_unpaid {
                BillStatus::Unpaid
            } else if rng.below(12) == 0 {
                BillStatus::Void
            } else {
                BillStatus::Paid
            };
            let cats = department_categories(&departments[dep].code);
            let lines = 1 + rng.below(4) as usize;
            let mut items = Vec::with_capacity(lines);
            for _ in 0..lines {
                let cat = *rng.pick(cats);
                let choices: Vec<&(ItemCategory, &str, i64)> = CATALOGUE.iter().filter(|c| c.0 == cat).collect();
                let (c, desc, price) = **rng.pick(&choices);
                let qty = match c {
                    ItemCategory::Drug => 1 + rng.below(3) as i64,
                    ItemCategory::Bed => 1 + rng.below(5) as i64,
                    ItemCategory::Material => 1 + rng.below(4) as i64,
                    _ => 1,
                };
                items.push(NewBillItem {
                    category: c,
                    description: desc.to_string(),
                    quantity: qty,
                    unit_price: Money::from_fen(price).expect("catalogue price"),
                });
            }
            drafts.push((created, pi, dep, status, items));
        }
    }
    drafts.sort_by_key(|d| (d.0, d.1));

    let mut bills = Vec::with_capacity(drafts.len());
    let mut seq_day: Option<NaiveDate> = None;
    let mut seq = 0u32;
    for (created, pi, dep, status, items) in drafts {
        let date = crate::time::local_date(created).expect("in range");
        if seq_day != Some(date) {
            seq_day = Some(date);
            seq = 0;
        }
        seq += 1;
        let (lines, total) = price_items(&items).expect("catalogue items are valid");
        let bill = Bill {
            id: BillId::from_u128(rng.id_bits(created)),
            bill_no: BillNo::new(date, seq).as_str().to_string(),
            patient_id: patients[pi].id.clone(),
            department_id: departments[dep].id.clone(),
            total,
            status,
            refunded: Money::ZERO,
            created_at_ms: created,
            paid_at_ms: None,
        };
        bills.push((bill, lines));
    }
    DemoData { departments, patients, bills }
}

impl Services {
    /// Seeds an empty database with the demo data set and the demo users. Does nothing (and says
    /// so) when patients already exist.
    pub async fn seed_demo(&self, today: NaiveDate) -> ServiceResult<bool> {
        if self.store.count_patients().await? > 0 {
            return Ok(false);
        }
        let data = generate(today, 200);
        self.store.insert_departments(&data.departments).await?;
        self.store.upsert_charge_items(&demo_catalogue(), self.now(), None).await?;
        self.store.insert_patients(&data.patients).await?;
        // History is paid through the real payment path (seed_demo_history), so bills start unpaid.
        // Today's bills the generator placed later in the day are issued now, never in the future
        // (a book entry dated after the real ones would sort as the newest).
        let latest = (self.now() - crate::time::MINUTE_MS).max(crate::time::day_start(today));
        let unpaid: Vec<(Bill, Vec<BillItem>)> = data
            .bills
            .iter()
            .map(|(b, items)| {
                let mut b = b.clone();
                b.created_at_ms = b.created_at_ms.min(latest);
                if b.status == BillStatus::Paid {
                    b.status = BillStatus::Unpaid;
                }
                (b, items.clone())
            })
            .collect();
        for chunk in unpaid.chunks(250) {
            self.store.insert_bills(chunk).await?;
        }
        let actor = Actor::system("seed-demo");
        for (username, display, role, password) in DEMO_USERS {
            if self.store.user_by_username(username).await?.is_none() {
                self.create_user_as(
                    &actor,
                    NewUserInput {
                        username: username.into(),
                        display_name: display.into(),
                        role,
                        password: password.into(),
                    },
                    true,
                )
                .await?;
            }
        }
        Ok(true)
    }

    /// Pays the demo data set's history (bills the generator marked paid) through the same
    /// store path as real payments: one session per patient and day, each with a payment per
    /// bill and a balanced journal entry. `channels` are the (provider, channel id) to spread
    /// the history over. Returns the number of sessions paid.
    pub async fn seed_demo_history(
        &self,
        today: NaiveDate,
        channels: &[(crate::payments::Provider, crate::ids::ChannelId)],
    ) -> ServiceResult<usize> {
        use crate::checkout::apply::{ApplyResult, PaymentRules, VerifiedPayment};
        use crate::checkout::payable::PayableId;
        use crate::ports::{CreateOutcome, NewSession};
        if channels.is_empty() {
            return Ok(0);
        }
        let data = generate(today, 200);
        let mut groups: std::collections::BTreeMap<(crate::ids::PatientId, chrono::NaiveDate), Vec<&Bill>> =
            Default::default();
        for (b, _) in &data.bills {
            if b.status == BillStatus::Paid {
                let day = crate::time::local_date(b.created_at_ms).unwrap_or(today);
                groups.entry((b.patient_id.clone(), day)).or_default().push(b);
            }
        }
        let mut rng = DemoRng::new(0xD330_4157);
        let now = self.now();
        let mut paid = 0;
        for (i, ((patient, _), bills)) in groups.into_iter().enumerate() {
            let (provider, channel) = &channels[i % channels.len()];
            let last = bills.iter().map(|b| b.created_at_ms).max().unwrap_or(now);
            let created = (last + 5 * MINUTE_MS).min(now - MINUTE_MS);
            let session = crate::ids::SessionId::from_u128(rng.id_bits(created));
            let out_trade_no = crate::ids::OutTradeNo::from_u128(rng.id_bits(created));
            let new = NewSession {
                id: session.clone(),
                patient_id: patient,
                channel_id: channel.clone(),
                provider: *provider,
                method: match provider {
                    crate::payments::Provider::Alipay => crate::payments::PayMethod::AlipayQr,
                    crate::payments::Provider::WechatPay => crate::payments::PayMethod::WechatNative,
                    crate::payments::Provider::Bank => crate::payments::PayMethod::BankCard,
                    crate::payments::Provider::Cash => crate::payments::PayMethod::Cash,
                    crate::payments::Provider::Pos => crate::payments::PayMethod::PosCard,
                },
                out_trade_no: out_trade_no.clone(),
                payables: bills.iter().map(|b| PayableId::Bill(b.id.clone())).collect(),
                expires_at_ms: created + 15 * MINUTE_MS,
                created_at_ms: created,
                created_by: "seed-demo".into(),
                idempotency: None,
                replaces: None,
                audit: None,
            };
            let view = match self.store.create_session(&new).await? {
                Ok(CreateOutcome::Created(v)) => v,
                Ok(CreateOutcome::Existing(v)) => v,
                Err(r) => return Err(ServiceError::Internal(anyhow::anyhow!("demo history: {r:?}"))),
            };
            let txn = format!("DEMO{:016X}", rng.next_u64());
            let paid_at = (created + 2 * MINUTE_MS).min(now);
            let r = self
                .store
                .apply_payment(
                    &VerifiedPayment {
                        event_id: format!("demo:{txn}"),
                        notification_id: None,
                        provider: *provider,
                        channel_id: channel.clone(),
                        out_trade_no,
                        provider_txn_id: txn,
                        amount: view.total,
                        paid_at_ms: paid_at,
                        received_at_ms: paid_at,
                    },
                    &PaymentRules { late_policy: crate::checkout::LatePaymentPolicy::Hold },
                    &DemoIdsAt {
                        ms: paid_at,
                        rng: std::sync::Mutex::new(DemoRng::new((paid_at as u64) ^ ((i as u64) << 44) ^ 0xD330_1D5A)),
                    },
                )
                .await?;
            if matches!(r, ApplyResult::Paid { .. }) {
                paid += 1;
            }
        }
        Ok(paid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_realistic() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let a = generate(day, 200);
        let b = generate(day, 200);
        assert_eq!(a.patients, b.patients);
        assert_eq!(a.bills.len(), b.bills.len());
        assert_eq!(a.bills[17].0, b.bills[17].0);
        assert_eq!(a.departments.len(), 8);
        assert!((800..=1400).contains(&a.bills.len()), "{} bills", a.bills.len());
        for p in &a.patients {
            let unpaid = a.bills.iter().filter(|(b, _)| b.patient_id == p.id && b.status == BillStatus::Unpaid).count();
            assert!((2..=4).contains(&unpaid), "{} has {unpaid} unpaid bills", p.name);
        }
        assert!(a.bills.iter().any(|(b, _)| b.status == BillStatus::Void));
        let nos: std::collections::HashSet<_> = a.bills.iter().map(|(b, _)| b.bill_no.clone()).collect();
        assert_eq!(nos.len(), a.bills.len(), "bill numbers are unique");
        for (bill, items) in &a.bills {
            assert_eq!(Money::sum(items.iter().map(|i| i.amount)).unwrap(), bill.total);
        }
        // a different day shifts the timestamps but not the content
        let c = generate(day.succ_opt().unwrap(), 200);
        assert_eq!(a.patients[5].name, c.patients[5].name);
        assert_eq!(a.bills[40].0.total, c.bills[40].0.total);
    }
}
