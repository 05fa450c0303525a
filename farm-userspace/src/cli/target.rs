//! What every read command takes and opens: the configuration (which names the slots and
//! holds the peers' weights), the interface farm is loaded on, and the maps pinned for it.
use std::{
    io,
    path::{Path, PathBuf},
};

use anyhow::{Result, bail};
use clap::Args;
use farm_common::NodeConfig;
use farm_userspace::{
    agent::{
        control::{self, AgentStatus, Reply, Request},
        membership::View,
        tables,
    },
    config::{self, Config},
    dataplane::Dataplane,
    loader::pin_dir,
    privilege,
};

/// The options every read command has.
#[derive(Args)]
pub struct Common {
    /// The farm's configuration file.
    #[arg(long, value_name = "FILE", default_value = "/etc/farm/farm.yaml")]
    pub config: PathBuf,
    /// The interface farm is loaded on [default: the config's cluster.interface].
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// Print one JSON document instead of text (its fields are listed below).
    #[arg(long)]
    pub json: bool,
}

/// A loaded farm, as read from its pins.
pub struct Loaded {
    pub cfg: Config,
    pub config: PathBuf,
    pub iface: String,
    pub pin_dir: PathBuf,
    pub dp: Dataplane,
    /// This node's record as the data plane holds it: its bucket count and seed are the
    /// ones packets are hashed with, even if the file changed since the load.
    pub node: NodeConfig,
    /// What the agent on the interface says, or why it says nothing.
    pub agent: Result<AgentStatus, String>,
}

impl Loaded {
    /// The members quotas are measured against: the agent's view, else every peer.
    pub fn view(&self) -> View {
        match &self.agent {
            Ok(agent) => agent.view.clone(),
            Err(_) => tables::everyone(&self.cfg),
        }
    }
}

impl Common {
    pub fn open(&self) -> Result<Loaded> {
        let cfg = config::load(&self.config)?;
        let iface = self.iface.clone().unwrap_or_else(|| cfg.cluster.interface.clone());
        let dir = pin_dir(&iface);
        // Why reading the pins fails, when this process lacks what it takes.
        let allowed = privilege::require(
            &format!("reading farm's maps in {}", dir.display()),
            privilege::READ,
        );
        match std::fs::metadata(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                bail!(not_loaded(&iface, &dir, &self.config))
            }
            Err(e) => {
                allowed?;
                bail!("cannot read {}: {e}", dir.display())
            }
            Ok(_) => {}
        }
        let dp = match Dataplane::open_pinned(&dir) {
            Ok(dp) => dp,
            Err(e) => {
                allowed?;
                return Err(e.into());
            }
        };
        let node = dp.node_config()?;
        let agent = match control::ask(&iface, &Request::Status) {
            Ok(Reply::Status(agent)) => Ok(*agent),
            Ok(other) => Err(format!("the agent answered {other:?} to a status request")),
            Err(e) => Err(e.to_string()),
        };
        Ok(Loaded { cfg, config: self.config.clone(), iface, pin_dir: dir, dp, node, agent })
    }
}

fn not_loaded(iface: &str, dir: &Path, config: &Path) -> String {
    format!(
        "farm is not loaded on {iface} (no pins in {}): run `cargo xtask load --iface {iface} --config {}` or start the agent",
        dir.display(),
        config.display()
    )
}
