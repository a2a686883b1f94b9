//! GraphiQL at `GET /graphql`, served entirely from the binary: the page,
//! its script and styles, and React, pinned and vendored (`graphiql/vendor/`,
//! with their versions and checksums). It works on a machine without
//! internet and runs no script from anywhere but this origin.
//!
//! It must never load anything from another origin: the page's
//! Content-Security-Policy allows only `'self'` for scripts and connections
//! (inline styles are allowed: GraphiQL's editor injects them).

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const CSP: &str = "default-src 'self'; script-src 'self'; connect-src 'self'; \
                   style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const INDEX_HTML: &[u8] = include_bytes!("graphiql/index.html");

/// The page's files by name, with their content types.
const FILES: [(&str, &str, &[u8]); 6] = [
    (
        "init.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/init.js"),
    ),
    (
        "page.css",
        "text/css; charset=utf-8",
        include_bytes!("graphiql/page.css"),
    ),
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/vendor/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("graphiql/vendor/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/vendor/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("graphiql/vendor/react-dom.production.min.js"),
    ),
];

fn served(body: &'static [u8], content_type: &'static str, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

/// The page itself.
pub(super) async fn page() -> Response {
    served(INDEX_HTML, "text/html; charset=utf-8", "no-cache")
}

async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => served(body, content_type, "public, max-age=3600"),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/graphiql/{file}`.
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/graphiql/{file}", get(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_files_that_are_served() {
        let html = std::str::from_utf8(INDEX_HTML).unwrap();
        let mut named = 0;
        for part in html.split("/graphiql/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                FILES.iter().any(|(n, _, _)| *n == name),
                "{name} is not served"
            );
            named += 1;
        }
        assert_eq!(named, FILES.len());
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script>"), "inline scripts break the CSP");
    }
}
