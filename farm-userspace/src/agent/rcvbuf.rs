//! The heartbeat socket's receive buffer. Every peer's heartbeat of a round can arrive
//! within a millisecond (after a view change, all of them do), and the kernel's default
//! buffer (`net.core.rmem_default`, 208 KiB) holds about a hundred of them as the kernel
//! counts their memory: at 32 nodes a cold start lost most of its heartbeats there, and
//! lost heartbeats fail healthy peers. So the agent sizes it for several rounds of every
//! peer, and reads the socket's drop count so that a full buffer shows (`farm status`,
//! metrics, the log) instead of looking like silent peers.
use std::os::fd::{AsRawFd, BorrowedFd};

/// What one heartbeat costs the buffer at most, as the kernel counts it (the datagram in
/// its socket buffer's `truesize`, a page on most NICs).
const PER_DATAGRAM: usize = 4096;
/// Rounds of every peer's heartbeats the buffer holds while the agent is busy (computing
/// nothing: tables are computed off its loop; a slow step, a burst after a view change).
const ROUNDS: usize = 8;
/// Never less than the kernel's usual default.
const FLOOR: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RcvbufError {
    #[error("setsockopt(SO_RCVBUF) on the heartbeat socket: {0}")]
    Set(std::io::Error),
    #[error("getsockopt(SO_RCVBUF) on the heartbeat socket: {0}")]
    Get(std::io::Error),
    #[error("getsockopt(SO_MEMINFO) on the heartbeat socket: {0}")]
    Meminfo(std::io::Error),
}

/// The buffer a farm of `peers` other nodes wants.
pub fn wanted(peers: usize) -> usize {
    (peers * ROUNDS * PER_DATAGRAM).max(FLOOR)
}

/// Asks for `bytes` of receive buffer: past `net.core.rmem_max` where the agent may
/// (SO_RCVBUFFORCE, with CAP_NET_ADMIN), else up to it. Returns what the kernel gave,
/// as it counts it (twice what was asked, for its bookkeeping).
pub fn size(socket: BorrowedFd<'_>, bytes: usize) -> Result<usize, RcvbufError> {
    let value = i32::try_from(bytes).unwrap_or(i32::MAX);
    if setsockopt(socket, libc::SO_RCVBUFFORCE, value).is_err() {
        setsockopt(socket, libc::SO_RCVBUF, value).map_err(RcvbufError::Set)?;
    }
    let mut got: libc::c_int = 0;
    getsockopt(socket, libc::SO_RCVBUF, &mut got).map_err(RcvbufError::Get)?;
    Ok(got as usize)
}

/// Datagrams the kernel dropped on this socket since it was made (a full buffer, for
/// UDP): `sk_drops`, as SO_MEMINFO reports it.
pub fn drops(socket: BorrowedFd<'_>) -> Result<u64, RcvbufError> {
    // SK_MEMINFO_VARS is 9 in every kernel that has SO_MEMINFO; SK_MEMINFO_DROPS is 8.
    let mut info = [0u32; 9];
    getsockopt(socket, libc::SO_MEMINFO, &mut info).map_err(RcvbufError::Meminfo)?;
    Ok(u64::from(info[8]))
}

/// An int option of the socket (SOL_SOCKET).
pub(super) fn setsockopt(
    socket: BorrowedFd<'_>,
    name: libc::c_int,
    value: i32,
) -> std::io::Result<()> {
    // SAFETY: setsockopt on a socket this process holds open, with a pointer to an int
    // and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw const value).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn getsockopt<T>(socket: BorrowedFd<'_>, name: libc::c_int, out: &mut T) -> std::io::Result<()> {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: getsockopt on a socket this process holds open, into `out`, whose size it
    // is told.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (out as *mut T).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn grows_with_the_farm_and_never_below_the_floor() {
        assert_eq!(wanted(2), FLOOR);
        assert_eq!(wanted(63), 63 * ROUNDS * PER_DATAGRAM);
    }

    #[test]
    fn a_socket_gets_a_buffer_and_counts_no_drops() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let got = size(socket.as_fd(), FLOOR).unwrap();
        // Without privileges, rmem_max caps it; either way it is what the kernel says.
        assert!(got > 0);
        assert_eq!(drops(socket.as_fd()).unwrap(), 0);
    }
}
