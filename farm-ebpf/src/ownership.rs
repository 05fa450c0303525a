//! Whether this node may take a packet: it owns the packet's bucket, and its lease is
//! fresh. Steering asks both; the answers to ARP and neighbour solicitations ask the
//! lease alone (every node holding one answers, the same answer).
use aya_ebpf::helpers::bpf_jiffies64;
use farm_common::{
    Control, HANDOVER, Handover, NO_OWNER, NodeConfig, bucket_of, handover_key, owner_position,
};

use crate::maps::{FARM_CONTROL, FARM_HANDOVER, FARM_OWNERS, count};

/// What this node does with a packet of a bucket.
pub enum Take {
    /// Drop it (counted).
    No,
    /// Accept it: this node owns the bucket (the caller counts `accepted`).
    Owner,
    /// Accept it: the bucket is in handover and this node keeps the packet's flow
    /// (counted by `handover`).
    Kept,
}

/// Whether this node may take a packet of table row `slot` whose hash is `hash`: it owns
/// the bucket in the active half of the table, or the bucket is in handover with this
/// node as its old or new owner and `handover` says this node keeps the packet; and its
/// lease is fresh. Counts why not.
#[inline(always)]
pub fn may_take(
    cfg: &NodeConfig,
    slot: u32,
    hash: u32,
    handover: impl FnOnce(&Handover) -> bool,
) -> Take {
    let Some(ctl) = FARM_CONTROL.get(0) else {
        return Take::No;
    };
    let half = ctl.active_half & 1;
    let bucket = bucket_of(hash, cfg.bucket_count);
    let (index, lane) = owner_position(half, slot, bucket, cfg.bucket_count);
    // A node id is never NO_OWNER nor HANDOVER (the config refuses them), so one compare
    // decides every bucket this node owns outright.
    let owner = FARM_OWNERS.get(index).map_or(NO_OWNER, |chunk| chunk[lane & 3]);
    if owner == cfg.node_id {
        return if leased(ctl, slot) { Take::Owner } else { Take::No };
    }
    let moving = match owner {
        HANDOVER => FARM_HANDOVER.get_ptr(handover_key(half, slot, bucket)),
        _ => None,
    };
    let Some(h) = moving.map(|h| unsafe { &*h }) else {
        count(slot, |c| &mut c.not_owner);
        return Take::No;
    };
    if h.old != cfg.node_id && h.new != cfg.node_id {
        count(slot, |c| &mut c.not_owner);
        return Take::No;
    }
    if leased(ctl, slot) && handover(h) { Take::Kept } else { Take::No }
}

/// Whether this node's lease is fresh, counting `lease_expired` in `slot` if not. Past
/// it, this node's agent is dead or hung, and the node must stop answering before its
/// peers hand its buckets to others.
#[inline(always)]
pub fn lease_fresh(slot: u32) -> bool {
    FARM_CONTROL.get(0).is_some_and(|ctl| leased(ctl, slot))
}

#[inline(always)]
fn leased(ctl: &Control, slot: u32) -> bool {
    if unsafe { bpf_jiffies64() } >= ctl.lease {
        count(slot, |c| &mut c.lease_expired);
        return false;
    }
    true
}
