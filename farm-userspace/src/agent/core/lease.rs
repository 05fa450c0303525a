//! The lease and the link: the lease is written wherever the membership allows; a lease
//! that ran out while this node owned buckets means peers may have taken them, so it
//! drops them and rejoins as a new incarnation. Cut off (link down), the node owns
//! nothing and fails nobody; back, it rejoins as a new incarnation.
use std::time::{Duration, Instant};

use super::{Core, Effect, Note, interval};

impl Core {
    /// Keeps the lease within what the membership allows (see
    /// `Membership::lease_deadline`): written at once when that comes sooner than the
    /// lease held, and otherwise only when the lease held would end before half an
    /// interval past the next heartbeat, the latest step that surely comes. A shorter
    /// lease than allowed is safe; writing it at every heartbeat received (each moves it
    /// a little) cost two syscalls per datagram, most of an agent's work at 32 nodes.
    pub(super) fn renew(&mut self, now: Instant) {
        if !self.link_up {
            return;
        }
        if self.membership.owns() && self.lease_until.is_some_and(|until| now >= until) {
            let incarnation = self.new_incarnation(now);
            let reason = format!(
                "the lease ran out: peers stopped acknowledging its heartbeats; rejoining as incarnation {incarnation}"
            );
            let events = self.membership.rejoin(incarnation, reason, false);
            self.handle(now, events);
        }
        let deadline = self.membership.lease_deadline(now);
        let soon = self.next_beat + interval(&self.cfg) / 2;
        let moved = self.lease_until.is_none_or(|until| {
            deadline < until
                || (until < soon && deadline.duration_since(until) >= Duration::from_millis(4))
        });
        if moved {
            self.out.push(Effect::Lease(Some(deadline)));
            self.lease_until = Some(deadline);
        }
    }

    pub(super) fn link(&mut self, now: Instant, up: bool) {
        if up == self.link_up {
            return;
        }
        self.link_up = up;
        let iface = self.cfg.cluster.interface.clone();
        let events = match up {
            false => {
                self.note(Note::LinkDown { iface: iface.clone() });
                self.membership.fence(format!("{iface} is down"))
            }
            true => {
                let incarnation = self.new_incarnation(now);
                self.note(Note::LinkUp { iface: iface.clone(), incarnation });
                self.membership.rejoin(incarnation, format!("{iface} is back up"), true)
            }
        };
        self.handle(now, events);
    }
}
