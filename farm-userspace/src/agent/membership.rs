//! Membership: which peers are alive, the view this node holds, and when it may install
//! that view's table. A pure state machine driven by heartbeats and the clock; the agent
//! does the I/O its events ask for. The simulation tests drive several of these with
//! lost and late datagrams and check that no bucket ever has two owners.
//!
//! The protocol, for the closing note and for whoever changes it:
//! - A view is this node plus every peer heard within the failure time, each with its
//!   incarnation and weight override, plus the digest of the shared configuration. Its
//!   digest is what peers compare.
//! - When the view changes, its epoch goes past every epoch this node knows; a node that
//!   hears the same view under a larger epoch takes that epoch. So nodes that see the
//!   same members end on the same (view, epoch).
//! - Installing is two-phase, so no bucket is owned twice even while it moves between
//!   two live nodes: once every member advertises (view, epoch), each node gives up the
//!   buckets the new table moves away from it (`Release`) and says so; once every member
//!   says so, each takes its new buckets (`Install`).
//! - A node that was failed cannot still own anything. Its lease is never more than two
//!   thirds of the failure time ahead, so an agent that dies or hangs stops its node
//!   accepting before anyone takes over. Every heartbeat also acknowledges the newest
//!   heartbeat heard from each peer, and the lease ends before the failure time counted
//!   from the sending of the newest heartbeat that each peer heard lately acknowledged:
//!   a live node whose heartbeats to a peer are lost stops accepting before that peer
//!   fails it (see `lease_deadline`). The acknowledgement rides on the next periodic
//!   heartbeat where that comes soon enough (with 3 or more missed heartbeats to a
//!   failure it always does: the lease still runs an interval less a margin past the
//!   next one), and is sent at once otherwise (see `core`): answering every heartbeat
//!   doubled a farm's N·(N−1) datagrams an interval. What bounds a lease is unchanged, a
//!   send time the peer really heard. A peer whose acknowledgement dates a heartbeat
//!   before a lost one is asked for a fresh one, which it sends at once
//!   (`acked_stale`): should it die, the old one would end the lease while the dead peer
//!   still counts as heard lately, and fence a healthy node. A node whose
//!   lease ran out while it owned buckets rejoins as a new incarnation, and a node that
//!   sees a peer settle on a view without it fences at once.
//! - A new node waits one failure time before it considers its view, so it hears the
//!   farm before it could believe itself alone and take every bucket. So does a node
//!   whose link went down, or whose agent stalled: it has failed peers that may be
//!   alive. (A lease that ran out for want of acknowledgements rejoins at once.)
//! - A failed peer stays failed in that incarnation until it shows it is alive now: a
//!   heartbeat acknowledging one this node sent after failing it. Heartbeats a dead
//!   agent sent before it died, arriving late, revive nothing. To let two nodes that
//!   failed each other (a healed partition) show that, acknowledgements also name
//!   the newest heartbeat heard from a failed peer.
//! - With `quorum: majority` (`quorum`), a node releases or installs only a view that
//!   holds a majority of the votes, and its lease also ends before the fewest peers
//!   that could be quorate without it could all have failed it: a minority stops
//!   accepting before the majority takes its buckets, so a partition never has two
//!   owners of a bucket. A view that is quorate only with the witness's vote serves only
//!   while the witness's grant lasts.
//! - A node installs a view's table only once the agent has computed it
//!   (`tables_ready`): computing is slow at many buckets and nodes, and happens off the
//!   agent's loop.
use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    quorum::{Quorum, QuorumStatus, WitnessStatus},
    wire::{Heartbeat, Kind, Phase, ServiceBits},
};
use crate::{
    config::QuorumMode,
    witness::wire::{self as ballot, Ballot},
};

/// One member of a view, with what decides its share of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewMember {
    pub id: u16,
    pub incarnation: u64,
    /// `farm weight N`: this weight in every table instead of the configuration's.
    pub weight: Option<u32>,
    /// `farm drain`: weight 0 in every table, until `farm undrain`.
    pub drained: bool,
    /// Its state of each service: health, drain, active-backup.
    #[serde(default)]
    pub services: ServiceBits,
}

/// The members every node must agree on before installing a table, in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub members: Vec<ViewMember>,
    /// Digest of the shared part of the configuration: nodes that read different files
    /// would compute different tables, so their views never match.
    pub config: u64,
}

impl View {
    pub fn digest(&self) -> u64 {
        let mut h = Sha256::new();
        h.update(self.config.to_be_bytes());
        for m in &self.members {
            h.update(m.id.to_be_bytes());
            h.update(m.incarnation.to_be_bytes());
            h.update(m.weight.map_or(u64::MAX, u64::from).to_be_bytes());
            h.update([u8::from(m.drained)]);
            for word in m.services.words() {
                h.update(word.to_be_bytes());
            }
        }
        u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
    }

    pub fn ids(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.id).collect()
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub me: u16,
    /// The other nodes of the configuration.
    pub peers: Vec<u16>,
    /// Silence after which a peer is failed: heartbeat interval x failure threshold.
    pub failure: Duration,
    pub config: u64,
    pub cluster: u64,
    pub quorum: QuorumMode,
    /// The `farm witness` that breaks ties, if any.
    pub witness: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerState {
    /// Never heard from (since this agent started).
    Unknown,
    Alive,
    /// Silent for longer than the failure time.
    Failed,
    /// Said it was leaving.
    Left,
}

/// A peer as a member of a view, as its heartbeat says.
fn member(id: u16, hb: &Heartbeat) -> ViewMember {
    ViewMember {
        id,
        incarnation: hb.incarnation,
        weight: hb.weight,
        drained: hb.drained,
        services: hb.services,
    }
}

/// Whether `new`, from the sender of `old`, holds all that `settle` reads of a peer's
/// heartbeat as `old` did: its kind, view, epoch and phase, its members, its part in a
/// view (`member`), its file, its votes, and whether it acknowledges `me`.
fn same_to_settle(old: &Heartbeat, new: &Heartbeat, me: u16) -> bool {
    let acks_me = |hb: &Heartbeat| hb.acks.iter().any(|(id, _)| *id == me);
    old.kind == new.kind
        && (old.view, old.epoch, old.phase, old.config)
            == (new.view, new.epoch, new.phase, new.config)
        && member(0, old) == member(0, new)
        && old.members == new.members
        && (old.votes_epoch, &old.votes) == (new.votes_epoch, &new.votes)
        && acks_me(old) == acks_me(new)
}

/// The longest lease, whatever the acknowledgements: two thirds of the failure time, so
/// a dead or hung agent's node stops accepting a third of it before peers act (and, the
/// threshold being at least 2, it outlasts the interval between two renewals).
pub const fn longest_lease(failure: Duration) -> Duration {
    Duration::from_nanos((failure.as_nanos() * 2 / 3) as u64)
}

/// What a lease keeps back from the moment a peer could act: the data plane's clock
/// ticks, and the peer's clock running a little faster.
fn lease_margin(failure: Duration) -> Duration {
    (failure / 30).max(Duration::from_millis(10))
}

/// Sent heartbeats are remembered for this many failure times to date acknowledgements:
/// an older acknowledgement could only end the lease at once, as none at all does.
const SENT_MEMORY_FAILURES: u32 = 2;

#[derive(Debug, Clone)]
struct Peer {
    state: PeerState,
    last: Option<(Instant, Heartbeat)>,
    /// The newest heartbeat heard of the peer's newest incarnation, (incarnation, seq),
    /// taken or not: what this node acknowledges.
    heard: Option<(u64, u64)>,
    /// When this node sent the newest heartbeat the peer acknowledged; raised to the
    /// moment the peer came up if it had not heard this node then.
    acked: Option<Instant>,
    /// This node's sequence number when it failed the peer: an acknowledgement past it
    /// shows the peer alive since.
    failed_at_seq: Option<u64>,
    /// The configuration digest last warned about, so a mismatch is logged once.
    warned_config: Option<u64>,
}

/// What changed in the membership, for the operator to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    PeerUp { id: u16, incarnation: u64, restarted: bool },
    PeerFailed { id: u16, silent: Duration },
    PeerLeft { id: u16 },
    ConfigDiffers { id: u16 },
    ViewChanged { epoch: u64, members: Vec<u16> },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::PeerUp { id, incarnation, restarted: false } => {
                write!(f, "node {id} is up (incarnation {incarnation})")
            }
            Change::PeerUp { id, incarnation, restarted: true } => {
                write!(f, "node {id} restarted (incarnation {incarnation})")
            }
            Change::PeerFailed { id, silent } => {
                write!(f, "node {id} failed: no heartbeat for {} ms", silent.as_millis())
            }
            Change::PeerLeft { id } => write!(f, "node {id} left the farm"),
            Change::ConfigDiffers { id } => write!(
                f,
                "node {id} runs a different configuration: tables stay as they are until every node has the same file"
            ),
            Change::ViewChanged { epoch, members } => {
                write!(f, "view of epoch {epoch}: members {members:?}")
            }
        }
    }
}

/// What the agent must do or log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Changed(Change),
    /// Give up every bucket the view's table does not give this node.
    Release {
        epoch: u64,
        view: View,
    },
    /// Install the view's table.
    Install {
        epoch: u64,
        view: View,
    },
    /// Own nothing until the next `Install`.
    Fence {
        reason: String,
    },
    /// Send a heartbeat now rather than at the next tick: peers are waiting on it.
    Send,
}

/// Why a heartbeat was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("from another cluster, an unknown node, or this node's own id")]
    Foreign,
    #[error("from an older incarnation of its sender")]
    Stale,
    #[error("from an incarnation this node failed, with no sign it has heard this node since")]
    Failed,
    #[error("a repeat of a heartbeat already seen (replayed)")]
    Replayed,
}

/// How a peer looks from here, for `farm status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub id: u16,
    pub state: PeerState,
    pub incarnation: Option<u64>,
    pub epoch: Option<u64>,
    pub phase: Option<Phase>,
    pub heartbeat_age_ms: Option<u64>,
    pub weight: Option<u32>,
    pub drained: bool,
    pub same_config: Option<bool>,
    #[serde(default)]
    pub services: ServiceBits,
}

impl Peer {
    fn unknown() -> Peer {
        Peer {
            state: PeerState::Unknown,
            last: None,
            heard: None,
            acked: None,
            failed_at_seq: None,
            warned_config: None,
        }
    }
}

pub struct Membership {
    settings: Settings,
    incarnation: u64,
    /// Counts every heartbeat of this process, across incarnations, so that an
    /// acknowledgement names one heartbeat only.
    seq: u64,
    /// The heartbeats sent within `SENT_MEMORY_FAILURES` failure times: (seq, when).
    sent: VecDeque<(u64, Instant)>,
    weight: Option<u32>,
    drained: bool,
    services: ServiceBits,
    peers: BTreeMap<u16, Peer>,
    epoch: u64,
    view: View,
    digest: u64,
    phase: Phase,
    /// When the joining wait began; `None` from a fence until the next tick starts it.
    started: Option<Instant>,
    joined: bool,
    /// True while this node owns nothing on purpose (at start, after a fence).
    fenced: bool,
    /// Why, since the last fence (until the next install).
    fence_reason: Option<String>,
    /// The view digest whose table the agent has computed: no release or install
    /// before it is this view's.
    ready: Option<u64>,
    quorum: Quorum,
    /// The witness's vote, as its answers grant it: for which view, until when (by this
    /// node's clock, counted from the ask).
    grant: Option<(Vec<u16>, Instant)>,
    /// The witness's last answer: when, and the view it said holds its vote.
    witness_said: Option<(Instant, Vec<u16>)>,
    /// The latest moment a heartbeat, an answer or the clock brought.
    now: Instant,
}

impl Membership {
    pub fn new(settings: Settings, incarnation: u64, now: Instant) -> Membership {
        let peers = settings
            .peers
            .iter()
            .filter(|&&id| id != settings.me)
            .map(|&id| (id, Peer::unknown()))
            .collect();
        let mut m = Membership {
            incarnation,
            seq: 0,
            sent: VecDeque::new(),
            weight: None,
            drained: false,
            services: ServiceBits::default(),
            peers,
            epoch: 0,
            view: View { members: vec![], config: settings.config },
            digest: 0,
            phase: Phase::Proposed,
            started: Some(now),
            joined: false,
            fenced: true,
            fence_reason: Some("starting: no view agreed yet".to_string()),
            ready: None,
            quorum: Quorum::new(settings.quorum, settings.witness.is_some(), &settings.peers),
            grant: None,
            witness_said: None,
            now,
            settings,
        };
        m.view = m.current_view();
        m.digest = m.view.digest();
        m
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// True when every member of this node's view holds the same view and epoch.
    pub fn converged(&self) -> bool {
        self.joined && self.others().all(|(_, hb)| hb.view == self.digest && hb.epoch == self.epoch)
    }

    /// Whether every member holds this node's view, installed, and this node is not
    /// fenced: nothing is under way.
    pub fn settled(&self) -> bool {
        !self.fenced
            && self.phase == Phase::Installed
            && self.converged()
            && self.others().all(|(_, hb)| hb.phase == Phase::Installed)
    }

    pub fn weight(&self) -> (Option<u32>, bool) {
        (self.weight, self.drained)
    }

    /// Whether this node may own buckets now (it is not fenced).
    pub fn owns(&self) -> bool {
        !self.fenced
    }

    /// Why this node owns nothing, while it does not.
    pub fn fenced(&self) -> Option<&str> {
        self.fence_reason.as_deref().filter(|_| self.fenced)
    }

    /// The digest of the view this node holds: the table the agent must compute.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The agent has computed the table of the view with `digest`.
    pub fn tables_ready(&mut self, digest: u64) -> Vec<Event> {
        self.ready = Some(digest);
        self.settle()
    }

    /// The next heartbeat to send, at `now`; `reply` for the answer to one peer's.
    pub fn heartbeat(&mut self, kind: Kind, now: Instant, reply: bool) -> Heartbeat {
        self.seq += 1;
        let memory = self.settings.failure * SENT_MEMORY_FAILURES;
        while self.sent.front().is_some_and(|&(_, at)| at + memory < now) {
            self.sent.pop_front();
        }
        self.sent.push_back((self.seq, now));
        // Failed peers too: a peer that failed this node learns from it that this node
        // hears it, and may then take it back (see `receive`).
        let acks = self
            .peers
            .iter()
            .filter(|(_, p)| matches!(p.state, PeerState::Alive | PeerState::Failed))
            .filter_map(|(&id, p)| p.heard.map(|(_, seq)| (id, seq)))
            .collect();
        let (votes_epoch, votes) = self.quorum.installed();
        Heartbeat {
            kind,
            cluster: self.settings.cluster,
            node: self.settings.me,
            incarnation: self.incarnation,
            seq: self.seq,
            epoch: self.epoch,
            view: self.digest,
            phase: self.phase,
            config: self.settings.config,
            weight: self.weight,
            drained: self.drained,
            reply,
            ask: false,
            services: self.services,
            members: self.view.ids(),
            acks,
            votes_epoch,
            votes,
            apart: vec![],
        }
    }

    /// Until when this node may accept: never more than two thirds of the failure time
    /// ahead, and, for each peer heard within half the failure time, before that peer
    /// could fail this node by the acknowledgements it sent (a small margin covers the
    /// data plane's clock ticks).
    ///
    /// Why only peers heard lately: a peer that this node hears but that does not hear
    /// it (loss one way) would fail it while it still accepts, were its lease not bound
    /// by that peer's acknowledgements. A peer silent both ways is dead, or cut off as by
    /// a partition, where no protocol without a quorum keeps both sides from serving;
    /// bounding by a dead peer's last acknowledgement would only make every survivor's
    /// lease run out just before it fails that peer.
    ///
    /// With a quorum, a partition is no excuse: the lease also ends before the fewest
    /// voters that could be quorate without this node could all have failed it (the
    /// `k`-th earliest of their acknowledgements, a voter never heard counting as now),
    /// and, where this node's view is quorate only with the witness's vote, when the
    /// witness's grant ends.
    pub fn lease_deadline(&self, now: Instant) -> Instant {
        let failure = self.settings.failure;
        let ends = |p: Option<&Peer>| p.and_then(|p| self.acked_until(p)).unwrap_or(now);
        let lately = self
            .peers
            .values()
            .filter(|p| self.lately_until(p).is_some_and(|until| now < until))
            .map(|p| ends(Some(p)));
        let me = self.settings.me;
        let quorum = self.quorum.lease_bound(me, |id| ends(self.peers.get(&id)));
        let witness = self
            .quorum
            .needs_witness(&self.view.ids())
            .then(|| self.grant.as_ref().map_or(now, |(_, until)| *until));
        lately.chain(quorum).chain(witness).fold(now + longest_lease(failure), Instant::min)
    }

    /// Whether this node's view is quorate now (always, without a quorum).
    pub fn quorate(&self) -> bool {
        self.quorum.quorate(&self.view.ids(), self.holds_witness())
    }

    /// The vote sets and exclusions (a simulation's failure report prints them).
    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    fn holds_witness(&self) -> bool {
        let ids = self.view.ids();
        self.grant.as_ref().is_some_and(|(members, until)| *members == ids && self.now < *until)
    }

    /// What `farm status` shows of the quorum.
    pub fn quorum_status(&self, now: Instant) -> QuorumStatus {
        let witness = self.settings.witness.map(|address| WitnessStatus {
            address,
            held: self.holds_witness(),
            holder: self.witness_said.as_ref().map(|(_, h)| h.clone()).unwrap_or_default(),
            answered_ms_ago: self
                .witness_said
                .as_ref()
                .map(|(at, _)| now.saturating_duration_since(*at).as_millis() as u64),
        });
        self.quorum.status(&self.view.ids(), witness)
    }

    /// The ask for the witness's vote for this node's view, sent every heartbeat
    /// interval where a witness is named: the grant lasts one failure time.
    pub fn witness_ask(&mut self, now: Instant) -> Option<(std::net::SocketAddr, Ballot)> {
        let address = self.settings.witness?;
        self.seq += 1;
        self.sent.push_back((self.seq, now));
        let ask = Ballot {
            kind: ballot::Kind::Ask,
            cluster: self.settings.cluster,
            node: self.settings.me,
            incarnation: self.incarnation,
            seq: self.seq,
            lease_ms: self.settings.failure.as_millis() as u32,
            members: self.view.ids(),
        };
        Some((address, ask))
    }

    /// The witness's answer to one of this node's asks.
    pub fn witness_answer(&mut self, answer: Ballot, now: Instant) -> Result<Vec<Event>, Refused> {
        let ours = answer.kind == ballot::Kind::Answer
            && answer.cluster == self.settings.cluster
            && answer.node == self.settings.me
            && self.settings.witness.is_some();
        if !ours {
            return Err(Refused::Foreign);
        }
        // Its grant counts from when this node asked: never longer than the witness's.
        let asked = self.sent_at(answer.seq).filter(|_| answer.incarnation == self.incarnation);
        let asked = asked.ok_or(Refused::Stale)?;
        self.now = self.now.max(now);
        let lease = Duration::from_millis(u64::from(answer.lease_ms));
        if lease > Duration::ZERO {
            let until = asked + lease.saturating_sub(lease_margin(self.settings.failure));
            if self.grant.as_ref().is_none_or(|(_, held)| *held < until) {
                self.grant = Some((answer.members.clone(), until));
            }
        } else if self.grant.as_ref().is_some_and(|(members, _)| *members != answer.members) {
            // Another view holds it: whatever this node was granted before is over at
            // the witness, hence here.
            self.grant = None;
        }
        self.witness_said = Some((now, answer.members));
        Ok(self.settle())
    }

    /// How long since `id` was last heard from, if ever.
    pub fn silent_for(&self, id: u16, now: Instant) -> Option<Duration> {
        let (at, _) = self.peers.get(&id)?.last.as_ref()?;
        Some(now.saturating_duration_since(*at))
    }

    /// Whether `id`'s newest acknowledgement of this node would end its lease while `id`
    /// still counts as heard lately (`lease_deadline`): it dates a heartbeat before one
    /// that was lost (or late), and if `id` died now this node would fence, though
    /// healthy, before `id` stopped counting. An ask gets a fresh one a round trip
    /// later (`Heartbeat::ask`); a periodic heartbeat's came too late, or never.
    pub fn acked_stale(&self, id: u16) -> bool {
        let Some(peer) = self.peers.get(&id) else { return false };
        self.lately_until(peer)
            .is_some_and(|lately| self.acked_until(peer).is_none_or(|acked| acked < lately))
    }

    /// Until when `peer`'s acknowledgements bound this node's lease: a failure time less
    /// a margin after the sending of the newest heartbeat of this node it heard (`None`:
    /// it heard none, and would bound the lease to now).
    fn acked_until(&self, peer: &Peer) -> Option<Instant> {
        let failure = self.settings.failure;
        peer.acked.map(|at| at + failure - lease_margin(failure))
    }

    /// Until when `peer` counts as heard lately, its acknowledgements bounding this
    /// node's lease (`lease_deadline`): half a failure time after its last heartbeat
    /// came, while it is alive.
    fn lately_until(&self, peer: &Peer) -> Option<Instant> {
        let (heard, _) = peer.last.as_ref().filter(|_| peer.state == PeerState::Alive)?;
        Some(*heard + self.settings.failure / 2)
    }

    /// When this node sent heartbeat `seq`, or a moment before (the send time of the
    /// newest remembered heartbeat up to it): never later, so a lease it bounds never
    /// runs longer than it may. `None` when older than the memory.
    fn sent_at(&self, seq: u64) -> Option<Instant> {
        let at = self.sent.partition_point(|&(s, _)| s <= seq);
        at.checked_sub(1).map(|i| self.sent[i].1)
    }

    /// Takes a heartbeat whose signature checked out.
    pub fn receive(&mut self, hb: Heartbeat, now: Instant) -> Result<Vec<Event>, Refused> {
        if hb.cluster != self.settings.cluster {
            return Err(Refused::Foreign);
        }
        let (config, me) = (self.settings.config, self.settings.me);
        let acked_seq = hb.acks.iter().find(|(id, _)| *id == me).map(|&(_, seq)| seq);
        let acked_at = acked_seq.and_then(|seq| self.sent_at(seq));
        self.now = self.now.max(now);
        let peer = self.peers.get_mut(&hb.node).ok_or(Refused::Foreign)?;
        match peer.heard {
            Some((inc, _)) if hb.incarnation < inc => return Err(Refused::Stale),
            Some((inc, seq)) if hb.incarnation == inc && hb.seq <= seq => {
                return Err(Refused::Replayed);
            }
            _ => {}
        }
        let restarted = peer.heard.is_some_and(|(inc, _)| inc != hb.incarnation);
        peer.heard = Some((hb.incarnation, hb.seq));
        // A failed incarnation comes back only by acknowledging a heartbeat this node
        // sent after failing it: late datagrams of a dead agent cannot.
        if peer.state == PeerState::Failed && !restarted {
            let alive_since = acked_seq.zip(peer.failed_at_seq).is_some_and(|(a, f)| a > f);
            if !alive_since {
                return Err(Refused::Failed);
            }
        }
        peer.acked = peer.acked.max(acked_at);
        let mut events = Vec::new();
        match hb.kind {
            Kind::Leave if peer.state != PeerState::Left => {
                peer.state = PeerState::Left;
                self.quorum.left(hb.node);
                events.push(Event::Changed(Change::PeerLeft { id: hb.node }));
            }
            Kind::Leave => {}
            // A node that left comes back only as a new incarnation.
            Kind::Alive if peer.state == PeerState::Left && !restarted => {}
            Kind::Alive if peer.state != PeerState::Alive || restarted => {
                peer.state = PeerState::Alive;
                peer.failed_at_seq = None;
                // A peer that has not heard this node yet (a new process, or back from
                // a cut) counts it from now; one that has keeps what it acknowledged,
                // as its failure timer kept running (a rejoin keeps its process).
                if hb.members.binary_search(&me).is_err() {
                    peer.acked = peer.acked.max(Some(now));
                }
                let up = Change::PeerUp { id: hb.node, incarnation: hb.incarnation, restarted };
                events.push(Event::Changed(up));
            }
            Kind::Alive => {}
        }
        if hb.config != config && peer.warned_config != Some(hb.config) {
            events.push(Event::Changed(Change::ConfigDiffers { id: hb.node }));
        }
        peer.warned_config = Some(hb.config).filter(|&c| c != config);
        let adopted = hb.kind == Kind::Alive
            && peer.state == PeerState::Alive
            && self.quorum.adopt(hb.node, hb.votes_epoch, &hb.votes);
        // The same view under a larger epoch: take the epoch, so the two converge.
        if hb.kind == Kind::Alive && hb.view == self.digest && hb.epoch > self.epoch {
            self.epoch = hb.epoch;
            self.phase = Phase::Proposed;
            events.push(Event::Send);
        }
        // A heartbeat that tells `settle` nothing new leaves it nothing to do: most of a
        // quiet farm's (at 32 nodes, a settle for each was a twentieth of the agent's
        // CPU). The step's tick settles anyway.
        let news = adopted
            || !events.is_empty()
            || peer.last.as_ref().is_none_or(|(_, old)| !same_to_settle(old, &hb, me));
        peer.last = Some((now, hb));
        if news {
            events.extend(self.settle());
        }
        Ok(events)
    }

    /// Fails peers silent for longer than the failure time, ends the joining wait.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        self.now = self.now.max(now);
        let mut events = Vec::new();
        for (&id, peer) in &mut self.peers {
            if let (PeerState::Alive, Some((at, _))) = (peer.state, &peer.last) {
                let silent = now.saturating_duration_since(*at);
                if silent > self.settings.failure {
                    peer.state = PeerState::Failed;
                    peer.failed_at_seq = Some(self.seq);
                    events.push(Event::Changed(Change::PeerFailed { id, silent }));
                }
            }
        }
        let started = *self.started.get_or_insert(now);
        if !self.joined && now.saturating_duration_since(started) >= self.settings.failure {
            self.joined = true;
        }
        events.extend(self.settle());
        events
    }

    /// When the next peer would be failed, or stop bounding the lease (see
    /// `lease_deadline`), so the agent can wake exactly then: a dead peer's last
    /// acknowledgement may end the lease soon after it stops counting, and the lease
    /// must be renewed before that.
    pub fn next_deadline(&self) -> Option<Instant> {
        let failure = self.settings.failure;
        let joining = self.started.filter(|_| !self.joined).map(|at| at + failure);
        let tick = Duration::from_millis(1);
        self.peers
            .values()
            .filter_map(|p| Some((self.lately_until(p)?, p.last.as_ref()?.0)))
            .flat_map(|(lately, heard)| [lately + tick, heard + failure + tick])
            // Past moments were acted on by the tick that brought `now`.
            .filter(|&at| at > self.now)
            .chain(joining)
            .min()
    }

    /// `farm weight` / `farm drain` on this node.
    pub fn set_weight(&mut self, weight: Option<u32>, drained: bool) -> Vec<Event> {
        self.weight = weight;
        self.drained = drained;
        self.settle()
    }

    /// This node's state of each service, as its agent judges it.
    pub fn set_services(&mut self, services: ServiceBits) -> Vec<Event> {
        if services == self.services {
            return vec![];
        }
        self.services = services;
        self.settle()
    }

    pub fn services(&self) -> ServiceBits {
        self.services
    }

    /// A reloaded configuration: new digest, maybe other peers.
    pub fn reconfigure(&mut self, settings: Settings) -> Vec<Event> {
        self.peers.retain(|id, _| settings.peers.contains(id) && *id != settings.me);
        for &id in settings.peers.iter().filter(|&&id| id != settings.me) {
            self.peers.entry(id).or_insert(Peer::unknown());
        }
        let witness = settings.witness.is_some();
        self.quorum.reconfigure(settings.quorum, witness, &settings.peers);
        if settings.witness != self.settings.witness {
            (self.grant, self.witness_said) = (None, None);
        }
        self.settings = settings;
        self.settle()
    }

    /// Starts a new incarnation after the lease ran out (peers may have failed this node
    /// and taken its buckets) or the link came back. Owns nothing until the farm has
    /// agreed on a view with the new incarnation in it. `wait`: first wait a failure time
    /// to hear the farm, as a new node does, where this node itself may have failed live
    /// peers (its agent stalled, its link was down); without it, a lease that ran out
    /// for lack of acknowledgements costs this node's buckets one round of agreement.
    pub fn rejoin(&mut self, incarnation: u64, reason: String, wait: bool) -> Vec<Event> {
        self.incarnation = incarnation;
        let mut events = match wait {
            true => self.fence(reason),
            false => self.drop_rows(reason),
        };
        events.extend(self.settle());
        events
    }

    /// Starts over after the agent stalled: a new incarnation that remembers no peer, so
    /// it acts on no deadline that passed while it slept (it would fail live peers and
    /// settle alone), and waits a failure time to hear the farm, as a new node does.
    pub fn restart(&mut self, incarnation: u64, reason: String) -> Vec<Event> {
        for peer in self.peers.values_mut() {
            *peer = Peer::unknown();
        }
        self.rejoin(incarnation, reason, true)
    }

    /// Owns nothing from now until the farm agrees on a view again, which it first waits
    /// a failure time to hear, as a new node does. The agent fences when its link goes
    /// down: cut off, this node fails every peer and would settle alone on every bucket
    /// while its lease still runs; back, the peers it failed are alive for all it knows.
    pub fn fence(&mut self, reason: String) -> Vec<Event> {
        self.joined = false;
        self.started = None;
        self.drop_rows(reason)
    }

    /// Owns nothing from now until the next install.
    fn drop_rows(&mut self, reason: String) -> Vec<Event> {
        self.phase = Phase::Proposed;
        if self.fenced {
            return vec![];
        }
        self.fenced = true;
        self.fence_reason = Some(reason.clone());
        vec![Event::Fence { reason }]
    }

    fn others(&self) -> impl Iterator<Item = (u16, &Heartbeat)> {
        self.peers
            .iter()
            .filter(|(_, p)| p.state == PeerState::Alive)
            .filter_map(|(&id, p)| p.last.as_ref().map(|(_, hb)| (id, hb)))
    }

    fn current_view(&self) -> View {
        let mut members: Vec<ViewMember> =
            self.others().map(|(id, hb)| member(id, hb)).chain([self.member()]).collect();
        members.sort_by_key(|m| m.id);
        View { members, config: self.settings.config }
    }

    /// Whether `current_view` is the view held, found without building it: most calls
    /// find it so, and building it cost an allocation and a sort per heartbeat received.
    fn view_unchanged(&self) -> bool {
        let me = self.settings.me;
        self.view.config == self.settings.config
            && self.view.members.len() == self.others().count() + 1
            && self.view.members.iter().all(|m| match m.id == me {
                true => *m == self.member(),
                false => self.peers.get(&m.id).is_some_and(|p| {
                    p.state == PeerState::Alive
                        && p.last.as_ref().is_some_and(|(_, hb)| *m == member(m.id, hb))
                }),
            })
    }

    /// This node as a member of its view.
    fn member(&self) -> ViewMember {
        ViewMember {
            id: self.settings.me,
            incarnation: self.incarnation,
            weight: self.weight,
            drained: self.drained,
            services: self.services,
        }
    }

    /// Moves the view and the install phases forward as far as what is known allows.
    fn settle(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        // Most calls find the view as it was (`view_unchanged`); a view built anew may
        // still be the same (its digest says).
        let changed = (!self.view_unchanged()).then(|| self.current_view());
        let digest = changed.as_ref().map_or(self.digest, View::digest);
        if let Some(view) = changed.filter(|_| digest != self.digest) {
            let agreeing =
                self.others().filter(|(_, hb)| hb.view == digest).map(|(_, hb)| hb.epoch);
            self.epoch = match agreeing.max() {
                Some(theirs) => theirs.max(self.epoch + 1),
                None => self.others().map(|(_, hb)| hb.epoch).fold(self.epoch, u64::max) + 1,
            };
            self.digest = digest;
            self.view = view;
            self.phase = Phase::Proposed;
            // A table known ready for this view before is the agent's to confirm again.
            self.ready = None;
            let members = self.view.ids();
            events.push(Event::Changed(Change::ViewChanged { epoch: self.epoch, members }));
            events.push(Event::Send);
        }
        // A peer that settled on a view without this node will take its buckets; so may
        // one that hears it (acknowledges it) and leaves it out: it has failed it.
        let me = self.settings.me;
        let excluded = self
            .others()
            .filter(|(_, hb)| hb.members.binary_search(&me).is_err())
            .find(|(_, hb)| hb.phase >= Phase::Released || hb.acks.iter().any(|(id, _)| *id == me))
            .map(|(id, _)| id);
        if let Some(id) = excluded {
            let reason = format!("node {id} failed this node or settled on a view without it");
            events.extend(self.drop_rows(reason));
        }
        if !self.quorate() {
            let ids = self.view.ids();
            let reason = format!("no quorum: {}", self.quorum_status(self.now).describe(&ids));
            // Whatever fenced it first (a lease that ran out, a peer that failed it),
            // the quorum is what keeps it fenced now: status and logs say so.
            let said = self.fence_reason.as_ref().is_some_and(|r| r.starts_with("no quorum"));
            match (self.fenced, said) {
                // Logged once; status keeps up with the votes and the witness's holder.
                (true, true) => self.fence_reason = Some(reason),
                (true, false) => {
                    self.fenced = false;
                    events.extend(self.drop_rows(reason));
                }
                (false, _) => events.extend(self.drop_rows(reason)),
            }
            return events;
        }
        if !self.converged() || self.ready != Some(self.digest) {
            return events;
        }
        if self.phase == Phase::Proposed {
            self.phase = Phase::Released;
            self.quorum.released(&self.view.ids(), self.epoch);
            events.push(Event::Release { epoch: self.epoch, view: self.view.clone() });
            events.push(Event::Send);
        }
        if self.phase == Phase::Released && self.others().all(|(_, hb)| hb.phase >= Phase::Released)
        {
            self.phase = Phase::Installed;
            self.fenced = false;
            self.fence_reason = None;
            self.quorum.agreed(&self.view.ids(), self.epoch);
            events.push(Event::Install { epoch: self.epoch, view: self.view.clone() });
            events.push(Event::Send);
        }
        events
    }

    pub fn peers(&self, now: Instant) -> Vec<PeerStatus> {
        self.peers
            .iter()
            .map(|(&id, p)| {
                let hb = p.last.as_ref().map(|(_, hb)| hb);
                PeerStatus {
                    id,
                    state: p.state,
                    incarnation: hb.map(|hb| hb.incarnation),
                    epoch: hb.map(|hb| hb.epoch),
                    phase: hb.map(|hb| hb.phase),
                    heartbeat_age_ms: p
                        .last
                        .as_ref()
                        .map(|(at, _)| now.saturating_duration_since(*at).as_millis() as u64),
                    weight: hb.and_then(|hb| hb.weight),
                    drained: hb.is_some_and(|hb| hb.drained),
                    same_config: hb.map(|hb| hb.config == self.settings.config),
                    services: hb.map_or_else(ServiceBits::default, |hb| hb.services),
                }
            })
            .collect()
    }
}
