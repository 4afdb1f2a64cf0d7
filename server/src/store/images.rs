//! Image records.

use app::model::{InspectionAttributes, ProvisioningSpec, ViceImageSpec};
use app::query::{Condition, Field, FieldType, Value};
use chrono::{DateTime, Utc};

use super::rows::{from_row_by_name, ImageRow};
use super::sql::{self, IMAGE_SELECT};
use super::tx::LockName;
use super::{bind_args, with_pool, Db, Pool};

/// A record about to be inserted.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub kind: &'static str,
    pub name: String,
    pub label: String,
    pub folder: String,
    pub data_store: String,
    pub path: String,
    pub public: bool,
    pub owner_id: Option<i64>,
    /// The most images the owner may hold, this one counted: the insert
    /// stores nothing if they hold as many already. `None`: no limit.
    pub owner_images_at_most: Option<i64>,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub format: Option<&'static str>,
    pub virtual_size: Option<i64>,
    pub now: DateTime<Utc>,
    /// MWS attributes, for records created as provisioning images.
    pub provisioning: Option<ProvisioningSpec>,
    /// Ids of the images a hypervisor image can run.
    pub virtualized: Vec<i64>,
    /// ViCE attributes, for records created through ViCE.
    pub vice: Option<ViceImageSpec>,
    /// What inspecting the bytes found.
    pub inspection: InspectionAttributes,
    /// The guest OS an OVF descriptor names (stored as the MWS `osType`
    /// unless MWS attributes say otherwise).
    pub guest_os: Option<String>,
}

/// Whose images a record's name must not repeat. MWS addresses an image by
/// id or by name, so no two images one caller can read may share a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameScope {
    /// Every image: what an administrator reads.
    Everyone,
    /// The public images and this user's own: what a user reads.
    ReadableBy(i64),
}

impl NameScope {
    /// The scope as the guard's three parameters bind it: whether there is
    /// a guard, whether it spans every image, and whose own images it spans.
    pub(super) fn binds(scope: Option<Self>) -> (bool, bool, Option<i64>) {
        match scope {
            Some(Self::Everyone) => (true, true, None),
            Some(Self::ReadableBy(user_id)) => (true, false, Some(user_id)),
            None => (false, false, None),
        }
    }
}

/// The id of a record inserted with no name rule: `None` when its owner
/// holds as many images as they may.
pub(super) fn inserted_id(row: Option<ImageRow>) -> Option<i64> {
    row.map(|row| row.id)
}

/// The ViCE columns of a record, ready to bind.
pub(super) struct ViceColumns {
    pub(super) title: Option<String>,
    pub(super) image_type: Option<&'static str>,
    pub(super) imported: bool,
    pub(super) origin_environment: Option<String>,
    pub(super) environment_ref: Option<String>,
    pub(super) specifics: Option<String>,
}

impl ViceColumns {
    pub(super) fn of(spec: Option<&ViceImageSpec>) -> Self {
        match spec {
            None => Self {
                title: None,
                image_type: None,
                imported: false,
                origin_environment: None,
                environment_ref: None,
                specifics: None,
            },
            Some(spec) => Self {
                title: Some(spec.title.clone()),
                image_type: Some(spec.image_type.as_str()),
                imported: spec.imported,
                origin_environment: spec.origin_environment.clone(),
                environment_ref: spec.environment_reference.clone(),
                specifics: Some(spec.specifics.to_string()),
            },
        }
    }
}

/// The MWS columns of a record, ready to bind; an upload's are the defaults.
pub(super) struct ProvisioningColumns {
    pub(super) os_type: Option<String>,
    pub(super) hypervisor: bool,
    pub(super) hypervisor_type: Option<String>,
    pub(super) supports_physical: bool,
    pub(super) supports_virtual: bool,
    pub(super) template_name: Option<String>,
    pub(super) provisioning_type: Option<&'static str>,
    pub(super) active: bool,
    pub(super) features: String,
    pub(super) extensions: String,
}

impl ProvisioningColumns {
    pub(super) fn of(spec: Option<&ProvisioningSpec>) -> Self {
        let Some(spec) = spec else {
            return Self {
                os_type: None,
                hypervisor: false,
                hypervisor_type: None,
                supports_physical: false,
                supports_virtual: false,
                template_name: None,
                provisioning_type: None,
                active: true,
                features: "[]".into(),
                extensions: "{}".into(),
            };
        };
        Self {
            os_type: Some(spec.os_type.clone()),
            hypervisor: spec.hypervisor,
            hypervisor_type: spec.hypervisor_type.clone(),
            supports_physical: spec.supports_physical_machine,
            supports_virtual: spec.supports_virtual_machine,
            template_name: spec.template_name.clone(),
            provisioning_type: Some(spec.provisioning_type.as_str()),
            active: spec.active,
            // Serializing strings and JSON maps cannot fail.
            features: serde_json::to_string(&spec.features).unwrap_or_else(|_| "[]".into()),
            extensions: serde_json::to_string(&spec.extensions).unwrap_or_else(|_| "{}".into()),
        }
    }
}

/// A change to a record's name and MWS attributes.
#[derive(Debug, Clone)]
pub struct ProvisioningUpdate {
    pub id: i64,
    /// The version the change was computed from; the update applies only if
    /// the record still has it.
    pub expected_version: i64,
    pub path: String,
    pub spec: ProvisioningSpec,
    /// The new links of a hypervisor image; `None` keeps the stored ones.
    pub virtualized: Option<Vec<i64>>,
    pub now: DateTime<Utc>,
    /// For a rename: whose images the new name must not repeat. The change
    /// does not apply if one of them has it (as if the version had moved).
    pub unique_name: Option<NameScope>,
}

/// A change to what people call and read about a record (its page's edit form).
#[derive(Debug, Clone)]
pub struct DetailsUpdate {
    pub id: i64,
    /// The version the editor saw; the update applies only if the record still has it.
    pub expected_version: i64,
    pub name: String,
    pub path: String,
    pub label: String,
    pub description: String,
    pub public: bool,
    pub now: DateTime<Utc>,
}

/// A hypervisor's link to an image it can run, with what visibility needs.
#[derive(Debug, Clone)]
pub struct LinkRow {
    pub hypervisor_id: i64,
    pub id: i64,
    pub name: String,
    pub public: bool,
    pub owner_id: Option<i64>,
}
from_row_by_name!(LinkRow {
    hypervisor_id,
    id,
    name,
    public,
    owner_id
});

/// `$1, $2, …, $n`, for a list of `n` bound values.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|index| format!("${index}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Db {
    #[tracing::instrument(skip(self), err)]
    pub async fn image(&self, id: i64) -> Result<Option<ImageRow>, sqlx::Error> {
        let text = format!("{IMAGE_SELECT} WHERE i.id = $1");
        with_pool!(self, pool => {
            sqlx::query_as::<_, ImageRow>(&text).bind(id).fetch_optional(pool).await
        })
    }

    /// Inserts a record (and a hypervisor's links) and returns its id;
    /// `None` when its owner holds as many images as they may.
    pub async fn insert_image(&self, new: &NewImage) -> Result<Option<i64>, sqlx::Error> {
        Ok(inserted_id(
            self.insert_image_if_name_free(new, None).await?,
        ))
    }

    /// How many images a user owns.
    #[tracing::instrument(skip(self), err)]
    pub async fn images_owned(&self, user_id: i64) -> Result<i64, sqlx::Error> {
        // PostgreSQL keeps the count in stripes (migration 0032).
        const COUNT: &str =
            "SELECT CAST(COALESCE(SUM(images), 0) AS BIGINT) FROM image_counts WHERE user_id = $1";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(COUNT)
                .bind(user_id)
                .fetch_one(pool)
                .await
        })
    }

    /// Inserts a record (and a hypervisor's links) unless an image `unique`
    /// reads already has its name, or its owner holds as many images as
    /// they may; `None` then, and nothing is stored. The
    /// row is as stored, without the owner's name (see
    /// [`super::Tx::insert_image_if_name_free`]).
    #[tracing::instrument(skip_all, err)]
    pub async fn insert_image_if_name_free(
        &self,
        new: &NewImage,
        unique: Option<NameScope>,
    ) -> Result<Option<ImageRow>, sqlx::Error> {
        // Committed with whatever other records are being created now.
        if let Some(inserts) = &self.inserts {
            if let Some(inserted) = inserts.insert(new.clone(), unique).await {
                return inserted;
            }
            // Its group failed before its commit (SQLite's writer leaves
            // such records to their callers), or the writer is gone or
            // panicked: alone, it fails only if it is itself at fault.
        }
        if let (Pool::Postgres(pool), true) = (&self.pool, new.virtualized.is_empty()) {
            return super::tx::insert_alone_on_postgres(pool, new, unique).await;
        }
        let mut tx = self.begin().await?;
        let row = tx.insert_image_if_name_free(new, unique).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Applies a change if the record is still at the version it was
    /// computed from, bumping the version; `false` when it was not.
    #[tracing::instrument(skip_all, fields(id = update.id), err)]
    pub async fn update_provisioning(
        &self,
        update: &ProvisioningUpdate,
    ) -> Result<bool, sqlx::Error> {
        const UPDATE: &str = "UPDATE images SET name = $1, path = $2, os_type = $3, \
             hypervisor = $4, hypervisor_type = $5, supports_physical = $6, \
             supports_virtual = $7, template_name = $8, provisioning_type = $9, active = $10, \
             features = $11, extensions = $12, updated_at = $13, version = version + 1 \
             WHERE id = $14 AND version = $15 \
             AND NOT EXISTS (SELECT 1 FROM images o WHERE $16 AND o.name = $1 AND o.id <> $14 \
             AND ($17 OR o.public OR o.owner_id = $18))";
        let mws = ProvisioningColumns::of(Some(&update.spec));
        let (guarded, everyone, reader) = NameScope::binds(update.unique_name);
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if guarded {
                tx.lock_name(&update.spec.name).await?;
            }
            let changed = sqlx::query(UPDATE)
                .bind(&update.spec.name)
                .bind(&update.path)
                .bind(&mws.os_type)
                .bind(mws.hypervisor)
                .bind(&mws.hypervisor_type)
                .bind(mws.supports_physical)
                .bind(mws.supports_virtual)
                .bind(&mws.template_name)
                .bind(mws.provisioning_type)
                .bind(mws.active)
                .bind(&mws.features)
                .bind(&mws.extensions)
                .bind(update.now)
                .bind(update.id)
                .bind(update.expected_version)
                .bind(guarded)
                .bind(everyone)
                .bind(reader)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed != 1 {
                return Ok(false);
            }
            let Some(virtualized) = &update.virtualized else {
                tx.commit().await?;
                return Ok(true);
            };
            sqlx::query("DELETE FROM image_virtualized WHERE hypervisor_id = $1")
                .bind(update.id)
                .execute(&mut *tx)
                .await?;
            for image_id in virtualized {
                sqlx::query("INSERT INTO image_virtualized (hypervisor_id, image_id) VALUES ($1, $2)")
                    .bind(update.id)
                    .bind(image_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Applies an edit from an image's page if the record is still at
    /// `expected_version`, bumping the version; `false` when it was not.
    #[tracing::instrument(skip_all, fields(id = update.id), err)]
    pub async fn update_details(&self, update: &DetailsUpdate) -> Result<bool, sqlx::Error> {
        const UPDATE: &str = "UPDATE images SET name = $1, path = $2, label = $3, \
             description = $4, public = $5, updated_at = $6, version = version + 1 \
             WHERE id = $7 AND version = $8";
        with_pool!(self, pool => {
            sqlx::query(UPDATE)
                .bind(&update.name)
                .bind(&update.path)
                .bind(&update.label)
                .bind(&update.description)
                .bind(update.public)
                .bind(update.now)
                .bind(update.id)
                .bind(update.expected_version)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Deletes a record; answers whether it existed and the blob it used.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_image(&self, id: i64) -> Result<Option<Option<String>>, sqlx::Error> {
        const DELETE: &str = "DELETE FROM images WHERE id = $1 RETURNING sha256";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, Option<String>>(DELETE)
                .bind(id)
                .fetch_optional(pool)
                .await
        })
    }

    /// The images each of `hypervisor_ids` can run, in one query.
    #[tracing::instrument(skip_all, err)]
    pub async fn virtualized_links(
        &self,
        hypervisor_ids: &[i64],
    ) -> Result<Vec<LinkRow>, sqlx::Error> {
        if hypervisor_ids.is_empty() {
            return Ok(Vec::new());
        }
        let text = format!(
            "SELECT v.hypervisor_id, i.id, i.name, i.public, i.owner_id \
             FROM image_virtualized v JOIN images i ON i.id = v.image_id \
             WHERE v.hypervisor_id IN ({}) ORDER BY v.hypervisor_id, i.id",
            placeholders(hypervisor_ids.len())
        );
        with_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, LinkRow>(&text);
            for id in hypervisor_ids {
                query = query.bind(id);
            }
            query.fetch_all(pool).await
        })
    }

    /// One page of the distinct set values of `field` among the images
    /// matching `condition`, and how many there are in all.
    #[tracing::instrument(skip(self, condition), err)]
    pub async fn distinct_values(
        &self,
        field: Field,
        condition: &Condition,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<Value>, i64), sqlx::Error> {
        let (page, count) = sql::select_distinct(self.backend(), field, condition, limit, offset);
        // On SQLite in the catalog's read lane, as a page of images is: its
        // deadline interrupts a costly scan, and the pool's connections stay
        // free for sign-ins and writes.
        if let Some(reader) = &self.reader {
            return reader
                .read(page.planned_per_values, move |connection| {
                    let snapshot = connection.unchecked_transaction()?;
                    let values = super::reader::rows(&snapshot, &page, |row| {
                        use super::reader::Column;
                        Ok(match field.value_type() {
                            FieldType::Int => Value::Int(Column::read(row, 0)?),
                            FieldType::Text => Value::Text(Column::read(row, 0)?),
                            FieldType::Bool => Value::Bool(Column::read(row, 0)?),
                            FieldType::Time => Value::Time(Column::read(row, 0)?),
                        })
                    })?;
                    let total = super::reader::first_row(&snapshot, &count, |row| row.get(0))?
                        .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                    snapshot.commit()?;
                    Ok((values, total))
                })
                .await;
        }
        with_pool!(self, pool => {
            let values = match field.value_type() {
                FieldType::Int => bind_args!(sqlx::query_scalar::<_, i64>(&page.text), page.args)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(Value::Int)
                    .collect(),
                FieldType::Text => bind_args!(sqlx::query_scalar::<_, String>(&page.text), page.args)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(Value::Text)
                    .collect(),
                FieldType::Bool => bind_args!(sqlx::query_scalar::<_, bool>(&page.text), page.args)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(Value::Bool)
                    .collect(),
                FieldType::Time => {
                    bind_args!(sqlx::query_scalar::<_, DateTime<Utc>>(&page.text), page.args)
                        .fetch_all(pool)
                        .await?
                        .into_iter()
                        .map(Value::Time)
                        .collect()
                }
            };
            let total = bind_args!(sqlx::query_scalar::<_, i64>(&count.text), count.args)
                .fetch_one(pool)
                .await?;
            Ok((values, total))
        })
    }

    /// Replaces a record's ViCE attributes (and the name and format they
    /// decide), bumping its version; `false` when there is no such record
    /// at `version`.
    #[tracing::instrument(skip(self, spec), err)]
    pub async fn update_vice(
        &self,
        id: i64,
        version: i64,
        spec: &ViceImageSpec,
        format: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        const UPDATE: &str = "UPDATE images SET title = $1, vice_image_type = $2, \
             imported = $3, origin_environment = $4, environment_ref = $5, specifics = $6, \
             format = COALESCE(format, $7), updated_at = $8, version = version + 1 \
             WHERE id = $9 AND version = $10";
        let vice = ViceColumns::of(Some(spec));
        with_pool!(self, pool => {
            sqlx::query(UPDATE)
                .bind(&vice.title)
                .bind(vice.image_type)
                .bind(vice.imported)
                .bind(&vice.origin_environment)
                .bind(&vice.environment_ref)
                .bind(&vice.specifics)
                .bind(format)
                .bind(now)
                .bind(id)
                .bind(version)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// How many records the catalog holds.
    #[tracing::instrument(skip(self), err)]
    pub async fn count_images(&self) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM images").fetch_one(pool).await
        })
    }

    /// Bytes held by one user's images, for quotas.
    #[tracing::instrument(skip(self), err)]
    pub async fn bytes_owned_by(&self, owner_id: i64) -> Result<i64, sqlx::Error> {
        const SUM: &str =
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM images WHERE owner_id = $1";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(SUM).bind(owner_id).fetch_one(pool).await
        })
    }

    /// How many records share one blob, so that the last one out removes it.
    #[tracing::instrument(skip(self), err)]
    pub async fn images_with_blob(&self, sha256: &str) -> Result<i64, sqlx::Error> {
        const COUNT: &str = "SELECT COUNT(*) FROM images WHERE sha256 = $1";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(COUNT).bind(sha256).fetch_one(pool).await
        })
    }
}
