//! The transactional outbox: notifications written in the same transaction as the state
//! change, then delivered by a [`Relay`] with retries and backoff until the receiver accepts.
//!
//! Each service has its own outbox table of the same shape ([`create_table`]). Delivery is
//! at least once; receivers are idempotent.

use rand::Rng;
use sea_orm::sea_query::{Alias, ColumnDef, Expr, ExprTrait, Func, Index, Query, Table};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use sea_orm_migration::SchemaManager;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A notification waiting in an outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: i64,
    pub tenant_id: String,
    pub topic: String,
    pub payload: Vec<u8>,
    /// W3C `traceparent` of the span that wrote it, so delivery continues the same trace.
    pub traceparent: Option<String>,
    pub attempts: i32,
}

/// Why a delivery failed; the messages stay in the outbox and are retried.
#[derive(Debug, thiserror::Error)]
#[error("delivery failed: {0}")]
pub struct DeliveryError(pub String);

/// Sends one tenant's due messages of one topic to their receiver.
pub trait Deliver: Send + Sync + 'static {
    /// Delivers all of `messages` (same tenant and topic) or fails as a whole.
    fn deliver(
        &self,
        tenant_id: &str,
        topic: &str,
        messages: &[OutboxMessage],
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

/// The items `decode` reads from each message, in order. A message it cannot read is
/// dropped with an error log: it could never be delivered, and failing the delivery would
/// hold back every other message of its tenant.
pub fn readable<T>(
    messages: &[OutboxMessage],
    decode: impl Fn(&OutboxMessage) -> Result<Vec<T>, String>,
) -> Vec<T> {
    let mut items = Vec::new();
    for m in messages {
        match decode(m) {
            Ok(read) => items.extend(read),
            Err(error) => {
                tracing::error!(id = m.id, topic = m.topic, %error, "unreadable outbox message dropped")
            }
        }
    }
    items
}

/// One service's outbox table.
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    table: &'static str,
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

/// Creates an outbox table named `table` (call from the owning service's migration).
pub async fn create_table(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(col(table))
                .if_not_exists()
                .col(
                    ColumnDef::new(col("id"))
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new(col("tenant_id")).string().not_null())
                .col(ColumnDef::new(col("topic")).string().not_null())
                .col(ColumnDef::new(col("payload")).blob().not_null())
                .col(ColumnDef::new(col("traceparent")).string().null())
                .col(
                    ColumnDef::new(col("attempts"))
                        .integer()
                        .not_null()
                        .default(0),
                )
                .col(
                    ColumnDef::new(col("next_attempt_at"))
                        .big_integer()
                        .not_null(),
                )
                .col(ColumnDef::new(col("created_at")).big_integer().not_null())
                .col(ColumnDef::new(col("last_error")).text().null())
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .if_not_exists()
                .name(format!("{table}_due"))
                .table(col(table))
                .col(col("next_attempt_at"))
                .to_owned(),
        )
        .await
}

impl Outbox {
    /// The outbox stored in `table`.
    pub const fn new(table: &'static str) -> Self {
        Outbox { table }
    }

    /// Adds a message; call inside the transaction that makes the change it announces.
    pub async fn push<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant_id: &str,
        topic: &str,
        payload: Vec<u8>,
        traceparent: Option<String>,
    ) -> Result<(), DbErr> {
        self.push_many(conn, tenant_id, topic, vec![payload], traceparent)
            .await
    }

    /// Adds several messages of one tenant and topic with multi-row INSERTs (one round trip
    /// per few hundred rows, not one per message); call inside the announcing transaction.
    pub async fn push_many<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant_id: &str,
        topic: &str,
        payloads: Vec<Vec<u8>>,
        traceparent: Option<String>,
    ) -> Result<(), DbErr> {
        const ROWS_PER_INSERT: usize = 500;
        let now = crate::now_millis();
        let mut payloads = payloads.into_iter().peekable();
        while payloads.peek().is_some() {
            let mut insert = Query::insert();
            insert.into_table(col(self.table)).columns(
                [
                    "tenant_id",
                    "topic",
                    "payload",
                    "traceparent",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                ]
                .map(col),
            );
            for payload in payloads.by_ref().take(ROWS_PER_INSERT) {
                insert.values_panic([
                    tenant_id.into(),
                    topic.into(),
                    payload.into(),
                    traceparent.clone().into(),
                    0i32.into(),
                    now.into(),
                    now.into(),
                ]);
            }
            conn.execute(&insert).await?;
        }
        Ok(())
    }

    /// Claims up to `limit` messages whose next attempt is due, oldest first, for `lease`:
    /// their next attempt moves that far ahead, so no other relay (another replica's) takes
    /// them meanwhile. The claimer answers each one by [`Outbox::delivered`] or
    /// [`Outbox::failed`]; a claimer that dies answers nothing and the messages come due
    /// again when the lease ends. On PostgreSQL relays claiming at once skip each other's
    /// rows (`SKIP LOCKED`) rather than wait for them.
    pub async fn claim<C: ConnectionTrait>(
        &self,
        conn: &C,
        limit: u64,
        lease: Duration,
    ) -> Result<Vec<OutboxMessage>, DbErr> {
        let backend = conn.get_database_backend();
        let now = crate::now_millis();
        let skip_locked = match backend {
            DbBackend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let p = |i: usize| match backend {
            DbBackend::Postgres => format!("${i}"),
            _ => format!("?{i}"),
        };
        let sql = format!(
            "UPDATE {table} SET next_attempt_at = {until} WHERE id IN \
             (SELECT id FROM {table} WHERE next_attempt_at <= {now} ORDER BY id \
             LIMIT {limit}{skip_locked}) \
             RETURNING id, tenant_id, topic, payload, traceparent, attempts",
            table = self.table,
            until = p(1),
            now = p(2),
            limit = p(3),
        );
        let until = now + lease.as_millis() as i64;
        let statement = Statement::from_sql_and_values(
            backend,
            sql,
            [until.into(), now.into(), (limit as i64).into()],
        );
        let mut claimed = conn
            .query_all_raw(statement)
            .await?
            .into_iter()
            .map(|row| {
                Ok(OutboxMessage {
                    id: row.try_get("", "id")?,
                    tenant_id: row.try_get("", "tenant_id")?,
                    topic: row.try_get("", "topic")?,
                    payload: row.try_get("", "payload")?,
                    traceparent: row.try_get("", "traceparent")?,
                    attempts: row.try_get("", "attempts")?,
                })
            })
            .collect::<Result<Vec<_>, DbErr>>()?;
        // RETURNING keeps no order.
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    /// Extends the claim on `ids` to `lease` from now (before delivering the later groups of
    /// a pass: the lease must outlast each delivery, not the whole pass).
    pub async fn renew<C: ConnectionTrait>(
        &self,
        conn: &C,
        ids: &[i64],
        lease: Duration,
    ) -> Result<(), DbErr> {
        let update = Query::update()
            .table(col(self.table))
            .value(
                col("next_attempt_at"),
                crate::now_millis() + lease.as_millis() as i64,
            )
            .and_where(Expr::col(col("id")).is_in(ids.iter().copied()))
            .to_owned();
        conn.execute(&update).await?;
        Ok(())
    }

    /// Number of messages not yet delivered (the outbox depth) and the creation time
    /// (milliseconds) of the oldest (for its lag).
    pub async fn depth<C: ConnectionTrait>(&self, conn: &C) -> Result<(i64, Option<i64>), DbErr> {
        let select = Query::select()
            .expr_as(Func::count(Expr::col(col("id"))), col("n"))
            .expr_as(Func::min(Expr::col(col("created_at"))), col("oldest"))
            .from(col(self.table))
            .to_owned();
        match conn.query_one(&select).await? {
            Some(row) => Ok((row.try_get("", "n")?, row.try_get("", "oldest")?)),
            None => Ok((0, None)),
        }
    }

    /// Removes delivered messages.
    pub async fn delivered<C: ConnectionTrait>(&self, conn: &C, ids: &[i64]) -> Result<(), DbErr> {
        let delete = Query::delete()
            .from_table(col(self.table))
            .and_where(Expr::col(col("id")).is_in(ids.iter().copied()))
            .to_owned();
        conn.execute(&delete).await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub async fn failed<C: ConnectionTrait>(
        &self,
        conn: &C,
        ids: &[i64],
        retry_in: Duration,
        error: &str,
    ) -> Result<(), DbErr> {
        let update = Query::update()
            .table(col(self.table))
            .value(col("attempts"), Expr::col(col("attempts")).add(1))
            .value(
                col("next_attempt_at"),
                crate::now_millis() + retry_in.as_millis() as i64,
            )
            .value(col("last_error"), error)
            .and_where(Expr::col(col("id")).is_in(ids.iter().copied()))
            .to_owned();
        conn.execute(&update).await?;
        Ok(())
    }
}

/// Exponential backoff with equal jitter: half the capped delay, plus a random share of the
/// other half, so retries spread out but never come sooner than half the delay.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before the next try after `attempts` failures: random in [cap/2, cap].
    pub fn delay(&self, attempts: i32) -> Duration {
        let exp = 2u32.saturating_pow(attempts.clamp(0, 20) as u32);
        let cap = self.base.saturating_mul(exp).min(self.max);
        let half = cap / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// Wakes a relay as soon as new messages are committed, instead of at its next poll.
#[derive(Debug, Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    /// Asks the relay to look at the outbox now.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// What one relay pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Messages the receivers accepted (and that were removed).
    pub delivered: usize,
    /// Messages whose delivery failed (kept for a later attempt).
    pub failed: usize,
}

/// Delivers an outbox's messages until cancelled.
pub struct Relay<D> {
    pub outbox: Outbox,
    pub db: DatabaseConnection,
    pub deliver: D,
    pub backoff: Backoff,
    /// How often to look for due messages when nobody wakes the relay.
    pub poll: Duration,
    pub batch: u64,
    /// How long claimed messages are this relay's alone: longer than one group's delivery
    /// takes (the claim is renewed before each later group of a pass), or another replica's
    /// relay may send them again (harmless, receivers are idempotent, but wasted).
    pub lease: Duration,
}

impl<D: Deliver> Relay<D> {
    /// A relay with the default backoff, poll interval and batch size.
    pub fn new(outbox: Outbox, db: DatabaseConnection, deliver: D) -> Self {
        Relay {
            outbox,
            db,
            deliver,
            backoff: Backoff::default(),
            poll: Duration::from_millis(500),
            batch: 1_000,
            lease: Duration::from_secs(60),
        }
    }

    /// Runs the relay as a task; returns the waker to call after each commit and the task.
    pub fn spawn(self, stop: CancellationToken) -> (RelayWaker, tokio::task::JoinHandle<()>) {
        let waker = RelayWaker::default();
        let task = tokio::spawn(self.run(waker.clone(), stop));
        (waker, task)
    }

    /// Runs until `stop` is cancelled, then makes one last pass so a graceful shutdown flushes.
    pub async fn run(self, waker: RelayWaker, stop: CancellationToken) {
        // Consecutive passes in which the receiver failed and nothing was delivered: while it
        // is down the relay backs off as a whole instead of retrying on every commit.
        let mut failing = 0;
        let mut measured: Option<tokio::time::Instant> = None;
        loop {
            let (delivered, failed) = match self.pass().await {
                Ok(p) => (p.delivered, p.failed),
                Err(error) => {
                    tracing::warn!(%error, table = self.outbox.table, "outbox pass failed");
                    (0, 1)
                }
            };
            self.count(delivered, failed);
            // Depth and lag cost a query: at most once a second, and only when served.
            if rapport_telemetry::metrics::served()
                && measured.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
            {
                measured = Some(tokio::time::Instant::now());
                self.measure().await;
            }
            if stop.is_cancelled() {
                break;
            }
            failing = if failed > 0 && delivered == 0 {
                failing + 1
            } else {
                0
            };
            if failing > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(self.backoff.delay(failing - 1)) => {}
                    _ = stop.cancelled() => {
                        let _ = self.pass().await;
                        break;
                    }
                }
            } else if delivered < self.batch as usize {
                tokio::select! {
                    _ = waker.0.notified() => {}
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = stop.cancelled() => {
                        let _ = self.pass().await;
                        break;
                    }
                }
            }
        }
    }

    fn labels(&self) -> Vec<(&'static str, String)> {
        vec![("outbox", self.outbox.table.to_owned())]
    }

    /// Counts a pass's delivered and failed messages.
    fn count(&self, delivered: usize, failed: usize) {
        let m = &rapport_telemetry::metrics::metrics().outbox_messages;
        for (outcome, n) in [("delivered", delivered), ("failed", failed)] {
            let mut labels = self.labels();
            labels.push(("outcome", outcome.to_owned()));
            m.get_or_create(&labels).inc_by(n as u64);
        }
    }

    /// Sets the outbox's depth and lag gauges.
    async fn measure(&self) {
        let m = rapport_telemetry::metrics::metrics();
        match self.outbox.depth(&self.db).await {
            Ok((depth, oldest)) => {
                m.outbox_depth.get_or_create(&self.labels()).set(depth);
                let lag = oldest.map_or(0.0, |t| {
                    Ord::max(crate::now_millis() - t, 0) as f64 / 1000.0
                });
                m.outbox_lag_seconds.get_or_create(&self.labels()).set(lag);
            }
            Err(error) => tracing::warn!(%error, table = self.outbox.table, "outbox depth"),
        }
    }

    /// Claims what is due and delivers it, once.
    pub async fn pass(&self) -> Result<Pass, DbErr> {
        // Claims and delivery marks are bookkeeping a crash may lose without harm (the
        // messages come due again and are redelivered; receivers are idempotent), so their
        // commits do not wait for the disk: each would otherwise add a flush per pass.
        let txn = crate::begin_unsynced(&self.db).await?;
        let due = self.outbox.claim(&txn, self.batch, self.lease).await?;
        txn.commit().await?;
        let mut groups: BTreeMap<(&str, &str), Vec<OutboxMessage>> = BTreeMap::new();
        for m in &due {
            groups
                .entry((&m.tenant_id, &m.topic))
                .or_default()
                .push(m.clone());
        }
        let (mut delivered, mut failed) = (0, 0);
        let claimed_at = tokio::time::Instant::now();
        for ((tenant, topic), messages) in groups {
            let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
            // A pass of many groups may outlast the lease taken at its start.
            if claimed_at.elapsed() > self.lease / 4 {
                let txn = crate::begin_unsynced(&self.db).await?;
                self.outbox.renew(&txn, &ids, self.lease).await?;
                txn.commit().await?;
            }
            let span = tracing::info_span!(
                "outbox.deliver",
                table = self.outbox.table,
                tenant,
                topic,
                messages = messages.len()
            );
            let parents: Vec<&str> = messages
                .iter()
                .filter_map(|m| m.traceparent.as_deref())
                .collect();
            rapport_telemetry::link_remote_parents(&span, &parents);
            match self
                .deliver
                .deliver(tenant, topic, &messages)
                .instrument(span)
                .await
            {
                Ok(()) => {
                    let txn = crate::begin_unsynced(&self.db).await?;
                    self.outbox.delivered(&txn, &ids).await?;
                    txn.commit().await?;
                    delivered += ids.len();
                }
                Err(error) => {
                    let attempts = messages.iter().map(|m| m.attempts).max().unwrap_or(0);
                    let retry_in = self.backoff.delay(attempts);
                    tracing::warn!(%error, tenant, topic, attempts, ?retry_in, "outbox delivery failed; will retry");
                    let txn = crate::begin_unsynced(&self.db).await?;
                    self.outbox
                        .failed(&txn, &ids, retry_in, &error.to_string())
                        .await?;
                    txn.commit().await?;
                    failed += ids.len();
                }
            }
        }
        Ok(Pass { delivered, failed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails the first `failures` deliveries, then records what it is given.
    #[derive(Default)]
    struct Flaky {
        failures: AtomicUsize,
        seen: Mutex<Vec<(String, usize)>>,
    }

    impl Deliver for Arc<Flaky> {
        async fn deliver(
            &self,
            tenant: &str,
            _topic: &str,
            messages: &[OutboxMessage],
        ) -> Result<(), DeliveryError> {
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(DeliveryError("receiver down".into()));
            }
            self.seen
                .lock()
                .unwrap()
                .push((tenant.to_owned(), messages.len()));
            Ok(())
        }
    }

    /// An outbox table in a new SQLite database (kept while the directory lives).
    async fn sqlite_outbox() -> (tempfile::TempDir, DatabaseConnection, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::connect(&crate::sqlite_url(dir.path(), "outbox"))
            .await
            .unwrap();
        create_table(&SchemaManager::new(&db), "test_outbox")
            .await
            .unwrap();
        (dir, db, Outbox::new("test_outbox"))
    }

    fn message(id: i64, payload: &[u8]) -> OutboxMessage {
        OutboxMessage {
            id,
            tenant_id: "t".into(),
            topic: "x".into(),
            payload: payload.to_vec(),
            traceparent: None,
            attempts: 0,
        }
    }

    #[test]
    fn unreadable_messages_are_dropped_and_the_others_kept_in_order() {
        let messages = [message(1, b"ab"), message(2, b""), message(3, b"c")];
        let items = readable(&messages, |m| match m.payload.as_slice() {
            [] => Err("empty".to_owned()),
            bytes => Ok(bytes.to_vec()),
        });
        assert_eq!(items, b"abc");
    }

    #[tokio::test]
    async fn messages_stay_until_delivered_and_are_retried_later() {
        let (_dir, db, outbox) = sqlite_outbox().await;
        for (tenant, n) in [("a", 2), ("b", 1)] {
            for i in 0..n {
                outbox
                    .push(
                        &db,
                        tenant,
                        "t",
                        vec![i],
                        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
                    )
                    .await
                    .unwrap();
            }
        }
        let flaky = Arc::new(Flaky {
            failures: AtomicUsize::new(2),
            ..Default::default()
        });
        let mut relay = Relay::new(outbox, db.clone(), flaky.clone());
        relay.backoff = Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_millis(200),
        };

        // Both tenants' deliveries fail: nothing is lost, and nothing is due again at once.
        assert_eq!(
            relay.pass().await.unwrap(),
            Pass {
                delivered: 0,
                failed: 3
            }
        );
        assert_eq!(outbox.depth(&db).await.unwrap().0, 3);
        assert!(
            outbox
                .claim(&db, 10, Duration::from_secs(60))
                .await
                .unwrap()
                .is_empty(),
            "failed messages wait for their backoff"
        );
        let attempts: Vec<i32> = {
            let select = Query::select()
                .column(col("attempts"))
                .from(col("test_outbox"))
                .to_owned();
            db.query_all(&select)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get("", "attempts").unwrap())
                .collect()
        };
        assert_eq!(attempts, vec![1, 1, 1]);

        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            relay.pass().await.unwrap(),
            Pass {
                delivered: 3,
                failed: 0
            }
        );
        assert_eq!(outbox.depth(&db).await.unwrap(), (0, None));
        let mut seen = flaky.seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            vec![("a".to_owned(), 2), ("b".to_owned(), 1)],
            "one call per tenant with all its messages"
        );
    }

    #[tokio::test]
    async fn claimed_messages_are_nobody_elses_until_their_lease_ends() {
        let (_dir, db, outbox) = sqlite_outbox().await;
        let payloads = (0..5u8).map(|i| vec![i]).collect();
        outbox
            .push_many(&db, "t", "x", payloads, None)
            .await
            .unwrap();

        let lease = Duration::from_millis(300);
        let first = outbox.claim(&db, 3, lease).await.unwrap();
        let second = outbox.claim(&db, 3, lease).await.unwrap();
        let ids = |ms: &[OutboxMessage]| ms.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(&first), [1, 2, 3], "the oldest first");
        assert_eq!(
            ids(&second),
            [4, 5],
            "what the first claim took is not offered again"
        );
        assert!(outbox.claim(&db, 3, lease).await.unwrap().is_empty());

        // The first claimer answers; the second dies without answering.
        outbox.delivered(&db, &ids(&first)).await.unwrap();
        tokio::time::sleep(lease + Duration::from_millis(50)).await;
        let again = outbox.claim(&db, 10, lease).await.unwrap();
        assert_eq!(
            ids(&again),
            [4, 5],
            "an unanswered claim comes due after its lease"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for _ in 0..50 {
            let d0 = b.delay(0);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
            let d3 = b.delay(3);
            assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800));
            assert!(b.delay(40) <= Duration::from_secs(2));
        }
    }
}
