//! `farm stats`: each slot's packet counters, summed over CPUs, and with `--interval`
//! their rates over one interval.
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use farm_common::Counters;
use serde_json::{Map, Value, json};

use super::{
    slots::{self, SlotId},
    table,
    target::Common,
};

/// `farm stats --help`'s description of the JSON output.
pub fn json_help() -> String {
    let counters = Counters::NAMES.join(", ");
    format!(
        "JSON (--json): {{interface, interval_secs (null without --interval), slots: [{{slot, \
kind (vip|service|global), name, counters: {{{counters}}}, rates (with --interval: the same fields, per \
second)}}]}}. The global slot counts traffic for no VIP."
    )
}

#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sample twice SECS apart and also show per-second rates (then exit).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: Option<u64>,
}

/// One slot's counters, and their rates when sampled twice.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotStats {
    pub id: SlotId,
    pub counts: [u64; Counters::LEN],
    pub rates: Option<[f64; Counters::LEN]>,
}

pub fn run(args: &StatsArgs) -> Result<String> {
    let loaded = args.common.open()?;
    let ids: Vec<SlotId> = slots::table_slots(&loaded.cfg)
        .into_iter()
        .map(|s| s.id)
        .chain([slots::global()])
        .collect();
    let read = || -> Result<(Vec<[u64; Counters::LEN]>, Instant)> {
        let counts = ids
            .iter()
            .map(|id| Ok(loaded.dp.counters(id.slot)?.values()))
            .collect::<Result<_>>()?;
        Ok((counts, Instant::now()))
    };
    let (first, at) = read()?;
    let (now, before) = match args.interval {
        None => (first, None),
        Some(secs) => {
            std::thread::sleep(Duration::from_secs(secs));
            let (second, later) = read()?;
            (second, Some((first, later - at)))
        }
    };
    let stats = combine(ids, now, before);
    Ok(match args.common.json {
        true => format!("{:#}\n", to_json(&loaded.iface, args.interval, &stats)),
        false => text(&loaded.iface, args.interval, &stats),
    })
}

/// Each slot's latest counts, with rates against `before` (counts, time between samples).
/// A counter that went down (the program was reloaded) has a rate of 0.
pub fn combine(
    ids: Vec<SlotId>,
    now: Vec<[u64; Counters::LEN]>,
    before: Option<(Vec<[u64; Counters::LEN]>, Duration)>,
) -> Vec<SlotStats> {
    ids.into_iter()
        .zip(now)
        .enumerate()
        .map(|(i, (id, counts))| {
            let rates = before.as_ref().map(|(then, dt)| {
                std::array::from_fn(|c| {
                    counts[c].saturating_sub(then[i][c]) as f64 / dt.as_secs_f64()
                })
            });
            SlotStats { id, counts, rates }
        })
        .collect()
}

pub fn to_json(iface: &str, interval: Option<u64>, stats: &[SlotStats]) -> Value {
    let slots: Vec<Value> = stats
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s.id).expect("plain data");
            v["counters"] = named(s.counts.map(Value::from));
            if let Some(rates) = s.rates {
                v["rates"] = named(rates.map(Value::from));
            }
            v
        })
        .collect();
    json!({ "interface": iface, "interval_secs": interval, "slots": slots })
}

fn named(values: [Value; Counters::LEN]) -> Value {
    Value::Object(Counters::NAMES.iter().map(|n| n.to_string()).zip(values).collect::<Map<_, _>>())
}

pub fn text(iface: &str, interval: Option<u64>, stats: &[SlotStats]) -> String {
    let mut out = format!("{iface}: packets since load, summed over CPUs\n");
    out += &columns(stats, |s| s.counts.iter().map(u64::to_string).collect());
    if let Some(secs) = interval {
        out += &format!("\nper second over the last {secs} s\n");
        out += &columns(stats, |s| {
            s.rates.unwrap_or_default().iter().map(|r| format!("{r:.1}")).collect()
        });
    }
    out
}

/// A line per slot: its id, then `cells` under the counters' names.
fn columns(stats: &[SlotStats], cells: impl Fn(&SlotStats) -> Vec<String>) -> String {
    let header: Vec<&str> = ["SLOT", "KIND", "NAME"].into_iter().chain(Counters::NAMES).collect();
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            [s.id.slot.to_string(), s.id.kind.as_str().into(), s.id.name.clone()]
                .into_iter()
                .chain(cells(s))
                .collect()
        })
        .collect();
    table::render(&header, &rows, 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::slots::{Kind, global};

    fn web() -> SlotId {
        SlotId { slot: 1, kind: Kind::Service, name: "web".into() }
    }

    fn sampled() -> Vec<SlotStats> {
        let now =
            vec![[30, 60, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 500, 0, 0, 0, 0]];
        let before =
            vec![[10, 20, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 600, 0, 0, 0, 0]];
        combine(vec![web(), global()], now, Some((before, Duration::from_secs(4))))
    }

    #[test]
    fn rates_are_per_second_and_never_negative() {
        let s = sampled();
        assert_eq!(s[0].rates.unwrap()[..2], [5.0, 10.0]);
        assert_eq!(s[1].rates.unwrap()[7], 0.0, "a counter that went down was reset");
    }

    #[test]
    fn json_names_every_counter() {
        let v = to_json(
            "eth0",
            None,
            &combine(vec![web()], vec![[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]], None),
        );
        let counters = json!({"accepted": 1, "not_owner": 2, "lease_expired": 3, "no_service": 4,
            "arp_replies": 5, "nd_replies": 6, "malformed": 7, "passed": 8, "socket_found": 9,
            "new_flow": 10, "learned_flow": 11, "peer_flow": 12});
        let want = json!({"interface": "eth0", "interval_secs": null,
            "slots": [{"slot": 1, "kind": "service", "name": "web", "counters": counters}]});
        assert_eq!(v, want);
        let v = to_json("eth0", Some(4), &sampled());
        assert_eq!(v["slots"][1]["kind"], "global");
        assert_eq!(v["slots"][0]["rates"]["not_owner"], 10.0);
    }

    #[test]
    fn text_has_a_row_per_slot_and_rates_below() {
        let want = "eth0: packets since load, summed over CPUs\n\
SLOT  KIND     NAME         accepted  not_owner  lease_expired  no_service  arp_replies  nd_replies  malformed  passed  socket_found  new_flow  learned_flow  peer_flow\n\
1     service  web                30         60              0           0            2           0          0       0             0         0             0          0\n\
64    global   (not a VIP)         0          0              0           0            0           0          1     500             0         0             0          0\n\
\n\
per second over the last 4 s\n\
SLOT  KIND     NAME         accepted  not_owner  lease_expired  no_service  arp_replies  nd_replies  malformed  passed  socket_found  new_flow  learned_flow  peer_flow\n\
1     service  web               5.0       10.0            0.0         0.0          0.0         0.0        0.0     0.0           0.0       0.0           0.0        0.0\n\
64    global   (not a VIP)       0.0        0.0            0.0         0.0          0.0         0.0        0.0     0.0           0.0       0.0           0.0        0.0\n";
        assert_eq!(text("eth0", Some(4), &sampled()), want);
    }
}
