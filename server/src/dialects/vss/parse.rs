//! VSS list parameters into core types: `page`, `per_page`, `expand`,
//! `filter=<field>,<op>,<value>` and `sort=<field>,<asc|desc>`.

use app::error::CoreError;
use app::model::ImageKind;
use app::query::{Condition, Direction, Field, Op, Sort};

/// What a list shows, and so which fields it filters and sorts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// OVA/OVF images: `/v2/image`, `/v2/user/image/vm`.
    Images,
    /// ISOs: `/v2/iso`, `/v2/user/image/iso`.
    Isos,
}

impl Listing {
    /// The kind of image a listing holds.
    pub fn kind(self) -> ImageKind {
        match self {
            Self::Images => ImageKind::Vm,
            Self::Isos => ImageKind::Iso,
        }
    }

    /// The most items a page holds; a larger `per_page` is clamped.
    pub fn max_per_page(self) -> u64 {
        match self {
            Self::Images => 100,
            Self::Isos => 250,
        }
    }

    /// The fields an item shows, by their VSS names (filters and sorts also
    /// take [`INSPECTED`]).
    fn fields(self) -> &'static [(&'static str, Field)] {
        const IMAGES: [(&str, Field); 9] = [
            ("id", Field::Id),
            ("name", Field::Name),
            ("label", Field::Label),
            ("path", Field::Path),
            ("data_store", Field::DataStore),
            ("folder", Field::Folder),
            ("public", Field::Public),
            ("created_on", Field::CreatedAt),
            ("updated_on", Field::UpdatedAt),
        ];
        const ISOS: [(&str, Field); 7] = [
            ("id", Field::Id),
            ("name", Field::Name),
            ("path", Field::Path),
            ("data_store", Field::DataStore),
            ("public", Field::Public),
            ("created_on", Field::CreatedAt),
            ("updated_on", Field::UpdatedAt),
        ];
        match self {
            Self::Images => &IMAGES,
            Self::Isos => &ISOS,
        }
    }

    fn field(self, name: &str) -> Result<Field, CoreError> {
        self.fields()
            .iter()
            .chain(INSPECTED.iter())
            .find(|(known, _)| *known == name)
            .map(|(_, field)| *field)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .fields()
                    .iter()
                    .chain(INSPECTED.iter())
                    .map(|(known, _)| *known)
                    .collect();
                CoreError::invalid(format!(
                    "unknown field '{name}'; use one of {}",
                    known.join(", ")
                ))
            })
    }
}

/// The items per page unless the caller says otherwise.
pub const DEFAULT_PER_PAGE: u64 = 10;

/// A list request, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    pub page: u64,
    pub per_page: u64,
    pub expand: bool,
    pub condition: Condition,
    pub sort: Vec<Sort>,
    /// The filters as sent, for `meta.filter`.
    pub filter_text: Option<String>,
    /// The sort as sent, for `meta.sort`.
    pub sort_text: Option<String>,
    /// The query string's pairs in order, for page links.
    pub pairs: Vec<(String, String)>,
}

fn positive(name: &str, raw: &str) -> Result<u64, CoreError> {
    match raw.trim().parse::<u64>() {
        Ok(number) if number >= 1 => Ok(number),
        _ => Err(CoreError::invalid(format!(
            "{name} must be a whole number of at least 1, got '{raw}'"
        ))),
    }
}

/// One `<field>,<op>,<value>`; the value may itself hold commas (`in`).
fn filter(listing: Listing, text: &str) -> Result<Condition, CoreError> {
    let mut parts = text.splitn(3, ',');
    let (Some(name), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CoreError::invalid(format!(
            "a filter is <field>,<operator>,<value>, got '{text}'"
        )));
    };
    let field = listing.field(name.trim())?;
    Condition::parse(field, Op::parse(op.trim())?, value)
}

/// One `<field>,<asc|desc>` (the direction defaults to ascending).
fn sort(listing: Listing, text: &str) -> Result<Sort, CoreError> {
    let (name, direction) = text.split_once(',').unwrap_or((text, "asc"));
    let direction = match direction.trim().to_ascii_lowercase().as_str() {
        "asc" => Direction::Asc,
        "desc" => Direction::Desc,
        other => {
            return Err(CoreError::invalid(format!(
                "a sort direction is asc or desc, got '{other}'"
            )))
        }
    };
    Ok(Sort {
        field: listing.field(name.trim())?,
        direction,
    })
}

/// Reads a list's query string.
pub fn list_params(listing: Listing, raw: Option<&str>) -> Result<ListParams, CoreError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    let mut params = ListParams {
        page: 1,
        per_page: DEFAULT_PER_PAGE,
        expand: false,
        condition: Condition::All(Vec::new()),
        sort: Vec::new(),
        filter_text: None,
        sort_text: None,
        pairs: Vec::new(),
    };
    let mut filters = Vec::new();
    let mut sorts = Vec::new();
    for (key, value) in &pairs {
        match key.as_str() {
            "page" => params.page = positive("page", value)?,
            "per_page" => {
                params.per_page = positive("per_page", value)?.min(listing.max_per_page())
            }
            "expand" => params.expand = !matches!(value.as_str(), "" | "0" | "false"),
            "filter" => filters.push(value.clone()),
            "sort" => sorts.push(value.clone()),
            // A bare `?name=…` (as pyvss sends) is an equality filter.
            name => {
                if let Ok(field) = listing.field(name) {
                    params.condition =
                        params
                            .condition
                            .and(Condition::parse(field, Op::Eq, value)?);
                }
            }
        }
    }
    for text in &filters {
        for one in text.split(';').filter(|one| !one.trim().is_empty()) {
            params.condition = params.condition.and(filter(listing, one)?);
        }
    }
    for text in &sorts {
        for one in text.split(';').filter(|one| !one.trim().is_empty()) {
            params.sort.push(sort(listing, one)?);
        }
    }
    // Each condition is a scan of every row the caller may read, a
    // pattern's a scan of its bytes too: a page asks for a few.
    if matches!(&params.condition, Condition::All(all) if all.len() > MAX_FILTERS) {
        return Err(CoreError::invalid(format!(
            "a page takes at most {MAX_FILTERS} filters"
        )));
    }
    params.filter_text = (!filters.is_empty()).then(|| filters.join(";"));
    params.sort_text = (!sorts.is_empty()).then(|| sorts.join(";"));
    params.pairs = pairs;
    Ok(params)
}

/// The most filters one page takes (the core bounds its sort keys).
const MAX_FILTERS: usize = 16;

/// The most sync requests a page holds.
const MAX_REQUESTS_PER_PAGE: u64 = 100;

/// Reads the query string of `/v2/request/image_sync`: `page`, `per_page`
/// and `filter=status,eq,<STATUS>`, the one filter requests take. Answers
/// the paging and the status asked for.
pub fn sync_list_params(raw: Option<&str>) -> Result<(ListParams, Option<String>), CoreError> {
    let mut params = ListParams {
        page: 1,
        per_page: DEFAULT_PER_PAGE,
        expand: true,
        condition: Condition::All(Vec::new()),
        sort: Vec::new(),
        filter_text: None,
        sort_text: None,
        pairs: form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect(),
    };
    let mut status = None;
    for (key, value) in &params.pairs {
        match key.as_str() {
            "page" => params.page = positive("page", value)?,
            "per_page" => params.per_page = positive("per_page", value)?.min(MAX_REQUESTS_PER_PAGE),
            "filter" => {
                let wanted = value.strip_prefix("status,eq,").ok_or_else(|| {
                    CoreError::invalid("image sync requests filter on status,eq,<STATUS> only")
                })?;
                status = Some(wanted.to_owned());
            }
            _ => {}
        }
    }
    params.filter_text = status.as_ref().map(|status| format!("status,eq,{status}"));
    Ok((params, status))
}

/// What inspecting the bytes found: filters and sorts take these too,
/// though the seeds' items have no room to show them.
const INSPECTED: [(&str, Field); 9] = [
    ("format", Field::Format),
    ("virtual_size", Field::VirtualSize),
    ("volume_label", Field::VolumeLabel),
    ("os_type", Field::OsType),
    ("cpus", Field::Cpus),
    ("memory_mib", Field::MemoryMib),
    ("product", Field::Product),
    ("vendor", Field::Vendor),
    ("product_version", Field::ProductVersion),
];

#[cfg(test)]
mod tests {
    use super::*;
    use app::query::Value;

    #[test]
    fn the_seed_filter_and_sort_parse() {
        let params = list_params(
            Listing::Images,
            Some("filter=name,like,ubu%&expand=1&sort=path,asc"),
        )
        .unwrap();
        assert!(params.expand);
        assert_eq!(
            params.condition,
            Condition::All(vec![Condition::Compare {
                field: Field::Name,
                op: Op::Like,
                value: Value::Text("ubu%".into())
            }])
        );
        assert_eq!(params.sort[0].field, Field::Path);
        assert_eq!(params.filter_text.as_deref(), Some("name,like,ubu%"));
        assert_eq!(params.sort_text.as_deref(), Some("path,asc"));
    }

    /// Each filter is a scan of the rows the caller may read: a page takes
    /// a few, however they are spelled.
    #[test]
    fn a_page_takes_a_bounded_number_of_filters() {
        let filters = |count: usize, joiner: &str| {
            let one: Vec<String> = (0..count).map(|n| format!("name,like,{n}%")).collect();
            one.join(joiner)
        };
        let query = format!("filter={}", filters(MAX_FILTERS, ";"));
        assert!(list_params(Listing::Images, Some(&query)).is_ok());
        for query in [
            format!("filter={}", filters(MAX_FILTERS + 1, ";")),
            format!("filter={}", filters(MAX_FILTERS + 1, "&filter=")),
            format!("{}&filter=id,gt,1", "name=a&".repeat(MAX_FILTERS)),
        ] {
            let error = list_params(Listing::Images, Some(&query)).unwrap_err();
            assert!(error.to_string().contains("at most"), "{query}: {error}");
        }
    }

    #[test]
    fn several_filters_and_sorts_combine() {
        let params = list_params(
            Listing::Isos,
            Some("filter=name,like,C%25;id,in,1,2,3&filter=public,eq,true&sort=name,desc;id,asc"),
        )
        .unwrap();
        let Condition::All(parts) = &params.condition else {
            panic!("{:?}", params.condition)
        };
        assert_eq!(parts.len(), 3);
        assert_eq!(params.sort.len(), 2);
    }

    #[test]
    fn per_page_is_clamped_but_nonsense_is_refused() {
        assert_eq!(
            list_params(Listing::Images, Some("per_page=250"))
                .unwrap()
                .per_page,
            100
        );
        assert_eq!(
            list_params(Listing::Isos, Some("per_page=250"))
                .unwrap()
                .per_page,
            250
        );
        for bad in [
            "per_page=-1",
            "per_page=0",
            "page=abc",
            "page=0",
            "filter=name,like",
            "filter=secret,eq,1",
            "filter=name,regex,x",
            "filter=id,lt,abc",
            "sort=name,sideways",
            "sort=password,asc",
            "filter=label,eq,x",
        ] {
            let listing = if bad.contains("label") {
                Listing::Isos
            } else {
                Listing::Images
            };
            assert!(list_params(listing, Some(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn bare_fields_filter_and_unknown_parameters_are_ignored() {
        let params = list_params(Listing::Images, Some("name=x.ova&utm=1")).unwrap();
        assert_eq!(
            params.condition,
            Condition::All(vec![Condition::Compare {
                field: Field::Name,
                op: Op::Eq,
                value: Value::Text("x.ova".into())
            }])
        );
    }
}
