//! The maps the program shares with userspace. Layouts, names and sizes come from
//! farm-common; userspace resizes `FARM_OWNERS` to the configured bucket count at load.
//! A change to a map here (its kind, types or entries) is a change of the pinned layout:
//! bump `farm_common::LAYOUT_VERSION`.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use farm_common::{
    Control, Counters, FLOW_ENTRIES, FlowKey, FlowSeen, HANDOVER_ENTRIES, Handover, MAX_SLOTS,
    MAX_VIPS, NodeConfig, OWNERS_MAP_FLAGS, OwnerChunk, SERVICE_ENTRIES, VIP_INDEX_ENTRIES,
    VipEntry, owner_table_entries,
};

#[map]
pub static FARM_CONFIG: Array<NodeConfig> = Array::with_max_entries(1, 0);

#[map]
pub static FARM_CONTROL: Array<Control> = Array::with_max_entries(1, 0);

#[map]
pub static FARM_VIPS: Array<VipEntry> = Array::with_max_entries(MAX_VIPS, 0);

#[map]
pub static FARM_VIP_INDEX: Array<VipEntry> = Array::with_max_entries(VIP_INDEX_ENTRIES, 0);

#[map]
pub static FARM_SERVICES: Array<u64> = Array::with_max_entries(SERVICE_ENTRIES, 0);

#[map]
pub static FARM_OWNERS: Array<OwnerChunk> =
    Array::with_max_entries(owner_table_entries(4096), OWNERS_MAP_FLAGS);

/// Buckets in handover, by `handover_key`: read only for an owner entry of `HANDOVER`,
/// so a hash map (only moving buckets have an entry) costs nothing elsewhere.
#[map]
pub static FARM_HANDOVER: HashMap<u32, Handover> = HashMap::with_max_entries(HANDOVER_ENTRIES, 0);

/// UDP flows learned on buckets in handover: their holder, and when each was last seen.
#[map]
pub static FARM_FLOWS: LruHashMap<FlowKey, FlowSeen> =
    LruHashMap::with_max_entries(FLOW_ENTRIES, 0);

#[map]
pub static FARM_COUNTERS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_SLOTS + 1, 0);

/// The layout version of the maps pinned beside it (`farm_common::LAYOUT_VERSION`),
/// written and read by userspace only; the program never looks at it.
#[map]
pub static FARM_META: Array<u32> = Array::with_max_entries(1, 0);

/// Adds one to the counter `pick` selects in `slot`'s per-CPU record.
#[inline(always)]
pub fn count(slot: u32, pick: impl FnOnce(&mut Counters) -> &mut u64) {
    if let Some(c) = FARM_COUNTERS.get_ptr_mut(slot) {
        // Per-CPU record: no other CPU writes it, so a plain add is enough.
        unsafe { *pick(&mut *c) += 1 };
    }
}
