//! MWS syntax into core types: the global URL parameters, MongoDB-style
//! `query` and `sort` JSON, and image request bodies.

use std::fmt;

use app::error::CoreError;
use app::model::{ImageRef, ProvisioningDraft, ProvisioningType};
use app::query::{Condition, Direction, Field, FieldType, Op, Sort, Value, MAX_PAGE};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

/// Nesting deeper than this in `$and`/`$or` is refused.
const MAX_DEPTH: usize = 8;
/// The most comparisons one query may hold: MWS's own budget, tighter
/// than the core's bound on conditions, counted as the JSON is read.
const MAX_TERMS: usize = 256;

/// The global URL parameters of an MWS call.
#[derive(Debug, Default)]
pub struct Params {
    pub query: Option<String>,
    pub sort: Option<String>,
    pub fields: Option<Vec<String>>,
    pub exclude_fields: Option<Vec<String>>,
    pub max: u64,
    pub offset: u64,
    pub pretty: bool,
}

fn invalid(message: impl Into<String>) -> CoreError {
    CoreError::invalid(message)
}

fn count(name: &str, raw: &str) -> Result<u64, CoreError> {
    raw.trim()
        .parse::<u64>()
        .map_err(|_| invalid(format!("{name} must be a whole number, got '{raw}'")))
}

/// The most field names `fields` or `exclude-fields` may list: an image
/// shows fewer, and each name is looked for in every image of the page.
const MAX_FIELD_NAMES: usize = 64;

/// A comma-separated list of field names, sorted and each once: each image
/// of a page looks its keys up in it by a binary search (`views::image`).
fn names(key: &str, raw: &str) -> Result<Vec<String>, CoreError> {
    let names: std::collections::BTreeSet<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if names.len() > MAX_FIELD_NAMES {
        return Err(invalid(format!(
            "{key} lists at most {MAX_FIELD_NAMES} field names"
        )));
    }
    Ok(names.into_iter().map(str::to_owned).collect())
}

/// Reads the query string; `api-version` must be `3` or `latest`.
pub fn params(raw: Option<&str>) -> Result<Params, CoreError> {
    let mut params = Params {
        max: MAX_PAGE,
        ..Params::default()
    };
    let mut version = None;
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "api-version" => version = Some(value.into_owned()),
            "query" => params.query = Some(value.into_owned()),
            "sort" => params.sort = Some(value.into_owned()),
            "fields" => params.fields = Some(names("fields", &value)?),
            "exclude-fields" => params.exclude_fields = Some(names("exclude-fields", &value)?),
            "max" => {
                params.max = count("max", &value)?;
                if params.max == 0 {
                    return Err(invalid("max must be at least 1"));
                }
                params.max = params.max.min(MAX_PAGE);
            }
            "offset" => params.offset = count("offset", &value)?,
            "pretty" => params.pretty = !matches!(value.as_ref(), "false" | "0"),
            _ => {}
        }
    }
    match version.as_deref() {
        Some("3" | "latest") => Ok(params),
        Some(other) => Err(invalid(format!(
            "api-version '{other}' is not supported; use api-version=3"
        ))),
        None => Err(invalid(
            "the api-version parameter is required; use api-version=3",
        )),
    }
}

/// The MWS name of each image field a query or sort may use.
const FIELDS: [(&str, Field); 17] = [
    ("id", Field::Id),
    ("name", Field::Name),
    ("osType", Field::OsType),
    ("hypervisor", Field::Hypervisor),
    ("hypervisorType", Field::HypervisorType),
    ("supportsPhysicalMachine", Field::SupportsPhysicalMachine),
    ("supportsVirtualMachine", Field::SupportsVirtualMachine),
    ("templateName", Field::TemplateName),
    ("type", Field::ProvisioningType),
    ("active", Field::Active),
    ("version", Field::Version),
    // What inspecting the bytes found (query and sort only; the seed's
    // image shape has no room to show them).
    ("volumeLabel", Field::VolumeLabel),
    ("cpus", Field::Cpus),
    ("memoryMib", Field::MemoryMib),
    ("product", Field::Product),
    ("vendor", Field::Vendor),
    ("productVersion", Field::ProductVersion),
];

/// The field an MWS name stands for.
pub fn field(name: &str) -> Result<Field, CoreError> {
    FIELDS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, field)| *field)
        .ok_or_else(|| {
            let known: Vec<&str> = FIELDS.iter().map(|(known, _)| *known).collect();
            invalid(format!(
                "'{name}' cannot be queried or sorted on; use one of {}",
                known.join(", ")
            ))
        })
}

/// A JSON operand as a typed value of a field.
enum Operand {
    Value(Value),
    Null,
    /// A non-integer id: it names no image.
    NoImage,
}

fn operand(name: &str, field: Field, json: &Json) -> Result<Operand, CoreError> {
    let wrong = |what: &str| invalid(format!("'{name}' is compared with {what}, got {json}"));
    Ok(match (field.value_type(), json) {
        (_, Json::Null) => Operand::Null,
        (FieldType::Int, Json::Number(number)) => Operand::Value(Value::Int(
            number.as_i64().ok_or_else(|| wrong("an integer"))?,
        )),
        (FieldType::Int, Json::String(text)) => match text.parse::<i64>() {
            Ok(number) => Operand::Value(Value::Int(number)),
            Err(_) if field == Field::Id => Operand::NoImage,
            Err(_) => return Err(wrong("an integer")),
        },
        (FieldType::Int, _) => return Err(wrong("an integer")),
        (FieldType::Text, Json::String(text)) => Operand::Value(Value::Text(text.clone())),
        (FieldType::Text, _) => return Err(wrong("a string")),
        (FieldType::Bool, Json::Bool(flag)) => Operand::Value(Value::Bool(*flag)),
        (FieldType::Bool, _) => return Err(wrong("true or false")),
        (FieldType::Time, Json::String(text)) => Operand::Value(Value::Time(
            app::query::parse_time(text).ok_or_else(|| wrong("a date"))?,
        )),
        (FieldType::Time, _) => return Err(wrong("a date")),
    })
}

/// Always true, or always false.
fn constant(holds: bool) -> Condition {
    if holds {
        Condition::All(Vec::new())
    } else {
        Condition::Any(Vec::new())
    }
}

/// `$eq` (or plain equality) when `equal`, else `$ne`. As in MongoDB, `null`
/// matches a field that is not set.
fn equality(name: &str, field: Field, json: &Json, equal: bool) -> Result<Condition, CoreError> {
    match operand(name, field, json)? {
        Operand::Null => Ok(Condition::Exists {
            field,
            exists: !equal,
        }),
        Operand::NoImage => Ok(constant(!equal)),
        Operand::Value(value) => {
            Condition::compare(field, if equal { Op::Eq } else { Op::Ne }, value)
        }
    }
}

fn ordering(name: &str, field: Field, op: Op, json: &Json) -> Result<Condition, CoreError> {
    match operand(name, field, json)? {
        Operand::Value(value) => Condition::compare(field, op, value),
        _ => Err(invalid(format!(
            "'{name}' cannot be ordered against {json}"
        ))),
    }
}

/// `$in` when `inside`, else `$nin`.
fn membership(name: &str, field: Field, json: &Json, inside: bool) -> Result<Condition, CoreError> {
    let operator = if inside { "$in" } else { "$nin" };
    let Json::Array(items) = json else {
        return Err(invalid(format!("{operator} takes an array")));
    };
    if items.is_empty() || items.len() > 1000 {
        return Err(invalid(format!("{operator} takes 1 to 1000 values")));
    }
    let mut values = Vec::with_capacity(items.len());
    for item in items {
        match operand(name, field, item)? {
            Operand::Value(value) => values.push(value),
            Operand::NoImage => {}
            Operand::Null => {
                return Err(invalid(format!("{operator} cannot hold null; use $exists")))
            }
        }
    }
    if values.is_empty() {
        return Ok(constant(!inside));
    }
    Condition::compare(
        field,
        if inside { Op::In } else { Op::NotIn },
        Value::List(values),
    )
}

fn pattern(
    name: &str,
    field: Field,
    json: &Json,
    options: Option<&Json>,
) -> Result<Condition, CoreError> {
    let Json::String(pattern) = json else {
        return Err(invalid("$regex takes a string"));
    };
    let case_insensitive = match options {
        None => false,
        Some(Json::String(flags)) if flags.chars().all(|c| c == 'i') => !flags.is_empty(),
        Some(other) => {
            return Err(invalid(format!(
                "$options {other} is not supported; only \"i\" is"
            )))
        }
    };
    let pattern = if case_insensitive {
        format!("(?i){pattern}")
    } else {
        pattern.clone()
    };
    Condition::compare(field, Op::Regex, Value::Text(pattern))
        .map_err(|_| invalid(format!("$regex does not apply to '{name}'")))
}

/// Several conditions that must all hold, without needless nesting.
fn all_of(mut parts: Vec<Condition>) -> Condition {
    if parts.len() == 1 {
        parts.swap_remove(0)
    } else {
        Condition::All(parts)
    }
}

struct Compiler {
    terms: usize,
}

impl Compiler {
    fn spend(&mut self) -> Result<(), CoreError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(invalid(format!(
                "a query may hold at most {MAX_TERMS} comparisons"
            )));
        }
        Ok(())
    }

    fn document(&mut self, json: &Json, depth: usize) -> Result<Condition, CoreError> {
        let Json::Object(map) = json else {
            return Err(invalid(
                "a query is a JSON object, such as {\"osType\":\"linux\"}",
            ));
        };
        if depth > MAX_DEPTH {
            return Err(invalid(format!(
                "$and/$or may nest at most {MAX_DEPTH} levels"
            )));
        }
        let mut parts = Vec::with_capacity(map.len());
        for (key, value) in map {
            match key.as_str() {
                "$and" | "$or" => {
                    let Json::Array(items) = value else {
                        return Err(invalid(format!("{key} takes an array of queries")));
                    };
                    if items.is_empty() {
                        return Err(invalid(format!("{key} takes at least one query")));
                    }
                    let inner = items
                        .iter()
                        .map(|item| self.document(item, depth + 1))
                        .collect::<Result<Vec<_>, _>>()?;
                    parts.push(if key == "$and" {
                        Condition::All(inner)
                    } else {
                        Condition::Any(inner)
                    });
                }
                operator if operator.starts_with('$') => {
                    return Err(invalid(format!(
                        "unknown operator '{operator}' (at the top level only $and and $or)"
                    )))
                }
                name => parts.push(self.field_condition(name, value)?),
            }
        }
        Ok(all_of(parts))
    }

    fn field_condition(&mut self, name: &str, json: &Json) -> Result<Condition, CoreError> {
        let field = field(name)?;
        let operators = match json {
            Json::Object(map) if map.keys().next().is_some_and(|key| key.starts_with('$')) => map,
            Json::Object(_) | Json::Array(_) => {
                return Err(invalid(format!(
                    "'{name}' is compared with a value or an operator object such as {{\"$gt\": 1}}"
                )))
            }
            value => {
                self.spend()?;
                return equality(name, field, value, true);
            }
        };
        let options = operators.get("$options");
        if options.is_some() && !operators.contains_key("$regex") {
            return Err(invalid("$options goes with $regex"));
        }
        let mut parts = Vec::with_capacity(operators.len());
        for (operator, operand) in operators {
            self.spend()?;
            parts.push(match operator.as_str() {
                "$eq" => equality(name, field, operand, true)?,
                "$ne" => equality(name, field, operand, false)?,
                "$gt" => ordering(name, field, Op::Gt, operand)?,
                "$gte" => ordering(name, field, Op::Ge, operand)?,
                "$lt" => ordering(name, field, Op::Lt, operand)?,
                "$lte" => ordering(name, field, Op::Le, operand)?,
                "$in" => membership(name, field, operand, true)?,
                "$nin" => membership(name, field, operand, false)?,
                "$exists" => match operand {
                    Json::Bool(exists) => Condition::Exists {
                        field,
                        exists: *exists,
                    },
                    _ => return Err(invalid("$exists takes true or false")),
                },
                "$regex" => pattern(name, field, operand, options)?,
                "$options" => continue,
                other => {
                    return Err(invalid(format!(
                        "unknown operator '{other}'; use $eq $ne $gt $gte $lt $lte $in $nin \
                         $exists $regex $and $or"
                    )))
                }
            });
        }
        Ok(all_of(parts))
    }
}

/// Compiles a MongoDB-style `query` into a core condition.
pub fn condition(text: &str) -> Result<Condition, CoreError> {
    let json: Json = serde_json::from_str(text)
        .map_err(|error| invalid(format!("query is not valid JSON: {error}")))?;
    Compiler { terms: 0 }.document(&json, 0)
}

/// A JSON object's entries in the order they were written.
struct Entries(Vec<(String, Json)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Json>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// Reads `sort={"name":-1,"id":1}`: keys in order, `1` ascending, `-1` descending.
pub fn sort(text: &str) -> Result<Vec<Sort>, CoreError> {
    let Entries(entries) = serde_json::from_str(text)
        .map_err(|error| invalid(format!("sort is not a JSON object: {error}")))?;
    entries
        .iter()
        .map(|(name, direction)| {
            let direction = match direction.as_i64() {
                Some(1) => Direction::Asc,
                Some(-1) => Direction::Desc,
                _ => {
                    return Err(invalid(format!(
                        "sort direction of '{name}' must be 1 or -1, got {direction}"
                    )))
                }
            };
            Ok(Sort {
                field: field(name)?,
                direction,
            })
        })
        .collect()
}

/// Reads a field that may be absent (`None`), `null` (`Some(None)`) or set.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An image as MWS clients send it (no other key is taken).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ImageWrite)]
pub struct ImageBody {
    /// Read-only: the URL names the image.
    #[serde(default, rename = "id")]
    #[schema(value_type = Option<String>)]
    _id: Option<Json>,
    /// Required on `POST`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,255}$")]
    name: Option<String>,
    /// Required on `POST`.
    #[schema(pattern = r"\S")]
    os_type: Option<String>,
    hypervisor: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    hypervisor_type: Option<Option<String>>,
    supports_physical_machine: Option<bool>,
    supports_virtual_machine: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    template_name: Option<Option<String>>,
    /// `stateful` unless set; `linkedclone` takes a `templateName`.
    #[serde(default, rename = "type", deserialize_with = "nullable")]
    #[schema(value_type = Option<ProvisioningType>)]
    provisioning_type: Option<Option<String>>,
    active: Option<bool>,
    features: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    extensions: Option<Map<String, Json>>,
    /// `{"id": …}` or `{"name": …}` each.
    #[schema(value_type = Option<Vec<Object>>)]
    virtualized_images: Option<Vec<Map<String, Json>>>,
    /// Read-only, but checked on `PUT` against the stored version.
    version: Option<i64>,
}

/// One `virtualizedImages` entry: `{"id": …}` or `{"name": …}`.
fn image_ref(entry: &Map<String, Json>) -> Result<ImageRef, CoreError> {
    match (entry.get("id"), entry.get("name"), entry.len()) {
        (Some(Json::String(id)), None, 1) => Ok(ImageRef::Id(id.clone())),
        (Some(Json::Number(id)), None, 1) => Ok(ImageRef::Id(id.to_string())),
        (None, Some(Json::String(name)), 1) => Ok(ImageRef::Name(name.clone())),
        _ => Err(invalid(format!(
            "virtualizedImages entries are {{\"id\": …}} or {{\"name\": …}}, got {}",
            Json::Object(entry.clone())
        ))),
    }
}

/// An image body as a draft and the `version` it carries.
pub fn image_body(bytes: &[u8]) -> Result<(ProvisioningDraft, Option<i64>), CoreError> {
    let body: ImageBody = serde_json::from_slice(bytes)
        .map_err(|error| invalid(format!("invalid image: {error}")))?;
    let virtualized_images = body
        .virtualized_images
        .map(|entries| entries.iter().map(image_ref).collect::<Result<Vec<_>, _>>())
        .transpose()?;
    let draft = ProvisioningDraft {
        name: body.name,
        os_type: body.os_type,
        hypervisor: body.hypervisor,
        hypervisor_type: body.hypervisor_type,
        supports_physical_machine: body.supports_physical_machine,
        supports_virtual_machine: body.supports_virtual_machine,
        template_name: body.template_name,
        provisioning_type: body.provisioning_type,
        active: body.active,
        features: body.features,
        extensions: body.extensions,
        virtualized_images,
    };
    Ok((draft, body.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare(field: Field, op: Op, value: Value) -> Condition {
        Condition::Compare { field, op, value }
    }

    #[test]
    fn the_seed_query_is_an_and_of_equalities() {
        // JSON objects are read in key order; AND does not care.
        assert_eq!(
            condition(r#"{"type":"stateful","osType":"linux"}"#).unwrap(),
            Condition::All(vec![
                compare(Field::OsType, Op::Eq, Value::Text("linux".into())),
                compare(
                    Field::ProvisioningType,
                    Op::Eq,
                    Value::Text("stateful".into())
                ),
            ])
        );
    }

    #[test]
    fn operators_nest_under_and_or() {
        let parsed = condition(
            r#"{"$or":[{"version":{"$gte":1,"$lt":3}},{"name":{"$regex":"^cent","$options":"i"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            Condition::Any(vec![
                Condition::All(vec![
                    compare(Field::Version, Op::Ge, Value::Int(1)),
                    compare(Field::Version, Op::Lt, Value::Int(3)),
                ]),
                compare(Field::Name, Op::Regex, Value::Text("(?i)^cent".into())),
            ])
        );
    }

    #[test]
    fn null_means_unset_and_foreign_ids_match_nothing() {
        assert_eq!(
            condition(r#"{"templateName":null}"#).unwrap(),
            Condition::Exists {
                field: Field::TemplateName,
                exists: false
            }
        );
        assert_eq!(
            condition(r#"{"id":"4fa197e68ca30fc605dd1cf0"}"#).unwrap(),
            Condition::Any(vec![])
        );
        assert_eq!(
            condition(r#"{"id":{"$in":["7","x"]}}"#).unwrap(),
            compare(Field::Id, Op::In, Value::List(vec![Value::Int(7)]))
        );
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for (query, reason) in [
            ("{", "not valid JSON"),
            ("[1]", "JSON object"),
            (r#"{"name":{"$where":"1"}}"#, "unknown operator '$where'"),
            (r#"{"$nor":[]}"#, "unknown operator '$nor'"),
            (r#"{"password":"x"}"#, "cannot be queried"),
            (r#"{"name; drop table images":"x"}"#, "cannot be queried"),
            (r#"{"version":"abc"}"#, "an integer"),
            (r#"{"hypervisor":"yes"}"#, "true or false"),
            (r#"{"name":{"$in":"x"}}"#, "takes an array"),
            (r#"{"name":{"$exists":1}}"#, "true or false"),
            (r#"{"$and":[]}"#, "at least one"),
            (r#"{"name":{"$options":"i"}}"#, "goes with $regex"),
            (r#"{"version":{"$regex":"1"}}"#, "does not apply"),
            (r#"{"name":{"first":"x"}}"#, "operator object"),
        ] {
            let error = condition(query).unwrap_err().to_string();
            assert!(error.contains(reason), "{query}: {error}");
        }
    }

    #[test]
    fn deep_or_huge_queries_are_refused() {
        let deep = format!("{}{{}}{}", r#"{"$and":["#.repeat(12), "]}".repeat(12));
        assert!(condition(&deep).unwrap_err().to_string().contains("nest"));
        let wide = format!(
            r#"{{"name":{{"$in":["a"]}},"$or":[{}]}}"#,
            vec![r#"{"version":1}"#; 300].join(",")
        );
        assert!(condition(&wide)
            .unwrap_err()
            .to_string()
            .contains("at most"));
    }

    #[test]
    fn sort_keeps_key_order() {
        let sorts = sort(r#"{"name":-1,"id":1}"#).unwrap();
        assert_eq!(sorts[0].field, Field::Name);
        assert_eq!(sorts[0].direction, Direction::Desc);
        assert_eq!(sorts[1].field, Field::Id);
        assert!(sort(r#"{"name":2}"#).is_err());
        assert!(sort(r#"{"secret":1}"#).is_err());
    }

    #[test]
    fn api_version_is_required() {
        assert!(params(None).unwrap_err().to_string().contains("required"));
        assert!(params(Some("api-version=2")).is_err());
        let parsed = params(Some("api-version=latest&max=5&offset=2&fields=id,name")).unwrap();
        assert_eq!((parsed.max, parsed.offset), (5, 2));
        assert_eq!(parsed.fields.unwrap(), ["id", "name"]);
        assert!(params(Some("api-version=3&max=-1")).is_err());
    }

    #[test]
    fn field_lists_are_sorted_once_and_bounded() {
        let parsed = params(Some("api-version=3&fields=name,id,name,,id")).unwrap();
        assert_eq!(parsed.fields.unwrap(), ["id", "name"]);
        // Thirty thousand names, each compared with every key of every
        // image of a page, held a worker for seconds.
        let flood = format!("api-version=3&exclude-fields={}", "a,b,".repeat(15_000));
        assert_eq!(
            params(Some(&flood)).unwrap().exclude_fields.unwrap(),
            ["a", "b"]
        );
        let many: Vec<String> = (0..65).map(|n| format!("f{n}")).collect();
        let error = params(Some(&format!("api-version=3&fields={}", many.join(","))));
        assert!(error.unwrap_err().to_string().contains("at most 64"));
        let error = params(Some(&format!(
            "api-version=3&exclude-fields={}",
            many[..64].join(",")
        )));
        assert!(error.is_ok());
    }

    #[test]
    fn bodies_read_nulls_refs_and_refuse_unknown_fields() {
        let (draft, version) = image_body(
            br#"{"name":"esx","hypervisor":true,"templateName":null,"version":4,
                "virtualizedImages":[{"id":"12"},{"name":"centos5-stateful"}]}"#,
        )
        .unwrap();
        assert_eq!(version, Some(4));
        assert_eq!(draft.template_name, Some(None));
        assert_eq!(draft.hypervisor_type, None);
        assert_eq!(
            draft.virtualized_images.unwrap(),
            [
                ImageRef::Id("12".into()),
                ImageRef::Name("centos5-stateful".into())
            ]
        );
        assert!(image_body(br#"{"name":"x","owner":"root"}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        assert!(image_body(br#"{"virtualizedImages":[{"id":"1","name":"x"}]}"#).is_err());
    }
}
