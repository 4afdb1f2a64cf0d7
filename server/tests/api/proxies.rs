//! Behind a reverse proxy (`--trusted-proxies`), each client is known by
//! the address the proxy forwards: its sign-in attempts are throttled on
//! their own, and what a client writes into `X-Forwarded-For` itself is
//! not believed; from any other peer the header is ignored, as are the
//! forwarded host and scheme absolute links are built from.

use crate::helpers::{json_of, Backend, TestApp};

/// A wrong password from `forwarded` (as a proxy would add it): its status.
async fn wrong_password(app: &TestApp, forwarded: &str) -> u16 {
    reqwest::Client::new()
        .get(app.url("/api/tokens"))
        .basic_auth("nobody", Some("wrong-password"))
        .header("x-forwarded-for", forwarded)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn server(trusted: &[&str]) -> TestApp {
    let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|net| net.parse().unwrap()).collect();
    TestApp::spawn_with(Backend::Sqlite, |args| {
        args.trusted_proxies = trusted;
        args.login_burst_per_address = 3;
        args.login_burst_per_account = 1000;
    })
    .await
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_throttled_on_its_own() {
    // The tests' peer is 127.0.0.1: the proxy.
    let app = server(&["127.0.0.0/8", "10.0.0.0/8"]).await;
    for _ in 0..3 {
        assert_eq!(wrong_password(&app, "198.51.100.1").await, 401);
    }
    assert_eq!(wrong_password(&app, "198.51.100.1").await, 429);
    // A second proxy in the chain is looked through; an address the
    // client wrote before its own is not believed.
    assert_eq!(wrong_password(&app, "198.51.100.1, 10.1.2.3").await, 429);
    assert_eq!(wrong_password(&app, "203.0.113.9, 198.51.100.1").await, 429);
    // Another client behind the same proxy has a bucket of its own.
    assert_eq!(wrong_password(&app, "198.51.100.2").await, 401);
}

#[tokio::test]
async fn from_an_untrusted_peer_the_forwarded_address_is_ignored() {
    let app = server(&[]).await;
    for forwarded in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(wrong_password(&app, forwarded).await, 401);
    }
    // All from 127.0.0.1 in truth: its bucket is empty, whatever it says.
    assert_eq!(wrong_password(&app, "198.51.100.4").await, 429);
}

/// The first page link of VSS's public image list, asked with a forwarded
/// host (the client's, then the proxy's) and scheme.
async fn first_page_link(app: &TestApp) -> String {
    let token = app.vss_token("admin", crate::helpers::ADMIN_PASSWORD).await;
    let list = json_of(
        reqwest::Client::new()
            .get(app.url("/v2/image?per_page=1"))
            .bearer_auth(token)
            // As a proxy that adds its own to what the client wrote.
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-host", "depot.example")
            .header("x-forwarded-proto", "https"),
    )
    .await;
    list["meta"]["pages"]["first_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{list}"))
        .to_owned()
}

/// Absolute links are built from the host and scheme a trusted proxy
/// forwards (the last it added); from any other peer those headers are
/// ignored, and a client cannot have the server link elsewhere.
#[tokio::test]
async fn forwarded_hosts_are_taken_from_a_trusted_proxy_only() {
    let untrusted = server(&[]).await;
    let link = first_page_link(&untrusted).await;
    assert!(
        link.starts_with(&format!("http://{}/", untrusted.address)),
        "{link}"
    );
    let proxied = server(&["127.0.0.0/8"]).await;
    let link = first_page_link(&proxied).await;
    assert!(link.starts_with("https://depot.example/"), "{link}");
}
