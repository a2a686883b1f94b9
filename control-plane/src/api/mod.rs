//! HTTP surface: `/graphql` (POST queries and mutations, GET GraphiQL),
//! `/graphql/ws` (subscriptions), `/healthz`, `/readyz`, `/metrics`, and
//! recording downloads, and `/mcp` (the Model Context Protocol, in
//! `mcp.rs`).
//!
//! Requests are authenticated and rate-limited here, before the executor
//! runs; a refusal at this stage answers with its error code's HTTP status
//! and a GraphQL-shaped body. The GraphQL schema itself is composed in
//! `schema.rs` from one file per domain.

mod activity;
mod api_keys;
mod audit_log;
mod bots;
mod checks;
mod erasure;
mod error;
mod graphiql;
mod guard;
mod limits;
mod mcp;
mod media;
mod members;
mod node;
mod paging;
mod platform;
mod policy;
mod retention;
mod schema;
mod sealed;
mod settings;
mod sign_in;
mod subscriptions;
#[cfg(test)]
mod tests;
mod transcripts;
mod webhooks;

use async_graphql::ParseRequestError;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use attache_protocol::ErrorCode;
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::AppState;
use crate::access::{Principal, by_api_key, by_session};
use crate::audit::TargetNote;
use crate::auth::AuthError;
use crate::console;
use error::{error_body, status};
pub use schema::sdl;
pub(crate) use schema::{AppSchema, build_schema};

/// What every request handler shares: one `Arc`, so a request clones a
/// pointer, not the state's dozens of handles and metrics.
#[derive(Clone)]
struct Api(std::sync::Arc<ApiInner>);

struct ApiInner {
    state: AppState,
    schema: AppSchema,
    shutdown: CancellationToken,
    limiter: limits::RateLimiter,
}

impl std::ops::Deref for Api {
    type Target = ApiInner;

    fn deref(&self) -> &ApiInner {
        &self.0
    }
}

pub(crate) fn router(state: AppState, shutdown: CancellationToken) -> Router {
    let limit = state.config.max_body_bytes;
    let api = Api(std::sync::Arc::new(ApiInner {
        schema: build_schema(state.clone()),
        limiter: limits::RateLimiter::new(state.config.api_per_minute, state.config.api_burst)
            .shared("api", &state.bus, &state.metrics),
        state: state.clone(),
        shutdown,
    }));
    let mcp = Router::new()
        .nest_service("/mcp", mcp::service(&api))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            mcp::authenticate,
        ));
    Router::new()
        .route("/graphql", get(graphiql::page).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/downloads/{token}", get(download))
        .route("/.well-known/attache-erasure-key", get(erasure_key))
        .with_state(api)
        .merge(mcp)
        .merge(graphiql::router())
        .merge(console::router(state))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        .layer(axum::middleware::map_response(
            move |r: Response| async move { too_large_coded(r, limit) },
        ))
}

/// A body declared longer than `max_body_bytes` is refused from its
/// `Content-Length` by the limit layer, whose answer is plain text: given
/// the GraphQL-shaped body here, as every other refusal has. 413 is kept:
/// it is the status proxies and clients know for it.
fn too_large_coded(r: Response, limit: usize) -> Response {
    if r.status() != StatusCode::PAYLOAD_TOO_LARGE
        || r.headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().is_ok_and(|v| v.starts_with("application/json")))
    {
        return r;
    }
    too_large(limit)
}

fn too_large(limit: usize) -> Response {
    let body = error_body(
        ErrorCode::BadUserInput,
        &format!("the request body is larger than {limit} bytes"),
    );
    (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
}

/// A body that is not a GraphQL request, or that passed the limit while
/// it was read (sent without a length): refused with a code, never run.
fn body_refused(api: &Api, e: ParseRequestError) -> Response {
    count_error(api, ErrorCode::BadUserInput);
    let over_limit = match &e {
        ParseRequestError::PayloadTooLarge => true,
        ParseRequestError::Io(io) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(io);
            let mut found = false;
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    found = true;
                    break;
                }
                source = s.source();
            }
            found || io.to_string().contains("length limit exceeded")
        }
        _ => false,
    };
    if over_limit {
        return too_large(api.state.config.max_body_bytes);
    }
    let message = match e {
        ParseRequestError::UnsupportedBatch => "batched requests are not supported".to_string(),
        e => format!("the request body is not a GraphQL request: {e}"),
    };
    (
        status(ErrorCode::BadUserInput),
        axum::Json(error_body(ErrorCode::BadUserInput, &message)),
    )
        .into_response()
}

/// A recording download by a signed, short-lived token. Stored objects are
/// sealed with their bot's data key; they are opened here, for the holder
/// of the link only.
async fn download(
    State(api): State<Api>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    let Some((key, file_name, content_type)) = api.state.objects.redeem(&token) else {
        return (
            status(ErrorCode::Forbidden),
            "this download link is invalid or has expired",
        )
            .into_response();
    };
    match read_object(&api.state, &key).await {
        Ok(Some(bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file_name}\""),
                ),
                (header::CACHE_CONTROL, "private, no-store".to_string()),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => (
            status(ErrorCode::NotFound),
            "this recording no longer exists",
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a recording");
            status(ErrorCode::Internal).into_response()
        }
    }
}

/// Reads and opens an object stored under `tenants/<tenant>/bots/<bot>/…`,
/// from that bot's own store (never another region's); `None` if the bot
/// or the object is gone.
async fn read_object(state: &AppState, key: &str) -> Result<Option<Vec<u8>>, String> {
    let mut parts = key.split('/');
    let (tenant_id, bot_id) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("tenants"), Some(tenant), Some("bots"), Some(bot)) => (tenant, bot),
        _ => return Err(format!("{key} is not a bot's object")),
    };
    let Some(bot) = state.store.bot(bot_id).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if bot.tenant_id != tenant_id {
        return Err(format!("{key} does not belong to bot {bot_id}'s tenant"));
    }
    let objects = state.objects.for_bot(&bot).map_err(|e| e.to_string())?;
    let Some(sealed) = objects.get(key).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let data_key = state.keys.bot_key(&bot).await.map_err(|e| e.to_string())?;
    data_key
        .open(key.as_bytes(), &sealed)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn auth_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// Who a GraphQL request speaks for: the API key in `Authorization`, or
/// else the console session cookie (with the console's CSRF header).
async fn principal(api: &Api, headers: &HeaderMap) -> Result<Principal, AuthError> {
    if let Some(h) = auth_header(headers) {
        return by_api_key(&api.state.store, &api.state.policies, Some(h)).await;
    }
    match console::session_cookie(headers) {
        Some(token) if console::same_origin_request(&api.state, headers) => {
            by_session(&api.state.store, &api.state.policies, &token).await
        }
        Some(_) => Err(AuthError::Session),
        None => Err(AuthError::Invalid),
    }
}

async fn graphql(
    State(api): State<Api>,
    headers: HeaderMap,
    req: Result<GraphQLRequest, GraphQLRejection>,
) -> Response {
    let principal = match principal(&api, &headers).await {
        Ok(p) => p,
        Err(e) => return auth_failure(&api, e),
    };
    if let Err(wait) = api.limiter.take_shared(&principal.tenant_id).await {
        let (status, mut body) = refuse(
            &api,
            ErrorCode::RateLimited,
            "too many requests for this tenant; retry later",
        );
        body["errors"][0]["extensions"]["retryAfterSeconds"] =
            serde_json::json!(wait.as_secs_f64().ceil() as u64);
        return (
            status,
            [(
                header::RETRY_AFTER,
                wait.as_secs_f64().ceil().max(1.0).to_string(),
            )],
            axum::Json(body),
        )
            .into_response();
    }
    let req = match req {
        Ok(req) => req.into_inner(),
        Err(GraphQLRejection(e)) => return body_refused(&api, e),
    };
    let span = tracing::info_span!(
        "graphql",
        otel.kind = "server",
        operation = req.operation_name.as_deref().unwrap_or(""),
        trace_id = tracing::field::Empty
    );
    attache_protocol::trace::record_trace_id(&span);
    let req = req.data(principal).data(TargetNote::default());
    let mut resp = api.schema.execute(req).instrument(span).await;
    for e in &mut resp.errors {
        let code = checks::code_of(e);
        // The metric's labels are the error vocabulary: the executor's own
        // refusals count as the caller's input.
        let counted = ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == code)
            .unwrap_or(ErrorCode::BadUserInput);
        count_error(&api, counted);
    }
    GraphQLResponse::from(resp).into_response()
}

fn count_error(api: &Api, code: ErrorCode) {
    api.state
        .metrics
        .api_errors
        .with_label_values(&[code.as_str()])
        .inc();
}

/// A request refused before the executor runs: counted, with the code's
/// status and a GraphQL-shaped body.
fn refuse(api: &Api, code: ErrorCode, message: &str) -> (StatusCode, serde_json::Value) {
    count_error(api, code);
    (status(code), error_body(code, message))
}

fn auth_failure(api: &Api, e: AuthError) -> Response {
    let (code, msg) = match e {
        AuthError::Invalid => (ErrorCode::Unauthenticated, "missing or invalid API key"),
        AuthError::Session => (
            ErrorCode::Unauthenticated,
            "the console session is missing, expired or signed out",
        ),
        AuthError::Policy(e) => {
            tracing::error!(error = %e, "cannot build a tenant's policy");
            (ErrorCode::Internal, "internal error")
        }
        AuthError::Db(e) => {
            tracing::error!(error = %e, "authentication lookup failed");
            (ErrorCode::Internal, "internal error")
        }
    };
    let (status, body) = refuse(api, code, msg);
    (status, axum::Json(body)).into_response()
}

/// Subscriptions. The key comes in the upgrade request's `Authorization`
/// header, or in `connection_init` as `{"Authorization": "Bearer …"}`; the
/// console's session cookie counts when the upgrade comes from our own
/// origin.
async fn graphql_ws(
    State(api): State<Api>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let header_key = auth_header(&headers).map(str::to_string);
    let cookie = console::session_cookie(&headers).filter(|_| {
        headers.contains_key(header::ORIGIN) && console::origin_matches(&api.state, &headers)
    });
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let store = api.state.store.clone();
            let policies = api.state.policies.clone();
            let shutdown = api.shutdown.clone();
            let ws = GraphQLWebSocket::new(socket, api.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let from_payload = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    let key = from_payload.or(header_key);
                    let principal = match (key, cookie) {
                        (None, Some(token)) => by_session(&store, &policies, &token).await,
                        (key, _) => by_api_key(&store, &policies, key.as_deref()).await,
                    }
                    .map_err(|_| async_graphql::Error::new("missing or invalid credentials"))?;
                    let mut data = async_graphql::Data::default();
                    data.insert(principal);
                    data.insert(TargetNote::default());
                    Ok(data)
                });
            tokio::select! {
                _ = ws.serve() => {}
                _ = shutdown.cancelled() => {}
            }
        })
}

/// The key erasure certificates are signed with, as a JWKS: anyone holding
/// a certificate checks it against this.
async fn erasure_key(State(api): State<Api>) -> Response {
    match crate::erasure::signer(&api.state).await {
        Ok(s) => (
            [(header::CACHE_CONTROL, "public, max-age=300")],
            axum::Json(s.jwks()),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot derive the erasure signing key");
            status(ErrorCode::Internal).into_response()
        }
    }
}

/// Ready while the database answers. Redis being down does not take a
/// replica out of service (it serves from PostgreSQL alone), but it says so.
async fn readyz(State(api): State<Api>) -> Response {
    match api.state.store.ping().await {
        Ok(()) if api.state.bus.health().degraded() => (
            StatusCode::OK,
            "ready, degraded: Redis unreachable, serving from PostgreSQL alone",
        )
            .into_response(),
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

/// The autoscaling gauges, per region and pool: set afresh on every scrape, so a
/// region that went away leaves no stale series.
async fn region_gauges(state: &AppState) {
    let m = &state.metrics;
    let (Ok(workers), Ok(queued)) = (
        state.store.workers().await,
        state.store.queue_groups(crate::store::now()).await,
    ) else {
        return;
    };
    let loads = crate::links::region_loads(&workers, &state.links.views());
    for g in [
        &m.region_queued_bots,
        &m.region_workers,
        &m.region_capacity,
        &m.region_active_bots,
        &m.region_free_capacity,
    ] {
        g.reset();
    }
    m.region_bots_per_worker.reset();
    for ((region, pool), l) in &loads {
        let r = [region.as_str(), pool.as_str()];
        m.region_workers.with_label_values(&r).set(l.workers);
        m.region_capacity.with_label_values(&r).set(l.capacity);
        m.region_active_bots
            .with_label_values(&r)
            .set(l.active_bots);
        m.region_free_capacity.with_label_values(&r).set(l.free);
        m.region_bots_per_worker
            .with_label_values(&r)
            .set(if l.workers > 0 {
                l.active_bots as f64 / l.workers as f64
            } else {
                0.0
            });
        m.region_queued_bots.with_label_values(&r).set(0);
    }
    for g in queued {
        let r = [
            g.region.as_str(),
            crate::links::pool_label(g.pool.as_deref()),
        ];
        m.region_queued_bots.with_label_values(&r).add(g.due as i64);
        // A region with bots waiting and no worker at all still shows.
        m.region_free_capacity.with_label_values(&r).add(0);
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    let m = &api.state.metrics;
    if let Ok(counts) = api.state.store.count_by_status().await {
        for s in attache_protocol::BotStatus::ALL {
            let n = counts
                .iter()
                .find(|(k, _)| k == s.as_str())
                .map(|(_, n)| *n)
                .unwrap_or(0);
            m.bots.with_label_values(&[s.as_str()]).set(n);
        }
    }
    m.workers_connected.set(api.state.links.connected() as i64);
    region_gauges(&api.state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
        .into_response()
}
