//! Which node of a bucket in handover takes a packet, written once for the XDP program
//! (farm-ebpf's `handover`, which finds what the packet is) and userspace (the
//! simulation, `farm lookup`). Both nodes receive every packet of the bucket and decide
//! alone; for a packet of a live flow exactly one of them may say yes.
use crate::{FlowSeen, HANDOVER_LEARNING, HANDOVER_TAKING, Handover};

/// A packet of a bucket in handover, as the decision tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// A TCP SYN: a new connection.
    Syn,
    /// Another TCP packet; `held`: this node holds a socket for its connection.
    Segment { held: bool },
    /// A UDP datagram to a service; `holder`: the node of the handover holding its flow,
    /// learned before the move was installed and not idle for the flow idle time since
    /// (`None`: a new flow, or one held by neither node).
    Datagram { holder: Option<u16> },
    /// An ICMP error about a flow: the kernel without the flow drops it.
    Error,
    /// Anything else to the bucket (ICMP echo, fragments, a VIP's default rule).
    Other,
}

/// Whether node `me` takes `packet` of a bucket in handover `h`. New connections and
/// other traffic are the old owner's while the move learns and the new owner's once it
/// is installed (nobody's while released); a connection is its socket holder's; a UDP
/// flow is its holder's, a new one the old owner's until the install (which learns it
/// as its holder) and the new owner's after.
#[inline(always)]
pub fn takes(h: &Handover, me: u16, packet: Packet) -> bool {
    let old = h.old == me;
    if !old && h.new != me {
        return false;
    }
    let (learning, taking) = (h.phase == HANDOVER_LEARNING, h.phase == HANDOVER_TAKING);
    let opens = if old { learning } else { taking };
    match packet {
        Packet::Syn | Packet::Other | Packet::Datagram { holder: None } => opens,
        Packet::Segment { held } => held,
        Packet::Datagram { holder: Some(holder) } => holder == me,
        Packet::Error => old || taking,
    }
}

/// The node of handover `h` holding a UDP flow whose record is `seen` (`None`: never
/// learned), at `now` with flows ending after `idle` without a datagram (both in the
/// same clock), and the record to keep. A flow this move learned and not idle since
/// keeps its holder (this datagram keeps it alive); any other is learned with the old
/// owner as its holder until the move is installed, and is a new flow (no holder)
/// after. Both nodes of the handover see the same datagrams,
/// so they learn the same holders. Without `keep_udp`, no flow has a holder: UDP moves
/// with the bucket.
#[inline(always)]
pub fn holder(
    seen: Option<FlowSeen>,
    h: &Handover,
    now: u64,
    idle: u64,
) -> (Option<u16>, Option<FlowSeen>) {
    let record = |holder| FlowSeen { seen: now, holder, old: h.old, new: h.new, _pad: 0 };
    if h.keep_udp == 0 {
        return (None, None);
    }
    match seen {
        // Learned by this move: a node that took no part in an earlier one has no record
        // of it, so those are learned again, alike on both nodes.
        Some(s) if s.seen + idle > now && (s.old, s.new) == (h.old, h.new) => {
            (Some(s.holder), Some(record(s.holder)))
        }
        _ if h.phase == HANDOVER_TAKING => (None, None),
        _ => (Some(h.old), Some(record(h.old))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HANDOVER_RELEASED;

    /// For every phase and every packet, the two nodes of a handover never both take a
    /// packet of a live flow, nor both leave it: a connection is held by one of them, a
    /// UDP flow's holder is the same on both (both see its datagrams).
    #[test]
    fn the_two_nodes_of_a_handover_never_both_take_a_live_flow_nor_both_leave_it() {
        for phase in [HANDOVER_LEARNING, HANDOVER_RELEASED, HANDOVER_TAKING] {
            let h = Handover { old: 1, new: 2, phase, keep_udp: 1, _pad: [0; 2] };
            for held_by_old in [true, false] {
                let (a, b) = (
                    takes(&h, 1, Packet::Segment { held: held_by_old }),
                    takes(&h, 2, Packet::Segment { held: !held_by_old }),
                );
                assert!(a != b, "phase {phase}: held by the old owner: {held_by_old}");
            }
            for holder in [Some(1), Some(2)] {
                let both = [1, 2].map(|me| takes(&h, me, Packet::Datagram { holder }));
                assert_eq!(both.iter().filter(|&&t| t).count(), 1, "phase {phase}");
            }
            // A new connection or flow: one node takes it, but none while released.
            let want = if phase == HANDOVER_RELEASED { 0 } else { 1 };
            for packet in [Packet::Syn, Packet::Datagram { holder: None }, Packet::Other] {
                let both = [1, 2].map(|me| takes(&h, me, packet));
                assert_eq!(both.iter().filter(|&&t| t).count(), want, "phase {phase}");
            }
            assert!(!takes(&h, 3, Packet::Syn), "a node of neither side takes nothing");
        }
    }
}
