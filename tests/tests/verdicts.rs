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

use farm_common::{Counter, GLOBAL_SLOT, HANDOVER_LEARNING, HANDOVER_TAKING};
use farm_tests::{
    cases::*,
    fixtures::*,
    harness::{Harness, XDP_DROP, XDP_PASS},
    held::hold,
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
    let _held = hold().expect("the handover cases' connections");
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

/// A UDP flow seen before the move is installed is learned by both nodes of the
/// handover: after the install the old owner keeps it and the new owner leaves it, until
/// it has been idle for the flow idle time; a flow first seen after the install is the
/// new owner's. The two nodes are two harnesses, each fed the same datagrams.
#[test]
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn a_udp_flow_learned_before_the_move_stays_with_the_old_owner_until_idle() {
    let learned = udp(CLIENT4.into(), 40000, VIP4.into(), 53);
    let fresh = udp(CLIENT4.into(), 40009, VIP4.into(), 53);
    let (old, new) = (
        Owners::Moving { given: true, phase: HANDOVER_LEARNING },
        Owners::Moving { given: false, phase: HANDOVER_LEARNING },
    );
    let mut nodes: Vec<Harness> = [old, new]
        .into_iter()
        .map(|owners| {
            let mut h = harness(owners);
            // Long enough for the installs below (every bucket of the table moves).
            h.dataplane.set_flow_idle(Duration::from_secs(3)).unwrap();
            h
        })
        .collect();
    let taking = |given| Owners::Moving { given, phase: HANDOVER_TAKING };
    // Learning: both learn; the old owner still answers.
    kept("old owner, released", old, (SLOT_DNS4, Counter::LearnedFlow), learned.clone())
        .check(&mut nodes[0])
        .unwrap();
    dropped("new owner, released", new, (SLOT_DNS4, Counter::PeerFlow), learned.clone())
        .check(&mut nodes[1])
        .unwrap();
    // Installed: the learned flow stays, a fresh one moves.
    for (h, given) in nodes.iter_mut().zip([true, false]) {
        taking(given).install(h).unwrap();
    }
    let learned_kept = [
        kept(
            "old owner keeps the learned flow",
            taking(true),
            (SLOT_DNS4, Counter::LearnedFlow),
            learned.clone(),
        ),
        dropped(
            "new owner leaves the learned flow",
            taking(false),
            (SLOT_DNS4, Counter::PeerFlow),
            learned.clone(),
        ),
    ];
    let fresh_moves = [
        dropped(
            "old owner leaves a fresh flow",
            taking(true),
            (SLOT_DNS4, Counter::PeerFlow),
            fresh.clone(),
        ),
        kept("new owner takes a fresh flow", taking(false), (SLOT_DNS4, Counter::NewFlow), fresh),
    ];
    for cases in [&learned_kept, &fresh_moves] {
        for (case, h) in cases.iter().zip(&mut nodes) {
            // Installed already: run the packet against the table as it stands.
            let out = h.run(&case.packet).unwrap();
            assert_eq!(out.action, case.verdict, "{}", case.name);
        }
    }
    // Idle past the flow idle time (polled without a datagram, which would keep it
    // alive), the learned flow has ended and its next datagram is a new flow, the new
    // owner's.
    let idle = farm_tests::netns::wait_for(Duration::from_secs(10), || {
        nodes.iter().all(|h| h.dataplane.live_flows().unwrap().is_empty()).then_some(())
    });
    assert!(idle.is_some(), "the learned flow never idled out");
    let got: Vec<u32> = nodes.iter_mut().map(|h| h.run(&learned).unwrap().action).collect();
    assert_eq!(got, [XDP_DROP, XDP_PASS], "after idling, the flow is the new owner's");
}
