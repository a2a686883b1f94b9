//! The end-to-end harness: a control plane, edge workers and the sandbox
//! meeting, all on 127.0.0.1 listeners bound to port 0, with short
//! intervals so lifecycles play out in seconds.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use attache_control_plane::{Admin, Config as CpConfig, ControlPlane};
use attache_edge_worker::{Config as WorkerConfig, EdgeWorker};
use attache_sandbox::Sandbox;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

mod feeds;
mod procs;
mod redis_server;
mod sandbox;
mod webhooks;
mod worker_process;
#[allow(unused_imports)]
pub use feeds::*;
#[allow(unused_imports)]
pub use procs::*;
#[allow(unused_imports)]
pub use redis_server::*;
#[allow(unused_imports)]
pub use webhooks::*;
pub use worker_process::WorkerProcess;

pub const HEARTBEAT: Duration = Duration::from_millis(200);
pub const GRACE: Duration = Duration::from_secs(3);
pub const LOBBY_TIMEOUT: Duration = Duration::from_secs(4);
pub const NO_AUDIO_WARNING: Duration = Duration::from_secs(3);
/// How long a stopped test worker lets bots in calls go on.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub fn chromium() -> PathBuf {
    std::env::var_os("ATTACHE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attache-test-{tag}-{}", uuid_like()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A database of the caller's own on the PostgreSQL server at `url` (the
/// one `scripts/test` starts): a deployment's keys live in its database,
/// wrapped by its own master key, so two tests' deployments must not share
/// one.
pub fn own_postgres_database(url: &str, tag: &str) -> String {
    let name = format!("attache_{tag}_{}", uuid_like().replace('-', "_"));
    let status = Command::new("psql")
        .arg(url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .status()
        .expect("psql runs (Debian's postgresql package brings it)");
    assert!(status.success(), "cannot create database {name}");
    let (server, _) = url.rsplit_once('/').expect("a database URL");
    format!("{server}/{name}")
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        Instant::now().elapsed().as_nanos()
    )
}

/// A control plane of the tests' own on `dir` (to restart it on the same
/// database and fleet port), with the harness's short intervals.
pub fn cp_config(dir: &std::path::Path, sandbox: &str, quic: std::net::SocketAddr) -> CpConfig {
    let mut c = CpConfig::local(dir);
    c.http_addr = "127.0.0.1:0".parse().unwrap();
    c.quic_addr = quic;
    c.sandbox_origins = vec![sandbox.to_string()];
    c.platform_replicas = true;
    c.heartbeat_interval = HEARTBEAT;
    c.worker_grace = GRACE;
    c.dispatch_interval = Duration::from_millis(100);
    c
}

pub struct Cluster {
    pub http: String,
    pub quic: std::net::SocketAddr,
    pub sandbox: String,
    pub admin: Admin,
    pub dir: PathBuf,
    shutdown: CancellationToken,
    workers: Vec<CancellationToken>,
    /// Each in-process worker's task: it ends when the worker has drained.
    worker_tasks: Vec<Option<tokio::task::JoinHandle<()>>>,
    /// Data directory of each in-process worker, in the order they started.
    pub worker_dirs: Vec<PathBuf>,
    /// `/metrics` address of each in-process worker.
    pub worker_metrics: Vec<std::net::SocketAddr>,
}

#[derive(Default)]
pub struct Options {
    pub database_url: Option<String>,
    /// (per minute, burst) for createBot, per tenant.
    pub create_bot_limit: Option<(u32, u32)>,
    /// Where recordings go; the control plane's local directory if `None`.
    pub object_store: Option<attache_control_plane::ObjectStoreConfig>,
    /// (per minute, burst) for all GraphQL requests, per tenant.
    pub api_limit: Option<(u32, u32)>,
    /// Changes to the control plane's config beyond these.
    pub tweak: Option<fn(&mut CpConfig)>,
    /// Redis shared with the replicas the test adds.
    pub redis_url: Option<String>,
}

/// The S3-compatible server `scripts/test` starts, with a bucket of this
/// test's own; `None` (the test is skipped) when it is not running.
pub fn s3_config(bucket: &str) -> Option<attache_control_plane::S3Config> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match var("ATTACHE_TEST_S3_ENDPOINT") {
        Some(endpoint) => Some(attache_control_plane::S3Config {
            bucket: bucket.to_string(),
            region: var("ATTACHE_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            endpoint: Some(endpoint),
            force_path_style: true,
            access_key: var("ATTACHE_TEST_S3_ACCESS_KEY"),
            secret_key: var("ATTACHE_TEST_S3_SECRET_KEY"),
            create_bucket: true,
        }),
        None if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() => {
            panic!("ATTACHE_TEST_S3_ENDPOINT is not set; run the suite with scripts/test")
        }
        None => {
            eprintln!("skipped: ATTACHE_TEST_S3_ENDPOINT is not set (scripts/test sets it)");
            None
        }
    }
}

/// [`own_postgres_database`] on the server `scripts/test` starts, for a
/// test that must not see other tests' rows either (a retention sweep
/// deletes across tenants); `None` (the test is skipped) when it is not
/// running.
pub fn fresh_postgres(tag: &str) -> Option<String> {
    match std::env::var("ATTACHE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(own_postgres_database(&u, tag)),
        _ if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() => {
            panic!("ATTACHE_TEST_POSTGRES_URL is not set; run the suite with scripts/test")
        }
        _ => {
            eprintln!("skipped: ATTACHE_TEST_POSTGRES_URL is not set (scripts/test sets it)");
            None
        }
    }
}

impl Cluster {
    pub async fn start() -> Cluster {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Cluster {
        let dir = temp_dir("cluster");
        let shutdown = CancellationToken::new();
        let sandbox = start_sandbox(shutdown.clone()).await;

        let mut c = CpConfig::local(dir.join("cp"));
        c.database_url = opts.database_url;
        c.http_addr = "127.0.0.1:0".parse().unwrap();
        c.quic_addr = "127.0.0.1:0".parse().unwrap();
        c.sandbox_origins = vec![sandbox.clone()];
        c.platform_replicas = true;
        c.heartbeat_interval = HEARTBEAT;
        c.worker_grace = GRACE;
        c.dispatch_interval = Duration::from_millis(100);
        c.default_limits.lobby_timeout_ms = LOBBY_TIMEOUT.as_millis() as u64;
        c.default_limits.join_timeout_ms = 20_000;
        c.default_limits.no_audio_warning_ms = NO_AUDIO_WARNING.as_millis() as u64;
        if let Some(store) = opts.object_store {
            c.object_store = Some(store);
        }
        if let Some((per_minute, burst)) = opts.create_bot_limit {
            c.create_bot_per_minute = per_minute;
            c.create_bot_burst = burst;
        }
        if let Some((per_minute, burst)) = opts.api_limit {
            c.api_per_minute = per_minute;
            c.api_burst = burst;
        }
        c.redis_url = opts.redis_url;
        if let Some(tweak) = opts.tweak {
            tweak(&mut c);
        }
        let cp = ControlPlane::build(c).await.expect("control plane builds");
        let http = format!("http://{}", cp.http_addr());
        let quic = cp.quic_addr();
        let admin = cp.admin();
        tokio::spawn(cp.run(shutdown.clone()));
        Cluster {
            http,
            quic,
            sandbox,
            admin,
            dir,
            shutdown,
            workers: Vec::new(),
            worker_tasks: Vec::new(),
            worker_dirs: Vec::new(),
            worker_metrics: Vec::new(),
        }
    }

    pub async fn token(&self) -> String {
        self.admin
            .worker_token("local", Duration::from_secs(600))
            .await
            .unwrap()
            .token
    }

    pub fn worker_config(&self, dir: PathBuf) -> WorkerConfig {
        let mut wc = WorkerConfig::new(self.quic.to_string(), dir);
        wc.chromium = chromium();
        wc.reconnect_min = Duration::from_millis(50);
        wc.reconnect_max = Duration::from_millis(500);
        wc.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        // These workers share the machine with every other test running:
        // they take the bots their tests give them. What a worker measures
        // it can hold is tested on its own (tests/one_box.rs).
        wc.fixed_capacity = true;
        // Tests that stop a worker mid-meeting want its bots out soon.
        wc.drain_timeout = DRAIN_TIMEOUT;
        // Many tests start workers that run one bot or none: each starts
        // Chromium when a bot needs it (tests/one_box.rs tests the start
        // ahead).
        wc.browser_at_start = false;
        wc
    }

    /// An edge worker in this process. Returns its id.
    pub async fn add_worker(&mut self, capacity: u32) -> String {
        self.add_worker_in(capacity, "local", None).await
    }

    /// An edge worker in this process, in `region` (and a dedicated
    /// tenant's `pool`). Returns its id.
    pub async fn add_worker_in(
        &mut self,
        capacity: u32,
        region: &str,
        pool: Option<&str>,
    ) -> String {
        self.add_worker_with(capacity, region, pool, |_| {}).await
    }

    /// An edge worker in this process with its config changed by `tweak`.
    pub async fn add_worker_with(
        &mut self,
        capacity: u32,
        region: &str,
        pool: Option<&str>,
        tweak: fn(&mut WorkerConfig),
    ) -> String {
        let dir = temp_dir("worker");
        self.worker_dirs.push(dir.clone());
        let mut wc = self.worker_config(dir);
        tweak(&mut wc);
        wc.join_token = Some(
            self.admin
                .worker_token_in(region, pool, Duration::from_secs(600))
                .await
                .unwrap()
                .token,
        );
        wc.capacity = capacity;
        let w = EdgeWorker::build(wc).await.expect("worker enrolls");
        let id = w.worker_id().to_string();
        self.worker_metrics
            .push(w.metrics_addr().expect("metrics served"));
        let token = self.shutdown.child_token();
        self.workers.push(token.clone());
        self.worker_tasks.push(Some(tokio::spawn(w.run(token))));
        id
    }

    /// Waits for the `n`th in-process worker to finish, at most `within`;
    /// false if it is still running then.
    pub async fn worker_finished(&mut self, n: usize, within: Duration) -> bool {
        let task = self.worker_tasks[n].take().expect("worker not awaited yet");
        tokio::time::timeout(within, task).await.is_ok()
    }

    /// Stops the `n`th in-process worker the way SIGTERM would.
    pub fn stop_worker(&self, n: usize) {
        self.workers[n].cancel();
    }

    /// An edge worker as a separate `attache edge-worker` process, in its own
    /// process group so that killing it takes its Chromium along.
    pub async fn spawn_worker_process(&self) -> WorkerProcess {
        self.spawn_worker_process_with_capacity(2).await
    }

    pub async fn spawn_worker_process_with_capacity(&self, capacity: u32) -> WorkerProcess {
        self.spawn_worker_process_in(temp_dir("worker-proc"), capacity)
            .await
    }

    /// A worker process on `dir`: a new worker there, or the same worker
    /// again (it has enrolled already) after it was killed.
    pub async fn spawn_worker_process_in(&self, dir: PathBuf, capacity: u32) -> WorkerProcess {
        self.spawn_worker_process_with(dir, capacity, &[]).await
    }

    /// [`Cluster::spawn_worker_process_in`] with more global flags.
    pub async fn spawn_worker_process_with(
        &self,
        dir: PathBuf,
        capacity: u32,
        flags: &[&str],
    ) -> WorkerProcess {
        self.spawn_worker_process_args(dir, capacity, flags, &[])
            .await
    }

    /// [`Cluster::spawn_worker_process_in`] with more global flags and
    /// more flags of `attache edge-worker`.
    pub async fn spawn_worker_process_args(
        &self,
        dir: PathBuf,
        capacity: u32,
        flags: &[&str],
        worker_flags: &[&str],
    ) -> WorkerProcess {
        use std::os::unix::process::CommandExt;
        let child = Command::new(env!("CARGO_BIN_EXE_attache"))
            .args(flags)
            .arg("edge-worker")
            .args(worker_flags)
            .arg("--control-plane")
            .arg(self.quic.to_string())
            .arg("--data-dir")
            .arg(&dir)
            .arg("--capacity")
            .arg(capacity.to_string())
            .arg("--fixed-capacity")
            .arg("--chromium")
            .arg(chromium())
            .arg("--drain-timeout")
            .arg(DRAIN_TIMEOUT.as_secs().to_string())
            .env("ATTACHE_JOIN_TOKEN", self.token().await)
            .env("RUST_LOG", "info,chromiumoxide=off,quinn=warn")
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("worker.log"))
                    .unwrap(),
            )
            .process_group(0)
            .spawn()
            .expect("attache binary runs");
        WorkerProcess {
            child,
            killed: false,
        }
    }

    pub async fn tenant(&self, name: &str) -> Api {
        let t = self.admin.create_tenant(name, "local").await.unwrap();
        Api::new(&self.http, &t.api_key)
    }

    /// A shared tenant whose home region is `region`: its id and client.
    pub async fn tenant_in(&self, name: &str, region: &str) -> (String, Api) {
        let t = self.admin.create_tenant(name, region).await.unwrap();
        (t.tenant_id, Api::new(&self.http, &t.api_key))
    }

    /// `/metrics` of the `n`th in-process worker.
    pub async fn worker_metrics_text(&self, n: usize) -> String {
        reqwest::get(format!("http://{}/metrics", self.worker_metrics[n]))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A sandbox meeting server on a port of its own; returns its origin.
pub async fn start_sandbox(stop: CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(Sandbox::new().serve(listener, stop));
    origin
}

/// A GraphQL client with one API key.
#[derive(Clone)]
pub struct Api {
    pub http: String,
    pub key: String,
    client: reqwest::Client,
}

pub const BOT_FIELDS: &str = "id status statusReason platform botName meetingUrl createdAt endedAt events { status reason detail at }";

impl Api {
    pub fn new(http: &str, key: &str) -> Api {
        Api {
            http: http.to_string(),
            key: key.to_string(),
            client: reqwest::Client::new(),
        }
    }

    /// Raw response: (HTTP status, body).
    pub async fn raw(&self, query: &str, variables: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/graphql", self.http))
            .bearer_auth(&self.key)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The `data`, panicking on errors.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.raw(query, variables).await;
        assert!(
            body.get("errors").is_none(),
            "GraphQL errors ({status}): {body}"
        );
        body["data"].clone()
    }

    /// The first error's `extensions.code`.
    pub async fn error_code(&self, query: &str, variables: Value) -> String {
        let (_, body) = self.raw(query, variables).await;
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error: {body}"))
            .to_string()
    }

    pub async fn create_bot(&self, meeting_url: &str, name: &str) -> String {
        let d = self
            .gql(
                "mutation($u: String!, $n: String) { createBot(input: {meetingUrl: $u, botName: $n}) { id status } }",
                json!({ "u": meeting_url, "n": name }),
            )
            .await;
        assert_eq!(d["createBot"]["status"], "QUEUED");
        d["createBot"]["id"].as_str().unwrap().to_string()
    }

    /// Creates a bot with auto-leave rules (`{aloneSeconds: 2}`, say).
    pub async fn create_bot_with(&self, meeting_url: &str, auto_leave: Value) -> String {
        let d = self
            .gql(
                "mutation($u: String!, $a: AutoLeaveInput) { createBot(input: {meetingUrl: $u, autoLeave: $a}) { id status } }",
                json!({ "u": meeting_url, "a": auto_leave }),
            )
            .await;
        d["createBot"]["id"].as_str().unwrap().to_string()
    }

    /// What the bot saw and heard.
    pub async fn media(&self, id: &str) -> Value {
        self.gql(
            "query($id: ID!) { bot(id: $id) { status statusReason
                events { status at }
                participants { participantId name joinedAt leftAt }
                speakerTimeline { participantId name startedAt endedAt startOffsetMs endOffsetMs }
                chatMessages { sender text sentAt }
                warnings { code message at }
                recording { status format durationMs sizeBytes sha256 startedAt finishedAt downloadUrl downloadUrlExpiresAt }
            } }",
            json!({ "id": id }),
        )
        .await["bot"]
            .clone()
    }

    pub async fn bot(&self, id: &str) -> Value {
        let q = format!("query($id: ID!) {{ bot(id: $id) {{ {BOT_FIELDS} }} }}");
        self.gql(&q, json!({ "id": id })).await["bot"].clone()
    }

    pub async fn leave(&self, id: &str) -> Value {
        self.gql(
            "mutation($id: ID!) { leaveBot(id: $id) { id status } }",
            json!({ "id": id }),
        )
        .await["leaveBot"]
            .clone()
    }

    /// Polls until the bot's status is `want`, or panics with its history.
    pub async fn wait_status(&self, id: &str, want: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let b = self.bot(id).await;
            if b["status"] == want {
                return b;
            }
            if Instant::now() > deadline {
                panic!("bot {id} did not reach {want} within {within:?}: {b:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn bot_count(&self) -> u64 {
        self.gql("{ bots { totalCount } }", json!({})).await["bots"]["totalCount"]
            .as_u64()
            .unwrap()
    }
}

/// The median of `v` (sorted in place); NaN when it is empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The value of the sample `name` (with its labels, and the space after
/// them) in a Prometheus text exposition.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} missing: {text}"))
}

/// The statuses of a bot's stored events, in order.
pub fn statuses(bot: &Value) -> Vec<String> {
    bot["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect()
}

/// The OpenID Connect provider of the sign-in tests: npm's `oidc-provider`
/// (scripts/oidc/provider.mjs), which `install_oidc` installs, on a port of
/// its own. `None` (the test is skipped) when it is not installed.
pub struct OidcProvider {
    pub issuer: String,
    child: std::process::Child,
}

impl OidcProvider {
    /// Starts the provider with these clients (oidc-provider client metadata).
    pub fn start(clients: Value) -> Option<OidcProvider> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (Some(node), Some(script)) = (var("ATTACHE_OIDC_NODE"), var("ATTACHE_OIDC_PROVIDER"))
        else {
            if std::env::var_os("ATTACHE_REQUIRE_SERVICES").is_some() {
                panic!("ATTACHE_OIDC_NODE is not set; run the suite with scripts/test");
            }
            eprintln!("skipped: ATTACHE_OIDC_NODE is not set (scripts/test sets it)");
            return None;
        };
        let dir = temp_dir("oidc");
        let file = dir.join("clients.json");
        std::fs::write(&file, clients.to_string()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(node)
            .arg(script)
            .args(["--port", &port.to_string(), "--clients"])
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the OIDC provider starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(line.contains("listening"), "provider said {line:?}");
        // Keep reading: a closed pipe would end the provider at its next line.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Some(OidcProvider {
            issuer: format!("http://127.0.0.1:{port}"),
            child,
        })
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Evaluates `js` until it is true, or fails after `within`.
pub async fn wait_for(page: &chromiumoxide::Page, js: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let ok = page
            .evaluate(js)
            .await
            .ok()
            .and_then(|v| v.into_value::<bool>().ok())
            .unwrap_or(false);
        if ok {
            return;
        }
        if std::time::Instant::now() > deadline {
            let html = page.content().await.unwrap_or_default();
            panic!("timed out waiting for {js}; page: {html:.3000}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A GraphQL call with the platform operator's console session; panics on
/// any error.
pub async fn operator_gql(http: &str, cookie: &str, query: &str, variables: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{http}/graphql"))
        .header("cookie", format!("attache_session={cookie}"))
        .header("x-attache-console", "1")
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(
        status == 200 && body.get("errors").is_none(),
        "operator GraphQL ({status}): {body}"
    );
    body["data"].clone()
}
