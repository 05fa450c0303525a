//! This node's services in the core: checkers' results and the operator's per-service
//! requests go to `Health`; the bits it gives (with the active-backup services this node
//! serves) go to the membership, whose view, and so every node's table, follows them.
use std::time::Instant;

use super::{Core, Note};
use crate::{
    agent::{
        tables,
        wire::{ServiceBits, bit},
    },
    config::Affinity,
};

impl Core {
    /// A checker's result: service `service`, checker `checker` of the file.
    pub(super) fn check(
        &mut self,
        service: usize,
        checker: usize,
        ok: bool,
        reason: String,
        now: Instant,
    ) {
        self.health.result(&self.cfg, service, checker, ok, reason, now);
    }

    /// The active-backup services whose whole table this node holds: it serves them.
    fn serving(&self) -> u64 {
        let (me, vips) = (self.cfg.cluster.node_id, self.cfg.vips.len());
        self.cfg
            .services
            .iter()
            .enumerate()
            .filter(|(_, svc)| svc.affinity == Affinity::ActiveBackup)
            .filter(|(i, _)| {
                self.installed
                    .get(vips + i)
                    .is_some_and(|row| !row.is_empty() && row.iter().all(|&owner| owner == me))
            })
            .fold(0, |bits, (i, _)| bits | 1 << i)
    }

    /// The active-backup services another node serves, for which this node is better
    /// (lower priority, then id) and able: only there does its taking back mean
    /// anything, so only there is it said, and views do not change for nothing when a
    /// failback delay ends.
    fn worth_taking_back(&self) -> u64 {
        let priority = |id: u16| {
            let peer = self.cfg.cluster.peers.iter().find(|p| p.id == id);
            (peer.map_or(u32::MAX, |p| p.priority), id)
        };
        let me = priority(self.cfg.cluster.node_id);
        let view = self.membership.view();
        let members = &view.members;
        (0..self.cfg.services.len())
            .filter(|&i| tables::able(&self.cfg, view, i, me.1))
            .filter(|&i| {
                let serving = members.iter().filter(|m| bit(m.services.active, i));
                serving.map(|m| priority(m.id)).min().is_some_and(|them| me < them)
            })
            .fold(0, |bits, i| bits | 1 << i)
    }

    /// The clock's part of health, then the bits: a change goes to the membership (a new
    /// view) and to the log.
    pub(super) fn services(&mut self, now: Instant) {
        let member = self.membership.owns();
        self.health.tick(&self.cfg, member, now);
        let mut bits = self.health.bits(&self.cfg, self.serving(), now);
        bits.takes_back &= self.worth_taking_back();
        let before = self.membership.services();
        if bits == before {
            return;
        }
        let cfg = self.cfg.clone();
        for (i, svc) in cfg.services.iter().enumerate() {
            let service = svc.name.clone();
            match (bit(before.unhealthy, i), bit(bits.unhealthy, i)) {
                (false, true) => {
                    let reason = self.health.reason(i);
                    self.note(Note::ServiceDown { service, reason });
                }
                (true, false) => self.note(Note::ServiceUp { service }),
                _ => {}
            }
        }
        let events = self.membership.set_services(bits);
        self.handle(now, events);
    }

    /// The services every member of `view` that could serve fails: they serve all the
    /// same, which the operator must hear of.
    pub(super) fn failing_open(&mut self, view: &crate::agent::membership::View) {
        for i in tables::failing_open(&self.cfg, view) {
            let service = self.cfg.services[i].name.clone();
            self.note(Note::FailOpen { service });
        }
    }

    /// This node's bits, as its heartbeats say them.
    pub fn service_bits(&self) -> ServiceBits {
        self.membership.services()
    }
}
