//! What the handover's verdict cases need beside a packet: TCP connections this node
//! holds. The program looks sockets up in the namespace of the receiving device, which
//! for BPF_PROG_TEST_RUN is the calling thread's: so the calling thread moves to a
//! namespace of its own (unnamed: it ends with the thread and its sockets, with nothing
//! to clean up), where the fixtures' VIPs and client addresses sit on `lo`, a listener
//! on each web port, and one connection from the client's `HELD_PORT` to each.
use std::{
    io,
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    process::Command,
};

use anyhow::{Context, Result, ensure};
use socket2::{Domain, Socket, Type};

use crate::{fixtures::*, netns::run};

/// The client port of the connection this node holds; other ports hold none.
pub const HELD_PORT: u16 = 40001;

/// The listeners and both ends of each held connection, alive while this is.
pub struct Held {
    _sockets: Vec<TcpListener>,
    _streams: Vec<TcpStream>,
}

/// Moves the calling thread to a namespace of its own holding the connections. Threads
/// only: the process stays where it is.
pub fn hold() -> Result<Held> {
    // SAFETY: unshare of the calling thread's network namespace alone.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error()).context("unshare(CLONE_NEWNET)");
    }
    // Children forked from this thread start in its namespace.
    run(Command::new("ip").args(["link", "set", "lo", "up"]))?;
    for addr in [VIP4.to_string() + "/32", CLIENT4.to_string() + "/32"] {
        run(Command::new("ip").args(["addr", "add", &addr, "dev", "lo"]))?;
    }
    for addr in [VIP6.to_string() + "/128", CLIENT6.to_string() + "/128"] {
        run(Command::new("ip").args(["addr", "add", &addr, "dev", "lo", "nodad"]))?;
    }
    let (mut sockets, mut streams) = (vec![], vec![]);
    for (vip, client) in
        [(IpAddr::from(VIP4), IpAddr::from(CLIENT4)), (VIP6.into(), CLIENT6.into())]
    {
        let listener = TcpListener::bind(SocketAddr::new(vip, 80)).context("listen on a VIP")?;
        let s = Socket::new(Domain::for_address(SocketAddr::new(vip, 80)), Type::STREAM, None)?;
        s.bind(&SocketAddr::new(client, HELD_PORT).into())?;
        s.connect(&SocketAddr::new(vip, 80).into())
            .with_context(|| format!("connect from {client}:{HELD_PORT} to {vip}:80"))?;
        let (server, from) = listener.accept()?;
        ensure!(from.port() == HELD_PORT, "accepted a connection from {from}");
        streams.extend([s.into(), server]);
        sockets.push(listener);
    }
    Ok(Held { _sockets: sockets, _streams: streams })
}
