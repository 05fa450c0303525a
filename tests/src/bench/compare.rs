//! Table B: farm against its nearest real peer (`peer`), with live frames in a namespace
//! of the bench's own. Two veth pairs, all four ends inside it: farm's frames arrive on
//! `farm0`, which has no nftables hook, the peer's on `peer0`, which has its ingress
//! chain, so neither side pays for the other's filter. The peer's frames run the baseline
//! program: live frames need an XDP program, and that one passes them on untouched.
use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use farm_common::Counter;
use farm_userspace::nic;

use super::{
    baseline::Baseline,
    live, median,
    peer::{self, Verdicts},
    signals,
    sink::{self, Delivered, Sink},
};
use crate::{
    fixtures::*,
    harness::Harness,
    netns::{Netns, in_ns, ip},
    packet::*,
};

const FARM_DEV: &str = "farm0";
const PEER_DEV: &str = "peer0";
/// Farm drops should cost at most a quarter of the peer's; accepts no more than its.
pub const DROP_GOAL: f64 = 4.0;
const ACCEPT_GOAL: f64 = 1.0;

/// One side of a path over all rounds.
pub struct Side {
    /// Median over rounds, per frame.
    pub ns: f64,
    /// Frames the side's own counter says took the path (farm's per-service counter,
    /// the peer's nft counter).
    pub counted: u64,
    pub delivered: Delivered,
}

pub struct PeerRow {
    pub name: &'static str,
    /// What the path is, in a few words.
    pub about: &'static str,
    pub client: Ipv4Addr,
    /// Frames sent to each side, all rounds together.
    pub frames: u64,
    pub farm: Side,
    pub peer: Side,
    /// The least `ratio` the goal asks for.
    pub goal: f64,
}

impl PeerRow {
    /// The peer's figure over farm's: the ratio of the figures printed beside it.
    pub fn ratio(&self) -> f64 {
        self.peer.ns / self.farm.ns
    }
}

struct Path {
    name: &'static str,
    about: &'static str,
    client: Ipv4Addr,
    farm: Harness,
    farm_counter: Counter,
    peer_counter: fn(&Verdicts) -> u64,
    goal: f64,
    /// Whether the frames should reach the socket.
    delivers: bool,
}

/// Measures the drop and accept paths of farm and of the peer, `rounds` rounds of
/// `repeat` frames each, in a namespace that is gone when this returns.
pub fn measure(repeat: u32, rounds: usize) -> Result<Vec<PeerRow>> {
    let ns = Netns::new(format!("farmbench-{}", std::process::id()))?;
    signals::delete_on_signal(&ns.name)?;
    setup(&ns)?;
    peer::install(&ns.name, PEER_DEV)?;
    let name = ns.name.clone();
    // Inside the namespace: the kernel resolves the live runs' ifindexes there, and the
    // socket binds to the VIP there.
    in_ns(&ns.name, move || compare(&name, repeat, rounds))?
}

fn setup(ns: &Netns) -> Result<()> {
    // Reverse-path filtering, where the host's defaults turn it on, would drop clients
    // the namespace has no route back to.
    ns.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
    ns.sysctl("net.ipv4.conf.default.rp_filter", "0")?;
    let vip = format!("{VIP4}/32");
    ip(&["-n", &ns.name, "addr", "add", &vip, "dev", "lo"])?;
    for dev in [FARM_DEV, PEER_DEV] {
        let end = format!("{dev}-end");
        ip(&["-n", &ns.name, "link", "add", dev, "type", "veth", "peer", "name", &end])?;
        ip(&["-n", &ns.name, "link", "set", &end, "up"])?;
        ip(&["-n", &ns.name, "link", "set", dev, "up"])?;
    }
    Ok(())
}

fn compare(ns: &str, repeat: u32, rounds: usize) -> Result<Vec<PeerRow>> {
    let (farm_if, peer_if) = (ifindex(FARM_DEV)?, ifindex(PEER_DEV)?);
    // Accepted frames are readdressed to the NIC's own MAC, so that the stack sees them
    // as PACKET_HOST: farm must know the real one.
    let own_mac = nic::mac(FARM_DEV)?;
    let mut sink = Sink::bind()?;
    let baseline = Baseline::load()?;
    let (inside, outside) = clients(ns, &baseline, peer_if)?;
    let me = config().cluster.node_id;
    let paths = [
        Path {
            name: "drop",
            about: "another node's client",
            client: outside,
            farm: live::farm(PEER, own_mac)?,
            farm_counter: Counter::NotOwner,
            peer_counter: |v| v.dropped,
            goal: DROP_GOAL,
            delivers: false,
        },
        Path {
            name: "accept",
            about: "this node's client, into a UDP socket",
            client: inside,
            farm: live::farm(me, own_mac)?,
            farm_counter: Counter::Accepted,
            peer_counter: |v| v.accepted,
            goal: ACCEPT_GOAL,
            delivers: true,
        },
    ];
    // Farm and peer alternate within each round, so drift hits both.
    let mut runs: Vec<Vec<(Run, Run)>> = paths.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (p, r) in paths.iter().zip(&mut runs) {
            let frame = datagram(p.client);
            let farm_count = || Ok(p.farm.dataplane.counters(SLOT_DNS4)?[p.farm_counter]);
            let farm =
                run(&mut sink, farm_count, || live::time(p.farm.xdp()?, &frame, farm_if, repeat))?;
            let peer_count = || Ok((p.peer_counter)(&peer::verdicts(ns)?));
            let peer = run(&mut sink, peer_count, || {
                live::time(baseline.xdp()?, &frame, peer_if, repeat)
            })?;
            r.push((farm, peer));
        }
    }
    let frames = repeat as u64 * rounds as u64;
    paths.iter().zip(runs).map(|(p, r)| row(p, &r, frames)).collect()
}

fn ifindex(dev: &str) -> Result<u32> {
    let name = std::ffi::CString::new(dev)?;
    // SAFETY: reads a NUL-terminated name.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(std::io::Error::last_os_error()).with_context(|| format!("ifindex of {dev}")),
        index => Ok(index),
    }
}

/// Two clients for the peer's hash, one in this node's share and one outside it, found by
/// sending one frame from each candidate and reading which nft counter moved.
fn clients(ns: &str, baseline: &Baseline, peer_if: u32) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let (mut inside, mut outside) = (None, None);
    for host in 1..=254 {
        let client = Ipv4Addr::new(198, 19, 0, host);
        let before = peer::verdicts(ns)?;
        live::time(baseline.xdp()?, &datagram(client), peer_if, 1)?;
        let after = peer::verdicts(ns)?;
        match (after.dropped - before.dropped, after.accepted - before.accepted) {
            (1, 0) => outside = outside.or(Some(client)),
            (0, 1) => inside = inside.or(Some(client)),
            (dropped, accepted) => {
                bail!("one frame from {client}: nft dropped {dropped}, accepted {accepted}")
            }
        }
        if let (Some(inside), Some(outside)) = (inside, outside) {
            return Ok((inside, outside));
        }
    }
    bail!("no client in 198.19.0.0/24 falls on both sides of {}", peer::describe())
}

/// A UDP datagram from `client` to VIP4:5353, sent to the cluster MAC, with valid IPv4 and
/// UDP checksums and 18 bytes of payload (a 60-byte frame, Ethernet's least): one the
/// stack takes all the way to the socket.
fn datagram(client: Ipv4Addr) -> Vec<u8> {
    let payload = [0x5a; 18];
    let len = (8 + payload.len()) as u16;
    let mut udp = Frame::default()
        .ports(40000, sink::PORT)
        .raw(&len.to_be_bytes())
        .raw(&[0, 0])
        .raw(&payload)
        .build();
    let mut pseudo = [client.octets(), VIP4.octets()].concat();
    pseudo.extend([0, UDP]);
    pseudo.extend(len.to_be_bytes());
    let sum = match checksum(&udp, !checksum(&pseudo, 0) as u32) {
        // Zero on the wire means "no checksum".
        0 => 0xffff,
        sum => sum,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    Frame::eth(CLUSTER_MAC, CLIENT_MAC, &[], ETH_P_IP)
        .ipv4(client, VIP4, UDP, &[], 0, udp.len())
        .raw(&udp)
        .build()
}

/// One timed live run and what it did.
struct Run {
    ns: f64,
    counted: u64,
    delivered: Delivered,
}

/// Times `send` and reads `counter` and the sink around it; the sink starts empty.
fn run(
    sink: &mut Sink,
    counter: impl Fn() -> Result<u64>,
    send: impl FnOnce() -> Result<Duration>,
) -> Result<Run> {
    let (count, delivered) = (counter()?, sink.drain()?);
    let ns = send()?.as_nanos() as f64;
    Ok(Run { ns, counted: counter()? - count, delivered: sink.drain()? - delivered })
}

/// Sums the rounds of one path, after checking that every frame went where the path says.
fn row(p: &Path, runs: &[(Run, Run)], frames: u64) -> Result<PeerRow> {
    let side = |pick: fn(&(Run, Run)) -> &Run| Side {
        ns: median(runs.iter().map(|r| pick(r).ns).collect()),
        counted: runs.iter().map(|r| pick(r).counted).sum(),
        delivered: runs.iter().fold(Delivered::default(), |a, r| a + pick(r).delivered),
    };
    let (farm, peer) = (side(|r| &r.0), side(|r| &r.1));
    for (who, s) in [("farm", &farm), ("peer", &peer)] {
        ensure!(
            s.counted == frames,
            "{} path, {who}: {} of {frames} frames took it",
            p.name,
            s.counted
        );
        ensure!(
            (s.delivered.received > 0) == p.delivers,
            "{} path, {who}: the socket received {} datagrams",
            p.name,
            s.delivered.received
        );
    }
    Ok(PeerRow { name: p.name, about: p.about, client: p.client, frames, farm, peer, goal: p.goal })
}
