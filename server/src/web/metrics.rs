//! `/metrics` in Prometheus's text format, for an operator's scraper, and
//! the layer that counts every request for it: requests by route template,
//! method and status with a latency histogram (to the response's head), the
//! bytes of request and response bodies, and, read at each scrape, the
//! bodies streaming into the blob store, the bytes of downloads the kernel
//! sent from blobs' files, the job queue by kind and state
//! (failed jobs included), the bytes the store holds, how catalog pages
//! found their totals and how often personal stores were walked.
//!
//! Routes are labelled by their template (`/api/images/{id}/download`),
//! never by the path asked for, and methods outside the standard ones are
//! `OTHER`, so that no client can grow the number of series. The figures
//! are an administrator's: Basic credentials, a token or a session of one.

use std::time::Instant;

use app::model::Viewer;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http_body_util::BodyExt;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::ApiError;
use crate::state::AppState;

/// Latency buckets, in seconds: a page of the catalog to a large upload.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0,
];

/// One server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    bytes_in: IntCounter,
    bytes_out: IntCounter,
    sent_from_files: IntCounter,
    receiving: IntGauge,
    jobs: IntGaugeVec,
    stored: IntGauge,
    counts: IntCounterVec,
    pages: IntCounterVec,
    store_walks: IntCounter,
    /// Held while the store's counters are carried over, so that two
    /// scrapes at once do not both add what changed.
    carrying: std::sync::Mutex<()>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("depot".into()), None)
            .expect("the prefix is a valid metric name");
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to the response's head",
            )
            .buckets(BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("valid metric");
        let bytes_in = IntCounter::new("http_request_body_bytes_total", "Bytes of request bodies")
            .expect("valid metric");
        let bytes_out =
            IntCounter::new("http_response_body_bytes_total", "Bytes of response bodies")
                .expect("valid metric");
        let sent_from_files = IntCounter::new(
            "http_response_body_bytes_sent_from_files_total",
            "Bytes of response bodies the kernel sent straight from blobs' files (sendfile), \
             never copied through the server's memory",
        )
        .expect("valid metric");
        let receiving = IntGauge::new(
            "uploads_in_flight",
            "Bodies streaming into the blob store on this server (uploads, resumable chunks)",
        )
        .expect("valid metric");
        let jobs = IntGaugeVec::new(
            Opts::new("jobs", "Jobs in the queue, by kind and state"),
            &["kind", "state"],
        )
        .expect("valid metric");
        let stored = IntGauge::new(
            "blob_store_bytes",
            "Bytes of the blobs the records and uploads in progress hold, each once",
        )
        .expect("valid metric");
        let counts = IntCounterVec::new(
            Opts::new(
                "catalog_counts_total",
                "Totals of catalog pages, by how they were found: `kept` from \
                 an earlier count the page showed still holds, `counted` by the database",
            ),
            &["how"],
        )
        .expect("valid metric");
        let pages = IntCounterVec::new(
            Opts::new(
                "catalog_pages_total",
                "Catalog pages, by how they were found: `kept` from an earlier \
                 read the catalog's version showed still holds, `read` from the database",
            ),
            &["how"],
        )
        .expect("valid metric");
        let store_walks = IntCounter::new(
            "store_walks_total",
            "Walks of personal stores to count their files and folders (before a refusal \
             past the cap on entries, or once a count is a minute old)",
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(bytes_in.clone()),
            Box::new(bytes_out.clone()),
            Box::new(sent_from_files.clone()),
            Box::new(receiving.clone()),
            Box::new(jobs.clone()),
            Box::new(stored.clone()),
            Box::new(counts.clone()),
            Box::new(pages.clone()),
            Box::new(store_walks.clone()),
        ] {
            registry
                .register(collector)
                .expect("each metric is registered once");
        }
        Self {
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            sent_from_files,
            receiving,
            jobs,
            stored,
            counts,
            pages,
            store_walks,
            carrying: std::sync::Mutex::new(()),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A method as a label: the standard ones by name, any other as `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => match method.as_str() {
            "PROPFIND" => "PROPFIND",
            "MKCOL" => "MKCOL",
            "COPY" => "COPY",
            "MOVE" => "MOVE",
            _ => "OTHER",
        },
    }
}

/// Counts a request and its answer.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let metrics = state.metrics.clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let started = Instant::now();

    let (parts, body) = request.into_parts();
    let counted_in = metrics.bytes_in.clone();
    let body = Body::new(body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            counted_in.inc_by(data.len() as u64);
        }
        frame
    }));
    let response = next.run(Request::from_parts(parts, body)).await;

    metrics
        .latency
        .with_label_values(&[&route, method])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&route, method, response.status().as_str()])
        .inc();
    let counted_out = metrics.bytes_out.clone();
    let (parts, body) = response.into_parts();
    let body = Body::new(body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            counted_out.inc_by(data.len() as u64);
        }
        frame
    }));
    Response::from_parts(parts, body)
}

/// `GET /metrics`: everything, for an administrator.
pub async fn render(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Response, ApiError> {
    viewer.require_admin("read the metrics")?;
    let figures = state.core.figures().await?;
    let metrics = &state.metrics;
    metrics.receiving.set(figures.receiving as i64);
    metrics.stored.set(figures.stored_bytes as i64);
    // Counters kept by the store, carried over at each scrape.
    let carrying = metrics.carrying.lock().unwrap_or_else(|e| e.into_inner());
    let kept = figures.kept;
    for (metric, how, figure) in [
        (&metrics.counts, "kept", kept.counts.served),
        (&metrics.counts, "counted", kept.counts.read),
        (&metrics.pages, "kept", kept.pages.served),
        (&metrics.pages, "read", kept.pages.read),
    ] {
        let counter = metric.with_label_values(&[how]);
        counter.inc_by(figure.saturating_sub(counter.get()));
    }
    let walks = &metrics.store_walks;
    walks.inc_by(figures.store_walks.saturating_sub(walks.get()));
    let sent = &metrics.sent_from_files;
    sent.inc_by(crate::serve::connection::bytes_sent_from_files().saturating_sub(sent.get()));
    drop(carrying);
    metrics.jobs.reset();
    for count in &figures.jobs {
        metrics
            .jobs
            .with_label_values(&[&count.kind, &count.state])
            .set(count.count);
    }
    let mut text = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(error) = encoder.encode(&metrics.registry.gather(), &mut text) {
        tracing::error!(%error, "cannot encode the metrics");
        return Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, encoder.format_type().to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_known_ones_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").unwrap()),
            "PROPFIND"
        );
        assert_eq!(
            method_label(&Method::from_bytes(b"XYZZY").unwrap()),
            "OTHER"
        );
    }
}
