//! The WeChat Pay sandbox's trade bill (B.7): `GET /v3/bill/tradebill` builds the day's file
//! in the real format and hands out a download link; `GET /v3/billdownload/file` serves it.

use super::*;

impl WechatSandbox {
    pub(super) async fn tradebill(&self, c: &Caller, query: &HashMap<String, String>) -> anyhow::Result<Response> {
        let Some(date) = query.get("bill_date").and_then(|d| clinicpay::time::parse_date(d)) else {
            return Ok(param_error("bill_date 应为 YYYY-MM-DD"));
        };
        let bill_type = query.get("bill_type").map(String::as_str).unwrap_or("ALL");
        if !matches!(bill_type, "ALL" | "SUCCESS" | "REFUND") {
            return Ok(param_error("bill_type 仅支持 ALL、SUCCESS、REFUND"));
        }
        let gzip = match query.get("tar_type").map(String::as_str) {
            None | Some("") => false,
            Some("GZIP") => true,
            Some(_) => return Ok(param_error("tar_type 仅支持 GZIP")),
        };
        let now = now_ms();
        if local_date(now).is_some_and(|today| date > today) {
            return Ok(api_error(400, "INVALID_REQUEST", "账单日期不能晚于当前日期"));
        }
        let Some(appid) = self.merchant(&c.mchid).await?.map(|m| m.appid) else {
            return Ok(api_error(400, "MCH_NOT_EXISTS", "商户号不存在"));
        };
        let from = clinicpay::time::day_start(date);
        let to = from + clinicpay::time::DAY_MS;
        let mut rows: Vec<(i64, Vec<String>)> = Vec::new();
        for t in self.store().trades_with_money::<Trade>(NAME, &c.mchid, from, to).await? {
            let txn = t.transaction_id.clone().unwrap_or_default();
            let openid = t.payer_openid.clone().unwrap_or_default();
            let base = |time: i64, state: &str| -> Vec<String> {
                vec![
                    fmt_second(time),
                    appid.clone(),
                    c.mchid.clone(),
                    "0".into(),
                    String::new(),
                    txn.clone(),
                    t.out_trade_no.clone(),
                    openid.clone(),
                    t.trade_type.clone(),
                    state.into(),
                    "OTHERS".into(),
                    "CNY".into(),
                ]
            };
            if let Some(paid) = t.success_ms.filter(|ms| local_date(*ms) == Some(date)) {
                if bill_type != "REFUND" {
                    let fee = (t.total_fen * FEE_PERMILLE + 500) / 1000;
                    let mut row = base(paid, "SUCCESS");
                    row.extend([
                        yuan(t.total_fen),
                        "0.00".into(),
                        "0".into(),
                        "0".into(),
                        "0.00".into(),
                        "0.00".into(),
                        String::new(),
                        String::new(),
                        wire::cell(&t.description),
                        wire::cell(t.attach.as_deref().unwrap_or("")),
                        format!("{}000", yuan(fee)),
                        "0.60%".into(),
                        yuan(t.total_fen),
                        "0.00".into(),
                        String::new(),
                    ]);
                    rows.push((paid, row));
                }
            }
            if bill_type == "SUCCESS" {
                continue;
            }
            for r in t.refunds.iter().filter(|r| local_date(r.create_ms) == Some(date)) {
                let mut row = base(r.create_ms, "REFUND");
                row.extend([
                    "0.00".into(),
                    "0.00".into(),
                    r.refund_id.clone(),
                    r.out_refund_no.clone(),
                    yuan(r.amount_fen),
                    "0.00".into(),
                    "ORIGINAL".into(),
                    r.status.clone(),
                    wire::cell(&t.description),
                    wire::cell(t.attach.as_deref().unwrap_or("")),
                    "0.00000".into(),
                    "0.60%".into(),
                    "0.00".into(),
                    yuan(r.amount_fen),
                    String::new(),
                ]);
                rows.push((r.create_ms, row));
            }
        }
        if rows.is_empty() {
            return Ok(api_error(400, "NO_STATEMENT_EXIST", "账单文件不存在"));
        }
        // by time; within the same instant payments before refunds
        rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1[9].cmp(&a.1[9])).then_with(|| a.1.cmp(&b.1)));
        let rows: Vec<Vec<String>> = rows.into_iter().map(|(_, r)| r).collect();
        let sum = |col: usize| -> i64 { rows.iter().filter_map(|r| Money::parse(&r[col]).ok()).map(|m| m.fen()).sum() };
        let summary = vec![
            rows.len().to_string(),
            yuan(sum(12)),
            yuan(sum(16)),
            "0.00".into(),
            yuan(sum(22)),
            yuan(sum(24)),
            yuan(sum(25)),
        ];
        let file = wire::bill_file(&rows, &summary);
        let hash_value = crypto::sha1_hex(&file);
        let token = crypto::random_alnum(32);
        let bytes = if gzip { wire::gzip(&file) } else { file };
        let kept = BillFile { mchid: c.mchid.clone(), bytes: crypto::b64(&bytes), gzip };
        self.store().set_setting(NAME, &format!("bill:{token}"), &kept, Some(now + 3_600_000)).await?;
        let mut download_url = format!("{}{MOUNT}/v3/billdownload/file?token={token}", self.base());
        if gzip {
            download_url.push_str("&tartype=GZIP");
        }
        Ok(self.ok_json(&json!({ "hash_type": "SHA1", "hash_value": hash_value, "download_url": download_url }), c))
    }

    pub(super) async fn bill_file(&self, c: &Caller, query: &HashMap<String, String>) -> anyhow::Result<Response> {
        let f: Option<BillFile> = match query.get("token") {
            Some(t) => self.store().setting(NAME, &format!("bill:{t}"), now_ms()).await?,
            None => None,
        };
        let Some(f) = f else {
            return Ok(api_error(404, "RESOURCE_NOT_EXISTS", "账单文件不存在或已过期"));
        };
        if f.mchid != c.mchid {
            return Ok(api_error(403, "NO_AUTH", "无权下载该账单"));
        }
        let ct = if f.gzip { "application/x-gzip" } else { "text/plain; charset=utf-8" };
        // downloads are not signed (B.7)
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, ct)
            .header("Request-ID", request_id())
            .body(Body::from(crypto::unb64(&f.bytes)?))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
    }
}
