//! Answers ARP requests and IPv6 neighbour solicitations for a VIP with the cluster MAC,
//! so clients send VIP traffic to a MAC every node receives. The kernel must never see
//! these requests: it would answer with the NIC's own MAC and pull all traffic to one node.
//! Only the node owning the requester's bucket in the VIP's table replies, so a client
//! gets one answer, not one per node; a fenced node (lease expired) does not reply.
use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_tail, programs::XdpContext};
use farm_common::{GLOBAL_SLOT, NodeConfig, Target, VipKey, client_key_v4, flow_hash};
use network_types::{arp::ArpHdr, eth::EthHdr, ip::Ipv6Hdr};

use crate::{
    maps::{FARM_VIPS, count},
    parse::{IPPROTO_ICMPV6, ptr_at, read},
    steer::{lease_fresh, owns},
};

const ARPHRD_ETHER: u16 = 1;
const ARPOP_REQUEST: u16 = 1;
const ARPOP_REPLY: u16 = 2;
const ICMPV6_NEIGHBOUR_ADVERT: u8 = 136;
/// Neighbour advertisement flags: Solicited and Override.
const NA_SOLICITED_OVERRIDE: u8 = 0x60;
/// Option "target link-layer address", 1 unit of 8 bytes.
const ND_OPT_TARGET_LL: [u8; 2] = [2, 1];
/// An advertisement with its one option: header 8, target 16, option 8.
const NA_LEN: usize = 32;

/// Whether this node is the one to answer `requester` about `vip`, counting why not.
#[inline(always)]
fn answers(cfg: &NodeConfig, vip: &Target, requester: &[u8; 16]) -> bool {
    let slot = vip.slot as u32;
    if !owns(cfg, slot, flow_hash(requester, 0, cfg.seed)) {
        count(slot, |c| &mut c.not_owner);
        return false;
    }
    if !lease_fresh() {
        count(slot, |c| &mut c.lease_expired);
        return false;
    }
    true
}

pub fn arp(ctx: &XdpContext, cfg: &NodeConfig, l3: usize) -> u32 {
    let Some(arp) = ptr_at::<ArpHdr>(ctx, l3) else {
        count(GLOBAL_SLOT, |c| &mut c.malformed);
        return xdp_action::XDP_PASS;
    };
    let req = unsafe { arp.read_unaligned() };
    if req.htype() != ARPHRD_ETHER || req.ptype() != 0x0800 || req.hlen != 6 || req.plen != 4
        || req.oper() != ARPOP_REQUEST
    {
        count(GLOBAL_SLOT, |c| &mut c.passed);
        return xdp_action::XDP_PASS;
    }
    let Some(vip) = (unsafe { FARM_VIPS.get(VipKey { addr: client_key_v4(req.tpa) }) }).copied()
    else {
        count(GLOBAL_SLOT, |c| &mut c.passed);
        return xdp_action::XDP_PASS;
    };
    if !answers(cfg, &vip, &client_key_v4(req.spa)) {
        return xdp_action::XDP_DROP;
    }
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    unsafe {
        (*eth).dst_addr = req.sha;
        (*eth).src_addr = cfg.own_mac;
        (*arp).set_oper(ARPOP_REPLY);
        (*arp).sha = cfg.cluster_mac;
        (*arp).spa = req.tpa;
        (*arp).tha = req.sha;
        (*arp).tpa = req.spa;
    }
    count(vip.slot as u32, |c| &mut c.arp_replies);
    xdp_action::XDP_TX
}

/// A neighbour solicitation at `icmp` (right after the IPv6 header at `l3`).
pub fn solicitation(ctx: &XdpContext, cfg: &NodeConfig, l3: usize, icmp: usize) -> u32 {
    let (Some(ip), Some(target)) = (read::<Ipv6Hdr>(ctx, l3), read::<[u8; 16]>(ctx, icmp + 8))
    else {
        count(GLOBAL_SLOT, |c| &mut c.malformed);
        return xdp_action::XDP_PASS;
    };
    let Some(vip) = (unsafe { FARM_VIPS.get(VipKey { addr: target }) }).copied() else {
        count(GLOBAL_SLOT, |c| &mut c.passed);
        return xdp_action::XDP_PASS;
    };
    // Duplicate address detection (source ::) and solicitations behind extension
    // headers are left to the stack, which holds the VIP on lo and stays silent.
    if ip.src_addr == [0; 16] || icmp != l3 + Ipv6Hdr::LEN {
        count(vip.slot as u32, |c| &mut c.passed);
        return xdp_action::XDP_PASS;
    }
    if !answers(cfg, &vip, &ip.src_addr) {
        return xdp_action::XDP_DROP;
    }
    let Some(eth) = read::<EthHdr>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    // Make the ICMPv6 part exactly one advertisement long, whatever options came in.
    let delta = (icmp + NA_LEN) as i32 - (ctx.data_end() - ctx.data()) as i32;
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        count(vip.slot as u32, |c| &mut c.malformed);
        return xdp_action::XDP_DROP;
    }
    let mut body = [0u8; NA_LEN];
    body[0] = ICMPV6_NEIGHBOUR_ADVERT;
    body[4] = NA_SOLICITED_OVERRIDE;
    body[8..24].copy_from_slice(&target);
    body[24..26].copy_from_slice(&ND_OPT_TARGET_LL);
    body[26..32].copy_from_slice(&cfg.cluster_mac);
    let sum = icmpv6_checksum(&target, &ip.src_addr, &body);
    body[2..4].copy_from_slice(&sum.to_be_bytes());

    // The tail moved: every pointer is derived again.
    let (Some(eth_out), Some(ip_out), Some(na_out)) = (
        ptr_at::<EthHdr>(ctx, 0),
        ptr_at::<Ipv6Hdr>(ctx, l3),
        ptr_at::<[u8; NA_LEN]>(ctx, icmp),
    ) else {
        return xdp_action::XDP_DROP;
    };
    unsafe {
        (*eth_out).dst_addr = eth.src_addr;
        (*eth_out).src_addr = cfg.own_mac;
        (*ip_out).vcf = [0x60, 0, 0, 0];
        (*ip_out).payload_len = (NA_LEN as u16).to_be_bytes();
        (*ip_out).next_hdr = IPPROTO_ICMPV6;
        // RFC 4861: neighbour discovery is only believed with hop limit 255.
        (*ip_out).hop_limit = 255;
        (*ip_out).src_addr = target;
        (*ip_out).dst_addr = ip.src_addr;
        *na_out = body;
    }
    count(vip.slot as u32, |c| &mut c.nd_replies);
    xdp_action::XDP_TX
}

/// The ICMPv6 checksum: ones' complement sum over the pseudo-header (source, destination,
/// length, next header) and the message, all known here without reading the packet.
#[inline(always)]
fn icmpv6_checksum(src: &[u8; 16], dst: &[u8; 16], body: &[u8; NA_LEN]) -> u16 {
    let mut sum: u32 = NA_LEN as u32 + IPPROTO_ICMPV6 as u32;
    for i in 0..8 {
        sum += u16::from_be_bytes([src[2 * i], src[2 * i + 1]]) as u32;
        sum += u16::from_be_bytes([dst[2 * i], dst[2 * i + 1]]) as u32;
    }
    for i in 0..NA_LEN / 2 {
        sum += u16::from_be_bytes([body[2 * i], body[2 * i + 1]]) as u32;
    }
    // At most 2^22 here: two folds always bring it under 2^16 (a loop would need the
    // verifier to prove it ends).
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
