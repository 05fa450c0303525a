//! `static_owners:`, the fixed owner table for running the data plane without the agent.
use std::collections::BTreeMap;

use super::{
    BucketRange, ConfigError, Peer,
    check::Ctx,
    cluster::known_node,
    ranges::{claim, overlap},
    raw::RangeItem,
};

pub(super) fn static_owners(
    raw: BTreeMap<u64, Vec<RangeItem>>,
    peers: &[Peer],
    buckets: u32,
    ctx: &Ctx,
) -> Result<BTreeMap<u16, Vec<BucketRange>>, ConfigError> {
    let mut claims = Vec::new();
    let mut owners = BTreeMap::new();
    for (node, items) in raw {
        let at = format!("static_owners.{node}");
        let id = known_node(ctx, &at, node, peers)?;
        let mine = items
            .iter()
            .enumerate()
            .map(|(j, item)| claim(ctx, format!("{at}[{j}]"), item, "bucket", 0..=buckets - 1))
            .collect::<Result<Vec<_>, _>>()?;
        owners.insert(
            id,
            mine.iter().map(|c| BucketRange { first: c.first, last: c.last }).collect(),
        );
        claims.extend(mine);
    }
    match overlap(&claims) {
        Some((earlier, later)) => Err(ctx.error(
            &later.field,
            format!(
                "buckets {later} overlap {earlier} at {}; give each bucket one owner",
                earlier.field
            ),
        )),
        None => Ok(owners),
    }
}
