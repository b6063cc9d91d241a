//! The WeChat Pay sandbox's merchants and keys: registration, request authentication (B.2),
//! signed answers (B.3) and the platform certificate list (B.4).

use super::*;

impl WechatSandbox {
    /// Registers (or replaces) a merchant; returns the WeChat Pay public key (PEM) and its id.
    pub async fn register_merchant(
        &self,
        mchid: &str,
        appid: &str,
        merchant_serial_no: &str,
        merchant_public_key_pem: &str,
        apiv3_key: &str,
    ) -> anyhow::Result<(String, String)> {
        self.register(mchid, appid, merchant_serial_no, merchant_public_key_pem, apiv3_key, Mode::PublicKey).await
    }

    pub(super) async fn register(
        &self,
        mchid: &str,
        appid: &str,
        merchant_serial_no: &str,
        merchant_public_key_pem: &str,
        apiv3_key: &str,
        mode: Mode,
    ) -> anyhow::Result<(String, String)> {
        if mchid.is_empty() || mchid.len() > 32 || !mchid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            bail!("mchid must be 1-32 letters or digits");
        }
        if appid.trim().is_empty() || merchant_serial_no.trim().is_empty() {
            bail!("appid and merchant_serial_no are required");
        }
        if apiv3_key.len() != 32 || !apiv3_key.is_ascii() {
            bail!("apiv3_key must be 32 ASCII characters");
        }
        let key = PublicKey::parse(merchant_public_key_pem).context("merchant_public_key")?;
        let mch_digits: u64 = mchid
            .bytes()
            .filter(u8::is_ascii_digit)
            .fold(0u64, |n, b| n.wrapping_mul(10).wrapping_add(u64::from(b - b'0')) % 10_000_000_000);
        let public_key_id = format!("PUB_KEY_ID_01{}{}", digits(mch_digits, 10), digits(1, 24));
        let m = Merchant {
            appid: appid.to_string(),
            serial_no: merchant_serial_no.to_string(),
            public_key: key.to_base64(),
            apiv3_key: apiv3_key.to_string(),
            public_key_id: public_key_id.clone(),
            mode,
        };
        self.store().register(NAME, mchid, &m).await?;
        Ok((self.keys.pk_key.public_key().to_pem(), public_key_id))
    }

    /// The platform certificate (serial, PEM) served by `/v3/certificates`.
    pub fn platform_certificate(&self) -> (String, String) {
        (self.keys.cert_serial.clone(), self.cert_pem.clone())
    }

    /// The WeChat Pay public key (PEM) of public-key mode.
    pub fn platform_public_key(&self) -> String {
        self.keys.pk_key.public_key().to_pem()
    }

    /// Checks `Authorization` against the merchant's key, over the request target as sent or
    /// with the mount prefix stripped (B.2, ARCHITECTURE.md).
    pub(super) async fn authenticate(
        &self,
        method: &Method,
        original: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        force_cert: bool,
    ) -> Result<Caller, Response> {
        let sign_error = |issue: &str, url: &str| {
            api_error_detail(
                401,
                "SIGN_ERROR",
                "签名错误，请检查后再试",
                Some(json!({
                    "field": "signature",
                    "location": "authorization",
                    "detail": { "issue": issue },
                    "sign_information": { "method": method.as_str(), "url": url },
                })),
            )
        };
        let target = original.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
        let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(wire::read_authorization);
        let Some(auth) = auth else {
            return Err(sign_error("authorization header is missing or malformed", &target));
        };
        let mut m = match self.merchant(&auth.mchid).await {
            Ok(Some(m)) => m,
            Ok(None) => return Err(api_error(400, "MCH_NOT_EXISTS", "商户号不存在")),
            Err(e) => return Err(storage_error(e)),
        };
        if !wire::same_serial(&auth.serial_no, &m.serial_no) {
            return Err(sign_error("serial_no does not match the merchant certificate", &target));
        }
        let ts: i64 = match auth.timestamp.parse() {
            Ok(t) => t,
            Err(_) => return Err(sign_error("timestamp is not a number", &target)),
        };
        if (i128::from(now_ms().div_euclid(1000)) - i128::from(ts)).abs() >= i128::from(MAX_SKEW_SECS) {
            return Err(sign_error("timestamp expired", &target));
        }
        let Ok(key) = PublicKey::parse(&m.public_key) else { return Err(system_error()) };
        let mut candidates = vec![target.clone()];
        if let Some(rest) = target.strip_prefix(MOUNT) {
            candidates.push(rest.to_string());
        }
        let ok = candidates.iter().any(|url| {
            key.verify_sha256_b64(
                &wire::request_message(method.as_str(), url, &auth.timestamp, &auth.nonce_str, body),
                &auth.signature,
            )
        });
        if !ok {
            return Err(sign_error("sign not match", &target));
        }
        let asked = headers.get("wechatpay-serial").and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
        let remembered = if asked.starts_with("PUB_KEY_ID_") {
            Mode::PublicKey
        } else if !asked.is_empty() && !force_cert {
            Mode::Certificate
        } else {
            m.mode
        };
        if remembered != m.mode {
            m.mode = remembered;
            if let Err(e) = self.store().register(NAME, &auth.mchid, &m).await {
                return Err(storage_error(e));
            }
        }
        let mode = if force_cert { Mode::Certificate } else { m.mode };
        let signer = self.keys.signer(&self.keys.signing(&m, mode));
        Ok(Caller { mchid: auth.mchid, appid: m.appid.clone(), apiv3_key: m.apiv3_key.clone(), signer })
    }

    pub(super) fn signed(&self, status: StatusCode, body: Vec<u8>, signer: &Signer) -> Response {
        let mut b = Response::builder().status(status).header(header::CONTENT_TYPE, "application/json; charset=utf-8");
        for (k, v) in signer.headers(&body) {
            b = b.header(k, v);
        }
        b.body(Body::from(body)).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }

    pub(super) fn ok_json(&self, value: &serde_json::Value, c: &Caller) -> Response {
        self.signed(StatusCode::OK, value.to_string().into_bytes(), &c.signer)
    }

    pub(super) fn certificates(&self, c: &Caller) -> Response {
        let Ok(enc) = wire::encrypted_resource(&c.apiv3_key, None, "certificate", self.cert_pem.as_bytes()) else {
            return system_error();
        };
        let list = json!({ "data": [{
            "serial_no": self.keys.cert_serial,
            "effective_time": rfc3339_beijing(self.cert_not_before_ms),
            "expire_time": rfc3339_beijing(self.cert_not_after_ms),
            "encrypt_certificate": enc,
        }]});
        self.ok_json(&list, c)
    }
}
