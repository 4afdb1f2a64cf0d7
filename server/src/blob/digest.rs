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

/// Chunks in flight between the request and the inspector's thread.
const QUEUE_DEPTH: usize = 8;

/// The bytes of an upload as they arrive, as a [`std::io::Read`] for an
/// inspector running on a thread of its own. It sees every byte once, in
/// order, without a second pass over the file; an inspector that has seen
/// enough simply stops reading.
pub struct UploadReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl io::Read for UploadReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let take = buffer.len().min(self.current.len());
        buffer[..take].copy_from_slice(&self.current.split_to(take));
        Ok(take)
    }
}

/// Bytes hashed and shown to an inspector on a thread of its own as they
/// arrive, in one body or across many (a resumable upload's chunks).
pub struct Digesting<R> {
    hasher: Sha256,
    size: u64,
    /// `None` once the inspector stopped reading: it has seen all it needs.
    inspecting: Option<tokio::sync::mpsc::Sender<Bytes>>,
    inspection: tokio::task::JoinHandle<R>,
}

impl<R: Send + 'static> Digesting<R> {
    /// Starts `inspector` on a thread of its own, reading the bytes taken.
    pub fn start(inspector: impl FnOnce(&mut UploadReader) -> R + Send + 'static) -> Self {
        let (to_inspector, chunks) = tokio::sync::mpsc::channel::<Bytes>(QUEUE_DEPTH);
        let inspection = tokio::task::spawn_blocking(move || {
            let mut reader = UploadReader {
                chunks,
                current: Bytes::new(),
            };
            inspector(&mut reader)
        });
        Self {
            hasher: Sha256::new(),
            size: 0,
            inspecting: Some(to_inspector),
            inspection,
        }
    }

    /// How many bytes were taken.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Takes the next bytes: hashed, and passed to the inspector (waiting
    /// for it, if it is behind).
    pub async fn take(&mut self, bytes: &Bytes) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        self.hasher.update(bytes);
        if let Some(inspecting) = &self.inspecting {
            if inspecting.send(bytes.clone()).await.is_err() {
                self.inspecting = None;
            }
        }
    }

    /// Ends the file: its digest and size, and the inspector's answer.
    pub async fn finish(self) -> io::Result<(Digested, R)> {
        drop(self.inspecting);
        let inspection = self.inspection.await.map_err(io::Error::other)?;
        Ok((
            Digested {
                sha256: hex::encode(self.hasher.finalize()),
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
