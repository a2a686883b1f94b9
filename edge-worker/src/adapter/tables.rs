//! What each platform's page looks like: selectors and texts as data, one
//! table per platform, so a platform release that renames a button is a
//! one-line change here. Texts are matched case-insensitively, with
//! typographic apostrophes folded to plain ones.

use attache_protocol::Platform;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct Table {
    /// Inputs for the bot's display name (first visible wins).
    pub name_inputs: &'static [&'static str],
    /// Labels of the buttons that ask to join or join; raced, first visible wins.
    pub join_buttons: &'static [&'static str],
    /// Buttons to click before joining, when present (e.g. "Continue on
    /// this browser", a cookie banner's); clicked first, they may cover
    /// the rest.
    pub pre_join_buttons: &'static [&'static str],
    /// The pre-join screen's microphone toggle while the microphone is on,
    /// and the camera's: clicked before joining.
    pub mic_on: &'static [&'static str],
    pub camera_on: &'static [&'static str],
    /// Texts that prove the bot waits in a lobby.
    pub lobby_texts: &'static [&'static str],
    /// Selectors that all must be present to prove admission, with no
    /// lobby text and no join button left on screen.
    pub in_call_all: &'static [&'static str],
    /// The leave button.
    pub leave_buttons: &'static [&'static str],
    /// A confirmation some platforms ask for after the leave button;
    /// clicked when it shows.
    pub leave_confirm: &'static [&'static str],
    /// Buttons that acknowledge a notice in the call (Meet's "Gemini is
    /// taking notes", a recording notice); clicked whenever one shows.
    pub notices: &'static [&'static str],
    /// The platform's own dialog and status elements: the texts below
    /// (refusals, endings, walls) are read only inside them, never in a
    /// meeting's title, a caption or what participants wrote.
    pub status_areas: &'static [&'static str],
    pub denied_texts: &'static [&'static str],
    pub removed_texts: &'static [&'static str],
    pub ended_texts: &'static [&'static str],
    pub not_found_texts: &'static [&'static str],
    pub sign_in_texts: &'static [&'static str],
    pub blocked_texts: &'static [&'static str],
    /// Screens that say the call ended, or that an account is needed,
    /// in no words of the texts above (Teams' end screen of an end-to-end
    /// encrypted call, Microsoft's login form): their elements alone.
    pub ended_screens: &'static [&'static str],
    pub sign_in_screens: &'static [&'static str],
    /// The meeting asks for a passcode, or says the link's is wrong.
    pub passcode_texts: &'static [&'static str],
    /// Same-origin frames the client may run in; the first present is read
    /// instead of the page.
    pub frames: &'static [&'static str],
    /// The roster: one element per person in the call.
    pub people: Roster,
    /// The chat panel's messages.
    pub chat: Chat,
}

#[derive(Debug, Serialize)]
pub(crate) struct Roster {
    /// Selectors of roster entries (all matches of all selectors).
    pub items: &'static [&'static str],
    /// Attributes holding the platform's id for the person; without one,
    /// the person is known by name. Never an attribute that also holds
    /// state (a label with "muted" in it would make a mute look like a
    /// leave and a join).
    pub id_attrs: &'static [&'static str],
    /// Buttons that open the People panel, clicked once in the call if no
    /// entry is on screen.
    pub open_buttons: &'static [&'static str],
    /// Where the name is inside an entry...
    pub names: &'static [&'static str],
    /// ...else in these attributes of the entry, up to the first comma
    /// ("Alice, host, muted"); else the entry's own text.
    pub name_attrs: &'static [&'static str],
    /// Matches (on the entry or inside it) the bot's own entry.
    pub self_markers: &'static [&'static str],
    /// Matches (on the entry or inside it) while the person speaks.
    pub speaking: &'static [&'static str],
    /// Tiles apart from the roster that show who speaks now (Zoom's video
    /// frames while their speaker talks), and where the speaker's name is
    /// inside one: a person whose name is on such a tile is speaking.
    pub speaker_tiles: &'static [&'static str],
    pub speaker_names: &'static [&'static str],
    /// Entries whose label or text holds one of these are not people (a
    /// preview tile of effects, say).
    pub not_people: &'static [&'static str],
    /// A person in the roster is part of the proof of admission (where the
    /// roster is on screen in the call, not only in a panel).
    pub proves_call: bool,
    /// Elements whose label or text holds how many people are in the call,
    /// the bot included (Meet's People button, "People - 3 joined"). A
    /// large meeting's grid shows only some: while the count says others
    /// are there, the bot is not alone, whatever the tiles show.
    pub count: &'static [&'static str],
}

#[derive(Debug, Serialize)]
pub(crate) struct Chat {
    /// A button that opens the chat panel, clicked once in the call if no
    /// message list is on screen.
    pub open_buttons: &'static [&'static str],
    pub items: &'static [&'static str],
    pub id_attrs: &'static [&'static str],
    pub senders: &'static [&'static str],
    pub texts: &'static [&'static str],
}

pub(crate) fn table(platform: Platform) -> &'static Table {
    match platform {
        Platform::GoogleMeet | Platform::Sandbox => &MEET,
        Platform::Teams => &TEAMS,
        Platform::Zoom => &ZOOM,
    }
}

/// Google Meet; the sandbox meeting follows the same page shape.
static MEET: Table = Table {
    name_inputs: &["input[aria-label=\"Your name\"]"],
    join_buttons: &[
        "Ask to join",
        "Ask to join anyway",
        "Join now",
        "Join anyway",
        "Join here too",
        "Switch here",
    ],
    // Cookie banners are answered with the fewest cookies offered.
    pre_join_buttons: &["Reject all", "Accept all", "Got it", "Dismiss"],
    mic_on: &["[aria-label*=\"Turn off microphone\"]"],
    camera_on: &["[aria-label*=\"Turn off camera\"]"],
    lobby_texts: &[
        "Asking to be let in",
        "You'll join the call when someone lets you in",
        "Waiting for the host to join",
        "Please wait until a meeting host brings you into the call",
    ],
    // "Leave call" is in the lobby too: with a person's tile
    // (`people.proves_call`) and no lobby text, it proves the call.
    in_call_all: &["[aria-label=\"Leave call\"]"],
    leave_buttons: &["[aria-label=\"Leave call\"]"],
    leave_confirm: &[],
    notices: &["[data-mdc-dialog-action=\"ok\"]"],
    // `.roSPhc` holds the end and refusal screens' words (Vexa).
    status_areas: &[
        ".roSPhc",
        "[role=\"dialog\"]",
        "[role=\"alertdialog\"]",
        "[role=\"alert\"]",
    ],
    denied_texts: &[
        "denied your request",
        "No one responded to your request to join the call",
    ],
    removed_texts: &["You've been removed"],
    ended_texts: &[
        "Meeting ended",
        "Call ended",
        "Your host ended the meeting for everyone",
    ],
    not_found_texts: &[
        "Meeting not found",
        "Check your meeting code",
        "Invalid video call name",
        "Your meeting code has expired",
    ],
    sign_in_texts: &["Sign in to join", "Use your Google Account"],
    blocked_texts: &["You can't join this video call"],
    ended_screens: &[],
    sign_in_screens: &[],
    passcode_texts: &[],
    frames: &[],
    people: Roster {
        items: &["[data-participant-id]"],
        // The call's tiles are the roster; the People panel is not needed.
        open_buttons: &[],
        id_attrs: &["data-participant-id"],
        names: &[".name", "[data-self-name]", "span.notranslate"],
        name_attrs: &[],
        self_markers: &["[data-self=\"true\"]", "[data-self-name]"],
        // The sandbox marks speakers explicitly. Meet's equalizer (`IisKdb`)
        // is on every tile; while its person speaks it takes one of these
        // classes, which change with releases (the data channels are the
        // sturdier signal).
        speaking: &[
            "[data-speaking=\"true\"]",
            ".Oaajhc",
            ".HX2H7",
            ".wEsLMd",
            ".OgVli",
        ],
        speaker_tiles: &[],
        speaker_names: &[],
        // The lobby's "Backgrounds and effects" preview carries a
        // participant id too.
        not_people: &["Backgrounds and effects", "visual_effects"],
        proves_call: true,
        // The People button's label (Engagium's Meet DOM reference, 2025-11).
        count: &["[aria-label^=\"People - \"]"],
    },
    chat: Chat {
        open_buttons: &["Chat with everyone"],
        items: &["[data-message-id]"],
        id_attrs: &["data-message-id"],
        senders: &[".sender", ".poVWob"],
        texts: &[".text", "[data-message-text]"],
    },
};

static TEAMS: Table = Table {
    name_inputs: &[
        "[data-tid=\"prejoin-display-name-input\"]",
        // Teams' name field as the web client renders it (its HTML
        // placeholder attribute), for builds without the data-tid.
        "input[placeholder=\"Type your name\"]",
    ],
    join_buttons: &["Join now"],
    pre_join_buttons: &[
        "Reject",
        "Accept",
        "Continue on this browser",
        "Join meeting from this browser",
        "Continue without audio or video",
        "Computer audio",
    ],
    mic_on: &[
        "[data-tid=\"toggle-mute\"][aria-checked=\"true\"]",
        "[data-tid=\"toggle-mute\"][checked=\"true\"]",
        "[data-cid=\"toggle-mute-true\"]",
    ],
    camera_on: &[
        "[data-tid=\"toggle-video\"][aria-checked=\"true\"]",
        "[data-tid=\"toggle-video\"][checked=\"true\"]",
        "button[aria-label*=\"Turn off camera\"]",
    ],
    lobby_texts: &[
        "Someone will let you in shortly",
        "someone in the meeting should let you in soon",
        "will let you in",
    ],
    in_call_all: &["#hangup-button, [data-tid=\"hangup-main-btn\"], [data-inp=\"hangup-button\"]"],
    leave_buttons: &[
        "#hangup-button",
        "[data-tid=\"hangup-main-btn\"]",
        "[data-inp=\"hangup-button\"]",
    ],
    leave_confirm: &[],
    notices: &[],
    // The retry screen's title says why the call is over (Vexa).
    status_areas: &[
        "#calling-retry-screen-title",
        "[role=\"dialog\"]",
        "[role=\"alert\"]",
    ],
    denied_texts: &[
        "you were denied access",
        "Sorry, but you were denied access",
        "Your request to join was declined",
    ],
    removed_texts: &[
        "You've been removed from this meeting",
        "Removed from the meeting",
        "You have been removed",
    ],
    ended_texts: &["The meeting has ended", "Meeting ended", "Call ended"],
    not_found_texts: &["meeting URL is incorrect", "This meeting link is invalid"],
    sign_in_texts: &["Sign in to your account", "Pick an account"],
    blocked_texts: &["Please verify you are a human", "captcha"],
    ended_screens: &["[data-tid=\"calling-e2ee-end-screen\"]"],
    sign_in_screens: &["input[name=\"loginfmt\"]"],
    passcode_texts: &[],
    frames: &[],
    people: Roster {
        items: &[
            "[data-tid^=\"participantsInCall-\"]",
            "[data-cid=\"roster-participant\"]",
        ],
        open_buttons: &["People", "Show participants"],
        // `data-cid="roster-participant"` is the same on every entry: not
        // an id.
        id_attrs: &["data-tid"],
        names: &["[data-tid=\"roster-participant-name\"]", "span[title]"],
        name_attrs: &["aria-label"],
        self_markers: &["[data-tid=\"roster-participant-you\"]"],
        // The voice-level outline is on every tile; it shows speech when
        // the frame occlusion marks it.
        speaking: &[".vdi-frame-occlusion"],
        speaker_tiles: &[],
        speaker_names: &[],
        not_people: &[],
        proves_call: false,
        count: &[],
    },
    chat: Chat {
        open_buttons: &["Chat"],
        items: &["[data-tid=\"chat-pane-message\"]"],
        id_attrs: &["data-mid", "id"],
        senders: &["[data-tid=\"message-author-name\"]"],
        texts: &["[data-tid=\"chat-pane-message\"] [id^=\"content-\"]"],
    },
};

static ZOOM: Table = Table {
    name_inputs: &["#input-for-name", "#inputname"],
    join_buttons: &["Join"],
    pre_join_buttons: &[
        "Reject All",
        "Accept Cookies",
        "Allow",
        "Continue without microphone and camera",
    ],
    mic_on: &["#preview-audio-control-button[aria-label=\"Mute\"]"],
    camera_on: &["#preview-video-control-button[aria-label=\"Stop Video\"]"],
    lobby_texts: &[
        "Please wait, the meeting host will let you in soon",
        "Host has not started",
        "waiting for the host to start",
        "We've let them know you're here",
    ],
    in_call_all: &[
        "button[aria-label=\"Leave\"], .footer-button__leave, [aria-label=\"Leave meeting\"]",
    ],
    leave_buttons: &["button[aria-label=\"Leave\"]", ".footer-button__leave"],
    leave_confirm: &["button.leave-meeting-options__btn--danger"],
    notices: &[],
    // Zoom's modals say endings and refusals in their title (Vexa).
    status_areas: &[
        ".zm-modal-body-title",
        "[role=\"dialog\"]",
        "[role=\"alert\"]",
    ],
    // Zoom's own sentences: a bare "denied" is in many a toast.
    denied_texts: &["host has removed you", "Your request was denied"],
    removed_texts: &["You have been removed"],
    ended_texts: &["This meeting has been ended by host", "meeting has ended"],
    not_found_texts: &[
        "Invalid meeting ID",
        "This meeting ID is not valid",
        "This meeting link is invalid",
    ],
    sign_in_texts: &["Sign in to join this meeting", "only authenticated users"],
    blocked_texts: &["Automated bots aren't allowed", "use Zoom RTMS"],
    ended_screens: &[],
    sign_in_screens: &[],
    passcode_texts: &["Enter meeting passcode", "Incorrect passcode"],
    frames: &["iframe#webclient"],
    people: Roster {
        items: &[".participants-item__item-layout", ".participants-li"],
        open_buttons: &["open the participants list pane", "Participants"],
        // The entry's aria-label holds the mute state too: not an id, so
        // people are known by name.
        id_attrs: &[],
        names: &[".participants-item__display-name"],
        name_attrs: &["aria-label"],
        self_markers: &[".participants-item__name-label"],
        speaking: &[".participants-item__active-speaker"],
        // The `--active` frames only: the speaker view's big frame stays on
        // the last speaker through a silence.
        speaker_tiles: &[
            ".speaker-bar-container__video-frame--active",
            ".gallery-video-container__video-frame--active",
        ],
        speaker_names: &[
            ".video-avatar__avatar-footer span",
            ".video-avatar__avatar-footer",
        ],
        not_people: &[],
        proves_call: false,
        count: &[],
    },
    chat: Chat {
        open_buttons: &["open the chat panel", "Chat"],
        items: &[".chat-message__container", ".new-chat-message__container"],
        id_attrs: &["id", "data-msg-id"],
        senders: &[".chat-item__sender", ".chat-message__sender"],
        texts: &[
            ".chat-message__text-content",
            ".new-chat-message__text-content",
        ],
    },
};

/// The URL the bot opens. Zoom invitations go through the web client.
pub(crate) fn start_url(platform: Platform, url: &str) -> String {
    if platform != Platform::Zoom {
        return url.to_string();
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    let segments: Vec<&str> = parsed
        .path_segments()
        .map(|s| s.collect())
        .unwrap_or_default();
    let id = match segments.as_slice() {
        ["j" | "w", id, ..] => *id,
        _ => return url.to_string(),
    };
    // Zoom for Government has a web client of its own.
    let host = parsed.host_str().unwrap_or_default();
    let app = if host == "zoomgov.com" || host.ends_with(".zoomgov.com") {
        "app.zoomgov.com"
    } else {
        "app.zoom.us"
    };
    let mut out = format!("https://{app}/wc/{id}/join");
    if let Some(q) = parsed.query() {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoom_invites_go_to_the_web_client() {
        assert_eq!(
            start_url(
                Platform::Zoom,
                "https://us02web.zoom.us/j/81234567890?pwd=abc"
            ),
            "https://app.zoom.us/wc/81234567890/join?pwd=abc"
        );
        assert_eq!(
            start_url(Platform::Zoom, "https://app.zoom.us/wc/81234567890/join"),
            "https://app.zoom.us/wc/81234567890/join"
        );
        // Webinar links keep their token; zoom.com links use the same client.
        assert_eq!(
            start_url(
                Platform::Zoom,
                "https://us06web.zoom.us/w/81234567890?tk=abc.def&pwd=x"
            ),
            "https://app.zoom.us/wc/81234567890/join?tk=abc.def&pwd=x"
        );
        assert_eq!(
            start_url(Platform::Zoom, "https://us05web.zoom.com/j/81234567890"),
            "https://app.zoom.us/wc/81234567890/join"
        );
        assert_eq!(
            start_url(Platform::Zoom, "https://acme.zoomgov.com/j/1612345678"),
            "https://app.zoomgov.com/wc/1612345678/join"
        );
        assert_eq!(
            start_url(Platform::GoogleMeet, "https://meet.google.com/abc-defg-hij"),
            "https://meet.google.com/abc-defg-hij"
        );
    }

    /// The pages that replicate each platform: the sandbox's replicas, and
    /// for Meet the sandbox's own page, which has its shape.
    fn replicas(p: Platform) -> Vec<&'static str> {
        const SANDBOX: &str = include_str!("../../../sandbox/assets/meeting.html");
        const MEET: &str = include_str!("../../../sandbox/assets/platform/meet.html");
        const TEAMS: &str = include_str!("../../../sandbox/assets/platform/teams.html");
        const ZOOM: &str = include_str!("../../../sandbox/assets/platform/zoom.html");
        const ZOOM_FRAME: &str = include_str!("../../../sandbox/assets/platform/zoom-frame.html");
        match p {
            Platform::GoogleMeet | Platform::Sandbox => vec![MEET, SANDBOX],
            Platform::Teams => vec![TEAMS],
            Platform::Zoom => vec![ZOOM, ZOOM_FRAME],
        }
    }

    fn fold(s: &str) -> String {
        s.replace(['\u{2018}', '\u{2019}'], "'").to_lowercase()
    }

    /// The names and values a simple CSS selector needs a page to have:
    /// ids, classes, attribute names and values, tags.
    fn selector_tokens(sel: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = sel;
        while let Some(c) = rest.chars().next() {
            let ident_end = |s: &str| {
                s.find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                    .unwrap_or(s.len())
            };
            match c {
                '#' | '.' | ':' => {
                    let end = 1 + ident_end(&rest[1..]);
                    if c != ':' {
                        out.push(rest[1..end].to_string());
                    }
                    rest = &rest[end..];
                }
                '[' => {
                    let end = rest.find(']').expect("closed attribute selector");
                    let inner = &rest[1..end];
                    let name_end = ident_end(inner);
                    out.push(inner[..name_end].to_string());
                    if let Some(q) = inner.find('"') {
                        out.push(inner[q + 1..inner.len() - 1].to_string());
                    }
                    rest = &rest[end + 1..];
                }
                c if c.is_alphabetic() => {
                    let end = ident_end(rest);
                    out.push(rest[..end].to_string());
                    rest = &rest[end..];
                }
                _ => rest = &rest[c.len_utf8()..],
            }
        }
        out
    }

    /// Whether a page has `token`: as written, or as the camel-cased
    /// `dataset` name of a `data-` attribute that script sets.
    fn page_has(page: &str, token: &str) -> bool {
        let ident = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
        let whole = |hay: &str, word: &str| {
            hay.match_indices(word).any(|(i, _)| {
                !hay[..i].chars().next_back().is_some_and(ident)
                    && !hay[i + word.len()..].chars().next().is_some_and(ident)
            })
        };
        if whole(page, token) {
            return true;
        }
        let Some(data) = token.strip_prefix("data-") else {
            return false;
        };
        let mut camel = String::new();
        let mut upper = false;
        for c in data.chars() {
            if c == '-' {
                upper = true;
            } else if upper {
                camel.extend(c.to_uppercase());
                upper = false;
            } else {
                camel.push(c);
            }
        }
        whole(page, &format!("dataset.{camel}"))
    }

    /// Every entry of every table, with where it is: `(path, entry, is
    /// a selector)`.
    fn entries(p: Platform) -> Vec<(String, String, bool)> {
        let table = serde_json::to_value(table(p)).unwrap();
        let mut out = Vec::new();
        let mut walk = vec![(String::new(), table)];
        while let Some((path, v)) = walk.pop() {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        walk.push((format!("{path}.{k}"), v));
                    }
                }
                serde_json::Value::Array(list) => {
                    let texts = ["_buttons", "_texts", "not_people", "open_buttons"];
                    let selector = !texts.iter().any(|t| path.ends_with(t))
                        || path.ends_with("leave_buttons")
                        || path == ".chat.texts";
                    for e in list {
                        out.push((path.clone(), e.as_str().unwrap().to_string(), selector));
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn every_table_entry_is_on_a_replica_page() {
        let mut missing = Vec::new();
        for p in [Platform::GoogleMeet, Platform::Teams, Platform::Zoom] {
            let pages = replicas(p);
            for (path, entry, selector) in entries(p) {
                let found = if selector {
                    // Each alternative of a selector list on some page.
                    entry.split(',').all(|alt| {
                        pages
                            .iter()
                            .any(|page| selector_tokens(alt).iter().all(|t| page_has(page, t)))
                    })
                } else {
                    pages
                        .iter()
                        .any(|page| page_has(&fold(page), &fold(&entry)))
                };
                if !found {
                    missing.push(format!("{p:?}{path}: {entry}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "table entries no replica page has:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn selectors_are_read_into_what_a_page_must_have() {
        assert_eq!(
            selector_tokens("input[data-tid=\"toggle-mute\"]:checked"),
            ["input", "data-tid", "toggle-mute"]
        );
        assert_eq!(
            selector_tokens("#preview-audio-control-button[aria-label=\"Mute\"]"),
            ["preview-audio-control-button", "aria-label", "Mute"]
        );
        assert!(page_has(
            "el.dataset.participantId = 1",
            "data-participant-id"
        ));
        assert!(!page_has("participant", "data-participant-id"));
        assert!(!page_has(
            "new-chat-message__container",
            "chat-message__container"
        ));
        assert!(page_has(
            "aria-label=\"Turn off camera\"",
            "Turn off camera"
        ));
    }

    #[test]
    fn every_table_can_prove_admission_and_leave() {
        for p in [
            Platform::GoogleMeet,
            Platform::Teams,
            Platform::Zoom,
            Platform::Sandbox,
        ] {
            let t = table(p);
            assert!(
                !t.in_call_all.is_empty() && !t.leave_buttons.is_empty(),
                "{p:?}"
            );
            assert!(
                !t.lobby_texts.is_empty() && !t.join_buttons.is_empty(),
                "{p:?}"
            );
        }
    }
}
