//! What to repair when a worker (re)connects and lists the bots it runs.
//! Stored leases are the intent, the worker's report is what is observed;
//! this pure function compares them and says what must change.

use attache_protocol::{BotReport, BotStatus};
use uuid::Uuid;

/// A lease the database says this worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldLease {
    pub bot_id: Uuid,
    pub generation: u64,
    pub status: BotStatus,
    pub leave_requested: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Repair {
    /// The worker runs a bot it holds no current lease for: stop it and
    /// drop its results.
    Revoke { bot_id: Uuid, generation: u64 },
    /// The customer asked the bot to leave; say it again.
    Cancel { bot_id: Uuid, generation: u64 },
    /// The lease was granted but never reached the worker: send it again.
    Reassign { bot_id: Uuid },
    /// The worker no longer has a bot it had started (it restarted): the bot
    /// is lost with it.
    Expire { bot_id: Uuid, generation: u64 },
}

pub(crate) fn reconcile(held: &[HeldLease], reported: &[BotReport]) -> Vec<Repair> {
    let mut out = Vec::new();
    for r in reported {
        let current = held
            .iter()
            .find(|h| h.bot_id == r.bot_id && h.generation == r.generation);
        match current {
            None => out.push(Repair::Revoke {
                bot_id: r.bot_id,
                generation: r.generation,
            }),
            Some(h) if h.leave_requested && !r.status.is_final() => out.push(Repair::Cancel {
                bot_id: r.bot_id,
                generation: r.generation,
            }),
            Some(_) => {}
        }
    }
    for h in held {
        let reported = reported
            .iter()
            .any(|r| r.bot_id == h.bot_id && r.generation == h.generation);
        if reported {
            continue;
        }
        if h.status == BotStatus::Dispatched {
            out.push(Repair::Reassign { bot_id: h.bot_id });
        } else {
            out.push(Repair::Expire {
                bot_id: h.bot_id,
                generation: h.generation,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn held(n: u128, generation: u64, status: BotStatus) -> HeldLease {
        HeldLease {
            bot_id: id(n),
            generation,
            status,
            leave_requested: false,
        }
    }

    fn report(n: u128, generation: u64, status: BotStatus) -> BotReport {
        BotReport {
            bot_id: id(n),
            generation,
            status,
        }
    }

    #[test]
    fn matching_views_need_nothing() {
        let h = [held(1, 3, BotStatus::InCall)];
        let r = [report(1, 3, BotStatus::InCall)];
        assert!(reconcile(&h, &r).is_empty());
    }

    #[test]
    fn stale_generation_is_cancelled() {
        let h = [held(1, 4, BotStatus::Dispatched)];
        let r = [report(1, 3, BotStatus::Joining)];
        assert_eq!(
            reconcile(&h, &r),
            vec![
                Repair::Revoke {
                    bot_id: id(1),
                    generation: 3
                },
                Repair::Reassign { bot_id: id(1) },
            ]
        );
    }

    #[test]
    fn unknown_bot_is_cancelled() {
        assert_eq!(
            reconcile(&[], &[report(9, 1, BotStatus::InCall)]),
            vec![Repair::Revoke {
                bot_id: id(9),
                generation: 1
            }]
        );
    }

    #[test]
    fn restarted_worker_loses_started_bots_but_gets_unstarted_ones_again() {
        let h = [
            held(1, 1, BotStatus::Dispatched),
            held(2, 1, BotStatus::Joining),
            held(3, 2, BotStatus::InCall),
        ];
        assert_eq!(
            reconcile(&h, &[]),
            vec![
                Repair::Reassign { bot_id: id(1) },
                Repair::Expire {
                    bot_id: id(2),
                    generation: 1
                },
                Repair::Expire {
                    bot_id: id(3),
                    generation: 2
                },
            ]
        );
    }

    #[test]
    fn pending_leave_is_sent_again() {
        let mut h = held(1, 1, BotStatus::InCall);
        h.leave_requested = true;
        assert_eq!(
            reconcile(&[h], &[report(1, 1, BotStatus::InCall)]),
            vec![Repair::Cancel {
                bot_id: id(1),
                generation: 1
            }]
        );
    }
}
