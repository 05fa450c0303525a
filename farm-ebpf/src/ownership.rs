//! Whether this node may take a packet: it owns the packet's bucket, and its lease is
//! fresh. Steering asks both; the answers to ARP and neighbour solicitations ask the
//! lease alone (every node holding one answers, the same answer).
use aya_ebpf::helpers::bpf_jiffies64;
use farm_common::{Control, NO_OWNER, NodeConfig, bucket_of, owner_position};

use crate::maps::{FARM_CONTROL, FARM_OWNERS, count};

/// Whether this node may take a packet of table row `slot` whose hash is `hash`: it owns
/// the bucket in the active half of the table, and its lease is fresh. Counts why not.
#[inline(always)]
pub fn may_take(cfg: &NodeConfig, slot: u32, hash: u32) -> bool {
    let Some(ctl) = FARM_CONTROL.get(0) else {
        return false;
    };
    let bucket = bucket_of(hash, cfg.bucket_count);
    let (index, lane) = owner_position(ctl.active_half & 1, slot, bucket, cfg.bucket_count);
    // A node id is never NO_OWNER (the config refuses 65535), so one compare suffices.
    let owner = FARM_OWNERS.get(index).map_or(NO_OWNER, |chunk| chunk[lane & 3]);
    if owner != cfg.node_id {
        count(slot, |c| &mut c.not_owner);
        return false;
    }
    leased(ctl, slot)
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
