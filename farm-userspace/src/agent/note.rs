//! What the agent's core tells the operator: every decision it takes, with its reason, as
//! one line each. The runtime logs them (at the level each asks for); the simulation
//! keeps them as its trace.
use std::{fmt, time::Duration};

use log::Level;

use super::{apart::Healed, membership::Change};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Membership(Change),
    Released {
        epoch: u64,
        given: usize,
    },
    Installed {
        epoch: u64,
        members: Vec<u16>,
        moved: usize,
        owned: usize,
        total: usize,
    },
    /// The installed table gives no bucket to anyone: every member weighs 0.
    NobodyOwns,
    Fenced {
        reason: String,
    },
    /// The agent did not run for longer than its lease: it starts over.
    Stalled {
        gap: Duration,
        incarnation: u64,
    },
    LinkDown {
        iface: String,
    },
    LinkUp {
        iface: String,
        incarnation: u64,
    },
    /// A datagram on the heartbeat port was not taken, and why.
    Ignored {
        why: String,
    },
    /// `farm drain`, `undrain` or `weight` done.
    Steered {
        what: String,
    },
    ReloadRefused {
        why: String,
    },
    Reloaded {
        held_ports: usize,
        seed_changed: bool,
    },
    /// Every node holds the reloaded file: ports held back since the reload have a
    /// service again.
    TransitionDone {
        ports: usize,
    },
    /// This node's instance of a service failed its checks: out of its table.
    ServiceDown {
        service: String,
        reason: String,
    },
    /// ... and is back in.
    ServiceUp {
        service: String,
    },
    /// Together again with a peer after both failed each other: what each side did.
    Healed(Healed),
    /// The VIPs announced at the cluster MAC after the members changed.
    Announced {
        vips: Vec<std::net::IpAddr>,
        members: Vec<u16>,
    },
    /// Every node that could serve a service fails its checks: all serve it still.
    FailOpen {
        service: String,
    },
    /// Buckets moving between live nodes keep their flows on the old owner: `given` of
    /// them leave this node, `taken` come to it, until `timeout` at the latest.
    HandingOver {
        epoch: u64,
        given: usize,
        taken: usize,
        timeout: Duration,
    },
    /// Handovers reached their timeout: the old owner's flows left on `buckets` end.
    HandoverEnded {
        buckets: usize,
    },
}

impl Note {
    pub fn level(&self) -> Level {
        match self {
            Note::Membership(Change::PeerFailed { .. } | Change::ConfigDiffers { .. })
            | Note::NobodyOwns
            | Note::Fenced { .. }
            | Note::Stalled { .. }
            | Note::LinkDown { .. }
            | Note::ServiceDown { .. } => Level::Warn,
            Note::FailOpen { .. } => Level::Error,
            Note::Healed(h) if h.double_owned > 0 => Level::Warn,
            Note::ReloadRefused { .. } => Level::Error,
            Note::Released { .. } | Note::Ignored { .. } => Level::Debug,
            _ => Level::Info,
        }
    }

    /// What kind of decision it is, in a word: the event history and the status page
    /// file it under this.
    pub fn kind(&self) -> &'static str {
        match self {
            Note::Membership(Change::PeerUp { restarted: false, .. }) => "peer-up",
            Note::Membership(Change::PeerUp { restarted: true, .. }) => "peer-restarted",
            Note::Membership(Change::PeerFailed { .. }) => "peer-failed",
            Note::Membership(Change::PeerLeft { .. }) => "peer-left",
            Note::Membership(Change::ConfigDiffers { .. }) => "config-differs",
            Note::Membership(Change::ViewChanged { .. }) => "view-changed",
            Note::Released { .. } => "released",
            Note::Installed { .. } => "installed",
            Note::NobodyOwns => "nobody-owns",
            Note::Fenced { .. } => "fenced",
            Note::Healed(_) => "healed",
            Note::Announced { .. } => "announced",
            Note::Stalled { .. } => "stalled",
            Note::LinkDown { .. } => "link-down",
            Note::LinkUp { .. } => "link-up",
            Note::Ignored { .. } => "ignored",
            Note::Steered { .. } => "steered",
            Note::ReloadRefused { .. } => "reload-refused",
            Note::Reloaded { .. } => "reloaded",
            Note::TransitionDone { .. } => "transition-done",
            Note::ServiceDown { .. } => "service-down",
            Note::ServiceUp { .. } => "service-up",
            Note::FailOpen { .. } => "fail-open",
            Note::HandingOver { .. } => "handing-over",
            Note::HandoverEnded { .. } => "handover-ended",
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Membership(change) => write!(f, "{change}"),
            Note::Released { epoch, given } => {
                write!(f, "epoch {epoch}: released {given} buckets")
            }
            Note::Installed { epoch, members, moved, owned, total } => write!(
                f,
                "installed epoch {epoch}: members {members:?}, {moved} buckets moved, this node owns {owned} of {total}"
            ),
            Note::NobodyOwns => write!(
                f,
                "every member has weight 0: no node owns a bucket and all VIP traffic is dropped"
            ),
            Note::Fenced { reason } => write!(f, "fenced, this node owns no bucket: {reason}"),
            Note::Healed(healed) => write!(f, "{healed}"),
            Note::Announced { vips, members } => write!(
                f,
                "members now {members:?}: announcing the VIPs {vips:?} at the cluster MAC (gratuitous ARP, unsolicited neighbour advertisement), again in a second"
            ),
            Note::Stalled { gap, incarnation } => write!(
                f,
                "the agent did not run for {} ms, past its lease: peers have failed this node, so it rejoins as incarnation {incarnation} and acts on nothing it last knew",
                gap.as_millis()
            ),
            Note::LinkDown { iface } => {
                write!(f, "{iface} is down: this node owns nothing until it is back")
            }
            Note::LinkUp { iface, incarnation } => {
                write!(f, "{iface} is up again: rejoining the farm as incarnation {incarnation}")
            }
            Note::Ignored { why } => write!(f, "ignored a datagram: {why}"),
            Note::Steered { what } => write!(f, "{what}"),
            Note::ReloadRefused { why } => {
                write!(f, "reload refused, the running configuration stays: {why}")
            }
            Note::Reloaded { held_ports, seed_changed } => {
                write!(f, "configuration reloaded")?;
                if *seed_changed {
                    write!(
                        f,
                        "; the seed changed, so this node owns nothing until every node has the new file"
                    )?;
                }
                match held_ports {
                    0 => Ok(()),
                    n => write!(
                        f,
                        "; {n} ports change service and have no owner until every node has the new file"
                    ),
                }
            }
            Note::ServiceDown { service, reason } => write!(
                f,
                "service {service} failed its checks on this node ({reason}): its clients go to the other nodes"
            ),
            Note::ServiceUp { service } => {
                write!(f, "service {service} passes its checks again: this node takes its share")
            }
            Note::FailOpen { service } => write!(
                f,
                "every node fails the checks of service {service}: all of them keep serving it (fail open); fix the application"
            ),
            Note::TransitionDone { ports } => write!(
                f,
                "every node has the reloaded file: {ports} held ports follow their new service"
            ),
            Note::HandingOver { epoch, given, taken, timeout } => write!(
                f,
                "epoch {epoch}: handing over {given} buckets to other nodes and taking {taken}: their established connections and active UDP flows stay where they are (for {} s at most), new ones go to the new owner",
                timeout.as_secs()
            ),
            Note::HandoverEnded { buckets } => write!(
                f,
                "the handover of {buckets} buckets reached its timeout: flows the old owner still kept on them end"
            ),
        }
    }
}
