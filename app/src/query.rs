//! The one query language of the core. Every dialect parses its own syntax
//! (VSS `filter=name,like,ubu%`, MWS MongoDB JSON, the UI's search box) into a
//! [`Query`]; only the store turns it into SQL, over the [`Field`] whitelist.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// The image fields that can be filtered and sorted on: each is a real column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Field {
    Id,
    Kind,
    Name,
    Label,
    Description,
    Folder,
    DataStore,
    Path,
    Public,
    OwnerId,
    /// The owner's username (unset for public records without an owner).
    Owner,
    Size,
    Sha256,
    Format,
    VirtualSize,
    CreatedAt,
    UpdatedAt,
    Version,
    OsType,
    Hypervisor,
    HypervisorType,
    SupportsPhysicalMachine,
    SupportsVirtualMachine,
    TemplateName,
    ProvisioningType,
    Active,
    Title,
    ViceImageType,
    Imported,
    OriginEnvironment,
    EnvironmentRef,
    VolumeLabel,
    Cpus,
    MemoryMib,
    Product,
    Vendor,
    ProductVersion,
}

/// How a field's values are typed, so that input is checked before SQL sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Int,
    Text,
    Bool,
    Time,
}

impl Field {
    pub fn value_type(self) -> FieldType {
        use Field::*;
        match self {
            Id | OwnerId | Size | VirtualSize | Version | Cpus | MemoryMib => FieldType::Int,
            Public
            | Hypervisor
            | SupportsPhysicalMachine
            | SupportsVirtualMachine
            | Active
            | Imported => FieldType::Bool,
            CreatedAt | UpdatedAt => FieldType::Time,
            Kind | Name | Label | Description | Folder | DataStore | Path | Sha256 | Format
            | OsType | HypervisorType | TemplateName | ProvisioningType | Title | ViceImageType
            | OriginEnvironment | EnvironmentRef | VolumeLabel | Product | Vendor
            | ProductVersion | Owner => FieldType::Text,
        }
    }

    /// Whether the column may hold NULL (records without bytes, unset attributes).
    pub fn nullable(self) -> bool {
        use Field::*;
        matches!(
            self,
            OwnerId
                | Owner
                | Size
                | Sha256
                | Format
                | VirtualSize
                | OsType
                | HypervisorType
                | TemplateName
                | ProvisioningType
                | Title
                | ViceImageType
                | OriginEnvironment
                | EnvironmentRef
                | VolumeLabel
                | Cpus
                | MemoryMib
                | Product
                | Vendor
                | ProductVersion
        )
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// SQL `LIKE` with `%` and `_`, case-insensitive on every backend.
    Like,
    In,
    NotIn,
    /// A regular expression match (MWS `$regex`), in the syntax both
    /// backends share; `(?i)` at the start makes it case-insensitive.
    Regex,
}

impl Op {
    /// Parses the operator names VSS uses (`eq ne lt le gt ge like in`).
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        Ok(match text {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "lt" => Self::Lt,
            "le" => Self::Le,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "like" => Self::Like,
            "in" => Self::In,
            other => {
                return Err(CoreError::invalid(format!(
                    "unknown operator '{other}' (use eq, ne, lt, le, gt, ge, like or in)"
                )))
            }
        })
    }
}

/// A typed value, checked against its field's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Int(i64),
    Text(String),
    Bool(bool),
    Time(DateTime<Utc>),
    List(Vec<Value>),
}

impl Value {
    /// Parses text typed by a user (a query string, a search box) as a value of `field`.
    pub fn parse(field: Field, raw: &str) -> Result<Self, CoreError> {
        let wrong =
            |what: &str| CoreError::invalid(format!("{field:?} expects {what}, got '{raw}'"));
        Ok(match field.value_type() {
            FieldType::Int => Value::Int(raw.trim().parse().map_err(|_| wrong("an integer"))?),
            FieldType::Text => Value::Text(raw.to_owned()),
            FieldType::Bool => Value::Bool(match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(wrong("true or false")),
            }),
            FieldType::Time => Value::Time(parse_time(raw).ok_or_else(|| wrong("a date"))?),
        })
    }

    fn type_matches(&self, field_type: FieldType) -> bool {
        matches!(
            (self, field_type),
            (Value::Int(_), FieldType::Int)
                | (Value::Text(_), FieldType::Text)
                | (Value::Bool(_), FieldType::Bool)
                | (Value::Time(_), FieldType::Time)
        )
    }
}

/// Accepts RFC 3339, `YYYY-MM-DD HH:MM:SS` (taken as UTC) and `YYYY-MM-DD`.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
        return Some(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(raw, format) {
            return Some(time.and_utc());
        }
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
}

/// A condition on images: comparisons combined with AND and OR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Condition {
    /// All must hold; an empty list always holds.
    All(Vec<Condition>),
    /// One must hold; an empty list never holds.
    Any(Vec<Condition>),
    Compare {
        field: Field,
        op: Op,
        value: Value,
    },
    /// The field is set (`true`) or unset (`false`).
    Exists {
        field: Field,
        exists: bool,
    },
}

/// The longest `like` pattern: matching costs its length at every row the
/// caller may read (a regular expression's bound is the core's). Room for a
/// whole name, escaped, or a long label in any script.
pub const MAX_PATTERN: usize = 1024;

/// Whether a LIKE pattern's last `\` is left to escape nothing (an odd run
/// of them at its end).
fn ends_in_an_escape(pattern: &str) -> bool {
    pattern
        .bytes()
        .rev()
        .take_while(|&byte| byte == b'\\')
        .count()
        % 2
        == 1
}

impl Condition {
    /// A comparison, checked: the value fits the field and the operator.
    pub fn compare(field: Field, op: Op, value: Value) -> Result<Self, CoreError> {
        let field_type = field.value_type();
        match (&op, &value) {
            (Op::In | Op::NotIn, Value::List(items)) => {
                if items.is_empty() || items.len() > 1000 {
                    return Err(CoreError::invalid("a list holds 1 to 1000 values"));
                }
                if let Some(bad) = items.iter().find(|item| !item.type_matches(field_type)) {
                    return Err(CoreError::invalid(format!(
                        "{field:?} cannot be compared with {bad:?}"
                    )));
                }
            }
            (Op::In | Op::NotIn, _) => return Err(CoreError::invalid("'in' takes a list")),
            // `\` escapes the character after it: one that ends a pattern
            // escapes nothing, which PostgreSQL refuses and SQLite matches
            // against nothing.
            (Op::Like, Value::Text(pattern))
                if field_type == FieldType::Text && pattern.len() > MAX_PATTERN =>
            {
                return Err(CoreError::invalid(format!(
                    "a pattern may be at most {MAX_PATTERN} bytes"
                )))
            }
            (Op::Like, Value::Text(pattern))
                if field_type == FieldType::Text && ends_in_an_escape(pattern) =>
            {
                return Err(CoreError::invalid(
                    "a pattern cannot end in an unescaped `\\`",
                ))
            }
            (Op::Like | Op::Regex, Value::Text(_)) if field_type == FieldType::Text => {}
            (Op::Like | Op::Regex, _) => {
                return Err(CoreError::invalid(format!(
                    "{field:?} does not support pattern matching"
                )))
            }
            (_, value) if value.type_matches(field_type) => {}
            (_, value) => {
                return Err(CoreError::invalid(format!(
                    "{field:?} cannot be compared with {value:?}"
                )))
            }
        }
        Ok(Self::Compare { field, op, value })
    }

    /// A comparison from user text: `in` splits the text on commas.
    pub fn parse(field: Field, op: Op, raw: &str) -> Result<Self, CoreError> {
        let value = match op {
            Op::In | Op::NotIn => Value::List(
                raw.split(',')
                    .map(|item| Value::parse(field, item))
                    .collect::<Result<_, _>>()?,
            ),
            Op::Like | Op::Regex => Value::Text(raw.to_owned()),
            _ => Value::parse(field, raw)?,
        };
        Self::compare(field, op, value)
    }

    pub fn and(self, other: Condition) -> Condition {
        match self {
            Condition::All(mut items) => {
                items.push(other);
                Condition::All(items)
            }
            first => Condition::All(vec![first, other]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    pub field: Field,
    pub direction: Direction,
}

/// The most a page may hold, whatever a dialect allows.
pub const MAX_PAGE: u64 = 1000;

/// A filtered, sorted page of images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub condition: Condition,
    pub sort: Vec<Sort>,
    pub offset: u64,
    pub limit: u64,
}

impl Query {
    /// Every image, in the order they were made, `limit` at a time.
    pub fn new(limit: u64) -> Self {
        Self {
            condition: Condition::All(Vec::new()),
            sort: Vec::new(),
            offset: 0,
            limit: limit.clamp(1, MAX_PAGE),
        }
    }

    pub fn filter(mut self, condition: Condition) -> Self {
        self.condition = self.condition.and(condition);
        self
    }

    pub fn sort_by(mut self, field: Field, direction: Direction) -> Self {
        self.sort.push(Sort { field, direction });
        self
    }

    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `like` pattern is matched at every row: it may be 256 bytes long.
    #[test]
    fn like_patterns_are_bounded() {
        let pattern = |length: usize| Value::Text("a".repeat(length));
        assert!(Condition::compare(Field::Name, Op::Like, pattern(MAX_PATTERN)).is_ok());
        let error = Condition::compare(Field::Name, Op::Like, pattern(MAX_PATTERN + 1))
            .unwrap_err()
            .to_string();
        assert!(error.contains("at most 1024 bytes"), "{error}");
    }

    #[test]
    fn values_are_typed_by_field() {
        assert_eq!(Value::parse(Field::Id, "42").unwrap(), Value::Int(42));
        assert!(Value::parse(Field::Id, "4x").is_err());
        assert_eq!(
            Value::parse(Field::Public, "TRUE").unwrap(),
            Value::Bool(true)
        );
        assert!(Value::parse(Field::Public, "maybe").is_err());
        assert!(matches!(
            Value::parse(Field::CreatedAt, "2017-11-24").unwrap(),
            Value::Time(_)
        ));
        assert!(Value::parse(Field::CreatedAt, "yesterday").is_err());
    }

    #[test]
    fn like_is_only_for_text() {
        assert!(Condition::parse(Field::Name, Op::Like, "ubu%").is_ok());
        assert!(Condition::parse(Field::Size, Op::Like, "1%").is_err());
        // A trailing `\` escapes nothing; an escaped one is a character.
        assert!(Condition::parse(Field::Name, Op::Like, "ubu\\").is_err());
        assert!(Condition::parse(Field::Name, Op::Like, "ubu\\\\").is_ok());
        assert!(Condition::parse(Field::Name, Op::Like, "100\\%").is_ok());
    }

    #[test]
    fn in_splits_and_types_each_item() {
        let condition = Condition::parse(Field::Id, Op::In, "1,2,3").unwrap();
        assert_eq!(
            condition,
            Condition::Compare {
                field: Field::Id,
                op: Op::In,
                value: Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)])
            }
        );
        assert!(Condition::parse(Field::Id, Op::In, "1,x").is_err());
        assert!(Condition::compare(Field::Id, Op::In, Value::Int(1)).is_err());
    }

    #[test]
    fn operators_parse_by_name_only() {
        assert_eq!(Op::parse("ge").unwrap(), Op::Ge);
        assert!(Op::parse("; drop table images").is_err());
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(Query::new(0).limit, 1);
        assert_eq!(Query::new(1_000_000).limit, MAX_PAGE);
    }
}
