//! Meetings, their participants and the host's admission behaviour.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Most meetings one sandbox keeps; the oldest ended ones go first.
const MAX_MEETINGS: usize = 1_000;
/// Most people (in the call and in the lobby) one meeting admits.
const MAX_PARTICIPANTS: usize = 100;
const MAX_NAME_CHARS: usize = 256;
/// A page that stops polling for this long has left (its tab was closed or
/// its browser died), as a real platform notices a dropped peer.
const PRESENCE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the sandbox's host answers someone who asks to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Admission {
    /// Let everyone in after `admit_after_ms`.
    #[default]
    Admit,
    /// Refuse everyone after `admit_after_ms`.
    Deny,
    /// Never answer.
    Never,
    /// Wait for the control API to admit or deny.
    Manual,
    /// No lobby: join straight into the call.
    Open,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MeetingOptions {
    pub title: String,
    pub admission: Admission,
    pub admit_after_ms: u64,
    /// The meeting does not exist: the page shows "Meeting not found".
    pub missing: bool,
    /// Names of the people already in the call.
    pub hosts: Vec<String>,
    /// The hosts take turns speaking (a tone each), delivered to every
    /// admitted page as a remote `RTCPeerConnection` audio track.
    pub speech: bool,
}

impl Default for MeetingOptions {
    fn default() -> Self {
        MeetingOptions {
            title: "Sandbox meeting".into(),
            admission: Admission::Admit,
            admit_after_ms: 500,
            missing: false,
            hosts: vec!["Host".into()],
            speech: false,
        }
    }
}

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
    pub host: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MeetingView {
    pub id: String,
    pub title: String,
    pub speech: bool,
    pub missing: bool,
    pub ended: bool,
    pub participants: Vec<ParticipantView>,
}

#[derive(Debug)]
pub enum SandboxError {
    NotFound,
    Full,
    BadName,
    Forbidden,
}

struct Participant {
    id: String,
    secret: String,
    name: String,
    host: bool,
    state: ParticipantState,
    knocked_at: Instant,
    last_seen: Instant,
}

struct Meeting {
    options: MeetingOptions,
    ended: bool,
    participants: Vec<Participant>,
    created: Instant,
}

#[derive(Default)]
pub(crate) struct Meetings {
    map: Mutex<HashMap<String, Meeting>>,
}

impl Meeting {
    fn new(options: MeetingOptions) -> Self {
        let now = Instant::now();
        let participants = options
            .hosts
            .iter()
            .take(MAX_PARTICIPANTS)
            .map(|name| Participant {
                id: new_id(),
                secret: String::new(),
                name: clip(name),
                host: true,
                state: ParticipantState::Admitted,
                knocked_at: now,
                last_seen: now,
            })
            .collect();
        Meeting {
            options,
            ended: false,
            participants,
            created: now,
        }
    }

    /// Applies the host's automatic answers and drops silent pages.
    fn tick(&mut self, now: Instant) {
        let delay = Duration::from_millis(self.options.admit_after_ms);
        for p in self.participants.iter_mut().filter(|p| !p.host) {
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
    }

    fn view(&self, id: &str) -> MeetingView {
        MeetingView {
            id: id.to_string(),
            title: self.options.title.clone(),
            speech: self.options.speech,
            missing: self.options.missing,
            ended: self.ended,
            participants: self
                .participants
                .iter()
                .map(|p| ParticipantView {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    state: p.state,
                    host: p.host,
                })
                .collect(),
        }
    }
}

/// What one page learns when it polls.
#[derive(Debug, Clone, Serialize)]
pub struct SelfView {
    pub state: ParticipantState,
    pub ended: bool,
    pub participants: Vec<ParticipantView>,
}

impl Meetings {
    /// Creates a meeting, replacing any with the same id.
    pub(crate) fn create(
        &self,
        id: &str,
        options: MeetingOptions,
    ) -> Result<MeetingView, SandboxError> {
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
        let meeting = Meeting::new(options);
        let view = meeting.view(id);
        map.insert(id.to_string(), meeting);
        Ok(view)
    }

    /// The meeting, created with `options` on first sight (so a meeting can
    /// be scripted entirely by its URL).
    pub(crate) fn get_or_create(&self, id: &str, options: MeetingOptions) -> MeetingView {
        {
            let mut map = self.map.lock().expect("sandbox lock");
            if let Some(m) = map.get_mut(id) {
                m.tick(Instant::now());
                return m.view(id);
            }
        }
        self.create(id, options).expect("create never fails")
    }

    pub(crate) fn view(&self, id: &str) -> Result<MeetingView, SandboxError> {
        self.with(id, |m| Ok(m.view(id)))
    }

    pub(crate) fn knock(&self, id: &str, name: &str) -> Result<(String, String), SandboxError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(SandboxError::BadName);
        }
        self.with(id, |m| {
            if m.options.missing || m.ended {
                return Err(SandboxError::NotFound);
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
                .count();
            if present >= MAX_PARTICIPANTS {
                return Err(SandboxError::Full);
            }
            let now = Instant::now();
            let state = if m.options.admission == Admission::Open {
                ParticipantState::Admitted
            } else {
                ParticipantState::Lobby
            };
            let p = Participant {
                id: new_id(),
                secret: new_id(),
                name: name.to_string(),
                host: false,
                state,
                knocked_at: now,
                last_seen: now,
            };
            let out = (p.id.clone(), p.secret.clone());
            m.participants.push(p);
            // Forget people who left long ago so the list stays bounded.
            if m.participants.len() > 2 * MAX_PARTICIPANTS {
                m.participants.retain(|p| {
                    p.host
                        || matches!(
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
        self.with(id, |m| {
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
                p.last_seen = Instant::now();
            }
            let state = p.state;
            let participants = if state == ParticipantState::Admitted {
                m.view(id)
                    .participants
                    .into_iter()
                    .filter(|p| p.state == ParticipantState::Admitted)
                    .collect()
            } else {
                Vec::new()
            };
            Ok(SelfView {
                state,
                ended,
                participants,
            })
        })
    }

    pub(crate) fn leave(&self, id: &str, pid: &str, secret: &str) -> Result<(), SandboxError> {
        self.with(id, |m| {
            let p = m
                .participants
                .iter_mut()
                .find(|p| p.id == pid && p.secret == secret)
                .ok_or(SandboxError::NotFound)?;
            p.state = ParticipantState::Left;
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
        self.with(id, |m| {
            let mut n = 0;
            for p in m
                .participants
                .iter_mut()
                .filter(|p| !p.host && p.name == name && from.contains(&p.state))
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
        self.with(id, |m| {
            m.ended = true;
            Ok(())
        })
    }

    fn with<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Meeting) -> Result<T, SandboxError>,
    ) -> Result<T, SandboxError> {
        let mut map = self.map.lock().expect("sandbox lock");
        let m = map.get_mut(id).ok_or(SandboxError::NotFound)?;
        m.tick(Instant::now());
        f(m)
    }
}

fn clip(name: &str) -> String {
    name.chars().take(MAX_NAME_CHARS).collect()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meeting(admission: Admission) -> (Meetings, String) {
        let ms = Meetings::default();
        let opts = MeetingOptions {
            admission,
            admit_after_ms: 0,
            ..Default::default()
        };
        ms.create("m1", opts).unwrap();
        (ms, "m1".into())
    }

    #[test]
    fn admit_deny_never() {
        for (admission, want) in [
            (Admission::Admit, ParticipantState::Admitted),
            (Admission::Open, ParticipantState::Admitted),
            (Admission::Deny, ParticipantState::Denied),
            (Admission::Never, ParticipantState::Lobby),
            (Admission::Manual, ParticipantState::Lobby),
        ] {
            let (ms, id) = meeting(admission);
            let (pid, secret) = ms.knock(&id, "Bot").unwrap();
            assert_eq!(
                ms.poll(&id, &pid, &secret).unwrap().state,
                want,
                "{admission:?}"
            );
        }
    }

    #[test]
    fn host_admits_then_removes() {
        let (ms, id) = meeting(Admission::Manual);
        let (pid, secret) = ms.knock(&id, "Bot").unwrap();
        ms.set_state(
            &id,
            "Bot",
            &[ParticipantState::Lobby],
            ParticipantState::Admitted,
        )
        .unwrap();
        let v = ms.poll(&id, &pid, &secret).unwrap();
        assert_eq!(v.state, ParticipantState::Admitted);
        assert_eq!(v.participants.len(), 2, "host and bot");
        ms.set_state(
            &id,
            "Bot",
            &[ParticipantState::Admitted],
            ParticipantState::Removed,
        )
        .unwrap();
        assert_eq!(
            ms.poll(&id, &pid, &secret).unwrap().state,
            ParticipantState::Removed
        );
    }

    #[test]
    fn wrong_secret_and_bad_names_are_refused() {
        let (ms, id) = meeting(Admission::Admit);
        let (pid, _) = ms.knock(&id, "Bot").unwrap();
        assert!(matches!(
            ms.poll(&id, &pid, "nope"),
            Err(SandboxError::Forbidden)
        ));
        assert!(matches!(ms.knock(&id, "   "), Err(SandboxError::BadName)));
        assert!(matches!(
            ms.knock(&id, &"x".repeat(300)),
            Err(SandboxError::BadName)
        ));
        assert!(matches!(
            ms.knock("nope", "Bot"),
            Err(SandboxError::NotFound)
        ));
    }

    #[test]
    fn ended_and_missing_meetings_refuse_knocks() {
        let (ms, id) = meeting(Admission::Admit);
        ms.end(&id).unwrap();
        assert!(ms.knock(&id, "Bot").is_err());
        ms.create(
            "gone",
            MeetingOptions {
                missing: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(ms.knock("gone", "Bot").is_err());
    }
}
