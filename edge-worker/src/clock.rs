//! The worker's one wall clock. Every result, recording and warning is
//! stamped with it, so that the control plane can lay one bot's results on
//! one timeline.

/// Unix time in milliseconds; zero if the system clock is before 1970.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
