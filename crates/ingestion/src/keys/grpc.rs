//! The key RPCs: a tenant's admin manages its own tenant's keys, an operator every tenant's;
//! each use is audited; the secret of a new key is answered once and never stored.

use super::{Actor, KeyStore, NewKey};
use crate::entity::api_key;
use rapport_proto::convert::timestamp;
use rapport_proto::keys::v1 as pb;
use rapport_proto::keys::v1::key_service_server::KeyService;
use rapport_server::auth::{ApiKeys, Principal, Role, digest};
use rapport_server::keys::{digest_to_pb, generate, role_from_pb, role_to_pb};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Longest key name.
const MAX_NAME_CHARS: usize = 200;
/// Longest tenant id.
const MAX_TENANT_CHARS: usize = 100;
/// Longest validity of a key: ten years.
const MAX_VALIDITY_MS: i64 = 10 * 366 * 86_400_000;
/// Most audit entries in one answer.
const MAX_AUDIT: u32 = 1_000;

/// The key service over ingestion's key table; `keys` is this replica's own copy of the keys
/// in force, refreshed at once after a change.
#[derive(Debug, Clone)]
pub struct KeysApi {
    pub store: KeyStore,
    pub keys: Arc<ApiKeys>,
    /// The time keys are created, expire and are revoked by.
    pub clock: rapport_server::Clock,
}

/// The tenants a caller may manage the keys of: its own (an admin) or all (an operator).
fn scope(principal: &Principal) -> Result<Option<&str>, Status> {
    match principal.role {
        Role::Admin => Ok(Some(&principal.tenant)),
        Role::Operator => Ok(None),
        _ => Err(Status::permission_denied(
            "managing keys needs an admin or operator key",
        )),
    }
}

fn db_error(e: sea_orm::DbErr) -> Status {
    tracing::error!(error = %e, "key store");
    Status::unavailable("the key store is unavailable; retry")
}

fn to_pb(key: api_key::Model) -> pb::ApiKey {
    pb::ApiKey {
        role: Role::parse(&key.role).map_or(pb::KeyRole::Unspecified, role_to_pb) as i32,
        id: key.id,
        tenant: key.tenant_id,
        name: key.name,
        created_at: Some(timestamp(key.created_at)),
        created_by: key.created_by,
        expires_at: key.expires_at.map(timestamp),
        revoked_at: key.revoked_at.map(timestamp),
        revoked_by: key.revoked_by.unwrap_or_default(),
    }
}

/// A tenant id a key may name: not empty, at most 100 characters, no spaces or controls.
fn valid_tenant(tenant: &str) -> Result<(), Status> {
    if tenant.is_empty()
        || tenant.chars().count() > MAX_TENANT_CHARS
        || tenant.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Status::invalid_argument(
            "tenant: 1 to 100 characters without spaces",
        ));
    }
    Ok(())
}

impl KeysApi {
    fn now(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Reads the keys in force into this replica's copy, so a change made here is in force
    /// here at once (other replicas follow within a second).
    async fn refresh(&self) {
        match self.store.in_force(self.now()).await {
            Ok(keys) => self.keys.set_managed(keys),
            Err(e) => tracing::warn!(error = %e, "cannot re-read the managed keys"),
        }
    }
}

#[tonic::async_trait]
impl KeyService for KeysApi {
    async fn create_key(
        &self,
        req: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let principal = Principal::of(&req)?.clone();
        let scope = scope(&principal)?;
        let req = req.into_inner();
        let role = role_from_pb(req.role).ok_or_else(|| {
            Status::invalid_argument("role: one of ingest, read, admin, operator")
        })?;
        let tenant = match (role, scope, req.tenant.as_str()) {
            (Role::Operator, Some(_), _) => {
                return Err(Status::permission_denied(
                    "only an operator may create operator keys",
                ));
            }
            (Role::Operator, None, _) => "*".to_owned(),
            (_, Some(own), "") => own.to_owned(),
            (_, Some(own), named) if named != own => {
                return Err(Status::permission_denied(
                    "an admin key manages only its own tenant's keys",
                ));
            }
            (_, None, "") => {
                return Err(Status::invalid_argument(
                    "tenant: an operator must name the tenant of the key",
                ));
            }
            (_, _, named) => named.to_owned(),
        };
        valid_tenant(&tenant)?;
        if req.name.chars().count() > MAX_NAME_CHARS {
            return Err(Status::invalid_argument("name: at most 200 characters"));
        }
        let at = self.now();
        let expires_at = match req.expires_in {
            None => None,
            Some(d) => {
                let ms = d
                    .seconds
                    .checked_mul(1000)
                    .and_then(|s| s.checked_add(i64::from(d.nanos / 1_000_000)))
                    .filter(|ms| *ms > 0 && *ms <= MAX_VALIDITY_MS)
                    .ok_or_else(|| {
                        Status::invalid_argument("expires_in: more than 0 and at most 10 years")
                    })?;
                Some(at + ms)
            }
        };
        let (id, secret) = generate();
        let key = NewKey {
            id,
            tenant,
            role,
            name: req.name,
            sha256: digest(&secret),
            expires_at,
        };
        let actor = Actor {
            key_id: &principal.key_id,
            at,
        };
        let stored = self.store.create(key, &actor).await.map_err(db_error)?;
        tracing::info!(
            target: "rapport::audit",
            actor = %principal.key_id,
            key = %stored.id,
            tenant = %stored.tenant_id,
            role = %stored.role,
            "API key created"
        );
        self.refresh().await;
        Ok(Response::new(pb::CreateKeyResponse {
            key: Some(to_pb(stored)),
            secret,
        }))
    }

    async fn list_keys(
        &self,
        req: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let principal = Principal::of(&req)?.clone();
        let scope = scope(&principal)?;
        let req = req.into_inner();
        let tenant = scope.or((!req.tenant.is_empty()).then_some(req.tenant.as_str()));
        let at = self.now();
        let keys = self
            .store
            .list(tenant, req.include_inactive, at)
            .await
            .map_err(db_error)?;
        let actor = Actor {
            key_id: &principal.key_id,
            at,
        };
        self.store
            .record(&actor, tenant.unwrap_or("*"), "list", String::new())
            .await
            .map_err(db_error)?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.into_iter().map(to_pb).collect(),
        }))
    }

    async fn revoke_key(
        &self,
        req: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let principal = Principal::of(&req)?.clone();
        let scope = scope(&principal)?;
        let id = req.into_inner().id;
        if id.is_empty() {
            return Err(Status::invalid_argument("id: the key to revoke"));
        }
        let actor = Actor {
            key_id: &principal.key_id,
            at: self.now(),
        };
        let key = self
            .store
            .revoke(&id, scope, &actor)
            .await
            .map_err(db_error)?
            .ok_or_else(|| Status::not_found(format!("id: no key {id:?}")))?;
        tracing::info!(
            target: "rapport::audit",
            actor = %principal.key_id,
            key = %key.id,
            tenant = %key.tenant_id,
            "API key revoked"
        );
        self.refresh().await;
        Ok(Response::new(to_pb(key)))
    }

    async fn list_key_audit(
        &self,
        req: Request<pb::ListKeyAuditRequest>,
    ) -> Result<Response<pb::ListKeyAuditResponse>, Status> {
        let principal = Principal::of(&req)?.clone();
        let scope = scope(&principal)?;
        let limit = match req.into_inner().limit {
            0 => 100,
            n => n.min(MAX_AUDIT),
        };
        let actor = Actor {
            key_id: &principal.key_id,
            at: self.now(),
        };
        self.store
            .record(&actor, scope.unwrap_or("*"), "audit", String::new())
            .await
            .map_err(db_error)?;
        let entries = self
            .store
            .audit(scope, u64::from(limit))
            .await
            .map_err(db_error)?;
        Ok(Response::new(pb::ListKeyAuditResponse {
            entries: entries
                .into_iter()
                .map(|e| pb::KeyAuditEntry {
                    at: Some(timestamp(e.at)),
                    actor: e.actor,
                    tenant: e.tenant_id,
                    action: e.action,
                    key_id: e.key_id.unwrap_or_default(),
                    detail: e.detail,
                })
                .collect(),
        }))
    }

    async fn sync_keys(
        &self,
        req: Request<pb::SyncKeysRequest>,
    ) -> Result<Response<pb::SyncKeysResponse>, Status> {
        Principal::of(&req)?.require_service()?;
        let keys = self.store.in_force(self.now()).await.map_err(db_error)?;
        Ok(Response::new(pb::SyncKeysResponse {
            keys: keys.iter().map(digest_to_pb).collect(),
        }))
    }
}
