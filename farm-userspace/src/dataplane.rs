//! Typed access to the maps the XDP program reads: what the loader, the agent and the
//! CLI write and read, whether the maps came from a fresh load or from their pins.
use std::{
    path::Path,
    time::{Duration, Instant},
};

use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray},
};
use farm_common::{
    ALL_MAPS, Control, Counters, FlowKey, FlowSeen, HANDOVER, Handover, LAYOUT_VERSION, LIMBO_SLOT,
    MAP_CONFIG, MAP_CONTROL, MAP_COUNTERS, MAP_FLOWS, MAP_HANDOVER, MAP_META, MAP_OWNERS,
    MAP_SERVICES, MAP_VIP_INDEX, MAP_VIPS, MAX_VIPS, NodeConfig, OWNERS_PER_CHUNK, OwnerChunk,
    PORTS_PER_VIP, VIP_IN_USE, VipEntry, chunks_per_row, handover_key, handover_parts,
    owner_position, vip_fold,
};

use crate::{
    handover::Moving,
    jiffies::{Clock, JiffiesError, TimerList},
    owner_memory::OwnerMemory,
    rules::Rules,
};

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("map {0} is missing from the XDP program")]
    MissingMap(&'static str),
    #[error(
        "cannot open pinned map {path}: {source} (is farm loaded on this interface? `cargo xtask load` or `farm agent` pins it)"
    )]
    Pin { path: String, source: MapError },
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: MapError },
    #[error(
        "map {MAP_OWNERS}: mmap: {0} (a program pinned by an older farm? `farm unload` it and start again)"
    )]
    Mmap(std::io::Error),
    #[error("table row has {got} buckets, the data plane was loaded for {want}")]
    RowLength { got: usize, want: u32 },
    #[error("{0} table slots, and a configuration has {LIMBO_SLOT} at most")]
    Slot(usize),
    #[error(transparent)]
    Clock(#[from] JiffiesError),
    #[error(
        "the program pinned in {dir} has layout {}, this farm's is {LAYOUT_VERSION}: `farm agent` replaces it when it starts; without an agent, run `farm unload --iface {iface}` and load it again",
        layout_name(*.pinned)
    )]
    Layout { dir: String, iface: String, pinned: Option<u32> },
}

/// A pinned layout version as messages name it: `None` is a farm from before versions.
pub fn layout_name(pinned: Option<u32>) -> String {
    pinned.map_or("none".into(), |v| v.to_string())
}

type Result<T> = std::result::Result<T, DataplaneError>;

fn open_pin(path: &Path) -> Result<Map> {
    let pin_err = |source| DataplaneError::Pin { path: path.display().to_string(), source };
    let data = MapData::from_pin(path).map_err(pin_err)?;
    Map::from_map_data(data).map_err(pin_err)
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { map, source }
}

/// The program's maps, typed with the layouts farm-common defines.
pub struct Dataplane {
    config: Array<MapData, NodeConfig>,
    control: Array<MapData, Control>,
    vips: Array<MapData, VipEntry>,
    services: Array<MapData, u64>,
    owners: OwnerMemory,
    counters: PerCpuArray<MapData, Counters>,
    vip_index: Array<MapData, VipEntry>,
    handover: HashMap<MapData, u32, Handover>,
    /// What each half of `FARM_HANDOVER` holds, as this process last wrote it (`None`
    /// until then: read from the map), so an install writes what changed alone.
    halves: [Option<Moving>; 2],
    flows: HashMap<MapData, FlowKey, FlowSeen>,
    /// Calibrated when the maps are opened, so that a renewal is arithmetic: reading the
    /// kernel's clock is a parse of /proc and, near 300 s of uptime, a 200 ms wait.
    clock: Clock,
}

impl Dataplane {
    /// Takes the maps out of a freshly loaded program, marked with this farm's layout.
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self> {
        let mut take = |name| ebpf.take_map(name).ok_or(DataplaneError::MissingMap(name));
        let mut meta: Array<MapData, u32> =
            take(MAP_META)?.try_into().map_err(map_err(MAP_META))?;
        meta.set(0, LAYOUT_VERSION, 0).map_err(map_err(MAP_META))?;
        Self::from_maps(take)
    }

    /// Opens the maps pinned in `dir` (by `loader::attach`), if they have this farm's
    /// layout: read with another, they would be misread, or written out of place.
    pub fn open_pinned(dir: &Path) -> Result<Self> {
        let pinned = Self::pinned_layout(dir)?;
        if pinned != Some(LAYOUT_VERSION) {
            let iface = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            return Err(DataplaneError::Layout { dir: dir.display().to_string(), iface, pinned });
        }
        Self::from_maps(|name| open_pin(&dir.join(name)))
    }

    /// The layout of the maps pinned in `dir`: `None` when they carry none (pinned by a
    /// farm from before layouts had versions).
    fn pinned_layout(dir: &Path) -> Result<Option<u32>> {
        let path = dir.join(MAP_META);
        if !path.exists() {
            return Ok(None);
        }
        let meta: Array<MapData, u32> = open_pin(&path)?.try_into().map_err(map_err(MAP_META))?;
        let version = meta.get(&0, 0).map_err(map_err(MAP_META))?;
        Ok(Some(version).filter(|&v| v != 0))
    }

    /// The program's maps but `FARM_META`, which `from_ebpf` writes and `open_pinned`
    /// checks before anything here reads the others.
    fn from_maps(mut take: impl FnMut(&'static str) -> Result<Map>) -> Result<Self> {
        let [config, control, vips, services, owners, counters, vip_index, handover, flows, _meta] =
            ALL_MAPS;
        Ok(Self {
            config: take(config)?.try_into().map_err(map_err(MAP_CONFIG))?,
            control: take(control)?.try_into().map_err(map_err(MAP_CONTROL))?,
            vips: take(vips)?.try_into().map_err(map_err(MAP_VIPS))?,
            services: take(services)?.try_into().map_err(map_err(MAP_SERVICES))?,
            owners: {
                let owners: Array<MapData, OwnerChunk> =
                    take(owners)?.try_into().map_err(map_err(MAP_OWNERS))?;
                OwnerMemory::map(aya::maps::IterableMap::map(&owners))
                    .map_err(DataplaneError::Mmap)?
            },
            counters: take(counters)?.try_into().map_err(map_err(MAP_COUNTERS))?,
            vip_index: take(vip_index)?.try_into().map_err(map_err(MAP_VIP_INDEX))?,
            handover: take(handover)?.try_into().map_err(map_err(MAP_HANDOVER))?,
            halves: [None, None],
            flows: take(flows)?.try_into().map_err(map_err(MAP_FLOWS))?,
            clock: Clock::calibrate(TimerList)?,
        })
    }

    pub fn node_config(&self) -> Result<NodeConfig> {
        self.config.get(&0, 0).map_err(map_err(MAP_CONFIG))
    }

    pub fn set_node_config(&mut self, cfg: &NodeConfig) -> Result<()> {
        self.config.set(0, cfg, 0).map_err(map_err(MAP_CONFIG))
    }

    /// Makes the VIP, service and index maps hold exactly `rules`. A VIP's entry and port
    /// rules are written before the index points at it, and the index stops pointing at a
    /// removed VIP before its entry goes, so a lookup never finds half a VIP.
    pub fn set_rules(&mut self, rules: &Rules) -> Result<()> {
        let old: Vec<VipEntry> = (0..MAX_VIPS)
            .map(|i| self.vips.get(&i, 0).map_err(map_err(MAP_VIPS)))
            .collect::<Result<_>>()?;
        let was_used: Vec<bool> = old.iter().map(|e| e.in_use == VIP_IN_USE).collect();
        for (i, entry) in rules.vips.iter().enumerate() {
            self.vips.set(i as u32, entry, 0).map_err(map_err(MAP_VIPS))?;
        }
        self.set_ports(rules, &was_used)?;
        let index = rules.vip_index();
        for (&fold, entry) in &index {
            self.vip_index.set(fold, entry, 0).map_err(map_err(MAP_VIP_INDEX))?;
        }
        // Where an old VIP's fold holds no VIP now, the index entry goes.
        for e in old.iter().filter(|e| e.in_use == VIP_IN_USE) {
            let fold = vip_fold(&e.addr);
            if !index.contains_key(&fold) {
                self.vip_index.set(fold, VipEntry::default(), 0).map_err(map_err(MAP_VIP_INDEX))?;
            }
        }
        for (i, _) in was_used.iter().enumerate().skip(rules.vips.len()).filter(|(_, used)| **used)
        {
            self.vips.set(i as u32, VipEntry::default(), 0).map_err(map_err(MAP_VIPS))?;
        }
        Ok(())
    }

    /// Writes every VIP's region of the port rules: all of it where the VIP index held a
    /// VIP before (old rules may linger), only the rules where it is fresh (all zero).
    fn set_ports(&mut self, rules: &Rules, was_used: &[bool]) -> Result<()> {
        let elements = rules.port_elements();
        let per_vip = PORTS_PER_VIP / 8;
        for vip in 0..MAX_VIPS {
            let region = vip * per_vip..(vip + 1) * per_vip;
            if was_used[vip as usize] {
                for e in region {
                    let value = elements.get(&e).copied().unwrap_or(0);
                    self.services.set(e, value, 0).map_err(map_err(MAP_SERVICES))?;
                }
            } else {
                for (&e, &value) in elements.range(region) {
                    self.services.set(e, value, 0).map_err(map_err(MAP_SERVICES))?;
                }
            }
        }
        Ok(())
    }

    /// The control record. Only one process writes it (the loader, then the agent), so
    /// reading it back to change one field loses no other writer's change.
    fn control(&self) -> Result<Control> {
        self.control.get(&0, 0).map_err(map_err(MAP_CONTROL))
    }

    /// The half of the owner table packets read now.
    pub fn active_half(&self) -> Result<u32> {
        Ok(self.control()?.active_half & 1)
    }

    /// Writes one row per slot (`rows[slot]`, `bucket_count` owners each) into the half
    /// packets do not read, then switches halves with one write: no packet ever sees a
    /// table that is half old, half new. The limbo slot's row is written with no owner
    /// each time, so whichever half is active has it.
    pub fn install(&mut self, rows: &[Vec<u16>], moving: &Moving) -> Result<()> {
        let bucket_count = self.node_config()?.bucket_count;
        if rows.len() > LIMBO_SLOT as usize {
            return Err(DataplaneError::Slot(rows.len()));
        }
        let next = self.active_half()? ^ 1;
        if let Some(row) = rows.iter().find(|row| row.len() != bucket_count as usize) {
            return Err(DataplaneError::RowLength { got: row.len(), want: bucket_count });
        }
        self.write_handover(next, moving)?;
        let per = OWNERS_PER_CHUNK as usize;
        let limbo = vec![farm_common::NO_OWNER; bucket_count as usize];
        let limbo = (LIMBO_SLOT as usize, &limbo);
        for (slot, row) in rows.iter().enumerate().chain([limbo]) {
            let (base, _) = owner_position(next, slot as u32, 0, bucket_count);
            for (i, chunk) in row.chunks(per).enumerate() {
                let mut value: OwnerChunk = [farm_common::NO_OWNER; OWNERS_PER_CHUNK as usize];
                value[..chunk.len()].copy_from_slice(chunk);
                self.owners.store(base + i as u32, value);
            }
        }
        // Then the buckets in handover, a few thousand at most where a table may have
        // millions: looking each bucket up in `moving` cost more than the table.
        for &(slot, bucket) in moving.keys().filter(|(slot, _)| *slot < rows.len()) {
            let (index, lane) = owner_position(next, slot as u32, bucket, bucket_count);
            let mut value = self.owners.load(index);
            value[lane] = HANDOVER;
            self.owners.store(index, value);
        }
        // Every chunk store before the switch that makes packets read them.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let ctl = Control { active_half: next, ..self.control()? };
        self.control.set(0, ctl, 0).map_err(map_err(MAP_CONTROL))
    }

    /// Makes `FARM_HANDOVER`'s entries of `half` (which packets do not read) exactly
    /// `moving`'s, writing only what differs from what the half holds: a syscall per
    /// entry, and a move hands over thousands of buckets.
    fn write_handover(&mut self, half: u32, moving: &Moving) -> Result<()> {
        let held = match self.halves[half as usize].take() {
            Some(held) => held,
            None => self.half(half)?,
        };
        for &(slot, bucket) in held.keys().filter(|k| !moving.contains_key(k)) {
            let key = handover_key(half, slot as u32, bucket);
            self.handover.remove(&key).map_err(map_err(MAP_HANDOVER))?;
        }
        for (&(slot, bucket), h) in moving.iter().filter(|(k, h)| held.get(k) != Some(h)) {
            let key = handover_key(half, slot as u32, bucket);
            self.handover.insert(key, h, 0).map_err(map_err(MAP_HANDOVER))?;
        }
        self.halves[half as usize] = Some(moving.clone());
        Ok(())
    }

    /// The entries of `half` of `FARM_HANDOVER`.
    fn half(&self, half: u32) -> Result<Moving> {
        let mut moving = Moving::new();
        for entry in self.handover.iter() {
            let (key, h) = entry.map_err(map_err(MAP_HANDOVER))?;
            let (at, slot, bucket) = handover_parts(key);
            if at == half {
                moving.insert((slot as usize, bucket), h);
            }
        }
        Ok(moving)
    }

    /// The buckets in handover in the active half, as `install` wrote them.
    pub fn moving(&self) -> Result<Moving> {
        let half = self.active_half()?;
        match &self.halves[half as usize] {
            Some(held) => Ok(held.clone()),
            None => self.half(half),
        }
    }

    /// The UDP flows learned on buckets in handover that are still live (not idle for
    /// longer than the program's `flow_idle`), with their holder.
    pub fn live_flows(&self) -> Result<Vec<(FlowKey, u16)>> {
        let ctl = self.control()?;
        let now = self.clock.reached_by(Instant::now());
        let mut live = vec![];
        for entry in self.flows.iter() {
            let (key, seen) = entry.map_err(map_err(MAP_FLOWS))?;
            if seen.seen + u64::from(ctl.flow_idle) > now {
                live.push((key, seen.holder));
            }
        }
        Ok(live)
    }

    /// How long a learned UDP flow lives without a datagram.
    pub fn set_flow_idle(&mut self, idle: Duration) -> Result<()> {
        let flow_idle = self.clock.ticks(idle).min(u64::from(u32::MAX)) as u32;
        let ctl = Control { flow_idle, ..self.control()? };
        self.control.set(0, ctl, 0).map_err(map_err(MAP_CONTROL))
    }

    /// The owner row of `slot` in the active half, a bucket in handover showing the owner
    /// of its new flows (its old owner while the move learns, nobody once released, its
    /// new owner once installed): who owns what, as the agent's table says.
    pub fn row(&self, slot: usize) -> Result<Vec<u16>> {
        let mut row = self.marked_row(slot)?;
        if row.contains(&HANDOVER) {
            let moving = self.moving()?;
            for (bucket, owner) in row.iter_mut().enumerate().filter(|(_, o)| **o == HANDOVER) {
                *owner = match moving.get(&(slot, bucket as u32)).map(|h| (h.phase, h)) {
                    Some((farm_common::HANDOVER_LEARNING, h)) => h.old,
                    Some((farm_common::HANDOVER_TAKING, h)) => h.new,
                    _ => farm_common::NO_OWNER,
                };
            }
        }
        Ok(row)
    }

    /// The owner row of `slot` in the active half as packets read it: `HANDOVER` where
    /// `FARM_HANDOVER` decides.
    pub fn marked_row(&self, slot: usize) -> Result<Vec<u16>> {
        let bucket_count = self.node_config()?.bucket_count;
        let (base, _) = owner_position(self.active_half()?, slot as u32, 0, bucket_count);
        let mut row = Vec::with_capacity(bucket_count as usize);
        for i in 0..chunks_per_row(bucket_count) {
            row.extend(self.owners.load(base + i));
        }
        row.truncate(bucket_count as usize);
        Ok(row)
    }

    /// Extends the lease to end at `until`, in the jiffies the program compares against.
    /// `None` sets a lease that never ends: for a static table with no agent to renew it.
    pub fn renew_lease(&mut self, until: Option<Instant>) -> Result<()> {
        let deadline = match until {
            // The count the kernel has surely reached by `until`: the program's
            // `jiffies >= lease` then holds by `until`, never later.
            Some(until) => self.clock.reached_by(until),
            None => u64::MAX,
        };
        let ctl = Control { lease: deadline, ..self.control()? };
        self.control.set(0, ctl, 0).map_err(map_err(MAP_CONTROL))
    }

    /// Ends the lease now: the program drops all VIP traffic until the next renewal.
    pub fn fence(&mut self) -> Result<()> {
        let ctl = Control { lease: 0, ..self.control()? };
        self.control.set(0, ctl, 0).map_err(map_err(MAP_CONTROL))
    }

    /// Time left on the lease (zero once expired), or `None` for a lease that never
    /// ends (`renew_lease(None)`), whose deadline no clock reading can be subtracted from.
    pub fn lease(&self) -> Result<Option<Duration>> {
        let deadline = self.control()?.lease;
        if deadline == u64::MAX {
            return Ok(None);
        }
        Ok(Some(self.clock.left(deadline, Instant::now())))
    }

    /// The counters of `slot` summed over all CPUs.
    pub fn counters(&self, slot: u32) -> Result<Counters> {
        let per_cpu = self.counters.get(&slot, 0).map_err(map_err(MAP_COUNTERS))?;
        Ok(per_cpu.iter().fold(Counters::default(), |sum, c| sum + *c))
    }
}
