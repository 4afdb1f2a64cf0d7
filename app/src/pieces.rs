//! The pieces of the WASM a split build (`cargo leptos build --split`)
//! makes of the lazily loaded pages, and the hints that let a browser fetch
//! the ones a server-rendered page needs beside the main bundle, rather than
//! once the main bundle has run and found it needs them.
//!
//! Leptos names them itself only when it finds the build's map under the
//! folder pages name, and then from a context it looks up outside the
//! page's own (so not on every request); here the server reads the map at
//! start and each lazily loaded page names its own pieces as it renders.

use std::collections::HashMap;
use std::sync::Arc;

/// The build's map from each lazily loaded function to the files (without
/// `.wasm`) of the WASM it needs, and the folder pages name them under.
#[derive(Debug, Clone)]
pub struct WasmPieces {
    folder: String,
    by_function: Arc<HashMap<String, Vec<String>>>,
}

/// The script of the split build that fetches the pieces.
const LOADER: &str = "__wasm_split.______________________.js";

impl WasmPieces {
    /// `folder` is the URL folder of the build output (`/pkg/{version}`).
    pub fn new(folder: String, by_function: HashMap<String, Vec<String>>) -> Self {
        Self {
            folder,
            by_function: Arc::new(by_function),
        }
    }

    /// The URLs of the files the page `page` (the snake-case name of its
    /// route, as the split build names its view) needs, and of the loader.
    pub fn urls_for(&self, page: &str) -> Vec<String> {
        // The build names a page's view `__{page}_view_{hash}`.
        let prefix = format!("__{page}_view_");
        let mut urls: Vec<String> = self
            .by_function
            .iter()
            .filter(|(function, _)| function.starts_with(&prefix))
            .flat_map(|(_, files)| files)
            .map(|file| format!("{}/{file}.wasm", self.folder))
            .collect();
        urls.sort();
        urls.dedup();
        if !urls.is_empty() {
            urls.push(format!("{}/{LOADER}", self.folder));
        }
        urls
    }
}

/// Names, in the page's head, the pieces of the WASM the page `page` needs,
/// when the server was given a split build.
pub fn name_pieces(page: &str) {
    #[cfg(feature = "ssr")]
    {
        use leptos::prelude::*;
        use leptos_meta::Link;

        let Some(pieces) = use_context::<WasmPieces>() else {
            return;
        };
        for url in pieces.urls_for(page) {
            // Rendered to register the link with the head, as leptos_meta's
            // tags are; `anonymous` is what the loader's `fetch` asks with,
            // so the browser uses what it preloaded.
            let link = if url.ends_with(".js") {
                view! { <Link rel="modulepreload" href=url/> }.into_any()
            } else {
                view! {
                    <Link rel="preload" href=url as_="fetch" type_="application/wasm" crossorigin="anonymous"/>
                }
                .into_any()
            };
            _ = link.to_html();
        }
    }
    #[cfg(not(feature = "ssr"))]
    let _ = page;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_names_its_own_pieces_and_the_loader_only() {
        let map = HashMap::from([
            (
                "__tokens_view_123".to_owned(),
                vec!["chunk_1".to_owned(), "split___tokens_view_123".to_owned()],
            ),
            (
                "__users_view_123".to_owned(),
                vec!["chunk_1".to_owned(), "split___users_view_123".to_owned()],
            ),
        ]);
        let pieces = WasmPieces::new("/pkg/abc".to_owned(), map);
        let mut urls = pieces.urls_for("tokens");
        urls.sort();
        assert_eq!(
            urls,
            [
                "/pkg/abc/__wasm_split.______________________.js",
                "/pkg/abc/chunk_1.wasm",
                "/pkg/abc/split___tokens_view_123.wasm",
            ]
        );
        // A page that is not split, or a build that was not: nothing.
        assert!(pieces.urls_for("catalog").is_empty());
        assert!(WasmPieces::new("/pkg/abc".to_owned(), HashMap::new())
            .urls_for("tokens")
            .is_empty());
    }
}
