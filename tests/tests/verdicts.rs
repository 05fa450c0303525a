//! Verdict tests: built packets through BPF_PROG_TEST_RUN. Every case of the fixture
//! table (`farm_tests::cases`) is checked: its verdict, the frame that comes out and the
//! counter that moves. The other tests are what one case cannot say: a sequence (the
//! lease running out), every prefix of a frame, a table split bucket by bucket, another
//! configuration; random and corrupted frames are the fuzzer's (`tests/fuzz.rs`). They
//! need root: run them with
//! `cargo test --release -p farm-tests --test verdicts -- --include-ignored`.
use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use farm_common::{Counter, GLOBAL_SLOT};
use farm_tests::{
    cases::*,
    fixtures::*,
    harness::{Harness, XDP_DROP, XDP_PASS},
    packet::*,
};

/// The program loaded with the fixture configuration and `owners`' table.
fn harness(owners: Owners) -> Harness {
    let mut h = Harness::new(config()).expect("load the XDP program");
    owners.install(&mut h).unwrap();
    h
}

#[test]
fn case_names_are_unique() {
    let cases = cases();
    let mut seen = HashSet::new();
    for c in &cases {
        assert!(seen.insert(&c.name), "two cases are named {:?}", c.name);
    }
}

#[test]
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn every_case_gives_its_verdict_frame_and_counter() {
    let mut h = Harness::new(config()).expect("load the XDP program");
    let cases = cases();
    let failures: Vec<String> =
        cases.iter().filter_map(|c| c.check(&mut h).err()).map(|e| format!("{e:#}")).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn expired_lease_drops_everything_for_a_vip_until_renewed() {
    let mut h = Harness::new(config()).expect("load the XDP program");
    let web4 = tcp(CLIENT4.into(), 40000, VIP4.into(), 80);
    h.dataplane.renew_lease(Some(Instant::now())).unwrap();
    let fenced = [
        dropped(
            "a fenced node's bucket",
            Owners::Mine,
            (SLOT_WEB4, Counter::LeaseExpired),
            web4.clone(),
        ),
        dropped(
            "a fenced node answers no ARP",
            Owners::Mine,
            (SLOT_VIP4, Counter::LeaseExpired),
            arp_request(CLIENT4, VIP4),
        ),
        dropped(
            "a fenced node answers no neighbour solicitation",
            Owners::Mine,
            (SLOT_VIP6, Counter::LeaseExpired),
            neighbour_solicitation(CLIENT6, VIP6, true),
        ),
        // Traffic that is not for a VIP does not depend on the lease.
        passed(
            "not for a VIP, on a fenced node",
            Owners::Mine,
            (GLOBAL_SLOT, Counter::Passed),
            tcp(CLIENT4.into(), 40000, OTHER4.into(), 80),
        ),
    ];
    for case in fenced {
        case.check(&mut h).unwrap();
    }
    h.dataplane.renew_lease(Some(Instant::now() + Duration::from_secs(60))).unwrap();
    accepted("renewed", Owners::Mine, SLOT_WEB4, web4).check(&mut h).unwrap();
}

/// Every prefix of a valid frame: never an accept unless the frame holds all the
/// program reads (through the ports), never a verifier or run error.
#[test]
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn frames_cut_short_at_every_header() {
    let mut h = harness(Owners::Mine);
    let v6_ext = Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[(0x8100, 5)], ETH_P_IPV6)
        .ipv6(CLIENT6, VIP6, &[hop_by_hop()], TCP, 20)
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

#[test]
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn client_ip_port_affinity_spreads_a_clients_connections() {
    let mut h = harness(Owners::Peer);
    // Half the buckets each: a client's ports land on both nodes in client-ip-port mode,
    // on one node only in client-ip mode.
    let me = h.node_id();
    h.fill(|_, b| if b % 2 == 0 { me } else { PEER }).unwrap();
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
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn vips_that_fold_alike_are_both_found() {
    let twin = Ipv4Addr::new(198, 19, 0, 101);
    let mut cfg = config();
    cfg.vips.push(farm_userspace::config::Vip {
        address: twin.into(),
        default: farm_userspace::config::DefaultAction::ClientIp,
    });
    let twin_slot = cfg.vips.len() as u32 - 1;
    let mut h = Harness::new(cfg).expect("load");
    let rules = h.rules.clone();
    assert_eq!(
        farm_common::vip_fold(&rules.vips[0].addr),
        farm_common::vip_fold(&rules.vips[twin_slot as usize].addr)
    );
    // An address of the same fold that is no VIP.
    let stranger = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0x2001, 0x3431);
    assert_eq!(
        farm_common::vip_fold(&farm_userspace::rules::addr_key(stranger.into())),
        farm_common::vip_fold(&rules.vips[0].addr)
    );
    // Port 81 has no service: VIP4 drops it (its default), the twin hashes it; the
    // stranger passes untouched.
    let mine = Owners::Mine;
    for case in [
        dropped(
            "VIP4, port 81",
            mine,
            (SLOT_VIP4, Counter::NoService),
            tcp(CLIENT4.into(), 1, VIP4.into(), 81),
        ),
        accepted("its twin, port 81", mine, twin_slot, tcp(CLIENT4.into(), 1, twin.into(), 81)),
        passed(
            "an address of their fold that is no VIP",
            mine,
            (GLOBAL_SLOT, Counter::Passed),
            tcp(CLIENT6.into(), 1, stranger.into(), 80),
        ),
    ] {
        case.check(&mut h).unwrap();
    }
}
