//! Retention: how long each class of a tenant's data is kept, and, given
//! the tenant's policy, the platform's defaults, its legal holds and a
//! time, what has expired.
//!
//! Pure: callers read the policy, the defaults and the holds from wherever
//! they keep them and bring the time (`as_of`); this module never looks at
//! a clock. The sweeper asks the database for candidates and keeps only
//! those [`Plan::verdict`] calls expired, so a bug in a query can narrow a
//! deletion but never widen it.
//!
//! The rules:
//!
//! - A rule per class: the tenant's own for that class, else the tenant's
//!   one number for recordings, transcripts and chat (the first retention
//!   setting, `setRetention`), else the platform's default, else kept.
//! - A bot's data ages from the moment the bot ended; a bot that has not
//!   ended (or is not final) has nothing expired. Webhook deliveries age
//!   from when they were queued, and only once delivered or given up on.
//! - A bot's metadata (its row, events and warnings) outlives everything
//!   else of the bot: it expires once every class of the bot has.
//! - A legal hold on the tenant keeps everything; one on a bot keeps that
//!   bot's data and the webhook deliveries about it.
//! - The audit log is no class here: retention never deletes it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest retention a tenant or the operator may set, in days.
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// A class of data with its own retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DataClass {
    /// The recording and every chunk of it in the object store.
    Recordings,
    /// Transcript segments.
    Transcripts,
    /// Chat messages.
    Chat,
    /// Participants and the speaker timeline.
    Participants,
    /// The bot itself: its row, events and warnings.
    BotMetadata,
    /// Webhook deliveries and their attempts.
    WebhookDeliveries,
}

impl DataClass {
    /// In the order a sweep deletes them: a bot's data before the bot.
    pub const ALL: [DataClass; 6] = [
        DataClass::Recordings,
        DataClass::Transcripts,
        DataClass::Chat,
        DataClass::Participants,
        DataClass::WebhookDeliveries,
        DataClass::BotMetadata,
    ];

    /// The name in storage, metrics and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Recordings => "recordings",
            DataClass::Transcripts => "transcripts",
            DataClass::Chat => "chat",
            DataClass::Participants => "participants",
            DataClass::BotMetadata => "bot_metadata",
            DataClass::WebhookDeliveries => "webhook_deliveries",
        }
    }

    pub fn parse(s: &str) -> Option<DataClass> {
        DataClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Data that hangs off one bot and ages from its end.
    pub fn is_bot_data(self) -> bool {
        self != DataClass::WebhookDeliveries
    }

    /// Covered by the tenant's one number of the first retention setting.
    pub fn follows_tenant_days(self) -> bool {
        matches!(
            self,
            DataClass::Recordings | DataClass::Transcripts | DataClass::Chat
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error("retention must be between 1 and {MAX_RETENTION_DAYS} days")]
    Days,
    #[error("unknown data class {0:?}")]
    Class(String),
}

/// Checks a number of days someone asks for.
pub fn validate_days(days: i64) -> Result<u32, RetentionError> {
    if (1..=i64::from(MAX_RETENTION_DAYS)).contains(&days) {
        Ok(days as u32)
    } else {
        Err(RetentionError::Days)
    }
}

/// What a tenant chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRetention {
    /// Per class: `Some(days)`, or `None` to keep that class forever
    /// whatever the defaults say. Absent: no choice of the tenant's.
    pub classes: BTreeMap<DataClass, Option<u32>>,
    /// The one number of the first setting, for recordings, transcripts
    /// and chat.
    pub all_days: Option<u32>,
}

/// The operator's defaults: days per class; absent classes are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults(pub BTreeMap<DataClass, u32>);

/// Where a class's rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Source {
    /// The tenant's rule for this class.
    Tenant,
    /// The tenant's one number for recordings, transcripts and chat.
    TenantSettings,
    /// The platform's default for the class.
    PlatformDefault,
    /// Nothing set anywhere: kept.
    Unset,
}

/// The rule a class follows in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub class: DataClass,
    /// `None`: kept until deleted otherwise.
    pub days: Option<u32>,
    pub source: Source,
}

/// The rule of `class` for a tenant.
pub fn rule(class: DataClass, tenant: &TenantRetention, defaults: &Defaults) -> Rule {
    let (days, source) = if let Some(&d) = tenant.classes.get(&class) {
        (d, Source::Tenant)
    } else if let (true, Some(d)) = (class.follows_tenant_days(), tenant.all_days) {
        (Some(d), Source::TenantSettings)
    } else if let Some(&d) = defaults.0.get(&class) {
        (Some(d), Source::PlatformDefault)
    } else {
        (None, Source::Unset)
    };
    Rule {
        class,
        days,
        source,
    }
}

/// A tenant's active legal holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holds {
    /// A hold on the whole tenant.
    pub tenant: bool,
    /// Bots held one by one.
    pub bots: BTreeSet<String>,
}

/// One item the sweeper found: a bot's data (with the bot's end) or a
/// webhook delivery (with when it was queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// The bot the item belongs to or is about.
    pub bot_id: Option<&'a str>,
    /// When it started to age: the bot's end, or the delivery's queueing.
    /// `None`: it has not started (a bot that has not ended).
    pub since: Option<DateTime<Utc>>,
    /// Nothing moves it any more: the bot is final, the delivery delivered
    /// or given up on, the recording closed.
    pub settled: bool,
}

/// Why an item stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Its class is kept forever.
    Forever,
    /// It expires then.
    Until(DateTime<Utc>),
    /// A legal hold covers it.
    Held,
    /// It is still changing (not ended, not delivered, recording open).
    Unsettled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Expired since then: delete it.
    Expired(DateTime<Utc>),
    Kept(Kept),
}

/// One tenant's retention at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub as_of: DateTime<Utc>,
    rules: BTreeMap<DataClass, Rule>,
    holds: Holds,
}

/// The tenant's plan as of `as_of`.
pub fn plan(
    tenant: &TenantRetention,
    defaults: &Defaults,
    holds: &Holds,
    as_of: DateTime<Utc>,
) -> Plan {
    let rules = DataClass::ALL
        .into_iter()
        .map(|c| (c, rule(c, tenant, defaults)))
        .collect();
    Plan {
        as_of,
        rules,
        holds: holds.clone(),
    }
}

impl Plan {
    pub fn rule(&self, class: DataClass) -> Rule {
        self.rules[&class]
    }

    /// How long items of `class` are kept, from when they start to age.
    /// A bot's metadata is kept as long as the longest of its bot's data.
    pub fn keep_for(&self, class: DataClass) -> Option<Duration> {
        let days = |c: DataClass| self.rules[&c].days.map(|d| Duration::days(i64::from(d)));
        if class != DataClass::BotMetadata {
            return days(class);
        }
        DataClass::ALL
            .into_iter()
            .filter(|c| c.is_bot_data())
            .map(days)
            .try_fold(Duration::zero(), |longest, d| d.map(|d| longest.max(d)))
    }

    /// Items of `class` that started to age at or before this may have
    /// expired (holds and settling aside); `None`: none of the class has,
    /// the whole tenant is held or the class is kept forever.
    pub fn cutoff(&self, class: DataClass) -> Option<DateTime<Utc>> {
        if self.holds.tenant {
            return None;
        }
        self.keep_for(class)
            .and_then(|d| self.as_of.checked_sub_signed(d))
    }

    /// Bots held one by one.
    pub fn held_bots(&self) -> &BTreeSet<String> {
        &self.holds.bots
    }

    /// Whether one item of `class` is to be deleted now.
    pub fn verdict(&self, class: DataClass, item: Item<'_>) -> Verdict {
        let held_bot = item.bot_id.is_some_and(|b| self.holds.bots.contains(b));
        if self.holds.tenant || held_bot {
            return Verdict::Kept(Kept::Held);
        }
        let Some(keep) = self.keep_for(class) else {
            return Verdict::Kept(Kept::Forever);
        };
        let (Some(since), true) = (item.since, item.settled) else {
            return Verdict::Kept(Kept::Unsettled);
        };
        let expires = since + keep;
        if expires <= self.as_of {
            Verdict::Expired(expires)
        } else {
            Verdict::Kept(Kept::Until(expires))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataClass::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// A tenant's rules per class, as a table row writes them.
    type Classes<'a> = &'a [(DataClass, Option<u32>)];

    fn tenant(classes: Classes<'_>, all_days: Option<u32>) -> TenantRetention {
        TenantRetention {
            classes: classes.iter().copied().collect(),
            all_days,
        }
    }

    fn defaults(d: &[(DataClass, u32)]) -> Defaults {
        Defaults(d.iter().copied().collect())
    }

    #[test]
    fn class_names_round_trip() {
        for c in DataClass::ALL {
            assert_eq!(DataClass::parse(c.as_str()), Some(c));
        }
        assert_eq!(DataClass::parse("Transcripts"), None);
        assert_eq!(DataClass::parse("audit_log"), None, "never a class");
        assert_eq!(
            DataClass::ALL.last(),
            Some(&BotMetadata),
            "the bot goes last"
        );
    }

    #[test]
    fn days_are_checked() {
        for (asked, want) in [
            (0, Err(RetentionError::Days)),
            (-1, Err(RetentionError::Days)),
            (1, Ok(1)),
            (3650, Ok(3650)),
            (3651, Err(RetentionError::Days)),
        ] {
            assert_eq!(validate_days(asked), want, "{asked}");
        }
    }

    #[test]
    fn which_rule_a_class_follows() {
        use Source::*;
        let d = defaults(&[(Transcripts, 90), (Participants, 30), (BotMetadata, 365)]);
        // (tenant's classes, tenant's one number, class) → (days, source)
        type Case<'a> = (Classes<'a>, Option<u32>, DataClass, Option<u32>, Source);
        let cases: &[Case<'_>] = &[
            (&[], None, Transcripts, Some(90), PlatformDefault),
            (&[], None, Recordings, None, Unset),
            (&[], Some(7), Recordings, Some(7), TenantSettings),
            (&[], Some(7), Transcripts, Some(7), TenantSettings),
            (&[], Some(7), Chat, Some(7), TenantSettings),
            // The one number does not reach the other classes.
            (&[], Some(7), Participants, Some(30), PlatformDefault),
            (&[], Some(7), BotMetadata, Some(365), PlatformDefault),
            (&[], Some(7), WebhookDeliveries, None, Unset),
            // The tenant's own rule for a class wins over everything.
            (
                &[(Transcripts, Some(3))],
                Some(7),
                Transcripts,
                Some(3),
                Tenant,
            ),
            (&[(Transcripts, None)], Some(7), Transcripts, None, Tenant),
            (&[(Participants, None)], None, Participants, None, Tenant),
            (
                &[(WebhookDeliveries, Some(14))],
                None,
                WebhookDeliveries,
                Some(14),
                Tenant,
            ),
        ];
        for (classes, all, class, days, source) in cases {
            let r = rule(*class, &tenant(classes, *all), &d);
            assert_eq!(
                (r.days, r.source),
                (*days, *source),
                "{classes:?} {all:?} {class:?}"
            );
        }
    }

    #[test]
    fn a_bots_metadata_outlives_its_data() {
        let all = |days: u32| -> Vec<(DataClass, Option<u32>)> {
            DataClass::ALL.iter().map(|&c| (c, Some(days))).collect()
        };
        let as_of = t("2030-01-01T00:00:00Z");
        // (tenant's classes) → metadata kept for
        let mut longer = all(30);
        longer.retain(|(c, _)| *c != Transcripts);
        longer.push((Transcripts, Some(400)));
        let mut forever = all(30);
        forever.retain(|(c, _)| *c != Chat);
        forever.push((Chat, None));
        let mut short = all(90);
        short.retain(|(c, _)| *c != BotMetadata);
        short.push((BotMetadata, Some(1)));
        let cases: Vec<(Vec<_>, Option<i64>)> = vec![
            (all(30), Some(30)),
            (longer, Some(400)),
            (forever, None),
            // Shorter metadata waits for the data.
            (short, Some(90)),
            // Deliveries are not the bot's data: they do not hold it up.
            (
                {
                    let mut v = all(30);
                    v.retain(|(c, _)| *c != WebhookDeliveries);
                    v.push((WebhookDeliveries, None));
                    v
                },
                Some(30),
            ),
        ];
        for (classes, want) in cases {
            let p = plan(
                &tenant(&classes, None),
                &Defaults::default(),
                &Holds::default(),
                as_of,
            );
            assert_eq!(
                p.keep_for(BotMetadata),
                want.map(Duration::days),
                "{classes:?}"
            );
            assert_eq!(
                p.cutoff(BotMetadata),
                want.map(|d| as_of - Duration::days(d)),
                "{classes:?}"
            );
        }
    }

    #[test]
    fn what_has_expired() {
        use Kept::*;
        let pol = tenant(
            &[
                (Recordings, Some(30)),
                (Transcripts, Some(30)),
                (Chat, Some(10)),
                (Participants, None),
                (BotMetadata, Some(30)),
                (WebhookDeliveries, Some(7)),
            ],
            None,
        );
        let holds = Holds {
            tenant: false,
            bots: ["held".to_string()].into(),
        };
        let as_of = t("2030-02-01T00:00:00Z");
        let p = plan(&pol, &Defaults::default(), &holds, as_of);
        let ended = |s: &str| Some(t(s));
        // (class, bot, since, settled) → verdict
        let cases = [
            (
                Transcripts,
                "b",
                ended("2030-01-01T00:00:00Z"),
                true,
                Verdict::Expired(t("2030-01-31T00:00:00Z")),
            ),
            // Exactly at the boundary: expired.
            (
                Transcripts,
                "b",
                ended("2030-01-02T00:00:00Z"),
                true,
                Verdict::Expired(as_of),
            ),
            (
                Transcripts,
                "b",
                ended("2030-01-02T00:00:01Z"),
                true,
                Verdict::Kept(Until(t("2030-02-01T00:00:01Z"))),
            ),
            (
                Chat,
                "b",
                ended("2030-01-20T00:00:00Z"),
                true,
                Verdict::Expired(t("2030-01-30T00:00:00Z")),
            ),
            (
                Participants,
                "b",
                ended("2000-01-01T00:00:00Z"),
                true,
                Verdict::Kept(Forever),
            ),
            // The metadata waits for the participants, kept forever.
            (
                BotMetadata,
                "b",
                ended("2000-01-01T00:00:00Z"),
                true,
                Verdict::Kept(Forever),
            ),
            // A bot that has not ended, or is not final, keeps everything.
            (Transcripts, "b", None, false, Verdict::Kept(Unsettled)),
            (
                Transcripts,
                "b",
                ended("2000-01-01T00:00:00Z"),
                false,
                Verdict::Kept(Unsettled),
            ),
            (
                Recordings,
                "b",
                ended("2000-01-01T00:00:00Z"),
                false,
                Verdict::Kept(Unsettled),
            ),
            // A held bot keeps everything, expired or not, settled or not.
            (
                Transcripts,
                "held",
                ended("2000-01-01T00:00:00Z"),
                true,
                Verdict::Kept(Held),
            ),
            (
                Participants,
                "held",
                ended("2000-01-01T00:00:00Z"),
                true,
                Verdict::Kept(Held),
            ),
            (Recordings, "held", None, false, Verdict::Kept(Held)),
            (
                WebhookDeliveries,
                "held",
                ended("2000-01-01T00:00:00Z"),
                true,
                Verdict::Kept(Held),
            ),
            (
                WebhookDeliveries,
                "b",
                ended("2030-01-20T00:00:00Z"),
                true,
                Verdict::Expired(t("2030-01-27T00:00:00Z")),
            ),
            (
                WebhookDeliveries,
                "b",
                ended("2030-01-20T00:00:00Z"),
                false,
                Verdict::Kept(Unsettled),
            ),
        ];
        for (class, bot, since, settled, want) in cases {
            let item = Item {
                bot_id: Some(bot),
                since,
                settled,
            };
            assert_eq!(p.verdict(class, item), want, "{class:?} {item:?}");
        }
        // A delivery about no bot follows its class alone.
        let no_bot = Item {
            bot_id: None,
            since: ended("2030-01-01T00:00:00Z"),
            settled: true,
        };
        assert!(matches!(
            p.verdict(WebhookDeliveries, no_bot),
            Verdict::Expired(_)
        ));
        assert_eq!(p.cutoff(Chat), Some(t("2030-01-22T00:00:00Z")));
        assert_eq!(p.cutoff(Participants), None);
    }

    #[test]
    fn a_hold_on_the_tenant_keeps_everything() {
        let pol = tenant(&DataClass::ALL.map(|c| (c, Some(1))), None);
        let holds = Holds {
            tenant: true,
            bots: BTreeSet::new(),
        };
        let p = plan(
            &pol,
            &Defaults::default(),
            &holds,
            t("2030-01-01T00:00:00Z"),
        );
        for class in DataClass::ALL {
            assert_eq!(p.cutoff(class), None, "{class:?}");
            for bot in [Some("b"), None] {
                let item = Item {
                    bot_id: bot,
                    since: Some(t("2000-01-01T00:00:00Z")),
                    settled: true,
                };
                assert_eq!(
                    p.verdict(class, item),
                    Verdict::Kept(Kept::Held),
                    "{class:?}"
                );
            }
        }
        // Released, the same data expires.
        let p = plan(&pol, &Defaults::default(), &Holds::default(), p.as_of);
        for class in DataClass::ALL {
            assert!(p.cutoff(class).is_some(), "{class:?}");
        }
    }

    #[test]
    fn defaults_apply_where_the_tenant_chose_nothing() {
        let d = defaults(&[(Transcripts, 90), (WebhookDeliveries, 30)]);
        let as_of = t("2030-06-01T00:00:00Z");
        let p = plan(&TenantRetention::default(), &d, &Holds::default(), as_of);
        assert_eq!(p.cutoff(Transcripts), Some(as_of - Duration::days(90)));
        assert_eq!(
            p.cutoff(WebhookDeliveries),
            Some(as_of - Duration::days(30))
        );
        assert_eq!(p.cutoff(Recordings), None);
        assert_eq!(p.cutoff(BotMetadata), None, "other bot data is kept");
        // A tenant that keeps transcripts forever is not swept by the default.
        let keep = tenant(&[(Transcripts, None)], None);
        let p = plan(&keep, &d, &Holds::default(), as_of);
        assert_eq!(p.cutoff(Transcripts), None);
        assert_eq!(p.rule(Transcripts).source, Source::Tenant);
    }
}
