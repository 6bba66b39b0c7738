//! Ingestion's storage: one transaction per batch holds the accepted events, the quarantined
//! rejects and the outbox rows, so ACCEPTED always means committed and announced.

use crate::entity::{event, quarantine};
use crate::migration::OUTBOX;
use crate::relay::{CHANGED_CUSTOMERS, changed_customers};
use rapport_domain::event::{Event, RejectReason, Rejection};
use sea_orm::sea_query::{Alias, Expr, Func, InsertStatement, OnConflict, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Rows per multi-row INSERT; keeps every statement under the databases' parameter limits.
const INSERT_CHUNK: usize = 500;
/// The lock scope of a tenant's event log: its writers commit in the order of their
/// sequence numbers.
const EVENT_LOG: &str = "ingestion_events";

/// Errors of ingestion's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("event id {0:?} was neither inserted nor found stored")]
    Vanished(String),
}

/// An event of a batch after validation.
#[derive(Debug, Clone)]
pub enum Checked {
    Valid {
        event: Event,
        sent_at: Option<i64>,
        /// The event as received (protobuf), stored verbatim.
        raw: Vec<u8>,
        content_hash: String,
    },
    Invalid {
        event_id: String,
        raw: Vec<u8>,
        rejection: Rejection,
    },
}

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Rejected(Rejection),
}

/// Which quarantined events to list.
#[derive(Debug, Clone, Default)]
pub struct QuarantineFilter {
    pub reason: Option<RejectReason>,
    pub received_from: Option<i64>,
    pub received_until: Option<i64>,
    pub include_replayed: bool,
    pub before_id: Option<i64>,
    pub limit: u64,
}

/// A stored event with its sequence number.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub occurred_at: i64,
    pub received_at: i64,
    pub raw: Vec<u8>,
    /// The backfill it came in with; `None` when live.
    pub backfill: Option<String>,
}

impl From<event::Model> for StoredEvent {
    fn from(m: event::Model) -> Self {
        StoredEvent {
            seq: m.seq,
            occurred_at: m.occurred_at,
            received_at: m.received_at,
            raw: m.payload,
            backfill: m.backfill,
        }
    }
}

/// Ingestion's tables.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// The store on an already migrated database.
    pub fn new(db: DatabaseConnection) -> Self {
        Store { db }
    }

    /// Stores a batch: valid new events, rejects in quarantine, and one outbox message naming
    /// the changed customers, in one transaction. Answers per event, in order.
    ///
    /// New events are inserted straight away (`ON CONFLICT DO NOTHING`); only the ids the
    /// database already held are looked up, to tell a retry (same content: DUPLICATE) from a
    /// reused id (different content: REJECTED as a conflict). A batch of new events thus
    /// costs its INSERTs and no lookups.
    pub async fn ingest(
        &self,
        tenant: &str,
        batch: Vec<Checked>,
        received_at: i64,
        traceparent: Option<String>,
        backfill: &str,
    ) -> Result<Vec<Outcome>, StoreError> {
        // The first occurrence of each id is the one stored; a later one in the same batch
        // is judged against whatever content ends up stored under the id.
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut new_rows = Vec::new();
        for (i, checked) in batch.iter().enumerate() {
            if let Checked::Valid { event, .. } = checked
                && let Entry::Vacant(slot) = first.entry(event.event_id.as_str())
            {
                slot.insert(i);
                new_rows.push(checked);
            }
        }

        let txn = rapport_storage::begin_write(&self.db).await?;
        // Sequence numbers are drawn at insert and become visible at commit; readers take
        // "a customer's events after my cursor", so a number must not become visible after
        // a higher one of the same tenant, or a reader that saw the higher one skips it for
        // good. A tenant's batches therefore insert and commit one after another.
        rapport_storage::coordination::lock_until_commit(&txn, EVENT_LOG, tenant).await?;
        let backfill = Some(backfill).filter(|b| !b.is_empty());
        let inserted = insert_new(&txn, tenant, &new_rows, received_at, backfill).await?;
        let held: Vec<&str> = first
            .keys()
            .copied()
            .filter(|id| !inserted.contains(id))
            .collect();
        let stored = existing_hashes(&txn, tenant, &held).await?;

        let mut outcomes = Vec::with_capacity(batch.len());
        let mut customers = BTreeSet::new();
        let mut rejects = Vec::new();
        for (i, checked) in batch.iter().enumerate() {
            let outcome = match checked {
                Checked::Valid {
                    event,
                    content_hash,
                    ..
                } => {
                    let id = event.event_id.as_str();
                    let ours = inserted.contains(id);
                    let kept = if ours {
                        first.get(id).and_then(|&f| content_hash_of(&batch[f]))
                    } else {
                        stored.get(id).map(String::as_str)
                    };
                    if ours && first.get(id) == Some(&i) {
                        customers.insert(event.customer_id.as_str());
                        Outcome::Accepted
                    } else if kept == Some(content_hash.as_str()) {
                        Outcome::Duplicate
                    } else if kept.is_some() {
                        Outcome::Rejected(conflict(id))
                    } else {
                        // DO NOTHING skipped the row, so the database holds the id; it cannot
                        // have vanished, as events are never deleted.
                        return Err(StoreError::Vanished(id.to_owned()));
                    }
                }
                Checked::Invalid { rejection, .. } => Outcome::Rejected(rejection.clone()),
            };
            if let Outcome::Rejected(rejection) = &outcome {
                let (event_id, raw) = match checked {
                    Checked::Valid { event, raw, .. } => (event.event_id.clone(), raw.clone()),
                    Checked::Invalid { event_id, raw, .. } => (event_id.clone(), raw.clone()),
                };
                rejects.push(quarantine::ActiveModel {
                    id: NotSet,
                    tenant_id: Set(tenant.to_owned()),
                    event_id: Set(event_id),
                    reason: Set(rejection.reason.code().to_owned()),
                    field: Set(rejection.field.clone()),
                    message: Set(rejection.message.clone()),
                    raw: Set(raw),
                    received_at: Set(received_at),
                    replayed_at: Set(None),
                });
            }
            outcomes.push(outcome);
        }

        for chunk in rejects.chunks(INSERT_CHUNK) {
            quarantine::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        if !customers.is_empty() {
            let payload = changed_customers(customers.into_iter().map(str::to_owned).collect());
            OUTBOX
                .push(&txn, tenant, CHANGED_CUSTOMERS, payload, traceparent)
                .await?;
        }
        txn.commit().await?;
        Ok(outcomes)
    }

    /// For each `(customer, after_seq)` in turn, up to `limit` of the customer's stored events
    /// with a sequence number above `after_seq`, oldest first (or the newest of them first).
    pub async fn customers_events(
        &self,
        tenant: &str,
        cursors: &[(String, i64)],
        limit: u64,
        newest_first: bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            // SQLite runs in-process: a statement per customer costs no round trip.
            let mut events = Vec::new();
            for (customer, after_seq) in cursors {
                events.extend(
                    self.customer_events(tenant, customer, *after_seq, limit, newest_first)
                        .await?,
                );
            }
            return Ok(events);
        }
        // One statement for every customer (a scoring fold names hundreds): each customer's
        // range of the (tenant, customer, seq) index, in the order of the cursors.
        let cursors: Vec<serde_json::Value> = cursors
            .iter()
            .enumerate()
            .map(|(i, (customer, after))| serde_json::json!({"i": i, "c": customer, "s": after}))
            .collect();
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT e.* FROM json_to_recordset($1::json) AS c(i bigint, c text, s bigint) \
             CROSS JOIN LATERAL (SELECT * FROM ingestion_events e \
               WHERE e.tenant_id = $2 AND e.customer_id = c.c AND e.seq > c.s \
               ORDER BY e.seq {order} LIMIT $3) e \
             ORDER BY c.i, e.seq {order}"
        );
        let rows = event::Entity::find()
            .from_raw_sql(sea_orm::Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [
                    serde_json::Value::Array(cursors).to_string().into(),
                    tenant.into(),
                    (limit as i64).into(),
                ],
            ))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Up to `limit` of a customer's stored events with a sequence number above `after_seq`,
    /// oldest first, or the newest of them first.
    pub async fn customer_events(
        &self,
        tenant: &str,
        customer_id: &str,
        after_seq: i64,
        limit: u64,
        newest_first: bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let order = if newest_first {
            sea_orm::Order::Desc
        } else {
            sea_orm::Order::Asc
        };
        let rows = event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::CustomerId.eq(customer_id))
            .filter(event::Column::Seq.gt(after_seq))
            .order_by(event::Column::Seq, order)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Up to `limit` of the tenant's stored events with a sequence number above `after_seq`
    /// (and, when given, an event time before `occurred_before`), oldest first.
    pub async fn events(
        &self,
        tenant: &str,
        after_seq: i64,
        occurred_before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut q = event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::Seq.gt(after_seq));
        if let Some(before) = occurred_before {
            q = q.filter(event::Column::OccurredAt.lt(before));
        }
        let rows = q
            .order_by_asc(event::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Quarantined events of a tenant, newest first.
    pub async fn quarantine(
        &self,
        tenant: &str,
        filter: &QuarantineFilter,
    ) -> Result<Vec<quarantine::Model>, StoreError> {
        let mut q = quarantine::Entity::find().filter(quarantine::Column::TenantId.eq(tenant));
        if let Some(reason) = filter.reason {
            q = q.filter(quarantine::Column::Reason.eq(reason.code()));
        }
        if let Some(from) = filter.received_from {
            q = q.filter(quarantine::Column::ReceivedAt.gte(from));
        }
        if let Some(until) = filter.received_until {
            q = q.filter(quarantine::Column::ReceivedAt.lt(until));
        }
        if !filter.include_replayed {
            q = q.filter(quarantine::Column::ReplayedAt.is_null());
        }
        if let Some(before) = filter.before_id {
            q = q.filter(quarantine::Column::Id.lt(before));
        }
        Ok(q.order_by_desc(quarantine::Column::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await?)
    }

    /// One quarantined event of a tenant.
    pub async fn quarantined(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<Option<quarantine::Model>, StoreError> {
        Ok(quarantine::Entity::find()
            .filter(quarantine::Column::TenantId.eq(tenant))
            .filter(quarantine::Column::Id.eq(id))
            .one(&self.db)
            .await?)
    }

    /// Marks a quarantined event as replayed.
    pub async fn mark_replayed(&self, tenant: &str, id: i64, at: i64) -> Result<(), StoreError> {
        quarantine::Entity::update_many()
            .col_expr(
                quarantine::Column::ReplayedAt,
                sea_orm::sea_query::Expr::value(at),
            )
            .filter(quarantine::Column::TenantId.eq(tenant))
            .filter(quarantine::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Number of stored events of a tenant.
    pub async fn count(&self, tenant: &str) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .count(&self.db)
            .await?)
    }
}

/// One multi-row INSERT of new events. DO NOTHING keeps the row a concurrent request may
/// have stored under the same id first, and RETURNING only the id tells which rows are ours
/// without the payloads travelling back.
fn insert_events(
    tenant: &str,
    rows: &[&Checked],
    received_at: i64,
    backfill: Option<&str>,
    returning: bool,
) -> InsertStatement {
    use event::Column as C;
    let mut insert = Query::insert();
    insert.into_table(event::Entity).columns([
        C::TenantId,
        C::EventId,
        C::CustomerId,
        C::EventType,
        C::OccurredAt,
        C::SentAt,
        C::ReceivedAt,
        C::Payload,
        C::ContentHash,
        C::Backfill,
    ]);
    for checked in rows {
        if let Checked::Valid {
            event,
            sent_at,
            raw,
            content_hash,
        } = checked
        {
            insert.values_panic([
                tenant.into(),
                event.event_id.as_str().into(),
                event.customer_id.as_str().into(),
                event.payload.type_name().into(),
                event.occurred_at.timestamp_millis().into(),
                (*sent_at).into(),
                received_at.into(),
                raw.as_slice().into(),
                content_hash.as_str().into(),
                backfill.into(),
            ]);
        }
    }
    insert.on_conflict(
        OnConflict::columns([C::TenantId, C::EventId])
            .do_nothing()
            .to_owned(),
    );
    if returning {
        insert.returning_col(C::EventId);
    }
    insert
}

/// Which of a batch's new rows this transaction inserted (the others' ids were held).
enum Inserted {
    All,
    These(HashSet<String>),
}

impl Inserted {
    fn contains(&self, id: &str) -> bool {
        match self {
            Inserted::All => true,
            Inserted::These(ids) => ids.contains(id),
        }
    }
}

/// Inserts `rows` (first occurrences of valid events), keeping what the database already
/// holds under their ids; answers which were inserted.
///
/// PostgreSQL says so row by row (`RETURNING`): a concurrent transaction may insert the same
/// ids meanwhile. On SQLite the transaction holds the write lock (`BEGIN IMMEDIATE`), so a
/// count of inserted rows equal to the rows sent means all of them, and otherwise the rows
/// above the sequence number read first are this transaction's. Answering every inserted id
/// (`RETURNING`) cost SQLite ingest a quarter or more of its rate (`make bench-ingest`).
async fn insert_new(
    txn: &DatabaseTransaction,
    tenant: &str,
    rows: &[&Checked],
    received_at: i64,
    backfill: Option<&str>,
) -> Result<Inserted, DbErr> {
    if txn.get_database_backend() != DbBackend::Sqlite {
        let mut inserted = HashSet::with_capacity(rows.len());
        for chunk in rows.chunks(INSERT_CHUNK) {
            let insert = insert_events(tenant, chunk, received_at, backfill, true);
            for row in txn.query_all(&insert).await? {
                inserted.insert(row.try_get::<String>("", "event_id")?);
            }
        }
        return Ok(Inserted::These(inserted));
    }
    let last = Query::select()
        .expr_as(Func::max(Expr::col(event::Column::Seq)), Alias::new("seq"))
        .from(event::Entity)
        .to_owned();
    let before = match txn.query_one(&last).await? {
        Some(row) => row.try_get::<Option<i64>>("", "seq")?.unwrap_or(0),
        None => 0,
    };
    let mut count = 0;
    for chunk in rows.chunks(INSERT_CHUNK) {
        let insert = insert_events(tenant, chunk, received_at, backfill, false);
        count += txn.execute(&insert).await?.rows_affected();
    }
    if count == rows.len() as u64 {
        return Ok(Inserted::All);
    }
    let ids: Vec<String> = event::Entity::find()
        .select_only()
        .column(event::Column::EventId)
        .filter(event::Column::Seq.gt(before))
        .into_tuple()
        .all(txn)
        .await?;
    Ok(Inserted::These(ids.into_iter().collect()))
}

fn content_hash_of(checked: &Checked) -> Option<&str> {
    match checked {
        Checked::Valid { content_hash, .. } => Some(content_hash),
        Checked::Invalid { .. } => None,
    }
}

fn conflict(event_id: &str) -> Rejection {
    Rejection {
        reason: RejectReason::Conflict,
        field: "event_id".to_owned(),
        message: format!(
            "event id {event_id:?} was already used for an event with different content"
        ),
    }
}

async fn existing_hashes<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, String>, DbErr> {
    let mut known = HashMap::new();
    for chunk in ids.chunks(INSERT_CHUNK) {
        let rows: Vec<(String, String)> = event::Entity::find()
            .select_only()
            .column(event::Column::EventId)
            .column(event::Column::ContentHash)
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::EventId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(conn)
            .await?;
        known.extend(rows);
    }
    Ok(known)
}
