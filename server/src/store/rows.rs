//! Rows as the database returns them, and their conversion to core records.

use app::error::CoreError;
use app::model::{
    DiskFormat, Image, ImageKind, InspectionAttributes, MwsAttributes, Principal, Role,
    ViceAttributes,
};
use chrono::{DateTime, Utc};

use super::reader::Column;

/// `sqlx::FromRow` for `$type` on both drivers, each field read from the
/// column of its name, as sqlx's derive reads it (the derive's proc macro
/// is left out of the build: see `migrations.rs`). A `flatten` field is read
/// from the same row as its own type; a `default` field is not read.
macro_rules! from_row_by_name {
    ($type:ident { $($field:ident),* $(,)? }
        $(flatten { $($flat:ident),* $(,)? })?
        $(default { $($skip:ident),* $(,)? })?) => {
        $crate::store::rows::from_row_by_name!(@impl sqlx::sqlite::SqliteRow, $type
            { $($field),* } [$($($flat),*)?] [$($($skip),*)?]);
        $crate::store::rows::from_row_by_name!(@impl sqlx::postgres::PgRow, $type
            { $($field),* } [$($($flat),*)?] [$($($skip),*)?]);
    };
    (@impl $row:ty, $type:ident { $($field:ident),* } [$($flat:ident),*] [$($skip:ident),*]) => {
        impl<'r> sqlx::FromRow<'r, $row> for $type {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok(Self {
                    $($field: row.try_get(stringify!($field))?,)*
                    $($flat: sqlx::FromRow::from_row(row)?,)*
                    $($skip: Default::default(),)*
                })
            }
        }
    };
}
pub(crate) use from_row_by_name;

/// One row of [`super::sql::IMAGE_SELECT`].
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub label: String,
    pub description: String,
    pub folder: String,
    pub data_store: String,
    pub public: bool,
    pub owner_id: Option<i64>,
    pub owner: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub format: Option<String>,
    pub virtual_size: Option<i64>,
    pub version: i64,
    pub os_type: Option<String>,
    pub hypervisor: bool,
    pub hypervisor_type: Option<String>,
    pub supports_physical: bool,
    pub supports_virtual: bool,
    pub template_name: Option<String>,
    pub provisioning_type: Option<String>,
    pub active: bool,
    pub features: String,
    pub extensions: String,
    pub title: Option<String>,
    pub vice_image_type: Option<String>,
    pub imported: bool,
    pub origin_environment: Option<String>,
    pub environment_ref: Option<String>,
    pub specifics: Option<String>,
    pub format_detail: Option<String>,
    pub volume_label: Option<String>,
    pub cpus: Option<i64>,
    pub memory_mib: Option<i64>,
    pub product: Option<String>,
    pub vendor: Option<String>,
    pub product_version: Option<String>,
    /// JSON list of network names.
    pub networks: Option<String>,
}

/// Decodes an image row by position, in the order of
/// [`super::sql::image_column_names`]: a catalog page decodes thousands of
/// values, and looking each one up by name was 6% of its instructions.
macro_rules! image_row_by_position {
    ($row:ty; $($before:ident)*; $($after:ident)*) => {
        impl<'r> sqlx::FromRow<'r, $row> for ImageRow {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                use sqlx::{Column, Row};
                let mut column = 0;
                let mut next = |name: &str| {
                    // Every test's statement is checked against the list.
                    debug_assert!(
                        row.try_column(column).is_ok_and(|found| found.name() == name),
                        "column {column} of an image row is not {name}"
                    );
                    column += 1;
                    column - 1
                };
                // A struct's fields are evaluated in the order written.
                Ok(Self {
                    $($before: row.try_get(next(stringify!($before)))?,)*
                    owner: row.try_get(next("owner"))?,
                    $($after: row.try_get(next(stringify!($after)))?,)*
                })
            }
        }
    };
}
super::sql::image_column_names!(image_row_by_position!(sqlx::sqlite::SqliteRow));
super::sql::image_column_names!(image_row_by_position!(sqlx::postgres::PgRow));

/// The same decoding, from a row of SQLite's catalog reader
/// ([`super::reader`]).
macro_rules! image_row_from_rusqlite {
    (; $($before:ident)*; $($after:ident)*) => {
        impl ImageRow {
            pub(super) fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                let mut column = 0;
                let mut next = |name: &str| {
                    debug_assert!(
                        row.as_ref().column_name(column).is_ok_and(|found| found == name),
                        "column {column} of an image row is not {name}"
                    );
                    column += 1;
                    column - 1
                };
                Ok(Self {
                    $($before: Column::read(row, next(stringify!($before)))?,)*
                    owner: Column::read(row, next("owner"))?,
                    $($after: Column::read(row, next(stringify!($after)))?,)*
                })
            }
        }
    };
}
super::sql::image_column_names!(image_row_from_rusqlite!());

/// What a value holds on the heap, about (for a cache's size).
trait HeapBytes {
    fn heap_bytes(&self) -> usize;
}

impl HeapBytes for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl<T: HeapBytes> HeapBytes for Option<T> {
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, HeapBytes::heap_bytes)
    }
}

macro_rules! no_heap {
    ($($type:ty),*) => {
        $(impl HeapBytes for $type {
            fn heap_bytes(&self) -> usize {
                0
            }
        })*
    };
}
no_heap!(i64, bool, DateTime<Utc>);

/// An image row's size in memory, every column's.
macro_rules! image_row_bytes {
    (; $($before:ident)*; $($after:ident)*) => {
        impl ImageRow {
            pub(super) fn bytes(&self) -> usize {
                std::mem::size_of::<Self>()
                    $(+ self.$before.heap_bytes())*
                    + self.owner.heap_bytes()
                    $(+ self.$after.heap_bytes())*
            }
        }
    };
}
super::sql::image_column_names!(image_row_bytes!());

/// A stored value the code cannot read: a bug or a hand-edited database.
fn corrupt(what: &str, id: i64) -> CoreError {
    tracing::error!(image = id, "unreadable {what} in the images table");
    CoreError::Internal
}

impl TryFrom<ImageRow> for Image {
    type Error = CoreError;

    fn try_from(row: ImageRow) -> Result<Self, CoreError> {
        let id = row.id;
        let kind = ImageKind::parse(&row.kind).map_err(|_| corrupt("kind", id))?;
        let format = row
            .format
            .as_deref()
            .map(DiskFormat::parse)
            .transpose()
            .map_err(|_| corrupt("format", id))?;
        let features = serde_json::from_str(&row.features).map_err(|_| corrupt("features", id))?;
        let extensions =
            serde_json::from_str(&row.extensions).map_err(|_| corrupt("extensions", id))?;
        let networks = row
            .networks
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt("networks", id))?
            .unwrap_or_default();
        let specifics = row
            .specifics
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt("specifics", id))?;
        Ok(Image {
            id,
            kind,
            name: row.name,
            label: row.label,
            description: row.description,
            folder: row.folder,
            data_store: row.data_store,
            public: row.public,
            owner_id: row.owner_id,
            owner: row.owner,
            created_at: row.created_at,
            updated_at: row.updated_at,
            size: row.size,
            sha256: row.sha256,
            format,
            virtual_size: row.virtual_size,
            version: row.version,
            mws: MwsAttributes {
                os_type: row.os_type,
                hypervisor: row.hypervisor,
                hypervisor_type: row.hypervisor_type,
                supports_physical_machine: row.supports_physical,
                supports_virtual_machine: row.supports_virtual,
                template_name: row.template_name,
                provisioning_type: row.provisioning_type,
                active: row.active,
                features,
                extensions,
                // Filled in by the core, which reads the links in one query per page.
                virtualized_images: Vec::new(),
            },
            vice: ViceAttributes {
                title: row.title,
                image_type: row.vice_image_type,
                imported: row.imported,
                origin_environment: row.origin_environment,
                environment_ref: row.environment_ref,
                specifics,
            },
            inspection: InspectionAttributes {
                detail: row.format_detail,
                volume_label: row.volume_label,
                cpus: row.cpus,
                memory_mib: row.memory_mib,
                product: row.product,
                vendor: row.vendor,
                product_version: row.product_version,
                networks,
            },
        })
    }
}

/// A user with the password hash, which never leaves the server (and is left
/// out of `Debug`, so that no log line can carry it).
#[derive(Clone)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub email: String,
    pub full_name: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// Bumped when an admin resets the password or disables the account.
    pub credentials_version: i64,
}
from_row_by_name!(UserRow {
    id,
    username,
    password_hash,
    email,
    full_name,
    role,
    disabled,
    created_at,
    credentials_version
});

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// The owner of a token, when the token was last used and when it expires.
#[derive(Debug, Clone)]
pub struct TokenOwner {
    pub user: UserRow,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}
from_row_by_name!(TokenOwner { last_used_at, expires_at } flatten { user });

impl TokenOwner {
    /// A row of [`super::Db::user_by_token`]'s statement, read by position,
    /// on SQLite's reader.
    pub(super) fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        // Every test's statement is checked against the fields' order.
        debug_assert_eq!(
            row.as_ref().column_names(),
            [
                "id",
                "username",
                "password_hash",
                "email",
                "full_name",
                "role",
                "disabled",
                "created_at",
                "credentials_version",
                "last_used_at",
                "expires_at"
            ]
        );
        Ok(Self {
            user: UserRow {
                id: Column::read(row, 0)?,
                username: Column::read(row, 1)?,
                password_hash: Column::read(row, 2)?,
                email: Column::read(row, 3)?,
                full_name: Column::read(row, 4)?,
                role: Column::read(row, 5)?,
                disabled: Column::read(row, 6)?,
                created_at: Column::read(row, 7)?,
                credentials_version: Column::read(row, 8)?,
            },
            last_used_at: Column::read(row, 9)?,
            expires_at: Column::read(row, 10)?,
        })
    }
}

impl UserRow {
    /// Who this account acts as; a disabled account acts as no one.
    pub fn principal(&self) -> Result<Principal, CoreError> {
        if self.disabled {
            return Err(CoreError::Forbidden("this account is disabled".into()));
        }
        let role = Role::parse(&self.role).map_err(|_| {
            tracing::error!(user = self.id, "unreadable role in the users table");
            CoreError::Internal
        })?;
        Ok(Principal {
            id: self.id,
            username: self.username.clone(),
            role,
            credentials_version: self.credentials_version,
            from_token: false,
        })
    }
}
