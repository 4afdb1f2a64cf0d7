//! The most images one account may own (`--user-max-images`): records
//! cost no bytes of a quota when they have none (MWS and ViCE create them
//! by the thousand a second), so without a count one account could fill
//! the database. Administrators, who make the accounts, are not counted,
//! as Glance's `image_count_total` limits a project, not the cloud's admin.
//!
//! The insert itself refuses a record past the limit (it reads the owner's
//! count, kept by triggers: `image_counts`); the check before the work is
//! so that an upload is refused before its bytes are sent, not after. A
//! resumable upload is checked as it begins, and then completes.

use app::model::{Principal, Role};

use super::{db_error, Core, CoreError};

impl Core {
    /// The most images `owner` may own, `None` when they are not limited.
    pub(super) fn images_at_most(&self, owner: &Principal) -> Option<i64> {
        (owner.role != Role::Admin)
            .then(|| i64::try_from(self.limits.max_user_images).unwrap_or(i64::MAX))
    }

    /// Refuses, before any work, a new image of `owner`'s when they own as
    /// many as they may.
    pub(super) async fn check_room_for_image(&self, owner: &Principal) -> Result<(), CoreError> {
        match self.images_at_most(owner) {
            Some(at_most) => {
                let owned = self.db.images_owned(owner.id).await.map_err(db_error)?;
                if owned >= at_most {
                    Err(too_many_images(Some(at_most)))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Why an insert of `owner`'s image that stored nothing did not: the
    /// count, when they own as many as they may, else `otherwise` (the
    /// name rule).
    pub(super) async fn refused_image(
        &self,
        owner: &Principal,
        otherwise: impl FnOnce() -> CoreError,
    ) -> CoreError {
        match self.check_room_for_image(owner).await {
            Ok(()) => otherwise(),
            Err(refused) => refused,
        }
    }
}

/// The refusal of an image past the most one account may own (`at_most`,
/// when the caller knows it): a conflict with what the account holds, which
/// its owner can change, as the other counts of what one account keeps are
/// (environments, API keys).
pub(super) fn too_many_images(at_most: impl Into<Option<i64>>) -> CoreError {
    let owned = match at_most.into() {
        Some(at_most) => format!("{at_most} images"),
        None => "as many images as you may".into(),
    };
    CoreError::Conflict(format!(
        "you own {owned}, the most one account may; delete some to add more"
    ))
}
