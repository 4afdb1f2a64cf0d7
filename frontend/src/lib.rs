//! The WASM entry point: hydrates the server-rendered page.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    _ = console_log::init_with_level(log::Level::Info);
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Says the page's script has taken over: until then a form submits
    // the plain way, and the browser tests wait for this before they act
    // as someone who sees the page working.
    if let Some(root) = leptos::prelude::document().document_element() {
        _ = root.set_attribute("data-hydrated", "");
    }
}
