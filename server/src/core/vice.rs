//! ViCE images: records created with the registry's attributes, whose bytes
//! arrive later (or never, for declarative images) through the same ingest
//! pipeline as every upload.

use app::error::CoreError;
use app::model::{
    image_path, ContentType, DiskFormat, Image, ImageKind, ImageName, ViceImageSpec, Viewer,
};
use bytes::Bytes;
use chrono::Utc;
use futures_util::Stream;

use super::blobs::{Attach, Landing};
use super::image_cap::too_many_images;
use super::images::Source;
use super::{db_error, Core};
use crate::store::NewImage;

/// How many times an update is tried on a record that another change
/// moved on under it, before its caller is told to send it again.
const TRIES_IF_CHANGED: usize = 3;

/// The kind of record a content type makes.
fn kind_of(content: Option<ContentType>) -> ImageKind {
    match content.map(ContentType::format) {
        Some(DiskFormat::DockerFile | DiskFormat::Packerfile) => ImageKind::Definition,
        _ => ImageKind::Disk,
    }
}

/// A file name made from a title: what is left after the unsafe characters.
fn name_of(title: &str) -> String {
    let cleaned: String = title
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    ImageName::parse(cleaned.trim_matches('-'))
        .map(ImageName::into_inner)
        .unwrap_or_else(|_| "image".into())
}

impl Core {
    /// Creates a ViCE image owned by the caller, without bytes yet.
    pub async fn create_vice_image(
        &self,
        viewer: &Viewer,
        spec: ViceImageSpec,
    ) -> Result<Image, CoreError> {
        let user = viewer.require_user()?;
        let name = name_of(&spec.title);
        let folder = user.username.clone();
        let new = NewImage {
            kind: kind_of(spec.content_type).as_str(),
            label: spec.title.clone(),
            path: image_path(&self.limits.data_store, &folder, &name),
            name,
            folder,
            data_store: self.limits.data_store.clone(),
            public: false,
            owner_id: Some(user.id),
            owner_images_at_most: self.images_at_most(user),
            size: None,
            sha256: None,
            format: spec.content_type.map(|content| content.format().as_str()),
            virtual_size: None,
            now: Utc::now(),
            provisioning: None,
            virtualized: Vec::new(),
            vice: Some(spec),
            inspection: Default::default(),
            guest_os: None,
        };
        let id = self
            .db
            .insert_image(&new)
            .await
            .map_err(db_error)?
            .ok_or_else(|| too_many_images(new.owner_images_at_most))?;
        self.get_image(viewer, id).await
    }

    /// The image the caller may change: 404 when they cannot see it, 403
    /// when they can see but not change it.
    pub(super) async fn writable_image(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<Image, CoreError> {
        viewer.require_user()?;
        let image = self.get_image(viewer, id).await?;
        if !image.writable_by(viewer) {
            return Err(CoreError::Forbidden(format!(
                "only the owner or an administrator may change image {id}"
            )));
        }
        Ok(image)
    }

    /// An image whose bytes the caller may replace: theirs (or any, for an
    /// administrator), and not a copy of a personal-store file. Such a
    /// copy's bytes are counted as its file's, and a sync keeps the two
    /// alike; other bytes under it would be counted by no quota.
    pub(super) async fn attachable_image(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<Image, CoreError> {
        let image = self.writable_image(viewer, id).await?;
        super::images::published_stays(viewer, &image)?;
        if image.data_store == self.limits.personal_data_store {
            return Err(CoreError::Conflict(format!(
                "image {id} is a copy of {}: change that file in your store and sync it",
                image.path()
            )));
        }
        Ok(image)
    }

    /// Replaces an image's ViCE attributes.
    pub async fn update_vice_image(
        &self,
        viewer: &Viewer,
        id: i64,
        spec: ViceImageSpec,
    ) -> Result<Image, CoreError> {
        let format = spec.content_type.map(|content| content.format().as_str());
        // Checked against the record as it is, and written only if it still
        // is (its version): an image published meanwhile is checked again.
        for _ in 0..TRIES_IF_CHANGED {
            let current = self.writable_image(viewer, id).await?;
            // The title is the name ViCE shows (the name's, if it has none
            // of its own): a published image keeps it.
            let shown = current.vice.title.as_deref().unwrap_or(&current.name);
            if shown != spec.title {
                super::images::published_stays(viewer, &current)?;
            }
            let updated = self
                .db
                .update_vice(id, current.version, &spec, format, Utc::now())
                .await
                .map_err(db_error)?;
            if updated {
                return self.get_image(viewer, id).await;
            }
        }
        Err(CoreError::Conflict(format!(
            "image {id} kept changing while it was being updated; send the change again"
        )))
    }

    /// Streams a file into the blob store and makes it the image's bytes;
    /// nothing changes unless the bytes are stored and acceptable. `at_most`
    /// is a length the body cannot pass, when the request gave one.
    pub async fn attach_file<S, E>(
        &self,
        viewer: &Viewer,
        id: i64,
        body: S,
        at_most: Option<u64>,
    ) -> Result<Image, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let image = self.attachable_image(viewer, id).await?;
        let allowance = self.upload_allowance(image.owner_id).at_most(at_most);
        self.attach_file_within(viewer, id, Source::Body(body), allowance, None)
            .await
    }

    /// [`Core::attach_file`] within room already promised (a resumable
    /// upload's reservation), replacing the bytes the image had when the
    /// upload began, if given, or else those it has now.
    pub(super) async fn attach_file_within<S, E>(
        &self,
        viewer: &Viewer,
        id: i64,
        source: Source<S>,
        mut allowance: super::UploadAllowance<'_>,
        begun_from: Option<&super::resumable::BegunFrom>,
    ) -> Result<Image, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let uploader = viewer.require_user()?;
        let image = self.attachable_image(viewer, id).await?;
        if begun_from.is_some_and(|begun| begun.sha256 != image.sha256) {
            allowance.release().await;
            return Err(CoreError::Conflict(format!(
                "image {id}'s file changed since this upload began: nothing was replaced; \
                 upload it again"
            )));
        }
        let attached = async {
            let (staged, inspection, completion) =
                self.ingest_source(uploader, source, &mut allowance).await?;
            // What the record declared (its content type) before it had bytes.
            inspection.check_declared(image.sha256.is_none().then_some(image.format).flatten())?;
            inspection.check_named(&image.name)?;
            let new_sha256 = staged.sha256.clone();
            self.attach_blob(
                staged,
                Attach::Replace {
                    id,
                    replaces: image.sha256.as_deref(),
                    by_admin: viewer.is_admin(),
                    inspection: &inspection,
                    now: Utc::now(),
                },
                completion
                    .as_ref()
                    .map_or(Landing::Alone, Landing::Completing),
                allowance.take_for_landing(),
            )
            .await?;
            Ok::<_, CoreError>(new_sha256)
        }
        .await;
        // Attached or not, the bytes no longer need a reservation.
        allowance.release().await;
        let new_sha256 = attached?;
        // The bytes it had before, if no other record uses them.
        if let Some(old) = image.sha256.filter(|old| *old != new_sha256) {
            self.release_blob(&old).await;
        }
        self.get_image(viewer, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_make_safe_names() {
        assert_eq!(name_of("Ubuntu 22.04 / server"), "Ubuntu-22.04---server");
        assert_eq!(name_of("../.."), "..-..");
        assert_eq!(name_of("\"\""), "image");
        assert_eq!(
            kind_of(Some(ContentType::Packerfile)),
            ImageKind::Definition
        );
        assert_eq!(kind_of(Some(ContentType::DiskQcow2)), ImageKind::Disk);
    }
}
