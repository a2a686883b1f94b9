//! Handler tests on the router, without a socket: what a caller gets back
//! when a request is refused before, or by, the GraphQL executor.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::router;
use crate::{Config, ControlPlane};

mod bodies;

struct Fixture {
    app: Router,
    cp: ControlPlane,
    /// An owner key of the tenant `acme`.
    key: String,
    _dir: tempfile::TempDir,
}

async fn fixture(tune: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::local(dir.path());
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.quic_addr = "127.0.0.1:0".parse().unwrap();
    tune(&mut config);
    let cp = ControlPlane::build(config).await.unwrap();
    let key = cp
        .admin()
        .create_tenant("acme", "local")
        .await
        .unwrap()
        .api_key;
    Fixture {
        app: router(cp.state.clone(), CancellationToken::new()),
        cp,
        key,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn code(&self) -> Value {
        self.json()["errors"][0]["extensions"]["code"].clone()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn graphql(key: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut req = Request::post("/graphql").header(header::CONTENT_TYPE, "application/json");
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    req.body(body.into()).unwrap()
}

async fn query(app: &Router, key: Option<&str>, query: &str) -> Answer {
    send(app, graphql(key, json!({ "query": query }).to_string())).await
}

/// How many errors with `code` the API has counted.
async fn counted(app: &Router, code: &str) -> u64 {
    let a = send(app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    let text = String::from_utf8(a.body).unwrap();
    let series = format!("attache_control_plane_api_errors_total{{code=\"{code}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in the metrics"))
        .parse()
        .unwrap()
}

/// `{ __type { fields { type { ofType { … name } } } } }`, `depth` fields
/// deep.
fn nested(depth: usize) -> String {
    let of_types = depth - 4;
    format!(
        "{{ __type(name: \"Bot\") {{ fields {{ type {{ {} name {} }} }} }} }}",
        "ofType { ".repeat(of_types),
        "} ".repeat(of_types)
    )
}

#[tokio::test]
async fn a_missing_api_key_is_401_unauthenticated_and_counted() {
    let f = fixture(|_| {}).await;
    let before = counted(&f.app, "UNAUTHENTICATED").await;
    let a = query(&f.app, None, "{ bots { totalCount } }").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "UNAUTHENTICATED");
    assert_eq!(
        a.json()["errors"][0]["message"],
        "missing or invalid API key"
    );
    assert_eq!(a.json()["data"], Value::Null);
    assert_eq!(counted(&f.app, "UNAUTHENTICATED").await, before + 1);
}

#[tokio::test]
async fn an_invalid_api_key_is_401_unauthenticated() {
    let f = fixture(|_| {}).await;
    let mut tampered = f.key.clone();
    let last = if tampered.ends_with('0') { '1' } else { '0' };
    tampered.pop();
    tampered.push(last);
    for key in ["atk_nothing_here", "not a key at all", &tampered] {
        let a = query(&f.app, Some(key), "{ bots { totalCount } }").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{key}");
        assert_eq!(a.code(), "UNAUTHENTICATED", "{key}");
        assert_eq!(
            a.json()["errors"][0]["message"],
            "missing or invalid API key"
        );
    }
    let a = query(&f.app, Some(&f.key), "{ bots { totalCount } }").await;
    assert_eq!(a.status, StatusCode::OK, "the untampered key works");
}

#[tokio::test]
async fn a_session_cookie_without_the_console_header_is_401() {
    let f = fixture(|_| {}).await;
    let mut req = graphql(None, json!({ "query": "{ me { role } }" }).to_string());
    req.headers_mut()
        .insert(header::COOKIE, "attache_session=whatever".parse().unwrap());
    let a = send(&f.app, req).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.code(), "UNAUTHENTICATED");
    assert_eq!(
        a.json()["errors"][0]["message"],
        "the console session is missing, expired or signed out"
    );
}

#[tokio::test]
async fn a_failed_credential_lookup_is_500_internal_and_says_little() {
    let f = fixture(|_| {}).await;
    f.cp.state.store.db().close_by_ref().await.unwrap();
    let a = query(&f.app, Some(&f.key), "{ bots { totalCount } }").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.code(), "INTERNAL");
    assert_eq!(a.json()["errors"][0]["message"], "internal error");
    // Readiness is a different answer: the replica is not ready.
    let a = send(&f.app, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// A data query: the nested meta fields beside a data field.
fn nested_with_data(depth: usize) -> String {
    nested(depth).replacen("{ __type", "{ viewer { role } __type", 1)
}

#[tokio::test]
async fn queries_nested_past_the_depth_limit_are_refused() {
    let f = fixture(|_| {}).await;
    let a = query(&f.app, Some(&f.key), &nested_with_data(12)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.json().get("errors").is_none(), "{:?}", a.json());
    assert_eq!(
        a.json()["data"]["__type"]["fields"][0]["type"]["name"],
        Value::Null
    );

    let before = counted(&f.app, "BAD_USER_INPUT").await;
    let a = query(&f.app, Some(&f.key), &nested_with_data(13)).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "GraphQL errors travel in the body"
    );
    let body = a.json();
    assert_eq!(body["errors"][0]["message"], "Query is nested too deep.");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(counted(&f.app, "BAD_USER_INPUT").await, before + 1);
}

/// Introspection alone has a bound of its own, so the standard query of
/// graphql-core (and GraphiQL, gql, code generators) works while data
/// queries keep theirs.
#[tokio::test]
async fn the_standard_introspection_query_is_answered() {
    let f = fixture(|_| {}).await;
    let standard = include_str!("../fixtures/graphql-core-introspection.graphql");
    let a = query(&f.app, Some(&f.key), standard).await;
    let body = a.json();
    assert!(body.get("errors").is_none(), "{body:?}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Bot"), "{types:?}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "QueryRoot");
    // Deeper than any data query may go, still answered when it is all meta.
    let a = query(&f.app, Some(&f.key), &nested(20)).await;
    assert!(a.json().get("errors").is_none(), "{:?}", a.json());
    // Past the bound of introspection, it is refused too (by the parser's
    // own recursion bound first, for this shape).
    let a = query(&f.app, Some(&f.key), &nested(40)).await;
    let code = &a.json()["errors"][0]["extensions"]["code"];
    assert!(
        code == "GRAPHQL_VALIDATION_FAILED" || code == "GRAPHQL_PARSE_FAILED",
        "{:?}",
        a.json()
    );
}

/// `schema.graphql` at the top of the repository is the published
/// contract: it must be what the code serves.
#[test]
fn the_committed_schema_is_the_served_one() {
    let committed = include_str!("../../../../schema.graphql");
    assert!(
        committed == super::sdl(),
        "schema.graphql differs from the schema the code serves: review the change \
         (and note a breaking one in CHANGELOG.md), then run \
         `cargo run -- schema > schema.graphql`"
    );
}

/// The executor's own refusals carry codes, as common GraphQL servers give
/// them.
#[tokio::test]
async fn parse_validation_and_coercion_errors_carry_codes() {
    let f = fixture(|_| {}).await;
    let table = [
        ("{ bots { totalCount }", "GRAPHQL_PARSE_FAILED"),
        (
            "query { bots(nope: 1) { totalCount } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("{ bot { id } }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ nothing }", "GRAPHQL_VALIDATION_FAILED"),
        (
            "{ bots(first: 99999999999) { totalCount } }",
            "BAD_USER_INPUT",
        ),
        (
            "{ bots(status: SLEEPING) { totalCount } }",
            "BAD_USER_INPUT",
        ),
        ("{ bots(first: 500) { totalCount } }", "BAD_USER_INPUT"),
    ];
    for (q, code) in table {
        let a = query(&f.app, Some(&f.key), q).await;
        let body = a.json();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], code,
            "{q}: {body:?}"
        );
    }
}

#[tokio::test]
async fn a_tenant_over_its_rate_limit_gets_429_with_retry_after() {
    let f = fixture(|c| {
        c.api_per_minute = 1;
        c.api_burst = 2;
    })
    .await;
    let other =
        f.cp.admin()
            .create_tenant("globex", "local")
            .await
            .unwrap()
            .api_key;
    let doc = "{ bots { totalCount } }";
    for _ in 0..2 {
        assert_eq!(
            query(&f.app, Some(&f.key), doc).await.status,
            StatusCode::OK
        );
    }
    let before = counted(&f.app, "RATE_LIMITED").await;
    let a = query(&f.app, Some(&f.key), doc).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.code(), "RATE_LIMITED");
    let retry: u64 = a.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One request a minute: the next token is up to a minute away.
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    assert_eq!(
        a.json()["errors"][0]["extensions"]["retryAfterSeconds"],
        retry,
        "the body and the header agree"
    );
    assert_eq!(counted(&f.app, "RATE_LIMITED").await, before + 1);

    let a = query(&f.app, Some(&other), doc).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "another tenant has its own budget"
    );
}

async fn create_bots(f: &Fixture, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let q = format!(
            "mutation {{ createBot(input: {{meetingUrl: \"https://meet.google.com/abc-defg-hij\", botName: \"Bot {i}\"}}) {{ id }} }}"
        );
        let a = query(&f.app, Some(&f.key), &q).await;
        ids.push(
            a.json()["data"]["createBot"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        // Distinct creation times: the list's order is by time.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    ids
}

fn page_ids(body: &Value, field: &str) -> (Vec<String>, bool, bool, Vec<String>) {
    let conn = &body["data"][field];
    let ids = conn["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body:?}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect();
    let cursors = conn["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_str().unwrap().to_string())
        .collect();
    (
        ids,
        conn["pageInfo"]["hasPreviousPage"].as_bool().unwrap(),
        conn["pageInfo"]["hasNextPage"].as_bool().unwrap(),
        cursors,
    )
}

/// Connections page both ways, Relay's way.
#[tokio::test]
async fn connections_page_forward_and_backward() {
    let f = fixture(|_| {}).await;
    let mut ids = create_bots(&f, 5).await;
    ids.reverse(); // newest first, as `bots` lists them
    let list = |args: &str| {
        format!(
            "{{ bots({args}) {{ edges {{ cursor node {{ id }} }} pageInfo {{ hasPreviousPage hasNextPage }} }} }}"
        )
    };
    let a = query(&f.app, Some(&f.key), &list("first: 2")).await;
    let (got, prev, next, cursors) = page_ids(&a.json(), "bots");
    assert_eq!((got, prev, next), (ids[0..2].to_vec(), false, true));
    let a = query(
        &f.app,
        Some(&f.key),
        &list(&format!("first: 2, after: \"{}\"", cursors[1])),
    )
    .await;
    let (got, prev, next, _) = page_ids(&a.json(), "bots");
    assert_eq!((got, prev, next), (ids[2..4].to_vec(), true, true));

    // The oldest end, still in list order.
    let a = query(&f.app, Some(&f.key), &list("last: 2")).await;
    let (got, prev, next, cursors) = page_ids(&a.json(), "bots");
    assert_eq!((got, prev, next), (ids[3..5].to_vec(), true, false));
    // And back from there.
    let a = query(
        &f.app,
        Some(&f.key),
        &list(&format!("last: 2, before: \"{}\"", cursors[0])),
    )
    .await;
    let (got, prev, next, _) = page_ids(&a.json(), "bots");
    assert_eq!((got, prev, next), (ids[1..3].to_vec(), true, true));
    let a = query(&f.app, Some(&f.key), &list("last: 10")).await;
    let (got, prev, next, _) = page_ids(&a.json(), "bots");
    assert_eq!((got, prev, next), (ids.clone(), false, false));

    for bad in ["first: 1, last: 1", "last: 0", "before: \"zz\""] {
        let a = query(&f.app, Some(&f.key), &list(bad)).await;
        assert_eq!(
            a.json()["errors"][0]["extensions"]["code"],
            "BAD_USER_INPUT",
            "{bad}"
        );
    }
}

/// Any object by id through `node` and `nodes`, only in the caller's
/// tenant, and only the types its role may read.
#[tokio::test]
async fn node_and_nodes_refetch_by_id_within_the_tenant() {
    let f = fixture(|_| {}).await;
    let bot = create_bots(&f, 1).await.remove(0);
    let a = query(
        &f.app,
        Some(&f.key),
        "mutation { createWebhookEndpoint(input: {url: \"https://hooks.example.com/a\"}) { endpoint { id } } }",
    )
    .await;
    let hook = a.json()["data"]["createWebhookEndpoint"]["endpoint"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", a.json()))
        .to_string();

    let a = query(
        &f.app,
        Some(&f.key),
        &format!(
            "{{ node(id: \"{bot}\") {{ __typename id ... on Bot {{ botName }} }} \
             nodes(ids: [\"{hook}\", \"nope\", \"{bot}\"]) {{ __typename id }} }}"
        ),
    )
    .await;
    let body = a.json();
    assert!(body.get("errors").is_none(), "{body:?}");
    assert_eq!(body["data"]["node"]["__typename"], "Bot");
    assert_eq!(body["data"]["node"]["id"], bot.as_str());
    assert_eq!(body["data"]["node"]["botName"], "Bot 0");
    let nodes = body["data"]["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["__typename"], "WebhookEndpoint");
    assert_eq!(nodes[0]["id"], hook.as_str());
    assert_eq!(nodes[1], Value::Null);
    assert_eq!(nodes[2]["id"], bot.as_str());

    // Another tenant: the same ids are nobody's there.
    let other =
        f.cp.admin()
            .create_tenant("globex", "local")
            .await
            .unwrap()
            .api_key;
    let a = query(
        &f.app,
        Some(&other),
        &format!("{{ node(id: \"{bot}\") {{ id }} }}"),
    )
    .await;
    assert_eq!(a.json()["errors"][0]["extensions"]["code"], "NOT_FOUND");
    let a = query(
        &f.app,
        Some(&other),
        &format!("{{ nodes(ids: [\"{bot}\", \"{hook}\"]) {{ id }} }}"),
    )
    .await;
    assert_eq!(
        a.json()["data"]["nodes"],
        json!([null, null]),
        "{:?}",
        a.json()
    );
}

#[tokio::test]
async fn retention_rules_and_legal_holds_through_the_api() {
    let f = fixture(|_| {}).await;
    let data = |a: &Answer| {
        let v = a.json();
        assert!(v.get("errors").is_none(), "{v}");
        v["data"].clone()
    };
    let rule = |v: &Value, class: &str| {
        v["retentionPolicy"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["class"] == class)
            .unwrap()
            .clone()
    };
    let q = "{ retentionPolicy { class retentionDays source platformDefaultDays effectiveDays } }";
    let v = data(&query(&f.app, Some(&f.key), q).await);
    assert_eq!(v["retentionPolicy"].as_array().unwrap().len(), 6);
    assert_eq!(rule(&v, "TRANSCRIPTS")["source"], "UNSET");

    // The operator's default, the tenant's first setting, its own rule.
    f.cp.admin()
        .set_retention_default(attache_tenant_policy::DataClass::Transcripts, Some(90))
        .await
        .unwrap();
    let v = data(&query(&f.app, Some(&f.key), q).await);
    let t = rule(&v, "TRANSCRIPTS");
    assert_eq!(
        (t["source"].clone(), t["retentionDays"].clone()),
        (json!("PLATFORM_DEFAULT"), json!(90))
    );
    data(
        &query(
            &f.app,
            Some(&f.key),
            "mutation { setRetention(days: 60) { retentionDays } }",
        )
        .await,
    );
    let v = data(&query(&f.app, Some(&f.key), q).await);
    assert_eq!(rule(&v, "TRANSCRIPTS")["source"], "TENANT_SETTINGS");
    assert_eq!(rule(&v, "PARTICIPANTS")["source"], "UNSET");
    let set = data(&query(
        &f.app,
        Some(&f.key),
        "mutation { setRetentionPolicy(input: { class: TRANSCRIPTS, retentionDays: 30 }) { class retentionDays source platformDefaultDays } }",
    ).await);
    assert_eq!(
        set["setRetentionPolicy"],
        json!({ "class": "TRANSCRIPTS", "retentionDays": 30, "source": "TENANT", "platformDefaultDays": 90 })
    );
    // Kept forever on purpose, then back to what applies without a rule.
    let forever = data(&query(&f.app, Some(&f.key), "mutation { setRetentionPolicy(input: { class: CHAT, retentionDays: null }) { retentionDays source } }").await);
    assert_eq!(
        forever["setRetentionPolicy"],
        json!({ "retentionDays": null, "source": "TENANT" })
    );
    let v = data(&query(&f.app, Some(&f.key), q).await);
    assert_eq!(
        rule(&v, "BOT_METADATA")["effectiveDays"],
        Value::Null,
        "chat is kept forever"
    );
    let back = data(&query(&f.app, Some(&f.key), "mutation { setRetentionPolicy(input: { class: CHAT, useDefault: true }) { retentionDays source } }").await);
    assert_eq!(
        back["setRetentionPolicy"],
        json!({ "retentionDays": 60, "source": "TENANT_SETTINGS" })
    );
    // The old field still says what the old mutation set.
    let old = data(&query(&f.app, Some(&f.key), "{ tenantSettings { retentionDays } }").await);
    assert_eq!(old["tenantSettings"]["retentionDays"], 60);
    for bad in [
        "mutation { setRetentionPolicy(input: { class: CHAT, retentionDays: 0 }) { source } }",
        "mutation { setRetentionPolicy(input: { class: CHAT, retentionDays: 3651 }) { source } }",
        "mutation { setRetentionPolicy(input: { class: CHAT, retentionDays: 5, useDefault: true }) { source } }",
        "mutation { setLegalHold(input: { reason: \"\" }) { id } }",
        "mutation { setLegalHold(input: { reason: \"two\\nlines\" }) { id } }",
    ] {
        assert_eq!(
            query(&f.app, Some(&f.key), bad).await.code(),
            "BAD_USER_INPUT",
            "{bad}"
        );
    }

    // Holds: on the tenant, or on one of its bots (not someone else's).
    let unknown = query(
        &f.app,
        Some(&f.key),
        "mutation { setLegalHold(input: { botId: \"00000000-0000-0000-0000-000000000000\", reason: \"x\" }) { id } }",
    )
    .await;
    assert_eq!(unknown.code(), "NOT_FOUND");
    let held = data(&query(&f.app, Some(&f.key), "mutation { setLegalHold(input: { reason: \"  Matter 42  \" }) { id botId reason active createdBy } }").await);
    let hold = &held["setLegalHold"];
    assert_eq!(hold["reason"], "Matter 42");
    assert_eq!(hold["botId"], Value::Null);
    assert!(hold["createdBy"].as_str().unwrap().starts_with("key:"));
    let id = hold["id"].as_str().unwrap().to_string();
    let list = data(&query(&f.app, Some(&f.key), "{ legalHolds { id reason } }").await);
    assert_eq!(
        list["legalHolds"],
        json!([{ "id": id, "reason": "Matter 42" }])
    );
    let release = format!("mutation {{ releaseLegalHold(id: \"{id}\") {{ active releasedBy }} }}");
    let released = data(&query(&f.app, Some(&f.key), &release).await);
    assert_eq!(released["releaseLegalHold"]["active"], false);
    // Again: unchanged.
    let again = data(&query(&f.app, Some(&f.key), &release).await);
    assert_eq!(again["releaseLegalHold"], released["releaseLegalHold"]);
    let list = data(
        &query(
            &f.app,
            Some(&f.key),
            "{ active: legalHolds { id } all: legalHolds(includeReleased: true) { id } }",
        )
        .await,
    );
    assert_eq!(list["active"], json!([]));
    assert_eq!(list["all"], json!([{ "id": id }]));
    let missing = query(
        &f.app,
        Some(&f.key),
        "mutation { releaseLegalHold(id: \"nope\") { id } }",
    )
    .await;
    assert_eq!(missing.code(), "NOT_FOUND");

    // Every one of these is in the trail, with what it acted on.
    let trail = data(
        &query(
            &f.app,
            Some(&f.key),
            "{ auditLog(first: 100) { action target outcome } }",
        )
        .await,
    );
    let entries = trail["auditLog"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["action"] == "setRetentionPolicy"
        && e["target"] == "retention:transcripts"
        && e["outcome"] == "ok"));
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "setLegalHold"
                && e["target"] == format!("legal_hold:{id} tenant"))
    );
    assert!(entries.iter().any(|e| e["action"] == "releaseLegalHold" && e["target"] == format!("legal_hold:{id}")));
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "setLegalHold" && e["outcome"] == "NOT_FOUND")
    );
}
