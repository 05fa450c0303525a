//! The balancing pass: deferred acceptance of buckets by nodes with fixed quotas.
//!
//! Each bucket proposes to nodes in its rendezvous order; a node keeps at most its quota
//! of buckets, the ones it scores best, and turns the others away to their next choice.
//! With strict preferences on both sides the outcome does not depend on the order of
//! proposals, so it is a function of the inputs alone.
use std::collections::BinaryHeap;

use super::{Member, score};

/// Where a node stands in a bucket's order, and so a bucket's proposal: the smaller
/// `cost / weight` first, then the lower node index (nodes are sorted by id).
#[derive(Debug, Clone, Copy)]
struct Rank {
    cost: u32,
    weight: u32,
    node: usize,
}

impl Rank {
    /// Compares `cost / weight` by cross multiplication, exact in u64.
    fn before(self, other: Rank) -> bool {
        let mine = u64::from(self.cost) * u64::from(other.weight);
        let theirs = u64::from(other.cost) * u64::from(self.weight);
        mine < theirs || (mine == theirs && self.node < other.node)
    }
}

/// A node of the pass: its weight, hash salt, quota and the buckets it holds, worst
/// (highest cost, then highest bucket) on top of the heap.
struct Node {
    id: u16,
    weight: u32,
    salt: u32,
    quota: usize,
    held: BinaryHeap<(u32, u32)>,
}

impl Node {
    /// Takes `bucket` if there is room or it beats the worst bucket held; returns the
    /// bucket turned away, if any.
    fn offer(&mut self, cost: u32, bucket: u32) -> Option<u32> {
        if self.held.len() < self.quota {
            self.held.push((cost, bucket));
            return None;
        }
        match self.held.peek() {
            Some(&worst) if (cost, bucket) < worst => {
                self.held.pop();
                self.held.push((cost, bucket));
                Some(worst.1)
            }
            _ => Some(bucket),
        }
    }
}

/// The owner of every bucket, given `members` sorted by id with weights > 0 and their
/// quotas, which add up to `buckets`.
pub(super) fn settle(members: &[Member], quotas: &[u32], buckets: u32, seed: u32) -> Vec<u16> {
    let mut nodes: Vec<Node> = members
        .iter()
        .zip(quotas)
        .map(|(m, &quota)| Node {
            id: m.id,
            weight: m.weight,
            salt: score::node_salt(seed, m.id),
            quota: quota as usize,
            held: BinaryHeap::with_capacity(quota as usize),
        })
        .collect();
    let mut last: Vec<Option<Rank>> = vec![None; buckets as usize];
    let mut pending: Vec<u32> = (0..buckets).rev().collect();
    while let Some(bucket) = pending.pop() {
        // The quotas add up to the bucket count, so a bucket always finds room before
        // it runs out of nodes to ask.
        let choice = next_choice(&nodes, bucket, last[bucket as usize])
            .expect("quotas add up to the bucket count");
        last[bucket as usize] = Some(choice);
        pending.extend(nodes[choice.node].offer(choice.cost, bucket));
    }
    owners(&nodes, buckets)
}

/// The node `bucket` prefers most among those it ranks after `after` (all of them
/// when `after` is None).
fn next_choice(nodes: &[Node], bucket: u32, after: Option<Rank>) -> Option<Rank> {
    nodes
        .iter()
        .enumerate()
        .map(|(node, n)| Rank { cost: score::cost(n.salt, bucket), weight: n.weight, node })
        .filter(|&rank| after.is_none_or(|a| a.before(rank)))
        .reduce(|best, rank| if rank.before(best) { rank } else { best })
}

/// The table: each bucket goes to the node that holds it when the pass settles.
fn owners(nodes: &[Node], buckets: u32) -> Vec<u16> {
    let mut owners = vec![0; buckets as usize];
    for node in nodes {
        for &(_, bucket) in &node.held {
            owners[bucket as usize] = node.id;
        }
    }
    owners
}
