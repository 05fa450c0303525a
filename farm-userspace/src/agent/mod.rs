//! `farm agent`: the membership agent. It puts the program on the NIC (or adopts the one
//! pinned there), holds the VIPs on the host, exchanges signed heartbeats with its peers,
//! installs the table of the view the farm agrees on, and keeps the data plane's lease
//! where the membership allows: two thirds of the time peers take to fail this node at
//! most, and never past the moment a peer that stopped hearing it could fail it. So an
//! agent that dies or hangs, or whose heartbeats are lost, stops its node accepting
//! before anyone takes over.
//!
//! The I/O is here; the decisions are in `membership` (who is alive, when to install)
//! and `tables` (what to install), both pure.
pub mod control;
mod host;
mod key;
pub mod membership;
#[cfg(test)]
mod simulation;
pub mod tables;
pub mod wire;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use log::{debug, error, info, warn};
use tokio::{
    net::UdpSocket,
    signal::unix::{SignalKind, signal},
    sync::mpsc,
    time::sleep_until,
};

use self::{
    control::{AgentStatus, Asked, HeartbeatCounters, Reply, Request},
    host::Host,
    membership::{Event, Membership, Refused, Settings},
    wire::{Heartbeat, Kind, WireError},
};
use crate::{
    config::{self, Config},
    dataplane::Dataplane,
    loader, nic, rules,
};

/// Leave datagrams sent on SIGTERM: UDP may lose one.
const LEAVE_COPIES: usize = 3;

/// Runs the agent until SIGTERM or SIGINT (a clean leave) or a fatal error.
pub fn run(config: &Path) -> Result<()> {
    unblock_signals()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut agent = Agent::start(config).await?;
        let outcome = agent.serve().await;
        agent.stop(outcome.is_ok()).await;
        outcome
    })
}

struct Agent {
    path: PathBuf,
    cfg: Config,
    key: Vec<u8>,
    dp: Dataplane,
    /// Dropped with the agent: removes the VIPs and restores the sysctls.
    _host: Host,
    socket: UdpSocket,
    requests: mpsc::Receiver<Asked>,
    membership: Membership,
    counters: HeartbeatCounters,
    /// The rows the data plane holds now, and those of the last full install.
    rows: Vec<Vec<u16>>,
    installed: Vec<Vec<u16>>,
    /// The lease's end as last written to the data plane, and when `renew` last ran.
    lease_until: Option<Instant>,
    last_renew: Option<Instant>,
    link_up: bool,
    send_now: bool,
}

fn settings(cfg: &Config) -> Settings {
    Settings {
        me: cfg.cluster.node_id,
        peers: cfg.cluster.peers.iter().map(|p| p.id).collect(),
        failure: failure_time(cfg),
        config: config::shared_digest(cfg),
        cluster: config::cluster_id(&cfg.cluster.name),
    }
}

fn interval(cfg: &Config) -> Duration {
    Duration::from_millis(cfg.cluster.heartbeat_ms)
}

fn failure_time(cfg: &Config) -> Duration {
    interval(cfg) * cfg.cluster.failure_threshold
}

fn lease_time(cfg: &Config) -> Duration {
    membership::longest_lease(failure_time(cfg))
}

/// A fresh incarnation: the wall clock in microseconds, and always past the last one.
fn incarnation(after: u64) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    now.max(after + 1)
}

impl Agent {
    async fn start(path: &Path) -> Result<Agent> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            bail!(
                "farm agent needs root (it attaches XDP, adds the VIPs, sets sysctls): run it as root"
            );
        }
        let cfg = config::load(path)?;
        let key = key::read(path, cfg.cluster.key_file.as_deref())?;
        let iface = cfg.cluster.interface.clone();
        if let Ok(Reply::Status(other)) = control::ask(&iface, &Request::Status) {
            bail!(
                "a farm agent already runs on {iface} (pid {}, {}): stop it first (SIGTERM), or send it SIGHUP to reload its file",
                other.pid,
                other.config.display()
            );
        }
        if cfg.static_owners.is_some() {
            warn!(
                "{}: static_owners is for `farm load` alone; the agent computes the tables",
                path.display()
            );
        }
        let mut dp = loader::adopt_or_attach(&cfg)?;
        let slots = rules::rules(&cfg).slots.len();
        // Own nothing until the farm agrees on a view: the pinned table may be a static
        // one or a dead agent's.
        let rows = tables::empty(slots, cfg.cluster.buckets);
        dp.install(&rows)?;
        dp.fence()?;
        let me = cfg.this_node().address;
        let socket = UdpSocket::bind(me).await.with_context(|| {
            format!("bind the heartbeat socket to {me} (this node's peers[].address): is that address on this host?")
        })?;
        let vips: Vec<_> = cfg.vips.iter().map(|v| v.address).collect();
        std::fs::create_dir_all(control::RUN_DIR)
            .with_context(|| format!("create {}", control::RUN_DIR))?;
        let host = Host::setup(&iface, &vips, Path::new(control::RUN_DIR))?;
        let (tx, requests) = mpsc::channel(16);
        let sock = control::serve(&iface, tx).with_context(|| {
            format!("create the control socket {}", control::socket_path(&iface).display())
        })?;
        let membership = Membership::new(settings(&cfg), incarnation(0), Instant::now());
        info!(
            "agent for node {} on {iface} (cluster {}, {} peers, heartbeat {} ms, failure after {} ms, lease {} ms, control socket {})",
            cfg.cluster.node_id,
            cfg.cluster.name,
            cfg.cluster.peers.len() - 1,
            cfg.cluster.heartbeat_ms,
            failure_time(&cfg).as_millis(),
            lease_time(&cfg).as_millis(),
            sock.display()
        );
        Ok(Agent {
            path: path.to_path_buf(),
            installed: rows.clone(),
            rows,
            cfg,
            key,
            dp,
            _host: host,
            socket,
            requests,
            membership,
            counters: HeartbeatCounters::default(),
            lease_until: None,
            last_renew: None,
            link_up: true,
            send_now: true,
        })
    }

    /// The loop: datagrams, requests, signals and the clock, until a leave signal.
    async fn serve(&mut self) -> Result<()> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        // One byte more than the largest heartbeat, so a longer datagram shows as such.
        let mut buf = vec![0u8; wire::MAX_DATAGRAM + 1];
        let mut next_beat = Instant::now();
        loop {
            // Peers' failure deadlines count only while this node ticks (link up).
            let deadline = self.membership.next_deadline().filter(|_| self.link_up);
            let wake = deadline.map_or(next_beat, |d| d.min(next_beat));
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: leaving the farm"); return Ok(()) }
                _ = int.recv() => { info!("SIGINT: leaving the farm"); return Ok(()) }
                _ = hup.recv() => if let Err(e) = self.reload() {
                    error!("reload failed part way ({e:#}): fix the cause and send SIGHUP again");
                },
                Some((req, reply)) = self.requests.recv() => {
                    let answer = self.request(req)?;
                    let _ = reply.send(answer);
                }
                got = self.socket.recv_from(&mut buf) => match got {
                    Ok((len, from)) => self.datagram(&buf[..len], from)?,
                    Err(e) => debug!("heartbeat socket: {e}"),
                },
                _ = sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            if now >= next_beat {
                self.beat()?;
                next_beat = now + interval(&self.cfg);
            }
            // Cut off, this node would fail every peer and settle alone: it waits for
            // its link instead, and rejoins when it comes back.
            if self.link_up {
                let events = self.membership.tick(now);
                self.handle(events)?;
            }
            self.renew(now)?;
            if std::mem::take(&mut self.send_now) && self.link_up {
                self.send(Kind::Alive);
            }
        }
    }

    /// Every tick: check the link, then beat.
    fn beat(&mut self) -> Result<()> {
        let up = nic::is_running(&self.cfg.cluster.interface)?;
        if up != self.link_up {
            self.link_up = up;
            let iface = &self.cfg.cluster.interface;
            let events = match up {
                false => self.membership.fence(format!("{iface} is down")),
                true => {
                    info!("{iface} is up again: rejoining the farm as a new incarnation");
                    let reason = format!("{iface} is back up");
                    self.membership.rejoin(incarnation(self.membership.incarnation()), reason, true)
                }
            };
            self.handle(events)?;
        }
        if up {
            self.send(Kind::Alive);
        }
        Ok(())
    }

    /// Keeps the data plane's lease where the membership allows (see
    /// `Membership::lease_deadline`). A lease that ran out while this node owned buckets
    /// means peers may have failed it and taken them: it starts over as a new
    /// incarnation rather than take them back, first waiting to hear the farm if the
    /// agent itself stalled (it may then have failed live peers).
    fn renew(&mut self, now: Instant) -> Result<()> {
        let stalled = self.last_renew.map(|at| now.saturating_duration_since(at));
        self.last_renew = Some(now);
        if !self.link_up {
            return Ok(());
        }
        if self.membership.owns()
            && let Some(until) = self.lease_until
            && now >= until
        {
            let stall = stalled.filter(|&gap| gap >= lease_time(&self.cfg));
            let reason = match stall {
                Some(gap) => {
                    format!("the agent stalled for {} ms, past its lease", gap.as_millis())
                }
                None => "the lease ran out: peers stopped acknowledging its heartbeats".into(),
            };
            let next = incarnation(self.membership.incarnation());
            let events = self.membership.rejoin(next, reason, stall.is_some());
            self.handle(events)?;
        }
        let deadline = self.membership.lease_deadline(now);
        // Every datagram may move the deadline a little: write when it moves a jiffy.
        let moved = self.lease_until.is_none_or(|until| {
            deadline < until || deadline.duration_since(until) >= Duration::from_millis(4)
        });
        if moved {
            let ttl = deadline.saturating_duration_since(Instant::now());
            self.dp.renew_lease(Some(Instant::now() + ttl))?;
            self.lease_until = Some(deadline);
        }
        Ok(())
    }

    /// A heartbeat to every peer.
    fn send(&mut self, kind: Kind) {
        let datagram = self.membership.heartbeat(kind, Instant::now(), false).encode(&self.key);
        let me = self.cfg.cluster.node_id;
        let peers: Vec<_> = self.cfg.cluster.peers.iter().filter(|p| p.id != me).cloned().collect();
        for peer in peers {
            self.send_to(&datagram, peer.id, peer.address);
        }
    }

    /// The answer to one peer's heartbeat, which acknowledges it a round trip later.
    fn reply(&mut self, to: u16) {
        let Some(address) = self.cfg.cluster.peers.iter().find(|p| p.id == to).map(|p| p.address)
        else {
            return;
        };
        let datagram =
            self.membership.heartbeat(Kind::Alive, Instant::now(), true).encode(&self.key);
        self.send_to(&datagram, to, address);
    }

    fn send_to(&mut self, datagram: &[u8], id: u16, address: SocketAddr) {
        match self.socket.try_send_to(datagram, address) {
            Ok(_) => self.counters.sent += 1,
            Err(e) => debug!("heartbeat to node {id} at {address}: {e}"),
        }
    }

    fn datagram(&mut self, bytes: &[u8], from: SocketAddr) -> Result<()> {
        let c = &mut self.counters;
        let hb = match Heartbeat::decode(bytes, &self.key) {
            Ok(hb) => hb,
            Err(e) => {
                match e {
                    WireError::Forged => c.forged += 1,
                    WireError::Length(_) | WireError::Malformed => c.malformed += 1,
                }
                debug!("ignored a datagram from {from}: {e}");
                return Ok(());
            }
        };
        let node = hb.node;
        let answer = hb.kind == Kind::Alive && !hb.reply;
        match self.membership.receive(hb, Instant::now()) {
            Ok(events) => {
                c.accepted += 1;
                self.handle(events)?;
                if answer && self.link_up {
                    self.reply(node);
                }
                Ok(())
            }
            Err(refused) => {
                match refused {
                    Refused::Foreign => c.foreign += 1,
                    Refused::Stale | Refused::Replayed => c.replayed += 1,
                }
                debug!("ignored a heartbeat from {from} (node {node}): {refused}");
                Ok(())
            }
        }
    }

    /// Logs what happened and does what the membership asks.
    fn handle(&mut self, events: Vec<Event>) -> Result<()> {
        for event in events {
            match event {
                Event::PeerUp { id, incarnation, restarted: false } => {
                    info!("node {id} is up (incarnation {incarnation})")
                }
                Event::PeerUp { id, incarnation, restarted: true } => {
                    info!("node {id} restarted (incarnation {incarnation})")
                }
                Event::PeerFailed { id, silent } => {
                    warn!("node {id} failed: no heartbeat for {} ms", silent.as_millis())
                }
                Event::PeerLeft { id } => info!("node {id} left the farm"),
                Event::ConfigDiffers { id } => warn!(
                    "node {id} runs a different configuration: tables stay as they are until every node has the same file"
                ),
                Event::ViewChanged { epoch, members } => {
                    info!("view of epoch {epoch}: members {members:?}")
                }
                Event::Release { epoch, view } => {
                    let next = tables::rows(&self.cfg, &view);
                    let released = tables::release(&self.rows, &next);
                    let given = tables::owned(&self.rows, self.cfg.cluster.node_id)
                        - tables::owned(&released, self.cfg.cluster.node_id);
                    self.write(released)?;
                    debug!("epoch {epoch}: released {given} buckets");
                }
                Event::Install { epoch, view } => {
                    let next = tables::rows(&self.cfg, &view);
                    let moved = tables::moved(&self.installed, &next);
                    let me = self.cfg.cluster.node_id;
                    let total: usize = next.iter().map(Vec::len).sum();
                    self.write(next.clone())?;
                    info!(
                        "installed epoch {epoch}: members {:?}, {moved} buckets moved, this node owns {} of {total}",
                        view.ids(),
                        tables::owned(&next, me)
                    );
                    if next.iter().flatten().all(|&o| o == farm_common::NO_OWNER) {
                        warn!(
                            "every member has weight 0: no node owns a bucket and all VIP traffic is dropped"
                        );
                    }
                    self.installed = next;
                }
                Event::Fence { reason } => {
                    let empty = tables::empty(self.rows.len(), self.cfg.cluster.buckets);
                    self.write(empty)?;
                    warn!("fenced, this node owns no bucket: {reason}");
                }
                Event::Send => self.send_now = true,
            }
        }
        Ok(())
    }

    fn write(&mut self, rows: Vec<Vec<u16>>) -> Result<()> {
        if rows != self.rows {
            self.dp.install(&rows).context("write the owner table")?;
            self.rows = rows;
        }
        Ok(())
    }

    fn request(&mut self, req: Request) -> Result<Reply> {
        let (weight, drained) = self.membership.weight();
        let me = self.cfg.cluster.node_id;
        let (events, done) = match req {
            Request::Status => return Ok(Reply::Status(Box::new(self.status()))),
            Request::Drain => (
                self.membership.set_weight(weight, true),
                format!("node {me} drained: its buckets move to the other nodes"),
            ),
            Request::Undrain => (
                self.membership.set_weight(weight, false),
                format!("node {me} undrained: it takes its share again"),
            ),
            Request::Weight(w) => (
                self.membership.set_weight(w, drained),
                match w {
                    Some(w) => format!("node {me} has weight {w} in every table"),
                    None => format!("node {me} has the configuration's weights again"),
                },
            ),
        };
        info!("{done}");
        self.handle(events)?;
        Ok(Reply::Done(done))
    }

    fn status(&self) -> AgentStatus {
        let (weight, drained) = self.membership.weight();
        AgentStatus {
            node_id: self.cfg.cluster.node_id,
            pid: std::process::id(),
            config: self.path.clone(),
            incarnation: self.membership.incarnation(),
            epoch: self.membership.epoch(),
            phase: self.membership.phase(),
            converged: self.membership.converged(),
            members: self.membership.view().ids(),
            weight,
            drained,
            heartbeat_ms: self.cfg.cluster.heartbeat_ms,
            failure_ms: failure_time(&self.cfg).as_millis() as u64,
            lease_ms: lease_time(&self.cfg).as_millis() as u64,
            peers: self.membership.peers(Instant::now()),
            heartbeats: self.counters.clone(),
            view: self.membership.view().clone(),
        }
    }

    /// SIGHUP: read the file again. A bad file, or one that changes what only a restart
    /// can change, is refused and the running configuration stays.
    fn reload(&mut self) -> Result<()> {
        let path = self.path.display().to_string();
        let new = match config::load(&self.path) {
            Ok(new) => new,
            Err(e) => {
                error!("reload refused, the running configuration stays: {e}");
                return Ok(());
            }
        };
        let (old, c) = (&self.cfg.cluster, &new.cluster);
        let fixed = [
            ("node_id", old.node_id.to_string(), c.node_id.to_string()),
            ("interface", old.interface.clone(), c.interface.clone()),
            ("buckets", old.buckets.to_string(), c.buckets.to_string()),
            ("l2_mode", format!("{:?}", old.l2_mode), format!("{:?}", c.l2_mode)),
            ("cluster_mac", nic::format_mac(&old.cluster_mac), nic::format_mac(&c.cluster_mac)),
            (
                "peers[].address of this node",
                self.cfg.this_node().address.to_string(),
                new.this_node().address.to_string(),
            ),
        ];
        if let Some((field, was, is)) = fixed.iter().find(|(_, was, is)| was != is) {
            error!(
                "reload refused, the running configuration stays: {path}: cluster.{field} changed from {was} to {is}, which needs a restart of the agent"
            );
            return Ok(());
        }
        let key = match key::read(&self.path, new.cluster.key_file.as_deref()) {
            Ok(key) => key,
            Err(e) => {
                error!("reload refused, the running configuration stays: {e}");
                return Ok(());
            }
        };
        // The slots may have moved: keep each VIP's and service's rows with it, and of
        // those only the buckets the new file leaves with their owner, until the farm
        // agrees on the new file (every node has reloaded it) and installs its table
        // in the two phases. Meanwhile buckets that the change moves have no owner:
        // a gap during a rolling reload, never two owners.
        let held = tables::remap(&self.cfg, &self.rows, &new);
        let rows = tables::release(&held, &tables::rows(&new, self.membership.view()));
        self.installed = tables::remap(&self.cfg, &self.installed, &new);
        let vips: Vec<_> = new.vips.iter().map(|v| v.address).collect();
        self._host.set_vips(&vips)?;
        // Rows first, so no packet meets a new slot's rule with an old slot's row.
        self.write(tables::empty(rows.len(), new.cluster.buckets))?;
        self.dp.set_rules(&rules::rules(&new))?;
        self.key = key;
        self.cfg = new;
        self.write(rows)?;
        let events = self.membership.reconfigure(settings(&self.cfg));
        self.handle(events)?;
        info!("configuration reloaded from {path}");
        Ok(())
    }

    /// Leaves the farm: fences first, so no moment has this node and a peer owning one
    /// bucket, then tells the peers (who take its buckets at once), then detaches.
    async fn stop(&mut self, clean: bool) {
        if let Err(e) = self.dp.fence() {
            error!("fencing the data plane: {e}");
        }
        if clean {
            for _ in 0..LEAVE_COPIES {
                self.send(Kind::Leave);
            }
        }
        let _ = std::fs::remove_file(control::socket_path(&self.cfg.cluster.interface));
        match loader::detach(&self.cfg.cluster.interface, Some(&self.cfg)) {
            Ok(()) => info!("detached from {}", self.cfg.cluster.interface),
            Err(e) => error!("detaching: {e}"),
        }
    }
}

/// A parent may have blocked the signals the agent acts on (the mask survives exec);
/// blocked, SIGTERM would never make the agent leave.
fn unblock_signals() -> Result<()> {
    // SAFETY: plain libc calls on a local, initialised signal set.
    let rc = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut())
    };
    anyhow::ensure!(rc == 0, "pthread_sigmask: {}", std::io::Error::from_raw_os_error(rc));
    Ok(())
}
