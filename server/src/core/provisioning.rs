//! Provisioning images (what MWS creates and edits): metadata-only records
//! owned by their creator, found by id or name, changed under optimistic
//! concurrency on `version`.

use app::error::CoreError;
use app::model::{
    image_path, Image, ImageKind, ImageRef, ProvisioningDraft, ProvisioningSpec, Viewer,
};
use app::query::{Condition, Direction, Field, Op, Query, Value};
use chrono::Utc;

use super::{db_error, Core};
use crate::store::{NameScope, NewImage, ProvisioningUpdate};

/// How often an update without a `version` is recomputed when another
/// writer got in first, before giving up with a conflict.
const UNVERSIONED_RETRIES: usize = 3;

/// The stored record as a draft, so that an update can be laid over it.
fn draft_of(image: &Image) -> ProvisioningDraft {
    let mws = &image.mws;
    ProvisioningDraft {
        name: Some(image.name.clone()),
        os_type: mws.os_type.clone(),
        hypervisor: Some(mws.hypervisor),
        hypervisor_type: Some(mws.hypervisor_type.clone()),
        supports_physical_machine: Some(mws.supports_physical_machine),
        supports_virtual_machine: Some(mws.supports_virtual_machine),
        template_name: Some(mws.template_name.clone()),
        provisioning_type: Some(mws.provisioning_type.clone()),
        active: Some(mws.active),
        features: Some(mws.features.clone()),
        extensions: Some(mws.extensions.clone()),
        virtualized_images: Some(
            mws.virtualized_images
                .iter()
                .map(|link| ImageRef::Id(link.id.to_string()))
                .collect(),
        ),
    }
}

impl Core {
    /// The first image of this name (lowest id) the viewer may read.
    async fn image_named(&self, viewer: &Viewer, name: &str) -> Result<Option<Image>, CoreError> {
        let query = Query::new(1)
            .filter(Condition::Compare {
                field: Field::Name,
                op: Op::Eq,
                value: Value::Text(name.to_owned()),
            })
            .sort_by(Field::Id, Direction::Asc);
        Ok(self
            .list_images(viewer, query)
            .await?
            .items
            .into_iter()
            .next())
    }

    /// An image by id, or else by name: MWS addresses images either way.
    pub async fn find_image(&self, viewer: &Viewer, key: &str) -> Result<Image, CoreError> {
        if let Ok(id) = key.parse::<i64>() {
            match self.get_image(viewer, id).await {
                Err(CoreError::NotFound(_)) => {}
                found => return found,
            }
        }
        self.image_named(viewer, key)
            .await?
            .ok_or_else(|| CoreError::not_found(format!("image '{key}'")))
    }

    /// The ids behind `virtualizedImages`, each an image the viewer may read
    /// (at most [`MAX_VIRTUALIZED_IMAGES`](app::model::MAX_VIRTUALIZED_IMAGES)
    /// references, as parsed; each looked up once).
    async fn resolve_refs(
        &self,
        viewer: &Viewer,
        refs: &[ImageRef],
        own_id: Option<i64>,
    ) -> Result<Vec<i64>, CoreError> {
        let mut ids = Vec::with_capacity(refs.len());
        for (at, reference) in refs.iter().enumerate() {
            if refs[..at].contains(reference) {
                continue;
            }
            let found = match reference {
                ImageRef::Id(id) => match id.parse::<i64>() {
                    Ok(id) => match self.get_image(viewer, id).await {
                        Ok(image) => Some(image),
                        Err(CoreError::NotFound(_)) => None,
                        Err(error) => return Err(error),
                    },
                    Err(_) => None,
                },
                ImageRef::Name(name) => self.image_named(viewer, name).await?,
            };
            let image = found.ok_or_else(|| {
                let what = match reference {
                    ImageRef::Id(id) => format!("id '{id}'"),
                    ImageRef::Name(name) => format!("name '{name}'"),
                };
                CoreError::invalid(format!("virtualizedImages: no image with {what}"))
            })?;
            if Some(image.id) == own_id {
                return Err(CoreError::invalid(
                    "virtualizedImages: an image cannot virtualize itself",
                ));
            }
            if !ids.contains(&image.id) {
                ids.push(image.id);
            }
        }
        Ok(ids)
    }

    /// Refuses a name another readable image already has, before a rename
    /// is worked out. The store checks again as it writes (see
    /// [`name_scope`]), which is what holds against a create or rename
    /// landing meanwhile; a create relies on that check alone.
    async fn check_name_free(
        &self,
        viewer: &Viewer,
        name: &str,
        own_id: Option<i64>,
    ) -> Result<(), CoreError> {
        match self.image_named(viewer, name).await? {
            Some(other) if Some(other.id) != own_id => Err(name_taken(name)),
            _ => Ok(()),
        }
    }

    /// Creates a metadata-only provisioning image owned by the caller.
    pub async fn create_provisioning_image(
        &self,
        viewer: &Viewer,
        draft: ProvisioningDraft,
    ) -> Result<Image, CoreError> {
        let user = viewer.require_user()?;
        let spec = ProvisioningSpec::parse(draft)?;
        let virtualized = self
            .resolve_refs(viewer, &spec.virtualized_images, None)
            .await?;
        let folder = user.username.clone();
        let new = NewImage {
            kind: ImageKind::Definition.as_str(),
            name: spec.name.clone(),
            label: String::new(),
            path: image_path(&self.limits.data_store, &folder, &spec.name),
            folder,
            data_store: self.limits.data_store.clone(),
            public: false,
            owner_id: Some(user.id),
            owner_images_at_most: self.images_at_most(user),
            size: None,
            sha256: None,
            format: None,
            virtual_size: None,
            now: Utc::now(),
            provisioning: Some(spec),
            virtualized,
            vice: None,
            inspection: Default::default(),
            guest_os: None,
        };
        // The name is checked as the record is written, in one statement, so
        // that two creates of one name at once cannot both find it free.
        let inserted = self
            .db
            .insert_image_if_name_free(&new, Some(name_scope(viewer)))
            .await
            .map_err(db_error)?;
        let Some(mut row) = inserted else {
            return Err(self.refused_image(user, || name_taken(&new.name)).await);
        };
        // The answer is the row as stored, not read back: its owner is the
        // caller.
        row.owner = Some(user.username.clone());
        let mut image = Image::try_from(row)?;
        self.attach_links(viewer, std::slice::from_mut(&mut image))
            .await?;
        Ok(image)
    }

    /// Lays `draft` over the image `key` and stores the result if it obeys
    /// every rule. With `expected_version`, the change applies only to that
    /// version; without, it is recomputed if another writer got in first.
    pub async fn update_provisioning_image(
        &self,
        viewer: &Viewer,
        key: &str,
        draft: ProvisioningDraft,
        expected_version: Option<i64>,
    ) -> Result<Image, CoreError> {
        viewer.require_user()?;
        for _ in 0..UNVERSIONED_RETRIES {
            let current = self.find_image(viewer, key).await?;
            if !current.writable_by(viewer) {
                return Err(CoreError::Forbidden(format!(
                    "only the owner or an administrator may change image '{key}'"
                )));
            }
            let stale = || {
                CoreError::Conflict(format!(
                    "image '{key}' has changed since version {}; read it again",
                    expected_version.unwrap_or_default()
                ))
            };
            if expected_version.is_some_and(|expected| expected != current.version) {
                return Err(stale());
            }
            let links_given = draft.virtualized_images.is_some();
            let spec = ProvisioningSpec::parse_over(draft.clone(), draft_of(&current))?;
            if spec.name != current.name && current.data_store == self.limits.personal_data_store {
                return Err(CoreError::invalid(
                    "an image synced from a personal store is renamed by renaming its file",
                ));
            }
            let renamed = spec.name != current.name;
            if renamed {
                super::images::published_stays(viewer, &current)?;
                super::inspect::check_renamed(&spec.name, &current)?;
                self.check_name_free(viewer, &spec.name, Some(current.id))
                    .await?;
            }
            // Links the body does not mention stay as stored, including
            // those to images this caller cannot see.
            let virtualized = if links_given {
                Some(
                    self.resolve_refs(viewer, &spec.virtualized_images, Some(current.id))
                        .await?,
                )
            } else {
                None
            };
            let update = ProvisioningUpdate {
                id: current.id,
                expected_version: current.version,
                path: image_path(&current.data_store, &current.folder, &spec.name),
                spec,
                virtualized,
                now: Utc::now(),
                // Checked again as the change is written: an image created
                // or renamed since the check above stops it.
                unique_name: renamed.then(|| name_scope(viewer)),
            };
            if self
                .db
                .update_provisioning(&update)
                .await
                .map_err(db_error)?
            {
                return self.get_image(viewer, current.id).await;
            }
            if expected_version.is_some() {
                // Not applied: the version moved, or the new name was taken
                // meanwhile, which the caller should hear as such.
                if renamed {
                    self.check_name_free(viewer, &update.spec.name, Some(current.id))
                        .await?;
                }
                return Err(stale());
            }
        }
        Err(CoreError::Conflict(format!(
            "image '{key}' keeps changing under this update; try again"
        )))
    }
}

/// Whose images a name must not repeat for this caller: those they can read
/// (as `images::visible_to` has it), since MWS finds an image by name.
fn name_scope(viewer: &Viewer) -> NameScope {
    match viewer.user_id() {
        Some(user_id) if !viewer.is_admin() => NameScope::ReadableBy(user_id),
        // Administrators read every image; no one else writes.
        _ => NameScope::Everyone,
    }
}

fn name_taken(name: &str) -> CoreError {
    CoreError::Conflict(format!("an image named '{name}' already exists"))
}
