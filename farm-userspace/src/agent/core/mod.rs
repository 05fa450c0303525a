//! The agent's decisions, with no I/O: one state machine that the runtime (`runtime`:
//! sockets, maps, the clock) and the deterministic simulation (farm-tests' `sim`) both
//! drive, so the simulation tests the code that ships.
//!
//! Each `step` takes the time and what arrived since the last one (datagrams, the link's
//! state, a control request, a reloaded file, a computed table) and returns what to do,
//! in order: datagrams to send, rows and rules to write, the lease to set, tables to
//! compute, a reply, notes to log. Within a step, inputs come first and the clock last,
//! so a deadline is never acted on while a datagram that would have met it waits.
//!
//! What it decides besides the membership (`membership`):
//! - Stalls: a step later than the lease after the previous one means the agent did not
//!   run (SIGSTOP, a hung machine) for longer than peers wait before failing it. It
//!   starts over as a new incarnation remembering no peer, so it fails nobody on a
//!   deadline that passed while it slept, and waits a failure time to hear the farm.
//! - The lease: written wherever the membership allows; a lease that ran out while this
//!   node owned buckets means peers may have taken them, so it drops them and rejoins
//!   as a new incarnation.
//! - The link: down, it owns nothing and stops failing peers (cut off, it would fail
//!   them all); up, it rejoins as a new incarnation.
//! - Tables: asked of the runtime (`Effect::Compute`) when the view changes, computed
//!   off the loop; the two-phase install waits for them.
//! - Reloads: see `reload`.
use farm_common::{HANDOVER_RELEASED, HANDOVER_TAKING};
use std::{
    collections::{BTreeSet, VecDeque},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

mod handover;
mod install;
mod lease;
mod reconfigure;
mod requests;
mod services;

use super::{
    apart::Apart,
    control::{HeartbeatCounters, Reply, Request},
    health::Health,
    membership::{self, Change, Event, Membership, Refused, Settings, View},
    note::Note,
    tables::{self, Rows},
    wire::{Heartbeat, Kind, WireError},
};
use crate::{
    config::{self, Config},
    handover::{Kept, Moving, Timed},
    rules::{self, Rules},
    witness::wire::{self as ballot, Ballot},
};

/// Leave datagrams sent on a clean stop: UDP may lose one.
pub const LEAVE_COPIES: usize = 3;
/// Computed tables kept: the current view's, and those of views that may come back.
const KEPT_TABLES: usize = 4;

/// What arrived since the last step.
#[derive(Debug)]
pub enum Input {
    /// A datagram on the heartbeat port, who sent it (for the log), and when it came (a
    /// farm that reads heartbeats on a grid reads them late; a peer's silence, and how
    /// long it bounds the lease, count from when its heartbeat came).
    Datagram(Vec<u8>, SocketAddr, Instant),
    /// The link's state now (IFF_RUNNING).
    Link(bool),
    /// A control request, answered by an `Effect::Reply` of the same step.
    Request(Request),
    /// The file read again on SIGHUP, with its key, or why it could not be read.
    Reload(Result<Box<Reloaded>, String>),
    /// The table asked for by an `Effect::Compute`, for the view with this digest.
    Table { digest: u64, rows: Arc<Rows> },
    /// A health checker's result: checker `checker` of service `service` of the file,
    /// and what it saw.
    Check { service: usize, checker: usize, ok: bool, reason: String },
    /// The flows this node keeps on the buckets it handed over, as the runtime counted
    /// them (its sockets, the UDP flows the program learned), with the handovers (as
    /// `Core::handovers` gave them) they were counted on.
    Kept(Arc<Moving>, Kept),
}

#[derive(Debug)]
pub struct Reloaded {
    pub config: Config,
    pub key: Vec<u8>,
}

/// What the runtime must do, in order.
#[derive(Debug, Clone)]
pub enum Effect {
    Send {
        to: u16,
        address: SocketAddr,
        datagram: Vec<u8>,
    },
    /// An ask for the witness's vote (`crate::witness`), from the heartbeat socket.
    Ask {
        address: SocketAddr,
        datagram: Vec<u8>,
    },
    /// The owner table the data plane must hold from now, and its buckets in handover.
    Rows(Arc<Rows>, Arc<Moving>),
    /// How long a UDP flow learned on a bucket in handover lives without a datagram.
    FlowIdle(Duration),
    /// The VIP and port rules the data plane must hold from now.
    Rules(Rules),
    /// The seed the data plane must hash clients with from now.
    Seed(u32),
    /// The lease's end; `None` ends it now.
    Lease(Option<Instant>),
    /// The VIPs the host must hold on `lo`.
    Vips(Vec<IpAddr>),
    /// Tell the segment these VIPs are at the cluster MAC (a gratuitous ARP, an
    /// unsolicited neighbour advertisement), after the farm's members changed: a client
    /// that cached another MAC for a VIP (keepalived #166) updates its entry now.
    Announce(Vec<IpAddr>),
    /// Compute `view`'s table under `config`, off the loop, and give it back as an
    /// `Input::Table`.
    Compute {
        config: Arc<Config>,
        view: View,
    },
    Reply(Reply),
    Note(Note),
}

/// When the VIPs are announced a second time after a change of members.
const ANNOUNCE_AGAIN: Duration = Duration::from_secs(1);

/// The fewest heartbeat intervals between two heartbeats to every peer, a fifth: a view
/// change or a phase reached goes out early, but a burst of them (at N nodes, a change
/// of members makes every node move its epoch and phase many times within a round trip)
/// goes out as one heartbeat, not one per datagram that moved it.
const EARLY_DIVISOR: u32 = 5;

pub struct Core {
    cfg: Arc<Config>,
    /// The files peers may serve with: the one of this node's last install, and each it
    /// reloaded since (peers may have installed one of those without this node getting
    /// as far). A reload holds every port whose service any of them gives otherwise.
    served: Vec<Arc<Config>>,
    key: Vec<u8>,
    path: PathBuf,
    pid: u32,
    membership: Membership,
    counters: HeartbeatCounters,
    /// This node's own instance of each service.
    health: Health,
    /// What the data plane holds: its rows, its rules.
    rows: Arc<Rows>,
    rules: Rules,
    /// The rows of the last install, to count what the next one moves.
    installed: Arc<Rows>,
    /// The tables last computed, newest last: (view digest, rows). Views come back (a
    /// peer failed and heard again, a drain undone), and a table asked for may never
    /// come (the runtime computes only the newest it was asked for), so every one that
    /// comes is kept a while.
    tables: VecDeque<(u64, Arc<Rows>)>,
    /// The table the membership was told is ready: its current view's.
    ready: Option<(u64, Arc<Rows>)>,
    /// Since a reload and until the next release, install or fence: the rows this node
    /// held, laid out for the new file, to keep what the new table leaves them.
    remapped: Option<Rows>,
    /// Ports in the limbo slot since a reload.
    held_ports: usize,
    /// The lease as the data plane holds it.
    lease_until: Option<Instant>,
    last_step: Instant,
    link_up: bool,
    next_beat: Instant,
    /// Something changed since the last heartbeat to every peer that they wait on.
    send_now: bool,
    /// When the last heartbeat to every peer went out.
    sent_all: Instant,
    /// Peers whose heartbeat this step answers at once, unless a heartbeat to all goes
    /// out: the next periodic one would come too late for their lease.
    answer: BTreeSet<u16>,
    /// Peers this step asks for an answer at once, a heartbeat to all or not: their
    /// newest acknowledgement of this node is stale (`Membership::acked_stale`).
    ask: BTreeSet<u16>,
    /// A moment and the wall clock then (µs): new incarnations count on from it.
    clock: (Instant, u64),
    /// The view last asked the witness about: a new one is asked about at once.
    asked: Option<Vec<u16>>,
    /// Buckets this node owns in the rows last written.
    owned: u32,
    /// Buckets in handover and when each ends (`crate::handover`).
    handing: Timed,
    /// The members of the last install, with their incarnations.
    installed_view: Vec<membership::ViewMember>,
    /// The handovers as last written to the data plane.
    written: Arc<Moving>,
    /// Whether this node installed a table since it last owned nothing (it started, or
    /// was fenced): else it cannot know who held the buckets it takes.
    joined: bool,
    /// The view whose table is ready, and when its handovers have learned long enough
    /// for this node to release the old table.
    learning: Option<(u64, Instant)>,
    /// The flows this node keeps on the buckets it handed over, last counted (`None`
    /// since those buckets changed, until counted again).
    kept: Option<Kept>,
    /// What this node did while apart from peers, to tell them once together again.
    apart: Apart,
    /// The members of the last install, and when to announce the VIPs a second time
    /// (one lost frame must not leave a client stale).
    announced: (Vec<u16>, Option<Instant>),
    out: Vec<Effect>,
}

fn settings(cfg: &Config) -> Settings {
    Settings {
        me: cfg.cluster.node_id,
        peers: cfg.cluster.peers.iter().map(|p| p.id).collect(),
        failure: failure_time(cfg),
        config: config::shared_digest(cfg),
        cluster: config::cluster_id(&cfg.cluster.name),
        quorum: cfg.cluster.quorum,
        witness: cfg.cluster.witness,
    }
}

pub fn interval(cfg: &Config) -> Duration {
    Duration::from_millis(cfg.cluster.heartbeat_ms)
}

pub fn failure_time(cfg: &Config) -> Duration {
    interval(cfg) * cfg.cluster.failure_threshold
}

pub fn lease_time(cfg: &Config) -> Duration {
    membership::longest_lease(failure_time(cfg))
}

/// What identifies the agent in `farm status`.
pub struct Identity {
    pub path: PathBuf,
    pub pid: u32,
}

impl Core {
    /// A core for `cfg`, started at `now`, when the wall clock reads `wall_us`
    /// microseconds (its first incarnation: a restarted agent's is always larger). It
    /// owns nothing until the farm agrees on a view: the data plane may hold a static
    /// table, or a dead agent's.
    pub fn start(
        cfg: Config,
        key: Vec<u8>,
        id: Identity,
        now: Instant,
        wall_us: u64,
    ) -> (Core, Vec<Effect>) {
        let slots = rules::rules(&cfg).slots.len();
        let empty = Arc::new(tables::empty(slots, cfg.cluster.buckets));
        let health = Health::new(&cfg);
        let flow_idle = Duration::from_millis(cfg.cluster.flow_idle_ms);
        let cfg = Arc::new(cfg);
        let mut core = Core {
            health,
            membership: Membership::new(settings(&cfg), wall_us, now),
            served: vec![cfg.clone()],
            rules: rules::rules(&cfg),
            cfg,
            key,
            path: id.path,
            pid: id.pid,
            counters: HeartbeatCounters::default(),
            rows: empty.clone(),
            installed: empty.clone(),
            tables: VecDeque::new(),
            ready: None,
            remapped: None,
            held_ports: 0,
            lease_until: None,
            last_step: now,
            link_up: true,
            next_beat: now,
            send_now: false,
            sent_all: now,
            answer: BTreeSet::new(),
            ask: BTreeSet::new(),
            clock: (now, wall_us),
            asked: None,
            owned: 0,
            handing: Timed::default(),
            installed_view: vec![],
            written: Arc::new(Moving::new()),
            joined: false,
            kept: None,
            learning: None,
            apart: Apart::default(),
            announced: (vec![], None),
            out: vec![
                Effect::Rows(empty, Arc::new(Moving::new())),
                Effect::Lease(None),
                Effect::FlowIdle(flow_idle),
            ],
        };
        core.ask_table(now);
        let effects = std::mem::take(&mut core.out);
        (core, effects)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The rows the data plane holds, as last written.
    pub fn rows(&self) -> &Arc<Rows> {
        &self.rows
    }

    /// When the core must step next if nothing arrives: its next heartbeat (an early
    /// one if due), or the moment a peer would fail (not while the link is down: cut
    /// off, it fails nobody).
    pub fn next_wake(&self) -> Instant {
        let deadline = self.membership.next_deadline().filter(|_| self.link_up);
        let health = self.health.next_deadline(&self.cfg, self.last_step);
        let handover = self.next_handover_end();
        let learning = self.learning.map(|(_, until)| until);
        let early = (self.send_now && self.link_up).then(|| self.early_at());
        [deadline, health, handover, learning, early]
            .into_iter()
            .flatten()
            .fold(self.next_beat, Instant::min)
    }

    /// Whether nothing is under way: the farm agrees on one view, installed, and this
    /// node has nothing waiting to go out or to learn. Heartbeats may then be read less
    /// often (the runtime's grid).
    pub fn quiet(&self) -> bool {
        self.link_up && !self.send_now && self.learning.is_none() && self.membership.settled()
    }

    /// The soonest a heartbeat may go out ahead of the interval.
    fn early_at(&self) -> Instant {
        self.sent_all + interval(&self.cfg) / EARLY_DIVISOR
    }

    /// The runtime is set up (the VIPs on the host, its sockets open) and steps from
    /// `now`: however long its setup took, that was no stall, as this node has owned
    /// and sent nothing yet. Counted as one, it made a slow start rejoin at once.
    pub fn begin(&mut self, now: Instant) {
        self.last_step = now;
    }

    /// Takes what arrived, then acts on the clock.
    pub fn step(&mut self, now: Instant, inputs: Vec<Input>) -> Vec<Effect> {
        self.apart.step(now, self.owned, self.lease_until);
        let gap = now.saturating_duration_since(self.last_step);
        self.last_step = now;
        if gap > lease_time(&self.cfg) {
            let incarnation = self.new_incarnation(now);
            self.note(Note::Stalled { gap, incarnation });
            let reason = format!("the agent stalled for {} ms", gap.as_millis());
            let events = self.membership.restart(incarnation, reason);
            self.handle(now, events);
        }
        for input in inputs {
            match input {
                Input::Datagram(bytes, from, came) => self.datagram(now, &bytes, from, came),
                Input::Link(up) => self.link(now, up),
                Input::Request(req) => self.request(now, req),
                Input::Reload(result) => self.reload(now, result),
                Input::Table { digest, rows } => self.computed(now, digest, rows),
                Input::Check { service, checker, ok, reason } => {
                    self.check(service, checker, ok, reason, now)
                }
                Input::Kept(moving, kept) => self.kept(&moving, kept),
            }
        }
        self.tick(now);
        std::mem::take(&mut self.out)
    }

    /// Leaves the farm: the lease ends first, so no moment has this node and a peer
    /// owning one bucket, then the peers are told, and take its buckets at once.
    pub fn leave(&mut self, now: Instant) -> Vec<Effect> {
        self.out.push(Effect::Lease(None));
        self.lease_until = None;
        for _ in 0..LEAVE_COPIES {
            self.send_all(now, Kind::Leave);
        }
        std::mem::take(&mut self.out)
    }

    fn note(&mut self, note: Note) {
        self.out.push(Effect::Note(note));
    }

    /// The wall clock now in microseconds, and always past the current incarnation.
    fn new_incarnation(&self, now: Instant) -> u64 {
        let (at, wall) = self.clock;
        let elapsed = now.saturating_duration_since(at).as_micros() as u64;
        (wall + elapsed).max(self.membership.incarnation() + 1)
    }

    fn tick(&mut self, now: Instant) {
        let beat = now >= self.next_beat;
        if beat {
            if self.link_up {
                self.send_all(now, Kind::Alive);
            }
            self.next_beat = now + interval(&self.cfg);
        }
        if self.link_up && (beat || self.asked.as_ref() != Some(&self.membership.view().ids())) {
            self.ask_witness(now);
        }
        if self.link_up {
            let events = self.membership.tick(now);
            self.handle(now, events);
        }
        for healed in self.apart.overdue(now) {
            self.note(Note::Healed(healed));
        }
        if self.announced.1.is_some_and(|at| now >= at) {
            self.announced.1 = None;
            self.out.push(Effect::Announce(self.cfg.vip_addresses()));
        }
        self.services(now);
        if let Some((digest, until)) = self.learning
            && now >= until
        {
            self.release_when_ready(now, digest);
        }
        self.expire_handovers(now);
        self.renew(now);
        if self.send_now && self.link_up && now >= self.early_at() {
            self.counters.early += 1;
            self.send_all(now, Kind::Alive);
        }
        // A heartbeat to everyone, sent after the inputs, answers them all; it asks
        // nothing, so an ask goes anyway.
        let (answer, ask) = (std::mem::take(&mut self.answer), std::mem::take(&mut self.ask));
        if self.link_up {
            for &id in answer.union(&ask) {
                let asks = ask.contains(&id);
                if asks || self.sent_all < now {
                    self.send_to(now, id, answer.contains(&id), asks);
                }
            }
        }
    }

    /// Whether the acknowledgement of `from`'s heartbeat, arriving now, may wait for the
    /// next periodic heartbeat. The sender's lease, bounded by it, must last until the
    /// acknowledgement after that one: it runs a failure time less a margin from the
    /// heartbeat's sending, and the next acknowledgement but one comes within the wait
    /// and an interval, plus two transits. So the wait may be the failure time less two
    /// intervals (an interval at 3 missed heartbeats to a failure, the default: never
    /// more than that; none at 2). And only while the sender's heartbeats come every
    /// interval: after a gap (one lost, or late), the acknowledgements the sender holds
    /// date an older heartbeat, and its lease may end before the next periodic one comes
    /// (an immediate answer was what made one lost heartbeat harmless); nor for a sender
    /// never heard, which waits for this node's acknowledgement to agree on a view.
    fn defers(&self, from: u16, now: Instant) -> bool {
        let (beat, failure) = (interval(&self.cfg), failure_time(&self.cfg));
        let regular = self.membership.silent_for(from, now).is_some_and(|gap| gap <= beat * 3 / 2);
        regular && self.next_beat <= now + failure.saturating_sub(beat * 2)
    }

    /// A heartbeat to every peer: it carries all that changed, so nothing waits to go
    /// out early any more.
    fn send_all(&mut self, now: Instant, kind: Kind) {
        let hb = self.membership.heartbeat(kind, now, false);
        let datagram = self.seal(hb, now);
        let me = self.cfg.cluster.node_id;
        for peer in self.cfg.cluster.peers.iter().filter(|p| p.id != me) {
            let datagram = datagram.clone();
            self.out.push(Effect::Send { to: peer.id, address: peer.address, datagram });
            self.counters.sent += 1;
        }
        self.send_now = false;
        self.sent_all = now;
    }

    /// A heartbeat to one peer: the answer to its heartbeat (`reply`), which
    /// acknowledges it a round trip later, or an ask for its answer at once, or both.
    fn send_to(&mut self, now: Instant, to: u16, reply: bool, ask: bool) {
        let Some(address) = self.cfg.cluster.peers.iter().find(|p| p.id == to).map(|p| p.address)
        else {
            return;
        };
        let mut hb = self.membership.heartbeat(Kind::Alive, now, reply);
        hb.ask = ask;
        let datagram = self.seal(hb, now);
        self.out.push(Effect::Send { to, address, datagram });
        self.counters.sent += 1;
        self.counters.answered += u64::from(reply);
        self.counters.asked += u64::from(ask);
    }

    /// After an install whose members differ from the last one's (a takeover, a heal, a
    /// join): the VIPs are announced now and once more a second later.
    fn announce(&mut self, now: Instant, members: Vec<u16>) {
        if members == self.announced.0 {
            return;
        }
        let vips = self.cfg.vip_addresses();
        self.note(Note::Announced { vips: vips.clone(), members: members.clone() });
        self.out.push(Effect::Announce(vips));
        self.announced = (members, Some(now + ANNOUNCE_AGAIN));
    }

    /// `hb` with what this node did while apart from peers lately, signed.
    fn seal(&mut self, mut hb: Heartbeat, now: Instant) -> Vec<u8> {
        hb.apart = self.apart.reports(now);
        hb.encode(&self.key)
    }

    /// Asks the witness, if the file names one, for its vote for this node's view.
    fn ask_witness(&mut self, now: Instant) {
        if let Some((address, ask)) = self.membership.witness_ask(now) {
            self.asked = Some(ask.members.clone());
            self.out.push(Effect::Ask { address, datagram: ask.encode(&self.key) });
        }
    }

    fn datagram(&mut self, now: Instant, bytes: &[u8], from: SocketAddr, came: Instant) {
        if ballot::is_ballot(bytes) {
            return self.answer(now, bytes, from);
        }
        let c = &mut self.counters;
        let hb = match Heartbeat::decode(bytes, &self.key) {
            Ok(hb) => hb,
            Err(e) => {
                match e {
                    WireError::Forged => c.forged += 1,
                    WireError::Length(_) | WireError::Malformed => c.malformed += 1,
                }
                self.note(Note::Ignored { why: format!("from {from}: {e}") });
                return;
            }
        };
        // An ask is answered at once, even a reply: its sender's lease waits on it.
        let (node, answer) = (hb.node, hb.kind == Kind::Alive && (!hb.reply || hb.ask));
        let defers = self.defers(node, now) && !hb.ask;
        let c = &mut self.counters;
        let told = hb.apart.clone();
        match self.membership.receive(hb, came.min(now)) {
            Ok(events) => {
                c.accepted += 1;
                if answer && defers {
                    c.deferred += 1;
                } else if answer {
                    self.answer.insert(node);
                }
                if self.membership.acked_stale(node) {
                    self.ask.insert(node);
                }
                self.handle(now, events);
                if let Some(healed) = self.apart.heard(node, self.cfg.cluster.node_id, &told) {
                    self.note(Note::Healed(healed));
                }
            }
            Err(refused) => {
                match refused {
                    Refused::Foreign => c.foreign += 1,
                    Refused::Replayed => c.replayed += 1,
                    Refused::Stale | Refused::Failed => c.stale += 1,
                }
                self.note(Note::Ignored { why: format!("from {from} (node {node}): {refused}") });
            }
        }
    }

    /// The witness answered an ask (or something signed like one arrived).
    fn answer(&mut self, now: Instant, bytes: &[u8], from: SocketAddr) {
        let taken = Ballot::decode(bytes, &self.key)
            .map_err(|e| e.to_string())
            .and_then(|b| self.membership.witness_answer(b, now).map_err(|r| r.to_string()));
        match taken {
            Ok(events) => {
                self.counters.witness += 1;
                self.handle(now, events);
            }
            Err(why) => {
                self.counters.witness_ignored += 1;
                self.note(Note::Ignored { why: format!("from {from} (a witness ballot): {why}") });
            }
        }
    }

    fn handle(&mut self, now: Instant, events: Vec<Event>) {
        let me = self.cfg.cluster.node_id;
        for event in events {
            match event {
                Event::Changed(change) => {
                    let view_changed = matches!(change, Change::ViewChanged { .. });
                    if let Change::PeerFailed { id, .. } = change {
                        self.apart.failed(id, now);
                    }
                    self.note(Note::Membership(change));
                    if view_changed {
                        self.ask_table(now);
                    }
                }
                Event::Release { epoch, view } => {
                    self.remapped = None;
                    let next = self.table_of(&view);
                    self.hand_over(now, &view, &next, HANDOVER_RELEASED);
                    let released = tables::release(&self.rows, &next);
                    let given = tables::owned(&self.rows, me) - tables::owned(&released, me);
                    self.write_rows(released);
                    self.note(Note::Released { epoch, given });
                }
                Event::Install { epoch, view } => {
                    self.apart.installed(&view.ids(), now);
                    let next = self.table_of(&view);
                    self.hand_over(now, &view, &next, HANDOVER_TAKING);
                    self.install(epoch, &view);
                    self.announce(now, view.ids());
                }
                Event::Fence { reason } => {
                    self.remapped = None;
                    // Owning nothing, this node keeps no flow, and learns anew who holds
                    // what when it installs again.
                    // (A view whose release waits on learning still releases then.)
                    self.handing = Timed::default();
                    self.joined = false;
                    self.write_rows(tables::empty(self.rows.len(), self.cfg.cluster.buckets));
                    self.note(Note::Fenced { reason });
                }
                Event::Send => self.send_now = true,
            }
        }
    }
}
