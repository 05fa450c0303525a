//! `farm-bench` (`cargo xtask bench [-- --json | --markdown]`, as root): what a farm
//! verdict costs, per packet, against a trivial XDP program (table A) and against the
//! nftables filter that replaced CLUSTERIP (table B), how long a farm of agents takes
//! to heal (table C), whether a busy machine makes it fail nodes that did not fail
//! (table D), and what farms of 4 to 64 agents cost and how fast they heal (table E,
//! `--nodes 4,8,16,32,64`). A measurement, not a test: it exits 0 whether or not the goals are
//! met, and fails only when it cannot measure or a path does not do what its name says.
use anyhow::Result;
use clap::Parser;
use farm_tests::bench::{busy, compare, cost, failover, markdown, report, scale};
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
    /// Rounds of table D (each setting, then the other).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    busy_rounds: u32,
    /// How long each round of table D keeps every CPU busy.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    busy_seconds: u64,
    /// Which tables to measure, e.g. `--tables D`.
    #[arg(long, default_value = "ABCDE", value_parser = tables)]
    tables: String,
    /// The farm sizes of table E.
    #[arg(long, default_values_t = [4, 8, 16, 32, 64], value_delimiter = ',', value_parser = clap::value_parser!(u16).range(2..=64))]
    nodes: Vec<u16>,
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
    let (rounds, wants) = (args.rounds as usize, |table: char| args.tables.contains(table));
    let mut m = report::Measured {
        repeat: args.repeat,
        live_repeat: args.live_repeat,
        rounds: args.rounds,
        cost: vec![],
        peer: vec![],
        failover: vec![],
        busy: vec![],
        busy_seconds: args.busy_seconds,
        scale: vec![],
    };
    if wants('A') {
        eprintln!("farm-bench: table A, BPF_PROG_TEST_RUN...");
        m.cost = cost::measure(args.repeat, rounds)?;
    }
    if wants('B') {
        eprintln!("farm-bench: table B, live frames against nftables...");
        m.peer = compare::measure(args.live_repeat, rounds)?;
    }
    if wants('C') {
        eprintln!("farm-bench: table C, failover in a farm of agents...");
        m.failover = failover::measure(rounds)?;
    }
    if wants('D') {
        eprintln!("farm-bench: table D, false failovers with every CPU busy...");
        m.busy = busy::measure(args.busy_rounds as usize, args.busy_seconds)?;
    }
    if wants('E') {
        eprintln!("farm-bench: table E, farms of {:?} agents...", args.nodes);
        let sizes: Vec<usize> = args.nodes.iter().map(|&n| usize::from(n)).collect();
        m.scale = scale::measure(&sizes)?;
    }
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

/// `--tables`: letters of A to E, at least one.
fn tables(text: &str) -> Result<String, String> {
    match !text.is_empty() && text.chars().all(|c| ('A'..='E').contains(&c)) {
        true => Ok(text.to_string()),
        false => Err(format!("{text:?}: give letters of A to E, e.g. ABCDE or E")),
    }
}
