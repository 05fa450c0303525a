//! Buckets in handover: a bucket moving between two live nodes for a planned reason (a
//! drain, a weight, a join) keeps its flows on the old owner while new ones go to the
//! new owner. Both nodes receive every packet of the bucket, so each decides alone;
//! their two answers must never both be yes, nor both no, for a packet of a live flow.
//! A move goes through three phases (`Handover::phase`): agreed on (learning), released
//! by the old owner, installed by the farm (taking).
//!
//! - TCP: a node takes a packet of a connection it holds a socket for (found by
//!   `bpf_skc_lookup_tcp`: established, closing, or half-open), whichever side it is;
//!   a live connection has its socket on one of them. A SYN opens a new connection: the
//!   old owner's until it releases the bucket, the new owner's once the move is
//!   installed. A TIME_WAIT socket is no live connection: a client reusing its port
//!   opens a new one. The ACK completing a SYN cookie is taken by the node whose cookie
//!   it is.
//! - UDP has no socket per flow. Both nodes learn the flows they see in `FARM_FLOWS`
//!   until the move is installed, the old owner still taking them; then a learned flow
//!   stays with the old owner until it has been idle for `Control::flow_idle`, and any
//!   other goes to the new owner. The agent holds a move in learning long enough for
//!   both nodes to see a datagram of every active flow.
//! - ICMP errors about a flow go to both (the kernel without the flow drops it) once
//!   taking; other traffic (ICMP echo, fragments, protocols other than TCP and UDP) is the old owner's
//!   while learning and the new owner's once taking.
//!
//! Only packets of buckets in handover come here: every other bucket costs what it did.
use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock_tuple},
    helpers::{bpf_jiffies64, bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_check_syncookie},
    programs::XdpContext,
};
use farm_common::{
    Addr, FlowKey, Handover, NodeConfig,
    handover::{Packet, holder, takes},
};

use crate::{
    maps::{FARM_CONTROL, FARM_FLOWS, count},
    parse::{byte_at, load, ptr_at},
};

/// What a packet of a bucket in handover is.
#[derive(Clone, Copy)]
pub enum Kind {
    /// TCP to a service: its IP header at `l3` (IPv6 if `v6`), its TCP header at `l4`.
    Tcp { l3: usize, l4: usize, v6: bool },
    /// UDP to a service: `ports` holds the client's port, then the service's. One word:
    /// two `u16` fields would sit misaligned after the tag, and LLVM would merge their
    /// stores into one the verifier refuses on the stack.
    Udp { ports: u32 },
    /// An ICMP error quoting a flow of the bucket.
    Error,
    /// Anything else.
    Other,
}

const TCP_FIN_SYN_RST_ACK: u8 = 0x17;
const TCP_SYN: u8 = 0x02;
/// `bpf_sock.state` values (the kernel's TCP states) that hold no live connection.
const TCP_TIME_WAIT: u32 = 6;
const TCP_LISTEN: u32 = 10;

/// Whether this node, `h`'s old or new owner, takes a packet of `client` in `slot`'s
/// bucket in handover `h`, counting the verdict. What the packet is is found here (a
/// socket lookup, the learned flows); who takes it, `farm_common::handover::takes`.
#[inline(always)]
pub fn take(
    ctx: &XdpContext,
    cfg: &NodeConfig,
    slot: u32,
    client: &Addr,
    h: &Handover,
    kind: Kind,
) -> bool {
    let packet = match kind {
        Kind::Tcp { l3, l4, v6 } => tcp(ctx, l3, l4, v6),
        Kind::Udp { ports } => {
            let (client_port, port) = ((ports >> 16) as u16, ports as u16);
            let key = FlowKey { client: *client, client_port, port, slot: slot as u16, _pad: 0 };
            Packet::Datagram { holder: flow_holder(&key, h) }
        }
        Kind::Error => Packet::Error,
        Kind::Other => Packet::Other,
    };
    if !takes(h, cfg.node_id, packet) {
        count(slot, |c| &mut c.peer_flow);
        return false;
    }
    let old = h.old == cfg.node_id;
    match packet {
        Packet::Segment { .. } => count(slot, |c| &mut c.socket_found),
        // A flow learned before the install, this node its holder.
        Packet::Datagram { holder: Some(_) } => count(slot, |c| &mut c.learned_flow),
        _ if !old => count(slot, |c| &mut c.new_flow),
        // The old owner: an ICMP error, or what it takes as the owner it still is while
        // the move is learning.
        _ => count(slot, |c| &mut c.accepted),
    }
    true
}

/// A SYN, or a segment of a connection this node holds or not.
#[inline(always)]
fn tcp(ctx: &XdpContext, l3: usize, l4: usize, v6: bool) -> Packet {
    let Some(flags) = byte_at(ctx, l4 + 13) else {
        return Packet::Segment { held: false };
    };
    if flags & TCP_FIN_SYN_RST_ACK == TCP_SYN {
        return Packet::Syn;
    }
    Packet::Segment { held: held(ctx, l3, l4, v6) }
}

/// Whether this node's stack holds the connection of the TCP packet at `l3`/`l4`: a
/// socket that is neither a listener nor in TIME_WAIT, or, for a listener, a valid SYN
/// cookie of this node's in the ACK.
#[inline(always)]
fn held(ctx: &XdpContext, l3: usize, l4: usize, v6: bool) -> bool {
    // The tuple as the packet has it: addresses from the IP header, then the ports, each
    // field stored whole (the verifier refuses a misaligned store to the stack).
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let Some(ports) = load::<[u16; 2]>(ctx, l4) else {
        return false;
    };
    let size = if v6 {
        let Some(addrs) = load::<[[u32; 4]; 2]>(ctx, l3 + 8) else {
            return false;
        };
        let t = unsafe { &mut tuple.__bindgen_anon_1.ipv6 };
        (t.saddr, t.daddr, t.sport, t.dport) = (addrs[0], addrs[1], ports[0], ports[1]);
        36
    } else {
        let Some(addrs) = load::<[u32; 2]>(ctx, l3 + 12) else {
            return false;
        };
        let t = unsafe { &mut tuple.__bindgen_anon_1.ipv4 };
        (t.saddr, t.daddr, t.sport, t.dport) = (addrs[0], addrs[1], ports[0], ports[1]);
        12
    };
    let raw = ctx.ctx as *mut core::ffi::c_void;
    let sk = unsafe { bpf_skc_lookup_tcp(raw, &mut tuple, size, BPF_F_CURRENT_NETNS as u64, 0) };
    if sk.is_null() {
        return false;
    }
    let held = match unsafe { (*sk).state } {
        TCP_TIME_WAIT => false,
        TCP_LISTEN => cookie(ctx, sk as *mut core::ffi::c_void, l3, l4, v6),
        _ => true,
    };
    unsafe { bpf_sk_release(sk as *mut core::ffi::c_void) };
    held
}

/// Whether the ACK at `l4` completes a SYN cookie the listener `sk` issued.
#[inline(always)]
fn cookie(ctx: &XdpContext, sk: *mut core::ffi::c_void, l3: usize, l4: usize, v6: bool) -> bool {
    let Some(th) = ptr_at::<[u8; 20]>(ctx, l4) else {
        return false;
    };
    let checked = if v6 {
        let Some(ip) = ptr_at::<[u8; 40]>(ctx, l3) else {
            return false;
        };
        unsafe { bpf_tcp_check_syncookie(sk, ip as *mut _, 40, th as *mut _, 20) }
    } else {
        let Some(ip) = ptr_at::<[u8; 20]>(ctx, l3) else {
            return false;
        };
        unsafe { bpf_tcp_check_syncookie(sk, ip as *mut _, 20, th as *mut _, 20) }
    };
    checked == 0
}

/// The node of handover `h` holding the UDP flow `key`, learning it if need be
/// (`farm_common::handover::holder`).
#[inline(always)]
fn flow_holder(key: &FlowKey, h: &Handover) -> Option<u16> {
    let now = unsafe { bpf_jiffies64() };
    let idle = FARM_CONTROL.get(0).map_or(0, |c| c.flow_idle as u64);
    let seen = unsafe { FARM_FLOWS.get(key) }.copied();
    let (holder, record) = holder(seen, h, now, idle);
    if let Some(record) = record {
        let _ = FARM_FLOWS.insert(key, &record, 0);
    }
    holder
}
