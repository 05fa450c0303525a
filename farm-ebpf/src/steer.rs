//! Classify a packet for a VIP, hash its client to a bucket, and give the verdict:
//! accept when this node owns the bucket and its lease is fresh, drop otherwise.
use aya_ebpf::{bindings::xdp_action, helpers::bpf_ktime_get_ns, programs::XdpContext};
use farm_common::{
    CONTROL_ACTIVE_HALF, CONTROL_LEASE, GLOBAL_SLOT, MODE_CLIENT_IP_PORT, MODE_DROP, NO_OWNER,
    NodeConfig, ServiceKey, Target, VipKey, bucket_of, client_key_v4, flow_hash, owner_position,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, ip::Ipv6Hdr};

use crate::{
    maps::{FARM_OWNERS, FARM_SERVICES, FARM_VIPS, control, count},
    neighbour,
    parse::{
        IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, be16, ipv6_payload, ptr_at, read,
    },
};

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAM_PROBLEM: u8 = 12;
const ICMPV6_DEST_UNREACH: u8 = 1;
const ICMPV6_PARAM_PROBLEM: u8 = 4;
const ICMPV6_NEIGHBOUR_SOLICIT: u8 = 135;
/// Fragment offset and More-Fragments bits of the IPv4 `frags` field.
const IPV4_FRAG_MASK: u16 = 0x3fff;

/// What a packet for a VIP says about its flow, as far as steering cares.
enum Flow {
    /// TCP or UDP with both ports known: look up the service.
    Ports { proto: u8, client_port: u16, service_port: u16 },
    /// Fragments and ICMP echo: the VIP's own table, hashed on the client address.
    ClientOnly,
    /// Any other protocol: the VIP's default rule.
    Other,
}

/// The owner-table row and the hash that pick the bucket.
struct Choice {
    slot: u32,
    hash: u32,
}

pub fn ipv4(ctx: &XdpContext, cfg: &NodeConfig, l3: usize) -> u32 {
    let Some(ip) = read::<Ipv4Hdr>(ctx, l3) else {
        count(GLOBAL_SLOT, |c| &mut c.malformed);
        return xdp_action::XDP_PASS;
    };
    let vip_key = VipKey { addr: client_key_v4(ip.dst_addr) };
    let Some(vip) = (unsafe { FARM_VIPS.get(vip_key) }).copied() else {
        count(GLOBAL_SLOT, |c| &mut c.passed);
        return xdp_action::XDP_PASS;
    };
    let ihl = (ip.vihl & 0x0f) as usize * 4;
    if ip.vihl >> 4 != 4 || ihl < Ipv4Hdr::LEN {
        return malformed(vip.slot);
    }
    let client = client_key_v4(ip.src_addr);
    let l4 = l3 + ihl;
    let flow = if be16(ip.frags) & IPV4_FRAG_MASK != 0 {
        Flow::ClientOnly
    } else {
        match ip.proto {
            IPPROTO_TCP | IPPROTO_UDP => match read::<[u8; 4]>(ctx, l4) {
                Some(p) => Flow::Ports {
                    proto: ip.proto,
                    client_port: be16([p[0], p[1]]),
                    service_port: be16([p[2], p[3]]),
                },
                None => return malformed(vip.slot),
            },
            IPPROTO_ICMP => {
                let Some(icmp) = read::<[u8; 8]>(ctx, l4) else {
                    return malformed(vip.slot);
                };
                match icmp[0] {
                    ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAM_PROBLEM => {
                        return icmp4_error(ctx, cfg, &vip_key, &vip, l4 + 8);
                    }
                    // Echo and the rest of ICMP: the client's address decides.
                    ICMP_ECHO_REQUEST | _ => Flow::ClientOnly,
                }
            }
            _ => Flow::Other,
        }
    };
    verdict(ctx, cfg, &vip_key, &vip, &client, flow)
}

/// An ICMPv4 error about a flow of ours quotes the header we sent: VIP to client. The
/// node owning that flow must get it (path MTU discovery depends on it), so hash the
/// quoted destination as the client, and its destination port as the client's port.
fn icmp4_error(ctx: &XdpContext, cfg: &NodeConfig, vip_key: &VipKey, vip: &Target, inner: usize) -> u32 {
    let Some(ip) = read::<Ipv4Hdr>(ctx, inner) else {
        return malformed(vip.slot);
    };
    let ihl = (ip.vihl & 0x0f) as usize * 4;
    if ihl < Ipv4Hdr::LEN {
        return malformed(vip.slot);
    }
    let client = client_key_v4(ip.dst_addr);
    let flow = quoted_flow(ctx, ip.proto, inner + ihl, be16(ip.frags) & IPV4_FRAG_MASK != 0);
    verdict(ctx, cfg, vip_key, vip, &client, flow)
}

/// The flow an ICMP error quotes: its ports are swapped (we were the sender). A quote
/// too short for the ports, or of a fragment, falls back to the client address.
#[inline(always)]
fn quoted_flow(ctx: &XdpContext, proto: u8, l4: usize, fragment: bool) -> Flow {
    if fragment || (proto != IPPROTO_TCP && proto != IPPROTO_UDP) {
        return Flow::ClientOnly;
    }
    match read::<[u8; 4]>(ctx, l4) {
        Some(p) => Flow::Ports {
            proto,
            service_port: be16([p[0], p[1]]),
            client_port: be16([p[2], p[3]]),
        },
        None => Flow::ClientOnly,
    }
}

pub fn ipv6(ctx: &XdpContext, cfg: &NodeConfig, l3: usize) -> u32 {
    let Some(ip) = read::<Ipv6Hdr>(ctx, l3) else {
        count(GLOBAL_SLOT, |c| &mut c.malformed);
        return xdp_action::XDP_PASS;
    };
    let vip_key = VipKey { addr: ip.dst_addr };
    let vip = (unsafe { FARM_VIPS.get(vip_key) }).copied();
    // Neighbour solicitations go to a solicited-node multicast address, not the VIP:
    // only their target says whether they are about a VIP.
    if vip.is_none() && ip.next_hdr != IPPROTO_ICMPV6 {
        count(GLOBAL_SLOT, |c| &mut c.passed);
        return xdp_action::XDP_PASS;
    }
    let Some(payload) = ipv6_payload(ctx, l3, ip.next_hdr) else {
        return match vip {
            Some(vip) => malformed(vip.slot),
            None => {
                count(GLOBAL_SLOT, |c| &mut c.malformed);
                xdp_action::XDP_PASS
            }
        };
    };
    if payload.proto == IPPROTO_ICMPV6 && !payload.fragment {
        if let Some(icmp) = read::<[u8; 8]>(ctx, payload.off) {
            if icmp[0] == ICMPV6_NEIGHBOUR_SOLICIT {
                return neighbour::solicitation(ctx, cfg, l3, payload.off);
            }
        }
    }
    let Some(vip) = vip else {
        count(GLOBAL_SLOT, |c| &mut c.passed);
        return xdp_action::XDP_PASS;
    };
    let flow = if payload.fragment {
        Flow::ClientOnly
    } else {
        match payload.proto {
            IPPROTO_TCP | IPPROTO_UDP => match read::<[u8; 4]>(ctx, payload.off) {
                Some(p) => Flow::Ports {
                    proto: payload.proto,
                    client_port: be16([p[0], p[1]]),
                    service_port: be16([p[2], p[3]]),
                },
                None => return malformed(vip.slot),
            },
            IPPROTO_ICMPV6 => {
                let Some(icmp) = read::<[u8; 8]>(ctx, payload.off) else {
                    return malformed(vip.slot);
                };
                if (ICMPV6_DEST_UNREACH..=ICMPV6_PARAM_PROBLEM).contains(&icmp[0]) {
                    return icmp6_error(ctx, cfg, &vip_key, &vip, payload.off + 8);
                }
                Flow::ClientOnly
            }
            _ => Flow::Other,
        }
    };
    verdict(ctx, cfg, &vip_key, &vip, &ip.src_addr, flow)
}

/// The IPv6 twin of `icmp4_error`; the quoted packet's extension headers are walked too.
fn icmp6_error(ctx: &XdpContext, cfg: &NodeConfig, vip_key: &VipKey, vip: &Target, inner: usize) -> u32 {
    let Some(ip) = read::<Ipv6Hdr>(ctx, inner) else {
        return malformed(vip.slot);
    };
    let flow = match ipv6_payload(ctx, inner, ip.next_hdr) {
        Some(p) => quoted_flow(ctx, p.proto, p.off, p.fragment),
        None => Flow::ClientOnly,
    };
    verdict(ctx, cfg, vip_key, vip, &ip.dst_addr, flow)
}

/// Picks the table row and hash for a flow, then accepts or drops.
#[inline(always)]
fn verdict(ctx: &XdpContext, cfg: &NodeConfig, vip_key: &VipKey, vip: &Target, client: &[u8; 16], flow: Flow) -> u32 {
    let by_client = Choice { slot: vip.slot as u32, hash: flow_hash(client, 0, cfg.seed) };
    let choice = match flow {
        Flow::Ports { proto, client_port, service_port } => {
            let key = ServiceKey { vip: vip_key.addr, port: service_port, protocol: proto, _pad: 0 };
            match unsafe { FARM_SERVICES.get(key) } {
                Some(svc) => {
                    let port = if svc.mode == MODE_CLIENT_IP_PORT { client_port } else { 0 };
                    Choice { slot: svc.slot as u32, hash: flow_hash(client, port, cfg.seed) }
                }
                None => match vip.mode {
                    MODE_DROP => return no_service(vip.slot),
                    _ => by_client,
                },
            }
        }
        Flow::ClientOnly => by_client,
        Flow::Other => match vip.mode {
            MODE_DROP => return no_service(vip.slot),
            _ => by_client,
        },
    };
    if !owns(cfg, choice.slot, choice.hash) {
        count(choice.slot, |c| &mut c.not_owner);
        return xdp_action::XDP_DROP;
    }
    if !lease_fresh() {
        count(choice.slot, |c| &mut c.lease_expired);
        return xdp_action::XDP_DROP;
    }
    // Frames for the cluster MAC reach the stack as PACKET_MULTICAST (or OTHERHOST in
    // unicast-flooding mode), which TCP ignores: readdress to this NIC.
    if let Some(eth) = ptr_at::<EthHdr>(ctx, 0) {
        unsafe { (*eth).dst_addr = cfg.own_mac };
    }
    count(choice.slot, |c| &mut c.accepted);
    xdp_action::XDP_PASS
}

/// Whether this node owns the bucket `hash` falls in, in the active half of the table.
#[inline(always)]
pub fn owns(cfg: &NodeConfig, slot: u32, hash: u32) -> bool {
    let half = control(CONTROL_ACTIVE_HALF) as u32 & 1;
    let bucket = bucket_of(hash, cfg.bucket_count);
    let (index, lane) = owner_position(half, slot, bucket, cfg.bucket_count);
    match FARM_OWNERS.get(index) {
        Some(chunk) => {
            let owner = chunk[lane & 3];
            owner != NO_OWNER && owner == cfg.node_id
        }
        None => false,
    }
}

/// The lease userspace renews: past its deadline this node's agent is dead or hung, and
/// the node must stop answering before its peers hand its buckets to others.
#[inline(always)]
pub fn lease_fresh() -> bool {
    let now = unsafe { bpf_ktime_get_ns() };
    now < control(CONTROL_LEASE)
}

#[inline(always)]
fn malformed(slot: u16) -> u32 {
    count(slot as u32, |c| &mut c.malformed);
    xdp_action::XDP_DROP
}

#[inline(always)]
fn no_service(slot: u16) -> u32 {
    count(slot as u32, |c| &mut c.no_service);
    xdp_action::XDP_DROP
}
