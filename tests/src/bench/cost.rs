//! Table A: the cost of each farm path under BPF_PROG_TEST_RUN, read against the baseline
//! program on the same packet. Baseline and farm runs alternate within each round, so
//! drift (frequency, a noisy neighbour) hits both; each figure is the median of the rounds.
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use farm_common::{Counter, GLOBAL_SLOT};

use super::{OTHER_NODE, baseline::Baseline, median};
use crate::{fixtures::*, harness::Harness, packet::*};

/// Every path should cost at most this many times the baseline.
pub const GOAL: f64 = 1.5;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

pub struct CostRow {
    pub name: &'static str,
    pub ns: f64,
    pub baseline_ns: f64,
    /// Median over rounds of farm / baseline within the round.
    pub ratio: f64,
    /// Measured one packet per BPF_PROG_TEST_RUN call (see `Path::fresh`).
    pub fresh: bool,
}

/// Which owner table the path runs against: an index into `measure`'s harnesses.
#[derive(Clone, Copy)]
enum Table {
    /// This node owns every bucket.
    Owned = 0,
    /// Another node owns every bucket.
    Foreign = 1,
}

struct Path {
    name: &'static str,
    table: Table,
    packet: Vec<u8>,
    action: u32,
    /// The counter the path bumps once per packet: (slot, field).
    slot: u32,
    counter: Counter,
    /// The program rewrites this packet in place into one it treats otherwise (an ARP
    /// request becomes a reply, which it passes), and a repeated BPF_PROG_TEST_RUN feeds
    /// the rewritten bytes to the next run: so each run gets a fresh copy, one per call.
    fresh: bool,
}

fn paths() -> Vec<Path> {
    let web = tcp(CLIENT4.into(), 40000, VIP4.into(), 80);
    vec![
        Path {
            name: "not-vip-pass",
            table: Table::Owned,
            packet: tcp(CLIENT4.into(), 40000, OTHER4.into(), 80),
            action: XDP_PASS,
            slot: GLOBAL_SLOT,
            counter: Counter::Passed,
            fresh: false,
        },
        Path {
            name: "vip-accept",
            table: Table::Owned,
            packet: web.clone(),
            action: XDP_PASS,
            slot: SLOT_WEB4,
            counter: Counter::Accepted,
            fresh: false,
        },
        Path {
            name: "vip-drop",
            table: Table::Foreign,
            packet: web,
            action: XDP_DROP,
            slot: SLOT_WEB4,
            counter: Counter::NotOwner,
            fresh: false,
        },
        Path {
            name: "arp-reply",
            table: Table::Owned,
            packet: arp_request(CLIENT4, VIP4),
            action: XDP_TX,
            slot: SLOT_VIP4,
            counter: Counter::ArpReplies,
            fresh: true,
        },
    ]
}

/// Times every path `rounds` times with `repeat` runs each.
pub fn measure(repeat: u32, rounds: usize) -> Result<Vec<CostRow>> {
    let mut owned = Harness::new(config())?;
    let me = owned.node_id();
    owned.fill(|_, _| me)?;
    let mut foreign = Harness::new(config())?;
    foreign.fill(|_, _| OTHER_NODE)?;
    let mut harnesses = [owned, foreign];
    let baseline = Baseline::load()?;
    let paths = paths();
    for p in &paths {
        let action = harnesses[p.table as usize].run(&p.packet)?.action;
        if action != p.action {
            bail!("path {}: the program returned {action}, expected {}", p.name, p.action);
        }
    }
    let mut samples: Vec<Vec<Sample>> = paths.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (p, s) in paths.iter().zip(&mut samples) {
            s.push(sample(&mut harnesses[p.table as usize], &baseline, p, repeat)?);
        }
    }
    Ok(paths
        .iter()
        .zip(samples)
        .map(|(p, s)| CostRow {
            name: p.name,
            ns: median(s.iter().map(|x| x.farm).collect()),
            baseline_ns: median(s.iter().map(|x| x.baseline).collect()),
            ratio: median(s.iter().map(|x| x.farm / x.baseline).collect()),
            fresh: p.fresh,
        })
        .collect())
}

/// One round of one path, in ns per packet.
struct Sample {
    farm: f64,
    baseline: f64,
}

fn sample(h: &mut Harness, baseline: &Baseline, p: &Path, repeat: u32) -> Result<Sample> {
    let before = h.counters(p.slot)?[p.counter];
    let base = ns(baseline.time(&p.packet, repeat)?);
    let (farm, runs) = if p.fresh {
        // One call per packet adds the call's fixed cost inside the timed window (a
        // clock read, bottom halves off and on) to every packet: measure it on the
        // baseline, one packet per call too, and take it off farm's figure.
        // A call (syscall, packet copy) costs some fifty packets: this many calls take
        // about as long as one repeated run.
        // The two alternate call by call, so drift over the run hits both alike.
        let calls = (repeat / 50).max(1);
        let (mut base_fresh, mut farm_fresh) = (0.0, 0.0);
        for _ in 0..calls {
            base_fresh += ns(baseline.time(&p.packet, 1)?);
            farm_fresh += ns(h.time(&p.packet, 1)?);
        }
        ((farm_fresh - base_fresh) / calls as f64 + base, calls)
    } else {
        (ns(h.time(&p.packet, repeat)?), repeat)
    };
    // Each timed run must have taken the path it is named after, not a cheaper one.
    let took = h.counters(p.slot)?[p.counter] - before;
    ensure!(took == runs as u64, "path {}: {took} of {runs} runs took the path", p.name);
    Ok(Sample { farm, baseline: base })
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}
