//! `farm drain`, `farm undrain`, `farm weight`, `farm failback`: ask the agent on this
//! node, through its Unix socket, to change this node's weight in every table (or in one
//! service's), or to take an active-backup service back. The farm agrees on the new
//! view and moves the buckets as for any membership change.
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use farm_userspace::{
    agent::control::{self, Reply, Request},
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
    #[command(flatten)]
    pub args: SteerArgs,
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
