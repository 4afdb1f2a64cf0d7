//! Browsing the catalog.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::model::{DiskFormat, Image, ImageKind, ImagePage};
use chrono::{Datelike, NaiveDate, NaiveTime};

use crate::query::{Condition, Direction, Field, Op, Query, Value};

/// Images per page in the browser unless the URL asks for another of [`PAGE_SIZES`].
pub const UI_PAGE_SIZE: u64 = 20;

/// The page sizes the catalog offers.
pub const PAGE_SIZES: [u64; 4] = [10, 20, 50, 100];

/// The catalog's columns that can be sorted on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortColumn {
    Name,
    Kind,
    Format,
    Size,
    Owner,
    #[default]
    Created,
}

impl SortColumn {
    pub const ALL: [SortColumn; 6] = [
        Self::Name,
        Self::Kind,
        Self::Format,
        Self::Size,
        Self::Owner,
        Self::Created,
    ];

    /// The name in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Kind => "kind",
            Self::Format => "format",
            Self::Size => "size",
            Self::Owner => "owner",
            Self::Created => "created",
        }
    }

    /// The column's heading.
    pub fn title(self) -> &'static str {
        match self {
            Self::Name => "Name",
            Self::Kind => "Kind",
            Self::Format => "Format",
            Self::Size => "Size",
            Self::Owner => "Owner",
            Self::Created => "Created",
        }
    }

    fn field(self) -> Field {
        match self {
            Self::Name => Field::Name,
            Self::Kind => Field::Kind,
            Self::Format => Field::Format,
            Self::Size => Field::Size,
            Self::Owner => Field::Owner,
            Self::Created => Field::CreatedAt,
        }
    }

    /// The order a first click on the heading gives: biggest and newest
    /// first, text from A.
    fn first_direction(self) -> Direction {
        match self {
            Self::Size | Self::Created => Direction::Desc,
            _ => Direction::Asc,
        }
    }
}

/// The catalog's order: a column, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogSort {
    pub column: SortColumn,
    pub direction: Direction,
}

impl Default for CatalogSort {
    fn default() -> Self {
        Self::by(SortColumn::default())
    }
}

impl CatalogSort {
    /// `column` in the order a first click gives.
    pub fn by(column: SortColumn) -> Self {
        Self {
            column,
            direction: column.first_direction(),
        }
    }

    /// Reads `sort` and `dir` from the URL; older links said `newest`.
    pub fn parse(sort: Option<&str>, dir: Option<&str>) -> Self {
        let column = match sort {
            Some("newest") => SortColumn::Created,
            Some(name) => SortColumn::ALL
                .into_iter()
                .find(|column| column.as_str() == name)
                .unwrap_or_default(),
            None => SortColumn::default(),
        };
        let direction = match dir {
            Some("asc") => Direction::Asc,
            Some("desc") => Direction::Desc,
            _ => column.first_direction(),
        };
        Self { column, direction }
    }

    /// The order a click on `column`'s heading asks for: the other way if
    /// the catalog is sorted on it already.
    pub fn toggled(self, column: SortColumn) -> Self {
        if self.column != column {
            return Self::by(column);
        }
        Self {
            column,
            direction: match self.direction {
                Direction::Asc => Direction::Desc,
                Direction::Desc => Direction::Asc,
            },
        }
    }

    /// The name of the direction in the URL.
    pub fn dir_str(self) -> &'static str {
        match self.direction {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        }
    }
}

/// Public records, or private ones only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub const ALL: [Visibility; 2] = [Self::Public, Self::Private];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

/// What the catalog page's URL says: search text, filters, whose images,
/// order, page size and page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogParams {
    pub q: String,
    pub kind: Option<ImageKind>,
    /// The detected format of the bytes.
    pub format: Option<DiskFormat>,
    pub visibility: Option<Visibility>,
    /// An owner's username, exactly.
    pub owner: String,
    /// Part of the guest OS an appliance declares.
    pub os: String,
    /// Made on or after this day (UTC).
    pub created_from: Option<NaiveDate>,
    /// Made on or before this day (UTC).
    pub created_to: Option<NaiveDate>,
    pub mine: bool,
    pub sort: CatalogSort,
    pub per_page: u64,
    /// 1-based.
    pub page: u64,
}

impl Default for CatalogParams {
    fn default() -> Self {
        Self {
            q: String::new(),
            kind: None,
            format: None,
            visibility: None,
            owner: String::new(),
            os: String::new(),
            created_from: None,
            created_to: None,
            mine: false,
            sort: CatalogSort::default(),
            per_page: UI_PAGE_SIZE,
            page: 1,
        }
    }
}

impl CatalogParams {
    /// Reads the page's URL query; a value that does not parse is left at
    /// its default, as a hand-edited link deserves.
    pub fn from_url(get: impl Fn(&str) -> Option<String>) -> Self {
        let text = |key: &str| {
            get(key)
                .map(|value| value.trim().to_owned())
                .unwrap_or_default()
        };
        // Years a database takes whatever its kind (chrono also reads "-5000").
        let date = |key: &str| {
            get(key)
                .and_then(|value| crate::dates::parse_day(value.trim()))
                .filter(|day| (1970..=9999).contains(&day.year()))
        };
        Self {
            q: get("q").unwrap_or_default(),
            kind: get("kind").and_then(|kind| ImageKind::parse(&kind).ok()),
            format: get("format").and_then(|format| DiskFormat::parse(&format).ok()),
            visibility: get("visibility").and_then(|v| Visibility::parse(&v)),
            owner: text("owner"),
            os: text("os"),
            created_from: date("from"),
            created_to: date("to"),
            mine: get("mine").as_deref() == Some("true"),
            sort: CatalogSort::parse(get("sort").as_deref(), get("dir").as_deref()),
            per_page: get("per_page")
                .and_then(|size| size.parse().ok())
                .filter(|size| PAGE_SIZES.contains(size))
                .unwrap_or(UI_PAGE_SIZE),
            page: get("page")
                .and_then(|page| page.parse().ok())
                .unwrap_or(1)
                .max(1),
        }
    }

    /// The URL of the catalog with these parameters at `page`, leaving defaults out.
    pub fn href(&self, page: u64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            query.append_pair("q", &self.q);
        }
        if let Some(kind) = self.kind {
            query.append_pair("kind", kind.as_str());
        }
        if let Some(format) = self.format {
            query.append_pair("format", format.as_str());
        }
        if let Some(visibility) = self.visibility {
            query.append_pair("visibility", visibility.as_str());
        }
        if !self.owner.is_empty() {
            query.append_pair("owner", &self.owner);
        }
        if !self.os.is_empty() {
            query.append_pair("os", &self.os);
        }
        if let Some(from) = self.created_from {
            query.append_pair("from", &from.to_string());
        }
        if let Some(to) = self.created_to {
            query.append_pair("to", &to.to_string());
        }
        if self.mine {
            query.append_pair("mine", "true");
        }
        if self.sort != CatalogSort::default() {
            query.append_pair("sort", self.sort.column.as_str());
            query.append_pair("dir", self.sort.dir_str());
        }
        if self.per_page != UI_PAGE_SIZE {
            query.append_pair("per_page", &self.per_page.to_string());
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{query}")
        }
    }

    /// These parameters sorted another way, from the first page.
    pub fn sorted(&self, sort: CatalogSort) -> Self {
        Self {
            sort,
            page: 1,
            ..self.clone()
        }
    }

    /// The core query for these parameters; `owner` restricts to one user's images.
    pub fn to_query(&self, owner: Option<i64>) -> Result<Query, CoreError> {
        let page = self.page.max(1);
        let per_page = self
            .per_page
            .clamp(1, *PAGE_SIZES.last().unwrap_or(&UI_PAGE_SIZE));
        let mut query = Query::new(per_page).offset((page - 1).saturating_mul(per_page));
        let search = self.q.trim();
        if !search.is_empty() {
            // The search box matches anywhere in the name, label or description, or what
            // inspection found (an ISO's volume label, an appliance's
            // product, its guest OS); `%` and `_` typed by the user are taken
            // literally.
            let pattern = Value::Text(format!("%{}%", escape_like(search)));
            let searched = [
                Field::Name,
                Field::Label,
                Field::Description,
                Field::VolumeLabel,
                Field::Product,
                Field::OsType,
            ];
            query = query.filter(Condition::Any(
                searched
                    .into_iter()
                    .map(|field| Condition::compare(field, Op::Like, pattern.clone()))
                    .collect::<Result<_, _>>()?,
            ));
        }
        let text = |value: &str| Value::Text(value.to_owned());
        if let Some(kind) = self.kind {
            query = query.filter(Condition::compare(
                Field::Kind,
                Op::Eq,
                text(kind.as_str()),
            )?);
        }
        if let Some(format) = self.format {
            query = query.filter(Condition::compare(
                Field::Format,
                Op::Eq,
                text(format.as_str()),
            )?);
        }
        if let Some(visibility) = self.visibility {
            query = query.filter(Condition::compare(
                Field::Public,
                Op::Eq,
                Value::Bool(visibility == Visibility::Public),
            )?);
        }
        if !self.owner.is_empty() {
            query = query.filter(Condition::compare(Field::Owner, Op::Eq, text(&self.owner))?);
        }
        if !self.os.is_empty() {
            let pattern = Value::Text(format!("%{}%", escape_like(&self.os)));
            query = query.filter(Condition::compare(Field::OsType, Op::Like, pattern)?);
        }
        let midnight = |day: NaiveDate| Value::Time(day.and_time(NaiveTime::MIN).and_utc());
        if let Some(from) = self.created_from {
            query = query.filter(Condition::compare(
                Field::CreatedAt,
                Op::Ge,
                midnight(from),
            )?);
        }
        if let Some(to) = self.created_to.and_then(|to| to.succ_opt()) {
            query = query.filter(Condition::compare(Field::CreatedAt, Op::Lt, midnight(to))?);
        }
        if let Some(owner) = owner {
            query = query.filter(Condition::compare(
                Field::OwnerId,
                Op::Eq,
                Value::Int(owner),
            )?);
        }
        // Ties (same size, same name) are broken by id, in the store.
        Ok(query.sort_by(self.sort.column.field(), self.sort.direction))
    }
}

/// Escapes `LIKE` wildcards so that they match themselves (with `\` as escape).
pub fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A page of the catalog as the signed-in user (or an anonymous visitor) sees it.
#[server(prefix = "/api/ui", endpoint = "images")]
pub async fn list_images(params: CatalogParams) -> Result<ImagePage, CoreError> {
    use crate::ports::respond;
    let (catalog, viewer) = crate::ports::request_context()?;
    let owner = if params.mine {
        Some(respond(viewer.require_user())?.id)
    } else {
        None
    };
    let query = respond(params.to_query(owner))?;
    respond(catalog.list_images(&viewer, query).await)
}

/// One image's record.
#[server(prefix = "/api/ui", endpoint = "image")]
pub async fn get_image(id: i64) -> Result<Image, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.get_image(&viewer, id).await)
}

/// Deletes an image (as ViCE's `DELETE /v1/image/{id}`) once the form's
/// confirmation is ticked, then shows the viewer's images.
#[server(prefix = "/api/ui", endpoint = "images/delete")]
pub async fn delete_image(id: i64, confirm: Option<String>) -> Result<(), CoreError> {
    use crate::ports::{request_context, respond};
    if confirm.as_deref() != Some("yes") {
        return respond(Err(CoreError::invalid(
            "tick \"Yes, delete this image\" to confirm",
        )));
    }
    let (catalog, viewer) = request_context()?;
    respond(catalog.delete_image(&viewer, id).await)?;
    leptos_axum::redirect("/?mine=true");
    Ok(())
}

/// Saves the edit form of an image's page, with MWS's version check.
#[server(prefix = "/api/ui", endpoint = "images/edit")]
pub async fn edit_image(
    id: i64,
    version: i64,
    name: String,
    label: String,
    description: String,
    /// `public` or `private`; only an administrator's form has it.
    visibility: Option<String>,
) -> Result<Image, CoreError> {
    use crate::ports::{request_context, respond};
    let public = match visibility.as_deref() {
        None | Some("") => None,
        Some(other) => match Visibility::parse(other) {
            Some(visibility) => Some(visibility == Visibility::Public),
            None => return respond(Err(CoreError::invalid("visibility is public or private"))),
        },
    };
    let edit = crate::model::ImageEdit {
        name,
        label,
        description,
        public,
        version,
    };
    let (catalog, viewer) = request_context()?;
    // A plain form post (no WASM) is sent back to the page, which reads the
    // record again; with WASM the page shows the answer.
    respond(catalog.edit_image(&viewer, id, edit).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_escaped_and_matches_name_or_label() {
        let params = CatalogParams {
            q: "50%_off".into(),
            ..Default::default()
        };
        let query = params.to_query(None).unwrap();
        let Condition::All(items) = &query.condition else {
            panic!("not a conjunction")
        };
        let Condition::Any(alternatives) = &items[0] else {
            panic!("not a disjunction")
        };
        assert_eq!(
            alternatives[0],
            Condition::Compare {
                field: Field::Name,
                op: Op::Like,
                value: Value::Text("%50\\%\\_off%".into())
            }
        );
    }

    #[test]
    fn pages_start_at_one() {
        let params = CatalogParams {
            page: 3,
            ..Default::default()
        };
        assert_eq!(params.to_query(None).unwrap().offset, 2 * UI_PAGE_SIZE);
        let params = CatalogParams {
            page: 0,
            ..Default::default()
        };
        assert_eq!(params.to_query(None).unwrap().offset, 0);
    }

    fn from(url_query: &str) -> CatalogParams {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(url_query.as_bytes())
            .into_owned()
            .collect();
        CatalogParams::from_url(|key| {
            pairs
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn every_filter_survives_the_round_trip_through_the_url() {
        let url = "/?q=a+b%26c&kind=vm&format=ova&visibility=private&owner=alice&os=ubuntu\
                   &from=2026-01-02&to=2026-03-04&mine=true&sort=name&dir=desc&per_page=50&page=3";
        let params = from(url.trim_start_matches("/?"));
        assert_eq!(params.q, "a b&c");
        assert_eq!(params.kind, Some(ImageKind::Vm));
        assert_eq!(params.visibility, Some(Visibility::Private));
        assert_eq!(params.owner, "alice");
        assert_eq!(params.created_to, NaiveDate::from_ymd_opt(2026, 3, 4));
        assert_eq!(params.sort.column, SortColumn::Name);
        assert_eq!(params.sort.direction, Direction::Desc);
        assert_eq!((params.per_page, params.page), (50, 3));
        assert_eq!(params.href(3), url);
        assert_eq!(CatalogParams::default().href(1), "/");
    }

    #[test]
    fn nonsense_in_the_url_falls_back_to_defaults() {
        let params = from(
            "kind=spaceship&per_page=100000&page=-2&from=yesterday&to=-5000-01-01&sort=evil&dir=up",
        );
        assert_eq!(params, CatalogParams::default());
        // Links from before the sortable columns still work.
        assert_eq!(from("sort=newest").sort, CatalogSort::default());
    }

    #[test]
    fn a_heading_sorts_its_column_first_then_the_other_way() {
        let by_created = CatalogSort::default();
        assert_eq!(by_created.direction, Direction::Desc);
        let by_name = by_created.toggled(SortColumn::Name);
        assert_eq!(
            (by_name.column, by_name.direction),
            (SortColumn::Name, Direction::Asc)
        );
        let reversed = by_name.toggled(SortColumn::Name);
        assert_eq!(reversed.direction, Direction::Desc);
        assert_eq!(by_name.toggled(SortColumn::Size).direction, Direction::Desc);
    }

    #[test]
    fn filters_become_typed_conditions_and_the_order_follows_the_sort() {
        let params = from("visibility=public&owner=bob&from=2026-05-01&to=2026-05-01&sort=owner");
        let query = params.to_query(None).unwrap();
        let Condition::All(items) = &query.condition else {
            panic!("not a conjunction")
        };
        assert!(items.contains(&Condition::Compare {
            field: Field::Public,
            op: Op::Eq,
            value: Value::Bool(true)
        }));
        assert!(items.contains(&Condition::Compare {
            field: Field::Owner,
            op: Op::Eq,
            value: Value::Text("bob".into())
        }));
        // One whole day: from its midnight to the next.
        let day = |d| {
            Value::Time(
                NaiveDate::from_ymd_opt(2026, 5, d)
                    .unwrap()
                    .and_time(NaiveTime::MIN)
                    .and_utc(),
            )
        };
        assert!(items.contains(&Condition::Compare {
            field: Field::CreatedAt,
            op: Op::Ge,
            value: day(1)
        }));
        assert!(items.contains(&Condition::Compare {
            field: Field::CreatedAt,
            op: Op::Lt,
            value: day(2)
        }));
        assert_eq!(query.sort[0].field, Field::Owner);
        assert_eq!(query.sort[0].direction, Direction::Asc);
        assert_eq!(
            from("per_page=50&page=2").to_query(None).unwrap().offset,
            50
        );
    }
}
