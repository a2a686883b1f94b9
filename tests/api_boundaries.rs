//! The API's edges: authentication, tenant isolation, and bad input that
//! must be refused clearly without storing anything or hurting the service.

mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_and_checked() {
    let cluster = Cluster::start().await;
    let api = cluster.tenant("acme").await;
    let viewer = api
        .gql("{ viewer { role tenant { name region } } }", json!({}))
        .await;
    assert_eq!(viewer["viewer"]["tenant"]["name"], "acme");
    assert_eq!(viewer["viewer"]["role"], "owner");

    let mut forged = api.key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    for key in ["", "nonsense", "atk_0000000000000000_00", forged.as_str()] {
        let bad = Api::new(&cluster.http, key);
        let (status, body) = bad.raw("{ viewer { role } }", json!({})).await;
        assert_eq!(status, 401, "{key:?}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert!(
            !body.to_string().contains("atk_"),
            "the error echoes no key"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_can_see_or_touch_another_tenants_bot() {
    let cluster = Cluster::start().await;
    let a = cluster.tenant("tenant-a").await;
    let b = cluster.tenant("tenant-b").await;
    let id = a
        .create_bot(&cluster.meeting("private", ""), "A's Bot")
        .await;
    assert_eq!(a.bot(&id).await["botName"], "A's Bot");

    let q = "query($id: ID!) { bot(id: $id) { id botName } }";
    assert_eq!(b.error_code(q, json!({ "id": id })).await, "NOT_FOUND");
    let m = "mutation($id: ID!) { leaveBot(id: $id) { id } }";
    assert_eq!(b.error_code(m, json!({ "id": id })).await, "NOT_FOUND");
    assert_eq!(b.bot_count().await, 0);
    let listed = b.gql("{ bots { edges { node { id } } } }", json!({})).await;
    assert_eq!(listed["bots"]["edges"], json!([]));
    let sub = subscribe(&b, &id).await.await.unwrap();
    let err = sub.expect_err("a foreign bot's events are not served");
    assert_eq!(err[0]["extensions"]["code"], "NOT_FOUND", "{err}");
    // Unknown and malformed ids read the same as foreign ones.
    for other in [
        "00000000-0000-0000-0000-000000000000",
        "not-an-id",
        "' OR 1=1 --",
    ] {
        assert_eq!(a.error_code(q, json!({ "id": other })).await, "NOT_FOUND");
    }
    // The owner's view is untouched.
    assert_eq!(a.bot(&id).await["status"], "QUEUED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bot_requests_are_refused_and_store_nothing() {
    let cluster = Cluster::start().await;
    let api = cluster.tenant("acme").await;
    let create = "mutation($u: String!, $n: String) { createBot(input: {meetingUrl: $u, botName: $n}) { id } }";
    let long_name = "n".repeat(10 * 1024);
    let cases = [
        ("not a url".to_string(), "Bot", "not a valid URL"),
        (
            "https://example.com/meeting/42".to_string(),
            "Bot",
            "not a supported meeting platform",
        ),
        (
            "http://meet.google.com/abc-defg-hij".to_string(),
            "Bot",
            "https",
        ),
        (
            "https://meet.google.com/not-a-code".to_string(),
            "Bot",
            "Google Meet",
        ),
        (cluster.meeting("x", ""), "", "botName"),
        (cluster.meeting("x", ""), "   ", "botName"),
        (cluster.meeting("x", ""), long_name.as_str(), "botName"),
        (cluster.meeting("x", ""), "tab\tname", "control characters"),
    ];
    for (url, name, hint) in cases {
        let (status, body) = api.raw(create, json!({ "u": url, "n": name })).await;
        assert_eq!(status, 200);
        let err = &body["errors"][0];
        assert_eq!(
            err["extensions"]["code"], "BAD_USER_INPUT",
            "{url} / {name:.20}: {body}"
        );
        assert!(
            err["message"].as_str().unwrap().contains(hint),
            "{hint}: {err}"
        );
    }
    let (_, body) = api
        .raw("{ bots(first: 0) { totalCount } }", json!({}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let (_, body) = api
        .raw("{ bots(after: \"zz\") { totalCount } }", json!({}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(api.bot_count().await, 0, "nothing was stored");

    // A 10 MB body is refused from its declared length, before it is read.
    let status = declare_huge_body(&cluster.http, &api.key, 10 * 1024 * 1024).await;
    assert_eq!(status, 413);
    // Malformed JSON is a 400, not a crash.
    let r = reqwest::Client::new()
        .post(format!("{}/graphql", cluster.http))
        .bearer_auth(&api.key)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // And the service keeps serving.
    let id = api
        .create_bot(&cluster.meeting("fine", ""), "Fine Bot")
        .await;
    assert_eq!(api.bot(&id).await["platform"], "SANDBOX");
    assert_eq!(api.bot_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_bot_once_newest_first() {
    let cluster = Cluster::start().await;
    let api = cluster.tenant("acme").await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            api.create_bot(&cluster.meeting(&format!("p{i}"), ""), &format!("Bot {i}"))
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let d = api
            .gql(
                "query($a: String) { bots(first: 3, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }",
                json!({ "a": after }),
            )
            .await;
        assert_eq!(d["bots"]["totalCount"], 7);
        for e in d["bots"]["edges"].as_array().unwrap() {
            seen.push(e["node"]["id"].as_str().unwrap().to_string());
        }
        if !d["bots"]["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = d["bots"]["pageInfo"]["endCursor"]
            .as_str()
            .map(String::from);
    }
    made.reverse();
    assert_eq!(seen, made);
    let queued = api
        .gql("{ bots(status: QUEUED) { totalCount } }", json!({}))
        .await;
    assert_eq!(queued["bots"]["totalCount"], 7);
    let ended = api
        .gql("{ bots(status: ENDED) { totalCount } }", json!({}))
        .await;
    assert_eq!(ended["bots"]["totalCount"], 0);
}

/// Sends only the head of a POST that declares `len` bytes and returns the
/// status the server answers with, without ever sending the body.
async fn declare_huge_body(http: &str, key: &str, len: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = http.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n{{\"query\": \""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("the server answers without waiting for the body")
        .unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_creation_is_rate_limited_per_tenant() {
    let cluster = Cluster::start_with(Options {
        create_bot_limit: Some((1, 3)),
        ..Default::default()
    })
    .await;
    let noisy = cluster.tenant("noisy").await;
    let quiet = cluster.tenant("quiet").await;
    for i in 0..3 {
        noisy
            .create_bot(&cluster.meeting(&format!("r{i}"), ""), "Bot")
            .await;
    }
    let create = "mutation($u: String!) { createBot(input: {meetingUrl: $u}) { id } }";
    let (_, body) = noisy
        .raw(create, json!({ "u": cluster.meeting("r4", "") }))
        .await;
    let err = &body["errors"][0];
    assert_eq!(err["extensions"]["code"], "RATE_LIMITED", "{body}");
    assert!(err["extensions"]["retryAfterSeconds"].as_u64().unwrap() >= 1);
    assert_eq!(noisy.bot_count().await, 3, "the refused bot was not stored");
    quiet.create_bot(&cluster.meeting("q", ""), "Bot").await;
    let metrics = cluster.metrics().await;
    assert!(
        metrics.contains("attache_control_plane_api_errors_total{code=\"RATE_LIMITED\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_has_its_own_request_budget() {
    let cluster = Cluster::start_with(Options {
        api_limit: Some((60, 3)),
        ..Default::default()
    })
    .await;
    let a = cluster.tenant("busy").await;
    let b = cluster.tenant("quiet").await;
    for _ in 0..3 {
        a.gql("{ viewer { role } }", json!({})).await;
    }
    let (status, body) = a.raw("{ viewer { role } }", json!({})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(
        body["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // Another tenant is not slowed by the first.
    b.gql("{ viewer { role } }", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_follows_the_deployment() {
    let query = "{ __schema { queryType { name } } }";
    let open = Cluster::start().await;
    let api = open.tenant("curious").await;
    assert_eq!(
        api.gql(query, json!({})).await["__schema"]["queryType"]["name"],
        "QueryRoot"
    );
    let closed = Cluster::start_with(Options {
        tweak: Some(|c| c.introspection = false),
        ..Default::default()
    })
    .await;
    let api = closed.tenant("curious").await;
    // Switched off, the schema is answered as nothing at all.
    let (_, body) = api.raw(query, json!({})).await;
    assert!(body["data"]["__schema"].is_null(), "{body}");
    assert!(!body.to_string().contains("QueryRoot"), "{body}");
    let (_, body) = api
        .raw("{ __type(name: \"Bot\") { fields { name } } }", json!({}))
        .await;
    assert!(!body.to_string().contains("meetingUrl"), "{body}");
    // Ordinary queries still work.
    api.gql("{ viewer { role } }", json!({})).await;
}
