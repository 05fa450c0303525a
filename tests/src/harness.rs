//! The XDP program loaded (not attached) with maps of its own, driven through
//! BPF_PROG_TEST_RUN: what the verdict tests and the benchmark both run packets through.
use std::time::Duration;

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    programs::{TestRun, TestRunOptions, Xdp},
};
use farm_common::{Counters, HANDOVER_LEARNING, HANDOVER_TAKING, Handover, NO_OWNER, PROGRAM_NAME};
use farm_userspace::{
    config::Config,
    dataplane::Dataplane,
    handover::Moving,
    program,
    rules::{self, Rules},
};

use crate::packet::NODE_MAC;

/// The XDP actions a run returns.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

pub struct Harness {
    ebpf: Ebpf,
    pub dataplane: Dataplane,
    pub cfg: Config,
    pub rules: Rules,
}

/// What one run of the program gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub action: u32,
    pub packet: Vec<u8>,
}

impl Harness {
    /// Loads the program for `cfg` (this node's NIC has MAC `NODE_MAC`), with no bucket
    /// owned by anyone and a lease that never ends.
    pub fn new(cfg: Config) -> Result<Harness> {
        Harness::with_mac(cfg, NODE_MAC)
    }

    /// `new` for a NIC whose MAC is `own_mac` (a real device, for live frames).
    pub fn with_mac(cfg: Config, own_mac: [u8; 6]) -> Result<Harness> {
        let mut ebpf = program::load(cfg.cluster.buckets, None).context("load the XDP program")?;
        let mut dataplane = Dataplane::from_ebpf(&mut ebpf)?;
        dataplane.set_node_config(&rules::node_config(&cfg, own_mac))?;
        let rules = rules::rules(&cfg);
        dataplane.set_rules(&rules)?;
        dataplane.renew_lease(None)?;
        let mut h = Harness { ebpf, dataplane, cfg, rules };
        h.fill(|_, _| NO_OWNER)?;
        Ok(h)
    }

    /// Installs a table where bucket `b` of slot `s` belongs to `owner(s, b)`.
    pub fn fill(&mut self, owner: impl Fn(usize, u32) -> u16) -> Result<()> {
        let rows: Vec<Vec<u16>> = (0..self.rules.slots.len())
            .map(|s| (0..self.cfg.cluster.buckets).map(|b| owner(s, b)).collect())
            .collect();
        Ok(self.dataplane.install(&rows, &Default::default())?)
    }

    /// Installs a table where every bucket of every slot is in handover from `old` to
    /// `new`, the move in `phase`.
    pub fn hand_over(&mut self, old: u16, new: u16, phase: u8) -> Result<()> {
        let (slots, buckets) = (self.rules.slots.len(), self.cfg.cluster.buckets);
        let owner = match phase {
            HANDOVER_LEARNING => old,
            HANDOVER_TAKING => new,
            _ => NO_OWNER,
        };
        let h = Handover { old, new, phase, keep_udp: 1, _pad: [0; 2] };
        let moving: Moving =
            (0..slots).flat_map(|s| (0..buckets).map(move |b| ((s, b), h))).collect();
        Ok(self.dataplane.install(&vec![vec![owner; buckets as usize]; slots], &moving)?)
    }

    /// The loaded program, for runs the harness does not make itself (live frames).
    pub fn xdp(&self) -> Result<&Xdp> {
        Ok(self.ebpf.program(PROGRAM_NAME).context("no farm program")?.try_into()?)
    }

    pub fn node_id(&self) -> u16 {
        self.cfg.cluster.node_id
    }

    /// Runs the program once on `packet`.
    pub fn run(&mut self, packet: &[u8]) -> Result<Outcome> {
        let mut out = vec![0u8; packet.len() + 256];
        let prog = self.xdp()?;
        let res = prog
            .test_run(TestRunOptions {
                data_in: Some(packet),
                data_out: Some(&mut out),
                ..TestRunOptions::new()
            })
            .context("BPF_PROG_TEST_RUN")?;
        out.truncate(res.data_size_out as usize);
        Ok(Outcome { action: res.return_value, packet: out })
    }

    /// Mean time per run over `repeat` runs inside the kernel.
    pub fn time(&mut self, packet: &[u8], repeat: u32) -> Result<Duration> {
        let prog = self.xdp()?;
        let res = prog
            .test_run(TestRunOptions { data_in: Some(packet), repeat, ..TestRunOptions::new() })
            .context("BPF_PROG_TEST_RUN")?;
        Ok(res.duration)
    }

    pub fn counters(&self, slot: u32) -> Result<Counters> {
        Ok(self.dataplane.counters(slot)?)
    }
}
