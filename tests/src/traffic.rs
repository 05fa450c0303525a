//! Real servers and clients inside namespaces: a TCP server that answers with its node's
//! name, one that echoes lines prefixed with it, a UDP server that records numbered
//! datagrams, and clients that connect or send from chosen source addresses. Every loop is bounded in
//! count and time.
use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use socket2::{Domain, Socket, Type};

use crate::netns::enter;

/// Longest a test server lives, whatever the test does (a soak asks for longer).
pub const SERVER_LIFETIME: Duration = Duration::from_secs(300);
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// A server thread in a namespace: binds with `bind` there, then calls `step` until
/// stopped (by drop) or `lifetime` ends. `step` must return within a few ms.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start<S: 'static>(
        ns: &str,
        lifetime: Duration,
        bind: impl FnOnce() -> Result<S> + Send + 'static,
        mut step: impl FnMut(&S) + Send + 'static,
    ) -> Result<Server> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ns, flag) = (ns.to_string(), stop.clone());
        let thread = thread::spawn(move || {
            let bound = enter(&ns).map_err(anyhow::Error::from).and_then(|()| bind());
            let socket = match bound {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let end = Instant::now() + lifetime;
            while !flag.load(Ordering::Relaxed) && Instant::now() < end {
                step(&socket);
            }
        });
        ready_rx.recv().context("server thread")??;
        Ok(Server { stop, thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP server in a namespace answering every connection with `reply` and closing.
/// Stops when dropped.
pub struct TcpServer {
    _server: Server,
}

impl TcpServer {
    pub fn start(ns: &str, port: u16, reply: String) -> Result<TcpServer> {
        TcpServer::start_for(ns, port, reply, SERVER_LIFETIME)
    }

    /// `start`, for a server that lives `lifetime` at most.
    pub fn start_for(ns: &str, port: u16, reply: String, lifetime: Duration) -> Result<TcpServer> {
        let server = serve_tcp(ns, port, lifetime, move |s| {
            let _ = s.write_all(reply.as_bytes());
        })?;
        Ok(TcpServer { _server: server })
    }
}

/// A server thread in namespace `ns` listening on TCP `port` (IPv4 and IPv6) that hands
/// every connection to `answer`, then closes it.
fn serve_tcp(
    ns: &str,
    port: u16,
    lifetime: Duration,
    mut answer: impl FnMut(&mut std::net::TcpStream) + Send + 'static,
) -> Result<Server> {
    let bind = move || {
        let l = TcpListener::bind(("::", port)).context("bind")?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    let serve = move |listener: &TcpListener| {
        // The listener does not block, so that the server can stop: poll waits for a
        // connection, or 20 ms. (Sleeping 2 ms between tries woke the servers of a
        // 32-node farm 32,000 times a second, a third of a core.)
        let mut fd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `fd` is one valid pollfd structure.
        unsafe { libc::poll(&mut fd, 1, 20) };
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_nonblocking(false);
            answer(&mut s);
        }
    };
    Server::start(ns, lifetime, bind, serve)
}

/// A TCP server in a namespace that keeps every connection open and echoes each line it
/// reads, prefixed with `name` and a space, so that a long-lived client learns which node
/// holds it. Stops when dropped.
pub struct EchoServer {
    _server: Server,
}

/// A connection the echo server holds: its socket and what it read of the next line.
struct EchoConn {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl EchoServer {
    pub fn start(ns: &str, port: u16, name: String) -> Result<EchoServer> {
        let bind = move || {
            // The server it replaces closes its listener when its thread next wakes.
            let bound = crate::netns::wait_for(Duration::from_secs(5), || {
                TcpListener::bind(("::", port)).ok()
            });
            let l = bound.context("bind: the port stayed in use for 5 s")?;
            l.set_nonblocking(true)?;
            Ok(l)
        };
        let mut conns: Vec<EchoConn> = Vec::new();
        let serve = move |listener: &TcpListener| {
            // One thread serves them all: poll wakes it for a new connection or a line,
            // and its timeout lets the server stop.
            let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
                .chain(conns.iter().map(|c| c.stream.as_raw_fd()))
                .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
                .collect();
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 5) };
            while let Ok((stream, _)) = listener.accept() {
                if stream.set_nonblocking(true).is_ok() {
                    conns.push(EchoConn { stream, pending: Vec::new() });
                }
            }
            conns.retain_mut(|c| c.echo(&name));
        };
        Ok(EchoServer { _server: Server::start(ns, SERVER_LIFETIME, bind, serve)? })
    }
}

impl EchoConn {
    /// Echoes the whole lines that arrived; false once the client closed or reset it.
    fn echo(&mut self, name: &str) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            // A client waits for each echo before its next line, so the socket's send
            // buffer always has room for this one.
            if self.stream.write_all(&[name.as_bytes(), b" ", &line].concat()).is_err() {
                return false;
            }
        }
        true
    }
}

/// An HTTP server in a namespace answering every request with the status it is set to
/// (200 at first) and the body it was given. Stops when dropped.
pub struct HttpServer {
    status: Arc<std::sync::atomic::AtomicU16>,
    _server: Server,
}

impl HttpServer {
    pub fn start(ns: &str, port: u16, body: String) -> Result<HttpServer> {
        let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let code = status.clone();
        let server = serve_tcp(ns, port, SERVER_LIFETIME, move |s| {
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            // The request itself does not matter: one read takes it in.
            let _ = s.read(&mut [0u8; 1024]);
            let code = code.load(Ordering::Relaxed);
            let answer = format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes());
        })?;
        Ok(HttpServer { status, _server: server })
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::Relaxed);
    }
}

/// One client connection: where from, and what the server said (or why nothing).
#[derive(Debug, Clone)]
pub struct Answer {
    pub from: SocketAddr,
    pub reply: Result<String, String>,
}

/// Connects once from `src` (port chosen by the kernel) to `dst` and reads the reply.
pub fn ask_tcp(src: IpAddr, dst: SocketAddr) -> Answer {
    let mut from = SocketAddr::new(src, 0);
    let reply = (|| -> Result<String> {
        let s = Socket::new(Domain::for_address(dst), Type::STREAM, None)?;
        s.bind(&SocketAddr::new(src, 0).into())?;
        from = s.local_addr()?.as_socket().context("local address")?;
        s.connect_timeout(&dst.into(), IO_TIMEOUT)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        let mut stream: std::net::TcpStream = s.into();
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })()
    .map_err(|e| format!("{e:#}"));
    Answer { from, reply }
}

/// A UDP server in a namespace that records the 8-byte big-endian number at the start
/// of every datagram it receives. Stops when dropped.
pub struct UdpRecorder {
    got: Arc<Mutex<Vec<u64>>>,
    _server: Server,
}

impl UdpRecorder {
    pub fn start(ns: &str, port: u16) -> Result<UdpRecorder> {
        UdpRecorder::start_for(ns, port, SERVER_LIFETIME)
    }

    /// `start`, for a recorder that lives `lifetime` at most.
    pub fn start_for(ns: &str, port: u16, lifetime: Duration) -> Result<UdpRecorder> {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let bind = move || {
            let s = UdpSocket::bind(("::", port)).context("bind")?;
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            Ok(s)
        };
        let record = move |socket: &UdpSocket| {
            let mut buf = [0u8; 64];
            if let Ok(n) = socket.recv(&mut buf)
                && n >= 8
            {
                let number = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                sink.lock().expect("recorder lock").push(number);
            }
        };
        Ok(UdpRecorder { got, _server: Server::start(ns, lifetime, bind, record)? })
    }

    /// The numbers received so far, in arrival order.
    pub fn numbers(&self) -> Vec<u64> {
        self.got.lock().expect("recorder lock").clone()
    }
}

/// Sends `count` datagrams numbered 0.. to `dst`, round robin from one socket per
/// address in `sources`, one every `gap`. Returns each number's source address and port.
/// Runs in the calling thread's namespace.
pub fn send_numbered(
    sources: &[IpAddr],
    dst: SocketAddr,
    count: u64,
    gap: Duration,
) -> Result<Vec<SocketAddr>> {
    let sockets = client_sockets(sources)?;
    let from: Vec<SocketAddr> =
        sockets.iter().map(UdpSocket::local_addr).collect::<Result<_, _>>()?;
    let mut sent_from = Vec::with_capacity(count as usize);
    for number in 0..count {
        let i = number as usize % sockets.len();
        // A full socket buffer drops the datagram; the number is then simply never seen.
        let _ = sockets[i].send_to(&number.to_be_bytes(), dst);
        sent_from.push(from[i]);
        // Paces the traffic on purpose: a test sees what happens in between.
        thread::sleep(gap);
    }
    Ok(sent_from)
}

/// Sends datagrams numbered 0.., round robin from one socket per address in `sources`,
/// one every `gap`, until `lasting` has passed: when each number was sent. Runs in the
/// calling thread's namespace.
pub fn send_numbered_for(
    sources: &[IpAddr],
    dst: SocketAddr,
    gap: Duration,
    lasting: Duration,
) -> Result<Vec<Instant>> {
    let (stop, sent) = (AtomicBool::new(false), AtomicU64::new(0));
    send_numbered_until(sources, dst, gap, lasting, &stop, &sent)
}

/// `send_numbered_for`, ending early once `stop` is set; `sent` counts the numbers sent
/// so far, so that another thread knows which numbers went out after a moment.
pub fn send_numbered_until(
    sources: &[IpAddr],
    dst: SocketAddr,
    gap: Duration,
    lasting: Duration,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<Vec<Instant>> {
    let sockets = client_sockets(sources)?;
    let end = Instant::now() + lasting;
    let mut times = Vec::new();
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        let number = times.len() as u64;
        times.push(Instant::now());
        // A full socket buffer drops the datagram; the number is then simply never seen.
        let _ = sockets[number as usize % sockets.len()].send_to(&number.to_be_bytes(), dst);
        sent.store(number + 1, Ordering::Relaxed);
        thread::sleep(gap);
    }
    Ok(times)
}

/// One UDP socket per address of `sources`, on a port the kernel picks.
fn client_sockets(sources: &[IpAddr]) -> Result<Vec<UdpSocket>> {
    sources
        .iter()
        .map(|&src| UdpSocket::bind(SocketAddr::new(src, 0)).context("bind a client socket"))
        .collect()
}

/// Connects once from exactly `from` (address and port) to `dst` and reads the reply,
/// waiting at most `timeout` for each step. The port is reused at once (SO_REUSEADDR),
/// so a probe can repeat from the same port while the last connection is in TIME_WAIT.
pub fn ask_tcp_from(from: SocketAddr, dst: SocketAddr, timeout: Duration) -> Option<String> {
    let s = Socket::new(Domain::for_address(dst), Type::STREAM, None).ok()?;
    s.set_reuse_address(true).ok()?;
    s.bind(&from.into()).ok()?;
    s.connect_timeout(&dst.into(), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let mut stream: std::net::TcpStream = s.into();
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text.trim().to_string())
}
