//! Execution environments (ViCE): owned by their creator, their password
//! encrypted at rest with ChaCha20-Poly1305 under a key derived from the
//! server key, bound to the owner (associated data), never decrypted for
//! an answer.

use std::collections::{BTreeSet, HashMap};

use app::error::CoreError;
use app::model::{
    Environment, EnvironmentSpec, Layer, ManagementLayerType, Paged, RuntimeTechnologyType, Viewer,
};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::Utc;
use rand::RngCore;

use super::{db_error, Core};
use crate::store::{DeletedEnvironment, EnvironmentColumns, EnvironmentRow};

/// The most environments one user keeps: each list of them, and the image
/// pages that offer them as targets, carries them all.
const ENVIRONMENTS_PER_USER: i64 = 100;

/// Encrypts a password for one owner: hex of nonce and ciphertext.
pub(super) fn seal(key: &[u8; 32], owner: i64, password: &str) -> Result<String, CoreError> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let aad = format!("environment of user {owner}");
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: password.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CoreError::Internal)?;
    Ok(format!("{}{}", hex::encode(nonce), hex::encode(sealed)))
}

/// Decrypts what [`seal`] made, for the job that uses the credentials.
pub(super) fn open(key: &[u8; 32], owner: i64, sealed: &str) -> Result<String, CoreError> {
    let bytes = hex::decode(sealed).map_err(|_| CoreError::Internal)?;
    if bytes.len() < 12 {
        return Err(CoreError::Internal);
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    let aad = format!("environment of user {owner}");
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| {
            tracing::error!("a stored credential does not decrypt (wrong server key?)");
            CoreError::Internal
        })?;
    String::from_utf8(plain).map_err(|_| CoreError::Internal)
}

fn environment_of(row: EnvironmentRow) -> Result<Environment, CoreError> {
    let corrupt = |_| {
        tracing::error!(environment = row.id, "unreadable type in environments");
        CoreError::Internal
    };
    Ok(Environment {
        id: row.id,
        user_id: row.user_id,
        owner: row.owner.clone(),
        title: row.title.clone(),
        management_layer: Layer {
            kind: ManagementLayerType::parse(&row.mgmt_type).map_err(corrupt)?,
            software: row.mgmt_software.clone(),
            version: row.mgmt_version.clone(),
        },
        runtime_technology: Layer {
            kind: RuntimeTechnologyType::parse(&row.rt_type).map_err(corrupt)?,
            software: row.rt_software.clone(),
            version: row.rt_version.clone(),
        },
        location: row.location.clone(),
        username: row.cred_username.clone(),
        has_password: row.cred_password.is_some(),
        specifics: row.cred_specifics.clone(),
    })
}

impl Core {
    fn columns<'a>(spec: &'a EnvironmentSpec, sealed: Option<&'a str>) -> EnvironmentColumns<'a> {
        EnvironmentColumns {
            title: &spec.title,
            mgmt_type: spec.management_layer.kind.as_str(),
            mgmt_software: &spec.management_layer.software,
            mgmt_version: &spec.management_layer.version,
            rt_type: spec.runtime_technology.kind.as_str(),
            rt_software: &spec.runtime_technology.software,
            rt_version: &spec.runtime_technology.version,
            location: &spec.location,
            cred_username: &spec.username,
            cred_password: sealed,
            cred_specifics: &spec.specifics,
        }
    }

    pub async fn create_environment(
        &self,
        viewer: &Viewer,
        spec: EnvironmentSpec,
    ) -> Result<Environment, CoreError> {
        let user = viewer.require_user()?;
        let sealed = spec
            .password
            .as_deref()
            .map(|password| seal(&self.credentials_key, user.id, password))
            .transpose()?;
        let id = self
            .db
            .insert_environment(
                user.id,
                &Self::columns(&spec, sealed.as_deref()),
                ENVIRONMENTS_PER_USER,
                Utc::now(),
            )
            .await
            .map_err(db_error)?
            .ok_or_else(|| {
                CoreError::Conflict(format!(
                    "you have {ENVIRONMENTS_PER_USER} environments; delete one to add another"
                ))
            })?;
        self.environment(viewer, id).await
    }

    /// An environment its owner (or an admin) may see; others get 404.
    pub async fn environment(&self, viewer: &Viewer, id: i64) -> Result<Environment, CoreError> {
        let user = viewer.require_user()?;
        match self.db.environment(id).await.map_err(db_error)? {
            Some(row) if row.user_id == user.id || viewer.is_admin() => environment_of(row),
            _ => Err(CoreError::not_found(format!("environment {id}"))),
        }
    }

    /// The caller's environments (all for an admin), optionally by type.
    pub async fn list_environments(
        &self,
        viewer: &Viewer,
        management: Option<ManagementLayerType>,
        runtime: Option<RuntimeTechnologyType>,
    ) -> Result<Vec<Environment>, CoreError> {
        let user = viewer.require_user()?;
        let owner = (!viewer.is_admin()).then_some(user.id);
        let rows = self
            .db
            .environments(
                owner,
                management.map(ManagementLayerType::as_str),
                runtime.map(RuntimeTechnologyType::as_str),
            )
            .await
            .map_err(db_error)?;
        rows.into_iter().map(environment_of).collect()
    }

    /// Of the environments `ids` names, those the viewer may read (its
    /// own, everyone's for an admin; none for an anonymous viewer), by id,
    /// in one query. At most [`app::query::MAX_PAGE`] ids are looked up.
    pub async fn readable_environments(
        &self,
        viewer: &Viewer,
        ids: impl IntoIterator<Item = i64>,
    ) -> Result<HashMap<i64, Environment>, CoreError> {
        let Some(user) = viewer.principal() else {
            return Ok(HashMap::new());
        };
        let wanted: BTreeSet<i64> = ids.into_iter().collect();
        let wanted: Vec<i64> = wanted
            .into_iter()
            .take(app::query::MAX_PAGE as usize)
            .collect();
        let owner = (!viewer.is_admin()).then_some(user.id);
        let rows = self
            .db
            .environments_among(owner, &wanted)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|row| environment_of(row).map(|environment| (environment.id, environment)))
            .collect()
    }

    /// One page of the viewer's environments (everyone's for an admin), by id.
    pub async fn environments_page(
        &self,
        viewer: &Viewer,
        limit: u64,
        offset: u64,
    ) -> Result<Paged<Environment>, CoreError> {
        let user = viewer.require_user()?;
        let owner = (!viewer.is_admin()).then_some(user.id);
        let limit = limit.clamp(1, app::query::MAX_PAGE);
        let (rows, total) = self
            .db
            .environments_page(owner, limit, offset)
            .await
            .map_err(db_error)?;
        Ok(Paged {
            items: rows
                .into_iter()
                .map(environment_of)
                .collect::<Result<_, _>>()?,
            total: total.max(0) as u64,
            limit,
            offset,
        })
    }

    /// Replaces an environment; a masked or absent password keeps the stored one.
    pub async fn update_environment(
        &self,
        viewer: &Viewer,
        id: i64,
        spec: EnvironmentSpec,
    ) -> Result<Environment, CoreError> {
        let current = self.environment(viewer, id).await?;
        let sealed = spec
            .password
            .as_deref()
            .map(|password| seal(&self.credentials_key, current.user_id, password))
            .transpose()?;
        let updated = self
            .db
            .update_environment(id, &Self::columns(&spec, sealed.as_deref()), Utc::now())
            .await
            .map_err(db_error)?;
        if !updated {
            return Err(CoreError::not_found(format!("environment {id}")));
        }
        self.environment(viewer, id).await
    }

    /// Deletes one of the caller's environments, with its deployments,
    /// unless one of them holds a file in it or is writing one (409): that
    /// file would stay, counted against the quota, with no deployment left
    /// whose deletion removes it.
    pub async fn delete_environment(&self, viewer: &Viewer, id: i64) -> Result<(), CoreError> {
        self.environment(viewer, id).await?;
        match self.db.delete_environment(id).await.map_err(db_error)? {
            DeletedEnvironment::Deleted => Ok(()),
            DeletedEnvironment::HoldsFiles => Err(CoreError::Conflict(format!(
                "environment {id} holds files its deployments wrote, or is being written to: \
                 delete those deployments first (which removes their files)"
            ))),
            DeletedEnvironment::Gone => Err(CoreError::not_found(format!("environment {id}"))),
        }
    }

    /// The stored password of an environment, decrypted, for a job that
    /// must use it. Never for an answer.
    pub async fn environment_password(&self, id: i64) -> Result<Option<String>, CoreError> {
        let Some(row) = self.db.environment(id).await.map_err(db_error)? else {
            return Ok(None);
        };
        row.cred_password
            .as_deref()
            .map(|sealed| open(&self.credentials_key, row.user_id, sealed))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_passwords_open_only_for_their_owner_and_key() {
        let key = [7u8; 32];
        let sealed = seal(&key, 5, "hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, seal(&key, 5, "hunter2").unwrap(), "nonces repeat");
        assert_eq!(open(&key, 5, &sealed).unwrap(), "hunter2");
        assert!(open(&key, 6, &sealed).is_err());
        assert!(open(&[8u8; 32], 5, &sealed).is_err());
        assert!(open(&key, 5, "zz").is_err());
    }
}
