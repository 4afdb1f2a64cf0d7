//! Core records in VSS's shapes. Keys are declared in the seeds' (alphabetical)
//! order; timestamps use each resource's format; links are absolute.

use std::time::Instant;

use app::model::Image;
use axum::http::{header, HeaderMap};
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::parse::{ListParams, Listing};

/// `2017-11-24 Fri 15:37:36 UTC`, as the seed shows images. Written out
/// rather than through chrono's `format`, which parses its pattern anew at
/// every call: two times a row made it the server's own busiest code on a
/// page of images kept in memory (`perf`).
pub fn image_time(time: DateTime<Utc>) -> String {
    format!(
        "{:04}-{:02}-{:02} {} {:02}:{:02}:{:02} UTC",
        time.year(),
        time.month(),
        time.day(),
        time.weekday(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// `2017-11-17 13:51:31 UTC`, as the seed shows ISOs (and the pages show
/// times to the second).
pub fn iso_time(time: DateTime<Utc>) -> String {
    app::dates::second(time)
}

/// An OVA/OVF image.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Image, example = json!({
    "created_on": "2017-11-24 Fri 15:37:36 UTC",
    "data_store": "vss-ISOs",
    "folder": "VmImages/core-os",
    "id": 24,
    "label": "VmImages/core-os/coreos_production_vmware_ova.ova",
    "name": "coreos_production_vmware_ova.ova",
    "path": "[vss-ISOs] VmImages/core-os/coreos_production_vmware_ova.ova",
    "public": true,
    "updated_on": "2018-02-09 Fri 11:37:05 UTC"
}))]
pub struct ImageItem {
    pub created_on: String,
    pub data_store: String,
    pub folder: String,
    pub id: i64,
    pub label: String,
    pub name: String,
    pub path: String,
    pub public: bool,
    pub updated_on: String,
}

/// An ISO (the seed shows neither label nor folder).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Iso, example = json!({
    "created_on": "2017-11-17 13:51:31 UTC",
    "data_store": "vssUser-xfers",
    "id": 223,
    "name": "501219a5-a563-787c-f334-e7b65e829dca-ud.iso",
    "path": "[vssUser-xfers] josem/config-drive/501219a5-a563-787c-f334-e7b65e829dca-ud.iso",
    "public": false,
    "updated_on": "2017-11-17 13:51:31 UTC"
}))]
pub struct IsoItem {
    pub created_on: String,
    pub data_store: String,
    pub id: i64,
    pub name: String,
    pub path: String,
    pub public: bool,
    pub updated_on: String,
}

/// An item of a list, in its listing's shape.
pub trait Item: Serialize + ToSchema + Sized {
    const LISTING: Listing;
    /// The list's name under `/v2` (`image`, `iso`).
    const PUBLIC: &'static str;
    /// The list's name under `/v2/user/image` (`vm`, `iso`).
    const USER: &'static str;

    fn of(image: &Image) -> Self;
}

impl Item for ImageItem {
    const LISTING: Listing = Listing::Images;
    const PUBLIC: &'static str = "image";
    const USER: &'static str = "vm";

    fn of(image: &Image) -> Self {
        Self {
            created_on: image_time(image.created_at),
            data_store: image.data_store.clone(),
            folder: image.folder.clone(),
            id: image.id,
            label: image.label.clone(),
            name: image.name.clone(),
            path: image.path(),
            public: image.public,
            updated_on: image_time(image.updated_at),
        }
    }
}

impl Item for IsoItem {
    const LISTING: Listing = Listing::Isos;
    const PUBLIC: &'static str = "iso";
    const USER: &'static str = "iso";

    fn of(image: &Image) -> Self {
        Self {
            created_on: iso_time(image.created_at),
            data_store: image.data_store.clone(),
            id: image.id,
            name: image.name.clone(),
            path: image.path(),
            public: image.public,
            updated_on: iso_time(image.updated_at),
        }
    }
}

/// A public list's entry: the item's URL, or with `expand=1` the item.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Entry<T> {
    Url(String),
    Item(T),
}

/// The scheme and host the client used, for absolute links. The
/// forwarded ones reach here from a trusted proxy only (`web::auth`), and
/// of several (values or headers) the last is taken: the one the proxy
/// nearest to the server added, where a client may have written the first.
pub fn base_url(headers: &HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|value| value.to_str().ok())
            .map(|value| value.rsplit(',').next().unwrap_or(value).trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let scheme = header("x-forwarded-proto").unwrap_or_else(|| "http".into());
    let host = header("x-forwarded-host")
        .or_else(|| header(header::HOST.as_str()))
        .unwrap_or_else(|| "localhost".into());
    format!("{scheme}://{host}")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Pages {
    pub first_url: String,
    pub last_url: String,
    pub next_url: Option<String>,
    pub page: u64,
    pub pages: u64,
    pub per_page: u64,
    pub prev_url: Option<String>,
    pub total: u64,
}

impl Pages {
    /// Links to the pages of a list at `url`, keeping the request's
    /// parameters in their order with `per_page` and `page` set.
    pub fn new(url: &str, params: &ListParams, total: u64) -> Self {
        let pages = total.div_ceil(params.per_page).max(1);
        let link = |page: u64| {
            let mut pairs = params.pairs.clone();
            for (key, value) in [("per_page", params.per_page), ("page", page)] {
                match pairs.iter_mut().find(|(name, _)| name == key) {
                    Some(pair) => pair.1 = value.to_string(),
                    None => pairs.push((key.to_owned(), value.to_string())),
                }
            }
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (key, value) in &pairs {
                query.append_pair(key, value);
            }
            format!("{url}?{}", query.finish())
        };
        Self {
            first_url: link(1),
            last_url: link(pages),
            next_url: (params.page < pages).then(|| link(params.page + 1)),
            page: params.page,
            pages,
            per_page: params.per_page,
            prev_url: (params.page > 1).then(|| link((params.page - 1).min(pages))),
            total,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SelfLink {
    #[serde(rename = "self")]
    pub self_url: String,
}

/// `meta` of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListMeta {
    #[serde(rename = "_link", skip_serializing_if = "Option::is_none")]
    pub link: Option<SelfLink>,
    pub count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub pages: Pages,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    pub time: String,
    pub user: String,
}

/// `meta` of a single item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemMeta {
    pub time: String,
    pub user: String,
}

/// The handler's time, as the seeds show it (`0.00854s`).
pub fn elapsed(started: Instant) -> String {
    format!("{:.5}s", started.elapsed().as_secs_f64())
}

/// `/v2/image`, `/v2/iso`: item URLs (or items with `expand`) and `meta`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicList<T> {
    pub data: Vec<Entry<T>>,
    pub meta: ListMeta,
}

/// The links of a user list: `image` on VM images, `user` on ISOs.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserLinks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(rename = "self")]
    pub self_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `/v2/user/image/*`: top-level `_links`, items as objects, and `meta`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList<T> {
    #[serde(rename = "_links")]
    pub links: UserLinks,
    pub data: Vec<T>,
    pub meta: ListMeta,
}

/// The caller's two lists, by kind (`/v2/user/image`'s `data`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserImageLists {
    pub iso: String,
    pub vm: String,
}

/// `/v2/user/image`: the parent the user lists link to, with their URLs.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserImageIndex {
    #[serde(rename = "_links")]
    pub links: SelfLink,
    pub data: UserImageLists,
    pub meta: ItemMeta,
}

/// One item: `{"data": item, "meta"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct One<T> {
    pub data: T,
    pub meta: ItemMeta,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::vss::parse::list_params;
    use chrono::TimeZone;

    #[test]
    fn timestamps_follow_each_seed() {
        let time = Utc.with_ymd_and_hms(2017, 11, 24, 15, 37, 36).unwrap();
        assert_eq!(image_time(time), "2017-11-24 Fri 15:37:36 UTC");
        assert_eq!(iso_time(time), "2017-11-24 15:37:36 UTC");
    }

    #[test]
    fn timestamps_are_chronos_on_every_weekday_and_far_years() {
        let start = Utc.with_ymd_and_hms(2026, 2, 27, 0, 0, 0).unwrap();
        let mut times: Vec<DateTime<Utc>> = (0..9)
            .map(|days| {
                start + chrono::Duration::days(days) + chrono::Duration::seconds(days * 3_671)
            })
            .collect();
        times.push(Utc.with_ymd_and_hms(987, 1, 2, 3, 4, 5).unwrap());
        times.push(Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap());
        times.push(start + chrono::Duration::nanoseconds(999_999_999));
        for time in times {
            assert_eq!(
                image_time(time),
                time.format("%Y-%m-%d %a %H:%M:%S UTC").to_string()
            );
            assert_eq!(
                iso_time(time),
                time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            );
        }
    }

    #[test]
    fn page_links_keep_parameters_and_replace_the_page() {
        let params = list_params(Listing::Images, Some("per_page=1&page=5&expand=1")).unwrap();
        let pages = Pages::new("https://h/v2/image", &params, 14);
        assert_eq!(
            pages.first_url,
            "https://h/v2/image?per_page=1&page=1&expand=1"
        );
        assert_eq!(
            pages.last_url,
            "https://h/v2/image?per_page=1&page=14&expand=1"
        );
        assert_eq!(
            pages.next_url.as_deref(),
            Some("https://h/v2/image?per_page=1&page=6&expand=1")
        );
        assert_eq!(
            pages.prev_url.as_deref(),
            Some("https://h/v2/image?per_page=1&page=4&expand=1")
        );
        let first = list_params(Listing::Images, None).unwrap();
        let pages = Pages::new("https://h/v2/image", &first, 14);
        assert_eq!(pages.first_url, "https://h/v2/image?per_page=10&page=1");
        assert_eq!(
            pages.next_url.as_deref(),
            Some("https://h/v2/image?per_page=10&page=2")
        );
        assert_eq!(pages.prev_url, None);
        let filtered = list_params(Listing::Images, Some("filter=name,like,ubu%")).unwrap();
        let pages = Pages::new("https://h/v2/image", &filtered, 4);
        assert_eq!(
            pages.first_url,
            "https://h/v2/image?filter=name%2Clike%2Cubu%25&per_page=10&page=1"
        );
        assert_eq!((pages.pages, pages.next_url), (1, None));
    }
}
