//! What the WeChat Pay sandbox's `/v3` operations do (B.1, B.5): prepay, query, close, refund,
//! refund query — each reads a trade from the sandbox's store, changes it, writes it back and
//! queues the notifications it owes — and the payer paying.

use super::*;

impl WechatSandbox {
    /// The payer pays a trade: SUCCESS and `TRANSACTION.SUCCESS`.
    pub(super) async fn pay_trade(&self, mut t: Trade) -> anyhow::Result<()> {
        let now = now_ms();
        t.refresh(now);
        match t.state.as_str() {
            "NOTPAY" | "USERPAYING" => {}
            "SUCCESS" | "REFUND" => return Ok(()),
            other => bail!("trade {} is {other} and cannot be paid", t.out_trade_no),
        }
        let m = self.merchant(&t.mchid).await?.ok_or_else(|| anyhow!("merchant {} is gone", t.mchid))?;
        let seq = self.store().next("wechatpay.transaction").await?;
        let date = local_date(now).map(|d| d.format("%Y%m%d").to_string()).unwrap_or_default();
        t.state = "SUCCESS".into();
        t.transaction_id = Some(format!("4200000{date}{}", digits(seq, 13)));
        t.success_ms = Some(now);
        if t.payer_openid.is_none() {
            t.payer_openid = Some(format!("o{}", crypto::random_alnum(27)));
        }
        let plain = serde_json::to_vec(&t.transaction())?;
        let body = notification_body(&m.apiv3_key, "TRANSACTION.SUCCESS", "支付成功", "transaction", &plain, now)?;
        t.success_event = Some(body.clone());
        self.save(&t).await?;
        let notice = Notice {
            sandbox: NAME,
            label: format!("TRANSACTION.SUCCESS {}", t.out_trade_no),
            out_trade_no: t.out_trade_no.clone(),
            url: t.notify_url.clone(),
            body: body.into_bytes(),
            signing: self.keys.signing(&m, m.mode),
        };
        self.send(notice, &t.faults).await;
        Ok(())
    }

    pub(super) async fn prepay(&self, c: &Caller, kind: &str, body: &[u8]) -> anyhow::Result<Response> {
        let req: wire::Prepay = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return Ok(param_error(format!("请求参数不符合规则: {e}"))),
        };
        if req.mchid != c.mchid {
            return Ok(param_error("mchid与请求签名的商户号不一致"));
        }
        if req.appid != c.appid {
            return Ok(api_error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配"));
        }
        let desc_len = req.description.chars().count();
        if desc_len == 0 || desc_len > 127 {
            return Ok(param_error("description 长度应为1到127个字符"));
        }
        if !valid_out_trade_no(&req.out_trade_no) {
            return Ok(param_error("out_trade_no 应为6到32位数字、大小写字母或_-*|"));
        }
        if !(req.notify_url.starts_with("https://") || req.notify_url.starts_with("http://"))
            || req.notify_url.len() > 256
        {
            return Ok(param_error("notify_url 格式不正确"));
        }
        if req.amount.total <= 0 || req.amount.total > 100_000_000_000 {
            return Ok(param_error("amount.total 应为正整数（分）"));
        }
        if req.amount.currency.as_deref().is_some_and(|c| c != "CNY") {
            return Ok(param_error("amount.currency 仅支持CNY"));
        }
        let time_expire_ms = match req.time_expire.as_deref() {
            None => None,
            Some(s) => match wire::rfc3339_ms(s) {
                Some(ms) => Some(ms),
                None => return Ok(param_error("time_expire 应为RFC 3339格式")),
            },
        };
        let openid = req.payer.as_ref().and_then(|p| p.openid.clone()).filter(|s| !s.is_empty());
        let trade_type = match kind {
            "native" => "NATIVE",
            "jsapi" => {
                if openid.is_none() {
                    return Ok(param_error("payer.openid 为必填项"));
                }
                "JSAPI"
            }
            "h5" => {
                let scene = req.scene_info.as_ref();
                let ip = scene.and_then(|s| s.payer_client_ip.as_deref()).filter(|s| !s.is_empty());
                let h5 = scene.and_then(|s| s.h5_info.as_ref()).filter(|h| !h.kind.is_empty());
                if ip.is_none() || h5.is_none() {
                    return Ok(param_error("scene_info.payer_client_ip 与 scene_info.h5_info.type 为必填项"));
                }
                "MWEB"
            }
            _ => "APP",
        };
        let fingerprint = format!(
            "{trade_type}|{}|{}|{}|{}",
            req.amount.total,
            req.description,
            req.notify_url,
            openid.as_deref().unwrap_or("")
        );
        let _op = self.op.lock().await;
        let now = now_ms();
        if let Some(mut t) = self.store().trade::<Trade>(NAME, &c.mchid, &req.out_trade_no).await? {
            t.refresh(now);
            let failed = std::mem::take(&mut t.faults.fail_next_call);
            self.save(&t).await?;
            if failed {
                return Ok(system_error());
            }
            if t.paid() {
                return Ok(api_error(400, "ORDERPAID", "该订单已支付"));
            }
            if t.state == "CLOSED" {
                return Ok(api_error(400, "ORDER_CLOSED", "订单已关闭"));
            }
            if t.fingerprint != fingerprint {
                return Ok(api_error(400, "INVALID_REQUEST", "201 商户订单号重复"));
            }
            return Ok(self.ok_json(&t.answer, c));
        }
        let seq = self.store().next("wechatpay.prepay").await?;
        let token = crypto::random_alnum(24);
        let prepay_id = format!(
            "wx{}{}{}",
            clinicpay::time::to_beijing(now).map(|t| t.format("%Y%m%d%H%M%S").to_string()).unwrap_or_default(),
            digits(seq, 8),
            crypto::random_alnum(12).to_ascii_lowercase()
        );
        let page = self.page_url(&token);
        let answer = match trade_type {
            "NATIVE" => json!({ "code_url": page }),
            "MWEB" => json!({ "h5_url": format!("{page}?prepay_id={prepay_id}") }),
            _ => json!({ "prepay_id": prepay_id }),
        };
        let faults = self.store().setting(NAME, "faults:default", now).await?.unwrap_or_default();
        let t = Trade {
            mchid: c.mchid.clone(),
            appid: req.appid.clone(),
            out_trade_no: req.out_trade_no.clone(),
            trade_type: trade_type.into(),
            description: req.description.clone(),
            attach: req.attach.clone(),
            notify_url: req.notify_url.clone(),
            total_fen: req.amount.total,
            time_expire_ms,
            payer_openid: openid,
            state: "NOTPAY".into(),
            transaction_id: None,
            success_ms: None,
            token,
            answer: answer.clone(),
            fingerprint,
            refunds: Vec::new(),
            faults,
            payer_cancelled: false,
            success_event: None,
        };
        self.save(&t).await?;
        Ok(self.ok_json(&answer, c))
    }

    pub(super) async fn query(
        &self,
        c: &Caller,
        by: QueryBy,
        query: &HashMap<String, String>,
    ) -> anyhow::Result<Response> {
        match query.get("mchid") {
            None => return Ok(param_error("mchid 为必填项")),
            Some(m) if *m != c.mchid => return Ok(param_error("mchid与请求签名的商户号不一致")),
            _ => {}
        }
        let _op = self.op.lock().await;
        let t: Option<Trade> = match by {
            QueryBy::OutTradeNo(no) => self.store().trade(NAME, &c.mchid, &no).await?,
            QueryBy::TransactionId(id) => {
                self.store().trade_by_txn::<Trade>(NAME, &id).await?.filter(|t| t.mchid == c.mchid)
            }
        };
        let Some(mut t) = t else { return Ok(api_error(404, "ORDER_NOT_EXIST", "订单不存在")) };
        t.refresh(now_ms());
        let failed = std::mem::take(&mut t.faults.fail_next_call);
        self.save(&t).await?;
        if failed {
            return Ok(system_error());
        }
        Ok(self.ok_json(&t.transaction(), c))
    }

    pub(super) async fn close(&self, c: &Caller, out_trade_no: &str, body: &[u8]) -> anyhow::Result<Response> {
        #[derive(Deserialize)]
        struct CloseBody {
            mchid: String,
        }
        match serde_json::from_slice::<CloseBody>(body) {
            Ok(b) if b.mchid == c.mchid => {}
            Ok(_) => return Ok(param_error("mchid与请求签名的商户号不一致")),
            Err(e) => return Ok(param_error(format!("请求参数不符合规则: {e}"))),
        }
        let _op = self.op.lock().await;
        let Some(mut t) = self.store().trade::<Trade>(NAME, &c.mchid, out_trade_no).await? else {
            return Ok(api_error(404, "ORDER_NOT_EXIST", "订单不存在"));
        };
        t.refresh(now_ms());
        let failed = std::mem::take(&mut t.faults.fail_next_call);
        let paid = t.paid();
        if !failed && !paid {
            t.state = "CLOSED".into();
        }
        self.save(&t).await?;
        if failed {
            return Ok(system_error());
        }
        if paid {
            return Ok(api_error(400, "ORDERPAID", "订单已支付"));
        }
        Ok(self.signed(StatusCode::NO_CONTENT, Vec::new(), &c.signer))
    }

    pub(super) async fn refund(&self, c: &Caller, body: &[u8]) -> anyhow::Result<Response> {
        let req: wire::RefundRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return Ok(param_error(format!("请求参数不符合规则: {e}"))),
        };
        if !valid_out_refund_no(&req.out_refund_no) {
            return Ok(param_error("out_refund_no 格式不正确"));
        }
        if req.amount.currency != "CNY" {
            return Ok(param_error("amount.currency 仅支持CNY"));
        }
        if req.amount.refund <= 0 || req.amount.total <= 0 {
            return Ok(param_error("amount.refund 与 amount.total 应为正整数（分）"));
        }
        let _op = self.op.lock().await;
        let t: Option<Trade> = match (&req.out_trade_no, &req.transaction_id) {
            (Some(no), _) => self.store().trade(NAME, &c.mchid, no).await?,
            (None, Some(id)) => self.store().trade_by_txn::<Trade>(NAME, id).await?.filter(|t| t.mchid == c.mchid),
            (None, None) => return Ok(param_error("transaction_id 与 out_trade_no 必须二选一")),
        };
        let Some(mut t) = t else { return Ok(api_error(404, "RESOURCE_NOT_EXISTS", "订单不存在")) };
        let existing = self.store().refund_order(NAME, &c.mchid, &req.out_refund_no).await?;
        t.refresh(now_ms());
        if std::mem::take(&mut t.faults.fail_next_call) {
            self.save(&t).await?;
            return Ok(system_error());
        }
        if let Some(other_trade) = existing {
            let same = other_trade == t.out_trade_no;
            return Ok(match t.refunds.iter().find(|r| same && r.out_refund_no == req.out_refund_no) {
                Some(r) if r.amount_fen == req.amount.refund => self.ok_json(&t.refund_json(r), c),
                _ => api_error(400, "INVALID_REQUEST", "退款单号已存在，但请求参数与原退款单不一致"),
            });
        }
        if !t.paid() {
            return Ok(api_error(404, "RESOURCE_NOT_EXISTS", "订单未支付，不能发起退款"));
        }
        if req.amount.total != t.total_fen {
            return Ok(api_error(400, "INVALID_REQUEST", "订单金额与原订单金额不一致"));
        }
        if t.refunds.len() >= 50 {
            return Ok(api_error(400, "INVALID_REQUEST", "部分退款次数不能超过50次"));
        }
        if t.refunded_fen() + req.amount.refund > t.total_fen {
            return Ok(api_error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额"));
        }
        let now = now_ms();
        let seq = self.store().next("wechatpay.refund").await?;
        let date = local_date(now).map(|d| d.format("%Y%m%d").to_string()).unwrap_or_default();
        let wait = self.ctx.settings.scaled(REFUND_PROCESSING).as_millis() as i64;
        let rec = RefundRec {
            refund_id: format!("5030000{date}{}", digits(seq, 14)),
            out_refund_no: req.out_refund_no.clone(),
            amount_fen: req.amount.refund,
            status: "PROCESSING".into(),
            reason: req.reason.clone(),
            notify_url: req.notify_url.clone().filter(|u| !u.is_empty()),
            create_ms: now,
            success_ms: None,
            due_ms: Some(now + wait),
        };
        let answer = t.refund_json(&rec);
        t.refunds.push(rec);
        t.state = "REFUND".into();
        self.store().index_refund(NAME, &c.mchid, &req.out_refund_no, &t.out_trade_no).await?;
        self.save(&t).await?;
        Ok(self.ok_json(&answer, c))
    }

    /// PROCESSING → SUCCESS, then `REFUND.SUCCESS` to the refund's (or the trade's) notify_url.
    pub(super) async fn complete_refunds(&self, mut t: Trade, now: i64) -> anyhow::Result<()> {
        let m = self.merchant(&t.mchid).await?.ok_or_else(|| anyhow!("merchant {} is gone", t.mchid))?;
        let mut notices = Vec::new();
        for i in 0..t.refunds.len() {
            let r = &mut t.refunds[i];
            if r.status != "PROCESSING" || r.due_ms.is_some_and(|d| d > now) {
                continue;
            }
            r.status = "SUCCESS".into();
            r.success_ms = Some(now);
            r.due_ms = None;
            let r = t.refunds[i].clone();
            let plain = serde_json::to_vec(&t.refund_notice(&r))?;
            let body = notification_body(&m.apiv3_key, "REFUND.SUCCESS", "退款成功", "refund", &plain, now)?;
            notices.push(Notice {
                sandbox: NAME,
                label: format!("REFUND.SUCCESS {} {}", t.out_trade_no, r.out_refund_no),
                out_trade_no: t.out_trade_no.clone(),
                url: r.notify_url.clone().unwrap_or_else(|| t.notify_url.clone()),
                body: body.into_bytes(),
                signing: self.keys.signing(&m, m.mode),
            });
        }
        self.save(&t).await?;
        for n in notices {
            self.send(n, &t.faults).await;
        }
        Ok(())
    }

    pub(super) async fn query_refund(&self, c: &Caller, out_refund_no: &str) -> anyhow::Result<Response> {
        let _op = self.op.lock().await;
        let Some(no) = self.store().refund_order(NAME, &c.mchid, out_refund_no).await? else {
            return Ok(api_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"));
        };
        let Some(mut t) = self.store().trade::<Trade>(NAME, &c.mchid, &no).await? else {
            return Ok(api_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"));
        };
        if std::mem::take(&mut t.faults.fail_next_call) {
            self.save(&t).await?;
            return Ok(system_error());
        }
        Ok(match t.refunds.iter().find(|r| r.out_refund_no == out_refund_no) {
            Some(r) => self.ok_json(&t.refund_json(r), c),
            None => api_error(404, "RESOURCE_NOT_EXISTS", "退款单不存在"),
        })
    }
}
