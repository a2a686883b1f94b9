//! Columns that hold one name out of a fixed set: a bot's status and
//! platform, a recording's state, a worker's state. Rows come out of the
//! store with these as typed enums; a stored name outside the set fails the
//! read with a database error instead of turning into some default.

use std::fmt;
use std::ops::Deref;

use attache_protocol::{BotStatus, Platform};
use sea_orm::sea_query::{ArrayType, ColumnType, Nullable, StringLen, ValueType, ValueTypeErr};
use sea_orm::{ColIdx, DbErr, QueryResult, TryGetError, TryGetable, Value};

/// An enum stored by its name.
pub(crate) trait Named: Copy + Sized + 'static {
    /// For error messages.
    const TYPE: &'static str;
    fn name(self) -> &'static str;
    fn from_name(s: &str) -> Option<Self>;
}

/// A column holding a [`Named`] value.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stored<T>(pub T);

impl<T> Deref for Stored<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: PartialEq> PartialEq<T> for Stored<T> {
    fn eq(&self, other: &T) -> bool {
        self.0 == *other
    }
}

/// Against the stored name itself, as tests and logs spell it.
impl<T: Named> PartialEq<&str> for Stored<T> {
    fn eq(&self, other: &&str) -> bool {
        self.0.name() == *other
    }
}

impl<T: Named> fmt::Display for Stored<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl<T: Named> serde::Serialize for Stored<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<T: Named> From<T> for Stored<T> {
    fn from(v: T) -> Self {
        Stored(v)
    }
}

impl<T: Named> From<Stored<T>> for Value {
    fn from(v: Stored<T>) -> Value {
        Value::String(Some(v.0.name().to_string()))
    }
}

impl<T: Named> TryGetable for Stored<T> {
    fn try_get_by<I: ColIdx>(res: &QueryResult, idx: I) -> Result<Self, TryGetError> {
        let s = String::try_get_by(res, idx)?;
        T::from_name(&s)
            .map(Stored)
            .ok_or_else(|| TryGetError::DbErr(DbErr::Type(format!("{} {s:?}", T::TYPE))))
    }
}

impl<T: Named> ValueType for Stored<T> {
    fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
        let s = <String as ValueType>::try_from(v)?;
        T::from_name(&s).map(Stored).ok_or(ValueTypeErr)
    }
    fn type_name() -> String {
        T::TYPE.to_string()
    }
    fn array_type() -> ArrayType {
        ArrayType::String
    }
    fn column_type() -> ColumnType {
        ColumnType::String(StringLen::None)
    }
}

impl<T: Named> Nullable for Stored<T> {
    fn null() -> Value {
        Value::String(None)
    }
}

impl<T: Named> sea_orm::sea_query::postgres_array::NotU8 for Stored<T> {}

impl Named for BotStatus {
    const TYPE: &'static str = "bot status";
    fn name(self) -> &'static str {
        self.as_str()
    }
    fn from_name(s: &str) -> Option<Self> {
        BotStatus::parse(s)
    }
}

impl Named for Platform {
    const TYPE: &'static str = "platform";
    fn name(self) -> &'static str {
        self.as_str()
    }
    fn from_name(s: &str) -> Option<Self> {
        Platform::parse(s)
    }
}

impl Named for crate::keys::KeyProviderKind {
    const TYPE: &'static str = "key provider";
    fn name(self) -> &'static str {
        self.as_str()
    }
    fn from_name(s: &str) -> Option<Self> {
        crate::keys::KeyProviderKind::parse(s)
    }
}

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident, $type:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            pub(crate) fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl Named for $name {
            const TYPE: &'static str = $type;
            fn name(self) -> &'static str {
                self.as_str()
            }
            fn from_name(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

named_enum!(
    /// Where a bot's recording stands.
    RecordingStatus, "recording status" {
        /// The worker is still sending chunks.
        Recording = "RECORDING",
        Ready = "READY",
        /// The bot ended before the worker closed the recording; what was
        /// sent is kept.
        Partial = "PARTIAL",
        /// Closed with no audio at all.
        Empty = "EMPTY",
        /// The bytes did not match the worker's totals.
        Corrupt = "CORRUPT",
    }
);

named_enum!(
    /// A worker's link as the database last saw it from any replica.
    WorkerState, "worker state" {
        /// Enrolled, never connected yet.
        Enrolled = "enrolled",
        Connected = "connected",
        /// Its link dropped; the grace period runs.
        Reconnecting = "reconnecting",
        /// Past the grace period: its leases were taken back.
        Lost = "lost",
    }
);

named_enum!(
    /// Why a bot whose join time has come is still `QUEUED`. The API shows
    /// it as the bot's `statusReason` while it waits.
    QueueReason, "queue reason" {
        /// No worker of the bot's region is connected.
        NoWorkerInRegion = "NO_WORKER_IN_REGION",
        /// No worker of the bot's dedicated pool is connected.
        NoWorkerInPool = "NO_WORKER_IN_POOL",
        /// Workers are connected, but every one is full (or draining).
        WorkersBusy = "WORKERS_BUSY",
    }
);

/// Whose workers a tenant's bots run on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// The shared workers of its home region.
    Shared,
    /// Only the workers of its own pool; its recordings go to its own
    /// bucket.
    Dedicated,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Shared => "SHARED",
            Isolation::Dedicated => "DEDICATED",
        }
    }
}

impl Named for Isolation {
    const TYPE: &'static str = "isolation";
    fn name(self) -> &'static str {
        self.as_str()
    }
    fn from_name(s: &str) -> Option<Self> {
        match s {
            "SHARED" => Some(Isolation::Shared),
            "DEDICATED" => Some(Isolation::Dedicated),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        for s in BotStatus::ALL {
            assert_eq!(
                <Stored<BotStatus> as ValueType>::try_from(Value::from(Stored(s))).unwrap(),
                s
            );
        }
        for s in [
            RecordingStatus::Recording,
            RecordingStatus::Ready,
            RecordingStatus::Partial,
            RecordingStatus::Empty,
            RecordingStatus::Corrupt,
        ] {
            assert_eq!(RecordingStatus::from_name(s.as_str()), Some(s));
        }
        for s in [
            WorkerState::Enrolled,
            WorkerState::Connected,
            WorkerState::Reconnecting,
            WorkerState::Lost,
        ] {
            assert_eq!(WorkerState::from_name(s.as_str()), Some(s));
        }
        assert!(
            <Stored<Platform> as ValueType>::try_from(Value::from("SKYPE".to_string())).is_err()
        );
        assert!(
            <Stored<BotStatus> as ValueType>::try_from(Value::from("queued".to_string())).is_err()
        );
    }
}
