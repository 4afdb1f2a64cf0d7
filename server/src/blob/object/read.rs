//! Blobs read from the store: by ranged GETs, long reads in segments
//! fetched side by side.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange};

use super::{io_error, Bucket};
use crate::blob::{Blob, ByteStream};

/// A blob found in the store, read by ranged GETs.
pub(super) struct ObjectBlob {
    pub(super) bucket: Arc<dyn Bucket>,
    pub(super) key: Path,
    pub(super) length: u64,
}

/// Reads of more than this are fetched as ranged GETs of this size, a few
/// at once, in order: one GET's stream is bounded by the store's per-request
/// pace, as S3 clients that download in parallel ranges know.
pub(super) const READ_SEGMENT: u64 = 8 << 20;

/// Segments fetched ahead of the one being sent: what one download holds in
/// memory is at most this many segments.
const SEGMENTS_IN_FLIGHT: usize = 2;

#[async_trait::async_trait]
impl Blob for ObjectBlob {
    fn size(&self) -> u64 {
        self.length
    }

    async fn read(self: Box<Self>, start: u64, count: u64) -> std::io::Result<ByteStream> {
        if count == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let end = start + count;
        if count <= READ_SEGMENT * 2 {
            let options = GetOptions {
                range: Some(GetRange::Bounded(start..end)),
                ..GetOptions::default()
            };
            let found = self
                .bucket
                .get_opts(&self.key, options)
                .await
                .map_err(io_error)?;
            return Ok(Box::pin(found.into_stream().map_err(io_error)));
        }
        // Segments are fetched whole, the next ones while one is sent.
        let segments = (start..end)
            .step_by(READ_SEGMENT as usize)
            .map(move |from| from..(from + READ_SEGMENT).min(end));
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        let fetched = futures_util::stream::iter(segments)
            .map(move |range| {
                let (bucket, key) = (bucket.clone(), key.clone());
                async move { bucket.get_range(&key, range).await.map_err(io_error) }
            })
            .buffered(SEGMENTS_IN_FLIGHT + 1);
        Ok(Box::pin(fetched))
    }
}
