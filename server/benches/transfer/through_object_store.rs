//! The transfer benchmark's object-store section: the same file through a
//! server whose blobs are in the object store, beside the same client crate
//! talking to the store directly.

use std::path::Path;
use std::time::Instant;

use futures_util::TryStreamExt;
use object_store::ObjectStore;

use super::{download, mb_per_s, proc_kib, start_server, upload_copy, PASSWORD};

/// The same file through a server whose blobs are in the object store, and
/// straight to the store; Depot's throughput as a ratio of the direct one.
pub async fn measure(endpoint: &str, source: &Path, size: u64, work: &Path) {
    let variable = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} unset"));
    let bucket_name = variable("DEPOT_TEST_S3_BUCKET");
    let region = variable("DEPOT_TEST_S3_REGION");
    let key_id = variable("DEPOT_TEST_S3_KEY_ID");
    let secret = variable("DEPOT_TEST_S3_SECRET");
    let prefix = format!("bench-{:016x}", rand::random::<u64>());
    println!("\nobject store {endpoint}, bucket {bucket_name}, prefix {prefix}");

    // Straight to the store: the multipart upload Depot makes (parts of
    // the same size, as many in flight), then one streamed GET.
    let bucket = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket_name)
        .with_region(&region)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_access_key_id(&key_id)
        .with_secret_access_key(&secret)
        .build()
        .unwrap();
    let direct_key = object_store::path::Path::from(format!("{prefix}/direct.img"));
    let started = Instant::now();
    let multipart = bucket.put_multipart(&direct_key).await.unwrap();
    let mut writer = object_store::WriteMultipart::new_with_chunk_size(
        multipart,
        depot_server::blob::object::PART_SIZE,
    );
    let mut file = tokio::fs::File::open(source).await.unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        use tokio::io::AsyncReadExt;
        let read = file.read(&mut buffer).await.unwrap();
        if read == 0 {
            break;
        }
        writer
            .wait_for_capacity(depot_server::blob::object::PARTS_IN_FLIGHT)
            .await
            .unwrap();
        writer.write(&buffer[..read]);
    }
    writer.finish().await.unwrap();
    let direct_up = started.elapsed();
    let started = Instant::now();
    let received: u64 = bucket
        .get(&direct_key)
        .await
        .unwrap()
        .into_stream()
        .try_fold(0u64, |total, chunk| async move {
            Ok(total + chunk.len() as u64)
        })
        .await
        .unwrap();
    assert_eq!(received, size);
    let direct_down = started.elapsed();
    bucket.delete(&direct_key).await.unwrap();

    let extra = [
        ("DEPOT_BLOB_STORE", format!("s3://{bucket_name}/{prefix}")),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", region),
        ("AWS_ACCESS_KEY_ID", key_id),
        ("AWS_SECRET_ACCESS_KEY", secret),
    ];
    let (server, base) = start_server(&work.join("data-s3"), &extra).await;
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let idle_kib = proc_kib(pid, "VmRSS:");
    let uploaded = upload_copy(
        &client,
        pid,
        (&format!("{base}/api/upload"), "file"),
        (source, b"object store"),
        size,
    )
    .await;
    let id = uploaded.body["images"][0]["id"].as_i64().unwrap();
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let depot_down = download(
        client
            .get(format!("{base}/api/images/{id}/download"))
            .basic_auth("admin", Some(PASSWORD)),
        size,
    )
    .await;
    let down_peak_kib = proc_kib(pid, "VmHWM:");

    println!(
        "direct multipart upload   {:>8.0} MB/s",
        mb_per_s(size, direct_up)
    );
    println!(
        "direct GET                {:>8.0} MB/s",
        mb_per_s(size, direct_down)
    );
    println!(
        "upload through Depot      {:>8.0} MB/s = {:.2} x direct; RSS peak {:.1} MiB (+{:.1} MiB)",
        mb_per_s(size, uploaded.elapsed),
        direct_up.as_secs_f64() / uploaded.elapsed.as_secs_f64(),
        uploaded.peak_kib as f64 / 1024.0,
        uploaded.peak_kib.saturating_sub(uploaded.idle_kib) as f64 / 1024.0
    );
    println!(
        "download through Depot    {:>8.0} MB/s = {:.2} x direct; RSS peak {:.1} MiB (+{:.1} MiB)",
        mb_per_s(size, depot_down),
        direct_down.as_secs_f64() / depot_down.as_secs_f64(),
        down_peak_kib as f64 / 1024.0,
        down_peak_kib.saturating_sub(idle_kib) as f64 / 1024.0
    );
}
