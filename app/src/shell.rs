//! The HTML document and the router of the UI.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;
use leptos_router::SsrMode;

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
                    <Route path=path!("/login") ssr=SsrMode::Async view=LoginPage/>
                    <Route path=path!("/upload") ssr=SsrMode::Async view=UploadPage/>
                    <Route path=path!("/image/:id") ssr=SsrMode::Async view=ImagePage/>
                    <Route path=path!("/environments") ssr=SsrMode::Async view=EnvironmentsPage/>
                    <Route path=path!("/deployments") ssr=SsrMode::Async view=DeploymentsPage/>
                    <Route path=path!("/tokens") ssr=SsrMode::Async view=TokensPage/>
                    <Route path=path!("/personal-store") ssr=SsrMode::Async view=StorePage/>
                    <Route path=path!("/admin/users") ssr=SsrMode::Async view=UsersPage/>
                    <Route path=path!("/admin/tenants") ssr=SsrMode::Async view=TenantsPage/>
                </Routes>
            </main>
        </Router>
    }
}
