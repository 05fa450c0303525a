//! The man pages and shell completions, made from the CLI's own definition so that they
//! never disagree with `--help`. `farm manual DIR` (hidden: the package runs it, and
//! ships what it writes) puts the pages in DIR/man8 and the completions in DIR/completions.
use std::{fs, path::Path};

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// `farm` runs from /usr/sbin: its pages are in section 8, system administration.
const SECTION: &str = "8";

pub fn write(cmd: Command, dir: &Path) -> Result<String> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let pages = dir.join(format!("man{SECTION}"));
    let completions = dir.join("completions");
    for sub in [&pages, &completions] {
        fs::create_dir_all(sub).with_context(|| format!("create {}", sub.display()))?;
    }
    let count = write_pages(&cmd, &pages)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "farm", &completions).with_context(|| {
            format!("write the {shell} completion in {}", completions.display())
        })?;
    }
    Ok(format!(
        "{count} man pages in {}, completions in {}\n",
        pages.display(),
        completions.display()
    ))
}

/// A page for `cmd` (`farm.8`) and one for each of its visible subcommands
/// (`farm-agent.8`, ...); how many.
fn write_pages(cmd: &Command, dir: &Path) -> Result<usize> {
    let man = clap_mangen::Man::new(cmd.clone()).section(SECTION);
    man.generate_to(dir).with_context(|| format!("write a man page in {}", dir.display()))?;
    let mut count = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        count += write_pages(sub, dir)?;
    }
    Ok(count)
}
