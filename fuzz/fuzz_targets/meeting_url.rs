//! Meeting URLs come straight from API users: detection must never panic,
//! and whatever it accepts must be a URL of the platform it names.
#![no_main]

use attache_protocol::{Platform, parse_meeting_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let sandbox = vec!["http://127.0.0.1:8090".to_string()];
    if let Ok((platform, url)) = parse_meeting_url(s, &sandbox, false) {
        let host = url.host_str().unwrap_or_default();
        match platform {
            Platform::GoogleMeet => assert_eq!(host, "meet.google.com"),
            Platform::Zoom => assert!(["zoom.us", "zoom.com", "zoomgov.com"]
                .iter()
                .any(|d| host == *d || host.ends_with(&format!(".{d}")))),
            Platform::Teams => assert!(host.contains("teams.")),
            Platform::Sandbox => assert_eq!(url.origin().ascii_serialization(), sandbox[0]),
        }
    }
});
