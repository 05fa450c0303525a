//! The packet counters, listed once: `counters!` turns the list into the `#[repr(C)]`
//! record the program bumps (a `u64` per counter, in list order, so no padding), a
//! `Counter` to name one, and their names, so userspace iterates over the same list and
//! no copy of it can drift.

/// Declares `Counters`, `Counter` and their names from one list of documented
/// `field: Variant` pairs.
macro_rules! counters {
    ($($(#[doc = $doc:literal])+ $field:ident: $variant:ident,)+) => {
        /// Per-CPU counters of one slot (`FARM_COUNTERS[slot]`); userspace sums the CPUs.
        #[repr(C)]
        #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[doc = $doc])+ pub $field: u64,)+
        }

        /// One counter of a `Counters` record.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Counter {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Counter {
            /// Every counter, in the record's order.
            pub const ALL: [Counter; Counters::LEN] = [$(Counter::$variant),+];
        }

        impl Counters {
            /// How many counters a record holds.
            pub const LEN: usize = [$(Counter::$variant),+].len();
            /// The counters' field names, in the record's order: `farm stats` names its
            /// columns and JSON fields with them.
            pub const NAMES: [&'static str; Counters::LEN] = [$(stringify!($field)),+];

            /// The counts, in the record's order.
            pub const fn values(&self) -> [u64; Counters::LEN] {
                [$(self.$field),+]
            }
        }

        impl core::ops::Index<Counter> for Counters {
            type Output = u64;

            fn index(&self, counter: Counter) -> &u64 {
                match counter {
                    $(Counter::$variant => &self.$field,)+
                }
            }
        }

        /// Counter by counter: how userspace sums the CPUs' records.
        impl core::ops::Add for Counters {
            type Output = Counters;

            fn add(self, other: Counters) -> Counters {
                Counters { $($field: self.$field + other.$field,)+ }
            }
        }
    };
}

counters! {
    /// Accepted: this node owns the bucket and its lease is fresh.
    accepted: Accepted,
    /// Dropped: another node (or none) owns the bucket.
    not_owner: NotOwner,
    /// Dropped: this node's lease expired (its agent is dead or hung).
    lease_expired: LeaseExpired,
    /// Dropped: VIP traffic no service matches, on a VIP whose default is drop.
    no_service: NoService,
    /// ARP replies sent for a VIP.
    arp_replies: ArpReplies,
    /// IPv6 neighbour advertisements sent for a VIP.
    nd_replies: NdReplies,
    /// Frames cut short or with impossible headers.
    malformed: Malformed,
    /// Passed untouched: not addressed to a VIP.
    passed: Passed,
    /// Accepted in a bucket in handover: a TCP packet of a connection this node holds a
    /// socket for (or the ACK completing a SYN cookie it issued).
    socket_found: SocketFound,
    /// Accepted in a bucket in handover by its new owner, once the move is installed: a
    /// new TCP connection (a SYN), a UDP datagram of a flow not learned before the move,
    /// or other traffic.
    new_flow: NewFlow,
    /// Accepted in a bucket in handover by its old owner: a UDP datagram of a flow it
    /// served before the move (or learns while the move is agreed on).
    learned_flow: LearnedFlow,
    /// Dropped in a bucket in handover: a packet of a flow the other node of the
    /// handover keeps (or of no live flow at all).
    peer_flow: PeerFlow,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Counters {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `u64` per counter and nothing else: the map value's size, which a pinned map
    /// from an older farm must match.
    #[test]
    fn a_record_is_one_word_per_counter() {
        assert_eq!(core::mem::size_of::<Counters>(), 8 * Counters::LEN);
        assert_eq!(Counters::LEN, 12);
    }

    /// `values`, `NAMES`, `Counter::ALL` and indexing follow the fields' order in memory.
    #[test]
    fn every_view_follows_the_record_order() {
        let words: [u64; Counters::LEN] = core::array::from_fn(|i| i as u64 + 1);
        let c: Counters = unsafe { core::mem::transmute(words) };
        assert_eq!(c.values(), words);
        assert_eq!(Counter::ALL.map(|k| c[k]), words);
        assert_eq!((Counters::NAMES[1], c.not_owner), ("not_owner", 2));
        assert_eq!((c + c).values(), words.map(|w| 2 * w));
    }
}
