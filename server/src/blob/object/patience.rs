//! How long the object store may leave a request waiting.
//!
//! object_store 0.12 bounds either a whole request, which a long download
//! outlasts, or nothing. A store that takes a request and never answers (a
//! stuck node, a proxy holding the connection) would then hold for ever
//! whatever the request holds: an upload's place and buffers, a blob's lock
//! with its database connection, a job, a WebDAV copy. So every request
//! goes through [`Patient`]: its answer's head must come within the limit
//! (plus the time its own body takes to send at [`SLOWEST_SEND`]; ten limits
//! for a copy or a completion, which the store may answer only once done),
//! and then each piece of the answer's body within the limit of the last,
//! counted only while the body is being read, so a download whose client
//! reads slowly is never cut. A request cut off fails as a timeout, which
//! object_store retries when that is safe (reads), as it does its own.

use std::time::Duration;

use async_trait::async_trait;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse,
    HttpResponseBody, HttpService, ReqwestConnector,
};
use object_store::ClientOptions;

use crate::stall::StallingBody;

/// The rate below which sending a request's body (a part of an upload)
/// counts as a store that does not answer: 64 KiB/s gives an 8 MiB part two
/// minutes more than the limit, so that many uploads sharing a link to the
/// store slow down rather than fail.
const SLOWEST_SEND: u64 = 64 << 10;

/// How many limits a store may take to answer a copy or a completion.
const STORED_WORK: u32 = 10;

/// Connects as object_store's own reqwest connector does, every request
/// held to `limit`.
#[derive(Debug)]
pub(crate) struct Patient {
    pub limit: Duration,
}

impl HttpConnector for Patient {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Timed {
            inner,
            limit: self.limit,
        }))
    }
}

#[derive(Debug)]
struct Timed {
    inner: HttpClient,
    limit: Duration,
}

#[async_trait]
impl HttpService for Timed {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let sending = request.body().content_length() as u64 / SLOWEST_SEND;
        // A copy's or a completion's answer may also come slowly after its
        // head (AWS sends the head at once, then the result when done).
        let (head, silence) = if works_on_stored_bytes(&request) {
            (self.limit * STORED_WORK, self.limit * STORED_WORK)
        } else {
            (self.limit + Duration::from_secs(sending), self.limit)
        };
        let response = tokio::time::timeout(head, self.inner.execute(request))
            .await
            .map_err(|_| silent(head))??;
        let (parts, body) = response.into_parts();
        let body = HttpResponseBody::new(StallingBody::new(body, silence, silent));
        Ok(HttpResponse::from_parts(parts, body))
    }
}

/// Whether the store answers `request` only once it has worked through
/// bytes it holds (a copy, a multipart upload's completion), which may take
/// a while for many GiB; AWS sends its answer's head at once, others may not.
fn works_on_stored_bytes(request: &HttpRequest) -> bool {
    let copies = request.headers().contains_key("x-amz-copy-source");
    let completes = request.method() == http::Method::POST
        && request
            .uri()
            .query()
            .is_some_and(|query| query.contains("uploadId="));
    copies || completes
}

fn silent(waited: Duration) -> HttpError {
    HttpError::new(
        HttpErrorKind::Timeout,
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the object store sent nothing for {} s", waited.as_secs()),
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures_util::StreamExt;
    use object_store::client::HttpRequestBody;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    const LIMIT: Duration = Duration::from_millis(1500);

    /// A store at a local address that answers each request with `answer`.
    async fn store<F, A>(answer: F) -> String
    where
        F: Fn(TcpStream) -> A + Send + 'static,
        A: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = [0u8; 4096];
                let _ = socket.read(&mut head).await;
                tokio::spawn(answer(socket));
            }
        });
        format!("http://{address}/bucket/key")
    }

    async fn get(url: &str) -> Result<HttpResponse, HttpError> {
        let options = ClientOptions::new().with_allow_http(true);
        let client = Patient { limit: LIMIT }.connect(&options).unwrap();
        let request = http::Request::get(url)
            .body(HttpRequestBody::empty())
            .unwrap();
        client.execute(request).await
    }

    /// The head of an answer of `length` bytes.
    fn head(length: usize) -> String {
        format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n")
    }

    /// A store that takes a request and says nothing fails it once the
    /// limit has passed, as a timeout (which object_store retries when safe).
    #[tokio::test]
    async fn a_store_that_never_answers_fails_the_request() {
        let url = store(|socket| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(socket);
        })
        .await;
        let started = Instant::now();
        let error = get(&url).await.unwrap_err();
        assert_eq!(error.kind(), HttpErrorKind::Timeout, "{error}");
        assert!(started.elapsed() >= LIMIT);
        assert!(started.elapsed() < LIMIT * 5, "{:?}", started.elapsed());
    }

    /// An answer that stops half-way fails while it is read, not hangs.
    #[tokio::test]
    async fn an_answer_that_stops_fails_its_reader() {
        let url = store(|mut socket| async move {
            let _ = socket.write_all(head(100).as_bytes()).await;
            let _ = socket.write_all(&[7; 10]).await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
        .await;
        let mut body = get(&url).await.unwrap().into_body().bytes_stream();
        let started = Instant::now();
        let mut received = 0;
        let error = loop {
            match body.next().await {
                Some(Ok(piece)) => received += piece.len(),
                Some(Err(error)) => break error,
                None => panic!("the answer ended without its bytes"),
            }
        };
        assert_eq!(received, 10);
        assert_eq!(error.kind(), HttpErrorKind::Timeout, "{error}");
        assert!(started.elapsed() < LIMIT * 5, "{:?}", started.elapsed());
    }

    /// A store that is slow but keeps sending, and a reader that stops
    /// reading for a while (a download's slow client), are not cut off:
    /// only the store's silence while its answer is read counts.
    #[tokio::test]
    async fn slow_answers_and_slow_readers_are_not_cut_off() {
        let url = store(|mut socket| async move {
            let _ = socket.write_all(head(40).as_bytes()).await;
            let _ = socket.write_all(&[7; 10]).await;
            // Silent while the reader is away, and a while after it is back.
            tokio::time::sleep(LIMIT * 5 / 2).await;
            for _ in 0..3 {
                let _ = socket.write_all(&[7; 10]).await;
                tokio::time::sleep(LIMIT / 2).await;
            }
        })
        .await;
        let response = get(&url).await.unwrap();
        let mut body = response.into_body().bytes_stream();
        let mut received = body.next().await.unwrap().unwrap().len();
        tokio::time::sleep(LIMIT * 2).await;
        while let Some(piece) = body.next().await {
            received += piece.unwrap().len();
        }
        assert_eq!(received, 40);
    }
}
