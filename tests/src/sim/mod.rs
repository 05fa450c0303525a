//! Deterministic simulation of a farm of agents: every node runs the agent's own core
//! (`farm_userspace::agent::core::Core`, the code `farm agent` ships) over a simulated
//! network that delays, loses, duplicates and reorders heartbeats, and a model of its
//! data plane that takes exactly the effects the runtime writes to the real one. No
//! sockets, threads or real time: one seeded RNG and a clock of `base + Duration`, so a
//! failing seed replays.
//!
//! What the runtime does around the core, the simulation does too, and nothing more:
//! gather what arrived, step the core once, carry out its effects; compute the tables it
//! asks for (after a delay, as the runtime's thread does); on start, fence the adopted
//! data plane as the loader does and write the file's rules and seed. A stalled agent
//! (SIGSTOP) reads nothing until it resumes, then everything at once; a killed one
//! leaves its data plane as it was, rows and lease.
//!
//! The checks (`check`) are about what a client would see: for every sampled packet, at
//! most one node's data plane (modelled by `farm_userspace::classify`, the code of
//! `farm lookup`) would accept it, after every event that can make a node accept more;
//! and once the disturbances stop, every packet is accepted by exactly the node the
//! agreed table names.
pub mod check;
pub mod random;
pub mod rng;
pub mod scenario;
pub mod spec;
pub mod traffic;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use farm_common::NodeConfig;
use farm_userspace::witness::{arbiter::Arbiter, wire::Ballot};
use farm_userspace::{
    agent::{
        control::Request,
        core::{Core, Effect, Identity, Input, Reloaded},
        note::Note,
        tables::{self, Rows},
    },
    classify::{Flow, Plane},
    handover::Moving,
    rules::{self, Rules},
};

use self::{
    rng::Rng,
    spec::{Spec, address, flows, witness_address},
    traffic::{TRAFFIC_EVERY, Traffic},
};

pub const KEY: &[u8] = b"simulation key, shared by all";
pub const INTERVAL: Duration = Duration::from_millis(spec::HEARTBEAT_MS);
pub const FAILURE: Duration = Duration::from_millis(spec::HEARTBEAT_MS * spec::THRESHOLD as u64);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The network: per mille of datagrams lost and duplicated; each takes up to
/// `MAX_DELAY` to arrive, so they also arrive out of order.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    pub loss: u64,
    pub dup: u64,
}

pub const RELIABLE: Net = Net { loss: 0, dup: 0 };
const MAX_DELAY_US: u64 = 20_000;
/// The simulated witness's longest lease, and how long it grants nothing after a start.
pub const WITNESS_MAX_LEASE: Duration = Duration::from_secs(1);
/// The witness, where a node id is expected.
const WITNESS: u16 = 0;

/// A partition: the nodes of `side` hear only each other, the rest only each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub side: Vec<u16>,
    /// Whom the witness hears: both sides, or the nodes of `side` (true) or the rest.
    pub witness: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Running,
    /// SIGSTOP: reads nothing and never wakes until it resumes.
    Stalled,
    /// Killed, left, or not started yet.
    Down,
}

/// What happens to a farm from outside.
#[derive(Debug, Clone)]
pub enum Disturbance {
    Kill(u16),
    Stall(u16, Duration),
    /// Starts a node that is down, as a new process.
    Restart(u16),
    /// SIGTERM: a clean leave.
    Leave(u16),
    /// `farm drain`, `undrain`, `weight` on a node.
    Steer(u16, Request),
    LinkDown(u16),
    LinkUp(u16),
    /// A new file for every node, each taking it (SIGHUP) within `spread` of now (or a
    /// newer one, if another edit came meanwhile).
    Reload(Box<Spec>, Duration),
    /// Node `id`'s instance of service `service` stops answering (false) or answers
    /// again: its checker sees so from its next check on.
    App(u16, usize, bool),
    /// Datagrams between the two sides are dropped, both ways, in flight too.
    Cut(Cut),
    Heal,
    /// The witness process stops (false), or starts afresh.
    Witness(bool),
}

enum Ev {
    /// To, from (`WITNESS`: the witness), what.
    Deliver(u16, u16, Vec<u8>),
    /// An ask reaching the witness, from a node.
    Ask(u16, Vec<u8>),
    /// The agent's timer, for the node's `life`-th process; stale when it rescheduled since.
    Wake(u16, u64, Instant),
    Resume(u16, u64),
    Start(u16),
    /// A table the runtime's thread computed for the node's `life`-th process.
    Table(u16, u64, u64, Arc<Rows>),
    /// The node gets the newest file, and its agent SIGHUP.
    Reload(u16),
    /// The checker of service `usize` checks, for the node's `life`-th process.
    Check(u16, u64, usize),
    /// Every sampled flow sends a packet (`traffic`).
    Traffic,
}

/// A node's data plane, as the agent's effects left it.
pub struct Model {
    pub rows: Arc<Rows>,
    pub moving: Arc<Moving>,
    pub rules: Rules,
    pub node: NodeConfig,
    pub lease: Option<Instant>,
}

impl Model {
    pub fn plane(&self) -> Plane<'_> {
        Plane {
            rules: &self.rules,
            node: &self.node,
            rows: &self.rows,
            moving: &self.moving,
            lease: self.lease,
        }
    }
}

pub struct Node {
    pub id: u16,
    pub core: Option<Core>,
    pub model: Model,
    pub run: Run,
    /// Counts the node's agent processes, so a dead one's timer or table is not the new
    /// one's.
    life: u64,
    /// The file on the node's disk.
    pub file: Spec,
    /// What arrived while stalled: read on resume.
    held: Vec<Input>,
    wake: Option<Instant>,
    /// The services whose instance on this node does not answer (bit i: service i).
    pub apps_down: u64,
}

impl Node {
    pub fn accepts(&self, flow: &Flow, now: Instant) -> bool {
        self.model.plane().accepts(flow, now)
    }
}

pub struct Sim {
    pub seed: u64,
    pub base: Instant,
    pub now: Instant,
    pub rng: Rng,
    pub net: Net,
    pub nodes: Vec<Node>,
    /// The real state of each node's link, which its agent reads at each step.
    link_up: Vec<bool>,
    queue: BTreeMap<(Instant, u64), Ev>,
    seq: u64,
    /// The file every node will hold once its reload arrives.
    pub spec: Spec,
    /// Longest the runtime's thread takes for a table; a tenth of tables take up to
    /// ten times that, longer than a lease.
    pub table_delay: Duration,
    pub flows: Vec<Flow>,
    pub trace: Vec<String>,
    /// The first double acceptance that loss cutting two nodes apart explains, if any.
    pub loss_overlap: Option<String>,
    /// Set when a node may accept more than before (rows, rules, seed, a lease): only
    /// then can a double acceptance begin, so only then is it looked for.
    grown: bool,
    /// The settled check's table, by (view digest, file).
    expected: Option<(u64, Spec, Rows)>,
    pub cut: Option<Cut>,
    /// When the last cut healed: without a quorum, both sides serve until they agree.
    pub healed: Option<Instant>,
    /// The witness process, while it runs (with `spec::Quorum::Witness`).
    pub witness: Option<Arbiter>,
    /// The clients' connections and flows (`traffic`).
    pub traffic: Traffic,
}

impl Sim {
    /// `spec.nodes` nodes starting within `spread` of each other.
    pub fn new(spec: Spec, seed: u64, net: Net, spread: Duration) -> Sim {
        let base = Instant::now();
        let n = spec.nodes;
        let cfg = spec.config(1);
        let nodes = (1..=n)
            .map(|id| Node {
                id,
                core: None,
                model: Model {
                    rows: Arc::new(vec![]),
                    moving: Arc::new(Moving::new()),
                    rules: rules::rules(&cfg),
                    node: NodeConfig::default(),
                    lease: None,
                },
                run: Run::Down,
                life: 0,
                file: spec.clone(),
                held: vec![],
                wake: None,
                apps_down: 0,
            })
            .collect();
        let mut sim = Sim {
            seed,
            base,
            now: base,
            rng: Rng::new(seed),
            net,
            nodes,
            link_up: vec![true; usize::from(n)],
            queue: BTreeMap::new(),
            seq: 0,
            spec,
            table_delay: ms(5),
            flows: flows(),
            trace: vec![],
            loss_overlap: None,
            grown: false,
            expected: None,
            cut: None,
            healed: None,
            witness: None,
            traffic: Traffic::default(),
        };
        sim.push(base + TRAFFIC_EVERY, Ev::Traffic);
        if sim.spec.quorum == spec::Quorum::Witness {
            sim.witness = Some(Arbiter::new(WITNESS_MAX_LEASE, base - WITNESS_MAX_LEASE));
        }
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

    pub fn node(&self, id: u16) -> &Node {
        &self.nodes[usize::from(id - 1)]
    }

    fn node_mut(&mut self, id: u16) -> &mut Node {
        &mut self.nodes[usize::from(id - 1)]
    }

    pub fn core(&self, id: u16) -> &Core {
        self.node(id).core.as_ref().expect("the node has run")
    }

    pub fn up(&self, id: u16) -> bool {
        self.link_up[usize::from(id - 1)]
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    fn log(&mut self, what: String) {
        let line = format!("{:>6} ms {what}", self.elapsed().as_millis());
        self.trace.push(line);
    }

    /// A failed property: the seed that replays it and the end of the trace.
    pub fn failure(&self, what: &str) -> String {
        let tail = self.trace[self.trace.len().saturating_sub(80)..].join("\n");
        let states: String = self
            .nodes
            .iter()
            .filter_map(|n| Some((n, n.core.as_ref()?.membership())))
            .map(|(n, m)| {
                format!(
                    "\n  node {} {:?}: epoch {} {:?} view {:?} converged {}, votes {:?}",
                    n.id,
                    n.run,
                    m.epoch(),
                    m.phase(),
                    m.view().ids(),
                    m.converged(),
                    m.quorum()
                )
            })
            .collect();
        let at = self.elapsed().as_millis();
        format!("seed {}, at {at} ms: {what}\n{tail}\nthen:{states}", self.seed)
    }

    /// Processes events until `done` holds (returns when) or `deadline` passes (None).
    pub fn run_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&mut Sim) -> bool,
    ) -> Result<Option<Instant>, String> {
        while !done(self) {
            let Some(entry) = self.queue.first_entry().filter(|e| e.key().0 <= deadline) else {
                self.now = deadline;
                return Ok(None);
            };
            let ((at, _), ev) = entry.remove_entry();
            self.now = at;
            if let Ev::Traffic = ev {
                self.push(at + TRAFFIC_EVERY, Ev::Traffic);
                self.send_traffic()?;
                continue;
            }
            self.handle(ev);
            if std::mem::take(&mut self.grown) {
                self.check_safety()?;
            }
        }
        Ok(Some(self.now))
    }

    pub fn run_for(&mut self, d: Duration) -> Result<(), String> {
        self.run_until(self.now + d, |_| false).map(drop)
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver(to, from, _) if !self.reach(from, to) => {}
            Ev::Deliver(to, from, bytes) => {
                let address = if from == WITNESS { witness_address() } else { address(from) };
                self.arrive(to, Input::Datagram(bytes, address, self.now))
            }
            Ev::Ask(from, _) if !self.reach(from, WITNESS) => {}
            Ev::Ask(from, bytes) => {
                let now = self.now;
                let Some(witness) = self.witness.as_mut() else { return };
                let ask = Ballot::decode(&bytes, KEY).expect("nodes sign their asks");
                if let (Some(answer), _) = witness.ask(&ask, now) {
                    let answer = answer.encode(KEY);
                    self.datagram(WITNESS, from, answer, Ev::Deliver);
                }
            }
            Ev::Wake(id, life, at) => {
                let node = self.node_mut(id);
                if node.life == life && node.run == Run::Running && node.wake == Some(at) {
                    node.wake = None;
                    self.turn(id, vec![]);
                }
            }
            Ev::Resume(id, life) => {
                if self.node(id).life == life && self.node(id).run == Run::Stalled {
                    self.node_mut(id).run = Run::Running;
                    self.log(format!("node {id}: resumes"));
                    let held = std::mem::take(&mut self.node_mut(id).held);
                    // The runtime reads whatever waits in its socket before it acts on
                    // the clock, but the socket may have overflowed meanwhile, or its
                    // first wake-up found nothing yet: the core must not count on it.
                    if self.rng.chance(500) {
                        self.turn(id, vec![]);
                    }
                    self.turn(id, held);
                }
            }
            Ev::Start(id) => self.start(id),
            Ev::Table(id, life, digest, rows) => {
                if self.node(id).life == life {
                    self.arrive(id, Input::Table { digest, rows });
                }
            }
            Ev::Traffic => unreachable!("run_until sends the traffic, which may fail the run"),
            Ev::Check(id, life, service) => {
                let node = self.node(id);
                if node.life != life {
                    return;
                }
                // The checker runs on the agent's threads: stopped with them.
                if node.run == Run::Running {
                    let ok = node.apps_down >> service & 1 == 0;
                    let reason = if ok { "answers" } else { "does not answer" };
                    let check = Input::Check { service, checker: 0, ok, reason: reason.into() };
                    self.turn(id, vec![check]);
                }
                self.push(self.now + ms(spec::CHECK_MS), Ev::Check(id, life, service));
            }
            Ev::Reload(id) => {
                let config = self.spec.config(id);
                self.node_mut(id).file = self.spec.clone();
                let reloaded = Reloaded { config, key: KEY.to_vec() };
                self.arrive(id, Input::Reload(Ok(Box::new(reloaded))));
            }
        }
    }

    /// An input for node `id`: taken now if it runs, when it resumes if it is stalled.
    fn arrive(&mut self, id: u16, input: Input) {
        match self.node(id).run {
            Run::Running => self.turn(id, vec![input]),
            Run::Stalled => self.node_mut(id).held.push(input),
            Run::Down => {}
        }
    }

    /// Starts node `id`'s agent on its file, as `farm agent` does: the loader adopts
    /// the data plane (lease ended, the file's rules and seed), then the core starts.
    fn start(&mut self, id: u16) {
        let cfg = self.node(id).file.config(id);
        let (now, wall) = (self.now, self.elapsed().as_micros() as u64 + 1_000_000);
        let node = self.node_mut(id);
        node.life += 1;
        (node.run, node.wake) = (Run::Running, None);
        node.held.clear();
        node.model.lease = None;
        node.model.rules = rules::rules(&cfg);
        node.model.node = rules::node_config(&cfg, [2, 0, 0, 0, 0, id as u8]);
        let id_ = Identity { path: PathBuf::from("sim.yaml"), pid: u32::from(id) };
        let (core, effects) = Core::start(cfg, KEY.to_vec(), id_, now, wall);
        node.core = Some(core);
        self.log(format!("node {id}: starts as incarnation {wall}"));
        self.apply(id, effects);
        self.turn(id, vec![]);
        let life = self.node(id).life;
        for service in spec::CHECKED {
            self.push(self.now, Ev::Check(id, life, service));
        }
    }

    /// One wake-up of the runtime: what arrived, the link, one step, its effects.
    fn turn(&mut self, id: u16, mut inputs: Vec<Input>) {
        inputs.push(Input::Link(self.up(id)));
        let now = self.now;
        let core = self.node_mut(id).core.as_mut().expect("a running node has a core");
        let effects = core.step(now, inputs);
        let wake = core.next_wake();
        self.apply(id, effects);
        assert!(wake > now, "node {id} would wake in the past and spin");
        let node = self.node_mut(id);
        if node.wake != Some(wake) {
            node.wake = Some(wake);
            let life = node.life;
            self.push(wake, Ev::Wake(id, life, wake));
        }
    }

    /// The runtime's `apply`, on the model and the simulated network.
    fn apply(&mut self, id: u16, effects: Vec<Effect>) {
        for effect in effects {
            let model = &mut self.node_mut(id).model;
            match effect {
                Effect::Send { to, datagram, .. } => self.send(id, to, datagram),
                Effect::Rows(rows, moving) => {
                    (model.rows, model.moving, self.grown) = (rows, moving, true)
                }
                Effect::FlowIdle(_) => {}
                Effect::Rules(rules) => (model.rules, self.grown) = (rules, true),
                Effect::Seed(seed) => (model.node.seed, self.grown) = (seed, true),
                Effect::Lease(until) => (model.lease, self.grown) = (until, until.is_some()),
                Effect::Ask { datagram, .. } => {
                    self.datagram(id, WITNESS, datagram, |_, from, bytes| Ev::Ask(from, bytes))
                }
                Effect::Vips(_) | Effect::Reply(_) => {}
                Effect::Announce(vips) => {
                    self.log(format!("node {id}: sends the announcements of {vips:?}"))
                }
                Effect::Compute { config, view } => {
                    let rows = Arc::new(tables::rows(&config, &view));
                    let slow = self.rng.chance(100);
                    let most = self.table_delay * if slow { 10 } else { 1 };
                    let delay = Duration::from_micros(self.rng.below(most.as_micros() as u64 + 1));
                    let life = self.node(id).life;
                    self.push(self.now + delay, Ev::Table(id, life, view.digest(), rows));
                }
                Effect::Note(note) => self.note(id, note),
            }
        }
    }

    fn note(&mut self, id: u16, note: Note) {
        if !matches!(note, Note::Ignored { .. } | Note::Released { .. }) {
            self.log(format!("node {id}: {note}"));
        }
    }

    /// Whether a datagram from `from` reaches `to` now (either may be `WITNESS`): both
    /// links up, no cut between them, the witness running.
    fn reach(&self, from: u16, to: u16) -> bool {
        let up = |id: u16| if id == WITNESS { self.witness.is_some() } else { self.up(id) };
        let side = |cut: &Cut, id: u16| match id {
            WITNESS => cut.witness,
            id => Some(cut.side.contains(&id)),
        };
        let together = self.cut.as_ref().is_none_or(|cut| {
            let (a, b) = (side(cut, from), side(cut, to));
            a.is_none() || b.is_none() || a == b
        });
        up(from) && up(to) && together
    }

    /// A datagram on the simulated network: lost, duplicated, delayed as `net` says,
    /// dropped where `from` cannot reach `to` when sent or when it arrives.
    fn datagram(&mut self, from: u16, to: u16, bytes: Vec<u8>, ev: fn(u16, u16, Vec<u8>) -> Ev) {
        if !self.reach(from, to) {
            return;
        }
        let lost = self.rng.chance(self.net.loss);
        let copies = 1 + u64::from(self.rng.chance(self.net.dup));
        for _ in 0..copies {
            let at = self.now + Duration::from_micros(self.rng.below(MAX_DELAY_US + 1));
            if !lost {
                self.push(at, ev(to, from, bytes.clone()));
            }
        }
    }

    fn send(&mut self, from: u16, to: u16, datagram: Vec<u8>) {
        self.datagram(from, to, datagram, Ev::Deliver);
    }

    pub fn disturb(&mut self, d: Disturbance) -> Result<(), String> {
        self.log(format!("{d:?}"));
        match d {
            Disturbance::Kill(id) => self.down(id),
            Disturbance::Stall(id, time) => {
                let node = self.node_mut(id);
                (node.run, node.wake) = (Run::Stalled, None);
                let life = node.life;
                self.push(self.now + time, Ev::Resume(id, life));
            }
            Disturbance::Restart(id) => self.start(id),
            Disturbance::Leave(id) => {
                let now = self.now;
                let effects = self.node_mut(id).core.as_mut().expect("running").leave(now);
                self.apply(id, effects);
                self.down(id);
            }
            Disturbance::Steer(id, req) => self.turn(id, vec![Input::Request(req)]),
            Disturbance::LinkDown(id) => self.link_up[usize::from(id - 1)] = false,
            Disturbance::LinkUp(id) => self.link_up[usize::from(id - 1)] = true,
            Disturbance::App(id, service, up) => {
                let node = self.node_mut(id);
                node.apps_down = node.apps_down & !(1 << service) | u64::from(!up) << service;
            }
            Disturbance::Cut(cut) => self.cut = Some(cut),
            Disturbance::Heal => {
                if self.cut.take().is_some() {
                    self.healed = Some(self.now);
                }
            }
            Disturbance::Witness(false) => self.witness = None,
            Disturbance::Witness(true) => {
                self.witness.get_or_insert(Arbiter::new(WITNESS_MAX_LEASE, self.now));
            }
            Disturbance::Reload(spec, spread) => {
                self.spec = *spec;
                for id in 1..=self.spec.nodes {
                    let after =
                        Duration::from_micros(self.rng.below(spread.as_micros() as u64 + 1));
                    self.push(self.now + after, Ev::Reload(id));
                }
            }
        }
        self.check_safety()
    }

    fn down(&mut self, id: u16) {
        let node = self.node_mut(id);
        (node.run, node.wake) = (Run::Down, None);
        node.life += 1;
        node.held.clear();
    }

    pub fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.run == Run::Running)
    }

    /// Flows node `id` accepts now.
    pub fn owned(&self, id: u16) -> usize {
        self.flows.iter().filter(|f| self.node(id).accepts(f, self.now)).count()
    }
}
