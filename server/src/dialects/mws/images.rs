//! `/mws/rest/images` and `/mws/rest/images/{id|name}`.

use app::model::Viewer;
use app::query::{Query, MAX_PAGE};
use axum::extract::{RawQuery, State};
use axum::Extension;
use serde_json::json;

use super::error::{MwsError, MwsErrorBody, MwsPath};
use super::parse::{self, Params};
use super::views::{self, ImageList, ImageView, ListView, MwsJson};
use crate::state::AppState;
use crate::web::whole_body::{CallersBody, Unread, WholeBody};

const TAG: &str = "images";

/// Reads the global parameters and requires a signed-in caller.
fn begin(viewer: &Viewer, raw_query: Option<&str>) -> Result<Params, MwsError> {
    let params = parse::params(raw_query)?;
    viewer.require_user()?;
    Ok(params)
}

/// The body of a write, however it failed to arrive.
fn whole(body: Result<CallersBody, Unread>) -> Result<WholeBody, MwsError> {
    body.map(|CallersBody(whole)| whole)
        .map_err(|unread| MwsError(unread.into()))
}

/// Get All Images: `query`, `sort`, `max`, `offset`, `fields`, `exclude-fields`.
#[utoipa::path(get, path = "/mws/rest/images", tag = TAG,
    params(
        ("api-version" = super::ApiVersion, Query, description = "3 (or latest)"),
        ("fields" = Option<String>, Query, description = "Comma-separated keys to keep"),
        ("exclude-fields" = Option<String>, Query, description = "Comma-separated keys to leave out"),
        ("pretty" = Option<bool>, Query, description = "Indented JSON"),
        ("query" = Option<String>, Query, description = "A JSON query, MongoDB style: \
            `{\"name\": \"centos\"}`, `$and`, `$or`, `$ne`, `$gt`, `$in`, `$regex`, …"),
        ("sort" = Option<String>, Query, description = "JSON: `{\"name\": 1}` (1 up, -1 down)"),
        ("max" = Option<u64>, Query, description = "At most this many (1000 by default and at most)"),
        ("offset" = Option<u64>, Query, description = "Skip this many"),
    ),
    responses(
        (status = 200, description = "The images the caller may read", body = ImageList),
        (status = 400, description = "api-version missing or unsupported, or a parameter malformed", body = MwsErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = MwsErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw_query): RawQuery,
) -> Result<MwsJson, MwsError> {
    let params = begin(&viewer, raw_query.as_deref())?;
    let mut query = Query::new(params.max.min(MAX_PAGE)).offset(params.offset);
    if let Some(text) = &params.query {
        query = query.filter(parse::condition(text)?);
    }
    if let Some(text) = &params.sort {
        query.sort = parse::sort(text)?;
    }
    let page = state.core.list_images(&viewer, query).await?;
    let results = page
        .items
        .iter()
        .map(|image| views::image(image, &params))
        .collect();
    Ok(MwsJson::new(
        &ListView::new(page.total, results),
        params.pretty,
    ))
}

/// Get Single Image, by id or by name.
#[utoipa::path(get, path = "/mws/rest/images/{key}", tag = TAG, operation_id = "getImage",
    params(("key" = String, Path, description = "The image's id, or its name"), ("api-version" = super::ApiVersion, Query, description = "3 (or latest)"),
        ("fields" = Option<String>, Query, description = "Comma-separated keys to keep"),
        ("exclude-fields" = Option<String>, Query, description = "Comma-separated keys to leave out"),
        ("pretty" = Option<bool>, Query, description = "Indented JSON")),
    responses(
        (status = 200, description = "The image", body = ImageView),
        (status = 400, description = "api-version missing or unsupported, or a parameter malformed", body = MwsErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = MwsErrorBody),
        (status = 404, description = "No such image the caller may read", body = MwsErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    MwsPath(key): MwsPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<MwsJson, MwsError> {
    let params = begin(&viewer, raw_query.as_deref())?;
    let image = state.core.find_image(&viewer, &key).await?;
    Ok(MwsJson::new(&views::image(&image, &params), params.pretty))
}

/// Create Single Image: 201, `Location`, and the image as Get shows it.
#[utoipa::path(post, path = "/mws/rest/images", tag = TAG,
    params(("api-version" = super::ApiVersion, Query, description = "3 (or latest)"),
        ("fields" = Option<String>, Query, description = "Comma-separated keys to keep"),
        ("exclude-fields" = Option<String>, Query, description = "Comma-separated keys to leave out"),
        ("pretty" = Option<bool>, Query, description = "Indented JSON")),
    request_body(content = ImageCreate, description = "The image's MWS fields, as \
        JSON; `name`, `hypervisor` and `osType` are required"),
    responses(
        (status = 201, description = "Created; Location is its address", body = ImageView, links(
            ("getImage" = (operation_id = "getImage",
                parameters(("key" = "$response.body#/id"), ("api-version" = "3")))),
            ("modifyImage" = (operation_id = "modifyImage",
                parameters(("key" = "$response.body#/id"), ("api-version" = "3")))),
            ("deleteImage" = (operation_id = "deleteImage",
                parameters(("key" = "$response.body#/id"), ("api-version" = "3")))),
        )),
        (status = 400, description = "Not JSON, a field missing or wrong, or a parameter \
            malformed", body = MwsErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = MwsErrorBody),
        (status = 409, description = "A name the caller can already read, or the caller owns as \
            many images as an account may (the message says which)", body = MwsErrorBody),
        (status = 413, description = "The body is too large", body = MwsErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw_query): RawQuery,
    body: Result<CallersBody, Unread>,
) -> Result<MwsJson, MwsError> {
    let params = begin(&viewer, raw_query.as_deref())?;
    // `version` is read-only; on a create there is nothing to check it against.
    let (draft, _version) = parse::image_body(&whole(body)?.bytes)?;
    let image = state.core.create_provisioning_image(&viewer, draft).await?;
    let location = format!("/mws/rest/images/{}", image.id);
    Ok(MwsJson::new(&views::image(&image, &params), params.pretty).created(location))
}

/// Modify Single Image: the fields sent change; a stale `version` is a 409.
#[utoipa::path(put, path = "/mws/rest/images/{key}", tag = TAG, operation_id = "modifyImage",
    params(("key" = String, Path, description = "The image's id, or its name"), ("api-version" = super::ApiVersion, Query, description = "3 (or latest)"),
        ("fields" = Option<String>, Query, description = "Comma-separated keys to keep"),
        ("exclude-fields" = Option<String>, Query, description = "Comma-separated keys to leave out"),
        ("pretty" = Option<bool>, Query, description = "Indented JSON")),
    request_body(content = parse::ImageBody, description = "The fields to change (null \
        clears templateName or hypervisorType); `version` refuses a stale write"),
    responses(
        (status = 200, description = "The image as changed", body = ImageView),
        (status = 400, description = "Not JSON, a field wrong, or a parameter malformed",
            body = MwsErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = MwsErrorBody),
        (status = 403, description = "Not the caller's image", body = MwsErrorBody),
        (status = 404, description = "No such image the caller may read", body = MwsErrorBody),
        (status = 409, description = "A stale version, or a name the caller can already read",
            body = MwsErrorBody),
        (status = 413, description = "The body is too large", body = MwsErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    MwsPath(key): MwsPath<String>,
    RawQuery(raw_query): RawQuery,
    body: Result<CallersBody, Unread>,
) -> Result<MwsJson, MwsError> {
    let params = begin(&viewer, raw_query.as_deref())?;
    let (draft, version) = parse::image_body(&whole(body)?.bytes)?;
    let image = state
        .core
        .update_provisioning_image(&viewer, &key, draft, version)
        .await?;
    Ok(MwsJson::new(&views::image(&image, &params), params.pretty))
}

/// Delete Single Image: answers `{}`.
#[utoipa::path(delete, path = "/mws/rest/images/{key}", tag = TAG, operation_id = "deleteImage",
    params(("key" = String, Path, description = "The image's id, or its name"), ("api-version" = super::ApiVersion, Query, description = "3 (or latest)"),
        ("fields" = Option<String>, Query, description = "Comma-separated keys to keep"),
        ("exclude-fields" = Option<String>, Query, description = "Comma-separated keys to leave out"),
        ("pretty" = Option<bool>, Query, description = "Indented JSON")),
    responses(
        (status = 200, description = "Deleted: `{}`", body = serde_json::Value),
        (status = 400, description = "api-version missing or unsupported, or a parameter malformed", body = MwsErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = MwsErrorBody),
        (status = 403, description = "Not the caller's image", body = MwsErrorBody),
        (status = 404, description = "No such image the caller may read", body = MwsErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    MwsPath(key): MwsPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<MwsJson, MwsError> {
    let params = begin(&viewer, raw_query.as_deref())?;
    let image = state.core.find_image(&viewer, &key).await?;
    state.core.delete_image(&viewer, image.id).await?;
    Ok(MwsJson::new(&json!({}), params.pretty))
}

/// The body of a create as the document describes it: a [`parse::ImageBody`]
/// (`ImageWrite`) with what MWS asks of a new image (its document's "Three
/// fields are required to submit an image: name, hypervisor, and osType",
/// and a physical or a virtual machine supported), so that a client, and a
/// fuzzer, knows what a create needs.
pub struct ImageCreate;

impl utoipa::PartialSchema for ImageCreate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
        use utoipa::openapi::Ref;
        let of_type = |kind: Type| ObjectBuilder::new().schema_type(kind);
        let supported = |field: &str| {
            ObjectBuilder::new()
                .property(field, of_type(Type::Boolean).enum_values(Some([true])))
                .required(field)
        };
        AllOfBuilder::new()
            .item(Ref::from_schema_name(
                <parse::ImageBody as utoipa::ToSchema>::name(),
            ))
            .item(
                ObjectBuilder::new()
                    .property("name", of_type(Type::String))
                    .property("hypervisor", of_type(Type::Boolean))
                    .property("osType", of_type(Type::String))
                    .required("name")
                    .required("hypervisor")
                    .required("osType"),
            )
            .item(
                AnyOfBuilder::new()
                    .item(supported("supportsPhysicalMachine"))
                    .item(supported("supportsVirtualMachine")),
            )
            .description(Some(
                "An image to create: `name`, `hypervisor` and `osType` are required, and \
                 `supportsPhysicalMachine` or `supportsVirtualMachine` must be true.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ImageCreate {
    fn name() -> std::borrow::Cow<'static, str> {
        "ImageCreate".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        let name = <parse::ImageBody as utoipa::ToSchema>::name();
        schemas.push((name.into_owned(), parse::ImageBody::schema()));
        parse::ImageBody::schemas(schemas);
    }
}
