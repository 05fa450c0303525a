//! The heartbeat socket, and how the loop waits on it. A farm of a few nodes reads each
//! heartbeat as it comes: the socket is in tokio's epoll set, and a datagram wakes the
//! agent. A bigger farm reads it on a grid (`Waiting::Grid`), and keeps it out of the
//! epoll set: at N nodes a heartbeat arrives every interval / (N − 1), and each woke
//! the agent, even while it let them wait to take them together (the set is
//! edge-triggered, so every datagram woke it), and made the sender's kernel wake the
//! receiver. At 32 nodes those wake-ups were a third of an agent's CPU.
use std::{
    net::{SocketAddr, UdpSocket},
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    time::Duration,
};

use socket2::SockAddr;
use tokio::io::{Interest, unix::AsyncFd};

/// How the loop waits for heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Woken by each datagram.
    Each,
    /// Reads what waits every this long, never woken by a datagram.
    Grid(Duration),
}

/// The socket, in tokio's epoll set while `Waiting::Each` (owned by the registration,
/// which takes it out of the set before it closes).
enum Held {
    Each(AsyncFd<UdpSocket>),
    Grid(UdpSocket),
}

pub struct HeartbeatSocket(Option<Held>);

impl HeartbeatSocket {
    /// Binds `address`, non-blocking, read as `waiting` says.
    pub fn bind(address: SocketAddr, waiting: Waiting) -> std::io::Result<HeartbeatSocket> {
        let socket = UdpSocket::bind(address)?;
        socket.set_nonblocking(true)?;
        let mut bound = HeartbeatSocket(Some(Held::Grid(socket)));
        bound.wait(waiting)?;
        Ok(bound)
    }

    /// Changes how the loop waits (a reload may change the number of peers).
    pub fn wait(&mut self, waiting: Waiting) -> std::io::Result<()> {
        let held = self.0.take().expect("the socket is put back below");
        let (held, registered) = match (waiting, held) {
            // SAFETY: the registration owns the socket, so its descriptor stays open
            // and the same while registered.
            (Waiting::Each, Held::Grid(socket)) => {
                match unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) } {
                    Ok(fd) => (Held::Each(fd), Ok(())),
                    Err(e) => {
                        let (socket, cause) = e.into_parts();
                        (Held::Grid(socket), Err(cause))
                    }
                }
            }
            (Waiting::Grid(_), Held::Each(fd)) => (Held::Grid(fd.into_inner()), Ok(())),
            (_, held) => (held, Ok(())),
        };
        self.0 = Some(held);
        registered
    }

    fn socket(&self) -> &UdpSocket {
        match self.0.as_ref().expect("put back by wait") {
            Held::Each(fd) => fd.get_ref(),
            Held::Grid(socket) => socket,
        }
    }

    /// Until a datagram waits, when the loop is woken by each; never otherwise.
    pub async fn readable(&self) -> std::io::Result<()> {
        match self.0.as_ref() {
            // Cleared before the socket is read to its end: a datagram coming after
            // the read sets it again.
            Some(Held::Each(fd)) => fd.readable().await.map(|mut ready| ready.clear_ready()),
            _ => std::future::pending().await,
        }
    }

    /// The next datagram waiting, without waiting for one.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.socket().recv_from(buf)
    }

    /// Sends without waiting (a full send buffer is an error, as a lost datagram).
    pub fn try_send_to(&self, datagram: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.socket().send_to(datagram, to)
    }

    /// Sends each datagram to its address without waiting, in as few syscalls as the
    /// kernel allows (sendmmsg: a heartbeat goes to every peer at once, and a syscall
    /// each was a tenth of what sending cost); the index and error of each one not
    /// sent.
    pub fn send_all(&self, datagrams: &[(SocketAddr, &[u8])]) -> Vec<(usize, std::io::Error)> {
        let addresses: Vec<SockAddr> =
            datagrams.iter().map(|(to, _)| SockAddr::from(*to)).collect();
        let mut iovs: Vec<libc::iovec> = datagrams
            .iter()
            .map(|(_, d)| libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: d.len(),
            })
            .collect();
        let mut messages: Vec<libc::mmsghdr> = addresses
            .iter()
            .zip(&mut iovs)
            .map(|(address, iov)| {
                // SAFETY: all-zero is a valid msghdr (no name, no control data).
                let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
                header.msg_name = address.as_ptr() as *mut libc::c_void;
                header.msg_namelen = address.len();
                header.msg_iov = iov;
                header.msg_iovlen = 1;
                libc::mmsghdr { msg_hdr: header, msg_len: 0 }
            })
            .collect();
        let fd = self.socket().as_raw_fd();
        let (mut at, mut failed) = (0, Vec::new());
        while at < messages.len() {
            let rest = &mut messages[at..];
            // SAFETY: `rest` points at `rest.len()` initialised mmsghdr structures whose
            // names, iovecs and buffers (`addresses`, `iovs`, `datagrams`) outlive the call.
            let sent = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
            match sent {
                // The first of the rest could not go: said, and the others tried.
                ..=0 => {
                    failed.push((at, std::io::Error::last_os_error()));
                    at += 1;
                }
                n => at += n as usize,
            }
        }
        failed
    }
}

impl AsFd for HeartbeatSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket().as_fd()
    }
}
