//! `farm-bench`: what one farm verdict costs, and how fast a farm heals. Table A times
//! each program path under BPF_PROG_TEST_RUN against a trivial program (`cost`); table B
//! sends live frames into a namespace of its own and compares farm with the nftables
//! filter that replaced CLUSTERIP (`compare`); table C times a node's failure and leave
//! in a farm of agents (`failover`); table D counts the false failovers of a farm whose
//! machine is busy (`busy`); table E times and weighs farms of 4 to 64 agents (`scale`). `report` prints them, as tables or JSON, and `markdown` as
//! Markdown for the README.
pub mod baseline;
pub mod busy;
pub mod compare;
pub mod cost;
pub mod failover;
pub mod live;
pub mod markdown;
pub mod peer;
pub mod report;
pub mod scale;
pub mod signals;
pub mod sink;

/// The median of `values` (the upper one of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
