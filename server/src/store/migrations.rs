//! The schema's migrations, embedded in the binary.
//!
//! sqlx's `migrate!` macro would embed them too, but its proc macro carries
//! sqlx's own drivers (SQLite's C included) compiled a second time for the
//! build host, in every cold build; the list here is what it would make:
//! each file's version and description from its name, its SQL, and the SQL's
//! SHA-384 as its checksum (`Migration::new`), so a database migrated by
//! either finds the same migrations applied. A test compares the list with
//! the folders, as sqlx reads them at run time.

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::migrate::{Migration, MigrationType, Migrator};

/// Each file of `migrations/$folder`, as (file name, SQL).
macro_rules! embedded {
    ($folder:literal: $($file:literal),* $(,)?) => {
        &[$((
            $file,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $folder, "/", $file)),
        )),*]
    };
}

const SQLITE: &[(&str, &str)] = embedded!("sqlite":
    "0001_init.sql",
    "0002_coopr_and_links.sql",
    "0003_jobs_and_sync.sql",
    "0004_name_search.sql",
    "0005_environments.sql",
    "0006_deployments.sql",
    "0007_hardening.sql",
    "0008_inspection.sql",
    "0009_image_description.sql",
    "0010_user_disabled.sql",
    "0011_resumable_uploads.sql",
    "0012_resumable_parts.sql",
    "0013_quota_epochs.sql",
    "0014_synced_from.sql",
    "0015_sessions.sql",
    "0016_catalog_version.sql",
    "0017_export_folders.sql",
    "0018_key_fingerprint.sql",
    "0019_completion_renewals.sql",
    "0020_deployed_paths.sql",
    "0021_job_owners.sql",
    "0022_image_counts.sql",
    "0023_sync_request_jobs.sql",
    "0024_deployed_path_index.sql",
    "0025_ended_jobs_by_owner.sql",
    "0026_session_users.sql",
    "0027_deployments_outlive_images.sql",
    "0028_blob_generations.sql",
    "0029_deployed_file_removals.sql",
    "0030_deployed_file_removal_marks.sql",
    "0031_session_digests.sql",
    "0032_catalog_identity.sql",
);

const POSTGRES: &[(&str, &str)] = embedded!("postgres":
    "0001_init.sql",
    "0002_coopr_and_links.sql",
    "0003_jobs_and_sync.sql",
    "0004_name_search.sql",
    "0005_environments.sql",
    "0006_deployments.sql",
    "0007_hardening.sql",
    "0008_inspection.sql",
    "0009_image_description.sql",
    "0010_user_disabled.sql",
    "0011_resumable_uploads.sql",
    "0012_resumable_parts.sql",
    "0013_quota_epochs.sql",
    "0014_name_prefix.sql",
    "0015_name_claim.sql",
    "0016_credentials_notices.sql",
    "0017_catalog_versions.sql",
    "0018_sort_ties_by_id.sql",
    "0019_synced_from.sql",
    "0020_sessions.sql",
    "0021_export_folders.sql",
    "0022_key_fingerprint.sql",
    "0023_completion_renewals.sql",
    "0024_deployed_paths.sql",
    "0025_job_owners.sql",
    "0026_image_counts.sql",
    "0027_sync_request_jobs.sql",
    "0028_deployed_path_index.sql",
    "0029_ended_jobs_by_owner.sql",
    "0030_session_users.sql",
    "0031_deployments_outlive_images.sql",
    "0032_image_count_stripes.sql",
    "0033_image_counts_go_after_images.sql",
    "0034_blob_generations.sql",
    "0035_deployed_file_removals.sql",
    "0036_deployed_file_removal_marks.sql",
    "0037_session_digests.sql",
    "0038_catalog_identity.sql",
    "0039_byte_order_text.sql",
);

/// SQLite's migrations, in order.
pub static SQLITE_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| migrator(SQLITE));

/// PostgreSQL's migrations, in order (the tests name their migrated
/// template after these).
pub static POSTGRES_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| migrator(POSTGRES));

fn migrator(files: &'static [(&'static str, &'static str)]) -> Migrator {
    let migrations: Vec<Migration> = files
        .iter()
        .map(|&(file, sql)| migration(file, sql))
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// `0017_catalog_versions.sql` is version 17, "catalog versions"; a file
/// that starts `-- no-transaction` runs outside one (sqlx's rules).
fn migration(file: &'static str, sql: &'static str) -> Migration {
    let stem = file
        .strip_suffix(".sql")
        .expect("a migration is a .sql file");
    let (version, description) = stem
        .split_once('_')
        .expect("a migration's name is its version, '_', its description");
    Migration::new(
        version.parse().expect("a migration's version is a number"),
        Cow::Owned(description.replace('_', " ")),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        sql.starts_with("-- no-transaction"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What sqlx makes of the folder at run time (as `migrate!` would at
    /// build time): every file, in order, with the same checksums.
    async fn assert_matches_folder(embedded: &Migrator, folder: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(folder);
        let read = Migrator::new(path).await.unwrap();
        let shape = |migrator: &Migrator| -> Vec<_> {
            migrator
                .iter()
                .map(|migration| {
                    (
                        migration.version,
                        migration.description.to_string(),
                        migration.checksum.to_vec(),
                        migration.no_tx,
                        migration.migration_type,
                    )
                })
                .collect()
        };
        assert_eq!(shape(embedded), shape(&read), "migrations/{folder}");
        assert!(!embedded.iter().next().unwrap().sql.is_empty());
    }

    #[tokio::test]
    async fn the_embedded_migrations_are_the_folders() {
        assert_matches_folder(&SQLITE_MIGRATIONS, "sqlite").await;
        assert_matches_folder(&POSTGRES_MIGRATIONS, "postgres").await;
    }
}
