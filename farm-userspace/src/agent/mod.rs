//! `farm agent`: the membership agent. It puts the program on the NIC (or adopts the one
//! pinned there), holds the VIPs on the host, exchanges signed heartbeats with its peers,
//! installs the table of the view the farm agrees on, and keeps the data plane's lease
//! where the membership allows: two thirds of the time peers take to fail this node at
//! most, and never past the moment a peer that stopped hearing it could fail it. So an
//! agent that dies or hangs, or whose heartbeats are lost, stops its node accepting
//! before anyone takes over.
//!
//! Every decision is in `core` (with `membership`: who is alive, when to install;
//! `tables`: what to install; `reload`: what a reload keeps), which does no I/O; the
//! I/O is in `runtime`, and the simulation drives the same core. What the agent shows of
//! itself beside its log is the runtime's too: `events` (the history `farm events`
//! reads), `metrics` and `page` (Prometheus metrics and the status page, made from a
//! `snapshot` and served by `http`).
pub mod apart;
mod checks;
pub mod control;
pub mod core;
pub mod events;
pub mod health;
mod host;
mod http;
mod kept;
pub(crate) mod key;
pub mod membership;
mod metrics;
pub mod note;
mod page;
pub mod quorum;
mod rcvbuf;
pub mod reload;
mod runtime;
mod snapshot;
pub mod socket;
pub mod tables;
pub mod wire;
mod worker;

pub use runtime::run;
