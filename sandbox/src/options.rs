//! A meeting's behaviour, as its URL's query or the control API sets it.

use serde::{Deserialize, Serialize};

use crate::meeting::SandboxError;
use crate::script::{BUILTIN_SCRIPTS, Script};

/// Most junk frames a page hands the bot's capture (`corrupt_frames`).
const MAX_CORRUPT_FRAMES: u8 = 100;
/// Longest a page's main thread is blocked (`hang_ms`).
const MAX_HANG_MS: u64 = 120_000;

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

/// What the scripted speakers' audio tracks carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioMode {
    /// Their voices.
    #[default]
    On,
    /// Silence: the tracks arrive and the speaking indicators still show,
    /// but nothing is heard.
    Muted,
}

/// A meeting's behaviour. Set from the page URL's query (so every field
/// stays a scalar there) or from the body of `POST /api/meetings`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct MeetingOptions {
    pub title: String,
    pub admission: Admission,
    pub admit_after_ms: u64,
    /// The meeting does not exist: the page shows "Meeting not found".
    pub missing: bool,
    /// Names of the people already in the call, when there is no script.
    pub hosts: Vec<String>,
    /// A built-in script (see [`BUILTIN_SCRIPTS`]): who else is in the
    /// meeting and what they say. Replaces `hosts`.
    pub script: Option<String>,
    pub audio: AudioMode,
    /// Once admitted, the page hands the bot's audio capture this many junk
    /// frames (0 to 100).
    pub corrupt_frames: u8,
    /// `hang_after_ms` into the call, the page's main thread is blocked for
    /// this long (up to two minutes), as a hung renderer would be: nothing
    /// on the page answers, and the sandbox drops the page as it would any
    /// peer silent for 5 s.
    pub hang_ms: u64,
    pub hang_after_ms: u64,
    /// The lobby offers microphone and camera toggles, on at first as on
    /// the real platforms; without them a page sends whatever its devices
    /// give.
    pub device_toggles: bool,
    /// The lobby opens under a cookie banner that blocks it until answered,
    /// and then a notice lies over the join button, taking clicks at its
    /// place as real overlays do; in the call, a page's notices wait to be
    /// acknowledged.
    pub overlays: bool,
    /// What stands before the lobby: nothing, a sign-in wall, or a wall
    /// against bots.
    pub wall: Wall,
    /// The meeting's passcode: a page must carry it as `?pwd=`.
    pub passcode: Option<String>,
    /// Besides one track per speaker, a server-mixed track of them all, as
    /// Teams sends ("mainAudio" in its stream's id).
    pub mix: Mix,
    /// The call shows the tiles of at most this many people, the page's
    /// own first, as a large meeting's grid does; the rest are only
    /// counted (on pages that show a count).
    pub tiles: Option<u32>,
    /// Where the speakers' voices come from.
    pub speakers: Speakers,
}

/// Where the scripted speakers' voices are sent from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speakers {
    /// Played and encoded in the page itself, through a pair of
    /// `RTCPeerConnection`s: no other process is needed, and the page
    /// pays for encoding what it hears.
    #[default]
    Page,
    /// Sent by the sandbox server as a platform's media server sends them:
    /// each clip's Opus packets as they were encoded, over one
    /// `RTCPeerConnection` to the page, which only decodes. No mixed track.
    Remote,
}

/// A mixed track beside the speakers' own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mix {
    #[default]
    None,
    /// The mix carries every voice.
    Mixed,
    /// The mix is there but silent (a mixer that failed).
    Silent,
}

/// A wall before the lobby.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wall {
    #[default]
    None,
    /// Only signed-in accounts may join.
    SignIn,
    /// The platform refuses automated participants.
    Bots,
}

impl Default for MeetingOptions {
    fn default() -> Self {
        MeetingOptions {
            title: "Sandbox meeting".into(),
            admission: Admission::Admit,
            admit_after_ms: 500,
            missing: false,
            hosts: vec!["Host".into()],
            script: None,
            audio: AudioMode::On,
            corrupt_frames: 0,
            hang_ms: 0,
            hang_after_ms: 0,
            device_toggles: true,
            overlays: false,
            wall: Wall::None,
            passcode: None,
            mix: Mix::None,
            tiles: None,
            speakers: Speakers::Page,
        }
    }
}

impl MeetingOptions {
    /// The script these options give, with `custom` winning over a
    /// built-in: `Ok(None)` when there is none (only `hosts` are present).
    pub(crate) fn resolve_script(
        &self,
        custom: Option<Script>,
    ) -> Result<Option<Script>, SandboxError> {
        if self.corrupt_frames > MAX_CORRUPT_FRAMES {
            return Err(SandboxError::Invalid(format!(
                "corrupt_frames must be 0 to {MAX_CORRUPT_FRAMES}"
            )));
        }
        if self.hang_ms > MAX_HANG_MS {
            return Err(SandboxError::Invalid(format!(
                "hang_ms must be 0 to {MAX_HANG_MS}"
            )));
        }
        if self.speakers == Speakers::Remote && self.mix != Mix::None {
            return Err(SandboxError::Invalid(
                "speakers=remote sends no mixed track: use mix=none".into(),
            ));
        }
        let mut script = match (custom, &self.script) {
            (Some(s), _) => s,
            (None, Some(name)) => Script::builtin(name).ok_or_else(|| {
                SandboxError::Invalid(format!(
                    "Unknown script \"{name}\" (built-in scripts: {})",
                    BUILTIN_SCRIPTS.join(", ")
                ))
            })?,
            (None, None) => return Ok(None),
        };
        script.validate().map_err(SandboxError::Invalid)?;
        Ok(Some(script))
    }
}
