//! Browser-only helpers (no-ops on the server).

pub fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0
    }
}

pub fn new_key() -> String {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window().and_then(|w| w.crypto().ok()).map(|c| c.random_uuid()).unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        String::new()
    }
}

pub fn stored_method() -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.local_storage().ok().flatten())
            .and_then(|s| s.get_item(super::METHOD_KEY).ok().flatten())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        None
    }
}

pub fn store_method(m: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(s) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = s.set_item(super::METHOD_KEY, m);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = m;
}

pub fn print() {
    #[cfg(feature = "hydrate")]
    if let Some(w) = web_sys::window() {
        let _ = w.print();
    }
}

/// Focuses the element with this id (the patient field, the QR panel).
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn focus(id: &str) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(e) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(id))
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = e.focus();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = id;
}

/// Focuses the patient field with its text selected, so what is typed or scanned next
/// replaces the previous search.
pub fn focus_search() {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(e) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(super::SEARCH_ID))
            .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
        {
            let _ = e.focus();
            e.select();
        }
    }
}

/// Is the keyboard focus in a field that takes text (where typing must stay)?
pub fn typing_in_field() -> bool {
    #[cfg(feature = "hydrate")]
    {
        let el = web_sys::window().and_then(|w| w.document()).and_then(|d| d.active_element());
        el.is_some_and(|e| {
            let tag = e.tag_name().to_ascii_lowercase();
            let kind = e.get_attribute("type").unwrap_or_default();
            tag == "textarea"
                || tag == "select"
                || (tag == "input" && !matches!(kind.as_str(), "radio" | "checkbox" | "button" | "submit"))
        })
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
}

/// Is a receipt on the screen (F8 prints only then)?
pub fn receipt_shown() -> bool {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.query_selector("[data-testid=receipt]").ok().flatten())
            .is_some()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
}
