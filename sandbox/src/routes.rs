//! HTTP surface of the sandbox: the meeting page, the page's own API, and the
//! control API tests use to play the host.

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::Sandbox;
use crate::meeting::{MeetingOptions, ParticipantState, SandboxError};

const PAGE: &str = include_str!("../assets/meeting.html");
const MAX_ID_LEN: usize = 64;

pub fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/m/{id}", get(page))
        .route("/api/meetings", post(create))
        .route("/api/meetings/{id}", get(view))
        .route("/api/meetings/{id}/knock", post(knock))
        .route("/api/meetings/{id}/poll", post(poll))
        .route("/api/meetings/{id}/leave", post(leave))
        .route("/api/meetings/{id}/admit", post(admit))
        .route("/api/meetings/{id}/deny", post(deny))
        .route("/api/meetings/{id}/remove", post(remove))
        .route("/api/meetings/{id}/end", post(end))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .with_state(sandbox)
}

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            SandboxError::NotFound => (StatusCode::NOT_FOUND, "Meeting not found"),
            SandboxError::Full => (StatusCode::TOO_MANY_REQUESTS, "This meeting is full"),
            SandboxError::BadName => (
                StatusCode::BAD_REQUEST,
                "Enter a name of 1 to 256 characters",
            ),
            SandboxError::Forbidden => (StatusCode::FORBIDDEN, "Not your seat"),
        };
        (status, Json(json!({ "error": msg }))).into_response()
    }
}

fn check_id(id: &str) -> Result<(), SandboxError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SandboxError::NotFound)
    }
}

async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><title>Attaché sandbox</title><p>Open a meeting at <code>/m/&lt;id&gt;</code>.</p>",
    )
}

async fn page(
    State(s): State<Sandbox>,
    Path(id): Path<String>,
    Query(options): Query<MeetingOptions>,
) -> Result<Response, SandboxError> {
    check_id(&id)?;
    s.inner.get_or_create(&id, options);
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response())
}

#[derive(Deserialize)]
struct CreateBody {
    id: Option<String>,
    #[serde(flatten)]
    options: MeetingOptions,
}

async fn create(
    State(s): State<Sandbox>,
    Json(body): Json<CreateBody>,
) -> Result<Response, SandboxError> {
    let id = body
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    check_id(&id)?;
    let view = s.inner.create(&id, body.options)?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn view(State(s): State<Sandbox>, Path(id): Path<String>) -> Result<Response, SandboxError> {
    Ok(Json(s.inner.view(&id)?).into_response())
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

#[derive(Deserialize)]
struct SeatBody {
    participant_id: String,
    secret: String,
}

async fn knock(
    State(s): State<Sandbox>,
    Path(id): Path<String>,
    Json(body): Json<NameBody>,
) -> Result<Response, SandboxError> {
    let (participant_id, secret) = s.inner.knock(&id, &body.name)?;
    Ok(Json(json!({ "participant_id": participant_id, "secret": secret })).into_response())
}

async fn poll(
    State(s): State<Sandbox>,
    Path(id): Path<String>,
    Json(seat): Json<SeatBody>,
) -> Result<Response, SandboxError> {
    let meeting = s.inner.view(&id)?;
    if meeting.missing {
        return Err(SandboxError::NotFound);
    }
    Ok(Json(s.inner.poll(&id, &seat.participant_id, &seat.secret)?).into_response())
}

async fn leave(
    State(s): State<Sandbox>,
    Path(id): Path<String>,
    Json(seat): Json<SeatBody>,
) -> Result<StatusCode, SandboxError> {
    s.inner.leave(&id, &seat.participant_id, &seat.secret)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn admit(
    State(s): State<Sandbox>,
    Path(id): Path<String>,
    Json(body): Json<NameBody>,
) -> Result<Response, SandboxError> {
    host_hand(
        &s,
        &id,
        &body.name,
        &[ParticipantState::Lobby],
        ParticipantState::Admitted,
    )
}

async fn deny(
    State(s): State<Sandbox>,
    Path(id): Path<String>,
    Json(body): Json<NameBody>,
) -> Result<Response, SandboxError> {
    host_hand(
        &s,
        &id,
        &body.name,
        &[ParticipantState::Lobby],
        ParticipantState::Denied,
    )
}

async fn remove(
    State(s): State<Sandbox>,
    Path(id): Path<String>,
    Json(body): Json<NameBody>,
) -> Result<Response, SandboxError> {
    host_hand(
        &s,
        &id,
        &body.name,
        &[ParticipantState::Admitted],
        ParticipantState::Removed,
    )
}

fn host_hand(
    s: &Sandbox,
    id: &str,
    name: &str,
    from: &[ParticipantState],
    to: ParticipantState,
) -> Result<Response, SandboxError> {
    let changed = s.inner.set_state(id, name, from, to)?;
    Ok(Json(json!({ "changed": changed })).into_response())
}

async fn end(State(s): State<Sandbox>, Path(id): Path<String>) -> Result<StatusCode, SandboxError> {
    s.inner.end(&id)?;
    Ok(StatusCode::NO_CONTENT)
}
