//! The HTML document and the router of the UI.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{lazy_route, path, Lazy, LazyRoute, SsrMode};

use crate::components::NavBar;
use crate::pages::{
    CatalogPage, DeploymentsPage, EnvironmentsPage, ImagePage, LoginPage, NotFound, StorePage,
    TenantsPage, TokensPage, UploadPage, UsersPage,
};

/// The whole document, rendered on the server around the app. The build
/// output is named under the folder the server gives (`pkg/{version}`), so a
/// browser may keep it for good.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let stylesheet = format!("/{}/depot.css", options.site_pkg_dir);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                // Versioned, so `cargo leptos watch` reloads the page for a
                // change of styles rather than swapping this link.
                <link rel="stylesheet" id="leptos" href=stylesheet/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Title text="Depot"/>
        <Router>
            <NavBar/>
            <main>
                // Async: pages are sent whole, once their data is loaded, so
                // they work without WASM and carry the right status code.
                <Routes fallback=NotFound>
                    <Route path=path!("/") ssr=SsrMode::Async view=CatalogPage/>
                    <Route path=path!("/login") ssr=SsrMode::Async view={Lazy::<Login>::new()}/>
                    <Route path=path!("/upload") ssr=SsrMode::Async view={Lazy::<Upload>::new()}/>
                    <Route path=path!("/image/:id") ssr=SsrMode::Async view={Lazy::<ImageDetail>::new()}/>
                    <Route
                        path=path!("/environments")
                        ssr=SsrMode::Async
                        view={Lazy::<Environments>::new()}
                    />
                    <Route
                        path=path!("/deployments")
                        ssr=SsrMode::Async
                        view={Lazy::<Deployments>::new()}
                    />
                    <Route path=path!("/tokens") ssr=SsrMode::Async view={Lazy::<Tokens>::new()}/>
                    <Route
                        path=path!("/personal-store")
                        ssr=SsrMode::Async
                        view={Lazy::<PersonalStore>::new()}
                    />
                    <Route path=path!("/admin/users") ssr=SsrMode::Async view={Lazy::<Users>::new()}/>
                    <Route
                        path=path!("/admin/tenants")
                        ssr=SsrMode::Async
                        view={Lazy::<Tenants>::new()}
                    />
                </Routes>
            </main>
        </Router>
    }
}

/// Makes each page but the catalog a route whose view is a piece of the
/// WASM of its own (`cargo leptos build --split`), fetched the first time the
/// page is shown: a first visit downloads the router, the navigation bar,
/// the catalog and that one page, not all ten (the catalog's visit, 426 KB
/// as brotli before, is 293 KB; the others 309-371 KB). The catalog, where
/// most visits start, stays in the main bundle: split out, its visit was 356
/// KB in 70 files, the pieces being small and shared between pages. A
/// server-rendered page names its pieces (`$piece`, the snake-case name the
/// split build gives the route's view), so the browser fetches them beside
/// the main bundle; a page's piece and its data are fetched one after the
/// other only when the browser moves between pages.
macro_rules! lazy_pages {
    ($($route:ident as $piece:literal => $page:ident),* $(,)?) => {$(
        struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                crate::pieces::name_pieces($piece);
                $route
            }

            fn view(_this: Self) -> AnyView {
                view! { <$page/> }.into_any()
            }
        }
    )*};
}

lazy_pages! {
    Login as "login" => LoginPage,
    Upload as "upload" => UploadPage,
    ImageDetail as "image_detail" => ImagePage,
    Environments as "environments" => EnvironmentsPage,
    Deployments as "deployments" => DeploymentsPage,
    Tokens as "tokens" => TokensPage,
    PersonalStore as "personal_store" => StorePage,
    Users as "users" => UsersPage,
    Tenants as "tenants" => TenantsPage,
}
