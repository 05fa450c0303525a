use std::collections::BTreeMap;

use farm_common::NO_OWNER;
use proptest::{prelude::*, sample::Index, strategy::ValueTree, test_runner::TestRunner};

use super::*;

const BUCKETS: u32 = 4096;

fn farm(weights: &[(u16, u32)]) -> Vec<Member> {
    weights.iter().map(|&(id, weight)| Member { id, weight }).collect()
}

/// FNV-1a over the owner vector: pins a whole table in one number.
fn checksum(table: &Table) -> u64 {
    table
        .owners()
        .iter()
        .flat_map(|o| o.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// How many buckets have a different owner in `a` and `b`.
fn moved(a: &Table, b: &Table) -> u32 {
    a.owners().iter().zip(b.owners()).filter(|(x, y)| x != y).count() as u32
}

/// Golden tables: a change to the assignment moves buckets in every running farm, and
/// nodes on different versions would disagree about owners, so it must be deliberate.
#[test]
fn golden_vectors() {
    let small = assign(&farm(&[(1, 1), (2, 1), (3, 2)]), 16, 0);
    assert_eq!(small.owners(), GOLDEN_SMALL);
    let got = [
        checksum(&assign(&farm(&[(1, 1), (2, 2), (3, 1)]), BUCKETS, 0)),
        checksum(&assign(&farm(&[(10, 3), (20, 1), (30, 4), (40, 2)]), BUCKETS, 0x5eed)),
        checksum(&assign(&farm(&[(1, 1_000_000), (2, 3), (65534, u32::MAX)]), 1000, 99)),
        checksum(&assign(
            &(0..64).map(|id| Member { id, weight: 1 }).collect::<Vec<_>>(),
            65536,
            1,
        )),
    ];
    assert_eq!(got, GOLDEN_SUMS);
}
const GOLDEN_SMALL: &[u16] = &[3, 3, 1, 3, 2, 3, 3, 1, 3, 1, 2, 2, 1, 2, 3, 3];
const GOLDEN_SUMS: [u64; 4] = [
    16_154_247_354_604_532_597,
    11_754_767_754_782_127_559,
    9_619_382_944_723_902_837,
    9_907_094_149_340_360_173,
];

#[test]
fn weights_one_two_one_split_4096_exactly() {
    let table = assign(&farm(&[(1, 1), (2, 2), (3, 1)]), BUCKETS, 42);
    let counts: Vec<_> = table.counts().into_iter().collect();
    assert_eq!(counts, [(1, 1024), (2, 2048), (3, 1024)]);
}

#[test]
fn nobody_to_own_gives_an_empty_table() {
    for members in [farm(&[]), farm(&[(1, 0), (2, 0)]), farm(&[(NO_OWNER, 3)])] {
        let table = assign(&members, 64, 0);
        assert!(table.is_empty());
        assert_eq!(table.owners(), [NO_OWNER; 64]);
        assert!(table.counts().is_empty());
    }
    assert!(!assign(&farm(&[(1, 0), (2, 1)]), 64, 0).is_empty());
}

#[test]
fn quotas_use_largest_remainder_ties_to_lower_id() {
    // 10 buckets over three equal weights: 3.33 each, the spare bucket to id 1.
    let q = quotas(&farm(&[(3, 1), (1, 1), (2, 1), (4, 0)]), 10);
    assert_eq!(q.into_iter().collect::<Vec<_>>(), [(1, 4), (2, 3), (3, 3)]);
}

#[test]
fn duplicated_id_counts_once_with_its_largest_weight() {
    let twice = assign(&farm(&[(1, 1), (2, 1), (1, 3)]), 256, 0);
    assert_eq!(twice, assign(&farm(&[(2, 1), (1, 3)]), 256, 0));
}

/// Buckets that change owner when `gone` fails, beyond its own.
fn extra_on_failure(members: &[Member], gone: u16, seed: u32) -> u32 {
    let survivors: Vec<_> = members.iter().copied().filter(|m| m.id != gone).collect();
    let (before, after) = (assign(members, BUCKETS, seed), assign(&survivors, BUCKETS, seed));
    assert!(!after.owners().contains(&gone));
    moved(&before, &after) - quotas(members, BUCKETS)[&gone]
}

/// Buckets that change owner when `newcomer` joins, beyond its quota.
fn extra_on_join(members: &[Member], newcomer: Member, seed: u32) -> u32 {
    let joined: Vec<_> = members.iter().copied().chain([newcomer]).collect();
    let (before, after) = (assign(members, BUCKETS, seed), assign(&joined, BUCKETS, seed));
    moved(&before, &after) - quotas(&joined, BUCKETS)[&newcomer.id]
}

/// Extra moves summed over a survey of farms, reported in basis points of BUCKETS so
/// that the figures need no floating point either.
#[derive(Default)]
struct Survey {
    total: u32,
    max: u32,
    farms: u32,
}

impl Survey {
    fn add(&mut self, extra: u32) {
        self.total += extra;
        self.max = self.max.max(extra);
        self.farms += 1;
    }

    fn average_basis_points(&self) -> u32 {
        self.total * 10_000 / (self.farms * BUCKETS)
    }
}

impl std::fmt::Display for Survey {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let (avg, max) = (self.average_basis_points(), self.max * 10_000 / BUCKETS);
        write!(f, "avg {}.{:02}% (max {}.{:02}%)", avg / 100, avg % 100, max / 100, max % 100)
    }
}

/// The averaged movement bounds of the issue, over 200 fixed-seed farms of 2 to 32
/// nodes with weights 1..=4 at 4096 buckets: beyond the buckets that must move (the
/// failed node's, the newcomer's quota), at most 2% of the buckets change owner.
#[test]
fn few_buckets_move_on_failure_and_join() {
    // The deterministic runner draws the same 200 farms on every run.
    let mut runner = TestRunner::deterministic();
    let (mut fail, mut join) = (Survey::default(), Survey::default());
    for _ in 0..200 {
        let (members, gone, weight, seed) = change().new_tree(&mut runner).unwrap().current();
        fail.add(extra_on_failure(&members, members[gone.index(members.len())].id, seed));
        join.add(extra_on_join(&members, Member { id: NEWCOMER, weight }, seed));
    }
    eprintln!(
        "assign, {} farms of 2..=32 nodes, {BUCKETS} buckets, moves beyond those that must: \
         on failure {fail}, on join {join}",
        fail.farms,
    );
    assert!(fail.average_basis_points() <= 200 && join.average_basis_points() <= 200);
}

/// Not a check: the figure for the agent's budget, which recomputes on every membership
/// change. Run with `cargo test --release -p farm-userspace --lib assign -- --ignored
/// --nocapture`.
#[test]
#[ignore = "a measurement, not a check: run it by name with --ignored --nocapture"]
fn time_65536_buckets_64_nodes() {
    let members: Vec<_> = (0..64).map(|id| Member { id, weight: 1 + u32::from(id % 4) }).collect();
    let start = std::time::Instant::now();
    let table = assign(&members, 65536, 1);
    eprintln!("assign: 65536 buckets x 64 nodes in {:?}", start.elapsed());
    assert_eq!(table.owners().len(), 65536);
}

/// Farms with distinct ids (NO_OWNER included, it must own nothing) and weights 0..=4.
fn any_farm(max_nodes: usize) -> impl Strategy<Value = Vec<Member>> {
    prop::collection::btree_map(any::<u16>(), 0u32..=4, 0..=max_nodes)
        .prop_map(|m| m.into_iter().map(|(id, weight)| Member { id, weight }).collect())
}

/// The members that can own buckets, by id, with their weights.
fn live_weights(members: &[Member]) -> BTreeMap<u16, u32> {
    members.iter().filter(|m| m.weight > 0 && m.id != NO_OWNER).map(|m| (m.id, m.weight)).collect()
}

/// The newcomer's id in joins: `change` draws the others below it.
const NEWCOMER: u16 = 1000;

/// A membership change in the shape of the movement bounds: a farm of 2..=32 nodes with
/// weights 1..=4, which of them fails, the weight of a newcomer, and the seed.
fn change() -> impl Strategy<Value = (Vec<Member>, Index, u32, u32)> {
    let farm = prop::collection::btree_map(0..NEWCOMER, 1u32..=4, 2..=32)
        .prop_map(|m| m.into_iter().map(|(id, weight)| Member { id, weight }).collect());
    (farm, any::<Index>(), 1u32..=4, any::<u32>())
}

/// Per-case bound on the buckets moved between nodes that stay: twice the worst seen
/// over 2000 random farms at 4096 buckets (2.1%), as the averaged 2% is checked above.
const MAX_EXTRA: u32 = BUCKETS * 4 / 100;

/// `cases` cases, and no regression files written into the source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn every_bucket_has_one_live_owner(
        members in any_farm(24), buckets in 0u32..=2048, seed in any::<u32>(),
    ) {
        let table = assign(&members, buckets, seed);
        let live = live_weights(&members);
        prop_assert_eq!(table.owners().len(), buckets as usize);
        prop_assert_eq!(table.is_empty(), live.is_empty() || buckets == 0);
        for &owner in table.owners() {
            prop_assert!(live.contains_key(&owner) || (live.is_empty() && owner == NO_OWNER));
        }
    }

    #[test]
    fn each_node_holds_its_quota_the_floor_or_ceiling_of_its_share(
        members in any_farm(24), buckets in 0u32..=2048, seed in any::<u32>(),
    ) {
        let live = live_weights(&members);
        let quotas = quotas(&members, buckets);
        prop_assert_eq!(quotas.keys().collect::<Vec<_>>(), live.keys().collect::<Vec<_>>());
        prop_assert_eq!(quotas.values().sum::<u32>(), if live.is_empty() { 0 } else { buckets });
        let total: u64 = live.values().map(|&w| u64::from(w)).sum();
        for (id, &quota) in &quotas {
            let share = u64::from(buckets) * u64::from(live[id]);
            let quota = u64::from(quota);
            prop_assert!(quota == share / total || quota == share.div_ceil(total));
        }
        let held: Vec<_> = assign(&members, buckets, seed).counts().into_iter().collect();
        let expected: Vec<_> = quotas.into_iter().filter(|&(_, q)| q > 0).collect();
        prop_assert_eq!(held, expected);
    }

    #[test]
    fn member_order_does_not_matter(
        (members, shuffled) in any_farm(24).prop_flat_map(|m| (Just(m.clone()), Just(m).prop_shuffle())),
        buckets in 0u32..=1024,
        seed in any::<u32>(),
    ) {
        prop_assert_eq!(assign(&members, buckets, seed), assign(&shuffled, buckets, seed));
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn a_failure_moves_its_buckets_and_few_others((members, gone, _, seed) in change()) {
        let gone = members[gone.index(members.len())].id;
        prop_assert!(extra_on_failure(&members, gone, seed) <= MAX_EXTRA);
    }

    #[test]
    fn a_join_moves_its_quota_and_few_others((members, _, weight, seed) in change()) {
        let newcomer = Member { id: NEWCOMER, weight };
        prop_assert!(extra_on_join(&members, newcomer, seed) <= MAX_EXTRA);
    }
}
