//! `cargo xtask`: everything a user does with farm besides running the `farm` binary:
//! set up a machine, build, package, load onto a NIC, demo, test, bench, soak. Every task but `setup`
//! runs setup first, quietly, so each one works on a fresh machine.
mod bpffs;
mod cargo;
mod demo;
mod farm;
mod linker;
mod lint;
mod package;
mod packages;
mod privilege;
mod process;
mod report;
mod setup;
mod test;
mod toolchain;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "farm's tasks: setup, build, package, load, unload, demo, test, bench, soak")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing: Debian packages, the nightly with rust-src, bpf-linker,
    /// cargo-deb, bpffs on /sys/fs/bpf. Prints one line per thing checked.
    Setup,
    /// Build the `farm` binary (with the XDP program inside) in release mode.
    Build,
    /// Build the Debian package (target/debian/farm_VERSION_ARCH.deb): farm in /usr/sbin,
    /// its systemd unit, man pages and completions, an example /etc/farm/farm.yaml.
    Package,
    /// Check formatting, clippy and rustdoc, build and package, then run every test: those
    /// that need root too when run as root.
    Test {
        /// Passed to the test binaries, e.g. `-- --test-threads=1 lookup`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    // load and unload pass their arguments through, so farm alone defines (and checks) them.
    /// Build, then load farm onto a NIC: `farm load --iface IF --config FILE`.
    Load {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build, then take farm off a NIC: `farm unload --iface IF [--config FILE]`.
    Unload {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build, then run a demo farm in network namespaces.
    Demo,
    /// Build, then run the benchmark; arguments (e.g. `--json`) go to farm-bench.
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the agent's core in the deterministic simulation over many seeds and print
    /// every violation found: `--runs N` (default 10,000), `--from SEED`. Or, with
    /// `--minutes N` (as root), the chaos soak: a farm of agents in namespaces under
    /// traffic and random events for N minutes (`--nodes 3-5`, `--quorum none|majority`,
    /// `--seed S`). Or fuzz the XDP program against its userspace model: `--frames N`
    /// (as root), `--from SEED`.
    Soak {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` puts the whole chain on one line: what went wrong, then what to do.
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    // Verbose when setup is the task; quiet as the first step of every other task.
    setup::setup(matches!(task, Task::Setup))?;
    match task {
        Task::Setup => Ok(()),
        Task::Build => cargo::build().map(|farm| println!("xtask: built {}", farm.display())),
        Task::Package => package::package().map(|deb| println!("xtask: built {}", deb.display())),
        Task::Test { args } => test::test(&args),
        Task::Load { args } => farm::exec("load", &args),
        Task::Unload { args } => farm::exec("unload", &args),
        Task::Demo => demo::demo(),
        Task::Bench { args } => cargo::bench(&args),
        Task::Soak { args } => cargo::soak(&args),
    }
}
