//! Putting the XDP program on a NIC and taking it off: load, write the maps, attach
//! (driver mode, else generic), pin program, maps and link under
//! `/sys/fs/bpf/farm/IFACE/` so they outlive this process, and make the NIC receive the
//! cluster MAC. A failure part way removes what was done: nothing is left half-attached.
use std::{
    ffi::CString,
    fs, io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use aya::programs::{ProgramError, XdpMode, links::FdLink, xdp::XdpLink};
use farm_common::{LAYOUT_VERSION, MAX_SLOTS, NO_OWNER};
use log::{info, warn};

use crate::{
    config::Config,
    dataplane::{Dataplane, DataplaneError, layout_name},
    handover::Moving,
    nic::{self, NicError},
    privilege::{self, Missing},
    program::{self, ProgramLoadError},
    rules::{self, Rules},
};

/// Where farm pins what it loads, one directory per interface.
pub const PIN_ROOT: &str = "/sys/fs/bpf/farm";
const LINK_PIN: &str = "link";
const PROGRAM_PIN: &str = "prog";

pub fn pin_dir(iface: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(iface)
}

/// Whether a program is attached (its link pinned) on `iface`.
pub fn is_attached(iface: &str) -> bool {
    pin_dir(iface).join(LINK_PIN).exists()
}

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(transparent)]
    Privilege(#[from] Missing),
    #[error(transparent)]
    Nic(#[from] NicError),
    #[error("farm is already loaded on {0}: run `cargo xtask unload --iface {0}` first")]
    AlreadyLoaded(String),
    #[error("farm is not loaded on {0} (nothing pinned in {1})")]
    NotLoaded(String, String),
    #[error("mount bpffs on /sys/fs/bpf: {0}")]
    Mount(io::Error),
    #[error("{op} {path}: {source}")]
    Pin { op: &'static str, path: String, source: io::Error },
    #[error(transparent)]
    Program(#[from] ProgramLoadError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("attach XDP to {iface} (bpf_link_create): {source}")]
    Attach { iface: String, source: ProgramError },
    #[error(
        "XDP on {iface} is attached through netlink, not a bpf link, so it cannot be pinned: {source}"
    )]
    Link { iface: String, source: aya::programs::links::LinkError },
    #[error(
        "the program pinned in {dir} was loaded for {pinned} buckets, the configuration says {configured}: run `farm unload --iface {iface}` first"
    )]
    Buckets { dir: String, iface: String, pinned: u32, configured: u32 },
}

/// What `attach` did.
pub struct Attached {
    pub mode: XdpMode,
    pub pin_dir: PathBuf,
    pub dataplane: Dataplane,
}

/// Loads and attaches the program on the config's interface and writes its maps: this
/// node's record, the VIP and service rules, and the static owner table if the file has
/// one (then with a lease that never ends, since no agent renews it; otherwise no
/// bucket has an owner until the agent installs a table).
pub fn attach(cfg: &Config) -> Result<Attached, LoaderError> {
    let iface = cfg.cluster.interface.as_str();
    privilege::require("loading XDP", privilege::AGENT)?;
    let own_mac = nic::mac(iface)?;
    ensure_bpffs()?;
    let dir = pin_dir(iface);
    if is_attached(iface) {
        return Err(LoaderError::AlreadyLoaded(iface.to_string()));
    }
    // Pins left by a load that died before attaching: their layout may be stale.
    remove_pins(&dir)?;
    fs::create_dir_all(&dir).map_err(pin_err("mkdir", &dir))?;
    let mut undo = Undo { dir: dir.clone(), armed: true };

    let mut ebpf = program::load(cfg.cluster.buckets, Some(&dir))?;
    let mut dataplane = Dataplane::from_ebpf(&mut ebpf)?;
    dataplane.set_node_config(&rules::node_config(cfg, own_mac))?;
    let rules = rules::rules(cfg);
    dataplane.set_rules(&rules)?;
    match rules::static_row(cfg) {
        Some(row) => {
            dataplane.install(&vec![row; rules.slots.len()], &Moving::new())?;
            dataplane.renew_lease(None)?;
        }
        None => dataplane.install(&empty_rows(&rules, cfg.cluster.buckets), &Moving::new())?,
    }

    let prog = program::xdp(&mut ebpf)?;
    let attach_err = |source| LoaderError::Attach { iface: iface.into(), source };
    let (link_id, mode) = if nic::driver(iface).as_deref() == Some("veth") {
        // A veth computes pkt_type before its XDP program runs and keeps it when the
        // program readdresses the frame, so accepted cluster-MAC frames would reach TCP
        // as PACKET_MULTICAST and be ignored. Generic XDP resets pkt_type after a rewrite.
        warn!(
            "{iface} is a veth: using generic (skb) mode XDP, as native XDP on veth cannot deliver readdressed frames to TCP"
        );
        (prog.attach(iface, XdpMode::Skb).map_err(attach_err)?, XdpMode::Skb)
    } else {
        match prog.attach(iface, XdpMode::Driver) {
            Ok(id) => (id, XdpMode::Driver),
            Err(driver_err) => {
                warn!(
                    "{iface}: driver-mode XDP refused ({driver_err}); falling back to generic (skb) mode, which is slower"
                );
                (prog.attach(iface, XdpMode::Skb).map_err(attach_err)?, XdpMode::Skb)
            }
        }
    };
    let link: XdpLink = prog.take_link(link_id).map_err(attach_err)?;
    let link: FdLink =
        link.try_into().map_err(|source| LoaderError::Link { iface: iface.into(), source })?;
    let link_path = dir.join(LINK_PIN);
    link.pin(&link_path).map_err(|e| pin_err("pin", &link_path)(io::Error::other(e)))?;
    let prog_path = dir.join(PROGRAM_PIN);
    prog.pin(&prog_path).map_err(|e| pin_err("pin", &prog_path)(io::Error::other(e)))?;

    nic::join_cluster_mac(cfg, true)?;
    undo.armed = false;
    Ok(Attached { mode, pin_dir: dir, dataplane })
}

/// The data plane for the agent: the program pinned for this interface if there is one
/// (a restarted agent's, or `farm load`'s), brought up to this configuration, else a
/// fresh load and attach. A program pinned with another layout of its maps (a farm of
/// another version) is replaced by a fresh one, which owns nothing and is fenced until
/// the farm agrees on a table with this node, as after any start.
pub fn adopt_or_attach(cfg: &Config) -> Result<Dataplane, LoaderError> {
    let iface = &cfg.cluster.interface;
    let dir = pin_dir(iface);
    if is_attached(iface) {
        match Dataplane::open_pinned(&dir) {
            Ok(dp) => return adopt(cfg, dp, &dir),
            Err(DataplaneError::Layout { pinned, .. }) => {
                warn!(
                    "the program pinned in {} has layout {}, this farm's is {LAYOUT_VERSION}: replacing it",
                    dir.display(),
                    layout_name(pinned)
                );
                // Detaches the old program, then unpins it and its maps.
                remove_pins(&dir)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let attached = attach(cfg)?;
    info!(
        "attached to {iface} ({:?} mode), pinned in {}",
        attached.mode,
        attached.pin_dir.display()
    );
    Ok(attached.dataplane)
}

/// Brings the program pinned in `dir` up to `cfg`.
fn adopt(cfg: &Config, mut dp: Dataplane, dir: &Path) -> Result<Dataplane, LoaderError> {
    let iface = &cfg.cluster.interface;
    let node = dp.node_config()?;
    if node.bucket_count != cfg.cluster.buckets {
        return Err(LoaderError::Buckets {
            dir: dir.display().to_string(),
            iface: iface.clone(),
            pinned: node.bucket_count,
            configured: cfg.cluster.buckets,
        });
    }
    // A dead agent's table may still be leased: end the lease before this file's seed
    // and rules meet that table, which another file's agent computed.
    dp.fence()?;
    dp.set_node_config(&rules::node_config(cfg, nic::mac(iface)?))?;
    dp.set_rules(&rules::rules(cfg))?;
    nic::join_cluster_mac(cfg, true)?;
    info!("adopted the program pinned in {}", dir.display());
    Ok(dp)
}

/// Detaches the program from `iface` and removes its pins.
pub fn detach(iface: &str, cfg: Option<&Config>) -> Result<(), LoaderError> {
    privilege::require("unloading XDP", privilege::AGENT)?;
    let dir = pin_dir(iface);
    if !dir.exists() {
        return Err(LoaderError::NotLoaded(iface.into(), dir.display().to_string()));
    }
    remove_pins(&dir)?;
    if let Some(cfg) = cfg {
        nic::join_cluster_mac(cfg, false)?;
    }
    Ok(())
}

/// A row of "no owner" per slot: the data plane accepts nothing until a table comes.
fn empty_rows(rules: &Rules, buckets: u32) -> Vec<Vec<u16>> {
    debug_assert!(rules.slots.len() <= MAX_SLOTS as usize);
    vec![vec![NO_OWNER; buckets as usize]; rules.slots.len()]
}

/// Removes the pins in `dir` and `dir` itself, if there.
fn remove_pins(dir: &Path) -> Result<(), LoaderError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(pin_err("read", dir)(e)),
    };
    let link = dir.join(LINK_PIN);
    if link.exists() {
        detach_link(&link).map_err(pin_err("detach", &link))?;
    }
    for entry in entries {
        let path = entry.map_err(pin_err("read", dir))?.path();
        fs::remove_file(&path).map_err(pin_err("unpin", &path))?;
    }
    fs::remove_dir(dir).map_err(pin_err("rmdir", dir))
}

/// Detaches the link pinned at `path` at once. Removing the pin, its last reference,
/// would detach it too, but the kernel releases an unreferenced link later, from a work
/// queue, and an attach meanwhile (a replaced program's successor, a load right after
/// an unload) would find the interface busy. aya has no call for BPF_LINK_DETACH.
fn detach_link(path: &Path) -> io::Result<()> {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_LINK_DETACH: libc::c_long = 34;
    let path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // `union bpf_attr` as far as each command reads it: the path's address, the link's fd.
    let get = [path.as_ptr() as u64, 0];
    // SAFETY: BPF_OBJ_GET reads the NUL-terminated path `get` points at, which outlives
    // the call, and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, get.as_ptr(), size_of_val(&get)) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd BPF_OBJ_GET just returned, owned by nothing else; closed on drop.
    let link = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let detach = [link.as_raw_fd() as u32, 0];
    // SAFETY: BPF_LINK_DETACH reads the link fd in `detach` and writes nothing.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_LINK_DETACH, detach.as_ptr(), size_of_val(&detach))
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn pin_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LoaderError {
    let path = path.display().to_string();
    move |source| LoaderError::Pin { op, path, source }
}

/// Takes back a half-done `attach` when dropped while armed.
struct Undo {
    dir: PathBuf,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = remove_pins(&self.dir)
        {
            warn!("cleaning up after a failed load: {e}");
        }
    }
}

fn ensure_bpffs() -> Result<(), LoaderError> {
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs fills the struct it is given; the path is a NUL-terminated literal.
    let ok = unsafe { libc::statfs(c"/sys/fs/bpf".as_ptr(), &mut st) } == 0;
    if ok && st.f_type as i64 == BPF_FS_MAGIC {
        return Ok(());
    }
    // SAFETY: all arguments are NUL-terminated literals.
    let rc = unsafe {
        libc::mount(c"bpf".as_ptr(), c"/sys/fs/bpf".as_ptr(), c"bpf".as_ptr(), 0, std::ptr::null())
    };
    if rc != 0 {
        return Err(LoaderError::Mount(io::Error::last_os_error()));
    }
    Ok(())
}
