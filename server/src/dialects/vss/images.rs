//! `/v2/image`, `/v2/iso` (the public catalog) and `/v2/user/image/{vm,iso}`
//! (the caller's own), each a page of the core's images; `/v2/user/image`
//! links to the caller's two lists.

use std::time::Instant;

use app::model::{Image, ImageKind, Principal, Viewer};
use app::query::{Condition, Field, Op, Query, Value};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Uri};
use axum::{Extension, Json};

use super::error::VssError;
use super::parse::{list_params, ListParams, Listing};
use super::views::{
    self, base_url, elapsed, ItemMeta, ListMeta, One, Pages, PublicList, SelfLink, UserImageIndex,
    UserImageLists, UserLinks, UserList,
};
use crate::state::AppState;

/// The request as VSS renders it: who, where, when it started.
struct Call {
    started: Instant,
    user: Principal,
    base: String,
    /// The URL as requested, for self links.
    requested: String,
}

impl Call {
    fn new(viewer: &Viewer, headers: &HeaderMap, uri: &Uri) -> Result<Self, VssError> {
        let user = viewer.require_user()?.clone();
        let base = base_url(headers);
        let requested = format!(
            "{base}{}",
            uri.path_and_query().map_or("/", |path| path.as_str())
        );
        Ok(Self {
            started: Instant::now(),
            user,
            base,
            requested,
        })
    }
}

fn equals(field: Field, value: Value) -> Condition {
    Condition::Compare {
        field,
        op: Op::Eq,
        value,
    }
}

fn kind_of(listing: Listing) -> ImageKind {
    match listing {
        Listing::Images => ImageKind::Vm,
        Listing::Isos => ImageKind::Iso,
    }
}

/// The page a list asks for, among `scope`.
async fn page(
    state: &AppState,
    viewer: &Viewer,
    listing: Listing,
    scope: Condition,
    params: &ListParams,
) -> Result<(Vec<Image>, u64), VssError> {
    let mut query = Query::new(params.per_page)
        .filter(equals(
            Field::Kind,
            Value::Text(kind_of(listing).as_str().into()),
        ))
        .filter(scope)
        .filter(params.condition.clone())
        .offset((params.page - 1).saturating_mul(params.per_page));
    query.sort = params.sort.clone();
    let page = state.core.list_images(viewer, query).await?;
    Ok((page.items, page.total))
}

async fn list_public(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    uri: Uri,
    raw_query: Option<String>,
    listing: Listing,
) -> Result<Json<PublicList>, VssError> {
    let call = Call::new(&viewer, &headers, &uri)?;
    let params = list_params(listing, raw_query.as_deref())?;
    let public = equals(Field::Public, Value::Bool(true));
    let (items, total) = page(&state, &viewer, listing, public, &params).await?;
    let resource = match listing {
        Listing::Images => "image",
        Listing::Isos => "iso",
    };
    let url = format!("{}/v2/{resource}", call.base);
    let data = items
        .iter()
        .map(|image| {
            if params.expand {
                views::item(listing, image)
            } else {
                serde_json::Value::String(format!("{url}/{}", image.id))
            }
        })
        .collect::<Vec<_>>();
    Ok(Json(PublicList {
        meta: ListMeta {
            link: Some(SelfLink {
                self_url: call.requested.clone(),
            }),
            count: data.len(),
            filter: params.filter_text.clone(),
            pages: Pages::new(&url, &params, total),
            sort: params.sort_text.clone(),
            time: elapsed(call.started),
            user: call.user.username.clone(),
        },
        data,
    }))
}

/// `GET /v2/image`: public OVA/OVF images.
pub async fn list_public_images(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<PublicList>, VssError> {
    list_public(state, viewer, headers, uri, raw_query, Listing::Images).await
}

/// `GET /v2/iso`: public ISOs.
pub async fn list_public_isos(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<PublicList>, VssError> {
    list_public(state, viewer, headers, uri, raw_query, Listing::Isos).await
}

async fn get_public(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    uri: Uri,
    id: String,
    listing: Listing,
) -> Result<Json<One>, VssError> {
    let call = Call::new(&viewer, &headers, &uri)?;
    let missing = || VssError(app::error::CoreError::not_found(format!("image {id}")));
    let id = id.parse::<i64>().map_err(|_| missing())?;
    let image = match state.core.get_image(&viewer, id).await {
        Ok(image) if image.public && image.kind == kind_of(listing) => image,
        Ok(_) | Err(app::error::CoreError::NotFound(_)) => return Err(missing()),
        Err(error) => return Err(error.into()),
    };
    Ok(Json(One {
        data: views::item(listing, &image),
        meta: ItemMeta {
            time: elapsed(call.started),
            user: call.user.username,
        },
    }))
}

/// `GET /v2/image/{id}`.
pub async fn get_public_image(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Json<One>, VssError> {
    get_public(state, viewer, headers, uri, id, Listing::Images).await
}

/// `GET /v2/iso/{id}`.
pub async fn get_public_iso(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Json<One>, VssError> {
    get_public(state, viewer, headers, uri, id, Listing::Isos).await
}

async fn list_user(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    uri: Uri,
    raw_query: Option<String>,
    listing: Listing,
) -> Result<Json<UserList>, VssError> {
    let call = Call::new(&viewer, &headers, &uri)?;
    let params = list_params(listing, raw_query.as_deref())?;
    let mine = equals(Field::OwnerId, Value::Int(call.user.id));
    let (items, total) = page(&state, &viewer, listing, mine, &params).await?;
    let resource = match listing {
        Listing::Images => "vm",
        Listing::Isos => "iso",
    };
    let url = format!("{}/v2/user/image/{resource}", call.base);
    let parent = format!("{}/v2/user/image", call.base);
    let data: Vec<_> = items
        .iter()
        .map(|image| views::item(listing, image))
        .collect();
    let links = match listing {
        Listing::Images => UserLinks {
            image: Some(parent),
            self_url: call.requested.clone(),
            user: None,
        },
        Listing::Isos => UserLinks {
            image: None,
            self_url: call.requested.clone(),
            user: Some(parent),
        },
    };
    Ok(Json(UserList {
        links,
        meta: ListMeta {
            link: None,
            count: data.len(),
            filter: params.filter_text.clone(),
            pages: Pages::new(&url, &params, total),
            sort: params.sort_text.clone(),
            time: elapsed(call.started),
            user: call.user.username.clone(),
        },
        data,
    }))
}

/// `GET /v2/user/image/vm`: the caller's OVA/OVF images.
pub async fn list_user_images(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<UserList>, VssError> {
    list_user(state, viewer, headers, uri, raw_query, Listing::Images).await
}

/// `GET /v2/user/image/iso`: the caller's ISOs.
pub async fn list_user_isos(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<UserList>, VssError> {
    list_user(state, viewer, headers, uri, raw_query, Listing::Isos).await
}

/// `GET /v2/user/image`: the parent the user lists link to (`_links.image`,
/// `_links.user`), with the URLs of the caller's VM images and ISOs.
pub async fn user_image_links(
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<UserImageIndex>, VssError> {
    let call = Call::new(&viewer, &headers, &uri)?;
    let url = format!("{}/v2/user/image", call.base);
    Ok(Json(UserImageIndex {
        links: SelfLink {
            self_url: call.requested,
        },
        data: UserImageLists {
            iso: format!("{url}/iso"),
            vm: format!("{url}/vm"),
        },
        meta: ItemMeta {
            time: elapsed(call.started),
            user: call.user.username,
        },
    }))
}
