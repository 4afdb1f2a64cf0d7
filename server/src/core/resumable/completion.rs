//! Making a complete upload into its image, once, whichever servers take
//! part: the server that claims the completion does it, from the digest it
//! kept as the chunks arrived or from the parts read back; a claim that
//! outlasts its lease is another's to take over.

use std::time::Duration;

use app::error::CoreError;
use app::model::{Image, Viewer};
use bytes::Bytes;
use chrono::Utc;

use super::{missing, Digest, Resumable, ResumableMeta};
use crate::blob::{IngestError, Limit, Part};
use crate::core::images::{ingest_error, Source, UploadMeta};
use crate::core::inspect;
use crate::core::{db_error, io_error, Core};
use crate::store::UploadRow;

/// How long a completion goes unrenewed before another server takes it
/// over.
const COMPLETION_LEASE: Duration = Duration::from_secs(3600);

/// How long a completion's server renews its claim at the most (a terabyte
/// read back and copied twice at 20 MB/s takes a day and more).
const COMPLETION_RENEWED_AT_MOST: Duration = Duration::from_secs(2 * 24 * 3600);

/// This server's claim on an upload's completion: the image it makes lands
/// only while the claim holds (another server may take over a completion
/// whose server stopped renewing it for [`COMPLETION_LEASE`]: it died).
#[derive(Debug, Clone)]
pub(crate) struct Completion {
    pub upload: String,
    pub claimed_at: i64,
}

impl Completion {
    /// The answer while another request completes the upload.
    pub(crate) fn taken_over(&self) -> CoreError {
        being_completed(&self.upload)
    }
}

fn being_completed(id: &str) -> CoreError {
    CoreError::Conflict(format!(
        "upload {id} is being made into an image; ask again shortly"
    ))
}

/// Whether an image changed since an upload of its file began, to exactly
/// the upload's bytes: a completion cut off after it recorded them, tried
/// again (or another upload of the same file). There is nothing to do.
fn already_landed(meta: &ResumableMeta, image: &Image, digest: &str) -> bool {
    meta.begun_from
        .as_ref()
        .is_some_and(|begun| begun.sha256 != image.sha256)
        && image.sha256.as_deref() == Some(digest)
}

impl Core {
    /// The image an upload another request completed became, or a wait
    /// while it is made.
    async fn completed_elsewhere(&self, id: &str) -> Result<i64, CoreError> {
        let done = self.db.upload(id).await.map_err(db_error)?;
        done.and_then(|row| row.image_id)
            .ok_or_else(|| being_completed(id))
    }

    /// The upload, if another request took `completion` over (or completed
    /// it); if it cannot be read, the claim is taken as held (what is done
    /// then, a release, is conditional on the claim anyway).
    async fn claim_lost(&self, completion: &Completion) -> Option<UploadRow> {
        match self.db.upload(&completion.upload).await {
            Ok(row) => row.filter(|row| {
                row.image_id.is_some() || row.completing_at != Some(completion.claimed_at)
            }),
            Err(error) => {
                tracing::warn!(%error, "cannot read an upload's completion claim");
                None
            }
        }
    }

    /// What a claimed completion works from: the upload's reservation, its
    /// row, its parts, and its bytes' digest and inspection (kept from the
    /// chunks as they arrived, or read back from the parts).
    async fn completion_bytes(
        &self,
        id: &str,
    ) -> Result<(Option<i64>, Resumable, Vec<Part>, Digest), CoreError> {
        let row = self
            .db
            .upload(id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| missing(id))?;
        let reservation = row.reservation_id;
        let upload: Resumable = row.try_into()?;
        let parts = self.db.upload_parts(id).await.map_err(db_error)?;
        let mut end = 0;
        for part in &parts {
            if part.start != end {
                tracing::error!(upload = id, "an upload's parts do not follow each other");
                return Err(CoreError::Internal);
            }
            end += part.size;
        }
        let parts: Vec<Part> = parts
            .into_iter()
            .map(|part| Part {
                start: part.start as u64,
                size: part.size as u64,
                name: part.name,
            })
            .collect();
        let digest = match self.live.finish(id, upload.length).await {
            Some(digest) => digest,
            None => {
                tracing::info!(
                    upload = id,
                    "no live ingest of this upload here: reading it back"
                );
                let bytes = self.blobs.read_parts(id, &parts).await.map_err(io_error)?;
                self.blobs
                    .digest(bytes, &mut Limit(upload.length), |reader| {
                        inspect::inspect(reader)
                    })
                    .await
                    .map_err(|error| match error {
                        // The parts are the server's own: reading them
                        // failing is its failure, not the uploader's.
                        IngestError::Body(reason) => {
                            tracing::error!(upload = id, %reason, "cannot read an upload's parts back");
                            CoreError::Internal
                        }
                        other => ingest_error(other),
                    })?
            }
        };
        if digest.0.size != upload.length {
            tracing::error!(
                upload = id,
                size = digest.0.size,
                "an upload's parts are short"
            );
            return Err(CoreError::Internal);
        }
        Ok((reservation, upload, parts, digest))
    }

    /// Runs the complete upload's bytes through the one ingest path, once:
    /// the server that claims the completion does it; answers the image.
    pub(super) async fn complete_upload(
        &self,
        viewer: &Viewer,
        id: &str,
    ) -> Result<i64, CoreError> {
        let now = Utc::now().timestamp_millis();
        let stale = now - COMPLETION_LEASE.as_millis() as i64;
        if !self
            .db
            .claim_completion(id, now, stale)
            .await
            .map_err(db_error)?
        {
            return self.completed_elsewhere(id).await;
        }
        let completion = Completion {
            upload: id.to_owned(),
            claimed_at: now,
        };
        let _renewing = self.keep_completion_claimed(id, now);
        let (reservation, upload, parts, (digested, inspection)) =
            match self.completion_bytes(id).await {
                Ok(prepared) => prepared,
                // Nothing was recorded: the claim goes at once, so that the
                // next request for the upload tries again, not a lease later.
                Err(error) => {
                    self.release_claim(id, now).await;
                    return Err(error);
                }
            };
        let digest = digested.sha256.clone();
        // The bytes are staged for the one ingest path only once nothing
        // cheaper refuses them: on an object store, staging copies them.
        let staged = || async {
            let staged = self
                .blobs
                .stage_parts(id, &parts, digested)
                .await
                .map_err(io_error)?;
            Ok::<_, CoreError>(Source::<
                futures_util::stream::Empty<Result<Bytes, std::io::Error>>,
            >::Ingested(
                Box::new((staged, inspection)), completion.clone()
            ))
        };
        // The image the bytes are for, as it is now; one that went or
        // takes no bytes any more refuses the upload below, which forgets it.
        let target = match upload.meta.image {
            Some(image) => Some(self.attachable_image(viewer, image).await),
            None => None,
        };
        let recorded = match target {
            Some(Err(error)) => Err(error),
            Some(Ok(image)) if already_landed(&upload.meta, &image, &digest) => {
                match self.db.finish_upload(id, image.id, now).await {
                    Ok(true) => Ok(image.id),
                    Ok(false) => Err(completion.taken_over()),
                    Err(error) => Err(db_error(error)),
                }
            }
            Some(Ok(image)) => {
                let allowance =
                    self.upload_allowance_of(image.owner_id, reservation, upload.length);
                let begun_from = upload.meta.begun_from.as_ref();
                async {
                    let source = staged().await?;
                    self.attach_file_within(viewer, image.id, source, allowance, begun_from)
                        .await
                }
                .await
                .map(|image| image.id)
            }
            None => {
                let owner = viewer.require_user()?.id;
                let allowance = self.upload_allowance_of(Some(owner), reservation, upload.length);
                let meta = UploadMeta {
                    file_name: upload.meta.file_name.clone(),
                    label: upload.meta.label.clone(),
                    public: upload.meta.public,
                };
                async {
                    self.upload_within(viewer, meta, staged().await?, allowance)
                        .await
                }
                .await
                .map(|image| image.id)
            }
        };
        // Whatever happened here, an upload another server completes now
        // is theirs to answer for: not forgotten, nor its claim let go.
        if recorded.is_err() {
            if let Some(row) = self.claim_lost(&completion).await {
                return row.image_id.ok_or_else(|| being_completed(id));
            }
        }
        match recorded {
            // The upload became the image with it (`Landing::Completing`).
            // Its reservation went in the same commit: the bytes count as
            // the record now.
            Ok(image) => {
                self.remove_parts(id).await;
                Ok(image)
            }
            // A refused file is not kept: its space is free again.
            Err(
                error @ (CoreError::Invalid(_)
                | CoreError::TooLarge(_)
                | CoreError::Forbidden(_)
                | CoreError::NotFound(_)),
            ) => {
                self.forget_upload(id).await?;
                Err(error)
            }
            // Nor one for an image that takes no bytes (a synced copy), or
            // whose bytes changed since it was read: a retry would lay
            // these over the change.
            Err(error @ CoreError::Conflict(_)) if upload.meta.image.is_some() => {
                self.forget_upload(id).await?;
                Err(error)
            }
            // Anything else may pass: the bytes stay, and the next request
            // for the upload completes it.
            Err(error) => {
                self.release_claim(id, now).await;
                Err(error)
            }
        }
    }

    /// Renews this server's claim on a completion at once and then every
    /// quarter of its lease, until the answer is dropped: the completion of
    /// a large upload (on an object store: read back, copied, copied again
    /// past 5 GiB) may take hours, and is taken over only once its server
    /// stops renewing (it died, or dropped the work). Its upload and
    /// reservation, unless they expired already, are kept as long. After
    /// [`COMPLETION_RENEWED_AT_MOST`] the work is taken for stuck, and
    /// renewed no more.
    fn keep_completion_claimed(
        &self,
        id: &str,
        claimed_at: i64,
    ) -> tokio_util::task::AbortOnDropHandle<()> {
        let (db, id) = (self.db.clone(), id.to_owned());
        let lease = COMPLETION_LEASE.as_millis() as i64;
        let until = tokio::time::Instant::now() + COMPLETION_RENEWED_AT_MOST;
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            while tokio::time::Instant::now() < until {
                let now = Utc::now().timestamp_millis();
                match db.renew_completion(&id, claimed_at, now, now + lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(error) => tracing::warn!(%error, "cannot renew a completion's claim"),
                }
                tokio::time::sleep(COMPLETION_LEASE / 4).await;
            }
        }))
    }

    /// Lets go of a completion claim at once (it lapses if it cannot).
    async fn release_claim(&self, id: &str, now: i64) {
        if let Err(release) = self.db.release_completion(id, now).await {
            tracing::warn!(%release, "cannot release a completion claim; it will lapse");
        }
    }
}
