//! The `depot` binary's administration commands.

use std::io::Write;
use std::process::{Command, Stdio};

use rstest::rstest;

use crate::helpers::{depot_serve, Backend, TestDb};

fn depot(data_dir: &std::path::Path, db: &TestDb, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_depot"));
    command.args(args).arg("--data-dir").arg(data_dir);
    if let Some(url) = &db.url {
        command.arg("--database-url").arg(url);
    }
    command
        .env_remove("DEPOT_DATABASE_URL")
        .env_remove("DEPOT_DATA_DIR");
    command
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn migrate_and_user_add_work_from_the_command_line(#[case] backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let db = TestDb::create(backend).await;
    let migrated = depot(data.path(), &db, &["migrate"]).output().unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );

    let add = |name: &str, password: &str| {
        let mut child = depot(
            data.path(),
            &db,
            &["user", "add", name, "--admin", "--password-stdin"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let created = add("ops", "ops-password-1");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).contains("created user 'ops'"));
    let again = add("ops", "ops-password-2");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("taken"));
    let short = add("dev", "short");
    assert!(!short.status.success());
    // The password never appears in what the command prints.
    assert!(!String::from_utf8_lossy(&created.stdout).contains("ops-password-1"));
    assert!(!String::from_utf8_lossy(&created.stderr).contains("ops-password-1"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn apikey_create_prints_a_working_key_once_and_stores_its_hash(#[case] backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let db = TestDb::create(backend).await;
    let mut add = depot(
        data.path(),
        &db,
        &["user", "add", "ops", "--password-stdin"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    writeln!(add.stdin.take().unwrap(), "ops-password-1").unwrap();
    assert!(add.wait_with_output().unwrap().status.success());

    let create = |tenant: &str| {
        depot(
            data.path(),
            &db,
            &["apikey", "create", "ops", "--tenant", tenant],
        )
        .output()
        .unwrap()
    };
    let first = create("acme");
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("created tenant 'acme'"), "{stdout}");
    let key = stdout.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("cpr_") && key.len() > 40, "{stdout}");
    // A second key for the same tenant does not create it again.
    let second = create("acme");
    assert!(!String::from_utf8_lossy(&second.stdout).contains("created tenant"));
    let unknown_user = depot(
        data.path(),
        &db,
        &["apikey", "create", "nobody", "--tenant", "acme"],
    )
    .output()
    .unwrap();
    assert!(!unknown_user.status.success());

    // The key identifies ops in acme, and the database holds only its hash.
    let storage = depot_server::config::StorageArgs {
        database_url: db.url.as_deref().map(|url| url.parse().unwrap()),
        ..depot_server::config::StorageArgs::in_folder(data.path().to_path_buf())
    };
    let store = depot_server::serve::open_database(&storage).await.unwrap();
    let core = depot_server::serve::open_core(&storage, store.clone(), Default::default())
        .await
        .unwrap();
    let caller = core.tenant_caller("ops", "acme", &key).await.unwrap();
    assert_eq!(
        (caller.user.username.as_str(), caller.tenant.as_str()),
        ("ops", "acme")
    );
    assert!(core.tenant_caller("ops", "other", &key).await.is_err());
    assert!(store.api_key(&key).await.unwrap().is_none());
    store.close().await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn apikeys_are_listed_without_their_secret_and_revoked(#[case] backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let db = TestDb::create(backend).await;
    let mut add = depot(
        data.path(),
        &db,
        &["user", "add", "ops", "--password-stdin"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    writeln!(add.stdin.take().unwrap(), "ops-password-1").unwrap();
    assert!(add.wait_with_output().unwrap().status.success());
    let created = depot(
        data.path(),
        &db,
        &["apikey", "create", "ops", "--tenant", "acme"],
    )
    .output()
    .unwrap();
    let created = String::from_utf8_lossy(&created.stdout).to_string();
    let key = created.lines().last().unwrap().trim().to_owned();

    let listed = depot(data.path(), &db, &["apikey", "list", "--user", "ops"])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(!listed.contains(&key), "the key was printed: {listed}");
    let row = listed
        .lines()
        .find(|line| line.contains("acme"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("ops"), "{row}");
    let id = row.split_whitespace().next().unwrap().to_owned();

    let revoked = depot(data.path(), &db, &["apikey", "revoke", &id])
        .output()
        .unwrap();
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let again = depot(data.path(), &db, &["apikey", "revoke", &id])
        .output()
        .unwrap();
    assert!(!again.status.success(), "revoking twice succeeded");
    let storage = depot_server::config::StorageArgs {
        database_url: db.url.as_deref().map(|url| url.parse().unwrap()),
        ..depot_server::config::StorageArgs::in_folder(data.path().to_path_buf())
    };
    let store = depot_server::serve::open_database(&storage).await.unwrap();
    let core = depot_server::serve::open_core(&storage, store.clone(), Default::default())
        .await
        .unwrap();
    assert!(core.tenant_caller("ops", "acme", &key).await.is_err());
    store.close().await;
}

#[test]
fn every_command_documents_itself() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["user", "add", "--help"],
        &["migrate", "--help"],
        &["apikey", "create", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_depot"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success());
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            text.contains("--data-dir") || args == ["--help"],
            "{args:?}: {text}"
        );
    }
    let serve = Command::new(env!("CARGO_BIN_EXE_depot"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&serve.stdout);
    for flag in [
        "--bind",
        "--database-url",
        "--admin-password",
        "DEPOT_ADMIN_PASSWORD",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}");
    }
}

#[test]
fn serve_prints_a_generated_admin_password_once_and_stops_on_sigterm() {
    use std::io::Read;
    use std::time::{Duration, Instant};

    let data = tempfile::tempdir().unwrap();
    let (mut command, address) = depot_serve(data.path());
    let mut server = command
        .env_remove("DEPOT_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // SIGTERM the moment the port opens, as a supervisor might: before the
    // handler was set first, that killed the server some of the time.
    let started = Instant::now();
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server never listened"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "SIGTERM did not stop the server"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    server
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let line = stdout
        .lines()
        .find(|l| l.contains("'admin' with the password"))
        .unwrap_or_default();
    let password = line.rsplit(' ').next().unwrap_or_default();
    assert!(password.len() >= 20, "no generated password in {stdout:?}");
    assert!(!stderr.contains(password), "the password reached the log");
    assert!(stderr.contains("Depot stopped"), "{stderr}");
}

/// Runs `statements` on the test's database (SQLite's file in `data`).
async fn execute(db: &TestDb, data: &std::path::Path, statements: &[&str]) {
    match &db.url {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            for statement in statements {
                sqlx::query(statement).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        None => {
            let url = format!("sqlite://{}?mode=rwc", data.join("depot.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            for statement in statements {
                sqlx::query(statement).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
    }
}

/// Answers the first column of `query`'s rows, as text.
async fn texts(db: &TestDb, data: &std::path::Path, query: &str) -> Vec<String> {
    match &db.url {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let rows = sqlx::query_scalar(query).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
        None => {
            let url = format!("sqlite://{}", data.join("depot.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let rows = sqlx::query_scalar(query).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
    }
}

/// An earlier Depot kept browser sessions in tower-sessions-sqlx-store's
/// table (on PostgreSQL, in a schema of its own); `depot migrate` moves to
/// Depot's `sessions` table and drops the old one, and on PostgreSQL its
/// schema unless something else lives there. Sessions end (their users sign
/// in again); nothing else is touched.
#[rstest]
#[case::sqlite(Backend::Sqlite, false)]
#[case::postgres(Backend::Postgres, false)]
#[case::postgres_schema_shared(Backend::Postgres, true)]
#[tokio::test]
async fn migrate_replaces_the_old_session_table(
    #[case] backend: Backend,
    #[case] schema_shared: bool,
) {
    let data = tempfile::tempdir().unwrap();
    let db = TestDb::create(backend).await;
    let old: &[&str] = match backend {
        Backend::Sqlite => &[
            "CREATE TABLE tower_sessions (id text primary key not null, \
             data blob not null, expiry_date integer not null)",
            "INSERT INTO tower_sessions VALUES ('old', x'80', 0)",
        ],
        _ => &[
            "CREATE SCHEMA tower_sessions",
            "CREATE TABLE tower_sessions.session (id text primary key not null, \
             data bytea not null, expiry_date timestamptz not null)",
            "INSERT INTO tower_sessions.session VALUES ('old', '\\x80', now())",
        ],
    };
    execute(&db, data.path(), old).await;
    if schema_shared {
        execute(
            &db,
            data.path(),
            &[
                "CREATE TABLE tower_sessions.neighbour (id int)",
                "INSERT INTO tower_sessions.neighbour VALUES (1)",
            ],
        )
        .await;
    }

    let migrated = depot(data.path(), &db, &["migrate"]).output().unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let tables = match backend {
        Backend::Sqlite => {
            texts(
                &db,
                data.path(),
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name IN ('tower_sessions', 'sessions') ORDER BY name",
            )
            .await
        }
        _ => {
            texts(
                &db,
                data.path(),
                "SELECT table_schema || '.' || table_name FROM information_schema.tables \
                 WHERE table_schema = 'tower_sessions' OR table_name = 'sessions' ORDER BY 1",
            )
            .await
        }
    };
    let expected: &[&str] = match (backend, schema_shared) {
        (Backend::Sqlite, _) => &["sessions"],
        (_, false) => &["public.sessions"],
        (_, true) => &["public.sessions", "tower_sessions.neighbour"],
    };
    assert_eq!(tables, expected);
    if backend != Backend::Sqlite {
        let schemas = texts(
            &db,
            data.path(),
            "SELECT nspname::text FROM pg_namespace WHERE nspname = 'tower_sessions'",
        )
        .await;
        assert_eq!(schemas.len(), usize::from(schema_shared), "{schemas:?}");
    }
}

/// A server process, killed when dropped: a test that fails midway leaves
/// none running.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Served {
    type Target = std::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// `depot serve` on a free port of loopback, with `args`; its address.
fn serve_binary(data: &std::path::Path, args: &[&str]) -> (Served, String) {
    let (mut command, address) = depot_serve(data);
    let server = command
        .args(args)
        .env("DEPOT_ADMIN_PASSWORD", "admin-password-1")
        .env_remove("DEPOT_BLOB_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (Served(server), address)
}

/// Waits until `server` listens on `address`; `false` if it ended first.
fn listens(server: &mut std::process::Child, address: &str) -> bool {
    let started = std::time::Instant::now();
    loop {
        if std::net::TcpStream::connect(address).is_ok() {
            return true;
        }
        if server.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the server neither listened nor ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A second server started on a folder another one serves (its data
/// folder, or its local blob folder) refuses to start, naming the other,
/// and touches nothing: starting, a server discards the half-written
/// uploads it finds, which would have been the other's uploads in flight.
/// Once the first is gone, `kill -9` too, the folder is free.
#[rstest]
#[case::data_folder(false)]
#[case::blob_folder(true)]
fn a_second_server_on_a_served_folder_refuses_to_start_and_touches_nothing(
    #[case] blob_folder: bool,
) {
    use std::io::Read;

    let (first_data, second_data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let blobs = tempfile::tempdir().unwrap();
    let blob_store = format!("file://{}", blobs.path().display());
    let (args, second_data, staging): (Vec<&str>, _, _) = if blob_folder {
        (
            vec!["--blob-store", &blob_store],
            second_data.path(),
            blobs.path().join("tmp"),
        )
    } else {
        (
            vec![],
            first_data.path(),
            first_data.path().join("store/tmp"),
        )
    };
    let (mut first, first_address) = serve_binary(first_data.path(), &args);
    assert!(
        listens(&mut first, &first_address),
        "the first server did not start"
    );
    // An upload the first server is taking in.
    let in_flight = staging.join("upload-in-flight");
    std::fs::write(&in_flight, b"half an image").unwrap();

    let (mut second, second_address) = serve_binary(second_data, &args);
    assert!(
        !listens(&mut second, &second_address),
        "a second server served the folder"
    );
    let status = second.wait().unwrap();
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("another Depot server (process {})", first.id())),
        "{stderr}"
    );
    assert!(
        in_flight.exists(),
        "the second server wiped an upload in flight"
    );
    assert!(std::net::TcpStream::connect(&first_address).is_ok());

    first.kill().unwrap();
    first.wait().unwrap();
    if blob_folder {
        // Free, the blob folder still holds the first database's blobs: a
        // server of another database (the second's own SQLite) refuses
        // them rather than collect them as garbage.
        let (mut other, other_address) = serve_binary(second_data, &args);
        assert!(
            !listens(&mut other, &other_address),
            "a server of another database served the blobs"
        );
        let mut stderr = String::new();
        other
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(stderr.contains("another database"), "{stderr}");
    }
    let (mut again, again_address) = serve_binary(first_data.path(), &args);
    assert!(
        listens(&mut again, &again_address),
        "the folder stayed held after a kill"
    );
    drop(again);
}
