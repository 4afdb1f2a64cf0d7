//! Images: who may see them, and how bytes become a record.

use app::error::CoreError;
use app::model::{image_path, Image, ImageName, ImagePage, Viewer};
use app::query::{Condition, Field, Op, Query, Value};
use bytes::Bytes;
use chrono::Utc;
use futures_util::Stream;

use super::{db_error, inspect, io_error, Core};
use crate::blob::IngestError;
use crate::store::NewImage;

/// What the uploader says about a file; everything else is read from its bytes.
#[derive(Debug, Clone, Default)]
pub struct UploadMeta {
    pub file_name: String,
    pub label: String,
    pub public: bool,
}

/// The records a viewer may read: public ones, their own, or all for admins.
fn visible_to(viewer: &Viewer) -> Option<Condition> {
    let public = Condition::Compare {
        field: Field::Public,
        op: Op::Eq,
        value: Value::Bool(true),
    };
    match viewer.principal() {
        _ if viewer.is_admin() => None,
        Some(user) => Some(Condition::Any(vec![
            public,
            Condition::Compare {
                field: Field::OwnerId,
                op: Op::Eq,
                value: Value::Int(user.id),
            },
        ])),
        None => Some(public),
    }
}

/// Whether the viewer may read this record.
pub fn can_read(viewer: &Viewer, image: &Image) -> bool {
    image.public
        || viewer.is_admin()
        || (image.owner_id.is_some() && image.owner_id == viewer.user_id())
}

impl Core {
    pub async fn list_images(&self, viewer: &Viewer, query: Query) -> Result<ImagePage, CoreError> {
        let query = match visible_to(viewer) {
            Some(visibility) => query.filter(visibility),
            None => query,
        };
        let (rows, total) = self.db.list_images(&query).await.map_err(db_error)?;
        Ok(ImagePage {
            items: rows
                .into_iter()
                .map(Image::try_from)
                .collect::<Result<_, _>>()?,
            total: total.max(0) as u64,
            offset: query.offset,
            limit: query.limit,
        })
    }

    /// One record; a record the viewer may not read does not exist for them.
    pub async fn get_image(&self, viewer: &Viewer, id: i64) -> Result<Image, CoreError> {
        let row = self.db.image(id).await.map_err(db_error)?;
        match row.map(Image::try_from).transpose()? {
            Some(image) if can_read(viewer, &image) => Ok(image),
            _ => Err(CoreError::not_found(format!("image {id}"))),
        }
    }

    /// Streams an upload into the blob store, inspects it and records it.
    /// Nothing is recorded unless the bytes are safely stored and acceptable.
    pub async fn upload<S, E>(
        &self,
        viewer: &Viewer,
        meta: UploadMeta,
        body: S,
    ) -> Result<Image, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let user = viewer.require_user()?;
        let name = ImageName::parse(&meta.file_name)?;
        if meta.public && !viewer.is_admin() {
            return Err(CoreError::Forbidden(
                "only administrators publish public images".into(),
            ));
        }
        let mut limit = self.limits.max_upload_bytes;
        if let Some(quota) = self.limits.user_quota_bytes {
            let used = self
                .db
                .bytes_owned_by(user.id)
                .await
                .map_err(db_error)?
                .max(0) as u64;
            if used >= quota {
                return Err(CoreError::TooLarge(format!(
                    "your quota of {quota} bytes is used up"
                )));
            }
            limit = limit.min(quota - used);
        }

        let stored = self
            .blobs
            .ingest(body, limit)
            .await
            .map_err(|error| match error {
                IngestError::TooLarge { limit } => CoreError::TooLarge(format!(
                    "the file is larger than the {limit} bytes you may upload"
                )),
                IngestError::Body(reason) => {
                    CoreError::invalid(format!("the upload was interrupted: {reason}"))
                }
                IngestError::Io(error) => io_error(error),
            })?;

        let recorded = async {
            let inspection = inspect::inspect(&stored.head)?;
            let folder = user.username.clone();
            let new = NewImage {
                kind: inspection.format.kind().as_str(),
                path: image_path(&self.limits.data_store, &folder, name.as_str()),
                name: name.into_inner(),
                label: meta.label.trim().to_owned(),
                folder,
                data_store: self.limits.data_store.clone(),
                public: meta.public,
                owner_id: Some(user.id),
                size: Some(stored.size as i64),
                sha256: Some(stored.sha256.clone()),
                format: Some(inspection.format.as_str()),
                virtual_size: inspection.virtual_size,
                now: Utc::now(),
            };
            self.db.insert_image(&new).await.map_err(db_error)
        }
        .await;
        match recorded {
            Ok(id) => self.get_image(viewer, id).await,
            Err(error) => {
                if stored.newly_stored {
                    self.blobs.remove(&stored.sha256).await.map_err(io_error)?;
                }
                Err(error)
            }
        }
    }

    /// The record and an open handle on its bytes, for a download.
    pub async fn open_content(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<(Image, tokio::fs::File, u64), CoreError> {
        let image = self.get_image(viewer, id).await?;
        let Some(sha256) = image.sha256.as_deref() else {
            return Err(CoreError::not_found(format!("the file of image {id}")));
        };
        let (file, length) = self.blobs.open_blob(sha256).await.map_err(io_error)?;
        Ok((image, file, length))
    }
}
