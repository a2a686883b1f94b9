//! The admin console: a web UI (static files, no build step) over the same
//! GraphQL API and guard as every other client, and the routes around it:
//! OIDC sign-in and its callback, sign-out, and the audit log's export.
//!
//! A console session is a random token in an `HttpOnly`, `SameSite=Lax`
//! cookie (`Secure` unless the public URL is plain http on a non-loopback
//! host); only its hash is stored. Requests that change anything with the
//! cookie must also carry `X-Attache-Console: 1`, which a cross-site form
//! cannot send and a cross-site script cannot without a CORS grant we never
//! give.

pub(crate) mod oidc;

use attache_tenant_policy::{Action, PLATFORM, Role};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::AppState;
use crate::access::{Principal, by_api_key, by_session};
use crate::audit::{self, Record};
use crate::auth::{AuthError, hash_secret, mint_session_token};
use crate::entity::{console_session, login_state};
use crate::store::now;

pub(crate) const COOKIE: &str = "attache_session";
pub(crate) const CSRF_HEADER: &str = "x-attache-console";
const LOGIN_TTL: chrono::Duration = chrono::Duration::minutes(10);

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// What browsers are allowed to do with console pages: our own scripts and
/// styles only, no framing, no referrer to the provider. (No `form-action`:
/// the sign-in form goes to our /console/login, which redirects to the
/// tenant's provider, and browsers apply form-action to the redirect too.)
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/console/login", get(login))
        .route("/console/callback", get(callback))
        .route("/console/logout", post(logout))
        .route("/console/audit.jsonl", get(export_audit))
        .with_state(state)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A plain page for sign-in outcomes the UI cannot show itself.
fn page(status: StatusCode, message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Attaché console</title>\
         <link rel=stylesheet href=/console/app.css>\
         <main class=notice><h1>Sign-in</h1><p id=message>{escaped}</p>\
         <p><a href=/console/>Back to the console</a></p></main>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}

/// The session token in a request's cookies, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Whether a cookie-authenticated request that changes state came from the
/// console itself: the custom header, and a same-origin `Origin` when the
/// browser sent one.
pub(crate) fn same_origin_request(state: &AppState, headers: &HeaderMap) -> bool {
    let marked = headers
        .get(CSRF_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1");
    marked && origin_matches(state, headers)
}

/// A browser's `Origin` header, when present, must be ours.
pub(crate) fn origin_matches(state: &AppState, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(o) => url::Url::parse(&state.public_url)
            .map(|u| u.origin().ascii_serialization() == o)
            .unwrap_or(false),
    }
}

/// Resolves the caller of a console route: an API key if one is presented,
/// else the session cookie.
pub(crate) async fn principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, AuthError> {
    if let Some(h) = headers.get(header::AUTHORIZATION) {
        return by_api_key(&state.store, &state.policies, h.to_str().ok()).await;
    }
    let token = session_cookie(headers).ok_or(AuthError::Session)?;
    by_session(&state.store, &state.policies, &token).await
}

fn secure_cookies(state: &AppState) -> bool {
    match url::Url::parse(&state.public_url) {
        Ok(u) if u.scheme() == "https" => true,
        // Browsers treat loopback as a secure context.
        Ok(u) => matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
        Err(_) => true,
    }
}

fn session_cookie_header(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if secure_cookies(state) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("cookie characters")
}

fn redirect_uri(state: &AppState) -> String {
    format!(
        "{}/console/callback",
        state.public_url.trim_end_matches('/')
    )
}

async fn provider_for(state: &AppState, domain: &str) -> Result<Option<oidc::Provider>, String> {
    let Some(row) = state
        .store
        .identity_provider(domain)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let secret = state
        .keys
        .open_idp_secret(domain, &row.client_secret_sealed)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(oidc::Provider {
        issuer: row.issuer,
        client_id: row.client_id,
        client_secret: secret,
    }))
}

#[derive(Deserialize)]
struct LoginQuery {
    tenant: Option<String>,
    operator: Option<String>,
}

/// Starts a sign-in: to a tenant by name (`?tenant=acme`), or as an operator
/// (`?operator=1`).
async fn login(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let (tenant_id, domain) = match (&q.tenant, &q.operator) {
        (Some(name), None) => match state.store.tenant_by_name(name).await {
            Ok(Some(t)) => (Some(t.id.clone()), t.id),
            Ok(None) => {
                return page(
                    StatusCode::NOT_FOUND,
                    "no such tenant, or it has no sign-in",
                );
            }
            Err(e) => return internal(e),
        },
        (None, Some(_)) => (None, PLATFORM.to_string()),
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "name a tenant (?tenant=…) or ?operator=1",
            );
        }
    };
    let provider = match provider_for(&state, &domain).await {
        Ok(Some(p)) => p,
        // Same answer as an unknown tenant: names are not probed this way.
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                "no such tenant, or it has no sign-in",
            );
        }
        Err(e) => return internal(e),
    };
    let started = match oidc::begin(&state.oidc_http, &provider, &redirect_uri(&state)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, domain, "cannot start a sign-in");
            return page(
                StatusCode::BAD_GATEWAY,
                "the identity provider cannot be reached",
            );
        }
    };
    let at = now();
    let row = login_state::Model {
        id: hash_secret(&started.state),
        tenant_id,
        nonce: started.nonce,
        pkce_verifier: started.pkce_verifier,
        created_at: at,
        expires_at: at + LOGIN_TTL,
    };
    if let Err(e) = state.store.insert_login_state(row).await {
        return internal(e);
    }
    Redirect::to(started.authorize_url.as_str()).into_response()
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Where the provider sends the browser back. The state must match a
/// sign-in this control plane started and not yet finished (it is taken
/// once), and the ID token must carry the nonce kept with it.
async fn callback(State(state): State<AppState>, Query(q): Query<CallbackQuery>) -> Response {
    let Some(sent_state) = q.state.filter(|s| !s.is_empty() && s.len() <= 512) else {
        return page(
            StatusCode::BAD_REQUEST,
            "the sign-in response carries no state",
        );
    };
    let pending = match state
        .store
        .take_login_state(&hash_secret(&sent_state))
        .await
    {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let Some(pending) = pending else {
        sign_in_audit(&state, None, "anonymous", "REPLAYED_OR_UNKNOWN_STATE").await;
        return page(
            StatusCode::BAD_REQUEST,
            "this sign-in was already used, has expired, or was not started here; start again",
        );
    };
    let tenant = pending.tenant_id.clone();
    if let Some(err) = q.error {
        sign_in_audit(&state, tenant, "anonymous", "PROVIDER_REFUSED").await;
        tracing::info!(error = err, "the identity provider refused a sign-in");
        return page(
            StatusCode::FORBIDDEN,
            "the identity provider refused the sign-in",
        );
    }
    let Some(code) = q.code else {
        return page(
            StatusCode::BAD_REQUEST,
            "the sign-in response carries no code",
        );
    };
    let domain = tenant.clone().unwrap_or_else(|| PLATFORM.to_string());
    let provider = match provider_for(&state, &domain).await {
        Ok(Some(p)) => p,
        Ok(None) => return page(StatusCode::NOT_FOUND, "this tenant has no sign-in any more"),
        Err(e) => return internal(e),
    };
    let identity = match oidc::finish(
        &state.oidc_http,
        &provider,
        &redirect_uri(&state),
        &code,
        &pending.nonce,
        &pending.pkce_verifier,
    )
    .await
    {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, domain, "a sign-in failed");
            let outcome = match e {
                oidc::OidcError::Token(_) => "INVALID_ID_TOKEN",
                oidc::OidcError::Refused(_) => "PROVIDER_REFUSED",
                _ => "PROVIDER_UNAVAILABLE",
            };
            sign_in_audit(&state, tenant, "anonymous", outcome).await;
            return page(StatusCode::FORBIDDEN, "the sign-in could not be verified");
        }
    };
    let (Some(email), true) = (identity.email.clone(), identity.email_verified) else {
        sign_in_audit(
            &state,
            tenant,
            &format!("subject:{}", identity.subject),
            "EMAIL_NOT_VERIFIED",
        )
        .await;
        return page(
            StatusCode::FORBIDDEN,
            "the identity provider did not vouch for an email address",
        );
    };
    let actor = format!("user:{email}");
    match admit(&state, tenant.as_deref(), &email, identity.name.as_deref()).await {
        Ok(Some(session)) => {
            let (token, id) = mint_session_token();
            let at = now();
            let ttl = chrono::Duration::from_std(state.config.session_ttl).unwrap_or_default();
            let row = console_session::Model {
                id,
                user_id: session.user_id,
                tenant_id: tenant.clone(),
                member_id: session.member_id,
                operator: tenant.is_none(),
                created_at: at,
                expires_at: at + ttl,
                last_seen_at: at,
                revoked_at: None,
            };
            if let Err(e) = state.store.insert_session(row).await {
                return internal(e);
            }
            sign_in_audit(&state, tenant, &actor, "ok").await;
            let mut resp = Redirect::to("/console/").into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie_header(&state, &token, ttl.num_seconds()),
            );
            resp
        }
        Ok(None) => {
            sign_in_audit(&state, tenant, &actor, "NOT_A_MEMBER").await;
            page(
                StatusCode::FORBIDDEN,
                "you are not a member of this tenant; ask an admin for an invitation",
            )
        }
        Err(e) => internal(e),
    }
}

struct Admitted {
    user_id: String,
    member_id: Option<String>,
}

/// Who may come in: an operator listed as such; a tenant's member, or
/// someone with an open invitation, or a verified address in one of the
/// tenant's allowed domains (joining as viewer).
async fn admit(
    state: &AppState,
    tenant_id: Option<&str>,
    email: &str,
    name: Option<&str>,
) -> Result<Option<Admitted>, sea_orm::DbErr> {
    let Some(tenant_id) = tenant_id else {
        if !state.store.is_operator(email).await? {
            return Ok(None);
        }
        let user = state.store.signed_in_user(email, name).await?;
        return Ok(Some(Admitted {
            user_id: user.id,
            member_id: None,
        }));
    };
    let user = state.store.signed_in_user(email, name).await?;
    if let Some(m) = state.store.member_of(tenant_id, &user.id).await? {
        return Ok(Some(Admitted {
            user_id: user.id,
            member_id: Some(m.id),
        }));
    }
    let domain_ok = match state.store.identity_provider(tenant_id).await? {
        Some(idp) => {
            let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            idp.allowed_domains
                .split(',')
                .map(str::trim)
                .any(|d| !d.is_empty() && d.eq_ignore_ascii_case(domain))
        }
        None => false,
    };
    let joined = state
        .store
        .join_tenant(tenant_id, &user, domain_ok.then_some(Role::Viewer))
        .await?;
    Ok(joined.map(|m| Admitted {
        user_id: user.id,
        member_id: Some(m.id),
    }))
}

async fn sign_in_audit(state: &AppState, tenant_id: Option<String>, actor: &str, outcome: &str) {
    state
        .audit
        .record(Record {
            tenant_id,
            actor: actor.to_string(),
            action: "signIn".into(),
            target: None,
            outcome: outcome.to_string(),
        })
        .await;
}

/// Ends the session: revoked on the server, the cookie cleared.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin_request(&state, &headers) {
        return (StatusCode::FORBIDDEN, "sign-out must come from the console").into_response();
    }
    if let Some(token) = session_cookie(&headers)
        && let Ok(p) = by_session(&state.store, &state.policies, &token).await
    {
        if let crate::access::Actor::User { session_id, .. } = &p.actor
            && let Err(e) = state.store.revoke_session(session_id).await
        {
            return internal(e);
        }
        state
            .audit
            .record(Record {
                tenant_id: p.audit_tenant(),
                actor: p.actor.label(),
                action: "signOut".into(),
                target: None,
                outcome: "ok".into(),
            })
            .await;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie_header(&state, "", 0));
    resp
}

/// The caller's trail as JSON lines, oldest first: the tenant's, or the
/// platform's for an operator. Asks the guard for `ReadAudit`.
async fn export_audit(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let p = match principal(&state, &headers).await {
        Ok(p) => p,
        Err(AuthError::Db(e)) => return internal(e),
        Err(_) => return (StatusCode::UNAUTHORIZED, "sign in first").into_response(),
    };
    if !p.allows(Action::ReadAudit) {
        return (
            StatusCode::FORBIDDEN,
            "your role may not read the audit log",
        )
            .into_response();
    }
    let trail = p.audit_tenant();
    let db = state.store.db().clone();
    let stream = async_stream::stream! {
        let mut last = 0;
        loop {
            let batch = match audit::after(&db, Some(trail.as_deref()), last, 500).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed");
                    yield Err(std::io::Error::other("audit export failed"));
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            let mut chunk = String::new();
            for e in &batch {
                last = e.seq;
                chunk.push_str(&serde_json::to_string(e).unwrap_or_default());
                chunk.push('\n');
            }
            yield Ok::<_, std::io::Error>(chunk);
        }
    };
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.jsonl\"",
            ),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console request failed");
    page(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}
