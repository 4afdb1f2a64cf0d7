//! Resumable uploads (the tus protocol's rules; `web/uploads.rs` speaks
//! its HTTP): an upload is created with its length, which is checked
//! against the upload limit and reserved against the quota at once; its
//! bytes arrive in chunks at the offset the server acknowledged last, each
//! chunk kept by the blob store as a part of the upload the moment it is
//! received (so what was acknowledged survives a restart and is there for
//! any server of the deployment); once complete, the parts go through the
//! one ingest path (size, inspection, SHA-256, dedup, publish) and become an
//! image, or the bytes of an existing one. On the server that received it
//! from the start, they were hashed and inspected while they arrived
//! ([`live`]), and a local store publishes the upload's file itself: its
//! bytes are written once. An upload that expires or is terminated frees
//! its space.

mod completion;
mod live;
mod writers;

use std::time::Duration;

use app::error::CoreError;
use app::model::{Image, Viewer};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use futures_util::future::Either;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use sha1::Digest as _;

pub(crate) use completion::Completion;
pub use live::LiveIngests;
pub use writers::Writers;

use super::images::ingest_error;
use super::inspect::Inspection;
use super::{db_error, io_error, Core};
use crate::blob::Digested;
use crate::store::{NewPart, UploadRecorded, UploadRow};

/// What hashing and inspecting an upload's bytes found.
type Digest = (Digested, Result<Inspection, String>);

/// How long an upload lives after its last chunk.
pub const UPLOAD_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long an upload's reservation lasts until the upload is recorded,
/// which then carries it for the upload's life: a crash in between holds
/// the room this long, not the upload's day.
const CREATION_RESERVATION: Duration = Duration::from_secs(600);

/// Uploads one user may have in progress at once.
pub const MAX_OPEN_UPLOADS: i64 = 50;

/// Chunks one upload may be sent in: each is a part (an object, in an
/// object store) until the upload completes, so a client sending tiny
/// chunks is told to send larger ones.
pub const MAX_CHUNKS: i64 = 10_000;

/// The least of a broken-off body that is kept (unless it ends the upload):
/// less is simply sent again, rather than kept as a tiny chunk.
pub const MIN_KEPT_PARTIAL: u64 = 1 << 20;

/// What an upload becomes when complete, from its creation's metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ResumableMeta {
    pub file_name: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub public: bool,
    /// An existing image whose bytes these become (as ViCE's file upload).
    #[serde(default)]
    pub image: Option<i64>,
    /// The bytes that image had when the upload began, set by the server
    /// (uploads begun before it was kept have none, and are not checked).
    #[serde(default)]
    pub begun_from: Option<BegunFrom>,
}

/// The bytes an image had when an upload of its file began: the upload
/// replaces those or none, so that of two begun together the second to
/// finish is refused, not laid over the first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BegunFrom {
    pub sha256: Option<String>,
}

/// An upload as its owner sees it.
#[derive(Debug, Clone)]
pub struct Resumable {
    pub id: String,
    pub length: u64,
    pub received: u64,
    pub expires_at: DateTime<Utc>,
    pub image_id: Option<i64>,
    pub meta: ResumableMeta,
}

/// A checksum a client sent with a chunk (the tus checksum extension).
#[derive(Debug, Clone)]
pub enum Checksum {
    Sha1(Vec<u8>),
    Sha256(Vec<u8>),
}

/// A chunk taken: the upload's new offset, and whether its body broke off
/// (its client went) short of the upload's end; one that broke after its
/// last byte completed the upload all the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub received: u64,
    pub broke_off: bool,
}

/// Why a chunk was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The chunk's bytes do not match the checksum sent with them.
    #[error("the chunk does not match its checksum")]
    Checksum,
}

fn upload_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn missing(id: &str) -> CoreError {
    CoreError::not_found(format!("upload {id}"))
}

fn millis(at: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(at).single().unwrap_or_default()
}

impl TryFrom<UploadRow> for Resumable {
    type Error = CoreError;

    fn try_from(row: UploadRow) -> Result<Self, CoreError> {
        let meta = serde_json::from_str(&row.metadata).map_err(|_| {
            tracing::error!(upload = row.id, "unreadable metadata in resumable_uploads");
            CoreError::Internal
        })?;
        Ok(Self {
            length: row.length.max(0) as u64,
            received: row.received.max(0) as u64,
            expires_at: millis(row.expires_at),
            image_id: row.image_id,
            id: row.id,
            meta,
        })
    }
}

impl Core {
    /// Creates an upload of `length` bytes for the caller, reserving them.
    pub async fn create_upload(
        &self,
        viewer: &Viewer,
        length: u64,
        mut meta: ResumableMeta,
    ) -> Result<Resumable, CoreError> {
        let user = viewer.require_user()?;
        if length == 0 {
            return Err(CoreError::invalid("an empty file is not an image"));
        }
        let too_many = || {
            CoreError::Conflict(format!(
                "you have {MAX_OPEN_UPLOADS} uploads in progress; finish or delete one first"
            ))
        };
        // Checked again as the upload is recorded: this spares a
        // reservation that could not be used.
        let open = self.db.open_uploads_of(user.id).await.map_err(db_error)?;
        if open >= MAX_OPEN_UPLOADS {
            return Err(too_many());
        }
        // What the finished upload will be checked against, checked now;
        // its bytes count against the quota of whoever will own them.
        let charged = match meta.image {
            Some(image) => {
                let image = self.attachable_image(viewer, image).await?;
                meta.begun_from = Some(BegunFrom {
                    sha256: image.sha256,
                });
                image.owner_id
            }
            None => {
                app::model::ImageName::parse(&meta.file_name)?;
                app::model::plain_text("label", &meta.label)?;
                if meta.public && !viewer.is_admin() {
                    return Err(CoreError::Forbidden(
                        "only administrators publish public images".into(),
                    ));
                }
                self.check_room_for_image(user).await?;
                Some(user.id)
            }
        };
        let limit = self.limits.max_upload_bytes;
        if length > limit {
            return Err(CoreError::TooLarge(format!(
                "the file is larger than the {limit} bytes allowed"
            )));
        }
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(UPLOAD_LIFETIME).unwrap_or_default();
        let recorded_by =
            now + chrono::Duration::from_std(CREATION_RESERVATION).unwrap_or_default();
        let reservation = match charged {
            Some(owner) => self
                .reserve_for_upload(owner, length, recorded_by.timestamp_millis())
                .await
                .map_err(ingest_error)?,
            None => None,
        };
        let row = UploadRow {
            id: upload_id(),
            owner_id: user.id,
            length: i64::try_from(length).unwrap_or(i64::MAX),
            received: 0,
            metadata: serde_json::to_string(&meta).map_err(|_| CoreError::Internal)?,
            reservation_id: reservation,
            image_id: None,
            completing_at: None,
            created_at: now.timestamp_millis(),
            expires_at: expires_at.timestamp_millis(),
        };
        let refused = match self.db.insert_upload(&row, MAX_OPEN_UPLOADS).await {
            Ok(UploadRecorded::Recorded) => return row.try_into(),
            Ok(UploadRecorded::TooMany) => too_many(),
            Ok(UploadRecorded::ReservationLapsed) => CoreError::Busy { retry_after: 1 },
            Err(error) => db_error(error),
        };
        if let Some(reservation) = reservation {
            let _ = self.db.release_quota(reservation).await;
        }
        Err(refused)
    }

    /// The caller's upload `id` (another user's is not found).
    pub async fn upload_status(&self, viewer: &Viewer, id: &str) -> Result<Resumable, CoreError> {
        let user = viewer.require_user()?;
        match self.db.upload(id).await.map_err(db_error)? {
            Some(row)
                if row.owner_id == user.id && row.expires_at > Utc::now().timestamp_millis() =>
            {
                row.try_into()
            }
            _ => Err(missing(id)),
        }
    }

    /// Appends a chunk at `offset`, which must be what the server has
    /// received so far; answers the new offset. The bytes received are kept
    /// even if the body breaks off (unless a checksum must vouch for them),
    /// which the answer tells.
    /// The chunk that completes the upload makes it an image.
    pub async fn append_to_upload<S, E>(
        &self,
        viewer: &Viewer,
        id: &str,
        offset: u64,
        body: S,
        checksum: Option<Checksum>,
    ) -> Result<Appended, AppendError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display + Send,
    {
        let uploader = viewer.require_user()?;
        // Taken before the upload's writer: a chunk refused for its
        // uploader's share leaves the upload as it was.
        let _share = self.upload_shares.take(uploader.id)?;
        // Taken before the offset is read: it cannot move under this chunk.
        let _writing = self.writers.claim(id).await?;
        let upload = self.upload_status(viewer, id).await?;
        if upload.image_id.is_some() {
            return Err(CoreError::Conflict(format!("upload {id} is complete")).into());
        }
        if offset == upload.length && upload.received == upload.length {
            // Every byte is here but the image is not (a completion that
            // failed or was cut off): this request completes it.
            self.complete_upload(viewer, id).await?;
            return Ok(Appended {
                received: upload.received,
                broke_off: false,
            });
        }
        if offset != upload.received {
            return Err(CoreError::Conflict(format!(
                "upload {id} is at offset {}, not {offset}",
                upload.received
            ))
            .into());
        }
        // Near its end, an upload's life is renewed as a chunk begins, not
        // only as it ends: the collectors, which renew it while it arrives,
        // may not run before it would lapse.
        if upload.expires_at < Utc::now() + chrono::Duration::hours(1) {
            self.keep_upload(id).await?;
        }
        let parts = self.db.upload_part_count(id).await.map_err(db_error)?;
        if parts >= MAX_CHUNKS {
            return Err(CoreError::TooLarge(format!(
                "upload {id} has {parts} chunks already; send the rest in one"
            ))
            .into());
        }
        let room = upload.length.saturating_sub(upload.received);
        let mut lent = self.live.lend(id, offset);
        let body = match &mut lent {
            Some(lent) => Either::Left(lent.tee(body)),
            None => Either::Right(body),
        };
        let mut sha1 = sha1::Sha1::new();
        let mut sha256 = sha2::Sha256::new();
        let chunk = self
            .blobs
            .write_part(id, offset, body, room, |bytes| match &checksum {
                Some(Checksum::Sha1(_)) => sha1.update(bytes),
                Some(Checksum::Sha256(_)) => sha256.update(bytes),
                None => {}
            })
            .await
            .map_err(ingest_error)?;
        let matches = match &checksum {
            None => true,
            Some(Checksum::Sha1(expected)) => sha1.finalize().as_slice() == expected.as_slice(),
            Some(Checksum::Sha256(expected)) => sha256.finalize().as_slice() == expected.as_slice(),
        };
        if checksum.is_some() && (chunk.broken.is_some() || !matches) {
            // The part, never recorded, is discarded as it drops.
            return Err(AppendError::Checksum);
        }
        let mut received = upload.received;
        let size = chunk.size;
        let ends = upload.received + size == upload.length;
        let broken = chunk.broken.is_some();
        let kept = chunk
            .part
            .filter(|_| !broken || ends || size >= MIN_KEPT_PARTIAL);
        if let Some(part) = kept {
            let expires_at =
                Utc::now() + chrono::Duration::from_std(UPLOAD_LIFETIME).unwrap_or_default();
            let new = NewPart {
                upload_id: id,
                start: offset as i64,
                size: size as i64,
                name: part.name(),
            };
            let appended = self
                .db
                .append_part(new, expires_at.timestamp_millis())
                .await
                .map_err(db_error)?;
            if !appended {
                return Err(CoreError::Conflict(format!(
                    "upload {id} moved on while this chunk arrived"
                ))
                .into());
            }
            part.keep();
            received += size;
        }
        if let Some(error) = &chunk.broken {
            tracing::info!(upload = id, received, %error, "a chunk broke off");
        }
        if let Some(lent) = lent {
            self.live.give_back(lent, received);
        }
        if received == upload.length {
            self.complete_upload(viewer, id).await?;
        }
        Ok(Appended {
            received,
            broke_off: broken && received < upload.length,
        })
    }

    /// The image a complete upload became.
    pub async fn uploaded_image(&self, viewer: &Viewer, id: &str) -> Result<Image, CoreError> {
        let upload = self.upload_status(viewer, id).await?;
        match upload.image_id {
            Some(image) => self.get_image(viewer, image).await,
            // Complete, but the completion failed or was cut off: now,
            // in one of the uploader's places, as a chunk would be.
            None if upload.received == upload.length => {
                let _share = self.upload_shares.take(viewer.require_user()?.id)?;
                let image = self.complete_upload(viewer, id).await?;
                self.get_image(viewer, image).await
            }
            None => Err(CoreError::Conflict(format!(
                "upload {id} has {} of its {} bytes",
                upload.received, upload.length
            ))),
        }
    }

    /// Terminates the caller's upload: its bytes and its reservation go,
    /// once no chunk of it is being written here. A chunk under way went on
    /// writing after its reservation had gone (room its uploader could
    /// reserve again meanwhile), and one about to open its file made it
    /// anew, after the parts had been removed, for no row to name.
    pub async fn terminate_upload(&self, viewer: &Viewer, id: &str) -> Result<(), CoreError> {
        let before = self.upload_status(viewer, id).await?;
        let _writing = self.writers.claim(id).await?;
        // The chunk waited for may have completed it: an image now, which
        // the caller, who asked to drop the bytes, did not know of.
        if before.image_id.is_none() && self.upload_status(viewer, id).await?.image_id.is_some() {
            return Err(CoreError::Conflict(format!(
                "upload {id} is complete: its image stays"
            )));
        }
        self.forget_upload(id).await
    }

    /// Deletes an upload's row, its parts and its reservation.
    async fn forget_upload(&self, id: &str) -> Result<(), CoreError> {
        self.live.forget(id);
        let reservation = self.db.delete_upload(id).await.map_err(db_error)?;
        if let Some(reservation) = reservation {
            if let Err(error) = self.db.release_quota(reservation).await {
                tracing::warn!(%error, "cannot release a quota reservation; it will expire");
            }
        }
        self.remove_parts(id).await;
        Ok(())
    }

    /// Removes what the blob store keeps of an upload; what cannot be
    /// removed now, the collector removes later.
    async fn remove_parts(&self, id: &str) {
        if let Err(error) = self.blobs.remove_parts(id).await {
            tracing::warn!(upload = id, %error, "cannot remove an upload's parts; the collector will");
        }
    }

    /// Renews the uploads a chunk is arriving for on this server, and their
    /// reservations, before anything expired is collected: a chunk may take
    /// longer than an upload lives (one request of a whole large file, as
    /// tus-js-client sends by default), and every server's collector must
    /// see it alive.
    pub(super) async fn renew_uploads_in_flight(&self, busy: &[String]) -> Result<(), CoreError> {
        let mut failed = None;
        for id in busy {
            if let Err(error) = self.keep_upload(id).await {
                failed.get_or_insert(error);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Removes the uploads past their expiry, and the parts kept for
    /// uploads the database no longer knows, untouched for `grace` (what a
    /// crash between the two left); answers how many uploads went.
    pub(super) async fn collect_expired_uploads(
        &self,
        grace: Duration,
        busy: &[String],
    ) -> Result<usize, CoreError> {
        let idle = self.live.drop_idle();
        if idle > 0 {
            tracing::info!(idle, "dropped live ingests of uploads not fed for a while");
        }
        let expired = self
            .db
            .expired_uploads(Utc::now().timestamp_millis())
            .await
            .map_err(db_error)?;
        // Not one a chunk is arriving for here: its writer finds out.
        let mut forgotten = 0;
        for id in expired.iter().filter(|id| !busy.contains(id)) {
            self.forget_upload(id).await?;
            forgotten += 1;
        }
        let kept = self.blobs.kept_uploads(grace).await.map_err(io_error)?;
        let known = self.db.known_uploads(&kept).await.map_err(db_error)?;
        let mut orphans = 0;
        for id in kept.iter().filter(|id| !known.contains(id)) {
            self.remove_parts(id).await;
            orphans += 1;
        }
        Ok(forgotten + orphans)
    }

    /// Moves the upload's expiry, and its reservation's, a lifetime on.
    async fn keep_upload(&self, id: &str) -> Result<(), CoreError> {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(UPLOAD_LIFETIME).unwrap_or_default();
        self.db
            .keep_upload(id, now.timestamp_millis(), expires_at.timestamp_millis())
            .await
            .map_err(db_error)
    }
}
