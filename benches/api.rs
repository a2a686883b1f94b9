//! Load harness: what a GraphQL request costs through the real router.
//!
//!     cargo bench --bench api
//!
//! One control plane (SQLite by default; PostgreSQL with
//! `ATTACHE_TEST_POSTGRES_URL`, and Redis as well with
//! `ATTACHE_TEST_REDIS_URL`), one tenant with an owner key and 20 queued
//! bots. CONNECTIONS (32) keep-alive HTTP/1.1 connections send requests
//! back to back for SECONDS (5) per query: `{ viewer { role } }`, then
//! `bots(first: 20)`, each with the key. In the same run a bare
//! async-graphql schema, served by axum with no key, no policy and no
//! database, answers the shape of the first query: the baseline. The load
//! generator runs in this process, on the same cores, as wrk would. The last
//! line is
//!
//!     api: viewer V rps p99 P ms, bots B rps p99 Q ms, bare R rps, ratio X
//!
//! where X is V / R. `API_RATE` (0: as fast as the connections go) paces
//! every query to that many requests per second in total instead, to read
//! the latency at a given load.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};
use attache_control_plane::{Config, ControlPlane};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use support::*;
use tokio_util::sync::CancellationToken;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests per second and latencies of one run.
struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
    failed: usize,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} rps, p50 {:.1} ms, p99 {:.1} ms{}",
            self.rps,
            ms(self.p50),
            ms(self.p99),
            if self.failed > 0 {
                format!(", {} failed", self.failed)
            } else {
                String::new()
            }
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `connections` connections to `addr` posting `body` for `seconds`, each
/// paced to `rate / connections` per second when `rate` is set.
async fn load(
    addr: std::net::SocketAddr,
    key: Option<&str>,
    body: &str,
    connections: usize,
    seconds: f64,
    rate: usize,
) -> Run {
    let body = Bytes::from(body.to_string());
    let auth = key.map(|k| format!("Bearer {k}"));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let gap = (rate > 0).then(|| Duration::from_secs_f64(connections as f64 / rate as f64));
    let mut tasks = Vec::new();
    for n in 0..connections {
        let body = body.clone();
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut took = Vec::new();
            let mut failed = 0;
            // Paced connections start spread over one gap, not together.
            let mut next =
                Instant::now() + gap.map_or(Duration::ZERO, |g| g * n as u32 / connections as u32);
            while Instant::now() < until {
                if let Some(g) = gap {
                    tokio::time::sleep_until(next.into()).await;
                    next += g;
                }
                let mut req = Request::post("/graphql")
                    .header(hyper::header::HOST, "127.0.0.1")
                    .header(hyper::header::CONTENT_TYPE, "application/json");
                if let Some(a) = &auth {
                    req = req.header(hyper::header::AUTHORIZATION, a);
                }
                let req = req.body(Full::new(body.clone())).unwrap();
                let sent = Instant::now();
                send.ready().await.unwrap();
                let resp = send.send_request(req).await.unwrap();
                let ok = resp.status().is_success();
                let answer = resp.into_body().collect().await.unwrap().to_bytes();
                took.push(sent.elapsed());
                if !ok || answer.starts_with(br#"{"data":null"#) || memchr(b"\"errors\"", &answer) {
                    failed += 1;
                }
            }
            (took, failed)
        }));
    }
    let mut took = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (t, f) = t.await.unwrap();
        took.extend(t);
        failed += f;
    }
    let elapsed = start.elapsed().as_secs_f64();
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    Run {
        rps: took.len() as f64 / elapsed,
        p50: at(0.50),
        p99: at(0.99),
        failed,
    }
}

fn memchr(needle: &[u8], haystack: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[derive(SimpleObject)]
struct BareViewer {
    role: String,
}

struct BareQuery;

#[Object]
impl BareQuery {
    async fn viewer(&self) -> BareViewer {
        BareViewer {
            role: "OWNER".into(),
        }
    }
}

/// The baseline: the same HTTP stack and GraphQL library, nothing else.
async fn bare_server(stop: CancellationToken) -> std::net::SocketAddr {
    let schema = Arc::new(Schema::new(BareQuery, EmptyMutation, EmptySubscription));
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::post(move |req: async_graphql_axum::GraphQLRequest| {
            let schema = schema.clone();
            async move {
                async_graphql_axum::GraphQLResponse::from(schema.execute(req.into_inner()).await)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap()
    });
    addr
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("api: a load harness; run it with `cargo bench --bench api`");
        return;
    }
    let connections = env("CONNECTIONS", 32).max(1);
    let seconds = env("SECONDS", 5).max(1) as f64;
    let rate = env("API_RATE", 0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stop = CancellationToken::new();
        let dir = temp_dir("api-bench");
        let mut config = Config::local(&dir);
        config.http_addr = "127.0.0.1:0".parse().unwrap();
        config.quic_addr = "127.0.0.1:0".parse().unwrap();
        // The tenant's request budget is not what is measured here.
        config.api_per_minute = 100_000_000;
        config.api_burst = 10_000_000;
        config.create_bot_per_minute = 100_000;
        config.create_bot_burst = 100_000;
        // Replicas on PostgreSQL keep authenticated keys only with Redis to
        // tell each other of revocations: with ATTACHE_TEST_REDIS_URL too,
        // the replica is set up as a deployment of several would be.
        let database = if std::env::var_os("ATTACHE_TEST_POSTGRES_URL").is_some() {
            config.database_url = fresh_postgres("api_bench");
            config.redis_url = redis_url();
            if config.redis_url.is_some() {
                "postgres with redis"
            } else {
                "postgres"
            }
        } else {
            "sqlite"
        };
        let cp = ControlPlane::build(config).await.expect("control plane builds");
        let addr = cp.http_addr();
        let admin = cp.admin();
        tokio::spawn(cp.run(stop.clone()));
        let key = admin.create_tenant("bench", "local").await.unwrap().api_key;
        let api = Api::new(&format!("http://{addr}"), &key);
        for n in 0..20u8 {
            let code = format!("abc-defg-hi{}", (b'a' + n) as char);
            api.create_bot(&format!("https://meet.google.com/{code}"), "Bench")
                .await;
        }
        let bare = bare_server(stop.clone()).await;

        let viewer = serde_json::json!({ "query": "{ viewer { role } }" }).to_string();
        let bots = serde_json::json!({
            "query": "{ bots(first: 20) { totalCount edges { cursor node { id status meetingUrl botName createdAt } } } }"
        })
        .to_string();
        println!(
            "api: {connections} connections, {seconds} s per query, {}, database {database}",
            if rate > 0 {
                format!("{rate} requests/s")
            } else {
                "closed loop".into()
            }
        );
        // Warm every path (pools, caches, the policy) before measuring.
        load(bare, None, &viewer, connections, 1.0, rate).await;
        load(addr, Some(&key), &viewer, connections, 1.0, rate).await;
        load(addr, Some(&key), &bots, connections, 1.0, rate).await;

        let r = load(bare, None, &viewer, connections, seconds, rate).await;
        println!("api: bare {{ viewer {{ role }} }}: {r}");
        let v = load(addr, Some(&key), &viewer, connections, seconds, rate).await;
        println!("api: {{ viewer {{ role }} }} with a key: {v}");
        let b = load(addr, Some(&key), &bots, connections, seconds, rate).await;
        println!("api: bots(first: 20) with a key: {b}");
        assert_eq!(v.failed + b.failed + r.failed, 0, "every request answered");
        println!(
            "api: viewer {:.0} rps p99 {:.1} ms, bots {:.0} rps p99 {:.1} ms, bare {:.0} rps, ratio {:.2}",
            v.rps,
            ms(v.p99),
            b.rps,
            ms(b.p99),
            r.rps,
            v.rps / r.rps
        );
        stop.cancel();
    });
}
