//! A flood of wrong passwords against the real server, from 200 clients at
//! 200 loopback addresses (so that the per-address throttle alone does not
//! end it), while a token user keeps working: the token user's latency
//! during the flood and the server's memory against idle. A benchmark, not
//! a test: it prints figures, and fails only if the server stops answering.
//!
//! `cargo bench --profile release -p depot-server --bench login_flood`; `DEPOT_BENCH_BIN` sets
//! the server binary (default the one cargo built with the bench),
//! `DEPOT_BENCH_ATTEMPTS` the number of wrong passwords (default 3000).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{admin_token, proc_kib};

const PASSWORD: &str = "bench-admin-password";
const CLIENTS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let attempts: usize = std::env::var("DEPOT_BENCH_ATTEMPTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let work = tempfile::tempdir().unwrap();
    println!(
        "login flood: {attempts} wrong passwords from {CLIENTS} clients; server {}",
        common::server_binary().display()
    );
    let (server, base) = common::start_server(&work.path().join("data"), PASSWORD, &[]).await;
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let token = admin_token(&client, &format!("{base}/api/tokens"), PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = proc_kib(pid, "VmRSS:");
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");

    // The flood: each client from its own loopback address, guessing the
    // admin's password (and, every other time, a name that does not exist).
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        u16,
        usize,
    >::new()));
    let flood_started = Instant::now();
    let flood: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let next = next.clone();
            let answers = answers.clone();
            let url = format!("{base}/api/tokens");
            let address = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                1 + (index / 250) as u8,
                1 + (index % 250) as u8,
            ));
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .local_address(address)
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                loop {
                    let attempt = next.fetch_add(1, Ordering::Relaxed);
                    if attempt >= attempts {
                        return;
                    }
                    let user = if attempt.is_multiple_of(2) {
                        "admin"
                    } else {
                        "nobody"
                    };
                    let status = match client
                        .get(&url)
                        .basic_auth(user, Some(format!("guess-{attempt}")))
                        .send()
                        .await
                    {
                        Ok(response) => response.status().as_u16(),
                        Err(_) => 0,
                    };
                    *answers.lock().unwrap().entry(status).or_default() += 1;
                }
            })
        })
        .collect();

    // Meanwhile the token user asks for their tokens, over and over.
    let mut latencies = Vec::new();
    let mut peak_rss_kib = 0;
    while next.load(Ordering::Relaxed) < attempts {
        let started = Instant::now();
        let response = client
            .get(format!("{base}/api/tokens"))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let elapsed = started.elapsed();
        assert!(
            response.is_ok_and(|response| response.status() == 200),
            "the token user was refused during the flood"
        );
        latencies.push(elapsed);
        peak_rss_kib = peak_rss_kib.max(proc_kib(pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in flood {
        task.await.unwrap();
    }
    let flood_time = flood_started.elapsed();
    peak_rss_kib = peak_rss_kib.max(proc_kib(pid, "VmHWM:"));
    latencies.sort();
    println!(
        "flood took {:.1} s; answers by status: {:?}",
        flood_time.as_secs_f64(),
        answers.lock().unwrap()
    );
    println!(
        "token user during the flood: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "server RSS: idle {:.1} MiB, peak during the flood {:.1} MiB (+{:.1} MiB), after {:.1} MiB",
        idle_kib as f64 / 1024.0,
        peak_rss_kib as f64 / 1024.0,
        peak_rss_kib.saturating_sub(idle_kib) as f64 / 1024.0,
        proc_kib(pid, "VmRSS:") as f64 / 1024.0
    );
}
