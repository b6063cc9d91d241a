//! The Alipay sandbox's `gateway.do` (PROTOCOLS.md A.2–A.7): the request checks in Alipay's
//! order, then each method — precreate, query, close, refund, refund query, the browser
//! cashiers and the bill link.

use super::*;

impl Core {
    /// The whole `gateway.do` exchange for already-merged parameters.
    pub(super) async fn gateway(self: &Arc<Self>, raw: Params) -> Response {
        let mut params: Params = Vec::with_capacity(raw.len());
        let mut duplicate: Option<String> = None;
        for (k, v) in raw {
            match params.iter().find(|(pk, _)| *pk == k) {
                Some((_, pv)) if *pv == v => {}
                Some(_) => duplicate = Some(k),
                None => params.push((k, v)),
            }
        }
        let method = param(&params, "method").unwrap_or("").trim().to_string();
        let node = if method.is_empty() { "error_response".to_string() } else { wire::node_name(&method) };
        let browser = matches!(method.as_str(), "alipay.trade.page.pay" | "alipay.trade.wap.pay");
        let refuse = |m: Members| if browser { error_page(&m) } else { self.signed_json(&node, &m) };
        if let Some(k) = duplicate {
            return refuse(fail("40002", "isv.invalid-parameter", &format!("参数 {k} 重复且取值不同")));
        }
        if method.is_empty() {
            return refuse(fail("40001", "isv.missing-method", "缺少方法名参数"));
        }
        for (k, sub, msg) in [
            ("app_id", "isv.missing-app-id", "缺少AppID参数"),
            ("sign_type", "isv.missing-signature-type", "缺少签名类型参数"),
            ("sign", "isv.missing-signature", "缺少签名参数"),
            ("timestamp", "isv.missing-timestamp", "缺少时间戳参数"),
            ("version", "isv.missing-version", "缺少版本参数"),
        ] {
            if param(&params, k).is_none_or(|v| v.trim().is_empty()) {
                return refuse(fail("40001", sub, msg));
            }
        }
        let app_id = param(&params, "app_id").unwrap_or("").to_string();
        let app_key = match self.app_key(&app_id).await {
            Ok(Some(k)) => k,
            Ok(None) => return refuse(fail("40002", "isv.invalid-app-id", "无效的AppID参数")),
            Err(e) => return refuse(store_failed(e)),
        };
        let sign_type = param(&params, "sign_type").unwrap_or("");
        if !sign_type.eq_ignore_ascii_case("RSA2") && !sign_type.eq_ignore_ascii_case("RSA") {
            return refuse(fail("40002", "isv.invalid-signature-type", "无效的签名类型"));
        }
        let sig = param(&params, "sign").unwrap_or("");
        let content = wire::signed_string(&params, &["sign"], false);
        // A.4 step 2: empties dropped first; if that fails, with empties kept
        let verified = wire::check_request_signature(&app_key, sign_type, &content, sig)
            || wire::check_request_signature(&app_key, sign_type, &wire::signed_string(&params, &["sign"], true), sig);
        if !verified {
            let msg =
                format!("验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}");
            return refuse(fail("40002", "isv.invalid-signature", &msg));
        }
        if let Some(cs) = param(&params, "charset").filter(|c| !c.is_empty()) {
            if !cs.eq_ignore_ascii_case("utf-8") && !cs.eq_ignore_ascii_case("utf8") {
                return refuse(fail("40002", "isv.invalid-charset", "沙箱仅支持 UTF-8 字符集"));
            }
        }
        if let Some(f) = param(&params, "format").filter(|f| !f.is_empty()) {
            if !f.eq_ignore_ascii_case("json") {
                return refuse(fail("40002", "isv.invalid-format", "无效的数据格式"));
            }
        }
        if param(&params, "encrypt_type").is_some_and(|e| !e.is_empty()) {
            return refuse(fail("40002", "isv.invalid-encrypt-type", "沙箱不支持内容加密"));
        }
        let biz: Map<String, Value> = match param(&params, "biz_content").filter(|b| !b.trim().is_empty()) {
            None => Map::new(),
            Some(b) => match serde_json::from_str(b) {
                Ok(Value::Object(m)) => m,
                _ => return refuse(fail("40002", "isv.invalid-parameter", "biz_content 不是 JSON 对象")),
            },
        };
        let notify_url = param(&params, "notify_url").filter(|u| !u.is_empty());
        if browser {
            let kind = if method == "alipay.trade.page.pay" { Kind::Page } else { Kind::Wap };
            let return_url = param(&params, "return_url").filter(|u| !u.is_empty());
            return self.cashier(&app_id, kind, &biz, notify_url, return_url).await;
        }
        let mut out = Vec::new();
        let members = {
            let _op = self.op.lock().await;
            let r = match method.as_str() {
                "alipay.trade.precreate" => self.precreate(&app_id, &biz, notify_url, &mut out).await,
                "alipay.trade.query"
                | "alipay.trade.close"
                | "alipay.trade.refund"
                | "alipay.trade.fastpay.refund.query" => self.on_trade(&method, &app_id, &biz, &mut out).await,
                "alipay.data.dataservice.bill.downloadurl.query" => self.bill_url(&app_id, &biz).await,
                _ => Ok(fail("40002", "isv.invalid-method", "不存在的方法名")),
            };
            let m = r.unwrap_or_else(store_failed);
            self.send_all(out).await;
            m
        };
        let node = if members.iter().any(|(k, v)| *k == "sub_code" && v == "isv.invalid-method") {
            "error_response".to_string()
        } else {
            node
        };
        self.signed_json(&node, &members)
    }

    /// query / close / refund / refund query: read the trade, act, write it back.
    pub(super) async fn on_trade(
        &self,
        method: &str,
        app_id: &str,
        biz: &Map<String, Value>,
        out: &mut Outbox,
    ) -> anyhow::Result<Members> {
        let mut t = self.find(app_id, biz).await?;
        let now = now_ms();
        let m = match method {
            "alipay.trade.query" => self.query(t.as_mut(), biz, now, out),
            "alipay.trade.close" => self.close(t.as_mut(), now, out),
            "alipay.trade.refund" => self.refund(t.as_mut(), biz, now, out),
            _ => self.refund_query(t.as_mut(), biz),
        };
        if let Some(t) = &t {
            self.save(t).await?;
        }
        Ok(m)
    }

    /// Creates (or repeats) a trade for precreate / page pay / wap pay. `Err` is a failure node.
    pub(super) async fn open_trade(
        &self,
        app_id: &str,
        biz: &Map<String, Value>,
        kind: Kind,
        notify_url: Option<&str>,
        return_url: Option<&str>,
        out: &mut Outbox,
    ) -> anyhow::Result<Result<Trade, Members>> {
        let now = now_ms();
        let req = match self.create_request(biz, kind, now) {
            Ok(r) => r,
            Err(m) => return Ok(Err(m)),
        };
        if let Some(mut t) = self.store().trade::<Trade>(NAME, app_id, req.0).await? {
            let r = self.repeat_create(&mut t, req.1, notify_url, return_url, now, out);
            self.save(&t).await?;
            return Ok(r.map(|()| t));
        }
        let pending: Option<FaultSpec> = self.store().take_setting(NAME, &format!("faults:{}", req.0)).await?;
        let mut faults = match pending {
            Some(f) => f,
            None => self.store().setting(NAME, "faults:default", now).await?.unwrap_or_default(),
        };
        if std::mem::take(&mut faults.fail_next_call) {
            self.store().set_setting(NAME, &format!("faults:{}", req.0), &faults, None).await?;
            return Ok(Err(system_busy()));
        }
        let t = self.new_trade(app_id, req, kind, notify_url, return_url, faults, now);
        self.save(&t).await?;
        Ok(Ok(t))
    }

    pub(super) async fn precreate(
        &self,
        app_id: &str,
        biz: &Map<String, Value>,
        notify_url: Option<&str>,
        out: &mut Outbox,
    ) -> anyhow::Result<Members> {
        Ok(match self.open_trade(app_id, biz, Kind::Qr, notify_url, None, out).await? {
            Ok(t) => {
                ok(vec![("out_trade_no", t.out_trade_no.clone().into()), ("qr_code", self.pay_url(&t.token).into())])
            }
            Err(m) => m,
        })
    }

    /// page.pay / wap.pay: the trade exists once the cashier opens (A.7 ⚠).
    pub(super) async fn cashier(
        &self,
        app_id: &str,
        kind: Kind,
        biz: &Map<String, Value>,
        notify_url: Option<&str>,
        return_url: Option<&str>,
    ) -> Response {
        let mut out = Vec::new();
        let result = {
            let _op = self.op.lock().await;
            let r = self.open_trade(app_id, biz, kind, notify_url, return_url, &mut out).await;
            self.send_all(out).await;
            r
        };
        match result {
            Ok(Ok(t)) => Html(self.render_trade(&t, None)).into_response(),
            Ok(Err(m)) => error_page(&m),
            Err(e) => error_page(&store_failed(e)),
        }
    }

    /// `alipay.data.dataservice.bill.downloadurl.query` for `bill_type=trade`.
    pub(super) async fn bill_url(&self, app_id: &str, biz: &Map<String, Value>) -> anyhow::Result<Members> {
        let now = now_ms();
        match biz_str(biz, "bill_type") {
            Some("trade") => {}
            Some(_) => return Ok(trades::biz_fail("ACQ.INVALID_PARAMETER", "沙箱仅支持 bill_type=trade")),
            None => return Ok(trades::biz_fail("ACQ.INVALID_PARAMETER", "缺少 bill_type")),
        }
        let Some(date) = biz_str(biz, "bill_date") else {
            return Ok(trades::biz_fail("ACQ.INVALID_PARAMETER", "缺少 bill_date"));
        };
        let Some(today) = clinicpay::time::local_date(now) else { return Ok(system_busy()) };
        let range = if let Some(d) = clinicpay::time::parse_date(date) {
            d.succ_opt().map(|next| (d, next, d.format("%Y%m%d").to_string(), d >= today))
        } else {
            chrono::NaiveDate::parse_from_str(&format!("{date}-01"), "%Y-%m-%d")
                .ok()
                .filter(|_| date.len() == 7)
                .and_then(|first| {
                    first
                        .checked_add_months(chrono::Months::new(1))
                        .map(|next| (first, next, first.format("%Y%m").to_string(), next > today))
                })
        };
        let Some((from, to, label, not_ready)) = range else {
            return Ok(trades::biz_fail("ACQ.INVALID_PARAMETER", "bill_date 格式错误"));
        };
        if not_ready {
            return Ok(trades::biz_fail("isp.bill_not_exist", "账单不存在"));
        }
        let token = crate::crypto::random_alnum(32);
        let account = format!("{}0156", seller_id(app_id));
        let link = BillLink {
            app_id: app_id.to_string(),
            from_ms: clinicpay::time::day_start(from),
            to_ms: clinicpay::time::day_start(to),
            label: label.clone(),
        };
        self.store().set_setting(NAME, &format!("bill:{token}"), &link, Some(now + 30_000)).await?;
        let url = format!(
            "{}/sandbox/alipay/bills/{token}?bizType=trade&userId={}&fileType=csv.zip&bizDates={label}&downloadFileName={account}_{label}.csv.zip",
            self.base(),
            seller_id(app_id),
        );
        Ok(ok(vec![("bill_download_url", url.into())]))
    }

    /// Rows of an app's bill between two instants: payments by payment time, refunds by refund time.
    pub(super) async fn bill_rows(
        &self,
        app_id: &str,
        from_ms: Millis,
        to_ms: Millis,
    ) -> anyhow::Result<Vec<bills::BillRow>> {
        let mut rows = Vec::new();
        for t in self.store().trades_with_money::<Trade>(NAME, app_id, from_ms, to_ms).await? {
            let base = |refund: bool, finished_ms: Millis, amount, out_request_no: Option<String>| bills::BillRow {
                trade_no: t.trade_no.clone(),
                out_trade_no: t.out_trade_no.clone(),
                refund,
                subject: t.subject.clone(),
                created_ms: t.created_ms,
                finished_ms,
                amount,
                out_request_no,
                buyer_logon_id: trades::BUYER_LOGON_ID.into(),
            };
            if let Some(paid) = t.paid_ms.filter(|p| (from_ms..to_ms).contains(p)) {
                rows.push(base(false, paid, t.total, None));
            }
            for r in t.refunds.iter().filter(|r| (from_ms..to_ms).contains(&r.at_ms)) {
                rows.push(base(true, r.at_ms, -r.amount, Some(r.out_request_no.clone())));
            }
        }
        rows.sort_by(|a, b| a.finished_ms.cmp(&b.finished_ms).then(a.trade_no.cmp(&b.trade_no)));
        Ok(rows)
    }
}
