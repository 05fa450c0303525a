//! Header parsing: bounds-checked pointers into the frame, Ethernet with up to two VLAN
//! tags, and the IPv6 extension-header walk. Every read is checked against `data_end`
//! first, which is both what keeps a cut-short frame harmless and what the verifier
//! demands.
use aya_ebpf::programs::XdpContext;
use farm_common::Addr;
use farm_common::frame::{
    ETH_LEN, ETH_P_8021AD, ETH_P_8021Q, IPV6_AH, IPV6_DEST_OPTS, IPV6_FRAGMENT, IPV6_HOP_BY_HOP,
    IPV6_LEN, IPV6_ROUTING, MAX_IPV6_EXT, MAX_OFFSET, MAX_VLAN_TAGS, VLAN_LEN,
};

/// A pointer to a `T` at `off` bytes into the frame, if the frame is long enough.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if off > MAX_OFFSET || start + off + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *mut T)
}

/// Reads the `T` at `off`. Packet data has no alignment guarantee: reads are unaligned,
/// and the build enables `allows-misaligned-mem-access` so LLVM emits them as single
/// word loads (the verifier accepts misaligned packet access where XDP runs) rather than
/// a load per byte.
#[inline(always)]
pub fn load<T: Copy>(ctx: &XdpContext, off: usize) -> Option<T> {
    ptr_at::<T>(ctx, off).map(|p| unsafe { p.read_unaligned() })
}

/// The byte at `off`, read as the first of two: for a one-byte read LLVM turns the
/// bounds check into `end > ptr`, from which the verifier (6.18) grants no readable byte
/// at a variable offset. Every header read this way (ICMP type, next header) is longer.
#[inline(always)]
pub fn byte_at(ctx: &XdpContext, off: usize) -> Option<u8> {
    load::<[u8; 2]>(ctx, off).map(|b| b[0])
}

#[inline(always)]
pub fn be16_at(ctx: &XdpContext, off: usize) -> Option<u16> {
    load::<u16>(ctx, off).map(u16::from_be)
}

#[inline(always)]
pub fn be32_at(ctx: &XdpContext, off: usize) -> Option<u32> {
    load::<u32>(ctx, off).map(u32::from_be)
}

/// An IPv6 address at `off`, as the data plane's `Addr` words.
#[inline(always)]
pub fn addr6_at(ctx: &XdpContext, off: usize) -> Option<Addr> {
    let w = load::<[u32; 4]>(ctx, off)?;
    Some([u32::from_be(w[0]), u32::from_be(w[1]), u32::from_be(w[2]), u32::from_be(w[3])])
}

/// Stores `addr` at `off` in network order; the caller checked the bounds.
#[inline(always)]
pub fn store_addr6(ctx: &XdpContext, off: usize, addr: &Addr) -> Option<()> {
    let p = ptr_at::<[u32; 4]>(ctx, off)?;
    unsafe {
        p.write_unaligned([addr[0].to_be(), addr[1].to_be(), addr[2].to_be(), addr[3].to_be()])
    };
    Some(())
}

/// Writes a MAC at `off` as one 4-byte and one 2-byte store.
#[inline(always)]
pub fn store_mac(ctx: &XdpContext, off: usize, mac: &[u8; 6]) -> Option<()> {
    let p = ptr_at::<[u8; 6]>(ctx, off)?;
    unsafe { write_mac(p as *mut u8, mac) };
    Some(())
}

/// Writes a MAC at `p`.
///
/// # Safety
/// `p` must point at 6 writable bytes (bounds checked against the packet by the caller).
#[inline(always)]
pub unsafe fn write_mac(p: *mut u8, mac: &[u8; 6]) {
    unsafe {
        p.cast::<u32>().write_unaligned(u32::from_ne_bytes([mac[0], mac[1], mac[2], mac[3]]));
        p.add(4).cast::<u16>().write_unaligned(u16::from_ne_bytes([mac[4], mac[5]]));
    }
}

/// The Ethernet frame: its (innermost) EtherType and where the L3 header starts.
pub struct Frame {
    pub ether_type: u16,
    pub l3: usize,
}

impl Frame {
    /// `None` when the frame is cut short inside the Ethernet header or a VLAN tag.
    #[inline(always)]
    pub fn parse(ctx: &XdpContext) -> Option<Frame> {
        let mut ether_type = be16_at(ctx, ETH_LEN - 2)?;
        let mut l3 = ETH_LEN;
        // Up to two tags (802.1ad outer, 802.1Q inner); VIPs are matched on any VLAN.
        for _ in 0..MAX_VLAN_TAGS {
            if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
                break;
            }
            ether_type = be16_at(ctx, l3 + 2)?;
            l3 += VLAN_LEN;
        }
        Some(Frame { ether_type, l3 })
    }
}

/// Which piece of a datagram a packet is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Not fragmented.
    Whole,
    /// The first fragment (offset 0): it carries the upper-layer header.
    First,
    /// A later fragment: it starts inside the datagram's data.
    Later,
}

/// Where an IPv6 packet's upper-layer header starts and what it is; for a later fragment,
/// where its data starts and the fragment header's next header.
pub struct Ipv6Payload {
    pub proto: u8,
    pub off: usize,
    pub piece: Piece,
}

/// Walks the extension headers after the fixed IPv6 header at `l3`, up to the upper-layer
/// header, or up to a later fragment's data (which no header follows). `None` when one is
/// cut short or there are more than `MAX_IPV6_EXT`.
#[inline(always)]
pub fn ipv6_payload(ctx: &XdpContext, l3: usize, next: u8) -> Option<Ipv6Payload> {
    let mut proto = next;
    let mut off = l3 + IPV6_LEN;
    let mut piece = Piece::Whole;
    for _ in 0..MAX_IPV6_EXT {
        let len = match proto {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let h: [u8; 2] = load(ctx, off)?;
                proto = h[0];
                (h[1] as usize + 1) * 8
            }
            IPV6_FRAGMENT => {
                // Next header, reserved, then the offset (8-byte units) in the top 13
                // bits of a 16-bit word.
                let h: [u8; 4] = load(ctx, off)?;
                proto = h[0];
                if u16::from_be_bytes([h[2], h[3]]) >> 3 != 0 {
                    return Some(Ipv6Payload { proto, off: off + 8, piece: Piece::Later });
                }
                piece = Piece::First;
                8
            }
            IPV6_AH => {
                let h: [u8; 2] = load(ctx, off)?;
                proto = h[0];
                (h[1] as usize + 2) * 4
            }
            _ => return Some(Ipv6Payload { proto, off, piece }),
        };
        off += len;
        if off > MAX_OFFSET {
            return None;
        }
    }
    None
}
