//! `clinicpay`: serve, migrate, create-user, seed-demo.

use anyhow::Context;
use clap::{Parser, Subcommand};
use clinicpay::auth::Role;
use clinicpay::services::auth::{Actor, NewUserInput};
use clinicpay::services::demo::DEMO_USERS;
use server::config::Config;
use server::startup::{build_services, Application};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "clinicpay", version, about = "ClinicPay: hospital payments and billing")]
struct Cli {
    /// Optional TOML configuration file (environment variables override it).
    #[arg(long, global = true, env = "CLINICPAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (the default).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Create a staff user. The password is read from CLINICPAY_NEW_PASSWORD or standard input.
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: String,
        /// cashier, finance or admin
        #[arg(long)]
        role: String,
    },
    /// Load the demo data set into an empty database.
    SeedDemo,
    /// Check the books: every journal entry sealed and balanced, every paid session allocated
    /// exactly once, no bill paid twice, the audit chain intact. Exits non-zero on a problem.
    Verify,
    /// Re-encrypt every channel secret under the newest master key (key rotation, step 2).
    RotateSecrets,
}

fn print_demo_logins(url: &str) {
    println!();
    println!("  ClinicPay is running at {url}");
    println!("  Demo logins (user / password):");
    for (user, name, role, password) in DEMO_USERS {
        println!("    {user:<8} / {password:<14} {name} ({})", role.label_en());
    }
    println!();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = Config::load(cli.config.as_deref())?;
    server::telemetry::init(&cfg);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cfg).await,
        Command::Migrate => {
            build_services(&cfg).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::CreateUser { username, display_name, role } => {
            let role = Role::parse(&role).context("role must be cashier, finance or admin")?;
            let password = match std::env::var("CLINICPAY_NEW_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let services = build_services(&cfg).await?;
            let user = services
                .create_user_as(&Actor::system("cli"), NewUserInput { username, display_name, role, password }, false)
                .await
                .map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
            println!("created user {} ({})", user.username, user.role);
            Ok(())
        }
        Command::SeedDemo => {
            if cfg.production() && !cfg.allow_demo_in_production {
                anyhow::bail!("production mode refuses demo data (CLINICPAY_ALLOW_DEMO_IN_PRODUCTION=true overrides)");
            }
            // the sandboxes are needed to register the demo channels' keys
            let app = Application::build(Config { listen: "127.0.0.1:0".parse()?, ..cfg }).await?;
            if server::demo::seed(&app.services, app.sandboxes.as_ref()).await? {
                println!("demo data loaded");
            } else {
                println!("the database already has patients; nothing loaded");
            }
            Ok(())
        }
        Command::Verify => {
            let services = build_services(&cfg).await?;
            let started = std::time::Instant::now();
            let report = services.store.ledger_report().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let audit = services.store.verify_audit_chain().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            println!(
                "audit log: {} entries, chain {}",
                audit.entries,
                audit.broken_at.map_or("intact".to_string(), |s| format!("BROKEN at {s}"))
            );
            let closes = services.store.verify_close_chain().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "day closes: {} closed, chain {}",
                closes.closes,
                closes.broken_at.as_deref().map_or("intact".to_string(), |d| format!("BROKEN at {d}"))
            );
            let ok = report.consistent() && audit.broken_at.is_none() && closes.broken_at.is_none();
            println!("checked in {} ms", started.elapsed().as_millis());
            if ok {
                println!("the books are consistent");
                Ok(())
            } else {
                anyhow::bail!("the books are NOT consistent (see above)")
            }
        }
        Command::RotateSecrets => {
            let services = build_services(&cfg).await?;
            let n = services.reencrypt_channels_as(&Actor::system("cli")).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "re-encrypted {n} channel configurations under master key version {}",
                services.secrets.current_version()
            );
            Ok(())
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    tracing::info!(config = ?cfg, "starting");
    let seed = cfg.seed_demo;
    let app = Application::build(cfg).await?;
    if seed {
        if server::demo::seed(&app.services, app.sandboxes.as_ref()).await? {
            tracing::info!("seeded the demo data set");
        }
    } else if let Some(sb) = app.sandboxes.as_ref() {
        server::demo::prepare_sandbox_channels(&app.services, sb, false).await?;
    }
    if app.cfg.production() && !app.cfg.allow_sandbox_in_production {
        let sandbox_channels = app.services.store.list_channels().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if sandbox_channels.iter().any(|c| c.enabled && c.sandbox) {
            anyhow::bail!(
                "production mode refuses to start with enabled sandbox channels: disable them, or set \
                 CLINICPAY_ALLOW_SANDBOX_IN_PRODUCTION=true"
            );
        }
    }
    let url = app.cfg.public_url();
    if app.services.store.count_demo_users().await? > 0 {
        print_demo_logins(&url);
    } else {
        println!("ClinicPay is running at {url}");
    }
    if app.sandboxes.is_some() {
        let at = match app.cfg.sandbox_control_token {
            Some(_) => "CLINICPAY_SANDBOX_CONTROL_TOKEN".to_string(),
            None => app.cfg.data_dir.join("sandbox-control-token").display().to_string(),
        };
        println!("  Sandboxes at {url}/sandbox/… (control endpoints need the X-Sandbox-Token header: {at})");
    }
    let shutdown = async {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                s.recv().await;
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutting down");
    };
    app.run_until(shutdown).await
}
