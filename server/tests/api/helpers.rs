//! A real Depot server on a free port, over a database of its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use app::model::Role;
use depot_server::config::{Secret, ServeArgs, StorageArgs};
use depot_server::core::Core;
use depot_server::serve;
use rand::Rng;

pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// The markup without Leptos's empty hydration markers (`<!>`), which debug
/// builds scatter between text nodes.
pub fn markup(html: &str) -> String {
    html.replace("<!>", "")
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
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
    pub async fn create(backend: Backend) -> Self {
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
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or(&admin_url);
        let url = format!("{base}/{name}");
        Self {
            admin_url,
            name: Some(name),
            url: Some(url),
        }
    }
}

impl Drop for TestDb {
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
                if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub address: SocketAddr,
    pub core: Arc<Core>,
    pub data_dir: PathBuf,
    _data: tempfile::TempDir,
    _db: TestDb,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts a server after `configure` has changed its settings.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut ServeArgs)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let db = TestDb::create(backend).await;
        let storage = StorageArgs {
            data_dir: data.path().to_path_buf(),
            database_url: db.url.as_deref().map(|url| url.parse::<Secret>().unwrap()),
            secret_key: None,
        };
        let mut args = ServeArgs::with_defaults(storage, "127.0.0.1:0".parse().unwrap());
        args.admin_password = Some(ADMIN_PASSWORD.parse().unwrap());
        configure(&mut args);
        let built = serve::build(&args)
            .await
            .expect("the server does not start");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let service = built
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await });
        Self {
            address,
            core: built.core,
            data_dir: data.path().to_path_buf(),
            _data: data,
            _db: db,
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

    /// Files under the blob store's folder `sub` (`blobs` or `tmp`).
    pub fn stored_files(&self, sub: &str) -> Vec<PathBuf> {
        fn walk(folder: &std::path::Path, found: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(folder) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.data_dir.join("store").join(sub), &mut found);
        found
    }
}

/// Bytes that differ from test to test.
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
