//! What keeps a browser's credentials and Depot's origin from being turned
//! against its users:
//! - a state-changing request that a browser marks as coming from another
//!   site (`Sec-Fetch-Site`, or an `Origin` other than this server's) is
//!   refused, sign-in included (login CSRF); scripts send neither header
//!   and are not affected;
//! - pages carry a Content-Security-Policy fitting the WASM app (scripts
//!   only from this origin or with the page's nonce, no framing), and every
//!   answer `nosniff`, no framing and a same-origin referrer policy;
//! - files from the personal store are always downloads, sandboxed, never
//!   active content on Depot's origin;
//! - a page shows a form's error only when this site sent it there, and a
//!   browser's page is never answered with a Basic challenge.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether a request can change state (anything but reading).
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The site a browser says the request came from is not this one. Served
/// over HTTPS alone (`https_only`), a page of the same host over plain HTTP
/// is another site: older browsers, which send no `Sec-Fetch-Site`, take it
/// for the same one and send the session cookie with its forms, and anyone
/// on the network path can answer for it.
fn from_another_site(headers: &HeaderMap, https_only: bool) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none` is the user's own doing (a bookmark, the address bar).
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok());
    let origin = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"));
    match (origin, host) {
        (Some((scheme, _)), _) if https_only && !scheme.eq_ignore_ascii_case("https") => true,
        (Some((_, authority)), Some(host)) => !authority.eq_ignore_ascii_case(host),
        // `Origin: null` (a sandboxed frame, a redirect across sites) or no Host.
        _ => true,
    }
}

/// Middleware: refuses state-changing requests from another site; its
/// state is whether the server is reached over HTTPS alone (its cookies
/// are `Secure`).
pub async fn refuse_cross_site(
    State(https_only): State<bool>,
    request: Request,
    next: Next,
) -> Response {
    if changes_state(request.method()) && from_another_site(request.headers(), https_only) {
        tracing::info!(method = %request.method(), path = %request.uri().path(), "refused a cross-site request");
        return (
            StatusCode::FORBIDDEN,
            super::ErrorBody::new(
                StatusCode::FORBIDDEN,
                "a request from another site may not change anything here",
            ),
        )
            .into_response();
    }
    next.run(request).await
}

/// The most ranges a `Range` header may ask for before it is ignored (the
/// whole file is an answer to any `Range`): the ranges are checked against
/// each other (http-range-header, for downloads and the UI's files alike),
/// at a cost of their count squared, and a request's head holds 35,000 of
/// them, a second of a worker's time for one anonymous request.
const MOST_RANGES: usize = 16;

/// Whether a request asks for more ranges than [`MOST_RANGES`].
fn too_many_ranges(headers: &HeaderMap) -> bool {
    headers.get(header::RANGE).is_some_and(|range| {
        range
            .as_bytes()
            .iter()
            .filter(|&&byte| byte == b',')
            .count()
            >= MOST_RANGES
    })
}

/// Middleware: a `Range` of too many ranges is ignored.
pub async fn bounded_ranges(mut request: Request, next: Next) -> Response {
    if too_many_ranges(request.headers()) {
        request.headers_mut().remove(header::RANGE);
    }
    next.run(request).await
}

/// Middleware: the headers every answer carries, unless it set its own.
pub async fn common_headers(request: Request, next: Next) -> Response {
    // Node's `fetch` sends `Sec-Fetch-Mode` too, and no `Sec-Fetch-Site`.
    let from_a_browser = ["sec-fetch-mode", "sec-fetch-site"]
        .iter()
        .all(|name| request.headers().contains_key(*name));
    let credentialed = request.headers().contains_key(header::AUTHORIZATION)
        || request.headers().contains_key(header::COOKIE);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // A browser asked for a password by a Basic challenge (a page opened at
    // `/store`, the upload page's own request once its session is gone)
    // sends it unasked from then on to every path of the origin, ahead of
    // its session: signing out would sign nobody out. Its pages send people
    // to the sign-in form instead. Browsers say what a request is for and
    // who asks (`Sec-Fetch-Mode` and `-Site`, on every request); scripts
    // and WebDAV clients do not.
    if from_a_browser {
        headers.remove(header::WWW_AUTHENTICATE);
    }
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        // Pages set a fuller policy with their nonce; this covers the rest.
        (
            header::CONTENT_SECURITY_POLICY,
            "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
        ),
    ];
    for (name, value) in defaults {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    // What answers a caller (a page with their images, a private download)
    // is theirs: no shared cache keeps it, whatever a proxy in between is
    // set to do (a cookie is all that tells two callers apart there). A
    // page is kept nowhere, so that it is gone once its session signs out,
    // nor is anything else answered to credentials (a private download, a
    // list of tokens: the back button on a shared machine would show it
    // after sign-out); an anonymous answer a browser may keep, asking
    // again each time (its ETag answers 304). The build's files set their
    // own, immutable, policy.
    let is_page = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"text/html"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(if is_page {
            "no-store"
        } else if credentialed {
            "private, no-store"
        } else {
            "private, no-cache"
        }));
    response
}

/// The query keys a page reads a failed form's error from: Leptos sends a
/// browser without script back to the form's page with its server
/// function's path and error in these.
const FORM_ERROR_KEYS: [&str; 2] = ["__err", "__path"];

/// Middleware: a page asked for with a form's error in its query from
/// anywhere but this site (a link in a mail, say) is sent to the same page
/// without it (the page's script reads the address bar's query too), so
/// that nobody else's words show in a page's alert as Depot's own. The
/// other parameters go as they came.
pub async fn own_form_errors_only(request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let is_form_error = |pair: &&str| {
        form_urlencoded::parse(pair.as_bytes())
            .next()
            .is_some_and(|(key, _)| FORM_ERROR_KEYS.contains(&key.as_ref()))
    };
    let carries_error =
        *request.method() == Method::GET && query.split('&').any(|pair| is_form_error(&pair));
    if !carries_error || from_this_site(request.headers()) {
        return next.run(request).await;
    }
    // One leading slash: `//another.host/` is another site's address.
    let mut location = format!("/{}", request.uri().path().trim_start_matches(['/', '\\']));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !is_form_error(pair))
        .collect();
    if !kept.is_empty() {
        location.push('?');
        location.push_str(&kept.join("&"));
    }
    axum::response::Redirect::to(&location).into_response()
}

/// Whether a browser says the request came from a page of this origin
/// (after a form's redirect, say): by `Sec-Fetch-Site`, or where a browser
/// sends none, by its `Referer`.
fn from_this_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok());
    let referrer = headers
        .get(header::REFERER)
        .and_then(|referrer| referrer.to_str().ok())
        .and_then(|referrer| referrer.split_once("://"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default());
    matches!((referrer, host), (Some(referrer), Some(host)) if referrer.eq_ignore_ascii_case(host))
}

/// The policy of a server-rendered page whose scripts carry `nonce`.
pub fn page_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Middleware for the personal store: whatever a user put there is served
/// as a download in a sandbox, never as a page of Depot's origin.
pub async fn inert_files(request: Request, next: Next) -> Response {
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let mut response = next.run(request).await;
    let served_a_file = reading && response.status().is_success();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if served_a_file {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    #[test]
    fn a_range_of_too_many_ranges_is_found() {
        let ranges = |count: usize| {
            let each: Vec<String> = (0..count).map(|n| format!("{}-{}", 2 * n, 2 * n)).collect();
            format!("bytes={}", each.join(","))
        };
        assert!(!too_many_ranges(&with(&[])));
        assert!(!too_many_ranges(&with(&[("range", &ranges(1))])));
        assert!(!too_many_ranges(&with(&[("range", &ranges(MOST_RANGES))])));
        assert!(too_many_ranges(&with(&[(
            "range",
            &ranges(MOST_RANGES + 1)
        )])));
    }

    #[test]
    fn tells_other_sites_from_this_one_and_from_scripts() {
        let from_another_site = |headers: &HeaderMap| from_another_site(headers, false);
        assert!(!from_another_site(&with(&[])));
        assert!(!from_another_site(&with(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        assert!(!from_another_site(&with(&[("sec-fetch-site", "none")])));
        assert!(from_another_site(&with(&[(
            "sec-fetch-site",
            "cross-site"
        )])));
        assert!(from_another_site(&with(&[("sec-fetch-site", "same-site")])));
        let host = ("host", "depot.example:3000");
        assert!(!from_another_site(&with(&[
            host,
            ("origin", "https://depot.example:3000")
        ])));
        assert!(from_another_site(&with(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(from_another_site(&with(&[host, ("origin", "null")])));
    }

    /// Served over HTTPS alone, the same host over plain HTTP is another
    /// site, as a browser that sends no `Sec-Fetch-Site` would not tell.
    #[test]
    fn over_https_a_plain_http_page_of_the_host_is_another_site() {
        let host = ("host", "depot.example");
        let plain = with(&[host, ("origin", "http://depot.example")]);
        assert!(!from_another_site(&plain, false));
        assert!(from_another_site(&plain, true));
        let secure = with(&[host, ("origin", "https://depot.example")]);
        assert!(!from_another_site(&secure, true));
        assert!(
            !from_another_site(&with(&[]), true),
            "a script sends no Origin"
        );
    }
}
