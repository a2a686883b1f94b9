//! HTTP surface of the sandbox: the meeting page, the page's own API, and the
//! control API tests use to play the host.

use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::Sandbox;
use crate::meeting::{MeetingOptions, ParticipantState, SandboxError, Uplink};
use crate::script::Script;
use crate::speech;

const PAGE: &str = include_str!("../assets/meeting.html");
const ENGINE: &str = include_str!("../assets/engine.js");
/// The replicas of the platforms' pages, by the name in their path.
pub const REPLICAS: &[(&str, &str)] = &[
    ("meet", include_str!("../assets/platform/meet.html")),
    ("teams", include_str!("../assets/platform/teams.html")),
    ("zoom", include_str!("../assets/platform/zoom.html")),
];
/// Zoom's client in an `iframe#webclient`, as the web client often runs:
/// `/platform/zoom/<id>?frame=webclient&…`.
pub const ZOOM_FRAME: &str = include_str!("../assets/platform/zoom-frame.html");
const MAX_ID_LEN: usize = 64;
/// Largest request body; creating a meeting may carry a whole script.
const MAX_BODY: usize = 16 * 1024;
const MAX_CREATE_BODY: usize = 1024 * 1024;

pub fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/m/{id}", get(page))
        .route("/platform/{kind}/{id}", get(replica))
        .route("/assets/engine.js", get(engine))
        .route("/media/{file}", get(media))
        .route(
            "/api/meetings",
            post(create).layer(DefaultBodyLimit::max(MAX_CREATE_BODY)),
        )
        .route("/api/meetings/{id}", get(view))
        .route("/api/meetings/{id}/knock", post(knock))
        .route("/api/meetings/{id}/poll", post(poll))
        .route("/api/meetings/{id}/leave", post(leave))
        .route("/api/meetings/{id}/speakers", post(speakers))
        .route("/api/meetings/{id}/admit", post(admit))
        .route("/api/meetings/{id}/deny", post(deny))
        .route("/api/meetings/{id}/remove", post(remove))
        .route("/api/meetings/{id}/end", post(end))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(sandbox)
}

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            SandboxError::NotFound => (StatusCode::NOT_FOUND, "Meeting not found".into()),
            SandboxError::Full => (StatusCode::TOO_MANY_REQUESTS, "This meeting is full".into()),
            SandboxError::BadName => (
                StatusCode::BAD_REQUEST,
                "Enter a name of 1 to 256 characters".into(),
            ),
            SandboxError::Forbidden => (StatusCode::FORBIDDEN, "Not your seat".into()),
            SandboxError::Invalid(why) => (StatusCode::BAD_REQUEST, why),
            SandboxError::WrongPasscode => {
                return (
                    StatusCode::FORBIDDEN,
                    Json(json!({ "error": "Incorrect passcode", "code": "wrong_passcode" })),
                )
                    .into_response();
            }
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
    serve_meeting(&s, &id, options, PAGE)
}

/// A meeting in the page shape of Meet, Teams or Zoom: the same meeting,
/// scripted the same way.
async fn replica(
    State(s): State<Sandbox>,
    Path((kind, id)): Path<(String, String)>,
    Query(options): Query<MeetingOptions>,
    RawQuery(query): RawQuery,
) -> Result<Response, SandboxError> {
    let page = REPLICAS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, page)| *page)
        .ok_or(SandboxError::NotFound)?;
    let query = query.unwrap_or_default();
    let (framed, rest): (Vec<&str>, Vec<&str>) =
        query.split('&').partition(|p| *p == "frame=webclient");
    if kind == "zoom" && !framed.is_empty() {
        check_id(&id)?;
        // The frame's own address: this one, without the frame.
        let src = format!("/platform/zoom/{id}?{}", rest.join("&")).replace('&', "&amp;");
        let html = ZOOM_FRAME.replace("{{SRC}}", &src.replace('"', "&quot;"));
        return Ok((
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            html,
        )
            .into_response());
    }
    serve_meeting(&s, &id, options, page)
}

fn serve_meeting(
    s: &Sandbox,
    id: &str,
    options: MeetingOptions,
    page: &'static str,
) -> Result<Response, SandboxError> {
    check_id(id)?;
    if let Err(SandboxError::Invalid(why)) = s.inner.get_or_create(id, options) {
        return Ok(error_page(&why));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response())
}

async fn engine() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        ENGINE,
    )
        .into_response()
}

/// The meeting page's place, for a meeting that cannot be played: says why.
fn error_page(why: &str) -> Response {
    let why = why
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let html = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Sandbox meeting</title>\
         <h1>Sandbox meeting</h1><p id=\"error\" role=\"alert\">{why}</p></html>"
    );
    (
        StatusCode::BAD_REQUEST,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// A speech clip: `/media/<clip>.ogg`.
async fn media(Path(file): Path<String>) -> Response {
    match file.strip_suffix(".ogg").and_then(speech::clip) {
        Some(clip) => (
            [
                (header::CONTENT_TYPE, "audio/ogg"),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            clip.bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "No such clip" })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct CreateBody {
    id: Option<String>,
    #[serde(flatten)]
    options: MeetingOptions,
    /// A whole script; wins over `script`, the name of a built-in one.
    custom_script: Option<Script>,
}

async fn create(
    State(s): State<Sandbox>,
    Json(body): Json<CreateBody>,
) -> Result<Response, SandboxError> {
    let id = body
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    check_id(&id)?;
    let view = s.inner.create(&id, body.options, body.custom_script)?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn view(State(s): State<Sandbox>, Path(id): Path<String>) -> Result<Response, SandboxError> {
    Ok(Json(s.inner.view(&id)?).into_response())
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
    /// The passcode the page's link carries.
    #[serde(default)]
    passcode: Option<String>,
    /// What the page sends as it knocks.
    #[serde(default)]
    uplink: Option<Uplink>,
}

#[derive(Deserialize)]
struct SeatBody {
    participant_id: String,
    secret: String,
    #[serde(default)]
    uplink: Option<Uplink>,
}

async fn knock(
    State(s): State<Sandbox>,
    Path(id): Path<String>,
    Json(body): Json<NameBody>,
) -> Result<Response, SandboxError> {
    let (participant_id, secret) = s
        .inner
        .knock_with(&id, &body.name, body.passcode.as_deref())?;
    if let Some(u) = body.uplink {
        s.inner.report_uplink(&id, &participant_id, &secret, u)?;
    }
    let view = s.inner.poll(&id, &participant_id, &secret)?;
    Ok(
        Json(json!({ "participant_id": participant_id, "secret": secret, "view": view }))
            .into_response(),
    )
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
    if let Some(u) = seat.uplink {
        s.inner
            .report_uplink(&id, &seat.participant_id, &seat.secret, u)?;
    }
    Ok(Json(s.inner.poll(&id, &seat.participant_id, &seat.secret)?).into_response())
}

#[derive(Deserialize)]
struct SpeakersBody {
    participant_id: String,
    secret: String,
    offer: str0m::change::SdpOffer,
}

/// An admitted page's offer for the speakers' voices (`speakers=remote`):
/// answered by the sandbox's own peer, which then sends them.
async fn speakers(
    State(s): State<Sandbox>,
    Path(id): Path<String>,
    Json(body): Json<SpeakersBody>,
) -> Result<Response, SandboxError> {
    let plan = s.inner.peer_plan(&id, &body.participant_id, &body.secret)?;
    let answer =
        crate::peer::answer(s.inner.clone(), id, body.participant_id, plan, body.offer).await?;
    Ok(Json(answer).into_response())
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

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    struct Reply {
        status: u16,
        head: String,
        body: Vec<u8>,
    }

    impl Reply {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
    }

    async fn serve() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(Sandbox::new().serve(listener, Default::default()));
        addr
    }

    /// One HTTP/1.0 exchange: the server closes the connection after it.
    async fn http(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.0\r\nhost: sandbox\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(raw[..split].to_vec())
            .unwrap()
            .to_lowercase();
        let status = head[9..12].parse().unwrap();
        Reply {
            status,
            head,
            body: raw[split + 4..].to_vec(),
        }
    }

    #[tokio::test]
    async fn clips_are_served() {
        let addr = serve().await;
        let r = http(addr, "GET", "/media/bob-1.ogg", None).await;
        assert_eq!(r.status, 200);
        assert!(r.head.contains("content-type: audio/ogg"), "{}", r.head);
        assert_eq!(r.body, speech::clip("bob-1").unwrap().bytes);
        for missing in ["/media/nope.ogg", "/media/bob-1", "/media/bob-1.wav"] {
            assert_eq!(
                http(addr, "GET", missing, None).await.status,
                404,
                "{missing}"
            );
        }
    }

    #[tokio::test]
    async fn the_page_names_an_unknown_script() {
        let addr = serve().await;
        let r = http(addr, "GET", "/m/x?script=nope", None).await;
        assert_eq!(r.status, 400);
        assert!(
            r.text().contains("Unknown script &quot;nope&quot;"),
            "{}",
            r.text()
        );
        assert_eq!(http(addr, "GET", "/api/meetings/x", None).await.status, 404);

        let r = http(
            addr,
            "GET",
            "/m/x?script=demo&audio=muted&corrupt_frames=3",
            None,
        )
        .await;
        assert_eq!(r.status, 200);
        let v = http(addr, "GET", "/api/meetings/x", None).await.json();
        assert_eq!(v["audio"], "muted");
        assert_eq!(v["corrupt_frames"], 3);
        assert_eq!(v["script"]["speech"][1]["clip"], "bob-1");
        assert_eq!(v["clip_ms"]["bob-1"], 3394);
        assert_eq!(v["elapsed_ms"], Value::Null);
        assert!(v.get("speech").is_none());
    }

    #[tokio::test]
    async fn custom_scripts_are_checked_and_played() {
        let addr = serve().await;
        let bad = json!({
            "id": "c1",
            "custom_script": {
                "participants": [{ "name": "Ann" }],
                "speech": [{ "speaker": "Ben", "at_ms": 0, "clip": "bob-1" }],
            },
        });
        let r = http(addr, "POST", "/api/meetings", Some(&bad)).await;
        assert_eq!(r.status, 400);
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("Speaker \"Ben\"")
        );

        // Larger than an ordinary request body: a script may be long.
        let chat: Vec<Value> = (0..20)
            .map(|i| json!({ "sender": "Ann", "at_ms": i * 10, "text": "x".repeat(2000) }))
            .collect();
        let good = json!({
            "id": "c1",
            "admission": "open",
            "script": "demo",
            "custom_script": {
                "participants": [{ "name": "Ann" }, { "name": "Ben", "join_ms": 100000 }],
                "speech": [{ "speaker": "Ann", "at_ms": 500, "clip": "carol-1" }],
                "chat": chat,
            },
        });
        let r = http(addr, "POST", "/api/meetings", Some(&good)).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        assert_eq!(v["script"]["participants"][1]["leave_ms"], Value::Null);
        assert_eq!(
            v["participants"].as_array().unwrap().len(),
            1,
            "Ben joins later"
        );

        let seat = http(
            addr,
            "POST",
            "/api/meetings/c1/knock",
            Some(&json!({ "name": "Bot" })),
        )
        .await
        .json();
        let v = http(addr, "POST", "/api/meetings/c1/poll", Some(&seat))
            .await
            .json();
        assert_eq!(v["state"], "admitted");
        assert!(v["elapsed_ms"].as_u64().unwrap() < 1000);
        let people = v["participants"].as_array().unwrap();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0]["name"], "Ann");
        assert_eq!(people[0]["host"], true);
        assert_eq!(people[1]["id"], seat["participant_id"]);
        assert_eq!(v["chat"][0]["sender"], "Ann");
        assert_eq!(v["chat"][0]["at_ms"], 0);
        assert!(v["chat"][0]["id"].is_string());
    }
}
