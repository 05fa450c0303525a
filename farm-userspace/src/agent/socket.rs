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
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use socket2::{SockAddr, SockAddrStorage};
use tokio::io::{Interest, unix::AsyncFd};

use super::{core, rcvbuf};
use crate::config::Config;

/// In a farm of more peers than this, heartbeats are read on a grid (`Waiting::Grid`)
/// while the farm is quiet (`Core::quiet`: one view agreed and installed everywhere,
/// nothing waiting to go out): at N nodes one arrives every interval / (N − 1), and a
/// wake-up each (and a step, syscalls, the core's bookkeeping) was most of an agent's
/// CPU. Deadlines still wake the agent on time, and read the socket first; a heartbeat
/// taken late makes its sender's failure later and this node's lease shorter, never
/// longer. Smaller farms take each as it comes: they gain little, and a failover's few
/// round trips would each wait.
const GRID_PEERS: usize = 10;
/// The grid while a change is under way: an interval / this, so that each round of a
/// view change waits little.
const BUSY_DIVISOR: u32 = 10;
/// The grid while the farm is quiet: an interval / this, the longest a heartbeat waits
/// in the socket. Bounded by the lease, where a heartbeat was lost: a peer answers the
/// next one at once, having read it within a grid step, and this node reads the answer
/// within its own. The lease the acknowledgement before gave ends a failure time less a
/// margin after the heartbeat before the lost one went: at the defaults the answer
/// must come within 90 ms of the next heartbeat, and two grid steps of 33 ms leave
/// 24 ms for the two transits (a LAN takes well under a millisecond). A peer's
/// silence counts from when its heartbeat came (the kernel's timestamp), not from when
/// it was read, which would have kept a dead peer bounding the lease a grid step
/// longer than its last acknowledgement allows.
const QUIET_DIVISOR: u32 = 3;

/// How the loop waits for heartbeats in a farm of `cfg`'s size, `quiet` or not (see
/// `GRID_PEERS`).
pub fn waiting(cfg: &Config, quiet: bool) -> Waiting {
    let divisor = if quiet { QUIET_DIVISOR } else { BUSY_DIVISOR };
    match cfg.cluster.peers.len().saturating_sub(1) > GRID_PEERS {
        true => Waiting::Grid(core::interval(cfg) / divisor),
        false => Waiting::Each,
    }
}

/// When the loop wakes next, having read the socket at `read`, with the core's next
/// wake-up at `wake`: on a grid, a step after `read`, or `wake` if that comes first.
/// The grid runs on from each read, not back from `wake`: the core's wake-up moves
/// with every heartbeat read (each peer's silence deadlines), and steps laid back from
/// it ran short, half again as many wake-ups as the grid's.
pub fn next_read(waiting: Waiting, read: Instant, wake: Instant) -> Instant {
    match waiting {
        Waiting::Grid(every) => wake.min(read + every),
        Waiting::Each => wake,
    }
}

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
        // When each heartbeat came, not when it was read: the grid reads them late.
        rcvbuf::setsockopt(socket.as_fd(), libc::SO_TIMESTAMPNS, 1)
            .map_err(|e| std::io::Error::other(format!("setsockopt(SO_TIMESTAMPNS): {e}")))?;
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

    /// The datagrams waiting, up to the batch's room, without waiting for one: how many
    /// `batch` now holds (`Batch::get`). One syscall for all (recvmmsg): a big farm's
    /// grid finds dozens at each read, and a recvmsg each was a tenth of the agent's
    /// CPU.
    pub fn try_recv_batch(&self, batch: &mut Batch) -> std::io::Result<usize> {
        let Batch { data, size, from, control, iovs, headers } = batch;
        for (i, header) in headers.iter_mut().enumerate() {
            iovs[i] =
                libc::iovec { iov_base: data[i * *size..].as_mut_ptr().cast(), iov_len: *size };
            *header = message((&raw mut from[i]).cast(), from[i].size_of(), &mut iovs[i]);
            header.msg_hdr.msg_control = control[i].as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = std::mem::size_of_val(&control[i]);
        }
        let fd = self.socket().as_raw_fd();
        // SAFETY: each header points at its own address, iovec (over its slice of
        // `data`) and control buffer, all owned by `batch` and as long as it says.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                headers.len() as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
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
            .map(|(address, iov)| message(address.as_ptr() as *mut _, address.len(), iov))
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

/// Room for a batch of received datagrams (`HeartbeatSocket::try_recv_batch`), made
/// once and read again at every wake-up.
pub struct Batch {
    /// `headers.len()` buffers of `size` bytes.
    data: Vec<u8>,
    size: usize,
    from: Vec<SockAddrStorage>,
    /// Room for one timestamp control message each, aligned as cmsghdr wants.
    control: Vec<[u64; 8]>,
    iovs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl Batch {
    /// Room for `count` datagrams of up to `size` bytes each.
    pub fn new(count: usize, size: usize) -> Batch {
        let iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        Batch {
            data: vec![0; count * size],
            size,
            from: (0..count).map(|_| SockAddrStorage::zeroed()).collect(),
            control: vec![[0; 8]; count],
            iovs: vec![iov; count],
            headers: (0..count)
                .map(|_| libc::mmsghdr { msg_hdr: empty_msghdr(), msg_len: 0 })
                .collect(),
        }
    }

    /// The `i`-th datagram of the last read, who sent it, and when the kernel took it
    /// in (SO_TIMESTAMPNS, on the wall clock; None if it said nothing).
    pub fn get(&mut self, i: usize) -> std::io::Result<(&[u8], SocketAddr, Option<SystemTime>)> {
        let header = &self.headers[i].msg_hdr;
        // Each address is read once: taken, and zeroed for the next read.
        let from = std::mem::replace(&mut self.from[i], SockAddrStorage::zeroed());
        // SAFETY: recvmmsg wrote an address of `msg_namelen` bytes into `from`.
        let address = unsafe { SockAddr::new(from, header.msg_namelen) }
            .as_socket()
            .ok_or_else(|| std::io::Error::other("a datagram from no IP address"))?;
        let len = (self.headers[i].msg_len as usize).min(self.size);
        Ok((&self.data[i * self.size..][..len], address, stamp(header)))
    }
}

/// The SO_TIMESTAMPNS control message of a received `header`, as a wall-clock time.
fn stamp(header: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: the CMSG_ macros walk the control buffer recvmmsg filled, within
    // `msg_controllen`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                let since = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
                return Some(UNIX_EPOCH + since);
            }
            cmsg = libc::CMSG_NXTHDR(header, cmsg);
        }
    }
    None
}

/// A message header with no name, data or control data, to fill in.
fn empty_msghdr() -> libc::msghdr {
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

/// One message of a sendmmsg or recvmmsg: the address at `name` (`namelen` bytes, or
/// room for one), and the data `iov` covers; no control data.
fn message(
    name: *mut libc::c_void,
    namelen: libc::socklen_t,
    iov: &mut libc::iovec,
) -> libc::mmsghdr {
    let mut header = empty_msghdr();
    header.msg_name = name;
    header.msg_namelen = namelen;
    header.msg_iov = iov;
    header.msg_iovlen = 1;
    libc::mmsghdr { msg_hdr: header, msg_len: 0 }
}

impl AsFd for HeartbeatSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket().as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_step_runs_from_the_read_and_ends_early_only_for_the_wake_up() {
        let (read, ms) = (Instant::now(), Duration::from_millis);
        let grid = Waiting::Grid(ms(20));
        assert_eq!(next_read(grid, read, read + ms(100)), read + ms(20));
        assert_eq!(next_read(grid, read, read + ms(21)), read + ms(20));
        assert_eq!(next_read(grid, read, read + ms(20)), read + ms(20));
        assert_eq!(next_read(grid, read, read + ms(7)), read + ms(7));
        assert_eq!(next_read(Waiting::Each, read, read + ms(95)), read + ms(95));
    }
}
