//! The status page: `GET /` (and `/ui/`, which redirects there), a static HTML page, its
//! script and its stylesheet, all compiled into the binary (`include_str!` of
//! `page/index.html`, `page/app.js`, `page/app.css`; no CDN, no build step).
//!
//! The page holds no data and no credential: the browser fetches the view
//! (`/api/v3.1/cluster-status`), the maintenance windows and the history with the
//! credentials it already sent for the page (HTTP Basic), and follows
//! `/api/v3.1/events` to refetch on each event. Every name and reason is written with
//! `textContent`, never parsed as HTML.
//!
//! Authentication is the API's reader auth ([`crate::api`] checks it before calling
//! [`asset`]). A browser shows its login dialog only when a 401 carries
//! `WWW-Authenticate: Basic`; the API's 401s already do ([`crate::error`]), and
//! [`challenge`] makes sure the page's always will, whatever the API's become.
//!
//! Headers on every answer ([`secure_headers`]): a Content-Security-Policy that allows
//! only this origin's script, style and connections (no inline script, no eval, no
//! frames), `X-Content-Type-Options: nosniff`, `Cache-Control: no-store` (the page is
//! behind a login and its script must not outlive an upgrade), `Referrer-Policy:
//! no-referrer` and `X-Frame-Options: DENY`.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

/// The realm a browser shows in its login dialog.
pub const REALM: &str = "status-reporter";

/// No inline script or style, nothing from elsewhere: the page's own files and its own
/// API only. `img-src data:` is not needed (the timeline is inline SVG built in the DOM).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const APP_CSS: &str = include_str!("page/app.css");

/// One file of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Index,
    Script,
    Style,
}

impl Asset {
    fn body_and_type(self) -> (&'static str, &'static str) {
        match self {
            Asset::Index => (INDEX, "text/html; charset=utf-8"),
            Asset::Script => (APP_JS, "text/javascript; charset=utf-8"),
            Asset::Style => (APP_CSS, "text/css; charset=utf-8"),
        }
    }

    /// Every file, for tests that look at all the bytes the page ships.
    pub const ALL: [Asset; 3] = [Asset::Index, Asset::Script, Asset::Style];

    /// The file's bytes.
    pub fn bytes(self) -> &'static str {
        self.body_and_type().0
    }
}

/// The headers every answer of the page carries.
pub fn secure_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// A file of the page, for a reader already authenticated.
pub fn asset(which: Asset) -> Response {
    let (body, content_type) = which.body_and_type();
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    secure_headers(&mut resp);
    resp
}

/// The API's refusal of the page's request, with what a browser needs to ask for a login
/// on a 401; other refusals (403, 429, 503) pass as they are, with the page's headers.
pub fn challenge(mut refusal: Response) -> Response {
    if refusal.status() == StatusCode::UNAUTHORIZED {
        refusal
            .headers_mut()
            .entry(header::WWW_AUTHENTICATE)
            .or_insert(HeaderValue::from_static("Basic realm=\"status-reporter\""));
    }
    secure_headers(&mut refusal);
    refusal
}

/// `/ui` and `/ui/` lead to `/`: the browser's Basic credentials then cover the whole
/// origin (a login at `/ui/` would cover only `/ui/...`, not the API the page reads).
pub fn to_root() -> Response {
    let mut resp = (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("/"))],
    )
        .into_response();
    secure_headers(&mut resp);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_realm_in_the_challenge_is_the_constant() {
        let r = challenge(StatusCode::UNAUTHORIZED.into_response());
        let v = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(v.contains(&format!("realm=\"{REALM}\"")), "{v}");
        let r = challenge(StatusCode::FORBIDDEN.into_response());
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_writes_no_html() {
        // The CSP forbids inline script and style; the page must not need them.
        let html = Asset::Index.bytes();
        assert!(!html.contains("<script>"), "inline script in index.html");
        assert!(!html.contains(" style="), "inline style in index.html");
        assert!(!html.contains("<style"), "inline style in index.html");
        assert!(!html.contains("http://") && !html.contains("https://"));
        // Names and reasons are written as text only.
        let js = Asset::Script.bytes();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "app.js uses {sink}");
        }
        // The one URL allowed: SVG's namespace name, which is never fetched.
        let js = js.replace("http://www.w3.org/2000/svg", "");
        assert!(!js.contains("http://") && !js.contains("https://"));
    }
}
