//! Deepgram's streaming API: 16 kHz linear PCM over a WebSocket
//! (`Authorization: Token …`), interim results as partial segments and
//! `is_final` results as final ones. Each utterance gets an id from its
//! start time, so its interim results are replaced by its final. A final
//! result that spans a change of speaker is cut there, at its words'
//! times, so one segment never holds two people.

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
    #[serde(default)]
    words: Vec<Word>,
}

#[derive(Deserialize)]
struct Word {
    #[serde(default)]
    word: String,
    #[serde(default)]
    punctuated_word: Option<String>,
    #[serde(default)]
    start: f64,
    #[serde(default)]
    end: f64,
}

/// One result from Deepgram: its span (ms into the stream), what was
/// said, whether it is final, and its words with their spans.
#[derive(Debug)]
pub(crate) struct Heard {
    pub start: u64,
    pub end: u64,
    pub recognized: Recognized,
    pub is_final: bool,
    pub words: Vec<(u64, u64, String)>,
}

fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).max(0.0) as u64
}

/// One message from Deepgram as a result; `None` for other messages and
/// empty results.
pub(crate) fn parse(msg: &str) -> Option<Heard> {
    let r: Results = serde_json::from_str(msg).ok()?;
    if r.kind != "Results" {
        return None;
    }
    let ch = r.channel?;
    let alt = ch.alternatives.into_iter().next()?;
    if alt.transcript.trim().is_empty() {
        return None;
    }
    let words = alt
        .words
        .into_iter()
        .map(|w| (ms(w.start), ms(w.end), w.punctuated_word.unwrap_or(w.word)))
        .collect();
    Some(Heard {
        start: ms(r.start),
        end: ms(r.start + r.duration),
        recognized: Recognized {
            text: alt.transcript,
            confidence: alt.confidence as f32,
            language: ch.detected_language,
        },
        is_final: r.is_final,
        words,
    })
}

/// A result's parts between the changes of speaker inside it (ms into the
/// stream): each word goes with the speaker shown at its middle. Without
/// words, or without a change among them, the result is one part.
pub(crate) fn cut_at(h: &Heard, changes: &[u64]) -> Vec<(u64, u64, String)> {
    let whole = || vec![(h.start, h.end, h.recognized.text.clone())];
    let mut parts: Vec<(usize, u64, u64, String)> = Vec::new();
    for (s, e, w) in &h.words {
        let mid = s + e.saturating_sub(*s) / 2;
        let turn = changes.iter().filter(|&&c| c <= mid).count();
        match parts.last_mut() {
            Some((t, _, end, text)) if *t == turn => {
                *end = *e;
                text.push(' ');
                text.push_str(w);
            }
            _ => parts.push((turn, *s, *e, w.clone())),
        }
    }
    if parts.len() < 2 {
        return whole();
    }
    parts.into_iter().map(|(_, s, e, t)| (s, e, t)).collect()
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
                            if let Some(h) = parse(&t) {
                                heard(&out, &mut utterance, h).await;
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

/// Reports one result: interim results as they are, a final one in its
/// parts between changes of speaker (the first part keeps the utterance's
/// id, so it replaces the interim results).
async fn heard(out: &Output, utterance: &mut Option<u64>, h: Heard) {
    let id = *utterance.get_or_insert(h.start);
    if !h.is_final {
        return out
            .segment(format!("d{id}"), h.start, h.end, h.recognized, false, None)
            .await;
    }
    *utterance = None;
    let changes: Vec<u64> = match out.start_ms {
        Some(zero) => out
            .speakers
            .changes_after(zero + h.start as i64)
            .into_iter()
            .filter_map(|at| u64::try_from(at - zero).ok())
            .filter(|&at| at < h.end)
            .collect(),
        None => Vec::new(),
    };
    let ended = Some(std::time::Instant::now());
    for (i, (start, end, text)) in cut_at(&h, &changes).into_iter().enumerate() {
        let r = Recognized {
            text,
            confidence: h.recognized.confidence,
            language: h.recognized.language.clone(),
        };
        let part = if i == 0 { id } else { start };
        out.segment(format!("d{part}"), start, end, r, true, ended)
            .await;
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
        let h = parse(interim).unwrap();
        assert_eq!((h.start, h.end, h.is_final), (2_000, 3_500, false));
        assert_eq!(h.recognized.text, "good morning");
        assert!((h.recognized.confidence - 0.81).abs() < 1e-6);
        let empty = r#"{"type":"Results","start":0,"duration":1,"is_final":true,
            "channel":{"alternatives":[{"transcript":"","confidence":0}]}}"#;
        assert!(parse(empty).is_none());
        assert!(parse(r#"{"type":"Metadata","request_id":"x"}"#).is_none());
        assert!(parse("not json").is_none());
    }

    #[test]
    fn a_final_result_is_cut_where_the_speaker_changes() {
        let msg = r#"{"type":"Results","start":1.0,"duration":3.0,"is_final":true,
            "channel":{"alternatives":[{"transcript":"thanks alice over to you bob","confidence":0.9,
            "words":[
              {"word":"thanks","punctuated_word":"Thanks,","start":1.0,"end":1.3},
              {"word":"alice","punctuated_word":"Alice.","start":1.3,"end":1.8},
              {"word":"over","start":2.4,"end":2.6},
              {"word":"to","start":2.6,"end":2.7},
              {"word":"you","start":2.7,"end":3.0},
              {"word":"bob","punctuated_word":"Bob.","start":3.2,"end":3.9}]}]}}"#;
        let h = parse(msg).unwrap();
        assert_eq!(h.words.len(), 6);
        // Bob took over at 2.2 s, inside the pause.
        assert_eq!(
            cut_at(&h, &[2_200]),
            [
                (1_000, 1_800, "Thanks, Alice.".to_string()),
                (2_400, 3_900, "over to you Bob.".to_string())
            ]
        );
        // A change after the last word, or none, leaves it whole.
        for changes in [&[][..], &[3_950][..]] {
            assert_eq!(
                cut_at(&h, changes),
                [(1_000, 4_000, "thanks alice over to you bob".to_string())]
            );
        }
        // Changes back and forth give a part per turn.
        assert_eq!(cut_at(&h, &[2_200, 3_100]).len(), 3);
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
