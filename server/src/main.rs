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
            let services = build_services(&cfg).await?;
            let today = clinicpay::time::local_date(services.now()).context("clock")?;
            if services.seed_demo(today).await.map_err(|e| anyhow::anyhow!("{e}"))? {
                println!("demo data loaded");
            } else {
                println!("the database already has patients; nothing loaded");
            }
            Ok(())
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    tracing::info!(config = ?cfg, "starting");
    let seed = cfg.seed_demo;
    let app = Application::build(cfg).await?;
    if seed {
        let today = clinicpay::time::local_date(app.services.now()).context("clock")?;
        if app.services.seed_demo(today).await.map_err(|e| anyhow::anyhow!("{e}"))? {
            tracing::info!("seeded the demo data set");
        }
    }
    let url = app.cfg.public_url();
    if app.services.store.count_demo_users().await? > 0 {
        print_demo_logins(&url);
    } else {
        println!("ClinicPay is running at {url}");
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
