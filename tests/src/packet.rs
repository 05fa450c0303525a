//! Builds test frames byte by byte: Ethernet with VLAN tags, IPv4 (options, fragments),
//! IPv6 (extension headers), TCP, UDP, ICMP, ICMPv6 and ARP. Hand-built rather than from a
//! packet library so a test can also build what no library would: cut-short headers,
//! impossible lengths.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;
pub const GRE: u8 = 47;
/// IPv6 extension header types.
pub const IPV6_HOP_BY_HOP: u8 = 0;
pub const IPV6_ROUTING: u8 = 43;
pub const IPV6_FRAGMENT: u8 = 44;
pub const IPV6_DEST_OPTS: u8 = 60;

/// A frame under construction: headers are appended in order.
#[derive(Clone, Debug, Default)]
pub struct Frame {
    pub bytes: Vec<u8>,
}

impl Frame {
    /// Ethernet header; `tags` are (TPID, VLAN id) from outer to inner.
    pub fn eth(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)], ether_type: u16) -> Frame {
        let mut b = Vec::with_capacity(128);
        b.extend(dst);
        b.extend(src);
        for &(tpid, vid) in tags {
            b.extend(tpid.to_be_bytes());
            b.extend(vid.to_be_bytes());
        }
        b.extend(ether_type.to_be_bytes());
        Frame { bytes: b }
    }

    /// IPv4 header with `options` (a multiple of 4 bytes) and fragment field `frags`
    /// (flags and offset, host order); the total length counts `payload_len` after it.
    pub fn ipv4(
        mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        options: &[u8],
        frags: u16,
        payload_len: usize,
    ) -> Frame {
        let ihl = (20 + options.len()) / 4;
        let total = (ihl * 4 + payload_len) as u16;
        let start = self.bytes.len();
        self.bytes.push(0x40 | ihl as u8);
        self.bytes.push(0);
        self.bytes.extend(total.to_be_bytes());
        self.bytes.extend([0x12, 0x34]);
        self.bytes.extend(frags.to_be_bytes());
        self.bytes.push(64);
        self.bytes.push(proto);
        self.bytes.extend([0, 0]);
        self.bytes.extend(src.octets());
        self.bytes.extend(dst.octets());
        self.bytes.extend(options);
        let sum = checksum(&self.bytes[start..], 0);
        self.bytes[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
        self
    }

    /// IPv6 header followed by extension headers `exts` (each: header type, its bytes
    /// after the next-header byte, a multiple of 8 minus 1 long), then `proto`.
    pub fn ipv6(
        mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        exts: &[(u8, Vec<u8>)],
        proto: u8,
        payload_len: usize,
    ) -> Frame {
        let ext_len: usize = exts.iter().map(|(_, b)| b.len() + 1).sum();
        let first = exts.first().map_or(proto, |(t, _)| *t);
        self.bytes.extend([0x60, 0, 0, 0]);
        self.bytes.extend(((ext_len + payload_len) as u16).to_be_bytes());
        self.bytes.push(first);
        self.bytes.push(64);
        self.bytes.extend(src.octets());
        self.bytes.extend(dst.octets());
        for (i, (_, body)) in exts.iter().enumerate() {
            self.bytes.push(exts.get(i + 1).map_or(proto, |(t, _)| *t));
            self.bytes.extend(body);
        }
        self
    }

    /// An IP header of either family with no options or extension headers.
    pub fn ip(self, src: IpAddr, dst: IpAddr, proto: u8, payload_len: usize) -> Frame {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.ipv4(s, d, proto, &[], 0, payload_len),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.ipv6(s, d, &[], proto, payload_len),
            _ => panic!("mixed address families"),
        }
    }

    pub fn ports(mut self, sport: u16, dport: u16) -> Frame {
        self.bytes.extend(sport.to_be_bytes());
        self.bytes.extend(dport.to_be_bytes());
        self
    }

    pub fn raw(mut self, bytes: &[u8]) -> Frame {
        self.bytes.extend(bytes);
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.bytes
    }
}

/// A TCP SYN (20-byte header) from `client:sport` to `vip:dport`.
pub fn tcp(client: IpAddr, sport: u16, vip: IpAddr, dport: u16) -> Vec<u8> {
    l4(client, sport, vip, dport, TCP)
}

/// A UDP datagram with 8 bytes of payload.
pub fn udp(client: IpAddr, sport: u16, vip: IpAddr, dport: u16) -> Vec<u8> {
    l4(client, sport, vip, dport, UDP)
}

fn l4(client: IpAddr, sport: u16, vip: IpAddr, dport: u16, proto: u8) -> Vec<u8> {
    let (ether_type, rest) = (ether_type_of(client), if proto == TCP { 16 } else { 12 });
    Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ether_type)
        .ip(client, vip, proto, 4 + rest)
        .ports(sport, dport)
        .raw(&[0u8; 16][..rest])
        .build()
}

pub fn ether_type_of(addr: IpAddr) -> u16 {
    if addr.is_ipv4() { ETH_P_IP } else { ETH_P_IPV6 }
}

/// An ARP request from `sender` asking who has `target`.
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    Frame::eth([0xff; 6], CLIENT_MAC, &[], ETH_P_ARP)
        .raw(&[0, 1, 8, 0, 6, 4, 0, 1])
        .raw(&CLIENT_MAC)
        .raw(&sender.octets())
        .raw(&[0; 6])
        .raw(&target.octets())
        .build()
}

/// The reply a node sends to `arp_request(requester, vip)`: the cluster MAC has `vip`,
/// from this node's NIC to the requester's MAC.
pub fn arp_reply(vip: Ipv4Addr, requester: Ipv4Addr) -> Vec<u8> {
    Frame::eth(CLIENT_MAC, NODE_MAC, &[], ETH_P_ARP)
        .raw(&[0, 1, 8, 0, 6, 4, 0, 2])
        .raw(&CLUSTER_MAC)
        .raw(&vip.octets())
        .raw(&CLIENT_MAC)
        .raw(&requester.octets())
        .build()
}

/// The solicited-node multicast address of `target`.
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let o = target.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | o[13] as u16, u16::from_be_bytes([o[14], o[15]]))
}

/// A neighbour solicitation from `sender` for `target`, with the source link-layer
/// option when `with_option`.
pub fn neighbour_solicitation(sender: Ipv6Addr, target: Ipv6Addr, with_option: bool) -> Vec<u8> {
    let mut body = vec![135, 0, 0, 0, 0, 0, 0, 0];
    body.extend(target.octets());
    if with_option {
        body.extend([1, 1]);
        body.extend(CLIENT_MAC);
    }
    let dst = solicited_node(target);
    let sum = icmpv6_checksum(sender, dst, &body);
    body[2..4].copy_from_slice(&sum.to_be_bytes());
    let o = dst.octets();
    Frame::eth([0x33, 0x33, o[12], o[13], o[14], o[15]], CLIENT_MAC, &[], ETH_P_IPV6)
        .ipv6(sender, dst, &[], ICMPV6, body.len())
        .raw(&body)
        .build()
}

/// The advertisement a node sends for `neighbour_solicitation(requester, target, _)`:
/// solicited and override, with the cluster MAC as the target's link-layer address, from
/// this node's NIC, with the hop limit of 255 neighbour discovery demands.
pub fn neighbour_advertisement(requester: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let mut body = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
    body.extend(target.octets());
    body.extend([2, 1]);
    body.extend(CLUSTER_MAC);
    let sum = icmpv6_checksum(target, requester, &body);
    body[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut frame = Frame::eth(CLIENT_MAC, NODE_MAC, &[], ETH_P_IPV6)
        .ipv6(target, requester, &[], ICMPV6, body.len())
        .raw(&body)
        .build();
    frame[14 + 7] = 255;
    frame
}

/// `frame` as a node that accepts it passes it on: readdressed to this node's NIC.
pub fn readdressed(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[..6].copy_from_slice(&NODE_MAC);
    out
}

/// Ones' complement sum of `data` (odd length padded), folded, complemented.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial;
    for pair in data.chunks(2) {
        sum += u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]) as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, body: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend(src.octets());
    pseudo.extend(dst.octets());
    pseudo.extend((body.len() as u32).to_be_bytes());
    pseudo.extend([0, 0, 0, ICMPV6]);
    let partial = !checksum(&pseudo, 0) as u32;
    checksum(body, partial)
}

/// MACs the fixtures use: a client, this node's NIC and the farm's cluster MAC.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const NODE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
pub const CLUSTER_MAC: [u8; 6] = [0x03, 0xbf, 0xc6, 0x12, 0, 0x64];
