//! nftables tables that the chaos events and the tests put into node namespaces to lose
//! heartbeats, each table deleted from every namespace it went into on drop, so a test
//! that fails halfway leaves none behind.
use anyhow::Result;

use crate::netns::{command_in, run};

pub struct Tables {
    table: &'static str,
    namespaces: Vec<String>,
}

impl Tables {
    /// None yet; each goes in by `add`.
    pub fn new(table: &'static str) -> Tables {
        Tables { table, namespaces: Vec::new() }
    }

    /// The table in `ns`, with an input and an output chain, and `rules` (each the
    /// arguments after `add rule inet TABLE`).
    pub fn add(&mut self, ns: &str, rules: &[String]) -> Result<()> {
        // Kept before the rules go in, so a half-made table is removed too.
        self.namespaces.push(ns.to_string());
        let table = self.table;
        let chains = [
            format!("add table inet {table}"),
            format!("add chain inet {table} in {{ type filter hook input priority 0; }}"),
            format!("add chain inet {table} out {{ type filter hook output priority 0; }}"),
        ];
        let rules = rules.iter().map(|r| format!("add rule inet {table} {r}"));
        for rule in chains.into_iter().chain(rules) {
            run(command_in(ns, "nft").arg(rule))?;
        }
        Ok(())
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = command_in(ns, "nft").args(["delete", "table", "inet", self.table]).output();
        }
    }
}
