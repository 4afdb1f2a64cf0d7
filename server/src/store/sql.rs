//! The only place that turns a core [`Query`] into SQL. Field names come from
//! the [`Field`] whitelist, never from input; every value is a bound argument.

use std::fmt::Write;

use app::query::{Condition, Direction, Field, Op, Query, Value};
use chrono::{DateTime, Utc};

use super::Backend;

/// A bound argument.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Arg {
    Int(i64),
    Text(String),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// A statement with `$n` placeholders (both backends read them) and its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
    /// Whether SQLite should plan the statement for the values bound to it
    /// each time it runs: only a LIKE, whose pattern's fixed start becomes
    /// a range of an index. Any other statement is planned once from the
    /// statistics (see `reader::Connections`).
    pub planned_per_values: bool,
}

/// Calls `$then!($($arg)*; before; after)` with the columns of an image row
/// ([`super::ImageRow`]) in the order of every image statement: those before
/// the owner's name, then those after it. The one list of them: the
/// statements' text and the row's decoding (by position) both come from it.
macro_rules! image_column_names {
    ($then:ident!($($arg:tt)*)) => {
        $then! {
            $($arg)*;
            id kind name label folder data_store public owner_id;
            created_at updated_at size sha256 format virtual_size version os_type hypervisor
            hypervisor_type supports_physical supports_virtual template_name provisioning_type
            active features extensions title vice_image_type imported origin_environment
            environment_ref specifics format_detail volume_label cpus memory_mib product vendor
            product_version networks description
        }
    };
}
pub(super) use image_column_names;

/// The columns of an image row, each after `$t` (the table's alias and a
/// dot, or nothing), with `$owner` as the owner's name.
macro_rules! image_columns {
    ($t:literal, $owner:literal) => {
        $crate::store::sql::image_column_names!(image_columns!(@ $t, $owner))
    };
    (@ $t:literal, $owner:literal; $($before:ident)*; $($after:ident)*) => {
        concat!(
            $($t, stringify!($before), ", ",)*
            $owner, " AS owner"
            $(, ", ", $t, stringify!($after))*
        )
    };
}
pub(super) use image_columns;

/// The columns of an image row, with the owner's name joined in.
pub const IMAGE_SELECT: &str = concat!(
    "SELECT ",
    image_columns!("i.", "u.username"),
    " FROM images i LEFT JOIN users u ON u.id = i.owner_id"
);

/// The catalog's version on PostgreSQL (migration 0017), as the two columns
/// every statement of a page and its count ends with: read in the
/// statement's own snapshot, they tell which committed changes the page or
/// the count saw (see `kept`). The sum of the stripes, and when the
/// database server started, in microseconds: a failover or a recovery to
/// an earlier point starts one, so a history that went back and grew again
/// to the same sum is not taken for the one a total was counted in.
macro_rules! catalog_version {
    () => {
        "(SELECT sum(version)::bigint FROM catalog_versions), \
         (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint"
    };
}

/// [`IMAGE_SELECT`] with the catalog's version as its last two columns.
const VERSIONED_IMAGE_SELECT: &str = concat!(
    "SELECT ",
    image_columns!("i.", "u.username"),
    ", ",
    catalog_version!(),
    " FROM images i LEFT JOIN users u ON u.id = i.owner_id"
);

/// The catalog's version alone, as its two columns: whether a kept page
/// still holds (see `kept`).
pub(super) const CATALOG_VERSION: &str = concat!("SELECT ", catalog_version!());

/// The catalog's version on SQLite (migration 0016): one row, read in the
/// snapshot of the page it vouches for.
pub(super) const SQLITE_CATALOG_VERSION: &str = "SELECT changes FROM catalog_version";

/// The column behind each field.
fn column(field: Field) -> &'static str {
    match field {
        Field::Id => "i.id",
        Field::Kind => "i.kind",
        Field::Name => "i.name",
        Field::Label => "i.label",
        Field::Description => "i.description",
        Field::Folder => "i.folder",
        Field::DataStore => "i.data_store",
        Field::Path => "i.path",
        Field::Public => "i.public",
        Field::OwnerId => "i.owner_id",
        // A subquery rather than the join's column, so that the count and
        // distinct statements, which select from `images` alone, take it too.
        Field::Owner => "(SELECT o.username FROM users o WHERE o.id = i.owner_id)",
        Field::Size => "i.size",
        Field::Sha256 => "i.sha256",
        Field::Format => "i.format",
        Field::VirtualSize => "i.virtual_size",
        Field::VolumeLabel => "i.volume_label",
        Field::Cpus => "i.cpus",
        Field::MemoryMib => "i.memory_mib",
        Field::Product => "i.product",
        Field::Vendor => "i.vendor",
        Field::ProductVersion => "i.product_version",
        Field::CreatedAt => "i.created_at",
        Field::UpdatedAt => "i.updated_at",
        Field::Version => "i.version",
        Field::OsType => "i.os_type",
        Field::Hypervisor => "i.hypervisor",
        Field::HypervisorType => "i.hypervisor_type",
        Field::SupportsPhysicalMachine => "i.supports_physical",
        Field::SupportsVirtualMachine => "i.supports_virtual",
        Field::TemplateName => "i.template_name",
        Field::ProvisioningType => "i.provisioning_type",
        Field::Active => "i.active",
        Field::Title => "i.title",
        Field::ViceImageType => "i.vice_image_type",
        Field::Imported => "i.imported",
        Field::OriginEnvironment => "i.origin_environment",
        Field::EnvironmentRef => "i.environment_ref",
    }
}

struct Builder {
    backend: Backend,
    text: String,
    args: Vec<Arg>,
    planned_per_values: bool,
}

impl Builder {
    fn new(backend: Backend, start: &str) -> Self {
        Self {
            backend,
            text: start.to_owned(),
            args: Vec::new(),
            planned_per_values: false,
        }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        let _ = write!(self.text, "${}", self.args.len());
        self
    }

    fn bind_value(&mut self, value: &Value) {
        match value {
            Value::Int(v) => self.bind(Arg::Int(*v)),
            Value::Text(v) => self.bind(Arg::Text(v.clone())),
            Value::Bool(v) => self.bind(Arg::Bool(*v)),
            Value::Time(v) => self.bind(Arg::Time(*v)),
            Value::List(items) => {
                self.push("(");
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        self.push(", ");
                    }
                    self.bind_value(item);
                }
                self.push(")")
            }
        };
    }

    fn condition(&mut self, condition: &Condition) {
        match condition {
            Condition::All(items) => self.join(items, " AND ", "1 = 1"),
            Condition::Any(items) => self.join(items, " OR ", "1 = 0"),
            Condition::Exists { field, exists } => {
                let test = match (field.nullable(), exists) {
                    (true, true) => format!("{} IS NOT NULL", column(*field)),
                    (true, false) => format!("{} IS NULL", column(*field)),
                    (false, true) => "1 = 1".to_owned(),
                    (false, false) => "1 = 0".to_owned(),
                };
                self.push(&test);
            }
            Condition::Compare { field, op, value } => self.compare(*field, *op, value),
        }
    }

    fn join(&mut self, items: &[Condition], separator: &str, empty: &str) {
        if items.is_empty() {
            self.push(empty);
            return;
        }
        self.push("(");
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                self.push(separator);
            }
            self.condition(item);
        }
        self.push(")");
    }

    fn compare(&mut self, field: Field, op: Op, value: &Value) {
        if op == Op::Like {
            self.like(field, value);
            return;
        }
        let column = column(field);
        // "Not equal" and "not in" also match records where the field is unset,
        // as MongoDB's `$ne`/`$nin` do.
        let or_null = field.nullable() && matches!(op, Op::Ne | Op::NotIn);
        if or_null {
            self.push("(").push(column).push(" IS NULL OR ");
        }
        self.push(column);
        let operator = match op {
            Op::Eq => " = ",
            Op::Ne => " <> ",
            Op::Lt => " < ",
            Op::Le => " <= ",
            Op::Gt => " > ",
            Op::Ge => " >= ",
            Op::In => " IN ",
            Op::NotIn => " NOT IN ",
            Op::Like => unreachable!("written by `like`"),
            // SQLite's REGEXP is the `regex` crate (registered by sqlx); the
            // core accepts only patterns that crate compiles.
            Op::Regex => match self.backend {
                Backend::Sqlite => " REGEXP ",
                Backend::Postgres => " ~ ",
            },
        };
        self.push(operator);
        self.bind_value(value);
        if or_null {
            self.push(")");
        }
    }

    /// `field LIKE pattern`, ignoring case, `\` escaping a wildcard.
    fn like(&mut self, field: Field, pattern: &Value) {
        let column = column(field);
        match (self.backend, field) {
            // SQLite's LIKE ignores ASCII case. An index on the name with
            // the NOCASE collation serves a pattern's fixed start (`ubu%`),
            // which SQLite reads from the pattern bound.
            (Backend::Sqlite, _) => {
                self.push(column).push(" LIKE ");
                self.bind_value(pattern);
                self.planned_per_values = true;
            }
            // PostgreSQL's ILIKE gives the same answers (the name's collation
            // is "C": ASCII case), but no index serves it. In a UTF-8
            // database ILIKE lowers both sides under the operation's
            // collation and compares with LIKE; written so, an index on
            // `lower(name)` serves a fixed start and its trigram index any
            // pattern. The pattern is lowered under the name's collation.
            (Backend::Postgres, Field::Name) => {
                self.push("lower(").push(column).push(") LIKE lower(");
                self.bind_value(pattern);
                self.push(" COLLATE \"C\")");
            }
            (Backend::Postgres, _) => {
                self.push(column).push(" ILIKE ");
                self.bind_value(pattern);
            }
        }
        self.push(" ESCAPE '\\'");
    }

    fn order_by(&mut self, query: &Query) {
        self.push(" ORDER BY ");
        for sort in &query.sort {
            let direction = match (sort.direction, sort.field.nullable()) {
                // Unset values sort as the smallest on both backends.
                (Direction::Asc, true) => " ASC NULLS FIRST",
                (Direction::Desc, true) => " DESC NULLS LAST",
                (Direction::Asc, false) => " ASC",
                (Direction::Desc, false) => " DESC",
            };
            self.push(column(sort.field)).push(direction).push(", ");
        }
        // Ties are broken by id so that pages never overlap or skip.
        let last = query
            .sort
            .last()
            .map_or(Direction::Asc, |sort| sort.direction);
        self.push(match last {
            Direction::Asc => "i.id ASC",
            Direction::Desc => "i.id DESC",
        });
    }

    fn finish(self) -> Sql {
        Sql {
            text: self.text,
            args: self.args,
            planned_per_values: self.planned_per_values,
        }
    }
}

/// A count as both backends take it in LIMIT/OFFSET (a signed 64-bit
/// integer): anything larger means "past the end" all the same.
pub fn bounded(count: u64) -> u64 {
    count.min(i64::MAX as u64)
}

/// The distinct set values of one field among the images matching
/// `condition`, sorted, one page of them; and the statement counting them all.
pub fn select_distinct(
    backend: Backend,
    field: Field,
    condition: &Condition,
    limit: u64,
    offset: u64,
) -> (Sql, Sql) {
    let column = column(field);
    let mut page = Builder::new(backend, "SELECT DISTINCT ");
    page.push(column).push(" FROM images i WHERE ");
    page.condition(condition);
    page.push(" AND ")
        .push(column)
        .push(" IS NOT NULL ORDER BY ");
    page.push(column);
    let _ = write!(
        page.text,
        " LIMIT {} OFFSET {}",
        bounded(limit),
        bounded(offset)
    );

    let mut count = Builder::new(backend, "SELECT COUNT(DISTINCT ");
    count.push(column).push(") FROM images i WHERE ");
    count.condition(condition);
    (page.finish(), count.finish())
}

/// The page of images a query asks for, and the statement counting all matches.
///
/// On PostgreSQL both end with two columns more, the catalog's version at
/// the statement's snapshot (the count is the first column).
pub fn select_images(backend: Backend, query: &Query) -> (Sql, Sql) {
    let (select, count_select) = match backend {
        Backend::Sqlite => (IMAGE_SELECT, "SELECT COUNT(*) FROM images i WHERE "),
        Backend::Postgres => (
            VERSIONED_IMAGE_SELECT,
            concat!(
                "SELECT COUNT(*), ",
                catalog_version!(),
                " FROM images i WHERE "
            ),
        ),
    };
    let mut page = Builder::new(backend, select);
    page.push(" WHERE ");
    page.condition(&query.condition);
    page.order_by(query);
    let _ = write!(
        page.text,
        " LIMIT {} OFFSET {}",
        bounded(query.limit),
        bounded(query.offset)
    );

    let mut count = Builder::new(backend, count_select);
    count.condition(&query.condition);
    (page.finish(), count.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn where_clause(backend: Backend, condition: Condition) -> Sql {
        let mut builder = Builder::new(backend, "");
        builder.condition(&condition);
        builder.finish()
    }

    #[test]
    fn values_are_bound_never_inlined() {
        let hostile = "x'; DROP TABLE images; --";
        let sql = where_clause(
            Backend::Sqlite,
            Condition::parse(Field::Name, Op::Eq, hostile).unwrap(),
        );
        assert_eq!(sql.text, "i.name = $1");
        assert_eq!(sql.args, vec![Arg::Text(hostile.into())]);
    }

    #[test]
    fn like_is_case_insensitive_on_both_backends() {
        let condition = Condition::parse(Field::Name, Op::Like, "ubu%").unwrap();
        assert_eq!(
            where_clause(Backend::Sqlite, condition.clone()).text,
            "i.name LIKE $1 ESCAPE '\\'"
        );
        assert_eq!(
            where_clause(Backend::Postgres, condition).text,
            "lower(i.name) LIKE lower($1 COLLATE \"C\") ESCAPE '\\'"
        );
        let condition = Condition::parse(Field::Label, Op::Like, "ubu%").unwrap();
        assert_eq!(
            where_clause(Backend::Postgres, condition).text,
            "i.label ILIKE $1 ESCAPE '\\'"
        );
    }

    #[test]
    fn lists_and_nesting_number_placeholders_in_order() {
        let condition = Condition::Any(vec![
            Condition::parse(Field::Id, Op::In, "1,2").unwrap(),
            Condition::All(vec![
                Condition::parse(Field::Public, Op::Eq, "true").unwrap(),
                Condition::parse(Field::Format, Op::Ne, "iso").unwrap(),
            ]),
        ]);
        let sql = where_clause(Backend::Postgres, condition);
        assert_eq!(
            sql.text,
            "(i.id IN ($1, $2) OR (i.public = $3 AND (i.format IS NULL OR i.format <> $4)))"
        );
        assert_eq!(sql.args.len(), 4);
    }

    #[test]
    fn regex_uses_each_backends_operator() {
        let condition = Condition::parse(Field::Name, Op::Regex, "^cent").unwrap();
        assert_eq!(
            where_clause(Backend::Sqlite, condition.clone()).text,
            "i.name REGEXP $1"
        );
        assert_eq!(
            where_clause(Backend::Postgres, condition).text,
            "i.name ~ $1"
        );
    }

    #[test]
    fn distinct_values_skip_unset_ones() {
        let (page, count) = select_distinct(
            Backend::Postgres,
            Field::OsType,
            &Condition::parse(Field::Public, Op::Eq, "true").unwrap(),
            10,
            0,
        );
        assert_eq!(
            page.text,
            "SELECT DISTINCT i.os_type FROM images i WHERE i.public = $1 \
             AND i.os_type IS NOT NULL ORDER BY i.os_type LIMIT 10 OFFSET 0"
        );
        assert_eq!(
            count.text,
            "SELECT COUNT(DISTINCT i.os_type) FROM images i WHERE i.public = $1"
        );
    }

    #[test]
    fn empty_conditions_are_constant() {
        assert_eq!(
            where_clause(Backend::Sqlite, Condition::All(vec![])).text,
            "1 = 1"
        );
        assert_eq!(
            where_clause(Backend::Sqlite, Condition::Any(vec![])).text,
            "1 = 0"
        );
    }

    #[test]
    fn pages_sort_with_an_id_tiebreak() {
        let query = Query::new(10)
            .sort_by(Field::Size, Direction::Desc)
            .offset(20);
        let (page, count) = select_images(Backend::Sqlite, &query);
        assert!(page.text.ends_with(
            " WHERE 1 = 1 ORDER BY i.size DESC NULLS LAST, i.id DESC LIMIT 10 OFFSET 20"
        ));
        assert_eq!(count.text, "SELECT COUNT(*) FROM images i WHERE 1 = 1");
    }
}
