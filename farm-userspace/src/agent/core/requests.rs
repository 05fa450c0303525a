//! Control requests (`farm status`, `drain`, `undrain`, `weight`, and the per-service
//! ones) and the status they read.
use std::time::Instant;

use super::{Core, Effect, Note, failure_time, lease_time};
use crate::{
    agent::control::{AgentStatus, Reply, Request},
    config::Affinity,
};

impl Core {
    pub(super) fn request(&mut self, now: Instant, req: Request) {
        let (weight, drained) = self.membership.weight();
        let me = self.cfg.cluster.node_id;
        let (events, done) = match req.clone() {
            Request::Status => {
                let status = self.status(now);
                self.out.push(Effect::Reply(Reply::Status(Box::new(status))));
                return;
            }
            Request::Drain => (
                self.membership.set_weight(weight, true),
                format!("node {me} drained: its buckets move to the other nodes"),
            ),
            Request::Undrain => (
                self.membership.set_weight(weight, false),
                format!("node {me} undrained: it takes its share again"),
            ),
            // The runtime keeps the history and answers this itself.
            Request::Events { .. } => unreachable!("the runtime answers requests for events"),
            Request::Weight(w) => (
                self.membership.set_weight(w, drained),
                match w {
                    Some(w) => format!("node {me} has weight {w} in every table"),
                    None => format!("node {me} has the configuration's weights again"),
                },
            ),
            Request::DrainService(name)
            | Request::UndrainService(name)
            | Request::Failback(name) => {
                let Some(i) = self.health.find(&name) else {
                    let names: Vec<&str> =
                        self.cfg.services.iter().map(|s| s.name.as_str()).collect();
                    let why = format!("no service {name:?} here; the services are {names:?}");
                    self.out.push(Effect::Reply(Reply::Refused(why)));
                    return;
                };
                let done = match req {
                    Request::DrainService(_) => {
                        self.health.set_drained(i, true);
                        format!(
                            "service {name} drained on node {me}: its clients go to the other nodes"
                        )
                    }
                    Request::UndrainService(_) => {
                        self.health.set_drained(i, false);
                        format!("service {name} undrained on node {me}: it takes its share again")
                    }
                    _ if self.cfg.services[i].affinity != Affinity::ActiveBackup => {
                        let why = format!(
                            "{name} is not an active-backup service: failback is for those"
                        );
                        self.out.push(Effect::Reply(Reply::Refused(why)));
                        return;
                    }
                    _ => {
                        self.health.ask_failback(i);
                        format!(
                            "service {name} may come back to node {me} (if it is the best node for it)"
                        )
                    }
                };
                // The bits (and the view) follow at the end of this step.
                (vec![], done)
            }
        };
        self.note(Note::Steered { what: done.clone() });
        self.handle(now, events);
        self.out.push(Effect::Reply(Reply::Done(done)));
    }

    pub fn status(&self, now: Instant) -> AgentStatus {
        let (weight, drained) = self.membership.weight();
        let m = &self.membership;
        AgentStatus {
            node_id: self.cfg.cluster.node_id,
            pid: self.pid,
            config: self.path.clone(),
            incarnation: m.incarnation(),
            epoch: m.epoch(),
            phase: m.phase(),
            converged: m.converged(),
            members: m.view().ids(),
            weight,
            drained,
            heartbeat_ms: self.cfg.cluster.heartbeat_ms,
            failure_ms: failure_time(&self.cfg).as_millis() as u64,
            lease_ms: lease_time(&self.cfg).as_millis() as u64,
            held_ports: self.held_ports,
            services: self.health.status(now),
            service_bits: self.membership.services(),
            peers: m.peers(now),
            heartbeats: self.counters.clone(),
            view: m.view().clone(),
            http: self.cfg.http.listen,
            fenced: m.fenced().map(str::to_string),
            quorum: Some(m.quorum_status(now)),
            healed: self.apart.recent().to_vec(),
            handover: self.handover_status(now),
        }
    }
}
