//! The WASM entry point: hydrates the server-rendered page.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // A panic's message in the browser's console; the size-optimised release
    // bundle aborts at once instead (`-Cpanic=immediate-abort`, see
    // `scripts/setup.sh`), where the hook would never run but still weigh.
    #[cfg(not(panic = "immediate-abort"))]
    console_error_panic_hook::set_once();
    // Each page's view is a piece of the WASM of its own, fetched before
    // the page hydrates: hydration finishes later than this call returns.
    wasm_bindgen_futures::spawn_local(async {
        let body = leptos::prelude::document()
            .body()
            .expect("a page has a body");
        leptos::mount::hydrate_from_async(body, app::App)
            .await
            .forget();
        // Says the page's script has taken over: until then a form submits
        // the plain way, and the browser tests wait for this before they act
        // as someone who sees the page working.
        if let Some(root) = leptos::prelude::document().document_element() {
            _ = root.set_attribute("data-hydrated", "");
        }
    });
}
