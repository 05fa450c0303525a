//! Random runs: a random farm on a random network through random disturbances, then
//! healed. The test suite runs a few thousand seeds; `cargo xtask soak --runs N` runs as
//! many as asked.
use std::time::Duration;

use farm_userspace::agent::control::Request;

use super::{
    Cut, Disturbance, FAILURE, INTERVAL, Net, Run, Sim, ms,
    spec::{self, Quorum, Spec},
};

/// What one run found: how long the farm took to settle once healed, and the double
/// acceptance that loss cutting two nodes apart explains, if any.
pub struct Outcome {
    pub settled_in: Duration,
    pub cut_apart: Option<String>,
    pub disturbances: usize,
    /// A partition was among the disturbances.
    pub partitioned: bool,
    /// Packets taken by two nodes that disagreed on their bucket's move, or UDP
    /// datagrams two nodes learned differently (`traffic`).
    pub overtaken: u64,
}

impl Sim {
    /// A disturbance that fits the state of a random node, if any.
    pub fn random_disturbance(&mut self) -> Option<Disturbance> {
        // A partition, now and then: two random sides, the witness with either or both.
        if self.rng.chance(100) {
            return Some(match self.cut {
                Some(_) => Disturbance::Heal,
                None => Disturbance::Cut(self.random_cut()),
            });
        }
        if self.spec.quorum == Quorum::Witness && self.rng.chance(40) {
            return Some(Disturbance::Witness(self.witness.is_none()));
        }
        let id = 1 + self.rng.below(u64::from(self.spec.nodes)) as u16;
        let (weight, drained) = self.core_weight(id);
        match self.node(id).run {
            Run::Down => Some(Disturbance::Restart(id)),
            Run::Stalled => None,
            Run::Running => Some(match self.rng.below(13) {
                11 | 12 => {
                    let service = spec::CHECKED[self.rng.below(2) as usize];
                    let up = self.node(id).apps_down >> service & 1 == 1;
                    Disturbance::App(id, service, up)
                }
                0 => Disturbance::Kill(id),
                1 => Disturbance::Stall(id, ms(150 + self.rng.below(451))),
                // Longer than the lease and than the failure time.
                2 => Disturbance::Stall(id, ms(1000 + self.rng.below(1501))),
                3 => Disturbance::Leave(id),
                4 => Disturbance::Steer(id, Request::Weight(Some(self.rng.below(4) as u32))),
                5 => match drained {
                    true => Disturbance::Steer(id, Request::Undrain),
                    false => Disturbance::Steer(id, Request::Drain),
                },
                6 if weight.is_some() => Disturbance::Steer(id, Request::Weight(None)),
                6 | 7 => {
                    let spec = self.spec.changed(&mut self.rng);
                    Disturbance::Reload(Box::new(spec), ms(self.rng.below(800)))
                }
                _ if self.up(id) => Disturbance::LinkDown(id),
                _ => Disturbance::LinkUp(id),
            }),
        }
    }

    fn random_cut(&mut self) -> Cut {
        let side = (1..=self.spec.nodes).filter(|_| self.rng.chance(500)).collect();
        let witness = [None, Some(true), Some(false)][self.rng.below(3) as usize];
        Cut { side, witness }
    }

    fn core_weight(&self, id: u16) -> (Option<u32>, bool) {
        self.node(id).core.as_ref().map_or((None, false), |c| c.membership().weight())
    }
}

/// A random farm through random disturbances, then healed.
pub fn random_case(seed: u64) -> Result<Outcome, String> {
    let mut rng = super::rng::Rng::new(seed ^ 0x5eed);
    let n = 2 + rng.below(5) as u16;
    // A third of the runs without loss; a third of each with a quorum, and a third with
    // a quorum and a witness, where no double acceptance has an excuse.
    let loss = if seed.is_multiple_of(3) { 0 } else { 1 + rng.below(300) };
    let quorum = [Quorum::None, Quorum::Majority, Quorum::Witness][(seed / 3 % 3) as usize];
    let net = Net { loss, dup: rng.below(51) };
    let spec = Spec { quorum, ..Spec::new(n) };
    let mut sim = Sim::new(spec, seed, net, ms(rng.below(400)));
    sim.table_delay = ms(rng.below(40));
    sim.trace.push(format!("{n} nodes, {quorum:?}, {net:?}, tables within {:?}", sim.table_delay));
    let mut at = sim.base + ms(500 + rng.below(700));
    let (mut disturbances, mut partitioned) = (0, false);
    for _ in 0..1 + rng.below(6) {
        sim.run_until(at, |_| false)?;
        if let Some(d) = sim.random_disturbance() {
            partitioned |= matches!(d, Disturbance::Cut(_));
            sim.disturb(d)?;
            disturbances += 1;
        }
        at += ms(rng.below(700));
    }
    // Heal: no more loss or partition, every link up, every application answering, the
    // witness running; stalled nodes resume and reloads arrive on their own.
    sim.net.loss = 0;
    sim.disturb(Disturbance::Heal)?;
    if quorum == Quorum::Witness && sim.witness.is_none() {
        sim.disturb(Disturbance::Witness(true))?;
    }
    for id in 1..=n {
        // With a quorum, a farm may rightly wait for a dead voter (a tie it may hold):
        // the scenarios in `simulation.rs` show what serves without one; here every
        // node comes back.
        if quorum != Quorum::None && sim.node(id).run == Run::Down {
            sim.disturb(Disturbance::Restart(id))?;
        }
        if !sim.up(id) {
            sim.disturb(Disturbance::LinkUp(id))?;
        }
        for service in spec::CHECKED {
            if sim.node(id).apps_down >> service & 1 == 1 {
                sim.disturb(Disturbance::App(id, service, true))?;
            }
        }
    }
    let healed = sim.now;
    // Loss up to the heal leaves leases bounded by old acknowledgements for up to a
    // failure time, and peers that did not hear a node meanwhile may still fail it: the
    // farm counts as settled from then on.
    sim.run_until(healed + FAILURE + INTERVAL, |_| false)?;
    // Checks must pass `rise` times, a flapping service may be held out for a while,
    // and an active-backup service waits for its failback.
    let settled = sim.run_until(healed + ms(10_000), Sim::settled)?;
    let settled = settled.ok_or_else(|| sim.failure("not settled 10 s after healing"))?;
    sim.run_for(ms(500))?;
    if !sim.settled() {
        return Err(sim.failure("settled, then unsettled without a disturbance"));
    }
    let cut_apart = sim.loss_overlap.map(|what| format!("seed {seed}, {n} nodes: {what}"));
    let overtaken = sim.traffic.disagreed + sim.traffic.relearned;
    Ok(Outcome { settled_in: settled - healed, cut_apart, disturbances, partitioned, overtaken })
}
