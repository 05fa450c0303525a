//! The ARP and neighbour-advertisement frames farm sends, byte by byte: the XDP program's
//! answers (as `classify` models them) and the announcements after a takeover
//! (`announce`). Both carry the cluster MAC, and leave from the NIC's own MAC.
use farm_common::{
    Addr,
    frame::{ARP_LEN, ETH_LEN, IPPROTO_ICMPV6, IPV6_LEN, NA_LEN, ND_HOP_LIMIT, advertisement},
};

/// An Ethernet header.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ether_type: u16) -> [u8; ETH_LEN] {
    let mut h = [0; ETH_LEN];
    h[..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    h[12..].copy_from_slice(&ether_type.to_be_bytes());
    h
}

/// An ARP body for IPv4 over Ethernet: operation `op`, sender and target hardware and
/// protocol addresses (IPv4 addresses as their big-endian values).
pub fn arp(op: u16, sha: [u8; 6], spa: u32, tha: [u8; 6], tpa: u32) -> [u8; ARP_LEN] {
    let mut b = [0; ARP_LEN];
    b[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
    b[6..8].copy_from_slice(&op.to_be_bytes());
    b[8..14].copy_from_slice(&sha);
    b[14..18].copy_from_slice(&spa.to_be_bytes());
    b[18..24].copy_from_slice(&tha);
    b[24..].copy_from_slice(&tpa.to_be_bytes());
    b
}

/// An IPv6 packet from `src` to `dst` holding one neighbour advertisement of `target` at
/// `mac`, with `flags` (`frame::NA_SOLICITED`, `NA_OVERRIDE`) and the hop limit of 255
/// neighbour discovery demands.
pub fn advertisement_packet(
    flags: u32,
    target: &Addr,
    mac: &[u8; 6],
    src: &Addr,
    dst: &Addr,
) -> [u8; IPV6_LEN + NA_LEN] {
    let mut p = [0; IPV6_LEN + NA_LEN];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(NA_LEN as u16).to_be_bytes());
    p[6] = IPPROTO_ICMPV6;
    p[7] = ND_HOP_LIMIT;
    let words = [*src, *dst].into_iter().flatten();
    let body = advertisement(flags, target, mac, src, dst);
    for (i, w) in words.chain(body).enumerate() {
        p[8 + 4 * i..12 + 4 * i].copy_from_slice(&w.to_be_bytes());
    }
    p
}
