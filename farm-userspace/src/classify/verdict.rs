//! The whole program's decision for any frame, followed step by step as farm-ebpf's
//! `main`, `neighbour` and `steer` take it: the XDP action, the one counter that moves
//! and the frame the program leaves (readdressed, a reply, or as it came). A change to
//! the program's logic is a change here; the fuzzer (farm-tests' `fuzz`) finds any
//! difference.
use std::time::Instant;

use farm_common::{
    Addr, Counter, GLOBAL_SLOT, MODE_CLIENT_IP_PORT, MODE_DROP,
    frame::{
        ARP_LEN, ARP_REQUEST_HEAD, ARPOP_REPLY, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ICMP_DEST_UNREACH,
        ICMP_PARAM_PROBLEM, ICMP_TIME_EXCEEDED, ICMPV6_DEST_UNREACH, ICMPV6_NEIGHBOUR_SOLICIT,
        ICMPV6_PARAM_PROBLEM, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV6_LEN,
        NA_OVERRIDE, NA_SOLICITED,
    },
    v4_addr,
};

use super::{
    Plane,
    frame::{Bytes, Piece, V4, V6, ipv6_payload},
    route::{Vip, bucket_of_key, find_vip, service},
};
use crate::neighbour;

/// An XDP action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Drop,
    Pass,
    /// Sent back out of the NIC: only ARP and neighbour-discovery answers.
    Tx,
}

impl Action {
    /// Its number, as BPF_PROG_TEST_RUN returns it.
    pub fn xdp(self) -> u32 {
        match self {
            Action::Drop => 1,
            Action::Pass => 2,
            Action::Tx => 3,
        }
    }
}

/// What the program does with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// The one counter that moves, by one: (slot, counter).
    pub counter: (u32, Counter),
    /// The table row and bucket that decided, where an owner table was read.
    pub bucket: Option<(u16, u32)>,
    /// The frame as the program leaves it.
    pub output: Vec<u8>,
}

impl Plane<'_> {
    /// What the program does with `frame` at `now`.
    pub fn judge(&self, frame: &[u8], now: Instant) -> Verdict {
        Judge { plane: self, b: Bytes(frame), now }.frame()
    }
}

struct Judge<'a> {
    plane: &'a Plane<'a>,
    b: Bytes<'a>,
    now: Instant,
}

impl Judge<'_> {
    fn verdict(&self, action: Action, slot: u32, counter: Counter) -> Verdict {
        let output = self.b.0.to_vec();
        Verdict { action, counter: (slot, counter), bucket: None, output }
    }

    fn pass_not_vip(&self) -> Verdict {
        self.verdict(Action::Pass, GLOBAL_SLOT, Counter::Passed)
    }

    fn pass_malformed(&self) -> Verdict {
        self.verdict(Action::Pass, GLOBAL_SLOT, Counter::Malformed)
    }

    fn malformed(&self, vip: Vip) -> Verdict {
        self.verdict(Action::Drop, vip.slot.into(), Counter::Malformed)
    }

    fn vip(&self, addr: &Addr) -> Option<Vip> {
        find_vip(self.plane.rules, addr)
    }

    fn frame(&self) -> Verdict {
        // `steer::plain_ipv4` decides what the general path below would, faster.
        match self.b.ethernet() {
            Some((ETH_P_ARP, l3)) => self.arp(l3),
            Some((ETH_P_IP, l3)) => self.ipv4(l3),
            Some((ETH_P_IPV6, l3)) => self.ipv6(l3),
            Some(_) => self.pass_not_vip(),
            None => self.pass_malformed(),
        }
    }

    /// `neighbour::arp`.
    fn arp(&self, l3: usize) -> Verdict {
        let Some(body) = self.b.at::<ARP_LEN>(l3) else {
            return self.pass_malformed();
        };
        let word = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        if u64::from_be_bytes(body[..8].try_into().expect("8 bytes")) != ARP_REQUEST_HEAD {
            return self.pass_not_vip();
        }
        let (spa, tpa) = (word(14), word(24));
        let Some(vip) = self.vip(&v4_addr(tpa)) else {
            return self.pass_not_vip();
        };
        if spa == tpa {
            return self.verdict(Action::Pass, vip.slot.into(), Counter::Passed);
        }
        if !self.plane.leased(self.now) {
            return self.verdict(Action::Drop, vip.slot.into(), Counter::LeaseExpired);
        }
        let sha: [u8; 6] = body[8..14].try_into().expect("6 bytes");
        let node = self.plane.node;
        let mut v = self.verdict(Action::Tx, vip.slot.into(), Counter::ArpReplies);
        v.output[..12].copy_from_slice(&neighbour::ethernet(sha, node.own_mac, 0)[..12]);
        v.output[l3..l3 + ARP_LEN].copy_from_slice(&neighbour::arp(
            ARPOP_REPLY,
            node.cluster_mac,
            tpa,
            sha,
            spa,
        ));
        v
    }

    /// `neighbour::solicitation`.
    fn solicitation(&self, l3: usize, src: &Addr) -> Verdict {
        let icmp = l3 + IPV6_LEN;
        let (Some(target), Some(requester_mac)) = (self.b.addr6(icmp + 8), self.b.at::<6>(6))
        else {
            return self.pass_malformed();
        };
        let Some(vip) = self.vip(&target) else {
            return self.pass_not_vip();
        };
        if *src == [0; 4] {
            return self.verdict(Action::Pass, vip.slot.into(), Counter::Passed);
        }
        if !self.plane.leased(self.now) {
            return self.verdict(Action::Drop, vip.slot.into(), Counter::LeaseExpired);
        }
        let node = self.plane.node;
        let mut v = self.verdict(Action::Tx, vip.slot.into(), Counter::NdReplies);
        // Ethernet and its tags stay; the rest is one advertisement, whatever came in.
        v.output.truncate(l3);
        v.output[..12].copy_from_slice(&neighbour::ethernet(requester_mac, node.own_mac, 0)[..12]);
        let flags = NA_SOLICITED | NA_OVERRIDE;
        v.output.extend(neighbour::advertisement_packet(
            flags,
            &target,
            &node.cluster_mac,
            &target,
            src,
        ));
        v
    }

    /// `steer::ipv4`.
    fn ipv4(&self, l3: usize) -> Verdict {
        let Some(ip) = V4::at(self.b, l3) else {
            return self.pass_malformed();
        };
        let Some(vip) = self.vip(&v4_addr(ip.dst)) else {
            return self.pass_not_vip();
        };
        let client = v4_addr(ip.src);
        let (ihl, piece) = (ip.header_len(), ip.piece());
        if let Some(ihl) = ihl
            && piece == Piece::Whole
            && let Some(v) = self.known_service(vip, &client, ip.proto, l3 + ihl)
        {
            return v;
        }
        let Some(ihl) = ihl else {
            return self.malformed(vip);
        };
        let l4 = l3 + ihl;
        if piece != Piece::Whole {
            return self.fragment(vip, &client, piece, ip.proto, l4);
        }
        let is_error = |t| matches!(t, ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAM_PROBLEM);
        self.after_header(vip, &client, ip.proto, l4, IPPROTO_ICMP, is_error)
    }

    /// `steer::ipv6`.
    fn ipv6(&self, l3: usize) -> Verdict {
        let Some(V6 { next, src, dst }) = V6::at(self.b, l3) else {
            return self.pass_malformed();
        };
        let l4 = l3 + IPV6_LEN;
        if next == IPPROTO_ICMPV6 && self.b.byte(l4) == Some(ICMPV6_NEIGHBOUR_SOLICIT) {
            return self.solicitation(l3, &src);
        }
        let Some(vip) = self.vip(&dst) else {
            return self.pass_not_vip();
        };
        if let Some(v) = self.known_service(vip, &src, next, l4) {
            return v;
        }
        let Some(payload) = ipv6_payload(self.b, l3, next) else {
            return self.malformed(vip);
        };
        if payload.piece != Piece::Whole {
            return self.fragment(vip, &src, payload.piece, payload.proto, payload.off);
        }
        if payload.off != l4
            && let Some(v) = self.known_service(vip, &src, payload.proto, payload.off)
        {
            return v;
        }
        let is_error = |t| (ICMPV6_DEST_UNREACH..=ICMPV6_PARAM_PROBLEM).contains(&t);
        self.after_header(vip, &src, payload.proto, payload.off, IPPROTO_ICMPV6, is_error)
    }

    /// `steer::fragment`: every piece hashes on the client in the VIP's table; a first
    /// fragment to a port no service claims follows the VIP's default.
    fn fragment(&self, vip: Vip, client: &Addr, piece: Piece, proto: u8, l4: usize) -> Verdict {
        if piece == Piece::First && matches!(proto, IPPROTO_TCP | IPPROTO_UDP) {
            let Some(ports) = self.b.be32(l4) else {
                return self.malformed(vip);
            };
            if service(self.plane.rules, vip, proto, ports as u16).is_none() {
                return self.default_rule(vip, client);
            }
        }
        self.decide(vip.slot, client, 0)
    }

    /// `steer::after_header`: what `known_service` did not decide.
    fn after_header(
        &self,
        vip: Vip,
        client: &Addr,
        proto: u8,
        l4: usize,
        icmp: u8,
        is_error: impl Fn(u8) -> bool,
    ) -> Verdict {
        match proto {
            IPPROTO_TCP | IPPROTO_UDP => match self.b.be32(l4) {
                Some(_) => self.default_rule(vip, client),
                None => self.malformed(vip),
            },
            p if p == icmp => match self.b.byte(l4) {
                Some(t) if is_error(t) && icmp == IPPROTO_ICMP => self.icmp4_error(vip, l4 + 8),
                Some(t) if is_error(t) => self.icmp6_error(vip, l4 + 8),
                Some(_) => self.decide(vip.slot, client, 0),
                None => self.malformed(vip),
            },
            _ => self.default_rule(vip, client),
        }
    }

    /// `steer::icmp4_error`: the quoted header is one we sent, to the client.
    fn icmp4_error(&self, vip: Vip, inner: usize) -> Verdict {
        let Some(ip) = V4::at(self.b, inner) else {
            return self.malformed(vip);
        };
        let Some(ihl) = ip.header_len() else {
            return self.malformed(vip);
        };
        self.quoted(vip, &v4_addr(ip.dst), ip.proto, inner + ihl, ip.piece())
    }

    /// `steer::icmp6_error`.
    fn icmp6_error(&self, vip: Vip, inner: usize) -> Verdict {
        let Some(ip) = V6::at(self.b, inner) else {
            return self.malformed(vip);
        };
        match ipv6_payload(self.b, inner, ip.next) {
            Some(p) => self.quoted(vip, &ip.dst, p.proto, p.off, p.piece),
            None => self.decide(vip.slot, &ip.dst, 0),
        }
    }

    /// `steer::quoted`: an ICMP error goes where the flow it quotes goes.
    fn quoted(&self, vip: Vip, client: &Addr, proto: u8, l4: usize, piece: Piece) -> Verdict {
        let ports = match (piece, proto) {
            (Piece::Whole, IPPROTO_TCP | IPPROTO_UDP) => self.b.be32(l4),
            _ => None,
        };
        let Some(ports) = ports else {
            return self.decide(vip.slot, client, 0);
        };
        match service(self.plane.rules, vip, proto, (ports >> 16) as u16) {
            Some(svc) => self.decide_service(svc, client, ports as u16),
            None => self.default_rule(vip, client),
        }
    }

    /// `steer::known_service`: TCP or UDP to a service, or `None`.
    fn known_service(&self, vip: Vip, client: &Addr, proto: u8, l4: usize) -> Option<Verdict> {
        let ports = self.b.be32(l4)?;
        let svc = service(self.plane.rules, vip, proto, ports as u16)?;
        Some(self.decide_service(svc, client, (ports >> 16) as u16))
    }

    fn decide_service(&self, (slot, mode): (u16, u8), client: &Addr, port: u16) -> Verdict {
        self.decide(slot, client, if mode == MODE_CLIENT_IP_PORT { port } else { 0 })
    }

    /// `steer::default_rule`.
    fn default_rule(&self, vip: Vip, client: &Addr) -> Verdict {
        if vip.mode == MODE_DROP {
            return self.verdict(Action::Drop, vip.slot.into(), Counter::NoService);
        }
        self.decide(vip.slot, client, 0)
    }

    /// `steer::decide` and `ownership::may_take`: the owner first, then the lease.
    fn decide(&self, slot: u16, client: &Addr, port: u16) -> Verdict {
        let (plane, node) = (self.plane, self.plane.node);
        let (_, bucket) = bucket_of_key(node, client, port);
        let (action, counter) = if plane.owner_of(slot, bucket) != node.node_id {
            (Action::Drop, Counter::NotOwner)
        } else if !plane.leased(self.now) {
            (Action::Drop, Counter::LeaseExpired)
        } else {
            (Action::Pass, Counter::Accepted)
        };
        let mut v = self.verdict(action, slot.into(), counter);
        v.bucket = Some((slot, bucket));
        if action == Action::Pass {
            v.output[..6].copy_from_slice(&node.own_mac);
        }
        v
    }
}
