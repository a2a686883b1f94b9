//! OpenAI-compatible transcription (`POST {base}/audio/transcriptions`,
//! multipart, `verbose_json`), as OpenAI, Groq, faster-whisper-server,
//! whisper.cpp's server and the worker's local engine serve it. Utterances
//! come from voice-activity detection; confidence is the mean of the
//! segments' `exp(avg_logprob)` when the server gives them.

use std::time::Instant;

use attache_protocol::Secret;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::vad::{Cut, Utterance, Vad};
use super::{Audio, Output, Recognized, SpeechToText, SttError, wav};

pub(crate) struct Client {
    pub http: reqwest::Client,
    /// Up to and including `/v1`.
    pub base: String,
    pub model: String,
    pub api_key: Option<Secret>,
    pub language: Option<String>,
    /// For the local engine: the bot, named in `X-Attache-Stream` with
    /// `X-Attache-Partial` on partial results, by which it shares itself
    /// fairly. A hosted engine is told neither.
    pub stream: Option<String>,
}

#[derive(Deserialize)]
struct Verbose {
    text: String,
    language: Option<String>,
    #[serde(default)]
    segments: Vec<VerboseSegment>,
}

#[derive(Deserialize)]
struct VerboseSegment {
    avg_logprob: Option<f64>,
}

/// Whisper names languages in English ("english"); segments carry codes.
fn language_code(l: &str) -> Option<String> {
    let code = match l.to_ascii_lowercase().as_str() {
        "english" => "en",
        "german" => "de",
        "french" => "fr",
        "spanish" => "es",
        "italian" => "it",
        "portuguese" => "pt",
        "dutch" => "nl",
        "japanese" => "ja",
        "chinese" => "zh",
        other
            if (2..=8).contains(&other.len())
                && other.chars().all(|c| c.is_ascii_alphabetic() || c == '-') =>
        {
            return Some(other.to_string());
        }
        _ => return None,
    };
    Some(code.to_string())
}

pub(crate) fn parse(body: &[u8]) -> Result<Recognized, SttError> {
    let v: Verbose =
        serde_json::from_slice(body).map_err(|e| SttError::Malformed(e.to_string()))?;
    let probs: Vec<f64> = v
        .segments
        .iter()
        .filter_map(|s| s.avg_logprob.map(f64::exp))
        .collect();
    let confidence = if probs.is_empty() {
        // The server gave no figure.
        1.0
    } else {
        probs.iter().sum::<f64>() / probs.len() as f64
    };
    Ok(Recognized {
        text: v.text.trim().to_string(),
        confidence: confidence as f32,
        language: v.language.as_deref().and_then(language_code),
    })
}

impl Client {
    pub(crate) async fn recognize(
        &self,
        pcm: &[f32],
        partial: bool,
    ) -> Result<Recognized, SttError> {
        let part = reqwest::multipart::Part::bytes(wav(pcm))
            .file_name("speech.wav")
            .mime_str("audio/wav")
            .map_err(|e| SttError::Malformed(e.to_string()))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", self.model.clone())
            .text("response_format", "verbose_json");
        if let Some(l) = &self.language {
            form = form.text("language", l.clone());
        }
        let url = format!("{}/audio/transcriptions", self.base.trim_end_matches('/'));
        let mut req = self.http.post(url).multipart(form);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k.expose());
        }
        if let Some(stream) = &self.stream {
            req = req.header("X-Attache-Stream", stream);
            if partial {
                req = req.header("X-Attache-Partial", "1");
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| SttError::Unreachable(e.without_url().to_string()))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| SttError::Unreachable(e.without_url().to_string()))?;
        if !status.is_success() {
            let mut why = String::from_utf8_lossy(&body).to_string();
            why.truncate(200);
            return Err(SttError::Refused(format!("HTTP {status}: {why}")));
        }
        parse(&body)
    }
}

/// An engine fed utterance by utterance.
pub(crate) struct Chunked {
    client: Client,
}

impl Chunked {
    pub(crate) fn new(client: Client) -> Chunked {
        Chunked { client }
    }
}

async fn send(
    client: &Client,
    out: &mut Output,
    u: &Utterance,
    is_final: bool,
    ended: Option<Instant>,
) {
    match client.recognize(&u.pcm, !is_final).await {
        Ok(r) => {
            out.segment(
                format!("u{}", u.n),
                u.start_ms,
                u.end_ms,
                r,
                is_final,
                ended,
            )
            .await
        }
        Err(e) => out.failed(&e).await,
    }
}

impl SpeechToText for Chunked {
    fn run(
        self: Box<Self>,
        mut audio: mpsc::Receiver<Audio>,
        mut out: Output,
    ) -> BoxFuture<'static, ()> {
        async move {
            let mut vad = Vad::default();
            let mut changes_seen = i64::MIN;
            while let Some(a) = audio.recv().await {
                let block = match a {
                    Audio::Begin { start_ms } => {
                        out.start_ms = Some(start_ms);
                        continue;
                    }
                    Audio::Block(b) => b,
                };
                // A new speaker ends the utterance of the one before.
                if let Some(zero) = out.start_ms {
                    for at in out.speakers.changes_after(changes_seen) {
                        changes_seen = at;
                        let Ok(at) = u64::try_from(at - zero) else {
                            continue;
                        };
                        if let Some(u) = vad.split_near(at) {
                            send(&self.client, &mut out, &u, true, Some(Instant::now())).await;
                        }
                    }
                }
                match vad.push(block) {
                    Some(Cut::Final(u)) => {
                        send(&self.client, &mut out, &u, true, Some(Instant::now())).await
                    }
                    // A partial is worth sending only if the engine is
                    // keeping up: skipped when audio is waiting.
                    Some(Cut::Partial(u)) if audio.len() < 25 => {
                        send(&self.client, &mut out, &u, false, None).await;
                    }
                    Some(Cut::Partial(_)) | None => {}
                }
            }
            if let Some(u) = vad.finish() {
                send(&self.client, &mut out, &u, true, Some(Instant::now())).await;
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_answers_give_text_confidence_and_language() {
        let r = parse(
            br#"{"text":" Hello there. ","language":"english","duration":1.2,
                "segments":[{"avg_logprob":-0.1},{"avg_logprob":-0.3}]}"#,
        )
        .unwrap();
        assert_eq!(r.text, "Hello there.");
        assert_eq!(r.language.as_deref(), Some("en"));
        let want = ((-0.1f64).exp() + (-0.3f64).exp()) / 2.0;
        assert!((r.confidence as f64 - want).abs() < 1e-6);
        let plain = parse(br#"{"text":"hi"}"#).unwrap();
        assert_eq!((plain.confidence, plain.language), (1.0, None));
        assert!(matches!(parse(b"<html>"), Err(SttError::Malformed(_))));
    }
}
