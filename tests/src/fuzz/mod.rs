//! The data-plane fuzzer: random and mutated frames (`frames`) through the XDP program
//! under BPF_PROG_TEST_RUN, each against the userspace model of the program
//! (`farm_userspace::classify`, the code of `farm lookup`). For every frame, the action
//! and the frame out must be the model's; over every batch, the counters must move as the
//! model's counters add up. And whatever the model says: never XDP_TX but for an ARP
//! reply or a neighbour advertisement, never an accept for a bucket this node does not
//! own or while its lease has ended. The owner table mixes this node's buckets, a peer's
//! and unowned ones; one batch in eight runs with the lease ended.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Result;
use farm_common::{
    Counter, Counters, GLOBAL_SLOT, NO_OWNER,
    frame::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP, ETH_P_IPV6, ICMPV6_NEIGHBOUR_ADVERT},
};
use farm_userspace::{
    classify::{Plane, Verdict},
    rules,
};

use crate::{
    fixtures::{BUCKETS, PEER, config},
    harness::{Harness, Outcome, XDP_PASS, XDP_TX},
    packet::NODE_MAC,
    sim::rng::Rng,
};

mod frames;
pub use frames::Frames;

/// Frames run between two readings of the counters (and two calls of `run`'s progress).
pub const BATCH: u64 = 2048;
/// Mismatches described in full; the rest are counted.
const DESCRIBED: usize = 20;

/// What a fuzzing run found.
#[derive(Default)]
pub struct Report {
    pub frames: u64,
    pub elapsed: Duration,
    /// How often each outcome came out (program and model agreeing): "ACTION counter".
    pub outcomes: BTreeMap<String, u64>,
    /// Frames (and batches of counters) where the program and the model differ, or
    /// where the program broke a rule.
    pub mismatches: u64,
    pub described: Vec<String>,
}

impl Report {
    fn mismatch(&mut self, what: String) {
        self.mismatches += 1;
        if self.described.len() < DESCRIBED {
            self.described.push(what);
        }
    }

    pub fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn summary(&self) -> String {
        let outcomes: Vec<String> = self.outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!(
            "{} frames in {:.1} s ({:.0} frames/s): {} mismatches\noutcomes: {}",
            self.frames,
            self.elapsed.as_secs_f64(),
            self.frames_per_second(),
            self.mismatches,
            outcomes.join(", ")
        )
    }
}

/// Runs `frames` frames made from `seed` through the program; `progress` hears the
/// count after every batch.
pub fn run(frames: u64, seed: u64, mut progress: impl FnMut(u64)) -> Result<Report> {
    let mut h = Harness::new(config())?;
    let me = h.node_id();
    let mut rng = Rng::new(seed ^ 0x7ab1e);
    let rows: Vec<Vec<u16>> = (0..h.rules.slots.len())
        .map(|_| {
            let owner =
                |r: u64| [me, me, me, me, PEER, PEER, PEER, PEER, NO_OWNER, NO_OWNER][r as usize];
            (0..BUCKETS).map(|_| owner(rng.below(10))).collect()
        })
        .collect();
    h.dataplane.install(&rows, &Default::default())?;
    let (rules, node) = (h.rules.clone(), rules::node_config(&h.cfg, NODE_MAC));
    let slots: Vec<u32> = (0..rules.slots.len() as u32).chain([GLOBAL_SLOT]).collect();
    let mut made = Frames::new(seed);
    let mut report = Report::default();
    let started = Instant::now();
    while report.frames < frames {
        let leased = !rng.chance(125);
        let lease = match leased {
            true => {
                h.dataplane.renew_lease(None)?;
                Some(Instant::now() + Duration::from_secs(365 * 86_400))
            }
            false => {
                h.dataplane.fence()?;
                None
            }
        };
        let moving = Default::default();
        let plane = Plane { rules: &rules, node: &node, rows: &rows, moving: &moving, lease };
        let batch: Vec<Vec<u8>> =
            (0..BATCH.min(frames - report.frames)).map(|_| made.next_frame()).collect();
        let before = counters(&h, &slots)?;
        let mut moved: BTreeMap<(u32, Counter), u64> = BTreeMap::new();
        let mut verdicts = Vec::with_capacity(batch.len());
        for f in &batch {
            let v = plane.judge(f, Instant::now());
            let out = h.run(f)?;
            match check(&v, &out, &rows, me) {
                Ok(()) => {
                    let global = if v.counter.0 == GLOBAL_SLOT { " (no VIP)" } else { "" };
                    let key = format!("{:?} {:?}{global}", v.action, v.counter.1);
                    *report.outcomes.entry(key).or_default() += 1;
                }
                Err(e) => report.mismatch(describe(f, leased, &e)),
            }
            *moved.entry(v.counter).or_default() += 1;
            verdicts.push(v);
        }
        let after = counters(&h, &slots)?;
        if let Err(e) = same_counters(&slots, &before, &after, &moved) {
            report.mismatch(format!("a batch of {} frames: {e}", batch.len()));
            // Replays the batch frame by frame to name the frames whose counters differ.
            for (f, v) in batch.iter().zip(&verdicts) {
                let before = counters(&h, &slots)?;
                h.run(f)?;
                let after = counters(&h, &slots)?;
                let one = BTreeMap::from([(v.counter, 1)]);
                if let Err(e) = same_counters(&slots, &before, &after, &one) {
                    report.mismatch(describe(f, leased, &e));
                }
            }
        }
        report.frames += batch.len() as u64;
        progress(report.frames);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn counters(h: &Harness, slots: &[u32]) -> Result<Vec<Counters>> {
    slots.iter().map(|&s| h.counters(s)).collect()
}

/// Whether the counters moved from `before` to `after` by `moved` exactly.
fn same_counters(
    slots: &[u32],
    before: &[Counters],
    after: &[Counters],
    moved: &BTreeMap<(u32, Counter), u64>,
) -> Result<(), String> {
    let mut wrong = Vec::new();
    for (i, &slot) in slots.iter().enumerate() {
        for k in Counter::ALL {
            let (got, want) = (after[i][k] - before[i][k], moved.get(&(slot, k)).copied());
            if got != want.unwrap_or(0) {
                wrong.push(format!(
                    "({slot}, {k:?}) moved {got}, the model says {}",
                    want.unwrap_or(0)
                ));
            }
        }
    }
    match wrong.is_empty() {
        true => Ok(()),
        false => Err(format!("counters: {}", wrong.join("; "))),
    }
}

/// The program's outcome against the model's verdict, and the rules that hold whatever
/// the model says.
fn check(v: &Verdict, out: &Outcome, rows: &[Vec<u16>], me: u16) -> Result<(), String> {
    let mut wrong = Vec::new();
    if out.action != v.action.xdp() {
        wrong.push(format!(
            "action {}, the model says {:?} ({:?})",
            out.action, v.action, v.counter
        ));
    }
    if out.packet != v.output {
        wrong.push(format!("frame out {:02x?}, the model's {:02x?}", out.packet, v.output));
    }
    if out.action == XDP_TX && !is_answer(&out.packet) {
        wrong.push("XDP_TX of a frame that is no ARP reply or neighbour advertisement".into());
    }
    // The program readdresses what it accepts (frames never come addressed to this NIC).
    if out.action == XDP_PASS && out.packet.get(..6) == Some(&NODE_MAC[..]) {
        let owned = v.bucket.is_some_and(|(slot, b)| rows[usize::from(slot)][b as usize] == me);
        if !owned || v.counter.1 != Counter::Accepted {
            wrong.push(format!("accepted, but bucket {:?} is not this node's to take", v.bucket));
        }
    }
    match wrong.is_empty() {
        true => Ok(()),
        false => Err(wrong.join("; ")),
    }
}

/// Whether `frame` is an ARP reply or an ICMPv6 neighbour advertisement (behind up to
/// two VLAN tags), read without the model.
fn is_answer(frame: &[u8]) -> bool {
    let be16 = |at: usize| frame.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let mut l3 = 14;
    while matches!(be16(l3 - 2), Some(ETH_P_8021Q | ETH_P_8021AD)) && l3 < 22 {
        l3 += 4;
    }
    match be16(l3 - 2) {
        Some(ETH_P_ARP) => be16(l3 + 6) == Some(2),
        Some(ETH_P_IPV6) => {
            frame.get(l3 + 6) == Some(&58) && frame.get(l3 + 40) == Some(&ICMPV6_NEIGHBOUR_ADVERT)
        }
        _ => false,
    }
}

fn describe(frame: &[u8], leased: bool, what: &str) -> String {
    let lease = if leased { "lease fresh" } else { "lease ended" };
    format!("frame {:02x?} ({} bytes, {lease}): {what}", frame, frame.len())
}
