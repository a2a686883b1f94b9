//! Meetings, their participants and the host's admission behaviour.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::options::{Admission, AudioMode, MeetingOptions, Mix, Speakers, Wall};
use crate::script::{ChatView, Script, ScriptedParticipant};
use crate::speech;

/// Most meetings one sandbox keeps; the oldest ended ones go first.
const MAX_MEETINGS: usize = 1_000;
/// Most people (in the call and in the lobby) one meeting admits.
const MAX_PARTICIPANTS: usize = 100;
const MAX_NAME_CHARS: usize = 256;
/// A page that stops polling for this long has left (its tab was closed or
/// its browser died), as a real platform notices a dropped peer.
const PRESENCE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most chat messages one poll returns (the latest ones): a repeating
/// script keeps writing for as long as the meeting lives.
const MAX_CHAT_SHOWN: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantState {
    Lobby,
    Admitted,
    Denied,
    Removed,
    Left,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParticipantView {
    pub id: String,
    pub name: String,
    pub state: ParticipantState,
    /// Played by the sandbox (a host or a scripted participant) rather than
    /// a guest who asked to join.
    pub host: bool,
    /// What a guest's page sent into the meeting, as it last reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplink: Option<Uplink>,
}

/// What a guest's page sends: whether its microphone and camera were on
/// (as it knocked, and since), the loudest 250 ms of its microphone while
/// on (RMS, 0 to 1), and the camera frames it sent; and whether a notice
/// in the call waits to be acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Uplink {
    pub mic_on: bool,
    pub camera_on: bool,
    pub audio_peak: f32,
    pub video_frames: u64,
    #[serde(default)]
    pub notices_open: bool,
}

impl Uplink {
    /// Folds a page's report in: on once is on, peaks and counts only
    /// grow; notices are as last reported.
    fn merge(&mut self, r: Uplink) {
        let peak = if r.audio_peak.is_finite() {
            r.audio_peak.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.mic_on |= r.mic_on;
        self.camera_on |= r.camera_on;
        self.audio_peak = self.audio_peak.max(peak);
        self.video_frames = self.video_frames.max(r.video_frames);
        self.notices_open = r.notices_open;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MeetingView {
    pub id: String,
    pub title: String,
    pub missing: bool,
    pub ended: bool,
    pub audio: AudioMode,
    pub corrupt_frames: u8,
    pub hang_ms: u64,
    pub hang_after_ms: u64,
    pub device_toggles: bool,
    pub overlays: bool,
    pub wall: Wall,
    /// A page must carry the passcode to knock.
    pub passcode_required: bool,
    pub mix: Mix,
    pub tiles: Option<u32>,
    pub speakers: Speakers,
    /// The meeting's script (speech and chat in time order), or `None`.
    pub script: Option<Script>,
    /// How long each clip plays, in milliseconds.
    pub clip_ms: BTreeMap<&'static str, u64>,
    /// Milliseconds since the call started, once it has.
    pub elapsed_ms: Option<u64>,
    /// The sandbox's side as present now, and every guest.
    pub participants: Vec<ParticipantView>,
}

#[derive(Debug)]
pub enum SandboxError {
    NotFound,
    Full,
    BadName,
    WrongPasscode,
    Forbidden,
    /// A script or option the sandbox cannot play, and why.
    Invalid(String),
}

/// A guest: someone who asked to join.
struct Participant {
    id: String,
    secret: String,
    name: String,
    state: ParticipantState,
    knocked_at: Instant,
    last_seen: Instant,
    uplink: Option<Uplink>,
}

/// Someone the sandbox plays: a host, or a script's participant.
struct Cast {
    id: String,
    who: ScriptedParticipant,
}

struct Meeting {
    options: MeetingOptions,
    /// The script as given; `None` when only `hosts` are present.
    script: Option<Script>,
    /// The script that runs: the given one, or `hosts` present throughout.
    plan: Script,
    cast: Vec<Cast>,
    ended: bool,
    /// Guests: everyone who asked to join.
    participants: Vec<Participant>,
    created: Instant,
    /// The first time any guest was in the call.
    call_started: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Meetings {
    map: Mutex<HashMap<String, Meeting>>,
}

impl Meeting {
    fn new(options: MeetingOptions, script: Option<Script>) -> Self {
        let plan = script.clone().unwrap_or_else(|| Script {
            participants: options
                .hosts
                .iter()
                .take(MAX_PARTICIPANTS)
                .map(|name| ScriptedParticipant {
                    name: clip(name),
                    join_ms: 0,
                    leave_ms: None,
                })
                .collect(),
            ..Script::default()
        });
        let cast = plan
            .participants
            .iter()
            .map(|who| Cast {
                id: new_id(),
                who: who.clone(),
            })
            .collect();
        Meeting {
            options,
            script,
            plan,
            cast,
            ended: false,
            participants: Vec::new(),
            created: Instant::now(),
            call_started: None,
        }
    }

    /// The guest holding this seat.
    fn seat(&mut self, pid: &str, secret: &str) -> Result<&mut Participant, SandboxError> {
        self.participants
            .iter_mut()
            .find(|p| p.id == pid && p.secret == secret)
            .ok_or(SandboxError::NotFound)
    }

    fn elapsed_ms(&self, now: Instant) -> Option<u64> {
        self.call_started
            .map(|t| now.saturating_duration_since(t).as_millis() as u64)
    }

    /// The sandbox's side present now; before the call starts, those there
    /// from its first moment.
    fn cast_present(&self, now: Instant) -> impl Iterator<Item = &Cast> {
        let t = self.elapsed_ms(now).unwrap_or(0);
        self.cast
            .iter()
            .filter(move |c| self.plan.is_present(&c.who, t))
    }

    /// Starts the call's clock the first time a guest is in it.
    fn note_call_start(&mut self, now: Instant) {
        if self.call_started.is_none()
            && self
                .participants
                .iter()
                .any(|p| p.state == ParticipantState::Admitted)
        {
            self.call_started = Some(now);
        }
    }

    /// Applies the host's automatic answers and drops silent pages.
    fn tick(&mut self, now: Instant) {
        let delay = Duration::from_millis(self.options.admit_after_ms);
        for p in self.participants.iter_mut() {
            if p.state == ParticipantState::Lobby && now.duration_since(p.knocked_at) >= delay {
                match self.options.admission {
                    Admission::Admit | Admission::Open => p.state = ParticipantState::Admitted,
                    Admission::Deny => p.state = ParticipantState::Denied,
                    Admission::Never | Admission::Manual => {}
                }
            }
            let silent = now.duration_since(p.last_seen) > PRESENCE_TIMEOUT;
            if silent
                && matches!(
                    p.state,
                    ParticipantState::Lobby | ParticipantState::Admitted
                )
            {
                p.state = ParticipantState::Left;
            }
        }
        self.note_call_start(now);
    }

    /// The sandbox's side present now, then the guests.
    fn participant_views(&self, now: Instant) -> Vec<ParticipantView> {
        let cast = self.cast_present(now).map(|c| ParticipantView {
            id: c.id.clone(),
            name: c.who.name.clone(),
            state: ParticipantState::Admitted,
            host: true,
            uplink: None,
        });
        let guests = self.participants.iter().map(|p| ParticipantView {
            id: p.id.clone(),
            name: p.name.clone(),
            state: p.state,
            host: false,
            uplink: p.uplink,
        });
        cast.chain(guests).collect()
    }

    fn view(&self, id: &str, now: Instant) -> MeetingView {
        MeetingView {
            id: id.to_string(),
            title: self.options.title.clone(),
            missing: self.options.missing,
            ended: self.ended,
            audio: self.options.audio,
            corrupt_frames: self.options.corrupt_frames,
            hang_ms: self.options.hang_ms,
            hang_after_ms: self.options.hang_after_ms,
            device_toggles: self.options.device_toggles,
            overlays: self.options.overlays,
            wall: self.options.wall,
            passcode_required: self.options.passcode.is_some(),
            mix: self.options.mix,
            tiles: self.options.tiles,
            speakers: self.options.speakers,
            script: self.script.clone(),
            clip_ms: speech::CLIPS
                .iter()
                .map(|c| (c.name, c.duration_ms))
                .collect(),
            elapsed_ms: self.elapsed_ms(now),
            participants: self.participant_views(now),
        }
    }
}

/// What one page learns when it polls. Everything but `state` and `ended`
/// is empty (or `None`) until the page is in the call.
#[derive(Debug, Clone, Serialize)]
pub struct SelfView {
    pub state: ParticipantState,
    pub ended: bool,
    /// Milliseconds since the call started.
    pub elapsed_ms: Option<u64>,
    /// Everyone in the call now, this page included.
    pub participants: Vec<ParticipantView>,
    /// The chat so far (its latest messages), oldest first.
    pub chat: Vec<ChatView>,
}

impl Meetings {
    /// Creates a meeting, replacing any with the same id.
    pub(crate) fn create(
        &self,
        id: &str,
        options: MeetingOptions,
        custom_script: Option<Script>,
    ) -> Result<MeetingView, SandboxError> {
        let script = options.resolve_script(custom_script)?;
        let mut map = self.map.lock().expect("sandbox lock");
        if map.len() >= MAX_MEETINGS && !map.contains_key(id) {
            let oldest = map
                .iter()
                .min_by_key(|(_, m)| (!m.ended, m.created))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        let meeting = Meeting::new(options, script);
        let view = meeting.view(id, Instant::now());
        map.insert(id.to_string(), meeting);
        Ok(view)
    }

    /// The meeting, created with `options` on first sight (so a meeting can
    /// be scripted entirely by its URL). Options that cannot be played are
    /// refused even when the meeting exists.
    pub(crate) fn get_or_create(
        &self,
        id: &str,
        options: MeetingOptions,
    ) -> Result<MeetingView, SandboxError> {
        options.resolve_script(None)?;
        {
            let mut map = self.map.lock().expect("sandbox lock");
            if let Some(m) = map.get_mut(id) {
                let now = Instant::now();
                m.tick(now);
                return Ok(m.view(id, now));
            }
        }
        self.create(id, options, None)
    }

    pub(crate) fn view(&self, id: &str) -> Result<MeetingView, SandboxError> {
        self.with(id, |m, now| Ok(m.view(id, now)))
    }

    #[cfg(test)]
    pub(crate) fn knock(&self, id: &str, name: &str) -> Result<(String, String), SandboxError> {
        self.knock_with(id, name, None)
    }

    /// Asks to join, with the passcode the page carries.
    pub(crate) fn knock_with(
        &self,
        id: &str,
        name: &str,
        passcode: Option<&str>,
    ) -> Result<(String, String), SandboxError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(SandboxError::BadName);
        }
        self.with(id, |m, now| {
            if m.options.missing || m.ended {
                return Err(SandboxError::NotFound);
            }
            if m.options.wall != Wall::None {
                return Err(SandboxError::Forbidden);
            }
            if m.options.passcode.is_some() && m.options.passcode.as_deref() != passcode {
                return Err(SandboxError::WrongPasscode);
            }
            let present = m
                .participants
                .iter()
                .filter(|p| {
                    matches!(
                        p.state,
                        ParticipantState::Lobby | ParticipantState::Admitted
                    )
                })
                .count()
                + m.cast_present(now).count();
            if present >= MAX_PARTICIPANTS {
                return Err(SandboxError::Full);
            }
            let state = if m.options.admission == Admission::Open {
                ParticipantState::Admitted
            } else {
                ParticipantState::Lobby
            };
            let p = Participant {
                id: new_id(),
                secret: new_id(),
                name: name.to_string(),
                state,
                knocked_at: now,
                last_seen: now,
                uplink: None,
            };
            let out = (p.id.clone(), p.secret.clone());
            m.participants.push(p);
            // Forget people who left long ago so the list stays bounded.
            if m.participants.len() > 2 * MAX_PARTICIPANTS {
                m.participants.retain(|p| {
                    matches!(
                        p.state,
                        ParticipantState::Lobby | ParticipantState::Admitted
                    )
                });
            }
            Ok(out)
        })
    }

    /// A page's poll: proves presence and returns what it may see.
    pub(crate) fn poll(&self, id: &str, pid: &str, secret: &str) -> Result<SelfView, SandboxError> {
        self.with(id, |m, now| {
            let ended = m.ended;
            let p = m
                .participants
                .iter_mut()
                .find(|p| p.id == pid)
                .ok_or(SandboxError::NotFound)?;
            if p.secret != secret {
                return Err(SandboxError::Forbidden);
            }
            if matches!(
                p.state,
                ParticipantState::Lobby | ParticipantState::Admitted
            ) {
                p.last_seen = now;
            }
            let state = p.state;
            let mut view = SelfView {
                state,
                ended,
                elapsed_ms: None,
                participants: Vec::new(),
                chat: Vec::new(),
            };
            if state == ParticipantState::Admitted {
                let elapsed = m.elapsed_ms(now).unwrap_or(0);
                view.elapsed_ms = Some(elapsed);
                view.participants = m
                    .participant_views(now)
                    .into_iter()
                    .filter(|p| p.state == ParticipantState::Admitted)
                    .collect();
                view.chat = m.plan.chat_until(elapsed, MAX_CHAT_SHOWN);
            }
            Ok(view)
        })
    }

    /// What the sandbox sends an admitted page from outside it
    /// (`speakers=remote`): the speech and the call's clock.
    pub(crate) fn peer_plan(
        &self,
        id: &str,
        pid: &str,
        secret: &str,
    ) -> Result<crate::peer::Plan, SandboxError> {
        self.with(id, |m, now| {
            if m.options.speakers != Speakers::Remote {
                return Err(SandboxError::Invalid(
                    "this meeting's speakers are played in the page (speakers=page)".into(),
                ));
            }
            let p = m.seat(pid, secret)?;
            if p.state != ParticipantState::Admitted {
                return Err(SandboxError::Forbidden);
            }
            Ok(crate::peer::Plan {
                speech: m.plan.speech.clone(),
                repeat_ms: m.plan.repeat_ms,
                call_started: m.call_started.unwrap_or(now),
                muted: m.options.audio == AudioMode::Muted,
            })
        })
    }

    /// Whether a page is still in the call.
    pub(crate) fn in_call(&self, id: &str, pid: &str) -> bool {
        self.with(id, |m, _| {
            Ok(!m.ended
                && m.participants
                    .iter()
                    .any(|p| p.id == pid && p.state == ParticipantState::Admitted))
        })
        .unwrap_or(false)
    }

    /// A page's report of what it sends.
    pub(crate) fn report_uplink(
        &self,
        id: &str,
        pid: &str,
        secret: &str,
        report: Uplink,
    ) -> Result<(), SandboxError> {
        self.with(id, |m, _| {
            m.seat(pid, secret)?
                .uplink
                .get_or_insert_default()
                .merge(report);
            Ok(())
        })
    }

    pub(crate) fn leave(&self, id: &str, pid: &str, secret: &str) -> Result<(), SandboxError> {
        self.with(id, |m, _| {
            m.seat(pid, secret)?.state = ParticipantState::Left;
            Ok(())
        })
    }

    /// The host's hand: admit, deny or remove everyone called `name`.
    pub(crate) fn set_state(
        &self,
        id: &str,
        name: &str,
        from: &[ParticipantState],
        to: ParticipantState,
    ) -> Result<usize, SandboxError> {
        self.with(id, |m, _| {
            let mut n = 0;
            for p in m
                .participants
                .iter_mut()
                .filter(|p| p.name == name && from.contains(&p.state))
            {
                p.state = to;
                n += 1;
            }
            if n == 0 {
                Err(SandboxError::NotFound)
            } else {
                Ok(n)
            }
        })
    }

    pub(crate) fn end(&self, id: &str) -> Result<(), SandboxError> {
        self.with(id, |m, _| {
            m.ended = true;
            Ok(())
        })
    }

    fn with<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Meeting, Instant) -> Result<T, SandboxError>,
    ) -> Result<T, SandboxError> {
        let mut map = self.map.lock().expect("sandbox lock");
        let m = map.get_mut(id).ok_or(SandboxError::NotFound)?;
        let now = Instant::now();
        m.tick(now);
        let out = f(m, now);
        m.note_call_start(now);
        out
    }
}

fn clip(name: &str) -> String {
    name.chars().take(MAX_NAME_CHARS).collect()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests;
