//! Smoke test: a small cluster forms through one seed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use foca_core::Config;

#[test]
fn five_members_join_through_one_seed() {
    let sim = joined_cluster(1, 5, Config::simple());
    assert!(all_see(&sim, &[1, 2, 3, 4, 5]));
}
