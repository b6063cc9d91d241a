//! Where the page's script, WebAssembly and stylesheet are, with a version in the address: the
//! server hashes the built files at startup and serves `/pkg/*?v=<hash>` with a year-long cache;
//! a new build has a new hash, so no browser keeps an old WASM.

use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetUrls {
    pub js: String,
    pub wasm: String,
    pub css: String,
}

static URLS: OnceLock<AssetUrls> = OnceLock::new();

/// Set once by the server at startup (later calls are ignored).
pub fn set_urls(urls: AssetUrls) {
    let _ = URLS.set(urls);
}

/// The addresses the shell links; unversioned defaults until the server set them.
pub fn urls() -> AssetUrls {
    URLS.get().cloned().unwrap_or_else(|| AssetUrls {
        js: "/pkg/clinicpay.js".into(),
        wasm: "/pkg/clinicpay.wasm".into(),
        css: "/pkg/clinicpay.css".into(),
    })
}

/// The module script that loads the WebAssembly and hydrates the page (what Leptos's
/// `HydrationScripts` does, with our versioned addresses).
pub fn boot_script(u: &AssetUrls) -> String {
    format!(
        "import('{js}').then(m => m.default({{ module_or_path: '{wasm}' }}).then(() => m.hydrate()));",
        js = u.js,
        wasm = u.wasm
    )
}
