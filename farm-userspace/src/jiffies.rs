//! The kernel's jiffies clock, which the XDP program reads for the lease
//! (`bpf_jiffies64`, inlined by the JIT into one load; the nanosecond clocks are helper
//! calls that cost as much as the rest of a verdict). Userspace has no syscall for
//! jiffies, but /proc/timer_list prints it beside the monotonic time, and the tick rate
//! (HZ) follows from the pair: the kernel starts jiffies at 2^32 - 300 * HZ and counts HZ
//! a second from boot.
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum JiffiesError {
    #[error("read /proc/timer_list (the lease clock; needs root): {0}")]
    Read(std::io::Error),
    #[error(
        "/proc/timer_list has no `now at` or `jiffies:` line: this kernel cannot tell its jiffies"
    )]
    Format,
}

/// HZ values a Linux kernel can be built with.
const HZ_CHOICES: [u64; 5] = [100, 250, 300, 1000, 1200];

/// A reading of the kernel clock: jiffies and the tick rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jiffies {
    pub now: u64,
    pub hz: u64,
}

impl Jiffies {
    pub fn read() -> Result<Jiffies, JiffiesError> {
        let (now, mono_ns) = sample()?;
        let hz = match infer_hz(now, mono_ns) {
            Some(hz) => hz,
            // About 300 s after boot every HZ predicts the same count: time it instead.
            None => {
                std::thread::sleep(Duration::from_millis(200));
                let (later, later_ns) = sample()?;
                nearest_hz((later - now) * 1_000_000_000 / (later_ns - mono_ns).max(1))
            }
        };
        Ok(Jiffies { now, hz })
    }

    /// Whole ticks in `d`, rounded down (a lease never lasts longer than asked).
    pub fn ticks(&self, d: Duration) -> u64 {
        (d.as_nanos() * u128::from(self.hz) / 1_000_000_000) as u64
    }

    pub fn duration(&self, ticks: u64) -> Duration {
        Duration::from_nanos((u128::from(ticks) * 1_000_000_000 / u128::from(self.hz)) as u64)
    }
}

fn sample() -> Result<(u64, u64), JiffiesError> {
    let text = std::fs::read_to_string("/proc/timer_list").map_err(JiffiesError::Read)?;
    parse(&text).ok_or(JiffiesError::Format)
}

/// Reads the first `jiffies: J` and `now at N nsecs` of /proc/timer_list: (J, N).
pub fn parse(text: &str) -> Option<(u64, u64)> {
    let mono_ns = text
        .lines()
        .find_map(|l| l.strip_prefix("now at ")?.strip_suffix(" nsecs")?.trim().parse().ok())?;
    let now = text.lines().find_map(|l| l.trim().strip_prefix("jiffies:")?.trim().parse().ok())?;
    Some((now, mono_ns))
}

/// Ticks a kernel's jiffies may stray from its boot-time formula.
const DRIFT: i128 = 500;

/// The HZ whose boot-time formula predicts `jiffies` at `mono_ns`, if only one does: the
/// candidates part by 50 ticks or more a second away from the 300th second of uptime.
fn infer_hz(jiffies: u64, mono_ns: u64) -> Option<u64> {
    let predicted = |hz: u64| -> i128 {
        let start = (1i128 << 32) - 300 * i128::from(hz);
        start + i128::from(mono_ns) * i128::from(hz) / 1_000_000_000
    };
    let mut fits =
        HZ_CHOICES.iter().filter(|&&hz| (predicted(hz) - i128::from(jiffies)).abs() <= DRIFT);
    match (fits.next(), fits.next()) {
        (Some(&hz), None) => Some(hz),
        _ => None,
    }
}

fn nearest_hz(rate: u64) -> u64 {
    *HZ_CHOICES.iter().min_by_key(|&&hz| hz.abs_diff(rate)).expect("candidates")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As read on a machine of this project's kind (HZ 250, 77 minutes up).
    const SAMPLE: &str = "Timer List Version: v0.9\nHRTIMER_MAX_CLOCK_BASES: 8\nnow at 4607127294827 nsecs\n\ncpu: 0\n jiffies: 4296044015\n";

    #[test]
    fn reads_the_pair_and_infers_hz() {
        let (now, mono) = parse(SAMPLE).unwrap();
        assert_eq!((now, mono), (4_296_044_015, 4_607_127_294_827));
        assert_eq!(infer_hz(now, mono), Some(250));
    }

    #[test]
    fn infers_every_hz_early_and_late_and_admits_doubt_near_300_s() {
        for hz in HZ_CHOICES {
            for secs in [1u64, 100, 500, 86_400 * 400] {
                let jiffies = ((1u64 << 32) - 300 * hz) + secs * hz + 40;
                assert_eq!(
                    infer_hz(jiffies, secs * 1_000_000_000),
                    Some(hz),
                    "HZ {hz} at {secs} s"
                );
            }
            assert_eq!(infer_hz((1u64 << 32) + 40, 300_000_000_000), None, "HZ {hz} at 300 s");
        }
        assert_eq!(nearest_hz(248), 250);
        assert_eq!(nearest_hz(1010), 1000);
    }

    #[test]
    fn refuses_text_without_the_lines() {
        assert_eq!(parse("now at 5 nsecs\n"), None);
        assert_eq!(parse("jiffies: 5\n"), None);
    }

    #[test]
    fn converts_durations_down() {
        let j = Jiffies { now: 0, hz: 250 };
        assert_eq!(j.ticks(Duration::from_millis(300)), 75);
        assert_eq!(j.ticks(Duration::from_millis(7)), 1);
        assert_eq!(j.duration(75), Duration::from_millis(300));
    }
}
