//! The HTML document and the router of the UI.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use crate::components::NavBar;
use crate::pages::{CatalogPage, ImagePage, LoginPage, NotFound, UploadPage};

/// The whole document, rendered on the server around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
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
        <Stylesheet id="leptos" href="/pkg/depot.css"/>
        <Title text="Depot"/>
        <Router>
            <NavBar/>
            <main>
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=CatalogPage/>
                    <Route path=path!("/login") view=LoginPage/>
                    <Route path=path!("/upload") view=UploadPage/>
                    <Route path=path!("/image/:id") view=ImagePage/>
                </Routes>
            </main>
        </Router>
    }
}
