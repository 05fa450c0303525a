//! The verdicts given without reading an owner table, each counted: frames that are not
//! for a VIP, and frames too short or impossible to judge.
use aya_ebpf::bindings::xdp_action;
use farm_common::GLOBAL_SLOT;

use crate::maps::count;

/// A frame for the VIP of `slot` whose headers are cut short or impossible: dropped.
#[inline(always)]
pub fn malformed(slot: u16) -> u32 {
    count(slot as u32, |c| &mut c.malformed);
    xdp_action::XDP_DROP
}

/// Too short to tell what it is: not ours to judge, the stack drops it.
#[inline(always)]
pub fn pass_malformed() -> u32 {
    count(GLOBAL_SLOT, |c| &mut c.malformed);
    xdp_action::XDP_PASS
}

#[inline(always)]
pub fn pass_not_vip() -> u32 {
    count(GLOBAL_SLOT, |c| &mut c.passed);
    xdp_action::XDP_PASS
}
