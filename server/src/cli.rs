//! The `depot` command: parses its arguments, starts the runtime and runs
//! the server or an administration command.
//!
//! It lives in the library, and `main.rs` only calls it, so that its code is
//! compiled once, here. In the binary crate, what it instantiates (the
//! runtime's `block_on` of the command's future, which holds `serve::run`'s
//! and the rest, clap's parser, tracing's subscriber) was compiled there
//! again, after the library and with nothing else left to build: the binary
//! took 69 s of a cold release build on a slow machine, 2 s from here
//! (`cargo build --timings`), and the library took no longer.

use std::io::BufRead;
use std::process::ExitCode;

use crate::config::{ApikeyCommand, Cli, Command, LogFormat, StorageArgs, UserCommand};
use crate::core::{Core, Limits};
use crate::serve;
use crate::store::Db;
use anyhow::Context;
use app::model::Role;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("DEPOT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The database and the core an administration command works on.
async fn open_for_admin(storage: &StorageArgs) -> anyhow::Result<(Db, Core)> {
    let db = serve::open_database(storage).await?;
    let core = serve::open_core(storage, db.clone(), Limits::default()).await?;
    serve::check_key(&core).await?;
    Ok((db, core))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Migrate(storage) => {
            let db = serve::open_database(&storage).await?;
            db.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Add(args)) => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("cannot read the password")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let (db, core) = open_for_admin(&args.storage).await?;
            let role = if args.admin { Role::Admin } else { Role::User };
            let id = core
                .create_user(&args.name, password, role)
                .await
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            db.close().await;
            println!("created user '{}' (id {id}, {})", args.name, role.as_str());
            Ok(())
        }
        Command::Apikey(ApikeyCommand::Create(args)) => {
            let (db, core) = open_for_admin(&args.storage).await?;
            let issued = core
                .issue_api_key(&args.user, &args.tenant)
                .await
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            db.close().await;
            if issued.tenant_created {
                println!("created tenant '{}'", args.tenant);
            }
            println!(
                "API key for '{}' in tenant '{}' (shown once; send it as Coopr-ApiKey):",
                args.user, args.tenant
            );
            println!("{}", issued.key);
            Ok(())
        }
        Command::Apikey(ApikeyCommand::List(args)) => {
            let (db, core) = open_for_admin(&args.storage).await?;
            let keys = core
                .list_api_keys(args.user.as_deref())
                .await
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            db.close().await;
            println!("{:>6}  {:<24}  {:<24}  created", "id", "user", "tenant");
            for key in keys {
                println!(
                    "{:>6}  {:<24}  {:<24}  {}",
                    key.id,
                    key.username,
                    key.tenant,
                    key.created_at.format("%Y-%m-%d %H:%M:%S UTC")
                );
            }
            Ok(())
        }
        Command::Apikey(ApikeyCommand::Revoke(args)) => {
            let (db, core) = open_for_admin(&args.storage).await?;
            let revoked = core.revoke_api_key(args.id).await;
            db.close().await;
            revoked.map_err(|error| anyhow::anyhow!("{error}"))?;
            println!("revoked API key {}", args.id);
            Ok(())
        }
    }
}

/// What `depot` does with its command line; its exit code.
pub fn main() -> ExitCode {
    crate::memory::return_large_blocks_to_the_system();
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => LogFormat::Text,
    };
    init_tracing(format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
