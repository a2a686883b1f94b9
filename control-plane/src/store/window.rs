//! A slice of an ordered list, as Relay connections ask for one: the
//! `limit` items right after `after` (or from the start), or, `backward`,
//! the `limit` items right before `before` (or up to the end). Both cursors
//! may bound either direction.

#[derive(Debug, Clone)]
pub(crate) struct Window<C> {
    pub limit: u64,
    pub after: Option<C>,
    pub before: Option<C>,
    pub backward: bool,
}

/// What a query returned for a window, in list order.
#[derive(Debug)]
pub(crate) struct Slice<T> {
    pub items: Vec<T>,
    pub has_previous: bool,
    pub has_next: bool,
}

impl<C> Window<C> {
    /// The first `limit` items, from the start.
    #[cfg(test)]
    pub(crate) fn first(limit: u64) -> Window<C> {
        Window {
            limit,
            after: None,
            before: None,
            backward: false,
        }
    }

    /// Makes the slice from `rows` fetched in the window's own direction
    /// (list order forward, reversed backward), up to `limit + 1` of them.
    pub(crate) fn slice<T>(&self, mut rows: Vec<T>) -> Slice<T> {
        let more = rows.len() as u64 > self.limit;
        rows.truncate(self.limit as usize);
        if self.backward {
            rows.reverse();
            Slice {
                items: rows,
                has_previous: more,
                has_next: self.before.is_some(),
            }
        } else {
            Slice {
                items: rows,
                has_previous: self.after.is_some(),
                has_next: more,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_both_ways() {
        let fwd = Window::<u32> {
            limit: 2,
            after: Some(1),
            before: None,
            backward: false,
        };
        let s = fwd.slice(vec![2, 3, 4]);
        assert_eq!(
            (s.items, s.has_previous, s.has_next),
            (vec![2, 3], true, true)
        );
        let back = Window::<u32> {
            limit: 2,
            after: None,
            before: Some(9),
            backward: true,
        };
        // Fetched in reverse list order: 8, 7, 6.
        let s = back.slice(vec![8, 7, 6]);
        assert_eq!(
            (s.items, s.has_previous, s.has_next),
            (vec![7, 8], true, true)
        );
        let s = Window::<u32>::first(5).slice(vec![1, 2]);
        assert_eq!(
            (s.items, s.has_previous, s.has_next),
            (vec![1, 2], false, false)
        );
    }
}
