//! The kernel's jiffies clock, which the XDP program reads for the lease
//! (`bpf_jiffies64`, inlined by the JIT into one load; the nanosecond clocks are helper
//! calls that cost as much as the rest of a verdict). Userspace has no syscall for
//! jiffies, but /proc/timer_list prints it beside the monotonic time, and the tick rate
//! (HZ) follows from the pair: the kernel starts jiffies at 2^32 - 300 * HZ and counts HZ
//! a second from boot.
//!
//! Reading that file is a parse of kilobytes (megabytes on big machines), and about 300 s
//! after boot, where every HZ predicts the same count, a 200 ms wait to time the tick:
//! far too slow for a lease renewed many times a second. So a `Clock` reads it once
//! (`calibrate`) and converts by arithmetic afterwards: the kernel advances jiffies from
//! the monotonic clock, the one `Instant` reads, in steps of exactly TICK_NSEC
//! nanoseconds (`tick_do_update_jiffies64`), so a count and the instant it was read at
//! predict every later count.
use std::{
    fs::File,
    io::{BufRead, BufReader},
    time::{Duration, Instant},
};

#[derive(Debug, thiserror::Error)]
pub enum JiffiesError {
    #[error("read /proc/timer_list (the lease clock; needs root or CAP_DAC_READ_SEARCH): {0}")]
    Read(std::io::Error),
    #[error(
        "/proc/timer_list has no `now at` or `jiffies:` line: this kernel cannot tell its jiffies"
    )]
    Format,
}

/// HZ values a Linux kernel can be built with.
const HZ_CHOICES: [u64; 5] = [100, 250, 300, 1000, 1200];

/// How long `calibrate` watches jiffies advance when the count alone cannot tell HZ.
const HZ_TIMING: Duration = Duration::from_millis(200);

/// One reading of the kernel's clock.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// `jiffies` as the kernel printed it.
    pub jiffies: u64,
    /// The monotonic time in nanoseconds the kernel printed before it (`now at`).
    pub since_boot_ns: u64,
    /// This process's monotonic clock once the count was in hand: the kernel read its
    /// jiffies at or before this instant.
    pub after: Instant,
}

/// Where a `Clock` reads the kernel's: /proc/timer_list, or a test's stand-in.
pub trait Source {
    fn sample(&mut self) -> Result<Sample, JiffiesError>;
    /// Lets `d` pass, for jiffies to advance while HZ is timed.
    fn pause(&mut self, d: Duration);
}

/// The kernel's own report, /proc/timer_list, read only as far as the first CPU's
/// `jiffies:` line (the rest, every CPU's timers, can run to megabytes).
pub struct TimerList;

impl Source for TimerList {
    fn sample(&mut self) -> Result<Sample, JiffiesError> {
        let file = File::open("/proc/timer_list").map_err(JiffiesError::Read)?;
        read(BufReader::new(file))
    }

    fn pause(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Reads the first `now at N nsecs` and the `jiffies: J` after it.
fn read(text: impl BufRead) -> Result<Sample, JiffiesError> {
    let mut since_boot_ns = None;
    for line in text.lines() {
        let line = line.map_err(JiffiesError::Read)?;
        if let Some(ns) = line.strip_prefix("now at ").and_then(|l| l.strip_suffix(" nsecs")) {
            since_boot_ns = ns.trim().parse().ok();
        } else if let Some(j) = line.trim().strip_prefix("jiffies:") {
            let after = Instant::now();
            let jiffies = j.trim().parse().map_err(|_| JiffiesError::Format)?;
            let since_boot_ns = since_boot_ns.ok_or(JiffiesError::Format)?;
            return Ok(Sample { jiffies, since_boot_ns, after });
        }
    }
    Err(JiffiesError::Format)
}

/// The kernel's TICK_NSEC: the nanoseconds of monotonic time per jiffy, rounded to the
/// nearest (3,333,333 at HZ 300, so such a kernel's jiffies run a little fast of HZ).
fn tick_ns(hz: u64) -> u64 {
    (1_000_000_000 + hz / 2) / hz
}

/// The jiffies clock, calibrated once: a count, an instant at or after which the kernel
/// had reached it, and the length of a tick. After `calibrate` it reads nothing.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    jiffies: u64,
    at: Instant,
    tick_ns: u64,
}

impl Clock {
    /// Reads `source` once, or twice with a 200 ms pause between when the count cannot
    /// tell HZ (about 300 s after boot). Slow: for a data plane's start, never a renewal.
    pub fn calibrate(mut source: impl Source) -> Result<Clock, JiffiesError> {
        let first = source.sample()?;
        let (anchor, hz) = match infer_hz(first.jiffies, first.since_boot_ns) {
            Some(hz) => (first, hz),
            None => {
                source.pause(HZ_TIMING);
                let later = source.sample()?;
                let ticks = later.jiffies.saturating_sub(first.jiffies);
                let ns = later.since_boot_ns.saturating_sub(first.since_boot_ns).max(1);
                (later, nearest_hz(ticks * 1_000_000_000 / ns))
            }
        };
        Ok(Clock { jiffies: anchor.jiffies, at: anchor.after, tick_ns: tick_ns(hz) })
    }

    /// The jiffies the kernel has surely reached by `t`: the calibration's count plus the
    /// whole ticks from its instant to `t`. The kernel read that count at or before the
    /// instant, and had perhaps already moved into the next tick, so this is never more
    /// than the kernel's count at `t` and one tick (plus the calibration's read) less at
    /// worst. A lease that ends at this count has ended by `t`: it errs shorter.
    pub fn reached_by(&self, t: Instant) -> u64 {
        let ticks = signed_ns(self.at, t).div_euclid(i128::from(self.tick_ns));
        // u64::MAX is the lease that never ends: no instant converts to it.
        (i128::from(self.jiffies) + ticks).clamp(0, i128::from(u64::MAX - 1)) as u64
    }

    /// Ticks in `d`, rounded up: a span the program measures in jiffies is never short.
    pub fn ticks(&self, d: Duration) -> u64 {
        (d.as_nanos().div_ceil(u128::from(self.tick_ns))).min(u128::from(u64::MAX)) as u64
    }

    /// Time from `now` until this clock reaches `count` (zero once reached).
    pub fn left(&self, count: u64, now: Instant) -> Duration {
        let ticks = i128::from(count) - i128::from(self.jiffies);
        let ns = ticks * i128::from(self.tick_ns) - signed_ns(self.at, now);
        Duration::from_nanos(ns.clamp(0, i128::from(u64::MAX)) as u64)
    }
}

/// `to - from` in nanoseconds, negative when `to` is earlier.
fn signed_ns(from: Instant, to: Instant) -> i128 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_nanos() as i128,
        None => -(from.duration_since(to).as_nanos() as i128),
    }
}

/// Ticks a kernel's jiffies may stray from its boot-time formula.
const DRIFT: i128 = 500;

/// The HZ whose boot-time formula predicts `jiffies` at `mono_ns`, if only one does: the
/// candidates part by 50 ticks or more a second away from the 300th second of uptime.
fn infer_hz(jiffies: u64, mono_ns: u64) -> Option<u64> {
    // In steps of TICK_NSEC, not 1/HZ s: 400 days up, a kernel of HZ 300 is 1,000 ticks
    // past 300 a second.
    let predicted = |hz: u64| -> i128 {
        let start = (1i128 << 32) - 300 * i128::from(hz);
        start + i128::from(mono_ns / tick_ns(hz))
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
    use std::{cell::Cell, rc::Rc};

    use super::*;

    /// As read on a machine of this project's kind (HZ 250, 77 minutes up).
    const SAMPLE: &str = "Timer List Version: v0.9\nHRTIMER_MAX_CLOCK_BASES: 8\nnow at 4607127294827 nsecs\n\ncpu: 0\n  .last_jiffies   : 4296044010\n jiffies: 4296044015\n";

    #[test]
    fn reads_the_pair_and_infers_hz() {
        let s = read(SAMPLE.as_bytes()).unwrap();
        assert_eq!((s.jiffies, s.since_boot_ns), (4_296_044_015, 4_607_127_294_827));
        assert_eq!(infer_hz(s.jiffies, s.since_boot_ns), Some(250));
    }

    #[test]
    fn refuses_text_without_the_lines() {
        assert!(matches!(read(&b"now at 5 nsecs\n"[..]), Err(JiffiesError::Format)));
        assert!(matches!(read(&b"jiffies: 5\n"[..]), Err(JiffiesError::Format)));
    }

    /// A kernel whose HZ, uptime, tick phase and read latency a test picks. Its time
    /// moves only when the clock reads it or pauses (so nothing waits), and it counts
    /// both, through handles the test keeps after the clock took the source.
    #[derive(Clone)]
    struct Kernel {
        hz: u64,
        /// The instant the kernel had been up `uptime`.
        base: Instant,
        uptime: Duration,
        /// Monotonic time of the first tick after boot.
        phase_ns: u64,
        /// Time a read takes from the kernel's count to the reader's clock.
        latency: Duration,
        elapsed: Rc<Cell<Duration>>,
        reads: Rc<Cell<u32>>,
        paused: Rc<Cell<Duration>>,
    }

    impl Kernel {
        fn new(hz: u64, uptime: Duration, phase_ns: u64, latency: Duration) -> Kernel {
            Kernel {
                hz,
                base: Instant::now(),
                uptime,
                phase_ns,
                latency,
                elapsed: Rc::default(),
                reads: Rc::default(),
                paused: Rc::default(),
            }
        }

        fn now(&self) -> Instant {
            self.base + self.elapsed.get()
        }

        fn since_boot_ns(&self, t: Instant) -> u64 {
            (self.uptime + (t - self.base)).as_nanos() as u64
        }

        /// jiffies at `t`, stepped from the monotonic clock as tick_do_update_jiffies64
        /// steps it.
        fn jiffies(&self, t: Instant) -> u64 {
            let ticks = self.since_boot_ns(t).saturating_sub(self.phase_ns) / tick_ns(self.hz);
            (1u64 << 32) - 300 * self.hz + ticks
        }

        fn advance(&self, d: Duration) {
            self.elapsed.set(self.elapsed.get() + d);
        }
    }

    impl Source for Kernel {
        fn sample(&mut self) -> Result<Sample, JiffiesError> {
            self.reads.set(self.reads.get() + 1);
            let since_boot_ns = self.since_boot_ns(self.now());
            self.advance(self.latency / 2);
            let jiffies = self.jiffies(self.now());
            self.advance(self.latency / 2);
            Ok(Sample { jiffies, since_boot_ns, after: self.now() })
        }

        fn pause(&mut self, d: Duration) {
            self.paused.set(self.paused.get() + d);
            self.advance(d);
        }
    }

    /// Uptimes in seconds; at 300 every HZ predicts the same count.
    const UPTIMES: [u64; 5] = [1, 100, 300, 500, 86_400 * 400];

    /// Calibration reads the kernel's clock once, twice with a pause where the count
    /// cannot tell HZ; the conversions of every renewal after it, never.
    #[test]
    fn after_calibration_conversions_read_nothing_and_never_pause() {
        for hz in HZ_CHOICES {
            for secs in UPTIMES {
                let kernel = Kernel::new(hz, Duration::from_secs(secs), 0, Duration::ZERO);
                let clock = Clock::calibrate(kernel.clone()).unwrap();
                let calibration = (kernel.reads.get(), kernel.paused.get());
                for ms in 0..1000 {
                    let until = kernel.now() + Duration::from_millis(ms);
                    clock.left(clock.reached_by(until), kernel.now());
                }
                assert_eq!(
                    (kernel.reads.get(), kernel.paused.get()),
                    calibration,
                    "HZ {hz} at {secs} s of uptime: 1,000 conversions after calibration read the kernel's clock or paused"
                );
                let timed = if secs == 300 { (2, HZ_TIMING) } else { (1, Duration::ZERO) };
                assert_eq!(calibration, timed, "HZ {hz} at {secs} s: calibration");
                assert_eq!(clock.tick_ns, tick_ns(hz), "HZ {hz} at {secs} s");
            }
        }
    }

    /// Whatever the tick's phase and the read's latency, a count the clock gives for an
    /// instant is one the kernel has reached by then (a lease never outlasts its
    /// instant), and at most a tick and the latency's ticks short of it.
    #[test]
    fn counts_never_run_ahead_of_the_kernel() {
        for hz in HZ_CHOICES {
            let tick = tick_ns(hz);
            for phase_ns in [0, 1, tick / 3, tick - 1] {
                for latency_ns in [0, 30_000, 3 * tick + 7] {
                    let latency = Duration::from_nanos(latency_ns);
                    let kernel = Kernel::new(hz, Duration::from_secs(4000), phase_ns, latency);
                    let clock = Clock::calibrate(kernel.clone()).unwrap();
                    let slack = 1 + latency_ns.div_ceil(tick);
                    for step_us in (0..3_000_000).step_by(997) {
                        let t = kernel.now() + Duration::from_micros(step_us);
                        let (ours, kernels) = (clock.reached_by(t), kernel.jiffies(t));
                        let case = format!(
                            "HZ {hz}, phase {phase_ns} ns, latency {latency_ns} ns, {step_us} us on"
                        );
                        assert!(
                            ours <= kernels,
                            "{case}: {ours} is ahead of the kernel's {kernels}"
                        );
                        assert!(ours + slack >= kernels, "{case}: {ours} is far behind {kernels}");
                    }
                }
            }
        }
    }

    #[test]
    fn left_is_the_time_to_a_count_and_never_beyond_its_instant() {
        let kernel = Kernel::new(300, Duration::from_secs(4000), 1234, Duration::from_micros(20));
        let clock = Clock::calibrate(kernel.clone()).unwrap();
        let now = kernel.now();
        for ms in [0u64, 1, 3, 4, 299, 10_000] {
            let until = now + Duration::from_millis(ms);
            let left = clock.left(clock.reached_by(until), now);
            assert!(left <= until - now, "{ms} ms: {left:?} left");
            assert!(left + Duration::from_nanos(tick_ns(300)) > until - now, "{ms} ms: {left:?}");
        }
        assert_eq!(clock.left(0, now), Duration::ZERO, "a fenced lease has nothing left");
        // 1 s is 300.00003 ticks of 3,333,333 ns: an earlier instant rounds down too.
        assert_eq!(clock.reached_by(now - Duration::from_secs(1)), clock.jiffies - 301);
    }

    #[test]
    fn infers_every_hz_early_and_late_and_admits_doubt_near_300_s() {
        for hz in HZ_CHOICES {
            for secs in [1u64, 100, 500, 86_400 * 400] {
                let kernel = Kernel::new(hz, Duration::from_secs(secs), 0, Duration::ZERO);
                let t = kernel.now();
                let jiffies = kernel.jiffies(t) + 40;
                assert_eq!(
                    infer_hz(jiffies, kernel.since_boot_ns(t)),
                    Some(hz),
                    "HZ {hz} at {secs} s"
                );
            }
            assert_eq!(infer_hz((1u64 << 32) + 40, 300_000_000_000), None, "HZ {hz} at 300 s");
        }
        assert_eq!(nearest_hz(248), 250);
        assert_eq!(nearest_hz(1010), 1000);
    }

    /// The calibration against the kernel itself: a second later, the clock's count is
    /// the one /proc/timer_list prints, within a tick or two.
    #[test]
    #[ignore = "needs root: reads /proc/timer_list"]
    fn matches_the_kernels_count_a_second_later() {
        let clock = Clock::calibrate(TimerList).unwrap();
        std::thread::sleep(Duration::from_secs(1));
        let fresh = TimerList.sample().unwrap();
        let ours = clock.reached_by(fresh.after);
        assert!(
            ours.abs_diff(fresh.jiffies) <= 2,
            "the clock says {ours} jiffies, /proc/timer_list {}",
            fresh.jiffies
        );
    }
}
