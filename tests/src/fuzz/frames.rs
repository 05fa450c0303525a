//! The fuzzer's frames: well-formed ones built at random (every VIP of the fixture farm
//! and addresses that are none, every service's ports and others, TCP, UDP, ICMP and
//! GRE, up to three VLAN tags, IPv4 options and fragments, chains of IPv6 extension
//! headers, ICMP errors quoting flows, ARP and neighbour solicitations), the fixture
//! table's packets, and mutations of both: truncations, bit flips, bytes overwritten,
//! VLAN tags and extension headers inserted, random bytes appended.
use std::net::{Ipv4Addr, Ipv6Addr};

use farm_common::frame::{ETH_LEN, IPV6_AH, IPV6_LEN, MAX_OFFSET, VLAN_LEN};

use crate::{fixtures::*, packet::*, sim::rng::Rng};

/// Frames never grow past this: past the program's `MAX_OFFSET` (512) and then some.
const MAX_LEN: usize = 1200;
const MIN_LEN: usize = 14;

pub struct Frames {
    rng: Rng,
    /// The fixture table's packets, mutated as often as new ones.
    seeds: Vec<Vec<u8>>,
}

impl Frames {
    pub fn new(seed: u64) -> Frames {
        let seeds = crate::cases::cases().into_iter().map(|c| c.packet).collect();
        Frames { rng: Rng::new(seed), seeds }
    }

    /// The next frame: a quarter a fixture packet, the rest built; three in five mutated.
    pub fn next_frame(&mut self) -> Vec<u8> {
        let mut f = match self.rng.below(4) {
            0 => self.seeds[self.rng.below(self.seeds.len() as u64) as usize].clone(),
            _ => self.built(),
        };
        if self.rng.chance(600) {
            for _ in 0..1 + self.rng.below(3) {
                self.mutate(&mut f);
            }
        }
        f.truncate(MAX_LEN);
        // BPF_PROG_TEST_RUN takes no frame shorter than Ethernet's header, and no NIC
        // delivers one.
        if f.len() < MIN_LEN {
            f.resize(MIN_LEN, 0);
        }
        // The program readdresses what it accepts to this node's MAC: a frame already
        // sent there would hide whether it did.
        if f.get(..6) == Some(&NODE_MAC[..]) {
            f[0] ^= 0x80;
        }
        f
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.rng.below(from.len() as u64) as usize]
    }

    fn byte(&mut self) -> u8 {
        self.rng.below(256) as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    fn v4(&mut self) -> Ipv4Addr {
        match self.rng.below(4) {
            0 => VIP4,
            1 => CLIENT4,
            2 => OTHER4,
            _ => Ipv4Addr::new(198, 18 + self.rng.below(2) as u8, self.byte(), self.byte()),
        }
    }

    /// A destination: a VIP more often than not.
    fn vip4(&mut self) -> Ipv4Addr {
        if self.rng.chance(700) { VIP4 } else { self.v4() }
    }

    fn vip6(&mut self) -> Ipv6Addr {
        match self.rng.below(10) {
            0..=3 => VIP6,
            4..=6 => VIP6_DROP,
            _ => self.v6(),
        }
    }

    fn v6(&mut self) -> Ipv6Addr {
        match self.rng.below(6) {
            0 => VIP6,
            1 => VIP6_DROP,
            2 => CLIENT6,
            3 => OTHER6,
            4 => Ipv6Addr::UNSPECIFIED,
            _ => Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, self.byte().into(), self.byte().into()),
        }
    }

    /// A port some service claims, one next to them, or any.
    fn port(&mut self) -> u16 {
        match self.rng.below(3) {
            0 => self.pick(&[53, 80, 5353, 6000, 6009]),
            1 => self.pick(&[52, 54, 81, 5999, 6010]),
            _ => self.rng.below(65536) as u16,
        }
    }

    fn proto(&mut self) -> u8 {
        self.pick(&[TCP, TCP, UDP, UDP, ICMP, ICMPV6, GRE])
    }

    /// Up to three VLAN tags, most often none.
    fn tags(&mut self) -> Vec<(u16, u16)> {
        let n = self.pick(&[0, 0, 0, 1, 2, 3]);
        (0..n).map(|_| (self.pick(&[0x8100, 0x88a8]), self.rng.below(4096) as u16)).collect()
    }

    /// An upper-layer header: ports and the rest of a TCP or UDP header, an ICMP message,
    /// or bytes.
    fn upper(&mut self, proto: u8) -> Vec<u8> {
        match proto {
            TCP | UDP => {
                let mut h = Frame::default().ports(self.port(), self.port()).build();
                let rest = self.pick(&[0, 4, 16, 24]);
                h.extend(self.bytes(rest));
                h
            }
            ICMP | ICMPV6 => {
                let t = self.pick(&[0, 1, 2, 3, 4, 8, 11, 12, 128, 129, 135, 136]);
                [vec![t, 0, 0, 0], self.bytes(4)].concat()
            }
            _ => self.bytes(8),
        }
    }

    fn built(&mut self) -> Vec<u8> {
        match self.rng.below(10) {
            0..=2 => self.ipv4(),
            3..=5 => self.ipv6(),
            6 => self.icmp_error(),
            7 => self.arp(),
            8 => self.solicitation(),
            _ => {
                let et = self.pick(&[0x88cc, 0x0800, 0x86dd, 0x0806, 0x8100]);
                Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], et).raw(&self.bytes(40)).build()
            }
        }
    }

    fn ipv4_header(&mut self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Frame {
        let options = vec![1; 4 * self.pick(&[0, 0, 0, 1, 10]) as usize];
        // Whole, first fragment, later fragment, don't-fragment.
        let frags = self.pick(&[0, 0, 0, 0x2000, 0x2000, 185, 0x2000 | 185, 0x4000]);
        let tags = self.tags();
        Frame::eth(CLUSTER_MAC, CLIENT_MAC, &tags, ETH_P_IP)
            .ipv4(src, dst, proto, &options, frags, len)
    }

    fn ipv4(&mut self) -> Vec<u8> {
        let proto = self.proto();
        let upper = self.upper(proto);
        let (src, dst) = (self.v4(), self.vip4());
        self.ipv4_header(src, dst, proto, upper.len()).raw(&upper).build()
    }

    /// A chain of extension headers (as `Frame::ipv6` takes them), most often short.
    fn extensions(&mut self) -> Vec<(u8, Vec<u8>)> {
        let n = self.pick(&[0, 0, 0, 1, 1, 2, 3, 6, 7]);
        (0..n)
            .map(|_| match self.rng.below(5) {
                0 => {
                    // A fragment header: first, later, or an atomic fragment.
                    let [hi, lo] = self.pick(&[0x0001u16, 185 << 3 | 1, 0]).to_be_bytes();
                    (IPV6_FRAGMENT, vec![0, hi, lo, 0, 0, 0, 7])
                }
                1 => {
                    // An authentication header: its length counts 4-byte units, less 2.
                    (IPV6_AH, [vec![2], vec![0; 14]].concat())
                }
                _ => {
                    let kind = self.pick(&[IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_DEST_OPTS]);
                    // Long ones reach past the program's furthest read (512 bytes in).
                    let units = self.pick(&[0u8, 0, 0, 1, 3, 20, 60]);
                    (kind, [vec![units], vec![0; 6 + 8 * usize::from(units)]].concat())
                }
            })
            .collect()
    }

    fn ipv6_packet(&mut self, src: Ipv6Addr, dst: Ipv6Addr, proto: u8, upper: &[u8]) -> Vec<u8> {
        let mut exts = self.extensions();
        let tags = self.tags();
        // One in eight: a last options header that puts the upper-layer header just
        // inside the program's furthest read (`MAX_OFFSET`), 0 to 23 bytes short of it,
        // where a bound off by a few bytes on either side shows (an ICMP error's quoted
        // header then starts near it or past it).
        if self.rng.chance(125) {
            let ext_len: usize = exts.iter().map(|(_, b)| b.len() + 1).sum();
            let upper_at = ETH_LEN + VLAN_LEN * tags.len() + IPV6_LEN + ext_len;
            let short = 8 * self.rng.below(3) as usize;
            let room = MAX_OFFSET.saturating_sub(upper_at + short);
            // A header of (units + 1) 8-byte units.
            if let Some(units) = (room / 8).checked_sub(1) {
                exts.push((IPV6_DEST_OPTS, [vec![units as u8], vec![0; 6 + 8 * units]].concat()));
            }
        }
        Frame::eth(CLUSTER_MAC, CLIENT_MAC, &tags, ETH_P_IPV6)
            .ipv6(src, dst, &exts, proto, upper.len())
            .raw(upper)
            .build()
    }

    fn ipv6(&mut self) -> Vec<u8> {
        let proto = self.proto();
        let upper = self.upper(proto);
        let (src, dst) = (self.v6(), self.vip6());
        self.ipv6_packet(src, dst, proto, &upper)
    }

    /// An ICMP error from a router to a VIP (mostly) quoting a packet from a VIP to a
    /// client: the flow the error is about.
    fn icmp_error(&mut self) -> Vec<u8> {
        let proto = self.pick(&[TCP, UDP, UDP, ICMP, GRE]);
        let quoted_upper = self.upper(proto);
        if self.rng.chance(500) {
            let (vip, client) = (self.vip4(), self.v4());
            let quoted = self.ipv4_header(vip, client, proto, quoted_upper.len());
            let quoted = [&quoted.bytes[quoted.bytes.len() - 20..], &quoted_upper[..]].concat();
            let t = self.pick(&[3, 11, 12, 0, 8]);
            let body = [&[t, 0, 0, 0, 0, 0, 0x05, 0xdc][..], &quoted].concat();
            let (router, dst) = (Ipv4Addr::new(198, 19, 255, 1), self.vip4());
            self.ipv4_header(router, dst, ICMP, body.len()).raw(&body).build()
        } else {
            let (vip, client) = (self.vip6(), self.v6());
            let exts = self.extensions();
            let quoted = Frame::default()
                .ipv6(vip, client, &exts, proto, quoted_upper.len())
                .raw(&quoted_upper)
                .build();
            let t = self.pick(&[1, 2, 3, 4, 128]);
            let body = [&[t, 0, 0, 0, 0, 0, 0x05, 0xdc][..], &quoted].concat();
            let (router, dst) = (Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1), self.vip6());
            self.ipv6_packet(router, dst, ICMPV6, &body)
        }
    }

    /// An ARP request (sometimes gratuitous: sender the target), or a reply.
    fn arp(&mut self) -> Vec<u8> {
        let (sender, target) = (self.v4(), self.vip4());
        let sender = if self.rng.chance(200) { target } else { sender };
        let mut f = arp_request(sender, target);
        if self.rng.chance(100) {
            f[21] = 2;
        }
        let tags = self.tags();
        [&Frame::eth([0xff; 6], CLIENT_MAC, &tags, ETH_P_ARP).build()[..], &f[14..]].concat()
    }

    /// A neighbour solicitation, with or without its option, sometimes for duplicate
    /// address detection (from ::).
    fn solicitation(&mut self) -> Vec<u8> {
        let (sender, target) = (self.v6(), self.vip6());
        let f = neighbour_solicitation(sender, target, self.rng.chance(500));
        let tags = self.tags();
        [
            &Frame::eth(f[..6].try_into().unwrap(), CLIENT_MAC, &tags, ETH_P_IPV6).build()[..],
            &f[14..],
        ]
        .concat()
    }

    fn mutate(&mut self, f: &mut Vec<u8>) {
        let len = f.len().max(1);
        match self.rng.below(7) {
            // Cut short anywhere.
            0 => f.truncate(self.rng.below(len as u64) as usize),
            // Bit flips.
            1 | 2 => {
                for _ in 0..1 + self.rng.below(4) {
                    if let Some(b) = f.get_mut(self.rng.below(len as u64) as usize) {
                        *b ^= 1 << self.rng.below(8);
                    }
                }
            }
            // A byte overwritten, past the MACs most often.
            3 => {
                let at = self.rng.below(len as u64) as usize;
                let any = self.byte();
                let v = self.pick(&[0, 0xff, 0x45, 0x60, 6, 17, 58, 44, 0x81, 0x88, any]);
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            // A VLAN tag inserted after the MACs.
            4 if f.len() >= 12 => {
                let tag = [self.pick(&[0x81, 0x88]), self.pick(&[0x00, 0xa8]), 0, self.byte()];
                f.splice(12..12, tag);
            }
            // An extension header (or any 8 bytes) inserted where IPv6's would go.
            5 if f.len() >= 54 => {
                let next = self.pick(&[0, 6, 17, 43, 44, 58, 60]);
                f.splice(54..54, [next, 0, 1, 4, 0, 0, 0, 0]);
            }
            // Random bytes appended.
            _ => {
                let n = self.rng.below(64) as usize;
                let tail = self.bytes(n);
                f.extend(tail);
            }
        }
    }
}
