//! The prune's batch sizes. The prune, and what it removes, is
//! `repositories/retention.rs`.

/// Rows per statement for kinds without children.
pub const BATCH: i64 = 1_000;
/// Runs per statement: each takes its joins, attempts and failed items.
pub const RUN_BATCH: i64 = 200;
/// Syncs per statement: each takes all its inventory items.
pub const SYNC_BATCH: i64 = 20;
