//! The yardstick: farm-ebpf's `baseline` program (count one counter, pass), run on the
//! same packets as farm so that every figure is read against it, measured in the same run.
use std::time::Duration;

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    programs::{TestRun, TestRunOptions, Xdp},
};
use farm_userspace::program::BASELINE_OBJECT;

const PROGRAM: &str = "baseline";

pub struct Baseline {
    ebpf: Ebpf,
}

impl Baseline {
    pub fn load() -> Result<Baseline> {
        let mut ebpf = Ebpf::load(BASELINE_OBJECT).context("load the baseline object")?;
        let prog: &mut Xdp =
            ebpf.program_mut(PROGRAM).context("no program `baseline`")?.try_into()?;
        prog.load().context("bpf_prog_load baseline")?;
        Ok(Baseline { ebpf })
    }

    pub fn xdp(&self) -> Result<&Xdp> {
        Ok(self.ebpf.program(PROGRAM).context("no program `baseline`")?.try_into()?)
    }

    /// Mean time per run over `repeat` runs on `packet` (not live: the verdict is only
    /// returned), as `Harness::time` gives it for farm.
    pub fn time(&self, packet: &[u8], repeat: u32) -> Result<Duration> {
        let opts = TestRunOptions { data_in: Some(packet), repeat, ..TestRunOptions::new() };
        Ok(self.xdp()?.test_run(opts).context("BPF_PROG_TEST_RUN baseline")?.duration)
    }
}
