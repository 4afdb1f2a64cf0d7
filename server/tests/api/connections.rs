//! The server's connections: HTTP/1.1 only; a client that sends nothing,
//! never finishes a request's head, stops sending an upload's body, or stops
//! taking a download is let go after the server's client timeout (1 s here),
//! and what served it with it; a slow client that keeps moving is served to
//! the end.

use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use depot_server::blob::Area;

use crate::files::images_listed;
use crate::helpers::{random_bytes, Backend, TestApp, ADMIN_PASSWORD};

/// Long enough to tell a server that gave up from one still waiting.
const WELL_PAST: Duration = Duration::from_secs(15);

async fn patient_for_a_second() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |args| args.client_timeout_secs = 1).await
}

fn admin_authorization() -> String {
    let pair = format!("admin:{ADMIN_PASSWORD}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    format!("Authorization: Basic {encoded}\r\n")
}

/// Everything the server sends until it closes the connection (`None` if it
/// has not within [`WELL_PAST`]).
async fn read_until_closed(connection: &mut TcpStream) -> Option<Vec<u8>> {
    let mut answer = Vec::new();
    let reading = async {
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            match connection.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => answer.extend_from_slice(&buffer[..read]),
            }
        }
    };
    tokio::time::timeout(WELL_PAST, reading).await.ok()?;
    Some(answer)
}

/// Reads what the server answers `connection` once it has waited the
/// client timeout for more of a request: a 400 that says why.
async fn refused_as_stalled(connection: &mut TcpStream) {
    let answer = read_until_closed(connection)
        .await
        .expect("the server still waits for the rest");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("sent nothing more for 1 s"), "{answer}");
}

/// An image of `size` random bytes uploaded as the admin: its download's
/// path and its bytes.
async fn uploaded(app: &TestApp, size: usize) -> (String, Vec<u8>) {
    let bytes = random_bytes(size);
    let response = app
        .upload("admin", ADMIN_PASSWORD, "big.iso", bytes.clone())
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let id = &created["images"][0]["id"];
    (format!("/api/images/{id}/download"), bytes)
}

/// A connection that sends nothing, or a request's head that never ends,
/// is not waited for: the server closes the connection.
#[tokio::test]
async fn a_request_head_that_never_ends_is_not_waited_for() {
    let app = patient_for_a_second().await;
    for start in [
        &b""[..],
        b"PRI * HTTP/2.0\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: depot\r\nX-Slow: ",
    ] {
        let mut connection = TcpStream::connect(app.address).await.unwrap();
        connection.write_all(start).await.unwrap();
        let answer = read_until_closed(&mut connection)
            .await
            .expect("the server still waits for the head");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
}

/// HTTP/2 without TLS (a client with "prior knowledge") is not spoken: the
/// connection is closed at its preface, at once, with nothing held for it.
#[tokio::test]
async fn http2_without_tls_is_refused_at_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut connection = TcpStream::connect(app.address).await.unwrap();
    connection
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut connection)
        .await
        .expect("the connection is closed");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}

/// A request's head is held to 64 KiB (hyper alone takes 400 KiB): past
/// it the answer is 431 (414 for a URL hyper reads whole before it counts),
/// and the server goes on serving.
#[tokio::test]
async fn a_request_head_past_64_kib_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // Raw: an HTTP client will not send a URL past 64 KiB at all.
    let status_of = |head: String| async move {
        let mut connection = TcpStream::connect(app.address).await.unwrap();
        connection.write_all(head.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut connection).await.unwrap_or_default();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        answer.split(' ').nth(1).unwrap_or_default().to_owned()
    };
    let with_query = |len: usize| {
        format!(
            "GET /healthz?x={} HTTP/1.1\r\nHost: depot\r\nConnection: close\r\n\r\n",
            "a".repeat(len)
        )
    };
    let with_header = |len: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: depot\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
            "b".repeat(len)
        )
    };
    assert_eq!(status_of(with_query(48 << 10)).await, "200");
    let long_url = status_of(with_query(80 << 10)).await;
    assert!(["414", "431"].contains(&long_url.as_str()), "{long_url}");
    assert_eq!(status_of(with_header(48 << 10)).await, "200");
    assert_eq!(status_of(with_header(80 << 10)).await, "431");
    assert_eq!(status_of(with_query(1)).await, "200");
}

/// A download the client stops taking is cut off: after a pause of four
/// times the timeout (the cut comes within two: the client's side first
/// acknowledges what was on its way) the client gets only what the sockets held, then the
/// end of the connection; the server answers others meanwhile and after.
#[tokio::test]
async fn a_download_the_client_stops_taking_is_cut_off() {
    let app = patient_for_a_second().await;
    let (path, bytes) = uploaded(&app, 48 << 20).await;
    let mut connection = TcpStream::connect(app.address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: depot\r\n{}Connection: close\r\n\r\n",
        admin_authorization()
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);

    let answer = read_until_closed(&mut connection)
        .await
        .expect("the connection is closed");
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(
        answer.len() < bytes.len(),
        "{} bytes received: the whole download",
        answer.len()
    );
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

/// A download taken slowly, 2 MiB at a time with pauses shorter than the
/// timeout, arrives whole though it takes more than twice the timeout. (The
/// kernel tells the server it may write again only once a good part of the
/// socket's buffer is free, megabytes on loopback: a client taking a few
/// KiB a second from such a buffer looks stalled, to nginx too.)
#[tokio::test]
async fn a_slow_download_that_keeps_moving_arrives_whole() {
    let app = patient_for_a_second().await;
    let (path, bytes) = uploaded(&app, 32 << 20).await;
    let mut response = reqwest::Client::new()
        .get(app.url(&path))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut since_pause = 0;
    let started = std::time::Instant::now();
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
        since_pause += chunk.len();
        if since_pause >= 2 << 20 {
            since_pause = 0;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    assert!(started.elapsed() > Duration::from_secs(2));
    assert!(
        received == bytes,
        "{} of {} bytes",
        received.len(),
        bytes.len()
    );
}

/// A connection whose receive buffer is small (128 KiB), that has asked
/// for the download at `path` as the admin.
async fn downloading_through_a_small_buffer(app: &TestApp, path: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(128 << 10).unwrap();
    let mut connection = socket.connect(app.address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: depot\r\n{}Connection: close\r\n\r\n",
        admin_authorization()
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    connection
}

/// A download taken a little at a time through a small receive buffer (64
/// KiB every 100 ms): the server's socket stays too full to be written for
/// longer than the timeout at a time, but the client acknowledges bytes all
/// along, so it is still taking them, and the download arrives whole.
#[tokio::test]
async fn a_download_taken_a_little_at_a_time_arrives_whole() {
    let app = patient_for_a_second().await;
    let (path, bytes) = uploaded(&app, 4 << 20).await;
    let mut connection = downloading_through_a_small_buffer(&app, &path).await;
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buffer = vec![0u8; 64 << 10];
    let reading = async {
        while let Ok(read @ 1..) = connection.read(&mut buffer).await {
            answer.extend_from_slice(&buffer[..read]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), reading)
        .await
        .expect("the download ends");
    let body = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    println!("{} bytes in {:?}", answer.len() - body, started.elapsed());
    assert!(
        answer[body..] == bytes,
        "{} of {} bytes",
        answer.len() - body,
        bytes.len()
    );
}

/// The head and the start of an upload form posted to `path` whose file is
/// `size` bytes long (its end, counted in its length, is never sent).
fn upload_form(path: &str, size: usize) -> Vec<u8> {
    let boundary = "depot-stalled-upload";
    let start = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"stalled.iso\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let end = format!("\r\n--{boundary}--\r\n");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: depot\r\n{}Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        admin_authorization(),
        start.len() + size + end.len(),
    );
    [head, start].concat().into_bytes()
}

/// An upload whose client stops sending, through any route that takes
/// files (the upload form, the Store page's form, a WebDAV `PUT`), fails
/// with a 400 that says why once the server has waited the timeout for
/// more, and leaves nothing: no image, no file in the store, no staged
/// file, no blob.
#[tokio::test]
async fn an_upload_the_client_stops_sending_fails_and_leaves_nothing() {
    let app = patient_for_a_second().await;
    let size = 8 << 20;
    let put = format!(
        "PUT /store/stalled.iso HTTP/1.1\r\nHost: depot\r\n{}Content-Length: {size}\r\nConnection: close\r\n\r\n",
        admin_authorization()
    );
    for start in [
        upload_form("/api/upload", size),
        upload_form("/api/store/upload", size),
        put.into_bytes(),
    ] {
        let mut connection = TcpStream::connect(app.address).await.unwrap();
        connection.write_all(&start).await.unwrap();
        connection.write_all(&random_bytes(1 << 20)).await.unwrap();
        refused_as_stalled(&mut connection).await;
    }
    assert_eq!(images_listed(&app).await, 0);
    let admin = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    assert!(app.store_files(admin.id).await.is_empty());
    for area in [Area::Staging, Area::Uploads, Area::Blobs] {
        assert!(app.stored(area).await.is_empty(), "{area:?}");
    }
}

/// A form for one of the UI's server functions whose client stops sending
/// fails with the 400 that says why, as an upload's does, and one longer
/// than a server function takes with 413, neither as the server's own
/// failure (500).
#[tokio::test]
async fn a_server_function_form_cut_off_or_too_long_is_refused_as_such() {
    let app = patient_for_a_second().await;
    let mut connection = TcpStream::connect(app.address).await.unwrap();
    let head = "POST /api/ui/login HTTP/1.1\r\nHost: depot\r\n\
        Content-Type: application/x-www-form-urlencoded\r\n\
        Content-Length: 100\r\nConnection: close\r\n\r\nusername=admin";
    connection.write_all(head.as_bytes()).await.unwrap();
    refused_as_stalled(&mut connection).await;

    // One longer than a server function takes: 413, not the server's failure.
    let mut connection = TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "POST /api/ui/login HTTP/1.1\r\nHost: depot\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\nusername=",
        3 << 20
    );
    connection.write_all(head.as_bytes()).await.unwrap();
    connection.write_all(&[b'a'; (2 << 20) + 1]).await.unwrap();
    let answer = read_until_closed(&mut connection).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// A file the Store page's form sends past the quota, its client then
/// stopping: the answer is the quota's refusal, which came first, not the
/// stall's 400.
#[tokio::test]
async fn a_refusal_that_came_first_is_the_answer_to_a_stalled_form() {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| {
        args.client_timeout_secs = 1;
        args.user_quota_bytes = Some(1 << 20);
    })
    .await;
    let mut connection = TcpStream::connect(app.address).await.unwrap();
    connection
        .write_all(&upload_form("/api/store/upload", 8 << 20))
        .await
        .unwrap();
    // The form's parser keeps back an end that may begin its boundary (a
    // carriage return, one run in 256): with no CR near the end, the last
    // byte, the one past the quota, reaches the store.
    let mut bytes = random_bytes((1 << 20) + 1);
    let end = bytes.len() - 64;
    bytes[end..]
        .iter_mut()
        .filter(|b| **b == b'\r')
        .for_each(|b| *b = b'.');
    connection.write_all(&bytes).await.unwrap();
    let answer = read_until_closed(&mut connection).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("does not fit in your store"), "{answer}");
    let admin = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    assert!(app.store_files(admin.id).await.is_empty());
}

/// At shutdown a request in flight gets the client timeout to finish, not
/// as long as a slow client that keeps moving likes.
#[tokio::test]
async fn shutdown_waits_for_requests_in_flight_only_so_long() {
    let mut app = patient_for_a_second().await;
    let (path, _) = uploaded(&app, 48 << 20).await;
    let mut connection = downloading_through_a_small_buffer(&app, &path).await;
    // 640 KiB/s at most: more than a minute for the whole download.
    let reading = tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 << 10];
        let mut received = 0;
        while let Ok(read @ 1..) = connection.read(&mut buffer).await {
            received += read;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        received
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(WELL_PAST, app.shut_down())
        .await
        .expect("the server stopped");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let received = reading.await.unwrap();
    assert!(received < 48 << 20, "{received} bytes: the whole download");
}

/// An upload sent slowly, with pauses shorter than the timeout, is stored
/// whole though it takes several times the timeout.
#[tokio::test]
async fn a_slow_upload_that_keeps_moving_is_stored() {
    let app = patient_for_a_second().await;
    let bytes = random_bytes(1 << 20);
    let pieces: Vec<Vec<u8>> = bytes.chunks(1 << 17).map(<[u8]>::to_vec).collect();
    let slowly = futures_util::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok::<_, std::io::Error>(piece)
    });
    let part =
        reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(slowly)).file_name("slow.iso");
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .post(app.url("/api/upload"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(started.elapsed() > Duration::from_secs(3));
    let created: Value = response.json().await.unwrap();
    let stored = app
        .download("admin", ADMIN_PASSWORD, &created["images"][0]["id"])
        .await;
    assert!(stored == bytes);
}

/// Past the connections the server serves at once, a new one waits to be
/// accepted (rather than take the files the server needs for its own work)
/// and is served as soon as one of the others ends.
#[tokio::test]
async fn past_the_connections_served_at_once_a_new_one_waits() {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| args.max_connections = Some(2)).await;
    let address = app.address;
    let mut first = TcpStream::connect(address).await.unwrap();
    let _second = TcpStream::connect(address).await.unwrap();
    // Each is taken in (and held, idle) before the next is asked for.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(address).await.unwrap();
    let request = "GET /healthz HTTP/1.1\r\nHost: depot\r\nConnection: close\r\n\r\n";
    third.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = [0u8; 256];
    let waited = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buffer)).await;
    assert!(waited.is_err(), "a third connection was served beside two");
    // One of the first two asks and ends: the third is served.
    first.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut first).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let answer = read_until_closed(&mut third).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

/// One address holds at most its cap of connections at once: past it a
/// new one is closed at once, whatever it asks, while another address is
/// served as usual and the first is again once one of its own ends. A
/// trusted proxy, whose connections carry many clients, has no such cap
/// (one slow client behind it held every place the proxy had).
#[tokio::test]
async fn one_address_holds_at_most_its_cap_of_connections() {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| {
        args.max_connections_per_address = 2;
        args.trusted_proxies = vec!["127.0.0.3/32".parse().unwrap()];
    })
    .await;
    let from = |address: [u8; 4]| {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::from((address, 0)))
            .unwrap();
        socket.connect(app.address)
    };
    let request = "GET /healthz HTTP/1.1\r\nHost: depot\r\nConnection: close\r\n\r\n";
    let served = |mut connection: TcpStream| async move {
        connection.write_all(request.as_bytes()).await.ok()?;
        read_until_closed(&mut connection).await
    };
    let mut first = from([127, 0, 0, 1]).await.unwrap();
    let _second = from([127, 0, 0, 1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = from([127, 0, 0, 1]).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), served(third))
        .await
        .expect("a connection past the cap is closed at once");
    assert!(
        !answer.unwrap_or_default().starts_with(b"HTTP/1.1 200"),
        "a third connection from one address was served"
    );
    let other = from([127, 0, 0, 2]).await.unwrap();
    let answer = served(other).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    // One of the first two asks and ends: the address may open another.
    first.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut first).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = from([127, 0, 0, 1]).await.unwrap();
    let answer = served(again).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    let _held = [
        from([127, 0, 0, 3]).await.unwrap(),
        from([127, 0, 0, 3]).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let through_the_proxy = from([127, 0, 0, 3]).await.unwrap();
    let answer = served(through_the_proxy).await.unwrap_or_default();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

/// A client receives at most its cap of downloads at once (2 here): a
/// caller not signed in by address, a user at each address. Past it a new
/// one is refused at once with 429 and `Retry-After`, the ones it holds go
/// on whole, another client is served as usual, and a download that ends,
/// taken whole or dropped, frees its place. (A few addresses holding
/// hundreds of downloads they barely read took every chunk downloads read
/// ahead, and everyone else's waited.)
#[tokio::test]
async fn a_client_receives_at_most_its_cap_of_downloads_at_once() {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| {
        args.max_downloads_per_client = 2;
    })
    .await;
    let bytes = random_bytes(32 << 20);
    let form = reqwest::multipart::Form::new().text("public", "true").part(
        "file",
        reqwest::multipart::Part::bytes(bytes.clone()).file_name("big.iso"),
    );
    let uploaded = reqwest::Client::new()
        .post(app.url("/api/upload"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let uploaded: Value = uploaded.json().await.unwrap();
    let path = format!("/api/images/{}/download", uploaded["images"][0]["id"]);
    let client_at = |address: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(address))
            .build()
            .unwrap()
    };
    let (one, two) = (client_at([127, 0, 0, 1]), client_at([127, 0, 0, 2]));
    let download = |client: &reqwest::Client| client.get(app.url(&path)).send();
    let as_admin = |client: &reqwest::Client| {
        client
            .get(app.url(&path))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
    };
    let first = download(&one).await.unwrap();
    let second = download(&one).await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = download(&one).await.unwrap();
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["retry-after"], "5");
    let third: Value = third.json().await.unwrap();
    let error = third["error"].as_str().unwrap();
    assert!(error.contains("downloads at once"), "{third}");
    // Another address, and a user at the same address, have their own; a
    // user has theirs at each address (a fleet of hosts signed in as one).
    let other = download(&two).await.unwrap();
    assert_eq!(other.status(), 200);
    let (admins, more_of_admins) = (as_admin(&one).await.unwrap(), as_admin(&one).await.unwrap());
    let statuses = (admins.status().as_u16(), more_of_admins.status().as_u16());
    assert_eq!(statuses, (200, 200));
    assert_eq!(as_admin(&one).await.unwrap().status(), 429);
    let admins_elsewhere = as_admin(&two).await.unwrap();
    assert_eq!(admins_elsewhere.status(), 200);
    assert!(other.bytes().await.unwrap() == bytes);
    drop((admins, more_of_admins, admins_elsewhere));
    // One taken whole, one dropped: both places are free again.
    assert!(second.bytes().await.unwrap() == bytes);
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (again, more) = loop {
        let (again, more) = (download(&one).await.unwrap(), download(&one).await.unwrap());
        if again.status() == 200 && more.status() == 200 {
            break (again, more);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the places stay taken"
        );
        drop((again, more));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(again.bytes().await.unwrap() == bytes);
    assert!(more.bytes().await.unwrap() == bytes);
}

/// One user's uploads take at most 8 of the server's upload places: with
/// 8 of theirs in progress (sent slowly), their next is refused at once
/// with 429, holding no connection while it waits, and another user's
/// upload is taken in as usual.
#[tokio::test]
async fn one_users_uploads_leave_the_others_room() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_user("bob", "bob-password").await;
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut connection = TcpStream::connect(app.address).await.unwrap();
        connection
            .write_all(&upload_form("/api/upload", 8 << 20))
            .await
            .unwrap();
        connection.write_all(&random_bytes(1 << 20)).await.unwrap();
        slow.push(connection);
    }
    // The ninth is sent once all eight are taken in (each holds its place
    // while its bytes stream into the store), not raced against them.
    let deadline = std::time::Instant::now() + WELL_PAST;
    while app.core.blobs().receiving() < 8 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of the eight slow uploads were taken in",
            app.core.blobs().receiving()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = app
        .upload("admin", ADMIN_PASSWORD, "ninth.iso", random_bytes(1 << 20))
        .await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body = refused.text().await.unwrap();
    assert!(body.contains("uploads in progress"), "{body}");
    let bobs = app
        .upload("bob", "bob-password", "bobs.iso", random_bytes(1 << 20))
        .await;
    assert_eq!(bobs.status(), 201);
    drop(slow);
}
