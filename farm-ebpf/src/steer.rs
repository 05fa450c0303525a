//! Classify a packet for a VIP, hash its client to a bucket, and give the verdict:
//! accept when this node owns the bucket and its lease is fresh, drop otherwise.
//!
//! Every lookup is an array read the JIT inlines: traffic for no VIP is passed after one
//! (the VIP index), TCP or UDP to a configured service is decided after four more (the
//! VIP's entry, the port's rule, the owner table, the control word).
use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use farm_common::{
    Addr, MODE_CLIENT_IP_PORT, MODE_DROP, NodeConfig, flow_hash,
    frame::{
        ICMP_DEST_UNREACH, ICMP_PARAM_PROBLEM, ICMP_TIME_EXCEEDED, ICMPV6_DEST_UNREACH,
        ICMPV6_NEIGHBOUR_SOLICIT, ICMPV6_PARAM_PROBLEM, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
        IPPROTO_UDP, IPV4_FRAG_MASK, IPV4_OFFSET_MASK,
    },
    port_position, port_rule_parts, v4_addr,
};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

use crate::{
    handover::{self, Kind},
    maps::{FARM_SERVICES, count},
    neighbour,
    ownership::{Take, may_take},
    parse::{Piece, be32_at, byte_at, ipv6_payload, ptr_at, store_mac},
    verdict::{malformed, pass_malformed, pass_not_vip},
    vip::{Vip, find_vip},
};

/// The IPv4 header fields steering reads.
struct V4 {
    vihl: u8,
    frags: u16,
    proto: u8,
    src: u32,
    dst: u32,
}

impl V4 {
    #[inline(always)]
    fn at(ctx: &XdpContext, l3: usize) -> Option<V4> {
        // One bounds check for the fixed header, then each field by its offset.
        let p = ptr_at::<Ipv4Hdr>(ctx, l3)? as *const u8;
        unsafe {
            Some(V4 {
                vihl: p.read(),
                frags: u16::from_be(p.add(6).cast::<u16>().read_unaligned()),
                proto: p.add(9).read(),
                src: u32::from_be(p.add(12).cast::<u32>().read_unaligned()),
                dst: u32::from_be(p.add(16).cast::<u32>().read_unaligned()),
            })
        }
    }

    /// Header length, if the version and IHL are possible.
    fn header_len(&self) -> Option<usize> {
        let ihl = (self.vihl & 0x0f) as usize * 4;
        (self.vihl >> 4 == 4 && ihl >= Ipv4Hdr::LEN).then_some(ihl)
    }

    fn piece(&self) -> Piece {
        match self.frags & IPV4_FRAG_MASK {
            0 => Piece::Whole,
            f if f & IPV4_OFFSET_MASK == 0 => Piece::First,
            _ => Piece::Later,
        }
    }
}

/// The IPv6 header fields steering reads.
struct V6 {
    next: u8,
    src: Addr,
    dst: Addr,
}

impl V6 {
    #[inline(always)]
    fn at(ctx: &XdpContext, l3: usize) -> Option<V6> {
        let p = ptr_at::<Ipv6Hdr>(ctx, l3)? as *const u8;
        let addr = |off: usize| -> Addr {
            let w = unsafe { p.add(off).cast::<[u32; 4]>().read_unaligned() };
            w.map(u32::from_be)
        };
        Some(V6 { next: unsafe { p.add(6).read() }, src: addr(8), dst: addr(24) })
    }
}

/// The common case in one bounds check: an untagged IPv4 frame with a 20-byte header,
/// read at fixed offsets. It decides traffic for no VIP and TCP or UDP to a service
/// (what `ipv4` would decide, through the same functions); anything else is `None`,
/// for the general path.
#[inline(always)]
pub fn plain_ipv4(ctx: &XdpContext, cfg: &NodeConfig) -> Option<u32> {
    // Ethernet 14, IPv4 20, the ports 4.
    let p = ptr_at::<[u8; 38]>(ctx, 0)? as *const u8;
    let word = |off: usize| unsafe { u32::from_be(p.add(off).cast::<u32>().read_unaligned()) };
    // EtherType 0x0800 and version 4, IHL 5: bytes 12 to 15 are 08 00 45 xx.
    if word(12) >> 8 != 0x08_0045 {
        return None;
    }
    let Some(vip) = find_vip(&v4_addr(word(30))) else {
        return Some(pass_not_vip());
    };
    // Bytes 20 to 23: fragment field, TTL, protocol.
    let (frags, proto) = ((word(20) >> 16) as u16, word(20) as u8);
    if frags & IPV4_FRAG_MASK != 0 {
        return None;
    }
    let ports = word(34);
    let svc = service(&vip, proto, ports as u16)?;
    let kind = svc.flow(At { l3: 14, l4: 34, v6: false }, ports);
    Some(decide_service(ctx, cfg, svc, &v4_addr(word(26)), (ports >> 16) as u16, kind))
}

pub fn ipv4(ctx: &XdpContext, cfg: &NodeConfig, l3: usize) -> u32 {
    let Some(ip) = V4::at(ctx, l3) else {
        return pass_malformed();
    };
    let Some(vip) = find_vip(&v4_addr(ip.dst)) else {
        return pass_not_vip();
    };
    let client = v4_addr(ip.src);
    let ihl = ip.header_len();
    let piece = ip.piece();
    if let Some(ihl) = ihl
        && piece == Piece::Whole
        && let Some(verdict) =
            known_service(ctx, cfg, &vip, &client, ip.proto, At { l3, l4: l3 + ihl, v6: false })
    {
        return verdict;
    }
    let Some(ihl) = ihl else {
        return malformed(vip.slot);
    };
    let l4 = l3 + ihl;
    if piece != Piece::Whole {
        return fragment(ctx, cfg, &vip, &client, piece, ip.proto, l4);
    }
    let is_error = |t: u8| matches!(t, ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAM_PROBLEM);
    let on_error = |inner: usize| icmp4_error(ctx, cfg, &vip, inner);
    let at = At { l3, l4, v6: false };
    after_header(ctx, cfg, &vip, &client, ip.proto, at, IPPROTO_ICMP, is_error, on_error)
}

/// An ICMPv4 error about a flow of ours quotes the header we sent: VIP to client. The
/// node owning that flow must get it (path MTU discovery depends on it), so the quoted
/// destination is the client, and the quoted destination port the client's port.
#[inline(always)]
fn icmp4_error(ctx: &XdpContext, cfg: &NodeConfig, vip: &Vip, inner: usize) -> u32 {
    let Some(ip) = V4::at(ctx, inner) else {
        return malformed(vip.slot);
    };
    let Some(ihl) = ip.header_len() else {
        return malformed(vip.slot);
    };
    quoted(ctx, cfg, vip, &v4_addr(ip.dst), ip.proto, inner + ihl, ip.piece())
}

/// Steers an ICMP error by the flow it quotes. A quote too short for the ports, of a
/// fragment, or of another protocol falls back to the client address.
#[inline(always)]
fn quoted(
    ctx: &XdpContext,
    cfg: &NodeConfig,
    vip: &Vip,
    client: &Addr,
    proto: u8,
    l4: usize,
    piece: Piece,
) -> u32 {
    let ports = match (piece, proto) {
        (Piece::Whole, IPPROTO_TCP | IPPROTO_UDP) => be32_at(ctx, l4),
        _ => None,
    };
    let Some(ports) = ports else {
        return decide(ctx, cfg, vip.slot, client, 0, Kind::Error);
    };
    // We sent it: its source port is the service's, its destination port the client's.
    match service(vip, proto, (ports >> 16) as u16) {
        Some(svc) => decide_service(ctx, cfg, svc, client, ports as u16, Kind::Error),
        None => default_rule(ctx, cfg, vip, client, Kind::Error),
    }
}

pub fn ipv6(ctx: &XdpContext, cfg: &NodeConfig, l3: usize) -> u32 {
    let Some(V6 { next, src, dst }) = V6::at(ctx, l3) else {
        return pass_malformed();
    };
    let l4 = l3 + Ipv6Hdr::LEN;
    // Neighbour solicitations go to a solicited-node multicast address, not the VIP:
    // only their target says whether they are about a VIP.
    if next == IPPROTO_ICMPV6 && byte_at(ctx, l4) == Some(ICMPV6_NEIGHBOUR_SOLICIT) {
        return neighbour::solicitation(ctx, cfg, l3, &src);
    }
    let Some(vip) = find_vip(&dst) else {
        return pass_not_vip();
    };
    if let Some(verdict) = known_service(ctx, cfg, &vip, &src, next, At { l3, l4, v6: true }) {
        return verdict;
    }
    let Some(payload) = ipv6_payload(ctx, l3, next) else {
        return malformed(vip.slot);
    };
    if payload.piece != Piece::Whole {
        return fragment(ctx, cfg, &vip, &src, payload.piece, payload.proto, payload.off);
    }
    // Behind extension headers `known_service` has not looked yet.
    if payload.off != l4
        && let Some(verdict) =
            known_service(ctx, cfg, &vip, &src, payload.proto, At { l3, l4: payload.off, v6: true })
    {
        return verdict;
    }
    let is_error = |t: u8| (ICMPV6_DEST_UNREACH..=ICMPV6_PARAM_PROBLEM).contains(&t);
    let on_error = |inner: usize| icmp6_error(ctx, cfg, &vip, inner);
    after_header(
        ctx,
        cfg,
        &vip,
        &src,
        payload.proto,
        At { l3, l4: payload.off, v6: true },
        IPPROTO_ICMPV6,
        is_error,
        on_error,
    )
}

/// A fragment of a datagram for `vip`, either family; a first one has its upper-layer
/// header `proto` at `l4`. The kernel reassembles a datagram only where all its pieces
/// arrive, and only the first carries the ports: so every piece hashes on the client
/// address in the VIP's table. The first decides what the ports can: TCP or UDP to a
/// port no service claims follows the VIP's default, so a `drop` VIP drops it on every
/// node. A later piece cannot be classified and goes to the VIP's table whatever its
/// datagram was for: without its first fragment the kernel never reassembles it (it
/// frees it when reassembly times out), so accepting one alone is harmless.
#[inline(always)]
fn fragment(
    ctx: &XdpContext,
    cfg: &NodeConfig,
    vip: &Vip,
    client: &Addr,
    piece: Piece,
    proto: u8,
    l4: usize,
) -> u32 {
    if piece == Piece::First && matches!(proto, IPPROTO_TCP | IPPROTO_UDP) {
        let Some(ports) = be32_at(ctx, l4) else {
            return malformed(vip.slot);
        };
        if service(vip, proto, ports as u16).is_none() {
            return default_rule(ctx, cfg, vip, client, Kind::Other);
        }
    }
    decide(ctx, cfg, vip.slot, client, 0, Kind::Other)
}

/// A VIP packet `known_service` did not decide, either family, its upper-layer header at
/// `l4`: TCP or UDP go by the VIP's default, ICMP errors to the owner of the flow they
/// quote (`on_error`, given the quote's offset), other ICMP by the client address.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn after_header(
    ctx: &XdpContext,
    cfg: &NodeConfig,
    vip: &Vip,
    client: &Addr,
    proto: u8,
    at: At,
    icmp: u8,
    is_error: impl Fn(u8) -> bool,
    on_error: impl Fn(usize) -> u32,
) -> u32 {
    let l4 = at.l4;
    match proto {
        IPPROTO_TCP | IPPROTO_UDP => match be32_at(ctx, l4) {
            // Ports readable, and no service claims them: the VIP's default, a flow all
            // the same (a bucket in handover keeps it where it is).
            Some(ports) => {
                let udp = proto == IPPROTO_UDP;
                let kind = Service { slot: vip.slot, mode: 0, udp }.flow(at, ports);
                default_rule(ctx, cfg, vip, client, kind)
            }
            None => malformed(vip.slot),
        },
        p if p == icmp => match byte_at(ctx, l4) {
            Some(t) if is_error(t) => on_error(l4 + 8),
            // Echo and the rest of ICMP: the client's address decides.
            Some(_) => decide(ctx, cfg, vip.slot, client, 0, Kind::Other),
            None => malformed(vip.slot),
        },
        _ => default_rule(ctx, cfg, vip, client, Kind::Other),
    }
}

/// The IPv6 twin of `icmp4_error`; the quoted packet's extension headers are walked too.
#[inline(always)]
fn icmp6_error(ctx: &XdpContext, cfg: &NodeConfig, vip: &Vip, inner: usize) -> u32 {
    let Some(ip) = V6::at(ctx, inner) else {
        return malformed(vip.slot);
    };
    match ipv6_payload(ctx, inner, ip.next) {
        Some(p) => quoted(ctx, cfg, vip, &ip.dst, p.proto, p.off, p.piece),
        None => decide(ctx, cfg, vip.slot, &ip.dst, 0, Kind::Error),
    }
}

/// A service's table slot, affinity mode and protocol.
#[derive(Clone, Copy)]
struct Service {
    slot: u16,
    mode: u8,
    udp: bool,
}

/// Where a packet's IP header (`l3`, IPv6 if `v6`) and upper-layer header (`l4`) are.
#[derive(Clone, Copy)]
struct At {
    l3: usize,
    l4: usize,
    v6: bool,
}

impl Service {
    /// The packet to this service at `at` with `ports` (source, destination), for a
    /// bucket in handover.
    #[inline(always)]
    fn flow(self, at: At, ports: u32) -> Kind {
        match self.udp {
            true => Kind::Udp { ports },
            false => Kind::Tcp { l3: at.l3, l4: at.l4, v6: at.v6 },
        }
    }
}

/// TCP or UDP to a configured service: decided here; `None` when the packet is anything
/// else (the caller takes the slower road).
#[inline(always)]
fn known_service(
    ctx: &XdpContext,
    cfg: &NodeConfig,
    vip: &Vip,
    client: &Addr,
    proto: u8,
    at: At,
) -> Option<u32> {
    let ports = be32_at(ctx, at.l4)?;
    let svc = service(vip, proto, ports as u16)?;
    Some(decide_service(ctx, cfg, svc, client, (ports >> 16) as u16, svc.flow(at, ports)))
}

#[inline(always)]
fn service(vip: &Vip, proto: u8, port: u16) -> Option<Service> {
    let udp = match proto {
        IPPROTO_TCP => false,
        IPPROTO_UDP => true,
        _ => return None,
    };
    let (element, shift) = port_position(vip.slot as u32, udp, port);
    let rule = (*FARM_SERVICES.get(element)? >> shift) as u8;
    port_rule_parts(rule).map(|(slot, mode)| Service { slot, mode, udp })
}

#[inline(always)]
fn decide_service(
    ctx: &XdpContext,
    cfg: &NodeConfig,
    svc: Service,
    client: &Addr,
    client_port: u16,
    kind: Kind,
) -> u32 {
    let port = if svc.mode == MODE_CLIENT_IP_PORT { client_port } else { 0 };
    decide(ctx, cfg, svc.slot, client, port, kind)
}

/// Traffic for a VIP that no service matches, of `kind`: the VIP's default, drop or hash.
#[inline(always)]
fn default_rule(ctx: &XdpContext, cfg: &NodeConfig, vip: &Vip, client: &Addr, kind: Kind) -> u32 {
    if vip.mode == MODE_DROP {
        count(vip.slot as u32, |c| &mut c.no_service);
        return xdp_action::XDP_DROP;
    }
    decide(ctx, cfg, vip.slot, client, 0, kind)
}

/// The verdict for a client of table row `slot`: accept if this node owns its bucket (or
/// keeps this `kind` of packet of a bucket in handover) and holds a fresh lease, drop
/// otherwise.
#[inline(always)]
fn decide(
    ctx: &XdpContext,
    cfg: &NodeConfig,
    slot: u16,
    client: &Addr,
    port: u16,
    kind: Kind,
) -> u32 {
    let slot = slot as u32;
    let moving = |h: &farm_common::Handover| handover::take(ctx, cfg, slot, client, h, kind);
    match may_take(cfg, slot, flow_hash(client, port, cfg.seed), moving) {
        Take::No => return xdp_action::XDP_DROP,
        Take::Owner => count(slot, |c| &mut c.accepted),
        Take::Kept => {}
    }
    // Frames for the cluster MAC reach the stack as PACKET_MULTICAST (or OTHERHOST in
    // unicast-flooding mode), which TCP ignores: readdress to this NIC.
    store_mac(ctx, 0, &cfg.own_mac);
    xdp_action::XDP_PASS
}
