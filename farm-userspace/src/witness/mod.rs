//! `farm witness`: the tie-breaker a farm with `quorum: majority` and an even number of
//! votes can name in `cluster.witness`. A small process on a third machine: it answers
//! signed asks on one UDP port and gives the vote to one view of each farm at a time
//! (`arbiter`). It keeps nothing on disk: restarted, it grants nothing for the longest
//! lease, so no grant it gave before outlives its memory.
pub mod arbiter;
pub mod wire;

use std::{
    net::{SocketAddr, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context;
use log::{debug, info, warn};

use self::{
    arbiter::{Arbiter, Verdict},
    wire::{Ballot, MAX_DATAGRAM},
};
use crate::agent::key;

/// Serves asks on `listen` until killed.
pub fn run(listen: SocketAddr, key_file: &Path, max_lease: Duration) -> anyhow::Result<()> {
    let key = key::read_file(key_file)?;
    let socket = UdpSocket::bind(listen).with_context(|| {
        format!("bind the witness to {listen}: pick an address of this host and a free port")
    })?;
    let mut arbiter = Arbiter::new(max_lease, Instant::now());
    info!(
        "witness on {listen}: granting nothing for {} ms (the longest lease), so no grant of an earlier run is still counted on",
        max_lease.as_millis()
    );
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let (len, from) = socket.recv_from(&mut buf).context("receive on the witness socket")?;
        let ask = match Ballot::decode(&buf[..len], &key) {
            Ok(ask) => ask,
            Err(e) => {
                debug!("ignored a datagram from {from}: {e}");
                continue;
            }
        };
        let (answer, verdict) = arbiter.ask(&ask, Instant::now());
        match verdict {
            Verdict::Granted { moved: true } => info!(
                "farm {:016x}: the vote goes to view {:?} (asked by node {} from {from})",
                ask.cluster, ask.members, ask.node
            ),
            Verdict::Refused => debug!(
                "farm {:016x}: node {} asked for view {:?}; another view holds the vote",
                ask.cluster, ask.node, ask.members
            ),
            Verdict::Granted { moved: false } | Verdict::Quiet | Verdict::Ignored => {}
        }
        if let Some(answer) = answer
            && let Err(e) = socket.send_to(&answer.encode(&key), from)
        {
            warn!("answer node {} at {from}: {e}", ask.node);
        }
    }
}
