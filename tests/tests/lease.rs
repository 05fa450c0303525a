//! The lease as the program keeps it: a renewal ends where the agent asked, in the
//! kernel's own jiffies, and costs no read of the kernel's clock.
use std::{
    fs::File,
    io::Read,
    time::{Duration, Instant},
};

use farm_tests::{
    fixtures::{self, CLIENT4, SLOT_WEB4, VIP4},
    harness::Harness,
    netns::wait_for,
    packet::tcp,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// A harness where this node owns every bucket.
fn owning_all() -> Harness {
    let mut h = Harness::new(fixtures::config()).expect("load the XDP program");
    let me = h.node_id();
    h.fill(|_, _| me).unwrap();
    h
}

#[test]
#[ignore = "needs root: BPF_PROG_TEST_RUN"]
fn a_lease_accepts_until_its_instant_and_drops_after() {
    let mut h = owning_all();
    let packet = tcp(CLIENT4.into(), 40000, VIP4.into(), 80);
    // A run takes microseconds; only a thread stalled for most of the 100 ms sees the
    // lease over at its first run, and then tries again.
    let until = (0..5)
        .find_map(|_| {
            let until = Instant::now() + Duration::from_millis(100);
            h.dataplane.renew_lease(Some(until)).unwrap();
            (h.run(&packet).unwrap().action == XDP_PASS).then_some(until)
        })
        .expect("a fresh 100 ms lease accepts");
    let dropped = wait_for(Duration::from_secs(5), || {
        let started = Instant::now();
        match h.run(&packet).unwrap().action {
            XDP_PASS => {
                assert!(started < until, "accepted {:?} after the lease's end", started - until);
                None
            }
            action => Some(action),
        }
    });
    assert_eq!(dropped, Some(XDP_DROP), "the lease never ended");
    assert!(
        h.counters(SLOT_WEB4).unwrap().lease_expired > 0,
        "the drop is counted as lease_expired"
    );
}

/// read(2) calls this thread has made, from /proc/thread-self/io's `syscr` (read with
/// one call, which is counted after it returns).
fn reads_so_far() -> u64 {
    let mut text = [0u8; 512];
    let n = File::open("/proc/thread-self/io").unwrap().read(&mut text).unwrap();
    let text = std::str::from_utf8(&text[..n]).unwrap();
    text.lines().find_map(|l| l.strip_prefix("syscr: ")?.parse().ok()).expect("syscr line")
}

#[test]
#[ignore = "needs root: loads the XDP program"]
fn renewals_read_nothing() {
    let mut h = owning_all();
    let before = reads_so_far();
    for ms in 0..100 {
        h.dataplane.renew_lease(Some(Instant::now() + Duration::from_millis(ms))).unwrap();
        h.dataplane.lease().unwrap();
    }
    let reads = reads_so_far() - before - 1;
    assert_eq!(reads, 0, "100 renewals and lease readings made {reads} read calls");
}
