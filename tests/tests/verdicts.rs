//! Verdict tests: built packets through BPF_PROG_TEST_RUN, one per branch of the program.
//! Each test installs a table where node 1 (this node) owns all, none, or only some slots'
//! buckets, runs a packet, and checks the action, the packet that comes out and the
//! counter that moved.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use farm_common::{Counters, GLOBAL_SLOT};
use farm_tests::{fixtures::*, harness::Harness, have_root, packet::*};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const ME: u16 = 1;
const PEER: u16 = 2;

/// A harness where this node owns every bucket of the slots in `mine` and node 2 the rest.
fn owning(test: &str, mine: &[u32]) -> Option<Harness> {
    if !have_root(test) {
        return None;
    }
    let mut h = Harness::new(config()).expect("load the XDP program");
    let mine = mine.to_vec();
    h.fill(move |slot, _| if mine.contains(&(slot as u32)) { ME } else { PEER }).unwrap();
    Some(h)
}

const ALL: &[u32] = &[SLOT_VIP4, SLOT_VIP6, SLOT_WEB4, SLOT_DNS4, SLOT_WEB6, SLOT_DNS6];

/// The counter that moved in `slot` after running `pkt`, by name.
fn moved(h: &mut Harness, slot: u32, pkt: &[u8]) -> (u32, Vec<u8>, Vec<&'static str>) {
    let before = h.counters(slot).unwrap();
    let out = h.run(pkt).unwrap();
    let after = h.counters(slot).unwrap();
    (out.action, out.packet, diff(&before, &after))
}

fn diff(a: &Counters, b: &Counters) -> Vec<&'static str> {
    let fields = [
        ("accepted", a.accepted, b.accepted),
        ("not_owner", a.not_owner, b.not_owner),
        ("lease_expired", a.lease_expired, b.lease_expired),
        ("no_service", a.no_service, b.no_service),
        ("arp_replies", a.arp_replies, b.arp_replies),
        ("nd_replies", a.nd_replies, b.nd_replies),
        ("malformed", a.malformed, b.malformed),
        ("passed", a.passed, b.passed),
    ];
    fields.iter().filter(|(_, x, y)| x != y).map(|(n, _, _)| *n).collect()
}

/// An accepted frame is the same frame readdressed to this node's NIC.
fn assert_accepted(input: &[u8], action: u32, out: &[u8], counters: &[&str]) {
    assert_eq!(action, XDP_PASS);
    assert_eq!(counters, ["accepted"]);
    assert_eq!(&out[..6], &NODE_MAC, "destination MAC rewritten to the NIC's own");
    assert_eq!(&out[6..], &input[6..], "nothing but the destination MAC changes");
}

#[test]
fn not_for_a_vip_passes_untouched() {
    let Some(mut h) = owning("not_for_a_vip_passes_untouched", ALL) else { return };
    for pkt in [
        tcp(CLIENT4.into(), 40000, OTHER4.into(), 80),
        udp(CLIENT6.into(), 40000, OTHER6.into(), 53),
        Frame::eth([0xff; 6], CLIENT_MAC, &[], 0x88cc).raw(&[0; 46]).build(),
        arp_request(CLIENT4, OTHER4),
    ] {
        let (action, out, c) = moved(&mut h, GLOBAL_SLOT, &pkt);
        assert_eq!((action, c), (XDP_PASS, vec!["passed"]));
        assert_eq!(out, pkt);
    }
}

#[test]
fn owned_bucket_is_accepted_other_owner_dropped() {
    let Some(mut h) =
        owning("owned_bucket_is_accepted_other_owner_dropped", &[SLOT_WEB4, SLOT_WEB6])
    else {
        return;
    };
    for (pkt, slot) in [
        (tcp(CLIENT4.into(), 40000, VIP4.into(), 80), SLOT_WEB4),
        (tcp(CLIENT6.into(), 40000, VIP6.into(), 80), SLOT_WEB6),
    ] {
        let (action, out, c) = moved(&mut h, slot, &pkt);
        assert_accepted(&pkt, action, &out, &c);
    }
    h.fill(|_, _| PEER).unwrap();
    for (pkt, slot) in [
        (tcp(CLIENT4.into(), 40000, VIP4.into(), 80), SLOT_WEB4),
        (tcp(CLIENT6.into(), 40000, VIP6.into(), 80), SLOT_WEB6),
    ] {
        assert_eq!(moved(&mut h, slot, &pkt).2, ["not_owner"]);
        assert_eq!(h.run(&pkt).unwrap().action, XDP_DROP);
    }
}

#[test]
fn bucket_nobody_owns_is_dropped() {
    let Some(mut h) = owning("bucket_nobody_owns_is_dropped", ALL) else { return };
    h.fill(|_, _| farm_common::NO_OWNER).unwrap();
    let pkt = tcp(CLIENT4.into(), 40000, VIP4.into(), 80);
    let (action, _, c) = moved(&mut h, SLOT_WEB4, &pkt);
    assert_eq!((action, c), (XDP_DROP, vec!["not_owner"]));
}

#[test]
fn expired_lease_drops_everything_for_a_vip() {
    let Some(mut h) = owning("expired_lease_drops_everything_for_a_vip", ALL) else { return };
    h.dataplane.renew_lease(Some(std::time::Instant::now())).unwrap();
    let (action, _, c) = moved(&mut h, SLOT_WEB4, &tcp(CLIENT4.into(), 40000, VIP4.into(), 80));
    assert_eq!((action, c), (XDP_DROP, vec!["lease_expired"]));
    let (action, _, c) = moved(&mut h, SLOT_VIP4, &arp_request(CLIENT4, VIP4));
    assert_eq!((action, c), (XDP_DROP, vec!["lease_expired"]), "a fenced node answers no ARP");
    // Traffic that is not for a VIP does not depend on the lease.
    let (action, _, c) = moved(&mut h, GLOBAL_SLOT, &tcp(CLIENT4.into(), 40000, OTHER4.into(), 80));
    assert_eq!((action, c), (XDP_PASS, vec!["passed"]));
    h.dataplane
        .renew_lease(Some(std::time::Instant::now() + std::time::Duration::from_secs(60)))
        .unwrap();
    assert_eq!(h.run(&tcp(CLIENT4.into(), 40000, VIP4.into(), 80)).unwrap().action, XDP_PASS);
}

#[test]
fn no_service_follows_the_vip_default() {
    let Some(mut h) = owning("no_service_follows_the_vip_default", ALL) else { return };
    // VIP4's default is drop: a port no service names is dropped and counted.
    let (action, _, c) = moved(&mut h, SLOT_VIP4, &tcp(CLIENT4.into(), 40000, VIP4.into(), 81));
    assert_eq!((action, c), (XDP_DROP, vec!["no_service"]));
    let gre4 = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
        .ipv4(CLIENT4, VIP4, 47, &[], 0, 8)
        .raw(&[0; 8])
        .build();
    assert_eq!(moved(&mut h, SLOT_VIP4, &gre4).2, ["no_service"]);
    // VIP6's default is client-ip: hashed on its own table.
    let pkt = tcp(CLIENT6.into(), 40000, VIP6.into(), 81);
    let (action, out, c) = moved(&mut h, SLOT_VIP6, &pkt);
    assert_accepted(&pkt, action, &out, &c);
    let gre6 = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
        .ipv6(CLIENT6, VIP6, &[], 47, 8)
        .raw(&[0; 8])
        .build();
    assert_eq!(moved(&mut h, SLOT_VIP6, &gre6).2, ["accepted"]);
}

#[test]
fn port_ranges_match_the_service() {
    let Some(mut h) = owning("port_ranges_match_the_service", &[SLOT_DNS4]) else { return };
    for port in [5353, 6000, 6005, 6009] {
        let (action, _, c) =
            moved(&mut h, SLOT_DNS4, &udp(CLIENT4.into(), 40000, VIP4.into(), port));
        assert_eq!((action, c), (XDP_PASS, vec!["accepted"]), "udp/{port}");
    }
    // Just outside the range, and the right port with the wrong protocol.
    assert_eq!(
        moved(&mut h, SLOT_VIP4, &udp(CLIENT4.into(), 40000, VIP4.into(), 6010)).2,
        ["no_service"]
    );
    assert_eq!(
        moved(&mut h, SLOT_VIP4, &tcp(CLIENT4.into(), 40000, VIP4.into(), 5353)).2,
        ["no_service"]
    );
}

#[test]
fn vlan_tags_are_looked_through() {
    let Some(mut h) = owning("vlan_tags_are_looked_through", &[SLOT_WEB4]) else { return };
    let payload = tcp(CLIENT4.into(), 40000, VIP4.into(), 80)[14..].to_vec();
    for tags in [vec![(0x8100, 10)], vec![(0x88a8, 100), (0x8100, 10)]] {
        let pkt = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &tags, ETH_P_IP).raw(&payload).build();
        let (action, out, c) = moved(&mut h, SLOT_WEB4, &pkt);
        assert_accepted(&pkt, action, &out, &c);
    }
    // A third tag is beyond what the program reads: not IP to it, so passed as not-VIP.
    let three = [(0x88a8, 1), (0x8100, 2), (0x8100, 3)];
    let pkt = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &three, ETH_P_IP).raw(&payload).build();
    assert_eq!(moved(&mut h, GLOBAL_SLOT, &pkt).2, ["passed"]);
}

#[test]
fn ipv4_options_and_bad_header_lengths() {
    let Some(mut h) = owning("ipv4_options_and_bad_header_lengths", &[SLOT_WEB4]) else { return };
    let with_options = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
        .ipv4(CLIENT4, VIP4, TCP, &[1, 1, 1, 0], 0, 20)
        .ports(40000, 80)
        .raw(&[0; 16])
        .build();
    assert_eq!(moved(&mut h, SLOT_WEB4, &with_options).2, ["accepted"]);
    let mut bad = tcp(CLIENT4.into(), 40000, VIP4.into(), 80);
    for vihl in [0x44, 0x40, 0x4f, 0x65] {
        bad[14] = vihl;
        let (action, _, c) = moved(&mut h, SLOT_VIP4, &bad);
        assert_eq!((action, c), (XDP_DROP, vec!["malformed"]), "version/IHL byte {vihl:#x}");
    }
}

#[test]
fn fragments_hash_on_the_client_address_in_the_vip_table() {
    let Some(mut h) =
        owning("fragments_hash_on_the_client_address_in_the_vip_table", &[SLOT_VIP4, SLOT_VIP6])
    else {
        return;
    };
    // First fragment (MF, offset 0) and a later one (offset 185*8): the VIP's table, not the service's.
    for frags in [0x2000, 185] {
        let pkt = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
            .ipv4(CLIENT4, VIP4, UDP, &[], frags, 16)
            .ports(40000, 5353)
            .raw(&[0; 12])
            .build();
        assert_eq!(moved(&mut h, SLOT_VIP4, &pkt).2, ["accepted"], "frags {frags:#x}");
    }
    let frag_hdr = (44u8, vec![0, 0, 1, 0, 0, 0, 7]);
    let pkt = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
        .ipv6(CLIENT6, VIP6, &[frag_hdr], UDP, 16)
        .ports(40000, 53)
        .raw(&[0; 12])
        .build();
    assert_eq!(moved(&mut h, SLOT_VIP6, &pkt).2, ["accepted"]);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let Some(mut h) = owning("ipv6_extension_headers_are_walked", &[SLOT_WEB6]) else { return };
    let hop_by_hop = (0u8, vec![0, 1, 4, 0, 0, 0, 0]);
    let dest_opts = (60u8, vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let routing = (43u8, vec![0, 0, 0, 0, 0, 0, 0]);
    let pkt = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
        .ipv6(CLIENT6, VIP6, &[hop_by_hop, dest_opts, routing], TCP, 20)
        .ports(40000, 80)
        .raw(&[0; 16])
        .build();
    let (action, out, c) = moved(&mut h, SLOT_WEB6, &pkt);
    assert_accepted(&pkt, action, &out, &c);
    // Seven extension headers is more than the program walks: malformed, dropped.
    let many: Vec<(u8, Vec<u8>)> = (0..7).map(|_| (60u8, vec![0; 7])).collect();
    let pkt = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
        .ipv6(CLIENT6, VIP6, &many, TCP, 20)
        .ports(1, 80)
        .raw(&[0; 16])
        .build();
    assert_eq!(
        moved(&mut h, SLOT_VIP6, &pkt),
        (XDP_DROP, h.run(&pkt).unwrap().packet, vec!["malformed"])
    );
}

#[test]
fn icmp_echo_hashes_on_the_client_in_the_vip_table() {
    let Some(mut h) =
        owning("icmp_echo_hashes_on_the_client_in_the_vip_table", &[SLOT_VIP4, SLOT_VIP6])
    else {
        return;
    };
    let echo4 = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
        .ipv4(CLIENT4, VIP4, ICMP, &[], 0, 8)
        .raw(&[8, 0, 0, 0, 0, 1, 0, 1])
        .build();
    assert_eq!(moved(&mut h, SLOT_VIP4, &echo4).2, ["accepted"]);
    let echo6 = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IPV6)
        .ipv6(CLIENT6, VIP6, &[], ICMPV6, 8)
        .raw(&[128, 0, 0, 0, 0, 1, 0, 1])
        .build();
    assert_eq!(moved(&mut h, SLOT_VIP6, &echo6).2, ["accepted"]);
}

/// An ICMP error from a router about a packet the farm sent: VIP:port -> client:cport.
fn icmp4_error(quoted_proto: u8, sport: u16, dport: u16) -> Vec<u8> {
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

fn icmp6_error(quoted_proto: u8, sport: u16, dport: u16) -> Vec<u8> {
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

#[test]
fn icmp_errors_go_to_the_owner_of_the_quoted_flow() {
    let Some(mut h) =
        owning("icmp_errors_go_to_the_owner_of_the_quoted_flow", &[SLOT_DNS4, SLOT_DNS6])
    else {
        return;
    };
    // The service's table decides (this node owns it), not the VIP's (node 2 owns that).
    assert_eq!(moved(&mut h, SLOT_DNS4, &icmp4_error(UDP, 5353, 40000)).2, ["accepted"]);
    assert_eq!(moved(&mut h, SLOT_DNS6, &icmp6_error(UDP, 53, 40000)).2, ["accepted"]);
    h.fill(|slot, _| if slot as u32 == SLOT_VIP4 { ME } else { PEER }).unwrap();
    assert_eq!(moved(&mut h, SLOT_DNS4, &icmp4_error(UDP, 5353, 40000)).2, ["not_owner"]);
    // A quoted packet too short for its header is malformed.
    let cut = icmp4_error(UDP, 5353, 40000)[..14 + 20 + 8 + 10].to_vec();
    assert_eq!(moved(&mut h, SLOT_VIP4, &cut).2, ["malformed"]);
}

#[test]
fn arp_for_a_vip_is_answered_with_the_cluster_mac() {
    let Some(mut h) = owning("arp_for_a_vip_is_answered_with_the_cluster_mac", &[SLOT_VIP4]) else {
        return;
    };
    let req = arp_request(CLIENT4, VIP4);
    let (action, out, c) = moved(&mut h, SLOT_VIP4, &req);
    assert_eq!((action, c), (XDP_TX, vec!["arp_replies"]));
    let mut want = Frame::eth(CLIENT_MAC, NODE_MAC, &[], ETH_P_ARP)
        .raw(&[0, 1, 8, 0, 6, 4, 0, 2])
        .raw(&CLUSTER_MAC)
        .raw(&VIP4.octets())
        .raw(&CLIENT_MAC)
        .raw(&CLIENT4.octets())
        .build();
    want.resize(out.len(), 0);
    assert_eq!(out, want);
    // Another node owns this requester's bucket: it answers, this one stays silent
    // (and the kernel never sees the request, so it cannot answer with the NIC's MAC).
    h.fill(|_, _| PEER).unwrap();
    assert_eq!(
        moved(&mut h, SLOT_VIP4, &req),
        (XDP_DROP, h.run(&req).unwrap().packet, vec!["not_owner"])
    );
    // Replies and non-Ethernet ARP are not requests: the stack's business.
    let mut reply = req.clone();
    reply[21] = 2;
    assert_eq!(moved(&mut h, GLOBAL_SLOT, &reply).2, ["passed"]);
}

#[test]
fn neighbour_solicitation_for_a_vip_is_answered_with_an_advertisement() {
    let Some(mut h) =
        owning("neighbour_solicitation_for_a_vip_is_answered_with_an_advertisement", &[SLOT_VIP6])
    else {
        return;
    };
    for with_option in [true, false] {
        let ns = neighbour_solicitation(CLIENT6, VIP6, with_option);
        let (action, out, c) = moved(&mut h, SLOT_VIP6, &ns);
        assert_eq!((action, c), (XDP_TX, vec!["nd_replies"]), "with option: {with_option}");
        let mut body = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
        body.extend(VIP6.octets());
        body.extend([2, 1]);
        body.extend(CLUSTER_MAC);
        let sum = icmpv6_checksum(VIP6, CLIENT6, &body);
        body[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut want = Frame::eth(CLIENT_MAC, NODE_MAC, &[], ETH_P_IPV6)
            .ipv6(VIP6, CLIENT6, &[], ICMPV6, body.len())
            .raw(&body)
            .build();
        want[14 + 7] = 255; // hop limit
        assert_eq!(out, want, "with option: {with_option}");
    }
    // Not a VIP, and duplicate address detection: left to the stack.
    assert_eq!(
        moved(&mut h, GLOBAL_SLOT, &neighbour_solicitation(CLIENT6, OTHER6, true)).2,
        ["passed"]
    );
    assert_eq!(
        moved(&mut h, SLOT_VIP6, &neighbour_solicitation(Ipv6Addr::UNSPECIFIED, VIP6, false)).2,
        ["passed"]
    );
    h.fill(|_, _| PEER).unwrap();
    assert_eq!(
        moved(&mut h, SLOT_VIP6, &neighbour_solicitation(CLIENT6, VIP6, true)).2,
        ["not_owner"]
    );
}

/// Every prefix of a valid frame: never an accept unless the frame holds all the
/// program reads (through the ports), never a verifier or run error.
#[test]
fn frames_cut_short_at_every_header() {
    let Some(mut h) = owning("frames_cut_short_at_every_header", ALL) else { return };
    let hop_by_hop = (0u8, vec![0, 1, 4, 0, 0, 0, 0]);
    let v6_ext = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[(0x8100, 5)], ETH_P_IPV6)
        .ipv6(CLIENT6, VIP6, &[hop_by_hop], TCP, 20)
        .ports(40000, 80)
        .raw(&[0; 16])
        .build();
    let cases: Vec<(Vec<u8>, usize)> = vec![
        (tcp(CLIENT4.into(), 40000, VIP4.into(), 80), 14 + 20 + 4),
        (tcp(CLIENT6.into(), 40000, VIP6.into(), 80), 14 + 40 + 4),
        (v6_ext, 18 + 40 + 8 + 4),
        // An error quoting a header without its ports falls back to the client address.
        (icmp4_error(UDP, 5353, 40000), 14 + 20 + 8 + 20),
    ];
    for (pkt, needed) in cases {
        for len in 14..pkt.len() {
            let out = h.run(&pkt[..len]).unwrap_or_else(|e| panic!("len {len}: {e:#}"));
            if len < needed {
                assert_ne!(
                    out.packet.get(..6),
                    Some(&NODE_MAC[..]),
                    "accepted a frame cut at {len}"
                );
                assert!(matches!(out.action, XDP_PASS | XDP_DROP), "len {len}");
            } else {
                assert_eq!(out.action, XDP_PASS, "complete enough at {len}");
            }
        }
    }
}

/// Runts and frames cut inside a VLAN tag: passed, counted malformed, never a crash.
#[test]
fn runt_frames_are_counted_and_passed() {
    let Some(mut h) = owning("runt_frames_are_counted_and_passed", ALL) else { return };
    let tagged = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[(0x8100, 5)], ETH_P_IP).build();
    for pkt in [&tagged[..14], &tagged[..16], &tcp(CLIENT4.into(), 1, VIP4.into(), 80)[..20]] {
        let (action, out, c) = moved(&mut h, GLOBAL_SLOT, pkt);
        assert_eq!(action, XDP_PASS, "{} bytes", pkt.len());
        assert_eq!(out, pkt);
        assert!(c == ["malformed"] || c == ["passed"], "{} bytes: {c:?}", pkt.len());
    }
    assert_eq!(moved(&mut h, GLOBAL_SLOT, &tagged[..16]).2, ["malformed"]);
}

/// Random corruptions of valid frames with a table this node owns none of: whatever the
/// bytes say, nothing is accepted and every run completes.
#[test]
fn corrupted_frames_are_never_accepted_for_buckets_of_another_node() {
    let Some(mut h) =
        owning("corrupted_frames_are_never_accepted_for_buckets_of_another_node", &[])
    else {
        return;
    };
    let seeds: Vec<Vec<u8>> = vec![
        tcp(CLIENT4.into(), 40000, VIP4.into(), 80),
        udp(CLIENT6.into(), 40000, VIP6.into(), 53),
        icmp4_error(UDP, 5353, 40000),
        icmp6_error(TCP, 80, 40000),
        arp_request(CLIENT4, VIP4),
        neighbour_solicitation(CLIENT6, VIP6, true),
    ];
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..6000 {
        let mut pkt = seeds[i % seeds.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = 12 + (next() as usize) % (pkt.len() - 12);
            pkt[at] = next() as u8;
        }
        pkt.truncate(14.max(pkt.len() - (next() as usize % 8)));
        let out = h.run(&pkt).unwrap();
        assert_ne!(out.action, XDP_TX, "a node that owns nothing answered: {pkt:02x?}");
    }
    for slot in 0..ALL.len() as u32 {
        assert_eq!(h.counters(slot).unwrap().accepted, 0, "slot {slot}");
    }
}

#[test]
fn client_ip_port_affinity_spreads_a_clients_connections() {
    let Some(mut h) = owning("client_ip_port_affinity_spreads_a_clients_connections", &[]) else {
        return;
    };
    // Half the buckets each: a client's ports land on both nodes in client-ip-port mode,
    // on one node only in client-ip mode.
    h.fill(|_, b| if b % 2 == 0 { ME } else { PEER }).unwrap();
    let verdicts = |h: &mut Harness, port: u16| -> Vec<u32> {
        (0..64).map(|i| h.run(&udp_or_tcp(port, 30000 + i)).unwrap().action).collect()
    };
    let spread = verdicts(&mut h, 5353);
    assert!(spread.contains(&XDP_PASS) && spread.contains(&XDP_DROP));
    let sticky = verdicts(&mut h, 80);
    assert!(sticky.iter().all(|&a| a == sticky[0]));
}

fn udp_or_tcp(port: u16, sport: u16) -> Vec<u8> {
    let (c, v): (IpAddr, IpAddr) = (CLIENT4.into(), VIP4.into());
    if port == 80 { tcp(c, sport, v, port) } else { udp(c, sport, v, port) }
}

/// 198.18.0.100 and 198.19.0.101 fold to the same index entry: the program must compare
/// both VIPs' addresses, and find each.
#[test]
fn vips_that_fold_alike_are_both_found() {
    if !have_root("vips_that_fold_alike_are_both_found") {
        return;
    }
    let twin = Ipv4Addr::new(198, 19, 0, 101);
    let mut cfg = config();
    cfg.vips.push(farm_userspace::config::Vip {
        address: twin.into(),
        default: farm_userspace::config::DefaultAction::ClientIp,
    });
    let twin_slot = cfg.vips.len() as u32 - 1;
    let mut h = Harness::new(cfg).expect("load");
    h.fill(|_, _| ME).unwrap();
    let rules = h.rules.clone();
    assert_eq!(
        farm_common::vip_fold(&rules.vips[0].addr),
        farm_common::vip_fold(&rules.vips[twin_slot as usize].addr)
    );
    // Port 81 has no service: VIP4 drops it (its default), the twin hashes it.
    assert_eq!(
        moved(&mut h, SLOT_VIP4, &tcp(CLIENT4.into(), 1, VIP4.into(), 81)).2,
        ["no_service"]
    );
    assert_eq!(moved(&mut h, twin_slot, &tcp(CLIENT4.into(), 1, twin.into(), 81)).2, ["accepted"]);
    // An address of the same fold that is no VIP passes untouched.
    let stranger = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0x2001, 0x3431);
    assert_eq!(
        farm_common::vip_fold(&farm_userspace::rules::addr_key(stranger.into())),
        farm_common::vip_fold(&rules.vips[0].addr)
    );
    assert_eq!(
        moved(&mut h, GLOBAL_SLOT, &tcp(CLIENT6.into(), 1, stranger.into(), 80)).2,
        ["passed"]
    );
}
