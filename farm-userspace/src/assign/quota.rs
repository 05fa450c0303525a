//! Weight-proportional quotas, apportioned exactly in integers, and how a row of the
//! owner table measures up to them.
use std::collections::{BTreeMap, BTreeSet};

use farm_common::NO_OWNER;
use serde::Serialize;

use super::{Member, eligible};

/// One node's share of a row: the buckets it owns against its quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeShare {
    pub node: u16,
    pub weight: u32,
    pub owned: u32,
    pub quota: u32,
}

/// The share of every member, and of any other node `row` names, by id: what `farm
/// buckets` and the agent's status page show of a row.
pub fn shares(members: &[Member], row: &[u16]) -> Vec<NodeShare> {
    let quotas = quotas(members, row.len() as u32);
    let owners = row.iter().copied().filter(|&o| o != NO_OWNER);
    let ids: BTreeSet<u16> = members.iter().map(|m| m.id).chain(owners).collect();
    ids.into_iter()
        .map(|node| NodeShare {
            node,
            weight: members.iter().find(|m| m.id == node).map_or(0, |m| m.weight),
            owned: row.iter().filter(|&&o| o == node).count() as u32,
            quota: quotas.get(&node).copied().unwrap_or(0),
        })
        .collect()
}

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
