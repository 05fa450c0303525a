//! Layouts of the maps the XDP program reads and userspace writes, their names and the
//! limits that size them. Every struct is `#[repr(C)]` with its padding spelled out, so
//! the kernel side and userspace see the same bytes, and the verifier never meets
//! uninitialised padding in a key.

/// Most buckets a table may have (the config's `buckets`).
pub const MAX_BUCKETS: u32 = 65_536;
/// Table slots: one per VIP (its default rule, ICMP echo and fragments) and one per
/// service. A slot owns one row of each half of the owner table and one counter record.
/// VIP `i` of the configuration has slot `i`; services follow.
pub const MAX_SLOTS: u32 = 64;
/// The slot no node ever owns: while a reload moves a port from one service (or the
/// VIP's default) to another, nodes point the port here until every node holds the new
/// file, so a node that has reloaded and one that has not never both take it. A
/// configuration's VIPs and services use the slots below it.
pub const LIMBO_SLOT: u32 = MAX_SLOTS - 1;
/// Counter record for what belongs to no slot (frames passed because they are not for a
/// VIP, frames too short to tell): the last entry of `FARM_COUNTERS`.
pub const GLOBAL_SLOT: u32 = MAX_SLOTS;
/// Entries in `FARM_VIPS`.
pub const MAX_VIPS: u32 = 32;
/// An owner table entry that names no node: nobody accepts the bucket.
pub const NO_OWNER: u16 = u16::MAX;
/// An owner table entry that says the bucket is in handover between two live nodes: its
/// `Handover` is in `FARM_HANDOVER`. Like `NO_OWNER`, no node has this id, so a node's
/// one compare against its own id still decides every other bucket.
pub const HANDOVER: u16 = u16::MAX - 1;
/// Entries of `FARM_HANDOVER`: buckets in handover, both halves together. A move of
/// more buckets than this hands over the first ones and moves the rest as a failure.
pub const HANDOVER_ENTRIES: u32 = 65_536;
/// Entries of `FARM_FLOWS`: UDP flows learned on buckets in handover, least recently
/// seen evicted first.
pub const FLOW_ENTRIES: u32 = 65_536;
/// Owners packed into one `FARM_OWNERS` element. Array map elements are rounded up to 8
/// bytes by the kernel, so one `u16` an element would waste three quarters of the map.
pub const OWNERS_PER_CHUNK: u32 = 4;

/// Map names, shared by the program's statics and the loader that pins and opens them.
pub const MAP_CONFIG: &str = "FARM_CONFIG";
pub const MAP_CONTROL: &str = "FARM_CONTROL";
pub const MAP_VIPS: &str = "FARM_VIPS";
pub const MAP_SERVICES: &str = "FARM_SERVICES";
pub const MAP_OWNERS: &str = "FARM_OWNERS";
pub const MAP_COUNTERS: &str = "FARM_COUNTERS";
pub const MAP_VIP_INDEX: &str = "FARM_VIP_INDEX";
pub const MAP_HANDOVER: &str = "FARM_HANDOVER";
pub const MAP_FLOWS: &str = "FARM_FLOWS";
/// Every map the loader pins, in one list so no map is forgotten by unload or adopt.
pub const ALL_MAPS: [&str; 10] = [
    MAP_CONFIG,
    MAP_CONTROL,
    MAP_VIPS,
    MAP_SERVICES,
    MAP_OWNERS,
    MAP_COUNTERS,
    MAP_VIP_INDEX,
    MAP_HANDOVER,
    MAP_FLOWS,
    crate::MAP_META,
];
/// The XDP program's function name.
pub const PROGRAM_NAME: &str = "farm_xdp";

/// `FARM_CONTROL[0]`: what changes while the program runs, read once per packet. Each
/// field is an aligned word that one map update writes whole, which is what makes a
/// lease renewal and a table switch atomic for the packets that read them.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Control {
    /// The lease deadline in jiffies (`bpf_jiffies64`, which the JIT inlines into one
    /// load: a nanosecond clock is a helper call costing as much as the rest of a
    /// verdict, and a lease lasts tens of ticks).
    pub lease: u64,
    /// The half of `FARM_OWNERS` packets read (0 or 1).
    pub active_half: u32,
    /// How long a UDP flow learned on a bucket in handover lives without a datagram, in
    /// jiffies: past it the flow has ended, and a datagram with its addresses starts a
    /// new one.
    pub flow_idle: u32,
}

/// How a rule picks the bucket, or that it drops.
pub const MODE_DROP: u8 = 0;
/// Hash the client address: all of a client's connections meet on one node.
pub const MODE_CLIENT_IP: u8 = 1;
/// Hash the client address and source port: a client's connections spread.
pub const MODE_CLIENT_IP_PORT: u8 = 2;

/// `FARM_CONFIG[0]`: this node, as the program needs it. Written by the loader, rarely.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeConfig {
    /// The NIC's own MAC: accepted frames are readdressed to it (so the stack sees
    /// PACKET_HOST) and ARP/ND replies are sent from it (so no switch learns the
    /// cluster MAC on one port).
    pub own_mac: [u8; 6],
    /// The MAC every node answers ARP/ND for a VIP with.
    pub cluster_mac: [u8; 6],
    pub node_id: u16,
    pub _pad: u16,
    pub bucket_count: u32,
    pub seed: u32,
}

// Every lookup on the per-packet path is an array read, which the JIT inlines: a hash
// map lookup (hashing the key, walking a bucket) cost more than the rest of a verdict.

/// A VIP as the program reads it: `FARM_VIPS[i]` is VIP `i` (slot `i`), and
/// `FARM_VIP_INDEX[vip_fold(addr)]` a copy of it, so one read finds a packet's VIP.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct VipEntry {
    pub addr: crate::Addr,
    /// What traffic no service matches gets: `MODE_DROP` or `MODE_CLIENT_IP`.
    pub mode: u8,
    /// `VIP_IN_USE` when the entry holds a VIP; in the index, `VIP_INDEX_SHARED` when
    /// several VIPs fold alike (the program then compares against each of `FARM_VIPS`).
    pub in_use: u8,
    /// The VIP's index, which is also its slot.
    pub index: u8,
    pub _pad: u8,
}

pub const VIP_IN_USE: u8 = 1;
pub const VIP_INDEX_SHARED: u8 = 0xff;

/// `FARM_VIP_INDEX` has an entry per 16-bit fold of an address (`vip_fold`). A VIP's
/// address is always compared, so a fold that matches another address costs a look,
/// never a wrong verdict.
pub const VIP_INDEX_ENTRIES: u32 = 65_536;

/// An address folded to 16 bits, its entry in `FARM_VIP_INDEX`.
#[inline(always)]
pub fn vip_fold(addr: &crate::Addr) -> u32 {
    let x = addr[0] ^ addr[1] ^ addr[2] ^ addr[3];
    (x ^ (x >> 16)) & 0xffff
}

/// `FARM_SERVICES` holds a byte per (VIP index, TCP or UDP, port), 8 bytes an element:
/// the service rule (`port_rule`) or 0 for none. Two protocols of 65,536 ports per VIP.
pub const PORTS_PER_VIP: u32 = 2 * 65_536;
pub const SERVICE_ENTRIES: u32 = MAX_VIPS * PORTS_PER_VIP / 8;

/// Where the rule byte of (vip, protocol, port) lives: (element, bit shift). `udp`
/// selects the protocol: services are TCP or UDP only.
#[inline(always)]
pub fn port_position(vip: u32, udp: bool, port: u16) -> (u32, u32) {
    let byte = vip * PORTS_PER_VIP + (udp as u32) * 65_536 + port as u32;
    (byte / 8, (byte % 8) * 8)
}

/// A service rule byte: its slot (under 64) and its affinity mode (1 or 2) in the top bits.
#[inline(always)]
pub const fn port_rule(slot: u16, mode: u8) -> u8 {
    (mode << 6) | slot as u8
}

/// (slot, mode) of a rule byte; `None` for 0, no service.
#[inline(always)]
pub fn port_rule_parts(rule: u8) -> Option<(u16, u8)> {
    (rule != 0).then_some(((rule & 0x3f) as u16, rule >> 6))
}

/// `FARM_OWNERS`'s map flags: BPF_F_MMAPABLE, so userspace writes a table into the
/// map's memory with plain stores instead of one syscall per element (at 65,536
/// buckets a table is tens of thousands of elements, and a failover writes two).
pub const OWNERS_MAP_FLAGS: u32 = 1 << 10;

/// One element of `FARM_OWNERS`: the owners of `OWNERS_PER_CHUNK` consecutive buckets.
pub type OwnerChunk = [u16; OWNERS_PER_CHUNK as usize];

/// Elements in one row (one slot, one half) of `FARM_OWNERS`.
#[inline(always)]
pub const fn chunks_per_row(bucket_count: u32) -> u32 {
    bucket_count.div_ceil(OWNERS_PER_CHUNK)
}

/// `max_entries` of `FARM_OWNERS` for a bucket count: two halves of `MAX_SLOTS` rows.
pub const fn owner_table_entries(bucket_count: u32) -> u32 {
    2 * MAX_SLOTS * chunks_per_row(bucket_count)
}

/// Where bucket `bucket` of slot `slot` in half `half` lives: (element index, lane).
#[inline(always)]
pub fn owner_position(half: u32, slot: u32, bucket: u32, bucket_count: u32) -> (u32, usize) {
    let row = half * MAX_SLOTS + slot;
    (
        row * chunks_per_row(bucket_count) + bucket / OWNERS_PER_CHUNK,
        (bucket % OWNERS_PER_CHUNK) as usize,
    )
}

/// `FARM_HANDOVER[handover_key(half, slot, bucket)]`: a bucket moving between two live
/// nodes for a planned reason (a drain, a weight, a join). The old owner keeps the
/// flows it holds (TCP connections it has a socket for, UDP flows learned before the
/// move); the new owner takes every other one. Each decides alone, from what it sees.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Handover {
    /// The owner before the move; `NO_OWNER` when this node never learned it (it had
    /// not installed a table yet: a node joining). Only `new`'s side reads it then.
    pub old: u16,
    /// The owner after the move.
    pub new: u16,
    /// Where the move stands: `HANDOVER_LEARNING`, `HANDOVER_RELEASED` or
    /// `HANDOVER_TAKING`.
    pub phase: u8,
    /// 1 when the old owner keeps the UDP flows it served; 0 when they move at once
    /// with the bucket, as the new owner joins the farm and cannot know who held them
    /// (it started, or rejoins as a new incarnation).
    pub keep_udp: u8,
    pub _pad: [u8; 2],
}

/// The move is agreed on but not released: the old owner still takes new connections
/// and flows, and both nodes learn the UDP flows they see.
pub const HANDOVER_LEARNING: u8 = 0;
/// The old owner released the bucket: it keeps what it holds and takes no new
/// connection; nobody takes new flows yet, and both nodes go on learning UDP flows.
pub const HANDOVER_RELEASED: u8 = 1;
/// The farm installed the move: the new owner takes new connections and flows.
pub const HANDOVER_TAKING: u8 = 2;

/// The `FARM_HANDOVER` key of a bucket of a slot's row in a half of the owner table.
#[inline(always)]
pub const fn handover_key(half: u32, slot: u32, bucket: u32) -> u32 {
    (half << 31) | (slot << 16) | bucket
}

/// (half, slot, bucket) of a `FARM_HANDOVER` key.
pub const fn handover_parts(key: u32) -> (u32, u32, u32) {
    (key >> 31, (key >> 16) & 0x7fff, key & 0xffff)
}

/// `FARM_FLOWS`' key: a UDP flow to a service (`slot`) in handover.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub client: crate::Addr,
    pub client_port: u16,
    pub port: u16,
    pub slot: u16,
    pub _pad: u16,
}

/// `FARM_FLOWS`' value: which node holds a learned UDP flow, the move (old and new
/// owner) that learned it, and when a datagram of it was last seen (jiffies).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowSeen {
    pub seen: u64,
    pub holder: u16,
    pub old: u16,
    pub new: u16,
    pub _pad: u16,
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for FlowSeen {}
    unsafe impl aya::Pod for Handover {}
    unsafe impl aya::Pod for FlowKey {}
    use super::*;
    unsafe impl aya::Pod for NodeConfig {}
    unsafe impl aya::Pod for VipEntry {}
    unsafe impl aya::Pod for Control {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    /// Sizes with no implicit padding: the sum of the fields.
    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<NodeConfig>(), 6 + 6 + 2 + 2 + 4 + 4);
        assert_eq!(size_of::<VipEntry>(), 16 + 1 + 1 + 1 + 1);
        assert_eq!(size_of::<Control>(), 8 + 4 + 4);
        assert_eq!(size_of::<Handover>(), 2 + 2 + 1 + 1 + 2);
        assert_eq!(size_of::<FlowKey>(), 16 + 2 + 2 + 2 + 2);
        assert_eq!(size_of::<FlowSeen>(), 8 + 2 + 2 + 2 + 2);
        assert_eq!(size_of::<OwnerChunk>(), 8);
    }

    #[test]
    fn port_rules_round_trip_and_positions_stay_in_bounds() {
        for slot in [0u16, 5, 63] {
            for mode in [MODE_CLIENT_IP, MODE_CLIENT_IP_PORT] {
                assert_eq!(port_rule_parts(port_rule(slot, mode)), Some((slot, mode)));
            }
        }
        assert_eq!(port_rule_parts(0), None);
        let (last, shift) = port_position(MAX_VIPS - 1, true, u16::MAX);
        assert_eq!((last, shift), (SERVICE_ENTRIES - 1, 56));
        assert_ne!(port_position(0, false, 80), port_position(0, true, 80));
    }

    #[test]
    fn owner_positions_are_distinct_and_in_bounds() {
        for bc in [1u32, 5, 4096] {
            let entries = owner_table_entries(bc);
            let mut seen = [[false; 4]; 2 * 64 * 2];
            for half in 0..2 {
                for slot in [0, MAX_SLOTS - 1] {
                    for b in 0..bc.min(8) {
                        let (i, lane) = owner_position(half, slot, b, bc);
                        assert!(i < entries);
                        if bc <= 5 {
                            assert!(!seen[i as usize][lane]);
                            seen[i as usize][lane] = true;
                        }
                    }
                }
            }
        }
    }
}
