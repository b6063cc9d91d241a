//! The configured gateways: clients built from channel configurations, secrets opened on the
//! way, cached per channel version (so an edit on any instance is picked up by every instance on
//! its next lookup).

use super::alipay::{AlipayClient, AlipaySettings};
use super::bank::{BankClient, BankSettings};
use super::wechatpay::{WechatClient, WechatSettings};
use async_trait::async_trait;
use clinicpay::ids::ChannelId;
use clinicpay::payments::{Provider, Rejection};
use clinicpay::ports::{
    ChannelInfo, ChannelRecord, ChannelSecrets, ConfigProblem, Gateway, GatewayError, Gateways, NotificationProfile,
    RawNotification, Sealed, Secrets, Store,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Builds the client for one configuration.
pub fn build_gateway(
    provider: Provider,
    settings: &str,
    secrets: &ChannelSecrets,
    http: reqwest::Client,
) -> anyhow::Result<Arc<dyn Gateway>> {
    Ok(match provider {
        Provider::Alipay => {
            let s: AlipaySettings =
                serde_json::from_str(settings).map_err(|e| anyhow::anyhow!("Alipay settings: {e}"))?;
            Arc::new(AlipayClient::new(s, &secrets.private_key, http)?)
        }
        Provider::WechatPay => {
            let s: WechatSettings =
                serde_json::from_str(settings).map_err(|e| anyhow::anyhow!("WeChat Pay settings: {e}"))?;
            let key = secrets.apiv3_key.as_deref().ok_or_else(|| anyhow::anyhow!("the APIv3 key is missing"))?;
            Arc::new(WechatClient::new(s, &secrets.private_key, key, http)?)
        }
        Provider::Bank => {
            let s: BankSettings = serde_json::from_str(settings).map_err(|e| anyhow::anyhow!("bank settings: {e}"))?;
            Arc::new(BankClient::new(s, &secrets.private_key, http)?)
        }
        Provider::Cash | Provider::Pos => {
            anyhow::bail!("{} is paid at the counter: it has no gateway to configure", provider.label_en())
        }
    })
}

struct Cached {
    version: i64,
    key_version: i64,
    info: ChannelInfo,
    gateway: Arc<dyn Gateway>,
}

pub struct ChannelGateways {
    store: Arc<dyn Store>,
    secrets: Arc<dyn Secrets>,
    http: reqwest::Client,
    cache: Mutex<HashMap<ChannelId, Arc<Cached>>>,
    /// The channel list, refreshed at most this often on the notification path.
    list: Mutex<Option<(Instant, Vec<ChannelRecord>)>>,
    list_ttl: Duration,
}

impl ChannelGateways {
    pub fn new(store: Arc<dyn Store>, secrets: Arc<dyn Secrets>) -> ChannelGateways {
        ChannelGateways {
            store,
            secrets,
            http: super::http_client(),
            cache: Mutex::new(HashMap::new()),
            list: Mutex::new(None),
            list_ttl: Duration::from_secs(2),
        }
    }

    fn open(&self, c: &ChannelRecord) -> anyhow::Result<ChannelSecrets> {
        let plain = self.secrets.open(
            c.id.as_str().as_bytes(),
            &Sealed { key_version: c.secret_key_version, ciphertext: c.secret_ciphertext.clone() },
        )?;
        Ok(serde_json::from_slice(&plain)?)
    }

    fn client_for(&self, c: &ChannelRecord) -> anyhow::Result<Arc<Cached>> {
        if let Some(hit) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&c.id) {
            if hit.version == c.version && hit.key_version == c.secret_key_version {
                return Ok(hit.clone());
            }
        }
        let secrets = self.open(c)?;
        let gateway = build_gateway(c.provider, &c.settings, &secrets, self.http.clone())?;
        let cached =
            Arc::new(Cached { version: c.version, key_version: c.secret_key_version, info: c.info(), gateway });
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(c.id.clone(), cached.clone());
        Ok(cached)
    }

    async fn channels(&self, fresh: bool) -> anyhow::Result<Vec<ChannelRecord>> {
        if !fresh {
            if let Some((at, list)) = self.list.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                if at.elapsed() < self.list_ttl {
                    return Ok(list.clone());
                }
            }
        }
        let list = self.store.list_channels().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        *self.list.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), list.clone()));
        Ok(list)
    }
}

#[async_trait]
impl Gateways for ChannelGateways {
    async fn default_channel(&self, provider: Provider) -> Result<(ChannelInfo, Arc<dyn Gateway>), GatewayError> {
        let list = self.channels(true).await?;
        let c = list
            .iter()
            .find(|c| c.provider == provider && c.enabled && c.is_default)
            .or_else(|| list.iter().find(|c| c.provider == provider && c.enabled))
            .ok_or(GatewayError::NoChannel(provider))?;
        let hit = self.client_for(c)?;
        Ok((hit.info.clone(), hit.gateway.clone()))
    }

    async fn channel(&self, channel_id: &ChannelId) -> Result<(ChannelInfo, Arc<dyn Gateway>), GatewayError> {
        let c = self
            .store
            .get_channel(channel_id)
            .await
            .map_err(|e| GatewayError::Internal(anyhow::anyhow!("{e}")))?
            .ok_or_else(|| GatewayError::UnknownChannel(channel_id.to_string()))?;
        // a disabled channel still serves queries, closes and refunds of its own trades
        let hit = self.client_for(&c)?;
        Ok((hit.info.clone(), hit.gateway.clone()))
    }

    async fn for_notification(
        &self,
        provider: Provider,
        n: &RawNotification,
        now_ms: clinicpay::time::Millis,
    ) -> Result<(ChannelInfo, Arc<dyn Gateway>), Rejection> {
        let list =
            self.channels(false).await.map_err(|e| Rejection::Malformed(format!("channel lookup failed: {e}")))?;
        let mut any = None;
        for c in list.iter().filter(|c| c.provider == provider) {
            match self.client_for(c) {
                Ok(hit) if hit.gateway.owns_notification(n) => return Ok((hit.info.clone(), hit.gateway.clone())),
                Ok(hit) => any = any.or(Some(hit)),
                Err(e) => tracing::error!(channel = %c.id, error = %e, "cannot build the channel's client"),
            }
        }
        // Nobody owns it. If it is not even well-formed, let a client of this provider say so
        // precisely (wrong content type, malformed); otherwise it is for an account we do not have.
        if let Some(hit) = any {
            if let Err(r @ (Rejection::Malformed(_) | Rejection::ContentType(_))) =
                hit.gateway.verify_notification(n, now_ms)
            {
                return Err(r);
            }
        }
        Err(Rejection::UnknownAccount(provider.as_str().to_string()))
    }

    fn notification_profile(&self, provider: Provider) -> NotificationProfile {
        match provider {
            Provider::Alipay => super::alipay::notification_profile(),
            Provider::WechatPay => super::wechatpay::notification_profile(),
            // counter channels receive no notifications; the routes exist for gateways only
            Provider::Bank | Provider::Cash | Provider::Pos => super::bank::notification_profile(),
        }
    }

    fn invalidate(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.list.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn check_config(
        &self,
        provider: Provider,
        settings: &str,
        secrets: &ChannelSecrets,
    ) -> Result<String, ConfigProblem> {
        check_fields(provider, settings, secrets)?;
        build_gateway(provider, settings, secrets, self.http.clone())
            .map(|g| g.account().to_string())
            .map_err(|e| ConfigProblem { code: "bad_channel_config", field: "settings", message: format!("{e:#}") })
    }
}

/// The fields each provider's form must fill, and the keys in it with the kind each must be.
/// Checked before a client is built, so a wrong key is named for what it is ("this is a public
/// key") rather than as a parse error.
fn check_fields(provider: Provider, settings: &str, secrets: &ChannelSecrets) -> Result<(), ConfigProblem> {
    use crate::crypto::{key_problem, KeyRole};
    let v: serde_json::Value = serde_json::from_str(settings).map_err(|e| ConfigProblem {
        code: "bad_settings",
        field: "settings",
        message: format!("not JSON: {e}"),
    })?;
    let text = |path: &[&str]| -> String {
        let mut at = &v;
        for p in path {
            at = &at[*p];
        }
        at.as_str().unwrap_or_default().trim().to_string()
    };
    let (required, public_key): (&[(&'static str, &[&str])], Option<(&'static str, &[&str])>) = match provider {
        Provider::Alipay => (
            &[("app_id", &["app_id"]), ("gateway_url", &["gateway_url"])],
            Some(("alipay_public_key", &["alipay_public_key"])),
        ),
        Provider::WechatPay => (
            &[
                ("mchid", &["mchid"]),
                ("appid", &["appid"]),
                ("api_base", &["api_base"]),
                ("merchant_serial_no", &["merchant_serial_no"]),
            ],
            (v["platform"]["mode"].as_str() == Some("public_key"))
                .then_some(("public_key", &["platform", "public_key"][..])),
        ),
        Provider::Bank => (
            &[("merchant_id", &["merchant_id"]), ("api_base", &["api_base"])],
            Some(("bank_public_key", &["bank_public_key"])),
        ),
        Provider::Cash | Provider::Pos => {
            return Err(ConfigProblem {
                code: "counter_channel_built_in",
                field: "provider",
                message: "cash and the counter's POS are built in: there is nothing to configure".into(),
            })
        }
    };
    for (field, path) in required {
        if text(path).is_empty() {
            return Err(ConfigProblem { code: "field_missing", field, message: "required".into() });
        }
    }
    for (field, path) in required.iter().filter(|(f, _)| matches!(*f, "gateway_url" | "api_base")) {
        let url = text(path);
        if reqwest::Url::parse(&url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
            return Err(ConfigProblem { code: "bad_url", field, message: "an http(s) address".into() });
        }
    }
    if provider == Provider::WechatPay {
        let serial = text(&["merchant_serial_no"]);
        if !(8..=64).contains(&serial.len()) || !serial.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ConfigProblem {
                code: "bad_serial_no",
                field: "merchant_serial_no",
                message: "the merchant API certificate's serial number is 8–64 hexadecimal characters".into(),
            });
        }
        if v["platform"]["mode"].as_str() == Some("public_key")
            && !text(&["platform", "public_key_id"]).starts_with("PUB_KEY_ID_")
        {
            return Err(ConfigProblem {
                code: "bad_public_key_id",
                field: "public_key_id",
                message: "the WeChat Pay public key id starts with PUB_KEY_ID_".into(),
            });
        }
    }
    if let Some((field, path)) = public_key {
        if let Some((code, message)) = key_problem(&text(path), KeyRole::Public) {
            return Err(ConfigProblem { code, field, message: message.into() });
        }
    }
    if let Some((code, message)) = key_problem(&secrets.private_key, KeyRole::Private) {
        return Err(ConfigProblem { code, field: "private_key", message: message.into() });
    }
    Ok(())
}
