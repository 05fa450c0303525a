//! The soak's traffic, from the client's namespace for as long as the soak lasts:
//! numbered UDP datagrams to the numbered service (each number's send time kept), and
//! TCP connections to the spread service one after another (each one's outcome kept).
use std::{
    net::{IpAddr, SocketAddr},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    farm::{NsFarm, SPREAD_PORT, UDP_PORT, VIP},
    netns::enter,
    traffic::{ask_tcp_from, send_numbered_for},
};

/// 200 datagrams a second.
const UDP_GAP: Duration = Duration::from_millis(5);
/// About 15 connections a second when all are answered.
const TCP_GAP: Duration = Duration::from_millis(50);
/// A connection whose SYN was dropped is retried by the kernel after 1 s: one more try.
const TCP_TIMEOUT: Duration = Duration::from_secs(2);

/// One TCP connection: when it was tried, when it ended, whether a node answered.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub start: Instant,
    pub end: Instant,
    pub answered: bool,
}

pub struct Traffic {
    udp: JoinHandle<Result<Vec<Instant>>>,
    tcp: JoinHandle<Result<Vec<Attempt>>>,
}

/// What was sent: each number's send time, each connection's outcome.
pub struct Sent {
    pub udp: Vec<Instant>,
    pub tcp: Vec<Attempt>,
}

impl Traffic {
    /// Both streams, for `lasting`.
    pub fn start(farm: &NsFarm, lasting: Duration) -> Traffic {
        let (ns, clients) = (farm.client.ns.name.clone(), farm.clients.clone());
        let udp = {
            let (ns, clients) = (ns.clone(), clients.clone());
            thread::spawn(move || {
                enter(&ns)?;
                let vip = SocketAddr::new(VIP.into(), UDP_PORT);
                send_numbered_for(&clients, vip, UDP_GAP, lasting)
            })
        };
        let tcp = thread::spawn(move || {
            enter(&ns)?;
            Ok(connect_for(&clients, lasting))
        });
        Traffic { udp, tcp }
    }

    /// Waits for both streams to end, and for the last datagrams to land.
    pub fn stop(self) -> Result<Sent> {
        let udp = self.udp.join().map_err(|_| anyhow::anyhow!("the UDP sender panicked"))??;
        let tcp = self.tcp.join().map_err(|_| anyhow::anyhow!("the TCP client panicked"))??;
        thread::sleep(Duration::from_millis(500));
        Ok(Sent { udp, tcp })
    }
}

/// Connections to the spread service from each client address in turn, until `lasting`
/// has passed.
fn connect_for(clients: &[IpAddr], lasting: Duration) -> Vec<Attempt> {
    let vip = SocketAddr::new(VIP.into(), SPREAD_PORT);
    let end = Instant::now() + lasting;
    let mut attempts = Vec::new();
    while Instant::now() < end {
        let client = clients[attempts.len() % clients.len()];
        let start = Instant::now();
        let reply = ask_tcp_from(SocketAddr::new(client, 0), vip, TCP_TIMEOUT);
        let answered = reply.is_some_and(|r| !r.is_empty());
        attempts.push(Attempt { start, end: Instant::now(), answered });
        thread::sleep(TCP_GAP);
    }
    attempts
}
