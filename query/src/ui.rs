//! The web page, served at `/` with every asset inside the binary: no
//! CDN, no external font, nothing fetched but this service's own API.
//!
//! The page is plain JavaScript modules and CSS under `query/ui/` (no
//! build step: the committed files are what is served), with uPlot
//! (vendored, `query/ui/vendor/`) drawing the charts. Each asset is served
//! with its type, an `ETag` of its bytes, and gzip when the client takes
//! it. The page's `Content-Security-Policy` allows scripts, styles and
//! connections from this origin only, and no inline script or style
//! element: log text the page shows is always set as text, and even a
//! mistake there could not run a script.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy of the page and its assets.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the page.
pub struct Asset {
    /// Its path under `/ui/`.
    pub path: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset {
            path: $path,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $path)),
        }),*]
    };
}

/// Every file the page is made of.
pub const ASSETS: &[Asset] = assets!(
    "index.html",
    "style.css",
    "js/main.js",
    "js/api.js",
    "js/dom.js",
    "js/state.js",
    "js/search.js",
    "js/query_box.js",
    "js/list.js",
    "js/chart.js",
    "js/request.js",
    "js/errors.js",
    "js/overview.js",
    "vendor/uPlot.iife.min.js",
    "vendor/uPlot.min.css",
);

/// The type an asset is served as.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// An asset's gzip form and tag, made once.
struct Prepared {
    gzip: Vec<u8>,
    etag: HeaderValue,
}

fn prepared(index: usize) -> &'static Prepared {
    static ALL: OnceLock<Vec<Prepared>> = OnceLock::new();
    &ALL.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                use std::hash::{Hash, Hasher};
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                a.bytes.hash(&mut hasher);
                Prepared {
                    gzip: gzip(a.bytes),
                    etag: HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
                        .expect("hex is a valid header value"),
                }
            })
            .collect()
    })[index]
}

/// `bytes` gzipped at the highest level (what the page's size budget is
/// measured on).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .expect("gzip into memory cannot fail")
}

/// The page's routes: `/` and `/ui/<asset>`.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/ui/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move { serve(&path, &headers) }),
        )
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, "no such file\n").into_response();
    };
    let asset = &ASSETS[index];
    let prepared = prepared(index);
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag == prepared.etag)
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if accepts_gzip(headers) {
        let mut r = prepared.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        asset.bytes.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    h.insert(header::ETAG, prepared.etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.trim().split(';');
            it.next().is_some_and(|name| name.trim() == "gzip") && it.all(|p| p.trim() != "q=0")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget of the shipped scripts and styles, gzipped.
    const BUDGET: usize = 300 * 1024;

    #[test]
    fn the_page_stays_within_its_size_budget() {
        let total: usize = ASSETS
            .iter()
            .filter(|a| a.path.ends_with(".js") || a.path.ends_with(".css"))
            .map(|a| gzip(a.bytes).len())
            .sum();
        assert!(
            total > 20 * 1024,
            "the page's assets are missing: {total} bytes"
        );
        assert!(
            total <= BUDGET,
            "JS + CSS gzipped is {total} bytes, over {BUDGET}"
        );
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let from = line.rsplit(['"', '\'']).nth(1).unwrap();
                let path = format!("js/{}", from.trim_start_matches("./"));
                assert!(
                    ASSETS.iter().any(|a| a.path == path),
                    "{} imports {from}, which is not served",
                    asset.path
                );
            }
        }
        let index = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(!index.contains("<script>"), "no inline script");
        for src in index
            .split("src=\"/ui/")
            .skip(1)
            .chain(index.split("href=\"/ui/").skip(1))
        {
            let path = &src[..src.find('"').unwrap()];
            assert!(
                ASSETS.iter().any(|a| a.path == path),
                "index.html loads {path}"
            );
        }
    }

    #[test]
    fn gzip_is_taken_only_when_offered() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, gzip;q=0.8"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
