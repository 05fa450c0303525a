//! Everything the XDP program and the `farm` binary must agree on, written once: the
//! layouts of the maps they share, the limits that size those maps, and the flow hash
//! that turns a client into a bucket. The kernel side and userspace both compile this
//! crate, so `farm lookup` and the data plane can never disagree about a bucket.
#![no_std]

pub mod counters;
pub mod frame;
pub mod handover;
pub mod hash;
pub mod layout;
pub mod maps;

pub use counters::{Counter, Counters};
pub use hash::{Addr, avalanche, bucket_of, flow_hash, mix, v4_addr, v6_addr};
pub use layout::*;
pub use maps::*;
