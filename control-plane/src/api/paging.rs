//! Paging shared by the API's lists: the page size a caller may ask for,
//! the opaque cursors, and the count a connection carries besides its
//! edges.

use std::fmt::Display;
use std::str::FromStr;

use async_graphql::SimpleObject;

use super::error::ApiError;
use crate::store::Window;

/// The extra fields of a connection.
#[derive(SimpleObject)]
pub(crate) struct TotalCount {
    pub(crate) total_count: u64,
}

/// `first` as a page size: between 1 and `max`, else BAD_USER_INPUT.
pub(crate) fn page_size(first: i32, max: i32) -> Result<u64, ApiError> {
    if (1..=max).contains(&first) {
        Ok(first as u64)
    } else {
        Err(ApiError::BadInput(format!(
            "first must be between 1 and {max}"
        )))
    }
}

/// The slice a connection's arguments ask for: `first` (default
/// `default`) items after `after`, or the `last` items before `before`;
/// both counts at once are BAD_USER_INPUT, as Relay discourages them.
pub(crate) fn window<C>(
    first: Option<i32>,
    after: Option<C>,
    last: Option<i32>,
    before: Option<C>,
    default: i32,
    max: i32,
) -> Result<Window<C>, ApiError> {
    let (limit, backward) = match (first, last) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadInput("give first or last, not both".into()));
        }
        (_, Some(n)) => (
            page_size(n, max)
                .map_err(|_| ApiError::BadInput(format!("last must be between 1 and {max}")))?,
            true,
        ),
        (f, None) => (page_size(f.unwrap_or(default), max)?, false),
    };
    Ok(Window {
        limit,
        after,
        before,
        backward,
    })
}

/// An opaque cursor over a position's two keys.
pub(crate) fn encode_cursor(a: impl Display, b: impl Display) -> String {
    hex::encode(format!("{a}|{b}"))
}

/// The two keys of a cursor; anything else a caller sends is
/// BAD_USER_INPUT.
pub(crate) fn decode_cursor<A: FromStr, B: FromStr>(c: &str) -> Result<(A, B), ApiError> {
    let bad = || ApiError::BadInput("invalid cursor".into());
    let raw = String::from_utf8(hex::decode(c).map_err(|_| bad())?).map_err(|_| bad())?;
    let (a, b) = raw.split_once('|').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_outside_the_range_are_bad_input() {
        assert_eq!(page_size(1, 100).unwrap(), 1);
        assert_eq!(page_size(100, 100).unwrap(), 100);
        for bad in [0, -1, 101] {
            let Err(ApiError::BadInput(m)) = page_size(bad, 100) else {
                panic!("{bad} was accepted");
            };
            assert_eq!(m, "first must be between 1 and 100");
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_bad_input() {
        let c = encode_cursor(1500, "abc|def");
        assert_eq!(
            decode_cursor::<i64, String>(&c).unwrap(),
            (1500, "abc|def".to_string())
        );
        for bad in ["zz", "", &hex::encode("nobar"), &hex::encode("x|1")] {
            assert!(
                matches!(decode_cursor::<i64, i64>(bad), Err(ApiError::BadInput(_))),
                "{bad}"
            );
        }
    }
}
