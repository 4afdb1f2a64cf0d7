//! Depot's own API described in OpenAPI 3.1, built from the routers
//! themselves (utoipa-axum registers each handler with its `#[utoipa::path]`,
//! so a route cannot exist without its description), served at
//! `/api/openapi.json`; and the interactive docs at `/api/docs`, Swagger UI
//! from the npm registry (vendored under `public/vendor/swagger-ui`, never a
//! CDN), where a signed-in user tries requests with their session.

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref};
use utoipa::{Modify, OpenApi};

/// Tags: the API's sections, as the docs group them.
pub const IMAGES: &str = "images";
pub const TOKENS: &str = "tokens";
pub const UPLOADS: &str = "resumable uploads";

pub use super::error::ErrorBody;

/// Bytes as they are, in a request's body.
#[allow(dead_code)] // Describes a body; handlers stream it.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct RawBytes(Vec<u8>);

/// The tus protocol's version, the one this server speaks.
#[allow(dead_code)] // Describes a header; a middleware checks it.
#[derive(utoipa::ToSchema)]
pub enum TusVersion {
    #[schema(rename = "1.0.0")]
    V1,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Depot",
        description = "Depot's own API: upload and download images, resumable uploads \
            (tus 1.0), and bearer tokens for scripts. The REST dialects (VSS, MWS, ViCE, \
            Coopr) are described by documents of their own.",
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = IMAGES, description = "Image bytes in and out"),
        (name = UPLOADS, description = "Resumable uploads over tus 1.0 (tus.io): \
            tus-js-client, Uppy, tuspy and tusd's clients work unchanged"),
        (name = TOKENS, description = "Bearer tokens for scripts"),
    ),
    components(schemas(ErrorBody, TusVersion, RawBytes)),
    modifiers(&Credentials),
)]
struct DepotApi;

/// The ways to sign a request: Basic (a password, or a token as the user
/// name with an empty password), Bearer (a token), or the browser session.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, document: &mut Document) {
        add_credentials(document, true);
    }
}

/// Basic and Bearer, as a dialect's clients sign (the session works too,
/// but is not how their scripts sign).
pub struct PasswordOrToken;

impl Modify for PasswordOrToken {
    fn modify(&self, document: &mut Document) {
        add_credentials(document, false);
    }
}

/// Adds the Basic and Bearer schemes (and the session's, with `session`)
/// and requires any one of them.
fn add_credentials(document: &mut Document, session: bool) {
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "basic",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some(
                    "A user name and password, or a token as the user name and an empty \
                     password (as HTTPie's `-a TOKEN:` sends)",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A token from POST /api/tokens"))
                .build(),
        ),
    );
    let mut schemes = vec!["basic", "bearer"];
    if session {
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "depot_session",
                    "The browser's session, once signed in on the site \
                     (`__Host-depot_session` where the server sets secure cookies)",
                ),
            )),
        );
        schemes.push("session");
    }
    document.security = Some(
        schemes
            .into_iter()
            .map(|scheme| {
                utoipa::openapi::security::SecurityRequirement::new(scheme, Vec::<String>::new())
            })
            .collect(),
    );
}

/// What the layers in front of every handler may answer, added to every
/// operation: a cross-site request that would change something (403),
/// where a password may sign requests, a login throttled (429) or refused
/// for load (503), and a body refused for load (503: the bodies read whole
/// hold the server's budget).
pub struct OuterAnswers {
    pub passwords: bool,
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// Calls `visit` on every operation of `document`, with whether its method
/// changes state (everything but GET, HEAD and OPTIONS).
pub fn each_operation(document: &mut Document, mut visit: impl FnMut(&mut Operation, bool)) {
    for item in document.paths.paths.values_mut() {
        let operations: [(&mut Option<Operation>, bool); 7] = [
            (&mut item.get, false),
            (&mut item.head, false),
            (&mut item.options, false),
            (&mut item.post, true),
            (&mut item.put, true),
            (&mut item.patch, true),
            (&mut item.delete, true),
        ];
        for (operation, changes_state) in operations {
            if let Some(operation) = operation {
                visit(operation, changes_state);
            }
        }
    }
}

impl Modify for OuterAnswers {
    fn modify(&self, document: &mut Document) {
        each_operation(document, |operation, changes_state| {
            let takes_body = changes_state && operation.request_body.is_some();
            let busy = match (self.passwords, takes_body) {
                (true, true) => Some(
                    "The server is checking as many passwords, or holding as many request \
                     bodies, as it will at once; see Retry-After",
                ),
                (true, false) => Some(
                    "The server is checking as many passwords as it will at once; see \
                     Retry-After",
                ),
                (false, true) => Some(
                    "The server holds as many request bodies as it will at once; see \
                     Retry-After",
                ),
                (false, false) => None,
            };
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error_response(description).into());
            };
            if self.passwords {
                add(
                    "429",
                    "Too many failed sign-ins from this address or for this user; see \
                     Retry-After",
                );
            }
            if let Some(busy) = busy {
                add("503", busy);
            }
            if changes_state {
                add("403", "A request from another site may not change anything");
            }
        });
    }
}

/// The routers of Depot's own API, with their description.
pub fn depot_api() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    utoipa_axum::router::OpenApiRouter::with_openapi(DepotApi::openapi())
        .merge(super::files::router())
        .merge(super::tokens::router())
        .merge(super::uploads::router())
}

/// A document, rendered once, served as JSON.
#[derive(Clone)]
pub struct Rendered(bytes::Bytes);

impl Rendered {
    /// `document` with what the layers add to every answer, once every
    /// route is in.
    pub fn new(mut document: Document, outer: OuterAnswers) -> Self {
        outer.modify(&mut document);
        let json = document
            .to_pretty_json()
            .unwrap_or_else(|_| String::from("{}"));
        Self(bytes::Bytes::from(json))
    }
}

/// A route answering `document`.
pub fn serve(document: Rendered) -> axum::routing::MethodRouter<crate::state::AppState> {
    axum::routing::get(move || std::future::ready(document.clone()))
}

impl IntoResponse for Rendered {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// `/api/docs`: Swagger UI over the documents (Depot's own first, then
/// the dialects' in `dialects`, each a name and a label), its script and
/// style from this server only (`script-src 'self'`: no inline script, no
/// CDN).
pub fn docs(dialects: &[(&str, String)]) -> axum::routing::MethodRouter<crate::state::AppState> {
    let mut options = String::from(r#"<option value="/api/openapi.json">Depot</option>"#);
    for (name, label) in dialects {
        options.push_str(&format!(
            r#"<option value="/api/openapi/{name}.json">{label}</option>"#
        ));
    }
    let page = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Depot API</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
<header style="padding: 1em 2em"><label for="document">API document</label>
<select id="document">{options}</select></header>
<main id="swagger-ui" aria-label="API documentation"></main>
<script src="/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/api-docs.js"></script>
</body>
</html>
"#
    );
    // Rendered once; each answer shares the same bytes.
    let page = bytes::Bytes::from(page);
    axum::routing::get(move || {
        let page = page.clone();
        async move {
            (
                [(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'self'; img-src 'self' data:; \
                         style-src 'self' 'unsafe-inline'; script-src 'self'; \
                         object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
                    ),
                )],
                Html(page),
            )
                .into_response()
        }
    })
}
