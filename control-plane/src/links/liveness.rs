//! Worker liveness as an explicit state machine. It acts only on
//! transitions: a worker's leases are taken back once, when it becomes lost,
//! never on every tick that finds it gone.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Connected,
    /// Last heard from at `since` (its last heartbeat, not when the link
    /// was found dropped); its bots are still its own until the grace ends.
    Reconnecting {
        since: Instant,
    },
    Lost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Connected,
    Disconnected,
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Close a link that stopped sending heartbeats, then take its leases.
    CloseLinkAndExpire,
    ExpireLeases,
}

impl Liveness {
    pub(crate) fn step(
        self,
        event: Event,
        now: Instant,
        last_heartbeat: Instant,
        grace: Duration,
    ) -> (Liveness, Option<Action>) {
        use Liveness::*;
        match (self, event) {
            (_, Event::Connected) => (Connected, None),
            // A link found dropped late (a QUIC idle timeout after a
            // SIGKILL) does not lengthen the grace: it runs from the last
            // heartbeat.
            (Connected, Event::Disconnected) => (
                Reconnecting {
                    since: last_heartbeat.min(now),
                },
                None,
            ),
            (Connected, Event::Tick) if now.saturating_duration_since(last_heartbeat) > grace => {
                (Lost, Some(Action::CloseLinkAndExpire))
            }
            (Reconnecting { since }, Event::Tick)
                if now.saturating_duration_since(since) >= grace =>
            {
                (Lost, Some(Action::ExpireLeases))
            }
            (state, _) => (state, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn disconnect_then_grace_expires_once() {
        let t0 = Instant::now();
        let (s, a) = Liveness::Connected.step(Event::Disconnected, t0, t0, GRACE);
        assert_eq!((s, a), (Liveness::Reconnecting { since: t0 }, None));
        let (s, a) = s.step(Event::Tick, t0 + Duration::from_secs(9), t0, GRACE);
        assert_eq!(a, None);
        let (s, a) = s.step(Event::Tick, t0 + GRACE, t0, GRACE);
        assert_eq!((s, a), (Liveness::Lost, Some(Action::ExpireLeases)));
        let (s, a) = s.step(Event::Tick, t0 + GRACE * 2, t0, GRACE);
        assert_eq!(
            (s, a),
            (Liveness::Lost, None),
            "acts only on the transition"
        );
    }

    #[test]
    fn reconnect_within_grace_keeps_leases() {
        let t0 = Instant::now();
        let (s, _) = Liveness::Connected.step(Event::Disconnected, t0, t0, GRACE);
        let (s, a) = s.step(Event::Connected, t0 + Duration::from_secs(3), t0, GRACE);
        assert_eq!((s, a), (Liveness::Connected, None));
        let (s, a) = s.step(
            Event::Tick,
            t0 + Duration::from_secs(4),
            t0 + Duration::from_secs(3),
            GRACE,
        );
        assert_eq!((s, a), (Liveness::Connected, None));
    }

    #[test]
    fn silent_link_is_closed_and_expired() {
        let t0 = Instant::now();
        let (s, a) = Liveness::Connected.step(
            Event::Tick,
            t0 + GRACE + Duration::from_millis(1),
            t0,
            GRACE,
        );
        assert_eq!((s, a), (Liveness::Lost, Some(Action::CloseLinkAndExpire)));
    }

    #[test]
    fn the_grace_runs_from_the_last_heartbeat_not_the_noticed_drop() {
        let t0 = Instant::now();
        let noticed = t0 + Duration::from_secs(4);
        let (s, _) = Liveness::Connected.step(Event::Disconnected, noticed, t0, GRACE);
        assert_eq!(s, Liveness::Reconnecting { since: t0 });
        let (_, a) = s.step(Event::Tick, t0 + GRACE, t0, GRACE);
        assert_eq!(a, Some(Action::ExpireLeases));
    }

    #[test]
    fn a_second_disconnect_does_not_restart_the_clock() {
        let t0 = Instant::now();
        let (s, _) = Liveness::Connected.step(Event::Disconnected, t0, t0, GRACE);
        let (s, _) = s.step(Event::Disconnected, t0 + Duration::from_secs(5), t0, GRACE);
        assert_eq!(s, Liveness::Reconnecting { since: t0 });
    }
}
