//! What the benchmarks share: the real server as a child process, a free
//! port for it, and its memory as the kernel reports it.

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
