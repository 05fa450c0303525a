//! The agent's heartbeat socket as a big farm's grid reads it: everything waiting, in
//! batches of one recvmmsg each, each datagram whole (or cut at the room it had) with
//! its sender and the kernel's arrival time. In a namespace of its own, with an address
//! on its loopback.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    time::{Duration, SystemTime},
};

use farm_tests::netns::{Netns, in_ns, ip, unique_id};
use farm_userspace::agent::socket::{Batch, HeartbeatSocket, Waiting};

const ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

#[test]
#[ignore = "needs root: a network namespace"]
fn a_burst_is_read_in_batches_each_datagram_with_its_sender_and_arrival() {
    let ns = Netns::new(format!("farm-{}-hb", unique_id())).unwrap();
    ip(&["-n", &ns.name, "addr", "add", "198.18.0.1/32", "dev", "lo"]).unwrap();
    let read = in_ns(&ns.name, || {
        let grid = Waiting::Grid(Duration::from_millis(33));
        let socket = HeartbeatSocket::bind(SocketAddr::new(ADDR.into(), 7400), grid).unwrap();
        let sender = UdpSocket::bind(SocketAddr::new(ADDR.into(), 0)).unwrap();
        let from = sender.local_addr().unwrap();
        let before = SystemTime::now();
        // 150 numbered datagrams, the last longer than the room each has in the batch.
        for n in 0..150u8 {
            let len = if n == 149 { 120 } else { 8 };
            sender.send_to(&vec![n; len], socket_addr()).unwrap();
        }
        let mut batch = Batch::new(64, 100);
        let mut batches = Vec::new();
        let mut seen = Vec::new();
        loop {
            match socket.try_recv_batch(&mut batch) {
                Ok(n) => {
                    batches.push(n);
                    for i in 0..n {
                        let (datagram, sender, stamp) = batch.get(i).unwrap();
                        assert_eq!(sender, from, "datagram {} came from {sender}", seen.len());
                        let stamp = stamp.expect("a kernel timestamp");
                        assert!(stamp >= before && stamp <= SystemTime::now(), "{stamp:?}");
                        seen.push(datagram.to_vec());
                    }
                }
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
                    break;
                }
            }
        }
        (batches, seen)
    })
    .unwrap();
    let (batches, seen) = read;
    assert_eq!(batches, [64, 64, 22], "datagrams read per recvmmsg");
    for (n, datagram) in seen.iter().enumerate() {
        let len = if n == 149 { 100 } else { 8 };
        assert_eq!(datagram, &vec![n as u8; len], "datagram {n}");
    }
}

fn socket_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ADDR), 7400)
}
