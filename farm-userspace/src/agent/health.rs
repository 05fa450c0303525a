//! A node's judgement of its own instance of each service: its checkers' results with
//! rise and fall, the hold-down that keeps a flapping service from moving buckets every
//! interval, the operator's drain of one service, and when an active-backup service may
//! come back to this node. Pure: results and requests come in with the time, the
//! services' bits (`ServiceBits`) go out, for the heartbeats and the view.
//!
//! - A service is healthy when every checker passes; a checker passes after `rise`
//!   successes in a row and fails after `fall` failures in a row, once its first
//!   result has said which it is. Until then it fails: a node does not take a service's
//!   clients before it has seen it answer. (The first check runs as the agent starts,
//!   well before it joins the farm, so nodes starting together do not send every client
//!   to the first one whose checker passed `rise` times.)
//! - Withdrawal is at once: clients of a dead application must move. The return is held
//!   down: the first one after a withdrawal is at once, each further one within the
//!   run of instability waits twice as long as the last (from one check interval, at
//!   most `MAX_HOLD`); a minute of staying in resets the run.
//! - An active-backup service may be taken back by this node (see `tables`) once it has
//!   been eligible (in an installed view, healthy, not drained) for the failback delay,
//!   or on `farm failback` with `failback: manual`.
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::wire::ServiceBits;
use crate::config::{Affinity, Config, Failback, Service};

/// The longest a flapping service is held out before it may come back.
pub const MAX_HOLD: Duration = Duration::from_secs(60);
/// In for this long after coming back, a service's run of instability is over.
pub const STABLE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
struct CheckerState {
    passing: bool,
    /// A result came: `passing` says what the checker found, not a default.
    known: bool,
    /// Results in a row that disagree with `passing`.
    streak: u32,
    last: Option<(Instant, bool, String)>,
    /// How often `passing` changed.
    changes: u32,
}

#[derive(Debug, Clone)]
struct ServiceState {
    name: String,
    checkers: Vec<CheckerState>,
    /// Out of the service's table for its health (what the heartbeats say).
    withdrawn: bool,
    /// Withdrawals in the current run of instability.
    flaps: u32,
    /// No return before this.
    hold_until: Option<Instant>,
    changed_at: Option<Instant>,
    drained: bool,
    eligible_since: Option<Instant>,
    failback_asked: bool,
}

/// The services of one node.
#[derive(Debug, Clone)]
pub struct Health {
    services: Vec<ServiceState>,
}

/// One checker, for `farm status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckerStatus {
    pub passing: bool,
    pub last_ok: Option<bool>,
    pub reason: Option<String>,
    pub age_ms: Option<u64>,
    pub changes: u32,
}

/// One service on this node, for `farm status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub healthy: bool,
    /// Out of the table for its health (a healthy one may still be held out).
    pub withdrawn: bool,
    pub drained: bool,
    /// Withdrawals in the current run of instability.
    pub flaps: u32,
    /// Held out for this long yet, after flapping.
    pub held_ms: Option<u64>,
    pub checkers: Vec<CheckerStatus>,
}

impl ServiceState {
    fn new(svc: &Service) -> ServiceState {
        let checker =
            CheckerState { passing: false, known: false, streak: 0, last: None, changes: 0 };
        ServiceState {
            name: svc.name.clone(),
            checkers: vec![checker; svc.health.len()],
            withdrawn: !svc.health.is_empty(),
            flaps: 0,
            hold_until: None,
            changed_at: None,
            drained: false,
            eligible_since: None,
            failback_asked: false,
        }
    }

    fn healthy(&self) -> bool {
        self.checkers.iter().all(|c| c.passing)
    }
}

/// The shortest interval of a service's checkers: the hold-down's step.
fn step(svc: &Service) -> Duration {
    let ms = svc.health.iter().map(|c| c.interval_ms).min().unwrap_or(1000);
    Duration::from_millis(ms)
}

impl Health {
    pub fn new(cfg: &Config) -> Health {
        Health { services: cfg.services.iter().map(ServiceState::new).collect() }
    }

    /// For a reloaded file: a service keeps its state where its name and checkers are
    /// the same, and starts afresh otherwise.
    pub fn reconfigure(&self, old: &Config, new: &Config) -> Health {
        let services = new
            .services
            .iter()
            .map(|svc| {
                let before = old.services.iter().position(|o| o.name == svc.name);
                match before.filter(|&i| old.services[i].health == svc.health) {
                    Some(i) => self.services[i].clone(),
                    None => ServiceState::new(svc),
                }
            })
            .collect();
        Health { services }
    }

    /// Index of the service called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.name == name)
    }

    /// A checker's result.
    pub fn result(
        &mut self,
        cfg: &Config,
        service: usize,
        checker: usize,
        ok: bool,
        reason: String,
        now: Instant,
    ) {
        let (Some(svc), Some(state)) = (cfg.services.get(service), self.services.get_mut(service))
        else {
            return;
        };
        let (Some(spec), Some(c)) = (svc.health.get(checker), state.checkers.get_mut(checker))
        else {
            return;
        };
        c.last = Some((now, ok, reason));
        if !c.known {
            (c.passing, c.known) = (ok, true);
            return self.judge(cfg, service, now);
        }
        c.streak = if ok == c.passing { 0 } else { c.streak + 1 };
        let needed = if c.passing { spec.fall } else { spec.rise };
        if c.streak >= needed {
            c.passing = ok;
            c.streak = 0;
            c.changes += 1;
        }
        self.judge(cfg, service, now);
    }

    /// Withdraws a service that turned unhealthy at once; lets a healthy one back in
    /// once its hold is over.
    fn judge(&mut self, cfg: &Config, service: usize, now: Instant) {
        let svc = &cfg.services[service];
        let s = &mut self.services[service];
        match (s.healthy(), s.withdrawn) {
            (false, false) => {
                s.withdrawn = true;
                s.flaps += 1;
                let hold = match s.flaps {
                    0 | 1 => Duration::ZERO,
                    n => step(svc).saturating_mul(1 << (n - 2).min(16)).min(MAX_HOLD),
                };
                s.hold_until = Some(now + hold);
                s.changed_at = Some(now);
            }
            (true, true) if s.hold_until.is_none_or(|until| now >= until) => {
                s.withdrawn = false;
                s.changed_at = Some(now);
            }
            (true, false) if s.changed_at.is_some_and(|at| now >= at + STABLE) => s.flaps = 0,
            _ => {}
        }
    }

    /// `farm drain --service` / `undrain --service` on this node.
    pub fn set_drained(&mut self, service: usize, drained: bool) {
        self.services[service].drained = drained;
    }

    /// `farm failback SERVICE` on this node.
    pub fn ask_failback(&mut self, service: usize) {
        self.services[service].failback_asked = true;
    }

    /// The clock's part: holds that end, failback delays that pass, runs that settle.
    /// `member`: this node is in an installed view.
    pub fn tick(&mut self, cfg: &Config, member: bool, now: Instant) {
        for i in 0..self.services.len() {
            self.judge(cfg, i, now);
            let s = &mut self.services[i];
            let eligible = member && !s.withdrawn && !s.drained;
            match eligible {
                true => s.eligible_since = s.eligible_since.or(Some(now)),
                false => (s.eligible_since, s.failback_asked) = (None, false),
            }
        }
    }

    /// When the clock next changes something here, after `now`.
    pub fn next_deadline(&self, cfg: &Config, now: Instant) -> Option<Instant> {
        self.services
            .iter()
            .zip(&cfg.services)
            .flat_map(|(s, svc)| {
                let hold = s.hold_until.filter(|_| s.withdrawn && s.healthy());
                let failback = match (svc.affinity, svc.failback) {
                    (Affinity::ActiveBackup, Failback::Auto { delay_ms }) => {
                        s.eligible_since.map(|at| at + Duration::from_millis(delay_ms))
                    }
                    _ => None,
                };
                let stable =
                    s.changed_at.filter(|_| s.flaps > 0 && !s.withdrawn).map(|at| at + STABLE);
                [hold, failback, stable]
            })
            .flatten()
            .filter(|&at| at > now)
            .min()
    }

    /// What the heartbeats say of this node's services; `active`: the active-backup
    /// services it serves.
    pub fn bits(&self, cfg: &Config, active: u64, now: Instant) -> ServiceBits {
        let mut bits = ServiceBits { active, ..ServiceBits::default() };
        for (i, (s, svc)) in self.services.iter().zip(&cfg.services).enumerate() {
            let b = 1u64 << i;
            bits.unhealthy |= b * u64::from(s.withdrawn);
            bits.drained |= b * u64::from(s.drained);
            let takes_back = match svc.failback {
                Failback::Auto { delay_ms } => {
                    s.eligible_since.is_some_and(|at| now >= at + Duration::from_millis(delay_ms))
                }
                Failback::Manual => s.failback_asked,
            };
            let active_backup = svc.affinity == Affinity::ActiveBackup;
            bits.takes_back |=
                b * u64::from(active_backup && takes_back && s.eligible_since.is_some());
        }
        bits
    }

    /// Why service `service` fails: its first failing checker's last word.
    pub fn reason(&self, service: usize) -> String {
        let s = &self.services[service];
        let failing = s.checkers.iter().enumerate().find(|(_, c)| !c.passing);
        match failing {
            Some((i, c)) => match &c.last {
                Some((_, _, reason)) => format!("checker {i}: {reason}"),
                None => format!("checker {i}: no result yet"),
            },
            None => "held out after flapping".into(),
        }
    }

    pub fn status(&self, now: Instant) -> Vec<ServiceStatus> {
        let age = |at: Instant| now.saturating_duration_since(at).as_millis() as u64;
        self.services
            .iter()
            .map(|s| ServiceStatus {
                name: s.name.clone(),
                healthy: s.healthy(),
                withdrawn: s.withdrawn,
                drained: s.drained,
                flaps: s.flaps,
                held_ms: s
                    .hold_until
                    .filter(|&until| s.withdrawn && until > now)
                    .map(|until| (until - now).as_millis() as u64),
                checkers: s
                    .checkers
                    .iter()
                    .map(|c| CheckerStatus {
                        passing: c.passing,
                        last_ok: c.last.as_ref().map(|(_, ok, _)| *ok),
                        reason: c.last.as_ref().map(|(_, _, r)| r.clone()),
                        age_ms: c.last.as_ref().map(|(at, _, _)| age(*at)),
                        changes: c.changes,
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(checker: &str, failback: &str) -> Config {
        let text = format!(
            "cluster:\n  name: t\n  node_id: 1\n  interface: eth0\n  peers:\n    - {{id: 1, address: \"198.18.0.1:7400\"}}\nvips:\n  - address: 198.18.0.100\nservices:\n  - name: web\n    vip: 198.18.0.100\n    protocol: tcp\n    ports: [80]\n    {failback}\n    health:\n      - {{tcp: \"127.0.0.1:80\", interval_ms: 100, {checker}}}\n"
        );
        crate::config::parse(&text, "t.yaml").unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rise_and_fall_count_results_in_a_row() {
        let cfg = config("rise: 2, fall: 2", "affinity: client-ip");
        let (mut h, t0) = (Health::new(&cfg), Instant::now());
        let unhealthy = |h: &Health, at| h.bits(&cfg, 0, at).unhealthy;
        assert_eq!(unhealthy(&h, t0), 1, "no result yet: not in the table");
        h.result(&cfg, 0, 0, false, "refused".into(), t0);
        assert_eq!(unhealthy(&h, t0), 1, "the first result decides");
        h.result(&cfg, 0, 0, true, "up".into(), t0 + ms(50));
        assert_eq!(unhealthy(&h, t0), 1, "one success of two");
        h.result(&cfg, 0, 0, true, "up".into(), t0 + ms(100));
        assert_eq!(unhealthy(&h, t0), 0);
        h.result(&cfg, 0, 0, false, "refused".into(), t0 + ms(200));
        assert_eq!(unhealthy(&h, t0), 0, "one failure of two");
        h.result(&cfg, 0, 0, true, "up".into(), t0 + ms(300));
        h.result(&cfg, 0, 0, false, "refused".into(), t0 + ms(400));
        h.result(&cfg, 0, 0, false, "refused".into(), t0 + ms(500));
        assert_eq!(unhealthy(&h, t0), 1);
        assert_eq!(h.reason(0), "checker 0: refused");
        assert_eq!(h.status(t0 + ms(500))[0].checkers[0].changes, 2);
    }

    #[test]
    fn a_flapping_checker_moves_the_service_a_few_times_not_every_interval() {
        let cfg = config("rise: 1, fall: 1", "affinity: client-ip");
        let (mut h, t0) = (Health::new(&cfg), Instant::now());
        let mut moves = 0;
        let mut before = h.bits(&cfg, 0, t0).unhealthy;
        // Ten seconds of a checker that passes and fails by turns.
        for i in 0..100u64 {
            let at = t0 + ms(100 * i);
            h.result(&cfg, 0, 0, i % 2 == 0, "flip".into(), at);
            h.tick(&cfg, true, at);
            let now = h.bits(&cfg, 0, at).unhealthy;
            moves += u32::from(now != before);
            before = now;
        }
        // Undamped, 100 results would move it 99 times.
        assert!((6..=16).contains(&moves), "{moves} moves");
        let s = &h.status(t0 + ms(9900))[0];
        assert!(s.flaps >= 4, "{s:?}");
    }

    #[test]
    fn failback_comes_after_the_delay_or_on_request() {
        let cfg = config("rise: 1, fall: 1", "affinity: active-backup\n    failback_delay_ms: 500");
        let (mut h, t0) = (Health::new(&cfg), Instant::now());
        h.result(&cfg, 0, 0, true, "up".into(), t0);
        h.tick(&cfg, true, t0);
        assert_eq!(h.bits(&cfg, 0, t0 + ms(499)).takes_back, 0);
        assert_eq!(h.bits(&cfg, 0, t0 + ms(500)).takes_back, 1);
        assert_eq!(h.next_deadline(&cfg, t0), Some(t0 + ms(500)));
        assert_eq!(h.next_deadline(&cfg, t0 + ms(500)), None, "passed: nothing to wake for");
        // Out of the farm (fenced), the wait starts over.
        h.tick(&cfg, false, t0 + ms(600));
        assert_eq!(h.bits(&cfg, 0, t0 + ms(600)).takes_back, 0);
        let manual = config("rise: 1, fall: 1", "affinity: active-backup\n    failback: manual");
        let mut h = Health::new(&manual);
        h.result(&manual, 0, 0, true, "up".into(), t0);
        h.tick(&manual, true, t0);
        assert_eq!(h.bits(&manual, 0, t0 + ms(60_000)).takes_back, 0);
        h.ask_failback(0);
        assert_eq!(h.bits(&manual, 0, t0 + ms(60_000)).takes_back, 1);
    }
}
