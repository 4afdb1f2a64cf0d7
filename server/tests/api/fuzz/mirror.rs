//! A server in front of two Depot servers, one on SQLite and one on
//! PostgreSQL, that sends each request it receives to both, so that one
//! schemathesis run fuzzes both databases with the same cases: generating
//! them is nearly all of a run's work (schemathesis's own Python), and two
//! runs with one seed generated the same cases twice.
//!
//! Each request is answered with one of the two answers, which schemathesis
//! checks in full. The other is compared with it here, in status, content
//! type and the shape of its JSON (its members and their types, arrays item
//! by item). A server error from either is what is answered; otherwise the
//! SQLite server's answer, unless the PostgreSQL server's differs from it:
//! then that one, so that what differs is checked. Values are compared by
//! neither (an enumeration's or a pattern's), and a differing SQLite answer
//! is checked here only for a server error. Some answers differ for want of
//! a clock both share (a sync job finished on one server and not yet on the
//! other), so differences are listed, and a run fails only when they are
//! more than a tenth of its requests: the two servers' states had drifted
//! apart, and the run no longer checked PostgreSQL with SQLite's cases.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

/// The two servers, and what differs in the second one's requests.
struct Targets {
    client: reqwest::Client,
    sqlite: String,
    postgres: String,
    /// Header values that stand for the same credential on each server
    /// (an API key is issued by each): (the first's, the second's).
    postgres_credentials: Vec<(HeaderName, HeaderValue, HeaderValue)>,
    /// Requests the PostgreSQL server answered otherwise than SQLite's.
    differences: Mutex<Vec<String>>,
    requests: AtomicUsize,
}

/// The mirror, serving until dropped.
pub struct Mirror {
    pub address: SocketAddr,
    targets: Arc<Targets>,
    task: tokio::task::JoinHandle<()>,
}

impl Mirror {
    /// Starts a mirror of `sqlite` and `postgres`. Where a header carries
    /// the first server's value of a credential in `credentials`, the
    /// second server gets its own value instead.
    pub async fn start(
        sqlite: &TestApp,
        postgres: &TestApp,
        credentials: Vec<(&str, String, String)>,
    ) -> Self {
        let targets = Arc::new(Targets {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            sqlite: sqlite.url(""),
            postgres: postgres.url(""),
            postgres_credentials: credentials
                .into_iter()
                .map(|(name, first, second)| {
                    (
                        HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        HeaderValue::from_str(&first).unwrap(),
                        HeaderValue::from_str(&second).unwrap(),
                    )
                })
                .collect(),
            differences: Mutex::default(),
            requests: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(targets.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            address,
            targets,
            task,
        }
    }

    /// The requests the two servers answered differently, and how.
    pub fn differences(&self) -> Vec<String> {
        self.targets.differences.lock().unwrap().clone()
    }

    /// How many requests were sent to both.
    pub fn requests(&self) -> usize {
        self.targets.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An answer read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn content_type(&self) -> Option<&HeaderValue> {
        self.headers.get(header::CONTENT_TYPE)
    }

    /// The body as JSON, if its content type says JSON: `Err` if it is not
    /// JSON after all.
    fn json(&self) -> Option<Result<Value, ()>> {
        let json = self
            .content_type()
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.contains("json"));
        json.then(|| serde_json::from_slice(&self.body).map_err(|_| ()))
    }

    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

async fn forward(State(targets): State<Arc<Targets>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut headers = parts.headers;
    // What belongs to the connection to this mirror, not to the request.
    // Host stays: both servers write links to where the request was sent.
    // Compression goes, so that the two bodies can be compared (this
    // client does not decompress).
    for name in [
        header::ACCEPT_ENCODING,
        header::CONTENT_LENGTH,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    let mut postgres_headers = headers.clone();
    for (name, first, second) in &targets.postgres_credentials {
        if postgres_headers.get(name) == Some(first) {
            postgres_headers.insert(name.clone(), second.clone());
        }
    }
    let send = |base: &str, headers: HeaderMap| {
        let request = targets
            .client
            .request(
                parts.method.clone(),
                format!("{}{path}", base.trim_end_matches('/')),
            )
            .headers(headers)
            .body(body.clone());
        let base = base.to_owned();
        async move {
            match read(request).await {
                Ok(answer) => answer,
                // A connection the server broke is its failure to answer.
                Err(error) => Answer {
                    status: StatusCode::BAD_GATEWAY,
                    headers: HeaderMap::new(),
                    body: Bytes::from(format!("{base} did not answer: {error}")),
                },
            }
        }
    };
    let (sqlite, postgres) = tokio::join!(
        send(&targets.sqlite, headers),
        send(&targets.postgres, postgres_headers)
    );
    targets.requests.fetch_add(1, Ordering::Relaxed);
    let agree = sqlite.status == postgres.status
        && sqlite.content_type() == postgres.content_type()
        && match (sqlite.json(), postgres.json()) {
            (Some(Ok(first)), Some(Ok(second))) => same_shape(&first, &second),
            // Not JSON (ViCE's XML, whose schemas schemathesis does not check).
            (None, None) => true,
            // JSON that is not: a HEAD's empty body.
            (Some(Err(())), Some(Err(()))) => sqlite.body == postgres.body,
            _ => false,
        };
    if !agree {
        targets.differences.lock().unwrap().push(format!(
            "{} {path}: SQLite {} {}, PostgreSQL {} {}",
            parts.method,
            sqlite.status,
            String::from_utf8_lossy(&sqlite.body),
            postgres.status,
            String::from_utf8_lossy(&postgres.body),
        ));
    }
    if agree || sqlite.status.is_server_error() {
        sqlite.into_response()
    } else {
        postgres.into_response()
    }
}

async fn read(request: reqwest::RequestBuilder) -> reqwest::Result<Answer> {
    let response = request.send().await?;
    let status = response.status();
    let mut headers = response.headers().clone();
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONNECTION);
    let body = response.bytes().await?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Whether two JSON values have the same members, of the same types, all
/// the way down (arrays of the same length, compared item by item).
fn same_shape(first: &Value, second: &Value) -> bool {
    match (first, second) {
        (Value::Object(first), Value::Object(second)) => {
            first.len() == second.len()
                && first.iter().all(|(name, value)| {
                    second
                        .get(name)
                        .is_some_and(|other| same_shape(value, other))
                })
        }
        (Value::Array(first), Value::Array(second)) => {
            first.len() == second.len()
                && first
                    .iter()
                    .zip(second)
                    .all(|(value, other)| same_shape(value, other))
        }
        (Value::Number(first), Value::Number(second)) => first.is_f64() == second.is_f64(),
        (first, second) => std::mem::discriminant(first) == std::mem::discriminant(second),
    }
}

#[test]
fn shapes_compare_members_and_types_not_values() {
    use serde_json::json;
    assert!(same_shape(
        &json!({"id": 1, "name": "a", "tags": ["x"]}),
        &json!({"name": "b", "id": 7, "tags": ["y"]})
    ));
    assert!(!same_shape(&json!({"id": 1}), &json!({"id": "1"})));
    assert!(!same_shape(
        &json!({"id": 1}),
        &json!({"id": 1, "extra": null})
    ));
    assert!(!same_shape(&json!({"size": null}), &json!({"size": 3})));
    assert!(!same_shape(&json!([{"a": 1}]), &json!([{"a": 1.5}])));
    assert!(!same_shape(&json!({"items": []}), &json!({"items": [1]})));
}
