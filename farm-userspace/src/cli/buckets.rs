//! `farm buckets`: who owns each bucket of a slot, how many each node has against its
//! weight-proportional quota, and (`--map`) a picture of the table.
use std::{collections::BTreeSet, io::IsTerminal};

use anyhow::Result;
use clap::Args;
use farm_common::NO_OWNER;
use farm_userspace::assign::{NodeShare, shares};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    grid,
    slots::{self, Slot, SlotId},
    table,
    target::{Common, Loaded},
};

pub const JSON_HELP: &str = "JSON (--json): {interface, bucket_count, active_half, slots: [{slot, kind (vip|service), name, \
nodes: [{node, weight, owned, quota}], no_owner, owners (with --map: the owner of every bucket, null for none)}]}. \
quota: the node's weight-proportional share of the buckets among the members of the agent's view (every peer, at the \
file's weights, when no agent answers).";

#[derive(Args)]
pub struct BucketsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Only this service (or a VIP address, for the VIP's own slot) [default: every slot, summarized].
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Also draw the table: a letter per node, `.` for no owner.
    #[arg(long)]
    pub map: bool,
}

/// A slot's row and who owns how much of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotBuckets {
    #[serde(flatten)]
    pub id: SlotId,
    /// Every peer, and any other node the row names, by id.
    pub nodes: Vec<NodeShare>,
    pub no_owner: u32,
    #[serde(skip)]
    pub row: Vec<u16>,
}

pub fn run(args: &BucketsArgs) -> Result<String> {
    let loaded = args.common.open()?;
    let all = slots::slots_of(&loaded.cfg, &loaded.view());
    let chosen = match &args.service {
        Some(name) => vec![slots::find(&all, &loaded.config, name)?],
        None => all,
    };
    let summaries = read(&loaded, &chosen)?;
    let half = loaded.dp.active_half()?;
    if args.common.json {
        return Ok(format!(
            "{:#}\n",
            to_json(&loaded.iface, loaded.node.bucket_count, half, &summaries, args.map)
        ));
    }
    let mut out = format!(
        "{}: {} buckets per slot, table half {half} active\n",
        loaded.iface, loaded.node.bucket_count
    );
    match args.service {
        Some(_) => out += &detail(&summaries[0]),
        None => {
            out +=
                &(per_node_table(&summaries, |n| format!("{}/{}", n.owned, n.quota)) + QUOTA_NOTE)
        }
    }
    if args.map {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        for s in &summaries {
            let nodes: Vec<u16> = s.nodes.iter().map(|n| n.node).collect();
            out += &format!(
                "\n{} {} (slot {}):\n{}",
                s.id.kind.as_str(),
                s.id.name,
                s.id.slot,
                grid::draw(&s.row, &nodes, colour)
            );
        }
    }
    Ok(out)
}

const QUOTA_NOTE: &str = "cells: buckets owned/quota (the weight-proportional share among the agent's live members, \
or among every peer when no agent answers)\n";

/// The rows of `chosen`, summarized.
pub fn read(loaded: &Loaded, chosen: &[Slot]) -> Result<Vec<SlotBuckets>> {
    chosen.iter().map(|s| Ok(summarize(s, loaded.dp.row(s.id.slot as usize)?))).collect()
}

pub fn summarize(slot: &Slot, row: Vec<u16>) -> SlotBuckets {
    let nodes = shares(&slot.members, &row);
    let no_owner = row.iter().filter(|&&o| o == NO_OWNER).count() as u32;
    SlotBuckets { id: slot.id.clone(), nodes, no_owner, row }
}

pub fn to_json(
    iface: &str,
    bucket_count: u32,
    half: u32,
    slots: &[SlotBuckets],
    with_owners: bool,
) -> Value {
    let slots: Vec<Value> = slots
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).expect("plain data");
            if with_owners {
                v["owners"] = s.row.iter().map(|&o| (o != NO_OWNER).then_some(o)).collect();
            }
            v
        })
        .collect();
    json!({ "interface": iface, "bucket_count": bucket_count, "active_half": half, "slots": slots })
}

/// One line per slot, one column per node (`cell` of its share), then the unowned.
pub fn per_node_table(slots: &[SlotBuckets], cell: impl Fn(&NodeShare) -> String) -> String {
    let nodes: BTreeSet<u16> = slots.iter().flat_map(|s| s.nodes.iter().map(|n| n.node)).collect();
    let names: Vec<String> = nodes.iter().map(|n| format!("NODE {n}")).collect();
    let header: Vec<&str> = ["SLOT", "KIND", "NAME"]
        .into_iter()
        .chain(names.iter().map(String::as_str))
        .chain(["NO OWNER"])
        .collect();
    let rows: Vec<Vec<String>> = slots
        .iter()
        .map(|s| {
            let shares = nodes
                .iter()
                .map(|&n| s.nodes.iter().find(|x| x.node == n).map_or("-".into(), &cell));
            [s.id.slot.to_string(), s.id.kind.as_str().into(), s.id.name.clone()]
                .into_iter()
                .chain(shares)
                .chain([s.no_owner.to_string()])
                .collect()
        })
        .collect();
    table::render(&header, &rows, 3)
}

/// One slot, a line per node with its weight, buckets, quota and the difference.
fn detail(s: &SlotBuckets) -> String {
    let mut rows: Vec<Vec<String>> = s
        .nodes
        .iter()
        .map(|n| {
            let diff = i64::from(n.owned) - i64::from(n.quota);
            vec![
                n.node.to_string(),
                n.weight.to_string(),
                n.owned.to_string(),
                n.quota.to_string(),
                format!("{diff:+}"),
            ]
        })
        .collect();
    rows.push(vec!["none".into(), String::new(), s.no_owner.to_string()]);
    let title = format!("{} {} (slot {})\n", s.id.kind.as_str(), s.id.name, s.id.slot);
    title + &table::render(&["NODE", "WEIGHT", "OWNED", "QUOTA", "DIFF"], &rows, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::slots::{table_slots, tests::config};

    #[test]
    fn shares_set_owned_against_quota() {
        let s =
            summarize(&table_slots(&config())[2], vec![1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 9, NO_OWNER]);
        let shares: Vec<_> = s.nodes.iter().map(|n| (n.node, n.weight, n.owned, n.quota)).collect();
        // 12 buckets at weights 2:3 is 4.8 and 7.2: quotas 5 and 7.
        assert_eq!(shares, [(1, 2, 7, 5), (2, 3, 3, 7), (9, 0, 1, 0)]);
        assert_eq!(s.no_owner, 1);
    }

    #[test]
    fn detail_lists_each_node_and_the_unowned() {
        let s =
            summarize(&table_slots(&config())[2], vec![1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, NO_OWNER]);
        let want = "service web (slot 2)\n\
                    NODE  WEIGHT  OWNED  QUOTA  DIFF\n\
                    1          2      5      5    +0\n\
                    2          3      6      7    -1\n\
                    none              1\n";
        assert_eq!(detail(&s), want);
    }

    #[test]
    fn summary_has_a_column_per_node_of_any_slot() {
        let slots = table_slots(&config());
        let vip = summarize(&slots[0], vec![1; 12]);
        let web = summarize(&slots[2], vec![1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, NO_OWNER]);
        let text = per_node_table(&[vip, web], |n| format!("{}/{}", n.owned, n.quota));
        let want = "SLOT  KIND     NAME          NODE 1  NODE 2  NO OWNER\n\
                    0     vip      198.18.0.100    12/8     0/4         0\n\
                    2     service  web              7/5     4/7         1\n";
        assert_eq!(text, want);
    }

    #[test]
    fn json_names_every_field_and_owners_only_on_request() {
        let s =
            summarize(&table_slots(&config())[2], vec![1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, NO_OWNER]);
        let v = to_json("eth0", 12, 1, std::slice::from_ref(&s), false);
        assert_eq!(
            v,
            json!({"interface": "eth0", "bucket_count": 12, "active_half": 1, "slots": [{
                "slot": 2, "kind": "service", "name": "web", "no_owner": 1,
                "nodes": [{"node": 1, "weight": 2, "owned": 5, "quota": 5}, {"node": 2, "weight": 3, "owned": 6, "quota": 7}]
            }]})
        );
        let owners = &to_json("eth0", 12, 1, &[s], true)["slots"][0]["owners"];
        assert_eq!(owners, &json!([1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, null]));
    }
}
