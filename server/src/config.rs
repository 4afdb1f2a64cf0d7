//! Command line and environment: every setting is a flag with a `DEPOT_*`
//! variable beside it, documented by `depot --help`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::core::{DEFAULT_DATA_STORE, DEFAULT_MAX_UPLOAD_BYTES};

/// A value that must never be printed: `Debug` shows only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "depot",
    version,
    about = "Depot: a self-hosted catalog and store for virtual-machine images"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the browser UI and the REST APIs on one port.
    Serve(ServeArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Apply pending database migrations and exit.
    Migrate(StorageArgs),
    /// Manage Coopr API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Issue a key for a user in a tenant (created if needed); the key is
    /// printed once, on the last line, and only its hash is stored.
    Create(ApikeyCreateArgs),
    /// List the API keys (id, user, tenant, created), never the keys themselves.
    List(ApikeyListArgs),
    /// Revoke an API key by its id (from `apikey list`); it stops working at once.
    Revoke(ApikeyRevokeArgs),
}

#[derive(Debug, Args)]
pub struct ApikeyListArgs {
    /// Only this user's keys.
    #[arg(long)]
    pub user: Option<String>,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct ApikeyRevokeArgs {
    /// The key's id, as `apikey list` shows it.
    pub id: i64,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct ApikeyCreateArgs {
    /// The user the key acts as (`Coopr-UserID`).
    pub user: String,
    /// The tenant the key is for (`Coopr-TenantID`).
    #[arg(long)]
    pub tenant: String,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user account.
    Add(UserAddArgs),
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The login name: letters, digits, '.', '_' or '-'.
    pub name: String,
    /// Make the user an administrator.
    #[arg(long)]
    pub admin: bool,
    /// Read the password from the first line of standard input (required).
    #[arg(long, required = true)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Where Depot keeps its state.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Folder holding the SQLite database (by default) and the blob store.
    #[arg(long, env = "DEPOT_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL: `postgres://…` for PostgreSQL; by default `depot.db` in the data folder.
    #[arg(long, env = "DEPOT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// The key that signs access tokens, at least 32 characters; by default a
    /// random one kept in `secret.key` in the data folder. Servers sharing a
    /// database must share it.
    #[arg(long, env = "DEPOT_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<Secret>,
}

impl StorageArgs {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("depot.db").display()
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address and port to listen on.
    #[arg(long, env = "DEPOT_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,
    /// Password of the `admin` account created on first start; generated and printed once if unset.
    #[arg(long, env = "DEPOT_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<Secret>,
    /// Folder of the compiled UI assets (`pkg/`); cargo-leptos's `LEPTOS_SITE_ROOT` if unset.
    #[arg(long, env = "DEPOT_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    /// Largest single upload, in bytes.
    #[arg(long, env = "DEPOT_MAX_UPLOAD_BYTES", default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,
    /// Most bytes one user's images may hold (unlimited if unset).
    #[arg(long, env = "DEPOT_USER_QUOTA_BYTES")]
    pub user_quota_bytes: Option<u64>,
    /// Data store name shown in image paths, `[data_store] folder/name`.
    #[arg(long, env = "DEPOT_DATA_STORE", default_value = DEFAULT_DATA_STORE)]
    pub data_store: String,
    /// Mark session cookies `Secure` (set it when serving over HTTPS).
    #[arg(long, env = "DEPOT_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Log line format.
    #[arg(long, env = "DEPOT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Fill an empty catalog with public demo records (the VSS examples' images and ISOs).
    #[arg(long, env = "DEPOT_DEMO")]
    pub demo: bool,
    /// Folder under which ViCE `file://` environments may be deployed to
    /// (anything outside it is refused); none allows no such deployment.
    #[arg(long, env = "DEPOT_EXPORT_ROOT")]
    pub export_root: Option<PathBuf>,
    /// Background job workers in this process (personal-store syncs); 0 runs none.
    #[arg(long, env = "DEPOT_JOB_WORKERS", default_value_t = 2)]
    pub job_workers: usize,
    /// Password checks one client address may make in a burst (then one per 2 s).
    #[arg(long, env = "DEPOT_LOGIN_BURST_PER_ADDRESS", default_value_t = 30)]
    pub login_burst_per_address: u32,
    /// Password checks against one account in a burst (then one per 6 s).
    #[arg(long, env = "DEPOT_LOGIN_BURST_PER_ACCOUNT", default_value_t = 10)]
    pub login_burst_per_account: u32,
}

impl ServeArgs {
    /// Settings for a server on `bind` with everything else at its default.
    pub fn with_defaults(storage: StorageArgs, bind: SocketAddr) -> Self {
        Self {
            storage,
            bind,
            admin_password: None,
            site_root: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            user_quota_bytes: None,
            data_store: DEFAULT_DATA_STORE.into(),
            secure_cookies: false,
            log_format: LogFormat::Text,
            demo: false,
            job_workers: 2,
            export_root: None,
            login_burst_per_address: 30,
            login_burst_per_account: 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let args = Cli::try_parse_from([
            "depot",
            "serve",
            "--admin-password",
            "hunter2hunter2",
            "--database-url",
            "postgres://u:pw@h/db",
        ])
        .unwrap();
        let printed = format!("{args:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("pw@h"), "{printed}");
    }

    #[test]
    fn the_default_database_lives_in_the_data_folder() {
        let storage = StorageArgs {
            data_dir: "/srv/depot".into(),
            database_url: None,
            secret_key: None,
        };
        assert_eq!(
            storage.database_url(),
            "sqlite:///srv/depot/depot.db?mode=rwc"
        );
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
