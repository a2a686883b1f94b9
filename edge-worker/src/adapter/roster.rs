//! Who is in the meeting, who speaks, and what is said in the chat, from
//! successive reads of the page. Turns snapshots into events: joins and
//! leaves, speaking starts and stops, new chat messages. Page lists flicker
//! (virtualised rosters, pulsing speaking indicators), so a departure or a
//! pause counts only once it has lasted a few reads, and is dated from the
//! first read that missed it.

use std::collections::{HashMap, HashSet, VecDeque};

use attache_protocol::{MAX_CHAT_CHARS, MAX_NAME_CHARS, ResultBody};
use serde::Deserialize;

/// Reads a person must be missing before they count as gone.
const LEAVE_AFTER_READS: u32 = 3;
/// Reads a speaker must be quiet before their turn counts as over.
const QUIET_AFTER_READS: u32 = 2;
/// Chat message ids remembered, to report each message once.
const CHAT_MEMORY: usize = 10_000;
/// Most people tracked at once.
const MAX_PEOPLE: usize = 1_000;

/// One roster entry as the probe read it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct Person {
    pub id: String,
    pub name: String,
    #[serde(rename = "self")]
    pub is_self: bool,
    pub speaking: bool,
}

/// One chat message as the probe read it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct ChatLine {
    pub id: String,
    pub sender: String,
    pub text: String,
}

struct Present {
    missing: u32,
    missing_since: i64,
}

struct Speaking {
    quiet: u32,
    quiet_since: i64,
}

#[derive(Default)]
pub(crate) struct Roster {
    present: HashMap<String, Present>,
    speaking: HashMap<String, Speaking>,
    chat_seen: HashSet<String>,
    chat_order: VecDeque<String>,
    /// Someone other than the bot has been seen since it entered.
    pub others_seen: bool,
    /// The roster could be read at all (the bot's own entry, or anyone's).
    pub readable: bool,
}

fn clip(s: &str, max: usize) -> String {
    s.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

impl Roster {
    /// People other than the bot present now.
    pub(crate) fn others(&self) -> usize {
        self.present.len()
    }

    pub(crate) fn anyone_speaking(&self) -> bool {
        !self.speaking.is_empty()
    }

    /// Takes one read of the page at `at_ms`; returns the events it implies.
    pub(crate) fn observe(
        &mut self,
        at_ms: i64,
        people: &[Person],
        chat: &[ChatLine],
    ) -> Vec<(i64, ResultBody)> {
        let mut out = Vec::new();
        if !people.is_empty() {
            self.readable = true;
        }
        let mut now_here: HashMap<String, (&Person, String)> = HashMap::new();
        for p in people.iter().filter(|p| !p.is_self) {
            let name = clip(&p.name, MAX_NAME_CHARS);
            let id = clip(
                if p.id.trim().is_empty() {
                    &p.name
                } else {
                    &p.id
                },
                MAX_NAME_CHARS,
            );
            if id.is_empty() || name.is_empty() || now_here.len() >= MAX_PEOPLE {
                continue;
            }
            now_here.insert(id, (p, name));
        }
        // Arrivals, and the return of someone briefly missing.
        for (id, (_, name)) in &now_here {
            match self.present.get_mut(id) {
                Some(p) => p.missing = 0,
                None => {
                    self.present.insert(
                        id.clone(),
                        Present {
                            missing: 0,
                            missing_since: at_ms,
                        },
                    );
                    self.others_seen = true;
                    out.push((
                        at_ms,
                        ResultBody::ParticipantJoined {
                            participant_id: id.clone(),
                            name: name.clone(),
                        },
                    ));
                }
            }
        }
        // Departures.
        let mut gone = Vec::new();
        for (id, p) in self.present.iter_mut() {
            if now_here.contains_key(id) {
                continue;
            }
            if p.missing == 0 {
                p.missing_since = at_ms;
            }
            p.missing += 1;
            if p.missing >= LEAVE_AFTER_READS {
                gone.push((id.clone(), p.missing_since));
            }
        }
        for (id, since) in &gone {
            self.present.remove(id);
            if self.speaking.remove(id).is_some() {
                out.push((
                    *since,
                    ResultBody::SpeakerStopped {
                        participant_id: id.clone(),
                    },
                ));
            }
            out.push((
                *since,
                ResultBody::ParticipantLeft {
                    participant_id: id.clone(),
                },
            ));
        }
        // Speaking turns.
        for (id, (p, name)) in &now_here {
            if !p.speaking {
                continue;
            }
            match self.speaking.get_mut(id) {
                Some(s) => s.quiet = 0,
                None => {
                    self.speaking.insert(
                        id.clone(),
                        Speaking {
                            quiet: 0,
                            quiet_since: at_ms,
                        },
                    );
                    out.push((
                        at_ms,
                        ResultBody::SpeakerStarted {
                            participant_id: id.clone(),
                            name: name.clone(),
                        },
                    ));
                }
            }
        }
        let mut stopped = Vec::new();
        for (id, s) in self.speaking.iter_mut() {
            let still = now_here.get(id).is_some_and(|(p, _)| p.speaking);
            if still {
                continue;
            }
            if s.quiet == 0 {
                s.quiet_since = at_ms;
            }
            s.quiet += 1;
            if s.quiet >= QUIET_AFTER_READS {
                stopped.push((id.clone(), s.quiet_since));
            }
        }
        for (id, since) in stopped {
            self.speaking.remove(&id);
            out.push((since, ResultBody::SpeakerStopped { participant_id: id }));
        }
        // Chat.
        for line in chat {
            let sender = clip(&line.sender, MAX_NAME_CHARS);
            let id = clip(&line.id, MAX_NAME_CHARS);
            if id.is_empty() || sender.is_empty() || self.chat_seen.contains(&id) {
                continue;
            }
            if self.chat_order.len() >= CHAT_MEMORY
                && let Some(old) = self.chat_order.pop_front()
            {
                self.chat_seen.remove(&old);
            }
            self.chat_seen.insert(id.clone());
            self.chat_order.push_back(id.clone());
            out.push((
                at_ms,
                ResultBody::Chat {
                    message_id: id,
                    sender,
                    text: line.text.chars().take(MAX_CHAT_CHARS).collect(),
                },
            ));
        }
        out
    }

    /// The bot is leaving: close every open speaking turn at `at_ms`.
    pub(crate) fn close(&mut self, at_ms: i64) -> Vec<(i64, ResultBody)> {
        self.speaking
            .drain()
            .map(|(id, _)| (at_ms, ResultBody::SpeakerStopped { participant_id: id }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, name: &str, speaking: bool) -> Person {
        Person {
            id: id.into(),
            name: name.into(),
            is_self: false,
            speaking,
        }
    }

    fn me() -> Person {
        Person {
            id: "me".into(),
            name: "Bot".into(),
            is_self: true,
            speaking: false,
        }
    }

    #[test]
    fn joins_leaves_and_the_bot_itself() {
        let mut r = Roster::default();
        let ev = r.observe(0, &[me()], &[]);
        assert!(
            ev.is_empty() && r.readable && !r.others_seen,
            "the bot is not a participant"
        );
        let ev = r.observe(100, &[me(), person("a", "Alice", false)], &[]);
        assert_eq!(
            ev,
            vec![(
                100,
                ResultBody::ParticipantJoined {
                    participant_id: "a".into(),
                    name: "Alice".into()
                }
            )]
        );
        assert_eq!(r.others(), 1);
        // Missing for one read (a flicker) is not leaving.
        assert!(r.observe(200, &[me()], &[]).is_empty());
        assert!(
            r.observe(300, &[me(), person("a", "Alice", false)], &[])
                .is_empty()
        );
        // Missing for three reads is, dated from the first.
        r.observe(400, &[me()], &[]);
        r.observe(500, &[me()], &[]);
        let ev = r.observe(600, &[me()], &[]);
        assert_eq!(
            ev,
            vec![(
                400,
                ResultBody::ParticipantLeft {
                    participant_id: "a".into()
                }
            )]
        );
        assert_eq!(r.others(), 0);
        assert!(r.others_seen);
    }

    #[test]
    fn speaking_turns_are_debounced_and_dated() {
        let mut r = Roster::default();
        let alice = |s| [me(), person("a", "Alice", s), person("b", "Bob", false)];
        r.observe(0, &alice(false), &[]);
        let ev = r.observe(200, &alice(true), &[]);
        assert!(ev.contains(&(
            200,
            ResultBody::SpeakerStarted {
                participant_id: "a".into(),
                name: "Alice".into()
            }
        )));
        assert!(r.anyone_speaking());
        // One quiet read (a pulse of the indicator) does not end the turn.
        assert!(r.observe(400, &alice(false), &[]).is_empty());
        assert!(r.observe(600, &alice(true), &[]).is_empty());
        r.observe(800, &alice(false), &[]);
        let ev = r.observe(1000, &alice(false), &[]);
        assert_eq!(
            ev,
            vec![(
                800,
                ResultBody::SpeakerStopped {
                    participant_id: "a".into()
                }
            )]
        );
        assert!(!r.anyone_speaking());
    }

    #[test]
    fn chat_is_reported_once_and_bounded() {
        let mut r = Roster::default();
        let line = |id: &str, text: &str| ChatLine {
            id: id.into(),
            sender: "Bob".into(),
            text: text.into(),
        };
        let ev = r.observe(0, &[], &[line("1", "hi")]);
        assert_eq!(ev.len(), 1);
        assert!(
            r.observe(100, &[], &[line("1", "hi"), line("2", "there")])
                .len()
                == 1
        );
        let long = "x".repeat(MAX_CHAT_CHARS + 10);
        let ev = r.observe(200, &[], &[line("3", &long), line("", "no id")]);
        match &ev[..] {
            [(_, ResultBody::Chat { text, .. })] => {
                assert_eq!(text.chars().count(), MAX_CHAT_CHARS)
            }
            other => panic!("{other:?}"),
        }
        for i in 0..CHAT_MEMORY + 5 {
            r.observe(300, &[], &[line(&format!("m{i}"), "x")]);
        }
        assert!(r.chat_seen.len() <= CHAT_MEMORY && r.chat_order.len() <= CHAT_MEMORY);
    }

    #[test]
    fn names_are_cleaned_and_ids_fall_back_to_names() {
        let mut r = Roster::default();
        let ev = r.observe(0, &[person("", " Zoë\u{0007} ", false)], &[]);
        assert_eq!(
            ev,
            vec![(
                0,
                ResultBody::ParticipantJoined {
                    participant_id: "Zoë".into(),
                    name: "Zoë".into()
                }
            )]
        );
    }
}
