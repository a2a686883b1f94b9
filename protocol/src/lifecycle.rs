//! The bot lifecycle both services agree on.
//!
//! `QUEUED → DISPATCHED → JOINING → WAITING_ROOM → IN_CALL → LEAVING → ENDED`,
//! or `FAILED` with a reason. A bot that has not reached the meeting can go
//! back to `QUEUED` when its worker is lost. `ENDED` and `FAILED` are final.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BotStatus {
    Queued,
    Dispatched,
    Joining,
    WaitingRoom,
    InCall,
    Leaving,
    Ended,
    Failed,
}

/// Why a bot ended or failed. Every terminal status carries one, and it
/// must be the true reason: a bot that was never admitted did not "end".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StatusReason {
    // ENDED
    MeetingEnded,
    LeaveRequested,
    /// Nobody but the bot joined the call.
    NobodyJoined,
    AloneTooLong,
    SilenceTooLong,
    MaxDuration,
    // FAILED
    AdmissionDenied,
    MeetingNotFound,
    JoinTimeout,
    LobbyTimeout,
    Kicked,
    SignInRequired,
    BlockedByPlatform,
    WorkerLost,
    /// The worker running the bot was shut down before the meeting ended.
    WorkerShutdown,
    /// The worker process restarted while the bot was in its meeting.
    WorkerRestarted,
    PlatformError,
    Internal,
    /// No worker of the bot's region (or pool) had room for it within the
    /// deployment's queue timeout; it never left `QUEUED`. (Last: postcard
    /// names variants by position, so new reasons go at the end.)
    NoCapacity,
    /// The worker's machine was too busy for the bot's page to keep up
    /// (its pages stalled together while the CPU was saturated).
    WorkerOverloaded,
    /// The bot's page stopped answering (a hung renderer) while the worker
    /// itself was not overloaded.
    PageUnresponsive,
    /// The meeting asked for a passcode the link did not carry, or refused
    /// the one it did.
    WrongPasscode,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("bot is already {0}; a final status does not change")]
    Final(BotStatus),
    #[error("a bot cannot go from {from} to {to}")]
    NotAllowed { from: BotStatus, to: BotStatus },
    #[error("{reason} is not a reason to leave {from}")]
    ReasonNotFrom {
        from: BotStatus,
        reason: StatusReason,
    },
    #[error("{to} needs a reason, and {reason:?} is not one of its reasons")]
    WrongReason {
        to: BotStatus,
        reason: Option<StatusReason>,
    },
}

impl BotStatus {
    pub const ALL: [BotStatus; 8] = [
        BotStatus::Queued,
        BotStatus::Dispatched,
        BotStatus::Joining,
        BotStatus::WaitingRoom,
        BotStatus::InCall,
        BotStatus::Leaving,
        BotStatus::Ended,
        BotStatus::Failed,
    ];

    pub fn is_final(self) -> bool {
        matches!(self, BotStatus::Ended | BotStatus::Failed)
    }

    /// True once the bot may have been seen by the meeting's participants as
    /// a member: such a bot is never silently re-dispatched.
    pub fn is_in_meeting(self) -> bool {
        matches!(self, BotStatus::InCall | BotStatus::Leaving)
    }

    /// True while a worker holds a lease on the bot.
    pub fn is_leased(self) -> bool {
        matches!(
            self,
            BotStatus::Dispatched
                | BotStatus::Joining
                | BotStatus::WaitingRoom
                | BotStatus::InCall
                | BotStatus::Leaving
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BotStatus::Queued => "QUEUED",
            BotStatus::Dispatched => "DISPATCHED",
            BotStatus::Joining => "JOINING",
            BotStatus::WaitingRoom => "WAITING_ROOM",
            BotStatus::InCall => "IN_CALL",
            BotStatus::Leaving => "LEAVING",
            BotStatus::Ended => "ENDED",
            BotStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<BotStatus> {
        BotStatus::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// Checks one step of the lifecycle.
    pub fn check_transition(
        self,
        to: BotStatus,
        reason: Option<StatusReason>,
    ) -> Result<(), TransitionError> {
        use BotStatus::*;
        if self.is_final() {
            return Err(TransitionError::Final(self));
        }
        let allowed = matches!(
            (self, to),
            (_, Ended | Failed)
                | (Queued, Dispatched)
                | (Dispatched | Joining | WaitingRoom, Queued)
                | (Dispatched, Joining | WaitingRoom | InCall | Leaving)
                | (Joining, WaitingRoom | InCall | Leaving)
                | (WaitingRoom, InCall | Leaving)
                | (InCall, Leaving)
        );
        if !allowed {
            return Err(TransitionError::NotAllowed { from: self, to });
        }
        let reason_fits = match to {
            Ended => reason.is_some_and(|r| !r.is_failure()),
            Failed => reason.is_some_and(|r| r.is_failure()),
            _ => reason.is_none(),
        };
        if !reason_fits {
            return Err(TransitionError::WrongReason { to, reason });
        }
        if let Some(r) = reason
            && !r.may_leave(self)
        {
            return Err(TransitionError::ReasonNotFrom {
                from: self,
                reason: r,
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for BotStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StatusReason {
    pub const ALL: [StatusReason; 22] = [
        StatusReason::MeetingEnded,
        StatusReason::LeaveRequested,
        StatusReason::NobodyJoined,
        StatusReason::AloneTooLong,
        StatusReason::SilenceTooLong,
        StatusReason::MaxDuration,
        StatusReason::AdmissionDenied,
        StatusReason::MeetingNotFound,
        StatusReason::JoinTimeout,
        StatusReason::LobbyTimeout,
        StatusReason::Kicked,
        StatusReason::SignInRequired,
        StatusReason::BlockedByPlatform,
        StatusReason::WorkerLost,
        StatusReason::WorkerShutdown,
        StatusReason::WorkerRestarted,
        StatusReason::PlatformError,
        StatusReason::Internal,
        StatusReason::NoCapacity,
        StatusReason::WorkerOverloaded,
        StatusReason::PageUnresponsive,
        StatusReason::WrongPasscode,
    ];

    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            StatusReason::MeetingEnded
                | StatusReason::LeaveRequested
                | StatusReason::NobodyJoined
                | StatusReason::AloneTooLong
                | StatusReason::SilenceTooLong
                | StatusReason::MaxDuration
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusReason::MeetingEnded => "MEETING_ENDED",
            StatusReason::LeaveRequested => "LEAVE_REQUESTED",
            StatusReason::NobodyJoined => "NOBODY_JOINED",
            StatusReason::AloneTooLong => "ALONE_TOO_LONG",
            StatusReason::SilenceTooLong => "SILENCE_TOO_LONG",
            StatusReason::MaxDuration => "MAX_DURATION",
            StatusReason::AdmissionDenied => "ADMISSION_DENIED",
            StatusReason::MeetingNotFound => "MEETING_NOT_FOUND",
            StatusReason::JoinTimeout => "JOIN_TIMEOUT",
            StatusReason::LobbyTimeout => "LOBBY_TIMEOUT",
            StatusReason::Kicked => "KICKED",
            StatusReason::SignInRequired => "SIGN_IN_REQUIRED",
            StatusReason::BlockedByPlatform => "BLOCKED_BY_PLATFORM",
            StatusReason::WorkerLost => "WORKER_LOST",
            StatusReason::WorkerShutdown => "WORKER_SHUTDOWN",
            StatusReason::WorkerRestarted => "WORKER_RESTARTED",
            StatusReason::PlatformError => "PLATFORM_ERROR",
            StatusReason::NoCapacity => "NO_CAPACITY",
            StatusReason::WorkerOverloaded => "WORKER_OVERLOADED",
            StatusReason::PageUnresponsive => "PAGE_UNRESPONSIVE",
            StatusReason::WrongPasscode => "WRONG_PASSCODE",
            StatusReason::Internal => "INTERNAL",
        }
    }

    pub fn parse(s: &str) -> Option<StatusReason> {
        StatusReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a bot in `from` may end with this reason: a bot that waited
    /// in the queue for a worker fails with `NO_CAPACITY` only from `QUEUED`
    /// (a bot that reached a worker failed for some other reason).
    pub fn may_leave(self, from: BotStatus) -> bool {
        match self {
            StatusReason::NoCapacity => from == BotStatus::Queued,
            _ => true,
        }
    }

    /// The final status this reason belongs to.
    pub fn final_status(self) -> BotStatus {
        if self.is_failure() {
            BotStatus::Failed
        } else {
            BotStatus::Ended
        }
    }
}

impl std::fmt::Display for StatusReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::BotStatus::*;
    use super::*;

    #[test]
    fn happy_path_is_allowed_step_by_step() {
        let path = [Queued, Dispatched, Joining, WaitingRoom, InCall, Leaving];
        for w in path.windows(2) {
            w[0].check_transition(w[1], None).unwrap();
        }
        Leaving
            .check_transition(Ended, Some(StatusReason::MeetingEnded))
            .unwrap();
    }

    #[test]
    fn transition_table() {
        // (from, to, allowed) for every non-terminal target without a reason.
        let table = [
            (Queued, Dispatched, true),
            (Queued, Joining, false),
            (Queued, InCall, false),
            (Dispatched, Queued, true),
            (Dispatched, InCall, true),
            (Joining, Queued, true),
            (Joining, Dispatched, false),
            (WaitingRoom, Queued, true),
            (WaitingRoom, Joining, false),
            (InCall, Queued, false),
            (InCall, WaitingRoom, false),
            (InCall, Leaving, true),
            (Leaving, InCall, false),
            (Leaving, Queued, false),
        ];
        for (from, to, allowed) in table {
            assert_eq!(
                from.check_transition(to, None).is_ok(),
                allowed,
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn final_statuses_never_change() {
        for from in [Ended, Failed] {
            for to in BotStatus::ALL {
                assert_eq!(
                    from.check_transition(to, Some(StatusReason::Internal)),
                    Err(TransitionError::Final(from))
                );
            }
        }
    }

    #[test]
    fn terminal_statuses_need_a_fitting_reason() {
        assert!(
            InCall
                .check_transition(Failed, Some(StatusReason::MeetingEnded))
                .is_err()
        );
        assert!(
            InCall
                .check_transition(Ended, Some(StatusReason::Kicked))
                .is_err()
        );
        assert!(InCall.check_transition(Ended, None).is_err());
        assert!(
            Joining
                .check_transition(WaitingRoom, Some(StatusReason::Kicked))
                .is_err()
        );
        for r in StatusReason::ALL
            .into_iter()
            .filter(|r| r.may_leave(InCall))
        {
            InCall.check_transition(r.final_status(), Some(r)).unwrap();
        }
    }

    #[test]
    fn no_capacity_fails_only_a_queued_bot() {
        let r = Some(StatusReason::NoCapacity);
        assert_eq!(StatusReason::NoCapacity.final_status(), Failed);
        Queued.check_transition(Failed, r).unwrap();
        assert!(Queued.check_transition(Ended, r).is_err(), "a failure");
        for from in [Dispatched, Joining, WaitingRoom, InCall, Leaving] {
            assert_eq!(
                from.check_transition(Failed, r),
                Err(TransitionError::ReasonNotFrom {
                    from,
                    reason: StatusReason::NoCapacity
                }),
                "{from}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for s in BotStatus::ALL {
            assert_eq!(BotStatus::parse(s.as_str()), Some(s));
        }
        for r in StatusReason::ALL {
            assert_eq!(StatusReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(BotStatus::parse("in_call"), None);
    }
}
