//! The agent's Unix socket: `farm status` asks it what the agent knows, `farm events` what
//! it did, `farm drain`, `undrain` and `weight` steer it. One JSON request line, one JSON reply line. The
//! socket is root's alone (mode 0600), and the agent also checks the caller's uid.
use std::{
    io::{self, BufRead, BufReader, Write},
    net::SocketAddr,
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt},
    net::UnixListener,
    sync::{mpsc, oneshot},
};

use super::{
    apart::Healed,
    events::Entry,
    health::ServiceStatus,
    membership::{PeerStatus, View},
    quorum::QuorumStatus,
    wire::{Phase, ServiceBits},
};

/// The agent's socket and state, one set per interface.
pub const RUN_DIR: &str = "/run/farm";
/// A request is a few dozen bytes; a longer line is no request.
const MAX_REQUEST: u64 = 4096;

pub fn socket_path(iface: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{iface}.sock"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    Status,
    Drain,
    Undrain,
    /// `Some(n)`: weight n in every table; `None`: back to the file's weights.
    Weight(Option<u32>),
    /// Takes this node out of one service's table (maintenance), until undrained.
    DrainService(String),
    UndrainService(String),
    /// An active-backup service with `failback: manual` may come back to this node.
    Failback(String),
    /// The event history after entry `after` (all of it for `None`): `farm events`.
    Events {
        after: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    Status(Box<AgentStatus>),
    Events(Vec<Entry>),
    Done(String),
    Refused(String),
}

/// Buckets in handover as `farm status` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoverStatus {
    /// Buckets this node gave away that still keep its flows.
    pub out: usize,
    /// Buckets this node took whose old owner keeps its flows.
    pub r#in: usize,
    /// Flows this node keeps on the buckets it gave away: `farm drain --wait` waits for
    /// none. Counted every half second while there are such buckets; `None` until
    /// counted since they changed.
    pub flows_kept: Option<usize>,
    pub tcp_kept: Option<usize>,
    pub udp_kept: Option<usize>,
    /// Until the last handover ends (`None`: none in progress).
    pub until_ms: Option<u64>,
    /// `cluster.handover_timeout_ms`.
    pub timeout_ms: u64,
}

/// What `farm status` shows of the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub node_id: u16,
    pub pid: u32,
    pub config: PathBuf,
    pub incarnation: u64,
    pub epoch: u64,
    pub phase: Phase,
    /// Every member of the view holds the same view and epoch.
    pub converged: bool,
    pub members: Vec<u16>,
    pub weight: Option<u32>,
    pub drained: bool,
    pub heartbeat_ms: u64,
    pub failure_ms: u64,
    pub lease_ms: u64,
    /// Ports that change service in a reload, held with no owner until every node has
    /// the new file.
    pub held_ports: usize,
    /// This node's own instance of each service: health, checkers, drain.
    #[serde(default)]
    pub services: Vec<ServiceStatus>,
    /// What this node's heartbeats say of its services (the peers' are in `peers`).
    #[serde(default)]
    pub service_bits: ServiceBits,
    pub peers: Vec<PeerStatus>,
    pub heartbeats: HeartbeatCounters,
    pub view: View,
    /// Where the agent serves its metrics and status page (`http.listen`); none when off.
    pub http: Option<SocketAddr>,
    /// Why this node owns nothing now, if it does not.
    #[serde(default)]
    pub fenced: Option<String>,
    /// The quorum: its mode, the votes and how many this node's view holds, the witness.
    #[serde(default)]
    pub quorum: Option<QuorumStatus>,
    /// The latest splits healed: what each side did while apart (`apart`).
    #[serde(default)]
    pub healed: Vec<Healed>,
    /// Buckets in handover.
    #[serde(default)]
    pub handover: HandoverStatus,
}

/// Datagrams on the heartbeat port, by what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatCounters {
    pub sent: u64,
    /// Heartbeats to every peer sent ahead of the interval, for a change they wait on
    /// (a view, a phase reached); each is counted in `sent` once per peer too.
    #[serde(default)]
    pub early: u64,
    /// Heartbeats answered at once (counted in `sent` too), where the next periodic one
    /// would acknowledge them too late for the sender's lease: after a gap in the
    /// sender's heartbeats, for a sender never heard, when it asks, or always with 2
    /// missed heartbeats to a failure.
    #[serde(default)]
    pub answered: u64,
    /// Heartbeats sent to one peer asking for an answer at once (counted in `sent`
    /// too): its newest acknowledgement of this node dated one before a lost one.
    #[serde(default)]
    pub asked: u64,
    /// Heartbeats whose acknowledgement waited for this node's next periodic heartbeat.
    #[serde(default)]
    pub deferred: u64,
    pub accepted: u64,
    /// Not signed with the shared key.
    pub forged: u64,
    /// Signed, but a repeat of one already taken.
    pub replayed: u64,
    /// Signed, but from an incarnation of its sender that is over: an older one, or one
    /// this node failed (late datagrams of a dead agent).
    pub stale: u64,
    /// Not a heartbeat at all (size), or signed nonsense.
    pub malformed: u64,
    /// Another cluster's, an unknown node's, or this node's own id.
    pub foreign: u64,
    /// Dropped by the kernel before the agent read them: the heartbeat socket's receive
    /// buffer was full (the agent did not run for a while, or a farm too big for it).
    #[serde(default)]
    pub overflowed: u64,
    /// The witness's answers taken.
    #[serde(default)]
    pub witness: u64,
    /// Witness ballots not taken: forged, malformed, not an answer to this node, or to
    /// an ask too old to date.
    #[serde(default)]
    pub witness_ignored: u64,
}

/// A request from a connection, and where its reply goes.
pub type Asked = (Request, oneshot::Sender<Reply>);

/// Binds the socket (replacing one a dead agent left) and serves it: every request goes
/// to `to_agent`, its reply back to the caller.
pub fn serve(iface: &str, to_agent: mpsc::Sender<Asked>) -> io::Result<PathBuf> {
    let path = socket_path(iface);
    std::fs::create_dir_all(RUN_DIR)?;
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, to_agent.clone()));
        }
    });
    Ok(path)
}

async fn answer(stream: tokio::net::UnixStream, to_agent: mpsc::Sender<Asked>) {
    let root = stream.peer_cred().is_ok_and(|c| c.uid() == 0);
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    let reply = match reader.read_line(&mut line).await {
        _ if !root => Reply::Refused("the agent's socket is for root only: run as root".into()),
        Err(e) => Reply::Refused(format!("reading the request: {e}")),
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Err(e) => Reply::Refused(format!("not a request ({e})")),
            Ok(req) => {
                let (tx, rx) = oneshot::channel();
                match to_agent.send((req, tx)).await {
                    Ok(()) => rx.await.unwrap_or(Reply::Refused("the agent is stopping".into())),
                    Err(_) => Reply::Refused("the agent is stopping".into()),
                }
            }
        },
    };
    let mut text = serde_json::to_string(&reply).expect("plain data");
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error(
        "no farm agent is running on {iface} (no socket at {path}): start one with `farm agent --config FILE`"
    )]
    NotRunning { iface: String, path: String },
    #[error("the farm agent's socket {0} is root's: run this command as root")]
    NotRoot(String),
    #[error("talking to the farm agent on {iface} ({path}): {error}")]
    Io { iface: String, path: String, error: io::Error },
    #[error("the farm agent sent a reply this farm cannot read ({0}): are both the same version?")]
    Reply(serde_json::Error),
}

/// Sends one request to the agent on `iface` and waits (a few seconds at most) for its
/// reply. Blocking: the CLI has nothing else to do meanwhile.
pub fn ask(iface: &str, req: &Request) -> Result<Reply, AskError> {
    let path = socket_path(iface);
    let shown = path.display().to_string();
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            AskError::NotRunning { iface: iface.into(), path: shown.clone() }
        }
        io::ErrorKind::PermissionDenied => AskError::NotRoot(shown.clone()),
        _ => AskError::Io { iface: iface.into(), path: shown.clone(), error: source },
    };
    let mut stream = UnixStream::connect(&path).map_err(io_err)?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(io_err)?;
    let mut line = serde_json::to_string(req).expect("plain data");
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io_err)?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(io_err)?;
    serde_json::from_str(&reply).map_err(AskError::Reply)
}
