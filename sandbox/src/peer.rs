//! The scripted speakers' voices sent from outside the page
//! (`speakers=remote`), as a platform's media server sends them: the page
//! offers one receive-only audio transceiver per speaker, and the sandbox
//! answers as an ICE-lite peer on 127.0.0.1 (str0m, which does no I/O of
//! its own: this task owns the socket and the clock). Each clip's Opus
//! packets go out as they were encoded, on the call's clock, so the page
//! only decodes what it hears, and whatever receives the page (a bot) is
//! not charged for making the voices.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError};
use tokio::net::UdpSocket;

use crate::meeting::{Meetings, SandboxError};
use crate::script::Utterance;
use crate::speech::{self, Packet};

/// Opus packets are sent this often (each holds 20 ms).
const TICK: Duration = Duration::from_millis(20);
/// A peer that outlives this is closed whatever it does.
const MAX_LIFE: Duration = Duration::from_secs(6 * 3600);
/// Packets due longer ago than this are skipped, not sent late.
const LATE_MS: u64 = 200;

/// What one page is sent: the meeting's speech on its clock.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub speech: Vec<Utterance>,
    pub repeat_ms: Option<u64>,
    pub call_started: Instant,
    pub muted: bool,
}

impl Plan {
    /// The speakers in the order the page offers their transceivers: as
    /// they first speak in the script.
    pub(crate) fn speakers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in &self.speech {
            if !out.contains(&u.speaker) {
                out.push(u.speaker.clone());
            }
        }
        out
    }

    /// What `speaker` is saying `t` ms into the call: the utterance's
    /// index, its repetition and how far into its clip (ms).
    fn saying(&self, speaker: &str, t: u64) -> Option<(usize, u64, u64)> {
        self.speech.iter().enumerate().find_map(|(i, u)| {
            if u.speaker != speaker || t < u.at_ms {
                return None;
            }
            let k = self.repeat_ms.map_or(0, |r| (t - u.at_ms) / r);
            let start = u.at_ms + k * self.repeat_ms.unwrap_or(0);
            let len = speech::clip(&u.clip)?.duration_ms;
            (t >= start && t < start + len).then_some((i, k, t - start))
        })
    }
}

/// One speaker's transceiver and where its current utterance is.
struct Voice {
    speaker: String,
    mid: Mid,
    /// The utterance (index, repetition) under way and its next packet.
    playing: Option<((usize, u64), usize)>,
}

/// Answers a page's offer and starts sending to it; the answer goes back
/// to the page.
pub(crate) async fn answer(
    meetings: Arc<Meetings>,
    meeting_id: String,
    participant_id: String,
    plan: Plan,
    offer: SdpOffer,
) -> Result<SdpAnswer, SandboxError> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| SandboxError::Invalid(format!("no UDP socket for the speakers: {e}")))?;
    let local = socket
        .local_addr()
        .map_err(|e| SandboxError::Invalid(e.to_string()))?;
    let mut rtc = Rtc::builder()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_opus(true, false)
        .build(Instant::now());
    let candidate =
        Candidate::host(local, "udp").map_err(|e| SandboxError::Invalid(e.to_string()))?;
    rtc.add_local_candidate(candidate);
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| SandboxError::Invalid(format!("the page's offer: {e}")))?;
    let clips: HashMap<String, Vec<Packet>> = plan
        .speech
        .iter()
        .filter_map(|u| {
            Some((
                u.clip.clone(),
                speech::packets(speech::clip(&u.clip)?.bytes),
            ))
        })
        .collect();
    tokio::spawn(async move {
        let in_call = || meetings.in_call(&meeting_id, &participant_id);
        if let Err(e) = run(rtc, socket, local, plan, clips, in_call).await {
            tracing::debug!(error = %e, "sandbox speakers' peer closed");
        }
    });
    Ok(answer)
}

async fn run(
    mut rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    plan: Plan,
    clips: HashMap<String, Vec<Packet>>,
    in_call: impl Fn() -> bool,
) -> Result<(), RtcError> {
    let speakers = plan.speakers();
    let born = Instant::now();
    let mut voices: Vec<Voice> = Vec::new();
    let mut opus: Option<Pt> = None;
    let mut connected = false;
    let mut buf = vec![0u8; 2000];
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut checked = Instant::now();
    loop {
        // Everything str0m has to say, up to when it next needs the clock.
        let deadline = loop {
            match rtc.poll_output()? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::MediaAdded(m)) if m.kind == MediaKind::Audio => {
                    // Transceivers come in the order the page offered them.
                    if let Some(speaker) = speakers.get(voices.len()) {
                        voices.push(Voice {
                            speaker: speaker.clone(),
                            mid: m.mid,
                            playing: None,
                        });
                    }
                }
                Output::Event(Event::Connected) => connected = true,
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => return Ok(()),
                Output::Event(_) => {}
            }
        };
        if !rtc.is_alive() || born.elapsed() > MAX_LIFE {
            return Ok(());
        }
        if checked.elapsed() >= Duration::from_secs(1) {
            checked = Instant::now();
            if !in_call() {
                rtc.disconnect();
                return Ok(());
            }
        }
        let wait = deadline.max(Instant::now());
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, source)) = r else { continue };
                let Ok(contents) = buf[..n].try_into() else { continue };
                rtc.handle_input(Input::Receive(
                    Instant::now(),
                    Receive { proto: Protocol::Udp, source, destination: local, contents },
                ))?;
            }
            _ = tokio::time::sleep_until(wait.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
            _ = tick.tick(), if connected && !plan.muted => {
                if opus.is_none() {
                    opus = voices.first().and_then(|v| rtc.writer(v.mid)).and_then(|w| {
                        w.payload_params()
                            .find(|p| p.spec().codec == Codec::Opus)
                            .map(|p| p.pt())
                    });
                }
                if let Some(pt) = opus {
                    send_due(&mut rtc, &plan, &clips, &mut voices, pt)?;
                }
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
        }
    }
}

/// Sends each voice the packets of its utterance that are due by now.
fn send_due(
    rtc: &mut Rtc,
    plan: &Plan,
    clips: &HashMap<String, Vec<Packet>>,
    voices: &mut [Voice],
    pt: Pt,
) -> Result<(), RtcError> {
    let now = Instant::now();
    let t = now.saturating_duration_since(plan.call_started).as_millis() as u64;
    for v in voices.iter_mut() {
        let Some((i, k, into)) = plan.saying(&v.speaker, t) else {
            v.playing = None;
            continue;
        };
        let Some(packets) = clips.get(&plan.speech[i].clip) else {
            continue;
        };
        let due = into * 48;
        let next = match v.playing {
            Some((key, next)) if key == (i, k) => next,
            // Joined part-way through: from what is due now.
            _ => packets.partition_point(|p| p.at + LATE_MS * 48 < due),
        };
        let mut n = next;
        while let Some(p) = packets.get(n).filter(|p| p.at <= due) {
            // On the call's clock: when this packet's sound begins.
            let begins = plan.call_started
                + Duration::from_millis(t - into)
                + Duration::from_micros(p.at * 1000 / 48);
            let rtp = begins.saturating_duration_since(plan.call_started);
            let rtp_time = MediaTime::new(
                (rtp.as_micros() as u64) * 48 / 1000,
                Frequency::FORTY_EIGHT_KHZ,
            );
            if let Some(w) = rtc.writer(v.mid) {
                w.write(pt, begins, rtp_time, p.data.clone())?;
            }
            n += 1;
        }
        v.playing = Some(((i, k), n));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let u = |speaker: &str, at_ms, clip: &str| Utterance {
            speaker: speaker.into(),
            at_ms,
            clip: clip.into(),
        };
        Plan {
            speech: vec![
                u("Alice", 1_000, "alice-1"),
                u("Bob", 5_000, "bob-1"),
                u("Alice", 9_000, "alice-2"),
            ],
            repeat_ms: Some(20_000),
            call_started: Instant::now(),
            muted: false,
        }
    }

    #[test]
    fn speakers_come_in_the_order_they_first_speak() {
        assert_eq!(plan().speakers(), ["Alice", "Bob"]);
    }

    #[test]
    fn who_says_what_follows_the_script_and_its_repetitions() {
        let p = plan();
        assert_eq!(p.saying("Alice", 500), None);
        assert_eq!(p.saying("Alice", 1_500), Some((0, 0, 500)));
        assert_eq!(p.saying("Bob", 1_500), None);
        assert_eq!(p.saying("Bob", 6_000), Some((1, 0, 1_000)));
        assert_eq!(p.saying("Alice", 9_100), Some((2, 0, 100)));
        // alice-1 plays 3925 ms.
        assert_eq!(p.saying("Alice", 4_925), None);
        assert_eq!(p.saying("Alice", 21_500), Some((0, 1, 500)));
    }
}
