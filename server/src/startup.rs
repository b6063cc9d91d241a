//! Building and running the application: configuration → store → services → router → listener.

use crate::config::Config;
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::runtime::{RandomIds, SystemClock};
use anyhow::Context;
use clinicpay::services::{ServiceConfig, Services};
use leptos::config::{Env, LeptosOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub fn service_config(cfg: &Config) -> ServiceConfig {
    ServiceConfig {
        production: cfg.production() && !cfg.allow_demo_in_production,
        public_url: cfg.public_url(),
        late_payment_policy: cfg.late_payment_policy,
        redrive_after_ms: cfg.redrive_after_seconds * 1000,
        session_ttl_ms: cfg.session_ttl_minutes * 60_000,
        session_idle_ms: cfg.session_idle_minutes * 60_000,
        rejected_notification_retention_ms: cfg.rejected_notification_retention_days * clinicpay::time::DAY_MS,
        refund_policy: cfg.refund_policy().unwrap_or_default(),
        ..ServiceConfig::default()
    }
}

pub async fn build_services(cfg: &Config) -> anyhow::Result<Services> {
    Ok(build_parts(cfg).await?.0)
}

/// The services and the live-event hub behind them.
pub async fn build_parts(cfg: &Config) -> anyhow::Result<(Services, Arc<crate::events::EventHub>)> {
    let connected = crate::db::connect(
        &cfg.database_url,
        &crate::db::DbOptions { max_connections: cfg.db_max_connections, migrate: true },
    )
    .await?;
    let store = connected.store;
    let batch_workers = if connected.pg.is_some() { 4 } else { 1 };
    let hub = Arc::new(crate::events::EventHub::new(connected.pg));
    hub.spawn_listener();
    let secrets: Arc<dyn clinicpay::ports::Secrets> = Arc::new(crate::secrets::MasterKeys::load(cfg)?);
    let gateways = Arc::new(crate::gateways::registry::ChannelGateways::new(store.clone(), secrets.clone()));
    let services = Services {
        store,
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        config: Arc::new(service_config(cfg)),
        secrets,
        gateways,
        events: hub.clone(),
        webhooks: Arc::new(crate::webhooks::HttpTransport::new()),
        apply_batcher: None,
        notification_batcher: None,
        notify_budget: Arc::new(clinicpay::services::budget::SourceBudget::new(Default::default())),
    }
    .with_notification_batching(64, batch_workers)
    .with_apply_batching(64, batch_workers);
    Ok((services, hub))
}

pub fn leptos_options(cfg: &Config, addr: SocketAddr) -> LeptosOptions {
    let output_name = std::env::var("LEPTOS_OUTPUT_NAME").unwrap_or_else(|_| "clinicpay".into());
    LeptosOptions::builder()
        .output_name(output_name)
        .site_root(cfg.site_root.clone())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .env(if cfg.production() { Env::PROD } else { Env::DEV })
        .build()
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    pub sandboxes: Option<crate::sandbox::Sandboxes>,
    pub services: Services,
    pub cfg: Arc<Config>,
    pub metrics: Arc<Metrics>,
}

impl Application {
    /// Binds the listener (port 0 picks a free port) and builds everything behind it.
    pub async fn build(mut cfg: Config) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        if cfg.listen.port() == 0 {
            cfg.listen = addr;
        }
        let (services, hub) = build_parts(&cfg).await?;
        if cfg.production() && !cfg.allow_demo_in_production && services.store.count_demo_users().await? > 0 {
            anyhow::bail!(
                "production mode refuses to start while demo users exist: disable them, or set \
                 CLINICPAY_ALLOW_DEMO_IN_PRODUCTION=true"
            );
        }
        let cfg = Arc::new(cfg);
        let metrics = Arc::new(Metrics::default());
        let http_state = HttpState {
            services: services.clone(),
            metrics: metrics.clone(),
            cfg: cfg.clone(),
            fn_access: Arc::new(http::server_fn_access()?),
            hub,
        };
        let mut router = http::router(http_state, leptos_options(&cfg, addr));
        let sandboxes = if cfg.sandbox {
            let token = match &cfg.sandbox_control_token {
                Some(t) => t.trim().to_string(),
                None => crate::sandbox::control_token_in(&cfg.data_dir)?,
            };
            let sb = crate::sandbox::Sandboxes::new(crate::sandbox::SandboxSettings::in_dir(
                cfg.public_url(),
                cfg.sandbox_time_scale_permille,
                &cfg.data_dir,
            ))
            .await?
            .with_control_token(&token);
            router = router.merge(sb.router());
            Some(sb)
        } else {
            None
        };
        Ok(Application { listener, router, sandboxes, services, cfg, metrics })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound")
    }

    /// Serves until `shutdown` resolves; runs the background workers alongside when configured.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let workers = self.cfg.run_workers.then(|| tokio::spawn(run_workers(self.services.clone())));
        let upkeep = tokio::spawn(self.metrics.clone().upkeep());
        let r = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP");
        if let Some(w) = workers {
            w.abort();
        }
        upkeep.abort();
        r
    }
}

/// The background workers: every step once a second (sooner while there is work).
pub async fn run_workers(services: Services) {
    loop {
        let busy = match services.work_once().await {
            Ok(report) => report.total() > 0,
            Err(e) => {
                tracing::error!(error = %e, "a worker round failed");
                false
            }
        };
        tokio::time::sleep(std::time::Duration::from_millis(if busy { 100 } else { 1_000 })).await;
    }
}
