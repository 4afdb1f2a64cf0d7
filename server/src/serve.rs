//! Putting the server together: storage, core, router; and running it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use leptos::config::LeptosOptions;

use crate::blob::object::ObjectBlobs;
use crate::blob::BlobStore;
use crate::config::{BlobStoreUrl, ServeArgs, StorageArgs};
use crate::core::login_guard::LoginLimits;
use crate::core::{Core, Limits, ServerKey};
use crate::personal::local::LocalStores;
use crate::personal::object::ObjectStores;
use crate::personal::PersonalStores;
use crate::state::AppState;
use crate::store::{Db, SessionStore};
use crate::web::SiteAssets;

pub mod connection;
mod folder_lock;
pub(crate) mod per_address;
mod stall;

use crate::stall::StallingBody;
pub use connection::{Listener, Peer};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;

/// How often expired sessions, tokens and reservations are deleted, and
/// what interrupted uploads left is collected.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Opens the database (creating the data folder) and applies migrations.
pub async fn open_database(storage: &StorageArgs) -> anyhow::Result<Db> {
    tokio::fs::create_dir_all(&storage.data_dir)
        .await
        .with_context(|| {
            format!(
                "cannot create the data folder {}",
                storage.data_dir.display()
            )
        })?;
    let db = Db::connect(&storage.database_url())
        .await
        .context("cannot open the database")?;
    db.migrate().await.context("database migration failed")?;
    Ok(db)
}

/// Opens the blob store the settings name, and the personal stores beside
/// it: a local folder (by default the data folder's `store/`, with the
/// personal stores under `personal/`) or a bucket of an S3-compatible object
/// store (blobs and personal stores under its prefix).
pub async fn open_storage(
    storage: &StorageArgs,
) -> anyhow::Result<(BlobStore, Arc<dyn PersonalStores>)> {
    let local_personal = || -> Arc<dyn PersonalStores> {
        Arc::new(LocalStores::new(storage.data_dir.join("personal")))
    };
    match &storage.blob_store {
        None => Ok((
            BlobStore::open(&storage.data_dir.join("store")).await?,
            local_personal(),
        )),
        Some(BlobStoreUrl::Folder(folder)) => {
            Ok((BlobStore::open(folder).await?, local_personal()))
        }
        Some(BlobStoreUrl::S3 { bucket, prefix }) => {
            let objects = ObjectBlobs::connect_s3(bucket, prefix, &storage.s3)?;
            Ok((
                BlobStore::new(Arc::new(objects.clone())),
                Arc::new(ObjectStores::new(objects)),
            ))
        }
    }
}

/// Opens the core over an open database.
pub async fn open_core(storage: &StorageArgs, db: Db, limits: Limits) -> anyhow::Result<Core> {
    let (blobs, personal) = open_storage(storage)
        .await
        .context("cannot open the blob store")?;
    let key = ServerKey::load(
        &storage.data_dir,
        storage.secret_key.as_ref().map(|key| key.expose()),
    )
    .await
    .context("cannot load the server's secret key")?;
    Ok(Core::new(db, blobs, limits, &key, personal))
}

/// Serves the database with this server's secret key, known by a
/// fingerprint derived one-way from it: the first server's is recorded; a
/// server with another key refuses to start, unless `adopt` names (by its
/// first 8 or more characters, as the refusal shows them) the fingerprint
/// the database is served with, which this server's then replaces. Named
/// so, adopting works once: left set, it names a fingerprint no longer
/// recorded, and changes nothing.
pub async fn claim_key(core: &Core, adopt: Option<&str>) -> anyhow::Result<()> {
    let ours = core.key_fingerprint();
    let db = core.db();
    let now = chrono::Utc::now();
    let recorded = db
        .record_key_fingerprint(ours, now)
        .await
        .context("cannot read which secret key the database is served with")?;
    if recorded == ours {
        return Ok(());
    }
    let Some(named) = adopt.map(|named| named.trim().to_ascii_lowercase()) else {
        return Err(another_key(&recorded, ours));
    };
    if named.len() < 8 || !recorded.starts_with(&named) {
        return Err(another_key(&recorded, ours).context(format!(
            "--adopt-secret-key names {named}, not the fingerprint the database is served with"
        )));
    }
    let replaced = db
        .replace_key_fingerprint(&recorded, ours, now)
        .await
        .context("cannot record this server's secret key")?;
    // Several servers adopting the same key at once: one replaces, the
    // others find their key recorded.
    let now_recorded = db.recorded_key_fingerprint().await?;
    if replaced || now_recorded.as_deref() == Some(ours) {
        tracing::warn!(
            replaced = %named,
            "the database is now served with this server's secret key"
        );
        return Ok(());
    }
    Err(another_key(
        now_recorded.as_deref().unwrap_or(&recorded),
        ours,
    ))
}

/// Refuses to serve a database over blobs another database's catalog
/// holds (a database URL forgotten, so the data folder's own SQLite opened;
/// a staging server with a database of its own on the production bucket;
/// not a copy of the database, which is the same catalog): its collector
/// would take every blob it has no record of for garbage, and remove them.
/// The first server of a database records it beside the blobs.
pub async fn claim_blobs(core: &Core) -> anyhow::Result<()> {
    let catalog = core
        .db()
        .catalog_identity()
        .await
        .context("cannot read which catalog the database is")?;
    let recorded = core
        .blobs()
        .claim_for_catalog(&catalog)
        .await
        .context("cannot record which catalog the blob store holds")?;
    anyhow::ensure!(
        recorded == catalog,
        "the blob store holds the blobs of another database (catalog {recorded}, not this \
         database's {catalog}): served with this one, they would be taken for garbage and \
         removed. Check the database URL (DEPOT_DATABASE_URL) and the blob store \
         (DEPOT_BLOB_STORE); if these blobs are truly this database's, remove the blob store's \
         `catalog` and start again"
    );
    Ok(())
}

/// Checks, for an administration command, that the database is served
/// with this server's key (it records none: only a server does).
pub async fn check_key(core: &Core) -> anyhow::Result<()> {
    match core.another_key().await? {
        Some(recorded) => Err(another_key(&recorded, core.key_fingerprint())),
        None => Ok(()),
    }
}

fn another_key(recorded: &str, ours: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the database is served with another secret key (fingerprint {}) than this \
         server's ({}: DEPOT_SECRET_KEY, or secret.key in the data folder): every server on \
         one database needs the same key. Give this server that key; or, if it is lost, start \
         one server once with --adopt-secret-key {} (DEPOT_ADOPT_SECRET_KEY): the database is \
         then served with this key, the tokens and sealed environment passwords of the old \
         one stop working, and servers still running with it turn unready",
        &recorded[..8.min(recorded.len())],
        &ours[..8],
        &recorded[..8.min(recorded.len())],
    )
}

/// A server ready to listen: its router, and the admin password if one was generated.
pub struct Built {
    pub router: Router,
    pub core: Arc<Core>,
    pub sessions: SessionStore,
    pub generated_admin_password: Option<String>,
}

fn site_root(args: &ServeArgs) -> PathBuf {
    args.site_root
        .clone()
        .or_else(|| std::env::var_os("LEPTOS_SITE_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/site"))
}

/// Refuses an export root that holds the data folder, or lies inside it:
/// the first user to deploy into a folder of it named as the data folder
/// would then write into Depot's own files (another user's personal store,
/// whose next sync takes what is there for its owner's).
fn check_export_root(export_root: Option<&Path>, data_dir: &Path) -> anyhow::Result<()> {
    let Some(export_root) = export_root else {
        return Ok(());
    };
    let resolved = |path: &Path| {
        std::fs::canonicalize(path)
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let (root, data) = (resolved(export_root), resolved(data_dir));
    anyhow::ensure!(
        !root.starts_with(&data) && !data.starts_with(&root),
        "the export root ({}) and the data folder ({}) may not lie one inside the other: \
         deployments would write into Depot's own files",
        root.display(),
        data.display()
    );
    Ok(())
}

pub async fn build(args: &ServeArgs) -> anyhow::Result<Built> {
    let db = open_database(&args.storage).await?;
    let limits = Limits {
        max_upload_bytes: args.max_upload_bytes,
        user_quota_bytes: args.user_quota_bytes,
        max_store_entries: args.store_max_entries,
        max_user_images: args.user_max_images,
        data_store: args.data_store.clone(),
        export_root: args.export_root.clone(),
        login: LoginLimits {
            per_address_burst: args.login_burst_per_address,
            per_account_burst: args.login_burst_per_account,
            ..LoginLimits::default()
        },
        password_cost: args.password_cost,
        ..Limits::default()
    };
    check_export_root(args.export_root.as_deref(), &args.storage.data_dir)?;
    anyhow::ensure!(
        limits.data_store != limits.personal_data_store,
        "the data store may not be named '{}': that name marks images synced from personal stores",
        limits.personal_data_store
    );
    let core = open_core(&args.storage, db.clone(), limits).await?;
    claim_key(&core, args.storage.adopt_secret_key.as_deref()).await?;
    claim_blobs(&core).await?;
    core.blobs()
        .discard_partial_uploads()
        .await
        .context("cannot clean the upload folder")?;
    core.personal()
        .discard_partial_writes()
        .await
        .context("cannot clean the personal stores")?;
    let generated_admin_password = core
        .ensure_admin(args.admin_password.as_ref().map(|p| p.expose()))
        .await
        .map_err(|error| anyhow::anyhow!("cannot create the admin account: {error}"))?;
    if args.demo {
        core.seed_demo_catalog()
            .await
            .map_err(|error| anyhow::anyhow!("cannot fill the demo catalog: {error}"))?;
    }
    let sessions = SessionStore::new(&db);

    let site_root = site_root(args);
    let assets = {
        let root = site_root.clone();
        tokio::task::spawn_blocking(move || SiteAssets::scan(&root))
            .await?
            .with_context(|| format!("cannot read the UI's files under {}", site_root.display()))?
    };
    let leptos_options = LeptosOptions::builder()
        .output_name("depot")
        .site_root(site_root.to_string_lossy().into_owned())
        .site_pkg_dir(assets.pkg_dir())
        .site_addr(args.bind)
        .build();
    let core = Arc::new(core);
    tokio::spawn({
        let core = core.clone();
        async move {
            match core.reconfirm_synced_copies().await {
                Ok(0) => {}
                Ok(recorded) => tracing::info!(recorded, "synced copies found still their files"),
                Err(error) => tracing::warn!(%error, "cannot check the synced copies"),
            }
        }
    });
    crate::jobs::spawn_workers(core.clone(), args.job_workers);
    let state = AppState::new(crate::state::Parts {
        core: core.clone(),
        leptos_options,
        dav: crate::web::store_handler(),
        metrics: Arc::default(),
        trusted_proxies: args.trusted_proxies.clone(),
        bodies: crate::web::whole_body::BodyBudgets::new(args.max_buffered_body_bytes),
        downloads: args
            .downloads_per_client()
            .map(crate::web::download_places::DownloadPlaces::new),
    });
    let router = crate::web::router(state, assets, sessions.clone(), args.secure_cookies);
    Ok(Built {
        router,
        core,
        sessions,
        generated_admin_password,
    })
}

/// Runs until SIGINT or SIGTERM, then finishes the requests in flight.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let open_files = match raise_open_file_limit() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the limit on open files");
            open_file_limit().unwrap_or(1024)
        }
    };
    let limits = args.client_limits(open_files);
    tracing::info!(
        connections = limits.connections,
        "connections served at once, at most"
    );
    // Held until the process ends: see `folder_lock`.
    folder_lock::hold_folders(&args.storage)?.until_exit();
    let built = build(&args).await?;
    if let Some(password) = &built.generated_admin_password {
        // Shown once on the terminal, never logged.
        println!("Created the account 'admin' with the password: {password}");
        println!("Set DEPOT_ADMIN_PASSWORD on first start to choose it instead.");
    }
    // Before the port opens: a SIGTERM sent as soon as the server answers
    // (a supervisor's, a test's) finds its handler and stops it cleanly.
    let shutdown = shutdown_signal().context("cannot watch for SIGINT and SIGTERM")?;
    let listener = Listener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    tracing::info!(address = %listener.local_addr()?, "Depot is listening");
    crate::memory::release_start_up_memory();

    let sessions = built.sessions.clone();
    let core = built.core.clone();
    let sweeper = tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            every.tick().await;
            if let Err(error) = sessions.delete_expired().await {
                tracing::warn!(%error, "cannot delete expired sessions");
            }
            if let Err(error) = core.collect_garbage(crate::blob::GARBAGE_GRACE).await {
                tracing::warn!(%error, "cannot collect garbage");
            }
        }
    });
    serve(listener, built.router, shutdown, limits)
        .await
        .context("the server failed")?;
    sweeper.abort();
    built.core.db().close().await;
    tracing::info!("Depot stopped");
    Ok(())
}

/// What clients may hold of the server.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// How long a client may keep the server waiting.
    pub timeout: Duration,
    /// Connections served at once; past them a new one waits in the
    /// listen queue until one ends.
    pub connections: usize,
    /// Connections open at once from one client address, if capped
    /// ([`per_address`]); past them a new one is closed once accepted.
    pub per_address: Option<usize>,
    /// The trusted proxies (`--trusted-proxies`), whose connections carry
    /// many clients each: no cap of one address holds them.
    pub proxies: Arc<[ipnet::IpNet]>,
}

impl ClientLimits {
    /// Whether `peer` is a trusted proxy, read as the caller's address is
    /// (`web::auth`): an IPv4 proxy that reaches a dual-stack socket comes
    /// as `::ffff:a.b.c.d`.
    fn is_proxy(&self, peer: std::net::IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.proxies.iter().any(|net| net.contains(&peer))
    }
}

/// The largest request head (request line and headers) a connection takes:
/// 64 KiB, room for an MWS query of a thousand ids and many cookies (nginx
/// takes 32 KiB). Without it, hyper takes heads up to its read buffer's
/// bound, 400 KiB, which across every connection place would be gigabytes
/// held by clients that send long heads slowly; the buffer's bound itself
/// stays, as it sizes the reads of bodies (uploads). Past it the answer is
/// 431 (or 414, for a URL that arrives whole in one read).
const MAX_REQUEST_HEAD: usize = 64 << 10;

/// Answers `listener`'s connections with `router` until `shutdown`
/// resolves, then finishes the requests in flight. At most
/// `limits.connections` are served at once. A client may take up to
/// `client_timeout` to send a request's head (from when the server is ready
/// to read one: a connection that sends nothing, or kept alive and idle, is
/// closed after it), and may leave the server waiting that long for more of
/// a request's body or for taking any more of a response ([`stall`]); past
/// it, its request fails or its connection is closed. At shutdown, requests
/// in flight get as long again to finish.
///
/// HTTP/1.1 only, as nginx answers a plain port: no browser speaks HTTP/2
/// without TLS, and proxies in front speak HTTP/1.1 to their upstreams.
/// HTTP/2 over plain TCP (`h2c`) would let one connection that keeps
/// answering pings hold 200 downloads it never opens the window for, each
/// with its chunks read ahead, for as long as it likes.
pub async fn serve(
    mut listener: Listener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: ClientLimits,
) -> std::io::Result<()> {
    let client_timeout = limits.timeout;
    let places = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    let per_address = limits.per_address.map(per_address::PerAddress::new);
    use hyper_util::rt::{TokioIo, TokioTimer};

    let mut connections = hyper::server::conn::http1::Builder::new();
    connections
        .timer(TokioTimer::new())
        .header_read_timeout(client_timeout)
        .max_header_size(MAX_REQUEST_HEAD);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Past the grace at shutdown, every connection still open is cut.
    let (cut, cut_off) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A place first: past the limit, connections wait in the listen
        // queue rather than take the files the server needs for itself.
        let place = tokio::select! {
            place = places.clone().acquire_owned() => place,
            () = &mut shutdown => break,
        };
        let Ok(place) = place else { break };
        let (connection, peer) = tokio::select! {
            accepted = listener.accept(client_timeout) => accepted,
            () = &mut shutdown => break,
        };
        let proxy = limits.is_proxy(peer.ip());
        let counted = match per_address.as_ref().filter(|_| !proxy) {
            Some(per_address) => match per_address.admit(peer.ip()) {
                Some(counted) => Some(counted),
                // Closed at once: its place and its file are free again.
                None => continue,
            },
            None => None,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(Peer(peer)));
            let request = request.map(|body| {
                let body = body.map_err(axum::BoxError::from);
                let body = StallingBody::new(body, client_timeout, stall::client_stalled);
                axum::body::Body::new(body)
            });
            tower::ServiceExt::oneshot(router.clone(), request)
        });
        let serving = connections.serve_connection(TokioIo::new(connection), service);
        let serving = graceful.watch(serving);
        let mut cut_off = cut_off.clone();
        tokio::spawn(async move {
            let _held = (place, counted);
            tokio::select! {
                served = serving => if let Err(error) = served {
                    tracing::trace!(%error, "a connection ended with an error");
                },
                _ = cut_off.wait_for(|cut| *cut) => {}
            }
        });
    }
    // No more connections; those open finish what they are doing, for as
    // long as a client may stall: a slow client that keeps moving would hold
    // the process past a supervisor's patience (systemd kills at 90 s),
    // before the database is closed cleanly.
    drop(listener);
    if tokio::time::timeout(client_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {client_timeout:?} are cut off");
        let _ = cut.send(true);
    }
    Ok(())
}

/// Raises this process's limit on open files to the most it may have, and
/// answers it. Each connection, upload, download and database file is one,
/// and the soft limit systems start a service with (often 1,024) let a
/// thousand idle connections leave the server unable to open a file: an
/// accept, an upload or a SQLite connection would fail. (Past the raised
/// limit that is so still; the accept loop pauses a second and tries again.)
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut limit = open_file_limits()?;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the one struct given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// The limit on open files now.
pub fn open_file_limit() -> std::io::Result<u64> {
    Ok(open_file_limits()?.rlim_cur)
}

fn open_file_limits() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the one struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// Resolves at SIGINT or SIGTERM. The handlers are set when this is called,
/// not when it is first awaited: until then either signal kills the process.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down");
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_proxy_is_known_by_its_address_however_the_socket_spells_it() {
        let limits = super::ClientLimits {
            timeout: std::time::Duration::from_secs(1),
            connections: 1,
            per_address: Some(1),
            proxies: vec!["10.0.0.5/32".parse().unwrap()].into(),
        };
        for proxy in ["10.0.0.5", "::ffff:10.0.0.5"] {
            assert!(limits.is_proxy(proxy.parse().unwrap()), "{proxy}");
        }
        for other in ["10.0.0.6", "::ffff:10.0.0.6", "::1"] {
            assert!(!limits.is_proxy(other.parse().unwrap()), "{other}");
        }
    }

    #[test]
    fn the_export_root_and_the_data_folder_keep_apart() {
        let top = tempfile::tempdir().unwrap();
        let (data, exports) = (top.path().join("data"), top.path().join("exports"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&exports).unwrap();
        let check = |root: &std::path::Path, data: &std::path::Path| {
            super::check_export_root(Some(root), data)
        };
        assert!(check(&exports, &data).is_ok());
        assert!(super::check_export_root(None, &data).is_ok());
        assert!(check(top.path(), &data).is_err(), "the root holds the data");
        assert!(
            check(&data.join("personal"), &data).is_err(),
            "inside the data"
        );
        assert!(check(&data, &data).is_err());
        // Through a link, or spelled with dots, the same.
        std::os::unix::fs::symlink(top.path(), top.path().join("link")).unwrap();
        assert!(check(&top.path().join("link"), &data).is_err());
        assert!(check(&exports.join(".."), &data).is_err());
    }

    /// The soft limit on open files, lowered as a service manager may
    /// start the server with it, is raised to the hard one.
    #[test]
    fn the_open_file_limit_is_raised_to_the_most() {
        let mut lowered = super::open_file_limits().unwrap();
        let hard = lowered.rlim_max;
        lowered.rlim_cur = 256.min(hard);
        // SAFETY: setrlimit reads the one struct given.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        assert_eq!(super::open_file_limit().unwrap(), 256.min(hard));
        let raised = super::raise_open_file_limit().unwrap();
        let limit = super::open_file_limits().unwrap();
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        assert_eq!(raised, limit.rlim_cur);
    }
}
