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

use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/imagetypes",
            get(image_types::list)
                .post(image_types::create)
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v2/imagetypes/{name}",
            get(image_types::get)
                .put(image_types::update)
                .delete(image_types::delete)
                .fallback(error::method_not_allowed),
        )
}
