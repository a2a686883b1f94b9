//! Live feeds over graphql-transport-ws, as a stock client opens them.

use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::Api;

pub type GraphqlWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a graphql-transport-ws connection as `api`'s key and starts one
/// subscription (id "1") on it.
pub async fn subscription(api: &Api, query: &str, variables: Value) -> GraphqlWs {
    let url = api.http.replace("http://", "ws://") + "/graphql/ws";
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {}", api.key) } });
    ws.send(Message::text(init.to_string())).await.unwrap();
    let ack: Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    let sub = json!({
        "id": "1", "type": "subscribe",
        "payload": { "query": query, "variables": variables }
    });
    ws.send(Message::text(sub.to_string())).await.unwrap();
    ws
}

/// Subscribes to a bot's events over graphql-transport-ws and collects the
/// statuses until the server completes the stream.
pub async fn subscribe(
    api: &Api,
    bot_id: &str,
) -> tokio::task::JoinHandle<Result<Vec<String>, Value>> {
    let mut ws = subscription(
        api,
        "subscription($id: ID!) { botEvents(botId: $id) { status reason } }",
        json!({ "id": bot_id }),
    )
    .await;
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            match v["type"].as_str() {
                Some("next") if v["payload"].get("errors").is_some() => {
                    return Err(v["payload"]["errors"].clone());
                }
                Some("next") => seen.push(
                    v["payload"]["data"]["botEvents"]["status"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                ),
                Some("complete") => break,
                Some("error") => return Err(v["payload"].clone()),
                _ => {}
            }
        }
        Ok(seen)
    })
}

/// Live transcript segments from `Subscription.transcript`, each with
/// when it arrived.
pub async fn subscribe_transcript(
    api: &Api,
    bot_id: &str,
) -> tokio::task::JoinHandle<Vec<(DateTime<Utc>, Value)>> {
    collect(
        api,
        "subscription($id: ID!) { transcript(botId: $id) { id startMs endMs speaker text isFinal confidence language } }",
        bot_id,
        "transcript",
    )
    .await
}

/// A bot's activity from `Subscription.botActivity`, each with when it
/// arrived.
pub async fn subscribe_activity(
    api: &Api,
    bot_id: &str,
) -> tokio::task::JoinHandle<Vec<(DateTime<Utc>, Value)>> {
    collect(
        api,
        "subscription($id: ID!) { botActivity(botId: $id) { botId kind at \
         participant { participantId name joinedAt leftAt } \
         speaker { participantId name startedAt endedAt } \
         chatMessage { sender text sentAt } warning { code message } } }",
        bot_id,
        "botActivity",
    )
    .await
}

/// Every item of one subscription (`field` of each payload) until the
/// server completes it, each with when it arrived.
async fn collect(
    api: &Api,
    query: &str,
    bot_id: &str,
    field: &'static str,
) -> tokio::task::JoinHandle<Vec<(DateTime<Utc>, Value)>> {
    let mut ws = subscription(api, query, json!({ "id": bot_id })).await;
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            match v["type"].as_str() {
                Some("next") => {
                    assert!(v["payload"].get("errors").is_none(), "{v}");
                    seen.push((Utc::now(), v["payload"]["data"][field].clone()));
                }
                Some("complete") | Some("error") => break,
                _ => {}
            }
        }
        seen
    })
}
