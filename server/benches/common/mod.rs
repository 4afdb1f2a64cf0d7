//! What the benchmarks share: the real server as a child process, a free
//! port for it, and its memory as the kernel reports it.
// Each benchmark includes this module and uses a part of it.
#![allow(dead_code)]

use std::process::Child;

/// A field of `/proc/<pid>/status` in KiB (VmRSS now, VmHWM the peak).
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// The CPU time `pid` has used so far, user and system, from
/// `/proc/<pid>/stat` (in clock ticks, 100 a second on Linux).
pub fn proc_cpu(pid: u32) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's name, which is in parentheses and may
    // hold spaces: utime and stime are the 12th and 13th of them.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    std::time::Duration::from_millis(ticks * 10)
}

/// The minor page faults `pid` has taken so far (memory mapped in as it is
/// first touched), from `/proc/<pid>/stat`.
pub fn proc_minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name
        .split_whitespace()
        .nth(7)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0)
}

/// The machine's CPU time so far, all cores: how many clock ticks were
/// busy and how many passed in all (`/proc/stat`; waiting for the disk
/// counts as idle).
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// The server under measurement; killed when dropped.
pub struct Server {
    pub child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token for `admin`, issued by `POST {url}` to its password, as a
/// script gets one.
pub async fn admin_token(client: &reqwest::Client, url: &str, password: &str) -> String {
    let issued: serde_json::Value = client
        .post(url)
        .basic_auth("admin", Some(password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    issued["token"].as_str().unwrap().to_owned()
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server binary to measure: `DEPOT_BENCH_BIN` (the release build of
/// `cargo leptos build --release`, say), or the one cargo built with the bench.
pub fn server_binary() -> std::path::PathBuf {
    std::env::var_os("DEPOT_BENCH_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_depot")))
}

/// Starts `depot serve` on `data` with `extra` environment and the admin
/// password `password`; answers once it is ready, with its base URL.
pub async fn start_server(
    data: &std::path::Path,
    password: &str,
    extra: &[(&str, String)],
) -> (Server, String) {
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let port = free_port();
    let mut command = Command::new(server_binary());
    command
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .env("DEPOT_ADMIN_PASSWORD", password)
        .env("DEPOT_LOG", "warn")
        .stdout(Stdio::null());
    for (name, value) in extra {
        command.env(name, value);
    }
    let server = Server {
        child: command.spawn().expect("cannot start depot"),
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(answer) = client.get(format!("{base}/readyz")).send().await {
            if answer.status().is_success() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    (server, base)
}
