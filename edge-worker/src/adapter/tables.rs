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
    /// Buttons to click before joining, when present (e.g. "Continue on this browser").
    pub pre_join_buttons: &'static [&'static str],
    /// Texts that prove the bot waits in a lobby.
    pub lobby_texts: &'static [&'static str],
    /// Selectors that all must be present to prove admission.
    pub in_call_all: &'static [&'static str],
    /// The leave button.
    pub leave_buttons: &'static [&'static str],
    pub denied_texts: &'static [&'static str],
    pub removed_texts: &'static [&'static str],
    pub ended_texts: &'static [&'static str],
    pub not_found_texts: &'static [&'static str],
    pub sign_in_texts: &'static [&'static str],
    pub blocked_texts: &'static [&'static str],
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
    join_buttons: &["Ask to join", "Join now", "Switch here"],
    pre_join_buttons: &["Got it", "Dismiss"],
    lobby_texts: &[
        "Asking to be let in",
        "You'll join the call when someone lets you in",
        "Waiting for the host to join",
    ],
    in_call_all: &["[aria-label=\"Leave call\"]", "[data-participant-id]"],
    leave_buttons: &["[aria-label=\"Leave call\"]"],
    denied_texts: &["denied your request", "You can't join this call"],
    removed_texts: &["You've been removed"],
    ended_texts: &["Meeting ended", "The meeting has ended", "Call ended"],
    not_found_texts: &["Meeting not found", "Check your meeting code"],
    sign_in_texts: &["Sign in to join", "Use your Google Account"],
    blocked_texts: &["You can't join this video call"],
};

static TEAMS: Table = Table {
    name_inputs: &[
        "[data-tid=\"prejoin-display-name-input\"]",
        // Teams' name field as the web client renders it (its HTML
        // placeholder attribute), for builds without the data-tid.
        "input[placeholder=\"Type your name\"]",
    ],
    join_buttons: &["Join now"],
    pre_join_buttons: &["Continue on this browser", "Computer audio"],
    lobby_texts: &[
        "Someone will let you in shortly",
        "someone in the meeting should let you in soon",
    ],
    in_call_all: &["#hangup-button, [data-tid=\"hangup-main-btn\"]"],
    leave_buttons: &["#hangup-button", "[data-tid=\"hangup-main-btn\"]"],
    denied_texts: &[
        "you were denied access",
        "Sorry, but you were denied access",
    ],
    removed_texts: &[
        "You've been removed from this meeting",
        "Someone removed you from the meeting",
    ],
    ended_texts: &["The meeting has ended", "Meeting ended"],
    not_found_texts: &["meeting URL is incorrect", "This meeting link is invalid"],
    sign_in_texts: &["Sign in to your account", "Pick an account"],
    blocked_texts: &["Please verify you are a human", "captcha"],
};

static ZOOM: Table = Table {
    name_inputs: &["#input-for-name", "#inputname"],
    join_buttons: &["Join"],
    pre_join_buttons: &["Allow", "Continue without microphone and camera"],
    lobby_texts: &[
        "Please wait, the meeting host will let you in soon",
        "Host has not started",
        "waiting for the host to start",
    ],
    in_call_all: &[
        "button[aria-label=\"Leave\"], .footer-button__leave, [aria-label=\"Leave meeting\"]",
    ],
    leave_buttons: &["button[aria-label=\"Leave\"]", ".footer-button__leave"],
    denied_texts: &["host has removed you", "denied"],
    removed_texts: &["You have been removed"],
    ended_texts: &["This meeting has been ended by host", "meeting has ended"],
    not_found_texts: &["Invalid meeting ID", "This meeting ID is not valid"],
    sign_in_texts: &["Sign in to join this meeting", "only authenticated users"],
    blocked_texts: &["Automated bots aren't allowed", "use Zoom RTMS"],
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
    let mut out = format!("https://app.zoom.us/wc/{id}/join");
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
        assert_eq!(
            start_url(Platform::GoogleMeet, "https://meet.google.com/abc-defg-hij"),
            "https://meet.google.com/abc-defg-hij"
        );
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
