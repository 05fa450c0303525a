//! From a view to the rows of the owner table: one row per slot, each the assignment of
//! the view's members at their weight for that slot. Pure: every node holding the same
//! view and configuration computes the same rows.
use farm_common::NO_OWNER;

use super::{
    membership::{View, ViewMember},
    wire::{ServiceBits, bit},
};
use crate::{
    assign::{self, Member},
    config::{Affinity, Config, DefaultAction},
    rules::{self, SlotUse},
};

/// An owner table: one row per slot, `buckets` owners each.
pub type Rows = Vec<Vec<u16>>;

/// A member's weight in one slot: drained (the node, or this service on it) is 0, an
/// override replaces the file's weight.
fn weight(cfg: &Config, slot: &SlotUse, m: &ViewMember) -> u32 {
    let service_drained = matches!(slot, SlotUse::Service(i) if bit(m.services.drained, *i));
    if m.drained || service_drained {
        return 0;
    }
    m.weight.unwrap_or_else(|| match slot {
        SlotUse::Vip(_) => cfg.cluster.peers.iter().find(|p| p.id == m.id).map_or(0, |p| p.weight),
        SlotUse::Service(i) => cfg.weight(&cfg.services[*i], m.id),
    })
}

/// Every peer of `cfg` as a member with the file's weights: the view of a farm with
/// every node alive, which the CLI measures quotas against when no agent answers.
pub fn everyone(cfg: &Config) -> View {
    let members = cfg
        .cluster
        .peers
        .iter()
        .map(|p| ViewMember {
            id: p.id,
            incarnation: 0,
            weight: None,
            drained: false,
            services: ServiceBits::default(),
        })
        .collect();
    View { members, config: crate::config::shared_digest(cfg) }
}

/// The members of `view` with their weights in each slot of `cfg`.
/// - A service's members failing its health checks weigh 0, unless every member that
///   could serve it fails them: then all keep their weights (`fail_open`), as balancers
///   serve from all backends when all look down rather than refuse every client.
/// - An active-backup service, and a VIP whose default is `priority`, weigh 1 for their
///   one node (`active_node`) and 0 for the others, so its table (and its quotas in the
///   CLI) give that node every bucket.
pub fn members(cfg: &Config, view: &View) -> Vec<Vec<Member>> {
    rules::rules(cfg)
        .slots
        .iter()
        .map(|slot| {
            let mut members: Vec<Member> = view
                .members
                .iter()
                .map(|m| Member { id: m.id, weight: weight(cfg, slot, m) })
                .collect();
            match *slot {
                SlotUse::Vip(addr) => {
                    let priority = |v: &&crate::config::Vip| v.default == DefaultAction::Priority;
                    if cfg.vips.iter().filter(priority).any(|v| v.address == addr) {
                        let chosen = active_node(cfg, &members, |_| false, |_| true);
                        keep_one(&mut members, chosen);
                    }
                }
                SlotUse::Service(i) => {
                    let of = |id: u16| view.members.iter().find(|m| m.id == id).map(|m| m.services);
                    let is = |pick: fn(&ServiceBits) -> u64| {
                        move |id: u16| of(id).is_some_and(|s| bit(pick(&s), i))
                    };
                    if !fail_open(&members, is(|s| s.unhealthy)) {
                        for m in members.iter_mut().filter(|m| is(|s| s.unhealthy)(m.id)) {
                            m.weight = 0;
                        }
                    }
                    if cfg.services[i].affinity == Affinity::ActiveBackup {
                        let chosen =
                            active_node(cfg, &members, is(|s| s.active), is(|s| s.takes_back));
                        keep_one(&mut members, chosen);
                    }
                }
            }
            members
        })
        .collect()
}

/// The services of `cfg` that every member of `view` able to serve them fails the
/// checks of: they serve them regardless (see `members`).
pub fn failing_open(cfg: &Config, view: &View) -> Vec<usize> {
    (0..cfg.services.len())
        .filter(|&i| !cfg.services[i].health.is_empty())
        .filter(|&i| {
            let slot = SlotUse::Service(i);
            let members: Vec<Member> = view
                .members
                .iter()
                .map(|m| Member { id: m.id, weight: weight(cfg, &slot, m) })
                .collect();
            let unhealthy =
                |id: u16| view.members.iter().any(|m| m.id == id && bit(m.services.unhealthy, i));
            fail_open(&members, unhealthy)
        })
        .collect()
}

/// Whether member `id` of `view` can serve service `service` at all: it weighs more than
/// 0 there (not drained, nor weighed 0) and passes its checks.
pub fn able(cfg: &Config, view: &View, service: usize, id: u16) -> bool {
    view.members.iter().find(|m| m.id == id).is_some_and(|m| {
        weight(cfg, &SlotUse::Service(service), m) > 0 && !bit(m.services.unhealthy, service)
    })
}

/// Whether every member that could serve a service (weight > 0) fails its checks, so
/// they all serve it regardless.
pub fn fail_open(members: &[Member], unhealthy: impl Fn(u16) -> bool) -> bool {
    let mut able = members.iter().filter(|m| m.weight > 0).peekable();
    able.peek().is_some() && able.all(|m| unhealthy(m.id))
}

/// The one node of an active-backup table or of a VIP's `priority` default, among the
/// members with weight > 0: the one serving it already (`active`), unless the best one
/// (lowest `priority`, then lowest id) is another that `takes_back`; with none serving,
/// the best. So a returning better node waits for its failback, and the service never
/// moves between two nodes that are both up for no reason.
fn active_node(
    cfg: &Config,
    members: &[Member],
    active: impl Fn(u16) -> bool,
    takes_back: impl Fn(u16) -> bool,
) -> Option<u16> {
    let priority =
        |id: u16| cfg.cluster.peers.iter().find(|p| p.id == id).map_or(u32::MAX, |p| p.priority);
    let able = || members.iter().filter(|m| m.weight > 0).map(|m| (priority(m.id), m.id));
    let best = able().min().map(|(_, id)| id);
    let serving = able().filter(|&(_, id)| active(id)).min().map(|(_, id)| id);
    match (serving, best) {
        (Some(_), Some(best)) if takes_back(best) => Some(best),
        (Some(serving), _) => Some(serving),
        (None, best) => best,
    }
}

/// Weight 1 for `chosen`, 0 for all others.
fn keep_one(members: &mut [Member], chosen: Option<u16>) {
    for m in members {
        m.weight = u32::from(chosen == Some(m.id));
    }
}

/// The owner rows of `view`'s table, slot `i` at index `i`. Slots whose members weigh
/// alike get the same row, computed once: a table takes milliseconds a slot at 65,536
/// buckets, and most slots of a farm weigh its nodes alike.
pub fn rows(cfg: &Config, view: &View) -> Rows {
    let mut done: Vec<(Vec<Member>, usize)> = Vec::new();
    let mut rows: Vec<Vec<u16>> = Vec::new();
    for members in members(cfg, view) {
        let row = match done.iter().find(|(m, _)| *m == members) {
            Some(&(_, i)) => rows[i].clone(),
            None => {
                done.push((members.clone(), rows.len()));
                assign::assign(&members, cfg.cluster.buckets, cfg.cluster.seed).owners().to_vec()
            }
        };
        rows.push(row);
    }
    rows
}

/// Which slot of `cfg` a VIP's or service's rows belong to, by what it serves: a reload
/// may move both to other slots.
fn slot_keys(cfg: &Config) -> Vec<String> {
    let key = |slot: &SlotUse| match slot {
        SlotUse::Vip(addr) => format!("vip {addr}"),
        SlotUse::Service(i) => format!("service {}", cfg.services[*i].name),
    };
    rules::rules(cfg).slots.iter().map(key).collect()
}

/// For each slot of `old`, the slot of `new` serving the same VIP or service, if any,
/// and if buckets hold the same clients under both (the same bucket count and seed).
pub fn slot_map(old: &Config, new: &Config) -> Vec<Option<usize>> {
    let after = slot_keys(new);
    let same_hash =
        (old.cluster.buckets, old.cluster.seed) == (new.cluster.buckets, new.cluster.seed);
    slot_keys(old)
        .iter()
        .map(|key| after.iter().position(|k| k == key).filter(|_| same_hash))
        .collect()
}

/// For each slot of `new`: whether `view`'s table gives it the same row under `old`
/// (the same VIP or service, its members weighing the same, the same buckets and seed),
/// known without computing either table.
pub fn unchanged(old: &Config, new: &Config, view: &View) -> Vec<bool> {
    let before: Vec<(String, Vec<Member>)> =
        slot_keys(old).into_iter().zip(members(old, view)).collect();
    let same_hash =
        (old.cluster.buckets, old.cluster.seed) == (new.cluster.buckets, new.cluster.seed);
    slot_keys(new)
        .into_iter()
        .zip(members(new, view))
        .map(|(key, members)| same_hash && before.contains(&(key, members)))
        .collect()
}

/// The table of the release phase: a bucket keeps its owner only where `current` and
/// `next` agree, so no node keeps a bucket `next` gives to another. Slots `current` lacks
/// (a reload added them) start with no owner.
pub fn release(current: &[Vec<u16>], next: &[Vec<u16>]) -> Rows {
    next.iter()
        .enumerate()
        .map(|(slot, row)| match current.get(slot) {
            Some(cur) if cur.len() == row.len() => {
                cur.iter().zip(row).map(|(&c, &n)| if c == n { c } else { NO_OWNER }).collect()
            }
            _ => vec![NO_OWNER; row.len()],
        })
        .collect()
}

/// `rows`, laid out for `old`'s slots, moved to the slots `new` gives the same VIP or
/// service (by address, by name); a slot `old` lacked, or of another bucket count, starts
/// with no owner. For a reload, whose slots may have moved.
pub fn remap(old: &Config, rows: &[Vec<u16>], new: &Config) -> Rows {
    let before = slot_keys(old);
    let buckets = new.cluster.buckets as usize;
    slot_keys(new)
        .iter()
        .map(|key| {
            let at = before.iter().position(|k| k == key);
            match at.and_then(|i| rows.get(i)).filter(|row| row.len() == buckets) {
                Some(row) => row.clone(),
                None => vec![NO_OWNER; buckets],
            }
        })
        .collect()
}

/// Rows with no owner at all: a fenced node's table.
pub fn empty(slots: usize, buckets: u32) -> Rows {
    vec![vec![NO_OWNER; buckets as usize]; slots]
}

/// Buckets whose owner differs between two tables of the same shape, over all slots.
pub fn moved(before: &[Vec<u16>], after: &[Vec<u16>]) -> usize {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| b.iter().zip(a).filter(|(x, y)| x != y).count())
        .sum::<usize>()
        + after.iter().skip(before.len()).map(Vec::len).sum::<usize>()
}

/// Buckets `node` owns, over all slots.
pub fn owned(rows: &[Vec<u16>], node: u16) -> usize {
    rows.iter().flatten().filter(|&&o| o == node).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(members: &[(u16, Option<u32>, bool)]) -> View {
        View {
            members: members
                .iter()
                .map(|&(id, weight, drained)| ViewMember {
                    id,
                    incarnation: 1,
                    weight,
                    drained,
                    services: ServiceBits::default(),
                })
                .collect(),
            config: 0,
        }
    }

    fn config() -> Config {
        crate::config::parse(
            "cluster:\n  name: t\n  node_id: 1\n  interface: eth0\n  peers:\n    - {id: 1, address: \"198.18.0.1:7400\"}\n    - {id: 2, address: \"198.18.0.2:7400\", weight: 2}\n    - {id: 3, address: \"198.18.0.3:7400\"}\nvips:\n  - address: 198.18.0.100\nservices:\n  - {name: web, vip: 198.18.0.100, protocol: tcp, ports: [80], weights: {3: 0}}\n",
            "t.yaml",
        )
        .unwrap()
    }

    #[test]
    fn weights_come_from_the_file_unless_overridden_or_drained() {
        let cfg = config();
        let counts = |v: &View| -> Vec<Vec<usize>> {
            rows(&cfg, v)
                .iter()
                .map(|r| (1..=3).map(|n| owned(std::slice::from_ref(r), n)).collect())
                .collect()
        };
        let all = view(&[(1, None, false), (2, None, false), (3, None, false)]);
        assert_eq!(counts(&all), [vec![1024, 2048, 1024], vec![1365, 2731, 0]]);
        let drained = view(&[(1, None, false), (2, None, true), (3, Some(3), false)]);
        assert_eq!(counts(&drained), [vec![1024, 0, 3072], vec![1024, 0, 3072]]);
        let nobody = view(&[(1, None, true), (3, Some(0), false)]);
        assert!(rows(&cfg, &nobody).iter().flatten().all(|&o| o == NO_OWNER));
    }

    #[test]
    fn a_priority_default_gives_the_vip_to_one_node() {
        let text = "cluster:\n  name: t\n  node_id: 1\n  interface: eth0\n  peers:\n    - {id: 1, address: \"198.18.0.1:7400\", priority: 5}\n    - {id: 2, address: \"198.18.0.2:7400\", priority: 1}\n    - {id: 3, address: \"198.18.0.3:7400\", priority: 1}\nvips:\n  - {address: 198.18.0.100, default: priority}\n";
        let cfg = crate::config::parse(text, "t.yaml").unwrap();
        let owner = |v: &View| {
            let row = &rows(&cfg, v)[0];
            assert!(row.iter().all(|&o| o == row[0]), "one node owns every bucket");
            row[0]
        };
        let all = view(&[(1, None, false), (2, None, false), (3, None, false)]);
        assert_eq!(owner(&all), 2, "lowest priority value, then lowest id");
        assert_eq!(owner(&view(&[(1, None, false), (2, None, true), (3, None, false)])), 3);
        assert_eq!(owner(&view(&[(1, None, false)])), 1);
    }

    #[test]
    fn remap_follows_vips_and_services_to_their_new_slots() {
        let old = config();
        let text = "cluster:\n  name: t\n  node_id: 1\n  interface: eth0\n  peers:\n    - {id: 1, address: \"198.18.0.1:7400\"}\nvips:\n  - address: 198.18.0.101\n  - address: 198.18.0.100\nservices:\n  - {name: mail, vip: 198.18.0.100, protocol: tcp, ports: [25]}\n  - {name: web, vip: 198.18.0.100, protocol: tcp, ports: [80]}\n";
        let new = crate::config::parse(text, "t.yaml").unwrap();
        let rows = vec![vec![1; 4096], vec![2; 4096]];
        let moved = remap(&old, &rows, &new);
        let firsts: Vec<u16> = moved.iter().map(|r| r[0]).collect();
        assert_eq!(firsts, [NO_OWNER, 1, NO_OWNER, 2], "new VIP, old VIP, new service, web");
    }

    #[test]
    fn release_keeps_only_what_stays() {
        let cur = vec![vec![1, 2, 3, NO_OWNER]];
        let next = vec![vec![1, 3, 3, 2], vec![1, 1, 1, 1]];
        let want = vec![vec![1, NO_OWNER, 3, NO_OWNER], vec![NO_OWNER; 4]];
        assert_eq!(release(&cur, &next), want);
        assert_eq!(moved(&cur, &next), 2 + 4);
    }

    /// Three nodes (priorities 3, 1, 2) serving `web` (spread) and `db` (active-backup).
    fn services_config() -> Config {
        crate::config::parse(
            "cluster:\n  name: t\n  node_id: 1\n  interface: eth0\n  peers:\n    - {id: 1, address: \"198.18.0.1:7400\", priority: 3}\n    - {id: 2, address: \"198.18.0.2:7400\", priority: 1}\n    - {id: 3, address: \"198.18.0.3:7400\", priority: 2}\nvips:\n  - address: 198.18.0.100\nservices:\n  - {name: web, vip: 198.18.0.100, protocol: tcp, ports: [80]}\n  - {name: db, vip: 198.18.0.100, protocol: tcp, ports: [5432], affinity: active-backup}\n",
            "t.yaml",
        )
        .unwrap()
    }

    /// Nodes 1 to 3, each with its service bits.
    fn with_bits(bits: [ServiceBits; 3]) -> View {
        let mut v = view(&[(1, None, false), (2, None, false), (3, None, false)]);
        for (m, b) in v.members.iter_mut().zip(bits) {
            m.services = b;
        }
        v
    }

    const WEB: u64 = 1;
    const DB: u64 = 2;

    /// Who owns what in web's and db's rows: web's per-node counts, db's one owner.
    fn web_and_db(cfg: &Config, v: &View) -> (Vec<usize>, Option<u16>) {
        let rows = rows(cfg, v);
        let web = (1..=3).map(|n| owned(std::slice::from_ref(&rows[1]), n)).collect();
        let db = &rows[2];
        assert!(db.iter().all(|&o| o == db[0]), "one node owns every bucket of db");
        (web, Some(db[0]).filter(|&o| o != NO_OWNER))
    }

    #[test]
    fn a_node_failing_a_services_checks_leaves_that_service_only() {
        let cfg = services_config();
        let sick = ServiceBits { unhealthy: WEB, ..ServiceBits::default() };
        let v = with_bits([ServiceBits::default(), sick, ServiceBits::default()]);
        assert_eq!(web_and_db(&cfg, &v), (vec![2048, 0, 2048], Some(2)));
        assert_eq!(owned(std::slice::from_ref(&rows(&cfg, &v)[0]), 2), 1365, "its VIP row stays");
        // Drained for web on node 3 too: node 1 serves web alone.
        let drained = ServiceBits { drained: WEB, ..ServiceBits::default() };
        let v = with_bits([ServiceBits::default(), sick, drained]);
        assert_eq!(web_and_db(&cfg, &v).0, [4096, 0, 0]);
        assert!(failing_open(&cfg, &v).is_empty());
    }

    #[test]
    fn every_node_failing_a_service_keeps_serving_it() {
        let cfg = services_config();
        let sick = ServiceBits { unhealthy: WEB, ..ServiceBits::default() };
        let v = with_bits([sick; 3]);
        assert_eq!(web_and_db(&cfg, &v).0, [1366, 1365, 1365], "fail open");
        // The web service has no checkers in this file: nothing to say loudly.
        assert!(failing_open(&cfg, &v).is_empty());
    }

    #[test]
    fn active_backup_goes_to_the_best_node_and_stays_where_it_serves() {
        let cfg = services_config();
        let none = ServiceBits::default();
        // Nobody serves yet: the lowest priority, node 2.
        assert_eq!(web_and_db(&cfg, &with_bits([none; 3])).1, Some(2));
        // Node 2 fails db's checks: node 3 (priority 2) takes it.
        let sick = ServiceBits { unhealthy: DB, ..none };
        assert_eq!(web_and_db(&cfg, &with_bits([none, sick, none])).1, Some(3));
        // Node 2 is back while node 3 serves: node 3 keeps it...
        let serving = ServiceBits { active: DB, ..none };
        assert_eq!(web_and_db(&cfg, &with_bits([none, none, serving])).1, Some(3));
        // ... until node 2 may take it back.
        let takes_back = ServiceBits { takes_back: DB, ..none };
        assert_eq!(web_and_db(&cfg, &with_bits([none, takes_back, serving])).1, Some(2));
        // Node 1 (priority 3) taking back is no reason to move: it is not the best.
        let v = with_bits([takes_back, none, serving]);
        assert_eq!(web_and_db(&cfg, &v).1, Some(3));
    }
}
