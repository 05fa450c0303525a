//! SIGHUP: the file read again, judged and taken in the way `agent::reload` lays out.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Core, Effect, Note, Reloaded, settings};
use crate::{
    agent::{reload, tables},
    config,
};

impl Core {
    /// SIGHUP's file, or why it could not be read. A bad file, or one that changes what
    /// only a restart can change, is refused and the running configuration stays.
    pub(super) fn reload(&mut self, now: Instant, result: Result<Box<Reloaded>, String>) {
        let Reloaded { config: new, key } = match result {
            Ok(reloaded) => *reloaded,
            Err(why) => return self.note(Note::ReloadRefused { why }),
        };
        if let Some(why) = config::needs_restart(&self.cfg, &new) {
            let why = format!("{}: {why}", self.path.display());
            return self.note(Note::ReloadRefused { why });
        }
        let old = self.cfg.clone();
        let seed_changed = new.cluster.seed != old.cluster.seed;
        let remapped = reload::remapped(&old, &self.rows, &new);
        let kept = match seed_changed {
            true => remapped.clone(),
            false => reload::kept(&old, &self.rows, &new, self.membership.view()),
        };
        let (rules, held_ports) = reload::transition_rules(&self.served, &new);
        self.out.push(Effect::Vips(new.vip_addresses()));
        // No owner first, so no packet meets a new slot's rule with an old slot's row.
        // Handovers move with their slot; those of a slot gone, or of buckets that hold
        // other clients now (a new seed), end with their flows.
        let map = tables::slot_map(&old, &new);
        self.handing = std::mem::take(&mut self.handing)
            .into_iter()
            .filter_map(|((slot, bucket), h)| {
                Some(((map.get(slot).copied().flatten()?, bucket), h))
            })
            .collect();
        self.write_rows(tables::empty(kept.len(), new.cluster.buckets));
        self.out.push(Effect::Rules(rules.clone()));
        self.rules = rules;
        if seed_changed {
            self.out.push(Effect::Seed(new.cluster.seed));
        }
        self.installed = Arc::new(match seed_changed {
            // Under a new seed a bucket holds other clients: nobody keeps its flows.
            true => tables::empty(kept.len(), new.cluster.buckets),
            false => tables::remap(&old, &self.installed, &new),
        });
        if new.cluster.flow_idle_ms != old.cluster.flow_idle_ms {
            self.out.push(Effect::FlowIdle(Duration::from_millis(new.cluster.flow_idle_ms)));
        }
        self.health = self.health.reconfigure(&old, &new);
        self.key = key;
        self.cfg = Arc::new(new);
        self.served.push(self.cfg.clone());
        self.write_rows(kept);
        self.remapped = Some(remapped);
        self.held_ports = held_ports;
        self.note(Note::Reloaded { held_ports, seed_changed });
        let events = self.membership.reconfigure(settings(&self.cfg));
        self.handle(now, events);
    }
}
