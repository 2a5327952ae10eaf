//! The sender: posts pending deliveries, retries failures with
//! exponential backoff, and leaves a delivery that never succeeds as a
//! dead letter.
//!
//! - Order per webhook and entity: a delivery is taken only when no
//!   earlier one for the same webhook and entity is still pending.
//! - A slow or dead endpoint never holds up anyone else: each delivery is
//!   its own task, taken by a lease rather than a held transaction, and
//!   new work is taken while slow posts are still in flight; each webhook
//!   has at most `per_webhook` posts in flight, so one endpoint cannot
//!   take every slot.

use std::time::{Duration, Instant};

use atlas_store::{Pool, StoreError};
use tokio::task::JoinSet;

use crate::destination::{AddressPolicy, Destination};
use crate::sender::{Delivery, DeliveryError, Sender};

/// How deliveries are made; `atlas_app::settings` reads each from the
/// variable named beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// `ATLAS_WEBHOOK_ALLOW_LOOPBACK` (also the query API's registrations).
    pub policy: AddressPolicy,
    /// `ATLAS_WEBHOOK_TIMEOUT_SECS`: one post's bound (default 10 s).
    pub timeout: Duration,
    /// `ATLAS_WEBHOOK_MAX_ATTEMPTS`: attempts before a dead letter
    /// (default 12: with the default backoff, about 6 hours).
    pub max_attempts: i32,
    /// `ATLAS_WEBHOOK_RETRY_BASE_SECS`: the first retry's wait, doubled
    /// after each failure up to `max_backoff` (default 30 s).
    pub retry_base: Duration,
    pub max_backoff: Duration,
    /// Posts in flight at once, and per webhook.
    pub concurrency: usize,
    pub per_webhook: i64,
    /// How often to look for due deliveries when there is room.
    pub poll: Duration,
    /// How long delivered rows are kept, and dead letters.
    pub keep_delivered: Duration,
    pub keep_dead: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            policy: AddressPolicy::default(),
            timeout: Sender::DEFAULT_TIMEOUT,
            max_attempts: 12,
            retry_base: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            concurrency: 32,
            per_webhook: 4,
            poll: Duration::from_millis(250),
            keep_delivered: Duration::from_secs(86_400),
            keep_dead: Duration::from_secs(30 * 86_400),
        }
    }
}

impl DeliveryConfig {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: i32) -> Duration {
        let doublings = attempt.clamp(1, 31) as u32 - 1;
        self.retry_base
            .saturating_mul(1u32 << doublings.min(20))
            .min(self.max_backoff)
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    pub delivered: u64,
    pub failed: u64,
    pub dead: u64,
}

pub struct Deliverer {
    pool: Pool,
    sender: Sender,
    config: DeliveryConfig,
}

/// A delivery taken by this sender.
struct Taken {
    delivery_id: i64,
    webhook_id: String,
    event_id: String,
    body: String,
    lag_seconds: f64,
    attempts: i32,
    url: String,
    secret: String,
}

/// Due deliveries, oldest first, whose webhook and entity have no earlier
/// pending one and whose webhook has room, leased to this sender.
const TAKE: &str = "
WITH inflight AS (
    SELECT webhook_id, count(*) AS n FROM webhook_deliveries
    WHERE state = 'pending' AND leased_until >= now()
    GROUP BY webhook_id
), due AS (
    SELECT d.delivery_id, d.webhook_id,
           row_number() OVER (PARTITION BY d.webhook_id ORDER BY d.delivery_id) AS n
    FROM webhook_deliveries d
    WHERE d.state = 'pending' AND d.next_attempt_at <= now()
      AND (d.leased_until IS NULL OR d.leased_until < now())
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                      WHERE e.state = 'pending' AND e.webhook_id = d.webhook_id
                        AND e.entity_id = d.entity_id AND e.delivery_id < d.delivery_id)
), picked AS (
    SELECT due.delivery_id FROM due LEFT JOIN inflight USING (webhook_id)
    WHERE due.n + coalesce(inflight.n, 0) <= $2
    ORDER BY due.delivery_id
    LIMIT $1
), locked AS (
    SELECT delivery_id FROM webhook_deliveries
    WHERE delivery_id IN (SELECT delivery_id FROM picked)
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET leased_until = now() + make_interval(secs => $3), attempts = d.attempts + 1
FROM locked, webhooks w
WHERE d.delivery_id = locked.delivery_id
  AND w.tenant_id = d.tenant_id AND w.webhook_id = d.webhook_id
RETURNING d.delivery_id, d.webhook_id, d.event_id, d.body::text, d.lag_seconds, d.attempts,
          w.url, w.secret";

impl Deliverer {
    pub fn new(pool: Pool, config: DeliveryConfig) -> Result<Self, DeliveryError> {
        Ok(Self {
            sender: Sender::new(config.policy, config.timeout)?,
            pool,
            config,
        })
    }

    /// Delivers until `deadline`, leaving time for the posts in flight to
    /// finish: nothing is taken later than one timeout before it.
    pub async fn run_until(&self, deadline: Instant) -> Result<Sent, StoreError> {
        let mut sent = Sent::default();
        let mut flying: JoinSet<(i64, String, i32, Result<u16, DeliveryError>)> = JoinSet::new();
        let mut pruned = false;
        let stop_taking = deadline
            .checked_sub(self.config.timeout)
            .unwrap_or(deadline);
        loop {
            let room = self.config.concurrency.saturating_sub(flying.len());
            if room > 0 && Instant::now() < stop_taking {
                for t in self.take(room as i64).await? {
                    let sender = self.sender.clone();
                    let policy = self.config.policy;
                    flying.spawn(async move {
                        let outcome = match Destination::parse(&t.url, policy) {
                            Ok(dest) => {
                                let delivery = Delivery {
                                    event_id: &t.event_id,
                                    body: t.body.as_bytes(),
                                    lag_seconds: t.lag_seconds,
                                };
                                sender.send(&dest, &t.secret, delivery).await
                            }
                            Err(e) => Err(e.into()),
                        };
                        (t.delivery_id, t.webhook_id, t.attempts, outcome)
                    });
                }
            }
            if flying.is_empty() {
                if !pruned {
                    self.prune().await?;
                    pruned = true;
                }
                if Instant::now() + self.config.poll >= stop_taking {
                    return Ok(sent);
                }
                tokio::time::sleep(self.config.poll).await;
                continue;
            }
            // Whichever comes first: a post finishing, or time to look
            // for more work.
            match tokio::time::timeout(self.config.poll, flying.join_next()).await {
                Ok(Some(Ok((id, webhook, attempts, outcome)))) => {
                    self.record(id, &webhook, attempts, outcome, &mut sent)
                        .await?
                }
                Ok(Some(Err(e))) => tracing::error!(error = %e, "a webhook post panicked"),
                Ok(None) | Err(_) => {}
            }
        }
    }

    async fn take(&self, limit: i64) -> Result<Vec<Taken>, StoreError> {
        let client = self.pool.get().await?;
        let lease = (self.config.timeout.as_secs_f64() * 2.0).max(5.0);
        let rows = client
            .query(TAKE, &[&limit, &self.config.per_webhook, &lease])
            .await?;
        Ok(rows
            .iter()
            .map(|r| Taken {
                delivery_id: r.get(0),
                webhook_id: r.get(1),
                event_id: r.get(2),
                body: r.get(3),
                lag_seconds: r.get(4),
                attempts: r.get(5),
                url: r.get(6),
                secret: r.get(7),
            })
            .collect())
    }

    async fn record(
        &self,
        id: i64,
        webhook: &str,
        attempts: i32,
        outcome: Result<u16, DeliveryError>,
        sent: &mut Sent,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        match outcome {
            Ok(status) => {
                sent.delivered += 1;
                client
                    .execute(
                        "UPDATE webhook_deliveries SET state = 'delivered', finished_at = now(), \
                         leased_until = NULL, last_status = $2, last_error = NULL \
                         WHERE delivery_id = $1",
                        &[&id, &i32::from(status)],
                    )
                    .await?;
            }
            Err(e) => {
                let status = match &e {
                    DeliveryError::Status(s) => Some(i32::from(*s)),
                    _ => None,
                };
                let dead = attempts >= self.config.max_attempts;
                if dead {
                    sent.dead += 1;
                    tracing::warn!(webhook, error = %e, attempts, "webhook delivery is a dead letter");
                } else {
                    sent.failed += 1;
                    tracing::debug!(webhook, error = %e, attempts, "webhook delivery failed");
                }
                let wait = self.config.backoff(attempts).as_secs_f64();
                client
                    .execute(
                        "UPDATE webhook_deliveries SET \
                           state = CASE WHEN $2 THEN 'dead' ELSE 'pending' END, \
                           finished_at = CASE WHEN $2 THEN now() END, \
                           next_attempt_at = now() + make_interval(secs => $3), \
                           leased_until = NULL, last_status = $4, last_error = $5 \
                         WHERE delivery_id = $1",
                        &[&id, &dead, &wait, &status, &e.to_string()],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Delivered rows past `keep_delivered` and dead letters past
    /// `keep_dead` go, a bounded number per run.
    async fn prune(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "DELETE FROM webhook_deliveries WHERE delivery_id IN ( \
                   SELECT delivery_id FROM webhook_deliveries \
                   WHERE (state = 'delivered' AND finished_at < now() - make_interval(secs => $1)) \
                      OR (state = 'dead' AND finished_at < now() - make_interval(secs => $2)) \
                   LIMIT 10000)",
                &[
                    &self.config.keep_delivered.as_secs_f64(),
                    &self.config.keep_dead.as_secs_f64(),
                ],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_over_hours() {
        let c = DeliveryConfig::default();
        assert_eq!(c.backoff(1), Duration::from_secs(30));
        assert_eq!(c.backoff(2), Duration::from_secs(60));
        assert_eq!(c.backoff(5), Duration::from_secs(480));
        assert_eq!(c.backoff(8), Duration::from_secs(3600));
        assert_eq!(c.backoff(40), Duration::from_secs(3600));
        let total: Duration = (1..c.max_attempts).map(|a| c.backoff(a)).sum();
        assert!(
            total > Duration::from_secs(4 * 3600) && total < Duration::from_secs(8 * 3600),
            "{total:?}"
        );
    }
}
