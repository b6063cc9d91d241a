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
        session_ttl_ms: cfg.session_ttl_minutes * 60_000,
        ..ServiceConfig::default()
    }
}

pub async fn build_services(cfg: &Config) -> anyhow::Result<Services> {
    let store = crate::db::connect(
        &cfg.database_url,
        &crate::db::DbOptions { max_connections: cfg.db_max_connections, migrate: true },
    )
    .await?;
    Ok(Services {
        store,
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        config: Arc::new(service_config(cfg)),
    })
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
        let services = build_services(&cfg).await?;
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
        };
        let mut router = http::router(http_state, leptos_options(&cfg, addr));
        let sandboxes = if cfg.sandbox {
            let sb = crate::sandbox::Sandboxes::new(crate::sandbox::SandboxSettings {
                base_url: cfg.public_url(),
                time_scale_permille: cfg.sandbox_time_scale_permille,
                key_dir: Some(cfg.data_dir.join("sandbox-keys")),
            })?;
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

    /// Serves until `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
    }
}
