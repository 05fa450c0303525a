//! The `agent:` section: how this node's agent claims the CPU (a real-time priority) and
//! its memory (locked), as Corosync does, so that a busy machine does not delay its
//! heartbeats and lease past the failure time.
use super::{Agent, ConfigError, check::Ctx, raw::RangeItem, raw::RawAgent};

/// Above every process of the normal scheduler, below the kernel's interrupt threads
/// (priority 50), which must keep running first: they carry the heartbeats in.
pub const DEFAULT_REALTIME_PRIORITY: u8 = 10;
/// What `realtime_priority` says to leave the agent to the normal scheduler.
const OFF: &str = "off";
const PRIORITY: &str = "agent.realtime_priority";

pub(super) fn agent(raw: Option<RawAgent>, ctx: &Ctx) -> Result<Agent, ConfigError> {
    let (priority, lock_memory) =
        raw.map_or((None, None), |a| (a.realtime_priority, a.lock_memory));
    let realtime_priority = match priority {
        None => Some(DEFAULT_REALTIME_PRIORITY),
        Some(RangeItem::Text(text)) if text == OFF => None,
        // SCHED_RR's priorities on Linux.
        Some(RangeItem::Number(n)) => Some(ctx.number(PRIORITY, n, 1..=99)?),
        Some(RangeItem::Text(text)) => {
            return Err(
                ctx.error(PRIORITY, format!("{text:?} is not a priority; give 1..=99, or off"))
            );
        }
    };
    Ok(Agent { realtime_priority, lock_memory: lock_memory.unwrap_or(true) })
}
