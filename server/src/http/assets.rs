//! The site's built files under `/pkg/`: read once, gzip-compressed once, answered with an ETag
//! and, when the address carries the current build's version (`?v=…`, as the page links them),
//! a year-long immutable cache. A file rebuilt while the server runs is read again (its
//! modification time changed); an old version's address then gets `no-cache`.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

const LONG: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

struct Asset {
    modified: Option<SystemTime>,
    etag: String,
    raw: Arc<Vec<u8>>,
    gzip: Option<Arc<Vec<u8>>>,
}

/// The `/pkg/` directory and what has been read from it.
pub struct Assets {
    dir: PathBuf,
    /// The build's version: a hash over the page's script, WebAssembly and stylesheet.
    version: String,
    cache: Mutex<HashMap<String, Arc<Asset>>>,
}

impl Assets {
    /// Reads the site's pkg directory and tells the app the versioned addresses to link.
    pub fn load(site_root: &str, output_name: &str) -> Arc<Assets> {
        let dir = PathBuf::from(site_root).join("pkg");
        let wasm_name = [format!("{output_name}.wasm"), format!("{output_name}_bg.wasm")]
            .into_iter()
            .find(|n| dir.join(n).exists())
            .unwrap_or_else(|| format!("{output_name}.wasm"));
        let names = [format!("{output_name}.js"), wasm_name.clone(), format!("{output_name}.css")];
        let mut h = Sha256::new();
        for n in &names {
            if let Ok(bytes) = std::fs::read(dir.join(n)) {
                h.update(n.as_bytes());
                h.update(Sha256::digest(&bytes));
            }
        }
        let version = hex::encode(h.finalize())[..16].to_string();
        app::assets::set_urls(app::assets::AssetUrls {
            js: format!("/pkg/{}?v={version}", names[0]),
            wasm: format!("/pkg/{wasm_name}?v={version}"),
            css: format!("/pkg/{}?v={version}", names[2]),
        });
        let assets = Arc::new(Assets { dir, version, cache: Mutex::new(HashMap::new()) });
        // compress the big ones now, not on the first visitor's time
        let warm = assets.clone();
        tokio::task::spawn_blocking(move || {
            for n in &names {
                let _ = warm.get(n);
            }
        });
        assets
    }

    fn get(&self, name: &str) -> Option<Arc<Asset>> {
        let path = self.dir.join(name);
        let modified = std::fs::metadata(&path).ok()?.modified().ok();
        if let Some(a) = self.cache.lock().ok()?.get(name) {
            if a.modified == modified {
                return Some(a.clone());
            }
        }
        let raw = std::fs::read(&path).ok()?;
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&raw))[..20]);
        let gzip = compressible(name).then(|| {
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 3), flate2::Compression::new(6));
            let _ = enc.write_all(&raw);
            Arc::new(enc.finish().unwrap_or_default())
        });
        let gzip = gzip.filter(|g| !g.is_empty() && g.len() < raw.len());
        let asset = Arc::new(Asset { modified, etag, raw: Arc::new(raw), gzip });
        if let Ok(mut c) = self.cache.lock() {
            c.insert(name.to_string(), asset.clone());
        }
        Some(asset)
    }
}

fn compressible(name: &str) -> bool {
    [".js", ".wasm", ".css", ".svg", ".json", ".map"].iter().any(|e| name.ends_with(e))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json" | "map") => "application/json",
        _ => "application/octet-stream",
    }
}

/// A plain file name: letters, digits, `.`, `_`, `-`; no path, no hidden files.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
    })
}

/// `GET /pkg/{file}`.
pub async fn serve(
    State(assets): State<Arc<Assets>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !valid_name(&name) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let a = {
        let assets = assets.clone();
        let name = name.clone();
        match tokio::task::spawn_blocking(move || assets.get(&name)).await {
            Ok(Some(a)) => a,
            _ => return StatusCode::NOT_FOUND.into_response(),
        }
    };
    let current = q.get("v").is_some_and(|v| *v == assets.version);
    let cache = if current { LONG } else { REVALIDATE };
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&a.etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let etag_matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag || t.trim() == "*"));
    if etag_matches {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&name)));
    match (&a.gzip, accepts_gzip(&headers)) {
        (Some(gz), true) => {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            (h, gz.as_ref().clone()).into_response()
        }
        _ => (h, a.raw.as_ref().clone()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_encodings() {
        assert!(valid_name("clinicpay_bg.wasm") && valid_name("clinicpay.js"));
        for bad in ["", "../secrets", ".env", "a/b", "a\\b", "x%2e"] {
            assert!(!valid_name(bad), "{bad}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br, gzip;q=0.8"));
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0, br"));
        assert!(!accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        assert!(!accepts_gzip(&h));
    }

    #[tokio::test]
    async fn serves_compressed_versioned_and_revalidated() {
        let dir = std::env::temp_dir().join(format!("clinicpay-assets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::write(dir.join("pkg/clinicpay.js"), "export default 1;\n".repeat(200)).unwrap();
        let assets = Assets::load(dir.to_str().unwrap(), "clinicpay");
        let version = assets.version.clone();
        let call = |name: &str, v: Option<&str>, enc: &str, inm: Option<&str>| {
            let assets = assets.clone();
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(enc).unwrap());
            if let Some(t) = inm {
                h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(t).unwrap());
            }
            let mut q = HashMap::new();
            if let Some(v) = v {
                q.insert("v".to_string(), v.to_string());
            }
            serve(State(assets), Path(name.to_string()), Query(q), h)
        };
        let r = call("clinicpay.js", Some(&version), "gzip", None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::CACHE_CONTROL], LONG);
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        let r = call("clinicpay.js", Some("old"), "identity", None).await;
        assert_eq!((r.status().as_u16(), r.headers()[header::CACHE_CONTROL].to_str().unwrap()), (200, REVALIDATE));
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        let r = call("clinicpay.js", None, "gzip", Some(&etag)).await;
        assert_eq!(r.status(), 304);
        assert_eq!(call("nothing.js", None, "gzip", None).await.status(), 404);
        assert_eq!(call("..", None, "gzip", None).await.status(), 404);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
