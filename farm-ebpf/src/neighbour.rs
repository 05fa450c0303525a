//! Answers ARP requests and IPv6 neighbour solicitations for a VIP with the cluster MAC,
//! so clients send VIP traffic to a MAC every node receives. The kernel must never see
//! these requests: it would answer with the NIC's own MAC and pull all traffic to one node.
//! Every node whose lease is fresh answers, whether or not it owns the requester's
//! bucket: the answers are all the same, and a client whose request reaches the farm
//! while a failed node still owns its bucket is answered by the survivors at once,
//! instead of retrying a second later. A fenced node (lease expired) does not answer.
use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_tail, programs::XdpContext};
use farm_common::{
    Addr, NodeConfig,
    frame::{
        ARP_LEN, ARP_REQUEST_HEAD, ARPOP_REPLY, IPPROTO_ICMPV6, IPV6_LEN, NA_LEN, NA_OVERRIDE,
        NA_SOLICITED, ND_HOP_LIMIT, advertisement,
    },
    v4_addr,
};

use crate::{
    maps::count,
    ownership::lease_fresh,
    parse::{addr6_at, load, ptr_at, store_addr6, store_mac, write_mac},
    verdict::{malformed, pass_malformed, pass_not_vip},
    vip::{Vip, find_vip},
};

/// A request about `vip` left to the stack (which holds the VIP on lo and, with the
/// sysctls the agent sets, stays silent), counted passed in its slot.
#[inline(always)]
fn pass_to_stack(vip: &Vip) -> u32 {
    count(vip.slot as u32, |c| &mut c.passed);
    xdp_action::XDP_PASS
}

pub fn arp(ctx: &XdpContext, cfg: &NodeConfig, l3: usize) -> u32 {
    // One bounds check for the 28-byte ARP body; after the 8-byte head come the sender
    // MAC at 8, sender IP at 14, target MAC at 18 and target IP at 24.
    let Some(body) = ptr_at::<[u8; ARP_LEN]>(ctx, l3) else {
        return pass_malformed();
    };
    let a = body as *mut u8;
    let word = |off: usize| unsafe { u32::from_be(a.add(off).cast::<u32>().read_unaligned()) };
    if unsafe { u64::from_be(a.cast::<u64>().read_unaligned()) } != ARP_REQUEST_HEAD {
        return pass_not_vip();
    }
    let (spa, tpa) = (word(14), word(24));
    let Some(vip) = find_vip(&v4_addr(tpa)) else {
        return pass_not_vip();
    };
    // Sender and target the VIP: a gratuitous ARP, another node announcing the cluster
    // MAC to the clients. No question to answer (an answer would go to the cluster MAC).
    if spa == tpa {
        return pass_to_stack(&vip);
    }
    if !lease_fresh(vip.slot as u32) {
        return xdp_action::XDP_DROP;
    }
    let Some(eth) = ptr_at::<[u8; 12]>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    let eth = eth as *mut u8;
    // SAFETY: both regions were bounds-checked above.
    unsafe {
        let sha = a.add(8).cast::<[u8; 6]>().read_unaligned();
        write_mac(eth, &sha);
        write_mac(eth.add(6), &cfg.own_mac);
        a.add(6).cast::<u16>().write_unaligned(ARPOP_REPLY.to_be());
        write_mac(a.add(8), &cfg.cluster_mac);
        a.add(14).cast::<u32>().write_unaligned(tpa.to_be());
        write_mac(a.add(18), &sha);
        a.add(24).cast::<u32>().write_unaligned(spa.to_be());
    }
    count(vip.slot as u32, |c| &mut c.arp_replies);
    xdp_action::XDP_TX
}

/// A neighbour solicitation from `src` (ICMPv6 right after the IPv6 header at `l3`).
pub fn solicitation(ctx: &XdpContext, cfg: &NodeConfig, l3: usize, src: &Addr) -> u32 {
    let icmp = l3 + IPV6_LEN;
    let (Some(target), Some(requester_mac)) = (addr6_at(ctx, icmp + 8), load::<[u8; 6]>(ctx, 6))
    else {
        return pass_malformed();
    };
    let Some(vip) = find_vip(&target) else {
        return pass_not_vip();
    };
    // Duplicate address detection (source ::) is left to the stack, which holds the VIP
    // on lo and stays silent.
    if *src == [0; 4] {
        return pass_to_stack(&vip);
    }
    if !lease_fresh(vip.slot as u32) {
        return xdp_action::XDP_DROP;
    }
    // Make the ICMPv6 part exactly one advertisement long, whatever options came in.
    let delta = (icmp + NA_LEN) as i32 - (ctx.data_end() - ctx.data()) as i32;
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return malformed(vip.slot);
    }
    let body = advertisement(NA_SOLICITED | NA_OVERRIDE, &target, &cfg.cluster_mac, &target, src);

    // The tail moved: every pointer is derived again.
    let written = (|| {
        store_mac(ctx, 0, &requester_mac)?;
        store_mac(ctx, 6, &cfg.own_mac)?;
        // Version 6, no traffic class or flow label; payload length, next header and
        // hop limit 255 (RFC 4861: neighbour discovery is only believed with 255).
        let head = ptr_at::<[u32; 2]>(ctx, l3)?;
        let second = (NA_LEN as u32) << 16 | (IPPROTO_ICMPV6 as u32) << 8 | ND_HOP_LIMIT as u32;
        unsafe { head.write_unaligned([0x6000_0000u32.to_be(), second.to_be()]) };
        store_addr6(ctx, l3 + 8, &target)?;
        store_addr6(ctx, l3 + 24, src)?;
        let out = ptr_at::<[u32; NA_LEN / 4]>(ctx, icmp)?;
        unsafe { out.write_unaligned(body.map(u32::to_be)) };
        Some(())
    })();
    if written.is_none() {
        return xdp_action::XDP_DROP;
    }
    count(vip.slot as u32, |c| &mut c.nd_replies);
    xdp_action::XDP_TX
}
