//! The caller of a Coopr request, from its three `Coopr-*` headers.

use app::error::CoreError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::CooprError;
use crate::core::TenantCaller;
use crate::state::AppState;

/// A user acting inside one tenant, proven by an API key.
pub struct Caller(pub TenantCaller);

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = CooprError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, CooprError> {
        let (Some(user), Some(tenant), Some(key)) = (
            header(parts, "coopr-userid"),
            header(parts, "coopr-tenantid"),
            header(parts, "coopr-apikey"),
        ) else {
            return Err(CooprError(CoreError::Unauthenticated));
        };
        Ok(Self(state.core.tenant_caller(user, tenant, key).await?))
    }
}
