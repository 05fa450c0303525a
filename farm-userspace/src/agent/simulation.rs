//! Deterministic simulation of a farm: several `Membership`s, each driven by a mini agent
//! that does what `Agent::serve`, `beat`, `handle` and `stop` do, over a simulated network
//! that delays, loses, duplicates and reorders heartbeats. No sockets, threads or real
//! time: one seeded RNG and a clock of `base + Duration`, so a failing seed replays.
//!
//! Safety is checked after every event, since a node only starts accepting a bucket at an
//! event (an install, a lease renewal) while time passing only ends leases: no bucket is
//! ever accepted by two nodes, a node accepting bucket `b` iff its lease still runs and
//! its row gives it `b`. A killed or stalled node keeps its rows; only its lease stops it.
//!
//! One exception, which no protocol without a quorum avoids and the random runs count:
//! loss that cuts two nodes apart both ways, as a partition would. A double acceptance is
//! excused only where the node that took the bucket had failed the other, and the other
//! had not heard from it for half a failure time (past which its lease no longer waits
//! on that node's acknowledgements; see `Membership::lease_deadline`). Loss one way only
//! is no excuse: the failed node's lease, bounded by the failer's acknowledgements, has
//! run out first. A third of the random runs lose nothing, and there nothing is excused.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use farm_common::NO_OWNER;

use super::{
    membership::{Event, Membership, Settings, View},
    tables,
    wire::{Heartbeat, Kind, Phase},
};
use crate::assign::{self, Member};

const BUCKETS: usize = 256;
const INTERVAL: Duration = Duration::from_millis(100);
const FAILURE: Duration = Duration::from_millis(300);
/// As the agent's `lease_time`: a longer gap between two turns is a stall.
const LEASE: Duration = super::membership::longest_lease(FAILURE);
const KEY: &[u8] = b"simulation key";
/// As the agent's `LEAVE_COPIES`.
const LEAVE_COPIES: usize = 3;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// xorshift64*: small, and the same sequence on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// A view's table, as `tables::rows` makes it for one slot where every node weighs 1.
fn table(view: &View) -> Vec<u16> {
    let weight = |drained: bool, w: Option<u32>| if drained { 0 } else { w.unwrap_or(1) };
    let members: Vec<Member> = view
        .members
        .iter()
        .map(|m| Member { id: m.id, weight: weight(m.drained, m.weight) })
        .collect();
    assign::assign(&members, BUCKETS as u32, 7).owners().to_vec()
}

/// Per mille of datagrams lost and duplicated. Each takes 0 to `MAX_DELAY_US`, so they
/// also arrive out of order.
#[derive(Debug, Clone, Copy)]
struct Net {
    loss: u64,
    dup: u64,
}

const RELIABLE: Net = Net { loss: 0, dup: 0 };
const MAX_DELAY_US: u64 = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Running,
    /// SIGSTOP: neither ticks nor reads its socket until `Ev::Resume`.
    Stalled,
    /// Killed, left, or not started yet.
    Down,
}

#[derive(Debug, Clone, Copy)]
enum Disturbance {
    Kill(u16),
    Stall(u16, Duration),
    /// Starts a node that is down again, as a new incarnation.
    Restart(u16),
    Leave(u16),
    Weight(u16, Option<u32>, bool),
    LinkDown(u16),
    LinkUp(u16),
}

struct Datagram {
    bytes: Vec<u8>,
}

enum Ev {
    Deliver(u16, Datagram),
    /// The agent's timer; stale when the node has rescheduled since.
    Wake(u16, Instant),
    Resume(u16),
    Start(u16),
}

/// One agent and its data plane.
struct Node {
    id: u16,
    membership: Membership,
    rows: Vec<u16>,
    /// The lease as the data plane holds it, when it was last written, and when the
    /// agent last ran `renew`.
    lease_until: Option<Instant>,
    last_renewal: Option<Instant>,
    last_renew: Option<Instant>,
    next_beat: Instant,
    /// The agent's idea of its link, updated at each beat as `Agent::beat` does.
    link_seen: bool,
    send_now: bool,
    run: Run,
    /// Datagrams that arrived while stalled: the socket buffer, read on resume.
    held: Vec<Datagram>,
    wake: Option<Instant>,
}

impl Node {
    /// As `Agent::start`: no rows and no lease until the farm agrees on a view.
    fn new(id: u16, nodes: u16, incarnation: u64, now: Instant) -> Node {
        let peers = (1..=nodes).collect();
        let settings = Settings { me: id, peers, failure: FAILURE, config: 1, cluster: 2 };
        Node {
            id,
            membership: Membership::new(settings, incarnation, now),
            rows: vec![NO_OWNER; BUCKETS],
            lease_until: None,
            last_renewal: None,
            last_renew: None,
            next_beat: now,
            link_seen: true,
            send_now: true,
            run: Run::Running,
            held: vec![],
            wake: None,
        }
    }

    fn accepts(&self, bucket: usize, now: Instant) -> bool {
        self.lease_until.is_some_and(|until| until > now) && self.rows[bucket] == self.id
    }
}

struct Sim {
    seed: u64,
    base: Instant,
    now: Instant,
    rng: Rng,
    net: Net,
    nodes: Vec<Node>,
    /// The real link state of each node, which its agent only sees at its next beat.
    link_up: Vec<bool>,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    incarnation: u64,
    trace: Vec<String>,
    /// The first double acceptance that random loss explains, if any.
    loss_overlap: Option<String>,
    /// Set when a node may accept more than before (an install, a renewal): only then
    /// can a double acceptance begin, so only then is it looked for.
    grown: bool,
}

impl Sim {
    /// `n` nodes starting within `spread` of each other.
    fn new(n: u16, seed: u64, net: Net, spread: Duration) -> Sim {
        let base = Instant::now();
        let mut sim = Sim {
            seed,
            base,
            now: base,
            rng: Rng::new(seed),
            net,
            nodes: (1..=n).map(|id| Node { run: Run::Down, ..Node::new(id, n, 0, base) }).collect(),
            link_up: vec![true; usize::from(n)],
            queue: BTreeMap::new(),
            seq: 0,
            incarnation: 1000,
            trace: vec![],
            loss_overlap: None,
            grown: false,
        };
        for id in 1..=n {
            let at = base + Duration::from_micros(sim.rng.below(spread.as_micros() as u64 + 1));
            sim.push(at, Ev::Start(id));
        }
        sim
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn node(&mut self, id: u16) -> &mut Node {
        &mut self.nodes[usize::from(id - 1)]
    }

    fn up(&self, id: u16) -> bool {
        self.link_up[usize::from(id - 1)]
    }

    fn log(&mut self, id: u16, what: String) {
        let line = format!("{:>6} ms node {id}: {what}", (self.now - self.base).as_millis());
        self.trace.push(line);
    }

    /// A failed property: the seed to replay it and the end of the trace.
    fn failure(&self, what: &str) -> String {
        let tail = self.trace[self.trace.len().saturating_sub(60)..].join("\n");
        let at = (self.now - self.base).as_millis();
        format!("seed {}, at {at} ms: {what}\n{tail}", self.seed)
    }

    /// Processes events until `done` holds (returns when) or `deadline` passes (None).
    fn run_until(
        &mut self,
        deadline: Instant,
        done: impl Fn(&Sim) -> bool,
    ) -> Result<Option<Instant>, String> {
        while !done(self) {
            let Some(entry) = self.queue.first_entry().filter(|e| e.key().0 <= deadline) else {
                self.now = deadline;
                return Ok(None);
            };
            let ((at, _), ev) = entry.remove_entry();
            self.now = at;
            self.process(ev);
            if std::mem::take(&mut self.grown) {
                self.check_safety()?;
            }
        }
        Ok(Some(self.now))
    }

    fn run_for(&mut self, d: Duration) -> Result<(), String> {
        self.run_until(self.now + d, |_| false).map(drop)
    }

    fn process(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver(to, _) if !self.up(to) => {}
            Ev::Deliver(to, d) => match self.node(to).run {
                Run::Running => self.turn(to, Some(d)),
                Run::Stalled => self.node(to).held.push(d),
                Run::Down => {}
            },
            Ev::Wake(id, at) => {
                let node = self.node(id);
                if node.run == Run::Running && node.wake == Some(at) {
                    node.wake = None;
                    self.turn(id, None);
                }
            }
            Ev::Resume(id) => {
                self.node(id).run = Run::Running;
                self.log(id, "resumes".into());
                let held = std::mem::take(&mut self.node(id).held);
                if held.is_empty() {
                    self.turn(id, None);
                }
                // Datagrams first: the agent may read one before its overdue beat.
                for d in held {
                    self.turn(id, Some(d));
                }
            }
            Ev::Start(id) => {
                let (n, incarnation) = (self.nodes.len() as u16, self.next_incarnation());
                *self.node(id) = Node::new(id, n, incarnation, self.now);
                self.log(id, format!("starts as incarnation {incarnation}"));
                self.turn(id, None);
            }
        }
    }

    fn next_incarnation(&mut self) -> u64 {
        self.incarnation += 1;
        self.incarnation
    }

    /// One turn of `Agent::serve`'s loop, woken by a datagram or by its timer.
    fn turn(&mut self, id: u16, datagram: Option<Datagram>) {
        let now = self.now;
        if let Some(d) = datagram {
            let hb = Heartbeat::decode(&d.bytes, KEY).expect("signed with the farm's key");
            let (from, answer) = (hb.node, hb.kind == Kind::Alive && !hb.reply);
            // The agent only counts the refused ones (replays, stale incarnations).
            if let Ok(events) = self.node(id).membership.receive(hb, now) {
                self.handle(id, events);
                if answer && self.node(id).link_seen {
                    self.send(id, Some(from), Kind::Alive);
                }
            }
        }
        if now >= self.node(id).next_beat {
            self.beat(id);
            // The agent sets its next beat from when it woke, a little late.
            let late = Duration::from_micros(self.rng.below(3000));
            self.node(id).next_beat = now + INTERVAL + late;
        }
        // As the agent: cut off, it does not tick (it would fail every peer).
        if self.node(id).link_seen {
            let events = self.node(id).membership.tick(now);
            self.handle(id, events);
        }
        self.renew(id);
        let node = self.node(id);
        if std::mem::take(&mut node.send_now) && node.link_seen {
            self.send(id, None, Kind::Alive);
        }
        let node = self.node(id);
        let deadline = node.membership.next_deadline().filter(|_| node.link_seen);
        let at = deadline.map_or(node.next_beat, |d| d.min(node.next_beat));
        assert!(at > now, "node {id} would wake in the past and spin");
        if node.wake != Some(at) {
            node.wake = Some(at);
            self.push(at, Ev::Wake(id, at));
        }
    }

    /// `Agent::beat`: the link, then the heartbeat.
    fn beat(&mut self, id: u16) {
        let up = self.up(id);
        if up != self.node(id).link_seen {
            self.node(id).link_seen = up;
            let events = match up {
                false => self.node(id).membership.fence("link down".into()),
                true => {
                    let incarnation = self.next_incarnation();
                    self.node(id).membership.rejoin(incarnation, "link up".into(), true)
                }
            };
            self.handle(id, events);
        }
        if up {
            self.send(id, None, Kind::Alive);
        }
    }

    /// `Agent::renew`: a lease that ran out while the node owned buckets makes it rejoin
    /// (waiting to hear the farm if it stalled); then the lease goes where the membership
    /// allows, written when it moves a jiffy.
    fn renew(&mut self, id: u16) {
        let now = self.now;
        let node = self.node(id);
        let stalled = node.last_renew.is_some_and(|at| now - at >= LEASE);
        node.last_renew = Some(now);
        if !node.link_seen {
            return;
        }
        if node.membership.owns() && node.lease_until.is_some_and(|until| now >= until) {
            let incarnation = self.next_incarnation();
            let why = if stalled { "stalled" } else { "lease ran out" };
            let events = self.node(id).membership.rejoin(incarnation, why.into(), stalled);
            self.handle(id, events);
        }
        let node = self.node(id);
        let deadline = node.membership.lease_deadline(now);
        let moved =
            node.lease_until.is_none_or(|until| deadline < until || deadline - until >= ms(4));
        if moved {
            (node.lease_until, node.last_renewal) = (Some(deadline), Some(now));
            self.grown = true;
        }
    }

    /// `Agent::handle`, with the table of a single slot.
    fn handle(&mut self, id: u16, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Release { view, .. } => {
                    let node = self.node(id);
                    let current = std::mem::take(&mut node.rows);
                    node.rows = tables::release(&[current], &[table(&view)]).remove(0);
                }
                Event::Install { epoch, view } => {
                    let node = self.node(id);
                    node.rows = table(&view);
                    let owned = tables::owned(std::slice::from_ref(&node.rows), id);
                    self.log(id, format!("installs epoch {epoch} {:?}, owns {owned}", view.ids()));
                    self.grown = true;
                }
                Event::Fence { reason } => {
                    self.node(id).rows = vec![NO_OWNER; BUCKETS];
                    self.log(id, format!("fenced: {reason}"));
                }
                Event::Send => self.node(id).send_now = true,
                other => self.log(id, format!("{other:?}")),
            }
        }
    }

    /// A heartbeat to every peer, or the reply to one peer's (`to`).
    fn send(&mut self, from: u16, to: Option<u16>, kind: Kind) {
        let sent = self.now;
        let bytes = self.node(from).membership.heartbeat(kind, sent, to.is_some()).encode(KEY);
        if !self.up(from) {
            return;
        }
        let all = 1..=self.nodes.len() as u16;
        for to in all.filter(|&peer| peer != from && to.is_none_or(|only| only == peer)) {
            let lost = self.rng.below(1000) < self.net.loss;
            for _ in 0..1 + u64::from(self.rng.below(1000) < self.net.dup) {
                let at = sent + Duration::from_micros(self.rng.below(MAX_DELAY_US + 1));
                if !lost {
                    self.push(at, Ev::Deliver(to, Datagram { bytes: bytes.clone() }));
                }
            }
        }
    }

    fn disturb(&mut self, d: Disturbance) -> Result<(), String> {
        self.trace.push(format!("{:>6} ms {d:?}", (self.now - self.base).as_millis()));
        match d {
            Disturbance::Kill(id) => {
                let node = self.node(id);
                (node.run, node.wake) = (Run::Down, None);
                node.held.clear();
            }
            Disturbance::Stall(id, time) => {
                let node = self.node(id);
                (node.run, node.wake) = (Run::Stalled, None);
                self.push(self.now + time, Ev::Resume(id));
            }
            Disturbance::Restart(id) => self.process(Ev::Start(id)),
            // `Agent::stop`: fence the data plane first, then tell the peers.
            Disturbance::Leave(id) => {
                self.node(id).lease_until = None;
                for _ in 0..LEAVE_COPIES {
                    self.send(id, None, Kind::Leave);
                }
                let node = self.node(id);
                (node.run, node.wake) = (Run::Down, None);
            }
            // `farm drain` and co.: the request, then the rest of that turn of the loop.
            Disturbance::Weight(id, weight, drained) => {
                let events = self.node(id).membership.set_weight(weight, drained);
                self.handle(id, events);
                self.turn(id, None);
            }
            Disturbance::LinkDown(id) => self.link_up[usize::from(id - 1)] = false,
            Disturbance::LinkUp(id) => self.link_up[usize::from(id - 1)] = true,
        }
        self.check_safety()
    }

    fn check_safety(&mut self) -> Result<(), String> {
        let mut acceptor: [Option<&Node>; BUCKETS] = [None; BUCKETS];
        let mut explained = None;
        for node in &self.nodes {
            for b in (0..BUCKETS).filter(|&b| node.accepts(b, self.now)) {
                let Some(other) = acceptor[b].replace(node) else { continue };
                let what = format!("bucket {b} accepted by nodes {} and {}", other.id, node.id);
                // `taker` failed `kept`, which no longer heard it: cut apart both ways.
                let apart = |taker: &Node, kept: &Node| {
                    !taker.membership.view().ids().contains(&kept.id)
                        && kept
                            .membership
                            .silent_for(taker.id, self.now)
                            .is_none_or(|silent| silent >= FAILURE / 2)
                };
                if !(apart(node, other) || apart(other, node)) {
                    return Err(self.failure(&what));
                }
                explained.get_or_insert(what);
            }
        }
        if let Some(what) = explained {
            self.loss_overlap.get_or_insert(what);
        }
        Ok(())
    }

    fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.run == Run::Running)
    }

    fn owned(&self, id: u16) -> usize {
        (0..BUCKETS).filter(|&b| self.nodes[usize::from(id - 1)].accepts(b, self.now)).count()
    }

    /// No node is stalled, the running nodes hold one view of exactly themselves, at one
    /// epoch, installed, and every bucket is accepted by its owner in that view's table
    /// alone (by nobody if every member weighs 0).
    fn settled(&self) -> bool {
        if self.nodes.iter().any(|n| n.run == Run::Stalled) {
            return false;
        }
        let Some(first) = self.running().next() else { return true };
        let (view, epoch) = (first.membership.view(), first.membership.epoch());
        let ids: Vec<u16> = self.running().map(|n| n.id).collect();
        let agree = self.running().all(|n| {
            let m = &n.membership;
            m.phase() == Phase::Installed && m.epoch() == epoch && m.view() == view
        });
        // The table last: this runs before every event, and only agreeing nodes need it.
        agree
            && view.ids() == ids
            && table(view).iter().enumerate().all(|(b, &owner)| {
                let mut acceptors = self.running().filter(|n| n.accepts(b, self.now));
                match acceptors.next() {
                    None => owner == NO_OWNER,
                    Some(n) => n.id == owner && acceptors.next().is_none(),
                }
            })
    }

    /// The nodes `ids` installed a view of exactly them, and they own every bucket.
    fn installed(&self, ids: &[u16]) -> bool {
        ids.iter().all(|&id| {
            let m = &self.nodes[usize::from(id - 1)].membership;
            m.phase() == Phase::Installed && m.view().ids() == ids
        }) && ids.iter().map(|&id| self.owned(id)).sum::<usize>() == BUCKETS
    }

    /// A disturbance that fits the state of a random node, if any.
    fn random_disturbance(&mut self) -> Option<Disturbance> {
        let id = 1 + self.rng.below(self.nodes.len() as u64) as u16;
        let (weight, drained) = self.node(id).membership.weight();
        match self.node(id).run {
            Run::Down => Some(Disturbance::Restart(id)),
            Run::Stalled => None,
            Run::Running => Some(match self.rng.below(7) {
                0 => Disturbance::Kill(id),
                1 => Disturbance::Stall(id, ms(150 + self.rng.below(451))),
                2 => Disturbance::Leave(id),
                3 => Disturbance::Weight(id, Some(self.rng.below(4) as u32), drained),
                4 => Disturbance::Weight(id, weight, !drained),
                5 => Disturbance::Weight(id, None, drained),
                _ if self.up(id) => Disturbance::LinkDown(id),
                _ => Disturbance::LinkUp(id),
            }),
        }
    }
}

/// Fails the test on a broken property, with the seed and the trace that replay it.
fn ok<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// `n` nodes started together, and when they have all settled on one view.
fn start(n: u16) -> (Sim, Instant) {
    let mut sim = Sim::new(n, 1, RELIABLE, ms(20));
    let all = move |s: &Sim| s.running().count() == usize::from(n) && s.settled();
    let settled = ok(sim.run_until(sim.base + ms(1000), all));
    let settled = settled.unwrap_or_else(|| panic!("{}", sim.failure("not settled")));
    (sim, settled)
}

fn counts(sim: &Sim) -> Vec<usize> {
    let mut counts: Vec<usize> = sim.running().map(|n| sim.owned(n.id)).collect();
    counts.sort();
    counts
}

#[test]
fn three_nodes_agree_on_one_table() {
    let (sim, settled) = start(3);
    // Nobody installs before its joining wait is over.
    assert!(settled - sim.base >= FAILURE);
    assert_eq!(sim.nodes[0].membership.view().ids(), [1, 2, 3]);
    assert_eq!(counts(&sim), [85, 85, 86]);
}

#[test]
fn survivors_of_a_kill_take_over_without_double_ownership() {
    let mut took = vec![];
    // Kills at different points of the heartbeat interval.
    for offset in (0..100).step_by(10) {
        let mut sim = start(3).0;
        ok(sim.run_for(ms(offset)));
        ok(sim.disturb(Disturbance::Kill(3)));
        let killed = sim.now;
        let done = ok(sim.run_until(killed + ms(1000), |s| s.installed(&[1, 2])));
        let done = done.unwrap_or_else(|| panic!("{}", sim.failure("no two-node table")));
        // The lease, not luck, kept node 3 off: it had run out before the takeover.
        assert!(sim.nodes[2].lease_until.is_some_and(|until| until <= done));
        assert_eq!((sim.owned(1), sim.owned(2)), (128, 128));
        took.push((done - killed).as_millis());
    }
    eprintln!("survivors installed {took:?} ms after the kill");
    assert!(took.iter().all(|&t| t < 500), "{took:?}");
}

#[test]
fn a_node_cut_off_waits_for_the_farm_before_owning_again() {
    // Cut off, node 1 fails its peer and settles alone. Its fence used to last only until
    // that lone install, which could come before its lease ran out, and on rejoining it
    // installed its lone view at once: either way it took every bucket from node 2.
    for seed in 0..100 {
        let mut sim = Sim::new(2, seed, RELIABLE, ms(20));
        ok(sim.run_for(ms(1000)));
        for _ in 0..20 {
            // Right after a lease renewal, so that its lease runs longest, and with the
            // peers' heartbeats at any point of their interval.
            let wait = Duration::from_micros(sim.rng.below(100_000));
            ok(sim.run_for(wait));
            ok(sim.run_until(sim.now + INTERVAL * 2, |s| s.nodes[0].last_renewal == Some(s.now)));
            ok(sim.disturb(Disturbance::LinkDown(1)));
            let down = sim.now;
            assert!(ok(sim.run_until(down + ms(500), |s| s.installed(&[2]))).is_some());
            ok(sim.run_until(down + ms(500), |_| false));
            ok(sim.disturb(Disturbance::LinkUp(1)));
            let back = ok(sim.run_until(sim.now + ms(2000), Sim::settled));
            assert!(back.is_some(), "{}", sim.failure("not settled after the link came back"));
        }
    }
}

#[test]
fn survivors_of_a_leave_take_over_at_once() {
    let mut sim = start(3).0;
    ok(sim.disturb(Disturbance::Leave(3)));
    let left = sim.now;
    let done = ok(sim.run_until(left + ms(1000), |s| s.installed(&[1, 2]))).expect("installed");
    eprintln!("survivors installed {} ms after the leave", (done - left).as_millis());
    // Well before the failure time: the Leave heartbeats, not silence, moved them.
    assert!(done - left < FAILURE / 3);
}

#[test]
fn a_stalled_node_comes_back_as_a_new_incarnation() {
    let mut sim = start(3).0;
    let old = sim.nodes[1].membership.incarnation();
    ok(sim.disturb(Disturbance::Stall(2, ms(400))));
    let stalled = sim.now;
    let taken = ok(sim.run_until(stalled + ms(400), |s| s.installed(&[1, 3])));
    assert!(taken.is_some(), "the others take node 2's buckets while it is stopped");
    let back = ok(sim.run_until(stalled + ms(3000), Sim::settled)).expect("settled");
    assert!(back > stalled + ms(400));
    let new = sim.nodes[1].membership.incarnation();
    assert!(new > old);
    let member = sim.nodes[0].membership.view().members.iter().find(|m| m.id == 2).cloned();
    assert_eq!(member.map(|m| m.incarnation), Some(new));
    assert_eq!(counts(&sim), [85, 85, 86]);
}

#[test]
fn drain_moves_every_bucket_away_and_undrain_gives_them_back() {
    let mut sim = start(3).0;
    let before: Vec<Vec<u16>> = sim.nodes.iter().map(|n| n.rows.clone()).collect();
    ok(sim.disturb(Disturbance::Weight(1, None, true)));
    let drained = ok(sim.run_until(sim.now + ms(1000), |s| s.settled() && s.owned(1) == 0));
    assert!(drained.is_some());
    assert_eq!((sim.owned(2), sim.owned(3)), (128, 128));
    ok(sim.disturb(Disturbance::Weight(1, None, false)));
    let back = ok(sim.run_until(sim.now + ms(1000), |s| s.settled() && s.owned(1) > 0));
    assert!(back.is_some());
    // The same view as before the drain, so the same table.
    assert!(sim.nodes.iter().map(|n| &n.rows).eq(&before));
}

/// A random farm through random disturbances, then healed: how long it took to settle,
/// and the double acceptance loss made, if any.
fn random_case(seed: u64) -> Result<(Duration, Option<String>), String> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let n = 2 + rng.below(5) as u16;
    // A third of the runs without loss, where no double acceptance has an excuse.
    let loss = if seed.is_multiple_of(3) { 0 } else { 1 + rng.below(300) };
    let net = Net { loss, dup: rng.below(51) };
    let mut sim = Sim::new(n, seed, net, ms(rng.below(400)));
    sim.trace.push(format!("{n} nodes, {net:?}"));
    let mut at = sim.base + ms(500 + rng.below(700));
    for _ in 0..1 + rng.below(6) {
        sim.run_until(at, |_| false)?;
        if let Some(d) = sim.random_disturbance() {
            sim.disturb(d)?;
        }
        at += ms(rng.below(700));
    }
    // Heal: no more loss, every link up; stalled nodes resume on their own.
    sim.net.loss = 0;
    for id in 1..=n {
        if !sim.up(id) {
            sim.disturb(Disturbance::LinkUp(id))?;
        }
    }
    let healed = sim.now;
    let settled = sim.run_until(healed + ms(3000), Sim::settled)?;
    let settled = settled.ok_or_else(|| sim.failure("not settled 3 s after healing"))?;
    sim.run_for(ms(500))?;
    if !sim.settled() {
        return Err(sim.failure("settled, then unsettled without a disturbance"));
    }
    Ok((settled - healed, sim.loss_overlap.map(|what| format!("seed {seed}, {n} nodes: {what}"))))
}

#[test]
fn random_disturbances_never_give_a_bucket_two_owners() {
    const RUNS: u64 = 3000;
    let (mut slowest, mut by_loss) = (Duration::ZERO, vec![]);
    for seed in 0..RUNS {
        let (took, overlap) = ok(random_case(seed));
        slowest = slowest.max(took);
        by_loss.extend(overlap);
    }
    eprintln!("{RUNS} runs, each settled within {} ms of healing", slowest.as_millis());
    // Not a failure of the protocol: see the module's documentation.
    eprintln!(
        "{} of the {} runs with loss cut two nodes apart both ways, each serving alone; the first: {}",
        by_loss.len(),
        RUNS - RUNS.div_ceil(3),
        by_loss.first().map_or("none", String::as_str)
    );
}
