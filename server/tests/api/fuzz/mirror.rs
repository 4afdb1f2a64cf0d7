//! A server in front of two Depot servers, one on SQLite and one on
//! PostgreSQL, that sends each request it receives to both, so that one
//! schemathesis run fuzzes both databases with the same cases: generating
//! them is nearly all of a run's work (schemathesis's own Python), and two
//! runs with one seed generated the same cases twice.
//!
//! Each request is answered with one of the two answers, which schemathesis
//! checks in full. Both are checked here first: a server error from either
//! is the one answered. Otherwise the SQLite server's answer is, unless the
//! PostgreSQL server's differs from it in status, content type or the shape
//! of its JSON (its members and their types, as far down as both go): then
//! the PostgreSQL server's is, so that what differs is what gets checked.
//! Answers that agree on those are rendered by the same code from the same
//! kinds of values, and what schemathesis checks of one holds of the other.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    differed: AtomicUsize,
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
            differed: AtomicUsize::new(0),
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

    /// How many requests the two servers answered differently.
    pub fn differed(&self) -> usize {
        self.targets.differed.load(Ordering::Relaxed)
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

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
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
    for name in [
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
    if sqlite.status.is_server_error() {
        return sqlite.into_response();
    }
    let agree = sqlite.status == postgres.status
        && sqlite.content_type() == postgres.content_type()
        && match (sqlite.json(), postgres.json()) {
            (Some(first), Some(second)) => same_shape(&first, &second),
            (None, None) => true,
            _ => false,
        };
    if agree {
        sqlite.into_response()
    } else {
        targets.differed.fetch_add(1, Ordering::Relaxed);
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

/// Whether two JSON values have the same members, of the same types, as far
/// down as both go (arrays compared item by item, as far as the shorter).
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
        (Value::Array(first), Value::Array(second)) => first
            .iter()
            .zip(second)
            .all(|(value, other)| same_shape(value, other)),
        (Value::Number(first), Value::Number(second)) => first.is_f64() == second.is_f64(),
        (first, second) => std::mem::discriminant(first) == std::mem::discriminant(second),
    }
}

#[test]
fn shapes_compare_members_and_types_not_values() {
    use serde_json::json;
    assert!(same_shape(
        &json!({"id": 1, "name": "a", "tags": ["x"]}),
        &json!({"name": "b", "id": 7, "tags": ["y", "z"]})
    ));
    assert!(!same_shape(&json!({"id": 1}), &json!({"id": "1"})));
    assert!(!same_shape(
        &json!({"id": 1}),
        &json!({"id": 1, "extra": null})
    ));
    assert!(!same_shape(&json!({"size": null}), &json!({"size": 3})));
    assert!(!same_shape(&json!([{"a": 1}]), &json!([{"a": 1.5}])));
}
