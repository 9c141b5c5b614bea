//! The browser entry point: hydrates the server-rendered page.

/// Called by the generated JS once the WASM module has loaded. Hydrates asynchronously: a page
/// split off the main bundle (a lazy route, see `app/src/shell.rs`) is fetched first.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    wasm_bindgen_futures::spawn_local(async {
        let body = leptos::tachys::dom::body();
        let owner = leptos::mount::hydrate_from_async(body, app::App).await;
        owner.forget();
        // A marker for tests and styles: the page is interactive from here on.
        if let Some(root) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
        {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });
}
