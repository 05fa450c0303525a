//! The farm XDP program. Every node of a farm runs it on the NIC that receives the VIP's
//! traffic; for each packet it decides whether this node is the one that answers.
//! Split by concern, each module using only those named before it: `parse` reads
//! headers, `maps` declares the shared maps, `vip` finds a packet's VIP, `handover`
//! says which node of a bucket in handover keeps a packet, `ownership` says whether this
//! node may take a bucket's packets, `verdict` gives the verdicts that need
//! no owner table, `neighbour` answers ARP and IPv6 neighbour solicitations for the
//! VIPs, `steer` hashes a flow to its bucket and gives the verdict.
#![no_std]
#![no_main]

mod handover;
mod maps;
mod neighbour;
mod ownership;
mod parse;
mod steer;
mod verdict;
mod vip;

use crate::parse::Frame;
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use farm_common::frame::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6};

// `#[xdp]` wraps this function in the program's entry point and calls it; inlined, that
// call is not a BPF-to-BPF call whose register saves every packet would pay for.
#[xdp]
#[inline(always)]
pub fn farm_xdp(ctx: XdpContext) -> u32 {
    let ctx = &ctx;
    // No configuration yet (loaded but never set up): stay out of the way.
    let Some(cfg) = maps::FARM_CONFIG.get(0) else {
        return xdp_action::XDP_PASS;
    };
    if let Some(verdict) = steer::plain_ipv4(ctx, cfg) {
        return verdict;
    }
    match Frame::parse(ctx) {
        Some(frame) => match frame.ether_type {
            ETH_P_ARP => neighbour::arp(ctx, cfg, frame.l3),
            ETH_P_IP => steer::ipv4(ctx, cfg, frame.l3),
            ETH_P_IPV6 => steer::ipv6(ctx, cfg, frame.l3),
            _ => verdict::pass_not_vip(),
        },
        // Too short for Ethernet and its tags.
        None => verdict::pass_malformed(),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
