//! The agent's I/O around its core: the heartbeat socket, the data plane's maps, the
//! host's VIPs and sysctls, the control socket, signals, the clock, and a thread that
//! computes tables. Each wake-up gathers what arrived, steps the core once and carries
//! out what it returns; it decides nothing itself.
use std::{
    net::{IpAddr, SocketAddr},
    os::fd::AsFd,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use log::{debug, error, info, log, warn};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot},
    time::sleep_until,
};

use super::{
    checks::Checkers,
    control::{self, Asked, Reply, Request},
    core::{self, Core, Effect, Identity, Input, Reloaded},
    events::History,
    host::Host,
    http, kept, key,
    membership::View,
    metrics::Metrics,
    rcvbuf,
    snapshot::{self, Snapshot},
    socket::{self, Batch, HeartbeatSocket, waiting},
    tables::{self, Rows},
    wire,
    worker::Worker,
};
use crate::{
    announce,
    config::{self, Config},
    dataplane::Dataplane,
    loader, nic, privilege, realtime, rules,
};

/// Datagrams read in one wake-up at most, so a flood cannot keep the clock from the
/// core.
const MAX_BATCH: usize = 1024;
/// Datagrams read in one syscall at most: a grid step's worth at 64 nodes.
const BATCH: usize = 64;
/// How old a count of the flows kept on handed-over buckets may be when a status or a
/// scrape shows it (see `recount`).
const KEPT_EVERY: Duration = Duration::from_millis(500);
/// How often the heartbeat socket's drop count is read, to log a rise.
const DROPS_EVERY: Duration = Duration::from_secs(1);
/// Runs the agent until SIGTERM or SIGINT (a clean leave) or a fatal error.
pub fn run(config: &Path) -> Result<()> {
    unblock_signals()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut agent = Runtime::start(config).await?;
        let outcome = agent.serve().await;
        agent.stop(outcome.is_ok());
        outcome
    })
}

struct Runtime {
    path: PathBuf,
    core: Core,
    dp: Dataplane,
    /// Dropped with the agent: removes the VIPs and restores the sysctls.
    host: Host,
    socket: HeartbeatSocket,
    /// Datagrams the kernel dropped on `socket` as last read, and when.
    drops: (u64, Instant),
    requests: mpsc::Receiver<Asked>,
    tables: TableWorker,
    counter: kept::Counter,
    checks: Checkers,
    history: History,
    metrics: Metrics,
    /// Snapshots the HTTP listener asks for (none come when it is off).
    observers: mpsc::Receiver<http::Asked>,
    /// The NIC's own MAC, which announcements leave from (read once, as the data plane
    /// was given it at attach).
    own_mac: [u8; 6],
    /// An announcement failed once (said in the log; later ones only at debug).
    announce_failed: bool,
    /// When the flows kept on handed-over buckets were last counted.
    counted: Option<Instant>,
}

/// Tables are computed on a thread (`worker`): at 65,536 buckets and dozens of nodes
/// one takes tens of milliseconds a slot, longer than the agent may go without renewing
/// its lease. Only the newest view matters: the core ignores the others.
type TableWorker = Worker<(Arc<Config>, View), (u64, Arc<Rows>)>;

fn table_worker() -> Result<TableWorker> {
    Worker::spawn("farm-tables", |(cfg, view): (Arc<Config>, View)| {
        (view.digest(), Arc::new(tables::rows(&cfg, &view)))
    })
}

/// The wall clock in microseconds: incarnations of successive agents only grow.
fn wall_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Carries out what the core asks of the data plane; `false` for anything else.
fn write(dp: &mut Dataplane, effect: &Effect) -> Result<bool> {
    match effect {
        Effect::Rows(rows, moving) => dp.install(rows, moving).context("write the owner table")?,
        Effect::FlowIdle(idle) => dp.set_flow_idle(*idle)?,
        Effect::Rules(rules) => dp.set_rules(rules).context("write the VIP and port rules")?,
        Effect::Seed(seed) => {
            let node = dp.node_config()?;
            dp.set_node_config(&farm_common::NodeConfig { seed: *seed, ..node })?;
        }
        Effect::Lease(Some(until)) => dp.renew_lease(Some(*until))?,
        Effect::Lease(None) => dp.fence()?,
        _ => return Ok(false),
    }
    Ok(true)
}

impl Runtime {
    async fn start(path: &Path) -> Result<Runtime> {
        privilege::require("farm agent", privilege::AGENT)?;
        let cfg = config::load(path)?;
        realtime::claim(&cfg.agent);
        config::node_found(&cfg).inspect(|found| info!("{found}"));
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
        // Before anything changes on the host: a port taken fails the start cleanly.
        let metrics = Metrics::new(&cfg, Instant::now());
        let observers = match cfg.http.listen {
            Some(listen) => {
                let asked = http::serve(listen, metrics.instruments.clone())?;
                info!("metrics at http://{listen}/metrics, status page at http://{listen}/");
                asked
            }
            None => mpsc::channel(1).1,
        };
        let me = cfg.this_node().address;
        let peers = cfg.cluster.peers.len().saturating_sub(1);
        let vips = cfg.vip_addresses();
        let mut dp = loader::adopt_or_attach(&cfg)?;
        let id = Identity { path: path.to_path_buf(), pid: std::process::id() };
        let (core, effects) = Core::start(cfg, key, id, Instant::now(), wall_us());
        // Own nothing from here on, before the VIPs are on the host: the pinned table
        // may be a static one or a dead agent's.
        let mut later = Vec::new();
        for effect in effects {
            if !write(&mut dp, &effect)? {
                later.push(effect);
            }
        }
        let socket = HeartbeatSocket::bind(me, waiting(core.config(), false)).with_context(|| {
            format!("bind the heartbeat socket to {me} (this node's peers[].address): is that address on this host?")
        })?;
        let rcvbuf = rcvbuf::size(socket.as_fd(), rcvbuf::wanted(peers))?;
        std::fs::create_dir_all(control::RUN_DIR)
            .with_context(|| format!("create {}", control::RUN_DIR))?;
        let host = Host::setup(&iface, &vips, Path::new(control::RUN_DIR))?;
        let own_mac = nic::mac(&iface)?;
        let (tx, requests) = mpsc::channel(16);
        let sock = control::serve(&iface, tx).with_context(|| {
            format!("create the control socket {}", control::socket_path(&iface).display())
        })?;
        let c = core.config();
        info!(
            "agent for node {} on {iface} (cluster {}, {} peers, heartbeat {} ms, failure after {} ms, lease {} ms, heartbeat receive buffer {} KiB, control socket {})",
            c.cluster.node_id,
            c.cluster.name,
            c.cluster.peers.len() - 1,
            c.cluster.heartbeat_ms,
            core::failure_time(c).as_millis(),
            core::lease_time(c).as_millis(),
            rcvbuf / 1024,
            sock.display()
        );
        let mut history = History::default();
        let started = format!(
            "agent started for node {} on {iface} (pid {}, incarnation {})",
            c.cluster.node_id,
            std::process::id(),
            core.membership().incarnation()
        );
        history.record(SystemTime::now(), log::Level::Info, "started", started);
        let mut runtime = Runtime {
            path: path.to_path_buf(),
            core,
            dp,
            host,
            socket,
            drops: (0, Instant::now()),
            requests,
            tables: table_worker()?,
            counter: kept::counter(loader::pin_dir(&iface))?,
            checks: Checkers::new(),
            history,
            metrics,
            observers,
            own_mac,
            announce_failed: false,
            counted: None,
        };
        runtime.apply(later)?;
        runtime.checks.follow(runtime.core.config());
        Ok(runtime)
    }

    /// The loop: datagrams, requests, signals, tables and the clock, until a leave
    /// signal.
    async fn serve(&mut self) -> Result<()> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        // One byte more than the largest heartbeat, so a longer datagram shows as such.
        let mut batch = Batch::new(BATCH, wire::MAX_DATAGRAM + 1);
        // When the socket was last read, for the grid.
        let mut read = Instant::now();
        self.core.begin(read);
        loop {
            let wake = self.core.next_wake();
            let sleep =
                socket::next_read(waiting(self.core.config(), self.core.quiet()), read, wake);
            let mut inputs = Vec::new();
            let mut asker: Option<oneshot::Sender<Reply>> = None;
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: leaving the farm"); return Ok(()) }
                _ = int.recv() => { info!("SIGINT: leaving the farm"); return Ok(()) }
                _ = hup.recv() => inputs.push(Input::Reload(self.read_file())),
                Some((req, reply)) = self.requests.recv() => match req {
                    // The history is the runtime's: the core has nothing to add.
                    Request::Events { after } => {
                        let _ = reply.send(Reply::Events(self.history.since(after)));
                        continue;
                    }
                    req => {
                        if let Request::Status = req {
                            self.recount();
                        }
                        inputs.push(Input::Request(req));
                        asker = Some(reply);
                    }
                },
                Some(asked) = self.observers.recv() => {
                    self.recount();
                    let _ = asked.send(self.snapshot().map(Box::new).map_err(|e| format!("{e:#}")));
                    continue;
                }
                Some((moving, kept)) = self.counter.done.recv() => match kept {
                    Ok(kept) => inputs.push(Input::Kept(moving, kept)),
                    Err(e) => debug!("counting the flows kept: {e}"),
                },
                Some((digest, rows)) = self.tables.done.recv() => {
                    inputs.push(Input::Table { digest, rows });
                }
                check = self.checks.next() => inputs.push(check),
                ready = self.socket.readable() => if let Err(e) = ready {
                    debug!("heartbeat socket: {e}");
                },
                _ = sleep_until(sleep.into()) => {}
            }
            // Whatever waits in the socket goes in before the clock is acted on: a
            // peer's heartbeat must not lose to its own failure deadline.
            self.read_datagrams(&mut batch, &mut inputs, read);
            let now = Instant::now();
            read = now;
            if inputs.is_empty() && now < wake {
                continue;
            }
            let iface = &self.core.config().cluster.interface;
            inputs.push(Input::Link(nic::is_running(self.socket.as_fd(), iface)?));
            if now >= wake {
                self.metrics.loop_ran(now - wake);
            }
            let effects = self.core.step(now, inputs);
            if let (Some(mut reply), Some(asker)) = (self.apply(effects)?, asker) {
                if let Reply::Status(status) = &mut reply {
                    status.heartbeats.overflowed = self.overflowed();
                }
                let _ = asker.send(reply);
            }
            self.watch_drops(now);
            // A reload may have changed the checkers, and the number of peers.
            self.checks.follow(self.core.config());
            self.socket.wait(waiting(self.core.config(), self.core.quiet()))?;
        }
    }

    /// Asks for a count of the flows this node keeps on the buckets it gave away, for a
    /// status or a scrape about to be taken, unless one was asked for within
    /// `KEPT_EVERY`: only when someone looks, as each costs the kernel a walk of its
    /// connection table (`kept`). The status shows the count before it.
    fn recount(&mut self) {
        let now = Instant::now();
        let fresh = self.counted.is_some_and(|at| now < at + KEPT_EVERY) && self.core.counted();
        if !self.core.handing_out() || fresh {
            return;
        }
        self.counted = Some(now);
        self.counter.ask((self.core.handovers(), rules::rules(self.core.config())));
    }

    /// Whatever waits in the socket, each with when it came: the kernel's timestamp on
    /// the loop's clock, between `since` (the read before) and now.
    fn read_datagrams(&self, batch: &mut Batch, inputs: &mut Vec<Input>, since: Instant) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut read = 0;
        while read < MAX_BATCH {
            let n = match self.socket.try_recv_batch(batch) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => return debug!("heartbeat socket: {e}"),
            };
            for i in 0..n {
                match batch.get(i) {
                    Ok((datagram, from, stamp)) => {
                        let ago =
                            stamp.and_then(|s| wall.duration_since(s).ok()).unwrap_or_default();
                        let came = now.checked_sub(ago).unwrap_or(since).clamp(since.min(now), now);
                        inputs.push(Input::Datagram(datagram.to_vec(), from, came))
                    }
                    Err(e) => debug!("heartbeat socket: {e}"),
                }
            }
            if n < BATCH {
                return;
            }
            read += n;
        }
    }

    /// What the HTTP listener shows: taken here, rendered off the loop.
    fn snapshot(&self) -> Result<Snapshot> {
        let mut status = self.core.status(Instant::now());
        status.heartbeats.overflowed = self.overflowed();
        let events = self.history.latest(snapshot::PAGE_EVENTS);
        let (cfg, rows) = (self.core.config(), self.core.rows().clone());
        Snapshot::take(status, cfg, rows, &self.dp, events)
    }

    /// Heartbeats the kernel dropped on the socket (its receive buffer was full).
    fn overflowed(&self) -> u64 {
        rcvbuf::drops(self.socket.as_fd()).unwrap_or_else(|e| {
            debug!("{e}");
            self.drops.0
        })
    }

    /// Says so in the log when the socket dropped heartbeats since the last look: peers
    /// may then seem silent, and be failed, for want of room here.
    fn watch_drops(&mut self, now: Instant) {
        if now < self.drops.1 + DROPS_EVERY {
            return;
        }
        let drops = self.overflowed();
        if drops > self.drops.0 {
            warn!(
                "the heartbeat socket's receive buffer was full: {} heartbeats dropped in the last {} ms",
                drops - self.drops.0,
                now.duration_since(self.drops.1).as_millis()
            );
        }
        self.drops = (drops, now);
    }

    /// SIGHUP: the file and its key again, or why not, for the core to judge.
    fn read_file(&self) -> Result<Box<Reloaded>, String> {
        let config = config::load(&self.path).map_err(|e| e.to_string())?;
        let key =
            key::read(&self.path, config.cluster.key_file.as_deref()).map_err(|e| e.to_string())?;
        Ok(Box::new(Reloaded { config, key }))
    }

    /// Carries out the core's effects in order; the reply to a request, if one came.
    fn apply(&mut self, effects: Vec<Effect>) -> Result<Option<Reply>> {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut reply = None;
        // Heartbeats in a row go out together (`HeartbeatSocket::send_all`), in order
        // with every other effect.
        let mut sends = Vec::new();
        for effect in effects {
            if !matches!(effect, Effect::Send { .. }) {
                self.send(std::mem::take(&mut sends));
            }
            let writing = Instant::now();
            if write(&mut self.dp, &effect)? {
                if let Effect::Rows(..) = effect {
                    self.metrics.table_written(writing.elapsed());
                }
                continue;
            }
            match effect {
                Effect::Send { to, address, datagram } => sends.push((to, address, datagram)),
                Effect::Ask { address, datagram } => {
                    if let Err(e) = self.socket.try_send_to(&datagram, address) {
                        debug!("ask to the witness at {address}: {e}");
                    }
                }
                Effect::Vips(vips) => self.host.set_vips(&vips)?,
                Effect::Announce(vips) => self.announce(&vips),
                Effect::Compute { config, view } => self.tables.ask((config, view)),
                Effect::Reply(r) => reply = Some(r),
                Effect::Note(note) => {
                    log!(note.level(), "{note}");
                    self.history.note(&note, now, wall);
                    self.metrics.note(&note, now);
                }
                Effect::Rows(..)
                | Effect::FlowIdle(_)
                | Effect::Rules(_)
                | Effect::Seed(_)
                | Effect::Lease(_) => {
                    unreachable!("written above")
                }
            }
        }
        self.send(sends);
        Ok(reply)
    }

    /// Sends heartbeats: (to, address, datagram).
    fn send(&self, sends: Vec<(u16, SocketAddr, Vec<u8>)>) {
        if sends.is_empty() {
            return;
        }
        let datagrams: Vec<(SocketAddr, &[u8])> =
            sends.iter().map(|(_, address, datagram)| (*address, datagram.as_slice())).collect();
        for (i, e) in self.socket.send_all(&datagrams) {
            let (to, address, _) = &sends[i];
            debug!("heartbeat to node {to} at {address}: {e}");
        }
    }

    /// Sends the VIPs' announcements; a failure (no CAP_NET_RAW) is said once, as the
    /// farm works without them (clients' entries then age out instead).
    fn announce(&mut self, vips: &[IpAddr]) {
        let cfg = self.core.config();
        let iface = &cfg.cluster.interface;
        match announce::announce(iface, self.own_mac, cfg.cluster.cluster_mac, vips) {
            Ok(()) => debug!("announced {vips:?} at the cluster MAC on {iface}"),
            Err(e) if !self.announce_failed => {
                warn!("{e}; clients keep a stale entry for a VIP until it ages out");
                self.announce_failed = true;
            }
            Err(e) => debug!("{e}"),
        }
    }

    /// Leaves the farm (`clean`: telling the peers, who take its buckets at once) or
    /// just fences, then detaches.
    fn stop(&mut self, clean: bool) {
        let effects = match clean {
            true => self.core.leave(Instant::now()),
            false => vec![Effect::Lease(None)],
        };
        if let Err(e) = self.apply(effects) {
            error!("leaving the farm: {e:#}");
        }
        let iface = self.core.config().cluster.interface.clone();
        let _ = std::fs::remove_file(control::socket_path(&iface));
        match loader::detach(&iface, Some(self.core.config())) {
            Ok(()) => info!("detached from {iface}"),
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
