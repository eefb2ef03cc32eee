//! The Weft GUI at `/gui` (DESIGN §2: "GUI at `/gui`" on the API port): a static
//! shell of HTML, CSS and JavaScript compiled into the binary, so there is no separate
//! build step, nothing to install and nothing fetched from anywhere at run time.
//!
//! What it is: the files in this directory and the routes that serve them. What it is
//! not: a second API. The shell holds no data; the browser reads everything from the
//! authenticated JSON API (`/v1/…`, and the stats and tap endpoints when the control
//! plane has them) with the operator token the user pastes, kept in the tab's
//! `sessionStorage` only. So the shell is served without a token, outside the
//! [`auth`](super::auth) layer, and every data request still needs one.
//!
//! Every answer under `/gui` carries a strict `Content-Security-Policy`
//! ([`CONTENT_SECURITY_POLICY`]): scripts, styles, images and connections from this
//! origin only, no inline script or style, no framing. The files are written for it:
//! no inline `<script>` or `style=` attribute, DOM built with `textContent`, never
//! `innerHTML` with data.

use axum::extract::Path;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::error::Error;

/// The policy on every `/gui` answer: this origin only, nothing inline, no framing,
/// no plugins, no `<base>` rewriting, no form posts.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; object-src 'none'";

/// The shell, served at `/gui` and `/gui/`.
const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("index.html"),
};

/// The files under `/gui/`, by name. Add a file here and to `index.html` together.
const ASSETS: &[Asset] = &[
    INDEX,
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("favicon.svg"),
    },
    script("main.js", include_bytes!("main.js")),
    script("api.js", include_bytes!("api.js")),
    script("dom.js", include_bytes!("dom.js")),
    script("resources.js", include_bytes!("resources.js")),
    script("graph.js", include_bytes!("graph.js")),
    script("tap.js", include_bytes!("tap.js")),
];

/// One embedded file.
#[derive(Clone, Copy)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const fn script(name: &'static str, body: &'static [u8]) -> Asset {
    Asset {
        name,
        content_type: "text/javascript; charset=utf-8",
        body,
    }
}

/// The GUI's routes. Merged into the API router outside its token check: the shell
/// holds no data.
pub(super) fn router() -> Router {
    Router::new()
        .route("/gui", any(index))
        .route("/gui/", any(index))
        .route("/gui/{*file}", any(file))
}

async fn index(method: Method) -> Response {
    serve(&method, "/gui", Some(&INDEX))
}

async fn file(method: Method, Path(file): Path<String>) -> Response {
    let asset = ASSETS.iter().find(|a| a.name == file);
    serve(&method, &format!("/gui/{file}"), asset)
}

/// `GET`/`HEAD` of `asset` at `path`: the file, `404` when there is none, `405` for any
/// other method; each with the GUI's security headers.
fn serve(method: &Method, path: &str, asset: Option<&Asset>) -> Response {
    let mut response = if method != Method::GET && method != Method::HEAD {
        Error::method_not_allowed(method, path, &["GET", "HEAD"]).into_response()
    } else if let Some(asset) = asset {
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, asset.content_type),
                // The files change with the binary: revalidate rather than run an old
                // script against a newer API.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            asset.body,
        )
            .into_response()
    } else {
        Error::not_found(format!(
            "no such file {path} in the GUI; open /gui/ for the GUI, or see /openapi.json for the API"
        ))
        .into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_shell_names_is_served_and_every_served_file_is_named() {
        let html = std::str::from_utf8(INDEX.body).unwrap_or_default();
        let scripts: Vec<&str> = ASSETS
            .iter()
            .filter(|a| a.content_type.starts_with("text/javascript"))
            .map(|a| a.name)
            .collect();
        for asset in ASSETS.iter().filter(|a| a.name != INDEX.name) {
            // Scripts other than the entry point are reached through `import`.
            let named = html.contains(&format!("/gui/{}", asset.name))
                || ASSETS.iter().any(|a| {
                    scripts.contains(&a.name)
                        && std::str::from_utf8(a.body)
                            .unwrap_or_default()
                            .contains(&format!("./{}", asset.name))
                });
            assert!(named, "{} is served but nothing loads it", asset.name);
        }
        for (i, _) in html.match_indices("/gui/") {
            let name: String = html[i + 5..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            assert!(
                name.is_empty() || ASSETS.iter().any(|a| a.name == name),
                "index.html names /gui/{name}, which is not served"
            );
        }
    }

    /// Whether `text` has an inline event handler attribute (` onclick=`, …).
    fn has_inline_handler(text: &str) -> bool {
        text.match_indices(" on").any(|(i, _)| {
            let rest = &text[i + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        })
    }

    #[test]
    fn the_shell_has_no_inline_script_or_style_or_remote_url_the_policy_would_block() {
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.body).unwrap_or_default();
            let name = asset.name;
            if asset.content_type.starts_with("text/html") {
                assert!(!text.contains("style="), "{name}: inline style");
                assert!(!text.contains("<style"), "{name}: inline style");
                assert!(!has_inline_handler(text), "{name}: inline event handler");
                for (i, _) in text.match_indices("<script") {
                    let tag = &text[i..i + text[i..].find('>').unwrap_or(0)];
                    assert!(tag.contains("src=\"/gui/"), "{name}: inline script {tag}");
                }
            }
            if asset.content_type.starts_with("text/javascript") {
                assert!(!text.contains("innerHTML"), "{name}: innerHTML");
                assert!(!text.contains("eval("), "{name}: eval");
                assert!(
                    !text.contains("setAttribute('style'"),
                    "{name}: inline style"
                );
            }
            // Nothing from anywhere else: the only absolute URL is the SVG namespace.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://"), "{name}: remote URL");
            assert!(!text.contains("https://"), "{name}: remote URL");
            assert!(!text.contains("//cdn"), "{name}: remote URL");
        }
    }
}
