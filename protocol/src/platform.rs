//! Which meeting platform a URL belongs to. A URL that is not clearly a
//! meeting of a supported platform is refused here, before anything is stored
//! or any browser is pointed at it.

use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Platform {
    GoogleMeet,
    Teams,
    Zoom,
    Sandbox,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::GoogleMeet => "GOOGLE_MEET",
            Platform::Teams => "TEAMS",
            Platform::Zoom => "ZOOM",
            Platform::Sandbox => "SANDBOX",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        [
            Platform::GoogleMeet,
            Platform::Teams,
            Platform::Zoom,
            Platform::Sandbox,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// Longest meeting URL accepted (real ones are well under 1 KiB).
pub const MAX_MEETING_URL_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeetingUrlError {
    #[error("meeting URL is empty")]
    Empty,
    #[error("meeting URL is longer than {MAX_MEETING_URL_LEN} characters")]
    TooLong,
    #[error("meeting URL is not a valid URL: {0}")]
    NotAUrl(String),
    #[error("meeting URL must use https")]
    NotHttps,
    #[error("meeting URL must not carry credentials")]
    HasCredentials,
    #[error("{0} is not a supported meeting platform (Google Meet, Microsoft Teams, Zoom)")]
    UnknownPlatform(String),
    #[error("not a {platform} meeting link: {hint}")]
    NotAMeeting {
        platform: &'static str,
        hint: &'static str,
    },
}

/// Detects the platform of a meeting URL. `sandbox_origins` lists the
/// origins (`http://127.0.0.1:8090`) of sandbox meeting servers this
/// deployment trusts; production deployments usually list none. With
/// `platform_replicas`, a sandbox's replicas of the platforms' pages
/// (`/platform/meet/<id>`, `/platform/teams/<id>`, `/platform/zoom/<id>`)
/// are the platforms they copy, so the real adapters drive them.
pub fn parse_meeting_url(
    raw: &str,
    sandbox_origins: &[String],
    platform_replicas: bool,
) -> Result<(Platform, Url), MeetingUrlError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(MeetingUrlError::Empty);
    }
    if raw.len() > MAX_MEETING_URL_LEN {
        return Err(MeetingUrlError::TooLong);
    }
    let url = Url::parse(raw).map_err(|e| MeetingUrlError::NotAUrl(e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(MeetingUrlError::HasCredentials);
    }
    let origin = url.origin().ascii_serialization();
    if sandbox_origins
        .iter()
        .any(|o| o.trim_end_matches('/') == origin)
    {
        let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
        let platform = match segments.as_slice() {
            ["m", _] => Some(Platform::Sandbox),
            ["platform", kind, _] if platform_replicas => match *kind {
                "meet" => Some(Platform::GoogleMeet),
                "teams" => Some(Platform::Teams),
                "zoom" => Some(Platform::Zoom),
                _ => None,
            },
            _ => None,
        };
        return platform
            .map(|p| (p, url))
            .ok_or(MeetingUrlError::NotAMeeting {
                platform: "sandbox",
                hint: if platform_replicas {
                    "expected /m/<meeting id> or /platform/{meet,teams,zoom}/<meeting id>"
                } else {
                    "expected /m/<meeting id>"
                },
            });
    }
    if url.scheme() != "https" {
        return Err(MeetingUrlError::NotHttps);
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let path = url.path();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let platform = if host == "meet.google.com" {
        let ok = segments.len() == 1 && is_meet_code(segments[0]);
        ok.then_some(Platform::GoogleMeet)
            .ok_or(MeetingUrlError::NotAMeeting {
                platform: "Google Meet",
                hint: "expected https://meet.google.com/abc-defg-hij",
            })?
    } else if is_teams_host(&host) {
        let ok = matches!(
            segments.as_slice(),
            ["l", "meetup-join", _, ..] | ["meet", _, ..]
        );
        ok.then_some(Platform::Teams)
            .ok_or(MeetingUrlError::NotAMeeting {
                platform: "Microsoft Teams",
                hint: "expected a /l/meetup-join/… or /meet/<id> link",
            })?
    } else if is_zoom_host(&host) {
        let ok = match segments.as_slice() {
            ["j" | "w", id, ..] => is_zoom_id(id),
            ["wc", "join", id, ..] => is_zoom_id(id),
            ["wc", id, ..] => is_zoom_id(id),
            _ => false,
        };
        ok.then_some(Platform::Zoom)
            .ok_or(MeetingUrlError::NotAMeeting {
                platform: "Zoom",
                hint: "expected https://<sub>.zoom.us/j/<meeting number>",
            })?
    } else {
        return Err(MeetingUrlError::UnknownPlatform(host));
    };
    Ok((platform, url))
}

fn is_meet_code(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3
        && [3, 4, 3]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_lowercase()))
}

fn is_teams_host(host: &str) -> bool {
    matches!(
        host,
        "teams.microsoft.com"
            | "teams.cloud.microsoft"
            | "teams.live.com"
            | "teams.microsoft.us"
            | "gov.teams.microsoft.us"
            | "dod.teams.microsoft.mil"
    )
}

/// Zoom's hosts: zoom.us, zoom.com (its newer links) and Zoom for
/// Government, with their subdomains.
fn is_zoom_host(host: &str) -> bool {
    ["zoom.us", "zoom.com", "zoomgov.com"]
        .iter()
        .any(|d| host == *d || host.strip_suffix(d).is_some_and(|h| h.ends_with('.')))
}

fn is_zoom_id(s: &str) -> bool {
    (9..=12).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SANDBOX: &str = "http://127.0.0.1:8090";

    fn detect(url: &str) -> Result<Platform, MeetingUrlError> {
        parse_meeting_url(url, &[SANDBOX.to_string()], false).map(|(p, _)| p)
    }

    #[test]
    fn platform_replicas_are_their_platforms_only_when_enabled() {
        let sandbox = [SANDBOX.to_string()];
        let with = |url: &str| parse_meeting_url(url, &sandbox, true).map(|(p, _)| p);
        let base = "http://127.0.0.1:8090/platform";
        assert_eq!(
            with(&format!("{base}/meet/standup")),
            Ok(Platform::GoogleMeet)
        );
        assert_eq!(
            with(&format!("{base}/teams/standup?x=1")),
            Ok(Platform::Teams)
        );
        assert_eq!(
            with(&format!("{base}/zoom/standup?pwd=1")),
            Ok(Platform::Zoom)
        );
        assert_eq!(
            with("http://127.0.0.1:8090/m/standup"),
            Ok(Platform::Sandbox)
        );
        assert!(with(&format!("{base}/webex/standup")).is_err());
        assert!(with(&format!("{base}/meet")).is_err());
        assert!(with("http://127.0.0.1:8091/platform/meet/standup").is_err());
        assert!(
            detect(&format!("{base}/meet/standup")).is_err(),
            "off by default"
        );
    }

    #[test]
    fn platform_table() {
        use Platform::*;
        let ok = [
            ("https://meet.google.com/abc-defg-hij", GoogleMeet),
            (
                "https://meet.google.com/abc-defg-hij?authuser=1",
                GoogleMeet,
            ),
            (
                "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%7d",
                Teams,
            ),
            ("https://teams.microsoft.com/meet/2345678?p=abc", Teams),
            ("https://teams.live.com/meet/9384756?p=xyz", Teams),
            ("https://gov.teams.microsoft.us/l/meetup-join/abc/0", Teams),
            ("https://us02web.zoom.us/j/81234567890?pwd=abc", Zoom),
            ("https://zoom.us/j/123456789", Zoom),
            ("https://app.zoom.us/wc/81234567890/join?pwd=x", Zoom),
            (
                "https://us06web.zoom.us/w/81234567890?tk=abc.def&pwd=x",
                Zoom,
            ),
            ("https://zoom.com/j/81234567890", Zoom),
            ("https://us05web.zoom.com/j/81234567890?pwd=abc", Zoom),
            ("https://acme.zoomgov.com/j/1612345678", Zoom),
            ("https://zoomgov.com/j/1612345678", Zoom),
            ("https://teams.cloud.microsoft/meet/2345678?p=abc", Teams),
            (
                "https://teams.cloud.microsoft/l/meetup-join/19%3ameeting_abc%40thread.v2/0",
                Teams,
            ),
            ("https://dod.teams.microsoft.mil/meet/2345678?p=abc", Teams),
            ("http://127.0.0.1:8090/m/standup", Sandbox),
        ];
        for (url, want) in ok {
            assert_eq!(detect(url), Ok(want), "{url}");
        }
        let bad = [
            "",
            "not a url",
            "meet.google.com/abc-defg-hij",
            "http://meet.google.com/abc-defg-hij",
            "https://meet.google.com/",
            "https://meet.google.com/abc-defg-hi",
            "https://meet.google.com.evil.example/abc-defg-hij",
            "https://user:pw@meet.google.com/abc-defg-hij",
            "https://teams.microsoft.com/",
            "https://zoom.us/j/12",
            "https://evilzoom.us/j/123456789",
            "https://evilzoom.com/j/123456789",
            "https://zoom.com.evil.example/j/123456789",
            "https://teams.cloud.microsoft.evil.example/meet/2345678",
            "https://example.com/m/standup",
            "http://127.0.0.1:8091/m/standup",
            "http://127.0.0.1:8090/other",
            "http://127.0.0.1:8090/m/a/b",
            "ftp://meet.google.com/abc-defg-hij",
            "javascript:alert(1)",
        ];
        for url in bad {
            assert!(detect(url).is_err(), "{url} should be refused");
        }
    }

    #[test]
    fn overlong_url_is_refused_before_parsing() {
        let url = format!(
            "https://meet.google.com/abc-defg-hij?x={}",
            "a".repeat(3000)
        );
        assert_eq!(detect(&url), Err(MeetingUrlError::TooLong));
    }
}
