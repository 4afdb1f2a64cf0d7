//! Images: who may see them, and how bytes become a record.

use app::error::CoreError;
use app::model::{
    image_path, Image, ImageEdit, ImageLink, ImageName, ImagePage, Principal, Viewer,
};
use app::query::{Condition, Field, Op, Query, Value};
use bytes::Bytes;
use chrono::Utc;
use futures_util::Stream;

use super::blobs::{Attach, Landing};
use super::inspect::{self, Inspection};
use super::resumable::Completion;
use super::{db_error, io_error, Core};
use crate::blob::{Blob, IngestError, Staged};
use crate::store::{DetailsUpdate, NewImage};

/// What the ingest made of an upload's bytes: the staged blob, and the
/// inspector's verdict.
pub(super) type Ingested = (Staged, Result<Inspection, String>);

/// An upload's bytes: a body to ingest now, or bytes a resumable upload's
/// ingest took in as its chunks arrived, with the claim on its completion.
pub(super) enum Source<S> {
    Body(S),
    Ingested(Box<Ingested>, Completion),
}

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

/// Whether the viewer may read a record with this visibility.
fn may_read(viewer: &Viewer, public: bool, owner_id: Option<i64>) -> bool {
    public || viewer.is_admin() || (owner_id.is_some() && owner_id == viewer.user_id())
}

/// A published image is what an administrator approved: its owner may
/// describe it, or delete it, but neither rename it nor replace its bytes
/// (everyone would download another file under the approved record).
pub(super) fn published_stays(viewer: &Viewer, image: &Image) -> Result<(), CoreError> {
    if image.public && !viewer.is_admin() {
        return Err(CoreError::Forbidden(format!(
            "image {} is published: only an administrator renames it or replaces its file \
             (ask one to withdraw it first)",
            image.id
        )));
    }
    Ok(())
}

/// Whether the viewer may read this record.
pub fn can_read(viewer: &Viewer, image: &Image) -> bool {
    may_read(viewer, image.public, image.owner_id)
}

/// A failed ingest, as the uploader should hear it.
pub(super) fn ingest_error(error: IngestError) -> CoreError {
    match error {
        IngestError::TooLarge { limit } => CoreError::TooLarge(format!(
            "the file is larger than the {limit} bytes you may add"
        )),
        IngestError::OverQuota { quota } => CoreError::TooLarge(format!(
            "the file does not fit in what is left of your quota of {quota} bytes"
        )),
        IngestError::Body(reason) => {
            CoreError::invalid(format!("reading the bytes failed: {reason}"))
        }
        IngestError::Io(error) => io_error(error),
    }
}

/// A failed query: a pattern PostgreSQL refuses is the caller's error.
pub(super) fn query_error(error: sqlx::Error) -> CoreError {
    const INVALID_REGULAR_EXPRESSION: &str = "2201B";
    match error.as_database_error().and_then(|db| db.code()) {
        Some(code) if code == INVALID_REGULAR_EXPRESSION => {
            CoreError::invalid("invalid regular expression")
        }
        _ => db_error(error),
    }
}

impl Core {
    pub async fn list_images(&self, viewer: &Viewer, query: Query) -> Result<ImagePage, CoreError> {
        super::query_bounds::check_query(&query.condition, &query.sort)?;
        let query = match visible_to(viewer) {
            Some(visibility) => query.filter(visibility),
            None => query,
        };
        let (rows, total) = self.db.list_images(&query).await.map_err(query_error)?;
        let mut items = rows
            .into_iter()
            .map(Image::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.attach_links(viewer, &mut items).await?;
        Ok(ImagePage {
            items,
            total: total.max(0) as u64,
            offset: query.offset,
            limit: query.limit,
        })
    }

    /// The distinct set values of `field` among the images the viewer may
    /// read that match `condition`: one page, and how many there are.
    pub async fn distinct_values(
        &self,
        viewer: &Viewer,
        field: Field,
        condition: Condition,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<Value>, u64), CoreError> {
        super::query_bounds::check_query(&condition, &[])?;
        let condition = match visible_to(viewer) {
            Some(visibility) => condition.and(visibility),
            None => condition,
        };
        let limit = limit.clamp(1, app::query::MAX_PAGE);
        let (values, total) = self
            .db
            .distinct_values(field, &condition, limit, offset)
            .await
            .map_err(query_error)?;
        Ok((values, total.max(0) as u64))
    }

    /// Fills in which images each hypervisor image can run, for a whole page
    /// in one query, leaving out those the viewer may not read.
    pub(super) async fn attach_links(
        &self,
        viewer: &Viewer,
        images: &mut [Image],
    ) -> Result<(), CoreError> {
        let hypervisors: Vec<i64> = images
            .iter()
            .filter(|image| image.mws.hypervisor)
            .map(|image| image.id)
            .collect();
        if hypervisors.is_empty() {
            return Ok(());
        }
        let links = self
            .db
            .virtualized_links(&hypervisors)
            .await
            .map_err(db_error)?;
        for image in images.iter_mut().filter(|image| image.mws.hypervisor) {
            image.mws.virtualized_images = links
                .iter()
                .filter(|link| link.hypervisor_id == image.id)
                .filter(|link| may_read(viewer, link.public, link.owner_id))
                .map(|link| ImageLink {
                    id: link.id,
                    name: link.name.clone(),
                })
                .collect();
        }
        Ok(())
    }

    /// One record; a record the viewer may not read does not exist for them.
    pub async fn get_image(&self, viewer: &Viewer, id: i64) -> Result<Image, CoreError> {
        let row = self.db.image(id).await.map_err(db_error)?;
        match row.map(Image::try_from).transpose()? {
            Some(mut image) if can_read(viewer, &image) => {
                self.attach_links(viewer, std::slice::from_mut(&mut image))
                    .await?;
                Ok(image)
            }
            _ => Err(CoreError::not_found(format!("image {id}"))),
        }
    }

    /// Deletes a record its owner or an admin may change, and its bytes when
    /// no other record shares them.
    pub async fn delete_image(&self, viewer: &Viewer, id: i64) -> Result<(), CoreError> {
        viewer.require_user()?;
        let image = self.get_image(viewer, id).await?;
        if !image.writable_by(viewer) {
            return Err(CoreError::Forbidden(format!(
                "only the owner or an administrator may delete image {id}"
            )));
        }
        let Some(sha256) = self.db.delete_image(id).await.map_err(db_error)? else {
            return Err(CoreError::not_found(format!("image {id}")));
        };
        if let Some(sha256) = sha256 {
            self.release_blob(&sha256).await;
        }
        Ok(())
    }

    /// Renames, relabels, describes (and, for an admin, publishes or
    /// withdraws) an image from its page. `edit.version` is the version
    /// the editor saw: if anyone changed the record since, nothing is
    /// written and the answer is a conflict, so that two editors never
    /// overwrite each other silently.
    pub async fn edit_image(
        &self,
        viewer: &Viewer,
        id: i64,
        edit: ImageEdit,
    ) -> Result<Image, CoreError> {
        viewer.require_user()?;
        let edit = edit.checked()?;
        let current = self.get_image(viewer, id).await?;
        if !current.writable_by(viewer) {
            return Err(CoreError::Forbidden(format!(
                "only the owner or an administrator may change image {id}"
            )));
        }
        let stale = || {
            CoreError::Conflict(format!(
                "image {id} was changed by someone else since you opened it (your copy is \
                 version {}); reload the page to see the changes, then edit again",
                edit.version
            ))
        };
        if edit.version != current.version {
            return Err(stale());
        }
        let public = edit.public.unwrap_or(current.public);
        if public != current.public && !viewer.is_admin() {
            return Err(CoreError::Forbidden(
                "only administrators make images public or private".into(),
            ));
        }
        if edit.name != current.name && current.data_store == self.limits.personal_data_store {
            return Err(CoreError::invalid(
                "an image synced from a personal store is renamed by renaming its file",
            ));
        }
        if edit.name != current.name {
            published_stays(viewer, &current)?;
            super::inspect::check_renamed(&edit.name, &current)?;
        }
        let update = DetailsUpdate {
            id,
            expected_version: edit.version,
            path: image_path(&current.data_store, &current.folder, &edit.name),
            name: edit.name,
            label: edit.label,
            description: edit.description,
            public,
            now: Utc::now(),
        };
        if !self.db.update_details(&update).await.map_err(db_error)? {
            // Changed (or deleted) between the read and the write.
            return Err(stale());
        }
        self.get_image(viewer, id).await
    }

    /// Streams an upload into the blob store, inspects it and records it.
    /// Nothing is recorded unless the bytes are safely stored and acceptable.
    /// `at_most` is a length the body cannot pass, when the request gave one.
    pub async fn upload<S, E>(
        &self,
        viewer: &Viewer,
        meta: UploadMeta,
        body: S,
        at_most: Option<u64>,
    ) -> Result<Image, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let user = viewer.require_user()?;
        let allowance = self.upload_allowance(Some(user.id)).at_most(at_most);
        self.upload_within(viewer, meta, Source::Body(body), allowance)
            .await
    }

    /// Runs an upload's bytes through the one ingest path (hashed, staged,
    /// inspected), or takes what a resumable upload's ingest made of them
    /// as they arrived; a file the inspector refuses is refused here.
    /// A body sent by `uploader` takes one of their upload places first.
    /// Bytes a resumable upload took in come with its completion, which
    /// lands with the record.
    pub(super) async fn ingest_source<S, E>(
        &self,
        uploader: &Principal,
        source: Source<S>,
        allowance: &mut super::UploadAllowance<'_>,
    ) -> Result<(Staged, Inspection, Option<Completion>), CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let ((staged, inspection), completion) = match source {
            Source::Body(body) => {
                let _share = self.upload_shares.take(uploader.id)?;
                let ingested = self
                    .blobs
                    .ingest(body, allowance, |reader| inspect::inspect(reader))
                    .await
                    .map_err(ingest_error)?;
                (ingested, None)
            }
            Source::Ingested(ingested, completion) => (*ingested, Some(completion)),
        };
        let inspection = inspection.map_err(Inspection::refused)?;
        Ok((staged, inspection, completion))
    }

    /// [`Core::upload`] within room already promised (a resumable upload's
    /// reservation).
    pub(super) async fn upload_within<S, E>(
        &self,
        viewer: &Viewer,
        meta: UploadMeta,
        source: Source<S>,
        mut allowance: super::UploadAllowance<'_>,
    ) -> Result<Image, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let user = viewer.require_user()?;
        let name = ImageName::parse(&meta.file_name)?;
        app::model::plain_text("label", &meta.label)?;
        if meta.public && !viewer.is_admin() {
            return Err(CoreError::Forbidden(
                "only administrators publish public images".into(),
            ));
        }
        // Checked before the bytes are sent. A resumable upload was checked
        // as it began, and completes whatever the count is now: refused
        // here, its bytes would be read back at each retry of its
        // completion, and a tus client takes the upload it finds complete
        // for a success (an account has at most 50 open, so it passes the
        // count by no more).
        let images_at_most = match &source {
            Source::Body(_) => {
                self.check_room_for_image(user).await?;
                self.images_at_most(user)
            }
            Source::Ingested(..) => None,
        };
        let recorded = async {
            let (staged, inspection, completion) =
                self.ingest_source(user, source, &mut allowance).await?;
            inspection.check_named(name.as_str())?;
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
                owner_images_at_most: images_at_most,
                size: Some(staged.size as i64),
                sha256: Some(staged.sha256.clone()),
                format: Some(inspection.format.as_str()),
                virtual_size: inspection.virtual_size,
                now: Utc::now(),
                provisioning: None,
                virtualized: Vec::new(),
                vice: None,
                inspection: inspection.attributes(),
                guest_os: inspection.guest_os().map(str::to_owned),
            };
            let landing = completion
                .as_ref()
                .map_or(Landing::Alone, Landing::Completing);
            let lets_go = allowance.take_for_landing();
            self.attach_blob(staged, Attach::Insert(&new), landing, lets_go)
                .await
        }
        .await;
        // Recorded or not, the bytes no longer need a reservation.
        allowance.release().await;
        self.get_image(viewer, recorded?).await
    }

    /// What a user holds against their quota now, in bytes.
    pub async fn quota_usage(&self, user_id: i64) -> Result<u64, CoreError> {
        let recorded = self
            .db
            .quota_usage(
                user_id,
                &self.limits.personal_data_store,
                Utc::now().timestamp_millis(),
            )
            .await
            .map_err(db_error)?;
        let store = self
            .personal_store_bytes(user_id)
            .await
            .map_err(ingest_error)?;
        Ok((recorded.max(0) as u64).saturating_add(store))
    }

    /// The record and an open handle on its bytes, for a download.
    pub async fn open_content(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<(Image, Box<dyn Blob>), CoreError> {
        let image = self.get_image(viewer, id).await?;
        let Some(sha256) = image.sha256.as_deref() else {
            return Err(CoreError::not_found(format!("the file of image {id}")));
        };
        let copy = self.published_copy(sha256).await?;
        let blob = self.blobs.open_blob(&copy).await.map_err(io_error)?;
        Ok((image, blob))
    }
}
