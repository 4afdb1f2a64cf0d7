//! Hashing and inspecting bytes as they arrive: the one pass every ingest
//! makes, whether it stores the bytes as it goes ([`BlobStore::ingest`]) or
//! they are stored already ([`BlobStore::digest`], a resumable upload's
//! parts).
//!
//! [`BlobStore::ingest`]: super::BlobStore::ingest
//! [`BlobStore::digest`]: super::BlobStore::digest

use std::fmt;
use std::io;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::{Allowance, Digested, IngestError, Staging};

/// Chunks in flight between the request and the digest's thread.
const QUEUE_DEPTH: usize = 8;

/// The bytes of an upload as they arrive, as a [`std::io::Read`] for an
/// inspector running on a thread of its own. It sees every byte once, in
/// order, without a second pass over the file; an inspector that has seen
/// enough simply stops reading. Each chunk is hashed as it is received, on
/// this thread: the request's task only receives and writes the bytes.
pub struct UploadReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
    hasher: Sha256,
}

impl UploadReader {
    /// The next chunk, hashed; `None` at the end of the upload.
    fn next_chunk(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.blocking_recv()?;
        self.hasher.update(&chunk);
        Some(chunk)
    }

    /// Hashes what the inspector left unread, up to the end of the upload,
    /// and answers the digest.
    fn finish(mut self) -> [u8; 32] {
        while self.next_chunk().is_some() {}
        self.hasher.finalize().into()
    }
}

impl io::Read for UploadReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.next_chunk() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let take = buffer.len().min(self.current.len());
        buffer[..take].copy_from_slice(&self.current.split_to(take));
        Ok(take)
    }
}

/// Bytes hashed and shown to an inspector on a thread of their own as they
/// arrive, in one body or across many (a resumable upload's chunks). SHA-256
/// is most of an upload's CPU: on that thread it runs beside the socket's
/// reads and the disk's writes instead of after them.
pub struct Digesting<R> {
    size: u64,
    chunks: tokio::sync::mpsc::Sender<Bytes>,
    digest: tokio::task::JoinHandle<([u8; 32], R)>,
}

impl<R: Send + 'static> Digesting<R> {
    /// Starts hashing and `inspector` on a thread of their own, reading the
    /// bytes taken.
    pub fn start(inspector: impl FnOnce(&mut UploadReader) -> R + Send + 'static) -> Self {
        let (chunks, receiver) = tokio::sync::mpsc::channel::<Bytes>(QUEUE_DEPTH);
        let digest = tokio::task::spawn_blocking(move || {
            let mut reader = UploadReader {
                chunks: receiver,
                current: Bytes::new(),
                hasher: Sha256::new(),
            };
            let inspection = inspector(&mut reader);
            (reader.finish(), inspection)
        });
        Self {
            size: 0,
            chunks,
            digest,
        }
    }

    /// How many bytes were taken.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Takes the next bytes: hashed and shown to the inspector on their
    /// thread (waiting for it, if it is behind).
    pub async fn take(&mut self, bytes: &Bytes) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        // Refused only if the thread is gone (the inspector panicked):
        // `finish` then answers that error.
        let _ = self.chunks.send(bytes.clone()).await;
    }

    /// Ends the file: its digest and size, and the inspector's answer.
    pub async fn finish(self) -> io::Result<(Digested, R)> {
        drop(self.chunks);
        let (sha256, inspection) = self.digest.await.map_err(io::Error::other)?;
        Ok((
            Digested {
                sha256: hex::encode(sha256),
                size: self.size,
            },
            inspection,
        ))
    }
}

/// Takes `body` in, hashing it, showing it to `inspector` on a thread of
/// its own and writing it to `staging` if there is one; growing past what
/// `allowance` grants is refused.
pub(super) async fn pass<S, E, R>(
    mut body: S,
    allowance: &mut dyn Allowance,
    inspector: impl FnOnce(&mut UploadReader) -> R + Send + 'static,
    mut staging: Option<&mut (dyn Staging + '_)>,
) -> Result<(Digested, R), IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: fmt::Display,
    R: Send + 'static,
{
    let mut digesting = Digesting::start(inspector);
    let mut granted = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| IngestError::Body(error.to_string()))?;
        let size = digesting.size().saturating_add(chunk.len() as u64);
        if size > granted {
            granted = allowance.grow(size).await?;
        }
        digesting.take(&chunk).await;
        if let Some(staging) = staging.as_mut() {
            staging.write(chunk).await?;
        }
    }
    allowance.hold(digesting.size()).await?;
    Ok(digesting.finish().await?)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// More chunks than the queue holds, of uneven sizes.
    fn pieces() -> Vec<Bytes> {
        (0..40u8)
            .map(|n| Bytes::from(vec![n; 1 + usize::from(n) * 997]))
            .collect()
    }

    #[tokio::test]
    async fn the_digest_covers_what_the_inspector_left_unread() {
        let pieces = pieces();
        let whole: Vec<u8> = pieces.iter().flatten().copied().collect();
        for wanted in [0usize, 5, 3_000, whole.len(), whole.len() + 10] {
            let mut digesting = Digesting::start(move |reader: &mut UploadReader| {
                let mut seen = Vec::new();
                reader.take(wanted as u64).read_to_end(&mut seen).unwrap();
                seen
            });
            for piece in &pieces {
                digesting.take(piece).await;
            }
            let (digested, seen) = digesting.finish().await.unwrap();
            assert_eq!(digested.sha256, sha256_hex(&whole), "read {wanted}");
            assert_eq!(digested.size, whole.len() as u64);
            assert_eq!(seen, whole[..wanted.min(whole.len())]);
        }
    }

    #[tokio::test]
    async fn an_inspector_that_panics_fails_the_digest_without_a_hang() {
        let mut digesting = Digesting::start(|reader: &mut UploadReader| {
            let mut first = [0u8; 1];
            reader.read_exact(&mut first).unwrap();
            panic!("a hostile file");
        });
        for piece in &pieces() {
            digesting.take(piece).await;
        }
        assert!(digesting.finish().await.is_err());
    }
}
