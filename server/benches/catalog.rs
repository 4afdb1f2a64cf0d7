//! Latency of a VSS catalog page at scale: `GET /v2/image?expand=1&per_page=100`
//! with a `like` filter and a sort, over 100,000 images, beside the same SQL
//! (the page and its count, as the store runs them) sent straight to the
//! database. A benchmark, not a test: it prints figures.
//!
//! `cargo bench -p depot-server --bench catalog`; `DEPOT_BENCH_IMAGES` sets the
//! catalog size (default 100,000), `DEPOT_BENCH_REQUESTS` the samples (200),
//! `DEPOT_BENCH_DATABASE_URL` a PostgreSQL database to use instead of SQLite.

use std::time::{Duration, Instant};

use app::query::{Condition, Direction, Field, Op, Query, Value};
use depot_server::config::{Secret, ServeArgs, StorageArgs};
use depot_server::store::{sql, Db};

const PASSWORD: &str = "bench-admin-password";
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

fn report(what: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let (median, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{what:<46} median {:>8.3} ms   p99 {:>8.3} ms",
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    (median, p99)
}

/// Inserts `count` public OVA records in one transaction per 10,000.
async fn fill(db: &Db, count: usize) {
    const INSERT: &str = "INSERT INTO images (kind, name, label, folder, data_store, path, \
         public, created_at, updated_at, version) VALUES ('vm', $1, $2, $3, 'bench', $4, TRUE, $5, $5, 0)";
    let started = chrono::Utc::now() - chrono::Duration::days(400);
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        macro_rules! insert_chunk {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await.unwrap();
                for &n in chunk {
                    let distro = DISTROS[n % DISTROS.len()];
                    let name =
                        format!("{distro}-{:06}-server-cloudimg-amd64.ova", n * 7919 % count);
                    let folder = format!("VmImages/{distro}");
                    let path = format!("[bench] {folder}/{name}");
                    sqlx::query(INSERT)
                        .bind(&name)
                        .bind(format!("{folder}/{name}"))
                        .bind(&folder)
                        .bind(&path)
                        .bind(started + chrono::Duration::seconds(n as i64))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }};
        }
        match db {
            Db::Sqlite(pool) => insert_chunk!(pool),
            Db::Postgres(pool) => insert_chunk!(pool),
        }
    }
    // Fresh statistics, as PostgreSQL's autovacuum (or SQLite's `PRAGMA
    // optimize`) would gather after a bulk load.
    match db {
        Db::Sqlite(pool) => sqlx::query("ANALYZE").execute(pool).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query("ANALYZE images")
            .execute(pool)
            .await
            .map(|_| ()),
    }
    .unwrap();
}

#[tokio::main]
async fn main() {
    let images = env_number("DEPOT_BENCH_IMAGES", 100_000);
    let requests = env_number("DEPOT_BENCH_REQUESTS", 200);
    let data = tempfile::tempdir().unwrap();
    let storage = StorageArgs {
        database_url: std::env::var("DEPOT_BENCH_DATABASE_URL")
            .ok()
            .map(|url| url.parse::<Secret>().unwrap()),
        ..StorageArgs::in_folder(data.path().to_path_buf())
    };
    let mut args = ServeArgs::with_defaults(storage, "127.0.0.1:0".parse().unwrap());
    args.admin_password = Some(PASSWORD.parse().unwrap());
    args.job_workers = 0;
    let built = depot_server::serve::build(&args).await.unwrap();
    let db = built.core.db().clone();
    let filling = Instant::now();
    fill(&db, images).await;
    println!(
        "catalog: {images} images ({:?}), filled in {:.1} s",
        db.backend(),
        filling.elapsed().as_secs_f64()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, built.router).await });

    let client = reqwest::Client::new();
    let token: serde_json::Value = client
        .post(format!("http://{address}/auth/request-token"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let url = format!(
        "http://{address}/v2/image?expand=1&per_page=100&filter=name,like,ubu%25&sort=name,desc"
    );

    // Warm up both paths, then sample them in turn.
    let mut over_http = Vec::with_capacity(requests);
    let mut direct = Vec::with_capacity(requests);
    let query = Query::new(100)
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
        .filter(Condition::parse(Field::Name, Op::Like, "ubu%").unwrap())
        .sort_by(Field::Name, Direction::Desc);
    for round in 0..requests + 10 {
        let started = Instant::now();
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        let http_time = started.elapsed();
        assert_eq!(body["meta"]["count"], 100);

        let started = Instant::now();
        let (rows, total) = db.list_images(&query).await.unwrap();
        let direct_time = started.elapsed();
        assert_eq!(rows.len(), 100);
        assert!(total > 100);
        if round >= 10 {
            over_http.push(http_time);
            direct.push(direct_time);
        }
    }
    let (page, count) = sql::select_images(db.backend(), &query);
    println!("SQL: {}\n     {}", page.text, count.text);
    let (http_median, http_p99) = report("GET /v2/image (HTTP, JSON, auth)", over_http);
    let (sql_median, sql_p99) = report("the same page + count, straight SQL", direct);
    println!(
        "ratio HTTP / SQL: median {:.2}x, p99 {:.2}x",
        http_median.as_secs_f64() / sql_median.as_secs_f64(),
        http_p99.as_secs_f64() / sql_p99.as_secs_f64()
    );
}
