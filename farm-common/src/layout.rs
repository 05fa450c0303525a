//! The version of what the pinned maps hold. Pins outlive the farm that made them (an
//! agent restarted after an upgrade adopts them), and a map pinned by one farm is read
//! by another with no check of its key or value sizes, let alone of what its fields
//! mean. So the maps carry the version of their layout, and a farm that finds another
//! one replaces them (the agent) or refuses them (the read commands).
//!
//! The version lives in a map of its own, `FARM_META`: an array of one `u32`, at key 0,
//! whose layout never changes, so that any farm, older or newer, reads it before it
//! touches the others. (A version in the pin directory's name would do too, but would
//! move the pins operators and scripts know, /sys/fs/bpf/farm/IFACE, at every bump.)

/// The layout of every map in `ALL_MAPS` but `FARM_META`: their key and value types,
/// sizes, entry counts and what their values mean. Bump it with any change to them;
/// the test below fails until the change is recorded under a new version.
pub const LAYOUT_VERSION: u32 = 2;

/// `FARM_META[0]`: the `LAYOUT_VERSION` of the maps pinned beside it (0 while unset).
/// Its own layout must never change.
pub const MAP_META: &str = "FARM_META";

#[cfg(test)]
mod tests {
    extern crate std;
    use core::{fmt::Write, mem::offset_of};
    use std::string::String;

    use super::*;
    use crate::*;

    /// Every layout a version stood for, by the fingerprint of `layout()`.
    const RECORDED: &[(u32, u64)] = &[(1, 0x4891_1f0e_e00f_8694), (2, 0x7caf_ee2d_fc95_43c5)];

    fn put(s: &mut String, what: &str, n: u64) {
        writeln!(s, "{what} {n}").expect("writing to a String");
    }

    /// Sizes, offsets, entry counts and encodings the program and userspace agree on,
    /// one per line.
    fn layout() -> String {
        let mut s = String::new();
        macro_rules! fields {
            ($t:ty: $($f:ident),*) => {{
                put(&mut s, stringify!($t), core::mem::size_of::<$t>() as u64);
                $(put(&mut s, concat!(stringify!($t), ".", stringify!($f)), offset_of!($t, $f) as u64);)*
            }};
        }
        fields!(NodeConfig: own_mac, cluster_mac, node_id, _pad, bucket_count, seed);
        fields!(Control: lease, active_half, flow_idle);
        fields!(Handover: old, new, phase, keep_udp, _pad);
        fields!(FlowKey: client, client_port, port, slot, _pad);
        fields!(FlowSeen: seen, holder, old, new, _pad);
        fields!(VipEntry: addr, mode, in_use, index, _pad);
        fields!(Counters: accepted, not_owner, lease_expired, no_service, arp_replies,
            nd_replies, malformed, passed, socket_found, new_flow, learned_flow, peer_flow);
        fields!(OwnerChunk:);
        for name in ALL_MAPS {
            writeln!(s, "pinned {name}").expect("writing to a String");
        }
        let constants = [
            ("MAX_SLOTS", MAX_SLOTS),
            ("GLOBAL_SLOT", GLOBAL_SLOT),
            ("MAX_VIPS", MAX_VIPS),
            ("NO_OWNER", NO_OWNER.into()),
            ("HANDOVER", HANDOVER.into()),
            ("HANDOVER_ENTRIES", HANDOVER_ENTRIES),
            ("FLOW_ENTRIES", FLOW_ENTRIES),
            ("HANDOVER_LEARNING", HANDOVER_LEARNING.into()),
            ("HANDOVER_RELEASED", HANDOVER_RELEASED.into()),
            ("HANDOVER_TAKING", HANDOVER_TAKING.into()),
            ("OWNERS_PER_CHUNK", OWNERS_PER_CHUNK),
            ("OWNERS_MAP_FLAGS", OWNERS_MAP_FLAGS),
            ("VIP_INDEX_ENTRIES", VIP_INDEX_ENTRIES),
            ("SERVICE_ENTRIES", SERVICE_ENTRIES),
            ("MODE_DROP", MODE_DROP.into()),
            ("MODE_CLIENT_IP", MODE_CLIENT_IP.into()),
            ("MODE_CLIENT_IP_PORT", MODE_CLIENT_IP_PORT.into()),
            ("VIP_IN_USE", VIP_IN_USE.into()),
            ("VIP_INDEX_SHARED", VIP_INDEX_SHARED.into()),
            // Where entries live: a sample of each function that places them.
            ("vip_fold", vip_fold(&[0x0102_0304, 5, 6, 0x0708_0000])),
            ("port_position", port_position(3, true, 443).0),
            ("port_position shift", port_position(3, true, 443).1),
            ("port_rule", port_rule(5, MODE_CLIENT_IP_PORT).into()),
            ("owner_table_entries", owner_table_entries(1000)),
            ("owner_position", owner_position(1, 7, 999, 1000).0),
            ("owner_position lane", owner_position(1, 7, 999, 1000).1 as u32),
            ("handover_key", handover_key(1, 7, 999)),
        ];
        for (name, value) in constants {
            put(&mut s, name, value.into());
        }
        s
    }

    /// FNV-1a, 64 bits.
    fn fingerprint(text: &str) -> u64 {
        text.bytes()
            .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    }

    #[test]
    fn a_layout_change_bumps_the_version() {
        let layout = layout();
        let now = fingerprint(&layout);
        let recorded = RECORDED.iter().find(|(v, _)| *v == LAYOUT_VERSION).map(|(_, f)| *f);
        assert_eq!(
            recorded,
            Some(now),
            "the maps' layout is not the one recorded for LAYOUT_VERSION {LAYOUT_VERSION}: \
             bump LAYOUT_VERSION (unless this change did) and record (the new version, {now:#x}) \
             in RECORDED. The layout now:\n{layout}"
        );
    }
}
