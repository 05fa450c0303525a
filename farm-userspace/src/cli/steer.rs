//! `farm drain`, `farm undrain`, `farm weight`, `farm failback`: ask the agent on this
//! node, through its Unix socket, to change this node's weight in every table (or in one
//! service's), or to take an active-backup service back. The farm agrees on the new
//! view and moves the buckets as for any membership change.
use std::{
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use clap::Args;
use farm_userspace::{
    agent::{
        control::{self, AgentStatus, Reply, Request},
        wire::{Phase, bit},
    },
    config,
};

#[derive(Args)]
pub struct SteerArgs {
    /// The farm's configuration file (names the interface the agent runs on).
    #[arg(long, value_name = "FILE", default_value = "/etc/farm/farm.yaml")]
    pub config: PathBuf,
    /// The interface the agent runs on [default: the config's cluster.interface].
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
}

/// `farm drain` and `farm undrain`: the whole node, or one service on it.
#[derive(Args)]
pub struct DrainArgs {
    /// Only this service (its clients go to the other nodes; the node keeps the rest).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// `farm drain` only: return once the farm installed the drain and this node keeps
    /// no flow (TCP connection, active UDP flow) on the buckets it handed over, so that
    /// `farm drain --wait && systemctl stop farm` cuts no connection.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds, saying how many flows remain
    /// [default: the handover timeout and 10 s].
    #[arg(long, value_name = "S", requires = "wait")]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub args: SteerArgs,
}

/// How often `--wait` asks the agent.
const POLL: Duration = Duration::from_millis(200);

/// `farm drain --wait`: asks for the agent's status until the drain is installed and no
/// flow is kept on the buckets this node gave away, or `timeout` passes.
pub fn wait_drained(
    args: &SteerArgs,
    service: Option<&str>,
    timeout: Option<u64>,
) -> Result<String> {
    let iface = args.iface()?;
    let started = Instant::now();
    let mut limit = timeout.map(Duration::from_secs);
    loop {
        let status = match control::ask(&iface, &Request::Status)? {
            Reply::Status(status) => status,
            _ => bail!(
                "the agent answered status with something else: are the agent and this farm the same version?"
            ),
        };
        let limit = *limit.get_or_insert(
            Duration::from_millis(status.handover.timeout_ms) + Duration::from_secs(10),
        );
        let waited = started.elapsed();
        if drained(&status, service)? && status.handover.flows_kept == Some(0) {
            return Ok(format!(
                "node {} is drained and keeps no flow on the buckets it handed over (waited {:.1} s)\n",
                status.node_id,
                waited.as_secs_f64()
            ));
        }
        if waited >= limit {
            let h = &status.handover;
            let remain = match (h.tcp_kept, h.udp_kept) {
                (Some(tcp), Some(udp)) => format!(
                    "it still keeps {tcp} TCP connections and {udp} UDP flows on the buckets it handed over"
                ),
                _ if !drained(&status, service)? => {
                    "the farm has not installed the drain yet".into()
                }
                _ => "its flows are not counted yet".into(),
            };
            bail!(
                "gave up after {} s: node {} is drained, but {remain}; they end when their clients close them or at the handover timeout ({} s); `farm status` shows them",
                limit.as_secs(),
                status.node_id,
                h.timeout_ms / 1000
            );
        }
        thread::sleep(POLL);
    }
}

/// Whether the farm installed the drain of this node (or of its `service`).
fn drained(status: &AgentStatus, service: Option<&str>) -> Result<bool> {
    let Some(me) = status.view.members.iter().find(|m| m.id == status.node_id) else {
        return Ok(false);
    };
    let in_view = match service {
        None => me.drained,
        Some(name) => {
            let Some(i) = status.services.iter().position(|s| s.name == name) else {
                bail!("no service {name:?} on this node: `farm status` lists them");
            };
            bit(me.services.drained, i)
        }
    };
    Ok(in_view && status.converged && status.phase == Phase::Installed)
}

pub fn run(args: &SteerArgs, req: Request) -> Result<String> {
    match control::ask(&args.iface()?, &req)? {
        Reply::Done(text) => Ok(text + "\n"),
        Reply::Refused(why) => bail!("the agent refused: {why}"),
        Reply::Status(_) | Reply::Events(_) => bail!(
            "the agent answered {req:?} with something else: are the agent and this farm the same version?"
        ),
    }
}

impl SteerArgs {
    /// The interface whose agent to ask.
    pub fn iface(&self) -> Result<String> {
        match &self.iface {
            Some(iface) => Ok(iface.clone()),
            None => Ok(config::load(&self.config)?.cluster.interface),
        }
    }
}

/// `farm weight`'s argument: a weight, or `default` (`None`) for the file's weights.
#[derive(Debug, Clone, Copy)]
pub struct Weight(pub Option<u32>);

pub fn parse_weight(text: &str) -> Result<Weight, String> {
    match text {
        "default" => Ok(Weight(None)),
        n => n.parse().map(|w| Weight(Some(w))).map_err(|_| {
            format!("{n:?} is not a weight: give a whole number from 0 to 4294967295, or `default`")
        }),
    }
}
