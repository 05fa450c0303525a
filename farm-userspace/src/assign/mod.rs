//! Bucket assignment: which live node owns each bucket of a service's table.
//!
//! A pure function of (members, weights, bucket count, seed), so every agent that holds
//! the same view computes the same table and no table is ever sent between nodes.
//!
//! Algorithm: weighted rendezvous hashing followed by a balancing pass. Every
//! (bucket, node) pair gets a cost from a hash of (seed, node id, bucket); each bucket
//! prefers nodes by cost / weight, each node prefers the buckets it costs least, and each
//! node holds exactly its weight-proportional quota. The balancing pass is deferred acceptance
//! (Gale-Shapley with capacities): a bucket asks its next preferred node, which keeps
//! it if it has room or likes it better than the worst bucket it holds.
//!
//! Why rendezvous rather than Maglev: a bucket's preference order over any two nodes
//! depends only on those two nodes, never on who else is in the farm, and deferred
//! acceptance has a unique outcome whatever order buckets are processed in. So a
//! membership change only disturbs the buckets whose preferred owners change, plus the
//! few that the small quota shifts push along (about 1% of the buckets, see the tests),
//! while Maglev's population order reshuffles more as the farm changes size.
mod balance;
mod quota;
mod score;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use farm_common::NO_OWNER;

pub use quota::{NodeShare, quotas, shares};

/// A live node and its weight for this table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub id: u16,
    pub weight: u32,
}

/// One owner per bucket, `NO_OWNER` where nobody can take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    owners: Vec<u16>,
}

impl Table {
    /// The owner of every bucket, indexed by bucket.
    pub fn owners(&self) -> &[u16] {
        &self.owners
    }

    /// True when no bucket has an owner: the view holds no member with weight > 0 (or
    /// the table has no buckets), so every packet to the service is dropped. The agent
    /// logs this.
    pub fn is_empty(&self) -> bool {
        self.owners.iter().all(|&owner| owner == NO_OWNER)
    }

    /// How many buckets each node owns; nodes owning none are absent.
    pub fn counts(&self) -> BTreeMap<u16, u32> {
        let mut counts = BTreeMap::new();
        for &owner in self.owners.iter().filter(|&&owner| owner != NO_OWNER) {
            *counts.entry(owner).or_insert(0) += 1;
        }
        counts
    }
}

/// The table for `members` over `buckets` buckets. The order of `members` does not
/// matter; members with weight 0 own nothing. Each node with weight > 0 owns exactly its
/// quota (see [`quotas`]).
pub fn assign(members: &[Member], buckets: u32, seed: u32) -> Table {
    let nodes = eligible(members);
    let owners = if nodes.is_empty() {
        vec![NO_OWNER; buckets as usize]
    } else {
        balance::settle(&nodes, &quota::apportion(&nodes, buckets), buckets, seed)
    };
    Table { owners }
}

/// The members that can own buckets, sorted by id so that the caller's order never
/// matters. `NO_OWNER` is the "nobody" marker, so a node with that id cannot own a
/// bucket; a duplicated id counts once, with its largest weight.
fn eligible(members: &[Member]) -> Vec<Member> {
    let mut nodes: Vec<Member> =
        members.iter().copied().filter(|m| m.weight > 0 && m.id != NO_OWNER).collect();
    nodes.sort_by_key(|m| (m.id, std::cmp::Reverse(m.weight)));
    nodes.dedup_by_key(|m| m.id);
    nodes
}
