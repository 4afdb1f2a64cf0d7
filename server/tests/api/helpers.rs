//! A real Depot server on a free port, over a database of its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use app::model::Role;
use depot_server::blob::Area;
use depot_server::config::{BlobStoreUrl, S3Args, Secret, ServeArgs, StorageArgs};
use depot_server::core::{Core, PasswordCost};
use depot_server::serve;
use rand::Rng;

pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// The markup without Leptos's empty hydration markers (`<!>`), which debug
/// builds scatter between text nodes.
pub fn markup(html: &str) -> String {
    html.replace("<!>", "")
}

/// Which database and blob store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite and a local folder: the embedded default.
    Sqlite,
    /// PostgreSQL and a local folder.
    Postgres,
    /// PostgreSQL and a bucket of the test object store (Garage): what
    /// several servers share.
    Shared,
}

/// A client of the bucket `storage` names, to look behind the server's back.
pub fn test_bucket(storage: &StorageArgs) -> object_store::aws::AmazonS3 {
    let Some(BlobStoreUrl::S3 { bucket, .. }) = &storage.blob_store else {
        panic!("not on an object store")
    };
    let s3 = &storage.s3;
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&s3.region)
        .with_endpoint(s3.endpoint.as_ref().unwrap())
        .with_allow_http(true)
        .with_access_key_id(s3.access_key_id.as_ref().unwrap())
        .with_secret_access_key(s3.secret_access_key.as_ref().unwrap().expose())
        .build()
        .unwrap()
}

/// The test object store that `scripts/garage.sh` started, and a prefix of
/// this test's own in its bucket.
pub fn test_object_store() -> (BlobStoreUrl, S3Args) {
    let variable = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run the tests with scripts/test.sh, or \
                 `source scripts/garage.sh` first, which starts a Garage for them"
            )
        })
    };
    let url = BlobStoreUrl::S3 {
        bucket: variable("DEPOT_TEST_S3_BUCKET"),
        prefix: format!("test-{:016x}", rand::thread_rng().gen::<u64>()),
    };
    let s3 = S3Args {
        endpoint: Some(variable("DEPOT_TEST_S3_ENDPOINT")),
        region: variable("DEPOT_TEST_S3_REGION"),
        access_key_id: Some(variable("DEPOT_TEST_S3_KEY_ID")),
        secret_access_key: Some(variable("DEPOT_TEST_S3_SECRET").parse().unwrap()),
        timeout_secs: 60,
    };
    (url, s3)
}

/// A uniquely named PostgreSQL database, dropped with the guard; or nothing
/// for SQLite, whose file lives in the test's data folder.
pub struct TestDb {
    admin_url: String,
    name: Option<String>,
    pub url: Option<String>,
}

pub fn postgres_admin_url() -> String {
    std::env::var("DEPOT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    /// An empty database (what `depot migrate` starts from).
    pub async fn create(backend: Backend) -> Self {
        Self::new(backend, false).await
    }

    /// A database with every migration applied, copied from a template
    /// (see [`copy_migrated_template`]); the server finds nothing left to apply.
    pub async fn migrated(backend: Backend) -> Self {
        Self::new(backend, true).await
    }

    async fn new(backend: Backend, migrated: bool) -> Self {
        let admin_url = postgres_admin_url();
        if backend == Backend::Sqlite {
            return Self {
                admin_url,
                name: None,
                url: None,
            };
        }
        let name = format!("depot_test_{:016x}", rand::thread_rng().gen::<u64>());
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .expect("PostgreSQL is not reachable");
        if migrated {
            copy_migrated_template(&admin, &admin_url, &name).await;
        } else {
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
        }
        admin.close().await;
        let url = database_url(&admin_url, &name);
        Self {
            admin_url,
            name: Some(name),
            url: Some(url),
        }
    }
}

/// The URL of the database `name` on the server of `admin_url`.
fn database_url(admin_url: &str, name: &str) -> String {
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(admin_url);
    format!("{base}/{name}")
}

/// Creates the database `name` as a copy of a template holding every
/// PostgreSQL migration, made once per set of migrations and kept between
/// runs: copying a database's files costs PostgreSQL less than running every
/// migration's DDL again in each of the ~150 tests on PostgreSQL (0.25 s
/// each). The template's name carries the migrations' checksums, so a
/// changed or added migration makes a new template and the old ones are
/// dropped.
async fn copy_migrated_template(admin: &sqlx::PgPool, admin_url: &str, name: &str) {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for migration in depot_server::store::POSTGRES_MIGRATIONS.iter() {
        digest.update(migration.version.to_le_bytes());
        digest.update(&migration.checksum);
    }
    let template = format!(
        "depot_test_template_{}",
        &hex::encode(digest.finalize())[..16]
    );
    // Tests start in processes of their own: one of them makes the
    // template while the others wait on this lock, and the copies are made
    // under it too, so that a run on other migrations (another checkout)
    // never drops a template while it is being copied.
    const LOCK: i64 = 0x6465_706f_7474_6d70;
    let mut lock = admin.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK)
        .execute(&mut *lock)
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut *lock)
            .await
            .unwrap();
    if !exists {
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database \
             WHERE datname LIKE 'depot\\_test\\_template\\_%' OR datname LIKE 'depot\\_building\\_%'",
        )
        .fetch_all(&mut *lock)
        .await
        .unwrap();
        for database in stale {
            // Half-made ones of a stopped run, and old templates.
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {database}"))
                .execute(&mut *lock)
                .await;
        }
        // Made under another name and renamed once whole, so that a run
        // stopped half-way never leaves a template missing a migration.
        let building = format!("depot_building_{:016x}", rand::thread_rng().gen::<u64>());
        sqlx::query(&format!("CREATE DATABASE {building}"))
            .execute(&mut *lock)
            .await
            .unwrap();
        let db = depot_server::store::Db::connect(&database_url(admin_url, &building))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        db.close().await;
        sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            .execute(&mut *lock)
            .await
            .unwrap();
    }
    sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .execute(&mut *lock)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK)
        .execute(&mut *lock)
        .await
        .unwrap();
}

/// What marks a test's database as done with, for [`drop_done_databases`].
const DONE: &str = "depot test: done";

/// How many done databases wait before they are dropped together.
const DROP_TOGETHER: usize = 8;

impl Drop for TestDb {
    /// Marks the database done with; every [`DROP_TOGETHER`] of them are
    /// dropped at once, and `scripts/test.sh` drops the last ones.
    fn drop(&mut self) {
        let Some(name) = self.name.take() else { return };
        let admin_url = self.admin_url.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok(admin) = sqlx::PgPool::connect(&admin_url).await else {
                    return;
                };
                let marked = sqlx::query(&format!("COMMENT ON DATABASE {name} IS '{DONE}'"))
                    .execute(&admin)
                    .await;
                if marked.is_err() {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await;
                }
                drop_done_databases(&admin).await;
                admin.close().await;
            });
        })
        .join();
    }
}

/// Drops the databases tests are done with, once [`DROP_TOGETHER`] of them
/// wait, all at once. PostgreSQL (15) takes a checkpoint for each `DROP
/// DATABASE`, which writes out what every database has changed; drops asked
/// for together share them. One test process drops them while the others
/// go on (a fifth of the time of the tests on PostgreSQL).
async fn drop_done_databases(admin: &sqlx::PgPool) {
    const LOCK: i64 = 0x6465_706f_7464_726f;
    let Ok(mut lock) = admin.acquire().await else {
        return;
    };
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK)
        .fetch_one(&mut *lock)
        .await
        .unwrap_or(false);
    if !locked {
        return;
    }
    let done: Vec<String> = sqlx::query_scalar(
        "SELECT d.datname::text FROM pg_database d \
         JOIN pg_shdescription s ON s.objoid = d.oid AND s.classoid = 'pg_database'::regclass \
         WHERE s.description = $1 AND d.datname LIKE 'depot\\_test\\_%'",
    )
    .bind(DONE)
    .fetch_all(&mut *lock)
    .await
    .unwrap_or_default();
    if done.len() >= DROP_TOGETHER {
        let drops = done.iter().map(|name| async move {
            let quoted = name.replace('"', "\"\"");
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{quoted}\" WITH (FORCE)"
            ))
            .execute(admin)
            .await
        });
        futures_util::future::join_all(drops).await;
    }
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK)
        .execute(&mut *lock)
        .await;
}

pub struct TestApp {
    pub address: SocketAddr,
    pub core: Arc<Core>,
    pub data_dir: PathBuf,
    /// Where this server keeps its state (what a second one must share).
    pub storage: StorageArgs,
    _data: tempfile::TempDir,
    _db: TestDb,
    /// Asks the server to shut down, as SIGTERM does.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts a server after `configure` has changed its settings.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut ServeArgs)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let db = TestDb::migrated(backend).await;
        let mut storage = StorageArgs {
            database_url: db.url.as_deref().map(|url| url.parse::<Secret>().unwrap()),
            ..StorageArgs::in_folder(data.path().to_path_buf())
        };
        if backend == Backend::Shared {
            let (url, s3) = test_object_store();
            storage.blob_store = Some(url);
            storage.s3 = s3;
            // What servers sharing a database must share.
            let key = format!("{:032x}", rand::thread_rng().gen::<u128>());
            storage.secret_key = Some(key.parse().unwrap());
        }
        Self::start(storage, db, data, configure).await
    }

    /// Starts a second server on this one's database, blob store and
    /// secret key, with a data folder of its own: one more server of a
    /// deployment.
    pub async fn spawn_beside(&self, configure: impl FnOnce(&mut ServeArgs)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let storage = StorageArgs {
            data_dir: data.path().to_path_buf(),
            ..self.storage.clone()
        };
        if storage.secret_key.is_none() {
            // The key this one made in its data folder.
            std::fs::copy(
                self.storage.data_dir.join("secret.key"),
                data.path().join("secret.key"),
            )
            .unwrap();
        }
        // The database belongs to the first server, which drops it.
        let db = TestDb {
            admin_url: postgres_admin_url(),
            name: None,
            url: self._db.url.clone(),
        };
        Self::start(storage, db, data, configure).await
    }

    /// Another server on this one's state: for the shared backend another
    /// server of the deployment; otherwise one on the same data folder and
    /// database, as this one would be after a restart.
    pub async fn spawn_again(&self) -> Self {
        if self.storage.blob_store.is_some() {
            return self.spawn_beside(|_| {}).await;
        }
        let db = TestDb {
            admin_url: postgres_admin_url(),
            name: None,
            url: self._db.url.clone(),
        };
        Self::start(
            self.storage.clone(),
            db,
            tempfile::tempdir().unwrap(),
            |_| {},
        )
        .await
    }

    async fn start(
        storage: StorageArgs,
        db: TestDb,
        data: tempfile::TempDir,
        configure: impl FnOnce(&mut ServeArgs),
    ) -> Self {
        let mut args = ServeArgs::with_defaults(storage, "127.0.0.1:0".parse().unwrap());
        args.admin_password = Some(ADMIN_PASSWORD.parse().unwrap());
        // Hundreds of accounts: at argon2's default cost a tenth of the tests' CPU.
        args.password_cost = PasswordCost::least();
        configure(&mut args);
        let built = serve::build(&args)
            .await
            .expect("the server does not start");
        let listener = serve::Listener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let router = built.router;
        let limits = args.client_limits(serve::open_file_limit().unwrap_or(1024));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Only when asked: a server whose test dropped it serves on.
        let shutdown = async move {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let served = tokio::spawn(serve::serve(listener, router, shutdown, limits));
        Self {
            address,
            core: built.core,
            data_dir: data.path().to_path_buf(),
            storage: args.storage.clone(),
            _data: data,
            _db: db,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// Shuts the server down as SIGTERM does, and waits until it has.
    pub async fn shut_down(&mut self) {
        if let (Some(stop), Some(served)) = (self.stop.take(), self.served.take()) {
            let _ = stop.send(());
            served.await.unwrap().unwrap();
        }
    }

    /// The PostgreSQL database's URL (`None` on SQLite).
    pub fn database_url(&self) -> Option<&str> {
        self._db.url.as_deref()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A server-rendered page (status and markup) as a user signed in with
    /// Basic credentials, or nobody, sees it.
    pub async fn page(&self, user: Option<(&str, &str)>, path: &str) -> (u16, String) {
        let mut request = reqwest::Client::new().get(self.url(path));
        if let Some((user, password)) = user {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, markup(&response.text().await.unwrap()))
    }

    /// A client that keeps cookies, like a browser.
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    pub async fn add_user(&self, name: &str, password: &str) {
        self.core
            .create_user(name, password, Role::User)
            .await
            .unwrap();
    }

    /// Uploads `bytes` as `name` through the HTTP API with Basic credentials.
    pub async fn upload(
        &self,
        user: &str,
        password: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        let form = reqwest::multipart::Form::new()
            .text("label", "test upload")
            .part("file", part);
        reqwest::Client::new()
            .post(self.url("/api/upload"))
            .basic_auth(user, Some(password))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// An image's bytes, downloaded through the HTTP API with Basic
    /// credentials.
    pub async fn download(
        &self,
        user: &str,
        password: &str,
        id: &serde_json::Value,
    ) -> bytes::Bytes {
        reqwest::Client::new()
            .get(self.url(&format!("/api/images/{id}/download")))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    /// A token from `POST /auth/request-token`, as VSS clients get one.
    pub async fn vss_token(&self, user: &str, password: &str) -> String {
        let response = reqwest::Client::new()
            .post(self.url("/auth/request-token"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// What the blob store holds in `area` (published blobs, or uploads
    /// being staged), whichever backend it is.
    pub async fn stored(&self, area: Area) -> Vec<String> {
        self.core.blobs().stored(area).await.unwrap()
    }

    /// What is still in `area` once what the server discards in the
    /// background (a refused upload's staged object, on an object store) has
    /// had five seconds to go: nothing, or what stays.
    pub async fn stored_once_settled(&self, area: Area) -> Vec<String> {
        for _ in 0..100 {
            let stored = self.stored(area).await;
            if stored.is_empty() {
                return stored;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.stored(area).await
    }

    /// The files of a user's personal store with their sizes, by path,
    /// whichever backend holds them.
    pub async fn store_files(&self, user_id: i64) -> BTreeMap<String, u64> {
        let files = self.core.personal().files(user_id).await.unwrap();
        files
            .unwrap_or_default()
            .into_iter()
            .map(|file| (file.relative, file.size))
            .collect()
    }

    /// Where a user's personal store is on disk, when it is on local disk.
    pub fn personal_folder(&self, user_id: i64) -> PathBuf {
        assert!(
            self.storage.blob_store.is_none(),
            "this server keeps its personal stores in the object store"
        );
        self.data_dir.join("personal").join(user_id.to_string())
    }

    /// A request written on the wire byte for byte (`head`, its request
    /// line and headers without the blank line that ends them, then
    /// `body`), as `curl --path-as-is` sends it: an HTTP client would
    /// resolve a path's dot segments first. The status and the whole answer.
    pub async fn sent_as_is(&self, head: &str, body: &[u8]) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.address).await.unwrap();
        let head = format!(
            "{head}Host: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            self.address,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }

    /// Puts a file into a user's personal store over WebDAV.
    pub async fn put_store_file(&self, user: (&str, &str), path: &str, bytes: Vec<u8>) {
        let response = reqwest::Client::new()
            .put(self.url(&format!("/store/{path}")))
            .basic_auth(user.0, Some(user.1))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

/// Bytes that differ from test to test.
/// `depot serve`, the built binary, with `data_dir` on a free port of
/// loopback, on SQLite unless told otherwise; and the address it will
/// listen on.
pub fn depot_serve(data_dir: &std::path::Path) -> (std::process::Command, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_depot"));
    command
        .args(["serve", "--bind", &address, "--data-dir"])
        .arg(data_dir)
        .env_remove("DEPOT_DATABASE_URL");
    (command, address)
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill(&mut bytes[..]);
    bytes
}

/// A small, valid OVA (a descriptor naming one raw disk of random bytes, and
/// the disk), different from test to test.
pub fn ova_bytes() -> Vec<u8> {
    let descriptor = br#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="disk.img" ovf:id="file1"/></References>
  <DiskSection><Info>Disks</Info><Disk ovf:capacity="4096" ovf:diskId="d1" ovf:fileRef="file1"/></DiskSection>
</Envelope>
"#;
    let disk = random_bytes(4096);
    let mut archive = tar::Builder::new(Vec::new());
    for (name, bytes) in [("appliance.ovf", &descriptor[..]), ("disk.img", &disk[..])] {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, name, bytes).unwrap();
    }
    archive.into_inner().unwrap()
}

/// Runs `statement` on the test's database.
pub async fn execute(app: &TestApp, statement: &str) {
    match app.core.db().pool() {
        depot_server::store::Pool::Sqlite(pool) => {
            sqlx::query(statement).execute(pool).await.unwrap();
        }
        depot_server::store::Pool::Postgres(pool) => {
            sqlx::query(statement).execute(pool).await.unwrap();
        }
    }
}

/// The number `query` answers on the test's database.
pub async fn number(app: &TestApp, query: &str) -> i64 {
    match app.core.db().pool() {
        depot_server::store::Pool::Sqlite(pool) => {
            sqlx::query_scalar(query).fetch_one(pool).await.unwrap()
        }
        depot_server::store::Pool::Postgres(pool) => {
            sqlx::query_scalar(query).fetch_one(pool).await.unwrap()
        }
    }
}

/// Sends a request and reads its JSON answer, whatever the status.
pub async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Posts a form to one of the UI's server functions (`/api/ui/{endpoint}`)
/// as `user` with Basic credentials: its status, and its JSON answer (or
/// the text, or null).
pub async fn ui_call(
    app: &TestApp,
    user: (&str, &str),
    endpoint: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(app.url(&format!("/api/ui/{endpoint}")))
        .basic_auth(user.0, Some(user.1))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let answer = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, answer)
}
