//! Deepgram's streaming API: 16 kHz linear PCM over a WebSocket
//! (`Authorization: Token …`), interim results as partial segments and
//! `is_final` results as final ones. Each utterance gets an id from its
//! start time, so its interim results are replaced by its final.

use attache_protocol::Secret;
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Audio, Output, Recognized, SpeechToText, SttError};

pub(crate) struct Streaming {
    pub endpoint: String,
    pub model: String,
    pub api_key: Secret,
    pub language: Option<String>,
}

#[derive(Deserialize)]
struct Results {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    start: f64,
    #[serde(default)]
    duration: f64,
    channel: Option<Channel>,
}

#[derive(Deserialize)]
struct Channel {
    alternatives: Vec<Alternative>,
    #[serde(default)]
    detected_language: Option<String>,
}

#[derive(Deserialize)]
struct Alternative {
    transcript: String,
    #[serde(default)]
    confidence: f64,
}

/// One message from Deepgram as a segment: (start ms, end ms, text,
/// is_final); `None` for other messages and empty results.
pub(crate) fn parse(msg: &str) -> Option<(u64, u64, Recognized, bool)> {
    let r: Results = serde_json::from_str(msg).ok()?;
    if r.kind != "Results" {
        return None;
    }
    let ch = r.channel?;
    let alt = ch.alternatives.into_iter().next()?;
    if alt.transcript.trim().is_empty() {
        return None;
    }
    let start = (r.start * 1000.0).max(0.0) as u64;
    let end = ((r.start + r.duration) * 1000.0).max(0.0) as u64;
    Some((
        start,
        end,
        Recognized {
            text: alt.transcript,
            confidence: alt.confidence as f32,
            language: ch.detected_language,
        },
        r.is_final,
    ))
}

impl Streaming {
    fn url(&self) -> Result<String, SttError> {
        let mut url = url::Url::parse(&self.endpoint)
            .map_err(|e| SttError::Refused(format!("endpoint: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("model", &self.model)
                .append_pair("encoding", "linear16")
                .append_pair("sample_rate", "16000")
                .append_pair("channels", "1")
                .append_pair("interim_results", "true")
                .append_pair("punctuate", "true");
            if let Some(l) = &self.language {
                q.append_pair("language", l);
            }
        }
        Ok(url.to_string())
    }
}

impl SpeechToText for Streaming {
    fn run(
        self: Box<Self>,
        mut audio: mpsc::Receiver<Audio>,
        mut out: Output,
    ) -> BoxFuture<'static, ()> {
        async move {
            let connected = async {
                let mut req = self.url()?.into_client_request().map_err(|e| SttError::Refused(e.to_string()))?;
                let token = format!("Token {}", self.api_key.expose())
                    .parse()
                    .map_err(|_| SttError::Refused("the API key is not a valid header".into()))?;
                req.headers_mut().insert("authorization", token);
                let (ws, _) = tokio_tungstenite::connect_async(req)
                    .await
                    .map_err(|e| SttError::Unreachable(e.to_string()))?;
                Ok::<_, SttError>(ws)
            }
            .await;
            let ws = match connected {
                Ok(ws) => ws,
                Err(e) => {
                    out.failed(&e).await;
                    // Drain so the recorder never blocks on us.
                    while audio.recv().await.is_some() {}
                    return;
                }
            };
            let (mut tx, mut rx) = ws.split();
            let mut utterance: Option<u64> = None;
            let mut sending = true;
            loop {
                tokio::select! {
                    a = audio.recv(), if sending => match a {
                        Some(Audio::Begin { start_ms }) => out.start_ms = Some(start_ms),
                        Some(Audio::Block(b)) => {
                            let bytes: Vec<u8> = b
                                .iter()
                                .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
                                .collect();
                            if let Err(e) = tx.send(Message::Binary(bytes.into())).await {
                                out.failed(&SttError::Unreachable(e.to_string())).await;
                                sending = false;
                            }
                        }
                        None => {
                            sending = false;
                            let _ = tx.send(Message::Text(r#"{"type":"CloseStream"}"#.into())).await;
                        }
                    },
                    m = rx.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            if let Some((start, end, r, is_final)) = parse(&t) {
                                let id = *utterance.get_or_insert(start);
                                out.segment(format!("d{id}"), start, end, r, is_final, is_final.then(std::time::Instant::now)).await;
                                if is_final {
                                    utterance = None;
                                }
                            }
                        }
                        Some(Ok(Message::Close(_))) | None => break,
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            out.failed(&SttError::Unreachable(e.to_string())).await;
                            break;
                        }
                    },
                }
            }
            while audio.recv().await.is_some() {}
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_become_segments() {
        let interim = r#"{"type":"Results","channel_index":[0,1],"duration":1.5,"start":2.0,
            "is_final":false,"speech_final":false,
            "channel":{"alternatives":[{"transcript":"good morning","confidence":0.81,"words":[]}]}}"#;
        let (s, e, r, fin) = parse(interim).unwrap();
        assert_eq!((s, e, fin), (2_000, 3_500, false));
        assert_eq!(r.text, "good morning");
        assert!((r.confidence - 0.81).abs() < 1e-6);
        let empty = r#"{"type":"Results","start":0,"duration":1,"is_final":true,
            "channel":{"alternatives":[{"transcript":"","confidence":0}]}}"#;
        assert!(parse(empty).is_none());
        assert!(parse(r#"{"type":"Metadata","request_id":"x"}"#).is_none());
        assert!(parse("not json").is_none());
    }

    #[test]
    fn the_url_carries_the_audio_format() {
        let s = Streaming {
            endpoint: "wss://api.deepgram.com/v1/listen".into(),
            model: "nova-3".into(),
            api_key: Secret::new("k"),
            language: Some("en".into()),
        };
        let u = s.url().unwrap();
        assert!(u.starts_with(
            "wss://api.deepgram.com/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000"
        ));
        assert!(u.ends_with("&language=en"));
    }
}
