//! The catalog under load, beside the same SQL sent straight to the database
//! through the store (and, one at a time, through sqlx): each dialect's sorted
//! page and a filtered page, one request at a time (median, p99) and from 16
//! connections (requests per second);
//! metadata records created by 4 clients, then 32, beside the same inserts
//! sent straight, and how long a change to a record takes meanwhile; the
//! plans the database chose; the server's memory idle and
//! under load. A benchmark, not a test: it prints figures.
//!
//! `cargo bench --profile release -p depot-server --bench catalog`. `DEPOT_BENCH_IMAGES` sets
//! the catalog's size (10,000), `DEPOT_BENCH_SECONDS` each loaded run's
//! length (5), `DEPOT_BENCH_DATABASE_URL` a PostgreSQL database to use
//! instead of SQLite, `DEPOT_BENCH_BIN` the server binary.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::query::{Condition, Direction, Field, Op, Query, Value};
use depot_server::config::{Secret, StorageArgs};
use depot_server::store::sql::{self, Arg};
use depot_server::store::{Db, ImageRow, Pool};

mod common;

use common::{admin_token, proc_cpu, proc_kib};

const PASSWORD: &str = "bench-admin-password";
const CONNECTIONS: usize = 16;
/// How many clients create records at once, in turn.
const WRITERS: [usize; 2] = [4, 32];
const DISTROS: [&str; 8] = [
    "ubuntu", "centos", "debian", "fedora", "photon", "coreos", "rancher", "opensuse",
];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The name of image `n` of `count`: the distros interleaved, in no order.
fn image_name(n: usize, count: usize) -> String {
    let distro = DISTROS[n % DISTROS.len()];
    format!("{distro}-{:06}-server-cloudimg-amd64.ova", n * 7919 % count)
}

/// Inserts `count` public OVA records, one transaction per 10,000.
async fn fill(db: &Db, count: usize) {
    const INSERT: &str = "INSERT INTO images (kind, name, label, folder, data_store, path, \
         public, created_at, updated_at, version) VALUES ('vm', $1, $2, $3, 'bench', $4, TRUE, $5, $5, 0)";
    let started = chrono::Utc::now() - chrono::Duration::days(400);
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        macro_rules! insert_chunk {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.unwrap();
                for &n in chunk {
                    let name = image_name(n, count);
                    let folder = format!("VmImages/{}", DISTROS[n % DISTROS.len()]);
                    sqlx::query(INSERT)
                        .bind(&name)
                        .bind(format!("{folder}/{name}"))
                        .bind(&folder)
                        .bind(format!("[bench] {folder}/{name}"))
                        .bind(started + chrono::Duration::seconds(n as i64))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }};
        }
        match db.pool() {
            Pool::Sqlite(pool) => insert_chunk!(pool),
            Pool::Postgres(pool) => insert_chunk!(pool),
        }
    }
    // Fresh statistics, as SQLite's `PRAGMA optimize` would gather after a
    // bulk load; on PostgreSQL, autovacuum's work after one: the statistics,
    // and the visibility map that lets a count read an index alone.
    match db.pool() {
        Pool::Sqlite(pool) => sqlx::query("ANALYZE").execute(pool).await.map(|_| ()),
        Pool::Postgres(pool) => sqlx::query("VACUUM ANALYZE images")
            .execute(pool)
            .await
            .map(|_| ()),
    }
    .unwrap();
}

/// `$query` with every argument of `$args` (a `&[Arg]`) bound, in order.
macro_rules! bound {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Int(value) => query.bind(*value),
                Arg::Text(value) => query.bind(value.clone()),
                Arg::Bool(value) => query.bind(*value),
                Arg::Time(value) => query.bind(*value),
            };
        }
        query
    }};
}

/// The page and its count sent straight through sqlx, side by side as the
/// store sends them on PostgreSQL (on SQLite, as it sent them before its
/// pages had a reader of their own): the reference that shows, in the same
/// run, what the store adds or saves.
async fn through_sqlx(db: &Db, query: &Query) -> usize {
    let (page, count) = sql::select_images(db.backend(), query);
    macro_rules! page_and_count {
        ($pool:expr) => {{
            let rows =
                bound!(sqlx::query_as::<_, ImageRow>(&page.text), &page.args).fetch_all($pool);
            let counted =
                bound!(sqlx::query_scalar::<_, i64>(&count.text), &count.args).fetch_one($pool);
            let (rows, _) = tokio::try_join!(rows, counted).unwrap();
            rows.len()
        }};
    }
    match db.pool() {
        Pool::Sqlite(pool) => page_and_count!(pool),
        Pool::Postgres(pool) => page_and_count!(pool),
    }
}

/// One page as a client asks for it, and the query the store runs for it.
struct Case {
    what: &'static str,
    path: String,
    query: Query,
}

fn cases(count: usize) -> Vec<Case> {
    let public_vms = || {
        Query::new(100)
            .filter(Condition::Compare {
                field: Field::Kind,
                op: Op::Eq,
                value: Value::Text("vm".into()),
            })
            .filter(Condition::Compare {
                field: Field::Public,
                op: Op::Eq,
                value: Value::Bool(true),
            })
    };
    let one_name = image_name(count / 2, count);
    vec![
        Case {
            what: "MWS: 100 sorted by name",
            path: "/mws/rest/images?api-version=3&max=100&sort=%7B%22name%22%3A1%7D".into(),
            query: Query::new(100).sort_by(Field::Name, Direction::Asc),
        },
        Case {
            what: "MWS: filter by name",
            path: format!(
                "/mws/rest/images?api-version=3&query=%7B%22name%22%3A%22{one_name}%22%7D"
            ),
            query: Query::new(1000)
                .filter(Condition::parse(Field::Name, Op::Eq, &one_name).unwrap()),
        },
        Case {
            what: "VSS: 100 named ubu%, sorted, expanded",
            path: "/v2/image?expand=1&per_page=100&filter=name,like,ubu%25&sort=name,desc".into(),
            query: public_vms()
                .filter(Condition::parse(Field::Name, Op::Like, "ubu%").unwrap())
                .sort_by(Field::Name, Direction::Desc),
        },
    ]
}

async fn get_page(client: &reqwest::Client, url: &str, token: &str) {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.bytes().await.unwrap();
}

#[tokio::main]
async fn main() {
    let images = env_number("DEPOT_BENCH_IMAGES", 10_000);
    let seconds = env_number("DEPOT_BENCH_SECONDS", 5) as u64;
    let samples = 200;
    let data = tempfile::tempdir().unwrap();
    let storage = StorageArgs {
        database_url: std::env::var("DEPOT_BENCH_DATABASE_URL")
            .ok()
            .map(|url| url.parse::<Secret>().unwrap()),
        ..StorageArgs::in_folder(data.path().to_path_buf())
    };
    // The reference reads every page and total: the server keeps those it
    // read on PostgreSQL while the catalog holds still (store/kept.rs).
    let db = depot_server::serve::open_database(&storage)
        .await
        .unwrap()
        .keeping_nothing();
    let filling = Instant::now();
    fill(&db, images).await;
    println!(
        "catalog: {images} images ({:?}), filled in {:.1} s; server {}",
        db.backend(),
        filling.elapsed().as_secs_f64(),
        common::server_binary().display()
    );
    let mut extra = Vec::new();
    if let Some(url) = std::env::var_os("DEPOT_BENCH_DATABASE_URL") {
        extra.push(("DEPOT_DATABASE_URL", url.to_string_lossy().into_owned()));
    }
    let (server, base) = common::start_server(data.path(), PASSWORD, &extra).await;
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let token = admin_token(&client, &format!("{base}/api/tokens"), PASSWORD).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kib = proc_kib(pid, "VmRSS:");

    println!(
        "\n{:<40} {:>22} {:>22} {:>8} {:>12}",
        "one request at a time",
        "HTTP median / p99 ms",
        "SQL median / p99 ms",
        "HTTP/SQL",
        "sqlx med. ms"
    );
    let cases = cases(images);
    let mut loaded = Vec::new();
    for case in &cases {
        let url = format!("{base}{}", case.path);
        let (mut over_http, mut direct, mut sqlx) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..samples + 20 {
            let started = Instant::now();
            get_page(&client, &url, &token).await;
            let http_time = started.elapsed();
            let started = Instant::now();
            let (rows, _) = db.list_images(&case.query).await.unwrap();
            let sql_time = started.elapsed();
            assert!(!rows.is_empty(), "{}", case.what);
            let started = Instant::now();
            assert_eq!(through_sqlx(&db, &case.query).await, rows.len());
            let sqlx_time = started.elapsed();
            if round >= 20 {
                over_http.push(http_time);
                direct.push(sql_time);
                sqlx.push(sqlx_time);
            }
        }
        over_http.sort();
        direct.sort();
        sqlx.sort();
        let (http_median, sql_median) = (percentile(&over_http, 0.5), percentile(&direct, 0.5));
        println!(
            "{:<40} {:>10.3} / {:>9.3} {:>10.3} / {:>9.3} {:>7.2}x {:>12.3}",
            case.what,
            ms(http_median),
            ms(percentile(&over_http, 0.99)),
            ms(sql_median),
            ms(percentile(&direct, 0.99)),
            http_median.as_secs_f64() / sql_median.as_secs_f64(),
            ms(percentile(&sqlx, 0.5))
        );
        loaded.push((case, url));
    }

    moving_catalog(&client, &base, &token, &db, &cases[0], samples).await;

    println!(
        "\n{:<40} {:>22} {:>22} {:>8}",
        "16 connections", "HTTP requests/s", "SQL queries/s", "HTTP/SQL"
    );
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    for (case, url) in loaded {
        let http = {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            throughput_of(CONNECTIONS, seconds, move || {
                let (client, url, token) = (client.clone(), url.clone(), token.clone());
                async move { get_page(&client, &url, &token).await }
            })
            .await
        };
        let direct = {
            let (db, query) = (db.clone(), case.query.clone());
            throughput_of(CONNECTIONS, seconds, move || {
                let (db, query) = (db.clone(), query.clone());
                async move {
                    db.list_images(&query).await.unwrap();
                }
            })
            .await
        };
        println!(
            "{:<40} {:>22.0} {:>22.0} {:>7.2}x",
            case.what,
            http,
            direct,
            http / direct
        );
    }
    let loaded_kib = proc_kib(pid, "VmHWM:");
    print_kept(&client, &base, &token).await;

    for case in &cases {
        let (page, count) = sql::select_images(db.backend(), &case.query);
        println!("\nplan, {}:\n  {}", case.what, page.text);
        for line in db.plan(&page).await.unwrap() {
            println!("    {line}");
        }
        println!("  {}", count.text);
        for line in db.plan(&count).await.unwrap() {
            println!("    {line}");
        }
    }

    // Metadata records: MWS creates from 4 clients, and from 32 (where
    // many arrive while others are being committed), beside the same insert
    // (one transaction each) from as many tasks.
    let next = Arc::new(AtomicUsize::new(0));
    for writers in WRITERS {
        let made_before = next.load(Ordering::Relaxed);
        let last_id_before = last_image_id(&db).await;
        let changes = changes_beside(&client, &base, &token).await;
        let cpu_before = proc_cpu(pid);
        let created = {
            let (client, token, next) = (client.clone(), token.clone(), next.clone());
            let url = format!("{base}/mws/rest/images?api-version=3");
            throughput_of(writers, seconds, move || {
                let (client, token, url) = (client.clone(), token.clone(), url.clone());
                let n = next.fetch_add(1, Ordering::Relaxed);
                async move {
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&serde_json::json!({
                            "name": format!("made-{n}"),
                            "osType": "linux",
                            "hypervisor": false,
                            "supportsVirtualMachine": true,
                        }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 201);
                    response.bytes().await.unwrap();
                }
            })
            .await
        };
        let mut changed = changes.stop().await;
        let made = next.load(Ordering::Relaxed) - made_before;
        let cpu_per_record = (proc_cpu(pid) - cpu_before).as_secs_f64() * 1e3 / made as f64;
        let per_commit = records_per_commit(&db, last_id_before).await;
        let inserted = {
            let (db, next) = (db.clone(), next.clone());
            throughput_of(writers, seconds, move || {
                let db = db.clone();
                let n = next.fetch_add(1, Ordering::Relaxed);
                async move { insert_one(&db, &format!("straight-{n}")).await }
            })
            .await
        };
        println!(
            "\n{:<40} {:>22.0} {:>22.0} {:>7.2}x",
            format!("records created, {writers} clients (/s)"),
            created,
            inserted,
            created / inserted
        );
        println!("  server CPU per record created: {cpu_per_record:.3} ms");
        changed.sort();
        if let Some(slowest) = changed.last() {
            println!(
                "  a record changed meanwhile, every 50 ms: median {:.1} ms, p99 {:.1}, slowest {:.1}",
                ms(percentile(&changed, 0.5)),
                ms(percentile(&changed, 0.99)),
                ms(*slowest)
            );
        }
        if let Some(per_commit) = per_commit {
            println!("  records per commit: {per_commit:.2}");
        }
    }

    println!(
        "\nserver memory: idle {:.1} MiB, peak under 16 connections {:.1} MiB",
        idle_kib as f64 / 1024.0,
        loaded_kib as f64 / 1024.0
    );
}

/// `case` one request at a time with an image changed before each: what
/// a page costs the server when what it kept no longer holds, beside the
/// same SQL through the store after a change of its own (SQLite's
/// connections read again what another one changed, so a page read after
/// a change costs more than the same page read twice).
async fn moving_catalog(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    db: &Db,
    case: &Case,
    samples: usize,
) {
    const TOUCH: &str = "UPDATE images SET version = version + 1 \
         WHERE id = (SELECT min(id) FROM images)";
    let touch = || async {
        match db.pool() {
            Pool::Sqlite(pool) => sqlx::query(TOUCH).execute(pool).await.map(|_| ()),
            Pool::Postgres(pool) => sqlx::query(TOUCH).execute(pool).await.map(|_| ()),
        }
        .unwrap()
    };
    let url = format!("{base}{}", case.path);
    let (mut over_http, mut direct) = (Vec::new(), Vec::new());
    for round in 0..samples + 20 {
        touch().await;
        let started = Instant::now();
        get_page(client, &url, token).await;
        let http_time = started.elapsed();
        touch().await;
        let started = Instant::now();
        db.list_images(&case.query).await.unwrap();
        let sql_time = started.elapsed();
        if round >= 20 {
            over_http.push(http_time);
            direct.push(sql_time);
        }
    }
    over_http.sort();
    direct.sort();
    let (http_median, sql_median) = (percentile(&over_http, 0.5), percentile(&direct, 0.5));
    println!(
        "{:<40} {:>10.3} / {:>9.3} {:>10.3} / {:>9.3} {:>7.2}x",
        format!("{}, an image changed before each", case.what),
        ms(http_median),
        ms(percentile(&over_http, 0.99)),
        ms(sql_median),
        ms(percentile(&direct, 0.99)),
        http_median.as_secs_f64() / sql_median.as_secs_f64(),
    );
}

/// How the server found its pages and totals: kept, or read.
async fn print_kept(client: &reqwest::Client, base: &str, token: &str) {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let figure = |series: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    println!(
        "  the server's pages: {} kept, {} read; totals: {} kept, {} counted",
        figure("depot_catalog_pages_total{how=\"kept\"}"),
        figure("depot_catalog_pages_total{how=\"read\"}"),
        figure("depot_catalog_counts_total{how=\"kept\"}"),
        figure("depot_catalog_counts_total{how=\"counted\"}"),
    );
}

/// A record changed every 50 ms while others are created: how
/// long each change takes. A change is written through the pool, not the
/// writer that groups new records, so it waits for the database's write
/// lock between groups.
struct ChangesBeside {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Duration>>,
}

async fn changes_beside(client: &reqwest::Client, base: &str, token: &str) -> ChangesBeside {
    let url = format!("{base}/mws/rest/images/changed-beside?api-version=3");
    let body = |label: usize| {
        serde_json::json!({
            "name": "changed-beside",
            "features": [format!("change-{label}")],
            "osType": "linux",
            "hypervisor": false,
            "supportsVirtualMachine": true,
        })
    };
    let created = client
        .post(format!("{base}/mws/rest/images?api-version=3"))
        .bearer_auth(token)
        .json(&body(0))
        .send()
        .await
        .unwrap();
    assert!(
        created.status() == 201 || created.status() == 409,
        "{}",
        created.status()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (client, token, running) = (client.clone(), token.to_owned(), stop.clone());
    let task = tokio::spawn(async move {
        let mut took = Vec::new();
        while !running.load(Ordering::Relaxed) {
            let started = Instant::now();
            let response = client
                .put(&url)
                .bearer_auth(&token)
                .json(&body(took.len() + 1))
                .send()
                .await
                .unwrap();
            let status = response.status();
            response.bytes().await.unwrap();
            if status == 200 {
                took.push(started.elapsed());
            } else {
                println!("  a change meanwhile failed: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        took
    });
    ChangesBeside { stop, task }
}

impl ChangesBeside {
    async fn stop(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Runs `one` from `tasks` tasks for `seconds`; answers how many finished
/// per second.
async fn throughput_of<F, Fut>(tasks: usize, seconds: u64, one: F) -> f64
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let one = Arc::new(one);
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (one, done, stop) = (one.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    one().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// The newest image's id.
async fn last_image_id(db: &Db) -> i64 {
    const LAST: &str = "SELECT COALESCE(MAX(id), 0) FROM images";
    match db.pool() {
        Pool::Sqlite(pool) => sqlx::query_scalar(LAST).fetch_one(pool).await.unwrap(),
        Pool::Postgres(pool) => sqlx::query_scalar(LAST).fetch_one(pool).await.unwrap(),
    }
}

/// On PostgreSQL, how many of the images after `after` (an id) each commit
/// stored on average: the rows a transaction wrote share its `xmin`. SQLite
/// keeps no such mark.
async fn records_per_commit(db: &Db, after: i64) -> Option<f64> {
    let Pool::Postgres(pool) = db.pool() else {
        return None;
    };
    const PER_COMMIT: &str = "SELECT count(*)::float8 / GREATEST(count(DISTINCT xmin::text), 1) \
         FROM images WHERE id > $1";
    Some(
        sqlx::query_scalar(PER_COMMIT)
            .bind(after)
            .fetch_one(pool)
            .await
            .unwrap(),
    )
}

/// One provisioning record, as the store writes one, in its own transaction.
async fn insert_one(db: &Db, name: &str) {
    const INSERT: &str = "INSERT INTO images (kind, name, label, folder, data_store, path, \
         public, created_at, updated_at, version) VALUES ('definition', $1, $1, '', 'bench', $1, \
         FALSE, $2, $2, 0)";
    let now = chrono::Utc::now();
    macro_rules! insert {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.unwrap();
            sqlx::query(INSERT)
                .bind(name)
                .bind(now)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }};
    }
    match db.pool() {
        Pool::Sqlite(pool) => insert!(pool),
        Pool::Postgres(pool) => insert!(pool),
    }
}
