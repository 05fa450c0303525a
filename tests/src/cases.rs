//! The verdict fixtures as one table. A case is a packet, the owner table it runs against,
//! and what a user would see: the verdict, the frame that comes out (readdressed, a reply,
//! or unchanged) and the one counter that moves. The verdict tests check every case;
//! table A of `cargo xtask bench` times the cases marked `timed`.
use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Result, bail};
use farm_common::{
    Counter, Counters, GLOBAL_SLOT, HANDOVER_LEARNING, HANDOVER_RELEASED, HANDOVER_TAKING, NO_OWNER,
};

use crate::{
    fixtures::*,
    harness::{Harness, XDP_DROP, XDP_PASS, XDP_TX},
    held::HELD_PORT,
    packet::*,
};

/// Who owns the buckets of the table a case runs against.
#[derive(Clone, Copy, Debug)]
pub enum Owners {
    /// This node owns every bucket of every slot.
    Mine,
    /// Another node (`PEER`) owns every bucket.
    Peer,
    /// No node owns any bucket.
    Nobody,
    /// This node owns every bucket of these slots, `PEER` every other.
    Slots(&'static [u32]),
    /// Every bucket is in handover between this node and `PEER`: from this node if
    /// `given`, to it otherwise; the move in `phase` (`farm_common::HANDOVER_*`).
    Moving { given: bool, phase: u8 },
}

impl Owners {
    /// Installs this table in `h`.
    pub fn install(self, h: &mut Harness) -> Result<()> {
        let me = h.node_id();
        if let Owners::Moving { given, phase } = self {
            let (old, new) = if given { (me, PEER) } else { (PEER, me) };
            return h.hand_over(old, new, phase);
        }
        h.fill(|slot, _| match self {
            Owners::Mine => me,
            Owners::Peer => PEER,
            Owners::Nobody => NO_OWNER,
            Owners::Slots(mine) if mine.contains(&(slot as u32)) => me,
            Owners::Slots(_) => PEER,
            Owners::Moving { .. } => unreachable!("installed above"),
        })
    }
}

pub struct Case {
    /// What the case is: how a failure and table A name it.
    pub name: String,
    pub packet: Vec<u8>,
    /// The owner table it runs against.
    pub owners: Owners,
    /// The XDP action.
    pub verdict: u32,
    /// The frame as the program leaves it.
    pub output: Vec<u8>,
    /// The one counter that moves, by one: (slot, counter).
    pub counter: (u32, Counter),
    /// Table A of the benchmark times this path.
    pub timed: bool,
}

impl Case {
    /// Runs the packet once in `h` with the case's owner table installed; the error says
    /// every way the outcome differs from the case's.
    pub fn check(&self, h: &mut Harness) -> Result<()> {
        self.owners.install(h)?;
        let slots: Vec<u32> = (0..h.rules.slots.len() as u32).chain([GLOBAL_SLOT]).collect();
        let before = counters(h, &slots)?;
        let out = h.run(&self.packet)?;
        let after = counters(h, &slots)?;
        let moved: Vec<(u32, Counter, u64)> = slots
            .iter()
            .zip(before.iter().zip(&after))
            .flat_map(|(&slot, (b, a))| {
                Counter::ALL
                    .into_iter()
                    .filter(|&k| a[k] != b[k])
                    .map(move |k| (slot, k, a[k] - b[k]))
            })
            .collect();
        let mut wrong = Vec::new();
        if out.action != self.verdict {
            wrong.push(format!(
                "verdict {}, expected {}",
                action(out.action),
                action(self.verdict)
            ));
        }
        if out.packet != self.output {
            wrong.push(frame_difference(&out.packet, &self.output));
        }
        let (slot, counter) = self.counter;
        if moved != [(slot, counter, 1)] {
            wrong.push(format!("counters moved {moved:?}, expected [({slot}, {counter:?}, 1)]"));
        }
        if !wrong.is_empty() {
            bail!("{}: {}", self.name, wrong.join("; "));
        }
        Ok(())
    }

    /// Marks the case as one of table A's paths.
    fn timed(self) -> Case {
        Case { timed: true, ..self }
    }
}

fn counters(h: &Harness, slots: &[u32]) -> Result<Vec<Counters>> {
    slots.iter().map(|&s| h.counters(s)).collect()
}

fn action(a: u32) -> String {
    match a {
        XDP_DROP => "XDP_DROP".into(),
        XDP_PASS => "XDP_PASS".into(),
        XDP_TX => "XDP_TX".into(),
        other => format!("action {other}"),
    }
}

/// Where two frames part, and a few bytes of each from there.
fn frame_difference(got: &[u8], want: &[u8]) -> String {
    let at = got.iter().zip(want).take_while(|(g, w)| g == w).count();
    let from = |f: &[u8]| format!("{:02x?}", &f[at..f.len().min(at + 16)]);
    format!(
        "frame out ({} bytes) differs from the expected ({} bytes) at byte {at}: {} instead of {}",
        got.len(),
        want.len(),
        from(got),
        from(want)
    )
}

/// Passed on to the stack, readdressed to this node's NIC, counted accepted in `slot`.
pub fn accepted(name: &str, owners: Owners, slot: u32, packet: Vec<u8>) -> Case {
    let output = readdressed(&packet);
    let counter = (slot, Counter::Accepted);
    Case { name: name.into(), packet, owners, verdict: XDP_PASS, output, counter, timed: false }
}

/// Passed on to the stack, readdressed to this node's NIC, counted by `counter`: a
/// bucket in handover, whose verdicts have counters of their own.
pub fn kept(name: &str, owners: Owners, counter: (u32, Counter), packet: Vec<u8>) -> Case {
    Case { counter, ..accepted(name, owners, counter.0, packet) }
}

/// Dropped as it came.
pub fn dropped(name: &str, owners: Owners, counter: (u32, Counter), packet: Vec<u8>) -> Case {
    let output = packet.clone();
    Case { name: name.into(), packet, owners, verdict: XDP_DROP, output, counter, timed: false }
}

/// Passed to the stack as it came.
pub fn passed(name: &str, owners: Owners, counter: (u32, Counter), packet: Vec<u8>) -> Case {
    let output = packet.clone();
    Case { name: name.into(), packet, owners, verdict: XDP_PASS, output, counter, timed: false }
}

/// Sent back out of the NIC as `reply`.
pub fn answered(
    name: &str,
    owners: Owners,
    counter: (u32, Counter),
    packet: Vec<u8>,
    reply: Vec<u8>,
) -> Case {
    Case {
        name: name.into(),
        packet,
        owners,
        verdict: XDP_TX,
        output: reply,
        counter,
        timed: false,
    }
}

/// An ICMP error from a router about a packet the farm sent: VIP:sport -> client:dport.
pub fn icmp4_error(quoted_proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let router = Ipv4Addr::new(198, 19, 255, 1);
    let quoted = Frame::default()
        .ipv4(VIP4, CLIENT4, quoted_proto, &[], 0, 8)
        .ports(sport, dport)
        .raw(&[0; 4])
        .build();
    Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
        .ipv4(router, VIP4, ICMP, &[], 0, 8 + quoted.len())
        .raw(&[3, 4, 0, 0, 0, 0, 0x05, 0xdc])
        .raw(&quoted)
        .build()
}

/// The IPv6 twin of `icmp4_error`: a packet too big.
pub fn icmp6_error(quoted_proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let router = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1);
    let quoted = Frame::default()
        .ipv6(VIP6, CLIENT6, &[], quoted_proto, 8)
        .ports(sport, dport)
        .raw(&[0; 4])
        .build();
    Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
        .ipv6(router, VIP6, &[], ICMPV6, 8 + quoted.len())
        .raw(&[2, 0, 0, 0, 0, 0, 0x05, 0xdc])
        .raw(&quoted)
        .build()
}

/// The fragment field (offset in 8-byte units, more-fragments bit) of an IPv6
/// datagram's first fragment and of its 186th 8-byte unit.
const FIRST: u16 = 0x0001;
const LATER: u16 = 185 << 3 | 1;

/// A fragment from the client to `vip`: behind the fixed header `before` (extension
/// headers), a fragment header with fragment field `field` and next header `next`, then
/// `data`.
fn v6_fragment(
    vip: Ipv6Addr,
    before: &[(u8, Vec<u8>)],
    field: u16,
    next: u8,
    data: &[u8],
) -> Vec<u8> {
    let [hi, lo] = field.to_be_bytes();
    let header = (IPV6_FRAGMENT, vec![0, hi, lo, 0, 0, 0, 7]);
    let exts: Vec<(u8, Vec<u8>)> = before.iter().cloned().chain([header]).collect();
    Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
        .ipv6(CLIENT6, vip, &exts, next, data.len())
        .raw(data)
        .build()
}

/// A UDP header from the client's port 40000 to `dport`, and 8 bytes of data.
fn udp_head(dport: u16) -> Vec<u8> {
    Frame::default().ports(40000, dport).raw(&[0, 16, 0, 0]).raw(&[0; 8]).build()
}

/// A hop-by-hop options header (a PadN option filling it), as `Frame::ipv6` takes it.
pub fn hop_by_hop() -> (u8, Vec<u8>) {
    (IPV6_HOP_BY_HOP, vec![0, 1, 4, 0, 0, 0, 0])
}

/// Every case. Table A of the benchmark reads its paths from here, so their names are
/// written for its rows.
pub fn cases() -> Vec<Case> {
    use Counter::*;
    use Owners::*;
    let web4 = tcp(CLIENT4.into(), 40000, VIP4.into(), 80);
    let web6 = tcp(CLIENT6.into(), 40000, VIP6.into(), 80);
    let gre4 = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
        .ipv4(CLIENT4, VIP4, GRE, &[], 0, 8)
        .raw(&[0; 8])
        .build();
    let gre6 = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
        .ipv6(CLIENT6, VIP6, &[], GRE, 8)
        .raw(&[0; 8])
        .build();
    let web4_payload = &web4[14..];
    let tagged = |tags: &[(u16, u16)]| {
        Frame::eth(CLUSTER_MAC, CLIENT_MAC, tags, ETH_P_IP).raw(web4_payload).build()
    };
    let with_options = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
        .ipv4(CLIENT4, VIP4, TCP, &[1, 1, 1, 0], 0, 20)
        .ports(40000, 80)
        .raw(&[0; 16])
        .build();
    let v4_fragment = |frags: u16, dport: u16| {
        Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
            .ipv4(CLIENT4, VIP4, UDP, &[], frags, 16)
            .ports(40000, dport)
            .raw(&[0; 12])
            .build()
    };
    let walked = [
        hop_by_hop(),
        (IPV6_DEST_OPTS, vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        (IPV6_ROUTING, vec![0, 0, 0, 0, 0, 0, 0]),
    ];
    let seven: Vec<(u8, Vec<u8>)> = (0..7).map(|_| (IPV6_DEST_OPTS, vec![0; 7])).collect();
    let echo4 = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
        .ipv4(CLIENT4, VIP4, ICMP, &[], 0, 8)
        .raw(&[8, 0, 0, 0, 0, 1, 0, 1])
        .build();
    let echo6 = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
        .ipv6(CLIENT6, VIP6, &[], ICMPV6, 8)
        .raw(&[128, 0, 0, 0, 0, 1, 0, 1])
        .build();
    let mut arp_reply_frame = arp_request(CLIENT4, VIP4);
    arp_reply_frame[21] = 2;
    let vlan_runt = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[(0x8100, 5)], ETH_P_IP).build();

    let mut cases = vec![
        // Not for a VIP: the stack's business, untouched.
        passed(
            "not for a VIP, passed",
            Mine,
            (GLOBAL_SLOT, Passed),
            tcp(CLIENT4.into(), 40000, OTHER4.into(), 80),
        )
        .timed(),
        passed(
            "IPv6 not for a VIP, passed",
            Mine,
            (GLOBAL_SLOT, Passed),
            udp(CLIENT6.into(), 40000, OTHER6.into(), 53),
        ),
        passed(
            "neither IP nor ARP (LLDP), passed",
            Mine,
            (GLOBAL_SLOT, Passed),
            Frame::eth([0xff; 6], CLIENT_MAC, &[], 0x88cc).raw(&[0; 46]).build(),
        ),
        passed(
            "ARP request for an address that is no VIP, passed",
            Mine,
            (GLOBAL_SLOT, Passed),
            arp_request(CLIENT4, OTHER4),
        ),
        passed("ARP reply, passed", Mine, (GLOBAL_SLOT, Passed), arp_reply_frame),
        passed(
            "neighbour solicitation for an address that is no VIP, passed",
            Mine,
            (GLOBAL_SLOT, Passed),
            neighbour_solicitation(CLIENT6, OTHER6, true),
        ),
        // A service's own table decides, whatever the VIP's table says.
        accepted("VIP, this node's bucket, accepted", Mine, SLOT_WEB4, web4.clone()).timed(),
        accepted("IPv6 VIP, this node's bucket, accepted", Mine, SLOT_WEB6, web6.clone()),
        dropped("VIP, another node's bucket, dropped", Peer, (SLOT_WEB4, NotOwner), web4.clone())
            .timed(),
        dropped(
            "IPv6 VIP, another node's bucket, dropped",
            Peer,
            (SLOT_WEB6, NotOwner),
            web6.clone(),
        ),
        dropped("VIP, a bucket nobody owns, dropped", Nobody, (SLOT_WEB4, NotOwner), web4.clone()),
        accepted(
            "service's table this node's, VIP's another's: accepted",
            Slots(&[SLOT_WEB4]),
            SLOT_WEB4,
            web4.clone(),
        ),
        dropped(
            "VIP's table this node's, service's another's: dropped",
            Slots(&[SLOT_VIP4]),
            (SLOT_WEB4, NotOwner),
            web4.clone(),
        ),
        // What no service claims follows the VIP's default: VIP4 drops, VIP6 hashes.
        dropped(
            "port no service claims, VIP default drop: dropped",
            Mine,
            (SLOT_VIP4, NoService),
            tcp(CLIENT4.into(), 40000, VIP4.into(), 81),
        ),
        dropped("GRE, VIP default drop: dropped", Mine, (SLOT_VIP4, NoService), gre4),
        accepted(
            "IPv6 port no service claims, VIP default client-ip: the VIP's table",
            Slots(&[SLOT_VIP6]),
            SLOT_VIP6,
            tcp(CLIENT6.into(), 40000, VIP6.into(), 81),
        ),
        accepted(
            "IPv6 GRE, VIP default client-ip: the VIP's table",
            Slots(&[SLOT_VIP6]),
            SLOT_VIP6,
            gre6,
        ),
        dropped(
            "UDP port just past a service's range: no service",
            Mine,
            (SLOT_VIP4, NoService),
            udp(CLIENT4.into(), 40000, VIP4.into(), 6010),
        ),
        dropped(
            "a UDP service's port over TCP: no service",
            Mine,
            (SLOT_VIP4, NoService),
            tcp(CLIENT4.into(), 40000, VIP4.into(), 5353),
        ),
        // VLAN tags: two are looked through; a third is beyond what the program reads.
        accepted("one VLAN tag, accepted", Slots(&[SLOT_WEB4]), SLOT_WEB4, tagged(&[(0x8100, 10)])),
        accepted(
            "two VLAN tags, accepted",
            Slots(&[SLOT_WEB4]),
            SLOT_WEB4,
            tagged(&[(0x88a8, 100), (0x8100, 10)]),
        ),
        passed(
            "three VLAN tags: not IP to the program, passed",
            Mine,
            (GLOBAL_SLOT, Passed),
            tagged(&[(0x88a8, 1), (0x8100, 2), (0x8100, 3)]),
        ),
        accepted("IPv4 with options, accepted", Slots(&[SLOT_WEB4]), SLOT_WEB4, with_options),
        // Fragments hash on the client address in the VIP's table, not the service's.
        accepted(
            "first IPv4 fragment to a service's port: the VIP's table",
            Slots(&[SLOT_VIP4]),
            SLOT_VIP4,
            v4_fragment(0x2000, 5353),
        ),
        accepted(
            "first IPv6 fragment to a service's port: the VIP's table",
            Slots(&[SLOT_VIP6]),
            SLOT_VIP6,
            v6_fragment(VIP6, &[], FIRST, UDP, &udp_head(53)),
        ),
        accepted(
            "first IPv6 fragment to a port no service claims, VIP default client-ip: the VIP's table",
            Slots(&[SLOT_VIP6]),
            SLOT_VIP6,
            v6_fragment(VIP6, &[], FIRST, UDP, &udp_head(81)),
        ),
        // The first fragment carries the ports: to a port no service claims on a VIP
        // whose default is drop, it is dropped on every node, and with it the datagram.
        dropped(
            "first IPv4 fragment to a port no service claims, VIP default drop: dropped",
            Mine,
            (SLOT_VIP4, NoService),
            v4_fragment(0x2000, 81),
        ),
        dropped(
            "first IPv6 fragment to a port no service claims, VIP default drop: dropped",
            Mine,
            (SLOT_VIP6_DROP, NoService),
            v6_fragment(VIP6_DROP, &[], FIRST, UDP, &udp_head(81)),
        ),
        dropped(
            "first IPv6 fragment behind a destination-options header, no service, VIP default drop: dropped",
            Mine,
            (SLOT_VIP6_DROP, NoService),
            v6_fragment(
                VIP6_DROP,
                &[],
                FIRST,
                IPV6_DEST_OPTS,
                &[&[UDP, 0, 1, 4, 0, 0, 0, 0], &udp_head(81)[..]].concat(),
            ),
        ),
        dropped(
            "first IPv4 fragment too short for the ports: malformed",
            Mine,
            (SLOT_VIP4, Malformed),
            Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
                .ipv4(CLIENT4, VIP4, UDP, &[], 0x2000, 2)
                .raw(&[0x9c, 0x40])
                .build(),
        ),
        // A later fragment cannot be classified: the VIP's table takes it, whatever
        // its datagram was for.
        accepted(
            "later IPv4 fragment to a VIP whose default is drop: the VIP's table",
            Slots(&[SLOT_VIP4]),
            SLOT_VIP4,
            v4_fragment(185, 81),
        ),
        accepted(
            "later IPv6 fragment to a VIP whose default is drop: the VIP's table",
            Slots(&[SLOT_VIP6_DROP]),
            SLOT_VIP6_DROP,
            v6_fragment(VIP6_DROP, &[], LATER, UDP, &[0xff; 16]),
        ),
        accepted(
            "later IPv6 fragment after a destination-options header: the VIP's table, its data not read as headers",
            Slots(&[SLOT_VIP6]),
            SLOT_VIP6,
            v6_fragment(VIP6, &[], LATER, IPV6_DEST_OPTS, &[0xff; 16]),
        ),
        accepted(
            "first IPv6 fragment behind a hop-by-hop header, to a service's port: the VIP's table",
            Slots(&[SLOT_VIP6]),
            SLOT_VIP6,
            v6_fragment(VIP6, &[hop_by_hop()], FIRST, UDP, &udp_head(53)),
        ),
        accepted(
            "IPv6 behind hop-by-hop, destination and routing headers, accepted",
            Slots(&[SLOT_WEB6]),
            SLOT_WEB6,
            Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
                .ipv6(CLIENT6, VIP6, &walked, TCP, 20)
                .ports(40000, 80)
                .raw(&[0; 16])
                .build(),
        ),
        dropped(
            "IPv6 with more extension headers than the program walks: malformed",
            Mine,
            (SLOT_VIP6, Malformed),
            Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
                .ipv6(CLIENT6, VIP6, &seven, TCP, 20)
                .ports(1, 80)
                .raw(&[0; 16])
                .build(),
        ),
        // ICMP echo hashes on the client in the VIP's table; an error goes to the owner
        // of the flow it quotes, in the service's table.
        accepted("ICMP echo: the VIP's table", Slots(&[SLOT_VIP4]), SLOT_VIP4, echo4.clone()),
        accepted("ICMPv6 echo: the VIP's table", Slots(&[SLOT_VIP6]), SLOT_VIP6, echo6),
        accepted(
            "ICMP error about a service's flow: the service's table",
            Slots(&[SLOT_DNS4]),
            SLOT_DNS4,
            icmp4_error(UDP, 5353, 40000),
        ),
        accepted(
            "ICMPv6 error about a service's flow: the service's table",
            Slots(&[SLOT_DNS6]),
            SLOT_DNS6,
            icmp6_error(UDP, 53, 40000),
        ),
        dropped(
            "ICMP error about a flow of another node's: dropped",
            Slots(&[SLOT_VIP4]),
            (SLOT_DNS4, NotOwner),
            icmp4_error(UDP, 5353, 40000),
        ),
        dropped(
            "ICMP error quoting a header cut short: malformed",
            Mine,
            (SLOT_VIP4, Malformed),
            icmp4_error(UDP, 5353, 40000)[..14 + 20 + 8 + 10].to_vec(),
        ),
        // ARP and neighbour discovery for a VIP: answered with the cluster MAC by every
        // node whose lease is fresh, whoever owns the requester's bucket (the answers are
        // all the same), so a client whose bucket a failed node still owns is answered by
        // the survivors. The kernel never sees a request, so it cannot answer with the
        // NIC's own MAC.
        answered(
            "ARP request for a VIP, answered",
            Mine,
            (SLOT_VIP4, ArpReplies),
            arp_request(CLIENT4, VIP4),
            arp_reply(VIP4, CLIENT4),
        )
        .timed(),
        answered(
            "ARP request for a VIP, another node's bucket: answered all the same",
            Peer,
            (SLOT_VIP4, ArpReplies),
            arp_request(CLIENT4, VIP4),
            arp_reply(VIP4, CLIENT4),
        ),
        answered(
            "ARP request for a VIP, on a node that owns no bucket: answered",
            Nobody,
            (SLOT_VIP4, ArpReplies),
            arp_request(CLIENT4, VIP4),
            arp_reply(VIP4, CLIENT4),
        ),
        answered(
            "neighbour solicitation for a VIP, another node's bucket: answered all the same",
            Peer,
            (SLOT_VIP6, NdReplies),
            neighbour_solicitation(CLIENT6, VIP6, true),
            neighbour_advertisement(CLIENT6, VIP6),
        ),
        // Sender and target the VIP: another node announcing the cluster MAC after a
        // takeover. No question: an answer would go to the cluster MAC, from every node.
        passed(
            "gratuitous ARP for a VIP (a node's announcement): left to the stack",
            Mine,
            (SLOT_VIP4, Passed),
            arp_request(VIP4, VIP4),
        ),
        passed(
            "duplicate address detection of a VIP: left to the stack",
            Mine,
            (SLOT_VIP6, Passed),
            neighbour_solicitation(Ipv6Addr::UNSPECIFIED, VIP6, false),
        ),
        // Too short to judge: counted and passed, for the stack to drop.
        passed(
            "runt: a VLAN TPID and nothing after it",
            Mine,
            (GLOBAL_SLOT, Malformed),
            vlan_runt[..14].to_vec(),
        ),
        passed(
            "runt: cut inside a VLAN tag",
            Mine,
            (GLOBAL_SLOT, Malformed),
            vlan_runt[..16].to_vec(),
        ),
        passed("runt: IPv4 header cut short", Mine, (GLOBAL_SLOT, Malformed), web4[..20].to_vec()),
    ];
    // Impossible versions and header lengths.
    for vihl in [0x44, 0x40, 0x4f, 0x65] {
        let mut bad = web4.clone();
        bad[14] = vihl;
        let name = format!("IPv4 version and header length byte {vihl:#04x}: malformed");
        cases.push(dropped(&name, Mine, (SLOT_VIP4, Malformed), bad));
    }
    // The advertisement is one length whatever options came with the solicitation.
    for (with_option, name) in [
        (true, "neighbour solicitation for a VIP, answered"),
        (false, "neighbour solicitation without the source's link-layer address, answered"),
    ] {
        let ns = neighbour_solicitation(CLIENT6, VIP6, with_option);
        let na = neighbour_advertisement(CLIENT6, VIP6);
        cases.push(answered(name, Slots(&[SLOT_VIP6]), (SLOT_VIP6, NdReplies), ns, na));
    }
    // Every port of a service with several, and at both ends of its range.
    for port in [53, 5353, 6000, 6005, 6009] {
        let name = format!("UDP port {port} of a service with several, accepted");
        let pkt = udp(CLIENT4.into(), 40000, VIP4.into(), port);
        cases.push(accepted(&name, Slots(&[SLOT_DNS4]), SLOT_DNS4, pkt));
    }
    cases.extend(handover(echo4));
    cases
}

/// TCP flags, as the packet builder leaves them 0.
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// `packet`, a TCP segment with no IP options or extension headers, with `flags`.
fn with_flags(mut packet: Vec<u8>, flags: u8) -> Vec<u8> {
    let ip = if packet[12..14] == ETH_P_IPV6.to_be_bytes() { 40 } else { 20 };
    packet[14 + ip + 13] = flags;
    packet
}

/// Buckets in handover (every bucket of the table, between this node and `PEER`). The
/// TCP cases need the connections `held::hold` makes in the calling thread's namespace:
/// one from the client's `HELD_PORT`, none from any other port. The harness never sets
/// a flow idle time, so no UDP flow stays learned past the install here; the verdict
/// tests learn and keep one in sequence.
fn handover(echo4: Vec<u8>) -> Vec<Case> {
    use Counter::*;
    let moving = |given, phase| Owners::Moving { given, phase };
    let (given, taken) = (moving(true, HANDOVER_TAKING), moving(false, HANDOVER_TAKING));
    let (given_early, taken_early) =
        (moving(true, HANDOVER_RELEASED), moving(false, HANDOVER_RELEASED));
    let (learning_given, learning_taken) =
        (moving(true, HANDOVER_LEARNING), moving(false, HANDOVER_LEARNING));
    let held4 = with_flags(tcp(CLIENT4.into(), HELD_PORT, VIP4.into(), 80), ACK);
    let held6 = with_flags(tcp(CLIENT6.into(), HELD_PORT, VIP6.into(), 80), ACK);
    let other4 = with_flags(tcp(CLIENT4.into(), 40000, VIP4.into(), 80), ACK);
    let syn4 = with_flags(tcp(CLIENT4.into(), 40000, VIP4.into(), 80), SYN);
    let dns4 = udp(CLIENT4.into(), 40000, VIP4.into(), 53);
    let error4 = icmp4_error(TCP, 80, 40000);
    vec![
        kept(
            "handover, old owner: a connection it holds, kept",
            given,
            (SLOT_WEB4, SocketFound),
            held4.clone(),
        )
        .timed(),
        kept(
            "handover, old owner: an IPv6 connection it holds, kept",
            given,
            (SLOT_WEB6, SocketFound),
            held6,
        ),
        dropped(
            "handover, old owner: a connection it does not hold, dropped",
            given,
            (SLOT_WEB4, PeerFlow),
            other4.clone(),
        ),
        dropped(
            "handover, old owner: a SYN, dropped (new connections are the new owner's)",
            given,
            (SLOT_WEB4, PeerFlow),
            syn4.clone(),
        ),
        kept("handover, new owner: a SYN, taken", taken, (SLOT_WEB4, NewFlow), syn4.clone())
            .timed(),
        dropped(
            "handover, new owner: a connection the old owner holds, dropped",
            taken,
            (SLOT_WEB4, PeerFlow),
            other4,
        )
        .timed(),
        kept(
            "handover, new owner: a connection it holds, kept",
            taken,
            (SLOT_WEB4, SocketFound),
            held4,
        ),
        dropped(
            "handover, new owner before the install: a SYN, dropped",
            taken_early,
            (SLOT_WEB4, PeerFlow),
            syn4.clone(),
        ),
        dropped(
            "handover released, old owner: a SYN, dropped",
            given_early,
            (SLOT_WEB4, PeerFlow),
            syn4.clone(),
        ),
        kept(
            "handover learning, old owner: a SYN, taken (it still owns the bucket)",
            learning_given,
            (SLOT_WEB4, Accepted),
            syn4.clone(),
        ),
        dropped(
            "handover learning, new owner: a SYN, dropped",
            learning_taken,
            (SLOT_WEB4, PeerFlow),
            syn4,
        ),
        kept(
            "handover learning, old owner: UDP, learned and kept",
            learning_given,
            (SLOT_DNS4, LearnedFlow),
            dns4.clone(),
        ),
        dropped(
            "handover learning, new owner: UDP, learned and dropped",
            learning_taken,
            (SLOT_DNS4, PeerFlow),
            dns4.clone(),
        ),
        kept(
            "handover before the install, old owner: UDP, learned and kept",
            given_early,
            (SLOT_DNS4, LearnedFlow),
            dns4.clone(),
        ),
        dropped(
            "handover before the install, new owner: UDP, learned and dropped",
            taken_early,
            (SLOT_DNS4, PeerFlow),
            dns4.clone(),
        ),
        kept(
            "handover, new owner: UDP of a flow not learned before the move, taken",
            taken,
            (SLOT_DNS4, NewFlow),
            dns4.clone(),
        )
        .timed(),
        dropped(
            "handover, old owner: UDP of a flow not learned before the move, dropped",
            given,
            (SLOT_DNS4, PeerFlow),
            dns4,
        ),
        kept(
            "handover, old owner: an ICMP error about a flow, taken (by both)",
            given,
            (SLOT_WEB4, Accepted),
            error4.clone(),
        ),
        kept(
            "handover, new owner: an ICMP error about a flow, taken (by both)",
            taken,
            (SLOT_WEB4, NewFlow),
            error4,
        ),
        dropped(
            "handover, old owner: ICMP echo, dropped (the new owner's)",
            given,
            (SLOT_VIP4, PeerFlow),
            echo4.clone(),
        ),
        kept("handover, new owner: ICMP echo, taken", taken, (SLOT_VIP4, NewFlow), echo4),
    ]
}
