//! Port and bucket lists: entries that are a number or a `"first-last"` range, and the
//! search for two entries that claim the same number.
use std::{fmt, ops::RangeInclusive};

use super::{ConfigError, check::Ctx, raw::RangeItem};

/// One inclusive range a list entry claims, and the field that wrote it.
pub(super) struct Claim {
    pub first: u32,
    pub last: u32,
    pub field: String,
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Reads one list entry as an inclusive range within `bounds`; `what` names the unit
/// ("port", "bucket") in the refusal.
pub(super) fn claim(
    ctx: &Ctx,
    field: String,
    item: &RangeItem,
    what: &str,
    bounds: RangeInclusive<u32>,
) -> Result<Claim, ConfigError> {
    let (first, last) = match item {
        RangeItem::Number(n) => (*n, *n),
        RangeItem::Text(text) => split(text).ok_or_else(|| {
            ctx.error(
                &field,
                format!("{text:?} is not a {what} number or a \"first-last\" range like \"8-15\""),
            )
        })?,
    };
    if first > last {
        return Err(ctx.error(
            &field,
            format!("range {first}-{last} runs backwards; write it as {last}-{first}"),
        ));
    }
    let (low, high) = (u64::from(*bounds.start()), u64::from(*bounds.end()));
    match [first, last].into_iter().find(|n| !(low..=high).contains(n)) {
        Some(n) => {
            Err(ctx.error(&field, format!("{what} {n} is out of range; use {low}..={high}")))
        }
        // Both ends are within `bounds`, which are u32.
        None => Ok(Claim { first: first as u32, last: last as u32, field }),
    }
}

/// `"8000-8100"` or `"80"`.
fn split(text: &str) -> Option<(u64, u64)> {
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match text.split_once('-') {
        Some((first, last)) => Some((number(first)?, number(last)?)),
        None => number(text).map(|n| (n, n)),
    }
}

/// Two claims that share a number, the earlier (in `claims` order) first.
pub(super) fn overlap(claims: &[Claim]) -> Option<(&Claim, &Claim)> {
    let mut order: Vec<usize> = (0..claims.len()).collect();
    order.sort_by_key(|&i| (claims[i].first, i));
    // Sorted by start, disjoint claims each end before the next starts, so any overlap
    // shows up between neighbours.
    order.windows(2).find(|w| claims[w[1]].first <= claims[w[0]].last).map(|w| {
        let (a, b) = (w[0].min(w[1]), w[0].max(w[1]));
        (&claims[a], &claims[b])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(spans: &[(u32, u32)]) -> Vec<Claim> {
        spans
            .iter()
            .enumerate()
            .map(|(i, &(first, last))| Claim { first, last, field: format!("x[{i}]") })
            .collect()
    }

    fn fields(spans: &[(u32, u32)]) -> Option<(String, String)> {
        let claims = claims(spans);
        overlap(&claims).map(|(a, b)| (a.field.clone(), b.field.clone()))
    }

    #[test]
    fn finds_overlaps_in_any_order() {
        assert_eq!(fields(&[(1, 5), (6, 9)]), None);
        assert_eq!(fields(&[(6, 9), (1, 6)]), Some(("x[0]".into(), "x[1]".into())));
        assert_eq!(fields(&[(1, 100), (20, 30), (50, 50)]), Some(("x[0]".into(), "x[1]".into())));
        assert_eq!(fields(&[(7, 7), (7, 7)]), Some(("x[0]".into(), "x[1]".into())));
        assert_eq!(fields(&[]), None);
    }

    #[test]
    fn splits_ranges_and_single_numbers() {
        assert_eq!(split("8000-8100"), Some((8000, 8100)));
        assert_eq!(split(" 80 "), Some((80, 80)));
        assert_eq!(split("80-"), None);
        assert_eq!(split("http"), None);
    }

    #[test]
    fn claims_display_as_written() {
        let c = claims(&[(80, 80), (1, 9)]);
        assert_eq!(format!("{} {}", c[0], c[1]), "80 1-9");
    }
}
