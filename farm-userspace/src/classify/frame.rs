//! Reading a frame as the XDP program does (farm-ebpf's `parse`): a header is there only
//! if the frame holds all of it and it starts no further in than `MAX_OFFSET`; Ethernet
//! with up to two VLAN tags; the IPv6 extension-header walk.
use farm_common::{
    Addr,
    frame::{
        ETH_LEN, ETH_P_8021AD, ETH_P_8021Q, IPV4_FRAG_MASK, IPV4_LEN, IPV4_OFFSET_MASK, IPV6_AH,
        IPV6_DEST_OPTS, IPV6_FRAGMENT, IPV6_HOP_BY_HOP, IPV6_LEN, IPV6_ROUTING, MAX_IPV6_EXT,
        MAX_OFFSET, MAX_VLAN_TAGS, VLAN_LEN,
    },
};

/// A frame's bytes, read only where the program's bounds checks let it read.
#[derive(Clone, Copy)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    /// The `N` bytes at `off` (`parse::ptr_at`).
    pub fn at<const N: usize>(self, off: usize) -> Option<[u8; N]> {
        if off > MAX_OFFSET {
            return None;
        }
        self.0.get(off..off + N)?.try_into().ok()
    }

    /// The byte at `off`, read as the first of two (`parse::byte_at`).
    pub fn byte(self, off: usize) -> Option<u8> {
        self.at::<2>(off).map(|b| b[0])
    }

    pub fn be16(self, off: usize) -> Option<u16> {
        self.at(off).map(u16::from_be_bytes)
    }

    pub fn be32(self, off: usize) -> Option<u32> {
        self.at(off).map(u32::from_be_bytes)
    }

    /// An IPv6 address at `off`, as the data plane's words.
    pub fn addr6(self, off: usize) -> Option<Addr> {
        self.at::<16>(off).map(|b| addr_words(&b))
    }

    /// The innermost EtherType and where the L3 header starts; `None` when the frame is
    /// cut short inside the Ethernet header or a VLAN tag (`parse::Frame::parse`).
    pub fn ethernet(self) -> Option<(u16, usize)> {
        let mut ether_type = self.be16(ETH_LEN - 2)?;
        let mut l3 = ETH_LEN;
        for _ in 0..MAX_VLAN_TAGS {
            if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
                break;
            }
            ether_type = self.be16(l3 + 2)?;
            l3 += VLAN_LEN;
        }
        Some((ether_type, l3))
    }
}

/// The 16 bytes of an IPv6 address as the data plane's words.
fn addr_words(b: &[u8]) -> Addr {
    std::array::from_fn(|i| {
        u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    })
}

/// Which piece of a datagram a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    Whole,
    /// Offset 0: it carries the upper-layer header.
    First,
    /// It starts inside the datagram's data.
    Later,
}

/// The IPv4 header fields steering reads (`steer::V4`).
pub struct V4 {
    vihl: u8,
    frags: u16,
    pub proto: u8,
    pub src: u32,
    pub dst: u32,
}

impl V4 {
    pub fn at(b: Bytes, l3: usize) -> Option<V4> {
        let h: [u8; IPV4_LEN] = b.at(l3)?;
        let word = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Some(V4 {
            vihl: h[0],
            frags: u16::from_be_bytes([h[6], h[7]]),
            proto: h[9],
            src: word(12),
            dst: word(16),
        })
    }

    /// Header length, if the version and IHL are possible.
    pub fn header_len(&self) -> Option<usize> {
        let ihl = usize::from(self.vihl & 0x0f) * 4;
        (self.vihl >> 4 == 4 && ihl >= IPV4_LEN).then_some(ihl)
    }

    pub fn piece(&self) -> Piece {
        match self.frags & IPV4_FRAG_MASK {
            0 => Piece::Whole,
            f if f & IPV4_OFFSET_MASK == 0 => Piece::First,
            _ => Piece::Later,
        }
    }
}

/// The IPv6 header fields steering reads (`steer::V6`).
pub struct V6 {
    pub next: u8,
    pub src: Addr,
    pub dst: Addr,
}

impl V6 {
    /// The header at `l3`, read in one piece as the program reads it: only its start need
    /// be within `MAX_OFFSET`, not its addresses'.
    pub fn at(b: Bytes, l3: usize) -> Option<V6> {
        let h: [u8; IPV6_LEN] = b.at(l3)?;
        Some(V6 { next: h[6], src: addr_words(&h[8..24]), dst: addr_words(&h[24..40]) })
    }
}

/// Where an IPv6 packet's upper-layer header starts and what it is; for a later
/// fragment, where its data starts and the fragment header's next header.
pub struct Payload {
    pub proto: u8,
    pub off: usize,
    pub piece: Piece,
}

/// The extension-header walk after the fixed header at `l3` (`parse::ipv6_payload`):
/// `None` when one is cut short, ends past `MAX_OFFSET`, or there are more than
/// `MAX_IPV6_EXT`.
pub fn ipv6_payload(b: Bytes, l3: usize, next: u8) -> Option<Payload> {
    let (mut proto, mut off, mut piece) = (next, l3 + IPV6_LEN, Piece::Whole);
    for _ in 0..MAX_IPV6_EXT {
        let len = match proto {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let [next, len] = b.at(off)?;
                proto = next;
                (usize::from(len) + 1) * 8
            }
            IPV6_FRAGMENT => {
                let [next, _, hi, lo] = b.at(off)?;
                proto = next;
                if u16::from_be_bytes([hi, lo]) >> 3 != 0 {
                    return Some(Payload { proto, off: off + 8, piece: Piece::Later });
                }
                piece = Piece::First;
                8
            }
            IPV6_AH => {
                let [next, len] = b.at(off)?;
                proto = next;
                (usize::from(len) + 2) * 4
            }
            _ => return Some(Payload { proto, off, piece }),
        };
        off += len;
        if off > MAX_OFFSET {
            return None;
        }
    }
    None
}
