//! The service the accept paths deliver to: a UDP socket on VIP4:5353 inside the bench
//! namespace. It is not read while frames arrive, so it fills within its first fifty or
//! so datagrams (each holds a whole page) and the kernel then drops each one at the
//! socket's door (counted as overflow), after IP, the socket lookup and the checksum: an
//! accept figure covers the whole stack but queueing, the same for farm and peer. A reader thread was tried and
//! rejected: on two cores neither recv nor recvmmsg kept up with injection (a third to a
//! half overflowed anyway), and its wakeups and cross-CPU frees made the accept figures
//! swing by a third between runs.
use std::{io::ErrorKind, net::UdpSocket, os::fd::AsRawFd};

use anyhow::{Context, Result, ensure};

use crate::fixtures::VIP4;

pub const PORT: u16 = 5353;

pub struct Sink {
    socket: UdpSocket,
    received: u64,
}

/// What reached the socket so far.
#[derive(Clone, Copy, Default)]
pub struct Delivered {
    /// Queued in the socket (and read by `drain`).
    pub received: u64,
    /// Dropped by the socket: its buffer was full.
    pub overflowed: u64,
}

impl std::ops::Add for Delivered {
    type Output = Delivered;
    fn add(self, rhs: Delivered) -> Delivered {
        Delivered {
            received: self.received + rhs.received,
            overflowed: self.overflowed + rhs.overflowed,
        }
    }
}

impl std::ops::Sub for Delivered {
    type Output = Delivered;
    fn sub(self, rhs: Delivered) -> Delivered {
        Delivered {
            received: self.received - rhs.received,
            overflowed: self.overflowed - rhs.overflowed,
        }
    }
}

impl Sink {
    /// Binds the socket; call from a thread inside the namespace that holds the VIP.
    pub fn bind() -> Result<Sink> {
        let socket = UdpSocket::bind((VIP4, PORT)).context("bind the UDP sink")?;
        socket.set_nonblocking(true)?;
        Ok(Sink { socket, received: 0 })
    }

    /// Reads whatever the socket holds, leaving it empty, and returns the totals so far.
    pub fn drain(&mut self) -> Result<Delivered> {
        let mut buf = [0u8; 2048];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(_) => self.received += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("read the UDP sink"),
            }
        }
        Ok(Delivered { received: self.received, overflowed: self.drops()? })
    }

    fn drops(&self) -> Result<u64> {
        let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `info`.
        let (fd, ptr) = (self.socket.as_raw_fd(), info.as_mut_ptr().cast());
        let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_MEMINFO, ptr, &mut len) };
        ensure!(rc == 0, "getsockopt SO_MEMINFO: {}", std::io::Error::last_os_error());
        Ok(info[libc::SK_MEMINFO_DROPS as usize] as u64)
    }
}
