//! The `opshub` command: serve the hub, migrate the database, load demo data.
// Output goes through `outln!` (server/output.rs), never `println!`.
#![deny(clippy::print_stdout, clippy::print_stderr)]

// jemalloc: glibc's malloc and free were a third of the server's time in
// the drift benchmark (README, Benchmark); mimalloc was slower.
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "ssr")]
mod cli {
    use clap::{Parser, Subcommand};
    use leptos::prelude::*;
    use opshub::domain::Role;
    use opshub::server::config::Settings;
    use opshub::server::engine::{self, EngineHealth, EngineSettings};
    use opshub::server::store::{self, Store};
    use opshub::server::{admin, http, metrics, seed, AppState};
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
        /// Manage users and their memberships.
        #[command(subcommand)]
        User(UserCommand),
        /// Start an operation (or join the active run with the same scope).
        #[command(subcommand)]
        Start(StartCommand),
        /// Inventory snapshots, the input of drift.
        #[command(subcommand)]
        Inventory(InventoryCommand),
        /// Run only the engine's workers (no HTTP), until SIGTERM or Ctrl-C.
        Worker,
        /// Abort a queued or running run.
        Abort {
            #[arg(long)]
            tenant: String,
            /// The run's id.
            #[arg(long)]
            run: String,
            /// Email of the operator aborting it.
            #[arg(long = "as")]
            initiator: String,
        },
        /// Remove what retention lets go (the `retain_*` settings) now and
        /// print how many records of each kind went.
        Prune {
            /// Only count what would go; delete nothing.
            #[arg(long)]
            dry_run: bool,
        },
        /// Measure the engine and print figures (no assertions).
        #[command(subcommand)]
        Bench(BenchCommand),
    }

    #[derive(Subcommand)]
    enum BenchCommand {
        /// Runs claimed+completed per second, items per second and
        /// queued->claimed latency, on SQLite and on PostgreSQL, each in a
        /// fresh database of its own.
        Engine {
            /// A PostgreSQL server to create the scratch database on.
            #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
            postgres: String,
            /// Runs in the throughput phases.
            #[arg(long, default_value_t = 4_000)]
            runs: usize,
            #[arg(long, value_enum, default_value_t = BenchBackends::Both)]
            backend: BenchBackends,
        },
        /// Server render time of the hub with a large tenant (p50/p99), the
        /// compressed JS + WASM a browser downloads to show it, and live
        /// streams: one, then `--streams` at once. Run it from the
        /// repository root after `make build`.
        Web {
            /// Runs in the benchmark tenant.
            #[arg(long, default_value_t = 200_000)]
            runs: usize,
            /// Live streams held open at once (10 per tenant) while runs
            /// change at 200/s.
            #[arg(long, default_value_t = 1_000)]
            streams: usize,
        },
        /// Prune rows/s of a platform whose records are all past their
        /// retention (`--runs` runs with their failures, joins,
        /// notifications, findings and audit), pruned while the engine
        /// runs, and the engine's claim latency (p99) before and during.
        Prune {
            /// A PostgreSQL server to create the scratch database on.
            #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
            postgres: String,
            #[arg(long, default_value_t = 1_000_000)]
            runs: usize,
            #[arg(long, value_enum, default_value_t = BenchBackends::Both)]
            backend: BenchBackends,
        },
        /// Every page a viewer opens, timed (p50/p99 of 100 requests)
        /// through the HTTP server on a platform of 1,000 tenants loaded in
        /// bulk into a scratch database (runs in every status, failures,
        /// findings, notifications, audit), at `--runs` and at
        /// `--small-runs`, on each database.
        Scale {
            /// A PostgreSQL server to create the scratch databases on.
            #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
            postgres: String,
            #[arg(long, default_value_t = 1_000_000)]
            runs: usize,
            /// The platform the large one is compared with.
            #[arg(long, default_value_t = 10_000)]
            small_runs: usize,
            #[arg(long, value_enum, default_value_t = BenchBackends::Both)]
            backend: BenchBackends,
            /// Leave the loaded databases behind (their URLs are printed),
            /// to EXPLAIN a page's queries on them.
            #[arg(long)]
            keep: bool,
        },
    }

    /// The databases a benchmark measures.
    #[derive(Clone, Copy, clap::ValueEnum)]
    enum BenchBackends {
        Both,
        Sqlite,
        Postgres,
    }

    impl BenchBackends {
        fn list(self) -> Vec<store::Backend> {
            match self {
                BenchBackends::Both => vec![store::Backend::Sqlite, store::Backend::Postgres],
                BenchBackends::Sqlite => vec![store::Backend::Sqlite],
                BenchBackends::Postgres => vec![store::Backend::Postgres],
            }
        }
    }

    #[derive(Subcommand)]
    enum InventoryCommand {
        /// Record a completed inventory sync of a scope from a JSON file: an
        /// array of {subject_type, external_id, display_name, payload}.
        Import {
            #[arg(long)]
            tenant: String,
            #[arg(long)]
            scope: String,
            file: PathBuf,
        },
    }

    async fn inventory_command(
        store: &dyn Store,
        command: InventoryCommand,
        max_bytes: u64,
    ) -> Result<(), String> {
        let InventoryCommand::Import {
            tenant,
            scope,
            file,
        } = command;
        let bytes = opshub::server::inventory::read_file(&file, max_bytes)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let tenant = store
            .tenant_by_slug(&tenant)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no tenant with slug {tenant:?}"))?;
        let sync = opshub::server::inventory::import(store, &tenant, &scope, &bytes)
            .await
            .map_err(|e| format!("{}: {e}", file.display()))?;
        opshub::outln!(
            "recorded inventory sync {} of scope {scope:?} with {} items",
            sync.id,
            sync.item_count
        );
        Ok(())
    }

    #[derive(Subcommand)]
    enum StartCommand {
        /// Generate drift findings between the last two inventory syncs of a scope.
        Drift {
            #[arg(long)]
            tenant: String,
            /// The inventory scope (selection hash).
            #[arg(long)]
            scope: String,
            /// Email of the operator starting it.
            #[arg(long = "as")]
            initiator: String,
        },
        /// Snapshot policies into a backup set.
        AddPolicies {
            #[arg(long)]
            tenant: String,
            /// Backup set id.
            #[arg(long)]
            set: String,
            /// Policy id (repeat for several).
            #[arg(long = "policy", required = true)]
            policies: Vec<String>,
            #[arg(long)]
            include_payload: bool,
            #[arg(long = "as")]
            initiator: String,
        },
    }

    async fn start_command(store: &dyn Store, command: StartCommand) -> Result<(), String> {
        use opshub::domain::{BackupSetId, PolicyId};
        use opshub::server::operations::{self, AddPoliciesOptions, StartRequest};
        let (tenant, initiator, request) = match command {
            StartCommand::Drift {
                tenant,
                scope,
                initiator,
            } => (tenant, initiator, StartRequest::Drift { scope_key: scope }),
            StartCommand::AddPolicies {
                tenant,
                set,
                policies,
                include_payload,
                initiator,
            } => {
                let backup_set_id = BackupSetId::parse(&set).map_err(|e| e.0)?;
                let policy_ids = policies
                    .iter()
                    .map(|id| PolicyId::parse(id))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.0)?;
                let options = AddPoliciesOptions { include_payload };
                (
                    tenant,
                    initiator,
                    StartRequest::AddPolicies {
                        backup_set_id,
                        policy_ids,
                        options,
                    },
                )
            }
        };
        let (user, membership) = operator(store, &initiator, &tenant).await?;
        let started = operations::start(store, &membership.tenant, &user, &request)
            .await
            .map_err(|e| e.to_string())?;
        let id = started.run.summary.id;
        if started.joined {
            opshub::outln!("joined active run {id} (already running)");
        } else {
            opshub::outln!("queued run {id}");
        }
        opshub::outln!("{}", opshub::domain::run_path(&membership.tenant.slug, id));
        Ok(())
    }

    /// The same rule as in the app: the initiator operates in the tenant.
    async fn operator(
        store: &dyn Store,
        email: &str,
        tenant: &str,
    ) -> Result<(opshub::domain::User, opshub::domain::Membership), String> {
        let user = store
            .user_credentials(email)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no user with email {email:?}"))?
            .user;
        let membership = store
            .membership(user.id, tenant)
            .await
            .map_err(|e| e.to_string())?
            .filter(|m| m.role >= Role::Operator)
            .ok_or_else(|| format!("{email} is not an operator of tenant {tenant:?}"))?;
        Ok((user, membership))
    }

    async fn abort_command(
        store: &dyn Store,
        tenant: &str,
        run: &str,
        initiator: &str,
    ) -> Result<(), String> {
        use opshub::domain::RunId;
        use opshub::server::operations::{self, AbortError};
        let run = RunId::parse(run).map_err(|e| e.0)?;
        let (user, membership) = operator(store, initiator, tenant).await?;
        match operations::abort(store, &membership.tenant, &user, run).await {
            Ok(outcome) => {
                opshub::outln!("{}", operations::describe_abort(outcome));
                Ok(())
            }
            Err(AbortError::NotFound) => Err(format!("no run {run} in tenant {tenant:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn prune_command(
        store: &dyn Store,
        settings: &Settings,
        dry_run: bool,
    ) -> Result<(), String> {
        use opshub::server::retention::RetentionPolicy;
        let policy = RetentionPolicy::from_settings(settings);
        let now = opshub::domain::Timestamp::now();
        let report = store
            .prune(&policy, now, dry_run)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("another opshub instance is pruning this database now; try again later")?;
        for (kind, count) in report.kinds() {
            opshub::outln!("{kind} {count}");
        }
        let verb = if dry_run {
            "would be removed"
        } else {
            "removed"
        };
        opshub::outln!("total {} {verb}", report.total());
        Ok(())
    }

    #[derive(Subcommand)]
    enum UserCommand {
        /// Create a user (or reuse one by email) and grant a role in a tenant.
        Add {
            #[arg(long)]
            email: String,
            /// Display name (needed for a new user).
            #[arg(long, default_value = "")]
            name: String,
            /// Tenant slug.
            #[arg(long)]
            tenant: String,
            #[arg(long, value_parser = parse_role)]
            role: Role,
            /// Read the new user's password from the first line of standard input.
            #[arg(long)]
            password_stdin: bool,
        },
        /// Change a member's role in a tenant.
        SetRole {
            #[arg(long)]
            email: String,
            #[arg(long)]
            tenant: String,
            #[arg(long, value_parser = parse_role)]
            role: Role,
        },
        /// Remove a user's membership in a tenant.
        Remove {
            #[arg(long)]
            email: String,
            #[arg(long)]
            tenant: String,
        },
        /// Set a user's password (first line of standard input); ends their sessions.
        SetPassword {
            #[arg(long)]
            email: String,
        },
    }

    fn parse_role(text: &str) -> Result<Role, String> {
        Role::parse(text).map_err(|e| e.0)
    }

    fn password_from_stdin() -> Result<String, String> {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    async fn user_command(store: &dyn Store, command: UserCommand) -> Result<(), String> {
        let result = match command {
            UserCommand::Add {
                email,
                name,
                tenant,
                role,
                password_stdin,
            } => {
                let password = if password_stdin {
                    Some(password_from_stdin()?)
                } else {
                    None
                };
                admin::cli::add_user(store, &email, &name, &tenant, role, password)
                    .await
                    .map(|user| {
                        opshub::outln!("{} is now {} in {tenant}", user.email, role.as_str())
                    })
            }
            UserCommand::SetRole {
                email,
                tenant,
                role,
            } => admin::cli::set_role(store, &email, &tenant, role)
                .await
                .map(|()| opshub::outln!("{email} is now {} in {tenant}", role.as_str())),
            UserCommand::Remove { email, tenant } => {
                admin::cli::remove_membership(store, &email, &tenant)
                    .await
                    .map(|()| opshub::outln!("{email} is no longer a member of {tenant}"))
            }
            UserCommand::SetPassword { email } => {
                let password = password_from_stdin()?;
                admin::cli::set_password(store, &email, password)
                    .await
                    .map(|()| opshub::outln!("password of {email} changed"))
            }
        };
        result.map_err(|e| e.to_string())
    }

    pub async fn run() -> Result<(), String> {
        let cli = Cli::parse();
        let explicit = cli.config.is_some();
        let path = cli.config.unwrap_or_else(|| PathBuf::from("Leptos.toml"));
        let settings = Settings::load(&path, explicit).map_err(|e| e.to_string())?;
        init_tracing(&settings.log);
        let command = cli.command.unwrap_or(Command::Serve);
        // Benchmarks measure scratch databases of their own: the configured
        // one is neither opened nor created.
        if let Command::Bench(bench) = command {
            return bench_command(bench).await;
        }
        let store = store::connect(&settings.database_url, settings.database_max_connections)
            .await
            .map_err(|e| e.to_string())?;
        match command {
            Command::Migrate => {
                migrate(store.as_ref()).await?;
                opshub::outln!("database is up to date");
                Ok(())
            }
            Command::SeedDemo => {
                migrate(store.as_ref()).await?;
                let summary = seed::seed_demo(store.as_ref())
                    .await
                    .map_err(|e| e.to_string())?;
                opshub::outln!(
                    "seeded {} tenants, {} users, {} runs",
                    summary.tenants,
                    summary.users,
                    summary.runs
                );
                Ok(())
            }
            Command::User(command) => {
                migrate(store.as_ref()).await?;
                // Running servers must hear what changed (their live streams
                // of a removed member or a changed password end): the
                // changes are relayed before this process exits.
                store.publish_changes();
                let result = user_command(store.as_ref(), command).await;
                relay_before_exit(store.as_ref()).await;
                result
            }
            Command::Start(command) => {
                migrate(store.as_ref()).await?;
                start_command(store.as_ref(), command).await
            }
            Command::Inventory(command) => {
                migrate(store.as_ref()).await?;
                inventory_command(store.as_ref(), command, settings.import_max_bytes).await
            }
            Command::Abort {
                tenant,
                run,
                initiator,
            } => {
                migrate(store.as_ref()).await?;
                abort_command(store.as_ref(), &tenant, &run, &initiator).await
            }
            Command::Prune { dry_run } => {
                migrate(store.as_ref()).await?;
                prune_command(store.as_ref(), &settings, dry_run).await
            }
            Command::Worker => {
                migrate(store.as_ref()).await?;
                let shutdown = http::shutdown_on_signal();
                let metrics = serve_metrics(&settings, &store, &shutdown).await?;
                let engine_settings = EngineSettings::from_settings(&settings);
                let health = EngineHealth::new(&engine_settings);
                engine::run(store.clone(), engine_settings, health, shutdown).await;
                if let Some(metrics) = metrics {
                    let _ = metrics.await;
                }
                store.close().await;
                Ok(())
            }
            Command::Serve => serve(settings, store).await,
            Command::Bench(_) => unreachable!("benchmarks returned above"),
        }
    }

    async fn bench_command(command: BenchCommand) -> Result<(), String> {
        match command {
            BenchCommand::Engine {
                postgres,
                runs,
                backend,
            } => opshub::server::bench::engine::run(&postgres, runs, &backend.list()).await,
            BenchCommand::Web { runs, streams } => {
                opshub::server::bench::web::run(runs, streams).await
            }
            BenchCommand::Prune {
                postgres,
                runs,
                backend,
            } => opshub::server::bench::prune::run(&postgres, runs, &backend.list()).await,
            BenchCommand::Scale {
                postgres,
                runs,
                small_runs,
                backend,
                keep,
            } => {
                opshub::server::bench::scale::run(
                    &postgres,
                    runs,
                    small_runs,
                    &backend.list(),
                    keep,
                )
                .await
            }
        }
    }

    /// Waits (a few seconds at most) until this process's committed
    /// changes have reached the other processes on the database.
    async fn relay_before_exit(store: &dyn Store) {
        const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
        if tokio::time::timeout(PATIENCE, store.change_log().flushed())
            .await
            .is_err()
        {
            tracing::warn!("running servers may not have heard of this change; their live streams end within 15 minutes");
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
        // Expired sessions are swept in the background.
        tokio::spawn(
            tower_sessions::session_store::ExpiredDeletion::continuously_delete_expired(
                store.session_store(),
                std::time::Duration::from_secs(600),
            ),
        );
        let shutdown = http::shutdown_on_signal();
        let metrics = serve_metrics(&settings, &store, &shutdown).await?;
        let engine_settings = EngineSettings::from_settings(&settings);
        let health = EngineHealth::new(&engine_settings);
        let engine = tokio::spawn(engine::run(
            store.clone(),
            engine_settings,
            health.clone(),
            shutdown.clone(),
        ));
        let mut http_shutdown = shutdown.clone();
        let served = http::serve(
            AppState::new(leptos_options, store.clone(), settings).with_engine_health(health),
            listener,
            async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            },
        )
        .await
        .map_err(|e| format!("server error: {e}"));
        // Runs in flight get their grace period before the process exits.
        let _ = engine.await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        store.close().await;
        served
    }

    /// Serves `GET /metrics` on `metrics_listen`, when it is set, until
    /// `shutdown` turns true.
    async fn serve_metrics(
        settings: &Settings,
        store: &Arc<dyn Store>,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
        let Some(addr) = settings.metrics_listen_addr().map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            format!("cannot listen on {addr} (`metrics_listen` / OPSHUB_METRICS_LISTEN): {e}")
        })?;
        tracing::info!("metrics on http://{addr}/metrics");
        let mut stop = shutdown.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let store = store.clone();
        Ok(Some(tokio::spawn(async move {
            if let Err(e) = metrics::serve(store, listener, stopped).await {
                tracing::error!(error = %e, "the metrics server stopped");
            }
        })))
    }

    fn init_tracing(filter: &str) {
        let filter = tracing_subscriber::EnvFilter::try_new(filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
        // A panic's message can quote what the code was handling.
        engine::fault::log_panics();
    }
}

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() {
    if let Err(message) = cli::run().await {
        // Not `eprintln!`, which panics when standard error is closed.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "opshub: {message}");
        std::process::exit(1);
    }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser build enters through `opshub::hydrate`.
}
