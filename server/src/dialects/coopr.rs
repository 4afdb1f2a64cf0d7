//! Coopr image types (`seeds/004…`): `/v2/imagetypes` and
//! `/v2/imagetypes/{name}`, scoped to the tenant of the caller's API key.
//!
//! Where the seed is silent, as Coopr does or its users expect:
//! - `Coopr-UserID`, `Coopr-TenantID` (the tenant's name) and `Coopr-ApiKey`
//!   are checked together on every request: the key must have been issued to
//!   that user for that tenant (`depot apikey create USER --tenant TENANT`);
//!   anything missing or wrong is one 401;
//! - bodies are JSON whatever the `Content-Type` (curl's `-d` sends a form type);
//! - create and update answer 200 with the stored image type, delete 200 with
//!   an empty body; errors are `{"status", "message"}`;
//! - any key holder of a tenant may manage its image types.

mod caller;
mod error;
mod image_types;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::or_else;
use crate::state::AppState;

/// The seed's Image Types API, described.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Depot: Coopr image types",
        description = "Coopr's image types (`/v2/imagetypes`), scoped to the tenant of the \
            caller's API key; every request carries Coopr-UserID, Coopr-TenantID and \
            Coopr-ApiKey (`depot apikey create USER --tenant TENANT`).",
        license(name = "Apache-2.0"),
    ),
    components(schemas(error::CooprErrorBody, crate::web::ErrorBody)),
    modifiers(&Keys),
)]
struct CooprApi;

/// The three headers that together are a Coopr caller's credentials.
struct Keys;

impl utoipa::Modify for Keys {
    fn modify(&self, document: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
        let components = document.components.get_or_insert_with(Default::default);
        let headers = [
            ("user", "Coopr-UserID", "The user the key was issued to"),
            ("tenant", "Coopr-TenantID", "The tenant's name"),
            ("key", "Coopr-ApiKey", "The API key"),
        ];
        for (scheme, header, description) in headers {
            components.add_security_scheme(
                scheme,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    header,
                    description,
                ))),
            );
        }
        let none: [&str; 0] = [];
        document.security = Some(vec![SecurityRequirement::new("user", none)
            .add("tenant", none)
            .add("key", none)]);
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(CooprApi::openapi())
        // A method a resource lacks is a 405 in Coopr's error body.
        .routes(or_else(
            routes!(image_types::list, image_types::create),
            error::method_not_allowed,
        ))
        .routes(or_else(
            routes!(image_types::get, image_types::update, image_types::delete),
            error::method_not_allowed,
        ))
}
