//! The owner table's double buffer, written through the map's memory, over a sequence of
//! installs: what packets then read (`Dataplane::row`) is exactly the table installed,
//! whatever the half held before.
use farm_common::NO_OWNER;
use farm_tests::{fixtures, harness::Harness};

/// A pseudo-random table: owner of (slot, bucket) by a small hash of `seed`.
fn table(h: &Harness, seed: u32) -> Vec<Vec<u16>> {
    (0..h.rules.slots.len())
        .map(|s| {
            (0..h.cfg.cluster.buckets)
                .map(|b| {
                    let x = (b ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(0x85eb_ca6b) >> 29;
                    if x == 7 { NO_OWNER } else { (x as u16 + s as u16) % 4 + 1 }
                })
                .collect()
        })
        .collect()
}

#[test]
#[ignore = "needs root: loads the XDP program and its maps"]
fn every_install_reads_back_exactly() {
    let mut h = Harness::new(fixtures::config()).expect("load the program");
    let seeds = [1u32, 2, 2, 3, 1, 4, 4, 5];
    for seed in seeds {
        let rows = table(&h, seed);
        h.dataplane.install(&rows).unwrap();
        for (slot, row) in rows.iter().enumerate() {
            assert!(h.dataplane.row(slot).unwrap() == *row, "seed {seed}, slot {slot}");
        }
    }
}
