//! Tables: asked of the runtime when the view changes, kept for views that come back,
//! and installed in the membership's two phases.
use std::{sync::Arc, time::Instant};

use farm_common::NO_OWNER;

use super::{Core, Effect, KEPT_TABLES, Note};
use crate::{
    agent::{
        membership::View,
        tables::{self, Rows},
    },
    rules,
};

impl Core {
    /// The table of the view with `digest`, if computed lately.
    pub(super) fn table(&self, digest: u64) -> Option<Arc<Rows>> {
        self.tables.iter().find(|(d, _)| *d == digest).map(|(_, rows)| rows.clone())
    }

    /// Asks for the table of the view the membership holds, unless it is known.
    pub(super) fn ask_table(&mut self, now: Instant) {
        let digest = self.membership.digest();
        match self.table(digest) {
            Some(rows) => self.ready(now, digest, rows),
            None => {
                let view = self.membership.view().clone();
                self.out.push(Effect::Compute { config: self.cfg.clone(), view });
            }
        }
    }

    /// The table of the membership's view is here: its phases may go on, once the
    /// handovers it starts have learned (`learn`).
    pub(super) fn ready(&mut self, now: Instant, digest: u64, rows: Arc<Rows>) {
        self.ready = Some((digest, rows.clone()));
        match self.learn(now, &rows) {
            Some(until) => self.learning = Some((digest, until)),
            None => self.release_when_ready(now, digest),
        }
    }

    /// Tells the membership the table of `digest` is ready, if it still holds that view.
    pub(super) fn release_when_ready(&mut self, now: Instant, digest: u64) {
        self.learning = None;
        if digest == self.membership.digest() {
            let events = self.membership.tables_ready(digest);
            self.handle(now, events);
        }
    }

    pub(super) fn computed(&mut self, now: Instant, digest: u64, rows: Arc<Rows>) {
        if self.table(digest).is_none() {
            if self.tables.len() == KEPT_TABLES {
                self.tables.pop_front();
            }
            self.tables.push_back((digest, rows.clone()));
        }
        if digest != self.membership.digest() {
            return;
        }
        // Since a reload this node held only the rows the new file leaves alone: now it
        // knows which buckets the new table leaves with their owner.
        if let Some(remapped) = &self.remapped {
            let kept = tables::release(remapped, &rows);
            self.write_rows(kept);
        }
        self.ready(now, digest, rows);
    }

    /// The table of `view`, which the membership only releases or installs once ready.
    pub(super) fn table_of(&self, view: &View) -> Arc<Rows> {
        match &self.ready {
            Some((digest, rows)) if *digest == view.digest() => rows.clone(),
            _ => unreachable!("the membership waits for its view's table"),
        }
    }

    /// Writes `rows` with the handovers as they stand, if either changed.
    pub(super) fn write_rows(&mut self, rows: Rows) {
        if rows != *self.rows || *self.moving() != *self.written {
            self.push_rows(rows);
        }
    }

    pub(super) fn push_rows(&mut self, rows: Rows) {
        self.owned = tables::owned(&rows, self.cfg.cluster.node_id) as u32;
        self.rows = Arc::new(rows);
        self.written = self.moving();
        self.out.push(Effect::Rows(self.rows.clone(), self.written.clone()));
    }

    pub(super) fn install(&mut self, epoch: u64, view: &View) {
        let me = self.cfg.cluster.node_id;
        let next = self.table_of(view);
        self.remapped = None;
        // Every node holds this file now: held ports go to their service. Before the
        // rows, which only own what every node agrees on.
        let rules = rules::rules(&self.cfg);
        if rules != self.rules {
            self.out.push(Effect::Rules(rules.clone()));
            self.rules = rules;
            let ports = std::mem::take(&mut self.held_ports);
            self.note(Note::TransitionDone { ports });
        }
        self.served = vec![self.cfg.clone()];
        let moved = tables::moved(&self.installed, &next);
        let total = next.iter().map(Vec::len).sum();
        self.write_rows(next.as_ref().clone());
        let (members, owned) = (view.ids(), tables::owned(&next, me));
        self.note(Note::Installed { epoch, members, moved, owned, total });
        if next.iter().flatten().all(|&o| o == NO_OWNER) {
            self.note(Note::NobodyOwns);
        }
        self.failing_open(view);
        self.installed = next;
        self.installed_view = view.members.clone();
        self.joined = true;
    }
}
