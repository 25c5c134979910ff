//! The `opshub` command: serve the hub, migrate the database, load demo data.

#[cfg(feature = "ssr")]
mod cli {
    use clap::{Parser, Subcommand};
    use leptos::prelude::*;
    use opshub::server::config::Settings;
    use opshub::server::store::{self, Store};
    use opshub::server::{http, seed, AppState};
    use std::path::PathBuf;
    use std::sync::Arc;

    #[derive(Parser)]
    #[command(
        name = "opshub",
        version,
        about = "Operations hub of a multi-tenant admin platform"
    )]
    struct Cli {
        /// Settings file (default: ./Leptos.toml; a missing default file means built-in defaults).
        #[arg(long, global = true, env = "OPSHUB_CONFIG")]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<Command>,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Migrate the database and serve the hub (the default).
        Serve,
        /// Apply pending database migrations and exit.
        Migrate,
        /// Load the demo data into an empty database.
        SeedDemo,
    }

    pub async fn run() -> Result<(), String> {
        let cli = Cli::parse();
        let explicit = cli.config.is_some();
        let path = cli.config.unwrap_or_else(|| PathBuf::from("Leptos.toml"));
        let settings = Settings::load(&path, explicit).map_err(|e| e.to_string())?;
        init_tracing(&settings.log);
        let store = store::connect(&settings.database_url, settings.database_max_connections)
            .await
            .map_err(|e| e.to_string())?;
        match cli.command.unwrap_or(Command::Serve) {
            Command::Migrate => {
                migrate(store.as_ref()).await?;
                println!("database is up to date");
                Ok(())
            }
            Command::SeedDemo => {
                migrate(store.as_ref()).await?;
                let summary = seed::seed_demo(store.as_ref())
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "seeded {} tenants, {} users, {} runs",
                    summary.tenants, summary.users, summary.runs
                );
                Ok(())
            }
            Command::Serve => serve(settings, store).await,
        }
    }

    async fn migrate(store: &dyn Store) -> Result<(), String> {
        store.migrate().await.map_err(|e| e.to_string())
    }

    async fn serve(settings: Settings, store: Arc<dyn Store>) -> Result<(), String> {
        migrate(store.as_ref()).await?;
        if settings.seed_demo_when_empty && store.is_empty().await.map_err(|e| e.to_string())? {
            let summary = seed::seed_demo(store.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(
                runs = summary.runs,
                "loaded demo data into the empty database"
            );
        }
        let addr = settings.listen_addr().map_err(|e| e.to_string())?;
        // Asset locations come from cargo-leptos (compiled in) or LEPTOS_* env.
        let mut leptos_options = get_configuration(None)
            .map_err(|e| format!("leptos configuration: {e}"))?
            .leptos_options;
        leptos_options.site_addr = addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (`listen` / OPSHUB_LISTEN): {e}"))?;
        tracing::info!("opshub listening on http://{addr}");
        http::serve(
            AppState {
                leptos_options,
                store,
            },
            listener,
        )
        .await
        .map_err(|e| format!("server error: {e}"))
    }

    fn init_tracing(filter: &str) {
        let filter = tracing_subscriber::EnvFilter::try_new(filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    }
}

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() {
    if let Err(message) = cli::run().await {
        eprintln!("opshub: {message}");
        std::process::exit(1);
    }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser build enters through `opshub::hydrate`.
}
