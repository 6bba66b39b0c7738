//! Ingestion's storage: one transaction per batch holds the accepted events, the quarantined
//! rejects and the outbox rows, so ACCEPTED always means committed and announced.

use crate::entity::{event, quarantine};
use crate::migration::OUTBOX;
use rapport_domain::event::{Event, RejectReason, Rejection};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use std::collections::{BTreeSet, HashMap};

/// Rows per multi-row INSERT; keeps every statement under the databases' parameter limits.
const INSERT_CHUNK: usize = 500;

/// Errors of ingestion's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
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
}

impl From<event::Model> for StoredEvent {
    fn from(m: event::Model) -> Self {
        StoredEvent {
            seq: m.seq,
            occurred_at: m.occurred_at,
            received_at: m.received_at,
            raw: m.payload,
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

    /// Stores a batch: valid new events, rejects in quarantine, and one outbox row per
    /// changed customer, in one transaction. Answers per event, in order.
    pub async fn ingest(
        &self,
        tenant: &str,
        batch: Vec<Checked>,
        received_at: i64,
        traceparent: Option<String>,
    ) -> Result<Vec<Outcome>, StoreError> {
        let txn = rapport_storage::begin_write(&self.db).await?;
        let ids: Vec<&str> = batch
            .iter()
            .filter_map(|c| match c {
                Checked::Valid { event, .. } => Some(event.event_id.as_str()),
                Checked::Invalid { .. } => None,
            })
            .collect();
        let mut known = existing_hashes(&txn, tenant, &ids).await?;

        let mut outcomes = Vec::with_capacity(batch.len());
        let mut new_rows = Vec::new();
        let mut rejects = Vec::new();
        for checked in &batch {
            let outcome = match checked {
                Checked::Valid {
                    event,
                    sent_at,
                    raw,
                    content_hash,
                } => match known.get(&event.event_id) {
                    Some(hash) if hash == content_hash => Outcome::Duplicate,
                    Some(_) => Outcome::Rejected(conflict(&event.event_id)),
                    None => {
                        known.insert(event.event_id.clone(), content_hash.clone());
                        new_rows.push(event::ActiveModel {
                            seq: NotSet,
                            tenant_id: Set(tenant.to_owned()),
                            event_id: Set(event.event_id.clone()),
                            customer_id: Set(event.customer_id.clone()),
                            event_type: Set(event.payload.type_name().to_owned()),
                            occurred_at: Set(event.occurred_at.timestamp_millis()),
                            sent_at: Set(*sent_at),
                            received_at: Set(received_at),
                            payload: Set(raw.clone()),
                            content_hash: Set(content_hash.clone()),
                        });
                        Outcome::Accepted
                    }
                },
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

        let mut customers = BTreeSet::new();
        for chunk in new_rows.chunks(INSERT_CHUNK) {
            // A concurrent request may have stored the same id since we looked: DO NOTHING
            // keeps the first, and RETURNING tells us which rows are ours.
            // RETURNING only the id: the rows themselves (payload bytes included) need not
            // travel back.
            let mut insert = event::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([event::Column::TenantId, event::Column::EventId])
                        .do_nothing()
                        .to_owned(),
                )
                .into_query();
            insert.returning_col(event::Column::EventId);
            let inserted: Vec<String> = txn
                .query_all(&insert)
                .await?
                .iter()
                .map(|row| row.try_get::<String>("", "event_id"))
                .collect::<Result<_, _>>()?;
            let ours: BTreeSet<&str> = inserted.iter().map(String::as_str).collect();
            for row in chunk {
                let id = row.event_id.as_ref();
                if ours.contains(id.as_str()) {
                    customers.insert(row.customer_id.as_ref().clone());
                } else {
                    let stored = existing_hashes(&txn, tenant, &[id.as_str()]).await?;
                    let same = stored.get(id.as_str()) == Some(row.content_hash.as_ref());
                    for (checked, outcome) in batch.iter().zip(outcomes.iter_mut()) {
                        if matches!(checked, Checked::Valid { event, .. } if &event.event_id == id)
                            && *outcome == Outcome::Accepted
                        {
                            *outcome = if same {
                                Outcome::Duplicate
                            } else {
                                Outcome::Rejected(conflict(id))
                            };
                        }
                    }
                }
            }
        }
        for chunk in rejects.chunks(INSERT_CHUNK) {
            quarantine::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        let payloads = customers.into_iter().map(String::into_bytes).collect();
        OUTBOX
            .push_many(&txn, tenant, "customers_changed", payloads, traceparent)
            .await?;
        txn.commit().await?;
        Ok(outcomes)
    }

    /// A customer's stored events with a sequence number above `after_seq`, oldest first.
    pub async fn customer_events(
        &self,
        tenant: &str,
        customer_id: &str,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::CustomerId.eq(customer_id))
            .filter(event::Column::Seq.gt(after_seq))
            .order_by_asc(event::Column::Seq)
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
