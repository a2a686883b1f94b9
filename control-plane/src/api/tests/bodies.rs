//! Request bodies the executor never sees: malformed, not a GraphQL
//! request, or over `max_body_bytes` with or without a length.

use axum::body::Body;
use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use super::{counted, fixture, graphql, query, send};

#[tokio::test]
async fn malformed_json_is_400_and_the_api_keeps_serving() {
    let f = fixture(|_| {}).await;
    let a = send(&f.app, graphql(Some(&f.key), "{\"query\": ")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = query(&f.app, Some(&f.key), "{ bots { totalCount } }").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["data"]["bots"]["totalCount"], 0, "{:?}", a.json());
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_refused_unread() {
    let f = fixture(|c| c.max_body_bytes = 1024).await;
    let padded = |n: usize| {
        let body =
            json!({ "query": "{ bots { totalCount } }", "variables": { "pad": "" } }).to_string();
        let pad = "x".repeat(n - body.len());
        json!({ "query": "{ bots { totalCount } }", "variables": { "pad": pad } }).to_string()
    };

    let fits = padded(1024);
    assert_eq!(fits.len(), 1024);
    let a = send(&f.app, graphql(Some(&f.key), fits)).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.json());

    // Declared too long: refused from the header, before the body is read.
    let too_long = padded(1025);
    let mut req = graphql(Some(&f.key), too_long.clone());
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, too_long.len().into());
    let a = send(&f.app, req).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.code(), "BAD_USER_INPUT");
    assert_eq!(
        a.json()["errors"][0]["message"],
        "the request body is larger than 1024 bytes"
    );

    // Sent without a length: cut off at the limit while it is read, and
    // refused the same way, never run.
    let stream = futures::stream::iter(
        too_long
            .into_bytes()
            .chunks(100)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let a = send(&f.app, graphql(Some(&f.key), Body::from_stream(stream))).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.code(), "BAD_USER_INPUT");
    assert_eq!(a.json()["data"], Value::Null, "not executed");
}

#[tokio::test]
async fn a_body_that_is_not_a_graphql_request_is_bad_user_input() {
    let f = fixture(|_| {}).await;
    let before = counted(&f.app, "BAD_USER_INPUT").await;
    for body in ["{ not json", "42"] {
        let a = send(&f.app, graphql(Some(&f.key), body.to_string())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(a.code(), "BAD_USER_INPUT", "{body}");
        let message = a.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.starts_with("the request body is not a GraphQL request"),
            "{body}: {message}"
        );
    }
    assert_eq!(counted(&f.app, "BAD_USER_INPUT").await, before + 2);
    // Without a key the answer is still about the key, not the body.
    let a = send(&f.app, graphql(None, "{ not json".to_string())).await;
    assert_eq!(a.code(), "UNAUTHENTICATED");
}
