//! `farm-soak` (`cargo xtask soak --runs N`): the deterministic simulation of the agent's
//! core (`farm_tests::sim`) over many seeds, on every core of the machine. Prints each
//! violation with the seed and the trace that replay it, then a summary; exits non-zero
//! if any run broke a property. Runs with loss that cut two nodes apart both ways are
//! counted apart: without a quorum each side serves alone (see `sim::check`).
//!
//! `--frames N` (`cargo xtask soak --frames N`, as root) runs the data-plane fuzzer
//! instead (`farm_tests::fuzz`): N random and mutated frames through the XDP program,
//! each against its userspace model; exits non-zero on any mismatch.
use std::{
    process::ExitCode,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use farm_tests::sim::random::random_case;

#[derive(Parser)]
#[command(
    about = "Runs the agent's core in the deterministic simulation over many seeds, or (--frames) fuzzes the XDP program"
)]
struct Args {
    /// How many seeds of the simulation to run.
    #[arg(long, default_value_t = 10_000)]
    runs: u64,
    /// The first seed (a failing seed replays alone with `--from S --runs 1`); with
    /// `--frames`, the seed the frames are made from.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Instead of the simulation, run this many random and mutated frames through the
    /// XDP program against its userspace model (needs root).
    #[arg(long, conflicts_with = "runs")]
    frames: Option<u64>,
}

#[derive(Default)]
struct Tally {
    violations: Vec<String>,
    cut_apart: Vec<String>,
    partitioned: usize,
    slowest: Duration,
    disturbances: usize,
    overtaken: (usize, u64),
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(frames) = args.frames {
        return fuzz(frames, args.from);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicU64::new(args.from);
    let end = args.from + args.runs;
    let tally = Mutex::new(Tally::default());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        return;
                    }
                    let outcome = random_case(seed);
                    let mut t = tally.lock().expect("no thread panics holding it");
                    match outcome {
                        Ok(o) => {
                            t.slowest = t.slowest.max(o.settled_in);
                            t.disturbances += o.disturbances;
                            t.partitioned += usize::from(o.partitioned);
                            t.overtaken.0 += usize::from(o.overtaken > 0);
                            t.overtaken.1 += o.overtaken;
                            // Without a quorum, a partition serves both sides by design.
                            if !o.partitioned {
                                t.cut_apart.extend(o.cut_apart);
                            }
                        }
                        Err(e) => {
                            eprintln!("VIOLATION {e}\n");
                            t.violations.push(e.lines().next().unwrap_or("").to_string());
                        }
                    }
                    let done = seed + 1 - args.from;
                    if done.is_multiple_of(10_000) {
                        eprintln!("farm-soak: {done} runs, {} violations", t.violations.len());
                    }
                }
            });
        }
    });
    let t = tally.into_inner().expect("no thread panicked");
    println!(
        "farm-soak: {} runs (seeds {}..{end}) in {:.0} s, {} disturbances: {} violations; every run settled within {} ms of healing",
        args.runs,
        args.from,
        started.elapsed().as_secs_f64(),
        t.disturbances,
        t.violations.len(),
        t.slowest.as_millis()
    );
    println!(
        "farm-soak: {} runs partitioned; {} runs with loss alone cut two nodes apart both ways and each side served alone (no quorum){}",
        t.partitioned,
        t.cut_apart.len(),
        t.cut_apart.first().map_or(String::new(), |c| format!("; the first: {c}"))
    );
    println!(
        "farm-soak: {} runs had {} packets taken by two nodes of a handover that disagreed on the move or learned a UDP flow under different files (views changing faster than installs, reloads during moves)",
        t.overtaken.0, t.overtaken.1
    );
    for v in &t.violations {
        println!("violation: {v}");
    }
    match t.violations.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

fn fuzz(frames: u64, seed: u64) -> ExitCode {
    let tell = |done: u64| {
        if done.is_multiple_of(100 * farm_tests::fuzz::BATCH) {
            eprintln!("farm-soak: {done} frames");
        }
    };
    match farm_tests::fuzz::run(frames, seed, tell) {
        Ok(report) => {
            println!("farm-soak: fuzzed the XDP program (seed {seed}): {}", report.summary());
            for m in &report.described {
                println!("mismatch: {m}");
            }
            match report.mismatches {
                0 => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            eprintln!("farm-soak: {e:#}: the fuzzer loads the XDP program, which needs root");
            ExitCode::FAILURE
        }
    }
}
