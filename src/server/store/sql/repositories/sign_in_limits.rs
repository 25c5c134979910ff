//! The sign-in limiter's counts (`auth::limiter`), shared by every
//! instance on the database.
//!
//! Here: `SignInLimitRepository`.

use super::Store;
use crate::domain::*;
use crate::server::store::sql::SqlDialect;
use crate::server::store::{LimitRule, SignInLimitRepository, StoreResult};
use async_trait::async_trait;

#[async_trait]
impl SignInLimitRepository for Store {
    async fn reserve_sign_in(
        &self,
        rules: &[LimitRule],
        window: std::time::Duration,
        now: Timestamp,
    ) -> StoreResult<Result<(), std::time::Duration>> {
        let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4);
        // Rows are locked in one order, so concurrent reservations
        // sharing keys cannot deadlock (PostgreSQL).
        let mut rules: Vec<&LimitRule> = rules.iter().collect();
        rules.sort_by(|a, b| a.key.cmp(&b.key));
        rules.dedup_by(|a, b| a.key == b.key);
        let (_turn, mut tx) = self.begin_write().await?;
        for rule in rules {
            // Allowed when the window is over (it starts again), under
            // the limit, or past the limit but a spacing after the
            // last attempt; a refused attempt changes nothing.
            let reserved: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO sign_in_limits (key, window_ends, attempts, next_at) \
                 VALUES ($1, $2 + $3, 1, $2 + $5) \
                 ON CONFLICT (key) DO UPDATE SET \
                   attempts = CASE WHEN sign_in_limits.window_ends <= $2 THEN 1 \
                              ELSE sign_in_limits.attempts + 1 END, \
                   window_ends = CASE WHEN sign_in_limits.window_ends <= $2 THEN $2 + $3 \
                                 ELSE sign_in_limits.window_ends END, \
                   next_at = $2 + $5 \
                 WHERE sign_in_limits.window_ends <= $2 OR sign_in_limits.attempts < $4 \
                   OR sign_in_limits.next_at <= $2 \
                 RETURNING attempts",
            )
            .bind(&rule.key)
            .bind(now.0)
            .bind(micros(window))
            .bind(rule.limit)
            .bind(micros(rule.spacing))
            .fetch_optional(&mut *tx)
            .await?;
            if reserved.is_none() {
                let (window_ends, next_at): (i64, i64) = sqlx::query_as(
                    "SELECT window_ends, next_at FROM sign_in_limits WHERE key = $1",
                )
                .bind(&rule.key)
                .fetch_one(&mut *tx)
                .await?;
                tx.rollback().await?;
                let wait = window_ends.min(next_at).saturating_sub(now.0).max(0);
                return Ok(Err(std::time::Duration::from_micros(wait.unsigned_abs())));
            }
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn release_sign_in(&self, keys: &[String]) -> StoreResult<()> {
        for key in keys {
            sqlx::query(
                "UPDATE sign_in_limits SET attempts = attempts - 1 WHERE key = $1 AND attempts > 0",
            )
            .bind(key)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    async fn prune_sign_in_limits(&self, now: Timestamp) -> StoreResult<u64> {
        // Rows another transaction holds are left for the next
        // prune (PostgreSQL), so pruning never waits on sign-ins.
        Ok(sqlx::query(&format!(
            "DELETE FROM sign_in_limits WHERE key IN (SELECT key FROM sign_in_limits \
             WHERE window_ends <= $1 LIMIT 10000{})",
            <Store as SqlDialect>::SKIP_LOCKED
        ))
        .bind(now.0)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
