//! Demo mode (B4, G6): the demo data set, and every provider configured against the built-in
//! sandboxes with freshly generated merchant keys. On every start, sandbox channels are
//! registered again with the sandboxes (their keys may have been rotated by hand, or the sandbox
//! database deleted) and follow the server's current public URL.

use crate::crypto::PrivateKey;
use crate::sandbox::Sandboxes;
use anyhow::Context;
use clinicpay::payments::Provider;
use clinicpay::ports::{ChannelRecord, ChannelSecrets, Sealed};
use clinicpay::services::auth::Actor;
use clinicpay::services::channels::ChannelInput;
use clinicpay::services::Services;

/// Demo merchant accounts.
pub const DEMO_ALIPAY_APP_ID: &str = "2021009900000001";
pub const DEMO_WECHAT_MCHID: &str = "1900000109";
pub const DEMO_WECHAT_APPID: &str = "wxd9a8cc55c0000001";
pub const DEMO_BANK_MERCHANT: &str = "CP0000000001";

/// Seeds the demo data set (billing, users, channels, paid history) into an empty database.
pub async fn seed(services: &Services, sandboxes: Option<&Sandboxes>) -> anyhow::Result<bool> {
    let today = clinicpay::time::local_date(services.now()).context("clock")?;
    let fresh = services.seed_demo(today).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(sb) = sandboxes {
        prepare_sandbox_channels(services, sb, true).await?;
    }
    if fresh {
        let channels: Vec<(Provider, clinicpay::ids::ChannelId)> = services
            .store
            .list_channels()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_iter()
            .filter(|c| c.enabled && c.is_default)
            .map(|c| (c.provider, c.id))
            .collect();
        let n = services.seed_demo_history(today, &channels).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(sessions = n, "demo payment history written");
    }
    Ok(fresh)
}

fn open(services: &Services, c: &ChannelRecord) -> anyhow::Result<ChannelSecrets> {
    let plain = services.secrets.open(
        c.id.as_str().as_bytes(),
        &Sealed { key_version: c.secret_key_version, ciphertext: c.secret_ciphertext.clone() },
    )?;
    Ok(serde_json::from_slice(&plain)?)
}

/// Registers sandbox channels with the local sandboxes; creates a demo channel per provider
/// when `create_missing` and the provider has none.
pub async fn prepare_sandbox_channels(services: &Services, sb: &Sandboxes, create_missing: bool) -> anyhow::Result<()> {
    let base = sb.ctx.settings.base_url.clone();
    let channels = services.store.list_channels().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    for provider in Provider::GATEWAYS {
        let mine: Vec<&ChannelRecord> = channels.iter().filter(|c| c.provider == provider).collect();
        if mine.is_empty() && create_missing {
            if let Err(e) = create_demo_channel(services, sb, provider).await {
                tracing::warn!(provider = %provider, error = %e, "could not create the demo channel");
            }
            continue;
        }
        for c in mine.into_iter().filter(|c| c.sandbox) {
            if let Err(e) = reregister(services, sb, c, &base).await {
                tracing::warn!(channel = %c.id, error = %e, "could not register a sandbox channel with the sandbox");
            }
        }
    }
    services.gateways.invalidate();
    Ok(())
}

async fn create_demo_channel(services: &Services, sb: &Sandboxes, provider: Provider) -> anyhow::Result<()> {
    let key = PrivateKey::generate()?;
    let public_pem = key.public_key().to_pem();
    let base = &sb.ctx.settings.base_url;
    let (name, settings, apiv3) = match provider {
        Provider::Alipay => {
            let alipay_public_key = sb.alipay.register_app(DEMO_ALIPAY_APP_ID, &public_pem).await?;
            let settings = crate::gateways::alipay::AlipaySettings {
                app_id: DEMO_ALIPAY_APP_ID.into(),
                gateway_url: format!("{base}/sandbox/alipay/gateway.do"),
                alipay_public_key,
                seller_id: None,
            };
            ("支付宝当面付（沙箱）Alipay sandbox", serde_json::to_string(&settings)?, String::new())
        }
        Provider::WechatPay => {
            let apiv3 = crate::crypto::random_alnum(32);
            let serial = hex::encode_upper(crate::crypto::random_bytes::<20>());
            let (settings, _) = wechat_settings(sb, base, &serial, &public_pem, &apiv3).await?;
            ("微信支付 Native（沙箱）WeChat Pay sandbox", serde_json::to_string(&settings)?, apiv3)
        }
        Provider::Bank => {
            let bank_public_key = sb.bank.register_merchant(DEMO_BANK_MERCHANT, &public_pem).await?;
            let settings = crate::gateways::bank::BankSettings {
                merchant_id: DEMO_BANK_MERCHANT.into(),
                api_base: format!("{base}/sandbox/bank"),
                bank_public_key,
            };
            ("银行卡（沙箱）Bank card sandbox", serde_json::to_string(&settings)?, String::new())
        }
        Provider::Cash | Provider::Pos => anyhow::bail!("the counter channels are built in"),
    };
    services
        .create_channel_as(
            &Actor::system("seed-demo"),
            ChannelInput {
                provider,
                name: name.into(),
                settings,
                private_key: key.to_pkcs8_pem(),
                apiv3_key: apiv3,
                sandbox: true,
                enabled: true,
                make_default: true,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
    Ok(())
}

async fn wechat_settings(
    sb: &Sandboxes,
    base: &str,
    serial: &str,
    merchant_public_pem: &str,
    apiv3: &str,
) -> anyhow::Result<(crate::gateways::wechatpay::WechatSettings, String)> {
    let (platform_public_key, public_key_id) = sb
        .wechatpay
        .register_merchant(DEMO_WECHAT_MCHID, DEMO_WECHAT_APPID, serial, merchant_public_pem, apiv3)
        .await?;
    Ok((
        crate::gateways::wechatpay::WechatSettings {
            mchid: DEMO_WECHAT_MCHID.into(),
            appid: DEMO_WECHAT_APPID.into(),
            api_base: format!("{base}/sandbox/wechatpay"),
            merchant_serial_no: serial.into(),
            platform: crate::gateways::wechatpay::WechatPlatform::PublicKey {
                public_key_id: public_key_id.clone(),
                public_key: platform_public_key,
            },
        },
        public_key_id,
    ))
}

/// Points a sandbox channel at this server's sandbox, registers its merchant key there, and
/// stores refreshed settings (the sandbox's key or base URL may differ after a restart).
async fn reregister(services: &Services, sb: &Sandboxes, c: &ChannelRecord, base: &str) -> anyhow::Result<()> {
    let secrets = open(services, c)?;
    let public_pem = PrivateKey::parse(&secrets.private_key)?.public_key().to_pem();
    let new_settings = match c.provider {
        Provider::Alipay => {
            let mut s: crate::gateways::alipay::AlipaySettings = serde_json::from_str(&c.settings)?;
            if !s.gateway_url.contains("/sandbox/alipay/") {
                return Ok(()); // a sandbox flag on an outside gateway: leave it alone
            }
            s.alipay_public_key = sb.alipay.register_app(&s.app_id, &public_pem).await?;
            s.gateway_url = format!("{base}/sandbox/alipay/gateway.do");
            serde_json::to_string(&s)?
        }
        Provider::WechatPay => {
            let s: crate::gateways::wechatpay::WechatSettings = serde_json::from_str(&c.settings)?;
            if !s.api_base.contains("/sandbox/wechatpay") {
                return Ok(());
            }
            let apiv3 = secrets.apiv3_key.clone().unwrap_or_default();
            let (mut fresh, _) = wechat_settings(sb, base, &s.merchant_serial_no, &public_pem, &apiv3).await?;
            fresh.mchid = s.mchid.clone();
            fresh.appid = s.appid.clone();
            serde_json::to_string(&fresh)?
        }
        Provider::Bank => {
            let mut s: crate::gateways::bank::BankSettings = serde_json::from_str(&c.settings)?;
            if !s.api_base.contains("/sandbox/bank") {
                return Ok(());
            }
            s.bank_public_key = sb.bank.register_merchant(&s.merchant_id, &public_pem).await?;
            s.api_base = format!("{base}/sandbox/bank");
            serde_json::to_string(&s)?
        }
        Provider::Cash | Provider::Pos => return Ok(()),
    };
    let same = serde_json::from_str::<serde_json::Value>(&new_settings)?
        == serde_json::from_str::<serde_json::Value>(&c.settings)?;
    if !same {
        let rec = ChannelRecord {
            settings: new_settings,
            version: c.version + 1,
            updated_at_ms: services.now(),
            ..c.clone()
        };
        let audit = services.audit_input(
            &Actor::system("sandbox"),
            "sandbox_channel_refreshed",
            "channel",
            c.id.as_str(),
            serde_json::json!({ "reason": "re-registered with the built-in sandbox at startup" }),
        );
        services.store.update_channel(&rec, c.version, &audit).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}
