//! Live frames: BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES runs an XDP program on
//! copies of one frame as if a device had received them. What the program passes goes up
//! that device's stack as skbs (its netdev ingress hook, IP, sockets) before the call
//! returns, so the time per frame covers the program and everything the kernel does after.
use std::time::Duration;

use anyhow::{Context, Result};
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};

use crate::{fixtures, harness::Harness};

/// Frames per batch, a driver's NAPI budget.
const BATCH: u32 = 64;

/// Mean time per frame over `repeat` copies of `frame` arriving on `ifindex`. Call from
/// a thread in the device's network namespace: the kernel resolves the index there.
pub fn time(prog: &Xdp, frame: &[u8], ifindex: u32, repeat: u32) -> Result<Duration> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
    // egress_ifindex. The kernel wants data_end = the frame's length and no metadata.
    let md = [0, frame.len() as u32, 0, ifindex, 0, 0];
    let ctx: Vec<u8> = md.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let opts = TestRunOptions {
        data_in: Some(frame),
        ctx_in: Some(&ctx),
        repeat,
        attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
        ..TestRunOptions::new()
    };
    Ok(prog.test_run(opts).context("BPF_PROG_TEST_RUN in live-frames mode")?.duration)
}

/// The farm program with the fixture configuration on a NIC whose MAC is `own_mac`, and a
/// table where `owner` owns every bucket.
pub fn farm(owner: u16, own_mac: [u8; 6]) -> Result<Harness> {
    let mut h = Harness::with_mac(fixtures::config(), own_mac)?;
    h.fill(|_, _| owner)?;
    Ok(h)
}
