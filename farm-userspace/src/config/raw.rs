//! The file as written, in serde's hands: unknown fields and wrong types are refused here
//! (serde_yaml knows their line), while every default is still missing and every number
//! still wide, so that range checks can name the field and the range that would be right.
use std::{collections::BTreeMap, fmt, path::PathBuf};

use serde::{
    Deserialize, Deserializer,
    de::{self, Visitor},
};

use super::{Affinity, DefaultAction, L2Mode, Protocol, QuorumMode};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub cluster: RawCluster,
    pub vips: Vec<RawVip>,
    pub services: Option<Vec<RawService>>,
    pub static_owners: Option<BTreeMap<u64, Vec<RangeItem>>>,
    pub http: Option<RawHttp>,
    pub agent: Option<RawAgent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    /// A priority, or `off`.
    pub realtime_priority: Option<RangeItem>,
    pub lock_memory: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub name: String,
    /// Left out: the peer whose address is on this host (see `node`).
    pub node_id: Option<u64>,
    /// Left out: the interface holding this node's address (see `node`).
    pub interface: Option<String>,
    pub peers: Vec<RawPeer>,
    pub heartbeat_ms: Option<u64>,
    pub failure_threshold: Option<u64>,
    pub buckets: Option<u64>,
    /// serde_yaml reads `0x` plain scalars as integers, which is the hex the file allows.
    pub seed: Option<u64>,
    pub handover_timeout_ms: Option<u64>,
    pub flow_idle_ms: Option<u64>,
    pub key_file: Option<PathBuf>,
    pub l2_mode: Option<L2Mode>,
    pub quorum: Option<QuorumMode>,
    pub witness: Option<String>,
    pub cluster_mac: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub id: u64,
    pub address: String,
    pub weight: Option<u64>,
    pub priority: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVip {
    pub address: String,
    pub default: Option<DefaultAction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub name: String,
    pub vip: String,
    pub protocol: Protocol,
    pub ports: Vec<RangeItem>,
    pub affinity: Option<Affinity>,
    pub weights: Option<BTreeMap<u64, u64>>,
    pub health: Option<Vec<RawChecker>>,
    pub failback: Option<RawFailback>,
    pub failback_delay_ms: Option<u64>,
}

/// A checker: exactly one of `tcp`, `http` and `exec`, which validation insists on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChecker {
    pub tcp: Option<String>,
    pub http: Option<String>,
    pub exec: Option<Vec<String>>,
    pub path: Option<String>,
    pub status: Option<RangeItem>,
    pub body: Option<String>,
    pub interval_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub rise: Option<u64>,
    pub fall: Option<u64>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawFailback {
    Auto,
    Manual,
}

/// One entry of a port or bucket list: a number, or text such as `"8000-8100"` that
/// validation reads (it knows the bounds and can say which entry is wrong). Any other
/// field that takes a number or a word (a priority or `off`) reads it the same way.
pub(super) enum RangeItem {
    Number(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for RangeItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RangeItemVisitor)
    }
}

struct RangeItemVisitor;

impl Visitor<'_> for RangeItemVisitor {
    type Value = RangeItem;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a \"first-last\" range")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<RangeItem, E> {
        Ok(RangeItem::Number(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<RangeItem, E> {
        Ok(RangeItem::Text(value.to_owned()))
    }
}
