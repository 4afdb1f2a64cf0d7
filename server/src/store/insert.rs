//! The insert of a new image record, as both drivers send it: the statement,
//! and its parameters listed once, in order, for each driver to bind its way.

use super::images::{NameScope, NewImage, ProvisioningColumns, ViceColumns};
use super::sql::image_columns;

/// The start of every insert of an image record: its columns, in the order
/// of [`for_each_insert_arg`]'s parameters, but `updated_at` (the record's
/// time again) and `version` (0) after `created_at`.
macro_rules! insert_into_images {
    () => {
        "INSERT INTO images (kind, name, label, folder, data_store, path, \
         public, owner_id, size, sha256, format, virtual_size, created_at, updated_at, \
         version, os_type, hypervisor, hypervisor_type, supports_physical, supports_virtual, \
         template_name, provisioning_type, active, features, extensions, title, \
         vice_image_type, imported, origin_environment, environment_ref, specifics, \
         format_detail, volume_label, cpus, memory_mib, product, vendor, product_version, \
         networks) "
    };
}

/// The insert of a record, whose row is kept where `$name_free` holds (the
/// name rule's check, on parameters `$38` to `$40`) and its owner (`$8`)
/// holds fewer images than `$41`, if that is set (`image_counts`, migration
/// 0022 on SQLite, 0026 on PostgreSQL, where it is the sum of a user's
/// stripes since 0032). `INSERT … SELECT … WHERE` rather
/// than `VALUES`, so that the rules are part of the insert itself.
macro_rules! insert_image {
    ($name_free:literal) => {
        concat!(
            insert_into_images!(),
            "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, 0, \
             $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, \
             $30, $31, $32, $33, $34, $35, $36, $37 \
             WHERE ",
            $name_free,
            " AND (CAST($41 AS BIGINT) IS NULL OR COALESCE((SELECT SUM(c.images) \
             FROM image_counts c WHERE c.user_id = $8), 0) < $41) RETURNING ",
            // Bare column names: SQLite's RETURNING takes no table alias.
            image_columns!("", "CAST(NULL AS TEXT)")
        )
    };
}

/// Inserts a record unless an image the name rule covers has its name, and
/// answers the row as stored. SQLite's: its one writer holds the database's
/// write lock from the check to the write.
pub(super) const INSERT_IMAGE: &str = insert_image!(
    "NOT EXISTS (SELECT 1 FROM images o WHERE $38 AND o.name = $2 \
     AND ($39 OR o.public OR o.owner_id = $40))"
);

/// PostgreSQL's: the check is `depot_claim_image_name` (migration 0015),
/// which takes the name's lock for the transaction, then looks for the name
/// with a snapshot of its own, taken once the lock is held; this statement's
/// snapshot, taken before, could miss a record another transaction committed
/// while this one waited for the lock. So the lock, the check and the write
/// are one statement, and a record with no links is one round trip, its
/// own transaction. `CASE`, as it evaluates in order: no lock without a rule.
pub(super) const INSERT_IMAGE_CLAIMING: &str =
    insert_image!("CASE WHEN $38 THEN depot_claim_image_name($2, $39, $40) ELSE TRUE END");

/// PostgreSQL's insert of a group of records in one statement, each unless
/// its name is taken (as [`INSERT_IMAGE_CLAIMING`]): `$1` is a JSON array
/// of records, each the array of [`INSERT_IMAGE_CLAIMING`]'s parameters in
/// order ([`group_record`]). The records' names must differ: the rows come
/// back in no set order, and are told apart by name.
///
/// The records are taken in the order of their names' lock keys, so that
/// two groups never each hold a lock the other waits for: a subquery sorts
/// them, and its `OFFSET 0` keeps the planner from pushing the name check
/// below the sort (where it ran on the records in the order sent).
///
/// The owner's count (`image_counts`) is brought up to date by a trigger
/// once the statement ends, so every record of the statement reads it as
/// it was before: each also counts the records of its owner's taken before
/// it whose names were free as the statement began (`earlier`), those that
/// will be stored, or an account one image short of its limit would pass it
/// by a group's size (as migrations 0026 and 0032 still say it may). Each
/// name taken or freed by another transaction between the statement's start
/// and its record's check makes that count one off. A record without a
/// limit is taken to be stored without looking its name up (with the lookup
/// for every record, an administrator's 4 clients created about 4 % fewer
/// records, run in turns): it is an administrator's, and one account's
/// records all have a limit or none but while its role changes.
pub(super) const INSERT_IMAGES_CLAIMING: &str = concat!(
    insert_into_images!(),
    "SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->>5, (r->>6)::boolean, (r->>7)::bigint, \
     (r->>8)::bigint, r->>9, r->>10, (r->>11)::bigint, (r->>12)::timestamptz, \
     (r->>12)::timestamptz, 0, r->>13, (r->>14)::boolean, r->>15, (r->>16)::boolean, \
     (r->>17)::boolean, r->>18, r->>19, (r->>20)::boolean, r->>21, r->>22, r->>23, r->>24, \
     (r->>25)::boolean, r->>26, r->>27, r->>28, r->>29, r->>30, (r->>31)::bigint, \
     (r->>32)::bigint, r->>33, r->>34, r->>35, r->>36 \
     FROM (SELECT r, CASE WHEN r->>7 IS NULL THEN 0 ELSE COALESCE(SUM(free) OVER (\
     PARTITION BY r->>7 ORDER BY hashtext(r->>1), r->>1 \
     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) END AS earlier \
     FROM (SELECT r, CASE WHEN (r->>40) IS NULL OR NOT (r->>37)::boolean \
     OR NOT EXISTS (SELECT 1 FROM images o \
     WHERE o.name = r->>1 AND ((r->>38)::boolean OR o.public OR o.owner_id = (r->>39)::bigint)) \
     THEN 1 ELSE 0 END AS free FROM jsonb_array_elements($1::jsonb) AS r) AS sent \
     ORDER BY hashtext(r->>1), r->>1 OFFSET 0) AS records \
     WHERE CASE WHEN (r->>37)::boolean \
     THEN depot_claim_image_name(r->>1, (r->>38)::boolean, (r->>39)::bigint) ELSE TRUE END \
     AND ((r->>40) IS NULL OR COALESCE((SELECT SUM(c.images) FROM image_counts c \
     WHERE c.user_id = (r->>7)::bigint), 0) + earlier < (r->>40)::bigint) \
     RETURNING ",
    image_columns!("", "CAST(NULL AS TEXT)")
);

/// PostgreSQL's: locks the images a hypervisor image will link to against
/// their deletion (`$1`, their ids), before the insert takes its owner's
/// count (`image_counts`, migration 0026): a deletion locks its image, then
/// that image's owner's count; taking the images after the count, as the
/// links' foreign keys would, could wait on a deletion that waits on it.
pub(super) const LOCK_LINKED: &str =
    "SELECT 1 FROM images WHERE id = ANY($1) ORDER BY id FOR KEY SHARE";

/// PostgreSQL's: locks the counts of the images of the owners `$1` (ids)
/// on this connection's stripe (migration 0032), in the order of their ids,
/// making the rows of those who have none yet: a group written in several
/// statements takes them all before its first, as each statement's trigger
/// takes its owners' in that order.
pub(super) const LOCK_OWNER_COUNTS: &str = "INSERT INTO image_counts (user_id, stripe, images) \
     SELECT DISTINCT owner, pg_backend_pid() % 64, 0 FROM UNNEST($1::bigint[]) AS owner \
     ORDER BY owner ON CONFLICT (user_id, stripe) DO UPDATE SET images = image_counts.images";

/// Links a hypervisor image to an image it runs.
pub(super) const INSERT_LINK: &str =
    "INSERT INTO image_virtualized (hypervisor_id, image_id) VALUES ($1, $2)";

/// PostgreSQL's: links a hypervisor image to every image it runs at once.
pub(super) const INSERT_LINKS: &str =
    "INSERT INTO image_virtualized (hypervisor_id, image_id) SELECT $1, UNNEST($2::bigint[])";

/// What [`INSERT_IMAGE`] binds beyond the record's own fields: the columns
/// worked out from them, the name rule's three parameters, and the most
/// images the owner may hold.
pub(super) struct InsertArgs<'a> {
    pub(super) new: &'a NewImage,
    pub(super) mws: ProvisioningColumns,
    pub(super) vice: ViceColumns,
    pub(super) os_type: Option<String>,
    pub(super) networks: Option<String>,
    pub(super) guarded: bool,
    pub(super) everyone: bool,
    pub(super) reader: Option<i64>,
}

impl<'a> InsertArgs<'a> {
    pub(super) fn of(new: &'a NewImage, unique: Option<NameScope>) -> Self {
        let mws = ProvisioningColumns::of(new.provisioning.as_ref());
        let vice = ViceColumns::of(new.vice.as_ref());
        let os_type = mws.os_type.clone().or_else(|| new.guest_os.clone());
        let networks = networks_json(&new.inspection.networks);
        let (guarded, everyone, reader) = NameScope::binds(unique);
        Self {
            new,
            mws,
            vice,
            os_type,
            networks,
            guarded,
            everyone,
            reader,
        }
    }
}

/// The networks column: a JSON list, or NULL when there are none.
pub(super) fn networks_json(networks: &[String]) -> Option<String> {
    (!networks.is_empty()).then(|| serde_json::Value::from(networks.to_vec()).to_string())
}

/// Hands each parameter of [`INSERT_IMAGE`] (and [`INSERT_IMAGE_CLAIMING`]) of `$args` (an [`InsertArgs`]),
/// in order, to the macro `$bind`: `$bind!(value)`, or `$bind!(@time value)`
/// for the record's time, which each driver writes its own way.
macro_rules! for_each_insert_arg {
    ($args:expr, $bind:ident) => {{
        let args = &$args;
        let new = args.new;
        let found = &new.inspection;
        $bind!(new.kind);
        $bind!(&new.name);
        $bind!(&new.label);
        $bind!(&new.folder);
        $bind!(&new.data_store);
        $bind!(&new.path);
        $bind!(new.public);
        $bind!(new.owner_id);
        $bind!(new.size);
        $bind!(&new.sha256);
        $bind!(new.format);
        $bind!(new.virtual_size);
        $bind!(@time new.now);
        $bind!(&args.os_type);
        $bind!(args.mws.hypervisor);
        $bind!(&args.mws.hypervisor_type);
        $bind!(args.mws.supports_physical);
        $bind!(args.mws.supports_virtual);
        $bind!(&args.mws.template_name);
        $bind!(args.mws.provisioning_type);
        $bind!(args.mws.active);
        $bind!(&args.mws.features);
        $bind!(&args.mws.extensions);
        $bind!(&args.vice.title);
        $bind!(args.vice.image_type);
        $bind!(args.vice.imported);
        $bind!(&args.vice.origin_environment);
        $bind!(&args.vice.environment_ref);
        $bind!(&args.vice.specifics);
        $bind!(&found.detail);
        $bind!(&found.volume_label);
        $bind!(found.cpus);
        $bind!(found.memory_mib);
        $bind!(&found.product);
        $bind!(&found.vendor);
        $bind!(&found.product_version);
        $bind!(&args.networks);
        $bind!(args.guarded);
        $bind!(args.everyone);
        $bind!(args.reader);
        $bind!(new.owner_images_at_most);
    }};
}
pub(super) use for_each_insert_arg;

/// The insert `$sql` of an image row with every parameter of `$args` (an
/// [`InsertArgs`]) bound, for either driver.
macro_rules! bound_insert {
    ($sql:expr, $args:expr) => {{
        let mut query = sqlx::query_as::<_, $crate::store::rows::ImageRow>($sql);
        macro_rules! bind {
            (@time $value:expr) => {
                query = query.bind($value)
            };
            ($value:expr) => {
                query = query.bind($value)
            };
        }
        $crate::store::insert::for_each_insert_arg!($args, bind);
        query
    }};
}
pub(super) use bound_insert;

/// One record of [`INSERT_IMAGES_CLAIMING`]'s group: its parameters as a
/// JSON array, the time to the microsecond, as PostgreSQL keeps it (and as
/// sqlx binds it: cut, not rounded).
pub(super) fn group_record(args: &InsertArgs<'_>) -> serde_json::Value {
    let mut fields = Vec::with_capacity(41);
    macro_rules! push {
        (@time $value:expr) => {
            fields.push(serde_json::Value::from(
                $value.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            ))
        };
        ($value:expr) => {
            fields.push(serde_json::json!($value))
        };
    }
    for_each_insert_arg!(args, push);
    serde_json::Value::Array(fields)
}
