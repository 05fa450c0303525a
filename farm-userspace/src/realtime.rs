//! The agent's claim on the CPU and on memory (`agent:` in the file), made once at its
//! start, as Corosync makes it: its loop at a real-time priority (SCHED_RR), so that
//! processes of the normal scheduler, however many, never hold up a heartbeat, a
//! peer's deadline or the lease; and its memory locked (mlockall), so that no page its
//! loop touches waits for the disk. What the kernel refuses is a warning naming what the
//! agent lacks, and the agent runs on without it: it still works, only less surely on a
//! busy machine.
use std::io;

use log::{info, warn};

use crate::{
    config::Agent,
    privilege::{Capability, missing},
};

/// Claims what `agent` asks for, and logs one line for each: done, off, or refused.
pub fn claim(agent: &Agent) {
    match agent.realtime_priority {
        None => {
            info!("agent.realtime_priority: off: the agent shares the CPU with every other process")
        }
        Some(priority) => match schedule(priority) {
            Ok(()) => info!(
                "the agent's loop runs at real-time priority {priority} (SCHED_RR); its table thread and the commands it runs do not"
            ),
            Err(e) => warn!(
                "agent.realtime_priority {priority}: the kernel refused SCHED_RR ({e}): give the agent CAP_SYS_NICE (or RLIMIT_RTPRIO {priority}); until then a busy machine can delay its heartbeats"
            ),
        },
    }
    if !agent.lock_memory {
        return info!("agent.lock_memory: false: the agent's memory may be paged out");
    }
    match lock() {
        Ok(()) => info!("the agent's memory is locked (mlockall)"),
        Err(e) => warn!(
            "agent.lock_memory: not locked ({e}): give the agent CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK (LimitMEMLOCK=infinity); until then its pages can be paged out"
        ),
    }
}

/// SCHED_RR at `priority` for the calling thread (the agent's loop). Threads and
/// processes it starts afterwards go back to the normal scheduler (SCHED_RESET_ON_FORK):
/// the table thread's long computations and the health checks' commands must not take
/// the CPU from everything else.
fn schedule(priority: u8) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: i32::from(priority) };
    // SAFETY: sched_setscheduler reads `param`; pid 0 is the calling thread.
    let rc =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// mlockall of every page now and to come, unless a limit would make it fail later:
/// under a finite RLIMIT_MEMLOCK without CAP_IPC_LOCK, each mapping made after the lock
/// counts against it, and the allocation that crosses it fails.
fn lock() -> io::Result<()> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && !missing(&[Capability::IpcLock]).is_empty() {
        let kib = limit.rlim_cur / 1024;
        return Err(io::Error::other(format!("RLIMIT_MEMLOCK is {kib} KiB, without CAP_IPC_LOCK")));
    }
    // SAFETY: mlockall takes flags only.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
