//! The prune's batch sizes. The prune, and what it removes, is
//! `repositories/retention.rs`.

use std::time::Duration;

/// Rows per statement for kinds without children.
pub const BATCH: i64 = 1_000;
/// Runs per statement: each takes its joins, attempts and failed items.
pub const RUN_BATCH: i64 = 200;
/// Syncs per statement: each takes all its inventory items.
pub const SYNC_BATCH: i64 = 20;

/// The next batch's size: scaled by how the last one fitted `budget`
/// (`SqlDialect::BATCH_BUDGET`; growing at most twofold), between one row
/// and `most`.
pub fn next_batch(last: i64, most: i64, held: Duration, budget: Duration) -> i64 {
    let fitted = last as f64 * budget.as_secs_f64() / held.as_secs_f64().max(1e-6);
    (fitted as i64).clamp(1, (last * 2).min(most))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_shrink_to_the_budget_and_grow_back_by_at_most_twice() {
        let budget = Duration::from_millis(3);
        // Four times over the budget: a quarter of the rows.
        assert_eq!(next_batch(200, 200, budget * 4, budget), 50);
        // Never below one row, however slow.
        assert_eq!(next_batch(1, 200, Duration::from_secs(1), budget), 1);
        // Well within it: twice as many, never more than the most.
        assert_eq!(next_batch(10, 200, budget / 100, budget), 20);
        assert_eq!(next_batch(150, 200, budget / 100, budget), 200);
    }
}
