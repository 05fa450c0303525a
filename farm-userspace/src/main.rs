//! `farm`: run the membership agent, load the XDP bucket filter onto a NIC without one,
//! take it off, check a configuration, read what a loaded farm holds (stats, buckets,
//! lookup, status, events), and steer the agent (drain, undrain, weight).
mod cli;

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::{CommandFactory, Parser, Subcommand};
use cli::steer::DrainArgs;
use farm_userspace::{agent, agent::control::Request, config, loader, witness};

#[derive(Parser)]
#[command(
    name = "farm",
    version,
    about = "Load balancing and failover with no balancer box: an XDP bucket filter on every server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the membership agent: attach (or adopt) the program, hold the VIPs, exchange
    /// heartbeats with the peers and install the table the farm agrees on. SIGTERM
    /// leaves the farm (peers take this node's buckets at once); SIGHUP reloads the file.
    Agent {
        #[arg(long, value_name = "FILE", default_value = "/etc/farm/farm.yaml")]
        config: PathBuf,
    },
    /// Run a witness: the tie-breaker for farms with `quorum: majority` that name it in
    /// cluster.witness. Run it on a machine outside the farm; it keeps no state on disk.
    Witness {
        /// Address and UDP port to answer on (cluster.witness in the farms' file).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
        /// The farm's shared key (the file cluster.key_file names).
        #[arg(long, value_name = "FILE", default_value = "/etc/farm/key")]
        key: PathBuf,
        /// Longest lease granted, and how long a (re)started witness grants nothing.
        #[arg(long, value_name = "MS", default_value_t = 10_000)]
        max_lease_ms: u64,
    },
    /// Attach the XDP program to the config's interface and pin it under /sys/fs/bpf/farm/IFACE.
    Load {
        /// Interface to attach to (overrides the config's cluster.interface).
        #[arg(long)]
        iface: Option<String>,
        #[arg(long)]
        config: PathBuf,
    },
    /// Detach the program from IFACE and remove its pins.
    Unload {
        #[arg(long)]
        iface: String,
        /// The config it was loaded with, to also leave the cluster MAC's group.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file without running anything, as this host's agent would
    /// read it (a file without cluster.node_id names this host's node by its address).
    Check { file: PathBuf },
    /// Make the shared key that signs heartbeats, readable by root and its directory's
    /// group alone; make it on one node and copy it to the others.
    Keygen(cli::keygen::KeygenArgs),
    /// Write the man pages (DIR/man8) and shell completions (DIR/completions).
    #[command(hide = true)]
    Manual { dir: PathBuf },
    /// Packet counters per VIP and service, summed over CPUs, and for traffic to no VIP.
    #[command(after_help = cli::stats::json_help())]
    Stats(cli::stats::StatsArgs),
    /// Who owns each bucket: counts per node against their quotas, and a picture (--map).
    #[command(after_help = cli::buckets::JSON_HELP)]
    Buckets(cli::buckets::BucketsArgs),
    /// Which bucket a client falls in for a service, and which node owns it.
    #[command(after_help = cli::lookup::JSON_HELP)]
    Lookup(cli::lookup::LookupArgs),
    /// What is loaded on the interface: node, buckets, table half, lease, owners per slot.
    #[command(after_help = cli::status::JSON_HELP)]
    Status(cli::status::StatusArgs),
    /// What the agent did and why: its event history, oldest first (--follow: then as it happens).
    #[command(after_help = cli::events::JSON_HELP)]
    Events(cli::events::EventsArgs),
    /// Give this node weight 0 in every table (or with --service, in that service's):
    /// its buckets move to the other nodes.
    Drain(cli::steer::DrainArgs),
    /// Undo `farm drain`: this node takes its share again.
    Undrain(cli::steer::DrainArgs),
    /// Give this node weight N in every table (`default`: the file's weights again).
    Weight {
        #[arg(value_parser = cli::steer::parse_weight, value_name = "N|default")]
        weight: cli::steer::Weight,
        #[command(flatten)]
        args: cli::steer::SteerArgs,
    },
    /// Let an active-backup service with `failback: manual` come back to this node, if
    /// it is the best node (lowest priority) for it.
    Failback {
        #[arg(value_name = "SERVICE")]
        service: String,
        #[command(flatten)]
        args: cli::steer::SteerArgs,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what went wrong and, in the message, what to do.
            eprintln!("farm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Agent { config } => agent::run(&config)?,
        Command::Witness { listen, key, max_lease_ms } => {
            witness::run(listen, &key, std::time::Duration::from_millis(max_lease_ms))?
        }
        Command::Load { iface, config } => {
            let mut cfg = config::load(&config)?;
            if let Some(iface) = iface {
                cfg.cluster.interface = iface;
            }
            let attached = loader::attach(&cfg)?;
            println!(
                "farm loaded on {} ({:?} mode), node {}, {} buckets, pinned in {}",
                cfg.cluster.interface,
                attached.mode,
                cfg.cluster.node_id,
                cfg.cluster.buckets,
                attached.pin_dir.display()
            );
        }
        Command::Unload { iface, config } => {
            let cfg = config.map(|p| config::load(&p)).transpose()?;
            loader::detach(&iface, cfg.as_ref())?;
            println!("farm unloaded from {iface}");
        }
        Command::Check { file } => {
            let cfg = config::load(&file)?;
            println!(
                "{}: ok (cluster {}, node {}, {} peers, {} VIPs, {} services){}",
                file.display(),
                cfg.cluster.name,
                cfg.cluster.node_id,
                cfg.cluster.peers.len(),
                cfg.vips.len(),
                cfg.services.len(),
                config::node_found(&cfg).map(|found| format!("; {found}")).unwrap_or_default()
            );
        }
        Command::Keygen(args) => emit(&cli::keygen::run(&args)?)?,
        Command::Manual { dir } => emit(&cli::manual::write(Cli::command(), &dir)?)?,
        Command::Stats(args) => emit(&cli::stats::run(&args)?)?,
        Command::Buckets(args) => emit(&cli::buckets::run(&args)?)?,
        Command::Lookup(args) => emit(&cli::lookup::run(&args)?)?,
        Command::Status(args) => emit(&cli::status::run(&args)?)?,
        Command::Events(args) => cli::events::run(&args, &mut std::io::stdout().lock())?,
        Command::Drain(DrainArgs { service, wait, timeout, args }) => {
            let req = service.clone().map_or(Request::Drain, Request::DrainService);
            emit(&cli::steer::run(&args, req)?)?;
            if wait {
                emit(&cli::steer::wait_drained(&args, service.as_deref(), timeout)?)?
            }
        }
        Command::Undrain(DrainArgs { service, wait: false, args, .. }) => {
            let req = service.map_or(Request::Undrain, Request::UndrainService);
            emit(&cli::steer::run(&args, req)?)?
        }
        Command::Undrain(_) => anyhow::bail!(
            "--wait is for `farm drain`: an undrain hands nothing over from this node"
        ),
        Command::Failback { service, args } => {
            emit(&cli::steer::run(&args, Request::Failback(service))?)?
        }
        Command::Weight { weight, args } => {
            emit(&cli::steer::run(&args, Request::Weight(weight.0))?)?
        }
    }
    Ok(())
}

/// Prints a read command's output. A reader that closed the pipe early (`| head`) has all
/// it wanted: that is no failure, where `print!` would panic.
fn emit(text: &str) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("writing to stdout: {e}"))
        }
        _ => Ok(()),
    }
}
