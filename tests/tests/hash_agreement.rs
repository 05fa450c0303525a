//! The flow hash in userspace (farm-common, what `farm lookup` uses) and in the XDP
//! program pick the same bucket: for 10,000 random clients in each affinity mode, the
//! program accepts exactly the packets whose bucket, computed in Rust, this node owns.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use farm_common::{bucket_of, flow_hash};
use farm_tests::{fixtures::*, harness::Harness, packet::*};
use farm_userspace::rules::addr_key;

const CLIENTS: usize = 10_000;
const ME: u16 = 1;

/// A fixed pseudo-random table: about half the buckets of every slot are this node's.
fn owner(slot: usize, bucket: u32) -> u16 {
    let mix = (bucket as u64 ^ (slot as u64) << 20).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    if mix >> 63 == 1 { ME } else { 2 + (mix >> 60) as u16 % 2 }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64: a deterministic stream, so a failure is reproducible.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A client in 198.18.0.0/15 or 2001:db8::/32.
    fn client(&mut self, v6: bool) -> IpAddr {
        let r = self.next();
        if v6 {
            let low = (r as u128) | ((self.next() as u128 & 0xffff_ffff) << 64);
            Ipv6Addr::from((0x2001_0db8u128 << 96) | low).into()
        } else {
            Ipv4Addr::from(0xc612_0000 | (r as u32 & 0x1_ffff)).into()
        }
    }
}

fn agree(
    test: &str,
    service_port: u16,
    slot_v4: u32,
    slot_v6: u32,
    uses_port: bool,
    udp_service: bool,
) {
    let mut h = Harness::new(config()).expect("load");
    h.fill(owner).unwrap();
    let mut rng = Rng(u64::from(service_port) << 32 | 0xfa53);
    let (mut accepted, mut dropped) = (0, 0);
    for i in 0..CLIENTS {
        let v6 = i % 2 == 1;
        let client = rng.client(v6);
        let sport = 1024 + (rng.next() % 64000) as u16;
        let (vip, slot): (IpAddr, u32) =
            if v6 { (VIP6.into(), slot_v6) } else { (VIP4.into(), slot_v4) };
        let port = if uses_port { sport } else { 0 };
        let bucket = bucket_of(flow_hash(&addr_key(client), port, SEED), BUCKETS);
        let expect_accept = owner(slot as usize, bucket) == ME;
        let pkt = if udp_service {
            udp(client, sport, vip, service_port)
        } else {
            tcp(client, sport, vip, service_port)
        };
        let accepted_now = h.run(&pkt).unwrap().packet[..6] == NODE_MAC;
        assert_eq!(
            accepted_now, expect_accept,
            "client {client}:{sport} bucket {bucket} of slot {slot}"
        );
        if expect_accept { accepted += 1 } else { dropped += 1 }
    }
    eprintln!("{test}: {CLIENTS} clients agree ({accepted} accepted, {dropped} dropped)");
    assert!(accepted > CLIENTS / 4 && dropped > CLIENTS / 4, "the table split both ways");
}

#[test]
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn client_ip_mode_agrees_with_userspace() {
    agree("client_ip_mode_agrees_with_userspace", 80, SLOT_WEB4, SLOT_WEB6, false, false);
}

#[test]
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn client_ip_port_mode_agrees_with_userspace() {
    agree("client_ip_port_mode_agrees_with_userspace", 53, SLOT_DNS4, SLOT_DNS6, true, true);
}
