//! Scripts: who else is in a meeting, when they join and leave, what they
//! say and what they write in the chat.
//!
//! Times are milliseconds since the call starts: the first moment any guest
//! (someone who asked to join) is in the call. With `repeat_ms`, speech,
//! chat and every bounded presence (`join_ms..leave_ms`) repeat with that
//! period; a participant with no `leave_ms` joins once and stays.

use serde::{Deserialize, Serialize};

use crate::speech;

pub const MAX_SCRIPTED_PARTICIPANTS: usize = 20;
pub const MAX_UTTERANCES: usize = 200;
pub const MAX_CHAT_MESSAGES: usize = 200;
pub const MAX_CHAT_CHARS: usize = 2000;
pub const MAX_NAME_CHARS: usize = 256;
/// Latest time a script may name: one day.
pub const MAX_SCRIPT_MS: u64 = 24 * 60 * 60 * 1000;
/// Shortest period of a repeating script.
pub const MIN_REPEAT_MS: u64 = 1000;

/// The built-in scripts, chosen with `?script=<name>`.
pub const BUILTIN_SCRIPTS: &[&str] = &["demo", "demo-loop", "empty", "leaves", "quiet"];

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub participants: Vec<ScriptedParticipant>,
    #[serde(default)]
    pub speech: Vec<Utterance>,
    #[serde(default)]
    pub chat: Vec<ScriptedChat>,
    #[serde(default)]
    pub repeat_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedParticipant {
    pub name: String,
    #[serde(default)]
    pub join_ms: u64,
    #[serde(default)]
    pub leave_ms: Option<u64>,
}

/// `speaker` says `clip` at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utterance {
    /// A participant's name.
    pub speaker: String,
    pub at_ms: u64,
    /// A clip served at `/media/<clip>.ogg`.
    pub clip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedChat {
    pub sender: String,
    pub at_ms: u64,
    pub text: String,
}

/// A chat message as a page sees it. The id is stable: the same message of
/// the same repetition always has the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatView {
    pub id: String,
    pub sender: String,
    pub text: String,
    /// When it was sent, in milliseconds since the call started.
    pub at_ms: u64,
}

fn person(name: &str, join_ms: u64, leave_ms: Option<u64>) -> ScriptedParticipant {
    ScriptedParticipant {
        name: name.into(),
        join_ms,
        leave_ms,
    }
}

fn say(speaker: &str, at_ms: u64, clip: &str) -> Utterance {
    Utterance {
        speaker: speaker.into(),
        at_ms,
        clip: clip.into(),
    }
}

impl Script {
    /// A built-in script by name.
    pub fn builtin(name: &str) -> Option<Script> {
        let script = match name {
            "demo" => Script {
                participants: vec![
                    person("Alice", 0, None),
                    person("Bob", 0, None),
                    person("Carol", 2500, Some(9000)),
                ],
                speech: vec![say("Alice", 1000, "alice-1"), say("Bob", 5000, "bob-1")],
                chat: vec![ScriptedChat {
                    sender: "Bob".into(),
                    at_ms: 4000,
                    text: "Notes are in the shared doc.".into(),
                }],
                repeat_ms: None,
            },
            "demo-loop" => Script {
                participants: vec![
                    person("Alice", 0, None),
                    person("Bob", 0, None),
                    person("Carol", 2500, Some(12000)),
                ],
                speech: vec![
                    say("Alice", 1000, "alice-1"),
                    say("Bob", 5000, "bob-1"),
                    say("Carol", 9000, "carol-1"),
                    say("Alice", 12500, "alice-2"),
                ],
                chat: vec![ScriptedChat {
                    sender: "Bob".into(),
                    at_ms: 4000,
                    text: "Notes are in the shared doc.".into(),
                }],
                repeat_ms: Some(20000),
            },
            "empty" => Script::default(),
            "leaves" => Script {
                participants: vec![person("Host", 0, Some(2000))],
                ..Script::default()
            },
            "quiet" => Script {
                participants: vec![person("Alice", 0, None), person("Bob", 0, None)],
                ..Script::default()
            },
            _ => return None,
        };
        Some(script)
    }

    /// Checks a script's bounds and references, and puts its speech and
    /// chat in time order.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.participants.len() > MAX_SCRIPTED_PARTICIPANTS {
            return Err(format!(
                "A script has at most {MAX_SCRIPTED_PARTICIPANTS} participants"
            ));
        }
        if self.speech.len() > MAX_UTTERANCES {
            return Err(format!("A script has at most {MAX_UTTERANCES} utterances"));
        }
        if self.chat.len() > MAX_CHAT_MESSAGES {
            return Err(format!(
                "A script has at most {MAX_CHAT_MESSAGES} chat messages"
            ));
        }
        let repeat = self.repeat_ms;
        if let Some(r) = repeat
            && !(MIN_REPEAT_MS..=MAX_SCRIPT_MS).contains(&r)
        {
            return Err(format!(
                "repeat_ms must be {MIN_REPEAT_MS} to {MAX_SCRIPT_MS}"
            ));
        }
        // Everything a repeating script does happens within one period.
        let limit = repeat.unwrap_or(MAX_SCRIPT_MS);
        let within = |what: &str, t: u64, inclusive: bool| {
            let ok = if inclusive { t <= limit } else { t < limit };
            if ok {
                Ok(())
            } else if repeat.is_some() {
                Err(format!("{what} ({t} ms) falls outside repeat_ms ({limit})"))
            } else {
                Err(format!("{what} ({t} ms) is later than {MAX_SCRIPT_MS} ms"))
            }
        };
        for (i, p) in self.participants.iter().enumerate() {
            check_name("participant name", &p.name)?;
            if self.participants[..i].iter().any(|o| o.name == p.name) {
                return Err(format!("Participant name \"{}\" appears twice", p.name));
            }
            within(&format!("{}'s join_ms", p.name), p.join_ms, false)?;
            if let Some(leave) = p.leave_ms {
                if leave <= p.join_ms {
                    return Err(format!("{}'s leave_ms must be after join_ms", p.name));
                }
                within(&format!("{}'s leave_ms", p.name), leave, true)?;
            }
        }
        for u in &self.speech {
            let Some(p) = self.participants.iter().find(|p| p.name == u.speaker) else {
                return Err(format!(
                    "Speaker \"{}\" is not one of the script's participants",
                    u.speaker
                ));
            };
            let Some(clip) = speech::clip(&u.clip) else {
                let known: Vec<&str> = speech::CLIPS.iter().map(|c| c.name).collect();
                return Err(format!(
                    "Unknown clip \"{}\" (known clips: {})",
                    u.clip,
                    known.join(", ")
                ));
            };
            within(&format!("{}'s utterance", u.speaker), u.at_ms, false)?;
            let end = u.at_ms + clip.duration_ms;
            within(&format!("The end of {}'s {}", u.speaker, u.clip), end, true)?;
            if u.at_ms < p.join_ms || p.leave_ms.is_some_and(|l| end > l) {
                return Err(format!(
                    "{} is not in the meeting for all of {} ({}..{} ms)",
                    u.speaker, u.clip, u.at_ms, end
                ));
            }
        }
        for c in &self.chat {
            check_name("chat sender", &c.sender)?;
            if c.text.is_empty() || c.text.chars().count() > MAX_CHAT_CHARS {
                return Err(format!(
                    "Chat text must be 1 to {MAX_CHAT_CHARS} characters"
                ));
            }
            within("A chat message", c.at_ms, false)?;
        }
        self.speech.sort_by_key(|u| u.at_ms);
        self.chat.sort_by_key(|c| c.at_ms);
        Ok(())
    }

    /// Whether `p` is in the meeting `t` ms after the call started.
    pub fn is_present(&self, p: &ScriptedParticipant, t: u64) -> bool {
        match (p.leave_ms, self.repeat_ms) {
            (None, _) => t >= p.join_ms,
            (Some(leave), None) => p.join_ms <= t && t < leave,
            (Some(leave), Some(r)) => {
                let t = t % r;
                p.join_ms <= t && t < leave
            }
        }
    }

    /// The chat as of `t` ms after the call started: the latest `max`
    /// messages sent by then, oldest first.
    pub fn chat_until(&self, t: u64, max: usize) -> Vec<ChatView> {
        let mut out = Vec::new();
        let rounds = match self.repeat_ms {
            Some(r) => t / r,
            None => 0,
        };
        'rounds: for k in (0..=rounds).rev() {
            let offset = k * self.repeat_ms.unwrap_or(0);
            for (i, c) in self.chat.iter().enumerate().rev() {
                let at_ms = offset + c.at_ms;
                if at_ms > t {
                    continue;
                }
                if out.len() == max {
                    break 'rounds;
                }
                out.push(ChatView {
                    id: format!("chat-{k}-{i}"),
                    sender: c.sender.clone(),
                    text: c.text.clone(),
                    at_ms,
                });
            }
            if self.chat.is_empty() {
                break;
            }
        }
        out.reverse();
        out
    }
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        Err(format!(
            "Each {what} must be 1 to {MAX_NAME_CHARS} characters"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Script {
        let mut s = Script::builtin("demo").unwrap();
        s.validate().unwrap();
        s
    }

    fn present(s: &Script, t: u64) -> Vec<&str> {
        s.participants
            .iter()
            .filter(|p| s.is_present(p, t))
            .map(|p| p.name.as_str())
            .collect()
    }

    #[test]
    fn builtins_are_valid() {
        for name in BUILTIN_SCRIPTS {
            let mut s = Script::builtin(name).unwrap();
            let before = s.clone();
            s.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s, before, "{name} is already in time order");
        }
        assert!(Script::builtin("nope").is_none());
    }

    #[test]
    fn roster_follows_joins_and_leaves() {
        let s = demo();
        assert_eq!(present(&s, 0), ["Alice", "Bob"]);
        assert_eq!(present(&s, 2499), ["Alice", "Bob"]);
        assert_eq!(present(&s, 2500), ["Alice", "Bob", "Carol"]);
        assert_eq!(present(&s, 8999), ["Alice", "Bob", "Carol"]);
        assert_eq!(present(&s, 9000), ["Alice", "Bob"]);
        assert_eq!(present(&s, 1_000_000), ["Alice", "Bob"]);

        let mut leaves = Script::builtin("leaves").unwrap();
        leaves.validate().unwrap();
        assert_eq!(present(&leaves, 1999), ["Host"]);
        assert!(present(&leaves, 2000).is_empty());
    }

    #[test]
    fn repeating_presence_repeats_only_bounded_stays() {
        let mut s = Script::builtin("demo-loop").unwrap();
        s.validate().unwrap();
        assert_eq!(present(&s, 11_999), ["Alice", "Bob", "Carol"]);
        assert_eq!(present(&s, 12_000), ["Alice", "Bob"]);
        assert_eq!(present(&s, 20_000), ["Alice", "Bob"]);
        assert_eq!(present(&s, 22_500), ["Alice", "Bob", "Carol"]);
        // Someone who joins late and never leaves stays through later rounds.
        let late = person("Dan", 3000, None);
        assert!(!s.is_present(&late, 2999));
        assert!(s.is_present(&late, 20_500));
    }

    #[test]
    fn chat_ids_are_stable_and_ordered() {
        let mut s = Script {
            participants: vec![person("Alice", 0, None)],
            chat: vec![
                ScriptedChat {
                    sender: "Alice".into(),
                    at_ms: 3000,
                    text: "second".into(),
                },
                ScriptedChat {
                    sender: "Alice".into(),
                    at_ms: 1000,
                    text: "first".into(),
                },
            ],
            ..Script::default()
        };
        s.validate().unwrap();
        assert!(s.chat_until(999, 200).is_empty());
        let one = s.chat_until(1000, 200);
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].text.as_str(), one[0].at_ms), ("first", 1000));
        let two = s.chat_until(5000, 200);
        assert_eq!(two[0], one[0], "an earlier message keeps its id");
        assert_eq!(two[1].text, "second");
        assert_ne!(two[0].id, two[1].id);
        assert_eq!(s.chat_until(1_000_000, 200), two, "no repeat: sent once");
    }

    #[test]
    fn repeated_chat_gets_new_ids_and_stays_bounded() {
        let mut s = Script::builtin("demo-loop").unwrap();
        s.validate().unwrap();
        let first = s.chat_until(4000, 200);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].text, "Notes are in the shared doc.");
        assert_eq!(first[0].sender, "Bob");
        assert_eq!(s.chat_until(23_999, 200), first);
        let later = s.chat_until(24_000, 200);
        assert_eq!(later.len(), 2);
        assert_eq!(later[0], first[0]);
        assert_eq!(later[1].at_ms, 24_000);
        assert_ne!(later[1].id, first[0].id);
        // A day of repeats: only the latest messages, still in order.
        let day = s.chat_until(MAX_SCRIPT_MS, 200);
        assert_eq!(day.len(), 200);
        assert!(day.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        assert_eq!(
            day[199].at_ms,
            4000 + 20_000 * ((MAX_SCRIPT_MS - 4000) / 20_000)
        );
    }

    #[test]
    fn validation_explains_what_is_wrong() {
        let err = |mut s: Script| s.validate().unwrap_err();
        let base = || Script {
            participants: vec![person("Alice", 0, None), person("Bob", 1000, Some(5000))],
            ..Script::default()
        };

        let mut s = base();
        s.speech.push(say("Alice", 0, "nope"));
        assert!(err(s).contains("Unknown clip \"nope\""));

        let mut s = base();
        s.speech.push(say("Zed", 0, "alice-1"));
        assert!(err(s).contains("Speaker \"Zed\" is not one of"));

        let mut s = base();
        s.speech.push(say("Bob", 500, "bob-1"));
        assert!(
            err(s).contains("Bob is not in the meeting"),
            "before joining"
        );
        let mut s = base();
        s.speech.push(say("Bob", 2000, "bob-1"));
        assert!(err(s).contains("Bob is not in the meeting"), "past leaving");
        let mut s = base();
        s.speech.push(say("Bob", 1000, "bob-1"));
        s.validate().unwrap();

        let mut s = base();
        s.participants = (0..21).map(|i| person(&format!("P{i}"), 0, None)).collect();
        assert!(err(s).contains("at most 20 participants"));

        let mut s = base();
        s.speech = (0..201).map(|_| say("Alice", 0, "alice-1")).collect();
        assert!(err(s).contains("at most 200 utterances"));

        let chat = |text: String| ScriptedChat {
            sender: "Alice".into(),
            at_ms: 0,
            text,
        };
        let mut s = base();
        s.chat = (0..201).map(|_| chat("hi".into())).collect();
        assert!(err(s).contains("at most 200 chat messages"));
        let mut s = base();
        s.chat.push(chat("x".repeat(2001)));
        assert!(err(s).contains("1 to 2000 characters"));
        let mut s = base();
        s.chat.push(chat("x".repeat(2000)));
        s.validate().unwrap();

        let mut s = base();
        s.participants.push(person("Alice", 0, None));
        assert!(err(s).contains("appears twice"));

        let mut s = base();
        s.participants.push(person("Cy", 3000, Some(3000)));
        assert!(err(s).contains("leave_ms must be after join_ms"));

        let mut s = base();
        s.participants.push(person("  ", 0, None));
        assert!(err(s).contains("participant name must be 1 to 256"));

        let mut s = base();
        s.repeat_ms = Some(4000);
        assert!(err(s).contains("outside repeat_ms"), "Bob leaves at 5000");
        let mut s = base();
        s.repeat_ms = Some(10);
        assert!(err(s).contains("repeat_ms must be"));
    }
}
