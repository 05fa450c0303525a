//! What the scenario tests share: a farm started together, settling, who accepts what.
use std::time::{Duration, Instant};

use super::{RELIABLE, Sim, ms, spec::Spec};

/// Fails the test on a broken property, with the seed and the trace that replay it.
pub fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// A farm of `spec` started together, and when it settled.
pub fn start(spec: Spec) -> (Sim, Instant) {
    let n = usize::from(spec.nodes);
    let mut sim = Sim::new(spec, 1, RELIABLE, ms(20));
    let all = move |s: &mut Sim| s.running().count() == n && s.settled();
    let settled = ok(sim.run_until(sim.base + ms(1500), all));
    let settled = settled.unwrap_or_else(|| panic!("{}", sim.failure("not settled")));
    (sim, settled)
}

/// Runs until the farm settles, within `within`.
pub fn settle(sim: &mut Sim, within: Duration) -> Instant {
    let settled = ok(sim.run_until(sim.now + within, Sim::settled));
    settled.unwrap_or_else(|| panic!("{}", sim.failure("not settled")))
}

/// Who accepts each flow now (`None` for nobody; a second acceptor fails the safety check).
pub fn acceptors(sim: &Sim) -> Vec<Option<u16>> {
    let now = sim.now;
    sim.flows.iter().map(|f| sim.nodes.iter().find(|n| n.accepts(f, now)).map(|n| n.id)).collect()
}

pub fn flows_of(sim: &Sim, id: u16) -> usize {
    acceptors(sim).iter().filter(|&&a| a == Some(id)).count()
}
