//! Typed access to the maps the XDP program reads: what the loader, the agent and the
//! CLI write and read, whether the maps came from a fresh load or from their pins.
use std::{collections::BTreeSet, path::Path, time::Duration};

use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray},
};
use farm_common::{
    ALL_MAPS, CONTROL_ACTIVE_HALF, CONTROL_LEASE, Counters, MAP_CONFIG, MAP_CONTROL, MAP_COUNTERS,
    MAP_OWNERS, MAP_SERVICES, MAP_VIPS, MAX_SLOTS, NodeConfig, OWNERS_PER_CHUNK, OwnerChunk,
    ServiceKey, Target, VipKey, chunks_per_row, owner_position,
};

use crate::rules::Rules;

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("map {0} is missing from the XDP program")]
    MissingMap(&'static str),
    #[error("cannot open pinned map {path}: {source} (is farm loaded on this interface? `cargo xtask load` or `farm agent` pins it)")]
    Pin { path: String, source: MapError },
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: MapError },
    #[error("table row has {got} buckets, the data plane was loaded for {want}")]
    RowLength { got: usize, want: u32 },
    #[error("slot {0} is beyond the {MAX_SLOTS} table slots")]
    Slot(usize),
    #[error("cannot read the monotonic clock: {0}")]
    Clock(std::io::Error),
}

type Result<T> = std::result::Result<T, DataplaneError>;

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { map, source }
}

/// The program's maps, typed with the layouts farm-common defines.
pub struct Dataplane {
    config: Array<MapData, NodeConfig>,
    control: Array<MapData, u64>,
    vips: HashMap<MapData, VipKey, Target>,
    services: HashMap<MapData, ServiceKey, Target>,
    owners: Array<MapData, OwnerChunk>,
    counters: PerCpuArray<MapData, Counters>,
}

impl Dataplane {
    /// Takes the maps out of a freshly loaded program.
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        Self::from_maps(|name| ebpf.take_map(name).ok_or(DataplaneError::MissingMap(name)))
    }

    /// Opens the maps pinned in `dir` (by `loader::attach`).
    pub fn open_pinned(dir: &Path) -> Result<Self> {
        Self::from_maps(|name| {
            let path = dir.join(name);
            let pin_err = |source| DataplaneError::Pin { path: path.display().to_string(), source };
            let data = MapData::from_pin(&path).map_err(pin_err)?;
            Map::from_map_data(data).map_err(pin_err)
        })
    }

    fn from_maps(mut take: impl FnMut(&'static str) -> Result<Map>) -> Result<Self> {
        let [config, control, vips, services, owners, counters] = ALL_MAPS;
        Ok(Self {
            config: take(config)?.try_into().map_err(map_err(MAP_CONFIG))?,
            control: take(control)?.try_into().map_err(map_err(MAP_CONTROL))?,
            vips: take(vips)?.try_into().map_err(map_err(MAP_VIPS))?,
            services: take(services)?.try_into().map_err(map_err(MAP_SERVICES))?,
            owners: take(owners)?.try_into().map_err(map_err(MAP_OWNERS))?,
            counters: take(counters)?.try_into().map_err(map_err(MAP_COUNTERS))?,
        })
    }

    pub fn node_config(&self) -> Result<NodeConfig> {
        self.config.get(&0, 0).map_err(map_err(MAP_CONFIG))
    }

    pub fn set_node_config(&mut self, cfg: &NodeConfig) -> Result<()> {
        self.config.set(0, cfg, 0).map_err(map_err(MAP_CONFIG))
    }

    /// Makes the VIP and service maps hold exactly `rules`: new entries first, then the
    /// stale ones removed, so a rule that stays is never missing in between.
    pub fn set_rules(&mut self, rules: &Rules) -> Result<()> {
        sync_hash(&mut self.vips, &rules.vips).map_err(map_err(MAP_VIPS))?;
        sync_hash(&mut self.services, &rules.services).map_err(map_err(MAP_SERVICES))
    }

    /// The half of the owner table packets read now.
    pub fn active_half(&self) -> Result<u32> {
        Ok(self.control.get(&CONTROL_ACTIVE_HALF, 0).map_err(map_err(MAP_CONTROL))? as u32 & 1)
    }

    /// Writes one row per slot (`rows[slot]`, `bucket_count` owners each) into the half
    /// packets do not read, then switches halves with one write: no packet ever sees a
    /// table that is half old, half new.
    pub fn install(&mut self, rows: &[Vec<u16>]) -> Result<()> {
        let bucket_count = self.node_config()?.bucket_count;
        if rows.len() > MAX_SLOTS as usize {
            return Err(DataplaneError::Slot(rows.len()));
        }
        let next = self.active_half()? ^ 1;
        for (slot, row) in rows.iter().enumerate() {
            if row.len() != bucket_count as usize {
                return Err(DataplaneError::RowLength { got: row.len(), want: bucket_count });
            }
            let (base, _) = owner_position(next, slot as u32, 0, bucket_count);
            for (i, chunk) in row.chunks(OWNERS_PER_CHUNK as usize).enumerate() {
                let mut value: OwnerChunk = [farm_common::NO_OWNER; OWNERS_PER_CHUNK as usize];
                value[..chunk.len()].copy_from_slice(chunk);
                self.owners.set(base + i as u32, value, 0).map_err(map_err(MAP_OWNERS))?;
            }
        }
        self.control.set(CONTROL_ACTIVE_HALF, next as u64, 0).map_err(map_err(MAP_CONTROL))
    }

    /// The owner row of `slot` in the active half.
    pub fn row(&self, slot: usize) -> Result<Vec<u16>> {
        let bucket_count = self.node_config()?.bucket_count;
        let (base, _) = owner_position(self.active_half()?, slot as u32, 0, bucket_count);
        let mut row = Vec::with_capacity(bucket_count as usize);
        for i in 0..chunks_per_row(bucket_count) {
            row.extend(self.owners.get(&(base + i), 0).map_err(map_err(MAP_OWNERS))?);
        }
        row.truncate(bucket_count as usize);
        Ok(row)
    }

    /// Extends the lease to `ttl` from now (`CLOCK_MONOTONIC`, the clock
    /// `bpf_ktime_get_ns` reads). `None` sets a lease that never ends: for a static
    /// table with no agent to renew it.
    pub fn renew_lease(&mut self, ttl: Option<Duration>) -> Result<()> {
        let deadline = match ttl {
            Some(ttl) => monotonic_now()?.saturating_add(ttl.as_nanos() as u64),
            None => u64::MAX,
        };
        self.control.set(CONTROL_LEASE, deadline, 0).map_err(map_err(MAP_CONTROL))
    }

    /// Time left on the lease; zero once expired.
    pub fn lease_left(&self) -> Result<Duration> {
        let deadline = self.control.get(&CONTROL_LEASE, 0).map_err(map_err(MAP_CONTROL))?;
        Ok(Duration::from_nanos(deadline.saturating_sub(monotonic_now()?)))
    }

    /// The counters of `slot` summed over all CPUs.
    pub fn counters(&self, slot: u32) -> Result<Counters> {
        let per_cpu = self.counters.get(&slot, 0).map_err(map_err(MAP_COUNTERS))?;
        Ok(per_cpu.iter().fold(Counters::default(), |a, c| add(&a, c)))
    }
}

fn add(a: &Counters, b: &Counters) -> Counters {
    Counters {
        accepted: a.accepted + b.accepted,
        not_owner: a.not_owner + b.not_owner,
        lease_expired: a.lease_expired + b.lease_expired,
        no_service: a.no_service + b.no_service,
        arp_replies: a.arp_replies + b.arp_replies,
        nd_replies: a.nd_replies + b.nd_replies,
        malformed: a.malformed + b.malformed,
        passed: a.passed + b.passed,
    }
}

fn sync_hash<K, V>(map: &mut HashMap<MapData, K, V>, want: &[(K, V)]) -> std::result::Result<(), MapError>
where
    K: aya::Pod + Ord,
    V: aya::Pod,
{
    for (k, v) in want {
        map.insert(k, v, 0)?;
    }
    let keep: BTreeSet<K> = want.iter().map(|(k, _)| *k).collect();
    let stale: Vec<K> = map.keys().filter_map(|k| k.ok()).filter(|k| !keep.contains(k)).collect();
    for k in stale {
        map.remove(&k)?;
    }
    Ok(())
}

fn monotonic_now() -> Result<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return Err(DataplaneError::Clock(std::io::Error::last_os_error()));
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}
