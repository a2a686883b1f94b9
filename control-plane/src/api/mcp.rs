//! The Model Context Protocol at `/mcp`: tools an AI agent calls to send a
//! bot, make it leave, and read what it heard.
//!
//! Streamable HTTP, stateless (every POST stands alone, answered as JSON),
//! on the official SDK (`rmcp`). A request is authenticated with an API key
//! and rate-limited exactly as a GraphQL request is, before the SDK sees
//! it; each tool then runs a GraphQL document through the same schema with
//! that principal, so the guard, tenant scoping, the audit log and the
//! error codes are the API's own and live in one place.

use std::sync::Arc;

use async_graphql::{Request, Variables};
use axum::extract::{Request as HttpRequest, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;

use super::{Api, AppSchema, auth_header, refuse};
use crate::access::{Principal, by_api_key};
use crate::audit::TargetNote;
use attache_protocol::ErrorCode;

/// The `/mcp` service, behind [`authenticate`].
pub(super) fn service(api: &Api) -> StreamableHttpService<Tools, LocalSessionManager> {
    let schema = api.schema.clone();
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Some(host) = url::Url::parse(&api.state.public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
    {
        hosts.push(host);
    }
    hosts.push(api.state.config.http_addr.ip().to_string());
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(hosts)
        .with_cancellation_token(api.shutdown.child_token());
    StreamableHttpService::new(
        move || Ok(Tools::new(schema.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// An API key in `Authorization`, as for `/graphql` (no session cookie:
/// agents are not browsers), and the tenant's request budget; the
/// principal travels to the tools in the request's extensions.
pub(super) async fn authenticate(
    State(api): State<Api>,
    mut req: HttpRequest,
    next: Next,
) -> Response {
    let principal = match by_api_key(
        &api.state.store,
        &api.state.policies,
        auth_header(req.headers()),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            let mut resp = super::auth_failure(&api, e);
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
    };
    if let Err(wait) = api.limiter.take_shared(&principal.tenant_id).await {
        let (status, body) = refuse(
            &api,
            ErrorCode::RateLimited,
            "too many requests for this tenant; retry later",
        );
        let retry = wait.as_secs_f64().ceil().max(1.0).to_string();
        return (status, [(header::RETRY_AFTER, retry)], axum::Json(body)).into_response();
    }
    req.extensions_mut().insert(principal);
    let resp = next.run(req).await;
    if resp.status() == StatusCode::FORBIDDEN {
        tracing::debug!("an MCP request was refused by its Host header");
    }
    resp
}

#[derive(Clone)]
pub(super) struct Tools {
    schema: AppSchema,
    tool_router: ToolRouter<Tools>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(super) struct CreateBot {
    /// The meeting to join: a Google Meet, Microsoft Teams or Zoom link.
    meeting_url: String,
    /// The name the bot shows in the meeting.
    #[serde(default)]
    bot_name: Option<String>,
    /// When to join, RFC 3339; now if absent.
    #[serde(default)]
    join_at: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(super) struct BotId {
    /// The bot's id, as create_bot or list_bots gave it.
    bot_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(super) struct ListBots {
    /// How many, newest first (at most 100; 20 if absent).
    #[serde(default)]
    first: Option<i32>,
    /// Only bots in this status (e.g. IN_CALL, ENDED, FAILED).
    #[serde(default)]
    status: Option<String>,
}

const BOT_FIELDS: &str =
    "id meetingUrl platform botName status statusReason joinAt createdAt endedAt";

type ToolResult = Result<CallToolResult, ErrorData>;

#[tool_router]
impl Tools {
    fn new(schema: AppSchema) -> Tools {
        Tools {
            schema,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Send a bot into a meeting. Returns the bot, whose status starts at \
                          QUEUED and moves through JOINING to IN_CALL, then ENDED or FAILED \
                          with a reason."
    )]
    async fn create_bot(
        &self,
        Parameters(p): Parameters<CreateBot>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        let mut input = json!({ "meetingUrl": p.meeting_url });
        if let Some(name) = p.bot_name {
            input["botName"] = json!(name);
        }
        if let Some(at) = p.join_at {
            input["joinAt"] = json!(at);
        }
        self.run(
            &parts,
            &format!("mutation($input: CreateBotInput!) {{ createBot(input: $input) {{ {BOT_FIELDS} }} }}"),
            json!({ "input": input }),
            "createBot",
        )
        .await
    }

    #[tool(description = "Make a bot leave its meeting. Its recording and transcript are kept.")]
    async fn leave_bot(
        &self,
        Parameters(p): Parameters<BotId>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        self.run(
            &parts,
            &format!("mutation($id: ID!) {{ leaveBot(id: $id) {{ {BOT_FIELDS} }} }}"),
            json!({ "id": p.bot_id }),
            "leaveBot",
        )
        .await
    }

    #[tool(
        description = "A bot's status, with the reason when it failed or still waits, and \
                          its warnings."
    )]
    async fn get_bot(
        &self,
        Parameters(p): Parameters<BotId>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        let fields = format!("{BOT_FIELDS} warnings {{ code message at }}");
        self.about_bot(&parts, &p.bot_id, &fields).await
    }

    #[tool(description = "The tenant's bots, newest first.")]
    async fn list_bots(
        &self,
        Parameters(p): Parameters<ListBots>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        let first = p.first.unwrap_or(20).clamp(1, 100);
        let (query, vars) = match p.status {
            Some(s) => (
                format!(
                    "query($first: Int, $status: BotStatus) {{ bots(first: $first, status: $status) {{ totalCount edges {{ node {{ {BOT_FIELDS} }} }} }} }}"
                ),
                json!({ "first": first, "status": s }),
            ),
            None => (
                format!(
                    "query($first: Int) {{ bots(first: $first) {{ totalCount edges {{ node {{ {BOT_FIELDS} }} }} }} }}"
                ),
                json!({ "first": first }),
            ),
        };
        self.run(&parts, &query, vars, "bots").await
    }

    #[tool(
        description = "What a bot heard: the transcript as text, one line per segment with \
                          the speaker's name, then the segments with their times."
    )]
    async fn get_transcript(
        &self,
        Parameters(p): Parameters<BotId>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        self.about_bot(
            &parts,
            &p.bot_id,
            "id status transcriptText transcript(first: 500) { edges { node { startMs endMs speaker text isFinal } } }",
        )
        .await
    }

    #[tool(
        description = "Who was in a bot's meeting: each participant with when they joined \
                          and left."
    )]
    async fn get_participants(
        &self,
        Parameters(p): Parameters<BotId>,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> ToolResult {
        self.about_bot(
            &parts,
            &p.bot_id,
            "id status participants { participantId name joinedAt leftAt }",
        )
        .await
    }
}

impl Tools {
    /// `fields` of one bot, by id.
    async fn about_bot(
        &self,
        parts: &axum::http::request::Parts,
        bot_id: &str,
        fields: &str,
    ) -> ToolResult {
        self.run(
            parts,
            &format!("query($id: ID!) {{ bot(id: $id) {{ {fields} }} }}"),
            json!({ "id": bot_id }),
            "bot",
        )
        .await
    }

    /// One GraphQL document as the request's principal: its data under
    /// `field` as the tool's JSON result, or its first error, with the
    /// API's code, as a tool error the agent reads.
    async fn run(
        &self,
        parts: &axum::http::request::Parts,
        query: &str,
        variables: Value,
        field: &str,
    ) -> ToolResult {
        let Some(principal) = parts.extensions.get::<Principal>() else {
            return Err(ErrorData::internal_error("unauthenticated request", None));
        };
        let req = Request::new(query)
            .variables(Variables::from_json(variables))
            .data(principal.clone())
            .data(TargetNote::default());
        let span = tracing::info_span!(
            "mcp tool",
            otel.kind = "server",
            tool = field,
            trace_id = tracing::field::Empty
        );
        attache_protocol::trace::record_trace_id(&span);
        let mut resp = self.schema.execute(req).instrument(span).await;
        if let Some(e) = resp.errors.first_mut() {
            let code = super::checks::code_of(e);
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "{code}: {}",
                e.message
            ))]));
        }
        let data = resp.data.into_json().map_err(|e| {
            tracing::error!(error = %e, "an MCP tool's answer is not JSON");
            ErrorData::internal_error("internal error", None)
        })?;
        let value = data.get(field).cloned().unwrap_or(Value::Null);
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("attache", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Attaché sends bots into Google Meet, Microsoft Teams and Zoom meetings, \
                 records and transcribes them. create_bot sends one; get_bot follows its \
                 status; get_transcript and get_participants read what it heard; \
                 leave_bot makes it leave. Errors start with their code (FORBIDDEN, \
                 NOT_FOUND, BAD_USER_INPUT, RATE_LIMITED, ...)."
                    .to_string(),
            )
    }
}
