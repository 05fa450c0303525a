//! Finding the VIP a packet is for, in the one array read that traffic for no VIP pays.
use farm_common::{Addr, MAX_VIPS, VIP_IN_USE, VIP_INDEX_SHARED, VipEntry, vip_fold};

use crate::maps::{FARM_VIP_INDEX, FARM_VIPS};

/// A VIP as steering needs it: its slot (its index) and default mode.
pub struct Vip {
    pub slot: u16,
    pub mode: u8,
}

/// The VIP `addr` is, if any: the index entry at the address's fold is the VIP it may
/// be, and its address says whether it is.
#[inline(always)]
pub fn find_vip(addr: &Addr) -> Option<Vip> {
    let e = FARM_VIP_INDEX.get(vip_fold(addr))?;
    match e.in_use {
        VIP_INDEX_SHARED => (0..MAX_VIPS).find_map(|i| FARM_VIPS.get(i).and_then(|e| is(e, addr))),
        _ => is(e, addr),
    }
}

#[inline(always)]
fn is(e: &VipEntry, addr: &Addr) -> Option<Vip> {
    (e.in_use == VIP_IN_USE && e.addr == *addr)
        .then_some(Vip { slot: e.index as u16, mode: e.mode })
}
