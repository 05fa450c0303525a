//! Which peer this host is, and its NIC. A file that leaves `cluster.node_id` out can go
//! to every node unchanged: each node is then the one peer whose heartbeat address is
//! assigned to an interface of this host, in this process's network namespace (where the
//! agent binds its heartbeat socket); none or two such peers is an error, and the file
//! must say. A file that leaves `cluster.interface` out means the interface that holds
//! this node's heartbeat address, so NICs named differently need no file of their own.
use std::{io, net::IpAddr};

use super::{
    Config, ConfigError, NodeSource, Peer,
    check::Ctx,
    cluster::{interface, known_node},
};

const NODE: &str = "cluster.node_id";
const INTERFACE: &str = "cluster.interface";

/// This node's id, how it was found, and its interface: as the file gives them, else
/// found among this host's addresses.
pub(super) fn place(
    ctx: &Ctx,
    id: Option<u64>,
    iface: Option<String>,
    peers: &[Peer],
) -> Result<(u16, NodeSource, String), ConfigError> {
    // Listed only when the file leaves something to find.
    let mut local: Option<Vec<(IpAddr, String)>> = None;
    let mut listed = |field: &str| -> Result<Vec<(IpAddr, String)>, ConfigError> {
        if local.is_none() {
            let addresses = local_addresses().map_err(|e| {
                ctx.error(
                    field,
                    format!(
                        "is left out, and this host's addresses cannot be listed ({e}); set it"
                    ),
                )
            })?;
            local = Some(addresses);
        }
        Ok(local.clone().unwrap_or_default())
    };
    let (id, source) = match id {
        Some(id) => (known_node(ctx, NODE, id, peers)?, NodeSource::File),
        None => {
            let here: Vec<IpAddr> = listed(NODE)?.into_iter().map(|(ip, _)| ip).collect();
            let (id, address) = pick(peers, &here).map_err(|reason| ctx.error(NODE, reason))?;
            (id, NodeSource::Address(address))
        }
    };
    let iface = match iface {
        Some(name) => interface(ctx, name)?,
        None => {
            let address = peers.iter().find(|p| p.id == id).expect("a known node").address.ip();
            let holder = listed(INTERFACE)?.into_iter().find(|(ip, _)| *ip == address);
            let (_, name) = holder.ok_or_else(|| {
                ctx.error(
                    INTERFACE,
                    format!("is left out, and node {id}'s address {address} is on no interface of this host; set it"),
                )
            })?;
            name
        }
    };
    Ok((id, source, iface))
}

/// How this host's node was found, when the file leaves `node_id` out: for the log
/// and `farm check`.
pub fn found(cfg: &Config) -> Option<String> {
    match cfg.cluster.node_source {
        NodeSource::File => None,
        NodeSource::Address(address) => Some(format!(
            "node {} is the peer at {address}, an address of this host (cluster.node_id left out)",
            cfg.cluster.node_id
        )),
    }
}

/// The one peer whose address is in `local`, or why there is not exactly one.
fn pick(peers: &[Peer], local: &[IpAddr]) -> Result<(u16, IpAddr), String> {
    let here: Vec<&Peer> = peers.iter().filter(|p| local.contains(&p.address.ip())).collect();
    let listed = |peers: &mut dyn Iterator<Item = &Peer>| {
        peers.map(|p| format!("{} ({})", p.id, p.address.ip())).collect::<Vec<_>>().join(", ")
    };
    match here[..] {
        [peer] => Ok((peer.id, peer.address.ip())),
        [] => Err(format!(
            "is left out, and no peer's address is on this host (peers: {}); set it, or run farm on one of the peers (`ip addr` shows this host's addresses)",
            listed(&mut peers.iter())
        )),
        _ => Err(format!(
            "is left out, and the addresses of several peers are on this host (nodes {}); set it to this node's id",
            listed(&mut here.into_iter())
        )),
    }
}

/// The addresses of every interface in this thread's network namespace, up or down,
/// with the interface's name.
fn local_addresses() -> io::Result<Vec<(IpAddr, String)>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list it allocates, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addresses = Vec::new();
    let mut next = list;
    while !next.is_null() {
        // SAFETY: a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*next };
        next = entry.ifa_next;
        if let Some(address) = ip_of(entry) {
            // SAFETY: getifaddrs gives every entry a NUL-terminated name.
            let name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) };
            addresses.push((address, name.to_string_lossy().into_owned()));
        }
    }
    // SAFETY: the list getifaddrs allocated, freed once, nothing of it kept.
    unsafe { libc::freeifaddrs(list) };
    Ok(addresses)
}

/// The IPv4 or IPv6 address of one `getifaddrs` entry, if it has one.
fn ip_of(entry: &libc::ifaddrs) -> Option<IpAddr> {
    let addr = entry.ifa_addr;
    if addr.is_null() {
        return None;
    }
    // SAFETY: ifa_addr points at a sockaddr whose family says which struct it is.
    match i32::from(unsafe { (*addr).sa_family }) {
        libc::AF_INET => {
            // SAFETY: an AF_INET sockaddr is a sockaddr_in.
            let sin = unsafe { &*(addr as *const libc::sockaddr_in) };
            Some(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()))
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 sockaddr is a sockaddr_in6.
            let sin6 = unsafe { &*(addr as *const libc::sockaddr_in6) };
            Some(IpAddr::from(sin6.sin6_addr.s6_addr))
        }
        // Link-layer (AF_PACKET) entries carry no IP address.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers() -> Vec<Peer> {
        (1..=3)
            .map(|id| Peer {
                id,
                address: format!("198.18.0.{}:7400", 10 + id).parse().unwrap(),
                weight: 1,
                priority: 0,
            })
            .collect()
    }

    #[test]
    fn the_one_peer_whose_address_is_here() {
        let here = ["127.0.0.1".parse().unwrap(), "198.18.0.12".parse().unwrap()];
        assert_eq!(pick(&peers(), &here), Ok((2, here[1])));
    }

    #[test]
    fn none_or_several_is_an_error_that_names_the_peers() {
        let none = pick(&peers(), &["127.0.0.1".parse().unwrap()]).unwrap_err();
        assert!(
            none.contains("no peer's address is on this host (peers: 1 (198.18.0.11), 2 (198.18.0.12), 3 (198.18.0.13))"),
            "{none}"
        );
        let two = ["198.18.0.11".parse().unwrap(), "198.18.0.13".parse().unwrap()];
        let several = pick(&peers(), &two).unwrap_err();
        assert!(
            several.ends_with("(nodes 1 (198.18.0.11), 3 (198.18.0.13)); set it to this node's id"),
            "{several}"
        );
    }

    #[test]
    fn lists_this_hosts_loopback() {
        let local = local_addresses().unwrap();
        assert!(local.iter().any(|(ip, name)| ip.is_loopback() && name == "lo"), "{local:?}");
    }
}
