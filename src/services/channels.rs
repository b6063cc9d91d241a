//! Payment channel configuration (G6, S4): several per provider, one default, sandbox and
//! enabled flags; private keys sealed at rest, masked when shown, re-encryptable under a new
//! master key; every change audited.

use super::auth::Actor;
use super::{ServiceError, ServiceResult, Services};
use crate::auth::{CurrentUser, Role};
use crate::ids::ChannelId;
use crate::payments::Provider;
use crate::ports::{ChannelRecord, ChannelSecrets, Sealed};
use crate::views::{ChannelTestView, ChannelView};
use sha2::{Digest, Sha256};

/// What the admin form submits. Empty secret fields on an update keep the stored secret.
#[derive(Debug, Clone)]
pub struct ChannelInput {
    pub provider: Provider,
    pub name: String,
    /// Provider-specific, non-secret settings as JSON text.
    pub settings: String,
    pub private_key: String,
    pub apiv3_key: String,
    pub sandbox: bool,
    pub enabled: bool,
    pub make_default: bool,
}

fn mask(secret: &str) -> String {
    let digest = Sha256::digest(secret.trim().as_bytes());
    format!("SHA-256 {}…", &hex::encode(digest)[..12])
}

fn require_admin(actor: &CurrentUser) -> ServiceResult<()> {
    if actor.role == Role::Admin {
        Ok(())
    } else {
        Err(ServiceError::Forbidden)
    }
}

impl Services {
    pub(crate) fn open_secrets(&self, c: &ChannelRecord) -> ServiceResult<ChannelSecrets> {
        let sealed = Sealed { key_version: c.secret_key_version, ciphertext: c.secret_ciphertext.clone() };
        let plain = self.secrets.open(c.id.as_str().as_bytes(), &sealed).map_err(ServiceError::Internal)?;
        serde_json::from_slice(&plain)
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("sealed channel secrets: {e}")))
    }

    fn seal_secrets(&self, channel_id: &ChannelId, s: &ChannelSecrets) -> ServiceResult<Sealed> {
        let plain = serde_json::to_vec(s).map_err(|e| ServiceError::Internal(e.into()))?;
        self.secrets.seal(channel_id.as_str().as_bytes(), &plain).map_err(ServiceError::Internal)
    }

    pub fn channel_view(&self, c: &ChannelRecord) -> ChannelView {
        let (pk, api) = match self.open_secrets(c) {
            Ok(s) => (mask(&s.private_key), s.apiv3_key.as_deref().map(mask)),
            Err(_) => ("无法解密 cannot decrypt: master key missing?".to_string(), None),
        };
        ChannelView {
            id: c.id.clone(),
            provider: c.provider,
            name: c.name.clone(),
            account: c.account_id.clone(),
            is_default: c.is_default,
            enabled: c.enabled,
            sandbox: c.sandbox,
            settings: c.settings.clone(),
            private_key_mask: pk,
            apiv3_key_mask: api,
            key_version: c.secret_key_version,
            version: c.version,
            updated_at_ms: c.updated_at_ms,
        }
    }

    /// Providers with at least one enabled channel: what the charge screen offers.
    pub async fn enabled_providers(&self) -> ServiceResult<Vec<Provider>> {
        let set: std::collections::BTreeSet<Provider> =
            self.store.list_channels().await?.into_iter().filter(|c| c.enabled).map(|c| c.provider).collect();
        Ok(set.into_iter().collect())
    }

    /// The latest stored provider notifications (administrators).
    pub async fn notifications(
        &self,
        actor: &CurrentUser,
        limit: i64,
    ) -> ServiceResult<Vec<crate::views::NotificationView>> {
        require_admin(actor)?;
        Ok(self.store.list_notifications(limit.clamp(1, 1000)).await?)
    }

    pub async fn list_channels(&self, actor: &CurrentUser) -> ServiceResult<Vec<ChannelView>> {
        require_admin(actor)?;
        Ok(self.store.list_channels().await?.iter().map(|c| self.channel_view(c)).collect())
    }

    fn validate_input(&self, input: &ChannelInput, secrets: &ChannelSecrets) -> ServiceResult<String> {
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(ServiceError::invalid("bad_channel_name", "name: the channel name must be 1–60 characters"));
        }
        if !serde_json::from_str::<serde_json::Value>(&input.settings).is_ok_and(|v| v.is_object()) {
            return Err(ServiceError::invalid("bad_settings", "settings must be a JSON object"));
        }
        if input.provider == Provider::WechatPay
            && !secrets.apiv3_key.as_deref().is_some_and(|k| k.len() == 32 && k.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ServiceError::invalid("bad_apiv3_key", "apiv3_key: the WeChat Pay APIv3 key is 32 characters"));
        }
        self.gateways
            .check_config(input.provider, &input.settings, secrets)
            .map_err(|p| ServiceError::invalid(p.code, format!("{}: {}", p.field, p.message)))
    }

    /// Creates a channel (admin page, demo setup). `actor` is audited.
    pub async fn create_channel_as(&self, actor: &Actor, input: ChannelInput) -> ServiceResult<ChannelView> {
        let secrets = ChannelSecrets {
            private_key: input.private_key.trim().to_string(),
            apiv3_key: Some(input.apiv3_key.trim().to_string()).filter(|k| !k.is_empty()),
        };
        let account = self.validate_input(&input, &secrets)?;
        let id = self.ids.new_id::<ChannelId>();
        let sealed = self.seal_secrets(&id, &secrets)?;
        let now = self.now();
        let rec = ChannelRecord {
            id: id.clone(),
            provider: input.provider,
            name: input.name.trim().to_string(),
            account_id: account,
            is_default: input.make_default && input.enabled,
            enabled: input.enabled,
            sandbox: input.sandbox,
            settings: input.settings.clone(),
            secret_ciphertext: sealed.ciphertext,
            secret_key_version: sealed.key_version,
            version: 1,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let audit = self.audit_input(
            actor,
            "channel_created",
            "channel",
            id.as_str(),
            serde_json::json!({ "after": public_fields(&rec), "secrets": "set" }),
        );
        match self.store.insert_channel(&rec, &audit).await {
            Ok(()) => {}
            Err(crate::ports::StoreError::Conflict(_)) => {
                return Err(ServiceError::conflict(
                    "channel_exists",
                    format!("a {} channel for account {} already exists", rec.provider, rec.account_id),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        self.gateways.invalidate();
        Ok(self.channel_view(&rec))
    }

    pub async fn create_channel(
        &self,
        actor: &CurrentUser,
        ip: &str,
        input: ChannelInput,
    ) -> ServiceResult<ChannelView> {
        require_admin(actor)?;
        self.create_channel_as(&Actor::user(actor, ip), input).await
    }

    /// Edits a channel; `expected_version` guards against overwriting someone else's change.
    pub async fn update_channel(
        &self,
        actor: &CurrentUser,
        ip: &str,
        id: &str,
        expected_version: i64,
        input: ChannelInput,
    ) -> ServiceResult<ChannelView> {
        require_admin(actor)?;
        let id = ChannelId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        let before = self.store.get_channel(&id).await?.ok_or(ServiceError::NotFound("channel"))?;
        if before.provider != input.provider {
            return Err(ServiceError::invalid("bad_provider", "a channel's provider cannot change"));
        }
        let mut secrets = self.open_secrets(&before)?;
        let secret_changed = !input.private_key.trim().is_empty() || !input.apiv3_key.trim().is_empty();
        if !input.private_key.trim().is_empty() {
            secrets.private_key = input.private_key.trim().to_string();
        }
        if !input.apiv3_key.trim().is_empty() {
            secrets.apiv3_key = Some(input.apiv3_key.trim().to_string());
        }
        let account = self.validate_input(&input, &secrets)?;
        let sealed = self.seal_secrets(&id, &secrets)?;
        let rec = ChannelRecord {
            name: input.name.trim().to_string(),
            account_id: account,
            enabled: input.enabled,
            sandbox: input.sandbox,
            settings: input.settings.clone(),
            secret_ciphertext: sealed.ciphertext,
            secret_key_version: sealed.key_version,
            version: expected_version + 1,
            updated_at_ms: self.now(),
            is_default: before.is_default && input.enabled,
            ..before.clone()
        };
        let audit = self.audit_input(
            &Actor::user(actor, ip),
            "channel_updated",
            "channel",
            id.as_str(),
            serde_json::json!({ "before": public_fields(&before), "after": public_fields(&rec), "secrets": if secret_changed { "replaced" } else { "kept" } }),
        );
        self.store.update_channel(&rec, expected_version, &audit).await?;
        if input.make_default && rec.enabled && !rec.is_default {
            self.set_default_channel(actor, ip, id.as_str()).await?;
        }
        self.gateways.invalidate();
        let after = self.store.get_channel(&id).await?.ok_or(ServiceError::NotFound("channel"))?;
        Ok(self.channel_view(&after))
    }

    /// "Test connection" (issue 14 #9): asks the provider about an order that does not exist.
    /// An answer that the provider signed and we verified, saying "no such order", proves the
    /// address, our private key (the provider checked our signature) and the provider's public
    /// key (we checked theirs). Audited; changes nothing else.
    pub async fn test_channel(&self, actor: &CurrentUser, ip: &str, id: &str) -> ServiceResult<ChannelTestView> {
        use crate::payments::{Outcome, TradeState};
        require_admin(actor)?;
        let id = ChannelId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        let (_, gateway) = self.gateways.channel(&id).await?;
        let probe = self.ids.new_id::<crate::ids::OutTradeNo>();
        let call = gateway.query_payment(probe.as_str()).await;
        let signature_word = |c: &str| c.to_ascii_uppercase().contains("SIGN");
        let (ok, code, provider_code, message) = match call.outcome {
            Outcome::Success(t) => (
                true,
                "ok",
                Some(t.provider_state.clone()).filter(|s| !s.is_empty()),
                if t.state == TradeState::NotFound {
                    "the provider answered \"no such order\" and its signature verified".to_string()
                } else {
                    format!("the provider answered (trade state {}) and its signature verified", t.provider_state)
                },
            ),
            Outcome::Waiting(_) => (true, "ok", None, "the provider answered and its signature verified".into()),
            Outcome::Failure(e) if e.is_not_found() => (
                true,
                "ok",
                Some(e.sub_code.clone().unwrap_or(e.code.clone())),
                "the provider checked our signature and answered \"no such order\"; its signature verified".into(),
            ),
            Outcome::Failure(e) if signature_word(&e.code) || e.sub_code.as_deref().is_some_and(signature_word) => (
                false,
                "signature_refused",
                Some(e.sub_code.clone().unwrap_or(e.code.clone())),
                format!("the provider refused our signature ({}): the private key does not match the key registered with the provider", e.message),
            ),
            Outcome::Failure(e) => (
                false,
                "provider_refused",
                Some(e.sub_code.clone().unwrap_or(e.code.clone())),
                e.message.clone(),
            ),
            Outcome::Unknown(reason) => (false, "no_answer", None, reason),
        };
        let audit = self.audit_input(
            &Actor::user(actor, ip),
            "channel_tested",
            "channel",
            id.as_str(),
            serde_json::json!({ "ok": ok, "code": code, "provider_code": provider_code }),
        );
        self.store.append_audit(&audit).await?;
        Ok(ChannelTestView { ok, code: code.to_string(), provider_code, message, at_ms: self.now() })
    }

    pub async fn set_default_channel(&self, actor: &CurrentUser, ip: &str, id: &str) -> ServiceResult<()> {
        require_admin(actor)?;
        let id = ChannelId::parse(id).map_err(|e| ServiceError::invalid("bad_id", e.to_string()))?;
        let audit = self.audit_input(
            &Actor::user(actor, ip),
            "channel_made_default",
            "channel",
            id.as_str(),
            serde_json::json!({}),
        );
        self.store.set_default_channel(&id, self.now(), &audit).await?;
        self.gateways.invalidate();
        Ok(())
    }

    /// Re-seals every channel's secrets under the current master key (rotation step 2).
    /// Returns how many channels were re-encrypted.
    pub async fn reencrypt_channels_as(&self, actor: &Actor) -> ServiceResult<usize> {
        let current = self.secrets.current_version();
        let mut n = 0;
        for c in self.store.list_channels().await? {
            if c.secret_key_version == current {
                continue;
            }
            let secrets = self.open_secrets(&c)?;
            let sealed = self.seal_secrets(&c.id, &secrets)?;
            let rec = ChannelRecord {
                secret_ciphertext: sealed.ciphertext,
                secret_key_version: sealed.key_version,
                version: c.version + 1,
                updated_at_ms: self.now(),
                ..c.clone()
            };
            let audit = self.audit_input(
                actor,
                "channel_secrets_reencrypted",
                "channel",
                c.id.as_str(),
                serde_json::json!({ "before": { "key_version": c.secret_key_version }, "after": { "key_version": current } }),
            );
            self.store.update_channel(&rec, c.version, &audit).await?;
            n += 1;
        }
        self.gateways.invalidate();
        Ok(n)
    }

    pub async fn reencrypt_channels(&self, actor: &CurrentUser, ip: &str) -> ServiceResult<usize> {
        require_admin(actor)?;
        self.reencrypt_channels_as(&Actor::user(actor, ip)).await
    }
}

/// What the audit log may record about a channel: everything but the secrets.
fn public_fields(c: &ChannelRecord) -> serde_json::Value {
    serde_json::json!({
        "name": c.name,
        "provider": c.provider.as_str(),
        "account": c.account_id,
        "enabled": c.enabled,
        "sandbox": c.sandbox,
        "default": c.is_default,
        "settings": serde_json::from_str::<serde_json::Value>(&c.settings).unwrap_or(serde_json::Value::Null),
        "key_version": c.secret_key_version,
    })
}
