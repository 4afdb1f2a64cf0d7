//! Command line and environment: every setting is a flag with a `DEPOT_*`
//! variable beside it, documented by `depot --help`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::core::{
    PasswordCost, DEFAULT_DATA_STORE, DEFAULT_MAX_STORE_ENTRIES, DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_MAX_USER_IMAGES,
};

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

// Parsed once, at start: the size of the serve settings costs nothing.
#[allow(clippy::large_enum_variant)]
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
    /// Serve the database with this secret key although it was served with
    /// another (lost) one, named by the first 8 or more characters of its
    /// fingerprint (as the refusal to start shows them); the old key's tokens
    /// and sealed environment passwords then stop working. Without it, a
    /// server whose key is not the database's refuses to start.
    #[arg(long, env = "DEPOT_ADOPT_SECRET_KEY", value_name = "FINGERPRINT")]
    pub adopt_secret_key: Option<String>,
    /// Where image bytes and personal stores live: `file:///path` (a local
    /// folder) or `s3://bucket/prefix` (an S3-compatible object store, which
    /// servers sharing a database must share); by default `store/` and
    /// `personal/` in the data folder.
    #[arg(long, env = "DEPOT_BLOB_STORE")]
    pub blob_store: Option<BlobStoreUrl>,
    #[command(flatten)]
    pub s3: S3Args,
}

/// Where the bytes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobStoreUrl {
    /// A local folder.
    Folder(PathBuf),
    /// A bucket of an S3-compatible object store, and a prefix in it (no
    /// leading or trailing slash; may be empty).
    S3 { bucket: String, prefix: String },
}

impl fmt::Display for BlobStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Folder(path) => write!(f, "file://{}", path.display()),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl FromStr for BlobStoreUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err("a file:// store needs an absolute path, file:///srv/depot".into());
            }
            return Ok(Self::Folder(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            // S3's bucket naming rules, which every compatible store keeps.
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                })
                && !bucket.starts_with(['-', '.'])
                && !bucket.ends_with(['-', '.']);
            if !valid_bucket {
                return Err(format!("'{bucket}' is not a bucket name"));
            }
            let prefix = prefix.trim_matches('/');
            let valid_prefix = prefix.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part.bytes().all(|b| b.is_ascii_graphic())
            });
            if !prefix.is_empty() && !valid_prefix {
                return Err(format!("'{prefix}' is not a usable prefix"));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        Err("expected file:///path or s3://bucket/prefix".into())
    }
}

/// A proxy's network as written (`10.1.0.0/16`), or its one address
/// (`10.0.0.5`, `::1`), spaces around it ignored.
fn proxy_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("'{text}' is neither an address nor a network (10.0.0.0/8)"))
}

/// Open files kept for the server's own use (blobs, uploads, database
/// connections) out of its limit, by default, when connections are counted.
const FILES_KEPT: u64 = 1024;

/// Open files one connection may hold, counted by default: its socket, and
/// the file it sends or takes in (a download's blob, an upload's part), or
/// on an object store the connection that file's bytes come or go by. A
/// slow download holds all of them as long as it lasts.
const FILES_A_CONNECTION: u64 = 3;

/// What the bodies read whole may hold together by default: 32 forms or
/// documents at the largest they may be (2 MiB), thousands of real ones.
const DEFAULT_MAX_BUFFERED_BODY_BYTES: usize = 64 << 20;

/// How to reach an S3-compatible object store, read as the AWS CLI reads
/// them when no flag is given.
#[derive(Debug, Clone, Default, Args)]
pub struct S3Args {
    /// The object store's endpoint when it is not AWS (Garage, MinIO, Ceph),
    /// `http://127.0.0.1:3900`; requests are path-style.
    #[arg(long = "s3-endpoint", env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// The object store's region (Garage's own is `garage`).
    #[arg(long = "s3-region", env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Access key id; without one, the instance's role is asked (on AWS).
    #[arg(
        long = "s3-access-key-id",
        env = "AWS_ACCESS_KEY_ID",
        hide_env_values = true
    )]
    pub access_key_id: Option<String>,
    #[arg(
        long = "s3-secret-access-key",
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub secret_access_key: Option<Secret>,
    /// How long the object store may leave a request unanswered, or stop
    /// in the middle of an answer, before the request fails (and is retried
    /// when safe), as botocore's read timeout.
    #[arg(
        long = "s3-timeout-secs",
        env = "DEPOT_S3_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub timeout_secs: u64,
}

impl S3Args {
    /// The object store's time limit, at least a second.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }
}

impl StorageArgs {
    /// The settings of a server keeping everything in `data_dir`.
    pub fn in_folder(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            database_url: None,
            secret_key: None,
            adopt_secret_key: None,
            blob_store: None,
            s3: S3Args {
                region: "us-east-1".into(),
                timeout_secs: 60,
                ..S3Args::default()
            },
        }
    }

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
    /// Most files and folders one user's personal store may hold.
    #[arg(long, env = "DEPOT_STORE_MAX_ENTRIES", default_value_t = DEFAULT_MAX_STORE_ENTRIES)]
    pub store_max_entries: u64,
    /// Most images one account but an administrator's may own.
    #[arg(long, env = "DEPOT_USER_MAX_IMAGES", default_value_t = DEFAULT_MAX_USER_IMAGES)]
    pub user_max_images: u64,
    /// Data store name shown in image paths, `[data_store] folder/name`.
    #[arg(long, env = "DEPOT_DATA_STORE", default_value = DEFAULT_DATA_STORE)]
    pub data_store: String,
    /// Mark session cookies `Secure` (set it when serving over HTTPS); the
    /// session cookie is then named `__Host-depot_session`, which no site on
    /// a sibling subdomain can set.
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
    /// Seconds a client may take to send a request's head, or leave the
    /// server waiting for more of a body or for taking more of a response.
    #[arg(long, env = "DEPOT_CLIENT_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub client_timeout_secs: u64,
    /// Connections served at once; past them a new one waits to be accepted,
    /// so that idle or slow connections cannot take the files the server
    /// needs for itself. Default: a third of the limit on open files less
    /// 1,024 (at least 64): a connection may hold a file and a second socket.
    #[arg(long, env = "DEPOT_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Connections open at once from one client address (an IPv6 client by
    /// its /64); past them a new one is closed once accepted, so that one
    /// client cannot take every connection the server serves. 0 turns the
    /// cap off: behind a proxy, every client has the proxy's address.
    #[arg(long, env = "DEPOT_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: u64,
    /// Downloads of image bytes one client receives at once: a signed-in
    /// user at each address, or a caller not signed in by address (an IPv6
    /// client by its /64, its /48 four times as many); past them a new one is answered
    /// 429. Each holds a few chunks read ahead of its socket, from room
    /// every download shares: a few addresses holding hundreds of downloads
    /// they barely read would keep everyone else's waiting. Behind a proxy,
    /// name it in `--trusted-proxies`, or every anonymous caller has its
    /// address. 0 turns the cap off.
    #[arg(long, env = "DEPOT_MAX_DOWNLOADS_PER_CLIENT", default_value_t = 32)]
    pub max_downloads_per_client: u64,
    /// Reverse proxies (addresses or networks, comma-separated: `10.0.0.0/8,
    /// ::1`) whose `X-Forwarded-For` names the client: the client is the
    /// last address in it that is not one of them, as nginx's `real_ip`
    /// with `real_ip_recursive` takes it. Any other peer's header is
    /// ignored (a client may write anything there), as are the forwarded
    /// host and scheme (`X-Forwarded-Host`, `-Proto`) VSS's links use.
    #[arg(long, env = "DEPOT_TRUSTED_PROXIES", value_delimiter = ',', value_parser = proxy_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Bytes of the request bodies read whole before their handlers (forms,
    /// a dialect's JSON or XML, WebDAV's XML) the server holds at once; a
    /// request past them is answered 503, so that a flood of slow bodies
    /// cannot take the server's memory. An eighth of it is for the bodies
    /// of callers not signed in (sign-in forms), the rest for the others'.
    /// At least 1 MiB: below it, the callers not signed in had less room
    /// than one address's sign-in forms take.
    #[arg(long, env = "DEPOT_MAX_BUFFERED_BODY_BYTES", default_value_t = DEFAULT_MAX_BUFFERED_BODY_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1 << 20..))]
    pub max_buffered_body_bytes: usize,
    /// What each new password hash costs: always the default from the
    /// command line; only code that embeds the server (the tests) lowers it.
    #[arg(skip)]
    pub password_cost: PasswordCost,
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
            store_max_entries: DEFAULT_MAX_STORE_ENTRIES,
            user_max_images: DEFAULT_MAX_USER_IMAGES,
            data_store: DEFAULT_DATA_STORE.into(),
            secure_cookies: false,
            log_format: LogFormat::Text,
            demo: false,
            job_workers: 2,
            export_root: None,
            login_burst_per_address: 30,
            login_burst_per_account: 10,
            client_timeout_secs: 60,
            max_connections: None,
            max_connections_per_address: 256,
            max_downloads_per_client: 32,
            trusted_proxies: Vec::new(),
            max_buffered_body_bytes: DEFAULT_MAX_BUFFERED_BODY_BYTES,
            password_cost: PasswordCost::default(),
        }
    }

    /// How long a client may keep the server waiting (see `serve::serve`).
    pub fn client_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.client_timeout_secs)
    }

    /// The cap on each client's downloads at once, if any.
    pub fn downloads_per_client(&self) -> Option<usize> {
        match self.max_downloads_per_client {
            0 => None,
            cap => Some(usize::try_from(cap).unwrap_or(usize::MAX)),
        }
    }

    /// What clients may hold of the server (see `serve::serve`), for a
    /// process that may have `open_files` files open.
    pub fn client_limits(&self, open_files: u64) -> crate::serve::ClientLimits {
        let connections = self.max_connections.unwrap_or_else(|| {
            (open_files.saturating_sub(FILES_KEPT) / FILES_A_CONNECTION).max(64)
        });
        crate::serve::ClientLimits {
            timeout: self.client_timeout(),
            connections: usize::try_from(connections).unwrap_or(usize::MAX),
            per_address: match self.max_connections_per_address {
                0 => None,
                cap => Some(usize::try_from(cap).unwrap_or(usize::MAX)),
            },
            proxies: self.trusted_proxies.clone().into(),
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
    fn connections_leave_files_for_what_each_holds() {
        let args = ServeArgs::with_defaults(
            StorageArgs::in_folder("/srv/depot".into()),
            ([127, 0, 0, 1], 0).into(),
        );
        // A slow download holds its socket, its blob and on an object
        // store a second socket: 1,024 connections of a 4,096-file limit,
        // with 1,024 files kept for the server's own use.
        assert_eq!(args.client_limits(4096).connections, 1024);
        assert_eq!(args.client_limits(1024).connections, 64);
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let cli = Cli::try_parse_from([
            "depot",
            "serve",
            "--trusted-proxies",
            "10.0.0.5, 10.1.0.0/16,::1",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        let shown: Vec<String> = args
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.5/32", "10.1.0.0/16", "::1/128"]);
        assert!(Cli::try_parse_from(["depot", "serve", "--trusted-proxies", "proxy"]).is_err());
    }

    #[test]
    fn the_body_budget_holds_at_least_a_mebibyte() {
        let budget = |bytes: &str| {
            let cli = Cli::try_parse_from(["depot", "serve", "--max-buffered-body-bytes", bytes]);
            cli.map(|cli| match cli.command {
                Command::Serve(args) => args.max_buffered_body_bytes,
                _ => panic!("not serve"),
            })
        };
        assert_eq!(budget("1048576").unwrap(), 1 << 20);
        assert!(budget("1048575").is_err());
    }

    #[test]
    fn the_default_database_lives_in_the_data_folder() {
        let storage = StorageArgs::in_folder("/srv/depot".into());
        assert_eq!(
            storage.database_url(),
            "sqlite:///srv/depot/depot.db?mode=rwc"
        );
    }

    #[test]
    fn blob_stores_are_folders_or_buckets() {
        assert_eq!(
            "s3://depot-images/prod/eu".parse(),
            Ok(BlobStoreUrl::S3 {
                bucket: "depot-images".into(),
                prefix: "prod/eu".into()
            })
        );
        assert_eq!(
            "s3://depot/".parse(),
            Ok(BlobStoreUrl::S3 {
                bucket: "depot".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            "file:///srv/depot".parse(),
            Ok(BlobStoreUrl::Folder("/srv/depot".into()))
        );
        for bad in [
            "s3://Upper/x",
            "s3://ab",
            "s3://bucket/../up",
            "s3://bucket/a//b",
            "file://relative",
            "gs://bucket",
            "/srv/depot",
        ] {
            assert!(bad.parse::<BlobStoreUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn s3_settings_come_from_the_aws_variables_and_stay_secret() {
        let args = Cli::try_parse_from([
            "depot",
            "serve",
            "--blob-store",
            "s3://depot/images",
            "--s3-endpoint",
            "http://127.0.0.1:3900",
            "--s3-secret-access-key",
            "very-secret-key",
        ])
        .unwrap();
        let printed = format!("{args:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        let Command::Serve(serve) = args.command else {
            panic!("not serve")
        };
        assert_eq!(
            serve.storage.s3.endpoint.as_deref(),
            Some("http://127.0.0.1:3900")
        );
    }

    #[test]
    fn a_served_password_hash_costs_argon2s_default() {
        // Only code that embeds the server lowers it (the tests do).
        let args = Cli::try_parse_from(["depot", "serve"]).unwrap();
        let Command::Serve(serve) = args.command else {
            panic!("not serve")
        };
        assert_eq!(serve.password_cost, PasswordCost::default());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
