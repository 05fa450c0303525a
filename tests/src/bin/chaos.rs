//! `farm-chaos` (`cargo xtask soak --minutes N`, as root): the chaos soak. A farm of
//! agents in network namespaces under continuous TCP and numbered UDP while random
//! events hit it every few seconds (kill, stall, link flap, partition, drain, weight,
//! reload, health flip); then what reached two nodes or none outside the windows the
//! events explain, the failovers, and each agent's memory and open files at the start
//! and the end. Exits non-zero when any of those is not as it must be.
use std::process::ExitCode;

use clap::Parser;
use farm_tests::chaos::{self, Options, Quorum};
use farm_userspace::privilege::{NAMESPACE_FARMS, require};

#[derive(Parser)]
#[command(about = "Hits a namespace farm of agents with random events under traffic for N minutes")]
struct Args {
    /// How long the events go on.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    minutes: u64,
    /// Nodes in the farm.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    nodes: u64,
    /// `cluster.quorum` in the files. `none` writes nothing (the default); `majority`
    /// needs agents that know the field (pending: the quorum work), and makes any number
    /// that reaches two nodes a failure.
    #[arg(long, value_enum, default_value_t = Quorum::None)]
    quorum: Quorum,
    /// The events' seed (the same seed makes the same events; their timing varies).
    /// Default: from the clock.
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = require("the chaos soak (network namespaces, XDP, nftables)", NAMESPACE_FARMS) {
        eprintln!("farm-chaos: {e}");
        return ExitCode::FAILURE;
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let opts =
        Options { minutes: args.minutes, nodes: args.nodes as usize, quorum: args.quorum, seed };
    eprintln!(
        "farm-chaos: {} nodes, quorum {:?}, {} minutes, seed {seed}",
        opts.nodes, opts.quorum, opts.minutes
    );
    let outcome = match chaos::run(&opts) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("farm-chaos: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", outcome.report());
    let failures = outcome.failures();
    for f in &failures {
        println!("farm-chaos: FAILED: {f}");
    }
    for example in &outcome.ledger.unexplained {
        println!("farm-chaos: unexplained: {example}");
    }
    match failures.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}
