//! `farm-bench` (`cargo xtask bench [-- --json | --markdown]`, as root): what a farm
//! verdict costs, per packet, against a trivial XDP program (table A) and against the
//! nftables filter that replaced CLUSTERIP (table B), and how long a farm of agents takes
//! to heal (table C). A measurement, not a test: it exits 0 whether or not the goals are
//! met, and fails only when it cannot measure or a path does not do what its name says.
use anyhow::Result;
use clap::Parser;
use farm_tests::bench::{compare, cost, failover, markdown, report};
use farm_userspace::privilege::{NAMESPACE_FARMS, require};

#[derive(Parser)]
#[command(
    about = "Per-packet cost of farm's XDP paths, against a trivial program and against nftables"
)]
struct Args {
    /// Runs per BPF_PROG_TEST_RUN call in table A.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Frames per live-frames run in table B.
    #[arg(long, default_value_t = 4_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    live_repeat: u32,
    /// Rounds of every measurement; each figure is their median.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Print JSON instead of tables.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print the tables as Markdown, as the README shows them.
    #[arg(long)]
    markdown: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    require("the benchmark (BPF_PROG_TEST_RUN, network namespaces, nftables)", NAMESPACE_FARMS)?;
    eprintln!("farm-bench: table A, BPF_PROG_TEST_RUN...");
    let cost = cost::measure(args.repeat, args.rounds as usize)?;
    eprintln!("farm-bench: table B, live frames against nftables...");
    let peer = compare::measure(args.live_repeat, args.rounds as usize)?;
    eprintln!("farm-bench: table C, failover in a farm of agents...");
    let failover = failover::measure(args.rounds as usize)?;
    let m = report::Measured {
        repeat: args.repeat,
        live_repeat: args.live_repeat,
        rounds: args.rounds,
        cost,
        peer,
        failover,
    };
    if args.json {
        println!("{:#}", report::json(&m));
    } else if args.markdown {
        // How this run was asked for, as the README's line above its tables says.
        let given: Vec<String> = std::env::args().skip(1).collect();
        print!("{}", markdown::markdown(&m, &format!("cargo xtask bench -- {}", given.join(" "))));
    } else {
        print!("{}", report::text(&m));
    }
    Ok(())
}
