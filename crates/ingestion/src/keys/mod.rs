//! The managed API keys' table: digests of the secrets (never a secret), who created and
//! revoked each, and the audit of every key RPC.

pub mod grpc;

use crate::entity::{api_key, key_audit};
use rapport_server::auth::{ManagedKey, Role};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub tenant: String,
    pub role: Role,
    pub name: String,
    pub sha256: [u8; 32],
    pub expires_at: Option<i64>,
}

/// Who makes a key call, and when.
#[derive(Debug, Clone)]
pub struct Actor<'a> {
    pub key_id: &'a str,
    pub at: i64,
}

/// The key table of one database.
#[derive(Debug, Clone)]
pub struct KeyStore {
    db: DatabaseConnection,
}

impl KeyStore {
    /// The key table of `db` (migrated by ingestion's migrator).
    pub fn new(db: DatabaseConnection) -> Self {
        KeyStore { db }
    }

    /// Stores `key` and its audit entry in one transaction.
    pub async fn create(&self, key: NewKey, actor: &Actor<'_>) -> Result<api_key::Model, DbErr> {
        let tx = rapport_storage::begin_write(&self.db).await?;
        let model = api_key::ActiveModel {
            id: Set(key.id.clone()),
            tenant_id: Set(key.tenant.clone()),
            role: Set(key.role.name().to_owned()),
            name: Set(key.name.clone()),
            sha256: Set(key.sha256.to_vec()),
            created_at: Set(actor.at),
            created_by: Set(actor.key_id.to_owned()),
            expires_at: Set(key.expires_at),
            revoked_at: Set(None),
            revoked_by: Set(None),
        }
        .insert(&tx)
        .await?;
        let detail = format!("role {}, name {:?}", key.role.name(), key.name);
        audit_entry(actor, &key.tenant, "create", Some(&key.id), detail)
            .insert(&tx)
            .await?;
        tx.commit().await?;
        Ok(model)
    }

    /// The keys of `tenant` (every tenant's when `None`), newest first; revoked and expired
    /// ones only with `include_inactive`.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        include_inactive: bool,
        now: i64,
    ) -> Result<Vec<api_key::Model>, DbErr> {
        let mut query = api_key::Entity::find().order_by_desc(api_key::Column::CreatedAt);
        if let Some(tenant) = tenant {
            query = query.filter(api_key::Column::TenantId.eq(tenant));
        }
        if !include_inactive {
            query = query.filter(in_force(now));
        }
        query.all(&self.db).await
    }

    /// Revokes key `id` of `tenant` (any tenant's when `None`); the key as it is now, or
    /// `None` when there is no such key. Revoking a revoked key changes nothing.
    pub async fn revoke(
        &self,
        id: &str,
        tenant: Option<&str>,
        actor: &Actor<'_>,
    ) -> Result<Option<api_key::Model>, DbErr> {
        let tx = rapport_storage::begin_write(&self.db).await?;
        let Some(key) = api_key::Entity::find_by_id(id.to_owned())
            .filter(tenant.map_or(Condition::all(), |t| {
                Condition::all().add(api_key::Column::TenantId.eq(t))
            }))
            .one(&tx)
            .await?
        else {
            return Ok(None);
        };
        let key = if key.revoked_at.is_none() {
            let mut active: api_key::ActiveModel = key.into();
            active.revoked_at = Set(Some(actor.at));
            active.revoked_by = Set(Some(actor.key_id.to_owned()));
            active.update(&tx).await?
        } else {
            key
        };
        audit_entry(actor, &key.tenant_id, "revoke", Some(id), String::new())
            .insert(&tx)
            .await?;
        tx.commit().await?;
        Ok(Some(key))
    }

    /// Records a use of a key RPC that changes nothing (a listing).
    pub async fn record(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        action: &str,
        detail: String,
    ) -> Result<(), DbErr> {
        audit_entry(actor, tenant, action, None, detail)
            .insert(&self.db)
            .await?;
        Ok(())
    }

    /// The latest `limit` audit entries of `tenant` (every tenant's when `None`).
    pub async fn audit(
        &self,
        tenant: Option<&str>,
        limit: u64,
    ) -> Result<Vec<key_audit::Model>, DbErr> {
        let mut query = key_audit::Entity::find()
            .order_by_desc(key_audit::Column::Id)
            .limit(limit);
        if let Some(tenant) = tenant {
            query = query.filter(key_audit::Column::TenantId.eq(tenant));
        }
        query.all(&self.db).await
    }

    /// The keys in force at `now`, as servers check them.
    pub async fn in_force(&self, now: i64) -> Result<Vec<ManagedKey>, DbErr> {
        let rows = api_key::Entity::find()
            .filter(in_force(now))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().filter_map(managed).collect())
    }
}

/// Keys neither revoked nor expired at `now`.
fn in_force(now: i64) -> Condition {
    Condition::all()
        .add(api_key::Column::RevokedAt.is_null())
        .add(
            Condition::any()
                .add(api_key::Column::ExpiresAt.is_null())
                .add(api_key::Column::ExpiresAt.gt(now)),
        )
}

/// A row as servers check it; none when it is malformed (then the key is refused).
fn managed(row: api_key::Model) -> Option<ManagedKey> {
    Some(ManagedKey {
        role: Role::parse(&row.role)?,
        sha256: row.sha256.as_slice().try_into().ok()?,
        expires_at_ms: row.expires_at,
        id: row.id,
        tenant: row.tenant_id,
    })
}

fn audit_entry(
    actor: &Actor<'_>,
    tenant: &str,
    action: &str,
    key_id: Option<&str>,
    detail: String,
) -> key_audit::ActiveModel {
    key_audit::ActiveModel {
        id: NotSet,
        at: Set(actor.at),
        actor: Set(actor.key_id.to_owned()),
        tenant_id: Set(tenant.to_owned()),
        action: Set(action.to_owned()),
        key_id: Set(key_id.map(str::to_owned)),
        detail: Set(detail),
    }
}
