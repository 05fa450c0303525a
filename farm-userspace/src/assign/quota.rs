//! Weight-proportional quotas, apportioned exactly in integers.
use std::collections::BTreeMap;

use super::{Member, eligible};

/// How many buckets each member with weight > 0 owns: `buckets * weight / total weight`
/// rounded by largest remainder, so every quota is the floor or the ceiling of the exact
/// share and the quotas add up to `buckets`. Members with weight 0 are absent.
pub fn quotas(members: &[Member], buckets: u32) -> BTreeMap<u16, u32> {
    let nodes = eligible(members);
    let quotas = apportion(&nodes, buckets);
    nodes.iter().map(|m| m.id).zip(quotas).collect()
}

/// Largest-remainder apportionment over `nodes` (sorted by id, weights > 0): everyone
/// gets the floor of their share, then the buckets left over go one each to the largest
/// remainders, ties to the lower id. Integer arithmetic only, so every node agrees.
/// With no nodes there is nothing to share out.
pub(super) fn apportion(nodes: &[Member], buckets: u32) -> Vec<u32> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let total: u64 = nodes.iter().map(|m| u64::from(m.weight)).sum();
    let shares: Vec<u64> = nodes.iter().map(|m| u64::from(buckets) * u64::from(m.weight)).collect();
    let mut quotas: Vec<u32> = shares.iter().map(|&s| (s / total) as u32).collect();
    let left = buckets - quotas.iter().sum::<u32>();
    let mut by_remainder: Vec<usize> = (0..nodes.len()).collect();
    // Stable sort: equal remainders keep id order.
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(shares[i] % total));
    for &i in &by_remainder[..left as usize] {
        quotas[i] += 1;
    }
    quotas
}
