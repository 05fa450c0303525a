//! Table A: the cost of each farm path under BPF_PROG_TEST_RUN, read against the baseline
//! program on the same packet. Baseline and farm runs alternate within each round, so
//! drift (frequency, a noisy neighbour) hits both; each figure is the median of the rounds.
use std::time::Duration;

use anyhow::{Result, ensure};

use super::{baseline::Baseline, median};
use crate::{
    cases::{Case, cases},
    fixtures::config,
    harness::{Harness, XDP_TX},
};

/// Every path should cost at most this many times the baseline.
pub const GOAL: f64 = 1.5;

pub struct CostRow {
    pub name: String,
    /// Medians over the rounds, to the tenth of a nanosecond they are printed with.
    pub ns: f64,
    pub baseline_ns: f64,
    /// Measured one packet per BPF_PROG_TEST_RUN call (see `fresh`).
    pub fresh: bool,
}

impl CostRow {
    /// Farm's figure over the baseline's: the ratio of the figures printed beside it.
    pub fn ratio(&self) -> f64 {
        self.ns / self.baseline_ns
    }
}

/// Times every case of the verdict table marked `timed`, `rounds` times with `repeat`
/// runs each.
pub fn measure(repeat: u32, rounds: usize) -> Result<Vec<CostRow>> {
    // The handover's paths look up sockets in the calling thread's namespace: a thread
    // of its own holds them, and leaves the bench's namespace alone.
    std::thread::spawn(move || {
        let _held = crate::held::hold()?;
        measure_held(repeat, rounds)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("table A's thread panicked"))?
}

fn measure_held(repeat: u32, rounds: usize) -> Result<Vec<CostRow>> {
    let baseline = Baseline::load()?;
    let mut paths: Vec<(Case, Harness)> = cases()
        .into_iter()
        .filter(|c| c.timed)
        .map(|c| {
            let mut h = Harness::new(config())?;
            // Before it is timed, the path must do all its case says: verdict, frame,
            // counter. The check leaves the case's owner table installed.
            c.check(&mut h)?;
            Ok((c, h))
        })
        .collect::<Result<_>>()?;
    let mut samples: Vec<Vec<Sample>> = paths.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for ((c, h), s) in paths.iter_mut().zip(&mut samples) {
            s.push(sample(h, &baseline, c, repeat)?);
        }
    }
    Ok(paths
        .iter()
        .zip(samples)
        .map(|((c, _), s)| CostRow {
            name: c.name.clone(),
            ns: tenth(median(s.iter().map(|x| x.farm).collect())),
            baseline_ns: tenth(median(s.iter().map(|x| x.baseline).collect())),
            fresh: fresh(c),
        })
        .collect())
}

/// Whether `case` is timed one packet per call. The program rewrites an answered
/// request in place into a reply, which it treats otherwise (it passes it), and a
/// repeated BPF_PROG_TEST_RUN feeds the rewritten bytes to the next run: so each run
/// gets a fresh copy, one per call.
fn fresh(case: &Case) -> bool {
    case.verdict == XDP_TX
}

fn tenth(ns: f64) -> f64 {
    (ns * 10.0).round() / 10.0
}

/// One round of one path, in ns per packet.
struct Sample {
    farm: f64,
    baseline: f64,
}

fn sample(h: &mut Harness, baseline: &Baseline, c: &Case, repeat: u32) -> Result<Sample> {
    let (slot, counter) = c.counter;
    let before = h.counters(slot)?[counter];
    let base = ns(baseline.time(&c.packet, repeat)?);
    let (farm, runs) = if fresh(c) {
        // One call per packet adds the call's fixed cost inside the timed window (a
        // clock read, bottom halves off and on) to every packet: measure it on the
        // baseline, one packet per call too, and take it off farm's figure.
        // A call (syscall, packet copy) costs some fifty packets: this many calls take
        // about as long as one repeated run.
        // The two alternate call by call, so drift over the run hits both alike.
        let calls = (repeat / 50).max(1);
        let (mut base_fresh, mut farm_fresh) = (0.0, 0.0);
        for _ in 0..calls {
            base_fresh += ns(baseline.time(&c.packet, 1)?);
            farm_fresh += ns(h.time(&c.packet, 1)?);
        }
        ((farm_fresh - base_fresh) / calls as f64 + base, calls)
    } else {
        (ns(h.time(&c.packet, repeat)?), repeat)
    };
    // Each timed run must have taken the path it is named after, not a cheaper one.
    let took = h.counters(slot)?[counter] - before;
    ensure!(took == runs as u64, "path {}: {took} of {runs} runs took the path", c.name);
    Ok(Sample { farm, baseline: base })
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}
