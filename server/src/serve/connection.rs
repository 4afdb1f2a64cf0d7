//! The server's TCP connections. Each writes what hyper hands it as a plain
//! socket does, except the bytes of a published blob's chunk mapped to be
//! sent (see [`crate::blob::local::file_range`]): those the kernel sends
//! from the file (`sendfile`), as nginx does, so that no page of a download
//! is faulted into the process nor copied to the socket.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::blob::local::{file_range, FileRange};
use crate::stall::Stall;

/// Bytes sent from files by the kernel since the process started.
static SENT_FROM_FILES: AtomicU64 = AtomicU64::new(0);

/// Bytes of response bodies the kernel sent straight from blobs' files.
pub fn bytes_sent_from_files() -> u64 {
    SENT_FROM_FILES.load(Ordering::Relaxed)
}

/// A listening socket whose connections are [`Connection`]s.
pub struct Listener(TcpListener);

impl Listener {
    pub async fn bind(address: SocketAddr) -> std::io::Result<Self> {
        TcpListener::bind(address).await.map(Self)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// The next connection, whose writes fail once the client has taken
    /// none of a response for `send_limit` (see [`Stall`]).
    pub(super) async fn accept(&mut self, send_limit: Duration) -> (Connection, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((stream, peer)) => return (Connection::new(stream, send_limit), peer),
                // The one connection failed before it was taken: the next.
                Err(error) if is_one_connections(&error) => {}
                // Out of file descriptors or the like: logged, and a pause
                // rather than a busy loop until it clears.
                Err(error) => {
                    tracing::error!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

fn is_one_connections(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}

/// The client's address, in each request's `ConnectInfo` (`super::serve`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// One client's connection.
pub struct Connection {
    stream: TcpStream,
    /// The client has taken none of what the server writes: how long.
    sending: Stall,
    /// What the client had acknowledged when a wait last reached the limit.
    acked_at_limit: Option<u64>,
}

impl Connection {
    fn new(stream: TcpStream, send_limit: Duration) -> Self {
        Self {
            stream,
            sending: Stall::new(send_limit),
            acked_at_limit: None,
        }
    }

    /// A write's outcome, and the time the client has made it wait: a write
    /// that waits [`Stall`]'s limit fails with `TimedOut`, which ends the
    /// connection and drops the response (a download's chunks read ahead),
    /// unless the client acknowledged bytes since a wait last reached the
    /// limit (or none has yet): it is still taking them, though slowly (the
    /// kernel says a socket may be written again only once a good part of
    /// its buffer is free, which a client taking a few KiB a second from
    /// megabytes buffered takes longer than the limit to free). A client
    /// that takes nothing is so cut off within twice the limit, and the
    /// many short waits of a fast download ask the kernel nothing.
    fn timed(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        if !written.is_pending() {
            self.sending.moved();
            return written;
        }
        loop {
            ready!(self.sending.poll_too_long(cx));
            let acked = bytes_acked(&self.stream);
            if self.acked_at_limit.replace(acked) == Some(acked) {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client took nothing of the response",
                )));
            }
            // Still taking them: a new wait, from now.
            self.sending.moved();
        }
    }

    /// Has the kernel send `len` bytes of `range`'s file from its offset
    /// once the socket can take them; as many as it took.
    fn poll_send_file(
        &self,
        cx: &mut Context<'_>,
        range: &FileRange,
        len: usize,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                let mut offset = range.offset;
                Ok(rustix::fs::sendfile(
                    &self.stream,
                    &*range.file,
                    Some(&mut offset),
                    len,
                )?)
            });
            match sent {
                Ok(sent) => {
                    SENT_FROM_FILES.fetch_add(sent as u64, Ordering::Relaxed);
                    // 0: the file ended before the range (it was cut short),
                    // which hyper takes for a failed write, as it should.
                    return Poll::Ready(Ok(sent));
                }
                // The socket's buffer filled since it was ready: wait again.
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

/// How many bytes of what the server sent the client has acknowledged
/// (`TCP_INFO`, Linux 4.1 on); 0 if the kernel does not tell, which makes
/// every client that makes the server wait twice look stalled.
fn bytes_acked(stream: &TcpStream) -> u64 {
    use std::os::fd::AsRawFd;
    // SAFETY: `tcp_info` is plain integers, for which zero is a value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `length` bytes into `info`, which
    // has that many, and sets `length` to how many it wrote.
    let answer = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut length,
        )
    };
    // A kernel that wrote less than the field (before 4.1) did not set it.
    if answer != 0 || (length as usize) < std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + 8
    {
        return 0;
    }
    info.tcpi_bytes_acked
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = match file_range(buf) {
            Some(range) => self.poll_send_file(cx, &range, buf.len()),
            None => Pin::new(&mut self.stream).poll_write(cx, buf),
        };
        self.timed(cx, written)
    }

    /// The slices before the first one from a file, in one write; or, if
    /// the first is from a file, that one sent from it. Either way a write
    /// may take fewer bytes than offered, and hyper offers the rest again.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let bufs = match bufs.iter().position(|buf| !buf.is_empty()) {
            Some(first) => &bufs[first..],
            None => return Poll::Ready(Ok(0)),
        };
        if let Some(range) = file_range(&bufs[0]) {
            let written = self.poll_send_file(cx, &range, bufs[0].len());
            return self.timed(cx, written);
        }
        // The first is not a file's (above): the plain run ends before the
        // first that is.
        let plain = bufs[1..]
            .iter()
            .position(|buf| file_range(buf).is_some())
            .map_or(bufs.len(), |index| index + 1);
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, &bufs[..plain]);
        self.timed(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;

    use axum::body::Body;
    use axum::extract::{Path, State};
    use axum::routing::get;
    use bytes::Bytes;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::blob::local::{LocalBlobs, MAPPING_TESTS};
    use crate::blob::{Backend, BlobKey, LongCopy, Publication};

    const SHA256: &str = "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e";

    /// A local store holding `bytes` as a published blob.
    async fn published(bytes: &[u8]) -> (tempfile::TempDir, LocalBlobs, BlobKey) {
        let folder = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::open(folder.path()).await.unwrap();
        let mut staging = blobs.stage().await.unwrap();
        staging.write(Bytes::copy_from_slice(bytes)).await.unwrap();
        let published = staging
            .finish()
            .await
            .unwrap()
            .publish(SHA256, None, LongCopy::Make)
            .await
            .unwrap();
        let Publication::Published(key) = published else {
            panic!("a rename given back unpublished");
        };
        (folder, blobs, key)
    }

    /// The first chunk a download of `bytes`, stored, from `start` would
    /// send: mapped.
    async fn first_chunk_sent(bytes: &[u8], start: u64) -> (tempfile::TempDir, BlobKey, Bytes) {
        let (folder, blobs, key) = published(bytes).await;
        let blob = blobs.open(&key).await.unwrap();
        let count = bytes.len() as u64 - start;
        let mut chunks = blob.send(start, count).await.unwrap();
        let chunk = chunks.next().await.unwrap().unwrap();
        assert!(file_range(&chunk).is_some(), "the chunk is mapped");
        (folder, key, chunk)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|n| (n % 251) as u8).collect()
    }

    /// Both ends of a loopback TCP connection: the server's, and the client's.
    async fn connected() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let accepted = accepted.unwrap().0;
        (
            Connection::new(accepted, Duration::from_secs(60)),
            client.unwrap(),
        )
    }

    /// A download through the server's connections: the client gets the
    /// file's bytes, whole or a range across chunks, after the head, and the
    /// kernel sent every byte of the body from the file.
    #[tokio::test]
    async fn a_published_blob_is_sent_from_its_file() {
        let _alone = MAPPING_TESTS.lock().await;
        let bytes = pattern(5 * 1024 * 1024 + 123);
        let (_folder, blobs, key) = published(&bytes).await;
        let router = axum::Router::new()
            .route(
                "/{start}/{count}",
                get(
                    |State((blobs, key)): State<(LocalBlobs, BlobKey)>,
                     Path((start, count)): Path<(u64, u64)>| async move {
                        let blob = blobs.open(&key).await.unwrap();
                        let body = Body::from_stream(blob.send(start, count).await.unwrap());
                        ([("content-length", count.to_string())], body)
                    },
                ),
            )
            .with_state((blobs, key));
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let patience = Duration::from_secs(60);
        let limits = crate::serve::ClientLimits {
            timeout: patience,
            connections: 64,
            per_address: None,
            proxies: Vec::new().into(),
        };
        tokio::spawn(crate::serve::serve(
            listener,
            router,
            std::future::pending(),
            limits,
        ));

        for (start, count) in [(0, bytes.len()), (2 * 1024 * 1024 - 5, 3 * 1024 * 1024)] {
            let before = bytes_sent_from_files();
            let mut client = TcpStream::connect(address).await.unwrap();
            let request = format!(
                "GET /{start}/{count} HTTP/1.1\r\nHost: depot\r\nConnection: close\r\n\r\n"
            );
            client.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"));
            assert!(
                answer[head_end..] == bytes[start..start + count],
                "{start}+{count}"
            );
            assert!(bytes_sent_from_files() - before >= count as u64);
        }
    }

    /// Plain slices and a file's are written in the order given, however
    /// the writes split them, as hyper writes a head, a body and more; the
    /// file's are sent from the file.
    #[tokio::test]
    async fn plain_and_file_slices_go_out_in_order() {
        let _alone = MAPPING_TESTS.lock().await;
        let bytes = pattern(3 * 1024 * 1024);
        let (_folder, _key, chunk) = first_chunk_sent(&bytes, 100).await;

        let (mut server, mut client) = connected().await;
        let reading = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        let before = bytes_sent_from_files();
        let (head, tail) = (b"head\r\n".as_slice(), b"tail".as_slice());
        let mut slices = [IoSlice::new(head), IoSlice::new(&chunk), IoSlice::new(tail)];
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            let written = server.write_vectored(slices).await.unwrap();
            assert!(written > 0);
            IoSlice::advance_slices(&mut slices, written);
        }
        drop(server);
        let expected = [head, &bytes[100..100 + chunk.len()], tail].concat();
        assert!(reading.await.unwrap() == expected);
        assert!(bytes_sent_from_files() - before >= chunk.len() as u64);
    }

    /// A file cut short after its chunk was mapped: the write fails once the
    /// file's bytes run out, so the client sees a broken download, never a
    /// short one that looks whole, and nothing reads the missing pages.
    #[tokio::test]
    async fn a_file_cut_short_under_a_mapped_chunk_fails_the_write() {
        let _alone = MAPPING_TESTS.lock().await;
        let bytes = pattern(2 * 1024 * 1024);
        let (folder, key, chunk) = first_chunk_sent(&bytes, 0).await;
        let path = folder
            .path()
            .join("blobs")
            .join(key.folder())
            .join(key.file_name());
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(1000)
            .unwrap();

        let (mut server, mut client) = connected().await;
        let error = server.write_all(&chunk).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::WriteZero);
        drop(server);
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert!(received == bytes[..1000]);
    }
}
