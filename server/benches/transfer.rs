//! Upload and download throughput of a large file through the HTTP API
//! (`/api/upload`, ViCE's `/v1/image/{id}/file` and tus's `/api/uploads` in
//! 64 MiB chunks), beside what the machine
//! itself can do with the same file, and the server's memory. A benchmark,
//! not a test: it prints figures.
//!
//! `cargo bench --profile release -p depot-server --bench transfer`; `DEPOT_BENCH_BYTES` sets the
//! size (default 1 GiB), `DEPOT_BENCH_DIR` the folder (default the system temp),
//! `DEPOT_BENCH_BIN` the server binary (default the one cargo built with the bench,
//! e.g. the release binary of `cargo leptos build --release`).
//!
//! With an object store at hand (`source scripts/garage.sh` starts one and
//! sets `DEPOT_TEST_S3_*`), it then measures a server whose blobs are in that
//! store beside a plain multipart upload and ranged download of the same file
//! straight to the store, by the same client crate with the same part size.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::RngCore;
use tokio_util::io::ReaderStream;

mod common;
#[path = "transfer/through_object_store.rs"]
mod through_object_store;

use common::{admin_token, proc_kib, Server};

const PASSWORD: &str = "bench-admin-password";

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn timed(mut command: Command) -> Duration {
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("command");
    assert!(status.success(), "{command:?} failed");
    started.elapsed()
}

/// Writes a file of `bytes`, each MiB as `fill` leaves a buffer.
fn write_file(path: &Path, bytes: u64, mut fill: impl FnMut(&mut [u8])) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        fill(&mut chunk);
        let take = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..take]).unwrap();
        left -= take as u64;
    }
    file.flush().unwrap();
}

fn make_file(path: &Path, bytes: u64) {
    write_file(path, bytes, |chunk| rand::thread_rng().fill_bytes(chunk));
}

/// Seconds a GiB, from a time spent on `size` bytes.
fn per_gib(time: Duration, size: u64) -> f64 {
    time.as_secs_f64() * (1u64 << 30) as f64 / size as f64
}

/// What the server, this process and the machine's cores did between
/// [`Meter::start`] and [`Meter::stop`].
struct Meter {
    server: u32,
    cpu: Duration,
    client_cpu: Duration,
    machine: (u64, u64),
    faults: u64,
}

impl Meter {
    fn start(server: u32) -> Self {
        Self {
            server,
            cpu: common::proc_cpu(server),
            client_cpu: common::proc_cpu(std::process::id()),
            machine: common::machine_ticks(),
            faults: common::proc_minor_faults(server),
        }
    }

    /// The server's CPU time, the client's, how busy the cores were, and
    /// the server's page faults.
    fn stop(self) -> (Duration, Duration, f64, u64) {
        let (busy, total) = common::machine_ticks();
        let busy = (busy - self.machine.0) as f64 / (total - self.machine.1).max(1) as f64;
        (
            common::proc_cpu(self.server).saturating_sub(self.cpu),
            common::proc_cpu(std::process::id()).saturating_sub(self.client_cpu),
            busy,
            common::proc_minor_faults(self.server).saturating_sub(self.faults),
        )
    }
}

/// One timed upload and the server's memory around it.
struct Run {
    elapsed: Duration,
    /// `dd conv=fdatasync` of the same file right before.
    dd: Duration,
    /// The CPU time (user and system) the server and the client (this
    /// process) spent during the upload.
    cpu: Duration,
    client_cpu: Duration,
    /// How busy the machine's cores were meanwhile, 0 to 1.
    busy: f64,
    /// The server's minor page faults meanwhile.
    faults: u64,
    idle_kib: u64,
    peak_kib: u64,
    body: serde_json::Value,
}

impl Run {
    /// Throughput against the `dd` right before it.
    fn ratio(&self) -> f64 {
        self.dd.as_secs_f64() / self.elapsed.as_secs_f64()
    }

    fn report(&self, what: &str, size: u64) {
        println!(
            "{what:<38} {:>5.0} MB/s = {:.2} x dd beside it ({:.0} MB/s); \
             RSS peak {:.1} MiB (+{:.1} MiB)",
            mb_per_s(size, self.elapsed),
            self.ratio(),
            mb_per_s(size, self.dd),
            self.peak_kib as f64 / 1024.0,
            self.peak_kib.saturating_sub(self.idle_kib) as f64 / 1024.0
        );
        println!(
            "{:<38} CPU s a GiB: server {:.2}, client {:.2}; cores {:.0} % busy; \
             server page faults {:.0} a GiB",
            "",
            per_gib(self.cpu, size),
            per_gib(self.client_cpu, size),
            self.busy * 100.0,
            self.faults as f64 * (1u64 << 30) as f64 / size as f64,
        );
    }
}

/// Uploads `path` as the multipart field `field`, after flushing earlier
/// writes (so that their write-back does not compete) and resetting the
/// server's peak RSS.
async fn upload(
    client: &reqwest::Client,
    pid: u32,
    url: &str,
    field: &str,
    path: &Path,
    size: u64,
) -> Run {
    let dd = dd_beside(path, size);
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let idle_kib = proc_kib(pid, "VmRSS:");
    let file = tokio::fs::File::open(path).await.unwrap();
    let body = reqwest::Body::wrap_stream(ReaderStream::with_capacity(file, 1 << 20));
    let part = reqwest::multipart::Part::stream_with_length(body, size).file_name("bench.img");
    let form = reqwest::multipart::Form::new().part(field.to_owned(), part);
    let meter = Meter::start(pid);
    let started = Instant::now();
    let response = client
        .post(url)
        .basic_auth("admin", Some(PASSWORD))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let (cpu, client_cpu, busy, faults) = meter.stop();
    let peak_kib = proc_kib(pid, "VmHWM:");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{url}: {status} {text}");
    Run {
        elapsed,
        dd,
        cpu,
        client_cpu,
        busy,
        faults,
        idle_kib,
        peak_kib,
        body: serde_json::from_str(&text).unwrap_or_default(),
    }
}

/// Uploads a copy of `source` that starts with `tag` (bytes of their own,
/// so that nothing is deduplicated) to `url` as the multipart field
/// `field`, as [`upload`] does; the copy is deleted after.
async fn upload_copy(
    client: &reqwest::Client,
    pid: u32,
    (url, field): (&str, &str),
    (source, tag): (&Path, &[u8]),
    size: u64,
) -> Run {
    let copy = variant(source, tag, source.parent().unwrap());
    let run = upload(client, pid, url, field, &copy, size).await;
    let _ = std::fs::remove_file(&copy);
    run
}

/// Uploads `path` over tus (`/api/uploads`) in chunks of `chunk` bytes, as
/// tus-js-client and tuspy do with a chunk size set, each request signed
/// with `authorization`; the time includes the completion (the image
/// recorded).
async fn tus_upload(
    client: &reqwest::Client,
    pid: u32,
    base: &str,
    (path, size): (&Path, u64),
    chunk: u64,
    authorization: &str,
) -> Run {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let dd = dd_beside(path, size);
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let idle_kib = proc_kib(pid, "VmRSS:");
    let meter = Meter::start(pid);
    let started = Instant::now();
    let created = client
        .post(format!("{base}/api/uploads"))
        .header("authorization", authorization)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", size.to_string())
        .header("upload-metadata", "filename YmVuY2gtdHVzLmltZw==")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let url = format!("{base}{location}");
    let mut offset = 0u64;
    while offset < size {
        let length = chunk.min(size - offset);
        let mut file = tokio::fs::File::open(path).await.unwrap();
        file.seek(std::io::SeekFrom::Start(offset)).await.unwrap();
        let piece = file.take(length);
        let body = reqwest::Body::wrap_stream(ReaderStream::with_capacity(piece, 1 << 20));
        let answer = client
            .patch(&url)
            .header("authorization", authorization)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .header("content-length", length.to_string())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204, "{:?}", answer.text().await);
        offset += length;
    }
    let elapsed = started.elapsed();
    let (cpu, client_cpu, busy, faults) = meter.stop();
    let peak_kib = proc_kib(pid, "VmHWM:");
    let body: serde_json::Value = client
        .get(&url)
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["image"]["id"].is_i64(), "{body}");
    Run {
        elapsed,
        dd,
        cpu,
        client_cpu,
        busy,
        faults,
        idle_kib,
        peak_kib,
        body,
    }
}

/// A new ViCE image record, without bytes yet: its id.
async fn vice_image(client: &reqwest::Client, base: &str) -> String {
    let created: serde_json::Value = client
        .post(format!("{base}/v1/images"))
        .basic_auth("admin", Some(PASSWORD))
        .json(&serde_json::json!({"title": "bench", "contenttype": "disk-raw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().unwrap().to_owned()
}

/// Writes `size` bytes to a file in `folder` and deletes it at once, unsynced,
/// so that the writer measured next finds that much memory just freed.
/// These machines are virtual: the host backs their memory as it is first
/// touched and takes it back a few seconds after it is freed, and a write
/// into memory not touched lately cost 2.6 s a GiB, into memory just freed
/// 0.2 s (a plain 1 GiB write, in turns; in a run of this benchmark, the
/// server's time went to the kernel's copy into the page cache). Whichever
/// of `dd` and the uploads came right after a file's deletion was measured
/// on recycled memory, the others on new: so each now comes after one.
fn recycle_page_cache(folder: &Path, size: u64) {
    let path = folder.join("recycled.bin");
    write_file(&path, size, |_| {});
    std::fs::remove_file(&path).unwrap();
}

/// `dd conv=fdatasync` of `path` into its folder, timed, then the disk
/// and memory left as they were found for the upload measured next: the
/// upload's reference in the same round (the disk's speed here drifts by
/// a third between minutes).
fn dd_beside(path: &Path, size: u64) -> Duration {
    let folder = path.parent().unwrap();
    let out = folder.join("dd.out");
    let _ = Command::new("sync").status();
    recycle_page_cache(folder, size);
    let dd = timed({
        let mut c = Command::new("dd");
        c.arg(format!("if={}", path.display()))
            .arg(format!("of={}", out.display()))
            .args(["bs=1M", "conv=fdatasync"]);
        c
    });
    std::fs::remove_file(out).unwrap();
    let _ = Command::new("sync").status();
    recycle_page_cache(folder, size);
    dd
}

/// A copy of `source` in `folder` that starts with `tag`, so that its hash differs.
fn variant(source: &Path, tag: &[u8], folder: &Path) -> PathBuf {
    use std::io::{Seek, Write};
    let path = folder.join(format!(
        "{}.img",
        String::from_utf8_lossy(tag).replace(' ', "-")
    ));
    std::fs::copy(source, &path).unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(std::io::SeekFrom::Start(0)).unwrap();
    file.write_all(tag).unwrap();
    path
}

#[tokio::main]
async fn main() {
    let size: u64 = std::env::var("DEPOT_BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 30);
    let root = std::env::var_os("DEPOT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::tempdir_in(root).unwrap();
    let source = work.path().join("source.img");
    println!(
        "transfer benchmark: {} MiB file in {}",
        size >> 20,
        work.path().display()
    );
    make_file(&source, size);

    let sha = timed({
        let mut c = Command::new("sha256sum");
        c.arg(&source);
        c
    });

    let (server, base) = start_server(&work.path().join("data"), &[]).await;
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let idle_kib = proc_kib(pid, "VmRSS:");

    // The browser's upload, then the same size through ViCE's
    // `/v1/image/{id}/file` (multipart `upfile`), then both again, each of
    // other bytes so that nothing is deduplicated. Whichever runs first is
    // fastest (the disk's cache and write-back are fresh): compare the pairs.
    let first = upload(
        &client,
        pid,
        &format!("{base}/api/upload"),
        "file",
        &source,
        size,
    )
    .await;
    let id = first.body["images"][0]["id"].as_i64().unwrap();
    // Resumable: tus in 64 MiB chunks, as a browser's or a script's client
    // sends a large file, right after each multipart run (so that the two
    // meet the disk in the same state), signed with a token as scripts are.
    let token = admin_token(&client, &format!("{base}/api/tokens"), PASSWORD).await;
    let bearer = format!("Bearer {token}");
    let tus_source = variant(&source, b"tus bytes", work.path());
    let tus = tus_upload(&client, pid, &base, (&tus_source, size), 64 << 20, &bearer).await;
    let _ = std::fs::remove_file(&tus_source);
    let vice_id = vice_image(&client, &base).await;
    let vice = upload_copy(
        &client,
        pid,
        (&format!("{base}/v1/image/{vice_id}/file"), "upfile"),
        (&source, b"vice bytes"),
        size,
    )
    .await;
    let again = upload_copy(
        &client,
        pid,
        (&format!("{base}/api/upload"), "file"),
        (&source, b"again bytes"),
        size,
    )
    .await;
    let tus_again_source = variant(&source, b"tus again", work.path());
    let tus_again = tus_upload(
        &client,
        pid,
        &base,
        (&tus_again_source, size),
        64 << 20,
        &bearer,
    )
    .await;
    let _ = std::fs::remove_file(&tus_again_source);
    let vice_again_id = vice_image(&client, &base).await;
    let vice_again = upload_copy(
        &client,
        pid,
        (&format!("{base}/v1/image/{vice_again_id}/file"), "upfile"),
        (&source, b"vice again"),
        size,
    )
    .await;
    // Downloads of the same bytes, Depot's and nginx's by turns, each with
    // the CPU time its server spent on it: over loopback the throughput is
    // much the client's and the machine's moment, the CPU a server needs
    // for a GiB much less so.
    let nginx = start_nginx(work.path(), work.path());
    let rounds: usize = std::env::var("DEPOT_BENCH_DOWNLOADS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(5)
        .max(1);
    let (mut downloads, mut nginx_downloads) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let request = client
            .get(format!("{base}/api/images/{id}/download"))
            .bearer_auth(&token);
        downloads.push(Served::measure(pid, request, size).await);
        if let Some((nginx, nginx_base)) = &nginx {
            let request = client.get(format!("{nginx_base}/source.img"));
            nginx_downloads.push(Served::measure(nginx.child.id(), request, size).await);
        }
    }
    let download = Served::median(&downloads);

    println!(
        "sha256sum                 {:>8.0} MB/s",
        mb_per_s(size, sha)
    );
    let runs = [
        ("upload /api/upload (multipart file)", &first),
        ("upload ViCE /v1/image/{id}/file", &vice),
        ("upload /api/upload again", &again),
        ("upload ViCE /v1/image/{id}/file again", &vice_again),
        ("upload tus /api/uploads, 64 MiB chunks", &tus),
        ("upload tus again", &tus_again),
    ];
    for (what, run) in runs {
        run.report(what, size);
    }
    let mut ratios: Vec<f64> = runs.iter().map(|(_, run)| run.ratio()).collect();
    let mut dds: Vec<Duration> = runs.iter().map(|(_, run)| run.dd).collect();
    ratios.sort_by(f64::total_cmp);
    dds.sort();
    println!(
        "uploads / dd beside each       {:>5.2} x (median; {:.2}-{:.2} x); dd {:.0}-{:.0} MB/s",
        (ratios[2] + ratios[3]) / 2.0,
        ratios[0],
        ratios[5],
        mb_per_s(size, dds[5]),
        mb_per_s(size, dds[0]),
    );
    println!(
        "tus / multipart upload    {:>8.2} x (the means of both runs of each)",
        (first.elapsed + again.elapsed).as_secs_f64()
            / (tus.elapsed + tus_again.elapsed).as_secs_f64()
    );
    println!(
        "download (HTTP)           {:>8.0} MB/s, server CPU {:.2} s a GiB (medians of {rounds})",
        mb_per_s(size, download.elapsed),
        download.cpu_per_gib(size)
    );
    if nginx_downloads.is_empty() {
        println!("download, nginx           (not installed: apt-get install nginx-light)");
    } else {
        let nginx = Served::median(&nginx_downloads);
        let mut ratios: Vec<f64> = downloads
            .iter()
            .zip(&nginx_downloads)
            .map(|(depot, nginx)| nginx.elapsed.as_secs_f64() / depot.elapsed.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "download, nginx           {:>8.0} MB/s, server CPU {:.2} s a GiB; \
             Depot / nginx {:.2}x (median of the rounds' ratios, {:.2}-{:.2}x)",
            mb_per_s(size, nginx.elapsed),
            nginx.cpu_per_gib(size),
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    println!(
        "server RSS idle           {:>8.1} MiB",
        idle_kib as f64 / 1024.0
    );
    drop(server);
    drop(nginx);

    match std::env::var("DEPOT_TEST_S3_ENDPOINT") {
        Ok(endpoint) => through_object_store::measure(&endpoint, &source, size, work.path()).await,
        Err(_) => println!("\n(no object store: `source scripts/garage.sh` first to measure one)"),
    }
}

/// Starts the server with `extra` environment; answers it and its address.
async fn start_server(data: &Path, extra: &[(&str, String)]) -> (Server, String) {
    println!("server: {}", common::server_binary().display());
    common::start_server(data, PASSWORD, extra).await
}

/// One download: how long it took and the CPU time its server spent.
#[derive(Clone, Copy)]
struct Served {
    elapsed: Duration,
    cpu: Duration,
}

impl Served {
    /// Downloads what `request` asks for whole, counting bytes, from the
    /// server whose process is `pid`.
    async fn measure(pid: u32, request: reqwest::RequestBuilder, size: u64) -> Self {
        let cpu = common::proc_cpu(pid);
        let elapsed = download(request, size).await;
        Self {
            elapsed,
            cpu: common::proc_cpu(pid).saturating_sub(cpu),
        }
    }

    /// The median time and the median CPU time, each of its own.
    fn median(all: &[Self]) -> Self {
        let mut elapsed: Vec<Duration> = all.iter().map(|served| served.elapsed).collect();
        let mut cpu: Vec<Duration> = all.iter().map(|served| served.cpu).collect();
        elapsed.sort();
        cpu.sort();
        Self {
            elapsed: elapsed[elapsed.len() / 2],
            cpu: cpu[cpu.len() / 2],
        }
    }

    fn cpu_per_gib(&self, size: u64) -> f64 {
        per_gib(self.cpu, size)
    }
}

/// Downloads what `request` asks for whole, counting bytes; answers how
/// long it took.
async fn download(request: reqwest::RequestBuilder, size: u64) -> Duration {
    let started = Instant::now();
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let mut stream = response.bytes_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        received += chunk.unwrap().len() as u64;
    }
    assert_eq!(received, size);
    started.elapsed()
}

/// nginx from Debian's packages serving `folder`, the reference for
/// downloads; `None` where it is not installed.
fn start_nginx(folder: &Path, work: &Path) -> Option<(Server, String)> {
    let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())?;
    let port = common::free_port();
    let temp = work.join("nginx-temp");
    std::fs::create_dir_all(&temp).unwrap();
    let config = work.join("nginx.conf");
    std::fs::write(
        &config,
        format!(
            "daemon off; master_process off; worker_processes 1;\n\
             pid {work}/nginx.pid; error_log {work}/nginx.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on;\n\
               client_body_temp_path {temp}; proxy_temp_path {temp};\n\
               fastcgi_temp_path {temp}; uwsgi_temp_path {temp}; scgi_temp_path {temp};\n\
               server {{ listen 127.0.0.1:{port}; root {folder}; }} }}\n",
            work = work.display(),
            temp = temp.display(),
            folder = folder.display(),
        ),
    )
    .unwrap();
    // Killed when dropped, whether or not it ever answers.
    let nginx = Server {
        child: Command::new(binary)
            .arg("-c")
            .arg(&config)
            .arg("-e")
            .arg(work.join("nginx.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?,
    };
    let address = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&address).is_ok() {
            return Some((nginx, format!("http://{address}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
