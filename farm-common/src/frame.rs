//! The protocol numbers and limits of the XDP program's frame parsing, written once: the
//! program parses with them and userspace's model of it (`farm_userspace::classify`)
//! does too, so a limit moved on one side moves on the other.

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Ethernet's header, and one VLAN tag.
pub const ETH_LEN: usize = 14;
pub const VLAN_LEN: usize = 4;
/// VLAN tags looked through (802.1ad outer, 802.1Q inner); a frame with more is not IP
/// to the program.
pub const MAX_VLAN_TAGS: usize = 2;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPV6_HOP_BY_HOP: u8 = 0;
pub const IPV6_ROUTING: u8 = 43;
pub const IPV6_FRAGMENT: u8 = 44;
pub const IPV6_AH: u8 = 51;
pub const IPV6_DEST_OPTS: u8 = 60;
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;
/// Extension headers walked before giving up; real traffic carries one or two.
pub const MAX_IPV6_EXT: usize = 6;
/// No header the program reads starts past this offset (keeping offsets under a
/// constant bound lets the verifier prove every variable-offset access safe): a header
/// further in counts as missing.
pub const MAX_OFFSET: usize = 512;
/// Fragment offset and More-Fragments bits of the IPv4 `frags` field, and the offset
/// alone.
pub const IPV4_FRAG_MASK: u16 = 0x3fff;
pub const IPV4_OFFSET_MASK: u16 = 0x1fff;

/// ICMP errors, which quote the packet they are about.
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
pub const ICMP_PARAM_PROBLEM: u8 = 12;
/// ICMPv6 errors are types 1 (destination unreachable) to 4 (parameter problem).
pub const ICMPV6_DEST_UNREACH: u8 = 1;
pub const ICMPV6_PARAM_PROBLEM: u8 = 4;
pub const ICMPV6_NEIGHBOUR_SOLICIT: u8 = 135;
pub const ICMPV6_NEIGHBOUR_ADVERT: u8 = 136;

/// The first 8 bytes of an ARP request for IPv4 over Ethernet: hardware type 1,
/// protocol 0x0800, lengths 6 and 4, operation 1 (request).
pub const ARP_REQUEST_HEAD: u64 = 0x0001_0800_0604_0001;
pub const ARPOP_REQUEST: u16 = 1;
pub const ARPOP_REPLY: u16 = 2;
/// An ARP body for IPv4 over Ethernet.
pub const ARP_LEN: usize = 28;
/// Neighbour advertisement flags: Solicited, Override.
pub const NA_SOLICITED: u32 = 0x4000_0000;
pub const NA_OVERRIDE: u32 = 0x2000_0000;
/// An advertisement with its one option: header 8, target 16, option 8.
pub const NA_LEN: usize = 32;
/// Option "target link-layer address", 1 unit of 8 bytes.
pub const ND_OPT_TARGET_LL: u32 = 0x0201;
/// The hop limit neighbour discovery is only believed with (RFC 4861).
pub const ND_HOP_LIMIT: u8 = 255;

/// A neighbour advertisement's ICMPv6 message, as the words it is sent in (each to be
/// written big-endian): type 136 with `flags`, the target, the target link-layer address
/// option holding `mac`, and the checksum over the pseudo-header from `src` to `dst`.
/// The XDP program answers solicitations with it and userspace announces with it.
#[inline(always)]
pub fn advertisement(
    flags: u32,
    target: &crate::Addr,
    mac: &[u8; 6],
    src: &crate::Addr,
    dst: &crate::Addr,
) -> [u32; NA_LEN / 4] {
    let mut body: [u32; NA_LEN / 4] = [
        (ICMPV6_NEIGHBOUR_ADVERT as u32) << 24,
        flags,
        target[0],
        target[1],
        target[2],
        target[3],
        ND_OPT_TARGET_LL << 16 | (mac[0] as u32) << 8 | mac[1] as u32,
        u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
    ];
    body[0] |= icmpv6_checksum(src, dst, &body) as u32;
    body
}

/// The ICMPv6 checksum of an advertisement: ones' complement sum over the pseudo-header
/// (source, destination, length, next header) and the message.
#[inline(always)]
fn icmpv6_checksum(src: &crate::Addr, dst: &crate::Addr, body: &[u32; NA_LEN / 4]) -> u16 {
    let halves = |w: u32| (w >> 16) + (w & 0xffff);
    let mut sum: u32 = NA_LEN as u32 + IPPROTO_ICMPV6 as u32;
    for i in 0..4 {
        sum += halves(src[i]) + halves(dst[i]);
    }
    for w in body {
        sum += halves(*w);
    }
    // At most 2^21 here: two folds always bring it under 2^16 (a loop would need the
    // verifier to prove it ends).
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
