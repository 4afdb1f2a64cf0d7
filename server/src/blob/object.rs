//! Blobs in an S3-compatible object store, shared by every server of a
//! deployment (Apache Arrow's `object_store` signs and sends the requests).
//!
//! Under the store's prefix:
//! - `blobs/<first two hex digits>/<sha256>.<generation>`: published blobs
//!   (see [`BlobKey`]: a removal that lands late never takes the bytes the
//!   same content was published as again; one published before generations
//!   is under its digest alone);
//! - `staging/upload-<random>`: complete uploads waiting to be published;
//! - `uploading/upload-<random>`: one small marker per multipart upload in
//!   flight, naming its upload id (and, for an upload made in place, its
//!   key), rewritten while bytes arrive;
//! - `personal/…`: the personal stores' files (`crate::personal::object`),
//!   uploaded in place: a multipart upload is invisible until complete;
//! - `uploads/<upload id>/<offset>-<random>`: the parts of resumable
//!   uploads, one per chunk received, uploaded in place the same way; the
//!   database records which ones are the upload's.
//!
//! An upload goes up as a multipart upload of [`PART_SIZE`] parts, at most
//! [`PARTS_IN_FLIGHT`] of them at once, so a server holds a bounded amount of
//! any upload in memory; an upload smaller than one part is a single PUT. A
//! failed or dropped upload is aborted at once. One whose server died has a
//! marker that stops being rewritten: whichever server collects garbage
//! aborts it once the marker is older than the grace period, so no
//! incomplete multipart upload outlives a crash for long. Publishing copies
//! the staged object to its blob's key (inside the store, no bytes through
//! this server, unless it is too large for that: [`ObjectBlobs::copy`])
//! under a new generation, unless the blob's current one is there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ClientOptions, MultipartId, ObjectStore, PutPayload};

use super::{Area, Backend, Blob, BlobKey, ByteStream, Part, PartWriting, StagedBytes, Staging};
use read::ObjectBlob;
#[cfg(test)]
use read::READ_SEGMENT;
use staged::{KeptMarker, ObjectStaged};

/// The size of each part but the last, for an upload's first
/// [`SMALL_PARTS`] parts (31 GiB); S3 wants at least 5 MiB.
pub const PART_SIZE: usize = 8 << 20;

/// Parts of [`PART_SIZE`] before parts grow to [`LARGE_PART_SIZE`]: S3 takes
/// at most 10,000 parts, which makes 218 GiB in all.
const SMALL_PARTS: usize = 4000;
const LARGE_PART_SIZE: usize = 32 << 20;

/// Parts being sent at once: what one upload holds in memory is at most
/// `(PARTS_IN_FLIGHT + 1)` parts, 32 MiB for anything under 31 GiB.
pub const PARTS_IN_FLIGHT: usize = 3;

/// The largest object S3 copies in one request (`CopyObject`): 5 GiB.
const LARGEST_COPY: u64 = 5 << 30;

/// How often an upload in flight rewrites its marker, so that the collector,
/// which waits far longer, never takes it for a dead one.
const HEARTBEAT: Duration = Duration::from_secs(60);

/// An object store that also takes multipart uploads part by part (S3, and
/// the in-memory store of the unit tests).
pub trait Bucket: ObjectStore + MultipartStore {}
impl<T: ObjectStore + MultipartStore> Bucket for T {}

#[derive(Debug, Clone)]
pub struct ObjectBlobs {
    bucket: Arc<dyn Bucket>,
    prefix: Path,
}

pub(crate) fn io_error(error: object_store::Error) -> std::io::Error {
    std::io::Error::from(error)
}

pub(crate) fn is_not_found(error: &object_store::Error) -> bool {
    matches!(error, object_store::Error::NotFound { .. })
}

fn random_name() -> String {
    format!("upload-{:032x}", rand::random::<u128>())
}

impl ObjectBlobs {
    /// A store under `prefix` (which may be empty) of `bucket`.
    pub fn new(bucket: Arc<dyn Bucket>, prefix: &str) -> Self {
        Self {
            bucket,
            prefix: Path::from(prefix),
        }
    }

    /// A store in a bucket of an S3-compatible object store.
    pub fn connect_s3(
        bucket: &str,
        prefix: &str,
        settings: &crate::config::S3Args,
    ) -> anyhow::Result<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&settings.region)
            // Downloads of large images outlast any whole-request timeout:
            // a store that stops answering is found out by `Patient`.
            .with_client_options(
                ClientOptions::new()
                    .with_timeout_disabled()
                    .with_connect_timeout(Duration::from_secs(5)),
            )
            .with_http_connector(patience::Patient {
                limit: settings.timeout(),
            });
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(id) = &settings.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        let bucket = builder
            .build()
            .map_err(|error| anyhow::anyhow!("cannot use the object store: {error}"))?;
        Ok(Self::new(Arc::new(bucket), prefix))
    }

    /// The bucket, for the personal stores kept beside the blobs.
    pub(crate) fn bucket(&self) -> &Arc<dyn Bucket> {
        &self.bucket
    }

    /// The key of a top-level area (`blobs`, `staging`, `personal`, …).
    pub(crate) fn area(&self, name: &str) -> Path {
        self.prefix.child(name)
    }

    /// Begins a blob's upload into the staging area.
    fn begin_upload(&self) -> ObjectStaging {
        let name = random_name();
        self.upload_to(self.area("staging").child(name.as_str()), &name, false)
    }

    /// Begins an upload straight to `key`, sent exactly as a blob's is (in
    /// parts, marked, aborted if dropped or if its server dies) and placed
    /// by [`ObjectStaging::finish_in_place`]: the personal stores' files. S3
    /// shows a multipart upload only once it is complete, so a reader sees
    /// the old object or the new one, and an aborted upload leaves the old.
    pub(crate) fn begin_upload_in_place(&self, key: Path) -> ObjectStaging {
        self.upload_to(key, &random_name(), true)
    }

    fn upload_to(&self, key: Path, name: &str, in_place: bool) -> ObjectStaging {
        ObjectStaging {
            store: self.clone(),
            key,
            in_place,
            marker: self.area("uploading").child(name),
            upload: None,
            pending: pending::Pending::default(),
            in_flight: tokio::task::JoinSet::new(),
            parts: Vec::new(),
            last_beat: Instant::now(),
            written: 0,
            finished: false,
        }
    }

    /// Copies object `from`, of `size` bytes, to `to`: inside the store (no
    /// bytes through this server) up to [`LARGEST_COPY`], as much as S3
    /// copies in one request; a larger one streams through this server as
    /// a multipart upload in place (marked, aborted on failure, as any).
    pub(crate) async fn copy(&self, from: &Path, to: &Path, size: u64) -> std::io::Result<()> {
        self.copy_within(from, to, size, LARGEST_COPY).await
    }

    async fn copy_within(
        &self,
        from: &Path,
        to: &Path,
        size: u64,
        largest: u64,
    ) -> std::io::Result<()> {
        if size <= largest {
            return self.bucket.copy(from, to).await.map_err(io_error);
        }
        // An upload as much as any: one of the places, and its buffers.
        let _place = super::upload_place().await?;
        let mut upload = self.begin_upload_in_place(to.clone());
        let mut pieces = self.bucket.get(from).await.map_err(io_error)?.into_stream();
        while let Some(piece) = pieces.try_next().await.map_err(io_error)? {
            upload.write(piece).await?;
        }
        upload.finish_in_place().await
    }

    fn blob_key(&self, key: &BlobKey) -> Path {
        self.area("blobs")
            .child(key.folder())
            .child(key.file_name())
    }

    /// Whether an object is at `key`.
    async fn is_there(&self, key: &Path) -> std::io::Result<bool> {
        match self.bucket.head(key).await {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(io_error(error)),
        }
    }

    /// Objects under `area` last written before `grace` ago.
    async fn older_than(
        &self,
        area: &str,
        grace: Duration,
    ) -> std::io::Result<Vec<object_store::ObjectMeta>> {
        let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        self.written_before(area, cutoff).await
    }

    /// Objects under `area` last written at `cutoff` or before.
    async fn written_before(
        &self,
        area: &str,
        cutoff: chrono::DateTime<Utc>,
    ) -> std::io::Result<Vec<object_store::ObjectMeta>> {
        self.bucket
            .list(Some(&self.area(area)))
            .try_filter(|meta| std::future::ready(meta.last_modified <= cutoff))
            .try_collect()
            .await
            .map_err(io_error)
    }

    /// Deletes an object; a missing one is no error.
    pub(crate) async fn delete(&self, key: &Path) -> std::io::Result<()> {
        match self.bucket.delete(key).await {
            Err(error) if !is_not_found(&error) => Err(io_error(error)),
            _ => Ok(()),
        }
    }

    /// Aborts a multipart upload and deletes whatever it left: its object if
    /// it was completed after all, and its marker.
    /// An upload made in place leaves its key alone: what is there is the
    /// file it would have replaced.
    async fn abandon(
        &self,
        key: &Path,
        upload: Option<&MultipartId>,
        marker: &Path,
        in_place: bool,
    ) {
        if let Some(upload) = upload {
            if let Err(error) = self.bucket.abort_multipart(key, upload).await {
                if !is_not_found(&error) {
                    tracing::warn!(%error, "cannot abort a multipart upload; the collector will");
                    return; // The marker stays, so the collector tries again.
                }
            }
        }
        let leftovers: &[&Path] = if in_place { &[marker] } else { &[key, marker] };
        for leftover in leftovers {
            if let Err(error) = self.delete(leftover).await {
                tracing::warn!(%error, "cannot delete what an upload left; the collector will");
            }
        }
    }
}

/// Runs `cleanup` on the runtime, if there still is one (dropping happens
/// in synchronous code); otherwise the collector does it later.
fn in_background(cleanup: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(cleanup);
    }
}

/// An upload in flight: bytes gathered into parts, parts sent side by side.
pub(crate) struct ObjectStaging {
    store: ObjectBlobs,
    key: Path,
    /// Whether `key` is the upload's destination (else it is in staging).
    in_place: bool,
    marker: Path,
    upload: Option<MultipartId>,
    pending: pending::Pending,
    in_flight: tokio::task::JoinSet<(usize, object_store::Result<PartId>)>,
    parts: Vec<Option<PartId>>,
    last_beat: Instant,
    /// Bytes written so far.
    written: u64,
    finished: bool,
}

impl ObjectStaging {
    /// Waits for one part in flight and records it.
    async fn settle_one(&mut self) -> std::io::Result<()> {
        match self.in_flight.join_next().await {
            Some(Ok((index, Ok(part)))) => {
                self.parts[index] = Some(part);
                Ok(())
            }
            Some(Ok((_, Err(error)))) => Err(io_error(error)),
            Some(Err(error)) => Err(std::io::Error::other(error)),
            None => Ok(()),
        }
    }

    /// Writes the marker that names the multipart upload (again): its id,
    /// and on a second line the key of an upload made in place.
    async fn beat(&mut self, upload: &MultipartId) -> std::io::Result<()> {
        let mut marker = upload.clone();
        if self.in_place {
            marker.push('\n');
            marker.push_str(self.key.as_ref());
        }
        self.store
            .bucket
            .put(&self.marker, PutPayload::from(marker))
            .await
            .map_err(io_error)?;
        self.last_beat = Instant::now();
        Ok(())
    }

    /// Sends what is pending as the next part, once fewer than
    /// [`PARTS_IN_FLIGHT`] are on their way.
    async fn send_part(&mut self) -> std::io::Result<()> {
        let upload = match &self.upload {
            Some(upload) => upload.clone(),
            None => {
                let upload = self
                    .store
                    .bucket
                    .create_multipart(&self.key)
                    .await
                    .map_err(io_error)?;
                self.upload = Some(upload.clone());
                self.beat(&upload).await?;
                upload
            }
        };
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.settle_one().await?;
        }
        let payload = self.pending.take();
        let index = self.parts.len();
        self.parts.push(None);
        let (bucket, key, id) = (self.store.bucket.clone(), self.key.clone(), upload.clone());
        self.in_flight.spawn(async move {
            let sent = bucket.put_part(&key, &id, index, payload).await;
            (index, sent)
        });
        if self.last_beat.elapsed() >= HEARTBEAT {
            self.beat(&upload).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Staging for ObjectStaging {
    async fn write(&mut self, mut chunk: Bytes) -> std::io::Result<()> {
        self.written += chunk.len() as u64;
        loop {
            let part_size = if self.parts.len() < SMALL_PARTS {
                PART_SIZE
            } else {
                LARGE_PART_SIZE
            };
            if self.pending.len() + chunk.len() < part_size {
                break;
            }
            let rest = chunk.split_off(part_size - self.pending.len());
            self.pending.push(chunk);
            self.send_part().await?;
            chunk = rest;
        }
        if !chunk.is_empty() {
            self.pending.push(chunk);
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> std::io::Result<Box<dyn StagedBytes>> {
        Ok(Box::new(self.complete().await?))
    }
}

impl ObjectStaging {
    /// Completes an upload begun with [`ObjectBlobs::begin_upload_in_place`]:
    /// its bytes replace what was at its key, in one step.
    pub(crate) async fn finish_in_place(mut self) -> std::io::Result<()> {
        self.send_rest().await
    }

    /// Completes the upload in the staging area. The marker of a multipart
    /// upload is kept until the staged object is published or dropped (see
    /// [`staged`]).
    async fn complete(&mut self) -> std::io::Result<ObjectStaged> {
        self.send_rest().await?;
        let marker = self
            .upload
            .as_ref()
            .map(|upload| KeptMarker::keep(&self.store, self.marker.clone(), upload.clone()));
        Ok(ObjectStaged {
            store: self.store.clone(),
            key: Some(self.key.clone()),
            size: self.written,
            marker,
            prepared: None,
        })
    }

    /// Sends what is left and completes the upload at its key.
    async fn send_rest(&mut self) -> std::io::Result<()> {
        match self.upload.clone() {
            None => {
                // Smaller than one part: one PUT.
                let payload = self.pending.take();
                self.store
                    .bucket
                    .put(&self.key, payload)
                    .await
                    .map_err(io_error)?;
            }
            Some(upload) => {
                if !self.pending.is_empty() {
                    self.send_part().await?;
                }
                while !self.in_flight.is_empty() {
                    self.settle_one().await?;
                }
                let parts = std::mem::take(&mut self.parts)
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| std::io::Error::other("a part went missing"))?;
                self.store
                    .bucket
                    .complete_multipart(&self.key, &upload, parts)
                    .await
                    .map_err(io_error)?;
                // A staged object's marker outlives its upload (`staged`).
                if self.in_place {
                    self.store.delete(&self.marker).await?;
                }
            }
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for ObjectStaging {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Parts still being sent stop with the set; the upload is aborted.
        self.in_flight.abort_all();
        let (store, key, marker, upload, in_place) = (
            self.store.clone(),
            self.key.clone(),
            self.marker.clone(),
            self.upload.take(),
            self.in_place,
        );
        in_background(async move {
            store
                .abandon(&key, upload.as_ref(), &marker, in_place)
                .await
        });
    }
}

/// Deletes `key` on the runtime; if that fails, says it cannot discard
/// `what`.
fn discard_in_background(store: &ObjectBlobs, key: Path, what: &'static str) {
    let store = store.clone();
    in_background(async move {
        if let Err(error) = store.delete(&key).await {
            tracing::warn!(%error, "cannot discard {what}");
        }
    });
}

#[async_trait::async_trait]
impl Backend for ObjectBlobs {
    async fn stage(&self) -> std::io::Result<Box<dyn Staging>> {
        Ok(Box::new(self.begin_upload()))
    }

    async fn open(&self, key: &BlobKey) -> std::io::Result<Box<dyn Blob>> {
        let key = self.blob_key(key);
        let meta = self.bucket.head(&key).await.map_err(io_error)?;
        Ok(Box::new(ObjectBlob {
            bucket: self.bucket.clone(),
            key,
            length: meta.size,
        }))
    }

    async fn exists(&self, key: &BlobKey) -> std::io::Result<bool> {
        self.is_there(&self.blob_key(key)).await
    }

    async fn remove(&self, key: &BlobKey) -> std::io::Result<()> {
        self.delete(&self.blob_key(key)).await
    }

    async fn settled_blobs(&self, grace: Duration) -> std::io::Result<Vec<BlobKey>> {
        // The cutoff, then the markers: a copy registered after they are
        // listed is dated after the cutoff.
        let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        let marked = self.marked_copies().await?;
        Ok(self
            .written_before("blobs", cutoff)
            .await?
            .into_iter()
            .filter_map(|meta| meta.location.filename().and_then(BlobKey::from_file_name))
            .filter(|key| !marked.contains(&key.file_name()))
            .collect())
    }

    async fn discard_stale_uploads(&self, grace: Duration) -> std::io::Result<usize> {
        let mut discarded = 0;
        let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        // Every marker, listed once: the stale ones are abandoned below, and
        // the names of all of them keep their staged objects. A marker made
        // after this listing belongs to an upload begun since, whose staged
        // object is dated from then, so within the grace period.
        let markers: Vec<object_store::ObjectMeta> = self
            .bucket
            .list(Some(&self.area("uploading")))
            .try_collect()
            .await
            .map_err(io_error)?;
        let marked: std::collections::HashSet<String> = markers
            .iter()
            .filter_map(|meta| meta.location.filename().map(str::to_owned))
            .collect();
        // Multipart uploads whose server stopped rewriting their marker.
        for marker in markers.iter().filter(|meta| meta.last_modified <= cutoff) {
            let Some(name) = marker.location.filename() else {
                continue;
            };
            if name.starts_with(prepared::COPY_MARKER) {
                // A copy's (see `prepared`): its server is gone, and the
                // copy is the collector's to check under the blob's lock.
                if let Err(error) = self.delete(&marker.location).await {
                    tracing::warn!(%error, "cannot delete a stale copy marker");
                }
                continue;
            }
            let content = match self.bucket.get(&marker.location).await {
                Ok(found) => found.bytes().await.map_err(io_error)?,
                Err(error) if is_not_found(&error) => continue, // Finished meanwhile.
                Err(error) => return Err(io_error(error)),
            };
            let content = String::from_utf8_lossy(&content).into_owned();
            let (upload, in_place) = match content.split_once('\n') {
                // Made in place: only ever a personal store's file, a
                // resumable upload's part, or a blob too large to copy
                // inside the store (`ObjectBlobs::copy`).
                Some((upload, key)) => match Path::parse(key) {
                    Ok(key)
                        if key.prefix_matches(&self.area("personal"))
                            || key.prefix_matches(&self.area("uploads"))
                            || key.prefix_matches(&self.area("blobs")) =>
                    {
                        (upload, Some(key))
                    }
                    _ => {
                        tracing::warn!(marker = %marker.location, "a marker names a foreign key");
                        continue;
                    }
                },
                None => (content.as_str(), None),
            };
            let key = in_place
                .clone()
                .unwrap_or_else(|| self.area("staging").child(name));
            let upload = upload.to_owned();
            self.abandon(&key, Some(&upload), &marker.location, in_place.is_some())
                .await;
            discarded += 1;
        }
        // Complete uploads that were never published, but those whose
        // marker is still kept fresh: S3 dates an object a multipart upload
        // made from the upload's start (see `staged`). A stale marker's
        // staged object went with its upload above, or stays with the marker
        // for the next collection if its upload could not be aborted.
        for staged in self.older_than("staging", grace).await? {
            if staged
                .location
                .filename()
                .is_some_and(|name| marked.contains(name))
            {
                continue;
            }
            self.delete(&staged.location).await?;
            discarded += 1;
        }
        Ok(discarded)
    }

    async fn discard_partial_uploads(&self) -> std::io::Result<()> {
        // Other servers may be uploading into the same store right now:
        // only the grace period tells a dead upload from a live one.
        Ok(())
    }

    async fn claim_for_catalog(&self, catalog: &str) -> std::io::Result<String> {
        // Written only where none is. Not atomic (not every S3-compatible
        // store keeps to If-None-Match): the first servers of two catalogs
        // starting on one empty prefix at the same moment may both start;
        // from then on the catalog last written is the prefix's.
        let key = self.prefix.child("catalog");
        let recorded = |bytes: Bytes| String::from_utf8_lossy(&bytes).trim().to_owned();
        match self.bucket.get(&key).await {
            Ok(found) => return Ok(recorded(found.bytes().await.map_err(io_error)?)),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(io_error(error)),
        }
        let payload = PutPayload::from(catalog.as_bytes().to_vec());
        self.bucket.put(&key, payload).await.map_err(io_error)?;
        let found = self.bucket.get(&key).await.map_err(io_error)?;
        Ok(recorded(found.bytes().await.map_err(io_error)?))
    }

    async fn check_writable(&self) -> std::io::Result<()> {
        let probe = self
            .area("staging")
            .child(format!(".ready-{:016x}", rand::random::<u64>()));
        self.bucket
            .put(&probe, PutPayload::from_static(b"ready"))
            .await
            .map_err(io_error)?;
        self.delete(&probe).await
    }

    async fn write_part(&self, upload: &str, offset: u64) -> std::io::Result<Box<dyn PartWriting>> {
        self.begin_part(upload, offset)
    }

    async fn read_parts(&self, upload: &str, parts: &[Part]) -> std::io::Result<ByteStream> {
        self.read_upload_parts(upload, parts)
    }

    async fn remove_parts(&self, upload: &str) -> std::io::Result<()> {
        self.remove_upload_parts(upload).await
    }

    async fn kept_uploads(&self, grace: Duration) -> std::io::Result<Vec<String>> {
        self.untouched_uploads(grace).await
    }

    async fn stored(&self, area: Area) -> std::io::Result<Vec<String>> {
        let areas: &[&str] = match area {
            Area::Blobs => &["blobs"],
            Area::Staging => &["staging", "uploading"],
            Area::Uploads => &["uploads"],
        };
        let mut found = Vec::new();
        for area in areas {
            let listed: Vec<object_store::ObjectMeta> = self
                .bucket
                .list(Some(&self.area(area)))
                .try_collect()
                .await
                .map_err(io_error)?;
            found.extend(listed.into_iter().map(|meta| meta.location.to_string()));
        }
        Ok(found)
    }
}

mod parts;
mod patience;
mod pending;
mod prepared;
mod read;
mod staged;

#[cfg(test)]
mod tests;
