//! `/v2/image`, `/v2/iso` (the public catalog) and `/v2/user/image/{vm,iso}`
//! (the caller's own), each a page of the core's images; `/v2/user/image`
//! links to the caller's two lists.

use std::time::Instant;

use app::model::{Image, Principal, Viewer};
use app::query::{Condition, Field, Op, Query, Value};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Uri};
use axum::{Extension, Json};

use super::error::{VssError, VssErrorBody, VssPath};
use super::parse::{list_params, ListParams, Listing};
use super::views::{
    base_url, elapsed, Entry, ImageItem, IsoItem, Item, ItemMeta, ListMeta, One, Pages, PublicList,
    SelfLink, UserImageIndex, UserImageLists, UserLinks, UserList,
};
use crate::state::AppState;

const TAG: &str = "images";

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

/// The page a list of `T` asks for, among `scope`.
async fn page<T: Item>(
    state: &AppState,
    viewer: &Viewer,
    scope: Condition,
    params: &ListParams,
) -> Result<(Vec<Image>, u64), VssError> {
    let kind = T::LISTING.kind().as_str().into();
    let mut query = Query::new(params.per_page)
        .filter(equals(Field::Kind, Value::Text(kind)))
        .filter(scope)
        .filter(params.condition.clone())
        .offset((params.page - 1).saturating_mul(params.per_page));
    query.sort = params.sort.clone();
    let page = state.core.list_images(viewer, query).await?;
    Ok((page.items, page.total))
}

/// A public list: `/v2/image` or `/v2/iso`.
async fn list_public<T: Item>(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    uri: Uri,
    raw_query: Option<String>,
) -> Result<Json<PublicList<T>>, VssError> {
    let call = Call::new(&viewer, &headers, &uri)?;
    let params = list_params(T::LISTING, raw_query.as_deref())?;
    let public = equals(Field::Public, Value::Bool(true));
    let (items, total) = page::<T>(&state, &viewer, public, &params).await?;
    let url = format!("{}/v2/{}", call.base, T::PUBLIC);
    let data: Vec<Entry<T>> = items
        .iter()
        .map(|image| {
            if params.expand {
                Entry::Item(T::of(image))
            } else {
                Entry::Url(format!("{url}/{}", image.id))
            }
        })
        .collect();
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
#[utoipa::path(get, path = "/v2/image", tag = TAG,
    params(super::ListQuery),
    responses(
        (status = 200, description = "A page of the public images: their URLs, or with \
            `expand=1` the images", body = PublicList<ImageItem>),
        (status = 400, description = "A parameter malformed", body = VssErrorBody),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
    ))]
pub async fn list_public_images(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<PublicList<ImageItem>>, VssError> {
    list_public(state, viewer, headers, uri, raw_query).await
}

/// `GET /v2/iso`: public ISOs.
#[utoipa::path(get, path = "/v2/iso", tag = TAG,
    params(super::ListQuery),
    responses(
        (status = 200, description = "A page of the public ISOs: their URLs, or with \
            `expand=1` the ISOs", body = PublicList<IsoItem>),
        (status = 400, description = "A parameter malformed", body = VssErrorBody),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
    ))]
pub async fn list_public_isos(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<PublicList<IsoItem>>, VssError> {
    list_public(state, viewer, headers, uri, raw_query).await
}

/// One public item of a list: `/v2/image/{id}` or `/v2/iso/{id}`.
async fn get_public<T: Item>(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    uri: Uri,
    id: String,
) -> Result<Json<One<T>>, VssError> {
    let call = Call::new(&viewer, &headers, &uri)?;
    let missing = || VssError(app::error::CoreError::not_found(format!("image {id}")));
    let id = id.parse::<i64>().map_err(|_| missing())?;
    let image = match state.core.get_image(&viewer, id).await {
        Ok(image) if image.public && image.kind == T::LISTING.kind() => image,
        Ok(_) | Err(app::error::CoreError::NotFound(_)) => return Err(missing()),
        Err(error) => return Err(error.into()),
    };
    Ok(Json(One {
        data: T::of(&image),
        meta: ItemMeta {
            time: elapsed(call.started),
            user: call.user.username,
        },
    }))
}

/// `GET /v2/image/{id}`.
#[utoipa::path(get, path = "/v2/image/{id}", tag = TAG,
    params(("id" = String, Path, description = "The image's id")),
    responses(
        (status = 200, description = "The public image", body = One<ImageItem>),
        (status = 400, description = "The path does not decode", body = VssErrorBody),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
        (status = 404, description = "No such public image", body = VssErrorBody),
    ))]
pub async fn get_public_image(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    VssPath(id): VssPath<String>,
) -> Result<Json<One<ImageItem>>, VssError> {
    get_public(state, viewer, headers, uri, id).await
}

/// `GET /v2/iso/{id}`.
#[utoipa::path(get, path = "/v2/iso/{id}", tag = TAG,
    params(("id" = String, Path, description = "The ISO's id")),
    responses(
        (status = 200, description = "The public ISO", body = One<IsoItem>),
        (status = 400, description = "The path does not decode", body = VssErrorBody),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
        (status = 404, description = "No such public ISO", body = VssErrorBody),
    ))]
pub async fn get_public_iso(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    VssPath(id): VssPath<String>,
) -> Result<Json<One<IsoItem>>, VssError> {
    get_public(state, viewer, headers, uri, id).await
}

/// The caller's list: `/v2/user/image/vm` or `/v2/user/image/iso`.
async fn list_user<T: Item>(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    uri: Uri,
    raw_query: Option<String>,
) -> Result<Json<UserList<T>>, VssError> {
    let call = Call::new(&viewer, &headers, &uri)?;
    let params = list_params(T::LISTING, raw_query.as_deref())?;
    let mine = equals(Field::OwnerId, Value::Int(call.user.id));
    let (items, total) = page::<T>(&state, &viewer, mine, &params).await?;
    let url = format!("{}/v2/user/image/{}", call.base, T::USER);
    let parent = format!("{}/v2/user/image", call.base);
    let data: Vec<T> = items.iter().map(T::of).collect();
    // VM images link their parent as `image`, ISOs as `user` (the seeds).
    let (image, user) = match T::LISTING {
        Listing::Images => (Some(parent), None),
        Listing::Isos => (None, Some(parent)),
    };
    Ok(Json(UserList {
        links: UserLinks {
            image,
            self_url: call.requested.clone(),
            user,
        },
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
#[utoipa::path(get, path = "/v2/user/image/vm", tag = TAG,
    params(super::ListQuery),
    responses(
        (status = 200, description = "A page of the caller's VM images", body = UserList<ImageItem>),
        (status = 400, description = "A parameter malformed", body = VssErrorBody),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
    ))]
pub async fn list_user_images(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<UserList<ImageItem>>, VssError> {
    list_user(state, viewer, headers, uri, raw_query).await
}

/// `GET /v2/user/image/iso`: the caller's ISOs.
#[utoipa::path(get, path = "/v2/user/image/iso", tag = TAG,
    params(super::ListQuery),
    responses(
        (status = 200, description = "A page of the caller's ISOs", body = UserList<IsoItem>),
        (status = 400, description = "A parameter malformed", body = VssErrorBody),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
    ))]
pub async fn list_user_isos(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<UserList<IsoItem>>, VssError> {
    list_user(state, viewer, headers, uri, raw_query).await
}

/// `GET /v2/user/image`: the parent the user lists link to (`_links.image`,
/// `_links.user`), with the URLs of the caller's VM images and ISOs.
#[utoipa::path(get, path = "/v2/user/image", tag = TAG,
    responses(
        (status = 200, description = "The URLs of the caller's two lists", body = UserImageIndex),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
    ))]
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
